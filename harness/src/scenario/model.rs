//! The scenario language: what a YAML file may say. Every struct denies unknown keys, so a typo
//! is an error with a location, never a silently ignored line.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::device_label::DeviceLabel;
use super::files::*;
use super::restart_daemon::RestartDaemon;
use super::settle::Settle;
use super::value_error::ValueError;
use crate::context::{Context, Level, MlsRange};

use super::operations::{ChangeMedia, Chardev, DiskDevice, Dump, ManagedSave, Restore, Save};
use super::roles::Role;
pub use super::storage::*;

/// A value with the place in the file it came from, for errors found after parsing
/// (dangling references, duplicate targets). Wraps serde-saphyr's `Spanned` so the JSON Schema
/// can describe the inner value as if the wrapper were not there.
#[derive(Debug, Clone)]
pub struct At<T> {
    pub value: T,
    pub line: usize,
    pub column: usize,
}

impl<T> At<T> {
    pub fn new(value: T) -> Self {
        Self {
            value,
            line: 0,
            column: 0,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(At {
            value: s.value,
            line: s.referenced.line() as usize,
            column: s.referenced.column() as usize,
        })
    }
}

impl<T: JsonSchema> JsonSchema for At<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(g)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

// Equality and order are the value's: the same name at two places is the same name (so
// duplicate map keys are found, and maps sort by name).
impl<T: PartialEq> PartialEq for At<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for At<T> {}
impl<T: PartialOrd> PartialOrd for At<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl<T: Ord> Ord for At<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<T: fmt::Display> fmt::Display for At<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// A name the scenario gives to a domain, an image, a capture or a variant.
/// Kept to a safe alphabet: names end up in file names and libvirt domain names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Name(String);

impl JsonSchema for Name {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,39}$"
        })
    }
}

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let ok = s.len() <= 40
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && !s.contains("..");
        if ok {
            Ok(Name(s.to_string()))
        } else {
            Err(ValueError::Name(s.to_string()))
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name; trials and reports are named after it.
    pub name: At<Name>,
    /// What the scenario shows, in a sentence or two.
    pub description: String,
    /// Bug reports, mailing-list threads, commits this scenario reproduces or guards.
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the target must offer; a target without it skips the scenario and says why.
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// Disk images created in the run's sandbox (under the libvirt images directory).
    #[serde(default)]
    pub images: BTreeMap<Name, At<Image>>,
    /// libvirt guests, defined from XML the harness generates.
    #[serde(default)]
    pub domains: BTreeMap<Name, Domain>,
    /// Host settings for every variant of the run; put back afterwards.
    #[serde(default)]
    pub host: HostSettings,
    /// Named variants: the scenario runs once per variant, each with its own host settings.
    #[serde(default)]
    pub variants: BTreeMap<Name, HostSettings>,
    /// AVC records to ignore on top of the built-in noise filter.
    #[serde(default)]
    pub ignore_avc: Vec<At<AvcMatch>>,
    /// Targets the scenario does not apply to, each with the reason. Its conformance trials
    /// there are not run and say why; anything else that keeps a trial from running fails it.
    #[serde(default)]
    pub not_applicable: Vec<NotApplicable>,
    pub steps: Vec<Step>,
    /// Variants as a cross product: a list of axes, each a map from a value's name to the host
    /// settings it makes. Every combination, one value per axis, becomes a variant named by
    /// its values joined with `-` (`dc0-rc1`), with the settings of all its values; a `when:
    /// {variant: [dc0]}` naming one value means every variant that has it.
    #[serde(default)]
    pub matrix: Vec<At<BTreeMap<At<Name>, HostSettings>>>,
    /// Variant name -> the axis values it was made of, filled in from `matrix` when the file
    /// loads (empty for variants written under `variants:`).
    #[serde(skip)]
    #[schemars(skip)]
    pub matrix_cells: BTreeMap<Name, Vec<Name>>,
}

/// A target kind a scenario is not meant for.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotApplicable {
    pub target: TargetName,
    /// Shown in place of a verdict.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetName {
    /// The embedded VM.
    Vm,
    /// The host the harness runs on.
    Local,
}

/// What a target must offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Requirement {
    /// SELinux enforcing (always required for a verdict; listing it documents intent).
    Enforcing,
    /// An MLS/MCS policy.
    Mcs,
    /// A running libvirtd with the QEMU driver.
    Libvirt,
    /// The harness's probe module (policy-modules/harness-probe.cil): lets a probe enter svirt_t.
    ProbeModule,
}

// Parsed here rather than with bytesize: scenario sizes go to qemu-img and libvirt, where
// K, M and G are powers of 1024, while bytesize reads "16M" as 16 000 000 bytes.
/// A size such as 16M, 1G or 4096 (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (digits, mult) = match s.as_bytes().last() {
            Some(b'K') => (&s[..s.len() - 1], 1 << 10),
            Some(b'M') => (&s[..s.len() - 1], 1 << 20),
            Some(b'G') => (&s[..s.len() - 1], 1 << 30),
            _ => (s.as_str(), 1),
        };
        let n: u64 = digits.parse().map_err(|_| {
            serde::de::Error::custom(format!("invalid size {s:?}: write e.g. 16M, 1G or 4096"))
        })?;
        let bytes = n
            .checked_mul(mult)
            .filter(|b| *b <= 4 << 30)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "size {s:?} is over the 4G a scenario image may have"
                ))
            })?;
        Ok(Size(bytes))
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Required for a file the harness creates (raw, or qcow2 without `backing`).
    pub size: Option<Size>,
    /// Label to give the file after creating it (default: what the policy gives new files there).
    pub context: Option<Context>,
    /// raw (default) or qcow2.
    #[serde(default)]
    pub format: ImageFormat,
    /// qcow2 only: the scenario image this one is an overlay of (its backing file).
    pub backing: Option<At<Name>>,
    /// A copy of one of the target's files (kernel, initrd, ovmf_vars) instead of a new file.
    pub copy_of: Option<TargetFile>,
    /// `false`: the harness does not create the file, a step does (a snapshot's overlay, a
    /// block copy's destination); it can still be expected and watched by name.
    #[serde(default = "yes")]
    pub create: bool,
    /// `true`: an empty directory in the sandbox (mode 0755) instead of a file, e.g. a virtiofs
    /// export; it takes no `size`, `format`, `backing` or `copy_of`.
    #[serde(default)]
    pub directory: bool,
    /// A `directory: true` image of the scenario this file is made in (one level only).
    #[serde(rename = "in")]
    pub within: Option<At<Name>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelType {
    Dynamic,
    Static,
    None,
}

