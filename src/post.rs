//! One post: pure `parse(path, text)` from a file's text to a `Post` (its front matter,
//! validated, and its plain-text summary; `front`), and pure `render_body(post, text)` to
//! its `Body` (Markdown to sanitized HTML with absolute URLs, within a size budget; `body`).
//! The two are apart because only posts that some feed shows in full need a body: a site of
//! 100,000 posts renders a few thousand (archive pages show summaries). No I/O and no clock here: `content` reads the files, and
//! visibility is decided against a `now` the caller passes in.

mod body;
mod front;

pub use body::{absolutize_html, removals, render_body, summary_of};
pub use front::{Location, Split, locate, parse, parse_date, split};

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, FixedOffset};

use crate::compress::Html;
use crate::error::PostWarning;

/// A parsed post. Every string is free of characters XML 1.0 forbids and every URL is
/// absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// Path relative to the content directory (`zh/news/a b/x.md`).
    pub source: String,
    /// Stable entry id: front matter `id`/`guid`, else the permalink.
    pub id: String,
    /// Absolute public URL of the post.
    pub url: String,
    pub title: String,
    /// Publication time (date-only values are midnight in the site's time zone).
    pub date: DateTime<FixedOffset>,
    /// Last update (`updated`/`lastmod`), never earlier than `date`.
    pub updated: DateTime<FixedOffset>,
    /// Categories (front matter, else the section from the path).
    pub categories: Vec<String>,
    /// Tags, in front-matter order, without case-insensitive duplicates.
    pub tags: Vec<String>,
    /// Author names; empty means "the site author".
    pub authors: Vec<String>,
    /// The front matter `summary`, whitespace collapsed.
    pub given_summary: Option<String>,
    /// Plain-text summary: `given_summary`, else from the Markdown body (`summary_of`), else
    /// the title. Computed at parse time from the text alone, so showing a post by its
    /// summary never needs its body.
    pub summary: String,
    /// Content hash (xxh3-64) of the file this was parsed from; 0 when parsed from a string.
    pub hash: u64,
    /// The rendered body, once loaded (`content::ensure_bodies`); dropped again when no feed
    /// shows the post.
    pub body: BodySlot,
    /// Absolute banner image URL.
    pub banner: Option<String>,
    pub draft: bool,
    /// Language (front matter `lang`, else from the path, else the site language).
    pub lang: String,
    /// Non-fatal remarks (e.g. misspelt keys).
    pub warnings: Vec<PostWarning>,
}

/// What a feed shows of a post besides its front matter and summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// Full content as sanitized HTML with absolute URLs (kept compressed: held for every
    /// post some feed shows, and read once per feed render); `None` when the body is over
    /// `feed.max_entry_bytes`, so the entry carries its summary and link only.
    pub html: Option<Html>,
}

impl Body {
    /// The HTML content, empty when the entry shows its summary only.
    pub fn html_text(&self) -> String {
        self.html.as_ref().map(Html::text).unwrap_or_default()
    }
}

/// A post's body, loaded on demand and shared by every feed that shows the post. A cache
/// beside the post's value: clones share nothing, and equality ignores it.
#[derive(Default)]
pub struct BodySlot(ArcSwapOption<Body>);

impl BodySlot {
    /// The loaded body, if any.
    pub fn get(&self) -> Option<Arc<Body>> {
        self.0.load_full()
    }

    /// Keeps `body` for later feed renders.
    pub fn set(&self, body: Arc<Body>) {
        self.0.store(Some(body));
    }

    /// Forgets the body (it can be rendered again from the file).
    pub fn clear(&self) {
        self.0.store(None);
    }
}

impl Clone for BodySlot {
    fn clone(&self) -> Self {
        BodySlot(ArcSwapOption::new(self.get()))
    }
}

impl PartialEq for BodySlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for BodySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            Some(_) => f.write_str("BodySlot(loaded)"),
            None => f.write_str("BodySlot(empty)"),
        }
    }
}

impl Post {
    /// Drafts and posts dated after `now` appear nowhere.
    pub fn is_visible(&self, now: DateTime<FixedOffset>) -> bool {
        !self.draft && self.date <= now
    }
}

#[cfg(test)]
mod tests;

/// The very same post objects, in the same order (an unchanged file keeps its `Arc`).
pub fn same_posts(a: &[std::sync::Arc<Post>], b: &[std::sync::Arc<Post>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| std::sync::Arc::ptr_eq(x, y))
}
