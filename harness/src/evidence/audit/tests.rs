use std::io::Write;

use rstest::rstest;

use super::*;

/// Lines as recorded on the Debian 12 guest (selinux-vm-facts.md, tcg7.log, fast2.log).
const MCS_READ: &str = r#"type=AVC msg=audit(1795653811.452:50): avc:  denied  { read } for  pid=417 comm="mcscat" name="mcs-c12.img" dev="vda" ino=23177 scontext=unconfined_u:unconfined_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:svirt_image_t:s0:c1,c2 tclass=file permissive=0"#;
const VM1_GETATTR: &str = r#"type=AVC msg=audit(1795653890.328:198): avc:  denied  { getattr } for  pid=835 comm="qemu-system-x86" path="/var/lib/libvirt/images/vm1.img" dev="vda" ino=23182 scontext=system_u:system_r:svirt_t:s0:c146,c1010 tcontext=system_u:object_r:virt_image_t:s0 tclass=file permissive=0"#;
const IO_URING: &str = r#"type=AVC msg=audit(1795653826.460:84): avc:  denied  { create } for  pid=518 comm="qemu-system-x86" anonclass=[io_uring] scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:svirt_t:s0:c3,c4 tclass=anon_inode permissive=0"#;
const SYSFS_POSSIBLE: &str = r#"type=AVC msg=audit(1795653826.396:83): avc:  denied  { read } for  pid=518 comm="qemu-system-x86" name="possible" dev="sysfs" ino=46 scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:sysfs_t:s0 tclass=file permissive=0"#;
const QEMU_IMAGE_READ: &str = r#"type=AVC msg=audit(1795653826.616:86): avc:  denied  { read } for  pid=518 comm="qemu-system-x86" name="mcs.img" dev="vda" ino=23181 scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:svirt_image_t:s0:c1,c2 tclass=file permissive=0"#;
/// Console form, logged before auditd ran.
const UDEV_PRINTK: &str = r#"[   17.056905] audit: type=1400 audit(1795653800.948:6): avc:  denied  { setrlimit } for  pid=213 comm="systemd-udevd" scontext=system_u:system_r:udev_t:s0 tcontext=system_u:system_r:udev_t:s0 tclass=process permissive=0"#;
const TMPFILES_PRINTK: &str = r#"[   17.005854] audit: type=1400 audit(1795653800.896:3): avc:  denied  { relabelfrom } for  pid=212 comm="systemd-tmpfile" name="mtab" dev="vda" ino=267 scontext=system_u:system_r:systemd_tmpfiles_t:s0 tcontext=system_u:object_r:etc_t:s0 tclass=lnk_file permissive=0"#;
/// The seed report (RHEL 6.2, 2012; line breaks of the mail undone): no permissive= field yet.
const SEED_WRITE: &str = r#"type=AVC msg=audit(1332310963.333:10313): avc:  denied  { write } for  pid=16241 comm="qemu-kvm" path="/var/lib/libvirt/images/vm1.img" dev=sda1 ino=6431944 scontext=system_u:system_r:svirt_t:s0:c219,c564 tcontext=system_u:object_r:svirt_image_t:s0:c122,c658 tclass=file"#;
const SEED_SYSCALL: &str = r#"type=SYSCALL msg=audit(1332310963.333:10313): arch=c000003e syscall=18 success=no exit=-13 a0=9 a1=7fd3bc59d000 a2=1000 a3=10891b000 items=0 ppid=1 pid=16241 auid=0 uid=107 gid=107 euid=107 suid=107 fsuid=107 egid=107 sgid=107 fsgid=107 tty=(none) ses=3 comm="qemu-kvm" exe="/usr/libexec/qemu-kvm" subj=system_u:system_r:svirt_t:s0:c219,c564 key=(null)"#;
const SEED_VIRT_RESOURCE: &str = r#"type=VIRT_RESOURCE msg=audit(1332310867.790:10312): user pid=5114 uid=0 auid=0 ses=3 subj=unconfined_u:system_r:virtd_t:s0-s0:c0.c1023 msg='virt=kvm resrc=disk reason=attach vm="vm2" uuid=b07607f8-2d03-cc1f-272b-22863667d1a4 old-disk="?" new-disk="/var/lib/libvirt/images/vm1.img": exe=2F7573722F7362696E2F6C69627669727464202864656C6574656429 hostname=? addr=? terminal=? res=success'"#;
/// auditd 3.x ENRICHED format: a USER_AVC from dbus-daemon for libvirtd's logind Inhibit call,
/// with the 0x1d separator and the translated UID= fields (written for this test in the form
/// auditd 3.0 on Debian 12 produces; the dbus message text follows dbus-daemon's selinux.c).
const DBUS_ENRICHED: &str = "type=USER_AVC msg=audit(1795653870.123:150): pid=210 uid=101 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { send_msg } for msgtype=method_call interface=org.freedesktop.login1.Manager member=Inhibit dest=org.freedesktop.login1 spid=771 tpid=284 scontext=system_u:system_r:virtd_t:s0-s0:c0.c1023 tcontext=system_u:system_r:systemd_logind_t:s0 tclass=dbus permissive=0  exe=\"/usr/bin/dbus-daemon\" sauid=101 hostname=? addr=? terminal=?'\x1dUID=\"messagebus\" AUID=\"unset\" SAUID=\"messagebus\"";
const SELINUX_ERR: &str = r#"type=SELINUX_ERR msg=audit(1795653811.400:49): op=security_compute_sid invalid_context="unconfined_u:unconfined_r:svirt_t:s0:c3,c4" scontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tcontext=system_u:object_r:qemu_exec_t:s0 tclass=process"#;
const OWN_EXECMEM: &str = r#"type=AVC msg=audit(1795653900.100:210): avc:  denied  { execmem } for  pid=900 comm="selinux-harness" scontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tcontext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 tclass=process permissive=0"#;
const PERMISSIVE_HEX: &str = "node=selvm type=AVC msg=audit(1795653890.400:300): avc:  denied  { read write } for  pid=835 comm=\"qemu-system-x86\" path=2F746D702F6120622E696D67 dev=\"vda\" ino=1 scontext=system_u:system_r:svirt_t:s0:c1,c2 tcontext=system_u:object_r:virt_image_t:s0 tclass=file permissive=1";

