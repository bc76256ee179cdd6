//! A batch: every run of a `selinux-harness run`, each a scenario under one variant, up to
//! `jobs` at a time on this host, each an ordinary executor on a thread of its own; `parallel`
//! arbitrates what overlapping runs share. All runs share the one
//! [`crate::interrupt::Interrupt`] of the `HostPaths` they get.

use std::sync::{mpsc, Arc, Mutex, PoisonError};

use crate::host::environment::TargetInfo;
use crate::run::event::{Envelope, Event};
use crate::run::executor::{execute, HostPaths, RunError};
use crate::run::fault::Fault;
use crate::run::parallel::{exclusive_reason, Concurrency};
use crate::run::verdict::Verdict;
use crate::scenario::LoadedScenario;

/// One run of a batch: a scenario under one variant.
#[derive(Debug, Clone)]
pub struct RunItem<'a> {
    pub scenario: &'a LoadedScenario,
    pub variant: Option<&'a str>,
    /// Test-only: break the target at one step of this run (see `fault`). None in real runs.
    pub fault: Option<Fault>,
}

impl<'a> RunItem<'a> {
    pub fn new(scenario: &'a LoadedScenario, variant: Option<&'a str>) -> Self {
        Self {
            scenario,
            variant,
            fault: None,
        }
    }

    /// `scenario` or `scenario[variant]`.
    pub fn name(&self) -> String {
        crate::run::trial_name(self.scenario.scenario.name.value.as_str(), self.variant)
    }
}

/// What a target runs: every run of a `selinux-harness run`, up to `jobs` at a time. `jobs` 1
/// is a batch of width one: the runs go one after another, in order, as if alone on the host.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    pub runs: Vec<RunItem<'a>>,
    pub jobs: usize,
    /// The policy under test of each run, by its index in `runs` (see `policy_batch`); a run
    /// not named here runs under the target's policy as it is.
    pub policies: std::collections::BTreeMap<usize, Arc<crate::policy::PolicyUnderTest>>,
}

impl<'a> Batch<'a> {
    pub fn new(runs: Vec<RunItem<'a>>, jobs: usize) -> Self {
        Self {
            runs,
            jobs: jobs.max(1),
            policies: Default::default(),
        }
    }

    /// Run `i` under `policy` (an empty policy is the target's own).
    pub fn with_policy(mut self, i: usize, policy: crate::policy::PolicyUnderTest) -> Self {
        if !policy.is_empty() {
            self.policies.insert(i, Arc::new(policy));
        }
        self
    }

    /// Every run with the policy its scenario (and variant) brings (`host.modules`,
    /// `permissive`), module files read now; the diagnostics of files that are not there.
    pub fn with_scenario_policies(mut self) -> Result<Self, Vec<crate::scenario::Diagnostic>> {
        let mut errors = Vec::new();
        for i in 0..self.runs.len() {
            let item = &self.runs[i];
            match crate::policy::for_run(item.scenario, item.variant) {
                Ok(p) => self = self.with_policy(i, p),
                Err(d) => errors.push(d),
            }
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }

    /// The policy run `i` brings (empty: none).
    pub fn policy(&self, i: usize) -> crate::policy::PolicyUnderTest {
        self.policies
            .get(&i)
            .map(|p| (**p).clone())
            .unwrap_or_default()
    }

    /// One run alone.
    pub fn one(scenario: &'a LoadedScenario, variant: Option<&'a str>) -> Self {
        Self::new(vec![RunItem::new(scenario, variant)], 1)
    }

    /// Whether runs may overlap (then they share the host through [`Concurrency`]).
    pub fn is_parallel(&self) -> bool {
        self.jobs > 1
    }
}

/// Runs `batch` on this host; `on_event` gets every run's events in envelopes tagged with its
/// index in the batch, on the calling thread. Returns the verdicts in the order of the batch:
/// None for a run that never started because of Ctrl-C (it did nothing, and says nothing).
/// With `jobs` > 1, ordinary runs go first and the ones that need the host alone after them (so
/// they do not stall the others while they wait for the host).
pub fn run_batch(
    batch: &Batch<'_>,
    target: &TargetInfo,
    paths: &HostPaths,
    on_event: &mut dyn FnMut(Envelope),
) -> Vec<Option<Verdict>> {
    let items = &batch.runs;
    let paths = HostPaths {
        concurrency: batch.is_parallel().then(|| Arc::new(Concurrency::new())),
        ..paths.clone()
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    if batch.is_parallel() {
        order.sort_by_key(|&i| {
            exclusive_reason(&items[i].scenario.scenario, items[i].variant).is_some()
        });
    }
    let queue = Mutex::new(order.into_iter());
    let mut verdicts: Vec<Option<Verdict>> = vec![None; items.len()];
    let (tx, rx) = mpsc::channel::<Envelope>();
    std::thread::scope(|scope| {
        for _ in 0..batch.jobs.clamp(1, items.len().max(1)) {
            let tx = tx.clone();
            let (queue, paths) = (&queue, &paths);
            // Unnamed on purpose: a thread inherits the process's comm, which the kernel logs
            // in AVCs and the noise filter knows (`NoiseFilter::for_this_process`).
            scope.spawn(move || loop {
                if paths.interrupt.is_set() {
                    break;
                }
                let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                let Some(i) = next else { break };
                let item = &items[i];
                let mut sink = |e: Event| {
                    // The receiver lives until every worker is done.
                    let _ = tx.send(Envelope::now(i, e));
                };
                let paths = HostPaths {
                    fault: item.fault.clone(),
                    ..paths.clone()
                };
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    execute(item.scenario, item.variant, target, &paths, &mut sink)
                }));
                if let Err(p) = run {
                    let what = p
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied())
                        .unwrap_or("a panic");
                    sink(Event::ScenarioFinished {
                        verdict: Verdict::Error {
                            reason: RunError::Panicked(what.to_string()).to_string(),
                        },
                        millis: 0,
                    });
                }
            });
        }
        drop(tx);
        for envelope in rx {
            if let Some(v) = envelope.event.verdict() {
                if let Some(slot) = verdicts.get_mut(envelope.run) {
                    *slot = Some(v);
                }
            }
            on_event(envelope);
        }
    });
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::parallel::tests::seed;

    #[test]
    fn an_interrupted_batch_starts_no_run_and_says_nothing() {
        let cross = seed("cross-attach.yaml");
        let distinct = seed("distinct-dynamic-labels.yaml");
        let items = vec![
            RunItem::new(&cross, Some("remember_owner_0")),
            RunItem::new(&distinct, None),
            RunItem::new(&cross, Some("default")),
        ];
        let paths = HostPaths::default();
        // Set before the batch: nothing may touch this host.
        paths.interrupt.trigger();
        for jobs in [1, 2] {
            let mut seen = Vec::new();
            let verdicts = run_batch(
                &Batch::new(items.clone(), jobs),
                &TargetInfo::default(),
                &paths,
                &mut |e| seen.push(e),
            );
            assert_eq!(verdicts, [None, None, None], "jobs {jobs}");
            assert!(seen.is_empty(), "jobs {jobs}: {seen:?}");
        }
    }
}
