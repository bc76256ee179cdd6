//! The one stream of typed events a run produces.
//!
//! The executor emits these; every reporter consumes them. The guest agent sends the same
//! events back over its channel as JSON lines, so a run in the VM and a run on the local host
//! look the same to everything above the target.

use serde::{Deserialize, Serialize};

use crate::evidence::Evidence;
use crate::run::verdict::{Check, Verdict};

/// Facts about the machine a scenario ran on (kernel, SELinux mode, versions, accelerator ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// "vm" or "local".
    pub kind: String,
    pub kernel: String,
    /// Exactly what the kernel reports: "enforcing" or "permissive" (or "disabled").
    pub selinux_mode: String,
    pub policy_name: String,
    pub policy_version: String,
    pub mls: bool,
    pub libvirt_version: String,
    pub qemu_version: String,
    pub secmodel: String,
    /// Distribution of the target, e.g. "debian-12" (from os-release).
    pub distro: String,
    /// For a VM: "tcg" or "kvm", plus how it started ("cold" / "warm").
    pub accelerator: String,
    pub boot: String,
    /// qemu.conf keys in force that the harness cares about.
    pub qemu_conf: Vec<(String, String)>,
}

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
