//! Starting a VM: check the image and the tools, pick the accelerators, then per accelerator a
//! warm start (restore the snapshot) or a cold boot (and save a snapshot for next time), each
//! in a run dir of its own, up to the agent's hello.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::accel::{self, ProbeCache};
use super::bootstrap::{deliver, wait_for_bootstrap};
use super::channel::Channel;
use super::error::{first_line, io_err, VmError};
use super::instance::Guest;
use super::options::{AccelChoice, BootInfo, StartKind, VmOptions, WarmPolicy};
use super::payload::{payload_image, write_empty_payload};
use super::qemu::{Accel, LaunchSpec, QemuChild};
use super::snapshot::{
    remove_snapshot, save_snapshot, usable_snapshot, warm_snapshot_path, SNAPSHOT,
};
use super::version::qemu_version;
use super::Vm;
use crate::image::guest::{AGENT_PORT_NAME, INIT_PATH};
use crate::image::tools::{self, VM_TOOLS};
use crate::image::{Image, Progress};

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

/// Boots `image` (warm when it can) and starts the agent in it.
pub(super) fn start(
    image: &Image,
    options: &VmOptions,
    progress: &Progress,
) -> Result<Vm, VmError> {
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
        None => std::env::current_exe().map_err(io_err("cannot find the running executable"))?,
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

    // Probe answers live beside the payloads, in the cache the image came from.
    let probes = ProbeCache::in_cache_root(image.dir.parent().and_then(Path::parent));
    let mut accels = accel::candidates(
        options.accel,
        || probes.usable_kvm(&plan.qemu, &options.machine),
        &mut notes,
    );
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
                if accel == Accel::Kvm && options.accel == AccelChoice::Auto {
                    // The probe said KVM runs and the boot says otherwise: probe again next time.
                    probes.forget(&plan.qemu, &options.machine);
                }
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

impl Plan<'_> {
    fn start_with(&self, accel: Accel, notes: &mut Vec<String>) -> Result<Vm, VmError> {
        let probe_spec = self.spec(accel, Path::new("/"), None);
        let snapshot = warm_snapshot_path(&self.image.warm_dir(), &probe_spec, &self.qemu_version);
        if self.options.warm == WarmPolicy::Use {
            match usable_snapshot(&snapshot, &self.image.disk()) {
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
            dir,
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

/// Run dirs are `<tmp>/selinux-harness-vm.<pid>.<random>`: the pid says whether one is orphaned.
const RUN_DIR_PREFIX: &str = "selinux-harness-vm.";

/// Removes run dirs whose process died without its destructors (SIGKILL, power loss); its QEMU
/// died with it (parent-death signal), so nothing uses them.
fn sweep_dead_run_dirs() {
    sweep_run_dirs(|pid| !Path::new(&format!("/proc/{pid}")).exists());
}

/// Removes this process's own run dirs, for a process about to exit on a signal without
/// unwinding (the conformance suite's Ctrl-C): its QEMUs die with it (parent-death signal), and
/// a deleted file they still hold open goes when they do.
pub fn remove_own_run_dirs() {
    let me = std::process::id();
    sweep_run_dirs(|pid| pid == me);
}

fn sweep_run_dirs(remove: impl Fn(u32) -> bool) {
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
        if remove(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
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
