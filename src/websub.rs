//! WebSub publishing (W3C WebSub §4 discovery, and the hub-defined publish request the
//! Recommendation leaves open): the `Link` header a feed is served with, and a `Pinger`
//! that tells hubs which feeds changed. Off the rebuild and request paths: `publish` only
//! queues (a mutex held for a set insert per URL), a few worker threads of our own send
//! the requests. Per hub, a topic URL waits at most once (a burst of rebuilds coalesces to
//! one notification per URL); a URL already sent is queued again, so the hub hears of every
//! change that happened after its last fetch. Network errors, 5xx and 429 are retried with
//! exponential backoff, then given up with a warning; any other answer is final (2xx sent;
//! 3xx/4xx logged with the hub's status and answer). A reload swaps the hubs and settings in
//! place (`reconfigure`). Knows nothing of snapshots or files.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{Hub, WebSub};

/// Topic URLs in one request to a hub that takes batches.
pub const MAX_BATCH: usize = 100;
/// Topic URLs waiting per hub; more are dropped (with a warning). Far above any site's
/// feed count: the coalescing set holds each feed URL at most once.
pub const MAX_WAITING: usize = 1 << 20;
/// Bytes of a hub's answer quoted in a warning.
const MAX_ANSWER: u64 = 512;
/// Longest wait between two retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// The `Link` header value of a feed published at `self_url` (WebSub §4: `rel="hub"` for each
/// hub, then `rel="self"`); `None` without hubs. Formatted once per file at build time.
pub fn link_header(hubs: &[Hub], self_url: &str) -> Option<String> {
    if hubs.is_empty() {
        return None;
    }
    let mut out = String::new();
    for hub in hubs {
        out.push_str(&format!("<{}>; rel=\"hub\", ", hub.url));
    }
    out.push_str(&format!("<{self_url}>; rel=\"self\""));
    Some(out)
}

