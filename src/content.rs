//! The content directory: finding post files, reading them (the only place that reads
//! content), and keeping a cache of parsed posts keyed by path and content hash so that a
//! rebuild re-parses only what changed. A file that turns bad keeps its last good post.
//! Post bodies are rendered on demand (`ensure_bodies`), only for posts some feed shows.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use crate::config::Config;
use crate::error::{Error, PostError, PostErrorKind, PostWarning};
use crate::post::{self, Post};

/// True for files that are posts: `.md`/`.markdown`, not hidden, not an editor temp file.
pub fn is_post_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    (lower.ends_with(".md") || lower.ends_with(".markdown")) && !is_ignored_name(name)
}

/// Hidden files and editor droppings: `.x`, `x~`, `#x#`, `x.swp`, vim's `4913` probe.
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name == "4913"
}

/// True when any component of `rel` (relative to the content dir) is hidden or ignored.
pub fn is_ignored_path(rel: &Path) -> bool {
    rel.components().any(|c| match c {
        std::path::Component::Normal(s) => s.to_str().is_none_or(is_ignored_name),
        _ => false,
    })
}

/// What a walk of the content directory found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Post files, relative to the walked directory, sorted.
    pub files: Vec<PathBuf>,
    /// Entries that could not be read (dangling symlinks, unreadable directories).
    pub errors: Vec<PostError>,
    /// Symlinks not followed: leading outside the content directory, or in a loop.
    pub warnings: Vec<PostWarning>,
}

/// The content root as the filesystem resolves it, for confinement checks.
fn real_root(config: &Config) -> PathBuf {
    std::fs::canonicalize(&config.content.dir).unwrap_or_else(|_| config.content.dir.clone())
}

/// Where the symlink at `path` leads, when that is outside `root` (and following such links
/// is off); `None` when it may be followed.
fn escapes(config: &Config, root: &Path, path: &Path) -> Option<String> {
    if config.content.follow_external_symlinks {
        return None;
    }
    match std::fs::canonicalize(path) {
        Ok(target) if target.starts_with(root) => None,
        Ok(target) => Some(target.display().to_string()),
        // Dangling or looping: reading it fails on its own, with its own message.
        Err(_) => None,
    }
}

/// All post files under `dir` (the content directory or a directory in it), as paths
/// relative to it, sorted; entries that could not be read; and symlinks not followed
/// because they lead outside the content directory or back into their own ancestors
/// (walked once, never re-walked).
pub fn discover(config: &Config, dir: &Path) -> Result<Walk, Error> {
    let meta = std::fs::metadata(dir).map_err(|source| Error::ContentDir {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(Error::ContentDir {
            path: dir.to_path_buf(),
            source: std::io::Error::other("not a directory"),
        });
    }
    let shown = |p: &Path| {
        p.strip_prefix(&config.content.dir)
            .or_else(|_| p.strip_prefix(dir))
            .unwrap_or(p)
            .to_path_buf()
    };
    if let Some(walk) = discover_without_symlinks(dir, &shown) {
        return Ok(walk);
    }
    Ok(discover_with_symlinks(config, dir, &shown))
}

/// [`discover`] in one walk that follows symlinks (those that stay inside the content
/// directory) and reports the others.
fn discover_with_symlinks(config: &Config, dir: &Path, shown: &dyn Fn(&Path) -> PathBuf) -> Walk {
    let root = real_root(config);
    let mut walk = Walk::default();
    let refused = std::cell::RefCell::new(Vec::new());
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| {
            if e.depth() > 0 && e.file_name().to_str().is_some_and(is_ignored_name) {
                return false;
            }
            let escape = e
                .path_is_symlink()
                .then(|| escapes(config, &root, e.path()))
                .flatten();
            if let Some(target) = &escape {
                refused.borrow_mut().push(PostWarning {
                    path: shown(e.path()),
                    position: None,
                    message: PostErrorKind::OutsideRoot(target.clone()).to_string(),
                });
            }
            escape.is_none()
        });
    for entry in walker {
        take(entry, dir, shown, &mut walk);
    }
    walk.warnings.extend(refused.into_inner());
    sort_paths(&mut walk.files);
    walk
}

