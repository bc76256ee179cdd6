//! The report a person reads in a terminal, printed as events arrive.

use std::collections::BTreeMap;
use std::io::Write;

use crate::context::Context;
use crate::evidence::{Evidence, Outcome};
use crate::host::environment::TargetInfo;
use crate::run::event::{Envelope, Event};
use crate::run::expect::avc_line;
use crate::run::trial_name;
use crate::run::verdict::{Check, Verdict};

/// The human report of a batch. With `--jobs 1` (the default) every line is printed as its
/// event arrives; when runs overlap, each run's lines are held back and printed as one block
/// when the run finishes, so blocks never interleave (a block is exactly what the run prints
/// alone).
pub struct Human<W: Write> {
    out: W,
    color: bool,
    /// Show passing checks and all evidence, not just failures.
    verbose: bool,
    /// Hold each run's lines until it finishes (runs overlap).
    blocks: bool,
    /// Per run: its trial name, and the lines held back.
    runs: BTreeMap<usize, RunText>,
}

#[derive(Default)]
struct RunText {
    name: String,
    held: Vec<u8>,
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl<W: Write> Human<W> {
    /// Lines as events arrive (a batch of width one).
    pub fn new(out: W, color: bool, verbose: bool) -> Self {
        Self {
            out,
            color,
            verbose,
            blocks: false,
            runs: BTreeMap::new(),
        }
    }

    /// For a batch run `jobs` at a time: one block per run when `jobs` > 1.
    pub fn for_jobs(mut self, jobs: usize) -> Self {
        self.blocks = jobs > 1;
        self
    }

    /// The writer, with whatever was printed.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn paint(&self, code: &str, s: &str) -> String {
        paint(self.color, code, s)
    }

    pub fn event(&mut self, e: &Envelope) {
        let mut run = self.runs.remove(&e.run).unwrap_or_default();
        let mut lines = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_event(&mut run.name, &e.event, &mut lines);
        let finished = e.event.verdict().is_some();
        // A reporter that cannot write to its terminal has nobody to tell; ignore the error.
        if !self.blocks {
            let _ = self.out.write_all(&lines).and_then(|()| self.out.flush());
        } else if finished {
            run.held.extend(lines);
            let _ = self
                .out
                .write_all(&run.held)
                .and_then(|()| self.out.flush());
        } else {
            run.held.extend(lines);
        }
        if !finished {
            self.runs.insert(e.run, run);
        }
    }

    fn write_event(
        &self,
        current: &mut String,
        e: &Event,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        match e {
            Event::ScenarioStarted {
                scenario,
                variant,
                target,
            } => {
                *current = trial_name(scenario, variant.as_deref());
                let head = self.paint(BOLD, current);
                writeln!(out, "{head}  on {}", describe_target(target))?;
            }
            Event::StepStarted { step, title } => {
                writeln!(out, "  step {step}: {title}")?;
            }
            Event::Evidence { evidence, .. } => {
                if self.verbose {
                    for line in describe_evidence(evidence) {
                        writeln!(out, "      · {line}")?;
                    }
                } else if let Evidence::Action {
                    action,
                    outcome: Outcome::Other { message },
                } = evidence
                {
                    writeln!(out, "      · {action}: {message}")?;
                }
            }
            Event::ExpectationChecked { check, .. } => self.check(check, out)?,
            Event::StepFinished { .. } => {}
            Event::Note { message } => writeln!(out, "  note: {message}")?,
            Event::CleanedUp(undone) => writeln!(out, "  note: {undone}")?,
            Event::HostStateVerified { differences } => {
                // A difference is the verdict's reason; the proof is worth a line of its own.
                if differences.is_empty() {
                    writeln!(out, "  note: {HOST_STATE_EQUAL}")?;
                }
            }
            // The whole log belongs in the JSON report and the repro bundle, not on the terminal.
            Event::GuestLog { .. } => {}
            Event::Explained { explanation, .. } => {
                writeln!(out, "      {}", explanation.summary())?;
            }
            Event::ScenarioFinished { verdict, millis } => {
                let line = self.verdict_line(current, verdict, *millis);
                writeln!(out, "{line}\n")?;
            }
            Event::TargetFailed {
                scenario,
                variant,
                reason,
            } => {
                let name = trial_name(scenario, variant.as_deref());
                let verdict = Verdict::Error {
                    reason: reason.clone(),
                };
                let line = self.verdict_line(&name, &verdict, 0);
                writeln!(out, "{line}\n")?;
            }
        }
        Ok(())
    }

    fn verdict_line(&self, name: &str, verdict: &Verdict, millis: u64) -> String {
        verdict_line(self.color, name, verdict, millis)
    }

