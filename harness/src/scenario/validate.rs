//! Checks that need the whole file: every name a step uses is defined, captures are made
//! before they are used, host settings are safe to write.

use std::collections::{BTreeMap, BTreeSet};

use super::files::*;
use super::model::*;
use super::restart_daemon::RestartDaemon;
use super::roles::Role;
use super::settle::{Settle, SettleUntil};

mod operations_check;

#[path = "validate_storage.rs"]
mod storage;

#[path = "validate_devices.rs"]
mod devices;

pub(super) struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A `message:` to match with fewer words than this is probably too weak to tell one error
/// from another (`write`, `Permission denied`), unless a code or domain pins it as well.
const MESSAGE_MIN_WORDS: usize = 3;

struct Checker<'a> {
    s: &'a Scenario,
    problems: Vec<Problem>,
    /// Things that load but may not check what the author meant.
    warnings: Vec<Problem>,
    /// Captures made so far, with the step that made them.
    captured: BTreeSet<Name>,
    /// The captures of domains (not `before:` ones): only they know who QEMU ran as.
    domain_captures: BTreeSet<Name>,
    /// Files other than images that the scenario names (save files, dumps, chardev paths):
    /// `file:` may check them too.
    made: BTreeSet<Name>,
    /// Save files written by the steps so far (a `restore:` must come after its `save:`).
    saved: BTreeSet<Name>,
}

