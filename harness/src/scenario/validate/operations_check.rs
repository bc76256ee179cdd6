//! Validation of the operations that write or read files other than disks (save, restore,
//! managed save, dump, CD-ROM media, chardevs): every file they name is a plain name in the
//! run's sandbox, declared where the reader expects it, and used in an order that can work.

use std::collections::BTreeSet;

use super::{one_of, Checker};
use crate::scenario::model::{Action, At, Disk, Name, Scenario};
use crate::scenario::operations::{Chardev, ChardevBackend, DiskDevice};

/// Every non-image file a scenario names: what save, dump and managed save write, and the
/// host side of its chardevs.
pub(super) fn files_made(s: &Scenario) -> BTreeSet<Name> {
    let mut out = BTreeSet::new();
    for step in &s.steps {
        match &step.action {
            Action::Save(a) => {
                out.insert(a.to.value.clone());
            }
            Action::Dump(a) => {
                out.insert(a.to.value.clone());
            }
            Action::Managedsave(a) => out.extend(a.file.iter().map(|f| f.value.clone())),
            _ => {}
        }
    }
    for d in s.domains.values() {
        for c in &d.serials {
            out.extend(c.value.files());
        }
    }
    out.retain(|n| !s.images.contains_key(n));
    out
}

impl Checker<'_> {
    /// A name `file:` may check: an image, or a file an operation or a chardev makes.
    pub(super) fn file(&mut self, n: &At<Name>) {
        if !self.s.images.contains_key(&n.value) && !self.made.contains(&n.value) {
            let known = self.s.images.keys().chain(self.made.iter());
            let m = format!(
                "unknown file `{}` ({}); add it under `images:`, or name it as a `save:`/`dump:` `to:`, a `managedsave:` `file:` or a chardev `path:`",
                n.value,
                one_of(known)
            );
            self.problem(n, m);
        }
    }

    /// A file an operation writes: a new name, or an image no guest uses as a disk (a target
    /// that exists before, as tp-libvirt's save_to_block saves to a device; its label before
    /// and after can be compared). Never a guest's disk: libvirt would overwrite it.
    fn output(&mut self, n: &At<Name>, what: &str) {
        let is_disk = self.s.domains.values().any(|d| {
            d.disks
                .iter()
                .any(|spec| spec.to_disk().image.value == n.value)
                || d.serials
                    .iter()
                    .any(|c| c.value.path.as_ref().is_some_and(|p| p.value == n.value))
        });
        if is_disk {
            let m = format!(
                "`{what}: {}` would overwrite a disk or chardev file of a guest: give the file a name of its own, or an image no guest uses",
                n.value
            );
            self.problem(n, m);
        }
    }

    pub(super) fn operation(&mut self, action: &Action) {
        match action {
            Action::Save(a) => {
                self.domain(&a.domain);
                self.output(&a.to, "to");
                self.saved.insert(a.to.value.clone());
            }
            Action::Restore(a) => {
                self.domain(&a.domain);
                if !self.saved.contains(&a.from.value) {
                    let m = format!(
                        "`from: {}` is not written by a `save:` before this step ({}); save the domain to it first",
                        a.from.value,
                        one_of(self.saved.iter())
                    );
                    self.problem(&a.from, m);
                }
                if let Some(x) = &a.xml {
                    if x.replace_images.is_empty() {
                        let at = &a.from;
                        self.problem(at, "`xml: {replace_images: {}}` changes nothing: name an image to replace (`{OLD: NEW}`), or drop `xml:`".into());
                    }
                    for (old, new) in &x.replace_images {
                        self.image(old);
                        self.image(new);
                    }
                }
            }
            Action::Managedsave(a) => {
                self.domain(&a.domain);
                if let Some(f) = &a.file {
                    self.output(f, "file");
                }
            }
            Action::Dump(a) => {
                self.domain(&a.domain);
                self.output(&a.to, "to");
            }
            Action::ChangeMedia(a) => {
                self.domain(&a.domain);
                match (&a.insert, a.eject) {
                    (Some(i), false) => self.image(i),
                    (None, true) => {}
                    (Some(i), true) => self.problem(
                        i,
                        "`change_media` either inserts or ejects: drop `eject: true` or `insert:`"
                            .into(),
                    ),
                    (None, false) => self.problem(
                        &a.target,
                        "`change_media` needs `insert: IMAGE` or `eject: true`".into(),
                    ),
                }
                let is_cdrom = self.s.domains.get(&a.domain.value).is_some_and(|d| {
                    d.disks.iter().map(|d| d.to_disk()).any(|d| {
                        d.device == DiskDevice::Cdrom
                            && d.target.as_ref().is_some_and(|t| t.value == a.target.value)
                    })
                });
                if self.s.domains.contains_key(&a.domain.value) && !is_cdrom {
                    let m = format!(
                        "domain `{}` has no CD-ROM with target `{}`: add a disk `{{image: ..., device: cdrom, target: {}}}`",
                        a.domain.value, a.target.value, a.target.value
                    );
                    self.problem(&a.target, m);
                }
            }
            _ => {}
        }
    }

    /// A CD-ROM sits on the IDE bus of the guests' `pc` machine, so its target is hdX.
    pub(super) fn cdrom(&mut self, d: &Disk) {
        if d.device != DiskDevice::Cdrom {
            return;
        }
        match &d.target {
            Some(t) if t.value.starts_with("hd") => {}
            Some(t) => {
                let m = format!(
                    "CD-ROM target `{}` is not on the IDE bus: use hdc (or hda, hdb, hdd)",
                    t.value
                );
                self.problem(t, m);
            }
            None => self.problem(
                &d.image,
                "a CD-ROM needs an IDE target: add `target: hdc`".into(),
            ),
        }
        if d.shareable {
            self.problem(
                &d.image,
                "a CD-ROM is read-only already: drop `shareable`".into(),
            );
        }
    }

    pub(super) fn chardev(&mut self, c: &At<Chardev>) {
        let ch = &c.value;
        let backend = ch.backend.value;
        let needs_path = backend != ChardevBackend::Pty;
        match (&ch.path, needs_path) {
            (None, true) => self.problem(
                &ch.backend,
                format!(
                    "a `{}` chardev needs `path: NAME` (a file name in the run's sandbox)",
                    keyword(backend)
                ),
            ),
            (Some(p), false) => self.problem(
                p,
                "a pty has no path (libvirt allocates /dev/pts/N): drop `path:`".into(),
            ),
            _ => {}
        }
        if let Some(p) = &ch.path {
            if backend == ChardevBackend::Pipe && p.value.as_str().len() > 36 {
                self.problem(
                    p,
                    "a pipe's name gets `.out` appended and must stay within 40 characters: shorten it".into(),
                );
            }
            if backend == ChardevBackend::Pipe && self.s.images.contains_key(&p.value) {
                self.problem(
                    p,
                    "a pipe is two FIFOs `NAME.in` and `NAME.out` the harness makes: use a name that is not an image".into(),
                );
            }
            if backend == ChardevBackend::Unix && self.s.images.contains_key(&p.value) {
                self.problem(
                    p,
                    "a unix socket cannot be an image (a regular file): use a name of its own"
                        .into(),
                );
            }
        }
        match (backend, ch.mode) {
            (ChardevBackend::Unix, None) => self.problem(
                &ch.backend,
                "a unix chardev needs `mode: bind` (QEMU listens) or `mode: connect` (the harness listens)".into(),
            ),
            (ChardevBackend::Unix, Some(_)) | (_, None) => {}
            (_, Some(_)) => self.problem(
                &ch.backend,
                "`mode:` is for `type: unix` only: drop it".into(),
            ),
        }
        if let Some(sl) = &ch.seclabel {
            if sl.relabel.is_none() && sl.label.is_none() {
                self.problem(
                    c,
                    "a chardev `seclabel:` without `relabel` or `label` changes nothing: give one"
                        .into(),
                );
            }
        }
    }
}

