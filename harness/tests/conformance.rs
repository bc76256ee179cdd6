//! The conformance suite: every scenario in scenarios/ (and each of its variants) is a trial.
//!
//! Trials run on the local host when SELinux enforces there and changes are allowed
//! (SELINUX_HARNESS_ALLOW_LOCAL=1), else in the embedded VM (built on first use, booted once per
//! test process and shared by all trials). A scenario trial that cannot run - no target, a
//! skipped verdict - fails, unless the scenario says it is `not_applicable` to the target (then
//! it is ignored with that reason); a run in which no scenario trial executed fails, with or
//! without CI=true (the fault trials do not count).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use selinux_harness::dispatch::dispatch;
use selinux_harness::report::{html, human::Human, junit, Record, Reporter};
use selinux_harness::run::batch::{Batch, RunItem};
use selinux_harness::run::event::{Envelope, Event};
use selinux_harness::run::fault::Fault;
use selinux_harness::run::verdict::Verdict;
use selinux_harness::scenario::{self, CheckKind, LoadedScenario};
use selinux_harness::target::{self, Target, TargetKind};

#[path = "conformance_batch/mod.rs"]
mod batched;
use batched::SuiteBatch;

/// What a trial checks in a run's event stream besides the verdict.
#[derive(Debug, Default)]
struct Facts {
    /// What differed between the host state before the run and after its cleanup; None if
    /// the run never compared them.
    host_state: Option<Vec<String>>,
    notes: Vec<String>,
    /// The reason the target gave when it broke.
    target_failed: Option<String>,
}

impl Facts {
    /// The executor compared the target's state after cleanup with the state before, and
    /// found them equal: without this no trial passes.
    fn proven(&self) -> bool {
        self.host_state.as_ref().is_some_and(Vec::is_empty)
    }
}

impl Reporter for Facts {
    fn event(&mut self, e: &Envelope) {
        match &e.event {
            Event::HostStateVerified { differences } => self.host_state = Some(differences.clone()),
            Event::Note { message } => self.notes.push(message.clone()),
            Event::CleanedUp(undone) => self.notes.push(undone.to_string()),
            Event::TargetFailed { reason, .. } => self.target_failed = Some(reason.clone()),
            _ => {}
        }
    }
}

/// The target, started by the first trial that needs it; or why there is none.
type Shared = Arc<Mutex<Option<Result<Box<dyn Target + Send>, String>>>>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The target kind the suite runs on, and why.
fn chosen_kind() -> Result<(TargetKind, String), String> {
    let kind = match std::env::var(target::TARGET_ENV).ok().as_deref() {
        Some("vm") => TargetKind::Vm,
        Some("local") => TargetKind::Local,
        Some("auto") | None => TargetKind::Auto,
        Some(other) => {
            return Err(format!(
                "{}={other}: use auto, vm or local",
                target::TARGET_ENV
            ))
        }
    };
    let allow_local = std::env::var(target::LOCAL_OPT_IN_ENV).is_ok_and(|v| v == "1");
    Ok(target::resolve(kind, allow_local))
}

fn start_target() -> Result<Box<dyn Target + Send>, String> {
    let allow_local = std::env::var(target::LOCAL_OPT_IN_ENV).is_ok_and(|v| v == "1");
    let (kind, why) = chosen_kind()?;
    eprintln!("conformance target: {kind:?} ({why})");
    match kind {
        TargetKind::Local => target::local::Local::new(allow_local, Default::default())
            .map(|t| Box::new(t) as Box<dyn Target + Send>)
            .map_err(|e| e.to_string()),
        _ => {
            let options = target::vm::VmTargetOptions {
                // The harness binary that runs in the guest: built by cargo for this test.
                binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_selinux-harness"))),
                ..Default::default()
            };
            target::vm::VmTarget::start(&options)
                .map(|t| Box::new(t) as Box<dyn Target + Send>)
                .map_err(|e| format!("the VM target cannot run here: {e}"))
        }
    }
}

/// A run's verdict as a trial judges it: a verdict without the executor's proof that cleanup
/// put the target back is an error.
fn settled_verdict(verdict: Option<Verdict>, facts: &Facts) -> Verdict {
    match verdict {
        Some(Verdict::Skipped { reason }) => Verdict::Skipped { reason },
        Some(Verdict::Error { reason }) => Verdict::Error { reason },
        Some(_) if !facts.proven() => Verdict::Error {
            reason: format!(
                "no proof that cleanup put the target back (host state: {:?})",
                facts.host_state
            ),
        },
        Some(v) => v,
        None => Verdict::Error {
            reason: "the run never started".into(),
        },
    }
}

fn reports_dir() -> PathBuf {
    std::env::var_os("SELINUX_HARNESS_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/conformance"))
}

/// Scenario trials that ran to a verdict; the fault trials are not counted.
static EXECUTED: AtomicUsize = AtomicUsize::new(0);
/// Scenario trials that were started (not filtered out, not marked not applicable).
static STARTED: AtomicUsize = AtomicUsize::new(0);

fn trial(
    l: Arc<LoadedScenario>,
    variant: Option<String>,
    (batch, slot): (Arc<SuiteBatch>, usize),
    record: Arc<Mutex<Record>>,
    target_kind: TargetKind,
) -> Trial {
    let s = &l.scenario;
    let rel = l
        .path
        .strip_prefix(repo().join("scenarios"))
        .unwrap_or(&l.path);
    let dir = rel
        .parent()
        .map(|p| p.to_string_lossy().replace('/', "::"))
        .filter(|p| !p.is_empty());
    let mut name = match dir {
        Some(d) => format!("{d}::{}", s.name.value),
        None => s.name.value.to_string(),
    };
    if let Some(v) = &variant {
        name.push_str(&format!("::{v}"));
    }
    let kind = s.tags.first().cloned().unwrap_or_else(|| "scenario".into());
    let scenario_name = s.name.value.to_string();
    Trial::ignorable_test(name, move || {
        let wanted = match target_kind {
            TargetKind::Local => scenario::TargetName::Local,
            _ => scenario::TargetName::Vm,
        };
        if let Some(na) = l.scenario.not_applicable.iter().find(|n| n.target == wanted) {
            return Ok(Completion::ignored_with(format!(
                "not applicable to the {target_kind:?} target: {}",
                na.reason
            )));
        }
        STARTED.fetch_add(1, Ordering::SeqCst);
        let (verdict, text, local) = match batch.result(slot) {
            Ok(r) => r,
            // No target here: a scenario trial that cannot run fails, it is not skipped.
            Err(Ok(done)) => {
                let why = match done {
                    Completion::Ignored { reason: Some(why) } => why,
                    _ => "the target cannot run here".to_string(),
                };
                return Err(format!("not run: {why}").into());
            }
            Err(Err(failed)) => return Err(failed),
        };
        EXECUTED.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut r) = record.lock() {
            r.scenarios.extend(local.scenarios);
        }
        match &verdict {
            Verdict::Skipped { reason } => Err(format!(
                "skipped, which does not pass: {reason} (if the scenario cannot apply to this target, say so with `not_applicable: [{{target: ..., reason: ...}}]`)"
            )
            .into()),
            v if v.is_success() => {
                // Known bugs pass, but say so in the output.
                if let Verdict::KnownBug { references } = v {
                    eprintln!(
                        "{scenario_name}: known bug reproduced ({})",
                        references.join(", ")
                    );
                }
                Ok(Completion::Completed)
            }
            v => Err(format!("{}\n{text}", v.label()).into()),
        }
    })
    .with_kind(kind)
}

