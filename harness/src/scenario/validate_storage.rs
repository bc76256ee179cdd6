//! Checks of image kinds (formats, backing chains, copies, files a step creates), of a domain's
//! boot files, and of the snapshot and block-job actions.

use std::collections::BTreeSet;

use super::super::model::*;
use super::Checker;

impl Checker<'_> {
    /// Every image says one coherent thing: created (raw, or qcow2 maybe over a backing image),
    /// copied from the target, or left for a step to create.
    pub(super) fn images(&mut self) {
        let s = self.s;
        for (name, img) in &s.images {
            let i = &img.value;
            if i.directory {
                if i.size.is_some()
                    || i.backing.is_some()
                    || i.copy_of.is_some()
                    || i.format != ImageFormat::Raw
                    || !i.create
                    || i.within.is_some()
                {
                    let m = format!(
                        "image `{name}` is a directory the harness makes at the top of the sandbox: remove `size`, `format`, `backing`, `copy_of`, `create` and `in`"
                    );
                    self.problem(img, m);
                }
                continue;
            }
            if let Some(d) = &i.within {
                self.image(d);
                if s.images.get(&d.value).is_some_and(|x| !x.value.directory) {
                    let m = format!(
                        "`in: {}` names a file, not a directory: give image `{}` `directory: true`",
                        d.value, d.value
                    );
                    self.problem(d, m);
                }
                if i.backing.is_some()
                    || i.copy_of.is_some()
                    || i.format != ImageFormat::Raw
                    || !i.create
                {
                    let m = format!(
                        "image `{name}` is made `in` a directory: only a new raw file with a `size` can be (remove `format`, `backing`, `copy_of`, `create`)"
                    );
                    self.problem(d, m);
                }
            }
            if let Some(b) = &i.backing {
                if s.images.get(&b.value).is_some_and(|x| x.value.directory) {
                    let m = format!("backing image `{}` is a directory", b.value);
                    self.problem(b, m);
                }
            }
            if let Some(of) = i.copy_of {
                if i.size.is_some() || i.backing.is_some() || i.format != ImageFormat::Raw {
                    let m = format!(
                        "image `{name}` is a copy of the target's {}: it has that file's size and format, remove `size`, `format` and `backing`",
                        of.as_str()
                    );
                    self.problem(img, m);
                }
                if !i.create {
                    let m = format!("image `{name}` is a copy, which the harness makes: remove `create: false` or `copy_of`");
                    self.problem(img, m);
                }
                continue;
            }
            if !i.create {
                if i.size.is_some() || i.backing.is_some() || i.context.is_some() {
                    let m = format!(
                        "image `{name}` has `create: false`: a step creates it, so it takes no `size`, `backing` or `context`"
                    );
                    self.problem(img, m);
                }
                continue;
            }
            if let Some(b) = &i.backing {
                if i.format != ImageFormat::Qcow2 {
                    let m = format!("only a qcow2 image has a backing file: add `format: qcow2` to image `{name}`");
                    self.problem(b, m);
                }
                self.image(b);
                if let Some(base) = s.images.get(&b.value) {
                    if !base.value.create {
                        let m = format!(
                            "backing image `{}` has `create: false`, so it does not exist when `{name}` is made over it",
                            b.value
                        );
                        self.problem(b, m);
                    }
                }
                self.backing_cycle(name, b);
            } else if i.size.is_none() {
                let m = format!("image `{name}` needs a `size` (e.g. 16M)");
                self.problem(img, m);
            }
        }
    }

    /// A chain that comes back to where it started would make qemu-img loop.
    fn backing_cycle(&mut self, start: &Name, first: &At<Name>) {
        let mut seen = BTreeSet::from([start.clone()]);
        let mut next = Some(first.value.clone());
        while let Some(n) = next {
            if !seen.insert(n.clone()) {
                let m = format!("the backing chain of `{start}` comes back to `{n}`: a chain must end in an image without `backing`");
                self.problem(first, m);
                return;
            }
            next = self
                .s
                .images
                .get(&n)
                .and_then(|i| i.value.backing.as_ref())
                .map(|b| b.value.clone());
        }
    }

    /// An image a domain is given at define time must exist by then.
    pub(super) fn created_image(&mut self, n: &At<Name>, role: &str) {
        self.image(n);
        if let Some(i) = self.s.images.get(&n.value) {
            if i.value.directory {
                let m = format!(
                    "image `{}` is a directory (`directory: true`), so it cannot be {role}; only `virtiofs` exports one",
                    n.value
                );
                self.problem(n, m);
            }
            if !i.value.create {
                let m = format!(
                    "image `{}` has `create: false` (a step creates it), so it cannot be {role}",
                    n.value
                );
                self.problem(n, m);
            }
        }
    }

    pub(super) fn boot_files(&mut self, d: &Domain) {
        for (f, role) in [
            (&d.kernel, "a kernel"),
            (&d.initrd, "an initrd"),
            (&d.nvram, "an NVRAM file"),
            (&d.acpi_slic, "an ACPI table"),
        ] {
            if let Some(n) = f {
                self.created_image(n, role);
            }
        }
        for (entry, image) in &d.fw_cfg {
            self.created_image(image, "a fw_cfg file");
            if let Some(why) = fw_cfg_name_problem(&entry.value) {
                self.problem(entry, why);
            }
        }
        if let (Some(i), None) = (&d.initrd, &d.kernel) {
            self.problem(
                i,
                "an `initrd` without a `kernel` is never loaded: add `kernel:`".into(),
            );
        }
    }

    /// The image a step makes must be one the harness leaves to a step (`create: false`).
    fn made_by_step(&mut self, n: &At<Name>, what: &str) {
        self.image(n);
        if let Some(i) = self.s.images.get(&n.value) {
            if i.value.create {
                let m = format!(
                    "{what} `{}` is created by this step: give the image `create: false` (and no size)",
                    n.value
                );
                self.problem(n, m);
            }
        }
    }

    fn disk_target(&mut self, t: &At<String>) {
        if !super::is_disk_target(&t.value) {
            let m = format!("disk target `{}` should look like vda, vdb ...", t.value);
            self.problem(t, m);
        }
    }

    pub(super) fn storage_action(&mut self, action: &Action) {
        match action {
            Action::SnapshotCreate(a) => self.snapshot_create(a),
            Action::Blockcommit(a) => {
                self.domain(&a.domain);
                self.disk_target(&a.disk);
                for n in [&a.top, &a.base].into_iter().flatten() {
                    self.image(n);
                }
                if let (Some(t), Some(b)) = (&a.top, &a.base) {
                    if t.value == b.value {
                        self.problem(b, format!("`base` and `top` are both `{}`: a commit merges a layer into a lower one", b.value));
                    }
                }
            }
            Action::Blockcopy(a) => {
                self.domain(&a.domain);
                self.disk_target(&a.disk);
                self.image(&a.destination);
                if let Some(i) = self.s.images.get(&a.destination.value) {
                    if i.value.create && i.value.format != a.format {
                        let m = format!(
                            "the copy is written as {} but image `{}` is {}: make them the same",
                            a.format.as_str(),
                            a.destination.value,
                            i.value.format.as_str()
                        );
                        self.problem(&a.destination, m);
                    }
                }
            }
            Action::BlockJob(a) => {
                self.domain(&a.domain);
                self.disk_target(&a.disk);
                if let (JobUntil::Gone, Some(f)) = (a.until.value, &a.finish) {
                    self.problem(
                        f,
                        "a job that is gone cannot be pivoted or aborted: use `until: ready` with `finish`, or drop `finish`".into(),
                    );
                }
            }
            _ => {}
        }
    }
}