/// A domain's `<seclabel>`; fields map one to one onto libvirt's XML.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Seclabel {
    #[serde(rename = "type")]
    pub kind: LabelType,
    /// Security driver model; libvirt's default for SELinux hosts is "selinux".
    pub model: Option<String>,
    /// Whether libvirt relabels the domain's resources (default: libvirt decides).
    pub relabel: Option<bool>,
    pub label: Option<Context>,
    pub imagelabel: Option<Context>,
    pub baselabel: Option<Context>,
}

/// A per-disk `<seclabel>` inside `<source>`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskSeclabel {
    pub model: Option<String>,
    pub relabel: Option<bool>,
    /// A context for model selinux (the default), `user:group` for model dac.
    pub label: Option<At<DeviceLabel>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// One of the scenario's images.
    pub image: At<Name>,
    /// Guest device name; vda for the first disk, vdb for the next ...
    pub target: Option<At<String>>,
    #[serde(default)]
    pub shareable: bool,
    #[serde(default)]
    pub readonly: bool,
    pub seclabel: Option<DiskSeclabel>,
    /// `cdrom`: a read-only IDE CD-ROM (target hdX) whose media `change_media` can change.
    #[serde(default)]
    pub device: DiskDevice,
}

/// A disk may be given as just an image name.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DiskSpec {
    Image(At<Name>),
    Full(Disk),
}

impl At<DiskSpec> {
    /// The full form; a bare image name takes the place where it stands.
    pub fn to_disk(&self) -> Disk {
        match &self.value {
            DiskSpec::Image(name) => Disk {
                image: At {
                    value: name.value.clone(),
                    line: self.line,
                    column: self.column,
                },
                target: None,
                shareable: false,
                readonly: false,
                seclabel: None,
                device: DiskDevice::Disk,
            },
            DiskSpec::Full(d) => d.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// Omitted: no `<seclabel>` element, libvirt applies the host default (dynamic).
    pub seclabel: Option<At<Seclabel>>,
    #[serde(default)]
    pub disks: Vec<At<DiskSpec>>,
    /// Guest memory; the guests never boot an OS, so the default 64 MiB is plenty.
    pub memory_mib: Option<u32>,
    /// Further `<seclabel>` elements after `seclabel`, one per security model (a DAC label
    /// beside the SELinux one), their labels written as given (see `RawSeclabel`).
    #[serde(default)]
    pub seclabels: Vec<At<RawSeclabel>>,
    /// Character devices (serial ports, consoles) with their host side in the sandbox.
    #[serde(default)]
    pub serials: Vec<At<Chardev>>,
    /// Direct kernel boot: an image (usually `copy_of: kernel`) given as `<os><kernel>`.
    pub kernel: Option<At<Name>>,
    /// The initramfs for `kernel` (`<os><initrd>`).
    pub initrd: Option<At<Name>>,
    /// UEFI: OVMF as a read-only pflash loader, with this image (usually `copy_of: ovmf_vars`)
    /// as the NVRAM file.
    pub nvram: Option<At<Name>>,
    /// An ACPI SLIC table QEMU reads from this image (`<os><acpi><table type='slic'>`), the one
    /// table type libvirt accepts on x86.
    pub acpi_slic: Option<At<Name>>,
    /// Files QEMU hands the guest through fw_cfg (`<sysinfo type='fwcfg'>`), by entry name:
    /// `opt/...`, as QEMU requires, at most 55 characters.
    #[serde(default)]
    pub fw_cfg: BTreeMap<At<String>, At<Name>>,
    /// An emulated TPM run by swtpm (`tpm: {}` for a tpm-crb).
    pub tpm: Option<At<super::devices::Tpm>>,
    /// File-backed guest RAM (`memory_backing: {}` for shared access).
    pub memory_backing: Option<At<super::devices::MemoryBacking>>,
    /// Persistent memory devices backed by images (nvdimm, virtio-pmem).
    #[serde(default)]
    pub pmem: Vec<At<super::devices::Pmem>>,
    /// Directories of the sandbox shared with the guest through virtiofs (libvirt runs
    /// virtiofsd for each); the domain needs shared `memory_backing`.
    #[serde(default)]
    pub virtiofs: Vec<At<super::devices::Virtiofs>>,
}

/// A `<seclabel>` whose labels are text for libvirt to parse, not contexts the harness checks:
/// a DAC `user:group`, or an SELinux label libvirt must reject or repair (`xxxxxx`,
/// `system_u:system_r:svirt_t:xxxxxx`). The model must be named, as libvirt requires once a
/// domain has more than one seclabel.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeclabel {
    #[serde(rename = "type")]
    pub kind: LabelType,
    /// selinux, dac or none.
    pub model: At<String>,
    pub relabel: Option<bool>,
    pub label: Option<At<String>>,
    pub imagelabel: Option<At<String>>,
    pub baselabel: Option<At<String>>,
}

/// Changes to the host for the duration of a run; every one is put back afterwards.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// Keys for /etc/libvirt/qemu.conf (e.g. remember_owner: 0); libvirtd is restarted.
    #[serde(default)]
    pub qemu_conf: BTreeMap<At<String>, QemuConfValue>,
    /// SELinux booleans, set for the run (not persistently).
    #[serde(default)]
    pub booleans: BTreeMap<At<String>, bool>,
    /// Policy modules under test (NAME.cil, NAME.te, NAME.pp, optionally .bz2-compressed),
    /// relative to the scenario's folder or to the repository's policy-modules/. Installed at
    /// priority 400 (a module named like an installed one overrides it) once for every run
    /// that brings the same policy, removed afterwards. A .te is built in the target with its
    /// own checkmodule.
    #[serde(default)]
    pub modules: Vec<At<ModuleSpec>>,
    /// Domain types made permissive for the run (a generated `typepermissive` module). A run
    /// whose domains are permissive is never a pass.
    #[serde(default)]
    pub permissive: Vec<At<String>>,
}

/// A policy module under test: a file name, or `{file: ..., distro: [debian-12]}` for a module
/// built for some distributions only (a module that overrides one of the distribution's own
/// is tied to that distribution's policy); on other targets it is left out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ModuleSpec {
    File(String),
    Full(ModuleEntry),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleEntry {
    /// Relative to the scenario's folder or policy-modules/ (subfolders allowed, no `..`).
    pub file: String,
    /// Distributions the module is for (e.g. debian-12); empty: every one.
    #[serde(default)]
    pub distro: Vec<String>,
}

impl ModuleSpec {
    pub fn file(&self) -> &str {
        match self {
            ModuleSpec::File(f) => f,
            ModuleSpec::Full(e) => &e.file,
        }
    }

