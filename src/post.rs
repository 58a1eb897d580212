//! One post: pure `parse(path, text)` from a file's text to a `Post` (its front matter,
//! validated), and pure `render_body(post, text)` to its `Body` (Markdown to HTML with
//! absolute URLs, summary). The two are apart because only posts that some feed shows need a
//! body: a site of 100,000 posts renders a few thousand. No I/O and no clock here:
//! `content` reads the files, and visibility is decided against a `now` the caller passes in.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Component, Path};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde_yaml::Value;
use unicode_segmentation::UnicodeSegmentation;
use url::Url;

use crate::config::{BannerBase, Config};
use crate::error::{PostError, PostErrorKind, PostWarning};

/// A parsed post. Every string is free of characters XML 1.0 forbids and every URL is
/// absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// Path relative to the content directory (`zh/news/a b/x.md`).
    pub source: String,
    /// Stable entry id: front matter `id`/`guid`, else the permalink.
    pub id: String,
    /// Absolute public URL of the post.
    pub url: String,
    pub title: String,
    /// Publication time (date-only values are midnight in the site's time zone).
    pub date: DateTime<FixedOffset>,
    /// Last update (`updated`/`lastmod`), never earlier than `date`.
    pub updated: DateTime<FixedOffset>,
    /// Categories (front matter, else the section from the path).
    pub categories: Vec<String>,
    /// Tags, in front-matter order, without case-insensitive duplicates.
    pub tags: Vec<String>,
    /// Author names; empty means "the site author".
    pub authors: Vec<String>,
    /// The front matter `summary`, whitespace collapsed.
    pub given_summary: Option<String>,
    /// Content hash (xxh3-64) of the file this was parsed from; 0 when parsed from a string.
    pub hash: u64,
    /// The rendered body, once loaded (`content::ensure_bodies`); dropped again when no feed
    /// shows the post.
    pub body: BodySlot,
    /// Absolute banner image URL.
    pub banner: Option<String>,
    pub draft: bool,
    /// Language (front matter `lang`, else from the path, else the site language).
    pub lang: String,
    /// Non-fatal remarks (e.g. misspelt keys).
    pub warnings: Vec<PostWarning>,
}

/// What a feed shows of a post besides its front matter.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// Full content as HTML with absolute URLs (kept compressed: held for every post some
    /// feed shows, and read once per feed render).
    pub html: Html,
    /// Plain-text summary.
    pub summary: String,
}

/// A post's body, loaded on demand and shared by every feed that shows the post. A cache
/// beside the post's value: clones share nothing, and equality ignores it.
#[derive(Default)]
pub struct BodySlot(ArcSwapOption<Body>);

impl BodySlot {
    /// The loaded body, if any.
    pub fn get(&self) -> Option<Arc<Body>> {
        self.0.load_full()
    }

    /// Keeps `body` for later feed renders.
    pub fn set(&self, body: Arc<Body>) {
        self.0.store(Some(body));
    }

    /// Forgets the body (it can be rendered again from the file).
    pub fn clear(&self) {
        self.0.store(None);
    }
}

impl Clone for BodySlot {
    fn clone(&self) -> Self {
        BodySlot(ArcSwapOption::new(self.get()))
    }
}

impl PartialEq for BodySlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for BodySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            Some(_) => f.write_str("BodySlot(loaded)"),
            None => f.write_str("BodySlot(empty)"),
        }
    }
}

