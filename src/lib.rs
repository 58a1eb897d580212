//! feedsmith turns a directory of Markdown posts into RSS 2.0, Atom 1.0 and JSON Feed 1.1
//! feeds, serves them over HTTP with caching that aggregators can rely on, and exports them
//! as static files.
//!
//! # Data flow
//! ```text
//! content/**.md --content::Cache (load front matter and summary in parallel)--> posts
//!   (+ PostErrors) --feed::plan (serving: planner::Planner, from the posts changed since
//!     the last rebuild, content::Cache::take_delta)--> feeds (unchanged ones shared), each
//!     a subscription document and RFC 5005 archive pages (unchanged pages shared)
//!   --content::ensure_bodies (posts shown in full only: Markdown -> HTML
//!   --sanitize::clean (allowlist, absolute URLs) -> size budget)
//!   --render--> bytes x {rss, atom, json} (+ OPML; feed byte budget)
//!   --pages--> the directory and a preview page per feed (HTML for people)
//!   --build::build--> Rendered (gzip, ETag, Last-Modified; identity and br on demand)
//!   --> Snapshot (immutable) --publish::Publisher--> SnapshotStore (ArcSwap)
//!   --> server (one snapshot per request; settings a SIGHUP reload swaps)
//!       (served by `listener`: actix-server workers, each connection a `conn::Guarded`
//!        that bounds what one client can make the process hold; each answer counted in
//!        `metrics` and written to the `access` log when they are on)
//!   \--> websub::Pinger (self URLs of the feed documents whose bytes changed; hubs are
//!        notified from its own threads, never on the rebuild or request path)
//!   \--> export::export: each file written to feeds/ as soon as it is rendered
//! ```
//!
//! # Invariants
//! 1. Only `config` and `content` read files (`build::build` asks `content` for the
//!    bodies of the entries it renders); only `export` writes them; the server never touches
//!    the filesystem.
//! 2. `post`, `feed`, `render` and `pages` are pure and deterministic: no clock in any
//!    output, total ordering (date desc, then permalink), feed `updated` = newest entry's
//!    update time. Same content, same bytes, same ETag (xxh3) on every machine and after
//!    every restart.
//! 3. A snapshot never changes once built; publishing is one pointer swap; a failed rebuild
//!    never replaces a good snapshot; a bad edit keeps the post's last good version.
//! 4. Serve and export share `build::build`: exported files equal served bodies.
//! 5. The async runtime never parses content; rebuilds run on their own thread.
//! 6. Drafts and future posts appear nowhere; a scheduled post appears when its time comes.
//! 7. A feed never mixes languages when the content is multilingual.
//! 8. Content is untrusted at the output boundary: every HTML body passes the one allowlist
//!    in `sanitize` before any format sees it; every input has a bound (file size, entry and
//!    feed bytes, nesting, title and tag counts) and symlinks stay inside the content dir.
//!
//! 9. Post bodies are loaded on demand (`content::ensure_bodies`) and dropped by their
//!    owner, the content cache (`Cache::release_bodies`), when no subscription document
//!    shows the post in full; summaries are taken when the post is parsed, so archive pages
//!    need no bodies.
//!
//! Modules depend on each other one way only (`.ci/module-graph.py`): `error`, `text` and
//! `compress` are leaves; `post` is split into `front` (front matter) and `body` (the HTML
//! pipeline); problems of every kind are one type, `error::Problem`.

pub mod access;
pub mod build;
pub mod compress;
pub mod config;
pub mod conn;
pub mod content;
pub mod error;
pub mod export;
pub mod feed;
pub mod listener;
pub mod metrics;
pub mod pages;
pub mod planner;
pub mod post;
pub mod publish;
pub mod render;
pub mod sanitize;
pub mod server;
pub mod snapshot;
pub mod text;
pub mod watch;
pub mod websub;

pub use config::Config;
pub use error::{Error, PostError, Problem};
