//! Keeping the served snapshot current: a `Publisher` owns the post cache and publishes new
//! snapshots; `spawn` runs it on its own thread (never on the async runtime), fed by a
//! file watcher (inotify, or polling as configured or when the watch limit is hit), by SIGHUP
//! (full reload) and by a timer for the next scheduled post. The worker debounces: a burst
//! of changes is one rebuild once `debounce_ms` passes quietly, and changes that never stop
//! are still published at least every `10 x debounce_ms`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::Utc;
use notify::{EventKind, RecursiveMode};

use crate::config::{Config, WatchMode};
use crate::content::{self, Cache, Trust};
use crate::error::Error;
use crate::snapshot::{self, BrotliQueue, Rendered, Snapshot, SnapshotStore};

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

/// What one rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub files_changed: usize,
    pub feeds_changed: usize,
    pub generation: u64,
    pub elapsed: Duration,
}

/// What a rebuild refreshes.
enum Scope<'a> {
    All(Trust),
    Paths(&'a [PathBuf]),
}

/// Problems of the serving process itself, apart from the content's own (which are in the
/// snapshot): the content directory is missing, change notifications failed and polling
/// took over, the last rebuild failed. Each makes `/healthz` say `degraded`; each is
/// cleared when it is over.
#[derive(Debug, Default)]
pub struct Health {
    problems: std::sync::Mutex<std::collections::BTreeMap<&'static str, String>>,
}

impl Health {
    /// Sets (`Some`) or clears (`None`) the problem of one kind.
    pub fn set(&self, kind: &'static str, problem: Option<String>) {
        let mut problems = self
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match problem {
            Some(p) => {
                problems.insert(kind, p);
            }
            None => {
                problems.remove(kind);
            }
        }
    }

    /// The current problems, by kind.
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// Owns the post cache and publishes snapshots into the store.
pub struct Publisher {
    config: Config,
    cache: Cache,
    store: Arc<SnapshotStore>,
    health: Arc<Health>,
    /// Where files wanted in brotli go to be compressed (when serving).
    brotli: Option<BrotliQueue>,
}

impl Publisher {
    /// A publisher with an empty snapshot (generation 0) until the first `rebuild`.
    pub fn new(config: Config) -> Self {
        Publisher {
            config,
            cache: Cache::default(),
            store: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            health: Arc::default(),
            brotli: None,
        }
    }

    /// What `/healthz` reports besides the snapshot's problems.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Computes brotli bodies on a background thread for the files queued by the server
    /// (`brotli_queue`) when a br-capable client asks for them, so that neither publishing
    /// nor a request waits for the slow compressor, and only files clients want in brotli
    /// take memory for it. A new version of a wanted file is queued when it is published.
    pub fn with_background_brotli(mut self) -> Self {
        let (sender, receiver) = channel::<Arc<Rendered>>();
        let spawned = std::thread::Builder::new()
            .name("feedsmith-brotli".into())
            .spawn(move || {
                while let Ok(file) = receiver.recv() {
                    // Not worth compressing a file that no snapshot holds any more.
                    if Arc::strong_count(&file) > 1 {
                        file.fill_brotli();
                    }
                }
            });
        match spawned {
            Ok(_) => self.brotli = Some(sender),
            Err(e) => tracing::warn!("no brotli thread ({e}); serving gzip only"),
        }
        self
    }

    /// Where the server queues files wanted in brotli (`None` without a brotli thread).
    pub fn brotli_queue(&self) -> Option<BrotliQueue> {
        self.brotli.clone()
    }

    /// The store the server reads from.
    pub fn store(&self) -> Arc<SnapshotStore> {
        self.store.clone()
    }

    /// Refreshes the given paths (`None`: reads every file), rebuilds and publishes. On error
    /// the current snapshot stays.
    pub fn rebuild(&mut self, changed: Option<&[PathBuf]>) -> Result<Report, Error> {
        match changed {
            None => self.publish(Scope::All(Trust::Nothing)),
            Some(paths) => self.publish(Scope::Paths(paths)),
        }
    }

    /// Like `rebuild(None)`, but reads only files whose size, mtime or inode changed: cheap
    /// on a large site, for when change events were lost.
    pub fn rescan(&mut self) -> Result<Report, Error> {
        self.publish(Scope::All(Trust::Stamps))
    }

    fn publish(&mut self, scope: Scope<'_>) -> Result<Report, Error> {
        let started = Instant::now();
        let refresh = match scope {
            Scope::All(trust) => self.cache.refresh_all(&self.config, trust)?,
            Scope::Paths(paths) => self.cache.refresh_paths(&self.config, paths)?,
        };
        let loaded = self.cache.loaded();
        let previous = self.store.load_full();
        let generation = previous.generation + 1;
        let next = snapshot::build(
            &self.config,
            &loaded,
            Utc::now().fixed_offset(),
            Some(&previous),
            generation,
        )?;
        let feeds_changed = next
            .files
            .iter()
            .filter(|(path, file)| {
                previous
                    .files
                    .get(*path)
                    .is_none_or(|old| !Arc::ptr_eq(old, file))
            })
            .count()
            + previous
                .files
                .keys()
                .filter(|p| !next.files.contains_key(*p))
                .count();
        for problem in &loaded.errors {
            tracing::warn!("{problem}");
        }
        if let Some(brotli) = &self.brotli {
            for (path, file) in &next.files {
                let replaces_wanted = previous
                    .files
                    .get(path)
                    .is_some_and(|old| !Arc::ptr_eq(old, file) && old.brotli_wanted());
                if replaces_wanted && file.want_brotli() {
                    let _ = brotli.send(file.clone());
                }
            }
        }
        self.store.store(Arc::new(next));
        let report = Report {
            files_changed: refresh.parsed + refresh.removed,
            feeds_changed,
            generation,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            files_changed = report.files_changed,
            feeds_changed = report.feeds_changed,
            generation = report.generation,
            ms = report.elapsed.as_secs_f64() * 1000.0,
            "rebuilt"
        );
        Ok(report)
    }
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
                    Some(format!(
                        "change notifications failed for `{}` ({e}); polling every {} ms",
                        root.display(),
                        config.watch.poll_interval_ms
                    )),
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
                publisher.health.set(
                    "content_dir",
                    Some(format!(
                        "content directory `{}` is missing; serving the last good feeds",
                        dir.display()
                    )),
                );
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
                    Some(format!(
                        "last rebuild failed, serving generation {generation}: {e}"
                    )),
                );
            }
        }
    }
}
