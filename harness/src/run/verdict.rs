//! Verdicts, and the checks they are made of.

use serde::{Deserialize, Serialize};

/// The outcome of one scenario (one variant of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail {
        failed: usize,
    },
    /// Every failing check was marked as a known bug, and each of them reproduced.
    KnownBug {
        references: Vec<String>,
    },
    /// A check marked as a known bug passed: the bug seems fixed and the mark is stale.
    KnownBugGone {
        references: Vec<String>,
    },
    /// The evidence cannot be trusted for a verdict (SELinux permissive, permissive=1 records).
    Inconclusive {
        reason: String,
    },
    /// The harness or the target failed; nothing was judged.
    Error {
        reason: String,
    },
    /// The target lacks what the scenario requires.
    Skipped {
        reason: String,
    },
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "fail",
            Verdict::KnownBug { .. } => "known-bug",
            Verdict::KnownBugGone { .. } => "known-bug-gone",
            Verdict::Inconclusive { .. } => "inconclusive",
            Verdict::Error { .. } => "error",
            Verdict::Skipped { .. } => "skipped",
        }
    }

    /// What CI should count as success: a pass, or a known bug that still reproduces.
    pub fn is_success(&self) -> bool {
        matches!(self, Verdict::Pass | Verdict::KnownBug { .. })
    }
}

/// One expectation compared with what was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Which check of the step this is, as a known bug's `expects:` names it; its kind is
    /// `key.kind()`.
    pub key: CheckKey,
    /// What was expected, in the scenario's words (e.g. "vm1.img type is svirt_image_t").
    pub expectation: String,
    pub expected: String,
    pub observed: String,
    pub passed: bool,
    /// The check failed for want of evidence (a capture that did not resolve, no label, no
    /// outcome), not because evidence contradicted it; no known bug excuses that.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evidence_missing: bool,
    /// The known bug of the scenario that names this check on this platform: on a failure,
    /// the bug that excuses it; on a pass, a bug that no longer reproduces.
    pub known_bug: Option<String>,
}

use crate::host::environment::TargetInfo;
use crate::run::expect::{expand_captures, Captures};
use crate::scenario::{At, CheckKey, KnownBug, Platform};

impl Platform {
    /// Every condition given holds for this run.
    pub fn applies(&self, variant: Option<&str>, target: &TargetInfo) -> bool {
        let variant_ok = self.variant.is_empty()
            || variant.is_some_and(|v| self.variant.iter().any(|n| n.value.as_str() == v));
        let distro_ok = (self.distro.is_empty() || self.distro.contains(&target.distro))
            && !self.not_distro.contains(&target.distro);
        let libvirt_ok = self.libvirt.as_ref().is_none_or(|req| {
            semver::Version::parse(target.libvirt_version.trim()).is_ok_and(|v| req.0.matches(&v))
        });
        variant_ok && distro_ok && libvirt_ok
    }
}

/// The known bugs of a step that apply to this run.
pub fn applicable_known_bugs<'a>(
    bugs: &'a [At<KnownBug>],
    variant: Option<&str>,
    target: &TargetInfo,
) -> Vec<&'a KnownBug> {
    bugs.iter()
        .map(|b| &b.value)
        .filter(|b| b.when.applies(variant, target))
        .collect()
}

/// Whether an applicable known bug reproduced in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BugOutcome {
    pub reference: String,
    /// Some expectation the bug names failed, in the shape the bug describes.
    pub reproduced: bool,
}

/// Marks each failed check that an applicable bug names - and whose observation has the
/// bug's shape, when the bug gives one - with that bug. Every other failure stays a failure.
pub fn attribute_known_bugs(
    checks: &mut [Check],
    bugs: &[&KnownBug],
    caps: &Captures,
) -> Vec<BugOutcome> {
    bugs.iter()
        .map(|bug| {
            let mut reproduced = false;
            for excuse in bug.expects.iter().flatten() {
                // A shape that names a capture that did not resolve matches nothing.
                let shape = match &excuse.value.observed {
                    None => Some(None),
                    Some(text) => expand_captures(text, caps).ok().map(Some),
                };
                let Some(shape) = shape else { continue };
                for c in checks.iter_mut().filter(|c| {
                    !c.passed
                        && !c.evidence_missing
                        && c.known_bug.is_none()
                        && c.key.named_by(&excuse.value.check.value)
                }) {
                    if shape
                        .as_ref()
                        .is_none_or(|s| c.observed.contains(s.as_str()))
                    {
                        c.known_bug = Some(bug.reference.clone());
                        reproduced = true;
                    }
                }
            }
            if !reproduced {
                // The bug is gone: its named checks passed. Mark them so the report shows
                // what they expected and observed next to the stale reference.
                for c in checks.iter_mut().filter(|c| {
                    c.passed
                        && c.known_bug.is_none()
                        && bug
                            .expects
                            .iter()
                            .flatten()
                            .any(|e| c.key.named_by(&e.value.check.value))
                }) {
                    c.known_bug = Some(bug.reference.clone());
                }
            }
            BugOutcome {
                reference: bug.reference.clone(),
                reproduced,
            }
        })
        .collect()
}