fn keyword(b: ChardevBackend) -> &'static str {
    match b {
        ChardevBackend::File => "file",
        ChardevBackend::Unix => "unix",
        ChardevBackend::Pipe => "pipe",
        ChardevBackend::Pty => "pty",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario::load_str;

    fn errors(src: &str) -> String {
        match load_str(Path::new("t.yaml"), src) {
            Ok(_) => String::new(),
            Err(e) => e
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    const HEAD: &str = "name: t\ndescription: d\nimages: {a.img: {size: 1M}, b.img: {size: 1M}}\n";

    #[test]
    fn save_files_are_checkable_and_restore_needs_an_earlier_save() {
        let ok = format!("{HEAD}domains: {{vm1: {{disks: [a.img]}}}}\nsteps:\n  - start: vm1\n  - save: {{domain: vm1, to: vm1.save}}\n    expect: {{file: {{vm1.save: {{type: svirt_image_t}}}}}}\n  - restore: {{domain: vm1, from: vm1.save, xml: {{replace_images: {{a.img: b.img}}}}}}\n");
        assert_eq!(errors(&ok), "");
        let early = format!("{HEAD}domains: {{vm1: {{disks: [a.img]}}}}\nsteps:\n  - restore: {{domain: vm1, from: vm1.save}}\n  - save: {{domain: vm1, to: vm1.save}}\n");
        let e = errors(&early);
        assert!(
            e.contains("t.yaml:6:34") && e.contains("not written by a `save:` before this step"),
            "{e}"
        );
        let clobber = format!("{HEAD}domains: {{vm1: {{disks: [a.img]}}}}\nsteps:\n  - dump: {{domain: vm1, to: a.img}}\n");
        assert!(errors(&clobber).contains("would overwrite a disk or chardev file of a guest"));
        let existing = format!("{HEAD}domains: {{vm1: {{disks: [a.img]}}}}\nsteps:\n  - dump: {{domain: vm1, to: b.img}}\n");
        assert_eq!(errors(&existing), "");
        let unknown = format!("{HEAD}domains: {{vm1: {{}}}}\nsteps:\n  - start: vm1\n    expect: {{file: {{vm1.core: {{type: svirt_image_t}}}}}}\n");
        let e = errors(&unknown);
        assert!(
            e.contains("unknown file `vm1.core`") && e.contains("`dump:`"),
            "{e}"
        );
    }

    /// Bookkeeping checks (`absent:` and the rest) may name what a step or a chardev makes,
    /// as `file:` may: a socket QEMU binds is gone at stop, and only `absent:` can say so.
    #[test]
    fn bookkeeping_checks_name_made_files() {
        let dom = "domains: {vm1: {serials: [{type: unix, mode: bind, path: b.sock}]}}\n";
        let ok = format!("{HEAD}{dom}steps:\n  - destroy: vm1\n    expect: {{absent: [b.sock], mode: {{b.sock: \"0755\"}}}}\n");
        assert_eq!(errors(&ok), "");
        let typo = errors(&format!(
            "{HEAD}{dom}steps:\n  - destroy: vm1\n    expect: {{absent: [c.sock]}}\n"
        ));
        assert!(
            typo.contains("unknown file `c.sock`") && typo.contains("chardev `path:`"),
            "{typo}"
        );
    }

    #[test]
    fn change_media_needs_a_cdrom_and_one_of_insert_or_eject() {
        let dom = "domains: {vm1: {disks: [a.img, {image: b.img, device: cdrom, target: hdc}]}}\n";
        assert_eq!(
            errors(&format!(
                "{HEAD}{dom}steps:\n  - change_media: {{domain: vm1, target: hdc, eject: true}}\n"
            )),
            ""
        );
        let both = errors(&format!("{HEAD}{dom}steps:\n  - change_media: {{domain: vm1, target: hdc, eject: true, insert: a.img}}\n"));
        assert!(both.contains("either inserts or ejects"), "{both}");
        let neither = errors(&format!(
            "{HEAD}{dom}steps:\n  - change_media: {{domain: vm1, target: hdc}}\n"
        ));
        assert!(
            neither.contains("needs `insert: IMAGE` or `eject: true`"),
            "{neither}"
        );
        let disk = errors(&format!(
            "{HEAD}{dom}steps:\n  - change_media: {{domain: vm1, target: vda, eject: true}}\n"
        ));
        assert!(disk.contains("has no CD-ROM with target `vda`"), "{disk}");
        let virtio = errors(&format!("{HEAD}domains: {{vm1: {{disks: [{{image: b.img, device: cdrom, target: vdb}}]}}}}\nsteps: [{{start: vm1}}]\n"));
        assert!(virtio.contains("not on the IDE bus"), "{virtio}");
    }

    #[test]
    fn chardev_paths_are_sandbox_names_of_the_right_kind() {
        let with = |serials: &str| {
            errors(&format!(
                "{HEAD}domains: {{vm1: {{serials: [{serials}]}}}}\nsteps: [{{start: vm1}}]\n"
            ))
        };
        assert_eq!(with("{type: file, path: log.txt}, {type: pty}, {type: unix, mode: bind, path: s.sock}, {type: pipe, path: p}"), "");
        assert!(with("{type: file}").contains("needs `path: NAME`"));
        assert!(with("{type: pty, path: x}").contains("a pty has no path"));
        assert!(with("{type: unix, path: s.sock}").contains("needs `mode: bind`"));
        assert!(with("{type: file, path: l, mode: bind}").contains("for `type: unix` only"));
        assert!(with("{type: unix, mode: bind, path: a.img}").contains("cannot be an image"));
        // A path is a Name: no way out of the sandbox.
        assert!(with("{type: file, path: ../../etc/shadow}").contains("invalid name"));
        assert!(with("{type: file, path: /etc/shadow}").contains("invalid name"));
        assert!(with("{type: file, path: l, seclabel: {}}").contains("changes nothing"));
        // The pipe's two FIFOs are files `file:` may check.
        let ok = format!("{HEAD}domains: {{vm1: {{serials: [{{type: pipe, path: p}}]}}}}\nsteps:\n  - start: vm1\n    expect: {{file: {{p.in: {{type: svirt_image_t}}, p.out: {{type: svirt_image_t}}}}}}\n");
        assert_eq!(errors(&ok), "");
    }
}
