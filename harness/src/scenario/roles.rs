//! The policy's roles for libvirt: the types libvirt gives a guest's QEMU and its images on a
//! target, named by what they are for rather than by what one policy calls them.
//!
//! libvirt does not hard-code svirt_t. `virSecuritySELinuxQEMUInitialize` reads the policy's
//! `contexts/virtual_domain_context` (first line: the domain context; a non-empty second line:
//! the "alt" context) and `contexts/virtual_image_context` (first line: the image context,
//! second: the shared read-only content context); `virSecuritySELinuxGenLabel` takes the alt
//! context for a `<domain type='qemu'>` (TCG) guest when the policy has one, the first line
//! otherwise. Debian's refpolicy lists only svirt_t, so TCG guests run as svirt_t there (and
//! need virt_use_execmem); Fedora's lists svirt_tcg_t second, so they run as svirt_tcg_t. A
//! scenario that says `type: $domain` checks libvirt's behaviour on both; one that says
//! `type: svirt_t` checks a type name.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::context::Context;

/// A role a type plays for libvirt, as a scenario names it (`$domain`, `$image`, `$content`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The type of a guest's QEMU process with a dynamic label (virtual_domain_context).
    Domain,
    /// The type of a guest's own disk images (virtual_image_context, first line).
    Image,
    /// The type of shared read-only content: readonly disks (virtual_image_context, second line).
    Content,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Domain, Role::Image, Role::Content];

    pub fn name(self) -> &'static str {
        match self {
            Role::Domain => "domain",
            Role::Image => "image",
            Role::Content => "content",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.name())
    }
}

/// How libvirt runs a guest: `<domain type='kvm'>` or `<domain type='qemu'>` (TCG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VirtType {
    Kvm,
    Qemu,
}

/// The roles resolved on one target: the contexts libvirt derives its labels from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTypes {
    pub domain: Context,
    pub image: Context,
    pub content: Context,
    /// The virt type `domain` was chosen for.
    pub virt: VirtType,
    /// Which line of virtual_domain_context `domain` came from (1 or 2).
    pub domain_line: usize,
}

/// What is wrong with the text of the policy's virtual_domain_context or
/// virtual_image_context.
#[derive(Debug, thiserror::Error)]
pub enum RolesParseError {
    #[error("virtual_domain_context is empty")]
    NoDomain,
    #[error("virtual_image_context is empty")]
    NoImage,
    #[error("virtual_image_context has no second line (the content context)")]
    NoContent,
    #[error("{file} {text:?} is not a context: {error}")]
    NotAContext {
        file: &'static str,
        text: String,
        error: crate::context::ParseError,
    },
}

