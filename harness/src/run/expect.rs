//! Judging one step: each expectation of the scenario against the evidence the step produced.
//! Pure functions, so recorded evidence can be replayed through them in tests. One function per
//! kind of check; `check_step` runs them in the order `Expect::keys` lists them.

use std::collections::BTreeMap;

use crate::context::{Context, Level, MlsRange};
use crate::evidence::timeline::blind_spots;
use crate::evidence::{AvcRecord, Evidence, LabelChange, Outcome};
use crate::run::verdict::Check;
use crate::scenario::{
    AccessOutcome, At, AvcExpect, AvcMatch, CaptureRef, CheckKey, ContextMatch, ErrorMatch, Expect,
    Name, TimelineCheck, TimelineMatch, Valued,
};

pub mod bookkeeping;
mod helpers;
mod swtpm;

/// A domain's live seclabel, remembered by `capture:`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Captured {
    pub label: Context,
    pub imagelabel: Option<Context>,
    /// Who the domain's QEMU ran as (`owner: {FILE: $vm1}`); None for a `before:` capture
    /// and a policy role.
    #[serde(default)]
    pub ids: Option<crate::evidence::file_state::Ids>,
}

pub type Captures = BTreeMap<Name, Captured>;

/// A reference that cannot be resolved: its check fails with this text as the observation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("the policy role {0} was not resolved on this target")]
    Role(CaptureRef),
    #[error("{0} was not captured (the domain had no live label)")]
    NotCaptured(CaptureRef),
    #[error("{0}: the domain's live XML had no imagelabel")]
    NoImagelabel(CaptureRef),
    #[error("{0} ({1}) has no MLS level")]
    NoLevel(CaptureRef, Box<Context>),
    /// A `$` in a known bug's `observed:` that is not a capture reference.
    #[error(transparent)]
    NotAReference(crate::scenario::ValueError),
}

fn resolve_capture(r: &CaptureRef, caps: &Captures) -> Result<Context, Unresolved> {
    let c = caps.get(&r.name).ok_or_else(|| match r.role() {
        Some(_) => Unresolved::Role(r.clone()),
        None => Unresolved::NotCaptured(r.clone()),
    })?;
    if r.imagelabel {
        c.imagelabel
            .clone()
            .ok_or_else(|| Unresolved::NoImagelabel(r.clone()))
    } else {
        Ok(c.label.clone())
    }
}

fn resolve_context(v: &Valued<Context>, caps: &Captures) -> Result<Context, Unresolved> {
    match v {
        Valued::Literal(c) => Ok(c.clone()),
        Valued::Capture(r) => resolve_capture(r, caps),
    }
}

/// The type a literal, a policy role (`$domain`: resolved into the captures when the run
/// starts) or a capture's `.type` stands for.
fn resolve_type(v: &Valued<String>, caps: &Captures) -> Result<String, Unresolved> {
    match v {
        Valued::Literal(t) => Ok(t.clone()),
        Valued::Capture(r) => resolve_capture(r, caps).map(|c| c.kind),
    }
}

/// The whole MLS range a literal or a capture stands for.
fn resolve_range(v: &Valued<MlsRange>, caps: &Captures) -> Result<MlsRange, Unresolved> {
    match v {
        Valued::Literal(l) => Ok(l.clone()),
        Valued::Capture(r) => {
            let c = resolve_capture(r, caps)?;
            c.range
                .clone()
                .ok_or_else(|| Unresolved::NoLevel(r.clone(), Box::new(c.clone())))
        }
    }
}

/// One end of the range a literal or a capture stands for (`high` picks the clearance).
fn resolve_end(v: &Valued<Level>, high: bool, caps: &Captures) -> Result<Level, Unresolved> {
    match v {
        Valued::Literal(l) => Ok(l.clone()),
        Valued::Capture(r) => {
            let c = resolve_capture(r, caps)?;
            let range = c
                .range
                .as_ref()
                .ok_or_else(|| Unresolved::NoLevel(r.clone(), Box::new(c.clone())))?;
            Ok(if high { &range.high } else { &range.low }.clone())
        }
    }
}

fn describe<T: std::fmt::Display>(v: &Valued<T>, resolved: &impl std::fmt::Display) -> String {
    match v {
        Valued::Capture(r) => format!("{resolved} ({r})"),
        Valued::Literal(_) => resolved.to_string(),
    }
}

