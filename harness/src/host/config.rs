//! The target's configuration: qemu.conf keys, SELinux booleans, policy modules, libvirtd
//! restarts, each read, validated and set as it is asked. A run changes it through `change`,
//! which registers every undo in a `Cleanup` first.
//!
//! External tools run through `std::process::Command` with argument vectors, never a shell:
//! keys, values and names come from scenarios.

use crate::error::IoError;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::context::Context;
use crate::host::layout::{
    BOOLEANS_DIR, INIT_CONTROL, LIBVIRTD, LIBVIRTD_PID, LIBVIRT_SOCK, VIRTQEMUD_PID, VIRTQEMUD_SOCK,
};
use crate::wait::{wait_until, Waited};

/// libvirtd's first start probes QEMU capabilities (4.5-9 s under TCG): leave ample room.
const LIBVIRTD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{0}")]
    Libvirtd(String),
}

pub(crate) type Result<T> = std::result::Result<T, HostError>;

pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HostError {
    let path = path.to_path_buf();
    move |source| HostError::Io(IoError { what, path, source })
}

// ---------------------------------------------------------------------------------------------
// qemu.conf: pure editing

/// A qemu.conf key: an identifier, as libvirt's config parser accepts them.
pub fn validate_key(key: &str) -> Result<()> {
    let ok = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(HostError::Invalid {
            what: "qemu.conf key",
            value: key.to_string(),
            why: "keys are identifiers: letters, digits, underscore",
        })
    }
}

/// A qemu.conf value: an integer, a double-quoted string without quotes, backslashes or control
/// characters, or a list `[ item, ... ]` of those. Anything else could smuggle in a second line.
pub fn validate_value(value: &str) -> Result<()> {
    let bad = |why| HostError::Invalid {
        what: "qemu.conf value",
        value: value.to_string(),
        why,
    };
    let v = value.trim();
    if v.chars().any(|c| c.is_control()) {
        return Err(bad("control characters (newlines) are not allowed"));
    }
    if let Some(inner) = v.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| bad("a list must end with ]"))?;
        if inner.trim().is_empty() {
            return Ok(());
        }
        for item in inner.split(',') {
            if !is_scalar(item.trim()) {
                return Err(bad("list items are integers or \"strings\""));
            }
        }
        return Ok(());
    }
    if is_scalar(v) {
        Ok(())
    } else {
        Err(bad("expected an integer, a \"string\" or a [ list ]"))
    }
}

fn is_scalar(v: &str) -> bool {
    let int = v.strip_prefix('-').unwrap_or(v);
    if !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    v.len() >= 2
        && v.starts_with('"')
        && v.ends_with('"')
        && !v[1..v.len() - 1].contains(['"', '\\'])
}

/// The key an active (uncommented) `key = value` line sets.
fn line_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim();
    validate_key(k).ok().map(|_| k)
}

/// `content` with `key = value` set: every active line for `key` replaced (a list value that
/// spans several lines is replaced whole), or the line appended. Comments stay untouched.
pub fn set_conf_key(content: &str, key: &str, value: &str) -> Result<String> {
    validate_key(key)?;
    validate_value(value)?;
    let new_line = format!("{key} = {}", value.trim());
    let mut out = String::with_capacity(content.len() + new_line.len() + 2);
    let mut found = false;
    let mut in_old_list = false;
    for line in content.split_inclusive('\n') {
        if in_old_list {
            if line.contains(']') {
                in_old_list = false;
            }
            continue;
        }
        if line_key(line) == Some(key) {
            found = true;
            let value_part = line.split_once('=').map(|(_, v)| v).unwrap_or("");
            in_old_list = value_part.contains('[') && !value_part.contains(']');
            out.push_str(&new_line);
            out.push('\n');
            continue;
        }
        out.push_str(line);
    }
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&new_line);
        out.push('\n');
    }
    Ok(out)
}

/// The value an active line sets for `key`, if any (the last one wins, as in libvirt).
pub fn get_conf_key(content: &str, key: &str) -> Option<String> {
    content
        .lines()
        .rev()
        .filter(|l| line_key(l) == Some(key))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim().to_string()))
        .next()
}

/// Overwrite a file's content without replacing the inode, so its label, owner and mode stay.
pub fn write_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Commands

pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HostError::Command {
            command: command.clone(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(HostError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn validate_policy_name(what: &'static str, name: &str) -> Result<()> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(HostError::Invalid {
            what,
            value: name.to_string(),
            why: "letters, digits, _ and - only",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Booleans

/// Current value of a boolean, from selinuxfs ("current pending").
pub fn get_boolean(name: &str) -> Result<bool> {
    validate_policy_name("boolean", name)?;
    let path = Path::new(BOOLEANS_DIR).join(name);
    crate::selinux_ops::read_flag(&path).map_err(|e| HostError::Libvirtd(e.to_string()))
}

/// `setsebool NAME 0|1`, not persistent.
pub fn setsebool(name: &str, value: bool) -> Result<()> {
    validate_policy_name("boolean", name)?;
    run("setsebool", &[name, if value { "1" } else { "0" }]).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Policy modules

/// Module name semodule derives from a file: its name without extension.
pub fn module_name(file: &Path) -> Result<String> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    validate_policy_name("policy module file name", &name)?;
    Ok(name)
}

/// Names in `semodule -l` output (first column).
pub fn parse_module_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

pub fn installed_modules() -> Result<Vec<String>> {
    run("semodule", &["-l"]).map(|o| parse_module_list(&o))
}

pub fn remove_module(name: &str) -> Result<String> {
    validate_policy_name("policy module", name)?;
    run("semodule", &["-r", name])
}

// ---------------------------------------------------------------------------------------------
// libvirtd restart

/// How libvirtd came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtdRestart {
    pub systemd: bool,
    pub old_pid: Option<u32>,
    pub new_pid: Option<u32>,
    /// The new daemon's context (should equal the old one; a scenario may check that).
    pub context: Option<Context>,
}

/// The daemon that serves qemu:///system, which is the one that must be restarted for a
/// qemu.conf change to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibvirtDaemon {
    /// The monolithic daemon (Debian, our VM, hosts switched back to it).
    Libvirtd,
    /// The modular QEMU daemon (Fedora and EL since libvirt 9 / EL9), socket-activated; with it,
    /// /run/libvirt/libvirt-sock belongs to virtproxyd, which does not read qemu.conf.
    Virtqemud,
}

impl LibvirtDaemon {
    /// The choice libvirt's own client makes for qemu:///system on a Unix socket
    /// (remoteGetUNIXSocket, mode auto): the modular daemon's socket when it exists, else the
    /// monolithic one's.
    pub fn serving_qemu_system(virtqemud_sock_exists: bool) -> LibvirtDaemon {
        if virtqemud_sock_exists {
            LibvirtDaemon::Virtqemud
        } else {
            LibvirtDaemon::Libvirtd
        }
    }

    pub fn detect() -> LibvirtDaemon {
        Self::serving_qemu_system(Path::new(VIRTQEMUD_SOCK).exists())
    }

    pub fn unit(self) -> &'static str {
        match self {
            LibvirtDaemon::Libvirtd => "libvirtd.service",
            LibvirtDaemon::Virtqemud => "virtqemud.service",
        }
    }

    pub fn socket(self) -> &'static Path {
        Path::new(match self {
            LibvirtDaemon::Libvirtd => LIBVIRT_SOCK,
            LibvirtDaemon::Virtqemud => VIRTQEMUD_SOCK,
        })
    }

    fn pid_file(self) -> &'static Path {
        Path::new(match self {
            LibvirtDaemon::Libvirtd => LIBVIRTD_PID,
            LibvirtDaemon::Virtqemud => VIRTQEMUD_PID,
        })
    }
}