/// What a scenario of tests/data/wrong must end in, from its header lines: `# verdict: LABEL`,
/// `# check: KIND` (the kind of check the verdict comes from: a failure no known bug excuses,
/// or for known-bug-gone a passing check a known bug names) and `# must show: TEXT` (what the
/// human report must show, e.g. the expected and the observed value).
struct Wanted {
    verdict: String,
    kind: String,
    shows: Vec<String>,
}

fn wanted(l: &LoadedScenario) -> Result<Wanted, String> {
    let header = |key: &str| -> Vec<String> {
        l.source
            .lines()
            .filter_map(|x| x.strip_prefix(key))
            .map(|x| x.trim().to_string())
            .collect()
    };
    let one = |key: &str| {
        let mut v = header(key);
        match v.len() {
            1 => Ok(v.remove(0)),
            _ => Err(format!(
                "{}: needs exactly one `{key}` line",
                l.path.display()
            )),
        }
    };
    let kind = one("# check: ")?;
    if !CheckKind::ALL.iter().any(|k| k.label() == kind) {
        return Err(format!("{}: unknown check kind {kind:?}", l.path.display()));
    }
    Ok(Wanted {
        verdict: one("# verdict: ")?,
        kind,
        shows: header("# must show: "),
    })
}

/// A scenario from tests/data/wrong: wrong in exactly one way, so the trial passes only if the
/// harness ends it in the verdict its header names, because of a check of the kind it names,
/// and the report shows the difference.
fn must_fail(l: Arc<LoadedScenario>, (batch, slot): (Arc<SuiteBatch>, usize)) -> Trial {
    let name = format!("must_fail::{}", l.scenario.name.value);
    Trial::ignorable_test(name, move || {
        let want = wanted(&l)?;
        let (verdict, text, record) = match batch.result(slot) {
            Ok(r) => r,
            Err(done) => return done,
        };
        if let Verdict::Skipped { reason } = verdict {
            return Ok(Completion::ignored_with(format!("skipped: {reason}")));
        }
        if verdict.label() != want.verdict {
            return Err(format!(
                "a scenario wrong in one way gave {}, not {}:\n{text}",
                verdict.label(),
                want.verdict
            )
            .into());
        }
        let gone = matches!(verdict, Verdict::KnownBugGone { .. });
        let culprit = record
            .scenarios
            .iter()
            .flat_map(|s| &s.steps)
            .flat_map(|st| &st.checks)
            .any(|c| {
                let counts = if gone {
                    c.passed && c.known_bug.is_some()
                } else {
                    !c.passed && c.known_bug.is_none()
                };
                counts && c.key.kind().label() == want.kind
            });
        if !culprit {
            return Err(format!(
                "the {} does not come from a check of kind {}:\n{text}",
                want.verdict, want.kind
            )
            .into());
        }
        for w in &want.shows {
            if !text.contains(w.as_str()) {
                return Err(format!("the report does not show {w:?}:\n{text}").into());
            }
        }
        Ok(Completion::Completed)
    })
    .with_kind("must_fail")
}

/// Every kind of check has a negative control in tests/data/wrong (a must_fail trial that ends
/// in its verdict because of a check of that kind). Needs no target.
fn negative_controls(wrong: Vec<Arc<LoadedScenario>>) -> Trial {
    Trial::test("must_fail::every-kind-of-check", move || {
        let mut covered = std::collections::BTreeSet::new();
        for l in &wrong {
            covered.insert(wanted(l)?.kind);
        }
        let missing: Vec<&str> = CheckKind::ALL
            .iter()
            .map(|k| k.label())
            .filter(|k| !covered.contains(*k))
            .collect();
        if !missing.is_empty() {
            return Err(format!("no negative control for: {}", missing.join(", ")).into());
        }
        eprintln!(
            "checks per kind with a negative control: {}/{}",
            covered.len(),
            CheckKind::ALL.len()
        );
        Ok(())
    })
    .with_kind("must_fail")
}

/// A VM of a fault trial's own (faults must not hit the shared target).
fn own_vm(scenario_timeout: Option<std::time::Duration>) -> Result<target::vm::VmTarget, NoVm> {
    start_vm(target::vm::VmTargetOptions {
        binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_selinux-harness"))),
        scenario_timeout,
        ..Default::default()
    })
}

/// Starts a VM for a trial or a stage. When the suite runs on this host the trial is ignored
/// (its fault needs the VM); a VM that cannot start fails the trial: a proof that never ran is
/// not a pass, the same rule as for the scenario trials.
fn start_vm(options: target::vm::VmTargetOptions) -> Result<target::vm::VmTarget, NoVm> {
    if matches!(chosen_kind(), Ok((TargetKind::Local, _))) {
        return Err(NoVm::Ignored(
            "needs the VM; the suite's target is this host".into(),
        ));
    }
    target::vm::VmTarget::start(&options)
        .map_err(|e| NoVm::Failed(format!("the VM target cannot start: {e}")))
}

/// Why a trial has no VM; kept by a stage for every trial after the first.
#[derive(Clone)]
enum NoVm {
    Ignored(String),
    Failed(String),
}

impl NoVm {
    fn done(&self) -> Result<Completion, Failed> {
        match self {
            NoVm::Ignored(why) => Ok(Completion::ignored_with(why.clone())),
            NoVm::Failed(why) => Err(Failed::from(why.clone())),
        }
    }
}

/// Fault: the VM dies in the middle of a step (its QEMU is killed). The run must end, well
/// within the scenario timeout, in an error that says what happened and shows the guest's
/// console - never in a verdict, never in a hang. Uses a VM of its own.
fn vm_dies_mid_step(l: Arc<LoadedScenario>) -> Trial {
    Trial::ignorable_test("fault::vm-dies-mid-step", move || {
        let mut vm = match own_vm(None) {
            Ok(vm) => vm,
            Err(no) => return no.done(),
        };
        let marker = vm.run_dir().to_string_lossy().into_owned();
        let killer = std::thread::spawn(move || {
            // Long enough for the domains to start; the reset step's 8 s window is still ahead.
            std::thread::sleep(std::time::Duration::from_secs(6));
            kill_qemu_of(&marker)
        });
        let started = std::time::Instant::now();
        let mut facts = Facts::default();
        let verdict = dispatch(&mut vm, &Batch::one(&l, Some("default")), &mut [&mut facts]);
        let killed = killer
            .join()
            .map_err(|_| Failed::from("killer thread panicked"))?;
        if !killed {
            return Err("found no QEMU process to kill".into());
        }
        let took = started.elapsed();
        match facts.target_failed {
            Some(text) => {
                if !text.contains("guest console") {
                    return Err(format!("the error does not show the guest console: {text}").into());
                }
                if took > std::time::Duration::from_secs(120) {
                    return Err(format!("the failure took {took:?} to be noticed").into());
                }
                nothing_left(vm)?;
                Ok(Completion::Completed)
            }
            None => Err(format!("a run whose VM died gave a verdict: {verdict:?}").into()),
        }
    })
    .with_kind("fault")
}

