//! Pages for people: the directory at `/` and a preview page per feed. Front matter cannot
//! inject markup; links are relative (or on `server.public_url` when it is set) and every
//! one reaches a file of the snapshot; each page discovers its own feed only; the directory
//! orders feeds as people look for them; unchanged pages are kept across rebuilds; and the
//! pages are served like feeds (validators, 304, gzip) with a redirect to the slash form.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::test as atest;
use feedsmith::snapshot::Snapshot;
use feedsmith::{Config, content};
use lol_html::{RewriteStrSettings, element, rewrite_str, text};

use crate::http::{app, get, header_of};
use crate::support::{self, Site};

// ---- reading the pages ---------------------------------------------------------------

/// One start tag: name and attributes (values decoded).
#[derive(Debug, Clone)]
struct El {
    name: String,
    attrs: BTreeMap<String, String>,
}

impl El {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

/// Decodes the character references the pages use.
fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every start tag of a page, in document order, read by an HTML tokenizer.
fn elements(html: &str) -> Vec<El> {
    let found = RefCell::new(Vec::new());
    rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![element!("*", |el| {
                found.borrow_mut().push(El {
                    name: el.tag_name(),
                    attrs: el
                        .attributes()
                        .iter()
                        .map(|a| (a.name(), decode(&a.value())))
                        .collect(),
                });
                Ok(())
            })],
            ..RewriteStrSettings::new()
        },
    )
    .expect("the page parses as HTML");
    found.into_inner()
}

/// The text of each element matching `selector` (decoded, whitespace kept; matches must
/// not nest).
fn texts(html: &str, selector: &str) -> Vec<String> {
    let found: RefCell<Vec<String>> = RefCell::new(Vec::new());
    rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![
                element!(selector, |_| {
                    found.borrow_mut().push(String::new());
                    Ok(())
                }),
                text!(selector, |t| {
                    if let Some(last) = found.borrow_mut().last_mut() {
                        last.push_str(t.as_str());
                    }
                    Ok(())
                }),
            ],
            ..RewriteStrSettings::new()
        },
    )
    .expect("the page parses as HTML");
    found.into_inner().iter().map(|t| decode(t)).collect()
}

/// The pages of a snapshot: path -> HTML.
fn pages(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot
        .paths()
        .into_iter()
        .filter(|p| p.ends_with(".html"))
        .map(|p| (p.clone(), support::text(snapshot, p)))
        .collect()
}

/// The URL a page is served at, relative to the server root (`tags/x/`).
fn page_url(path: &str) -> url::Url {
    let dir = path.strip_suffix("index.html").expect("an index.html");
    let encoded: String = dir
        .split_inclusive('/')
        .map(|s| {
            let (name, slash) = s.strip_suffix('/').map_or((s, ""), |n| (n, "/"));
            format!("{}{slash}", feedsmith::text::encode_segment(name))
        })
        .collect();
    url::Url::parse("http://pages.test/")
        .and_then(|u| u.join(&encoded))
        .expect("url")
}

/// The snapshot key a URL on the test host names (decoded, without the leading `/`).
fn key_of(url: &url::Url) -> String {
    percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
        .decode_utf8()
        .expect("utf-8 path")
        .into_owned()
}

fn ids(html: &str) -> BTreeSet<String> {
    elements(html)
        .into_iter()
        .filter_map(|e| e.attr("id").map(str::to_string))
        .collect()
}

fn build(config: &Config) -> Arc<Snapshot> {
    support::build(config)
}

// ---- sites -----------------------------------------------------------------------------

const HOSTILE_TITLE: &str = "<script>alert(1)</script> \"q\" & 'a' \"><img src=x onerror=alert(1)>";
const HOSTILE_TAGS: [&str; 4] = [
    "<script>alert(2)</script>",
    "\"><img src=x onerror=alert(3)>",
    "a&b \"c\" 'd'",
    "</style><script>alert(4)</script>",
];

