//! Publishing: a `Publisher` owns the post cache, refreshes it (some paths, or all),
//! builds the next snapshot with `build`, publishes it with one pointer swap, and decides
//! which post bodies stay in memory, and hands the URLs of the feed documents whose bytes
//! changed to the WebSub `Pinger`. `Health` holds the serving process's own problems for
//! `/healthz`. The watcher (`watch`) decides when to publish; this module how.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::Utc;

use crate::build;
use crate::config::Config;
use crate::content::{Cache, Trust};
use crate::error::{Error, Problem};
use crate::metrics::Metrics;
use crate::planner::Planner;
use crate::snapshot::{BrotliQueue, Snapshot, SnapshotStore};
use crate::websub::{self, Pinger};

/// What one rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub files_changed: usize,
    pub feeds_changed: usize,
    pub generation: u64,
    pub elapsed: Duration,
    /// Planned from the changed posts alone (`planner::Planner::apply`), not from every post.
    pub incremental: bool,
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
    problems: std::sync::Mutex<std::collections::BTreeMap<&'static str, Problem>>,
    config: std::sync::Mutex<ConfigState>,
}

/// The config in use: where from, when it was loaded, and the last rejected reload.
#[derive(Debug, Default, Clone)]
struct ConfigState {
    path: Option<PathBuf>,
    loaded_at: Option<chrono::DateTime<Utc>>,
    rejected: Option<(chrono::DateTime<Utc>, String)>,
}

