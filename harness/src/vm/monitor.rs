//! The QEMU machine protocol (QMP) over its unix socket: `stop`, `savevm`, `cont`, `quit`.
//!
//! QMP is line-delimited JSON, and the harness uses four commands of it, so it speaks it with
//! serde_json directly. The QMP crates were weighed and left: `qapi` generates bindings for
//! QEMU's whole schema (a long compile on a 2-core CI runner for four commands), and `qmp` is
//! async-only (it would bring a tokio runtime into a synchronous launcher).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug)]
pub struct Monitor {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Monitor {
    /// Connects, reads QEMU's greeting and leaves capability negotiation mode.
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Self> {
        let writer = UnixStream::connect(path)?;
        let reader = BufReader::new(writer.try_clone()?);
        let mut m = Self { reader, writer };
        let deadline = Instant::now() + timeout;
        let greeting = m.read_message(deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a QMP greeting: {greeting}"),
            ));
        }
        m.execute("qmp_capabilities", None, timeout)?;
        Ok(m)
    }

    /// Runs one QMP command; returns its `return` value, or QEMU's `error` as an error.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> io::Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(a) = arguments {
            request["arguments"] = a;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        let deadline = Instant::now() + timeout;
        loop {
            let reply = self.read_message(deadline)?;
            match reply_outcome(reply) {
                Reply::Event => continue,
                Reply::Return(v) => return Ok(v),
                Reply::Error(message) => return Err(io::Error::other(message)),
                Reply::Unknown(v) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected QMP message: {v}"),
                    ))
                }
            }
        }
    }

    /// A command QMP has only in the human monitor's language (`savevm` before QEMU's
    /// `snapshot-save` job, which needs block node names the launcher does not assign).
    /// HMP reports failure as text, so any output is an error.
    pub fn human(&mut self, command_line: &str, timeout: Duration) -> io::Result<()> {
        let out = self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": command_line })),
            timeout,
        )?;
        match out.as_str().map(str::trim) {
            Some("") => Ok(()),
            Some(text) => Err(io::Error::other(text.to_owned())),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected human-monitor-command reply: {out}"),
            )),
        }
    }

    /// `quit` closes the socket, often before its reply arrives: nothing to wait for.
    pub fn quit(&mut self) {
        let _ = self.writer.write_all(b"{\"execute\":\"quit\"}\n");
    }

    fn read_message(&mut self, deadline: Instant) -> io::Result<Value> {
        let mut line = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no QMP reply in time; got {line:?}"),
                ));
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            match self.reader.read_line(&mut line) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "QMP socket closed",
                    ))
                }
                Ok(_) if line.ends_with('\n') => {
                    return serde_json::from_str(&line).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("QMP sent {line:?}: {e}"),
                        )
                    })
                }
                // A partial line before a read timeout: keep it and read on.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Reply {
    Event,
    Return(Value),
    Error(String),
    Unknown(Value),
}

/// QMP interleaves asynchronous events (STOP, RESUME, ...) with command replies.
fn reply_outcome(mut v: Value) -> Reply {
    if v.get("event").is_some() {
        return Reply::Event;
    }
    if let Some(r) = v.get_mut("return") {
        return Reply::Return(r.take());
    }
    if let Some(e) = v.get("error") {
        let class = e.get("class").and_then(Value::as_str).unwrap_or("Error");
        let desc = e.get("desc").and_then(Value::as_str).unwrap_or("");
        return Reply::Error(format!("{class}: {desc}"));
    }
    Reply::Unknown(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn replies_events_and_errors() {
        assert_eq!(
            reply_outcome(json!({"event": "STOP", "timestamp": {}})),
            Reply::Event
        );
        assert_eq!(
            reply_outcome(json!({"return": {}})),
            Reply::Return(json!({}))
        );
        assert_eq!(
            reply_outcome(json!({"error": {"class": "GenericError", "desc": "no"}})),
            Reply::Error("GenericError: no".into())
        );
        assert!(matches!(reply_outcome(json!({"x": 1})), Reply::Unknown(_)));
    }

    /// A scripted QMP server: greeting, capabilities, an event before a reply, an HMP error.
    #[test]
    fn speaks_qmp_to_a_scripted_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut got = Vec::new();
            let mut line = String::new();
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .unwrap();
            for reply in [
                "{\"return\": {}}\n",
                "{\"event\": \"STOP\"}\n{\"return\": {}}\n",
                "{\"return\": \"Error: no block device can accept snapshots\\r\\n\"}\n",
                "{\"return\": \"\"}\n",
            ] {
                line.clear();
                r.read_line(&mut line).unwrap();
                got.push(serde_json::from_str::<Value>(&line).unwrap());
                // Split a reply over two writes: the client must join the halves.
                let (a, b) = reply.split_at(reply.len() / 2);
                w.write_all(a.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                w.write_all(b.as_bytes()).unwrap();
            }
            got
        });
        let t = Duration::from_secs(5);
        let mut m = Monitor::connect(&path, t).unwrap();
        assert_eq!(m.execute("stop", None, t).unwrap(), json!({}));
        let e = m.human("savevm ready", t).unwrap_err();
        assert!(e.to_string().contains("no block device"), "{e}");
        m.human("savevm ready", t).unwrap();
        let got = server.join().unwrap();
        assert_eq!(got[0], json!({"execute": "qmp_capabilities"}));
        assert_eq!(got[1], json!({"execute": "stop"}));
        assert_eq!(
            got[2],
            json!({"execute": "human-monitor-command", "arguments": {"command-line": "savevm ready"}})
        );
    }

    #[test]
    fn a_silent_server_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        let e = Monitor::connect(&path, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
