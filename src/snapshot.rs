//! Immutable snapshots of everything served or exported: per file the identity, gzip and
//! brotli bodies, ETags and Last-Modified, all computed once at build time. `build` is the one
//! build function shared by `serve` and `export`; `SnapshotStore` publishes a new snapshot
//! with a single pointer swap. The only filesystem access is `content::ensure_bodies`, for
//! the bodies of the entries of feeds that must be rendered again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use actix_web::http::header::HeaderValue;
use actix_web::web::Bytes;
use arc_swap::ArcSwap;
use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;

use crate::compress::{brotli, gunzip, gzip};
use crate::config::Config;
use crate::content::{self, Loaded};
use crate::error::Error;
use crate::feed::{self, Feed};
use crate::render::{self, Format};

/// Where files wanted in brotli are sent to be compressed in the background.
pub type BrotliQueue = std::sync::mpsc::Sender<Arc<Rendered>>;

/// Bytes of identity bodies kept by live `Rendered` files, process-wide (see
/// [`Rendered::identity_within`]).
static IDENTITY_KEPT: AtomicUsize = AtomicUsize::new(0);

/// One file, ready to send. gzip is computed at build time. Memory follows what is served:
/// the identity body is kept only once somebody asks for it, within a byte budget; brotli is
/// made off the request path for files that br-capable clients ask for (`want_brotli`).
#[derive(Debug)]
pub struct Rendered {
    pub content_type: &'static str,
    pub gzip: Bytes,
    identity: OnceLock<Bytes>,
    br: OnceLock<Bytes>,
    /// A client that prefers brotli asked for this file.
    brotli_wanted: AtomicBool,
    brotli_quality: u32,
    /// Length of the identity body.
    pub len: usize,
    /// Stable hash of the identity body (xxh3-64): the ETag and the reuse key.
    pub hash: u64,
    /// Newest entry time, to the second.
    pub last_modified: SystemTime,
    /// Header values built once: ETag per encoding (identity, gzip, br) and Last-Modified.
    headers: [HeaderValue; 4],
}