/// Fault: a VM that does not come up in time (a cold boot given 8 s, where it needs 20-30; with
/// less, a loaded host leaves the console still empty). The start must fail at its deadline with
/// a timeout that shows the guest console, and leave no QEMU behind.
fn vm_never_boots() -> Trial {
    Trial::ignorable_test("fault::vm-never-boots", move || {
        use selinux_harness::image::{self, BuildOptions, Cache, Progress};
        use selinux_harness::vm::{Vm, VmError, VmOptions, WarmPolicy};
        if matches!(chosen_kind(), Ok((TargetKind::Local, _))) {
            return NoVm::Ignored("needs the VM; the suite's target is this host".into()).done();
        }
        let distro = std::env::var(target::vm::DISTRO_ENV)
            .unwrap_or_else(|_| target::vm::DEFAULT_DISTRO.into());
        let built = Cache::default_location()
            .map_err(|e| e.to_string())
            .and_then(|cache| {
                let source = image::recipe::builtin(&distro).map_err(|e| e.to_string())?;
                image::build(
                    &cache,
                    &source,
                    &BuildOptions::default(),
                    &Progress::hidden(),
                    &Default::default(),
                )
                .map_err(|e| e.to_string())
            });
        let built = match built {
            Ok(b) => b,
            Err(e) => return Err(format!("the VM image cannot be built: {e}").into()),
        };
        let options = VmOptions {
            warm: WarmPolicy::Cold,
            boot_timeout: std::time::Duration::from_secs(8),
            agent_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_selinux-harness"))),
            ..VmOptions::default()
        };
        let started = std::time::Instant::now();
        let result = Vm::start(&built.image, &options, &Progress::hidden());
        let took = started.elapsed();
        match result {
            Err(VmError::Timeout { console, .. }) => {
                if took > std::time::Duration::from_secs(30) {
                    return Err(format!("the 8 s boot deadline was noticed after {took:?}").into());
                }
                if console.trim().is_empty() {
                    return Err("the timeout error shows no guest console".into());
                }
                Ok(Completion::Completed)
            }
            Err(e) => Err(format!("expected a boot timeout, got: {e}").into()),
            Ok(_) => Err("a cold boot finished within 8 s; this fault needs a slower boot".into()),
        }
    })
    .with_kind("fault")
}

/// Fault: the agent stops answering mid-scenario (the whole guest is frozen with SIGSTOP).
/// The run must end at the scenario deadline with an error showing the guest console.
fn agent_stops_answering(l: Arc<LoadedScenario>) -> Trial {
    Trial::ignorable_test("fault::agent-stops-answering", move || {
        let mut vm = match own_vm(Some(std::time::Duration::from_secs(15))) {
            Ok(vm) => vm,
            Err(no) => return no.done(),
        };
        let marker = vm.run_dir().to_string_lossy().into_owned();
        let freezer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(4));
            signal_qemu_of(&marker, nix::sys::signal::Signal::SIGSTOP)
        });
        let started = std::time::Instant::now();
        let mut facts = Facts::default();
        let verdict = dispatch(&mut vm, &Batch::one(&l, Some("default")), &mut [&mut facts]);
        let took = started.elapsed();
        let frozen = freezer
            .join()
            .map_err(|_| Failed::from("freezer thread panicked"))?;
        // Thaw it so dropping the target can stop it the usual way.
        let thawed = signal_qemu_of(
            &vm.run_dir().to_string_lossy(),
            nix::sys::signal::Signal::SIGCONT,
        );
        if !frozen || !thawed {
            return Err("found no QEMU process to freeze".into());
        }
        match facts.target_failed {
            Some(e) if e.contains("guest console") => {
                if took > std::time::Duration::from_secs(60) {
                    return Err(format!("the 15 s deadline was noticed after {took:?}").into());
                }
                nothing_left(vm)?;
                Ok(Completion::Completed)
            }
            Some(e) => Err(format!("the error does not show the guest console: {e}").into()),
            None => Err(format!("a run whose agent froze gave a verdict: {verdict:?}").into()),
        }
    })
    .with_kind("fault")
}

/// The seed scenarios, every variant, three at a time in one guest of their own
/// (`run --jobs 3`). Fails unless every verdict is one the sequential trials accept, runs
/// really overlapped (else nothing about concurrency was shown), and no run that needs the
/// host alone overlapped another.
fn parallel_seed(seed: Vec<Arc<LoadedScenario>>) -> Trial {
    Trial::ignorable_test("parallel::seed", move || {
        use selinux_harness::run::parallel::exclusive_reason;
        let mut vm = match own_vm(None) {
            Ok(vm) => vm,
            Err(no) => return no.done(),
        };
        let runs: Vec<(&LoadedScenario, Option<String>)> = seed
            .iter()
            .flat_map(|l| l.variants().into_iter().map(move |v| (l.as_ref(), v)))
            .collect();
        let runs: Vec<(&LoadedScenario, Option<&str>)> =
            runs.iter().map(|(l, v)| (*l, v.as_deref())).collect();
        if runs.len() < 2 {
            return Err("fewer than two seed runs: nothing to run in parallel".into());
        }
        let batch = Batch::new(runs.iter().map(|(l, v)| RunItem::new(l, *v)).collect(), 3);
        let mut blocks = Human::new(Vec::new(), false, false).for_jobs(batch.jobs);
        // (sequence number of the run's first event, of its verdict) per run.
        let mut spans: Vec<(Option<usize>, Option<usize>)> = vec![(None, None); runs.len()];
        let mut problems = Vec::new();
        let mut seq = 0;
        let mut overlap_check = |e: &Envelope| {
            seq += 1;
            let i = e.run;
            let span = &mut spans[i];
            match &e.event {
                Event::ScenarioStarted { .. } if span.0.is_none() => span.0 = Some(seq),
                Event::ScenarioFinished { .. } if span.1.is_none() => span.1 = Some(seq),
                _ if span.0.is_none() || span.1.is_some() => problems.push(format!(
                    "run {i}: event outside its start and finish: {:?}",
                    e.event
                )),
                _ => {}
            }
        };
        let results = dispatch(
            &mut vm,
            &batch,
            &mut [&mut blocks as &mut dyn Reporter, &mut overlap_check],
        );
        let name = |i: usize| batch.runs[i].name();
        for (i, r) in results.iter().enumerate() {
            match r {
                Some(v) if v.is_success() => {}
                Some(v) => problems.push(format!("{}: {}", name(i), v.label())),
                None => problems.push(format!("{}: never started", name(i))),
            }
        }
        let span = |i: usize| match spans[i] {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        let overlap = |i: usize, j: usize| match (span(i), span(j)) {
            (Some((a0, a1)), Some((b0, b1))) => a0 < b1 && b0 < a1,
            _ => false,
        };
        let mut overlapped = false;
        for i in 0..runs.len() {
            if span(i).is_none() {
                problems.push(format!("{}: no start or no verdict", name(i)));
            }
            for j in (i + 1)..runs.len() {
                if !overlap(i, j) {
                    continue;
                }
                overlapped = true;
                for k in [i, j] {
                    if let Some(why) = exclusive_reason(&runs[k].0.scenario, runs[k].1) {
                        problems.push(format!(
                            "{} {} but overlapped {}",
                            name(k),
                            why.describe(),
                            name(i + j - k)
                        ));
                    }
                }
            }
        }
        if !overlapped {
            problems.push("no two runs overlapped: this proves nothing about parallel runs".into());
        }
        if problems.is_empty() {
            return Ok(Completion::Completed);
        }
        let text = String::from_utf8_lossy(&blocks.into_inner()).into_owned();
        Err(format!("{}\n{text}", problems.join("\n")).into())
    })
    .with_kind("parallel")
}

/// What every fault must end in: an error naming `cause`, with cleanup done and proven.
fn ends_in_proven_error(verdict: &Verdict, facts: &Facts, cause: &str) -> Result<(), Failed> {
    let Verdict::Error { reason } = verdict else {
        return Err(format!(
            "expected an error naming \"{cause}\", got {}",
            verdict.label()
        )
        .into());
    };
    if !reason.contains(cause) {
        return Err(format!("the error does not name the cause \"{cause}\": {reason}").into());
    }
    if !facts.proven() {
        return Err(format!(
            "no proof that cleanup put the guest back (host state: {:?}); notes: {:?}",
            facts.host_state, facts.notes
        )
        .into());
    }
    Ok(())
}

/// The VM of the policy-fault stage: one for all its trials (loading a module costs ~35 s
/// under TCG, a boot more), started by the first of them.
type StageVm = Arc<Mutex<Option<Result<target::vm::VmTarget, NoVm>>>>;

/// The VM a stage's trials share, started by the first of them.
fn stage_vm() -> Result<target::vm::VmTarget, NoVm> {
    start_vm(target::vm::VmTargetOptions {
        binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_selinux-harness"))),
        ..Default::default()
    })
}

/// What a policy fault must be caught by: a scenario, the verdicts it may end in (never pass,
/// never known-bug), and the text the report must show as the cause.
struct Catch {
    fault: selinux_harness::run::fault::PolicyFault,
    name: &'static str,
    scenario: &'static str,
    verdicts: &'static [&'static str],
    cause: &'static str,
}

