//! JSON Feed 1.1 (<https://www.jsonfeed.org/version/1.1/>) with serde, `hubs` for WebSub.
//! Archive pages are reached by `next_url`, from the subscription document back to page 1;
//! every page keeps the subscription document's URL as `feed_url`, the feed's identity in
//! JSON Feed.

use serde::Serialize;

use super::{Format, RenderError, Texts};
use crate::config::Config;
use crate::feed::Feed;
use crate::post::Post;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<Item<'a>>,
}

/// A WebSub hub (JSON Feed 1.1 `hubs`).
#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_text: Option<&'a str>,
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    language: &'a str,
}

/// The end of the document without items, as serde_json writes it (and our newline).
const NO_ITEMS: &[u8] = b"\"items\": []\n}\n";

/// Serializes the feed without its items through serde_json, then writes the items in
/// their place with [`write_item`], byte for byte what serde_json writes for them (see
/// `rss::render`).
pub(super) fn render(config: &Config, feed: &Feed, texts: &Texts) -> Result<Vec<u8>, RenderError> {
    let shell = write(&document(config, feed, Vec::new()))?;
    if feed.entries.is_empty() {
        return Ok(shell);
    }
    let Some(head) = shell
        .strip_suffix(b"[]\n}\n")
        .filter(|_| shell.ends_with(NO_ITEMS))
    else {
        return render_plain(config, feed, texts);
    };
    let items: usize = (0..feed.entries.len())
        .map(|i| 1024 + 2 * texts.summary(i).len() + texts.content(i).map_or(0, str::len))
        .sum();
    let mut out = Vec::with_capacity(shell.len() + items);
    out.extend_from_slice(head);
    out.push(b'[');
    for (i, post) in feed.entries.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        write_item(&mut out, post, texts, i);
    }
    out.extend_from_slice(b"\n  ]\n}\n");
    Ok(out)
}

/// One item as serde_json's pretty formatter writes it in `items` (indent 2, the item at
/// depth 2), every field of [`Item`] in order, strings escaped as serde_json escapes them
/// and, but for `content_html`, with `<` as `\u003c` ([`PlainTextSafe`]).
fn write_item(out: &mut Vec<u8>, post: &Post, texts: &Texts, i: usize) {
    let field = |out: &mut Vec<u8>, first: bool, key: &str| {
        out.extend_from_slice(if first { b"\n      \"" } else { b",\n      \"" });
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\": ");
    };
    let text = |out: &mut Vec<u8>, first: bool, key: &str, value: &str| {
        field(out, first, key);
        push_string(out, value, true);
    };
    out.extend_from_slice(b"    {");
    text(out, true, "id", &post.id);
    text(out, false, "url", &post.url);
    text(out, false, "title", &post.title);
    match texts.content(i) {
        Some(html) => {
            field(out, false, "content_html");
            push_string(out, html, false);
        }
        // JSON Feed requires content: summary-only entries carry the summary as text.
        None => text(out, false, "content_text", texts.summary(i)),
    }
    text(out, false, "summary", texts.summary(i));
    if let Some(image) = &post.banner {
        text(out, false, "image", image);
    }
    text(out, false, "date_published", &post.date.to_rfc3339());
    text(out, false, "date_modified", &post.updated.to_rfc3339());
    if !post.authors.is_empty() {
        field(out, false, "authors");
        out.push(b'[');
        for (n, name) in post.authors.iter().enumerate() {
            out.extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
            out.extend_from_slice(b"        {\n          \"name\": ");
            push_string(out, name, true);
            out.extend_from_slice(b"\n        }");
        }
        out.extend_from_slice(b"\n      ]");
    }
    if !(post.categories.is_empty() && post.tags.is_empty()) {
        field(out, false, "tags");
        out.push(b'[');
        for (n, tag) in post.categories.iter().chain(&post.tags).enumerate() {
            out.extend_from_slice(if n == 0 {
                b"\n        "
            } else {
                b",\n        "
            });
            push_string(out, tag, true);
        }
        out.extend_from_slice(b"\n      ]");
    }
    text(out, false, "language", &post.lang);
    out.extend_from_slice(b"\n    }");
}

