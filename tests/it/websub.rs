//! WebSub publishing against a loopback hub receiver (`Receiver`: a tiny HTTP server on
//! 127.0.0.1:0 that records each publish request and checks its protocol): which feeds are
//! pinged after a change and that unchanged rebuilds ping nobody, coalescing under a burst,
//! retries and giving up, a hub that never answers, `export --ping`, and the hub/self links
//! in every format and the `Link` header.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{App, test as atest, web};
use arc_swap::ArcSwap;
use feedsmith::publish::Publisher;
use feedsmith::server::{self, AppState};
use feedsmith::snapshot::Snapshot;
use feedsmith::watch;
use feedsmith::websub::Stats;

use crate::support::{self, Bin, Site};

// ---- the loopback hub ------------------------------------------------------------------

/// One request the hub received.
#[derive(Debug, Clone)]
struct Ping {
    method: String,
    path: String,
    content_type: String,
    form: Vec<(String, String)>,
}

impl Ping {
    /// The topic URLs it announces, after checking it is a well-formed publish request:
    /// `POST`, form-encoded, `hub.mode=publish` once, each topic as `hub.url` and as
    /// `hub.topic`.
    fn topics(&self) -> Vec<String> {
        assert_eq!(self.method, "POST", "{self:?}");
        assert_eq!(self.path, "/hub", "{self:?}");
        assert_eq!(
            self.content_type, "application/x-www-form-urlencoded",
            "{self:?}"
        );
        let values = |key: &str| -> Vec<String> {
            self.form
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(values("hub.mode"), ["publish"], "{self:?}");
        let urls = values("hub.url");
        assert!(!urls.is_empty(), "no hub.url: {self:?}");
        assert_eq!(values("hub.topic"), urls, "hub.topic repeats hub.url");
        assert!(
            self.form
                .iter()
                .all(|(k, _)| ["hub.mode", "hub.url", "hub.topic"].contains(&k.as_str())),
            "{self:?}"
        );
        urls
    }
}

/// How the hub answers a request.
enum Answer {
    Status(u16, &'static str),
    /// Never answer (until the receiver is dropped).
    Hang,
}

type Behaviour = dyn Fn(&Ping) -> Answer + Send + Sync;

/// A WebSub hub on 127.0.0.1:0 that records every request; stopped when dropped.
struct Receiver {
    url: String,
    pings: Arc<Mutex<Vec<Ping>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Receiver {
    fn start(behaviour: impl Fn(&Ping) -> Answer + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let pings = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour: Arc<Behaviour> = Arc::new(behaviour);
        let (log, halt) = (pings.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (log, halt, behaviour) = (log.clone(), halt.clone(), behaviour.clone());
                std::thread::spawn(move || answer(conn, &log, &halt, &*behaviour));
            }
        });
        Receiver {
            url: format!("http://{addr}/hub"),
            pings,
            stop,
            addr,
        }
    }

    /// A hub that accepts everything (204).
    fn ok() -> Receiver {
        Receiver::start(|_| Answer::Status(204, ""))
    }

    fn pings(&self) -> Vec<Ping> {
        self.pings.lock().expect("log").clone()
    }

