//! Runs a plan on the machine it is on, which must be an SELinux host: the VM's guest agent
//! calls this, and so does the local target. Emits the event stream; gathers evidence for
//! every step; undoes every change it made, whatever happens.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::IoError;
use crate::evidence::audit::NoiseFilter;
use crate::evidence::liveness::{permissive_signs, AuditPath};
use crate::evidence::timeline::Timeline;
use crate::evidence::{Evidence, Outcome};
use crate::host::cleanup::{Cleanup, Undo, Undone};
use crate::host::environment::TargetInfo;
use crate::host::journal::Journal;
use crate::host::layout::{
    Layout, LIBVIRT_URI, QEMU_CONF, QEMU_LOG_DIR, QEMU_PID_DIR, SWTPM_LOG_DIR,
};
use crate::host::libvirt::Libvirt;
use crate::host::sandbox::SandboxDir;
use crate::host::state;
use crate::host::{change, config, probe};
use crate::interrupt::Interrupt;
use crate::run::event::{Event, EventSink};
use crate::run::expect::{check_step, Captured, Captures};
use crate::run::fault::{Fault, Moment};
use crate::run::operations::SandboxSetupError;
use crate::run::parallel::{self, Concurrency};
use crate::run::plan::Plan;
use crate::run::sequence::{self, LabelError, Setup, Steps, Stopped};
use crate::run::settle;
use crate::run::together;
use crate::run::verdict::{applicable_known_bugs, attribute_known_bugs, Tally, Verdict};
use crate::scenario::{Action, CheckKind, LoadedScenario, Name, Requirement, RuntimePlace, Step};
use crate::selinux_ops;

/// The test policy module a probe needs, shipped inside the binary so a host without the
/// project's source can still load it.
const PROBE_MODULE: &str = include_str!("../../../policy-modules/harness-probe.cil");
const PROBE_MODULE_NAME: &str = "harness_probe";
/// How long an expected denial may take to reach the audit log after the action returned.
const AVC_GRACE: Duration = Duration::from_secs(3);

/// What ends a run in `error` instead of a verdict on the policy: the run could not be set up,
/// the target broke under a step, Ctrl-C stopped it, or its cleanup did not put the host back.
/// Its text is the verdict's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Plan(String),
    #[error("cannot read the SELinux mode: {0}")]
    SelinuxMode(String),
    #[error("cannot back up qemu.conf for `doctor`: {0}")]
    QemuConfBackup(String),
    #[error("cannot apply qemu.conf settings: {0}")]
    QemuConf(String),
    #[error("cannot set boolean {name}: {error}")]
    Boolean { name: String, error: String },
    #[error("cannot connect to libvirt: {0}")]
    Libvirt(String),
    /// The sandbox directory or one of its images could not be made or labelled.
    #[error("{0}")]
    Sandbox(String),
    #[error("cannot read the audit log: {0}")]
    AuditLog(String),
    #[error("audit log: {0}")]
    AuditOffset(String),
    #[error("cannot watch labels: {0}")]
    Watch(String),
    #[error("interrupted before step {step}; cleaned up")]
    InterruptedBefore { step: usize },
    #[error("interrupted during step {step}, {moment}; the step was not checked")]
    InterruptedDuring { step: usize, moment: &'static str },
    #[error("the connection to libvirtd was lost during step {step}: libvirtd died or was restarted under the run")]
    LibvirtLost { step: usize },
    #[error("the QEMU of domain {domain} exited during step {step} though no step stopped it (libvirt: {state})")]
    QemuExited {
        domain: String,
        step: usize,
        state: String,
    },
    #[error("cannot tell whether domain {domain} still runs after step {step}: {error}")]
    DomainUnknown {
        domain: String,
        step: usize,
        error: String,
    },
    /// The audit log was rotated, truncated or regrown under the step, could not be read, or
    /// the step's audit proof failed (marker, lost counter, canary).
    #[error("step {step}'s AVC evidence is incomplete: {error}")]
    AvcIncomplete { step: usize, error: String },
    #[error("cannot inject the fault {fault}: {error}")]
    Fault { fault: String, error: String },
    /// What a scenario `requires` should be there and is broken (libvirtd down, the probe
    /// module not loading): an error, where a skip would let a broken target look green.
    #[error("{0}")]
    Requirement(String),
    /// `requires: [libvirt]` and libvirtd does not answer.
    #[error("the scenario requires libvirt, but libvirtd does not answer: {0}")]
    LibvirtDown(String),
    #[error("cannot break the policy ({fault}): {error}")]
    PolicyFault { fault: String, error: String },
    #[error("the run panicked (its cleanup ran on unwind): {0}")]
    Panicked(String),
    #[error("the host differs from before the run after cleanup: {}", .0.join("; "))]
    HostChanged(Vec<String>),
    /// Part of the host could not be read before or after the run: equal snapshots would
    /// prove nothing about it.
    #[error("cleanup is not proven: part of the host state could not be read, so equal snapshots would prove nothing about it: {}", .0.join("; "))]
    HostUnproven(Vec<String>),
    /// A `capture:` could not read what the host shows.
    #[error("step {step} cannot capture ${name} from domain {domain}: {why}; a later reference to it would compare against nothing")]
    Capture {
        step: usize,
        name: String,
        domain: String,
        why: String,
    },
    #[error("cleanup failed, the host may hold leftovers (run `selinux-harness doctor`): {}", .0.join("; "))]
    CleanupFailed(Vec<String>),
}

/// An action that needs libvirt in a scenario that has no connection to it.
#[derive(Debug, thiserror::Error)]
#[error("this scenario has no domains, so no libvirt connection")]
struct NoLibvirt;

/// A captured domain's process label, image label and process ids.
type RealSeclabel = (
    crate::context::Context,
    Option<crate::context::Context>,
    Option<crate::evidence::file_state::Ids>,
);

/// Why a domain's labels could not be read off the host for a `capture:`.
#[derive(Debug, thiserror::Error)]
enum SeclabelError {
    #[error("it has no QEMU process (not running)")]
    NotRunning,
    #[error("cannot read the context of its QEMU (pid {pid}): {source}")]
    Qemu {
        pid: u32,
        #[source]
        source: Box<selinux_ops::SelinuxOpsError>,
    },
    #[error("cannot read the label of {}: {source}", path.display())]
    Label {
        path: PathBuf,
        #[source]
        source: Box<selinux_ops::SelinuxOpsError>,
    },
    #[error("{} has no label", path.display())]
    Unlabelled { path: PathBuf },
}

impl From<Stopped> for RunError {
    fn from(s: Stopped) -> Self {
        match s {
            Stopped::Interrupted { step } => RunError::InterruptedBefore { step },
            Stopped::Before {
                step,
                name,
                image,
                why,
            } => RunError::Capture {
                step,
                name: name.to_string(),
                domain: image.to_string(),
                why: why.to_string(),
            },
        }
    }
}

impl RunError {
    /// The reason of a run that `first` ended (if anything did), after which its cleanup
    /// found `then`: the first cause first, as that is what a reader needs to see.
    fn reason(first: Option<&RunError>, then: &[RunError]) -> String {
        let then = then
            .iter()
            .map(RunError::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        match (first, then.is_empty()) {
            (None, _) => then,
            (Some(e), true) => e.to_string(),
            (Some(e), false) => format!("{e}; then {then}"),
        }
    }
}

/// Where things are on this host (the defaults are libvirt's and auditd's), and how to run.
/// Where it says where things are, it is the host's [`Layout`]: its defaults are the layout's,
/// and the layout a run's state snapshots read is made from it ([`HostPaths::layout`]).
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub images_root: PathBuf,
    pub audit_log: PathBuf,
    pub libvirt_uri: String,
    /// The binary a probe runs as (this harness itself).
    pub probe_binary: PathBuf,
    /// Snapshot the host state that matters (domains, sandbox files with their labels and
    /// xattrs, modules, booleans, qemu.conf) before and after, and call any difference an
    /// error: the proof that cleanup put everything back.
    pub verify_host_state: bool,
    /// Set by SIGINT/SIGTERM (in the VM: by the host's `Interrupt` request): the run stops at
    /// its next check - between steps, after a step's action, in a settle window - and cleans up.
    pub interrupt: Interrupt,
    /// Test-only: break the target at one step (see `fault`). None in every real run.
    pub fault: Option<Fault>,
    /// Set when this run is one of several running at once on the host (`parallel`).
    pub concurrency: Option<Arc<Concurrency>>,
    /// libvirt's per-guest QEMU logs (NAME.log), attached to the record for repro bundles.
    pub qemu_log_dir: PathBuf,
    /// swtpm's per-guest logs (NAME-swtpm.log), removed with QEMU's after the run.
    pub swtpm_log_dir: PathBuf,
    /// Set when the run executes under a policy under test (`policy_batch`): what was loaded,
    /// said in the run's notes and beside a permissive domain's inconclusive.
    pub policy_note: Option<String>,
    /// The policy under test itself (with `policy_note`).
    pub policy: Option<Arc<crate::policy::PolicyUnderTest>>,
}

impl HostPaths {
    /// The host's layout as this run sees it: the state snapshots that prove its cleanup read
    /// the images directory and libvirt the run used.
    pub fn layout(&self) -> Layout {
        Layout {
            images_root: self.images_root.clone(),
            audit_log: self.audit_log.clone(),
            libvirt_uri: Some(self.libvirt_uri.clone()),
            ..Layout::default()
        }
    }
}

impl Default for HostPaths {
    fn default() -> Self {
        let layout = Layout::default();
        Self {
            images_root: layout.images_root,
            audit_log: layout.audit_log,
            libvirt_uri: layout.libvirt_uri.unwrap_or_else(|| LIBVIRT_URI.into()),
            probe_binary: std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into()),
            verify_host_state: false,
            interrupt: Interrupt::new(),
            fault: None,
            concurrency: None,
            qemu_log_dir: QEMU_LOG_DIR.into(),
            swtpm_log_dir: SWTPM_LOG_DIR.into(),
            policy_note: None,
            policy: None,
        }
    }
}

