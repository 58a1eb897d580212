//! Pure rendering: a planned `Feed` becomes bytes in one format (`rss`, `atom`, `json`), and
//! the OPML list of every feed is rendered here too (the HTML pages are `pages`).
//! Deterministic: same feed, same bytes. No I/O, no clock.

mod atom;
mod json;
mod rss;

use std::sync::Arc;

use crate::config::{Config, ContentMode};
use crate::error::{Error, RenderError};
use crate::feed::Feed;

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

/// What the entries of a feed show besides their front matter, taken once from their
/// bodies for all three formats.
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

/// The texts of a feed's entries from their loaded bodies (`content::ensure_bodies`). An
/// entry without a body shows its front matter summary or its title, and no content.
/// Entries keep their content, newest first, while the feed stays within
/// `feed.max_feed_bytes`; from the first entry that would pass it on, entries carry their
/// summary only.
pub fn texts(config: &Config, feed: &Feed) -> Texts {
    let bodies: Vec<_> = feed.entries.iter().map(|p| p.body.get()).collect();
    let summaries: Vec<String> = feed
        .entries
        .iter()
        .zip(&bodies)
        .map(|(post, body)| match body {
            Some(body) => body.summary.clone(),
            None => post
                .given_summary
                .clone()
                .unwrap_or_else(|| post.title.clone()),
        })
        .collect();
    let mut contents = Vec::new();
    if config.feed.content == ContentMode::Full {
        let mut spent = 0usize;
        let mut within = true;
        for ((post, body), summary) in feed.entries.iter().zip(&bodies).zip(&summaries) {
            let html = body
                .as_ref()
                .and_then(|b| b.html.as_ref())
                .map(|h| h.text());
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
        path: format!("{}{}", feed.dir, format.file_name()),
        source,
    })
}

/// The WebSub hubs every feed document advertises (`rel="hub"`, JSON Feed `hubs`).
fn hubs(config: &Config) -> impl Iterator<Item = &str> {
    config.websub.hubs.iter().map(|hub| hub.url.as_str())
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
