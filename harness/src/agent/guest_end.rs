//! The guest side of the agent channel: JSON lines on a virtio-serial port.
//!
//! The port behaves unlike a pipe: while the host side is disconnected a read returns 0 bytes
//! (not EOF for good), and data that arrives while no guest process has the port open is
//! dropped. So the agent polls on 0-byte reads and announces itself with [`HELLO`] once it
//! has the port open; the host sends no request before it sees that line.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::agent::protocol::{Reply, Request, HELLO};
use crate::interrupt::Interrupt;

/// What answers requests: gets each request, the flag a [`Request::Interrupt`] from the host
/// raises while it runs, and a callback that sends one reply.
pub type Handler<'a> = dyn FnMut(Request, &Interrupt, &mut dyn FnMut(Reply)) + 'a;

/// How long to wait before reading again while the host is not connected.
const DISCONNECTED_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot open the agent port {path}: {source}\nfix: pass the /dev/vportNpM whose /sys/class/virtio-ports/*/name is org.selinux-harness.agent")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("agent port {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Serves requests on `port` until a [`Request::Shutdown`] has been handled.
///
/// Each request goes to `handler` with a callback that sends one reply line. A line that is not
/// a request is answered with [`Reply::Failed`] and the agent keeps serving.
pub fn serve(port: &Path, handler: &mut Handler<'_>) -> Result<(), AgentError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(port)
        .map_err(|source| AgentError::Open {
            path: port.to_owned(),
            source,
        })?;
    let writer = file.try_clone().map_err(|source| AgentError::Io {
        path: port.to_owned(),
        what: "dup",
        source,
    })?;
    serve_stream(file, writer, handler).map_err(|(what, source)| AgentError::Io {
        path: port.to_owned(),
        what,
        source,
    })
}

/// A line from the host that is not a request; its text is the `Failed` reply.
#[derive(Debug, thiserror::Error)]
#[error("not a request: {0}")]
struct NotARequest(#[from] serde_json::Error);

/// What the reader thread passes on: a request (or why a line is not one) with the flag that a
/// later [`Request::Interrupt`] raises for it.
type Incoming = io::Result<(Result<Request, NotARequest>, Interrupt)>;

/// [`serve`] on any byte stream (a 0-byte read means "wait", as on the port).
///
/// The stream is read on a thread of its own, so that a [`Request::Interrupt`] reaches the
/// request that is running (a scenario takes seconds to minutes); every other request waits
/// its turn. The reader thread outlives a shutdown, blocked in `read`: the process exits then.
pub fn serve_stream(
    reader: impl Read + Send + 'static,
    mut writer: impl Write,
    handler: &mut Handler<'_>,
) -> Result<(), (&'static str, io::Error)> {
    writeln!(
        writer,
        "{HELLO} {} pid={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    )
    .and_then(|()| writer.flush())
    .map_err(|e| ("write hello", e))?;

    let (tx, rx) = mpsc::channel::<Incoming>();
    std::thread::Builder::new()
        .name("agent-reader".into())
        .spawn(move || read_requests(reader, &tx))
        .map_err(|e| ("start the reader thread", e))?;

    loop {
        let incoming = rx.recv().map_err(|_| {
            (
                "read",
                io::Error::other("the reader thread ended without an error"),
            )
        })?;
        let (request, interrupt) = incoming.map_err(|e| ("read", e))?;
        let mut write_error = None;
        let mut send = |reply: Reply| {
            if write_error.is_some() {
                return;
            }
            let r = serde_json::to_string(&reply)
                .map_err(io::Error::other)
                .and_then(|json| writeln!(writer, "{json}"))
                .and_then(|()| writer.flush());
            if let Err(e) = r {
                write_error = Some(e);
            }
        };
        let shutdown = match request {
            Ok(request) => {
                let shutdown = request == Request::Shutdown;
                handler(request, &interrupt, &mut send);
                shutdown
            }
            Err(e) => {
                send(Reply::Failed {
                    message: e.to_string(),
                });
                false
            }
        };
        if let Some(e) = write_error {
            return Err(("write reply", e));
        }
        if shutdown {
            return Ok(());
        }
    }
}

/// The reader thread: raises the interrupt flag itself, passes everything else on.
///
/// Each request gets a flag of its own, and an interrupt raises the flag of the request read
/// last before it: one meant for a request that has finished cannot stop the next one, and one
/// that arrives before its request has even started is not lost.
fn read_requests(reader: impl Read, tx: &mpsc::Sender<Incoming>) {
    let mut lines = PortLines::new(reader);
    let mut latest = Interrupt::new();
    loop {
        let incoming = match lines.next_line() {
            Err(e) => Err(e),
            Ok(line) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Request>(text) {
                    Ok(Request::Interrupt) => {
                        latest.trigger();
                        continue;
                    }
                    Ok(request) => {
                        latest = Interrupt::new();
                        Ok((Ok(request), latest.clone()))
                    }
                    Err(e) => Ok((Err(NotARequest(e)), Interrupt::new())),
                }
            }
        };
        let fatal = incoming.is_err();
        // A closed channel means the server loop has returned: nobody is listening any more.
        if tx.send(incoming).is_err() || fatal {
            return;
        }
    }
}

/// Line reader that treats a 0-byte read as "host not connected yet", not as the end.
struct PortLines<R> {
    file: R,
    buf: Vec<u8>,
}

impl<R: Read> PortLines<R> {
    fn new(file: R) -> Self {
        Self {
            file,
            buf: Vec::new(),
        }
    }

    fn next_line(&mut self) -> io::Result<Vec<u8>> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                return Ok(line);
            }
            match self.file.read(&mut chunk) {
                Ok(0) => std::thread::sleep(DISCONNECTED_POLL),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;

    #[test]
    fn serves_json_lines_until_shutdown() {
        let (mut host, guest) = UnixStream::pair().unwrap();
        let guest_w = guest.try_clone().unwrap();
        let agent = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut handler = |req: Request, _: &Interrupt, reply: &mut dyn FnMut(Reply)| {
                seen.push(req.clone());
                match req {
                    Request::Env => reply(Reply::Env(Default::default())),
                    _ => reply(Reply::Done),
                }
            };
            serve_stream(guest, guest_w, &mut handler).map(|()| seen)
        });
        let mut reader = BufReader::new(host.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(HELLO), "{line}");
        let mut ask = |text: &str| {
            writeln!(host, "{text}").unwrap();
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            serde_json::from_str::<Reply>(&reply).unwrap()
        };
        assert!(matches!(
            ask(&serde_json::to_string(&Request::Env).unwrap()),
            Reply::Env(_)
        ));
        assert!(matches!(ask("garbage"), Reply::Failed { .. }));
        assert_eq!(
            ask(&serde_json::to_string(&Request::Shutdown).unwrap()),
            Reply::Done
        );
        let seen = agent.join().unwrap().unwrap();
        assert_eq!(seen, [Request::Env, Request::Shutdown]);
    }

    #[test]
    fn an_interrupt_reaches_the_running_request_and_not_the_next() {
        let (mut host, guest) = UnixStream::pair().unwrap();
        let guest_w = guest.try_clone().unwrap();
        let agent = std::thread::spawn(move || {
            let mut handler = |req: Request, stop: &Interrupt, reply: &mut dyn FnMut(Reply)| {
                if let Request::Run { .. } = req {
                    // Stands in for a scenario that runs until it is told to stop.
                    let deadline = std::time::Instant::now() + Duration::from_secs(10);
                    while !stop.is_set() && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    reply(Reply::Failed {
                        message: format!("interrupted={}", stop.is_set()),
                    });
                } else {
                    reply(Reply::Failed {
                        message: format!("interrupted={}", stop.is_set()),
                    });
                }
            };
            serve_stream(guest, guest_w, &mut handler)
        });
        let mut reader = BufReader::new(host.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let run = Request::Run {
            runs: vec![],
            jobs: 1,
        };
        for r in [&run, &Request::Interrupt, &Request::Env] {
            writeln!(host, "{}", serde_json::to_string(r).unwrap()).unwrap();
        }
        let mut next = || {
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            serde_json::from_str::<Reply>(&reply).unwrap()
        };
        let msg = |r: Reply| match r {
            Reply::Failed { message } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg(next()), "interrupted=true");
        assert_eq!(msg(next()), "interrupted=false");
        writeln!(
            host,
            "{}",
            serde_json::to_string(&Request::Shutdown).unwrap()
        )
        .unwrap();
        next();
        agent.join().unwrap().unwrap();
    }
}
