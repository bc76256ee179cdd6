//! What a policy under test changed: the records of the same runs under the shipped policy and
//! under the policy under test, compared run by run - verdicts, and the denials each step
//! logged that are new or gone. The regression check a policy pull request needs.
//!
//! Denials are compared by what the policy decides on - permissions, source and target type,
//! class, and whether the domain was permissive - not by MCS level or pid, which differ
//! between any two runs (libvirt picks fresh categories for every dynamic label).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::evidence::{AvcRecord, Evidence};
use crate::report::{Record, ScenarioRecord};
use crate::run::verdict::Verdict;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// What the baseline ran under ("the shipped policy").
    pub baseline: String,
    /// The policy under test, described.
    pub candidate: String,
    pub runs: Vec<RunChange>,
    /// Runs whose verdict differs.
    pub verdicts_changed: usize,
    /// Runs whose verdict is the same but whose denials differ.
    pub denials_changed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunChange {
    /// `scenario` or `scenario[variant]`.
    pub run: String,
    /// None: the run has no verdict on that side (interrupted, or not in that record).
    pub baseline: Option<Verdict>,
    pub candidate: Option<Verdict>,
    pub verdict_changed: bool,
    /// Steps whose denials differ, in step order.
    pub steps: Vec<StepChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepChange {
    pub step: usize,
    pub title: String,
    /// Denials the policy under test adds at this step.
    pub new_denials: Vec<String>,
    /// Denials the shipped policy logged here that the policy under test does not.
    pub vanished_denials: Vec<String>,
}

/// A denial as the policy decides it: `{ read } svirt_t -> svirt_image_t:file` (with
/// ` permissive` when the kernel allowed it because the domain was permissive).
pub fn denial_key(r: &AvcRecord) -> String {
    let t = |c: &Option<crate::context::Context>| {
        c.as_ref()
            .map_or_else(|| "?".to_string(), |c| c.kind.clone())
    };
    format!(
        "{{ {} }} {} -> {}:{}{}",
        r.perms.join(" "),
        t(&r.scontext),
        t(&r.tcontext),
        r.tclass.as_deref().unwrap_or("?"),
        if r.permissive { " permissive" } else { "" }
    )
}

fn denials(s: &ScenarioRecord, step: usize) -> BTreeSet<String> {
    s.steps
        .iter()
        .filter(|st| st.step == step)
        .flat_map(|st| st.evidence.iter())
        .filter_map(|e| match e {
            Evidence::Avcs { records, .. } => Some(records),
            _ => None,
        })
        .flatten()
        .filter(|r| r.denied)
        .map(denial_key)
        .collect()
}

/// Compare two records of the same runs (matched by `scenario[variant]`; a run only one side
/// has shows with no verdict on the other).
pub fn compare(baseline: &Record, candidate: &Record, candidate_policy: &str) -> Comparison {
    let mut ids: Vec<String> = Vec::new();
    for s in baseline.scenarios.iter().chain(&candidate.scenarios) {
        if !ids.contains(&s.id()) {
            ids.push(s.id());
        }
    }
    let find = |r: &'_ Record, id: &str| -> Option<ScenarioRecord> {
        r.scenarios.iter().find(|s| s.id() == id).cloned()
    };
    let mut runs = Vec::new();
    for id in ids {
        let (b, c) = (find(baseline, &id), find(candidate, &id));
        let bv = b.as_ref().and_then(|s| s.verdict.clone());
        let cv = c.as_ref().and_then(|s| s.verdict.clone());
        let mut steps = Vec::new();
        let step_titles: Vec<(usize, String)> = {
            let mut v: Vec<(usize, String)> = b
                .iter()
                .chain(c.iter())
                .flat_map(|s| s.steps.iter().map(|st| (st.step, st.title.clone())))
                .collect();
            v.sort();
            v.dedup_by_key(|(n, _)| *n);
            v
        };
        for (step, title) in step_titles {
            let before = b.as_ref().map(|s| denials(s, step)).unwrap_or_default();
            let after = c.as_ref().map(|s| denials(s, step)).unwrap_or_default();
            let new_denials: Vec<String> = after.difference(&before).cloned().collect();
            let vanished_denials: Vec<String> = before.difference(&after).cloned().collect();
            if !new_denials.is_empty() || !vanished_denials.is_empty() {
                steps.push(StepChange {
                    step,
                    title,
                    new_denials,
                    vanished_denials,
                });
            }
        }
        runs.push(RunChange {
            run: id,
            verdict_changed: bv != cv,
            baseline: bv,
            candidate: cv,
            steps,
        });
    }
    Comparison {
        baseline: "the shipped policy".into(),
        candidate: candidate_policy.to_string(),
        verdicts_changed: runs.iter().filter(|r| r.verdict_changed).count(),
        denials_changed: runs
            .iter()
            .filter(|r| !r.verdict_changed && !r.steps.is_empty())
            .count(),
        runs,
    }
}

