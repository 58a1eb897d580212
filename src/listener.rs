//! The HTTP listener: actix-server's workers and accept loop, with every connection wrapped
//! in `conn::Guarded` and served by actix-http's HTTP/1 service; strict request framing in
//! front of the routes; the connection cap; and a bounded graceful shutdown on SIGTERM or
//! SIGINT (stop accepting, end idle keep-alive connections at once, answer what was already
//! read, drop whatever is left after `server.shutdown_timeout_s`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::{HttpService, KeepAlive};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{AppConfig, Service, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::{StatusCode, Version};
use actix_web::{App, HttpRequest, HttpResponse, web};

use crate::access::Entry;
use crate::config::Server as ServerConfig;
use crate::conn::{BODY_LIMIT, Drain, Gate, Guarded, Limits};
use crate::error::Error;
use crate::metrics::{Coding, Route};
use crate::server::{self, AppState};

/// The answer to a request whose framing or head we refuse, if any (always with
/// `Connection: close`):
/// - `Content-Length` together with `Transfer-Encoding`: 400 (RFC 9112 §6.1: a smuggling
///   shape; the connection must close);
/// - HTTP/1.1 without exactly one `Host`, or any version with several: 400 (RFC 9112 §3.2);
/// - a body we do not take (any `Transfer-Encoding`, `Content-Length` over
///   `conn::BODY_LIMIT`): 413.
pub fn reject(req: &HttpRequest) -> Option<HttpResponse> {
    let headers = req.headers();
    let refuse = |status: StatusCode, why: &str| {
        Some(
            HttpResponse::build(status)
                .force_close()
                .content_type("text/plain; charset=utf-8")
                .body(format!("{} {why}\n", status.as_u16())),
        )
    };
    let te = headers.contains_key(header::TRANSFER_ENCODING);
    if te && headers.contains_key(header::CONTENT_LENGTH) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad request: Content-Length with Transfer-Encoding",
        );
    }
    let hosts = headers.get_all(header::HOST).count();
    if hosts > 1 || (hosts == 0 && req.version() == Version::HTTP_11) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad request: HTTP/1.1 needs exactly one Host",
        );
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if te || length > BODY_LIMIT {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "content too large: requests take no body",
        );
    }
    None
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Files, `/healthz`, and `/metrics` unless it has a listener of its own.
    Public,
    /// `/metrics` only (`server.metrics_bind`).
    Metrics,
}

/// The application as served: `server::configure` behind `reject`, telling each request's
/// connection gate that it is being answered, and counting and logging each answer when
/// metrics or the access log are on.
pub fn app(
    state: web::Data<AppState>,
    role: Role,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let observed = (state.metrics.is_some() || state.access_log.is_some()).then(|| state.clone());
    App::new()
        .wrap_fn(move |req, srv| {
            if let Some(gate) = req.conn_data::<Rc<Gate>>() {
                gate.dispatched();
            }
            let seen = observed.as_ref().map(|state| Seen::of(state.clone(), &req));
            let outcome = match reject(req.request()) {
                Some(refusal) => Err(req.into_response(refusal)),
                None => Ok(srv.call(req)),
            };
            async move {
                let res = match outcome {
                    Ok(fut) => fut.await?,
                    Err(refused) => refused,
                };
                if let Some(seen) = seen {
                    seen.answered(&res);
                }
                Ok(res)
            }
        })
        .configure(move |cfg| match role {
            Role::Public => server::configure(state)(cfg),
            Role::Metrics => server::configure_metrics(state)(cfg),
        })
}

/// A request on its way, as metrics and the access log need it.
struct Seen {
    state: web::Data<AppState>,
    started: Instant,
    route: Route,
    head: bool,
    entry: Option<Entry>,
}

impl Seen {
    fn of(state: web::Data<AppState>, req: &ServiceRequest) -> Seen {
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let entry = state.access_log.is_some().then(|| Entry {
            time: chrono::Utc::now(),
            remote: req.peer_addr().map(|a| a.ip()),
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.path().to_string(), ToString::to_string),
            version: match req.version() {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            status: 0,
            bytes: 0,
            referer: header(header::REFERER),
            user_agent: header(header::USER_AGENT),
            micros: 0,
        });
        Seen {
            route: Route::of(req.path()),
            head: req.method() == actix_web::http::Method::HEAD,
            started: Instant::now(),
            entry,
            state,
        }
    }

    fn answered(self, res: &ServiceResponse) {
        let status = res.status().as_u16();
        let bytes = match res.response().body().size() {
            BodySize::Sized(n) if !self.head => n,
            _ => 0,
        };
        if let Some(metrics) = &self.state.metrics {
            let coding = match res
                .headers()
                .get(header::CONTENT_ENCODING)
                .map(|v| v.as_bytes())
            {
                Some(b"gzip") => Coding::Gzip,
                Some(b"br") => Coding::Brotli,
                _ => Coding::Identity,
            };
            metrics.request(self.route, status, coding, bytes);
        }
        if let (Some(log), Some(mut entry)) = (&self.state.access_log, self.entry) {
            entry.status = status;
            entry.bytes = bytes;
            entry.micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            log.record(&entry);
        }
    }
}

