//! The `<label>` of a per-device `<seclabel>`: an SELinux context for model selinux, a
//! `user:group` owner for model dac. libvirt tells them apart by the seclabel's model; a
//! scenario's text tells them apart by its shape (a context has at least three colons, an owner
//! exactly one), and validation checks the shape against the model.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use super::files::Owner;
use super::value_error::ValueError;
use crate::context::Context;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceLabel {
    /// For model selinux: checked as strictly as every other context when the file loads.
    Context(Context),
    /// For model dac: names libvirt looks up on the target (never resolved by the harness, so a
    /// scenario can also hand libvirt a user that does not exist), or numbers.
    Owner(Owner),
}

impl DeviceLabel {
    /// The security model this label is written for.
    pub fn model(&self) -> &'static str {
        match self {
            DeviceLabel::Context(_) => "selinux",
            DeviceLabel::Owner(_) => "dac",
        }
    }
}

impl fmt::Display for DeviceLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceLabel::Context(c) => c.fmt(f),
            DeviceLabel::Owner(o) => o.fmt(f),
        }
    }
}

impl std::str::FromStr for DeviceLabel {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.matches(':').count() == 1 {
            return s.parse().map(DeviceLabel::Owner);
        }
        s.parse()
            .map(DeviceLabel::Context)
            .map_err(|e: crate::context::ParseError| ValueError::DeviceLabel(e.to_string()))
    }
}

impl<'de> Deserialize<'de> for DeviceLabel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for DeviceLabel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeviceLabel".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string",
            "description": "model selinux: a context (user:role:type:level); model dac: user:group (names libvirt looks up on the target, or numbers)"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("nobody:nogroup", "dac")]
    #[case("0:libvirt-qemu", "dac")]
    #[case("system_u:object_r:svirt_image_t:s0:c1,c2", "selinux")]
    #[case("system_u:object_r:svirt_image_t:s0", "selinux")]
    fn the_shape_says_the_model(#[case] text: &str, #[case] model: &str) {
        let l: DeviceLabel = text.parse().unwrap();
        assert_eq!(l.model(), model);
        assert_eq!(l.to_string(), text);
    }

    #[rstest]
    #[case("nobody", "invalid context")]
    #[case("a b:c", "account names")]
    #[case("system_u:object_r:svirt_image_t:s0:c5,c3", "invalid context")]
    fn bad_labels_say_why(#[case] text: &str, #[case] why: &str) {
        let e = text.parse::<DeviceLabel>().unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
}
