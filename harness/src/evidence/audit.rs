//! AVC evidence scoped to a step: the audit log bytes appended while the step ran, parsed into
//! `AvcRecord`s, minus known noise.
//!
//! Records are found by byte offset, never by timestamp: after a snapshot restore the guest's
//! audit clock and serials repeat. Only the appended bytes are read, never the whole log.

use crate::error::IoError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use linux_audit_parser::{Key, Value};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::evidence::{AvcRecord, Evidence};
use crate::scenario::RoleTypes;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file we read shrank below the step's offset: truncated or replaced in place.
    #[error("{path} shrank to {size} bytes, below the step's start offset {offset}: records of the step are lost")]
    Truncated {
        path: PathBuf,
        offset: u64,
        size: u64,
    },
    /// The path names a new file since the step began (auditd rotated its log). The records
    /// found in the old file after the offset and in the new file are attached, but records
    /// in a file rotated away in between (two rotations) would be missing.
    #[error("{path} was rotated during the step ({} records before, {} after the rotation)", .before.len(), .after.len())]
    Rotated {
        path: PathBuf,
        before: Vec<AvcRecord>,
        after: Vec<AvcRecord>,
    },
    /// Same file, no shorter than the offset, but the bytes just before the offset are not the
    /// ones that stood there when the step began: the log was truncated and written past the
    /// offset again, so what lies after the offset is not what the step logged.
    #[error("{path} was truncated and regrown past the step's start offset {offset} (the bytes before it changed): records of the step are lost")]
    Regrown { path: PathBuf, offset: u64 },
    /// The harness's marker never reached the log: auditd is dead, suspended (a full disk
    /// suspends it) or writes elsewhere, so an absence of records proves nothing.
    #[error("auditd did not write the marker {marker} into {path} within {waited:?}: auditd is dead, suspended (disk full?) or not writing this log, so the step's AVC evidence cannot be trusted")]
    NoMarker {
        path: PathBuf,
        marker: String,
        waited: Duration,
    },
    #[error("{0}")]
    Selinux(#[from] crate::selinux_ops::SelinuxOpsError),
    #[error("cannot run auditctl -s: {0}")]
    AuditctlSpawn(#[source] std::io::Error),
    #[error("auditctl -s failed: {0}")]
    AuditctlFailed(String),
    #[error("auditctl -s said {0:?}")]
    AuditctlOutput(String),
}

type Result<T> = std::result::Result<T, AuditError>;

/// An audit log file, followed across steps.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    id: (u64, u64),
    /// The bytes just before the last offset handed out: still there at read time, or the log
    /// was truncated and regrown under the step.
    anchor: Option<Anchor>,
}

/// How many bytes before an offset are remembered: more than one record, so two different
/// records (each carries its own time stamp and serial) can never look the same.
const ANCHOR_LEN: u64 = 512;

#[derive(Debug, Clone)]
struct Anchor {
    offset: u64,
    bytes: Vec<u8>,
}

