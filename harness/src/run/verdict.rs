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
    /// What was expected, in the scenario's words (e.g. "vm1.img type is svirt_image_t").
    pub expectation: String,
    pub expected: String,
    pub observed: String,
    pub passed: bool,
    /// Set when the scenario marks this expectation as a known bug on this platform.
    pub known_bug: Option<String>,
}

use crate::host::environment::TargetInfo;
use crate::scenario::{KnownBug, Platform};

impl Platform {
    /// Every condition given holds for this run.
    pub fn applies(&self, variant: Option<&str>, target: &TargetInfo) -> bool {
        let variant_ok = self.variant.is_empty()
            || variant.is_some_and(|v| self.variant.iter().any(|n| n.value.as_str() == v));
        let distro_ok = self.distro.is_empty() || self.distro.contains(&target.distro);
        let libvirt_ok = self.libvirt.as_ref().is_none_or(|req| {
            semver::Version::parse(target.libvirt_version.trim()).is_ok_and(|v| req.0.matches(&v))
        });
        variant_ok && distro_ok && libvirt_ok
    }
}

/// The first known bug of a step that applies to this run.
pub fn applicable_known_bug<'a>(
    bugs: &'a [KnownBug],
    variant: Option<&str>,
    target: &TargetInfo,
) -> Option<&'a KnownBug> {
    bugs.iter().find(|b| b.when.applies(variant, target))
}

/// Marks a step's failed checks with its applicable known bug. Returns whether the bug
/// reproduced (some check failed) or not.
pub fn attribute_known_bug(checks: &mut [Check], bug: &KnownBug) -> bool {
    let mut reproduced = false;
    for c in checks.iter_mut().filter(|c| !c.passed) {
        c.known_bug = Some(bug.reference.clone());
        reproduced = true;
    }
    reproduced
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
    pub fn add_step(&mut self, checks: &[Check], bug: Option<&KnownBug>) {
        self.failed += checks
            .iter()
            .filter(|c| !c.passed && c.known_bug.is_none())
            .count();
        if let Some(b) = bug {
            let list = if checks.iter().any(|c| c.known_bug.is_some()) {
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
        Check {
            expectation: "e".into(),
            expected: "x".into(),
            observed: "y".into(),
            passed,
            known_bug: None,
        }
    }

    fn bug() -> KnownBug {
        KnownBug {
            reference: "bz#1".into(),
            summary: None,
            when: Platform::default(),
        }
    }

    #[test]
    fn all_passed_is_pass() {
        let mut t = Tally::default();
        t.add_step(&[c(true), c(true)], None);
        assert_eq!(t.verdict(), Verdict::Pass);
    }

    #[test]
    fn a_failure_is_fail() {
        let mut t = Tally::default();
        t.add_step(&[c(true), c(false)], None);
        assert_eq!(t.verdict(), Verdict::Fail { failed: 1 });
    }

    #[test]
    fn failure_under_known_bug_is_known_bug() {
        let mut t = Tally::default();
        let mut checks = vec![c(false), c(true)];
        assert!(attribute_known_bug(&mut checks, &bug()));
        t.add_step(&checks, Some(&bug()));
        assert_eq!(
            t.verdict(),
            Verdict::KnownBug {
                references: vec!["bz#1".into()]
            }
        );
    }

    #[test]
    fn known_bug_that_no_longer_reproduces_is_flagged() {
        let mut t = Tally::default();
        let mut checks = vec![c(true)];
        assert!(!attribute_known_bug(&mut checks, &bug()));
        t.add_step(&checks, Some(&bug()));
        let v = t.verdict();
        assert_eq!(v.label(), "known-bug-gone");
        assert!(!v.is_success());
    }

    #[test]
    fn permissive_is_never_a_pass() {
        let mut t = Tally::default();
        t.add_step(&[c(true)], None);
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
        let src = "name: t\ndescription: d\nvariants: {remember_owner_0: {}, default: {}}\ndomains: {vm1: {}}\nsteps:\n  - define: vm1\n    known_bug:\n      - reference: r\n        when: {variant: [remember_owner_0], distro: [debian-12], libvirt: '>=9.0.0, <10.0.0'}\n";
        let s = crate::scenario::load_str(std::path::Path::new("t.yaml"), src).unwrap();
        let target = TargetInfo {
            distro: distro.into(),
            libvirt_version: libvirt.into(),
            ..Default::default()
        };
        assert_eq!(
            s.steps[0].options.known_bug[0]
                .when
                .applies(variant, &target),
            applies
        );
    }
}
