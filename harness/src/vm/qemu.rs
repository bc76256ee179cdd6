//! The QEMU command line and the QEMU child process.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::wait::{wait_until, Waited};

/// Versioned on purpose: a snapshot only loads into the same machine type, and plain `pc`
/// changes meaning between QEMU versions.
pub const DEFAULT_MACHINE: &str = "pc-i440fx-7.2";

/// Bumped whenever the device layout below changes (it invalidates warm snapshots).
pub const DEVICE_LAYOUT_VERSION: u32 = 2;

/// Size of the payload disk. Fixed: a restored guest still believes the size it saw at save time.
pub const PAYLOAD_CAPACITY: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    /// Software emulation; works everywhere.
    Tcg,
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Tcg => ["-accel", "tcg,thread=multi", "-cpu", "max"],
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything one QEMU launch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub qemu: PathBuf,
    pub machine: String,
    pub accel: Accel,
    pub memory_mib: u32,
    pub smp: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    /// The run's own qcow2 (overlay over the cached raw image, or a copy of the warm snapshot).
    pub disk: PathBuf,
    /// Read-only raw disk carrying the agent binary (faster than the port under TCG).
    pub payload: PathBuf,
    pub agent_socket: PathBuf,
    pub agent_port_name: String,
    pub monitor_socket: PathBuf,
    pub console_log: PathBuf,
    /// Internal snapshot to restore at start.
    pub loadvm: Option<String>,
}

impl LaunchSpec {
    /// The argument vector (without the program). Device addresses are fixed so the layout a
    /// snapshot was saved with is the layout it is loaded into.
    pub fn argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        let mut push = |a: &str| v.push(a.into());
        push("-machine");
        push(&self.machine);
        for a in self.accel.args() {
            push(a);
        }
        push("-m");
        push(&self.memory_mib.to_string());
        push("-smp");
        push(&self.smp.to_string());
        for a in ["-nodefaults", "-no-reboot", "-display", "none"] {
            push(a);
        }
        push("-kernel");
        push(&self.kernel.to_string_lossy());
        push("-initrd");
        push(&self.initrd.to_string_lossy());
        push("-append");
        push(&self.append);
        push("-drive");
        push(&format!(
            "file={},format=qcow2,if=none,id=d0,cache=unsafe",
            qemu_opt(&self.disk)
        ));
        push("-device");
        push("virtio-blk-pci,drive=d0,addr=0x4");
        push("-device");
        push("virtio-serial-pci,id=vser,addr=0x5");
        push("-drive");
        push(&format!(
            "file={},format=raw,if=none,id=payload,readonly=on",
            qemu_opt(&self.payload)
        ));
        push("-device");
        push("virtio-blk-pci,drive=payload,addr=0x6");
        push("-chardev");
        push(&format!(
            "socket,id=agent,path={},server=on,wait=off",
            qemu_opt(&self.agent_socket)
        ));
        push("-device");
        push(&format!(
            "virtserialport,bus=vser.0,chardev=agent,name={}",
            self.agent_port_name
        ));
        // A new generation id on every restore: the guest kernel reseeds its RNG from it.
        push("-device");
        push("vmgenid,guid=auto");
        push("-serial");
        push(&format!("file:{}", self.console_log.to_string_lossy()));
        push("-qmp");
        push(&format!(
            "unix:{},server=on,wait=off",
            self.monitor_socket.to_string_lossy()
        ));
        if let Some(name) = &self.loadvm {
            push("-loadvm");
            push(name);
        }
        v
    }

    /// What must be equal between saving and loading a snapshot (a different -m, -smp, machine,
    /// CPU model or device layout makes the load fail or, worse, misbehave).
    pub fn restore_fingerprint(&self, qemu_version: &str) -> String {
        format!(
            "qemu={qemu_version};machine={};accel={};m={};smp={};layout={DEVICE_LAYOUT_VERSION};port={}",
            self.machine,
            self.accel.args().join(" "),
            self.memory_mib,
            self.smp,
            self.agent_port_name
        )
    }
}

