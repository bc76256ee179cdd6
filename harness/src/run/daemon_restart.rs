//! `restart_daemon: {daemon: libvirt, qemu_conf: {...}}`: restart libvirt's daemon under
//! qemu.conf keys set for this step only, tell whether it came up (and if not, what it logged),
//! then put qemu.conf back and restart it again so the run goes on with a working daemon.
//!
//! libvirtd may refuse a configuration only after it forked, wrote its pid file and opened its
//! socket: its drivers load in a thread after that (remote_daemon.c daemonRunStateInit), and a
//! QEMU driver that fails to load makes it log the error and exit. So "came up" is a connection
//! it serves, "did not" is its process gone, and the message is read from its log.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::evidence::Outcome;
use crate::host::cleanup::{Cleanup, Undo};
use crate::host::config::{restart_libvirtd, systemd_booted, write_in_place, LibvirtDaemon};
use crate::host::journal::Journal;
use crate::host::layout::{LIBVIRTD_LOG, QEMU_CONF};
use crate::host::libvirt::Libvirt;
use crate::scenario::RestartDaemon;
use crate::wait::{wait_until, Waited};

/// How long a restarted daemon may take to serve or exit: libvirtd probes QEMU's capabilities
/// when its configuration changed (4.5-9 s under TCG, more on a loaded host).
const COME_UP: Duration = Duration::from_secs(60);

/// The shell commands that do what the step does, for `explain`.
pub fn restart_commands(r: &RestartDaemon) -> Vec<String> {
    const RESTART: &str = "systemctl restart libvirtd   # virtqemud on a modular host; then wait until `virsh -c qemu:///system version` answers";
    if r.qemu_conf.is_empty() {
        return vec![RESTART.to_string()];
    }
    let mut c = vec![format!("cp -p {QEMU_CONF} /root/qemu.conf.orig")];
    c.extend(
        r.qemu_conf_lines()
            .into_iter()
            .map(|(k, v)| format!("# {QEMU_CONF}: {k} = {v}")),
    );
    c.push(
        "systemctl restart libvirtd   # virtqemud on a modular host; it may refuse to load the configuration".into(),
    );
    c.push(format!(
        "journalctl -u libvirtd -p err   # or {LIBVIRTD_LOG} without systemd: what it refused"
    ));
    c.push(format!("cp /root/qemu.conf.orig {QEMU_CONF}"));
    c.push(RESTART.to_string());
    c
}

/// The step: how the restart under `settings` went, and the connection to the daemon as it runs
/// again with qemu.conf put back (None when that failed; the outcome says so and the run's
/// cleanup tries again). `run_edits_qemu_conf`: the run's `host:` edited qemu.conf as well, so
/// `doctor`'s backup of the original stays until the run's own cleanup.
pub fn restart_with(
    uri: &str,
    settings: &[(String, String)],
    run_edits_qemu_conf: bool,
    cleanup: &mut Cleanup,
) -> (Outcome, Option<Libvirt>) {
    let path = Path::new(QEMU_CONF);
    let original = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return (other(format!("read {QEMU_CONF}: {e}")), None),
    };
    // Recorded first, so `doctor` can put it back if this run dies before its cleanup.
    if let Err(e) = Journal::default().backup_qemu_conf(path) {
        return (
            other(format!("cannot back up {QEMU_CONF} for `doctor`: {e}")),
            None,
        );
    }
    let log = LogMark::now();
    // Registers the undo (the original bytes, a restart) before it writes.
    if let Err(e) = crate::host::change::QemuConf::new(QEMU_CONF).edit(settings, cleanup) {
        return (other(format!("edit {QEMU_CONF}: {e}")), None);
    }
    let outcome = come_up(uri, &log);
    // Put back now, whatever happened: the next steps need the daemon as the run set it up.
    let undo = Undo::RestoreFile {
        path: path.to_path_buf(),
        original: Some(original.clone()),
        restart_libvirtd: true,
    };
    let back = write_in_place(path, &original)
        .map_err(|e| format!("put {QEMU_CONF} back: {e}"))
        .and_then(|()| restart_libvirtd().map_err(|e| format!("restart after: {e}")))
        .and_then(|_| {
            crate::host::cleanup::connect_patiently(uri).map_err(|e| format!("reconnect: {e}"))
        });
    match back {
        Ok(lv) => {
            cleanup.retire_last(&undo);
            if !run_edits_qemu_conf {
                if let Err(e) = Journal::default().drop_qemu_conf_backup() {
                    return (
                        other(format!("drop the journal's qemu.conf backup: {e}")),
                        Some(lv),
                    );
                }
            }
            (outcome, Some(lv))
        }
        // The undo stays registered: the run's cleanup tries again.
        Err(why) => (
            other(format!(
                "{}; then the daemon did not come back with qemu.conf put back: {why}",
                describe(&outcome)
            )),
            None,
        ),
    }
}

