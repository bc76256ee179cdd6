//! What the host and the guest agent say to each other over the virtio-serial port.
//!
//! One JSON object per line in both directions. The host sends a [`Request`]; the agent answers
//! with any number of [`Reply::Event`] lines and ends with exactly one [`Reply::Done`] or
//! [`Reply::Failed`].

use serde::{Deserialize, Serialize};

use crate::host::environment::TargetInfo;
use crate::run::event::Event;
use crate::run::fault::Fault;

/// First word of the line the agent writes when it is ready for requests.
pub const HELLO: &str = "selinux-harness-agent";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Describe the target.
    Env,
    /// Run one scenario (its YAML source, re-validated in the guest) under one variant.
    Run {
        file: String,
        source: String,
        variant: Option<String>,
        /// Test-only: break the target at one step (see [`Fault`]). Never from a scenario.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fault: Option<Fault>,
    },
    /// Stop the running scenario at its next check (the host got SIGINT or SIGTERM). No reply
    /// of its own: the running request ends as usual, with a verdict, after its cleanup.
    Interrupt,
    /// Power the guest off.
    Shutdown,
    /// Run several scenarios at once, up to `jobs` at a time (see `parallel`). The agent
    /// answers with [`Reply::RunEvent`] lines tagged with the run's index in `runs`, then one
    /// [`Reply::Done`].
    RunMany { runs: Vec<RunSpec>, jobs: usize },
}

/// One run of a [`Request::RunMany`]: the same fields as [`Request::Run`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub file: String,
    pub source: String,
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Event(Event),
    /// An event of run number `run` of a [`Request::RunMany`].
    RunEvent {
        run: usize,
        event: Event,
    },
    Env(TargetInfo),
    Done,
    /// The request could not be carried out at all (not a scenario failure).
    Failed {
        message: String,
    },
}
