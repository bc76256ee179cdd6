//! The host end of the agent's virtio-serial port: a byte stream cut into lines, read and
//! written in short slices so QEMU's death or the user's interrupt is noticed in between.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::{io_err, VmError};
use super::instance::Guest;
use crate::wait::{wait_until, Waited};

/// The host end of the agent's virtio-serial port: a byte stream of lines.
pub(super) struct Channel {
    stream: UnixStream,
    lines: Lines,
}

impl Channel {
    const POLL: Duration = Duration::from_millis(100);

    pub(super) fn connect(
        path: &Path,
        deadline: Instant,
        guest: &mut Guest,
    ) -> Result<Self, VmError> {
        const PHASE: &str = "connecting to the agent socket";
        let mut last = None;
        // `check` sees the user's interrupt as well as QEMU's death.
        let waited = wait_until(Some(deadline), Duration::from_millis(10), None, || {
            if let Err(e) = guest.check(PHASE) {
                return Some(Err(e));
            }
            match UnixStream::connect(path) {
                Ok(stream) => Some(Ok(stream)),
                Err(e) => {
                    last = Some(e);
                    None
                }
            }
        });
        let stream = match waited {
            Waited::Met(result) => result?,
            Waited::Interrupted => return Err(VmError::Interrupted),
            Waited::TimedOut => {
                let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::TimedOut));
                return Err(io_err(format!("cannot connect to {}", path.display()))(e));
            }
        };
        stream
            .set_read_timeout(Some(Self::POLL))
            .map_err(io_err("agent socket"))?;
        Ok(Self {
            stream,
            lines: Lines::default(),
        })
    }

    pub(super) fn send(
        &mut self,
        bytes: &[u8],
        guest: &mut Guest,
        timeout: Duration,
    ) -> Result<(), VmError> {
        const PHASE: &str = "sending to the agent";
        let deadline = Instant::now() + timeout;
        self.stream
            .set_write_timeout(Some(Self::POLL))
            .map_err(io_err("agent socket"))?;
        let mut rest = bytes;
        while !rest.is_empty() {
            guest.check(PHASE)?;
            if Instant::now() > deadline {
                return Err(guest.timeout(
                    PHASE,
                    timeout,
                    "the guest stopped reading its port: see the console",
                ));
            }
            match self.stream.write(rest) {
                Ok(0) => {
                    return Err(VmError::ChannelClosed {
                        phase: PHASE,
                        console: guest.console_tail(),
                    })
                }
                Ok(n) => rest = &rest[n..],
                Err(e) if is_retry(&e) => {}
                Err(e) => return Err(io_err("writing to the agent socket")(e)),
            }
        }
        Ok(())
    }

    /// The next line, or None when `deadline` passes first.
    pub(super) fn read_line(
        &mut self,
        deadline: Instant,
        guest: &mut Guest,
        phase: &'static str,
    ) -> Result<Option<String>, VmError> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(line) = self.lines.next_line() {
                return Ok(Some(line));
            }
            guest.check(phase)?;
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(VmError::ChannelClosed {
                        phase,
                        console: guest.console_tail(),
                    })
                }
                Ok(n) => self.lines.push(&chunk[..n]),
                Err(e) if is_retry(&e) => {}
                Err(e) => return Err(io_err("reading from the agent socket")(e)),
            }
        }
    }

    /// Reads lines until one satisfies `want`; bootstrap chatter (PONG) is skipped.
    pub(super) fn expect(
        &mut self,
        guest: &mut Guest,
        timeout: Duration,
        phase: &'static str,
        want: impl Fn(&str) -> bool,
    ) -> Result<String, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_line(deadline, guest, phase)? {
                None => return Err(guest.timeout(phase, timeout, "see the guest console")),
                Some(l) if want(&l) => return Ok(l),
                Some(l) if l == "PONG" || l.is_empty() => {}
                Some(l) => {
                    return Err(VmError::Protocol {
                        phase,
                        line: l,
                        console: guest.console_tail(),
                    })
                }
            }
        }
    }
}

/// Bytes as they arrive, handed out a line at a time.
#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The oldest complete line without its newline and trailing whitespace (a CR from a
    /// serial console); the bytes after it stay for the next call. Not UTF-8: lossy.
    fn next_line(&mut self) -> Option<String> {
        let i = self.buf.iter().position(|&b| b == b'\n')?;
        let rest = self.buf.split_off(i + 1);
        let line = std::mem::replace(&mut self.buf, rest);
        Some(String::from_utf8_lossy(&line).trim_end().to_owned())
    }
}

/// Socket errors that only mean "nothing yet": the timeout of one read or write, or a signal.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_split_over_reads_comes_out_whole() {
        let mut l = Lines::default();
        l.push(b"PO");
        assert_eq!(l.next_line(), None);
        l.push(b"NG\nGOT 12");
        assert_eq!(l.next_line().as_deref(), Some("PONG"));
        assert_eq!(l.next_line(), None, "a partial line waits for its newline");
        l.push(b"3\n");
        assert_eq!(l.next_line().as_deref(), Some("GOT 123"));
        assert_eq!(l.next_line(), None);
    }

    #[test]
    fn several_lines_in_one_read_come_out_in_order() {
        let mut l = Lines::default();
        l.push(b"OK\r\n\n{\"Done\":null}  \nrest");
        assert_eq!(l.next_line().as_deref(), Some("OK"));
        assert_eq!(l.next_line().as_deref(), Some(""));
        assert_eq!(l.next_line().as_deref(), Some("{\"Done\":null}"));
        assert_eq!(l.next_line(), None);
        assert_eq!(l.buf, b"rest");
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_end_the_stream() {
        let mut l = Lines::default();
        l.push(b"ERR \xff\xfe bad\n");
        assert_eq!(l.next_line().as_deref(), Some("ERR \u{fffd}\u{fffd} bad"));
    }

    #[test]
    fn retry_errors_are_the_ones_that_mean_nothing_yet() {
        for kind in [
            io::ErrorKind::WouldBlock,
            io::ErrorKind::TimedOut,
            io::ErrorKind::Interrupted,
        ] {
            assert!(is_retry(&io::Error::from(kind)));
        }
        assert!(!is_retry(&io::Error::from(io::ErrorKind::BrokenPipe)));
    }
}
