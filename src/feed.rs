//! Pure feed planning: `plan(config, posts, now)` decides which feeds exist (global, per tag,
//! per category, per language when the content is multilingual), their URLs and their
//! entries in a total order, and which entries go to which archive page (RFC 5005: pages
//! numbered from the oldest entry, so a page fills once and then stays as it is).
//! Format-agnostic: `render` turns each `Feed` document into bytes. `now` only decides
//! visibility; nothing time-dependent reaches the output.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::config::Config;
use crate::error::Problem;
use crate::post::Post;
use crate::text::encode_segment;

/// Which posts a feed collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeedKind {
    Global,
    Tag,
    Category,
}

impl FeedKind {
    /// URL directory of this kind (`tags/`, `categories/`).
    fn dir(self) -> &'static str {
        match self {
            FeedKind::Global => "",
            FeedKind::Tag => "tags/",
            FeedKind::Category => "categories/",
        }
    }
}

/// Where a document stands in its feed's history (RFC 5005).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Page {
    /// 0 for the subscription document (the feed's own URL); n >= 1 for archive page n,
    /// page 1 holding the oldest entries.
    pub number: usize,
    /// Archive pages the feed has.
    pub of: usize,
}

impl Page {
    /// An archive page, not the subscription document.
    pub fn is_archive(self) -> bool {
        self.number > 0
    }

    /// An archive page with a newer one after it: its entries and links are final (the
    /// bytes change only when one of its posts is edited, or posts before it come or go).
    /// The newest page is not: it fills up, and gains a `next-archive` link when it is full
    /// and the next page starts.
    pub fn is_closed(self) -> bool {
        self.number > 0 && self.number < self.of
    }
}

/// The entries of one archive page, newest first. Shared between plans: a page whose
/// entries did not change is the very same `Chunk` (see `planner`).
pub type Chunk = Arc<[Arc<Post>]>;

/// One document of a feed (its subscription document or one archive page), independent of
/// format.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    pub kind: FeedKind,
    /// Tag or category as displayed (most used spelling); empty for the global feed.
    pub name: String,
    /// Language of every entry.
    pub language: String,
    /// Site-relative directory, decoded (`zh/tags/内核/`); file names are appended.
    pub dir: String,
    /// Absolute URL of `dir` where readers fetch it (on `server.public_url`), percent-encoded.
    pub dir_url: String,
    /// Absolute URL of `dir` on `site.base_url`: the base of the Atom feed `id`, which stays
    /// the same wherever the feeds are served.
    pub id_url: String,
    pub title: String,
    pub description: String,
    /// Absolute URL of the site (language) home page.
    pub home_url: String,
    /// Newest first, `limit` at most; on an archive page, the page's entries.
    pub entries: Vec<Arc<Post>>,
    /// Number of visible posts the feed collects (the subscription document holds the newest
    /// `limit`, its archive pages the rest).
    pub total: usize,
    /// The entries of the feed's archive pages, page 1 (the oldest) first, each `archive_size`
    /// entries but the newest (empty without `feed.archives`, and on archive pages).
    pub archive: Vec<Chunk>,
    /// Which document of the feed this is.
    pub page: Page,
    /// Newest `updated` of the entries (the Unix epoch for an empty feed).
    pub updated: DateTime<FixedOffset>,
    /// A hash of what the OPML list and the index show of this feed (kind, names, URLs,
    /// language), so that a build tells cheaply whether they change.
    pub listing: u64,
}

impl Feed {
    /// Archive page `number` (1 holds the oldest entries; at most `page.of`) of this
    /// subscription document.
    pub fn archive_page(&self, number: usize) -> Feed {
        let entries = number
            .checked_sub(1)
            .and_then(|i| self.archive.get(i))
            .map(|chunk| chunk.to_vec())
            .unwrap_or_default();
        Feed {
            listing: self.listing,
            kind: self.kind,
            name: self.name.clone(),
            language: self.language.clone(),
            dir: self.dir.clone(),
            dir_url: self.dir_url.clone(),
            id_url: self.id_url.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            home_url: self.home_url.clone(),
            updated: newest(&entries),
            entries,
            total: self.total,
            archive: Vec::new(),
            page: Page {
                number,
                of: self.page.of,
            },
        }
    }

    /// Every archive page of this subscription document, oldest first.
    pub fn archive_pages(&self) -> impl Iterator<Item = Feed> + '_ {
        (1..=self.page.of).map(move |n| self.archive_page(n))
    }
}