fn open_with_id(path: &Path) -> Result<(File, (u64, u64))> {
    let io = |what| {
        move |source| {
            AuditError::Io(IoError {
                what,
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file = File::open(path).map_err(io("open"))?;
    let meta = file.metadata().map_err(io("stat"))?;
    Ok((file, (meta.dev(), meta.ino())))
}

impl AuditLog {
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog> {
        let path = path.as_ref().to_path_buf();
        let (file, id) = open_with_id(&path)?;
        Ok(AuditLog {
            path,
            file,
            id,
            anchor: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        move |source| {
            AuditError::Io(IoError {
                what,
                path: self.path.clone(),
                source,
            })
        }
    }

    /// Whether the path now names a different file than the one we hold (rotation).
    fn rotated(&self) -> Result<bool> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok((m.dev(), m.ino()) != self.id),
            // Between auditd's rename and its create the path briefly does not exist.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(self.io("stat")(e)),
        }
    }

    /// The current end of the log: where a step starting now begins. Follows a rotation that
    /// happened between steps (that loses nothing: no step was reading).
    pub fn offset(&mut self) -> Result<u64> {
        if self.rotated()? {
            let (file, id) = open_with_id(&self.path)?;
            self.file = file;
            self.id = id;
        }
        let offset = self.file.metadata().map_err(self.io("stat"))?.len();
        let bytes = self.bytes_before(offset)?;
        self.anchor = Some(Anchor { offset, bytes });
        Ok(offset)
    }

    fn bytes_before(&mut self, offset: u64) -> Result<Vec<u8>> {
        let start = offset.saturating_sub(ANCHOR_LEN);
        self.file
            .seek(SeekFrom::Start(start))
            .map_err(self.io("seek"))?;
        let mut buf = vec![0; (offset - start) as usize];
        self.file.read_exact(&mut buf).map_err(self.io("read"))?;
        Ok(buf)
    }

    /// Whether the bytes before `offset` are still those `offset()` saw.
    fn check_anchor(&mut self, offset: u64) -> Result<()> {
        let Some(anchor) = self.anchor.clone().filter(|a| a.offset == offset) else {
            return Ok(());
        };
        match self.bytes_before(offset) {
            Ok(now) if now == anchor.bytes => Ok(()),
            Ok(_) => Err(AuditError::Regrown {
                path: self.path.clone(),
                offset,
            }),
            // Shorter than the offset: read_from names that as truncation.
            Err(AuditError::Io(IoError { source, .. }))
                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// AVC, USER_AVC and SELINUX_ERR records written since `offset` (from `offset()`).
    pub fn records_since(&mut self, offset: u64) -> Result<Vec<AvcRecord>> {
        Ok(self.step_since(offset)?.records)
    }

    /// Everything a step's judgement needs from the log written since `offset`: the SELinux
    /// records, and the mode switches to permissive the kernel logged (MAC_STATUS), however
    /// briefly the mode was switched.
    pub fn step_since(&mut self, offset: u64) -> Result<StepAudit> {
        let before = self.read_from(offset)?;
        self.check_anchor(offset)?;
        if !self.rotated()? {
            return Ok(StepAudit::parse(&before));
        }
        let (file, id) = open_with_id(&self.path)?;
        self.file = file;
        self.id = id;
        let after = self.read_from(0)?;
        Err(AuditError::Rotated {
            path: self.path.clone(),
            before: parse_records(&before),
            after: parse_records(&after),
        })
    }

    /// The whole lines written from `offset` on, and the offset after the last of them (a
    /// line auditd is still writing is left for the next call).
    pub fn lines_since(&mut self, offset: u64) -> Result<(String, u64)> {
        let mut buf = self.bytes_from(offset)?;
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(whole);
        Ok((
            String::from_utf8_lossy(&buf).into_owned(),
            offset + whole as u64,
        ))
    }

    fn read_from(&mut self, offset: u64) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.bytes_from(offset)?).into_owned())
    }

    /// Everything from `offset` to the end now; a log shorter than `offset` was truncated.
    fn bytes_from(&mut self, offset: u64) -> Result<Vec<u8>> {
        let size = self.file.metadata().map_err(self.io("stat"))?.len();
        if size < offset {
            return Err(AuditError::Truncated {
                path: self.path.clone(),
                offset,
                size,
            });
        }
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(self.io("seek"))?;
        let mut buf = Vec::with_capacity((size - offset) as usize);
        self.file.read_to_end(&mut buf).map_err(self.io("read"))?;
        Ok(buf)
    }
}

impl AuditLog {
    /// Wait until auditd has written everything the kernel queued before now: send a marker
    /// record through the kernel (`auditctl -m`, same FIFO queue as AVCs) and wait for it to
    /// appear after `offset`. Returns false if it did not appear within `timeout` (then the
    /// records read may be incomplete). Waits on inotify, not by polling the file.
    pub fn settle(&mut self, offset: u64, marker: &str, timeout: Duration) -> Result<bool> {
        let marker_ok = !marker.is_empty()
            && marker
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':');
        if !marker_ok {
            return Err(AuditError::Io(IoError {
                what: "marker text (letters, digits, - _ : only) for",
                path: self.path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            }));
        }
        // Watch before sending, so the write of the marker cannot slip past unnoticed.
        let inotify = self.watch_modify()?;
        let out = Command::new("auditctl")
            .args(["-m", marker])
            .stdin(Stdio::null())
            .output()
            .map_err(self.io("auditctl -m for"))?;
        if !out.status.success() {
            return Err(AuditError::Io(IoError {
                what: "auditctl -m (marker) for",
                path: self.path.clone(),
                source: std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ),
            }));
        }
        self.wait_for_text(&inotify, offset, marker, timeout)
    }

    /// The step's flush barrier: `settle`, and an error if the marker did not come back. After
    /// it, "no record after `offset`" means none up to the moment the marker was sent.
    pub fn barrier(&mut self, offset: u64, marker: &str, timeout: Duration) -> Result<()> {
        if self.settle(offset, marker, timeout)? {
            return Ok(());
        }
        if self.rotated()? {
            // records_since names the rotation with what it read; nothing to add here.
            return Ok(());
        }
        Err(AuditError::NoMarker {
            path: self.path.clone(),
            marker: marker.to_string(),
            waited: timeout,
        })
    }

    fn watch_modify(&self) -> Result<Inotify> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| self.io("inotify on")(e.into()))?;
        inotify
            .add_watch(self.path.as_path(), AddWatchFlags::IN_MODIFY)
            .map_err(|e| self.io("inotify watch on")(e.into()))?;
        Ok(inotify)
    }

    /// Wait until `text` appears in the log after `offset`; false on timeout or rotation.
    fn wait_for_text(
        &mut self,
        inotify: &Inotify,
        offset: u64,
        text: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.rotated()? {
                return Ok(false);
            }
            if self.read_from(offset)?.contains(text) {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(self.io("poll on")(e.into())),
            }
            let _ = inotify.read_events();
        }
    }
}

