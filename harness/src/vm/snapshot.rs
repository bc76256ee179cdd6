//! Warm snapshots: an overlay holding `savevm ready`, saved after the first cold boot reached
//! the bootstrap and restored by later starts. One per image and launch fingerprint, valid only
//! over the exact base image it was taken over.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{io_err, VmError};
use super::monitor::Monitor;
use super::qemu::LaunchSpec;

/// Name of the internal snapshot in a warm overlay.
pub(super) const SNAPSHOT: &str = "ready";

/// `<warm dir>/<accel>-<sha16 of the restore fingerprint>.qcow2`.
pub(super) fn warm_snapshot_path(
    warm_dir: &Path,
    spec: &LaunchSpec,
    qemu_version: &str,
) -> PathBuf {
    let fp = spec.restore_fingerprint(qemu_version);
    let digest = Sha256::digest(fp.as_bytes());
    let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    warm_dir.join(format!("{}-{short}.qcow2", spec.accel))
}

/// Why a warm start boots cold instead; its text is a note of the launch.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unusable {
    #[error("no warm snapshot for this image and launch configuration yet (one is saved now)")]
    Missing,
    /// The snapshot was removed.
    #[error("the warm snapshot was taken over a different base image (recorded `{recorded}`, now `{current}`); removed it")]
    OtherBase { recorded: String, current: String },
}

/// A snapshot is only as good as the exact base image it was taken over: QEMU does not
/// notice a changed backing file, and the guest then reads stale inodes.
pub(super) fn usable_snapshot(snapshot: &Path, base: &Path) -> Result<(), Unusable> {
    if !snapshot.is_file() {
        return Err(Unusable::Missing);
    }
    let recorded = fs::read_to_string(base_stamp_path(snapshot)).unwrap_or_default();
    let current = base_stamp(base).unwrap_or_default();
    if recorded.trim() != current || current.is_empty() {
        remove_snapshot(snapshot);
        return Err(Unusable::OtherBase {
            recorded: recorded.trim().to_string(),
            current,
        });
    }
    Ok(())
}

/// `stop`, `savevm`, copy the overlay (it now holds disk and memory state), `cont`.
pub(super) fn save_snapshot(
    monitor: &mut Monitor,
    disk: &Path,
    to: &Path,
    base: &Path,
) -> Result<(), VmError> {
    let qmp = |monitor: &mut Monitor, cmd: &str| -> Result<(), VmError> {
        let t = Duration::from_secs(300);
        let done = match cmd.strip_prefix("savevm ") {
            Some(_) => monitor.human(cmd, t),
            None => monitor.execute(cmd, None, t).map(drop),
        };
        done.map_err(|e| VmError::Monitor {
            command: cmd.into(),
            message: e.to_string(),
        })
    };
    qmp(monitor, "stop")?;
    let saved = save_stopped(monitor, disk, to, base, qmp);
    // Resume whatever happened: the run goes on with or without a snapshot.
    let resumed = qmp(monitor, "cont");
    saved.and(resumed)
}

fn save_stopped(
    monitor: &mut Monitor,
    disk: &Path,
    to: &Path,
    base: &Path,
    qmp: impl Fn(&mut Monitor, &str) -> Result<(), VmError>,
) -> Result<(), VmError> {
    qmp(monitor, &format!("savevm {SNAPSHOT}"))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .map_err(io_err(format!("cannot create {}", parent.display())))?;
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(format!(".tmp-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let stamp = base_stamp(base).map_err(io_err(format!("cannot stat {}", base.display())))?;
    let copied = fs::write(base_stamp_path(to), stamp)
        .and_then(|()| fs::copy(disk, &partial))
        .and_then(|_| fs::rename(&partial, to));
    if let Err(e) = copied {
        let _ = fs::remove_file(&partial);
        return Err(io_err(format!(
            "cannot store the warm snapshot {}",
            to.display()
        ))(e));
    }
    Ok(())
}

/// Identity of the base image file: device, inode, size, modification time.
fn base_stamp(base: &Path) -> io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(base)?;
    Ok(format!(
        "dev={} ino={} size={} mtime={}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

fn base_stamp_path(snapshot: &Path) -> PathBuf {
    let mut p = snapshot.as_os_str().to_owned();
    p.push(".base");
    PathBuf::from(p)
}

pub(super) fn remove_snapshot(snapshot: &Path) {
    let _ = fs::remove_file(snapshot);
    let _ = fs::remove_file(base_stamp_path(snapshot));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_usable_only_over_the_base_it_was_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("disk.raw");
        let snapshot = tmp.path().join("warm").join("tcg-0123.qcow2");
        fs::write(&base, b"base image").unwrap();
        let missing = usable_snapshot(&snapshot, &base).unwrap_err().to_string();
        assert!(missing.contains("no warm snapshot"), "{missing}");

        fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        fs::write(&snapshot, b"overlay").unwrap();
        fs::write(base_stamp_path(&snapshot), base_stamp(&base).unwrap()).unwrap();
        usable_snapshot(&snapshot, &base).unwrap();

        // The base rebuilt in place: another size (and inode, mtime) than was recorded.
        fs::remove_file(&base).unwrap();
        fs::write(&base, b"rebuilt base image").unwrap();
        let changed = usable_snapshot(&snapshot, &base).unwrap_err().to_string();
        assert!(changed.contains("different base image"), "{changed}");
        assert!(!snapshot.exists() && !base_stamp_path(&snapshot).exists());
    }

    #[test]
    fn a_snapshot_without_its_stamp_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("disk.raw");
        let snapshot = tmp.path().join("tcg-0123.qcow2");
        fs::write(&base, b"base").unwrap();
        fs::write(&snapshot, b"overlay").unwrap();
        assert!(usable_snapshot(&snapshot, &base).is_err());
        assert!(!snapshot.exists());
    }

    #[test]
    fn the_stamp_sits_beside_the_snapshot() {
        assert_eq!(
            base_stamp_path(Path::new("/c/warm/kvm-ab.qcow2")),
            Path::new("/c/warm/kvm-ab.qcow2.base")
        );
    }
}
