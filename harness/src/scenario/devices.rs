//! Devices that make libvirt label files other than disks and chardevs: an emulated TPM (swtpm,
//! with its state directory and log under /var/lib/libvirt/swtpm and /var/log/swtpm), a
//! file-backed guest RAM (a directory under qemu.conf's `memory_backing_dir`), and persistent
//! memory devices backed by a sandbox image (nvdimm, virtio-pmem).

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::{At, Name};

/// `<tpm model=...><backend type='emulator' version='2.0'/></tpm>`: libvirt runs swtpm for the
/// guest and keeps its state under /var/lib/libvirt/swtpm/UUID/.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tpm {
    #[serde(default)]
    pub model: TpmModel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TpmModel {
    /// tpm-crb
    #[default]
    Crb,
    /// tpm-tis
    Tis,
}

impl TpmModel {
    /// libvirt's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TpmModel::Crb => "tpm-crb",
            TpmModel::Tis => "tpm-tis",
        }
    }
}

/// `<memoryBacking><source type='file'/><access mode=...></memoryBacking>`: guest RAM in a file
/// under the guest's directory in qemu.conf's `memory_backing_dir`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryBacking {
    #[serde(default)]
    pub access: MemoryAccess,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryAccess {
    #[default]
    Shared,
    Private,
}

impl MemoryAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryAccess::Shared => "shared",
            MemoryAccess::Private => "private",
        }
    }
}

/// A persistent memory device (`<memory model=...>`) backed by one of the scenario's images,
/// its whole size; the domain gets the `<maxMemory>` slots and the NUMA cell it needs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pmem {
    pub image: At<Name>,
    #[serde(default)]
    pub model: PmemModel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PmemModel {
    #[default]
    Nvdimm,
    VirtioPmem,
}

impl PmemModel {
    pub fn as_str(self) -> &'static str {
        match self {
            PmemModel::Nvdimm => "nvdimm",
            PmemModel::VirtioPmem => "virtio-pmem",
        }
    }
}
