//! Boots a guest image under QEMU and talks to the harness agent inside it.
//!
//! A run gets its own temp dir (overlay disk, sockets, console log) that is removed when the
//! [`Vm`] is dropped; QEMU is killed then too. The cached raw image is never written: a cold
//! boot runs on a fresh qcow2 overlay, a warm start on a copy of the image's warm snapshot (an
//! overlay holding `savevm ready`, taken after the first cold boot reached the bootstrap).

pub mod monitor;
pub mod qemu;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::agent::protocol::{Reply, Request, HELLO};
use crate::image::command::tail_lines;
use crate::image::guest::{AGENT_PORT_NAME, INIT_PATH};
use crate::image::tools::{self, MissingTools, VM_TOOLS};
use crate::image::{Image, Progress};
use crate::interrupt::Interrupt;
use monitor::Monitor;
pub use qemu::{Accel, LaunchSpec, QemuChild, DEFAULT_MACHINE, PAYLOAD_CAPACITY};

/// Name of the internal snapshot in a warm overlay.
const SNAPSHOT: &str = "ready";
const CONSOLE_TAIL: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM if a probe shows it really runs a guest here, else TCG.
    Auto,
    Tcg,
    Kvm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmPolicy {
    /// Restore the image's warm snapshot; without one, boot cold and save one for next time.
    Use,
    /// Always boot cold, never save a snapshot.
    Cold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    Cold,
    Warm,
}

impl StartKind {
    pub fn name(self) -> &'static str {
        match self {
            StartKind::Cold => "cold",
            StartKind::Warm => "warm",
        }
    }
}

#[derive(Debug, Clone)]
pub struct VmOptions {
    pub machine: String,
    pub memory_mib: u32,
    pub smp: u32,
    pub accel: AccelChoice,
    pub warm: WarmPolicy,
    /// The binary to run as the agent in the guest; default: this very executable.
    pub agent_binary: Option<PathBuf>,
    /// Launch until the bootstrap answers (cold boot).
    pub boot_timeout: Duration,
    /// Restore until the bootstrap answers, and each step of delivering the agent.
    pub handshake_timeout: Duration,
    /// Default for [`Vm::request`].
    pub request_timeout: Duration,
    /// Copy the guest console log here when the VM goes away (it lives in the run's temp dir).
    pub keep_console: Option<PathBuf>,
    pub interrupt: Interrupt,
}

impl Default for VmOptions {
    fn default() -> Self {
        Self {
            machine: DEFAULT_MACHINE.into(),
            memory_mib: 2048,
            smp: 2,
            accel: AccelChoice::Auto,
            warm: WarmPolicy::Use,
            agent_binary: None,
            boot_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(600),
            keep_console: None,
            interrupt: Interrupt::new(),
        }
    }
}