fn other(message: String) -> Outcome {
    Outcome::Other { message }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "the daemon came up".into(),
        Outcome::DaemonFailed { message } => format!("the daemon did not come up: {message}"),
        other => format!("{other:?}"),
    }
}

/// Restart the daemon and wait until it serves a connection (Ok) or its process is gone
/// (DaemonFailed, with what it logged).
fn come_up(uri: &str, log: &LogMark) -> Outcome {
    let restarted = match restart_libvirtd() {
        Ok(r) => r,
        // Gone before it had a socket (the harness init's restart says so) or never started.
        Err(e) => return log.failed(Some(e.to_string())),
    };
    let Some(pid) = restarted.new_pid else {
        return log.failed(Some("it left no pid file".into()));
    };
    let served = wait_until(
        Some(Instant::now() + COME_UP),
        Duration::from_millis(250),
        None,
        || {
            if !alive(pid) {
                return Some(false);
            }
            // Blocks while the daemon loads its drivers; a daemon that exits closes it.
            Libvirt::connect(uri).ok().map(|_| true)
        },
    );
    match served {
        Waited::Met(true) => Outcome::Ok,
        Waited::Met(false) => log.failed(None),
        Waited::TimedOut | Waited::Interrupted => log.failed(Some(format!(
            "pid {pid} neither served nor exited within {COME_UP:?}"
        ))),
    }
}

/// Whether a process runs (a zombie does not: its parent has not reaped it yet).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !process_state_is_zombie(&stat),
        Err(_) => false,
    }
}

/// /proc/PID/stat: the state is the field after the command's closing parenthesis.
fn process_state_is_zombie(stat: &str) -> bool {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|s| s == "Z" || s == "X")
}

/// Where the daemon's log stood before the restart, so only what the new daemon wrote is read.
struct LogMark {
    offset: u64,
    since: SystemTime,
}

impl LogMark {
    fn now() -> Self {
        Self {
            offset: std::fs::metadata(LIBVIRTD_LOG)
                .map(|m| m.len())
                .unwrap_or(0),
            since: SystemTime::now(),
        }
    }

    /// The errors the daemon logged since the mark (its log file, or the journal under
    /// systemd, where it logs there), joined; `why` is how the restart itself failed.
    fn failed(&self, why: Option<String>) -> Outcome {
        let logged = if systemd_booted() {
            self.journal_errors()
        } else {
            self.file_errors()
        };
        let message = match (logged.is_empty(), why) {
            (false, _) => logged.join("; "),
            (true, Some(why)) => format!("nothing logged as an error ({why})"),
            (true, None) => "it exited and logged no error".into(),
        };
        Outcome::DaemonFailed { message }
    }

