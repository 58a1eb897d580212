//! Pure rendering: a planned `Feed` document (a subscription document or an archive page)
//! becomes bytes in one format (`rss`, `atom`, `json`), with its RFC 5005 history links; the
//! OPML list of every feed is rendered here too (the HTML pages are `pages`).
//! Deterministic: same feed, same bytes. No I/O, no clock.

mod atom;
mod json;
mod rss;

use std::sync::Arc;

use crate::config::{Config, ContentMode};
use crate::error::{Error, RenderError};
use crate::feed::{Feed, Page};

/// The three feed formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Rss,
    Atom,
    Json,
}

impl Format {
    /// Every format, in a fixed order.
    pub const ALL: [Format; 3] = [Format::Rss, Format::Atom, Format::Json];

    /// File name inside a feed's directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Rss => "rss.xml",
            Format::Atom => "atom.xml",
            Format::Json => "feed.json",
        }
    }

    /// File name of document `number` of a feed, relative to the feed's directory:
    /// `rss.xml` for the subscription document (0), `archive/3.rss.xml` for archive page 3
    /// (`archive/3.atom.xml`, `archive/3.json`).
    pub fn page_file_name(self, number: usize) -> String {
        if number == 0 {
            return self.file_name().to_string();
        }
        let extension = match self {
            Format::Rss => "rss.xml",
            Format::Atom => "atom.xml",
            Format::Json => "json",
        };
        format!("{ARCHIVE_DIR}{number}.{extension}")
    }

    /// Media type without parameters, for `type` attributes of links.
    fn media_type(self) -> &'static str {
        self.content_type().split(';').next().unwrap_or_default()
    }

    /// Media type with charset, for `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml; charset=utf-8",
            Format::Atom => "application/atom+xml; charset=utf-8",
            Format::Json => "application/feed+json; charset=utf-8",
        }
    }
}

/// Content type of the OPML list.
pub const OPML_CONTENT_TYPE: &str = "text/x-opml; charset=utf-8";
/// Path of the OPML list.
pub const OPML_PATH: &str = "feeds.opml";
/// File name of the pages for people in their directory (`pages`), and the root page.
pub const INDEX_PATH: &str = "index.html";

/// Directory of a feed's archive pages, inside the feed's directory.
pub const ARCHIVE_DIR: &str = "archive/";
/// Namespace of `fh:archive` (RFC 5005 §4).
const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";

/// Absolute URL of document `number` of `feed` (0: the subscription document) in `format`.
pub fn page_url(feed: &Feed, format: Format, number: usize) -> String {
    format!("{}{}", feed.dir_url, format.page_file_name(number))
}

/// Absolute URL of this document of `feed` in `format`: its `rel="self"`.
pub fn self_url(feed: &Feed, format: Format) -> String {
    page_url(feed, format, feed.page.number)
}

/// RFC 5005 links of a document besides `self`, as (rel, URL) in `format`: the subscription
/// document links its newest archive page (`prev-archive`); an archive page links the
/// subscription document (`current`), the next older page (`prev-archive`) and the next
/// newer one (`next-archive`) where they exist.
fn history_links(feed: &Feed, format: Format) -> Vec<(&'static str, String)> {
    let Page { number, of } = feed.page;
    let mut links = Vec::new();
    if number > 0 {
        links.push(("current", page_url(feed, format, 0)));
    }
    let older = if number == 0 { of } else { number - 1 };
    if older > 0 {
        links.push(("prev-archive", page_url(feed, format, older)));
    }
    if number > 0 && number < of {
        links.push(("next-archive", page_url(feed, format, number + 1)));
    }
    links
}

/// The page JSON Feed's `next_url` names: the next older document (the same one as
/// `prev-archive`), paging back from the subscription document to archive page 1.
fn next_url(feed: &Feed) -> Option<String> {
    history_links(feed, Format::Json)
        .into_iter()
        .find_map(|(rel, url)| (rel == "prev-archive").then_some(url))
}

/// `xml` with `<fh:archive/>` (its namespace declared by the caller) as the first child of
/// the element that starts with `parent` (`<channel`, `<feed`), on its own line after
/// `indent`. Inserted here because both crates write extension elements after the entries,
/// where Atom's schema has no room for them (RFC 4287 §4.1.1). The start tag ends at its
/// first `>`: attribute values are escaped.
fn mark_archive(xml: Vec<u8>, parent: &str, indent: &str) -> Vec<u8> {
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    let Some(end) = find(&xml, parent.as_bytes(), 0).and_then(|at| find(&xml, b">", at)) else {
        return xml;
    };
    let mark = format!("{indent}<fh:archive/>");
    let mut out = Vec::with_capacity(xml.len() + mark.len());
    out.extend_from_slice(&xml[..=end]);
    out.extend_from_slice(mark.as_bytes());
    out.extend_from_slice(&xml[end + 1..]);
    out
}

