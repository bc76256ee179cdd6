//! A step's settle window on the target (see `scenario::Settle`): a fixed window, or one that
//! ends when what it waits for has happened - the guest read its disk again, or was refused
//! trying - with the scenario's duration kept only as the deadline. The step's audit barrier
//! follows in every case, so an absence is proven up to the barrier.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::evidence::liveness::{AuditPath, StepStart};
use crate::evidence::AvcRecord;
use crate::host::libvirt::Libvirt;
use crate::interrupt::Interrupt;
use crate::run::plan::Plan;
use crate::scenario::{Scenario, Settle, Until};
use crate::wait::{wait_until, Waited};

/// How often a condition is looked at: a read counter and the log's new bytes are cheap, and
/// a guest's firmware takes tens of milliseconds at least to get to its disk.
const POLL: Duration = Duration::from_millis(50);

/// What a condition saw that ends the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The read counter rose past its value before the action.
    Read { before: i64, now: i64 },
    /// The reader's QEMU was denied something (the read it tried, or what leads to it).
    Denied { records: usize },
}

/// Whether the guest has touched its disk since the action: it read (the counter rose) or its
/// QEMU was denied (a refused read is not counted, but its denial is logged before the
/// refusal reaches QEMU).
pub fn disk_touched(before: i64, now: Option<i64>, denials: usize) -> Option<Seen> {
    if denials > 0 {
        return Some(Seen::Denied { records: denials });
    }
    match now {
        Some(now) if now > before => Some(Seen::Read { before, now }),
        _ => None,
    }
}

/// Denials in `records` whose source is exactly `reader` (the QEMU of the guest waited for).
pub fn denials_by(records: &[AvcRecord], reader: &Context) -> usize {
    records
        .iter()
        .filter(|r| r.denied && r.scontext.as_ref() == Some(reader))
        .count()
}

/// How a settle window ended, for the run's notes and verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// A fixed window ran its length.
    Window(Duration),
    /// The condition held after this long.
    Met {
        after: Duration,
        seen: Seen,
    },
    /// The deadline passed and the condition never held: an absence seen in this window
    /// proves nothing. Says why.
    Deadline(String),
    Interrupted,
}

impl Settled {
    /// The run's note for step `index` about image `image`.
    pub fn describe(&self, index: usize, image: &str) -> String {
        match self {
            Settled::Window(d) => format!("step {index}: watched a fixed {d:?} after the action"),
            Settled::Met {
                after,
                seen: Seen::Read { before, now },
            } => format!(
                "step {index}: settled after {:.2} s: {image} was read again (read requests {before} -> {now})",
                after.as_secs_f64()
            ),
            Settled::Met {
                after,
                seen: Seen::Denied { records },
            } => format!(
                "step {index}: settled after {:.2} s: the QEMU of {image}'s guest was denied ({records} record(s))",
                after.as_secs_f64()
            ),
            Settled::Deadline(why) => format!("step {index}: settle deadline passed: {why}"),
            Settled::Interrupted => format!("step {index}: settle interrupted"),
        }
    }
}

impl Settled {
    /// Why step `index`'s absence checks prove nothing after this window, if they do not: its
    /// condition never held, though the action went through (a failed action fails the step
    /// anyway) and the step claims an absence (`no_avc`, `avc: none`).
    pub fn unproven_absence(
        &self,
        index: usize,
        action_ok: bool,
        expect: &crate::scenario::Expect,
    ) -> Option<String> {
        let Settled::Deadline(why) = self else {
            return None;
        };
        let claims_absence = !expect.no_avc.is_empty()
            || matches!(expect.avc, Some(crate::scenario::AvcExpect::None));
        (action_ok && claims_absence).then(|| {
            format!("step {index}'s absence of denials proves nothing: what its settle waits for never happened ({why})")
        })
    }
}

/// Why the read counter a `disk_read` condition starts from is not known.
#[derive(Debug, thiserror::Error)]
pub enum NoCounter {
    #[error("cannot read {domain}'s block statistics: {message}")]
    Stats { domain: String, message: String },
    #[error("no domain has {0} as a disk")]
    NoDomain(String),
    #[error("no libvirt connection")]
    NoLibvirt,
}