fn ctx(s: &str) -> Option<Context> {
    Some(s.parse().unwrap())
}

#[test]
fn kernel_avc_fields() {
    let r = parse_record(MCS_READ).unwrap();
    assert_eq!(
        r,
        AvcRecord {
            record_type: "AVC".into(),
            denied: true,
            perms: vec!["read".into()],
            scontext: ctx("unconfined_u:unconfined_r:svirt_t:s0:c3,c4"),
            tcontext: ctx("system_u:object_r:svirt_image_t:s0:c1,c2"),
            tclass: Some("file".into()),
            permissive: false,
            comm: Some("mcscat".into()),
            target: Some("mcs-c12.img".into()),
            raw: MCS_READ.into(),
        }
    );
    let r = parse_record(VM1_GETATTR).unwrap();
    assert_eq!(r.target.as_deref(), Some("/var/lib/libvirt/images/vm1.img"));
    assert_eq!(r.tcontext.unwrap().kind, "virt_image_t");
}

#[test]
fn seed_report_lines() {
    let r = parse_record(SEED_WRITE).unwrap();
    assert!(r.denied && !r.permissive);
    assert_eq!(r.perms, ["write"]);
    assert_eq!(r.comm.as_deref(), Some("qemu-kvm"));
    assert_eq!(
        r.tcontext.unwrap().level().unwrap().to_string(),
        "s0:c122,c658"
    );
    assert_eq!(parse_record(SEED_SYSCALL), None);
    assert_eq!(parse_record(SEED_VIRT_RESOURCE), None);
}

#[test]
fn enriched_user_avc_reads_the_inner_message() {
    let r = parse_record(DBUS_ENRICHED).unwrap();
    assert_eq!(r.record_type, "USER_AVC");
    assert!(r.denied);
    assert_eq!(r.perms, ["send_msg"]);
    // The decision's contexts, not dbus-daemon's own subj=.
    assert_eq!(r.scontext.unwrap().kind, "virtd_t");
    assert_eq!(r.tcontext.unwrap().kind, "systemd_logind_t");
    assert_eq!(r.tclass.as_deref(), Some("dbus"));
    assert_eq!(r.raw, DBUS_ENRICHED);
}

