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

use crate::error::IoError;
use crate::evidence::audit::AuditError;
use crate::host::config::HostError;
use crate::host::layout::{AUDITD_PID, LIBVIRTD_PID, LIBVIRT_SOCK};
use crate::run::fault_relabels::MeasureError;
use crate::run::plan::Plan;
use crate::wait::{wait_until, Waited};

const MAX_QUEUED_EVENTS: &str = "/proc/sys/fs/inotify/max_queued_events";
const LIBVIRT_SOCK_HIDDEN: &str = "/run/libvirt/libvirt-sock.selinux-harness-fault";
/// How long a killed process or a rotation may take to be visible.
const SETTLE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// Why a fault could not be made (the run that asked for it ends in `error` with this).
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot write {value} to {}: {source}", path.display())]
    Write {
        value: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: std::path::PathBuf,
        to: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("cannot record the module for `doctor`: {0}")]
    Journal(#[source] std::io::Error),
    #[error("{0} is already loaded")]
    AlreadyLoaded(&'static str),
    #[error("no `(typeattributeset {MCS_ATTRIBUTE} (... svirt_t ...))` in the virt module: this policy does not constrain svirt_t that way")]
    NoMcsConstraint,
    #[error("{0:?} strikes in a step, not around the run")]
    NotAroundRun(Fault),
    #[error("a policy fault is made before step 1")]
    PolicyInStep,
    #[error("the scenario has no {what} {name}")]
    Unknown { what: &'static str, name: String },
    #[error("{0} has no QEMU process to kill")]
    NoQemu(String),
    #[error("cannot {what}: {source}")]
    Signal {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("pid {pid} still exists {waited:?} after SIGKILL")]
    Survived { pid: u32, waited: Duration },
    #[error("auditd did not rotate {} within {waited:?}", path.display())]
    NotRotated {
        path: std::path::PathBuf,
        waited: Duration,
    },
    #[error("{} holds no pid: {text:?}", file.display())]
    NoPid {
        file: std::path::PathBuf,
        text: String,
    },
    #[error("cannot run auditctl {args:?}: {source}")]
    AuditctlSpawn {
        args: Vec<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("auditctl {args:?}: {stderr}")]
    Auditctl { args: Vec<String>, stderr: String },
    #[error(transparent)]
    AuditStatus(#[from] AuditError),
    #[error("the kernel lost no record under a rate limit of 1/s")]
    NothingLost,
    #[error(transparent)]
    Relabels(#[from] MeasureError),
}

type Result<T> = std::result::Result<T, FaultError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL libvirtd after step `step` started, before its action (step 0: before the
    /// run looks at what the scenario `requires`).
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
    /// SIGSTOP auditd before step `step`'s action and SIGCONT it `millis` later: a slow auditd
    /// (records written late) or, held past the barrier's timeout, a stuck one (a full disk).
    SuspendAuditd { step: usize, millis: u64 },
    /// Before step `step`'s action, make the kernel drop audit records: a rate limit of one
    /// record a second, a burst of marker records, the old rate limit back.
    LoseAuditRecords { step: usize },
    /// Before step `step`'s action, an audit rule that keeps every AVC record from the log
    /// (`-a exclude,always -F msgtype=AVC`), removed again `millis` later.
    ExcludeAvcRecords { step: usize, millis: u64 },
    /// After step `step`'s action, truncate the audit log in place and write past the step's
    /// offset again (same inode, bigger than before).
    TruncateAuditLog { step: usize },
    /// libvirt unreachable for the host-state proof: its socket renamed away before the
    /// snapshot taken before the run, and back after the one taken after cleanup.
    HideLibvirtFromProof,
    /// Overflow the inotify queue of step `step`'s label timeline: the run's inotify instances
    /// get a queue of one event (`fs.inotify.max_queued_events`, set before the run and put
    /// back after it), and before the action a burst of mode changes hits the watched `image`
    /// (its mode put back after the burst).
    TimelineOverflow { step: usize, image: String },
    /// A broken policy for the whole run: made before step 1, undone by the run's cleanup.
    Policy { policy: PolicyFault },
    /// Before step `step`'s action, relabel the watched `image` to a fresh label and back
    /// `per_hold` times for each hold time of the timeline benchmark, and count what the
    /// kernel's relabel records and an inotify watcher caught (`fault_relabels`).
    TransientRelabels {
        step: usize,
        image: String,
        per_hold: u32,
    },
}

/// Policy faults a correct suite must catch (the conformance suite's `policy_fault::` stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyFault {
    /// `(typepermissive svirt_t)` (policy-modules/harness_fault_permissive.cil): guests' denials
    /// are logged with permissive=1 and allowed.
    SvirtPermissive,
    /// svirt_t exempt from the MCS constraints. The policy's exemption is the attribute the
    /// constraints test (`t1 != mcs_constrained_type` in Debian 12's refpolicy, which has no
    /// `mcsreadall`); an added module cannot take a type out of an attribute, so the `virt`
    /// module is overridden at priority 400 by its own CIL without svirt_t in
    /// `mcs_constrained_type`: svirt_t then reads and writes an svirt_image_t of any category.
    SvirtMcsExempt,
    /// The boolean `virt_use_execmem` off: QEMU under TCG needs execmem, so guests do not start.
    VirtUseExecmemOff,
    /// The policy rebuilt without its `dontaudit` rules (`semodule -DB`; the run's cleanup
    /// runs `semodule -B`): a denial they hid is logged, so `avc: none` must fail on it.
    DontauditOff,
}

const PERMISSIVE_MODULE: &str =
    include_str!("../../../policy-modules/harness_fault_permissive.cil");
const PERMISSIVE_MODULE_NAME: &str = "harness_fault_permissive";
/// The attribute the MCS constraints test, and the module that puts svirt_t in it.
pub const MCS_ATTRIBUTE: &str = "mcs_constrained_type";
const VIRT_MODULE: &str = "virt";

impl PolicyFault {
    /// Break the policy, registering the undo first; returns what was done, for the notes.
    pub fn apply(self, cleanup: &mut crate::host::cleanup::Cleanup) -> Result<String> {
        use crate::host::change;
        use crate::host::journal::Journal;
        match self {
            PolicyFault::SvirtPermissive => {
                let dir = tempfile::tempdir().map_err(IoError::at(
                    "cannot create a directory in",
                    std::env::temp_dir(),
                ))?;
                let file = dir.path().join(format!("{PERMISSIVE_MODULE_NAME}.cil"));
                std::fs::write(&file, PERMISSIVE_MODULE)
                    .map_err(IoError::at("cannot write", &file))?;
                Journal::default()
                    .record_module(PERMISSIVE_MODULE_NAME)
                    .map_err(FaultError::Journal)?;
                if !change::install_module(&file, cleanup)? {
                    return Err(FaultError::AlreadyLoaded(PERMISSIVE_MODULE_NAME));
                }
                Ok("fault injected: policy module harness_fault_permissive loaded (typepermissive svirt_t)".into())
            }
            PolicyFault::SvirtMcsExempt => {
                // Not journalled for `doctor`, which removes modules by name and would take
                // "virt" for the distribution's own: the stage runs only in the VM, whose
                // overlay is thrown away if the run dies before its cleanup.
                change::override_module(VIRT_MODULE, &without_mcs_constraint, cleanup)?;
                Ok(format!("fault injected: module virt overridden at priority 400 without svirt_t in {MCS_ATTRIBUTE} (svirt_t exempt from the MCS constraints)"))
            }
            PolicyFault::VirtUseExecmemOff => {
                change::set_boolean("virt_use_execmem", false, cleanup)?;
                Ok("fault injected: boolean virt_use_execmem off".into())
            }
            PolicyFault::DontauditOff => {
                // Not journalled for `doctor` (it cannot tell this from an admin's own -D):
                // the stage runs only in the VM, whose overlay is thrown away if the run dies.
                crate::host::dontaudit::disable(cleanup)?;
                Ok(
                    "fault injected: policy rebuilt without its dontaudit rules (semodule -DB)"
                        .into(),
                )
            }
        }
    }
}

/// The `virt` module's CIL with svirt_t taken out of `(typeattributeset mcs_constrained_type
/// (...))`; an error when no such statement names svirt_t (nothing would be exempted).
pub fn without_mcs_constraint(cil: &str) -> Result<String> {
    let head = format!("(typeattributeset {MCS_ATTRIBUTE} (");
    let mut changed = false;
    let out: Vec<String> = cil
        .lines()
        .map(|l| {
            let Some(rest) = l.trim_start().strip_prefix(&head) else {
                return l.to_string();
            };
            let Some((members, tail)) = rest.split_once(')') else {
                return l.to_string();
            };
            let kept: Vec<&str> = members
                .split_whitespace()
                .filter(|t| *t != "svirt_t")
                .collect();
            if kept.len() == members.split_whitespace().count() {
                return l.to_string();
            }
            changed = true;
            format!("{head}{} ){tail}", kept.join(" "))
        })
        .collect();
    if !changed {
        return Err(FaultError::NoMcsConstraint);
    }
    Ok(out.join("\n") + "\n")
}

/// Where in a step a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    BeforeAction,
    AfterAction,
    /// Before the host-state snapshot that precedes the run, and again after the one that
    /// follows its cleanup.
    AroundRun,
}

impl Fault {
    pub fn step(&self) -> usize {
        match self {
            Fault::KillLibvirtd { step }
            | Fault::KillQemu { step, .. }
            | Fault::RotateAuditLog { step }
            | Fault::Permissive { step }
            | Fault::SuspendAuditd { step, .. }
            | Fault::LoseAuditRecords { step }
            | Fault::ExcludeAvcRecords { step, .. }
            | Fault::TruncateAuditLog { step }
            | Fault::TimelineOverflow { step, .. }
            | Fault::TransientRelabels { step, .. } => *step,
            Fault::HideLibvirtFromProof => 0,
            // Made before step 1 (see `Fault::policy`), never at a step (see `strikes`).
            Fault::Policy { .. } => 0,
        }
    }

    pub fn moment(&self) -> Moment {
        match self {
            Fault::KillLibvirtd { .. }
            | Fault::KillQemu { .. }
            | Fault::SuspendAuditd { .. }
            | Fault::LoseAuditRecords { .. }
            | Fault::ExcludeAvcRecords { .. }
            | Fault::Permissive { .. }
            | Fault::TimelineOverflow { .. } => Moment::BeforeAction,
            Fault::RotateAuditLog { .. } | Fault::TruncateAuditLog { .. } => Moment::AfterAction,
            Fault::HideLibvirtFromProof => Moment::AroundRun,
            Fault::Policy { .. } => Moment::BeforeAction,
            Fault::TransientRelabels { .. } => Moment::BeforeAction,
        }
    }

    /// Whether this fault strikes at `moment` of step `step`. Permissive strikes twice: it
    /// goes permissive before the action and puts enforcing back after it.
    pub fn strikes(&self, step: usize, moment: Moment) -> bool {
        !matches!(self, Fault::Policy { .. })
            && self.step() == step
            && (self.moment() == moment || matches!(self, Fault::Permissive { .. }))
    }

    /// The policy fault of the run, made before its first step.
    pub fn policy(&self) -> Option<PolicyFault> {
        match self {
            Fault::Policy { policy } => Some(*policy),
            _ => None,
        }
    }

    /// Whether the fault also strikes around the run (before the first host-state snapshot,
    /// after the last): `inject_around_run`.
    pub fn around_run(&self) -> bool {
        matches!(
            self,
            Fault::HideLibvirtFromProof | Fault::TimelineOverflow { .. }
        )
    }

    /// The faults that strike around the run rather than in a step; each call toggles.
    pub fn inject_around_run(&self) -> Result<String> {
        match self {
            Fault::TimelineOverflow { .. } => {
                let now = std::fs::read_to_string(MAX_QUEUED_EVENTS)
                    .map_err(IoError::at("cannot read", MAX_QUEUED_EVENTS))?;
                // The guest runs with the kernel's default; back to it after the run.
                let to = if now.trim() == "1" { "16384" } else { "1" };
                write_value(Path::new(MAX_QUEUED_EVENTS), to)?;
                Ok(format!(
                    "fault injected: {MAX_QUEUED_EVENTS} {} -> {to}",
                    now.trim()
                ))
            }
            Fault::HideLibvirtFromProof => {
                let (sock, hidden) = (Path::new(LIBVIRT_SOCK), Path::new(LIBVIRT_SOCK_HIDDEN));
                let (from, to, what) = if sock.exists() {
                    (sock, hidden, "renamed away: libvirt unreachable")
                } else {
                    (hidden, sock, "back in place")
                };
                std::fs::rename(from, to).map_err(|source| FaultError::Rename {
                    from: from.to_path_buf(),
                    to: to.to_path_buf(),
                    source,
                })?;
                Ok(format!("fault injected: libvirtd's socket {what}"))
            }
            other => Err(FaultError::NotAroundRun(other.clone())),
        }
    }

    /// Break the target; returns what was done, for the run's notes.
    pub fn inject(&self, plan: &Plan, audit_log: &Path) -> Result<String> {
        match self {
            Fault::Policy { .. } => Err(FaultError::PolicyInStep),
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
                    .ok_or_else(|| FaultError::Unknown {
                        what: "domain",
                        name: domain.clone(),
                    })?;
                let pid = crate::host::libvirt::qemu_pid(&d.libvirt_name)
                    .ok_or_else(|| FaultError::NoQemu(domain.clone()))?;
                kill_and_wait(pid)?;
                Ok(format!(
                    "fault injected: {domain}'s QEMU (pid {pid}) killed with SIGKILL"
                ))
            }
            Fault::SuspendAuditd { millis, .. } => {
                let pid = pid_from(Path::new(AUDITD_PID))?;
                let p = Pid::from_raw(pid as i32);
                kill(p, Signal::SIGSTOP).map_err(|source| FaultError::Signal {
                    what: format!("stop auditd (pid {pid})"),
                    source,
                })?;
                let for_ = Duration::from_millis(*millis);
                std::thread::spawn(move || {
                    std::thread::sleep(for_);
                    let _ = kill(p, Signal::SIGCONT);
                });
                Ok(format!(
                    "fault injected: auditd (pid {pid}) stopped with SIGSTOP for {for_:?}"
                ))
            }
            Fault::LoseAuditRecords { .. } => lose_audit_records(),
            Fault::ExcludeAvcRecords { millis, .. } => {
                auditctl(&["-a", "exclude,always", "-F", "msgtype=AVC"])?;
                let for_ = Duration::from_millis(*millis);
                std::thread::spawn(move || {
                    std::thread::sleep(for_);
                    let _ = auditctl(&["-d", "exclude,always", "-F", "msgtype=AVC"]);
                });
                Ok(format!(
                    "fault injected: audit rule `exclude,always -F msgtype=AVC` for {for_:?}"
                ))
            }
            Fault::TruncateAuditLog { .. } => truncate_and_regrow(audit_log),
            Fault::HideLibvirtFromProof => self.inject_around_run(),
            Fault::TimelineOverflow { image, .. } => {
                use std::os::unix::fs::PermissionsExt;
                let (_, img) = plan
                    .images
                    .iter()
                    .find(|(n, _)| n.as_str() == image)
                    .ok_or_else(|| FaultError::Unknown {
                        what: "image",
                        name: image.clone(),
                    })?;
                let chmod = || IoError::at("cannot change the mode of", &img.path);
                let mode = std::fs::metadata(&img.path)
                    .map_err(IoError::at("cannot stat", &img.path))?
                    .permissions()
                    .mode();
                for i in 0..2000 {
                    let m = if i % 2 == 0 { mode ^ 0o040 } else { mode };
                    std::fs::set_permissions(&img.path, std::fs::Permissions::from_mode(m))
                        .map_err(chmod())?;
                }
                std::fs::set_permissions(&img.path, std::fs::Permissions::from_mode(mode))
                    .map_err(chmod())?;
                Ok(format!(
                    "fault injected: 2000 mode changes on {image} against a queue of one event"
                ))
            }
            Fault::Permissive { .. } => {
                let enforce = Path::new(crate::selinux_ops::ENFORCE_PATH);
                let now = std::fs::read_to_string(enforce)
                    .map_err(IoError::at("cannot read", enforce))?;
                // Before the action the kernel enforces (the run checked); after it, not.
                let (to, what) = match now.trim() {
                    "1" => ("0", "SELinux set permissive for the action"),
                    _ => ("1", "SELinux set enforcing again after the action"),
                };
                write_value(enforce, to)?;
                Ok(format!("fault injected: {what}"))
            }
            Fault::TransientRelabels {
                image, per_hold, ..
            } => {
                let (_, img) = plan
                    .images
                    .iter()
                    .find(|(n, _)| n.as_str() == image)
                    .ok_or_else(|| FaultError::Unknown {
                        what: "image",
                        name: image.clone(),
                    })?;
                Ok(crate::run::fault_relabels::measure(
                    &img.path, audit_log, *per_hold,
                )?)
            }
            Fault::RotateAuditLog { .. } => {
                let before = inode(audit_log)?;
                let pid = pid_from(Path::new(AUDITD_PID))?;
                // auditd(8): SIGUSR1 makes it rotate its logs, as `service auditd rotate` does.
                kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).map_err(|source| {
                    FaultError::Signal {
                        what: format!("signal auditd (pid {pid})"),
                        source,
                    }
                })?;
                // Between auditd's rename and its create the path briefly names nothing.
                let rotated = wait_until(Some(Instant::now() + SETTLE), POLL, None, || {
                    inode(audit_log).is_ok_and(|now| now != before)
                });
                if rotated != Waited::Met(()) {
                    return Err(FaultError::NotRotated {
                        path: audit_log.to_path_buf(),
                        waited: SETTLE,
                    });
                }
                Ok(format!(
                    "fault injected: auditd (pid {pid}) rotated {}",
                    audit_log.display()
                ))
            }
        }
    }
}