/// A content coding we precompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Rendered {
    /// Hashes and gzips `body` (at `export.gzip_level`).
    pub fn new(
        content_type: &'static str,
        body: &[u8],
        last_modified: DateTime<FixedOffset>,
        config: &Config,
    ) -> Rendered {
        let hash = xxhash_rust::xxh3::xxh3_64(body);
        let last_modified = to_system_time(last_modified);
        let value = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""));
        Rendered {
            headers: [
                value(format!("\"{hash:016x}\"")),
                value(format!("\"{hash:016x}-gz\"")),
                value(format!("\"{hash:016x}-br\"")),
                value(httpdate::fmt_http_date(last_modified)),
            ],
            content_type,
            gzip: Bytes::from(gzip(body, config.export.gzip_level)),
            identity: OnceLock::new(),
            br: OnceLock::new(),
            brotli_wanted: AtomicBool::new(false),
            brotli_quality: config.export.brotli_quality,
            len: body.len(),
            hash,
            last_modified,
        }
    }

    /// The ETag header value of one encoding (see [`Rendered::etag`]).
    pub fn etag_header(&self, encoding: Encoding) -> &HeaderValue {
        match encoding {
            Encoding::Identity => &self.headers[0],
            Encoding::Gzip => &self.headers[1],
            Encoding::Brotli => &self.headers[2],
        }
    }

    /// The Last-Modified header value.
    pub fn last_modified_header(&self) -> &HeaderValue {
        &self.headers[3]
    }

    /// Strong ETag of one encoding: representations differ per content coding
    /// (RFC 9110 §8.8.3), so each gets its own tag derived from the same content hash.
    pub fn etag(&self, encoding: Encoding) -> String {
        String::from_utf8_lossy(self.etag_header(encoding).as_bytes()).into_owned()
    }

    /// The identity body, decompressed once and then kept.
    pub fn identity(&self) -> &Bytes {
        self.identity.get_or_init(|| {
            IDENTITY_KEPT.fetch_add(self.len, Ordering::Relaxed);
            Bytes::from(self.decompress())
        })
    }

    /// The identity body, kept for next time only while all kept identity bodies stay within
    /// `budget` bytes; otherwise decompressed for this request alone.
    pub fn identity_within(&self, budget: usize) -> Bytes {
        if let Some(body) = self.identity.get() {
            return body.clone();
        }
        let reserved = IDENTITY_KEPT
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                kept.checked_add(self.len).filter(|&total| total <= budget)
            })
            .is_ok();
        if !reserved {
            return Bytes::from(self.decompress());
        }
        let mut fresh = None;
        let body = self.identity.get_or_init(|| {
            let body = Bytes::from(self.decompress());
            fresh = Some(());
            body
        });
        if fresh.is_none() {
            // Another request filled it first (and counted it).
            IDENTITY_KEPT.fetch_sub(self.len, Ordering::Relaxed);
        }
        body.clone()
    }

    /// Whether this file keeps its identity body.
    pub fn identity_is_kept(&self) -> bool {
        self.identity.get().is_some()
    }

    /// Marks the file as wanted in brotli; true the first time (queue it for `fill_brotli`).
    pub fn want_brotli(&self) -> bool {
        self.br.get().is_none() && !self.brotli_wanted.swap(true, Ordering::Relaxed)
    }

    /// Whether a client asked for this file in brotli.
    pub fn brotli_wanted(&self) -> bool {
        self.brotli_wanted.load(Ordering::Relaxed)
    }

    /// The identity body without keeping it (export, brotli input).
    pub fn decompress(&self) -> Vec<u8> {
        if let Some(body) = self.identity.get() {
            return body.to_vec();
        }
        gunzip(&self.gzip, self.len)
    }

    /// The brotli body, if it has been computed yet.
    pub fn brotli_ready(&self) -> Option<&Bytes> {
        self.br.get()
    }

    /// Computes the brotli body (idempotent).
    pub fn fill_brotli(&self) -> &Bytes {
        self.br
            .get_or_init(|| Bytes::from(brotli(&self.decompress(), self.brotli_quality)))
    }

    /// Body in one encoding (`Brotli` only once filled; the identity body is materialized).
    pub fn body(&self, encoding: Encoding) -> Option<Bytes> {
        match encoding {
            Encoding::Identity => Some(self.identity().clone()),
            Encoding::Gzip => Some(self.gzip.clone()),
            Encoding::Brotli => self.br.get().cloned(),
        }
    }
}

impl Drop for Rendered {
    fn drop(&mut self) {
        if self.identity.get().is_some() {
            IDENTITY_KEPT.fetch_sub(self.len, Ordering::Relaxed);
        }
    }
}

/// Computes brotli bodies for every file of `snapshot` that lacks one, sequentially on the
/// calling thread (not the shared thread pool, so rebuilds are never queued behind it). Run
/// off the request path after publishing; until then clients that accept gzip get gzip.
pub fn fill_brotli(snapshot: &Snapshot) {
    for file in snapshot.files.values() {
        file.fill_brotli();
    }
}

fn to_system_time(t: DateTime<FixedOffset>) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// Everything served at one moment. Never changes once built.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one per published snapshot.
    pub generation: u64,
    /// Files by decoded site-relative path (`rss.xml`, `tags/内核/atom.xml`, `index.html`).
    pub files: HashMap<String, Arc<Rendered>>,
    /// Visible posts in the feeds.
    pub posts: usize,
    /// Feeds (each in three formats).
    pub feeds: usize,
    /// Current problems: bad files, slug collisions.
    pub problems: Vec<String>,
    /// When the next scheduled post becomes visible.
    pub next_due: Option<DateTime<FixedOffset>>,
    /// What each feed was rendered from (title and entries, by feed directory), so that the
    /// next build re-renders only feeds whose inputs changed.
    inputs: HashMap<String, FeedInputs>,
}

/// The inputs of one rendered feed. Holding the `Arc`s keeps pointer comparison sound.
#[derive(Debug)]
struct FeedInputs {
    title: String,
    entries: Vec<Arc<crate::post::Post>>,
    /// Every entry had its body (a file that could not be read is tried again next build).
    complete: bool,
}