const CATCHES: &[Catch] = {
    use selinux_harness::run::fault::PolicyFault;
    &[
        Catch {
            fault: PolicyFault::SvirtPermissive,
            name: "svirt_t-permissive",
            scenario: "mcs-probe",
            verdicts: &["inconclusive", "fail"],
            cause: "permissive=1",
        },
        Catch {
            fault: PolicyFault::SvirtMcsExempt,
            name: "svirt_t-exempt-from-mcs",
            scenario: "mcs-probe",
            verdicts: &["fail"],
            cause: "observed: allowed",
        },
        Catch {
            fault: PolicyFault::VirtUseExecmemOff,
            name: "virt_use_execmem-off",
            scenario: "distinct-dynamic-labels",
            verdicts: &["fail"],
            cause: "execmem",
        },
        Catch {
            fault: PolicyFault::DontauditOff,
            name: "dontaudit-off",
            scenario: "dontaudit-hidden-denial",
            verdicts: &["fail"],
            cause: "denied { write }",
        },
    ]
};

/// Runs one scenario in the stage's VM, with or without a policy fault: verdict, the verbose
/// human report, and the facts (notes, host-state proof).
fn stage_run(
    vm: &StageVm,
    l: &LoadedScenario,
    policy: Option<selinux_harness::run::fault::PolicyFault>,
) -> Result<(Verdict, String, Facts), Result<Completion, Failed>> {
    let mut guard = vm
        .lock()
        .map_err(|_| Err(Failed::from("stage VM lock poisoned")))?;
    let t = match guard.get_or_insert_with(stage_vm) {
        Ok(t) => t,
        Err(no) => return Err(no.done()),
    };
    let batch = Batch::new(
        vec![RunItem {
            fault: policy.map(|policy| selinux_harness::run::fault::Fault::Policy { policy }),
            ..RunItem::new(l, None)
        }],
        1,
    );
    let mut human = Human::new(Vec::new(), false, true);
    let mut facts = Facts::default();
    let verdict = dispatch(
        t,
        &batch,
        &mut [&mut human as &mut dyn Reporter, &mut facts],
    )
    .pop()
    .flatten();
    if let Some(e) = &facts.target_failed {
        return Err(Err(Failed::from(format!("the target broke: {e}"))));
    }
    let verdict = verdict.ok_or_else(|| Err(Failed::from("the run never started")))?;
    let text = String::from_utf8_lossy(&human.into_inner()).into_owned();
    Ok((verdict, text, facts))
}

/// The policy-fault stage, part 1: the scenarios the faults must be caught by pass on the clean
/// image in the stage's VM (no false alarm), before any fault is made there.
fn policy_clean(scenarios: Vec<Arc<LoadedScenario>>, vm: StageVm) -> Trial {
    Trial::ignorable_test("policy_fault::clean-image-no-false-alarm", move || {
        for l in &scenarios {
            let (verdict, text, facts) = match stage_run(&vm, l, None) {
                Ok(r) => r,
                Err(done) => return done,
            };
            if verdict != Verdict::Pass {
                return Err(format!(
                    "{} on the clean image gave {}, not pass:
{text}",
                    l.scenario.name.value,
                    verdict.label()
                )
                .into());
            }
            if !facts.proven() {
                return Err(format!(
                    "no proof that cleanup put the guest back (host state: {:?})",
                    facts.host_state
                )
                .into());
            }
        }
        Ok(Completion::Completed)
    })
    .with_kind("fault")
}

/// The policy-fault stage, part 2: with the policy broken in one way, the scenario must end in
/// one of the verdicts named (never pass), its report must name the cause, and the guest must
/// be put back (the module removed, the boolean reset: proven by the host-state check).
fn policy_fault(c: &'static Catch, l: Arc<LoadedScenario>, vm: StageVm) -> Trial {
    Trial::ignorable_test(
        format!("policy_fault::{}::{}", c.name, c.scenario),
        move || {
            let started = std::time::Instant::now();
            let (verdict, text, facts) = match stage_run(&vm, &l, Some(c.fault)) {
                Ok(r) => r,
                Err(done) => return done,
            };
            let took = started.elapsed();
            if !facts.notes.iter().any(|n| n.starts_with("fault injected")) {
                return Err(format!(
                    "the policy was not broken; notes: {:?}\n{text}",
                    facts.notes
                )
                .into());
            }
            if !c.verdicts.contains(&verdict.label()) {
                return Err(format!(
                    "a broken policy ({:?}) gave {}, not {}:\n{text}",
                    c.fault,
                    verdict.label(),
                    c.verdicts.join(" or ")
                )
                .into());
            }
            let reason = match &verdict {
                Verdict::Inconclusive { reason } => reason.clone(),
                _ => String::new(),
            };
            if !text.contains(c.cause) && !reason.contains(c.cause) {
                return Err(
                    format!("the report does not name the cause {:?}:\n{text}", c.cause).into(),
                );
            }
            if !facts.proven() {
                return Err(format!(
                    "no proof that cleanup put the policy back (host state: {:?})",
                    facts.host_state
                )
                .into());
            }
            eprintln!(
                "policy_fault::{}: {} ({:.0} s)",
                c.name,
                verdict.label(),
                took.as_secs_f64()
            );
            Ok(Completion::Completed)
        },
    )
    .with_kind("fault")
}

