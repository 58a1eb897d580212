//! Error types. `PostError` is one bad content file (always carries its path and, where
//! known, line:column); `Error` is fatal for a whole command (bad config, missing content
//! directory, unwritable export directory). No I/O happens here.

use std::fmt;
use std::path::{Path, PathBuf};

/// What is wrong with one content file. Messages are lowercase and name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostErrorKind {
    #[error("cannot read file: {0}")]
    Unreadable(String),
    #[error(
        "file is {size} bytes, over the limit of {max} bytes (`content.max_post_bytes`); it is skipped"
    )]
    TooLarge { size: u64, max: u64 },
    #[error("not a regular file (a FIFO, socket or device named like a post); it is skipped")]
    NotAFile,
    #[error(
        "symlink leads outside the content directory, to `{0}`; not followed (`content.follow_external_symlinks`)"
    )]
    OutsideRoot(String),
    #[error("file is not valid UTF-8 (byte offset {0}); save it as UTF-8")]
    NotUtf8(usize),
    #[error("file is empty")]
    Empty,
    #[error(
        "no front matter: a post must start with a `---` line (hint: add `---`, `title: ...`, `date: ...`, `---` at the top)"
    )]
    NoFrontMatter,
    #[error("front matter is not terminated: no closing `---` line")]
    UnterminatedFrontMatter,
    #[error("front matter is not valid YAML: {0}")]
    Yaml(String),
    #[error("front matter must be a mapping of `key: value` lines, found {0}")]
    NotAMapping(&'static str),
    #[error("front matter field `{0}` is required")]
    MissingField(&'static str),
    #[error("front matter field `{field}` {problem}")]
    InvalidField {
        field: &'static str,
        problem: String,
    },
    #[error("{what} `{value}` is already used by `{other}`")]
    Duplicate {
        what: &'static str,
        value: String,
        other: String,
    },
}

/// One content file that could not become a post. Displayed as `` `path`:line:col: message ``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostError {
    /// Path of the file, as found under the content directory (relative to it where possible).
    pub path: PathBuf,
    /// 1-based line and column in the file, where known.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub kind: PostErrorKind,
}

impl PostError {
    /// A problem with a file as a whole.
    pub fn new(path: &Path, kind: PostErrorKind) -> Self {
        PostError {
            path: path.to_path_buf(),
            position: None,
            kind,
        }
    }

    /// A problem at a known position.
    pub fn at(path: &Path, position: Option<(usize, usize)>, kind: PostErrorKind) -> Self {
        PostError {
            path: path.to_path_buf(),
            position,
            kind,
        }
    }
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.path.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for PostError {}

/// A non-fatal remark about a post that still loaded (e.g. a misspelt front-matter key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostWarning {
    /// Path of the file.
    pub path: PathBuf,
    /// 1-based line and column, where known.
    pub position: Option<(usize, usize)>,
    /// What looks wrong, with a hint.
    pub message: String,
}

impl fmt::Display for PostWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.path.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": warning: {}", self.message)
    }
}

/// Something wrong that the service works around and reports: in `check`, in `/healthz`
/// (which says `degraded` while any is current) and in the logs. One type, one `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A content file that could not become a post (its last good version, if any, is
    /// still served); symlinks refused and size limits are among its kinds.
    #[error("{0}")]
    Post(PostError),
    /// A tag or category name with nothing usable for a URL: its feed gets a hashed slug.
    #[error("{what} `{name}` has no usable characters for a URL; its feed is at `{slug}`")]
    EmptySlug {
        what: &'static str,
        name: String,
        slug: String,
    },
    /// Two tag or category names with the same URL slug: the later gets a suffix.
    #[error("{what} `{name}` has the same URL slug `{base}` as `{other}`; its feed is at `{slug}`")]
    SlugCollision {
        what: &'static str,
        name: String,
        base: String,
        other: String,
        slug: String,
    },
    /// The content directory is gone: the last good feeds are served.
    #[error("content directory `{0}` is missing; serving the last good feeds")]
    ContentDirMissing(PathBuf),
    /// Change notifications could not be set up: polling stands in.
    #[error("change notifications failed for `{dir}` ({message}); polling every {interval_ms} ms")]
    WatchFallback {
        dir: PathBuf,
        message: String,
        interval_ms: u64,
    },
    /// The last rebuild failed: an older snapshot is served.
    #[error("last rebuild failed, serving generation {generation}: {message}")]
    RebuildFailed { generation: u64, message: String },
    /// A config reload (SIGHUP) found an invalid config: the previous one stays in use.
    #[error("config reload rejected, the previous config stays in use: {0}")]
    ConfigRejected(String),
}

impl Problem {
    /// A problem of the content (a bad post file), as opposed to one of planning or of the
    /// serving process.
    pub fn is_post(&self) -> bool {
        matches!(self, Problem::Post(_))
    }
}

/// A config problem: what is wrong, the key it is about and where it is written, when known.
/// Displayed as `line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key (`feed.limit`) of a value that fails validation; `None` for TOML syntax
    /// and schema errors (unknown keys, wrong types), whose position comes from the parser.
    pub key: Option<&'static str>,
    /// 1-based line and column in the config text.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at_key(key: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            key: Some(key),
            position: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((line, col)) = self.position {
            write!(f, "{line}:{col}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Why a feed could not be written (the feed libraries' writers failing; not expected with
/// the text our inputs carry, but never a panic).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("RSS writer: {0}")]
    Rss(String),
    #[error("Atom writer: {0}")]
    Atom(String),
    #[error("JSON writer: {0}")]
    Json(#[source] serde_json::Error),
}

/// A fatal error: the command cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config `{path}`")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config `{path}`")]
    Config { path: PathBuf, source: ConfigError },
    #[error("content directory `{path}` cannot be read (check `content.dir` in the config)")]
    ContentDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render feed `{path}`")]
    Render { path: String, source: RenderError },
    #[error("cannot start the server on `{bind}`")]
    Bind {
        bind: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch `{path}`: {message}")]
    Watch { path: PathBuf, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
