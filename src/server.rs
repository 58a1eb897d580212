//! HTTP: routes registered in one `configure()` (used by the binary and by the in-process
//! tests), a GET/HEAD handler that picks precomputed bytes from the current snapshot, and a
//! pure `decide()` for conditional requests and content negotiation. Never touches the
//! filesystem: a path either names a file of the snapshot or is a 404.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{
    self, AcceptEncoding, ContentEncoding, Encoding as HeaderEncoding, Header, HeaderValue,
    IfModifiedSince, IfNoneMatch, Preference, Quality,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, FixedOffset, Utc};

use arc_swap::ArcSwap;

use crate::access::AccessLog;
use crate::config::Config;
use crate::conn::Limits;
use crate::metrics::{self, Metrics};
use crate::publish::Health;
use crate::snapshot::{BrotliQueue, Encoding, Rendered, SnapshotStore};

/// Longest request path we look up; anything longer is a 404 without decoding.
const MAX_PATH: usize = 2048;

/// The settings of the handlers that a config reload may change, swapped as one.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `Cache-Control` of feed responses.
    pub cache_control: String,
    /// Budget of kept identity bodies (see `Rendered::identity_within`).
    pub identity_cache_bytes: usize,
    /// Path of `server.public_url` (`/feeds/`), under which every file is served as well as
    /// at the root; `/` when the feeds live at the root.
    pub prefix: String,
}

impl Settings {
    /// The settings `config` asks for.
    pub fn of(config: &Config) -> Self {
        Settings {
            cache_control: config.server.cache_control.clone(),
            identity_cache_bytes: config.server.identity_cache_bytes,
            prefix: config.server.public_url.path().to_string(),
        }
    }

    /// The `Cache-Control` value now: the configured one, unless a scheduled post is due
    /// before its max-age runs out.
    fn cache_control_now(&self, next_due: Option<DateTime<FixedOffset>>) -> HeaderValue {
        match next_due {
            None => HeaderValue::from_str(&self.cache_control),
            Some(_) => {
                HeaderValue::from_str(&cache_control(&self.cache_control, next_due, Utc::now()))
            }
        }
        .unwrap_or(HeaderValue::from_static("no-cache"))
    }
}

/// Shared state of the handlers.
pub struct AppState {
    pub store: Arc<SnapshotStore>,
    /// What a config reload can change (read once per request).
    pub settings: ArcSwap<Settings>,
    /// Where files that br-capable clients ask for are queued for brotli.
    pub brotli: Option<BrotliQueue>,
    /// Problems of the process itself (content dir missing, watcher fallback, failed
    /// rebuild, rejected config), reported by `/healthz` with the snapshot's.
    pub health: Arc<Health>,
    /// Metrics, when on; `/metrics` is answered on this listener when `metrics_here`.
    pub metrics: Option<Arc<Metrics>>,
    pub metrics_here: bool,
    /// The access log, when on.
    pub access_log: Option<AccessLog>,
    /// WebSub publisher counters, for `/metrics`.
    pub websub: Option<Arc<crate::websub::Stats>>,
    /// Open connections, for `/metrics` (set by the listener).
    pub connections: OnceLock<Arc<Limits>>,
}

impl AppState {
    /// State over `store` with the given `Cache-Control`, a 64 MiB identity budget, no
    /// brotli queue and no metrics.
    pub fn new(store: Arc<SnapshotStore>, cache_control: impl Into<String>) -> Self {
        AppState {
            store,
            settings: ArcSwap::from_pointee(Settings {
                cache_control: cache_control.into(),
                identity_cache_bytes: 64 << 20,
                prefix: "/".into(),
            }),
            brotli: None,
            health: Arc::default(),
            metrics: None,
            metrics_here: false,
            access_log: None,
            websub: None,
            connections: OnceLock::new(),
        }
    }

    /// Takes the settings of a reloaded config.
    pub fn reconfigure(&self, config: &Config) {
        self.settings.store(Arc::new(Settings::of(config)));
    }