    fn check(&self, c: &Check, out: &mut Vec<u8>) -> std::io::Result<()> {
        let (mark, show) = match (c.passed, &c.known_bug) {
            (true, Some(_)) => (self.paint(RED, "known bug gone"), true),
            (true, None) => (self.paint(GREEN, "ok"), self.verbose),
            (false, Some(_)) => (self.paint(YELLOW, "known bug"), true),
            (false, None) => (self.paint(RED, "FAILED"), true),
        };
        if !show {
            return Ok(());
        }
        writeln!(out, "    {mark} {}", c.expectation)?;
        if c.passed && c.known_bug.is_none() {
            writeln!(out, "        {}", c.expected)?;
            return Ok(());
        }
        if let Some(r) = &c.known_bug {
            writeln!(out, "        reference: {r}")?;
        }
        writeln!(out, "        expected: {}", c.expected)?;
        let mut lines = c.observed.lines();
        writeln!(out, "        observed: {}", lines.next().unwrap_or(""))?;
        for l in lines {
            writeln!(out, "                  {l}")?;
        }
        if let Some(marks) = differing_fields(&c.expected, &c.observed) {
            writeln!(out, "                  {}", self.paint(RED, &marks))?;
        }
        Ok(())
    }
}

impl<W: Write> super::Reporter for Human<W> {
    fn event(&mut self, e: &Envelope) {
        Human::event(self, e)
    }
}

/// What the human report says when the host state after cleanup equals the state before.
pub const HOST_STATE_EQUAL: &str = "host state after cleanup equals the state before the run";

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("{code}{s}{RESET}")
    } else {
        s.to_string()
    }
}

/// `   PASS name [1.2s]`, `   FAIL name [3.4s]: 2 expectation(s) failed` ...
pub fn verdict_line(color: bool, name: &str, verdict: &Verdict, millis: u64) -> String {
    let label = verdict.label().to_uppercase();
    let colored = match verdict {
        Verdict::Pass => paint(color, GREEN, &label),
        Verdict::KnownBug { .. } | Verdict::Skipped { .. } => paint(color, YELLOW, &label),
        _ => paint(color, RED, &label),
    };
    let detail = match verdict {
        Verdict::Pass => String::new(),
        Verdict::Fail { failed } => format!(": {failed} expectation(s) failed"),
        Verdict::KnownBug { references } => {
            format!(": known bug reproduced ({})", references.join(", "))
        }
        Verdict::KnownBugGone { references } => format!(
            ": a known bug no longer reproduces ({}); update the scenario's known_bug",
            references.join(", ")
        ),
        Verdict::Inconclusive { reason }
        | Verdict::Error { reason }
        | Verdict::Skipped { reason } => format!(": {reason}"),
    };
    format!(
        "{colored:>8} {name} [{:.1}s]{detail}",
        millis as f64 / 1000.0
    )
}

fn describe_target(t: &TargetInfo) -> String {
    let mut parts = vec![t.kind.clone()];
    for p in [&t.distro, &t.selinux_mode, &t.accelerator, &t.boot] {
        if !p.is_empty() {
            parts.push(p.clone());
        }
    }
    if !t.libvirt_version.is_empty() {
        parts.push(format!("libvirt {}", t.libvirt_version));
    }
    parts.join(", ")
}

/// Evidence as one or more short lines.
pub fn describe_evidence(e: &Evidence) -> Vec<String> {
    match e {
        Evidence::Action { action, outcome } => vec![format!(
            "{action}: {}",
            match outcome {
                Outcome::Ok => "ok".into(),
                Outcome::Libvirt(l) => format!("{} ({}): {}", l.code, l.domain, l.message),
                Outcome::Errno { errno } => errno.clone(),
                Outcome::DaemonFailed { message } => format!("daemon did not come up: {message}"),
                Outcome::Other { message } => message.clone(),
            }
        )],
        Evidence::FileContext { file, context, .. } => vec![format!(
            "{file}: {}",
            context
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or("no label".into())
        )],
        Evidence::ProcessLabel {
            domain,
            pid,
            context,
        } => vec![format!("{domain} (pid {pid}): {context}")],
        Evidence::DomainSeclabel {
            domain,
            label,
            imagelabel,
            process,
            image,
        } => {
            let show =
                |c: &Option<Context>| c.as_ref().map(|c| c.to_string()).unwrap_or("-".into());
            let mut line = format!(
                "{domain} live seclabel: label {} imagelabel {}",
                show(label),
                show(imagelabel)
            );
            if process.is_some() || image.is_some() {
                line.push_str(&format!(
                    "; on the host: process {} image {}",
                    show(process),
                    show(image)
                ));
            }
            vec![line]
        }
        Evidence::Avcs { records, filtered } => {
            let mut v = vec![format!(
                "{} AVC record(s), {filtered} filtered as noise",
                records.len()
            )];
            v.extend(records.iter().map(avc_line));
            v
        }
        Evidence::Timeline {
            file,
            changes,
            unexplained_events,
        } => {
            let mut line = format!(
                "{file} timeline: {}",
                changes
                    .iter()
                    .map(|c| format!(
                        "+{:.3}s {}",
                        c.at_us as f64 / 1e6,
                        c.context
                            .as_ref()
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| c.error.clone().unwrap_or("no label".into()))
                    ))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            );
            if *unexplained_events > 0 {
                line.push_str(&format!(
                    " ({unexplained_events} attribute event(s) after which the label read was unchanged: a faster relabel, or chmod/chown)"
                ));
            }
            vec![line]
        }
        Evidence::RememberedOwner { file, xattrs } => vec![format!(
            "{file} remembered owner: {}",
            xattrs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        )],
        Evidence::FileState {
            file,
            path,
            facts,
            why,
        } => vec![crate::evidence::file_state::describe(
            file,
            path.as_deref(),
            facts.as_ref(),
            why.as_deref(),
        )],
        Evidence::ProcessOwner { domain, pid, ids } => {
            vec![format!("{domain} (pid {pid}) runs as {}", ids.describe())]
        }
        Evidence::SwtpmProcess {
            domain,
            pid,
            context,
            ids,
        } => vec![crate::evidence::describe_swtpm(
            domain,
            *pid,
            context.as_ref(),
            ids.as_ref(),
        )],
        Evidence::HelperProcess {
            domain,
            helper,
            pid,
            context,
            ids,
        } => vec![crate::evidence::describe_helper(
            domain,
            helper,
            *pid,
            context.as_ref(),
            ids.as_ref(),
        )],
    }
}

