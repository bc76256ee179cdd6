//! Boots a guest image under QEMU and talks to the harness agent inside it.
//!
//! A run gets its own temp dir (overlay disk, sockets, console log) that is removed when the
//! [`Vm`] is dropped; QEMU is killed then too. The cached raw image is never written: a cold
//! boot runs on a fresh qcow2 overlay, a warm start on a copy of the image's warm snapshot (an
//! overlay holding `savevm ready`, taken after the first cold boot reached the bootstrap).
//!
//! Each file owns one part: `options` (what a caller chooses, what it learns), `error`,
//! `launch` (one start, warm or cold, with the accelerator chosen in `accel`), `instance` (the
//! running QEMU and its files), `channel` (the agent port as lines), `bootstrap` (the guest
//! init's protocol up to the agent's hello), `request` (requests to the agent), `snapshot`,
//! `payload` and `version`; [`qemu`] builds the command line, [`monitor`] speaks QMP.

mod accel;
mod bootstrap;
mod channel;
mod error;
mod instance;
mod launch;
pub mod monitor;
mod options;
mod payload;
pub mod qemu;
mod request;
mod snapshot;
mod version;

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::image::command::tail_lines;
use crate::image::{Image, Progress};
use channel::Channel;
pub use error::VmError;
use instance::Guest;
pub use launch::remove_own_run_dirs;
use monitor::Monitor;
pub use options::{AccelChoice, BootInfo, StartKind, VmOptions, WarmPolicy};
pub use qemu::{Accel, LaunchSpec, QemuChild, DEFAULT_MACHINE, PAYLOAD_CAPACITY};
pub use request::Wait;

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

impl Vm {
    /// Boots `image` (warm when it can) and starts the agent in it.
    pub fn start(image: &Image, options: &VmOptions, progress: &Progress) -> Result<Self, VmError> {
        launch::start(image, options, progress)
    }

    pub fn info(&self) -> &BootInfo {
        &self.info
    }

    /// The run's temp dir (overlay, sockets, console log); it is removed when the VM is dropped.
    pub fn run_dir(&self) -> &Path {
        self.guest.dir.path()
    }

    /// The last lines the guest wrote to its serial console.
    pub fn console_tail(&self, lines: usize) -> String {
        tail_lines(&self.guest.console, lines)
    }
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
