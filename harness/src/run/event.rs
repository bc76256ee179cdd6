//! The one stream of typed events a run produces.
//!
//! The executor emits these; every reporter consumes them. The guest agent sends the same
//! events back over its channel as JSON lines, so a run in the VM and a run on the local host
//! look the same to everything above the target.

use serde::{Deserialize, Serialize};

use crate::evidence::Evidence;
use crate::host::environment::TargetInfo;
use crate::run::verdict::{Check, Verdict};

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
    /// Something worth telling a human that is not evidence (cleanup done, a setting applied).
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
    ScenarioFinished {
        verdict: Verdict,
        millis: u64,
    },
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
