//! The report a person reads in a terminal, printed as events arrive.

use std::io::Write;

use crate::context::Context;
use crate::evidence::{Evidence, Outcome};
use crate::host::environment::TargetInfo;
use crate::run::event::Event;
use crate::run::expect::avc_line;
use crate::run::trial_name;
use crate::run::verdict::{Check, Verdict};

pub struct Human<W: Write> {
    out: W,
    color: bool,
    /// Show passing checks and all evidence, not just failures.
    verbose: bool,
    current: String,
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl<W: Write> Human<W> {
    pub fn new(out: W, color: bool, verbose: bool) -> Self {
        Self {
            out,
            color,
            verbose,
            current: String::new(),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("{code}{s}{RESET}")
        } else {
            s.to_string()
        }
    }

    pub fn event(&mut self, e: &Event) {
        // A reporter that cannot write to its terminal has nobody to tell; ignore the error.
        let _ = self.write_event(e);
    }

    fn write_event(&mut self, e: &Event) -> std::io::Result<()> {
        match e {
            Event::ScenarioStarted {
                scenario,
                variant,
                target,
            } => {
                self.current = trial_name(scenario, variant.as_deref());
                let head = self.paint(BOLD, &self.current);
                writeln!(self.out, "{head}  on {}", describe_target(target))?;
            }
            Event::StepStarted { step, title } => {
                writeln!(self.out, "  step {step}: {title}")?;
            }
            Event::Evidence { evidence, .. } => {
                if self.verbose {
                    for line in describe_evidence(evidence) {
                        writeln!(self.out, "      · {line}")?;
                    }
                } else if let Evidence::Action {
                    action,
                    outcome: Outcome::Other { message },
                } = evidence
                {
                    writeln!(self.out, "      · {action}: {message}")?;
                }
            }
            Event::ExpectationChecked { check, .. } => self.check(check)?,
            Event::StepFinished { .. } => {}
            Event::Note { message } => writeln!(self.out, "  note: {message}")?,
            // The whole log belongs in the JSON report and the repro bundle; say where it is.
            Event::GuestLog { domain, path, text } if self.verbose => writeln!(
                self.out,
                "  guest log of {domain}: {path} ({} lines)",
                text.lines().count()
            )?,
            Event::GuestLog { .. } => {}
            Event::ScenarioFinished { verdict, millis } => {
                let line = self.verdict_line(&self.current.clone(), verdict, *millis);
                writeln!(self.out, "{line}\n")?;
            }
        }
        self.out.flush()
    }

    pub fn verdict_line(&self, name: &str, verdict: &Verdict, millis: u64) -> String {
        let label = verdict.label().to_uppercase();
        let colored = match verdict {
            Verdict::Pass => self.paint(GREEN, &label),
            Verdict::KnownBug { .. } | Verdict::Skipped { .. } => self.paint(YELLOW, &label),
            _ => self.paint(RED, &label),
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

    fn check(&mut self, c: &Check) -> std::io::Result<()> {
        let (mark, show) = match (c.passed, &c.known_bug) {
            (true, Some(_)) => (self.paint(RED, "known bug gone"), true),
            (true, None) => (self.paint(GREEN, "ok"), self.verbose),
            (false, Some(_)) => (self.paint(YELLOW, "known bug"), true),
            (false, None) => (self.paint(RED, "FAILED"), true),
        };
        if !show {
            return Ok(());
        }
        writeln!(self.out, "    {mark} {}", c.expectation)?;
        if c.passed && c.known_bug.is_none() {
            writeln!(self.out, "        {}", c.expected)?;
            return Ok(());
        }
        if let Some(r) = &c.known_bug {
            writeln!(self.out, "        reference: {r}")?;
        }
        writeln!(self.out, "        expected: {}", c.expected)?;
        let mut lines = c.observed.lines();
        writeln!(self.out, "        observed: {}", lines.next().unwrap_or(""))?;
        for l in lines {
            writeln!(self.out, "                  {l}")?;
        }
        if let Some(marks) = differing_fields(&c.expected, &c.observed) {
            writeln!(self.out, "                  {}", self.paint(RED, &marks))?;
        }
        Ok(())
    }
}

/// The human report for runs that execute at the same time: each run's lines are held back
/// and printed as one block when the run finishes, so blocks never interleave (the block is
/// exactly what [`Human`] prints for the run alone).
pub struct Blocks<W: Write> {
    out: W,
    color: bool,
    verbose: bool,
    pending: std::collections::BTreeMap<usize, Human<Vec<u8>>>,
}

impl<W: Write> Blocks<W> {
    pub fn new(out: W, color: bool, verbose: bool) -> Self {
        Self {
            out,
            color,
            verbose,
            pending: Default::default(),
        }
    }

    pub fn event(&mut self, run: usize, e: &Event) {
        let (color, verbose) = (self.color, self.verbose);
        let h = self
            .pending
            .entry(run)
            .or_insert_with(|| Human::new(Vec::new(), color, verbose));
        h.event(e);
        if matches!(e, Event::ScenarioFinished { .. }) {
            self.flush_run(run);
        }
    }

    /// Print what a run has so far (a run that ended without its last event: the target broke).
    pub fn flush_run(&mut self, run: usize) {
        if let Some(h) = self.pending.remove(&run) {
            // Nobody to tell if the terminal is gone, as in `Human::event`.
            let _ = self.out.write_all(&h.out).and_then(|()| self.out.flush());
        }
    }

    /// The writer, with whatever blocks were printed.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// A verdict line in this report's colours (for a run the target could not finish).
    pub fn verdict_line(&self, name: &str, verdict: &Verdict, millis: u64) -> String {
        Human::new(Vec::new(), self.color, self.verbose).verdict_line(name, verdict, millis)
    }
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
        } => vec![format!(
            "{domain} live seclabel: label {} imagelabel {}",
            label.as_ref().map(|c| c.to_string()).unwrap_or("-".into()),
            imagelabel
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or("-".into())
        )],
        Evidence::Avcs { records, filtered } => {
            let mut v = vec![format!(
                "{} AVC record(s), {filtered} filtered as noise",
                records.len()
            )];
            v.extend(records.iter().map(avc_line));
            v
        }
        Evidence::Timeline { file, changes } => vec![format!(
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
        )],
        Evidence::RememberedOwner { file, xattrs } => vec![format!(
            "{file} remembered owner: {}",
            xattrs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
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
        v.push(Event::ScenarioFinished {
            verdict: Verdict::Pass,
            millis: 1200,
        });
        v
    }

    #[test]
    fn concurrent_runs_print_whole_blocks_in_the_order_they_finish() {
        let (a, b) = (run_events("a", 3), run_events("b", 1));
        let alone = |events: &[Event]| {
            let mut h = Human::new(Vec::new(), false, false);
            for e in events {
                h.event(e);
            }
            String::from_utf8(h.out).unwrap()
        };
        let mut blocks = Blocks::new(Vec::new(), false, false);
        // a starts first, b overtakes it and finishes first.
        let mut ai = a.iter();
        for e in ai.by_ref().take(3) {
            blocks.event(0, e);
        }
        for e in &b {
            blocks.event(1, e);
        }
        for e in ai {
            blocks.event(0, e);
        }
        let text = String::from_utf8(blocks.out).unwrap();
        assert_eq!(text, format!("{}{}", alone(&b), alone(&a)));
        assert!(
            text.contains("a step 3") && text.contains("PASS b"),
            "{text}"
        );
    }

    #[test]
    fn no_marks_when_not_contexts() {
        assert_eq!(differing_fields("type svirt_t", "denied"), None);
    }
}
