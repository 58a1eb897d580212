//! Front matter: splitting it from the body, reading and validating its fields, dates,
//! and where the post lives (language, section, URL). Pure; no body rendering here.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Component, Path};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde_yaml::Value;
use url::Url;

use super::{BodySlot, Post};
use crate::config::{BannerBase, Config};
use crate::error::{PostError, PostErrorKind, PostWarning};
use crate::text::{absolutize, encode_segment, has_lone_cr, normalize, truncate, xml_safe};

/// Longest title kept, in characters; longer ones are cut (with a warning).
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest tag, category or author name kept, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Most tags (and categories, and authors) a post keeps: each tag is a feed.
pub const MAX_NAMES: usize = 64;

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
        return in_range(d, s);
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M %z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return in_range(d, s);
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
    let date =
        localize(naive, tz).ok_or_else(|| format!("is not a time that exists in {tz}: `{s}`"))?;
    in_range(date, s)
}

/// Dates every feed format can carry: RFC 822 (RSS) and HTTP dates have four-digit years.
fn in_range(date: DateTime<FixedOffset>, s: &str) -> Result<DateTime<FixedOffset>, String> {
    use chrono::Datelike as _;
    let utc_year = date.naive_utc().year();
    if (1000..=9999).contains(&date.year()) && (1000..=9999).contains(&utc_year) {
        Ok(date)
    } else {
        Err(format!("is out of range: `{s}` (years 1000 to 9999)"))
    }
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
    /// Remarks gathered while reading (misspelt keys, values cut to their bounds).
    warnings: std::cell::RefCell<Vec<PostWarning>>,
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

/// Parses one post's front matter. `rel` is the path relative to the content directory (it
/// decides the URL, language and section); `text` is the file's content (a BOM and CRLF line
/// ends are fine). Of the body only the plain-text summary is taken (`summary_of`); its
/// HTML is left for `render_body`.
pub fn parse(config: &Config, rel: &Path, text: &str) -> Result<Post, PostError> {
    // Only the front matter is normalized here (`summary_of` normalizes what it reads); a
    // text with classic Mac line ends (CR alone) is normalized whole first, or its lines
    // could not be found.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let text: Cow<'_, str> = if has_lone_cr(text) {
        normalize(text)
    } else {
        Cow::Borrowed(text)
    };
    let parts = split_at(rel, &text)?;
    let front = normalize(parts.front);
    let value = yaml(rel, &front, parts.front_line)?;
    let f = Fields {
        path: rel,
        front: &front,
        front_line: parts.front_line,
        map: mapping(rel, &value, parts.front_line)?,
        warnings: std::cell::RefCell::new(Vec::new()),
    };
    f.warn_unknown_keys();
    // Read in this order, so that the first problem reported is the same as always.
    let title = f.title()?;
    let (date, updated) = f.dates(config.site.time_zone)?;
    let draft = f.draft()?;
    let location = locate(config, rel, f.string("slug")?.as_deref());
    let categories = f.categories(&location)?;
    let tags = f.names("tags", f.list("tags", true)?);
    let authors = f.authors()?;
    let lang = f.lang(config, &location)?;
    let id = f.id(&location)?;
    let banner = f.banner(config, &location)?;
    let given_summary = f.summary(config)?;
    let mut summary = super::summary_of(config, given_summary.as_deref(), &title, &text);
    // Kept for every post (archive pages show it): without the slack a cut one has after
    // its ellipsis was pushed.
    summary.shrink_to_fit();
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
        summary,
        hash: 0,
        body: BodySlot::default(),
        banner,
        draft,
        lang,
        warnings: f.warnings.into_inner(),
    })
}

/// Front matter and body of `text`, or the error naming where the front matter should be.
fn split_at<'t>(rel: &Path, text: &'t str) -> Result<Split<'t>, PostError> {
    split(text).map_err(|kind| {
        let first_line = 1 + text.split('\n').take_while(|l| l.trim().is_empty()).count();
        let position = match kind {
            PostErrorKind::UnterminatedFrontMatter | PostErrorKind::NoFrontMatter => {
                Some((first_line, 1))
            }
            _ => None,
        };
        PostError::at(rel, position, kind)
    })
}

/// The front matter as YAML (aliases bounded by the library: no billion laughs).
fn yaml(rel: &Path, front: &str, front_line: usize) -> Result<Value, PostError> {
    serde_yaml::from_str(front).map_err(|e| {
        let position = e
            .location()
            .map(|l| (front_line + l.line().saturating_sub(1), l.column()));
        let message = e.to_string();
        // The library appends " at line X column Y"; the position is already in front.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        PostError::at(rel, position, PostErrorKind::Yaml(message))
    })
}

/// The top-level mapping of the front matter.
fn mapping<'v>(
    rel: &Path,
    value: &'v Value,
    front_line: usize,
) -> Result<&'v serde_yaml::Mapping, PostError> {
    let at = |kind| PostError::at(rel, Some((front_line, 1)), kind);
    match value {
        Value::Mapping(m) => Ok(m),
        Value::Null => Err(at(PostErrorKind::MissingField("title"))),
        other => Err(at(PostErrorKind::NotAMapping(kind(other)))),
    }
}

