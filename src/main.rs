//! The `feedsmith` binary: parses the command line, sets up logging, calls the library and
//! maps the outcome to an exit code (0 ok, 1 posts skipped or hubs not notified, 2 fatal).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use std::sync::Arc;

use feedsmith::access::AccessLog;
use feedsmith::metrics::Metrics;
use feedsmith::{Config, config, content, export, listener, publish, server, watch, websub};

#[derive(Parser)]
#[command(
    version,
    about = "Markdown posts in, RSS 2.0 / Atom 1.0 / JSON Feed 1.1 out, served or exported"
)]
struct Cli {
    /// Config file (default: `config.toml`, defaults apply when it does not exist).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the feeds over HTTP, reloading on content changes (the default).
    Serve {
        /// Address to bind, overriding `server.bind` (e.g. 127.0.0.1:0 for any free port).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Write every feed (and a .gz sibling of each) to a directory.
    Export {
        /// Output directory, overriding `export.dir`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Notify the `websub.hubs` of every feed document this export wrote (new or
        /// changed), and wait for their answers.
        #[arg(long)]
        ping: bool,
    },
    /// Load every post and report problems.
    Check {
        /// Also say, per post, what sanitizing removes from its body and which bodies are
        /// too large to publish in full.
        #[arg(long, short)]
        verbose: bool,
    },
}

/// jemalloc, with its background threads on (`serve`), gives freed memory back to the
/// system within seconds after a burst: glibc's malloc kept tens of MiB after hostile
/// connections closed.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Posts were skipped (or hubs not notified): the command did its work, but not with
/// everything.
struct Skipped;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never escape codes in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(Skipped)) => ExitCode::from(1),
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Option<Skipped>> {
    let (path, must_exist) = match cli.config {
        Some(p) => (p, true),
        None => (PathBuf::from("config.toml"), false),
    };
    let config = config::load(&path, must_exist)?;
    match cli.command.unwrap_or(Command::Serve { bind: None }) {
        Command::Check { verbose } => check(&config, verbose),
        Command::Export { out, ping } => export_cmd(&config, out, ping),
        Command::Serve { bind } => serve(config, path, must_exist, bind),
    }
}

fn report(loaded: &content::Loaded) -> Option<Skipped> {
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    for error in &loaded.errors {
        eprintln!("{error}");
    }
    (!loaded.errors.is_empty()).then_some(Skipped)
}

fn check(config: &Config, verbose: bool) -> anyhow::Result<Option<Skipped>> {
    let started = Instant::now();
    let loaded = content::load(config)?;
    let skipped = report(&loaded);
    if verbose {
        for (source, remarks) in content::body_remarks(config, &loaded.posts) {
            for remark in remarks {
                eprintln!("`{source}`: info: {remark}");
            }
        }
    }
    let now = chrono::Utc::now().fixed_offset();
    let drafts = loaded.posts.iter().filter(|p| p.draft).count();
    let scheduled = loaded
        .posts
        .iter()
        .filter(|p| !p.draft && p.date > now)
        .count();
    let plan = feedsmith::feed::plan(config, &loaded.posts, now);
    for problem in &plan.problems {
        eprintln!("warning: {problem}");
    }
    println!(
        "checked {} files in {:.2?}: {} posts ({} visible, {} drafts, {} scheduled), {} feeds, {} error(s), {} warning(s)",
        loaded.files,
        started.elapsed(),
        loaded.posts.len(),
        plan.visible,
        drafts,
        scheduled,
        plan.feeds.len(),
        loaded.errors.len(),
        loaded.warnings.len() + plan.problems.len(),
    );
    Ok(skipped)
}

fn export_cmd(
    config: &Config,
    out: Option<PathBuf>,
    ping: bool,
) -> anyhow::Result<Option<Skipped>> {
    let started = Instant::now();
    let out = out.unwrap_or_else(|| config.export.dir.clone());
    let loaded = content::load(config)?;
    tracing::debug!(posts = loaded.posts.len(), ms = ms(started), "loaded");
    let skipped = report(&loaded);
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::no_length()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (snap, summary) = export::export(
        config,
        &loaded,
        chrono::Utc::now().fixed_offset(),
        &out,
        &|| bar.inc(1),
    )?;
    bar.finish_and_clear();
    for problem in snap.problems.iter().filter(|p| !p.is_post()) {
        eprintln!("warning: {problem}");
    }
    tracing::debug!(ms = ms(started), "written");
    println!(
        "exported {} feeds ({} files) to `{}` in {:.2?}{}: {} written, {} unchanged, {} removed",
        snap.feeds,
        snap.files.len() * 2,
        out.display(),
        started.elapsed(),
        peak_memory().map_or_else(String::new, |mib| format!(", peak memory {mib:.1} MiB")),
        summary.written,
        summary.unchanged,
        summary.removed
    );
    let unpinged = if ping {
        ping_hubs(config, &summary.changed)
    } else {
        None
    };
    Ok(skipped.or(unpinged))
}

