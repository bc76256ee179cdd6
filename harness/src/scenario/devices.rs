//! Devices that make libvirt label files other than disks and chardevs: an emulated TPM (swtpm,
//! with its state directory and log under /var/lib/libvirt/swtpm and /var/log/swtpm), a
//! file-backed guest RAM (a directory under qemu.conf's `memory_backing_dir`), and persistent
//! memory devices backed by a sandbox image (nvdimm, virtio-pmem), and virtiofs exports of a
//! sandbox directory (libvirt runs virtiofsd for each).

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

/// `<memoryBacking><source type=...><access mode=...></memoryBacking>`: guest RAM in a file
/// under the guest's directory in qemu.conf's `memory_backing_dir`, or in an anonymous memfd.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryBacking {
    #[serde(default)]
    pub source: MemorySource,
    #[serde(default)]
    pub access: MemoryAccess,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    /// A file under memory_backing_dir (libvirt labels its directory).
    #[default]
    File,
    /// An anonymous memfd (no path: nothing for libvirt to label).
    Memfd,
}

impl MemorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySource::File => "file",
            MemorySource::Memfd => "memfd",
        }
    }
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

/// `<filesystem type='mount'><driver type='virtiofs'/>`: a directory of the sandbox (an image
/// with `directory: true`) shared with the guest; libvirt finds virtiofsd through QEMU's
/// vhost-user descriptors and runs it, one per export, with its socket in the runtime directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Virtiofs {
    pub dir: At<Name>,
}

/// The name of a helper's executable as the kernel keeps it (`/proc/PID/comm`): at most 15
/// characters of `[a-z0-9_-]`, e.g. virtiofsd, swtpm.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HelperName(String);

impl HelperName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for HelperName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for HelperName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 15
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if ok {
            Ok(HelperName(s.to_string()))
        } else {
            Err(format!(
                "invalid helper name {s:?}: an executable's name as /proc/PID/comm shows it, at most 15 characters of a-z, 0-9, '_', '-' (e.g. virtiofsd)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for HelperName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HelperName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HelperName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9_-]{1,15}$"
        })
    }
}