/// A settle taken before the step's action, so that what the guest does right after it
/// counts.
pub enum Pending {
    Window(Duration),
    DiskRead {
        image: String,
        domain: String,
        path: PathBuf,
        deadline: Duration,
        /// The counter before the action, or why it could not be read.
        before: Result<i64, NoCounter>,
    },
}

impl Pending {
    /// Read what the condition starts from; call before the action.
    pub fn before_action(
        settle: &Settle,
        plan: &Plan,
        scenario: &Scenario,
        libvirt: Option<&Libvirt>,
    ) -> Pending {
        let u = match settle {
            Settle::Window(d) => return Pending::Window(d.0),
            Settle::Until(u) => u,
        };
        match u.until {
            Until::DiskRead => {
                // Validation made sure exactly one domain has the image as a disk.
                let domain = scenario
                    .domains
                    .iter()
                    .find(|(_, d)| {
                        d.disks
                            .iter()
                            .any(|disk| disk.to_disk().image.value == u.image.value)
                    })
                    .map(|(n, _)| plan.domain_name(n).to_string());
                let path = plan.image_path(&u.image.value).to_path_buf();
                let before = match (&domain, libvirt) {
                    (Some(d), Some(lv)) => {
                        lv.block_read_requests(d, &path)
                            .map_err(|e| NoCounter::Stats {
                                domain: d.clone(),
                                message: e.message,
                            })
                    }
                    (None, _) => Err(NoCounter::NoDomain(u.image.value.to_string())),
                    (_, None) => Err(NoCounter::NoLibvirt),
                };
                Pending::DiskRead {
                    image: u.image.value.to_string(),
                    domain: domain.unwrap_or_default(),
                    path,
                    deadline: u.deadline.0,
                    before,
                }
            }
        }
    }

    /// The image the condition is about, for notes.
    pub fn image(&self) -> &str {
        match self {
            Pending::Window(_) => "",
            Pending::DiskRead { image, .. } => image,
        }
    }