/// The text a known bug's `observed:` stands for: each `$NAME` / `$NAME.imagelabel` replaced by
/// that capture's MLS range, as labels print it; a role (`$image`) or `$NAME.type` by its type.
pub fn expand_captures(text: &str, caps: &Captures) -> Result<String, Unresolved> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
            .map_or(tail.len(), |e| e + 1);
        let token = tail[..end].trim_end_matches('.');
        let r: CaptureRef = token.parse().map_err(Unresolved::NotAReference)?;
        if r.of_type || r.role().is_some() {
            out.push_str(&resolve_type(&Valued::Capture(r), caps)?);
        } else {
            out.push_str(&resolve_range(&Valued::Capture(r), caps)?.to_string());
        }
        rest = &tail[token.len()..];
    }
    out.push_str(rest);
    Ok(out)
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
        want.push(describe(&v.value, &e));
    }
    if let Some(v) = &m.kind {
        let t = resolve_type(&v.value, caps)?;
        ok &= t == c.kind;
        want.push(format!("type {}", describe(&v.value, &t)));
    }
    for (field, wanted, actual) in [("user", &m.user, &c.user), ("role", &m.role, &c.role)] {
        if let Some(w) = wanted {
            ok &= w == actual;
            want.push(format!("{field} {w}"));
        }
    }
    // A level expectation is the whole range: s0:c1,c2 is not s0:c1,c2-s0:c0.c1023.
    if let Some(v) = &m.level {
        let l = resolve_range(&v.value, caps)?;
        ok &= c.range.as_ref() == Some(&l);
        want.push(format!("level {}", describe(&v.value, &l)));
    }
    if let Some(v) = &m.not_level {
        let l = resolve_range(&v.value, caps)?;
        ok &= c.range.as_ref() != Some(&l);
        want.push(format!("level other than {}", describe(&v.value, &l)));
    }
    for (field, v, high) in [("low", &m.low, false), ("high", &m.high, true)] {
        if let Some(v) = v {
            let l = resolve_end(&v.value, high, caps)?;
            let actual = c
                .range
                .as_ref()
                .map(|r| if high { &r.high } else { &r.low });
            ok &= actual == Some(&l);
            want.push(format!("{field} level {}", describe(&v.value, &l)));
        }
    }
    Ok((ok, want.join(", ")))
}

fn check(
    key: CheckKey,
    expectation: String,
    expected: String,
    observed: String,
    passed: bool,
) -> Check {
    Check {
        key,
        expectation,
        expected,
        observed,
        passed,
        evidence_missing: false,
        known_bug: None,
    }
}

/// A check that cannot be judged: the evidence it needs is missing or a reference did not
/// resolve. It fails, and no known bug excuses it.
fn missing(key: CheckKey, expectation: String, expected: String, why: String) -> Check {
    Check {
        evidence_missing: true,
        ..check(key, expectation, expected, why, false)
    }
}

fn context_check(
    key: CheckKey,
    what: String,
    m: &ContextMatch,
    c: Option<&Context>,
    caps: &Captures,
) -> Check {
    match c {
        None => missing(key, what, describe_match(m, caps), "no label".into()),
        Some(c) => match context_matches(m, c, caps) {
            Ok((ok, want)) => check(key, what, want, c.to_string(), ok),
            Err(why) => missing(key, what, describe_match(m, caps), why.to_string()),
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
        .unwrap_or_else(|e| e.to_string())
}

/// The whole context a MATCH names with `context:` (literal or captured), if it names one.
pub fn whole_context(m: &ContextMatch, caps: &Captures) -> Option<Context> {
    m.context
        .as_ref()
        .and_then(|v| resolve_context(&v.value, caps).ok())
}

/// Does one record match the pattern? Unresolvable references never match.
pub fn avc_matches(m: &AvcMatch, r: &AvcRecord, caps: &Captures) -> bool {
    m.perms.iter().all(|p| r.perms.contains(p)) && avc_matches_but_perms(m, r, caps)
}

/// Does an `ignore_avc` pattern hide this record? As a noise rule does: every permission the
/// record denies must be among the pattern's `perms` (`perms_all_among`), so an ignore rule for
/// `getattr` never hides a denial of `getattr read`.
pub fn ignore_matches(m: &AvcMatch, r: &AvcRecord, caps: &Captures) -> bool {
    crate::evidence::audit::perms_all_among(&m.perms, &r.perms) && avc_matches_but_perms(m, r, caps)
}

fn avc_matches_but_perms(m: &AvcMatch, r: &AvcRecord, caps: &Captures) -> bool {
    let ctx = |cm: &Option<ContextMatch>, c: &Option<Context>| match (cm, c) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(cm), Some(c)) => context_matches(cm, c, caps).is_ok_and(|(ok, _)| ok),
    };
    r.denied
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

fn describe_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "succeeded".to_string(),
        Outcome::Libvirt(e) => format!("{} ({}): {}", e.code, e.domain, e.message),
        Outcome::Errno { errno } => errno.clone(),
        Outcome::DaemonFailed { message } => format!("the daemon did not come up: {message}"),
        Outcome::Other { message } => message.clone(),
    }
}

/// The step's actions and how each ended.
fn outcomes(evidence: &[Evidence]) -> Vec<(&String, &Outcome)> {
    evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Action { action, outcome } => Some((action, outcome)),
            _ => None,
        })
        .collect()
}

/// An action that left no outcome cannot pass its check.
fn no_outcome(key: CheckKey, expected: &str) -> Check {
    missing(
        key,
        "the action".into(),
        expected.into(),
        "the step recorded no outcome of its action".into(),
    )
}

/// `access: allowed|denied` of a probe step: denied means the open failed with EACCES (the
/// kernel's answer to a policy denial), not any error.
fn access_checks(access: AccessOutcome, evidence: &[Evidence]) -> Vec<Check> {
    let expected = match access {
        AccessOutcome::Allowed => "allowed",
        AccessOutcome::Denied => "denied (EACCES)",
    };
    let outs = outcomes(evidence);
    if outs.is_empty() {
        return vec![no_outcome(CheckKey::Access, expected)];
    }
    outs.into_iter()
        .map(|(action, o)| {
            let allowed = matches!(o, Outcome::Ok);
            let passed = match access {
                AccessOutcome::Allowed => allowed,
                AccessOutcome::Denied => {
                    matches!(o, Outcome::Errno { errno } if errno == "EACCES")
                }
            };
            check(
                CheckKey::Access,
                format!("access by {action}"),
                expected.into(),
                if allowed {
                    "allowed".into()
                } else {
                    describe_outcome(o)
                },
                passed,
            )
        })
        .collect()
}