/// Runs `f` with this thread's libdeflate compressor for `level` (1-12) and a scratch
/// buffer: compressors hold large match-finder tables, too costly to set up per call.
pub(crate) fn with_compressor<T>(
    level: u32,
    f: impl FnOnce(&mut libdeflater::Compressor, &mut Vec<u8>) -> Option<T>,
) -> Option<T> {
    use std::cell::RefCell;
    thread_local! {
        static COMPRESSORS: RefCell<Vec<(u32, libdeflater::Compressor)>> =
            const { RefCell::new(Vec::new()) };
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let level = level.clamp(1, 12);
    COMPRESSORS.with(|compressors| {
        SCRATCH.with(|scratch| {
            let mut compressors = compressors.try_borrow_mut().ok()?;
            let mut scratch = scratch.try_borrow_mut().ok()?;
            let index = match compressors.iter().position(|(l, _)| *l == level) {
                Some(i) => i,
                None => {
                    let lvl = libdeflater::CompressionLvl::new(level as i32).ok()?;
                    compressors.push((level, libdeflater::Compressor::new(lvl)));
                    compressors.len() - 1
                }
            };
            let result = f(&mut compressors[index].1, &mut scratch);
            // Do not keep a huge buffer around after one huge file.
            if scratch.capacity() > 8 << 20 {
                *scratch = Vec::new();
            }
            result
        })
    })
}

/// HTML kept deflate-compressed in memory; `text()` gives it back.
#[derive(Clone, PartialEq, Eq)]
pub struct Html {
    compressed: Box<[u8]>,
    len: usize,
}

impl Html {
    /// Compresses `html` (libdeflate level 1: fast, about 4x smaller on post HTML).
    pub fn new(html: &str) -> Html {
        let compressed = with_compressor(1, |compressor, scratch| {
            scratch.resize(compressor.deflate_compress_bound(html.len()), 0);
            let n = compressor.deflate_compress(html.as_bytes(), scratch).ok()?;
            Some(Box::<[u8]>::from(&scratch[..n]))
        });
        match compressed {
            Some(compressed) => Html {
                compressed,
                len: html.len(),
            },
            // Cannot happen with a buffer of the bound's size; keep it uncompressed then.
            None => Html {
                compressed: html.as_bytes().into(),
                len: usize::MAX,
            },
        }
    }

    /// The HTML text.
    pub fn text(&self) -> String {
        if self.len == usize::MAX {
            return String::from_utf8_lossy(&self.compressed).into_owned();
        }
        let mut out = vec![0; self.len];
        match libdeflater::Decompressor::new().deflate_decompress(&self.compressed, &mut out) {
            Ok(n) if n == self.len => String::from_utf8(out).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Bytes held in memory.
    pub fn compressed_len(&self) -> usize {
        self.compressed.len()
    }
}

impl std::fmt::Debug for Html {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Html({} bytes, {} compressed)",
            self.len,
            self.compressed.len()
        )
    }
}

impl Post {
    /// Drafts and posts dated after `now` appear nowhere.
    pub fn is_visible(&self, now: DateTime<FixedOffset>) -> bool {
        !self.draft && self.date <= now
    }
}

const KNOWN_KEYS: &[&str] = &[
    "title",
    "date",
    "updated",
    "lastmod",
    "category",
    "categories",
    "tags",
    "author",
    "authors",
    "summary",
    "banner",
    "draft",
    "lang",
    "id",
    "guid",
    "slug",
];

/// Removes characters that XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE, U+FFFF).
/// Borrowed when there is nothing to remove.
pub fn xml_safe(s: &str) -> Cow<'_, str> {
    fn forbidden(c: char) -> bool {
        matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
    }
    // Byte pre-check (vectorizes): every forbidden character is an ASCII control byte or
    // starts with 0xEF (U+FFFE/U+FFFF are EF BF BE/BF); most texts have neither.
    let suspicious = s
        .bytes()
        .any(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF);
    if suspicious && s.chars().any(forbidden) {
        Cow::Owned(s.chars().filter(|&c| !forbidden(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// Front matter and body of a file, with the 1-based line where the YAML starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    pub front: &'a str,
    pub front_line: usize,
    pub body: &'a str,
}

/// Splits `---` front matter from the body. Expects a BOM-free text with LF or CRLF line
/// ends (delimiter lines are compared without trailing whitespace).
pub fn split(text: &str) -> Result<Split<'_>, PostErrorKind> {
    if text.trim().is_empty() {
        return Err(PostErrorKind::Empty);
    }
    // Leading blank lines are tolerated.
    let mut offset = 0;
    let mut line_no = 1;
    for line in text.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        offset += line.len();
        line_no += 1;
    }
    let rest = &text[offset..];
    let first = rest.split('\n').next().unwrap_or_default();
    if first.trim_end() != "---" {
        return Err(PostErrorKind::NoFrontMatter);
    }
    let front_start = offset + first.len() + 1;
    if front_start > text.len() {
        return Err(PostErrorKind::UnterminatedFrontMatter);
    }
    let mut pos = front_start;
    for line in text[front_start..].split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed == "..." {
            return Ok(Split {
                front: &text[front_start..pos],
                front_line: line_no + 1,
                body: &text[(pos + line.len()).min(text.len())..],
            });
        }
        pos += line.len();
    }
    Err(PostErrorKind::UnterminatedFrontMatter)
}

/// Parses a date as written in front matter: `2024-11-19`, `2024-11-19 10:00[:00]`,
/// `2024-11-19T10:00[:00]`, or RFC 3339. Times without an offset are in `tz`.
pub fn parse_date(s: &str, tz: chrono_tz::Tz) -> Result<DateTime<FixedOffset>, String> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d);
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M %z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Ok(d);
        }
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| {
        format!("is not a date: `{s}` (expected 2024-05-01, 2024-05-01 10:00 or RFC 3339)")
    })?;
    localize(naive, tz).ok_or_else(|| format!("is not a time that exists in {tz}: `{s}`"))
}

