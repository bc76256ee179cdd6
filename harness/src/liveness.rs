//! Proof that the audit path works, so that an absence of AVC records can be trusted.
//!
//! Three things can make a "no denial" pass when denials happened: auditd not writing (dead,
//! suspended by a full disk, writing elsewhere), the kernel dropping records before auditd
//! (backlog full, rate limit: counted in `auditctl -s`'s `lost`), and rules that keep AVC
//! records from the log (an `exclude` rule on msgtype=AVC). Every step closes with a canary
//! denial and a marker: the marker must come back (auditd writes this log, and everything
//! queued before the marker is in it), the canary must be among the step's records (AVC
//! records reach the log), and the kernel's lost counter must not have moved.

use std::process::{Command, Stdio};

use crate::context::Context;
use crate::evidence::AvcRecord;

/// The canary's MCS level: never one libvirt hands out (it uses two categories), reserved for
/// the harness so its own records can be told apart.
pub const CANARY_LEVEL: &str = "s0:c1021.c1023";
/// What the canary tries to run. Entering svirt_t through a bin_t file is never allowed, so the
/// exec is refused with a denial (`entrypoint`, or `transition` without the probe module).
const CANARY_EXE: &str = "/bin/true";

/// The context the canary exec is attempted in: the caller's user and role, svirt_t at
/// `CANARY_LEVEL`.
pub fn canary_context(current: &Context) -> Result<Context, String> {
    crate::probe::probe_context(current, "svirt_t", CANARY_LEVEL)
}

/// Provoke the canary denial. Ok(true): refused, as it must be in enforcing mode; Ok(false):
/// the exec went through (the kernel is permissive, or the policy allows what it never should).
pub fn provoke(context: &Context) -> Result<bool, String> {
    let child = {
        let _exec = crate::probe::ExecContextGuard::set(context)?;
        Command::new(CANARY_EXE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    match child {
        Err(e) if e.raw_os_error() == Some(nix::libc::EACCES) => Ok(true),
        Err(e) => Err(format!("the audit canary ({CANARY_EXE} as {context}): {e}")),
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
pub fn take_canary(records: &mut Vec<AvcRecord>, canary: &Context) -> Result<usize, String> {
    let before = records.len();
    records.retain(|r| !is_canary(r, canary));
    match before - records.len() {
        0 => Err(format!(
            "the audit canary's denial (exec of {CANARY_EXE} as {canary}) did not reach the audit log though the marker sent after it did: AVC records are kept from the log (an audit exclude rule? `auditctl -l`), so an absence of denials proves nothing"
        )),
        n => Ok(n),
    }
}

/// Whether the loaded policy makes `kind` a permissive domain: the kernel's access decision
/// for it carries AVD_FLAGS_PERMISSIVE (selinuxfs `access`, as security_compute_av_flags).
pub fn permissive_type(kind: &str) -> Result<bool, String> {
    let class = std::fs::read_to_string("/sys/fs/selinux/class/process/index")
        .map_err(|e| format!("cannot read the process class index: {e}"))?;
    // object_r goes with every type, so the context is valid whatever roles the type has.
    let ctx = format!("system_u:object_r:{kind}:s0");
    let request = format!("{ctx} {ctx} {}", class.trim());
    let reply = crate::selinux_ops::transact("/sys/fs/selinux/access", &request)
        .map_err(|e| format!("cannot ask the kernel about {kind}: {e}"))?;
    access_flags(&reply)
        .map(|f| f & AVD_FLAGS_PERMISSIVE != 0)
        .ok_or_else(|| format!("the kernel's access answer for {kind} is unreadable: {reply:?}"))
}

const AVD_FLAGS_PERMISSIVE: u32 = 1;

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
        let mut records = crate::audit::parse_records(&format!("{line}\n{other}\n"));
        assert_eq!(take_canary(&mut records, &canary), Ok(1));
        assert_eq!(records.len(), 1);
        assert!(!is_canary(&records[0], &canary));
        let e = take_canary(&mut records, &canary).unwrap_err();
        assert!(e.contains("did not reach the audit log"), "{e}");
    }

    #[test]
    fn involved_types_are_sorted_once() {
        let t = involved_types(["svirt_t".to_string(), "unconfined_t".to_string()]);
        assert_eq!(t, ["svirt_t", "svirt_tcg_t", "unconfined_t", "virtd_t"]);
    }
}