/// Whether the entries of `feed` carry HTML content (so their bodies must be loaded):
/// `feed.content` for subscription documents, `feed.archive_content` for archive pages.
pub fn shows_content(config: &Config, feed: &Feed) -> bool {
    let mode = if feed.page.is_archive() {
        config.feed.archive_content
    } else {
        config.feed.content
    };
    mode == ContentMode::Full
}

/// What the entries of a feed show besides their front matter, taken once for all three
/// formats: summaries from the posts, content from their bodies.
#[derive(Debug, Clone, Default)]
pub struct Texts<'a> {
    /// Summary of each entry.
    pub summaries: Vec<&'a str>,
    /// HTML content of each entry; `None` for an entry shown by its summary only (summary
    /// feeds, bodies over `feed.max_entry_bytes`, entries past `feed.max_feed_bytes`).
    pub contents: Vec<Option<String>>,
}

impl Texts<'_> {
    fn summary(&self, i: usize) -> &str {
        self.summaries.get(i).copied().unwrap_or_default()
    }

    fn content(&self, i: usize) -> Option<&str> {
        self.contents.get(i)?.as_deref()
    }
}

/// Bytes an entry can take in the largest of the three formats: text escaped for XML (at
/// most 5 bytes per markup character more), plus the entry's fixed parts.
fn entry_cost(post: &crate::post::Post, summary: &str, content: &str) -> usize {
    let escaped = |s: &str| {
        // Written as a sum of 0/1 so that it vectorizes: it runs over every entry's HTML.
        s.len()
            + 5 * s
                .as_bytes()
                .iter()
                .map(|&b| usize::from(matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'')))
                .sum::<usize>()
    };
    const FIXED: usize = 1024;
    FIXED
        + escaped(&post.title)
        + 2 * escaped(summary)
        + escaped(content)
        + post.url.len() * 3
        + post.id.len()
        + post.banner.as_ref().map_or(0, |b| b.len() * 2)
        + post
            .tags
            .iter()
            .chain(&post.categories)
            .chain(&post.authors)
            .map(|s| escaped(s) + 64)
            .sum::<usize>()
}

/// The texts of a feed's entries: their summaries, and with content (`shows_content`) their
/// loaded bodies' HTML (`content::ensure_bodies`; an entry without a body shows no
/// content). Entries keep their content, newest first, while the document stays within
/// `feed.max_feed_bytes`; from the first entry that would pass it on, entries carry their
/// summary only.
pub fn texts<'a>(config: &Config, feed: &'a Feed) -> Texts<'a> {
    let summaries: Vec<&str> = feed.entries.iter().map(|p| p.summary.as_str()).collect();
    let mut contents = Vec::new();
    if shows_content(config, feed) {
        let mut spent = 0usize;
        let mut within = true;
        for (post, summary) in feed.entries.iter().zip(&summaries) {
            let html = post
                .body
                .get()
                .and_then(|b| b.html.as_ref().map(|h| h.text()));
            let cost = entry_cost(post, summary, html.as_deref().unwrap_or(""));
            spent = spent.saturating_add(cost);
            within = within && spent <= config.feed.max_feed_bytes;
            contents.push(html.filter(|_| within));
        }
    }
    Texts {
        summaries,
        contents,
    }
}

/// Renders one feed in one format (its entries' bodies must be loaded, see [`texts`]).
pub fn render(config: &Config, feed: &Feed, format: Format) -> Result<Vec<u8>, Error> {
    render_with(config, feed, format, &texts(config, feed))
}

/// Renders one feed in one format with its entries' `texts`.
pub fn render_with(
    config: &Config,
    feed: &Feed,
    format: Format,
    texts: &Texts,
) -> Result<Vec<u8>, Error> {
    let result = match format {
        Format::Rss => rss::render(config, feed, texts),
        Format::Atom => atom::render(config, feed, texts),
        Format::Json => json::render(config, feed, texts),
    };
    result.map_err(|source| Error::Render {
        path: format!("{}{}", feed.dir, format.page_file_name(feed.page.number)),
        source,
    })
}