/// Splits `archived` (newest first) into archive pages of `size` entries, counted from the
/// oldest entry, so that only the newest page is ever partial: page 1 (the oldest) first.
pub(crate) fn chunks(archived: &[Arc<Post>], size: usize) -> Vec<Chunk> {
    let size = size.max(1);
    // `rchunks` cuts from the oldest end; each chunk is newest first already.
    archived.rchunks(size).map(Chunk::from).collect()
}

/// Newest `updated` of `entries` (the Unix epoch when there are none).
fn newest(entries: &[Arc<Post>]) -> DateTime<FixedOffset> {
    entries
        .iter()
        .map(|p| p.updated)
        .max()
        .unwrap_or_else(epoch)
}

/// The planned feed set.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Global feeds first, then tags, then categories; each group ordered by directory.
    /// Shared: an incremental plan (`planner`) hands on the feeds that did not change.
    pub feeds: Vec<Arc<Feed>>,
    /// Slug collisions and empty slugs, reported (the feeds still exist).
    pub problems: Vec<Problem>,
    /// The earliest publication time of a scheduled (future, non-draft) post.
    pub next_due: Option<DateTime<FixedOffset>>,
    /// Visible posts.
    pub visible: usize,
}

/// Longest slug, in bytes (cut at a character boundary).
const MAX_SLUG_BYTES: usize = 150;

/// Lowercase, whitespace and path separators become `-`, everything else (CJK, `+`, `#`) is
/// kept; `encode_segment` makes it URL-safe. Empty for names with nothing usable.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        let c = if c.is_whitespace() || c.is_control() || c == '/' || c == '\\' {
            '-'
        } else {
            c
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    // A path segment in the export must stay within file-name limits (255 bytes).
    let mut end = out.len().min(MAX_SLUG_BYTES);
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    let trimmed = out[..end].trim_end_matches('-');
    if trimmed.chars().all(|c| c == '.') {
        String::new()
    } else {
        trimmed.to_string()
    }
}

fn epoch() -> DateTime<FixedOffset> {
    DateTime::UNIX_EPOCH.fixed_offset()
}

/// Total order of entries: newest first, then by permalink.
pub fn order(a: &Post, b: &Post) -> std::cmp::Ordering {
    b.date.cmp(&a.date).then_with(|| a.url.cmp(&b.url))
}

/// Posts grouped under a case-insensitive key, with spelling counts.
#[derive(Default)]
struct Group {
    spellings: BTreeMap<String, usize>,
    entries: Vec<Arc<Post>>,
    total: usize,
    /// Address of the last post counted (posts come in order: one naming the group twice
    /// comes twice in a row).
    last: usize,
}

/// The displayed name of a group: its most used spelling; ties go to the smallest string
/// (deterministic).
pub(crate) fn display(spellings: &BTreeMap<String, usize>) -> String {
    spellings
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(s, _)| s.clone())
        .unwrap_or_default()
}

/// Plans every feed of the site from its posts.
pub fn plan(config: &Config, posts: &[Arc<Post>], now: DateTime<FixedOffset>) -> Plan {
    let mut visible: Vec<Arc<Post>> = posts
        .iter()
        .filter(|p| p.is_visible(now))
        .cloned()
        .collect();
    visible.sort_by(|a, b| order(a, b));
    let next_due = posts
        .iter()
        .filter(|p| !p.draft && p.date > now)
        .map(|p| p.date)
        .min();

    let mut by_lang: BTreeMap<&str, Vec<Arc<Post>>> = BTreeMap::new();
    for post in &visible {
        by_lang
            .entry(post.lang.as_str())
            .or_default()
            .push(post.clone());
    }
    let multilingual = by_lang.len() > 1;
    if by_lang.is_empty() {
        by_lang.insert(config.site.language.as_str(), Vec::new());
    }

    let mut plan = Plan {
        next_due,
        visible: visible.len(),
        ..Plan::default()
    };
    let mut tag_feeds = Vec::new();
    let mut category_feeds = Vec::new();
    for (lang, posts) in &by_lang {
        let prefix = if multilingual {
            format!("{lang}/")
        } else {
            String::new()
        };
        let ctx = Ctx {
            config,
            lang,
            prefix: &prefix,
            multilingual,
        };
        plan.feeds.push(Arc::new(ctx.feed(
            FeedKind::Global,
            "",
            String::new(),
            posts.iter().take(ctx.kept()).cloned().collect(),
            posts.len(),
        )));
        if config.feed.tags {
            tag_feeds.extend(ctx.grouped(FeedKind::Tag, posts, |p| &p.tags, &mut plan.problems));
        }
        if config.feed.categories {
            category_feeds.extend(ctx.grouped(
                FeedKind::Category,
                posts,
                |p| &p.categories,
                &mut plan.problems,
            ));
        }
    }
    plan.feeds.extend(tag_feeds.into_iter().map(Arc::new));
    plan.feeds.extend(category_feeds.into_iter().map(Arc::new));
    plan
}

