//! Several scenario runs at once on one SELinux host: each run is an ordinary executor on a
//! thread of its own (`batch` starts them), and what the runs share (the host's configuration,
//! the audit log, the images root, libvirt's domain list) is arbitrated here.
//!
//! - Host-wide changes never overlap other runs ([`Exclusive`]): a run that edits qemu.conf,
//!   sets booleans or loads the probe module holds the host alone.
//! - AVC records are attributed to runs by evidence ([`Concurrency::keep_for`]): a step hides a
//!   record only when the evidence names exactly one run and that run is another one.
//! - Host-state verification leaves out what is named after the other runs of the batch
//!   ([`Concurrency::foreign_markers`]), so each run still answers for its own leftovers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::context::Context;
use crate::evidence::audit::AuditLog;
use crate::evidence::machines::{self, MachineLabel};
use crate::evidence::AvcRecord;
use crate::host::layout::MARKER;
use crate::run::plan::Plan;
use crate::scenario::{Requirement, Scenario};

/// Why a run must have the host to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusive {
    /// qemu.conf is edited and libvirtd restarted: every other run's libvirt connection dies,
    /// and the setting (remember_owner, ...) would change how libvirt labels their images.
    QemuConf,
    /// A boolean changes the policy for every process on the host, not just this run's.
    Booleans,
    /// The probe module is loaded for the run and removed by its cleanup: another run that
    /// probes would lose it in the middle, and the policy reload races everyone's checks.
    ProbeModule,
    /// A step restarts libvirt's daemon: every other run's connection dies with it.
    RestartsDaemon,
    /// A step expects a denial whose source names no run (a daemon's, e.g. virtd_t running the
    /// iohelper): with neighbours it would count as evidence in every run of the batch, and
    /// fail their `avc: none`.
    SharedDenials,
}

impl Exclusive {
    pub fn describe(self) -> &'static str {
        match self {
            Exclusive::QemuConf => "edits qemu.conf and restarts libvirtd",
            Exclusive::Booleans => "sets SELinux booleans",
            Exclusive::ProbeModule => "loads and removes the probe policy module",
            Exclusive::RestartsDaemon => "restarts libvirt's daemon",
            Exclusive::SharedDenials => "expects denials by a daemon all runs share",
        }
    }
}

/// Whether running `s` under `variant` changes the host for everyone (see [`Exclusive`]).
pub fn exclusive_reason(s: &Scenario, variant: Option<&str>) -> Option<Exclusive> {
    if s.requires.contains(&Requirement::ProbeModule) {
        return Some(Exclusive::ProbeModule);
    }
    // The plan merges the scenario's and the variant's host settings; names do not matter here.
    // An unknown variant gives no plan: that run fails before it touches the host.
    let plan = Plan::new(s, variant, "probe-only", std::path::Path::new("/")).ok()?;
    if !plan.qemu_conf.is_empty() {
        Some(Exclusive::QemuConf)
    } else if !plan.booleans.is_empty() {
        Some(Exclusive::Booleans)
    } else if s
        .steps
        .iter()
        .any(|st| matches!(st.action, crate::scenario::Action::RestartDaemon(_)))
    {
        Some(Exclusive::RestartsDaemon)
    } else if s.steps.iter().any(expects_shared_denials) {
        Some(Exclusive::SharedDenials)
    } else {
        None
    }
}

/// Whether a step (in any variant) expects a denial whose source context pins no MCS level:
/// such a record carries nothing of one run (no guest level, no QEMU pid), so it cannot be
/// told apart from a neighbour's.
fn expects_shared_denials(step: &crate::scenario::Step) -> bool {
    use crate::scenario::AvcExpect;
    let Some(AvcExpect::Denials(expected)) = &step.options.expect.avc else {
        return false;
    };
    expected.iter().any(|m| {
        m.value
            .scontext
            .as_ref()
            .is_none_or(|c| c.level.is_none() && c.low.is_none())
    })
}

