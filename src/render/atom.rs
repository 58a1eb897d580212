//! Atom 1.0 through `atom_syndication`: stable ids, `published`/`updated`, authors with the
//! site author as fallback, `summary`, `content type="html"`, alternate, self and WebSub hub
//! links, and RFC 5005 history links with `fh:archive` on archive pages (which keep the
//! feed's `id`: they are documents of the same feed).

use std::collections::BTreeMap;

use atom_syndication::{
    Category, Content, Entry, Feed as AtomFeed, Generator, Link, Person, Text, WriteConfig,
};

use super::{Format, HISTORY_NS, RenderError, Texts};
use crate::config::Config;
use crate::feed::Feed;
use crate::post::Post;

fn person(name: &str) -> Person {
    Person {
        name: name.to_string(),
        ..Person::default()
    }
}

fn link(href: String, rel: &str, mime: Option<&str>) -> Link {
    Link {
        href,
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        ..Link::default()
    }
}

/// One entry: title, id, dates, authors (the site's when the post names none), categories
/// and tags, links (alternate, banner enclosure), plain summary and HTML content.
fn entry(post: &Post, site_author: &str, texts: &Texts, i: usize) -> Entry {
    let mut links = vec![link(post.url.clone(), "alternate", Some("text/html"))];
    if let Some(banner) = &post.banner {
        links.push(link(banner.clone(), "enclosure", Some(image_type(banner))));
    }
    Entry {
        title: Text::plain(post.title.clone()),
        id: post.id.clone(),
        updated: post.updated,
        published: Some(post.date),
        authors: if post.authors.is_empty() {
            vec![person(site_author)]
        } else {
            post.authors.iter().map(|a| person(a)).collect()
        },
        categories: post
            .categories
            .iter()
            .chain(&post.tags)
            .map(|t| Category {
                term: t.clone(),
                ..Category::default()
            })
            .collect(),
        links,
        summary: Some(Text::plain(texts.summary(i))),
        content: texts.content(i).map(|html| Content {
            value: Some(html.to_string()),
            content_type: Some("html".to_string()),
            ..Content::default()
        }),
        ..Entry::default()
    }
}

pub(super) fn render(config: &Config, feed: &Feed, texts: &Texts) -> Result<Vec<u8>, RenderError> {
    let site_author = if config.site.author.is_empty() {
        config.site.title.as_str()
    } else {
        config.site.author.as_str()
    };
    let entries = feed
        .entries
        .iter()
        .enumerate()
        .map(|(i, post)| entry(post, site_author, texts, i))
        .collect();
    let mut links = vec![
        link(feed.home_url.clone(), "alternate", Some("text/html")),
        link(
            super::self_url(feed, Format::Atom),
            "self",
            Some(Format::Atom.media_type()),
        ),
    ];
    links.extend(super::hubs(config, feed).map(|hub| link(hub.to_string(), "hub", None)));
    links.extend(
        super::history_links(feed, Format::Atom)
            .into_iter()
            .map(|(rel, href)| link(href, rel, Some(Format::Atom.media_type()))),
    );
    let mut namespaces = BTreeMap::new();
    if feed.page.is_archive() {
        namespaces.insert("fh".to_string(), HISTORY_NS.to_string());
    }
    let atom = AtomFeed {
        title: Text::plain(feed.title.clone()),
        id: format!("{}{}", feed.id_url, Format::Atom.file_name()),
        updated: feed.updated,
        authors: vec![person(site_author)],
        generator: Some(Generator {
            value: "feedsmith".to_string(),
            ..Generator::default()
        }),
        links,
        subtitle: (!feed.description.is_empty()).then(|| Text::plain(feed.description.clone())),
        entries,
        lang: Some(feed.language.clone()),
        namespaces,
        ..AtomFeed::default()
    };
    let mut out = Vec::new();
    atom.write_with_config(
        &mut out,
        WriteConfig {
            write_document_declaration: true,
            indent_size: Some(2),
        },
    )
    .map_err(|e| RenderError::Atom(e.to_string()))?;
    out.push(b'\n');
    if feed.page.is_archive() {
        out = super::mark_archive(out, "<feed", "\n  ");
    }
    Ok(out)
}

/// Media type of an image from its extension (enclosures should say what they link).
pub(super) fn image_type(url: &str) -> &'static str {
    let lower = url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match lower.rsplit('.').next().unwrap_or_default() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "avif" => "image/avif",
        _ => "image/jpeg",
    }
}
