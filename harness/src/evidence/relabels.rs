//! The kernel's own record of every relabel of a watched file, merged into its label timeline.
//!
//! inotify says *that* a label changed, not to what: a label replaced again before the watcher
//! reads it is never seen (18.5% caught at 1 ms, BENCHMARKS.md). The kernel checks
//! `relabelfrom` (the old label) and `relabelto` (the new one) on every setxattr of
//! security.selinux; the image's `harness_relabel_audit` module (policy-modules/
//! harness-relabel-audit.cil) makes it log both as `avc: granted` records, with the inode and
//! the event's serial, however short the label lived. Each pair is one relabel, in log order.
//!
//! The merged timeline is the kernel's chain of values; the inotify samples check it. Anything
//! the chain cannot account for is a gap, an entry with an error, so an absence (`never_level`)
//! cannot pass on it: a relabel from a value the chain does not hold (a relabel in between went
//! unrecorded), a relabel to a type the module does not watch, a value inotify read that no
//! record shows, a final label other than the chain's last, and the module not in force.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::context::Context;
use crate::evidence::{AvcRecord, LabelChange};

/// The types whose relabels the module logs (its `harness_relabel_watched` attribute).
pub const WATCHED_TYPES: [&str; 3] = ["svirt_image_t", "virt_image_t", "virt_content_t"];

/// Why the kernel's relabel records cannot be trusted to be complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelAuditError {
    #[error("cannot ask the kernel whether it logs relabels of {kind}: {why}")]
    Ask { kind: String, why: String },
    #[error("the kernel's access answer is unreadable: {0:?}")]
    Unreadable(String),
    #[error("the kernel has no file permission {0}")]
    NoPermission(&'static str),
    #[error("the loaded policy does not log {perm} of {kind} files by {domain} (module harness_relabel_audit not loaded?)")]
    NotLogged {
        perm: &'static str,
        kind: String,
        domain: String,
    },
    #[error("the inode of {0} could not be read")]
    NoInode(String),
}

/// One relabel the kernel granted: `from` is None when only the new label's type is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRelabel {
    pub serial: u64,
    /// Wall-clock time of the record, in microseconds since the epoch (the kernel's stamp has
    /// millisecond resolution).
    pub at_unix_us: u64,
    pub ino: u64,
    pub pid: u64,
    pub from: Option<Context>,
    pub to: Context,
}

/// A relabel the kernel began to record but whose new value it did not: the file was
/// relabelled to a type the module does not watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnrecordedRelabel {
    pub serial: u64,
    pub at_unix_us: u64,
    pub ino: u64,
    pub from: Context,
}

/// What the kernel's relabel records of a step say, per inode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelRelabels {
    pub relabels: Vec<KernelRelabel>,
    pub unrecorded: Vec<UnrecordedRelabel>,
}

/// The header fields of a record's raw line the parsed record does not keep.
struct Header {
    serial: u64,
    at_unix_us: u64,
    ino: u64,
    pid: u64,
}

fn header(raw: &str) -> Option<Header> {
    static STAMP: OnceLock<Regex> = OnceLock::new();
    static FIELD: OnceLock<Regex> = OnceLock::new();
    let stamp = STAMP.get_or_init(|| {
        Regex::new(r"msg=audit\((\d{1,16})\.(\d{1,3}):(\d{1,20})\)").expect("static regex")
    });
    let field =
        FIELD.get_or_init(|| Regex::new(r"\s(ino|pid)=(\d{1,20})\b").expect("static regex"));
    let s = stamp.captures(raw)?;
    let secs: u64 = s[1].parse().ok()?;
    let millis: u64 = s[2].parse().ok()?;
    let mut ino = None;
    let mut pid = None;
    for c in field.captures_iter(raw) {
        let v: u64 = c[2].parse().ok()?;
        match &c[1] {
            "ino" => ino = Some(v),
            _ => pid = Some(v),
        }
    }
    Some(Header {
        serial: s[3].parse().ok()?,
        at_unix_us: secs.checked_mul(1_000_000)?.checked_add(millis * 1000)?,
        ino: ino?,
        pid: pid?,
    })
}

