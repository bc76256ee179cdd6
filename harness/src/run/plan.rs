//! From a scenario and a variant to what will be done on the target: real names and paths,
//! the libvirt XML of every domain and disk, the host settings in force.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use quick_xml::events::BytesText;

use super::domain_xml::{render, text_element, yes_no, XmlWriter};

use crate::host::layout::MARKER;
use crate::scenario::{
    Action, Disk, DiskSeclabel, Domain, HostSettings, ImageFormat, LabelType, Name, QemuConfValue,
    RawSeclabel, Scenario, Seclabel, TargetFile,
};

#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: String,
    pub variant: Option<String>,
    pub run_id: String,
    /// Directory holding the scenario's images; created by the executor, removed after.
    pub sandbox: PathBuf,
    pub images: BTreeMap<Name, PlannedImage>,
    pub domains: BTreeMap<Name, PlannedDomain>,
    pub qemu_conf: Vec<(String, String)>,
    pub booleans: Vec<(String, bool)>,
    /// Files other than images the scenario names (save files, dumps, chardev paths, a managed
    /// save image), with their paths: all in the sandbox but the managed save image, which
    /// libvirt keeps in its own directory.
    pub files: BTreeMap<Name, PathBuf>,
}

#[derive(Debug, Clone)]
pub struct PlannedImage {
    pub path: PathBuf,
    /// 0 where the scenario gives none (copies, files a step creates, qcow2 over a backing file).
    pub size: u64,
    pub context: Option<crate::context::Context>,
    pub source: ImageSource,
    /// The directory image this file is made in (`in:`), None at the top of the sandbox.
    pub within: Option<Name>,
}

/// How an image comes to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// The harness creates it: a sparse raw file, or qcow2 with qemu-img (maybe over a backing
    /// file of the sandbox, given with its format).
    New {
        format: ImageFormat,
        backing: Option<(PathBuf, ImageFormat)>,
    },
    /// The harness copies one of the target's files.
    Copy(TargetFile),
    /// A step creates it (a snapshot's overlay, a block copy's destination).
    ByStep,
    /// The harness makes an empty directory (a virtiofs export); files `in` it come after it.
    Directory,
}

impl PlannedImage {
    /// The format libvirt is told (`<driver type=...>`).
    pub fn format(&self) -> ImageFormat {
        match &self.source {
            ImageSource::New { format, .. } => *format,
            _ => ImageFormat::Raw,
        }
    }