/// For each byte, how serde_json escapes it in a string: 0 not at all, `u` as `\u00XX`,
/// else as a backslash and this byte.
static ESCAPE: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a JSON string the way serde_json writes it, with `<` as `\u003c` when
/// `plain` (a plain-text field, see [`PlainTextSafe`]).
fn push_string(out: &mut Vec<u8>, s: &str, plain: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 && !(plain && b == b'<') {
            continue;
        }
        out.extend_from_slice(&bytes[from..i]);
        match escape {
            0 => out.extend_from_slice(b"\\u003c"),
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]),
            _ => out.extend_from_slice(&[b'\\', escape]),
        }
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// The whole document through serde_json, items included: what [`render`] must equal, and
/// what it falls back to should serde_json's output ever end otherwise.
pub(super) fn render_plain(
    config: &Config,
    feed: &Feed,
    texts: &Texts,
) -> Result<Vec<u8>, RenderError> {
    let items = feed
        .entries
        .iter()
        .enumerate()
        .map(|(i, post)| Item {
            id: &post.id,
            url: &post.url,
            title: &post.title,
            content_html: texts.content(i),
            // JSON Feed requires content: summary-only entries carry the summary as text.
            content_text: texts.content(i).is_none().then_some(texts.summary(i)),
            summary: texts.summary(i),
            image: post.banner.as_deref(),
            date_published: post.date.to_rfc3339(),
            date_modified: post.updated.to_rfc3339(),
            authors: post.authors.iter().map(|a| Author { name: a }).collect(),
            tags: post
                .categories
                .iter()
                .chain(&post.tags)
                .map(String::as_str)
                .collect(),
            language: &post.lang,
        })
        .collect();
    write(&document(config, feed, items))
}

/// The JSON Feed document of `feed` with `items`.
fn document<'a>(config: &'a Config, feed: &'a Feed, items: Vec<Item<'a>>) -> JsonFeed<'a> {
    JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &feed.title,
        home_page_url: &feed.home_url,
        feed_url: super::page_url(feed, Format::Json, 0),
        next_url: super::next_url(feed),
        description: &feed.description,
        language: &feed.language,
        authors: (!config.site.author.is_empty())
            .then_some(Author {
                name: &config.site.author,
            })
            .into_iter()
            .collect(),
        hubs: super::hubs(config, feed)
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .collect(),
        items,
    }
}

/// serde_json's pretty output of `json` ([`PlainTextSafe`]), with a final newline.
fn write(json: &JsonFeed<'_>) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PlainTextSafe::default());
    json.serialize(&mut serializer).map_err(RenderError::Json)?;
    out.push(b'\n');
    Ok(out)
}

/// Pretty JSON in which every `<` of a plain-text value (everything but `content_html`) is
/// written `\u003c`: the same string to any JSON parser, but no tag-like text (a title
/// `<script>...`) for a reader or a page that mistakes a text field for HTML.
#[derive(Default)]
struct PlainTextSafe {
    pretty: serde_json::ser::PrettyFormatter<'static>,
    in_key: bool,
    key: String,
}

impl serde_json::ser::Formatter for PlainTextSafe {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.in_key = true;
        self.key.clear();
        self.pretty.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.in_key = false;
        self.pretty.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if self.in_key {
            self.key.push_str(fragment);
            return w.write_all(fragment.as_bytes());
        }
        if self.key == "content_html" || !fragment.contains('<') {
            return w.write_all(fragment.as_bytes());
        }
        for (i, part) in fragment.split('<').enumerate() {
            if i > 0 {
                w.write_all(b"\\u003c")?;
            }
            w.write_all(part.as_bytes())?;
        }
        Ok(())
    }
}