/// What a step's slice of the log says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepAudit {
    pub records: Vec<AvcRecord>,
    /// MAC_STATUS lines that switched the kernel to permissive (`enforcing=0`).
    pub permissive_switches: Vec<String>,
    /// MAC_POLICY_LOAD lines: the policy (and with it the permissive types) changed.
    pub policy_loads: Vec<String>,
}

impl StepAudit {
    pub fn parse(text: &str) -> StepAudit {
        let mut out = StepAudit::default();
        for line in text.lines() {
            if let Some(r) = parse_record(line) {
                out.records.push(r);
            } else if is_type(line, "MAC_STATUS", "1404") && field(line, "enforcing") == Some("0") {
                out.permissive_switches.push(line.to_string());
            } else if is_type(line, "MAC_POLICY_LOAD", "1403") {
                out.policy_loads.push(line.to_string());
            }
        }
        out
    }
}

/// Whether a line is a record of this type, as auditd writes it or in printk form.
fn is_type(line: &str, name: &str, number: &str) -> bool {
    let rest = line
        .strip_prefix("node=")
        .map_or(line, |r| r.split_once(' ').map_or("", |(_, after)| after));
    rest.strip_prefix("type=")
        .and_then(|r| r.split(' ').next())
        .is_some_and(|t| t == name)
        || line.contains(&format!("type={number} audit("))
}

/// The value of ` KEY=VALUE` in a line (unquoted values only).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split([' ', '\x1d'])
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

// ---------------------------------------------------------------------------------------------
// Liveness

/// The kernel's audit status (`auditctl -s`): what can make records go missing before auditd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStatus {
    pub enabled: u32,
    pub pid: u32,
    pub rate_limit: u32,
    pub backlog_limit: u32,
    /// Records the kernel dropped since boot (backlog full, rate limit, no memory).
    pub lost: u64,
    pub backlog: u32,
}

