//! One client connection as the HTTP layer sees it: a TCP stream wrapped so that no client
//! can make the server hold more than a small, fixed amount of memory for it.
//!
//! actix-http's HTTP/1 dispatcher reads ahead and decodes every pipelined request it has
//! read (its `MAX_PIPELINED_MESSAGES` check runs only before a decode pass, and a pass
//! decodes everything in a 32 KiB read buffer, ~900 minimal GETs), whether or not the
//! client reads the answers; there is no setting for either. So the bytes it may read are
//! decided here, below it:
//!
//! - request heads are found with `httparse` and handed over one at a time, at most
//!   [`MAX_IN_FLIGHT`] ahead of the ones the application has started answering
//!   ([`Gate::dispatched`], called by the middleware in `listener`);
//! - nothing more is read while a write is blocked (the client is not reading), and a
//!   write that makes no progress for `write_timeout` fails, which closes the connection
//!   (nginx's `send_timeout` semantics);
//! - a request whose body framing we do not take (`Transfer-Encoding`, `Content-Length`
//!   over [`BODY_LIMIT`], both at once, `Upgrade`, or a head that does not parse) is the
//!   last one read: the stream ends after its head, so nothing smuggled behind it is ever
//!   parsed, and the connection closes after its answer (RFC 9112 §6.1, §6.3);
//! - once shutdown begins ([`Drain`]), the stream ends at the next request boundary: idle
//!   keep-alive connections close at once, requests already read are answered.
//!
//! With this, one connection holds at most one [`READ_BUFFER`] here, [`MAX_IN_FLIGHT`]
//! decoded requests in actix, and actix's write buffer (which stops taking responses past
//! 32 KiB until it drains, so at most that plus one response body).

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;

/// Requests read but not yet handed to the application, per connection. Legitimate
/// pipelining keeps working: the client just waits for room, as with a full socket buffer.
pub const MAX_IN_FLIGHT: usize = 16;

/// Largest request body read (and ignored): no route takes a body.
pub const BODY_LIMIT: u64 = 1024;

/// Bytes buffered here per connection; also the largest request head accepted (larger ones
/// are passed on as they are, for actix to refuse with 431).
pub const READ_BUFFER: usize = 8 * 1024;

/// Most header fields in a head we parse (actix-http's own limit).
const MAX_HEADERS: usize = 96;

/// Shutdown: once begun, every connection ends at its next request boundary.
#[derive(Debug, Default)]
pub struct Drain {
    begun: AtomicBool,
    notify: Arc<Notify>,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain::default())
    }

    /// Starts draining and wakes every connection waiting for its client.
    pub fn begin(&self) {
        self.begun.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn begun(&self) -> bool {
        self.begun.load(Ordering::SeqCst)
    }
}

/// The connection cap, shared by all workers.
#[derive(Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub write_timeout: Duration,
    open: AtomicUsize,
    refused: AtomicU64,
    /// Milliseconds since `epoch` of the last "limit reached" log line.
    last_log_ms: AtomicU64,
    epoch: Instant,
}

impl Limits {
    pub fn new(max_connections: usize, write_timeout: Duration) -> Arc<Limits> {
        Arc::new(Limits {
            max_connections,
            write_timeout,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            last_log_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// A slot for one more connection, or `None` (logged, at most every 10 s) at the cap.
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        let taken = self
            .open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_connections).then_some(n + 1)
            })
            .is_ok();
        if taken {
            return Some(Permit(self.clone()));
        }
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.epoch.elapsed().as_millis() as u64 + 10_000;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "connection limit reached ({} open, `server.max_connections`): closing new \
                 connections at once ({refused} refused so far)",
                self.max_connections
            );
        }
        None
    }
}

/// One admitted connection; frees its slot when dropped.
#[derive(Debug)]
pub struct Permit(Arc<Limits>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The per-connection state shared between the stream and the requests read from it
/// (through actix's connection data).
#[derive(Debug, Default)]
pub struct Gate {
    in_flight: Cell<usize>,
    parked: RefCell<Option<Waker>>,
}

impl Gate {
    /// The application starts answering one more request of this connection: room to read
    /// the next.
    pub fn dispatched(&self) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.unpark();
    }

    fn unpark(&self) {
        if let Some(waker) = self.parked.borrow_mut().take() {
            waker.wake();
        }
    }

    fn park(&self, cx: &Context<'_>) {
        *self.parked.borrow_mut() = Some(cx.waker().clone());
    }
}

/// Where the reader is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At a request boundary: the next bytes are a head.
    Heads,
    /// Pass everything through unparsed (a head too large for us; actix refuses it).
    Raw,
    /// The stream ends once the bytes already classified are delivered.
    Last,
}

/// A client connection with bounded reads and timed writes (see the module docs).
pub struct Guarded {
    io: TcpStream,
    gate: Rc<Gate>,
    drain: Arc<Drain>,
    drain_wait: Pin<Box<OwnedNotified>>,
    /// Bytes read from the socket: `buf[start..end]` not yet handed over, the first
    /// `ready` of them classified. Allocated on the first read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    ready: usize,
    /// Body bytes of the current request still to pass through.
    body_left: u64,
    mode: Mode,
    eof: bool,
    write_timeout: Duration,
    /// Set while a write is blocked: fires `write_timeout` after the last progress.
    write_deadline: Option<Pin<Box<Sleep>>>,
    _permit: Permit,
}