/// Sorts relative paths as `sort` does (component by component), comparing bytes with each
/// separator as a zero byte: a component that ends sorts before one that goes on, as in
/// `Path` order, and a byte comparison is many times cheaper than a component one (100,000
/// paths take some 1.7 million comparisons).
fn sort_paths(paths: &mut [PathBuf]) {
    #[cfg(unix)]
    paths.sort_by_cached_key(|path| {
        use std::os::unix::ffi::OsStrExt as _;
        path.as_os_str()
            .as_bytes()
            .iter()
            .map(|&b| if b == b'/' { 0 } else { b })
            .collect::<Vec<u8>>()
    });
    #[cfg(not(unix))]
    paths.sort();
}

/// Records what one walk entry is: a post file, something named like a post that is no
/// file, or an error.
fn take(
    entry: walkdir::Result<walkdir::DirEntry>,
    dir: &Path,
    shown: &dyn Fn(&Path) -> PathBuf,
    walk: &mut Walk,
) {
    match entry {
        Ok(e) if e.file_type().is_file() && is_post_file(e.path()) => {
            if let Ok(rel) = e.path().strip_prefix(dir) {
                walk.files.push(rel.to_path_buf());
            }
        }
        Ok(e) if !e.file_type().is_dir() && is_post_file(e.path()) => {
            // A FIFO, socket or device named like a post: reading it could block.
            walk.errors
                .push(PostError::new(&shown(e.path()), PostErrorKind::NotAFile));
        }
        Ok(_) => {}
        Err(e) => walk_error(&e, shown, walk),
    }
}

/// [`discover`] of a tree without symlinks, in parallel: the first two levels are walked
/// first, then each directory two levels down on its own, and the entries are taken in the
/// order one walk gives them (its own order, directory by directory). `None` as soon as a
/// symlink is seen: following symlinks, vetting where they lead and walking each directory
/// once are left to the one walk. (A walk of 100,000 post directories is mostly system
/// calls; two cores halve it.)
fn discover_without_symlinks(
    dir: &Path,
    shown: &(dyn Fn(&Path) -> PathBuf + Sync),
) -> Option<Walk> {
    const SPLIT: usize = 2;
    let walk = |root: &Path, max_depth: usize| -> Option<Vec<walkdir::Result<walkdir::DirEntry>>> {
        let entries: Vec<_> = walkdir::WalkDir::new(root)
            .max_depth(max_depth)
            .into_iter()
            .filter_entry(|e| {
                !(e.depth() > 0 && e.file_name().to_str().is_some_and(is_ignored_name))
            })
            .collect();
        let symlink = entries
            .iter()
            .any(|e| e.as_ref().is_ok_and(walkdir::DirEntry::path_is_symlink));
        (!symlink).then_some(entries)
    };
    let top = walk(dir, SPLIT)?;
    let below: Vec<Option<Vec<_>>> = top
        .par_iter()
        .map(|entry| match entry {
            Ok(e) if e.depth() == SPLIT && e.file_type().is_dir() => {
                // Without the directory itself, which `top` has (an error about it stays).
                walk(e.path(), usize::MAX).map(|entries| {
                    entries
                        .into_iter()
                        .filter(|e| !e.as_ref().is_ok_and(|e| e.depth() == 0))
                        .collect()
                })
            }
            _ => Some(Vec::new()),
        })
        .collect();
    let mut found = Walk::default();
    for (entry, below) in top.into_iter().zip(below) {
        take(entry, dir, shown, &mut found);
        for entry in below? {
            take(entry, dir, shown, &mut found);
        }
    }
    sort_paths(&mut found.files);
    Some(found)
}

/// Records what a failed walk entry means: a symlink loop (walked once: a warning), a file
/// deleted while walking (nothing), an unreadable post or directory (an error).
fn walk_error(e: &walkdir::Error, shown: &dyn Fn(&Path) -> PathBuf, walk: &mut Walk) {
    let rel = e.path().map(shown).unwrap_or_default();
    if let Some(ancestor) = e.loop_ancestor() {
        walk.warnings.push(PostWarning {
            path: rel,
            position: None,
            message: format!(
                "symlink loop: leads back to `{}`; not walked again",
                shown(ancestor).display()
            ),
        });
        return;
    }
    // A file or directory deleted while we walk is simply gone (a dangling symlink is
    // still there, and reported).
    if e.io_error()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        && e.path()
            .is_none_or(|p| std::fs::symlink_metadata(p).is_err())
    {
        return;
    }
    // Only what could have been a post, or a directory that may hold posts.
    if is_post_file(&rel)
        || e.io_error()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    {
        let message = e
            .io_error()
            .map_or_else(|| e.to_string(), ToString::to_string);
        walk.errors
            .push(PostError::new(&rel, PostErrorKind::Unreadable(message)));
    }
}