/// A local time in `tz`. Ambiguous times (DST fold) take the earlier instant; times in a DST
/// gap are moved forward by the gap, as clocks do.
fn localize(naive: NaiveDateTime, tz: chrono_tz::Tz) -> Option<DateTime<FixedOffset>> {
    use chrono::offset::LocalResult;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => Some(d.fixed_offset()),
        LocalResult::None => (1..=4).find_map(|half_hours| {
            tz.from_local_datetime(&(naive + chrono::Duration::minutes(30 * half_hours)))
                .earliest()
                .map(|d| d.fixed_offset())
        }),
    }
}

/// Characters kept as-is in a URL path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (spaces, CJK and reserved characters included).
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Where a post lives: language, section and public URL, from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub lang: Option<String>,
    pub section: Option<String>,
    pub url: Url,
}

/// Maps a path relative to the content dir to its public URL:
/// `zh/news/a b/x.md` -> `{base}zh/news/a%20b/x.html`; `dir/index.md` -> `{base}dir/`.
/// `slug` replaces the file name (or, for an index file, the directory name).
pub fn locate(config: &Config, rel: &Path, slug: Option<&str>) -> Location {
    let mut segments: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let file = segments.pop().unwrap_or_default();
    let stem = Path::new(&file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_index = matches!(stem.as_str(), "index" | "_index");
    let lang = segments
        .first()
        .filter(|first| config.content.languages.iter().any(|l| l == *first))
        .cloned();
    let section = segments.get(usize::from(lang.is_some())).cloned();
    let slug = slug.map(str::trim).filter(|s| !s.is_empty());
    let mut path: Vec<String> = segments.iter().map(|s| encode_segment(s)).collect();
    let tail = if is_index {
        if let (Some(slug), Some(last)) = (slug, path.last_mut()) {
            *last = encode_segment(slug);
        }
        String::new()
    } else {
        format!(
            "{}{}",
            encode_segment(slug.unwrap_or(&stem)),
            config.content.permalink_extension
        )
    };
    path.push(tail);
    let joined = path.join("/");
    let url = config
        .site
        .base_url
        .join(&joined)
        .unwrap_or_else(|_| config.site.base_url.clone());
    Location { lang, section, url }
}

/// Resolves a URL found in a post: `/x` against the site root, anything relative against
/// the post's URL; absolute URLs and other schemes are kept.
pub fn absolutize(href: &str, post_url: &Url, site: &Url) -> Option<String> {
    let href = href.trim();
    let joined = match href.strip_prefix('/') {
        Some(rest) if !rest.starts_with('/') => site.join(rest),
        _ => post_url.join(href),
    };
    joined.ok().map(String::from)
}

fn absolutize_srcset(srcset: &str, post_url: &Url, site: &Url) -> String {
    srcset
        .split(',')
        .map(|candidate| {
            let candidate = candidate.trim();
            let (url, descriptor) = candidate
                .split_once(char::is_whitespace)
                .unwrap_or((candidate, ""));
            let url = absolutize(url, post_url, site).unwrap_or_else(|| url.to_string());
            if descriptor.is_empty() {
                url
            } else {
                format!("{url} {}", descriptor.trim())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes every URL attribute in `html` absolute (Markdown output and raw HTML alike).
pub fn absolutize_html(html: &str, post_url: &Url, site: &Url) -> String {
    use lol_html::{RewriteStrSettings, element, rewrite_str};
    let single = |attr: &'static str| {
        move |el: &mut lol_html::html_content::Element| {
            if let Some(value) = el.get_attribute(attr)
                && let Some(abs) = absolutize(&value, post_url, site)
                && abs != value
            {
                el.set_attribute(attr, &abs)?;
            }
            Ok(())
        }
    };
    let srcset = |el: &mut lol_html::html_content::Element| {
        if let Some(value) = el.get_attribute("srcset") {
            el.set_attribute("srcset", &absolutize_srcset(&value, post_url, site))?;
        }
        Ok(())
    };
    let settings = RewriteStrSettings {
        element_content_handlers: vec![
            element!("[href]", single("href")),
            element!("[src]", single("src")),
            element!("[poster]", single("poster")),
            element!("[cite]", single("cite")),
            element!("object[data]", single("data")),
            element!("[srcset]", srcset),
        ],
        ..RewriteStrSettings::new()
    };
    rewrite_str(html, settings).unwrap_or_else(|_| html.to_string())
}

/// East Asian wide scripts whose lines are joined without a space (CSS Text 3 segment
/// break rule); Hangul is excluded because Korean separates words with spaces.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{303F}' | '\u{3040}'..='\u{30FF}' | '\u{3100}'..='\u{312F}'
        | '\u{31A0}'..='\u{31FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}' | '\u{FE30}'..='\u{FE4F}' | '\u{FF00}'..='\u{FF60}'
        | '\u{FFE0}'..='\u{FFE6}' | '\u{20000}'..='\u{3FFFF}')
}

fn markdown_options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
}

fn text_of<'a>(e: &'a Event<'a>) -> Option<&'a str> {
    match e {
        Event::Text(t) | Event::Code(t) => Some(t),
        _ => None,
    }
}

/// Drops soft breaks between two CJK characters so hard-wrapped Chinese does not get gaps.
fn join_cjk_lines(events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut out: Vec<Event<'_>> = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if matches!(event, Event::SoftBreak) {
            let prev = events[..i]
                .iter()
                .rev()
                .find(|e| !matches!(e, Event::Start(_) | Event::End(_)))
                .and_then(text_of)
                .and_then(|t| t.chars().next_back());
            let next = events[i + 1..]
                .iter()
                .find(|e| !matches!(e, Event::Start(_) | Event::End(_)))
                .and_then(text_of)
                .and_then(|t| t.chars().next());
            if matches!((prev, next), (Some(a), Some(b)) if is_cjk(a) && is_cjk(b)) {
                continue;
            }
        }
        out.push(event.clone());
    }
    out
}