fn is_relabel_record(r: &AvcRecord) -> bool {
    r.record_type == "AVC"
        && r.tclass.as_deref() == Some("file")
        && r.perms
            .iter()
            .all(|p| p == "relabelfrom" || p == "relabelto")
        && !r.perms.is_empty()
}

/// Whether a record is one the module makes the kernel log (a granted relabel of a file):
/// evidence for the timeline, not an AVC a check judges.
pub fn is_granted_relabel(r: &AvcRecord) -> bool {
    !r.denied && is_relabel_record(r)
}

/// Pairs the step's granted relabel records into relabels, in log order. A `relabelfrom`
/// is followed by the same task's `relabelto` on the same inode (same syscall, so the same
/// serial when the task has an audit context); a denial of `relabelto` or of the filesystem's
/// `associate` in between means the setxattr was refused: no relabel.
pub fn pair(records: &[AvcRecord]) -> KernelRelabels {
    let mut out = KernelRelabels::default();
    // (pid, ino) -> the relabelfrom still waiting for its relabelto.
    let mut pending: BTreeMap<(u64, u64), (Header, Context)> = BTreeMap::new();
    for r in records {
        let Some(h) = header(&r.raw) else { continue };
        let key = (h.pid, h.ino);
        if r.denied {
            let refused_relabel = is_relabel_record(r);
            let refused_associate = r.tclass.as_deref() == Some("filesystem")
                && r.perms.iter().any(|p| p == "associate");
            if refused_relabel {
                pending.remove(&key);
            }
            if refused_associate {
                pending.remove(&key);
                // associate is checked after relabelto, with the new label as the source.
                if let Some(i) = out
                    .relabels
                    .iter()
                    .rposition(|k| (k.pid, k.ino) == key && Some(&k.to) == r.scontext.as_ref())
                {
                    out.relabels.remove(i);
                }
            }
            continue;
        }
        if !is_relabel_record(r) {
            continue;
        }
        let Some(tcontext) = r.tcontext.clone() else {
            continue;
        };
        let from_perm = r.perms.iter().any(|p| p == "relabelfrom");
        let to_perm = r.perms.iter().any(|p| p == "relabelto");
        if from_perm {
            if let Some((old, from)) = pending.remove(&key) {
                out.unrecorded.push(UnrecordedRelabel {
                    serial: old.serial,
                    at_unix_us: old.at_unix_us,
                    ino: old.ino,
                    from,
                });
            }
            pending.insert(key, (h, tcontext));
        } else if to_perm {
            let from = pending.remove(&key).map(|(_, c)| c);
            out.relabels.push(KernelRelabel {
                serial: h.serial,
                at_unix_us: h.at_unix_us,
                ino: h.ino,
                pid: h.pid,
                from,
                to: tcontext,
            });
        }
    }
    for ((_, _), (h, from)) in pending {
        out.unrecorded.push(UnrecordedRelabel {
            serial: h.serial,
            at_unix_us: h.at_unix_us,
            ino: h.ino,
            from,
        });
    }
    out.unrecorded.sort_by_key(|u| u.serial);
    out
}

fn show(c: Option<&Context>) -> String {
    c.map_or_else(|| "no label".to_string(), Context::to_string)
}