/// Whether systemd is PID 1 (sd_booted's test).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Restart the daemon that serves qemu:///system: under systemd `systemctl restart` of
/// libvirtd or virtqemud (LibvirtDaemon::detect); otherwise (our VM's init
/// started `libvirtd -d`) SIGTERM the pid in /run/libvirtd.pid, wait for it to exit, start
/// `libvirtd -d` again in the context the old daemon had, and wait until the socket answers.
pub fn restart_libvirtd() -> Result<LibvirtdRestart> {
    let pid_path = Path::new(LIBVIRTD_PID);
    if systemd_booted() {
        // A systemd host may run either daemon (Fedora: virtqemud); restarting libvirtd there
        // would leave the daemon that reads qemu.conf untouched.
        let daemon = LibvirtDaemon::detect();
        let old_pid = read_pid(daemon.pid_file());
        run("systemctl", &["restart", daemon.unit()])?;
        wait_for_socket(daemon.socket(), LIBVIRTD_TIMEOUT)?;
        let new_pid = read_pid(daemon.pid_file());
        return Ok(LibvirtdRestart {
            systemd: true,
            old_pid,
            new_pid,
            context: new_pid.and_then(|p| crate::selinux_ops::process_context(p).ok()),
        });
    }
    let old_pid = read_pid(pid_path);
    // Started by us from unconfined_t, libvirtd would not necessarily land in virtd_t: ask for
    // the old daemon's context explicitly.
    let old_context = old_pid.and_then(|p| crate::selinux_ops::process_context(p).ok());
    if Path::new(INIT_CONTROL).exists() {
        // In the harness VM, PID 1 restarts it as it started it at boot (init_t -> virtd_t,
        // system_u); from unconfined_t the exec into that context is denied.
        crate::host::init::restart_daemon(crate::host::init::Daemon::Libvirtd, LIBVIRTD_TIMEOUT)
            .map_err(|e| HostError::Libvirtd(e.to_string()))?;
    } else {
        if let Some(pid) = old_pid {
            stop_process(pid, LIBVIRTD_TIMEOUT)?;
        }
        start_libvirtd(old_context.as_ref())?;
    }
    wait_for_socket(Path::new(LIBVIRT_SOCK), LIBVIRTD_TIMEOUT)?;
    let new_pid = read_pid(pid_path);
    let context = new_pid.and_then(|p| crate::selinux_ops::process_context(p).ok());
    if let (Some(old), Some(new)) = (&old_context, &context) {
        if old != new {
            return Err(HostError::Libvirtd(format!(
                "libvirtd came back as {new}, it ran as {old}"
            )));
        }
    }
    Ok(LibvirtdRestart {
        systemd: false,
        old_pid,
        new_pid,
        context,
    })
}

fn start_libvirtd(context: Option<&Context>) -> Result<()> {
    // The exec context is per thread and sticky: set it right before the fork, always reset it.
    let _guard = match context {
        Some(c) => Some(
            crate::selinux_ops::ExecContextGuard::set(c)
                .map_err(|e| HostError::Libvirtd(e.to_string()))?,
        ),
        None => None,
    };
    let status = Command::new(LIBVIRTD)
        .arg("-d")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(io_err("start", Path::new(LIBVIRTD)))?;
    if status.success() {
        Ok(())
    } else {
        Err(HostError::Libvirtd(format!(
            "{LIBVIRTD} -d exited with {status}"
        )))
    }
}

/// SIGTERM a process that is not our child and wait until it is gone (pidfd: no polling loop).
fn stop_process(pid: u32, timeout: Duration) -> Result<()> {
    let raw = i32::try_from(pid).map_err(|_| HostError::Libvirtd(format!("bad pid {pid}")))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(()); // already gone
        }
        return Err(HostError::Libvirtd(format!("pidfd_open({pid}): {e}")));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    match kill(Pid::from_raw(raw), Signal::SIGTERM) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => return Err(HostError::Libvirtd(format!("kill -TERM {pid}: {e}"))),
    }
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::from(ms))
        .map_err(|e| HostError::Libvirtd(format!("waiting for pid {pid}: {e}")))?;
    if n == 0 {
        return Err(HostError::Libvirtd(format!(
            "libvirtd (pid {pid}) did not exit within {timeout:?} of SIGTERM"
        )));
    }
    Ok(())
}

