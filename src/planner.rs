//! Incremental planning: a `Planner` keeps, between rebuilds, what `feed::plan` computes from
//! every post (per language and per tag or category group: its posts in feed order and its
//! spellings; the assigned slugs; each feed as last planned), so that a changed post costs the
//! groups it leaves or joins, not the site. `Planner::apply` takes the posts that changed
//! (`content::Delta`); it says when it cannot follow (the clock went back, a language came or
//! went, which changes every feed's URL) and planning starts over with `Planner::new`. Both
//! give exactly the `Plan` that `feed::plan` gives for the same posts (checked after every
//! rebuild in debug builds, and by the random-edit test).
//!
//! Archive pages (`feed::Chunk`) are numbered from the oldest entry, so a change leaves the
//! pages older than it as they are, and, when as many posts came as went, the pages newer
//! than it too: a `Listing` remembers where changes fell among its last planned pages and
//! cuts again only the pages between (a new post: the newest page; an edit: its page).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::config::Config;
use crate::content::Change;
use crate::error::Problem;
use crate::feed::{self, Chunk, Ctx, Feed, FeedKind, Plan};
use crate::post::Post;

/// A post ordered as feeds list their entries (newest first, then by permalink: posts have
/// distinct URLs, so this is total).
#[derive(Debug, Clone)]
struct Entry(Arc<Post>);

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        feed::order(&self.0, &other.0)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// A scheduled post, ordered by publication time.
#[derive(Debug, Clone)]
struct Due(Arc<Post>);

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .date
            .cmp(&other.0.date)
            .then_with(|| self.0.url.cmp(&other.0.url))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Due {}

/// The posts of one feed in feed order, with its archive pages as last planned and where
/// posts were added or removed among them since.
#[derive(Debug, Default)]
struct Listing {
    posts: BTreeSet<Entry>,
    /// Archive pages as last planned, page 1 (the oldest) first, each newest first.
    pages: Vec<Chunk>,
    /// Lowest and highest index in `pages` where a post was added or removed since they were
    /// planned (`pages.len()`: among the entries newer than every page).
    changed: Option<(usize, usize)>,
    /// Posts added minus posts removed since.
    net: isize,
}

impl Listing {
    fn len(&self) -> usize {
        self.posts.len()
    }

    fn is_empty(&self) -> bool {
        self.posts.is_empty()
    }

    fn insert(&mut self, post: &Arc<Post>) {
        let entry = Entry(post.clone());
        self.mark(&entry, 1);
        self.posts.insert(entry);
    }

    fn remove(&mut self, post: &Arc<Post>) {
        let entry = Entry(post.clone());
        if self.posts.remove(&entry) {
            self.mark(&entry, -1);
        }
    }

    /// Notes a post added (`+1`) or removed (`-1`) at `entry`'s place among the last planned
    /// pages: the index of the first page not wholly older than it.
    fn mark(&mut self, entry: &Entry, delta: isize) {
        let at = self.pages.partition_point(|page| {
            page.first()
                .is_some_and(|newest| feed::order(newest, &entry.0).is_gt())
        });
        self.net += delta;
        self.changed = Some(match self.changed {
            Some((lo, hi)) => (lo.min(at), hi.max(at)),
            None => (at, at),
        });
    }

    /// The newest `limit` posts.
    fn newest(&self, limit: usize) -> Vec<Arc<Post>> {
        self.posts.iter().take(limit).map(|e| e.0.clone()).collect()
    }

