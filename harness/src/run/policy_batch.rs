//! A batch whose runs bring policy under test: the runs that bring the same policy form a
//! group; each group's policy is loaded once, its runs go through `batch::run_batch`, and the
//! policy is removed again - one policy rebuild per group, not per run. The groups run back to
//! back, and one group's modules go out in the semodule call that brings the next group's in,
//! so a change of policy costs one rebuild (~25 s in the TCG guest), not two.
//!
//! The group's load and removal belong to its runs' records: every run of the group gets a
//! note saying what was loaded and what it cost, and the run that finishes last also carries
//! the removal (its cleanup events and the host-state proof), its verdict held back until then:
//! a removal that fails or leaves the host changed turns that verdict into an error. The proof
//! is taken once, after the last group's removal, against the host before the first group's
//! load: a difference errs every group's last run, since no one group can be blamed for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::host::cleanup::{Cleanup, Undo, UndoOutcome, Undone};
use crate::host::environment::TargetInfo;
use crate::host::state;
use crate::policy::PolicyUnderTest;
use crate::run::batch::{run_batch, Batch, RunItem};
use crate::run::event::{Envelope, Event};
use crate::run::executor::HostPaths;
use crate::run::verdict::Verdict;

/// A policy under test and the runs (indexes in the batch) that bring it.
pub type Group = (Arc<PolicyUnderTest>, Vec<usize>);

/// The batch's runs in groups that share a policy, in the order their first run appears; the
/// runs under the target's own policy form one group too.
pub fn groups(batch: &Batch<'_>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
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
/// The runs under the target's own policy go first, then the groups that bring policy one
/// after another (see [`chain_order`]).
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
    let (plain, chain) = chain_order(groups(batch));
    for members in plain {
        if paths.interrupt.is_set() {
            return verdicts;
        }
        let got = run_members(batch, &members, target, paths, on_event);
        for (k, v) in got.into_iter().enumerate() {
            verdicts[members[k]] = v;
        }
    }
    Chain::new(paths).run(batch, &chain, target, on_event, &mut verdicts);
    verdicts
}

/// The groups under the target's own policy, and the groups that bring policy in the order they
/// are loaded: those that only set booleans first, then those with modules, so that each change
/// of modules can be one semodule call. Otherwise in the order their first run appears.
pub fn chain_order(groups: Vec<Group>) -> (Vec<Vec<usize>>, Vec<Group>) {
    let (plain, mut chain): (Vec<_>, Vec<_>) = groups.into_iter().partition(|(p, _)| p.is_empty());
    chain.sort_by_key(|(p, _)| brings_modules(p));
    (plain.into_iter().map(|(_, m)| m).collect(), chain)
}

fn brings_modules(p: &PolicyUnderTest) -> bool {
    !p.modules.is_empty() || !p.permissive.is_empty()
}

/// One group's runs through `run_batch`, their events tagged with their index in the batch.
fn run_members(
    batch: &Batch<'_>,
    members: &[usize],
    target: &TargetInfo,
    paths: &HostPaths,
    on_event: &mut dyn FnMut(Envelope),
) -> Vec<Option<Verdict>> {
    let items: Vec<RunItem<'_>> = members.iter().map(|&i| batch.runs[i].clone()).collect();
    let sub = Batch::new(items, batch.jobs);
    let mut forward = |mut e: Envelope| {
        e.run = members[e.run];
        on_event(e)
    };
    run_batch(&sub, target, paths, &mut forward)
}

/// The last run of a group that brought policy: its finish, held back until its policy is out
/// and the host is proven unchanged, and what went wrong on the way.
struct Held {
    last: Envelope,
    problems: Vec<String>,
}

/// Modules of the previous group still installed, to go out with the next group's install.
struct Outgoing {
    names: Vec<String>,
    held: Held,
    loaded_millis: u64,
    runs: usize,
}

/// The groups that bring policy, loaded one after another. Each group's modules go out in the
/// semodule call that brings the next group's in; the host-state proof is taken once, after the
/// last removal, against the host before the first load, and every group's last run carries it
/// (each held back until then): a difference turns them all into errors, since it cannot say
/// which group left it.
struct Chain<'p> {
    paths: &'p HostPaths,
    before: Option<state::HostState>,
    done: Vec<Held>,
}

impl<'p> Chain<'p> {
    fn new(paths: &'p HostPaths) -> Self {
        Self {
            paths,
            before: None,
            done: Vec::new(),
        }
    }