/// Binds like actix does (`SO_REUSEADDR`, backlog 2048).
fn bind(addr: &str) -> Result<std::net::TcpListener, Error> {
    let err = |source: std::io::Error| Error::Bind {
        bind: addr.to_string(),
        source,
    };
    let mut last = std::io::Error::other("no address");
    for sa in std::net::ToSocketAddrs::to_socket_addrs(addr).map_err(err)? {
        let attempt = (|| {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(sa),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.bind(&sa.into())?;
            socket.listen(2048)?;
            Ok::<_, std::io::Error>(std::net::TcpListener::from(socket))
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

/// Serves `state` on `bind` until SIGTERM/SIGINT, then shuts down within
/// `shutdown_timeout_s`. Calls `on_listening` with the bound address first.
pub fn run(
    config: &ServerConfig,
    bind_addr: &str,
    state: web::Data<AppState>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), Error> {
    let listener = bind(bind_addr)?;
    let local = listener.local_addr().map_err(Error::Io)?;
    let limits = Limits::new(
        config.max_connections,
        Duration::from_secs(config.write_timeout_s.max(1)),
    );
    let drain = Drain::new();
    let shutdown_timeout = config.shutdown_timeout_s;
    let keep_alive = Duration::from_secs(config.keep_alive_s);
    let _ = state.connections.set(limits.clone());
    let factory = {
        let (state, limits, drain) = (state.clone(), limits.clone(), drain.clone());
        move |role: Role| {
            let (state, limits, drain) = (state.clone(), limits.clone(), drain.clone());
            move || service(&state, role, &limits, &drain, local, keep_alive)
        }
    };
    let metrics_listener = match (&config.metrics_bind, config.metrics) {
        (Some(addr), true) => Some(bind(addr)?),
        _ => None,
    };
    actix_web::rt::System::new().block_on(async move {
        let server = actix_server::Server::build()
            // actix's own per-worker cap, kept above ours so that ours (global, logged) rules.
            .max_concurrent_connections(config.max_connections.saturating_add(1))
            .shutdown_timeout(shutdown_timeout)
            .disable_signals()
            .listen("feedsmith", listener, factory(Role::Public))
            .map_err(Error::Io)?;
        let server = match metrics_listener {
            Some(listener) => {
                let at = listener.local_addr().map_err(Error::Io)?;
                tracing::info!("metrics at http://{at}/metrics");
                server
                    .listen("feedsmith-metrics", listener, factory(Role::Metrics))
                    .map_err(Error::Io)?
            }
            None => server,
        }
        .run();
        on_listening(local);
        stop_on_signals(server.handle(), drain, shutdown_timeout)?;
        server.await.map_err(Error::Io)
    })
}

/// One worker's service for one listener: admit the connection (`accept`), then HTTP/1
/// with the app for `role`.
fn service(
    state: &web::Data<AppState>,
    role: Role,
    limits: &Arc<Limits>,
    drain: &Arc<Drain>,
    local: std::net::SocketAddr,
    keep_alive: Duration,
) -> impl actix_service::ServiceFactory<
    tokio::net::TcpStream,
    Config = (),
    Response = (),
    Error = actix_http::error::DispatchError,
    InitError = (),
> + use<> {
    let h1 = HttpService::<Guarded, _, _, _, _>::build()
        .keep_alive(if keep_alive.is_zero() {
            KeepAlive::Disabled
        } else {
            KeepAlive::Timeout(keep_alive)
        })
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(local)
        .on_connect_ext(|io: &Guarded, ext| {
            ext.insert(io.gate());
        })
        .h1(map_config(
            app(state.clone(), role)
                .into_factory()
                .map_err(|e: actix_web::Error| e.error_response()),
            |_| AppConfig::default(),
        ));
    let limits = limits.clone();
    let drain = drain.clone();
    fn_service(move |io: tokio::net::TcpStream| accept(io, &limits, &drain)).and_then(h1)
}

/// Admits one accepted connection within `server.max_connections`, wrapped so that its
/// memory and pipelining stay bounded (`conn::Guarded`); past the limit it is dropped
/// (closed).
fn accept(
    io: tokio::net::TcpStream,
    limits: &Arc<Limits>,
    drain: &Arc<Drain>,
) -> std::future::Ready<
    Result<(Guarded, Option<std::net::SocketAddr>), actix_http::error::DispatchError>,
> {
    std::future::ready(match limits.admit() {
        Some(permit) => {
            // Bodies leave in more than one write (see `server::Slices`): without this,
            // Nagle holds the last piece for the client's delayed ACK.
            let _ = io.set_nodelay(true);
            let io = Guarded::new(io, permit, drain.clone());
            let peer = io.peer_addr();
            Ok((io, peer))
        }
        None => Err(actix_http::error::DispatchError::Io(std::io::Error::other(
            "connection limit",
        ))),
    })
}

/// On SIGTERM or SIGINT: stop accepting, close idle keep-alive connections at once, give
/// in-flight requests up to `shutdown_timeout` seconds.
fn stop_on_signals(
    handle: actix_server::ServerHandle,
    drain: Arc<Drain>,
    shutdown_timeout: u64,
) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(Error::Io)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Error::Io)?;
        actix_web::rt::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                "{name}: shutting down (idle connections close now, in-flight requests \
                 get up to {shutdown_timeout} s)"
            );
            drain.begin();
            handle.stop(true).await;
        });
    }
    #[cfg(not(unix))]
    let _ = (handle, drain, shutdown_timeout);
    Ok(())
}