fn verdict(v: &Option<Verdict>) -> String {
    match v {
        None => "no verdict".into(),
        Some(v) => {
            let detail = match v {
                Verdict::Fail { failed } => format!(" ({failed} check(s) failed)"),
                Verdict::Inconclusive { reason }
                | Verdict::Error { reason }
                | Verdict::Skipped { reason } => format!(" ({reason})"),
                _ => String::new(),
            };
            format!("{}{detail}", v.label())
        }
    }
}

impl Comparison {
    /// For a terminal: the changes first-class, unchanged runs one line each.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "baseline:  {}", self.baseline);
        let _ = writeln!(o, "candidate: {}", self.candidate);
        for r in &self.runs {
            if r.verdict_changed {
                let _ = writeln!(
                    o,
                    "CHANGED  {}: {} -> {}",
                    r.run,
                    verdict(&r.baseline),
                    verdict(&r.candidate)
                );
            } else if r.steps.is_empty() {
                let _ = writeln!(o, "same     {}: {}", r.run, verdict(&r.candidate));
            } else {
                let _ = writeln!(
                    o,
                    "denials  {}: {} (verdict unchanged)",
                    r.run,
                    verdict(&r.candidate)
                );
            }
            for s in &r.steps {
                let _ = writeln!(o, "    step {} ({}):", s.step, s.title);
                for d in &s.new_denials {
                    let _ = writeln!(o, "      + denial {d}");
                }
                for d in &s.vanished_denials {
                    let _ = writeln!(o, "      - denial {d}");
                }
            }
        }
        let _ = writeln!(
            o,
            "{} run(s): {} verdict(s) changed, {} with only denials changed",
            self.runs.len(),
            self.verdicts_changed,
            self.denials_changed
        );
        o
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Reporter;
    use crate::run::event::Envelope;

