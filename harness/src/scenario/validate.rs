//! Checks that need the whole file: every name a step uses is defined, captures are made
//! before they are used, host settings are safe to write.

use std::collections::{BTreeMap, BTreeSet};

use super::model::*;

pub(super) struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

struct Checker<'a> {
    s: &'a Scenario,
    problems: Vec<Problem>,
    /// Captures made so far, with the step that made them.
    captured: BTreeSet<Name>,
}

pub(super) fn validate(s: &Scenario) -> Vec<Problem> {
    let mut c = Checker {
        s,
        problems: Vec::new(),
        captured: BTreeSet::new(),
    };
    c.scenario();
    c.problems.sort_by_key(|p| (p.line, p.column));
    c.problems
}

fn one_of<'n>(names: impl Iterator<Item = &'n Name>) -> String {
    let v: Vec<_> = names.map(|n| n.to_string()).collect();
    if v.is_empty() {
        "none are defined".to_string()
    } else {
        format!("defined: {}", v.join(", "))
    }
}

impl Checker<'_> {
    fn problem<T>(&mut self, at: &At<T>, message: String) {
        self.problems.push(Problem {
            line: at.line,
            column: at.column,
            message,
        });
    }

    fn image(&mut self, n: &At<Name>) {
        if !self.s.images.contains_key(&n.value) {
            let m = format!(
                "unknown image `{}` ({}); add it under `images:`",
                n.value,
                one_of(self.s.images.keys())
            );
            self.problem(n, m);
        }
    }

    fn domain(&mut self, n: &At<Name>) {
        if !self.s.domains.contains_key(&n.value) {
            let m = format!(
                "unknown domain `{}` ({}); add it under `domains:`",
                n.value,
                one_of(self.s.domains.keys())
            );
            self.problem(n, m);
        }
    }

    fn variant(&mut self, n: &At<Name>) {
        if !self.s.variants.contains_key(&n.value) {
            let m = format!(
                "unknown variant `{}` ({})",
                n.value,
                one_of(self.s.variants.keys())
            );
            self.problem(n, m);
        }
    }

    fn capture_ref<T>(&mut self, v: &Option<At<Valued<T>>>) {
        if let Some(at) = v {
            if let Valued::Capture(c) = &at.value {
                if !self.captured.contains(&c.name) {
                    let m = format!(
                        "`{c}` is not captured by this step or an earlier one; add `capture: {{{}: DOMAIN}}` to a step before it",
                        c.name
                    );
                    self.problem(at, m);
                }
            }
        }
    }

    fn context_match(&mut self, m: &ContextMatch) {
        self.capture_ref(&m.context);
        self.capture_ref(&m.level);
        self.capture_ref(&m.not_level);
    }

    fn avc_match(&mut self, m: &AvcMatch) {
        for c in [&m.scontext, &m.tcontext].into_iter().flatten() {
            self.context_match(c);
        }
    }

    fn host(&mut self, h: &HostSettings) {
        for (key, value) in &h.qemu_conf {
            if !is_identifier(&key.value) {
                let m = format!("qemu.conf key `{}` is not an identifier", key.value);
                self.problem(key, m);
            }
            if let QemuConfValue::Str(s) = value {
                // Printable ASCII only: the value is written out with Rust's `{:?}`, which
                // escapes other characters (U+200B, U+00E9) into backslash sequences that
                // libvirt would read differently, and that host::config refuses at run time.
                if s.chars()
                    .any(|c| c == '"' || c == '\\' || !(' '..='~').contains(&c))
                {
                    let m = format!(
                        "qemu.conf value for `{}` may not hold quotes, backslashes, control or non-ASCII characters",
                        key.value
                    );
                    self.problem(key, m);
                }
            }
        }
        for key in h.booleans.keys() {
            if !is_identifier(&key.value) {
                let m = format!("boolean name `{}` is not an identifier", key.value);
                self.problem(key, m);
            }
        }
    }

    fn scenario(&mut self) {
        let s = self.s;
        self.host(&s.host);
        for settings in s.variants.values() {
            self.host(settings);
        }
        for (name, d) in &s.domains {
            let mut targets = BTreeMap::new();
            for (i, spec) in d.disks.iter().enumerate() {
                let disk = spec.to_disk();
                self.image(&disk.image);
                let target = disk
                    .target
                    .as_ref()
                    .map(|t| t.value.clone())
                    .unwrap_or_else(|| default_target(i));
                if let Some(t) = &disk.target {
                    if !is_disk_target(&t.value) {
                        let m = format!("disk target `{}` should look like vda, vdb ...", t.value);
                        self.problem(t, m);
                    }
                }
                if targets.insert(target.clone(), ()).is_some() {
                    let m = format!("domain `{name}` has two disks with target `{target}`");
                    self.problem(&disk.image, m);
                }
            }
        }
        if s.steps.is_empty() {
            let m = "a scenario needs at least one step under `steps:`".to_string();
            self.problem(&s.name, m);
        }
        for step in &s.steps {
            self.step(step);
        }
    }

    fn step(&mut self, step: &Step) {
        let at = At {
            value: (),
            line: step.line,
            column: step.column,
        };
        match &step.action {
            Action::Define(t)
            | Action::Start(t)
            | Action::Reset(t)
            | Action::Destroy(t)
            | Action::Undefine(t) => {
                for n in t.names() {
                    self.domain(n);
                }
            }
            Action::AttachDisk(a) => {
                self.domain(&a.domain);
                self.image(&a.image);
                if !is_disk_target(&a.target.value) {
                    let m = format!(
                        "disk target `{}` should look like vda, vdb ...",
                        a.target.value
                    );
                    self.problem(&a.target, m);
                }
            }
            Action::DetachDisk(d) => self.domain(&d.domain),
            Action::Relabel(r) => self.image(&r.image),
            Action::Probe(p) => {
                self.image(&p.image);
                if !self.s.requires.contains(&Requirement::ProbeModule) {
                    self.problem(
                        &at,
                        "a probe step needs `requires: [probe_module]` (the policy module that lets the probe enter its context)".into(),
                    );
                }
            }
        }
        let o = &step.options;
        for w in &o.watch {
            self.image(w);
        }
        // Captures are taken right after the action, before expectations are checked.
        for (name, dom) in &o.capture {
            self.domain(dom);
            if !self.captured.insert(name.clone()) {
                let m = format!("capture `{name}` is made twice; give the second one another name");
                self.problem(dom, m);
            }
        }
        let e = &o.expect;
        for (d, m) in &e.process {
            self.domain(d);
            self.context_match(m);
        }
        for (f, m) in &e.file {
            self.image(f);
            self.context_match(m);
        }
        for (f, t) in &e.timeline {
            self.image(f);
            if !o.watch.iter().any(|w| w.value == f.value) {
                let m = format!(
                    "a timeline of `{}` needs `watch: [{}]` in this step",
                    f.value, f.value
                );
                self.problem(f, m);
            }
            self.capture_ref(&t.never_level);
            self.capture_ref(&t.saw_level);
        }
        if let Some(AvcExpect::Denials(list)) = &e.avc {
            for m in list {
                self.avc_match(m);
            }
        }
        for m in &e.no_avc {
            self.avc_match(m);
        }
        if e.access.is_some() && !matches!(step.action, Action::Probe(_)) {
            self.problem(&at, "`access` can only be expected of a probe step".into());
        }
        if e.error.is_some() && matches!(step.action, Action::Probe(_)) {
            self.problem(
                &at,
                "a probe step reports `access: allowed|denied`, not a libvirt `error`".into(),
            );
        }
        for kb in &o.known_bug {
            for v in &kb.when.variant {
                self.variant(v);
            }
        }
    }
}

/// Target names for a domain's disks in order: vda, vdb, ...
pub fn default_target(i: usize) -> String {
    format!("vd{}", (b'a' + (i % 26) as u8) as char)
}

fn is_disk_target(t: &str) -> bool {
    let ok_prefix = ["vd", "sd", "hd"].iter().any(|p| t.starts_with(p));
    ok_prefix && t.len() >= 3 && t.len() <= 5 && t[2..].bytes().all(|b| b.is_ascii_lowercase())
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