pub(crate) struct Ctx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) lang: &'a str,
    pub(crate) prefix: &'a str,
    pub(crate) multilingual: bool,
}

impl Ctx<'_> {
    /// Entries a feed keeps: its newest `feed.limit`, or all of them with archives.
    fn kept(&self) -> usize {
        if self.config.feed.archives {
            usize::MAX
        } else {
            self.config.feed.limit
        }
    }

    /// The feeds of the groups of `posts` (newest first) by `names`, ordered by key.
    fn grouped(
        &self,
        kind: FeedKind,
        posts: &[Arc<Post>],
        names: impl Fn(&Post) -> &Vec<String>,
        problems: &mut Vec<Problem>,
    ) -> Vec<Feed> {
        let limit = self.kept();
        let mut groups: HashMap<String, Group> = HashMap::new();
        for post in posts {
            for name in names(post) {
                let group = groups.entry(name.to_lowercase()).or_default();
                *group.spellings.entry(name.clone()).or_default() += 1;
                // Once per post, even when it names the group in two spellings.
                if group.last == Arc::as_ptr(post) as usize {
                    continue;
                }
                group.last = Arc::as_ptr(post) as usize;
                group.total += 1;
                if group.entries.len() < limit {
                    group.entries.push(post.clone());
                }
            }
        }
        let mut keys: Vec<(String, Group)> = groups.into_iter().collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let named: Vec<(String, String)> = keys
            .iter()
            .map(|(key, group)| (key.clone(), display(&group.spellings)))
            .collect();
        let slugs = assign_slugs(kind, &named, problems);
        keys.into_iter()
            .zip(named)
            .zip(slugs)
            .map(|(((_, group), (_, display)), slug)| {
                self.feed(kind, &slug, display, group.entries, group.total)
            })
            .collect()
    }

    /// The subscription document of the feed of `kind` at `slug` (empty for the global
    /// feed) of `entries` (all of them with archives, newest first; else the newest
    /// `feed.limit`) out of `total`: its newest `feed.limit`, the rest archived.
    fn feed(
        &self,
        kind: FeedKind,
        slug: &str,
        name: String,
        mut entries: Vec<Arc<Post>>,
        total: usize,
    ) -> Feed {
        let archived = entries.split_off(entries.len().min(self.config.feed.limit));
        let archive = chunks(&archived, self.config.feed.archive_size);
        self.feed_with(kind, slug, name, entries, archive, total)
    }

    /// The subscription document of the feed of `kind` at `slug` (empty for the global feed)
    /// showing `entries` (the newest `feed.limit`) of the `total` posts it collects, the rest
    /// on the `archive` pages.
    pub(crate) fn feed_with(
        &self,
        kind: FeedKind,
        slug: &str,
        name: String,
        entries: Vec<Arc<Post>>,
        archive: Vec<Chunk>,
        total: usize,
    ) -> Feed {
        let site = &self.config.site;
        let dir = format!(
            "{}{}{}",
            self.prefix,
            kind.dir(),
            if slug.is_empty() {
                String::new()
            } else {
                format!("{slug}/")
            }
        );
        let encoded: String = dir
            .split_inclusive('/')
            .map(|seg| {
                let (name, slash) = seg.strip_suffix('/').map_or((seg, ""), |n| (n, "/"));
                format!("{}{slash}", encode_segment(name))
            })
            .collect();
        let dir_url = format!("{}{encoded}", self.config.server.public_url);
        let id_url = format!("{}{encoded}", site.base_url);
        let home_url = format!("{}{}", site.base_url, self.prefix);
        let lang_note = if self.multilingual {
            format!(" ({})", self.lang)
        } else {
            String::new()
        };
        let (title, description) = match kind {
            FeedKind::Global => (
                format!("{}{lang_note}", site.title),
                site.description.clone(),
            ),
            FeedKind::Tag => (
                format!("{} · {name}{lang_note}", site.title),
                format!("Posts tagged “{name}” on {}", site.title),
            ),
            FeedKind::Category => (
                format!("{} · {name}{lang_note}", site.title),
                format!("Posts in category “{name}” on {}", site.title),
            ),
        };
        let updated = newest(&entries);
        let listing = {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(&[kind as u8]);
            for field in [&name, &title, &dir_url, &home_url, self.lang] {
                h.update(&(field.len() as u64).to_le_bytes());
                h.update(field.as_bytes());
            }
            h.digest()
        };
        Feed {
            listing,
            kind,
            name,
            language: self.lang.to_string(),
            dir,
            dir_url,
            id_url,
            title,
            description,
            home_url,
            entries,
            total,
            page: Page {
                number: 0,
                of: archive.len(),
            },
            archive,
            updated,
        }
    }
}

