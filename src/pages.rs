//! Pages for people, files of the snapshot like the feeds: the feed directory at the site
//! root (`index.html`: every feed with its size, newest date and subscribe links, global
//! feeds first, then categories, then tags by post count, grouped by language) and a
//! preview page per feed in the feed's directory (`tags/<tag>/index.html`: the feed's newest
//! entries as a person skims them, with that feed's subscribe links and autodiscovery). On a
//! single-language site the global feed's directory is the root: the directory page also
//! previews the global feed's newest entries.
//!
//! Pure and deterministic like `render` (no clock: dates come from the posts). HTML is
//! written by `maud`, which escapes every value; the only unescaped text is the constant
//! stylesheet and script and the filter rules made of numbers (`html`). Links to the
//! server's own files are relative, so the pages work on any host that serves them (a
//! local or staging server, the static export), unless `server.public_url` was set: then
//! they are absolute on it. Links to posts stay on `site.base_url`.
//!
//! A rebuild renders again only the pages whose inputs changed (`Site::jobs`, `Memo`):
//! a preview page shows its feed's entries, the feed's post count and links to other
//! feeds' pages, so it is kept while the same post objects, the same count and the same
//! set of feeds hold.

mod html;
mod words;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::config::Config;
use crate::feed::{Feed, FeedKind};
use crate::post::Post;
use crate::render::INDEX_PATH;

/// The script of every page (copy buttons, the tag filter), inline in a `<script>`
/// element; the pages work without it.
pub const SCRIPT: &str = include_str!("pages/page.js");

/// Content type of the pages.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Entries of the global feed the directory page shows on a single-language site.
const DIRECTORY_ENTRIES: usize = 10;

/// From this many tags on, the directory offers a filter (a box, and first-letter links that
/// work without JavaScript).
const FILTER_FROM: usize = 20;

/// At most this many first-letter groups; the smallest beyond it are one "other" group.
const MAX_GROUPS: usize = 36;

/// Everything the pages of one build share: the feeds, where each page is, and how links
/// are written.
pub struct Site<'a> {
    config: &'a Config,
    feeds: &'a [Arc<Feed>],
    /// Tag feeds by language and case-folded name: entries link their tags to these pages
    /// (made when a page is rendered).
    tags: std::sync::OnceLock<HashMap<(String, String), &'a Feed>>,
    /// Posts are in more than one language (every feed lives under `<lang>/`).
    multilingual: bool,
    /// Hash of the feed set as pages link to it (directories, names, languages).
    fingerprint: u64,
    /// Hash of what every page depends on besides its own feed and the tag feeds its entries
    /// link to: the config and the global feeds (the languages).
    base: u64,
    /// The previous build's tag lists, when the directory shows the same feeds the same way.
    kept_lists: std::sync::OnceLock<Arc<Lists>>,
    /// The tag lists this build made or kept.
    lists: std::sync::Mutex<Lists>,
}

/// One page to serve: where, for which feed (`None`: the directory), dated by what it shows,
/// and whether the previous build's file can be kept without rendering it.
#[derive(Debug)]
pub struct Job<'a> {
    /// Decoded site-relative path (`index.html`, `tags/内核/index.html`).
    pub path: String,
    pub feed: Option<&'a Feed>,
    /// Newest update among what the page shows (its `Last-Modified`).
    pub updated: DateTime<FixedOffset>,
    /// Same inputs as the previous build's page at `path`.
    pub unchanged: bool,
}

/// What each page was rendered from, kept in the snapshot for the next build.
#[derive(Debug, Default)]
pub struct Memo {
    /// The site's fingerprint and base at that build.
    fingerprint: u64,
    base: u64,
    /// The directory's inputs.
    directory: Option<Arc<Inputs>>,
    pages: HashMap<String, Arc<Inputs>>,
    /// The directory's tag lists (markup, style) by id, made for its `key`.
    lists: Arc<Lists>,
}

/// Tag lists of the directory (markup and style) by their id.
type Lists = HashMap<String, (String, String)>;

#[derive(Debug)]
struct Inputs {
    /// Hash of the feed's own values and the site's fingerprint (for the directory: of
    /// every feed's values).
    key: u64,
    /// The entries shown; holding the `Arc`s keeps pointer comparison sound.
    entries: Vec<Arc<Post>>,
    /// The feed planned (an incremental plan hands on unchanged feeds as the same `Arc`).
    feed: Option<Arc<Feed>>,
}