/// How this VM came up.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub accel: Accel,
    pub start: StartKind,
    /// From launching QEMU to the bootstrap's first answer.
    pub guest_up: Duration,
    /// From launching QEMU to the agent's hello (binary delivered and running).
    pub ready: Duration,
    /// Time spent saving the warm snapshot during this start, if it saved one.
    pub warm_saved: Option<Duration>,
    /// Where the start-up time went, in order (e.g. "copy snapshot", "restore to bootstrap").
    pub phases: Vec<(&'static str, Duration)>,
    /// Fallbacks and other things a human should know (e.g. "warm start failed: ...").
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Tools(#[from] MissingTools),
    #[error("image {dir} has no {what}\nfix: selinux-harness image build --rebuild")]
    ImageIncomplete { dir: PathBuf, what: &'static str },
    #[error("cannot read the agent binary {path}: {source}\nfix: build it (cargo build --release) or pass another path")]
    Binary {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed: {message}")]
    Tool { command: String, message: String },
    #[error("QEMU exited ({status}) while {phase}\n--- QEMU stderr:\n{stderr}\n--- last lines of the guest console:\n{console}")]
    QemuExited {
        phase: &'static str,
        status: String,
        stderr: String,
        console: String,
    },
    #[error("timed out after {secs:.1} s while {phase}\n--- last lines of the guest console:\n{console}\nfix: {fix}")]
    Timeout {
        phase: &'static str,
        secs: f64,
        console: String,
        fix: &'static str,
    },
    #[error("unexpected answer while {phase}: `{line}`\n--- last lines of the guest console:\n{console}")]
    Protocol {
        phase: &'static str,
        line: String,
        console: String,
    },
    #[error(
        "the agent channel closed while {phase}\n--- last lines of the guest console:\n{console}"
    )]
    ChannelClosed {
        phase: &'static str,
        console: String,
    },
    #[error("QEMU monitor `{command}`: {message}")]
    Monitor { command: String, message: String },
    #[error("interrupted")]
    Interrupted,
}

impl VmError {
    /// Errors that say the warm snapshot itself is unusable (as opposed to being interrupted).
    fn condemns_snapshot(&self) -> bool {
        matches!(
            self,
            VmError::QemuExited { .. }
                | VmError::Timeout { .. }
                | VmError::Protocol { .. }
                | VmError::ChannelClosed { .. }
        )
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// A running guest with the harness agent answering on its channel.
pub struct Vm {
    // Field order is drop order: close the channels, then kill QEMU, then remove the files.
    agent: Channel,
    monitor: Monitor,
    guest: Guest,
    info: BootInfo,
    request_timeout: Duration,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What every launch of one image with one set of options shares.
struct Plan<'a> {
    image: &'a Image,
    options: &'a VmOptions,
    progress: &'a Progress,
    qemu: PathBuf,
    qemu_img: PathBuf,
    qemu_version: String,
    binary: Vec<u8>,
    /// Read-only ext4 image holding the binary, shared by runs of the same binary.
    payload: Option<PathBuf>,
}

enum Mode {
    Cold { save_to: Option<PathBuf> },
    Warm { snapshot: PathBuf },
}

impl Vm {
    /// Boots `image` (warm when it can) and starts the agent in it.
    pub fn start(image: &Image, options: &VmOptions, progress: &Progress) -> Result<Self, VmError> {
        let [qemu, qemu_img] =
            <[PathBuf; 2]>::try_from(tools::require(VM_TOOLS)?).map_err(|_| VmError::Tool {
                command: "tool lookup".into(),
                message: "unexpected tool list".into(),
            })?;
        for (path, what) in [
            (image.disk(), "disk image"),
            (image.kernel(), "kernel"),
            (image.initrd(), "initrd"),
        ] {
            if !path.is_file() {
                return Err(VmError::ImageIncomplete {
                    dir: image.dir.clone(),
                    what,
                });
            }
        }
        let binary_path = match &options.agent_binary {
            Some(p) => p.clone(),
            None => {
                std::env::current_exe().map_err(io_err("cannot find the running executable"))?
            }
        };
        let binary = fs::read(&binary_path).map_err(|source| VmError::Binary {
            path: binary_path.clone(),
            source,
        })?;
        let qemu_version = qemu_version(&qemu)?;
        let mut notes = Vec::new();
        let payload = match payload_image(image, &binary, &options.interrupt) {
            Ok(p) => Some(p),
            Err(why) => {
                notes.push(format!(
                    "no payload disk, the agent goes over the port: {why}"
                ));
                None
            }
        };
        let plan = Plan {
            image,
            options,
            progress,
            qemu,
            qemu_img,
            qemu_version,
            binary,
            payload,
        };

        let mut accels = match options.accel {
            AccelChoice::Tcg => vec![Accel::Tcg],
            AccelChoice::Kvm => vec![Accel::Kvm],
            AccelChoice::Auto => match qemu::probe_kvm(&plan.qemu, &options.machine) {
                Ok(()) => vec![Accel::Kvm, Accel::Tcg],
                Err(why) => {
                    notes.push(format!("kvm not used: {why}"));
                    vec![Accel::Tcg]
                }
            },
        };
        let mut last_error = None;
        while !accels.is_empty() {
            let accel = accels.remove(0);
            match plan.start_with(accel, &mut notes) {
                Ok(mut vm) => {
                    notes.append(&mut vm.info.notes);
                    vm.info.notes = notes;
                    return Ok(vm);
                }
                Err(VmError::Interrupted) => return Err(VmError::Interrupted),
                Err(e) if !accels.is_empty() => {
                    notes.push(format!(
                        "{accel} boot failed, trying {}: {}",
                        accels[0],
                        first_line(&e)
                    ));
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(VmError::Interrupted))
    }

    pub fn info(&self) -> &BootInfo {
        &self.info
    }

    /// The run's temp dir (overlay, sockets, console log); it is removed when the VM is dropped.
    pub fn run_dir(&self) -> &Path {
        self.guest._dir.path()
    }

    /// The last lines the guest wrote to its serial console.
    pub fn console_tail(&self, lines: usize) -> String {
        tail_lines(&self.guest.console, lines)
    }

    /// Sends one request and passes every reply to `on_reply` until the final one
    /// (`Done`, `Failed` or `Env`), within the default request timeout.
    pub fn request(
        &mut self,
        request: &Request,
        on_reply: impl FnMut(Reply),
    ) -> Result<(), VmError> {
        self.request_within(request, self.request_timeout, on_reply)
    }

    /// [`Vm::request`] with its own deadline for the whole answer.
    pub fn request_within(
        &mut self,
        request: &Request,
        timeout: Duration,
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), VmError> {
        // The guest cannot know how the host started it.
        let (accel, start) = (self.info.accel.name(), self.info.start.name());
        let mut fill_in = |mut reply: Reply| {
            if let Reply::Env(info) = &mut reply {
                if info.accelerator.is_empty() {
                    info.accelerator = accel.into();
                }
                if info.boot.is_empty() {
                    info.boot = start.into();
                }
            }
            on_reply(reply)
        };
        // A flag nobody raises: the user's Ctrl-C stays with the guest checks and ends the
        // request at once (`VmError::Interrupted`) instead of being passed on.
        self.forwarding(
            request,
            Wait::Total(timeout),
            Duration::ZERO,
            &Interrupt::new(),
            &mut fill_in,
        )
    }

    /// Like [`Vm::request_within`], for a request the guest can stop cleanly (scenario runs):
    /// when the user interrupts, the interrupt is passed on to the agent instead of killing the
    /// guest, and the replies are read on for at most `grace` - the scenarios stop at their next
    /// check, clean up, prove the guest's state is back to what it was, and send their verdicts.
    /// A second Ctrl-C still ends the whole process at once (see `Interrupt::on_signals`).
    pub fn request_interruptible(
        &mut self,
        request: &Request,
        wait: Wait,
        grace: Duration,
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), VmError> {
        // While this runs, the guest checks see only QEMU's death, not the user's interrupt.
        let user = std::mem::replace(&mut self.guest.interrupt, Interrupt::new());
        let result = self.forwarding(request, wait, grace, &user, &mut on_reply);
        self.guest.interrupt = user;
        result
    }

    fn forwarding(
        &mut self,
        request: &Request,
        wait: Wait,
        grace: Duration,
        user: &Interrupt,
        on_reply: &mut dyn FnMut(Reply),
    ) -> Result<(), VmError> {
        const PHASE: &str = "waiting for the agent's reply";
        let encode = |r: &Request| {
            serde_json::to_string(r)
                .map(|json| format!("{json}\n"))
                .map_err(|e| io_err("cannot encode the request")(io::Error::other(e)))
        };
        let (limit, idle) = match wait {
            Wait::Total(d) => (d, false),
            Wait::Idle(d) => (d, true),
        };
        self.agent
            .send(encode(request)?.as_bytes(), &mut self.guest, limit)?;
        let mut deadline = Instant::now() + limit;
        let mut forwarded = false;
        loop {
            if user.is_set() && !forwarded {
                forwarded = true;
                self.agent.send(
                    encode(&Request::Interrupt)?.as_bytes(),
                    &mut self.guest,
                    grace,
                )?;
                deadline = deadline.min(Instant::now() + grace);
            }
            // Short reads, so an interrupt is passed on within a fraction of a second.
            let wait_until = deadline.min(Instant::now() + Duration::from_millis(200));
            let Some(line) = self.agent.read_line(wait_until, &mut self.guest, PHASE)? else {
                if Instant::now() < deadline {
                    continue;
                }
                let (waited, fix) = match (forwarded, idle) {
                    (true, _) => (
                        grace,
                        "the scenario did not stop after the interrupt: see the console",
                    ),
                    (false, true) => (
                        limit,
                        "the agent said nothing for this long; see the console for a hung guest",
                    ),
                    (false, false) => (
                        limit,
                        "raise the request timeout, or see the console for a hung guest",
                    ),
                };
                return Err(self.guest.timeout(PHASE, waited, fix));
            };
            if idle && !forwarded {
                deadline = Instant::now() + limit;
            }
            let reply: Reply = serde_json::from_str(&line).map_err(|_| VmError::Protocol {
                phase: PHASE,
                line: line.clone(),
                console: self.guest.console_tail(),
            })?;
            let last = matches!(reply, Reply::Done | Reply::Failed { .. } | Reply::Env(_));
            on_reply(reply);
            if last {
                return Ok(());
            }
        }
    }
}

/// How long [`Vm::request_interruptible`] waits for the agent.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// For the whole answer (one scenario).
    Total(Duration),
    /// Between two replies, however long the whole answer takes (a batch of runs).
    Idle(Duration),
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.monitor.quit();
        self.guest.child.finish(Duration::from_millis(500));
        if let Some(to) = &self.guest.keep_console {
            let _ = fs::copy(&self.guest.console, to);
        }
    }
}

impl Plan<'_> {
    fn warm_snapshot_path(&self, spec: &LaunchSpec) -> PathBuf {
        let fp = spec.restore_fingerprint(&self.qemu_version);
        let digest = Sha256::digest(fp.as_bytes());
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        self.image
            .warm_dir()
            .join(format!("{}-{short}.qcow2", spec.accel))
    }

    fn start_with(&self, accel: Accel, notes: &mut Vec<String>) -> Result<Vm, VmError> {
        let probe_spec = self.spec(accel, Path::new("/"), None);
        let snapshot = self.warm_snapshot_path(&probe_spec);
        if self.options.warm == WarmPolicy::Use {
            match self.usable_snapshot(&snapshot) {
                Ok(()) => match self.launch(
                    accel,
                    Mode::Warm {
                        snapshot: snapshot.clone(),
                    },
                ) {
                    Ok(vm) => return Ok(vm),
                    Err(VmError::Interrupted) => return Err(VmError::Interrupted),
                    Err(e) => {
                        notes.push(format!(
                            "warm start failed, booting cold: {}",
                            first_line(&e)
                        ));
                        if e.condemns_snapshot() {
                            remove_snapshot(&snapshot);
                            notes.push(format!(
                                "removed the unusable snapshot {}",
                                snapshot.display()
                            ));
                        }
                    }
                },
                Err(why) => notes.push(format!("booting cold: {why}")),
            }
        }
        let save_to = (self.options.warm == WarmPolicy::Use).then_some(snapshot);
        self.launch(accel, Mode::Cold { save_to })
    }

    /// A snapshot is only as good as the exact base image it was taken over: QEMU does not
    /// notice a changed backing file, and the guest then reads stale inodes.
    fn usable_snapshot(&self, snapshot: &Path) -> Result<(), String> {
        if !snapshot.is_file() {
            return Err(
                "no warm snapshot for this image and launch configuration yet (one is saved now)"
                    .into(),
            );
        }
        let recorded = fs::read_to_string(base_stamp_path(snapshot)).unwrap_or_default();
        let current = base_stamp(&self.image.disk()).unwrap_or_default();
        if recorded.trim() != current || current.is_empty() {
            remove_snapshot(snapshot);
            return Err(format!(
                "the warm snapshot was taken over a different base image (recorded `{}`, now `{current}`); removed it",
                recorded.trim()
            ));
        }
        Ok(())
    }

    fn spec(&self, accel: Accel, dir: &Path, loadvm: Option<String>) -> LaunchSpec {
        let mut append =
            format!("console=ttyS0 root=/dev/vda rw security=selinux enforcing=1 init={INIT_PATH}");
        for extra in &self.image.manifest.kernel_cmdline_extra {
            append.push(' ');
            append.push_str(extra);
        }
        LaunchSpec {
            qemu: self.qemu.clone(),
            machine: self.options.machine.clone(),
            accel,
            memory_mib: self.options.memory_mib,
            smp: self.options.smp,
            kernel: self.image.kernel(),
            initrd: self.image.initrd(),
            append,
            disk: dir.join("disk.qcow2"),
            payload: self
                .payload
                .clone()
                .unwrap_or_else(|| dir.join("payload.raw")),
            agent_socket: dir.join("agent.sock"),
            agent_port_name: AGENT_PORT_NAME.into(),
            monitor_socket: dir.join("monitor.sock"),
            console_log: dir.join("console.log"),
            loadvm,
        }
    }

    fn launch(&self, accel: Accel, mode: Mode) -> Result<Vm, VmError> {
        let o = self.options;
        sweep_dead_run_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{RUN_DIR_PREFIX}{}.", std::process::id()))
            .tempdir()
            .map_err(io_err("cannot create the run's temp dir"))?;
        let loadvm = matches!(mode, Mode::Warm { .. }).then(|| SNAPSHOT.to_owned());
        let spec = self.spec(accel, dir.path(), loadvm);
        let mut phases = Vec::new();
        let t = Instant::now();
        match &mode {
            Mode::Warm { snapshot } => {
                self.progress
                    .phase(format!("warm start ({accel}): copying the snapshot"));
                // A restore writes into its qcow2: every run restores from its own copy.
                fs::copy(snapshot, &spec.disk)
                    .map_err(io_err(format!("cannot copy {}", snapshot.display())))?;
            }
            Mode::Cold { .. } => {
                let mut cmd = Command::new(&self.qemu_img);
                cmd.args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                    .arg(self.image.disk())
                    .arg(&spec.disk);
                run_quiet(&mut cmd)?;
            }
        }
        let on_payload_disk = self.payload.is_some();
        if !on_payload_disk {
            // The device is part of the snapshot's layout: present (and empty) all the same.
            write_empty_payload(&spec.payload)?;
        }
        let kind = match mode {
            Mode::Warm { .. } => StartKind::Warm,
            Mode::Cold { .. } => StartKind::Cold,
        };
        phases.push(match kind {
            StartKind::Warm => ("copy the warm snapshot", t.elapsed()),
            StartKind::Cold => ("create the overlay", t.elapsed()),
        });
        self.progress
            .phase(format!("{} boot ({accel}): starting QEMU", kind.name()));
        let started = Instant::now();
        let child = QemuChild::spawn(&spec, &dir.path().join("qemu.stderr")).map_err(|e| {
            VmError::Tool {
                command: spec.qemu.display().to_string(),
                message: e.to_string(),
            }
        })?;
        let mut guest = Guest {
            child,
            console: spec.console_log.clone(),
            interrupt: o.interrupt.clone(),
            keep_console: o.keep_console.clone(),
            started,
            _dir: dir,
        };
        let connect_deadline = Instant::now() + o.handshake_timeout;
        let mut agent = Channel::connect(&spec.agent_socket, connect_deadline, &mut guest)?;
        let mut monitor = guest.connect_monitor(&spec.monitor_socket, connect_deadline)?;

        let up_deadline = Instant::now()
            + match kind {
                StartKind::Cold => o.boot_timeout,
                StartKind::Warm => o.handshake_timeout,
            };
        self.progress.phase(format!(
            "{} boot ({accel}): waiting for the guest",
            kind.name()
        ));
        wait_for_bootstrap(&mut agent, &mut guest, up_deadline, self.progress, kind)?;
        let guest_up = started.elapsed();
        phases.push(match kind {
            StartKind::Warm => ("QEMU start + restore to bootstrap answer", guest_up),
            StartKind::Cold => ("QEMU start + boot to bootstrap answer", guest_up),
        });

        let mut warm_saved = None;
        let mut notes = Vec::new();
        if let Mode::Cold {
            save_to: Some(path),
        } = &mode
        {
            self.progress
                .phase(format!("saving the warm snapshot ({accel})"));
            let t = Instant::now();
            // The guest must be between requests with the host side closed, as a restore finds it.
            drop(agent);
            // A failed save costs the next run its warm start, not this run its VM.
            match save_snapshot(&mut monitor, &spec.disk, path, &self.image.disk()) {
                Ok(()) => {
                    warm_saved = Some(t.elapsed());
                    phases.push(("save the warm snapshot", t.elapsed()));
                    self.progress.note(format!(
                        "saved the warm snapshot in {:.1} s: {}",
                        t.elapsed().as_secs_f64(),
                        path.display()
                    ));
                }
                Err(e) => notes.push(format!("warm snapshot not saved: {}", first_line(&e))),
            }
            agent = Channel::connect(
                &spec.agent_socket,
                Instant::now() + o.handshake_timeout,
                &mut guest,
            )?;
        }

        self.progress.phase(format!(
            "{} boot ({accel}): delivering the agent ({:.1} MB)",
            kind.name(),
            self.binary.len() as f64 / 1e6
        ));
        let t = Instant::now();
        deliver(
            &mut agent,
            &mut guest,
            &self.binary,
            on_payload_disk,
            o.handshake_timeout,
            &mut notes,
        )?;
        phases.push(("set the clock, deliver and start the agent", t.elapsed()));
        Ok(Vm {
            agent,
            monitor,
            info: BootInfo {
                accel,
                start: kind,
                guest_up,
                ready: started.elapsed(),
                warm_saved,
                phases,
                notes,
            },
            request_timeout: o.request_timeout,
            guest,
        })
    }
}

/// QEMU, its files and what is needed to explain a failure.
struct Guest {
    // Field order is drop order: QEMU dies before its files go.
    child: QemuChild,
    console: PathBuf,
    interrupt: Interrupt,
    keep_console: Option<PathBuf>,
    started: Instant,
    _dir: TempDir,
}

impl Guest {
    fn console_tail(&self) -> String {
        tail_lines(&self.console, CONSOLE_TAIL)
    }

    /// Err when QEMU is gone or the user interrupted.
    fn check(&mut self, phase: &'static str) -> Result<(), VmError> {
        if self.interrupt.is_set() {
            return Err(VmError::Interrupted);
        }
        if let Some(status) = self.child.try_wait() {
            return Err(VmError::QemuExited {
                phase,
                status: format!(
                    "{status} after {:.1} s",
                    self.started.elapsed().as_secs_f64()
                ),
                stderr: self.child.stderr_text(),
                console: self.console_tail(),
            });
        }
        Ok(())
    }

    fn timeout(&self, phase: &'static str, waited: Duration, fix: &'static str) -> VmError {
        VmError::Timeout {
            phase,
            secs: waited.as_secs_f64(),
            console: self.console_tail(),
            fix,
        }
    }

    fn connect_monitor(&mut self, path: &Path, deadline: Instant) -> Result<Monitor, VmError> {
        const PHASE: &str = "connecting to the QEMU monitor";
        loop {
            self.check(PHASE)?;
            match Monitor::connect(path, Duration::from_secs(10)) {
                Ok(m) => return Ok(m),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => {
                    return Err(VmError::Monitor {
                        command: "connect".into(),
                        message: e.to_string(),
                    })
                }
            }
        }
    }
}

/// The host end of the agent's virtio-serial port: a byte stream of lines.
struct Channel {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Channel {
    const POLL: Duration = Duration::from_millis(100);

    fn connect(path: &Path, deadline: Instant, guest: &mut Guest) -> Result<Self, VmError> {
        const PHASE: &str = "connecting to the agent socket";
        loop {
            guest.check(PHASE)?;
            match UnixStream::connect(path) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(Self::POLL))
                        .map_err(io_err("agent socket"))?;
                    return Ok(Self {
                        stream,
                        buf: Vec::new(),
                    });
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(io_err(format!("cannot connect to {}", path.display()))(e)),
            }
        }
    }

    fn send(&mut self, bytes: &[u8], guest: &mut Guest, timeout: Duration) -> Result<(), VmError> {
        const PHASE: &str = "sending to the agent";
        let deadline = Instant::now() + timeout;
        self.stream
            .set_write_timeout(Some(Self::POLL))
            .map_err(io_err("agent socket"))?;
        let mut rest = bytes;
        while !rest.is_empty() {
            guest.check(PHASE)?;
            if Instant::now() > deadline {
                return Err(guest.timeout(
                    PHASE,
                    timeout,
                    "the guest stopped reading its port: see the console",
                ));
            }
            match self.stream.write(rest) {
                Ok(0) => {
                    return Err(VmError::ChannelClosed {
                        phase: PHASE,
                        console: guest.console_tail(),
                    })
                }
                Ok(n) => rest = &rest[n..],
                Err(e) if is_retry(&e) => {}
                Err(e) => return Err(io_err("writing to the agent socket")(e)),
            }
        }
        Ok(())
    }

    /// The next line, or None when `deadline` passes first.
    fn read_line(
        &mut self,
        deadline: Instant,
        guest: &mut Guest,
        phase: &'static str,
    ) -> Result<Option<String>, VmError> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let line = std::mem::replace(&mut self.buf, rest);
                return Ok(Some(String::from_utf8_lossy(&line).trim_end().to_owned()));
            }
            guest.check(phase)?;
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(VmError::ChannelClosed {
                        phase,
                        console: guest.console_tail(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_retry(&e) => {}
                Err(e) => return Err(io_err("reading from the agent socket")(e)),
            }
        }
    }

    /// Reads lines until one satisfies `want`; bootstrap chatter (PONG) is skipped.
    fn expect(
        &mut self,
        guest: &mut Guest,
        timeout: Duration,
        phase: &'static str,
        want: impl Fn(&str) -> bool,
    ) -> Result<String, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_line(deadline, guest, phase)? {
                None => return Err(guest.timeout(phase, timeout, "see the guest console")),
                Some(l) if want(&l) => return Ok(l),
                Some(l) if l == "PONG" || l.is_empty() => {}
                Some(l) => {
                    return Err(VmError::Protocol {
                        phase,
                        line: l,
                        console: guest.console_tail(),
                    })
                }
            }
        }
    }
}

