//! The one loop that runs a batch on a target and feeds every reporter: `selinux-harness run`,
//! `repro`, the conformance suite and the benchmarks all run scenarios through [`dispatch`].

use crate::report::Reporter;
use crate::run::batch::Batch;
use crate::run::event::{Envelope, Event};
use crate::run::verdict::Verdict;
use crate::target::Target;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::environment::TargetInfo;
    use crate::run::batch::RunItem;
    use crate::target::TargetError;

    /// Plays back a script of events, then breaks (or not).
    struct Scripted {
        events: Vec<(usize, Event)>,
        breaks: Option<&'static str>,
    }

    impl Target for Scripted {
        fn info(&mut self) -> Result<TargetInfo, TargetError> {
            Ok(TargetInfo::default())
        }

        fn run(
            &mut self,
            _batch: &Batch<'_>,
            sink: &mut dyn FnMut(Envelope),
        ) -> Result<(), TargetError> {
            for (run, e) in self.events.drain(..) {
                sink(Envelope::now(run, e));
            }
            match self.breaks {
                Some(why) => Err(TargetError::Failed(why.into())),
                None => Ok(()),
            }
        }
    }

    fn started(name: &str) -> Event {
        Event::ScenarioStarted {
            scenario: name.into(),
            variant: None,
            target: TargetInfo::default(),
        }
    }

    fn finished() -> Event {
        Event::ScenarioFinished {
            verdict: Verdict::Pass,
            millis: 1,
        }
    }

    fn seed() -> crate::scenario::LoadedScenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/seed/dynamic-relabel-no.yaml");
        crate::scenario::load_file(&path).expect("the seed scenario loads")
    }

    #[test]
    fn a_broken_target_is_an_event_for_every_run_it_left_without_a_verdict() {
        let l = seed();
        let batch = Batch::new(
            vec![
                RunItem::new(&l, None),
                RunItem::new(&l, Some("a")),
                RunItem::new(&l, Some("b")),
            ],
            2,
        );
        let mut target = Scripted {
            events: vec![(0, started("x")), (1, started("x")), (0, finished())],
            breaks: Some("the VM died"),
        };
        let mut seen = Vec::new();
        let mut collect = |e: &Envelope| seen.push((e.run, e.event.clone()));
        let verdicts = dispatch(&mut target, &batch, &mut [&mut collect]);
        let error = Some(Verdict::Error {
            reason: "the VM died".into(),
        });
        assert_eq!(verdicts, [Some(Verdict::Pass), error.clone(), error]);
        let failed: Vec<(usize, Option<String>)> = seen
            .iter()
            .filter_map(|(run, e)| match e {
                Event::TargetFailed { variant, .. } => Some((*run, variant.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(failed, [(1, Some("a".into())), (2, Some("b".into()))]);
    }

    #[test]
    fn a_run_that_never_started_has_no_verdict_and_one_cut_short_has_an_error() {
        let l = seed();
        let batch = Batch::new(vec![RunItem::new(&l, None), RunItem::new(&l, None)], 1);
        let mut target = Scripted {
            events: vec![(0, started("x"))],
            breaks: None,
        };
        let mut count = 0;
        let mut counter = |_: &Envelope| count += 1;
        let verdicts = dispatch(&mut target, &batch, &mut [&mut counter]);
        assert_eq!(
            verdicts,
            [
                Some(Verdict::Error {
                    reason: "the run ended without a verdict".into()
                }),
                None
            ]
        );
        assert_eq!(count, 2);
    }

    #[test]
    fn an_envelope_is_one_flat_json_object() {
        let e = Envelope::now(
            3,
            Event::Note {
                message: "m".into(),
            },
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["run"], 3);
        assert_eq!(json["event"], "note");
        assert_eq!(json["message"], "m");
        assert!(json["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), e);
    }
}
