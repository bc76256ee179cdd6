//! Reports: every reporter consumes the same event stream.
//!
//! `human` prints as events arrive; `Record` gathers the stream into one structure per scenario,
//! which the JSON and JUnit writers serialise at the end.

pub mod human;
pub mod junit;

use serde::Serialize;

use crate::event::{Event, TargetInfo};
use crate::evidence::Evidence;
use crate::verdict::{Check, Verdict};

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub title: String,
    pub millis: u64,
    pub evidence: Vec<Evidence>,
    pub checks: Vec<Check>,
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
}

impl ScenarioRecord {
    /// `scenario` or `scenario[variant]`: the name trials and test cases use.
    pub fn id(&self) -> String {
        trial_name(&self.scenario, self.variant.as_deref())
    }
}

pub fn trial_name(scenario: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{scenario}[{v}]"),
        None => scenario.to_string(),
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
        });
    }

    /// A verdict reached without events (a skip decided on the host, a target that failed).
    pub fn conclude(&mut self, scenario: &str, variant: Option<&str>, verdict: Verdict) {
        if let Some(s) = self.scenarios.last_mut() {
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
        let Some(s) = self.scenarios.last_mut() else {
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