/// `error: {code, domain, message}`: the action failed with this libvirt error.
fn error_checks(em: &ErrorMatch, evidence: &[Evidence]) -> Vec<Check> {
    let mut want = Vec::new();
    if let Some(c) = &em.code {
        want.push(c.value.clone());
    }
    if let Some(d) = &em.domain {
        want.push(format!("from {}", d.value));
    }
    if let Some(m) = &em.message {
        want.push(format!("message containing {:?}", m.value));
    }
    let expected = format!("libvirt error {}", want.join(", "));
    let outs = outcomes(evidence);
    if outs.is_empty() {
        return vec![no_outcome(CheckKey::Error, &expected)];
    }
    outs.into_iter()
        .map(|(action, o)| {
            let passed = match o {
                Outcome::Libvirt(e) => {
                    em.code.as_ref().is_none_or(|c| c.value == e.code)
                        && em.domain.as_ref().is_none_or(|d| d.value == e.domain)
                        && em
                            .message
                            .as_ref()
                            .is_none_or(|m| e.message.contains(&m.value))
                }
                // Only a message: the daemon's log carries no code or domain (the validator
                // refuses them on a restart).
                Outcome::DaemonFailed { message } => {
                    em.code.is_none()
                        && em.domain.is_none()
                        && em
                            .message
                            .as_ref()
                            .is_none_or(|m| message.contains(&m.value))
                }
                _ => false,
            };
            check(
                CheckKey::Error,
                format!("{action} fails"),
                expected.clone(),
                describe_outcome(o),
                passed,
            )
        })
        .collect()
}

/// Without `error:`, every action of the step must succeed.
fn success_checks(evidence: &[Evidence]) -> Vec<Check> {
    let outs = outcomes(evidence);
    if outs.is_empty() {
        return vec![no_outcome(CheckKey::Succeeds, "succeeded")];
    }
    outs.into_iter()
        .map(|(action, o)| {
            check(
                CheckKey::Succeeds,
                format!("{action} succeeds"),
                "succeeded".into(),
                describe_outcome(o),
                matches!(o, Outcome::Ok),
            )
        })
        .collect()
}

/// `process: {DOMAIN: MATCH}`: the label of the domain's QEMU process.
fn process_check(domain: &Name, m: &ContextMatch, evidence: &[Evidence], caps: &Captures) -> Check {
    let found = evidence.iter().find_map(|e| match e {
        Evidence::ProcessLabel {
            domain: d, context, ..
        } if d == domain.as_str() => Some(context),
        _ => None,
    });
    context_check(
        CheckKey::Process(domain.to_string()),
        format!("process of {domain}"),
        m,
        found,
        caps,
    )
}

/// Every `capture:` of the step: the QEMU process must run in the label libvirt's live XML
/// claims. The capture itself is what the host shows, so later `$NAME` references compare
/// against reality; this check keeps the claim honest.
fn capture_checks(evidence: &[Evidence]) -> Vec<Check> {
    evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::DomainSeclabel {
                domain,
                label: Some(claim),
                process: Some(real),
                ..
            } => Some(check(
                CheckKey::Process(domain.clone()),
                format!("capture of {domain}"),
                format!("QEMU runs as libvirt's live XML says: {claim}"),
                real.to_string(),
                claim == real,
            )),
            _ => None,
        })
        .collect()
}

/// `file: {IMAGE: MATCH}`: the label of the image after the step.
fn file_check(file: &Name, m: &ContextMatch, evidence: &[Evidence], caps: &Captures) -> Check {
    let found = evidence.iter().find_map(|e| match e {
        Evidence::FileContext {
            file: f, context, ..
        } if f == file.as_str() => Some(context.as_ref()),
        _ => None,
    });
    context_check(
        CheckKey::File(file.to_string()),
        format!("label of {file}"),
        m,
        found.flatten(),
        caps,
    )
}

/// `never_level` / `saw_level`: whether the file carried a range at some moment of the step.
fn timeline_level_check(
    file: &Name,
    which: TimelineCheck,
    v: &Valued<MlsRange>,
    changes: &[LabelChange],
    caps: &Captures,
) -> Check {
    let never = which == TimelineCheck::NeverLevel;
    let want = if never {
        "never carried level"
    } else {
        "carried level"
    };
    let key = CheckKey::Timeline(file.to_string(), which);
    let what = format!("timeline of {file}");
    match resolve_range(v, caps) {
        Ok(l) => {
            let seen = changes
                .iter()
                .any(|c| c.context.as_ref().and_then(|c| c.range.as_ref()) == Some(&l));
            let blind = blind_spots(changes);
            if never && !seen && !blind.is_empty() {
                // An absence counts only where the watcher could have seen the opposite.
                return check(
                    key,
                    what,
                    format!("{want} {}", describe(v, &l)),
                    format!(
                        "{}; but the timeline has gaps, so the level may have come and gone unseen: {}",
                        timeline_text(changes),
                        blind.join("; ")
                    ),
                    false,
                );
            }
            check(
                key,
                what,
                format!("{want} {}", describe(v, &l)),
                timeline_text(changes),
                seen != never,
            )
        }
        Err(why) => missing(key, what, want.into(), why.to_string()),
    }
}