/// The errors (the file is rejected) and the warnings of a scenario, each in file order.
pub(super) fn validate(s: &Scenario) -> (Vec<Problem>, Vec<Problem>) {
    let mut c = Checker {
        s,
        problems: Vec::new(),
        warnings: Vec::new(),
        captured: BTreeSet::new(),
        domain_captures: BTreeSet::new(),
        made: operations_check::files_made(s),
        saved: BTreeSet::new(),
    };
    c.scenario();
    c.problems.sort_by_key(|p| (p.line, p.column));
    c.warnings.sort_by_key(|p| (p.line, p.column));
    (c.problems, c.warnings)
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
                if c.role().is_some() || c.of_type {
                    let m = format!(
                        "`{c}` is a type; it can stand only after `type:` (e.g. `type: {c}`)"
                    );
                    self.problem(at, m);
                } else if !self.captured.contains(&c.name) {
                    let m = format!(
                        "`{c}` is not captured by this step or an earlier one; add `capture: {{{}: DOMAIN}}` to a step before it",
                        c.name
                    );
                    self.problem(at, m);
                }
            }
        }
    }

    /// A `type:` names a type, a policy role, or a capture's `.type` made by now.
    fn type_ref(&mut self, v: &Option<At<Valued<String>>>) {
        let Some(at) = v else { return };
        let Valued::Capture(c) = &at.value else {
            return;
        };
        if c.role().is_some() {
            return;
        }
        if !c.of_type {
            let m = format!(
                "`type: {c}` compares a type with a whole label: write `type: {c}.type`, or the policy role `$domain`, `$image` or `$content`"
            );
            self.problem(at, m);
        } else if !self.captured.contains(&c.name) {
            let m = format!(
                "`{c}` is not captured by this step or an earlier one, and is not a policy role ($domain, $image, $content); add `capture: {{{}: DOMAIN}}` to a step before it",
                c.name
            );
            self.problem(at, m);
        }
    }

    /// A `settle: {until: disk_read, image: ...}` waits for the one guest that has the image
    /// as a disk: there must be exactly one.
    fn settle_until(&mut self, u: &SettleUntil) {
        self.image(&u.image);
        if !self.s.images.contains_key(&u.image.value) {
            return;
        }
        let readers: Vec<String> = self
            .s
            .domains
            .iter()
            .filter(|(_, d)| {
                d.disks
                    .iter()
                    .any(|disk| disk.to_disk().image.value == u.image.value)
            })
            .map(|(n, _)| n.to_string())
            .collect();
        if readers.len() != 1 {
            let m = format!(
                "`settle: {{until: {}, image: {}}}` waits for the guest that has {} as a disk, but {}; list it under exactly one domain's `disks:`",
                u.until,
                u.image.value,
                u.image.value,
                if readers.is_empty() {
                    "no domain has it".to_string()
                } else {
                    format!("{} have it", readers.join(" and "))
                }
            );
            self.problem(&u.image, m);
        }
    }

    /// A `$NAME` outside a MATCH (an attribute value): made by this step or an earlier one.
    fn capture_name<T>(&mut self, at: &At<T>, c: &CaptureRef) {
        if !self.captured.contains(&c.name) {
            let m = format!(
                "`{c}` is not captured by this step or an earlier one; add `capture: {{{}: DOMAIN}}` or `before: {{{}: IMAGE}}` to a step before it",
                c.name, c.name
            );
            self.problem(at, m);
        }
    }

    /// A file a bookkeeping expectation names: a known image, or a known domain's libdir.
    fn file_ref(&mut self, f: &At<FileRef>) {
        match &f.value {
            // Any file `file:` may check: an image, or one a step or a chardev makes (a
            // socket QEMU binds is gone at stop, which only `absent:` can say).
            FileRef::Image(n) => {
                let n = At {
                    value: n.clone(),
                    line: f.line,
                    column: f.column,
                };
                self.file(&n);
            }
            FileRef::Libdir { domain, .. } => {
                let d = At {
                    value: domain.clone(),
                    line: f.line,
                    column: f.column,
                };
                self.domain(&d);
            }
            FileRef::Runtime { domain, place, .. } => {
                let d = At {
                    value: domain.clone(),
                    line: f.line,
                    column: f.column,
                };
                self.domain(&d);
                self.runtime_place(&d, *place);
            }
        }
    }

    /// The bookkeeping expectations of a step (see `files`).
    fn bookkeeping(&mut self, step: &Step) {
        let e = &step.options.expect;
        for (f, names) in &e.xattr {
            self.file_ref(f);
            if names.is_empty() {
                let m = format!(
                    "`xattr: {{{}: {{}}}}` checks nothing: name attributes, e.g. {{ref_selinux: 1}}",
                    f.value
                );
                self.problem(f, m);
            }
            for v in names.values() {
                if let XattrExpect::Equals(XattrText::Capture(r)) = v {
                    self.capture_name(f, r);
                }
            }
        }
        for f in e.owner.keys().chain(e.mode.keys()).chain(e.absent.iter()) {
            self.file_ref(f);
        }
        for (f, o) in &e.owner {
            if let OwnerExpect::Of(name) = o {
                if !self.domain_captures.contains(name) {
                    let m = format!(
                        "`owner: ${name}` is who the QEMU of a domain captured as `{name}` runs as, and no `capture: {{{name}: DOMAIN}}` is made by this step or an earlier one{}",
                        if self.captured.contains(name) {
                            " (a `before:` capture is a file's label, not a process)"
                        } else {
                            ""
                        }
                    );
                    self.problem(f, m);
                }
            }
        }
        for (f, l) in &e.label {
            self.file_ref(f);
            if let LabelExpect::Match(m) = l {
                self.context_match(f, &f.value.to_string(), m);
            }
        }
        for d in e.process_owner.keys() {
            self.domain(d);
        }
        let at = At {
            value: (),
            line: step.line,
            column: step.column,
        };
        if e.outcome.is_some() && (e.error.is_some() || matches!(step.action, Action::Probe(_))) {
            self.problem(
                &at,
                "`outcome: any` leaves the action unjudged; it cannot stand beside `error:` or on a probe step".into(),
            );
        }
    }

    fn warning<T>(&mut self, at: &At<T>, message: String) {
        self.warnings.push(Problem {
            line: at.line,
            column: at.column,
            message,
        });
    }

    /// `at` is where the match stands (its key), for a match that says nothing.
    fn context_match<T>(&mut self, at: &At<T>, what: &str, m: &ContextMatch) {
        if m.is_empty() {
            let msg = format!(
                "`{what}: {{}}` matches any label, so it checks nothing: give at least one of type, level, low, high, user, role, context"
            );
            self.problem(at, msg);
        }
        self.type_ref(&m.kind);
        self.capture_ref(&m.context);
        self.capture_ref(&m.level);
        self.capture_ref(&m.not_level);
        self.capture_ref(&m.low);
        self.capture_ref(&m.high);
    }

    fn avc_match(&mut self, m: &At<AvcMatch>, list: &str) {
        if m.value.is_empty() {
            let msg = format!(
                "an empty AVC pattern in `{list}` matches every denial: give at least one of perms, scontext, tcontext, tclass, comm"
            );
            self.problem(m, msg);
        }
        if let Some(c) = &m.value.scontext {
            self.context_match(m, "scontext", c);
        }
        if let Some(c) = &m.value.tcontext {
            self.context_match(m, "tcontext", c);
        }
    }

    fn error_match(&mut self, e: &At<ErrorMatch>) {
        let m = &e.value;
        if m.code.is_none() && m.domain.is_none() && m.message.is_none() {
            self.problem(
                e,
                "`error: {}` matches any error, so it checks nothing: give the libvirt error `code:` (e.g. VIR_ERR_OPERATION_INVALID), `domain:` (e.g. VIR_FROM_SECURITY) and/or text the `message:` contains".into(),
            );
        }
        if let Some(c) = &m.code {
            if !crate::host::libvirt::is_error_code(&c.value) {
                let msg = format!(
                    "`{}` is not a libvirt error code: use a virErrorNumber name such as VIR_ERR_OPERATION_INVALID",
                    c.value
                );
                self.problem(c, msg);
            }
        }
        if let Some(d) = &m.domain {
            if !crate::host::libvirt::is_error_domain(&d.value) {
                let msg = format!(
                    "`{}` is not a libvirt error domain: use a virErrorDomain name such as VIR_FROM_SECURITY",
                    d.value
                );
                self.problem(d, msg);
            }
        }
        if let Some(text) = &m.message {
            let words = text.value.split_whitespace().count();
            if words < MESSAGE_MIN_WORDS && m.code.is_none() && m.domain.is_none() {
                let msg = format!(
                    "`message: {}` is {words} word(s) and no `code:` or `domain:` pins the error: another error can contain it too; quote more of libvirt's message or add the code",
                    text.value
                );
                self.warning(text, msg);
            }
        }
    }

    /// A known bug names the checks it excuses, among those the step makes.
    fn known_bug(&mut self, kb: &At<KnownBug>, keys: &[CheckKey]) {
        let listed: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let Some(expects) = &kb.value.expects else {
            let msg = format!(
                "known bug `{}` does not say which expectations it excuses: add `expects: [KEY, ...]` (this step's checks: {})",
                kb.value.reference,
                listed.join(", ")
            );
            self.problem(kb, msg);
            return;
        };
        if expects.is_empty() {
            self.problem(
                kb,
                format!(
                    "`expects: []` excuses nothing: name the checks the bug makes fail (this step's: {})",
                    listed.join(", ")
                ),
            );
        }
        for e in expects {
            let name = &e.value.check.value;
            if !keys.iter().any(|k| k.named_by(name)) {
                let at = if e.value.check.line > 0 {
                    &e.value.check
                } else {
                    &At {
                        value: String::new(),
                        line: e.line,
                        column: e.column,
                    }
                };
                let msg = format!(
                    "`{name}` is not a check this step makes: use one of {}",
                    listed.join(", ")
                );
                self.problem(at, msg);
            }
            if let Some(text) = &e.value.observed {
                if text.trim().is_empty() {
                    self.problem(e, "an empty `observed:` matches any failure: remove it, or give the text the failing check observes when the bug reproduces".into());
                }
                for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "$_.-".contains(c)))
                {
                    let Some(reference) = word.strip_prefix('$') else {
                        continue;
                    };
                    match format!("${}", reference.trim_end_matches('.')).parse::<CaptureRef>() {
                        Ok(c) if self.captured.contains(&c.name) || c.role().is_some() => {}
                        Ok(c) => {
                            let msg = format!(
                                "`{c}` in `observed:` is not captured by this step or an earlier one"
                            );
                            self.problem(e, msg);
                        }
                        Err(why) => self.problem(e, why.to_string()),
                    }
                }
            }
        }
    }

    /// qemu.conf keys, under `host:` or in a `restart_daemon:` step: what gets written into a
    /// root-owned config file.
    fn qemu_conf(&mut self, entries: &BTreeMap<At<String>, QemuConfValue>) {
        for (key, value) in entries {
            if !is_identifier(&key.value) {
                let m = format!("qemu.conf key `{}` is not an identifier", key.value);
                self.problem(key, m);
            }
            if let Some(m) = super::qemu_conf_keys::problem(&key.value, value) {
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
    }

    /// `restart_daemon:`: its qemu.conf keys as under `host:`; a restart expected to fail is
    /// matched by the daemon's logged message alone.
    fn restart_daemon(&mut self, r: &RestartDaemon, step: &Step) {
        self.qemu_conf(&r.qemu_conf);
        let Some(em) = &step.options.expect.error else {
            return;
        };
        for at in [&em.value.code, &em.value.domain].into_iter().flatten() {
            let m = format!(
                "a daemon that does not come up leaves no libvirt error code or domain to match (it only logs a message): remove `{}` and match `message:`",
                at.value
            );
            self.problem(at, m);
        }
    }

    fn host(&mut self, h: &HostSettings) {
        self.qemu_conf(&h.qemu_conf);
        for key in h.booleans.keys() {
            if !is_identifier(&key.value) {
                let m = format!("boolean name `{}` is not an identifier", key.value);
                self.problem(key, m);
            }
        }
        for m in &h.modules {
            if let Err(why) = super::policy_module::ModulePath::parse(m.value.file()) {
                self.problem(m, why.to_string());
            }
        }
        for t in &h.permissive {
            if !is_identifier(&t.value) {
                let m = format!(
                    "permissive type `{}` is not a type name (letters, digits and _)",
                    t.value
                );
                self.problem(t, m);
            }
        }
    }

    /// A guest with a static label of type svirt_t runs under TCG (`plan::VIRT_TYPE`) in
    /// svirt_t, which may execmem only with `virt_use_execmem` on: Debian's image turns it on,
    /// Fedora ships it off (its TCG guests run as svirt_tcg_t, which has execmem). Such a
    /// scenario sets what it needs, so it means the same on both.
    fn static_label_needs(&mut self, name: &Name, d: &Domain) {
        let Some(sl) = &d.seclabel else { return };
        let Some(label) = &sl.value.label else { return };
        if sl.value.kind != LabelType::Static || label.kind != "svirt_t" {
            return;
        }
        let sets_it = |h: &HostSettings| {
            h.booleans
                .iter()
                .any(|(k, v)| k.value == "virt_use_execmem" && *v)
        };
        let everywhere = sets_it(&self.s.host)
            || (!self.s.variants.is_empty() && self.s.variants.values().all(sets_it));
        if !everywhere {
            let m = format!(
                "domain `{name}` has the static label {label}: a TCG guest in svirt_t needs execmem, which only the boolean virt_use_execmem gives (off by default on Fedora): add `host: {{booleans: {{virt_use_execmem: true}}}}`"
            );
            self.problem(sl, m);
        }
    }

    fn scenario(&mut self) {
        let s = self.s;
        for m in &s.ignore_avc {
            if m.value.is_empty() {
                self.problem(m, "an empty AVC pattern in `ignore_avc` hides every denial: give at least one of perms, scontext, tcontext, tclass, comm".into());
            }
        }
        self.host(&s.host);
        for settings in s.variants.values() {
            self.host(settings);
        }
        self.images();
        for (name, d) in &s.domains {
            self.static_label_needs(name, d);
            self.raw_seclabels(name, d);
            self.boot_files(d);
            for p in &d.pmem {
                self.pmem(p);
            }
            for f in &d.virtiofs {
                self.virtiofs(name, d, f);
            }
            let mut targets = BTreeMap::new();
            for (i, spec) in d.disks.iter().enumerate() {
                let disk = spec.to_disk();
                self.created_image(&disk.image, "a disk at define time");
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
                self.cdrom(&disk);
                if let Some(sl) = &disk.seclabel {
                    self.disk_seclabel(sl, spec);
                }
                if targets.insert(target.clone(), ()).is_some() {
                    let m = format!("domain `{name}` has two disks with target `{target}`");
                    self.problem(&disk.image, m);
                }
            }
        }
        for d in s.domains.values() {
            for c in &d.serials {
                self.chardev(c);
            }
        }
        if s.steps.is_empty() {
            let m = "a scenario needs at least one step under `steps:`".to_string();
            self.problem(&s.name, m);
        }
        for (i, step) in s.steps.iter().enumerate() {
            self.step(step);
            self.survivors(i, step);
        }
    }

    /// A per-disk label is a context for model selinux and an owner for model dac: given the
    /// other, libvirt would refuse it at define time and the scenario would test nothing it meant.
    /// `near` places the problem when the label's own place is lost (a disk in its full form
    /// is read through an untagged enum, which keeps no places inside it).
    fn disk_seclabel<T>(&mut self, sl: &DiskSeclabel, near: &At<T>) {
        let Some(label) = &sl.label else { return };
        let model = sl.model.as_deref().unwrap_or("selinux");
        if (model == "selinux" || model == "dac") && label.value.model() != model {
            let fix = match model {
                "dac" => "write user:group (e.g. libvirt-qemu:libvirt-qemu)",
                _ => "write a context, or add `model: dac` for an owner",
            };
            let m = format!(
                "label `{}` of a model {model} seclabel is a {} label: {fix}",
                label.value,
                label.value.model()
            );
            if label.line == 0 {
                self.problem(near, m);
            } else {
                self.problem(label, m);
            }
        }
    }

    /// A raw seclabel's text goes into the domain XML as written (escaped): it may be anything
    /// libvirt could be asked to parse, but one line of printable ASCII, and the model a word.
    fn raw_seclabels(&mut self, domain: &Name, d: &Domain) {
        for raw in &d.seclabels {
            let m = &raw.value.model;
            if !is_identifier(&m.value) {
                let msg = format!(
                    "seclabel model `{}` of domain `{domain}` is not a word: write selinux, dac or none",
                    m.value
                );
                self.problem(m, msg);
            }
            for text in [
                &raw.value.label,
                &raw.value.imagelabel,
                &raw.value.baselabel,
            ]
            .into_iter()
            .flatten()
            {
                if text.value.is_empty() || !text.value.chars().all(|c| (' '..='~').contains(&c)) {
                    let msg = format!(
                        "label {:?} of domain `{domain}`: give one line of printable ASCII (libvirt parses it; an empty label is left out instead)",
                        text.value
                    );
                    self.problem(text, msg);
                }
            }
        }
    }

    /// A step's `when` names known variants, says something, and makes no capture: a later
    /// step could not tell whether the capture it uses was made.
    fn step_when(&mut self, when: &At<Platform>, o: &StepOptions) {
        for v in &when.value.variant {
            self.variant(v);
        }
        let w = &when.value;
        if w.variant.is_empty()
            && w.distro.is_empty()
            && w.not_distro.is_empty()
            && w.libvirt.is_none()
        {
            self.problem(
                when,
                "`when: {}` holds everywhere: remove it, or give `variant:`, `distro:`, `not_distro:` or `libvirt:`".into(),
            );
        }
        if let Some(d) = w.distro.iter().find(|d| w.not_distro.contains(d)) {
            self.problem(
                when,
                format!("`when:` names {d} in both `distro:` and `not_distro:`: keep it in one"),
            );
        }
        if let Some((name, _)) = o.capture.iter().next() {
            let m = format!(
                "a step with `when:` may not capture (`{name}`): later steps run where it does not; capture in a step that always runs"
            );
            self.problem(when, m);
        }
    }

    /// `mutants_survive` names mutants this step has, each with a reason.
    fn survivors(&mut self, i: usize, step: &Step) {
        if step.options.mutants_survive.is_empty() {
            return;
        }
        let ids: Vec<String> = super::mutate::step_mutations(self.s, i)
            .into_iter()
            .map(|m| m.id)
            .collect();
        for sv in &step.options.mutants_survive {
            let id = &sv.value.mutant;
            if !ids.contains(&id.value) {
                let m = format!(
                    "`{}` is not a mutant of this step: use one of {}",
                    id.value,
                    ids.join(", ")
                );
                self.problem(id, m);
            }
            if sv.value.reason.split_whitespace().count() < 3 {
                self.problem(
                    sv,
                    format!(
                        "say why mutant `{}` cannot be killed: a `reason:` of a few words at least",
                        id.value
                    ),
                );
            }
        }
    }

    fn step(&mut self, step: &Step) {
        let at = At {
            value: (),
            line: step.line,
            column: step.column,
        };
        // `before:` is taken before the action, so the action and the step may use it.
        for (name, img) in &step.options.before {
            self.image(img);
            if !self.captured.insert(name.clone()) {
                let m = format!("capture `{name}` is made twice; give the second one another name");
                self.problem(img, m);
            }
        }
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
                if let Some(sl) = &a.seclabel {
                    self.disk_seclabel(sl, &a.target);
                }
            }
            Action::DetachDisk(d) => self.domain(&d.domain),
            Action::Save(_)
            | Action::Restore(_)
            | Action::Managedsave(_)
            | Action::Dump(_)
            | Action::ChangeMedia(_) => self.operation(&step.action),
            Action::Relabel(r) => self.image(&r.image),
            Action::Setxattr(x) => {
                self.image(&x.image);
                if let XattrText::Capture(r) = &x.value.0 {
                    self.capture_name(&x.image, r);
                }
            }
            Action::Rmxattr(x) => self.image(&x.image),
            Action::RestartDaemon(r) => self.restart_daemon(r, step),
            Action::Probe(p) => {
                self.image(&p.image);
                if step.options.expect.access.is_none() {
                    self.problem(
                        &at,
                        "a probe step must say what the open should do: add `expect: {access: allowed}` or `expect: {access: denied}`".into(),
                    );
                }
                if !self.s.requires.contains(&Requirement::ProbeModule) {
                    self.problem(
                        &at,
                        "a probe step needs `requires: [probe_module]` (the policy module that lets the probe enter its context)".into(),
                    );
                }
            }
            Action::SnapshotCreate(_)
            | Action::Blockcommit(_)
            | Action::Blockcopy(_)
            | Action::BlockJob(_) => self.storage_action(&step.action),
        }
        let o = &step.options;
        if let Some(when) = &o.when {
            self.step_when(when, o);
        }
        for w in &o.watch {
            self.image(w);
        }
        if let Some(Settle::Until(u)) = &o.settle {
            self.settle_until(u);
        }
        // Captures are taken right after the action, before expectations are checked.
        for (name, dom) in &o.capture {
            self.domain(dom);
            if let Some(role) = Role::from_name(name.as_str()) {
                let m = format!("capture `{name}` would hide the policy role `{role}` (the type libvirt uses on the target): give the capture another name");
                self.problem(dom, m);
            }
            if !self.captured.insert(name.clone()) {
                let m = format!("capture `{name}` is made twice; give the second one another name");
                self.problem(dom, m);
            }
            self.domain_captures.insert(name.clone());
        }
        let e = &o.expect;
        if let Some(em) = &e.error {
            self.error_match(em);
        }
        for (d, m) in &e.process {
            self.domain(d);
            self.context_match(d, &d.value.to_string(), m);
        }
        self.swtpm_expect(e);
        self.helper_expect(e);
        for (f, m) in &e.file {
            self.file(f);
            self.context_match(f, &f.value.to_string(), m);
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
            if t.never_level.is_none() && t.saw_level.is_none() && t.unchanged != Some(true) {
                let m = format!(
                    "the timeline of `{}` checks nothing: give `never_level`, `saw_level` or `unchanged: true`",
                    f.value
                );
                self.problem(f, m);
            }
            self.capture_ref(&t.never_level);
            self.capture_ref(&t.saw_level);
        }
        if let Some(AvcExpect::Denials(list)) = &e.avc {
            for m in list {
                self.avc_match(m, "avc");
            }
        }
        for m in &e.no_avc {
            self.avc_match(m, "no_avc");
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
        self.bookkeeping(step);
        let keys = e.keys(matches!(step.action, Action::Probe(_)));
        for kb in &o.known_bug {
            for v in &kb.value.when.variant {
                self.variant(v);
            }
            self.known_bug(kb, &keys);
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
