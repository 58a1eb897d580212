//! Prometheus metrics (`GET /metrics`, text format): requests by route kind, status and
//! content coding, bytes sent, rebuilds, the snapshot's size and problems, memory held by
//! bodies, config reloads and the process itself. Label values come from small fixed sets
//! (never a tag or a path), so 2,000 tags do not mean 2,000 series. The per-request path
//! bumps pre-resolved counters: no label hashing or locking for the common cases.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// What kind of thing a request asked for (the `route` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Feed,
    Archive,
    Page,
    Opml,
    Healthz,
    Metrics,
    Other,
}

impl Route {
    const ALL: [Route; 7] = [
        Route::Feed,
        Route::Archive,
        Route::Page,
        Route::Opml,
        Route::Healthz,
        Route::Metrics,
        Route::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::Feed => "feed",
            Route::Archive => "archive",
            Route::Page => "page",
            Route::Opml => "opml",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Other => "other",
        }
    }

    /// The kind of a request path (prefix already stripped or not: only the end matters).
    pub fn of(path: &str) -> Route {
        if path.ends_with("/healthz") {
            Route::Healthz
        } else if path == "/metrics" {
            Route::Metrics
        } else if path.ends_with(".opml") {
            Route::Opml
        } else if path.contains("/archive/") {
            Route::Archive
        } else if path.ends_with(".xml") || path.ends_with(".json") {
            Route::Feed
        } else if path.ends_with('/') || path.ends_with(".html") {
            Route::Page
        } else {
            Route::Other
        }
    }
}

/// The content coding of a response (the `coding` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Coding {
    const ALL: [Coding; 3] = [Coding::Identity, Coding::Gzip, Coding::Brotli];

    fn label(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }
}

/// Statuses with pre-resolved counters; others are looked up by label.
const COMMON_STATUSES: [u16; 3] = [200, 304, 404];

/// What `/metrics` reports about the current snapshot and process, read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    pub generation: u64,
    pub posts: usize,
    pub feeds: usize,
    pub files: usize,
    pub problems: usize,
    pub gzip_bytes: usize,
    pub brotli_bytes: usize,
    pub identity_bytes: usize,
    pub brotli_queue: usize,
    pub connections: usize,
    /// WebSub publisher counters, when it runs.
    pub websub: Option<WebSub>,
}

/// WebSub publisher counters, read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSub {
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub coalesced: u64,
    pub dropped: u64,
    pub requests: u64,
    pub queued: u64,
}