    pub fn distro(&self) -> &[String] {
        match self {
            ModuleSpec::File(_) => &[],
            ModuleSpec::Full(e) => &e.distro,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum QemuConfValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for QemuConfValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QemuConfValue::Int(i) => write!(f, "{i}"),
            QemuConfValue::Bool(b) => write!(f, "{}", u8::from(*b)),
            QemuConfValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// One domain (`start: vm1`) or several (`start: [vm1, vm2]`).
#[derive(Debug, Clone)]
pub struct Targets(pub Vec<At<Name>>);

impl Targets {
    pub fn names(&self) -> Vec<&At<Name>> {
        self.0.iter().collect()
    }
}

// An untagged enum would buffer the value and lose the names' locations; a visitor that reads
// the sequence element by element keeps them (a lone name takes the key's place, see Step).
impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Targets;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a domain name or a list of domain names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Targets, E> {
                Ok(Targets(vec![At::new(v.parse().map_err(E::custom)?)]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Targets, A::Error> {
                let mut v = Vec::new();
                while let Some(n) = seq.next_element()? {
                    v.push(n);
                }
                if v.is_empty() {
                    return Err(serde::de::Error::custom("an empty list of domains"));
                }
                Ok(Targets(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Targets {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Targets".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let name = g.subschema_for::<Name>();
        schemars::json_schema!({
            "description": "a domain name or a list of them",
            "anyOf": [name, {"type": "array", "items": name, "minItems": 1}]
        })
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachDisk {
    pub domain: At<Name>,
    pub image: At<Name>,
    pub target: At<String>,
    #[serde(default)]
    pub shareable: bool,
    #[serde(default)]
    pub readonly: bool,
    pub seclabel: Option<DiskSeclabel>,
    /// Add the disk to the persistent definition only (virsh attach-device --config), as to a
    /// shut-off guest: nothing is labelled until the guest starts. Default: the running guest
    /// (--live), which labels at once.
    #[serde(default)]
    pub config: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetachDisk {
    pub domain: At<Name>,
    pub target: At<String>,
    /// Live detach needs a guest OS to acknowledge the unplug; the harness's guests have none,
    /// so the default is to detach from the persistent config of a shut-off domain.
    #[serde(default)]
    pub live: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Relabel {
    pub image: At<Name>,
    pub context: Context,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
    Getattr,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Context the probe process runs in, e.g. unconfined_u:unconfined_r:svirt_t:s0:c3,c4.
    pub context: Context,
    pub image: At<Name>,
    pub access: Access,
}

/// What a step does. Exactly one per step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// virsh define
    Define(Targets),
    /// virsh start (defines first when the domain is not defined yet)
    Start(Targets),
    /// virsh attach-device with a disk: --live, or --config with `config: true`
    AttachDisk(AttachDisk),
    /// virsh detach-device
    DetachDisk(DetachDisk),
    /// virsh reset: the firmware rereads its disk, so the QEMU process touches its image again
    Reset(Targets),
    /// virsh destroy
    Destroy(Targets),
    /// virsh undefine
    Undefine(Targets),
    /// chcon on one of the scenario's images
    Relabel(Relabel),
    /// open an image from a process running in a given context
    Probe(Probe),
    /// setfattr -n trusted.libvirt.security.NAME -v VALUE on one of the scenario's images
    Setxattr(SetXattr),
    /// setfattr -x trusted.libvirt.security.NAME on one of the scenario's images
    Rmxattr(RmXattr),
    /// restart the libvirt daemon serving qemu:///system and wait until it answers; with
    /// `qemu_conf:`, under those keys for this step only (the daemon may refuse to load them)
    RestartDaemon(RestartDaemon),
    /// virsh save DOMAIN FILE
    Save(Save),
    /// virsh restore FILE
    Restore(Restore),
    /// virsh managedsave DOMAIN (a later `start` resumes from it)
    Managedsave(ManagedSave),
    /// virsh dump DOMAIN FILE
    Dump(Dump),
    /// virsh change-media DOMAIN TARGET --insert FILE | --eject
    ChangeMedia(ChangeMedia),
    /// virsh snapshot-create-as --disk-only --no-metadata: an external snapshot of one disk
    SnapshotCreate(SnapshotCreate),
    /// virsh blockcommit: merge layers of a disk's backing chain (starts a block job)
    Blockcommit(BlockCommit),
    /// virsh blockcopy --transient-job: mirror a disk to a new file (starts a block job)
    Blockcopy(BlockCopy),
    /// virsh blockjob: wait for a disk's block job, then pivot or abort it
    BlockJob(BlockJob),
}

/// A step as written: one action key (`start: vm1`) plus the step's options.
#[derive(Debug, Clone)]
pub struct Step {
    pub action: Action,
    /// Where the action key stands, for errors about the step as a whole.
    pub line: usize,
    pub column: usize,
    pub options: StepOptions,
}

/// Everything a step may say besides its action.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepOptions {
    /// Shown in reports; default: generated from the action.
    pub title: Option<String>,
    /// Remember each named domain's live seclabel after the step: `capture: {vm1: vm1}` makes
    /// `$vm1` (its label), `$vm1.imagelabel` and the level of either usable in later expectations.
    #[serde(default)]
    pub capture: BTreeMap<Name, At<Name>>,
    /// Images whose label changes are recorded while the step runs (a label timeline).
    #[serde(default)]
    pub watch: Vec<At<Name>>,
    /// How long to keep watching after the action returns, for effects that come later (the
    /// QEMU process touching its disk after a reset): until a condition is met (`{until:
    /// disk_read, image: vm1.img, deadline: 8s}`) or a fixed window (`2s`). See `Settle`.
    pub settle: Option<Settle>,
    #[serde(default)]
    pub expect: Expect,
    /// Known bugs: expectations of this step that fail on some platform or variant.
    #[serde(default)]
    pub known_bug: Vec<At<KnownBug>>,
    /// Mutants of this step (`selinux-harness mutants`) that may survive, each with the reason
    /// the scenario cannot tell them from itself.
    #[serde(default)]
    pub mutants_survive: Vec<At<Survivor>>,
    /// Run this step only where this holds (variants, distros, libvirt versions); elsewhere
    /// it is left out with a note. For outcomes that differ per variant or per libvirt.
    pub when: Option<At<Platform>>,
    /// Remember images' labels right before the step's action: `before: {orig: vm1.img}`
    /// makes `$orig` (that label) usable from this step on, so "restored to exactly what it
    /// had" needs no literal.
    #[serde(default)]
    pub before: BTreeMap<Name, At<Name>>,
}

/// A mutant a step lets survive: its name as `selinux-harness mutants` prints it
/// (`file.vm1.img/type`) and why no run can kill it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Survivor {
    pub mutant: At<String>,
    pub reason: String,
}

const ACTIONS: &[&str] = &[
    "define",
    "start",
    "attach_disk",
    "detach_disk",
    "reset",
    "destroy",
    "undefine",
    "relabel",
    "probe",
    "setxattr",
    "rmxattr",
    "restart_daemon",
    "save",
    "restore",
    "managedsave",
    "dump",
    "change_media",
    "snapshot_create",
    "blockcommit",
    "blockcopy",
    "block_job",
];
const STEP_OPTIONS: &[&str] = &[
    "title",
    "capture",
    "watch",
    "settle",
    "expect",
    "known_bug",
    "mutants_survive",
    "when",
    "before",
];

// serde's `flatten` would buffer the step into an untyped map, which loses both
// `deny_unknown_fields` and the source locations the error messages need; so a step is read
// key by key from the YAML deserializer itself.
impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> serde::de::Visitor<'de> for StepVisitor {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a step: a mapping with one action ({})",
                    ACTIONS.join(", ")
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                use serde::de::Error;
                let mut action: Option<(Action, usize, usize)> = None;
                let mut o = StepOptions::default();
                while let Some(key) = map.next_key::<At<String>>()? {
                    let (line, column) = (key.line, key.column);
                    match key.value.as_str() {
                        "title" => o.title = Some(map.next_value()?),
                        "capture" => o.capture = map.next_value()?,
                        "watch" => o.watch = map.next_value()?,
                        "settle" => o.settle = Some(map.next_value()?),
                        "expect" => o.expect = map.next_value()?,
                        "known_bug" => o.known_bug = map.next_value()?,
                        "mutants_survive" => o.mutants_survive = map.next_value()?,
                        "when" => o.when = Some(map.next_value()?),
                        "before" => o.before = map.next_value()?,
                        k if ACTIONS.contains(&k) => {
                            if let Some((prev, ..)) = &action {
                                return Err(Error::custom(format!(
                                    "a step has exactly one action, this one has `{}` and `{k}`: split it into two steps",
                                    prev.keyword()
                                )));
                            }
                            let a = match k {
                                "define" => Action::Define(targets(map.next_value()?)),
                                "start" => Action::Start(targets(map.next_value()?)),
                                "attach_disk" => Action::AttachDisk(map.next_value()?),
                                "detach_disk" => Action::DetachDisk(map.next_value()?),
                                "reset" => Action::Reset(targets(map.next_value()?)),
                                "destroy" => Action::Destroy(targets(map.next_value()?)),
                                "undefine" => Action::Undefine(targets(map.next_value()?)),
                                "relabel" => Action::Relabel(map.next_value()?),
                                "setxattr" => Action::Setxattr(map.next_value()?),
                                "rmxattr" => Action::Rmxattr(map.next_value()?),
                                "restart_daemon" => Action::RestartDaemon(map.next_value()?),
                                "save" => Action::Save(map.next_value()?),
                                "restore" => Action::Restore(map.next_value()?),
                                "managedsave" => Action::Managedsave(map.next_value()?),
                                "dump" => Action::Dump(map.next_value()?),
                                "change_media" => Action::ChangeMedia(map.next_value()?),
                                "snapshot_create" => Action::SnapshotCreate(map.next_value()?),
                                "blockcommit" => Action::Blockcommit(map.next_value()?),
                                "blockcopy" => Action::Blockcopy(map.next_value()?),
                                "block_job" => Action::BlockJob(map.next_value()?),
                                _ => Action::Probe(map.next_value()?),
                            };
                            action = Some((a, line, column));
                        }
                        other => {
                            return Err(Error::custom(format!(
                                "unknown key `{other}` in step: expected an action ({}) or one of {}",
                                ACTIONS.join(", "),
                                STEP_OPTIONS.join(", ")
                            )));
                        }
                    }
                }
                let (action, line, column) = action.ok_or_else(|| {
                    Error::custom(format!(
                        "this step has no action: add one of {}",
                        ACTIONS.join(", ")
                    ))
                })?;
                Ok(Step {
                    action,
                    line,
                    column,
                    options: o,
                })
            }
        }
        d.deserialize_map(StepVisitor)
    }
}

/// A lone name has no location of its own (see Targets); it stands where its value does.
fn targets(at: At<Targets>) -> Targets {
    let mut t = at.value;
    for n in &mut t.0 {
        if n.line == 0 {
            n.line = at.line;
            n.column = at.column;
        }
    }
    t
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let targets = g.subschema_for::<Targets>();
        let mut properties = serde_json::json!({
            "define": targets, "start": targets, "reset": targets,
            "destroy": targets, "undefine": targets,
            "attach_disk": g.subschema_for::<AttachDisk>(),
            "detach_disk": g.subschema_for::<DetachDisk>(),
            "relabel": g.subschema_for::<Relabel>(),
            "probe": g.subschema_for::<Probe>(),
            "snapshot_create": g.subschema_for::<SnapshotCreate>(),
            "blockcommit": g.subschema_for::<BlockCommit>(),
            "blockcopy": g.subschema_for::<BlockCopy>(),
            "block_job": g.subschema_for::<BlockJob>(),
            "title": g.subschema_for::<Option<String>>(),
            "capture": g.subschema_for::<BTreeMap<Name, Name>>(),
            "watch": g.subschema_for::<Vec<Name>>(),
            "settle": g.subschema_for::<Option<Settle>>(),
            "expect": g.subschema_for::<Expect>(),
            "known_bug": g.subschema_for::<Vec<KnownBug>>(),
            "mutants_survive": g.subschema_for::<Vec<Survivor>>(),
            "setxattr": g.subschema_for::<SetXattr>(),
            "rmxattr": g.subschema_for::<RmXattr>(),
            "restart_daemon": g.subschema_for::<RestartDaemon>(),
            "before": g.subschema_for::<BTreeMap<Name, Name>>(),
            "save": g.subschema_for::<Save>(),
            "restore": g.subschema_for::<Restore>(),
            "managedsave": g.subschema_for::<ManagedSave>(),
            "dump": g.subschema_for::<Dump>(),
            "change_media": g.subschema_for::<ChangeMedia>(),
        });
        let one_of: Vec<_> = ACTIONS
            .iter()
            .map(|a| serde_json::json!({ "required": [a] }))
            .collect();
        if let Some(p) = properties.as_object_mut() {
            p.retain(|_, v| !v.is_null());
        }
        schemars::json_schema!({
            "description": "One action (define, start, attach_disk, ...) and the step's options",
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
            "oneOf": one_of
        })
    }
}

impl Action {
    /// The YAML key of the action.
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::Define(_) => "define",
            Action::Start(_) => "start",
            Action::AttachDisk(_) => "attach_disk",
            Action::DetachDisk(_) => "detach_disk",
            Action::Reset(_) => "reset",
            Action::Destroy(_) => "destroy",
            Action::Undefine(_) => "undefine",
            Action::Relabel(_) => "relabel",
            Action::Probe(_) => "probe",
            Action::Setxattr(_) => "setxattr",
            Action::Rmxattr(_) => "rmxattr",
            Action::RestartDaemon(_) => "restart_daemon",
            Action::Save(_) => "save",
            Action::Restore(_) => "restore",
            Action::Managedsave(_) => "managedsave",
            Action::Dump(_) => "dump",
            Action::ChangeMedia(_) => "change_media",
            Action::SnapshotCreate(_) => "snapshot_create",
            Action::Blockcommit(_) => "blockcommit",
            Action::Blockcopy(_) => "blockcopy",
            Action::BlockJob(_) => "block_job",
        }
    }
}

/// A duration such as 500ms, 2s, 1m 30s (humantime's syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct Duration(pub std::time::Duration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let parsed = humantime::parse_duration(&s).ok();
        match parsed {
            Some(d) if d <= std::time::Duration::from_secs(60) => Ok(Duration(d)),
            Some(_) => Err(serde::de::Error::custom(format!(
                "duration {s:?} is over the 60s a step may settle"
            ))),
            None => Err(serde::de::Error::custom(format!(
                "invalid duration {s:?}: write e.g. 500ms, 3s or 1m 30s"
            ))),
        }
    }
}

