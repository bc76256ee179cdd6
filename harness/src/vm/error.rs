//! Everything that can go wrong starting or talking to a VM, each with what a human needs to
//! act on it.

use std::io;
use std::path::PathBuf;

use crate::image::tools::MissingTools;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Tools(#[from] MissingTools),
    #[error("image {dir} has no {what}\nfix: selinux-harness image build --rebuild")]
    ImageIncomplete { dir: PathBuf, what: &'static str },
    #[error("cannot read the agent binary {path}: {source}\nfix: build it (cargo build --release) or pass another path")]
    Binary {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed: {message}")]
    Tool { command: String, message: String },
    #[error("QEMU exited ({status}) while {phase}\n--- QEMU stderr:\n{stderr}\n--- last lines of the guest console:\n{console}")]
    QemuExited {
        phase: &'static str,
        status: String,
        stderr: String,
        console: String,
    },
    #[error("timed out after {secs:.1} s while {phase}\n--- last lines of the guest console:\n{console}\nfix: {fix}")]
    Timeout {
        phase: &'static str,
        secs: f64,
        console: String,
        fix: &'static str,
    },
    #[error("unexpected answer while {phase}: `{line}`\n--- last lines of the guest console:\n{console}")]
    Protocol {
        phase: &'static str,
        line: String,
        console: String,
    },
    #[error(
        "the agent channel closed while {phase}\n--- last lines of the guest console:\n{console}"
    )]
    ChannelClosed {
        phase: &'static str,
        console: String,
    },
    #[error("QEMU monitor `{command}`: {message}")]
    Monitor { command: String, message: String },
    #[error("interrupted")]
    Interrupted,
}

impl VmError {
    /// Errors that say the warm snapshot itself is unusable (as opposed to being interrupted).
    pub(super) fn condemns_snapshot(&self) -> bool {
        matches!(
            self,
            VmError::QemuExited { .. }
                | VmError::Timeout { .. }
                | VmError::Protocol { .. }
                | VmError::ChannelClosed { .. }
        )
    }
}

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// One line for a note: the error's headline plus, for QEMU exits, QEMU's own last word.
pub(super) fn first_line(e: &VmError) -> String {
    let head = e.to_string().lines().next().unwrap_or("").to_owned();
    match e {
        VmError::QemuExited { stderr, .. } => {
            match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
                Some(last) => format!("{head}: {}", last.trim()),
                None => head,
            }
        }
        _ => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_adds_qemus_last_word_to_an_exit() {
        let exited = VmError::QemuExited {
            phase: "restoring",
            status: "exit status: 1".into(),
            stderr: "qemu: warning: x\nqemu: error: could not load snapshot\n\n".into(),
            console: "boot line".into(),
        };
        assert_eq!(
            first_line(&exited),
            "QEMU exited (exit status: 1) while restoring: qemu: error: could not load snapshot"
        );
        let timeout = VmError::Timeout {
            phase: "waiting",
            secs: 1.5,
            console: "c".into(),
            fix: "f",
        };
        assert_eq!(first_line(&timeout), "timed out after 1.5 s while waiting");
    }

    #[test]
    fn only_a_broken_start_condemns_the_snapshot() {
        let closed = VmError::ChannelClosed {
            phase: "p",
            console: String::new(),
        };
        assert!(closed.condemns_snapshot());
        assert!(!VmError::Interrupted.condemns_snapshot());
        assert!(!io_err("cannot copy")(io::Error::other("disk full")).condemns_snapshot());
    }
}
