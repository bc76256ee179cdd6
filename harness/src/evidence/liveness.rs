//! Proof that the audit path works, so that an absence of AVC records can be trusted.
//!
//! Three things can make a "no denial" pass when denials happened: auditd not writing (dead,
//! suspended by a full disk, writing elsewhere), the kernel dropping records before auditd
//! (backlog full, rate limit: counted in `auditctl -s`'s `lost`), and rules that keep AVC
//! records from the log (an `exclude` rule on msgtype=AVC). Every step closes with a canary
//! denial and a marker: the marker must come back (auditd writes this log, and everything
//! queued before the marker is in it), the canary must be among the step's records (AVC
//! records reach the log), and the kernel's lost counter must not have moved.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::context::{Context, ParseError};
use crate::error::IoError;
use crate::evidence::audit::{AuditError, AuditLog, AuditStatus, StepAudit};
use crate::evidence::AvcRecord;
use crate::selinux_ops::SelinuxOpsError;

/// The canary's MCS level: never one libvirt hands out (it uses two categories), reserved for
/// the harness so its own records can be told apart.
pub const CANARY_LEVEL: &str = "s0:c1021.c1023";
/// What the canary tries to run. Entering svirt_t through a bin_t file is never allowed, so the
/// exec is refused with a denial (`entrypoint`, or `transition` without the probe module).
const CANARY_EXE: &str = "/bin/true";

