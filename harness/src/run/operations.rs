//! Save, restore, managed save, core dump, CD-ROM media and chardevs: their plan (paths, XML,
//! the virsh a human would type) and how the executor performs them.
//!
//! Every path here comes from a scenario `Name` joined to the run's sandbox (the one exception
//! is the managed save image, whose path libvirt fixes), so no scenario can make libvirt write,
//! label or read a file outside its sandbox.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use quick_xml::escape::escape;

use super::domain_xml::{render, XmlWriter};
use super::plan::{disk_seclabel_xml, file_source_xml, Plan, PlannedDomain};
use crate::evidence::Outcome;
use crate::host::cleanup::{Cleanup, Undo};
use crate::host::layout::QEMU_SAVE_DIR;
use crate::host::libvirt::Libvirt;
use crate::host::sandbox::SandboxDir;
use crate::scenario::{
    Action, At, Chardev, ChardevBackend, ChardevKind, Disk, Name, Scenario, UnixMode,
};

/// Where each non-image file the scenario names lives.
pub(super) fn planned_files(
    s: &Scenario,
    sandbox: &Path,
    domains: &BTreeMap<Name, PlannedDomain>,
) -> BTreeMap<Name, PathBuf> {
    let mut out = BTreeMap::new();
    for step in &s.steps {
        match &step.action {
            Action::Save(a) => {
                out.insert(a.to.value.clone(), sandbox.join(a.to.value.as_str()));
            }
            Action::Dump(a) => {
                out.insert(a.to.value.clone(), sandbox.join(a.to.value.as_str()));
            }
            Action::Managedsave(a) => {
                if let (Some(f), Some(d)) = (&a.file, domains.get(&a.domain.value)) {
                    out.insert(f.value.clone(), managed_save_path(&d.libvirt_name));
                }
            }
            _ => {}
        }
    }
    for d in s.domains.values() {
        for c in &d.serials {
            for f in c.value.files() {
                let path = sandbox.join(f.as_str());
                out.insert(f, path);
            }
        }
    }
    out.retain(|n, _| !s.images.contains_key(n));
    out
}

/// libvirt's managed save image of a domain (qemuDomainManagedSavePath).
pub fn managed_save_path(libvirt_name: &str) -> PathBuf {
    Path::new(QEMU_SAVE_DIR).join(format!("{libvirt_name}.save"))
}

/// A CD-ROM: IDE (the `pc` machine's bus for it), read-only; no source is an empty drive.
pub(super) fn cdrom_xml(
    w: &mut XmlWriter,
    d: &Disk,
    path: Option<&Path>,
    target: &str,
) -> io::Result<()> {
    w.create_element("disk")
        .with_attributes([("type", "file"), ("device", "cdrom")])
        .write_inner_content(|w| {
            w.create_element("driver")
                .with_attributes([("name", "qemu"), ("type", "raw")])
                .write_empty()?;
            if let Some(p) = path {
                file_source_xml(w, p, d.seclabel.as_ref())?;
            }
            w.create_element("target")
                .with_attributes([("dev", target), ("bus", "ide")])
                .write_empty()?;
            w.create_element("readonly").write_empty()?;
            Ok(())
        })?;
    Ok(())
}

