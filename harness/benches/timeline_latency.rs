//! The shortest transient relabel the label timeline catches.
//!
//! On a tmpfs file (default /dev/shm; `BENCH_TIMELINE_DIR` to change) carrying the label in a
//! `user.*` xattr (this host has no SELinux), each trial starts a `Timeline` on the file, writes
//! label B, busy-waits N microseconds, writes label A back, lets the watcher catch up and
//! finishes the timeline. The trial is caught when the timeline recorded B. Prints the catch
//! rate per N, plus the `unexplained_events` the watcher counted for the trials it missed.
//!
//! Run: `cargo bench -p selinux-harness --bench timeline_latency`
//! (`BENCH_TIMELINE_TRIALS=500` for more trials per N; default 200).
//!
//! The kernel's relabel records (the image's harness_relabel_audit module) need an enforcing
//! kernel: on such a host, `BENCH_TIMELINE_KERNEL=/path/to/file` (a virt image file, e.g. under
//! /var/lib/libvirt/images) adds the kernel-record catch rate at 0, 10, 100 and 1000 us beside
//! inotify's, measured by `run::fault_relabels::measure` on the real security.selinux. On the
//! VM that measurement is the conformance trial `fault::timeline-catches-every-relabel`, whose
//! note prints both counts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use selinux_harness::context::Context;
use selinux_harness::evidence::timeline::Timeline;
use selinux_harness::selinux_ops::set_xattr;

const XATTR: &str = "user.selinux-harness-bench";
const LABEL_A: &str = "system_u:object_r:svirt_image_t:s0:c146,c1010";
const LABEL_B: &str = "system_u:object_r:svirt_image_t:s0:c161,c423";
const HOLD_US: [u64; 7] = [0, 10, 50, 100, 500, 1000, 5000];

fn spin(us: u64) {
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

struct Row {
    hold_us: u64,
    caught: u32,
    trials: u32,
    /// Measured time B was in place (from before its setxattr to after A's), median.
    actual_us: u64,
    missed_with_hint: u32,
}

fn trial(path: &Path, hold_us: u64, b: &Context) -> (bool, u64, bool) {
    set_xattr(path, XATTR, LABEL_A.as_bytes()).expect("set A");
    let mut tl = Timeline::watch(&[("f".to_string(), path.to_path_buf())], XATTR).expect("watch");
    // The watcher read the starting label in `watch`; give its thread time to reach poll().
    tl.wait_samples_above(0, Duration::from_millis(10));
    let t0 = Instant::now();
    set_xattr(path, XATTR, LABEL_B.as_bytes()).expect("set B");
    spin(hold_us);
    set_xattr(path, XATTR, LABEL_A.as_bytes()).expect("restore A");
    let actual = t0.elapsed().as_micros() as u64;
    std::thread::sleep(Duration::from_millis(2));
    let reports = tl.finish_report();
    let r = &reports[0];
    let caught = r.changes.iter().any(|c| c.context.as_ref() == Some(b));
    (caught, actual, !caught && r.unexplained_events > 0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing special: run only
    // when benchmarking, so the test run stays fast.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("timeline_latency: run with `cargo bench --bench timeline_latency`");
        return;
    }
    let trials: u32 = std::env::var("BENCH_TIMELINE_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = std::env::var_os("BENCH_TIMELINE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/dev/shm".into());
    let tmp = tempfile::Builder::new()
        .prefix("timeline-bench.")
        .tempdir_in(&dir)
        .expect("temp dir");
    let path = tmp.path().join("vm1.img");
    std::fs::write(&path, b"").expect("create file");
    let b: Context = LABEL_B.parse().expect("label B");

    let mut rows = Vec::new();
    for hold_us in HOLD_US {
        let mut caught = 0;
        let mut hints = 0;
        let mut actual = Vec::new();
        for _ in 0..trials {
            let (c, a, hint) = trial(&path, hold_us, &b);
            caught += u32::from(c);
            hints += u32::from(hint);
            actual.push(a);
        }
        actual.sort_unstable();
        rows.push(Row {
            hold_us,
            caught,
            trials,
            actual_us: actual[actual.len() / 2],
            missed_with_hint: hints,
        });
    }

    if let Some(file) = std::env::var_os("BENCH_TIMELINE_KERNEL") {
        let per_hold = trials.min(100);
        match selinux_harness::run::fault_relabels::measure(
            Path::new(&file),
            Path::new("/var/log/audit/audit.log"),
            per_hold,
        ) {
            Ok(note) => println!("kernel relabel records vs inotify, security.selinux: {note}"),
            Err(e) => println!("kernel relabel records: cannot measure: {e}"),
        }
    } else {
        println!("kernel relabel records: not measured (needs an enforcing kernel; BENCH_TIMELINE_KERNEL=FILE, or the VM trial fault::timeline-catches-every-relabel)");
    }

    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(tmp.path())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "timeline_latency: {trials} trials per N on {} ({fs}), xattr {XATTR}",
        dir.display()
    );
    println!("| N (µs B held) | B actually in place (median µs) | caught | catch rate | missed, but an unexplained event hinted at it |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {}/{} | {:.1}% | {} |",
            r.hold_us,
            r.actual_us,
            r.caught,
            r.trials,
            100.0 * f64::from(r.caught) / f64::from(r.trials),
            r.missed_with_hint
        );
    }
}
