//! The `<os>` children that make libvirt label boot files - a directly booted kernel and its
//! initrd, OVMF's loader with an NVRAM file, an ACPI table - and the fw_cfg files of
//! `<sysinfo type='fwcfg'>`.

use std::collections::BTreeMap;
use std::io;

use super::domain_xml::{text_element, XmlWriter};
use super::plan::PlannedImage;
use crate::scenario::{Domain, Name, OVMF_CODE};

/// What goes between `<type>` and `<boot>` (libvirt's schema order: loader, nvram, kernel,
/// initrd). Nothing for the default firmware-only guest.
pub(super) fn os_boot_xml(
    w: &mut XmlWriter,
    d: &Domain,
    images: &BTreeMap<Name, PlannedImage>,
) -> io::Result<()> {
    let path = |n: &Name| images[n].path.to_string_lossy().into_owned();
    if let Some(n) = &d.nvram {
        w.create_element("loader")
            .with_attributes([("readonly", "yes"), ("type", "pflash")])
            .write_text_content(quick_xml::events::BytesText::new(OVMF_CODE))?;
        text_element(w, "nvram", &path(&n.value))?;
    }
    if let Some(n) = &d.kernel {
        text_element(w, "kernel", &path(&n.value))?;
    }
    if let Some(n) = &d.initrd {
        text_element(w, "initrd", &path(&n.value))?;
    }
    if let Some(n) = &d.acpi_slic {
        w.create_element("acpi").write_inner_content(|w| {
            w.create_element("table")
                .with_attribute(("type", "slic"))
                .write_text_content(quick_xml::events::BytesText::new(&path(&n.value)))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// `<sysinfo type='fwcfg'>` with one entry per fw_cfg file; nothing without any.
pub(super) fn fw_cfg_xml(
    w: &mut XmlWriter,
    d: &Domain,
    images: &BTreeMap<Name, PlannedImage>,
) -> io::Result<()> {
    if d.fw_cfg.is_empty() {
        return Ok(());
    }
    w.create_element("sysinfo")
        .with_attribute(("type", "fwcfg"))
        .write_inner_content(|w| {
            for (entry, image) in &d.fw_cfg {
                let file = images[&image.value].path.to_string_lossy().into_owned();
                w.create_element("entry")
                    .with_attributes([("name", entry.value.as_str()), ("file", file.as_str())])
                    .write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::run::plan::{ImageSource, Plan};
    use crate::scenario::{ImageFormat, TargetFile};

    fn plan(src: &str) -> Plan {
        crate::run::plan::tests::plan(src, None)
    }

    #[test]
    fn kernel_initrd_and_nvram_go_into_os_in_schema_order() {
        let p = plan(
            "name: x\ndescription: d\nimages:\n  k: {copy_of: kernel}\n  i: {copy_of: initrd}\n  v: {copy_of: ovmf_vars}\ndomains:\n  vm1: {kernel: k, initrd: i, nvram: v}\nsteps: [{define: vm1}]\n",
        );
        let xml = &p.domains.values().next().unwrap().xml;
        let start = xml.find("<os>").unwrap();
        let end = xml.find("</os>").unwrap() + "</os>".len();
        insta::assert_snapshot!(&xml[start..end]);
        let k: crate::scenario::Name = "k".parse().unwrap();
        assert_eq!(p.images[&k].source, ImageSource::Copy(TargetFile::Kernel));
    }

    #[test]
    fn an_acpi_table_goes_into_os_and_fw_cfg_files_into_sysinfo() {
        let p = plan(
            "name: x\ndescription: d\nimages:\n  slic.bin: {size: 1K}\n  a.bin: {size: 1K}\ndomains:\n  vm1: {acpi_slic: slic.bin, fw_cfg: {opt/org.example/a: a.bin}}\nsteps: [{define: vm1}]\n",
        );
        let xml = &p.domains.values().next().unwrap().xml;
        let start = xml.find("<os>").unwrap();
        let end = xml.find("</sysinfo>").unwrap() + "</sysinfo>".len();
        insta::assert_snapshot!(&xml[start..end]);
    }

    #[test]
    fn a_qcow2_chain_is_made_with_qemu_img_and_told_to_libvirt_as_qcow2() {
        let p = plan(
            "name: x\ndescription: d\nimages:\n  base.qcow2: {size: 16M, format: qcow2}\n  top.qcow2: {format: qcow2, backing: base.qcow2}\n  snap.qcow2: {format: qcow2, create: false}\ndomains:\n  vm1: {disks: [top.qcow2]}\nsteps: [{define: vm1}]\n",
        );
        let cmds: Vec<String> = p
            .images
            .values()
            .filter_map(|i| i.setup_command())
            .collect();
        insta::assert_snapshot!(cmds.join("\n"));
        let xml = &p.domains.values().next().unwrap().xml;
        assert!(
            xml.contains(r#"<driver name="qemu" type="qcow2"/>"#),
            "{xml}"
        );
        let top: crate::scenario::Name = "top.qcow2".parse().unwrap();
        assert_eq!(
            p.images[&top].source,
            ImageSource::New {
                format: ImageFormat::Qcow2,
                backing: Some((
                    "/var/lib/libvirt/images/selinux-harness-r1/base.qcow2".into(),
                    ImageFormat::Qcow2
                ))
            }
        );
    }
}
