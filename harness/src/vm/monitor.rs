//! The QEMU human monitor (HMP) over its unix socket: `stop`, `savevm`, `cont`, `quit`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const PROMPT: &[u8] = b"(qemu) ";

#[derive(Debug)]
pub struct Monitor {
    stream: UnixStream,
}

impl Monitor {
    /// Connects and reads the banner up to the first prompt.
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        let mut m = Self { stream };
        m.read_to_prompt(timeout)?;
        Ok(m)
    }

    /// Runs one command; returns what QEMU printed for it (without the echo and the prompt).
    pub fn command(&mut self, cmd: &str, timeout: Duration) -> io::Result<String> {
        self.stream.write_all(cmd.as_bytes())?;
        self.stream.write_all(b"\n")?;
        let raw = self.read_to_prompt(timeout)?;
        Ok(clean_output(&raw))
    }

    /// `quit` closes the socket instead of printing a prompt.
    pub fn quit(&mut self) {
        let _ = self.stream.write_all(b"quit\n");
    }

    fn read_to_prompt(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(PROMPT) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no monitor prompt within {timeout:?}; got {:?}",
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "monitor closed",
                    ))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf)
    }
}

/// HMP echoes the command line (with terminal escapes) before its output.
fn clean_output(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).replace('\r', "");
    let body = text.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
    body.strip_suffix("(qemu) ")
        .unwrap_or(body)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_without_echo_and_prompt() {
        let raw = b"savevm ready\x1b[K\r\nError: something\r\n(qemu) ";
        assert_eq!(clean_output(raw), "Error: something");
        assert_eq!(clean_output(b"stop\r\n(qemu) "), "");
    }
}
