//! Finding and removing what an interrupted run left on a target (kill -9, power loss, a
//! cleanup that failed half-way). Everything the harness creates carries `layout::MARKER` in its
//! name; what cannot carry a name (a policy module with a fixed name, an edit inside qemu.conf)
//! is recorded in the crash journal (`journal`) *before* the change, so doctor never removes
//! something an administrator made.
//!
//! Run doctor only while no harness run is active on the host: a live run's sandbox and domains
//! look exactly like leftovers.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::journal::{Journal, LOADED_MODULES, QEMU_CONF_BACKUP};
use crate::host::layout::{Layout, MARKER};

/// One thing a run left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "leftover", rename_all = "snake_case")]
pub enum Leftover {
    Domain {
        uri: String,
        name: String,
    },
    SandboxDir {
        path: PathBuf,
    },
    /// A policy module the harness recorded as installed by itself.
    Module {
        name: String,
        state_dir: PathBuf,
    },
    /// qemu.conf edited by a run that never put it back.
    QemuConf {
        path: PathBuf,
        backup: PathBuf,
        restart_libvirtd: bool,
    },
    /// A guest log libvirt kept of a harness domain (QEMU's NAME.log, swtpm's NAME-swtpm.log).
    Log {
        path: PathBuf,
    },
    /// Something doctor could not look at; reported, never acted on.
    Unreadable {
        what: String,
        error: String,
    },
}

impl Leftover {
    pub fn describe(&self) -> String {
        match self {
            Leftover::Domain { uri, name } => format!("libvirt domain {name} ({uri})"),
            Leftover::SandboxDir { path } => format!("sandbox directory {}", path.display()),
            Leftover::Log { path } => format!("guest log {}", path.display()),
            Leftover::Module { name, .. } => format!("policy module {name} loaded by the harness"),
            Leftover::QemuConf { path, backup, .. } => format!(
                "{} edited by an unfinished run (original in {})",
                path.display(),
                backup.display()
            ),
            Leftover::Unreadable { what, error } => format!("cannot check {what}: {error}"),
        }
    }
}

/// `selinux-harness-` followed by what plan.rs puts there (run id, scenario names): letters,
/// digits, '_', '.', '-', and no "..". Anything else under the images root is not ours.
pub fn is_marked_name(name: &str) -> bool {
    name.strip_prefix(MARKER)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| {
            !rest.is_empty()
                && !rest.contains("..")
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        })
}

/// Module names as semodule accepts them; a tampered record must not reach `semodule -r`.
fn is_module_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What interrupted runs left on the host `paths` describes. With no libvirt there
/// (`libvirt_uri` None), domains are not looked at and a restored qemu.conf restarts nothing.
pub fn scan(paths: &Layout) -> Vec<Leftover> {
    let mut out = Vec::new();
    if let Some(uri) = &paths.libvirt_uri {
        scan_domains(uri, &mut out);
    }
    scan_sandboxes(&paths.images_root, &mut out);
    for dir in &paths.log_dirs {
        scan_logs(dir, &mut out);
    }
    scan_modules(&paths.state_dir, &mut out);
    let backup = paths.state_dir.join(QEMU_CONF_BACKUP);
    if backup.is_file() {
        out.push(Leftover::QemuConf {
            path: paths.qemu_conf.clone(),
            backup,
            restart_libvirtd: paths.libvirt_uri.is_some(),
        });
    }
    out
}

fn scan_domains(uri: &str, out: &mut Vec<Leftover>) {
    let names = crate::host::libvirt::Libvirt::connect(uri).and_then(|lv| lv.domain_names());
    match names {
        Ok(names) => out.extend(names.into_iter().filter(|n| is_marked_name(n)).map(|name| {
            Leftover::Domain {
                uri: uri.to_string(),
                name,
            }
        })),
        Err(e) => out.push(Leftover::Unreadable {
            what: format!("libvirt domains at {uri}"),
            error: e.message,
        }),
    }
}

