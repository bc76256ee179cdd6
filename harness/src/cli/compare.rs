//! `selinux-harness compare`: the same runs under the shipped policy and under the policy under
//! test, one after the other on one target, and what changed (`report::compare`).

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use selinux_harness::report::compare::{compare as diff, Comparison};

use super::run::{batch_of, policies_for, progress, run_batch, select, Format, RunArgs};
use super::scenarios::load_all;

pub fn compare(args: RunArgs) -> Result<ExitCode> {
    let (loaded, errors) = load_all(&args.paths)?;
    if errors > 0 {
        bail!("{errors} error(s) in the scenarios; nothing was run (see `selinux-harness check`)");
    }
    if matches!(args.format, Format::Junit | Format::Events) {
        bail!("compare writes its report as human text or JSON (--format human|json)");
    }
    let selected = select(&args, &loaded)?;
    let policies = policies_for(&args, &selected)?;
    if policies.iter().all(|p| p.is_empty()) {
        bail!("nothing to compare: give a policy under test (--policy-module FILE, --permissive TYPE, --boolean NAME=VALUE) or scenarios with `host: {{modules: [...]}}`");
    }
    let mut described: Vec<String> = policies
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.describe())
        .collect();
    described.dedup();
    let candidate_policy = described.join(" | ");
    let baseline = batch_of(&selected, args.jobs.get(), Vec::new());
    let candidate = batch_of(&selected, args.jobs.get(), policies);
    let (mut t, interrupt) = args.target.open(args.cold)?;
    // Progress of both passes goes to stderr: stdout carries the comparison.
    eprintln!("compare: pass 1 of 2, the shipped policy");
    let (_, before) = run_batch(t.as_mut(), &baseline, progress(false, &args), None);
    if interrupt.is_set() {
        eprintln!("interrupted: the policy under test was not run");
        return Ok(ExitCode::from(130));
    }
    eprintln!("compare: pass 2 of 2, {candidate_policy}");
    let (_, after) = run_batch(t.as_mut(), &candidate, progress(false, &args), None);
    drop(t);
    let result = diff(&before, &after, &candidate_policy);
    write(&args, &result)?;
    Ok(if interrupt.is_set() {
        ExitCode::from(130)
    } else if result.verdicts_changed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write(args: &RunArgs, c: &Comparison) -> Result<()> {
    let put = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    if let Some(p) = &args.json {
        put(p, c.to_json())?;
    }
    let text = match args.format {
        Format::Json => c.to_json(),
        Format::Human | Format::Junit | Format::Events => c.human(),
    };
    match &args.output {
        Some(p) => put(p, text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