/// Fault injected in the guest at step 2 of broken-target.yaml (libvirtd or a QEMU killed,
/// the audit log rotated): the run must end in an error naming `cause`, with every change
/// undone and the guest's state proven equal to before, within two minutes.
fn injected(
    name: &'static str,
    l: Arc<LoadedScenario>,
    fault: selinux_harness::run::fault::Fault,
    cause: &'static str,
) -> Trial {
    Trial::ignorable_test(format!("fault::{name}"), move || {
        let mut vm = match own_vm(None) {
            Ok(vm) => vm,
            Err(no) => return no.done(),
        };
        let mut facts = Facts::default();
        let started = std::time::Instant::now();
        let batch = Batch::new(
            vec![RunItem {
                fault: Some(fault.clone()),
                ..RunItem::new(&l, None)
            }],
            1,
        );
        let verdict = dispatch(&mut vm, &batch, &mut [&mut facts]).pop().flatten();
        let took = started.elapsed();
        if let Some(e) = &facts.target_failed {
            return Err(format!("the target broke instead: {e}").into());
        }
        let verdict = verdict.ok_or("the run never started")?;
        if !facts.notes.iter().any(|n| n.starts_with("fault injected")) {
            return Err(format!("the fault was not injected; notes: {:?}", facts.notes).into());
        }
        ends_in_proven_error(&verdict, &facts, cause).map_err(|e| {
            format!(
                "{}\nnotes of the run:\n  {}",
                e.message().unwrap_or_default(),
                facts.notes.join("\n  ")
            )
        })?;
        if took > std::time::Duration::from_secs(120) {
            return Err(format!("the fault took {took:?} to end the run").into());
        }
        nothing_left(vm)?;
        Ok(Completion::Completed)
    })
    .with_kind("fault")
}

/// The negative control for `inconclusive`: SELinux really goes permissive for step 1's probe
/// of faults/permissive.yaml (a fault: no scenario can ask for it) and enforcing again after
/// it. The run must end inconclusive - never pass or fail - because of the permissive=1
/// records, with the guest proven put back. Uses a VM of its own.
fn permissive_is_inconclusive(l: Arc<LoadedScenario>) -> Trial {
    Trial::ignorable_test("must_fail::permissive-is-inconclusive", move || {
        use selinux_harness::run::fault::Fault;
        let mut vm = match own_vm(None) {
            Ok(vm) => vm,
            Err(no) => return no.done(),
        };
        let mut facts = Facts::default();
        let batch = Batch::new(
            vec![RunItem {
                fault: Some(Fault::Permissive { step: 1 }),
                ..RunItem::new(&l, None)
            }],
            1,
        );
        let verdict = dispatch(&mut vm, &batch, &mut [&mut facts]).pop().flatten();
        if let Some(e) = &facts.target_failed {
            return Err(format!("the target broke instead: {e}").into());
        }
        let verdict = verdict.ok_or("the run never started")?;
        let notes = &facts.notes;
        let injected = notes
            .iter()
            .filter(|n| n.starts_with("fault injected"))
            .count();
        if injected != 2 {
            return Err(format!("permissive was not set and put back; notes: {notes:?}").into());
        }
        match &verdict {
            Verdict::Inconclusive { reason } if reason.contains("permissive") => {}
            v => {
                return Err(format!(
                    "a run under a permissive kernel gave {}, not inconclusive; notes: {notes:?}",
                    v.label()
                )
                .into())
            }
        }
        if !facts.proven() {
            return Err(format!(
                "no proof that cleanup put the guest back (host state: {:?}); notes: {notes:?}",
                facts.host_state
            )
            .into());
        }
        nothing_left(vm)?;
        Ok(Completion::Completed)
    })
    .with_kind("must_fail")
}

/// Fault injected in the guest under a scenario whose verdict then must be `wanted` (fail,
/// inconclusive, error) with a report that shows `shows`, not a pass on missing evidence;
/// with cleanup done and proven, nothing left on this host.
fn injected_verdict(
    name: &'static str,
    l: Arc<LoadedScenario>,
    fault: Option<Fault>,
    wanted: &'static str,
    shows: &'static str,
) -> Trial {
    let kind = if fault.is_some() {
        "fault"
    } else {
        "must_error"
    };
    Trial::ignorable_test(format!("{kind}::{name}"), move || {
        let mut vm = match own_vm(None) {
            Ok(vm) => vm,
            Err(no) => return no.done(),
        };
        let batch = Batch::new(
            vec![RunItem {
                fault: fault.clone(),
                ..RunItem::new(&l, None)
            }],
            1,
        );
        let mut human = Human::new(Vec::new(), false, false);
        let mut facts = Facts::default();
        let verdict = dispatch(
            &mut vm,
            &batch,
            &mut [&mut human as &mut dyn Reporter, &mut facts],
        )
        .pop()
        .flatten();
        let text = String::from_utf8_lossy(&human.into_inner()).into_owned();
        if let Some(e) = &facts.target_failed {
            return Err(format!("the target broke instead: {e}\n{text}").into());
        }
        let verdict = verdict.ok_or("the run never started")?;
        if fault.is_some() && !facts.notes.iter().any(|n| n.starts_with("fault injected")) {
            return Err(format!("the fault was not injected:\n{text}").into());
        }
        if verdict.label() != wanted {
            return Err(format!("expected {wanted}, got {}:\n{text}", verdict.label()).into());
        }
        let reason = match &verdict {
            Verdict::Error { reason } | Verdict::Inconclusive { reason } => reason.clone(),
            _ => String::new(),
        };
        if !reason.contains(shows) && !text.contains(shows) {
            return Err(format!("the report does not show {shows:?}:\n{text}").into());
        }
        // The one fault that hides part of the host from the proof must leave it unproven.
        let proven = facts.proven();
        if proven == matches!(fault, Some(Fault::HideLibvirtFromProof)) {
            return Err(format!(
                "proof of cleanup: {proven}, which this fault must not give (host state: {:?}):\n{text}",
                facts.host_state
            )
            .into());
        }
        nothing_left(vm)?;
        if matches!(fault, Some(Fault::TransientRelabels { .. })) {
            // The measurement itself (kernel records and inotify, side by side), for the record.
            for n in facts.notes.iter().filter(|n| n.starts_with("fault injected")) {
                eprintln!("{name}: {n}");
            }
        }
        Ok(Completion::Completed)
    })
    .with_kind(kind)
}