/// Posts whose every front-matter value tries to break out of the markup.
fn hostile_site() -> Site {
    let site = Site::new();
    let tags: Vec<String> = HOSTILE_TAGS.iter().map(|t| format!("  - {t:?}")).collect();
    site.write(
        "news/a.md",
        &format!(
            "---\ntitle: {HOSTILE_TITLE:?}\ndate: 2024-11-19\ntags:\n{}\nauthor: \"<b onmouseover=alert(5)>Eve</b>\"\nsummary: \"</p><script>alert(6)</script>\"\ncategory: \"\\\"><svg onload=alert(7)>\"\nbanner: \"x\\\" onerror=\\\"alert(8)\"\n---\nbody\n",
            tags.join("\n")
        ),
    );
    site.write(
        "news/b.md",
        "---\ntitle: \"B\"\ndate: 2024-11-20\nlang: \"\\\"><script>alert(9)</script>\"\ntags: [\"<script>\"]\n---\nbody\n",
    );
    site
}

/// Three categories and four tags of different sizes, one language.
fn ordered_site() -> Site {
    let site = Site::new();
    site.post("news/1.md", "One", "2024-01-01", &["b", "a"], "x")
        .post("news/2.md", "Two", "2024-01-02", &["b", "a"], "x")
        .post("news/3.md", "Three", "2024-01-03", &["b", "c"], "x")
        .post("blog/4.md", "Four", "2024-01-04", &["d"], "x")
        .post("blog/5.md", "Five", "2024-01-05", &[], "x")
        .post("zz/6.md", "Six", "2024-01-06", &[], "x");
    site
}

// ---- tests -----------------------------------------------------------------------------

#[test]
fn no_front_matter_value_injects_markup_into_any_page() {
    let site = hostile_site();
    let snapshot = build(&site.config("[site]\nbase_url = \"https://www.example.org/\"\n"));
    let pages = pages(&snapshot);
    assert!(pages.len() >= 8, "{:?}", pages.keys());
    for (path, html) in &pages {
        let els = elements(html);
        let scripts: Vec<&El> = els.iter().filter(|e| e.name == "script").collect();
        assert_eq!(scripts.len(), 1, "only the page's own script in `{path}`");
        assert!(scripts[0].attrs.is_empty(), "{path}");
        for el in &els {
            assert!(
                !["svg", "b", "iframe", "object", "embed", "base"].contains(&el.name.as_str()),
                "`{path}` has a <{}> from front matter",
                el.name
            );
            for (name, value) in &el.attrs {
                assert!(!name.starts_with("on"), "`{path}`: {name}={value:?}");
                if el.attr("rel") == Some("icon") {
                    assert_eq!(value, if name == "href" { "data:," } else { "icon" });
                } else if ["href", "src"].contains(&name.as_str()) {
                    let scheme = value.split(['/', '#', '?']).next().unwrap_or_default();
                    assert!(
                        !scheme.contains(':') || scheme == "http:" || scheme == "https:",
                        "`{path}`: {name}={value:?}"
                    );
                }
            }
            if el.name == "img" {
                assert_eq!(el.attr("class"), Some("th"), "`{path}`: only banners");
            }
        }
        assert_eq!(texts(html, "style").len(), 1, "{path}");
        assert!(!texts(html, "style")[0].contains("<"), "{path}");
    }
    // The hostile values are there, as text.
    let tag_pages: Vec<(&String, &String)> = pages
        .iter()
        .filter(|(p, _)| p.contains("tags/") && !p.contains("alert(9)"))
        .collect();
    for tag in HOSTILE_TAGS {
        let page = tag_pages
            .iter()
            .find(|(_, html)| texts(html, "h1") == [format!("Tag: {tag}")])
            .unwrap_or_else(|| panic!("a page titled with {tag:?}"));
        assert!(
            texts(page.1, "h3 a").contains(&HOSTILE_TITLE.to_string()),
            "{tag:?}"
        );
        assert!(texts(page.1, "article p").contains(&"</p><script>alert(6)</script>".to_string()));
    }
    let dir = &pages["index.html"];
    let names = texts(dir, "a.n");
    for tag in HOSTILE_TAGS {
        assert!(names.contains(&tag.to_string()), "{tag:?} in {names:?}");
    }
    assert!(names.contains(&"\"><svg onload=alert(7)>".to_string()));
    let langs: Vec<String> = elements(dir)
        .iter()
        .filter_map(|e| e.attr("lang").map(str::to_string))
        .collect();
    assert!(langs.contains(&"\"><script>alert(9)</script>".to_string()));
}

