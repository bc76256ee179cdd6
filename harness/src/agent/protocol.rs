//! What the host and the guest agent say to each other over the virtio-serial port.
//!
//! One JSON object per line in both directions. The host sends a [`Request`]; the agent answers
//! with any number of [`Reply::Event`] lines and ends with exactly one [`Reply::Done`] or
//! [`Reply::Failed`] (or, for [`Request::Env`], one [`Reply::Env`]).

use serde::{Deserialize, Serialize};

use crate::host::environment::TargetInfo;
use crate::policy::PolicyUnderTest;
use crate::run::event::Envelope;
use crate::run::fault::Fault;

/// First word of the line the agent writes when it is ready for requests.
pub const HELLO: &str = "selinux-harness-agent";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Describe the target.
    Env,
    /// Run a batch of scenario runs, up to `jobs` at a time (see `parallel`); `jobs` 1 runs them
    /// one after another. The agent answers with [`Reply::Event`] lines, each tagged with its
    /// run's index in `runs`, then one [`Reply::Done`].
    Run { runs: Vec<RunSpec>, jobs: usize },
    /// Stop the running batch at its next check (the host got SIGINT or SIGTERM). No reply of
    /// its own: the running request ends as usual, with verdicts, after its cleanups.
    Interrupt,
    /// Power the guest off.
    Shutdown,
}

/// One run of a [`Request::Run`]: a scenario (its YAML source, validated again in the guest)
/// under one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    pub file: String,
    pub source: String,
    pub variant: Option<String>,
    /// Test-only: break the target at one step (see [`Fault`]). Never from a scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// The policy under test this run brings, module files included (the host read them).
    #[serde(default, skip_serializing_if = "PolicyUnderTest::is_empty")]
    pub policy: PolicyUnderTest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// An event of one run of the batch.
    Event(Envelope),
    Env(TargetInfo),
    Done,
    /// The request could not be carried out at all (not a scenario failure).
    Failed {
        message: String,
    },
}
