//! Cost of collecting one step's SELinux records from the audit log, by log size.
//!
//! Each log is realistic auditd output (SYSCALL/AVC/PROCTITLE/USER_AVC/SERVICE lines as the
//! Debian 12 guest writes them) of 1 MB, 100 MB and, with `BENCH_AVC_1GB=1`, 1 GB. A step's
//! records (its AVCs, some noise, surrounding SYSCALL lines) are appended at the end, the way
//! they would arrive while the step runs.
//!
//! `harness/<size>` times what the executor does for a step: `AuditLog::open` + `offset()`
//! before the step, then `records_since(offset)` + `NoiseFilter::apply` after it (appending
//! the step's records and cutting them off again are not timed).
//! `ausearch/<size>` runs `ausearch -m AVC,USER_AVC,SELINUX_ERR -ts <step start> -if LOG`
//! (the date in the C locale's `%x` form: ausearch rejects a four-digit year there).
//! At the end a side-by-side table (medians of the same run) is printed.
//!
//! Run: `cargo bench -p selinux-harness --bench avc_collect` (`BENCH_AVC_1GB=1` for 1 GB,
//! `BENCH_AVC_DIR=DIR` to keep the generated logs there and reuse them).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use selinux_harness::evidence::audit::{AuditLog, NoiseFilter};

/// Epoch seconds of the first base record.
const BASE_EPOCH: u64 = 1_795_600_000;
/// The step's records: later than every base record of every size.
const STEP_EPOCH: u64 = BASE_EPOCH + 10_000_000;
const MB: u64 = 1 << 20;

fn sizes() -> Vec<(&'static str, u64)> {
    let mut v = vec![("1MB", MB), ("100MB", 100 * MB)];
    if std::env::var_os("BENCH_AVC_1GB").is_some_and(|v| v != "0") {
        v.push(("1GB", 1024 * MB));
    }
    v
}

