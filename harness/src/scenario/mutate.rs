//! Mutants of a scenario: variants of it that a correct suite must reject, each with one
//! expectation inverted or shifted (a level moved to another capture or category, a type
//! changed, allowed <-> denied, an expected error removed, `avc: none` turned into an expected
//! denial, a known bug dropped). `selinux-harness mutants` runs them; a mutant whose verdict is
//! still a success "survives", and the scenario checks less than it seems - unless the step
//! lists it under `mutants_survive` with the reason.
//!
//! What to mutate is decided on the typed scenario; the edit is made on the scenario's YAML as
//! a value tree in memory (never on the text or a file), which is printed back as YAML (in its
//! JSON flow form) and loaded again like any scenario, so a mutant is exactly as valid as the
//! file it came from. Steps after the mutated one are left out: they judge nothing the mutation
//! changes, and every run costs a guest's time.

use serde_json::{json, Value};

use super::load::{load_str, Diagnostic, LoadedScenario};
use super::model::*;
use super::roles::Role;

/// A level no scenario uses and every MCS policy has (c0..c1023).
const SHIFTED_LEVELS: [&str; 2] = ["s0:c511", "s0:c512"];
/// An error code and domain another one is shifted to (both real, see `host::libvirt_codes`).
const SHIFTED_CODES: [&str; 2] = ["VIR_ERR_OPERATION_INVALID", "VIR_ERR_OPERATION_FAILED"];
const SHIFTED_DOMAINS: [&str; 2] = ["VIR_FROM_SECURITY", "VIR_FROM_QEMU"];
/// An error expected of a step that succeeds (the "succeeds" check inverted).
const SOME_ERROR: &str = "VIR_ERR_OPERATION_INVALID";
/// A message no libvirt error contains.
const SHIFTED_MESSAGE: &str = "text that no libvirt error message contains";

/// What a mutant checks the opposite of, for counting: a kind of check, or a known bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MutatedKind {
    Check(CheckKind),
    KnownBug,
}

impl MutatedKind {
    pub fn label(self) -> &'static str {
        match self {
            MutatedKind::Check(k) => k.label(),
            MutatedKind::KnownBug => "known_bug",
        }
    }
}

/// One mutation of one step: what it changes, named `KEY/WHAT` (`file.vm1.img/type`,
/// `access/invert`, `known_bug.0/dropped`) - the name `mutants_survive` lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub step: usize,
    pub id: String,
    pub kind: MutatedKind,
    /// In words, for the report: `file.vm1.img type svirt_image_t -> virt_image_t`.
    pub describe: String,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    /// Set the value at this path (from the step), creating maps on the way.
    Set(Vec<String>, Value),
    /// Remove the value at this path.
    Remove(Vec<String>),
    /// Move pattern N of `avc` (or `no_avc`) to the end of the other list.
    Move { from: &'static str, index: usize },
    /// Take known bug N off the step.
    DropKnownBug(usize),
}

fn path(segs: &[&str]) -> Vec<String> {
    segs.iter().map(|s| (*s).to_string()).collect()
}

/// A mutant ready to run: the mutation, the scenario it makes, and the variants to run it in
/// (the scenario's first; for a dropped known bug, the variants the bug applies to).
#[derive(Debug, Clone)]
pub struct Mutant {
    pub mutation: Mutation,
    pub scenario: LoadedScenario,
    pub variants: Vec<Option<String>>,
    /// The reason the step gives for letting this mutant survive (`mutants_survive`).
    pub listed: Option<String>,
}

struct Builder {
    step: usize,
    out: Vec<Mutation>,
}

impl Builder {
    fn push(&mut self, key: &str, what: &str, kind: MutatedKind, describe: String, ops: Vec<Op>) {
        self.out.push(Mutation {
            step: self.step,
            id: format!("{key}/{what}"),
            kind,
            describe,
            ops,
        });
    }
}

