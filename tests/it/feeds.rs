//! The feed set: every generated feed parses back with a real feed parser (feed-rs) and is
//! well-formed for a strict XML parser; membership, ordering, limits, languages and slugs;
//! arbitrary input always gives valid output.

use std::collections::HashSet;
use std::sync::Arc;

use feedsmith::feed::{self, FeedKind};
use feedsmith::render::{self, Format};
use proptest::prelude::*;

use crate::support::{self, Site};

fn parse_back(bytes: &[u8]) -> feed_rs::model::Feed {
    feed_rs::parser::parse(bytes).unwrap_or_else(|e| {
        panic!(
            "feed-rs rejects: {e}\n{}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(1500)])
        )
    })
}

#[test]
fn every_sample_feed_parses_back_with_titles_links_ids_dates_and_content() {
    let config = support::sample_config();
    let snapshot = support::build(&config);
    let loaded = support::load_with_bodies(&config);
    let by_id: std::collections::HashMap<&str, &Arc<feedsmith::post::Post>> =
        loaded.posts.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut checked = 0;
    for path in snapshot.paths() {
        let Some(format) = Format::ALL
            .into_iter()
            .find(|f| path.ends_with(f.file_name()))
        else {
            continue;
        };
        let body = snapshot.files[path].identity();
        if format != Format::Json {
            support::assert_well_formed_xml(body);
        } else {
            serde_json::from_slice::<serde_json::Value>(body).expect("valid JSON");
        }
        let parsed = parse_back(body);
        assert!(!parsed.entries.is_empty(), "{path}");
        let title = parsed
            .title
            .as_ref()
            .map(|t| t.content.clone())
            .unwrap_or_default();
        assert!(title.starts_with("openEuler 社区新闻"), "{path}: {title}");
        let mut previous = None;
        for entry in &parsed.entries {
            let post = by_id
                .get(entry.id.as_str())
                .unwrap_or_else(|| panic!("{path}: unknown id {}", entry.id));
            assert_eq!(
                entry.title.as_ref().map(|t| t.content.as_str()),
                Some(post.title.as_str()),
                "{path}"
            );
            assert_eq!(
                entry.links.first().map(|l| l.href.as_str()),
                Some(post.url.as_str()),
                "{path}"
            );
            assert_eq!(
                entry.published.map(|d| d.timestamp()),
                Some(post.date.timestamp()),
                "{path}"
            );
            // RSS `description` is HTML: the plain summary is escaped for it.
            let summary = entry.summary.as_ref().map(|s| match format {
                Format::Rss => unescape_html(&s.content),
                _ => s.content.clone(),
            });
            assert_eq!(summary.as_deref(), Some(post.summary.as_str()), "{path}");
            let content = entry
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .unwrap_or_default();
            assert_eq!(
                content.trim_end(),
                support::body(post).html_text().trim_end(),
                "{path}: content survives"
            );
            let terms: HashSet<&str> = entry.categories.iter().map(|c| c.term.as_str()).collect();
            assert!(
                terms.contains("openEuler") && terms.contains("news"),
                "{path}: {terms:?}"
            );
            // Newest first.
            if let Some(prev) = previous {
                assert!(prev >= post.date, "{path}: not newest first");
            }
            previous = Some(post.date);
        }
        checked += 1;
    }
    // global + tag openEuler + category news, three formats each.
    assert_eq!(checked, 9);
}

#[test]
fn rss_has_the_extensions_readers_use() {
    let config = support::sample_config();
    let snapshot = support::build(&config);
    let rss = support::text(&snapshot, "rss.xml");
    for needle in [
        "<atom:link href=\"https://www.openeuler.org/rss.xml\" rel=\"self\" type=\"application/rss+xml\"/>",
        "<lastBuildDate>Thu, 21 Nov 2024 00:00:00 +0800</lastBuildDate>",
        "<dc:creator>openEuler</dc:creator>",
        "<media:content medium=\"image\" url=\"https://www.openeuler.org/img/banners/1122-smit.jpeg\">",
        "<media:thumbnail url=\"https://www.openeuler.org/img/banners/1122-smit.jpeg\">",
        "<content:encoded><![CDATA[",
        "<guid>https://www.openeuler.org/zh/news/20241121-summit/20241121-summit.html</guid>",
        "<language>zh</language>",
    ] {
        assert!(rss.contains(needle), "missing {needle}");
    }
    let atom = support::text(&snapshot, "tags/openeuler/atom.xml");
    assert!(
        atom.contains(
            "<link href=\"https://www.openeuler.org/tags/openeuler/atom.xml\" rel=\"self\""
        )
    );
    assert!(atom.contains("<updated>2024-11-21T00:00:00+08:00</updated>"));
    let json: serde_json::Value =
        serde_json::from_str(&support::text(&snapshot, "feed.json")).expect("json");
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["feed_url"], "https://www.openeuler.org/feed.json");
    assert_eq!(
        json["items"][0]["image"],
        "https://www.openeuler.org/img/banners/1122-smit.jpeg"
    );
    assert_eq!(
        json["items"][0]["date_published"],
        "2024-11-21T00:00:00+08:00"
    );
}