/// Tells the hubs about `topics` and waits (at most the worst case of one notification plus
/// a minute) for every answer. `Some` when some hub was not notified of some topic.
fn ping_hubs(config: &Config, topics: &[String]) -> Option<Skipped> {
    let hubs = config.websub.hubs.len();
    if hubs == 0 {
        eprintln!("warning: --ping: no `websub.hubs` configured; nobody notified");
        return None;
    }
    let pinger = websub::Pinger::start(&config.websub);
    pinger.publish(topics);
    let patience = websub::Pinger::worst_case(&config.websub) + Duration::from_secs(60);
    let finished = pinger.wait_idle(patience);
    let stats = pinger.stats();
    let get = websub::Stats::get;
    let (sent, failed, waiting) = (get(&stats.sent), get(&stats.failed), get(&stats.queued));
    println!(
        "websub: {} changed feed document(s) x {hubs} hub(s): {sent} notified, {failed} failed{}",
        topics.len(),
        if finished {
            String::new()
        } else {
            format!(", {waiting} unanswered after {patience:.0?}")
        }
    );
    (failed > 0 || !finished).then_some(Skipped)
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_memory() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Milliseconds since `started`, for timing logs.
fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

fn serve(
    config: Config,
    config_path: PathBuf,
    must_exist: bool,
    bind: Option<String>,
) -> anyhow::Result<Option<Skipped>> {
    let bind = bind.unwrap_or_else(|| config.server.bind.clone());
    // Purge freed pages in the background (jemalloc's dirty-page decay), so memory taken by
    // a burst of clients goes back to the system when they leave.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(
            "jemalloc background threads are off ({e}): freed memory stays mapped longer"
        );
    }
    let metrics = config.server.metrics.then(|| Arc::new(Metrics::new()));
    let mut publisher = publish::Publisher::new(config.clone())
        .with_background_brotli()
        .with_websub();
    if let Some(metrics) = &metrics {
        publisher = publisher.with_metrics(metrics.clone());
        metrics.config_loaded(true);
    }
    let health = publisher.health();
    health.config_loaded(&config_path);
    let first = publisher.rebuild(None)?;
    let store = publisher.store();
    tracing::info!(
        posts = store.load().posts,
        feeds = store.load().feeds,
        ms = first.elapsed.as_secs_f64() * 1000.0,
        "loaded `{}`",
        config.content.dir.display()
    );
    let brotli = publisher.brotli_queue();
    let websub_stats = publisher.websub_stats();
    let handle = watch::spawn(publisher)?;
    let access_log = AccessLog::start(
        config.server.access_log,
        config.server.access_log_file.as_deref(),
        metrics.clone(),
    )?;
    let mut state = server::AppState::new(store, config.server.cache_control.clone());
    state.reconfigure(&config);
    state.brotli = brotli;
    state.websub = websub_stats;
    state.health = health;
    state.metrics_here = metrics.is_some() && config.server.metrics_bind.is_none();
    state.metrics = metrics;
    state.access_log = access_log;
    let state = actix_web::web::Data::new(state);
    #[cfg(unix)]
    {
        // Registered before serving, so a SIGHUP never meets the default action (exit).
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _guard = rt.enter();
        let mut hangups = signal(SignalKind::hangup()).map_err(feedsmith::Error::Io)?;
        let hup = handle.sender();
        let state = state.clone();
        let mut current = config.clone();
        std::thread::Builder::new()
            .name("feedsmith-sighup".into())
            .spawn(move || {
                rt.block_on(async move {
                    while hangups.recv().await.is_some() {
                        reload(&config_path, must_exist, &mut current, &state, &hup);
                    }
                })
            })?;
    }
    listener::run(&config.server, &bind, state, |addr| {
        // Printed on stdout so scripts (and tests) can find a port chosen by the OS.
        println!("listening on http://{addr}/");
    })?;
    handle.stop();
    Ok(None)
}

/// SIGHUP: reads the config again. A valid one takes effect (the content is read again with
/// it; settings of the listener itself wait for a restart, and the log says which); an
/// invalid one is rejected with the message `check` prints, and the running config stays.
/// Either way the content is reloaded.
fn reload(
    path: &std::path::Path,
    must_exist: bool,
    current: &mut Config,
    state: &server::AppState,
    worker: &std::sync::mpsc::Sender<watch::Msg>,
) {
    match config::load(path, must_exist) {
        Ok(next) => {
            for key in restart_needed(current, &next) {
                tracing::warn!("SIGHUP: `{key}` changed; it takes effect on restart");
            }
            state.reconfigure(&next);
            state.health.config_loaded(path);
            if let Some(metrics) = &state.metrics {
                metrics.config_loaded(true);
            }
            tracing::info!("SIGHUP: config `{}` reloaded; full reload", path.display());
            *current = next.clone();
            let _ = worker.send(watch::Msg::Reload(Box::new(next)));
        }
        Err(e) => {
            let message = error_chain(&e);
            tracing::error!(
                "SIGHUP: {message}; keeping the config loaded before; reloading the content"
            );
            state.health.config_rejected(message);
            if let Some(metrics) = &state.metrics {
                metrics.config_loaded(false);
            }
            let _ = worker.send(watch::Msg::Full);
        }
    }
}

/// The keys of `[server]` that only a restart applies (the listener is not rebuilt).
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.server, &new.server);
    [
        ("server.bind", a.bind != b.bind),
        (
            "server.max_connections",
            a.max_connections != b.max_connections,
        ),
        (
            "server.write_timeout_s",
            a.write_timeout_s != b.write_timeout_s,
        ),
        (
            "server.shutdown_timeout_s",
            a.shutdown_timeout_s != b.shutdown_timeout_s,
        ),
        ("server.keep_alive_s", a.keep_alive_s != b.keep_alive_s),
        ("server.metrics", a.metrics != b.metrics),
        ("server.metrics_bind", a.metrics_bind != b.metrics_bind),
        ("server.access_log", a.access_log != b.access_log),
        (
            "server.access_log_file",
            a.access_log_file != b.access_log_file,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// An error and its sources, as `error: a: b: c` prints them.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}