/// Every metric of the process, in its own registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// `requests` for [route][status index][coding], `COMMON_STATUSES` only.
    request_fast: Vec<IntCounter>,
    /// `response_bytes` for [route][coding].
    bytes_fast: Vec<IntCounter>,
    rebuilds_ok: IntCounter,
    rebuilds_failed: IntCounter,
    rebuild_seconds: Histogram,
    rebuild_files: IntCounter,
    rebuild_documents: IntCounter,
    last_rebuild: IntGauge,
    generation: IntGauge,
    posts: IntGauge,
    feeds: IntGauge,
    files: IntGauge,
    problems: IntGauge,
    body_bytes: IntGaugeVec,
    brotli_queue: IntGauge,
    connections: IntGauge,
    config_loaded: IntGauge,
    config_reloads: IntCounterVec,
    access_log_dropped: IntCounter,
    websub_notifications: IntCounterVec,
    websub_requests: IntCounter,
    websub_queued: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| unreachable!("{name}: {e}"));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| unreachable!("{name}: {e}"));
    g
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("{name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| unreachable!("{name}: {e}"));
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric (names and labels are fixed here, so registering cannot
    /// fail) and the process collector (CPU, memory, file descriptors) where supported.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "feedsmith_http_requests_total",
            "HTTP requests answered, by route kind, status and content coding",
            &["route", "status", "coding"],
        );
        let response_bytes = counter_vec(
            &registry,
            "feedsmith_http_response_body_bytes_total",
            "Response body bytes sent (HEAD and 304 send none), by route kind and coding",
            &["route", "coding"],
        );
        let mut request_fast = Vec::new();
        let mut bytes_fast = Vec::new();
        for route in Route::ALL {
            for status in COMMON_STATUSES {
                for coding in Coding::ALL {
                    request_fast.push(requests.with_label_values(&[
                        route.label(),
                        &status.to_string(),
                        coding.label(),
                    ]));
                }
            }
            for coding in Coding::ALL {
                bytes_fast.push(response_bytes.with_label_values(&[route.label(), coding.label()]));
            }
        }
        let rebuilds = counter_vec(
            &registry,
            "feedsmith_rebuilds_total",
            "Rebuilds of the snapshot, by result",
            &["result"],
        );
        let rebuild_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "feedsmith_rebuild_duration_seconds",
                "Time from a batch of changes to the new snapshot published",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable!("histogram: {e}"));
        let _ = registry.register(Box::new(rebuild_seconds.clone()));
        let body_bytes = IntGaugeVec::new(
            Opts::new(
                "feedsmith_body_bytes",
                "Bytes of response bodies held in memory by the current snapshot, by coding",
            ),
            &["coding"],
        )
        .unwrap_or_else(|e| unreachable!("body_bytes: {e}"));
        let _ = registry.register(Box::new(body_bytes.clone()));
        let config_reloads = counter_vec(
            &registry,
            "feedsmith_config_reloads_total",
            "Config reloads on SIGHUP, by result (applied, rejected)",
            &["result"],
        );
        #[cfg(target_os = "linux")]
        {
            let _ = registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        Metrics {
            rebuilds_ok: rebuilds.with_label_values(&["ok"]),
            rebuilds_failed: rebuilds.with_label_values(&["failed"]),
            rebuild_seconds,
            rebuild_files: counter(
                &registry,
                "feedsmith_rebuild_files_changed_total",
                "Post files read again or removed by rebuilds",
            ),
            rebuild_documents: counter(
                &registry,
                "feedsmith_rebuild_documents_changed_total",
                "Served documents whose bytes changed (or that appeared or went) in rebuilds",
            ),
            last_rebuild: gauge(
                &registry,
                "feedsmith_last_successful_rebuild_timestamp_seconds",
                "Unix time of the last successful rebuild",
            ),
            generation: gauge(
                &registry,
                "feedsmith_snapshot_generation",
                "Generation of the snapshot being served",
            ),
            posts: gauge(&registry, "feedsmith_posts", "Visible posts"),
            feeds: gauge(
                &registry,
                "feedsmith_feeds",
                "Feeds (each in three formats)",
            ),
            files: gauge(&registry, "feedsmith_files", "Documents served"),
            problems: gauge(
                &registry,
                "feedsmith_problems",
                "Current problems (bad posts, slug collisions, the process's own); 0 when healthy",
            ),
            brotli_queue: gauge(
                &registry,
                "feedsmith_brotli_queue_length",
                "Files waiting for their brotli body",
            ),
            connections: gauge(
                &registry,
                "feedsmith_open_connections",
                "Open client connections",
            ),
            config_loaded: gauge(
                &registry,
                "feedsmith_config_loaded_timestamp_seconds",
                "Unix time at which the config in use was loaded",
            ),
            access_log_dropped: counter(
                &registry,
                "feedsmith_access_log_dropped_total",
                "Access log lines dropped because the log writer fell behind",
            ),
            websub_notifications: counter_vec(
                &registry,
                "feedsmith_websub_notifications_total",
                "WebSub publish notifications per hub and URL: sent (2xx), failed (given up), \
                 retried, coalesced (merged into one waiting), dropped (queue full)",
                &["result"],
            ),
            websub_requests: counter(
                &registry,
                "feedsmith_websub_requests_total",
                "Requests made to WebSub hubs",
            ),
            websub_queued: gauge(
                &registry,
                "feedsmith_websub_queued",
                "WebSub notifications waiting or in flight",
            ),
            config_reloads,
            body_bytes,
            requests,
            request_fast,
            bytes_fast,
            registry,
        }
    }

    /// Counts one answered request and its body bytes.
    pub fn request(&self, route: Route, status: u16, coding: Coding, body_bytes: u64) {
        let r = route as usize;
        let c = coding as usize;
        match COMMON_STATUSES.iter().position(|&s| s == status) {
            Some(s) => self.request_fast[(r * COMMON_STATUSES.len() + s) * 3 + c].inc(),
            None => self
                .requests
                .with_label_values(&[route.label(), &status.to_string(), coding.label()])
                .inc(),
        }
        if body_bytes > 0 {
            self.bytes_fast[r * 3 + c].inc_by(body_bytes);
        }
    }

    /// Records one rebuild.
    pub fn rebuilt(&self, elapsed: Duration, files_changed: usize, documents_changed: usize) {
        self.rebuilds_ok.inc();
        self.rebuild_seconds.observe(elapsed.as_secs_f64());
        self.rebuild_files.inc_by(files_changed as u64);
        self.rebuild_documents.inc_by(documents_changed as u64);
        self.last_rebuild.set(unix_now());
    }

    /// Records a failed rebuild.
    pub fn rebuild_failed(&self) {
        self.rebuilds_failed.inc();
    }

    /// Records a config (re)load: `applied` or rejected.
    pub fn config_loaded(&self, applied: bool) {
        if applied {
            self.config_loaded.set(unix_now());
        }
        self.config_reloads
            .with_label_values(&[if applied { "applied" } else { "rejected" }])
            .inc();
    }

    /// Counts an access log line dropped.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// The text exposition of every metric, with the gauges of `state` set first.
    pub fn render(&self, state: &State) -> Vec<u8> {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.generation
            .set(i64::try_from(state.generation).unwrap_or(i64::MAX));
        self.posts.set(as_i64(state.posts));
        self.feeds.set(as_i64(state.feeds));
        self.files.set(as_i64(state.files));
        self.problems.set(as_i64(state.problems));
        self.brotli_queue.set(as_i64(state.brotli_queue));
        self.connections.set(as_i64(state.connections));
        for (coding, bytes) in [
            ("gzip", state.gzip_bytes),
            ("br", state.brotli_bytes),
            ("identity", state.identity_bytes),
        ] {
            self.body_bytes
                .with_label_values(&[coding])
                .set(as_i64(bytes));
        }
        if let Some(w) = state.websub {
            // Counters are kept by the publisher; bring ours up to its values.
            let catch_up = |c: &IntCounter, value: u64| c.inc_by(value.saturating_sub(c.get()));
            for (result, value) in [
                ("sent", w.sent),
                ("failed", w.failed),
                ("retried", w.retried),
                ("coalesced", w.coalesced),
                ("dropped", w.dropped),
            ] {
                catch_up(
                    &self.websub_notifications.with_label_values(&[result]),
                    value,
                );
            }
            catch_up(&self.websub_requests, w.requests);
            self.websub_queued
                .set(i64::try_from(w.queued).unwrap_or(i64::MAX));
        }
        let mut out = Vec::new();
        // Encoding our own families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_a_small_fixed_set() {
        let cases = [
            ("/rss.xml", Route::Feed),
            ("/feeds/tags/x/feed.json", Route::Feed),
            ("/tags/x/archive/3.atom.xml", Route::Archive),
            ("/", Route::Page),
            ("/tags/x/", Route::Page),
            ("/index.html", Route::Page),
            ("/feeds.opml", Route::Opml),
            ("/healthz", Route::Healthz),
            ("/feeds/healthz", Route::Healthz),
            ("/metrics", Route::Metrics),
            ("/favicon.ico", Route::Other),
        ];
        for (path, route) in cases {
            assert_eq!(Route::of(path), route, "{path}");
        }
    }

    #[test]
    fn fast_counters_are_the_labelled_ones() {
        let m = Metrics::new();
        m.request(Route::Feed, 304, Coding::Gzip, 0);
        m.request(Route::Archive, 200, Coding::Brotli, 10);
        m.request(Route::Other, 405, Coding::Identity, 3);
        let labels = |r: &str, s: &str, c: &str| m.requests.with_label_values(&[r, s, c]).get();
        assert_eq!(labels("feed", "304", "gzip"), 1);
        assert_eq!(labels("archive", "200", "br"), 1);
        assert_eq!(labels("other", "405", "identity"), 1);
        assert_eq!(labels("feed", "200", "gzip"), 0);
        let text = String::from_utf8(m.render(&State::default())).expect("utf-8");
        assert!(
            text.contains(
                "feedsmith_http_response_body_bytes_total{coding=\"br\",route=\"archive\"} 10"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "feedsmith_http_requests_total{coding=\"gzip\",route=\"feed\",status=\"304\"} 1"
            ),
            "{text}"
        );
    }
}