    /// Changes one setting (tests and reloads).
    pub fn update(&self, change: impl FnOnce(&mut Settings)) {
        let mut next = Settings::clone(&self.settings.load());
        change(&mut next);
        self.settings.store(Arc::new(next));
    }

    /// What `/metrics` reports about the snapshot and the process now.
    fn metrics_state(&self) -> metrics::State {
        let snapshot = self.store.load();
        let (mut gzip, mut br) = (0, 0);
        for file in snapshot.files.values() {
            gzip += file.gzip.len();
            br += file.brotli_ready().map_or(0, |b| b.len());
        }
        metrics::State {
            generation: snapshot.generation,
            posts: snapshot.posts,
            feeds: snapshot.feeds,
            files: snapshot.files.len(),
            problems: snapshot.problems.len() + self.health.problems().len(),
            gzip_bytes: gzip,
            brotli_bytes: br,
            identity_bytes: crate::snapshot::identity_kept_bytes(),
            brotli_queue: self.brotli.as_ref().map_or(0, BrotliQueue::len),
            connections: self.connections.get().map_or(0, |l| l.open()),
            websub: self.websub.as_ref().map(|w| {
                let get =
                    |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                metrics::WebSub {
                    sent: get(&w.sent),
                    failed: get(&w.failed),
                    retried: get(&w.retried),
                    coalesced: get(&w.coalesced),
                    dropped: get(&w.dropped),
                    requests: get(&w.requests),
                    queued: get(&w.queued),
                }
            }),
        }
    }
}

/// Registers every route: the snapshot's files (feeds, OPML, pages), `/healthz` and, when
/// on here, `/metrics`; files and `/healthz` at the root and under the public URL's path.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state).default_service(web::to(serve_file));
    }
}

/// Only `/metrics` (for `server.metrics_bind`, a listener of its own).
pub fn configure_metrics(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state).default_service(web::to(
            |req: HttpRequest, state: web::Data<AppState>| async move {
                if req.path() == "/metrics" {
                    metrics_response(&req, &state)
                } else {
                    not_found()
                }
            },
        ));
    }
}

/// The request path without the public URL's path prefix (`/feeds/rss.xml` -> `/rss.xml`,
/// `/feeds` -> `/`); other paths as they are, so a proxy may strip the prefix or not.
pub fn strip_prefix<'a>(path: &'a str, prefix: &str) -> &'a str {
    let Some(bare) = prefix.strip_suffix('/').filter(|b| !b.is_empty()) else {
        return path;
    };
    match path.strip_prefix(bare) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// The outcome of a GET/HEAD for an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 304 Not Modified, with the validators of this encoding.
    NotModified(Encoding),
    /// 200 with the body in this encoding.
    Ok(Encoding),
}

/// Decides 304 vs 200 and the content coding, in RFC 9110 §13.2.2 order:
/// 1. If-None-Match (weak comparison, §13.1.2; `*` matches any current representation) -> 304;
/// 2. only when If-None-Match is absent, If-Modified-Since (§13.1.3): Last-Modified <= date -> 304;
/// 3. otherwise 200. The coding follows Accept-Encoding q-values (§12.5.3), preferring br then
///    gzip on ties, with identity as the fallback when nothing acceptable is left.
///
/// Malformed conditional headers arrive here as `None` and are ignored.
pub fn decide(
    if_none_match: Option<&IfNoneMatch>,
    if_modified_since: Option<&IfModifiedSince>,
    accept_encoding: Option<&AcceptEncoding>,
    file: &Rendered,
) -> Decision {
    let encoding = negotiate(accept_encoding, file.brotli_ready().is_some());
    let not_modified = match if_none_match {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => {
            // Weak comparison (RFC 9110 §8.8.3.2): opaque tags equal, `W/` ignored.
            let ours = [Encoding::Identity, Encoding::Gzip, Encoding::Brotli]
                .map(|e| file.etag(e).as_bytes());
            tags.iter().any(|tag| {
                ours.iter()
                    .any(|o| o.get(1..o.len().saturating_sub(1)) == Some(tag.tag().as_bytes()))
            })
        }
        None => if_modified_since.is_some_and(|ims| {
            let since: SystemTime = ims.0.into();
            file.last_modified <= since
        }),
    };
    if not_modified {
        Decision::NotModified(encoding)
    } else {
        Decision::Ok(encoding)
    }
}

