//! `run`: the selected scenarios as one batch on a target, through the one dispatcher, to every
//! report. `compare` runs the same path twice.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;

use selinux_harness::dispatch::dispatch;
use selinux_harness::report::human::Human;
use selinux_harness::report::{junit, EventLines, Record, Reporter};
use selinux_harness::run::batch::{Batch, RunItem};
use selinux_harness::run::verdict::Verdict;
use selinux_harness::scenario::LoadedScenario;
use selinux_harness::target::Target;

use super::scenarios::load_all;
use super::target::TargetArgs;

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Scenario files or directories; default: ./scenarios
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Report format on stdout (or in --output).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Write the report here instead of stdout (human progress still goes to stderr).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Also write the JSON report (full evidence) here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Also write a self-contained HTML report (label timelines, AVCs) here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Only scenarios whose name, tag or file contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Only this variant.
    #[arg(long)]
    pub variant: Option<String>,
    /// Show passing checks and all evidence.
    #[arg(long, short)]
    pub verbose: bool,
    /// VM target: boot cold instead of restoring the warm snapshot.
    #[arg(long)]
    pub cold: bool,
    /// Run up to N scenario runs at the same time on the one target (one guest, or this
    /// host), each with its own executor, domains and sandbox. Runs that change the host for
    /// everyone run alone, after the others: qemu.conf settings (libvirtd is restarted under
    /// every other run), booleans (they change the policy for every process) and the probe
    /// policy module (`requires: [probe_module]`; it is removed again when the run ends). AVC
    /// records are given to the run they belong to by evidence (QEMU pid, MCS level, sandbox
    /// path); a record with no such evidence is shown to every run, so a neighbour can make an
    /// `avc: none` fail but never make it pass. With N > 1 the human report prints each run as
    /// one block when it finishes. 1: one after another.
    #[arg(long, short = 'j', default_value = "1", value_name = "N")]
    pub jobs: std::num::NonZeroUsize,
    /// Load this policy module for every run (NAME.cil, NAME.te, NAME.pp, optionally .bz2;
    /// repeatable): installed at priority 400 once per group of runs that bring the same
    /// policy - a module named like an installed one overrides it - and removed afterwards. A
    /// .te is built in the target with its own checkmodule.
    #[arg(long = "policy-module", value_name = "FILE")]
    pub policy_module: Vec<PathBuf>,
    /// Make this domain type permissive for every run (repeatable). A run whose domains are
    /// permissive is inconclusive, never a pass.
    #[arg(long, value_name = "TYPE")]
    pub permissive: Vec<String>,
    /// Set this SELinux boolean for every run (repeatable; NAME=on or NAME=off), not
    /// persistently; put back afterwards.
    #[arg(long, value_name = "NAME=VALUE")]
    pub boolean: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable progress and verdicts; failures show expected against observed.
    Human,
    /// The whole record: every event's evidence, checks and verdicts, as one JSON document.
    Json,
    /// JUnit XML: one test case per scenario and variant, for CI systems.
    Junit,
    /// One JSON object per event (scenario started, step started, evidence, expectation
    /// checked, cleanup, verdict ...) with its run's index and a timestamp, written as it
    /// happens: the stream every report is made from.
    Events,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let (loaded, errors) = load_all(&args.paths)?;
    if errors > 0 {
        bail!("{errors} error(s) in the scenarios; nothing was run (see `selinux-harness check`)");
    }
    let selected = select(&args, &loaded)?;
    run_selected(&args, selected)
}

/// The runs `args` picks out of `loaded`: each scenario under each of its variants, filtered.
pub fn select<'a>(
    args: &RunArgs,
    loaded: &'a [LoadedScenario],
) -> Result<Vec<(&'a LoadedScenario, Option<String>)>> {
    let selected: Vec<(&LoadedScenario, Option<String>)> = loaded
        .iter()
        .filter(|l| {
            args.filter.as_ref().is_none_or(|f| {
                let s = &l.scenario;
                s.name.value.as_str().contains(f.as_str())
                    || s.tags.iter().any(|t| t.contains(f.as_str()))
                    || l.path.to_string_lossy().contains(f.as_str())
            })
        })
        .flat_map(|l| l.variants().into_iter().map(move |v| (l, v)))
        .filter(|(_, v)| args.variant.is_none() || *v == args.variant)
        .collect();
    if selected.is_empty() {
        bail!("no scenario matches the filter");
    }
    Ok(selected)
}

