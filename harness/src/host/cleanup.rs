//! Undo stack for every change a scenario makes to the target.
//!
//! Each change is registered *before or as* it is made, as data (an `Undo` value), so the stack
//! can be listed, serialised into a report and tested without touching a host. `Cleanup::run`
//! undoes in reverse order; `Drop` runs whatever is left, so a panic unwinding through a
//! scenario still restores the host.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::Context;

/// One thing to undo.
// A Context is ~300 bytes (two category bitmaps); an undo list holds a handful of entries.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Undo {
    /// A domain was defined: destroy it if running, then undefine it.
    Domain { uri: String, name: String },
    /// A file was created.
    RemoveFile { path: PathBuf },
    /// A directory was created (removed with its content).
    RemoveDir { path: PathBuf },
    /// A file was relabelled; put its label back (None: it had none, use the policy default).
    RestoreLabel {
        path: PathBuf,
        context: Option<Context>,
    },
    /// A policy module was installed.
    RemoveModule { name: String },
    /// A boolean was changed; set it back to `value`.
    SetBoolean { name: String, value: bool },
    /// A file's content was changed; write `original` back byte for byte (None: it did not
    /// exist, remove it). `restart_libvirtd` when the file is libvirt configuration: the
    /// restart has to follow the restore, so both live in one action.
    RestoreFile {
        path: PathBuf,
        original: Option<Vec<u8>>,
        restart_libvirtd: bool,
    },
    /// libvirtd was restarted for a reason that undoes itself; restart it again.
    RestartLibvirtd,
    /// Policy modules under test were installed at priority 400 (`policy::install`): remove
    /// them all with one semodule call (one policy rebuild).
    RemoveModules { names: Vec<String> },
    /// The policy was rebuilt without its dontaudit rules; rebuild it with them.
    EnableDontaudit,
    /// An xattr of a file was set or removed; put back `value` (None: it had none).
    RestoreXattr {
        path: PathBuf,
        name: String,
        value: Option<Vec<u8>>,
    },
    /// A domain was saved with managedsave: remove the managed save image (libvirt keeps it
    /// outside the sandbox, and refuses to undefine a domain that has one).
    ManagedSave { uri: String, name: String },
}

impl Undo {
    /// One line for humans (reports, notes).
    pub fn describe(&self) -> String {
        match self {
            Undo::Domain { uri, name } => format!("destroy and undefine domain {name} ({uri})"),
            Undo::RemoveFile { path } => format!("remove file {}", path.display()),
            Undo::RemoveDir { path } => format!("remove directory {}", path.display()),
            Undo::RestoreLabel { path, context } => match context {
                Some(c) => format!("relabel {} to {c}", path.display()),
                None => format!("restore default label of {}", path.display()),
            },
            Undo::RemoveModule { name } => format!("remove policy module {name}"),
            Undo::SetBoolean { name, value } => {
                format!("set boolean {name} back to {}", u8::from(*value))
            }
            Undo::RestoreFile {
                path,
                original,
                restart_libvirtd,
            } => {
                let what = match original {
                    Some(b) => format!("restore {} ({} bytes)", path.display(), b.len()),
                    None => format!("remove {} (did not exist)", path.display()),
                };
                if *restart_libvirtd {
                    format!("{what}, then restart libvirtd")
                } else {
                    what
                }
            }
            Undo::RestartLibvirtd => "restart libvirtd".to_string(),
            Undo::RemoveModules { names } => {
                format!("remove policy modules {} (priority 400)", names.join(", "))
            }
            Undo::EnableDontaudit => {
                "rebuild the policy with its dontaudit rules (semodule -B)".to_string()
            }
            Undo::RestoreXattr { path, name, value } => match value {
                Some(_) => format!("put back xattr {name} of {}", path.display()),
                None => format!("remove xattr {name} of {}", path.display()),
            },
            Undo::ManagedSave { uri, name } => {
                format!("remove the managed save image of domain {name} ({uri})")
            }
        }
    }
}

