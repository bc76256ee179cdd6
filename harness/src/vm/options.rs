//! What a caller chooses about a VM start ([`VmOptions`]) and what it learns about how the VM
//! came up ([`BootInfo`]).

use std::path::PathBuf;
use std::time::Duration;

use super::qemu::{Accel, DEFAULT_MACHINE};
use crate::interrupt::Interrupt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM if a probe shows it really runs a guest here, else TCG.
    Auto,
    Tcg,
    Kvm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmPolicy {
    /// Restore the image's warm snapshot; without one, boot cold and save one for next time.
    Use,
    /// Always boot cold, never save a snapshot.
    Cold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    Cold,
    Warm,
}

impl StartKind {
    pub fn name(self) -> &'static str {
        match self {
            StartKind::Cold => "cold",
            StartKind::Warm => "warm",
        }
    }
}

#[derive(Debug, Clone)]
pub struct VmOptions {
    pub machine: String,
    pub memory_mib: u32,
    pub smp: u32,
    pub accel: AccelChoice,
    pub warm: WarmPolicy,
    /// The binary to run as the agent in the guest; default: this very executable.
    pub agent_binary: Option<PathBuf>,
    /// Launch until the bootstrap answers (cold boot).
    pub boot_timeout: Duration,
    /// Restore until the bootstrap answers, and each step of delivering the agent.
    pub handshake_timeout: Duration,
    /// Default for [`Vm::request`](super::Vm::request).
    pub request_timeout: Duration,
    /// Copy the guest console log here when the VM goes away (it lives in the run's temp dir).
    pub keep_console: Option<PathBuf>,
    pub interrupt: Interrupt,
}

impl Default for VmOptions {
    fn default() -> Self {
        Self {
            machine: DEFAULT_MACHINE.into(),
            memory_mib: 2048,
            smp: 2,
            accel: AccelChoice::Auto,
            warm: WarmPolicy::Use,
            agent_binary: None,
            boot_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(600),
            keep_console: None,
            interrupt: Interrupt::new(),
        }
    }
}

/// How this VM came up.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub accel: Accel,
    pub start: StartKind,
    /// From launching QEMU to the bootstrap's first answer.
    pub guest_up: Duration,
    /// From launching QEMU to the agent's hello (binary delivered and running).
    pub ready: Duration,
    /// Time spent saving the warm snapshot during this start, if it saved one.
    pub warm_saved: Option<Duration>,
    /// Where the start-up time went, in order (e.g. "copy snapshot", "restore to bootstrap").
    pub phases: Vec<(&'static str, Duration)>,
    /// Fallbacks and other things a human should know (e.g. "warm start failed: ...").
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_kinds_are_named_as_the_reports_print_them() {
        assert_eq!(StartKind::Cold.name(), "cold");
        assert_eq!(StartKind::Warm.name(), "warm");
    }
}