    fn file_errors(&self) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        let read = std::fs::File::open(LIBVIRTD_LOG).and_then(|mut f| {
            // A log that shrank was rotated or truncated: read it whole.
            let len = f.metadata()?.len();
            f.seek(SeekFrom::Start(if len < self.offset {
                0
            } else {
                self.offset
            }))?;
            f.read_to_string(&mut text)
        });
        match read {
            Ok(_) => error_messages(&text),
            Err(_) => Vec::new(),
        }
    }

    fn journal_errors(&self) -> Vec<String> {
        let secs = self
            .since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let unit = LibvirtDaemon::detect().unit();
        let since = format!("@{secs}");
        crate::host::config::run(
            "journalctl",
            &[
                "-u",
                unit,
                "-p",
                "err",
                "-o",
                "cat",
                "--no-pager",
                "--since",
                &since,
            ],
        )
        .map(|out| {
            out.lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
    }
}

/// The messages of a libvirt log's error lines, without their time, thread and source
/// location: `2026-12-02 05:00:00.123+0000: 812: error : virStateInitialize:657 : TEXT`
/// gives `TEXT`.
pub fn error_messages(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once(": error : ").map(|(_, rest)| rest))
        .map(|rest| {
            // `function:line : ` when the log has source locations.
            match rest.split_once(" : ") {
                Some((loc, text))
                    if loc.rsplit_once(':').is_some_and(|(f, n)| {
                        !f.is_empty() && !f.contains(' ') && n.bytes().all(|b| b.is_ascii_digit())
                    }) =>
                {
                    text.trim().to_string()
                }
                _ => rest.trim().to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libvirtd.log in libvirt's file format (time, thread, priority, function:line, message)
    /// with the messages libvirt 11.3 logged in the VM (Debian 13, 2026-12-02) when the QEMU
    /// driver refused security_driver "none" with security_require_confined = 1.
    const REFUSED: &str = "\
2026-12-02 04:50:40.100+0000: 801: info : libvirt version: 11.3.0\n\
2026-12-02 04:50:40.350+0000: 815: warning : virSecurityManagerNew:98 : Configured security driver \"none\" disables default policy to create confined guests\n\
2026-12-02 04:50:40.351+0000: 815: error : virSecurityManagerNew:88 : unsupported configuration: Security driver \"none\" cannot create confined guests\n\
2026-12-02 04:50:40.351+0000: 815: error : qemuSecurityInit:412 : internal error: Failed to initialize security drivers\n\
2026-12-02 04:50:40.352+0000: 815: error : virStateInitialize:672 : Initialization of QEMU state driver failed: internal error: Failed to initialize security drivers\n\
2026-12-02 04:50:40.352+0000: 815: error : daemonRunStateInit:617 : Driver state initialization failed\n";

    #[test]
    fn error_lines_give_their_messages_without_time_or_location() {
        assert_eq!(
            error_messages(REFUSED),
            [
                "unsupported configuration: Security driver \"none\" cannot create confined guests",
                "internal error: Failed to initialize security drivers",
                "Initialization of QEMU state driver failed: internal error: Failed to initialize security drivers",
                "Driver state initialization failed",
            ]
        );
        // A message that itself holds " : " keeps it when there is no location before it.
        assert_eq!(
            error_messages("t: 1: error : no location : here\n"),
            ["no location : here"]
        );
        assert!(error_messages("t: 1: warning : f:1 : w\n").is_empty());
    }

    #[test]
    fn zombies_do_not_count_as_running() {
        assert!(process_state_is_zombie("812 (libvirtd) Z 1 812 812"));
        // A command name may hold a parenthesis and spaces.
        assert!(!process_state_is_zombie("812 (a) b) S 1 812 812"));
        assert!(process_state_is_zombie("812 (a) b) Z 1"));
        assert!(alive(std::process::id()));
    }

    #[test]
    fn explain_shows_the_edit_the_restart_and_the_undo() {
        let r: RestartDaemon = serde_saphyr::from_str(
            "{daemon: libvirt, qemu_conf: {security_driver: none, security_require_confined: 1}}",
        )
        .unwrap();
        let c = restart_commands(&r);
        assert!(c[0].starts_with("cp -p /etc/libvirt/qemu.conf"), "{c:?}");
        assert!(c.contains(&"# /etc/libvirt/qemu.conf: security_driver = \"none\"".to_string()));
        assert!(c.contains(&"# /etc/libvirt/qemu.conf: security_require_confined = 1".to_string()));
        assert!(
            c[c.len() - 2].starts_with("cp /root/qemu.conf.orig"),
            "{c:?}"
        );
        let plain: RestartDaemon = serde_saphyr::from_str("libvirt").unwrap();
        assert_eq!(restart_commands(&plain).len(), 1);
    }
}
