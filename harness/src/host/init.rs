//! Restarting a daemon through the harness VM's init (PID 1, `harness/guest/harness-init2`),
//! which reads requests from a control FIFO and answers in a status file.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::time::Duration;

use crate::host::layout::{INIT_CONTROL, INIT_STATUS};

/// Daemons the harness init started at boot and restarts on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Libvirtd,
    Virtlogd,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Libvirtd => "libvirtd",
            Daemon::Virtlogd => "virtlogd",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitControlError {
    #[error("the harness init has no control FIFO at {INIT_CONTROL}: {0}\nfix: this works only inside the harness VM (image built by `image build`)")]
    NoControl(io::Error),
    #[error("the harness init did not take the request within {0:?}")]
    Busy(Duration),
    #[error("writing the request to {INIT_CONTROL}: {0}")]
    Write(io::Error),
    #[error("no answer from the harness init within {0:?} (see the guest console)")]
    NoAnswer(Duration),
    #[error("the harness init could not restart {daemon}: {why}")]
    Failed { daemon: &'static str, why: String },
}

/// Restarts `daemon` through PID 1 of the harness VM, so the new daemon runs exactly as the one
/// started at boot (init_t execs it: its own domain, user system_u). Started from the agent
/// (unconfined_t) it could not get there. Returns once the daemon has a new pid and its socket
/// exists; connecting is the caller's business.
pub fn restart_daemon(daemon: Daemon, timeout: Duration) -> Result<(), InitControlError> {
    use crate::wait::{wait_until, Waited};
    use std::os::unix::fs::OpenOptionsExt;
    const POLL: Duration = Duration::from_millis(50);
    let deadline = Some(std::time::Instant::now() + timeout);
    let token = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    // Non-blocking open: ENXIO says PID 1 is not reading (an init that does not hold the FIFO
    // open itself is busy with a request).
    let opened = wait_until(deadline, POLL, None, || {
        match OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(INIT_CONTROL)
        {
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENXIO as i32) => None,
            other => Some(other),
        }
    });
    let mut fifo = match opened {
        Waited::Met(opened) => opened.map_err(InitControlError::NoControl)?,
        Waited::TimedOut | Waited::Interrupted => return Err(InitControlError::Busy(timeout)),
    };
    // One short line: a single atomic pipe write.
    fifo.write_all(format!("restart {} {token}\n", daemon.name()).as_bytes())
        .map_err(InitControlError::Write)?;
    drop(fifo);
    let answer = wait_until(deadline, POLL, None, || {
        let status = std::fs::read_to_string(INIT_STATUS).ok()?;
        Some(
            status
                .trim()
                .strip_prefix(token.as_str())?
                .trim()
                .to_owned(),
        )
    });
    match answer {
        Waited::Met(rest) if rest == "ok" => Ok(()),
        Waited::Met(rest) => Err(InitControlError::Failed {
            daemon: daemon.name(),
            why: rest
                .strip_prefix("failed:")
                .unwrap_or(&rest)
                .trim()
                .to_owned(),
        }),
        Waited::TimedOut | Waited::Interrupted => Err(InitControlError::NoAnswer(timeout)),
    }
}
