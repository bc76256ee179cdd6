//! The bookkeeping part of the language: what libvirt's security drivers leave on files and
//! processes besides labels - remembered-owner xattrs, owners, modes, files that must be gone,
//! the label the policy gives a path - and the files a scenario may name for it.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{At, CaptureRef, ContextMatch, Name};
use super::value_error::ValueError;
use crate::selinux_ops::REMEMBER_PREFIX;

/// The remembered-owner attributes libvirt keeps (security_util.c), by short name.
pub const XATTR_NAMES: [&str; 6] = [
    "selinux",
    "ref_selinux",
    "timestamp_selinux",
    "dac",
    "ref_dac",
    "timestamp_dac",
];

/// A file a step's expectations may name: one of the scenario's images (in its sandbox), or a
/// file in a guest's runtime directory under /var/lib/libvirt/qemu, which libvirt names after
/// the domain's id (`$vm1.libdir`, `$vm1.libdir/master-key.aes`). Nothing else: a scenario
/// never reads or judges a path outside what it made or what libvirt made for its guests.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileRef {
    Image(Name),
    /// `$DOMAIN.libdir` and an optional relative path below it.
    Libdir {
        domain: Name,
        rel: Option<String>,
    },
    /// A file libvirt makes for one of a domain's devices (`$vm1.swtpmdir/tpm2`): see
    /// `RuntimePlace`.
    Runtime {
        domain: Name,
        place: RuntimePlace,
        rel: Option<String>,
    },
}

/// Where libvirt keeps what a device of a running guest needs, found when the guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuntimePlace {
    /// swtpm's state directory, /var/lib/libvirt/swtpm/UUID.
    Swtpmdir,
    /// swtpm's log, /var/log/swtpm/libvirt/qemu/NAME-swtpm.log (a file: no path below it).
    Swtpmlog,
    /// The guest's directory under qemu.conf's `memory_backing_dir`.
    Ramdir,
    /// virtiofsd's pid file for the domain's first virtiofs export (alias fs0), which libvirt
    /// keeps in its state directory, /run/libvirt/qemu/ID-NAME-fs0-fs.pid (a file: no path
    /// below it).
    Fspid,
}

impl RuntimePlace {
    pub const ALL: [RuntimePlace; 4] = [
        RuntimePlace::Swtpmdir,
        RuntimePlace::Swtpmlog,
        RuntimePlace::Ramdir,
        RuntimePlace::Fspid,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimePlace::Swtpmdir => "swtpmdir",
            RuntimePlace::Swtpmlog => "swtpmlog",
            RuntimePlace::Ramdir => "ramdir",
            RuntimePlace::Fspid => "fspid",
        }
    }
}

impl FileRef {
    /// The domain whose runtime directory this names, if any.
    pub fn domain(&self) -> Option<&Name> {
        match self {
            FileRef::Image(_) => None,
            FileRef::Libdir { domain, .. } | FileRef::Runtime { domain, .. } => Some(domain),
        }
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileRef::Image(n) => n.fmt(f),
            FileRef::Libdir { domain, rel: None } => write!(f, "${domain}.libdir"),
            FileRef::Libdir {
                domain,
                rel: Some(r),
            } => write!(f, "${domain}.libdir/{r}"),
            FileRef::Runtime {
                domain,
                place,
                rel: None,
            } => write!(f, "${domain}.{}", place.as_str()),
            FileRef::Runtime {
                domain,
                place,
                rel: Some(r),
            } => write!(f, "${domain}.{}/{r}", place.as_str()),
        }
    }
}