/// The timeline of the file with inode `ino`: the kernel's chain of values from the label
/// inotify read at the start, checked against every inotify sample. `started_unix_us` is the
/// wall-clock time of the watch's start (the kernel stamps wall-clock time); `kernel_on` says
/// whether the loaded policy logs this file's relabels (see `relabels_audited`).
pub fn merge(
    inotify: &[LabelChange],
    kernel: &KernelRelabels,
    ino: u64,
    started_unix_us: u64,
    kernel_on: Result<(), RelabelAuditError>,
) -> Vec<LabelChange> {
    let Some(first) = inotify.first() else {
        return Vec::new();
    };
    let at = |unix_us: u64| unix_us.saturating_sub(started_unix_us);
    let gap = |at_us: u64, why: String| LabelChange {
        at_us,
        context: None,
        error: Some(why),
    };
    let mut out = vec![first.clone()];
    if let Err(why) = kernel_on {
        // Without the kernel's records only inotify looked: a label shorter than its read
        // went unseen.
        out.extend(inotify[1..].iter().cloned());
        out.push(gap(
            inotify.last().map_or(0, |c| c.at_us),
            format!("no kernel record of relabels ({why}): a label that lived shorter than the watcher's read was not seen"),
        ));
        return out;
    }
    let mut current = first.context.clone();
    let mut values = vec![current.clone()];
    for k in kernel.relabels.iter().filter(|k| k.ino == ino) {
        if let Some(from) = &k.from {
            if Some(from) != current.as_ref() {
                out.push(gap(
                    at(k.at_unix_us),
                    format!(
                        "the kernel's relabel {} (serial {}) is from {from}, but the label was {}: a relabel in between was not recorded",
                        k.to,
                        k.serial,
                        show(current.as_ref())
                    ),
                ));
            }
        }
        out.push(LabelChange {
            at_us: at(k.at_unix_us),
            context: Some(k.to.clone()),
            error: None,
        });
        current = Some(k.to.clone());
        values.push(current.clone());
    }
    for u in kernel.unrecorded.iter().filter(|u| u.ino == ino) {
        out.push(gap(
            at(u.at_unix_us),
            format!(
                "relabelled from {} (serial {}) to a type whose relabels the kernel does not log (only {} are watched)",
                u.from,
                u.serial,
                WATCHED_TYPES.join(", ")
            ),
        ));
    }
    for s in &inotify[1..] {
        match &s.error {
            // Errors and overflows of the watcher stay: they are its own blind spots.
            Some(_) => out.push(s.clone()),
            None if !values.contains(&s.context) => out.push(gap(
                s.at_us,
                format!(
                    "the watcher read {}, which no kernel record shows: the kernel's records are incomplete",
                    show(s.context.as_ref())
                ),
            )),
            None => {}
        }
    }
    if let Some(last) = inotify.last().filter(|l| l.error.is_none()) {
        if last.context != current {
            out.push(gap(
                last.at_us,
                format!(
                    "the label at the end is {}, but the kernel's last recorded value is {}",
                    show(last.context.as_ref()),
                    show(current.as_ref())
                ),
            ));
        }
    }
    out
}

/// Merges the kernel's relabel records of a step into its timelines (`Evidence::Timeline`,
/// inotify's samples), each by the inode its file had when the watch began (`inodes`, by the
/// scenario's file name). A timeline whose file's inode is unknown gets a gap.
pub fn into_timelines(
    evidence: &mut [crate::evidence::Evidence],
    inodes: &[(String, Option<u64>)],
    started_unix_us: u64,
    records: &[AvcRecord],
    kernel_on: &Result<(), RelabelAuditError>,
) {
    let kernel = pair(records);
    for e in evidence {
        let crate::evidence::Evidence::Timeline { file, changes, .. } = e else {
            continue;
        };
        let ino = inodes.iter().find(|(n, _)| n == file).and_then(|(_, i)| *i);
        let on = match (ino, kernel_on) {
            (Some(_), Ok(())) => Ok(()),
            (None, _) => Err(RelabelAuditError::NoInode(file.clone())),
            (_, Err(why)) => Err(why.clone()),
        };
        *changes = merge(changes, &kernel, ino.unwrap_or(0), started_unix_us, on);
    }
}

/// Whether the loaded policy logs every relabel of the watched types (`relabels_audited` for
/// each, by libvirtd's domain and the harness's own).
pub fn watched_relabels_audited() -> Result<(), RelabelAuditError> {
    let me = crate::selinux_ops::process_context(std::process::id())
        .map(|c| c.kind)
        .unwrap_or_else(|_| "unconfined_t".into());
    for kind in WATCHED_TYPES {
        for source in ["virtd_t", me.as_str()] {
            relabels_audited(source, kind)?;
        }
    }
    Ok(())
}