    /// The archive pages of the current posts (the posts past the newest `limit`, in pages of
    /// `size` counted from the oldest): the last planned pages where no change can have
    /// touched them, the others cut again (and the very same `Chunk` when a page cut again
    /// holds the very same posts).
    fn pages(&mut self, config: &Config) -> Vec<Chunk> {
        let (limit, size) = (config.feed.limit, config.feed.archive_size.max(1));
        let Some((lo, hi)) = self.changed.take() else {
            return self.pages.clone();
        };
        let net = std::mem::take(&mut self.net);
        if !config.feed.archives {
            return Vec::new();
        }
        let archived = self.posts.len().saturating_sub(limit);
        let count = archived.div_ceil(size);
        let old = std::mem::take(&mut self.pages);
        // Posts came or went: the newest page gains or loses entries, and every page from
        // the lowest change on holds other posts. Else only the pages between the changes.
        let (lo, hi) = if net == 0 {
            (lo, hi)
        } else {
            (lo.min(old.len().saturating_sub(1)), usize::MAX)
        };
        let lo = lo.min(count);
        let mut pages: Vec<Chunk> = old[..lo.min(old.len())].to_vec();
        // The posts newer than the newest kept page, oldest first.
        let mut newer: Box<dyn Iterator<Item = &Entry>> = match pages.last().and_then(|p| p.first())
        {
            Some(boundary) => Box::new(self.posts.range(..Entry(boundary.clone())).rev()),
            None => Box::new(self.posts.iter().rev()),
        };
        for index in lo..count {
            if index > hi && index < old.len() {
                pages.extend(old[index..count.min(old.len())].iter().cloned());
                break;
            }
            let len = size.min(archived - index * size);
            let mut entries: Vec<Arc<Post>> =
                newer.by_ref().take(len).map(|e| e.0.clone()).collect();
            entries.reverse();
            let chunk = match old.get(index) {
                Some(page) if crate::post::same_posts(page, &entries) => page.clone(),
                _ => Chunk::from(entries),
            };
            pages.push(chunk);
        }
        self.pages = pages;
        self.pages.clone()
    }
}

/// The posts of one tag or category (case-insensitive key) in one language.
#[derive(Debug, Default)]
struct Group {
    /// How many times each spelling names the group (the most used one is displayed).
    spellings: BTreeMap<String, usize>,
    posts: Listing,
    slug: String,
    /// The feed as last planned; `None` when it must be planned again.
    feed: Option<Arc<Feed>>,
}

/// The groups of one kind in one language.
#[derive(Debug, Default)]
struct Groups {
    groups: BTreeMap<String, Group>,
    /// Slug collisions and empty slugs of the last slug assignment.
    problems: Vec<Problem>,
    /// A group came or went, or a displayed name changed: assign slugs again.
    reslug: bool,
}

impl Groups {
    fn add(&mut self, post: &Arc<Post>, names: &[String]) {
        for name in names {
            let key = name.to_lowercase();
            let group = self.groups.entry(key).or_default();
            let before = (!group.spellings.is_empty()).then(|| feed::display(&group.spellings));
            *group.spellings.entry(name.clone()).or_default() += 1;
            group.posts.insert(post);
            group.feed = None;
            if before.is_none_or(|b| b != feed::display(&group.spellings)) {
                self.reslug = true;
            }
        }
    }

    fn remove(&mut self, post: &Arc<Post>, names: &[String]) {
        for name in names {
            let key = name.to_lowercase();
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            let before = feed::display(&group.spellings);
            if let Some(n) = group.spellings.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    group.spellings.remove(name);
                }
            }
            group.posts.remove(post);
            group.feed = None;
            if group.spellings.is_empty() {
                self.groups.remove(&key);
                self.reslug = true;
            } else if before != feed::display(&group.spellings) {
                self.reslug = true;
            }
        }
    }

    /// The feeds of every group, in key order, planning those that changed.
    fn feeds(&mut self, ctx: &Ctx<'_>, kind: FeedKind, out: &mut Vec<Arc<Feed>>) {
        if self.reslug {
            let named: Vec<(String, String)> = self
                .groups
                .iter()
                .map(|(key, group)| (key.clone(), feed::display(&group.spellings)))
                .collect();
            self.problems.clear();
            let slugs = feed::assign_slugs(kind, &named, &mut self.problems);
            for (group, slug) in self.groups.values_mut().zip(slugs) {
                if group.slug != slug {
                    group.slug = slug;
                    group.feed = None;
                }
            }
            self.reslug = false;
        }
        for group in self.groups.values_mut() {
            let planned = group.feed.get_or_insert_with(|| {
                Arc::new(ctx.feed_with(
                    kind,
                    &group.slug,
                    feed::display(&group.spellings),
                    group.posts.newest(ctx.config.feed.limit),
                    group.posts.pages(ctx.config),
                    group.posts.len(),
                ))
            });
            out.push(planned.clone());
        }
    }
}