impl RoleTypes {
    /// Resolve from the text of virtual_domain_context and virtual_image_context, as libvirt
    /// does: the second domain line for a TCG guest if it is there and not empty, else the first.
    pub fn parse(
        domain_text: &str,
        image_text: &str,
        virt: VirtType,
    ) -> Result<RoleTypes, RolesParseError> {
        let mut domains = domain_text.lines().map(str::trim);
        let first = domains
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(RolesParseError::NoDomain)?;
        let alt = domains.next().filter(|l| !l.is_empty());
        let (line, text) = match (virt, alt) {
            (VirtType::Qemu, Some(alt)) => (2, alt),
            _ => (1, first),
        };
        let parse = |file: &'static str, t: &str| -> Result<Context, RolesParseError> {
            t.parse().map_err(|error| RolesParseError::NotAContext {
                file,
                text: t.to_string(),
                error,
            })
        };
        let mut images = image_text.lines().map(str::trim);
        let image = images
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(RolesParseError::NoImage)?;
        let content = images
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(RolesParseError::NoContent)?;
        Ok(RoleTypes {
            domain: parse("virtual_domain_context", text)?,
            image: parse("virtual_image_context", image)?,
            content: parse("virtual_image_context", content)?,
            virt,
            domain_line: line,
        })
    }

    pub fn get(&self, role: Role) -> &Context {
        match role {
            Role::Domain => &self.domain,
            Role::Image => &self.image,
            Role::Content => &self.content,
        }
    }

    /// `$NAME` -> type, for a `type:` written with a role (`$domain` -> svirt_t); anything
    /// else is returned as it is.
    pub fn type_of<'a>(&'a self, name: &'a str) -> &'a str {
        name.strip_prefix('$')
            .and_then(Role::from_name)
            .map_or(name, |r| self.get(r).kind.as_str())
    }

    /// One line for a report: each role with the type it stands for here, and why.
    pub fn describe(&self) -> String {
        let virt = match self.virt {
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu (TCG)",
        };
        format!(
            "policy roles: $domain = {} (virtual_domain_context line {} for <domain type='{}'>), $image = {}, $content = {} (virtual_image_context)",
            self.domain.kind,
            self.domain_line,
            virt.split(' ').next().unwrap_or(virt),
            self.image.kind,
            self.content.kind,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // As the Debian 12 and 13 guests have them (selinux-policy-default, refpolicy).
    const DEBIAN_DOMAIN: &str = "system_u:system_r:svirt_t:s0\n";
    const DEBIAN_IMAGE: &str =
        "system_u:object_r:svirt_image_t:s0\nsystem_u:object_r:virt_content_t:s0\n";
    // As Fedora's selinux-policy-targeted ships them (contexts/virtual_domain_context,
    // virtual_image_context).
    const FEDORA_DOMAIN: &str = "system_u:system_r:svirt_t:s0\nsystem_u:system_r:svirt_tcg_t:s0\n";
    const FEDORA_IMAGE: &str =
        "system_u:object_r:svirt_image_t:s0\nsystem_u:object_r:virt_content_t:s0\n";

    #[test]
    fn debian_runs_tcg_guests_as_svirt_t() {
        let r = RoleTypes::parse(DEBIAN_DOMAIN, DEBIAN_IMAGE, VirtType::Qemu).unwrap();
        assert_eq!(r.domain.kind, "svirt_t");
        assert_eq!(r.domain_line, 1);
        assert_eq!(r.image.kind, "svirt_image_t");
        assert_eq!(r.content.kind, "virt_content_t");
    }

    #[test]
    fn fedora_runs_tcg_guests_as_svirt_tcg_t_and_kvm_guests_as_svirt_t() {
        let tcg = RoleTypes::parse(FEDORA_DOMAIN, FEDORA_IMAGE, VirtType::Qemu).unwrap();
        assert_eq!(tcg.domain.kind, "svirt_tcg_t");
        assert_eq!(tcg.domain_line, 2);
        assert_eq!(tcg.type_of("$domain"), "svirt_tcg_t");
        assert_eq!(tcg.type_of("svirt_t"), "svirt_t");
        let kvm = RoleTypes::parse(FEDORA_DOMAIN, FEDORA_IMAGE, VirtType::Kvm).unwrap();
        assert_eq!(kvm.domain.kind, "svirt_t");
        assert_eq!(kvm.domain_line, 1);
    }

    #[test]
    fn an_empty_second_line_is_no_alt_context() {
        let r = RoleTypes::parse(
            "system_u:system_r:svirt_t:s0\n\n",
            DEBIAN_IMAGE,
            VirtType::Qemu,
        )
        .unwrap();
        assert_eq!(r.domain.kind, "svirt_t");
    }

    #[test]
    fn broken_files_are_errors_not_guesses() {
        assert!(RoleTypes::parse("", DEBIAN_IMAGE, VirtType::Qemu).is_err());
        assert!(RoleTypes::parse("svirt_t\n", DEBIAN_IMAGE, VirtType::Qemu).is_err());
        assert!(RoleTypes::parse(
            DEBIAN_DOMAIN,
            "system_u:object_r:svirt_image_t:s0\n",
            VirtType::Qemu
        )
        .is_err());
    }

    #[test]
    fn the_description_names_role_and_type() {
        let r = RoleTypes::parse(FEDORA_DOMAIN, FEDORA_IMAGE, VirtType::Qemu).unwrap();
        assert_eq!(
            r.describe(),
            "policy roles: $domain = svirt_tcg_t (virtual_domain_context line 2 for <domain type='qemu'>), $image = svirt_image_t, $content = virt_content_t (virtual_image_context)"
        );
    }
}
