//! Judging the bookkeeping expectations (`xattr`, `owner`, `mode`, `absent`, `label`,
//! `process_owner`) against `FileState` / `ProcessOwner` evidence. Pure, like the rest of
//! `expect`.

use super::{
    check, context_matches, describe_match, missing, resolve_capture, Captures, Unresolved,
};
use crate::evidence::file_state::{FileFacts, Ids};
use crate::evidence::Evidence;
use crate::run::verdict::Check;
use crate::scenario::{
    CheckKey, Expect, FileRef, LabelExpect, Mode, Name, Owner, OwnerExpect, XattrExpect, XattrName,
    XattrText,
};

/// The text an attribute value stands for: a literal, or a capture's whole context.
pub fn xattr_text_value(t: &XattrText, caps: &Captures) -> Result<String, Unresolved> {
    match t {
        XattrText::Literal(s) => Ok(s.clone()),
        XattrText::Capture(r) => resolve_capture(r, caps).map(|c| c.to_string()),
    }
}

/// Why a check of this module has nothing to judge. Its text becomes the check's
/// observation (`missing`), so it reaches the reports as written here.
#[derive(Debug, thiserror::Error)]
pub(super) enum NoEvidence {
    #[error("the step did not read this file")]
    NotRead,
    /// The file's path could not be resolved; the evidence says why, if it knows.
    #[error("{}", .0.as_deref().unwrap_or("not resolved"))]
    NotResolved(Option<String>),
    #[error("the file does not exist")]
    NoFile,
    #[error("no QEMU process (not running)")]
    NoProcess,
    #[error("no swtpm process (not running)")]
    NoSwtpm,
    #[error("the swtpm process could not be read")]
    Unreadable,
}

/// What the step saw of `file`: Ok(facts, None if the file does not exist), or why it has
/// no evidence.
fn state<'e>(
    file: &FileRef,
    evidence: &'e [Evidence],
) -> Result<Option<&'e FileFacts>, NoEvidence> {
    let name = file.to_string();
    let found = evidence.iter().find_map(|e| match e {
        Evidence::FileState {
            file: f,
            path,
            facts,
            why,
        } if *f == name => Some((path, facts, why)),
        _ => None,
    });
    match found {
        None => Err(NoEvidence::NotRead),
        Some((None, _, why)) => Err(NoEvidence::NotResolved(why.clone())),
        Some((Some(_), facts, _)) => Ok(facts.as_ref()),
    }
}

/// The facts of a file that must exist for its check to be judged.
fn existing<'e>(file: &FileRef, evidence: &'e [Evidence]) -> Result<&'e FileFacts, NoEvidence> {
    state(file, evidence)?.ok_or(NoEvidence::NoFile)
}

/// Whether observed ids match `user:group`: a name is compared with the target's name for
/// the id, a number with the id itself.
fn owner_matches(want: &Owner, ids: &Ids) -> bool {
    let one = |w: &str, id: u32, name: &Option<String>| match w.parse::<u32>() {
        Ok(n) => n == id,
        Err(_) => name.as_deref() == Some(w),
    };
    one(&want.user, ids.uid, &ids.user) && one(&want.group, ids.gid, &ids.group)
}

fn xattr_check(
    file: &FileRef,
    name: &XattrName,
    want: &XattrExpect,
    evidence: &[Evidence],
    caps: &Captures,
) -> Check {
    let key = CheckKey::Xattr(file.to_string(), name.to_string());
    let what = format!("{} of {file}", name.full());
    let expected = match want {
        XattrExpect::Absent => Ok("absent".to_string()),
        XattrExpect::Present => Ok("present (any value)".to_string()),
        XattrExpect::Equals(t) => match (t, xattr_text_value(t, caps)) {
            (XattrText::Capture(r), Ok(v)) => Ok(format!("{v} ({r})")),
            (_, v) => v,
        },
    };
    let expected = match expected {
        Ok(e) => e,
        Err(why) => return missing(key, what, want_text(want), why.to_string()),
    };
    let facts = match existing(file, evidence) {
        Ok(f) => f,
        Err(why) => return missing(key, what, expected, why.to_string()),
    };
    let value = facts
        .xattrs
        .iter()
        .find(|(k, _)| k == name.short())
        .map(|(_, v)| v.as_str());
    let passed = match (want, value) {
        (XattrExpect::Absent, v) => v.is_none(),
        (XattrExpect::Present, v) => v.is_some(),
        (XattrExpect::Equals(t), Some(v)) => xattr_text_value(t, caps).is_ok_and(|w| w == v),
        (XattrExpect::Equals(_), None) => false,
    };
    check(
        key,
        what,
        expected,
        value.unwrap_or("absent").to_string(),
        passed,
    )
}