impl FromStr for FileRef {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.starts_with('/') || s.starts_with('~') {
            return Err(ValueError::HostPath(s.to_string()));
        }
        let Some(body) = s.strip_prefix('$') else {
            return s
                .parse()
                .map(FileRef::Image)
                .map_err(|e| ValueError::NotAFile(Box::new(e)));
        };
        let (head, rel) = match body.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (body, None),
        };
        let runtime = RuntimePlace::ALL.into_iter().find_map(|p| {
            head.strip_suffix(p.as_str())
                .and_then(|d| d.strip_suffix('.'))
                .map(|d| (d, p))
        });
        let (domain, place) = match (head.strip_suffix(".libdir"), runtime) {
            (Some(d), _) => (d, None),
            (None, Some((d, p))) => (d, Some(p)),
            (None, None) => return Err(ValueError::NotLibdir(s.to_string())),
        };
        let domain: Name = domain.parse()?;
        let one_file = matches!(place, Some(RuntimePlace::Swtpmlog | RuntimePlace::Fspid));
        if one_file && rel.is_some() {
            return Err(ValueError::SwtpmlogPath(s.to_string()));
        }
        let rel = match rel {
            None => None,
            Some(r) => {
                let ok = !r.is_empty()
                    && r.len() <= 100
                    && r.split('/').all(|c| {
                        !c.is_empty()
                            && c != "."
                            && c != ".."
                            && c.chars()
                                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
                    });
                if !ok {
                    return Err(ValueError::LibdirPath(s.to_string()));
                }
                Some(r.to_string())
            }
        };
        Ok(match place {
            None => FileRef::Libdir { domain, rel },
            Some(place) => FileRef::Runtime { domain, place, rel },
        })
    }
}

impl<'de> Deserialize<'de> for FileRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for FileRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for FileRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FileRef".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "an image name, $DOMAIN.libdir[/RELATIVE] (the guest's runtime directory under /var/lib/libvirt/qemu), $DOMAIN.swtpmdir[/RELATIVE] (swtpm's state under /var/lib/libvirt/swtpm/UUID), $DOMAIN.swtpmlog (swtpm's log) or $DOMAIN.ramdir[/RELATIVE] (the guest's directory under memory_backing_dir)"
        })
    }
}

/// One of libvirt's remembered-owner attributes, written short (`ref_selinux`) or in full
/// (`trusted.libvirt.security.ref_selinux`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XattrName(&'static str);

impl XattrName {
    pub fn short(&self) -> &'static str {
        self.0
    }
    pub fn full(&self) -> String {
        format!("{REMEMBER_PREFIX}{}", self.0)
    }
}

impl fmt::Display for XattrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for XattrName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let short = s.strip_prefix(REMEMBER_PREFIX).unwrap_or(s);
        XATTR_NAMES
            .iter()
            .find(|n| **n == short)
            .map(|n| XattrName(n))
            .ok_or_else(|| ValueError::XattrName(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for XattrName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for XattrName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "XattrName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "enum": XATTR_NAMES})
    }
}

/// A value an attribute holds, or may be set to: a literal, or `$NAME` (a capture's whole
/// context: what libvirt writes into `selinux`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrText {
    Literal(String),
    Capture(CaptureRef),
}

impl fmt::Display for XattrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XattrText::Literal(s) => f.write_str(s),
            XattrText::Capture(c) => c.fmt(f),
        }
    }
}

fn xattr_text(s: &str) -> Result<XattrText, ValueError> {
    if s.starts_with('$') {
        return s.parse().map(XattrText::Capture);
    }
    if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_control()) {
        return Err(ValueError::XattrValue(s.to_string()));
    }
    Ok(XattrText::Literal(s.to_string()))
}

/// What one attribute must hold after the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrExpect {
    /// The file has no such attribute.
    Absent,
    /// The file has it, whatever its value (timestamps).
    Present,
    Equals(XattrText),
}

