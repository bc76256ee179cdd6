use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;
use crate::evidence::audit::parse_record;
use crate::scenario::LoadedScenario;

/// Lines recorded on the Debian 12 guest and in the seed report (the same as in
/// `audit/tests.rs`).
const SEED_WRITE: &str = r#"type=AVC msg=audit(1332310963.333:10313): avc:  denied  { write } for  pid=16241 comm="qemu-kvm" path="/var/lib/libvirt/images/vm1.img" dev=sda1 ino=6431944 scontext=system_u:system_r:svirt_t:s0:c219,c564 tcontext=system_u:object_r:svirt_image_t:s0:c122,c658 tclass=file"#;
const QEMU_IMAGE_READ: &str = r#"type=AVC msg=audit(1795653826.616:86): avc:  denied  { read } for  pid=518 comm="qemu-system-x86" name="mcs.img" dev="vda" ino=23181 scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:svirt_image_t:s0:c1,c2 tclass=file permissive=0"#;
const VM1_GETATTR: &str = r#"type=AVC msg=audit(1795653890.328:198): avc:  denied  { getattr } for  pid=835 comm="qemu-system-x86" path="/var/lib/libvirt/images/vm1.img" dev="vda" ino=23182 scontext=system_u:system_r:svirt_t:s0:c146,c1010 tcontext=system_u:object_r:virt_image_t:s0 tclass=file permissive=0"#;
const OWN_EXECMEM: &str = r#"type=AVC msg=audit(1795653900.100:210): avc:  denied  { execmem } for  pid=900 comm="selinux-harness" scontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tcontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tclass=process permissive=0"#;
const UDEV: &str = r#"type=AVC msg=audit(1795653800.948:6): avc:  denied  { setrlimit } for  pid=213 comm="systemd-udevd" scontext=system_u:system_r:udev_t:s0 tcontext=system_u:system_r:udev_t:s0 tclass=process permissive=0"#;
const DBUS_ENRICHED: &str = "type=USER_AVC msg=audit(1795653870.123:150): pid=210 uid=101 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { send_msg } for msgtype=method_call interface=org.freedesktop.login1.Manager member=Inhibit dest=org.freedesktop.login1 spid=771 tpid=284 scontext=system_u:system_r:virtd_t:s0-s0:c0.c1023 tcontext=system_u:system_r:systemd_logind_t:s0 tclass=dbus permissive=0  exe=\"/usr/bin/dbus-daemon\" sauid=101 hostname=? addr=? terminal=?'\x1dUID=\"messagebus\" AUID=\"unset\" SAUID=\"messagebus\"";
/// VM1_GETATTR as libvirtd (virtd_t, no MCS evidence) would log it for a file in run 1a's
/// sandbox: the recorded line with the subject and path changed.
const VIRTD_SANDBOX: &str = r#"type=AVC msg=audit(1795653890.328:199): avc:  denied  { getattr } for  pid=431 comm="rpc-virtqemud" path="/var/lib/libvirt/images/selinux-harness-1a/vm1.img" dev="vda" ino=23182 scontext=system_u:system_r:virtd_t:s0-s0:c0.c1023 tcontext=system_u:object_r:virt_image_t:s0 tclass=file permissive=0"#;
/// The same with the path in hex, as auditd writes a path with a space in it
/// ("/var/lib/libvirt/images/selinux-harness-1a/a b.img").
const VIRTD_SANDBOX_HEX: &str = r#"type=AVC msg=audit(1795653890.328:200): avc:  denied  { getattr } for  pid=431 comm="rpc-virtqemud" path=2F7661722F6C69622F6C6962766972742F696D616765732F73656C696E75782D6861726E6573732D31612F6120622E696D67 dev="vda" ino=23183 scontext=system_u:system_r:virtd_t:s0-s0:c0.c1023 tcontext=system_u:object_r:virt_image_t:s0 tclass=file permissive=0"#;