#[test]
fn selinux_err_is_a_refusal_without_perms() {
    let r = parse_record(SELINUX_ERR).unwrap();
    assert_eq!(r.record_type, "SELINUX_ERR");
    assert!(r.denied);
    assert!(r.perms.is_empty());
    assert_eq!(r.tcontext.unwrap().kind, "qemu_exec_t");
}

#[test]
fn printk_form_node_prefix_hex_and_permissive() {
    let r = parse_record(UDEV_PRINTK).unwrap();
    assert_eq!(r.scontext.unwrap().kind, "udev_t");
    assert_eq!(r.perms, ["setrlimit"]);
    assert_eq!(r.raw, UDEV_PRINTK);
    let r = parse_record(PERMISSIVE_HEX).unwrap();
    assert!(r.permissive);
    assert_eq!(r.perms, ["read", "write"]);
    assert_eq!(r.target.as_deref(), Some("/tmp/a b.img"));
    assert!(any_permissive(&[parse_record(MCS_READ).unwrap(), r]));
    assert!(!any_permissive(&[parse_record(MCS_READ).unwrap()]));
}

#[test]
fn unparseable_record_keeps_raw_line_and_what_can_be_read() {
    let broken = format!("{MCS_READ} 'unterminated");
    let mut with_nl = broken.clone().into_bytes();
    with_nl.push(b'\n');
    assert!(
        linux_audit_parser::parse(&with_nl, false).is_err(),
        "this line must exercise the fallback"
    );
    let r = parse_record(&broken).unwrap();
    assert_eq!(r.raw, broken);
    assert!(r.denied);
    assert_eq!(r.perms, ["read"]);
    assert_eq!(r.scontext.unwrap().kind, "svirt_t");
    assert_eq!(r.comm.as_deref(), Some("mcscat"));
}

/// The default rules with the roles of the Debian guests (QEMU in svirt_t).
fn debian_noise() -> NoiseFilter {
    NoiseFilter::defaults("selinux-harness").with_roles(Some(&roles(DEBIAN_DOMAIN)))
}

const DEBIAN_DOMAIN: &str = "system_u:system_r:svirt_t:s0\n";
const FEDORA_DOMAIN: &str = "system_u:system_r:svirt_t:s0\nsystem_u:system_r:svirt_tcg_t:s0\n";

fn roles(domain: &str) -> crate::scenario::RoleTypes {
    crate::scenario::RoleTypes::parse(
        domain,
        "system_u:object_r:svirt_image_t:s0\nsystem_u:object_r:virt_content_t:s0\n",
        crate::scenario::VirtType::Qemu,
    )
    .unwrap()
}

#[test]
fn qemu_noise_follows_the_policys_domain_type() {
    let tcg = IO_URING.replace("svirt_t:s0:c3,c4 tcontext", "svirt_tcg_t:s0:c3,c4 tcontext");
    let (debian, fedora) = (parse_record(IO_URING).unwrap(), parse_record(&tcg).unwrap());
    let fedora_noise =
        NoiseFilter::defaults("selinux-harness").with_roles(Some(&roles(FEDORA_DOMAIN)));
    assert!(fedora_noise.noise_rule(&fedora).is_some());
    // svirt_t is not the TCG guests' domain there: its record is no longer QEMU's noise.
    assert!(fedora_noise.noise_rule(&debian).is_none());
    assert!(debian_noise().noise_rule(&fedora).is_none());
    // Unresolved, a role matches no type: noise is shown, no denial is hidden.
    let unresolved = NoiseFilter::defaults("selinux-harness");
    assert!(unresolved.noise_rule(&debian).is_none());
}