/// Write `value` into the kernel setting at `path`.
fn write_value(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| FaultError::Write {
        value: value.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

fn auditctl(args: &[&str]) -> Result<String> {
    let owned = || args.iter().map(|a| a.to_string()).collect();
    let out = std::process::Command::new("auditctl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| FaultError::AuditctlSpawn {
            args: owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(FaultError::Auditctl {
            args: owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel counts a record over the rate limit as lost (audit_log_end -> audit_log_lost).
fn lose_audit_records() -> Result<String> {
    let before = crate::evidence::audit::AuditStatus::read()?;
    auditctl(&["-r", "1"])?;
    let mut burst = Ok(());
    for n in 0..20 {
        if let Err(e) = auditctl(&["-m", &format!("selinux-harness-fault-burst-{n}")]) {
            burst = Err(e);
            break;
        }
    }
    auditctl(&["-r", &before.rate_limit.to_string()])?;
    burst?;
    let after = crate::evidence::audit::AuditStatus::read()?;
    if after.lost == before.lost {
        return Err(FaultError::NothingLost);
    }
    Ok(format!(
        "fault injected: the kernel dropped {} audit record(s) (rate limit 1/s for a burst)",
        after.lost - before.lost
    ))
}

/// Truncate in place and write past the old size: the inode stays, the size grows, the bytes
/// before any earlier offset are different ones. auditd appends after the filler.
fn truncate_and_regrow(audit_log: &Path) -> Result<String> {
    use std::io::Write;
    let size = std::fs::metadata(audit_log)
        .map_err(IoError::at("cannot stat", audit_log))?
        .len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(audit_log)
        .map_err(IoError::at("cannot open", audit_log))?;
    f.set_len(0)
        .map_err(IoError::at("cannot truncate", audit_log))?;
    let line = "# selinux-harness fault: the audit log was truncated and regrown here\n";
    let mut written = 0;
    while written <= size + 4096 {
        f.write_all(line.as_bytes())
            .map_err(IoError::at("cannot write", audit_log))?;
        written += line.len() as u64;
    }
    Ok(format!(
        "fault injected: {} truncated to 0 and regrown to {written} bytes (was {size})",
        audit_log.display()
    ))
}

fn pid_from(file: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(file).map_err(IoError::at("cannot read", file))?;
    text.trim().parse().map_err(|_| FaultError::NoPid {
        file: file.to_path_buf(),
        text: text.clone(),
    })
}

fn inode(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(IoError::at("cannot stat", path))?)
}

fn kill_and_wait(pid: u32) -> Result<()> {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).map_err(|source| FaultError::Signal {
        what: format!("kill pid {pid}"),
        source,
    })?;
    let gone = wait_until(Some(Instant::now() + SETTLE), POLL, None, || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    if gone != Waited::Met(()) {
        return Err(FaultError::Survived {
            pid,
            waited: SETTLE,
        });
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
    fn the_mcs_exemption_takes_svirt_t_out_of_the_constrained_attribute_only() {
        // lines 178-179 of Debian 12's virt module, as `semodule --cil -E virt` extracts it
        let cil = "(typeattributeset cil_gen_require mcs_constrained_type)\n(typeattributeset mcs_constrained_type (svirt_t svirt_prot_exec_t ))\n(typeattributeset virt_domain (svirt_t ))\n";
        let out = without_mcs_constraint(cil).unwrap();
        assert_eq!(
            out,
            "(typeattributeset cil_gen_require mcs_constrained_type)\n(typeattributeset mcs_constrained_type (svirt_prot_exec_t ))\n(typeattributeset virt_domain (svirt_t ))\n"
        );
        let e = without_mcs_constraint(&out).unwrap_err().to_string();
        assert!(e.contains("does not constrain svirt_t"), "{e}");
        assert!(Fault::Policy {
            policy: PolicyFault::SvirtPermissive
        }
        .policy()
        .is_some());
        assert!(!Fault::Policy {
            policy: PolicyFault::VirtUseExecmemOff
        }
        .strikes(1, Moment::BeforeAction));
    }

    #[test]
    fn a_pid_file_without_a_pid_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        std::fs::write(&f, "not a pid\n").unwrap();
        let e = pid_from(&f).unwrap_err().to_string();
        assert!(e.contains("x.pid") && e.contains("no pid"), "{e}");
    }
}