/// Every mutation of step `i` of `s`, in a fixed order.
pub fn step_mutations(s: &Scenario, i: usize) -> Vec<Mutation> {
    let Some(step) = s.steps.get(i) else {
        return Vec::new();
    };
    let captures: Vec<Name> = s.steps[..=i]
        .iter()
        .flat_map(|st| st.options.capture.keys().cloned())
        .collect();
    let e = &step.options.expect;
    let is_probe = matches!(step.action, Action::Probe(_));
    let mut b = Builder {
        step: i,
        out: Vec::new(),
    };
    let ck = MutatedKind::Check;

    if is_probe {
        if let Some(a) = e.access {
            let other = match a {
                AccessOutcome::Allowed => "denied",
                AccessOutcome::Denied => "allowed",
            };
            b.push(
                "access",
                "invert",
                ck(CheckKind::Access),
                format!("access -> {other}"),
                vec![Op::Set(path(&["expect", "access"]), json!(other))],
            );
        }
    } else if let Some(err) = &e.error {
        let kind = ck(CheckKind::Error);
        b.push(
            "error",
            "removed",
            kind,
            "expected error removed (the action must succeed)".into(),
            vec![Op::Remove(path(&["expect", "error"]))],
        );
        if let Some(code) = &err.value.code {
            let to = other_of(&SHIFTED_CODES, &code.value);
            b.push(
                "error",
                "code",
                kind,
                format!("error code {} -> {to}", code.value),
                vec![Op::Set(path(&["expect", "error", "code"]), json!(to))],
            );
        }
        if let Some(domain) = &err.value.domain {
            let to = other_of(&SHIFTED_DOMAINS, &domain.value);
            b.push(
                "error",
                "domain",
                kind,
                format!("error domain {} -> {to}", domain.value),
                vec![Op::Set(path(&["expect", "error", "domain"]), json!(to))],
            );
        }
        if err.value.message.is_some() {
            b.push(
                "error",
                "message",
                kind,
                format!("error message -> {SHIFTED_MESSAGE:?}"),
                vec![Op::Set(
                    path(&["expect", "error", "message"]),
                    json!(SHIFTED_MESSAGE),
                )],
            );
        }
    } else if e.outcome.is_none() {
        // (`outcome: any` judges neither success nor failure: there is nothing to invert.)
        // A daemon's refusal is matched by its logged message alone (it has no code).
        let (describe, error) = if matches!(step.action, Action::RestartDaemon(_)) {
            (
                format!("the daemon must not come up, logging {SHIFTED_MESSAGE:?}"),
                json!({ "message": SHIFTED_MESSAGE }),
            )
        } else {
            (
                format!("the action must fail with {SOME_ERROR}"),
                json!({ "code": SOME_ERROR }),
            )
        };
        b.push(
            "succeeds",
            "invert",
            ck(CheckKind::Succeeds),
            describe,
            vec![Op::Set(path(&["expect", "error"]), error)],
        );
    }

    for (section, kind, matches) in [
        ("process", CheckKind::Process, &e.process),
        ("file", CheckKind::File, &e.file),
    ] {
        for (name, m) in matches {
            let key = format!("{section}.{}", name.value);
            let at = path(&["expect", section, name.value.as_str()]);
            for (what, describe, ops) in match_mutations(m, &captures, &at) {
                b.push(&key, &what, ck(kind), format!("{key} {describe}"), ops);
            }
        }
    }

    for (name, t) in &e.timeline {
        let img = name.value.as_str();
        let at = |field: &str| path(&["expect", "timeline", img, field]);
        for (field, other, kind) in [
            ("never_level", "saw_level", CheckKind::TimelineNeverLevel),
            ("saw_level", "never_level", CheckKind::TimelineSawLevel),
        ] {
            let level = if field == "never_level" {
                &t.never_level
            } else {
                &t.saw_level
            };
            let Some(level) = level else { continue };
            let key = format!("timeline.{img}.{field}");
            let text = level.value.to_string();
            b.push(
                &key,
                "invert",
                ck(kind),
                format!("{key} {text} -> {other} {text}"),
                vec![Op::Remove(at(field)), Op::Set(at(other), json!(text))],
            );
            let to = shifted_range(&level.value, &captures);
            b.push(
                &key,
                "level",
                ck(kind),
                format!("{key} {text} -> {to}"),
                vec![Op::Set(at(field), json!(to))],
            );
        }
        // `unchanged: true` has no inverse the language can say ("changed"); it is left alone.
    }

    match &e.avc {
        Some(AvcExpect::None) => b.push(
            "avc",
            "denial",
            ck(CheckKind::AvcNone),
            "avc: none -> a denial by svirt_t must be logged".into(),
            vec![Op::Set(
                path(&["expect", "avc"]),
                json!([{ "scontext": { "type": "svirt_t" } }]),
            )],
        ),
        Some(AvcExpect::Denials(list)) => {
            for (n, m) in list.iter().enumerate() {
                let key = format!("avc.{n}");
                b.push(
                    &key,
                    "invert",
                    ck(CheckKind::AvcDenial),
                    format!("{key} moved to no_avc (must not be logged)"),
                    vec![Op::Move {
                        from: "avc",
                        index: n,
                    }],
                );
                avc_match_mutations(
                    &mut b,
                    &key,
                    CheckKind::AvcDenial,
                    &m.value,
                    &captures,
                    n,
                    "avc",
                );
            }
        }
        None => {}
    }
    for (n, m) in e.no_avc.iter().enumerate() {
        let key = format!("no_avc.{n}");
        b.push(
            &key,
            "invert",
            ck(CheckKind::NoAvc),
            format!("{key} moved to avc (must be logged)"),
            vec![Op::Move {
                from: "no_avc",
                index: n,
            }],
        );
        avc_match_mutations(
            &mut b,
            &key,
            CheckKind::NoAvc,
            &m.value,
            &captures,
            n,
            "no_avc",
        );
    }

    for (k, kb) in step.options.known_bug.iter().enumerate() {
        b.push(
            &format!("known_bug.{k}"),
            "dropped",
            MutatedKind::KnownBug,
            format!("known bug `{}` dropped", kb.value.reference),
            vec![Op::DropKnownBug(k)],
        );
    }
    b.out
}