/// What identifies one run's records and files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `selinux-harness-RUNID`: the run's sandbox directory and the prefix of its domains.
    pub marker: String,
    /// MCS levels the run fixed in advance (static seclabels, image contexts): held for the
    /// whole run, as another run may only share them if it fixed them too (then both claim).
    pub fixed_levels: BTreeSet<String>,
    /// Levels of the run's running domains, replaced after every action: once a domain is
    /// gone libvirt may give its level to another run's domain.
    pub live_levels: BTreeSet<String>,
    /// Running QEMU processes of the run and their contexts, replaced after every action. A
    /// pid counts only together with its context: a pid reused by another process would
    /// otherwise name the wrong run.
    pub live_pids: BTreeMap<u32, Context>,
    /// Levels libvirt's VIRT_MACHINE_ID records gave the run's domains (`learn_machines`):
    /// written before QEMU starts, they name a guest's level also when its QEMU is denied
    /// and dies before its process label could be read. Kept for the whole run.
    pub audited_levels: BTreeSet<String>,
    /// When the run ended (wall clock, as the kernel stamps audit records): its levels and pids
    /// are evidence only for records stamped before, as libvirt may reuse them afterwards.
    pub retired_at: Option<SystemTime>,
}

impl Identity {
    fn new(run_id: &str) -> Self {
        Self {
            marker: format!("{MARKER}-{run_id}"),
            ..Self::default()
        }
    }

    /// The run ended: its domains are gone, so its levels and pids may be reused from now on;
    /// its neighbours may still read its records, logged before. Its marker stays evidence: a
    /// path with it can only be the run's.
    fn retire(&mut self) {
        self.retired_at = Some(SystemTime::now());
    }
}

/// The MCS level a context carries as evidence of ownership: a single level with categories.
/// `s0` and ranges such as `s0-s0:c0.c1023` are shared by every system process and file.
pub fn mcs_key(c: &Context) -> Option<String> {
    let r = c.range.as_ref()?;
    (r.low == r.high && !r.low.categories.is_empty()).then(|| r.low.to_string())
}