    fn run(
        mut self,
        batch: &Batch<'_>,
        chain: &[Group],
        target: &TargetInfo,
        on_event: &mut dyn FnMut(Envelope),
        verdicts: &mut [Option<Verdict>],
    ) {
        if chain.is_empty() {
            return;
        }
        let layout = self.paths.layout();
        self.before = self
            .paths
            .verify_host_state
            .then(|| state::snapshot(&layout, true));
        let mut outgoing: Option<Outgoing> = None;
        for (k, (policy, members)) in chain.iter().enumerate() {
            if self.paths.interrupt.is_set() {
                break;
            }
            // A module built for another distribution's policy is left out here (see `ModuleSpec`).
            let policy = policy.for_distro(&target.distro);
            let mut cleanup = Cleanup::new();
            let replacing: Vec<String> = match &outgoing {
                Some(o) if brings_modules(&policy) => o.names.clone(),
                _ => Vec::new(),
            };
            if replacing.is_empty() {
                if let Some(o) = outgoing.take() {
                    self.remove_outgoing(o, on_event);
                }
            }
            let started = Instant::now();
            let load = crate::policy::install::install(&policy, &replacing, &mut cleanup);
            if let Some(o) = outgoing.take() {
                match &load {
                    Ok(_) => self.swapped_out(o, &policy, started.elapsed(), on_event),
                    Err(_) => self.remove_outgoing(o, on_event),
                }
            }
            let installed = match load {
                Ok(done) => done,
                Err(e) => {
                    let undone = cleanup.run();
                    let reason = load_failed(&policy, &e, &undone);
                    for &i in members {
                        let item = &batch.runs[i];
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
                        verdicts[i] = Some(Verdict::Error {
                            reason: reason.clone(),
                        });
                    }
                    continue;
                }
            };
            let mut note = format!(
                "policy under test: {} - loaded once for the {} run(s) that bring it",
                policy.describe(),
                members.len()
            );
            for n in &installed.notes {
                note.push_str(&format!("; {n}"));
            }
            let paths = HostPaths {
                policy_note: Some(note),
                policy: Some(Arc::new(policy.clone())),
                ..self.paths.clone()
            };
            // The verdict of the run that finishes last waits for the removal.
            let total = members.len();
            let mut finished = 0usize;
            let mut last: Option<Envelope> = None;
            let got = run_members(batch, members, target, &paths, &mut |e: Envelope| {
                if matches!(e.event, Event::ScenarioFinished { .. }) {
                    finished += 1;
                    if finished == total {
                        last = Some(e);
                        return;
                    }
                }
                on_event(e)
            });
            for (j, v) in got.into_iter().enumerate() {
                verdicts[members[j]] = v;
            }
            let Some(last) = last else {
                // Interrupted before every run finished: nothing to hold, still remove the policy.
                for u in cleanup.run() {
                    if let Some(&i) = members.iter().rev().find(|&&i| verdicts[i].is_some()) {
                        on_event(Envelope::now(i, Event::CleanedUp(u)));
                    }
                }
                continue;
            };
            let mut held = Held {
                last,
                problems: Vec::new(),
            };
            let next_brings_modules = chain
                .get(k + 1)
                .is_some_and(|(p, _)| brings_modules(&p.for_distro(&target.distro)));
            let names = module_names(&cleanup);
            if next_brings_modules
                && !self.paths.interrupt.is_set()
                && cleanup.retire_last(&Undo::RemoveModules {
                    names: names.clone(),
                })
            {
                // The rest (booleans) is undone now; the modules go out with the next install.
                self.undo(&mut held, cleanup, on_event);
                outgoing = Some(Outgoing {
                    names,
                    held,
                    loaded_millis: installed.millis,
                    runs: total,
                });
            } else {
                let started = Instant::now();
                self.undo(&mut held, cleanup, on_event);
                self.removed_note(&held, started.elapsed(), installed.millis, total, on_event);
                self.done.push(held);
            }
        }
        if let Some(o) = outgoing.take() {
            self.remove_outgoing(o, on_event);
        }
        self.prove(&layout, on_event, verdicts);
    }

    /// Undo `cleanup` on behalf of the held run: its events, and a failure as a problem.
    fn undo(&self, held: &mut Held, cleanup: Cleanup, on_event: &mut dyn FnMut(Envelope)) {
        for u in cleanup.run() {
            if !u.succeeded() {
                held.problems
                    .push(format!("policy under test: cleanup failed: {u}"));
            }
            on_event(Envelope::now(held.last.run, Event::CleanedUp(u)));
        }
    }

    /// The previous group's modules went out in the install of `next`.
    fn swapped_out(
        &mut self,
        o: Outgoing,
        next: &PolicyUnderTest,
        took: std::time::Duration,
        on_event: &mut dyn FnMut(Envelope),
    ) {
        let i = o.held.last.run;
        on_event(Envelope::now(
            i,
            Event::CleanedUp(Undone {
                what: format!(
                    "{} (in the semodule call that installed the next runs' policy: {})",
                    Undo::RemoveModules {
                        names: o.names.clone()
                    }
                    .describe(),
                    next.describe()
                ),
                outcome: UndoOutcome::Done,
            }),
        ));
        self.removed_note(&o.held, took, o.loaded_millis, o.runs, on_event);
        self.done.push(o.held);
    }

