//! The one build function shared by `serve` and `export`: plan every feed, split it into its
//! documents (the subscription document and its archive pages), keep the files of documents
//! whose inputs did not change, ask `content` for the bodies of the entries the others show
//! in full, render them in every format, render the pages for people (`pages`), and describe
//! each file once (`Rendered`). A build after a previous snapshot starts from its files (a
//! persistent map: copying it costs nothing) and puts in what changed, so that a rebuild
//! after one edit costs the documents that edit touches.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;

use crate::config::Config;
use crate::content::{self, Loaded};
use crate::error::{Error, PostError, Problem};
use crate::feed::{self, Feed, Plan};
use crate::pages;
use crate::post::Post;
use crate::render::{self, Format};
use crate::snapshot::{Caching, Document, FeedInputs, Files, Inputs, Rendered, Snapshot};

/// Receives each file a build renders, with its identity body, as soon as it is ready (on
/// the build's thread pool): export writes files this way, without keeping identity bodies
/// or decompressing them again.
pub type Sink<'a> = &'a (dyn Fn(&str, &Rendered, &[u8]) -> Result<(), Error> + Sync);

/// Plans and renders every file for `loaded` as seen at `now`. Files whose bytes equal a file
/// of `previous` reuse its compressed bodies (and so keep their ETag).
pub fn build(
    config: &Config,
    loaded: &Loaded,
    now: DateTime<FixedOffset>,
    previous: Option<&Snapshot>,
    generation: u64,
) -> Result<Snapshot, Error> {
    build_with(config, loaded, now, previous, generation, None)
}

/// [`build`], handing every rendered file to `sink` too (files kept from `previous` without
/// rendering are not handed over).
pub fn build_with(
    config: &Config,
    loaded: &Loaded,
    now: DateTime<FixedOffset>,
    previous: Option<&Snapshot>,
    generation: u64,
    sink: Option<Sink<'_>>,
) -> Result<Snapshot, Error> {
    let plan = feed::plan(config, &loaded.posts, now);
    let (snapshot, _) = build_plan(config, plan, &loaded.errors, previous, generation, sink)?;
    Ok(snapshot)
}

/// The files a build put in that are new or not the very same `Rendered` as before (a file
/// with the same bytes is), each with the one it replaces; and how many paths it removed.
#[derive(Debug, Default)]
pub struct Changes {
    pub written: Vec<(Arc<Rendered>, Option<Arc<Rendered>>)>,
    pub removed: usize,
}

/// The files of a snapshot being built, and what changed since the previous one.
struct Output {
    files: Files,
    changes: Changes,
}

impl Output {
    fn put(&mut self, path: String, file: Arc<Rendered>) {
        match self.files.insert(path, file.clone()) {
            Some(old) if Arc::ptr_eq(&old, &file) => {}
            old => self.changes.written.push((file, old)),
        }
    }

    fn remove(&mut self, path: &str) {
        if self.files.remove(path).is_some() {
            self.changes.removed += 1;
        }
    }
}

/// [`build_with`] from a plan made already (by `feed::plan` or a `planner::Planner`), with
/// the files that are currently bad (`errors`, reported as problems); and what changed since
/// `previous`.
pub fn build_plan(
    config: &Config,
    plan: Plan,
    errors: &[PostError],
    previous: Option<&Snapshot>,
    generation: u64,
    sink: Option<Sink<'_>>,
) -> Result<(Snapshot, Changes), Error> {
    let emit = |path: &str, file: &Rendered, body: &[u8]| match sink {
        Some(sink) => sink(path, file, body),
        None => Ok(()),
    };
    let mut out = Output {
        files: previous.map(|p| p.files.clone()).unwrap_or_default(),
        changes: Changes::default(),
    };
    let mut inputs = previous.map(|p| p.inputs.clone()).unwrap_or_default();
    let (partial, jobs) = keep_unchanged(&plan, previous, &mut out, &mut inputs);
    // Feeds and pages for people at once: after an edit, a large directory page would
    // otherwise keep one core busy while the other waits.
    let (feeds, pages) = rayon::join(
        || {
            content::ensure_bodies(config, &entries_of(config, &jobs));
            render_feeds(config, &jobs, previous, &emit)
        },
        || render_pages(config, &plan, previous, &emit),
    );
    let mut rendered = feeds?.into_iter();
    for (feed, mut documents) in partial {
        // Kept documents' files are in `out` already (they are the previous snapshot's).
        for slot in documents.iter_mut().filter(|d| d.is_none()) {
            if let Some(document) = rendered.next() {
                for (path, file) in &document.files {
                    out.put(path.clone(), file.clone());
                }
                *slot = Some(Arc::new(document));
            }
        }
        let documents: Vec<Arc<Document>> = documents.into_iter().flatten().collect();
        let shows_content = render::shows_content(config, feed);
        inputs.insert(
            feed.dir.clone(),
            Arc::new(FeedInputs::new(feed.clone(), shows_content, documents)),
        );
    }
    let (pages, memo) = pages?;
    tracing::debug!(
        documents = jobs.len(),
        pages = pages.len(),
        "build: rendered"
    );
    for (path, file) in pages {
        out.put(path, file);
    }
    let site_key = render_site_files(config, &plan, previous, &mut out, &emit)?;
    let mut problems: Vec<Problem> = errors.iter().cloned().map(Problem::Post).collect();
    problems.extend(plan.problems);
    let snapshot = Snapshot {
        generation,
        files: out.files,
        posts: plan.visible,
        feeds: plan.feeds.len(),
        problems,
        next_due: plan.next_due,
        inputs,
        site_key,
        pages: memo,
    };
    Ok((snapshot, out.changes))
}

