//! The access log: one line per answered request, in the combined log format of Apache and
//! nginx or as JSON lines, written by a thread of its own so that a slow disk never holds a
//! request. Off by default; when off nothing is formatted or sent. Lines that the writer
//! cannot keep up with are dropped and counted (`feedsmith_access_log_dropped_total`), never
//! queued without bound.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use chrono::{DateTime, Utc};

use crate::config::AccessLogFormat;
use crate::error::Error;
use crate::metrics::Metrics;

/// Lines waiting for the writer at most.
const QUEUE: usize = 16 * 1024;

/// What one log line says about a request and its answer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub time: DateTime<Utc>,
    pub remote: Option<IpAddr>,
    pub method: String,
    /// Path and query as requested.
    pub target: String,
    pub version: &'static str,
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// Time to the response head, in microseconds.
    pub micros: u64,
}

/// A running access log.
pub struct AccessLog {
    format: AccessLogFormat,
    sender: SyncSender<String>,
    metrics: Option<Arc<Metrics>>,
}

impl AccessLog {
    /// Starts the writer for `format` to `file` (appended to; stderr when `None`). `None`
    /// when the format is `Off`.
    pub fn start(
        format: AccessLogFormat,
        file: Option<&Path>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Option<AccessLog>, Error> {
        if format == AccessLogFormat::Off {
            return Ok(None);
        }
        let out: Box<dyn Write + Send> = match file {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| Error::Write {
                        path: path.to_path_buf(),
                        source,
                    })?,
            ),
            None => Box::new(std::io::stderr()),
        };
        let (sender, receiver) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("feedsmith-access-log".into())
            .spawn(move || write_lines(&receiver, out))
            .map_err(Error::Io)?;
        Ok(Some(AccessLog {
            format,
            sender,
            metrics,
        }))
    }

    /// Logs one request (dropped, and counted, when the writer is behind).
    pub fn record(&self, entry: &Entry) {
        let line = match self.format {
            AccessLogFormat::Off => return,
            AccessLogFormat::Combined => combined(entry),
            AccessLogFormat::Json => json(entry),
        };
        if let Err(TrySendError::Full(_)) = self.sender.try_send(line)
            && let Some(metrics) = &self.metrics
        {
            metrics.access_log_dropped();
        }
    }
}

/// Writes lines as they come, flushing whenever the queue runs dry.
fn write_lines(receiver: &Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(line) = receiver.recv() {
        let mut ok = out.write_all(line.as_bytes()).is_ok();
        while let Ok(more) = receiver.try_recv() {
            ok &= out.write_all(more.as_bytes()).is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::warn!("access log: write failed; lines are lost until it works again");
        }
    }
}

/// `host - - [time] "request" status bytes "referer" "user-agent"` (`-` for what is
/// missing), with `"`, `\` and bytes outside printable ASCII escaped as nginx does (`\xHH`).
pub fn combined(e: &Entry) -> String {
    let remote = e
        .remote
        .map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let quoted = |s: Option<&str>| s.map_or_else(|| "-".to_string(), escape);
    format!(
        "{remote} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"\n",
        e.time.format("%d/%b/%Y:%H:%M:%S %z"),
        escape(&e.method),
        escape(&e.target),
        e.version,
        e.status,
        e.bytes,
        quoted(e.referer.as_deref()),
        quoted(e.user_agent.as_deref()),
    )
}

/// One JSON object per line.
pub fn json(e: &Entry) -> String {
    let mut line = serde_json::json!({
        "time": e.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "remote": e.remote.map(|ip| ip.to_string()),
        "method": e.method,
        "target": e.target,
        "protocol": e.version,
        "status": e.status,
        "bytes": e.bytes,
        "referer": e.referer,
        "user_agent": e.user_agent,
        "micros": e.micros,
    })
    .to_string();
    line.push('\n');
    line
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: DateTime::parse_from_rfc3339("2026-12-01T13:46:09Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            remote: Some(IpAddr::from([127, 0, 0, 1])),
            method: "GET".into(),
            target: "/tags/内核/rss.xml?x=\"1\"".into(),
            version: "HTTP/1.1",
            status: 304,
            bytes: 0,
            referer: None,
            user_agent: Some("Feedly/1.0 \\o/".into()),
            micros: 42,
        }
    }

    #[test]
    fn combined_lines_are_escaped_like_nginx() {
        assert_eq!(
            combined(&entry()),
            "127.0.0.1 - - [01/Dec/2026:13:46:09 +0000] \"GET /tags/\\xE5\\x86\\x85\\xE6\\xA0\\xB8/rss.xml?x=\\\"1\\\" HTTP/1.1\" 304 0 \"-\" \"Feedly/1.0 \\\\o/\"\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let line = json(&entry());
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["status"], 304);
        assert_eq!(value["target"], "/tags/内核/rss.xml?x=\"1\"");
        assert_eq!(value["referer"], serde_json::Value::Null);
    }
}
