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
#[derive(Debug, Clone)]
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
    /// Take this config (a valid reload) and re-read every file with it.
    Reload(Box<Config>),
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
        // No access events: with IN_OPEN, walking the tree to watch it (an opendir per
        // directory) floods the event queue past its limit on a large site, and the overflow
        // means a needless rescan right after start.
        let kinds = notify::EventKindMask::CORE;
        let attempt = notify::RecommendedWatcher::new(
            handler(root.clone(), sender.clone()),
            notify::Config::default().with_event_kinds(kinds),
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

/// What one batch of messages asks for.
#[derive(Default)]
struct Batch {
    stop: bool,
    full: bool,
    rescan: bool,
    rewatch: bool,
    reload: Option<Box<Config>>,
    paths: BTreeSet<PathBuf>,
}

impl Batch {
    fn of(messages: Vec<Msg>) -> Batch {
        let mut batch = Batch::default();
        for msg in messages {
            match msg {
                Msg::Stop => batch.stop = true,
                Msg::Full => batch.full = true,
                Msg::Rescan => batch.rescan = true,
                Msg::Rewatch => batch.rewatch = true,
                // The newest config wins.
                Msg::Reload(config) => batch.reload = Some(config),
                Msg::Changed(p) => batch.paths.extend(p),
            }
        }
        batch
    }
}

/// Waits for the next batch of messages (or for `wait`, when something time-based is due),
/// debounced: a change is rebuilt once `debounce` passes without another one, so a burst
/// (`git checkout`, an editor's save in several steps) is one rebuild; changes that never
/// stop (an autosave or sync tool in a loop) still give a batch every 10 x debounce from
/// the first change. `None` when every sender is gone.
fn next_batch(receiver: &Receiver<Msg>, wait: Duration, debounce: Duration) -> Option<Batch> {
    let first = match receiver.recv_timeout(wait) {
        Ok(msg) => Some(msg),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => return None,
    };
    let mut pending: Vec<Msg> = first.into_iter().chain(receiver.try_iter()).collect();
    let changed = |m: &Msg| matches!(m, Msg::Changed(_) | Msg::Rescan | Msg::Rewatch);
    let is_stop = |m: &Msg| matches!(m, Msg::Stop);
    if pending.iter().any(changed) && !pending.iter().any(is_stop) {
        let batch_started = Instant::now();
        let mut quiet_from = batch_started;
        loop {
            let now = Instant::now();
            let until = (quiet_from + debounce).min(batch_started + debounce * 10);
            if now >= until {
                break;
            }
            match receiver.recv_timeout(until - now) {
                Ok(msg) => {
                    if changed(&msg) {
                        quiet_from = Instant::now();
                    }
                    let stop = is_stop(&msg);
                    pending.push(msg);
                    if stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
    Some(Batch::of(pending))
}

/// The content directory as the worker last saw it, and its watcher.
struct Watched {
    dir: PathBuf,
    watching: bool,
    missing: bool,
    identity: Option<(u64, u64)>,
    watcher: Option<AnyWatcher>,
}

impl Watched {
    fn new(config: &Config, watcher: Option<AnyWatcher>) -> Self {
        let dir = config.content.dir.clone();
        Watched {
            identity: dir_identity(&dir),
            dir,
            watching: watcher.is_some(),
            missing: false,
            watcher,
        }
    }

    /// Notices the content directory vanishing (serve the last good feeds, say so in
    /// `/healthz`) and coming back or being replaced (watch it anew). Returns `false` while
    /// it is missing (nothing to rebuild from), and whether a rescan is needed.
    fn check(
        &mut self,
        publisher: &Publisher,
        sender: &Sender<Msg>,
        rewatch: bool,
    ) -> (bool, bool) {
        if !self.watching {
            return (true, false);
        }
        if !self.dir.is_dir() {
            if !self.missing {
                tracing::warn!(
                    "content directory `{}` disappeared; serving the last good feeds",
                    self.dir.display()
                );
                publisher.health.set(
                    "content_dir",
                    Some(Problem::ContentDirMissing(self.dir.clone())),
                );
            }
            self.missing = true;
            drop(self.watcher.take());
            return (false, false);
        }
        let current = dir_identity(&self.dir);
        if !(rewatch || self.missing || current != self.identity) {
            return (true, false);
        }
        // The content directory is back (or was replaced): watch it anew, rescan it.
        self.missing = false;
        publisher.health.set("content_dir", None);
        self.identity = current;
        drop(self.watcher.take());
        match start_watcher(&publisher.config, sender, false, &publisher.health) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::error!("{e}"),
        }
        (true, true)
    }
}

fn worker(
    publisher: &mut Publisher,
    receiver: &Receiver<Msg>,
    sender: &Sender<Msg>,
    watcher: Option<AnyWatcher>,
) {
    let mut watched = Watched::new(&publisher.config, watcher);
    loop {
        let wait = wait_time(&publisher.store, watched.missing);
        let debounce = Duration::from_millis(publisher.config.watch.debounce_ms.max(1));
        let Some(batch) = next_batch(receiver, wait, debounce) else {
            return;
        };
        if batch.stop {
            return;
        }
        let reloaded = batch.reload.is_some();
        if let Some(config) = batch.reload {
            let old = &publisher.config;
            let rewatch = config.content.dir != old.content.dir
                || config.watch.mode != old.watch.mode
                || config.watch.poll_interval_ms != old.watch.poll_interval_ms;
            publisher.reconfigure(*config);
            if rewatch {
                drop(watched.watcher.take());
                let watcher = match publisher.config.watch.mode {
                    WatchMode::Off => None,
                    _ => start_watcher(&publisher.config, sender, false, &publisher.health)
                        .map_err(|e| tracing::error!("{e}"))
                        .ok(),
                };
                watched = Watched::new(&publisher.config, watcher);
            }
        }
        let (present, rescan) = watched.check(publisher, sender, batch.rewatch);
        if !present {
            continue;
        }
        let paths: Vec<PathBuf> = batch.paths.into_iter().collect();
        let result = if batch.full || reloaded {
            publisher.rebuild(None)
        } else if rescan || batch.rescan {
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