/// A guest log's start holds the command line; the size bounds what one run adds to a report.
pub const GUEST_LOG_LIMIT: usize = 32 * 1024;

/// The logs libvirt kept of the run's guests (they outlive undefine): QEMU's, read into the
/// record (a guest that never started has none), then removed with swtpm's and virtiofsd's
/// (read into the record too), so that the run leaves no file behind. A log that cannot be removed is said in a note (`doctor` finds it).
fn take_guest_logs(paths: &HostPaths, guests: &[(String, String)], sink: &mut dyn EventSink) {
    for (domain, libvirt_name) in guests {
        let path = paths.qemu_log_dir.join(format!("{libvirt_name}.log"));
        let text = match std::fs::read(&path) {
            Ok(bytes) => {
                let mut t = String::from_utf8_lossy(&bytes[..bytes.len().min(GUEST_LOG_LIMIT)])
                    .into_owned();
                if bytes.len() > GUEST_LOG_LIMIT {
                    t.push_str(&format!(
                        "\n[... {} more bytes]\n",
                        bytes.len() - GUEST_LOG_LIMIT
                    ));
                }
                Some(t)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("(cannot read: {e})")),
        };
        if let Some(text) = text {
            sink.emit(Event::GuestLog {
                domain: domain.clone(),
                path: path.display().to_string(),
                text,
            });
        }
        let swtpm_log = paths
            .swtpm_log_dir
            .join(format!("{libvirt_name}-swtpm.log"));
        let virtiofsd_logs = virtiofsd_logs(&paths.qemu_log_dir, libvirt_name);
        for (log, text) in &virtiofsd_logs {
            sink.emit(Event::GuestLog {
                domain: domain.clone(),
                path: log.display().to_string(),
                text: text.clone(),
            });
        }
        let others = virtiofsd_logs.into_iter().map(|(p, _)| p);
        for log in [path, swtpm_log].into_iter().chain(others) {
            match std::fs::remove_file(&log) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => sink.emit(Event::Note {
                    message: format!(
                        "cannot remove the guest log {}: {e} (`selinux-harness doctor` removes it)",
                        log.display()
                    ),
                }),
                _ => {}
            }
        }
    }
}

/// virtiofsd's logs of a guest, NAME-ALIAS-virtiofsd.log beside QEMU's (one per export), each
/// with its start (bounded like QEMU's).
fn virtiofsd_logs(dir: &Path, libvirt_name: &str) -> Vec<(PathBuf, String)> {
    let prefix = format!("{libvirt_name}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                // libvirt's alias of the Nth filesystem is fsN; a domain named `vm1-x` does
                // not pass for `vm1`'s export.
                n.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_prefix("fs"))
                    .and_then(|rest| rest.strip_suffix("-virtiofsd.log"))
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
        })
        .map(|e| {
            let text = std::fs::read(e.path()).map_or_else(
                |err| format!("(cannot read: {err})"),
                |b| String::from_utf8_lossy(&b[..b.len().min(GUEST_LOG_LIMIT)]).into_owned(),
            );
            (e.path(), text)
        })
        .collect();
    out.sort();
    out
}

/// Run one scenario under one variant; returns the verdict it also emitted, or None if Ctrl-C
/// came while the run waited for its turn on the host (then it did nothing and said nothing).
pub fn execute(
    loaded: &LoadedScenario,
    variant: Option<&str>,
    target: &TargetInfo,
    paths: &HostPaths,
    sink: &mut dyn EventSink,
) -> Option<Verdict> {
    execute_with(
        loaded,
        variant,
        target,
        paths,
        sink,
        |plan, cleanup, sink| {
            let mut run = Run {
                loaded,
                plan,
                variant,
                target,
                paths,
                sink,
                cleanup,
                captures: Captures::new(),
                libvirt: None,
                prober: None,
                running: BTreeSet::new(),
                found: Default::default(),
                swtpm_uuids: Default::default(),
                chardev_ends: None,
                kernel_policy: Default::default(),
            };
            let applies = |step: &Step| {
                step.options
                    .when
                    .as_ref()
                    .is_none_or(|w| w.value.applies(variant, target))
            };
            let r = sequence::run(&mut run, &loaded.scenario, applies, &paths.interrupt);
            if matches!(&r, Err(RunError::LibvirtDown(_))) {
                // The run found libvirtd down and touched nothing; the host is back when
                // libvirtd is (systemd, or the VM's init, restarts it), which the host-state
                // check below must see, as cleanup waits for it after a libvirtd that died.
                let _ = crate::host::cleanup::connect_patiently(&paths.libvirt_uri);
            }
            // Close the connection before cleanup restarts libvirtd under it.
            drop(run.libvirt.take());
            r
        },
    )
}

/// `execute` with its steps run by `steps` (the real host's `Run`, or a test's fake): the
/// events around them, the cleanup after them whatever they did, and the verdict.
fn execute_with(
    loaded: &LoadedScenario,
    variant: Option<&str>,
    target: &TargetInfo,
    paths: &HostPaths,
    sink: &mut dyn EventSink,
    steps: impl FnOnce(&Plan, &mut Cleanup, &mut dyn EventSink) -> Result<Verdict, RunError>,
) -> Option<Verdict> {
    let concurrency = paths.concurrency.as_deref();
    let run_id = match concurrency {
        Some(c) => c.register(run_id),
        None => run_id(),
    };
    // Waiting for the host is not part of the run's time.
    let _turn = concurrency.map(|c| {
        c.enter(
            &run_id,
            parallel::exclusive_reason(&loaded.scenario, variant),
        )
    });
    if _turn.is_some() && paths.interrupt.is_set() {
        // Ctrl-C came while this run waited for the host: it must not begin changing it now.
        return None;
    }
    let started = Instant::now();
    let s = &loaded.scenario;
    sink.emit(Event::ScenarioStarted {
        scenario: s.name.value.to_string(),
        variant: variant.map(str::to_string),
        target: target.clone(),
    });
    if let Some(message) = &paths.policy_note {
        sink.emit(Event::Note {
            message: message.clone(),
        });
    } else if brings_policy(s, variant) {
        // compare's baseline pass, or a caller that did not resolve the scenario's policy.
        sink.emit(Event::Note {
            message: "under the target's own policy: the scenario's `modules`/`permissive` are not loaded for this run".into(),
        });
    }
    let state_paths = paths.layout();
    inject_around_run(paths, sink);
    let before = paths
        .verify_host_state
        .then(|| state::snapshot(&state_paths, true));
    let mut cleanup = Cleanup::new();
    let planned = Plan::new(s, variant, &run_id, &paths.images_root);
    let guests: Vec<(String, String)> = planned
        .as_ref()
        .map(|p| {
            p.domains
                .iter()
                .map(|(n, d)| (n.to_string(), d.libvirt_name.clone()))
                .collect()
        })
        .unwrap_or_default();
    let result = match planned {
        Ok(plan) => {
            if let Some(c) = concurrency {
                c.fix_levels(&run_id, fixed_contexts(&plan));
            }
            steps(&plan, &mut cleanup, &mut *sink)
        }
        Err(e) => Err(RunError::Plan(e.to_string())),
    };
    let undone = cleanup.run();
    let failed_cleanup: Vec<String> = undone
        .iter()
        .filter(|u| !u.succeeded())
        .map(Undone::to_string)
        .collect();
    for u in undone {
        sink.emit(Event::CleanedUp(u));
    }
    take_guest_logs(paths, &guests, sink);
    let proof = before.map(|b| {
        let after = state::snapshot(&state_paths, true);
        match concurrency {
            // Other runs of the batch come and go meanwhile; only their names are theirs.
            Some(c) => {
                let others = c.foreign_markers(&run_id);
                state::prove(&b.without_runs(&others), &after.without_runs(&others))
            }
            None => state::prove(&b, &after),
        }
    });
    inject_around_run(paths, sink);
    let mut problems = Vec::new();
    match proof {
        None => {}
        Some(state::Proof::Equal) => sink.emit(Event::HostStateVerified {
            differences: Vec::new(),
        }),
        Some(state::Proof::Differs(changed)) => {
            sink.emit(Event::HostStateVerified {
                differences: changed.clone(),
            });
            problems.push(RunError::HostChanged(changed));
        }
        // No HostStateVerified: nothing was verified.
        Some(state::Proof::Unreadable(unread)) => problems.push(RunError::HostUnproven(unread)),
    }
    if !failed_cleanup.is_empty() {
        problems.push(RunError::CleanupFailed(failed_cleanup));
    }
    let verdict = match result {
        Ok(v) if problems.is_empty() => v,
        r => Verdict::Error {
            reason: RunError::reason(r.as_ref().err(), &problems),
        },
    };
    sink.emit(Event::ScenarioFinished {
        verdict: verdict.clone(),
        millis: started.elapsed().as_millis() as u64,
    });
    Some(verdict)
}

/// Whether the scenario (under `variant`) names policy under test.
fn brings_policy(s: &crate::scenario::Scenario, variant: Option<&str>) -> bool {
    let v = variant.and_then(|v| s.variants.iter().find(|(k, _)| k.as_str() == v));
    std::iter::once(&s.host)
        .chain(v.map(|(_, h)| h))
        .any(|h| !h.modules.is_empty() || !h.permissive.is_empty())
}

/// Test-only: a fault that strikes around the run (see `fault`).
fn inject_around_run(paths: &HostPaths, sink: &mut dyn EventSink) {
    if let Some(f) = paths.fault.as_ref().filter(|f| f.around_run()) {
        let message = f
            .inject_around_run()
            .unwrap_or_else(|e| format!("cannot inject the fault {f:?}: {e}"));
        sink.emit(Event::Note { message });
    }
}

/// Contexts a plan fixes before anything runs: static domain labels and image labels.
fn fixed_contexts(plan: &Plan) -> Vec<crate::context::Context> {
    let mut out: Vec<crate::context::Context> = plan
        .images
        .values()
        .filter_map(|i| i.context.clone())
        .collect();
    for d in plan.domains.values() {
        let (label, imagelabel) = crate::host::libvirt::seclabel_of(&d.xml);
        out.extend(label.into_iter().chain(imagelabel));
    }
    out
}

