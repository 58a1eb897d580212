//! Configuration: the `config.toml` schema, its defaults and its validation. `load` is the
//! only place that reads the config file; everything downstream gets validated types
//! (a parsed base URL, a known time zone) and never re-checks them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

use crate::error::{ConfigError, Error};

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
    /// WebSub hubs to advertise and notify.
    pub websub: WebSub,
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
    /// Publish the entries older than the newest `limit` as RFC 5005 archive pages.
    pub archives: bool,
    /// Entries per archive page.
    pub archive_size: usize,
    /// What archive entries carry: the summary (default) or, within `max_feed_bytes` per
    /// page, full content.
    pub archive_content: ContentMode,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct Server {
    pub bind: String,
    /// Absolute URL at which the feed files are reachable by readers, always ending in `/`
    /// (`server.public_url`, default `site.base_url`): every feed URL is built on it, and the
    /// server answers under its path as well as at the root.
    pub public_url: Url,
    /// `server.public_url` was written in the config (not the `site.base_url` default).
    pub public_url_set: bool,
    pub cache_control: String,
    /// `Cache-Control` of archive pages that are full (every one but the newest): they never
    /// change unless an old post is edited.
    pub archive_cache_control: String,
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
    /// Serve `/metrics` (Prometheus text format).
    pub metrics: bool,
    /// A listener of its own for `/metrics` (kept off the public interface); `None`: on the
    /// main listener.
    pub metrics_bind: Option<String>,
    /// Access log format; `Off` costs nothing per request.
    pub access_log: AccessLogFormat,
    /// Where the access log goes; `None`: stderr.
    pub access_log_file: Option<PathBuf>,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    Off,
    /// The combined log format of Apache and nginx.
    Combined,
    /// One JSON object per line.
    Json,
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

/// Default `server.archive_cache_control`: a week, and never revalidated meanwhile.
pub const DEFAULT_ARCHIVE_CACHE_CONTROL: &str = "max-age=604800, immutable";

/// `[websub]`
#[derive(Debug, Clone)]
pub struct WebSub {
    /// Hubs advertised in every feed and notified when a feed changes, in config order.
    pub hubs: Vec<Hub>,
    /// Bound of one publish request: connecting, sending and reading the answer.
    pub timeout: std::time::Duration,
    /// Retries after the first attempt (network errors, 5xx, 429).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_delay: std::time::Duration,
    /// Publish requests in flight at once, all hubs together.
    pub concurrency: usize,
}

/// One WebSub hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    /// Absolute http(s) URL, as written (no trailing `/` added).
    pub url: Url,
    /// Takes several `hub.url` values in one publish request (`websub.batch_hubs`).
    pub batch: bool,
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
    websub: RawWebSub,
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
    archives: bool,
    archive_size: usize,
    archive_content: ContentMode,
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
            archives: true,
            archive_size: 50,
            archive_content: ContentMode::Summary,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    bind: String,
    public_url: Option<String>,
    cache_control: String,
    archive_cache_control: String,
    identity_cache_mb: usize,
    max_connections: usize,
    write_timeout_s: u64,
    shutdown_timeout_s: u64,
    keep_alive_s: u64,
    metrics: bool,
    metrics_bind: String,
    access_log: AccessLogFormat,
    access_log_file: PathBuf,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            bind: "127.0.0.1:8080".into(),
            public_url: None,
            cache_control: "max-age=300, stale-while-revalidate=3600".into(),
            archive_cache_control: DEFAULT_ARCHIVE_CACHE_CONTROL.into(),
            identity_cache_mb: 64,
            max_connections: 10_000,
            write_timeout_s: 30,
            shutdown_timeout_s: 5,
            keep_alive_s: 5,
            metrics: true,
            metrics_bind: String::new(),
            access_log: AccessLogFormat::Off,
            access_log_file: PathBuf::new(),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWebSub {
    hubs: Vec<String>,
    batch_hubs: Vec<String>,
    timeout_s: u64,
    retries: u32,
    retry_delay_ms: u64,
    concurrency: usize,
}

impl Default for RawWebSub {
    fn default() -> Self {
        RawWebSub {
            hubs: Vec::new(),
            batch_hubs: Vec::new(),
            timeout_s: 10,
            retries: 5,
            retry_delay_ms: 1000,
            concurrency: 4,
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
    parse(&text, base).map_err(|source| Error::Config {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses and validates config text; `base` resolves relative paths.
pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        key: None,
        position: e.span().map(|span| line_col(text, span.start)),
        message: e.message().trim_end().to_string(),
    })?;
    validate(raw, base).map_err(|mut e| {
        e.position = e.key.and_then(|key| key_position(text, key));
        e
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where `table.key` is written in TOML `text`: (line, column of its value); `None` when it
/// is not written (a default that fails with another key's value).
fn key_position(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let (table, key) = dotted.split_once('.')?;
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[') {
            in_table = name.trim_end_matches(']').trim() == table;
            continue;
        }
        let Some(rest) = trimmed.strip_prefix(key) else {
            continue;
        };
        if in_table && let Some(value) = rest.trim_start().strip_prefix('=') {
            let col = line.chars().count() - value.trim_start().chars().count() + 1;
            return Some((i + 1, col));
        }
    }
    None
}

/// A header value is visible ASCII, spaces and tabs (RFC 9110 §5.5, without obs-text).
fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

type Checked<T> = Result<T, ConfigError>;

fn validate(raw: RawConfig, base: &Path) -> Checked<Config> {
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let site = site(raw.site)?;
    let content = content(raw.content, resolve)?;
    let feed = feed(raw.feed)?;
    Ok(Config {
        server: server(raw.server, &site, resolve)?,
        site,
        content,
        feed,
        watch: watch(raw.watch)?,
        export: export(raw.export, resolve)?,
        websub: websub(raw.websub)?,
    })
}

/// An absolute http(s) URL for `key`, normalized to end in `/`, without query or fragment.
fn absolute_url(key: &'static str, raw: &str) -> Checked<Url> {
    let mut url = http_url(key, raw)?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// An absolute http(s) URL for `key`, kept as written apart from the URL parser's own
/// normalization.
fn http_url(key: &'static str, raw: &str) -> Checked<Url> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::at_key(key, format!("`{key}` `{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ConfigError::at_key(
            key,
            format!("`{key}` `{raw}` must be an absolute http(s) URL"),
        ));
    }
    Ok(url)
}

fn site(raw: RawSite) -> Checked<Site> {
    let time_zone = chrono_tz::Tz::from_str(raw.time_zone.trim()).map_err(|_| {
        ConfigError::at_key(
            "site.time_zone",
            format!(
                "`site.time_zone` `{}` is not a known IANA time zone (e.g. `Asia/Shanghai`, `UTC`)",
                raw.time_zone
            ),
        )
    })?;
    if raw.language.trim().is_empty() {
        return Err(ConfigError::at_key(
            "site.language",
            "`site.language` must not be empty",
        ));
    }
    let clean = |s: String| crate::text::xml_safe(s.trim()).into_owned();
    Ok(Site {
        base_url: absolute_url("site.base_url", &raw.base_url)?,
        title: clean(raw.title),
        description: clean(raw.description),
        author: clean(raw.author),
        language: raw.language.trim().to_string(),
        time_zone,
    })
}

fn content(raw: RawContent, resolve: impl Fn(PathBuf) -> PathBuf) -> Checked<Content> {
    if raw.summary_length < 10 {
        return Err(ConfigError::at_key(
            "content.summary_length",
            "`content.summary_length` must be at least 10",
        ));
    }
    if raw.max_post_bytes < 1024 {
        return Err(ConfigError::at_key(
            "content.max_post_bytes",
            "`content.max_post_bytes` must be at least 1024",
        ));
    }
    let mut allowed_iframe_hosts = Vec::new();
    for host in &raw.allowed_iframe_hosts {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.contains(['/', ':', ' ', '@']) {
            return Err(ConfigError::at_key(
                "content.allowed_iframe_hosts",
                format!(
                    "`content.allowed_iframe_hosts`: `{host}` is not a host name (e.g. `www.youtube-nocookie.com`)"
                ),
            ));
        }
        allowed_iframe_hosts.push(host);
    }
    Ok(Content {
        dir: resolve(raw.dir),
        languages: raw.languages,
        permalink_extension: raw.permalink_extension,
        banner_base: raw.banner_base,
        summary_length: raw.summary_length,
        sanitize: raw.sanitize,
        allowed_iframe_hosts,
        max_post_bytes: raw.max_post_bytes,
        follow_external_symlinks: raw.follow_external_symlinks,
    })
}

fn feed(raw: RawFeed) -> Checked<FeedOptions> {
    if raw.limit == 0 {
        return Err(ConfigError::at_key(
            "feed.limit",
            "`feed.limit` must be at least 1",
        ));
    }
    if raw.max_entry_bytes < 1024 {
        return Err(ConfigError::at_key(
            "feed.max_entry_bytes",
            "`feed.max_entry_bytes` must be at least 1024",
        ));
    }
    if raw.max_feed_bytes < raw.max_entry_bytes {
        return Err(ConfigError::at_key(
            "feed.max_feed_bytes",
            "`feed.max_feed_bytes` must be at least `feed.max_entry_bytes`",
        ));
    }
    if raw.archive_size == 0 {
        return Err(ConfigError::at_key(
            "feed.archive_size",
            "`feed.archive_size` must be at least 1",
        ));
    }
    Ok(FeedOptions {
        limit: raw.limit,
        content: raw.content,
        tags: raw.tags,
        categories: raw.categories,
        max_entry_bytes: raw.max_entry_bytes,
        max_feed_bytes: raw.max_feed_bytes,
        archives: raw.archives,
        archive_size: raw.archive_size,
        archive_content: raw.archive_content,
    })
}

fn server(raw: RawServer, site: &Site, resolve: impl Fn(PathBuf) -> PathBuf) -> Checked<Server> {
    let public_url = match &raw.public_url {
        Some(url) => absolute_url("server.public_url", url)?,
        None => site.base_url.clone(),
    };
    for (key, value) in [
        ("server.cache_control", &raw.cache_control),
        ("server.archive_cache_control", &raw.archive_cache_control),
    ] {
        if !is_header_value(value) {
            return Err(ConfigError::at_key(
                key,
                format!("`{key}` is not a valid header value"),
            ));
        }
    }
    if raw.max_connections == 0 {
        return Err(ConfigError::at_key(
            "server.max_connections",
            "`server.max_connections` must be at least 1",
        ));
    }
    for (key, value, range) in [
        ("server.write_timeout_s", raw.write_timeout_s, 1..=3600),
        (
            "server.shutdown_timeout_s",
            raw.shutdown_timeout_s,
            0..=3600,
        ),
        ("server.keep_alive_s", raw.keep_alive_s, 0..=3600),
    ] {
        if !range.contains(&value) {
            return Err(ConfigError::at_key(
                key,
                format!(
                    "`{key}` must be between {} and {} seconds",
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    Ok(Server {
        bind: raw.bind,
        public_url_set: raw.public_url.is_some(),
        public_url,
        cache_control: raw.cache_control,
        archive_cache_control: raw.archive_cache_control,
        identity_cache_bytes: raw.identity_cache_mb.saturating_mul(1 << 20),
        max_connections: raw.max_connections,
        write_timeout_s: raw.write_timeout_s,
        shutdown_timeout_s: raw.shutdown_timeout_s,
        keep_alive_s: raw.keep_alive_s,
        metrics: raw.metrics,
        metrics_bind: Some(raw.metrics_bind.trim().to_string()).filter(|b| !b.is_empty()),
        access_log: raw.access_log,
        access_log_file: (!raw.access_log_file.as_os_str().is_empty())
            .then(|| resolve(raw.access_log_file)),
    })
}

fn watch(raw: RawWatch) -> Checked<Watch> {
    if raw.debounce_ms > 60_000 {
        return Err(ConfigError::at_key(
            "watch.debounce_ms",
            "`watch.debounce_ms` must be at most 60000",
        ));
    }
    if raw.poll_interval_ms == 0 {
        return Err(ConfigError::at_key(
            "watch.poll_interval_ms",
            "`watch.poll_interval_ms` must be above 0",
        ));
    }
    Ok(Watch {
        mode: raw.mode,
        debounce_ms: raw.debounce_ms,
        poll_interval_ms: raw.poll_interval_ms,
    })
}

fn export(raw: RawExport, resolve: impl Fn(PathBuf) -> PathBuf) -> Checked<Export> {
    if !(1..=12).contains(&raw.gzip_level) {
        return Err(ConfigError::at_key(
            "export.gzip_level",
            "`export.gzip_level` must be between 1 and 12",
        ));
    }
    if raw.brotli_quality > 11 {
        return Err(ConfigError::at_key(
            "export.brotli_quality",
            "`export.brotli_quality` must be between 0 and 11",
        ));
    }
    Ok(Export {
        dir: resolve(raw.dir),
        gzip_level: raw.gzip_level,
        brotli_quality: raw.brotli_quality,
    })
}

fn websub(raw: RawWebSub) -> Checked<WebSub> {
    let mut hubs: Vec<Hub> = Vec::new();
    for written in &raw.hubs {
        let mut url = http_url("websub.hubs", written)?;
        url.set_fragment(None);
        if hubs.iter().any(|h| h.url == url) {
            return Err(ConfigError::at_key(
                "websub.hubs",
                format!("`websub.hubs` lists `{url}` twice"),
            ));
        }
        hubs.push(Hub { url, batch: false });
    }
    for written in &raw.batch_hubs {
        let mut url = http_url("websub.batch_hubs", written)?;
        url.set_fragment(None);
        let Some(hub) = hubs.iter_mut().find(|h| h.url == url) else {
            return Err(ConfigError::at_key(
                "websub.batch_hubs",
                format!("`websub.batch_hubs`: `{url}` is not one of `websub.hubs`"),
            ));
        };
        hub.batch = true;
    }
    for (key, value, range) in [
        ("websub.timeout_s", raw.timeout_s, 1..=600),
        ("websub.retry_delay_ms", raw.retry_delay_ms, 1..=600_000),
        ("websub.retries", u64::from(raw.retries), 0..=20),
        ("websub.concurrency", raw.concurrency as u64, 1..=64),
    ] {
        if !range.contains(&value) {
            return Err(ConfigError::at_key(
                key,
                format!(
                    "`{key}` must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    Ok(WebSub {
        hubs,
        timeout: std::time::Duration::from_secs(raw.timeout_s),
        retries: raw.retries,
        retry_delay: std::time::Duration::from_millis(raw.retry_delay_ms),
        concurrency: raw.concurrency,
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
        assert_eq!(err.position, Some((3, 1)), "{err}");
        assert!(err.to_string().contains("unknown field `tittle`"), "{err}");
    }

    #[test]
    fn rejects_unknown_time_zone_and_bad_base_url() {
        let err = parse("[site]\ntime_zone = \"Mars/Olympus\"\n", Path::new(".")).expect_err("tz");
        assert!(err.message.contains("Mars/Olympus"), "{err}");
        assert_eq!(err.key, Some("site.time_zone"));
        assert_eq!(err.position, Some((2, 13)), "the value's line and column");
        let err = parse("[site]\nbase_url = \"ftp://x/\"\n", Path::new(".")).expect_err("url");
        assert!(err.message.contains("http(s)"), "{err}");
        assert_eq!(
            err.to_string(),
            "2:12: `site.base_url` `ftp://x/` must be an absolute http(s) URL"
        );
    }

    #[test]
    fn invalid_values_name_their_key_and_where_it_is_written() {
        let err = parse(
            "[site]\ntitle = \"x\"\n\n[feed]\n  limit = 0\n",
            Path::new("."),
        )
        .expect_err("limit");
        assert_eq!(err.key, Some("feed.limit"));
        assert_eq!(err.to_string(), "5:11: `feed.limit` must be at least 1");
        // A key that is not written has no position.
        let err = parse("[feed]\nmax_entry_bytes = 2000000\n", Path::new(".")).expect_err("budget");
        assert_eq!(err.key, Some("feed.max_feed_bytes"));
        assert_eq!(err.position, None);
    }

    #[test]
    fn public_url_defaults_to_base_url_and_is_checked() {
        let c = parse("[site]\nbase_url = \"https://e.org/\"\n", Path::new(".")).expect("ok");
        assert_eq!(c.server.public_url.as_str(), "https://e.org/");
        assert!(!c.server.public_url_set);
        let c = parse(
            "[server]\npublic_url = \"https://e.org/feeds\"\n",
            Path::new("."),
        )
        .expect("ok");
        assert_eq!(c.server.public_url.as_str(), "https://e.org/feeds/");
        assert!(c.server.public_url_set);
        let err = parse("[server]\npublic_url = \"/feeds/\"\n", Path::new(".")).expect_err("url");
        assert!(
            err.to_string()
                .starts_with("2:14: `server.public_url` `/feeds/` is not a URL"),
            "{err}"
        );
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

    #[test]
    fn websub_hubs_are_validated_like_base_url_and_batch_hubs_must_be_hubs() {
        let c = parse(
            "[websub]\nhubs = [\"https://hub.example/publish\", \"http://127.0.0.1:9/\"]\nbatch_hubs = [\"https://hub.example/publish\"]\n",
            Path::new("."),
        )
        .expect("valid hubs");
        let hubs: Vec<(&str, bool)> = c
            .websub
            .hubs
            .iter()
            .map(|h| (h.url.as_str(), h.batch))
            .collect();
        assert_eq!(
            hubs,
            [
                ("https://hub.example/publish", true),
                ("http://127.0.0.1:9/", false)
            ]
        );
        let cases = [
            (
                "[websub]\nhubs = [\"ftp://hub/\"]\n",
                "2:8: `websub.hubs` `ftp://hub/` must be an absolute http(s) URL",
            ),
            (
                "[websub]\nhubs = [\"hub.example\"]\n",
                "2:8: `websub.hubs` `hub.example` is not a URL: relative URL without a base",
            ),
            (
                "[websub]\nhubs = [\"http://a/\", \"http://a/\"]\n",
                "2:8: `websub.hubs` lists `http://a/` twice",
            ),
            (
                "[websub]\nhubs = [\"http://a/\"]\nbatch_hubs = [\"http://b/\"]\n",
                "3:14: `websub.batch_hubs`: `http://b/` is not one of `websub.hubs`",
            ),
            (
                "[websub]\ntimeout_s = 0\n",
                "2:13: `websub.timeout_s` must be between 1 and 600",
            ),
        ];
        for (text, message) in cases {
            let err = parse(text, Path::new(".")).expect_err(text);
            assert_eq!(err.to_string(), message, "{text}");
        }
        assert!(Config::default().websub.hubs.is_empty());
    }
}
