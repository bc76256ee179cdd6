//! Reports: every reporter consumes the same event stream.
//!
//! `human` prints as events arrive; `Record` gathers the stream into one structure per scenario,
//! which the JSON and JUnit writers serialise at the end.

pub mod compare;
pub mod html;
pub mod human;
pub mod junit;
pub mod markdown;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::evidence::Evidence;
use crate::host::environment::TargetInfo;
use crate::oracle::Explanation;
use crate::run::batch::Batch;
use crate::run::event::{Envelope, Event};
use crate::run::trial_name;
use crate::run::verdict::{Check, Verdict};

/// Whatever consumes the event stream: the human report, the record behind the JSON, JUnit,
/// HTML and Markdown reports, the `--format events` lines, a test's collector. `dispatch` feeds
/// every event to each.
pub trait Reporter {
    fn event(&mut self, e: &Envelope);
}

impl<F: FnMut(&Envelope)> Reporter for F {
    fn event(&mut self, e: &Envelope) {
        self(e)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub title: String,
    pub millis: u64,
    pub evidence: Vec<Evidence>,
    pub checks: Vec<Check>,
    /// The oracle's answers for the step (why the policy decided each denial; a probe's
    /// predicted outcome).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explanations: Vec<Explanation>,
}

/// A guest's QEMU log, as [`Event::GuestLog`] carried it.
#[derive(Debug, Clone, Serialize)]
pub struct GuestLog {
    pub domain: String,
    pub path: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRecord {
    pub scenario: String,
    pub variant: Option<String>,
    pub file: String,
    pub target: TargetInfo,
    pub verdict: Option<Verdict>,
    pub millis: u64,
    pub notes: Vec<String>,
    pub steps: Vec<StepRecord>,
    /// The guests' QEMU logs (command line first), for repro bundles; absent in records of
    /// runs where no guest started.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guest_logs: Vec<GuestLog>,
}

impl ScenarioRecord {
    /// `scenario` or `scenario[variant]`: the name trials and test cases use.
    pub fn id(&self) -> String {
        trial_name(&self.scenario, self.variant.as_deref())
    }
}

/// The whole run, as the JSON report shows it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Record {
    /// In the order of the batch; a run that never started (Ctrl-C) has none.
    pub scenarios: Vec<ScenarioRecord>,
    /// The batch index of each of `scenarios`.
    #[serde(skip)]
    runs: Vec<usize>,
    /// Files of runs begun whose first event has not come yet.
    #[serde(skip)]
    files: BTreeMap<usize, String>,
}

impl Record {
    /// A record for every run of `batch`; the events that follow fill it.
    pub fn for_batch(batch: &Batch<'_>) -> Self {
        let mut r = Record::default();
        for (i, item) in batch.runs.iter().enumerate() {
            r.begin(i, &item.scenario.path.display().to_string());
        }
        r
    }

    /// Run `run` of the batch is `file`; its scenario record starts with its first event.
    pub fn begin(&mut self, run: usize, file: &str) {
        self.files.insert(run, file.to_string());
    }

    fn scenario(&mut self, run: usize) -> Option<&mut ScenarioRecord> {
        let at = match self.runs.binary_search(&run) {
            Ok(at) => at,
            Err(at) => {
                // An index that was never begun comes from a confused guest: ignored.
                let file = self.files.remove(&run)?;
                self.runs.insert(at, run);
                self.scenarios.insert(
                    at,
                    ScenarioRecord {
                        scenario: String::new(),
                        variant: None,
                        file,
                        target: TargetInfo::default(),
                        verdict: None,
                        millis: 0,
                        notes: Vec::new(),
                        steps: Vec::new(),
                        guest_logs: Vec::new(),
                    },
                );
                at
            }
        };
        self.scenarios.get_mut(at)
    }

