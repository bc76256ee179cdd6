//! File and process labels on the target, through libselinux (the `selinux` crate) and raw xattrs.
//!
//! Every context is read and written in *raw* format: with mcstrans installed the translated
//! form ("SystemLow") would not parse as a `Context`, and scenarios speak raw MCS levels.

use crate::error::IoError;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::libc;
use selinux::SecurityContext;

use crate::context::{Context, ParseError};

/// Where the kernel exposes the enforcing flag.
pub const ENFORCE_PATH: &str = "/sys/fs/selinux/enforce";
/// Prefix of the xattrs in which libvirt remembers a file's original owner and label.
pub const REMEMBER_PREFIX: &str = "trusted.libvirt.security.";

#[derive(Debug, thiserror::Error)]
pub enum SelinuxOpsError {
    #[error("{what} on {path}: {source}")]
    Selinux {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: selinux::errors::Error,
    },
    #[error("{what} gave a context that does not parse ({raw:?}): {source}")]
    Parse {
        what: String,
        raw: String,
        #[source]
        source: ParseError,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{path} holds {content:?}, expected 0 or 1")]
    BadFlag { path: PathBuf, content: String },
    #[error(transparent)]
    Nul(#[from] std::ffi::NulError),
    #[error("setexeccon({context}): {source}")]
    ExecContext {
        context: String,
        #[source]
        source: selinux::errors::Error,
    },
}

type Result<T> = std::result::Result<T, SelinuxOpsError>;

fn parse_raw(what: impl Into<String>, bytes: &[u8]) -> Result<Context> {
    Context::from_kernel_bytes(bytes).map_err(|source| SelinuxOpsError::Parse {
        what: what.into(),
        raw: String::from_utf8_lossy(bytes).into_owned(),
        source,
    })
}

/// The label of `path` (symlinks followed, as QEMU opens images), None if it has none.
pub fn file_context(path: &Path) -> Result<Option<Context>> {
    let ctx =
        SecurityContext::of_path(path, true, true).map_err(|source| SelinuxOpsError::Selinux {
            what: "getfilecon_raw",
            path: path.to_path_buf(),
            source,
        })?;
    ctx.map(|c| parse_raw(format!("label of {}", path.display()), c.as_bytes()))
        .transpose()
}

pub fn set_file_context(path: &Path, context: &Context) -> Result<()> {
    let c = CString::new(context.to_string()).map_err(|e| {
        SelinuxOpsError::Io(IoError {
            what: "context with a NUL byte for",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })
    })?;
    let r = SecurityContext::from_c_str(&c, true).set_for_path(path, true, true);
    r.map_err(|source| SelinuxOpsError::Selinux {
        what: "setfilecon_raw",
        path: path.to_path_buf(),
        source,
    })
}

/// Relabel `path` to what the policy's file_contexts say (restorecon for one file).
pub fn restore_default_context(path: &Path) -> Result<()> {
    // libselinux looks the default up through matchpathcon's process-wide handle, whose lazy
    // set-up is not documented as thread-safe; concurrent runs (`parallel`) take turns here.
    static MATCHPATHCON: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = MATCHPATHCON
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    SecurityContext::set_default_for_path(path).map_err(|source| SelinuxOpsError::Selinux {
        what: "selinux_lsetfilecon_default",
        path: path.to_path_buf(),
        source,
    })
}

pub fn process_context(pid: u32) -> Result<Context> {
    let path = PathBuf::from(format!("/proc/{pid}/attr/current"));
    let pid_t = libc::pid_t::try_from(pid).map_err(|_| {
        SelinuxOpsError::Io(IoError {
            what: "pid out of range for",
            path: path.clone(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })
    })?;
    let ctx =
        SecurityContext::of_process(pid_t, true).map_err(|source| SelinuxOpsError::Selinux {
            what: "getpidcon_raw",
            path,
            source,
        })?;
    parse_raw(format!("context of pid {pid}"), ctx.as_bytes())
}

/// Sets this thread's exec context; resets it to the default when dropped. Keep it alive only
/// across the spawn: the setting is per thread and sticks to every later exec on the thread.
pub struct ExecContextGuard(());

impl ExecContextGuard {
    pub fn set(context: &Context) -> Result<Self> {
        let c = CString::new(context.to_string())?;
        SecurityContext::from_c_str(&c, true)
            .set_for_next_exec()
            .map_err(|source| SelinuxOpsError::ExecContext {
                context: context.to_string(),
                source,
            })?;
        Ok(Self(()))
    }
}

impl Drop for ExecContextGuard {
    fn drop(&mut self) {
        if let Err(e) = SecurityContext::set_default_context_for_next_exec() {
            // Leaving it set would run every later child of this thread in the probe context.
            panic!("could not reset the exec context: {e}");
        }
    }
}

/// libvirt's remembered-owner xattrs (`trusted.libvirt.security.*`) on `path`, sorted by name.
/// Reading trusted.* needs CAP_SYS_ADMIN; without it the kernel hides them and this is empty.
pub fn remembered_owner(path: &Path) -> Result<Vec<(String, String)>> {
    let names = list_xattrs(path).map_err(|source| {
        SelinuxOpsError::Io(IoError {
            what: "llistxattr",
            path: path.to_path_buf(),
            source,
        })
    })?;
    let mut out = Vec::new();
    for name in names.into_iter().filter(|n| n.starts_with(REMEMBER_PREFIX)) {
        // Listed then removed (libvirt restores the label on destroy): skip, don't fail.
        let value = get_xattr(path, &name, false).map_err(|source| {
            SelinuxOpsError::Io(IoError {
                what: "lgetxattr",
                path: path.to_path_buf(),
                source,
            })
        })?;
        if let Some(v) = value {
            let text = String::from_utf8_lossy(&v)
                .trim_end_matches('\0')
                .to_string();
            out.push((name, text));
        }
    }
    out.sort();
    Ok(out)
}

/// The label the policy's file contexts give `path` for a file of type `mode` (selabel_lookup,
/// what restorecon would set and what libvirt falls back to without a remembered owner); None
/// when no entry matches.
pub fn default_file_context(path: &Path, mode: u32) -> Result<Option<Context>> {
    use selinux::label::{back_end::File, Labeler};
    let labeler = Labeler::<File>::new(&[], true).map_err(|source| SelinuxOpsError::Selinux {
        what: "selabel_open",
        path: path.to_path_buf(),
        source,
    })?;
    let found = labeler.look_up_by_path(path, selinux::FileAccessMode::new(mode));
    match found {
        Ok(c) => parse_raw(format!("default label of {}", path.display()), c.as_bytes()).map(Some),
        Err(selinux::errors::Error::IO { source, .. })
            if source.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(None)
        }
        Err(source) => Err(SelinuxOpsError::Selinux {
            what: "selabel_lookup_raw",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether the kernel enforces (reads /sys/fs/selinux/enforce; an error if SELinux is off).
pub fn is_enforcing() -> Result<bool> {
    read_flag(Path::new(ENFORCE_PATH))
}

/// Read a selinuxfs-style flag file ("0" / "1", maybe followed by more fields or a newline).
pub fn read_flag(path: &Path) -> Result<bool> {
    let content = std::fs::read_to_string(path).map_err(|source| {
        SelinuxOpsError::Io(IoError {
            what: "read",
            path: path.to_path_buf(),
            source,
        })
    })?;
    match content.split_whitespace().next() {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        _ => Err(SelinuxOpsError::BadFlag {
            path: path.to_path_buf(),
            content,
        }),
    }
}

/// A selinuxfs transaction file (`access`, `create`, ...): write the request, read the answer
/// on the same descriptor.
pub fn transact(path: &str, request: &str) -> io::Result<String> {
    use std::io::{Read, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    f.write_all(request.as_bytes())?;
    let mut answer = String::new();
    f.read_to_string(&mut answer)?;
    Ok(answer)
}

pub fn mls_enabled() -> bool {
    matches!(
        selinux::kernel_support(),
        selinux::KernelSupport::SELinuxMLS
    )
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Read one xattr; None when the file has no such attribute (ENODATA).
/// `follow`: getxattr (follow symlinks) vs lgetxattr.
pub fn get_xattr(path: &Path, name: &str, follow: bool) -> io::Result<Option<Vec<u8>>> {
    let p = c_path(path)?;
    let n = c_name(name)?;
    // Size first, then read; retry if the value grew in between (labels can change under us).
    loop {
        // SAFETY: p and n are valid NUL-terminated strings; a null buffer with size 0 asks for the size.
        let size = unsafe {
            if follow {
                libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0)
            } else {
                libc::lgetxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0)
            }
        };
        if size < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ENODATA) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let mut buf = vec![0u8; size as usize + 1];
        // SAFETY: buf is writable for buf.len() bytes.
        let got = unsafe {
            if follow {
                libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            } else {
                libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            }
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => continue,
                Some(libc::ENODATA) => return Ok(None),
                _ => return Err(e),
            }
        }
        buf.truncate(got as usize);
        return Ok(Some(buf));
    }
}

/// Set one xattr (following symlinks).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = c_path(path)?;
    let n = c_name(name)?;
    // SAFETY: valid C strings and a value slice of the given length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Remove one xattr (following symlinks); ENODATA when there is none.
pub fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
    let p = c_path(path)?;
    let n = c_name(name)?;
    // SAFETY: valid NUL-terminated strings.
    let r = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Names of all xattrs of `path` itself (not following symlinks).
pub fn list_xattrs(path: &Path) -> io::Result<Vec<String>> {
    let p = c_path(path)?;
    loop {
        // SAFETY: null buffer with size 0 asks for the needed size.
        let size = unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; size as usize + 1];
        // SAFETY: buf is writable for buf.len() bytes.
        let got = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| OsStr::from_bytes(s).to_string_lossy().into_owned())
            .collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory on a filesystem that takes user.* xattrs (tmpfs since 6.6, ext4 always).
    fn xattr_dir() -> Option<tempfile::TempDir> {
        for base in ["/dev/shm", "/tmp", "."] {
            if let Ok(d) = tempfile::tempdir_in(base) {
                let probe = d.path().join("probe");
                if std::fs::write(&probe, b"").is_ok() && set_xattr(&probe, "user.t", b"1").is_ok()
                {
                    return Some(d);
                }
            }
        }
        None
    }

    #[test]
    fn xattr_round_trip_and_listing() {
        let dir = xattr_dir().expect("no filesystem with user xattrs here");
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(get_xattr(&f, "user.missing", true).unwrap(), None);
        set_xattr(&f, "user.label", b"system_u:object_r:etc_t:s0\0").unwrap();
        let v = get_xattr(&f, "user.label", false).unwrap().unwrap();
        assert_eq!(v, b"system_u:object_r:etc_t:s0\0");
        assert_eq!(Context::from_kernel_bytes(&v).unwrap().kind, "etc_t");
        assert!(list_xattrs(&f).unwrap().contains(&"user.label".to_string()));
    }

    #[test]
    fn missing_file_is_an_error_not_none() {
        let err = get_xattr(Path::new("/nonexistent/x"), "user.a", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn flag_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("enforce");
        std::fs::write(&p, "1").unwrap();
        assert!(read_flag(&p).unwrap());
        // /sys/fs/selinux/booleans/NAME holds "current pending".
        std::fs::write(&p, "0 1").unwrap();
        assert!(!read_flag(&p).unwrap());
        std::fs::write(&p, "x").unwrap();
        assert!(matches!(
            read_flag(&p),
            Err(SelinuxOpsError::BadFlag { .. })
        ));
    }
}