/// True when some component of `rel` under `dir` is a symlink.
fn through_symlink(dir: &Path, rel: &Path) -> bool {
    let mut path = dir.to_path_buf();
    rel.components().any(|c| {
        path.push(c);
        std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// Reads a post file as bytes; `rel` (relative to the content directory) names it in
/// errors; `None` when the file is gone (deleted since it was listed: a removal, not an
/// error). Refuses what is not a regular file (a FIFO would block), files over
/// `content.max_post_bytes` (and reads no more than that even if the file grows), and
/// files reached through a symlink that leads outside the content directory.
pub fn read(config: &Config, rel: &Path) -> Result<Option<Vec<u8>>, PostError> {
    use std::io::Read as _;
    let dir = &config.content.dir;
    let path = dir.join(rel);
    let unreadable =
        |e: std::io::Error| PostError::new(rel, PostErrorKind::Unreadable(e.to_string()));
    let gone = |e: &std::io::Error| {
        // A dangling symlink is still there: that is an error worth reporting.
        e.kind() == std::io::ErrorKind::NotFound && std::fs::symlink_metadata(&path).is_err()
    };
    // Opened without following a final symlink and without blocking (a FIFO named like a
    // post would otherwise wait for a writer): a plain file costs what `fs::read` costs. A
    // symlink is followed only when it stays inside the content directory. (Directories on
    // the way were vetted by `discover`, and by `Cache::refresh_paths` for event paths.)
    let open = |follow: bool| {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
            options.custom_flags(libc::O_NONBLOCK | nofollow);
        }
        #[cfg(not(unix))]
        let _ = follow;
        options.open(&path)
    };
    let file = match open(false) {
        Ok(file) => file,
        Err(e) if gone(&e) => return Ok(None),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            if let Some(target) = escapes(config, &real_root(config), &path) {
                return Err(PostError::new(rel, PostErrorKind::OutsideRoot(target)));
            }
            match open(true) {
                Ok(file) => file,
                Err(e) if gone(&e) => return Ok(None),
                Err(e) => return Err(unreadable(e)),
            }
        }
        Err(e) => return Err(unreadable(e)),
    };
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(PostError::new(rel, PostErrorKind::NotAFile));
    }
    let max = config.content.max_post_bytes;
    let too_large = |size: u64| PostError::new(rel, PostErrorKind::TooLarge { size, max });
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

/// Decodes bytes as UTF-8 text (SIMD validation: every byte of every file is checked) or
/// names the first bad byte.
pub fn decode<'a>(rel: &Path, bytes: &'a [u8]) -> Result<&'a str, PostError> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| {
        let offset = std::str::from_utf8(bytes)
            .err()
            .map_or(0, |e| e.valid_up_to());
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = bytes[..offset]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // Columns count characters everywhere; the prefix is valid UTF-8 by definition.
        let col = String::from_utf8_lossy(&bytes[line_start..offset])
            .chars()
            .count()
            + 1;
        PostError::at(rel, Some((line, col)), PostErrorKind::NotUtf8(offset))
    })
}

fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// A file's size, modification time and inode, and when they were taken: a rescan trusts
/// an unchanged stamp instead of reading the file again, unless the file was modified so
/// close to that moment that a later write could have kept the same mtime ("racy" files,
/// as git calls them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: SystemTime,
    inode: u64,
    taken: SystemTime,
}

impl Stamp {
    /// Filesystems with coarse timestamps round to 1-2 s.
    const RACY: Duration = Duration::from_secs(2);

