//! Requests to the running agent: one JSON line out, JSON reply lines back until the final
//! one, within a deadline; a user's interrupt is passed on to a request that can stop cleanly.

use std::io;
use std::time::{Duration, Instant};

use super::error::{io_err, VmError};
use super::Vm;
use crate::agent::protocol::{Reply, Request};
use crate::interrupt::Interrupt;

impl Vm {
    /// Sends one request and passes every reply to `on_reply` until the final one
    /// (`Done`, `Failed` or `Env`), within the default request timeout.
    pub fn request(
        &mut self,
        request: &Request,
        on_reply: impl FnMut(Reply),
    ) -> Result<(), VmError> {
        self.request_within(request, self.request_timeout, on_reply)
    }

    /// [`Vm::request`] with its own deadline for the whole answer.
    pub fn request_within(
        &mut self,
        request: &Request,
        timeout: Duration,
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), VmError> {
        // The guest cannot know how the host started it.
        let (accel, start) = (self.info.accel.name(), self.info.start.name());
        let mut fill_in = |mut reply: Reply| {
            if let Reply::Env(info) = &mut reply {
                if info.accelerator.is_empty() {
                    info.accelerator = accel.into();
                }
                if info.boot.is_empty() {
                    info.boot = start.into();
                }
            }
            on_reply(reply)
        };
        // A flag nobody raises: the user's Ctrl-C stays with the guest checks and ends the
        // request at once (`VmError::Interrupted`) instead of being passed on.
        self.forwarding(
            request,
            Wait::Total(timeout),
            Duration::ZERO,
            &Interrupt::new(),
            &mut fill_in,
        )
    }

    /// Like [`Vm::request_within`], for a request the guest can stop cleanly (scenario runs):
    /// when the user interrupts, the interrupt is passed on to the agent instead of killing the
    /// guest, and the replies are read on for at most `grace` - the scenarios stop at their next
    /// check, clean up, prove the guest's state is back to what it was, and send their verdicts.
    /// A second Ctrl-C still ends the whole process at once (see `Interrupt::on_signals`).
    pub fn request_interruptible(
        &mut self,
        request: &Request,
        wait: Wait,
        grace: Duration,
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), VmError> {
        // While this runs, the guest checks see only QEMU's death, not the user's interrupt.
        let user = std::mem::replace(&mut self.guest.interrupt, Interrupt::new());
        let result = self.forwarding(request, wait, grace, &user, &mut on_reply);
        self.guest.interrupt = user;
        result
    }

    fn forwarding(
        &mut self,
        request: &Request,
        wait: Wait,
        grace: Duration,
        user: &Interrupt,
        on_reply: &mut dyn FnMut(Reply),
    ) -> Result<(), VmError> {
        const PHASE: &str = "waiting for the agent's reply";
        let (limit, idle) = match wait {
            Wait::Total(d) => (d, false),
            Wait::Idle(d) => (d, true),
        };
        self.agent
            .send(request_line(request)?.as_bytes(), &mut self.guest, limit)?;
        let mut deadline = Instant::now() + limit;
        let mut forwarded = false;
        loop {
            if user.is_set() && !forwarded {
                forwarded = true;
                self.agent.send(
                    request_line(&Request::Interrupt)?.as_bytes(),
                    &mut self.guest,
                    grace,
                )?;
                deadline = deadline.min(Instant::now() + grace);
            }
            // Short reads, so an interrupt is passed on within a fraction of a second.
            let wait_until = deadline.min(Instant::now() + Duration::from_millis(200));
            let Some(line) = self.agent.read_line(wait_until, &mut self.guest, PHASE)? else {
                if Instant::now() < deadline {
                    continue;
                }
                let (waited, fix) = match (forwarded, idle) {
                    (true, _) => (
                        grace,
                        "the scenario did not stop after the interrupt: see the console",
                    ),
                    (false, true) => (
                        limit,
                        "the agent said nothing for this long; see the console for a hung guest",
                    ),
                    (false, false) => (
                        limit,
                        "raise the request timeout, or see the console for a hung guest",
                    ),
                };
                return Err(self.guest.timeout(PHASE, waited, fix));
            };
            if idle && !forwarded {
                deadline = Instant::now() + limit;
            }
            let reply: Reply = serde_json::from_str(&line).map_err(|_| VmError::Protocol {
                phase: PHASE,
                line: line.clone(),
                console: self.guest.console_tail(),
            })?;
            let last = is_final(&reply);
            on_reply(reply);
            if last {
                return Ok(());
            }
        }
    }
}

/// How long [`Vm::request_interruptible`] waits for the agent.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// For the whole answer (one scenario).
    Total(Duration),
    /// Between two replies, however long the whole answer takes (a batch of runs).
    Idle(Duration),
}

/// A request on the wire: its JSON on one line (JSON escapes any newline inside a string).
fn request_line(request: &Request) -> Result<String, VmError> {
    serde_json::to_string(request)
        .map(|json| format!("{json}\n"))
        .map_err(|e| io_err("cannot encode the request")(io::Error::other(e)))
}

/// The reply that ends an answer; any other is one of many.
fn is_final(reply: &Reply) -> bool {
    matches!(reply, Reply::Done | Reply::Failed { .. } | Reply::Env(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_one_line_the_agent_reads_back() {
        for request in [Request::Env, Request::Interrupt] {
            let line = request_line(&request).unwrap();
            assert!(line.ends_with('\n'));
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            let back: Request = serde_json::from_str(line.trim_end()).unwrap();
            assert_eq!(back, request);
        }
    }

    #[test]
    fn done_and_failed_end_an_answer() {
        assert!(is_final(&Reply::Done));
        assert!(is_final(&Reply::Failed {
            message: "no such scenario".into()
        }));
    }
}