impl AuditStatus {
    /// `auditctl -s` output: one `key value` pair a line.
    pub fn parse(text: &str) -> Option<AuditStatus> {
        let get = |k: &str| {
            text.lines().find_map(|l| {
                let (key, value) = l.trim().split_once(' ')?;
                (key == k).then(|| value.trim().to_string())
            })
        };
        Some(AuditStatus {
            enabled: get("enabled")?.parse().ok()?,
            pid: get("pid")?.parse().ok()?,
            rate_limit: get("rate_limit")?.parse().ok()?,
            backlog_limit: get("backlog_limit")?.parse().ok()?,
            lost: get("lost")?.parse().ok()?,
            backlog: get("backlog")?.parse().ok()?,
        })
    }

    /// The kernel's status now.
    pub fn read() -> Result<AuditStatus> {
        let out = Command::new("auditctl")
            .arg("-s")
            .stdin(Stdio::null())
            .output()
            .map_err(AuditError::AuditctlSpawn)?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(AuditError::AuditctlFailed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        AuditStatus::parse(&text).ok_or_else(|| AuditError::AuditctlOutput(text.into_owned()))
    }

    /// Why records may be missing between `self` (earlier) and `now`; None if nothing says so.
    pub fn loss_since(&self, now: &AuditStatus) -> Option<String> {
        if now.lost != self.lost {
            return Some(format!(
                "the kernel lost {} audit record(s) (auditctl -s: lost {} -> {}; backlog {}/{}, rate_limit {})",
                now.lost.wrapping_sub(self.lost),
                self.lost,
                now.lost,
                now.backlog,
                now.backlog_limit,
                now.rate_limit
            ));
        }
        if now.pid == 0 {
            return Some("no audit daemon is registered with the kernel (auditctl -s: pid 0): records go to the kernel log, not to the audit log".into());
        }
        if self.pid != now.pid {
            return Some(format!(
                "the audit daemon changed (auditctl -s: pid {} -> {})",
                self.pid, now.pid
            ));
        }
        None
    }
}

/// Every SELinux record in a chunk of log text, in order. A last line without its newline
/// (read while auditd was writing it) is parsed as it stands.
pub fn parse_records(text: &str) -> Vec<AvcRecord> {
    text.lines().filter_map(parse_record).collect()
}

/// The three record types that carry SELinux decisions.
const TYPES: [(&str, &str); 3] = [
    ("AVC", "1400"),
    ("USER_AVC", "1107"),
    ("SELINUX_ERR", "1401"),
];

/// The record type of an auditd line (after an optional `node=... `).
fn record_type(line: &str) -> Option<&'static str> {
    let rest = line
        .strip_prefix("node=")
        .map_or(line, |r| r.split_once(' ').map_or("", |(_, after)| after));
    let ty = rest.strip_prefix("type=")?.split(' ').next()?;
    TYPES.iter().find(|(name, _)| *name == ty).map(|(n, _)| *n)
}

/// Kernel printk form (`dmesg`, console: `audit: type=1400 audit(...): avc: ...`) rewritten as
/// auditd writes it, for logs taken where auditd was not running.
fn from_printk(line: &str) -> Option<(String, &'static str)> {
    for (name, number) in TYPES {
        let needle = format!("type={number} audit(");
        if let Some(i) = line.find(&needle) {
            let rest = &line[i + needle.len() - "audit(".len()..];
            return Some((format!("type={name} msg={rest}"), name));
        }
    }
    None
}

/// One log line as an `AvcRecord`, or None if it is not an SELinux record.
pub fn parse_record(line: &str) -> Option<AvcRecord> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (normalised, ty) = match record_type(line) {
        Some(ty) => (line.to_string(), ty),
        None => from_printk(line)?,
    };
    let parsed = if event_id_in_range(&normalised) {
        let mut bytes = normalised.into_bytes();
        bytes.push(b'\n');
        linux_audit_parser::parse(&bytes, false)
            .ok()
            .and_then(|m| from_message(ty, &m.body))
    } else {
        None
    };
    let mut rec = parsed.unwrap_or_else(|| fallback(ty, line));
    rec.raw = line.to_string();
    Some(rec)
}

