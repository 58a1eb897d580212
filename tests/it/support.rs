//! The test harness, used by every test module (and, for its `site` part, by
//! `benches/stages.rs`). Helpers call the production constructors (`config::parse`,
//! `content::load`, `build::build`, `server::configure`) and never re-implement start-up.
//!
//! * sites: [`root`], [`fixture`], [`sample_config`] (shared with the bench, in `site.rs`),
//!   [`Site`] (a temp content dir: `post`, `write`, `config`), [`config_text`]/[`config_for`]
//!   for any content dir, [`write`]/[`post`] to fill one;
//! * loading and building: [`load_with_bodies`], [`build`], [`build_loaded`], [`post_at`],
//!   [`sources`], [`body`], [`text`], [`files_under`];
//! * checks: [`assert_well_formed_xml`], [`eventually`];
//! * HTTP: [`fetch`], [`read_body`];
//! * the real binary: [`Bin`] (one way to run `feedsmith`: args, config, cwd, env, timeout),
//!   giving a [`Ran`] (status, stdout, stderr) or, for `serve`, a [`Server`] (killed on drop).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use feedsmith::content::Loaded;
use feedsmith::post::{Body, Post};
use feedsmith::{Config, config, content, snapshot};

mod site;
pub use site::{fixture, root, sample_config};

// ---- sites -----------------------------------------------------------------------------

/// Config TOML for the content dir `dir` plus `extra` (the `[content] dir` is set for you,
/// inside `extra`'s own `[content]` table if it has one).
pub fn config_text(dir: &Path, extra: &str) -> String {
    let dir_line = format!("dir = {:?}", dir.to_string_lossy());
    if extra.contains("[content]") {
        extra.replacen("[content]", &format!("[content]\n{dir_line}"), 1)
    } else {
        format!("[content]\n{dir_line}\n{extra}")
    }
}

/// A config for a content dir, from TOML text (see [`config_text`]).
pub fn config_for(dir: &Path, extra: &str) -> Config {
    config::parse(&config_text(dir, extra), Path::new("/")).expect("test config is valid")
}

/// A temporary content directory to fill with posts and make configs for; removed on drop.
pub struct Site {
    tmp: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Self {
        Site {
            tmp: tempfile::tempdir().expect("tempdir for a site"),
        }
    }

    /// The content directory.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes a file at `rel` (see [`write`]).
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        write(self.dir(), rel, text);
        self
    }

    /// Writes a minimal valid post at `rel` (see [`post`]).
    pub fn post(&self, rel: &str, title: &str, date: &str, tags: &[&str], body: &str) -> &Self {
        self.write(rel, &post(title, date, tags, body))
    }

    /// A config for this content dir (see [`config_for`]).
    pub fn config(&self, extra: &str) -> Config {
        config_for(self.dir(), extra)
    }
}

/// Writes a post file (creating directories).
pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    std::fs::write(path, text).expect("write post");
}

/// A minimal valid post.
pub fn post(title: &str, date: &str, tags: &[&str], body: &str) -> String {
    let tags: Vec<String> = tags.iter().map(|t| format!("  - {t:?}")).collect();
    format!(
        "---\ntitle: {title:?}\ndate: {date:?}\ntags:\n{}\n---\n{body}\n",
        tags.join("\n")
    )
}

// ---- loading and building --------------------------------------------------------------

/// Loads the posts with every body rendered (as feeds showing all of them would).
pub fn load_with_bodies(config: &Config) -> Loaded {
    let loaded = content::load(config).expect("content loads");
    content::ensure_bodies(config, &loaded.posts.iter().collect::<Vec<_>>());
    loaded
}

/// The loaded post from `source`, or a panic naming what loaded and what failed.
pub fn post_at<'a>(loaded: &'a Loaded, source: &str) -> &'a Post {
    loaded
        .posts
        .iter()
        .find(|p| p.source == source)
        .unwrap_or_else(|| {
            panic!(
                "`{source}` did not load; loaded: {:?}; errors: {:?}",
                sources(loaded),
                loaded.errors
            )
        })
}

/// The sources of the loaded posts, in the loader's order.
pub fn sources(loaded: &Loaded) -> Vec<&str> {
    loaded.posts.iter().map(|p| p.source.as_str()).collect()
}

/// The rendered body of a loaded post.
pub fn body(post: &Post) -> Arc<Body> {
    post.body
        .get()
        .unwrap_or_else(|| panic!("`{}` has no body", post.source))
}

/// Builds a snapshot of loaded posts at the current time, without brotli bodies (as
/// published, before the server's background fill).
pub fn build_loaded(config: &Config, loaded: &Loaded) -> snapshot::Snapshot {
    feedsmith::build::build(config, loaded, chrono::Utc::now().fixed_offset(), None, 1)
        .expect("builds")
}

/// Loads and builds a snapshot at the current time, brotli bodies filled.
pub fn build(config: &Config) -> Arc<snapshot::Snapshot> {
    let loaded = content::load(config).expect("content loads");
    let snap = build_loaded(config, &loaded);
    // As the server does after publishing.
    snapshot::fill_brotli(&snap);
    Arc::new(snap)
}

/// Body of a snapshot file as text.
pub fn text(snapshot: &snapshot::Snapshot, path: &str) -> String {
    let file = snapshot
        .files
        .get(path)
        .unwrap_or_else(|| panic!("no file `{path}` in {:?}", snapshot.paths()));
    String::from_utf8(file.decompress()).expect("utf-8")
}

