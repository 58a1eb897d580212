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

/// All post files under `dir`, as paths relative to it, sorted, and the entries that could
/// not be read while walking (dangling symlinks, unreadable directories).
pub fn discover(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PostError>), Error> {
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
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || e.file_name().to_str().is_none_or(|n| !is_ignored_name(n))
        });
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() && is_post_file(e.path()) => {
                if let Ok(rel) = e.path().strip_prefix(dir) {
                    files.push(rel.to_path_buf());
                }
            }
            Ok(_) => {}
            Err(e) => {
                let rel = e
                    .path()
                    .map(|p| p.strip_prefix(dir).unwrap_or(p).to_path_buf())
                    .unwrap_or_default();
                // A file or directory deleted while we walk is simply gone (a dangling
                // symlink is still there, and reported).
                if e.io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
                    && e.path()
                        .is_none_or(|p| std::fs::symlink_metadata(p).is_err())
                {
                    continue;
                }
                // Only what could have been a post, or a directory that may hold posts.
                if is_post_file(&rel)
                    || e.io_error()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
                {
                    let message = e
                        .io_error()
                        .map_or_else(|| e.to_string(), ToString::to_string);
                    errors.push(PostError::new(&rel, PostErrorKind::Unreadable(message)));
                }
            }
        }
    }
    files.sort();
    Ok((files, errors))
}

/// Reads a post file as text; `rel` names it in errors.
pub fn read(dir: &Path, rel: &Path) -> Result<Vec<u8>, PostError> {
    std::fs::read(dir.join(rel))
        .map_err(|e| PostError::new(rel, PostErrorKind::Unreadable(e.to_string())))
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
#[derive(Debug, Default)]
pub struct Cache {
    entries: BTreeMap<PathBuf, Entry>,
    /// Entries the last full walk could not read.
    walk_errors: Vec<PostError>,
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
        let (files, walk_errors) = discover(&config.content.dir)?;
        self.walk_errors = walk_errors;
        let before = self.entries.len();
        let keep: std::collections::HashSet<&PathBuf> = files.iter().collect();
        self.entries.retain(|p, _| keep.contains(p));
        let removed = before - self.entries.len();
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
            match std::fs::metadata(&full) {
                Ok(m) if m.is_dir() => {
                    let (found, _) = discover(&full)?;
                    let known: Vec<PathBuf> = under(&self.entries, rel).cloned().collect();
                    let present: std::collections::HashSet<PathBuf> =
                        found.iter().map(|p| rel.join(p)).collect();
                    for p in known {
                        if !present.contains(&p) {
                            self.entries.remove(&p);
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
                        self.entries.remove(&p);
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
                match std::fs::read(dir.join(rel)) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        (rel.clone(), 0, None, Outcome::Gone)
                    }
                    Err(e) => (
                        rel.clone(),
                        0,
                        None,
                        Outcome::Parsed(Err(PostError::new(
                            rel,
                            PostErrorKind::Unreadable(e.to_string()),
                        ))),
                    ),
                    Ok(bytes) => {
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
                    gone += usize::from(self.entries.remove(&rel).is_some());
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
            self.entries.insert(rel, entry);
        }
        (parsed, gone)
    }

    /// The current posts, with duplicate ids/URLs reported (the first path keeps them).
    pub fn loaded(&self) -> Loaded {
        let mut loaded = Loaded {
            files: self.entries.len() + self.walk_errors.len(),
            errors: self.walk_errors.clone(),
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
            match std::fs::read(config.content.dir.join(rel)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Deleted since it was parsed: its removal is on its way.
                    tracing::debug!("{} is gone", post.source);
                }
                Err(e) => {
                    let e = PostError::new(rel, PostErrorKind::Unreadable(e.to_string()));
                    tracing::warn!("{e}; its feed entries show no content until it can be read")
                }
                Ok(bytes) => {
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
    fn decode_names_line_and_column_of_bad_byte() {
        let err = decode(Path::new("x.md"), b"---\nab\xffc").expect_err("bad utf-8");
        assert_eq!(err.position, Some((2, 3)));
    }
}
