//! The watcher against a temp content dir, polling the published snapshot with a deadline
//! (never a fixed sleep): creates, atomic-rename edits, deletes, renames, new directories,
//! bursts, invalid edits, untouched feeds keeping their ETag, scheduled posts, and a
//! consistency test of concurrent GETs during continuous rebuilds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use feedsmith::publish::{Health, Publisher};
use feedsmith::snapshot::SnapshotStore;
use feedsmith::watch;

use crate::support::{self, Site};

struct Running {
    store: Arc<SnapshotStore>,
    health: Arc<Health>,
    _handle: watch::Handle,
}

fn start(dir: &Path, extra: &str) -> Running {
    let config = support::config_for(dir, &format!("[watch]\ndebounce_ms = 50\n{extra}"));
    let mut publisher = Publisher::new(config);
    publisher.rebuild(None).expect("first build");
    let store = publisher.store();
    let health = publisher.health();
    let handle = watch::spawn(publisher).expect("watcher starts");
    Running {
        store,
        health,
        _handle: handle,
    }
}

fn rss(store: &SnapshotStore) -> String {
    store
        .load()
        .files
        .get("rss.xml")
        .map(|f| String::from_utf8_lossy(f.identity()).into_owned())
        .unwrap_or_default()
}

fn wait_for(store: &SnapshotStore, what: &str, f: impl Fn(&str) -> bool) {
    support::eventually(20, what, || f(&rss(store)).then_some(()));
}

#[test]
fn create_edit_rename_and_delete_are_published() {
    let site = Site::new();
    site.post("first.md", "First", "2024-01-01", &["t"], "x");
    let run = start(site.dir(), "");
    assert!(rss(&run.store).contains("First"));

    site.post("a.md", "Created", "2024-01-02", &["t"], "x");
    wait_for(&run.store, "created post", |r| r.contains("Created"));

    // An editor's atomic save: write a temp file, rename it over the post.
    site.post(".a.md.swp", "Edited", "2024-01-02", &["t"], "x");
    std::fs::rename(site.dir().join(".a.md.swp"), site.dir().join("a.md")).expect("rename");
    wait_for(&run.store, "edited post", |r| {
        r.contains("Edited") && !r.contains("Created")
    });

    std::fs::rename(site.dir().join("a.md"), site.dir().join("b.md")).expect("rename");
    wait_for(&run.store, "renamed post", |r| {
        r.contains("/b.html") && !r.contains("/a.html")
    });

    std::fs::remove_file(site.dir().join("b.md")).expect("rm");
    wait_for(&run.store, "deleted post", |r| !r.contains("Edited"));
    assert!(rss(&run.store).contains("First"));
}

#[test]
fn new_subdirectories_and_files_created_right_after_mkdir_are_seen() {
    let site = Site::new();
    let run = start(site.dir(), "");
    std::fs::create_dir_all(site.dir().join("zh/news/新 目录")).expect("mkdir");
    site.post("zh/news/新 目录/p.md", "Deep", "2024-01-01", &["t"], "x");
    wait_for(&run.store, "post in a new directory", |r| {
        r.contains("Deep")
    });
    // A whole directory moved into the tree.
    let outside = tempfile::tempdir().expect("tmp");
    support::write(
        outside.path(),
        "moved/m.md",
        &support::post("Moved in", "2024-01-02", &["t"], "x"),
    );
    std::fs::rename(outside.path().join("moved"), site.dir().join("moved")).expect("move dir in");
    wait_for(&run.store, "post in a moved-in directory", |r| {
        r.contains("Moved in")
    });
    std::fs::remove_dir_all(site.dir().join("moved")).expect("rm dir");
    wait_for(&run.store, "removed directory", |r| !r.contains("Moved in"));
}

#[test]
fn a_burst_of_a_thousand_files_leads_to_few_rebuilds_and_the_final_state() {
    let site = Site::new();
    let run = start(site.dir(), "");
    let before = run.store.load().generation;
    for i in 0..1000 {
        site.post(
            &format!("burst/p{i:04}.md"),
            &format!("Burst {i}"),
            "2024-01-01",
            &["t"],
            "x",
        );
    }
    support::eventually(30, "all 1000 posts", || {
        (run.store.load().posts == 1000).then_some(())
    });
    let rebuilds = run.store.load().generation - before;
    assert!(rebuilds <= 10, "{rebuilds} rebuilds for one burst");
}