#[rstest]
#[case(UDEV_PRINTK, true)]
#[case(TMPFILES_PRINTK, true)]
#[case(IO_URING, true)]
#[case(SYSFS_POSSIBLE, true)]
#[case(DBUS_ENRICHED, true)]
#[case(OWN_EXECMEM, true)]
#[case(MCS_READ, false)]
#[case(VM1_GETATTR, false)]
#[case(QEMU_IMAGE_READ, false)]
#[case(SEED_WRITE, false)]
#[case(SELINUX_ERR, false)]
fn default_noise(#[case] line: &str, #[case] noise: bool) {
    let f = debian_noise();
    let r = parse_record(line).unwrap();
    assert_eq!(f.noise_rule(&r).is_some(), noise, "{line}");
}

#[test]
fn noise_perms_must_cover_every_permission() {
    // execmem alone is noise for virsh; execmem + read is not.
    let line = OWN_EXECMEM.replace("{ execmem }", "{ execmem read }");
    let f = debian_noise();
    assert!(f.noise_rule(&parse_record(&line).unwrap()).is_none());
    // Another binary's execmem is not ours to hide.
    let other = OWN_EXECMEM.replace("selinux-harness", "qemu-system-x86");
    assert!(f.noise_rule(&parse_record(&other).unwrap()).is_none());
}

#[test]
fn scenario_rules_extend_and_count() {
    let extra: NoiseRule = serde_json::from_str(
        r#"{"reason": "known", "scontext": {"type": "svirt_t"}, "tclass": "file", "perms": ["getattr"]}"#,
    )
    .unwrap();
    let f = debian_noise().with([extra]);
    let records = [IO_URING, VM1_GETATTR, MCS_READ, UDEV_PRINTK]
        .iter()
        .map(|l| parse_record(l).unwrap())
        .collect();
    let out = f.apply(records);
    assert_eq!(out.filtered, 3);
    assert_eq!(out.kept.len(), 1);
    assert_eq!(out.kept[0].comm.as_deref(), Some("mcscat"));
    match out.into_evidence() {
        Evidence::Avcs { records, filtered } => assert_eq!((records.len(), filtered), (1, 3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn noise_rule_rejects_unknown_fields() {
    let err = serde_json::from_str::<NoiseRule>(r#"{"scontext_type": "udev_t"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    // A noise rule names a context by its type only: no levels, no captures.
    let err =
        serde_json::from_str::<NoiseRule>(r#"{"scontext": {"type": "udev_t", "level": "s0"}}"#)
            .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let schema = schemars::schema_for!(NoiseRule);
    let json = serde_json::to_string(&schema).unwrap();
    assert!(json.contains("scontext") && !json.contains("scontext_type"));
}

fn append(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn reads_only_what_was_appended_since_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, "").unwrap();
    append(&path, &[MCS_READ, SEED_SYSCALL, IO_URING]);
    let mut log = AuditLog::open(&path).unwrap();
    let start = log.offset().unwrap();
    assert_eq!(start, std::fs::metadata(&path).unwrap().len());
    assert!(log.records_since(start).unwrap().is_empty());
    append(
        &path,
        &[SEED_VIRT_RESOURCE, VM1_GETATTR, SEED_SYSCALL, DBUS_ENRICHED],
    );
    let got = log.records_since(start).unwrap();
    let comms: Vec<_> = got.iter().map(|r| r.record_type.as_str()).collect();
    assert_eq!(comms, ["AVC", "USER_AVC"]);
    assert_eq!(got[0].raw, VM1_GETATTR);
    // The same offset again gives the same answer; a later offset only the newer lines.
    assert_eq!(log.records_since(start).unwrap().len(), 2);
    let next = log.offset().unwrap();
    append(&path, &[SELINUX_ERR]);
    let got = log.records_since(next).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record_type, "SELINUX_ERR");
}

#[test]
fn truncation_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, format!("{MCS_READ}\n{IO_URING}\n")).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    let start = log.offset().unwrap();
    std::fs::write(&path, format!("{MCS_READ}\n")).unwrap();
    assert!(matches!(
        log.records_since(start),
        Err(AuditError::Truncated { .. })
    ));
}

#[test]
fn rotation_during_a_step_is_reported_with_both_halves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, format!("{MCS_READ}\n")).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    let start = log.offset().unwrap();
    append(&path, &[VM1_GETATTR]);
    // auditd rotates by renaming and creating a new file.
    std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    std::fs::write(&path, format!("{SEED_WRITE}\n")).unwrap();
    match log.records_since(start) {
        Err(AuditError::Rotated { before, after, .. }) => {
            assert_eq!(before.len(), 1);
            assert_eq!(before[0].raw, VM1_GETATTR);
            assert_eq!(after.len(), 1);
            assert_eq!(after[0].raw, SEED_WRITE);
        }
        other => panic!("expected Rotated, got {other:?}"),
    }
    // The log now follows the new file: the next step works normally.
    let next = log.offset().unwrap();
    append(&path, &[MCS_READ]);
    assert_eq!(log.records_since(next).unwrap().len(), 1);
}