fn want_text(w: &XattrExpect) -> String {
    match w {
        XattrExpect::Absent => "absent".into(),
        XattrExpect::Present => "present".into(),
        XattrExpect::Equals(t) => t.to_string(),
    }
}

fn owner_check(
    file: &FileRef,
    want: &OwnerExpect,
    evidence: &[Evidence],
    caps: &Captures,
) -> Check {
    let key = CheckKey::Owner(file.to_string());
    let what = format!("owner of {file}");
    let ids = existing(file, evidence).map(FileFacts::ids);
    let name = match want {
        OwnerExpect::Is(o) => return owner_verdict(key, what, o, ids),
        OwnerExpect::Of(name) => name,
    };
    // The ids, not the names: the capture's process and the file are on the same host.
    let Some(of) = caps.get(name).and_then(|c| c.ids.as_ref()) else {
        return missing(
            key,
            what,
            format!("${name}"),
            format!("${name} was not captured from a running QEMU whose user could be read"),
        );
    };
    let expected = format!("{} (${name}'s QEMU)", of.describe());
    match ids {
        Ok(ids) => {
            let same = ids.uid == of.uid && ids.gid == of.gid;
            check(key, what, expected, ids.describe(), same)
        }
        Err(why) => missing(key, what, expected, why.to_string()),
    }
}

/// `user:group` against the ids the evidence gave, or the check's evidence is missing.
pub(super) fn owner_verdict(
    key: CheckKey,
    what: String,
    want: &Owner,
    ids: Result<Ids, NoEvidence>,
) -> Check {
    match ids {
        Ok(ids) => check(
            key,
            what,
            want.to_string(),
            ids.describe(),
            owner_matches(want, &ids),
        ),
        Err(why) => missing(key, what, want.to_string(), why.to_string()),
    }
}

fn mode_check(file: &FileRef, want: Mode, evidence: &[Evidence]) -> Check {
    let key = CheckKey::Mode(file.to_string());
    let what = format!("mode of {file}");
    match existing(file, evidence) {
        Ok(f) => check(
            key,
            what,
            want.to_string(),
            Mode(f.mode).to_string(),
            f.mode == want.0,
        ),
        Err(why) => missing(key, what, want.to_string(), why.to_string()),
    }
}

/// `absent: [FILE]`: the file is gone. A runtime file's path is only known once the harness
/// saw its directory while the guest ran, so its absence is never the absence of a name.
fn absent_check(file: &FileRef, evidence: &[Evidence]) -> Check {
    let key = CheckKey::Absent(file.to_string());
    let what = format!("{file} removed");
    match state(file, evidence) {
        Ok(None) => check(key, what, "absent".into(), "absent".into(), true),
        Ok(Some(f)) => check(
            key,
            what,
            "absent".into(),
            format!(
                "exists: {} {:04o} {}",
                if f.is_dir { "directory" } else { "file" },
                f.mode,
                f.ids().describe()
            ),
            false,
        ),
        Err(why) => missing(key, what, "absent".into(), why.to_string()),
    }
}

fn label_check(
    file: &FileRef,
    want: &LabelExpect,
    evidence: &[Evidence],
    caps: &Captures,
) -> Check {
    let key = CheckKey::Label(file.to_string());
    let what = format!("label of {file}");
    let expected = match want {
        LabelExpect::Default => "the policy's default label for the path".to_string(),
        LabelExpect::Match(m) => describe_match(m, caps),
    };
    let facts = match existing(file, evidence) {
        Ok(f) => f,
        Err(why) => return missing(key, what, expected, why.to_string()),
    };
    let Some(ctx) = facts.context.as_ref() else {
        return missing(key, what, expected, "no label".into());
    };
    match want {
        LabelExpect::Default => match &facts.default_context {
            Some(d) => check(
                key,
                what,
                format!("{d} (the policy's default)"),
                ctx.to_string(),
                d == ctx,
            ),
            None => missing(
                key,
                what,
                expected,
                "the policy's file contexts give this path no label".into(),
            ),
        },
        LabelExpect::Match(m) => match context_matches(m, ctx, caps) {
            Ok((ok, w)) => check(key, what, w, ctx.to_string(), ok),
            Err(why) => missing(key, what, expected, why.to_string()),
        },
    }
}