    fn of(meta: &std::fs::Metadata, taken: SystemTime) -> Option<Stamp> {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            len: meta.len(),
            mtime: meta.modified().ok()?,
            inode,
            taken,
        })
    }

    /// The file still looks as it did when this stamp was taken, and it was taken long
    /// enough after its last modification to be trusted.
    fn unchanged(&self, now: &Stamp) -> bool {
        self.len == now.len
            && self.mtime == now.mtime
            && self.inode == now.inode
            && self.mtime + Self::RACY < self.taken
    }
}

/// What reading one file during a refresh found.
enum Outcome {
    /// Same bytes (or a trusted stamp): keep the parse.
    Unchanged,
    /// The file no longer exists: a removal, not an error.
    Gone,
    /// New bytes, parsed (or not).
    Parsed(Result<Box<Post>, PostError>),
}

/// A file read during a refresh: its path, content hash, stamp and outcome.
type Read = (PathBuf, u64, Option<Stamp>, Outcome);

/// The cached paths equal to `rel` or under it: contiguous in a `BTreeMap` keyed by
/// `PathBuf`, whose order is component by component.
fn under<'a, V>(
    map: &'a BTreeMap<PathBuf, V>,
    rel: &'a Path,
) -> impl Iterator<Item = &'a PathBuf> + 'a {
    map.range::<Path, _>((std::ops::Bound::Included(rel), std::ops::Bound::Unbounded))
        .map(|(p, _)| p)
        .take_while(move |p| p.starts_with(rel))
}

/// How far a refresh trusts what it already knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Read every file again (start, SIGHUP).
    Nothing,
    /// Skip files whose size, mtime and inode are unchanged (rescans after lost events).
    Stamps,
}

/// One file's state in the cache.
#[derive(Debug, Clone)]
struct Entry {
    hash: u64,
    stamp: Option<Stamp>,
    /// The last good parse (kept while the file is broken).
    post: Option<Arc<Post>>,
    /// The current problem, if the latest version does not parse.
    error: Option<PostError>,
}

/// Parsed posts of one content directory, refreshed incrementally.
#[derive(Debug)]
pub struct Cache {
    entries: BTreeMap<PathBuf, Entry>,
    /// Entries the last full walk could not read.
    walk_errors: Vec<PostError>,
    /// Symlinks the last full walk did not follow.
    walk_warnings: Vec<PostWarning>,
    /// Since the last `take_delta`: each path whose post changed, with its post before.
    changed: BTreeMap<PathBuf, Option<Arc<Post>>>,
    /// Since the last `take_delta`: every file was read again (a start, reload or rescan), so
    /// the next plan starts over.
    everything: bool,
    /// How many posts claim each id and each URL (by hash), to tell whether a change can
    /// make or unmake a duplicate.
    claims: HashMap<u64, u32>,
    /// Claims held by more than one post (a hash collision only costs a full plan).
    shared_claims: usize,
    /// `shared_claims` was 0 at the last `take_delta`.
    was_clean: bool,
    /// Paths whose latest version does not parse.
    broken: std::collections::BTreeSet<PathBuf>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            entries: BTreeMap::new(),
            walk_errors: Vec::new(),
            walk_warnings: Vec::new(),
            changed: BTreeMap::new(),
            everything: true,
            claims: HashMap::new(),
            shared_claims: 0,
            was_clean: false,
            broken: std::collections::BTreeSet::new(),
        }
    }
}

/// One changed file's post before and after (`None`: it had or has no good post).
pub type Change = (Option<Arc<Post>>, Option<Arc<Post>>);

/// The posts that changed since the last `Cache::take_delta`, for incremental planning.
#[derive(Debug, Default)]
pub struct Delta {
    /// `(before, after)` per changed file: `None` when it had or has no good post.
    pub changed: Vec<Change>,
    /// Files that are currently bad, as `Loaded::errors` lists them.
    pub errors: Vec<PostError>,
}

/// The hashes under which a post claims its id and its URL.
fn claim_keys(post: &Post) -> [u64; 2] {
    let key = |kind: &[u8], value: &str| {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(kind);
        h.update(value.as_bytes());
        h.digest()
    };
    [key(b"id:", &post.id), key(b"url:", &post.url)]
}

/// What one refresh did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// Files whose bytes were new or changed (re-parsed).
    pub parsed: usize,
    /// Files that disappeared.
    pub removed: usize,
}

