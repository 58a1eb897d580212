//! Full history (RFC 5005 archives, JSON Feed `next_url`): following the history links from
//! each subscription document, in each format, gives every visible post exactly once, in
//! the feed's order; adding a post changes only the subscription documents and the newest
//! archive pages of its feeds, editing an old post only its pages; closed pages are cached
//! as immutable; export writes the pages and lists none of them.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::header;
use actix_web::{App, test as atest, web};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use feedsmith::config::DEFAULT_ARCHIVE_CACHE_CONTROL;
use feedsmith::content::{Cache, Trust};
use feedsmith::render::Format;
use feedsmith::server::{self, AppState};
use feedsmith::snapshot::{Caching, Snapshot};
use feedsmith::{Config, export};

use crate::support::{self, Bin, Site, files_under};

const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";
const PUBLIC: &str = "https://feeds.example.org/f/";
const CACHE_CONTROL: &str = "max-age=300, stale-while-revalidate=3600";

/// Visible posts of the corpus: 275 are archived in the global feed (20 shown), exactly 11
/// full pages of 25, so one more post starts page 12; `tags/even` archives 128 (page 6 is
/// partial) and `tags/t3` 79.
const POSTS: usize = 295;

/// Which posts (by number) a feed holds.
type Holds = fn(usize) -> bool;

/// Feed directories of the corpus and which posts each holds (`p` is the section).
fn feeds() -> Vec<(&'static str, Holds)> {
    vec![
        ("", |_| true),
        ("categories/p/", |_| true),
        ("tags/even/", |i| i % 2 == 0),
        ("tags/t3/", |i| i % 3 == 0),
    ]
}

/// When post `i` is published: an hour after post `i - 2`, so that posts `2k` and `2k + 1`
/// share a date and their permalinks decide the order.
fn date(i: usize) -> DateTime<FixedOffset> {
    let start = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").expect("date");
    start + Duration::hours((i / 2) as i64)
}

fn text(i: usize, date: DateTime<FixedOffset>, body: &str) -> String {
    let mut tags = Vec::new();
    if i.is_multiple_of(2) {
        tags.push("even");
    }
    if i.is_multiple_of(3) {
        tags.push("t3");
    }
    support::post(&format!("Post {i}"), &date.to_rfc3339(), &tags, body)
}

fn permalink(i: usize) -> String {
    format!("https://www.example.org/p/{i:04}.html")
}

/// A site of `POSTS` visible posts `p/0000.md`… (0 oldest), a draft and a post scheduled
/// for next year; 20 entries per feed, archive pages of 25.
fn corpus() -> (Site, Config) {
    let site = Site::new();
    for i in 0..POSTS {
        site.write(
            &format!("p/{i:04}.md"),
            &text(i, date(i), &format!("Body of post {i}.")),
        );
    }
    site.write(
        "p/draft.md",
        "---\ntitle: Draft\ndate: 2020-06-01\ndraft: true\ntags: [even, t3]\n---\nnot yet\n",
    );
    let next_year = Utc::now().fixed_offset() + Duration::days(365);
    site.write("p/future.md", &text(0, next_year, "scheduled"));
    let config = site.config(&format!(
        "[site]\nbase_url = \"https://www.example.org/\"\n[feed]\narchive_size = 25\n[server]\npublic_url = \"{PUBLIC}\"\n"
    ));
    (site, config)
}

/// The permalinks a feed shows across all its documents, in its order: newest first, ties
/// by permalink.
fn expected(holds: Holds) -> Vec<String> {
    let mut posts: Vec<(DateTime<FixedOffset>, String)> = (0..POSTS)
        .filter(|&i| holds(i))
        .map(|i| (date(i), permalink(i)))
        .collect();
    posts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    posts.into_iter().map(|(_, url)| url).collect()
}

/// What one document says about itself and its neighbours.
#[derive(Debug, Default)]
struct Doc {
    /// Entry ids (the permalinks), in document order.
    ids: Vec<String>,
    /// `(rel, href)` of its feed-level links; JSON Feed's `next_url` as `prev-archive`.
    links: Vec<(String, String)>,
    /// `fh:archive` is there.
    archive: bool,
    /// Atom `id`, JSON Feed `feed_url`.
    identity: Option<String>,
}

