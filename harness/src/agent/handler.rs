//! What the harness does inside the target when the host asks: the agent's request handler.
//! The scenario source is validated again here, so what runs is exactly what the host checked.

use std::path::Path;

use crate::agent::protocol::{Reply, Request, RunSpec};
use crate::interrupt::Interrupt;
use crate::run::batch::{Batch, RunItem};
use crate::run::executor::HostPaths;
use crate::run::fault::Fault;
use crate::run::policy_batch::run_with_policies;
use crate::scenario::{load_str, Diagnostic, LoadedScenario};

/// Answer one request; `reply` sends one line back to the host.
pub fn handle(req: Request, interrupt: &Interrupt, reply: &mut dyn FnMut(Reply)) {
    match req {
        Request::Env => reply(Reply::Env(crate::host::environment::collect("vm"))),
        Request::Run { runs, jobs } => match load_all(runs) {
            Err(e) => reply(Reply::Failed {
                message: e.to_string(),
            }),
            Ok(loaded) => {
                let items: Vec<RunItem<'_>> = loaded
                    .iter()
                    .map(|(l, v, fault, _)| RunItem {
                        scenario: l,
                        variant: v.as_deref(),
                        fault: fault.clone(),
                    })
                    .collect();
                let mut batch = Batch::new(items, jobs);
                for (i, (.., policy)) in loaded.iter().enumerate() {
                    batch = batch.with_policy(i, policy.clone());
                }
                let info = crate::host::environment::collect("vm");
                run_with_policies(
                    &batch,
                    &info,
                    &HostPaths {
                        verify_host_state: true,
                        interrupt: interrupt.clone(),
                        ..HostPaths::default()
                    },
                    &mut |envelope| reply(Reply::Event(envelope)),
                );
                reply(Reply::Done);
            }
        },
        Request::Shutdown => reply(Reply::Done),
        // The agent's reader handles these itself; one that gets here has nothing to stop.
        Request::Interrupt => reply(Reply::Done),
    }
}

type Loaded = (
    LoadedScenario,
    Option<String>,
    Option<Fault>,
    crate::policy::PolicyUnderTest,
);

/// The diagnostics of the runs whose scenario does not load, each with its run's number; its
/// text is the `Failed` reply.
#[derive(Debug, thiserror::Error)]
#[error("{}", numbered(.0))]
struct Invalid(Vec<(usize, Diagnostic)>);

fn numbered(diags: &[(usize, Diagnostic)]) -> String {
    diags
        .iter()
        .map(|(i, d)| format!("run {i}: {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every run's scenario, validated again; or every diagnostic, each with its run's number.
fn load_all(runs: Vec<RunSpec>) -> Result<Vec<Loaded>, Invalid> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in runs.into_iter().enumerate() {
        match load_str(Path::new(&r.file), &r.source) {
            Ok(scenario) => loaded.push((
                LoadedScenario {
                    path: r.file.into(),
                    source: r.source,
                    scenario,
                },
                r.variant,
                r.fault,
                r.policy,
            )),
            Err(diags) => errors.extend(diags.into_iter().map(|d| (i, d))),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_travels_as_one_line_and_a_bad_run_is_named() {
        let good = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/seed/dynamic-relabel-no.yaml"),
        )
        .unwrap();
        let req = Request::Run {
            runs: vec![
                RunSpec {
                    file: "a.yaml".into(),
                    source: good.clone(),
                    variant: None,
                    fault: None,
                    policy: Default::default(),
                },
                RunSpec {
                    file: "b.yaml".into(),
                    source: "name: b\n".into(),
                    variant: Some("x".into()),
                    fault: Some(Fault::KillLibvirtd { step: 2 }),
                    policy: Default::default(),
                },
            ],
            jobs: 2,
        };
        let line = serde_json::to_string(&req).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
        let Request::Run { runs, .. } = req else {
            unreachable!()
        };
        let err = load_all(runs.clone()).err().unwrap().to_string();
        assert!(err.lines().all(|l| l.starts_with("run 1: ")), "{err}");
        assert_eq!(load_all(runs[..1].to_vec()).unwrap().len(), 1);
        let events = [
            crate::run::event::Event::Note {
                message: "m".into(),
            },
            crate::run::event::Event::CleanedUp(crate::host::cleanup::Undone {
                what: "remove directory /x".into(),
                outcome: crate::host::cleanup::UndoOutcome::Failed("EBUSY".into()),
            }),
            crate::run::event::Event::CleanedUp(crate::host::cleanup::Undone {
                what: "remove file /y".into(),
                outcome: crate::host::cleanup::UndoOutcome::Done,
            }),
            crate::run::event::Event::HostStateVerified {
                differences: vec!["domain d appeared".into()],
            },
        ];
        for event in events {
            let reply = Reply::Event(crate::run::event::Envelope::now(1, event));
            let json = serde_json::to_string(&reply).unwrap();
            assert!(
                json.contains(r#""run":1"#) && json.contains(r#""timestamp":"#),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), reply);
        }
    }
}