fn rec(line: &str) -> AvcRecord {
    parse_record(line).expect("a recorded SELinux line")
}

fn ctx(s: &str) -> Context {
    s.parse().expect("a valid context")
}

fn run(id: &str, levels: &[&str]) -> Identity {
    Identity {
        live_levels: levels.iter().map(|l| l.to_string()).collect(),
        ..Identity::new(id)
    }
}

fn kept_by(me: usize, runs: &[Identity], line: &str) -> bool {
    keep_for(Some(me), runs, vec![rec(line)]).0.len() == 1
}

#[test]
fn a_qemu_record_goes_to_the_run_of_its_level_only() {
    let runs = [run("1a", &["s0:c219,c564"]), run("2b", &["s0:c1,c2"])];
    assert_eq!(owners(&rec(SEED_WRITE), &runs), BTreeSet::from([0]));
    assert!(kept_by(0, &runs, SEED_WRITE));
    assert!(!kept_by(1, &runs, SEED_WRITE));
    let (kept, left) = keep_for(Some(1), &runs, vec![rec(SEED_WRITE), rec(UDEV)]);
    assert_eq!((kept.len(), left), (1, 1));
    assert_eq!(kept[0].raw, UDEV);
}

#[test]
fn a_denial_between_two_runs_stays_with_both_and_with_bystanders() {
    // Run 0's QEMU (c3,c4) denied an image of run 1 (c1,c2): the evidence names both.
    let runs = [
        run("1a", &["s0:c3,c4"]),
        run("2b", &["s0:c1,c2"]),
        run("3c", &["s0:c7,c8"]),
    ];
    assert_eq!(owners(&rec(QEMU_IMAGE_READ), &runs), BTreeSet::from([0, 1]));
    for me in 0..3 {
        assert!(kept_by(me, &runs, QEMU_IMAGE_READ), "run {me}");
    }
}

#[test]
fn a_record_without_evidence_is_seen_by_every_run() {
    let mut runs = [run("1a", &["s0:c219,c564"]), run("2b", &["s0:c1,c2"])];
    // The dbus daemon's pid and the harness's own pid belong to no run, s0 and the full
    // range to every process: none of it is evidence.
    runs[0]
        .live_pids
        .insert(16241, ctx("system_u:system_r:svirt_t:s0:c219,c564"));
    for line in [OWN_EXECMEM, UDEV, DBUS_ENRICHED] {
        assert!(owners(&rec(line), &runs).is_empty(), "{line}");
        assert!(kept_by(0, &runs, line) && kept_by(1, &runs, line), "{line}");
    }
    // A record is kept when its only owner is a run this one does not know (`me` is None).
    assert_eq!(keep_for(None, &runs, vec![rec(UDEV)]).1, 0);
}

#[test]
fn a_static_level_fixed_by_two_runs_names_both() {
    let mut runs = [Identity::new("1a"), Identity::new("2b")];
    for r in &mut runs {
        r.fixed_levels.insert("s0:c3,c4".into());
    }
    assert_eq!(owners(&rec(QEMU_IMAGE_READ), &runs).len(), 2);
    assert!(kept_by(0, &runs, QEMU_IMAGE_READ) && kept_by(1, &runs, QEMU_IMAGE_READ));
}

#[test]
fn a_pid_counts_only_with_the_context_it_had() {
    let qemu = ctx("system_u:system_r:svirt_t:s0:c146,c1010");
    let mut runs = [Identity::new("1a"), Identity::new("2b")];
    runs[0].live_pids.insert(835, qemu);
    assert_eq!(owners(&rec(VM1_GETATTR), &runs), BTreeSet::from([0]));
    assert!(!kept_by(1, &runs, VM1_GETATTR));
    // Pid 835 reused by another process of run 1, in another context: not evidence for it.
    runs[0].live_pids.clear();
    runs[1]
        .live_pids
        .insert(835, ctx("system_u:system_r:svirt_t:s0:c5,c6"));
    assert!(owners(&rec(VM1_GETATTR), &runs).is_empty());
}