/// How the steps went, for the verdict.
#[derive(Debug, Default)]
pub struct Tally {
    pub failed: usize,
    pub known_bugs_reproduced: Vec<String>,
    pub known_bugs_gone: Vec<String>,
    /// Evidence that makes any verdict untrustworthy (permissive mode or records).
    pub inconclusive: Option<String>,
}

impl Tally {
    /// One more reason the verdict cannot be trusted; every reason is kept, in order.
    pub fn inconclusive_because(&mut self, reason: String) {
        self.inconclusive = Some(match self.inconclusive.take() {
            Some(r) if r.contains(&reason) => r,
            Some(r) => format!("{r}; {reason}"),
            None => reason,
        });
    }

    pub fn add_step(&mut self, checks: &[Check], bugs: &[BugOutcome]) {
        self.failed += checks
            .iter()
            .filter(|c| !c.passed && c.known_bug.is_none())
            .count();
        for b in bugs {
            let list = if b.reproduced {
                &mut self.known_bugs_reproduced
            } else {
                &mut self.known_bugs_gone
            };
            if !list.contains(&b.reference) {
                list.push(b.reference.clone());
            }
        }
    }

    /// Permissive evidence makes every verdict inconclusive: nothing is denied in permissive
    /// mode, so neither a pass nor a failure says what an enforcing kernel would do.
    pub fn verdict(self) -> Verdict {
        if let Some(reason) = self.inconclusive {
            return Verdict::Inconclusive { reason };
        }
        if self.failed > 0 {
            Verdict::Fail {
                failed: self.failed,
            }
        } else if !self.known_bugs_gone.is_empty() {
            Verdict::KnownBugGone {
                references: self.known_bugs_gone,
            }
        } else if !self.known_bugs_reproduced.is_empty() {
            Verdict::KnownBug {
                references: self.known_bugs_reproduced,
            }
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn c(passed: bool) -> Check {
        keyed(CheckKey::Succeeds, passed, "y")
    }

    fn keyed(key: CheckKey, passed: bool, observed: &str) -> Check {
        Check {
            key,
            expectation: "e".into(),
            expected: "x".into(),
            observed: observed.into(),
            passed,
            evidence_missing: false,
            known_bug: None,
        }
    }

    /// A bug excusing `check`, only when its observation contains `observed` if given.
    fn excusing(check: &str, observed: Option<&str>) -> KnownBug {
        KnownBug {
            reference: "bz#1".into(),
            summary: None,
            when: Platform::default(),
            expects: Some(vec![At::new(crate::scenario::Excuse {
                check: At::new(check.into()),
                observed: observed.map(str::to_string),
            })]),
        }
    }

    fn bug() -> KnownBug {
        excusing("succeeds", None)
    }

    fn judge(checks: &mut [Check], bug: &KnownBug) -> Verdict {
        let outcomes = attribute_known_bugs(checks, &[bug], &Captures::new());
        let mut t = Tally::default();
        t.add_step(checks, &outcomes);
        t.verdict()
    }

    #[test]
    fn all_passed_is_pass() {
        let mut t = Tally::default();
        t.add_step(&[c(true), c(true)], &[]);
        assert_eq!(t.verdict(), Verdict::Pass);
    }

    #[test]
    fn a_failure_is_fail() {
        let mut t = Tally::default();
        t.add_step(&[c(true), c(false)], &[]);
        assert_eq!(t.verdict(), Verdict::Fail { failed: 1 });
    }

    #[test]
    fn failure_under_known_bug_is_known_bug() {
        let mut checks = vec![c(false), keyed(CheckKey::AvcNone, true, "")];
        assert_eq!(
            judge(&mut checks, &bug()),
            Verdict::KnownBug {
                references: vec!["bz#1".into()]
            }
        );
    }

    #[test]
    fn known_bug_that_no_longer_reproduces_is_flagged() {
        let mut checks = vec![c(true)];
        let v = judge(&mut checks, &bug());
        assert_eq!(v.label(), "known-bug-gone");
        assert!(!v.is_success());
    }

    /// cross-attach step 2: the bug is the timeline; a worse regression elsewhere in the step
    /// (the attach succeeding) is a failure, not the known bug.
    #[test]
    fn a_known_bug_excuses_only_the_expectations_it_names() {
        let timeline =
            CheckKey::Timeline("vm1.img".into(), crate::scenario::TimelineCheck::NeverLevel);
        let bug = excusing("timeline.vm1.img", None);
        let mut checks = vec![
            keyed(CheckKey::Error, false, "succeeded"),
            keyed(timeline.clone(), false, "s0:c1,c2"),
        ];
        assert_eq!(judge(&mut checks, &bug), Verdict::Fail { failed: 1 });
        assert_eq!(checks[0].known_bug, None);
        assert_eq!(checks[1].known_bug.as_deref(), Some("bz#1"));
        let mut checks = vec![
            keyed(CheckKey::Error, true, ""),
            keyed(timeline, false, "s0:c1,c2"),
        ];
        assert_eq!(judge(&mut checks, &bug).label(), "known-bug");
    }

    #[test]
    fn a_known_bug_with_a_shape_excuses_only_that_shape() {
        let bug = excusing("access", Some("EACCES"));
        let mut checks = vec![keyed(CheckKey::Access, false, "EACCES")];
        assert_eq!(judge(&mut checks, &bug).label(), "known-bug");
        let mut checks = vec![keyed(CheckKey::Access, false, "EPERM")];
        assert_eq!(judge(&mut checks, &bug), Verdict::Fail { failed: 1 });
    }

    #[test]
    fn a_failure_for_want_of_evidence_is_never_a_known_bug() {
        let mut checks = vec![Check {
            evidence_missing: true,
            ..keyed(CheckKey::Succeeds, false, "$vm2 was not captured")
        }];
        assert_eq!(judge(&mut checks, &bug()), Verdict::Fail { failed: 1 });
    }

    #[test]
    fn a_shape_with_a_capture_is_that_captures_range() {
        let mut caps = Captures::new();
        caps.insert(
            "vm2".parse().unwrap(),
            crate::run::expect::Captured {
                label: "system_u:system_r:svirt_t:s0:c161,c423".parse().unwrap(),
                imagelabel: None,
                ids: None,
            },
        );
        let bug = excusing("file.vm1.img", Some("svirt_image_t:$vm2"));
        let key = CheckKey::File("vm1.img".into());
        let mut checks = vec![keyed(
            key.clone(),
            false,
            "system_u:object_r:svirt_image_t:s0:c161,c423",
        )];
        let out = attribute_known_bugs(&mut checks, &[&bug], &caps);
        assert!(out[0].reproduced);
        let mut checks = vec![keyed(key, false, "system_u:object_r:virt_image_t:s0")];
        let out = attribute_known_bugs(&mut checks, &[&bug], &caps);
        assert!(!out[0].reproduced);
        // Unresolved, the shape matches nothing.
        let out = attribute_known_bugs(&mut checks, &[&bug], &Captures::new());
        assert!(!out[0].reproduced);
    }

    #[test]
    fn permissive_is_never_a_pass() {
        let mut t = Tally::default();
        t.add_step(&[c(true)], &[]);
        t.inconclusive = Some("SELinux is permissive".into());
        assert_eq!(t.verdict().label(), "inconclusive");
    }

    #[rstest]
    #[case(Some("remember_owner_0"), "debian-12", "9.0.0", true)]
    #[case(Some("default"), "debian-12", "9.0.0", false)]
    #[case(None, "debian-12", "9.0.0", false)]
    #[case(Some("remember_owner_0"), "fedora-43", "9.0.0", false)]
    #[case(Some("remember_owner_0"), "debian-12", "11.3.0", false)]
    fn platform_conditions(
        #[case] variant: Option<&str>,
        #[case] distro: &str,
        #[case] libvirt: &str,
        #[case] applies: bool,
    ) {
        let src = "name: t\ndescription: d\nvariants: {remember_owner_0: {}, default: {}}\ndomains: {vm1: {}}\nsteps:\n  - define: vm1\n    known_bug:\n      - reference: r\n        expects: [succeeds]\n        when: {variant: [remember_owner_0], distro: [debian-12], libvirt: '>=9.0.0, <10.0.0'}\n";
        let s = crate::scenario::load_str(std::path::Path::new("t.yaml"), src).unwrap();
        let target = TargetInfo {
            distro: distro.into(),
            libvirt_version: libvirt.into(),
            ..Default::default()
        };
        assert_eq!(
            s.steps[0].options.known_bug[0]
                .value
                .when
                .applies(variant, &target),
            applies
        );
    }

    /// `not_distro` is every distribution but those named, unnamed ones included.
    #[rstest]
    #[case("debian-12", false)]
    #[case("debian-13", true)]
    #[case("fedora-43", true)]
    fn not_distro_is_every_other_distribution(#[case] distro: &str, #[case] applies: bool) {
        let src = "name: t\ndescription: d\ndomains: {vm1: {}}\nsteps:\n  - define: vm1\n    when: {not_distro: [debian-12]}\n";
        let s = crate::scenario::load_str(std::path::Path::new("t.yaml"), src).unwrap();
        let target = TargetInfo {
            distro: distro.into(),
            ..Default::default()
        };
        let when = s.steps[0].options.when.as_ref().unwrap();
        assert_eq!(when.value.applies(None, &target), applies);
    }
}
