//! Configuration: the `config.toml` schema, its defaults and its validation. `load` is the
//! only place that reads the config file; everything downstream gets validated types
//! (a parsed base URL, a known time zone) and never re-checks them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

use crate::error::Error;

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Site identity and defaults for posts.
    pub site: Site,
    /// Where posts are and how their paths become URLs.
    pub content: Content,
    /// What the feeds contain.
    pub feed: FeedOptions,
    /// HTTP serving.
    pub server: Server,
    /// Watching the content directory while serving.
    pub watch: Watch,
    /// One-shot export.
    pub export: Export,
}

/// `[site]`
#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    pub description: String,
    /// Absolute http(s) URL, always ending in `/`.
    pub base_url: Url,
    /// Author used when a post names none.
    pub author: String,
    /// Language of posts whose path and front matter say nothing.
    pub language: String,
    /// Zone for dates written without an offset.
    pub time_zone: chrono_tz::Tz,
}

/// `[content]`
#[derive(Debug, Clone)]
pub struct Content {
    /// Content directory (relative paths are resolved against the config file's directory).
    pub dir: PathBuf,
    /// First path segments that name a language (`zh/news/x.md` -> `zh`).
    pub languages: Vec<String>,
    /// Appended to a post's path without its extension: `a/b.md` -> `a/b.html`.
    pub permalink_extension: String,
    /// How `banner` paths resolve.
    pub banner_base: BannerBase,
    /// Length of automatic summaries, in characters (grapheme clusters).
    pub summary_length: usize,
    /// Sanitize every HTML body with the allowlist in `sanitize` (off only for fully
    /// trusted content).
    pub sanitize: bool,
    /// Hosts whose `<iframe>`s are kept (sandboxed, https only); every other iframe is removed.
    pub allowed_iframe_hosts: Vec<String>,
    /// Larger post files are skipped with an error.
    pub max_post_bytes: u64,
    /// Follow symlinks whose target lies outside the content directory.
    pub follow_external_symlinks: bool,
}

/// What a relative `banner` path is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BannerBase {
    /// The site root (`img/b.png` -> `{base_url}img/b.png`), as on openEuler's site.
    Site,
    /// The post's own URL, like an image in the body.
    Post,
}

/// Full HTML in the feeds, or the summary only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentMode {
    Full,
    Summary,
}

/// `[feed]`
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Entries per feed, newest first.
    pub limit: usize,
    /// Full content or summary only.
    pub content: ContentMode,
    /// Emit a feed per tag.
    pub tags: bool,
    /// Emit a feed per category.
    pub categories: bool,
    /// An entry whose HTML is larger carries its summary and link only.
    pub max_entry_bytes: usize,
    /// Budget of one feed document: entries keep their content, newest first, until it is
    /// spent; older entries carry their summary only.
    pub max_feed_bytes: usize,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct Server {
    pub bind: String,
    pub cache_control: String,
    /// Bytes of uncompressed bodies kept for clients that accept neither gzip nor brotli;
    /// past it, such bodies are decompressed per request instead of kept.
    pub identity_cache_bytes: usize,
    /// Open connections at most (all workers together); past it new ones are closed.
    pub max_connections: usize,
    /// A connection whose client reads nothing for this long is closed.
    pub write_timeout_s: u64,
    /// After SIGTERM/SIGINT, in-flight requests get this long before connections are dropped.
    pub shutdown_timeout_s: u64,
    /// Idle keep-alive connections are closed after this long (0: no keep-alive).
    pub keep_alive_s: u64,
}

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// OS change notifications (inotify), with automatic fallback to polling.
    Notify,
    /// Poll every `poll_interval_ms`.
    Poll,
    /// No watching.
    Off,
}

/// `[watch]`
#[derive(Debug, Clone)]
pub struct Watch {
    pub mode: WatchMode,
    pub debounce_ms: u64,
    pub poll_interval_ms: u64,
}

/// `[export]`
#[derive(Debug, Clone)]
pub struct Export {
    pub dir: PathBuf,
    /// gzip level of the `.gz` siblings and of served gzip bodies (libdeflate, 1-12).
    pub gzip_level: u32,
    /// Brotli quality of served br bodies (0-11).
    pub brotli_quality: u32,
}

// ---- raw (serde) layer -------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    site: RawSite,
    content: RawContent,
    feed: RawFeed,
    server: RawServer,
    watch: RawWatch,
    export: RawExport,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSite {
    title: String,
    description: String,
    base_url: String,
    author: String,
    language: String,
    time_zone: String,
}

