//! `selinux-harness`: the command line over the library.

mod cli;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};

use selinux_harness::dispatch::dispatch;
use selinux_harness::interrupt::Interrupt;
use selinux_harness::report::human::Human;
use selinux_harness::report::{junit, EventLines, Record, Reporter};
use selinux_harness::run::batch::{Batch, RunItem};
use selinux_harness::run::trial_name;
use selinux_harness::run::verdict::Verdict;
use selinux_harness::scenario::{self, LoadedScenario};
use selinux_harness::target::{self, Target, TargetKind};

#[derive(Parser)]
#[command(
    name = "selinux-harness",
    version,
    about = "Conformance harness for SELinux labelling and policy (libvirt, QEMU, sVirt)",
    long_about = "Runs YAML scenarios - guests with their seclabels, disk images, steps such as \
define, start and hot-attach, and what must hold after each step - against a real \
SELinux-enforcing host, and gives a verdict with the evidence: file contexts, process labels, \
AVC denials, label timelines, libvirt errors.\n\n\
Hosts without SELinux (most) run scenarios in an embedded Debian VM that the harness builds \
and boots itself (`selinux-harness image build`, then `selinux-harness run`).",
    after_help = "Examples:\n  \
selinux-harness check scenarios/            validate every scenario, list every error\n  \
selinux-harness explain scenarios/seed/cross-attach.yaml\n  \
selinux-harness run scenarios/seed          run in the VM (built on first use)\n  \
selinux-harness run --format junit -o report.xml scenarios/\n  \
selinux-harness env --target vm             what the VM target is\n\n\
Exit status (each command's --help has its own): 0 success, 1 the answer is no (invalid \
scenarios, a verdict that is not a success, a reproduced bug, leftovers that stay), 2 the \
command could not do its work (bad arguments, unreadable or invalid input, no target), \
130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate scenario files; every error of every file, with file:line:column.
    #[command(after_long_help = "\
Exit status: 0 every scenario file is valid, 1 some file has errors (all are printed),
2 no scenario file found or a path cannot be read.")]
    Check {
        /// Files or directories (searched for *.yaml); default: ./scenarios
        paths: Vec<PathBuf>,
    },
    /// List scenarios with their tags and variants.
    #[command(after_long_help = "\
Exit status: 0 every scenario file is valid, 1 some file has errors (the valid ones are still
listed), 2 no scenario file found or a path cannot be read.")]
    List { paths: Vec<PathBuf> },
    /// Show what a scenario will do, step by step, with the libvirt XML and the virsh
    /// commands that do the same by hand.
    #[command(after_long_help = "\
Exit status: 0 explained, 2 the scenario cannot be read or is invalid, or has no such variant.")]
    Explain {
        scenario: PathBuf,
        /// Variant to explain (default: the first).
        #[arg(long)]
        variant: Option<String>,
    },
    /// Write a scenario skeleton from libvirt domain XML, as bug reports attach it: each domain
    /// with its seclabel and file disks, the disks' files as images, a start and a destroy step.
    /// Says (on stderr and in the file) what it could not map.
    #[command(after_long_help = "\
The skeleton loads as it is (`selinux-harness check` accepts it); what must hold after each
step (`expect:`) is for you to add.

