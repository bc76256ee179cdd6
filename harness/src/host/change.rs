//! Changes a run makes to the target's configuration, each with its undo registered in a
//! `Cleanup` before the change is made (see `config` for the settings themselves).

use std::path::{Path, PathBuf};

use crate::host::cleanup::{Cleanup, Undo};
use crate::host::config::{
    get_boolean, installed_modules, io_err, module_name, restart_libvirtd, run, set_conf_key,
    setsebool, write_in_place, HostError, Result,
};
use crate::host::layout::QEMU_CONF;

/// qemu.conf (or another libvirt config file with the same syntax).
#[derive(Debug, Clone)]
pub struct QemuConf {
    pub path: PathBuf,
}

impl Default for QemuConf {
    fn default() -> Self {
        Self {
            path: PathBuf::from(QEMU_CONF),
        }
    }
}

impl QemuConf {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Set keys and restart libvirtd so they take effect. The undo (restore the original bytes,
    /// restart again) is registered before the file is touched.
    pub fn apply(&self, settings: &[(String, String)], cleanup: &mut Cleanup) -> Result<()> {
        self.edit(settings, cleanup)?;
        restart_libvirtd().map(|_| ())
    }

    /// Only the file edit, no restart (tests; callers that restart themselves).
    pub fn edit(&self, settings: &[(String, String)], cleanup: &mut Cleanup) -> Result<()> {
        let original = std::fs::read(&self.path).map_err(io_err("read", &self.path))?;
        let text = std::str::from_utf8(&original).map_err(|_| HostError::Invalid {
            what: "config file",
            value: self.path.display().to_string(),
            why: "not UTF-8; refusing to edit",
        })?;
        let mut edited = text.to_string();
        for (k, v) in settings {
            edited = set_conf_key(&edited, k, v)?;
        }
        cleanup.push(Undo::RestoreFile {
            path: self.path.clone(),
            original: Some(original),
            restart_libvirtd: true,
        });
        write_in_place(&self.path, edited.as_bytes()).map_err(io_err("write", &self.path))
    }
}

/// Set a boolean for this run; the previous value comes back on cleanup. No-op if equal.
pub fn set_boolean(name: &str, value: bool, cleanup: &mut Cleanup) -> Result<()> {
    let old = get_boolean(name)?;
    if old == value {
        return Ok(());
    }
    cleanup.push(Undo::SetBoolean {
        name: name.to_string(),
        value: old,
    });
    setsebool(name, value)
}

/// Override an installed module with an edited copy of its CIL: `edit` gets the module's CIL
/// (as `semodule --cil -E` extracts it, from its highest priority) and returns the new text,
/// which is installed at priority 400 - above the distribution's 100, so it takes the module's
/// place - and removed on cleanup (`semodule -r` removes at 400), which brings back the
/// original. Refuses when the module already has a priority-400 copy (not ours to replace).
pub fn override_module<E: std::fmt::Display>(
    name: &str,
    edit: &dyn Fn(&str) -> std::result::Result<String, E>,
    cleanup: &mut Cleanup,
) -> Result<()> {
    crate::host::config::validate_policy_name("policy module", name)?;
    let full = run("semodule", &["--list-modules=full"])?;
    let present: Vec<(&str, &str)> = full
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, w.next()?))
        })
        .filter(|(_, n)| *n == name)
        .collect();
    if present.is_empty() {
        return Err(HostError::Invalid {
            what: "policy module",
            value: name.to_string(),
            why: "not installed; nothing to override",
        });
    }
    if present.iter().any(|(p, _)| *p == "400") {
        return Err(HostError::Invalid {
            what: "policy module",
            value: name.to_string(),
            why: "already has a priority-400 copy; refusing to replace it",
        });
    }
    let dir = tempfile::tempdir().map_err(io_err("create a directory for", Path::new("/tmp")))?;
    // semodule -E writes NAME.cil into the working directory, as semanage_t: a directory made
    // by an unconfined process in /tmp is user_tmp_t, where semanage_t may not add a file;
    // in tmp_t it may (its file becomes semanage_tmp_t).
    if crate::selinux_ops::file_context(dir.path())
        .ok()
        .flatten()
        .is_some()
    {
        let tmp: crate::context::Context =
            "system_u:object_r:tmp_t:s0"
                .parse()
                .map_err(|_| HostError::Invalid {
                    what: "context",
                    value: "system_u:object_r:tmp_t:s0".into(),
                    why: "does not parse",
                })?;
        crate::selinux_ops::set_file_context(dir.path(), &tmp).map_err(|e| HostError::Command {
            command: format!("label {} tmp_t", dir.path().display()),
            status: "failed".into(),
            stderr: e.to_string(),
        })?;
    }
    // semodule -E writes NAME.cil into the working directory.
    let out = std::process::Command::new("semodule")
        .args(["--cil", "-E", name])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| HostError::Command {
            command: format!("semodule --cil -E {name}"),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(HostError::Command {
            command: format!("semodule --cil -E {name}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let file = dir.path().join(format!("{name}.cil"));
    let original = std::fs::read_to_string(&file).map_err(io_err("read", &file))?;
    let edited = edit(&original).map_err(|why| HostError::Command {
        command: format!("edit of module {name}"),
        status: "refused".into(),
        stderr: why.to_string(),
    })?;
    std::fs::write(&file, edited).map_err(io_err("write", &file))?;
    let f = file.to_str().ok_or_else(|| HostError::Invalid {
        what: "module path",
        value: file.display().to_string(),
        why: "not UTF-8",
    })?;
    // Register first: a semodule that fails half-way may still have installed it.
    cleanup.push(Undo::RemoveModule {
        name: name.to_string(),
    });
    run("semodule", &["-X", "400", "-i", f]).map(|_| ())
}

/// Install a module unless one of that name is already there (then it is not ours to remove).
/// Returns whether it was installed.
pub fn install_module(file: &Path, cleanup: &mut Cleanup) -> Result<bool> {
    let name = module_name(file)?;
    if installed_modules()?.contains(&name) {
        return Ok(false);
    }
    let f = file.to_str().ok_or_else(|| HostError::Invalid {
        what: "module path",
        value: file.display().to_string(),
        why: "not UTF-8",
    })?;
    // Register first: a semodule that fails half-way may still have installed it.
    cleanup.push(Undo::RemoveModule { name });
    run("semodule", &["-i", f]).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::config::get_conf_key;
    use crate::host::config::tests::DEBIAN_SNIPPET;

    #[test]
    fn edit_then_cleanup_restores_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qemu.conf");
        // No trailing newline and a CR: the restore must not "fix" anything.
        let original = format!("{DEBIAN_SNIPPET}# end\r\nx = 1");
        std::fs::write(&path, &original).unwrap();
        let conf = QemuConf::new(&path);
        let mut cleanup = Cleanup::new();
        conf.edit(
            &[
                ("remember_owner".into(), "0".into()),
                ("namespaces".into(), "[ ]".into()),
            ],
            &mut cleanup,
        )
        .unwrap();
        let edited = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            get_conf_key(&edited, "remember_owner").as_deref(),
            Some("0")
        );
        assert_ne!(edited, original);
        // Restore without the libvirtd restart (there is none here): take the action out.
        let pending: Vec<Undo> = cleanup.pending().cloned().collect();
        let notes = cleanup.run_with(&mut |a: &Undo| match a {
            Undo::RestoreFile {
                path,
                original: Some(b),
                restart_libvirtd: true,
            } => write_in_place(path, b).map_err(|source| crate::host::cleanup::UndoError::Io {
                path: path.clone(),
                source,
            }),
            other => panic!("unexpected {other:?}"),
        });
        assert_eq!(pending.len(), 1, "{notes:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    }

    #[test]
    fn edit_with_invalid_value_changes_nothing_and_registers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qemu.conf");
        std::fs::write(&path, DEBIAN_SNIPPET).unwrap();
        let mut cleanup = Cleanup::new();
        let err = QemuConf::new(&path)
            .edit(
                &[("user".into(), "\"x\"\ngroup = \"root\"".into())],
                &mut cleanup,
            )
            .unwrap_err();
        assert!(err.to_string().contains("control characters"), "{err}");
        assert!(cleanup.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), DEBIAN_SNIPPET);
    }
}