pub fn run_selected(
    args: &RunArgs,
    selected: Vec<(&LoadedScenario, Option<String>)>,
) -> Result<ExitCode> {
    let args = args.clone();
    // A bad policy under test is the user's error: refuse it before building or booting anything.
    let policies = policies_for(&args, &selected)?;
    let (mut t, interrupt) = args.target.open(args.cold)?;
    // The live event stream, for tools that follow a run as it happens.
    let mut events = match (args.format, &args.output) {
        (Format::Events, Some(p)) => Some(EventLines(Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ) as Box<dyn std::io::Write>)),
        (Format::Events, None) => Some(EventLines(Box::new(std::io::stdout()) as _)),
        _ => None,
    };

    // Human progress goes to stdout unless stdout carries a machine-readable report.
    let to_stdout = args.format == Format::Human && args.output.is_none();
    let batch = batch_of(&selected, args.jobs.get(), policies);
    let human = progress(to_stdout, &args);
    let (verdicts, record) = run_batch(t.as_mut(), &batch, human, events.as_mut());
    drop(t);
    let not_started = selected.len() - verdicts.len();
    if interrupt.is_set() && not_started > 0 {
        eprintln!("interrupted: {not_started} scenario run(s) not started");
    }
    report(&args, &verdicts, &record, interrupt.is_set())
}

/// The policy under test of the command line (`--policy-module`, `--permissive`, `--boolean`).
pub fn run_wide_policy(args: &RunArgs) -> Result<selinux_harness::policy::PolicyUnderTest> {
    use selinux_harness::policy;
    let mut p = policy::PolicyUnderTest::default();
    for f in &args.policy_module {
        p.modules.push(policy::read_cli_module(f)?);
    }
    for t in &args.permissive {
        p.permissive.push(policy::parse_type_arg(t)?);
    }
    for b in &args.boolean {
        p.booleans.push(policy::parse_boolean_arg(b)?);
    }
    if let Some(name) = p.duplicate_name() {
        bail!("two --policy-module files make the policy module `{name}`: give one");
    }
    Ok(p)
}

/// Every selected run's policy under test: its scenario's (and variant's) `host.modules` and
/// `permissive`, module files read now, plus the command line's. Any file that is missing or
/// not allowed is an error naming where the scenario names it; nothing runs then.
pub fn policies_for(
    args: &RunArgs,
    selected: &[(&LoadedScenario, Option<String>)],
) -> Result<Vec<selinux_harness::policy::PolicyUnderTest>> {
    let wide = run_wide_policy(args)?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (l, v) in selected {
        match selinux_harness::policy::for_run(l, v.as_deref()) {
            Ok(p) => {
                let p = p.with(&wide);
                if let Some(name) = p.duplicate_name() {
                    errors.push(format!(
                        "{}: the scenario's modules and --policy-module both make the policy module `{name}`",
                        l.path.display()
                    ));
                }
                out.push(p)
            }
            Err(d) => errors.push(d.to_string()),
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        bail!("{}\nnothing was run", errors.join("\n"));
    }
    Ok(out)
}

/// The run path: the batch on the target through the one dispatcher, to the human report, the
/// record the JSON, JUnit and HTML reports are written from, and the `--format events` lines.
/// The verdicts of the runs that started, in the order of the batch.
pub fn run_batch(
    t: &mut dyn Target,
    batch: &Batch<'_>,
    mut human: Human<Box<dyn std::io::Write>>,
    events: Option<&mut EventLines<Box<dyn std::io::Write>>>,
) -> (Vec<Verdict>, Record) {
    let mut record = Record::for_batch(batch);
    let mut reporters: Vec<&mut dyn Reporter> = vec![&mut human, &mut record];
    if let Some(events) = events {
        reporters.push(events);
    }
    let verdicts = dispatch(t, batch, &mut reporters)
        .into_iter()
        .flatten()
        .collect();
    (verdicts, record)
}

pub fn report(
    args: &RunArgs,
    verdicts: &[Verdict],
    record: &Record,
    interrupted: bool,
) -> Result<ExitCode> {
    let counts = summary(verdicts);
    eprintln!("{counts}");
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    if let Some(p) = &args.json {
        write(p, record.to_json())?;
    }
    if let Some(p) = &args.junit {
        write(p, junit::render(record))?;
    }
    if let Some(p) = &args.html {
        write(p, selinux_harness::report::html::render(record))?;
    }
    let main_report = match args.format {
        Format::Human => None,
        Format::Json => Some(record.to_json()),
        Format::Junit => Some(junit::render(record)),
        Format::Events => None,
    };
    match (main_report, &args.output) {
        (Some(r), Some(p)) => write(p, r)?,
        (Some(r), None) => println!("{r}"),
        (None, _) => {}
    }
    Ok(if interrupted {
        // What a shell expects of a command stopped by Ctrl-C.
        ExitCode::from(130)
    } else if verdicts.iter().all(Verdict::is_success) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The selected runs as one batch `jobs` wide, each with its policy under test (none where
/// `policies` is shorter).
pub fn batch_of<'a>(
    selected: &'a [(&'a LoadedScenario, Option<String>)],
    jobs: usize,
    policies: Vec<selinux_harness::policy::PolicyUnderTest>,
) -> Batch<'a> {
    let mut batch = Batch::new(
        selected
            .iter()
            .map(|(l, v)| RunItem::new(l, v.as_deref()))
            .collect(),
        jobs,
    );
    for (i, p) in policies.into_iter().enumerate() {
        batch = batch.with_policy(i, p);
    }
    batch
}

