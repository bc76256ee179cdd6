//! The facts that describe the machine a scenario runs on (the guest, or the local host), and
//! how they are read there.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::layout::{LIBVIRT_URI, QEMU_CONF};

/// Facts about the machine a scenario ran on (kernel, SELinux mode, versions, accelerator ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// "vm" or "local".
    pub kind: String,
    pub kernel: String,
    /// Exactly what the kernel reports: "enforcing" or "permissive" (or "disabled").
    pub selinux_mode: String,
    pub policy_name: String,
    pub policy_version: String,
    pub mls: bool,
    pub libvirt_version: String,
    pub qemu_version: String,
    pub secmodel: String,
    /// Distribution of the target, e.g. "debian-12" (from os-release).
    pub distro: String,
    /// For a VM: "tcg" or "kvm", plus how it started ("cold" / "warm").
    pub accelerator: String,
    pub boot: String,
    /// qemu.conf keys in force that the harness cares about.
    pub qemu_conf: Vec<(String, String)>,
    /// The policy *package* and its version (e.g. "selinux-policy-default 2:2.20221101-11"):
    /// `policy_version` is only the kernel's policy format. Empty in records made before it
    /// existed, and then left out of the JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy_package: String,
    /// The selinux-harness version that ran the scenario (the agent's, in the VM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub harness_version: String,
    /// For a VM: the image's recipe and content hash (what `image list` shows).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
}

/// qemu.conf keys whose values change what libvirt's security driver does.
const QEMU_CONF_KEYS: &[&str] = &[
    "security_driver",
    "security_default_confined",
    "security_require_confined",
    "dynamic_ownership",
    "remember_owner",
    "namespaces",
    "cgroup_controllers",
    "user",
    "group",
];

/// Reads the target's facts. `kind` is "vm" or "local". Fields that cannot be read say why
/// (e.g. "unavailable: ...") rather than guessing. The accelerator and boot kind are facts of
/// the host that started the VM; they stay empty here.
pub fn collect(kind: &str) -> TargetInfo {
    let selinuxfs = Path::new("/sys/fs/selinux");
    let selinux_mode = match fs::read_to_string(selinuxfs.join("enforce")) {
        Ok(v) if v.trim() == "1" => "enforcing".to_owned(),
        Ok(v) if v.trim() == "0" => "permissive".to_owned(),
        Ok(v) => format!("unknown ({})", v.trim()),
        Err(_) => "disabled".to_owned(),
    };
    let mls = fs::read_to_string(selinuxfs.join("mls")).is_ok_and(|v| v.trim() == "1");
    let (libvirt_version, qemu_version, secmodel) = libvirt_facts();
    let policy_name = selinux_config_value("SELINUXTYPE").unwrap_or_else(|| "unavailable".into());
    TargetInfo {
        kind: kind.to_owned(),
        kernel: kernel_release().unwrap_or_else(|e| format!("unavailable: {KERNEL_RELEASE}: {e}")),
        selinux_mode,
        policy_package: policy_package(&policy_name),
        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
        image: String::new(),
        policy_name,
        policy_version: read_trimmed("/sys/fs/selinux/policyvers"),
        mls,
        libvirt_version,
        qemu_version,
        secmodel,
        distro: distro(),
        accelerator: String::new(),
        boot: String::new(),
        qemu_conf: qemu_conf(QEMU_CONF),
    }
}

/// The installed package that ships the policy `policy_name` (Debian and Fedora both call it
/// selinux-policy-NAME), with its version: from dpkg's status file where there is one, else
/// from rpm. Says "unavailable: ..." when neither knows it.
fn policy_package(policy_name: &str) -> String {
    let package = format!("selinux-policy-{policy_name}");
    if let Ok(status) = fs::read_to_string("/var/lib/dpkg/status") {
        if let Some(v) = dpkg_installed_version(&status, &package) {
            return format!("{package} {v}");
        }
    }
    match std::process::Command::new("rpm")
        .args([
            "-q",
            "--qf",
            "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}",
            &package,
        ])
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => format!("unavailable: {package} is not an installed dpkg or rpm package"),
    }
}

/// The version of an installed package in the text of /var/lib/dpkg/status (stanzas separated
/// by blank lines; a removed package keeps its stanza with another Status).
fn dpkg_installed_version(status: &str, package: &str) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        (field("Package") == Some(package) && field("Status") == Some("install ok installed"))
            .then(|| field("Version").map(str::to_owned))
            .flatten()
    })
}

const KERNEL_RELEASE: &str = "/proc/sys/kernel/osrelease";

/// The running kernel's release (`uname -r`). Callers choose what a failure means: the outer
/// host's KVM probe can do without it, a guest that copies its kernel cannot.
pub fn kernel_release() -> std::io::Result<String> {
    fs::read_to_string(KERNEL_RELEASE).map(|s| s.trim().to_owned())
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unavailable: {path}: {e}"))
}

fn selinux_config_value(key: &str) -> Option<String> {
    let text = fs::read_to_string("/etc/selinux/config").ok()?;
    config_value(&text, key)
}

fn config_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
}

