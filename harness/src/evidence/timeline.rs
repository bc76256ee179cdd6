//! Label timeline of watched files during a step.
//!
//! Before/after `ls -Z` misses a label that lives only while libvirt works (the seed replay:
//! vm1.img carried vm2's categories for ~0.23 s). A thread waits on inotify (IN_ATTRIB fires on
//! every setxattr) and reads the label after each event, recording each distinct value.
//!
//! Limit, inherent to inotify: the event says *that* an attribute changed, not the value. A
//! label that is replaced again before the thread reads it (typically tens of microseconds) is
//! not seen; `WatchReport::unexplained_events` counts attribute events after which the label
//! read was unchanged, a hint (not proof: chmod/chown/touch fire IN_ATTRIB too) that something
//! faster happened.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::context::Context;
use crate::evidence::LabelChange;

pub const SELINUX_XATTR: &str = "security.selinux";
/// The entry an inotify queue overflow leaves in every timeline of the watch.
pub const OVERFLOW: &str = "inotify queue overflowed: label changes were missed";

/// Where a timeline could not see: samples that are errors (a label that could not be read,
/// "watcher stopped early", an inotify queue overflow), as "at N us: why". An absence
/// (`never_level`) is proven only by a timeline without any.
pub fn blind_spots(changes: &[LabelChange]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("at {} us: {e}", c.at_us)))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("inotify: {0}")]
    Inotify(Errno),
    #[error("watching {name} ({path}): {source}")]
    Watch {
        name: String,
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("starting the watcher thread: {0}")]
    Thread(std::io::Error),
}

/// Everything recorded for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchReport {
    pub name: String,
    pub changes: Vec<LabelChange>,
    /// Attribute/move/delete events seen.
    pub events: u64,
    /// Events after which the label read was the same as before (see the module doc).
    pub unexplained_events: u64,
    /// The file's inode when the watch began: the key of the kernel's relabel records
    /// (`relabels`). None when it could not be read.
    pub ino: Option<u64>,
}

struct Watched {
    path: PathBuf,
    wd: Option<WatchDescriptor>,
    report: WatchReport,
}

struct State {
    start: Instant,
    /// `start` on the wall clock, as the kernel stamps its audit records.
    started_unix_us: u64,
    xattr: String,
    files: Vec<Watched>,
}

impl State {
    /// Read the label now; record it if it differs from the last value. Returns whether it did.
    fn sample(&mut self, i: usize) -> bool {
        let at_us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let w = &mut self.files[i];
        let (context, error) = read_label(&w.path, &self.xattr);
        let same = w
            .report
            .changes
            .last()
            .is_some_and(|l| l.context == context && l.error == error);
        if !same {
            w.report.changes.push(LabelChange {
                at_us,
                context,
                error,
            });
        }
        !same
    }
}