Exit status: 0 written (also when parts were not mapped: they are listed), 2 an XML file cannot
be read or is not a domain, the output exists already, or the name is not a scenario name.")]
    New {
        /// A domain's XML (`virsh dumpxml NAME`); once per guest.
        #[arg(long = "from-xml", required = true, value_name = "FILE")]
        from_xml: Vec<PathBuf>,
        /// Write the scenario here (never over an existing file); default: stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The scenario's name (default: the output file's name without .yaml, or from-xml).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the JSON Schema of the scenario language (for editors).
    #[command(after_long_help = "Exit status: 0.")]
    Schema,
    /// Run scenarios on a target and report verdicts.
    #[command(after_long_help = "\
Ctrl-C (or SIGTERM) stops the scenario that runs at its next check - right after a step's
action or inside a settle window - cleans up, proves the target's state equal to before, and
skips the scenarios not yet started; on the VM target this happens in the guest. Press it twice
to exit at once without cleanup (then `selinux-harness doctor` removes what is left).

Exit status: 0 every verdict is pass or known-bug, 1 some verdict is not (skipped included),
2 the scenarios could not be loaded or the target could not start, 130 interrupted.")]
    Run(RunArgs),
    /// Run the same scenarios twice on one target - under the target's shipped policy, then
    /// with the policy under test (--policy-module, --permissive, --boolean, and the scenarios'
    /// own `host.modules`/`permissive`) - and report what changed: verdicts, and denials that
    /// are new or vanished at each step.
    #[command(after_long_help = "\
The baseline run leaves out every policy under test (the command line's and the scenarios'
own `host.modules`/`permissive`); scenario booleans and qemu.conf settings apply to both.
--format json (or --json FILE) writes the comparison as JSON; --format human prints it.

Exit status: 0 no verdict changed, 1 some verdict changed, 2 the scenarios could not be loaded,
no policy under test was given, or the target could not start, 130 interrupted.")]
    Compare(RunArgs),
    /// Mutation testing of the scenarios themselves: run each scenario and the variants of it a
    /// correct suite must reject (each expectation inverted or shifted, a known bug dropped),
    /// in one batch, and report per scenario and per kind of check how many were killed.
    #[command(after_long_help = "\
A mutant is killed when its verdict is not a success (pass or known-bug) where the scenario's
own run in the same batch succeeded. A step lets a mutant survive with
`mutants_survive: [{mutant: KEY/WHAT, reason: ...}]`.

Exit status: 0 every mutant not listed was killed, 1 one survived or could not be judged,
2 the scenarios could not be loaded or the target could not start.")]
    Mutants(MutantsArgs),
    /// Run one scenario and write a single Markdown file for a bug tracker: environment,
    /// steps, evidence (label timeline, AVCs, libvirt errors) and the scenario itself.
    #[command(after_long_help = "\
The bundle is written whatever the verdict, so that a report can say \"does not reproduce\" too.

Exit status: 0 the scenario passed (the bug does not reproduce; also when a known-bug mark is
stale), 1 the bug reproduces (verdict fail or known-bug), 2 no verdict: the scenario cannot be
read or is invalid, the target cannot start, or the run ended in error, inconclusive (e.g.
SELinux permissive) or skipped; 130 interrupted.")]
    Repro {
        scenario: PathBuf,
        /// Where to write the bundle (default: SCENARIO-NAME.repro.md).
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        variant: Option<String>,
        #[arg(long, value_enum, env = target::TARGET_ENV, default_value = "auto")]
        target: cli::TargetArg,
        #[arg(long, env = target::LOCAL_OPT_IN_ENV)]
        allow_local_changes: bool,
        /// VM target: the image recipe to build and boot (debian-12, debian-13).
        #[arg(long, env = target::vm::DISTRO_ENV, value_name = "RECIPE")]
        distro: Option<String>,
    },
    /// Find and remove what interrupted runs left on this host (domains, sandboxes, a loaded
    /// probe module, an edited qemu.conf), by the harness's marker. Do not run it during a run.
    #[command(after_long_help = "\
Exit status: 0 nothing is left on this host (nothing found, or everything found was removed),
1 something is left: with --dry-run, leftovers were found; otherwise some could not be removed
(the lines starting with FAILED: say which and why), 2 the command could not run.")]
    Doctor {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Build, list and remove the cached VM images.
    #[command(after_long_help = "\
Exit status: 0 done, 2 it could not be done (unknown distribution or image, a failed build,
an unusable cache directory), 130 interrupted (temporary files removed).")]
    Image {
        #[command(subcommand)]
        command: cli::vm::ImageCommand,
    },
    /// Describe a target (kernel, SELinux mode, policy, libvirt/QEMU, how the VM started).
    #[command(after_long_help = "\
Exit status: 0 described, 2 the target could not be described (unknown distribution, the image
could not be built, the VM did not start or its agent did not answer), 130 interrupted.")]
    Env(cli::vm::EnvArgs),
    /// Inside the VM: serve the host's requests on the agent port (started by the guest's init).
    #[command(hide = true)]
    Agent(cli::vm::AgentArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Scenario files or directories; default: ./scenarios
    paths: Vec<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, env = target::TARGET_ENV, default_value = "auto")]
    target: cli::TargetArg,
    /// Allow the local target to change this host (define guests, relabel its sandbox, load a
    /// test policy module); everything is undone afterwards.
    #[arg(long, env = target::LOCAL_OPT_IN_ENV)]
    allow_local_changes: bool,
    /// Report format on stdout (or in --output).
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Write the report here instead of stdout (human progress still goes to stderr).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Also write the JSON report (full evidence) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Also write a self-contained HTML report (label timelines, AVCs) here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Only scenarios whose name, tag or file contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Only this variant.
    #[arg(long)]
    variant: Option<String>,
    /// Show passing checks and all evidence.
    #[arg(long, short)]
    verbose: bool,
    /// VM target: boot cold instead of restoring the warm snapshot.
    #[arg(long)]
    cold: bool,
    /// VM target: the image recipe to build and boot (debian-12, debian-13; default debian-12).
    #[arg(long, env = target::vm::DISTRO_ENV, value_name = "RECIPE")]
    distro: Option<String>,
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
    jobs: std::num::NonZeroUsize,
    /// Load this policy module for every run (NAME.cil, NAME.te, NAME.pp, optionally .bz2;
    /// repeatable): installed at priority 400 once per group of runs that bring the same
    /// policy - a module named like an installed one overrides it - and removed afterwards. A
    /// .te is built in the target with its own checkmodule.
    #[arg(long = "policy-module", value_name = "FILE")]
    policy_module: Vec<PathBuf>,
    /// Make this domain type permissive for every run (repeatable). A run whose domains are
    /// permissive is inconclusive, never a pass.
    #[arg(long, value_name = "TYPE")]
    permissive: Vec<String>,
    /// Set this SELinux boolean for every run (repeatable; NAME=on or NAME=off), not
    /// persistently; put back afterwards.
    #[arg(long, value_name = "NAME=VALUE")]
    boolean: Vec<String>,
}