/// The precomputed coding the client accepts best (RFC 9110 §12.5.3): a coding's weight is
/// its own q-value, else that of `*`, else 0 (identity: acceptable unless excluded). Highest weight
/// wins; ties go to br, then gzip, then identity. Nothing acceptable: identity. br is offered
/// only once its body is ready.
pub fn negotiate(accept_encoding: Option<&AcceptEncoding>, brotli_ready: bool) -> Encoding {
    let Some(accept) = accept_encoding else {
        return Encoding::Identity;
    };
    let weight = |coding: HeaderEncoding, default: Quality| {
        let explicit = accept
            .iter()
            .find(|qi| matches!(&qi.item, Preference::Specific(e) if *e == coding))
            .map(|qi| qi.quality);
        let any = || {
            accept
                .iter()
                .find(|qi| matches!(qi.item, Preference::Any))
                .map(|qi| qi.quality)
        };
        explicit.or_else(any).unwrap_or(default)
    };
    let brotli = if brotli_ready {
        weight(HeaderEncoding::brotli(), Quality::ZERO)
    } else {
        Quality::ZERO
    };
    let candidates = [
        (Encoding::Brotli, brotli),
        (
            Encoding::Gzip,
            weight(HeaderEncoding::gzip(), Quality::ZERO),
        ),
        // Unlisted identity stays acceptable, but below any coding the client asked for.
        (
            Encoding::Identity,
            weight(HeaderEncoding::identity(), Quality::MIN),
        ),
    ];
    candidates
        .iter()
        .filter(|(_, q)| *q > Quality::ZERO)
        // `max_by` keeps the last of equals: iterate in reverse preference order.
        .rev()
        .max_by(|a, b| a.1.cmp(&b.1))
        .map_or(Encoding::Identity, |(e, _)| *e)
}

/// `Cache-Control` for now: the configured value, with `max-age` shortened so that no cache
/// keeps a feed past the moment a scheduled post becomes visible.
pub fn cache_control(
    configured: &str,
    next_due: Option<DateTime<FixedOffset>>,
    now: DateTime<Utc>,
) -> String {
    let Some(due) = next_due else {
        return configured.to_string();
    };
    let left = (due.with_timezone(&Utc) - now).num_seconds().max(0);
    let mut seen = false;
    let directives: Vec<String> = configured
        .split(',')
        .map(|d| {
            let d = d.trim();
            match d
                .strip_prefix("max-age=")
                .and_then(|v| v.parse::<i64>().ok())
            {
                Some(age) => {
                    seen = true;
                    format!("max-age={}", age.min(left))
                }
                None => d.to_string(),
            }
        })
        .collect();
    let mut out = directives.join(", ");
    if !seen {
        out.push_str(&format!(", max-age={left}"));
    }
    out
}

fn content_encoding(encoding: Encoding) -> Option<ContentEncoding> {
    match encoding {
        Encoding::Identity => None,
        Encoding::Gzip => Some(ContentEncoding::Gzip),
        Encoding::Brotli => Some(ContentEncoding::Brotli),
    }
}

/// A header value from text we formatted ourselves (always valid; empty if not).
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""))
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("404 not found: the list of feeds is at /\n")
}

fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET, HEAD"))
        .content_type("text/plain; charset=utf-8")
        .body("405 method not allowed: use GET or HEAD\n")
}

/// 301 to the request path with a slash added, as a reference relative to the path itself
/// (`/tags/x` -> `./x/`), so it holds behind a proxy that strips a path prefix.
fn add_slash(
    req: &HttpRequest,
    settings: &Settings,
    next_due: Option<DateTime<FixedOffset>>,
) -> HttpResponse {
    let last = req.uri().path().rsplit('/').next().unwrap_or_default();
    let location = match req.uri().query() {
        Some(query) => format!("./{last}/?{query}"),
        None => format!("./{last}/"),
    };
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, header_value(&location)))
        .insert_header((header::CACHE_CONTROL, settings.cache_control_now(next_due)))
        .content_type("text/plain; charset=utf-8")
        .body(format!("301 moved permanently to {location}\n"))
}