/// Collapses whitespace runs to one space, or to nothing where a run of line breaks only
/// sits between two CJK characters.
fn collapse_whitespace(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut run: Option<bool> = None; // Some(only line breaks so far)
    for c in raw.chars() {
        if c.is_whitespace() {
            run = Some(run.unwrap_or(true) && c == '\n');
            continue;
        }
        if let Some(only_breaks) = run.take()
            && let Some(prev) = out.chars().next_back()
            && !(only_breaks && is_cjk(prev) && is_cjk(c))
        {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Plain text of Markdown events: no markup, no image alt text, no raw HTML.
fn plain_text(events: &[Event<'_>]) -> String {
    let mut raw = String::new();
    let mut in_image = 0usize;
    for event in events {
        match event {
            Event::Start(Tag::Image { .. }) => in_image += 1,
            Event::End(TagEnd::Image) => in_image = in_image.saturating_sub(1),
            Event::Text(t) | Event::Code(t) if in_image == 0 => raw.push_str(t),
            Event::SoftBreak | Event::HardBreak => raw.push('\n'),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::TableCell
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock,
            ) => raw.push('\n'),
            _ => {}
        }
    }
    collapse_whitespace(&raw)
}

/// Cuts plain text to at most `max` grapheme clusters, preferring a sentence end in the
/// second half of the window, and marks a cut with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    // Only the window matters: never segment more than `max + 1` clusters of a long text.
    let graphemes: Vec<&str> = text.graphemes(true).take(max + 1).collect();
    if graphemes.len() <= max {
        return text.to_string();
    }
    let window = &graphemes[..max.saturating_sub(1)];
    let sentence_end = window
        .iter()
        .rposition(|g| matches!(*g, "。" | "！" | "？" | "." | "!" | "?" | "…"))
        .filter(|&i| i + 1 >= max / 2)
        .filter(|&i| {
            // An ASCII period ends a sentence only before a space (not in `24.03`).
            window[i] != "." || graphemes.get(i + 1).is_some_and(|g| g.trim().is_empty())
        });
    let cut = sentence_end.map_or(window.len(), |i| i + 1);
    let mut out: String = graphemes[..cut].concat().trim_end().to_string();
    out.push('…');
    out
}

/// Where a top-level key is written in the front matter: (line, column of its value).
fn key_position(front: &str, front_line: usize, key: &str) -> Option<(usize, usize)> {
    front.split('\n').enumerate().find_map(|(i, line)| {
        let rest = line.strip_prefix(key)?;
        let after = rest.trim_start_matches([' ', '\t']);
        let after_colon = after.strip_prefix(':')?;
        let value_col = line.len() - after_colon.trim_start().len() + 1;
        let col = line[..value_col.saturating_sub(1).min(line.len())]
            .chars()
            .count()
            + 1;
        Some((front_line + i, col))
    })
}

/// Front-matter reading context: names the file and finds field positions for errors.
struct Fields<'a> {
    path: &'a Path,
    front: &'a str,
    front_line: usize,
    map: &'a serde_yaml::Mapping,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn err(&self, field: &'static str, problem: impl Into<String>) -> PostError {
        PostError::at(
            self.path,
            key_position(self.front, self.front_line, field),
            PostErrorKind::InvalidField {
                field,
                problem: problem.into(),
            },
        )
    }

    fn string(&self, key: &'static str) -> Result<Option<String>, PostError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(xml_safe(s).into_owned())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.err(key, format!("must be a string, found {}", kind(other)))),
        }
    }

    /// A list of strings, a single string, or a comma-joined string.
    fn list(&self, key: &'static str, split_commas: bool) -> Result<Vec<String>, PostError> {
        let split = |s: &str| -> Vec<String> {
            let s = &xml_safe(s);
            if split_commas {
                s.split([',', '，', '、']).map(str::to_string).collect()
            } else {
                vec![s.to_string()]
            }
        };
        let items = match self.get(key) {
            None => Vec::new(),
            Some(Value::String(s)) => split(s),
            Some(Value::Number(n)) => vec![n.to_string()],
            Some(Value::Sequence(seq)) => {
                let mut items = Vec::new();
                for item in seq {
                    match item {
                        Value::String(s) => items.push(xml_safe(s).into_owned()),
                        Value::Number(n) => items.push(n.to_string()),
                        Value::Bool(b) => items.push(b.to_string()),
                        Value::Null => {}
                        Value::Mapping(m) => match m.get("name") {
                            Some(Value::String(s)) => items.push(xml_safe(s).into_owned()),
                            _ => {
                                return Err(
                                    self.err(key, "has an item that is a mapping without a `name`")
                                );
                            }
                        },
                        other => {
                            return Err(self.err(
                                key,
                                format!(
                                    "must be a list of strings, found an item that is {}",
                                    kind(other)
                                ),
                            ));
                        }
                    }
                }
                items
            }
            Some(other) => {
                return Err(self.err(
                    key,
                    format!("must be a string or a list, found {}", kind(other)),
                ));
            }
        };
        let mut seen = BTreeSet::new();
        Ok(items
            .into_iter()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty() && seen.insert(s.to_lowercase()))
            .collect())
    }

    fn date(
        &self,
        key: &'static str,
        tz: chrono_tz::Tz,
    ) -> Result<Option<DateTime<FixedOffset>>, PostError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_date(s, tz).map(Some).map_err(|p| self.err(key, p)),
            Some(other) => Err(self.err(
                key,
                format!(
                    "is not a date (expected 2024-05-01 or RFC 3339), found {}",
                    kind(other)
                ),
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A CR that does not start a CRLF pair.
fn has_lone_cr(text: &str) -> bool {
    text.contains('\r') && text.replace("\r\n", "").contains('\r')
}

/// A file's text without BOM, with LF line ends, and without characters XML 1.0 forbids.
fn normalize(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let normalized: Cow<'_, str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    };
    match normalized {
        Cow::Borrowed(t) => xml_safe(t),
        Cow::Owned(t) => Cow::Owned(xml_safe(&t).into_owned()),
    }
}

/// Renders the body of `post` from its file's `text`: HTML with every URL absolute, and the
/// summary (front matter, else the text before `<!--more-->`, else the start of the text cut
/// at a sentence end, else the title). A text without valid front matter (the file changed
/// since `post` was parsed) renders as if all of it were the body.
pub fn render_body(config: &Config, post: &Post, text: &str) -> Body {
    let text = normalize(text);
    let body = split(&text).map_or(&*text, |parts| parts.body);
    let post_url = Url::parse(&post.url).unwrap_or_else(|_| config.site.base_url.clone());
    let events: Vec<Event<'_>> =
        join_cjk_lines(Parser::new_ext(body, markdown_options()).collect());
    let mut html = String::with_capacity(body.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.iter().cloned());
    let html = Html::new(&absolutize_html(&html, &post_url, &config.site.base_url));
    let summary = match &post.given_summary {
        Some(s) => s.clone(),
        None => {
            let more = events.iter().position(
                |e| matches!(e, Event::Html(h) | Event::InlineHtml(h) if h.trim() == "<!--more-->"),
            );
            let text = match more {
                Some(i) => plain_text(&events[..i]),
                None => truncate(&plain_text(&events), config.content.summary_length),
            };
            if text.is_empty() {
                post.title.clone()
            } else {
                text
            }
        }
    };
    Body { html, summary }
}

/// Parses one post's front matter. `rel` is the path relative to the content directory (it
/// decides the URL, language and section); `text` is the file's content (a BOM and CRLF line
/// ends are fine). The body is left for `render_body`.
pub fn parse(config: &Config, rel: &Path, text: &str) -> Result<Post, PostError> {
    // Only the front matter is read here, so only it is normalized; a text with classic Mac
    // line ends (CR alone) is normalized whole first, or its lines could not be found.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let text: Cow<'_, str> = if has_lone_cr(text) {
        normalize(text)
    } else {
        Cow::Borrowed(text)
    };
    let parts = split(&text).map_err(|kind| {
        let first_line = 1 + text.split('\n').take_while(|l| l.trim().is_empty()).count();
        let position = match kind {
            PostErrorKind::UnterminatedFrontMatter | PostErrorKind::NoFrontMatter => {
                Some((first_line, 1))
            }
            _ => None,
        };
        PostError::at(rel, position, kind)
    })?;
    let front = normalize(parts.front);
    let value: Value = serde_yaml::from_str(&front).map_err(|e| {
        let position = e
            .location()
            .map(|l| (parts.front_line + l.line().saturating_sub(1), l.column()));
        let message = e.to_string();
        // The library appends " at line X column Y"; the position is already in front.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        PostError::at(rel, position, PostErrorKind::Yaml(message))
    })?;
    let map = match &value {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(PostError::at(
                rel,
                Some((parts.front_line, 1)),
                PostErrorKind::MissingField("title"),
            ));
        }
        other => {
            return Err(PostError::at(
                rel,
                Some((parts.front_line, 1)),
                PostErrorKind::NotAMapping(kind(other)),
            ));
        }
    };
    let f = Fields {
        path: rel,
        front: &front,
        front_line: parts.front_line,
        map,
    };
    let tz = config.site.time_zone;

    let title = f
        .string("title")?
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| match f.get("title") {
            None => PostError::at(
                rel,
                Some((parts.front_line, 1)),
                PostErrorKind::MissingField("title"),
            ),
            Some(_) => f.err("title", "must not be empty"),
        })?;
    let date = f.date("date", tz)?.ok_or_else(|| {
        PostError::at(
            rel,
            Some((parts.front_line, 1)),
            PostErrorKind::MissingField("date"),
        )
    })?;
    let updated = match f.date("updated", tz)? {
        Some(d) => Some(d),
        None => f.date("lastmod", tz)?,
    }
    .map_or(date, |u| u.max(date));
    let draft = match f.get("draft") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(other) => {
            return Err(f.err(
                "draft",
                format!("must be true or false, found {}", kind(other)),
            ));
        }
    };
    let slug = f.string("slug")?;
    let location = locate(config, rel, slug.as_deref());
    let mut categories = f.list("category", false)?;
    if categories.is_empty() {
        categories = f.list("categories", false)?;
    }
    if categories.is_empty()
        && let Some(section) = &location.section
    {
        categories.push(section.clone());
    }
    let tags = f.list("tags", true)?;
    let mut authors = f.list("author", true)?;
    if authors.is_empty() {
        authors = f.list("authors", true)?;
    }
    let lang = f
        .string("lang")?
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .or(location.lang.clone())
        .unwrap_or_else(|| config.site.language.clone());
    let id = match f.string("id")? {
        Some(id) => Some(id),
        None => f.string("guid")?,
    }
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| location.url.to_string());
    let banner = f
        .string("banner")?
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .and_then(|b| match config.content.banner_base {
            BannerBase::Site => absolutize(
                &format!("/{}", b.trim_start_matches('/')),
                &location.url,
                &config.site.base_url,
            ),
            BannerBase::Post => absolutize(&b, &location.url, &config.site.base_url),
        });

    let given_summary = f
        .string("summary")?
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty());

    let warnings = map
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| !KNOWN_KEYS.contains(k))
        .filter_map(|k| {
            let best = KNOWN_KEYS
                .iter()
                .map(|known| (strsim::damerau_levenshtein(k, known), *known))
                .min()?;
            (best.0 <= 2 && k.chars().count() > 2).then(|| PostWarning {
                path: rel.to_path_buf(),
                position: key_position(&front, parts.front_line, k).map(|(l, _)| (l, 1)),
                message: format!(
                    "unknown front matter field `{k}` is ignored (did you mean `{}`?)",
                    best.1
                ),
            })
        })
        .collect();

    Ok(Post {
        source: rel.to_string_lossy().replace('\\', "/"),
        id,
        url: location.url.to_string(),
        title,
        date,
        updated,
        categories,
        tags,
        authors,
        given_summary,
        hash: 0,
        body: BodySlot::default(),
        banner,
        draft,
        lang,
        warnings,
    })
}

#[cfg(test)]
mod tests;