/// A reference to something captured earlier: `$vm1` (the domain label), `$vm1.label`,
/// `$vm1.imagelabel`, `$vm1.type` / `$vm1.imagelabel.type` (only the type, for `type:`); or to
/// one of the policy's roles for libvirt, `$domain`, `$image`, `$content` (see [`Role`]), which
/// the run resolves from the target's policy before its first step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureRef {
    pub name: Name,
    pub imagelabel: bool,
    /// `.type`: the label's type only.
    pub of_type: bool,
}

impl CaptureRef {
    /// The policy role this reference names (`$domain`, `$image`, `$content`), if it is one.
    pub fn role(&self) -> Option<Role> {
        Role::from_name(self.name.as_str())
    }
}

impl fmt::Display for CaptureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.name)?;
        if self.imagelabel {
            f.write_str(".imagelabel")?;
        }
        if self.of_type {
            f.write_str(".type")?;
        }
        Ok(())
    }
}

impl FromStr for CaptureRef {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let body = s.strip_prefix('$').ok_or(ValueError::NoDollar)?;
        let (body, of_type) = match body.strip_suffix(".type") {
            Some(b) => (b, true),
            None => (body, false),
        };
        let (name, field) = match body.split_once('.') {
            Some((n, f)) => (n, Some(f)),
            None => (body, None),
        };
        let imagelabel = match field {
            None | Some("label") => false,
            Some("imagelabel") => true,
            Some(other) => {
                return Err(ValueError::CaptureField {
                    field: other.to_string(),
                    text: s.to_string(),
                })
            }
        };
        let r = CaptureRef {
            name: name.parse()?,
            imagelabel,
            of_type,
        };
        if r.role().is_some() && (imagelabel || of_type) {
            return Err(ValueError::RoleField {
                text: s.to_string(),
                name: name.to_string(),
            });
        }
        Ok(r)
    }
}

