//! The one build function shared by `serve` and `export`: plan every feed, reuse the files
//! of feeds whose inputs did not change, ask `content` for the bodies of the entries of the
//! others, render them in every format, render the pages for people (`pages`), and describe
//! each file once (`Rendered`).

use std::collections::{HashMap, HashSet};
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
    let (mut files, mut inputs, jobs) = keep_unchanged(&plan, previous);
    content::ensure_bodies(config, &entries_of(&jobs));
    let rendered = render_feeds(config, &jobs, previous, &emit)?;
    let (site_files, site_key) = render_site_files(config, &plan, previous, &emit)?;
    files.extend(site_files);
    // After rendering: `complete` says whether every entry had its body.
    for (feed, feed_files) in jobs.into_iter().zip(rendered) {
        files.extend(feed_files.iter().cloned());
        inputs.insert(feed.dir.clone(), Arc::new(FeedInputs::of(feed, feed_files)));
    }
    let (pages, memo) = render_pages(config, &plan, previous, &emit)?;
    files.extend(pages);
    let mut problems: Vec<Problem> = errors.iter().cloned().map(Problem::Post).collect();
    problems.extend(plan.problems);
    Ok(Snapshot {
        generation,
        files,
        posts: plan.visible,
        feeds: plan.feeds.len(),
        problems,
        next_due: plan.next_due,
        inputs,
        site_key,
        pages: memo,
    })
}

type Files = HashMap<String, Arc<Rendered>>;
type Inputs = HashMap<String, Arc<FeedInputs>>;
/// Files by path, in a list.
type FileList = Vec<(String, Arc<Rendered>)>;

/// The files and inputs of feeds whose inputs are unchanged since `previous` (kept without
/// rendering), and the feeds to render. When most feeds are kept (an edit), the maps of
/// `previous` are copied whole (no hashing) and what changed or went is taken out.
fn keep_unchanged<'p>(
    plan: &'p Plan,
    previous: Option<&Snapshot>,
) -> (Files, Inputs, Vec<&'p Arc<Feed>>) {
    let Some(previous) = previous else {
        return (
            HashMap::with_capacity(plan.feeds.len() * 3 + 2),
            HashMap::with_capacity(plan.feeds.len()),
            plan.feeds.iter().collect(),
        );
    };
    let mut jobs = Vec::new();
    let mut kept = Vec::with_capacity(plan.feeds.len());
    let mut replaced = 0;
    for feed in &plan.feeds {
        match previous.inputs.get(&feed.dir) {
            Some(inputs) if inputs.same_as(feed) => kept.push(inputs),
            Some(_) => {
                replaced += 1;
                jobs.push(feed);
            }
            None => jobs.push(feed),
        }
    }
    if kept.len() * 2 < plan.feeds.len() {
        let mut files: Files = HashMap::with_capacity(plan.feeds.len() * 3 + 2);
        let mut inputs: Inputs = HashMap::with_capacity(plan.feeds.len());
        for kept in kept {
            files.extend(kept.files().iter().cloned());
            inputs.insert(kept.feed().dir.clone(), kept.clone());
        }
        return (files, inputs, jobs);
    }
    let mut files = previous.files.clone();
    let mut inputs = previous.inputs.clone();
    let mut drop_dir = |dir: &str, page: bool| {
        if let Some(old) = inputs.remove(dir) {
            for (path, _) in old.files() {
                files.remove(path);
            }
        }
        // A feed that is gone takes its preview page (`pages`) along; the pages of the
        // feeds planned are all made again (kept or rendered) by `render_pages`.
        if page && !dir.is_empty() {
            files.remove(&format!("{dir}{}", render::INDEX_PATH));
        }
    };
    for feed in &jobs {
        drop_dir(&feed.dir, false);
    }
    if kept.len() + replaced < previous.inputs.len() {
        // Some feeds are gone.
        let planned: HashSet<&str> = plan.feeds.iter().map(|f| f.dir.as_str()).collect();
        let gone: Vec<&String> = previous
            .inputs
            .keys()
            .filter(|dir| !planned.contains(dir.as_str()))
            .collect();
        for dir in gone {
            drop_dir(dir, true);
        }
    }
    (files, inputs, jobs)
}

/// Every post some feed of `jobs` shows, once.
fn entries_of<'a>(jobs: &[&'a Arc<Feed>]) -> Vec<&'a Arc<Post>> {
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

/// Renders `jobs` in every format (the files of each job in turn), in parallel: one job per feed, its entries' HTML
/// decompressed once for the three formats.
fn render_feeds(
    config: &Config,
    jobs: &[&Arc<Feed>],
    previous: Option<&Snapshot>,
    emit: Sink<'_>,
) -> Result<Vec<FileList>, Error> {
    let rendered: Vec<FileList> = jobs
        .par_iter()
        .map(|feed| {
            let texts = render::texts(config, feed);
            // Formats in parallel too: a rebuild after one edit renders a feed or two.
            Format::ALL
                .par_iter()
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
    Ok(rendered)
}

/// The OPML list, dated by the newest feed, with the key of what it is made of
/// (`Snapshot::site_key`): while that is unchanged, it is kept without rendering.
fn render_site_files(
    config: &Config,
    plan: &Plan,
    previous: Option<&Snapshot>,
    emit: Sink<'_>,
) -> Result<(FileList, u64), Error> {
    let newest = plan
        .feeds
        .iter()
        .map(|f| f.updated)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH.fixed_offset());
    let key = site_key(plan, newest);
    if let Some(previous) = previous.filter(|p| p.site_key == key)
        && let Some(kept) = previous.files.get(render::OPML_PATH)
    {
        return Ok((vec![(render::OPML_PATH.to_string(), kept.clone())], key));
    }
    let files = [(
        render::OPML_PATH,
        render::OPML_CONTENT_TYPE,
        render::opml(config, &plan.feeds),
    )]
    .into_iter()
    .map(|(path, content_type, body)| {
        let file = reuse(previous, path, &body)
            // Dated by the newest feed.
            .filter(|old| old.last_modified_is(newest))
            .unwrap_or_else(|| Arc::new(Rendered::new(content_type, &body, newest, config)));
        emit(path, &file, &body)?;
        Ok((path.to_string(), file))
    })
    .collect::<Result<_, Error>>()?;
    Ok((files, key))
}

/// A hash of everything the OPML list shows: each feed's listing
/// (`Feed::listing`) and the newest feed's date.
fn site_key(plan: &Plan, newest: DateTime<FixedOffset>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(newest.to_rfc3339().as_bytes());
    for feed in &plan.feeds {
        h.update(&feed.listing.to_le_bytes());
    }
    h.digest()
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
            let file = reuse(previous, &job.path, &body).unwrap_or_else(|| {
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
    let memo = site.finish(memo);
    Ok((files, memo))
}