    /// How often each topic URL was announced.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for ping in self.pings() {
            for topic in ping.topics() {
                *counts.entry(topic).or_insert(0) += 1;
            }
        }
        counts
    }

    fn topics(&self) -> BTreeSet<String> {
        self.counts().into_keys().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request (bounded), records it, answers it as `behaviour` says, closes.
fn answer(mut conn: TcpStream, log: &Mutex<Vec<Ping>>, stop: &AtomicBool, behaviour: &Behaviour) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(reader_conn) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader_conn.take(1 << 20));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let ping = Ping {
        method,
        path,
        content_type,
        form: url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    };
    log.lock().expect("log").push(ping.clone());
    match behaviour(&ping) {
        Answer::Status(code, text) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {code} Hub\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
        Answer::Hang => {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// `[websub]` with these hubs (`batch` ones also in `batch_hubs`) and fast retries.
fn websub_toml(hubs: &[&Receiver], batch: &[&Receiver], extra: &str) -> String {
    let list = |r: &[&Receiver]| {
        r.iter()
            .map(|r| format!("{:?}", r.url))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[websub]\nhubs = [{}]\nbatch_hubs = [{}]\nretry_delay_ms = 10\n{extra}\n",
        list(hubs),
        list(batch)
    )
}

/// The topics (public URLs) of the feed documents whose bytes differ between two snapshots,
/// compared by content (not by how the build reuses files).
fn changed(before: &Snapshot, after: &Snapshot) -> BTreeSet<String> {
    after
        .files
        .iter()
        .filter(|(path, file)| {
            before
                .files
                .get(*path)
                .is_none_or(|old| old.decompress() != file.decompress())
        })
        .filter_map(|(_, file)| file.topic().map(str::to_string))
        .collect()
}

fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
    Stats::get(counter)
}

/// Rewrites a file with the same bytes (a new mtime, nothing else).
fn touch(path: &Path) {
    let bytes = std::fs::read(path).expect("read");
    std::fs::write(path, bytes).expect("rewrite");
}

fn rebuild(publisher: &mut Publisher, paths: &[&str]) {
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    publisher.rebuild(Some(&paths)).expect("rebuild");
}

// ---- what is pinged --------------------------------------------------------------------

#[test]
fn a_change_pings_exactly_the_changed_feeds_and_an_unchanged_rebuild_pings_nobody() {
    let (single, batch) = (Receiver::ok(), Receiver::ok());
    let site = Site::new();
    site.post("news/a.md", "A", "2024-01-01", &["alpha"], "a")
        .post("blog/b.md", "B", "2024-01-02", &["beta"], "b");
    let config = site.config(&websub_toml(&[&single, &batch], &[&batch], ""));
    let mut publisher = Publisher::new(config).with_websub();
    let stats = publisher.websub_stats().expect("hubs are configured");
    publisher.rebuild(None).expect("first build");
    assert_eq!(get(&stats.queued) + get(&stats.requests), 0, "first build");

    let store = publisher.store();
    let before = store.load_full();
    site.post("blog/b.md", "B edited", "2024-01-02", &["beta"], "b");
    rebuild(&mut publisher, &["blog/b.md"]);
    let expected = changed(&before, &store.load());
    let expected_paths: BTreeSet<&str> = expected
        .iter()
        .map(|t| t.trim_start_matches("http://localhost:8080/"))
        .collect();
    for path in ["rss.xml", "tags/beta/feed.json", "categories/blog/atom.xml"] {
        assert!(expected_paths.contains(path), "{expected_paths:?}");
    }
    assert!(
        expected_paths.iter().all(|p| !p.contains("alpha")),
        "{expected_paths:?}"
    );
    support::eventually(20, "both hubs answered", || {
        (get(&stats.sent) == 2 * expected.len() as u64).then_some(())
    });
    for hub in [&single, &batch] {
        assert_eq!(hub.topics(), expected);
        assert!(hub.counts().values().all(|&n| n == 1), "{:?}", hub.counts());
    }
    assert_eq!(
        single.pings().len(),
        expected.len(),
        "one topic per request"
    );
    assert_eq!(batch.pings().len(), 1, "one batch");

    // A touched file, a full reload (SIGHUP) and a rescan change no bytes: nothing is queued.
    let requests = get(&stats.requests);
    touch(&site.dir().join("news/a.md"));
    rebuild(&mut publisher, &["news/a.md"]);
    publisher.rebuild(None).expect("full reload");
    publisher.rescan().expect("rescan");
    assert_eq!(store.load().generation, before.generation + 4);
    assert_eq!(get(&stats.queued), 0);
    assert_eq!(get(&stats.requests), requests);
    assert_eq!(get(&stats.failed) + get(&stats.coalesced), 0);
}

#[test]
fn a_burst_of_a_thousand_rebuilds_leaves_at_most_one_waiting_ping_per_url_per_hub() {
    // The hub holds every request until released, so pings pile up behind the first ones.
    let gate = Arc::new(AtomicBool::new(false));
    let open = gate.clone();
    // Opened on every way out, so a failing test leaves no request held.
    struct OpenOnDrop(Arc<AtomicBool>);
    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _open_on_drop = OpenOnDrop(gate.clone());
    let hub = Receiver::start(move |_| {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !open.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Answer::Status(202, "")
    });
    let site = Site::new();
    for i in 0..10 {
        site.post(
            &format!("p{i}.md"),
            "P",
            "2024-01-01",
            &[&format!("t{i}")],
            "0",
        );
    }
    // No timeout while the hub holds requests (a timed-out request is retried: a real second
    // request, which would blur what this test counts).
    let config = site.config(&websub_toml(
        &[&hub],
        &[],
        "concurrency = 4\ntimeout_s = 600",
    ));
    let mut publisher = Publisher::new(config).with_websub();
    let stats = publisher.websub_stats().expect("hubs");
    publisher.rebuild(None).expect("first build");
    let store = publisher.store();
    let first = store.load_full();
    for n in 1..=1000 {
        let i = n % 10;
        site.post(
            &format!("p{i}.md"),
            "P",
            "2024-01-01",
            &[&format!("t{i}")],
            &n.to_string(),
        );
        rebuild(&mut publisher, &[&format!("p{i}.md")]);
    }
    let expected = changed(&first, &store.load());
    let topics = expected.len() as u64;
    assert_eq!(topics, 3 * (1 + 10), "the global feed and ten tag feeds");
    // Waiting: each URL once, plus the (at most 4) held by the stalled hub.
    assert!(get(&stats.queued) <= topics + 4, "{}", get(&stats.queued));
    assert!(get(&stats.coalesced) > 0);
    gate.store(true, Ordering::Relaxed);
    support::eventually(30, "every ping answered", || {
        (get(&stats.queued) == 0).then_some(())
    });
    let counts = hub.counts();
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected);
    // At most one in flight when the burst started, and one waiting after it.
    assert!(counts.values().all(|&n| n <= 2), "{counts:?}");
    assert_eq!(get(&stats.sent), counts.values().sum::<usize>() as u64);
    assert_eq!(get(&stats.failed) + get(&stats.dropped), 0);
}

