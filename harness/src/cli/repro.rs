//! `repro`: one scenario, one Markdown bundle for a bug tracker, and an exit status that answers
//! "does the bug reproduce?".

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use selinux_harness::dispatch::dispatch;
use selinux_harness::report::human::Human;
use selinux_harness::report::{Record, Reporter};
use selinux_harness::run::batch::Batch;
use selinux_harness::run::trial_name;
use selinux_harness::run::verdict::Verdict;

use super::explain::by_hand;
use super::scenarios::load_one;
use super::target::TargetArgs;

#[derive(clap::Args)]
pub struct ReproArgs {
    scenario: PathBuf,
    /// Where to write the bundle (default: SCENARIO-NAME.repro.md).
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[arg(long)]
    variant: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
}

pub fn repro(args: ReproArgs) -> Result<ExitCode> {
    let ReproArgs {
        scenario: path,
        output,
        variant,
        target,
    } = args;
    let loaded = load_one(&path)?;
    let variant = variant.or_else(|| loaded.variants().into_iter().next().flatten());
    // Planned before the target starts: an unknown variant is bad input, not a failed run.
    let plan = selinux_harness::run::plan::Plan::new(
        &loaded.scenario,
        variant.as_deref(),
        "RUN",
        Path::new(selinux_harness::host::layout::IMAGES_ROOT),
    )?;
    let by_hand = by_hand(&loaded, &plan);
    let (mut t, interrupt) = target.open(false)?;
    let mut human = Human::new(std::io::stderr(), std::io::stderr().is_terminal(), false);
    let batch = Batch::one(&loaded, variant.as_deref())
        .with_scenario_policies()
        .map_err(|d| anyhow::anyhow!("{}", d[0]))?;
    let mut record = Record::for_batch(&batch);
    let verdict = dispatch(
        t.as_mut(),
        &batch,
        &mut [&mut human as &mut dyn Reporter, &mut record],
    )
    .pop()
    .flatten();
    drop(t);
    let (Some(verdict), Some(scenario)) = (verdict, record.scenarios.first()) else {
        bail!("interrupted before the scenario started; nothing was written");
    };
    let out = output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}.repro.md",
            trial_name(loaded.scenario.name.value.as_str(), variant.as_deref())
        ))
    });
    let bundle = selinux_harness::report::markdown::repro(scenario, &loaded.source, &by_hand);
    std::fs::write(&out, bundle).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("{}: {}", verdict.label(), out.display());
    Ok(if interrupt.is_set() {
        ExitCode::from(130)
    } else {
        ExitCode::from(repro_status(&verdict))
    })
}

/// `repro` answers "does the bug reproduce?", not "is CI green?": a known bug that reproduces
/// is a yes (1), a stale known-bug mark a no (0), and no verdict at all is neither (2).
fn repro_status(verdict: &Verdict) -> u8 {
    match verdict {
        Verdict::Pass | Verdict::KnownBugGone { .. } => 0,
        Verdict::Fail { .. } | Verdict::KnownBug { .. } => 1,
        Verdict::Inconclusive { .. } | Verdict::Error { .. } | Verdict::Skipped { .. } => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `repro`'s documented statuses: 1 exactly when the bug reproduces, known or not.
    #[test]
    fn repro_status_answers_whether_the_bug_reproduces() {
        let refs = vec!["libvir-list 2012-03".to_string()];
        let reason = "x".to_string();
        let cases = [
            (Verdict::Pass, 0),
            (
                Verdict::KnownBugGone {
                    references: refs.clone(),
                },
                0,
            ),
            (Verdict::Fail { failed: 1 }, 1),
            (Verdict::KnownBug { references: refs }, 1),
            (
                Verdict::Inconclusive {
                    reason: reason.clone(),
                },
                2,
            ),
            (
                Verdict::Error {
                    reason: reason.clone(),
                },
                2,
            ),
            (Verdict::Skipped { reason }, 2),
        ];
        for (v, want) in cases {
            assert_eq!(repro_status(&v), want, "{v:?}");
        }
    }
}