/// The visible posts of one language and its groups.
#[derive(Debug, Default)]
struct Lang {
    posts: Listing,
    /// The global feed as last planned; `None` when it must be planned again.
    feed: Option<Arc<Feed>>,
    tags: Groups,
    categories: Groups,
}

/// Planning state kept between rebuilds (see the module documentation).
#[derive(Debug)]
pub struct Planner {
    /// Visibility is decided as of this time.
    now: DateTime<FixedOffset>,
    /// Languages with visible posts.
    langs: BTreeMap<String, Lang>,
    /// Posts neither drafts nor visible yet.
    scheduled: BTreeSet<Due>,
}

impl Planner {
    /// Plans `posts` (distinct ids and URLs, as `content::Loaded` gives them) from scratch.
    pub fn new(config: &Config, posts: &[Arc<Post>], now: DateTime<FixedOffset>) -> Planner {
        let mut planner = Planner {
            now,
            langs: BTreeMap::new(),
            scheduled: BTreeSet::new(),
        };
        for post in posts {
            planner.add(config, post);
        }
        planner
    }

    /// Applies changed posts (`(before, after)`, as `content::Delta` lists them) as seen at
    /// `now`. False when the planner cannot follow and planning must start over with `new`:
    /// the clock went back, or the set of languages changed (every feed's URL with it).
    #[must_use]
    pub fn apply(
        &mut self,
        config: &Config,
        changed: &[Change],
        now: DateTime<FixedOffset>,
    ) -> bool {
        if now < self.now {
            return false;
        }
        let langs: Vec<String> = self.langs.keys().cloned().collect();
        for post in changed.iter().filter_map(|(before, _)| before.as_ref()) {
            self.remove(config, post);
        }
        self.now = now;
        while let Some(due) = self.scheduled.first().filter(|d| d.0.date <= now).cloned() {
            self.scheduled.remove(&due);
            self.add(config, &due.0);
        }
        for post in changed.iter().filter_map(|(_, after)| after.as_ref()) {
            self.add(config, post);
        }
        self.langs.keys().eq(langs.iter())
    }

    fn add(&mut self, config: &Config, post: &Arc<Post>) {
        if post.draft {
            return;
        }
        if post.date > self.now {
            self.scheduled.insert(Due(post.clone()));
            return;
        }
        let lang = self.langs.entry(post.lang.clone()).or_default();
        lang.posts.insert(post);
        lang.feed = None;
        if config.feed.tags {
            lang.tags.add(post, &post.tags);
        }
        if config.feed.categories {
            lang.categories.add(post, &post.categories);
        }
    }

    fn remove(&mut self, config: &Config, post: &Arc<Post>) {
        if post.draft {
            return;
        }
        if post.date > self.now {
            self.scheduled.remove(&Due(post.clone()));
            return;
        }
        let Some(lang) = self.langs.get_mut(&post.lang) else {
            return;
        };
        lang.posts.remove(post);
        lang.feed = None;
        if config.feed.tags {
            lang.tags.remove(post, &post.tags);
        }
        if config.feed.categories {
            lang.categories.remove(post, &post.categories);
        }
        if lang.posts.is_empty() {
            self.langs.remove(&post.lang);
        }
    }