/// Either a literal value or a reference to a capture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Valued<T> {
    Literal(T),
    Capture(CaptureRef),
}

impl<T: fmt::Display> fmt::Display for Valued<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Valued::Literal(v) => v.fmt(f),
            Valued::Capture(c) => c.fmt(f),
        }
    }
}

impl<'de, T: FromStr> Deserialize<'de> for Valued<T>
where
    T::Err: fmt::Display,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.starts_with('$') {
            s.parse()
                .map(Valued::Capture)
                .map_err(serde::de::Error::custom)
        } else {
            s.parse()
                .map(Valued::Literal)
                .map_err(serde::de::Error::custom)
        }
    }
}

impl<T> JsonSchema for Valued<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValueOrCapture".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "a literal value, or $NAME / $NAME.imagelabel to use a captured domain label"
        })
    }
}

/// What a context must look like. Every field given must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextMatch {
    /// The whole context.
    pub context: Option<At<Valued<Context>>>,
    pub user: Option<String>,
    pub role: Option<String>,
    /// A type name, a policy role (`$domain`, `$image`, `$content`: the types libvirt uses on
    /// this target) or a captured label's type (`$vm1.type`, `$vm1.imagelabel.type`).
    #[serde(rename = "type")]
    pub kind: Option<At<Valued<String>>>,
    /// The whole MLS range, e.g. s0:c1,c2, s0-s0:c0.c1023, or $vm1 for the captured domain's.
    /// `s0:c1,c2` does not match `s0:c1,c2-s0:c0.c1023`: say `low:` to compare the low level only.
    pub level: Option<At<Valued<MlsRange>>>,
    /// The whole range must differ from this one.
    pub not_level: Option<At<Valued<MlsRange>>>,
    /// The low level of the range only (what MCS constraints compare for files).
    pub low: Option<At<Valued<Level>>>,
    /// The high level (clearance) of the range only.
    pub high: Option<At<Valued<Level>>>,
}

impl ContextMatch {
    /// Whether the match says nothing (and so matches any context).
    pub fn is_empty(&self) -> bool {
        self.context.is_none()
            && self.user.is_none()
            && self.role.is_none()
            && self.kind.is_none()
            && self.level.is_none()
            && self.not_level.is_none()
            && self.low.is_none()
            && self.high.is_none()
    }
}

/// What a watched file's label may do during the step.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineMatch {
    /// The file never carried this MLS range, not even for a moment.
    pub never_level: Option<At<Valued<MlsRange>>>,
    /// The file carried this MLS range at some moment.
    pub saw_level: Option<At<Valued<MlsRange>>>,
    /// The label never changed during the step.
    pub unchanged: Option<bool>,
}

/// A pattern for one AVC record; every field given must match.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvcMatch {
    /// In `avc:` and `no_avc`: the record denies at least these permissions. In
    /// `ignore_avc` (as in the noise rules): every permission the record denies is among these.
    #[serde(default)]
    pub perms: Vec<String>,
    pub scontext: Option<ContextMatch>,
    pub tcontext: Option<ContextMatch>,
    pub tclass: Option<String>,
    pub comm: Option<String>,
}

