//! One-shot export: builds the feeds and writes each file (and a `.gz` sibling of each, for
//! static hosting with nginx `gzip_static`) into a directory as soon as it is rendered, in
//! parallel. The only module that writes files.
//! Atomic per file (temp file in the same directory, then rename); unchanged files are left
//! alone (mtime kept); files of feeds that no longer exist are removed.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, FixedOffset};

use crate::config::Config;
use crate::content::Loaded;
use crate::error::Error;
use crate::snapshot::{Rendered, Snapshot};

/// What an export did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Public URLs of the feed documents whose bytes this export wrote (new or changed),
    /// sorted: what `export --ping` tells WebSub hubs about.
    pub changed: Vec<String>,
}

/// Extensions of the files an export owns (only these are ever removed).
const OWNED: &[&str] = &["xml", "json", "opml", "html", "gz"];

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The directories an export has made sure of, each with whether this export created it
/// (then none of the files it writes there existed before).
#[derive(Default)]
struct Dirs(Mutex<HashMap<PathBuf, bool>>);

impl Dirs {
    /// Creates `dir` (and its parents) unless it exists; true when this export created it.
    /// Each directory is looked at once, not once per file.
    fn ensure(&self, dir: &Path) -> Result<bool, Error> {
        let known = |dirs: &Self| {
            dirs.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(dir)
                .copied()
        };
        if let Some(created) = known(self) {
            return Ok(created);
        }
        let created = !dir.is_dir();
        if created {
            std::fs::create_dir_all(dir).map_err(write_error(dir))?;
        }
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_path_buf(), created);
        Ok(created)
    }
}

/// Writes `bytes` to `path` unless it already holds exactly them. Returns true if written.
fn write_if_changed(path: &Path, bytes: &[u8], dirs: &Dirs) -> Result<bool, Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // In a directory this export created there is nothing to compare with.
    if !dirs.ensure(dir)?
        && let Ok(existing) = std::fs::read(path)
        && existing == bytes
    {
        return Ok(false);
    }
    let (tmp_path, mut file) = tempfile_in(dir, path)?;
    // Removed on every error path (full disk, a directory where the file should go, ...).
    let tmp = TempGuard(Some(tmp_path));
    // No fsync per file: the rename keeps each file whole for readers, and an export
    // interrupted by a crash is simply run again (it is reproducible to the byte).
    file.write_all(bytes).map_err(write_error(tmp.path()))?;
    drop(file);
    std::fs::rename(tmp.path(), path).map_err(write_error(path))?;
    tmp.disarm();
    Ok(true)
}

/// A temporary file that is deleted when dropped, unless disarmed (renamed into place).
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn tempfile_in(dir: &Path, target: &Path) -> Result<(PathBuf, std::fs::File), Error> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for attempt in 0..100u32 {
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(write_error(&tmp)(e)),
        }
    }
    Err(write_error(target)(std::io::Error::other(
        "no free temporary file name",
    )))
}

/// Builds the feeds of `loaded` as seen at `now` and writes every file (and its `.gz`)
/// under `out` while the build runs, calling `progress` after each; then removes files of
/// feeds that no longer exist. Returns the snapshot (bodies as served) and what was done.
pub fn export(
    config: &Config,
    loaded: &Loaded,
    now: DateTime<FixedOffset>,
    out: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<(Snapshot, Summary), Error> {
    std::fs::create_dir_all(out).map_err(write_error(out))?;
    let written = AtomicUsize::new(0);
    let unchanged = AtomicUsize::new(0);
    let changed = Mutex::new(Vec::new());
    let dirs = Dirs::default();
    let sink = |key: &str, file: &Rendered, identity: &[u8]| -> Result<(), Error> {
        for (path, bytes, is_identity) in [
            (out.join(key), identity, true),
            (out.join(format!("{key}.gz")), &file.gzip[..], false),
        ] {
            let counter = if write_if_changed(&path, bytes, &dirs)? {
                if is_identity && let Some(topic) = file.topic() {
                    changed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(topic.to_string());
                }
                &written
            } else {
                &unchanged
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        progress();
        Ok(())
    };
    let snapshot = crate::build::build_with(config, loaded, now, None, 1, Some(&sink))?;
    let keep: HashSet<PathBuf> = snapshot
        .files
        .keys()
        .flat_map(|key| [out.join(key), out.join(format!("{key}.gz"))])
        .collect();
    let mut changed = changed.into_inner().unwrap_or_else(PoisonError::into_inner);
    changed.sort_unstable();
    let summary = Summary {
        written: written.into_inner(),
        unchanged: unchanged.into_inner(),
        removed: remove_stale(out, &keep)?,
        changed,
    };
    Ok((snapshot, summary))
}

/// Removes files we own that are not in `keep`, then directories left empty.
fn remove_stale(out: &Path, keep: &HashSet<PathBuf>) -> Result<usize, Error> {
    let mut removed = 0;
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(out)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        if entry.file_type().is_dir() {
            dirs.push(path.to_path_buf());
            continue;
        }
        let owned = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| OWNED.contains(&e));
        let our_temp = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"));
        if (owned && !keep.contains(path)) || our_temp {
            std::fs::remove_file(path).map_err(write_error(path))?;
            removed += 1;
        }
    }
    // Deepest first, so parents empty out after their children.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        // Fails (and is meant to) when the directory still holds something.
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(removed)
}