/// Shifts inside an AVC pattern's contexts. `no_avc` patterns are only shifted where that makes
/// them match less: a `no_avc` that matches less is weaker, so its shifts are left out - they
/// would survive in any correct suite.
fn avc_match_mutations(
    b: &mut Builder,
    key: &str,
    kind: CheckKind,
    m: &AvcMatch,
    captures: &[Name],
    n: usize,
    list: &str,
) {
    if list == "no_avc" {
        return;
    }
    for (side, cm) in [("scontext", &m.scontext), ("tcontext", &m.tcontext)] {
        let Some(cm) = cm else { continue };
        let at = vec![
            "expect".to_string(),
            list.to_string(),
            n.to_string(),
            side.to_string(),
        ];
        for (what, describe, ops) in match_mutations(cm, captures, &at) {
            if what == "invert" {
                continue;
            }
            b.push(
                key,
                &format!("{side}.{what}"),
                MutatedKind::Check(kind),
                format!("{key} {side} {describe}"),
                ops,
            );
        }
    }
}

/// The other value of a pair, or the first when `v` is neither.
fn other_of(pair: &[&'static str; 2], v: &str) -> &'static str {
    if v == pair[0] {
        pair[1]
    } else {
        pair[0]
    }
}

/// A plausible wrong type for one that was expected.
fn other_type(t: &str) -> &'static str {
    match t {
        "svirt_image_t" => "virt_image_t",
        "svirt_t" => "svirt_tcg_t",
        _ => "svirt_image_t",
    }
}

/// A wrong type for a `type:` that names one: a literal as [`other_type`]; a policy role the
/// type of another role (`$domain` -> `$image`: no QEMU runs with its images' type); a
/// capture's `.type` the type of its other label (`$vm1.type` <-> `$vm1.imagelabel.type`).
fn other_type_ref(v: &Valued<String>) -> String {
    match v {
        Valued::Literal(t) => other_type(t).to_string(),
        Valued::Capture(r) => match r.role() {
            Some(Role::Domain | Role::Content) => Role::Image.to_string(),
            Some(Role::Image) => Role::Content.to_string(),
            None => CaptureRef {
                imagelabel: !r.imagelabel,
                ..r.clone()
            }
            .to_string(),
        },
    }
}

/// A level, or capture, that is not this one: another capture made by now, else a category
/// no scenario uses.
fn shifted<T: std::fmt::Display>(v: &Valued<T>, captures: &[Name]) -> String {
    match v {
        Valued::Capture(c) => match captures.iter().find(|n| **n != c.name) {
            Some(other) => CaptureRef {
                name: other.clone(),
                imagelabel: c.imagelabel,
                of_type: c.of_type,
            }
            .to_string(),
            None => SHIFTED_LEVELS[0].to_string(),
        },
        Valued::Literal(l) => other_of(&SHIFTED_LEVELS, &l.to_string()).to_string(),
    }
}

fn shifted_range(v: &Valued<crate::context::MlsRange>, captures: &[Name]) -> String {
    shifted(v, captures)
}

/// Mutations of one MATCH at `at`: (what, describe, ops).
fn match_mutations(
    m: &ContextMatch,
    captures: &[Name],
    at: &[String],
) -> Vec<(String, String, Vec<Op>)> {
    let field = |f: &str| {
        let mut p = at.to_vec();
        p.push(f.to_string());
        p
    };
    let mut out = Vec::new();
    if let Some(t) = &m.kind {
        let to = other_type_ref(&t.value);
        out.push((
            "type".to_string(),
            format!("type {} -> {to}", t.value),
            vec![Op::Set(field("type"), json!(to))],
        ));
    }
    if let Some(c) = &m.context {
        let (to, why) = match &c.value {
            Valued::Literal(ctx) => {
                let mut other = ctx.clone();
                other.kind = other_type(&ctx.kind).to_string();
                (other.to_string(), "type")
            }
            // $vm.imagelabel <-> $vm: the domain's label against its images' (the type differs)
            Valued::Capture(r) => (
                CaptureRef {
                    name: r.name.clone(),
                    imagelabel: !r.imagelabel,
                    of_type: false,
                }
                .to_string(),
                "label <-> imagelabel",
            ),
        };
        out.push((
            "context".to_string(),
            format!("context {} -> {to} ({why})", c.value),
            vec![Op::Set(field("context"), json!(to))],
        ));
    }
    if let Some(l) = &m.level {
        let to = shifted(&l.value, captures);
        out.push((
            "level".to_string(),
            format!("level {} -> {to}", l.value),
            vec![Op::Set(field("level"), json!(to))],
        ));
    }
    if let Some(l) = &m.low {
        let to = shifted(&l.value, captures);
        out.push((
            "low".to_string(),
            format!("low {} -> {to}", l.value),
            vec![Op::Set(field("low"), json!(to))],
        ));
    }
    if let Some(l) = &m.high {
        let to = shifted(&l.value, captures);
        out.push((
            "high".to_string(),
            format!("high {} -> {to}", l.value),
            vec![Op::Set(field("high"), json!(to))],
        ));
    }
    if let Some(l) = &m.not_level {
        let text = l.value.to_string();
        out.push((
            "invert".to_string(),
            format!("not_level {text} -> level {text}"),
            vec![
                Op::Remove(field("not_level")),
                Op::Set(field("level"), json!(text)),
            ],
        ));
        if let Valued::Capture(_) = &l.value {
            let to = shifted(&l.value, captures);
            out.push((
                "not_level".to_string(),
                format!("not_level {text} -> {to}"),
                vec![Op::Set(field("not_level"), json!(to))],
            ));
        }
    }
    out
}

/// Every mutant of a scenario, with the reasons its steps give for those that may survive.
/// A mutant that does not load is a bug of this module, reported with its diagnostics.
pub fn mutants(l: &LoadedScenario) -> Result<Vec<Mutant>, Vec<Diagnostic>> {
    let tree: Value = serde_saphyr::from_str(&l.source).map_err(|e| {
        vec![Diagnostic {
            file: l.path.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read as a YAML tree: {e}"),
        }]
    })?;
    let s = &l.scenario;
    let first = l.variants().into_iter().next().flatten();
    let mut out = Vec::new();
    for (i, step) in s.steps.iter().enumerate() {
        for m in step_mutations(s, i) {
            let n = out.len() + 1;
            let source = apply(&tree, &m, s, n)?;
            let file = l.path.with_extension(format!("mutant-{n}.yaml"));
            let scenario = load_str(&file, &source)?;
            let variants = match m.ops.first() {
                Some(Op::DropKnownBug(k)) => {
                    let v = &step.options.known_bug[*k].value.when.variant;
                    if v.is_empty() {
                        vec![first.clone()]
                    } else {
                        v.iter().map(|n| Some(n.value.to_string())).collect()
                    }
                }
                // A step that runs only in some variants is judged in the first of them.
                _ => match step
                    .options
                    .when
                    .as_ref()
                    .and_then(|w| w.value.variant.first())
                {
                    Some(v) => vec![Some(v.value.to_string())],
                    None => vec![first.clone()],
                },
            };
            let listed = step
                .options
                .mutants_survive
                .iter()
                .find(|ms| ms.value.mutant.value == m.id)
                .map(|ms| ms.value.reason.clone());
            out.push(Mutant {
                mutation: m,
                scenario: LoadedScenario {
                    path: file,
                    source,
                    scenario,
                },
                variants,
                listed,
            });
        }
    }
    Ok(out)
}

/// The mutant's source: the scenario's tree with the mutation made, the steps after the mutated
/// one left out, the name made unique (`NAME.mN`), and the lists that name this step's checks
/// (`mutants_survive`, known bugs' `expects`) kept to the checks the mutated step still makes.
fn apply(tree: &Value, m: &Mutation, s: &Scenario, n: usize) -> Result<String, Vec<Diagnostic>> {
    let mut t = tree.clone();
    let broken = |what: &str| {
        vec![Diagnostic {
            file: std::path::PathBuf::from(s.name.value.as_str()),
            line: 0,
            column: 0,
            message: format!("mutant {} of step {}: {what}", m.id, m.step + 1),
        }]
    };
    let name = format!("{}.m{n}", s.name.value);
    t["name"] = json!(name);
    let steps = t
        .get_mut("steps")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| broken("the scenario has no list of steps"))?;
    steps.truncate(m.step + 1);
    for st in steps.iter_mut() {
        if let Some(o) = st.as_object_mut() {
            o.remove("mutants_survive");
        }
    }
    let step = steps
        .get_mut(m.step)
        .ok_or_else(|| broken("no such step"))?;
    for op in &m.ops {
        match op {
            Op::Set(p, v) => set(step, p, v.clone()),
            Op::Remove(p) => remove(step, p),
            Op::Move { from, index } => {
                let to = if *from == "avc" { "no_avc" } else { "avc" };
                let expect = &mut step["expect"];
                let pattern = expect[*from]
                    .as_array_mut()
                    .filter(|a| *index < a.len())
                    .map(|a| a.remove(*index))
                    .ok_or_else(|| broken("no such AVC pattern"))?;
                if expect[*from].as_array().is_some_and(Vec::is_empty) {
                    remove(expect, &[from.to_string()]);
                }
                match expect.get_mut(to).and_then(Value::as_array_mut) {
                    Some(list) => list.push(pattern),
                    // `avc: none` (or nothing) becomes a list of this one pattern
                    None => expect[to] = json!([pattern]),
                }
            }
            Op::DropKnownBug(k) => {
                if let Some(list) = step.get_mut("known_bug").and_then(Value::as_array_mut) {
                    if *k < list.len() {
                        list.remove(*k);
                    }
                }
            }
        }
    }
    keep_known_excuses(step, matches!(s.steps[m.step].action, Action::Probe(_)));
    serde_json::to_string_pretty(&t).map_err(|e| broken(&e.to_string()))
}