fn process_owner_check(domain: &Name, want: &Owner, evidence: &[Evidence]) -> Check {
    let ids = evidence.iter().find_map(|e| match e {
        Evidence::ProcessOwner { domain: d, ids, .. } if d == domain.as_str() => Some(ids.clone()),
        _ => None,
    });
    owner_verdict(
        CheckKey::ProcessOwner(domain.to_string()),
        format!("user of {domain}'s QEMU"),
        want,
        ids.ok_or(NoEvidence::NoProcess),
    )
}

/// Every bookkeeping check of a step, in the order `Expect::keys` lists them.
pub fn checks(expect: &Expect, evidence: &[Evidence], caps: &Captures) -> Vec<Check> {
    let mut out = Vec::new();
    for (f, names) in &expect.xattr {
        for (n, w) in names {
            out.push(xattr_check(&f.value, n, w, evidence, caps));
        }
    }
    for (f, o) in &expect.owner {
        out.push(owner_check(&f.value, o, evidence, caps));
    }
    for (f, m) in &expect.mode {
        out.push(mode_check(&f.value, *m, evidence));
    }
    for f in &expect.absent {
        out.push(absent_check(&f.value, evidence));
    }
    for (f, l) in &expect.label {
        out.push(label_check(&f.value, l, evidence, caps));
    }
    for (d, o) in &expect.process_owner {
        out.push(process_owner_check(&d.value, o, evidence));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::evidence::Outcome;
    use crate::run::expect::{check_step, Captured};

    fn ctx(s: &str) -> Context {
        s.parse().unwrap()
    }

    fn expect(yaml: &str) -> Expect {
        let src = format!(
            "name: t\ndescription: d\nimages: {{vm1.img: {{size: 1M}}}}\ndomains: {{vm1: {{disks: [vm1.img]}}}}\nsteps:\n  - start: vm1\n    before: {{orig: vm1.img}}\n    expect:\n{yaml}"
        );
        crate::run::expect::first_step_expect(&src)
    }

    fn caps() -> Captures {
        let mut c = Captures::new();
        c.insert(
            "orig".parse().unwrap(),
            Captured {
                label: ctx("system_u:object_r:virt_content_t:s0"),
                imagelabel: None,
                ids: None,
            },
        );
        c
    }

    /// vm1.img as the VM showed it while a guest ran (Debian 12, libvirt 9.0).
    fn running_image() -> FileFacts {
        FileFacts {
            uid: 64055,
            gid: 64055,
            user: Some("libvirt-qemu".into()),
            group: Some("libvirt-qemu".into()),
            mode: 0o600,
            is_dir: false,
            context: Some(ctx("system_u:object_r:svirt_image_t:s0:c374,c778")),
            default_context: Some(ctx("system_u:object_r:virt_image_t:s0")),
            xattrs: vec![
                ("dac".into(), "+0:+0".into()),
                ("ref_dac".into(), "1".into()),
                ("ref_selinux".into(), "1".into()),
                (
                    "selinux".into(),
                    "system_u:object_r:virt_content_t:s0".into(),
                ),
                ("timestamp_dac".into(), "1796141689".into()),
                ("timestamp_selinux".into(), "1796141689".into()),
            ],
        }
    }

    fn state(file: &str, facts: Option<FileFacts>) -> Evidence {
        Evidence::FileState {
            file: file.into(),
            path: Some(format!("/x/{file}")),
            facts,
            why: None,
        }
    }

    fn run(e: &Expect, evidence: &[Evidence]) -> Vec<(String, bool, bool, String)> {
        let mut all = vec![Evidence::Action {
            action: "start vm1".into(),
            outcome: Outcome::Ok,
        }];
        all.extend_from_slice(evidence);
        check_step(e, false, &all, &caps(), &[])
            .into_iter()
            .filter(|c| c.key != CheckKey::Succeeds)
            .map(|c| (c.key.to_string(), c.passed, c.evidence_missing, c.observed))
            .collect()
    }

    #[test]
    fn xattrs_by_value_capture_presence_and_absence() {
        let e = expect(
            "      xattr:\n        vm1.img: {selinux: $orig, ref_selinux: 1, timestamp_selinux: present, dac: '+0:+0', ref_dac: absent}\n",
        );
        let got = run(&e, &[state("vm1.img", Some(running_image()))]);
        assert_eq!(
            got.iter().map(|c| (c.0.as_str(), c.1)).collect::<Vec<_>>(),
            [
                ("xattr.vm1.img.dac", true),
                ("xattr.vm1.img.ref_dac", false),
                ("xattr.vm1.img.ref_selinux", true),
                ("xattr.vm1.img.selinux", true),
                ("xattr.vm1.img.timestamp_selinux", true),
            ]
        );
        assert_eq!(got[1].3, "1");
        // After destroy: no attributes; the same expectations now fail where they named values.
        let mut gone = running_image();
        gone.xattrs.clear();
        let got = run(&e, &[state("vm1.img", Some(gone))]);
        assert_eq!(
            got.iter().map(|c| c.1).collect::<Vec<_>>(),
            [false, true, false, false, false]
        );
        assert_eq!(got[3].3, "absent");
    }

    #[test]
    fn a_capture_that_differs_fails_and_an_unread_file_is_missing_evidence() {
        let e = expect("      xattr: {vm1.img: {selinux: $orig}}\n");
        let mut other = running_image();
        other.xattrs[3].1 = "system_u:object_r:etc_t:s0".into();
        let got = run(&e, &[state("vm1.img", Some(other))]);
        assert!(!got[0].1 && !got[0].2, "{got:?}");
        let got = run(&e, &[]);
        assert!(!got[0].1 && got[0].2, "{got:?}");
        let got = run(&e, &[state("vm1.img", None)]);
        assert_eq!(got[0].3, "the file does not exist");
    }

    #[test]
    fn owners_by_name_or_number_and_modes() {
        let e = expect(
            "      owner: {vm1.img: 'libvirt-qemu:libvirt-qemu'}\n      mode: {vm1.img: '0600'}\n",
        );
        let got = run(&e, &[state("vm1.img", Some(running_image()))]);
        assert_eq!(got[0].3, "libvirt-qemu:libvirt-qemu (64055:64055)");
        assert!(got.iter().all(|c| c.1), "{got:?}");
        let e = expect("      owner: {vm1.img: 'root:64055'}\n      mode: {vm1.img: '0640'}\n");
        let got = run(&e, &[state("vm1.img", Some(running_image()))]);
        assert_eq!((got[0].1, got[1].1), (false, false));
        assert_eq!(got[1].3, "0600");
        let e = expect("      owner: {vm1.img: '64055:64055'}\n");
        assert!(run(&e, &[state("vm1.img", Some(running_image()))])[0].1);
    }

    #[test]
    fn absence_needs_a_resolved_path() {
        let e = expect("      absent: [vm1.img, $vm1.libdir]\n");
        let unresolved = Evidence::FileState {
            file: "$vm1.libdir".into(),
            path: None,
            facts: None,
            why: Some("vm1 was never seen running".into()),
        };
        let got = run(&e, &[state("vm1.img", None), unresolved]);
        assert_eq!(
            (got[0].1, got[1].1, got[1].2),
            (true, false, true),
            "{got:?}"
        );
        let got = run(&e, &[state("vm1.img", Some(running_image()))]);
        assert!(
            !got[0].1 && got[0].3.starts_with("exists: file 0600"),
            "{got:?}"
        );
    }

    #[test]
    fn the_default_label_and_a_match() {
        let e = expect(
            "      label: {vm1.img: default, $vm1.libdir: {type: svirt_image_t, level: 's0:c374,c778'}}\n",
        );
        let mut dir = running_image();
        dir.is_dir = true;
        let running = [
            state("vm1.img", Some(running_image())),
            state("$vm1.libdir", Some(dir)),
        ];
        let got = run(&e, &running);
        assert_eq!(got[0].0, "label.vm1.img");
        assert!(
            !got[0].1,
            "a relabelled image is not at its default: {got:?}"
        );
        assert!(got[1].1, "{got:?}");
        let mut restored = running_image();
        restored.context = restored.default_context.clone();
        assert!(run(&e, &[state("vm1.img", Some(restored))])[0].1);
    }

    #[test]
    fn the_qemu_process_owner() {
        let e = expect("      process_owner: {vm1: 'libvirt-qemu:libvirt-qemu'}\n");
        let ids = Ids {
            uid: 64055,
            gid: 64055,
            user: Some("libvirt-qemu".into()),
            group: Some("libvirt-qemu".into()),
        };
        let ev = Evidence::ProcessOwner {
            domain: "vm1".into(),
            pid: 42,
            ids: ids.clone(),
        };
        assert!(run(&e, &[ev])[0].1);
        let root = Evidence::ProcessOwner {
            domain: "vm1".into(),
            pid: 42,
            ids: Ids {
                uid: 0,
                gid: 0,
                user: Some("root".into()),
                group: Some("root".into()),
            },
        };
        let got = run(&e, &[root]);
        assert_eq!((got[0].1, got[0].3.as_str()), (false, "root:root (0:0)"));
        assert!(run(&e, &[])[0].2, "no QEMU: missing evidence");
    }

    /// Each reason a check has nothing to judge reaches the report as its observation, and
    /// `owner` and `process_owner` say it the same way.
    #[test]
    fn missing_evidence_says_why() {
        let e = expect(
            "      owner: {vm1.img: 'root:root'}\n      process_owner: {vm1: 'root:root'}\n",
        );
        let why = |ev: &[Evidence]| -> Vec<(bool, String)> {
            run(&e, ev).into_iter().map(|c| (c.2, c.3)).collect()
        };
        let m = |s: &str| (true, s.to_string());
        assert_eq!(
            why(&[]),
            [
                m("the step did not read this file"),
                m("no QEMU process (not running)")
            ]
        );
        assert_eq!(
            why(&[state("vm1.img", None)])[0],
            m("the file does not exist")
        );
        let unresolved = |why: Option<&str>| Evidence::FileState {
            file: "vm1.img".into(),
            path: None,
            facts: None,
            why: why.map(str::to_string),
        };
        assert_eq!(why(&[unresolved(None)])[0], m("not resolved"));
        assert_eq!(
            why(&[unresolved(Some("vm1 never ran"))])[0],
            m("vm1 never ran")
        );
    }

    #[test]
    fn outcome_any_judges_neither_success_nor_failure() {
        let e = expect("      outcome: any\n      xattr: {vm1.img: {ref_selinux: absent}}\n");
        let failed = Evidence::Action {
            action: "start vm1".into(),
            outcome: Outcome::Other {
                message: "boom".into(),
            },
        };
        let mut gone = running_image();
        gone.xattrs.clear();
        let checks = check_step(
            &e,
            false,
            &[failed, state("vm1.img", Some(gone))],
            &caps(),
            &[],
        );
        assert_eq!(
            checks.iter().map(|c| c.key.to_string()).collect::<Vec<_>>(),
            ["xattr.vm1.img.ref_selinux"]
        );
        assert!(checks[0].passed);
        assert_eq!(
            e.keys(false),
            [CheckKey::Xattr("vm1.img".into(), "ref_selinux".into())]
        );
    }

    #[test]
    fn check_keys_round_trip() {
        for k in [
            "xattr.vm1.img.ref_selinux",
            "owner.$vm1.libdir/master-key.aes",
            "mode.vm1.img",
            "absent.$vm1.libdir",
            "label.vm1.img",
            "process_owner.vm1",
        ] {
            let key: CheckKey = k.parse().unwrap();
            assert_eq!(key.to_string(), k);
        }
    }

    #[test]
    fn an_owner_of_a_capture_is_its_qemus_user_by_id() {
        let src = "name: t\ndescription: d\nimages: {vm1.img: {size: 1M}}\ndomains: {vm1: {disks: [vm1.img]}}\nsteps:\n  - start: vm1\n    capture: {vm1: vm1}\n    expect:\n      owner: {vm1.img: $vm1}\n";
        let e = crate::run::expect::first_step_expect(src);
        let judge = |qemu: Option<(u32, u32)>, file: FileFacts| {
            let mut c = Captures::new();
            c.insert(
                "vm1".parse().unwrap(),
                Captured {
                    label: ctx("system_u:system_r:svirt_t:s0:c374,c778"),
                    imagelabel: None,
                    ids: qemu.map(|(uid, gid)| Ids {
                        uid,
                        gid,
                        user: None,
                        group: None,
                    }),
                },
            );
            let all = [
                Evidence::Action {
                    action: "start vm1".into(),
                    outcome: Outcome::Ok,
                },
                state("vm1.img", Some(file)),
            ];
            let c = check_step(&e, false, &all, &c, &[])
                .into_iter()
                .find(|c| c.key == CheckKey::Owner("vm1.img".into()))
                .unwrap();
            (c.passed, c.evidence_missing, c.expected, c.observed)
        };
        // Fedora's qemu (107) or Debian's libvirt-qemu (64055): whichever QEMU ran as.
        let (passed, _, expected, _) = judge(Some((64055, 64055)), running_image());
        assert!(passed);
        assert!(
            expected.contains("64055:64055") && expected.contains("$vm1"),
            "{expected}"
        );
        let (passed, missing, _, observed) = judge(Some((107, 107)), running_image());
        assert!(!passed && !missing, "{observed}");
        let mut root = running_image();
        (root.uid, root.gid) = (0, 0);
        assert!(!judge(Some((64055, 64055)), root).0);
        // A capture without the process's ids: missing evidence, never a pass.
        let (passed, missing, _, observed) = judge(None, running_image());
        assert!(!passed && missing, "{observed}");
    }
}