impl Health {
    /// Sets (`Some`) or clears (`None`) the problem of one kind.
    pub fn set(&self, kind: &'static str, problem: Option<Problem>) {
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

    /// The config at `path` was loaded (at start or by a reload) and is in use now; a
    /// rejected reload before it is forgotten.
    pub fn config_loaded(&self, path: &std::path::Path) {
        let mut state = lock(&self.config);
        state.path = Some(path.to_path_buf());
        state.loaded_at = Some(Utc::now());
        state.rejected = None;
        drop(state);
        self.set("config", None);
    }

    /// A reload found an invalid config: the one in use stays, `/healthz` says why.
    pub fn config_rejected(&self, message: String) {
        lock(&self.config).rejected = Some((Utc::now(), message.clone()));
        self.set("config", Some(Problem::ConfigRejected(message)));
    }

    /// What `/healthz` says of the config: path, load time, last rejected reload.
    pub fn config(&self) -> serde_json::Value {
        let state = lock(&self.config).clone();
        let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        serde_json::json!({
            "path": state.path.map(|p| p.display().to_string()),
            "loaded_at": state.loaded_at.map(time),
            "rejected": state.rejected.map(|(at, message)| serde_json::json!({
                "at": time(at),
                "error": message,
            })),
        })
    }

    /// The current problems, by kind.
    pub fn problems(&self) -> Vec<Problem> {
        self.problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Owns the post cache and publishes snapshots into the store.
pub struct Publisher {
    pub(crate) config: Config,
    cache: Cache,
    /// Planning state of the last rebuild (`None` until the first, and after a reload).
    planner: Option<Planner>,
    /// How many feeds of the published snapshot show each post (by address; a post with a
    /// count is held by those feeds' inputs, so the address is its own).
    shown: std::collections::HashMap<usize, u32>,
    pub(crate) store: Arc<SnapshotStore>,
    pub(crate) health: Arc<Health>,
    /// Where files wanted in brotli go to be compressed (when serving).
    brotli: Option<BrotliQueue>,
    /// Rebuild counters and timings, when serving with metrics.
    metrics: Option<Arc<Metrics>>,
    /// Tells WebSub hubs which feed documents changed (when serving with hubs).
    websub: Option<Pinger>,
}

impl Publisher {
    /// A publisher with an empty snapshot (generation 0) until the first `rebuild`.
    pub fn new(config: Config) -> Self {
        Publisher {
            config,
            cache: Cache::default(),
            planner: None,
            shown: std::collections::HashMap::new(),
            store: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            health: Arc::default(),
            brotli: None,
            metrics: None,
            websub: None,
        }
    }

    /// Records every rebuild in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The config in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes a new config (a reload): every post is read again with it at the next rebuild,
    /// and every feed rendered again (files whose bytes come out the same keep their ETag).
    pub fn reconfigure(&mut self, config: Config) {
        if let Some(pinger) = &self.websub {
            pinger.reconfigure(&config.websub);
        }
        self.config = config;
        self.cache = Cache::default();
        self.planner = None;
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
        let (sender, receiver) = BrotliQueue::new();
        let spawned = std::thread::Builder::new()
            .name("feedsmith-brotli".into())
            .spawn(move || {
                while let Some(file) = receiver.recv() {
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

    /// Notifies the configured WebSub hubs (`websub.hubs`, as reloads change them) of the
    /// feed documents each rebuild changes, from background threads (`websub::Pinger`). The
    /// first build pings nobody: what the hubs last saw is unknown.
    pub fn with_websub(mut self) -> Self {
        self.websub = Some(Pinger::start(&self.config.websub));
        self
    }

    /// The WebSub counters (`None` unless `with_websub`); the same object across reloads.
    pub fn websub_stats(&self) -> Option<Arc<websub::Stats>> {
        self.websub.as_ref().map(Pinger::stats)
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
        let result = self.publish_scope(scope);
        if let Some(metrics) = &self.metrics {
            match &result {
                Ok(r) => metrics.rebuilt(r.elapsed, r.files_changed, r.feeds_changed),
                Err(_) => metrics.rebuild_failed(),
            }
        }
        result
    }

    fn publish_scope(&mut self, scope: Scope<'_>) -> Result<Report, Error> {
        let started = Instant::now();
        let refresh = match scope {
            Scope::All(trust) => self.cache.refresh_all(&self.config, trust)?,
            Scope::Paths(paths) => self.cache.refresh_paths(&self.config, paths)?,
        };
        let refreshed = started.elapsed();
        let now = Utc::now().fixed_offset();
        let (plan, errors, incremental) = self.plan(now);
        let planned = started.elapsed();
        let previous = self.store.load_full();
        let generation = previous.generation + 1;
        let (next, changes) = build::build_plan(
            &self.config,
            plan,
            &errors,
            Some(&previous),
            generation,
            None,
        )?;
        let built = started.elapsed();
        let feeds_changed = changes.written.len() + changes.removed;
        for problem in &errors {
            tracing::warn!("{problem}");
        }
        if let Some(brotli) = &self.brotli {
            for (file, old) in &changes.written {
                let replaces_wanted = old.as_ref().is_some_and(|old| old.brotli_wanted());
                if replaces_wanted && file.want_brotli() {
                    brotli.send(Arc::clone(file));
                }
            }
        }
        let topics = match &self.websub {
            Some(pinger) if previous.generation > 0 && pinger.has_hubs() => {
                let mut topics: Vec<String> = changes
                    .written
                    .iter()
                    .filter_map(|(file, _)| file.topic().map(str::to_string))
                    .collect();
                topics.sort_unstable();
                topics
            }
            _ => Vec::new(),
        };
        drop(changes);
        // Bodies stay in memory only for posts some feed shows (the next edit re-renders
        // their feeds); the cache owns them.
        self.release_bodies(&previous, &next, incremental);
        let released = started.elapsed();
        self.store.store(Arc::new(next));
        // Only once the new bytes are served: a hub fetches the topic when notified.
        if let Some(pinger) = &self.websub
            && !topics.is_empty()
        {
            tracing::debug!(feeds = topics.len(), "websub: notifying hubs");
            pinger.publish(topics);
        }
        let report = Report {
            files_changed: refresh.parsed + refresh.removed,
            feeds_changed,
            generation,
            elapsed: started.elapsed(),
            incremental,
        };
        tracing::info!(
            incremental,
            files_changed = report.files_changed,
            feeds_changed = report.feeds_changed,
            generation = report.generation,
            ms = report.elapsed.as_secs_f64() * 1000.0,
            "rebuilt"
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            incremental,
            refresh_ms = ms(refreshed),
            plan_ms = ms(planned - refreshed),
            build_ms = ms(built - planned),
            compare_release_ms = ms(released - built),
            publish_ms = ms(report.elapsed - released),
            "rebuild phases"
        );
        Ok(report)
    }

    /// Drops the bodies of the posts no feed of `next` shows: after an incremental plan,
    /// only among the posts of the feeds that changed since `previous`.
    fn release_bodies(&mut self, previous: &Snapshot, next: &Snapshot, incremental: bool) {
        if !incremental || previous.generation == 0 {
            self.shown.clear();
            for post in next.shown_changes(&Snapshot::default()) {
                *self.shown.entry(Arc::as_ptr(post.0) as usize).or_default() += 1;
            }
            self.cache.release_bodies(&next.shown());
            return;
        }
        let changes = next.shown_changes(previous);
        for (post, gained) in &changes {
            let count = self.shown.entry(Arc::as_ptr(post) as usize).or_default();
            *count = count.saturating_add_signed(*gained as i32);
        }
        let unshown: Vec<&Arc<crate::post::Post>> = changes
            .into_iter()
            .filter(|(post, _)| {
                let key = Arc::as_ptr(post) as usize;
                let gone = self.shown.get(&key).is_none_or(|n| *n == 0);
                if gone {
                    self.shown.remove(&key);
                }
                gone
            })
            .map(|(post, _)| post)
            .collect();
        self.cache.release_bodies_of(&unshown);
    }

    /// The plan of the refreshed cache as seen at `now`, the files that are bad, and whether
    /// the plan followed the changed posts only (`planner::Planner::apply`) or started over
    /// from every post. Debug builds check the former against `feed::plan`.
    fn plan(
        &mut self,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> (crate::feed::Plan, Vec<crate::PostError>, bool) {
        let config = &self.config;
        if let Some(delta) = self.cache.take_delta()
            && let Some(planner) = &mut self.planner
            && planner.apply(config, &delta.changed, now)
        {
            let plan = planner.plan(config);
            if cfg!(debug_assertions) {
                let loaded = self.cache.loaded();
                let full = crate::feed::plan(config, &loaded.posts, now);
                let difference = crate::planner::difference(&plan, &full);
                assert!(difference.is_none(), "incremental plan: {difference:?}");
                assert_eq!(delta.errors, loaded.errors, "incremental errors");
            }
            return (plan, delta.errors, true);
        }
        let loaded = self.cache.loaded();
        let mut planner = Planner::new(config, &loaded.posts, now);
        let plan = planner.plan(config);
        if cfg!(debug_assertions) {
            let full = crate::feed::plan(config, &loaded.posts, now);
            let difference = crate::planner::difference(&plan, &full);
            assert!(difference.is_none(), "planner: {difference:?}");
        }
        self.planner = Some(planner);
        (plan, loaded.errors, false)
    }
}
