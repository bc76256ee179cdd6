//! The policy's virtual_domain_context and virtual_image_context on this host: what libvirt
//! derives a guest's labels from (see `scenario::roles`).

use crate::scenario::{RoleTypes, VirtType};

/// The roles as libvirt on this host resolves them for a guest of `virt` type.
pub fn role_types(virt: VirtType) -> Result<RoleTypes, String> {
    let read = |what: &str, path: selinux::errors::Result<&'static std::path::Path>| {
        let path = path.map_err(|e| format!("where is the policy's {what}? {e}"))?;
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let domain = read(
        "virtual_domain_context",
        selinux::path::virtual_domain_context(),
    )?;
    let image = read(
        "virtual_image_context",
        selinux::path::virtual_image_context(),
    )?;
    RoleTypes::parse(&domain, &image, virt)
}
