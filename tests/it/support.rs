//! Test helpers. They call the production constructors (`config::parse`, `content::load`,
//! `snapshot::build`, `server::configure`) and never re-implement start-up.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use feedsmith::{Config, config, content, snapshot};

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A config for a content dir, from TOML text (the `[content] dir` is set for you).
pub fn config_for(dir: &Path, extra: &str) -> Config {
    let text = format!("[content]\ndir = {:?}\n{extra}", dir.to_string_lossy());
    let text = if extra.contains("[content]") {
        // Caller sets its own [content] table: put dir into it.
        extra.replacen(
            "[content]",
            &format!("[content]\ndir = {:?}", dir.to_string_lossy()),
            1,
        )
    } else {
        text
    };
    config::parse(&text, Path::new("/")).expect("test config is valid")
}

/// The repository's own `config.toml` pointed at another content dir.
pub fn site_config(dir: &Path) -> Config {
    let text = std::fs::read_to_string(root().join("config.toml")).expect("config.toml");
    let mut config = config::parse(&text, &root()).expect("config.toml is valid");
    config.content.dir = dir.to_path_buf();
    config
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

/// Loads the posts with every body rendered (as feeds showing all of them would).
pub fn load_with_bodies(config: &Config) -> content::Loaded {
    let loaded = content::load(config).expect("content loads");
    content::ensure_bodies(config, &loaded.posts.iter().collect::<Vec<_>>());
    loaded
}

/// The rendered body of a loaded post.
pub fn body(post: &feedsmith::post::Post) -> Arc<feedsmith::post::Body> {
    post.body
        .get()
        .unwrap_or_else(|| panic!("`{}` has no body", post.source))
}

/// Loads and builds a snapshot at the current time.
pub fn build(config: &Config) -> Arc<snapshot::Snapshot> {
    let loaded = content::load(config).expect("content loads");
    let snap = feedsmith::build::build(config, &loaded, chrono::Utc::now().fixed_offset(), None, 1)
        .expect("builds");
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

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
