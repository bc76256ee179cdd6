//! Progress for the long steps: a spinner with the phase and the elapsed time on a terminal,
//! plain timestamped lines otherwise (CI logs).

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    quiet: bool,
    /// Plain-line mode prints a phase only when it changes.
    last_phase: RefCell<String>,
}

impl Progress {
    /// Spinner if stderr is a terminal, plain lines if not.
    pub fn stderr() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            // The template is a constant: a failure here is a programming error caught by tests.
            if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed:>4}] {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            quiet: false,
            last_phase: RefCell::default(),
        }
    }

    /// Reports nothing (tests, library callers with their own reporting).
    pub fn hidden() -> Self {
        Self {
            bar: None,
            started: Instant::now(),
            quiet: true,
            last_phase: RefCell::default(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The step now running.
    pub fn phase(&self, message: impl Into<String>) {
        let message = message.into();
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => {
                if *self.last_phase.borrow() != message {
                    self.line(&message);
                    *self.last_phase.borrow_mut() = message;
                }
            }
        }
    }

    /// A line that stays (a result, a note), above the spinner.
    pub fn note(&self, message: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(format!("[{:>6.1}s] {}", self.secs(), message.as_ref())),
            None => self.line(message.as_ref()),
        }
    }

    /// Removes the spinner (the caller prints the result).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn line(&self, message: &str) {
        if !self.quiet {
            eprintln!("[{:>6.1}s] {message}", self.secs());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