#[test]
fn rotation_between_steps_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, format!("{MCS_READ}\n{IO_URING}\n")).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    std::fs::write(&path, "").unwrap();
    let start = log.offset().unwrap();
    assert_eq!(start, 0);
    append(&path, &[VM1_GETATTR]);
    assert_eq!(log.records_since(start).unwrap().len(), 1);
}

#[test]
fn waits_for_text_written_later_and_times_out_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, format!("{MCS_READ}\n")).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    let start = log.offset().unwrap();
    let inotify = log.watch_modify().unwrap();
    let p = path.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        append(&p, &[VM1_GETATTR]);
        std::thread::sleep(Duration::from_millis(50));
        append(&p, &["type=USER msg=audit(1.2:3): pid=1 uid=0 auid=0 ses=1 msg='harness-step-3 exe=\"/usr/sbin/auditctl\"'"]);
    });
    let t = Instant::now();
    assert!(log
        .wait_for_text(&inotify, start, "harness-step-3", Duration::from_secs(10))
        .unwrap());
    assert!(t.elapsed() < Duration::from_secs(5));
    writer.join().unwrap();
    assert_eq!(log.records_since(start).unwrap().len(), 1);
    // A marker that never comes: false after the timeout, not an endless wait.
    let t = Instant::now();
    assert!(!log
        .wait_for_text(
            &inotify,
            start,
            "harness-step-4",
            Duration::from_millis(100)
        )
        .unwrap());
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[test]
fn settle_rejects_marker_text_that_is_not_a_plain_word() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, "").unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    let err = log
        .settle(0, "a b'; x", Duration::from_millis(1))
        .unwrap_err();
    assert!(err.to_string().contains("marker text"), "{err}");
}

/// Found by fuzzing (fuzz/artifacts crash-94d28cd2...): the parser library multiplies the
/// seconds by 1000 unchecked. The record must still come out, through the fallback parser.
#[test]
fn absurd_event_ids_do_not_overflow_the_parser() {
    let line = MCS_READ.replace("1795653811.452:50", "1795653811795653811.452:50");
    let r = parse_record(&line).expect("still an AVC record");
    assert_eq!(r.perms, ["read"]);
    assert_eq!(
        r.scontext,
        ctx("unconfined_u:unconfined_r:svirt_t:s0:c3,c4")
    );
    let millis = MCS_READ.replace(".452:50", ".45299999999999999999:50");
    assert!(parse_record(&millis).is_some());
    // A plausible id elsewhere in the line does not excuse an absurd one.
    let node = format!("node=msg=audit(1.1:1) {line}");
    assert!(parse_record(&node).is_some());
}

#[test]
fn truncated_and_regrown_past_the_offset_on_the_same_inode_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, format!("{MCS_READ}\n{IO_URING}\n")).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    let start = log.offset().unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    // Truncated in place (same inode), then written past the step's offset again.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(
        &path,
        &[SEED_SYSCALL, SEED_SYSCALL, SEED_SYSCALL, VM1_GETATTR],
    );
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
    assert!(std::fs::metadata(&path).unwrap().len() > start);
    let e = log.records_since(start).unwrap_err();
    assert!(matches!(e, AuditError::Regrown { .. }), "{e}");
    assert!(e.to_string().contains("truncated and regrown"), "{e}");
}