/// One auditd event (several lines) at time `t`.ms with serial `serial`.
fn base_event(out: &mut impl Write, i: u64, t: u64, ms: u64, serial: u64) -> std::io::Result<()> {
    let pid = 400 + i % 3000;
    match i % 8 {
        // A denial with its SYSCALL, CWD, PATH and PROCTITLE, as auditd writes them.
        0 => write!(
            out,
            "type=AVC msg=audit({t}.{ms:03}:{serial}): avc:  denied  {{ read }} for  pid={pid} comm=\"qemu-system-x86\" name=\"vm{n}.img\" dev=\"vda\" ino={ino} scontext=system_u:system_r:svirt_t:s0:c{c1},c{c2} tcontext=system_u:object_r:svirt_image_t:s0:c1,c2 tclass=file permissive=0\n\
type=SYSCALL msg=audit({t}.{ms:03}:{serial}): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=7ffd2c1e5f30 a2=80000 a3=0 items=1 ppid=1 pid={pid} auid=4294967295 uid=64055 gid=64055 euid=64055 suid=64055 fsuid=64055 egid=64055 sgid=64055 fsgid=64055 tty=(none) ses=4294967295 comm=\"qemu-system-x86\" exe=\"/usr/bin/qemu-system-x86_64\" subj=system_u:system_r:svirt_t:s0:c{c1},c{c2} key=(null)\n\
type=CWD msg=audit({t}.{ms:03}:{serial}): cwd=\"/\"\n\
type=PATH msg=audit({t}.{ms:03}:{serial}): item=0 name=\"/var/lib/libvirt/images/vm{n}.img\" inode={ino} dev=fe:00 mode=0100600 ouid=64055 ogid=64055 rdev=00:00 obj=system_u:object_r:svirt_image_t:s0:c1,c2 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n\
type=PROCTITLE msg=audit({t}.{ms:03}:{serial}): proctitle=2F7573722F62696E2F71656D752D73797374656D2D7838365F3634002D6E616D650067756573743D766D31\n",
            n = i % 7,
            ino = 23000 + i % 500,
            c1 = i % 500,
            c2 = 500 + i % 500,
        ),
        // Boot noise: udev.
        1 => write!(
            out,
            "type=AVC msg=audit({t}.{ms:03}:{serial}): avc:  denied  {{ write }} for  pid={pid} comm=\"systemd-udevd\" name=\"uevent\" dev=\"sysfs\" ino=1234 scontext=system_u:system_r:udev_t:s0-s0:c0.c1023 tcontext=system_u:object_r:sysfs_t:s0 tclass=file permissive=0\n\
type=SYSCALL msg=audit({t}.{ms:03}:{serial}): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=55d0c a2=80241 a3=1b6 items=0 ppid=1 pid={pid} auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"systemd-udevd\" exe=\"/usr/lib/systemd/systemd-udevd\" subj=system_u:system_r:udev_t:s0-s0:c0.c1023 key=(null)\n"
        ),
        // libvirtd asks logind for an inhibitor (USER_AVC through dbus).
        2 => writeln!(
            out,
            "type=USER_AVC msg=audit({t}.{ms:03}:{serial}): pid=312 uid=101 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  {{ send_msg }} for msgtype=method_call interface=org.freedesktop.login1.Manager member=Inhibit dest=org.freedesktop.login1 spid={pid} tpid=290 scontext=system_u:system_r:virtd_t:s0-s0:c0.c1023 tcontext=system_u:system_r:systemd_logind_t:s0 tclass=dbus permissive=0  exe=\"/usr/bin/dbus-daemon\" sauid=101 hostname=? addr=? terminal=?'"
        ),
        // execmem for virsh (libvirt client libraries).
        3 => write!(
            out,
            "type=AVC msg=audit({t}.{ms:03}:{serial}): avc:  denied  {{ execmem }} for  pid={pid} comm=\"virsh\" scontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tcontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tclass=process permissive=0\n\
type=SYSCALL msg=audit({t}.{ms:03}:{serial}): arch=c000003e syscall=10 success=no exit=-13 a0=7f1c2a000000 a1=1000 a2=7 a3=0 items=0 ppid=255 pid={pid} auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=ttyS0 ses=1 comm=\"virsh\" exe=\"/usr/bin/virsh\" subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key=(null)\n"
        ),
        // Non-SELinux records that make up most of a busy log.
        4 => writeln!(
            out,
            "type=SERVICE_START msg=audit({t}.{ms:03}:{serial}): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='unit=libvirtd comm=\"systemd\" exe=\"/usr/lib/systemd/systemd\" hostname=? addr=? terminal=? res=success'"
        ),
        5 => writeln!(
            out,
            "type=VIRT_RESOURCE msg=audit({t}.{ms:03}:{serial}): pid=380 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:virtd_t:s0-s0:c0.c1023 msg='virt=qemu resrc=disk reason=start vm=\"selinux-harness-f0{i:x}-vm1\" uuid=7d3c1c0e-6a33-4d5a-9b7e-2b8f54a1c0de old-disk=\"?\" new-disk=\"/var/lib/libvirt/images/selinux-harness-f0{i:x}/vm1.img\" exe=\"/usr/sbin/libvirtd\" hostname=? addr=? terminal=? res=success'"
        ),
        6 => write!(
            out,
            "type=ANOM_PROMISCUOUS msg=audit({t}.{ms:03}:{serial}): dev=vnet{n} prom=256 old_prom=0 auid=4294967295 uid=0 gid=0 ses=4294967295\n\
type=SYSCALL msg=audit({t}.{ms:03}:{serial}): arch=c000003e syscall=16 success=yes exit=0 a0=1f a1=8914 a2=7ffd a3=0 items=0 ppid=1 pid=380 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"rpc-worker\" exe=\"/usr/sbin/libvirtd\" subj=system_u:system_r:virtd_t:s0-s0:c0.c1023 key=(null)\n",
            n = i % 4,
        ),
        _ => writeln!(
            out,
            "type=AVC msg=audit({t}.{ms:03}:{serial}): avc:  denied  {{ create }} for  pid={pid} comm=\"qemu-system-x86\" anonclass=[io_uring] scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:svirt_t:s0:c3,c4 tclass=anon_inode permissive=0"
        ),
    }
}

/// The records one step adds (the remember_owner=0 cross-attach: vm1's QEMU denied its image,
/// plus noise): 2 SELinux records kept, 3 filtered as noise (execmem, io_uring, logind).
fn step_records(t: u64, serial: u64) -> String {
    let mut s = Vec::new();
    for (k, i) in [0u64, 3, 7, 0, 2].into_iter().enumerate() {
        let k = k as u64;
        base_event(&mut s, i, t + k / 4, (k * 37) % 1000, serial + k).expect("in memory");
    }
    String::from_utf8(s).expect("ascii")
}

/// A log of at least `size` bytes (kept if it already exists, for `BENCH_AVC_DIR`).
fn generate(path: &Path, size: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= size) {
        return;
    }
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create log"));
    let (mut written, mut i) = (0u64, 0u64);
    let mut line = Vec::with_capacity(4096);
    while written < size {
        line.clear();
        // 20 events a second: a 1 GB log spans about two days.
        base_event(&mut line, i, BASE_EPOCH + i / 20, (i * 7) % 1000, 100 + i).expect("mem");
        out.write_all(&line).expect("write log");
        written += line.len() as u64;
        i += 1;
    }
    out.flush().expect("flush log");
}

struct Log {
    label: &'static str,
    path: PathBuf,
    base_len: u64,
    step: String,
    step_start: u64,
}