/// Fault: SIGINT to `selinux-harness run` while the guest is in the middle of a step (a 60 s
/// settle window). The interrupt must be passed on to the guest, the scenario must stop there,
/// clean up and prove the guest's state equal to before, and the process must exit with 130
/// within a minute, leaving nothing behind on this host (no QEMU, no run directory).
/// With `jobs` > 1 the file runs `jobs` times at once (`run --jobs`), and every run must stop so.
fn sigint_mid_step(path: PathBuf, jobs: usize) -> Trial {
    let name = match jobs {
        1 => "fault::sigint-mid-step".to_string(),
        n => format!("fault::sigint-mid-step-jobs-{n}"),
    };
    Trial::ignorable_test(name, move || {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        // Also tells "cannot run here" (ignored) from "broke" (failed) before the real run.
        drop(match own_vm(None) {
            Ok(vm) => vm,
            Err(no) => return no.done(),
        });
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
        let stderr_path = logs.path().join("stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
        // `run` loads a file once however often it is named, and wants unique scenario
        // names: one renamed copy per run.
        let source = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut copies = Vec::new();
        for i in 0..jobs {
            let copy = logs.path().join(format!("run-{i}.yaml"));
            let renamed =
                source.replacen("name: interrupted", &format!("name: interrupted-{i}"), 1);
            std::fs::write(&copy, renamed).map_err(|e| e.to_string())?;
            copies.push(copy);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_selinux-harness"))
            .args(["run", "--target", "vm", "--format", "events", "--jobs"])
            .arg(jobs.to_string())
            .args(&copies)
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start selinux-harness: {e}"))?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // A hung harness must fail the trial, not hang the suite.
        let watchdog = {
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let seen = done.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(300);
                while Instant::now() < until && !seen.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                }
                if !seen.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
            });
            done
        };
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut interrupted_at = None;
        let mut finished_step_2 = false;
        let mut verdicts = vec![None; jobs];
        let mut facts: Vec<Facts> = (0..jobs).map(|_| Facts::default()).collect();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            let envelope: Envelope = serde_json::from_str(&line)
                .map_err(|e| format!("not an event line ({e}): {line}"))?;
            let run = envelope.run;
            let of_run = facts
                .get_mut(run)
                .ok_or_else(|| format!("run index out of range in the event line: {line}"))?;
            of_run.event(&envelope);
            match envelope.event {
                Event::StepStarted { step: 2, .. } if interrupted_at.is_none() => {
                    // Well inside the 60 s window, past the step's action.
                    std::thread::sleep(Duration::from_secs(2));
                    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)
                        .map_err(|e| format!("cannot send SIGINT: {e}"))?;
                    interrupted_at = Some(Instant::now());
                }
                Event::StepFinished { step: 2, .. } => finished_step_2 = true,
                Event::ScenarioFinished { verdict: v, .. } => verdicts[run] = Some(v),
                _ => {}
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        watchdog.store(true, std::sync::atomic::Ordering::SeqCst);
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let context = || format!("\n--- stderr of selinux-harness ---\n{stderr}");
        let at = interrupted_at.ok_or_else(|| format!("step 2 never started{}", context()))?;
        let took = at.elapsed();
        if finished_step_2 {
            return Err(format!("step 2 finished although it was interrupted{}", context()).into());
        }
        for (run, (verdict, facts)) in verdicts.iter().zip(&facts).enumerate() {
            let verdict = verdict
                .as_ref()
                .ok_or_else(|| format!("run {run}: no verdict after SIGINT{}", context()))?;
            // One run at a time: the interrupt lands in step 2. Several: each where it was.
            let cause = if jobs == 1 {
                "interrupted during step 2"
            } else {
                "interrupted"
            };
            ends_in_proven_error(verdict, facts, cause).map_err(|e| {
                format!(
                    "run {run}: {}{}",
                    e.message().unwrap_or_default(),
                    context()
                )
            })?;
        }
        if status.code() != Some(130) {
            return Err(format!("exit status {status}, expected 130{}", context()).into());
        }
        if took > Duration::from_secs(60) {
            return Err(format!("the run took {took:?} to stop after SIGINT").into());
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .collect();
        if !left.is_empty() {
            return Err(format!("left behind on this host: {left:?}").into());
        }
        if signal_qemu_of(
            &tmp.path().to_string_lossy(),
            nix::sys::signal::Signal::SIGKILL,
        ) {
            return Err("a QEMU of the interrupted run was still running (now killed)".into());
        }
        Ok(Completion::Completed)
    })
    .with_kind("fault")
}

/// Stops the VM as the harness does after any run, then checks that this host holds nothing
/// of it: no QEMU, no run directory.
fn nothing_left(vm: target::vm::VmTarget) -> Result<(), Failed> {
    let dir = vm.run_dir().to_path_buf();
    drop(vm);
    if dir.exists() {
        return Err(format!("the VM's run directory is still there: {}", dir.display()).into());
    }
    if signal_qemu_of(&dir.to_string_lossy(), nix::sys::signal::Signal::SIGKILL) {
        return Err("the VM's QEMU was still running (now killed)".into());
    }
    Ok(())
}

fn kill_qemu_of(marker: &str) -> bool {
    signal_qemu_of(marker, nix::sys::signal::Signal::SIGKILL)
}

/// Signal the qemu-system process whose command line mentions `marker`.
fn signal_qemu_of(marker: &str, signal: nix::sys::signal::Signal) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let is_qemu = cmdline.starts_with("qemu-system") || cmdline.contains("/qemu-system");
        if is_qemu && cmdline.contains(marker) {
            return nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).is_ok();
        }
    }
    false
}

/// Ctrl-C or SIGTERM (a CI timeout) of the suite: libtest-mimic's trials cannot be unwound from
/// outside, so the process exits at once as before, but first removes its VMs' run directories
/// (copies of the guest's disk, ~0.5 GB each), which would otherwise stay in the temp dir until
/// the next VM start sweeps them. The VMs' QEMUs die with this process (parent-death signal).
/// Blocked here, before any thread starts, and taken by one thread with `sigwait`; children
/// start with an empty signal mask, so QEMU and the harness binary still see the terminal's.
fn exit_cleanly_on_signals() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(signal) = set.wait() {
            eprintln!("conformance: {signal}: removing this run's VM directories and exiting");
            selinux_harness::vm::remove_own_run_dirs();
            std::process::exit(130);
        }
    });
}

