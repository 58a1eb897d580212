//! Immutable snapshots of everything served or exported (made by `build`), and `Rendered`,
//! one file of it: the gzip body and validators (ETags, Last-Modified) computed once; the
//! identity body kept once somebody asks for it, within a budget; brotli made in the
//! background for files that brotli-capable clients ask for. `SnapshotStore` publishes a new
//! snapshot with a single pointer swap. No HTTP framework types: the server turns the
//! validators into headers, export writes the bodies.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use chrono::{DateTime, FixedOffset};

use crate::compress::{brotli, gunzip, gzip};
use crate::config::Config;
use crate::error::Problem;
use crate::feed::Feed;
use crate::post::Post;
use crate::render;

/// Where files wanted in brotli are sent to be compressed in the background, with the
/// number of files waiting (for `/metrics`).
#[derive(Debug, Clone)]
pub struct BrotliQueue {
    sender: std::sync::mpsc::Sender<Arc<Rendered>>,
    waiting: Arc<AtomicUsize>,
}

impl BrotliQueue {
    /// A queue and the receiving end for the compressing thread.
    pub fn new() -> (BrotliQueue, BrotliReceiver) {
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        (
            BrotliQueue {
                sender,
                waiting: waiting.clone(),
            },
            BrotliReceiver { receiver, waiting },
        )
    }

    /// Queues a file (dropped silently once the compressing thread is gone).
    pub fn send(&self, file: Arc<Rendered>) {
        if self.sender.send(file).is_ok() {
            self.waiting.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Files waiting for their brotli body.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// No file is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The compressing thread's end of a [`BrotliQueue`].
pub struct BrotliReceiver {
    receiver: std::sync::mpsc::Receiver<Arc<Rendered>>,
    waiting: Arc<AtomicUsize>,
}

impl BrotliReceiver {
    /// The next file, once the queue's senders are all gone `None`.
    pub fn recv(&self) -> Option<Arc<Rendered>> {
        let file = self.receiver.recv().ok()?;
        // Counted as waiting until taken (`send` counts after a successful send).
        let _ = self
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        Some(file)
    }

    /// The next file if one is waiting now.
    pub fn try_recv(&self) -> Option<Arc<Rendered>> {
        let file = self.receiver.try_recv().ok()?;
        let _ = self
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        Some(file)
    }
}

/// Bytes of identity bodies kept by live `Rendered` files, process-wide (see
/// [`Rendered::identity_within`]).
static IDENTITY_KEPT: AtomicUsize = AtomicUsize::new(0);

/// Bytes of identity bodies kept in memory, process-wide.
pub fn identity_kept_bytes() -> usize {
    IDENTITY_KEPT.load(Ordering::Relaxed)
}

/// How long caches may keep a file; the server maps it to `Cache-Control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Caching {
    /// Like any feed: `server.cache_control`, shortened before a scheduled post is due.
    #[default]
    Current,
    /// A closed archive page (`feed::Page::is_closed`): `server.archive_cache_control`.
    Archived,
}

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
    /// Which `Cache-Control` the file is served with.
    pub caching: Caching,
    /// Validators formatted once: ETag per encoding (identity, gzip, br) and Last-Modified
    /// as an HTTP date.
    validators: [Box<str>; 4],
    /// A feed document's own public URL (its `rel="self"`, the WebSub topic).
    topic: Option<Box<str>>,
    /// A feed document's `Link` header (hubs and self), when hubs are configured.
    link: Option<Box<str>>,
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
        Rendered {
            validators: [
                format!("\"{hash:016x}\"").into(),
                format!("\"{hash:016x}-gz\"").into(),
                format!("\"{hash:016x}-br\"").into(),
                httpdate::fmt_http_date(last_modified).into(),
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
            caching: Caching::Current,
            topic: None,
            link: None,
        }
    }

    /// The same file, served with `caching`.
    pub fn cached_as(mut self, caching: Caching) -> Self {
        self.caching = caching;
        self
    }

    /// Marks this file as a feed document published at `self_url`: its WebSub topic, with
    /// the `Link` header (hubs and self) formatted now when `websub.hubs` are configured.
    pub fn feed_at(mut self, self_url: String, config: &Config) -> Rendered {
        self.link = crate::websub::link_header(&config.websub.hubs, &self_url).map(Into::into);
        self.topic = Some(self_url.into());
        self
    }

    /// A feed document's public URL (`None` for other files).
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// A feed document's `Link` header value, when hubs are configured.
    pub fn link(&self) -> Option<&str> {
        self.link.as_deref()
    }

    /// Strong ETag of one encoding, quoted: representations differ per content coding
    /// (RFC 9110 §8.8.3), so each gets its own tag derived from the same content hash.
    pub fn etag(&self, encoding: Encoding) -> &str {
        match encoding {
            Encoding::Identity => &self.validators[0],
            Encoding::Gzip => &self.validators[1],
            Encoding::Brotli => &self.validators[2],
        }
    }

    /// Whether this file is dated `t` (to the second).
    pub fn last_modified_is(&self, t: DateTime<FixedOffset>) -> bool {
        self.last_modified == to_system_time(t)
    }

    /// Last-Modified as an HTTP date.
    pub fn last_modified_http(&self) -> &str {
        &self.validators[3]
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

/// Files by decoded site-relative path. A persistent map: a build after an edit copies the
/// previous snapshot's map at no cost and puts in what changed. Hashed with foldhash,
/// seeded per process (no output depends on the map's order).
pub type Files = PersistentMap<Arc<Rendered>>;

/// What each feed was rendered from, by directory (persistent, like `Files`).
pub(crate) type Inputs = PersistentMap<Arc<FeedInputs>>;

/// A persistent map by path.
pub type PersistentMap<V> = imbl::GenericHashMap<
    String,
    V,
    foldhash::fast::RandomState,
    imbl::shared_ptr::DefaultSharedPtr,
>;

/// Everything served at one moment. Never changes once built.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one per published snapshot.
    pub generation: u64,
    /// Files by decoded site-relative path (`rss.xml`, `tags/内核/atom.xml`, `index.html`).
    pub files: Files,
    /// Visible posts in the feeds.
    pub posts: usize,
    /// Feeds (each in three formats).
    pub feeds: usize,
    /// Current problems: bad files, slug collisions.
    pub problems: Vec<Problem>,
    /// When the next scheduled post becomes visible.
    pub next_due: Option<DateTime<FixedOffset>>,
    /// What each feed was rendered from, by directory (its subscription document and archive
    /// pages, with their files), so that the next build renders again only the documents
    /// whose inputs changed: one archive page per edited old post, not every page.
    pub(crate) inputs: Inputs,
    /// What the OPML list was made of (a hash, see `build`).
    pub(crate) site_key: u64,
    /// What each page for people was rendered from (`pages::Memo`).
    pub(crate) pages: crate::pages::Memo,
}

/// The files of one feed document (subscription document or archive page), one per format.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub(crate) files: Vec<(String, Arc<Rendered>)>,
    /// Every entry had what it shows (without content: always; with content: its body; a
    /// file that could not be read is tried again next build).
    pub(crate) complete: bool,
}

/// What one feed was rendered from: the planned feed (its subscription document, whose
/// `archive` holds the entries of its pages) and the files of each document. Holding the
/// `Arc`s keeps pointer comparison sound.
#[derive(Debug)]
pub(crate) struct FeedInputs {
    feed: Arc<Feed>,
    /// The subscription document shows content: its posts' bodies are worth keeping.
    shows_content: bool,
    /// The subscription document, then archive page 1, 2...
    documents: Vec<Arc<Document>>,
}

impl FeedInputs {
    pub(crate) fn new(feed: Arc<Feed>, shows_content: bool, documents: Vec<Arc<Document>>) -> Self {
        FeedInputs {
            feed,
            shows_content,
            documents,
        }
    }