/// Whether `text` mentions `marker` as a whole name (run ids are hex: `…-1a` is not `…-1ab`).
fn mentions(text: &str, marker: &str) -> bool {
    text.match_indices(marker).any(|(i, m)| {
        text[i + m.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// The acting process's pid of a record (`pid=`, not `ppid=`/`spid=`/`tpid=`).
fn record_pid(raw: &str) -> Option<u32> {
    raw.match_indices("pid=")
        .find(|(i, _)| *i == 0 || raw.as_bytes()[i - 1] == b' ')
        .and_then(|(i, m)| {
            let rest = &raw[i + m.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
}

/// `path=`/`name=` values auditd wrote in hex (it does when they hold spaces or odd bytes).
fn hex_names(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["path=", "name="] {
        for (i, m) in raw.match_indices(key) {
            if i > 0 && raw.as_bytes()[i - 1] != b' ' {
                continue;
            }
            let rest = &raw[i + m.len()..];
            let v = &rest[..rest.find(' ').unwrap_or(rest.len())];
            if v.len() >= 2 && v.len() % 2 == 0 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                let bytes: Option<Vec<u8>> = (0..v.len())
                    .step_by(2)
                    .map(|j| u8::from_str_radix(&v[j..j + 2], 16).ok())
                    .collect();
                if let Some(b) = bytes {
                    out.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
        }
    }
    out
}

/// When the kernel stamped a record (`msg=audit(SECONDS.MILLIS:SERIAL)`).
fn record_time(raw: &str) -> Option<SystemTime> {
    let (_, rest) = raw.split_once("audit(")?;
    let (stamp, _) = rest.split_once(':')?;
    let (secs, millis) = stamp.split_once('.')?;
    let t = Duration::from_secs(secs.parse().ok()?) + Duration::from_millis(millis.parse().ok()?);
    UNIX_EPOCH.checked_add(t)
}

/// Every run the record's evidence points to (indices into `runs`): the acting pid with its
/// context, an MCS level of either context, the run's marker in a path or name.
pub fn owners(r: &AvcRecord, runs: &[Identity]) -> BTreeSet<usize> {
    let pid = record_pid(&r.raw);
    let levels: Vec<String> = [&r.scontext, &r.tcontext]
        .into_iter()
        .flatten()
        .filter_map(mcs_key)
        .collect();
    let decoded = hex_names(&r.raw);
    let stamped = record_time(&r.raw);
    let mut out = BTreeSet::new();
    for (i, run) in runs.iter().enumerate() {
        // A record without a stamp is judged as if logged after every run's end.
        let was_running = run
            .retired_at
            .is_none_or(|end| stamped.is_some_and(|t| t < end));
        let by_pid = was_running
            && pid.is_some_and(|p| {
                run.live_pids
                    .get(&p)
                    .is_some_and(|c| r.scontext.as_ref().is_none_or(|s| s == c))
            });
        let by_level = was_running
            && levels.iter().any(|l| {
                run.fixed_levels.contains(l)
                    || run.live_levels.contains(l)
                    || run.audited_levels.contains(l)
            });
        let by_name = mentions(&r.raw, &run.marker)
            || r.target
                .as_deref()
                .is_some_and(|t| mentions(t, &run.marker))
            || decoded.iter().any(|t| mentions(t, &run.marker));
        if by_pid || by_level || by_name {
            out.insert(i);
        }
    }
    out
}

/// What the concurrent runs of one batch share.
#[derive(Debug, Default)]
pub struct Concurrency {
    /// Read: an ordinary run; write: a run that changes the host for everyone (see
    /// [`Exclusive`]). It guards no data, only who may run alongside whom.
    host: RwLock<()>,
    /// Every run of the batch so far, by run id; finished runs stay (retired), so their late
    /// records and leftover names are still recognised.
    runs: Mutex<BTreeMap<String, Identity>>,
    /// How far `learn_machines` has read the audit log (None until a step began).
    scanned: Mutex<Option<u64>>,
}

/// A run's place on the host; dropping it retires the run and lets others in.
pub struct Turn<'a> {
    concurrency: &'a Concurrency,
    run_id: String,
    _guard: HostGuard<'a>,
}

// Held only for its Drop: the lock's purpose is ordering, not data.
#[allow(dead_code)]
enum HostGuard<'a> {
    Shared(RwLockReadGuard<'a, ()>),
    Exclusive(RwLockWriteGuard<'a, ()>),
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(run) = self.concurrency.runs().get_mut(&self.run_id) {
            run.retire();
        }
    }
}

impl Concurrency {
    pub fn new() -> Self {
        Self::default()
    }

    // A run that panicked poisons nothing here: the map holds plain names and sets, consistent
    // after every single insertion, so the others go on with it.
    fn runs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Identity>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many runs of the batch are under way now (registered and not yet retired), the
    /// caller's included: under TCG they share the CPUs, so a guest's clock-time deadline
    /// stretches by this factor.
    pub fn running(&self) -> u32 {
        let n = self
            .runs()
            .values()
            .filter(|r| r.retired_at.is_none())
            .count();
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }

    /// Where the batch's audit evidence begins: the offset of the first step any run began
    /// (no run acted before it). Later calls change nothing.
    pub fn audit_from(&self, offset: u64) {
        let mut scanned = self.scanned.lock().unwrap_or_else(PoisonError::into_inner);
        if scanned.is_none() {
            *scanned = Some(offset);
        }
    }

    /// Reads libvirt's VIRT_MACHINE_ID records written since the last call (by any run) and
    /// gives each run the levels of its domains. A log that cannot be read teaches nothing:
    /// the records it would have explained stay every run's evidence.
    pub fn learn_machines(&self, log: &mut AuditLog) {
        let mut scanned = self.scanned.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(from) = *scanned else { return };
        let Ok((text, end)) = log.lines_since(from) else {
            return;
        };
        *scanned = Some(end);
        let machines: Vec<MachineLabel> = text.lines().filter_map(machines::parse).collect();
        self.claim(&machines);
    }

    /// Gives each run the levels of the machine records that name one of its domains.
    pub fn claim(&self, found: &[MachineLabel]) {
        let mut runs = self.runs();
        for m in found {
            for run in runs.values_mut() {
                let ours =
                    m.vm.strip_prefix(&run.marker)
                        .is_some_and(|rest| rest.starts_with('-'));
                if ours {
                    run.audited_levels
                        .extend(m.contexts.iter().filter_map(mcs_key));
                }
            }
        }
    }

    /// Registers a new run with an id from `make_id` that no run of the batch has used (ids
    /// come from the clock: two threads may draw the same one), before the run changes
    /// anything, so that from its first change on the others recognise what is its.
    pub fn register(&self, mut make_id: impl FnMut() -> String) -> String {
        let mut runs = self.runs();
        loop {
            let id = make_id();
            if !runs.contains_key(&id) {
                runs.insert(id.clone(), Identity::new(&id));
                return id;
            }
        }
    }

    /// Waits until the run may use the host: alongside the other ordinary runs, or alone if
    /// `exclusive`. Held until the run's cleanup and host-state check are over.
    pub fn enter(&self, run_id: &str, exclusive: Option<Exclusive>) -> Turn<'_> {
        // Poisoning only says a run panicked while holding its turn; its Cleanup ran on unwind.
        let guard = match exclusive {
            None => HostGuard::Shared(self.host.read().unwrap_or_else(PoisonError::into_inner)),
            Some(_) => {
                HostGuard::Exclusive(self.host.write().unwrap_or_else(PoisonError::into_inner))
            }
        };
        Turn {
            concurrency: self,
            run_id: run_id.to_string(),
            _guard: guard,
        }
    }

    /// Levels the run fixes in advance (see [`Identity::fixed_levels`]).
    pub fn fix_levels(&self, run_id: &str, contexts: impl IntoIterator<Item = Context>) {
        if let Some(run) = self.runs().get_mut(run_id) {
            run.fixed_levels
                .extend(contexts.into_iter().filter_map(|c| mcs_key(&c)));
        }
    }

    /// The run's running domains as they are now: QEMU pids with their contexts, and the
    /// contexts of their live labels.
    pub fn publish_live(
        &self,
        run_id: &str,
        pids: BTreeMap<u32, Context>,
        labels: impl IntoIterator<Item = Context>,
    ) {
        if let Some(run) = self.runs().get_mut(run_id) {
            run.live_pids = pids;
            run.live_levels = labels.into_iter().filter_map(|c| mcs_key(&c)).collect();
        }
    }

    /// Adds what libvirt's pid files in `pid_dir` say about the running QEMUs of the batch's
    /// runs (`MARKER-RUNID-DOMAIN.pid`): a run publishes its own only after its action returns,
    /// but its QEMU logs from its first instant, maybe while a neighbour reads the log. Only
    /// processes alive now count, with the context they have now; the next
    /// [`Concurrency::publish_live`] of their run replaces the guess.
    pub fn observe_running(&self, pid_dir: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(pid_dir) else {
            return;
        };
        let found: Vec<(String, u32)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let domain = name.strip_suffix(".pid")?.to_string();
                let pid = std::fs::read_to_string(e.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((domain, pid))
            })
            .collect();
        self.observe(&found, |pid| crate::selinux_ops::process_context(pid).ok());
    }

    /// [`Concurrency::observe_running`] on (domain name, pid) pairs already read.
    fn observe(&self, found: &[(String, u32)], context_of: impl Fn(u32) -> Option<Context>) {
        let mut runs = self.runs();
        for run in runs.values_mut().filter(|r| r.retired_at.is_none()) {
            let prefix = format!("{}-", run.marker);
            for (_, pid) in found.iter().filter(|(d, _)| d.starts_with(&prefix)) {
                if let Some(context) = context_of(*pid) {
                    run.live_levels.extend(mcs_key(&context));
                    run.live_pids.insert(*pid, context);
                }
            }
        }
    }

    /// The records a step of `run_id` keeps, and how many it leaves to other runs. A record is
    /// left out only when its evidence names exactly one run and that is another run; with no
    /// evidence, or evidence for several runs, every run sees it (a `no_avc` may then fail
    /// because of a neighbour, but never pass because a record was hidden).
    pub fn keep_for(&self, run_id: &str, records: Vec<AvcRecord>) -> (Vec<AvcRecord>, usize) {
        let runs = self.runs();
        let me = runs.keys().position(|id| id == run_id);
        let identities: Vec<Identity> = runs.values().cloned().collect();
        drop(runs);
        keep_for(me, &identities, records)
    }

    /// Markers of every other run of the batch (see [`crate::host::state::HostState::without_runs`]).
    pub fn foreign_markers(&self, run_id: &str) -> Vec<String> {
        self.runs()
            .iter()
            .filter(|(id, _)| id.as_str() != run_id)
            .map(|(_, run)| run.marker.clone())
            .collect()
    }
}

/// [`Concurrency::keep_for`] on a snapshot of the runs; `me` is the run's index there.
pub fn keep_for(
    me: Option<usize>,
    runs: &[Identity],
    records: Vec<AvcRecord>,
) -> (Vec<AvcRecord>, usize) {
    let total = records.len();
    let kept: Vec<AvcRecord> = records
        .into_iter()
        .filter(|r| {
            let o = owners(r, runs);
            o.len() != 1 || me.is_some_and(|m| o.contains(&m))
        })
        .collect();
    let left = total - kept.len();
    (kept, left)
}

#[cfg(test)]
pub(crate) mod tests;