/// QEMU's option parser splits on ',', which `,,` escapes.
fn qemu_opt(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// A running QEMU. Killed (and reaped) on drop, and by the kernel if this process dies first.
#[derive(Debug)]
pub struct QemuChild {
    // Field order is drop order, but Drop below does the work explicitly.
    child: Child,
    pub stderr_path: PathBuf,
    /// Dropping it lets the spawning thread end (after QEMU is dead).
    keepalive: Option<std::sync::mpsc::Sender<()>>,
    spawner: Option<std::thread::JoinHandle<()>>,
}

impl QemuChild {
    /// Starts QEMU from a thread of its own that lives exactly as long as this handle: the
    /// parent-death signal fires when the spawning *thread* ends, so spawning from a caller's
    /// worker thread would kill QEMU as soon as that worker finished (a test runner's thread,
    /// while other threads still use the VM).
    pub fn spawn(spec: &LaunchSpec, stderr_path: &Path) -> io::Result<Self> {
        let stderr = File::create(stderr_path)?;
        let mut cmd = Command::new(&spec.qemu);
        cmd.args(spec.argv())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Its own process group: Ctrl-C reaches this process, which then stops QEMU itself
            // after it is done with it (a restore or a save must not be cut in half).
            .process_group(0);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
        // parent; it makes the kernel kill QEMU if the spawning thread dies without Drop
        // (this process killed with SIGKILL).
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)
            });
        }
        let (child_tx, child_rx) = std::sync::mpsc::channel();
        let (keepalive, keepalive_rx) = std::sync::mpsc::channel::<()>();
        let spawner = std::thread::Builder::new()
            .name("qemu-parent".into())
            .spawn(move || {
                let _ = child_tx.send(cmd.spawn());
                // Returns when the handle drops the sender.
                let _ = keepalive_rx.recv();
            })?;
        let child = child_rx
            .recv()
            .map_err(|_| io::Error::other("the QEMU spawner thread ended early"))??;
        Ok(Self {
            child,
            stderr_path: stderr_path.to_owned(),
            keepalive: Some(keepalive),
            spawner: Some(spawner),
        })
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr_path)
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Waits up to `grace` for QEMU to exit on its own (after `quit`), then kills it.
    pub fn finish(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let exited = wait_until(Some(deadline), Duration::from_millis(20), None, || {
            self.try_wait().is_some()
        });
        if exited == Waited::Met(()) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for QemuChild {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.keepalive.take();
        if let Some(t) = self.spawner.take() {
            let _ = t.join();
        }
    }
}

/// Why a start does not use KVM; its text is the launch's note "kvm not used: ...".
#[derive(Debug, thiserror::Error)]
pub enum NoKvm {
    #[error("cannot open /dev/kvm: {0}")]
    DevKvm(io::Error),
    /// The probe's stderr file could not be made.
    #[error("{0}")]
    ProbeFile(io::Error),
    #[error("cannot start {}: {error}", qemu.display())]
    ProbeStart { qemu: PathBuf, error: io::Error },
    /// QEMU with KVM exits at once; why, in QEMU's words.
    #[error("{0}")]
    Exits(String),
    /// The same, as a probe found earlier.
    #[error("{why} (cached probe answer: remove {} to probe again)", file.display())]
    CachedExits { why: String, file: PathBuf },
}

/// Whether this process may use KVM at all (a cheap check, done before any probe).
pub fn open_kvm() -> Result<(), NoKvm> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(NoKvm::DevKvm)
}

/// What a KVM probe found out about this QEMU on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmProbe {
    /// A paused guest with KVM stayed up.
    Runs,
    /// QEMU with KVM exits at once; why, in QEMU's words.
    Exits(String),
}