/// The WebSub hubs a feed document advertises (`rel="hub"`, JSON Feed `hubs`): every
/// subscription document; no archive page (nobody subscribes to one, no hub hears of one).
fn hubs<'c>(config: &'c Config, feed: &Feed) -> impl Iterator<Item = &'c str> {
    let hubs = if feed.page.is_archive() {
        &[][..]
    } else {
        &config.websub.hubs[..]
    };
    hubs.iter().map(|hub| hub.url.as_str())
}

/// Escapes text for XML/HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    push_escaped_html(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

/// For each byte, 0 or one plus the index of its replacement in [`push_replaced`].
static SPECIAL: [u8; 256] = {
    let mut table = [0; 256];
    table[b'&' as usize] = 1;
    table[b'<' as usize] = 2;
    table[b'>' as usize] = 3;
    table[b'"' as usize] = 4;
    table[b'\'' as usize] = 5;
    table
};

/// Appends `s` with `& < > " '` replaced by `replacements` (in that order). A table
/// look-up per byte: twice as fast as a `match` on post HTML.
fn push_replaced(out: &mut Vec<u8>, s: &str, replacements: [&[u8]; 5]) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let class = SPECIAL[usize::from(b)];
        if class == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(replacements[usize::from(class - 1)]);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

/// Appends `s` escaped as [`escape`] does.
fn push_escaped_html(out: &mut Vec<u8>, s: &str) {
    push_replaced(out, s, [b"&amp;", b"&lt;", b"&gt;", b"&quot;", b"&#39;"]);
}

/// Appends `s` escaped as quick-xml escapes text and attribute values for the `rss` and
/// `atom_syndication` crates (`quick_xml::escape::escape`).
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    push_replaced(out, s, [b"&amp;", b"&lt;", b"&gt;", b"&quot;", b"&apos;"]);
}

/// Appends `s` as CDATA the way quick-xml writes it (`BytesCData::escaped`): one section,
/// split after every `]]` that a `>` follows so that no section contains `]]>`.
fn push_cdata(out: &mut Vec<u8>, s: &str) {
    let mut rest = s;
    loop {
        let (section, next) = match rest.find("]]>") {
            Some(at) => rest.split_at(at + 2),
            None => (rest, ""),
        };
        out.extend_from_slice(b"<![CDATA[");
        out.extend_from_slice(section.as_bytes());
        out.extend_from_slice(b"]]>");
        if next.is_empty() {
            return;
        }
        rest = next;
    }
}

