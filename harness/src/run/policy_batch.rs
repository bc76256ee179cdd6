//! A batch whose runs bring policy under test: the runs that bring the same policy form a
//! group; each group's policy is loaded once, its runs go through `batch::run_batch`, and the
//! policy is removed again - one policy rebuild each way per group instead of per run.
//!
//! The group's load and removal belong to its runs' records: every run of the group gets a
//! note saying what was loaded and what it cost, and the run that finishes last also carries
//! the removal (its cleanup events and the group's host-state proof), its verdict held back
//! until then: a removal that fails or leaves the host changed turns that verdict into an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::host::cleanup::{Cleanup, Undone};
use crate::host::environment::TargetInfo;
use crate::host::state;
use crate::policy::PolicyUnderTest;
use crate::run::batch::{run_batch, Batch, RunItem};
use crate::run::event::{Envelope, Event};
use crate::run::executor::HostPaths;
use crate::run::verdict::Verdict;

/// The batch's runs in groups that share a policy, in the order their first run appears; the
/// runs under the target's own policy form one group too.
pub fn groups(batch: &Batch<'_>) -> Vec<(Arc<PolicyUnderTest>, Vec<usize>)> {
    let mut out: Vec<(Arc<PolicyUnderTest>, Vec<usize>)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..batch.runs.len() {
        let p = batch
            .policies
            .get(&i)
            .cloned()
            .unwrap_or_else(|| Arc::new(PolicyUnderTest::default()));
        let key = p.key();
        match index.get(&key) {
            Some(&g) => out[g].1.push(i),
            None => {
                index.insert(key, out.len());
                out.push((p, vec![i]));
            }
        }
    }
    out
}

/// `run_batch` for a batch whose runs may bring policy: same contract (verdicts in the order of
/// the batch, None for a run Ctrl-C kept from starting; events tagged with the run's index).
pub fn run_with_policies(
    batch: &Batch<'_>,
    target: &TargetInfo,
    paths: &HostPaths,
    on_event: &mut dyn FnMut(Envelope),
) -> Vec<Option<Verdict>> {
    if batch.policies.is_empty() {
        return run_batch(batch, target, paths, on_event);
    }
    let mut verdicts: Vec<Option<Verdict>> = vec![None; batch.runs.len()];
    for (policy, members) in groups(batch) {
        if paths.interrupt.is_set() {
            break;
        }
        let items: Vec<RunItem<'_>> = members.iter().map(|&i| batch.runs[i].clone()).collect();
        let sub = Batch::new(items, batch.jobs);
        let mut forward = |mut e: Envelope| {
            e.run = members[e.run];
            on_event(e)
        };
        let got = if policy.is_empty() {
            run_batch(&sub, target, paths, &mut forward)
        } else {
            run_group(&sub, &policy, target, paths, &mut forward)
        };
        for (k, v) in got.into_iter().enumerate() {
            verdicts[members[k]] = v;
        }
    }
    verdicts
}