#[test]
fn an_invalid_edit_keeps_the_last_good_version_and_is_reported_until_fixed() {
    let site = Site::new();
    site.post("p.md", "Good version", "2024-01-01", &["t"], "x");
    let run = start(site.dir(), "");
    std::fs::write(site.dir().join("p.md"), "---\ntitle: [broken\n---\n").expect("write");
    support::eventually(20, "problem reported", || {
        (!run.store.load().problems.is_empty()).then_some(())
    });
    let snap = run.store.load();
    assert!(
        snap.problems[0].to_string().starts_with("`p.md`:")
            && snap.problems[0].to_string().contains("not valid YAML"),
        "{:?}",
        snap.problems
    );
    assert!(
        rss(&run.store).contains("Good version"),
        "last good version still served"
    );
    site.post("p.md", "Fixed version", "2024-01-01", &["t"], "x");
    wait_for(&run.store, "fixed post", |r| r.contains("Fixed version"));
    assert!(run.store.load().problems.is_empty());
}

#[test]
fn an_edit_does_not_change_the_etag_of_a_tag_feed_it_is_not_in() {
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["x"], "one");
    site.post("b.md", "B", "2024-01-02", &["y"], "two");
    let run = start(site.dir(), "");
    let snap = run.store.load();
    let (x, y) = (
        snap.files["tags/x/rss.xml"].clone(),
        snap.files["tags/y/rss.xml"].clone(),
    );
    site.post("a.md", "A", "2024-01-01", &["x"], "one, edited");
    support::eventually(20, "tag x rebuilt", || {
        (run.store.load().files["tags/x/rss.xml"].hash != x.hash).then_some(())
    });
    let after = run.store.load();
    assert_eq!(
        after.files["tags/y/rss.xml"].etag(feedsmith::snapshot::Encoding::Identity),
        y.etag(feedsmith::snapshot::Encoding::Identity)
    );
    assert!(
        Arc::ptr_eq(&after.files["tags/y/rss.xml"], &y),
        "untouched feed reused as is"
    );
}

#[test]
fn a_scheduled_post_appears_when_its_time_comes_without_a_file_change() {
    let site = Site::new();
    let due = chrono::Utc::now() + chrono::Duration::seconds(2);
    site.write(
        "soon.md",
        &format!(
            "---\ntitle: Scheduled\ndate: {}\n---\nx\n",
            due.to_rfc3339()
        ),
    );
    site.post("now.md", "Now", "2024-01-01", &["t"], "x");
    let run = start(site.dir(), "");
    assert!(!rss(&run.store).contains("Scheduled"));
    assert!(run.store.load().next_due.is_some());
    wait_for(&run.store, "scheduled post", |r| r.contains("Scheduled"));
    assert!(chrono::Utc::now() >= due);
}

#[test]
fn a_deleted_and_recreated_content_dir_is_watched_again() {
    let parent = tempfile::tempdir().expect("tmp");
    let dir = parent.path().join("content");
    support::write(
        &dir,
        "a.md",
        &support::post("Before", "2024-01-01", &["t"], "x"),
    );
    let run = start(&dir, "");
    std::fs::remove_dir_all(&dir).expect("rm");
    support::write(
        &dir,
        "b.md",
        &support::post("After", "2024-01-02", &["t"], "x"),
    );
    wait_for(&run.store, "post in the recreated dir", |r| {
        r.contains("After") && !r.contains("Before")
    });
    support::write(
        &dir,
        "c.md",
        &support::post("Later", "2024-01-03", &["t"], "x"),
    );
    wait_for(&run.store, "later post", |r| r.contains("Later"));
}