/// Pings until the bootstrap answers. Data sent before it opened the port may be dropped, so
/// the ping repeats; each repetition also shows the newest console line as progress.
fn wait_for_bootstrap(
    agent: &mut Channel,
    guest: &mut Guest,
    deadline: Instant,
    progress: &Progress,
    kind: StartKind,
) -> Result<(), VmError> {
    const PHASE: &str = "waiting for the guest's bootstrap";
    let started = Instant::now();
    loop {
        agent.send(b"PING\n", guest, Duration::from_secs(5))?;
        // A restored guest answers within a few hundred ms: re-ping often so that a ping lost
        // in the reconnect costs little. A cold boot takes ~20 s: no need to flood it.
        let every = match kind {
            StartKind::Warm => Duration::from_millis(100),
            StartKind::Cold => Duration::from_millis(500),
        };
        let until = deadline.min(Instant::now() + every);
        match agent.read_line(until, guest, PHASE)? {
            Some(l) if l == "PONG" => return Ok(()),
            Some(_) => {}
            None if Instant::now() >= deadline => {
                return Err(guest.timeout(
                    PHASE,
                    started.elapsed(),
                    "see the console: did the harness init reach \"ready on /dev/vport...\"?",
                ))
            }
            None => {
                let last = tail_lines(&guest.console, 1);
                if !last.is_empty() {
                    let short: String = last.chars().take(100).collect();
                    progress.phase(format!("{} boot: {short}", kind.name()));
                }
            }
        }
    }
}