/// `unchanged: true`: the label never changed during the step.
fn timeline_unchanged_check(file: &Name, changes: &[LabelChange]) -> Check {
    let steady = changes.windows(2).all(|w| w[0].context == w[1].context);
    let blind = blind_spots(changes);
    let observed = if blind.is_empty() {
        timeline_text(changes)
    } else {
        format!(
            "{}; but the timeline has gaps: {}",
            timeline_text(changes),
            blind.join("; ")
        )
    };
    check(
        CheckKey::Timeline(file.to_string(), TimelineCheck::Unchanged),
        format!("timeline of {file}"),
        "label unchanged".into(),
        observed,
        steady && blind.is_empty(),
    )
}

fn timeline_checks(
    file: &Name,
    m: &TimelineMatch,
    evidence: &[Evidence],
    caps: &Captures,
) -> Vec<Check> {
    let changes = evidence.iter().find_map(|e| match e {
        Evidence::Timeline {
            file: f, changes, ..
        } if f == file.as_str() => Some(changes),
        _ => None,
    });
    let mut wanted = Vec::new();
    if let Some(v) = &m.never_level {
        wanted.push((TimelineCheck::NeverLevel, Some(&v.value)));
    }
    if let Some(v) = &m.saw_level {
        wanted.push((TimelineCheck::SawLevel, Some(&v.value)));
    }
    if m.unchanged == Some(true) {
        wanted.push((TimelineCheck::Unchanged, None));
    }
    wanted
        .into_iter()
        .map(|(which, v)| match (changes, v) {
            (None, _) => missing(
                CheckKey::Timeline(file.to_string(), which),
                format!("timeline of {file}"),
                "a label timeline".into(),
                "the file was not watched".into(),
            ),
            (Some(c), Some(v)) => timeline_level_check(file, which, v, c, caps),
            (Some(c), None) => timeline_unchanged_check(file, c),
        })
        .collect()
}

/// The step's denials, less the scenario's `ignore_avc`.
fn denials<'e>(
    evidence: &'e [Evidence],
    caps: &Captures,
    ignore: &[At<AvcMatch>],
) -> Vec<&'e AvcRecord> {
    evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Avcs { records, .. } => Some(records),
            _ => None,
        })
        .flatten()
        .filter(|r| r.denied && !ignore.iter().any(|m| ignore_matches(&m.value, r, caps)))
        .collect()
}

/// `avc: none`: no denial at all was logged during the step.
fn avc_none_check(records: &[&AvcRecord]) -> Check {
    check(
        CheckKey::AvcNone,
        "no denials".into(),
        "no AVC denials".into(),
        avc_lines(records),
        records.is_empty(),
    )
}

/// `avc: [...]`: the N-th listed denial was logged.
fn avc_denial_check(n: usize, m: &AvcMatch, records: &[&AvcRecord], caps: &Captures) -> Check {
    let hits: Vec<&AvcRecord> = records
        .iter()
        .copied()
        .filter(|r| avc_matches(m, r, caps))
        .collect();
    // A permissive=1 record is an access that was allowed and only logged: it shows what
    // would be checked, never that the kernel denied it.
    let denied: Vec<&AvcRecord> = hits.iter().copied().filter(|r| !r.permissive).collect();
    check(
        CheckKey::AvcDenial(n),
        "denial logged".into(),
        describe_avc(m, caps),
        if !denied.is_empty() {
            avc_lines(&denied)
        } else if !hits.is_empty() {
            format!(
                "only permissive=1 records (allowed, not denied): {}",
                avc_lines(&hits)
            )
        } else {
            format!("no such denial; logged: {}", avc_lines(records))
        },
        !denied.is_empty(),
    )
}

/// `no_avc: [...]`: the N-th pattern matched no denial.
fn no_avc_check(n: usize, m: &AvcMatch, records: &[&AvcRecord], caps: &Captures) -> Check {
    let hits: Vec<&AvcRecord> = records
        .iter()
        .copied()
        .filter(|r| avc_matches(m, r, caps))
        .collect();
    check(
        CheckKey::NoAvc(n),
        "no such denial".into(),
        format!("none of: {}", describe_avc(m, caps)),
        avc_lines(&hits),
        hits.is_empty(),
    )
}

/// Everything one step must show, compared with what it showed. `is_probe` steps are judged
/// by their access outcome instead of libvirt success.
pub fn check_step(
    expect: &Expect,
    is_probe: bool,
    evidence: &[Evidence],
    caps: &Captures,
    ignore: &[At<AvcMatch>],
) -> Vec<Check> {
    let mut out = Vec::new();
    if is_probe {
        if let Some(access) = expect.access {
            out.extend(access_checks(access, evidence));
        }
    } else if expect.outcome.is_some() {
        // `outcome: any`: the action's result is recorded, deliberately not judged.
    } else if let Some(em) = &expect.error {
        out.extend(error_checks(&em.value, evidence));
    } else {
        out.extend(success_checks(evidence));
    }
    out.extend(capture_checks(evidence));
    for (domain, m) in &expect.process {
        out.push(process_check(&domain.value, m, evidence, caps));
    }
    for (file, m) in &expect.file {
        out.push(file_check(&file.value, m, evidence, caps));
    }
    for (file, m) in &expect.timeline {
        out.extend(timeline_checks(&file.value, m, evidence, caps));
    }
    let records = denials(evidence, caps, ignore);
    match &expect.avc {
        Some(AvcExpect::None) => out.push(avc_none_check(&records)),
        Some(AvcExpect::Denials(list)) => {
            for (n, m) in list.iter().enumerate() {
                out.push(avc_denial_check(n, &m.value, &records, caps));
            }
        }
        None => {}
    }
    for (n, m) in expect.no_avc.iter().enumerate() {
        out.push(no_avc_check(n, &m.value, &records, caps));
    }
    out.extend(bookkeeping::checks(expect, evidence, caps));
    out.extend(swtpm::checks(expect, evidence, caps));
    out.extend(helpers::checks(expect, evidence, caps));
    out
}

