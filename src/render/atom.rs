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

/// The author of entries that name none, and of the feed.
fn site_author(config: &Config) -> &str {
    if config.site.author.is_empty() {
        config.site.title.as_str()
    } else {
        config.site.author.as_str()
    }
}

/// The end of the crate's pretty feed: entries go right before it.
const FEED_END: &[u8] = b"\n</feed>";

/// Renders the feed without its entries through the crate, then writes the entries after
/// its last element with [`write_entry`], byte for byte what the crate writes for them (see
/// `rss::render`).
pub(super) fn render(config: &Config, feed: &Feed, texts: &Texts) -> Result<Vec<u8>, RenderError> {
    let mut shell = write(&atom(config, feed, Vec::new()), feed)?;
    if feed.entries.is_empty() {
        return Ok(shell);
    }
    // `write` ends the document with a newline of ours.
    let Some(head) = shell
        .strip_suffix(b"\n")
        .and_then(|s| s.strip_suffix(FEED_END))
    else {
        return render_plain(config, feed, texts);
    };
    let head = head.len();
    let entries: usize = (0..feed.entries.len())
        .map(|i| 1024 + texts.summary(i).len() + texts.content(i).map_or(0, str::len))
        .sum();
    let mut out = Vec::with_capacity(shell.len() + entries);
    out.extend_from_slice(&shell[..head]);
    let site_author = site_author(config);
    for (i, post) in feed.entries.iter().enumerate() {
        write_entry(&mut out, post, site_author, texts, i);
    }
    shell.drain(..head);
    out.extend_from_slice(&shell);
    Ok(out)
}

/// One `<entry>` as the crate's pretty writer puts it in a feed (indent 2, the entry at
/// depth 1): the elements of [`entry`], in the crate's order, text and attribute values
/// escaped as quick-xml escapes them.
fn write_entry(out: &mut Vec<u8>, post: &Post, site_author: &str, texts: &Texts, i: usize) {
    let element = |out: &mut Vec<u8>, name: &str, text: &str| {
        out.extend_from_slice(b"\n    <");
        out.extend_from_slice(name.as_bytes());
        out.push(b'>');
        super::push_escaped(out, text);
        out.extend_from_slice(b"</");
        out.extend_from_slice(name.as_bytes());
        out.push(b'>');
    };
    let link = |out: &mut Vec<u8>, href: &str, rel: &str, mime: &str| {
        out.extend_from_slice(b"\n    <link href=\"");
        super::push_escaped(out, href);
        out.extend_from_slice(b"\" rel=\"");
        out.extend_from_slice(rel.as_bytes());
        out.extend_from_slice(b"\" type=\"");
        out.extend_from_slice(mime.as_bytes());
        out.extend_from_slice(b"\"/>");
    };
    out.extend_from_slice(b"\n  <entry>");
    element(out, "title", &post.title);
    element(out, "id", &post.id);
    element(out, "updated", &post.updated.to_rfc3339());
    let site = [site_author];
    let authors: &mut dyn Iterator<Item = &str> = if post.authors.is_empty() {
        &mut site.iter().copied()
    } else {
        &mut post.authors.iter().map(String::as_str)
    };
    for name in authors {
        out.extend_from_slice(b"\n    <author>\n      <name>");
        super::push_escaped(out, name);
        out.extend_from_slice(b"</name>\n    </author>");
    }
    for term in post.categories.iter().chain(&post.tags) {
        out.extend_from_slice(b"\n    <category term=\"");
        super::push_escaped(out, term);
        out.extend_from_slice(b"\"/>");
    }
    link(out, &post.url, "alternate", "text/html");
    if let Some(banner) = &post.banner {
        link(out, banner, "enclosure", image_type(banner));
    }
    element(out, "published", &post.date.to_rfc3339());
    element(out, "summary", texts.summary(i));
    if let Some(html) = texts.content(i) {
        out.extend_from_slice(b"\n    <content type=\"html\">");
        super::push_escaped(out, html);
        out.extend_from_slice(b"</content>");
    }
    out.extend_from_slice(b"\n  </entry>");
}

/// The whole feed through the crate, entries included: what [`render`] must equal, and
/// what it falls back to should the crate's output ever end otherwise.
pub(super) fn render_plain(
    config: &Config,
    feed: &Feed,
    texts: &Texts,
) -> Result<Vec<u8>, RenderError> {
    let site_author = site_author(config);
    let entries = feed
        .entries
        .iter()
        .enumerate()
        .map(|(i, post)| entry(post, site_author, texts, i))
        .collect();
    write(&atom(config, feed, entries), feed)
}

/// The Atom feed of `feed` with `entries`.
fn atom(config: &Config, feed: &Feed, entries: Vec<Entry>) -> AtomFeed {
    let site_author = site_author(config);
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
    AtomFeed {
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
    }
}

/// The crate's pretty XML of `atom`, with a final newline and, on archive pages,
/// `fh:archive`.
fn write(atom: &AtomFeed, feed: &Feed) -> Result<Vec<u8>, RenderError> {
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