impl Default for RawSite {
    fn default() -> Self {
        RawSite {
            title: "feedsmith".into(),
            description: String::new(),
            base_url: "http://localhost:8080/".into(),
            author: String::new(),
            language: "en".into(),
            time_zone: "UTC".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawContent {
    dir: PathBuf,
    languages: Vec<String>,
    permalink_extension: String,
    banner_base: BannerBase,
    summary_length: usize,
    sanitize: bool,
    allowed_iframe_hosts: Vec<String>,
    max_post_bytes: u64,
    follow_external_symlinks: bool,
}

impl Default for RawContent {
    fn default() -> Self {
        RawContent {
            dir: "content".into(),
            languages: Vec::new(),
            permalink_extension: ".html".into(),
            banner_base: BannerBase::Site,
            summary_length: 200,
            sanitize: true,
            allowed_iframe_hosts: Vec::new(),
            max_post_bytes: 4 << 20,
            follow_external_symlinks: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFeed {
    limit: usize,
    content: ContentMode,
    tags: bool,
    categories: bool,
    max_entry_bytes: usize,
    max_feed_bytes: usize,
}

impl Default for RawFeed {
    fn default() -> Self {
        RawFeed {
            limit: 20,
            content: ContentMode::Full,
            tags: true,
            categories: true,
            max_entry_bytes: 256 << 10,
            max_feed_bytes: 1 << 20,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    bind: String,
    cache_control: String,
    identity_cache_mb: usize,
    max_connections: usize,
    write_timeout_s: u64,
    shutdown_timeout_s: u64,
    keep_alive_s: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            bind: "127.0.0.1:8080".into(),
            cache_control: "max-age=300, stale-while-revalidate=3600".into(),
            identity_cache_mb: 64,
            max_connections: 10_000,
            write_timeout_s: 30,
            shutdown_timeout_s: 5,
            keep_alive_s: 5,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWatch {
    mode: WatchMode,
    debounce_ms: u64,
    poll_interval_ms: u64,
}

impl Default for RawWatch {
    fn default() -> Self {
        RawWatch {
            mode: WatchMode::Notify,
            debounce_ms: 100,
            poll_interval_ms: 2000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawExport {
    dir: PathBuf,
    gzip_level: u32,
    brotli_quality: u32,
}

impl Default for RawExport {
    fn default() -> Self {
        RawExport {
            dir: "feeds".into(),
            gzip_level: 6,
            brotli_quality: 6,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are valid by construction; `parse` of an empty file cannot fail.
        match parse("", Path::new(".")) {
            Ok(config) => config,
            Err(message) => unreachable!("default config is invalid: {message}"),
        }
    }
}

/// Reads and validates a config file. Relative paths inside it are resolved against the
/// file's directory. A missing file at the default path gives the defaults.
pub fn load(path: &Path, must_exist: bool) -> Result<Config, Error> {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => String::new(),
        Err(source) => {
            return Err(Error::ConfigRead {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(&text, base).map_err(|message| Error::Config {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses and validates config text; `base` resolves relative paths. Errors are
/// `line:col: message`.
pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let position = e
            .span()
            .map(|span| {
                let (line, col) = line_col(text, span.start);
                format!("{line}:{col}: ")
            })
            .unwrap_or_default();
        format!("{position}{}", e.message().trim_end())
    })?;
    validate(raw, base)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, String> {
    let mut base_url = Url::parse(raw.site.base_url.trim())
        .map_err(|e| format!("`site.base_url` `{}` is not a URL: {e}", raw.site.base_url))?;
    if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
        return Err(format!(
            "`site.base_url` `{}` must be an absolute http(s) URL",
            raw.site.base_url
        ));
    }
    if !base_url.path().ends_with('/') {
        let path = format!("{}/", base_url.path());
        base_url.set_path(&path);
    }
    base_url.set_query(None);
    base_url.set_fragment(None);
    let time_zone = chrono_tz::Tz::from_str(raw.site.time_zone.trim()).map_err(|_| {
        format!(
            "`site.time_zone` `{}` is not a known IANA time zone (e.g. `Asia/Shanghai`, `UTC`)",
            raw.site.time_zone
        )
    })?;
    if raw.site.language.trim().is_empty() {
        return Err("`site.language` must not be empty".into());
    }
    if raw.feed.limit == 0 {
        return Err("`feed.limit` must be at least 1".into());
    }
    if raw.content.summary_length < 10 {
        return Err("`content.summary_length` must be at least 10".into());
    }
    if raw.content.max_post_bytes < 1024 {
        return Err("`content.max_post_bytes` must be at least 1024".into());
    }
    if raw.feed.max_entry_bytes < 1024 || raw.feed.max_feed_bytes < raw.feed.max_entry_bytes {
        return Err(
            "`feed.max_entry_bytes` must be at least 1024 and `feed.max_feed_bytes` at least `feed.max_entry_bytes`"
                .into(),
        );
    }
    let mut allowed_iframe_hosts = Vec::new();
    for host in &raw.content.allowed_iframe_hosts {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.contains(['/', ':', ' ', '@']) {
            return Err(format!(
                "`content.allowed_iframe_hosts`: `{host}` is not a host name (e.g. `www.youtube-nocookie.com`)"
            ));
        }
        allowed_iframe_hosts.push(host);
    }
    if !(1..=12).contains(&raw.export.gzip_level) {
        return Err("`export.gzip_level` must be between 1 and 12".into());
    }
    if raw.export.brotli_quality > 11 {
        return Err("`export.brotli_quality` must be between 0 and 11".into());
    }
    if actix_web::http::header::HeaderValue::from_str(&raw.server.cache_control).is_err() {
        return Err("`server.cache_control` is not a valid header value".into());
    }
    if raw.server.max_connections == 0 {
        return Err("`server.max_connections` must be at least 1".into());
    }
    if !(1..=3600).contains(&raw.server.write_timeout_s)
        || raw.server.shutdown_timeout_s > 3600
        || raw.server.keep_alive_s > 3600
    {
        return Err(
            "`server.write_timeout_s` must be 1-3600, `server.shutdown_timeout_s` and \
                    `server.keep_alive_s` at most 3600"
                .into(),
        );
    }
    if raw.watch.debounce_ms > 60_000 || raw.watch.poll_interval_ms == 0 {
        return Err(
            "`watch.debounce_ms` must be at most 60000 and `watch.poll_interval_ms` above 0".into(),
        );
    }
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let clean = |s: String| crate::text::xml_safe(s.trim()).into_owned();
    Ok(Config {
        site: Site {
            title: clean(raw.site.title),
            description: clean(raw.site.description),
            base_url,
            author: clean(raw.site.author),
            language: raw.site.language.trim().to_string(),
            time_zone,
        },
        content: Content {
            dir: resolve(raw.content.dir),
            languages: raw.content.languages,
            permalink_extension: raw.content.permalink_extension,
            banner_base: raw.content.banner_base,
            summary_length: raw.content.summary_length,
            sanitize: raw.content.sanitize,
            allowed_iframe_hosts,
            max_post_bytes: raw.content.max_post_bytes,
            follow_external_symlinks: raw.content.follow_external_symlinks,
        },
        feed: FeedOptions {
            limit: raw.feed.limit,
            content: raw.feed.content,
            tags: raw.feed.tags,
            categories: raw.feed.categories,
            max_entry_bytes: raw.feed.max_entry_bytes,
            max_feed_bytes: raw.feed.max_feed_bytes,
        },
        server: Server {
            bind: raw.server.bind,
            cache_control: raw.server.cache_control,
            identity_cache_bytes: raw.server.identity_cache_mb.saturating_mul(1 << 20),
            max_connections: raw.server.max_connections,
            write_timeout_s: raw.server.write_timeout_s,
            shutdown_timeout_s: raw.server.shutdown_timeout_s,
            keep_alive_s: raw.server.keep_alive_s,
        },
        watch: Watch {
            mode: raw.watch.mode,
            debounce_ms: raw.watch.debounce_ms,
            poll_interval_ms: raw.watch.poll_interval_ms,
        },
        export: Export {
            dir: resolve(raw.export.dir),
            gzip_level: raw.export.gzip_level,
            brotli_quality: raw.export.brotli_quality,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let c = parse("", Path::new("/site")).expect("defaults are valid");
        assert_eq!(c.feed.limit, 20);
        assert_eq!(c.content.dir, Path::new("/site/content"));
        assert_eq!(c.site.base_url.as_str(), "http://localhost:8080/");
    }

    #[test]
    fn rejects_unknown_keys_with_line_and_column() {
        let err = parse("[site]\ntitle = \"x\"\ntittle = \"y\"\n", Path::new("."))
            .expect_err("unknown key");
        assert!(err.starts_with("3:1: "), "{err}");
        assert!(err.contains("unknown field `tittle`"), "{err}");
    }

    #[test]
    fn rejects_unknown_time_zone_and_bad_base_url() {
        let err = parse("[site]\ntime_zone = \"Mars/Olympus\"\n", Path::new(".")).expect_err("tz");
        assert!(err.contains("Mars/Olympus"), "{err}");
        let err = parse("[site]\nbase_url = \"ftp://x/\"\n", Path::new(".")).expect_err("url");
        assert!(err.contains("http(s)"), "{err}");
    }

    #[test]
    fn base_url_gets_trailing_slash() {
        let c = parse(
            "[site]\nbase_url = \"https://e.org/blog\"\n",
            Path::new("."),
        )
        .expect("ok");
        assert_eq!(c.site.base_url.as_str(), "https://e.org/blog/");
    }
}