/// The expectations of the first step of a scenario given as YAML, for the checks' unit tests.
#[cfg(test)]
pub(crate) fn first_step_expect(src: &str) -> Expect {
    crate::scenario::load_str(std::path::Path::new("t.yaml"), src)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .steps
        .remove(0)
        .options
        .expect
}

/// A started vm1's checks that `keep` selects, as (key, passed, evidence missing, observed):
/// vm1 captured at s0:c1,c2 (svirt_t, its image svirt_image_t), the action succeeded, then
/// `evidence`. For the checks' unit tests.
#[cfg(test)]
pub(crate) fn judge_started_vm1(
    e: &Expect,
    evidence: &[Evidence],
    keep: impl Fn(&CheckKey) -> bool,
) -> Vec<(String, bool, bool, String)> {
    let mut caps = Captures::new();
    caps.insert(
        "vm1".parse().unwrap(),
        Captured {
            label: "system_u:system_r:svirt_t:s0:c1,c2".parse().unwrap(),
            imagelabel: Some("system_u:object_r:svirt_image_t:s0:c1,c2".parse().unwrap()),
            ids: None,
        },
    );
    let mut all = vec![Evidence::Action {
        action: "start vm1".into(),
        outcome: crate::evidence::Outcome::Ok,
    }];
    all.extend_from_slice(evidence);
    check_step(e, false, &all, &caps, &[])
        .into_iter()
        .filter(|c| keep(&c.key))
        .map(|c| (c.key.to_string(), c.passed, c.evidence_missing, c.observed))
        .collect()
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
                ids: None,
            },
        );
        c.insert(
            "vm2".parse().unwrap(),
            Captured {
                label: ctx("system_u:system_r:svirt_t:s0:c161,c423"),
                imagelabel: Some(ctx("system_u:object_r:svirt_image_t:s0:c161,c423")),
                ids: None,
            },
        );
        c
    }

    fn acted() -> Evidence {
        Evidence::Action {
            action: "start".into(),
            outcome: Outcome::Ok,
        }
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
            unexplained_events: 0,
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
            unexplained_events: 0,
            changes: vec![change(0, "system_u:object_r:svirt_image_t:s0:c146,c1010")],
        };
        let checks = check_step(&s[0].options.expect, false, &[acted(), ev], &caps(), &[]);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn a_timeline_with_gaps_cannot_pass_never_level_or_unchanged() {
        let s = steps("      timeline: {vm1.img: {never_level: $vm2, unchanged: true}}\n");
        for gap in [
            crate::evidence::timeline::OVERFLOW,
            "watcher stopped early: poll: EBADF",
            "ENOENT: No such file or directory",
        ] {
            let ev = Evidence::Timeline {
                file: "vm1.img".into(),
                unexplained_events: 0,
                changes: vec![
                    change(0, "system_u:object_r:svirt_image_t:s0:c146,c1010"),
                    LabelChange {
                        at_us: 40,
                        context: None,
                        error: Some(gap.into()),
                    },
                ],
            };
            let checks = check_step(&s[0].options.expect, false, &[acted(), ev], &caps(), &[]);
            let timeline: Vec<_> = checks
                .iter()
                .filter(|c| c.expectation.starts_with("timeline"))
                .collect();
            assert_eq!(timeline.len(), 2, "{checks:#?}");
            for c in timeline {
                assert!(!c.passed, "{c:#?}");
                assert!(c.observed.contains(gap), "{}", c.observed);
            }
        }
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
            &[acted(), ev("system_u:object_r:svirt_image_t:s0:c146,c1010")],
            &caps(),
            &[],
        );
        assert!(ok.iter().all(|c| c.passed));
        let bad = check_step(
            &s[0].options.expect,
            false,
            &[acted(), ev("system_u:object_r:svirt_image_t:s0:c161,c423")],
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

    /// `perms` of an ignore rule means what it means in a noise rule: every denied permission
    /// is among them. `perms: [getattr]` hides a denial of getattr, never one of getattr read;
    /// in `no_avc` the same pattern means "at least getattr" and catches both.
    #[test]
    fn ignore_perms_must_cover_every_denied_permission() {
        let s = steps("      avc: none\n");
        let pattern = steps("      no_avc: [{perms: [getattr], scontext: {type: svirt_t}}]\n");
        let ignore = pattern[0].options.expect.no_avc.clone();
        let record = |perms: &[&str]| {
            let mut r = denial(
                "system_u:system_r:svirt_t:s0:c146,c1010",
                "system_u:object_r:virt_image_t:s0",
                "getattr",
            );
            r.perms = perms.iter().map(|p| p.to_string()).collect();
            Evidence::Avcs {
                records: vec![r],
                filtered: 0,
            }
        };
        let none = |ev: Evidence| {
            check_step(
                &s[0].options.expect,
                false,
                &[acted(), ev],
                &caps(),
                &ignore,
            )
            .into_iter()
            .find(|c| c.key == CheckKey::AvcNone)
            .unwrap()
        };
        assert!(none(record(&["getattr"])).passed);
        let c = none(record(&["getattr", "read"]));
        assert!(!c.passed, "{c:#?}");
        assert!(c.observed.contains("getattr read"), "{}", c.observed);
        // In no_avc the same pattern is "at least these": both records match it.
        for perms in [&["getattr"][..], &["getattr", "read"]] {
            let checks = check_step(
                &pattern[0].options.expect,
                false,
                &[acted(), record(perms)],
                &caps(),
                &[],
            );
            assert!(checks.iter().any(|c| !c.passed), "{perms:?}: {checks:#?}");
        }
    }

    /// The image's relabel audit module logs `avc: granted { relabelfrom }`/`{ relabelto }`
    /// records; they are not denials: `avc: none` and `no_avc` never count them.
    #[test]
    fn granted_records_are_not_denials() {
        let s = steps("      avc: none\n      no_avc: [{scontext: {type: virtd_t}}]\n");
        let mut granted = denial(
            "system_u:system_r:virtd_t:s0-s0:c0.c1023",
            "system_u:object_r:svirt_image_t:s0:c146,c1010",
            "relabelto",
        );
        granted.denied = false;
        let checks = check_step(
            &s[0].options.expect,
            false,
            &[
                acted(),
                Evidence::Avcs {
                    records: vec![granted.clone()],
                    filtered: 0,
                },
            ],
            &caps(),
            &[],
        );
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
        // The same record denied fails both: the test can fail.
        granted.denied = true;
        let checks = check_step(
            &s[0].options.expect,
            false,
            &[
                acted(),
                Evidence::Avcs {
                    records: vec![granted],
                    filtered: 0,
                },
            ],
            &caps(),
            &[],
        );
        assert_eq!(
            checks.iter().filter(|c| !c.passed).count(),
            2,
            "{checks:#?}"
        );
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
        let checks = check_step(
            &s[0].options.expect,
            false,
            &[acted(), ev],
            &caps(),
            &ignore,
        );
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn a_permissive_record_never_satisfies_an_expected_denial() {
        let s = steps("      avc: [{perms: [read], scontext: {type: svirt_t}}]\n");
        let mut rec = denial(
            "system_u:system_r:svirt_t:s0:c146,c1010",
            "system_u:object_r:virt_image_t:s0",
            "read",
        );
        let judge = |rec: &AvcRecord| {
            let ev = Evidence::Avcs {
                records: vec![rec.clone()],
                filtered: 0,
            };
            check_step(&s[0].options.expect, false, &[acted(), ev], &caps(), &[])
                .into_iter()
                .find(|c| c.expectation == "denial logged")
                .unwrap()
        };
        assert!(judge(&rec).passed);
        rec.permissive = true;
        let c = judge(&rec);
        assert!(!c.passed);
        assert!(
            c.observed.starts_with("only permissive=1 records"),
            "{}",
            c.observed
        );
    }

    #[test]
    fn a_capture_checks_libvirts_claim_against_the_process() {
        let s = steps("      avc: none\n");
        let capture = |real: &str| Evidence::DomainSeclabel {
            domain: "vm1".into(),
            label: Some(ctx("system_u:system_r:svirt_t:s0:c146,c1010")),
            imagelabel: None,
            process: Some(ctx(real)),
            image: None,
        };
        let judge = |real: &str| {
            check_step(
                &s[0].options.expect,
                false,
                &[acted(), capture(real)],
                &caps(),
                &[],
            )
            .into_iter()
            .find(|c| c.expectation == "capture of vm1")
            .unwrap()
        };
        assert!(judge("system_u:system_r:svirt_t:s0:c146,c1010").passed);
        let c = judge("system_u:system_r:svirt_t:s0:c1,c2");
        assert!(!c.passed);
        assert_eq!(c.observed, "system_u:system_r:svirt_t:s0:c1,c2");
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
        let c = checks
            .iter()
            .find(|c| c.key == CheckKey::File("vm1.img".into()))
            .unwrap();
        assert!(!c.passed && c.evidence_missing);
        assert!(c.observed.contains("was not captured"));
    }

    fn file_is(expect_yaml: &str, label: &str, caps: &Captures) -> bool {
        let s = steps(&format!("      file: {{vm1.img: {expect_yaml}}}\n"));
        let ev = Evidence::FileContext {
            file: "vm1.img".into(),
            path: "/x".into(),
            context: Some(ctx(label)),
        };
        let checks = check_step(&s[0].options.expect, false, &[acted(), ev], caps, &[]);
        checks.iter().all(|c| c.passed)
    }

    /// The captures with the policy roles a run resolves before its first step.
    fn caps_with_roles(domain_context: &str) -> Captures {
        let roles = crate::scenario::RoleTypes::parse(
            domain_context,
            "system_u:object_r:svirt_image_t:s0\nsystem_u:object_r:virt_content_t:s0\n",
            crate::scenario::VirtType::Qemu,
        )
        .unwrap();
        let mut c = caps();
        for role in crate::scenario::Role::ALL {
            c.insert(
                role.name().parse().unwrap(),
                Captured {
                    label: roles.get(role).clone(),
                    imagelabel: None,
                    ids: None,
                },
            );
        }
        c
    }

    fn process_is(expect_yaml: &str, label: &str, caps: &Captures) -> Check {
        let s = steps(&format!("      process: {{vm1: {expect_yaml}}}\n"));
        let ev = Evidence::ProcessLabel {
            domain: "vm1".into(),
            pid: 1,
            context: ctx(label),
        };
        let checks = check_step(&s[0].options.expect, false, &[acted(), ev], caps, &[]);
        checks
            .into_iter()
            .find(|c| c.key.to_string() == "process.vm1")
            .unwrap()
    }

    /// `$domain` is the type libvirt gives a TCG guest on the target: svirt_t with Debian's
    /// virtual_domain_context, svirt_tcg_t with Fedora's; the report shows role and type.
    #[test]
    fn a_policy_role_resolves_per_target_and_a_wrong_one_fails() {
        let debian = caps_with_roles("system_u:system_r:svirt_t:s0\n");
        let fedora =
            caps_with_roles("system_u:system_r:svirt_t:s0\nsystem_u:system_r:svirt_tcg_t:s0\n");
        let on_debian = "system_u:system_r:svirt_t:s0:c1,c2";
        let on_fedora = "system_u:system_r:svirt_tcg_t:s0:c1,c2";
        let c = process_is("{type: $domain}", on_debian, &debian);
        assert!(c.passed, "{c:?}");
        assert_eq!(c.expected, "type svirt_t ($domain)");
        let c = process_is("{type: $domain}", on_fedora, &fedora);
        assert!(c.passed, "{c:?}");
        assert_eq!(c.expected, "type svirt_tcg_t ($domain)");
        // The literal type is not portable: Fedora's TCG guest is not svirt_t.
        assert!(!process_is("{type: svirt_t}", on_fedora, &fedora).passed);
        // A wrong role still fails.
        let c = process_is("{type: $image}", on_debian, &debian);
        assert!(!c.passed);
        assert_eq!(c.expected, "type svirt_image_t ($image)");
        // A capture's type: vm1's process type, not its image's.
        assert!(process_is("{type: $vm1.type}", on_debian, &debian).passed);
        assert!(!process_is("{type: $vm1.imagelabel.type}", on_debian, &debian).passed);
        // A role the run could not resolve fails for want of evidence.
        let c = process_is("{type: $domain}", on_debian, &caps());
        assert!(!c.passed && c.evidence_missing, "{c:?}");
        assert!(c.observed.contains("not resolved"), "{c:?}");
        // Known-bug shapes: `$image:$vm2` is the image type and vm2's range.
        assert_eq!(
            expand_captures("svirt_image_t:$vm2 $image:$vm2", &debian).unwrap(),
            "svirt_image_t:s0:c161,c423 svirt_image_t:s0:c161,c423"
        );
    }

    /// `level:` is the whole MLS range: a QEMU or a file at s0:c1,c2-s0:c0.c1023 is not at
    /// s0:c1,c2; `low:` and `high:` compare one end only.
    #[rstest::rstest]
    #[case("{level: \"s0:c1,c2\"}", "s0:c1,c2", true)]
    #[case("{level: \"s0:c1,c2\"}", "s0:c1,c2-s0:c0.c1023", false)]
    #[case("{level: \"s0:c1,c2-s0:c0.c1023\"}", "s0:c1,c2-s0:c0.c1023", true)]
    #[case("{level: \"s0:c1,c2-s0:c0.c1023\"}", "s0:c1,c2", false)]
    #[case("{low: \"s0:c1,c2\"}", "s0:c1,c2-s0:c0.c1023", true)]
    #[case("{low: \"s0:c1,c2\"}", "s0:c3-s0:c0.c1023", false)]
    #[case("{high: \"s0:c0.c1023\"}", "s0:c1,c2-s0:c0.c1023", true)]
    #[case("{high: \"s0:c0.c1023\"}", "s0:c1,c2", false)]
    #[case("{not_level: \"s0:c1,c2\"}", "s0:c1,c2-s0:c0.c1023", true)]
    #[case("{not_level: \"s0:c1,c2\"}", "s0:c1,c2", false)]
    fn level_compares_the_whole_range(
        #[case] expect_yaml: &str,
        #[case] range: &str,
        #[case] passes: bool,
    ) {
        let label = format!("system_u:object_r:svirt_image_t:{range}");
        assert_eq!(file_is(expect_yaml, &label, &caps()), passes);
    }

    #[test]
    fn a_captured_level_is_the_captured_range() {
        let mut c = caps();
        c.insert(
            "vm1".parse().unwrap(),
            Captured {
                label: ctx("system_u:system_r:svirt_t:s0:c1,c2-s0:c0.c1023"),
                imagelabel: None,
                ids: None,
            },
        );
        let img = "system_u:object_r:svirt_image_t";
        assert!(!file_is("{level: $vm1}", &format!("{img}:s0:c1,c2"), &c));
        assert!(file_is(
            "{level: $vm1}",
            &format!("{img}:s0:c1,c2-s0:c0.c1023"),
            &c
        ));
        assert!(file_is("{low: $vm1}", &format!("{img}:s0:c1,c2"), &c));
        assert!(file_is(
            "{high: $vm1}",
            &format!("{img}:s0-s0:c0.c1023"),
            &c
        ));
        // The timeline compares whole ranges too.
        let s = steps("      timeline: {vm1.img: {saw_level: $vm1}}\n");
        let tl = |r: &str| Evidence::Timeline {
            file: "vm1.img".into(),
            unexplained_events: 0,
            changes: vec![change(0, &format!("{img}:{r}"))],
        };
        let e = &s[0].options.expect;
        let seen = |r: &str| {
            check_step(e, false, &[acted(), tl(r)], &c, &[])
                .iter()
                .all(|c| c.passed)
        };
        assert!(!seen("s0:c1,c2"));
        assert!(seen("s0:c1,c2-s0:c0.c1023"));
    }

    fn probe_access(expect_yaml: &str, errno: Option<&str>) -> Check {
        let src = format!(
            "name: t\ndescription: d\nrequires: [probe_module]\nimages: {{a: {{size: 1M}}}}\nsteps:\n  - probe: {{context: \"u:r:svirt_t:s0\", image: a, access: read}}\n    expect: {expect_yaml}\n"
        );
        let s = load_str(Path::new("t.yaml"), &src).unwrap();
        let ev = Evidence::Action {
            action: "probe".into(),
            outcome: match errno {
                None => Outcome::Ok,
                Some(e) => Outcome::Errno { errno: e.into() },
            },
        };
        check_step(&s.steps[0].options.expect, true, &[ev], &caps(), &[]).remove(0)
    }

    /// `access: denied` is the kernel's EACCES; an EPERM (a capability check, a read-only
    /// mount) or any other failure is not a policy denial.
    #[test]
    fn access_denied_means_eacces_only() {
        assert!(probe_access("{access: denied}", Some("EACCES")).passed);
        let c = probe_access("{access: denied}", Some("EPERM"));
        assert!(!c.passed);
        assert_eq!(c.observed, "EPERM");
        assert!(!probe_access("{access: denied}", None).passed);
        assert!(probe_access("{access: allowed}", None).passed);
        assert!(!probe_access("{access: allowed}", Some("EACCES")).passed);
    }

    #[test]
    fn the_error_domain_is_compared_when_given() {
        let failed = |domain: &str| Evidence::Action {
            action: "define".into(),
            outcome: Outcome::Libvirt(crate::evidence::LibvirtError {
                code: "VIR_ERR_CONFIG_UNSUPPORTED".into(),
                number: 67,
                domain: domain.into(),
                message:
                    "unsupported configuration: dynamic label type must use resource relabeling"
                        .into(),
            }),
        };
        let s = steps("      error: {code: VIR_ERR_CONFIG_UNSUPPORTED, domain: VIR_FROM_DOMAIN}\n");
        let e = &s[0].options.expect;
        assert!(check_step(e, false, &[failed("VIR_FROM_DOMAIN")], &caps(), &[])[0].passed);
        let c = check_step(e, false, &[failed("VIR_FROM_QEMU")], &caps(), &[]).remove(0);
        assert!(!c.passed);
        assert!(
            c.expected.contains("from VIR_FROM_DOMAIN"),
            "{}",
            c.expected
        );
        assert!(c.observed.contains("(VIR_FROM_QEMU)"), "{}", c.observed);
        // Without a domain, any domain does.
        let s = steps("      error: {code: VIR_ERR_CONFIG_UNSUPPORTED}\n");
        assert!(
            check_step(
                &s[0].options.expect,
                false,
                &[failed("VIR_FROM_QEMU")],
                &caps(),
                &[]
            )[0]
            .passed
        );
    }

    #[test]
    fn an_action_without_an_outcome_fails() {
        let s = steps("      file: {vm1.img: {type: svirt_image_t}}\n");
        let checks = check_step(&s[0].options.expect, false, &[], &caps(), &[]);
        assert_eq!(checks[0].key, CheckKey::Succeeds);
        assert!(!checks[0].passed && checks[0].evidence_missing);
    }

    /// The keys a known bug may name are exactly the checks `check_step` makes.
    #[test]
    fn check_step_makes_the_checks_expect_keys_lists() {
        let s = steps(
            "      process: {vm1: {type: svirt_t}}\n      file: {vm1.img: {type: svirt_image_t}}\n      timeline: {vm1.img: {never_level: $vm2, saw_level: $vm1, unchanged: true}}\n      avc: [{perms: [read]}, {perms: [write]}]\n      no_avc: [{comm: x}]\n",
        );
        let e = &s[0].options.expect;
        let got: Vec<CheckKey> = check_step(e, false, &[acted()], &caps(), &[])
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(got, e.keys(false));
        let names: Vec<String> = got.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            names,
            [
                "succeeds",
                "process.vm1",
                "file.vm1.img",
                "timeline.vm1.img.never_level",
                "timeline.vm1.img.saw_level",
                "timeline.vm1.img.unchanged",
                "avc.0",
                "avc.1",
                "no_avc.0"
            ]
        );
        for k in got {
            assert_eq!(k.to_string().parse::<CheckKey>().unwrap(), k);
        }
    }

    #[test]
    fn observed_shapes_name_capture_ranges() {
        assert_eq!(
            expand_captures("svirt_image_t:$vm2 then $vm1.imagelabel.", &caps()).unwrap(),
            "svirt_image_t:s0:c161,c423 then s0:c146,c1010."
        );
        assert!(expand_captures("$vm9", &caps()).is_err());
    }
}
