//! From a bug report to a scenario: libvirt domain XML, as reports attach it, mapped onto the
//! scenario language - each domain with its `<seclabel>` and file disks, the disks' files as
//! images (one image for a file two domains share), and a start and a destroy step - plus
//! the list of everything the language has no place for, so the writer knows what is lost.
//!
//! The result is a skeleton: it loads (`selinux-harness check` accepts it), but what must hold
//! after each step is for the writer to say.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

use super::Name;

#[derive(Debug, thiserror::Error)]
pub enum FromXmlError {
    #[error("{file}: not well-formed XML at byte {position}: {message}")]
    Xml {
        file: String,
        position: u64,
        message: String,
    },
    #[error(
        "{file}: the root element is <{root}>, not <domain> (save it with `virsh dumpxml NAME`)"
    )]
    NotADomain { file: String, root: String },
}

/// The scenario text, and what could not be mapped (also written into it as comments).
#[derive(Debug, Clone, PartialEq)]
pub struct Skeleton {
    pub yaml: String,
    pub unmapped: Vec<String>,
}

/// A parsed element: enough of a tree for domain XML (no namespaces, no mixed content).
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// An attribute quick-xml cannot read; its text is the message of [`FromXmlError::Xml`].
#[derive(Debug, thiserror::Error)]
enum BadAttribute {
    #[error(transparent)]
    Attr(#[from] quick_xml::events::attributes::AttrError),
    #[error(transparent)]
    Value(#[from] quick_xml::Error),
}

fn parse(file: &str, xml: &str) -> Result<Element, FromXmlError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let err = |reader: &Reader<&[u8]>, message: String| FromXmlError::Xml {
        file: file.to_string(),
        position: reader.buffer_position(),
        message,
    };
    let open = |e: &quick_xml::events::BytesStart| -> Result<Element, BadAttribute> {
        let mut el = Element {
            name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            ..Element::default()
        };
        for a in e.attributes() {
            let a = a?;
            let value = a.unescape_value()?;
            el.attrs.push((
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                value.into_owned(),
            ));
        }
        Ok(el)
    };
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event() {
            Ok(XmlEvent::Start(e)) => {
                let el = open(&e).map_err(|m| err(&reader, m.to_string()))?;
                stack.push(el);
            }
            Ok(XmlEvent::Empty(e)) => {
                let el = open(&e).map_err(|m| err(&reader, m.to_string()))?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(el);
                }
            }
            Ok(XmlEvent::End(_)) => {
                let el = stack.pop().filter(|_| !stack.is_empty());
                match (el, stack.last_mut()) {
                    (Some(el), Some(parent)) => parent.children.push(el),
                    _ => return Err(err(&reader, "unbalanced end tag".into())),
                }
            }
            Ok(XmlEvent::Text(t)) => {
                let text = t.decode().map_err(|e| err(&reader, e.to_string()))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(text.trim());
                }
            }
            Ok(XmlEvent::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(err(&reader, e.to_string())),
        }
    }
    let mut doc = stack.pop().unwrap_or_default();
    if !stack.is_empty() {
        return Err(err(&reader, "unclosed element at end of input".into()));
    }
    let root = doc.children.pop().unwrap_or_default();
    if root.name != "domain" {
        return Err(FromXmlError::NotADomain {
            file: file.to_string(),
            root: root.name,
        });
    }
    Ok(root)
}

/// A string as a YAML scalar that cannot be misread (JSON's quoting is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `s` as a scenario name if it is one, else `fallback`, noting the change.
fn name_or(s: &str, fallback: &str, what: &str, unmapped: &mut Vec<String>) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    match cleaned.parse::<Name>() {
        Ok(n) => n.to_string(),
        Err(_) => {
            unmapped.push(format!("{what} {s:?} renamed to {fallback}"));
            fallback.to_string()
        }
    }
}

