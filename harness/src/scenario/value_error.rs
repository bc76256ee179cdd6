//! Why a value written in a scenario (a name, a capture reference, a file, an attribute, an
//! owner, a check key) does not parse. Its text is the message of the scenario's diagnostic,
//! which adds file:line:column; the parsers are `FromStr`, called by serde.

use crate::selinux_ops::REMEMBER_PREFIX;

use super::files::XATTR_NAMES;

/// What the scenario may name where it names a file.
const FILE_REF_HELP: &str = "name one of the scenario's images (vm1.img) or a file of a guest's runtime directory ($vm1.libdir, $vm1.libdir/master-key.aes), of its swtpm ($vm1.swtpmdir/tpm2, $vm1.swtpmlog), of its file-backed memory ($vm1.ramdir) or its virtiofsd's pid file ($vm1.fspid)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid name {0:?}: use 1-40 letters, digits, '_', '.', '-', starting with a letter (no '..', no '/')")]
    Name(String),
    #[error("a capture reference starts with $")]
    NoDollar,
    #[error("unknown capture field {field:?} in {text:?}: use $NAME, $NAME.label, $NAME.imagelabel, $NAME.type or $NAME.imagelabel.type")]
    CaptureField { field: String, text: String },
    #[error("{text:?}: ${name} is a policy role and already a type; write ${name}")]
    RoleField { text: String, name: String },
    #[error("{0:?} is not a check key")]
    CheckKey(String),
    #[error("{0:?}: a scenario may not name a host path; {FILE_REF_HELP}")]
    HostPath(String),
    /// Not an image name: why, and what a file may be.
    #[error("{0}; {FILE_REF_HELP}")]
    NotAFile(Box<ValueError>),
    #[error("{0:?}: {FILE_REF_HELP}")]
    NotLibdir(String),
    #[error("{0:?}: the part after $DOMAIN.libdir/ (or .swtpmdir/, .ramdir/) must be a relative path of letters, digits, '.', '_', '-' (no '..', no empty part)")]
    LibdirPath(String),
    #[error("{0:?}: $DOMAIN.swtpmlog is one file, as is $DOMAIN.fspid; nothing lies below them (write $DOMAIN.swtpmlog or $DOMAIN.fspid)")]
    SwtpmlogPath(String),
    #[error("unknown remembered-owner attribute {0:?}: use one of {names} (short for {REMEMBER_PREFIX}NAME)", names = XATTR_NAMES.join(", "))]
    XattrName(String),
    #[error("attribute value {0:?}: give 1-255 printable characters")]
    XattrValue(String),
    #[error("owner {0:?}: write user:group, e.g. libvirt-qemu:libvirt-qemu or root:root")]
    OwnerShape(String),
    #[error(
        "owner {0:?}: user and group are account names or numbers (letters, digits, '_', '.', '-')"
    )]
    OwnerNames(String),
    /// A per-device seclabel's label that is neither `user:group` nor a valid context.
    #[error(
        "invalid context: {0} (a label is a context for model selinux, user:group for model dac)"
    )]
    DeviceLabel(String),
}

#[cfg(test)]
mod tests {
    use crate::scenario::{CaptureRef, CheckKey, FileRef, Name, Owner, XattrName};

    fn why<T: std::str::FromStr<Err = super::ValueError>>(s: &str) -> String {
        match s.parse::<T>() {
            Ok(_) => panic!("{s:?} parsed"),
            Err(e) => e.to_string(),
        }
    }

    /// The diagnostics' texts, as the parsers wrote them when they returned strings.
    #[test]
    fn each_refusal_says_what_to_write() {
        let help = super::FILE_REF_HELP;
        assert_eq!(
            why::<Name>("1a"),
            "invalid name \"1a\": use 1-40 letters, digits, '_', '.', '-', starting with a letter (no '..', no '/')"
        );
        assert_eq!(
            why::<CaptureRef>("vm1"),
            "a capture reference starts with $"
        );
        assert_eq!(
            why::<CaptureRef>("$vm1.x"),
            "unknown capture field \"x\" in \"$vm1.x\": use $NAME, $NAME.label, $NAME.imagelabel, $NAME.type or $NAME.imagelabel.type"
        );
        assert_eq!(
            why::<CaptureRef>("$image.type"),
            "\"$image.type\": $image is a policy role and already a type; write $image"
        );
        assert_eq!(why::<CheckKey>("nope"), "\"nope\" is not a check key");
        assert_eq!(
            why::<FileRef>("/etc/shadow"),
            format!("\"/etc/shadow\": a scenario may not name a host path; {help}")
        );
        assert_eq!(
            why::<FileRef>("1.img"),
            format!("{}; {help}", why::<Name>("1.img"))
        );
        assert_eq!(
            why::<FileRef>("$vm1.rundir"),
            format!("\"$vm1.rundir\": {help}")
        );
        assert_eq!(
            why::<FileRef>("$vm1.libdir/../x"),
            "\"$vm1.libdir/../x\": the part after $DOMAIN.libdir/ (or .swtpmdir/, .ramdir/) must be a relative path of letters, digits, '.', '_', '-' (no '..', no empty part)"
        );
        assert_eq!(
            why::<XattrName>("foo"),
            format!(
                "unknown remembered-owner attribute \"foo\": use one of {} (short for trusted.libvirt.security.NAME)",
                super::XATTR_NAMES.join(", ")
            )
        );
        assert_eq!(
            why::<Owner>("root"),
            "owner \"root\": write user:group, e.g. libvirt-qemu:libvirt-qemu or root:root"
        );
        assert_eq!(
            why::<Owner>("ro ot:root"),
            "owner \"ro ot:root\": user and group are account names or numbers (letters, digits, '_', '.', '-')"
        );
        assert_eq!(
            super::ValueError::XattrValue(String::new()).to_string(),
            "attribute value \"\": give 1-255 printable characters"
        );
    }
}