fn main() {
    exit_cleanly_on_signals();
    let args = Arguments::from_args();
    let files = scenario::discover(&[repo().join("scenarios")]).unwrap_or_else(|d| {
        eprintln!("{d}");
        std::process::exit(2)
    });
    let mut loaded = Vec::new();
    for f in files {
        match scenario::load_file(&f) {
            Ok(l) => loaded.push(Arc::new(l)),
            Err(ds) => {
                for d in ds {
                    eprintln!("{d}");
                }
                std::process::exit(2)
            }
        }
    }
    let shared: Shared = Arc::new(Mutex::new(None));
    let record = Arc::new(Mutex::new(Record::default()));
    // A bad SELINUX_HARNESS_TARGET fails every trial when the target starts.
    let kind = chosen_kind().map_or(TargetKind::Vm, |(k, _)| k);
    // Every scenario run (and must_fail run) gets a slot in the one batch; the trials are
    // built once all slots are known.
    let mut batch = SuiteBatch::new(shared.clone());
    let mut scenario_runs = Vec::new();
    for l in &loaded {
        for v in l.variants() {
            let slot = SuiteBatch::slot(&mut batch, l.clone(), v.clone());
            scenario_runs.push((l.clone(), v, slot));
        }
    }
    let wrong = scenario::discover(&[repo().join("harness/tests/data/wrong")]).unwrap_or_default();
    let mut controls = Vec::new();
    for f in wrong {
        match scenario::load_file(&f) {
            Ok(l) => controls.push(Arc::new(l)),
            Err(ds) => {
                for d in ds {
                    eprintln!("{d}");
                }
                std::process::exit(2)
            }
        }
    }
    let mut fail_runs = Vec::new();
    for l in &controls {
        fail_runs.push((l.clone(), SuiteBatch::slot(&mut batch, l.clone(), None)));
    }
    let wanted_target = match kind {
        TargetKind::Local => scenario::TargetName::Local,
        _ => scenario::TargetName::Vm,
    };
    let mut trials = Vec::new();
    // (index of the trial, its slot, whether it would run at all on this target)
    let mut slots = Vec::new();
    for (l, v, slot) in scenario_runs {
        let applies = !l
            .scenario
            .not_applicable
            .iter()
            .any(|n| n.target == wanted_target);
        slots.push((trials.len(), slot, applies));
        trials.push(trial(l, v, (batch.clone(), slot), record.clone(), kind));
    }
    for (l, slot) in fail_runs {
        slots.push((trials.len(), slot, true));
        trials.push(must_fail(l, (batch.clone(), slot)));
    }
    // The batch holds the runs libtest will run: not filtered out, not only `--ignored` ones
    // (no trial here is marked ignored), applicable to the target.
    let mut selected = vec![false; slots.len()];
    for (t, slot, applies) in slots {
        selected[slot] = applies && !args.ignored && !args.is_filtered_out(&trials[t]);
    }
    batch.select(selected);
    trials.push(negative_controls(controls));
    trials.push(vm_never_boots());
    let seed_dir = repo().join("scenarios/seed");
    trials.push(parallel_seed(
        loaded
            .iter()
            .filter(|l| l.path.starts_with(&seed_dir))
            .cloned()
            .collect(),
    ));
    if let Some(l) = loaded
        .iter()
        .find(|l| l.scenario.name.value.as_str() == "cross-attach")
    {
        trials.push(vm_dies_mid_step(l.clone()));
        trials.push(agent_stops_answering(l.clone()));
    }
    let faults = repo().join("harness/tests/data/faults");
    match scenario::load_file(&faults.join("permissive.yaml")) {
        Ok(l) => trials.push(permissive_is_inconclusive(Arc::new(l))),
        Err(ds) => {
            for d in ds {
                eprintln!("{d}");
            }
            std::process::exit(2)
        }
    }
    let stage: StageVm = Arc::new(Mutex::new(None));
    // A catch's scenario is one of scenarios/, or a fault scenario of its own (a file of that
    // name in harness/tests/data/faults).
    let named = |n: &str| {
        loaded
            .iter()
            .find(|l| l.scenario.name.value.as_str() == n)
            .cloned()
            .or_else(|| {
                scenario::load_file(&faults.join(format!("{n}.yaml")))
                    .ok()
                    .map(Arc::new)
            })
    };
    let mut clean: Vec<Arc<LoadedScenario>> = Vec::new();
    for c in CATCHES {
        if let Some(l) = named(c.scenario) {
            if !clean.iter().any(|x| Arc::ptr_eq(x, &l)) {
                clean.push(l);
            }
        }
    }
    trials.push(policy_clean(clean, stage.clone()));
    for c in CATCHES {
        match named(c.scenario) {
            Some(l) => trials.push(policy_fault(c, l, stage.clone())),
            None => {
                eprintln!("the policy-fault stage needs scenario {}", c.scenario);
                std::process::exit(2)
            }
        }
    }
    trials.push(sigint_mid_step(faults.join("interrupted.yaml"), 1));
    trials.push(sigint_mid_step(faults.join("interrupted.yaml"), 2));
    match scenario::load_file(&faults.join("broken-target.yaml")) {
        Ok(l) => {
            let l = Arc::new(l);
            // A skip here would let a target whose libvirtd is down look green.
            trials.push(injected(
                "libvirtd-down-is-an-error-not-a-skip",
                l.clone(),
                Fault::KillLibvirtd { step: 0 },
                "the scenario requires libvirt, but libvirtd does not answer",
            ));
            trials.push(injected(
                "libvirtd-killed-mid-step",
                l.clone(),
                Fault::KillLibvirtd { step: 2 },
                "the connection to libvirtd was lost during step 2",
            ));
            trials.push(injected(
                "guest-qemu-dies-mid-step",
                l.clone(),
                Fault::KillQemu {
                    step: 2,
                    domain: "vm2".into(),
                },
                "the QEMU of domain vm2 exited during step 2",
            ));
            trials.push(injected(
                "audit-log-rotated-mid-step",
                l,
                Fault::RotateAuditLog { step: 2 },
                "was rotated during the step",
            ));
        }
        Err(ds) => {
            for d in ds {
                eprintln!("{d}");
            }
            std::process::exit(2)
        }
    }
    trials.extend(audit_faults(&faults));
    for u in UNDER_TEST {
        match named(u.scenario) {
            Some(l) => trials.push(policy_under_test(u, l, stage.clone())),
            None => {
                eprintln!("the policy_under_test stage needs scenario {}", u.scenario);
                std::process::exit(2)
            }
        }
    }
    let total = trials.len();
    let conclusion = libtest_mimic::run(&args, trials);
    // Shut the VMs down before writing reports.
    if let Ok(mut g) = shared.lock() {
        g.take();
    }
    if let Ok(mut g) = stage.lock() {
        g.take();
    }

    if let Ok(r) = record.lock() {
        if !r.scenarios.is_empty() {
            let dir = reports_dir();
            let written = std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(dir.join("report.json"), r.to_json()))
                .and_then(|_| std::fs::write(dir.join("junit.xml"), junit::render(&r)))
                .and_then(|_| std::fs::write(dir.join("report.html"), html::render(&r)));
            match written {
                Ok(()) => eprintln!(
                    "reports: {}/report.json, junit.xml, report.html",
                    dir.display()
                ),
                Err(e) => eprintln!("cannot write reports to {}: {e}", dir.display()),
            }
        }
    }
    let _ = total;
    let (started, executed) = (
        STARTED.load(Ordering::SeqCst),
        EXECUTED.load(Ordering::SeqCst),
    );
    if started > 0 && executed == 0 {
        eprintln!(
            "error: none of the {started} scenario trials executed: a suite that ran nothing is broken, not green (the fault trials do not count)"
        );
        std::process::exit(1);
    }
    conclusion.exit();
}

