//! One running QEMU with its run dir and console log: whether it is still alive, and the
//! context (console tail, QEMU's stderr) that explains a failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::error::VmError;
use super::monitor::Monitor;
use super::qemu::QemuChild;
use crate::image::command::tail_lines;
use crate::interrupt::Interrupt;
use crate::wait::{wait_until, Waited};

const CONSOLE_TAIL: usize = 30;

/// QEMU, its files and what is needed to explain a failure.
pub(super) struct Guest {
    // Field order is drop order: QEMU dies before its files go.
    pub(super) child: QemuChild,
    pub(super) console: PathBuf,
    pub(super) interrupt: Interrupt,
    pub(super) keep_console: Option<PathBuf>,
    pub(super) started: Instant,
    pub(super) dir: TempDir,
}

impl Guest {
    pub(super) fn console_tail(&self) -> String {
        tail_lines(&self.console, CONSOLE_TAIL)
    }

    /// Err when QEMU is gone or the user interrupted.
    pub(super) fn check(&mut self, phase: &'static str) -> Result<(), VmError> {
        if self.interrupt.is_set() {
            return Err(VmError::Interrupted);
        }
        if let Some(status) = self.child.try_wait() {
            return Err(VmError::QemuExited {
                phase,
                status: format!(
                    "{status} after {:.1} s",
                    self.started.elapsed().as_secs_f64()
                ),
                stderr: self.child.stderr_text(),
                console: self.console_tail(),
            });
        }
        Ok(())
    }

    pub(super) fn timeout(
        &self,
        phase: &'static str,
        waited: Duration,
        fix: &'static str,
    ) -> VmError {
        VmError::Timeout {
            phase,
            secs: waited.as_secs_f64(),
            console: self.console_tail(),
            fix,
        }
    }

    pub(super) fn connect_monitor(
        &mut self,
        path: &Path,
        deadline: Instant,
    ) -> Result<Monitor, VmError> {
        const PHASE: &str = "connecting to the QEMU monitor";
        let mut last = None;
        // `check` sees the user's interrupt as well as QEMU's death.
        let waited = wait_until(Some(deadline), Duration::from_millis(10), None, || {
            if let Err(e) = self.check(PHASE) {
                return Some(Err(e));
            }
            match Monitor::connect(path, Duration::from_secs(10)) {
                Ok(m) => Some(Ok(m)),
                Err(e) => {
                    last = Some(e);
                    None
                }
            }
        });
        match waited {
            Waited::Met(result) => result,
            Waited::Interrupted => Err(VmError::Interrupted),
            Waited::TimedOut => Err(VmError::Monitor {
                command: "connect".into(),
                message: last.map(|e| e.to_string()).unwrap_or_default(),
            }),
        }
    }
}