#[test]
fn a_path_in_a_sandbox_names_its_run_plain_or_in_hex() {
    // 1a0 starts with 1a: the marker must match as a whole name.
    let runs = [
        Identity::new("1a0"),
        Identity::new("1a"),
        Identity::new("2b"),
    ];
    for line in [VIRTD_SANDBOX, VIRTD_SANDBOX_HEX] {
        assert_eq!(owners(&rec(line), &runs), BTreeSet::from([1]), "{line}");
        assert!(kept_by(1, &runs, line));
        assert!(!kept_by(0, &runs, line) && !kept_by(2, &runs, line));
    }
}

#[test]
fn the_acting_pid_is_read_from_pid_not_from_ppid_spid_or_tpid() {
    assert_eq!(record_pid(VM1_GETATTR), Some(835));
    assert_eq!(record_pid(DBUS_ENRICHED), Some(210));
    assert_eq!(record_pid("type=AVC ppid=1 spid=2 tpid=3 x"), None);
    assert_eq!(record_pid("pid=77 comm=x"), Some(77));
}

#[test]
fn only_single_levels_with_categories_are_evidence() {
    assert_eq!(
        mcs_key(&ctx("system_u:system_r:svirt_t:s0:c146,c1010")).as_deref(),
        Some("s0:c146,c1010")
    );
    assert_eq!(mcs_key(&ctx("system_u:object_r:virt_image_t:s0")), None);
    assert_eq!(
        mcs_key(&ctx("system_u:system_r:virtd_t:s0-s0:c0.c1023")),
        None
    );
    assert_eq!(mcs_key(&ctx("system_u:object_r:etc_t")), None);
}

#[test]
fn a_finished_run_claims_only_what_was_logged_before_it_ended_but_keeps_its_names() {
    let c = Concurrency::new();
    let mut ids = ["1a", "1a", "2b"].into_iter().map(str::to_string);
    let a = c.register(|| ids.next().unwrap_or_default());
    // The clock gave 1a twice: the second run gets the next id.
    let b = c.register(|| ids.next().unwrap_or_default());
    assert_eq!((a.as_str(), b.as_str()), ("1a", "2b"));
    let turn = c.enter(&a, None);
    c.publish_live(
        &a,
        BTreeMap::new(),
        [ctx("system_u:system_r:svirt_t:s0:c219,c564")],
    );
    assert_eq!(c.keep_for(&b, vec![rec(SEED_WRITE)]), (vec![], 1));
    assert_eq!(c.foreign_markers(&b), ["selinux-harness-1a"]);
    drop(turn);
    // A record stamped while 1a ran (2012) is still 1a's, read late as it may be ...
    assert_eq!(c.keep_for(&b, vec![rec(SEED_WRITE)]).1, 1);
    // ... but libvirt may hand the level to anyone now: one stamped later (2100), or with no
    // stamp at all, is everyone's again ...
    let later = SEED_WRITE.replace("1332310963.333", "4102444800.000");
    assert_eq!(c.keep_for(&b, vec![rec(&later)]).1, 0);
    let unstamped = SEED_WRITE.replace("msg=audit(1332310963.333:10313): ", "");
    assert_eq!(c.keep_for(&b, vec![rec(&unstamped)]).1, 0);
    // ... while a path in 1a's sandbox is still 1a's, and so are its leftovers.
    assert_eq!(c.keep_for(&b, vec![rec(VIRTD_SANDBOX)]).1, 1);
    assert_eq!(c.foreign_markers(&b), ["selinux-harness-1a"]);
}

#[test]
fn ordinary_runs_share_the_host_and_an_exclusive_one_waits_for_them() {
    let c = Concurrency::new();
    let first = c.enter("1a", None);
    // A second ordinary run gets in while the first holds its turn (else this test hangs).
    let second = c.enter("2b", None);
    let inside = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let _alone = c.enter("3c", Some(Exclusive::QemuConf));
            inside.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!inside.load(Ordering::SeqCst), "entered while others ran");
        drop(first);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!inside.load(Ordering::SeqCst), "entered while one ran");
        drop(second);
    });
    assert!(inside.load(Ordering::SeqCst));
}