impl Log {
    fn append_step(&self) {
        let mut f = OpenOptions::new().append(true).open(&self.path).unwrap();
        f.write_all(self.step.as_bytes()).unwrap();
    }

    fn cut_step(&self) {
        let f = OpenOptions::new().write(true).open(&self.path).unwrap();
        f.set_len(self.base_len).unwrap();
    }

    /// What the executor does around one step; returns (time, records kept, filtered).
    fn harness_collect(&self, filter: &NoiseFilter) -> (Duration, usize, usize) {
        let t0 = Instant::now();
        let mut log = AuditLog::open(&self.path).unwrap();
        let offset = log.offset().unwrap();
        let before = t0.elapsed();
        self.append_step();
        let t1 = Instant::now();
        let records = log.records_since(offset).unwrap();
        let filtered = filter.apply(records);
        let after = t1.elapsed();
        self.cut_step();
        (before + after, filtered.kept.len(), filtered.filtered)
    }

    /// `ausearch` over the whole log with the step's records in it; returns (time, records).
    fn ausearch(&self) -> (Duration, usize) {
        self.append_step();
        let ts = Command::new("date")
            .args(["-d", &format!("@{}", self.step_start), "+%x %H:%M:%S"])
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let ts = String::from_utf8_lossy(&ts.stdout).trim().to_string();
        let (date, time) = ts.split_once(' ').unwrap();
        let t0 = Instant::now();
        let out = Command::new("ausearch")
            .args(["-m", "AVC,USER_AVC,SELINUX_ERR", "-ts", date, time, "-if"])
            .arg(&self.path)
            .env("LC_ALL", "C")
            .output()
            .expect("ausearch (apt-get install auditd)");
        let elapsed = t0.elapsed();
        self.cut_step();
        let text = String::from_utf8_lossy(&out.stdout);
        let n = text
            .lines()
            .filter(|l| {
                l.starts_with("type=AVC")
                    || l.starts_with("type=USER_AVC")
                    || l.starts_with("type=SELINUX_ERR")
            })
            .count();
        (elapsed, n)
    }
}

fn logs() -> (Option<tempfile::TempDir>, Vec<Log>) {
    let (tmp, dir) = match std::env::var_os("BENCH_AVC_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            (None, PathBuf::from(d))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("avc-bench.")
                .tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))
                .unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let logs = sizes()
        .into_iter()
        .map(|(label, size)| {
            let path = dir.join(format!("audit-{label}.log"));
            let t = Instant::now();
            generate(&path, size);
            let base_len = std::fs::metadata(&path).unwrap().len();
            eprintln!(
                "avc_collect: {label} log ready ({base_len} bytes, {:.1} s)",
                t.elapsed().as_secs_f64()
            );
            Log {
                label,
                path,
                base_len,
                step: step_records(STEP_EPOCH, 90_000_000),
                step_start: STEP_EPOCH,
            }
        })
        .collect();
    (tmp, logs)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let (_tmp, logs) = logs();
    let filter = NoiseFilter::defaults("selinux-harness");
    let mut g = c.benchmark_group("avc_collect/harness");
    for log in &logs {
        g.bench_with_input(BenchmarkId::from_parameter(log.label), log, |b, log| {
            b.iter_custom(|iters| (0..iters).map(|_| log.harness_collect(&filter).0).sum())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("avc_collect/ausearch");
    g.sample_size(10);
    g.sampling_mode(criterion::SamplingMode::Flat);
    for log in &logs {
        g.bench_with_input(BenchmarkId::from_parameter(log.label), log, |b, log| {
            b.iter_custom(|iters| (0..iters).map(|_| log.ausearch().0).sum())
        });
    }
    g.finish();

    // Side by side, same process, same logs: medians over a few repetitions each.
    let reps: usize = std::env::var("BENCH_AVC_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!();
    println!(
        "avc_collect side by side (median of {reps}; one step's records at the end of the log)"
    );
    println!(
        "| log | harness open+offset+records_since+filter | records kept/filtered | ausearch -m AVC,USER_AVC,SELINUX_ERR -ts | records | ausearch / harness |"
    );
    println!("|---|---|---|---|---|---|");
    for log in &logs {
        let h: Vec<_> = (0..reps).map(|_| log.harness_collect(&filter)).collect();
        let (kept, filtered) = (h[0].1, h[0].2);
        let h = median(h.into_iter().map(|x| x.0).collect());
        let a: Vec<_> = (0..reps).map(|_| log.ausearch()).collect();
        let n = a[0].1;
        let a = median(a.into_iter().map(|x| x.0).collect());
        println!(
            "| {} ({} bytes) | {:.3} ms | {kept}/{filtered} | {:.1} ms | {n} | {:.0}x |",
            log.label,
            log.base_len,
            h.as_secs_f64() * 1e3,
            a.as_secs_f64() * 1e3,
            a.as_secs_f64() / h.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