/// Whether the loaded policy makes the kernel log relabels of files of `kind` by `source`:
/// the kernel's access decision for them has relabelfrom and relabelto in its auditallow
/// vector (selinuxfs `access`). Err says why not.
pub fn relabels_audited(source: &str, kind: &str) -> Result<(), RelabelAuditError> {
    let ask = |why: String| RelabelAuditError::Ask {
        kind: kind.to_string(),
        why,
    };
    let class = std::fs::read_to_string("/sys/fs/selinux/class/file/index")
        .map_err(|e| ask(format!("cannot read the file class index: {e}")))?;
    let request = format!(
        "system_u:object_r:{source}:s0 system_u:object_r:{kind}:s0 {}",
        class.trim()
    );
    let reply = crate::selinux_ops::transact("/sys/fs/selinux/access", &request)
        .map_err(|e| ask(e.to_string()))?;
    let auditallow = reply
        .split_whitespace()
        .nth(2)
        .and_then(|w| u32::from_str_radix(w, 16).ok())
        .ok_or_else(|| RelabelAuditError::Unreadable(reply.clone()))?;
    for perm in ["relabelfrom", "relabelto"] {
        let bit: u32 = std::fs::read_to_string(format!("/sys/fs/selinux/class/file/perms/{perm}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|b| (1..=32).contains(b))
            .ok_or(RelabelAuditError::NoPermission(perm))?;
        if auditallow & (1 << (bit - 1)) == 0 {
            return Err(RelabelAuditError::NotLogged {
                perm,
                kind: kind.to_string(),
                domain: source.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::audit::parse_records;
    use crate::evidence::labels;

    const A: &str = "system_u:object_r:virt_image_t:s0";
    const B: &str = "system_u:object_r:svirt_image_t:s0:c161,c423";
    const C: &str = "system_u:object_r:svirt_image_t:s0:c146,c1010";

    fn rec(serial: u64, ms: u64, verdict: &str, perm: &str, pid: u64, ino: u64, t: &str) -> String {
        format!("type=AVC msg=audit(1796143166.{ms:03}:{serial}): avc:  {verdict}  {{ {perm} }} for  pid={pid} comm=\"rpc-libvirtd\" name=\"vm1.img\" dev=\"vda\" ino={ino} scontext=system_u:system_r:virtd_t:s0-s0:c0.c1023 tcontext={t} tclass=file{}\n",
            if verdict == "denied" { " permissive=0" } else { "" })
    }

    fn relabel(serial: u64, ms: u64, ino: u64, from: &str, to: &str) -> String {
        rec(serial, ms, "granted", "relabelfrom", 300, ino, from)
            + &rec(serial, ms, "granted", "relabelto", 300, ino, to)
    }

    fn sample(at_us: u64, c: &str) -> LabelChange {
        LabelChange {
            at_us,
            context: Some(c.parse().unwrap()),
            error: None,
        }
    }

    fn start_us() -> u64 {
        1_796_143_166_000_000
    }

    #[test]
    fn granted_records_are_paired_into_relabels_in_order() {
        let log = relabel(90, 100, 23143, A, B) + &relabel(91, 100, 23143, B, C);
        let k = pair(&parse_records(&log));
        assert!(k.unrecorded.is_empty(), "{k:?}");
        let got: Vec<(u64, String, String)> = k
            .relabels
            .iter()
            .map(|r| {
                (
                    r.serial,
                    r.from.as_ref().unwrap().to_string(),
                    r.to.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [(90, A.into(), B.into()), (91, B.into(), C.into())],
            "{k:?}"
        );
        assert_eq!(k.relabels[0].ino, 23143);
        assert_eq!(k.relabels[0].at_unix_us, start_us() + 100_000);
    }

    #[test]
    fn a_label_the_watcher_never_read_is_in_the_merged_timeline() {
        // B lived microseconds: inotify read only A, then A again (an unexplained event).
        let log = relabel(90, 5, 7, A, B) + &relabel(91, 5, 7, B, A);
        let k = pair(&parse_records(&log));
        let merged = merge(&[sample(0, A)], &k, 7, start_us(), Ok(()));
        assert_eq!(labels(&merged), [A, B, A]);
        assert_eq!(merged[1].at_us, 5000);
        // Another inode's relabels are not this file's.
        assert_eq!(
            labels(&merge(&[sample(0, A)], &k, 8, start_us(), Ok(()))),
            [A]
        );
    }

    #[test]
    fn a_refused_relabel_is_no_change() {
        let log = rec(90, 5, "granted", "relabelfrom", 300, 7, A)
            + &rec(90, 5, "denied", "relabelto", 300, 7, B)
            + &relabel(92, 6, 7, A, C)
            + &rec(
                92,
                6,
                "denied",
                "associate",
                300,
                7,
                "system_u:object_r:fs_t:s0",
            )
            .replace("tclass=file", "tclass=filesystem")
            .replace(
                "scontext=system_u:system_r:virtd_t:s0-s0:c0.c1023",
                &format!("scontext={C}"),
            );
        let k = pair(&parse_records(&log));
        assert_eq!(k, KernelRelabels::default());
    }

    #[test]
    fn every_gap_is_an_error_entry() {
        // A relabel to an unwatched type, then (another task) from it: relabelto only.
        let user = "system_u:object_r:user_home_t:s0";
        let log = rec(90, 5, "granted", "relabelfrom", 300, 7, A)
            + &rec(91, 6, "granted", "relabelto", 301, 7, B);
        let k = pair(&parse_records(&log));
        assert_eq!(k.unrecorded.len(), 1);
        assert!(k.relabels[0].from.is_none());
        let merged = merge(
            &[sample(0, A), sample(5500, user), sample(9000, B)],
            &k,
            7,
            start_us(),
            Ok(()),
        );
        let l = labels(&merged);
        assert_eq!(&l[..2], [A, B], "{l:?}");
        assert!(
            l[2].contains("to a type whose relabels the kernel does not log"),
            "{l:?}"
        );
        assert!(
            l[3].contains(&format!(
                "the watcher read {user}, which no kernel record shows"
            )),
            "{l:?}"
        );
        assert_eq!(l.len(), 4, "{l:?}");

        // A chain that does not start where the label was.
        let k = pair(&parse_records(&relabel(90, 5, 7, C, B)));
        let l = labels(&merge(
            &[sample(0, A), sample(9000, B)],
            &k,
            7,
            start_us(),
            Ok(()),
        ));
        assert!(
            l[1].contains("a relabel in between was not recorded"),
            "{l:?}"
        );
        assert_eq!(l[2], B);

        // The watcher's final read disagrees with the chain.
        let l = labels(&merge(
            &[sample(0, A), sample(9000, B)],
            &KernelRelabels::default(),
            7,
            start_us(),
            Ok(()),
        ));
        assert!(
            l.iter().any(|x| x.contains("which no kernel record shows")),
            "{l:?}"
        );
        assert!(
            l.last().unwrap().contains("the label at the end is"),
            "{l:?}"
        );

        // No kernel records at all: the inotify timeline, and why it is not enough.
        let l = labels(&merge(
            &[sample(0, A), sample(9000, B)],
            &KernelRelabels::default(),
            7,
            start_us(),
            Err(RelabelAuditError::NoInode("img".into())),
        ));
        assert_eq!(&l[..2], [A, B]);
        assert!(
            l[2].contains("no kernel record of relabels (the inode of img could not be read)"),
            "{l:?}"
        );
    }

    #[test]
    fn the_watchers_own_errors_stay_in_the_timeline() {
        let overflow = LabelChange {
            at_us: 50,
            context: None,
            error: Some(crate::evidence::timeline::OVERFLOW.into()),
        };
        let l = labels(&merge(
            &[sample(0, A), overflow],
            &KernelRelabels::default(),
            7,
            start_us(),
            Ok(()),
        ));
        assert_eq!(
            l,
            [
                A.to_string(),
                format!("error: {}", crate::evidence::timeline::OVERFLOW)
            ]
        );
    }

    #[test]
    fn granted_relabels_are_not_denials() {
        let recs = parse_records(&relabel(90, 5, 7, A, B));
        assert_eq!(recs.len(), 2);
        assert!(recs
            .iter()
            .all(|r| !r.denied && !r.permissive && is_granted_relabel(r)));
        let denied = parse_records(&rec(90, 5, "denied", "relabelto", 300, 7, B));
        assert!(!is_granted_relabel(&denied[0]));
    }
}