/// Counters of one `Pinger`, for logs and metrics. A "notification" is one topic URL for
/// one hub (a batched request carries several).
#[derive(Debug, Default)]
pub struct Stats {
    /// Notifications a hub accepted (2xx).
    pub sent: AtomicU64,
    /// Notifications given up: a 3xx/4xx answer, or every retry failed.
    pub failed: AtomicU64,
    /// Requests sent again after a network error, 5xx or 429.
    pub retried: AtomicU64,
    /// Notifications merged into one already waiting for the same hub.
    pub coalesced: AtomicU64,
    /// Notifications refused because `MAX_WAITING` URLs were already waiting.
    pub dropped: AtomicU64,
    /// Notifications waiting or in flight now.
    pub queued: AtomicU64,
    /// Requests made.
    pub requests: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn sub(counter: &AtomicU64, n: usize) {
        counter.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A batch waiting for its next attempt.
struct Retry {
    due: Instant,
    /// Attempts made so far.
    attempts: u32,
    topics: Vec<String>,
}

/// What one hub has waiting.
struct HubQueue {
    url: String,
    batch: bool,
    /// Topics not tried yet, in arrival order.
    fresh: VecDeque<String>,
    /// Every topic waiting (fresh or for a retry): the coalescing set.
    waiting: HashSet<String>,
    retries: Vec<Retry>,
    in_flight: usize,
}

struct State {
    hubs: Vec<HubQueue>,
    /// Round robin over hubs, so one busy hub does not starve the others.
    next_hub: usize,
    in_flight: usize,
    /// Worker threads started (never fewer than `settings.concurrency` while there are hubs).
    workers: usize,
    settings: Settings,
    stop: bool,
}

/// What `[websub]` says about sending, swapped as a whole on a reload.
struct Settings {
    agent: ureq::Agent,
    retries: u32,
    retry_delay: Duration,
    /// Requests in flight at most, all hubs together.
    concurrency: usize,
    /// Requests in flight per hub at most (a hub that never answers holds only its share).
    per_hub: usize,
}

impl Settings {
    fn of(config: &WebSub) -> Settings {
        Settings {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(config.timeout))
                .timeout_connect(Some(config.timeout))
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(concat!(
                    "feedsmith/",
                    env!("CARGO_PKG_VERSION"),
                    " (WebSub)"
                ))
                .build()
                .into(),
            retries: config.retries,
            retry_delay: config.retry_delay,
            concurrency: config.concurrency,
            per_hub: (config.concurrency / config.hubs.len().max(1)).max(1),
        }
    }
}

fn hub_queue(hub: &Hub) -> HubQueue {
    HubQueue {
        url: hub.url.to_string(),
        batch: hub.batch,
        fresh: VecDeque::new(),
        waiting: HashSet::new(),
        retries: Vec::new(),
        in_flight: 0,
    }
}

/// A request to make: to which hub, which topics, which attempt, with which client.
struct Job {
    url: String,
    topics: Vec<String>,
    attempts: u32,
    agent: ureq::Agent,
}

/// How a request ended.
enum Outcome {
    Sent,
    /// Worth trying again: a network error, 5xx or 429.
    Retry(String),
    /// Final: the hub refused (3xx, 4xx).
    Refused(String),
}

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for work (or a retry falling due, or stop).
    work: Condvar,
    /// `wait_idle` waits here.
    idle: Condvar,
    stats: Arc<Stats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends publish notifications to the configured hubs from worker threads of its own
/// (started when there are hubs). Dropping it stops the workers once their current request
/// ends (they are not waited for).
pub struct Pinger {
    shared: Arc<Shared>,
}

impl Pinger {
    /// A pinger for `[websub]`; without hubs it sends nothing (until a reload adds some).
    pub fn start(config: &WebSub) -> Pinger {
        let pinger = Pinger {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    hubs: Vec::new(),
                    next_hub: 0,
                    in_flight: 0,
                    workers: 0,
                    settings: Settings::of(config),
                    stop: false,
                }),
                work: Condvar::new(),
                idle: Condvar::new(),
                stats: Arc::default(),
            }),
        };
        pinger.reconfigure(config);
        pinger
    }

    /// Takes a new `[websub]` (a reload). Hubs still listed keep what waits for them;
    /// notifications waiting for a hub no longer listed are dropped (not counted as
    /// failures); requests in flight finish with the settings they started with.
    pub fn reconfigure(&self, config: &WebSub) {
        let mut state = self.shared.lock();
        let before: Vec<String> = state.hubs.iter().map(|h| h.url.clone()).collect();
        let mut old: Vec<HubQueue> = std::mem::take(&mut state.hubs);
        state.hubs = config
            .hubs
            .iter()
            .map(|hub| {
                let url = hub.url.as_str();
                let mut queue = match old.iter().position(|q| q.url == url) {
                    Some(i) => old.swap_remove(i),
                    None => hub_queue(hub),
                };
                queue.batch = hub.batch;
                queue
            })
            .collect();
        let gone: usize = old.iter().map(|q| q.waiting.len()).sum();
        Stats::sub(&self.shared.stats.queued, gone);
        state.next_hub = 0;
        state.settings = Settings::of(config);
        let after: Vec<String> = state.hubs.iter().map(|h| h.url.clone()).collect();
        if after != before && !after.is_empty() {
            tracing::info!("websub: changed feeds are pushed to {}", after.join(", "));
        }
        // Workers are started once there is a hub to talk to, never more than needed.
        let wanted = if state.hubs.is_empty() {
            0
        } else {
            state.settings.concurrency
        };
        while state.workers < wanted {
            let worker = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("feedsmith-websub-{}", state.workers))
                .spawn(move || run(&worker));
            match spawned {
                Ok(_) => state.workers += 1,
                Err(e) => {
                    tracing::warn!("websub: cannot start a worker thread: {e}");
                    break;
                }
            }
        }
        drop(state);
        self.shared.work.notify_all();
        self.shared.idle.notify_all();
    }

    /// Whether any hub is configured.
    pub fn has_hubs(&self) -> bool {
        !self.shared.lock().hubs.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// Queues a notification for each topic URL (a changed feed's self URL) to every hub.
    /// Never blocks on the network. A URL already waiting for a hub is not queued twice.
    pub fn publish<S: AsRef<str>>(&self, topics: impl IntoIterator<Item = S>) {
        let topics: Vec<S> = topics.into_iter().collect();
        if topics.is_empty() {
            return;
        }
        let stats = &self.shared.stats;
        let mut dropped = 0;
        {
            let mut state = self.shared.lock();
            for hub in &mut state.hubs {
                for topic in &topics {
                    let topic = topic.as_ref();
                    if hub.waiting.contains(topic) {
                        Stats::add(&stats.coalesced, 1);
                    } else if hub.waiting.len() >= MAX_WAITING {
                        dropped += 1;
                    } else {
                        hub.waiting.insert(topic.to_string());
                        hub.fresh.push_back(topic.to_string());
                        Stats::add(&stats.queued, 1);
                    }
                }
            }
        }
        if dropped > 0 {
            Stats::add(&stats.dropped, dropped);
            tracing::warn!(
                "websub: {dropped} notification(s) dropped: {MAX_WAITING} already waiting"
            );
        }
        self.shared.work.notify_all();
    }

    /// Waits until nothing waits or is in flight, at most `timeout`; true when idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            let idle = state.in_flight == 0 && state.hubs.iter().all(|h| h.waiting.is_empty());
            let now = Instant::now();
            if idle || now >= deadline {
                return idle;
            }
            state = self
                .shared
                .idle
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// How long one notification can take at worst: every attempt timing out, with every
    /// backoff wait between them.
    pub fn worst_case(config: &WebSub) -> Duration {
        (0..config.retries).fold(config.timeout, |total, retry| {
            total + config.timeout + backoff(config.retry_delay, retry + 1)
        })
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
    }
}