#[test]
fn an_untouched_log_passes_the_anchor_check_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, "").unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    for _ in 0..3 {
        let start = log.offset().unwrap();
        append(&path, &[MCS_READ, SEED_SYSCALL]);
        assert_eq!(log.records_since(start).unwrap().len(), 1);
    }
}

const MAC_STATUS_OFF: &str = "type=MAC_STATUS msg=audit(1795653900.200:220): enforcing=0 old_enforcing=1 auid=0 ses=1 enabled=1 old-enabled=1 lsm=selinux res=1";
const MAC_STATUS_ON: &str = "type=MAC_STATUS msg=audit(1795653900.300:221): enforcing=1 old_enforcing=0 auid=0 ses=1 enabled=1 old-enabled=1 lsm=selinux res=1";
const POLICY_LOAD: &str =
    "type=MAC_POLICY_LOAD msg=audit(1795653900.400:222): auid=0 ses=1 lsm=selinux res=1";

#[test]
fn a_step_sees_every_switch_to_permissive_however_brief() {
    let text = [MAC_STATUS_OFF, MCS_READ, MAC_STATUS_ON, POLICY_LOAD].join("\n");
    let step = StepAudit::parse(&text);
    assert_eq!(step.records.len(), 1);
    assert_eq!(step.permissive_switches, [MAC_STATUS_OFF]);
    assert_eq!(step.policy_loads, [POLICY_LOAD]);
    // The console form too.
    let printk = "[   20.1] audit: type=1404 audit(1795653900.200:220): enforcing=0 old_enforcing=1 auid=0 ses=1";
    assert_eq!(StepAudit::parse(printk).permissive_switches.len(), 1);
    assert!(StepAudit::parse(MAC_STATUS_ON)
        .permissive_switches
        .is_empty());
}

/// `auditctl -s` in the form audit 3.0 prints it (auditctl.c: one `key value` a line).
const STATUS: &str = "enabled 1\nfailure 1\npid 231\nrate_limit 0\nbacklog_limit 8192\nlost 0\nbacklog 0\nbacklog_wait_time 60000\nbacklog_wait_time_actual 0\nloginuid_immutable 0 unlocked\n";

#[test]
fn audit_status_and_what_makes_records_go_missing() {
    let s = AuditStatus::parse(STATUS).unwrap();
    assert_eq!(
        s,
        AuditStatus {
            enabled: 1,
            pid: 231,
            rate_limit: 0,
            backlog_limit: 8192,
            lost: 0,
            backlog: 0
        }
    );
    assert_eq!(s.loss_since(&s), None);
    let lost = AuditStatus { lost: 3, ..s };
    let why = s.loss_since(&lost).unwrap();
    assert!(
        why.contains("lost 3 audit record(s)") && why.contains("lost 0 -> 3"),
        "{why}"
    );
    let dead = AuditStatus { pid: 0, ..s };
    assert!(s.loss_since(&dead).unwrap().contains("no audit daemon"));
    let other = AuditStatus { pid: 400, ..s };
    assert!(s.loss_since(&other).unwrap().contains("231 -> 400"));
    assert_eq!(AuditStatus::parse("enabled 1\n"), None);
}

#[test]
fn default_noise_file_parses_and_names_the_harness() {
    let f = debian_noise();
    assert_eq!(f.rules().len(), 12);
    assert!(f.rules().iter().all(|r| !r.reason.is_empty()));
    assert!(f
        .rules()
        .iter()
        .any(|r| r.comm.as_deref() == Some("selinux-harness")));
    assert!(f
        .rules()
        .iter()
        .all(|r| r.comm.as_deref() != Some("$harness")));
}

#[test]
fn noise_file_rules_need_a_reason_and_known_keys() {
    let err = parse_noise_rules("- {scontext: {type: udev_t}}\n").unwrap_err();
    assert!(matches!(err, NoiseFileError::NoReason(1)), "{err}");
    let err = parse_noise_rules("- {reason: x, scontext_type: udev_t}\n").unwrap_err();
    assert!(err.to_string().contains("scontext_type"), "{err}");
    let err = parse_noise_rules("- {reason: x, scontext: udev_t}\n").unwrap_err();
    assert!(err.to_string().contains("scontext"), "{err}");
}
