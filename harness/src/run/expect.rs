//! Judging one step: each expectation of the scenario against the evidence the step produced.
//! Pure functions, so recorded evidence can be replayed through them in tests.

use std::collections::BTreeMap;

use crate::context::{Context, Level};
use crate::evidence::{AvcRecord, Evidence, LabelChange, Outcome};
use crate::run::verdict::Check;
use crate::scenario::{
    AccessOutcome, AvcExpect, AvcMatch, ContextMatch, Expect, Name, TimelineMatch, Valued,
};

/// A domain's live seclabel, remembered by `capture:`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Captured {
    pub label: Context,
    pub imagelabel: Option<Context>,
}

pub type Captures = BTreeMap<Name, Captured>;

/// A reference that cannot be resolved makes its check fail with this text as the observation.
type Unresolved = String;

fn resolve_context(v: &Valued<Context>, caps: &Captures) -> Result<Context, Unresolved> {
    match v {
        Valued::Literal(c) => Ok(c.clone()),
        Valued::Capture(r) => {
            let c = caps
                .get(&r.name)
                .ok_or_else(|| format!("{r} was not captured (the domain had no live label)"))?;
            if r.imagelabel {
                c.imagelabel
                    .clone()
                    .ok_or_else(|| format!("{r}: the domain's live XML had no imagelabel"))
            } else {
                Ok(c.label.clone())
            }
        }
    }
}

fn resolve_level(v: &Valued<Level>, caps: &Captures) -> Result<Level, Unresolved> {
    match v {
        Valued::Literal(l) => Ok(l.clone()),
        Valued::Capture(r) => {
            let c = resolve_context(&Valued::Capture(r.clone()), caps)?;
            c.level()
                .cloned()
                .ok_or_else(|| format!("{r} ({c}) has no MLS level"))
        }
    }
}

fn describe_level(v: &Valued<Level>, caps: &Captures) -> String {
    match (v, resolve_level(v, caps)) {
        (Valued::Capture(r), Ok(l)) => format!("{l} ({r})"),
        _ => v.to_string(),
    }
}

/// Whether `c` satisfies `m`; the text says what was expected.
pub fn context_matches(
    m: &ContextMatch,
    c: &Context,
    caps: &Captures,
) -> Result<(bool, String), Unresolved> {
    let mut ok = true;
    let mut want = Vec::new();
    if let Some(v) = &m.context {
        let e = resolve_context(&v.value, caps)?;
        ok &= &e == c;
        want.push(match &v.value {
            Valued::Capture(r) => format!("{e} ({r})"),
            Valued::Literal(_) => e.to_string(),
        });
    }
    for (field, wanted, actual) in [
        ("user", &m.user, &c.user),
        ("role", &m.role, &c.role),
        ("type", &m.kind, &c.kind),
    ] {
        if let Some(w) = wanted {
            ok &= w == actual;
            want.push(format!("{field} {w}"));
        }
    }
    if let Some(v) = &m.level {
        let l = resolve_level(&v.value, caps)?;
        ok &= c.level() == Some(&l);
        want.push(format!("level {}", describe_level(&v.value, caps)));
    }
    if let Some(v) = &m.not_level {
        let l = resolve_level(&v.value, caps)?;
        ok &= c.level() != Some(&l);
        want.push(format!(
            "level other than {}",
            describe_level(&v.value, caps)
        ));
    }
    Ok((ok, want.join(", ")))
}

fn check(expectation: String, expected: String, observed: String, passed: bool) -> Check {
    Check {
        expectation,
        expected,
        observed,
        passed,
        known_bug: None,
    }
}

fn context_check(what: String, m: &ContextMatch, c: Option<&Context>, caps: &Captures) -> Check {
    match c {
        None => check(what, describe_match(m, caps), "no label".into(), false),
        Some(c) => match context_matches(m, c, caps) {
            Ok((ok, want)) => check(what, want, c.to_string(), ok),
            Err(why) => check(what, describe_match(m, caps), why, false),
        },
    }
}