/// The slug of each group of `kind`, given as `(key, display)` in key order: the display
/// name slugified, a hash of the key when that is empty, `-2`, `-3`... on a collision with an
/// earlier group (reported in `problems`).
pub(crate) fn assign_slugs(
    kind: FeedKind,
    groups: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> Vec<String> {
    let what = match kind {
        FeedKind::Category => "category",
        _ => "tag",
    };
    let mut taken: HashMap<String, String> = HashMap::with_capacity(groups.len());
    let mut slugs = Vec::with_capacity(groups.len());
    for (key, display) in groups {
        let mut slug = slugify(display);
        if slug.is_empty() {
            let fallback = format!(
                "{what}-{:08x}",
                xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as u32
            );
            problems.push(Problem::EmptySlug {
                what,
                name: display.clone(),
                slug: fallback.clone(),
            });
            slug = fallback;
        }
        if let Some(other) = taken.get(&slug) {
            let base = slug.clone();
            let mut n = 2;
            while taken.contains_key(&format!("{base}-{n}")) {
                n += 1;
            }
            slug = format!("{base}-{n}");
            problems.push(Problem::SlugCollision {
                what,
                name: display.clone(),
                base,
                other: other.clone(),
                slug: slug.clone(),
            });
        }
        taken.insert(slug.clone(), display.clone());
        slugs.push(slug);
    }
    slugs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The titles of the subscription document and of each archive page of the global feed of
    /// `n` posts (`P0` oldest) under `feed_toml`.
    fn documents(n: usize, feed_toml: &str) -> Vec<Vec<String>> {
        let config =
            crate::config::parse(&format!("[feed]\n{feed_toml}"), std::path::Path::new("/"))
                .expect("valid");
        let posts: Vec<Arc<Post>> = (0..n)
            .map(|i| {
                let text = format!("---\ntitle: P{i}\ndate: 2024-01-{:02}\n---\n", i + 1);
                let rel = format!("p/{i:02}.md");
                Arc::new(
                    crate::post::parse(&config, std::path::Path::new(&rel), &text).expect("parses"),
                )
            })
            .collect();
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").expect("date");
        let feed = plan(&config, &posts, now).feeds.remove(0);
        let titles = |f: &Feed| {
            f.entries
                .iter()
                .map(|p| p.title.clone())
                .collect::<Vec<_>>()
        };
        let pages: Vec<Feed> = feed.archive_pages().collect();
        for (i, page) in pages.iter().enumerate() {
            assert_eq!(
                page.page,
                Page {
                    number: i + 1,
                    of: pages.len()
                }
            );
            assert_eq!(
                page.updated, page.entries[0].updated,
                "newest entry of the page"
            );
        }
        std::iter::once(titles(&feed))
            .chain(pages.iter().map(titles))
            .collect()
    }

    #[test]
    fn archive_pages_count_from_the_oldest_entry_and_list_theirs_newest_first() {
        let cases: &[(usize, &str, &[&[&str]])] = &[
            (
                7,
                "limit = 2\narchive_size = 2",
                &[&["P6", "P5"], &["P1", "P0"], &["P3", "P2"], &["P4"]],
            ),
            (
                5,
                "limit = 2\narchive_size = 3",
                &[&["P4", "P3"], &["P2", "P1", "P0"]],
            ),
            (
                4,
                "limit = 4\narchive_size = 3",
                &[&["P3", "P2", "P1", "P0"]],
            ),
            (4, "limit = 2\narchives = false", &[&["P3", "P2"]]),
        ];
        for (n, toml, expected) in cases {
            assert_eq!(documents(*n, toml), *expected, "{n} posts, {toml}");
        }
    }

    #[test]
    fn slugs_keep_unicode_and_never_transliterate() {
        let cases = [
            ("内核", "内核"),
            ("内河", "内河"),
            ("openEuler Summit", "openeuler-summit"),
            ("C++", "c++"),
            ("C#", "c#"),
            ("C", "c"),
            ("CI/CD", "ci-cd"),
            ("  a  b ", "a-b"),
            ("..", ""),
            ("/", ""),
            ("", ""),
        ];
        for (name, slug) in cases {
            assert_eq!(slugify(name), slug, "{name}");
        }
    }
}
