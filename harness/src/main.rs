use clap::{Parser, Subcommand};

use selinux_harness::cli_vm;
use selinux_harness::interrupt::Interrupt;

#[derive(Debug, Parser)]
#[command(name = "selinux-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Guest images for the VM target.
    Image {
        #[command(subcommand)]
        command: cli_vm::ImageCommand,
    },
    /// Describe a target (kernel, SELinux mode, policy, libvirt/QEMU, how the VM started).
    Env(cli_vm::EnvArgs),
    /// Serve the host over a virtio-serial port (runs inside the guest).
    #[command(hide = true)]
    Agent(cli_vm::AgentArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    run(cli).map_or_else(|e| cli_vm::report(&e), |()| std::process::ExitCode::SUCCESS)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let interrupt = Interrupt::on_signals()?;
    match cli.command {
        Command::Image { command } => cli_vm::run_image(command, &interrupt),
        Command::Env(args) => cli_vm::run_env(&args, &interrupt),
        Command::Agent(args) => cli_vm::run_agent(&args),
    }
}