#[test]
fn a_post_in_two_tags_appears_once_in_each_tag_feed_and_in_the_global_feed() {
    let site = Site::new();
    site.post("a.md", "Both", "2024-01-02", &["Rust", "内核", "rust"], "x");
    site.post("b.md", "Only rust", "2024-01-01", &["RUST"], "y");
    let config = site.config("");
    let loaded = feedsmith::content::load(&config).expect("loads");
    let plan = feed::plan(&config, &loaded.posts, chrono::Utc::now().fixed_offset());
    let count = |dir: &str| {
        let feed = plan
            .feeds
            .iter()
            .find(|f| f.dir == dir)
            .unwrap_or_else(|| panic!("no feed {dir}"));
        feed.entries.iter().filter(|p| p.title == "Both").count()
    };
    assert_eq!(count(""), 1);
    assert_eq!(count("tags/rust/"), 1);
    assert_eq!(count("tags/内核/"), 1);
    // `Rust`, `rust` and `RUST` are one tag, named by the most used spelling
    // (a post's own duplicate spelling counts once).
    let rust = plan
        .feeds
        .iter()
        .find(|f| f.dir == "tags/rust/")
        .expect("rust");
    assert_eq!(rust.entries.len(), 2);
    assert_eq!(
        plan.feeds
            .iter()
            .filter(|f| f.kind == FeedKind::Tag)
            .count(),
        2
    );
    let snapshot = support::build(&config);
    let json: serde_json::Value =
        serde_json::from_str(&support::text(&snapshot, "tags/内核/feed.json")).expect("json");
    assert_eq!(
        json["feed_url"],
        "http://localhost:8080/tags/%E5%86%85%E6%A0%B8/feed.json"
    );
}

#[test]
fn limits_ordering_and_ties_are_total() {
    let site = Site::new();
    for i in 0..30 {
        // Pairs of posts share a date: the permalink breaks the tie.
        site.post(
            &format!("p{i:02}.md"),
            &format!("P{i}"),
            &format!("2024-01-{:02}", 1 + i / 2),
            &["t"],
            "x",
        );
    }
    site.write(
        "draft.md",
        "---\ntitle: Draft\ndate: 2024-02-01\ndraft: true\n---\n",
    );
    site.write("future.md", "---\ntitle: Future\ndate: 2999-01-01\n---\n");
    let config = site.config("[feed]\nlimit = 7\n");
    let loaded = feedsmith::content::load(&config).expect("loads");
    let plan = feed::plan(&config, &loaded.posts, chrono::Utc::now().fixed_offset());
    let global = &plan.feeds[0];
    let titles: Vec<&str> = global.entries.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["P28", "P29", "P26", "P27", "P24", "P25", "P22"]);
    assert_eq!(plan.visible, 30, "drafts and future posts are not visible");
    assert!(plan.next_due.is_some());
    for feed in &plan.feeds {
        assert!(
            feed.entries
                .iter()
                .all(|p| p.title != "Draft" && p.title != "Future")
        );
        assert_eq!(
            feed.updated,
            feed.entries
                .iter()
                .map(|p| p.updated)
                .max()
                .expect("entries")
        );
    }
}