fn read_label(path: &Path, xattr: &str) -> (Option<Context>, Option<String>) {
    match crate::selinux_ops::get_xattr(path, xattr, true) {
        Ok(Some(bytes)) => match Context::from_kernel_bytes(&bytes) {
            Ok(c) => (Some(c), None),
            Err(e) => (
                None,
                Some(format!(
                    "unparseable label {:?}: {e}",
                    String::from_utf8_lossy(&bytes)
                )),
            ),
        },
        Ok(None) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Counts samples taken, so a caller (a test) can wait until the watcher has looked.
#[derive(Default)]
struct Progress {
    samples: Mutex<u64>,
    cond: Condvar,
}

impl Progress {
    fn bump(&self) {
        let mut n = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        self.cond.notify_all();
    }
}

/// A running label watch. Call `finish` at the end of the step.
pub struct Timeline {
    /// When the watch began, in microseconds since the epoch: the kernel's relabel records
    /// are placed on the timeline by their wall-clock stamp.
    pub started_unix_us: u64,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<Vec<WatchReport>>>,
    progress: Arc<Progress>,
}

impl Timeline {
    /// Start watching `files` (scenario name, path); `xattr` is normally `SELINUX_XATTR`.
    /// The label at start is read before this returns, after the watches are in place, so no
    /// change between the two is lost.
    pub fn watch(files: &[(String, PathBuf)], xattr: &str) -> Result<Timeline, TimelineError> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(TimelineError::Inotify)?;
        let mask =
            AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_DELETE_SELF;
        let mut state = State {
            start: Instant::now(),
            started_unix_us: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            xattr: xattr.to_string(),
            files: Vec::with_capacity(files.len()),
        };
        for (name, path) in files {
            let wd =
                inotify
                    .add_watch(path.as_path(), mask)
                    .map_err(|source| TimelineError::Watch {
                        name: name.clone(),
                        path: path.clone(),
                        source,
                    })?;
            state.files.push(Watched {
                path: path.clone(),
                wd: Some(wd),
                report: WatchReport {
                    name: name.clone(),
                    changes: Vec::new(),
                    events: 0,
                    unexplained_events: 0,
                    ino: std::fs::metadata(path)
                        .ok()
                        .map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
                },
            });
        }
        for i in 0..state.files.len() {
            state.sample(i);
        }
        let started_unix_us = state.started_unix_us;
        let (stop_r, stop_w) = nix::unistd::pipe().map_err(TimelineError::Inotify)?;
        let progress = Arc::new(Progress::default());
        let p = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("label-timeline".into())
            .spawn(move || run(inotify, stop_r, state, &p))
            .map_err(TimelineError::Thread)?;
        Ok(Timeline {
            started_unix_us,
            stop: Some(stop_w),
            thread: Some(thread),
            progress,
        })
    }

    /// Stop watching, read every label a last time, and hand back the timelines in the order
    /// the files were given.
    pub fn finish(mut self) -> Vec<(String, Vec<LabelChange>)> {
        self.finish_report()
            .into_iter()
            .map(|r| (r.name, r.changes))
            .collect()
    }

    /// Like `finish`, with event counts.
    pub fn finish_report(&mut self) -> Vec<WatchReport> {
        // Closing the write end makes the read end readable (EOF): the thread's stop signal.
        drop(self.stop.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(reports)) => reports,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Vec::new(),
        }
    }

    /// Block until the watcher has taken more than `n` samples after start (or `timeout`
    /// passed). Returns the count. For tests that need to know the watcher has looked.
    pub fn wait_samples_above(&self, n: u64, timeout: Duration) -> u64 {
        let guard = self
            .progress
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .progress
            .cond
            .wait_timeout_while(guard, timeout, |s| *s <= n)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(inotify: Inotify, stop: OwnedFd, mut state: State, progress: &Progress) -> Vec<WatchReport> {
    loop {
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                // Without the poll nothing more can be observed; say so in every timeline.
                for w in &mut state.files {
                    w.report.changes.push(LabelChange {
                        at_us: u64::try_from(state.start.elapsed().as_micros()).unwrap_or(u64::MAX),
                        context: None,
                        error: Some(format!("watcher stopped early: poll: {e}")),
                    });
                }
                break;
            }
        }
        let stopping = fds[1].revents().is_some_and(|r| !r.is_empty());
        // Events first: a change just before the stop belongs to the step.
        drain(&inotify, &mut state, progress);
        if stopping {
            break;
        }
    }
    drain(&inotify, &mut state, progress);
    for i in 0..state.files.len() {
        state.sample(i);
    }
    state.files.into_iter().map(|w| w.report).collect()
}

