//! The domain XML of the devices in `scenario::devices`: swtpm's `<tpm>`, file- or memfd-backed
//! `<memoryBacking>`, and image-backed `<memory>` devices with the `<maxMemory>` slots and
//! the NUMA cell libvirt demands for them (libvirt's schema order: maxMemory before memory,
//! memoryBacking after it, cpu after features, the devices in `<devices>`), and virtiofs
//! `<filesystem>`s.

use std::collections::BTreeMap;
use std::io;

use quick_xml::events::BytesText;

use super::domain_xml::{text_element, XmlWriter};
use super::plan::PlannedImage;
use crate::scenario::{Domain, Name};

/// Guest RAM in KiB, as `domain_xml` writes it in MiB.
fn memory_kib(d: &Domain) -> u64 {
    u64::from(d.memory_mib.unwrap_or(64)) * 1024
}

/// A pmem device's size: its whole image, in KiB.
fn pmem_kib(images: &BTreeMap<Name, PlannedImage>, n: &Name) -> u64 {
    images[n].size / 1024
}

/// `<maxMemory>`: room for the RAM and every pmem device, one slot each.
pub(super) fn max_memory_xml(
    w: &mut XmlWriter,
    d: &Domain,
    images: &BTreeMap<Name, PlannedImage>,
) -> io::Result<()> {
    if d.pmem.is_empty() {
        return Ok(());
    }
    let total: u64 = memory_kib(d)
        + d.pmem
            .iter()
            .map(|p| pmem_kib(images, &p.value.image.value))
            .sum::<u64>();
    let slots = d.pmem.len().to_string();
    w.create_element("maxMemory")
        .with_attributes([("slots", slots.as_str()), ("unit", "KiB")])
        .write_text_content(BytesText::new(&total.to_string()))?;
    Ok(())
}

/// `<memoryBacking>` after `<memory>`.
pub(super) fn memory_backing_xml(w: &mut XmlWriter, d: &Domain) -> io::Result<()> {
    let Some(m) = &d.memory_backing else {
        return Ok(());
    };
    w.create_element("memoryBacking").write_inner_content(|w| {
        w.create_element("source")
            .with_attribute(("type", m.value.source.as_str()))
            .write_empty()?;
        w.create_element("access")
            .with_attribute(("mode", m.value.access.as_str()))
            .write_empty()?;
        Ok(())
    })?;
    Ok(())
}