/// A seed scenario, loaded as the suite loads it (shared with the batch tests).
pub(crate) fn seed(name: &str) -> LoadedScenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/seed")
        .join(name);
    crate::scenario::load_file(&path).expect("the seed scenarios load")
}

#[test]
fn host_settings_and_the_probe_module_make_a_run_exclusive() {
    let cross = seed("cross-attach.yaml");
    assert_eq!(exclusive_reason(&cross.scenario, Some("default")), None);
    assert_eq!(
        exclusive_reason(&cross.scenario, Some("remember_owner_0")),
        Some(Exclusive::QemuConf)
    );
    let probe = seed("mcs-probe.yaml");
    assert_eq!(
        exclusive_reason(&probe.scenario, None),
        Some(Exclusive::ProbeModule)
    );
    let distinct = seed("distinct-dynamic-labels.yaml");
    assert_eq!(exclusive_reason(&distinct.scenario, None), None);
}

#[test]
fn an_expected_denial_that_names_no_run_makes_it_exclusive() {
    let load = |text: &str| {
        crate::scenario::load_str(std::path::Path::new("t.yaml"), text)
            .expect("the test scenario loads")
    };
    let with = |avc: &str| {
        load(&format!(
            "name: t\ndescription: t\nrequires: [libvirt]\nimages:\n  vm1.img: {{size: 16M}}\ndomains:\n  vm1: {{disks: [vm1.img]}}\nsteps:\n  - start: vm1\n    expect:\n      avc: {avc}\n"
        ))
    };
    // A daemon's denial (virtd_t running the iohelper) carries no level and no QEMU pid.
    let daemon = with("[{perms: [execute_no_trans], scontext: {type: virtd_t}}]");
    assert_eq!(
        exclusive_reason(&daemon, None),
        Some(Exclusive::SharedDenials)
    );
    let anyone = with("[{perms: [read]}]");
    assert_eq!(
        exclusive_reason(&anyone, None),
        Some(Exclusive::SharedDenials)
    );
    // A guest's denial names its level: attributed to the run whose guest has it.
    let guest = with("[{perms: [read], scontext: {type: svirt_t, level: \"s0:c7,c8\"}}]");
    assert_eq!(exclusive_reason(&guest, None), None);
    assert_eq!(exclusive_reason(&with("none"), None), None);
}

#[test]
fn a_neighbours_qemu_is_recognised_from_libvirts_pid_files_before_it_publishes() {
    let c = Concurrency::new();
    let mut ids = ["1a", "1a0"].into_iter().map(str::to_string);
    let a = c.register(|| ids.next().unwrap_or_default());
    let b = c.register(|| ids.next().unwrap_or_default());
    // b has not published yet; its QEMU already logged SEED_WRITE.
    assert_eq!(c.keep_for(&a, vec![rec(SEED_WRITE)]).1, 0);
    let found = [
        ("selinux-harness-1a0-vm1".to_string(), 16241),
        // The host's own guest, and a pid whose process is gone (no context).
        ("admin-guest".to_string(), 16242),
        ("selinux-harness-1a0-vm2".to_string(), 16243),
    ];
    c.observe(&found, |pid| {
        (pid != 16243).then(|| ctx("system_u:system_r:svirt_t:s0:c219,c564"))
    });
    assert_eq!(c.keep_for(&a, vec![rec(SEED_WRITE)]).1, 1);
    assert_eq!(c.keep_for(&b, vec![rec(SEED_WRITE)]).1, 0);
    // 1a's prefix is no prefix of 1a0's domains.
    let runs = c.runs();
    assert!(runs["1a"].live_pids.is_empty());
    assert_eq!(runs["1a0"].live_pids.keys().collect::<Vec<_>>(), [&16241]);
}