/// Every file under `dir`, recursively, as sorted paths relative to `dir`.
pub fn files_under(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .expect("under")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

// ---- checks ----------------------------------------------------------------------------

/// Asserts `bytes` is well-formed XML by a strict parser.
pub fn assert_well_formed_xml(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    if let Err(e) = roxmltree::Document::parse(text) {
        panic!(
            "not well-formed XML: {e}\n{}",
            &text[..text.len().min(2000)]
        );
    }
}

/// Polls `f` until it returns `Some`, or panics after `secs` seconds.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- HTTP ------------------------------------------------------------------------------

/// GETs `url` with a real HTTP client: status, identity ETag and the raw body.
pub fn fetch(url: &str) -> (u16, String, Vec<u8>) {
    let mut resp = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = read_body(&mut resp);
    (resp.status().as_u16(), etag, body)
}

/// The whole raw body of a real HTTP response (no size limit, no decoding).
pub fn read_body(resp: &mut ureq::http::Response<ureq::Body>) -> Vec<u8> {
    resp.body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .expect("body")
}

// ---- the real binary -------------------------------------------------------------------

/// One run of the real `feedsmith` binary, built up like a `Command`: `--config` first (a
/// file of the caller's or one this `Bin` writes and keeps), then the arguments. `RUST_LOG`
/// is unset unless given with [`Bin::env`]; stdin is closed. A run that outlasts its timeout
/// (3 minutes unless set) is killed and the test fails.
pub struct Bin {
    config: Option<PathBuf>,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    timeout: Duration,
    /// Holds a config file written by [`Bin::config_text`].
    _config_dir: Option<tempfile::TempDir>,
}

impl Bin {
    pub fn new() -> Self {
        Bin {
            config: None,
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            timeout: Duration::from_secs(180),
            _config_dir: None,
        }
    }

    /// `--config <path>` (relative paths are relative to the working directory).
    pub fn config(mut self, path: impl Into<PathBuf>) -> Self {
        self.config = Some(path.into());
        self
    }

    /// `--config` with a file of this text, written to a temp dir this `Bin` keeps.
    pub fn config_text(mut self, text: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for the config");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write config");
        self._config_dir = Some(dir);
        self.config(path)
    }

    /// The path given to `--config`, if any.
    pub fn config_path(&self) -> &Path {
        self.config.as_deref().expect("a --config was given")
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_feedsmith"));
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(&self.args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// `feedsmith [--config …] args…`, for a description in messages.
    fn describe(&self) -> String {
        let mut words = vec!["feedsmith".to_string()];
        if let Some(config) = &self.config {
            words.extend(["--config".to_string(), config.display().to_string()]);
        }
        words.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        words.join(" ")
    }

    /// Runs to completion (within the timeout) and captures both streams.
    pub fn run(&self) -> Ran {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.describe()));
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let status = wait_within(&mut child, self.timeout)
            .unwrap_or_else(|| panic!("`{}` ran over {:?}", self.describe(), self.timeout));
        let text = |h: std::thread::JoinHandle<Vec<u8>>| {
            String::from_utf8_lossy(&h.join().expect("reader thread")).into_owned()
        };
        Ran {
            status,
            stdout: text(stdout),
            stderr: text(stderr),
        }
    }

    /// Starts `feedsmith [--config …] args… serve --bind 127.0.0.1:0` and waits (within the
    /// timeout) until it prints `listening on <base URL>`. Its stderr is the test's.
    pub fn serve(self) -> Server {
        self.serve_on("127.0.0.1:0")
    }

    /// [`Bin::serve`] on a given loopback address.
    pub fn serve_on(self, bind: &str) -> Server {
        let bin = self.args(["serve", "--bind", bind]);
        let mut child = bin
            .command()
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.describe()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address, then keeps draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            lines.for_each(drop);
        });
        let mut server = Server {
            child,
            base: None,
            _config_dir: None,
        };
        let line = rx.recv_timeout(bin.timeout).unwrap_or_else(|_| {
            panic!(
                "`{}` printed nothing within {:?}",
                bin.describe(),
                bin.timeout
            )
        });
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("`{}` printed `{line}`, not its address", bin.describe()));
        server.base = Some(base.to_string());
        server._config_dir = bin._config_dir;
        server
    }
}

/// A loopback port free a moment ago (for a server whose config must name its own address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Reads a child's stream to the end on a thread.
fn drain(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("read child output");
        bytes
    })
}

/// Waits for `child` to exit; kills it and returns `None` after `timeout`.
fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A finished run of the binary.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts the exit code, showing both streams when it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A running `feedsmith serve`; killed (and reaped) when dropped, so a failing test leaves no
/// server behind.
pub struct Server {
    child: Child,
    base: Option<String>,
    /// Holds a config file written by [`Bin::config_text`] while the server runs.
    _config_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// The URL of `path` (no leading slash) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_deref().expect("started"))
    }

    /// Sends a signal by name (`-HUP`, `-TERM`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name}");
    }

    /// Waits for the server to exit by itself, at most `timeout`.
    pub fn wait(mut self, timeout: Duration) -> ExitStatus {
        wait_within(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("the server did not exit within {timeout:?}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