/// The entries of `dir`; none when it does not exist, and an `Unreadable` when it cannot be read.
fn entries(dir: &Path, out: &mut Vec<Leftover>) -> Option<std::fs::ReadDir> {
    match std::fs::read_dir(dir) {
        Ok(e) => Some(e),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            out.push(Leftover::Unreadable {
                what: dir.display().to_string(),
                error: e.to_string(),
            });
            None
        }
    }
}

fn scan_sandboxes(root: &Path, out: &mut Vec<Leftover>) {
    let Some(entries) = entries(root, out) else {
        return;
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // DirEntry::file_type does not follow symlinks: a marked symlink to elsewhere is
        // not a sandbox and is left alone.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && is_marked_name(&name) {
            found.push(Leftover::SandboxDir { path: entry.path() });
        }
    }
    found.sort_by_key(Leftover::describe);
    out.extend(found);
}

/// The domain a guest log belongs to, if the file is named like one of libvirt's: NAME.log
/// (QEMU's) or NAME-swtpm.log (swtpm's).
fn log_owner(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".log")?;
    Some(stem.strip_suffix("-swtpm").unwrap_or(stem))
}

fn is_marked_log(file_name: &str) -> bool {
    log_owner(file_name).is_some_and(is_marked_name)
}

fn scan_logs(dir: &Path, out: &mut Vec<Leftover>) {
    let Some(entries) = entries(dir, out) else {
        return;
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let marked = entry.file_name().to_str().is_some_and(is_marked_log);
        if is_file && marked {
            found.push(Leftover::Log { path: entry.path() });
        }
    }
    found.sort_by_key(Leftover::describe);
    out.extend(found);
}

fn scan_modules(state_dir: &Path, out: &mut Vec<Leftover>) {
    let file = state_dir.join(LOADED_MODULES);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            out.push(Leftover::Unreadable {
                what: file.display().to_string(),
                error: e.to_string(),
            });
            return;
        }
    };
    let mut seen = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !is_module_name(line) {
            out.push(Leftover::Unreadable {
                what: file.display().to_string(),
                error: format!("{line:?} is not a module name"),
            });
        } else if !seen.contains(&line) {
            seen.push(line);
            out.push(Leftover::Module {
                name: line.to_string(),
                state_dir: state_dir.to_path_buf(),
            });
        }
    }
}