impl Guarded {
    pub fn new(io: TcpStream, permit: Permit, drain: Arc<Drain>) -> Guarded {
        let drain_wait = Box::pin(drain.notify.clone().notified_owned());
        Guarded {
            io,
            gate: Rc::new(Gate::default()),
            drain,
            drain_wait,
            buf: Vec::new(),
            start: 0,
            end: 0,
            ready: 0,
            body_left: 0,
            mode: Mode::Heads,
            eof: false,
            write_timeout: permit.0.write_timeout,
            write_deadline: None,
            _permit: permit,
        }
    }

    /// The state to hand to requests (actix connection data).
    pub fn gate(&self) -> Rc<Gate> {
        self.gate.clone()
    }

    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.io.peer_addr().ok()
    }

    /// Reads more from the socket into `buf`. Ready(Ok(())) when something (or EOF) came.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            self.buf = vec![0; READ_BUFFER];
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let mut rb = ReadBuf::new(&mut self.buf[self.end..]);
        let polled = Pin::new(&mut self.io).poll_read(cx, &mut rb);
        let n = rb.filled().len();
        self.end += n;
        match polled {
            Poll::Ready(Ok(())) => {
                if n == 0 {
                    self.eof = true;
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    /// Bytes read and not handed over.
    fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Classifies the head at the front of the pending bytes, if complete.
    fn classify(&mut self) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&self.buf[self.start..self.end]) {
            Ok(httparse::Status::Complete(len)) => {
                let framing = framing(&req);
                self.gate.in_flight.set(self.gate.in_flight.get() + 1);
                self.ready = len;
                match framing {
                    Framing::None => {}
                    Framing::Body(n) => self.body_left = n,
                    Framing::Last => self.mode = Mode::Last,
                }
                true
            }
            Ok(httparse::Status::Partial) if self.pending() < READ_BUFFER => false,
            Ok(httparse::Status::Partial) => {
                self.ready = self.pending();
                self.mode = Mode::Raw;
                true
            }
            Err(_) => {
                // Not HTTP: actix answers 400 to these bytes, and then the stream ends.
                self.ready = self.pending();
                self.mode = Mode::Last;
                true
            }
        }
    }
}

/// What follows a request head.
enum Framing {
    None,
    /// A small body (skipped by actix).
    Body(u64),
    /// Nothing we read further: the connection closes after this request's answer.
    Last,
}

/// RFC 9112 §6: the message body length from the head, or `Last` for anything we do not
/// take: any `Transfer-Encoding` (with or without `Content-Length`: §6.1 smuggling shape),
/// several or invalid `Content-Length`, a body over the limit, `Upgrade`, `CONNECT`.
fn framing(req: &httparse::Request<'_, '_>) -> Framing {
    if req.method == Some("CONNECT") {
        return Framing::Last;
    }
    let mut length = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            || h.name.eq_ignore_ascii_case("upgrade")
        {
            return Framing::Last;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (length, parsed) {
                (None, Some(n)) => length = Some(n),
                _ => return Framing::Last,
            }
        }
    }
    match length {
        None | Some(0) => Framing::None,
        Some(n) if n <= BODY_LIMIT => Framing::Body(n),
        Some(_) => Framing::Last,
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[this.start..this.start + n]);
                this.start += n;
                this.ready -= n;
                if this.start == this.end {
                    this.start = 0;
                    this.end = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.body_left > 0 && this.pending() > 0 {
                let n = this.pending().min(this.body_left as usize);
                this.ready = n;
                this.body_left -= n as u64;
                continue;
            }
            if this.mode == Mode::Last {
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // Whatever is left is an incomplete head: hand it over, then end.
                this.ready = this.pending();
                this.mode = Mode::Last;
                continue;
            }
            if this.body_left == 0 && this.mode == Mode::Heads {
                if this.drain.begun() {
                    this.mode = Mode::Last;
                    continue;
                }
                // Nothing more while the client does not read, or too far ahead.
                if this.write_deadline.is_some() || this.gate.in_flight.get() >= MAX_IN_FLIGHT {
                    this.gate.park(cx);
                    return Poll::Pending;
                }
                if this.pending() > 0 && this.classify() {
                    continue;
                }
            } else if this.mode == Mode::Raw && this.pending() > 0 {
                this.ready = this.pending();
                continue;
            }
            match this.fill(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if this.drain_wait.as_mut().poll(cx).is_ready() {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 && this.write_deadline.take().is_some() {
                    this.gate.unpark();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                let timeout = this.write_timeout;
                let deadline = this
                    .write_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    tracing::debug!(
                        peer = ?this.peer_addr(),
                        "client read nothing for {timeout:?}: closing"
                    );
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client does not read",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(head: &str) -> Framing {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(matches!(
            req.parse(head.as_bytes()),
            Ok(httparse::Status::Complete(_))
        ));
        framing(&req)
    }

    #[test]
    fn framing_takes_only_small_content_length_bodies() {
        let f = |h: &str| framing_of(&format!("GET / HTTP/1.1\r\nHost: x\r\n{h}\r\n"));
        assert!(matches!(f(""), Framing::None));
        assert!(matches!(f("Content-Length: 0\r\n"), Framing::None));
        assert!(matches!(f("Content-Length: 10\r\n"), Framing::Body(10)));
        assert!(matches!(f("Content-Length: 100000\r\n"), Framing::Last));
        assert!(matches!(f("Content-Length: +5\r\n"), Framing::Last));
        assert!(matches!(
            f("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Framing::Last
        ));
        assert!(matches!(f("Transfer-Encoding: chunked\r\n"), Framing::Last));
        assert!(matches!(
            f("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"),
            Framing::Last
        ));
        assert!(matches!(f("Upgrade: websocket\r\n"), Framing::Last));
    }
}