#[test]
fn a_burst_of_a_thousand_new_files_pings_each_changed_url_at_most_once_per_rebuild() {
    let hub = Receiver::ok();
    let site = Site::new();
    site.post("old.md", "Old", "2024-01-01", &["old"], "x");
    let config = site.config(&format!(
        "[watch]\ndebounce_ms = 50\n{}",
        websub_toml(&[&hub], &[], "")
    ));
    let mut publisher = Publisher::new(config).with_websub();
    let stats = publisher.websub_stats().expect("hubs");
    publisher.rebuild(None).expect("first build");
    let store = publisher.store();
    let first = store.load_full();
    let handle = watch::spawn(publisher).expect("watcher");
    for i in 0..1000 {
        site.post(
            &format!("burst/p{i:04}.md"),
            "P",
            "2024-02-01",
            &["burst"],
            "y",
        );
    }
    support::eventually(60, "every new post published", || {
        (store.load().posts == 1001).then_some(())
    });
    // A later rebuild can only be one that changes no bytes.
    let expected = changed(&first, &store.load());
    support::eventually(30, "every changed feed pinged", || {
        (get(&stats.queued) == 0 && hub.topics() == expected).then_some(())
    });
    drop(handle);
    let last = store.load_full();
    let rebuilds = (last.generation - first.generation) as usize;
    let counts = hub.counts();
    assert!(
        counts.values().all(|&n| n <= rebuilds),
        "{rebuilds} rebuilds: {counts:?}"
    );
    assert_eq!(get(&stats.sent), counts.values().sum::<usize>() as u64);
    assert!(!counts.keys().any(|t| t.contains("/old/")), "{counts:?}");
}

