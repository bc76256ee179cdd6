//! What was observed on the target. The types here are pure data: gathered by the executor,
//! judged by `verdict`. The readers that gather them sit beside: `audit` (AVC records a step
//! caused), `liveness` (the proof that the audit path could have shown a denial) and `timeline` (the labels a watched file took during a step).

pub mod audit;
pub mod file_state;
pub mod liveness;
pub mod machines;
pub mod relabels;
pub mod timeline;

use serde::{Deserialize, Serialize};

use crate::context::Context;

/// A libvirt error as libvirt reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibvirtError {
    /// Symbolic code, e.g. "VIR_ERR_OPERATION_INVALID".
    pub code: String,
    /// Raw numeric code (virErrorNumber).
    pub number: i32,
    /// Symbolic domain, e.g. "VIR_FROM_SECURITY".
    pub domain: String,
    pub message: String,
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Libvirt(LibvirtError),
    /// A probe's open() failed with this errno (e.g. "EACCES").
    Errno {
        errno: String,
    },
    /// A daemon restarted under a configuration did not come up; `message` is what it logged
    /// as errors while it tried (libvirt logs no error code with them).
    DaemonFailed {
        message: String,
    },
    /// Anything else that failed (a harness or host problem, not a policy outcome).
    Other {
        message: String,
    },
}

/// One AVC / USER_AVC / SELINUX_ERR record from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvcRecord {
    /// "AVC", "USER_AVC" or "SELINUX_ERR".
    pub record_type: String,
    /// true for `denied`, false for `granted`.
    pub denied: bool,
    pub perms: Vec<String>,
    pub scontext: Option<Context>,
    pub tcontext: Option<Context>,
    pub tclass: Option<String>,
    pub permissive: bool,
    pub comm: Option<String>,
    /// `name=` or `path=` of the record, when present.
    pub target: Option<String>,
    /// The line as it stood in the log.
    pub raw: String,
}

/// One observed value of a watched file's label during a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelChange {
    /// Microseconds since the step started.
    pub at_us: u64,
    /// None when the file had no label or could not be read (then `error` says why).
    pub context: Option<Context>,
    pub error: Option<String>,
}

impl LabelChange {
    /// The label as reports show it: the context, or "no label" with the reason when known.
    pub fn shown(&self) -> String {
        match (&self.context, &self.error) {
            (Some(ctx), _) => ctx.to_string(),
            (None, Some(e)) => format!("no label ({e})"),
            (None, None) => "no label".into(),
        }
    }
}

/// A timeline's labels as text, for the tests of what builds timelines: the context,
/// `error: why`, or `none`.
#[cfg(test)]
pub(crate) fn labels(changes: &[LabelChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match (&c.context, &c.error) {
            (Some(c), _) => c.to_string(),
            (None, Some(e)) => format!("error: {e}"),
            (None, None) => "none".into(),
        })
        .collect()
}

// A capture holds four contexts; evidence is a handful of values per step, never a hot path,
// so boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// The step's action and how it ended.
    Action { action: String, outcome: Outcome },
    /// A file's label after the step (file is the scenario's name for it).
    FileContext {
        file: String,
        path: String,
        context: Option<Context>,
    },
    /// The running QEMU process of a domain.
    ProcessLabel {
        domain: String,
        pid: u32,
        context: Context,
    },
    /// A capture: the live domain XML's seclabel (what libvirt claims) and, beside it, what
    /// the host shows - the QEMU process's context and the label of the domain's image.
    DomainSeclabel {
        domain: String,
        label: Option<Context>,
        imagelabel: Option<Context>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<Context>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<Context>,
    },
    /// Records logged while the step ran (after noise filtering), and how many were filtered out.
    Avcs {
        records: Vec<AvcRecord>,
        filtered: usize,
    },
    /// Every label a watched file carried during the step, first value = label at step start.
    Timeline {
        file: String,
        changes: Vec<LabelChange>,
        /// Attribute events after which the label read was unchanged: a label that came and
        /// went faster than the watcher read it, or a chmod/chown/touch (see `timeline`).
        #[serde(default, skip_serializing_if = "is_zero")]
        unexplained_events: u64,
    },
    /// libvirt's remembered-owner xattrs (trusted.libvirt.security.*) on a file.
    RememberedOwner {
        file: String,
        xattrs: Vec<(String, String)>,
    },
    /// A file a step's bookkeeping expectations name (`xattr`, `owner`, `mode`, `absent`,
    /// `label`), after the step. `path` None: the name did not resolve (a guest's runtime
    /// directory that was never seen), `why` says so; `facts` None: no such file.
    FileState {
        file: String,
        path: Option<String>,
        facts: Option<file_state::FileFacts>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// Who a domain's QEMU process runs as.
    ProcessOwner {
        domain: String,
        pid: u32,
        ids: file_state::Ids,
    },
    /// A domain's swtpm process: its label and who it runs as (None: could not be read).
    SwtpmProcess {
        domain: String,
        pid: u32,
        context: Option<Context>,
        ids: Option<file_state::Ids>,
    },
    /// A helper process libvirt runs for a domain (virtiofsd), found by its executable's name
    /// and a command line naming the domain's UUID or one of its virtiofs exports.
    HelperProcess {
        domain: String,
        helper: String,
        pid: u32,
        context: Option<Context>,
        ids: Option<file_state::Ids>,
    },
}

/// One line for a helper process, the same in every report.
pub fn describe_helper(
    domain: &str,
    helper: &str,
    pid: u32,
    context: Option<&Context>,
    ids: Option<&file_state::Ids>,
) -> String {
    format!(
        "{domain}'s {helper} (pid {pid}) runs in {} as {}",
        context.map_or("(unreadable label)".to_string(), |c| c.to_string()),
        ids.map_or("(unreadable user)".to_string(), |i| i.describe())
    )
}

/// One line for a swtpm process, the same in every report.
pub fn describe_swtpm(
    domain: &str,
    pid: u32,
    context: Option<&Context>,
    ids: Option<&file_state::Ids>,
) -> String {
    format!(
        "{domain}'s swtpm (pid {pid}) runs in {} as {}",
        context.map_or("(unreadable label)".to_string(), |c| c.to_string()),
        ids.map_or("(unreadable user)".to_string(), |i| i.describe())
    )
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
