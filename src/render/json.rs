//! JSON Feed 1.1 (<https://www.jsonfeed.org/version/1.1/>) with serde, `hubs` for WebSub.
//! Archive pages are reached by `next_url`, from the subscription document back to page 1;
//! every page keeps the subscription document's URL as `feed_url`, the feed's identity in
//! JSON Feed.

use serde::Serialize;

use super::{Format, RenderError, Texts};
use crate::config::Config;
use crate::feed::Feed;

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

pub(super) fn render(config: &Config, feed: &Feed, texts: &Texts) -> Result<Vec<u8>, RenderError> {
    let json = JsonFeed {
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
        items: feed
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
            .collect(),
    };
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