    /// The plan of the current posts: what `feed::plan` gives for them at the time of the
    /// last `new` or `apply`. Only feeds whose posts, name or slug changed are planned again.
    pub fn plan(&mut self, config: &Config) -> Plan {
        let mut plan = Plan {
            next_due: self.scheduled.first().map(|d| d.0.date),
            visible: self.langs.values().map(|l| l.posts.len()).sum(),
            ..Plan::default()
        };
        let multilingual = self.langs.len() > 1;
        if self.langs.is_empty() {
            let ctx = Ctx {
                config,
                lang: &config.site.language,
                prefix: "",
                multilingual,
            };
            plan.feeds.push(Arc::new(ctx.feed_with(
                FeedKind::Global,
                "",
                String::new(),
                Vec::new(),
                Vec::new(),
                0,
            )));
            return plan;
        }
        let mut tag_feeds = Vec::new();
        let mut category_feeds = Vec::new();
        for (name, lang) in &mut self.langs {
            let prefix = if multilingual {
                format!("{name}/")
            } else {
                String::new()
            };
            let ctx = Ctx {
                config,
                lang: name,
                prefix: &prefix,
                multilingual,
            };
            let global = lang.feed.get_or_insert_with(|| {
                Arc::new(ctx.feed_with(
                    FeedKind::Global,
                    "",
                    String::new(),
                    lang.posts.newest(config.feed.limit),
                    lang.posts.pages(config),
                    lang.posts.len(),
                ))
            });
            plan.feeds.push(global.clone());
            lang.tags.feeds(&ctx, FeedKind::Tag, &mut tag_feeds);
            plan.problems.extend(lang.tags.problems.iter().cloned());
            lang.categories
                .feeds(&ctx, FeedKind::Category, &mut category_feeds);
            plan.problems
                .extend(lang.categories.problems.iter().cloned());
        }
        plan.feeds.extend(tag_feeds);
        plan.feeds.extend(category_feeds);
        plan
    }
}