#[test]
fn multilingual_content_gets_per_language_feeds_that_never_mix() {
    let site = Site::new();
    site.post("zh/news/a.md", "中文", "2024-01-01", &["openEuler"], "正文");
    site.post(
        "en/blog/b.md",
        "English",
        "2024-01-02",
        &["openEuler"],
        "text",
    );
    site.write(
        "en/news/c.md",
        "---\ntitle: Chinese by front matter\nlang: zh\ndate: 2024-01-03\n---\n",
    );
    let config = site.config("[content]\nlanguages = [\"zh\", \"en\"]\n");
    let snapshot = support::build(&config);
    assert!(
        !snapshot.files.contains_key("rss.xml"),
        "no mixed global feed"
    );
    for (path, lang) in [
        ("zh/rss.xml", "zh"),
        ("en/rss.xml", "en"),
        ("zh/tags/openeuler/atom.xml", "zh"),
        ("en/categories/blog/feed.json", "en"),
    ] {
        let parsed = parse_back(
            snapshot
                .files
                .get(path)
                .unwrap_or_else(|| panic!("{path}"))
                .identity(),
        );
        assert!(!parsed.entries.is_empty(), "{path}");
        let text = support::text(&snapshot, path);
        let other = if lang == "zh" { "English" } else { "中文" };
        assert!(!text.contains(other), "{path} mixes languages");
    }
    assert!(support::text(&snapshot, "zh/rss.xml").contains("Chinese by front matter"));
}

#[test]
fn colliding_and_empty_slugs_are_reported_not_merged_or_dropped() {
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["CI/CD"], "x");
    site.post("b.md", "B", "2024-01-02", &["ci cd"], "x");
    site.post("c.md", "C", "2024-01-03", &["///"], "x");
    let config = site.config("");
    let loaded = feedsmith::content::load(&config).expect("loads");
    let plan = feed::plan(&config, &loaded.posts, chrono::Utc::now().fixed_offset());
    let tag_dirs: Vec<&str> = plan
        .feeds
        .iter()
        .filter(|f| f.kind == FeedKind::Tag)
        .map(|f| f.dir.as_str())
        .collect();
    assert_eq!(tag_dirs.len(), 3, "{tag_dirs:?}");
    assert!(
        tag_dirs.contains(&"tags/ci-cd/") && tag_dirs.contains(&"tags/ci-cd-2/"),
        "{tag_dirs:?}"
    );
    assert_eq!(plan.problems.len(), 2, "{:?}", plan.problems);
    assert!(
        plan.problems
            .iter()
            .any(|p| p.to_string().contains("same URL slug `ci-cd`"))
    );
    assert!(
        plan.problems
            .iter()
            .any(|p| p.to_string().contains("no usable characters"))
    );
}

#[test]
fn same_content_gives_identical_bytes_across_builds() {
    let config = support::sample_config();
    let a = support::build(&config);
    let b = support::build(&config);
    assert_eq!(a.paths(), b.paths());
    for path in a.paths() {
        assert_eq!(a.files[path].identity(), b.files[path].identity(), "{path}");
        assert_eq!(a.files[path].gzip, b.files[path].gzip, "{path}");
        assert_eq!(
            a.files[path].fill_brotli(),
            b.files[path].fill_brotli(),
            "{path}"
        );
        assert_eq!(a.files[path].hash, b.files[path].hash, "{path}");
    }
}

#[test]
fn hostile_text_is_escaped_and_forbidden_characters_are_stripped() {
    let site = Site::new();
    site.write("x.md",
        "---\ntitle: \"<b>T</b> & ]]> \\u0001\\u000B\\uFFFE end\"\ndate: 2024-01-01\ntags: [\"a&b\", \"<t>\"]\nsummary: \"]]> & <x>\"\n---\nbody ]]> <![CDATA[ x ]]> \u{1}\u{7f} &amp; <script>\n",
    );
    let config = site.config("");
    let snapshot = support::build(&config);
    for path in snapshot.paths() {
        let body = snapshot.files[path].identity();
        if path.ends_with(".xml") || path.ends_with(".opml") {
            support::assert_well_formed_xml(body);
        }
    }
    let parsed = parse_back(snapshot.files["atom.xml"].identity());
    assert_eq!(
        parsed.entries[0].title.as_ref().map(|t| t.content.as_str()),
        Some("<b>T</b> & ]]> end")
    );
    let parsed = parse_back(snapshot.files["rss.xml"].identity());
    assert_eq!(
        parsed.entries[0]
            .summary
            .as_ref()
            .map(|t| unescape_html(&t.content)),
        Some("]]> & <x>".to_string())
    );
}

