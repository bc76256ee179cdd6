//! Targets: where scenarios execute. Everything above a target sees the same event stream,
//! whether the scenario ran in the embedded VM or on this host.

pub mod local;
pub mod vm;

use crate::host::environment::TargetInfo;
use crate::run::batch::Batch;
use crate::run::event::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

pub trait Target {
    fn info(&mut self) -> Result<TargetInfo, TargetError>;
    /// Run a batch of scenario runs (`jobs` 1: one after another); `sink` gets every run's
    /// events, each tagged with the run's index in the batch. A scenario failure is a verdict
    /// in the stream; an error means the target itself broke (and says how), and the runs with
    /// no verdict by then have none. Use `dispatch::dispatch`, which makes that error an event.
    fn run(&mut self, batch: &Batch<'_>, sink: &mut dyn FnMut(Envelope))
        -> Result<(), TargetError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// This host when SELinux enforces here and local changes are allowed; else the VM.
    Auto,
    /// The embedded Debian VM, built and booted by the harness.
    Vm,
    /// This host (needs SELinux enforcing and --allow-local-changes).
    Local,
}

/// Environment variable that selects the target (same values as --target).
pub const TARGET_ENV: &str = "SELINUX_HARNESS_TARGET";
/// Environment variable that opts this host in to being changed by scenarios.
pub const LOCAL_OPT_IN_ENV: &str = "SELINUX_HARNESS_ALLOW_LOCAL";

/// Resolve `auto` to a concrete target kind for this host, with the reason.
pub fn resolve(kind: TargetKind, allow_local: bool) -> (TargetKind, String) {
    match kind {
        TargetKind::Auto => match local::host_status() {
            local::HostStatus::Enforcing if allow_local => (
                TargetKind::Local,
                "SELinux enforces on this host and local changes are allowed".into(),
            ),
            local::HostStatus::Enforcing => (
                TargetKind::Vm,
                format!("SELinux enforces here, but local changes are not allowed (set {LOCAL_OPT_IN_ENV}=1 or --allow-local-changes); using the VM"),
            ),
            other => (
                TargetKind::Vm,
                format!("{}; using the embedded VM", other.describe()),
            ),
        },
        k => (k, "chosen explicitly".into()),
    }
}
