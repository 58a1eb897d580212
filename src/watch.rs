//! Watching the content directory: `spawn` runs a `Publisher` on its own thread (never on
//! the async runtime), fed by a file watcher (inotify, or polling as configured or when the watch limit is hit), by SIGHUP
//! (full reload) and by a timer for the next scheduled post. The worker debounces: a burst
//! of changes is one rebuild once `debounce_ms` passes quietly, and changes that never stop
//! are still published at least every `10 x debounce_ms`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use chrono::Utc;
use notify::{EventKind, RecursiveMode};

use crate::config::{Config, WatchMode};
use crate::content;
use crate::error::{Error, Problem};
use crate::publish::{Health, Publisher};
use crate::snapshot::SnapshotStore;

/// What the rebuild worker is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// These paths (relative to the content dir) changed.
    Changed(Vec<PathBuf>),
    /// Re-read every file (SIGHUP).
    Full,
    /// Events may have been lost (watcher queue overflow, watch errors): re-read the files
    /// whose size, mtime or inode changed.
    Rescan,
    /// The content directory itself was removed, moved or replaced: watch it anew (its
    /// inode may well be reused, so identity checks alone cannot tell), then rescan it.
    Rewatch,
    /// Stop the worker.
    Stop,
}

/// A running watcher; dropping it (or `stop`) ends the worker.
pub struct Handle {
    sender: Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// A sender for more messages (e.g. SIGHUP -> `Msg::Full`).
    pub fn sender(&self) -> Sender<Msg> {
        self.sender.clone()
    }

    /// Stops the worker and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.sender.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A live watcher; kept only so that dropping it stops watching.
enum AnyWatcher {
    Notify(#[allow(dead_code)] notify::RecommendedWatcher),
    Poll(#[allow(dead_code)] notify::PollWatcher),
}

/// Maps raw change events to worker messages: content paths only, no access events. The
/// worker does the debouncing, with a bound (see `worker`).
fn forward(root: &Path, sender: &Sender<Msg>, result: notify::Result<notify::Event>) {
    match result {
        Ok(event) => {
            if event.need_rescan() {
                let _ = sender.send(Msg::Rescan);
                return;
            }
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let mut paths = Vec::new();
            for path in &event.paths {
                if let Ok(rel) = path.strip_prefix(root)
                    && !content::is_ignored_path(rel)
                {
                    if rel.as_os_str().is_empty() {
                        let _ = sender.send(Msg::Rewatch);
                        return;
                    }
                    paths.push(rel.to_path_buf());
                }
            }
            if !paths.is_empty() {
                let _ = sender.send(Msg::Changed(paths));
            }
        }
        Err(e) => {
            tracing::warn!("watch error: {e}");
            let _ = sender.send(Msg::Rescan);
        }
    }
}

fn start_watcher(
    config: &Config,
    sender: &Sender<Msg>,
    force_poll: bool,
    health: &Health,
) -> Result<AnyWatcher, Error> {
    use notify::Watcher as _;
    let root = config
        .content
        .dir
        .canonicalize()
        .unwrap_or_else(|_| config.content.dir.clone());
    let watch_err = |e: notify::Error| Error::Watch {
        path: root.clone(),
        message: e.to_string(),
    };
    let handler = |root: PathBuf, tx: Sender<Msg>| {
        move |res: notify::Result<notify::Event>| forward(&root, &tx, res)
    };
    let poll = force_poll || config.watch.mode == WatchMode::Poll;
    if !poll {
        let attempt = notify::RecommendedWatcher::new(
            handler(root.clone(), sender.clone()),
            notify::Config::default(),
        )
        .and_then(|mut w| w.watch(&root, RecursiveMode::Recursive).map(|()| w));
        match attempt {
            Ok(w) => {
                health.set("watch", None);
                return Ok(AnyWatcher::Notify(w));
            }
            Err(e) => {
                tracing::warn!(
                    "cannot watch `{}` with change notifications ({e}); falling back to polling every {} ms \
                     (raise fs.inotify.max_user_watches to avoid this)",
                    root.display(),
                    config.watch.poll_interval_ms
                );
                health.set(
                    "watch",
                    Some(Problem::WatchFallback {
                        dir: root.clone(),
                        message: e.to_string(),
                        interval_ms: config.watch.poll_interval_ms,
                    }),
                );
            }
        }
    }
    let mut w = notify::PollWatcher::new(
        handler(root.clone(), sender.clone()),
        notify::Config::default()
            .with_poll_interval(Duration::from_millis(config.watch.poll_interval_ms))
            .with_compare_contents(true),
    )
    .map_err(watch_err)?;
    w.watch(&root, RecursiveMode::Recursive)
        .map_err(watch_err)?;
    Ok(AnyWatcher::Poll(w))
}

/// Runs `publisher` on its own thread, rebuilding on file changes, on `Msg::Full` and when
/// a scheduled post falls due.
pub fn spawn(mut publisher: Publisher) -> Result<Handle, Error> {
    let (sender, receiver) = channel();
    let watcher = match publisher.config.watch.mode {
        WatchMode::Off => None,
        _ => Some(start_watcher(
            &publisher.config,
            &sender,
            false,
            &publisher.health,
        )?),
    };
    let worker_sender = sender.clone();
    let thread = std::thread::Builder::new()
        .name("feedsmith-rebuild".into())
        .spawn(move || worker(&mut publisher, &receiver, &worker_sender, watcher))
        .map_err(Error::Io)?;
    Ok(Handle {
        sender,
        thread: Some(thread),
    })
}

/// How long to sleep before something time-based is due.
fn wait_time(store: &SnapshotStore, dir_missing: bool) -> Duration {
    let idle = if dir_missing {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3600)
    };
    match store.load().next_due {
        Some(due) => {
            let left = (due.with_timezone(&Utc) - Utc::now())
                .num_milliseconds()
                .max(0);
            // Wake a little after the due second so the post is visible when we rebuild.
            Duration::from_millis(left.unsigned_abs() + 5).min(idle)
        }
        None => idle,
    }
}

/// Identity of a directory (device, inode): a content dir deleted and recreated under the
/// same name is a new directory that needs a new watch.
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(dir).ok().map(|_| (0, 0))
    }
}