/// The `<serial>`/`<console>` elements of a domain's chardevs; ports count per kind.
pub(super) fn chardevs_xml(
    w: &mut XmlWriter,
    chardevs: &[At<Chardev>],
    sandbox: &Path,
) -> io::Result<()> {
    let mut serial_port = 0;
    for c in chardevs {
        let c = &c.value;
        let (element, target) = match c.device {
            ChardevKind::Serial => {
                serial_port += 1;
                ("serial", ("port", (serial_port - 1).to_string()))
            }
            ChardevKind::Console => ("console", ("type", "virtio".to_string())),
        };
        let kind = match c.backend.value {
            ChardevBackend::File => "file",
            ChardevBackend::Unix => "unix",
            ChardevBackend::Pipe => "pipe",
            ChardevBackend::Pty => "pty",
        };
        let mut attrs: Vec<(&str, String)> = Vec::new();
        if let Some(m) = c.mode {
            let mode = match m {
                UnixMode::Bind => "bind",
                UnixMode::Connect => "connect",
            };
            attrs.push(("mode", mode.to_string()));
        }
        if let Some(p) = &c.path {
            let path = sandbox.join(p.value.as_str());
            attrs.push(("path", path.to_string_lossy().into_owned()));
        }
        w.create_element(element)
            .with_attribute(("type", kind))
            .write_inner_content(|w| {
                if !attrs.is_empty() || c.seclabel.is_some() {
                    let e = w
                        .create_element("source")
                        .with_attributes(attrs.iter().map(|(k, v)| (*k, v.as_str())));
                    match &c.seclabel {
                        Some(sl) => e.write_inner_content(|w| disk_seclabel_xml(w, sl))?,
                        None => e.write_empty()?,
                    };
                }
                w.create_element("target")
                    .with_attribute((target.0, target.1.as_str()))
                    .write_empty()?;
                Ok(())
            })?;
    }
    Ok(())
}

impl Plan {
    pub fn file_path(&self, n: &Name) -> &Path {
        match self.files.get(n) {
            Some(p) => p,
            None => self.image_path(n),
        }
    }

    /// The `<disk>` an update-device sends to put `image` into (or, None, empty) a CD-ROM.
    pub fn change_media_xml(&self, domain: &Name, target: &str, image: Option<&Name>) -> String {
        let disk = Disk {
            image: At::new(domain.clone()),
            target: None,
            shareable: false,
            readonly: true,
            seclabel: None,
            device: crate::scenario::DiskDevice::Cdrom,
        };
        render(|w| cdrom_xml(w, &disk, image.map(|i| self.image_path(i)), target))
    }

    pub(super) fn virsh_operation(&self, action: &Action) -> Vec<String> {
        let flag = |on: bool, f: &str| if on { format!(" {f}") } else { String::new() };
        match action {
            Action::Save(a) => vec![format!(
                "virsh save {} {}{}",
                self.domain_name(&a.domain.value),
                self.file_path(&a.to.value).display(),
                flag(a.bypass_cache, "--bypass-cache")
            )],
            Action::Restore(a) => {
                let from = self.file_path(&a.from.value).display();
                let bypass = flag(a.bypass_cache, "--bypass-cache");
                match &a.xml {
                    None => vec![format!("virsh restore {from}{bypass}")],
                    Some(x) => {
                        let seds: Vec<String> = x
                            .replace_images
                            .iter()
                            .map(|(o, n)| {
                                format!(
                                    "s|{}|{}|",
                                    self.image_path(&o.value).display(),
                                    self.image_path(&n.value).display()
                                )
                            })
                            .collect();
                        vec![
                            format!(
                                "virsh save-image-dumpxml --security-info {from} > restore.xml"
                            ),
                            format!("sed -i '{}' restore.xml", seds.join("; ")),
                            format!("virsh restore {from} --xml restore.xml{bypass}"),
                        ]
                    }
                }
            }
            Action::Managedsave(a) => vec![format!(
                "virsh managedsave {}{}",
                self.domain_name(&a.domain.value),
                flag(a.bypass_cache, "--bypass-cache")
            )],
            Action::Dump(a) => vec![format!(
                "virsh dump {} {}{}",
                self.domain_name(&a.domain.value),
                self.file_path(&a.to.value).display(),
                flag(a.memory_only, "--memory-only")
            )],
            Action::ChangeMedia(a) => {
                let what = match &a.insert {
                    Some(i) => format!("{} --insert", self.image_path(&i.value).display()),
                    None => "--eject".to_string(),
                };
                vec![format!(
                    "virsh change-media {} {} {what} --live",
                    self.domain_name(&a.domain.value),
                    a.target.value
                )]
            }
            _ => Vec::new(),
        }
    }
}