/// The one rule for a capture that could not be made: evidence is missing, so the run ends in
/// `error` (a later `$NAME` would compare against nothing) - unless the step's own action
/// failed unexpectedly and so made the capture impossible: then the step fails (its `succeeds`
/// check says why) and the capture's absence is a note; a later check that uses it fails for
/// lack of evidence.
fn missing_capture(
    step: usize,
    name: &Name,
    domain: &Name,
    why: String,
    action_failed: bool,
) -> Result<String, RunError> {
    if action_failed {
        Ok(format!(
            "step {step}: ${name} not captured ({why}): the step's action failed; checks that use it fail for lack of evidence"
        ))
    } else {
        Err(RunError::Capture {
            step,
            name: name.to_string(),
            domain: domain.to_string(),
            why,
        })
    }
}

/// Short, unique enough among concurrent runs on one host, and safe in names.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:05x}", std::process::id() & 0xffff, nanos & 0xfffff)
}

struct Run<'a> {
    loaded: &'a LoadedScenario,
    plan: &'a Plan,
    variant: Option<&'a str>,
    target: &'a TargetInfo,
    paths: &'a HostPaths,
    sink: &'a mut dyn EventSink,
    cleanup: &'a mut Cleanup,
    captures: Captures,
    libvirt: Option<Libvirt>,
    prober: Option<probe::Prober>,
    /// Domains a step started and no step has destroyed since: their QEMU must be alive.
    running: BTreeSet<Name>,
    /// Each domain's runtime directory (`$vm1.libdir`) and device paths (`$vm1.swtpmdir`) as
    /// last seen while it ran.
    found: crate::run::bookkeeping::Found,
    /// The UUID of each domain with a TPM, from its live XML: names its swtpm process.
    swtpm_uuids: std::collections::BTreeMap<Name, String>,
    /// Listening sockets of the guests' chardevs, held for the run.
    chardev_ends: Option<crate::run::operations::ChardevEnds>,
    /// The oracle's copy of the kernel's policy, kept from step to step while it is current.
    kernel_policy: crate::oracle::cache::KernelPolicy,
}

/// What a run's steps share once it is set up.
struct Shared {
    audit: AuditPath,
    noise: NoiseFilter,
}

/// A step that has begun: when, where its audit records start, the files it watches.
struct Opened {
    started: Instant,
    start: crate::evidence::liveness::StepStart,
    watched: Vec<(String, PathBuf)>,
    timeline: Option<Timeline>,
}

impl Steps for Run<'_> {
    type Error = RunError;
    type Prepared = Shared;
    type Opened = Opened;

    fn prepare(&mut self, tally: &mut Tally) -> Result<Setup<Shared>, RunError> {
        self.set_up(tally)
    }

    fn note(&mut self, message: String) {
        Run::note(self, message)
    }

    fn open(&mut self, index: usize, step: &Step, shared: &mut Shared) -> Result<Opened, RunError> {
        self.open_step(index, step, &mut shared.audit)
    }

    fn label_now(&self, image: &Name) -> Result<crate::context::Context, LabelError> {
        let path = self.plan.image_path(image);
        selinux_ops::file_context(path)?.ok_or_else(|| LabelError::Unlabelled(path.to_path_buf()))
    }

    fn captures_mut(&mut self) -> &mut Captures {
        &mut self.captures
    }

    fn finish(
        &mut self,
        index: usize,
        step: &Step,
        shared: &mut Shared,
        opened: Opened,
        tally: &mut Tally,
    ) -> Result<(), RunError> {
        self.finish_step(index, step, shared, opened, tally)
    }
}