fn describe_match(m: &ContextMatch, caps: &Captures) -> String {
    let dummy: Context = Context {
        user: String::new(),
        role: String::new(),
        kind: String::new(),
        range: None,
    };
    context_matches(m, &dummy, caps)
        .map(|(_, d)| d)
        .unwrap_or_else(|e| e)
}

/// Does one record match the pattern? Unresolvable references never match.
pub fn avc_matches(m: &AvcMatch, r: &AvcRecord, caps: &Captures) -> bool {
    let ctx = |cm: &Option<ContextMatch>, c: &Option<Context>| match (cm, c) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(cm), Some(c)) => context_matches(cm, c, caps).is_ok_and(|(ok, _)| ok),
    };
    r.denied
        && m.perms.iter().all(|p| r.perms.contains(p))
        && m.tclass
            .as_ref()
            .is_none_or(|t| r.tclass.as_ref() == Some(t))
        && m.comm.as_ref().is_none_or(|c| r.comm.as_ref() == Some(c))
        && ctx(&m.scontext, &r.scontext)
        && ctx(&m.tcontext, &r.tcontext)
}

fn describe_avc(m: &AvcMatch, caps: &Captures) -> String {
    let mut parts = vec!["denied".to_string()];
    if !m.perms.is_empty() {
        parts.push(format!("{{ {} }}", m.perms.join(" ")));
    }
    if let Some(s) = &m.scontext {
        parts.push(format!("scontext [{}]", describe_match(s, caps)));
    }
    if let Some(t) = &m.tcontext {
        parts.push(format!("tcontext [{}]", describe_match(t, caps)));
    }
    if let Some(c) = &m.tclass {
        parts.push(format!("tclass={c}"));
    }
    if let Some(c) = &m.comm {
        parts.push(format!("comm={c}"));
    }
    parts.join(" ")
}

/// One line per record, as a human reads AVCs.
pub fn avc_line(r: &AvcRecord) -> String {
    let ctx = |c: &Option<Context>| c.as_ref().map(|c| c.to_string()).unwrap_or("?".into());
    format!(
        "{} {} {{ {} }} comm={} {} scontext={} tcontext={} tclass={}{}",
        r.record_type,
        if r.denied { "denied" } else { "granted" },
        r.perms.join(" "),
        r.comm.as_deref().unwrap_or("?"),
        r.target.as_deref().unwrap_or(""),
        ctx(&r.scontext),
        ctx(&r.tcontext),
        r.tclass.as_deref().unwrap_or("?"),
        if r.permissive { " permissive=1" } else { "" }
    )
}