impl Inputs {
    fn of(key: u64, entries: &[Arc<Post>], feed: Option<&Arc<Feed>>) -> Self {
        Inputs {
            key,
            entries: entries.to_vec(),
            feed: feed.cloned(),
        }
    }

    fn same_as(&self, key: u64, entries: &[Arc<Post>]) -> bool {
        self.key == key && crate::post::same_posts(&self.entries, entries)
    }
}

impl<'a> Site<'a> {
    /// The page context of `feeds` (a plan's feeds, global ones first).
    pub fn new(config: &'a Config, feeds: &'a [Arc<Feed>]) -> Self {
        let multilingual = feeds
            .iter()
            .any(|f| f.kind == FeedKind::Global && !f.dir.is_empty());
        // What pages link to of each feed (kind, names, directory, language): its listing;
        // and the config they are written with (a reload may change any of it).
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(format!("{config:?}").as_bytes());
        for feed in feeds.iter().filter(|f| f.kind == FeedKind::Global) {
            hasher.update(&feed.listing.to_le_bytes());
        }
        let base = hasher.digest();
        for feed in feeds {
            hasher.update(&feed.listing.to_le_bytes());
        }
        Site {
            base,
            config,
            feeds,
            tags: std::sync::OnceLock::new(),
            multilingual,
            fingerprint: hasher.digest(),
            kept_lists: std::sync::OnceLock::new(),
            lists: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// What to remember of this build's pages (`jobs`' memo), once they are rendered.
    pub fn finish(&self, mut memo: Memo) -> Memo {
        let lists = self
            .lists
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        memo.lists = if lists.is_empty() {
            self.kept_lists.get().cloned().unwrap_or_default()
        } else {
            Arc::new(lists)
        };
        memo
    }

    /// The tag list `id` of the directory: kept from the previous build while the
    /// directory's key (every feed's listing, count and date) is the same, else `make`d.
    fn tag_list(
        &self,
        id: &str,
        style: &mut String,
        make: impl FnOnce(&mut String) -> String,
    ) -> String {
        let (markup, list_style) = match self.kept_lists.get().and_then(|l| l.get(id)) {
            Some(kept) => kept.clone(),
            None => {
                let mut list_style = String::new();
                let markup = make(&mut list_style);
                (markup, list_style)
            }
        };
        style.push_str(&list_style);
        if let Ok(mut lists) = self.lists.lock() {
            lists.insert(id.to_string(), (markup.clone(), list_style));
        }
        markup
    }

    /// Every page of the site: the directory first, then a preview page per feed with a
    /// directory of its own; and what to remember of them for the next build. A feed that
    /// is the very same planned `Arc` as last time, on a site with the same fingerprint,
    /// keeps its page without hashing anything.
    pub fn jobs(&self, previous: Option<&Memo>) -> (Vec<Job<'a>>, Memo) {
        let newest = self
            .feeds
            .iter()
            .map(|f| f.updated)
            .max()
            .unwrap_or(DateTime::UNIX_EPOCH.fixed_offset());
        // Another feed set (a tag came or went): a preview page is rendered again only when
        // what it shows of the others changed (the tag feeds its entries link to).
        let same_base = previous.filter(|m| m.base == self.base);
        let previous = previous.filter(|m| m.fingerprint == self.fingerprint);
        let directory_key = self.directory_key();
        let shown: &[Arc<Post>] = match self.feeds.first() {
            Some(global) if !self.multilingual => {
                &global.entries[..global.entries.len().min(DIRECTORY_ENTRIES)]
            }
            _ => &[],
        };
        let directory = Arc::new(Inputs::of(directory_key, shown, None));
        let mut jobs = vec![Job {
            path: INDEX_PATH.to_string(),
            feed: None,
            updated: newest,
            unchanged: previous
                .and_then(|m| m.directory.as_ref())
                .is_some_and(|old| old.same_as(directory_key, shown)),
        }];
        if let Some(old) =
            previous.filter(|m| m.directory.as_ref().is_some_and(|d| d.key == directory_key))
        {
            let _ = self.kept_lists.set(old.lists.clone());
        }
        let mut memo = Memo {
            fingerprint: self.fingerprint,
            base: self.base,
            directory: Some(directory),
            pages: HashMap::with_capacity(self.feeds.len()),
            lists: Arc::default(),
        };
        for feed in self.feeds.iter().filter(|f| !f.dir.is_empty()) {
            let path = format!("{}{INDEX_PATH}", feed.dir);
            let old = same_base.and_then(|m| m.pages.get(&path));
            let same_feed = old.filter(|old| {
                previous.is_some() && old.feed.as_ref().is_some_and(|f| Arc::ptr_eq(f, feed))
            });
            let (inputs, unchanged) = match same_feed {
                Some(old) => (old.clone(), true),
                None => {
                    let key = self.key(feed);
                    let unchanged = old.is_some_and(|old| old.same_as(key, &feed.entries));
                    (
                        Arc::new(Inputs::of(key, &feed.entries, Some(feed))),
                        unchanged,
                    )
                }
            };
            memo.pages.insert(path.clone(), inputs);
            jobs.push(Job {
                path,
                feed: Some(feed),
                updated: feed.updated,
                unchanged,
            });
        }
        (jobs, memo)
    }

    /// Hash of what the directory shows of every feed besides the global feed's entries.
    fn directory_key(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.fingerprint.to_le_bytes());
        for feed in self.feeds {
            hasher.update(&(feed.total as u64).to_le_bytes());
            hasher.update(feed.updated.to_rfc3339().as_bytes());
            hasher.update(&[0]);
        }
        hasher.digest()
    }

    /// Hash of what a preview page shows of its feed besides the entries themselves.
    fn key(&self, feed: &Feed) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.base.to_le_bytes());
        hasher.update(&feed.listing.to_le_bytes());
        hasher.update(&(feed.total as u64).to_le_bytes());
        hasher.update(&feed.updated.timestamp().to_le_bytes());
        for part in [&feed.title, &feed.description] {
            hasher.update(part.as_bytes());
            hasher.update(&[0]);
        }
        // Where the entries' tags link to (a tag's slug can change when another tag comes).
        for post in &feed.entries {
            for tag in &post.tags {
                match self.tag_feed(&post.lang, tag) {
                    Some(target) => hasher.update(target.dir.as_bytes()),
                    None => hasher.update(&[1]),
                }
                hasher.update(&[0]);
            }
        }
        hasher.digest()
    }

    /// The HTML of one page.
    pub fn render(&self, job: &Job<'_>) -> Vec<u8> {
        match job.feed {
            None => html::directory(self),
            Some(feed) => html::preview(self, feed),
        }
        .into_string()
        .into_bytes()
    }

    /// The tag feed of `name` in `lang`, if there is one.
    fn tag_feed(&self, lang: &str, name: &str) -> Option<&'a Feed> {
        let feeds = self.feeds;
        self.tags
            .get_or_init(|| {
                feeds
                    .iter()
                    .filter(|f| f.kind == FeedKind::Tag)
                    .map(|f| ((f.language.clone(), f.name.to_lowercase()), &**f))
                    .collect()
            })
            .get(&(lang.to_string(), name.to_lowercase()))
            .copied()
    }
}

