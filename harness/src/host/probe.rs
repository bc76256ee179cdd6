//! MCS probes: the harness binary re-executed in a chosen context, trying one access to a file.
//!
//! The result travels in the exit code (0 = allowed, otherwise the errno), because a probe whose
//! context changed cannot write reliably into pipes its parent made (the parent's fds carry
//! the parent's label). svirt_t is entered only through a qemu_exec_t file, so the binary runs
//! from a copy labelled qemu_exec_t in a sandbox directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;

use crate::context::Context;
use crate::evidence::Outcome;
use crate::host::cleanup::{Cleanup, Undo};
use crate::selinux_ops::ExecContextGuard;

/// Name of the hidden subcommand the lead wires in main.rs.
pub const SUBCOMMAND: &str = "probe";
/// Label the probe copy needs so that the transition to svirt_t is allowed (entrypoint).
pub const PROBE_EXEC_LABEL: &str = "system_u:object_r:qemu_exec_t:s0";
/// Exit codes at or above this are the probe's own failures, not errnos (errnos end near 133).
pub const EXIT_USAGE: i32 = 250;
pub const EXIT_NO_ERRNO: i32 = 251;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Getattr,
}

impl Access {
    pub fn flag(self) -> &'static str {
        match self {
            Access::Read => "--read",
            Access::Write => "--write",
            Access::Getattr => "--getattr",
        }
    }

    fn from_flag(s: &str) -> Option<Self> {
        match s {
            "--read" => Some(Access::Read),
            "--write" => Some(Access::Write),
            "--getattr" => Some(Access::Getattr),
            _ => None,
        }
    }
}

/// Entry point of `selinux-harness probe --read|--write|--getattr PATH`.
/// `args` are the arguments after the subcommand. Returns the process exit code.
pub fn probe_main(args: &[OsString]) -> i32 {
    let [flag, path] = args else {
        return EXIT_USAGE;
    };
    let Some(access) = flag.to_str().and_then(Access::from_flag) else {
        return EXIT_USAGE;
    };
    match try_access(access, Path::new(path)) {
        Ok(()) => 0,
        Err(e) => e
            .raw_os_error()
            .filter(|n| (1..EXIT_USAGE).contains(n))
            .unwrap_or(EXIT_NO_ERRNO),
    }
}

fn try_access(access: Access, path: &Path) -> std::io::Result<()> {
    match access {
        // Open only: the open itself is where SELinux checks read/write (+ open) on a file.
        Access::Read => std::fs::File::open(path).map(drop),
        Access::Write => std::fs::OpenOptions::new().write(true).open(path).map(drop),
        Access::Getattr => std::fs::metadata(path).map(drop),
    }
}

/// Meaning of a probe's exit code.
pub fn outcome_of_exit(code: Option<i32>) -> Outcome {
    match code {
        Some(0) => Outcome::Ok,
        Some(n) if (1..EXIT_USAGE).contains(&n) => Outcome::Errno {
            errno: errno_name(n),
        },
        Some(EXIT_USAGE) => Outcome::Other {
            message: "probe: bad arguments".into(),
        },
        Some(n) => Outcome::Other {
            message: format!("probe failed without an errno (exit {n})"),
        },
        None => Outcome::Other {
            message: "probe killed by a signal".into(),
        },
    }
}

/// "EACCES" for 13; numbers the platform does not know stay numeric.
pub fn errno_name(n: i32) -> String {
    match Errno::from_raw(n) {
        Errno::UnknownErrno => format!("E{n}"),
        e => format!("{e:?}"),
    }
}

/// The context a probe runs in: the caller's user and role (crossing users needs more policy
/// than the test module grants), the requested type and MCS level.
pub fn probe_context(current: &Context, kind: &str, level: &str) -> Result<Context, ProbeError> {
    format!("{}:{}:{kind}:{level}", current.user, current.role)
        .parse()
        .map_err(|source| ProbeError::Context {
            kind: kind.to_string(),
            level: level.to_string(),
            source,
        })
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("preparing the probe binary {path}: {message}")]
    Setup { path: PathBuf, message: String },
    #[error("starting the probe as {context}: {message}")]
    Spawn { context: String, message: String },
    #[error("probe context with type {kind:?} level {level:?}: {source}")]
    Context {
        kind: String,
        level: String,
        #[source]
        source: crate::context::ParseError,
    },
}

