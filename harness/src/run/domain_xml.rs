//! The writer behind the libvirt XML the harness sends (a domain, the `<disk>` of a hot-plug or
//! a media change). Elements are written with quick-xml's element builder, so every attribute
//! value and text is escaped by quick-xml, never by hand: a sandbox path or a raw label holding
//! `<`, `&` or a quote stays one value.

use std::io;

use quick_xml::events::BytesText;
use quick_xml::Writer;

pub(super) type XmlWriter = Writer<Vec<u8>>;

/// What `body` writes, indented by two spaces per level.
pub(super) fn render(body: impl FnOnce(&mut XmlWriter) -> io::Result<()>) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // The sink is a Vec, which takes every write: an error here is a bug, not bad input.
    body(&mut w).expect("writing XML into memory cannot fail");
    // Every name, value and text written came in as &str, so the bytes are UTF-8.
    String::from_utf8_lossy(&w.into_inner()).into_owned()
}

/// `<name>text</name>`.
pub(super) fn text_element(w: &mut XmlWriter, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

/// libvirt's spelling of a boolean attribute.
pub(super) fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use quick_xml::events::Event;
    use quick_xml::Reader;

    use crate::run::plan::Plan;
    use crate::scenario::{load_file, load_str, Action};

    /// A document as quick-xml's reader sees it: element names, attributes (unescaped, in
    /// order) and non-blank text (unescaped, trimmed). Quoting, `<a/>` against `<a></a>` and
    /// indentation do not show; any element, attribute or text that differs does.
    #[derive(Debug, PartialEq)]
    enum Node {
        Open(String, Vec<(String, String)>),
        Close(String),
        Text(String),
    }

    fn normalise(xml: &str) -> Vec<Node> {
        let mut r = Reader::from_str(xml);
        r.config_mut().trim_text(true);
        let mut out = Vec::new();
        let open = |e: &quick_xml::events::BytesStart| {
            let attrs = e
                .attributes()
                .map(|a| {
                    let a = a.unwrap_or_else(|e| panic!("bad attribute in {xml}: {e}"));
                    let v = a
                        .unescape_value()
                        .unwrap_or_else(|e| panic!("bad value in {xml}: {e}"));
                    (
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        v.into_owned(),
                    )
                })
                .collect();
            let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
            (name, attrs)
        };
        let mut text = String::new();
        loop {
            let ev = r
                .read_event()
                .unwrap_or_else(|e| panic!("not well-formed: {e}\n{xml}"));
            match &ev {
                Event::Text(t) => {
                    text.push_str(&t.decode().unwrap());
                    continue;
                }
                Event::GeneralRef(g) => {
                    let name = g.decode().unwrap();
                    let c = quick_xml::escape::resolve_predefined_entity(&name)
                        .unwrap_or_else(|| panic!("unknown entity &{name}; in {xml}"));
                    text.push_str(c);
                    continue;
                }
                _ => {}
            }
            if !text.trim().is_empty() {
                out.push(Node::Text(text.trim().to_string()));
            }
            text.clear();
            match ev {
                Event::Start(e) => {
                    let (n, a) = open(&e);
                    out.push(Node::Open(n, a));
                }
                Event::Empty(e) => {
                    let (n, a) = open(&e);
                    out.push(Node::Open(n.clone(), a));
                    out.push(Node::Close(n));
                }
                Event::End(e) => out.push(Node::Close(
                    String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                )),
                Event::Eof => break,
                other => panic!("unexpected {other:?} in {xml}"),
            }
        }
        out
    }

    fn scenario_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::scenario::discover(&[root.join("../scenarios"), root.join("tests/data")]).unwrap()
    }

    /// The normaliser is strict enough to catch a change and blind to quoting and layout.
    #[test]
    fn normalise_sees_values_not_quoting() {
        assert_eq!(
            normalise("<a b='1&amp;2'>\n  <c/>x</a>"),
            normalise("<a b=\"1&#38;2\"><c></c>\n x\n</a>")
        );
        assert_ne!(normalise("<a b='1'/>"), normalise("<a b='2'/>"));
        assert_ne!(normalise("<a b='1'/>"), normalise("<a c='1'/>"));
        assert_ne!(normalise("<a><b/></a>"), normalise("<a><c/></a>"));
        assert_ne!(normalise("<a>x</a>"), normalise("<a>y</a>"));
    }

    /// The quick-xml writer sends libvirt the same elements, attributes and text the
    /// format!-built XML did, for every scenario in the repository.
    #[test]
    fn every_scenario_gets_the_xml_it_got_before() {
        let mut domains = 0;
        let mut devices = 0;
        for file in scenario_files() {
            // Files that must not load (tests/data/broken) have no plan.
            let Ok(loaded) = load_file(&file) else {
                continue;
            };
            let s = &loaded.scenario;
            let plan = Plan::new(s, None, "r1", Path::new("/var/lib/libvirt/images")).unwrap();
            for (n, d) in &s.domains {
                let planned = &plan.domains[n];
                let before = reference::domain_xml(
                    &planned.libvirt_name,
                    &s.name.value,
                    d,
                    &plan.images,
                    &plan.sandbox,
                );
                assert_eq!(
                    normalise(&planned.xml),
                    normalise(&before),
                    "{}: domain {n}\nnow:\n{}\nbefore:\n{before}",
                    file.display(),
                    planned.xml
                );
                domains += 1;
            }
            for step in &s.steps {
                let (now, before) = match &step.action {
                    Action::AttachDisk(a) => (plan.attach_xml(a), reference::attach_xml(&plan, a)),
                    Action::DetachDisk(d) => (
                        plan.detach_xml(&d.target.value),
                        reference::detach_xml(&d.target.value),
                    ),
                    Action::ChangeMedia(c) => {
                        let insert = c.insert.as_ref().map(|i| &i.value);
                        (
                            plan.change_media_xml(&c.domain.value, &c.target.value, insert),
                            reference::change_media_xml(
                                &plan,
                                &c.domain.value,
                                &c.target.value,
                                insert,
                            ),
                        )
                    }
                    _ => continue,
                };
                assert_eq!(
                    normalise(&now),
                    normalise(&before),
                    "{}: {}\nnow:\n{now}\nbefore:\n{before}",
                    file.display(),
                    step.action.keyword()
                );
                devices += 1;
            }
        }
        // The repository's scenarios have dozens of guests and some hot-plugs and media
        // changes; far fewer means the files were not found.
        assert!(
            domains >= 40 && devices >= 5,
            "{domains} domains, {devices} devices"
        );
    }

    /// The XML every scenario in scenarios/ sends libvirt: each guest's domain and each
    /// hot-plug, unplug and media change, in step order, one snapshot per file.
    #[test]
    fn every_scenario_xml_is_pinned() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let files = crate::scenario::discover(std::slice::from_ref(&root)).unwrap();
        let mut domains = 0;
        for file in &files {
            let loaded = load_file(file).unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
            let s = &loaded.scenario;
            let plan = Plan::new(s, None, "r1", Path::new("/var/lib/libvirt/images")).unwrap();
            let mut out = String::new();
            for n in s.domains.keys() {
                out.push_str(&format!(
                    "# domain {n}\n{}\n",
                    plan.domains[n].xml.trim_end()
                ));
                domains += 1;
            }
            for (i, step) in s.steps.iter().enumerate() {
                let xml = match &step.action {
                    Action::AttachDisk(a) => plan.attach_xml(a),
                    Action::DetachDisk(d) => plan.detach_xml(&d.target.value),
                    Action::ChangeMedia(c) => plan.change_media_xml(
                        &c.domain.value,
                        &c.target.value,
                        c.insert.as_ref().map(|i| &i.value),
                    ),
                    _ => continue,
                };
                let keyword = step.action.keyword();
                out.push_str(&format!("# step {} {keyword}\n{}\n", i + 1, xml.trim_end()));
            }
            let rel = file.strip_prefix(&root).unwrap().with_extension("");
            let name = rel.to_string_lossy().replace('/', "__");
            insta::assert_snapshot!(format!("scenario_xml__{name}"), out);
        }
        // Far fewer guests means the files were not found.
        assert!(domains >= 30, "{domains} domains in {} files", files.len());
    }

    /// Text no scenario can carry (the sandbox comes from the images root) and text it can (a
    /// raw label) with every character XML gives a meaning, each read back as written.
    #[test]
    fn hostile_strings_are_escaped() {
        const EVIL: &str = "a<b>&c'd\"e";
        let src = "name: x\ndescription: d\nimages: {a.img: {size: 1M}, cd.iso: {size: 1M}}\ndomains:\n  vm1:\n    disks: [a.img, {image: cd.iso, device: cdrom, target: hdc}]\n    seclabels:\n      - {type: static, model: dac, label: \"a<b>&c'd\\\"e\", imagelabel: '<label>x</label>'}\n    serials: [{type: file, path: log}]\nsteps:\n  - start: vm1\n  - attach_disk: {domain: vm1, image: a.img, target: vdb}\n";
        let s = load_str(Path::new("t.yaml"), src).unwrap();
        let root = PathBuf::from(format!("/tmp/{EVIL}"));
        let plan = Plan::new(&s, None, "r1", &root).unwrap();
        let xml = &plan.domains.values().next().unwrap().xml;
        let dir = format!("{}/selinux-harness-r1", root.display());

        let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let attr = |tag: &str, a: &str| -> Vec<String> {
            doc.descendants()
                .filter(|n| n.has_tag_name(tag))
                .filter_map(|n| n.attribute(a).map(str::to_string))
                .collect()
        };
        assert_eq!(
            attr("source", "file"),
            [format!("{dir}/a.img"), format!("{dir}/cd.iso")]
        );
        assert_eq!(attr("source", "path"), [format!("{dir}/log")]);
        let text = |tag: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        assert_eq!(text("label").as_deref(), Some(EVIL));
        assert_eq!(text("imagelabel").as_deref(), Some("<label>x</label>"));
        // Nothing the strings hold became markup: the raw label's `<label>` is text.
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("label"))
                .count(),
            1
        );
        assert!(
            !xml.contains(EVIL) && xml.contains("&lt;b&gt;&amp;c"),
            "{xml}"
        );

        let Action::AttachDisk(a) = &s.steps[1].action else {
            panic!("step 2 is the attach")
        };
        let disk = plan.attach_xml(a);
        let doc = roxmltree::Document::parse(&disk).unwrap_or_else(|e| panic!("{e}\n{disk}"));
        let file = doc.descendants().find_map(|n| n.attribute("file"));
        assert_eq!(file, Some(format!("{dir}/a.img").as_str()), "{disk}");

        let detach = plan.detach_xml(EVIL);
        let doc = roxmltree::Document::parse(&detach).unwrap_or_else(|e| panic!("{e}\n{detach}"));
        let dev = doc.descendants().find_map(|n| n.attribute("dev"));
        assert_eq!(dev, Some(EVIL), "{detach}");

        let vm1 = "vm1".parse().unwrap();
        let cd = "cd.iso".parse().unwrap();
        let media = plan.change_media_xml(&vm1, EVIL, Some(&cd));
        let doc = roxmltree::Document::parse(&media).unwrap_or_else(|e| panic!("{e}\n{media}"));
        let n = |a: &str| doc.descendants().find_map(|n| n.attribute(a));
        assert_eq!(n("dev"), Some(EVIL), "{media}");
        assert_eq!(n("file"), Some(format!("{dir}/cd.iso").as_str()), "{media}");
    }

    /// The format!-built XML as it was before quick-xml wrote it, kept as the reference the
    /// test above compares against.
    mod reference {
        use super::*;
        use quick_xml::escape::escape;

        use crate::host::layout::MARKER;
        use crate::run::plan::PlannedImage;
        use crate::scenario::{
            At, Chardev, ChardevBackend, ChardevKind, Disk, DiskSeclabel, Domain, LabelType, Name,
            RawSeclabel, Seclabel, UnixMode,
        };

        pub fn attach_xml(plan: &Plan, a: &crate::scenario::AttachDisk) -> String {
            let disk = Disk {
                image: a.image.clone(),
                target: Some(a.target.clone()),
                shareable: a.shareable,
                readonly: a.readonly,
                seclabel: a.seclabel.clone(),
                device: crate::scenario::DiskDevice::Disk,
            };
            disk_xml(
                &disk,
                &plan.images[&a.image.value].path,
                &a.target.value,
                "",
            )
        }

        pub fn detach_xml(target: &str) -> String {
            format!(
                "<disk type='file' device='disk'><target dev='{}' bus='virtio'/></disk>",
                escape(target)
            )
        }

        pub fn change_media_xml(
            plan: &Plan,
            domain: &Name,
            target: &str,
            image: Option<&Name>,
        ) -> String {
            let disk = Disk {
                image: At::new(domain.clone()),
                target: None,
                shareable: false,
                readonly: true,
                seclabel: None,
                device: crate::scenario::DiskDevice::Cdrom,
            };
            cdrom_xml(&disk, image.map(|i| plan.image_path(i)), target, "")
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

        fn raw_seclabel_xml(s: &RawSeclabel) -> String {
            let kind = match s.kind {
                LabelType::Dynamic => "dynamic",
                LabelType::Static => "static",
                LabelType::None => "none",
            };
            let model = escape(s.model.value.as_str());
            let relabel = attr_bool("relabel", s.relabel);
            let mut inner = String::new();
            for (tag, v) in [
                ("label", &s.label),
                ("imagelabel", &s.imagelabel),
                ("baselabel", &s.baselabel),
            ] {
                if let Some(text) = v {
                    inner.push_str(&format!(
                        "\n    <{tag}>{}</{tag}>",
                        escape(text.value.as_str())
                    ));
                }
            }
            if inner.is_empty() {
                format!("  <seclabel type='{kind}' model='{model}'{relabel}/>\n")
            } else {
                format!(
                    "  <seclabel type='{kind}' model='{model}'{relabel}>{inner}\n  </seclabel>\n"
                )
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

        fn disk_xml(d: &Disk, path: &Path, target: &str, indent: &str) -> String {
            if d.device == crate::scenario::DiskDevice::Cdrom {
                return cdrom_xml(d, Some(path), target, indent);
            }
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
                "{indent}<disk type='file' device='disk'>\n{indent}  <driver name='qemu' type='raw'/>\n{indent}  {source}\n{indent}  <target dev='{}' bus='virtio'/>{flags}\n{indent}</disk>",
                escape(target)
            )
        }

        fn cdrom_xml(d: &Disk, path: Option<&Path>, target: &str, indent: &str) -> String {
            let source = match path {
                Some(p) => {
                    let p = escape(p.to_string_lossy().into_owned()).to_string();
                    match d.seclabel.as_ref().map(disk_seclabel_xml) {
                        Some(sl) => format!("\n{indent}  <source file='{p}'>{sl}</source>"),
                        None => format!("\n{indent}  <source file='{p}'/>"),
                    }
                }
                None => String::new(),
            };
            format!(
                "{indent}<disk type='file' device='cdrom'>\n{indent}  <driver name='qemu' type='raw'/>{source}\n{indent}  <target dev='{}' bus='ide'/>\n{indent}  <readonly/>\n{indent}</disk>",
                escape(target)
            )
        }

        fn chardevs_xml(chardevs: &[At<Chardev>], sandbox: &Path, indent: &str) -> Vec<String> {
            let mut serial_port = 0;
            chardevs
                .iter()
                .map(|c| {
                    let c = &c.value;
                    let (element, target) = match c.device {
                        ChardevKind::Serial => {
                            serial_port += 1;
                            ("serial", format!("<target port='{}'/>", serial_port - 1))
                        }
                        ChardevKind::Console => ("console", "<target type='virtio'/>".to_string()),
                    };
                    let kind = match c.backend.value {
                        ChardevBackend::File => "file",
                        ChardevBackend::Unix => "unix",
                        ChardevBackend::Pipe => "pipe",
                        ChardevBackend::Pty => "pty",
                    };
                    let mut attrs = String::new();
                    if let Some(m) = c.mode {
                        attrs.push_str(match m {
                            UnixMode::Bind => " mode='bind'",
                            UnixMode::Connect => " mode='connect'",
                        });
                    }
                    if let Some(p) = &c.path {
                        let path = sandbox.join(p.value.as_str());
                        attrs.push_str(&format!(
                            " path='{}'",
                            escape(path.to_string_lossy().into_owned())
                        ));
                    }
                    let source =
                        match (attrs.is_empty(), c.seclabel.as_ref().map(disk_seclabel_xml)) {
                            (true, None) => String::new(),
                            (_, None) => format!("<source{attrs}/>"),
                            (_, Some(sl)) => format!("<source{attrs}>{sl}</source>"),
                        };
                    format!("{indent}<{element} type='{kind}'>{source}{target}</{element}>")
                })
                .collect()
        }

        pub fn domain_xml(
            name: &str,
            scenario: &Name,
            d: &Domain,
            images: &BTreeMap<Name, PlannedImage>,
            sandbox: &Path,
        ) -> String {
            let mut disks: Vec<String> = d
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
                    disk_xml(&disk, &images[&disk.image.value].path, &target, "    ")
                })
                .collect();
            disks.extend(chardevs_xml(&d.serials, sandbox, "    "));
            let mut seclabel = d
                .seclabel
                .as_ref()
                .map(|s| seclabel_xml(&s.value))
                .unwrap_or_default();
            for raw in &d.seclabels {
                seclabel.push_str(&raw_seclabel_xml(&raw.value));
            }
            format!(
                "<domain type='qemu'>
  <name>{name}</name>
  <description>{MARKER} scenario {scenario}</description>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
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
                disks = disks.join("\n"),
            )
        }
    }
}