impl Doc {
    fn link(&self, rel: &str) -> Option<&str> {
        let mut found = self.links.iter().filter(|(r, _)| r == rel);
        let first = found.next().map(|(_, href)| href.as_str());
        assert!(found.next().is_none(), "one `{rel}` link at most");
        first
    }
}

fn parse(format: Format, bytes: &[u8]) -> Doc {
    if format == Format::Json {
        let json: serde_json::Value = serde_json::from_slice(bytes).expect("JSON");
        let text = |key: &str| json[key].as_str().map(str::to_string);
        return Doc {
            ids: json["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|item| item["id"].as_str().expect("id").to_string())
                .collect(),
            links: text("next_url")
                .map(|url| ("prev-archive".to_string(), url))
                .into_iter()
                .collect(),
            archive: false,
            identity: text("feed_url"),
        };
    }
    support::assert_well_formed_xml(bytes);
    let xml = std::str::from_utf8(bytes).expect("utf-8");
    let doc = roxmltree::Document::parse(xml).expect("well-formed");
    let root = doc.root_element();
    let (head, entry, id) = if format == Format::Rss {
        let channel = root
            .children()
            .find(|n| n.has_tag_name("channel"))
            .expect("channel");
        (channel, "item", "guid")
    } else {
        (root, "entry", "id")
    };
    let mut parsed = Doc::default();
    for node in head.children().filter(roxmltree::Node::is_element) {
        let name = node.tag_name();
        if name.namespace() == Some(ATOM_NS) && name.name() == "link" {
            let attr = |a| node.attribute(a).unwrap_or_default().to_string();
            parsed.links.push((attr("rel"), attr("href")));
        } else if name.namespace() == Some(HISTORY_NS) && name.name() == "archive" {
            parsed.archive = true;
        } else if name.name() == entry {
            let id = node
                .children()
                .find(|n| n.tag_name().name() == id)
                .and_then(|n| n.text())
                .expect("entry id");
            parsed.ids.push(id.to_string());
        } else if format == Format::Atom && name.name() == "id" {
            parsed.identity = node.text().map(str::to_string);
        }
    }
    parsed
}

/// The snapshot path of a URL under `PUBLIC`.
fn path_of(url: &str) -> &str {
    url.strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("`{url}` is not under {PUBLIC}"))
}

/// Follows `prev-archive` (JSON Feed: `next_url`) from the subscription document of `dir`
/// to the end, checking each archive page's marks and links on the way; the ids of every
/// document in order, and the paths visited.
fn walk(snapshot: &Snapshot, dir: &str, format: Format) -> (Vec<String>, Vec<String>) {
    let current = format!("{PUBLIC}{dir}{}", format.file_name());
    let mut url = current.clone();
    let mut ids = Vec::new();
    let mut visited: Vec<String> = Vec::new();
    let mut identity = None;
    loop {
        let path = path_of(&url).to_string();
        assert!(!visited.contains(&path), "{path} visited twice");
        let doc = parse(format, snapshot.files[&path].identity());
        assert!(!doc.ids.is_empty(), "{path} has entries");
        ids.extend(doc.ids.iter().cloned());
        if format != Format::Json {
            let archive = !visited.is_empty();
            assert_eq!(doc.link("self"), Some(url.as_str()), "{path}: self");
            assert_eq!(doc.archive, archive, "{path}: fh:archive");
            if archive {
                assert_eq!(doc.link("current"), Some(current.as_str()), "{path}");
                // The page visited before, unless that was the subscription document.
                let newer = visited[1..].last().map(|p| format!("{PUBLIC}{p}"));
                assert_eq!(doc.link("next-archive"), newer.as_deref(), "{path}");
            }
        }
        // Atom `id` and JSON Feed `feed_url` name the feed: the same on every page.
        let id = identity.get_or_insert_with(|| doc.identity.clone());
        assert_eq!(&doc.identity, id, "{path}: the feed's identity");
        if format == Format::Json {
            assert_eq!(doc.identity.as_deref(), Some(current.as_str()));
        }
        visited.push(path);
        match doc.link("prev-archive") {
            Some(older) => url = older.to_string(),
            None => break,
        }
    }
    (ids, visited)
}