/// Why the audit path could not be proven complete, or the kernel could not be asked what it
/// would hide or let through.
#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    #[error("the audit canary's context: {0}")]
    CanaryContext(#[source] ParseError),
    #[error(transparent)]
    ExecContext(Box<SelinuxOpsError>),
    #[error("the audit canary ({CANARY_EXE} as {context}): {source}")]
    Canary {
        context: Context,
        #[source]
        source: std::io::Error,
    },
    #[error("the audit canary's denial (exec of {CANARY_EXE} as {canary}) did not reach the audit log though the marker sent after it did: AVC records are kept from the log (an audit exclude rule? `auditctl -l`), so an absence of denials proves nothing")]
    CanaryMissing { canary: Context },
    /// A class or permission index of selinuxfs could not be read.
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot ask the kernel whether {kind} is permissive: {source}")]
    PermissiveQuery {
        kind: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot ask the kernel about {source_type} on {target}: {source}")]
    DontauditQuery {
        source_type: String,
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel's access answer for {about} is unreadable: {reply:?}")]
    AccessReply { about: String, reply: String },
    #[error("cannot read this process's context: {0}")]
    OwnContext(#[source] SelinuxOpsError),
    /// The log cannot be read, the marker did not come back, the log changed under the step,
    /// `auditctl -s` failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The kernel's audit status says records may be missing.
    #[error("{0}")]
    Lost(String),
    #[error("cannot read the SELinux mode: {0}")]
    Mode(#[source] SelinuxOpsError),
}

type Result<T> = std::result::Result<T, LivenessError>;

/// The context the canary exec is attempted in: the caller's user and role, svirt_t at
/// `CANARY_LEVEL`.
pub fn canary_context(current: &Context) -> Result<Context> {
    format!("{}:{}:svirt_t:{CANARY_LEVEL}", current.user, current.role)
        .parse()
        .map_err(LivenessError::CanaryContext)
}

/// Provoke the canary denial. Ok(true): refused, as it must be in enforcing mode; Ok(false):
/// the exec went through (the kernel is permissive, or the policy allows what it never should).
pub fn provoke(context: &Context) -> Result<bool> {
    let child = {
        let _exec = crate::selinux_ops::ExecContextGuard::set(context)
            .map_err(|e| LivenessError::ExecContext(Box::new(e)))?;
        Command::new(CANARY_EXE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    match child {
        Err(e) if e.raw_os_error() == Some(nix::libc::EACCES) => Ok(true),
        Err(source) => Err(LivenessError::Canary {
            context: context.clone(),
            source,
        }),
        Ok(mut c) => {
            let _ = c.wait();
            Ok(false)
        }
    }
}

/// Whether a record is (one of) the canary's: a denial naming the canary context.
pub fn is_canary(r: &AvcRecord, canary: &Context) -> bool {
    r.denied && (r.scontext.as_ref() == Some(canary) || r.tcontext.as_ref() == Some(canary))
}

/// Take the canary's records out of a step's records; Err if there were none.
pub fn take_canary(records: &mut Vec<AvcRecord>, canary: &Context) -> Result<usize> {
    let before = records.len();
    records.retain(|r| !is_canary(r, canary));
    match before - records.len() {
        0 => Err(LivenessError::CanaryMissing {
            canary: canary.clone(),
        }),
        n => Ok(n),
    }
}

/// Whether the loaded policy makes `kind` a permissive domain: the kernel's access decision
/// for it carries AVD_FLAGS_PERMISSIVE (selinuxfs `access`, as security_compute_av_flags).
pub fn permissive_type(kind: &str) -> Result<bool> {
    let class = read_index(PROCESS_CLASS_INDEX)?;
    // object_r goes with every type, so the context is valid whatever roles the type has.
    let ctx = format!("system_u:object_r:{kind}:s0");
    let request = format!("{ctx} {ctx} {}", class.trim());
    let reply = match crate::selinux_ops::transact("/sys/fs/selinux/access", &request) {
        Ok(r) => r,
        // No such type in the loaded policy: nothing of it can be permissive.
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => return Ok(false),
        Err(source) => {
            return Err(LivenessError::PermissiveQuery {
                kind: kind.to_string(),
                source,
            })
        }
    };
    access_flags(&reply)
        .map(|f| f & AVD_FLAGS_PERMISSIVE != 0)
        .ok_or_else(|| LivenessError::AccessReply {
            about: kind.to_string(),
            reply,
        })
}

const PROCESS_CLASS_INDEX: &str = "/sys/fs/selinux/class/process/index";
const FILE_CLASS_INDEX: &str = "/sys/fs/selinux/class/file/index";

fn read_index(path: &str) -> Result<String> {
    Ok(std::fs::read_to_string(path).map_err(IoError::at("cannot read", path))?)
}

const AVD_FLAGS_PERMISSIVE: u32 = 1;

/// The file permissions whose denial a scenario's `avc:` checks are about.
const FILE_PERMS: [&str; 7] = [
    "read", "write", "open", "getattr", "append", "lock", "ioctl",
];

/// The file permissions of `source` on `target` files that the loaded policy's `dontaudit`
/// rules keep from the log (their bit is clear in the decision's auditdeny vector): a denial
/// of these is silent, so `avc: none` cannot see it. Types not in the policy give nothing.
pub fn dontaudited_file_perms(source: &str, target: &str) -> Result<Vec<String>> {
    let class = read_index(FILE_CLASS_INDEX)?;
    let request = format!(
        "system_u:object_r:{source}:s0 system_u:object_r:{target}:s0 {}",
        class.trim()
    );
    let reply = match crate::selinux_ops::transact("/sys/fs/selinux/access", &request) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => return Ok(Vec::new()),
        Err(e) => {
            return Err(LivenessError::DontauditQuery {
                source_type: source.to_string(),
                target: target.to_string(),
                source: e,
            })
        }
    };
    let auditdeny = auditdeny(&reply).ok_or_else(|| LivenessError::AccessReply {
        about: format!("{source} on {target}"),
        reply: reply.clone(),
    })?;
    let mut out = Vec::new();
    for perm in FILE_PERMS {
        let Ok(index) = std::fs::read_to_string(format!("/sys/fs/selinux/class/file/perms/{perm}"))
        else {
            continue;
        };
        if let Ok(bit) = index.trim().parse::<u32>() {
            if (1..=32).contains(&bit) && auditdeny & (1 << (bit - 1)) == 0 {
                out.push(perm.to_string());
            }
        }
    }
    Ok(out)
}

/// The auditdeny vector of a selinuxfs `access` answer (its fourth word, hex).
fn auditdeny(reply: &str) -> Option<u32> {
    u32::from_str_radix(reply.split_whitespace().nth(3)?, 16).ok()
}

/// The flags of a selinuxfs `access` answer: "allowed decided auditallow auditdeny seqno flags"
/// (hex, except seqno); kernels before 2.6.27 give no flags.
fn access_flags(reply: &str) -> Option<u32> {
    let words: Vec<&str> = reply.split_whitespace().collect();
    match words.as_slice() {
        [_, _, _, _, _, flags] => u32::from_str_radix(flags, 16).ok(),
        [_, _, _, _, _] => Some(0),
        _ => None,
    }
}

/// The types whose being permissive would void a scenario's verdict: QEMU's domains, libvirtd,
/// and every type its domains, expectations and probes name.
pub fn involved_types(extra: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = ["svirt_t", "svirt_tcg_t", "virtd_t"]
        .into_iter()
        .map(str::to_string)
        .chain(extra)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_answer_flags() {
        assert_eq!(access_flags("ffffffff ffffffff 0 fffafb7d 45 1"), Some(1));
        assert_eq!(access_flags("0 ffffffff 0 ffffffff 45 0\n"), Some(0));
        assert_eq!(access_flags("0 ffffffff 0 ffffffff 45"), Some(0));
        assert_eq!(access_flags("nonsense"), None);
    }

    #[test]
    fn auditdeny_is_the_fourth_word() {
        assert_eq!(auditdeny("0 ffffffff 0 fffafb7d 45 0"), Some(0xfffafb7d));
        assert_eq!(auditdeny("0 ffffffff"), None);
    }

    #[test]
    fn canary_records_are_told_apart_and_must_be_there() {
        let me: Context = "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"
            .parse()
            .unwrap();
        let canary = canary_context(&me).unwrap();
        assert_eq!(
            canary.to_string(),
            "unconfined_u:unconfined_r:svirt_t:s0:c1021.c1023"
        );
        let line = format!("type=AVC msg=audit(1795653811.452:50): avc:  denied  {{ entrypoint }} for  pid=417 comm=\"selinux-harnes\" path=\"/usr/bin/true\" dev=\"vda\" ino=1 scontext={canary} tcontext=system_u:object_r:bin_t:s0 tclass=file permissive=0");
        let other = r#"type=AVC msg=audit(1795653811.452:51): avc:  denied  { read } for  pid=418 comm="qemu-system-x86" name="a.img" dev="vda" ino=2 scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:svirt_image_t:s0:c1,c2 tclass=file permissive=0"#;
        let mut records = crate::evidence::audit::parse_records(&format!("{line}\n{other}\n"));
        assert_eq!(take_canary(&mut records, &canary).unwrap(), 1);
        assert_eq!(records.len(), 1);
        assert!(!is_canary(&records[0], &canary));
        let e = take_canary(&mut records, &canary).unwrap_err().to_string();
        assert!(e.contains("did not reach the audit log"), "{e}");
    }

    fn closed(text: &str, enforcing: bool, canary_allowed: bool) -> ClosedStep {
        ClosedStep {
            audit: StepAudit::parse(text),
            enforcing,
            canary_allowed,
        }
    }

    fn start(enforcing: bool) -> StepStart {
        StepStart {
            offset: 0,
            status: AuditStatus::default(),
            enforcing,
        }
    }

    const NOISE_PERMISSIVE: &str = r#"type=AVC msg=audit(1795653826.396:83): avc:  denied  { read } for  pid=518 comm="qemu-system-x86" name="possible" dev="sysfs" ino=46 scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:sysfs_t:s0 tclass=file permissive=1"#;

    #[test]
    fn every_sign_of_permissive_is_named_with_its_step() {
        assert!(permissive_signs(1, &start(true), &closed("", true, false)).is_empty());
        // A record the noise filter would drop still counts: it is read before the filter.
        let s = permissive_signs(2, &start(true), &closed(NOISE_PERMISSIVE, true, false));
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(
            s[0].starts_with("step 2 logged 1 permissive=1 record(s) (source types: svirt_t)"),
            "{s:?}"
        );
        let s = permissive_signs(3, &start(false), &closed("", true, false));
        assert_eq!(s, ["SELinux was permissive at the start of step 3"]);
        let s = permissive_signs(4, &start(true), &closed("", false, false));
        assert_eq!(s, ["SELinux was permissive at the end of step 4"]);
        let off = "type=MAC_STATUS msg=audit(1795653900.200:220): enforcing=0 old_enforcing=1 auid=0 ses=1";
        let s = permissive_signs(5, &start(true), &closed(off, true, false));
        assert!(
            s[0].contains("switched to permissive during step 5"),
            "{s:?}"
        );
        let s = permissive_signs(6, &start(true), &closed("", true, true));
        assert!(s[0].contains("svirt_t is permissive"), "{s:?}");
    }

    #[test]
    fn involved_types_are_sorted_once() {
        let t = involved_types(["svirt_t".to_string(), "unconfined_t".to_string()]);
        assert_eq!(t, ["svirt_t", "svirt_tcg_t", "unconfined_t", "virtd_t"]);
    }
}

/// How long the marker may take to come back. auditd writes it within milliseconds; a loaded
/// TCG guest took up to ~1 s for a burst. Past this, auditd is not writing.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);

/// A run's audit log with the proof that goes with every step's reading of it.
pub struct AuditPath {
    log: AuditLog,
    canary: Context,
    run_id: String,
}

/// What `begin` saw when a step started.
#[derive(Debug, Clone)]
pub struct StepStart {
    pub offset: u64,
    status: AuditStatus,
    pub enforcing: bool,
}

/// A step's audit evidence, closed by the barrier and proven complete.
#[derive(Debug, Clone)]
pub struct ClosedStep {
    pub audit: StepAudit,
    /// Enforcing when the step's evidence was closed.
    pub enforcing: bool,
    /// The canary exec ran instead of being refused (permissive).
    pub canary_allowed: bool,
}

impl AuditPath {
    pub fn open(log: &Path, run_id: &str) -> Result<AuditPath> {
        let log = AuditLog::open(log)?;
        let me = crate::selinux_ops::process_context(std::process::id())
            .map_err(LivenessError::OwnContext)?;
        Ok(AuditPath {
            log,
            canary: canary_context(&me)?,
            run_id: run_id.to_string(),
        })
    }

    pub fn log(&mut self) -> &mut AuditLog {
        &mut self.log
    }

    /// A step starts now: where its records begin, the kernel's lost counter, the mode.
    pub fn begin(&mut self) -> Result<StepStart> {
        let offset = self.log.offset()?;
        Ok(StepStart {
            offset,
            status: AuditStatus::read()?,
            enforcing: enforcing()?,
        })
    }

    /// Close step `index`: provoke the canary denial, send the marker and wait until auditd
    /// wrote it, check that the kernel lost nothing meanwhile, and read the step's records.
    /// Any doubt about the audit path is an error naming it (the caller says which step).
    pub fn close(&mut self, start: &StepStart, index: usize) -> Result<ClosedStep> {
        let canary_allowed = !provoke(&self.canary)?;
        let marker = format!("selinux-harness:{}:step{index}:barrier", self.run_id);
        self.log.barrier(start.offset, &marker, BARRIER_TIMEOUT)?;
        let now = AuditStatus::read()?;
        if let Some(why) = start.status.loss_since(&now) {
            return Err(LivenessError::Lost(why));
        }
        let mut audit = self.log.step_since(start.offset)?;
        let enforcing = enforcing()?;
        let present = take_canary(&mut audit.records, &self.canary);
        // In permissive mode the kernel logs a denial once and caches the grant: the canary
        // proves nothing then, and the step is inconclusive anyway.
        if !canary_allowed && enforcing {
            present?;
        }
        Ok(ClosedStep {
            audit,
            enforcing,
            canary_allowed,
        })
    }

    /// The step's records again (an expected denial may still be on its way), without the
    /// canary's.
    pub fn read(&mut self, start: &StepStart) -> Result<StepAudit> {
        let mut audit = self.log.step_since(start.offset)?;
        audit.records.retain(|r| !is_canary(r, &self.canary));
        Ok(audit)
    }
}

fn enforcing() -> Result<bool> {
    crate::selinux_ops::is_enforcing().map_err(LivenessError::Mode)
}

/// Why step `index`'s evidence cannot decide anything: every sign of permissive mode, from
/// the raw records (before any noise filter) and from the mode around the step.
pub fn permissive_signs(index: usize, start: &StepStart, closed: &ClosedStep) -> Vec<String> {
    let mut out = Vec::new();
    if !start.enforcing || !closed.enforcing {
        out.push(format!(
            "SELinux was permissive {} step {index}",
            if start.enforcing {
                "at the end of"
            } else {
                "at the start of"
            }
        ));
    }
    if closed.canary_allowed && closed.enforcing {
        out.push(format!(
            "the audit canary (an exec into svirt_t through a bin_t file, which the policy never allows) went through in step {index}: svirt_t is permissive"
        ));
    }
    if !closed.audit.permissive_switches.is_empty() {
        out.push(format!(
            "SELinux was switched to permissive during step {index} ({} MAC_STATUS enforcing=0 record(s))",
            closed.audit.permissive_switches.len()
        ));
    }
    let permissive: Vec<&AvcRecord> = closed
        .audit
        .records
        .iter()
        .filter(|r| r.permissive)
        .collect();
    if !permissive.is_empty() {
        let domains: std::collections::BTreeSet<&str> = permissive
            .iter()
            .filter_map(|r| r.scontext.as_ref().map(|c| c.kind.as_str()))
            .collect();
        out.push(format!(
            "step {index} logged {} permissive=1 record(s) (source types: {})",
            permissive.len(),
            domains.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !closed.audit.policy_loads.is_empty() {
        out.push(format!(
            "the policy was reloaded during step {index}: the types checked permissive at the start may no longer be what the kernel enforces"
        ));
    }
    out
}