/// `stop`, `savevm`, copy the overlay (it now holds disk and memory state), `cont`.
fn save_snapshot(
    monitor: &mut Monitor,
    disk: &Path,
    to: &Path,
    base: &Path,
) -> Result<(), VmError> {
    let hmp = |monitor: &mut Monitor, cmd: &str| -> Result<(), VmError> {
        let out = monitor
            .command(cmd, Duration::from_secs(300))
            .map_err(|e| VmError::Monitor {
                command: cmd.into(),
                message: e.to_string(),
            })?;
        if out.is_empty() {
            Ok(())
        } else {
            Err(VmError::Monitor {
                command: cmd.into(),
                message: out,
            })
        }
    };
    hmp(monitor, "stop")?;
    let saved = save_stopped(monitor, disk, to, base, hmp);
    // Resume whatever happened: the run goes on with or without a snapshot.
    let resumed = hmp(monitor, "cont");
    saved.and(resumed)
}

fn save_stopped(
    monitor: &mut Monitor,
    disk: &Path,
    to: &Path,
    base: &Path,
    hmp: impl Fn(&mut Monitor, &str) -> Result<(), VmError>,
) -> Result<(), VmError> {
    hmp(monitor, &format!("savevm {SNAPSHOT}"))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .map_err(io_err(format!("cannot create {}", parent.display())))?;
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(format!(".tmp-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let stamp = base_stamp(base).map_err(io_err(format!("cannot stat {}", base.display())))?;
    let copied = fs::write(base_stamp_path(to), stamp)
        .and_then(|()| fs::copy(disk, &partial))
        .and_then(|_| fs::rename(&partial, to));
    if let Err(e) = copied {
        let _ = fs::remove_file(&partial);
        return Err(io_err(format!(
            "cannot store the warm snapshot {}",
            to.display()
        ))(e));
    }
    Ok(())
}

/// Run dirs are `<tmp>/selinux-harness-vm.<pid>.<random>`: the pid says whether one is orphaned.
const RUN_DIR_PREFIX: &str = "selinux-harness-vm.";

/// Removes run dirs whose process died without its destructors (SIGKILL, power loss); its QEMU
/// died with it (parent-death signal), so nothing uses them.
fn sweep_dead_run_dirs() {
    let tmp = std::env::temp_dir();
    let Ok(entries) = fs::read_dir(&tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(RUN_DIR_PREFIX)
            .and_then(|rest| rest.split('.').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Identity of the base image file: device, inode, size, modification time.
fn base_stamp(base: &Path) -> io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(base)?;
    Ok(format!(
        "dev={} ino={} size={} mtime={}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

fn base_stamp_path(snapshot: &Path) -> PathBuf {
    let mut p = snapshot.as_os_str().to_owned();
    p.push(".base");
    PathBuf::from(p)
}

fn remove_snapshot(snapshot: &Path) {
    let _ = fs::remove_file(snapshot);
    let _ = fs::remove_file(base_stamp_path(snapshot));
}

/// Sets the guest clock (it resumes at snapshot time after a restore), sends the binary and
/// waits for the agent's hello.
fn deliver(
    agent: &mut Channel,
    guest: &mut Guest,
    binary: &[u8],
    on_payload_disk: bool,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<(), VmError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    agent.send(
        format!("TIME {}.{:09}\n", now.as_secs(), now.subsec_nanos()).as_bytes(),
        guest,
        timeout,
    )?;
    let answer = agent.expect(guest, timeout, "setting the guest clock", |l| {
        l == "OK" || l.starts_with("ERR")
    })?;
    if answer != "OK" {
        notes.push(format!("guest clock not set: {answer}"));
    }
    let want = format!("GOT {}", binary.len());
    let is_got = |l: &str| {
        l == want
            || l.strip_prefix(want.as_str())
                .is_some_and(|rest| rest.starts_with(' '))
    };
    let mut got = None;
    if on_payload_disk {
        agent.send(format!("MNT {}\n", binary.len()).as_bytes(), guest, timeout)?;
        let answer = agent.expect(
            guest,
            timeout,
            "reading the agent from the payload disk",
            |l| is_got(l) || l.starts_with("ERR"),
        )?;
        if is_got(&answer) {
            got = Some(answer);
        } else {
            notes.push(format!(
                "payload disk not used ({answer}); sent the agent over the port"
            ));
        }
    }
    let got = match got {
        Some(g) => g,
        None => {
            agent.send(format!("BIN {}\n", binary.len()).as_bytes(), guest, timeout)?;
            agent.expect(guest, timeout, "starting the binary transfer", |l| {
                l == "OK"
            })?;
            agent.send(binary, guest, timeout.max(Duration::from_secs(60)))?;
            agent.expect(guest, timeout, "transferring the agent binary", is_got)?
        }
    };
    if got.ends_with("clock-not-set") {
        notes.push("guest clock not set: `date -s` failed in the guest (see the console)".into());
    }
    agent.expect(guest, timeout, "waiting for the agent to start", |l| {
        l.split_whitespace().next() == Some(HELLO)
    })?;
    Ok(())
}

/// An empty payload disk of the fixed size (used when the binary goes over the port).
fn write_empty_payload(path: &Path) -> Result<(), VmError> {
    fs::File::create(path)
        .and_then(|f| f.set_len(PAYLOAD_CAPACITY))
        .map_err(io_err(format!("cannot write {}", path.display())))
}

/// `<cache>/selinux-harness/payloads/<sha16>.ext4`: a read-only ext4 holding the binary as
/// `selinux-harness`, built once per binary. The guest mounts it and runs the agent from it,
/// which beats streaming megabytes through the virtio-serial port under TCG.
fn payload_image(image: &Image, binary: &[u8], interrupt: &Interrupt) -> Result<PathBuf, String> {
    const KEEP: Duration = Duration::from_secs(24 * 3600);
    let root = image
        .dir
        .parent()
        .and_then(Path::parent)
        .ok_or("the image is not inside a cache directory")?
        .join("payloads");
    let digest = Sha256::digest(binary);
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let path = root.join(format!("{name}.ext4"));
    if path.is_file() {
        return Ok(path);
    }
    if binary.len() as u64 > PAYLOAD_CAPACITY / 2 {
        return Err(format!(
            "the binary is larger than {} MiB",
            PAYLOAD_CAPACITY >> 21
        ));
    }
    let mkfs =
        tools::which("mkfs.ext4").ok_or("mkfs.ext4 not found (apt-get install e2fsprogs)")?;
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    // Payloads of older binaries: nobody starts them again.
    if let Ok(entries) = fs::read_dir(&root) {
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > KEEP);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let staging = tempfile::Builder::new()
        .prefix(".payload.")
        .tempdir_in(&root)
        .map_err(|e| format!("cannot create a staging dir in {}: {e}", root.display()))?;
    let content = staging.path().join("content");
    let file = content.join("selinux-harness");
    let partial = staging.path().join("payload.ext4");
    let log = staging.path().join("mkfs.log");
    fs::create_dir(&content)
        .and_then(|()| fs::write(&file, binary))
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o755))
        })
        .map_err(|e| format!("cannot stage the binary: {e}"))?;
    let mut cmd = Command::new(mkfs);
    cmd.args([
        "-q",
        "-F",
        "-O",
        "^has_journal",
        "-L",
        "harness-payload",
        "-d",
    ])
    .arg(&content)
    .arg(&partial)
    .arg(format!("{}M", PAYLOAD_CAPACITY >> 20));
    crate::image::command::run_logged(&mut cmd, &log, interrupt).map_err(|e| {
        format!(
            "`{}` failed ({e:?}): {}",
            crate::image::command::display(&cmd),
            tail_lines(&log, 5)
        )
    })?;
    fs::rename(&partial, &path).map_err(|e| format!("cannot store {}: {e}", path.display()))?;
    Ok(path)
}

fn run_quiet(cmd: &mut Command) -> Result<(), VmError> {
    let out = cmd.output().map_err(|e| VmError::Tool {
        command: crate::image::command::display(cmd),
        message: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VmError::Tool {
            command: crate::image::command::display(cmd),
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// "7.2.22" from `qemu-system-x86_64 --version` (part of the warm snapshot's fingerprint).
fn qemu_version(qemu: &Path) -> Result<String, VmError> {
    let out = Command::new(qemu)
        .arg("--version")
        .output()
        .map_err(|e| VmError::Tool {
            command: format!("{} --version", qemu.display()),
            message: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(parse_qemu_version(&text).unwrap_or_else(|| text.lines().next().unwrap_or("").to_owned()))
}

fn parse_qemu_version(text: &str) -> Option<String> {
    text.lines()
        .next()?
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .map(str::to_owned)
}

/// One line for a note: the error's headline plus, for QEMU exits, QEMU's own last word.
fn first_line(e: &VmError) -> String {
    let head = e.to_string().lines().next().unwrap_or("").to_owned();
    match e {
        VmError::QemuExited { stderr, .. } => {
            match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
                Some(last) => format!("{head}: {}", last.trim()),
                None => head,
            }
        }
        _ => head,
    }
}

/// Socket errors that only mean "nothing yet": the timeout of one read or write, or a signal.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_image_holds_the_binary_and_is_reused() {
        if tools::which("mkfs.ext4").is_none() || tools::which("debugfs").is_none() {
            eprintln!("skipped: needs mkfs.ext4 and debugfs (e2fsprogs)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let image = Image {
            dir: tmp.path().join("images").join("debian-12-0123456789abcdef"),
            manifest: crate::image::Manifest {
                format: 1,
                recipe: "debian-12".into(),
                suite: "bookworm".into(),
                hash: crate::image::ImageHash("0123456789abcdef".into()),
                created_unix: 0,
                build_seconds: 0.0,
                kernel_release: String::new(),
                policy_file: String::new(),
                kernel_cmdline_extra: vec![],
            },
        };
        let binary = b"\x7fELF pretend binary".repeat(1000);
        let path = payload_image(&image, &binary, &Interrupt::new()).unwrap();
        assert_eq!(path.parent().unwrap(), tmp.path().join("payloads"));
        assert_eq!(fs::metadata(&path).unwrap().len(), PAYLOAD_CAPACITY);
        let out = Command::new(tools::which("debugfs").unwrap())
            .args(["-R", "stat /selinux-harness"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("Size: {}", binary.len())), "{text}");
        let again = payload_image(&image, &binary, &Interrupt::new()).unwrap();
        assert_eq!(again, path);
        let other = payload_image(&image, b"another", &Interrupt::new()).unwrap();
        assert_ne!(other, path);
    }

    #[test]
    fn qemu_version_from_banner() {
        let banner = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022";
        assert_eq!(parse_qemu_version(banner).as_deref(), Some("7.2.22"));
        assert_eq!(parse_qemu_version("nonsense"), None);
    }
}
