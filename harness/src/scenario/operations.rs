//! The scenario language for operations that make libvirt label a file other than a disk:
//! save/restore, managed save, core dumps, CD-ROM media changes, and a guest's character
//! devices. Every file such an operation writes or reads is named like an image (a `Name`,
//! so it stays a plain file name inside the run's sandbox) and can be checked with `file:`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::{At, DiskSeclabel, Name};

/// `save: {domain, to}`: virsh save. The domain stops; its state goes to a file in the sandbox.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Save {
    pub domain: At<Name>,
    /// Name of the save file in the run's sandbox (created by libvirt; `file:` can check it).
    pub to: At<Name>,
    /// virsh save --bypass-cache (O_DIRECT through libvirt's iohelper).
    #[serde(default)]
    pub bypass_cache: bool,
}

/// `restore: {domain, from}`: virsh restore. `domain` is the guest the save file holds (the
/// harness tracks it as running again).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    pub domain: At<Name>,
    /// A file an earlier `save:` wrote.
    pub from: At<Name>,
    /// virsh restore --xml: restore with the save image's own XML (virsh save-image-dumpxml)
    /// in which each image named as a key is replaced by the image it maps to.
    pub xml: Option<RestoreXml>,
    #[serde(default)]
    pub bypass_cache: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreXml {
    /// `{OLD: NEW}`: disks on image OLD are restored on image NEW (both scenario images).
    #[serde(default)]
    pub replace_images: BTreeMap<At<Name>, At<Name>>,
}

/// `managedsave: {domain, file}`: virsh managedsave. A later `start:` resumes from it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedSave {
    pub domain: At<Name>,
    /// A name for the managed save image (libvirt keeps it in its own save directory, as
    /// DOMAIN.save), so `file:` can check its label. Read only: the harness never writes there.
    pub file: Option<At<Name>>,
    #[serde(default)]
    pub bypass_cache: bool,
}

/// `dump: {domain, to}`: virsh dump. The domain keeps running.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dump {
    pub domain: At<Name>,
    /// Name of the dump file in the run's sandbox.
    pub to: At<Name>,
    /// virsh dump --memory-only (QEMU's dump-guest-memory into an fd libvirt opened).
    #[serde(default)]
    pub memory_only: bool,
}

/// `change_media: {domain, target, insert: IMAGE}` or `{domain, target, eject: true}`:
/// virsh change-media --live on a CD-ROM (`device: cdrom` disk).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeMedia {
    pub domain: At<Name>,
    /// The CD-ROM's target, e.g. hdc.
    pub target: At<String>,
    /// The image to put in the drive (a raw file works as media: QEMU does not look inside).
    pub insert: Option<At<Name>>,
    /// Empty the drive.
    #[serde(default)]
    pub eject: bool,
}

/// What kind of device a disk is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskDevice {
    #[default]
    Disk,
    /// A read-only IDE CD-ROM (target hdX); its media can be changed with `change_media`.
    Cdrom,
}

/// Which guest device a character device is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChardevKind {
    /// An ISA serial port (`<serial>`).
    #[default]
    Serial,
    /// A virtio console (`<console>` with a virtio target).
    Console,
}

/// A character device's host side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChardevBackend {
    /// Output appended to a file (`path`), through virtlogd or QEMU as qemu.conf's
    /// stdio_handler says.
    File,
    /// A UNIX socket (`path`); `mode: bind` (QEMU listens) or `connect` (the harness listens).
    Unix,
    /// Two FIFOs `path.in` and `path.out`, made by the harness.
    Pipe,
    /// A pseudo-terminal libvirt allocates (no path).
    Pty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnixMode {
    Bind,
    Connect,
}

/// `serials: [{type: file, path: NAME}]`: one character device of a domain. Paths are names in
/// the run's sandbox, never host paths.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Chardev {
    #[serde(rename = "type")]
    pub backend: At<ChardevBackend>,
    #[serde(default)]
    pub device: ChardevKind,
    /// A name in the sandbox: an image (the file exists before the guest starts) or a new
    /// name. For a pipe the harness makes `NAME.in` and `NAME.out`.
    pub path: Option<At<Name>>,
    /// For `type: unix`.
    pub mode: Option<UnixMode>,
    /// The per-source `<seclabel>` inside `<source>`.
    pub seclabel: Option<DiskSeclabel>,
}

impl Chardev {
    /// The sandbox names the device uses, which `file:` may check.
    pub fn files(&self) -> Vec<Name> {
        let Some(p) = &self.path else {
            return Vec::new();
        };
        match self.backend.value {
            ChardevBackend::Pipe => [".in", ".out"]
                .iter()
                .filter_map(|s| format!("{}{s}", p.value).parse().ok())
                .collect(),
            _ => vec![p.value.clone()],
        }
    }
}