    /// The shell command that makes the image by hand (`explain`, repro bundles); None for a
    /// file a step creates.
    pub fn setup_command(&self) -> Option<String> {
        let path = self.path.display();
        Some(match &self.source {
            ImageSource::New {
                format: ImageFormat::Raw,
                ..
            } => format!("truncate -s {} {path}", self.size),
            ImageSource::New {
                format: ImageFormat::Qcow2,
                backing,
            } => {
                let mut c = "qemu-img create -f qcow2".to_string();
                if let Some((b, f)) = backing {
                    c.push_str(&format!(" -b {} -F {}", b.display(), f.as_str()));
                }
                c.push_str(&format!(" {path}"));
                if self.size > 0 {
                    c.push_str(&format!(" {}", self.size));
                }
                c
            }
            ImageSource::Copy(f) => {
                format!("cp {} {path}", f.path("$(uname -r)").display())
            }
            ImageSource::Directory => format!("mkdir {path}"),
            ImageSource::ByStep => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PlannedDomain {
    /// The libvirt domain name: the scenario's name with the run's prefix, so runs never
    /// collide with each other or with the host's own guests.
    pub libvirt_name: String,
    pub xml: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("scenario `{scenario}` has no variant `{variant}` (it has: {known})")]
    UnknownVariant {
        scenario: String,
        variant: String,
        known: String,
    },
}

impl Plan {
    /// `images_root` is where sandboxes go (libvirt's images directory, so files get the
    /// labels libvirt expects there).
    pub fn new(
        s: &Scenario,
        variant: Option<&str>,
        run_id: &str,
        images_root: &Path,
    ) -> Result<Plan, PlanError> {
        let mut settings = vec![&s.host];
        if let Some(v) = variant {
            let found = s.variants.iter().find(|(k, _)| k.as_str() == v);
            match found {
                Some((_, h)) => settings.push(h),
                None => {
                    return Err(PlanError::UnknownVariant {
                        scenario: s.name.value.to_string(),
                        variant: v.to_string(),
                        known: s
                            .variants
                            .keys()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
        let (qemu_conf, booleans) = merge(&settings);
        let sandbox = images_root.join(format!("{MARKER}-{run_id}"));
        // A file `in` a directory image sits one level down (validation keeps it to one).
        let image_path = |n: &Name| match s.images.get(n).and_then(|i| i.value.within.as_ref()) {
            Some(dir) => sandbox.join(dir.value.as_str()).join(n.as_str()),
            None => sandbox.join(n.as_str()),
        };
        let images: BTreeMap<Name, PlannedImage> = s
            .images
            .iter()
            .map(|(n, i)| {
                let i = &i.value;
                let source = if let Some(f) = i.copy_of {
                    ImageSource::Copy(f)
                } else if i.directory {
                    ImageSource::Directory
                } else if !i.create {
                    ImageSource::ByStep
                } else {
                    ImageSource::New {
                        format: i.format,
                        backing: i.backing.as_ref().map(|b| {
                            let format = s
                                .images
                                .get(&b.value)
                                .map_or(ImageFormat::Raw, |bi| bi.value.format);
                            (image_path(&b.value), format)
                        }),
                    }
                };
                (
                    n.clone(),
                    PlannedImage {
                        path: image_path(n),
                        size: i.size.map_or(0, |s| s.0),
                        context: i.context.clone(),
                        source,
                        within: i.within.as_ref().map(|d| d.value.clone()),
                    },
                )
            })
            .collect();
        let domains: BTreeMap<Name, PlannedDomain> = s
            .domains
            .iter()
            .map(|(n, d)| {
                let libvirt_name = format!("{MARKER}-{run_id}-{n}");
                let xml = domain_xml(&libvirt_name, &s.name.value, d, &images, &sandbox);
                (n.clone(), PlannedDomain { libvirt_name, xml })
            })
            .collect();
        let files = super::operations::planned_files(s, &sandbox, &domains);
        Ok(Plan {
            scenario: s.name.value.to_string(),
            variant: variant.map(str::to_string),
            run_id: run_id.to_string(),
            sandbox,
            images,
            domains,
            qemu_conf,
            booleans,
            files,
        })
    }

    /// The images in the order they are made: every backing file before its overlays.
    pub fn images_in_creation_order(&self) -> Vec<(&Name, &PlannedImage)> {
        super::image_make::creation_order(&self.images)
            .into_iter()
            .map(|n| (n, &self.images[n]))
            .collect()
    }

    pub fn image_path(&self, n: &Name) -> &Path {
        &self.images[n].path
    }

    pub fn domain_name(&self, n: &Name) -> &str {
        &self.domains[n].libvirt_name
    }

    /// The `<disk>` element a live attach sends.
    pub fn attach_xml(&self, a: &crate::scenario::AttachDisk) -> String {
        let disk = Disk {
            image: a.image.clone(),
            target: Some(a.target.clone()),
            shareable: a.shareable,
            readonly: a.readonly,
            seclabel: a.seclabel.clone(),
            device: crate::scenario::DiskDevice::Disk,
        };
        let img = &self.images[&a.image.value];
        render(|w| disk_xml(w, &disk, &img.path, img.format(), &a.target.value))
    }

    /// The `<disk>` element that identifies a disk to detach: libvirt matches on the target.
    pub fn detach_xml(&self, target: &str) -> String {
        render(|w| {
            w.create_element("disk")
                .with_attributes([("type", "file"), ("device", "disk")])
                .write_inner_content(|w| {
                    w.create_element("target")
                        .with_attributes([("dev", target), ("bus", "virtio")])
                        .write_empty()?;
                    Ok(())
                })?;
            Ok(())
        })
    }

    /// The commands a human would type to do the same step by hand.
    pub fn virsh(&self, action: &Action) -> Vec<String> {
        let names = |t: &crate::scenario::Targets| -> Vec<String> {
            t.names()
                .iter()
                .map(|n| self.domain_name(&n.value).to_string())
                .collect()
        };
        match action {
            Action::Define(t) => names(t)
                .into_iter()
                .map(|n| format!("virsh define {n}.xml"))
                .collect(),
            Action::Start(t) => names(t)
                .into_iter()
                .map(|n| format!("virsh start {n}"))
                .collect(),
            Action::Reset(t) => names(t)
                .into_iter()
                .map(|n| format!("virsh reset {n}"))
                .collect(),
            Action::Destroy(t) => names(t)
                .into_iter()
                .map(|n| format!("virsh destroy {n}"))
                .collect(),
            Action::Undefine(t) => names(t)
                .into_iter()
                .map(|n| format!("virsh undefine {n}"))
                .collect(),
            Action::AttachDisk(a) => vec![format!(
                "virsh attach-device {} disk.xml {}   # disk.xml: {}",
                self.domain_name(&a.domain.value),
                if a.config { "--config" } else { "--live" },
                self.attach_xml(a).replace('\n', " ")
            )],
            Action::DetachDisk(d) => vec![format!(
                "virsh detach-disk {} {} {}",
                self.domain_name(&d.domain.value),
                d.target.value,
                if d.live { "--live" } else { "--config" }
            )],
            Action::Relabel(r) => vec![format!(
                "chcon {} {}",
                r.context,
                self.image_path(&r.image.value).display()
            )],
            Action::Probe(p) => vec![format!(
                "runcon {} qemu_exec_t-labelled-probe {} {}",
                p.context,
                match p.access {
                    crate::scenario::Access::Read => "--read",
                    crate::scenario::Access::Write => "--write",
                    crate::scenario::Access::Getattr => "--getattr",
                },
                self.image_path(&p.image.value).display()
            )],
            Action::Setxattr(x) => vec![format!(
                "setfattr -n {} -v '{}' {}",
                x.name.full(),
                x.value.0,
                self.image_path(&x.image.value).display()
            )],
            Action::Rmxattr(x) => vec![format!(
                "setfattr -x {} {}",
                x.name.full(),
                self.image_path(&x.image.value).display()
            )],
            Action::RestartDaemon(r) => super::daemon_restart::restart_commands(r),
            Action::Save(_)
            | Action::Restore(_)
            | Action::Managedsave(_)
            | Action::Dump(_)
            | Action::ChangeMedia(_) => self.virsh_operation(action),
            Action::SnapshotCreate(_)
            | Action::Blockcommit(_)
            | Action::Blockcopy(_)
            | Action::BlockJob(_) => super::blockjob::virsh(self, action).unwrap_or_default(),
        }
    }
}

type Settings = (Vec<(String, String)>, Vec<(String, bool)>);

/// Later settings win: the variant's over the scenario's `host`.
fn merge(settings: &[&HostSettings]) -> Settings {
    let mut q: BTreeMap<String, String> = BTreeMap::new();
    let mut b: BTreeMap<String, bool> = BTreeMap::new();
    for s in settings {
        for (k, v) in &s.qemu_conf {
            q.insert(k.value.clone(), qemu_conf_value(v));
        }
        for (k, v) in &s.booleans {
            b.insert(k.value.clone(), *v);
        }
    }
    (q.into_iter().collect(), b.into_iter().collect())
}

fn qemu_conf_value(v: &QemuConfValue) -> String {
    v.to_string()
}

/// The `relabel='yes|no'` attribute, when the scenario sets it.
fn relabel_attr(v: Option<bool>) -> Option<(&'static str, &'static str)> {
    v.map(|v| ("relabel", yes_no(v)))
}

fn label_type(k: LabelType) -> &'static str {
    match k {
        LabelType::Dynamic => "dynamic",
        LabelType::Static => "static",
        LabelType::None => "none",
    }
}

/// A domain-level `<seclabel>` with its labels as children, those present in libvirt's order.
fn seclabel_element(
    w: &mut XmlWriter,
    kind: LabelType,
    model: Option<&str>,
    relabel: Option<bool>,
    labels: [(&str, Option<String>); 3],
) -> io::Result<()> {
    let mut e = w
        .create_element("seclabel")
        .with_attribute(("type", label_type(kind)));
    if let Some(m) = model {
        e = e.with_attribute(("model", m));
    }
    if let Some(r) = relabel_attr(relabel) {
        e = e.with_attribute(r);
    }
    if labels.iter().all(|(_, v)| v.is_none()) {
        e.write_empty()?;
        return Ok(());
    }
    e.write_inner_content(|w| {
        for (tag, v) in &labels {
            if let Some(text) = v {
                text_element(w, tag, text)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

fn seclabel_xml(w: &mut XmlWriter, s: &Seclabel) -> io::Result<()> {
    let model = match (&s.model, s.kind) {
        (Some(m), _) => Some(m.as_str()),
        (None, LabelType::None) => None,
        (None, _) => Some("selinux"),
    };
    let text = |c: &Option<crate::context::Context>| c.as_ref().map(|c| c.to_string());
    seclabel_element(
        w,
        s.kind,
        model,
        s.relabel,
        [
            ("label", text(&s.label)),
            ("imagelabel", text(&s.imagelabel)),
            ("baselabel", text(&s.baselabel)),
        ],
    )
}

/// Labels as text, escaped for XML and otherwise as written: libvirt is the one to parse them.
fn raw_seclabel_xml(w: &mut XmlWriter, s: &RawSeclabel) -> io::Result<()> {
    let text = |t: &Option<crate::scenario::At<String>>| t.as_ref().map(|t| t.value.clone());
    seclabel_element(
        w,
        s.kind,
        Some(s.model.value.as_str()),
        s.relabel,
        [
            ("label", text(&s.label)),
            ("imagelabel", text(&s.imagelabel)),
            ("baselabel", text(&s.baselabel)),
        ],
    )
}

pub(super) fn disk_seclabel_xml(w: &mut XmlWriter, s: &DiskSeclabel) -> io::Result<()> {
    let mut e = w
        .create_element("seclabel")
        .with_attribute(("model", s.model.as_deref().unwrap_or("selinux")));
    if let Some(r) = relabel_attr(s.relabel) {
        e = e.with_attribute(r);
    }
    match &s.label {
        Some(l) => e.write_inner_content(|w| text_element(w, "label", &l.to_string()))?,
        None => e.write_empty()?,
    };
    Ok(())
}

/// `<source file=PATH>`, holding the disk's own seclabel if it has one.
pub(super) fn file_source_xml(
    w: &mut XmlWriter,
    path: &Path,
    seclabel: Option<&DiskSeclabel>,
) -> io::Result<()> {
    let e = w
        .create_element("source")
        .with_attribute(("file", path.to_string_lossy().as_ref()));
    match seclabel {
        Some(sl) => e.write_inner_content(|w| disk_seclabel_xml(w, sl))?,
        None => e.write_empty()?,
    };
    Ok(())
}

pub(super) fn disk_xml(
    w: &mut XmlWriter,
    d: &Disk,
    path: &Path,
    format: ImageFormat,
    target: &str,
) -> io::Result<()> {
    if d.device == crate::scenario::DiskDevice::Cdrom {
        return super::operations::cdrom_xml(w, d, Some(path), target);
    }
    w.create_element("disk")
        .with_attributes([("type", "file"), ("device", "disk")])
        .write_inner_content(|w| {
            w.create_element("driver")
                .with_attributes([("name", "qemu"), ("type", format.as_str())])
                .write_empty()?;
            file_source_xml(w, path, d.seclabel.as_ref())?;
            w.create_element("target")
                .with_attributes([("dev", target), ("bus", "virtio")])
                .write_empty()?;
            if d.shareable {
                w.create_element("shareable").write_empty()?;
            }
            if d.readonly {
                w.create_element("readonly").write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

/// A guest that never boots an OS: firmware only, enough for libvirt to label, start and
/// hot-plug. The emulator is left to libvirt so the same XML works on Debian and Fedora.
/// How every guest of a plan runs: `<domain type='qemu'>` (TCG). The VM target has no KVM inside
/// its guest, and one virt type keeps `$domain` one type for the whole run.
pub const VIRT_TYPE: crate::scenario::VirtType = crate::scenario::VirtType::Qemu;

fn domain_xml(
    name: &str,
    scenario: &Name,
    d: &Domain,
    images: &BTreeMap<Name, PlannedImage>,
    sandbox: &Path,
) -> String {
    let mut xml = render(|w| {
        w.create_element("domain")
            .with_attribute(("type", "qemu"))
            .write_inner_content(|w| {
                text_element(w, "name", name)?;
                text_element(w, "description", &format!("{MARKER} scenario {scenario}"))?;
                super::plan_devices::max_memory_xml(w, d, images)?;
                let mem = d.memory_mib.unwrap_or(64).to_string();
                w.create_element("memory")
                    .with_attribute(("unit", "MiB"))
                    .write_text_content(BytesText::new(&mem))?;
                super::plan_devices::memory_backing_xml(w, d)?;
                text_element(w, "vcpu", "1")?;
                w.create_element("os").write_inner_content(|w| {
                    w.create_element("type")
                        .with_attributes([("arch", "x86_64"), ("machine", "pc")])
                        .write_text_content(BytesText::new("hvm"))?;
                    super::plan_boot::os_boot_xml(w, d, images)?;
                    w.create_element("boot")
                        .with_attribute(("dev", "hd"))
                        .write_empty()?;
                    Ok(())
                })?;
                super::plan_boot::fw_cfg_xml(w, d, images)?;
                w.create_element("features").write_inner_content(|w| {
                    w.create_element("acpi").write_empty()?;
                    Ok(())
                })?;
                super::plan_devices::cpu_xml(w, d)?;
                w.create_element("devices").write_inner_content(|w| {
                    for (i, spec) in d.disks.iter().enumerate() {
                        let disk = spec.to_disk();
                        let target = disk
                            .target
                            .as_ref()
                            .map(|t| t.value.clone())
                            .unwrap_or_else(|| crate::scenario::default_target(i));
                        let img = &images[&disk.image.value];
                        disk_xml(w, &disk, &img.path, img.format(), &target)?;
                    }
                    super::operations::chardevs_xml(w, &d.serials, sandbox)?;
                    super::plan_devices::devices_xml(w, d, images)?;
                    w.create_element("memballoon")
                        .with_attribute(("model", "none"))
                        .write_empty()?;
                    Ok(())
                })?;
                if let Some(s) = &d.seclabel {
                    seclabel_xml(w, &s.value)?;
                }
                for raw in &d.seclabels {
                    raw_seclabel_xml(w, &raw.value)?;
                }
                Ok(())
            })?;
        Ok(())
    });
    xml.push('\n');
    xml
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scenario::load_str;

    /// The plan of a scenario given as text (run r1, the usual images root): shared by the
    /// run's test modules.
    pub(crate) fn plan(src: &str, variant: Option<&str>) -> Plan {
        let s = load_str(Path::new("t.yaml"), src).unwrap();
        Plan::new(&s, variant, "r1", Path::new("/var/lib/libvirt/images")).unwrap()
    }

    #[test]
    fn domain_xml_carries_seclabels() {
        let p = plan(
            "name: x\ndescription: d\nhost: {booleans: {virt_use_execmem: true}}\nimages: {a.img: {size: 1M}, b.img: {size: 1M}}\ndomains:\n  vm1:\n    seclabel: {type: static, relabel: true, label: 'system_u:system_r:svirt_t:s0:c3,c4'}\n    disks:\n      - a.img\n      - {image: b.img, shareable: true, seclabel: {relabel: false}}\nsteps: [{define: vm1}]\n",
            None,
        );
        insta::assert_snapshot!(p.domains.values().next().unwrap().xml);
    }

    #[test]
    fn variant_settings_override_host_settings() {
        let src = "name: x\ndescription: d\nhost: {qemu_conf: {remember_owner: 1, security_default_confined: 1}}\nvariants:\n  off: {qemu_conf: {remember_owner: 0}, booleans: {virt_use_nfs: true}}\n  on: {}\ndomains: {vm1: {}}\nsteps: [{define: vm1}]\n";
        let p = plan(src, Some("off"));
        assert_eq!(
            p.qemu_conf,
            vec![
                ("remember_owner".into(), "0".into()),
                ("security_default_confined".into(), "1".into())
            ]
        );
        assert_eq!(p.booleans, vec![("virt_use_nfs".into(), true)]);
        let p = plan(src, Some("on"));
        assert_eq!(p.qemu_conf[0], ("remember_owner".into(), "1".into()));
        let s = load_str(Path::new("t.yaml"), src).unwrap();
        let err = Plan::new(&s, Some("nope"), "r", Path::new("/tmp")).unwrap_err();
        assert!(err.to_string().contains("it has: off, on"), "{err}");
    }

    #[test]
    fn names_and_paths_are_prefixed_and_sandboxed() {
        let p = plan(
            "name: x\ndescription: d\nimages: {a.img: {size: 16M}}\ndomains: {vm1: {disks: [a.img]}}\nsteps: [{define: vm1}]\n",
            None,
        );
        let n: Name = "vm1".parse().unwrap();
        assert_eq!(p.domain_name(&n), "selinux-harness-r1-vm1");
        let a: Name = "a.img".parse().unwrap();
        assert_eq!(
            p.image_path(&a),
            Path::new("/var/lib/libvirt/images/selinux-harness-r1/a.img")
        );
        assert_eq!(p.images[&a].size, 16 << 20);
    }

    /// Raw seclabels follow the checked one, their text escaped for XML but otherwise as
    /// written: a DAC owner, or a label libvirt must refuse.
    #[test]
    fn raw_seclabels_follow_the_domain_seclabel_as_written() {
        let p = plan(
            "name: x\ndescription: d\ndomains:\n  vm1:\n    seclabel: {type: dynamic}\n    seclabels:\n      - {type: static, model: dac, relabel: false, label: '+0:+0'}\n      - {type: dynamic, model: selinux, baselabel: 'a<b&c'}\nsteps: [{define: vm1}]\n",
            None,
        );
        let xml = &p.domains.values().next().unwrap().xml;
        let at = |needle: &str| {
            xml.find(needle)
                .unwrap_or_else(|| panic!("{needle} not in {xml}"))
        };
        let first = at(r#"<seclabel type="dynamic" model="selinux"/>"#);
        let dac = at(r#"<seclabel type="static" model="dac" relabel="no">
    <label>+0:+0</label>
  </seclabel>"#);
        let raw = at(r#"<seclabel type="dynamic" model="selinux">
    <baselabel>a&lt;b&amp;c</baselabel>"#);
        assert!(first < dac && dac < raw, "{xml}");
    }
}