/// linux-audit-parser 0.2.8 computes `1000 * seconds + millis` unchecked: more than 16 digits
/// in either overflows (a panic in debug builds, a wrong time in release). No kernel writes
/// that, but the log is input; such lines go to the fallback parser. Every occurrence is
/// checked because a `node=` value may itself contain the text.
pub(crate) fn event_id_in_range(line: &str) -> bool {
    line.match_indices("msg=audit(").all(|(i, m)| {
        let rest = &line[i + m.len()..];
        let secs = rest.bytes().take_while(u8::is_ascii_digit).count();
        let millis = rest[secs..]
            .strip_prefix('.')
            .map_or(0, |r| r.bytes().take_while(u8::is_ascii_digit).count());
        secs <= 16 && millis <= 16
    })
}

pub(crate) fn value_str(v: &Value) -> Option<String> {
    match v {
        Value::Str(b, _) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Owned(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Literal(s) => Some(s.to_string()),
        _ => None,
    }
}

fn value_list(v: &Value) -> Vec<String> {
    match v {
        Value::List(items) | Value::StringifiedList(items) => {
            items.iter().filter_map(value_str).collect()
        }
        other => value_str(other).into_iter().collect(),
    }
}

/// Fields of a record as (key, value) pairs: the body, or for USER_AVC the `msg='...'` map
/// (the outer body there describes the dbus daemon, not the decision).
fn fields(ty: &str, body: &linux_audit_parser::Body) -> Option<Vec<(String, Value<'static>)>> {
    let own = |k: &Key, v: &Value| (k.to_string(), to_owned_value(v));
    if ty == "USER_AVC" {
        let (_, msg) = body.into_iter().find(|(k, _)| *k == *"msg")?;
        match msg {
            Value::Map(m) => Some(m.iter().map(|(k, v)| own(k, v)).collect()),
            _ => None,
        }
    } else {
        Some(body.into_iter().map(|(k, v)| own(k, v)).collect())
    }
}

fn to_owned_value(v: &Value) -> Value<'static> {
    match v {
        Value::List(items) | Value::StringifiedList(items) => {
            Value::List(items.iter().map(to_owned_value).collect())
        }
        Value::Number(n) => Value::Number(n.clone()),
        other => value_str(other).map_or(Value::Empty, |s| Value::Owned(s.into_bytes())),
    }
}

fn from_message(ty: &'static str, body: &linux_audit_parser::Body) -> Option<AvcRecord> {
    let fields = fields(ty, body)?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let get_str = |k: &str| get(k).and_then(value_str);
    let ctx = |k: &str| get_str(k).and_then(|s| s.parse::<Context>().ok());
    let (denied, perms) = if let Some(v) = get("denied") {
        (true, value_list(v))
    } else if let Some(v) = get("granted") {
        (false, value_list(v))
    } else if let Some(avc) = get_str("avc") {
        // USER_AVC: "denied  { send_msg } for"
        perms_from_text(&avc).unwrap_or((ty != "USER_AVC", Vec::new()))
    } else {
        // SELINUX_ERR is a refusal without a permission list.
        (ty == "SELINUX_ERR", Vec::new())
    };
    Some(AvcRecord {
        record_type: ty.to_string(),
        denied,
        perms,
        scontext: ctx("scontext"),
        tcontext: ctx("tcontext"),
        tclass: get_str("tclass"),
        permissive: get_str("permissive").as_deref() == Some("1"),
        comm: get_str("comm"),
        target: get_str("name").or_else(|| get_str("path")),
        raw: String::new(),
    })
}

/// `denied { a b } for` / `granted { a }` anywhere in a text.
fn perms_from_text(text: &str) -> Option<(bool, Vec<String>)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE
        .get_or_init(|| Regex::new(r"\b(denied|granted)\s*\{\s*([^}]*)\}").expect("static regex"));
    let c = re.captures(text)?;
    Some((
        &c[1] == "denied",
        c[2].split_whitespace().map(str::to_string).collect(),
    ))
}