/// Decodes a request path into a snapshot key, or `None` for anything suspicious.
pub fn snapshot_key(raw: &str) -> Option<String> {
    if raw.len() > MAX_PATH {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let path = decoded.strip_prefix('/')?;
    let bad = path.starts_with('/')
        || path.contains('\0')
        || path.contains('\\')
        || path.contains("//")
        || path.split('/').any(|seg| seg == "." || seg == "..");
    (!bad).then(|| path.to_string())
}

async fn serve_file(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    respond(&req, &state)
}

fn respond(req: &HttpRequest, state: &AppState) -> HttpResponse {
    let settings = state.settings.load();
    let path = strip_prefix(req.uri().path(), &settings.prefix);
    if path == "/healthz" {
        return healthz(req, state);
    }
    if path == "/metrics" && state.metrics_here {
        return metrics_response(req, state);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed();
    }
    let Some(key) = snapshot_key(path) else {
        return not_found();
    };
    // One snapshot per request: body and validators always agree.
    let snapshot = state.store.load();
    // A page's directory without its trailing slash: the page's relative links resolve
    // against the slash form, so send the client there (RFC 9110 §15.4.2).
    let is_dir = key.is_empty() || key.ends_with('/');
    let dir = if is_dir {
        key.clone()
    } else {
        format!("{key}/")
    };
    if !req.uri().path().ends_with('/')
        && (is_dir || !snapshot.files.contains_key(&key))
        && snapshot.get(&dir).is_some()
    {
        return add_slash(req, &settings, snapshot.next_due);
    }
    let Some(file) = snapshot.get(&key) else {
        return not_found();
    };
    let accept = AcceptEncoding::parse(req)
        .ok()
        .filter(|_| req.headers().contains_key(header::ACCEPT_ENCODING));
    let decision = decide(
        IfNoneMatch::parse(req)
            .ok()
            .filter(|_| req.headers().contains_key(header::IF_NONE_MATCH))
            .as_ref(),
        IfModifiedSince::parse(req).ok().as_ref(),
        accept.as_ref(),
        file,
    );
    // A client that would take brotli gets gzip until the background thread has made it.
    if file.brotli_ready().is_none()
        && let Some(queue) = &state.brotli
        && negotiate(accept.as_ref(), true) == Encoding::Brotli
        && file.want_brotli()
    {
        queue.send(file.clone());
    }
    let (status, encoding) = match decision {
        Decision::NotModified(e) => (StatusCode::NOT_MODIFIED, e),
        Decision::Ok(e) => (StatusCode::OK, e),
    };
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header((header::ETAG, header_value(file.etag(encoding))))
        .insert_header((
            header::LAST_MODIFIED,
            header_value(file.last_modified_http()),
        ))
        .insert_header((
            header::CACHE_CONTROL,
            settings.cache_control_now(snapshot.next_due),
        ))
        .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")));
    // WebSub §4 discovery (hubs and self), formatted at build time; feed documents only.
    if let Some(link) = file.link() {
        builder.insert_header((header::LINK, header_value(link)));
    }
    if status == StatusCode::NOT_MODIFIED {
        return builder.finish();
    }
    builder.insert_header((header::CONTENT_TYPE, file.content_type));
    if let Some(ce) = content_encoding(encoding) {
        builder.insert_header((header::CONTENT_ENCODING, ce));
    }
    builder.body(Slices::new(match encoding {
        Encoding::Identity => file.identity_within(settings.identity_cache_bytes),
        _ => file
            .body(encoding)
            .unwrap_or_else(|| file.identity_within(settings.identity_cache_bytes)),
    }))
}

/// Largest piece of a body handed to the HTTP layer at once. 16 KiB cost a third of the
/// throughput of uncompressed 52 KB feeds (more pieces, more writes); 64 KiB sends most
/// feeds in one piece and still bounds what a client that does not read can pin.
pub const BODY_SLICE: usize = 64 * 1024;

/// A precomputed body handed to the HTTP layer in slices of at most `BODY_SLICE` bytes
/// (zero-copy). actix-http copies body pieces into its per-connection write buffer and
/// stops taking more only once that buffer passes 32 KiB, so with whole bodies a client
/// that does not read could pin 32 KiB plus a whole feed per connection; with slices, at
/// most 32 KiB plus one slice. Same bytes and `Content-Length` on the wire.
pub struct Slices {
    rest: web::Bytes,
    len: u64,
}

impl Slices {
    pub fn new(body: web::Bytes) -> Self {
        Slices {
            len: body.len() as u64,
            rest: body,
        }
    }
}

impl MessageBody for Slices {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len)
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = this.rest.len().min(BODY_SLICE);
        std::task::Poll::Ready(Some(Ok(this.rest.split_to(n))))
    }

    fn try_into_bytes(self) -> Result<web::Bytes, Self> {
        // Small bodies go through actix's whole-body path, as before.
        if self.rest.len() <= BODY_SLICE && self.rest.len() as u64 == self.len {
            Ok(self.rest)
        } else {
            Err(self)
        }
    }
}