/// The wait before retry number `retry` (1-based): `delay`, doubled for each further one.
fn backoff(delay: Duration, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    delay.saturating_mul(factor).min(MAX_RETRY_DELAY)
}

/// The next request to make, if any is ready: due retries first, then fresh topics, hubs
/// taken in turn, each within its share of the workers. Otherwise when the next retry falls
/// due.
fn take(state: &mut State, now: Instant) -> Result<Job, Option<Instant>> {
    let n = state.hubs.len();
    if state.in_flight >= state.settings.concurrency {
        return Err(None);
    }
    let mut next_due: Option<Instant> = None;
    for k in 0..n {
        let i = (state.next_hub + k) % n;
        let per_hub = state.settings.per_hub;
        let hub = &mut state.hubs[i];
        if hub.in_flight >= per_hub {
            continue;
        }
        let due = hub
            .retries
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| r.due)
            .map(|(j, r)| (j, r.due));
        let job = match due {
            Some((j, at)) if at <= now => {
                let retry = hub.retries.swap_remove(j);
                Some((retry.topics, retry.attempts))
            }
            _ => {
                if let Some((_, at)) = due {
                    next_due = Some(next_due.map_or(at, |n| n.min(at)));
                }
                let take = if hub.batch { MAX_BATCH } else { 1 };
                let topics: Vec<String> = (0..take).map_while(|_| hub.fresh.pop_front()).collect();
                (!topics.is_empty()).then_some((topics, 0))
            }
        };
        if let Some((topics, attempts)) = job {
            for topic in &topics {
                hub.waiting.remove(topic);
            }
            hub.in_flight += 1;
            let url = hub.url.clone();
            state.in_flight += 1;
            state.next_hub = (i + 1) % n;
            return Ok(Job {
                url,
                topics,
                attempts,
                agent: state.settings.agent.clone(),
            });
        }
    }
    Err(next_due)
}

/// A worker: takes a job, sends it without holding the lock, records the outcome.
fn run(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.stop {
            return;
        }
        let job = match take(&mut state, Instant::now()) {
            Ok(job) => job,
            Err(next_due) => {
                state = match next_due {
                    Some(at) => {
                        let wait = at.saturating_duration_since(Instant::now());
                        shared
                            .work
                            .wait_timeout(state, wait)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => shared
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner),
                };
                continue;
            }
        };
        drop(state);
        let outcome = send(&job.agent, &job.url, &job.topics);
        Stats::add(&shared.stats.requests, 1);
        state = shared.lock();
        finish(&mut state, shared, job, outcome);
        // A slot of this hub is free, and maybe the queue is empty.
        shared.work.notify_all();
        shared.idle.notify_all();
    }
}