#[test]
fn concurrent_gets_during_continuous_rebuilds_always_match_their_etag() {
    let site = Site::new();
    for i in 0..20 {
        site.post(
            &format!("p{i}.md"),
            &format!("P{i}"),
            "2024-01-01",
            &["t"],
            "x",
        );
    }
    let run = start(site.dir(), "");
    let store = run.store.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let state =
                actix_web::web::Data::new(feedsmith::server::AppState::new(store, "no-cache"));
            let srv = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(feedsmith::server::configure(state.clone()))
            })
            .workers(2)
            .bind("127.0.0.1:0")
            .expect("bind");
            let addr = srv.addrs()[0];
            let srv = srv.run();
            tx.send((addr, srv.handle())).expect("send");
            srv.await.expect("server");
        });
    });
    let (addr, handle) = rx.recv().expect("server up");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let dir = site.dir().to_path_buf();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                support::write(
                    &dir,
                    &format!("p{}.md", n % 20),
                    &support::post(
                        &format!("Edit {n}"),
                        "2024-01-01",
                        &["t"],
                        &"x".repeat(n % 500),
                    ),
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            n
        })
    };
    let generation_before = run.store.load().generation;
    // Clients keep fetching until several rebuilds have been published under them.
    let enough = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let enough = enough.clone();
            std::thread::spawn(move || {
                let mut checked = 0;
                while checked < 300 || !enough.load(Ordering::Relaxed) {
                    let (status, etag, body) = support::fetch(&format!("http://{addr}/rss.xml"));
                    assert_eq!(status, 200, "no request fails");
                    assert_eq!(
                        etag,
                        format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&body)),
                        "body and ETag from one snapshot"
                    );
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    support::eventually(30, "rebuilds during the requests", || {
        (run.store.load().generation > generation_before + 3).then_some(())
    });
    enough.store(true, Ordering::Relaxed);
    let checked: Vec<usize> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let edits = writer.join().expect("writer");
    actix_web::rt::System::new().block_on(handle.stop(true));
    server.join().expect("server thread");
    assert!(checked.iter().all(|&n| n >= 300), "{checked:?}");
    assert!(edits > 10);
}

#[test]
fn a_rescan_picks_up_changes_and_reparses_nothing_else() {
    let site = Site::new();
    for name in ["a", "b"] {
        site.post(&format!("{name}.md"), name, "2024-01-01", &["t"], "x");
    }
    let config = site.config("");
    let mut publisher = Publisher::new(config);
    publisher.rebuild(None).expect("first build");
    assert_eq!(publisher.rescan().expect("rescan").files_changed, 0);
    site.post("b.md", "b edited", "2024-01-01", &["t"], "longer body");
    assert_eq!(publisher.rescan().expect("rescan").files_changed, 1);
    assert!(rss(&publisher.store()).contains("b edited"));
}

#[test]
fn poll_mode_sees_changes_without_notifications() {
    let site = Site::new();
    let run = start(site.dir(), "mode = \"poll\"\npoll_interval_ms = 100\n");
    site.post("p.md", "Polled", "2024-01-01", &["t"], "x");
    wait_for(&run.store, "post seen by polling", |r| r.contains("Polled"));
    // Same size, same second: only a content comparison notices this edit.
    site.post("p.md", "Pollee", "2024-01-01", &["t"], "x");
    wait_for(&run.store, "edit seen by polling", |r| r.contains("Pollee"));
}

#[test]
fn healthz_is_degraded_while_a_post_is_broken() {
    let site = Site::new();
    site.post("ok.md", "Fine", "2024-01-01", &["t"], "x");
    site.write("bad.md", "---\ntitle: Missing date\n---\n");
    let run = start(site.dir(), "");
    let mut state = feedsmith::server::AppState::new(run.store.clone(), "max-age=60");
    state.health = run.health.clone();
    run.health.set(
        "content_dir",
        Some(feedsmith::Problem::ContentDirMissing("x".into())),
    );
    let state = actix_web::web::Data::new(state);
    let json = actix_web::rt::System::new().block_on(async move {
        let app = actix_web::test::init_service(
            actix_web::App::new().configure(feedsmith::server::configure(state)),
        )
        .await;
        let req = actix_web::test::TestRequest::get()
            .uri("/healthz")
            .to_request();
        let body = actix_web::test::call_and_read_body(&app, req).await;
        serde_json::from_slice::<serde_json::Value>(&body).expect("json")
    });
    assert_eq!(json["status"], "degraded");
    // The process's own problems first, then the content's.
    assert_eq!(
        json["problems"][0],
        "content directory `x` is missing; serving the last good feeds"
    );
    assert_eq!(
        json["problems"][1],
        "`bad.md`:2:1: front matter field `date` is required"
    );
    assert_eq!(json["posts"], 1);
}

