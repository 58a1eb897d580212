//! The catalogue of hostile content (`tests/fixtures/hostile/README.md`): one test per row,
//! and one that exports the whole catalogue and checks every file it writes, as a reader of
//! those files would, for scripts, event handlers, dangerous URLs and unknown elements.
//! Inputs too large or too special to commit (a 50 MB post, symlinks, a FIFO, a binary
//! file) are made at run time.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use feedsmith::content::Loaded;
use feedsmith::render::Format;
use feedsmith::sanitize;
use proptest::prelude::*;

use crate::support::{self, Bin, Site, files_under, post_at as post};

const SITE: &str = "[site]\nbase_url = \"https://example.org/blog/\"\n";

/// The committed catalogue, copied into a temp dir that tests may add to.
fn catalogue() -> Site {
    let site = Site::new();
    let from = support::fixture("hostile/content");
    for entry in std::fs::read_dir(&from).expect("catalogue") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, site.dir().join(path.file_name().expect("name"))).expect("copy");
    }
    site
}

fn load(dir: &Path, extra: &str) -> (feedsmith::Config, Loaded) {
    let config = support::config_for(dir, &format!("{SITE}{extra}"));
    let loaded = support::load_with_bodies(&config);
    (config, loaded)
}

fn html_of(loaded: &Loaded, source: &str) -> String {
    support::body(post(loaded, source)).html_text()
}

fn error_of(loaded: &Loaded, source: &str) -> String {
    loaded
        .errors
        .iter()
        .find(|e| e.path == Path::new(source))
        .unwrap_or_else(|| panic!("no error for `{source}`: {:?}", loaded.errors))
        .to_string()
}

fn warnings_of(loaded: &Loaded, source: &str) -> Vec<String> {
    loaded
        .warnings
        .iter()
        .filter(|w| w.path == Path::new(source))
        .map(ToString::to_string)
        .collect()
}

/// Every element and attribute of an HTML fragment, as a second, independent parser
/// (lol_html's tokenizer, not html5ever) sees them.
fn elements(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    use lol_html::{RewriteStrSettings, element, rewrite_str};
    let found = std::cell::RefCell::new(Vec::new());
    let settings = RewriteStrSettings {
        element_content_handlers: vec![element!("*", |el| {
            let attributes = el
                .attributes()
                .iter()
                .map(|a| (a.name(), a.value()))
                .collect();
            found.borrow_mut().push((el.tag_name(), attributes));
            Ok(())
        })],
        ..RewriteStrSettings::new()
    };
    rewrite_str(html, settings).expect("tokenizes");
    found.into_inner()
}

/// The sanitizer's invariant on one HTML fragment: only allowlisted elements, no `on*`
/// attributes, no `style` beyond `text-align`, and every URL absolute http(s) (or mailto).
fn assert_safe_html(html: &str, iframes: bool, context: &str) {
    let allowed: BTreeSet<&str> = sanitize::TAGS
        .iter()
        .map(|(tag, _)| *tag)
        .chain(iframes.then_some("iframe"))
        .collect();
    for (tag, attributes) in elements(html) {
        assert!(
            allowed.contains(tag.as_str()),
            "{context}: element <{tag}> in {html}"
        );
        for (name, value) in attributes {
            assert!(
                !name.starts_with("on"),
                "{context}: <{tag} {name}> in {html}"
            );
            if name == "style" {
                assert!(
                    value.starts_with("text-align: "),
                    "{context}: style `{value}`"
                );
            }
            let urls: Vec<&str> = match name.as_str() {
                "href" | "src" | "poster" | "cite" => vec![value.as_str()],
                "srcset" => value
                    .split(',')
                    .filter_map(|c| c.split_whitespace().next())
                    .collect(),
                _ => vec![],
            };
            for url in urls {
                let ok = url.starts_with("https://")
                    || url.starts_with("http://")
                    || (tag == "a" && url.starts_with("mailto:"));
                assert!(ok, "{context}: <{tag} {name}=`{url}`>");
            }
        }
    }
}