/// The posts of a content directory and what went wrong.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Good posts (including last good versions of broken files), sorted by path.
    pub posts: Vec<Arc<Post>>,
    /// Files that are currently bad (walk errors first, then by path).
    pub errors: Vec<PostError>,
    /// Remarks about good posts.
    pub warnings: Vec<PostWarning>,
    /// Post files seen.
    pub files: usize,
}

impl Cache {
    /// Re-reads every file under the content dir (reusing parses whose bytes did not change,
    /// and with `Trust::Stamps` not even reading files that look unchanged) and forgets
    /// files that are gone.
    pub fn refresh_all(&mut self, config: &Config, trust: Trust) -> Result<Refresh, Error> {
        let Walk {
            files,
            errors,
            warnings,
        } = discover(config, &config.content.dir)?;
        self.walk_errors = errors;
        self.walk_warnings = warnings;
        let keep: std::collections::HashSet<&PathBuf> = files.iter().collect();
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !keep.contains(p))
            .cloned()
            .collect();
        let removed = gone.len();
        for p in gone {
            self.set(p, None);
        }
        self.everything = true;
        let (parsed, gone) = self.update(config, &files, trust);
        Ok(Refresh {
            parsed,
            removed: removed + gone,
        })
    }

    /// Refreshes only the given paths (relative to the content dir). A path that is now a
    /// directory is scanned; a path that is gone is forgotten with everything under it.
    pub fn refresh_paths(&mut self, config: &Config, paths: &[PathBuf]) -> Result<Refresh, Error> {
        let dir = &config.content.dir;
        if !dir.is_dir() {
            // The whole content directory vanished: nothing is published from it any more
            // only once it is really gone; keep the cache until it comes back.
            return Err(Error::ContentDir {
                path: dir.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let mut files = Vec::new();
        let mut removed = 0;
        for rel in paths {
            if is_ignored_path(rel) {
                continue;
            }
            let full = dir.join(rel);
            // Change events can come from under a symlinked directory: stay inside the root.
            if !config.content.follow_external_symlinks
                && through_symlink(dir, rel)
                && let Some(target) = escapes(config, &real_root(config), &full)
            {
                tracing::warn!(
                    "{}",
                    PostError::new(rel, PostErrorKind::OutsideRoot(target))
                );
                continue;
            }
            match std::fs::metadata(&full) {
                Ok(m) if m.is_dir() => {
                    let found = discover(config, &full)?.files;
                    let known: Vec<PathBuf> = under(&self.entries, rel).cloned().collect();
                    let present: std::collections::HashSet<PathBuf> =
                        found.iter().map(|p| rel.join(p)).collect();
                    for p in known {
                        if !present.contains(&p) {
                            self.set(p, None);
                            removed += 1;
                        }
                    }
                    files.extend(present);
                }
                Ok(m) if m.is_file() && is_post_file(rel) => files.push(rel.clone()),
                Ok(_) => {}
                Err(_) => {
                    let gone: Vec<PathBuf> = under(&self.entries, rel).cloned().collect();
                    removed += gone.len();
                    for p in gone {
                        self.set(p, None);
                    }
                }
            }
        }
        files.sort();
        files.dedup();
        let (parsed, gone) = self.update(config, &files, Trust::Nothing);
        Ok(Refresh {
            parsed,
            removed: removed + gone,
        })
    }

    /// Reads the files in parallel, re-parsing those whose hash changed; files found gone
    /// meanwhile are forgotten. Returns how many were parsed and how many were gone.
    fn update(&mut self, config: &Config, files: &[PathBuf], trust: Trust) -> (usize, usize) {
        let dir = &config.content.dir;
        let results: Vec<Read> = files
            .par_iter()
            .map(|rel| {
                let known = self.entries.get(rel);
                let taken = SystemTime::now();
                let meta = std::fs::metadata(dir.join(rel));
                if meta
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                {
                    return (rel.clone(), 0, None, Outcome::Gone);
                }
                let stamp = meta.ok().and_then(|m| Stamp::of(&m, taken));
                if trust == Trust::Stamps
                    && let Some(entry) = known
                    && let (Some(old), Some(new)) = (entry.stamp, stamp)
                    && old.unchanged(&new)
                {
                    return (rel.clone(), entry.hash, entry.stamp, Outcome::Unchanged);
                }
                match read(config, rel) {
                    Ok(None) => (rel.clone(), 0, None, Outcome::Gone),
                    Err(e) => (rel.clone(), 0, None, Outcome::Parsed(Err(e))),
                    Ok(Some(bytes)) => {
                        let h = hash(&bytes);
                        if known.map(|e| e.hash) == Some(h) {
                            return (rel.clone(), h, stamp, Outcome::Unchanged);
                        }
                        let parsed = decode(rel, &bytes)
                            .and_then(|text| post::parse(config, rel, text))
                            .map(|mut post| {
                                post.hash = h;
                                Box::new(post)
                            });
                        (rel.clone(), h, stamp, Outcome::Parsed(parsed))
                    }
                }
            })
            .collect();
        let mut parsed = 0;
        let mut gone = 0;
        for (rel, h, stamp, outcome) in results {
            let result = match outcome {
                Outcome::Unchanged => {
                    if let Some(entry) = self.entries.get_mut(&rel) {
                        entry.stamp = stamp;
                    }
                    continue;
                }
                Outcome::Gone => {
                    gone += usize::from(self.entries.contains_key(&rel));
                    self.set(rel, None);
                    continue;
                }
                Outcome::Parsed(result) => result,
            };
            parsed += 1;
            let last_good = self.entries.get(&rel).and_then(|e| e.post.clone());
            let entry = match result {
                Ok(post) => Entry {
                    hash: h,
                    stamp,
                    post: Some(Arc::from(post)),
                    error: None,
                },
                Err(error) => Entry {
                    hash: h,
                    stamp,
                    post: last_good,
                    error: Some(error),
                },
            };
            self.set(rel, Some(entry));
        }
        (parsed, gone)
    }

    /// Puts `entry` at `rel` (`None`: forgets it), keeping the change log, the claims and
    /// the broken paths up to date.
    fn set(&mut self, rel: PathBuf, entry: Option<Entry>) {
        if entry.as_ref().is_some_and(|e| e.error.is_some()) {
            self.broken.insert(rel.clone());
        } else {
            self.broken.remove(&rel);
        }
        let new = entry.as_ref().and_then(|e| e.post.clone());
        let old = match entry {
            Some(entry) => self.entries.insert(rel.clone(), entry),
            None => self.entries.remove(&rel),
        }
        .and_then(|e| e.post);
        let same = match (&old, &new) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        for key in old.iter().flat_map(|p| claim_keys(p)) {
            if let Some(n) = self.claims.get_mut(&key) {
                *n -= 1;
                if *n == 1 {
                    self.shared_claims -= 1;
                }
                if *n == 0 {
                    self.claims.remove(&key);
                }
            }
        }
        for key in new.iter().flat_map(|p| claim_keys(p)) {
            let n = self.claims.entry(key).or_default();
            *n += 1;
            if *n == 2 {
                self.shared_claims += 1;
            }
        }
        self.changed.entry(rel).or_insert(old);
    }

    /// The posts changed since the last call, or `None` when planning must start over from
    /// `loaded()`: after the first read or a full one (`refresh_all`), or while some posts
    /// share an id or URL (which of them is kept depends on every other).
    pub fn take_delta(&mut self) -> Option<Delta> {
        let changed = std::mem::take(&mut self.changed);
        let clean = self.shared_claims == 0;
        let incremental = !self.everything && self.was_clean && clean;
        self.everything = false;
        self.was_clean = clean;
        if !incremental {
            return None;
        }
        let changed = changed
            .into_iter()
            .map(|(rel, before)| {
                let after = self.entries.get(&rel).and_then(|e| e.post.clone());
                (before, after)
            })
            .filter(|(before, after)| match (before, after) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, None) => false,
                _ => true,
            })
            .collect();
        let mut errors = self.walk_errors.clone();
        errors.extend(
            self.broken
                .iter()
                .filter_map(|p| self.entries.get(p)?.error.clone()),
        );
        Some(Delta { changed, errors })
    }

    /// Drops the rendered bodies of the posts not in `shown` (they are rendered again from
    /// their files when a feed shows them). The cache owns the posts, so it decides.
    pub fn release_bodies(&self, shown: &std::collections::HashSet<*const Post>) {
        for post in self.entries.values().filter_map(|e| e.post.as_ref()) {
            if !shown.contains(&Arc::as_ptr(post)) {
                post.body.clear();
            }
        }
    }

    /// Drops the rendered bodies of `posts`, which no feed shows any more.
    pub fn release_bodies_of(&self, posts: &[&Arc<Post>]) {
        for post in posts {
            post.body.clear();
        }
    }

    /// The current posts, with duplicate ids/URLs reported (the first path keeps them).
    pub fn loaded(&self) -> Loaded {
        let mut loaded = Loaded {
            files: self.entries.len() + self.walk_errors.len(),
            errors: self.walk_errors.clone(),
            warnings: self.walk_warnings.clone(),
            ..Loaded::default()
        };
        let mut ids: HashMap<&str, &str> = HashMap::new();
        let mut urls: HashMap<&str, &str> = HashMap::new();
        for entry in self.entries.values() {
            if let Some(error) = &entry.error {
                loaded.errors.push(error.clone());
            }
            let Some(post) = &entry.post else { continue };
            // A post dropped as a duplicate claims neither its id nor its URL.
            let duplicate = [("id", &post.id, &ids), ("URL", &post.url, &urls)]
                .into_iter()
                .find_map(|(what, value, seen)| {
                    seen.get(value.as_str())
                        .map(|other| PostErrorKind::Duplicate {
                            what,
                            value: value.clone(),
                            other: (*other).to_string(),
                        })
                });
            if let Some(kind) = duplicate {
                loaded
                    .errors
                    .push(PostError::new(Path::new(&post.source), kind));
                continue;
            }
            ids.insert(&post.id, &post.source);
            urls.insert(&post.url, &post.source);
            loaded.warnings.extend(post.warnings.iter().cloned());
            loaded.posts.push(post.clone());
        }
        loaded
    }
}