fn drain(inotify: &Inotify, state: &mut State, progress: &Progress) {
    loop {
        let events = match inotify.read_events() {
            Ok(ev) if !ev.is_empty() => ev,
            Ok(_) | Err(Errno::EAGAIN) => return,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        for ev in events {
            if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                // Events were dropped: any file may have carried labels nobody read.
                let at_us = u64::try_from(state.start.elapsed().as_micros()).unwrap_or(u64::MAX);
                for w in &mut state.files {
                    w.report.changes.push(LabelChange {
                        at_us,
                        context: None,
                        error: Some(OVERFLOW.to_string()),
                    });
                }
                continue;
            }
            let Some(i) = state.files.iter().position(|w| w.wd == Some(ev.wd)) else {
                continue;
            };
            if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                state.files[i].wd = None;
                continue;
            }
            state.files[i].report.events += 1;
            if !state.sample(i) {
                state.files[i].report.unexplained_events += 1;
            }
            progress.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::labels;
    use crate::selinux_ops::set_xattr;

    const A: &str = "system_u:object_r:svirt_image_t:s0:c146,c1010";
    const B: &str = "system_u:object_r:svirt_image_t:s0:c161,c423";
    const C: &str = "system_u:object_r:virt_image_t:s0";
    const ATTR: &str = "user.test";

    /// A file on a filesystem that takes user.* xattrs (tmpfs >= 6.6, ext4).
    fn file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, b"").unwrap();
        p
    }

    fn tmp() -> tempfile::TempDir {
        for base in ["/dev/shm", "/tmp"] {
            if let Ok(d) = tempfile::tempdir_in(base) {
                let p = file(&d, "probe");
                if set_xattr(&p, ATTR, b"x").is_ok() {
                    return d;
                }
            }
        }
        panic!("no filesystem with user xattrs");
    }

    fn set(p: &Path, v: &str) {
        // Written with the trailing NUL, as the kernel stores security.selinux.
        let mut b = v.as_bytes().to_vec();
        b.push(0);
        set_xattr(p, ATTR, &b).unwrap();
    }

    #[test]
    fn transient_label_is_captured_in_order() {
        let dir = tmp();
        let img = file(&dir, "vm1.img");
        set(&img, A);
        let tl = Timeline::watch(&[("vm1.img".into(), img.clone())], ATTR).unwrap();
        let t = Instant::now();
        set(&img, B);
        // Hold B only until the watcher has read once after the change, then put A back.
        tl.wait_samples_above(0, Duration::from_secs(5));
        set(&img, A);
        let held = t.elapsed();
        let out = tl.finish();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "vm1.img");
        assert_eq!(labels(&out[0].1), [A, B, A], "B held {held:?}");
        let at: Vec<u64> = out[0].1.iter().map(|c| c.at_us).collect();
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
        eprintln!("transient label held for {held:?}");
    }

    #[test]
    fn a_label_living_20ms_is_seen_without_any_handshake() {
        // libvirt's transient label lived ~230 ms; 20 ms leaves the watcher thread a wide margin
        // to be scheduled even on a loaded 2-core machine.
        let dir = tmp();
        let img = file(&dir, "img");
        set(&img, A);
        let tl = Timeline::watch(&[("img".into(), img.clone())], ATTR).unwrap();
        set(&img, B);
        std::thread::sleep(Duration::from_millis(20));
        set(&img, C);
        let out = tl.finish();
        assert_eq!(labels(&out[0].1), [A, B, C]);
    }

    #[test]
    fn unchanged_label_adds_nothing_but_is_counted() {
        let dir = tmp();
        let img = file(&dir, "img");
        set(&img, A);
        let mut tl = Timeline::watch(&[("img".into(), img.clone())], ATTR).unwrap();
        // chmod fires IN_ATTRIB without touching the label.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o600)).unwrap();
        tl.wait_samples_above(0, Duration::from_secs(5));
        let r = tl.finish_report();
        assert_eq!(labels(&r[0].changes), [A]);
        assert!(r[0].events >= 1);
        assert_eq!(r[0].unexplained_events, r[0].events);
    }

    #[test]
    fn several_files_deletion_and_no_label() {
        let dir = tmp();
        let a = file(&dir, "a");
        let b = file(&dir, "b");
        set(&a, A);
        let tl =
            Timeline::watch(&[("a".into(), a.clone()), ("b".into(), b.clone())], ATTR).unwrap();
        set(&b, C);
        tl.wait_samples_above(0, Duration::from_secs(5));
        std::fs::remove_file(&a).unwrap();
        tl.wait_samples_above(1, Duration::from_secs(5));
        let out = tl.finish();
        assert_eq!(out[0].0, "a");
        let a_labels = labels(&out[0].1);
        assert_eq!(a_labels[0], A);
        assert_eq!(a_labels.len(), 2, "{a_labels:?}");
        assert!(a_labels[1].contains("No such file"), "{a_labels:?}");
        assert_eq!(out[1].0, "b");
        assert_eq!(labels(&out[1].1), ["none", C]);
    }

    #[test]
    fn errors_overflows_and_an_early_stop_are_blind_spots() {
        let ok = LabelChange {
            at_us: 0,
            context: Some(A.parse().unwrap()),
            error: None,
        };
        assert!(blind_spots(std::slice::from_ref(&ok)).is_empty());
        let gap = |at_us, e: &str| LabelChange {
            at_us,
            context: None,
            error: Some(e.into()),
        };
        let spots = blind_spots(&[
            ok,
            gap(10, OVERFLOW),
            gap(20, "watcher stopped early: poll: EBADF"),
        ]);
        assert_eq!(
            spots,
            [
                format!("at 10 us: {OVERFLOW}"),
                "at 20 us: watcher stopped early: poll: EBADF".to_string()
            ]
        );
    }

    #[test]
    fn missing_file_is_an_error_at_start() {
        let err = Timeline::watch(&[("x".into(), PathBuf::from("/nonexistent/x"))], ATTR);
        assert!(matches!(err, Err(TimelineError::Watch { .. })));
    }

    #[test]
    fn finish_without_changes_returns_start_label() {
        let dir = tmp();
        let img = file(&dir, "img");
        set(&img, "not a context");
        let out = Timeline::watch(&[("img".into(), img)], ATTR)
            .unwrap()
            .finish();
        let l = labels(&out[0].1);
        assert_eq!(l.len(), 1);
        assert!(l[0].starts_with("error: unparseable label"), "{l:?}");
    }
}