/// `<cpu>` with the one NUMA cell memory devices need.
pub(super) fn cpu_xml(w: &mut XmlWriter, d: &Domain) -> io::Result<()> {
    if d.pmem.is_empty() {
        return Ok(());
    }
    let mem = memory_kib(d).to_string();
    w.create_element("cpu").write_inner_content(|w| {
        w.create_element("numa").write_inner_content(|w| {
            w.create_element("cell")
                .with_attributes([
                    ("id", "0"),
                    ("cpus", "0"),
                    ("memory", mem.as_str()),
                    ("unit", "KiB"),
                ])
                .write_empty()?;
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(())
}

/// The `<tpm>` and `<memory>` devices, inside `<devices>`.
pub(super) fn devices_xml(
    w: &mut XmlWriter,
    d: &Domain,
    images: &BTreeMap<Name, PlannedImage>,
) -> io::Result<()> {
    if let Some(t) = &d.tpm {
        w.create_element("tpm")
            .with_attribute(("model", t.value.model.as_str()))
            .write_inner_content(|w| {
                w.create_element("backend")
                    .with_attributes([("type", "emulator"), ("version", "2.0")])
                    .write_empty()?;
                Ok(())
            })?;
    }
    for f in &d.virtiofs {
        let dir = &images[&f.value.dir.value];
        w.create_element("filesystem")
            .with_attributes([("type", "mount"), ("accessmode", "passthrough")])
            .write_inner_content(|w| {
                w.create_element("driver")
                    .with_attribute(("type", "virtiofs"))
                    .write_empty()?;
                w.create_element("source")
                    .with_attribute(("dir", dir.path.to_string_lossy().as_ref()))
                    .write_empty()?;
                // The mount tag the guest would use; the harness's guests mount nothing.
                w.create_element("target")
                    .with_attribute(("dir", f.value.dir.value.as_str()))
                    .write_empty()?;
                Ok(())
            })?;
    }
    for p in &d.pmem {
        let p = &p.value;
        let img = &images[&p.image.value];
        let size = pmem_kib(images, &p.image.value).to_string();
        w.create_element("memory")
            .with_attributes([("model", p.model.as_str()), ("access", "shared")])
            .write_inner_content(|w| {
                w.create_element("source").write_inner_content(|w| {
                    text_element(w, "path", &img.path.to_string_lossy())
                })?;
                w.create_element("target").write_inner_content(|w| {
                    w.create_element("size")
                        .with_attribute(("unit", "KiB"))
                        .write_text_content(BytesText::new(&size))?;
                    if p.model == crate::scenario::devices::PmemModel::Nvdimm {
                        text_element(w, "node", "0")?;
                    }
                    Ok(())
                })?;
                Ok(())
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    fn xml(src: &str) -> String {
        let p = crate::run::plan::tests::plan(src, None);
        p.domains.values().next().unwrap().xml.clone()
    }

    const HEAD: &str = "name: x\ndescription: d\nimages: {pm.img: {size: 16M}}\ndomains:\n  vm1: ";

    #[test]
    fn a_tpm_is_an_swtpm_emulator() {
        let x = xml(&format!(
            "{HEAD}{{tpm: {{model: tis}}}}\nsteps: [{{start: vm1}}]\n"
        ));
        let doc = roxmltree::Document::parse(&x).unwrap();
        let tpm = doc.descendants().find(|n| n.has_tag_name("tpm")).unwrap();
        assert_eq!(tpm.attribute("model"), Some("tpm-tis"));
        assert_eq!(tpm.parent().unwrap().tag_name().name(), "devices");
        let b = tpm.first_element_child().unwrap();
        assert_eq!(
            (b.attribute("type"), b.attribute("version")),
            (Some("emulator"), Some("2.0"))
        );
        assert!(
            !x.contains("maxMemory") && !x.contains("memoryBacking"),
            "{x}"
        );
    }

    #[test]
    fn file_backed_memory_and_pmem_come_in_schema_order() {
        let x = xml(&format!(
            "{HEAD}{{memory_backing: {{}}, pmem: [{{image: pm.img}}, {{image: pm.img, model: virtio_pmem}}]}}\nsteps: [{{start: vm1}}]\n"
        ));
        let doc = roxmltree::Document::parse(&x).unwrap();
        let top: Vec<&str> = doc
            .root_element()
            .children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        let pos = |t: &str| top.iter().position(|x| *x == t).unwrap();
        assert!(pos("maxMemory") < pos("memory"), "{top:?}");
        assert!(pos("memory") < pos("memoryBacking"), "{top:?}");
        assert!(
            pos("features") < pos("cpu") && pos("cpu") < pos("devices"),
            "{top:?}"
        );
        // 64 MiB of RAM and two 16 MiB devices, one slot each.
        let max = doc
            .descendants()
            .find(|n| n.has_tag_name("maxMemory"))
            .unwrap();
        assert_eq!(
            (max.attribute("slots"), max.text()),
            (Some("2"), Some("98304"))
        );
        let mems: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("memory") && n.attribute("model").is_some())
            .collect();
        assert_eq!(mems.len(), 2);
        assert_eq!(mems[0].attribute("model"), Some("nvdimm"));
        assert_eq!(mems[1].attribute("model"), Some("virtio-pmem"));
        let path = mems[0]
            .descendants()
            .find(|n| n.has_tag_name("path"))
            .unwrap();
        assert_eq!(
            path.text(),
            Some("/var/lib/libvirt/images/selinux-harness-r1/pm.img")
        );
        // Only nvdimm sits on a NUMA node.
        let nodes = doc.descendants().filter(|n| n.has_tag_name("node")).count();
        assert_eq!(nodes, 1);
        let access = doc
            .descendants()
            .find(|n| n.has_tag_name("access"))
            .unwrap();
        assert_eq!(access.attribute("mode"), Some("shared"));
    }
}