/// Megabytes of `<memory unit=...>` (libvirt's default unit is KiB).
fn memory_mib(el: &Element) -> Option<u64> {
    let n: u64 = el.text.parse().ok()?;
    let factor_kib = match el.attr("unit").unwrap_or("KiB") {
        "b" | "bytes" => return Some(n / (1024 * 1024)),
        "KiB" | "k" | "K" => 1,
        "MiB" | "M" => 1024,
        "GiB" | "G" => 1024 * 1024,
        _ => return None,
    };
    Some(n * factor_kib / 1024)
}

const MAPPED_DEVICES: &[&str] = &["disk", "emulator"];
const MAPPED_TOP: &[&str] = &[
    "name",
    "uuid",
    "memory",
    "currentMemory",
    "seclabel",
    "devices",
    "vcpu",
    "os",
    "features",
    "description",
    "title",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "clock",
];

/// Map every domain XML (file name, text) onto one scenario named `name`.
pub fn skeleton(name: &str, files: &[(String, String)]) -> Result<Skeleton, FromXmlError> {
    let mut unmapped = Vec::new();
    // Image name by source path, so a file two domains use is one image.
    let mut images: BTreeMap<String, String> = BTreeMap::new();
    let mut needs_execmem = false;
    let mut domains = String::new();
    let mut domain_names = Vec::new();
    for (i, (file, xml)) in files.iter().enumerate() {
        let dom = parse(file, xml)?;
        let fallback = format!("vm{}", i + 1);
        let libvirt_name = dom.child("name").map(|n| n.text.as_str()).unwrap_or("");
        let dname = name_or(libvirt_name, &fallback, "domain", &mut unmapped);
        if domain_names.contains(&dname) {
            unmapped.push(format!(
                "{file}: a second domain named {dname}, renamed to {fallback}"
            ));
        }
        let dname = if domain_names.contains(&dname) {
            fallback
        } else {
            dname
        };
        domain_names.push(dname.clone());
        if let Some(t) = dom.attr("type").filter(|t| *t != "qemu" && *t != "kvm") {
            unmapped.push(format!(
                "{file}: domain type {t:?} (the harness runs qemu guests)"
            ));
        }
        let mut fields = Vec::new();
        for sl in dom.all("seclabel") {
            match sl.attr("model") {
                None | Some("selinux") => {
                    let static_svirt_t = sl.attr("type") == Some("static")
                        && sl.child("label").is_some_and(|l| {
                            l.text
                                .parse::<crate::context::Context>()
                                .is_ok_and(|c| c.kind == "svirt_t")
                        });
                    needs_execmem |= static_svirt_t;
                    fields.push(format!("seclabel: {}", seclabel(file, sl, &mut unmapped)))
                }
                Some(m) => unmapped.push(format!(
                    "{file}: <seclabel model={m:?}> (only SELinux labels are mapped)"
                )),
            }
        }
        // The harness's guests never boot an OS and run nested in its VM: a report's
        // gigabytes would only make them fail to start there.
        if let Some(m) = dom
            .child("memory")
            .and_then(memory_mib)
            .filter(|m| *m != 64)
        {
            unmapped.push(format!(
                "{file}: memory {m} MiB (the guests get 64 MiB; add memory_mib if it matters)"
            ));
        }
        let mut disks = Vec::new();
        if let Some(devices) = dom.child("devices") {
            for d in &devices.children {
                if d.name == "disk" {
                    if let Some(disk) = disk(file, d, &mut images, &mut unmapped) {
                        disks.push(disk);
                    }
                } else if !MAPPED_DEVICES.contains(&d.name.as_str()) {
                    unmapped.push(format!(
                        "{file}: device <{}> (guests get only their disks)",
                        d.name
                    ));
                }
            }
        }
        for c in &dom.children {
            if !MAPPED_TOP.contains(&c.name.as_str()) {
                unmapped.push(format!("{file}: <{}>", c.name));
            }
        }
        if !disks.is_empty() {
            fields.push(format!("disks: [{}]", disks.join(", ")));
        }
        let _ = writeln!(domains, "  {dname}: {{{}}}", fields.join(", "));
    }

    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Written by `selinux-harness new --from-xml` from {}.",
        files
            .iter()
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    y.push_str("# Add what must hold after each step (`expect:`), then `selinux-harness check`.\n");
    if unmapped.is_empty() {
        y.push_str("# Everything in the XML was mapped.\n");
    } else {
        y.push_str("# Not mapped (the scenario language has no place for it):\n");
        for u in &unmapped {
            let _ = writeln!(y, "#   - {}", u.replace('\n', " "));
        }
    }
    let _ = writeln!(y, "name: {}", quoted(name));
    let _ = writeln!(
        y,
        "description: {}",
        quoted("Skeleton from a bug report's domain XML: say what the report expects to hold.")
    );
    y.push_str("requires: [enforcing, libvirt]\n");
    if needs_execmem {
        // The harness runs guests under TCG, where a static svirt_t label needs execmem.
        y.push_str("host: {booleans: {virt_use_execmem: true}}\n");
    }
    if !images.is_empty() {
        y.push_str("\nimages:\n");
        let mut by_name: Vec<(&String, &String)> = images.iter().map(|(p, n)| (n, p)).collect();
        by_name.sort();
        for (img, path) in by_name {
            let _ = writeln!(y, "  {img}: {{size: 16M}}   # was {path}");
        }
    }
    y.push_str("\ndomains:\n");
    y.push_str(&domains);
    let all = domain_names.join(", ");
    let _ = write!(y, "\nsteps:\n  - start: [{all}]\n  - destroy: [{all}]\n");
    Ok(Skeleton { yaml: y, unmapped })
}