#[test]
fn links_are_relative_and_reach_files_of_the_snapshot() {
    let site = hostile_site();
    site.post("news/c.md", "C", "2024-11-21", &["内核", "C++", "a b"], "x");
    let base = "https://www.example.org/blog/";
    let snapshot = build(&site.config(&format!("[site]\nbase_url = {base:?}\n")));
    let pages = pages(&snapshot);
    let mut checked = 0;
    for (path, html) in &pages {
        let here = page_url(path);
        for el in elements(html) {
            if el.attr("rel") == Some("icon") {
                continue; // `data:,`: no request for an icon
            }
            let href = match (el.name.as_str(), el.attr("href"), el.attr("src")) {
                ("a" | "link", Some(href), _) => href.to_string(),
                ("img", _, Some(src)) => {
                    assert!(src.starts_with(base), "banner on the site: {src}");
                    continue;
                }
                _ => continue,
            };
            if href.starts_with(base) {
                continue; // a post, on the site
            }
            assert!(!href.contains("://"), "`{path}`: {href} is not relative");
            let target = here.join(&href).expect("resolves");
            let key = key_of(&target);
            assert!(
                snapshot.get(&key).is_some(),
                "`{path}`: {href} -> `{key}` is not served"
            );
            if let Some(fragment) = target.fragment() {
                let page = snapshot.get(&key).expect("served").decompress();
                let page = String::from_utf8(page).expect("utf-8");
                assert!(
                    ids(&page).contains(fragment),
                    "`{path}`: {href}: no #{fragment}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked} links checked");
}

#[test]
fn links_are_absolute_on_public_url_when_it_is_set() {
    let site = ordered_site();
    let public = "https://feeds.example.net/x/";
    let base = "https://www.example.org/";
    let snapshot = build(&site.config(&format!(
        "[site]\nbase_url = {base:?}\n[server]\npublic_url = {public:?}\n"
    )));
    for (path, html) in pages(&snapshot) {
        let hrefs: Vec<String> = elements(&html)
            .iter()
            .filter(|e| e.name == "a" || (e.name == "link" && e.attr("rel") != Some("icon")))
            .filter_map(|e| e.attr("href").map(str::to_string))
            .collect();
        assert!(!hrefs.is_empty());
        for href in hrefs {
            if href.starts_with(base) || href.starts_with('#') {
                continue; // a post on the site, or a section of the page
            }
            let rest = href
                .strip_prefix(public)
                .unwrap_or_else(|| panic!("`{path}`: {href} is not on public_url"));
            let target = url::Url::parse("http://pages.test/")
                .and_then(|u| u.join(rest))
                .expect("url");
            assert!(snapshot.get(&key_of(&target)).is_some(), "`{path}`: {href}");
        }
    }
}

#[test]
fn each_page_discovers_its_own_feed_only() {
    let site = ordered_site();
    let snapshot = build(&site.config(""));
    let pages = pages(&snapshot);
    assert_eq!(pages.len(), 1 + 3 + 4, "{:?}", pages.keys());
    for (path, html) in &pages {
        let here = page_url(path);
        let mut found: Vec<String> = elements(html)
            .iter()
            .filter(|e| e.name == "link" && e.attr("rel") == Some("alternate"))
            .map(|e| key_of(&here.join(e.attr("href").expect("href")).expect("url")))
            .collect();
        found.sort();
        let dir = path.strip_suffix("index.html").expect("index.html");
        let mut expected: Vec<String> = ["atom.xml", "feed.json", "rss.xml"]
            .iter()
            .map(|f| format!("{dir}{f}"))
            .collect();
        if dir.is_empty() {
            expected.push("feeds.opml".into());
            expected.sort();
        }
        assert_eq!(found, expected, "{path}");
    }
}

#[test]
fn directory_lists_global_then_categories_then_tags_by_post_count() {
    let site = ordered_site();
    let snapshot = build(&site.config(""));
    let html = support::text(&snapshot, "index.html");
    let sections: Vec<String> = texts(&html, "h2");
    assert_eq!(sections, ["All posts", "Categories", "Tags (4)"]);
    assert_eq!(
        texts(&html, "a.n"),
        ["news", "blog", "zz", "b", "a", "c", "d"]
    );
    assert_eq!(
        texts(&html, ".fl .m"),
        [
            "3 posts · 3 January 2024",
            "2 posts · 5 January 2024",
            "1 post · 6 January 2024",
            "3 posts · 3 January 2024",
            "2 posts · 2 January 2024",
            "1 post · 3 January 2024",
            "1 post · 4 January 2024",
        ]
    );
    // The root previews the global feed: its newest entries, newest first.
    assert_eq!(
        texts(&html, "article h3"),
        ["Six", "Five", "Four", "Three", "Two", "One"]
    );
    assert!(html.contains("href=\"feeds.opml\" type=\"text/x-opml\""));
}

#[test]
fn multilingual_directory_groups_by_language_and_dates_follow_it() {
    let site = Site::new();
    site.post("en/news/a.md", "A", "2024-11-19", &["linux"], "x")
        .post("zh/news/b.md", "B", "2024-11-19 10:00", &["内核"], "x");
    let snapshot = build(&site.config("[content]\nlanguages = [\"en\", \"zh\"]\n"));
    let html = support::text(&snapshot, "index.html");
    assert_eq!(texts(&html, "h2"), ["English", "中文"]);
    assert_eq!(
        texts(&html, "h3"),
        [
            "All posts",
            "Categories",
            "Tags (1)",
            "全部文章",
            "分类",
            "标签 (1)"
        ]
    );
    let langs: Vec<String> = elements(&html)
        .iter()
        .filter(|e| e.name == "section" && e.attrs.contains_key("aria-labelledby"))
        .filter_map(|e| e.attr("lang").map(str::to_string))
        .collect();
    assert_eq!(langs, ["en", "zh"]);
    let en = support::text(&snapshot, "en/tags/linux/index.html");
    let zh = support::text(&snapshot, "zh/tags/内核/index.html");
    assert_eq!(texts(&en, "article time"), ["19 November 2024"]);
    assert_eq!(texts(&zh, "article time"), ["2024年11月19日"]);
    assert!(en.starts_with("<!DOCTYPE html><html lang=\"en\">"));
    assert!(zh.starts_with("<!DOCTYPE html><html lang=\"zh\">"));
    assert_eq!(texts(&zh, "h1"), ["标签：内核"]);
    // Each language's own page previews its global feed.
    assert_eq!(
        texts(&support::text(&snapshot, "zh/index.html"), "h3 a"),
        ["B"]
    );
}

#[test]
fn many_tags_get_a_filter_that_works_without_javascript() {
    let site = Site::new();
    for i in 0..30 {
        let tag = format!("{}{i}", ["alpha", "beta", "内核"][i % 3]);
        site.post(&format!("news/{i}.md"), "T", "2024-01-01", &[&tag], "x");
    }
    let snapshot = build(&site.config(""));
    let html = support::text(&snapshot, "index.html");
    let els = elements(&html);
    let input = els
        .iter()
        .find(|e| e.name == "input")
        .expect("a filter box");
    let id = input.attr("id").expect("id");
    assert!(
        els.iter()
            .any(|e| e.name == "label" && e.attr("for") == Some(id)),
        "labelled"
    );
    // First-letter links filter through `:target` rules, one per group.
    assert_eq!(texts(&html, ".az a"), ["All", "A", "B", "内"]);
    let style = &texts(&html, "style")[0];
    for (i, rows) in [(0, 10), (1, 10), (2, 10)] {
        assert!(style.contains(&format!(
            "#tags-k{i}:target~ol>li:not(.k{i}){{display:none}}"
        )));
        let class = format!("k{i}");
        let n = els
            .iter()
            .filter(|e| e.name == "li" && e.attr("class") == Some(class.as_str()))
            .count();
        assert_eq!(n, rows, "group {i}");
        assert!(
            els.iter()
                .any(|e| e.attr("id") == Some(&format!("tags-k{i}")))
        );
    }
}

#[test]
fn unchanged_pages_are_kept_and_changed_ones_rendered_again() {
    let site = Site::new();
    site.post("news/1.md", "One", "2024-01-01", &["a"], "x")
        .post("news/2.md", "Two", "2024-01-02", &["a", "b"], "x")
        .post("news/3.md", "Three", "2024-01-03", &["a"], "x");
    let config = site.config("[feed]\nlimit = 2\n");
    let now = chrono::Utc::now().fixed_offset();
    let mut cache = content::Cache::default();
    let mut next = |previous: Option<&Snapshot>| {
        cache
            .refresh_all(&config, content::Trust::Nothing)
            .expect("refresh");
        let loaded = cache.loaded();
        content::ensure_bodies(&config, &loaded.posts.iter().collect::<Vec<_>>());
        feedsmith::build::build(&config, &loaded, now, previous, 1).expect("builds")
    };
    let first = next(None);
    let again = next(Some(&first));
    for path in ["index.html", "tags/a/index.html", "tags/b/index.html"] {
        assert!(
            Arc::ptr_eq(&first.files[path], &again.files[path]),
            "{path} kept"
        );
    }
    // The oldest post leaves: tag a still shows the same entries (Three and Two) but
    // counts 2 posts now, so its page changes; tag b's page is kept.
    std::fs::remove_file(site.dir().join("news/1.md")).expect("rm");
    let after = next(Some(&again));
    let page = |s: &Snapshot| texts(&support::text(s, "tags/a/index.html"), "header .m");
    assert_eq!(page(&first), ["3 posts · 3 January 2024"]);
    assert_eq!(page(&after), ["2 posts · 3 January 2024"]);
    assert!(Arc::ptr_eq(
        &again.files["tags/b/index.html"],
        &after.files["tags/b/index.html"]
    ));
    // Same content, same bytes: a fresh build agrees with the incremental one.
    let fresh = next(None);
    for (path, file) in &after.files {
        assert_eq!(file.hash, fresh.files[path].hash, "{path}");
    }
    // A new tag makes a feed of its own: the directory changes, the pages whose entries do
    // not link to it are kept.
    site.post("news/4.md", "Four", "2023-12-01", &["c"], "x");
    let fourth = next(Some(&after));
    assert!(!Arc::ptr_eq(
        &after.files["index.html"],
        &fourth.files["index.html"]
    ));
    assert!(fourth.files.contains_key("tags/c/index.html"));
    for path in ["tags/a/index.html", "tags/b/index.html"] {
        assert!(
            Arc::ptr_eq(&after.files[path], &fourth.files[path]),
            "{path} kept"
        );
    }
    // `/b` (sorting before `b`) takes the slug `b`, so tag b's page moves to `tags/b-2/`;
    // tag a's page links Two's `#b` there, so it is rendered again.
    site.post("news/5.md", "Five", "2023-12-02", &["/b"], "x");
    let fifth = next(Some(&fourth));
    assert!(!Arc::ptr_eq(
        &fourth.files["tags/a/index.html"],
        &fifth.files["tags/a/index.html"]
    ));
    assert!(support::text(&fifth, "tags/a/index.html").contains("href=\"../b-2/\""));
    let fresh = next(None);
    for (path, file) in &fifth.files {
        assert_eq!(file.hash, fresh.files[path].hash, "{path}");
    }
    let slugs: Vec<&String> = fifth
        .files
        .keys()
        .filter(|p| p.ends_with("/index.html"))
        .collect();
    assert!(
        slugs.iter().any(|p| p.as_str() == "tags/b-2/index.html"),
        "{slugs:?}"
    );
}

#[actix_web::test]
async fn pages_are_served_like_feeds_and_directories_get_their_slash() {
    let app = app().await;
    let resp = get(&app, "/tags/openeuler/", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_of(&resp, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    let etag = header_of(&resp, header::ETAG);
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(
        header_of(&resp, header::LAST_MODIFIED),
        "Wed, 20 Nov 2024 16:00:00 GMT"
    );
    let body = atest::read_body(resp).await;
    assert!(
        String::from_utf8_lossy(&body)
            .contains("<link rel=\"alternate\" type=\"application/rss+xml\"")
    );
    let again = get(&app, "/tags/openeuler/", &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let gz = get(&app, "/tags/openeuler/", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(header_of(&gz, header::CONTENT_ENCODING), "gzip");
    assert_eq!(header_of(&gz, header::VARY), "Accept-Encoding");
    for (path, location) in [
        ("/tags/openeuler", "./openeuler/"),
        ("/categories/news?x=1", "./news/?x=1"),
    ] {
        let resp = get(&app, path, &[]).await;
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(header_of(&resp, header::LOCATION), location, "{path}");
    }
    for path in ["/tags", "/tags/", "/tags/nope", "/rss.xml/"] {
        assert_eq!(
            get(&app, path, &[]).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}