#[test]
fn the_kernel_stamp_is_read_from_the_record() {
    let t = record_time(SEED_WRITE).unwrap();
    assert_eq!(
        t.duration_since(UNIX_EPOCH).unwrap(),
        Duration::from_millis(1_332_310_963_333)
    );
    assert_eq!(record_time("type=AVC avc: denied"), None);
}

/// libvirt's VIRT_MACHINE_ID record for run 2b's vm1 at VM1_GETATTR's level, logged before
/// its QEMU ran (the form of evidence/machines.rs's recorded line).
const MACHINE_2B: &str = "type=VIRT_MACHINE_ID msg=audit(1795653889.001:190): pid=431 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:virtd_t:s0-s0:c0.c1023 msg='virt=kvm vm=\"selinux-harness-2b-vm1\" uuid=650c2a3b-2a7d-a7bd-bbc7-aa0069007bbf vm-ctx=system_u:system_r:svirt_t:s0:c146,c1010 img-ctx=system_u:object_r:svirt_image_t:s0:c146,c1010 model=selinux exe=\"/usr/sbin/libvirtd\" hostname=? addr=? terminal=? res=success'";

#[test]
fn a_guest_that_died_at_start_is_known_by_libvirts_machine_record() {
    // Run 2b's QEMU was denied at once and died: no pid, no live level was ever published,
    // so its denial is everyone's - run 1a's `avc: none` would fail on it (the CI's case).
    let c = Concurrency::new();
    let mut ids = ["1a", "2b"].into_iter().map(str::to_string);
    let a = c.register(|| ids.next().unwrap_or_default());
    let b = c.register(|| ids.next().unwrap_or_default());
    assert_eq!(c.keep_for(&a, vec![rec(VM1_GETATTR)]).1, 0);
    // libvirt's record of the label it gave 2b's vm1 settles it.
    c.claim(&[crate::evidence::machines::parse(MACHINE_2B).unwrap()]);
    assert_eq!(c.keep_for(&a, vec![rec(VM1_GETATTR)]), (vec![], 1));
    assert_eq!(c.keep_for(&b, vec![rec(VM1_GETATTR)]).0.len(), 1);
    // A record naming a domain of no run of the batch (a prefix is not enough) claims nothing.
    let c = Concurrency::new();
    let mut ids = ["1a", "2"].into_iter().map(str::to_string);
    let a = c.register(|| ids.next().unwrap_or_default());
    let _two = c.register(|| ids.next().unwrap_or_default());
    c.claim(&[crate::evidence::machines::parse(MACHINE_2B).unwrap()]);
    assert_eq!(c.keep_for(&a, vec![rec(VM1_GETATTR)]).1, 0);
}

#[test]
fn machine_records_are_learned_from_the_log_once_each_and_only_whole_lines() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "{UDEV}").unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    let c = Concurrency::new();
    let mut ids = ["1a", "2b"].into_iter().map(str::to_string);
    let a = c.register(|| ids.next().unwrap_or_default());
    let _b = c.register(|| ids.next().unwrap_or_default());
    // Nothing is read before a step began: the batch's evidence starts there.
    let start = log.offset().unwrap();
    c.learn_machines(&mut log);
    c.audit_from(start);
    // auditd is halfway through the record: nothing is learned from half a line ...
    let (head, tail) = MACHINE_2B.split_at(100);
    write!(f, "{head}").unwrap();
    f.flush().unwrap();
    c.learn_machines(&mut log);
    assert_eq!(c.keep_for(&a, vec![rec(VM1_GETATTR)]).1, 0);
    // ... and the whole line is read once it is complete.
    writeln!(f, "{tail}").unwrap();
    f.flush().unwrap();
    c.learn_machines(&mut log);
    assert_eq!(c.keep_for(&a, vec![rec(VM1_GETATTR)]).1, 1);
}