/// Why a run's sandbox, an image in it or a chardev's end in it could not be made or
/// labelled; its text is the run's error ([`crate::run::executor::RunError::Sandbox`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxSetupError {
    #[error(transparent)]
    Make(#[from] crate::host::sandbox::SandboxError),
    #[error(transparent)]
    Label(Box<crate::selinux_ops::SelinuxOpsError>),
    #[error("cannot label {}: {source}", path.display())]
    LabelImage {
        path: std::path::PathBuf,
        source: Box<crate::selinux_ops::SelinuxOpsError>,
    },
    /// An image the plan names could not be made (qemu-img, a copy of a target file).
    #[error(transparent)]
    Image(#[from] crate::run::image_make::ImageMakeError),
}

impl From<crate::selinux_ops::SelinuxOpsError> for SandboxSetupError {
    fn from(e: crate::selinux_ops::SelinuxOpsError) -> Self {
        SandboxSetupError::Label(Box::new(e))
    }
}

/// What the harness holds open for a run's chardevs (listening sockets); dropped at its end.
#[derive(Default)]
pub struct ChardevEnds {
    _listeners: Vec<std::os::unix::net::UnixListener>,
}

/// Makes the host side a chardev needs before its guest starts: the FIFOs of a pipe, a
/// listening socket for `unix` in connect mode. Files and bound sockets are libvirt's and
/// QEMU's to make; everything lands in the sandbox, removed with it.
pub fn prepare_chardevs(s: &Scenario, dir: &SandboxDir) -> Result<ChardevEnds, SandboxSetupError> {
    let mut ends = ChardevEnds::default();
    for d in s.domains.values() {
        for c in &d.serials {
            let c = &c.value;
            let Some(p) = &c.path else { continue };
            match (c.backend.value, c.mode) {
                (ChardevBackend::Pipe, _) => {
                    for f in c.files() {
                        dir.create_fifo(f.as_str())?;
                        crate::selinux_ops::restore_default_context(&dir.path().join(f.as_str()))?;
                    }
                }
                (ChardevBackend::Unix, Some(UnixMode::Connect)) => {
                    let l = dir.listen(p.value.as_str())?;
                    crate::selinux_ops::restore_default_context(
                        &dir.path().join(p.value.as_str()),
                    )?;
                    ends._listeners.push(l);
                }
                _ => {}
            }
        }
    }
    Ok(ends)
}

fn outcome(r: Result<(), crate::evidence::LibvirtError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) => Outcome::Libvirt(e),
    }
}

/// Performs one of this module's actions. Returns what to report, and whether the domain runs
/// afterwards (Some(false): it stopped; Some(true): it runs; None: unchanged).
pub fn perform(
    lv: &Libvirt,
    plan: &Plan,
    uri: &str,
    action: &Action,
    cleanup: &mut Cleanup,
) -> (String, Outcome, Option<(Name, bool)>) {
    match action {
        Action::Save(a) => {
            let path = plan.file_path(&a.to.value);
            let o = outcome(lv.save(plan.domain_name(&a.domain.value), path, a.bypass_cache));
            let stopped = (o == Outcome::Ok).then(|| (a.domain.value.clone(), false));
            (
                format!("save {} to {}", a.domain.value, a.to.value),
                o,
                stopped,
            )
        }
        Action::Restore(a) => {
            let from = plan.file_path(&a.from.value);
            let o = match &a.xml {
                None => outcome(lv.restore(from, None, a.bypass_cache)),
                Some(x) => match lv.save_image_xml(from) {
                    Ok(xml) => match replace_images(plan, &xml, &x.replace_images) {
                        Ok(xml) => outcome(lv.restore(from, Some(&xml), a.bypass_cache)),
                        Err(e) => Outcome::Other {
                            message: e.to_string(),
                        },
                    },
                    Err(e) => Outcome::Libvirt(e),
                },
            };
            let runs = (o == Outcome::Ok).then(|| (a.domain.value.clone(), true));
            (
                format!("restore {} from {}", a.domain.value, a.from.value),
                o,
                runs,
            )
        }
        Action::Managedsave(a) => {
            let name = plan.domain_name(&a.domain.value);
            let o = outcome(lv.managed_save(name, a.bypass_cache));
            if o == Outcome::Ok {
                cleanup.push(Undo::ManagedSave {
                    uri: uri.to_string(),
                    name: name.to_string(),
                });
            }
            let stopped = (o == Outcome::Ok).then(|| (a.domain.value.clone(), false));
            (format!("managedsave {}", a.domain.value), o, stopped)
        }
        Action::Dump(a) => {
            let path = plan.file_path(&a.to.value);
            let o = outcome(lv.core_dump(plan.domain_name(&a.domain.value), path, a.memory_only));
            (
                format!("dump {} to {}", a.domain.value, a.to.value),
                o,
                None,
            )
        }
        Action::ChangeMedia(a) => {
            let xml = plan.change_media_xml(
                &a.domain.value,
                &a.target.value,
                a.insert.as_ref().map(|i| &i.value),
            );
            let o = outcome(lv.update_device_live(plan.domain_name(&a.domain.value), &xml));
            let what = match &a.insert {
                Some(i) => format!("insert {}", i.value),
                None => "eject".to_string(),
            };
            (
                format!("change_media {} {} {what}", a.domain.value, a.target.value),
                o,
                None,
            )
        }
        other => (
            other.keyword().to_string(),
            Outcome::Other {
                message: "not an operation of this module".into(),
            },
            None,
        ),
    }
}