/// The percent-encoded site-relative directory of a feed (`tags/%E5%86%85%E6%A0%B8/`).
fn encoded_dir<'f>(config: &Config, feed: &'f Feed) -> &'f str {
    feed.dir_url
        .strip_prefix(config.server.public_url.as_str())
        .unwrap_or(&feed.dir_url)
}

/// A site-relative directory (decoded, `tags/内核/`) as an IRI path: ASCII that is not
/// unreserved is percent-encoded, other characters stay as they are (`tags/内核/`, `tags/c%2B%2B/`)
/// except invisible or confusable ones (controls, spaces, bidi marks, noncharacters). A
/// browser encodes the rest itself; the directory's links are a third shorter and its gzip
/// a tenth smaller than fully encoded.
fn iri_dir(dir: &str) -> String {
    let mut out = String::with_capacity(dir.len() + 8);
    for c in dir.chars() {
        let keep = if c.is_ascii() {
            c.is_ascii_alphanumeric() || "-._~/".contains(c)
        } else {
            !(c.is_control()
                || c.is_whitespace()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fdd0}'..='\u{fdef}')
                || (c as u32) & 0xfffe == 0xfffe)
        };
        if keep {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// A link from the page in directory `from` to the site path `to` (both percent-encoded and
/// relative to the site root; `from` empty or ending in `/`): the shortest relative
/// reference (`../y/rss.xml`, `./` for the page's own directory).
fn relative(from: &str, to: &str) -> String {
    let here: Vec<&str> = from.split_terminator('/').collect();
    let (dir, file) = to.split_at(to.rfind('/').map_or(0, |i| i + 1));
    let there: Vec<&str> = dir.split_terminator('/').collect();
    let common = here.iter().zip(&there).take_while(|(a, b)| a == b).count();
    let mut out = "../".repeat(here.len() - common);
    for segment in &there[common..] {
        out.push_str(segment);
        out.push('/');
    }
    out.push_str(file);
    if out.is_empty() {
        "./".to_string()
    } else {
        out
    }
}

/// First-letter groups of a list of names, for the directory's filter: each name's group
/// index, and the groups' labels (`A`-`Z`, `0-9`, a first character such as `内`, and
/// "other" for the smallest groups past `MAX_GROUPS`), in label order.
fn letter_groups(names: &[&str], other: &str) -> (Vec<usize>, Vec<String>) {
    let initials: Vec<String> = names.iter().map(|n| initial(n)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for i in &initials {
        *counts.entry(i).or_default() += 1;
    }
    let mut by_size: Vec<(&str, usize)> = counts.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let overflow = by_size.len() > MAX_GROUPS;
    let keep = if overflow {
        MAX_GROUPS - 1
    } else {
        by_size.len()
    };
    let mut labels: Vec<String> = by_size[..keep].iter().map(|(l, _)| l.to_string()).collect();
    labels.sort();
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let groups = initials
        .iter()
        .map(|i| index.get(i.as_str()).copied().unwrap_or(labels.len()))
        .collect();
    if overflow {
        labels.push(other.to_string());
    }
    (groups, labels)
}

/// The first-letter group of a name: `A`-`Z` for Latin letters, `0-9`, else the first
/// character (CJK names group by their first character).
fn initial(name: &str) -> String {
    let Some(first) = name.chars().next() else {
        return String::new();
    };
    if first.is_ascii_digit() {
        "0-9".to_string()
    } else {
        first.to_uppercase().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_are_the_shortest_reference() {
        let cases = [
            ("", "rss.xml", "rss.xml"),
            ("", "", "./"),
            ("", "tags/a/", "tags/a/"),
            ("tags/a/", "tags/a/rss.xml", "rss.xml"),
            ("tags/a/", "tags/a/", "./"),
            ("tags/a/", "tags/b/", "../b/"),
            ("tags/a/", "", "../../"),
            ("tags/a/", "feeds.opml", "../../feeds.opml"),
            ("zh/tags/a/", "zh/", "../../"),
            ("zh/tags/a/", "en/tags/a/", "../../../en/tags/a/"),
            ("zh/", "zh/categories/news/", "categories/news/"),
        ];
        for (from, to, expected) in cases {
            assert_eq!(relative(from, to), expected, "{from} -> {to}");
        }
    }

    #[test]
    fn iri_paths_keep_letters_and_encode_what_could_break_or_hide() {
        let cases = [
            ("tags/内核/", "tags/内核/"),
            ("tags/c++/", "tags/c%2B%2B/"),
            ("tags/c#/", "tags/c%23/"),
            ("tags/a?b%c/", "tags/a%3Fb%25c/"),
            ("tags/\"><x/", "tags/%22%3E%3Cx/"),
            ("tags/a\u{202e}b/", "tags/a%E2%80%AEb/"),
            ("tags/a\u{3000}b\u{fffe}/", "tags/a%E3%80%80b%EF%BF%BE/"),
            ("zh/categories/新闻/", "zh/categories/新闻/"),
        ];
        for (dir, expected) in cases {
            assert_eq!(iri_dir(dir), expected, "{dir:?}");
        }
    }

    #[test]
    fn names_group_by_first_letter_and_small_groups_merge_past_the_limit() {
        let (groups, labels) = letter_groups(&["linux", "Lua", "内核", "内存", "2024", "ai"], "…");
        assert_eq!(labels, ["0-9", "A", "L", "内"]);
        assert_eq!(groups, [2, 2, 3, 3, 0, 1]);
        let many: Vec<String> = (0..60u32)
            .map(|i| char::from_u32(0x4e00 + i).expect("cjk").to_string())
            .chain((0..10).map(|i| format!("a{i}")))
            .collect();
        let names: Vec<&str> = many.iter().map(String::as_str).collect();
        let (groups, labels) = letter_groups(&names, "other");
        assert_eq!(labels.len(), MAX_GROUPS);
        assert_eq!(labels.first().map(String::as_str), Some("A"));
        assert_eq!(labels.last().map(String::as_str), Some("other"));
        assert_eq!(groups[60], 0, "the largest group keeps its letter");
        assert!(groups.iter().all(|&g| g < labels.len()));
    }
}
