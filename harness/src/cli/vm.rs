//! CLI subcommands for images, the VM target and the in-guest agent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};

use selinux_harness::agent::protocol::{Reply, Request};
use selinux_harness::host::environment::TargetInfo;
use selinux_harness::image::{self, recipe, BuildError, BuildOptions, Cache, Image, Progress};
use selinux_harness::interrupt::Interrupt;
use selinux_harness::vm::{AccelChoice, Vm, VmError, VmOptions, WarmPolicy};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the guest image for a distribution (a cache hit when nothing changed).
    Build {
        #[arg(long, default_value = "debian-12")]
        distro: String,
        /// Build again even if the cache has this image.
        #[arg(long)]
        rebuild: bool,
    },
    /// List cached images.
    List,
    /// Remove cached images: one (directory or recipe name), the stale ones, or all.
    Rm {
        name: Option<String>,
        /// Every image that is not what a build would give now (an older recipe, guest init,
        /// or policy module): what `image list` shows as stale.
        #[arg(long, conflicts_with_all = ["name", "all"])]
        stale: bool,
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
}

pub fn run_image(cmd: ImageCommand, interrupt: &Interrupt) -> anyhow::Result<()> {
    let cache = Cache::default_location()?;
    match cmd {
        ImageCommand::Build { distro, rebuild } => {
            let source = recipe::builtin(&distro)?;
            let progress = Progress::stderr();
            let built = image::build(
                &cache,
                &source,
                &BuildOptions { rebuild },
                &progress,
                interrupt,
            )?;
            progress.finish();
            println!(
                "{} {} in {:.2} s: {}",
                source.recipe.name,
                if built.cached { "cached" } else { "built" },
                built.elapsed.as_secs_f64(),
                built.image.dir.display()
            );
        }
        ImageCommand::List => {
            let entries = list_with_state(&cache)?;
            if entries.is_empty() {
                println!("no images in {}", cache.root().display());
            }
            println!(
                "{:<12} {:<16} {:>9} {:>8}  {:<7} WARM",
                "NAME", "HASH", "SIZE", "AGE", "STATE"
            );
            for e in entries {
                println!(
                    "{:<12} {:<16} {:>9} {:>8}  {:<7} {}",
                    e.recipe,
                    e.hash,
                    human_size(e.size_bytes),
                    human_age(e.age),
                    if e.current { "current" } else { "stale" },
                    e.warm_snapshots
                );
            }
        }
        ImageCommand::Rm { name, stale, all } => {
            if name.is_none() && !all && !stale {
                bail!("say which image to remove (NAME), or --stale, or --all");
            }
            let removed = if stale {
                let mut removed = Vec::new();
                for e in list_with_state(&cache)?.into_iter().filter(|e| !e.current) {
                    removed.extend(cache.remove(Some(&e.dir_name))?);
                }
                removed
            } else {
                cache.remove(name.as_deref())?
            };
            for r in &removed {
                println!("removed {r}");
            }
            if removed.is_empty() {
                println!("nothing to remove in {}", cache.root().display());
            }
        }
    }
    Ok(())
}

/// The cached images, each marked current when a build from the built-in recipes would give it.
fn list_with_state(cache: &Cache) -> anyhow::Result<Vec<image::cache::CacheEntry>> {
    let current: Vec<(String, String)> = recipe::builtin_names()
        .filter_map(|n| {
            let src = recipe::builtin(n).ok()?;
            Some((n.to_owned(), image::key_of(&src).ok()?.0))
        })
        .collect();
    Ok(cache.list(|r, h| current.iter().any(|(cr, ch)| cr == r && ch == h))?)
}

/// Prints an error for a human and picks the exit status: 130 when the user interrupted (the
/// cleanup already ran), 1 otherwise. The error texts carry their own context and fix.
pub fn report(error: &anyhow::Error) -> std::process::ExitCode {
    let interrupted = error.chain().any(|e| {
        matches!(e.downcast_ref::<VmError>(), Some(VmError::Interrupted))
            || matches!(
                e.downcast_ref::<BuildError>(),
                Some(BuildError::Interrupted)
            )
    });
    if interrupted {
        eprintln!("selinux-harness: interrupted; child processes stopped, temporary files removed");
        return std::process::ExitCode::from(130);
    }
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("caused by: {cause}");
    }
    // 2 as for every other command that could not do its work (1 means "the answer is no").
    std::process::ExitCode::from(2)
}

fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / 1024.0 / MIB)
    } else {
        format!("{:.0} MiB", b / MIB)
    }
}

fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Targets `env` can describe (`run` also knows `auto`: see `TargetArg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvTarget {
    /// An SELinux-enforcing Debian guest under QEMU (the image is built when missing).
    Vm,
    /// This machine, as it is.
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    Auto,
    Tcg,
    Kvm,
}

/// Options for starting the VM target, shared by every command that runs in it.
#[derive(Debug, Clone, Args)]
pub struct VmArgs {
    /// Guest image recipe.
    #[arg(long, default_value = "debian-12")]
    pub distro: String,
    /// Boot cold: neither restore nor save the warm snapshot.
    #[arg(long)]
    pub cold: bool,
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,
    /// Guest memory in MiB (a warm snapshot is kept per memory size).
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// Binary to run as the agent in the guest (default: this executable).
    #[arg(long)]
    pub agent_binary: Option<PathBuf>,
    /// Seconds to wait for a cold boot to reach the bootstrap.
    #[arg(long, default_value_t = 300)]
    pub boot_timeout: u64,
    /// Keep the guest console log at this path.
    #[arg(long)]
    pub console_log: Option<PathBuf>,
}

impl VmArgs {
    pub fn options(&self, interrupt: &Interrupt) -> VmOptions {
        VmOptions {
            memory_mib: self.memory,
            accel: match self.accel {
                AccelArg::Auto => AccelChoice::Auto,
                AccelArg::Tcg => AccelChoice::Tcg,
                AccelArg::Kvm => AccelChoice::Kvm,
            },
            warm: if self.cold {
                WarmPolicy::Cold
            } else {
                WarmPolicy::Use
            },
            agent_binary: self.agent_binary.clone(),
            boot_timeout: Duration::from_secs(self.boot_timeout),
            keep_console: self.console_log.clone(),
            interrupt: interrupt.clone(),
            ..VmOptions::default()
        }
    }

    /// The cached image for `--distro`, built first when missing.
    pub fn image(&self, progress: &Progress, interrupt: &Interrupt) -> anyhow::Result<Image> {
        let cache = Cache::default_location()?;
        let source = recipe::builtin(&self.distro)?;
        let built = image::build(
            &cache,
            &source,
            &BuildOptions::default(),
            progress,
            interrupt,
        )?;
        if !built.cached {
            progress.note(format!(
                "built the {} image in {:.0} s",
                self.distro,
                built.elapsed.as_secs_f64()
            ));
        }
        Ok(built.image)
    }
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[arg(long, value_enum, default_value = "vm")]
    pub target: EnvTarget,
    #[command(flatten)]
    pub vm: VmArgs,
}

/// Describes the target: kernel, SELinux mode, policy, versions and, for the VM, how it started.
pub fn run_env(args: &EnvArgs, interrupt: &Interrupt) -> anyhow::Result<()> {
    if args.target == EnvTarget::Local {
        print_target(&selinux_harness::host::environment::collect("local"));
        return Ok(());
    }
    let progress = Progress::stderr();
    let image = args.vm.image(&progress, interrupt)?;
    let started = Instant::now();
    let mut vm = Vm::start(&image, &args.vm.options(interrupt), &progress)?;
    progress.phase("asking the agent for the environment");
    let mut env = None;
    let mut failure = None;
    vm.request(&Request::Env, |reply| match reply {
        Reply::Env(info) => env = Some(info),
        Reply::Failed { message } => failure = Some(message),
        _ => {}
    })?;
    let first_answer = started.elapsed();
    progress.finish();
    if let Some(message) = failure {
        bail!("the agent could not describe the guest: {message}");
    }
    let env = env.context("the agent ended the request without an answer")?;
    print_target(&env);
    let info = vm.info();
    println!(
        "{:<16} {} start, guest up after {:.2} s, agent ready after {:.2} s, first answer after {:.2} s",
        "boot:",
        info.start.name(),
        info.guest_up.as_secs_f64(),
        info.ready.as_secs_f64(),
        first_answer.as_secs_f64()
    );
    let phases: Vec<String> = info
        .phases
        .iter()
        .map(|(what, took)| format!("{what} {:.2} s", took.as_secs_f64()))
        .collect();
    println!("{:<16} {}", "phases:", phases.join(", "));
    if let Some(saved) = info.warm_saved {
        println!(
            "{:<16} saved in {:.2} s (next start is warm)",
            "warm snapshot:",
            saved.as_secs_f64()
        );
    }
    for note in &info.notes {
        println!("{:<16} {note}", "note:");
    }
    Ok(())
}

fn print_target(t: &TargetInfo) {
    let rows = [
        ("target", t.kind.clone()),
        ("distro", t.distro.clone()),
        ("kernel", t.kernel.clone()),
        ("selinux", t.selinux_mode.clone()),
        (
            "policy",
            format!("{} (policy version {})", t.policy_name, t.policy_version),
        ),
        (
            "mls/mcs",
            if t.mls {
                "enabled".into()
            } else {
                "disabled".into()
            },
        ),
        ("libvirt", t.libvirt_version.clone()),
        ("qemu", t.qemu_version.clone()),
        ("secmodel", t.secmodel.clone()),
        ("accelerator", t.accelerator.clone()),
    ];
    for (k, v) in rows {
        if !v.is_empty() {
            println!("{:<16} {v}", format!("{k}:"));
        }
    }
    for (k, v) in &t.qemu_conf {
        println!("{:<16} {k} = {v}", "qemu.conf:");
    }
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's virtio-serial port, e.g. /dev/vport1p1.
    #[arg(long)]
    pub port: PathBuf,
}

/// The in-guest agent: environment readings and scenario execution (see `guest`).
pub fn run_agent(args: &AgentArgs) -> anyhow::Result<()> {
    let mut handler = selinux_harness::agent::handler::handle;
    selinux_harness::agent::guest_end::serve(&args.port, &mut handler)?;
    Ok(())
}
