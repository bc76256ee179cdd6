//! Reports: every reporter consumes the same event stream.
//!
//! `human` prints as events arrive; `Record` gathers the stream into one structure per scenario,
//! which the JSON and JUnit writers serialise at the end.

pub mod html;
pub mod human;
pub mod junit;
pub mod markdown;

use serde::Serialize;

use crate::evidence::Evidence;
use crate::host::environment::TargetInfo;
use crate::run::event::Event;
use crate::run::trial_name;
use crate::run::verdict::{Check, Verdict};

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub title: String,
    pub millis: u64,
    pub evidence: Vec<Evidence>,
    pub checks: Vec<Check>,
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
    pub scenarios: Vec<ScenarioRecord>,
}

impl Record {
    /// Start a scenario record for `file`; the events that follow fill it.
    pub fn begin(&mut self, file: &str) {
        self.scenarios.push(ScenarioRecord {
            scenario: String::new(),
            variant: None,
            file: file.to_string(),
            target: TargetInfo::default(),
            verdict: None,
            millis: 0,
            notes: Vec::new(),
            steps: Vec::new(),
            guest_logs: Vec::new(),
        });
    }

    /// A verdict reached without events (a skip decided on the host, a target that failed).
    pub fn conclude(&mut self, scenario: &str, variant: Option<&str>, verdict: Verdict) {
        let last = self.scenarios.len().wrapping_sub(1);
        self.conclude_run(last, scenario, variant, verdict);
    }

    /// [`Record::conclude`] for the `run`-th scenario record (runs of a batch, begun in order).
    pub fn conclude_run(
        &mut self,
        run: usize,
        scenario: &str,
        variant: Option<&str>,
        verdict: Verdict,
    ) {
        if let Some(s) = self.scenarios.get_mut(run) {
            if s.scenario.is_empty() {
                s.scenario = scenario.to_string();
                s.variant = variant.map(str::to_string);
            }
            if s.verdict.is_none() {
                s.verdict = Some(verdict);
            }
        }
    }

    pub fn observe(&mut self, e: &Event) {
        let last = self.scenarios.len().wrapping_sub(1);
        self.observe_run(last, e);
    }

    /// [`Record::observe`] for the `run`-th scenario record: the runs of a batch send their
    /// events interleaved.
    pub fn observe_run(&mut self, run: usize, e: &Event) {
        let Some(s) = self.scenarios.get_mut(run) else {
            return;
        };
        match e {
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
            Event::ScenarioFinished { verdict, millis } => {
                s.verdict = Some(verdict.clone());
                s.millis = *millis;
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
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
        r.begin("a.yaml");
        r.begin("b.yaml");
        r.observe_run(1, &started("b"));
        r.observe_run(0, &started("a"));
        let step = |n| Event::StepStarted {
            step: n,
            title: format!("step {n}"),
        };
        r.observe_run(1, &step(1));
        r.observe_run(0, &step(1));
        r.observe_run(1, &step(2));
        r.observe_run(
            0,
            &Event::ScenarioFinished {
                verdict: Verdict::Pass,
                millis: 5,
            },
        );
        r.conclude_run(
            1,
            "b",
            None,
            Verdict::Error {
                reason: "guest died".into(),
            },
        );
        let a = &r.scenarios[0];
        let b = &r.scenarios[1];
        assert_eq!((a.scenario.as_str(), a.steps.len()), ("a", 1));
        assert_eq!((b.scenario.as_str(), b.steps.len()), ("b", 2));
        assert_eq!(a.verdict, Some(Verdict::Pass));
        assert_eq!(b.verdict.as_ref().map(Verdict::label), Some("error"));
        // Out of range is ignored, not a panic: the index comes from the guest.
        r.observe_run(7, &started("c"));
        assert_eq!(r.scenarios.len(), 2);
    }
}
