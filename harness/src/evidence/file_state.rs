//! What a file and a QEMU process look like to libvirt's bookkeeping: owner, mode, label, the
//! label the policy gives the path, and the remembered-owner xattrs. Read after a step for the
//! files its expectations name (see `scenario::files`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::selinux_ops::{self, REMEMBER_PREFIX};

/// A file as the host shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    pub uid: u32,
    pub gid: u32,
    /// Account names on the target (None: the id has no name there).
    pub user: Option<String>,
    pub group: Option<String>,
    /// Permission bits (mode & 07777).
    pub mode: u32,
    pub is_dir: bool,
    pub context: Option<Context>,
    /// What the policy's file contexts give this path (selabel_lookup), if anything.
    pub default_context: Option<Context>,
    /// trusted.libvirt.security.* by short name (ref_selinux, ...), sorted.
    pub xattrs: Vec<(String, String)>,
}

/// Who a process runs as (effective ids), with the target's names for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
}

impl Ids {
    fn new(uid: u32, gid: u32) -> Self {
        Ids {
            uid,
            gid,
            user: user_name(uid),
            group: group_name(gid),
        }
    }

    /// `name:name (uid:gid)`, numbers where the target has no name.
    pub fn describe(&self) -> String {
        format!(
            "{}:{} ({}:{})",
            self.user.clone().unwrap_or_else(|| self.uid.to_string()),
            self.group.clone().unwrap_or_else(|| self.gid.to_string()),
            self.uid,
            self.gid
        )
    }
}

pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

impl FileFacts {
    pub fn ids(&self) -> Ids {
        Ids {
            uid: self.uid,
            gid: self.gid,
            user: self.user.clone(),
            group: self.group.clone(),
        }
    }
}

/// One line for reports: the file's state as `FileState` evidence holds it.
pub fn describe(
    file: &str,
    path: Option<&str>,
    facts: Option<&FileFacts>,
    why: Option<&str>,
) -> String {
    let Some(path) = path else {
        return format!("{file}: {}", why.unwrap_or("not resolved"));
    };
    let Some(f) = facts else {
        return format!("{file} ({path}): does not exist");
    };
    let ctx = |c: &Option<Context>| c.as_ref().map_or("-".to_string(), |c| c.to_string());
    let xattrs = if f.xattrs.is_empty() {
        "no remembered owner".to_string()
    } else {
        f.xattrs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{file} ({path}): {} {:04o} {}, label {} (policy default {}), {xattrs}",
        if f.is_dir { "directory" } else { "file" },
        f.mode,
        f.ids().describe(),
        ctx(&f.context),
        ctx(&f.default_context),
    )
}

/// Why a file's or a process's facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileStateError {
    #[error("stat {}: {source}", path.display())]
    Stat {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Selinux(#[from] Box<selinux_ops::SelinuxOpsError>),
    #[error("read {path}: {source}")]
    Status {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no Uid:/Gid: lines")]
    NoIds { path: String },
}

/// The file at `path` (not following a symlink), or None when there is none.
pub fn read(path: &Path) -> Result<Option<FileFacts>, FileStateError> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FileStateError::Stat {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let context = selinux_ops::file_context(path).map_err(Box::new)?;
    let default_context = selinux_ops::default_file_context(path, md.mode()).map_err(Box::new)?;
    let xattrs = selinux_ops::remembered_owner(path)
        .map_err(Box::new)?
        .into_iter()
        .map(|(n, v)| (n.strip_prefix(REMEMBER_PREFIX).unwrap_or(&n).to_string(), v))
        .collect();
    let ids = Ids::new(md.uid(), md.gid());
    Ok(Some(FileFacts {
        uid: ids.uid,
        gid: ids.gid,
        user: ids.user,
        group: ids.group,
        mode: md.mode() & 0o7777,
        is_dir: md.is_dir(),
        context,
        default_context,
        xattrs,
    }))
}

/// The effective uid and gid of a process, from /proc/PID/status.
pub fn process_ids(pid: u32) -> Result<Ids, FileStateError> {
    let path = format!("/proc/{pid}/status");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(source) => return Err(FileStateError::Status { path, source }),
    };
    parse_status_ids(&text)
        .map(|(u, g)| Ids::new(u, g))
        .ok_or(FileStateError::NoIds { path })
}

/// (effective uid, effective gid) from a /proc/PID/status text: the second field of each line.
fn parse_status_ids(text: &str) -> Option<(u32, u32)> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("Uid:")?, field("Gid:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ids_are_the_effective_ones() {
        let status =
            "Name:\tqemu-system-x86\nUid:\t0\t64055\t64055\t64055\nGid:\t0\t994\t994\t994\n";
        assert_eq!(parse_status_ids(status), Some((64055, 994)));
        assert_eq!(parse_status_ids("Name: x\n"), None);
    }

    #[test]
    fn a_missing_file_is_none_and_a_present_one_has_its_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("gone")).unwrap(), None);
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        // A host without SELinux gives no label; the rest is there all the same.
        if let Ok(Some(facts)) = read(&f) {
            assert_eq!(facts.mode, 0o640);
            assert!(!facts.is_dir);
            assert_eq!(facts.uid, nix::unistd::geteuid().as_raw());
            assert_eq!(facts.user, user_name(facts.uid));
        }
        let me = process_ids(std::process::id()).unwrap();
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        assert!(me.describe().ends_with(&format!("({}:{})", me.uid, me.gid)));
    }
}
