//! The payload disk: a small read-only ext4 carrying the agent binary into the guest, which
//! beats streaming megabytes through the virtio-serial port under TCG.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{io_err, VmError};
use super::qemu::PAYLOAD_CAPACITY;
use crate::error::IoError;
use crate::image::command::tail_lines;
use crate::image::tools;
use crate::image::Image;
use crate::interrupt::Interrupt;

/// An empty payload disk of the fixed size (used when the binary goes over the port).
pub(super) fn write_empty_payload(path: &Path) -> Result<(), VmError> {
    fs::File::create(path)
        .and_then(|f| f.set_len(PAYLOAD_CAPACITY))
        .map_err(io_err(format!("cannot write {}", path.display())))
}

/// Why there is no payload disk (the agent then goes over the port); its text is the
/// launch's note.
#[derive(Debug, thiserror::Error)]
pub(super) enum PayloadError {
    #[error("the image is not inside a cache directory")]
    NoCache,
    #[error("the binary is larger than {} MiB", PAYLOAD_CAPACITY >> 21)]
    TooLarge,
    #[error("mkfs.ext4 not found (apt-get install e2fsprogs)")]
    NoMkfs,
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot stage the binary: {0}")]
    Stage(std::io::Error),
    #[error("`{command}` failed ({error:?}): {log_tail}")]
    Mkfs {
        command: String,
        error: crate::image::command::RunError,
        log_tail: String,
    },
}

/// `<cache>/selinux-harness/payloads/<sha16>.ext4`: a read-only ext4 holding the binary as
/// `selinux-harness`, built once per binary. The guest mounts it and runs the agent from it,
/// which beats streaming megabytes through the virtio-serial port under TCG.
pub(super) fn payload_image(
    image: &Image,
    binary: &[u8],
    interrupt: &Interrupt,
) -> Result<PathBuf, PayloadError> {
    const KEEP: Duration = Duration::from_secs(24 * 3600);
    let root = image
        .dir
        .parent()
        .and_then(Path::parent)
        .ok_or(PayloadError::NoCache)?
        .join("payloads");
    let digest = Sha256::digest(binary);
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let path = root.join(format!("{name}.ext4"));
    if path.is_file() {
        return Ok(path);
    }
    if binary.len() as u64 > PAYLOAD_CAPACITY / 2 {
        return Err(PayloadError::TooLarge);
    }
    let mkfs = tools::which("mkfs.ext4").ok_or(PayloadError::NoMkfs)?;
    fs::create_dir_all(&root).map_err(IoError::at("cannot create", &root))?;
    // Payloads of older binaries: nobody starts them again.
    if let Ok(entries) = fs::read_dir(&root) {
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > KEEP);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let staging = tempfile::Builder::new()
        .prefix(".payload.")
        .tempdir_in(&root)
        .map_err(IoError::at("cannot create a staging dir in", &root))?;
    let content = staging.path().join("content");
    let file = content.join("selinux-harness");
    let partial = staging.path().join("payload.ext4");
    let log = staging.path().join("mkfs.log");
    fs::create_dir(&content)
        .and_then(|()| fs::write(&file, binary))
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o755))
        })
        .map_err(PayloadError::Stage)?;
    let mut cmd = Command::new(mkfs);
    cmd.args([
        "-q",
        "-F",
        "-O",
        "^has_journal",
        "-L",
        "harness-payload",
        "-d",
    ])
    .arg(&content)
    .arg(&partial)
    .arg(format!("{}M", PAYLOAD_CAPACITY >> 20));
    crate::image::command::run_logged(&mut cmd, &log, interrupt).map_err(|error| {
        PayloadError::Mkfs {
            command: crate::image::command::display(&cmd),
            error,
            log_tail: tail_lines(&log, 5),
        }
    })?;
    fs::rename(&partial, &path).map_err(IoError::at("cannot store", &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_image_holds_the_binary_and_is_reused() {
        if tools::which("mkfs.ext4").is_none() || tools::which("debugfs").is_none() {
            eprintln!("skipped: needs mkfs.ext4 and debugfs (e2fsprogs)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let image = Image {
            dir: tmp.path().join("images").join("debian-12-0123456789abcdef"),
            manifest: crate::image::Manifest {
                format: 1,
                recipe: "debian-12".into(),
                suite: "bookworm".into(),
                hash: crate::image::ImageHash("0123456789abcdef".into()),
                created_unix: 0,
                build_seconds: 0.0,
                kernel_release: String::new(),
                policy_file: String::new(),
                kernel_cmdline_extra: vec![],
            },
        };
        let binary = b"\x7fELF pretend binary".repeat(1000);
        let path = payload_image(&image, &binary, &Interrupt::new()).unwrap();
        assert_eq!(path.parent().unwrap(), tmp.path().join("payloads"));
        assert_eq!(fs::metadata(&path).unwrap().len(), PAYLOAD_CAPACITY);
        let out = Command::new(tools::which("debugfs").unwrap())
            .args(["-R", "stat /selinux-harness"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("Size: {}", binary.len())), "{text}");
        let again = payload_image(&image, &binary, &Interrupt::new()).unwrap();
        assert_eq!(again, path);
        let other = payload_image(&image, b"another", &Interrupt::new()).unwrap();
        assert_ne!(other, path);
    }
}