/// Loads every post under the configured content directory (front matter only; see
/// `ensure_bodies`).
pub fn load(config: &Config) -> Result<Loaded, Error> {
    let mut cache = Cache::default();
    cache.refresh_all(config, Trust::Nothing)?;
    Ok(cache.loaded())
}

/// Renders the bodies of those `posts` that have none, in parallel, from their files. A file
/// changed since its post was parsed gives its current body (its change is on its way); a
/// file that cannot be read leaves its post without a body (feeds fall back to the summary
/// or title) and is tried again next time.
pub fn ensure_bodies(config: &Config, posts: &[&Arc<Post>]) {
    posts
        .par_iter()
        .filter(|post| post.body.get().is_none())
        .for_each(|post| {
            let rel = Path::new(&post.source);
            match read(config, rel) {
                Ok(None) => {
                    // Deleted since it was parsed: its removal is on its way.
                    tracing::debug!("{} is gone", post.source);
                }
                Err(e) => {
                    tracing::warn!("{e}; its feed entries show no content until it can be read")
                }
                Ok(Some(bytes)) => {
                    if post.hash != 0 && hash(&bytes) != post.hash {
                        tracing::debug!("{} changed since it was parsed", post.source);
                    }
                    let text = String::from_utf8_lossy(&bytes);
                    post.body
                        .set(Arc::new(post::render_body(config, post, &text)));
                }
            }
        });
}

