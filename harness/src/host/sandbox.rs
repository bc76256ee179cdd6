//! Creating a run's files inside its sandbox without ever following a symlink.
//!
//! The sandbox lives in libvirt's images directory, which other local processes may write to.
//! A name resolved through a path can be swapped for a symlink between check and use, and the
//! harness runs as root: a planted `vm1.img -> /etc/shadow` would be truncated and relabelled.
//! So the directory is opened once with O_DIRECTORY|O_NOFOLLOW and every file is created
//! relative to that descriptor with O_CREAT|O_EXCL|O_NOFOLLOW: an existing entry of any kind,
//! symlink included, is an error, never a target.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::mkdir;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "{name:?} is not a plain file name inside the sandbox (no '/', '..', NUL or empty names)"
    )]
    BadName { name: String },
    #[error("cannot {what} {path}: {errno}")]
    Os {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

type Result<T> = std::result::Result<T, SandboxError>;

/// A directory held open by descriptor; names are resolved against it, not against its path.
#[derive(Debug)]
pub struct SandboxDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// A single path component that stays inside the directory it is joined to.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && name.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(SandboxError::BadName {
            name: name.to_string(),
        })
    }
}

impl SandboxDir {
    /// Create `path` (its parent must exist) and open it. Fails if anything is already there,
    /// so a directory planted in advance by someone else is never adopted.
    pub fn create(path: &Path, mode: u32) -> Result<Self> {
        mkdir(path, Mode::from_bits_truncate(mode)).map_err(|errno| SandboxError::Os {
            what: "create directory",
            path: path.to_path_buf(),
            errno,
        })?;
        Self::open(path)
    }