    /// Adds one event to its run's scenario record; the runs of a batch send their events
    /// interleaved.
    pub fn observe(&mut self, envelope: &Envelope) {
        let Some(s) = self.scenario(envelope.run) else {
            return;
        };
        match &envelope.event {
            Event::ScenarioStarted {
                scenario,
                variant,
                target,
            } => {
                s.scenario = scenario.clone();
                s.variant = variant.clone();
                s.target = target.clone();
            }
            Event::StepStarted { step, title } => s.steps.push(StepRecord {
                step: *step,
                title: title.clone(),
                millis: 0,
                evidence: Vec::new(),
                checks: Vec::new(),
                explanations: Vec::new(),
            }),
            Event::Evidence { evidence, .. } => {
                if let Some(st) = s.steps.last_mut() {
                    st.evidence.push(evidence.clone());
                }
            }
            Event::ExpectationChecked { check, .. } => {
                if let Some(st) = s.steps.last_mut() {
                    st.checks.push(check.clone());
                }
            }
            Event::StepFinished { millis, .. } => {
                if let Some(st) = s.steps.last_mut() {
                    st.millis = *millis;
                }
            }
            Event::Note { message } => s.notes.push(message.clone()),
            Event::GuestLog { domain, path, text } => s.guest_logs.push(GuestLog {
                domain: domain.clone(),
                path: path.clone(),
                text: text.clone(),
            }),
            Event::CleanedUp(undone) => s.notes.push(undone.to_string()),
            Event::HostStateVerified { differences } => {
                if differences.is_empty() {
                    s.notes.push(human::HOST_STATE_EQUAL.to_string());
                }
            }
            Event::ScenarioFinished { verdict, millis } => {
                s.verdict = Some(verdict.clone());
                s.millis = *millis;
            }
            Event::Explained { explanation, .. } => {
                if let Some(st) = s.steps.last_mut() {
                    st.explanations.push(explanation.clone());
                }
            }
            Event::TargetFailed {
                scenario,
                variant,
                reason,
            } => {
                if s.scenario.is_empty() {
                    s.scenario = scenario.clone();
                    s.variant = variant.clone();
                }
                if s.verdict.is_none() {
                    s.verdict = Some(Verdict::Error {
                        reason: reason.clone(),
                    });
                }
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl Reporter for Record {
    fn event(&mut self, e: &Envelope) {
        self.observe(e)
    }
}

/// `--format events`: each event in its envelope as one JSON line, flushed at once, for tools
/// that follow a run as it happens.
pub struct EventLines<W: std::io::Write>(pub W);

impl<W: std::io::Write> Reporter for EventLines<W> {
    fn event(&mut self, e: &Envelope) {
        // A reader that went away must not stop the run (and its cleanup).
        let w = &mut self.0;
        let _ = serde_json::to_writer(&mut *w, e)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(w))
            .and_then(|()| w.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(name: &str) -> Event {
        Event::ScenarioStarted {
            scenario: name.into(),
            variant: None,
            target: TargetInfo::default(),
        }
    }

    #[test]
    fn interleaved_runs_land_in_their_own_records() {
        let mut r = Record::default();
        r.begin(0, "a.yaml");
        r.begin(1, "b.yaml");
        r.begin(2, "c.yaml");
        let mut see = |run, e| r.observe(&Envelope::now(run, e));
        see(1, started("b"));
        see(0, started("a"));
        let step = |n| Event::StepStarted {
            step: n,
            title: format!("step {n}"),
        };
        see(1, step(1));
        see(0, step(1));
        see(1, step(2));
        see(
            0,
            Event::ScenarioFinished {
                verdict: Verdict::Pass,
                millis: 5,
            },
        );
        see(
            1,
            Event::TargetFailed {
                scenario: "b".into(),
                variant: None,
                reason: "guest died".into(),
            },
        );
        // Out of range is ignored, not a panic: the index comes from the guest.
        see(7, started("c"));
        // Run 2 never started (Ctrl-C): it has no record.
        assert_eq!(r.scenarios.len(), 2);
        let a = &r.scenarios[0];
        let b = &r.scenarios[1];
        assert_eq!((a.scenario.as_str(), a.steps.len()), ("a", 1));
        assert_eq!((b.scenario.as_str(), b.steps.len()), ("b", 2));
        assert_eq!(a.verdict, Some(Verdict::Pass));
        assert_eq!(b.verdict.as_ref().map(Verdict::label), Some("error"));
    }
}