/// Text from HTML-escaped text (the five entities `render` writes).
fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\u{7f}\\u{fffe}\\u{ffff}&<>\"'\\]\\[]{0,40}",
        "[\\u{0590}-\\u{06ff} \\u{1F600}-\\u{1F64F}\\u{4e00}-\\u{4e50}]{0,40}",
        Just("]]>".repeat(5000)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn arbitrary_titles_tags_and_bodies_always_give_valid_feeds(
        title in arbitrary_text(),
        tags in proptest::collection::vec(arbitrary_text(), 0..4),
        body in arbitrary_text(),
        summary in proptest::option::of(arbitrary_text()),
    ) {
        let yaml = |s: &str| serde_json::to_string(s).expect("json string is a YAML string");
        let tags: Vec<String> = tags.iter().map(|t| yaml(t)).collect();
        let summary = summary.map(|s| format!("summary: {}\n", yaml(&s))).unwrap_or_default();
        let text = format!("---\ntitle: {}\ndate: 2024-01-01\ntags: [{}]\n{summary}---\n{body}\n", yaml(&format!("x{title}")), tags.join(", "));
        let config = support::config_for(std::path::Path::new("/nonexistent"), "");
        let post = match feedsmith::post::parse(&config, std::path::Path::new("p.md"), &text) {
            Ok(post) => {
                post.body.set(Arc::new(feedsmith::post::render_body(&config, &post, &text)));
                Arc::new(post)
            }
            // Rejected input is fine (e.g. a title of only whitespace); a panic is not.
            Err(_) => return Ok(()),
        };
        let plan = feed::plan(&config, &[post], chrono::Utc::now().fixed_offset());
        for f in &plan.feeds {
            for format in Format::ALL {
                let bytes = render::render(&config, f, format).expect("renders");
                match format {
                    Format::Json => { serde_json::from_slice::<serde_json::Value>(&bytes).expect("valid JSON"); }
                    _ => support::assert_well_formed_xml(&bytes),
                }
                parse_back(&bytes);
            }
        }
        support::assert_well_formed_xml(&render::opml(&config, &plan.feeds));
    }
}

#[test]
fn summary_only_feeds_carry_no_full_content() {
    let site = Site::new();
    site.post(
        "a.md",
        "A",
        "2024-01-01",
        &["t"],
        "First paragraph.\n\nSecond paragraph with **markup**.",
    );
    let config = site.config("[feed]\ncontent = \"summary\"\n");
    let snapshot = support::build(&config);
    let rss = support::text(&snapshot, "rss.xml");
    assert!(
        !rss.contains("content:encoded") && rss.contains("<description>"),
        "{rss}"
    );
    let atom = support::text(&snapshot, "atom.xml");
    assert!(
        !atom.contains("<content") && atom.contains("<summary>"),
        "{atom}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&support::text(&snapshot, "feed.json")).expect("json");
    assert!(json["items"][0].get("content_html").is_none());
    assert_eq!(
        json["items"][0]["content_text"],
        json["items"][0]["summary"]
    );
    for path in ["rss.xml", "atom.xml", "feed.json"] {
        assert_eq!(
            parse_back(snapshot.files[path].identity()).entries.len(),
            1,
            "{path}"
        );
    }
}

#[test]
fn only_posts_some_feed_shows_get_a_rendered_body() {
    let site = Site::new();
    for (name, date) in [
        ("old", "2024-01-01"),
        ("mid", "2024-01-02"),
        ("new", "2024-01-03"),
    ] {
        site.post(
            &format!("{name}.md"),
            name,
            date,
            &["t"],
            &format!("Body of {name}."),
        );
    }
    let config = site.config("[feed]\nlimit = 1\n");
    // The cache owns the posts and their bodies: it drops those no feed shows.
    let mut cache = feedsmith::content::Cache::default();
    cache
        .refresh_all(&config, feedsmith::content::Trust::Nothing)
        .expect("loads");
    let loaded = cache.loaded();
    feedsmith::content::ensure_bodies(&config, &loaded.posts.iter().collect::<Vec<_>>());
    assert!(loaded.posts.iter().all(|p| p.body.get().is_some()));
    let snap = support::build_loaded(&config, &loaded);
    cache.release_bodies(&snap.shown());
    let with_body: Vec<&str> = loaded
        .posts
        .iter()
        .filter(|p| p.body.get().is_some())
        .map(|p| p.title.as_str())
        .collect();
    assert_eq!(
        with_body,
        ["new"],
        "shown posts keep a body, the rest drop it"
    );
    let rss = support::text(&snap, "rss.xml");
    assert!(rss.contains("Body of new."), "{rss}");
    assert!(!rss.contains("Body of mid."), "{rss}");
}