/// A labelled copy of the harness binary, ready to run probes.
#[derive(Debug)]
pub struct Prober {
    exe: PathBuf,
}

impl Prober {
    /// Copy the running binary into `sandbox` and label it qemu_exec_t. The copy is registered
    /// for removal.
    pub fn prepare(sandbox: &Path, cleanup: &mut Cleanup) -> Result<Self, ProbeError> {
        let me = std::env::current_exe().map_err(|e| ProbeError::Setup {
            path: PathBuf::from("/proc/self/exe"),
            message: e.to_string(),
        })?;
        Self::prepare_from(&me, sandbox, cleanup)
    }

    pub fn prepare_from(
        binary: &Path,
        sandbox: &Path,
        cleanup: &mut Cleanup,
    ) -> Result<Self, ProbeError> {
        let exe = sandbox.join("selinux-harness-probe");
        let setup = |message: String| ProbeError::Setup {
            path: exe.clone(),
            message,
        };
        cleanup.push(Undo::RemoveFile { path: exe.clone() });
        std::fs::copy(binary, &exe).map_err(|e| setup(format!("copy from {binary:?}: {e}")))?;
        let label: Context = PROBE_EXEC_LABEL
            .parse()
            .map_err(|e| setup(format!("{e}")))?;
        crate::selinux_ops::set_file_context(&exe, &label).map_err(|e| setup(e.to_string()))?;
        Ok(Self { exe })
    }

    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Run one probe as `context` and say how its access ended.
    pub fn run(
        &self,
        context: &Context,
        access: Access,
        target: &Path,
    ) -> Result<Outcome, ProbeError> {
        let spawn_err = |message: String| ProbeError::Spawn {
            context: context.to_string(),
            message,
        };
        let child = {
            let _exec = ExecContextGuard::set(context).map_err(|e| spawn_err(e.to_string()))?;
            Command::new(&self.exe)
                .arg(SUBCOMMAND)
                .arg(access.flag())
                .arg(target)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        // A denied transition makes execve fail in the child: spawn reports it (EACCES).
        let mut child = child.map_err(|e| spawn_err(e.to_string()))?;
        let status = child.wait().map_err(|e| spawn_err(e.to_string()))?;
        Ok(outcome_of_exit(status.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn probe_reports_errnos_through_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let p = f.to_str().unwrap();
        assert_eq!(probe_main(&args(&["--read", p])), 0);
        assert_eq!(probe_main(&args(&["--write", p])), 0);
        assert_eq!(probe_main(&args(&["--getattr", p])), 0);
        let missing = dir.path().join("missing");
        let m = missing.to_str().unwrap();
        assert_eq!(probe_main(&args(&["--read", m])), libc_enoent());
        // Writing a directory: EISDIR, a second errno to be sure it is not a constant.
        let d = dir.path().to_str().unwrap();
        assert_eq!(probe_main(&args(&["--write", d])), Errno::EISDIR as i32);
        assert_eq!(probe_main(&args(&["--exec", p])), EXIT_USAGE);
        assert_eq!(probe_main(&args(&["--read"])), EXIT_USAGE);
    }

    fn libc_enoent() -> i32 {
        Errno::ENOENT as i32
    }

    #[rstest]
    #[case(Some(0), Outcome::Ok)]
    #[case(Some(13), Outcome::Errno { errno: "EACCES".into() })]
    #[case(Some(1), Outcome::Errno { errno: "EPERM".into() })]
    fn exit_codes_map_to_outcomes(#[case] code: Option<i32>, #[case] expected: Outcome) {
        assert_eq!(outcome_of_exit(code), expected);
    }

    #[test]
    fn harness_failures_are_not_errnos() {
        assert!(matches!(
            outcome_of_exit(Some(EXIT_USAGE)),
            Outcome::Other { .. }
        ));
        assert!(matches!(
            outcome_of_exit(Some(EXIT_NO_ERRNO)),
            Outcome::Other { .. }
        ));
        assert!(matches!(outcome_of_exit(None), Outcome::Other { .. }));
    }

    #[test]
    fn probe_context_keeps_user_and_role() {
        let me: Context = "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"
            .parse()
            .unwrap();
        let c = probe_context(&me, "svirt_t", "s0:c3,c4").unwrap();
        assert_eq!(c.to_string(), "unconfined_u:unconfined_r:svirt_t:s0:c3,c4");
        assert!(probe_context(&me, "svirt_t", "s0:c4,c3").is_err());
    }
}