impl Checker<'_> {
    /// External: a disk and a qcow2 overlay the step creates; internal: neither.
    fn snapshot_create(&mut self, a: &SnapshotCreate) {
        self.domain(&a.domain);
        if a.is_internal() {
            if let Some(d) = &a.disk {
                self.problem(d, "an internal snapshot covers every disk of the domain: remove `disk` (or `internal: true` for an external snapshot of one disk)".into());
            }
            if let Some(o) = &a.overlay {
                self.problem(o, "an internal snapshot is kept inside the qcow2 disks and has no overlay: remove `overlay` (or `internal: true` for an external snapshot)".into());
            }
            return;
        }
        let at = a
            .internal
            .as_ref()
            .map_or((a.domain.line, a.domain.column), |i| (i.line, i.column));
        let at = At {
            value: (),
            line: at.0,
            column: at.1,
        };
        match &a.disk {
            Some(d) => self.disk_target(d),
            None => self.problem(&at, "an external snapshot needs the disk's target: add `disk: vda` (or `internal: true` for an internal snapshot of every disk)".into()),
        }
        let Some(overlay) = &a.overlay else {
            self.problem(&at, "an external snapshot needs the image it creates: add `overlay: IMAGE` (an image with `create: false, format: qcow2`), or `internal: true`".into());
            return;
        };
        self.made_by_step(overlay, "the overlay");
        if let Some(i) = self.s.images.get(&overlay.value) {
            if i.value.format != ImageFormat::Qcow2 {
                let m = format!(
                    "an external snapshot's overlay is qcow2: add `format: qcow2` to image `{}`",
                    overlay.value
                );
                self.problem(overlay, m);
            }
        }
    }
}

/// What QEMU would refuse in a fw_cfg entry name (hw/nvram/fw_cfg.c: FW_CFG_MAX_FILE_PATH is 56
/// bytes with the NUL; user entries live under `opt/`), said before anything runs.
fn fw_cfg_name_problem(name: &str) -> Option<String> {
    if !name.starts_with("opt/") || name.len() <= "opt/".len() {
        return Some(format!(
            "fw_cfg entry `{name}` must start with `opt/` and name a file under it (QEMU keeps the rest of the space for itself), e.g. opt/org.example/data"
        ));
    }
    if name.len() > 55 {
        return Some(format!(
            "fw_cfg entry `{name}` is {} characters long; QEMU takes at most 55",
            name.len()
        ));
    }
    None
}