/// The human progress report on stdout or stderr, coloured when that stream is a terminal and
/// NO_COLOR is not set.
pub fn progress(to_stdout: bool, args: &RunArgs) -> Human<Box<dyn std::io::Write>> {
    let color = std::env::var_os("NO_COLOR").is_none()
        && if to_stdout {
            std::io::stdout().is_terminal()
        } else {
            std::io::stderr().is_terminal()
        };
    let out: Box<dyn std::io::Write> = if to_stdout {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::io::stderr())
    };
    Human::new(out, color, args.verbose).for_jobs(args.jobs.get())
}

pub fn summary(verdicts: &[Verdict]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for v in verdicts {
        *counts.entry(v.label()).or_insert(0) += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("{} scenario run(s): {}", verdicts.len(), parts.join(", "))
}

/// The reports of `run`, pinned: recorded event streams (tests/data/events, in the
/// `--format events` form) are played back through the run path by a target that replays them,
/// and every report made from them is a snapshot.
#[cfg(test)]
mod tests {
    use super::*;
    use selinux_harness::host::environment::TargetInfo;
    use selinux_harness::report::html;
    use selinux_harness::run::event::{Envelope, Event};
    use selinux_harness::scenario;
    use selinux_harness::target::TargetError;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A writer the test reads back after handing it over as a `Box<dyn Write>`.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.borrow().clone()).expect("reports are UTF-8")
        }
    }

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// A recorded stream: each event in its envelope (the index of the run it belongs to, a
    /// timestamp).
    fn recorded(name: &str) -> Vec<Envelope> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/events")
            .join(name);
        let text = std::fs::read_to_string(&path).expect("the fixture exists");
        text.lines()
            .enumerate()
            .map(|(n, line)| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
            })
            .collect()
    }

    /// Why a run whose stream stops before its verdict failed: its guest went away.
    const TARGET_GONE: &str = "the guest stopped answering (agent channel closed)";

    /// Plays a recorded stream back, as the VM target would deliver it: every envelope as
    /// recorded, then the error of a target that broke if a run has no verdict.
    struct Replay {
        events: Vec<Envelope>,
    }

    impl Target for Replay {
        fn info(&mut self) -> Result<TargetInfo, TargetError> {
            Err(TargetError::Unavailable(
                "a replay describes no target".into(),
            ))
        }

        fn run(
            &mut self,
            batch: &Batch<'_>,
            sink: &mut dyn FnMut(Envelope),
        ) -> Result<(), TargetError> {
            for e in &self.events {
                if let Event::ScenarioStarted { scenario: s, .. } = &e.event {
                    let asked = &batch.runs[e.run].scenario.scenario.name.value;
                    assert_eq!(s, asked.as_str(), "run {}", e.run);
                }
                sink(e.clone());
            }
            let finished = |run: usize| {
                self.events
                    .iter()
                    .any(|e| e.run == run && matches!(e.event, Event::ScenarioFinished { .. }))
            };
            match (0..batch.runs.len()).all(finished) {
                true => Ok(()),
                false => Err(TargetError::Failed(TARGET_GONE.into())),
            }
        }
    }

    /// Every scenario the recordings name, with its path as seen from the repository root.
    fn catalogue() -> Vec<LoadedScenario> {
        let dirs = [
            repo().join("scenarios"),
            repo().join("harness/tests/data/wrong"),
        ];
        scenario::discover(&dirs)
            .expect("the scenario directories exist")
            .into_iter()
            .map(|f| {
                let mut l = scenario::load_file(&f).expect("shipped scenarios load");
                l.path = f.strip_prefix(repo()).unwrap_or(&f).to_path_buf();
                l
            })
            .collect()
    }

    /// What `run` gave: the human report (stdout), stderr (the summary line), the
    /// `--format events` stream and the record the JSON, JUnit and HTML reports
    /// are written from.
    struct Outputs {
        human: String,
        stderr: String,
        events: String,
        record: Record,
    }

    fn replay(fixture: &str, jobs: usize, color: bool, verbose: bool) -> Outputs {
        let events = recorded(fixture);
        let catalogue = catalogue();
        // The runs, in order: what `run` selected when the stream was recorded.
        let mut started: Vec<(usize, &LoadedScenario, Option<String>)> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::ScenarioStarted {
                    scenario, variant, ..
                } => {
                    let l = catalogue
                        .iter()
                        .find(|l| l.scenario.name.value.as_str() == scenario)
                        .unwrap_or_else(|| panic!("no scenario named {scenario}"));
                    Some((e.run, l, variant.clone()))
                }
                _ => None,
            })
            .collect();
        started.sort_by_key(|(run, ..)| *run);
        let batch = Batch::new(
            started
                .iter()
                .map(|(_, l, v)| RunItem::new(l, v.as_deref()))
                .collect(),
            jobs,
        );
        let (human, log) = (Shared::default(), Shared::default());
        let mut target = Replay { events };
        let mut lines = EventLines(Box::new(log.clone()) as Box<dyn std::io::Write>);
        let (verdicts, record) = run_batch(
            &mut target,
            &batch,
            Human::new(
                Box::new(human.clone()) as Box<dyn std::io::Write>,
                color,
                verbose,
            )
            .for_jobs(jobs),
            Some(&mut lines),
        );
        assert_eq!(verdicts.len(), batch.runs.len());
        let stderr = summary(&verdicts) + "\n";
        Outputs {
            human: human.text(),
            stderr,
            events: stamped_now(&log.text()),
            record,
        }
    }

    /// The stream with the dispatcher's own events (a broken target's `target_failed`, stamped
    /// when the replay ran) stamped `[now]`: every other timestamp is the recording's.
    fn stamped_now(events: &str) -> String {
        events
            .lines()
            .map(|line| {
                let mut e: Envelope = serde_json::from_str(line).expect("an envelope per line");
                if !matches!(e.event, Event::TargetFailed { .. }) {
                    return format!("{line}\n");
                }
                e.timestamp = Default::default();
                let epoch = serde_json::to_string(&e.timestamp).expect("a timestamp");
                format!(
                    "{}\n",
                    serde_json::to_string(&e).expect("an envelope").replacen(
                        &epoch,
                        "\"[now]\"",
                        1
                    )
                )
            })
            .collect()
    }

    fn terminal(o: &Outputs) -> String {
        format!("--- stdout ---\n{}--- stderr ---\n{}", o.human, o.stderr)
    }

    #[test]
    fn human_sequential() {
        insta::assert_snapshot!(terminal(&replay("sequential.jsonl", 1, false, false)));
    }

    /// --verbose in a terminal: every check and all evidence, in colour (ESC written as \e).
    #[test]
    fn human_sequential_verbose_colour() {
        let o = replay("sequential.jsonl", 1, true, true);
        insta::assert_snapshot!(terminal(&o).replace('\x1b', "\\e"));
    }

    #[test]
    fn human_jobs_2() {
        insta::assert_snapshot!(terminal(&replay("parallel.jsonl", 2, false, false)));
    }

    #[test]
    fn events_sequential() {
        insta::assert_snapshot!(replay("sequential.jsonl", 1, false, false).events);
    }

    #[test]
    fn events_jobs_2() {
        insta::assert_snapshot!(replay("parallel.jsonl", 2, false, false).events);
    }

    #[test]
    fn json_sequential() {
        insta::assert_snapshot!(replay("sequential.jsonl", 1, false, false).record.to_json());
    }

    #[test]
    fn json_jobs_2() {
        insta::assert_snapshot!(replay("parallel.jsonl", 2, false, false).record.to_json());
    }

    #[test]
    fn junit_sequential() {
        insta::assert_snapshot!(junit::render(
            &replay("sequential.jsonl", 1, false, false).record
        ));
    }

    #[test]
    fn junit_jobs_2() {
        insta::assert_snapshot!(junit::render(
            &replay("parallel.jsonl", 2, false, false).record
        ));
    }

    /// Streams recorded on the Debian 12 VM (`run --format events`, see tests/data/events):
    /// every report `run` makes from them.
    #[rstest::rstest]
    #[case::seed("vm-seed", 1)]
    #[case::seed_jobs_2("vm-seed-jobs-2", 2)]
    #[case::wrong_image_level("vm-wrong-image-level", 1)]
    #[case::oracle("vm-oracle", 1)]
    fn recorded_on_the_vm(#[case] stream: &str, #[case] jobs: usize) {
        let o = replay(&format!("{stream}.jsonl"), jobs, false, false);
        insta::assert_snapshot!(format!("{stream}-human"), terminal(&o));
        insta::assert_snapshot!(format!("{stream}-events"), o.events);
        insta::assert_snapshot!(format!("{stream}-json"), o.record.to_json());
        insta::assert_snapshot!(format!("{stream}-junit"), junit::render(&o.record));
        insta::assert_snapshot!(format!("{stream}-html"), html::render(&o.record));
    }

    #[test]
    fn html_sequential() {
        insta::assert_snapshot!(html::render(
            &replay("sequential.jsonl", 1, false, false).record
        ));
    }
}
