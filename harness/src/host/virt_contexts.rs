//! The policy's virtual_domain_context and virtual_image_context on this host: what libvirt
//! derives a guest's labels from (see `scenario::roles`).

use crate::error::IoError;
use crate::scenario::{RoleTypes, VirtType};

/// Why the roles could not be had from this host's policy.
#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error("where is the policy's {what}? {source}")]
    Where {
        what: &'static str,
        #[source]
        source: selinux::errors::Error,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    /// The files do not say what libvirt needs (their text, and what is wrong with it).
    #[error(transparent)]
    Parse(#[from] crate::scenario::RolesParseError),
}

/// The roles as libvirt on this host resolves them for a guest of `virt` type.
pub fn role_types(virt: VirtType) -> Result<RoleTypes, RolesError> {
    let read = |what: &'static str, path: selinux::errors::Result<&'static std::path::Path>| {
        let path = path.map_err(|source| RolesError::Where { what, source })?;
        Ok::<_, RolesError>(
            std::fs::read_to_string(path).map_err(IoError::at("cannot read", path))?,
        )
    };
    let domain = read(
        "virtual_domain_context",
        selinux::path::virtual_domain_context(),
    )?;
    let image = read(
        "virtual_image_context",
        selinux::path::virtual_image_context(),
    )?;
    RoleTypes::parse(&domain, &image, virt).map_err(RolesError::Parse)
}
