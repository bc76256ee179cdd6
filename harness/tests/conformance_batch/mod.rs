//! The suite's scenario runs as one batch on the shared target, as `run --jobs N` sends them:
//! the first scenario trial that runs sends every selected run to the warm guest at once, up to
//! SELINUX_HARNESS_JOBS at a time (default `DEFAULT_JOBS`); each trial then reports its own
//! run's verdict, report and record, as if it had run alone.

use std::sync::{Arc, Mutex};

use libtest_mimic::{Completion, Failed};

use selinux_harness::dispatch::dispatch;
use selinux_harness::report::{human::Human, Record, Reporter};
use selinux_harness::run::batch::{Batch, RunItem};
use selinux_harness::run::event::Envelope;
use selinux_harness::run::verdict::Verdict;
use selinux_harness::scenario::LoadedScenario;

use super::{start_target, Facts, Shared};

/// How many runs the guest runs at once unless SELINUX_HARNESS_JOBS says otherwise: two
/// overlap well on two host cores (BENCHMARKS.md, "Conformance suite"). A neighbour's denial is
/// told apart by its pid, its MCS level (also from libvirt's VIRT_MACHINE_ID record, for a QEMU
/// denied before its label was read) or its sandbox path; a run that expects a denial carrying
/// none of these, or changes the host for everyone, runs alone (`run::parallel::exclusive_reason`).
pub const DEFAULT_JOBS: usize = 2;
pub const JOBS_ENV: &str = "SELINUX_HARNESS_JOBS";

/// What one run left: its raw verdict (None: it never started), its human report, its record
/// and the facts the trial checks.
struct Done {
    verdict: Option<Verdict>,
    text: String,
    record: Record,
    facts: Facts,
}

/// One run's reporters; the batch's envelopes reach it renumbered as run 0 of a batch of one.
struct Own {
    human: Human<Vec<u8>>,
    record: Record,
    facts: Facts,
}

/// The runs the suite may batch, each in a slot of its own; `select` marks those libtest
/// will actually run (not filtered out).
pub struct SuiteBatch {
    runs: Vec<(Arc<LoadedScenario>, Option<String>)>,
    selected: Mutex<Vec<bool>>,
    /// Filled by the first trial that needs a result: one entry per slot (None: not selected).
    results: Mutex<Option<Result<Vec<Option<Done>>, String>>>,
    shared: Shared,
}

impl SuiteBatch {
    pub fn new(shared: Shared) -> Arc<SuiteBatch> {
        Arc::new(SuiteBatch {
            runs: Vec::new(),
            selected: Mutex::new(Vec::new()),
            results: Mutex::new(None),
            shared,
        })
    }

    /// A slot for `l` under `variant`; call before the batch is shared.
    pub fn slot(
        this: &mut Arc<SuiteBatch>,
        l: Arc<LoadedScenario>,
        variant: Option<String>,
    ) -> usize {
        let me = Arc::get_mut(this).expect("slots are added before the trials are built");
        me.runs.push((l, variant));
        me.runs.len() - 1
    }

    /// Which slots libtest will run (in slot order).
    pub fn select(&self, selected: Vec<bool>) {
        if let Ok(mut s) = self.selected.lock() {
            *s = selected;
        }
    }

    fn jobs() -> usize {
        std::env::var(JOBS_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n >= 1)
            .unwrap_or(DEFAULT_JOBS)
    }

    /// Slot `slot`'s verdict, human report and record, as `run_shared` gives them for a run
    /// alone; `Err` holds the completion to return at once (the target cannot run here).
    pub fn result(
        &self,
        slot: usize,
    ) -> Result<(Verdict, String, Record), Result<Completion, Failed>> {
        let mut results = self
            .results
            .lock()
            .map_err(|_| Err(Failed::from("batch lock poisoned")))?;
        if results.is_none() {
            *results = Some(self.run_all());
        }
        let all = match results.as_mut() {
            Some(Ok(all)) => all,
            Some(Err(why)) => return Err(Ok(Completion::ignored_with(why.clone()))),
            None => return Err(Err("the batch never ran".into())),
        };
        let done = all
            .get_mut(slot)
            .and_then(Option::take)
            .ok_or_else(|| Err(Failed::from("this trial's run was not in the batch")))?;
        let verdict = super::settled_verdict(done.verdict, &done.facts);
        Ok((verdict, done.text, done.record))
    }

    fn run_all(&self) -> Result<Vec<Option<Done>>, String> {
        let selected = self
            .selected
            .lock()
            .map_err(|_| "selection lock poisoned")?
            .clone();
        let mut guard = self.shared.lock().map_err(|_| "target lock poisoned")?;
        let target = match guard.get_or_insert_with(start_target) {
            Ok(t) => t,
            Err(why) => return Err(why.clone()),
        };
        let slots: Vec<usize> = (0..self.runs.len())
            .filter(|&i| selected.get(i).copied().unwrap_or(false))
            .collect();
        let items: Vec<RunItem> = slots
            .iter()
            .map(|&i| RunItem::new(&self.runs[i].0, self.runs[i].1.as_deref()))
            .collect();
        // Each scenario's own policy under test (scenarios/policy) goes with it, as on `run`.
        let batch = Batch::new(items, Self::jobs())
            .with_scenario_policies()
            .map_err(|d| format!("{d:?}"))?;
        eprintln!(
            "conformance: {} scenario runs as one batch, {} at a time ({JOBS_ENV})",
            batch.runs.len(),
            batch.jobs
        );
        let mut own: Vec<Own> = slots
            .iter()
            .map(|&i| Own {
                human: Human::new(Vec::new(), false, false),
                record: Record::for_batch(&Batch::one(&self.runs[i].0, self.runs[i].1.as_deref())),
                facts: Facts::default(),
            })
            .collect();
        let mut demux = |e: &Envelope| {
            if let Some(o) = own.get_mut(e.run) {
                let alone = Envelope {
                    run: 0,
                    ..e.clone()
                };
                o.human.event(&alone);
                o.record.event(&alone);
                o.facts.event(&alone);
            }
        };
        let began = std::time::Instant::now();
        let verdicts = dispatch(
            target.as_mut(),
            &batch,
            &mut [&mut demux as &mut dyn Reporter],
        );
        // The cost model (BENCHMARKS.md) reads this line.
        eprintln!(
            "conformance: the batch of {} runs took {:.1} s",
            batch.runs.len(),
            began.elapsed().as_secs_f64()
        );
        let mut out: Vec<Option<Done>> = (0..self.runs.len()).map(|_| None).collect();
        for ((slot, o), verdict) in slots.into_iter().zip(own).zip(verdicts) {
            out[slot] = Some(Done {
                verdict,
                text: String::from_utf8_lossy(&o.human.into_inner()).into_owned(),
                record: o.record,
                facts: o.facts,
            });
        }
        Ok(out)
    }
}
