//! What the harness does inside the target when the host asks: the agent's request handler.
//! The scenario source is validated again here, so what runs is exactly what the host checked.

use std::path::Path;

use crate::executor::{execute, HostPaths};
use crate::interrupt::Interrupt;
use crate::protocol::{Reply, Request};
use crate::scenario::{load_str, LoadedScenario};

/// Answer one request; `reply` sends one line back to the host.
pub fn handle(req: Request, interrupt: &Interrupt, reply: &mut dyn FnMut(Reply)) {
    match req {
        Request::Env => reply(Reply::Env(crate::environment::collect("vm"))),
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
                let info = crate::environment::collect("vm");
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
        Request::Shutdown => reply(Reply::Done),
        // The agent's reader handles these itself; one that gets here has nothing to stop.
        Request::Interrupt => reply(Reply::Done),
    }
}