fn run_group(
    sub: &Batch<'_>,
    policy: &PolicyUnderTest,
    target: &TargetInfo,
    paths: &HostPaths,
    on_event: &mut dyn FnMut(Envelope),
) -> Vec<Option<Verdict>> {
    let layout = paths.layout();
    let before = paths
        .verify_host_state
        .then(|| state::snapshot(&layout, true));
    let mut cleanup = Cleanup::new();
    // A module built for another distribution's policy is left out here (see `ModuleSpec`).
    let policy = &policy.for_distro(&target.distro);
    let load = crate::policy::install::install(policy, &mut cleanup);
    let installed = match load {
        Ok(done) => done,
        Err(e) => {
            let undone = cleanup.run();
            let mut reason = format!(
                "the policy under test ({}) could not be loaded: {e}",
                policy.describe()
            );
            let failed: Vec<String> = undone
                .iter()
                .filter(|u| !u.succeeded())
                .map(Undone::to_string)
                .collect();
            if !failed.is_empty() {
                reason.push_str(&format!(
                    "; and its cleanup failed (run `selinux-harness doctor`): {}",
                    failed.join("; ")
                ));
            }
            for i in 0..sub.runs.len() {
                let item = &sub.runs[i];
                on_event(Envelope::now(
                    i,
                    Event::ScenarioStarted {
                        scenario: item.scenario.scenario.name.value.to_string(),
                        variant: item.variant.map(str::to_string),
                        target: target.clone(),
                    },
                ));
                for u in &undone {
                    on_event(Envelope::now(i, Event::CleanedUp(u.clone())));
                }
                on_event(Envelope::now(
                    i,
                    Event::ScenarioFinished {
                        verdict: Verdict::Error {
                            reason: reason.clone(),
                        },
                        millis: 0,
                    },
                ));
            }
            return vec![Some(Verdict::Error { reason }); sub.runs.len()];
        }
    };
    let mut note = format!(
        "policy under test: {} - loaded once for the {} run(s) that bring it",
        policy.describe(),
        sub.runs.len()
    );
    for n in &installed.notes {
        note.push_str(&format!("; {n}"));
    }
    let paths = HostPaths {
        policy_note: Some(note),
        policy: Some(Arc::new(policy.clone())),
        ..paths.clone()
    };
    // The verdict of the run that finishes last waits for the removal.
    let total = sub.runs.len();
    let mut finished = 0usize;
    let mut held: Option<Envelope> = None;
    let mut verdicts = run_batch(sub, target, &paths, &mut |e: Envelope| {
        if matches!(e.event, Event::ScenarioFinished { .. }) {
            finished += 1;
            if finished == total {
                held = Some(e);
                return;
            }
        }
        on_event(e)
    });
    let Some(mut last) = held else {
        // Interrupted before every run finished: nothing to hold, still remove the policy.
        for u in cleanup.run() {
            if let Some(i) = verdicts.iter().rposition(Option::is_some) {
                on_event(Envelope::now(i, Event::CleanedUp(u)));
            }
        }
        return verdicts;
    };
    let started = Instant::now();
    let undone = cleanup.run();
    let removal = started.elapsed();
    let i = last.run;
    let mut problems = Vec::new();
    for u in undone {
        if !u.succeeded() {
            problems.push(format!("policy under test: cleanup failed: {u}"));
        }
        on_event(Envelope::now(i, Event::CleanedUp(u)));
    }
    on_event(Envelope::now(
        i,
        Event::Note {
            message: format!(
                "policy under test removed in {:.1} s (loaded in {:.1} s, shared by {total} run(s))",
                removal.as_secs_f64(),
                installed.millis as f64 / 1000.0
            ),
        },
    ));
    if let Some(b) = before {
        match state::prove(&b, &state::snapshot(&layout, true)) {
            state::Proof::Equal => on_event(Envelope::now(
                i,
                Event::HostStateVerified {
                    differences: Vec::new(),
                },
            )),
            state::Proof::Differs(d) => {
                on_event(Envelope::now(
                    i,
                    Event::HostStateVerified {
                        differences: d.clone(),
                    },
                ));
                problems.push(format!(
                    "the host differs from before the policy under test was loaded: {}",
                    d.join("; ")
                ));
            }
            state::Proof::Unreadable(u) => problems.push(format!(
                "the removal of the policy under test is not proven: {}",
                u.join("; ")
            )),
        }
    }
    if !problems.is_empty() {
        if let Event::ScenarioFinished { verdict, .. } = &mut last.event {
            let reason = match verdict {
                Verdict::Error { reason } => format!("{reason}; then {}", problems.join("; ")),
                _ => problems.join("; "),
            };
            *verdict = Verdict::Error { reason };
            if let Some(slot) = verdicts.get_mut(i) {
                *slot = Some(verdict.clone());
            }
        }
    }
    on_event(last);
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ModuleFile;
    use crate::run::parallel::tests::seed;

    #[test]
    fn runs_that_bring_the_same_policy_share_one_group() {
        let a = seed("mcs-probe.yaml");
        let b = seed("distinct-dynamic-labels.yaml");
        let module = |bytes: &[u8]| PolicyUnderTest {
            modules: vec![ModuleFile {
                file: "m.cil".into(),
                origin: "m.cil".into(),
                bytes: bytes.to_vec(),
                distro: Vec::new(),
            }],
            ..Default::default()
        };
        let batch = Batch::new(
            vec![
                RunItem::new(&a, None),
                RunItem::new(&b, None),
                RunItem::new(&a, None),
                RunItem::new(&b, None),
            ],
            1,
        )
        .with_policy(0, module(b"(x)"))
        .with_policy(2, module(b"(y)"))
        .with_policy(3, module(b"(x)"));
        let g: Vec<(String, Vec<usize>)> = groups(&batch)
            .into_iter()
            .map(|(p, m)| (p.describe(), m))
            .collect();
        assert_eq!(
            g,
            [
                ("modules m.cil".to_string(), vec![0, 3]),
                ("the shipped policy".into(), vec![1]),
                ("modules m.cil".into(), vec![2]),
            ]
        );
        // An empty policy is no policy: a batch of those takes the plain path.
        let plain =
            Batch::new(vec![RunItem::new(&a, None)], 1).with_policy(0, PolicyUnderTest::default());
        assert!(plain.policies.is_empty());
    }
}
