//! The one build function shared by `serve` and `export`: plan every feed, reuse the files
//! of feeds whose inputs did not change, ask `content` for the bodies of the entries of the
//! others, render them in every format, and describe each file once (`Rendered`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;

use crate::config::Config;
use crate::content::{self, Loaded};
use crate::error::{Error, PostError, Problem};
use crate::feed::{self, Feed, Plan};
use crate::post::Post;
use crate::render::{self, Format};
use crate::snapshot::{FeedInputs, Rendered, Snapshot};

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
    build_plan(config, plan, &loaded.errors, previous, generation, sink)
}

/// [`build_with`] from a plan made already (by `feed::plan` or a `planner::Planner`), with
/// the files that are currently bad (`errors`, reported as problems).
pub fn build_plan(
    config: &Config,
    plan: Plan,
    errors: &[PostError],
    previous: Option<&Snapshot>,
    generation: u64,
    sink: Option<Sink<'_>>,
) -> Result<Snapshot, Error> {
    let emit = |path: &str, file: &Rendered, body: &[u8]| match sink {
        Some(sink) => sink(path, file, body),
        None => Ok(()),
    };
    let (mut files, jobs) = keep_unchanged(&plan, previous);
    content::ensure_bodies(config, &entries_of(&jobs));
    files.extend(render_feeds(config, &jobs, previous, &emit)?);
    files.extend(render_site_files(config, &plan, previous, &emit)?);
    let mut problems: Vec<Problem> = errors.iter().cloned().map(Problem::Post).collect();
    problems.extend(plan.problems);
    let inputs = plan
        .feeds
        .iter()
        .map(|f| (f.dir.clone(), FeedInputs::of(f)))
        .collect();
    Ok(Snapshot {
        generation,
        files,
        posts: plan.visible,
        feeds: plan.feeds.len(),
        problems,
        next_due: plan.next_due,
        inputs,
    })
}

type Files = HashMap<String, Arc<Rendered>>;

/// The files of feeds whose inputs are unchanged since `previous` (kept without rendering),
/// and the feeds to render.
fn keep_unchanged<'p>(plan: &'p Plan, previous: Option<&Snapshot>) -> (Files, Vec<&'p Feed>) {
    let mut files: Files = HashMap::with_capacity(plan.feeds.len() * 3 + 2);
    let unchanged = |feed: &Feed| -> Option<Vec<(String, Arc<Rendered>)>> {
        let previous = previous?;
        if !previous.inputs.get(&feed.dir)?.same_as(feed) {
            return None;
        }
        Format::ALL
            .iter()
            .map(|f| {
                let path = format!("{}{}", feed.dir, f.file_name());
                previous.files.get(&path).map(|file| (path, file.clone()))
            })
            .collect()
    };
    let jobs = plan
        .feeds
        .iter()
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

/// Every post some feed of `jobs` shows, once.
fn entries_of<'a>(jobs: &[&'a Feed]) -> Vec<&'a Arc<Post>> {
    let mut seen: HashSet<*const Post> = HashSet::new();
    jobs.iter()
        .flat_map(|feed| &feed.entries)
        .filter(|post| seen.insert(Arc::as_ptr(post)))
        .collect()
}

/// The file of `previous` at `path` when `body` is byte-for-byte the same (same ETag).
fn reuse(previous: Option<&Snapshot>, path: &str, body: &[u8]) -> Option<Arc<Rendered>> {
    let old = previous?.files.get(path)?;
    // xxh3-64 with the length: a collision here would need an adversarial post.
    (old.len == body.len() && old.hash == xxhash_rust::xxh3::xxh3_64(body)).then(|| old.clone())
}

/// Renders `jobs` in every format, in parallel: one job per feed, its entries' HTML
/// decompressed once for the three formats.
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
            Format::ALL
                .iter()
                .map(|format| {
                    let path = format!("{}{}", feed.dir, format.file_name());
                    let body = render::render_with(config, feed, *format, &texts)?;
                    let file = reuse(previous, &path, &body).unwrap_or_else(|| {
                        let self_url = format!("{}{}", feed.dir_url, format.file_name());
                        Arc::new(
                            Rendered::new(format.content_type(), &body, feed.updated, config)
                                .feed_at(self_url, config),
                        )
                    });
                    emit(&path, &file, &body)?;
                    Ok((path, file))
                })
                .collect()
        })
        .collect::<Result<_, Error>>()?;
    Ok(rendered.into_iter().flatten().collect())
}

/// The OPML list and the HTML index, dated by the newest feed.
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
    [
        (
            render::OPML_PATH,
            render::OPML_CONTENT_TYPE,
            render::opml(config, &plan.feeds),
        ),
        (
            render::INDEX_PATH,
            render::HTML_CONTENT_TYPE,
            render::index(config, &plan.feeds),
        ),
    ]
    .into_iter()
    .map(|(path, content_type, body)| {
        let file = reuse(previous, path, &body)
            .unwrap_or_else(|| Arc::new(Rendered::new(content_type, &body, newest, config)));
        emit(path, &file, &body)?;
        Ok((path.to_string(), file))
    })
    .collect()
}
