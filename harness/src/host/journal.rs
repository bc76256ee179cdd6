//! The crash journal: what the executor records on the host right *before* a change that no
//! name can mark (a policy module with a fixed name, an edit inside qemu.conf), so that
//! `doctor` can undo it after a run that never reached its cleanup (kill -9, power loss).
//! Everything a name can mark carries `layout::MARKER` instead and needs no record.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::host::layout::STATE_DIR;

/// One policy module name per line: modules this harness installed and has not removed yet.
pub const LOADED_MODULES: &str = "loaded-modules";
/// qemu.conf as it was before the harness's first edit; removed once the edit is undone.
pub const QEMU_CONF_BACKUP: &str = "qemu.conf.orig";

/// The journal kept in one directory: the host's is `layout::STATE_DIR`.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Default for Journal {
    fn default() -> Self {
        Self::at(STATE_DIR)
    }
}

impl Journal {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn file(&self, name: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        Ok(self.dir.join(name))
    }

    /// Call right *before* `semodule -i`: a crash between the two leaves a record of a module
    /// that is not there, which doctor handles; the reverse would leave a module nobody knows of.
    pub fn record_module(&self, name: &str) -> std::io::Result<()> {
        let file = self.file(LOADED_MODULES)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?;
        writeln!(f, "{name}")?;
        f.sync_all()
    }

    /// Call after the module was removed.
    pub fn forget_module(&self, name: &str) -> std::io::Result<()> {
        let file = self.dir.join(LOADED_MODULES);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let rest: String = text
            .lines()
            .filter(|l| l.trim() != name && !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        if rest.is_empty() {
            std::fs::remove_file(file)?;
            self.remove_if_empty()
        } else {
            std::fs::write(file, rest)
        }
    }

    /// The records directory goes when its last record does: a run leaves nothing behind, not
    /// even an empty directory.
    fn remove_if_empty(&self) -> std::io::Result<()> {
        match std::fs::remove_dir(&self.dir) {
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::DirectoryNotEmpty =>
            {
                Ok(())
            }
            r => r,
        }
    }

    /// Call right *before* the first qemu.conf edit of a run. Keeps an existing backup: that one
    /// predates an unfinished run and is the real original.
    pub fn backup_qemu_conf(&self, qemu_conf: &Path) -> std::io::Result<()> {
        let backup = self.file(QEMU_CONF_BACKUP)?;
        let original = std::fs::read(qemu_conf)?;
        match std::fs::File::create_new(&backup) {
            Ok(mut f) => {
                f.write_all(&original)?;
                f.sync_all()
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Call after qemu.conf was restored.
    pub fn drop_qemu_conf_backup(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(QEMU_CONF_BACKUP)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => self.remove_if_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_directory_goes_with_its_last_record() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        let journal = Journal::at(&state);
        journal.record_module("harness_probe").unwrap();
        journal
            .backup_qemu_conf(&{
                let conf = root.path().join("qemu.conf");
                std::fs::write(&conf, "x = 1\n").unwrap();
                conf
            })
            .unwrap();
        journal.forget_module("harness_probe").unwrap();
        assert!(state.exists(), "the qemu.conf backup is still recorded");
        journal.drop_qemu_conf_backup().unwrap();
        assert!(!state.exists());
        // Nothing to forget, nothing recorded: still fine.
        journal.forget_module("harness_probe").unwrap();
        journal.drop_qemu_conf_backup().unwrap();
    }
}