impl AvcMatch {
    /// Whether the pattern says nothing (and so matches every denial).
    pub fn is_empty(&self) -> bool {
        self.perms.is_empty()
            && self.scontext.is_none()
            && self.tcontext.is_none()
            && self.tclass.is_none()
            && self.comm.is_none()
    }
}

/// `avc: none` or a list of denials that must all be seen.
#[derive(Debug, Clone)]
pub enum AvcExpect {
    None,
    Denials(Vec<At<AvcMatch>>),
}

// Read element by element (not as an untagged enum, which buffers the value): each pattern
// keeps its place in the file, and a wrong value gets a message an author can act on.
impl<'de> Deserialize<'de> for AvcExpect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AvcExpect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`none` or a list of AVC patterns")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AvcExpect, E> {
                match v {
                    "none" => Ok(AvcExpect::None),
                    other => Err(E::custom(format!(
                        "`avc: {other}`: write `avc: none`, or a list of denials such as `avc: [{{perms: [read], scontext: {{type: svirt_t}}}}]`"
                    ))),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AvcExpect, A::Error> {
                let mut v = Vec::new();
                while let Some(m) = seq.next_element()? {
                    v.push(m);
                }
                if v.is_empty() {
                    return Err(serde::de::Error::custom(
                        "`avc: []` expects nothing: write `avc: none` for no denial, or list the denials",
                    ));
                }
                Ok(AvcExpect::Denials(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for AvcExpect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AvcExpect".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let list = g.subschema_for::<Vec<AvcMatch>>();
        schemars::json_schema!({
            "description": "`none`, or a list of denials that must all be logged",
            "anyOf": [{"const": "none"}, list]
        })
    }
}

/// The libvirt error an action must end with.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorMatch {
    /// Symbolic libvirt error code, e.g. VIR_ERR_OPERATION_INVALID.
    pub code: Option<At<String>>,
    /// Symbolic libvirt error domain (the part of libvirt that raised it), e.g. VIR_FROM_SECURITY.
    pub domain: Option<At<String>>,
    /// Text the message must contain.
    pub message: Option<At<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessOutcome {
    Allowed,
    Denied,
}

/// What must hold after a step. Without `error`, the action must succeed.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub error: Option<At<ErrorMatch>>,
    /// Labels of the domains' QEMU processes.
    #[serde(default)]
    pub process: BTreeMap<At<Name>, ContextMatch>,
    /// Labels of the scenario's images.
    #[serde(default)]
    pub file: BTreeMap<At<Name>, ContextMatch>,
    /// What watched images' labels did during the step.
    #[serde(default)]
    pub timeline: BTreeMap<At<Name>, TimelineMatch>,
    /// Denials logged during the step (after the noise filter).
    pub avc: Option<AvcExpect>,
    /// Denials that must not be logged during the step.
    #[serde(default)]
    pub no_avc: Vec<At<AvcMatch>>,
    /// For a probe step: whether the open was allowed.
    pub access: Option<AccessOutcome>,
    /// libvirt's remembered-owner attributes (trusted.libvirt.security.*) of files.
    #[serde(default)]
    pub xattr: BTreeMap<At<FileRef>, BTreeMap<XattrName, XattrExpect>>,
    /// Owners of files, `user:group` (names resolved on the target), or `$vm1`: the user and
    /// group vm1's QEMU ran as when it was captured.
    #[serde(default)]
    pub owner: BTreeMap<At<FileRef>, OwnerExpect>,
    /// Permission bits of files, e.g. "0750".
    #[serde(default)]
    pub mode: BTreeMap<At<FileRef>, Mode>,
    /// Files that must not exist after the step (libvirt removed them).
    #[serde(default)]
    pub absent: Vec<At<FileRef>>,
    /// Labels of files (images or runtime files): `default` or a MATCH.
    #[serde(default)]
    pub label: BTreeMap<At<FileRef>, LabelExpect>,
    /// The uid:gid the domains' QEMU processes run as, `user:group`.
    #[serde(default)]
    pub process_owner: BTreeMap<At<Name>, Owner>,
    /// `outcome: any`: the action's success or failure is deliberately not judged.
    pub outcome: Option<OutcomeExpect>,
    /// Labels of the domains' swtpm processes (a domain with `tpm:`).
    #[serde(default)]
    pub swtpm_process: BTreeMap<At<Name>, ContextMatch>,
    /// The uid:gid the domains' swtpm processes run as, `user:group` (qemu.conf's
    /// swtpm_user, swtpm_group).
    #[serde(default)]
    pub swtpm_owner: BTreeMap<At<Name>, Owner>,
    /// Labels of helper processes libvirt runs for a domain, by executable name
    /// (`{vm1: {virtiofsd: MATCH}}`): every running process of that name whose command line
    /// names the domain's UUID or one of its virtiofs exports must match, and one must run.
    #[serde(default)]
    pub helper_process: BTreeMap<At<Name>, BTreeMap<At<super::devices::HelperName>, ContextMatch>>,
}

/// Marks named expectations of a step as a known bug where `when` holds.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownBug {
    /// Bug URL or id.
    pub reference: String,
    pub summary: Option<String>,
    #[serde(default)]
    pub when: Platform,
    /// The expectations the bug makes fail (`timeline.vm1.img.never_level`, `error`, ...),
    /// each optionally with what it observes when the bug reproduces. Required: a failure of
    /// any other expectation of the step is a `fail`.
    pub expects: Option<Vec<At<Excuse>>>,
}

