//! From a scenario and a variant to what will be done on the target: real names and paths,
//! the libvirt XML of every domain and disk, the host settings in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quick_xml::escape::escape;

use crate::host::layout::MARKER;
use crate::scenario::{
    Action, Disk, DiskSeclabel, Domain, HostSettings, ImageFormat, LabelType, Name, QemuConfValue,
    Scenario, Seclabel, TargetFile,
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
}

#[derive(Debug, Clone)]
pub struct PlannedImage {
    pub path: PathBuf,
    /// 0 where the scenario gives none (copies, files a step creates, qcow2 over a backing file).
    pub size: u64,
    pub context: Option<crate::context::Context>,
    pub source: ImageSource,
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
        let images: BTreeMap<Name, PlannedImage> = s
            .images
            .iter()
            .map(|(n, i)| {
                let i = &i.value;
                let source = if let Some(f) = i.copy_of {
                    ImageSource::Copy(f)
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
                            (sandbox.join(b.value.as_str()), format)
                        }),
                    }
                };
                (
                    n.clone(),
                    PlannedImage {
                        path: sandbox.join(n.as_str()),
                        size: i.size.map_or(0, |s| s.0),
                        context: i.context.clone(),
                        source,
                    },
                )
            })
            .collect();
        let domains = s
            .domains
            .iter()
            .map(|(n, d)| {
                let libvirt_name = format!("{MARKER}-{run_id}-{n}");
                let xml = domain_xml(&libvirt_name, &s.name.value, d, &images);
                (n.clone(), PlannedDomain { libvirt_name, xml })
            })
            .collect();
        Ok(Plan {
            scenario: s.name.value.to_string(),
            variant: variant.map(str::to_string),
            run_id: run_id.to_string(),
            sandbox,
            images,
            domains,
            qemu_conf,
            booleans,
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
        };
        let img = &self.images[&a.image.value];
        disk_xml(&disk, &img.path, img.format(), &a.target.value, "")
    }

    /// The `<disk>` element that identifies a disk to detach: libvirt matches on the target.
    pub fn detach_xml(&self, target: &str) -> String {
        format!(
            "<disk type='file' device='disk'><target dev='{}' bus='virtio'/></disk>",
            escape(target)
        )
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
                "virsh attach-device {} disk.xml --live   # disk.xml: {}",
                self.domain_name(&a.domain.value),
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

fn attr_bool(name: &str, v: Option<bool>) -> String {
    match v {
        Some(true) => format!(" {name}='yes'"),
        Some(false) => format!(" {name}='no'"),
        None => String::new(),
    }
}

fn seclabel_xml(s: &Seclabel) -> String {
    let kind = match s.kind {
        LabelType::Dynamic => "dynamic",
        LabelType::Static => "static",
        LabelType::None => "none",
    };
    let model = s
        .model
        .as_deref()
        .map(|m| format!(" model='{}'", escape(m)))
        .unwrap_or_else(|| {
            if s.kind == LabelType::None {
                String::new()
            } else {
                " model='selinux'".to_string()
            }
        });
    let mut inner = String::new();
    for (tag, v) in [
        ("label", &s.label),
        ("imagelabel", &s.imagelabel),
        ("baselabel", &s.baselabel),
    ] {
        if let Some(c) = v {
            inner.push_str(&format!("\n    <{tag}>{}</{tag}>", escape(c.to_string())));
        }
    }
    let relabel = attr_bool("relabel", s.relabel);
    if inner.is_empty() {
        format!("  <seclabel type='{kind}'{model}{relabel}/>\n")
    } else {
        format!("  <seclabel type='{kind}'{model}{relabel}>{inner}\n  </seclabel>\n")
    }
}

fn disk_seclabel_xml(s: &DiskSeclabel) -> String {
    let model = escape(s.model.as_deref().unwrap_or("selinux")).to_string();
    let relabel = attr_bool("relabel", s.relabel);
    match &s.label {
        Some(l) => format!(
            "<seclabel model='{model}'{relabel}><label>{}</label></seclabel>",
            escape(l.to_string())
        ),
        None => format!("<seclabel model='{model}'{relabel}/>"),
    }
}

fn disk_xml(d: &Disk, path: &Path, format: ImageFormat, target: &str, indent: &str) -> String {
    let source_inner = d
        .seclabel
        .as_ref()
        .map(disk_seclabel_xml)
        .unwrap_or_default();
    let path = escape(path.to_string_lossy().into_owned()).to_string();
    let source = if source_inner.is_empty() {
        format!("<source file='{path}'/>")
    } else {
        format!("<source file='{path}'>{source_inner}</source>")
    };
    let mut flags = String::new();
    if d.shareable {
        flags.push_str(&format!("\n{indent}  <shareable/>"));
    }
    if d.readonly {
        flags.push_str(&format!("\n{indent}  <readonly/>"));
    }
    format!(
        "{indent}<disk type='file' device='disk'>\n{indent}  <driver name='qemu' type='{}'/>\n{indent}  {source}\n{indent}  <target dev='{}' bus='virtio'/>{flags}\n{indent}</disk>",
        format.as_str(),
        escape(target)
    )
}

/// A guest that never boots an OS: firmware only, enough for libvirt to label, start and
/// hot-plug. The emulator is left to libvirt so the same XML works on Debian and Fedora.
fn domain_xml(
    name: &str,
    scenario: &Name,
    d: &Domain,
    images: &BTreeMap<Name, PlannedImage>,
) -> String {
    let disks: Vec<String> = d
        .disks
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let disk = spec.to_disk();
            let target = disk
                .target
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_else(|| crate::scenario::default_target(i));
            let img = &images[&disk.image.value];
            disk_xml(&disk, &img.path, img.format(), &target, "    ")
        })
        .collect();
    let seclabel = d.seclabel.as_ref().map(seclabel_xml).unwrap_or_default();
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <description>{MARKER} scenario {scenario}</description>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>{boot}<boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
{disks}
    <memballoon model='none'/>
  </devices>
{seclabel}</domain>
",
        name = escape(name),
        scenario = escape(scenario.as_str()),
        mem = d.memory_mib.unwrap_or(64),
        boot = super::plan_boot::os_boot_xml(d, images),
        disks = disks.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    fn plan(src: &str, variant: Option<&str>) -> Plan {
        let s = load_str(Path::new("t.yaml"), src).unwrap();
        Plan::new(&s, variant, "r1", Path::new("/var/lib/libvirt/images")).unwrap()
    }

    #[test]
    fn domain_xml_carries_seclabels() {
        let p = plan(
            "name: x\ndescription: d\nimages: {a.img: {size: 1M}, b.img: {size: 1M}}\ndomains:\n  vm1:\n    seclabel: {type: static, relabel: true, label: 'system_u:system_r:svirt_t:s0:c3,c4'}\n    disks:\n      - a.img\n      - {image: b.img, shareable: true, seclabel: {relabel: false}}\nsteps: [{define: vm1}]\n",
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
}
