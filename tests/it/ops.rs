//! Operating the real binary: `/metrics` (counters move with requests and rebuilds, series
//! stay bounded, a listener of its own), config reload on SIGHUP (applied without dropping a
//! request in flight; an invalid config rejected while the old one keeps serving) and the
//! access log.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{self, Bin, Server, Site};

/// `name{labels}` -> value, from the Prometheus text format.
fn scrape(server: &Server, path: &str) -> BTreeMap<String, f64> {
    let (status, _, body) = support::fetch(&server.url(path));
    assert_eq!(status, 200);
    let text = String::from_utf8(body).expect("utf-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("sample line");
            (name.to_string(), value.parse().expect("number"))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

fn healthz(server: &Server) -> serde_json::Value {
    let (_, _, body) = support::fetch(&server.url("healthz"));
    serde_json::from_slice(&body).expect("healthz JSON")
}

fn site_with_tags(n: usize) -> Site {
    let site = Site::new();
    for i in 0..n {
        site.post(
            &format!("p{i}.md"),
            &format!("Post {i}"),
            &format!("2024-01-{:02}", i % 28 + 1),
            &[&format!("tag-{i}"), "common"],
            "body",
        );
    }
    site
}

fn serve(site: &Site, extra: &str) -> Server {
    Bin::new()
        .config_text(&support::config_text(site.dir(), extra))
        .env("RUST_LOG", "warn")
        .timeout(Duration::from_secs(60))
        .serve()
}

#[test]
fn metrics_counters_move_with_requests_and_rebuilds_and_series_stay_bounded() {
    let site = site_with_tags(60);
    let server = serve(&site, "[watch]\ndebounce_ms = 20\n");
    let before = scrape(&server, "metrics");
    let generation = value(&before, "feedsmith_snapshot_generation");
    assert_eq!(generation, 1.0);
    assert_eq!(value(&before, "feedsmith_posts"), 60.0);
    assert_eq!(value(&before, "feedsmith_problems"), 0.0);
    assert!(value(&before, "feedsmith_body_bytes{coding=\"gzip\"}") > 0.0);

    let (_, etag, body) = support::fetch(&server.url("tags/tag-7/rss.xml"));
    let resp = ureq::get(&server.url("rss.xml"))
        .header("If-None-Match", "\"nope\"")
        .call()
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let resp = ureq::get(&server.url("tags/tag-7/rss.xml"))
        .header("If-None-Match", &etag)
        .call()
        .expect("conditional GET");
    assert_eq!(resp.status(), 304);
    let missing = ureq::get(&server.url("nope")).call();
    assert!(missing.is_err(), "404 is an error for ureq");
    site.post("new.md", "New", "2024-02-01", &["common"], "new");
    support::eventually(10, "the new post is published", || {
        let h = healthz(&server);
        (h["generation"].as_u64() == Some(2)).then_some(())
    });

    let after = scrape(&server, "metrics");
    let delta = |name: &str| value(&after, name) - value(&before, name);
    assert_eq!(
        delta("feedsmith_http_requests_total{coding=\"identity\",route=\"feed\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        delta("feedsmith_http_requests_total{coding=\"identity\",route=\"feed\",status=\"304\"}"),
        1.0
    );
    assert_eq!(
        delta("feedsmith_http_requests_total{coding=\"identity\",route=\"other\",status=\"404\"}"),
        1.0
    );
    assert!(
        delta("feedsmith_http_response_body_bytes_total{coding=\"identity\",route=\"feed\"}")
            >= body.len() as f64
    );
    assert_eq!(delta("feedsmith_rebuilds_total{result=\"ok\"}"), 1.0);
    assert_eq!(delta("feedsmith_rebuild_files_changed_total"), 1.0);
    assert!(delta("feedsmith_rebuild_documents_changed_total") >= 3.0);
    assert_eq!(delta("feedsmith_rebuild_duration_seconds_count"), 1.0);
    assert_eq!(value(&after, "feedsmith_snapshot_generation"), 2.0);
    assert_eq!(value(&after, "feedsmith_posts"), 61.0);
    assert!(
        value(
            &after,
            "feedsmith_last_successful_rebuild_timestamp_seconds"
        ) > 1.7e9
    );
    // No series per tag or path: 61 tags, the same families and a fixed label set.
    assert!(after.keys().all(|k| !k.contains("tag-")), "a label per tag");
    let requests = after
        .keys()
        .filter(|k| k.starts_with("feedsmith_http_requests_total"))
        .count();
    assert!(requests <= 7 * 3 * 4, "{requests} request series");
}

#[test]
fn metrics_can_have_a_listener_of_their_own() {
    let site = site_with_tags(2);
    let port = support::free_port();
    let server = serve(
        &site,
        &format!("[server]\nmetrics_bind = \"127.0.0.1:{port}\"\n"),
    );
    assert!(
        ureq::get(&server.url("metrics")).call().is_err(),
        "not public"
    );
    let metrics = support::eventually(10, "the metrics listener answers", || {
        ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .ok()
    });
    assert_eq!(metrics.status(), 200);
    assert!(
        ureq::get(&format!("http://127.0.0.1:{port}/rss.xml"))
            .call()
            .is_err(),
        "feeds are not on the metrics listener"
    );
}

/// Sends the head of a request without its final empty line.
fn half_request(server: &Server, path: &str) -> TcpStream {
    let addr = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: x\r\n").expect("send head");
    stream
}

fn cache_control(server: &Server, path: &str) -> String {
    let resp = ureq::get(&server.url(path)).call().expect("GET");
    resp.headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn items(server: &Server) -> usize {
    let (_, _, body) = support::fetch(&server.url("rss.xml"));
    String::from_utf8(body)
        .expect("utf-8")
        .matches("<item>")
        .count()
}

#[test]
fn sighup_applies_a_valid_config_without_dropping_a_request_in_flight() {
    let site = site_with_tags(5);
    let config = |cc: &str, limit: usize| {
        support::config_text(
            site.dir(),
            &format!("[server]\ncache_control = \"{cc}\"\n[feed]\nlimit = {limit}\n"),
        )
    };
    let bin = Bin::new()
        .config_text(&config("max-age=300", 20))
        .env("RUST_LOG", "warn")
        .timeout(Duration::from_secs(60));
    let config_path = bin.config_path().to_path_buf();
    let server = bin.serve();
    assert_eq!(cache_control(&server, "rss.xml"), "max-age=300");
    assert_eq!(items(&server), 5);
    let loaded_at = healthz(&server)["config"]["loaded_at"].clone();
    assert!(loaded_at.is_string(), "{loaded_at}");

    let mut in_flight = half_request(&server, "atom.xml");
    std::fs::write(&config_path, config("max-age=7", 3)).expect("new config");
    // `loaded_at` has a one-second resolution.
    std::thread::sleep(Duration::from_millis(1100));
    server.signal("-HUP");
    support::eventually(10, "the new config serves", || {
        (cache_control(&server, "rss.xml") == "max-age=7" && items(&server) == 3).then_some(())
    });
    let health = healthz(&server);
    assert_eq!(health["status"], "ok", "{health}");
    assert_ne!(health["config"]["loaded_at"], loaded_at);

    // The request begun before the reload is answered, under the new config.
    in_flight.write_all(b"\r\n").expect("finish the request");
    let mut head = [0u8; 512];
    let n = in_flight.read(&mut head).expect("response");
    let head = String::from_utf8_lossy(&head[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("cache-control: max-age=7"), "{head}");
}

#[test]
fn sighup_rejects_an_invalid_config_and_keeps_serving_with_the_old_one() {
    let site = site_with_tags(3);
    let good = support::config_text(site.dir(), "[server]\ncache_control = \"max-age=60\"\n");
    let bin = Bin::new()
        .config_text(&good)
        .env("RUST_LOG", "warn")
        .timeout(Duration::from_secs(60));
    let config_path = bin.config_path().to_path_buf();
    let server = bin.serve();
    let bad = good.replace("max-age=60", "max-age=1") + "[feed]\nlimit = 0\n";
    std::fs::write(&config_path, &bad).expect("bad config");
    let check = Bin::new().config(&config_path).arg("check").run();
    check.assert_code(2);
    let printed = check
        .stderr
        .trim()
        .strip_prefix("error: ")
        .expect("an error line")
        .to_string();
    server.signal("-HUP");
    let health = support::eventually(10, "the reload is rejected", || {
        let h = healthz(&server);
        h["config"]["rejected"].is_object().then_some(h)
    });
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["config"]["rejected"]["error"], printed.as_str());
    assert!(
        health["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains(&printed)),
        "{health}"
    );
    assert_eq!(cache_control(&server, "rss.xml"), "max-age=60");
    assert_eq!(items(&server), 3);
    let metrics = scrape(&server, "metrics");
    assert_eq!(
        value(
            &metrics,
            "feedsmith_config_reloads_total{result=\"rejected\"}"
        ),
        1.0
    );

    // Fixed: applied, and healthy again.
    std::fs::write(&config_path, good.replace("max-age=60", "max-age=5")).expect("fix");
    server.signal("-HUP");
    support::eventually(10, "the fixed config serves", || {
        (cache_control(&server, "rss.xml") == "max-age=5").then_some(())
    });
    let health = healthz(&server);
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["config"]["rejected"].is_null());
}

#[test]
fn the_access_log_writes_combined_lines_to_its_file() {
    let site = site_with_tags(2);
    let log = tempfile::tempdir().expect("tempdir");
    let path = log.path().join("access.log");
    let server = serve(
        &site,
        &format!(
            "[server]\naccess_log = \"combined\"\naccess_log_file = {:?}\n",
            path.to_string_lossy()
        ),
    );
    ureq::get(&server.url("tags/tag-1/atom.xml"))
        .header("User-Agent", "Reader \"1\"")
        .call()
        .expect("GET");
    let text = support::eventually(10, "the line is written", || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains("atom.xml"))
    });
    let line = text.lines().find(|l| l.contains("atom.xml")).expect("line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("\"GET /tags/tag-1/atom.xml HTTP/1.1\" 200 "),
        "{line}"
    );
    assert!(line.ends_with("\"-\" \"Reader \\\"1\\\"\""), "{line}");
}
