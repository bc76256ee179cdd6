//! A step's `restart_daemon:` - restart libvirt's daemon as it is, or with qemu.conf keys set
//! for this restart only.
//!
//! Two forms:
//! - `restart_daemon: libvirt`: the daemon comes back with the configuration it had.
//! - `restart_daemon: {daemon: libvirt, qemu_conf: {security_driver: none,
//!   security_require_confined: 1}}`: the keys are set, the daemon restarted, and right after
//!   the step qemu.conf is put back and the daemon restarted again, whether it came up or not.
//!   This is the form for a configuration the daemon must refuse to load: with `expect:
//!   {error: {message: ...}}` the message is matched against what the daemon logged.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::files::DaemonName;
use super::model::{At, QemuConfValue};

/// `restart_daemon:` as written.
#[derive(Debug, Clone)]
pub struct RestartDaemon {
    pub daemon: DaemonName,
    /// Keys set for this restart only (empty: the daemon's configuration is left alone).
    pub qemu_conf: BTreeMap<At<String>, QemuConfValue>,
}

impl RestartDaemon {
    /// The keys as `key = value` pairs in qemu.conf's syntax.
    pub fn qemu_conf_lines(&self) -> Vec<(String, String)> {
        self.qemu_conf
            .iter()
            .map(|(k, v)| (k.value.clone(), v.to_string()))
            .collect()
    }
}

/// `restart_daemon: {daemon, qemu_conf}`: a restart under qemu.conf keys set for this step only.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RestartWith {
    daemon: DaemonName,
    /// qemu.conf keys set for this restart only; put back (and the daemon restarted again)
    /// right after the step.
    #[serde(default)]
    qemu_conf: BTreeMap<At<String>, QemuConfValue>,
}

impl<'de> Deserialize<'de> for RestartDaemon {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RestartDaemon;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a daemon (libvirt) or {daemon: libvirt, qemu_conf: {KEY: VALUE, ...}}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RestartDaemon, E> {
                DaemonName::deserialize(serde::de::value::StrDeserializer::<E>::new(v)).map(
                    |daemon| RestartDaemon {
                        daemon,
                        qemu_conf: BTreeMap::new(),
                    },
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RestartDaemon, A::Error> {
                RestartWith::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(
                    |w| RestartDaemon {
                        daemon: w.daemon,
                        qemu_conf: w.qemu_conf,
                    },
                )
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RestartDaemon {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RestartDaemon".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let plain = g.subschema_for::<DaemonName>();
        let with = g.subschema_for::<RestartWith>();
        schemars::json_schema!({
            "description": "the daemon (libvirt), or {daemon: libvirt, qemu_conf: {...}} to restart it with qemu.conf keys set for this step only",
            "anyOf": [plain, with]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RestartDaemon, String> {
        serde_saphyr::from_str::<RestartDaemon>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_name_restarts_with_the_configuration_as_it_is() {
        let r = parse("libvirt").unwrap();
        assert_eq!(r.daemon, DaemonName::Libvirt);
        assert!(r.qemu_conf.is_empty());
    }

    #[test]
    fn a_mapping_sets_qemu_conf_keys_for_the_restart() {
        let r = parse(
            "{daemon: libvirt, qemu_conf: {security_driver: none, security_require_confined: 1}}",
        )
        .unwrap();
        assert_eq!(r.daemon, DaemonName::Libvirt);
        assert_eq!(
            r.qemu_conf_lines(),
            [
                ("security_driver".to_string(), "\"none\"".to_string()),
                ("security_require_confined".to_string(), "1".to_string())
            ]
        );
        // Where each key stands, for the validator's errors.
        let first = r.qemu_conf.keys().next().unwrap();
        assert_eq!((first.line, first.column), (1, 31));
    }

    #[test]
    fn unknown_daemons_and_keys_are_refused() {
        assert!(parse("virtlogd").unwrap_err().contains("libvirt"));
        let e = parse("{daemon: libvirt, qemu: {a: 1}}").unwrap_err();
        assert!(e.contains("qemu"), "{e}");
        assert!(parse("{qemu_conf: {a: 1}}").unwrap_err().contains("daemon"));
    }
}