/// When the expected text starts with a whole context and the observation is one, mark the
/// fields that differ under the observation (aligned with "observed: ").
pub fn differing_fields(expected: &str, observed: &str) -> Option<String> {
    let e: Context = expected.split_whitespace().next()?.parse().ok()?;
    let o: Context = observed.trim().parse().ok()?;
    let fields = |c: &Context| {
        vec![
            c.user.clone(),
            c.role.clone(),
            c.kind.clone(),
            c.range.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        ]
    };
    let (ef, of) = (fields(&e), fields(&o));
    if ef == of {
        return None;
    }
    let mut marks = String::new();
    for (i, (a, b)) in ef.iter().zip(&of).enumerate() {
        let ch = if a == b { ' ' } else { '^' };
        marks.push_str(&ch.to_string().repeat(b.len()));
        if i < 3 {
            marks.push(' ');
        }
    }
    Some(marks.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_differing_level() {
        let m = differing_fields(
            "system_u:object_r:svirt_image_t:s0:c146,c1010 ($vm1.imagelabel)",
            "system_u:object_r:svirt_image_t:s0:c161,c423",
        )
        .unwrap();
        assert_eq!(m, format!("{}^^^^^^^^^^^^", " ".repeat(32)));
    }

    fn run_events(name: &str, steps: usize) -> Vec<Event> {
        let mut v = vec![Event::ScenarioStarted {
            scenario: name.into(),
            variant: None,
            target: TargetInfo::default(),
        }];
        for step in 1..=steps {
            v.push(Event::StepStarted {
                step,
                title: format!("{name} step {step}"),
            });
            v.push(Event::Note {
                message: format!("{name} note {step}"),
            });
        }
        v.push(Event::HostStateVerified {
            differences: vec![],
        });
        v.push(Event::ScenarioFinished {
            verdict: Verdict::Pass,
            millis: 1200,
        });
        v
    }

    fn alone(events: &[Event]) -> String {
        let mut h = Human::new(Vec::new(), false, false);
        for e in events {
            h.event(&Envelope::now(0, e.clone()));
        }
        String::from_utf8(h.out).unwrap()
    }

    #[test]
    fn concurrent_runs_print_whole_blocks_in_the_order_they_finish() {
        let (a, b) = (run_events("a", 3), run_events("b", 1));
        let mut blocks = Human::new(Vec::new(), false, false).for_jobs(2);
        // a starts first, b overtakes it and finishes first.
        let mut ai = a.iter();
        for e in ai.by_ref().take(3) {
            blocks.event(&Envelope::now(0, e.clone()));
        }
        assert!(
            blocks.out.is_empty(),
            "a block was printed before its run finished"
        );
        for e in &b {
            blocks.event(&Envelope::now(1, e.clone()));
        }
        for e in ai {
            blocks.event(&Envelope::now(0, e.clone()));
        }
        let text = String::from_utf8(blocks.out).unwrap();
        assert_eq!(text, format!("{}{}", alone(&b), alone(&a)));
        assert!(
            text.contains("a step 3") && text.contains("PASS b") && text.contains(HOST_STATE_EQUAL),
            "{text}"
        );
    }

    #[test]
    fn a_broken_target_ends_the_run_with_an_error_line() {
        let a = run_events("a", 2);
        let failed = Event::TargetFailed {
            scenario: "a".into(),
            variant: Some("v".into()),
            reason: "the VM died".into(),
        };
        for jobs in [1, 2] {
            let mut h = Human::new(Vec::new(), false, false).for_jobs(jobs);
            for e in &a[..3] {
                h.event(&Envelope::now(0, e.clone()));
            }
            h.event(&Envelope::now(0, failed.clone()));
            let text = String::from_utf8(h.out).unwrap();
            assert!(text.starts_with("a  on "), "{text}");
            assert!(
                text.ends_with("   ERROR a[v] [0.0s]: the VM died\n\n"),
                "jobs {jobs}: {text}"
            );
        }
    }

    #[test]
    fn no_marks_when_not_contexts() {
        assert_eq!(differing_fields("type svirt_t", "denied"), None);
    }
}
