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
pub struct Texts {
    /// Summary of each entry.
    pub summaries: Vec<String>,
    /// HTML content of each entry; `None` for an entry shown by its summary only (summary
    /// feeds, bodies over `feed.max_entry_bytes`, entries past `feed.max_feed_bytes`).
    pub contents: Vec<Option<String>>,
}

impl Texts {
    fn summary(&self, i: usize) -> &str {
        self.summaries.get(i).map_or("", String::as_str)
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
pub fn texts(config: &Config, feed: &Feed) -> Texts {
    let summaries: Vec<String> = feed.entries.iter().map(|p| p.summary.clone()).collect();
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
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