#[test]
fn a_reload_that_adds_or_removes_hubs_pings_only_the_hubs_configured_now() {
    let hub = Receiver::ok();
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["t"], "x");
    let without = site.config("");
    let with = site.config(&websub_toml(&[&hub], &[], ""));
    let mut publisher = Publisher::new(without.clone()).with_websub();
    let stats = publisher.websub_stats().expect("with_websub");
    publisher.rebuild(None).expect("first build");
    let store = publisher.store();
    let before = store.load_full();

    // Hubs added: every feed document now links them, so every one changed and is pinged.
    publisher.reconfigure(with);
    publisher.rebuild(None).expect("reload");
    let expected = changed(&before, &store.load());
    assert_eq!(expected.len(), 6, "global and tag feeds x 3 formats");
    support::eventually(20, "pinged after the reload", || {
        (get(&stats.sent) == 6).then_some(())
    });
    assert_eq!(hub.topics(), expected);

    // Hubs removed: the documents change again, and nobody is told.
    let requests = get(&stats.requests);
    publisher.reconfigure(without);
    publisher.rebuild(None).expect("reload");
    assert!(store.load().files["rss.xml"].link().is_none());
    assert_eq!(get(&stats.queued), 0);
    assert_eq!(get(&stats.requests), requests);
}

// ---- failing and silent hubs -----------------------------------------------------------

