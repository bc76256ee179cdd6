//! The harness's own files inside the guest image (see `harness/guest/`).

/// Name of the virtio-serial port the agent talks on; the bootstrap finds it in sysfs.
pub const AGENT_PORT_NAME: &str = "org.selinux-harness.agent";

/// The kernel's `init=`: stage 1 of the harness init.
pub const INIT_PATH: &str = "/usr/local/sbin/harness-init";

/// Where the bootstrap writes the delivered binary (labelled bin_t by the harness_init module).
pub const AGENT_DIR: &str = "/usr/local/libexec/selinux-harness";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFile {
    /// Absolute path inside the guest.
    pub path: &'static str,
    pub source: &'static str,
    pub mode: u32,
}

pub const GUEST_FILES: &[GuestFile] = &[
    GuestFile {
        path: INIT_PATH,
        source: include_str!("../../guest/harness-init"),
        mode: 0o755,
    },
    GuestFile {
        path: "/usr/local/sbin/harness-init2",
        source: include_str!("../../guest/harness-init2"),
        mode: 0o755,
    },
    GuestFile {
        path: "/usr/local/sbin/harness-bootstrap",
        source: include_str!("../../guest/harness-bootstrap"),
        mode: 0o755,
    },
];
