//! The binary's command-line pieces: clap stays here, out of the library.

pub mod compare;
pub mod mutants;
pub mod vm;

use clap::ValueEnum;
use selinux_harness::target::TargetKind;

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
