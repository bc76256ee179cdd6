//! Targets: where scenarios execute. Everything above a target sees the same event stream,
//! whether the scenario ran in the embedded VM or on this host.

pub mod local;
pub mod vm;

use crate::host::environment::TargetInfo;
use crate::run::event::{Event, EventSink};
use crate::run::verdict::Verdict;
use crate::scenario::LoadedScenario;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

pub trait Target {
    fn info(&mut self) -> Result<TargetInfo, TargetError>;
    /// Run one scenario under one variant. A scenario failure is a verdict, not an error; an
    /// error means the target itself broke (and says how).
    fn run(
        &mut self,
        scenario: &LoadedScenario,
        variant: Option<&str>,
        sink: &mut dyn EventSink,
    ) -> Result<Verdict, TargetError>;

    /// Run several (scenario, variant) pairs, up to `jobs` at a time where the target can;
    /// `sink` gets each run's events tagged with its index in `runs`. One result per run, in
    /// the order of `runs`. This default runs them one after another.
    fn run_many(
        &mut self,
        runs: &[(&LoadedScenario, Option<&str>)],
        jobs: usize,
        sink: &mut dyn FnMut(usize, Event),
    ) -> Vec<Result<Verdict, TargetError>> {
        let _ = jobs;
        runs.iter()
            .enumerate()
            .map(|(i, (l, v))| self.run(l, *v, &mut |e: Event| sink(i, e)))
            .collect()
    }
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