/// "debian-12" from /etc/os-release (ID and VERSION_ID).
fn distro() -> String {
    let text = fs::read_to_string("/etc/os-release").unwrap_or_default();
    match (config_value(&text, "ID"), config_value(&text, "VERSION_ID")) {
        (Some(id), Some(v)) => format!("{id}-{v}"),
        (Some(id), None) => id,
        _ => "unknown".into(),
    }
}

/// Uncommented `key = value` settings of qemu.conf that the harness cares about.
fn qemu_conf(path: &str) -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    parse_qemu_conf(&text)
}

fn parse_qemu_conf(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| QEMU_CONF_KEYS.contains(&k.as_str()))
        .collect()
}

/// libvirt's own version, the hypervisor (QEMU) version and the security model, as libvirtd
/// reports them over qemu:///system.
fn libvirt_facts() -> (String, String, String) {
    virt::error::clear_error_callback();
    let conn = match virt::connect::Connect::open(Some(LIBVIRT_URI)) {
        Ok(c) => c,
        Err(e) => {
            let why = format!("unavailable: {}", e.message());
            return (why.clone(), why.clone(), why);
        }
    };
    let lib = conn
        .lib_version()
        .map(dotted)
        .unwrap_or_else(|e| format!("unavailable: {}", e.message()));
    let hyp = conn
        .hyp_version()
        .map(dotted)
        .unwrap_or_else(|e| format!("unavailable: {}", e.message()));
    let secmodel = conn
        .capabilities()
        .map(|xml| secmodels(&xml))
        .unwrap_or_else(|e| format!("unavailable: {}", e.message()));
    (lib, hyp, secmodel)
}

/// libvirt encodes versions as major * 1_000_000 + minor * 1_000 + release.
fn dotted(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, v / 1_000 % 1_000, v % 1_000)
}

/// "selinux (doi 0, qemu base label system_u:system_r:svirt_t:s0), dac (...)" from capabilities XML.
fn secmodels(xml: &str) -> String {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return "unavailable: capabilities XML does not parse".into();
    };
    let models: Vec<String> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("secmodel") && n.parent().is_some_and(|p| p.has_tag_name("host"))
        })
        .map(|n| {
            let child = |tag: &str| {
                n.children()
                    .find(|c| c.has_tag_name(tag))
                    .and_then(|c| c.text())
                    .unwrap_or("")
                    .to_owned()
            };
            let labels: Vec<String> = n
                .children()
                .filter(|c| c.has_tag_name("baselabel"))
                .map(|c| {
                    format!(
                        "{} base label {}",
                        c.attribute("type").unwrap_or("?"),
                        c.text().unwrap_or("")
                    )
                })
                .collect();
            let mut s = format!("{} (doi {}", child("model"), child("doi"));
            for l in labels {
                s.push_str(", ");
                s.push_str(&l);
            }
            s.push(')');
            s
        })
        .collect();
    if models.is_empty() {
        "none".into()
    } else {
        models.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_package_version_from_dpkg_status() {
        let status = "Package: selinux-policy-mls\nStatus: deinstall ok config-files\n\
                      Version: 2:2.20221101-10\n\n\
                      Package: selinux-policy-default\nStatus: install ok installed\n\
                      Priority: optional\nVersion: 2:2.20221101-11\nDepends: policycoreutils\n\n";
        assert_eq!(
            dpkg_installed_version(status, "selinux-policy-default").as_deref(),
            Some("2:2.20221101-11")
        );
        assert_eq!(dpkg_installed_version(status, "selinux-policy-mls"), None);
        assert_eq!(dpkg_installed_version(status, "selinux-policy"), None);
    }

    #[test]
    fn libvirt_versions_are_dotted() {
        assert_eq!(dotted(9_000_000), "9.0.0");
        assert_eq!(dotted(7_002_022), "7.2.22");
        assert_eq!(dotted(11_003_000), "11.3.0");
    }

    #[test]
    fn qemu_conf_keeps_only_active_known_keys() {
        let text = "#remember_owner = 1\nnamespaces = [ ]\n  cgroup_controllers = [ ]\nvnc_listen = \"0.0.0.0\"\n";
        assert_eq!(
            parse_qemu_conf(text),
            [
                ("namespaces".into(), "[ ]".into()),
                ("cgroup_controllers".into(), "[ ]".into())
            ]
        );
    }

    #[test]
    fn secmodel_from_capabilities() {
        let xml = r#"<capabilities><host><secmodel><model>selinux</model><doi>0</doi>
            <baselabel type="kvm">system_u:system_r:svirt_t:s0</baselabel>
            <baselabel type="qemu">system_u:system_r:svirt_tcg_t:s0</baselabel></secmodel>
            <secmodel><model>dac</model><doi>0</doi><baselabel type="kvm">+64055:+64055</baselabel></secmodel></host></capabilities>"#;
        assert_eq!(
            secmodels(xml),
            "selinux (doi 0, kvm base label system_u:system_r:svirt_t:s0, qemu base label system_u:system_r:svirt_tcg_t:s0); dac (doi 0, kvm base label +64055:+64055)"
        );
    }

    #[test]
    fn config_values_and_quotes() {
        assert_eq!(
            config_value("ID=debian\nVERSION_ID=\"12\"\n", "VERSION_ID").as_deref(),
            Some("12")
        );
        assert_eq!(config_value("SELINUXTYPE=default\n", "SELINUX"), None);
    }
}