impl FeedInputs {
    fn of(feed: &Feed) -> Self {
        FeedInputs {
            title: feed.title.clone(),
            entries: feed.entries.clone(),
            complete: feed.entries.iter().all(|p| p.body.get().is_some()),
        }
    }

    /// Same title and the very same post objects (an unchanged file keeps its `Arc`).
    fn same_as(&self, feed: &Feed) -> bool {
        self.complete
            && self.title == feed.title
            && self.entries.len() == feed.entries.len()
            && self
                .entries
                .iter()
                .zip(&feed.entries)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Snapshot {
    /// The file at a decoded path (no leading slash; empty or a trailing `/` means the index).
    pub fn get(&self, path: &str) -> Option<&Arc<Rendered>> {
        if path.is_empty() || path.ends_with('/') {
            return self.files.get(&format!("{path}{}", render::INDEX_PATH));
        }
        self.files.get(path)
    }

    /// Paths in a stable order.
    pub fn paths(&self) -> Vec<&String> {
        let mut paths: Vec<&String> = self.files.keys().collect();
        paths.sort();
        paths
    }
}

/// The published snapshot; readers load it without locking.
pub type SnapshotStore = ArcSwap<Snapshot>;

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
    let mut files: HashMap<String, Arc<Rendered>> =
        HashMap::with_capacity(plan.feeds.len() * 3 + 2);
    // Feeds whose inputs are unchanged keep their files without being rendered again.
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
    let jobs: Vec<&Feed> = plan
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
    let reuse = |path: &str, body: &[u8]| -> Option<Arc<Rendered>> {
        let old = previous?.files.get(path)?;
        // xxh3-64 with the length: a collision here would need an adversarial post.
        (old.len == body.len() && old.hash == xxhash_rust::xxh3::xxh3_64(body)).then(|| old.clone())
    };
    // Bodies are needed for the entries of the feeds to render, and kept for every post a
    // feed shows (the next edit re-renders its feeds); other posts drop theirs.
    let mut needed: Vec<&Arc<crate::post::Post>> = Vec::new();
    let mut seen: HashSet<*const crate::post::Post> = HashSet::new();
    for feed in &jobs {
        for post in &feed.entries {
            if seen.insert(Arc::as_ptr(post)) {
                needed.push(post);
            }
        }
    }
    content::ensure_bodies(config, &needed);
    let shown: HashSet<*const crate::post::Post> = plan
        .feeds
        .iter()
        .flat_map(|f| f.entries.iter().map(Arc::as_ptr))
        .collect();
    for post in &loaded.posts {
        if !shown.contains(&Arc::as_ptr(post)) {
            post.body.clear();
        }
    }
    // One job per feed: its entries' HTML is decompressed once for the three formats.
    let rendered: Vec<Vec<(String, Arc<Rendered>)>> = jobs
        .par_iter()
        .map(|feed| {
            let texts = render::texts(config, feed);
            Format::ALL
                .iter()
                .map(|format| {
                    let path = format!("{}{}", feed.dir, format.file_name());
                    let body = render::render_with(config, feed, *format, &texts)?;
                    let file = reuse(&path, &body).unwrap_or_else(|| {
                        Arc::new(Rendered::new(
                            format.content_type(),
                            &body,
                            feed.updated,
                            config,
                        ))
                    });
                    emit(&path, &file, &body)?;
                    Ok((path, file))
                })
                .collect()
        })
        .collect::<Result<_, Error>>()?;
    files.extend(rendered.into_iter().flatten());
    let newest = plan
        .feeds
        .iter()
        .map(|f| f.updated)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH.fixed_offset());
    for (path, content_type, body) in [
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
    ] {
        let file = reuse(path, &body)
            .unwrap_or_else(|| Arc::new(Rendered::new(content_type, &body, newest, config)));
        emit(path, &file, &body)?;
        files.insert(path.to_string(), file);
    }
    let mut problems: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
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