/// A record the parser rejected: keep the raw line and pick out what can be read safely.
fn fallback(ty: &'static str, line: &str) -> AvcRecord {
    static KV: OnceLock<Regex> = OnceLock::new();
    let kv = KV.get_or_init(|| {
        Regex::new(r#"(?:^|\s)([a-z_]+)=("([^"]*)"|[^\s'"]+)"#).expect("static regex")
    });
    let mut map = std::collections::HashMap::new();
    for c in kv.captures_iter(line) {
        let v = c.get(3).or_else(|| c.get(2)).map_or("", |m| m.as_str());
        // Later keys win: in USER_AVC the inner msg fields come after the outer ones.
        map.insert(c[1].to_string(), v.to_string());
    }
    let (denied, perms) = perms_from_text(line).unwrap_or((true, Vec::new()));
    let ctx = |k: &str| map.get(k).and_then(|s| s.parse::<Context>().ok());
    AvcRecord {
        record_type: ty.to_string(),
        denied,
        perms,
        scontext: ctx("scontext"),
        tcontext: ctx("tcontext"),
        tclass: map.get("tclass").cloned(),
        permissive: map.get("permissive").map(String::as_str) == Some("1"),
        comm: map.get("comm").cloned(),
        target: map.get("name").or_else(|| map.get("path")).cloned(),
        raw: line.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Noise

/// A pattern for records that say nothing about the scenario, in the language of a scenario's
/// `ignore_avc` MATCH (`scontext: {type: udev_t}`, `tclass`, `comm`, `perms`), of which a noise
/// rule may use the literal parts (a context by its type; no captures, no levels), plus two
/// keys of its own (`record_type`, `target`). Every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoiseRule {
    /// Why this is noise (shown in reports).
    #[serde(default)]
    pub reason: String,
    /// AVC, USER_AVC or SELINUX_ERR.
    pub record_type: Option<String>,
    /// The source context, by its type, e.g. `{type: udev_t}`.
    pub scontext: Option<TypePattern>,
    /// The target context, by its type, e.g. `{type: sysctl_vm_t}`.
    pub tcontext: Option<TypePattern>,
    pub tclass: Option<String>,
    /// Process name as the kernel logs it (at most 15 characters).
    pub comm: Option<String>,
    /// As in `ignore_avc`: every permission the record denies is among these, so a rule for
    /// `execmem` never hides a record that also denies `read`. Empty: any permissions.
    #[serde(default)]
    pub perms: Vec<String>,
    /// `name=` or `path=` of the record, exactly.
    pub target: Option<String>,
}

/// A context named by its type alone (`{type: udev_t}`), the part of a MATCH's context
/// pattern a noise rule may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypePattern {
    #[serde(rename = "type")]
    pub kind: String,
}

/// The rule of an ignore pattern's `perms` (noise rules and a scenario's `ignore_avc`): the
/// record matches only if it names permissions and every one is among `perms`; empty `perms`
/// match any. Hiding a denial of `getattr read` because `getattr` is harmless would hide `read`.
pub fn perms_all_among(perms: &[String], record: &[String]) -> bool {
    perms.is_empty() || (!record.is_empty() && record.iter().all(|p| perms.contains(p)))
}

impl NoiseRule {
    pub fn matches(&self, r: &AvcRecord) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        let kind = |want: &Option<TypePattern>, got: &Option<Context>| {
            want.as_ref()
                .is_none_or(|w| got.as_ref().is_some_and(|c| c.kind == w.kind))
        };
        eq(&self.record_type, Some(&r.record_type))
            && kind(&self.scontext, &r.scontext)
            && kind(&self.tcontext, &r.tcontext)
            && eq(&self.tclass, r.tclass.as_deref())
            && eq(&self.comm, r.comm.as_deref())
            && eq(&self.target, r.target.as_deref())
            && perms_all_among(&self.perms, &r.perms)
    }
}

/// What filtering left, and how much it took out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub kept: Vec<AvcRecord>,
    pub filtered: usize,
}

impl Filtered {
    pub fn into_evidence(self) -> Evidence {
        Evidence::Avcs {
            records: self.kept,
            filtered: self.filtered,
        }
    }
}

/// The built-in noise rules (see [`NoiseFilter::defaults`]).
const DEFAULT_NOISE: &str = include_str!("../../noise/defaults.yaml");
/// Stands for the harness's own process name in a noise file's `comm`.
const OWN_COMM: &str = "$harness";