    /// The feed rendered.
    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// The documents: the subscription document, then archive page 1, 2...
    pub(crate) fn documents(&self) -> &[Arc<Document>] {
        &self.documents
    }

    /// Every file rendered from the feed.
    pub(crate) fn files(&self) -> impl Iterator<Item = &(String, Arc<Rendered>)> {
        self.documents.iter().flat_map(|d| &d.files)
    }

    /// Every document had what it shows.
    pub(crate) fn complete(&self) -> bool {
        self.documents.iter().all(|d| d.complete)
    }

    /// The subscription document's entries when it shows content (their bodies are worth
    /// keeping), else none.
    fn shown(&self) -> &[Arc<Post>] {
        if self.shows_content {
            &self.feed.entries
        } else {
            &[]
        }
    }

    /// Document `number` (0: the subscription document) as rendered for this feed, when
    /// `feed` would render it the same: same title, the very same post objects (an unchanged
    /// file keeps its `Arc`) and the same history links.
    pub(crate) fn keeps(&self, feed: &Feed, number: usize) -> Option<&Arc<Document>> {
        let document = self.documents.get(number)?;
        let old = &self.feed;
        let same_entries = match number {
            0 => crate::post::same_posts(&old.entries, &feed.entries),
            n => match (old.archive.get(n - 1), feed.archive.get(n - 1)) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || crate::post::same_posts(a, b),
                _ => false,
            },
        };
        (document.complete
            && same_entries
            && old.title == feed.title
            && links(old.page.of, number) == links(feed.page.of, number))
        .then_some(document)
    }
}

/// What the history links (and caching) of document `number` of a feed with `pages` archive
/// pages depend on: the subscription document links the newest page (the count of pages); a
/// page links its neighbours (its number, and whether it is the newest). So a new page
/// renders again the subscription document and the page before it, and no other.
fn links(pages: usize, number: usize) -> (usize, bool) {
    match number {
        0 => (pages, false),
        n => (n, n >= pages),
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

    /// The posts some subscription document shows with content (whose bodies are worth
    /// keeping). Archive pages with content load the bodies of their entries when they are
    /// rendered again, which is rare: their posts' bodies are not kept for them.
    pub fn shown(&self) -> HashSet<*const Post> {
        self.inputs
            .values()
            .flat_map(|inputs| inputs.shown().iter().map(Arc::as_ptr))
            .collect()
    }

    /// The entries of the feeds of `previous` that this snapshot replaced or dropped, and of
    /// the feeds this snapshot added or replaced: the posts whose count of showing feeds
    /// changed, as `(post, showing feeds gained)` (a post that moved gets -1 and +1).
    pub fn shown_changes<'a>(&'a self, previous: &'a Snapshot) -> Vec<(&'a Arc<Post>, isize)> {
        let differ =
            |a: &Arc<FeedInputs>, b: Option<&Arc<FeedInputs>>| b.is_none_or(|b| !Arc::ptr_eq(a, b));
        let lost = previous
            .inputs
            .iter()
            .filter(|(dir, old)| differ(old, self.inputs.get(*dir)))
            .flat_map(|(_, old)| old.shown().iter().map(|p| (p, -1)));
        let gained = self
            .inputs
            .iter()
            .filter(|(dir, new)| differ(new, previous.inputs.get(*dir)))
            .flat_map(|(_, new)| new.shown().iter().map(|p| (p, 1)));
        lost.chain(gained).collect()
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
