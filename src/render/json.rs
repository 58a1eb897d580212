//! JSON Feed 1.1 (<https://www.jsonfeed.org/version/1.1/>) with serde.

use serde::Serialize;

use super::{Format, Texts};
use crate::config::Config;
use crate::feed::Feed;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    items: Vec<Item<'a>>,
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

pub(super) fn render(config: &Config, feed: &Feed, texts: &Texts) -> Result<Vec<u8>, String> {
    let json = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &feed.title,
        home_page_url: &feed.home_url,
        feed_url: format!("{}{}", feed.dir_url, Format::Json.file_name()),
        description: &feed.description,
        language: &feed.language,
        authors: (!config.site.author.is_empty())
            .then_some(Author {
                name: &config.site.author,
            })
            .into_iter()
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
    let mut out = serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}
