//! The relabel-catch measurement the conformance suite runs in the VM (`Fault::
//! TransientRelabels`): inside a step's label timeline, relabel a watched image to a fresh label
//! and back `per_hold` times for each hold time, and count how many of those short-lived labels
//! the kernel's relabel records show and how many an inotify watcher of its own read. The step's
//! merged timeline must then hold every one of them without a gap (the scenario's `never_level`
//! passes only so), and the note says the counts side by side.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::evidence::audit::AuditLog;
use crate::evidence::relabels;
use crate::evidence::timeline::{Timeline, SELINUX_XATTR};

/// Why the measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("{0} transient labels: at most 400 category pairs")]
    TooMany(usize),
    #[error("transient label {index}: {why}")]
    Label { index: usize, why: String },
    #[error("{path}: {why}")]
    Image {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("audit log: {0}")]
    Audit(#[from] crate::evidence::audit::AuditError),
    #[error("watching the image: {0}")]
    Watch(#[from] crate::evidence::timeline::TimelineError),
}

/// The hold times of the timeline benchmark (harness/benches/timeline_latency.rs).
pub const HOLD_US: [u64; 4] = [0, 10, 100, 1000];

fn spin(us: u64) {
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// The i-th transient label: svirt_image_t at a category pair no scenario uses.
fn transient(index: usize) -> Result<Context, MeasureError> {
    format!(
        "system_u:object_r:svirt_image_t:s0:c{},c{}",
        100 + index,
        600 + index
    )
    .parse()
    .map_err(|e: crate::context::ParseError| MeasureError::Label {
        index,
        why: e.to_string(),
    })
}

/// Run the measurement on `image`; returns the note (what was done and caught).
pub fn measure(image: &Path, audit_log: &Path, per_hold: u32) -> Result<String, MeasureError> {
    let n = HOLD_US.len() * per_hold as usize;
    if n > 400 {
        return Err(MeasureError::TooMany(n));
    }
    let bad = |why: String| MeasureError::Image {
        path: image.to_path_buf(),
        why,
    };
    let home = crate::selinux_ops::file_context(image)
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no label".into()))?;
    let mut log = AuditLog::open(audit_log)?;
    let offset = log.offset()?;
    let mut watcher = Timeline::watch(&[("img".into(), image.to_path_buf())], SELINUX_XATTR)?;
    let mut labels = Vec::with_capacity(n);
    for (h, hold) in HOLD_US.iter().enumerate() {
        for t in 0..per_hold as usize {
            let b = transient(h * per_hold as usize + t)?;
            crate::selinux_ops::set_file_context(image, &b).map_err(|e| bad(e.to_string()))?;
            spin(*hold);
            crate::selinux_ops::set_file_context(image, &home).map_err(|e| bad(e.to_string()))?;
            labels.push((*hold, b));
            // Let the watcher come back to poll() between trials, as in the benchmark.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let seen = watcher
        .finish_report()
        .pop()
        .map(|r| r.changes)
        .unwrap_or_default();
    let marker = format!("selinux-harness:relabel-catch:{}", std::process::id());
    log.barrier(offset, &marker, Duration::from_secs(10))?;
    let records = log.records_since(offset)?;
    let kernel = relabels::pair(&records);
    let ino = std::fs::metadata(image)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .map_err(|e| bad(e.to_string()))?;
    let mut rows = Vec::new();
    let mut kernel_total = 0;
    for hold in HOLD_US {
        let mine: Vec<&Context> = labels
            .iter()
            .filter(|(h, _)| *h == hold)
            .map(|(_, b)| b)
            .collect();
        let by_kernel = mine
            .iter()
            .filter(|b| kernel.relabels.iter().any(|k| k.ino == ino && &&k.to == *b))
            .count();
        let by_inotify = mine
            .iter()
            .filter(|b| seen.iter().any(|c| c.context.as_ref() == Some(**b)))
            .count();
        kernel_total += by_kernel;
        rows.push(format!(
            "{hold} us: kernel {by_kernel}/{}, inotify {by_inotify}/{}",
            mine.len(),
            mine.len()
        ));
    }
    Ok(format!(
        "fault injected: {n} transient relabels of {} (and back to {home}); caught: {}; kernel records caught {kernel_total} of {n}",
        image.display(),
        rows.join("; ")
    ))
}