/// Records how a job ended: counts it, queues a retry or gives up.
fn finish(state: &mut State, shared: &Shared, job: Job, outcome: Outcome) {
    let stats = &shared.stats;
    state.in_flight -= 1;
    let retries = state.settings.retries;
    let retry_delay = state.settings.retry_delay;
    let n = job.topics.len();
    let attempts = job.attempts + 1;
    let Some(hub) = state.hubs.iter_mut().find(|h| h.url == job.url) else {
        // The hub was dropped from the config while the request was in flight.
        Stats::sub(&stats.queued, n);
        return;
    };
    hub.in_flight = hub.in_flight.saturating_sub(1);
    match outcome {
        Outcome::Sent => {
            Stats::add(&stats.sent, n);
            Stats::sub(&stats.queued, n);
            tracing::debug!(hub = %job.url, topics = n, "websub: hub notified");
        }
        Outcome::Refused(answer) => {
            Stats::add(&stats.failed, n);
            Stats::sub(&stats.queued, n);
            tracing::warn!(
                "websub: hub `{}` refused the notification of {}: {answer}",
                job.url,
                describe(&job.topics)
            );
        }
        Outcome::Retry(error) if job.attempts >= retries => {
            Stats::add(&stats.failed, n);
            Stats::sub(&stats.queued, n);
            tracing::warn!(
                "websub: giving up on hub `{}` after {attempts} attempt(s) ({error}): {} not notified",
                job.url,
                describe(&job.topics)
            );
        }
        Outcome::Retry(error) => {
            Stats::add(&stats.retried, 1);
            // A topic published again meanwhile is already waiting: that one covers it.
            let topics: Vec<String> = job
                .topics
                .into_iter()
                .filter(|t| !hub.waiting.contains(t))
                .collect();
            let merged = n - topics.len();
            Stats::add(&stats.coalesced, merged);
            Stats::sub(&stats.queued, merged);
            let wait = backoff(retry_delay, attempts);
            tracing::debug!(hub = %job.url, %error, ?wait, "websub: will retry");
            if !topics.is_empty() {
                hub.waiting.extend(topics.iter().cloned());
                hub.retries.push(Retry {
                    due: Instant::now() + wait,
                    attempts,
                    topics,
                });
            }
        }
    }
}

/// `` `url` `` or `` 3 topic URLs (`a`, `b`, …) `` for a log line.
fn describe(topics: &[String]) -> String {
    match topics {
        [one] => format!("`{one}`"),
        _ => {
            let shown: Vec<String> = topics.iter().take(3).map(|t| format!("`{t}`")).collect();
            let more = if topics.len() > 3 { ", …" } else { "" };
            format!("{} topic URLs ({}{more})", topics.len(), shown.join(", "))
        }
    }
}

/// One publish request: `hub.mode=publish`, and each topic as `hub.url` (the common
/// convention, repeated for a batch) and as `hub.topic` (what flask-websub's hub reads;
/// it answers 400 without it).
fn send(agent: &ureq::Agent, hub: &str, topics: &[String]) -> Outcome {
    let form = std::iter::once(("hub.mode", "publish"))
        .chain(topics.iter().map(|t| ("hub.url", t.as_str())))
        .chain(topics.iter().map(|t| ("hub.topic", t.as_str())));
    match agent.post(hub).send_form(form) {
        Err(e) => Outcome::Retry(e.to_string()),
        Ok(mut response) => {
            let status = response.status();
            if status.is_success() {
                return Outcome::Sent;
            }
            let mut answer = Vec::new();
            let _ = response
                .body_mut()
                .as_reader()
                .take(MAX_ANSWER)
                .read_to_end(&mut answer);
            let answer: String = String::from_utf8_lossy(&answer)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let answer = format!("{status}: {}", answer.trim());
            if status.is_server_error() || status.as_u16() == 429 {
                Outcome::Retry(answer)
            } else {
                Outcome::Refused(answer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(url: &str) -> Hub {
        Hub {
            url: url::Url::parse(url).expect("url"),
            batch: false,
        }
    }

    #[test]
    fn link_header_lists_every_hub_then_self() {
        assert_eq!(link_header(&[], "http://s/rss.xml"), None);
        assert_eq!(
            link_header(
                &[hub("https://a/"), hub("http://b/pub")],
                "http://s/rss.xml"
            )
            .as_deref(),
            Some(
                "<https://a/>; rel=\"hub\", <http://b/pub>; rel=\"hub\", <http://s/rss.xml>; rel=\"self\""
            )
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let d = Duration::from_millis(100);
        let waits: Vec<u128> = (1..=4).map(|r| backoff(d, r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800]);
        assert_eq!(backoff(d, 40), MAX_RETRY_DELAY);
    }

    #[test]
    fn describe_names_one_topic_or_a_few() {
        assert_eq!(describe(&["a".into()]), "`a`");
        let four: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(describe(&four), "4 topic URLs (`a`, `b`, `c`, …)");
    }
}