fn snapshot_of(config: &Config) -> Snapshot {
    let loaded = feedsmith::content::load(config).expect("loads");
    support::build_loaded(config, &loaded)
}

#[test]
fn following_prev_archive_gives_every_visible_post_once_in_order_in_every_format() {
    let (_site, config) = corpus();
    let snapshot = snapshot_of(&config);
    for (dir, holds) in feeds() {
        let want = expected(holds);
        for format in Format::ALL {
            let (ids, visited) = walk(&snapshot, dir, format);
            assert_eq!(ids.len(), want.len(), "{dir} {format:?}: every post once");
            assert_eq!(ids, want, "{dir} {format:?}: in the feed's order");
            // The subscription document, then the archive pages from the newest to page 1.
            let pages = want.len().saturating_sub(20).div_ceil(25);
            let names: Vec<String> = (0..=pages)
                .map(|n| {
                    format!(
                        "{dir}{}",
                        format.page_file_name(if n == 0 { 0 } else { pages + 1 - n })
                    )
                })
                .collect();
            assert_eq!(visited, names, "{dir} {format:?}");
        }
    }
    // Archive pages hold `archive_size` entries, all but the newest.
    let first = parse(
        Format::Atom,
        snapshot.files["archive/1.atom.xml"].identity(),
    );
    assert_eq!(
        first.ids,
        expected(|_| true)[270..].to_vec(),
        "page 1: the 25 oldest"
    );
    // Drafts and scheduled posts appear in no document of any format.
    for path in snapshot.paths() {
        let body = String::from_utf8(snapshot.files[path].decompress()).expect("utf-8");
        assert!(
            !body.contains("draft.html") && !body.contains("future.html"),
            "{path} shows a draft or a scheduled post"
        );
    }
}

/// The identity hash of every feed document of a snapshot (not the OPML list or pages).
fn documents(snapshot: &Snapshot) -> BTreeMap<String, (u64, usize)> {
    snapshot
        .files
        .iter()
        .filter(|(path, _)| {
            Format::ALL.iter().any(|f| path.ends_with(f.file_name()))
                || path.contains("/archive/")
                || path.starts_with("archive/")
        })
        .map(|(path, file)| (path.clone(), (file.hash, file.len)))
        .collect()
}

/// The documents that differ between two snapshots, or exist in only one of them.
fn changed(before: &Snapshot, after: &Snapshot) -> BTreeSet<String> {
    let (a, b) = (documents(before), documents(after));
    a.keys()
        .chain(b.keys())
        .filter(|path| a.get(*path) != b.get(*path))
        .cloned()
        .collect()
}

/// Every format's file of document `number` of the feed in `dir`.
fn files(dir: &str, numbers: &[usize]) -> Vec<String> {
    numbers
        .iter()
        .flat_map(|&n| Format::ALL.map(|f| format!("{dir}{}", f.page_file_name(n))))
        .collect()
}