/// An editor's autosave or a sync tool in a loop: one file rewritten every 20 ms never goes
/// quiet, yet a rebuild must come at least every `10 × debounce_ms` while it goes on.
#[test]
fn a_file_rewritten_in_a_loop_is_published_at_least_every_ten_debounces() {
    let site = Site::new();
    // Odd versions are written in place, even ones saved atomically (temp file + rename).
    let write = |n: usize| {
        let text = support::post(&format!("Version {n}"), "2024-01-01", &["t"], "x");
        if n % 2 == 1 {
            site.write("hot.md", &text);
        } else {
            site.write(".hot.md.tmp", &text);
            std::fs::rename(site.dir().join(".hot.md.tmp"), site.dir().join("hot.md"))
                .expect("rename");
        }
    };
    write(0);
    let run = start(site.dir(), ""); // debounce 50 ms: at most 500 ms between rebuilds
    let limit = std::time::Duration::from_millis(500);
    let writing = std::time::Duration::from_secs(4);
    let started = std::time::Instant::now();
    let mut published = vec![(started, run.store.load().generation)];
    let mut n = 0;
    while started.elapsed() < writing {
        n += 1;
        write(n);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let generation = run.store.load().generation;
        if generation != published.last().map_or(0, |p| p.1) {
            published.push((std::time::Instant::now(), generation));
        }
    }
    let gaps: Vec<u128> = published
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_millis())
        .chain(std::iter::once(
            (started + writing - published.last().map_or(started, |p| p.0)).as_millis(),
        ))
        .collect();
    // Slack over the limit for the rebuild itself and a loaded 2-core machine.
    let bound = (limit + std::time::Duration::from_millis(350)).as_millis();
    assert!(
        gaps.iter().all(|&g| g <= bound),
        "{} writes, rebuilds published after gaps of {gaps:?} ms (bound {bound} ms)",
        n
    );
    assert!(
        published.len() >= 5,
        "only {} publications in 4 s",
        published.len()
    );
}

#[test]
fn deleting_20000_files_is_quickly_reflected_and_is_no_error() {
    let site = Site::new();
    site.post("keep.md", "Kept", "2024-01-01", &[], "x");
    let bulk = site.dir().join("bulk");
    for i in 0..20_000 {
        support::write(
            &bulk,
            &format!("d{}/p{i}.md", i % 20),
            &format!("---\ntitle: Bulk {i}\ndate: 2024-02-01\n---\nx\n"),
        );
    }
    // Without archive pages: a partial deletion shifts all 800 of them, and re-rendering them
    // in this unoptimised build, batch after batch, measures the build mode. `.ci/hostile.py`
    // checks the same deletion against the release binary with archives on.
    let run = start(site.dir(), "[feed]\narchives = false\n");
    assert_eq!(run.store.load().posts, 20_001);
    let started = std::time::Instant::now();
    std::fs::remove_dir_all(&bulk).expect("rm -rf");
    support::eventually(20, "the deletion published", || {
        (run.store.load().posts == 1).then_some(())
    });
    let took = started.elapsed();
    eprintln!("20,000 deletions published in {took:?}");
    let snapshot = run.store.load();
    assert!(rss(&run.store).contains("Kept"));
    assert!(
        snapshot.problems.is_empty(),
        "a vanished file is no problem: {:?}",
        &snapshot.problems[..snapshot.problems.len().min(3)]
    );
    // The 2 s bound is checked against the release binary by `.ci/hostile.py`; in this
    // unoptimised build, on a shared 2-core machine, 1.9-2.6 s were measured. Before removals
    // were cheap, the release build took 18-29 s.
    assert!(
        took < std::time::Duration::from_secs(8),
        "20,000 deletions took {took:?} to be published"
    );
}

#[test]
fn health_is_degraded_within_a_second_of_the_content_dir_vanishing_and_ok_when_back() {
    let parent = tempfile::tempdir().expect("tmp");
    let dir = parent.path().join("content");
    support::write(&dir, "a.md", &support::post("A", "2024-01-01", &[], "x"));
    let run = start(&dir, "");
    assert!(run.health.problems().is_empty());
    let started = std::time::Instant::now();
    std::fs::rename(&dir, parent.path().join("moved")).expect("mv");
    let problems = support::eventually(5, "degraded", || {
        Some(run.health.problems()).filter(|p| !p.is_empty())
    });
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        problems[0].to_string().contains("is missing"),
        "{problems:?}"
    );
    // Still serving the last good feeds meanwhile.
    assert!(rss(&run.store).contains("<title>A</title>"));
    std::fs::rename(parent.path().join("moved"), &dir).expect("mv back");
    support::eventually(5, "ok again", || {
        run.health.problems().is_empty().then_some(())
    });
}