/// Why a leftover was not removed.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// It no longer looks like the harness's (edited or swapped since the scan).
    #[error("{0}")]
    NotOurs(&'static str),
    #[error(transparent)]
    Undo(#[from] crate::host::cleanup::UndoError),
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    #[error(transparent)]
    Host(#[from] crate::host::config::HostError),
    #[error("restored, but libvirtd did not restart: {0}")]
    Restart(#[source] crate::host::config::HostError),
    #[error("{what}: {error}")]
    Unreadable { what: String, error: String },
}

/// A leftover `clean` could not remove: "FAILED: WHAT: WHY".
#[derive(Debug, thiserror::Error)]
#[error("FAILED: {what}: {source}")]
pub struct CleanFailed {
    pub what: String,
    #[source]
    pub source: Box<CleanError>,
}

/// Remove every leftover; one line per action, saying what was done (Ok) or why it failed
/// (Err, a line starting with "FAILED:"): the caller's exit status depends on which.
pub fn clean(leftovers: &[Leftover]) -> Vec<Result<String, CleanFailed>> {
    leftovers
        .iter()
        .map(|l| {
            clean_one(l).map_err(|source| CleanFailed {
                what: l.describe(),
                source: Box::new(source),
            })
        })
        .collect()
}

fn clean_one(l: &Leftover) -> Result<String, CleanError> {
    use crate::error::IoError;
    use crate::host::cleanup::{HostUndo, Undo, UndoExecutor};
    match l {
        Leftover::Domain { uri, name } => {
            // Re-check the marker: the list may have been edited between scan and clean.
            if !is_marked_name(name) {
                return Err(CleanError::NotOurs("not a harness domain name"));
            }
            HostUndo.undo(&Undo::Domain {
                uri: uri.clone(),
                name: name.clone(),
            })?;
            Ok(format!("destroyed and undefined domain {name}"))
        }
        Leftover::SandboxDir { path } => {
            let marked = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_marked_name);
            if !marked {
                return Err(CleanError::NotOurs("not a harness sandbox name"));
            }
            // Swapped for a symlink since the scan? Then it is not ours any more.
            let meta = std::fs::symlink_metadata(path).map_err(IoError::at("cannot stat", path))?;
            if !meta.is_dir() {
                return Err(CleanError::NotOurs("no longer a directory"));
            }
            // remove_dir_all does not follow symlinks inside the tree.
            std::fs::remove_dir_all(path).map_err(IoError::at("cannot remove", path))?;
            Ok(format!("removed {}", path.display()))
        }
        Leftover::Log { path } => {
            let marked = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_marked_log);
            // Swapped for a symlink or a directory since the scan? Then it is not ours any more.
            let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file());
            if !marked || !is_file {
                return Err(CleanError::NotOurs("not a harness guest's log file"));
            }
            std::fs::remove_file(path).map_err(IoError::at("cannot remove", path))?;
            Ok(format!("removed guest log {}", path.display()))
        }
        Leftover::Module { name, state_dir } => {
            if !is_module_name(name) {
                return Err(CleanError::NotOurs("not a module name"));
            }
            let installed = crate::host::config::installed_modules()?;
            if installed.iter().any(|m| m == name) {
                crate::host::config::remove_module(name)?;
            }
            Journal::at(state_dir)
                .forget_module(name)
                .map_err(IoError::at("cannot update the crash journal in", state_dir))?;
            Ok(format!("removed policy module {name}"))
        }
        Leftover::QemuConf {
            path,
            backup,
            restart_libvirtd,
        } => {
            let original = std::fs::read(backup).map_err(IoError::at("cannot read", backup))?;
            let current = std::fs::read(path).ok();
            let changed = current.as_deref() != Some(original.as_slice());
            if changed {
                crate::host::config::write_in_place(path, &original)
                    .map_err(IoError::at("cannot write", path))?;
            }
            std::fs::remove_file(backup).map_err(IoError::at("cannot remove", backup))?;
            if changed && *restart_libvirtd {
                crate::host::config::restart_libvirtd().map_err(CleanError::Restart)?;
            }
            Ok(if changed {
                format!("restored {} from {}", path.display(), backup.display())
            } else {
                format!(
                    "{} was already as before; dropped the backup",
                    path.display()
                )
            })
        }
        Leftover::Unreadable { what, error } => Err(CleanError::Unreadable {
            what: what.clone(),
            error: error.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn paths(root: &Path) -> Layout {
        let images_root = root.join("images");
        std::fs::create_dir_all(&images_root).unwrap();
        Layout {
            libvirt_uri: None,
            images_root,
            state_dir: root.join("state"),
            qemu_conf: root.join("qemu.conf"),
            log_dirs: vec![root.join("qemu-logs"), root.join("swtpm-logs")],
            ..Layout::default()
        }
    }

    #[test]
    fn guest_logs_of_harness_domains_are_found_and_removed_others_left() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        let (qemu, swtpm) = (&p.log_dirs[0], &p.log_dirs[1]);
        std::fs::create_dir_all(qemu).unwrap();
        std::fs::create_dir_all(swtpm).unwrap();
        let ours = qemu.join("selinux-harness-1a2b-vm1.log");
        let ours_tpm = swtpm.join("selinux-harness-1a2b-vm1-swtpm.log");
        for f in [&ours, &ours_tpm] {
            std::fs::write(f, "x").unwrap();
        }
        std::fs::write(qemu.join("production-guest.log"), "keep").unwrap();
        std::fs::write(qemu.join("selinux-harness-1a2b-vm1.txt"), "keep").unwrap();
        symlink("/etc/passwd", qemu.join("selinux-harness-1a2b-vm2.log")).unwrap();
        let found = scan(&p);
        assert_eq!(
            found,
            vec![
                Leftover::Log { path: ours.clone() },
                Leftover::Log {
                    path: ours_tpm.clone()
                }
            ]
        );
        for r in clean(&found) {
            r.unwrap();
        }
        assert!(!ours.exists() && !ours_tpm.exists());
        assert!(qemu.join("production-guest.log").exists());
        assert!(qemu.join("selinux-harness-1a2b-vm1.txt").exists());
        assert!(std::fs::symlink_metadata(qemu.join("selinux-harness-1a2b-vm2.log")).is_ok());
    }

    #[test]
    fn marked_names() {
        for ok in [
            "selinux-harness-1a2b3",
            "selinux-harness-1a2b3-vm1",
            "selinux-harness-x.y_z",
        ] {
            assert!(is_marked_name(ok), "{ok}");
        }
        for bad in [
            "selinux-harness",
            "selinux-harness-",
            "selinux-harnessX",
            "my-selinux-harness-1",
            "selinux-harness-a/b",
            "selinux-harness-..",
            "selinux-harness-a b",
            "vm1.img",
        ] {
            assert!(!is_marked_name(bad), "{bad}");
        }
    }

    #[test]
    fn finds_and_removes_only_marked_sandboxes() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        let ours = p.images_root.join("selinux-harness-1234abcd");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join("vm1.img"), b"x").unwrap();
        // A symlink inside the sandbox pointing out: removal must not follow it.
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        symlink(&outside, ours.join("escape")).unwrap();
        // Not ours: an admin's image, an unmarked dir, a marked *file*, a marked symlink.
        std::fs::write(p.images_root.join("guest.qcow2"), b"g").unwrap();
        std::fs::create_dir(p.images_root.join("other-dir")).unwrap();
        std::fs::write(p.images_root.join("selinux-harness-file"), b"f").unwrap();
        symlink(&outside, p.images_root.join("selinux-harness-link")).unwrap();
        // Nested deeper is not directly under the root.
        std::fs::create_dir_all(p.images_root.join("other-dir/selinux-harness-deep")).unwrap();

        let found = scan(&p);
        assert_eq!(found, vec![Leftover::SandboxDir { path: ours.clone() }]);
        let notes = clean(&found);
        assert!(
            notes[0].as_ref().is_ok_and(|n| n.starts_with("removed")),
            "{notes:?}"
        );
        assert!(!ours.exists());
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
        assert!(p.images_root.join("selinux-harness-link").exists());
        assert!(p
            .images_root
            .join("other-dir/selinux-harness-deep")
            .exists());
        assert!(scan(&p).is_empty());
    }

    #[test]
    fn a_sandbox_swapped_for_a_symlink_after_the_scan_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        let ours = p.images_root.join("selinux-harness-1");
        std::fs::create_dir(&ours).unwrap();
        let found = scan(&p);
        std::fs::remove_dir(&ours).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        symlink(&outside, &ours).unwrap();
        let notes = clean(&found);
        assert!(
            notes[0]
                .as_ref()
                .is_err_and(|n| n.to_string().starts_with("FAILED: ")),
            "{notes:?}"
        );
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn modules_only_from_the_record() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        assert!(scan(&p).is_empty());
        Journal::at(&p.state_dir)
            .record_module("harness_probe")
            .unwrap();
        Journal::at(&p.state_dir)
            .record_module("harness_probe")
            .unwrap();
        assert_eq!(
            scan(&p),
            vec![Leftover::Module {
                name: "harness_probe".into(),
                state_dir: p.state_dir.clone()
            }]
        );
        Journal::at(&p.state_dir)
            .forget_module("harness_probe")
            .unwrap();
        assert!(scan(&p).is_empty());
        assert!(!p.state_dir.join(LOADED_MODULES).exists());
    }

    #[test]
    fn a_tampered_module_record_is_reported_not_run() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        std::fs::create_dir_all(&p.state_dir).unwrap();
        std::fs::write(p.state_dir.join(LOADED_MODULES), "-r base\nok_one\n").unwrap();
        let found = scan(&p);
        assert!(
            matches!(&found[0], Leftover::Unreadable { .. }),
            "{found:?}"
        );
        assert!(matches!(&found[1], Leftover::Module { name, .. } if name == "ok_one"));
        assert!(clean(&found[..1])[0].is_err());
    }

    #[test]
    fn qemu_conf_is_restored_from_the_backup() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        std::fs::write(&p.qemu_conf, "# stock\n").unwrap();
        Journal::at(&p.state_dir)
            .backup_qemu_conf(&p.qemu_conf)
            .unwrap();
        std::fs::write(&p.qemu_conf, "# stock\nremember_owner = 0\n").unwrap();
        // A second run's backup must not overwrite the real original.
        Journal::at(&p.state_dir)
            .backup_qemu_conf(&p.qemu_conf)
            .unwrap();
        let found = scan(&p);
        assert!(
            matches!(&found[..], [Leftover::QemuConf { .. }]),
            "{found:?}"
        );
        let notes = clean(&found);
        assert!(
            notes[0].as_ref().is_ok_and(|n| n.starts_with("restored")),
            "{notes:?}"
        );
        assert_eq!(std::fs::read_to_string(&p.qemu_conf).unwrap(), "# stock\n");
        assert!(scan(&p).is_empty());
    }

    #[test]
    fn a_finished_run_leaves_no_qemu_conf_record() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        std::fs::write(&p.qemu_conf, "x = 1\n").unwrap();
        Journal::at(&p.state_dir)
            .backup_qemu_conf(&p.qemu_conf)
            .unwrap();
        Journal::at(&p.state_dir).drop_qemu_conf_backup().unwrap();
        Journal::at(&p.state_dir).drop_qemu_conf_backup().unwrap();
        assert!(scan(&p).is_empty());
    }

    /// libvirt's test driver shares one in-process state among `test:///default` connections
    /// while one stays open, so a domain defined here is what scan and clean see.
    #[test]
    fn domains_through_the_test_driver() {
        let Ok(lv) = crate::host::libvirt::Libvirt::connect("test:///default") else {
            eprintln!("libvirt test driver unavailable; skipped");
            return;
        };
        let xml = |name: &str| {
            format!(
                "<domain type='test'><name>{name}</name><memory>65536</memory>\
                 <os><type>hvm</type></os></domain>"
            )
        };
        let running = "selinux-harness-d0c70r-vm1";
        let defined = "selinux-harness-d0c70r-vm2";
        let admins = "doctor-admin-guest";
        for n in [running, defined, admins] {
            lv.define(&xml(n)).unwrap();
        }
        lv.start(running).unwrap();
        let t = tempfile::tempdir().unwrap();
        let mut p = paths(t.path());
        p.libvirt_uri = Some("test:///default".into());
        let found: Vec<Leftover> = scan(&p)
            .into_iter()
            .filter(|l| l.describe().contains("d0c70r"))
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        let notes = clean(&found);
        assert!(
            notes
                .iter()
                .all(|n| n.as_ref().is_ok_and(|n| n.starts_with("destroyed"))),
            "{notes:?}"
        );
        assert!(!lv.exists(running).unwrap());
        assert!(!lv.exists(defined).unwrap());
        assert!(lv.exists(admins).unwrap());
        lv.undefine(admins).unwrap();
        lv.close().unwrap();
    }

    #[test]
    fn an_unreachable_libvirt_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let mut p = paths(t.path());
        p.libvirt_uri = Some("test:///nonexistent/file.xml".into());
        let found = scan(&p);
        assert!(
            matches!(&found[..], [Leftover::Unreadable { .. }]),
            "{found:?}"
        );
    }
}
