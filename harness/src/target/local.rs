//! The local target: this very host, when it runs SELinux enforcing and the user allowed the
//! harness to change it (define guests, relabel files in its sandbox, load a test module).

use super::{Target, TargetError};
use crate::host::environment::TargetInfo;
use crate::interrupt::Interrupt;
use crate::run::batch::Batch;
use crate::run::event::Envelope;
use crate::run::executor::HostPaths;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    Enforcing,
    Permissive,
    /// No SELinux in this kernel, or not enabled.
    Absent,
}

impl HostStatus {
    pub fn describe(self) -> &'static str {
        match self {
            HostStatus::Enforcing => "SELinux enforces on this host",
            HostStatus::Permissive => "SELinux is permissive on this host",
            HostStatus::Absent => "this host does not run SELinux",
        }
    }
}

pub fn host_status() -> HostStatus {
    match std::fs::read_to_string("/sys/fs/selinux/enforce") {
        Ok(s) if s.trim() == "1" => HostStatus::Enforcing,
        Ok(_) => HostStatus::Permissive,
        Err(_) => HostStatus::Absent,
    }
}

pub struct Local {
    paths: HostPaths,
}

impl Local {
    /// Refuses unless the host enforces and the user opted in: a permissive host can give
    /// no verdict, and nobody wants their host relabelled by surprise.
    pub fn new(allow_changes: bool, interrupt: Interrupt) -> Result<Local, TargetError> {
        match host_status() {
            HostStatus::Enforcing => {}
            s => {
                return Err(TargetError::Unavailable(format!(
                    "{}: the local target needs SELinux enforcing (use --target vm)",
                    s.describe()
                )))
            }
        }
        if !allow_changes {
            return Err(TargetError::Unavailable(format!(
                "the local target defines guests, relabels files in its sandbox and may load a test policy module on this host; allow it with --allow-local-changes or {}=1",
                super::LOCAL_OPT_IN_ENV
            )));
        }
        Ok(Local {
            paths: HostPaths {
                verify_host_state: true,
                interrupt,
                ..HostPaths::default()
            },
        })
    }
}

impl Target for Local {
    fn info(&mut self) -> Result<TargetInfo, TargetError> {
        Ok(crate::host::environment::collect("local"))
    }

    fn run(
        &mut self,
        batch: &Batch<'_>,
        sink: &mut dyn FnMut(Envelope),
    ) -> Result<(), TargetError> {
        let info = self.info()?;
        crate::run::policy_batch::run_with_policies(batch, &info, &self.paths, sink);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever this host is, the local target never starts without both conditions.
    #[test]
    fn refuses_without_enforcing_and_opt_in() {
        let without_opt_in = Local::new(false, Interrupt::new());
        let err = match without_opt_in {
            Ok(_) => panic!("the local target started without the user's opt-in"),
            Err(e) => e.to_string(),
        };
        match host_status() {
            HostStatus::Enforcing => assert!(err.contains("--allow-local-changes"), "{err}"),
            other => {
                assert!(err.contains(other.describe()), "{err}");
                let with_opt_in = Local::new(true, Interrupt::new());
                assert!(
                    with_opt_in.is_err(),
                    "the local target started on a host where SELinux does not enforce"
                );
            }
        }
    }
}