impl<'de> Deserialize<'de> for XattrExpect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = XattrExpect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`absent`, `present`, a value or $NAME")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<XattrExpect, E> {
                match v {
                    "absent" => Ok(XattrExpect::Absent),
                    "present" => Ok(XattrExpect::Present),
                    _ => xattr_text(v).map(XattrExpect::Equals).map_err(E::custom),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<XattrExpect, E> {
                Ok(XattrExpect::Equals(XattrText::Literal(v.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<XattrExpect, E> {
                Ok(XattrExpect::Equals(XattrText::Literal(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for XattrExpect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "XattrExpect".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`absent`, `present`, the value (e.g. 1, +0:+0, a context) or $NAME (a capture's whole context)",
            "type": ["string", "integer"]
        })
    }
}

/// `user:group` as names (resolved on the target: Debian's QEMU user is libvirt-qemu,
/// Fedora's qemu) or numbers; never assumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub user: String,
    pub group: String,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.user, self.group)
    }
}

fn account_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !s.starts_with('-')
}

impl FromStr for Owner {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let (user, group) = s
            .split_once(':')
            .ok_or_else(|| ValueError::OwnerShape(s.to_string()))?;
        if !account_name_ok(user) || !account_name_ok(group) {
            return Err(ValueError::OwnerNames(s.to_string()));
        }
        Ok(Owner {
            user: user.into(),
            group: group.into(),
        })
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Owner {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Owner".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[^:]+:[^:]+$",
            "description": "user:group, names resolved on the target, or numbers"})
    }
}

/// A file's expected owner: `user:group`, or `$NAME`, the user and group the QEMU of the domain
/// captured as NAME ran as at the capture (qemu.conf's `user`: libvirt-qemu on Debian, qemu on
/// Fedora), so "the image is QEMU's while the guest runs" holds on any distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerExpect {
    Is(Owner),
    Of(super::Name),
}

impl fmt::Display for OwnerExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerExpect::Is(o) => o.fmt(f),
            OwnerExpect::Of(n) => write!(f, "${n}"),
        }
    }
}

impl Serialize for OwnerExpect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OwnerExpect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.strip_prefix('$') {
            Some(name) => name.parse().map(OwnerExpect::Of).map_err(|_| {
                serde::de::Error::custom(format!(
                    "owner {s:?}: after `$` comes the name of a domain's capture, e.g. $vm1"
                ))
            }),
            None => s
                .parse()
                .map(OwnerExpect::Is)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for OwnerExpect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OwnerExpect".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^([^:]+:[^:]+|\\$[A-Za-z0-9_-]+)$",
            "description": "user:group (names resolved on the target, or numbers), or $NAME: the user and group of the QEMU of the domain captured as NAME"})
    }
}

/// Permission bits, written in octal as `ls -l` users think of them: "0750".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = (3..=4).contains(&s.len()) && s.chars().all(|c| ('0'..='7').contains(&c));
        match u32::from_str_radix(&s, 8) {
            Ok(m) if ok => Ok(Mode(m)),
            _ => Err(serde::de::Error::custom(format!(
                "mode {s:?}: write the permission bits in octal, quoted, e.g. \"0750\""
            ))),
        }
    }
}

impl JsonSchema for Mode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Mode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-7]{3,4}$"})
    }
}

/// `label: {FILE: default}` (what the policy's file contexts give the path: selabel_lookup,
/// libvirt's fallback when it remembers no owner) or a MATCH as in `file:`.
// A scenario holds a handful of these; boxing the match would only add noise where it is used.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum LabelExpect {
    Default,
    Match(ContextMatch),
}

impl<'de> Deserialize<'de> for LabelExpect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LabelExpect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`default` or a label match such as {type: svirt_image_t}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LabelExpect, E> {
                match v {
                    "default" => Ok(LabelExpect::Default),
                    other => Err(E::custom(format!(
                        "`{other}`: write `default` (the policy's label for the path) or a match such as {{type: virt_image_t}}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<LabelExpect, A::Error> {
                ContextMatch::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(LabelExpect::Match)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for LabelExpect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LabelExpect".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let m = g.subschema_for::<ContextMatch>();
        schemars::json_schema!({"anyOf": [{"const": "default"}, m]})
    }
}

/// `outcome: any`: the step's action is deliberately not judged (it may succeed or fail);
/// said explicitly, since a step without `error:` must otherwise succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeExpect {
    Any,
}

/// `setxattr: {image, name, value}`: plant a remembered-owner record on a sandbox image.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetXattr {
    pub image: At<Name>,
    pub name: XattrName,
    pub value: XattrValueText,
}

/// The text a `setxattr` writes (a literal or `$NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XattrValueText(pub XattrText);

impl<'de> Deserialize<'de> for XattrValueText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = XattrValueText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or $NAME")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<XattrValueText, E> {
                xattr_text(v).map(XattrValueText).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<XattrValueText, E> {
                Ok(XattrValueText(XattrText::Literal(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for XattrValueText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "XattrValueText".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["string", "integer"],
            "description": "the value to write, or $NAME (a capture's whole context)"})
    }
}

/// `rmxattr: {image, name}`: remove a remembered-owner attribute from a sandbox image.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RmXattr {
    pub image: At<Name>,
    pub name: XattrName,
}