fn worker(
    publisher: &mut Publisher,
    receiver: &Receiver<Msg>,
    sender: &Sender<Msg>,
    mut watcher: Option<AnyWatcher>,
) {
    let dir = publisher.config.content.dir.clone();
    let watching = watcher.is_some();
    let mut dir_missing = false;
    let mut watched = dir_identity(&dir);
    let debounce = Duration::from_millis(publisher.config.watch.debounce_ms.max(1));
    let burst_limit = debounce * 10;
    loop {
        let first = match receiver.recv_timeout(wait_time(&publisher.store, dir_missing)) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Debounce: a change is rebuilt once `debounce` passes without another one, so a
        // burst (`git checkout`, an editor's save in several steps) is one rebuild. Changes
        // that never stop (an autosave or sync tool in a loop) are still published every
        // `burst_limit` (10 x debounce) from the first change of the batch.
        let mut full = false;
        let mut rescan = false;
        let mut rewatch = false;
        let mut paths = BTreeSet::new();
        let mut pending: Vec<Msg> = first.into_iter().chain(receiver.try_iter()).collect();
        let changed = |m: &Msg| matches!(m, Msg::Changed(_) | Msg::Rescan | Msg::Rewatch);
        if pending.iter().any(changed) && !pending.contains(&Msg::Stop) {
            let batch_started = Instant::now();
            let mut quiet_from = batch_started;
            loop {
                let now = Instant::now();
                let until = (quiet_from + debounce).min(batch_started + burst_limit);
                if now >= until {
                    break;
                }
                match receiver.recv_timeout(until - now) {
                    Ok(msg) => {
                        if changed(&msg) {
                            quiet_from = Instant::now();
                        }
                        let stop = msg == Msg::Stop;
                        pending.push(msg);
                        if stop {
                            break;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
        for msg in pending {
            match msg {
                Msg::Stop => return,
                Msg::Full => full = true,
                Msg::Rescan => rescan = true,
                Msg::Rewatch => rewatch = true,
                Msg::Changed(p) => paths.extend(p),
            }
        }
        if watching && !dir.is_dir() {
            if !dir_missing {
                tracing::warn!(
                    "content directory `{}` disappeared; serving the last good feeds",
                    dir.display()
                );
                publisher
                    .health
                    .set("content_dir", Some(Problem::ContentDirMissing(dir.clone())));
            }
            dir_missing = true;
            drop(watcher.take());
            continue;
        }
        let current = dir_identity(&dir);
        if watching && (rewatch || dir_missing || current != watched) {
            // The content directory is back (or was replaced): watch it anew, rescan it.
            dir_missing = false;
            publisher.health.set("content_dir", None);
            watched = current;
            drop(watcher.take());
            match start_watcher(&publisher.config, sender, false, &publisher.health) {
                Ok(w) => {
                    watcher.replace(w);
                }
                Err(e) => tracing::error!("{e}"),
            }
            rescan = true;
        }
        let paths: Vec<PathBuf> = paths.into_iter().collect();
        let result = if full {
            publisher.rebuild(None)
        } else if rescan {
            publisher.rescan()
        } else {
            publisher.rebuild(Some(&paths))
        };
        match result {
            Ok(_) => publisher.health.set("rebuild", None),
            Err(e) => {
                let generation = publisher.store.load().generation;
                tracing::error!("rebuild failed, still serving generation {generation}: {e}");
                publisher.health.set(
                    "rebuild",
                    Some(Problem::RebuildFailed {
                        generation,
                        message: e.to_string(),
                    }),
                );
            }
        }
    }
}