/// Where two plans differ (`None`: the same feeds with the very same entries, problems,
/// next due time and visible count), for the checks of incremental planning.
pub fn difference(a: &Plan, b: &Plan) -> Option<String> {
    if a.feeds.len() != b.feeds.len() {
        return Some(format!("{} feeds, not {}", a.feeds.len(), b.feeds.len()));
    }
    for (x, y) in a.feeds.iter().zip(&b.feeds) {
        let same_entries = crate::post::same_posts(&x.entries, &y.entries)
            && x.archive.len() == y.archive.len()
            && x.archive
                .iter()
                .zip(&y.archive)
                .all(|(p, q)| crate::post::same_posts(p, q));
        if !same_entries || x != y {
            return Some(format!("feed {:?} differs from {:?}", x.dir, y.dir));
        }
    }
    if a.problems != b.problems {
        return Some(format!("problems {:?}, not {:?}", a.problems, b.problems));
    }
    if (a.next_due, a.visible) != (b.next_due, b.visible) {
        return Some(format!(
            "next due {:?} and {} visible, not {:?} and {}",
            a.next_due, a.visible, b.next_due, b.visible
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        crate::config::parse("[feed]\nlimit = 2\n", Path::new("/nonexistent")).expect("valid")
    }

    fn post(config: &Config, name: &str, date: &str, extra: &str) -> Arc<Post> {
        let text = format!("---\ntitle: {name}\ndate: {date}\ntags: [a, {name}]\n{extra}---\nx\n");
        let rel = format!("p/{name}.md");
        Arc::new(crate::post::parse(config, Path::new(&rel), &text).expect("parses"))
    }

    fn at(t: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(t).expect("time")
    }

    fn assert_same(planner: &mut Planner, config: &Config, posts: &[Arc<Post>], now: &str) {
        let full = feed::plan(config, posts, at(now));
        let difference = difference(&planner.plan(config), &full);
        assert!(difference.is_none(), "{difference:?}");
    }

    #[test]
    fn a_scheduled_post_appears_when_time_passes_without_any_change() {
        let config = config();
        let posts = vec![
            post(&config, "old", "2024-01-01", ""),
            post(&config, "soon", "2024-06-01", ""),
            post(&config, "draft", "2024-02-01", "draft: true\n"),
        ];
        let mut planner = Planner::new(&config, &posts, at("2024-03-01T00:00:00Z"));
        assert_same(&mut planner, &config, &posts, "2024-03-01T00:00:00Z");
        assert_eq!(planner.plan(&config).visible, 1);
        assert!(planner.apply(&config, &[], at("2024-07-01T00:00:00Z")));
        assert_same(&mut planner, &config, &posts, "2024-07-01T00:00:00Z");
        assert_eq!(planner.plan(&config).visible, 2);
        // The clock going back: start over.
        assert!(!planner.apply(&config, &[], at("2024-03-01T00:00:00Z")));
    }

    #[test]
    fn unchanged_feeds_are_the_very_same_and_a_new_language_starts_over() {
        let config = config();
        let a = post(&config, "a1", "2024-01-01", "");
        let b = post(&config, "b1", "2024-01-02", "");
        let now = at("2025-01-01T00:00:00Z");
        let mut planner = Planner::new(&config, &[a.clone(), b.clone()], now);
        let before = planner.plan(&config);
        // b1 edited: its tag feed and the shared ones change, a1's own tag feed does not.
        let b2 = post(&config, "b1", "2024-01-03", "");
        assert!(planner.apply(&config, &[(Some(b.clone()), Some(b2.clone()))], now));
        let after = planner.plan(&config);
        assert_same(
            &mut planner,
            &config,
            &[a.clone(), b2.clone()],
            "2025-01-01T00:00:00Z",
        );
        let shared: Vec<&str> = before
            .feeds
            .iter()
            .zip(&after.feeds)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .map(|(x, _)| x.dir.as_str())
            .collect();
        assert_eq!(shared, ["tags/a1/"]);
        let de = post(&config, "de", "2024-01-04", "lang: de\n");
        assert!(!planner.apply(&config, &[(None, Some(de))], now));
    }

    #[test]
    fn archive_pages_are_cut_again_only_where_posts_changed() {
        let config = crate::config::parse(
            "[feed]\nlimit = 2\narchive_size = 3\ntags = false\ncategories = false\n",
            Path::new("/nonexistent"),
        )
        .expect("valid");
        let now = at("2025-01-01T00:00:00Z");
        let day = |i: usize| format!("2024-01-{:02}", i + 1);
        // 13 posts: 2 in the subscription document, 11 archived on pages of 3, 3, 3, 2.
        let mut posts: Vec<Arc<Post>> = (0..13)
            .map(|i| post(&config, &format!("p{i:02}"), &day(i), ""))
            .collect();
        let mut planner = Planner::new(&config, &posts, now);
        let pages = |planner: &mut Planner| planner.plan(&config).feeds[0].archive.clone();
        let kept = |a: &[crate::feed::Chunk], b: &[crate::feed::Chunk]| -> Vec<bool> {
            a.iter().zip(b).map(|(x, y)| Arc::ptr_eq(x, y)).collect()
        };
        let first = pages(&mut planner);
        assert_eq!(first.len(), 4);

        // An old post edited in place: its page alone (page 2 holds p03..p05).
        let edited = post(&config, "p04", &day(4), "summary: new\n");
        assert!(planner.apply(
            &config,
            &[(Some(posts[4].clone()), Some(edited.clone()))],
            now
        ));
        posts[4] = edited;
        let second = pages(&mut planner);
        assert_eq!(kept(&first, &second), [true, false, true, true]);
        assert_same(&mut planner, &config, &posts, "2025-01-01T00:00:00Z");

        // A new post: the newest page fills up (p11 moves onto it); the others stay.
        let new = post(&config, "p13", &day(13), "");
        assert!(planner.apply(&config, &[(None, Some(new.clone()))], now));
        posts.push(new);
        let third = pages(&mut planner);
        assert_eq!(kept(&second, &third), [true, true, true, false]);
        assert_same(&mut planner, &config, &posts, "2025-01-01T00:00:00Z");

        // A post re-dated from page 1 onto page 3: pages 1 to 3 are cut again, page 4 kept.
        let moved = post(&config, "p01", "2024-01-08T12:00:00Z", "");
        assert!(planner.apply(
            &config,
            &[(Some(posts[1].clone()), Some(moved.clone()))],
            now
        ));
        posts[1] = moved;
        let fourth = pages(&mut planner);
        assert_eq!(kept(&third, &fourth), [false, false, false, true]);
        assert_same(&mut planner, &config, &posts, "2025-01-01T00:00:00Z");

        // The oldest post removed: every page holds other posts now.
        assert!(planner.apply(&config, &[(Some(posts[0].clone()), None)], now));
        posts.remove(0);
        let fifth = pages(&mut planner);
        assert_eq!(kept(&fourth, &fifth), [false, false, false, false]);
        assert_same(&mut planner, &config, &posts, "2025-01-01T00:00:00Z");
    }
}