#[test]
fn a_new_post_changes_only_subscription_documents_and_newest_pages_and_an_edit_only_its_pages() {
    let (site, config) = corpus();
    let mut cache = Cache::default();
    cache.refresh_all(&config, Trust::Nothing).expect("loads");
    let now = Utc::now().fixed_offset();
    let build = |cache: &Cache, previous: Option<&Snapshot>, generation| {
        feedsmith::build::build(&config, &cache.loaded(), now, previous, generation)
            .expect("builds")
    };
    let first = build(&cache, None, 1);

    // A new post tagged `even`: the global feed and its category start page 12 (page 11,
    // full until now, gains its `next-archive` link in RSS and Atom; JSON Feed links older
    // pages only); `tags/even` grows its partial page 6.
    site.write("p/new.md", &text(2, date(POSTS + 10), "new"));
    cache
        .refresh_paths(&config, &["p/new.md".into()])
        .expect("refresh");
    let second = build(&cache, Some(&first), 2);
    let mut want: BTreeSet<String> = BTreeSet::new();
    for dir in ["", "categories/p/"] {
        want.extend(files(dir, &[0, 12]));
        want.extend([Format::Rss, Format::Atom].map(|f| format!("{dir}{}", f.page_file_name(11))));
    }
    want.extend(files("tags/even/", &[0, 6]));
    assert_eq!(changed(&first, &second), want);
    // The post pushed out of the subscription documents opens page 12.
    let page = parse(Format::Rss, second.files["archive/12.rss.xml"].identity());
    assert_eq!(page.ids, expected(|_| true)[19..20].to_vec());
    // Unchanged documents keep their files (bodies and validators), except JSON Feed's page
    // 11: the same bytes, but now a closed page, cached as one.
    let closed = ["archive/11.json", "categories/p/archive/11.json"];
    for (path, file) in &second.files {
        if closed.contains(&path.as_str()) {
            assert_eq!(first.files[path].caching, Caching::Current, "{path}");
            assert_eq!(file.caching, Caching::Archived, "{path}");
        } else if !want.contains(path) && documents(&second).contains_key(path) {
            assert!(std::sync::Arc::ptr_eq(file, &first.files[path]), "{path}");
        }
    }

    // An edit of post 60 (`even` and `t3`, long archived) changes its page in each of its
    // feeds, in every format, and nothing else. Page n holds the 25 n-th oldest entries.
    site.write("p/0060.md", &text(60, date(60), "Edited body."));
    cache
        .refresh_paths(&config, &["p/0060.md".into()])
        .expect("refresh");
    let third = build(&cache, Some(&second), 3);
    let mut want: BTreeSet<String> = BTreeSet::new();
    for (dir, holds) in feeds() {
        let oldest_first: Vec<String> = expected(holds).into_iter().rev().collect();
        if let Some(at) = oldest_first.iter().position(|url| *url == permalink(60)) {
            want.extend(files(dir, &[at / 25 + 1]));
        }
    }
    assert_eq!(want.len(), 12, "{want:?}");
    assert_eq!(changed(&second, &third), want);
    assert!(support::text(&third, "tags/t3/archive/1.json").contains("Edited body."));
}

#[actix_web::test]
async fn closed_pages_are_immutable_and_the_newest_page_is_cached_like_a_feed() {
    let (_site, config) = corpus();
    let snapshot = std::sync::Arc::new(snapshot_of(&config));
    assert!(snapshot.next_due.is_some(), "a post is scheduled");
    // The config's defaults: `CACHE_CONTROL`, and the path prefix of `PUBLIC`.
    let state = AppState::new(
        std::sync::Arc::new(arc_swap::ArcSwap::new(snapshot)),
        CACHE_CONTROL,
    );
    state.reconfigure(&config);
    let app =
        atest::init_service(App::new().configure(server::configure(web::Data::new(state)))).await;
    let get = |path: &str, etag: Option<&str>| {
        let mut req = atest::TestRequest::get().uri(path);
        if let Some(tag) = etag {
            req = req.insert_header((header::IF_NONE_MATCH, tag.to_string()));
        }
        req.to_request()
    };
    let header_of = |resp: &actix_web::dev::ServiceResponse, name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    // Pages 1-10 are closed; page 11 is full but the newest: it gains a link when page 12
    // starts. Under the public URL's path prefix too.
    let cases = [
        ("/archive/1.rss.xml", DEFAULT_ARCHIVE_CACHE_CONTROL),
        ("/f/archive/10.atom.xml", DEFAULT_ARCHIVE_CACHE_CONTROL),
        ("/tags/even/archive/5.json", DEFAULT_ARCHIVE_CACHE_CONTROL),
        ("/archive/11.rss.xml", CACHE_CONTROL),
        ("/tags/even/archive/6.json", CACHE_CONTROL),
        ("/rss.xml", CACHE_CONTROL),
    ];
    for (path, cache_control) in cases {
        let resp = atest::call_service(&app, get(path, None)).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            header_of(&resp, header::CACHE_CONTROL),
            cache_control,
            "{path}"
        );
        let etag = header_of(&resp, header::ETAG);
        assert!(
            !header_of(&resp, header::LAST_MODIFIED).is_empty(),
            "{path}"
        );
        let again = atest::call_service(&app, get(path, Some(&etag))).await;
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(
            header_of(&again, header::CACHE_CONTROL),
            cache_control,
            "{path}"
        );
    }
}

