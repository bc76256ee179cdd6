//! Where things are on an SELinux host: every path and name the harness reads, changes or
//! creates there, written out once. The defaults are libvirt's, auditd's and the harness's own
//! (the VM image is built to match them).

use std::path::PathBuf;

/// The libvirt connection scenarios run against.
pub const LIBVIRT_URI: &str = "qemu:///system";
/// libvirt's images directory: every run's sandbox directory is made here.
pub const IMAGES_ROOT: &str = "/var/lib/libvirt/images";
/// libvirt's QEMU driver configuration, which scenarios may edit for a run.
pub const QEMU_CONF: &str = "/etc/libvirt/qemu.conf";
/// Where the QEMU driver writes each running domain's QEMU pid.
pub const QEMU_PID_DIR: &str = "/run/libvirt/qemu";
pub const LIBVIRTD: &str = "/usr/sbin/libvirtd";
pub const LIBVIRTD_PID: &str = "/run/libvirtd.pid";
/// Where libvirtd logs when it runs as a daemon without journald (its default output).
pub const LIBVIRTD_LOG: &str = "/var/log/libvirt/libvirtd.log";
pub const LIBVIRT_SOCK: &str = "/run/libvirt/libvirt-sock";
/// The modular QEMU daemon's socket: when it exists, libvirt's client connects qemu:///system to
/// virtqemud, and libvirt-sock (if any) is virtproxyd's.
/// Where libvirt's QEMU driver writes each guest's log, NAME.log (command line first).
pub const QEMU_LOG_DIR: &str = "/var/log/libvirt/qemu";
/// Where libvirt has swtpm write each guest's TPM log, NAME-swtpm.log.
pub const SWTPM_LOG_DIR: &str = "/var/log/swtpm/libvirt/qemu";
pub const VIRTQEMUD_SOCK: &str = "/run/libvirt/virtqemud-sock";
pub const VIRTQEMUD_PID: &str = "/run/virtqemud.pid";
pub const AUDIT_LOG: &str = "/var/log/audit/audit.log";
pub const AUDITD_PID: &str = "/run/auditd.pid";
/// One file per SELinux boolean: "current pending".
pub const BOOLEANS_DIR: &str = "/sys/fs/selinux/booleans";
/// Where the harness records changes that a name cannot mark (see `journal`). Under /var/lib,
/// not /run: a module install and a qemu.conf edit survive a reboot, so their records must too.
pub const STATE_DIR: &str = "/var/lib/selinux-harness";
/// libsemanage's policy stores: `TYPE/active/` holds what the loaded policy was built from.
pub const SELINUX_STORE: &str = "/var/lib/selinux";
/// The harness init's control FIFO in the guest (see `harness/guest/harness-init2`).
pub const INIT_CONTROL: &str = "/run/selinux-harness/control";
/// Where the harness init answers control requests.
pub const INIT_STATUS: &str = "/run/selinux-harness/status";
/// Prefix of every libvirt domain and sandbox directory the harness creates: `doctor` finds
/// leftovers of an interrupted run by it.
pub const MARKER: &str = "selinux-harness";
/// Where libvirt keeps managed save images (DOMAIN.save).
pub const QEMU_SAVE_DIR: &str = "/var/lib/libvirt/qemu/save";

/// Where things are on one SELinux host, for what reads and restores it (`state`, `doctor`).
/// `Default` is the host the constants above describe; tests point it into a temporary
/// directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// None: leave libvirt alone (no daemon, or a test): list no domains, restart nothing.
    pub libvirt_uri: Option<String>,
    pub images_root: PathBuf,
    pub audit_log: PathBuf,
    pub qemu_conf: PathBuf,
    pub booleans_dir: PathBuf,
    /// The crash journal's directory (see `journal`).
    pub state_dir: PathBuf,
    /// libsemanage's policy stores, one directory per policy type (see `dontaudit`).
    pub selinux_store: PathBuf,
    /// Guest logs libvirt keeps after undefine: QEMU's and swtpm's (see `doctor`).
    pub log_dirs: Vec<PathBuf>,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            libvirt_uri: Some(LIBVIRT_URI.to_string()),
            images_root: IMAGES_ROOT.into(),
            audit_log: AUDIT_LOG.into(),
            qemu_conf: QEMU_CONF.into(),
            booleans_dir: BOOLEANS_DIR.into(),
            state_dir: STATE_DIR.into(),
            selinux_store: SELINUX_STORE.into(),
            log_dirs: vec![QEMU_LOG_DIR.into(), SWTPM_LOG_DIR.into()],
        }
    }
}