/// The HTML fields of one exported feed file.
fn html_fields(path: &Path, bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let json: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
            json["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i["content_html"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
        Some("xml") => {
            let doc = roxmltree::Document::parse(text).expect("well-formed XML");
            doc.descendants()
                .filter(|n| {
                    let name = n.tag_name().name();
                    name == "encoded" || (name == "content" && n.attribute("type") == Some("html"))
                })
                .filter_map(|n| n.text().map(str::to_string))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Config TOML for the catalogue site with its content in `content`.
fn config_text(content: &Path, extra: &str) -> String {
    support::config_text(content, &format!("{SITE}{extra}"))
}

/// Runs `feedsmith export` with `extra` config (its `[content] dir` set to `content`);
/// returns the export dir (the feeds are in its `feeds/`), stdout and stderr.
fn export(content: &Path, extra: &str) -> (tempfile::TempDir, String, String) {
    let out = tempfile::tempdir().expect("out");
    let ran = Bin::new()
        .config_text(&config_text(content, extra))
        .arg("export")
        .arg("--out")
        .arg(out.path().join("feeds"))
        .run();
    assert!(
        matches!(ran.code(), Some(0 | 1)),
        "export failed: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    (out, ran.stdout, ran.stderr)
}

/// Checks every file of an export: HTML fields by the sanitizer's invariant, and the raw
/// bytes of every feed for `<script`, `javascript:` and `on…=` attributes.
fn assert_export_is_safe(feeds: &Path, iframes: bool) -> usize {
    let mut checked = 0;
    for rel in files_under(feeds) {
        let path = &feeds.join(&rel);
        let name = path.to_string_lossy();
        if name.ends_with(".gz") {
            continue;
        }
        let bytes = std::fs::read(path).expect("read");
        let mut raw = String::from_utf8_lossy(&bytes).to_lowercase();
        if name.ends_with(".html") {
            // A page's own script, the one `<script>` any page may hold (`pages`).
            let own = format!("<script>{}</script>", feedsmith::pages::SCRIPT).to_lowercase();
            assert_eq!(raw.matches(&own).count(), 1, "{name}: its own script");
            raw = raw.replace(&own, "");
        }
        assert!(!raw.contains("<script"), "{name}: <script");
        assert!(!raw.contains("javascript:"), "{name}: javascript:");
        let handler = regex_like_on_attribute(&raw);
        assert!(
            handler.is_none(),
            "{name}: event handler attribute {handler:?}"
        );
        for html in html_fields(path, &bytes) {
            assert_safe_html(&html, iframes, &name);
        }
        checked += 1;
    }
    checked
}

/// The first ` on<letters>=` in `s` (an event-handler attribute), if any.
fn regex_like_on_attribute(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    for (i, window) in bytes.windows(3).enumerate() {
        if window == b" on" {
            let rest = &bytes[i + 3..];
            let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            if letters > 0 && rest.get(letters) == Some(&b'=') {
                return Some(s[i..i + 3 + letters + 1].to_string());
            }
        }
    }
    None
}

/// Adds the inputs made at run time to a catalogue copy.
fn add_generated(dir: &Path) {
    // A title of 200,000 characters.
    support::write(
        dir,
        "long-title.md",
        &support::post(&"title ".repeat(40_000), "2024-07-01", &[], "Body."),
    );
    // Pathological nesting within the size budget.
    support::write(
        dir,
        "deep-quotes.md",
        &support::post(
            "Quotes",
            "2024-07-02",
            &[],
            &format!("{} deep", ">".repeat(100_000)),
        ),
    );
    support::write(
        dir,
        "deep-brackets.md",
        &support::post(
            "Brackets",
            "2024-07-03",
            &[],
            &format!("{} deep", "[".repeat(100_000)),
        ),
    );
    support::write(
        dir,
        "deep-divs.md",
        &support::post(
            "Divs",
            "2024-07-04",
            &[],
            &format!("{} deep", "<div>".repeat(40_000)),
        ),
    );
    // Not text at all.
    let binary: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 256) as u8).collect();
    std::fs::write(dir.join("binary.md"), binary).expect("binary");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink("/etc/passwd", dir.join("passwd.md")).expect("symlink");
        symlink("/etc", dir.join("etc")).expect("dir symlink");
        std::fs::create_dir(dir.join("sub")).expect("mkdir");
        symlink("..", dir.join("sub/loop")).expect("loop");
        symlink("self.md", dir.join("self.md")).expect("self loop");
        support::write(
            dir,
            "inside/real.md",
            &support::post("Real", "2024-07-05", &[], "x"),
        );
        symlink("inside/real.md", dir.join("alias.md")).expect("inner symlink");
        let fifo = dir.join("fifo.md");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    }
}

/// A site of the inputs made at run time, loaded with the catalogue's config.
fn generated() -> (Site, Loaded) {
    let site = Site::new();
    add_generated(site.dir());
    let (_, loaded) = load(site.dir(), "");
    (site, loaded)
}

#[test]
fn a_script_an_event_handler_a_javascript_link_and_an_iframe_are_removed() {
    let site = catalogue();
    let (_, loaded) = load(site.dir(), "");
    let html = html_of(&loaded, "xss.md");
    assert!(
        html.contains("<p>Before.</p>") && html.contains("<p>After.</p>"),
        "{html}"
    );
    assert!(
        html.contains(r#"<img src="https://example.org/blog/x">"#),
        "{html}"
    );
    assert!(html.contains(r#"<a rel="noopener">x</a>"#), "{html}");
    for gone in ["script", "alert", "onerror", "iframe", "evil"] {
        assert!(!html.contains(gone), "`{gone}` in {html}");
    }
    assert_safe_html(&html, false, "xss.md");
}

#[test]
fn variants_of_the_attacks_are_removed_and_good_links_stay() {
    let site = catalogue();
    let (_, loaded) = load(site.dir(), "");
    let html = html_of(&loaded, "xss-variants.md");
    assert_safe_html(&html, false, "xss-variants.md");
    for gone in [
        "alert",
        "evil",
        "<svg",
        "circle",
        "vbscript:",
        "data:",
        "<form",
        "<input",
        "<button",
        "<style",
        "<meta",
        "<base",
        "<link",
        "<object",
        "<embed",
        "<noscript",
        "<math",
        "<template",
        "onclick",
        "target=",
    ] {
        assert!(!html.to_lowercase().contains(gone), "`{gone}` in {html}");
    }
    assert!(html.contains(r#"<a href="https://example.com/ok" rel="noopener">a good link</a>"#));
    assert!(html.contains(r#"<a href="mailto:someone@example.com" rel="noopener">mail</a>"#));
    // srcset keeps its good candidate; the javascript one goes.
    assert!(
        html.contains(r#"srcset="https://example.org/blog/ok.png 2x""#),
        "{html}"
    );
    assert!(html.contains(r#"<video src="https://example.org/blog/clip.mp4" controls="#));
    assert!(html.contains("<blockquote>quoted</blockquote>"));
    assert!(
        html.contains("<p>styled</p>"),
        "style and handlers go, the text stays: {html}"
    );
}

#[test]
fn vuepress_components_are_unwrapped_and_inline_styles_dropped() {
    let site = catalogue();
    let (_, loaded) = load(site.dir(), "");
    let html = html_of(&loaded, "vuepress.md");
    assert_safe_html(&html, false, "vuepress.md");
    let lower = html.to_lowercase();
    for gone in [
        "clientonly",
        "news-newsheader",
        "x-banner",
        "zoom",
        "color:red",
        "$frontmatter",
    ] {
        assert!(!lower.contains(gone), "`{gone}` in {html}");
    }
    assert!(
        html.contains("横幅文字保留"),
        "the text of an unknown element stays: {html}"
    );
    assert!(html.contains(r#"<img src="https://example.org/blog/media/image1.png">"#));
    assert!(html.contains(
        r#"<center><img src="https://example.org/blog/media/image2.png" alt="图2"></center>"#
    ));
    assert!(html.contains("<span>红色文字</span>"));
    // Table alignment survives as the one style kept; task lists become characters.
    assert!(
        html.contains(r#"<th style="text-align: center">中</th>"#),
        "{html}"
    );
    assert!(html.contains("<li>☑ 完成</li>") && html.contains("<li>☐ 未完成</li>"));
    // Footnotes as pulldown-cmark renders them, their link absolute.
    assert!(html.contains(
        r##"<sup><a href="https://example.org/blog/vuepress.html#1" rel="noopener">1</a></sup>"##
    ));
}

#[test]
fn check_verbose_says_what_sanitizing_removed() {
    let site = catalogue();
    let output = Bin::new()
        .config_text(&config_text(site.dir(), ""))
        .args(["check", "--verbose"])
        .run();
    let stderr = &output.stderr;
    for line in [
        "`vuepress.md`: info: <clientonly> unwrapped (unknown or not allowed; its text stays)",
        "`vuepress.md`: info: attribute `style` removed from <img> (2×)",
        "`xss.md`: info: <script> removed with its content",
        "`xss.md`: info: attribute `onerror` removed from <img>",
        "`xss.md`: info: URL removed from `href` of <a>: `javascript:alert(1)`",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "missing `{line}` in:\n{stderr}"
        );
    }
    // Without --verbose: the same problems (exit 1: some posts are skipped), no info lines.
    let quiet = Bin::new()
        .config_text(&config_text(site.dir(), ""))
        .arg("check")
        .run();
    quiet.assert_code(1);
    assert!(
        quiet
            .stderr
            .contains("`yaml-bomb.md`: front matter is not valid YAML")
    );
    assert!(!quiet.stderr.contains(": info:"), "{}", quiet.stderr);
}

#[test]
fn a_yaml_alias_bomb_is_an_error_not_an_explosion() {
    let site = catalogue();
    let (_, loaded) = load(site.dir(), "");
    assert_eq!(
        error_of(&loaded, "yaml-bomb.md"),
        "`yaml-bomb.md`: front matter is not valid YAML: repetition limit exceeded"
    );
}

#[test]
fn control_characters_are_stripped_everywhere() {
    let site = catalogue();
    let (config, loaded) = load(site.dir(), "");
    let p = post(&loaded, "control-characters.md");
    assert_eq!(p.title, "Controlcharacters in the title");
    assert_eq!(p.tags, ["tag"]);
    assert_eq!(p.given_summary.as_deref(), Some("summary"));
    let html = html_of(&loaded, "control-characters.md");
    assert!(
        !html
            .chars()
            .any(|c| (c.is_control() && !matches!(c, '\n' | '\t')) || c == '\u{FFFE}'),
        "{html:?}"
    );
    let snap = support::build(&config);
    for path in snap.paths() {
        let text = support::text(&snap, path);
        if path.ends_with(".xml") || path.ends_with(".opml") {
            support::assert_well_formed_xml(text.as_bytes());
        }
    }
}

#[test]
fn cdata_terminators_in_titles_summaries_tags_and_bodies_keep_feeds_well_formed() {
    let site = catalogue();
    let (config, loaded) = load(site.dir(), "");
    let p = post(&loaded, "cdata-end.md");
    assert_eq!(p.title, "Ends a CDATA section: ]]> in the title");
    let snap = support::build(&config);
    for format in Format::ALL {
        let text = support::text(&snap, format.file_name());
        match format {
            Format::Json => {
                serde_json::from_str::<serde_json::Value>(&text).expect("JSON");
            }
            _ => {
                support::assert_well_formed_xml(text.as_bytes());
                let doc = roxmltree::Document::parse(&text).expect("xml");
                assert!(
                    doc.descendants()
                        .any(|n| n.text() == Some("Ends a CDATA section: ]]> in the title"))
                );
            }
        }
    }
}

#[test]
fn dates_out_of_range_are_errors_naming_the_field() {
    let site = catalogue();
    let (_, loaded) = load(site.dir(), "");
    assert_eq!(
        error_of(&loaded, "date-too-early.md"),
        "`date-too-early.md`:3:7: front matter field `date` is out of range: `0999-12-31` (years 1000 to 9999)"
    );
    assert!(error_of(&loaded, "date-too-late.md").starts_with(
        "`date-too-late.md`:3:7: front matter field `date` is not a date: `10000-01-01`"
    ));
}

#[test]
fn tags_of_dots_and_slashes_never_become_paths_outside_the_feed_tree() {
    let site = catalogue();
    let (out, _, stderr) = export(site.dir(), "");
    let feeds = out.path().join("feeds");
    for rel in files_under(&feeds) {
        let rel = Path::new(&rel);
        assert!(
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{}",
            rel.display()
        );
    }
    assert!(
        feeds.join("tags/a-b/rss.xml").is_file(),
        "`a/b` becomes `a-b`"
    );
    assert!(feeds.join("tags/..-..-etc-passwd/rss.xml").is_file());
    for tag in [".", "..", "/"] {
        assert!(
            stderr.contains(&format!(
                "warning: tag `{tag}` has no usable characters for a URL"
            )),
            "{stderr}"
        );
    }
    assert!(!out.path().join("etc").exists());
}

#[test]
fn a_post_with_two_hundred_tags_keeps_sixty_four_with_a_warning() {
    let site = catalogue();
    let (_, loaded) = load(site.dir(), "");
    assert_eq!(post(&loaded, "many-tags.md").tags.len(), 64);
    assert_eq!(
        warnings_of(&loaded, "many-tags.md"),
        ["`many-tags.md`:4:7: warning: only the first 64 of 200 `tags` are used"]
    );
}

#[test]
fn iframes_are_removed_unless_their_host_is_allowed_and_then_sandboxed() {
    let site = catalogue();
    let (_, loaded) = load(site.dir(), "");
    let html = html_of(&loaded, "iframe.md");
    assert!(
        !html.contains("iframe") && !html.contains("fallback"),
        "{html}"
    );
    let (_, loaded) = load(
        site.dir(),
        "[content]\nallowed_iframe_hosts = [\"www.youtube-nocookie.com\"]\n",
    );
    let html = html_of(&loaded, "iframe.md");
    assert_safe_html(&html, true, "iframe.md");
    assert_eq!(html.matches("<iframe").count(), 1, "{html}");
    assert!(html.contains(
        r#"<iframe src="https://www.youtube-nocookie.com/embed/abc" width="560" height="315" allowfullscreen="" sandbox="allow-scripts allow-same-origin allow-popups">"#
    ), "{html}");
    assert!(!html.contains("plain-http") && !html.contains("evil") && !html.contains("onload"));
}

#[test]
fn html_in_front_matter_stays_text_in_every_format() {
    let site = catalogue();
    let (config, loaded) = load(site.dir(), "");
    let p = post(&loaded, "html-in-front-matter.md");
    assert_eq!(p.title, "<script>alert(1)</script> & <b>bold</b> title");
    let snap = support::build(&config);
    let rss = support::text(&snap, "rss.xml");
    assert!(rss.contains(
        "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; title</title>"
    ));
    // RSS readers take `description` as HTML: the plain summary is escaped for it.
    assert!(
        rss.contains("&lt;i&gt;summary&lt;/i&gt; with &lt;script&gt;"),
        "{rss}"
    );
    let json = support::text(&snap, "feed.json");
    assert!(json.contains(
        r#""title": "\u003cscript>alert(1)\u003c/script> & \u003cb>bold\u003c/b> title""#
    ));
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(
        parsed["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["title"] == "<script>alert(1)</script> & <b>bold</b> title")
    );
    let atom = support::text(&snap, "atom.xml");
    assert!(atom.contains("<name>&lt;img src=x&gt;</name>"), "{atom}");
}

#[test]
fn a_fifty_megabyte_post_is_skipped_by_default_and_summary_only_when_allowed() {
    let site = Site::new();
    let paragraph = format!("{}\n\n", "大段文字内容。".repeat(20));
    let body = paragraph.repeat(50 * 1024 * 1024 / paragraph.len());
    site.post("big.md", "Big", "2024-07-01", &[], &body);
    site.post("small.md", "Small", "2024-07-02", &[], "x");
    let size = std::fs::metadata(site.dir().join("big.md"))
        .expect("meta")
        .len();
    let (_, loaded) = load(site.dir(), "");
    assert_eq!(
        error_of(&loaded, "big.md"),
        format!(
            "`big.md`: file is {size} bytes, over the limit of 4194304 bytes (`content.max_post_bytes`); it is skipped"
        )
    );
    assert_eq!(loaded.posts.len(), 1, "everything else goes on");

    let raised = "[content]\nmax_post_bytes = 104857600\n";
    let (_, loaded) = load(site.dir(), raised);
    let body = support::body(post(&loaded, "big.md"));
    assert!(body.html.is_none(), "over max_entry_bytes: no HTML");
    assert!(body.summary.starts_with("大段文字内容。") && body.summary.chars().count() <= 201);

    let (out, _, _) = export(site.dir(), raised);
    let rss = std::fs::read_to_string(out.path().join("feeds/rss.xml")).expect("rss");
    assert!(rss.len() < 64 * 1024, "summary only: {} bytes", rss.len());
    assert!(rss.contains("<title>Big</title>"));

    // With the default limit the big file is never read: the export stays small.
    let (_, stdout, _) = export(site.dir(), "");
    let peak: f64 = stdout
        .split("peak memory ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in `{stdout}`"));
    assert!(peak < 100.0, "peak {peak} MiB");
}

#[test]
fn a_title_of_two_hundred_thousand_characters_is_cut_with_a_warning() {
    let (_site, loaded) = generated();
    let p = post(&loaded, "long-title.md");
    assert!(p.title.chars().count() <= 501, "{}", p.title.len());
    assert!(p.title.ends_with('…'));
    assert_eq!(
        warnings_of(&loaded, "long-title.md"),
        ["`long-title.md`:2:8: warning: `title` is cut to 500 characters"]
    );
}

#[test]
fn pathological_nesting_renders_in_bounded_time_and_memory() {
    let site = Site::new();
    add_generated(site.dir());
    let started = std::time::Instant::now();
    let (_, loaded) = load(site.dir(), "");
    // Quotes and brackets are published (flattened past 64 levels); 40,000 nested divs
    // are shown by summary only (HTML nesting over sanitize::MAX_NESTING).
    assert!(html_of(&loaded, "deep-quotes.md").contains("deep"));
    assert!(html_of(&loaded, "deep-brackets.md").contains("deep"));
    assert!(support::body(post(&loaded, "deep-divs.md")).html.is_none());
    assert_safe_html(&html_of(&loaded, "deep-quotes.md"), false, "deep-quotes.md");
    // Generous for a debug build on a loaded 2-core machine; seconds per post before.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_binary_file_named_md_is_an_error() {
    let (_site, loaded) = generated();
    assert!(
        error_of(&loaded, "binary.md").contains("file is not valid UTF-8"),
        "{:?}",
        loaded.errors
    );
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_content_dir_are_not_followed_and_loops_are_walked_once() {
    let (site, loaded) = generated();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    for expected in [
        "`passwd.md`: warning: symlink leads outside the content directory, to `/etc/passwd`; not followed (`content.follow_external_symlinks`)",
        "`etc`: warning: symlink leads outside the content directory, to `/etc`; not followed (`content.follow_external_symlinks`)",
    ] {
        assert!(
            warnings.iter().any(|w| w == expected),
            "{expected}\nin {warnings:#?}"
        );
    }
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("`sub/loop`: warning: symlink loop")),
        "{warnings:#?}"
    );
    assert!(
        error_of(&loaded, "self.md").contains("cannot read file"),
        "{:?}",
        loaded.errors
    );
    // A symlink inside the root works like the file it points to.
    let sources: BTreeSet<&str> = loaded.posts.iter().map(|p| p.source.as_str()).collect();
    assert!(
        sources.contains("alias.md")
            || loaded
                .errors
                .iter()
                .any(|e| e.to_string().contains("alias.md"))
    );
    assert!(
        !sources
            .iter()
            .any(|s| s.starts_with("etc/") || s.starts_with("sub/loop"))
    );
    // Nothing from /etc was read: the only errors are the files made to fail.
    for e in &loaded.errors {
        let path = e.path.to_string_lossy();
        assert!(!path.starts_with("etc"), "{e}");
    }
    // Allowed explicitly, the external link is followed (and fails for want of front matter).
    let (_, loaded) = load(site.dir(), "[content]\nfollow_external_symlinks = true\n");
    assert!(error_of(&loaded, "passwd.md").contains("no front matter"));
}

#[cfg(unix)]
#[test]
fn a_fifo_named_like_a_post_is_refused_without_blocking() {
    let (_site, loaded) = generated();
    assert_eq!(
        error_of(&loaded, "fifo.md"),
        "`fifo.md`: not a regular file (a FIFO, socket or device named like a post); it is skipped"
    );
}

#[test]
fn every_exported_file_of_the_catalogue_is_safe() {
    let site = catalogue();
    add_generated(site.dir());
    let (out, stdout, _) = export(site.dir(), "");
    let checked = assert_export_is_safe(&out.path().join("feeds"), false);
    assert!(checked > 50, "{checked} files checked; {stdout}");
    let (out, _, _) = export(
        site.dir(),
        "[content]\nallowed_iframe_hosts = [\"www.youtube-nocookie.com\"]\n",
    );
    assert_export_is_safe(&out.path().join("feeds"), true);
}

#[test]
fn every_exported_file_of_the_sample_content_is_safe() {
    let checked = assert_export_is_safe(&support::root().join("feeds"), false);
    assert!(checked >= 10, "{checked}");
}

#[test]
fn feeds_keep_full_content_newest_first_within_the_feed_budget() {
    let site = Site::new();
    let body = "内容很长的段落。".repeat(2000); // ~48 KB of HTML each
    for day in 1..=9 {
        site.post(
            &format!("p{day}.md"),
            &format!("Post {day}"),
            &format!("2024-05-0{day}"),
            &["t"],
            &body,
        );
    }
    let (config, _) = load(
        site.dir(),
        "[feed]\nmax_entry_bytes = 65536\nmax_feed_bytes = 200000\n",
    );
    let snap = support::build(&config);
    for format in Format::ALL {
        let text = support::text(&snap, format.file_name());
        assert!(
            text.len() <= 200_000,
            "{}: {} bytes",
            format.file_name(),
            text.len()
        );
        let full = match format {
            Format::Rss => text.matches("<content:encoded>").count(),
            Format::Atom => text.matches("<content type=\"html\">").count(),
            Format::Json => text.matches("\"content_html\"").count(),
        };
        assert!(
            (2..9).contains(&full),
            "{}: {full} entries with content",
            format.file_name()
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&support::text(&snap, "feed.json")).expect("json");
    let items = json["items"].as_array().expect("items");
    let with_content: Vec<bool> = items
        .iter()
        .map(|i| i["content_html"].is_string())
        .collect();
    let first_without = with_content
        .iter()
        .position(|c| !c)
        .expect("some summary-only");
    assert!(
        with_content[..first_without].iter().all(|c| *c),
        "newest first"
    );
    assert!(
        with_content[first_without..].iter().all(|c| !c),
        "then summary only"
    );
    assert!(
        items[first_without]["content_text"].is_string(),
        "JSON Feed needs content"
    );
}

fn hostile_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<script>alert(1)</script>".to_string()),
        Just("<SCRIPT>".to_string()),
        Just("<img src=x onerror=alert(1)>".to_string()),
        Just("<a href=\"javascript:alert(1)\">".to_string()),
        Just("<a href=\" &#106;avascript:x\">".to_string()),
        Just("<svg onload=alert(1)>".to_string()),
        Just("<iframe src=https://evil/>".to_string()),
        Just("<ClientOnly>".to_string()),
        Just("<x-y>".to_string()),
        Just("<p style=\"zoom:2\">".to_string()),
        Just("<img srcset=\"javascript:x 1x\">".to_string()),
        Just("</div>".to_string()),
        Just("<div>".to_string()),
        Just("<!--".to_string()),
        Just("]]>".to_string()),
        Just("<![CDATA[".to_string()),
        Just("\n\n".to_string()),
        Just("> ".to_string()),
        Just("[x](javascript:y)".to_string()),
        Just("`".to_string()),
        "[a-z <>\"'=/&;:#\\[\\]()!*_-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("FEEDSMITH_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        .. ProptestConfig::default()
    })]
    /// Arbitrary bodies mixing hostile fragments: never a panic, always well-formed XML and
    /// valid JSON, and the sanitizer's invariant in every format.
    #[test]
    fn arbitrary_hostile_bodies_always_give_safe_valid_feeds(
        parts in proptest::collection::vec(hostile_fragment(), 0..40),
    ) {
        let body: String = parts.concat();
        let text = format!("---\ntitle: t\ndate: 2024-01-01\ntags: [a]\n---\n{body}\n");
        let config = support::config_for(Path::new("/nonexistent"), SITE);
        let post = feedsmith::post::parse(&config, Path::new("p.md"), &text).expect("parses");
        post.body.set(std::sync::Arc::new(feedsmith::post::render_body(&config, &post, &text)));
        let plan = feedsmith::feed::plan(&config, &[std::sync::Arc::new(post)], chrono::Utc::now().fixed_offset());
        for feed in &plan.feeds {
            for format in Format::ALL {
                let bytes = feedsmith::render::render(&config, feed, format).expect("renders");
                let path = PathBuf::from(format!("x/{}", format.file_name()));
                match format {
                    Format::Json => { serde_json::from_slice::<serde_json::Value>(&bytes).expect("valid JSON"); }
                    _ => support::assert_well_formed_xml(&bytes),
                }
                for html in html_fields(&path, &bytes) {
                    assert_safe_html(&html, false, &body);
                }
            }
        }
    }
}

#[test]
fn the_catalogue_table_names_every_committed_fixture() {
    let readme = std::fs::read_to_string(support::fixture("hostile/README.md")).expect("README");
    for entry in std::fs::read_dir(support::fixture("hostile/content")).expect("dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not in the table"
        );
    }
}

#[test]
fn a_banner_that_is_not_an_http_url_is_ignored_with_a_warning() {
    let site = catalogue();
    for base in ["site", "post"] {
        let (_, loaded) = load(
            site.dir(),
            &format!("[content]\nbanner_base = \"{base}\"\n"),
        );
        assert_eq!(post(&loaded, "banner-javascript.md").banner, None, "{base}");
        assert_eq!(
            warnings_of(&loaded, "banner-javascript.md"),
            ["`banner-javascript.md`:4:9: warning: `banner` is not an http(s) URL; it is ignored"]
        );
    }
}