/// The trials that break the audit path, the mode or the log under a step: every one must end
/// in error, fail or inconclusive as it should, never in a pass on the silence.
fn audit_faults(dir: &Path) -> Vec<Trial> {
    let load = |f: &str| match scenario::load_file(&dir.join(f)) {
        Ok(l) => Arc::new(l),
        Err(ds) => {
            for d in ds {
                eprintln!("{d}");
            }
            std::process::exit(2)
        }
    };
    let quiet = load("quiet-step.yaml");
    let late = load("late-denial.yaml");
    let capture = load("capture-not-running.yaml");
    let overflow = load("timeline-overflow.yaml");
    let transient = load("transient-relabels.yaml");
    vec![
        injected_verdict(
            "capture-of-a-domain-not-running",
            capture,
            None,
            "error",
            "cannot capture $vm1 from domain vm1",
        ),
        injected_verdict(
            "audit-late-denial-is-the-steps",
            late,
            Some(Fault::SuspendAuditd {
                step: 1,
                millis: 2000,
            }),
            "fail",
            "denied { read }",
        ),
        injected_verdict(
            "audit-auditd-stuck",
            quiet.clone(),
            Some(Fault::SuspendAuditd {
                step: 1,
                millis: 25_000,
            }),
            "error",
            "auditd did not write the marker",
        ),
        injected_verdict(
            "audit-records-lost",
            quiet.clone(),
            Some(Fault::LoseAuditRecords { step: 1 }),
            "error",
            "the kernel lost",
        ),
        injected_verdict(
            "audit-avc-records-excluded",
            quiet.clone(),
            Some(Fault::ExcludeAvcRecords {
                step: 1,
                millis: 20_000,
            }),
            "error",
            "the audit canary's denial",
        ),
        injected_verdict(
            "permissive-during-a-quiet-step",
            quiet.clone(),
            Some(Fault::Permissive { step: 1 }),
            "inconclusive",
            "switched to permissive during step 1",
        ),
        injected_verdict(
            "timeline-overflow",
            overflow,
            Some(Fault::TimelineOverflow {
                step: 1,
                image: "a.img".into(),
            }),
            "fail",
            "inotify queue overflowed",
        ),
        injected_verdict(
            "host-state-unreadable-both-times",
            quiet.clone(),
            Some(Fault::HideLibvirtFromProof),
            "error",
            "cleanup is not proven",
        ),
        injected_verdict(
            "audit-log-truncated-and-regrown",
            quiet,
            Some(Fault::TruncateAuditLog { step: 1 }),
            "error",
            "truncated and regrown",
        ),
        // Not a fault that must be caught but the proof that the timeline sees every relabel:
        // the run passes only if the merged timeline has no gap.
        injected_verdict(
            "timeline-catches-every-relabel",
            transient,
            Some(Fault::TransientRelabels {
                step: 1,
                image: "a.img".into(),
                per_hold: 50,
            }),
            "pass",
            "kernel records caught 200 of 200",
        ),
    ]
}

/// A policy module under test a suite must judge: the module files (from
/// scenarios/policy/modules), the verdicts the seed's scenario must end in under it, and the
/// text its report must show as the module's effect.
struct UnderTest {
    name: &'static str,
    /// (path under scenarios/policy/modules, distributions it is for; empty: all).
    modules: &'static [(&'static str, &'static [&'static str])],
    scenario: &'static str,
    verdicts: &'static [&'static str],
    cause: &'static str,
}

const UNDER_TEST: &[UnderTest] = &[
    UnderTest {
        name: "harmless-te",
        modules: &[("harness_harmless.te", &[])],
        scenario: "mcs-probe",
        verdicts: &["pass"],
        cause: "harness_harmless installed at priority 400",
    },
    UnderTest {
        name: "svirt_t-permissive",
        modules: &[("svirt_permissive.cil", &[])],
        scenario: "mcs-probe",
        verdicts: &["inconclusive"],
        cause: "makes svirt_t permissive",
    },
    UnderTest {
        name: "svirt_t-out-of-mcs_constrained_type",
        modules: &[
            ("debian-12/virt.cil.bz2", &["debian-12"]),
            ("debian-13/virt.cil.bz2", &["debian-13"]),
        ],
        scenario: "mcs-probe",
        verdicts: &["fail"],
        cause: "overrides the installed module virt",
    },
];

/// The seed's scenario run with a policy module under test through `run --policy-module`'s
/// path (loaded once for the group, removed after, proven): it must end in one of the verdicts
/// named - never pass under a harmful module - and the report must name the module's effect.
fn policy_under_test(u: &'static UnderTest, l: Arc<LoadedScenario>, vm: StageVm) -> Trial {
    Trial::ignorable_test(
        format!("policy_under_test::{}::{}", u.name, u.scenario),
        move || {
            let mut policy = selinux_harness::policy::PolicyUnderTest::default();
            for (file, distro) in u.modules {
                let path = repo().join("scenarios/policy/modules").join(file);
                let bytes = std::fs::read(&path)
                    .map_err(|e| Failed::from(format!("{}: {e}", path.display())))?;
                policy.modules.push(selinux_harness::policy::ModuleFile {
                    file: file.to_string(),
                    origin: path.display().to_string(),
                    bytes,
                    distro: distro.iter().map(|d| d.to_string()).collect(),
                });
            }
            let mut guard = vm
                .lock()
                .map_err(|_| Failed::from("stage VM lock poisoned"))?;
            let t = match guard.get_or_insert_with(stage_vm) {
                Ok(t) => t,
                Err(no) => return no.done(),
            };
            let started = std::time::Instant::now();
            let batch = Batch::new(vec![RunItem::new(&l, None)], 1).with_policy(0, policy);
            let mut human = Human::new(Vec::new(), false, true);
            let mut facts = Facts::default();
            let verdict = dispatch(
                t,
                &batch,
                &mut [&mut human as &mut dyn Reporter, &mut facts],
            )
            .pop()
            .flatten();
            let text = String::from_utf8_lossy(&human.into_inner()).into_owned();
            if let Some(e) = &facts.target_failed {
                return Err(format!("the target broke: {e}").into());
            }
            let verdict = verdict.ok_or_else(|| Failed::from("the run never started"))?;
            if !u.verdicts.contains(&verdict.label()) {
                return Err(format!(
                    "under the policy module(s) {:?} {} gave {}, not {}:\n{text}",
                    u.modules,
                    u.scenario,
                    verdict.label(),
                    u.verdicts.join(" or ")
                )
                .into());
            }
            let reason = match &verdict {
                Verdict::Inconclusive { reason } => reason.clone(),
                _ => String::new(),
            };
            if !text.contains(u.cause) && !reason.contains(u.cause) {
                return Err(
                    format!("the report does not name the effect {:?}:\n{text}", u.cause).into(),
                );
            }
            if !facts
                .notes
                .iter()
                .any(|n| n.starts_with("policy under test removed"))
            {
                return Err(format!("the policy under test was not removed:\n{text}").into());
            }
            if !facts.proven() {
                return Err(format!(
                    "no proof that the removal put the policy back (host state: {:?})",
                    facts.host_state
                )
                .into());
            }
            eprintln!(
                "policy_under_test::{}: {} ({:.0} s)",
                u.name,
                verdict.label(),
                started.elapsed().as_secs_f64()
            );
            Ok(Completion::Completed)
        },
    )
    .with_kind("policy")
}
