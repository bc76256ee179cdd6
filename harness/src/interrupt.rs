//! Ctrl-C and SIGTERM as a flag that long operations poll, so they unwind through `Drop`
//! (QEMU killed, temp dirs removed) instead of dying with children and files left behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// Shared "stop now" flag. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag nothing but [`Interrupt::trigger`] sets (tests, library callers with their own handling).
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes SIGINT and SIGTERM to this flag. Call it before any thread is started: the signals are
    /// blocked for the whole process and received by one dedicated thread with `sigwait`. A second
    /// signal exits at once (status 130) for when the cleanup itself hangs.
    ///
    /// Child processes spawned through `std::process::Command` start with an empty signal mask, so
    /// they still see the terminal's Ctrl-C themselves.
    pub fn on_signals() -> nix::Result<Self> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let flag = Self::new();
        let seen = flag.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                if let Ok(signal) = set.wait() {
                    if seen.is_set() {
                        eprintln!("selinux-harness: {signal} again, exiting without cleanup");
                        std::process::exit(130);
                    }
                    eprintln!(
                        "selinux-harness: {signal}, stopping and cleaning up (again to force)"
                    );
                    seen.trigger();
                }
            })
            .map_err(|_| nix::Error::EAGAIN)?;
        Ok(flag)
    }

    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