/// One expectation a known bug excuses: a check key, or `{check: KEY, observed: TEXT}` when
/// only a failure whose observation contains TEXT is the bug (`$NAME` in TEXT stands for the
/// MLS range of capture NAME, `$NAME.imagelabel` for its image label's).
#[derive(Debug, Clone, JsonSchema)]
pub struct Excuse {
    pub check: At<String>,
    pub observed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExcuseFull {
    check: At<String>,
    observed: Option<String>,
}

impl<'de> Deserialize<'de> for Excuse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Excuse;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a check key (e.g. timeline.vm1.img) or {check: KEY, observed: TEXT}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Excuse, E> {
                Ok(Excuse {
                    check: At::new(v.to_string()),
                    observed: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Excuse, A::Error> {
                let f = ExcuseFull::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Excuse {
                    check: f.check,
                    observed: f.observed,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Which check of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimelineCheck {
    NeverLevel,
    SawLevel,
    Unchanged,
}

impl TimelineCheck {
    fn keyword(self) -> &'static str {
        match self {
            TimelineCheck::NeverLevel => "never_level",
            TimelineCheck::SawLevel => "saw_level",
            TimelineCheck::Unchanged => "unchanged",
        }
    }
}

/// One check a step makes, named the way a scenario names it in `known_bug: [{expects: ...}]`:
/// `succeeds`, `error`, `access`, `process.DOMAIN`, `file.IMAGE`,
/// `timeline.IMAGE.never_level|saw_level|unchanged`, `avc` (for `avc: none`), `avc.N` (the
/// N-th listed denial, from 0), `no_avc.N`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckKey {
    Succeeds,
    Error,
    Access,
    Process(String),
    File(String),
    Timeline(String, TimelineCheck),
    AvcNone,
    AvcDenial(usize),
    NoAvc(usize),
    /// `xattr.FILE.NAME` (NAME short: ref_selinux)
    Xattr(String, String),
    Owner(String),
    Mode(String),
    Absent(String),
    Label(String),
    ProcessOwner(String),
    SwtpmProcess(String),
    SwtpmOwner(String),
    /// `helper_process.DOMAIN.EXE`
    HelperProcess(String, String),
}

/// The kinds of check, for counting and for the negative controls of the conformance suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckKind {
    Succeeds,
    Error,
    Access,
    Process,
    File,
    TimelineNeverLevel,
    TimelineSawLevel,
    TimelineUnchanged,
    AvcNone,
    AvcDenial,
    NoAvc,
    Xattr,
    Owner,
    Mode,
    Absent,
    Label,
    ProcessOwner,
    SwtpmProcess,
    SwtpmOwner,
    HelperProcess,
}

impl CheckKind {
    pub const ALL: [CheckKind; 20] = [
        CheckKind::Succeeds,
        CheckKind::Error,
        CheckKind::Access,
        CheckKind::Process,
        CheckKind::File,
        CheckKind::TimelineNeverLevel,
        CheckKind::TimelineSawLevel,
        CheckKind::TimelineUnchanged,
        CheckKind::AvcNone,
        CheckKind::AvcDenial,
        CheckKind::NoAvc,
        CheckKind::Xattr,
        CheckKind::Owner,
        CheckKind::Mode,
        CheckKind::Absent,
        CheckKind::Label,
        CheckKind::ProcessOwner,
        CheckKind::SwtpmProcess,
        CheckKind::SwtpmOwner,
        CheckKind::HelperProcess,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CheckKind::Succeeds => "succeeds",
            CheckKind::Error => "error",
            CheckKind::Access => "access",
            CheckKind::Process => "process",
            CheckKind::File => "file",
            CheckKind::TimelineNeverLevel => "timeline_never_level",
            CheckKind::TimelineSawLevel => "timeline_saw_level",
            CheckKind::TimelineUnchanged => "timeline_unchanged",
            CheckKind::AvcNone => "avc_none",
            CheckKind::AvcDenial => "avc_denial",
            CheckKind::NoAvc => "no_avc",
            CheckKind::Xattr => "xattr",
            CheckKind::Owner => "owner",
            CheckKind::Mode => "mode",
            CheckKind::Absent => "absent",
            CheckKind::Label => "label",
            CheckKind::ProcessOwner => "process_owner",
            CheckKind::SwtpmProcess => "swtpm_process",
            CheckKind::SwtpmOwner => "swtpm_owner",
            CheckKind::HelperProcess => "helper_process",
        }
    }
}

impl CheckKey {
    pub fn kind(&self) -> CheckKind {
        match self {
            CheckKey::Succeeds => CheckKind::Succeeds,
            CheckKey::Error => CheckKind::Error,
            CheckKey::Access => CheckKind::Access,
            CheckKey::Process(_) => CheckKind::Process,
            CheckKey::File(_) => CheckKind::File,
            CheckKey::Timeline(_, TimelineCheck::NeverLevel) => CheckKind::TimelineNeverLevel,
            CheckKey::Timeline(_, TimelineCheck::SawLevel) => CheckKind::TimelineSawLevel,
            CheckKey::Timeline(_, TimelineCheck::Unchanged) => CheckKind::TimelineUnchanged,
            CheckKey::AvcNone => CheckKind::AvcNone,
            CheckKey::AvcDenial(_) => CheckKind::AvcDenial,
            CheckKey::NoAvc(_) => CheckKind::NoAvc,
            CheckKey::Xattr(..) => CheckKind::Xattr,
            CheckKey::Owner(_) => CheckKind::Owner,
            CheckKey::Mode(_) => CheckKind::Mode,
            CheckKey::Absent(_) => CheckKind::Absent,
            CheckKey::Label(_) => CheckKind::Label,
            CheckKey::ProcessOwner(_) => CheckKind::ProcessOwner,
            CheckKey::SwtpmProcess(_) => CheckKind::SwtpmProcess,
            CheckKey::SwtpmOwner(_) => CheckKind::SwtpmOwner,
            CheckKey::HelperProcess(..) => CheckKind::HelperProcess,
        }
    }

    /// Whether `name` (from a known bug's `expects`) names this check: its key, or for a
    /// timeline `timeline.IMAGE`, every check of that image's timeline.
    pub fn named_by(&self, name: &str) -> bool {
        match self {
            CheckKey::Timeline(file, _) if name == format!("timeline.{file}") => true,
            _ => self.to_string() == name,
        }
    }
}

impl fmt::Display for CheckKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckKey::Succeeds => f.write_str("succeeds"),
            CheckKey::Error => f.write_str("error"),
            CheckKey::Access => f.write_str("access"),
            CheckKey::Process(d) => write!(f, "process.{d}"),
            CheckKey::File(i) => write!(f, "file.{i}"),
            CheckKey::Timeline(i, t) => write!(f, "timeline.{i}.{}", t.keyword()),
            CheckKey::AvcNone => f.write_str("avc"),
            CheckKey::AvcDenial(n) => write!(f, "avc.{n}"),
            CheckKey::NoAvc(n) => write!(f, "no_avc.{n}"),
            CheckKey::Xattr(i, n) => write!(f, "xattr.{i}.{n}"),
            CheckKey::Owner(i) => write!(f, "owner.{i}"),
            CheckKey::Mode(i) => write!(f, "mode.{i}"),
            CheckKey::Absent(i) => write!(f, "absent.{i}"),
            CheckKey::Label(i) => write!(f, "label.{i}"),
            CheckKey::ProcessOwner(d) => write!(f, "process_owner.{d}"),
            CheckKey::SwtpmProcess(d) => write!(f, "swtpm_process.{d}"),
            CheckKey::SwtpmOwner(d) => write!(f, "swtpm_owner.{d}"),
            CheckKey::HelperProcess(d, e) => write!(f, "helper_process.{d}.{e}"),
        }
    }
}