    /// The previous group's modules go out on their own (the next install did not take them).
    fn remove_outgoing(&mut self, mut o: Outgoing, on_event: &mut dyn FnMut(Envelope)) {
        let started = Instant::now();
        let what = Undo::RemoveModules {
            names: o.names.clone(),
        }
        .describe();
        let outcome = match crate::policy::install::remove_if_present(&o.names) {
            Ok(_) => UndoOutcome::Done,
            Err(e) => UndoOutcome::Failed(e.to_string()),
        };
        let u = Undone { what, outcome };
        if !u.succeeded() {
            o.held
                .problems
                .push(format!("policy under test: cleanup failed: {u}"));
        }
        on_event(Envelope::now(o.held.last.run, Event::CleanedUp(u)));
        self.removed_note(
            &o.held,
            started.elapsed(),
            o.loaded_millis,
            o.runs,
            on_event,
        );
        self.done.push(o.held);
    }

    fn removed_note(
        &self,
        held: &Held,
        took: std::time::Duration,
        loaded_millis: u64,
        runs: usize,
        on_event: &mut dyn FnMut(Envelope),
    ) {
        on_event(Envelope::now(
            held.last.run,
            Event::Note {
                message: format!(
                    "policy under test removed in {:.1} s (loaded in {:.1} s, shared by {runs} run(s))",
                    took.as_secs_f64(),
                    loaded_millis as f64 / 1000.0
                ),
            },
        ));
    }

    /// The chain's host-state proof, carried by every held run; then their finishes.
    fn prove(
        self,
        layout: &crate::host::layout::Layout,
        on_event: &mut dyn FnMut(Envelope),
        verdicts: &mut [Option<Verdict>],
    ) {
        let mut shared: Vec<String> = Vec::new();
        let mut differences: Option<Vec<String>> = None;
        if let Some(b) = &self.before {
            match state::prove(b, &state::snapshot(layout, true)) {
                state::Proof::Equal => differences = Some(Vec::new()),
                state::Proof::Differs(d) => {
                    shared.push(format!(
                        "the host differs from before the policies under test were loaded: {}",
                        d.join("; ")
                    ));
                    differences = Some(d);
                }
                state::Proof::Unreadable(u) => shared.push(format!(
                    "the removal of the policy under test is not proven: {}",
                    u.join("; ")
                )),
            }
        }
        for Held { mut last, problems } in self.done {
            let i = last.run;
            if let Some(d) = &differences {
                on_event(Envelope::now(
                    i,
                    Event::HostStateVerified {
                        differences: d.clone(),
                    },
                ));
            }
            let problems: Vec<String> = problems.into_iter().chain(shared.clone()).collect();
            if !problems.is_empty() {
                if let Event::ScenarioFinished { verdict, .. } = &mut last.event {
                    let reason = match verdict {
                        Verdict::Error { reason } => {
                            format!("{reason}; then {}", problems.join("; "))
                        }
                        _ => problems.join("; "),
                    };
                    *verdict = Verdict::Error { reason };
                    if let Some(slot) = verdicts.get_mut(i) {
                        *slot = Some(verdict.clone());
                    }
                }
            }
            on_event(last);
        }
    }
}

/// The names in the newest module removal `cleanup` holds (none: an empty list).
fn module_names(cleanup: &Cleanup) -> Vec<String> {
    match cleanup.pending().next() {
        Some(Undo::RemoveModules { names }) => names.clone(),
        _ => Vec::new(),
    }
}

/// Why a group's runs did not run: the load's error, and its cleanup's failures.
fn load_failed(policy: &PolicyUnderTest, e: &dyn std::fmt::Display, undone: &[Undone]) -> String {
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
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ModuleFile;
    use crate::run::parallel::tests::seed;

    /// A policy under test of one module, m.cil, with these contents.
    fn module(bytes: &[u8]) -> PolicyUnderTest {
        PolicyUnderTest {
            modules: vec![ModuleFile {
                file: "m.cil".into(),
                origin: "m.cil".into(),
                bytes: bytes.to_vec(),
                distro: Vec::new(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn runs_that_bring_the_same_policy_share_one_group() {
        let a = seed("mcs-probe.yaml");
        let b = seed("distinct-dynamic-labels.yaml");
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

    #[test]
    fn the_shipped_policy_goes_first_then_booleans_then_modules_back_to_back() {
        let a = seed("mcs-probe.yaml");
        let boolean = PolicyUnderTest {
            booleans: vec![("virt_use_nfs".into(), true)],
            ..Default::default()
        };
        let permissive = PolicyUnderTest {
            permissive: vec!["svirt_t".into()],
            ..Default::default()
        };
        let batch = Batch::new((0..5).map(|_| RunItem::new(&a, None)).collect(), 1)
            .with_policy(0, module(b"(x)"))
            .with_policy(1, boolean)
            .with_policy(3, permissive)
            .with_policy(4, module(b"(x)"));
        let (plain, chain) = chain_order(groups(&batch));
        assert_eq!(plain, [vec![2]]);
        let chain: Vec<(String, Vec<usize>)> =
            chain.into_iter().map(|(p, m)| (p.describe(), m)).collect();
        assert_eq!(
            chain,
            [
                ("booleans virt_use_nfs=on".to_string(), vec![1]),
                ("modules m.cil".into(), vec![0, 4]),
                ("permissive svirt_t".into(), vec![3]),
            ]
        );
    }
}
