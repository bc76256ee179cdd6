//! `selinux-harness mutants`: runs every scenario and its mutants (`scenario::mutate`) in one
//! batch on a target, and tells per scenario and per kind of check how many mutants the suite
//! killed (the verdict is no longer a success) and which survived, with what the run saw.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use selinux_harness::dispatch::dispatch;
use selinux_harness::report::Reporter;
use selinux_harness::run::batch::{Batch, RunItem};
use selinux_harness::run::event::{Envelope, Event};
use selinux_harness::run::trial_name;
use selinux_harness::run::verdict::{Check, Verdict};
use selinux_harness::scenario::mutate::{Mutant, MutatedKind};
use selinux_harness::scenario::{self, LoadedScenario};
use selinux_harness::target::Target;

use super::scenarios::load_all;
use super::target::TargetArgs;

#[derive(clap::Args)]
pub struct MutantsArgs {
    /// Scenario files or directories; default: ./scenarios
    paths: Vec<PathBuf>,
    /// Only list the mutants, run nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// Up to N runs at once on the one target (see `run --jobs`).
    #[arg(long, short = 'j', default_value = "4", value_name = "N")]
    jobs: std::num::NonZeroUsize,
}

/// The command: load, mutate, run the batch, report the fates.
pub fn mutants(args: MutantsArgs) -> Result<ExitCode> {
    let (loaded, errors) = load_all(&args.paths)?;
    if errors > 0 {
        bail!("{errors} error(s) in the scenarios; nothing was run (see `selinux-harness check`)");
    }
    let mut all = Vec::new();
    for l in &loaded {
        all.push(scenario::mutate::mutants(l).map_err(|ds| {
            anyhow::anyhow!(ds
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        })?);
    }
    let plan = plan(&loaded, &all);
    eprintln!(
        "{} mutant(s) of {} scenario(s): {} run(s) with the originals",
        all.iter().map(Vec::len).sum::<usize>(),
        loaded.len(),
        plan.runs.len()
    );
    if args.dry_run {
        for (si, m, _) in &plan.mutants {
            println!(
                "{} step {} {}: {}{}",
                loaded[*si].scenario.name.value,
                m.mutation.step + 1,
                m.mutation.id,
                m.mutation.describe,
                m.listed
                    .as_ref()
                    .map(|r| format!(" (listed: {r})"))
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (mut t, interrupt) = args.target.open(false)?;
    let started = std::time::Instant::now();
    let (verdicts, checks) = run_batch(t.as_mut(), &plan, args.jobs.get());
    drop(t);
    let fates = fates(&plan, &verdicts, &checks);
    let (text, total) = report(&loaded, &plan, &fates);
    print!("{text}");
    println!(
        "{} run(s) in {:.0} s with --jobs {}",
        plan.runs.len(),
        started.elapsed().as_secs_f64(),
        args.jobs
    );
    Ok(if interrupt.is_set() {
        ExitCode::from(130)
    } else if total.survived == 0 && total.not_judged == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What became of one mutant.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Killed(String),
    /// Survived; a listed survivor carries the scenario's reason.
    Survived {
        saw: String,
        listed: Option<String>,
    },
    /// Nothing to compare: the original did not succeed in that variant, or the mutant's run
    /// ended in `error` (the target broke, nothing was judged).
    NotJudged(String),
}

/// The runs of one batch: every original in every variant, then every mutant in its variants.
pub struct Plan<'a> {
    pub runs: Vec<(&'a LoadedScenario, Option<String>)>,
    /// For each mutant: (scenario index, mutant, its run indices).
    pub mutants: Vec<(usize, &'a Mutant, Vec<usize>)>,
    /// Index of the original run of (scenario, variant).
    originals: BTreeMap<(usize, Option<String>), usize>,
}

pub fn plan<'a>(scenarios: &'a [LoadedScenario], mutants: &'a [Vec<Mutant>]) -> Plan<'a> {
    let mut runs = Vec::new();
    let mut originals = BTreeMap::new();
    for (si, l) in scenarios.iter().enumerate() {
        for v in l.variants() {
            originals.insert((si, v.clone()), runs.len());
            runs.push((l, v));
        }
    }
    let mut planned = Vec::new();
    for (si, ms) in mutants.iter().enumerate() {
        for m in ms {
            let mut idx = Vec::new();
            for v in &m.variants {
                idx.push(runs.len());
                runs.push((&m.scenario, v.clone()));
            }
            planned.push((si, m, idx));
        }
    }
    Plan {
        runs,
        mutants: planned,
        originals,
    }
}

/// Judge each mutant from the batch's verdicts and the checks its mutated step made.
pub fn fates(plan: &Plan<'_>, verdicts: &[Verdict], checks: &[Vec<(usize, Check)>]) -> Vec<Fate> {
    plan.mutants
        .iter()
        .map(|(si, m, idx)| {
            let mut saw = Vec::new();
            for &r in idx {
                let variant = &plan.runs[r].1;
                let original = plan.originals.get(&(*si, variant.clone()));
                let name = trial_name("", variant.as_deref());
                match original.map(|&o| (o, &verdicts[o])) {
                    Some((_, o)) if o.is_success() => {}
                    Some((o, v)) => {
                        let mut failed: Vec<String> = checks[o]
                            .iter()
                            .filter(|(_, c)| !c.passed && c.known_bug.is_none())
                            .map(|(s, c)| format!("step {s} {}: observed {}", c.key, c.observed))
                            .collect();
                        // Without the reason, an inconclusive original leaves the reader
                        // nothing to act on (the CI log showed only "ended inconclusive").
                        if let Verdict::Inconclusive { reason } | Verdict::Error { reason } = v {
                            failed.insert(0, reason.clone());
                        }
                        return Fate::NotJudged(format!(
                            "the scenario's own run{name} in this batch ended {}{}{}",
                            v.label(),
                            if failed.is_empty() { "" } else { ": " },
                            failed.join("; ")
                        ));
                    }
                    None => return Fate::NotJudged("no original run".into()),
                }
                let v = &verdicts[r];
                if let Verdict::Error { reason } = v {
                    return Fate::NotJudged(format!("the mutant's run ended in error: {reason}"));
                }
                // Events number steps from 1.
                let step = m.mutation.step + 1;
                if !v.is_success() {
                    // Killed by its own step, not by a failure somewhere else in the run.
                    let failed: Vec<String> = checks[r]
                        .iter()
                        .filter(|(s, c)| *s == step && !c.passed)
                        .map(|(_, c)| c.key.to_string())
                        .collect();
                    if failed.is_empty() && matches!(v, Verdict::Fail { .. }) {
                        return Fate::NotJudged(format!(
                            "the mutant's run failed, but not at the mutated step {step}"
                        ));
                    }
                    return Fate::Killed(format!("{} ({})", v.label(), failed.join(", ")));
                }
                let key = m.mutation.id.split('/').next().unwrap_or_default();
                let seen: Vec<String> = checks[r]
                    .iter()
                    .filter(|(s, c)| *s == step && c.key.to_string() == key)
                    .map(|(_, c)| {
                        format!(
                            "{} {} (expected {}, observed {}{})",
                            c.key,
                            if c.passed { "held" } else { "failed" },
                            c.expected,
                            c.observed,
                            c.known_bug
                                .as_ref()
                                .map(|b| format!(", excused by {b}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                saw.push(format!(
                    "{}{name}: {}{}",
                    v.label(),
                    if seen.is_empty() { "" } else { "; " },
                    seen.join("; ")
                ));
            }
            Fate::Survived {
                saw: saw.join(" | "),
                listed: m.listed.clone(),
            }
        })
        .collect()
}

/// Runs the batch on `t` (`dispatch`), up to `jobs` at once; progress goes to stderr.
pub fn run_batch(
    t: &mut dyn Target,
    plan: &Plan<'_>,
    jobs: usize,
) -> (Vec<Verdict>, Vec<Vec<(usize, Check)>>) {
    let batch = Batch::new(
        plan.runs
            .iter()
            .map(|(l, v)| RunItem::new(l, v.as_deref()))
            .collect(),
        jobs,
    );
    // A scenario's policy under test goes with it and its mutants; a module file that is not
    // there leaves them without (their runs note it), the scenario's own `run` refuses it.
    let batch = match batch.clone().with_scenario_policies() {
        Ok(b) => b,
        Err(_) => batch,
    };
    let total = batch.runs.len();
    let mut checks: Vec<Vec<(usize, Check)>> = vec![Vec::new(); total];
    let mut done = 0;
    let mut collect = |e: &Envelope| match &e.event {
        Event::ExpectationChecked { step, check } => {
            if let Some(c) = checks.get_mut(e.run) {
                c.push((*step, check.clone()));
            }
        }
        other => {
            if let Some(v) = other.verdict() {
                done += 1;
                eprintln!(
                    "[{done}/{total}] {} {}",
                    batch.runs[e.run].name(),
                    v.label()
                );
            }
        }
    };
    let verdicts = dispatch(t, &batch, &mut [&mut collect as &mut dyn Reporter])
        .into_iter()
        .map(|v| {
            v.unwrap_or_else(|| Verdict::Error {
                reason: "the run never started (interrupted)".into(),
            })
        })
        .collect();
    (verdicts, checks)
}

/// Counts of one scenario or one kind of check.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub generated: usize,
    pub killed: usize,
    pub listed: usize,
    pub survived: usize,
    pub not_judged: usize,
}

impl Tally {
    fn add(&mut self, f: &Fate) {
        self.generated += 1;
        match f {
            Fate::Killed(_) => self.killed += 1,
            Fate::Survived {
                listed: Some(_), ..
            } => self.listed += 1,
            Fate::Survived { listed: None, .. } => self.survived += 1,
            Fate::NotJudged(_) => self.not_judged += 1,
        }
    }

    /// Killed among the mutants not listed as survivors (and judged), in percent.
    pub fn rate(&self) -> f64 {
        let n = self.killed + self.survived;
        if n == 0 {
            100.0
        } else {
            100.0 * self.killed as f64 / n as f64
        }
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<32} {:>4} generated {:>4} killed {:>3} listed {:>3} survived {:>3} not judged  {:>5.1}% killed",
            self.generated, self.killed, self.listed, self.survived, self.not_judged, self.rate()
        )
    }
}

/// The report: per scenario, per kind of check, every survivor and unjudged mutant with why,
/// and the total. Returns the text and the total.
pub fn report(scenarios: &[LoadedScenario], plan: &Plan<'_>, fates: &[Fate]) -> (String, Tally) {
    let mut per_scenario: BTreeMap<String, Tally> = BTreeMap::new();
    let mut per_kind: BTreeMap<MutatedKind, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut details = Vec::new();
    for ((si, m, _), f) in plan.mutants.iter().zip(fates) {
        let name = scenarios[*si].scenario.name.value.to_string();
        per_scenario.entry(name.clone()).or_default().add(f);
        per_kind.entry(m.mutation.kind).or_default().add(f);
        total.add(f);
        let what = format!(
            "{name} step {} {}: {}",
            m.mutation.step + 1,
            m.mutation.id,
            m.mutation.describe
        );
        match f {
            Fate::Killed(_) => {}
            Fate::Survived { saw, listed: None } => {
                details.push(format!("SURVIVED   {what}\n           saw: {saw}"))
            }
            Fate::Survived {
                saw,
                listed: Some(r),
            } => details.push(format!(
                "listed     {what}\n           reason: {r}\n           saw: {saw}"
            )),
            Fate::NotJudged(why) => details.push(format!("NOT JUDGED {what}\n           {why}")),
        }
    }
    let mut out = String::from("per scenario:\n");
    for (n, t) in &per_scenario {
        out += &format!("  {}\n", t.line(n));
    }
    out += "per kind of check:\n";
    for (k, t) in &per_kind {
        out += &format!("  {}\n", t.line(k.label()));
    }
    if !details.is_empty() {
        out += "survivors and unjudged mutants:\n";
        for d in details {
            out += &format!("  {d}\n");
        }
    }
    out += &format!("{}\n", total.line("total"));
    (out, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use selinux_harness::scenario::{load_file, mutate};

    fn seed(name: &str) -> LoadedScenario {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/seed")
            .join(name);
        load_file(&p).expect("a seed scenario loads")
    }

    #[test]
    fn a_mutant_is_killed_only_by_a_verdict_that_is_not_a_success_where_the_original_succeeded() {
        let s = vec![seed("mcs-probe.yaml")];
        let ms = vec![mutate::mutants(&s[0]).expect("mutants load")];
        let p = plan(&s, &ms);
        assert_eq!(p.runs.len(), 1 + ms[0].len());
        let n = p.runs.len();
        let mut checks = vec![Vec::new(); n];
        let failing = Check {
            key: selinux_harness::scenario::CheckKey::Access,
            expectation: "access by probe".into(),
            expected: "allowed".into(),
            observed: "denied".into(),
            passed: false,
            evidence_missing: false,
            known_bug: None,
        };
        checks[1].push((1, failing.clone()));
        let mut verdicts = vec![Verdict::Pass; n];
        verdicts[1] = Verdict::Fail { failed: 1 };
        verdicts[2] = Verdict::Error {
            reason: "vm died".into(),
        };
        let f = fates(&p, &verdicts, &checks);
        assert_eq!(f[0], Fate::Killed("fail (access)".into()));
        assert!(matches!(f[1], Fate::NotJudged(_)), "{:?}", f[1]);
        assert!(
            matches!(f[2], Fate::Survived { listed: None, .. }),
            "{:?}",
            f[2]
        );
        let (text, total) = report(&s, &p, &f);
        assert_eq!((total.killed, total.not_judged), (1, 1));
        assert!(text.contains("SURVIVED"), "{text}");

        // a failure at another step than the mutated one kills nothing
        checks[1][0].0 = 2;
        let f = fates(&p, &verdicts, &checks);
        assert!(matches!(f[0], Fate::NotJudged(_)), "{:?}", f[0]);

        // the original failing: nothing of its mutants is judged
        verdicts[0] = Verdict::Fail { failed: 1 };
        let f = fates(&p, &verdicts, &checks);
        assert!(f.iter().all(|f| matches!(f, Fate::NotJudged(_))));
    }
}