/// Path of a document's file in `format` (`tags/x/rss.xml`, `tags/x/archive/3.rss.xml`).
fn path_of(feed: &Feed, format: Format) -> String {
    format!("{}{}", feed.dir, format.page_file_name(feed.page.number))
}

/// Files by path, in a list.
type FileList = Vec<(String, Arc<Rendered>)>;

/// A feed with some documents to render: its documents in order, those kept filled in.
type Partial<'p> = (&'p Arc<Feed>, Vec<Option<Arc<Document>>>);

/// Sorts the planned feeds' documents into kept and to render. A feed that is the very same
/// planned `Arc` as last time keeps its inputs and files whole; of any other, each document
/// whose inputs did not change keeps its files (`FeedInputs::keeps`). The files of documents
/// and feeds that are gone are removed from `out`, and their inputs from `inputs`. Returns
/// the feeds with documents to render and those documents, in the same order.
fn keep_unchanged<'p>(
    plan: &'p Plan,
    previous: Option<&Snapshot>,
    out: &mut Output,
    inputs: &mut Inputs,
) -> (Vec<Partial<'p>>, Vec<Cow<'p, Feed>>) {
    let mut partial = Vec::new();
    let mut jobs = Vec::new();
    let mut found = 0;
    for feed in &plan.feeds {
        let old = previous.and_then(|p| p.inputs.get(&feed.dir));
        found += usize::from(old.is_some());
        if let Some(old) = old
            && Arc::ptr_eq(old.feed(), feed)
            && old.complete()
        {
            continue;
        }
        let count = feed.page.of + 1;
        let documents: Vec<Option<Arc<Document>>> = (0..count)
            .map(|number| {
                let kept = old.and_then(|old| old.keeps(feed, number)).cloned();
                if kept.is_none() {
                    jobs.push(match number {
                        0 => Cow::Borrowed(&**feed),
                        n => Cow::Owned(feed.archive_page(n)),
                    });
                }
                kept
            })
            .collect();
        // Pages the feed no longer has.
        for (path, _) in old
            .iter()
            .flat_map(|old| old.documents().iter().skip(count))
            .flat_map(|d| &d.files)
        {
            out.remove(path);
        }
        partial.push((feed, documents));
    }
    if let Some(previous) = previous
        && found < previous.inputs.len()
    {
        // Some feeds are gone, and their pages for people with them.
        let planned: HashSet<&str> = plan.feeds.iter().map(|f| f.dir.as_str()).collect();
        let gone: Vec<&String> = previous
            .inputs
            .keys()
            .filter(|dir| !planned.contains(dir.as_str()))
            .collect();
        for dir in gone {
            if let Some(old) = inputs.remove(dir) {
                for (path, _) in old.files() {
                    out.remove(path);
                }
            }
            if !dir.is_empty() {
                out.remove(&format!("{dir}{}", render::INDEX_PATH));
            }
        }
    }
    (partial, jobs)
}