fn avc_lines(records: &[&AvcRecord]) -> String {
    if records.is_empty() {
        "no denials".into()
    } else {
        records
            .iter()
            .map(|r| avc_line(r))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn timeline_text(changes: &[LabelChange]) -> String {
    changes
        .iter()
        .map(|c| {
            let label = match (&c.context, &c.error) {
                (Some(ctx), _) => ctx.to_string(),
                (None, Some(e)) => format!("<{e}>"),
                (None, None) => "<no label>".into(),
            };
            format!("+{:.3}s {label}", c.at_us as f64 / 1e6)
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn timeline_checks(
    file: &Name,
    m: &TimelineMatch,
    changes: &[LabelChange],
    caps: &Captures,
) -> Vec<Check> {
    let observed = timeline_text(changes);
    let levels: Vec<Option<&Level>> = changes
        .iter()
        .map(|c| c.context.as_ref().and_then(|c| c.level()))
        .collect();
    let mut out = Vec::new();
    let what = format!("timeline of {file}");
    for (want, v, never) in [
        ("never carried level", &m.never_level, true),
        ("carried level", &m.saw_level, false),
    ] {
        if let Some(v) = v {
            match resolve_level(&v.value, caps) {
                Ok(l) => {
                    let seen = levels.contains(&Some(&l));
                    out.push(check(
                        what.clone(),
                        format!("{want} {}", describe_level(&v.value, caps)),
                        observed.clone(),
                        seen != never,
                    ))
                }
                Err(why) => out.push(check(what.clone(), want.into(), why, false)),
            }
        }
    }
    if let Some(true) = m.unchanged {
        let distinct = changes.windows(2).all(|w| w[0].context == w[1].context);
        out.push(check(what, "label unchanged".into(), observed, distinct));
    }
    out
}

/// Everything one step must show, compared with what it showed. `is_probe` steps are judged
/// by their access outcome instead of libvirt success.
pub fn check_step(
    expect: &Expect,
    is_probe: bool,
    evidence: &[Evidence],
    caps: &Captures,
    ignore: &[AvcMatch],
) -> Vec<Check> {
    let mut out = Vec::new();
    let outcomes: Vec<(&String, &Outcome)> = evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Action { action, outcome } => Some((action, outcome)),
            _ => None,
        })
        .collect();
    let describe_outcome = |o: &Outcome| match o {
        Outcome::Ok => "succeeded".to_string(),
        Outcome::Libvirt(e) => format!("{}: {}", e.code, e.message),
        Outcome::Errno { errno } => errno.clone(),
        Outcome::Other { message } => message.clone(),
    };

    if is_probe {
        if let Some(access) = expect.access {
            for (action, o) in &outcomes {
                let allowed = matches!(o, Outcome::Ok);
                let denied =
                    matches!(o, Outcome::Errno { errno } if errno == "EACCES" || errno == "EPERM");
                let passed = match access {
                    AccessOutcome::Allowed => allowed,
                    AccessOutcome::Denied => denied,
                };
                let expected = match access {
                    AccessOutcome::Allowed => "allowed",
                    AccessOutcome::Denied => "denied (EACCES)",
                };
                out.push(check(
                    format!("access by {action}"),
                    expected.into(),
                    if allowed {
                        "allowed".into()
                    } else {
                        describe_outcome(o)
                    },
                    passed,
                ));
            }
        }
    } else if let Some(em) = &expect.error {
        let mut want = Vec::new();
        if let Some(c) = &em.code {
            want.push(c.value.clone());
        }
        if let Some(m) = &em.message {
            want.push(format!("message containing {m:?}"));
        }
        let expected = format!("libvirt error {}", want.join(", "));
        for (action, o) in &outcomes {
            let passed = match o {
                Outcome::Libvirt(e) => {
                    em.code.as_ref().is_none_or(|c| c.value == e.code)
                        && em.message.as_ref().is_none_or(|m| e.message.contains(m))
                }
                _ => false,
            };
            out.push(check(
                format!("{action} fails"),
                expected.clone(),
                describe_outcome(o),
                passed,
            ));
        }
    } else {
        for (action, o) in &outcomes {
            out.push(check(
                format!("{action} succeeds"),
                "succeeded".into(),
                describe_outcome(o),
                matches!(o, Outcome::Ok),
            ));
        }
    }

    for (domain, m) in &expect.process {
        let found = evidence.iter().find_map(|e| match e {
            Evidence::ProcessLabel {
                domain: d, context, ..
            } if d == domain.value.as_str() => Some(context),
            _ => None,
        });
        out.push(context_check(
            format!("process of {}", domain.value),
            m,
            found,
            caps,
        ));
    }
    for (file, m) in &expect.file {
        let found = evidence.iter().find_map(|e| match e {
            Evidence::FileContext {
                file: f, context, ..
            } if f == file.value.as_str() => Some(context.as_ref()),
            _ => None,
        });
        out.push(context_check(
            format!("label of {}", file.value),
            m,
            found.flatten(),
            caps,
        ));
    }
    for (file, m) in &expect.timeline {
        let changes = evidence.iter().find_map(|e| match e {
            Evidence::Timeline { file: f, changes } if f == file.value.as_str() => Some(changes),
            _ => None,
        });
        match changes {
            Some(c) => out.extend(timeline_checks(&file.value, m, c, caps)),
            None => out.push(check(
                format!("timeline of {}", file.value),
                "a label timeline".into(),
                "the file was not watched".into(),
                false,
            )),
        }
    }

    let records: Vec<&AvcRecord> = evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Avcs { records, .. } => Some(records),
            _ => None,
        })
        .flatten()
        .filter(|r| r.denied && !ignore.iter().any(|m| avc_matches(m, r, caps)))
        .collect();
    match &expect.avc {
        Some(AvcExpect::None(_)) => out.push(check(
            "no denials".into(),
            "no AVC denials".into(),
            avc_lines(&records),
            records.is_empty(),
        )),
        Some(AvcExpect::Denials(list)) => {
            for m in list {
                let hits: Vec<&AvcRecord> = records
                    .iter()
                    .copied()
                    .filter(|r| avc_matches(m, r, caps))
                    .collect();
                out.push(check(
                    "denial logged".into(),
                    describe_avc(m, caps),
                    if hits.is_empty() {
                        format!("no such denial; logged: {}", avc_lines(&records))
                    } else {
                        avc_lines(&hits)
                    },
                    !hits.is_empty(),
                ));
            }
        }
        None => {}
    }
    for m in &expect.no_avc {
        let hits: Vec<&AvcRecord> = records
            .iter()
            .copied()
            .filter(|r| avc_matches(m, r, caps))
            .collect();
        out.push(check(
            "no such denial".into(),
            format!("none of: {}", describe_avc(m, caps)),
            avc_lines(&hits),
            hits.is_empty(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{load_str, Step};
    use std::path::Path;

    fn ctx(s: &str) -> Context {
        s.parse().unwrap()
    }

    fn steps(expect_yaml: &str) -> Vec<Step> {
        let src = format!(
            "name: t\ndescription: d\nimages: {{vm1.img: {{size: 1M}}}}\ndomains: {{vm1: {{disks: [vm1.img]}}, vm2: {{}}}}\nsteps:\n  - start: [vm1, vm2]\n    capture: {{vm1: vm1, vm2: vm2}}\n    watch: [vm1.img]\n    expect:\n{expect_yaml}"
        );
        load_str(Path::new("t.yaml"), &src).unwrap().steps
    }

    fn caps() -> Captures {
        let mut c = Captures::new();
        c.insert(
            "vm1".parse().unwrap(),
            Captured {
                label: ctx("system_u:system_r:svirt_t:s0:c146,c1010"),
                imagelabel: Some(ctx("system_u:object_r:svirt_image_t:s0:c146,c1010")),
            },
        );
        c.insert(
            "vm2".parse().unwrap(),
            Captured {
                label: ctx("system_u:system_r:svirt_t:s0:c161,c423"),
                imagelabel: Some(ctx("system_u:object_r:svirt_image_t:s0:c161,c423")),
            },
        );
        c
    }

    fn change(at_us: u64, c: &str) -> LabelChange {
        LabelChange {
            at_us,
            context: Some(ctx(c)),
            error: None,
        }
    }

    /// The timeline the facts recorded with remember_owner = 0.
    fn harmful_timeline() -> Evidence {
        Evidence::Timeline {
            file: "vm1.img".into(),
            changes: vec![
                change(0, "system_u:object_r:svirt_image_t:s0:c146,c1010"),
                change(412_000, "system_u:object_r:svirt_image_t:s0:c161,c423"),
                change(640_000, "system_u:object_r:virt_image_t:s0"),
            ],
        }
    }

    #[test]
    fn transient_relabel_to_other_guest_fails_never_level() {
        let s = steps("      timeline: {vm1.img: {never_level: $vm2}}\n");
        let checks = check_step(
            &s[0].options.expect,
            false,
            &[harmful_timeline()],
            &caps(),
            &[],
        );
        let t = checks
            .iter()
            .find(|c| c.expectation == "timeline of vm1.img")
            .unwrap();
        assert!(!t.passed);
        assert!(t.expected.contains("s0:c161,c423 ($vm2)"), "{}", t.expected);
        assert!(t
            .observed
            .contains("+0.412s system_u:object_r:svirt_image_t:s0:c161,c423"));
    }

    #[test]
    fn steady_timeline_passes_never_level() {
        let s = steps("      timeline: {vm1.img: {never_level: $vm2, unchanged: true}}\n");
        let ev = Evidence::Timeline {
            file: "vm1.img".into(),
            changes: vec![change(0, "system_u:object_r:svirt_image_t:s0:c146,c1010")],
        };
        let checks = check_step(&s[0].options.expect, false, &[ev], &caps(), &[]);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn file_level_from_capture() {
        let s = steps("      file: {vm1.img: {type: svirt_image_t, level: $vm1}}\n");
        let ev = |c: &str| Evidence::FileContext {
            file: "vm1.img".into(),
            path: "/x/vm1.img".into(),
            context: Some(ctx(c)),
        };
        let ok = check_step(
            &s[0].options.expect,
            false,
            &[ev("system_u:object_r:svirt_image_t:s0:c146,c1010")],
            &caps(),
            &[],
        );
        assert!(ok.iter().all(|c| c.passed));
        let bad = check_step(
            &s[0].options.expect,
            false,
            &[ev("system_u:object_r:svirt_image_t:s0:c161,c423")],
            &caps(),
            &[],
        );
        let c = bad.iter().find(|c| !c.passed).unwrap();
        assert_eq!(c.expected, "type svirt_image_t, level s0:c146,c1010 ($vm1)");
    }

    fn denial(s: &str, t: &str, perm: &str) -> AvcRecord {
        AvcRecord {
            record_type: "AVC".into(),
            denied: true,
            perms: vec![perm.into()],
            scontext: Some(ctx(s)),
            tcontext: Some(ctx(t)),
            tclass: Some("file".into()),
            permissive: false,
            comm: Some("qemu-system-x86".into()),
            target: Some("name=\"vm1.img\"".into()),
            raw: String::new(),
        }
    }

    #[test]
    fn no_avc_for_captured_domain() {
        let s = steps("      no_avc: [{scontext: {type: svirt_t, level: $vm1}}]\n");
        let rec = denial(
            "system_u:system_r:svirt_t:s0:c146,c1010",
            "system_u:object_r:virt_image_t:s0",
            "read",
        );
        let ev = Evidence::Avcs {
            records: vec![rec],
            filtered: 3,
        };
        let checks = check_step(
            &s[0].options.expect,
            false,
            std::slice::from_ref(&ev),
            &caps(),
            &[],
        );
        let c = checks
            .iter()
            .find(|c| c.expectation == "no such denial")
            .unwrap();
        assert!(!c.passed);
        assert!(c.observed.contains("denied { read }"), "{}", c.observed);
        // A scenario's ignore rule that covers the record turns it into noise.
        let ignore = steps("      no_avc: [{comm: qemu-system-x86}]\n")[0]
            .options
            .expect
            .no_avc
            .clone();
        let checks = check_step(&s[0].options.expect, false, &[ev], &caps(), &ignore);
        assert!(checks.iter().all(|c| c.passed));
    }

    #[test]
    fn expected_libvirt_error() {
        let s = steps("      error: {code: VIR_ERR_OPERATION_INVALID, message: already in use}\n");
        let ev = Evidence::Action {
            action: "attach_disk".into(),
            outcome: Outcome::Libvirt(crate::evidence::LibvirtError {
                code: "VIR_ERR_OPERATION_INVALID".into(),
                number: 55,
                domain: "VIR_FROM_SECURITY".into(),
                message: "Requested operation is not valid: Setting different SELinux label on /x/vm1.img which is already in use".into(),
            }),
        };
        let checks = check_step(&s[0].options.expect, false, &[ev], &caps(), &[]);
        assert!(checks[0].passed, "{checks:#?}");
        let ok = Evidence::Action {
            action: "attach_disk".into(),
            outcome: Outcome::Ok,
        };
        let checks = check_step(&s[0].options.expect, false, &[ok], &caps(), &[]);
        assert!(!checks[0].passed);
        assert_eq!(checks[0].observed, "succeeded");
    }

    #[test]
    fn missing_capture_fails_rather_than_passes() {
        let s = steps("      file: {vm1.img: {level: $vm1}}\n");
        let ev = Evidence::FileContext {
            file: "vm1.img".into(),
            path: "/x".into(),
            context: Some(ctx("system_u:object_r:svirt_image_t:s0:c1,c2")),
        };
        let checks = check_step(&s[0].options.expect, false, &[ev], &Captures::new(), &[]);
        assert!(!checks[0].passed);
        assert!(checks[0].observed.contains("was not captured"));
    }
}
