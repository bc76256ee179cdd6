//! The one stream of typed events a batch of runs produces.
//!
//! The executor emits [`Event`]s; the batch puts each in an [`Envelope`] with the index of its
//! run and the time; every reporter consumes the envelopes (see `dispatch`). The guest agent
//! sends the same envelopes back over its channel as JSON lines, so a run in the VM and a run on
//! the local host look the same to everything above the target.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::evidence::Evidence;
use crate::host::environment::TargetInfo;
use crate::oracle::Explanation;
use crate::run::verdict::{Check, Verdict};

/// One step of a run's cleanup and how it went (made by `host::cleanup`).
pub use crate::host::cleanup::{UndoOutcome, Undone};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    ScenarioStarted {
        scenario: String,
        variant: Option<String>,
        target: TargetInfo,
    },
    StepStarted {
        step: usize,
        title: String,
    },
    Evidence {
        step: usize,
        evidence: Evidence,
    },
    ExpectationChecked {
        step: usize,
        check: Check,
    },
    StepFinished {
        step: usize,
        millis: u64,
    },
    /// Something worth telling a human that is not evidence (a setting applied, a fault
    /// injected, AVC records left to another run).
    Note {
        message: String,
    },
    /// A guest's log as libvirt wrote it (the QEMU command line, then QEMU's own messages),
    /// read after cleanup for bug reports; no expectation looks at it. `domain` is the
    /// scenario's name for the guest; `text` is at most `GUEST_LOG_LIMIT` bytes from the start.
    GuestLog {
        domain: String,
        path: String,
        text: String,
    },
    /// One change of the run undone by its cleanup, and how that went.
    CleanedUp(Undone),
    /// The host state after cleanup compared with the state before the run (only when the
    /// target verifies it): the proof that cleanup put everything back.
    HostStateVerified {
        /// What differs; empty when the states are equal.
        differences: Vec<String>,
    },
    ScenarioFinished {
        verdict: Verdict,
        millis: u64,
    },
    /// The target broke before the run reached its verdict (the VM died, the agent fell
    /// silent): the run ends in `error` with this reason. Sent by the dispatcher, not the
    /// executor, so it names the scenario in case the run never started.
    TargetFailed {
        scenario: String,
        variant: Option<String>,
        reason: String,
    },
    /// The oracle's answer for one access of a step: why the loaded policy decided an AVC
    /// record of the step as it did, or a probe's predicted outcome beside the observed one.
    Explained {
        step: usize,
        explanation: Explanation,
    },
}

impl Event {
    /// The verdict this event ends its run with, if it ends it.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            Event::ScenarioFinished { verdict, .. } => Some(verdict.clone()),
            Event::TargetFailed { reason, .. } => Some(Verdict::Error {
                reason: reason.clone(),
            }),
            _ => None,
        }
    }
}

/// An event of one run of a batch, as it travels and as reporters get it (as nextest's
/// reporter events carry their test and a timestamp): runs of `--jobs N` interleave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The run's index in its batch.
    pub run: usize,
    /// When the event was put in its envelope, on the target's clock (the VM's is set from
    /// the host's when it boots).
    pub timestamp: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    /// `event` of run `run`, stamped now.
    pub fn now(run: usize, event: Event) -> Self {
        Self {
            run,
            timestamp: Utc::now(),
            event,
        }
    }
}

/// Where events go. A reporter, a channel to the host, a collector in a test.
pub trait EventSink {
    fn emit(&mut self, event: Event);
}

impl<F: FnMut(Event)> EventSink for F {
    fn emit(&mut self, event: Event) {
        self(event)
    }
}
