//! Running host tools with their output in a log file, interruptibly.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::interrupt::Interrupt;
use crate::wait::{wait_until, Waited};

#[derive(Debug)]
pub(crate) enum RunError {
    Spawn(io::Error),
    Failed(ExitStatus),
    Interrupted,
}

/// The command line as a human would type it (for error messages and the log).
pub(crate) fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with stdout and stderr appended to `log`; stops it when `interrupt` is set.
/// The tool gets its own process group, so a terminal's Ctrl-C reaches only this process,
/// which then stops the tool and everything it started.
pub(crate) fn run_logged(
    cmd: &mut Command,
    log: &Path,
    interrupt: &Interrupt,
) -> Result<(), RunError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(RunError::Spawn)?;
    let _ = writeln!(file, "\n$ {}", display(cmd));
    let err = file.try_clone().map_err(RunError::Spawn)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(RunError::Spawn)?;
    wait_interruptibly(child, interrupt)
}

/// Runs `cmd` and returns its stdout; stderr goes to `log`.
pub(crate) fn run_capture(
    cmd: &mut Command,
    log: &Path,
    interrupt: &Interrupt,
) -> Result<String, RunError> {
    let out_file = tempfile::tempfile().map_err(RunError::Spawn)?;
    let mut reader = out_file.try_clone().map_err(RunError::Spawn)?;
    let mut logf = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(RunError::Spawn)?;
    let _ = writeln!(logf, "\n$ {}", display(cmd));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(logf)
        .process_group(0)
        .spawn()
        .map_err(RunError::Spawn)?;
    wait_interruptibly(child, interrupt)?;
    let mut out = String::new();
    reader.seek(SeekFrom::Start(0)).map_err(RunError::Spawn)?;
    reader.read_to_string(&mut out).map_err(RunError::Spawn)?;
    Ok(out)
}

fn wait_interruptibly(mut child: Child, interrupt: &Interrupt) -> Result<(), RunError> {
    let exited = wait_until(None, Duration::from_millis(100), Some(interrupt), || {
        child.try_wait().transpose()
    });
    match exited {
        Waited::Met(Ok(status)) if status.success() => Ok(()),
        Waited::Met(Ok(status)) => Err(RunError::Failed(status)),
        Waited::Met(Err(e)) => Err(RunError::Spawn(e)),
        // Without a deadline only the interrupt ends the wait early.
        Waited::Interrupted | Waited::TimedOut => {
            stop(&mut child);
            Err(RunError::Interrupted)
        }
    }
}

/// SIGTERM to the tool's whole process group (mmdebstrap runs apt and dpkg below it, which
/// would go on writing into the rootfs), a grace period for its own cleanup (mmdebstrap
/// unmounts), then SIGKILL to whatever is left of the group.
fn stop(child: &mut Child) {
    // Tools run in their own process group (spawned with process_group(0)): the group id is the pid.
    let group = i32::try_from(child.id()).ok().map(Pid::from_raw);
    if let Some(g) = group {
        let _ = killpg(g, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    wait_until(Some(deadline), Duration::from_millis(100), None, || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if let Some(g) = group {
        let _ = killpg(g, Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` lines of a text file (lossy), for error messages.
pub(crate) fn tail_lines(path: &Path, n: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut f) = File::open(path) else {
        return format!("({} is missing)", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let mut c = Command::new("chroot");
        c.args(["/x y", "setfiles", "-c", "it's"]);
        assert_eq!(display(&c), r"chroot '/x y' setfiles -c 'it'\''s'");
    }

    #[test]
    fn logged_failure_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut c = Command::new("sh");
        c.args(["-c", "for i in 1 2 3 4; do echo line$i; done; exit 3"]);
        match run_logged(&mut c, &log, &Interrupt::new()) {
            Err(RunError::Failed(s)) => assert_eq!(s.code(), Some(3)),
            other => panic!("{other:?}"),
        }
        assert_eq!(tail_lines(&log, 2), "line3\nline4");
    }

    #[test]
    fn interrupt_stops_a_running_tool() {
        let dir = tempfile::tempdir().unwrap();
        let flag = Interrupt::new();
        flag.trigger();
        let t = Instant::now();
        let r = run_logged(
            Command::new("sleep").arg("30"),
            &dir.path().join("log"),
            &flag,
        );
        assert!(matches!(r, Err(RunError::Interrupted)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
