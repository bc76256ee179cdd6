//! Faults the conformance suite injects into a run in the VM, to prove that a target which
//! breaks in the middle of a step ends in an `error` verdict that names the cause, with
//! cleanup done - never in a pass, never in a hang.
//!
//! A fault travels only in the agent protocol's `Run` request, which only the test suite
//! fills in; no scenario file can ask for one. The fault is real: the daemon or process is
//! killed with SIGKILL, auditd really rotates its log. Only the moment is chosen.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::host::layout::{AUDITD_PID, LIBVIRTD_PID};
use crate::run::plan::Plan;
use crate::wait::{wait_until, Waited};

/// How long a killed process or a rotation may take to be visible.
const SETTLE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL libvirtd after step `step` started, before its action.
    KillLibvirtd { step: usize },
    /// SIGKILL the QEMU of the scenario's domain `domain` after step `step` started, before
    /// its action.
    KillQemu { step: usize, domain: String },
    /// Make auditd rotate its log after step `step`'s action, before its records are read.
    RotateAuditLog { step: usize },
    /// SELinux permissive (`setenforce 0`) for step `step`'s action, enforcing again right
    /// after it: what a denial logged then shows (`permissive=1`) must make the verdict
    /// inconclusive.
    Permissive { step: usize },
}

/// Where in a step a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    BeforeAction,
    AfterAction,
}

impl Fault {
    pub fn step(&self) -> usize {
        match self {
            Fault::KillLibvirtd { step }
            | Fault::KillQemu { step, .. }
            | Fault::RotateAuditLog { step }
            | Fault::Permissive { step } => *step,
        }
    }

    pub fn moment(&self) -> Moment {
        match self {
            Fault::KillLibvirtd { .. } | Fault::KillQemu { .. } => Moment::BeforeAction,
            Fault::RotateAuditLog { .. } => Moment::AfterAction,
            Fault::Permissive { .. } => Moment::BeforeAction,
        }
    }

    /// Whether this fault strikes at `moment` of step `step`. Permissive strikes twice: it
    /// goes permissive before the action and puts enforcing back after it.
    pub fn strikes(&self, step: usize, moment: Moment) -> bool {
        self.step() == step && (self.moment() == moment || matches!(self, Fault::Permissive { .. }))
    }

    /// Break the target; returns what was done, for the run's notes.
    pub fn inject(&self, plan: &Plan, audit_log: &Path) -> Result<String, String> {
        match self {
            Fault::KillLibvirtd { .. } => {
                let pid = pid_from(Path::new(LIBVIRTD_PID))?;
                kill_and_wait(pid)?;
                Ok(format!(
                    "fault injected: libvirtd (pid {pid}) killed with SIGKILL"
                ))
            }
            Fault::KillQemu { domain, .. } => {
                let (_, d) = plan
                    .domains
                    .iter()
                    .find(|(n, _)| n.as_str() == domain)
                    .ok_or_else(|| format!("the scenario has no domain {domain}"))?;
                let pid = crate::host::libvirt::qemu_pid(&d.libvirt_name)
                    .ok_or_else(|| format!("{domain} has no QEMU process to kill"))?;
                kill_and_wait(pid)?;
                Ok(format!(
                    "fault injected: {domain}'s QEMU (pid {pid}) killed with SIGKILL"
                ))
            }
            Fault::Permissive { .. } => {
                let enforce = Path::new(crate::selinux_ops::ENFORCE_PATH);
                let now = std::fs::read_to_string(enforce)
                    .map_err(|e| format!("cannot read {}: {e}", enforce.display()))?;
                // Before the action the kernel enforces (the run checked); after it, not.
                let (to, what) = match now.trim() {
                    "1" => ("0", "SELinux set permissive for the action"),
                    _ => ("1", "SELinux set enforcing again after the action"),
                };
                std::fs::write(enforce, to)
                    .map_err(|e| format!("cannot write {to} to {}: {e}", enforce.display()))?;
                Ok(format!("fault injected: {what}"))
            }
            Fault::RotateAuditLog { .. } => {
                let before = inode(audit_log)?;
                let pid = pid_from(Path::new(AUDITD_PID))?;
                // auditd(8): SIGUSR1 makes it rotate its logs, as `service auditd rotate` does.
                kill(Pid::from_raw(pid as i32), Signal::SIGUSR1)
                    .map_err(|e| format!("cannot signal auditd (pid {pid}): {e}"))?;
                // Between auditd's rename and its create the path briefly names nothing.
                let rotated = wait_until(Some(Instant::now() + SETTLE), POLL, None, || {
                    inode(audit_log).is_ok_and(|now| now != before)
                });
                if rotated != Waited::Met(()) {
                    return Err(format!(
                        "auditd did not rotate {} within {SETTLE:?}",
                        audit_log.display()
                    ));
                }
                Ok(format!(
                    "fault injected: auditd (pid {pid}) rotated {}",
                    audit_log.display()
                ))
            }
        }
    }
}

fn pid_from(file: &Path) -> Result<u32, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{} holds no pid: {text:?}", file.display()))
}

fn inode(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))
}

fn kill_and_wait(pid: u32) -> Result<(), String> {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL)
        .map_err(|e| format!("cannot kill pid {pid}: {e}"))?;
    let gone = wait_until(Some(Instant::now() + SETTLE), POLL, None, || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    if gone != Waited::Met(()) {
        return Err(format!("pid {pid} still exists {SETTLE:?} after SIGKILL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn travels_as_tagged_json() {
        let f = Fault::KillQemu {
            step: 2,
            domain: "vm2".into(),
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"fault":"kill_qemu","step":2,"domain":"vm2"}"#);
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), f);
    }

    #[test]
    fn strikes_only_its_step_and_moment() {
        let rotate = Fault::RotateAuditLog { step: 3 };
        assert!(rotate.strikes(3, Moment::AfterAction));
        assert!(!rotate.strikes(3, Moment::BeforeAction));
        assert!(!rotate.strikes(2, Moment::AfterAction));
        let kill = Fault::KillLibvirtd { step: 1 };
        assert!(kill.strikes(1, Moment::BeforeAction));
        // Permissive before the action, enforcing again after it.
        let permissive = Fault::Permissive { step: 1 };
        assert!(permissive.strikes(1, Moment::BeforeAction));
        assert!(permissive.strikes(1, Moment::AfterAction));
        assert!(!permissive.strikes(2, Moment::BeforeAction));
    }

    #[test]
    fn a_pid_file_without_a_pid_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        std::fs::write(&f, "not a pid\n").unwrap();
        let e = pid_from(&f).unwrap_err();
        assert!(e.contains("x.pid") && e.contains("no pid"), "{e}");
    }
}