/// A `replace_images` entry whose image the save image does not use; its text is the
/// restore's outcome.
#[derive(Debug, thiserror::Error)]
#[error("the save image's XML has no disk on {0}: nothing to replace")]
struct NotInSaveImage(Name);

/// The save image's XML with each `OLD` image's path replaced by `NEW`'s. An image the XML
/// does not use is an error: the restore would not test what the scenario says.
fn replace_images(
    plan: &Plan,
    xml: &str,
    map: &BTreeMap<At<Name>, At<Name>>,
) -> Result<String, NotInSaveImage> {
    let mut out = xml.to_string();
    for (old, new) in map {
        let quoted = |n: &Name| {
            format!(
                "'{}'",
                escape(plan.image_path(n).to_string_lossy().into_owned())
            )
        };
        let (from, to) = (quoted(&old.value), quoted(&new.value));
        // libvirt writes attributes in single quotes; a path in double quotes is the same path.
        let from_dq = from.replace('\'', "\"");
        if !out.contains(&from) && !out.contains(&from_dq) {
            return Err(NotInSaveImage(old.value.clone()));
        }
        out = out.replace(&from, &to).replace(&from_dq, &to);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    fn plan(src: &str) -> Plan {
        crate::run::plan::tests::plan(src, None)
    }

    const SRC: &str = "name: x\ndescription: d\nimages: {a.img: {size: 1M}, b.img: {size: 1M}, cd1.iso: {size: 1M}, log.img: {size: 0}}\ndomains:\n  vm1:\n    disks: [a.img, {image: cd1.iso, device: cdrom, target: hdc}]\n    serials:\n      - {type: file, path: log.img, seclabel: {relabel: false}}\n      - {type: unix, mode: bind, path: s.sock, seclabel: {label: 'system_u:object_r:svirt_image_t:s0:c1,c2'}}\n      - {type: pipe, path: p}\n      - {type: pty, device: console}\nsteps:\n  - start: vm1\n  - save: {domain: vm1, to: vm1.save, bypass_cache: true}\n  - restore: {domain: vm1, from: vm1.save, xml: {replace_images: {a.img: b.img}}}\n  - managedsave: {domain: vm1, file: vm1.managed}\n  - dump: {domain: vm1, to: vm1.core, memory_only: true}\n  - change_media: {domain: vm1, target: hdc, eject: true}\n";

    #[test]
    fn every_file_lives_in_the_sandbox_but_the_managed_save_image() {
        let p = plan(SRC);
        let sandbox = Path::new("/var/lib/libvirt/images/selinux-harness-r1");
        let names: Vec<String> = p.files.keys().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            [
                "p.in",
                "p.out",
                "s.sock",
                "vm1.core",
                "vm1.managed",
                "vm1.save"
            ]
        );
        for (n, path) in &p.files {
            if n.as_str() == "vm1.managed" {
                assert_eq!(
                    path,
                    Path::new("/var/lib/libvirt/qemu/save/selinux-harness-r1-vm1.save")
                );
            } else {
                assert_eq!(path.parent(), Some(sandbox), "{n}");
            }
        }
        // An image used as a chardev path stays an image.
        let log: Name = "log.img".parse().unwrap();
        assert_eq!(p.file_path(&log), sandbox.join("log.img"));
    }

    #[test]
    fn domain_xml_has_the_cdrom_and_the_chardevs() {
        let p = plan(SRC);
        insta::assert_snapshot!(p.domains.values().next().unwrap().xml);
    }

    #[test]
    fn explain_shows_the_virsh_commands() {
        let p = plan(SRC);
        let s = load_str(Path::new("t.yaml"), SRC).unwrap();
        let lines: Vec<String> = s.steps[1..]
            .iter()
            .flat_map(|st| p.virsh(&st.action))
            .collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn media_xml_inserts_or_ejects() {
        let p = plan(SRC);
        let vm1: Name = "vm1".parse().unwrap();
        let b: Name = "b.img".parse().unwrap();
        let insert = p.change_media_xml(&vm1, "hdc", Some(&b));
        assert!(insert.contains(r#"device="cdrom""#), "{insert}");
        assert!(
            insert.contains(r#"<source file="/var/lib/libvirt/images/selinux-harness-r1/b.img"/>"#)
        );
        assert!(
            insert.contains(r#"<target dev="hdc" bus="ide"/>"#) && insert.contains("<readonly/>")
        );
        let eject = p.change_media_xml(&vm1, "hdc", None);
        assert!(!eject.contains("<source"), "{eject}");
    }

    #[test]
    fn restore_xml_replaces_only_images_it_uses() {
        let p = plan(SRC);
        let a: Name = "a.img".parse().unwrap();
        let b: Name = "b.img".parse().unwrap();
        let cd: Name = "cd1.iso".parse().unwrap();
        let xml = "<domain><devices><disk><source file='/var/lib/libvirt/images/selinux-harness-r1/a.img'/></disk></devices></domain>";
        let map: BTreeMap<At<Name>, At<Name>> = [(At::new(a.clone()), At::new(b.clone()))].into();
        let out = replace_images(&p, xml, &map).unwrap();
        assert!(
            out.contains("selinux-harness-r1/b.img'") && !out.contains("a.img"),
            "{out}"
        );
        let map: BTreeMap<At<Name>, At<Name>> = [(At::new(cd), At::new(b))].into();
        let e = replace_images(&p, xml, &map).unwrap_err();
        assert!(e.to_string().contains("no disk on cd1.iso"), "{e}");
    }

    #[test]
    fn chardevs_get_their_host_side_in_the_sandbox() {
        let src = "name: x\ndescription: d\ndomains:\n  vm1:\n    serials:\n      - {type: pipe, path: p}\n      - {type: unix, mode: connect, path: c.sock}\n      - {type: unix, mode: bind, path: b.sock}\nsteps: [{start: vm1}]\n";
        let s = load_str(Path::new("t.yaml"), src).unwrap();
        let t = tempfile::tempdir().unwrap();
        let dir = SandboxDir::create(&t.path().join("box"), 0o755).unwrap();
        // Labels cannot be set on a host without SELinux; the FIFOs and the listener are made
        // first, which is what this test looks at.
        let _ = prepare_chardevs(&s, &dir);
        use std::os::unix::fs::FileTypeExt;
        let kind = |n: &str| {
            std::fs::symlink_metadata(t.path().join("box").join(n)).map(|m| m.file_type())
        };
        assert!(kind("p.in").unwrap().is_fifo());
        assert!(
            kind("b.sock").is_err(),
            "QEMU makes a bound socket, not the harness"
        );
    }
}