fn set(v: &mut Value, p: &[String], new: Value) {
    match p.split_first() {
        None => *v = new,
        Some((k, rest)) => {
            let slot = match v {
                Value::Array(a) => match k.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    Some(x) => x,
                    None => return,
                },
                _ => {
                    if !v.is_object() {
                        *v = json!({});
                    }
                    &mut v[k.as_str()]
                }
            };
            set(slot, rest, new)
        }
    }
}

fn remove(v: &mut Value, p: &[String]) {
    match p.split_first() {
        None => {}
        Some((k, [])) => {
            if let Some(o) = v.as_object_mut() {
                o.remove(k);
            }
        }
        Some((k, rest)) => {
            let next = match v {
                Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                Value::Object(o) => o.get_mut(k),
                _ => None,
            };
            if let Some(next) = next {
                remove(next, rest)
            }
        }
    }
}

/// The check keys of an `expect:` tree, as `Expect::keys` names them.
fn tree_keys(expect: &Value, is_probe: bool) -> Vec<CheckKey> {
    let mut out = Vec::new();
    let has = |k: &str| expect.get(k).is_some_and(|v| !v.is_null());
    if is_probe {
        if has("access") {
            out.push(CheckKey::Access);
        }
    } else if has("error") {
        out.push(CheckKey::Error);
    } else {
        out.push(CheckKey::Succeeds);
    }
    let names = |k: &str| -> Vec<String> {
        expect
            .get(k)
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    out.extend(names("process").into_iter().map(CheckKey::Process));
    out.extend(names("file").into_iter().map(CheckKey::File));
    if let Some(o) = expect.get("timeline").and_then(Value::as_object) {
        for (img, t) in o {
            for (f, c) in [
                ("never_level", TimelineCheck::NeverLevel),
                ("saw_level", TimelineCheck::SawLevel),
            ] {
                if t.get(f).is_some() {
                    out.push(CheckKey::Timeline(img.clone(), c));
                }
            }
            if t.get("unchanged") == Some(&json!(true)) {
                out.push(CheckKey::Timeline(img.clone(), TimelineCheck::Unchanged));
            }
        }
    }
    match expect.get("avc") {
        Some(Value::Array(a)) => out.extend((0..a.len()).map(CheckKey::AvcDenial)),
        Some(Value::String(_)) => out.push(CheckKey::AvcNone),
        _ => {}
    }
    if let Some(a) = expect.get("no_avc").and_then(Value::as_array) {
        out.extend((0..a.len()).map(CheckKey::NoAvc));
    }
    out
}

/// A known bug may only name checks its step makes: after a mutation took one away, its
/// entries for it go, and a bug left with none goes too (the mutant runs where the bug does
/// not apply, or is the bug dropped).
fn keep_known_excuses(step: &mut Value, is_probe: bool) {
    let keys = tree_keys(&step["expect"], is_probe);
    let Some(bugs) = step.get_mut("known_bug").and_then(Value::as_array_mut) else {
        return;
    };
    for kb in bugs.iter_mut() {
        if let Some(list) = kb.get_mut("expects").and_then(Value::as_array_mut) {
            list.retain(|e| {
                let name = e
                    .as_str()
                    .or_else(|| e.get("check").and_then(Value::as_str))
                    .unwrap_or("");
                keys.iter().any(|k| k.named_by(name))
            });
        }
    }
    bugs.retain(|kb| {
        kb.get("expects")
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty())
    });
    if bugs.is_empty() {
        if let Some(o) = step.as_object_mut() {
            o.remove("known_bug");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{discover, load_file};
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn loaded(source: &str) -> LoadedScenario {
        let path = PathBuf::from("inline.yaml");
        let scenario = load_str(&path, source).unwrap_or_else(|e| panic!("{e:?}"));
        LoadedScenario {
            path,
            source: source.to_string(),
            scenario,
        }
    }

    const SCENARIO: &str = r#"
name: one
description: every kind of check
requires: [enforcing, mcs, libvirt, probe_module]
images:
  a.img: {size: 1M}
  b.img: {size: 1M, context: "system_u:object_r:svirt_image_t:s0:c1,c2"}
domains:
  vm1: {disks: [a.img]}
  vm2: {}
variants:
  default: {}
  other: {qemu_conf: {remember_owner: 0}}
steps:
  - start: [vm1, vm2]
    capture: {vm1: vm1, vm2: vm2}
    watch: [a.img]
    expect:
      process:
        vm1: {type: svirt_t, not_level: $vm2}
      file:
        a.img: {context: $vm1.imagelabel, level: $vm1}
      timeline:
        a.img: {never_level: $vm2, unchanged: true}
      avc: none
  - attach_disk: {domain: vm2, image: a.img, target: vdb}
    expect:
      error: {code: VIR_ERR_OPERATION_INVALID, domain: VIR_FROM_SECURITY, message: which is already in use}
      no_avc:
        - {scontext: {type: svirt_t}}
    known_bug:
      - reference: bug 1
        when: {variant: [other]}
        expects: [error]
  - probe: {context: "unconfined_u:unconfined_r:svirt_t:s0:c3,c4", image: b.img, access: read}
    expect:
      access: denied
      avc:
        - {perms: [read], scontext: {level: "s0:c3,c4"}, tcontext: {type: svirt_image_t}}
"#;

    fn by_id(ms: &[Mutant], step: usize, id: &str) -> Mutant {
        ms.iter()
            .find(|m| m.mutation.step == step && m.mutation.id == id)
            .unwrap_or_else(|| {
                let all: Vec<_> = ms
                    .iter()
                    .map(|m| (m.mutation.step, &m.mutation.id))
                    .collect();
                panic!("no mutant {id} of step {step} in {all:?}")
            })
            .clone()
    }

    fn expect(m: &Mutant) -> &Expect {
        &m.scenario.scenario.steps[m.mutation.step].options.expect
    }

    #[test]
    fn each_kind_of_mutation_changes_exactly_its_expectation() {
        let ms = mutants(&loaded(SCENARIO)).expect("every mutant loads");

        let m = by_id(&ms, 0, "succeeds/invert");
        assert_eq!(
            expect(&m)
                .error
                .as_ref()
                .and_then(|e| e.value.code.clone())
                .map(|c| c.value),
            Some(SOME_ERROR.to_string())
        );
        // steps after the mutated one are left out, and the name is the scenario's own
        assert_eq!(m.scenario.scenario.steps.len(), 1);
        assert!(m.scenario.scenario.name.value.as_str().starts_with("one.m"));

        let m = by_id(&ms, 0, "process.vm1/type");
        assert_eq!(
            expect(&m)
                .process
                .values()
                .next()
                .unwrap()
                .kind
                .as_ref()
                .map(|k| k.value.to_string()),
            Some("svirt_tcg_t".to_string())
        );
        let m = by_id(&ms, 0, "process.vm1/invert");
        let p = expect(&m).process.values().next().unwrap();
        assert!(p.not_level.is_none());
        assert_eq!(p.level.as_ref().unwrap().value.to_string(), "$vm2");
        let m = by_id(&ms, 0, "process.vm1/not_level");
        let p = expect(&m).process.values().next().unwrap();
        assert_eq!(p.not_level.as_ref().unwrap().value.to_string(), "$vm1");

        // a level moves to another capture
        let m = by_id(&ms, 0, "file.a.img/level");
        let f = expect(&m).file.values().next().unwrap();
        assert_eq!(f.level.as_ref().unwrap().value.to_string(), "$vm2");
        let m = by_id(&ms, 0, "file.a.img/context");
        let f = expect(&m).file.values().next().unwrap();
        assert_eq!(f.context.as_ref().unwrap().value.to_string(), "$vm1");

        let m = by_id(&ms, 0, "timeline.a.img.never_level/invert");
        let t = expect(&m).timeline.values().next().unwrap();
        assert!(t.never_level.is_none());
        assert_eq!(t.saw_level.as_ref().unwrap().value.to_string(), "$vm2");
        assert_eq!(t.unchanged, Some(true));
        let m = by_id(&ms, 0, "timeline.a.img.never_level/level");
        let t = expect(&m).timeline.values().next().unwrap();
        assert_eq!(t.never_level.as_ref().unwrap().value.to_string(), "$vm1");

        let m = by_id(&ms, 0, "avc/denial");
        assert!(matches!(&expect(&m).avc, Some(AvcExpect::Denials(l)) if l.len() == 1));

        let m = by_id(&ms, 1, "error/removed");
        assert!(expect(&m).error.is_none());
        // the known bug named only `error`, which the mutant no longer checks: it goes too
        assert!(m.scenario.scenario.steps[1].options.known_bug.is_empty());
        assert_eq!(m.variants, vec![Some("default".to_string())]);
        for (id, field) in [
            ("error/code", "code"),
            ("error/domain", "domain"),
            ("error/message", "message"),
        ] {
            let m = by_id(&ms, 1, id);
            let e = &expect(&m).error.as_ref().unwrap().value;
            let got = match field {
                "code" => e.code.as_ref().map(|c| c.value.clone()),
                "domain" => e.domain.as_ref().map(|c| c.value.clone()),
                _ => e.message.as_ref().map(|c| c.value.clone()),
            };
            assert_eq!(
                got.as_deref(),
                Some(match field {
                    "code" => "VIR_ERR_OPERATION_FAILED",
                    "domain" => "VIR_FROM_QEMU",
                    _ => SHIFTED_MESSAGE,
                })
            );
        }
        let m = by_id(&ms, 1, "no_avc.0/invert");
        assert!(expect(&m).no_avc.is_empty());
        assert!(matches!(&expect(&m).avc, Some(AvcExpect::Denials(l)) if l.len() == 1));

        // a dropped known bug runs where the bug applies
        let m = by_id(&ms, 1, "known_bug.0/dropped");
        assert!(m.scenario.scenario.steps[1].options.known_bug.is_empty());
        assert_eq!(m.variants, vec![Some("other".to_string())]);

        let m = by_id(&ms, 2, "access/invert");
        assert_eq!(expect(&m).access, Some(AccessOutcome::Allowed));
        let m = by_id(&ms, 2, "avc.0/invert");
        assert!(expect(&m).avc.is_none());
        assert_eq!(expect(&m).no_avc.len(), 1);
        let m = by_id(&ms, 2, "avc.0/scontext.level");
        let Some(AvcExpect::Denials(l)) = &expect(&m).avc else {
            panic!("avc list expected")
        };
        let sc = l[0].value.scontext.as_ref().unwrap();
        assert_eq!(
            sc.level.as_ref().unwrap().value.to_string(),
            SHIFTED_LEVELS[0]
        );
        let m = by_id(&ms, 2, "avc.0/tcontext.type");
        let Some(AvcExpect::Denials(l)) = &expect(&m).avc else {
            panic!("avc list expected")
        };
        assert_eq!(
            l[0].value
                .tcontext
                .as_ref()
                .unwrap()
                .kind
                .as_ref()
                .map(|k| k.value.to_string()),
            Some("virt_image_t".to_string())
        );

        // every mutant differs from the scenario in its own way
        let mut sources: Vec<&str> = ms.iter().map(|m| m.scenario.source.as_str()).collect();
        sources.sort();
        sources.dedup();
        assert_eq!(sources.len(), ms.len());
    }

    #[test]
    fn every_mutant_of_every_shipped_scenario_passes_check() {
        let files = discover(&[repo().join("scenarios")]).unwrap();
        let mut n = 0;
        for f in files {
            let l = load_file(&f).unwrap_or_else(|e| panic!("{e:?}"));
            let ms = mutants(&l).unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
            for m in &ms {
                // what the guest does with the text it gets
                load_str(&m.scenario.path, &m.scenario.source)
                    .unwrap_or_else(|e| panic!("{}: {e:?}", m.mutation.id));
            }
            n += ms.len();
        }
        assert!(n >= 50, "only {n} mutants");
    }

    #[test]
    fn a_listed_survivor_must_name_a_mutant_of_its_step_and_say_why() {
        let ok = SCENARIO.replace(
            "      avc: none\n",
            "      avc: none\n    mutants_survive:\n      - {mutant: timeline.a.img.never_level/level, reason: the file starts at vm1 level}\n",
        );
        let ms = mutants(&loaded(&ok)).unwrap();
        let m = by_id(&ms, 0, "timeline.a.img.never_level/level");
        assert_eq!(m.listed.as_deref(), Some("the file starts at vm1 level"));
        assert!(by_id(&ms, 0, "avc/denial").listed.is_none());

        let unknown = ok.replace("never_level/level", "never_level/type");
        let errs = load_str(Path::new("x.yaml"), &unknown).unwrap_err();
        assert!(
            errs[0].message.contains("is not a mutant of this step")
                && errs[0].message.contains("avc/denial"),
            "{errs:?}"
        );
        let terse = ok.replace("the file starts at vm1 level", "because");
        let errs = load_str(Path::new("x.yaml"), &terse).unwrap_err();
        assert!(errs[0].message.contains("reason"), "{errs:?}");
    }

    /// A step that runs only in some variants is judged where it runs: its mutants go to the
    /// first variant its `when` names (here widened from a matrix value), not the scenario's
    /// first variant, where the step would be left out and every mutant would survive.
    #[test]
    fn mutants_of_a_conditional_step_run_where_the_step_runs() {
        let l = loaded(
            "name: w\ndescription: d\ndomains: {vm1: {}}\nmatrix:\n  - {x0: {qemu_conf: {remember_owner: 0}}, x1: {qemu_conf: {remember_owner: 1}}}\nsteps:\n  - start: vm1\n    when: {variant: [x1]}\n    expect:\n      process:\n        vm1: {type: svirt_t}\n  - start: vm1\n    expect:\n      process:\n        vm1: {type: svirt_t}\n",
        );
        let ms = mutants(&l).unwrap();
        let of_step =
            |i: usize| -> Vec<&Mutant> { ms.iter().filter(|m| m.mutation.step == i).collect() };
        assert!(!of_step(0).is_empty());
        for m in of_step(0) {
            assert_eq!(
                m.variants,
                vec![Some("x1".to_string())],
                "{}",
                m.mutation.id
            );
        }
        for m in of_step(1) {
            assert_eq!(
                m.variants,
                vec![Some("x0".to_string())],
                "{}",
                m.mutation.id
            );
        }
    }
}