/// Why an undo failed (its text is the cleanup note's, `cleanup FAILED: WHAT: WHY`).
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// libvirt refused (its message as it gave it).
    #[error("{0}")]
    Libvirt(String),
    #[error("libvirtd did not answer within {waited:?}: {last}")]
    LibvirtGone {
        waited: std::time::Duration,
        last: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Selinux(#[from] crate::selinux_ops::SelinuxOpsError),
    #[error(transparent)]
    Host(#[from] crate::host::config::HostError),
    #[error("module removed, but its journal record stays: {0}")]
    JournalRecord(#[source] std::io::Error),
    #[error("qemu.conf restored, but its backup stays: {0}")]
    QemuConfBackup(#[source] std::io::Error),
    /// The policy under test's modules could not be removed.
    #[error(transparent)]
    Modules(Box<crate::policy::install::InstallError>),
}

impl From<crate::evidence::LibvirtError> for UndoError {
    fn from(e: crate::evidence::LibvirtError) -> Self {
        UndoError::Libvirt(e.message)
    }
}

/// Performs undo actions. The real one touches the host; tests record.
pub trait UndoExecutor {
    fn undo(&mut self, action: &Undo) -> Result<(), UndoError>;
}

impl<F: FnMut(&Undo) -> Result<(), UndoError>> UndoExecutor for F {
    fn undo(&mut self, action: &Undo) -> Result<(), UndoError> {
        self(action)
    }
}

/// How long cleanup waits for libvirtd to come back (systemd, or the VM's init, restarts a
/// libvirtd that died; a run whose libvirtd died must still remove its domains).
const LIBVIRTD_RETURN: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) fn connect_patiently(uri: &str) -> Result<crate::host::libvirt::Libvirt, UndoError> {
    use crate::wait::{wait_until, Waited};
    let mut last = String::new();
    // Not interruptible: this is the cleanup a Ctrl-C asked for.
    let connected = wait_until(
        Some(std::time::Instant::now() + LIBVIRTD_RETURN),
        std::time::Duration::from_millis(250),
        None,
        || {
            crate::host::libvirt::Libvirt::connect(uri)
                .map_err(|e| last = e.message)
                .ok()
        },
    );
    match connected {
        Waited::Met(lv) => Ok(lv),
        Waited::TimedOut | Waited::Interrupted => Err(UndoError::LibvirtGone {
            waited: LIBVIRTD_RETURN,
            last,
        }),
    }
}

/// The executor that acts on this host.
#[derive(Debug, Default)]
pub struct HostUndo;

impl UndoExecutor for HostUndo {
    fn undo(&mut self, action: &Undo) -> Result<(), UndoError> {
        match action {
            Undo::Domain { uri, name } => {
                let lv = connect_patiently(uri)?;
                if lv.exists(name)? {
                    // Not running is fine: destroy only matters for an active domain. It may
                    // stop between the two calls (a libvirtd that just restarted is still
                    // reconnecting to its QEMUs), so a failed destroy of a domain that is no
                    // longer active is no failure.
                    if lv.is_active(name)? {
                        if let Err(e) = lv.destroy(name) {
                            if lv.is_active(name).unwrap_or(true) {
                                return Err(e.into());
                            }
                        }
                    }
                    lv.undefine_with_nvram(name)?;
                }
                Ok(())
            }
            Undo::RemoveFile { path } => ignore_missing(std::fs::remove_file(path), path),
            Undo::RemoveDir { path } => ignore_missing(std::fs::remove_dir_all(path), path),
            Undo::RestoreLabel { path, context } => Ok(match context {
                Some(c) => crate::selinux_ops::set_file_context(path, c),
                None => crate::selinux_ops::restore_default_context(path),
            }?),
            Undo::RemoveModule { name } => {
                crate::host::config::remove_module(name)?;
                // The crash journal's record is for a run that never gets here; this one did,
                // so `doctor` must not find (and try to remove) the module again.
                crate::host::journal::Journal::default()
                    .forget_module(name)
                    .map_err(UndoError::JournalRecord)
            }
            Undo::SetBoolean { name, value } => Ok(crate::host::config::setsebool(name, *value)?),
            Undo::RestoreFile {
                path,
                original,
                restart_libvirtd,
            } => {
                match original {
                    Some(bytes) => {
                        crate::host::config::write_in_place(path, bytes).map_err(|source| {
                            UndoError::Io {
                                path: path.clone(),
                                source,
                            }
                        })?
                    }
                    None => ignore_missing(std::fs::remove_file(path), path)?,
                }
                if *restart_libvirtd {
                    crate::host::config::restart_libvirtd()?;
                }
                if path == Path::new(crate::host::layout::QEMU_CONF) {
                    // qemu.conf is back: the journal's copy for `doctor` has done its job.
                    crate::host::journal::Journal::default()
                        .drop_qemu_conf_backup()
                        .map_err(UndoError::QemuConfBackup)?;
                }
                Ok(())
            }
            Undo::RestartLibvirtd => {
                crate::host::config::restart_libvirtd()?;
                Ok(())
            }
            // An install that failed (semodule commits all or nothing) left nothing to remove.
            Undo::RemoveModules { names } => crate::policy::install::remove_if_present(names)
                .map(drop)
                .map_err(|e| UndoError::Modules(Box::new(e))),
            Undo::EnableDontaudit => Ok(crate::host::dontaudit::enable()?),
            Undo::RestoreXattr { path, name, value } => {
                let r = match value {
                    Some(v) => crate::selinux_ops::set_xattr(path, name, v),
                    None => match crate::selinux_ops::remove_xattr(path, name) {
                        Err(e) if e.raw_os_error() == Some(nix::libc::ENODATA) => Ok(()),
                        r => r,
                    },
                };
                // The sandbox file may be gone already (libvirt or the run removed it).
                ignore_missing(r, path)
            }
            // Starting from the image consumed it; only one that is still there is removed.
            Undo::ManagedSave { uri, name } => {
                let lv = connect_patiently(uri)?;
                if lv.exists(name)? && lv.has_managed_save(name)? {
                    lv.managed_save_remove(name)?;
                }
                Ok(())
            }
        }
    }
}

fn ignore_missing(r: std::io::Result<()>, path: &Path) -> Result<(), UndoError> {
    match r {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(UndoError::Io {
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// The undo stack.
#[derive(Debug, Default)]
pub struct Cleanup {
    actions: Vec<Undo>,
}

impl Cleanup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a change that has been (or is about to be) made.
    pub fn push(&mut self, action: Undo) {
        self.actions.push(action);
    }

    /// Forget the newest registered change when it is `undo`, which its maker has just undone
    /// itself (a step that puts back what it changed before the run goes on). Whether it was.
    pub fn retire_last(&mut self, undo: &Undo) -> bool {
        if self.actions.last() == Some(undo) {
            self.actions.pop();
            true
        } else {
            false
        }
    }

    /// What would be undone, in the order it would be undone.
    pub fn pending(&self) -> impl Iterator<Item = &Undo> {
        self.actions.iter().rev()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Undo everything on this host, newest first. One [`Undone`] per action: what was done
    /// and how it went. A failure does not stop the rest: each undo is independent.
    pub fn run(mut self) -> Vec<Undone> {
        self.run_with(&mut HostUndo)
    }

    /// Undo everything with the given executor (tests, dry runs).
    pub fn run_with(&mut self, exec: &mut dyn UndoExecutor) -> Vec<Undone> {
        let mut done = Vec::new();
        while let Some(action) = self.actions.pop() {
            let what = action.describe();
            // A panic inside one undo must not skip the others (Drop may already be unwinding).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec.undo(&action)));
            let outcome = match r {
                Ok(Ok(())) => UndoOutcome::Done,
                Ok(Err(error)) => UndoOutcome::Failed(error.to_string()),
                Err(_) => UndoOutcome::Panicked,
            };
            done.push(Undone { what, outcome });
        }
        done
    }
}

/// One step of a cleanup: the change undone, and how that went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Undone {
    /// The undo, as [`Undo::describe`] says it.
    pub what: String,
    #[serde(flatten)]
    pub outcome: UndoOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", content = "error", rename_all = "snake_case")]
pub enum UndoOutcome {
    Done,
    /// The undo failed: the host may hold a leftover (`selinux-harness doctor` finds it).
    Failed(String),
    /// The undo panicked; the others still ran.
    Panicked,
}

impl Undone {
    pub fn succeeded(&self) -> bool {
        self.outcome == UndoOutcome::Done
    }
}

/// The line a person reads (the human report's note, the JSON report's notes).
impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = &self.what;
        match &self.outcome {
            UndoOutcome::Done => write!(f, "cleanup: {what}"),
            UndoOutcome::Failed(e) => write!(f, "cleanup FAILED: {what}: {e}"),
            UndoOutcome::Panicked => write!(f, "cleanup PANICKED: {what}"),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.actions.is_empty() {
            return;
        }
        // Nobody is left to hand the notes to: stderr is the only place a human will see them.
        for undone in self.run_with(&mut HostUndo) {
            eprintln!("{undone}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Undo> {
        vec![
            Undo::RestoreFile {
                path: crate::host::layout::QEMU_CONF.into(),
                original: Some(b"a = 1\n".to_vec()),
                restart_libvirtd: true,
            },
            Undo::SetBoolean {
                name: "virt_use_execmem".into(),
                value: false,
            },
            Undo::RemoveFile {
                path: "/var/lib/libvirt/images/vm1.img".into(),
            },
            Undo::Domain {
                uri: "qemu:///system".into(),
                name: "vm1".into(),
            },
        ]
    }

    #[test]
    fn undoes_newest_first_and_empties() {
        let mut c = Cleanup::new();
        for a in sample() {
            c.push(a);
        }
        let listed: Vec<Undo> = c.pending().cloned().collect();
        let mut seen = Vec::new();
        let notes = c.run_with(&mut |a: &Undo| {
            seen.push(a.clone());
            Ok(())
        });
        let mut expected = sample();
        expected.reverse();
        assert_eq!(seen, expected);
        assert_eq!(listed, expected);
        assert_eq!(notes.len(), 4);
        assert!(c.is_empty());
        // Nothing left for Drop to do on the host.
        drop(c);
    }

    #[test]
    fn a_failure_or_panic_does_not_stop_the_rest() {
        let mut c = Cleanup::new();
        for a in sample() {
            c.push(a);
        }
        let mut count = 0;
        let notes = c.run_with(&mut |a: &Undo| {
            count += 1;
            match a {
                Undo::Domain { .. } => Err(UndoError::Libvirt("no libvirtd".into())),
                Undo::RemoveFile { .. } => panic!("boom"),
                _ => Ok(()),
            }
        });
        assert_eq!(count, 4);
        assert!(notes[0]
            .to_string()
            .starts_with("cleanup FAILED: destroy and undefine domain vm1"));
        assert_eq!(notes[1].outcome, UndoOutcome::Panicked);
        assert!(notes[1]
            .to_string()
            .starts_with("cleanup PANICKED: remove file"));
        assert!(notes[3].succeeded() && notes[3].what.contains("then restart libvirtd"));
    }

    #[test]
    fn drop_runs_remaining_actions_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let created = dir.path().join("created");
        let edited = dir.path().join("edited");
        std::fs::write(&created, b"new").unwrap();
        std::fs::write(&edited, b"changed").unwrap();
        {
            let mut c = Cleanup::new();
            c.push(Undo::RestoreFile {
                path: edited.clone(),
                original: Some(b"orig\r\nno newline at end".to_vec()),
                restart_libvirtd: false,
            });
            c.push(Undo::RemoveFile {
                path: created.clone(),
            });
        }
        assert!(!created.exists());
        assert_eq!(
            std::fs::read(&edited).unwrap(),
            b"orig\r\nno newline at end"
        );
    }
}
