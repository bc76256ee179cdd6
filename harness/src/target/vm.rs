//! The VM target: the embedded Debian guest (built on first use, warm-started from its
//! snapshot when there is one), driven over the agent channel. Events from the guest are passed
//! on unchanged, except that the host fills in what only it knows: how the VM was started.

use std::path::PathBuf;
use std::time::Duration;

use super::{Target, TargetError};
use crate::agent::protocol::{Reply, Request, RunSpec};
use crate::host::environment::TargetInfo;
use crate::image::{self, BuildOptions, Cache, Progress};
use crate::interrupt::Interrupt;
use crate::run::batch::Batch;
use crate::run::event::{Envelope, Event};
use crate::vm::{Vm, VmOptions, Wait, WarmPolicy};

/// Selects the image recipe (same names as `image build --distro`).
pub const DISTRO_ENV: &str = "SELINUX_HARNESS_DISTRO";
pub const DEFAULT_DISTRO: &str = "debian-12";
/// A scenario that takes longer than this has hung: its steps take seconds.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an interrupted scenario may take to clean up in the guest and send its verdict
/// (destroying domains and restarting libvirtd take seconds under TCG).
pub const CLEANUP_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Default)]
pub struct VmTargetOptions {
    /// Recipe name; default: $SELINUX_HARNESS_DISTRO or debian-12.
    pub distro: Option<String>,
    /// The harness binary to run in the guest (default: this executable).
    pub binary: Option<PathBuf>,
    /// Boot cold: neither restore nor save the warm snapshot (for measuring, or when a
    /// snapshot is suspect).
    pub cold: bool,
    /// How long one scenario may take before the guest counts as hung (default
    /// [`SCENARIO_TIMEOUT`]).
    pub scenario_timeout: Option<Duration>,
    pub interrupt: Interrupt,
}

pub struct VmTarget {
    vm: Vm,
    scenario_timeout: Duration,
    /// Recipe and content hash of the booted image, for reports and repro bundles.
    image: String,
}

impl VmTarget {
    pub fn start(options: &VmTargetOptions) -> Result<VmTarget, TargetError> {
        let distro = options
            .distro
            .clone()
            .or_else(|| std::env::var(DISTRO_ENV).ok())
            .unwrap_or_else(|| DEFAULT_DISTRO.into());
        let unavailable = |e: &dyn std::fmt::Display| TargetError::Unavailable(format!("{e:#}"));
        let cache = Cache::default_location().map_err(|e| unavailable(&e))?;
        let source = image::recipe::builtin(&distro).map_err(|e| unavailable(&e))?;
        let progress = Progress::stderr();
        let built = image::build(
            &cache,
            &source,
            &BuildOptions::default(),
            &progress,
            &options.interrupt,
        )
        .map_err(|e| unavailable(&e))?;
        let vm_options = VmOptions {
            agent_binary: options.binary.clone(),
            warm: if options.cold {
                WarmPolicy::Cold
            } else {
                WarmPolicy::Use
            },
            interrupt: options.interrupt.clone(),
            ..VmOptions::default()
        };
        let vm = Vm::start(&built.image, &vm_options, &progress).map_err(|e| unavailable(&e))?;
        progress.finish();
        let info = vm.info();
        eprintln!(
            "vm: {distro}, {} start on {}, agent ready after {:.1} s{}",
            info.start.name(),
            info.accel.name(),
            info.ready.as_secs_f64(),
            info.notes
                .iter()
                .map(|n| format!("\n  note: {n}"))
                .collect::<String>()
        );
        Ok(VmTarget {
            vm,
            scenario_timeout: options.scenario_timeout.unwrap_or(SCENARIO_TIMEOUT),
            image: format!(
                "{} {}",
                built.image.manifest.recipe, built.image.manifest.hash
            ),
        })
    }