/// The daemon `restart_daemon:` restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DaemonName {
    /// The daemon serving qemu:///system (libvirtd, or virtqemud on a modular host).
    Libvirt,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_refs_name_images_or_runtime_files_and_nothing_else() {
        assert_eq!(
            "vm1.img".parse::<FileRef>().unwrap(),
            FileRef::Image("vm1.img".parse().unwrap())
        );
        let r: FileRef = "$vm1.libdir/master-key.aes".parse().unwrap();
        assert_eq!(r.to_string(), "$vm1.libdir/master-key.aes");
        assert_eq!(r.domain().map(Name::as_str), Some("vm1"));
        assert_eq!(
            "$vm1.libdir".parse::<FileRef>().unwrap().to_string(),
            "$vm1.libdir"
        );
        for bad in [
            "/etc/shadow",
            "~/x",
            "$vm1.libdir/../../etc",
            "$vm1.libdir/a//b",
            "$vm1.libdir/",
            "$vm1.rundir",
            "$vm1",
            "a/b",
            "..",
        ] {
            let e = bad.parse::<FileRef>().unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        assert!("/etc/shadow"
            .parse::<FileRef>()
            .unwrap_err()
            .to_string()
            .contains("may not name a host path"));
    }

    #[test]
    fn xattr_names_short_and_full() {
        let n: XattrName = "ref_selinux".parse().unwrap();
        assert_eq!(n.full(), "trusted.libvirt.security.ref_selinux");
        let f: XattrName = "trusted.libvirt.security.dac".parse().unwrap();
        assert_eq!(f.short(), "dac");
        assert!("security.selinux".parse::<XattrName>().is_err());
        assert!("trusted.libvirt.security.other"
            .parse::<XattrName>()
            .is_err());
    }

    #[test]
    fn owners_and_modes() {
        let o: Owner = "libvirt-qemu:kvm".parse().unwrap();
        assert_eq!((o.user.as_str(), o.group.as_str()), ("libvirt-qemu", "kvm"));
        assert!("root".parse::<Owner>().is_err());
        assert!("a b:c".parse::<Owner>().is_err());
        assert!("-x:y".parse::<Owner>().is_err());
        let m: Mode = serde_saphyr::from_str("\"0750\"").unwrap();
        assert_eq!(m, Mode(0o750));
        assert_eq!(m.to_string(), "0750");
        assert!(serde_saphyr::from_str::<Mode>("\"0790\"").is_err());
        assert!(serde_saphyr::from_str::<Mode>("\"75\"").is_err());
    }

    #[test]
    fn xattr_expectations() {
        let p = |s: &str| serde_saphyr::from_str::<XattrExpect>(s);
        assert_eq!(p("absent").unwrap(), XattrExpect::Absent);
        assert_eq!(p("present").unwrap(), XattrExpect::Present);
        assert_eq!(
            p("1").unwrap(),
            XattrExpect::Equals(XattrText::Literal("1".into()))
        );
        assert_eq!(
            p("'+0:+0'").unwrap(),
            XattrExpect::Equals(XattrText::Literal("+0:+0".into()))
        );
        assert!(matches!(
            p("$orig").unwrap(),
            XattrExpect::Equals(XattrText::Capture(_))
        ));
        assert!(p("$orig.bogus").is_err());
    }
}