/// `/metrics`: the Prometheus text format.
fn metrics_response(req: &HttpRequest, state: &AppState) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed();
    }
    let Some(metrics) = &state.metrics else {
        return not_found();
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(metrics::CONTENT_TYPE)
        .body(metrics.render(&state.metrics_state()))
}

fn healthz(req: &HttpRequest, state: &AppState) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed();
    }
    let snapshot = state.store.load();
    // The process's own problems first: they say why the feeds may be stale.
    let mut problems = state.health.problems();
    problems.extend(snapshot.problems.iter().cloned());
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let body = serde_json::json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "generation": snapshot.generation,
        "posts": snapshot.posts,
        "feeds": snapshot.feeds,
        "files": snapshot.files.len(),
        "problems": problems,
        "config": state.health.config(),
    });
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_key_rejects_traversal_and_accepts_unicode() {
        let cases = [
            ("/rss.xml", Some("rss.xml")),
            ("/", Some("")),
            (
                "/tags/%E5%86%85%E6%A0%B8/rss.xml",
                Some("tags/内核/rss.xml"),
            ),
            ("/../etc/passwd", None),
            ("/tags/%2e%2e/rss.xml", None),
            ("//rss.xml", None),
            ("/a%00b", None),
            ("/%ff", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(snapshot_key(raw).as_deref(), expected, "{raw}");
        }
        assert_eq!(snapshot_key(&format!("/{}", "a".repeat(5000))), None);
    }

    #[test]
    fn public_prefix_is_optional() {
        let cases = [
            ("/feeds/rss.xml", "/feeds/", "/rss.xml"),
            ("/feeds/", "/feeds/", "/"),
            ("/feeds", "/feeds/", "/"),
            ("/rss.xml", "/feeds/", "/rss.xml"),
            ("/feedsx/rss.xml", "/feeds/", "/feedsx/rss.xml"),
            ("/a/b/tags/x/rss.xml", "/a/b/", "/tags/x/rss.xml"),
            ("/rss.xml", "/", "/rss.xml"),
        ];
        for (path, prefix, expected) in cases {
            assert_eq!(
                strip_prefix(path, prefix),
                expected,
                "{path} under {prefix}"
            );
        }
    }

    #[test]
    fn cache_control_never_outlives_the_next_scheduled_post() {
        let now = Utc::now();
        let due = (now + chrono::Duration::seconds(60)).fixed_offset();
        let cc = cache_control(
            "public, max-age=300, stale-while-revalidate=60",
            Some(due),
            now,
        );
        assert_eq!(cc, "public, max-age=60, stale-while-revalidate=60");
        let far = (now + chrono::Duration::days(1)).fixed_offset();
        let cc = cache_control("public, max-age=300", Some(far), now);
        assert_eq!(cc, "public, max-age=300");
        assert_eq!(
            cache_control("public, max-age=300", None, now),
            "public, max-age=300"
        );
    }
}