#[derive(clap::Args)]
struct MutantsArgs {
    /// Scenario files or directories; default: ./scenarios
    paths: Vec<PathBuf>,
    /// Only list the mutants, run nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, env = target::TARGET_ENV, default_value = "auto")]
    target: cli::TargetArg,
    #[arg(long, env = target::LOCAL_OPT_IN_ENV)]
    allow_local_changes: bool,
    /// VM target: the image recipe to build and boot (debian-12, debian-13; default debian-12).
    #[arg(long, env = target::vm::DISTRO_ENV, value_name = "RECIPE")]
    distro: Option<String>,
    /// Up to N runs at once on the one target (see `run --jobs`).
    #[arg(long, short = 'j', default_value = "4", value_name = "N")]
    jobs: std::num::NonZeroUsize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
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

fn main() -> ExitCode {
    // A probe runs in the context under test (svirt_t at some level): it must do nothing but
    // its one open(), so it is dispatched before anything else is set up.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "probe") {
        return ExitCode::from(selinux_harness::host::probe::probe_main(&args[2..]) as u8);
    }
    let cli = Cli::parse();
    match command(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn command(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { paths } => check(&paths),
        Command::List { paths } => list(&paths),
        Command::Explain { scenario, variant } => explain(&scenario, variant.as_deref()),
        Command::New {
            from_xml,
            output,
            name,
        } => new_from_xml(&from_xml, output.as_deref(), name),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scenario::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run(args),
        Command::Compare(args) => cli::compare::compare(args),
        Command::Mutants(args) => mutants(args),
        Command::Repro {
            scenario,
            output,
            variant,
            target,
            allow_local_changes,
            distro,
        } => repro(
            &scenario,
            output,
            variant,
            distro,
            target.into(),
            allow_local_changes,
        ),
        Command::Doctor { dry_run } => doctor(dry_run),
        Command::Image { command } => {
            let interrupt = Interrupt::on_signals()?;
            // report(): exit 130 after a Ctrl-C (cleanup done), the error's own fix text otherwise.
            Ok(cli::vm::run_image(command, &interrupt)
                .map_or_else(|e| cli::vm::report(&e), |()| ExitCode::SUCCESS))
        }
        Command::Env(args) => {
            let interrupt = Interrupt::on_signals()?;
            Ok(cli::vm::run_env(&args, &interrupt)
                .map_or_else(|e| cli::vm::report(&e), |()| ExitCode::SUCCESS))
        }
        Command::Agent(args) => {
            cli::vm::run_agent(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn default_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !paths.is_empty() {
        return Ok(paths.to_vec());
    }
    let d = PathBuf::from("scenarios");
    if d.is_dir() {
        Ok(vec![d])
    } else {
        bail!("no scenario paths given and there is no ./scenarios directory here; name the files or directories to use")
    }
}

/// Load every file; print every diagnostic of every file to stderr.
fn load_all(paths: &[PathBuf]) -> Result<(Vec<LoadedScenario>, usize)> {
    let files = scenario::discover(&default_paths(paths)?).map_err(|d| anyhow::anyhow!("{d}"))?;
    if files.is_empty() {
        bail!("no scenario files (*.yaml) under {paths:?}");
    }
    let mut loaded = Vec::new();
    let mut errors = 0;
    for f in files {
        match scenario::load_file(&f) {
            Ok(l) => loaded.push(l),
            Err(diags) => {
                errors += diags.len();
                for d in diags {
                    eprintln!("{d}");
                }
            }
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for l in &loaded {
        let name = l.scenario.name.value.to_string();
        if let Some(prev) = seen.insert(name.clone(), l.path.clone()) {
            errors += 1;
            eprintln!(
                "{}:{}:{}: scenario name `{name}` is already used by {}; names must be unique (trials are named after them)",
                l.path.display(),
                l.scenario.name.line,
                l.scenario.name.column,
                prev.display()
            );
        }
    }
    Ok((loaded, errors))
}

/// Errors reject a file (exit 1); warnings - what loads but may check less than meant - are
/// printed as `FILE:LINE:COL: warning: ...` and counted, and leave the exit status alone.
fn check(paths: &[PathBuf]) -> Result<ExitCode> {
    let (loaded, errors) = load_all(paths)?;
    let mut warned = 0;
    for l in &loaded {
        for w in scenario::warnings(&l.path, &l.scenario) {
            eprintln!(
                "{}:{}:{}: warning: {}",
                w.file.display(),
                w.line,
                w.column,
                w.message
            );
            warned += 1;
        }
    }
    let warnings = match warned {
        0 => String::new(),
        n => format!(", {n} warning(s)"),
    };
    if errors > 0 {
        eprintln!(
            "{errors} error(s){warnings}; {} file(s) valid",
            loaded.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{} scenario file(s) valid{warnings}", loaded.len());
    Ok(ExitCode::SUCCESS)
}

fn list(paths: &[PathBuf]) -> Result<ExitCode> {
    let (loaded, errors) = load_all(paths)?;
    for l in &loaded {
        let s = &l.scenario;
        let variants: Vec<String> = s.variants.keys().map(|v| v.to_string()).collect();
        println!("{}", s.name.value);
        println!("    file:     {}", l.path.display());
        if !s.tags.is_empty() {
            println!("    tags:     {}", s.tags.join(", "));
        }
        if !variants.is_empty() {
            println!("    variants: {}", variants.join(", "));
        }
        println!("    {}", s.description.trim());
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One scenario file, or every diagnostic it has.
fn load_one(path: &Path) -> Result<LoadedScenario> {
    scenario::load_file(path).map_err(|ds| {
        anyhow::anyhow!(ds
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })
}

fn new_from_xml(xml: &[PathBuf], output: Option<&Path>, name: Option<String>) -> Result<ExitCode> {
    let name = name
        .or_else(|| output.and_then(|o| o.file_stem()?.to_str().map(str::to_string)))
        .unwrap_or_else(|| "from-xml".into());
    name.parse::<scenario::Name>()
        .map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let mut files = Vec::new();
    for p in xml {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        files.push((p.display().to_string(), text));
    }
    let s = scenario::from_xml::skeleton(&name, &files)?;
    // The promise is a file `check` accepts: hold the skeleton to it before writing anything.
    let shown = output.unwrap_or(Path::new("new.yaml"));
    if let Err(diags) = scenario::load_str(shown, &s.yaml) {
        let all: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        bail!(
            "the skeleton does not load (a bug in `new`):\n{}\n{}",
            all.join("\n"),
            s.yaml
        );
    }
    match output {
        Some(p) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .with_context(|| {
                    format!("cannot create {} (it is never overwritten)", p.display())
                })?;
            std::io::Write::write_all(&mut f, s.yaml.as_bytes())
                .with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{}", s.yaml),
    }
    for u in &s.unmapped {
        eprintln!("not mapped: {u}");
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(path: &Path, variant: Option<&str>) -> Result<ExitCode> {
    let loaded = load_one(path)?;
    let s = &loaded.scenario;
    let variant = variant
        .map(str::to_string)
        .or_else(|| s.variants.keys().next().map(|v| v.to_string()));
    let plan = selinux_harness::run::plan::Plan::new(
        s,
        variant.as_deref(),
        "RUN",
        Path::new(selinux_harness::host::layout::IMAGES_ROOT),
    )?;
    println!("{}: {}", s.name.value, s.description.trim());
    if let Some(v) = &variant {
        println!("variant: {v}");
    }
    if !s.references.is_empty() {
        println!("references:\n  {}", s.references.join("\n  "));
    }
    println!(
        "\nsandbox: {} (RUN is chosen per run; removed afterwards)",
        plan.sandbox.display()
    );
    for (name, img) in &plan.images {
        let ctx = img
            .context
            .as_ref()
            .map(|c| format!(", labelled {c}"))
            .unwrap_or_default();
        match img.setup_command() {
            Some(c) => println!("  image {name}: {c}{ctx}"),
            None => println!("  image {name}: made by a step"),
        }
    }
    for (name, path) in &plan.files {
        println!(
            "  file {name}: {} (made by libvirt, QEMU or the harness during the run)",
            path.display()
        );
    }
    if !plan.qemu_conf.is_empty() || !plan.booleans.is_empty() {
        println!("\nhost settings for the run (put back afterwards):");
        for (k, v) in &plan.qemu_conf {
            println!("  qemu.conf: {k} = {v}   (libvirtd restarted)");
        }
        for (k, v) in &plan.booleans {
            println!("  setsebool {k} {}", u8::from(*v));
        }
    }
    for (name, d) in &plan.domains {
        println!(
            "\ndomain {name} -> {}:\n{}",
            d.libvirt_name,
            d.xml.trim_end()
        );
    }
    println!("\nsteps:");
    for (i, step) in s.steps.iter().enumerate() {
        let o = &step.options;
        println!(
            "  {}. {}",
            i + 1,
            o.title
                .clone()
                .unwrap_or_else(|| step.action.keyword().to_string())
        );
        for cmd in plan.virsh(&step.action) {
            println!("       $ {cmd}");
        }
        if !o.watch.is_empty() {
            let w: Vec<String> = o.watch.iter().map(|w| w.value.to_string()).collect();
            println!("       watch the labels of {} while it runs", w.join(", "));
        }
        if let Some(settle) = &o.settle {
            println!("       {settle}");
        }
        for (name, dom) in &o.capture {
            println!("       capture ${name} = live seclabel of {}", dom.value);
        }
        let e = &o.expect;
        match (&e.error, &e.access) {
            (Some(err), _) if matches!(step.action, scenario::Action::RestartDaemon(_)) => {
                println!(
                    "       expect the daemon not to come up, logging an error{}",
                    err.value
                        .message
                        .as_ref()
                        .map(|m| format!(" containing {:?}", m.value))
                        .unwrap_or_default()
                )
            }
            (Some(err), _) => println!(
                "       expect libvirt error {}{}{}",
                err.value
                    .code
                    .as_ref()
                    .map(|c| c.value.as_str())
                    .unwrap_or("(any code)"),
                err.value
                    .domain
                    .as_ref()
                    .map(|d| format!(" from {}", d.value))
                    .unwrap_or_default(),
                err.value
                    .message
                    .as_ref()
                    .map(|m| format!(" containing {:?}", m.value))
                    .unwrap_or_default()
            ),
            (None, Some(a)) => println!("       expect access {a:?}"),
            (None, None) => println!("       expect success"),
        }
        for d in e.process.keys() {
            println!(
                "       expect the label of {}'s QEMU process to match",
                d.value
            );
        }
        for f in e.file.keys() {
            println!("       expect the label of {} to match", f.value);
        }
        for f in e.timeline.keys() {
            println!("       expect the label timeline of {} to match", f.value);
        }
        if e.avc.is_some() || !e.no_avc.is_empty() {
            println!("       check the AVC records logged during the step");
        }
        for kb in &o.known_bug {
            let kb = &kb.value;
            println!(
                "       known bug {} where {:?} excuses {}",
                kb.reference,
                kb.when
                    .variant
                    .iter()
                    .map(|v| v.value.to_string())
                    .collect::<Vec<_>>(),
                kb.expects
                    .iter()
                    .flatten()
                    .map(|e| match &e.value.observed {
                        Some(o) => format!("{} observing {o:?}", e.value.check.value),
                        None => e.value.check.value.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let (loaded, errors) = load_all(&args.paths)?;
    if errors > 0 {
        bail!("{errors} error(s) in the scenarios; nothing was run (see `selinux-harness check`)");
    }
    let selected = select(&args, &loaded)?;
    run_selected(&args, selected)
}

/// The runs `args` picks out of `loaded`: each scenario under each of its variants, filtered.
fn select<'a>(
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

fn run_selected(
    args: &RunArgs,
    selected: Vec<(&LoadedScenario, Option<String>)>,
) -> Result<ExitCode> {
    let args = args.clone();
    // A bad policy under test is the user's error: refuse it before building or booting anything.
    let policies = policies_for(&args, &selected)?;
    let (mut t, interrupt) = open_target(
        args.target.into(),
        args.allow_local_changes,
        args.cold,
        args.distro.clone(),
    )?;
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
fn run_wide_policy(args: &RunArgs) -> Result<selinux_harness::policy::PolicyUnderTest> {
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
fn policies_for(
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
fn run_batch(
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

fn report(
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

fn mutants(args: MutantsArgs) -> Result<ExitCode> {
    let (loaded, errors) = load_all(&args.paths)?;
    if errors > 0 {
        bail!("{errors} error(s) in the scenarios; nothing was run (see `selinux-harness check`)");
    }
    let mut all = Vec::new();
    for l in &loaded {
        all.push(scenario::mutate::mutants(l).map_err(|ds| {
            anyhow::anyhow!(ds
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        })?);
    }
    let plan = cli::mutants::plan(&loaded, &all);
    eprintln!(
        "{} mutant(s) of {} scenario(s): {} run(s) with the originals",
        all.iter().map(Vec::len).sum::<usize>(),
        loaded.len(),
        plan.runs.len()
    );
    if args.dry_run {
        for (si, m, _) in &plan.mutants {
            println!(
                "{} step {} {}: {}{}",
                loaded[*si].scenario.name.value,
                m.mutation.step + 1,
                m.mutation.id,
                m.mutation.describe,
                m.listed
                    .as_ref()
                    .map(|r| format!(" (listed: {r})"))
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (mut t, interrupt) = open_target(
        args.target.into(),
        args.allow_local_changes,
        false,
        args.distro.clone(),
    )?;
    let started = std::time::Instant::now();
    let (verdicts, checks) = cli::mutants::run_batch(t.as_mut(), &plan, args.jobs.get());
    drop(t);
    let fates = cli::mutants::fates(&plan, &verdicts, &checks);
    let (text, total) = cli::mutants::report(&loaded, &plan, &fates);
    print!("{text}");
    println!(
        "{} run(s) in {:.0} s with --jobs {}",
        plan.runs.len(),
        started.elapsed().as_secs_f64(),
        args.jobs
    );
    Ok(if interrupt.is_set() {
        ExitCode::from(130)
    } else if total.survived == 0 && total.not_judged == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The target a command's runs go to and the interrupt that stops them. Opened only after the
/// command line and the scenarios were checked: bad input builds and boots nothing.
fn open_target(
    kind: TargetKind,
    allow_local: bool,
    cold: bool,
    distro: Option<String>,
) -> Result<(Box<dyn Target>, Interrupt)> {
    let interrupt = Interrupt::on_signals()?;
    let (kind, why) = target::resolve(kind, allow_local);
    eprintln!("target: {kind:?} ({why})");
    let t: Box<dyn Target> = match kind {
        TargetKind::Local => Box::new(target::local::Local::new(allow_local, interrupt.clone())?),
        _ => Box::new(target::vm::VmTarget::start(&target::vm::VmTargetOptions {
            interrupt: interrupt.clone(),
            cold,
            distro,
            ..Default::default()
        })?),
    };
    Ok((t, interrupt))
}

/// The selected runs as one batch `jobs` wide, each with its policy under test (none where
/// `policies` is shorter).
fn batch_of<'a>(
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
fn progress(to_stdout: bool, args: &RunArgs) -> Human<Box<dyn std::io::Write>> {
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

fn repro(
    path: &Path,
    output: Option<PathBuf>,
    variant: Option<String>,
    distro: Option<String>,
    kind: TargetKind,
    allow_local: bool,
) -> Result<ExitCode> {
    let loaded = load_one(path)?;
    let variant = variant.or_else(|| loaded.variants().into_iter().next().flatten());
    // Planned before the target starts: an unknown variant is bad input, not a failed run.
    let plan = selinux_harness::run::plan::Plan::new(
        &loaded.scenario,
        variant.as_deref(),
        "RUN",
        Path::new(selinux_harness::host::layout::IMAGES_ROOT),
    )?;
    let by_hand = by_hand(&loaded, &plan);
    let (mut t, interrupt) = open_target(kind, allow_local, false, distro)?;
    let mut human = Human::new(std::io::stderr(), std::io::stderr().is_terminal(), false);
    let batch = Batch::one(&loaded, variant.as_deref())
        .with_scenario_policies()
        .map_err(|d| anyhow::anyhow!("{}", d[0]))?;
    let mut record = Record::for_batch(&batch);
    let verdict = dispatch(
        t.as_mut(),
        &batch,
        &mut [&mut human as &mut dyn Reporter, &mut record],
    )
    .pop()
    .flatten();
    drop(t);
    let (Some(verdict), Some(scenario)) = (verdict, record.scenarios.first()) else {
        bail!("interrupted before the scenario started; nothing was written");
    };
    let out = output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}.repro.md",
            trial_name(loaded.scenario.name.value.as_str(), variant.as_deref())
        ))
    });
    let bundle = selinux_harness::report::markdown::repro(scenario, &loaded.source, &by_hand);
    std::fs::write(&out, bundle).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("{}: {}", verdict.label(), out.display());
    Ok(if interrupt.is_set() {
        ExitCode::from(130)
    } else {
        ExitCode::from(repro_status(&verdict))
    })
}

/// The scenario as shell and virsh commands for the repro bundle: what `explain` shows.
fn by_hand(
    loaded: &LoadedScenario,
    plan: &selinux_harness::run::plan::Plan,
) -> selinux_harness::report::markdown::ByHand {
    let mut setup = vec![format!("mkdir -p {}", plan.sandbox.display())];
    for (_, img) in plan.images_in_creation_order() {
        setup.extend(img.setup_command());
        if let Some(c) = &img.context {
            setup.push(format!("chcon {c} {}", img.path.display()));
        }
    }
    for (k, v) in &plan.qemu_conf {
        setup.push(format!(
            "# /etc/libvirt/qemu.conf: {k} = {v}, then restart the daemon serving qemu:///system (libvirtd or virtqemud)"
        ));
    }
    for (k, v) in &plan.booleans {
        setup.push(format!("setsebool {k} {}", u8::from(*v)));
    }
    for d in plan.domains.values() {
        setup.push(format!("virsh define {}.xml", d.libvirt_name));
    }
    selinux_harness::report::markdown::ByHand {
        setup,
        domains: plan
            .domains
            .iter()
            .map(|(n, d)| (n.to_string(), d.libvirt_name.clone(), d.xml.clone()))
            .collect(),
        steps: loaded
            .scenario
            .steps
            .iter()
            .map(|step| {
                let title = step
                    .options
                    .title
                    .clone()
                    .unwrap_or_else(|| step.action.keyword().to_string());
                (title, plan.virsh(&step.action))
            })
            .collect(),
    }
}

/// `repro` answers "does the bug reproduce?", not "is CI green?": a known bug that reproduces
/// is a yes (1), a stale known-bug mark a no (0), and no verdict at all is neither (2).
fn repro_status(verdict: &Verdict) -> u8 {
    match verdict {
        Verdict::Pass | Verdict::KnownBugGone { .. } => 0,
        Verdict::Fail { .. } | Verdict::KnownBug { .. } => 1,
        Verdict::Inconclusive { .. } | Verdict::Error { .. } | Verdict::Skipped { .. } => 2,
    }
}

fn doctor(dry_run: bool) -> Result<ExitCode> {
    use selinux_harness::host::doctor;
    let leftovers = doctor::scan(&selinux_harness::host::layout::Layout::default());
    if leftovers.is_empty() {
        println!("nothing left behind by selinux-harness on this host");
        return Ok(ExitCode::SUCCESS);
    }
    for l in &leftovers {
        println!("found: {}", l.describe());
    }
    if dry_run {
        return Ok(ExitCode::FAILURE);
    }
    let mut left = 0;
    for outcome in doctor::clean(&leftovers) {
        match outcome {
            Ok(done) => println!("{done}"),
            Err(failed) => {
                left += 1;
                println!("{failed}");
            }
        }
    }
    if left > 0 {
        eprintln!("{left} leftover(s) could not be removed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(verdicts: &[Verdict]) -> String {
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

    /// `repro`'s documented statuses: 1 exactly when the bug reproduces, known or not.
    #[test]
    fn repro_status_answers_whether_the_bug_reproduces() {
        let refs = vec!["libvir-list 2012-03".to_string()];
        let reason = "x".to_string();
        let cases = [
            (Verdict::Pass, 0),
            (
                Verdict::KnownBugGone {
                    references: refs.clone(),
                },
                0,
            ),
            (Verdict::Fail { failed: 1 }, 1),
            (Verdict::KnownBug { references: refs }, 1),
            (
                Verdict::Inconclusive {
                    reason: reason.clone(),
                },
                2,
            ),
            (
                Verdict::Error {
                    reason: reason.clone(),
                },
                2,
            ),
            (Verdict::Skipped { reason }, 2),
        ];
        for (v, want) in cases {
            assert_eq!(repro_status(&v), want, "{v:?}");
        }
    }
}
