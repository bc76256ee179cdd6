//! What the harness does inside the target when the host asks: the agent's request handler.
//! The scenario source is validated again here, so what runs is exactly what the host checked.

use std::path::Path;

use crate::agent::protocol::{Reply, Request, RunSpec};
use crate::interrupt::Interrupt;
use crate::run::batch::run_many;
use crate::run::executor::{execute, HostPaths};
use crate::run::parallel::RunItem;
use crate::scenario::{load_str, LoadedScenario};

/// Answer one request; `reply` sends one line back to the host.
pub fn handle(req: Request, interrupt: &Interrupt, reply: &mut dyn FnMut(Reply)) {
    match req {
        Request::Env => reply(Reply::Env(crate::host::environment::collect("vm"))),
        Request::Run {
            file,
            source,
            variant,
            fault,
        } => match load_str(Path::new(&file), &source) {
            Err(diags) => reply(Reply::Failed {
                message: diags
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            }),
            Ok(scenario) => {
                let loaded = LoadedScenario {
                    path: file.into(),
                    source,
                    scenario,
                };
                let info = crate::host::environment::collect("vm");
                execute(
                    &loaded,
                    variant.as_deref(),
                    &info,
                    &HostPaths {
                        verify_host_state: true,
                        interrupt: interrupt.clone(),
                        fault,
                        ..HostPaths::default()
                    },
                    &mut |e| reply(Reply::Event(e)),
                );
                reply(Reply::Done);
            }
        },
        Request::RunMany { runs, jobs } => match load_all(runs) {
            Err(message) => reply(Reply::Failed { message }),
            Ok(loaded) => {
                let items: Vec<RunItem<'_>> = loaded
                    .iter()
                    .map(|(l, v)| RunItem {
                        scenario: l,
                        variant: v.as_deref(),
                    })
                    .collect();
                let info = crate::host::environment::collect("vm");
                run_many(
                    &items,
                    jobs,
                    &info,
                    &HostPaths {
                        verify_host_state: true,
                        interrupt: interrupt.clone(),
                        ..HostPaths::default()
                    },
                    &mut |run, event| reply(Reply::RunEvent { run, event }),
                );
                reply(Reply::Done);
            }
        },
        Request::Shutdown => reply(Reply::Done),
        // The agent's reader handles these itself; one that gets here has nothing to stop.
        Request::Interrupt => reply(Reply::Done),
    }
}

/// Every run's scenario, validated again; or every diagnostic, each with its run's number.
fn load_all(runs: Vec<RunSpec>) -> Result<Vec<(LoadedScenario, Option<String>)>, String> {
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
            )),
            Err(diags) => errors.extend(diags.iter().map(|d| format!("run {i}: {d}"))),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors.join("\n"))
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
        let req = Request::RunMany {
            runs: vec![
                RunSpec {
                    file: "a.yaml".into(),
                    source: good.clone(),
                    variant: None,
                },
                RunSpec {
                    file: "b.yaml".into(),
                    source: "name: b\n".into(),
                    variant: Some("x".into()),
                },
            ],
            jobs: 2,
        };
        let line = serde_json::to_string(&req).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
        let Request::RunMany { runs, .. } = req else {
            unreachable!()
        };
        let err = load_all(runs.clone()).err().unwrap();
        assert!(err.lines().all(|l| l.starts_with("run 1: ")), "{err}");
        assert_eq!(load_all(runs[..1].to_vec()).unwrap().len(), 1);
        let reply = Reply::RunEvent {
            run: 1,
            event: crate::run::event::Event::Note {
                message: "m".into(),
            },
        };
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), reply);
    }
}
