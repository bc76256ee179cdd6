//! Where a command's runs go: `--target`, `--allow-local-changes` and `--distro`, shared by
//! every command that runs scenarios, and the target they open.

use anyhow::Result;
use clap::ValueEnum;

use selinux_harness::interrupt::Interrupt;
use selinux_harness::target::{self, Target, TargetKind};

/// `--target`: the library's [`TargetKind`] as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// This host when SELinux enforces here and local changes are allowed; else the VM.
    Auto,
    /// The embedded Debian VM, built and booted by the harness.
    Vm,
    /// This host (needs SELinux enforcing and --allow-local-changes).
    Local,
}

impl From<TargetArg> for TargetKind {
    fn from(t: TargetArg) -> Self {
        match t {
            TargetArg::Auto => TargetKind::Auto,
            TargetArg::Vm => TargetKind::Vm,
            TargetArg::Local => TargetKind::Local,
        }
    }
}

#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// Where to run.
    #[arg(long, value_enum, env = target::TARGET_ENV, default_value = "auto")]
    pub target: TargetArg,
    /// Allow the local target to change this host (define guests, relabel its sandbox, load a
    /// test policy module); everything is undone afterwards.
    #[arg(long, env = target::LOCAL_OPT_IN_ENV)]
    pub allow_local_changes: bool,
    /// VM target: the image recipe to build and boot (debian-12, debian-13; default debian-12).
    #[arg(long, env = target::vm::DISTRO_ENV, value_name = "RECIPE")]
    pub distro: Option<String>,
}

impl TargetArgs {
    /// The target the runs go to and the interrupt that stops them; `cold` boots the VM without
    /// its warm snapshot. Opened only after the command line and the scenarios were checked:
    /// bad input builds and boots nothing.
    pub fn open(&self, cold: bool) -> Result<(Box<dyn Target>, Interrupt)> {
        let allow_local = self.allow_local_changes;
        let interrupt = Interrupt::on_signals()?;
        let (kind, why) = target::resolve(self.target.into(), allow_local);
        eprintln!("target: {kind:?} ({why})");
        let t: Box<dyn Target> = match kind {
            TargetKind::Local => {
                Box::new(target::local::Local::new(allow_local, interrupt.clone())?)
            }
            _ => Box::new(target::vm::VmTarget::start(&target::vm::VmTargetOptions {
                interrupt: interrupt.clone(),
                cold,
                distro: self.distro.clone(),
                ..Default::default()
            })?),
        };
        Ok((t, interrupt))
    }
}
