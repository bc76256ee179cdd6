//! A batch: several (scenario, variant) runs on this host, up to `jobs` at a time, each an
//! ordinary executor on a thread of its own; `parallel` arbitrates what they share. All runs
//! share the one [`crate::interrupt::Interrupt`] of the `HostPaths` they get.

use std::sync::{mpsc, Arc, Mutex, PoisonError};

use crate::host::environment::TargetInfo;
use crate::run::event::Event;
use crate::run::executor::{execute, HostPaths};
use crate::run::parallel::{exclusive_reason, not_started, Concurrency, RunItem};
use crate::run::verdict::Verdict;

/// Runs `items` on this host with up to `jobs` at a time; `on_event` gets every run's events,
/// tagged with its index in `items`, on the calling thread. Returns the verdicts in the order
/// of `items`. Ordinary runs go first, the ones that need the host alone after them (so they do
/// not stall the others while they wait for the host).
pub fn run_many(
    items: &[RunItem<'_>],
    jobs: usize,
    target: &TargetInfo,
    paths: &HostPaths,
    on_event: &mut dyn FnMut(usize, Event),
) -> Vec<Verdict> {
    let paths = HostPaths {
        concurrency: Some(Arc::new(Concurrency::new())),
        ..paths.clone()
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| {
        exclusive_reason(&items[i].scenario.scenario, items[i].variant).is_some()
    });
    let queue = Mutex::new(order.into_iter());
    let mut verdicts: Vec<Option<Verdict>> = vec![None; items.len()];
    let (tx, rx) = mpsc::channel::<(usize, Event)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            let tx = tx.clone();
            let (queue, paths) = (&queue, &paths);
            // Unnamed on purpose: a thread inherits the process's comm, which the kernel logs
            // in AVCs and the noise filter knows (`NoiseFilter::for_this_process`).
            scope.spawn(move || loop {
                let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                let Some(i) = next else { break };
                let item = items[i];
                let mut sink = |e: Event| {
                    // The receiver lives until every worker is done.
                    let _ = tx.send((i, e));
                };
                if paths.interrupt.is_set() {
                    not_started(item, target, &mut sink);
                    continue;
                }
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    execute(item.scenario, item.variant, target, paths, &mut sink)
                }));
                if let Err(p) = run {
                    let what = p
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied())
                        .unwrap_or("a panic");
                    sink(Event::ScenarioFinished {
                        verdict: Verdict::Error {
                            reason: format!("the run panicked (its cleanup ran on unwind): {what}"),
                        },
                        millis: 0,
                    });
                }
            });
        }
        drop(tx);
        for (i, e) in rx {
            if let Event::ScenarioFinished { verdict, .. } = &e {
                verdicts[i] = Some(verdict.clone());
            }
            on_event(i, e);
        }
    });
    verdicts
        .into_iter()
        .map(|v| {
            v.unwrap_or_else(|| Verdict::Error {
                reason: "the run ended without a verdict".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::LoadedScenario;

    fn seed(name: &str) -> LoadedScenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/seed")
            .join(name);
        crate::scenario::load_file(&path).expect("the seed scenarios load")
    }

    #[test]
    fn an_interrupted_batch_reports_every_run_as_not_started() {
        let cross = seed("cross-attach.yaml");
        let distinct = seed("distinct-dynamic-labels.yaml");
        let items = [
            RunItem {
                scenario: &cross,
                variant: Some("remember_owner_0"),
            },
            RunItem {
                scenario: &distinct,
                variant: None,
            },
            RunItem {
                scenario: &cross,
                variant: Some("default"),
            },
        ];
        let paths = HostPaths::default();
        // Set before the batch: nothing may touch this host.
        paths.interrupt.trigger();
        let mut seen: Vec<(usize, &'static str)> = Vec::new();
        let verdicts = run_many(&items, 2, &TargetInfo::default(), &paths, &mut |i, e| {
            seen.push((
                i,
                match e {
                    Event::ScenarioStarted { .. } => "started",
                    Event::ScenarioFinished { .. } => "finished",
                    _ => "other",
                },
            ))
        });
        assert_eq!(verdicts.len(), 3);
        for v in &verdicts {
            assert!(
                matches!(v, Verdict::Error { reason } if reason.contains("interrupted before")),
                "{v:?}"
            );
        }
        for i in 0..3 {
            let mine: Vec<&str> = seen
                .iter()
                .filter(|(j, _)| *j == i)
                .map(|(_, k)| *k)
                .collect();
            assert_eq!(mine, ["started", "finished"], "run {i}");
        }
    }
}
