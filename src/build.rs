//! The one build function shared by `serve` and `export`: plan every feed, split it into its
//! documents (the subscription document and its archive pages), reuse the files of
//! documents whose inputs did not change, ask `content` for the bodies of the entries the
//! others show in full, render them in every format, render the pages for people (`pages`),
//! and describe each file once (`Rendered`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;

use crate::config::Config;
use crate::content::{self, Loaded};
use crate::error::{Error, Problem};
use crate::feed::{self, Feed, Plan};
use crate::pages;
use crate::post::Post;
use crate::render::{self, Format};
use crate::snapshot::{Caching, FeedInputs, Rendered, Snapshot};

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
    let emit = |path: &str, file: &Rendered, body: &[u8]| match sink {
        Some(sink) => sink(path, file, body),
        None => Ok(()),
    };
    let plan = feed::plan(config, &loaded.posts, now);
    let pages = archive_pages(config, &plan);
    let documents: Vec<&Feed> = plan.feeds.iter().chain(&pages).collect();
    let (mut files, jobs) = keep_unchanged(&documents, previous);
    content::ensure_bodies(config, &entries_of(config, &jobs));
    files.extend(render_feeds(config, &jobs, previous, &emit)?);
    files.extend(render_site_files(config, &plan, previous, &emit)?);
    let (pages, memo) = render_pages(config, &plan, previous, &emit)?;
    files.extend(pages);
    let mut problems: Vec<Problem> = loaded.errors.iter().cloned().map(Problem::Post).collect();
    problems.extend(plan.problems);
    let inputs = documents
        .iter()
        .map(|f| {
            let shows_content = render::shows_content(config, f);
            (FeedInputs::key(f), FeedInputs::of(f, shows_content))
        })
        .collect();
    Ok(Snapshot {
        generation,
        files,
        posts: plan.visible,
        feeds: plan.feeds.len(),
        problems,
        next_due: plan.next_due,
        inputs,
        pages: memo,
    })
}

type Files = HashMap<String, Arc<Rendered>>;

/// Every archive page of every feed (none without `feed.archives`).
fn archive_pages(config: &Config, plan: &Plan) -> Vec<Feed> {
    plan.feeds
        .iter()
        .flat_map(|feed| feed.archive_pages(config.feed.archive_size))
        .collect()
}

/// Path of a document's file in `format` (`tags/x/rss.xml`, `tags/x/archive/3.rss.xml`).
fn path_of(feed: &Feed, format: Format) -> String {
    format!("{}{}", feed.dir, format.page_file_name(feed.page.number))
}

/// The files of documents whose inputs are unchanged since `previous` (kept without
/// rendering), and the documents to render.
fn keep_unchanged<'p>(
    documents: &[&'p Feed],
    previous: Option<&Snapshot>,
) -> (Files, Vec<&'p Feed>) {
    let mut files: Files = HashMap::with_capacity(documents.len() * 3 + 2);
    let unchanged = |feed: &Feed| -> Option<Vec<(String, Arc<Rendered>)>> {
        let previous = previous?;
        if !previous.inputs.get(&FeedInputs::key(feed))?.same_as(feed) {
            return None;
        }
        Format::ALL
            .iter()
            .map(|f| {
                let path = path_of(feed, *f);
                previous.files.get(&path).map(|file| (path, file.clone()))
            })
            .collect()
    };
    let jobs = documents
        .iter()
        .copied()
        .filter(|feed| match unchanged(feed) {
            Some(kept) => {
                files.extend(kept);
                false
            }
            None => true,
        })
        .collect();
    (files, jobs)
}

/// Every post some document of `jobs` shows with content, once.
fn entries_of<'a>(config: &Config, jobs: &[&'a Feed]) -> Vec<&'a Arc<Post>> {
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

/// Renders `jobs` in every format, in parallel: one job per document, its entries' HTML
/// decompressed once for the three formats. Closed archive pages are cached as archives.
fn render_feeds(
    config: &Config,
    jobs: &[&Feed],
    previous: Option<&Snapshot>,
    emit: Sink<'_>,
) -> Result<Vec<(String, Arc<Rendered>)>, Error> {
    let rendered: Vec<Vec<(String, Arc<Rendered>)>> = jobs
        .par_iter()
        .map(|feed| {
            let texts = render::texts(config, feed);
            let caching = if feed.page.is_closed() {
                Caching::Archived
            } else {
                Caching::Current
            };
            Format::ALL
                .iter()
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
                .collect()
        })
        .collect::<Result<_, Error>>()?;
    Ok(rendered.into_iter().flatten().collect())
}

/// The OPML list, dated by the newest feed.
fn render_site_files(
    config: &Config,
    plan: &Plan,
    previous: Option<&Snapshot>,
    emit: Sink<'_>,
) -> Result<Vec<(String, Arc<Rendered>)>, Error> {
    let newest = plan
        .feeds
        .iter()
        .map(|f| f.updated)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH.fixed_offset());
    [(
        render::OPML_PATH,
        render::OPML_CONTENT_TYPE,
        render::opml(config, &plan.feeds),
    )]
    .into_iter()
    .map(|(path, content_type, body)| {
        let file = reuse(previous, path, &body, Caching::Current)
            .unwrap_or_else(|| Arc::new(Rendered::new(content_type, &body, newest, config)));
        emit(path, &file, &body)?;
        Ok((path.to_string(), file))
    })
    .collect()
}

/// The pages for people (`pages`): the directory and a preview page per feed, in parallel;
/// a page whose inputs are unchanged since `previous` is kept without rendering it.
fn render_pages(
    config: &Config,
    plan: &Plan,
    previous: Option<&Snapshot>,
    emit: Sink<'_>,
) -> Result<(Files, pages::Memo), Error> {
    let site = pages::Site::new(config, &plan.feeds);
    let (jobs, memo) = site.jobs(previous.map(|p| &p.pages));
    let files = jobs
        .par_iter()
        .map(|job| {
            let kept = previous
                .filter(|_| job.unchanged)
                .and_then(|p| p.files.get(&job.path));
            if let Some(file) = kept {
                return Ok((job.path.clone(), file.clone()));
            }
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
    Ok((files, memo))
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
        let pages = archive_pages(config, &plan);
        let documents: Vec<&Feed> = plan.feeds.iter().chain(&pages).collect();
        let (_, jobs) = keep_unchanged(&documents, Some(previous));
        let mut keys: Vec<String> = jobs.into_iter().map(FeedInputs::key).collect();
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
