//! `selinux-harness`: the command line over the library.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use selinux_harness::interrupt::Interrupt;
use selinux_harness::scenario;

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
    Run(cli::run::RunArgs),
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
    Compare(cli::run::RunArgs),
    /// Mutation testing of the scenarios themselves: run each scenario and the variants of it a
    /// correct suite must reject (each expectation inverted or shifted, a known bug dropped),
    /// in one batch, and report per scenario and per kind of check how many were killed.
    #[command(after_long_help = "\
A mutant is killed when its verdict is not a success (pass or known-bug) where the scenario's
own run in the same batch succeeded. A step lets a mutant survive with
`mutants_survive: [{mutant: KEY/WHAT, reason: ...}]`.

Exit status: 0 every mutant not listed was killed, 1 one survived or could not be judged,
2 the scenarios could not be loaded or the target could not start.")]
    Mutants(cli::mutants::MutantsArgs),
    /// Run one scenario and write a single Markdown file for a bug tracker: environment,
    /// steps, evidence (label timeline, AVCs, libvirt errors) and the scenario itself.
    #[command(after_long_help = "\
The bundle is written whatever the verdict, so that a report can say \"does not reproduce\" too.

Exit status: 0 the scenario passed (the bug does not reproduce; also when a known-bug mark is
stale), 1 the bug reproduces (verdict fail or known-bug), 2 no verdict: the scenario cannot be
read or is invalid, the target cannot start, or the run ended in error, inconclusive (e.g.
SELinux permissive) or skipped; 130 interrupted.")]
    Repro(cli::repro::ReproArgs),
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
        Command::Check { paths } => cli::scenarios::check(&paths),
        Command::List { paths } => cli::scenarios::list(&paths),
        Command::Explain { scenario, variant } => {
            cli::explain::explain(&scenario, variant.as_deref())
        }
        Command::New {
            from_xml,
            output,
            name,
        } => cli::scenarios::new_from_xml(&from_xml, output.as_deref(), name),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scenario::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => cli::run::run(args),
        Command::Compare(args) => cli::compare::compare(args),
        Command::Mutants(args) => cli::mutants::mutants(args),
        Command::Repro(args) => cli::repro::repro(args),
        Command::Doctor { dry_run } => cli::doctor::doctor(dry_run),
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
