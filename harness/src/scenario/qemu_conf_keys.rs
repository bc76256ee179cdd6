//! What the qemu.conf keys a scenario's confinement settings use may hold. A value libvirt
//! rejects makes the QEMU driver fail to load when libvirtd restarts, far from the line that
//! caused it; these are caught when the file loads instead.

use super::model::QemuConfValue;

/// Security drivers libvirt's QEMU driver knows (src/security/security_driver.c).
const SECURITY_DRIVERS: [&str; 4] = ["selinux", "apparmor", "dac", "none"];

/// Why `value` is wrong for `key`, when it is a key this module knows.
pub(super) fn problem(key: &str, value: &QemuConfValue) -> Option<String> {
    match key {
        "security_default_confined" | "security_require_confined" | "remember_owner"
        | "dynamic_ownership" => match value {
            QemuConfValue::Int(0 | 1) | QemuConfValue::Bool(_) => None,
            other => Some(format!(
                "`{key}` is 0 or 1 (or false/true), not {other}"
            )),
        },
        "security_driver" => match value {
            QemuConfValue::Str(s) if SECURITY_DRIVERS.contains(&s.as_str()) => None,
            other => Some(format!(
                "`security_driver` is one of {}, written as a string (`security_driver: none`), not {other}",
                SECURITY_DRIVERS.join(", ")
            )),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("security_default_confined", QemuConfValue::Int(0), true)]
    #[case("security_require_confined", QemuConfValue::Bool(true), true)]
    #[case("security_require_confined", QemuConfValue::Int(2), false)]
    #[case("security_default_confined", QemuConfValue::Str("yes".into()), false)]
    #[case("security_driver", QemuConfValue::Str("none".into()), true)]
    #[case("security_driver", QemuConfValue::Str("selinux".into()), true)]
    #[case("security_driver", QemuConfValue::Str("selnux".into()), false)]
    #[case("security_driver", QemuConfValue::Int(0), false)]
    #[case("max_files", QemuConfValue::Int(4096), true)]
    fn known_keys_take_only_what_libvirt_reads(
        #[case] key: &str,
        #[case] value: QemuConfValue,
        #[case] ok: bool,
    ) {
        assert_eq!(problem(key, &value).is_none(), ok, "{key} = {value}");
    }
}