/// Wait until a Unix socket accepts connections. libvirtd offers no readiness notification
/// outside systemd, so this retries the connect at a short interval.
pub fn wait_for_socket(path: &Path, timeout: Duration) -> Result<()> {
    let mut last = None;
    let accepted = wait_until(
        Some(Instant::now() + timeout),
        Duration::from_millis(50),
        None,
        || match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => true,
            Err(e) => {
                last = Some(e);
                false
            }
        },
    );
    match (accepted, last) {
        (Waited::Met(()), _) | (_, None) => Ok(()),
        (_, Some(e)) => Err(HostError::Libvirtd(format!(
            "{} not accepting connections after {timeout:?}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::fedora_modular(true, LibvirtDaemon::Virtqemud, "virtqemud.service", VIRTQEMUD_SOCK)]
    #[case::monolithic(false, LibvirtDaemon::Libvirtd, "libvirtd.service", LIBVIRT_SOCK)]
    fn daemon_serving_qemu_system(
        #[case] virtqemud_sock: bool,
        #[case] want: LibvirtDaemon,
        #[case] unit: &str,
        #[case] socket: &str,
    ) {
        let d = LibvirtDaemon::serving_qemu_system(virtqemud_sock);
        assert_eq!(d, want);
        assert_eq!(d.unit(), unit);
        assert_eq!(d.socket(), Path::new(socket));
    }

    pub(crate) const DEBIAN_SNIPPET: &str = "# Master configuration file for the QEMU driver.\n\
#remember_owner = 1\n\
\n\
#cgroup_controllers = [ \"cpu\", \"devices\", \"memory\", \"blkio\", \"cpuset\", \"cpuacct\" ]\n\
namespaces = [ ]\n\
security_driver = [ \"selinux\",\n    \"dac\" ]\n\
user = \"+64055\"\n";

    #[rstest]
    #[case("remember_owner", "0")]
    #[case("namespaces", "[ ]")]
    #[case("cgroup_controllers", "[ \"cpu\", \"devices\" ]")]
    #[case("security_driver", "\"selinux\"")]
    #[case("max_files", "-1")]
    fn accepts_plain_values(#[case] key: &str, #[case] value: &str) {
        validate_key(key).unwrap();
        validate_value(value).unwrap();
    }

    #[rstest]
    #[case("0\nuser = \"root\"")]
    #[case("\"a\" # comment")]
    #[case("\"a\\\"b\"")]
    #[case("[ \"a\", b ]")]
    #[case("[ \"a\"")]
    #[case("yes")]
    #[case("")]
    fn rejects_values_that_could_smuggle_config(#[case] value: &str) {
        assert!(validate_value(value).is_err(), "{value:?} accepted");
    }

    #[rstest]
    #[case("remember-owner")]
    #[case("1key")]
    #[case("a b")]
    #[case("")]
    fn rejects_bad_keys(#[case] key: &str) {
        assert!(validate_key(key).is_err());
    }

    #[test]
    fn appends_when_only_commented() {
        let out = set_conf_key(DEBIAN_SNIPPET, "remember_owner", "0").unwrap();
        assert!(out.starts_with(DEBIAN_SNIPPET));
        assert!(out.ends_with("\nremember_owner = 0\n"));
        assert!(out.contains("#remember_owner = 1\n"));
        assert_eq!(get_conf_key(&out, "remember_owner").as_deref(), Some("0"));
    }

    #[test]
    fn replaces_active_line_in_place() {
        let out = set_conf_key(DEBIAN_SNIPPET, "user", "\"root\"").unwrap();
        assert_eq!(
            out,
            DEBIAN_SNIPPET.replace("user = \"+64055\"", "user = \"root\"")
        );
    }

    #[test]
    fn replaces_a_multiline_list_whole() {
        let out = set_conf_key(DEBIAN_SNIPPET, "security_driver", "[ \"none\" ]").unwrap();
        assert!(out.contains("security_driver = [ \"none\" ]\nuser = "));
        assert!(!out.contains("\"dac\""));
    }

    #[test]
    fn appends_a_newline_first_if_missing() {
        let out = set_conf_key("a = 1", "b", "2").unwrap();
        assert_eq!(out, "a = 1\nb = 2\n");
    }

    #[test]
    fn module_names() {
        assert_eq!(
            module_name(Path::new("policy-modules/harness-probe.cil")).unwrap(),
            "harness-probe"
        );
        assert!(module_name(Path::new("/tmp/a b.cil")).is_err());
        let listed = parse_module_list("abrt\t\nharness-probe\nvirt\n");
        assert_eq!(listed, ["abrt", "harness-probe", "virt"]);
    }

    #[test]
    fn boolean_names_are_checked_before_any_command() {
        assert!(setsebool("virt_use_execmem; reboot", true).is_err());
        assert!(get_boolean("../enforce").is_err());
    }

    #[test]
    fn stop_process_waits_for_exit() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        // A child that has exited stays a zombie until reaped, and a zombie's pidfd reports
        // readable: that is enough to know SIGTERM took effect.
        let t = Instant::now();
        stop_process(pid, Duration::from_secs(10)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        let mut child = child;
        let status = child.wait().unwrap();
        assert!(!status.success());
    }
}