/// Whether KVM really runs a guest here: a stock guest aborts at the first vCPU reset on some
/// hosts ("failed to set MSR 0x10a"), which a paused QEMU (-S) already hits. Err when the probe
/// itself could not be made (no answer about KVM).
pub fn probe_kvm(qemu: &Path, machine: &str) -> Result<KvmProbe, NoKvm> {
    let stderr = tempfile::tempfile().map_err(NoKvm::ProbeFile)?;
    let mut reader = stderr.try_clone().map_err(NoKvm::ProbeFile)?;
    let mut child = Command::new(qemu)
        .args([
            "-machine", machine, "-accel", "kvm", "-cpu", "host", "-m", "64",
        ])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|error| NoKvm::ProbeStart {
            qemu: qemu.to_path_buf(),
            error,
        })?;
    let deadline = Instant::now() + Duration::from_millis(400);
    let exited = wait_until(Some(deadline), Duration::from_millis(20), None, || {
        child.try_wait().ok().flatten()
    });
    if let Waited::Met(status) = exited {
        let mut text = String::new();
        use std::io::{Read, Seek};
        let _ = reader.rewind();
        let _ = reader.read_to_string(&mut text);
        let first = text.lines().next().unwrap_or("").to_owned();
        return Ok(KvmProbe::Exits(format!(
            "QEMU with KVM exits at once ({status}): {first}"
        )));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(KvmProbe::Runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            machine: DEFAULT_MACHINE.into(),
            accel: Accel::Tcg,
            memory_mib: 2048,
            smp: 2,
            kernel: "/c/vmlinuz".into(),
            initrd: "/c/initrd.img".into(),
            append: "console=ttyS0 root=/dev/vda".into(),
            disk: "/run/x,y/disk.qcow2".into(),
            payload: "/run/x/payload.raw".into(),
            agent_socket: "/run/x/agent.sock".into(),
            agent_port_name: "org.selinux-harness.agent".into(),
            monitor_socket: "/run/x/mon.sock".into(),
            console_log: "/run/x/console.log".into(),
            loadvm: None,
        }
    }

    fn joined(s: &LaunchSpec) -> String {
        s.argv()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn argv_has_versioned_machine_tcg_and_the_channels() {
        let a = joined(&spec());
        for want in [
            "-machine pc-i440fx-7.2 -accel tcg,thread=multi -cpu max -m 2048 -smp 2",
            "-nodefaults -no-reboot -display none",
            "-append console=ttyS0 root=/dev/vda -drive",
            "file=/run/x,,y/disk.qcow2,format=qcow2,if=none,id=d0",
            "file=/run/x/payload.raw,format=raw,if=none,id=payload,readonly=on -device virtio-blk-pci,drive=payload,addr=0x6",
            "socket,id=agent,path=/run/x/agent.sock,server=on,wait=off",
            "virtserialport,bus=vser.0,chardev=agent,name=org.selinux-harness.agent",
            "-device vmgenid,guid=auto",
            "-serial file:/run/x/console.log -qmp unix:/run/x/mon.sock,server=on,wait=off",
        ] {
            assert!(a.contains(want), "missing `{want}` in {a}");
        }
        assert!(!a.contains("-loadvm"));
    }

    #[test]
    fn qemu_outlives_the_thread_that_started_it() {
        use std::os::unix::fs::PermissionsExt;
        // A stand-in for QEMU that ignores its arguments and keeps running.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-qemu");
        std::fs::write(&fake, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut s = spec();
        s.qemu = fake;
        let stderr = dir.path().join("stderr");
        let mut child = std::thread::scope(|scope| {
            scope
                .spawn(|| QemuChild::spawn(&s, &stderr).unwrap())
                .join()
                .unwrap()
        });
        // The worker thread has ended; a parent-death signal tied to it would have fired.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().is_none(),
            "QEMU died with the thread that started it"
        );
        drop(child);
    }

    #[test]
    fn argv_restores_and_uses_kvm_when_asked() {
        let mut s = spec();
        s.accel = Accel::Kvm;
        s.loadvm = Some("ready".into());
        let a = joined(&s);
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        assert!(a.ends_with("-loadvm ready"), "{a}");
    }

    #[test]
    fn fingerprint_tracks_what_breaks_a_restore_only() {
        let base = spec();
        let fp = base.restore_fingerprint("7.2.22");
        let mut other = base.clone();
        other.append.push_str(" quiet");
        other.disk = "/elsewhere.qcow2".into();
        other.payload = "/elsewhere.raw".into();
        other.loadvm = Some("ready".into());
        assert_eq!(fp, other.restore_fingerprint("7.2.22"));
        for change in [
            |s: &mut LaunchSpec| s.memory_mib = 1024,
            |s: &mut LaunchSpec| s.smp = 1,
            |s: &mut LaunchSpec| s.machine = "pc".into(),
            |s: &mut LaunchSpec| s.accel = Accel::Kvm,
        ] {
            let mut s = base.clone();
            change(&mut s);
            assert_ne!(fp, s.restore_fingerprint("7.2.22"));
        }
        assert_ne!(fp, base.restore_fingerprint("8.2.0"));
    }
}
