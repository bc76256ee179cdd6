//! One self-contained HTML page for a whole run: verdicts, steps, checks, and for each watched
//! file a lane showing every label it carried and where AVC denials were logged.
//!
//! Everything in the page comes from the record, and most of the record comes from the target
//! (contexts, libvirt messages, raw audit lines, notes): every piece of text goes through
//! `escape`, and no record data is ever placed inside the script or style elements. The page
//! loads nothing from the network, so it can be attached to a CI run or mailed as it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Record, ScenarioRecord, StepRecord};
use crate::context::Context;
use crate::evidence::{Evidence, Outcome};
use crate::host::environment::TargetInfo;
use crate::run::expect::avc_line;
use crate::run::verdict::{Check, Verdict};

/// Colours for distinct labels, in order of first appearance. Chosen to stay tellable apart
/// on screen and in greyscale print; beyond them the palette repeats with a hatch.
const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f",
];

/// A step too short to see next to an 8 s settle still gets this share of the axis, so that
/// the sub-second relabel a bug report is about stays visible. Within a step time is linear.
const MIN_STEP_SHARE: f64 = 0.15;

const STYLE: &str = r#"
:root { --pass:#2e7d32; --fail:#c62828; --warn:#b26a00; --muted:#666; --line:#ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 16px 24px; background: #263238; color: #fff; }
header h1 { margin: 0 0 6px; font-size: 20px; }
header .counts span { display: inline-block; margin-right: 12px; }
header label { margin-left: 12px; font-size: 13px; }
main { padding: 12px 24px 40px; }
code, pre, .ctx { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
pre { white-space: pre-wrap; word-break: break-all; background: #f3f3f3; padding: 6px 8px; margin: 4px 0; border-radius: 4px; }
section.scenario { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--muted); border-radius: 6px; margin: 14px 0; padding: 10px 16px; }
section.scenario.v-pass { border-left-color: var(--pass); }
section.scenario.v-fail, section.scenario.v-known-bug-gone, section.scenario.v-error, section.scenario.v-inconclusive { border-left-color: var(--fail); }
section.scenario.v-known-bug, section.scenario.v-skipped { border-left-color: var(--warn); }
h2 { font-size: 17px; margin: 4px 0; }
h2 .file { font-weight: normal; color: var(--muted); font-size: 13px; margin-left: 8px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; text-transform: uppercase; margin-right: 8px; vertical-align: 2px; }
.badge.v-pass { background: var(--pass); }
.badge.v-fail, .badge.v-known-bug-gone, .badge.v-error, .badge.v-inconclusive { background: var(--fail); }
.badge.v-known-bug, .badge.v-skipped, .badge.v-none { background: var(--warn); }
.detail { margin: 2px 0 6px; }
.target { color: var(--muted); font-size: 12.5px; }
.notes { color: var(--muted); font-size: 12.5px; margin: 4px 0; padding-left: 18px; }
.lanes { margin: 10px 0 6px; }
.lane-row { display: flex; align-items: center; margin: 6px 0; }
.lane-name { width: 130px; flex: none; font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.lane { position: relative; flex: 1; height: 26px; background: repeating-linear-gradient(45deg, #f4f4f4 0 6px, #ececec 6px 12px); border: 1px solid #ccc; border-radius: 3px; }
.seg { position: absolute; top: 0; bottom: 0; min-width: 3px; border-right: 1px solid #fff; }
.hatch { background-image: repeating-linear-gradient(-45deg, rgba(255,255,255,.45) 0 4px, transparent 4px 8px); }
.seg.nolabel { background: #9e9e9e; background-image: repeating-linear-gradient(-45deg, #bdbdbd 0 3px, #9e9e9e 3px 6px); }
.avc { position: absolute; top: -7px; height: 38px; border: 2px solid var(--fail); border-radius: 3px; background: rgba(198,40,40,.08); pointer-events: auto; }
.avc b { position: absolute; top: -16px; left: 0; color: var(--fail); font-size: 11px; white-space: nowrap; }
.axis { position: relative; height: 30px; margin-left: 130px; font-size: 11px; color: var(--muted); }
.tick { position: absolute; top: 0; border-left: 1px solid #bbb; height: 8px; }
.tick span { position: absolute; top: 8px; left: 2px; right: 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.sep { position: absolute; top: 0; bottom: 0; border-left: 1px dashed #999; }
.legend { font-size: 12px; margin: 4px 0 8px 130px; }
.legend .item { display: inline-block; white-space: nowrap; margin-right: 14px; }
.legend span.sw { display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin-right: 4px; border-radius: 2px; border: 1px solid #ccc; }
.legend span.sw.gap { background: repeating-linear-gradient(45deg, #f4f4f4 0 3px, #ddd 3px 6px); }
.legend span.sw.avcsw { border: 2px solid var(--fail); background: rgba(198,40,40,.08); }
details.step { border-top: 1px solid var(--line); padding: 4px 0; }
details.step > summary { cursor: pointer; }
details.step > summary .ms { color: var(--muted); font-size: 12px; margin-left: 6px; }
.mark-ok { color: var(--pass); font-weight: 600; }
.mark-fail { color: var(--fail); font-weight: 600; }
.mark-known { color: var(--warn); font-weight: 600; }
table.check { border-collapse: collapse; margin: 4px 0 8px 16px; }
table.check th { text-align: left; font-weight: normal; color: var(--muted); padding: 1px 10px 1px 0; vertical-align: top; }
table.check td { padding: 1px 0; }
mark { background: #ffcdd2; color: inherit; padding: 0 1px; }
ul.evidence { margin: 4px 0; padding-left: 18px; }
body.only-failing section.scenario.success { display: none; }
"#;

/// Hides scenarios that succeeded, for long runs. The page works without it.
const SCRIPT: &str = r#"
document.getElementById('only-failing').addEventListener('change', function (e) {
  document.body.classList.toggle('only-failing', e.target.checked);
});
"#;

/// Escape text for HTML element content and double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

fn verdict_class(v: Option<&Verdict>) -> &'static str {
    match v {
        Some(v) => match v {
            Verdict::Pass => "v-pass",
            Verdict::Fail { .. } => "v-fail",
            Verdict::KnownBug { .. } => "v-known-bug",
            Verdict::KnownBugGone { .. } => "v-known-bug-gone",
            Verdict::Inconclusive { .. } => "v-inconclusive",
            Verdict::Error { .. } => "v-error",
            Verdict::Skipped { .. } => "v-skipped",
        },
        None => "v-none",
    }
}

/// The verdict's own words beyond its label, as the terminal report gives them.
fn verdict_detail(v: &Verdict) -> String {
    match v {
        Verdict::Pass => String::new(),
        Verdict::Fail { failed } => format!("{failed} expectation(s) failed"),
        Verdict::KnownBug { references } => {
            format!("known bug reproduced: {}", references.join(", "))
        }
        Verdict::KnownBugGone { references } => format!(
            "a known bug no longer reproduces ({}); update the scenario's known_bug",
            references.join(", ")
        ),
        Verdict::Inconclusive { reason }
        | Verdict::Error { reason }
        | Verdict::Skipped { reason } => reason.clone(),
    }
}

/// Where each step sits on a scenario's horizontal axis, as fractions of the whole width.
struct Axis {
    /// (start, width) per step, in record order.
    bands: Vec<(f64, f64)>,
}

impl Axis {
    fn new(steps: &[StepRecord]) -> Self {
        let total: u64 = steps.iter().map(|s| s.millis).sum();
        let n = steps.len().max(1) as f64;
        let raw: Vec<f64> = steps
            .iter()
            .map(|s| {
                let share = if total == 0 {
                    1.0 / n
                } else {
                    s.millis as f64 / total as f64
                };
                share.max(MIN_STEP_SHARE.min(1.0 / n))
            })
            .collect();
        let sum: f64 = raw.iter().sum::<f64>().max(f64::EPSILON);
        let mut start = 0.0;
        let bands = raw
            .iter()
            .map(|w| {
                let band = (start, w / sum);
                start += w / sum;
                band
            })
            .collect();
        Self { bands }
    }

    /// Position of `at_us` within step `i` (clamped to the step: a change recorded after the
    /// step's reported end still belongs to it).
    fn at(&self, i: usize, at_us: u64, step_millis: u64) -> f64 {
        let (start, width) = self.bands[i];
        let span_us = (step_millis.max(1) * 1000) as f64;
        start + width * (at_us as f64 / span_us).min(1.0)
    }
}

fn pct(x: f64) -> String {
    format!("{:.3}%", x * 100.0)
}

/// Assigns each distinct label a colour, in order of first appearance over the whole run, so
/// the same label has the same colour in every scenario of the page.
#[derive(Default)]
struct Palette {
    index: BTreeMap<String, usize>,
    order: Vec<String>,
}

impl Palette {
    fn of(&mut self, label: &str) -> usize {
        if let Some(i) = self.index.get(label) {
            return *i;
        }
        let i = self.order.len();
        self.index.insert(label.to_string(), i);
        self.order.push(label.to_string());
        i
    }

    fn style(i: usize) -> (String, bool) {
        (PALETTE[i % PALETTE.len()].to_string(), i >= PALETTE.len())
    }
}

pub fn render(record: &Record) -> String {
    let mut out = String::new();
    let mut palette = Palette::default();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // The page must never load anything: a report viewed from CI artefacts has no network, and
    // target-supplied text must not be able to pull anything in either.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
    );
    out.push_str("<title>selinux-harness report</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n");
    header(&mut out, record);
    out.push_str("<main>\n");
    if record.scenarios.is_empty() {
        out.push_str("<p>No scenario ran.</p>\n");
    }
    for (i, s) in record.scenarios.iter().enumerate() {
        scenario(&mut out, i, s, &mut palette);
    }
    out.push_str("</main>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

fn header(out: &mut String, record: &Record) {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for s in &record.scenarios {
        let label = s
            .verdict
            .as_ref()
            .map(Verdict::label)
            .unwrap_or("no verdict");
        *counts.entry(label).or_default() += 1;
    }
    out.push_str("<header>\n<h1>selinux-harness report</h1>\n<div class=\"counts\">");
    let _ = write!(
        out,
        "<span>{} scenario run(s)</span>",
        record.scenarios.len()
    );
    for (label, n) in &counts {
        let _ = write!(out, "<span>{}: {n}</span>", escape(label));
    }
    out.push_str(
        "<label><input type=\"checkbox\" id=\"only-failing\"> only what did not succeed</label>",
    );
    out.push_str("</div>\n</header>\n");
}

fn describe_target(t: &TargetInfo) -> String {
    let mut parts = Vec::new();
    if !t.kind.is_empty() {
        parts.push(format!("target {}", t.kind));
    }
    for p in [&t.distro, &t.kernel, &t.selinux_mode] {
        if !p.is_empty() {
            parts.push(p.clone());
        }
    }
    if !t.policy_name.is_empty() {
        parts.push(format!("policy {} {}", t.policy_name, t.policy_version));
    }
    if !t.libvirt_version.is_empty() {
        parts.push(format!("libvirt {}", t.libvirt_version));
    }
    if !t.qemu_version.is_empty() {
        parts.push(format!("QEMU {}", t.qemu_version));
    }
    for p in [&t.accelerator, &t.boot] {
        if !p.is_empty() {
            parts.push(p.clone());
        }
    }
    if !t.qemu_conf.is_empty() {
        let kv: Vec<String> = t
            .qemu_conf
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.push(format!("qemu.conf {}", kv.join(" ")));
    }
    parts.join(", ")
}

fn scenario(out: &mut String, i: usize, s: &ScenarioRecord, palette: &mut Palette) {
    let class = verdict_class(s.verdict.as_ref());
    let success = s.verdict.as_ref().is_some_and(Verdict::is_success);
    let _ = writeln!(
        out,
        "<section class=\"scenario {class}{}\" id=\"s{i}\">",
        if success { " success" } else { "" }
    );
    let label = s
        .verdict
        .as_ref()
        .map(Verdict::label)
        .unwrap_or("no verdict");
    let _ = writeln!(
        out,
        "<h2><span class=\"badge {class}\">{}</span>{}<span class=\"file\">{} &middot; {:.1} s</span></h2>",
        escape(label),
        escape(&s.id()),
        escape(&s.file),
        s.millis as f64 / 1000.0
    );
    match &s.verdict {
        Some(v) => {
            let d = verdict_detail(v);
            if !d.is_empty() {
                let _ = writeln!(out, "<p class=\"detail\">{}</p>", escape(&d));
            }
        }
        None => out.push_str("<p class=\"detail\">The run ended before a verdict.</p>\n"),
    }
    let t = describe_target(&s.target);
    if !t.is_empty() {
        let _ = writeln!(out, "<div class=\"target\">{}</div>", escape(&t));
    }
    if !s.notes.is_empty() {
        out.push_str("<ul class=\"notes\">");
        for n in &s.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul>\n");
    }
    lanes(out, s, palette);
    for st in &s.steps {
        step(out, st);
    }
    out.push_str("</section>\n");
}

/// The files watched in any step of the scenario, in order of first appearance.
fn watched_files(s: &ScenarioRecord) -> Vec<&str> {
    let mut files: Vec<&str> = Vec::new();
    for st in &s.steps {
        for e in &st.evidence {
            if let Evidence::Timeline { file, .. } = e {
                if !files.contains(&file.as_str()) {
                    files.push(file);
                }
            }
        }
    }
    files
}

fn denials(st: &StepRecord) -> Vec<String> {
    st.evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Avcs { records, .. } => Some(records),
            _ => None,
        })
        .flatten()
        .filter(|r| r.denied)
        .map(avc_line)
        .collect()
}

fn lanes(out: &mut String, s: &ScenarioRecord, palette: &mut Palette) {
    let files = watched_files(s);
    if files.is_empty() {
        return;
    }
    let axis = Axis::new(&s.steps);
    let mut used: Vec<usize> = Vec::new();
    out.push_str("<div class=\"lanes\">\n");
    for file in &files {
        let _ = write!(
            out,
            "<div class=\"lane-row\"><div class=\"lane-name\" title=\"{0}\">{0}</div><div class=\"lane\">",
            escape(file)
        );
        for (start, _) in axis.bands.iter().skip(1) {
            let _ = write!(
                out,
                "<div class=\"sep\" style=\"left:{}\"></div>",
                pct(*start)
            );
        }
        for (i, st) in s.steps.iter().enumerate() {
            for e in &st.evidence {
                let Evidence::Timeline {
                    file: f, changes, ..
                } = e
                else {
                    continue;
                };
                if f != file {
                    continue;
                }
                for (k, c) in changes.iter().enumerate() {
                    let end_us = changes
                        .get(k + 1)
                        .map(|n| n.at_us)
                        .unwrap_or(st.millis * 1000)
                        .max(c.at_us);
                    let x0 = axis.at(i, c.at_us, st.millis);
                    let x1 = axis.at(i, end_us, st.millis);
                    let text = c.shown();
                    let held = format!(
                        "{}\nstep {}: +{:.3} s to +{:.3} s ({:.3} s)",
                        text,
                        st.step,
                        c.at_us as f64 / 1e6,
                        end_us as f64 / 1e6,
                        (end_us - c.at_us) as f64 / 1e6
                    );
                    if c.context.is_none() {
                        let _ = write!(
                            out,
                            "<div class=\"seg nolabel\" style=\"left:{};width:{}\" title=\"{}\"></div>",
                            pct(x0),
                            pct(x1 - x0),
                            escape(&held)
                        );
                        continue;
                    }
                    let idx = palette.of(&text);
                    if !used.contains(&idx) {
                        used.push(idx);
                    }
                    let (color, hatch) = Palette::style(idx);
                    let _ = write!(
                        out,
                        "<div class=\"seg{}\" style=\"left:{};width:{};background-color:{color}\" title=\"{}\"></div>",
                        if hatch { " hatch" } else { "" },
                        pct(x0),
                        pct(x1 - x0),
                        escape(&held)
                    );
                }
            }
        }
        // Audit records carry no offset from the step's start that the record keeps, so a
        // denial is marked over the whole step it was logged in, not at a guessed instant.
        for (i, st) in s.steps.iter().enumerate() {
            let d = denials(st);
            if d.is_empty() {
                continue;
            }
            let (x0, w) = axis.bands[i];
            let _ = write!(
                out,
                "<div class=\"avc\" style=\"left:{};width:{}\" title=\"{}\"><b>&#9888; {} AVC</b></div>",
                pct(x0),
                pct(w),
                escape(&format!(
                    "logged during step {} (time within the step not recorded):\n{}",
                    st.step,
                    d.join("\n")
                )),
                d.len()
            );
        }
        out.push_str("</div></div>\n");
    }
    out.push_str("<div class=\"axis\">");
    for (i, st) in s.steps.iter().enumerate() {
        let (x0, w) = axis.bands[i];
        let _ = write!(
            out,
            "<div class=\"tick\" style=\"left:{};width:{}\" title=\"{}\"><span>step {} &middot; {:.2} s</span></div>",
            pct(x0),
            pct(w),
            escape(&st.title),
            st.step,
            st.millis as f64 / 1000.0
        );
    }
    out.push_str("</div>\n<div class=\"legend\">");
    for idx in used {
        let (color, hatch) = Palette::style(idx);
        let _ = write!(
            out,
            "<span class=\"item\"><span class=\"sw{}\" style=\"background-color:{color}\"></span><span class=\"ctx\">{}</span></span>",
            if hatch { " hatch" } else { "" },
            escape(&palette.order[idx])
        );
    }
    out.push_str(
        "<span class=\"item\"><span class=\"sw gap\"></span>not watched in this step</span>\
         <span class=\"item\"><span class=\"sw avcsw\"></span>AVC denial logged during this step</span>",
    );
    out.push_str("</div>\n</div>\n");
}

fn step(out: &mut String, st: &StepRecord) {
    let failed = st.checks.iter().any(|c| !c.passed);
    let _ = writeln!(
        out,
        "<details class=\"step\"{}><summary>step {}: {}<span class=\"ms\">{} ms</span>{}</summary>",
        if failed { " open" } else { "" },
        st.step,
        escape(&st.title),
        st.millis,
        summary_marks(&st.checks)
    );
    for c in &st.checks {
        check(out, c);
    }
    let lines: Vec<String> = st.evidence.iter().flat_map(evidence_lines).collect();
    if !lines.is_empty() {
        out.push_str("<ul class=\"evidence\">");
        for l in lines {
            let _ = write!(out, "<li>{l}</li>");
        }
        out.push_str("</ul>\n");
    }
    if !st.explanations.is_empty() {
        out.push_str("<ul class=\"evidence oracle\">");
        for x in &st.explanations {
            let _ = write!(out, "<li>{}</li>", escape(&x.summary()));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</details>\n");
}

fn summary_marks(checks: &[Check]) -> String {
    let ok = checks.iter().filter(|c| c.passed).count();
    let known = checks
        .iter()
        .filter(|c| !c.passed && c.known_bug.is_some())
        .count();
    let failed = checks
        .iter()
        .filter(|c| !c.passed && c.known_bug.is_none())
        .count();
    let mut s = String::new();
    if ok > 0 {
        let _ = write!(s, " <span class=\"mark-ok\">{ok} ok</span>");
    }
    if known > 0 {
        let _ = write!(s, " <span class=\"mark-known\">{known} known bug</span>");
    }
    if failed > 0 {
        let _ = write!(s, " <span class=\"mark-fail\">{failed} failed</span>");
    }
    s
}

fn check(out: &mut String, c: &Check) {
    let (class, mark) = match (c.passed, &c.known_bug) {
        (true, _) => ("mark-ok", "ok"),
        (false, Some(_)) => ("mark-known", "known bug"),
        (false, None) => ("mark-fail", "FAILED"),
    };
    let _ = writeln!(
        out,
        "<div><span class=\"{class}\">{mark}</span> {}</div>",
        escape(&c.expectation)
    );
    if c.passed {
        return;
    }
    out.push_str("<table class=\"check\">");
    if let Some(r) = &c.known_bug {
        let _ = write!(out, "<tr><th>reference</th><td>{}</td></tr>", escape(r));
    }
    let _ = write!(
        out,
        "<tr><th>expected</th><td><pre>{}</pre></td></tr><tr><th>observed</th><td><pre>{}</pre></td></tr>",
        escape(&c.expected),
        highlight_observed(&c.expected, &c.observed)
    );
    out.push_str("</table>\n");
}

/// The observation, escaped, with the context fields that differ from the expected context
/// marked - when both sides are contexts (the expected text may carry a note after it, such as
/// the capture it came from).
fn highlight_observed(expected: &str, observed: &str) -> String {
    let parse = |s: &str| s.parse::<Context>().ok();
    let (Some(e), Some(o)) = (
        expected.split_whitespace().next().and_then(parse),
        parse(observed.trim()),
    ) else {
        return escape(observed);
    };
    let fields = |c: &Context| {
        [
            c.user.clone(),
            c.role.clone(),
            c.kind.clone(),
            c.range.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        ]
    };
    let (ef, of) = (fields(&e), fields(&o));
    let mut parts = Vec::new();
    for (a, b) in ef.iter().zip(&of) {
        if b.is_empty() {
            continue;
        }
        if a == b {
            parts.push(escape(b));
        } else {
            parts.push(format!("<mark>{}</mark>", escape(b)));
        }
    }
    parts.join(":")
}

fn ctx_or(c: &Option<Context>, none: &str) -> String {
    c.as_ref().map(|c| c.to_string()).unwrap_or(none.into())
}

/// Evidence as list items (already escaped HTML).
fn evidence_lines(e: &Evidence) -> Vec<String> {
    let code = |s: &str| format!("<code>{}</code>", escape(s));
    match e {
        Evidence::Action { action, outcome } => {
            let how = match outcome {
                Outcome::Ok => "ok".to_string(),
                Outcome::Libvirt(l) => format!(
                    "<span class=\"mark-fail\">libvirt error</span> {} ({}): {}",
                    code(&l.code),
                    escape(&l.domain),
                    escape(&l.message)
                ),
                Outcome::Errno { errno } => format!("failed: {}", code(errno)),
                Outcome::DaemonFailed { message } => format!(
                    "<span class=\"mark-fail\">daemon did not come up</span>: {}",
                    escape(message)
                ),
                Outcome::Other { message } => {
                    format!(
                        "<span class=\"mark-fail\">failed</span>: {}",
                        escape(message)
                    )
                }
            };
            vec![format!("{}: {how}", escape(action))]
        }
        Evidence::FileContext { file, context, .. } => vec![format!(
            "{} after the step: {}",
            escape(file),
            code(&ctx_or(context, "no label"))
        )],
        Evidence::ProcessLabel {
            domain,
            pid,
            context,
        } => vec![format!(
            "{} QEMU (pid {pid}): {}",
            escape(domain),
            code(&context.to_string())
        )],
        Evidence::DomainSeclabel {
            domain,
            label,
            imagelabel,
            ..
        } => vec![format!(
            "{} live seclabel: label {} imagelabel {}",
            escape(domain),
            code(&ctx_or(label, "-")),
            code(&ctx_or(imagelabel, "-"))
        )],
        Evidence::Avcs { records, filtered } => {
            let mut v = vec![format!(
                "{} audit record(s), {filtered} filtered as noise",
                records.len()
            )];
            v.extend(
                records
                    .iter()
                    .map(|r| format!("<pre>{}</pre>", escape(&r.raw))),
            );
            v
        }
        Evidence::Timeline { file, changes, .. } => vec![format!(
            "{} timeline: {}",
            escape(file),
            changes
                .iter()
                .map(|c| format!("+{:.3} s {}", c.at_us as f64 / 1e6, code(&c.shown())))
                .collect::<Vec<_>>()
                .join(" &rarr; ")
        )],
        Evidence::RememberedOwner { file, xattrs } => vec![format!(
            "{} remembered owner: {}",
            escape(file),
            xattrs
                .iter()
                .map(|(k, v)| code(&format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(" ")
        )],
        Evidence::FileState {
            file,
            path,
            facts,
            why,
        } => vec![escape(&crate::evidence::file_state::describe(
            file,
            path.as_deref(),
            facts.as_ref(),
            why.as_deref(),
        ))],
        Evidence::ProcessOwner { domain, pid, ids } => vec![format!(
            "{} QEMU (pid {pid}) runs as {}",
            escape(domain),
            code(&ids.describe())
        )],
        Evidence::SwtpmProcess {
            domain,
            pid,
            context,
            ids,
        } => vec![escape(&crate::evidence::describe_swtpm(
            domain,
            *pid,
            context.as_ref(),
            ids.as_ref(),
        ))],
        Evidence::HelperProcess {
            domain,
            helper,
            pid,
            context,
            ids,
        } => vec![escape(&crate::evidence::describe_helper(
            domain,
            helper,
            *pid,
            context.as_ref(),
            ids.as_ref(),
        ))],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::evidence::{AvcRecord, LabelChange, LibvirtError};

    fn ctx(s: &str) -> Context {
        s.parse().expect("test contexts are valid")
    }

    /// The cross-attach scenario's remember_owner_0 variant. The labels and their timing are
    /// what a run on the Debian 12 VM recorded (vm1.img carries vm2's categories for 0.23 s,
    /// then virt_image_t:s0); pids, versions, messages and durations are representative.
    pub(crate) fn cross_attach_record() -> ScenarioRecord {
        let vm1_img = "system_u:object_r:svirt_image_t:s0:c146,c1010";
        let vm2_img = "system_u:object_r:svirt_image_t:s0:c161,c423";
        let check = |expectation: &str, expected: &str, observed: &str, passed: bool| Check {
            key: crate::scenario::CheckKey::Succeeds,
            evidence_missing: false,
            expectation: expectation.into(),
            expected: expected.into(),
            observed: observed.into(),
            passed,
            known_bug: (!passed)
                .then(|| "libvir-list 2012-03 (hot-add relabels another guest's image)".into()),
        };
        ScenarioRecord {
            scenario: "cross-attach".into(),
            variant: Some("remember_owner_0".into()),
            file: "scenarios/seed/cross-attach.yaml".into(),
            target: TargetInfo {
                kind: "vm".into(),
                kernel: "6.1.0-28-amd64".into(),
                selinux_mode: "enforcing".into(),
                policy_name: "default".into(),
                policy_version: "33".into(),
                mls: true,
                libvirt_version: "9.0.0".into(),
                qemu_version: "7.2.15".into(),
                secmodel: "selinux".into(),
                distro: "debian-12".into(),
                accelerator: "tcg".into(),
                boot: "warm".into(),
                qemu_conf: vec![("remember_owner".into(), "0".into())],
                policy_package: "selinux-policy-default 2:2.20221101-11".into(),
                harness_version: "0.1.0".into(),
                image: "debian-12 3f2a14b07c9e".into(),
            },
            verdict: Some(Verdict::KnownBug {
                references: vec![
                    "libvir-list 2012-03 (hot-add relabels another guest's image)".into(),
                ],
            }),
            millis: 11_940,
            notes: vec!["libvirtd restarted with remember_owner = 0".into()],
            guest_logs: vec![crate::report::GuestLog {
                domain: "vm2".into(),
                path: "/var/log/libvirt/qemu/selinux-harness-f0e5e10-vm2.log".into(),
                text: "2026-11-26 09:40:01.120+0000: starting up libvirt version: 9.0.0\n\
                       LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=selinux-harness-f0e5e10-vm2 \
                       -machine pc,usb=off -m 64\n"
                    .into(),
            }],
            steps: vec![
                StepRecord {
                    step: 1,
                    title: "start vm1, vm2".into(),
                    millis: 2_870,
                    evidence: vec![
                        Evidence::Action {
                            action: "start vm1, vm2".into(),
                            outcome: Outcome::Ok,
                        },
                        Evidence::ProcessLabel {
                            domain: "vm1".into(),
                            pid: 4121,
                            context: ctx("system_u:system_r:svirt_t:s0:c146,c1010"),
                        },
                        Evidence::FileContext {
                            file: "vm1.img".into(),
                            path: "/var/lib/libvirt/images/selinux-harness-r1/vm1.img".into(),
                            context: Some(ctx(vm1_img)),
                        },
                        Evidence::Avcs {
                            records: vec![],
                            filtered: 2,
                        },
                    ],
                    checks: vec![check(
                        "vm1.img level is $vm1",
                        "s0:c146,c1010 ($vm1)",
                        "s0:c146,c1010",
                        true,
                    )],
                    explanations: Vec::new(),
                },
                StepRecord {
                    step: 2,
                    title: "attach_disk vm1.img to vm2 as vdb".into(),
                    millis: 410,
                    evidence: vec![
                        Evidence::Action {
                            action: "attach_disk vm1.img to vm2 as vdb".into(),
                            outcome: Outcome::Libvirt(LibvirtError {
                                code: "VIR_ERR_INTERNAL_ERROR".into(),
                                number: 1,
                                domain: "VIR_FROM_QEMU".into(),
                                message: "unable to execute QEMU command 'blockdev-add': Could not open '/var/lib/libvirt/images/selinux-harness-r1/vm1.img': Permission denied".into(),
                            }),
                        },
                        Evidence::Timeline {
                            file: "vm1.img".into(),
                            unexplained_events: 0,
                            changes: vec![
                                LabelChange {
                                    at_us: 0,
                                    context: Some(ctx(vm1_img)),
                                    error: None,
                                },
                                LabelChange {
                                    at_us: 61_000,
                                    context: Some(ctx(vm2_img)),
                                    error: None,
                                },
                                LabelChange {
                                    at_us: 291_000,
                                    context: Some(ctx("system_u:object_r:virt_image_t:s0")),
                                    error: None,
                                },
                            ],
                        },
                    ],
                    checks: vec![
                        check(
                            "attach_disk fails with VIR_ERR_OPERATION_INVALID",
                            "VIR_ERR_OPERATION_INVALID: already in use",
                            "VIR_ERR_INTERNAL_ERROR: unable to execute QEMU command 'blockdev-add'",
                            false,
                        ),
                        check(
                            "vm1.img never at level $vm2",
                            "never s0:c161,c423 ($vm2)",
                            "s0:c161,c423 from +0.061 s to +0.291 s",
                            false,
                        ),
                        check(
                            "vm1.img context is $vm1.imagelabel",
                            "system_u:object_r:svirt_image_t:s0:c146,c1010 ($vm1.imagelabel)",
                            "system_u:object_r:virt_image_t:s0",
                            false,
                        ),
                    ],
                    explanations: Vec::new(),
                },
                StepRecord {
                    step: 3,
                    title: "reset vm1".into(),
                    millis: 8_120,
                    evidence: vec![
                        Evidence::Action {
                            action: "reset vm1".into(),
                            outcome: Outcome::Ok,
                        },
                        Evidence::Avcs {
                            records: vec![AvcRecord {
                                record_type: "AVC".into(),
                                denied: true,
                                perms: vec!["read".into()],
                                scontext: Some(ctx("system_u:system_r:svirt_t:s0:c146,c1010")),
                                tcontext: Some(ctx("system_u:object_r:virt_image_t:s0")),
                                tclass: Some("file".into()),
                                permissive: false,
                                comm: Some("qemu-system-x86".into()),
                                target: Some("name=\"vm1.img\"".into()),
                                raw: "type=AVC msg=audit(1764150000.512:812): avc:  denied  { read } for  pid=4121 comm=\"qemu-system-x86\" name=\"vm1.img\" dev=\"vda\" ino=131 scontext=system_u:system_r:svirt_t:s0:c146,c1010 tcontext=system_u:object_r:virt_image_t:s0 tclass=file permissive=0".into(),
                            }],
                            filtered: 0,
                        },
                    ],
                    checks: vec![check(
                        "no AVC with scontext svirt_t at $vm1",
                        "no denial",
                        "AVC denied { read } comm=qemu-system-x86 name=\"vm1.img\"",
                        false,
                    )],
                    explanations: Vec::new(),
                },
                StepRecord {
                    step: 4,
                    title: "destroy vm1, vm2".into(),
                    millis: 540,
                    evidence: vec![Evidence::Action {
                        action: "destroy vm1, vm2".into(),
                        outcome: Outcome::Ok,
                    }],
                    checks: vec![],
                    explanations: Vec::new(),
                },
            ],
        }
    }

    fn record() -> Record {
        Record {
            scenarios: vec![cross_attach_record()],
            ..Record::default()
        }
    }

    #[test]
    fn renders_a_lane_segment_per_label_change() {
        let html = render(&record());
        assert_eq!(html.matches("class=\"seg").count(), 3);
        for label in [
            "system_u:object_r:svirt_image_t:s0:c146,c1010",
            "system_u:object_r:svirt_image_t:s0:c161,c423",
            "system_u:object_r:virt_image_t:s0",
        ] {
            assert!(html.contains(label), "{label} missing");
        }
        // The borrowed label lasted 0.23 s, and the tooltip says so.
        assert!(html.contains("+0.061 s to +0.291 s (0.230 s)"));
        // One denial, marked over the step it was logged in.
        assert_eq!(html.matches("class=\"avc\"").count(), 1);
    }

    #[test]
    fn the_second_label_lasts_its_share_of_the_step() {
        let s = cross_attach_record();
        let axis = Axis::new(&s.steps);
        let (start, width) = axis.bands[1];
        let x0 = axis.at(1, 61_000, 410);
        let x1 = axis.at(1, 291_000, 410);
        assert!((x0 - (start + width * 61.0 / 410.0)).abs() < 1e-9);
        assert!(((x1 - x0) - width * 230.0 / 410.0).abs() < 1e-9);
        // A 0.4 s step next to an 8 s one still gets a visible share of the axis (the
        // minimum shares are normalised with the rest, so a little under MIN_STEP_SHARE).
        assert!(width >= 0.1, "width {width}");
    }

    #[test]
    fn target_text_is_escaped() {
        let mut s = cross_attach_record();
        s.notes
            .push("<script>alert('x')</script> & \"quoted\"".into());
        s.steps[0].title = "<img src=x onerror=alert(1)>".into();
        s.steps[1].evidence[0] = Evidence::Action {
            action: "attach_disk".into(),
            outcome: Outcome::Other {
                message: "Permission denied <&>".into(),
            },
        };
        let html = render(&Record {
            scenarios: vec![s],
            ..Record::default()
        });
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img src=x"));
        assert!(html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"));
        assert!(html.contains("Permission denied &lt;&amp;&gt;"));
        // Exactly the page's own script element, nothing from the record.
        assert_eq!(html.matches("<script").count(), 1);
    }

    #[test]
    fn page_loads_nothing() {
        let html = render(&record());
        for needle in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!html.contains(needle), "{needle} in page");
        }
    }

    #[test]
    fn failed_context_check_marks_the_differing_fields() {
        let h = highlight_observed(
            "system_u:object_r:svirt_image_t:s0:c146,c1010 ($vm1.imagelabel)",
            "system_u:object_r:virt_image_t:s0",
        );
        assert_eq!(
            h,
            "system_u:object_r:<mark>virt_image_t</mark>:<mark>s0</mark>"
        );
        assert_eq!(highlight_observed("no denial", "a <b>"), "a &lt;b&gt;");
    }

    #[test]
    fn an_empty_run_says_so() {
        assert!(render(&Record::default()).contains("No scenario ran."));
    }

    #[test]
    fn snapshot() {
        insta::assert_snapshot!(render(&record()));
    }
}
