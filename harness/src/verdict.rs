//! Verdicts, and the checks they are made of.

use serde::{Deserialize, Serialize};

/// The outcome of one scenario (one variant of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail { failed: usize },
    /// Every failing check was marked as a known bug, and each of them reproduced.
    KnownBug { references: Vec<String> },
    /// A check marked as a known bug passed: the bug seems fixed and the mark is stale.
    KnownBugGone { references: Vec<String> },
    /// The evidence cannot be trusted for a verdict (SELinux permissive, permissive=1 records).
    Inconclusive { reason: String },
    /// The harness or the target failed; nothing was judged.
    Error { reason: String },
    /// The target lacks what the scenario requires.
    Skipped { reason: String },
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "fail",
            Verdict::KnownBug { .. } => "known-bug",
            Verdict::KnownBugGone { .. } => "known-bug-gone",
            Verdict::Inconclusive { .. } => "inconclusive",
            Verdict::Error { .. } => "error",
            Verdict::Skipped { .. } => "skipped",
        }
    }

    /// What CI should count as success: a pass, or a known bug that still reproduces.
    pub fn is_success(&self) -> bool {
        matches!(self, Verdict::Pass | Verdict::KnownBug { .. })
    }
}

/// One expectation compared with what was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was expected, in the scenario's words (e.g. "vm1.img type is svirt_image_t").
    pub expectation: String,
    pub expected: String,
    pub observed: String,
    pub passed: bool,
    /// Set when the scenario marks this expectation as a known bug on this platform.
    pub known_bug: Option<String>,
}