/// What publishing does to each post's body beyond Markdown, for `check --verbose`: what
/// sanitizing removes, and whether the body is over `feed.max_entry_bytes` (summary only).
/// One `(source, remarks)` per post with something to say, sorted by source.
pub fn body_remarks(config: &Config, posts: &[Arc<Post>]) -> Vec<(String, Vec<String>)> {
    let mut remarks: Vec<(String, Vec<String>)> = posts
        .par_iter()
        .filter_map(|post| {
            let bytes = read(config, Path::new(&post.source)).ok()??;
            let text = String::from_utf8_lossy(&bytes);
            let mut notes = post::removals(config, post, &text);
            let body = post::render_body(config, post, &text);
            if body.html.is_none() {
                notes.push(format!(
                    "body is over {} bytes (`feed.max_entry_bytes`) or nests elements over {} deep: feeds show its summary and link only",
                    config.feed.max_entry_bytes,
                    crate::sanitize::MAX_NESTING
                ));
            }
            (!notes.is_empty()).then(|| (post.source.clone(), notes))
        })
        .collect();
    remarks.sort();
    remarks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_post_files_and_skips_temp_files() {
        let cases = [
            ("a.md", true),
            ("a.markdown", true),
            ("A.MD", true),
            ("a.txt", false),
            (".a.md", false),
            ("a.md~", false),
            (".a.md.swp", false),
            ("#a.md#", false),
            ("4913", false),
        ];
        for (name, expected) in cases {
            assert_eq!(is_post_file(Path::new(name)), expected, "{name}");
        }
        assert!(is_ignored_path(Path::new("zh/.git/x.md")));
        assert!(!is_ignored_path(Path::new("zh/news/x.md")));
    }

    #[test]
    fn stamps_are_trusted_only_when_unchanged_and_taken_well_after_the_last_write() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let stamp = |len, mtime, inode, taken| Stamp {
            len,
            mtime,
            inode,
            taken,
        };
        let old = stamp(10, t, 7, t + Duration::from_secs(60));
        let now = stamp(10, t, 7, t + Duration::from_secs(120));
        assert!(old.unchanged(&now));
        assert!(!old.unchanged(&stamp(11, t, 7, now.taken)), "size changed");
        assert!(
            !old.unchanged(&stamp(10, t + Duration::from_secs(1), 7, now.taken)),
            "mtime changed"
        );
        assert!(!old.unchanged(&stamp(10, t, 8, now.taken)), "replaced file");
        // Read within the racy window: a same-second rewrite could keep size and mtime.
        let racy = stamp(10, t, 7, t + Duration::from_secs(1));
        assert!(!racy.unchanged(&now));
    }

    #[test]
    fn paths_sort_by_bytes_as_by_components() {
        let mut paths: Vec<PathBuf> = [
            "a", "a-b", "a/b", "a b", "a.md", "a/b/c.md", "ab", "a/b-c", "a/b/c", "a0/b", "é/x",
            "e/x", "a/a/z", "a./b", "A", "a/b.md", "a\\b",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let mut expected = paths.clone();
        expected.sort();
        paths.reverse();
        sort_paths(&mut paths);
        assert_eq!(paths, expected);
    }

    #[test]
    fn the_parallel_walk_finds_what_the_one_walk_finds_and_leaves_symlinks_to_it() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        for rel in [
            "top.md",
            "a/one.md",
            "a/skip.txt",
            "a/.hidden/x.md",
            "a/b/two.md",
            "a/b/c/d/deep.md",
            "a/b/c/e.markdown",
            "a/f/g/h.md",
            "z/y/x/w/v.md",
            ".git/x.md",
        ] {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(&path, "---\ntitle: T\ndate: 2024-01-01\n---\n").expect("file");
        }
        std::fs::create_dir_all(dir.join("a/empty/deeper")).expect("dir");
        // Named like a post but a directory: neither a post nor an error.
        std::fs::create_dir_all(dir.join("a/b/dir.md")).expect("dir");
        let toml = format!("[content]\ndir = {:?}\n", dir.display().to_string());
        let config = crate::config::parse(&toml, dir).expect("valid");
        let shown = |p: &Path| p.strip_prefix(dir).unwrap_or(p).to_path_buf();
        let parallel = discover_without_symlinks(dir, &shown).expect("no symlinks");
        let one = discover_with_symlinks(&config, dir, &shown);
        assert_eq!(format!("{parallel:?}"), format!("{one:?}"));
        assert_eq!(parallel.files.len(), 7, "{:?}", parallel.files);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("a/b"), dir.join("z/y/x/link")).expect("symlink");
            assert!(discover_without_symlinks(dir, &shown).is_none());
            let walk = discover(&config, dir).expect("walks");
            assert!(
                walk.files.contains(&PathBuf::from("z/y/x/link/two.md")),
                "{:?}",
                walk.files
            );
        }
    }

    #[test]
    fn decode_names_line_and_column_of_bad_byte() {
        let err = decode(Path::new("x.md"), b"---\nab\xffc").expect_err("bad utf-8");
        assert_eq!(err.position, Some((2, 3)));
    }
}