    /// How the VM started: accelerator, cold or warm, how long until the agent was ready.
    pub fn boot(&self) -> &crate::vm::BootInfo {
        self.vm.info()
    }

    /// The VM's per-run directory (its QEMU's command line names it).
    pub fn run_dir(&self) -> &std::path::Path {
        self.vm.run_dir()
    }

    fn fill(&self, t: &mut TargetInfo) {
        let info = self.vm.info();
        t.accelerator = info.accel.name().into();
        t.image.clone_from(&self.image);
        t.boot = format!(
            "{} start, ready in {:.1} s",
            info.start.name(),
            info.ready.as_secs_f64()
        );
    }

    /// Fills in what only the host knows in a guest's `ScenarioStarted`: how the VM started.
    fn stamp_boot(&self) -> impl Fn(&mut Event) {
        let mut host = TargetInfo::default();
        self.fill(&mut host);
        move |e| {
            if let Event::ScenarioStarted { target, .. } = e {
                target.accelerator.clone_from(&host.accelerator);
                target.boot.clone_from(&host.boot);
                target.image.clone_from(&host.image);
            }
        }
    }

    fn broken(&self, what: &str, e: impl std::fmt::Display) -> TargetError {
        TargetError::Failed(format!(
            "{what}: {e}\n--- last lines of the guest console ---\n{}",
            self.vm.console_tail(30)
        ))
    }
}

impl Target for VmTarget {
    fn info(&mut self) -> Result<TargetInfo, TargetError> {
        let mut env = None;
        let mut failed = None;
        let r = self.vm.request(&Request::Env, |reply| match reply {
            Reply::Env(i) => env = Some(i),
            Reply::Failed { message } => failed = Some(message),
            _ => {}
        });
        if let Err(e) = r {
            return Err(self.broken("asking the guest for its environment", e));
        }
        if let Some(m) = failed {
            return Err(TargetError::Failed(m));
        }
        let mut env =
            env.ok_or_else(|| TargetError::Failed("the agent sent no environment".into()))?;
        self.fill(&mut env);
        Ok(env)
    }

    /// One request for the whole batch: the guest runs it with `parallel::run_batch`. If the
    /// guest breaks, the runs that had finished keep their verdicts and the error is returned.
    fn run(
        &mut self,
        batch: &Batch<'_>,
        sink: &mut dyn FnMut(Envelope),
    ) -> Result<(), TargetError> {
        let request = Request::Run {
            runs: batch
                .runs
                .iter()
                .enumerate()
                .map(|(i, r)| RunSpec {
                    file: r.scenario.path.display().to_string(),
                    source: r.scenario.source.clone(),
                    variant: r.variant.map(str::to_string),
                    fault: r.fault.clone(),
                    policy: batch.policy(i),
                })
                .collect(),
            jobs: batch.jobs,
        };
        let stamp = self.stamp_boot();
        let mut failed = None;
        let mut stray = None;
        let r = self.vm.request_interruptible(
            &request,
            Wait::Idle(self.scenario_timeout),
            CLEANUP_GRACE,
            |reply| match reply {
                Reply::Event(mut envelope) if envelope.run < batch.runs.len() => {
                    stamp(&mut envelope.event);
                    sink(envelope);
                }
                Reply::Event(envelope) => {
                    stray = Some(format!(
                        "the agent sent an event for run {}, which was not asked for",
                        envelope.run
                    ))
                }
                Reply::Failed { message } => failed = Some(message),
                Reply::Env(_) | Reply::Done => {}
            },
        );
        match (r, failed, stray) {
            (Err(e), _, _) => Err(self.broken("running the scenarios in the guest", e)),
            (Ok(()), Some(m), _) => Err(TargetError::Failed(format!(
                "the guest refused the scenarios: {m}"
            ))),
            (Ok(()), None, Some(m)) => Err(self.broken("running the scenarios in the guest", m)),
            (Ok(()), None, None) => Ok(()),
        }
    }
}
