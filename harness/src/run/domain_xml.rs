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
    use std::path::{Path, PathBuf};

    use crate::run::plan::Plan;
    use crate::scenario::{load_file, load_str, Action};

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
}
