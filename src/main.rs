//! The `feedsmith` binary: parses the command line, sets up logging, calls the library and
//! maps the outcome to an exit code (0 ok, 1 posts skipped, 2 fatal).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use feedsmith::{Config, config, content, export, listener, publish, server, watch};

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

/// Posts were skipped: the command did its work, but not with everything.
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
        Command::Export { out } => export_cmd(&config, out),
        Command::Serve { bind } => serve(config, bind),
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

fn export_cmd(config: &Config, out: Option<PathBuf>) -> anyhow::Result<Option<Skipped>> {
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
    Ok(skipped)
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

fn serve(config: Config, bind: Option<String>) -> anyhow::Result<Option<Skipped>> {
    let bind = bind.unwrap_or_else(|| config.server.bind.clone());
    // Purge freed pages in the background (jemalloc's dirty-page decay), so memory taken by
    // a burst of clients goes back to the system when they leave.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(
            "jemalloc background threads are off ({e}): freed memory stays mapped longer"
        );
    }
    let mut publisher = publish::Publisher::new(config.clone()).with_background_brotli();
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
    let health = publisher.health();
    let handle = watch::spawn(publisher)?;
    let hup = handle.sender();
    let state = actix_web::web::Data::new(server::AppState {
        store,
        cache_control: config.server.cache_control.clone(),
        archive_cache_control: config.server.archive_cache_control.clone(),
        identity_cache_bytes: config.server.identity_cache_bytes,
        brotli,
        health,
        prefix: config.server.public_url.path().to_string(),
    });
    #[cfg(unix)]
    {
        // Registered before serving, so a SIGHUP never meets the default action (exit).
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _guard = rt.enter();
        let mut hangups = signal(SignalKind::hangup()).map_err(feedsmith::Error::Io)?;
        std::thread::Builder::new()
            .name("feedsmith-sighup".into())
            .spawn(move || {
                rt.block_on(async move {
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: full reload");
                        let _ = hup.send(watch::Msg::Full);
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