/// Every post some document of `jobs` shows with content, once.
fn entries_of<'a>(config: &Config, jobs: &'a [Cow<'_, Feed>]) -> Vec<&'a Arc<Post>> {
    let mut seen: HashSet<*const Post> = HashSet::new();
    jobs.iter()
        .filter(|feed| render::shows_content(config, feed))
        .flat_map(|feed| &feed.entries)
        .filter(|post| seen.insert(Arc::as_ptr(post)))
        .collect()
}

/// The file of `previous` at `path` when `body` is byte-for-byte the same (same ETag) and
/// served with the same `caching`.
fn reuse(
    previous: Option<&Snapshot>,
    path: &str,
    body: &[u8],
    caching: Caching,
) -> Option<Arc<Rendered>> {
    let old = previous?.files.get(path)?;
    // xxh3-64 with the length: a collision here would need an adversarial post.
    (old.len == body.len()
        && old.caching == caching
        && old.hash == xxhash_rust::xxh3::xxh3_64(body))
    .then(|| old.clone())
}

/// Renders the documents of `jobs` in every format, in parallel (the formats of a document
/// too: a rebuild after one edit renders a few documents), each document's entries' HTML
/// decompressed once for the three formats. Closed archive pages are cached as archives.
fn render_feeds(
    config: &Config,
    jobs: &[Cow<'_, Feed>],
    previous: Option<&Snapshot>,
    emit: Sink<'_>,
) -> Result<Vec<Document>, Error> {
    jobs.par_iter()
        .map(|feed| {
            let texts = render::texts(config, feed);
            let caching = if feed.page.is_closed() {
                Caching::Archived
            } else {
                Caching::Current
            };
            let files = Format::ALL
                .par_iter()
                .map(|format| {
                    let path = path_of(feed, *format);
                    let body = render::render_with(config, feed, *format, &texts)?;
                    let file = reuse(previous, &path, &body, caching).unwrap_or_else(|| {
                        let file =
                            Rendered::new(format.content_type(), &body, feed.updated, config)
                                .cached_as(caching);
                        // Subscription documents are the WebSub topics; nobody subscribes to
                        // an archive page, and no hub is told about one.
                        Arc::new(if feed.page.is_archive() {
                            file
                        } else {
                            file.feed_at(render::self_url(feed, *format), config)
                        })
                    });
                    emit(&path, &file, &body)?;
                    Ok((path, file))
                })
                .collect::<Result<_, Error>>()?;
            let complete = !render::shows_content(config, feed)
                || feed.entries.iter().all(|p| p.body.get().is_some());
            Ok(Document { files, complete })
        })
        .collect()
}

/// The OPML list, dated by the newest feed; returns the key of what it is made of
/// (`Snapshot::site_key`): while that is unchanged, it is kept without rendering.
fn render_site_files(
    config: &Config,
    plan: &Plan,
    previous: Option<&Snapshot>,
    out: &mut Output,
    emit: Sink<'_>,
) -> Result<u64, Error> {
    let newest = plan
        .feeds
        .iter()
        .map(|f| f.updated)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH.fixed_offset());
    let key = site_key(plan, newest);
    if previous.is_some_and(|p| p.site_key == key && p.files.contains_key(render::OPML_PATH)) {
        return Ok(key);
    }
    let body = render::opml(config, &plan.feeds);
    let file = reuse(previous, render::OPML_PATH, &body, Caching::Current)
        // Dated by the newest feed.
        .filter(|old| old.last_modified_is(newest))
        .unwrap_or_else(|| {
            Arc::new(Rendered::new(
                render::OPML_CONTENT_TYPE,
                &body,
                newest,
                config,
            ))
        });
    emit(render::OPML_PATH, &file, &body)?;
    out.put(render::OPML_PATH.to_string(), file);
    Ok(key)
}

/// A hash of everything the OPML list shows: each feed's listing (`Feed::listing`) and the
/// newest feed's date.
fn site_key(plan: &Plan, newest: DateTime<FixedOffset>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(newest.to_rfc3339().as_bytes());
    for feed in &plan.feeds {
        h.update(&feed.listing.to_le_bytes());
    }
    h.digest()
}

/// The pages for people (`pages`): the directory and a preview page per feed, in parallel;
/// a page whose inputs are unchanged since `previous` is kept without rendering it. Returns
/// the pages rendered, and what they were made of.
fn render_pages(
    config: &Config,
    plan: &Plan,
    previous: Option<&Snapshot>,
    emit: Sink<'_>,
) -> Result<(FileList, pages::Memo), Error> {
    let site = pages::Site::new(config, &plan.feeds);
    let (jobs, memo) = site.jobs(previous.map(|p| &p.pages));
    let rendered: FileList = jobs
        .par_iter()
        // A page kept (only ever with a previous snapshot) is in the files already.
        .filter(|job| !job.unchanged)
        .map(|job| {
            let body = site.render(job);
            let file = reuse(previous, &job.path, &body, Caching::Current).unwrap_or_else(|| {
                Arc::new(Rendered::new(
                    pages::CONTENT_TYPE,
                    &body,
                    job.updated,
                    config,
                ))
            });
            emit(&job.path, &file, &body)?;
            Ok((job.path.clone(), file))
        })
        .collect::<Result<_, Error>>()?;
    Ok((rendered, site.finish(memo)))
}
#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    /// Summary feeds of 3 entries and archive pages of 2: no bodies needed (no files read).
    fn config() -> Config {
        config::parse(
            "[feed]\nlimit = 3\narchive_size = 2\ncontent = \"summary\"\n",
            Path::new("/nonexistent"),
        )
        .expect("valid")
    }

    /// Post `i`, dated `i` days into 2024 (higher is newer), tagged `odd` when `i` is odd.
    fn post(config: &Config, i: usize, body: &str) -> Arc<Post> {
        let tags = if i % 2 == 1 { "[odd]" } else { "[]" };
        let day = i + 1;
        let text = format!("---\ntitle: P{i}\ndate: 2024-01-{day:02}\ntags: {tags}\n---\n{body}\n");
        let rel = format!("p/{i:02}.md");
        Arc::new(crate::post::parse(config, Path::new(&rel), &text).expect("parses"))
    }

    fn loaded(posts: Vec<Arc<Post>>) -> Loaded {
        Loaded {
            posts,
            ..Loaded::default()
        }
    }

    /// The keys of the documents a build after `previous` renders again for `loaded`.
    fn rerendered(config: &Config, loaded: &Loaded, previous: &Snapshot) -> Vec<String> {
        let now = chrono::Utc::now().fixed_offset();
        let plan = feed::plan(config, &loaded.posts, now);
        let mut out = Output {
            files: previous.files.clone(),
            changes: Changes::default(),
        };
        let mut inputs = previous.inputs.clone();
        let (_, jobs) = keep_unchanged(&plan, Some(previous), &mut out, &mut inputs);
        let mut keys: Vec<String> = jobs
            .iter()
            .map(|feed| match feed.page.number {
                0 => feed.dir.clone(),
                n => format!("{}{}{n}", feed.dir, render::ARCHIVE_DIR),
            })
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn only_the_documents_whose_entries_or_links_change_are_rendered_again() {
        let config = config();
        let now = chrono::Utc::now().fixed_offset();
        // 12 posts: the global feed shows 11..9 and archives 8..0 on pages 1 (0, 1) to 5 (8);
        // `odd` shows 11, 9, 7 and archives 5, 3, 1 on pages 1 (1, 3) and 2 (5).
        let posts: Vec<Arc<Post>> = (0..12).map(|i| post(&config, i, "text")).collect();
        let first = build(&config, &loaded(posts.clone()), now, None, 1).expect("builds");
        assert!(rerendered(&config, &loaded(posts.clone()), &first).is_empty());

        // An edit of post 3 re-renders its page in each of its feeds, and nothing else.
        let mut edited = posts.clone();
        edited[3] = post(&config, 3, "new text");
        assert_eq!(
            rerendered(&config, &loaded(edited), &first),
            ["archive/2", "categories/p/archive/2", "tags/odd/archive/1"]
        );

        // A new post pushes 9 out of the global feed onto page 5, which is then full; `odd`
        // gains nothing. A second one starts page 6: page 5 gains its `next-archive` link.
        let mut added = posts.clone();
        added.push(post(&config, 12, "text"));
        assert_eq!(
            rerendered(&config, &loaded(added.clone()), &first),
            ["", "archive/5", "categories/p/", "categories/p/archive/5"]
        );
        let second = build(&config, &loaded(added.clone()), now, Some(&first), 2).expect("builds");
        added.push(post(&config, 13, "text"));
        assert_eq!(
            rerendered(&config, &loaded(added), &second),
            [
                "",
                "archive/5",
                "archive/6",
                "categories/p/",
                "categories/p/archive/5",
                "categories/p/archive/6",
                "tags/odd/",
                "tags/odd/archive/2"
            ]
        );
    }
}