/// Why a noise file is refused.
#[derive(Debug, thiserror::Error)]
pub enum NoiseFileError {
    #[error("not a list of noise rules: {0}")]
    Parse(String),
    #[error("noise rule {0} has no reason")]
    NoReason(usize),
}

/// Noise rules from YAML: a list of [`NoiseRule`]s, unknown keys rejected, each with a reason.
pub fn parse_noise_rules(source: &str) -> std::result::Result<Vec<NoiseRule>, NoiseFileError> {
    let rules: Vec<NoiseRule> =
        serde_saphyr::from_str(source).map_err(|e| NoiseFileError::Parse(e.to_string()))?;
    if let Some(i) = rules.iter().position(|r| r.reason.trim().is_empty()) {
        return Err(NoiseFileError::NoReason(i + 1));
    }
    Ok(rules)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseFilter {
    rules: Vec<NoiseRule>,
}

impl NoiseFilter {
    pub fn empty() -> Self {
        Self::default()
    }

    /// The noise measured on Debian 12/13 guests: the rules in `harness/noise/defaults.yaml`
    /// (data, like the image recipes, so a new kind of noise is a reviewed line there, not
    /// code). `own_comm` is the harness's own process name, `$harness` in the file: libvirt's
    /// client libraries make the caller ask for execmem, as they do for virsh.
    pub fn defaults(own_comm: &str) -> Self {
        let rules = parse_noise_rules(DEFAULT_NOISE)
            // The file is compiled in and parsed by a unit test: it cannot fail at run time.
            .expect("harness/noise/defaults.yaml is valid (see its unit test)")
            .into_iter()
            .map(|mut r| {
                if r.comm.as_deref() == Some(OWN_COMM) {
                    r.comm = Some(own_comm.to_string());
                }
                r
            })
            .collect();
        Self { rules }
    }

    /// Defaults for the running process (its comm from /proc/self/comm).
    pub fn for_this_process() -> Self {
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        Self::defaults(comm.trim_end())
    }

    /// Rules keyed by a policy role (`scontext: {type: $domain}`) take the type the role stands
    /// for on this target, so QEMU's start-up noise is filtered whether the policy runs it as
    /// svirt_t or svirt_tcg_t. Without roles such a rule stays unresolved and matches nothing
    /// (no type name starts with `$`): noise shown, never a denial hidden.
    pub fn with_roles(mut self, roles: Option<&RoleTypes>) -> Self {
        if let Some(roles) = roles {
            for r in &mut self.rules {
                for t in [&mut r.scontext, &mut r.tcontext].into_iter().flatten() {
                    let resolved = roles.type_of(&t.kind).to_string();
                    t.kind = resolved;
                }
            }
        }
        self
    }

    pub fn push(&mut self, rule: NoiseRule) {
        self.rules.push(rule);
    }

    pub fn with(mut self, rules: impl IntoIterator<Item = NoiseRule>) -> Self {
        self.rules.extend(rules);
        self
    }

    pub fn rules(&self) -> &[NoiseRule] {
        &self.rules
    }

    /// The first rule that calls this record noise.
    pub fn noise_rule(&self, r: &AvcRecord) -> Option<&NoiseRule> {
        self.rules.iter().find(|rule| rule.matches(r))
    }

    pub fn apply(&self, records: Vec<AvcRecord>) -> Filtered {
        let total = records.len();
        let kept: Vec<AvcRecord> = records
            .into_iter()
            .filter(|r| self.noise_rule(r).is_none())
            .collect();
        Filtered {
            filtered: total - kept.len(),
            kept,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Permissive

/// Whether any record was logged in permissive mode (permissive=1: the access was allowed and
/// only logged, either because the kernel or the source domain is permissive).
pub fn any_permissive(records: &[AvcRecord]) -> bool {
    records.iter().any(|r| r.permissive)
}

/// Whether the kernel enforces right now.
pub fn kernel_enforcing() -> Result<bool> {
    Ok(crate::selinux_ops::is_enforcing()?)
}

#[cfg(test)]
mod tests;