    /// The record of the runs of a recorded stream (tests/data/events) that are `scenario`,
    /// renumbered from 0, as `run` would have made it.
    fn recorded(fixture: &str, scenario: &str) -> Record {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/events")
            .join(fixture);
        let text = std::fs::read_to_string(&path).expect("the fixture exists");
        let events: Vec<Envelope> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("an event"))
            .collect();
        let runs: Vec<usize> = events
            .iter()
            .filter(|e| {
                matches!(&e.event, crate::run::event::Event::ScenarioStarted { scenario: s, .. } if s == scenario)
            })
            .map(|e| e.run)
            .collect();
        let mut r = Record::default();
        for (i, _) in runs.iter().enumerate() {
            r.begin(i, &format!("scenarios/seed/{scenario}.yaml"));
        }
        for e in events {
            if let Some(i) = runs.iter().position(|&x| x == e.run) {
                r.event(&Envelope { run: i, ..e });
            }
        }
        r
    }

    #[rstest::rstest]
    #[case::virt_override("vm-policy-virt-override.jsonl", "modules debian-12/virt.cil.bz2")]
    #[case::svirt_permissive("vm-policy-svirt-permissive.jsonl", "modules svirt_permissive.cil")]
    #[case::harmless("vm-policy-harmless.jsonl", "modules harness_harmless.te")]
    fn mcs_probe_under_a_policy_under_test(#[case] fixture: &str, #[case] policy: &str) {
        let before = recorded("vm-seed.jsonl", "mcs-probe");
        let after = recorded(fixture, "mcs-probe");
        let c = compare(&before, &after, policy);
        let name = fixture.trim_end_matches(".jsonl");
        insta::assert_snapshot!(format!("{name}-human"), c.human());
        insta::assert_snapshot!(format!("{name}-json"), c.to_json());
    }

    fn avc(perms: &[&str], s: &str, t: &str, permissive: bool) -> AvcRecord {
        AvcRecord {
            record_type: "AVC".into(),
            denied: true,
            perms: perms.iter().map(|p| p.to_string()).collect(),
            scontext: Some(s.parse().unwrap()),
            tcontext: Some(t.parse().unwrap()),
            tclass: Some("file".into()),
            permissive,
            comm: None,
            target: None,
            raw: String::new(),
        }
    }

    fn one_run(verdict: Verdict, denials: Vec<AvcRecord>) -> Record {
        use crate::run::event::Event;
        let mut r = Record::default();
        r.begin(0, "scenarios/x.yaml");
        let events = [
            Event::ScenarioStarted {
                scenario: "x".into(),
                variant: Some("v".into()),
                target: Default::default(),
            },
            Event::StepStarted {
                step: 1,
                title: "start vm1".into(),
            },
            Event::Evidence {
                step: 1,
                evidence: Evidence::Avcs {
                    records: denials,
                    filtered: 0,
                },
            },
            Event::StepFinished { step: 1, millis: 1 },
            Event::ScenarioFinished { verdict, millis: 2 },
        ];
        for e in events {
            r.event(&Envelope::now(0, e));
        }
        r
    }

    #[test]
    fn a_denial_that_appears_with_the_same_verdict_counts_as_denials_changed() {
        let read = avc(
            &["read"],
            "system_u:system_r:svirt_t:s0:c1,c2",
            "system_u:object_r:svirt_image_t:s0:c3,c4",
            false,
        );
        let write = avc(
            &["write"],
            "system_u:system_r:svirt_t:s0:c1,c2",
            "system_u:object_r:virt_image_t:s0",
            false,
        );
        let c = compare(
            &one_run(Verdict::Pass, vec![read.clone()]),
            &one_run(Verdict::Pass, vec![read, write]),
            "modules m.cil",
        );
        assert_eq!((c.verdicts_changed, c.denials_changed), (0, 1));
        assert_eq!(c.runs[0].run, "x[v]");
        assert_eq!(
            c.runs[0].steps[0].new_denials,
            ["{ write } svirt_t -> virt_image_t:file"]
        );
        assert!(c.runs[0].steps[0].vanished_denials.is_empty());
        assert!(
            c.human()
                .contains("denials  x[v]: pass (verdict unchanged)\n    step 1 (start vm1):\n      + denial { write }"),
            "{}",
            c.human()
        );
        // Nothing changed: no step listed, the run one line.
        let same = compare(
            &one_run(Verdict::Pass, vec![]),
            &one_run(Verdict::Pass, vec![]),
            "modules m.cil",
        );
        assert!(same.runs[0].steps.is_empty() && !same.runs[0].verdict_changed);
        assert!(same.human().contains("same     x[v]: pass\n"));
    }

    #[test]
    fn denials_are_keyed_by_what_the_policy_decides_on_not_by_level() {
        let a = avc(
            &["read"],
            "system_u:system_r:svirt_t:s0:c1,c2",
            "system_u:object_r:svirt_image_t:s0:c3,c4",
            false,
        );
        let b = avc(
            &["read"],
            "system_u:system_r:svirt_t:s0:c7,c9",
            "system_u:object_r:svirt_image_t:s0:c5,c6",
            false,
        );
        assert_eq!(denial_key(&a), denial_key(&b));
        assert_eq!(denial_key(&a), "{ read } svirt_t -> svirt_image_t:file");
        let p = avc(
            &["read"],
            "system_u:system_r:svirt_t:s0:c1,c2",
            "system_u:object_r:svirt_image_t:s0:c3,c4",
            true,
        );
        assert_ne!(denial_key(&a), denial_key(&p));
    }
}