    /// Open an existing directory; a symlink in the last component is refused (ELOOP/ENOTDIR).
    pub fn open(path: &Path) -> Result<Self> {
        let fd = open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|errno| SandboxError::Os {
            what: "open directory",
            path: path.to_path_buf(),
            errno,
        })?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create a new regular file `name` directly in this directory, write-only, mode 0600
    /// (libvirt relabels and chowns it; nobody else needs to read it meanwhile).
    pub fn create_file(&self, name: &str) -> Result<File> {
        check_name(name)?;
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|errno| SandboxError::Os {
            what: "create",
            path: self.path.join(name),
            errno,
        })?;
        Ok(File::from(fd))
    }

    /// Create `name` and give it `size` bytes (sparse).
    pub fn create_image(&self, name: &str, size: u64) -> Result<File> {
        let f = self.create_file(name)?;
        f.set_len(size).map_err(|e| SandboxError::Os {
            what: "size",
            path: self.path.join(name),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)),
        })?;
        Ok(f)
    }

    /// Create a FIFO `name` (mode 0600; libvirt chowns it for QEMU), never over an existing entry.
    pub fn create_fifo(&self, name: &str) -> Result<()> {
        check_name(name)?;
        nix::unistd::mkfifoat(self.fd.as_fd(), name, Mode::from_bits_truncate(0o600)).map_err(
            |errno| SandboxError::Os {
                what: "create FIFO",
                path: self.path.join(name),
                errno,
            },
        )
    }

    /// Create a directory `name` directly in this directory and open it, never over an
    /// existing entry (mkdirat fails with EEXIST, and the open refuses a symlink).
    pub fn create_dir(&self, name: &str, mode: u32) -> Result<SandboxDir> {
        check_name(name)?;
        let path = self.path.join(name);
        nix::sys::stat::mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(mode)).map_err(
            |errno| SandboxError::Os {
                what: "create directory",
                path: path.clone(),
                errno,
            },
        )?;
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|errno| SandboxError::Os {
            what: "open directory",
            path: path.clone(),
            errno,
        })?;
        Ok(SandboxDir { fd, path })
    }

    /// A listening UNIX socket `name`, for a guest's chardev in connect mode. bind(2) never
    /// follows or replaces an existing entry (EADDRINUSE), and the directory is ours.
    pub fn listen(&self, name: &str) -> Result<std::os::unix::net::UnixListener> {
        check_name(name)?;
        let path = self.path.join(name);
        std::os::unix::net::UnixListener::bind(&path).map_err(|e| SandboxError::Os {
            what: "listen on",
            path,
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn makes_fifos_and_sockets_but_never_over_an_entry() {
        let t = tempfile::tempdir().unwrap();
        let d = SandboxDir::create(&t.path().join("box"), 0o755).unwrap();
        d.create_fifo("p.in").unwrap();
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::symlink_metadata(t.path().join("box/p.in")).unwrap();
        assert!(meta.file_type().is_fifo());
        assert!(d.create_fifo("p.in").is_err());
        let _l = d.listen("s.sock").unwrap();
        assert!(d.listen("s.sock").is_err());
        symlink("/etc/passwd", t.path().join("box/evil")).unwrap();
        assert!(d.create_fifo("evil").is_err() && d.listen("evil").is_err());
        assert!(d.create_fifo("../x").is_err() && d.listen("a/b").is_err());
    }

    #[test]
    fn makes_a_directory_and_files_in_it_but_never_over_an_entry() {
        let t = tempfile::tempdir().unwrap();
        let d = SandboxDir::open(t.path()).unwrap();
        let sub = d.create_dir("share", 0o755).unwrap();
        sub.create_image("data.txt", 4).unwrap();
        assert_eq!(
            std::fs::metadata(t.path().join("share/data.txt"))
                .unwrap()
                .len(),
            4
        );
        assert!(d.create_dir("share", 0o755).is_err());
        symlink("/", t.path().join("link")).unwrap();
        assert!(d.create_dir("link", 0o755).is_err());
        assert!(d.create_dir("a/b", 0o755).is_err());
    }

    #[test]
    fn creates_a_sized_file() {
        let t = tempfile::tempdir().unwrap();
        let d = SandboxDir::create(&t.path().join("box"), 0o755).unwrap();
        d.create_image("vm1.img", 16 << 20).unwrap();
        let meta = std::fs::metadata(t.path().join("box/vm1.img")).unwrap();
        assert_eq!(meta.len(), 16 << 20);
        assert!(meta.is_file());
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let d = SandboxDir::create(&t.path().join("box"), 0o755).unwrap();
        symlink(&victim, t.path().join("box/vm1.img")).unwrap();
        let err = d.create_image("vm1.img", 1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                SandboxError::Os {
                    errno: Errno::EEXIST,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A dangling symlink must not be created through either.
        let nowhere = t.path().join("nowhere");
        symlink(&nowhere, t.path().join("box/vm2.img")).unwrap();
        assert!(d.create_file("vm2.img").is_err());
        assert!(!nowhere.exists());
    }

    #[test]
    fn std_create_new_refuses_a_symlink_too() {
        // The executor's current primitive: O_CREAT|O_EXCL, which never follows a final symlink.
        let t = tempfile::tempdir().unwrap();
        let nowhere = t.path().join("nowhere");
        symlink(&nowhere, t.path().join("vm1.img")).unwrap();
        let err = File::create_new(t.path().join("vm1.img")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(!nowhere.exists());
    }

    #[test]
    fn a_symlinked_sandbox_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let link = t.path().join("box");
        symlink(&elsewhere, &link).unwrap();
        assert!(SandboxDir::open(&link).is_err());
        assert!(SandboxDir::create(&link, 0o755).is_err());
    }

    #[test]
    fn an_existing_directory_is_not_adopted() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("box")).unwrap();
        let err = SandboxDir::create(&t.path().join("box"), 0o755).unwrap_err();
        assert!(
            matches!(
                err,
                SandboxError::Os {
                    errno: Errno::EEXIST,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn names_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let d = SandboxDir::create(&t.path().join("box"), 0o755).unwrap();
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\0b",
            long.as_str(),
        ] {
            assert!(
                matches!(d.create_file(bad), Err(SandboxError::BadName { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(!t.path().join("x").exists());
    }
}
