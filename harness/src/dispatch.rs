//! The one loop that runs a batch on a target and feeds every reporter: `selinux-harness run`,
//! `repro`, the conformance suite and the benchmarks all run scenarios through [`dispatch`].

use crate::event::{Envelope, Event};
use crate::parallel::Batch;
use crate::target::Target;
use crate::verdict::Verdict;

/// Whatever consumes the event stream: the human report, the record behind the JSON, JUnit,
/// HTML and Markdown reports, the `--format events` lines, a test's collector.
pub trait Reporter {
    fn event(&mut self, e: &Envelope);
}

impl<F: FnMut(&Envelope)> Reporter for F {
    fn event(&mut self, e: &Envelope) {
        self(e)
    }
}

/// Runs `batch` on `target`, giving every event to every reporter in turn. A target that
/// breaks is one more event: each run it left without a verdict gets
/// [`Event::TargetFailed`], so its verdict is `error` with the target's reason. Returns each
/// run's verdict in the order of the batch; None for a run that never started (Ctrl-C).
pub fn dispatch(
    target: &mut dyn Target,
    batch: &Batch<'_>,
    reporters: &mut [&mut dyn Reporter],
) -> Vec<Option<Verdict>> {
    let n = batch.runs.len();
    let mut state = State {
        verdicts: vec![None; n],
        started: vec![false; n],
        reporters,
    };
    let broken = target
        .run(batch, &mut |e| state.feed(e))
        .err()
        .map(|e| e.to_string());
    for (i, item) in batch.runs.iter().enumerate() {
        if state.verdicts[i].is_some() {
            continue;
        }
        let reason = match (&broken, state.started[i]) {
            (Some(why), _) => why.clone(),
            (None, true) => "the run ended without a verdict".to_string(),
            // Not started, and nothing broke: Ctrl-C kept it from starting.
            (None, false) => continue,
        };
        state.feed(Envelope::now(
            i,
            Event::TargetFailed {
                scenario: item.scenario.scenario.name.value.to_string(),
                variant: item.variant.map(str::to_string),
                reason,
            },
        ));
    }
    state.verdicts
}

struct State<'r, 'a> {
    verdicts: Vec<Option<Verdict>>,
    started: Vec<bool>,
    reporters: &'r mut [&'a mut dyn Reporter],
}

impl State<'_, '_> {
    fn feed(&mut self, envelope: Envelope) {
        if let Some(run) = self.started.get_mut(envelope.run) {
            *run |= matches!(envelope.event, Event::ScenarioStarted { .. });
        }
        if let (Some(slot), Some(v)) = (
            self.verdicts.get_mut(envelope.run),
            envelope.event.verdict(),
        ) {
            *slot = Some(v);
        }
        for r in self.reporters.iter_mut() {
            r.event(&envelope);
        }
    }
}