impl FromStr for CheckKey {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::CheckKey(s.to_string());
        let index = |n: &str| n.parse::<usize>().map_err(|_| bad());
        Ok(match s.split_once('.') {
            None => match s {
                "succeeds" => CheckKey::Succeeds,
                "error" => CheckKey::Error,
                "access" => CheckKey::Access,
                "avc" => CheckKey::AvcNone,
                _ => return Err(bad()),
            },
            Some(("process", d)) => CheckKey::Process(d.to_string()),
            Some(("file", i)) => CheckKey::File(i.to_string()),
            Some(("avc", n)) => CheckKey::AvcDenial(index(n)?),
            Some(("no_avc", n)) => CheckKey::NoAvc(index(n)?),
            Some(("timeline", rest)) => {
                let (i, t) = rest.rsplit_once('.').ok_or_else(bad)?;
                let t = match t {
                    "never_level" => TimelineCheck::NeverLevel,
                    "saw_level" => TimelineCheck::SawLevel,
                    "unchanged" => TimelineCheck::Unchanged,
                    _ => return Err(bad()),
                };
                CheckKey::Timeline(i.to_string(), t)
            }
            Some(("xattr", rest)) => {
                let (i, n) = rest.rsplit_once('.').ok_or_else(bad)?;
                CheckKey::Xattr(i.to_string(), n.to_string())
            }
            Some(("owner", i)) => CheckKey::Owner(i.to_string()),
            Some(("mode", i)) => CheckKey::Mode(i.to_string()),
            Some(("absent", i)) => CheckKey::Absent(i.to_string()),
            Some(("label", i)) => CheckKey::Label(i.to_string()),
            Some(("process_owner", d)) => CheckKey::ProcessOwner(d.to_string()),
            Some(("swtpm_process", d)) => CheckKey::SwtpmProcess(d.to_string()),
            Some(("swtpm_owner", d)) => CheckKey::SwtpmOwner(d.to_string()),
            Some(("helper_process", rest)) => {
                // A helper's name has no dot (`HelperName`); a domain's may.
                let (d, e) = rest.rsplit_once('.').ok_or_else(bad)?;
                CheckKey::HelperProcess(d.to_string(), e.to_string())
            }
            _ => return Err(bad()),
        })
    }
}

impl Serialize for CheckKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Expect {
    /// The checks this expectation makes, in the order `expect::check_step` makes them (a
    /// probe step is judged by `access`, any other by `error` or success).
    pub fn keys(&self, is_probe: bool) -> Vec<CheckKey> {
        let mut out = Vec::new();
        if is_probe {
            if self.access.is_some() {
                out.push(CheckKey::Access);
            }
        } else if self.outcome.is_some() {
            // Deliberately not judged.
        } else if self.error.is_some() {
            out.push(CheckKey::Error);
        } else {
            out.push(CheckKey::Succeeds);
        }
        out.extend(
            self.process
                .keys()
                .map(|d| CheckKey::Process(d.value.to_string())),
        );
        out.extend(
            self.file
                .keys()
                .map(|i| CheckKey::File(i.value.to_string())),
        );
        for (i, t) in &self.timeline {
            let i = i.value.to_string();
            if t.never_level.is_some() {
                out.push(CheckKey::Timeline(i.clone(), TimelineCheck::NeverLevel));
            }
            if t.saw_level.is_some() {
                out.push(CheckKey::Timeline(i.clone(), TimelineCheck::SawLevel));
            }
            if t.unchanged == Some(true) {
                out.push(CheckKey::Timeline(i, TimelineCheck::Unchanged));
            }
        }
        match &self.avc {
            Some(AvcExpect::None) => out.push(CheckKey::AvcNone),
            Some(AvcExpect::Denials(list)) => {
                out.extend((0..list.len()).map(CheckKey::AvcDenial));
            }
            None => {}
        }
        out.extend((0..self.no_avc.len()).map(CheckKey::NoAvc));
        for (f, names) in &self.xattr {
            out.extend(
                names
                    .keys()
                    .map(|n| CheckKey::Xattr(f.value.to_string(), n.to_string())),
            );
        }
        out.extend(
            self.owner
                .keys()
                .map(|f| CheckKey::Owner(f.value.to_string())),
        );
        out.extend(
            self.mode
                .keys()
                .map(|f| CheckKey::Mode(f.value.to_string())),
        );
        out.extend(
            self.absent
                .iter()
                .map(|f| CheckKey::Absent(f.value.to_string())),
        );
        out.extend(
            self.label
                .keys()
                .map(|f| CheckKey::Label(f.value.to_string())),
        );
        out.extend(
            self.process_owner
                .keys()
                .map(|d| CheckKey::ProcessOwner(d.value.to_string())),
        );
        out.extend(
            self.swtpm_process
                .keys()
                .map(|d| CheckKey::SwtpmProcess(d.value.to_string())),
        );
        out.extend(
            self.swtpm_owner
                .keys()
                .map(|d| CheckKey::SwtpmOwner(d.value.to_string())),
        );
        for (d, helpers) in &self.helper_process {
            out.extend(
                helpers
                    .keys()
                    .map(|e| CheckKey::HelperProcess(d.value.to_string(), e.value.to_string())),
            );
        }
        out
    }

    /// Every file the step's bookkeeping expectations name, each once.
    pub fn named_files(&self) -> Vec<&FileRef> {
        let mut v: Vec<&FileRef> = self
            .xattr
            .keys()
            .chain(self.owner.keys())
            .chain(self.mode.keys())
            .chain(self.absent.iter())
            .chain(self.label.keys())
            .map(|f| &f.value)
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Where a known bug applies. Every field given must hold; an empty `when` holds everywhere.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    /// Variant names.
    #[serde(default)]
    pub variant: Vec<At<Name>>,
    /// Distributions, e.g. debian-12.
    #[serde(default)]
    pub distro: Vec<String>,
    /// Distributions where it does not hold: every other one, those no scenario names yet
    /// included (a Debian-only denial pinned in one step, the rule for the rest in another).
    #[serde(default)]
    pub not_distro: Vec<String>,
    /// libvirt version requirement, e.g. ">=9.0.0, <11.0.0".
    pub libvirt: Option<VersionReq>,
}

#[derive(Debug, Clone, JsonSchema)]
#[schemars(with = "String")]
pub struct VersionReq(pub semver::VersionReq);

impl<'de> Deserialize<'de> for VersionReq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        semver::VersionReq::parse(&s).map(VersionReq).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid version requirement {s:?}: {e} (write e.g. \">=9.0.0, <11.0.0\")"
            ))
        })
    }
}
