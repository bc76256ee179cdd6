//! The bootstrap protocol: the harness init in the guest answers plain-text lines on the agent
//! port until the agent runs. `PING`/`PONG` until it is up, `TIME` to set the clock (a restored
//! guest resumes at snapshot time), `MNT` to run the agent from the payload disk or `BIN` to
//! stream it over the port (each answered `GOT <len> [notes]`), then the agent's hello.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::channel::Channel;
use super::error::VmError;
use super::instance::Guest;
use super::options::StartKind;
use crate::agent::protocol::HELLO;
use crate::image::command::tail_lines;
use crate::image::Progress;

/// Pings until the bootstrap answers. Data sent before it opened the port may be dropped, so
/// the ping repeats; each repetition also shows the newest console line as progress.
pub(super) fn wait_for_bootstrap(
    agent: &mut Channel,
    guest: &mut Guest,
    deadline: Instant,
    progress: &Progress,
    kind: StartKind,
) -> Result<(), VmError> {
    const PHASE: &str = "waiting for the guest's bootstrap";
    let started = Instant::now();
    loop {
        agent.send(b"PING\n", guest, Duration::from_secs(5))?;
        // A restored guest answers within a few hundred ms: re-ping often so that a ping lost
        // in the reconnect costs little. A cold boot takes ~20 s: no need to flood it.
        let every = match kind {
            StartKind::Warm => Duration::from_millis(100),
            StartKind::Cold => Duration::from_millis(500),
        };
        let until = deadline.min(Instant::now() + every);
        match agent.read_line(until, guest, PHASE)? {
            Some(l) if l == "PONG" => return Ok(()),
            Some(_) => {}
            None if Instant::now() >= deadline => {
                return Err(guest.timeout(
                    PHASE,
                    started.elapsed(),
                    "see the console: did the harness init reach \"ready on /dev/vport...\"?",
                ))
            }
            None => {
                let last = tail_lines(&guest.console, 1);
                if !last.is_empty() {
                    let short: String = last.chars().take(100).collect();
                    progress.phase(format!("{} boot: {short}", kind.name()));
                }
            }
        }
    }
}

/// Sets the guest clock (it resumes at snapshot time after a restore), sends the binary and
/// waits for the agent's hello.
pub(super) fn deliver(
    agent: &mut Channel,
    guest: &mut Guest,
    binary: &[u8],
    on_payload_disk: bool,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<(), VmError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    agent.send(time_line(now).as_bytes(), guest, timeout)?;
    let answer = agent.expect(guest, timeout, "setting the guest clock", |l| {
        l == "OK" || l.starts_with("ERR")
    })?;
    if answer != "OK" {
        notes.push(format!("guest clock not set: {answer}"));
    }
    let is_got = |l: &str| is_got(l, binary.len());
    let mut got = None;
    if on_payload_disk {
        agent.send(format!("MNT {}\n", binary.len()).as_bytes(), guest, timeout)?;
        let answer = agent.expect(
            guest,
            timeout,
            "reading the agent from the payload disk",
            |l| is_got(l) || l.starts_with("ERR"),
        )?;
        if is_got(&answer) {
            got = Some(answer);
        } else {
            notes.push(format!(
                "payload disk not used ({answer}); sent the agent over the port"
            ));
        }
    }
    let got = match got {
        Some(g) => g,
        None => {
            agent.send(format!("BIN {}\n", binary.len()).as_bytes(), guest, timeout)?;
            agent.expect(guest, timeout, "starting the binary transfer", |l| {
                l == "OK"
            })?;
            agent.send(binary, guest, timeout.max(Duration::from_secs(60)))?;
            agent.expect(guest, timeout, "transferring the agent binary", is_got)?
        }
    };
    if got.ends_with("clock-not-set") {
        notes.push("guest clock not set: `date -s` failed in the guest (see the console)".into());
    }
    agent.expect(guest, timeout, "waiting for the agent to start", |l| {
        l.split_whitespace().next() == Some(HELLO)
    })?;
    Ok(())
}

/// `TIME <seconds>.<nanoseconds>`: the host's wall clock for the guest's `date -s`.
fn time_line(since_epoch: Duration) -> String {
    format!(
        "TIME {}.{:09}\n",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

/// Whether `line` acknowledges receiving all `len` bytes: `GOT <len>`, maybe with notes after
/// a space (`GOT 123 clock-not-set`), never a longer number.
fn is_got(line: &str, len: usize) -> bool {
    let want = format!("GOT {len}");
    line == want
        || line
            .strip_prefix(want.as_str())
            .is_some_and(|rest| rest.starts_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_line_pads_the_nanoseconds() {
        assert_eq!(
            time_line(Duration::new(1_795_653_900, 5_000)),
            "TIME 1795653900.000005000\n"
        );
    }

    #[test]
    fn got_acknowledges_exactly_the_length_sent() {
        assert!(is_got("GOT 123", 123));
        assert!(is_got("GOT 123 clock-not-set", 123));
        assert!(
            !is_got("GOT 1234", 123),
            "a longer number is another length"
        );
        assert!(!is_got("GOT 12", 123));
        assert!(!is_got("ERR no payload disk", 123));
        assert!(!is_got("got 123", 123));
    }
}