    /// Wait after the action until the window ends.
    pub fn wait(
        &self,
        libvirt: Option<&Libvirt>,
        audit: &mut AuditPath,
        start: &StepStart,
        interrupt: &Interrupt,
        shared_by: u32,
    ) -> Settled {
        let began = Instant::now();
        let (domain, path, deadline, before) = match self {
            Pending::Window(d) => {
                return match wait_until(Some(began + *d), POLL, Some(interrupt), || false) {
                    Waited::Interrupted => Settled::Interrupted,
                    _ => Settled::Window(*d),
                }
            }
            Pending::DiskRead {
                domain,
                path,
                deadline,
                before,
                ..
            } => (domain, path, *deadline, before),
        };
        // A deadline is written for a target that runs one scenario; with N runs sharing its
        // CPUs a guest gets about 1/N of the time, so it gets N times as long. It costs
        // nothing when the condition comes early, and a window that never ends proves nothing.
        let written = deadline;
        let deadline = deadline * shared_by.max(1);
        let deadline_shown = if shared_by > 1 {
            format!("{deadline:?} ({written:?} x {shared_by} runs at once)")
        } else {
            format!("{deadline:?}")
        };
        let until = Some(began + deadline);
        let before = match before {
            Ok(b) => *b,
            Err(why) => {
                return match wait_until(until, POLL, Some(interrupt), || false) {
                    Waited::Interrupted => Settled::Interrupted,
                    _ => Settled::Deadline(format!(
                        "{why}, so the window ran its whole {deadline_shown} and proves no absence"
                    )),
                };
            }
        };
        let reader = crate::host::libvirt::qemu_pid(domain)
            .and_then(|pid| crate::selinux_ops::process_context(pid).ok());
        let mut last = None;
        let mut problem = None;
        let waited = wait_until(until, POLL, Some(interrupt), || {
            let now = libvirt.map(|lv| lv.block_read_requests(domain, path));
            let now = match now {
                Some(Ok(n)) => Some(n),
                Some(Err(e)) => {
                    problem = Some(e.message);
                    None
                }
                None => None,
            };
            last = now.or(last);
            let denials = match &reader {
                Some(r) => audit
                    .read(start)
                    .map(|a| denials_by(&a.records, r))
                    .unwrap_or(0),
                None => 0,
            };
            disk_touched(before, now, denials)
        });
        match waited {
            Waited::Met(seen) => Settled::Met {
                after: began.elapsed(),
                seen,
            },
            Waited::Interrupted => Settled::Interrupted,
            Waited::TimedOut => Settled::Deadline(format!(
                "in {deadline_shown} {domain} neither read its disk again (read requests {before} -> {}) nor was denied{}",
                last.map_or("?".to_string(), |n: i64| n.to_string()),
                problem.map_or(String::new(), |p| format!(" (last error: {p})"))
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn avc(denied: bool, scontext: &str) -> AvcRecord {
        AvcRecord {
            record_type: "AVC".into(),
            denied,
            perms: vec!["read".into()],
            scontext: Some(scontext.parse().unwrap()),
            tcontext: Some("system_u:object_r:virt_image_t:s0".parse().unwrap()),
            tclass: Some("file".into()),
            permissive: false,
            comm: Some("qemu-system-x86".into()),
            target: None,
            raw: String::new(),
        }
    }

    #[rstest]
    #[case::a_counter_that_rose_is_a_read(12, Some(14), 0, Some(Seen::Read { before: 12, now: 14 }))]
    #[case::an_unchanged_counter_is_not(12, Some(12), 0, None)]
    #[case::an_unreadable_counter_is_not(12, None, 0, None)]
    // A counter that went down (a new QEMU) is not a read of this one's disk.
    #[case::a_counter_that_went_down_is_not(12, Some(3), 0, None)]
    #[case::a_denial_of_the_reader_ends_the_wait_even_without_a_read(
        12,
        Some(12),
        1,
        Some(Seen::Denied { records: 1 })
    )]
    fn disk_touched_is(
        #[case] before: i64,
        #[case] now: Option<i64>,
        #[case] denials: usize,
        #[case] seen: Option<Seen>,
    ) {
        assert_eq!(disk_touched(before, now, denials), seen);
    }

    #[test]
    fn only_the_readers_own_denials_count() {
        let reader: Context = "system_u:system_r:svirt_t:s0:c1,c2".parse().unwrap();
        let records = vec![
            avc(true, "system_u:system_r:svirt_t:s0:c1,c2"),
            // Another guest's QEMU, and a granted record of the reader: neither.
            avc(true, "system_u:system_r:svirt_t:s0:c3,c4"),
            avc(false, "system_u:system_r:svirt_t:s0:c1,c2"),
        ];
        assert_eq!(denials_by(&records, &reader), 1);
    }

    fn expect(yaml: &str) -> crate::scenario::Expect {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn an_absence_after_a_missed_condition_proves_nothing() {
        let late = Settled::Deadline("vm1 never read".into());
        let no_avc = expect("{no_avc: [{scontext: {type: svirt_t}}]}");
        let none = expect("{avc: none}");
        let why = late.unproven_absence(3, true, &no_avc).unwrap();
        assert!(
            why.contains("step 3") && why.contains("vm1 never read"),
            "{why}"
        );
        assert!(late.unproven_absence(3, true, &none).is_some());
        // No absence claimed, or an action that failed (the step fails for that): nothing.
        assert_eq!(late.unproven_absence(3, true, &expect("{}")), None);
        assert_eq!(late.unproven_absence(3, false, &no_avc), None);
        // A condition that held, or a fixed window: the absence stands on the barrier.
        let met = Settled::Met {
            after: Duration::from_millis(5),
            seen: Seen::Read { before: 0, now: 1 },
        };
        assert_eq!(met.unproven_absence(3, true, &no_avc), None);
        let window = Settled::Window(Duration::from_secs(2));
        assert_eq!(window.unproven_absence(3, true, &no_avc), None);
    }

    #[test]
    fn notes_say_what_ended_the_window() {
        let met = Settled::Met {
            after: Duration::from_millis(420),
            seen: Seen::Read { before: 3, now: 5 },
        };
        assert_eq!(
            met.describe(3, "vm1.img"),
            "step 3: settled after 0.42 s: vm1.img was read again (read requests 3 -> 5)"
        );
        let late = Settled::Deadline("nothing".into());
        assert_eq!(
            late.describe(3, "vm1.img"),
            "step 3: settle deadline passed: nothing"
        );
    }
}