impl Run<'_> {
    fn note(&mut self, message: String) {
        self.sink.emit(Event::Note { message });
    }

    /// Everything before the first step: the SELinux mode, the requirements, the host's
    /// settings, the libvirt connection, the sandbox and the audit path.
    fn set_up(&mut self, tally: &mut Tally) -> Result<Setup<Shared>, RunError> {
        match selinux_ops::is_enforcing() {
            Ok(true) => {}
            Ok(false) => tally.inconclusive_because("SELinux is permissive on the target".into()),
            Err(e) => return Err(RunError::SelinuxMode(e.to_string())),
        }
        // A fault for "step 0" strikes before the requirements are looked at (a libvirtd that
        // is down when the run begins).
        self.inject_fault(0, Moment::BeforeAction)?;
        if let Some(reason) = self.unmet_requirements()? {
            return Ok(Setup::Skip(reason));
        }
        self.apply_host_settings()?;
        if let Some(policy) = self.paths.fault.as_ref().and_then(Fault::policy) {
            let done = policy
                .apply(self.cleanup)
                .map_err(|e| RunError::PolicyFault {
                    fault: format!("{policy:?}"),
                    error: e.to_string(),
                })?;
            self.note(done);
        }
        if !self.plan.domains.is_empty() {
            self.libvirt = Some(
                Libvirt::connect(&self.paths.libvirt_uri)
                    .map_err(|e| RunError::Libvirt(e.message))?,
            );
        }
        self.make_sandbox()
            .map_err(|e| RunError::Sandbox(e.to_string()))?;
        let audit = AuditPath::open(&self.paths.audit_log, &self.plan.run_id)
            .map_err(|e| RunError::AuditLog(e.to_string()))?;
        let roles = self.resolve_roles();
        for reason in self.permissive_types()? {
            tally.inconclusive_because(reason);
        }
        self.note_dontaudit()?;
        let noise = NoiseFilter::for_this_process().with_roles(roles.as_ref());
        Ok(Setup::Ready(Shared { audit, noise }))
    }

    /// The policy's roles for libvirt on this target (`$domain`, `$image`, `$content`), read
    /// from its contexts files before the first step and kept with the captures, so every
    /// check resolves them as it resolves `$vm1`; a report names both the role and the type.
    /// A policy without those files (no libvirt policy) resolves nothing: a check that names
    /// a role then fails with "not resolved", and the note says why.
    fn resolve_roles(&mut self) -> Option<crate::scenario::RoleTypes> {
        let roles = match crate::host::virt_contexts::role_types(crate::run::plan::VIRT_TYPE) {
            Ok(r) => r,
            Err(e) => {
                self.note(format!("policy roles unavailable: {e}"));
                return None;
            }
        };
        for role in crate::scenario::Role::ALL {
            if let Ok(name) = role.name().parse::<Name>() {
                self.captures.insert(
                    name,
                    Captured {
                        label: roles.get(role).clone(),
                        imagelabel: None,
                        ids: None,
                    },
                );
            }
        }
        self.note(roles.describe());
        Some(roles)
    }

    /// The type a `type:` names, if it is known before the first step (a literal or a role).
    fn named_type(&self, v: &crate::scenario::Valued<String>) -> Option<String> {
        match v {
            crate::scenario::Valued::Literal(t) => Some(t.clone()),
            crate::scenario::Valued::Capture(r) => r
                .role()
                .and_then(|_| self.captures.get(&r.name))
                .map(|c| c.label.kind.clone()),
        }
    }

    /// The types this run depends on that the loaded policy makes permissive: the kernel logs
    /// a permissive domain's denial once and then allows it silently, so neither records nor
    /// their absence say anything about them.
    fn permissive_types(&self) -> Result<Vec<String>, RunError> {
        let mut named: Vec<String> = fixed_contexts(self.plan)
            .into_iter()
            .map(|c| c.kind)
            .collect();
        for step in &self.loaded.scenario.steps {
            if let Action::Probe(p) = &step.action {
                named.push(p.context.kind.clone());
            }
            let e = &step.options.expect;
            named.extend(
                e.process
                    .values()
                    .filter_map(|m| m.kind.as_ref().and_then(|k| self.named_type(&k.value))),
            );
            let patterns = match &e.avc {
                Some(crate::scenario::AvcExpect::Denials(list)) => list.iter().collect(),
                _ => Vec::new(),
            };
            for m in patterns.into_iter().chain(&e.no_avc) {
                named.extend(
                    m.value
                        .scontext
                        .as_ref()
                        .and_then(|c| c.kind.as_ref())
                        .and_then(|k| self.named_type(&k.value)),
                );
            }
        }
        let mut out = Vec::new();
        for kind in crate::evidence::liveness::involved_types(named) {
            if crate::evidence::liveness::permissive_type(&kind)
                .map_err(|e| RunError::SelinuxMode(e.to_string()))?
            {
                let mut reason = format!("the loaded policy makes {kind} permissive (a permissive domain's denials are allowed and logged at most once)");
                if let Some(p) = &self.paths.policy {
                    if p.permissive.contains(&kind) {
                        reason.push_str(&format!(
                            " - the policy under test's `permissive: [{kind}]` made it so"
                        ));
                    } else {
                        reason.push_str(&format!(
                            " - under the policy under test ({})",
                            p.describe()
                        ));
                    }
                }
                out.push(reason);
            }
        }
        Ok(out)
    }

    /// Says which denials of QEMU's domains on the run's image types the loaded policy keeps
    /// from the log (`dontaudit`): such a denial cannot fail `avc: none`. Not disabled
    /// (`semodule -DB` rebuilds the policy, ~35 s each way in the TCG guest), but never hidden.
    fn note_dontaudit(&mut self) -> Result<(), RunError> {
        let mut sources = vec!["svirt_t".to_string(), "svirt_tcg_t".to_string()];
        // The roles as this policy resolves them (`$domain`, `$image`, `$content`).
        let role_type = |r: crate::scenario::Role| {
            r.name()
                .parse::<Name>()
                .ok()
                .and_then(|n| self.captures.get(&n))
                .map(|c| c.label.kind.clone())
        };
        sources.extend(role_type(crate::scenario::Role::Domain));
        for step in &self.loaded.scenario.steps {
            if let Action::Probe(p) = &step.action {
                sources.push(p.context.kind.clone());
            }
        }
        let mut targets = vec!["svirt_image_t".to_string(), "virt_image_t".to_string()];
        targets.extend(role_type(crate::scenario::Role::Image));
        targets.extend(role_type(crate::scenario::Role::Content));
        targets.extend(
            self.plan
                .images
                .values()
                .filter_map(|i| i.context.as_ref().map(|c| c.kind.clone())),
        );
        sources.sort();
        sources.dedup();
        targets.sort();
        targets.dedup();
        for s in &sources {
            for t in &targets {
                let perms = crate::evidence::liveness::dontaudited_file_perms(s, t)
                    .map_err(|e| RunError::SelinuxMode(e.to_string()))?;
                if !perms.is_empty() {
                    self.note(format!(
                        "dontaudit: the policy keeps denials of {{ {} }} by {s} on {t} files from the log; such a denial cannot fail `avc: none`",
                        perms.join(" ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// What the target lacks for good (no MCS policy: a skip), or `Err` when what it should
    /// offer is broken - a libvirtd that does not answer, a probe module that does not load -
    /// which is an `error`: a skip there would let a broken target look green.
    fn unmet_requirements(&mut self) -> Result<Option<String>, RunError> {
        for r in &self.loaded.scenario.requires {
            match r {
                Requirement::Enforcing => {}
                Requirement::Mcs => {
                    if !selinux_ops::mls_enabled() {
                        return Ok(Some("the target's policy has no MLS/MCS".into()));
                    }
                }
                Requirement::Libvirt => {
                    if let Err(e) = Libvirt::connect(&self.paths.libvirt_uri) {
                        return Err(RunError::LibvirtDown(e.message));
                    }
                }
                Requirement::ProbeModule => self.ensure_probe_module()?,
            }
        }
        Ok(None)
    }

    /// The probe module loaded (for this run, unless it already was); a requirement error
    /// when it cannot be.
    fn ensure_probe_module(&mut self) -> Result<(), RunError> {
        let failed = |e: &dyn std::fmt::Display| {
            RunError::Requirement(format!("cannot load the probe policy module: {e}"))
        };
        let installed = config::installed_modules().map_err(|e| failed(&e))?;
        if installed.iter().any(|m| m == PROBE_MODULE_NAME) {
            return Ok(());
        }
        let tmp = std::env::temp_dir();
        let dir = tempfile::tempdir()
            .map_err(|e| failed(&IoError::at("cannot create a directory in", &tmp)(e)))?;
        let file = dir.path().join(format!("{PROBE_MODULE_NAME}.cil"));
        std::fs::write(&file, PROBE_MODULE)
            .map_err(|e| failed(&IoError::at("cannot write", &file)(e)))?;
        // Recorded first, so `doctor` can remove it if this run dies before its cleanup.
        Journal::default()
            .record_module(PROBE_MODULE_NAME)
            .map_err(|e| failed(&format!("cannot record the module for `doctor`: {e}")))?;
        change::install_module(&file, self.cleanup).map_err(|e| failed(&e))?;
        self.note(format!(
            "loaded policy module {PROBE_MODULE_NAME} for this run"
        ));
        Ok(())
    }

    fn apply_host_settings(&mut self) -> Result<(), RunError> {
        if !self.plan.qemu_conf.is_empty() {
            Journal::default()
                .backup_qemu_conf(Path::new(QEMU_CONF))
                .map_err(|e| RunError::QemuConfBackup(e.to_string()))?;
            change::QemuConf::new(QEMU_CONF)
                .apply(&self.plan.qemu_conf, self.cleanup)
                .map_err(|e| RunError::QemuConf(e.to_string()))?;
            let set: Vec<String> = self
                .plan
                .qemu_conf
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            self.note(format!(
                "qemu.conf: {} (libvirtd restarted)",
                set.join(", ")
            ));
        }
        for (name, value) in &self.plan.booleans {
            change::set_boolean(name, *value, self.cleanup).map_err(|e| RunError::Boolean {
                name: name.clone(),
                error: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn make_sandbox(&mut self) -> Result<(), SandboxSetupError> {
        let path = &self.plan.sandbox;
        // Never through a symlink, never over an existing file: see `sandbox`.
        let dir = SandboxDir::create(path, 0o755)?;
        self.cleanup.push(Undo::RemoveDir { path: path.clone() });
        selinux_ops::restore_default_context(path)?;
        let release = super::image_make::kernel_release()?;
        // Directory images, open, for the files made `in` them.
        let mut subdirs = std::collections::BTreeMap::new();
        for name in super::image_make::creation_order(&self.plan.images) {
            let img = &self.plan.images[name];
            let parent = img
                .within
                .as_ref()
                .and_then(|d| subdirs.get(d))
                .unwrap_or(&dir);
            if let Some(sub) = super::image_make::make(parent, name, img, &release)? {
                subdirs.insert(name.clone(), sub);
            }
            if img.source == super::plan::ImageSource::ByStep {
                continue;
            }
            match &img.context {
                Some(c) => selinux_ops::set_file_context(&img.path, c),
                None => selinux_ops::restore_default_context(&img.path),
            }
            .map_err(|source| SandboxSetupError::LabelImage {
                path: img.path.clone(),
                source: Box::new(source),
            })?;
        }
        self.chardev_ends = Some(crate::run::operations::prepare_chardevs(
            &self.loaded.scenario,
            &dir,
        )?);
        Ok(())
    }

    /// The probe binary is a qemu_exec_t copy of this one, made on first use.
    fn prober(&mut self) -> Result<&probe::Prober, probe::ProbeError> {
        let p = match self.prober.take() {
            Some(p) => p,
            None => probe::Prober::prepare_from(
                &self.paths.probe_binary,
                &self.plan.sandbox,
                self.cleanup,
            )?,
        };
        Ok(self.prober.insert(p))
    }

    fn lv(&self) -> Result<&Libvirt, NoLibvirt> {
        self.libvirt.as_ref().ok_or(NoLibvirt)
    }

    fn define(&mut self, n: &Name) -> Outcome {
        let d = &self.plan.domains[n];
        let Ok(lv) = self.lv() else {
            return Outcome::Other {
                message: "no libvirt connection".into(),
            };
        };
        match lv.define(&d.xml) {
            Ok(()) => {
                self.cleanup.push(Undo::Domain {
                    uri: self.paths.libvirt_uri.clone(),
                    name: d.libvirt_name.clone(),
                });
                Outcome::Ok
            }
            Err(e) => Outcome::Libvirt(e),
        }
    }

    /// Perform a step's action; one Action evidence per domain or probe it touched.
    fn act(&mut self, action: &Action) -> Vec<Evidence> {
        let plan = self.plan;
        let mut out = Vec::new();
        let mut push = |what: String, outcome: Outcome| {
            out.push(Evidence::Action {
                action: what,
                outcome,
            })
        };
        let lv_outcome = |r: Result<(), crate::evidence::LibvirtError>| match r {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Libvirt(e),
        };
        match action {
            Action::Define(t) => {
                for n in t.names() {
                    let o = self.define(&n.value);
                    push(format!("define {}", n.value), o);
                }
            }
            Action::Start(t) => {
                // Defines one by one (each records its undo), then the starts at once.
                let mut defined = Vec::new();
                for n in t.names() {
                    let name = plan.domain_name(&n.value);
                    let exists = self.lv().map(|lv| lv.exists(name).unwrap_or(false));
                    let o = match exists {
                        Ok(false) => self.define(&n.value),
                        _ => Outcome::Ok,
                    };
                    defined.push((n.value.clone(), o));
                }
                let lv = self.lv();
                let outcomes = together::each_at_once(&defined, |(n, o)| {
                    if *o != Outcome::Ok {
                        return o.clone();
                    }
                    match &lv {
                        Ok(lv) => lv_outcome(lv.start(plan.domain_name(n))),
                        Err(message) => Outcome::Other {
                            message: message.to_string(),
                        },
                    }
                });
                for ((n, _), o) in defined.into_iter().zip(outcomes) {
                    if o == Outcome::Ok {
                        self.running.insert(n.clone());
                    }
                    push(format!("start {n}"), o);
                }
            }
            Action::Destroy(t) => {
                let names: Vec<Name> = t.names().into_iter().map(|n| n.value.clone()).collect();
                let lv = self.lv();
                let outcomes = together::each_at_once(&names, |n| match &lv {
                    Ok(lv) => lv_outcome(lv.destroy(plan.domain_name(n))),
                    Err(message) => Outcome::Other {
                        message: message.to_string(),
                    },
                });
                for (n, o) in names.into_iter().zip(outcomes) {
                    if o == Outcome::Ok {
                        self.running.remove(&n);
                    }
                    push(format!("destroy {n}"), o);
                }
            }
            Action::Reset(t) | Action::Undefine(t) => {
                for n in t.names() {
                    let name = plan.domain_name(&n.value);
                    let o = match self.lv() {
                        Ok(lv) => lv_outcome(match action {
                            Action::Reset(_) => lv.reset(name),
                            _ => lv.undefine(name),
                        }),
                        Err(e) => Outcome::Other {
                            message: e.to_string(),
                        },
                    };
                    push(format!("{} {}", action.keyword(), n.value), o);
                }
            }
            Action::AttachDisk(a) => {
                let xml = plan.attach_xml(a);
                let o = match self.lv() {
                    Ok(lv) => lv_outcome(lv.attach_disk(
                        plan.domain_name(&a.domain.value),
                        &xml,
                        !a.config,
                    )),
                    Err(e) => Outcome::Other {
                        message: e.to_string(),
                    },
                };
                push(
                    format!(
                        "attach_disk {} -> {} ({})",
                        a.image.value, a.domain.value, a.target.value
                    ),
                    o,
                );
            }
            Action::DetachDisk(d) => {
                let xml = plan.detach_xml(&d.target.value);
                let o = match self.lv() {
                    Ok(lv) => {
                        lv_outcome(lv.detach_disk(plan.domain_name(&d.domain.value), &xml, d.live))
                    }
                    Err(e) => Outcome::Other {
                        message: e.to_string(),
                    },
                };
                push(
                    format!("detach_disk {} from {}", d.target.value, d.domain.value),
                    o,
                );
            }
            Action::Relabel(r) => {
                let path = plan.image_path(&r.image.value);
                let o = match selinux_ops::set_file_context(path, &r.context) {
                    Ok(()) => Outcome::Ok,
                    Err(e) => Outcome::Other {
                        message: e.to_string(),
                    },
                };
                push(format!("relabel {} to {}", r.image.value, r.context), o);
            }
            Action::Probe(p) => {
                let path = plan.image_path(&p.image.value);
                let access = match p.access {
                    crate::scenario::Access::Read => probe::Access::Read,
                    crate::scenario::Access::Write => probe::Access::Write,
                    crate::scenario::Access::Getattr => probe::Access::Getattr,
                };
                let o =
                    match self.prober() {
                        Ok(prober) => prober.run(&p.context, access, path).unwrap_or_else(|e| {
                            Outcome::Other {
                                message: e.to_string(),
                            }
                        }),
                        Err(e) => Outcome::Other {
                            message: e.to_string(),
                        },
                    };
                push(
                    format!("probe {:?} of {} as {}", p.access, p.image.value, p.context)
                        .to_lowercase(),
                    o,
                );
            }
            Action::Setxattr(x) => {
                let path = plan.image_path(&x.image.value);
                let o = match crate::run::expect::bookkeeping::xattr_text_value(
                    &x.value.0,
                    &self.captures,
                ) {
                    Ok(v) => crate::run::bookkeeping::set_xattr(path, &x.name, &v, self.cleanup),
                    Err(e) => Outcome::Other {
                        message: e.to_string(),
                    },
                };
                push(
                    format!("setxattr {} on {} to {}", x.name, x.image.value, x.value.0),
                    o,
                );
            }
            Action::Rmxattr(x) => {
                let path = plan.image_path(&x.image.value);
                let o = crate::run::bookkeeping::rm_xattr(path, &x.name, self.cleanup);
                push(format!("rmxattr {} on {}", x.name, x.image.value), o);
            }
            Action::RestartDaemon(r) => {
                // The old connection dies with the daemon; close it first.
                drop(self.libvirt.take());
                if r.qemu_conf.is_empty() {
                    let (o, lv) = crate::run::bookkeeping::restart_daemon(&self.paths.libvirt_uri);
                    self.libvirt = lv;
                    push("restart libvirt's daemon".into(), o);
                } else {
                    let settings = r.qemu_conf_lines();
                    let (o, lv) = crate::run::daemon_restart::restart_with(
                        &self.paths.libvirt_uri,
                        &settings,
                        !self.plan.qemu_conf.is_empty(),
                        self.cleanup,
                    );
                    self.libvirt = lv;
                    let set: Vec<String> =
                        settings.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    push(
                        format!("restart libvirt's daemon with qemu.conf {}", set.join(", ")),
                        o,
                    );
                    if self.libvirt.is_some() {
                        self.note("qemu.conf put back and libvirt's daemon restarted".into());
                    }
                }
            }
            Action::Save(_)
            | Action::Restore(_)
            | Action::Managedsave(_)
            | Action::Dump(_)
            | Action::ChangeMedia(_) => {
                let (what, o, runs) = match self.libvirt.as_ref() {
                    Some(lv) => crate::run::operations::perform(
                        lv,
                        plan,
                        &self.paths.libvirt_uri,
                        action,
                        self.cleanup,
                    ),
                    None => (
                        action.keyword().to_string(),
                        Outcome::Other {
                            message: "no libvirt connection".into(),
                        },
                        None,
                    ),
                };
                match runs {
                    Some((n, true)) => {
                        self.running.insert(n);
                    }
                    Some((n, false)) => {
                        self.running.remove(&n);
                    }
                    None => {}
                }
                push(what, o);
            }
            Action::SnapshotCreate(_)
            | Action::Blockcommit(_)
            | Action::Blockcopy(_)
            | Action::BlockJob(_) => {
                let (what, o) = match self.lv() {
                    Ok(lv) => super::blockjob::act(lv, plan, action, &self.paths.interrupt)
                        .unwrap_or_else(|| {
                            (
                                action.keyword().to_string(),
                                Outcome::Other {
                                    message: "not a storage action".into(),
                                },
                            )
                        }),
                    Err(e) => (
                        action.keyword().to_string(),
                        Outcome::Other {
                            message: e.to_string(),
                        },
                    ),
                };
                push(what, o);
            }
        }
        out
    }

    /// Where each domain's runtime paths are now, from one read of its live XML: a running
    /// domain's runtime directory, and for a defined domain with such devices swtpm's state and
    /// log and (running) its RAM directory. Kept once seen: swtpm's state outlives a start that
    /// failed, and `absent: [$vm1.libdir]` after a destroy or an undefine asks about the
    /// directory it had.
    fn find_runtime_paths(&mut self) {
        use crate::run::bookkeeping::{domain_id, libdir, QEMU_LIB_DIR};
        use crate::run::device_paths;
        let ram_root = device_paths::memory_backing_dir(&self.plan.qemu_conf);
        let names: Vec<Name> = self.loaded.scenario.domains.keys().cloned().collect();
        for n in names {
            let Some(d) = self.loaded.scenario.domains.get(&n) else {
                continue;
            };
            let mut places = Vec::new();
            if d.tpm.is_some() {
                places.extend([RuntimePlace::Swtpmdir, RuntimePlace::Swtpmlog]);
            }
            if d.memory_backing.is_some() {
                places.push(RuntimePlace::Ramdir);
            }
            if !d.virtiofs.is_empty() {
                places.push(RuntimePlace::Fspid);
            }
            let has_tpm = d.tpm.is_some();
            let running = self.running.contains(&n);
            if !running && places.is_empty() {
                continue;
            }
            let name = self.plan.domain_name(&n).to_string();
            let Some(xml) = self.lv().ok().and_then(|lv| lv.live_xml(&name).ok()) else {
                continue;
            };
            if running {
                if let Some(dir) =
                    domain_id(&xml).and_then(|id| libdir(Path::new(QEMU_LIB_DIR), id))
                {
                    self.found.libdirs.insert(n.clone(), dir);
                }
            }
            if places.is_empty() {
                continue;
            }
            let Some(live) = device_paths::live_domain(&xml) else {
                continue;
            };
            for p in places {
                if let Some(path) = device_paths::find(p, &live, &name, &ram_root) {
                    self.found.places.insert((n.clone(), p), path);
                }
            }
            if has_tpm {
                self.swtpm_uuids.insert(n.clone(), live.uuid);
            }
        }
    }

    /// `SwtpmProcess` evidence for each named domain whose swtpm runs now.
    fn swtpm_processes(&self, domains: &[&Name]) -> Vec<Evidence> {
        domains
            .iter()
            .filter_map(|d| {
                let uuid = self.swtpm_uuids.get(*d)?;
                let pid = crate::run::device_paths::swtpm_pid(Path::new("/proc"), uuid)?;
                Some(Evidence::SwtpmProcess {
                    domain: d.to_string(),
                    pid,
                    context: selinux_ops::process_context(pid).ok(),
                    ids: crate::evidence::file_state::process_ids(pid).ok(),
                })
            })
            .collect()
    }

    /// `HelperProcess` evidence for each helper `helper_process` names: the running processes
    /// of that name whose command line names the domain's UUID or one of its virtiofs exports.
    fn helper_processes(&self, expect: &crate::scenario::Expect) -> Vec<Evidence> {
        let mut out = Vec::new();
        for (d, helpers) in &expect.helper_process {
            let d = &d.value;
            let mut needles: Vec<String> = self
                .loaded
                .scenario
                .domains
                .get(d)
                .map(|dom| {
                    dom.virtiofs
                        .iter()
                        .filter_map(|f| self.plan.images.get(&f.value.dir.value))
                        .map(|i| i.path.to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let name = self.plan.domain_name(d).to_string();
            if let Some(live) = self
                .lv()
                .ok()
                .and_then(|lv| lv.live_xml(&name).ok())
                .and_then(|xml| crate::run::device_paths::live_domain(&xml))
            {
                needles.push(live.uuid);
            }
            for h in helpers.keys() {
                let h = h.value.as_str();
                for pid in crate::run::device_paths::helper_pids(Path::new("/proc"), h, &needles) {
                    out.push(Evidence::HelperProcess {
                        domain: d.to_string(),
                        helper: h.to_string(),
                        pid,
                        context: selinux_ops::process_context(pid).ok(),
                        ids: crate::evidence::file_state::process_ids(pid).ok(),
                    });
                }
            }
        }
        out
    }

    /// Says step `index` started and opens its evidence: the audit offset, the watches.
    fn open_step(
        &mut self,
        index: usize,
        step: &Step,
        audit: &mut AuditPath,
    ) -> Result<Opened, RunError> {
        let o = &step.options;
        let title = o
            .title
            .clone()
            .unwrap_or_else(|| self.plan.virsh(&step.action).join("; "));
        self.sink.emit(Event::StepStarted { step: index, title });
        let started = Instant::now();
        let start = audit
            .begin()
            .map_err(|e| RunError::AuditOffset(e.to_string()))?;
        if let Some(c) = self.paths.concurrency.as_deref() {
            c.audit_from(start.offset);
        }
        let watched: Vec<(String, PathBuf)> = o
            .watch
            .iter()
            .map(|w| {
                (
                    w.value.to_string(),
                    self.plan.image_path(&w.value).to_path_buf(),
                )
            })
            .collect();
        let timeline = if watched.is_empty() {
            None
        } else {
            Some(
                Timeline::watch(&watched, "security.selinux")
                    .map_err(|e| RunError::Watch(e.to_string()))?,
            )
        };
        Ok(Opened {
            started,
            start,
            watched,
            timeline,
        })
    }

    /// The step's action and everything after it: settle, captures, evidence, checks.
    fn finish_step(
        &mut self,
        index: usize,
        step: &Step,
        Shared { audit, noise }: &mut Shared,
        opened: Opened,
        tally: &mut Tally,
    ) -> Result<(), RunError> {
        let o = &step.options;
        let Opened {
            started,
            start,
            watched,
            timeline,
        } = opened;
        self.inject_fault(index, Moment::BeforeAction)?;
        // What the settle's condition starts from is read before the action it follows.
        let settle = o.settle.as_ref().map(|s| {
            settle::Pending::before_action(
                s,
                self.plan,
                &self.loaded.scenario,
                self.libvirt.as_ref(),
            )
        });
        let mut evidence = self.act(&step.action);
        self.find_runtime_paths();
        self.publish_live();
        self.target_intact(index, "after its action")?;
        self.inject_fault(index, Moment::AfterAction)?;
        if let Some(pending) = settle {
            // See StepOptions::settle; Ctrl-C cuts it short.
            let shared_by = self
                .paths
                .concurrency
                .as_deref()
                .map_or(1, Concurrency::running);
            let settled = pending.wait(
                self.libvirt.as_ref(),
                audit,
                &start,
                &self.paths.interrupt,
                shared_by,
            );
            self.note(settled.describe(index, pending.image()));
            self.target_intact(index, "in its settle window")?;
            let action_ok = evidence
                .iter()
                .all(|e| !matches!(e, Evidence::Action { outcome, .. } if *outcome != Outcome::Ok));
            if let Some(reason) = settled.unproven_absence(index, action_ok, &o.expect) {
                tally.inconclusive_because(reason);
            }
        }
        // Each watched file's inode keys the kernel's relabel records, merged in once the
        // step's audit evidence is closed.
        let mut watch_inodes = Vec::new();
        let watch_started = timeline.as_ref().map(|t| t.started_unix_us);
        if let Some(mut t) = timeline {
            for r in t.finish_report() {
                watch_inodes.push((r.name.clone(), r.ino));
                evidence.push(Evidence::Timeline {
                    file: r.name,
                    changes: r.changes,
                    unexplained_events: r.unexplained_events,
                });
            }
        }
        // An action that failed though the step expects none is the step's failure (its
        // `succeeds` check says so); a capture it made impossible is its consequence, not a
        // broken target.
        let action_failed = o.expect.error.is_none()
            && evidence.iter().any(|e| {
                matches!(e, Evidence::Action { outcome, .. } if *outcome != crate::evidence::Outcome::Ok)
            });
        for (name, dom) in &o.capture {
            let (claimed, claimed_image) = self.live_seclabel(&dom.value);
            let (label, imagelabel, ids) = match self.real_seclabel(&dom.value) {
                Ok(real) => real,
                Err(why) => {
                    let note =
                        missing_capture(index, name, &dom.value, why.to_string(), action_failed)?;
                    self.note(note);
                    continue;
                }
            };
            for (what, claim, real) in [
                ("label", &claimed, Some(&label)),
                ("imagelabel", &claimed_image, imagelabel.as_ref()),
            ] {
                if claim.as_ref() != real {
                    let show = |c: Option<&crate::context::Context>| {
                        c.map_or("nothing".to_string(), |c| c.to_string())
                    };
                    self.note(format!(
                        "step {index}: ${name} {what}: libvirt's live XML claims {}, the host shows {} (the capture is what the host shows)",
                        show(claim.as_ref()),
                        show(real)
                    ));
                }
            }
            evidence.push(Evidence::DomainSeclabel {
                domain: dom.value.to_string(),
                label: claimed,
                imagelabel: claimed_image,
                process: Some(label.clone()),
                image: imagelabel.clone(),
            });
            self.captures.insert(
                name.clone(),
                Captured {
                    label,
                    imagelabel,
                    ids,
                },
            );
        }
        evidence.extend(self.labels());
        evidence.extend(crate::run::bookkeeping::file_states(
            &o.expect.named_files(),
            self.plan,
            &self.found,
        ));
        let owners: Vec<&Name> = o.expect.process_owner.keys().map(|d| &d.value).collect();
        evidence.extend(crate::run::bookkeeping::process_owners(&owners, self.plan));
        let swtpms: BTreeSet<&Name> = o
            .expect
            .swtpm_process
            .keys()
            .chain(o.expect.swtpm_owner.keys())
            .map(|d| &d.value)
            .collect();
        let swtpms: Vec<&Name> = swtpms.into_iter().collect();
        evidence.extend(self.swtpm_processes(&swtpms));
        evidence.extend(self.helper_processes(&o.expect));
        for (name, path) in &watched {
            if let Ok(xattrs) = selinux_ops::remembered_owner(path) {
                evidence.push(Evidence::RememberedOwner {
                    file: name.clone(),
                    xattrs,
                });
            }
        }

        // The barrier: after it, no record of the step's action is still on its way.
        let closed = audit
            .close(&start, index)
            .map_err(|e| RunError::AvcIncomplete {
                step: index,
                error: e.to_string(),
            })?;
        for reason in permissive_signs(index, &start, &closed) {
            tally.inconclusive_because(reason);
        }
        if let Some(started) = watch_started {
            crate::evidence::relabels::into_timelines(
                &mut evidence,
                &watch_inodes,
                started,
                &closed.audit.records,
                &crate::evidence::relabels::watched_relabels_audited(),
            );
        }
        let mut raw = Some(closed.audit.records);
        let is_probe = matches!(step.action, Action::Probe(_));
        let ignore = &self.loaded.scenario.ignore_avc;
        let deadline = Instant::now() + AVC_GRACE;
        let mut left_to_others = 0;
        let (avcs, checks) = loop {
            let mut records = match raw.take() {
                Some(r) => r,
                None => {
                    audit
                        .read(&start)
                        .map_err(|e| RunError::AvcIncomplete {
                            step: index,
                            error: e.to_string(),
                        })?
                        .records
                }
            };
            // The kernel's relabel records are the timeline's evidence, not denials.
            records.retain(|r| !crate::evidence::relabels::is_granted_relabel(r));
            if let Some(c) = self.paths.concurrency.as_deref() {
                c.observe_running(Path::new(QEMU_PID_DIR));
                c.learn_machines(audit.log());
                (records, left_to_others) = c.keep_for(&self.plan.run_id, records);
            }
            let mut all = evidence.clone();
            let avcs = noise.apply(records).into_evidence();
            all.push(avcs.clone());
            let checks = check_step(&o.expect, is_probe, &all, &self.captures, ignore);
            // An expected denial may still be on its way to the log: wait for it, briefly.
            let waiting = o.expect.avc.is_some()
                && checks
                    .iter()
                    .any(|c| !c.passed && c.key.kind() == CheckKind::AvcDenial);
            if !waiting || Instant::now() >= deadline || self.paths.interrupt.is_set() {
                break (avcs, checks);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        evidence.push(avcs);
        let missing: Vec<crate::run::explain::MissingDenial> = match &o.expect.avc {
            // A probe step's expected denial is the probe's access, explained with it.
            Some(crate::scenario::AvcExpect::Denials(list)) if !is_probe => checks
                .iter()
                .filter_map(|c| match c.key {
                    crate::scenario::CheckKey::AvcDenial(n) if !c.passed => Some(n),
                    _ => None,
                })
                .filter_map(|n| list.get(n).map(|m| (n, &m.value)))
                .map(|(n, m)| crate::run::explain::MissingDenial {
                    check: format!("avc.{n}"),
                    access: crate::run::explain::pattern_access(m, &self.captures),
                })
                .collect(),
            _ => Vec::new(),
        };
        let explanations = self.explanations(step, &evidence, &missing);
        if left_to_others > 0 {
            self.note(format!(
                "step {index}: {left_to_others} AVC record(s) left out: their pid, MCS level or path belongs to another run of this batch"
            ));
        }
        for e in evidence {
            self.sink.emit(Event::Evidence {
                step: index,
                evidence: e,
            });
        }
        let mut checks = checks;
        let bugs = applicable_known_bugs(&o.known_bug, self.variant, self.target);
        let bugs = attribute_known_bugs(&mut checks, &bugs, &self.captures);
        tally.add_step(&checks, &bugs);
        for c in checks {
            self.sink.emit(Event::ExpectationChecked {
                step: index,
                check: c,
            });
        }
        for explanation in explanations {
            if let crate::oracle::Subject::Access {
                observed,
                predicted,
                disagreement: Some(why),
            } = &explanation.subject
            {
                self.note(format!(
                    "step {index}: the probe's access was {observed}, the kernel's policy predicts {predicted}: {why}"
                ));
            }
            self.sink.emit(Event::Explained {
                step: index,
                explanation,
            });
        }
        self.sink.emit(Event::StepFinished {
            step: index,
            millis: started.elapsed().as_millis() as u64,
        });
        Ok(())
    }

    /// The oracle's answers for the step (`run::explain`): each denied access among its AVC
    /// records, and a probe's access beside the kernel's prediction.
    fn explanations(
        &mut self,
        step: &Step,
        evidence: &[Evidence],
        missing: &[crate::run::explain::MissingDenial],
    ) -> Vec<crate::oracle::Explanation> {
        let records: Vec<crate::evidence::AvcRecord> = evidence
            .iter()
            .filter_map(|e| match e {
                Evidence::Avcs { records, .. } => Some(records.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let probe = match &step.action {
            Action::Probe(p) => evidence.iter().find_map(|e| match e {
                Evidence::Action { outcome, .. } => Some(crate::run::explain::ProbeAccess {
                    context: p.context.clone(),
                    target: selinux_ops::file_context(self.plan.image_path(&p.image.value))
                        .ok()
                        .flatten(),
                    access: p.access,
                    allowed: matches!(outcome, Outcome::Ok),
                    observed: match outcome {
                        Outcome::Ok => "allowed".into(),
                        Outcome::Errno { errno } => format!("refused ({errno})"),
                        other => format!("{other:?}"),
                    },
                }),
                _ => None,
            }),
            _ => None,
        };
        let mut candidates: Vec<String> = fixed_contexts(self.plan)
            .into_iter()
            .map(|c| c.kind)
            .chain(self.captures.values().map(|c| c.label.kind.clone()))
            .chain(
                self.captures
                    .values()
                    .filter_map(|c| c.imagelabel.as_ref().map(|l| l.kind.clone())),
            )
            .chain(
                [
                    "svirt_t",
                    "svirt_tcg_t",
                    "svirt_image_t",
                    "virt_image_t",
                    "virt_content_t",
                ]
                .map(String::from),
            )
            .collect();
        candidates.sort();
        candidates.dedup();
        crate::run::explain::explain_step(
            &records,
            probe.as_ref(),
            missing,
            &candidates,
            &mut self.kernel_policy,
        )
    }

    fn inject_fault(&mut self, index: usize, moment: Moment) -> Result<(), RunError> {
        let Some(fault) = self
            .paths
            .fault
            .as_ref()
            .filter(|f| f.strikes(index, moment))
        else {
            return Ok(());
        };
        let done = fault
            .inject(self.plan, &self.paths.audit_log)
            .map_err(|e| RunError::Fault {
                fault: format!("{fault:?}"),
                error: e.to_string(),
            })?;
        self.note(done);
        Ok(())
    }

    /// After each part of a step: was the run interrupted, is libvirtd still there, does every
    /// domain that should be running still run? A target that broke under the step is an
    /// error, not a policy outcome: what the step observed says nothing about labelling.
    fn target_intact(&self, index: usize, moment: &'static str) -> Result<(), RunError> {
        if self.paths.interrupt.is_set() {
            return Err(RunError::InterruptedDuring {
                step: index,
                moment,
            });
        }
        let Some(lv) = self.libvirt.as_ref() else {
            return Ok(());
        };
        if !lv.is_alive() {
            return Err(RunError::LibvirtLost { step: index });
        }
        for n in &self.running {
            let name = self.plan.domain_name(n);
            match lv.is_active(name) {
                Ok(true) => {}
                Ok(false) => {
                    let state = lv
                        .state(name)
                        .unwrap_or_else(|e| format!("state unknown: {}", e.message));
                    return Err(RunError::QemuExited {
                        domain: n.to_string(),
                        step: index,
                        state,
                    });
                }
                Err(e) => {
                    return Err(RunError::DomainUnknown {
                        domain: n.to_string(),
                        step: index,
                        error: e.message,
                    })
                }
            }
        }
        Ok(())
    }

    /// Tells the other runs of a batch which QEMU processes and levels are this run's now.
    fn publish_live(&self) {
        let Some(c) = self.paths.concurrency.as_deref() else {
            return;
        };
        let mut pids = std::collections::BTreeMap::new();
        let mut labels = Vec::new();
        for (name, d) in &self.plan.domains {
            if let Some(pid) = crate::host::libvirt::qemu_pid(&d.libvirt_name) {
                if let Ok(context) = selinux_ops::process_context(pid) {
                    pids.insert(pid, context);
                }
            }
            let (label, imagelabel) = self.live_seclabel(name);
            labels.extend(label.into_iter().chain(imagelabel));
        }
        c.publish_live(&self.plan.run_id, pids, labels);
    }

    fn live_seclabel(
        &self,
        n: &Name,
    ) -> (
        Option<crate::context::Context>,
        Option<crate::context::Context>,
    ) {
        self.lv()
            .ok()
            .and_then(|lv| lv.live_xml(self.plan.domain_name(n)).ok())
            .map(|xml| crate::host::libvirt::seclabel_of(&xml))
            .unwrap_or((None, None))
    }

    /// A domain's labels as the host shows them: its QEMU process's context
    /// (/proc/PID/attr/current) and the label of its first disk that takes the domain's
    /// imagelabel (not shared, not read-only, no label of its own); None without such a disk.
    /// Also who the process runs as (None if /proc would not say: a `$NAME` owner then fails
    /// as not captured).
    fn real_seclabel(&self, n: &Name) -> Result<RealSeclabel, SeclabelError> {
        let d = &self.plan.domains[n];
        let pid =
            crate::host::libvirt::qemu_pid(&d.libvirt_name).ok_or(SeclabelError::NotRunning)?;
        let label = selinux_ops::process_context(pid).map_err(|source| SeclabelError::Qemu {
            pid,
            source: Box::new(source),
        })?;
        let disk = self.loaded.scenario.domains.get(n).and_then(|dom| {
            dom.disks.iter().map(|d| d.to_disk()).find(|d| {
                !d.shareable
                    && !d.readonly
                    && d.seclabel.is_none()
                    && d.device == crate::scenario::DiskDevice::Disk
            })
        });
        let image = match disk {
            Some(disk) => {
                let path = self.plan.image_path(&disk.image.value);
                Some(
                    selinux_ops::file_context(path)
                        .map_err(|source| SeclabelError::Label {
                            path: path.to_path_buf(),
                            source: Box::new(source),
                        })?
                        .ok_or_else(|| SeclabelError::Unlabelled {
                            path: path.to_path_buf(),
                        })?,
                )
            }
            None => None,
        };
        let ids = crate::evidence::file_state::process_ids(pid).ok();
        Ok((label, image, ids))
    }

    /// Every image's label and every running domain's process label.
    fn labels(&self) -> Vec<Evidence> {
        let mut out = Vec::new();
        for (name, img) in &self.plan.images {
            out.push(Evidence::FileContext {
                file: name.to_string(),
                path: img.path.display().to_string(),
                context: selinux_ops::file_context(&img.path).ok().flatten(),
            });
        }
        // Files made by operations and chardevs, once they exist (lstat: a socket or FIFO is
        // read as what it is, a symlink never followed).
        for (name, path) in &self.plan.files {
            if std::fs::symlink_metadata(path).is_ok() {
                out.push(Evidence::FileContext {
                    file: name.to_string(),
                    path: path.display().to_string(),
                    context: selinux_ops::file_context(path).ok().flatten(),
                });
            }
        }
        if self.libvirt.is_some() {
            for (name, d) in &self.plan.domains {
                if let Some(pid) = crate::host::libvirt::qemu_pid(&d.libvirt_name) {
                    if let Ok(context) = selinux_ops::process_context(pid) {
                        out.push(Evidence::ProcessLabel {
                            domain: name.to_string(),
                            pid,
                            context,
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_layout_is_its_paths_and_the_defaults_agree() {
        // Every field, present and future: the default paths make the default layout.
        assert_eq!(
            format!("{:?}", HostPaths::default().layout()),
            format!("{:?}", Layout::default())
        );
        let paths = HostPaths {
            images_root: "/srv/images".into(),
            audit_log: "/srv/audit.log".into(),
            libvirt_uri: "test:///default".into(),
            ..HostPaths::default()
        };
        let l = paths.layout();
        assert_eq!(l.images_root, Path::new("/srv/images"));
        assert_eq!(l.audit_log, Path::new("/srv/audit.log"));
        assert_eq!(l.libvirt_uri.as_deref(), Some("test:///default"));
    }

    #[test]
    fn guest_logs_are_read_capped_skipped_when_absent_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cmdline = "LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=h-r-vm1\n";
        std::fs::write(dir.path().join("h-r-vm1.log"), cmdline).unwrap();
        let long = "x".repeat(GUEST_LOG_LIMIT + 10);
        std::fs::write(dir.path().join("h-r-vm3.log"), &long).unwrap();
        let guests = [("vm1", "h-r-vm1"), ("vm2", "h-r-vm2"), ("vm3", "h-r-vm3")]
            .map(|(a, b)| (a.to_string(), b.to_string()));
        std::fs::write(dir.path().join("h-r-vm1-swtpm.log"), "tpm").unwrap();
        std::fs::write(dir.path().join("h-r-vm1-fs0-virtiofsd.log"), "fs").unwrap();
        let paths = HostPaths {
            qemu_log_dir: dir.path().into(),
            swtpm_log_dir: dir.path().into(),
            ..HostPaths::default()
        };
        let mut events = Vec::new();
        take_guest_logs(&paths, &guests, &mut |e: Event| events.push(e));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "the run's guest logs stay behind: {left:?}"
        );
        let got: Vec<(String, String)> = events
            .into_iter()
            .map(|e| match e {
                Event::GuestLog { domain, text, .. } => (domain, text),
                other => panic!("not a guest log: {other:?}"),
            })
            .collect();
        assert_eq!(got.len(), 3, "vm2 never started, so it has no log: {got:?}");
        assert_eq!(got[0], ("vm1".to_string(), cmdline.to_string()));
        assert_eq!(got[1], ("vm1".to_string(), "fs".to_string()));
        assert_eq!(got[2].0, "vm3");
        assert!(
            got[2].1.ends_with("[... 10 more bytes]\n"),
            "{}",
            &got[2].1[GUEST_LOG_LIMIT..]
        );
    }

    #[test]
    fn a_capture_that_cannot_be_made_is_an_error_unless_the_steps_action_failed() {
        let (vm1, dom): (Name, Name) = ("vm1".parse().unwrap(), "vm1".parse().unwrap());
        let why = || "it has no QEMU process (not running)".to_string();
        let err = missing_capture(2, &vm1, &dom, why(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "step 2 cannot capture $vm1 from domain vm1: it has no QEMU process (not running); \
             a later reference to it would compare against nothing"
        );
        let note = missing_capture(2, &vm1, &dom, why(), true).unwrap();
        assert!(note.contains("the step's action failed"), "{note}");
    }

    #[test]
    fn the_first_cause_comes_first_then_what_cleanup_found() {
        let broke = RunError::LibvirtLost { step: 2 };
        let then = [
            RunError::HostChanged(vec!["domain a appeared".into(), "b changed".into()]),
            RunError::CleanupFailed(vec!["cleanup FAILED: remove x: busy".into()]),
        ];
        assert_eq!(
            RunError::reason(Some(&broke), &then),
            "the connection to libvirtd was lost during step 2: libvirtd died or was restarted \
             under the run; then the host differs from before the run after cleanup: domain a \
             appeared; b changed; cleanup failed, the host may hold leftovers (run \
             `selinux-harness doctor`): cleanup FAILED: remove x: busy"
        );
        assert_eq!(RunError::reason(Some(&broke), &[]), broke.to_string());
        assert_eq!(RunError::reason(None, &then[1..]), then[1].to_string());
        assert_eq!(
            RunError::InterruptedDuring {
                step: 2,
                moment: "in its settle window"
            }
            .to_string(),
            "interrupted during step 2, in its settle window; the step was not checked"
        );
    }

    /// `execute` with a fake host: the order of a run's steps, what ends it and its cleanup,
    /// without a VM (the real host's part is the conformance suite's).
    mod sequencing {
        use super::*;
        use crate::context::Context;
        use crate::run::verdict::Check;
        use crate::scenario::load_str;

        /// A host whose image vm1.img is labelled `label` until a step acts; each step's action
        /// succeeds unless `failing` names it, and a step named by `broken` breaks the target.
        struct Fake<'a> {
            plan: &'a Plan,
            cleanup: &'a mut Cleanup,
            sink: &'a mut dyn EventSink,
            interrupt: &'a Interrupt,
            captures: Captures,
            label: Context,
            failing: Option<usize>,
            broken: Option<usize>,
            interrupt_after: Option<usize>,
            /// The image has no label (a `before:` cannot capture it).
            unlabelled: bool,
            /// The capture `orig` as each step's action found it.
            orig_at_action: Vec<Option<Context>>,
        }

        impl Steps for Fake<'_> {
            type Error = RunError;
            type Prepared = ();
            type Opened = ();

            fn prepare(&mut self, _: &mut Tally) -> Result<Setup<()>, RunError> {
                std::fs::create_dir(&self.plan.sandbox).unwrap();
                self.cleanup.push(Undo::RemoveDir {
                    path: self.plan.sandbox.clone(),
                });
                Ok(Setup::Ready(()))
            }

            fn note(&mut self, message: String) {
                self.sink.emit(Event::Note { message });
            }

            fn open(&mut self, index: usize, step: &Step, _: &mut ()) -> Result<(), RunError> {
                let title = step.action.keyword().to_string();
                self.sink.emit(Event::StepStarted { step: index, title });
                Ok(())
            }

            fn label_now(&self, image: &Name) -> Result<Context, LabelError> {
                match self.unlabelled {
                    true => Err(LabelError::Unlabelled(self.plan.image_path(image).into())),
                    false => Ok(self.label.clone()),
                }
            }

            fn captures_mut(&mut self) -> &mut Captures {
                &mut self.captures
            }

            fn finish(
                &mut self,
                index: usize,
                step: &Step,
                _: &mut (),
                _: (),
                tally: &mut Tally,
            ) -> Result<(), RunError> {
                let orig = "orig".parse::<Name>().unwrap();
                self.orig_at_action
                    .push(self.captures.get(&orig).map(|c| c.label.clone()));
                // Each action relabels the image, to a category of its own.
                self.label = ctx(&format!("system_u:object_r:svirt_image_t:s0:c{index}"));
                if self.broken == Some(index) {
                    return Err(RunError::LibvirtLost { step: index });
                }
                let outcome = if self.failing == Some(index) {
                    Outcome::Other {
                        message: "refused".into(),
                    }
                } else {
                    Outcome::Ok
                };
                let evidence = [Evidence::Action {
                    action: step.action.keyword().into(),
                    outcome,
                }];
                let checks =
                    check_step(&step.options.expect, false, &evidence, &self.captures, &[]);
                tally.add_step(&checks, &[]);
                for check in checks {
                    self.sink
                        .emit(Event::ExpectationChecked { step: index, check });
                }
                if self.interrupt_after == Some(index) {
                    self.interrupt.trigger();
                }
                Ok(())
            }
        }

        fn ctx(s: &str) -> Context {
            s.parse().unwrap()
        }

        const SCENARIO: &str = "name: t\ndescription: d\nimages: {vm1.img: {size: 1M}}\ndomains: {vm1: {disks: [vm1.img]}}\nsteps:\n  - start: vm1\n  - destroy: vm1\n    before: {orig: vm1.img}\n  - start: vm1\n";

        /// What a run of the fake did: its events in short, whether its sandbox is still there,
        /// and the capture `orig` as each action found it.
        struct Ran {
            events: Vec<String>,
            verdict: Verdict,
            sandbox_left: bool,
            orig_at_action: Vec<Option<Context>>,
        }

        fn run(set: impl FnOnce(&mut Fake)) -> Ran {
            let root = tempfile::tempdir().unwrap();
            let paths = HostPaths {
                images_root: root.path().into(),
                qemu_log_dir: root.path().into(),
                swtpm_log_dir: root.path().into(),
                ..HostPaths::default()
            };
            let scenario = load_str(Path::new("t.yaml"), SCENARIO).unwrap();
            let loaded = LoadedScenario {
                path: "t.yaml".into(),
                source: SCENARIO.into(),
                scenario,
            };
            let mut events = Vec::new();
            let mut sink = |e: Event| events.push(e);
            let mut sandbox = None;
            let mut orig_at_action = Vec::new();
            let verdict = execute_with(
                &loaded,
                None,
                &TargetInfo::default(),
                &paths,
                &mut sink,
                |plan, cleanup, sink| {
                    sandbox = Some(plan.sandbox.clone());
                    let mut fake = Fake {
                        plan,
                        cleanup,
                        sink,
                        interrupt: &paths.interrupt,
                        captures: Captures::new(),
                        label: ctx("system_u:object_r:virt_image_t:s0"),
                        failing: None,
                        broken: None,
                        interrupt_after: None,
                        unlabelled: false,
                        orig_at_action: Vec::new(),
                    };
                    set(&mut fake);
                    let r = sequence::run(&mut fake, &loaded.scenario, |_| true, &paths.interrupt);
                    orig_at_action = fake.orig_at_action;
                    r
                },
            )
            .expect("no concurrency, so the run is never turned away");
            let events = events
                .into_iter()
                .filter_map(|e| match e {
                    Event::StepStarted { step, .. } => Some(format!("step {step}")),
                    Event::ExpectationChecked {
                        step,
                        check: Check { key, passed, .. },
                    } => Some(format!(
                        "step {step} {key} {}",
                        if passed { "pass" } else { "fail" }
                    )),
                    Event::CleanedUp(u) if u.succeeded() => Some("cleaned up".into()),
                    Event::CleanedUp(u) => Some(format!("cleanup failed: {u}")),
                    Event::ScenarioFinished { .. } => Some("finished".into()),
                    _ => None,
                })
                .collect();
            Ran {
                events,
                verdict,
                sandbox_left: sandbox.expect("the plan was made").exists(),
                orig_at_action,
            }
        }

        #[test]
        fn every_step_runs_and_is_judged_in_order_then_cleanup() {
            let r = run(|_| {});
            assert_eq!(
                r.events,
                [
                    "step 1",
                    "step 1 succeeds pass",
                    "step 2",
                    "step 2 succeeds pass",
                    "step 3",
                    "step 3 succeeds pass",
                    "cleaned up",
                    "finished"
                ]
            );
            assert_eq!(r.verdict, Verdict::Pass);
            assert!(!r.sandbox_left);
        }

        /// A step whose action failed fails the run though later steps pass; a step that broke
        /// the target ends it: no later step is acted or judged, and the verdict is `error`.
        #[test]
        fn a_failed_step_is_never_outweighed_by_later_passes() {
            let r = run(|f| f.failing = Some(1));
            assert_eq!(r.verdict, Verdict::Fail { failed: 1 });
            assert_eq!(r.events[1], "step 1 succeeds fail");

            let r = run(|f| f.broken = Some(2));
            assert_eq!(
                r.events,
                [
                    "step 1",
                    "step 1 succeeds pass",
                    "step 2",
                    "cleaned up",
                    "finished"
                ]
            );
            assert_eq!(
                r.verdict,
                Verdict::Error {
                    reason: RunError::LibvirtLost { step: 2 }.to_string()
                }
            );
        }

        #[test]
        fn cleanup_runs_after_a_step_that_broke_the_target() {
            let r = run(|f| f.broken = Some(1));
            assert_eq!(r.events, ["step 1", "cleaned up", "finished"]);
            assert!(!r.sandbox_left, "the sandbox outlived the run");
        }

        #[test]
        fn an_interrupt_between_steps_ends_the_run_and_cleans_up() {
            let r = run(|f| f.interrupt_after = Some(1));
            assert_eq!(
                r.events,
                ["step 1", "step 1 succeeds pass", "cleaned up", "finished"]
            );
            assert_eq!(
                r.verdict,
                Verdict::Error {
                    reason: "interrupted before step 2; cleaned up".into()
                }
            );
            assert!(!r.sandbox_left);
        }

        /// A `before:` that cannot read its label ends the run before the step acts.
        #[test]
        fn a_before_capture_that_fails_ends_the_run_before_the_action() {
            let r = run(|f| f.unlabelled = true);
            assert_eq!(
                r.events,
                [
                    "step 1",
                    "step 1 succeeds pass",
                    "step 2",
                    "cleaned up",
                    "finished"
                ]
            );
            assert_eq!(r.orig_at_action.len(), 1, "step 2 acted");
            let Verdict::Error { reason } = &r.verdict else {
                panic!("{:?}", r.verdict)
            };
            assert!(
                reason.starts_with("step 2 cannot capture $orig from domain vm1.img: /")
                    && reason.contains("/vm1.img has no label"),
                "{reason}"
            );
        }

        /// `before:` reads the label step 1's action left, before step 2's own action changes
        /// it, and not before step 2.
        #[test]
        fn before_captures_are_taken_before_the_steps_action() {
            let r = run(|_| {});
            let after_step_1 = ctx("system_u:object_r:svirt_image_t:s0:c1");
            assert_eq!(
                r.orig_at_action,
                [None, Some(after_step_1.clone()), Some(after_step_1)]
            );
        }
    }
}
