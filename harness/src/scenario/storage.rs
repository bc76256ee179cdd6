//! The storage part of the scenario language: image formats and backing chains, copies of the
//! target's own boot files, and the snapshot and block-job actions that move a disk's chain.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{At, Duration, Name};

/// How an image's bytes are laid out; libvirt labels each layer of a chain by its role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// A sparse file (the default).
    #[default]
    Raw,
    /// qcow2, made with `qemu-img create` on the target; may have a `backing` image.
    Qcow2,
}

impl ImageFormat {
    /// The name libvirt's `<driver type=...>` and qemu-img's `-f` use.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

/// A file of the target an image may be a copy of (`copy_of:`). The copy is the scenario's
/// own, in its sandbox: libvirt relabels the copy, never the target's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetFile {
    /// The running kernel (/boot/vmlinuz-RELEASE), for direct kernel boot.
    Kernel,
    /// The running kernel's initramfs (/boot/initrd.img-RELEASE).
    Initrd,
    /// OVMF's variable store template (/usr/share/OVMF/OVMF_VARS_4M.fd), for an NVRAM file.
    OvmfVars,
}

/// OVMF's code and variables as Debian 12 and 13 ship them (package ovmf).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

impl TargetFile {
    /// Where the file is on the target, given the running kernel's release (`uname -r`).
    pub fn path(self, kernel_release: &str) -> std::path::PathBuf {
        match self {
            TargetFile::Kernel => format!("/boot/vmlinuz-{kernel_release}").into(),
            TargetFile::Initrd => format!("/boot/initrd.img-{kernel_release}").into(),
            TargetFile::OvmfVars => OVMF_VARS.into(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetFile::Kernel => "kernel",
            TargetFile::Initrd => "initrd",
            TargetFile::OvmfVars => "ovmf_vars",
        }
    }
}

/// `snapshot_create`: a snapshot without libvirt metadata (`VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA`:
/// libvirt forgets it at once, so nothing outlives the run outside the sandbox). External (the
/// default): one disk, disk-only, into a new overlay. Internal (`internal: true`): kept inside
/// every qcow2 disk of the domain, with the guest's memory when it runs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreate {
    pub domain: At<Name>,
    /// External only: the disk's target (vda ...).
    pub disk: Option<At<String>>,
    /// External only: the new top of the chain, an image with `create: false` (libvirt creates
    /// it, as qcow2).
    pub overlay: Option<At<Name>>,
    /// An internal snapshot (`virsh snapshot-create-as` without `--disk-only`): QEMU's `savevm`
    /// into the disks for a running guest, `qemu-img snapshot -c` on each disk for a shut-off
    /// one. Takes neither `disk` nor `overlay`.
    pub internal: Option<At<bool>>,
}

/// What a `snapshot_create` asks for, once its fields agree with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind<'a> {
    External {
        disk: &'a At<String>,
        overlay: &'a At<Name>,
    },
    Internal,
}

impl SnapshotCreate {
    pub fn is_internal(&self) -> bool {
        self.internal.as_ref().is_some_and(|i| i.value)
    }

    /// None when the fields contradict each other (validation refuses such a step).
    pub fn kind(&self) -> Option<SnapshotKind<'_>> {
        match (self.is_internal(), &self.disk, &self.overlay) {
            (true, None, None) => Some(SnapshotKind::Internal),
            (false, Some(disk), Some(overlay)) => Some(SnapshotKind::External { disk, overlay }),
            _ => None,
        }
    }
}

/// `blockcommit`: merge layers of a disk's chain down into a lower one. Without `top` it is an
/// active commit (the disk's current top is merged; the job waits for a pivot or an abort).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockCommit {
    pub domain: At<Name>,
    pub disk: At<String>,
    /// The highest layer to merge; omitted: the active layer (an active commit).
    pub top: Option<At<Name>>,
    /// The layer to merge into; omitted: the bottom of the chain.
    pub base: Option<At<Name>>,
}

/// `blockcopy`: mirror a disk to a new file; the job waits for a pivot or an abort.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockCopy {
    pub domain: At<Name>,
    pub disk: At<String>,
    /// The copy: an image with `create: false` (libvirt creates it), or an existing image of
    /// the scenario (then reused: `--reuse-external`).
    pub destination: At<Name>,
    /// The copy's format (default raw).
    #[serde(default)]
    pub format: ImageFormat,
    /// Copy only the top layer; the copy keeps the same backing chain.
    #[serde(default)]
    pub shallow: bool,
}

/// What `block_job` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobUntil {
    /// The job is in sync (libvirt reports cur == end): an active commit or a copy that can
    /// pivot.
    Ready,
    /// The job is gone: a non-active commit completes on its own.
    Gone,
}

/// How `block_job` ends a job that is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobFinish {
    /// Switch the disk to the job's result (`virsh blockjob --pivot`).
    Pivot,
    /// Cancel the job, the disk keeps its chain (`virsh blockjob --abort`).
    Abort,
}

/// `block_job`: wait on a disk's block job through libvirt's job info (polled, with a deadline),
/// then optionally pivot or abort it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockJob {
    pub domain: At<Name>,
    pub disk: At<String>,
    /// What to wait for (default: ready).
    #[serde(default = "ready")]
    pub until: At<JobUntil>,
    /// What to do once the job is ready; only with `until: ready`.
    pub finish: Option<At<JobFinish>>,
    /// How long the job may take to get there (default 30s, at most 60s).
    pub within: Option<Duration>,
}

fn ready() -> At<JobUntil> {
    At::new(JobUntil::Ready)
}

/// The default deadline of `block_job`: the scenario images are a few MiB, so a job that has
/// not got there in this time is stuck, not slow.
pub const BLOCK_JOB_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