fn seclabel(file: &str, sl: &Element, unmapped: &mut Vec<String>) -> String {
    let mut f = Vec::new();
    let kind = sl.attr("type").unwrap_or("dynamic");
    f.push(format!("type: {}", quoted(kind)));
    if let Some(m) = sl.attr("model") {
        f.push(format!("model: {}", quoted(m)));
    }
    match sl.attr("relabel") {
        Some("yes") => f.push("relabel: true".into()),
        Some("no") => f.push("relabel: false".into()),
        _ => {}
    }
    for key in ["label", "imagelabel", "baselabel"] {
        if let Some(el) = sl.child(key) {
            // A dynamic domain's live XML shows the labels libvirt picked; as input they would
            // pin what the report observed, which is for `expect:` instead.
            if kind == "dynamic" && key != "baselabel" {
                unmapped.push(format!(
                    "{file}: <{key}>{}</{key}> of a dynamic seclabel (the label libvirt picked; compare it in an expect: instead)",
                    el.text
                ));
            } else {
                f.push(format!("{key}: {}", quoted(&el.text)));
            }
        }
    }
    format!("{{{}}}", f.join(", "))
}

fn disk(
    file: &str,
    d: &Element,
    images: &mut BTreeMap<String, String>,
    unmapped: &mut Vec<String>,
) -> Option<String> {
    let kind = d.attr("type").unwrap_or("file");
    let device = d.attr("device").unwrap_or("disk");
    let source = d.child("source");
    let path = source.and_then(|s| s.attr("file"));
    let (Some(path), "file", "disk") = (path, kind, device) else {
        unmapped.push(format!(
            "{file}: <disk type={kind:?} device={device:?}> (only file-backed disks are mapped)"
        ));
        return None;
    };
    let n = images.len() + 1;
    let image = match images.get(path) {
        Some(i) => i.clone(),
        None => {
            let base = path.rsplit('/').next().unwrap_or(path);
            let mut i = name_or(base, &format!("disk{n}.img"), "image", unmapped);
            if images.values().any(|v| *v == i) {
                i = format!("disk{n}.img");
            }
            images.insert(path.to_string(), i.clone());
            i
        }
    };
    let mut f = vec![format!("image: {}", quoted(&image))];
    if let Some(t) = d.child("target").and_then(|t| t.attr("dev")) {
        f.push(format!("target: {}", quoted(t)));
    }
    if d.child("shareable").is_some() {
        f.push("shareable: true".into());
    }
    if d.child("readonly").is_some() {
        f.push("readonly: true".into());
    }
    if let Some(sl) = source.and_then(|s| s.child("seclabel")) {
        let mut s = Vec::new();
        if let Some(m) = sl.attr("model") {
            s.push(format!("model: {}", quoted(m)));
        }
        match sl.attr("relabel") {
            Some("yes") => s.push("relabel: true".into()),
            Some("no") => s.push("relabel: false".into()),
            _ => {}
        }
        if let Some(l) = sl.child("label") {
            s.push(format!("label: {}", quoted(&l.text)));
        }
        f.push(format!("seclabel: {{{}}}", s.join(", ")));
    }
    if let Some(drv) = d
        .child("driver")
        .and_then(|x| x.attr("type"))
        .filter(|t| *t != "raw")
    {
        unmapped.push(format!(
            "{file}: disk {path} has format {drv:?} (images are raw)"
        ));
    }
    Some(format!("{{{}}}", f.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const VM1: &str = "<domain type='kvm'>
  <name>guest one</name>
  <memory unit='KiB'>1048576</memory>
  <seclabel type='dynamic' model='selinux' relabel='yes'>
    <label>system_u:system_r:svirt_t:s0:c1,c2</label>
    <imagelabel>system_u:object_r:svirt_image_t:s0:c1,c2</imagelabel>
  </seclabel>
  <seclabel type='dynamic' model='dac' relabel='yes'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/shared.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='cdrom'><source dev='/dev/sr0'/><target dev='sda'/></disk>
    <interface type='network'><source network='default'/></interface>
  </devices>
</domain>";

    const VM2: &str = "<domain type='kvm'><name>vm2</name>
  <seclabel type='static' model='selinux' relabel='no'>
    <label>system_u:system_r:svirt_t:s0:c5,c6</label>
  </seclabel>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/shared.img'>
        <seclabel model='selinux' relabel='no'/>
      </source>
      <target dev='vdb' bus='virtio'/>
      <shareable/>
    </disk>
  </devices>
</domain>";

    fn files() -> Vec<(String, String)> {
        vec![
            ("vm1.xml".into(), VM1.into()),
            ("vm2.xml".into(), VM2.into()),
        ]
    }

    #[test]
    fn skeleton_loads_and_shares_one_image() {
        let s = skeleton("from-report", &files()).unwrap();
        let loaded = crate::scenario::load_str(Path::new("new.yaml"), &s.yaml)
            .unwrap_or_else(|e| panic!("{e:?}\n{}", s.yaml));
        let sc = &loaded;
        assert_eq!(sc.images.len(), 1, "{}", s.yaml);
        assert_eq!(sc.domains.len(), 2, "{}", s.yaml);
        assert!(
            s.yaml.contains("guest-one: {seclabel: {type: \"dynamic\""),
            "{}",
            s.yaml
        );
        assert!(
            s.yaml
                .contains("label: \"system_u:system_r:svirt_t:s0:c5,c6\""),
            "{}",
            s.yaml
        );
        assert!(s.yaml.contains("shareable: true"), "{}", s.yaml);
        assert!(s.yaml.contains("- start: [guest-one, vm2]"), "{}", s.yaml);
    }

    #[test]
    fn what_is_not_mapped_is_said() {
        let s = skeleton("x", &files()).unwrap();
        let all = s.unmapped.join("\n");
        for part in [
            "model=\"dac\"",
            "device=\"cdrom\"",
            "<interface>",
            "format \"qcow2\"",
            "memory 1024 MiB",
            "<label>system_u:system_r:svirt_t:s0:c1,c2</label> of a dynamic seclabel",
        ] {
            assert!(all.contains(part), "{part:?} missing from\n{all}");
        }
        assert!(s.yaml.contains("# Not mapped"), "{}", s.yaml);
        assert!(!all.contains("emulator"), "{all}");
    }

    #[test]
    fn not_a_domain_is_refused() {
        let e = skeleton("x", &[("net.xml".into(), "<network/>".into())]).unwrap_err();
        assert!(e.to_string().contains("not <domain>"), "{e}");
        let e = skeleton("x", &[("bad.xml".into(), "<domain><name>".into())]).unwrap_err();
        assert!(e.to_string().starts_with("bad.xml: not well-formed"), "{e}");
    }
}
