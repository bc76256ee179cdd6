//! A step's `settle:` - how long the harness keeps watching after the action returned, for
//! effects that come later (a reset guest's firmware reading its disk again).
//!
//! Two forms:
//! - `settle: {until: disk_read, image: vm1.img, deadline: 8s}`: the window ends as soon as
//!   the guest that has vm1.img as a disk has read it again after the action (its block read
//!   counter rose) or was refused trying (a denial with its QEMU as source is in the log);
//!   the deadline only bounds a guest that does neither, and then the step's absence checks
//!   prove nothing (the run says so).
//! - `settle: 2s`: a fixed window, for effects no condition can show.
//!
//! Either way the step's audit flush barrier follows, so "no denial" covers everything up to
//! the barrier, not a guess about how long the kernel takes.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::{At, Duration, Name};

/// What ends a settle window early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// The guest with `image` as a disk read it again after the action, or was denied trying.
    DiskRead,
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Until::DiskRead => "disk_read",
        })
    }
}

/// `settle:` as written.
#[derive(Debug, Clone)]
pub enum Settle {
    /// `settle: 2s`: watch this long, whatever happens.
    Window(Duration),
    /// `settle: {until: disk_read, image: vm1.img, deadline: 8s}`.
    Until(SettleUntil),
}

/// A window that ends when its condition is met, at the latest at its deadline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleUntil {
    /// What to wait for.
    pub until: Until,
    /// The image whose reading ends the window (a disk of exactly one domain).
    pub image: At<Name>,
    /// Give up waiting after this long; the step's absence checks then prove nothing.
    pub deadline: Duration,
}

impl Settle {
    /// The longest the window can last.
    pub fn deadline(&self) -> std::time::Duration {
        match self {
            Settle::Window(d) => d.0,
            Settle::Until(u) => u.deadline.0,
        }
    }
}

impl fmt::Display for Settle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Settle::Window(d) => write!(f, "keep watching for {:?} after it returns", d.0),
            Settle::Until(u) => match u.until {
                Until::DiskRead => write!(
                    f,
                    "keep watching until {} is read again (or its reader is denied), at most {:?}",
                    u.image.value, u.deadline.0
                ),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Settle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Settle;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration (2s) or {until: disk_read, image: IMAGE, deadline: 8s}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Settle, E> {
                Duration::deserialize(serde::de::value::StrDeserializer::<E>::new(v))
                    .map(Settle::Window)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Settle, A::Error> {
                SettleUntil::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Settle::Until)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Settle {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Settle".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let window = g.subschema_for::<Duration>();
        let until = g.subschema_for::<SettleUntil>();
        schemars::json_schema!({
            "description": "a fixed window (2s), or a window that ends when its condition is met: {until: disk_read, image: vm1.img, deadline: 8s}",
            "anyOf": [window, until]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Settle, String> {
        serde_saphyr::from_str::<Settle>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_duration_is_a_fixed_window() {
        let s = parse("500ms").unwrap();
        assert!(matches!(s, Settle::Window(Duration(d)) if d.as_millis() == 500));
        assert_eq!(s.deadline().as_millis(), 500);
    }

    #[test]
    fn a_mapping_is_a_condition_with_a_deadline() {
        let s = parse("{until: disk_read, image: vm1.img, deadline: 8s}").unwrap();
        let Settle::Until(u) = &s else {
            panic!("expected a condition, got {s:?}")
        };
        assert_eq!(u.until, Until::DiskRead);
        assert_eq!(u.image.value.as_str(), "vm1.img");
        assert_eq!(s.deadline().as_secs(), 8);
        assert_eq!(
            s.to_string(),
            "keep watching until vm1.img is read again (or its reader is denied), at most 8s"
        );
    }

    #[test]
    fn the_deadline_is_required() {
        let e = parse("{until: disk_read, image: vm1.img}").unwrap_err();
        assert!(e.contains("deadline"), "{e}");
    }

    #[test]
    fn an_unknown_condition_names_the_known_ones() {
        let e = parse("{until: boot, image: vm1.img, deadline: 8s}").unwrap_err();
        assert!(e.contains("disk_read"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("{until: disk_read, image: vm1.img, deadline: 8s, every: 1s}").unwrap_err();
        assert!(e.contains("every"), "{e}");
    }

    #[test]
    fn a_deadline_over_the_limit_is_refused() {
        let e = parse("{until: disk_read, image: vm1.img, deadline: 90s}").unwrap_err();
        assert!(e.contains("60s"), "{e}");
        assert!(parse("90s").unwrap_err().contains("60s"));
    }
}

#[cfg(test)]
mod in_a_scenario {
    #[test]
    fn a_condition_loads_in_a_step() {
        let src = "name: x\ndescription: d\nimages:\n  a.img: {size: 1M}\ndomains:\n  vm1: {disks: [a.img]}\nsteps:\n  - reset: vm1\n    settle: {until: disk_read, image: a.img, deadline: 8s}\n";
        let l = crate::scenario::load_str(std::path::Path::new("x.yaml"), src);
        assert!(
            l.is_ok(),
            "{:?}",
            l.err()
                .map(|d| d.iter().map(|d| d.to_string()).collect::<Vec<_>>())
        );
    }
}