/// OPML 2.0 list of every feed (Atom and RSS are alternatives; RSS is listed, as readers
/// expect one `xmlUrl` per outline), so a reader can subscribe to all of them at once.
pub fn opml(config: &Config, feeds: &[Arc<Feed>]) -> Vec<u8> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head>\n",
    );
    out.push_str(&format!(
        "    <title>{}</title>\n",
        escape(&config.site.title)
    ));
    if let Some(newest) = feeds.iter().map(|f| f.updated).max() {
        out.push_str(&format!(
            "    <dateModified>{}</dateModified>\n",
            newest.to_rfc2822()
        ));
    }
    out.push_str("  </head>\n  <body>\n");
    for feed in feeds {
        out.push_str(&format!(
            "    <outline type=\"rss\" text=\"{t}\" title=\"{t}\" xmlUrl=\"{u}{f}\" htmlUrl=\"{h}\" language=\"{l}\"/>\n",
            t = escape(&feed.title),
            u = escape(&feed.dir_url),
            f = Format::Rss.file_name(),
            h = escape(&feed.home_url),
            l = escape(&feed.language),
        ));
    }
    out.push_str("  </body>\n</opml>\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::post::Post;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a&<>\"'\\]\\[\n \\x00-\\x1f\\x7f\\\\]{0,12}",
            "[\\u{4e00}-\\u{4e10}x\\]>]{0,12}",
        ]
    }

    /// Either CDATA-hostile HTML or arbitrary text.
    fn html() -> impl Strategy<Value = String> {
        prop_oneof![text(), "(<p>|\\]\\]>|\\]|>|&amp;|\\]\\]\\]>>){0,8}"]
    }

    /// What a test post carries: title, id (or the URL), tags, authors, banner, content,
    /// summary.
    type Fields = (
        String,
        Option<String>,
        Vec<String>,
        Vec<String>,
        Option<String>,
        Option<String>,
        String,
    );

    fn fields() -> impl Strategy<Value = Fields> {
        (
            text(),
            proptest::option::of(text()),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
            proptest::option::of(text()),
            proptest::option::of(html()),
            text(),
        )
    }

    /// Renders every document (feeds of 2 entries, archive pages of 1) of `posts` in every
    /// format both ways: entries written by hand and the whole document through the crates.
    fn compare(author: &str, hub: bool, posts: Vec<Fields>) -> Result<(), TestCaseError> {
        let hubs = if hub {
            "[websub]\nhubs = [\"https://hub.example/\"]\n"
        } else {
            ""
        };
        let toml = format!(
            "[site]\nauthor = {}\n[feed]\nlimit = 2\narchive_size = 1\n{hubs}",
            toml::Value::String(author.to_string()),
        );
        let config = crate::config::parse(&toml, Path::new("/nonexistent")).expect("valid");
        let mut contents = HashMap::new();
        let posts: Vec<Arc<Post>> = posts
            .into_iter()
            .enumerate()
            .map(
                |(i, (title, id, tags, authors, banner, content, summary))| {
                    let text = format!("---\ntitle: T\ndate: 2024-01-{:02}\n---\nbody\n", i + 1);
                    let rel = format!("s{i}/p{i}.md");
                    let mut post =
                        crate::post::parse(&config, Path::new(&rel), &text).expect("parses");
                    post.title = title;
                    post.id = id.unwrap_or_else(|| post.url.clone());
                    post.tags = tags;
                    post.authors = authors;
                    post.banner = banner.map(|b| format!("https://x/{b}.png"));
                    post.summary = summary;
                    post.lang = post.title.chars().rev().collect();
                    if i % 2 == 1 {
                        post.categories = post.tags.iter().rev().cloned().collect();
                    }
                    let post = Arc::new(post);
                    contents.insert(Arc::as_ptr(&post), content);
                    post
                },
            )
            .collect();
        let plan = crate::feed::plan(&config, &posts, chrono::Utc::now().fixed_offset());
        let pages: Vec<Feed> = plan.feeds.iter().flat_map(|f| f.archive_pages()).collect();
        for feed in plan.feeds.iter().map(|f| &**f).chain(&pages) {
            let texts = Texts {
                summaries: feed.entries.iter().map(|p| p.summary.as_str()).collect(),
                contents: feed
                    .entries
                    .iter()
                    .map(|p| contents[&Arc::as_ptr(p)].clone())
                    .collect(),
            };
            let both = |a: Result<Vec<u8>, RenderError>, b: Result<Vec<u8>, RenderError>| {
                let text = |r: Result<Vec<u8>, RenderError>| {
                    String::from_utf8(r.expect("renders")).expect("UTF-8")
                };
                (text(a), text(b))
            };
            let (ours, crates) = both(
                rss::render(&config, feed, &texts),
                rss::render_plain(&config, feed, &texts),
            );
            prop_assert_eq!(ours, crates);
            let (ours, crates) = both(
                atom::render(&config, feed, &texts),
                atom::render_plain(&config, feed, &texts),
            );
            prop_assert_eq!(ours, crates);
            let (ours, crates) = both(
                json::render(&config, feed, &texts),
                json::render_plain(&config, feed, &texts),
            );
            prop_assert_eq!(ours, crates);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
        /// RSS, Atom and JSON Feed write their entries themselves and the rest through the
        /// crates: byte for byte what the crates write for the whole document.
        #[test]
        fn entries_written_by_hand_equal_the_crates_output(
            posts in proptest::collection::vec(fields(), 1..5),
            author in prop_oneof![Just(String::new()), text()],
            hub in any::<bool>(),
        ) {
            compare(&author, hub, posts)?;
        }
    }

    #[test]
    fn cdata_sections_split_like_the_crates() {
        let post = |content: &str| -> Fields {
            let t = || "a]]>b".to_string();
            (
                t(),
                None,
                vec![t()],
                vec![],
                Some(t()),
                Some(content.to_string()),
                t(),
            )
        };
        let contents = [
            "",
            "a",
            "]]>",
            "a]]>b]]>",
            "]]]>>",
            ">]]>]]>",
            "]]",
            "]]>]]>]]>",
        ];
        for author in ["", "Ann & 'Bob'"] {
            compare(author, false, contents.iter().map(|c| post(c)).collect()).expect("equal");
        }
    }
}