#[test]
fn a_failing_hub_is_retried_then_given_up_with_a_log_line() {
    let hub = Receiver::start(|_| Answer::Status(500, "hub is down"));
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["t"], "x");
    let out = tempfile::tempdir().expect("out");
    let config = support::config_text(site.dir(), &websub_toml(&[&hub], &[], "retries = 2"));
    let ran = Bin::new()
        .config_text(&config)
        .arg("export")
        .arg("--out")
        .arg(out.path())
        .arg("--ping")
        .run();
    ran.assert_code(1);
    let counts = hub.counts();
    assert_eq!(
        counts.len(),
        6,
        "global and tag feeds x 3 formats: {counts:?}"
    );
    assert!(
        counts.values().all(|&n| n == 3),
        "1 + 2 retries: {counts:?}"
    );
    let give_ups: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.contains("giving up on hub"))
        .collect();
    assert_eq!(give_ups.len(), 6, "{}", ran.stderr);
    assert!(
        give_ups[0].contains("after 3 attempt(s)")
            && give_ups[0].contains("500 Internal Server Error: hub is down"),
        "{}",
        give_ups[0]
    );
    assert!(
        ran.stdout.contains("0 notified, 6 failed"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_refusing_hub_is_not_retried_and_its_answer_is_logged() {
    let hub = Receiver::start(|_| Answer::Status(400, "unknown topic\nline two"));
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["t"], "x");
    let out = tempfile::tempdir().expect("out");
    let config = support::config_text(site.dir(), &websub_toml(&[&hub], &[&hub], ""));
    let ran = Bin::new()
        .config_text(&config)
        .arg("export")
        .arg("--out")
        .arg(out.path())
        .arg("--ping")
        .run();
    ran.assert_code(1);
    assert_eq!(hub.pings().len(), 1, "one batch, no retry");
    assert!(
        ran.stderr
            .contains("refused the notification of 6 topic URLs")
            && ran
                .stderr
                .contains("400 Bad Request: unknown topic line two"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_hub_that_never_answers_delays_neither_rebuilds_nor_requests() {
    let hub = Receiver::start(|_| Answer::Hang);
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["t"], "x");
    let config = support::config_text(
        site.dir(),
        &format!(
            "[watch]\ndebounce_ms = 50\n{}",
            websub_toml(&[&hub], &[], "timeout_s = 600\nconcurrency = 1")
        ),
    );
    let server = Bin::new().config_text(&config).serve();
    site.post("a.md", "First edit", "2024-01-01", &["t"], "x");
    support::eventually(20, "the hub got a request", || {
        (!hub.pings().is_empty()).then_some(())
    });
    // The only worker now waits (up to 600 s) for the hub; edits are still published and
    // served at once.
    for title in ["Second edit", "Third edit"] {
        site.post("a.md", title, "2024-01-01", &["t"], "x");
        support::eventually(20, title, || {
            let (status, _, body) = support::fetch(&server.url("rss.xml"));
            (status == 200 && String::from_utf8_lossy(&body).contains(title)).then_some(())
        });
    }
    assert_eq!(hub.pings().len(), 1, "still waiting for its answer");
}

// ---- the real binary -------------------------------------------------------------------

#[test]
fn serve_pings_after_an_edit_and_not_after_a_touch_or_a_sighup() {
    let hub = Receiver::ok();
    let site = Site::new();
    site.post("news/a.md", "A", "2024-01-01", &["alpha"], "a")
        .post("blog/b.md", "B", "2024-01-02", &["beta"], "b");
    let extra = format!(
        "[watch]\ndebounce_ms = 50\n{}",
        websub_toml(&[&hub], &[], "")
    );
    let config = site.config(&extra);
    let server = Bin::new()
        .config_text(&support::config_text(site.dir(), &extra))
        .serve();
    let generation = || -> u64 {
        let (_, _, body) = support::fetch(&server.url("healthz"));
        let health: serde_json::Value = serde_json::from_slice(&body).expect("json");
        health["generation"].as_u64().expect("generation")
    };
    let edit = |rel: &str, title: &str, tag: &str| -> BTreeSet<String> {
        let before = support::build(&config);
        let at = generation();
        site.post(rel, title, "2024-01-01", &[tag], "edited");
        support::eventually(20, "rebuilt", || (generation() > at).then_some(()));
        changed(&before, &support::build(&config))
    };

    let alpha = edit("news/a.md", "A edited", "alpha");
    support::eventually(20, "alpha's feeds pinged", || {
        (hub.topics() == alpha).then_some(())
    });
    let at = generation();
    touch(&site.dir().join("blog/b.md"));
    support::eventually(20, "touch rebuilt", || (generation() > at).then_some(()));
    let at = generation();
    server.signal("-HUP");
    support::eventually(20, "SIGHUP rebuilt", || (generation() > at).then_some(()));
    // Pings are queued in rebuild order: once beta's arrive, any from the touch or the
    // SIGHUP would have been sent too.
    let beta = edit("blog/b.md", "B edited", "beta");
    let both: BTreeSet<String> = alpha.union(&beta).cloned().collect();
    support::eventually(20, "beta's feeds pinged", || {
        beta.is_subset(&hub.topics()).then_some(())
    });
    assert_eq!(hub.topics(), both);
    let counts = hub.counts();
    for topic in alpha.symmetric_difference(&beta) {
        assert_eq!(counts[topic], 1, "{topic}: {counts:?}");
    }
    for topic in alpha.intersection(&beta) {
        assert_eq!(counts[topic], 2, "{topic}: {counts:?}");
    }
}

#[test]
fn export_ping_notifies_only_what_the_export_wrote() {
    let hub = Receiver::ok();
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["alpha"], "a").post(
        "b.md",
        "B",
        "2024-01-02",
        &["beta"],
        "b",
    );
    let out = tempfile::tempdir().expect("out");
    let config = support::config_text(site.dir(), &websub_toml(&[&hub], &[&hub], ""));
    let bin = Bin::new()
        .config_text(&config)
        .arg("export")
        .arg("--out")
        .arg(out.path())
        .arg("--ping");
    bin.run().assert_code(0);
    assert_eq!(hub.pings().len(), 1, "one batch");
    assert_eq!(hub.topics().len(), 9, "3 feeds x 3 formats");

    let ran = bin.run();
    ran.assert_code(0);
    assert!(
        ran.stdout.contains("0 changed feed document(s)"),
        "{}",
        ran.stdout
    );
    assert_eq!(hub.pings().len(), 1, "nothing written, nobody notified");

    site.post("b.md", "B edited", "2024-01-02", &["beta"], "b");
    let ran = bin.run();
    ran.assert_code(0);
    assert!(
        ran.stdout.contains("6 notified, 0 failed"),
        "{}",
        ran.stdout
    );
    let last = hub.pings().last().expect("a ping").topics();
    let paths: BTreeSet<&str> = last
        .iter()
        .map(|t| t.trim_start_matches("http://localhost:8080/"))
        .collect();
    let expected: BTreeSet<&str> = [
        "rss.xml",
        "atom.xml",
        "feed.json",
        "tags/beta/rss.xml",
        "tags/beta/atom.xml",
        "tags/beta/feed.json",
    ]
    .into();
    assert_eq!(paths, expected);
}

// ---- what is advertised ----------------------------------------------------------------

fn header_of(resp: &actix_web::dev::ServiceResponse, name: header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_string())
}

/// `(rel, href)` of every Atom-namespace `link` of an XML feed's channel/feed element.
fn atom_links(xml: &str) -> Vec<(String, String)> {
    let doc = roxmltree::Document::parse(xml).expect("well-formed");
    let root = doc.root_element();
    let parent = root
        .children()
        .find(|n| n.has_tag_name("channel"))
        .unwrap_or(root);
    parent
        .children()
        .filter(|n| n.has_tag_name(("http://www.w3.org/2005/Atom", "link")))
        .map(|n| {
            (
                n.attribute("rel").unwrap_or_default().to_string(),
                n.attribute("href").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn every_format_advertises_hubs_and_self_and_feed_responses_carry_link() {
    let site = Site::new();
    site.post("news/a.md", "A", "2024-01-01", &["内核"], "x");
    let hubs = ["https://hub.example/", "http://127.0.0.1:9/websub?x=1"];
    let config = site.config(&format!(
        "[websub]\nhubs = [{:?}, {:?}]\n",
        hubs[0], hubs[1]
    ));
    let snapshot = support::build(&config);
    let state = AppState::new(Arc::new(ArcSwap::new(snapshot.clone())), "max-age=1");
    let app =
        atest::init_service(App::new().configure(server::configure(web::Data::new(state)))).await;
    let base = config.site.base_url.as_str();
    for path in ["rss.xml", "tags/内核/atom.xml", "categories/news/feed.json"] {
        let self_url = snapshot.files[path].topic().expect("a feed").to_string();
        let encoded = path.replace("内核", "%E5%86%85%E6%A0%B8");
        assert_eq!(self_url, format!("{base}{encoded}"));
        let req = atest::TestRequest::get().uri(&format!("/{encoded}"));
        let resp = atest::call_service(&app, req.to_request()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header_of(&resp, header::LINK).as_deref(),
            Some(
                format!(
                    "<{}>; rel=\"hub\", <{}>; rel=\"hub\", <{self_url}>; rel=\"self\"",
                    hubs[0], hubs[1]
                )
                .as_str()
            ),
            "{path}"
        );
        let body = String::from_utf8(atest::read_body(resp).await.to_vec()).expect("utf-8");
        if path.ends_with(".json") {
            let json: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(json["feed_url"], self_url.as_str());
            assert_eq!(
                json["hubs"],
                serde_json::json!([
                    {"type": "WebSub", "url": hubs[0]},
                    {"type": "WebSub", "url": hubs[1]},
                ])
            );
        } else {
            let links = atom_links(&body);
            let with = |rel: &str| -> Vec<&str> {
                links
                    .iter()
                    .filter(|(r, _)| r == rel)
                    .map(|(_, h)| h.as_str())
                    .collect()
            };
            assert_eq!(with("self"), [self_url.as_str()], "{path}");
            assert_eq!(with("hub"), hubs, "{path}");
        }
    }
    for path in ["/", "/feeds.opml", "/healthz"] {
        let resp =
            atest::call_service(&app, atest::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header_of(&resp, header::LINK), None, "{path}");
    }

    // Without hubs: no hub links, no Link header.
    let plain = support::build(&site.config(""));
    assert!(plain.files["rss.xml"].link().is_none());
    let rss = support::text(&plain, "rss.xml");
    assert_eq!(atom_links(&rss).len(), 1, "self only");
    assert!(!support::text(&plain, "feed.json").contains("\"hubs\""));
}