/// The fields of a post, each read, validated and bounded (a post cannot make a feed or a
/// URL unboundedly large: what is cut is a warning).
impl Fields<'_> {
    fn missing(&self, field: &'static str) -> PostError {
        PostError::at(
            self.path,
            Some((self.front_line, 1)),
            PostErrorKind::MissingField(field),
        )
    }

    fn warn(&self, key: &str, message: String) {
        self.warnings.borrow_mut().push(PostWarning {
            path: self.path.to_path_buf(),
            position: key_position(self.front, self.front_line, key),
            message,
        });
    }

    /// Unknown keys that look like a misspelt known one (`tages`).
    fn warn_unknown_keys(&self) {
        for k in self.map.keys().filter_map(|k| k.as_str()) {
            if KNOWN_KEYS.contains(&k) || k.chars().count() <= 2 {
                continue;
            }
            let best = KNOWN_KEYS
                .iter()
                .map(|known| (strsim::damerau_levenshtein(k, known), *known))
                .min();
            if let Some((_, known)) = best.filter(|(distance, _)| *distance <= 2) {
                self.warnings.borrow_mut().push(PostWarning {
                    path: self.path.to_path_buf(),
                    position: key_position(self.front, self.front_line, k).map(|(l, _)| (l, 1)),
                    message: format!(
                        "unknown front matter field `{k}` is ignored (did you mean `{known}`?)"
                    ),
                });
            }
        }
    }

    /// `date` (required) and `updated`/`lastmod`, never earlier than `date`.
    fn dates(
        &self,
        tz: chrono_tz::Tz,
    ) -> Result<(DateTime<FixedOffset>, DateTime<FixedOffset>), PostError> {
        let date = self.date("date", tz)?.ok_or_else(|| self.missing("date"))?;
        let updated = match self.date("updated", tz)? {
            Some(d) => Some(d),
            None => self.date("lastmod", tz)?,
        };
        Ok((date, updated.map_or(date, |u| u.max(date))))
    }

    /// `title`, whitespace collapsed, at most [`MAX_TITLE_CHARS`].
    fn title(&self) -> Result<String, PostError> {
        let title = self
            .string("title")?
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| match self.get("title") {
                None => self.missing("title"),
                Some(_) => self.err("title", "must not be empty"),
            })?;
        if title.chars().count() <= MAX_TITLE_CHARS {
            return Ok(title);
        }
        self.warn(
            "title",
            format!("`title` is cut to {MAX_TITLE_CHARS} characters"),
        );
        Ok(truncate(&title, MAX_TITLE_CHARS))
    }

    fn draft(&self) -> Result<bool, PostError> {
        match self.get("draft") {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(other) => Err(self.err(
                "draft",
                format!("must be true or false, found {}", kind(other)),
            )),
        }
    }

    /// `category`, else `categories`, else the section from the path.
    fn categories(&self, location: &Location) -> Result<Vec<String>, PostError> {
        let mut categories = self.list("category", false)?;
        if categories.is_empty() {
            categories = self.list("categories", false)?;
        }
        if categories.is_empty()
            && let Some(section) = &location.section
        {
            categories.push(section.clone());
        }
        Ok(self.names("category", categories))
    }

    /// `author`, else `authors`.
    fn authors(&self) -> Result<Vec<String>, PostError> {
        let mut authors = self.list("author", true)?;
        if authors.is_empty() {
            authors = self.list("authors", true)?;
        }
        Ok(self.names("author", authors))
    }

    /// At most [`MAX_NAMES`] names of at most [`MAX_NAME_CHARS`] characters each.
    fn names(&self, key: &str, names: Vec<String>) -> Vec<String> {
        if names.len() > MAX_NAMES {
            self.warn(
                key,
                format!(
                    "only the first {MAX_NAMES} of {} `{key}` are used",
                    names.len()
                ),
            );
        }
        names
            .into_iter()
            .take(MAX_NAMES)
            .map(|name| {
                if name.chars().count() <= MAX_NAME_CHARS {
                    return name;
                }
                self.warn(
                    key,
                    format!("a `{key}` name is cut to {MAX_NAME_CHARS} characters"),
                );
                let cut: String = name.chars().take(MAX_NAME_CHARS).collect();
                cut.trim_end().to_string()
            })
            .collect()
    }

    /// `lang`, else the language from the path, else the site's.
    fn lang(&self, config: &Config, location: &Location) -> Result<String, PostError> {
        Ok(self
            .string("lang")?
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .or(location.lang.clone())
            .unwrap_or_else(|| config.site.language.clone()))
    }

    /// `id`, else `guid`, else the permalink.
    fn id(&self, location: &Location) -> Result<String, PostError> {
        let id = match self.string("id")? {
            Some(id) => Some(id),
            None => self.string("guid")?,
        };
        Ok(id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| location.url.to_string()))
    }

    /// `banner` as an absolute http(s) URL (no `javascript:`, `data:` or other schemes).
    fn banner(&self, config: &Config, location: &Location) -> Result<Option<String>, PostError> {
        let banner = self
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
        Ok(match banner {
            Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                self.warn(
                    "banner",
                    "`banner` is not an http(s) URL; it is ignored".to_string(),
                );
                None
            }
            other => other,
        })
    }

    /// `summary`, whitespace collapsed, at most ten automatic summaries long.
    fn summary(&self, config: &Config) -> Result<Option<String>, PostError> {
        let max = config.content.summary_length.saturating_mul(10);
        Ok(self
            .string("summary")?
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.chars().count() <= max {
                    return s;
                }
                self.warn(
                    "summary",
                    format!("`summary` is cut to {max} characters (10 × `content.summary_length`)"),
                );
                truncate(&s, max)
            }))
    }
}
