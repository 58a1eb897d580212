//! One-shot export: writes a snapshot's files (and a `.gz` sibling of each, for static
//! hosting with nginx `gzip_static`) into a directory. The only module that writes files.
//! Atomic per file (temp file in the same directory, then rename); unchanged files are left
//! alone (mtime kept); files of feeds that no longer exist are removed.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::snapshot::Snapshot;

/// What an export did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
}

/// Extensions of the files an export owns (only these are ever removed).
const OWNED: &[&str] = &["xml", "json", "opml", "html", "gz"];

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` unless it already holds exactly them. Returns true if written.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, Error> {
    if let Ok(existing) = std::fs::read(path)
        && existing == bytes
    {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    let mut tmp = tempfile_in(dir, path)?;
    // No fsync per file: the rename keeps each file whole for readers, and an export
    // interrupted by a crash is simply run again (it is reproducible to the byte).
    tmp.1.write_all(bytes).map_err(write_error(&tmp.0))?;
    drop(tmp.1);
    std::fs::rename(&tmp.0, path).map_err(write_error(path))?;
    Ok(true)
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

/// Writes every file of `snapshot` under `out`, calling `progress` after each.
pub fn write(snapshot: &Snapshot, out: &Path, progress: &dyn Fn()) -> Result<Summary, Error> {
    std::fs::create_dir_all(out).map_err(write_error(out))?;
    let mut summary = Summary::default();
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for key in snapshot.paths() {
        let Some(file) = snapshot.files.get(key) else {
            continue;
        };
        let path = out.join(key);
        let gz = out.join(format!("{key}.gz"));
        let identity = file.decompress();
        for (p, bytes) in [(&path, &identity[..]), (&gz, &file.gzip[..])] {
            if write_if_changed(p, bytes)? {
                summary.written += 1;
            } else {
                summary.unchanged += 1;
            }
        }
        keep.insert(path);
        keep.insert(gz);
        progress();
    }
    summary.removed = remove_stale(out, &keep)?;
    Ok(summary)
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