#[test]
fn export_writes_archive_pages_with_gz_siblings_and_lists_none_of_them() {
    let (_site, config) = corpus();
    let out = tempfile::tempdir().expect("tmp");
    let loaded = feedsmith::content::load(&config).expect("loads");
    let (snapshot, _) = export::export(
        &config,
        &loaded,
        Utc::now().fixed_offset(),
        out.path(),
        &|| {},
    )
    .expect("exports");
    let written = files_under(out.path());
    for path in snapshot.paths() {
        assert!(written.contains(path.as_str()), "{path}");
        assert!(written.contains(&format!("{path}.gz")), "{path}.gz");
    }
    for page in [
        "archive/11.rss.xml",
        "archive/11.atom.xml",
        "tags/t3/archive/3.json",
    ] {
        assert!(written.contains(page), "{page}");
    }
    for listing in ["feeds.opml", "index.html"] {
        let text = std::fs::read_to_string(out.path().join(listing)).expect("read");
        assert!(
            !text.contains("archive/"),
            "{listing} lists no archive page"
        );
    }
}

#[test]
fn without_archives_feeds_have_no_history_and_archive_pages_can_carry_content() {
    let site = Site::new();
    for i in 0..7 {
        site.write(
            &format!("p/{i:04}.md"),
            &text(i, date(2 * i), &format!("Body **{i}**.")),
        );
    }
    let off = snapshot_of(&site.config("[feed]\nlimit = 2\narchives = false\n"));
    assert!(!off.paths().iter().any(|p| p.contains("archive")));
    assert!(!support::text(&off, "rss.xml").contains("prev-archive"));
    assert!(!support::text(&off, "feed.json").contains("next_url"));

    let full = snapshot_of(
        &site.config("[feed]\nlimit = 2\narchive_size = 2\narchive_content = \"full\"\n"),
    );
    let page = support::text(&full, "archive/1.atom.xml");
    assert!(
        page.contains("<content type=\"html\">&lt;p&gt;Body &lt;strong&gt;0"),
        "{page}"
    );
    let summary = snapshot_of(&site.config("[feed]\nlimit = 2\narchive_size = 2\n"));
    let page = support::text(&summary, "archive/1.atom.xml");
    assert!(
        !page.contains("<content") && page.contains("<summary>Body 0.</summary>"),
        "{page}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&support::text(&summary, "archive/1.json")).expect("JSON");
    assert_eq!(json["items"][0]["content_text"], "Body 1.");
}

#[test]
fn archive_pages_are_no_websub_topics() {
    let site = Site::new();
    for i in 0..5 {
        site.write(&format!("p/{i:04}.md"), &text(i, date(2 * i), "body"));
    }
    let snapshot = snapshot_of(&site.config(
        "[feed]\nlimit = 2\narchive_size = 2\n[websub]\nhubs = [\"https://hub.example.org/\"]\n",
    ));
    for format in Format::ALL {
        let current = &snapshot.files[format.file_name()];
        assert!(
            current.topic().is_some() && current.link().is_some(),
            "{format:?}"
        );
        let text = support::text(&snapshot, format.file_name());
        assert!(text.contains("https://hub.example.org/"), "{format:?}");
        for n in [1, 2] {
            let path = format.page_file_name(n);
            let page = &snapshot.files[&path];
            assert!(page.topic().is_none() && page.link().is_none(), "{path}");
            assert!(
                !support::text(&snapshot, &path).contains("hub.example.org"),
                "{path}"
            );
        }
    }
}

#[test]
fn the_binary_serves_archive_pages_with_the_configured_cache_control() {
    let site = Site::new();
    for i in 0..7 {
        site.write(&format!("p/{i:04}.md"), &text(i, date(2 * i), "body"));
    }
    let config = support::config_text(
        site.dir(),
        "[feed]\nlimit = 2\narchive_size = 2\n[server]\narchive_cache_control = \"max-age=86400, immutable\"\n[watch]\nmode = \"off\"\n",
    );
    let server = Bin::new().config_text(&config).serve();
    let header = |path: &str| {
        let resp = ureq::get(&server.url(path))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    // 5 archived posts: pages 1 and 2 are closed, page 3 is the newest.
    assert_eq!(header("archive/1.rss.xml"), "max-age=86400, immutable");
    assert_eq!(header("archive/2.json"), "max-age=86400, immutable");
    assert_eq!(header("archive/3.atom.xml"), CACHE_CONTROL);
    assert_eq!(header("rss.xml"), CACHE_CONTROL);
}
