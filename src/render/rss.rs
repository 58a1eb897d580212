//! RSS 2.0 through the `rss` crate, with `content:encoded`, `dc:creator`, `atom:link
//! rel="self"` (and `rel="hub"` per WebSub hub), `media:content`/`media:thumbnail` for
//! banners, and RFC 5005 history as `atom:link`s (`prev-archive`, `next-archive`,
//! `current`) with `fh:archive` on archive pages (RFC 5005 appendix B).

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::{Extension, ExtensionMap};
use rss::{Category, Channel, Guid, Item};

use super::{Format, HISTORY_NS, RenderError, Texts};
use crate::config::Config;
use crate::feed::Feed;
use crate::post::Post;

const MEDIA_NS: &str = "http://search.yahoo.com/mrss/";

fn media(name: &str, url: &str, medium: bool) -> Extension {
    let mut attrs = BTreeMap::new();
    attrs.insert("url".to_string(), url.to_string());
    if medium {
        attrs.insert("medium".to_string(), "image".to_string());
    }
    Extension {
        name: format!("media:{name}"),
        value: None,
        attrs,
        children: BTreeMap::new(),
    }
}

/// One entry: title, link, escaped summary, content, dates, id, categories and tags,
/// authors (Dublin Core) and the banner (Media RSS).
fn item(config: &Config, post: &Post, texts: &Texts, i: usize) -> Item {
    let mut extensions = ExtensionMap::new();
    if let Some(banner) = &post.banner {
        let mut m = BTreeMap::new();
        m.insert("content".to_string(), vec![media("content", banner, true)]);
        m.insert(
            "thumbnail".to_string(),
            vec![media("thumbnail", banner, false)],
        );
        extensions.insert("media".to_string(), m);
    }
    let creators = if post.authors.is_empty() && !config.site.author.is_empty() {
        vec![config.site.author.clone()]
    } else {
        post.authors.clone()
    };
    let categories = post
        .categories
        .iter()
        .chain(&post.tags)
        .map(|name| Category {
            name: name.clone(),
            domain: None,
        })
        .collect();
    Item {
        title: Some(post.title.clone()),
        link: Some(post.url.clone()),
        // RSS readers take `description` as HTML: the plain-text summary is escaped.
        description: Some(super::escape(texts.summary(i))),
        content: texts.content(i).map(str::to_string),
        pub_date: Some(post.date.to_rfc2822()),
        guid: Some(Guid {
            value: post.id.clone(),
            permalink: post.id == post.url,
        }),
        categories,
        dublin_core_ext: (!creators.is_empty()).then(|| DublinCoreExtension {
            creators,
            ..DublinCoreExtension::default()
        }),
        extensions,
        ..Item::default()
    }
}

/// Who an item names as `dc:creator`: its authors, or the site's author when it names none.
fn creators<'a>(config: &'a Config, post: &'a Post) -> &'a [String] {
    if post.authors.is_empty() && !config.site.author.is_empty() {
        std::slice::from_ref(&config.site.author)
    } else {
        &post.authors
    }
}

/// Namespace of `content:encoded`, which the crate declares when an item carries content.
const CONTENT_NS: &str = "http://purl.org/rss/1.0/modules/content/";

/// The end of the crate's pretty channel: items go right before it.
const CHANNEL_END: &[u8] = b"\n  </channel>\n</rss>";

/// Renders the channel without its items through the crate (every namespace the items need
/// declared), then writes the items after its last element with [`write_item`], byte for
/// byte what the crate writes for them: the crate's per-item structs and string copies cost
/// more than the rest of the document, and an entry is rendered once per feed it is in.
pub(super) fn render(config: &Config, feed: &Feed, texts: &Texts) -> Result<Vec<u8>, RenderError> {
    let mut channel = channel(config, feed, Vec::new());
    if (0..feed.entries.len()).any(|i| texts.content(i).is_some()) {
        channel
            .namespaces
            .insert("content".to_string(), CONTENT_NS.to_string());
    }
    if feed.entries.iter().any(|p| !creators(config, p).is_empty()) {
        channel.namespaces.insert(
            "dc".to_string(),
            rss::extension::dublincore::NAMESPACE.to_string(),
        );
    }
    let mut shell = write(&channel, feed)?;
    if feed.entries.is_empty() {
        return Ok(shell);
    }
    // `write` ends the document with a newline of ours.
    let Some(head) = shell
        .strip_suffix(b"\n")
        .and_then(|s| s.strip_suffix(CHANNEL_END))
    else {
        return render_plain(config, feed, texts);
    };
    let head = head.len();
    let items: usize = (0..feed.entries.len())
        .map(|i| 1024 + texts.summary(i).len() + texts.content(i).map_or(0, str::len))
        .sum();
    let mut out = Vec::with_capacity(shell.len() + items);
    out.extend_from_slice(&shell[..head]);
    for (i, post) in feed.entries.iter().enumerate() {
        write_item(&mut out, config, post, texts, i);
    }
    shell.drain(..head);
    out.extend_from_slice(&shell);
    Ok(out)
}

/// One `<item>` as the crate's pretty writer puts it in a channel (indent 2, the item at
/// depth 2): the elements of [`item`], in the crate's order, text escaped as quick-xml
/// escapes it, `description` and `content:encoded` as CDATA.
fn write_item(out: &mut Vec<u8>, config: &Config, post: &Post, texts: &Texts, i: usize) {
    const IN: &[u8] = b"\n      ";
    let element = |out: &mut Vec<u8>, name: &str, text: &str| {
        out.extend_from_slice(IN);
        out.push(b'<');
        out.extend_from_slice(name.as_bytes());
        out.push(b'>');
        super::push_escaped(out, text);
        out.extend_from_slice(b"</");
        out.extend_from_slice(name.as_bytes());
        out.push(b'>');
    };
    out.extend_from_slice(b"\n    <item>");
    element(out, "title", &post.title);
    element(out, "link", &post.url);
    // `escape`d text holds no `>`, so one CDATA section always.
    out.extend_from_slice(b"\n      <description><![CDATA[");
    super::push_escaped_html(out, texts.summary(i));
    out.extend_from_slice(b"]]></description>");
    for name in post.categories.iter().chain(&post.tags) {
        element(out, "category", name);
    }
    out.extend_from_slice(b"\n      <guid");
    if post.id != post.url {
        out.extend_from_slice(b" isPermaLink=\"false\"");
    }
    out.push(b'>');
    super::push_escaped(out, &post.id);
    out.extend_from_slice(b"</guid>");
    element(out, "pubDate", &post.date.to_rfc2822());
    if let Some(content) = texts.content(i) {
        out.extend_from_slice(b"\n      <content:encoded>");
        super::push_cdata(out, content);
        out.extend_from_slice(b"</content:encoded>");
    }
    if let Some(banner) = &post.banner {
        // `media` extensions by name (content, thumbnail), attributes by name.
        out.extend_from_slice(b"\n      <media:content medium=\"image\" url=\"");
        super::push_escaped(out, banner);
        out.extend_from_slice(b"\">\n      </media:content>\n      <media:thumbnail url=\"");
        super::push_escaped(out, banner);
        out.extend_from_slice(b"\">\n      </media:thumbnail>");
    }
    for creator in creators(config, post) {
        element(out, "dc:creator", creator);
    }
    out.extend_from_slice(b"\n    </item>");
}

/// The whole channel through the crate, items included: what [`render`] must equal, and
/// what it falls back to should the crate's output ever end otherwise.
pub(super) fn render_plain(
    config: &Config,
    feed: &Feed,
    texts: &Texts,
) -> Result<Vec<u8>, RenderError> {
    let items = feed
        .entries
        .iter()
        .enumerate()
        .map(|(i, post)| item(config, post, texts, i))
        .collect();
    write(&channel(config, feed, items), feed)
}

/// The channel of `feed` with `items`.
fn channel(config: &Config, feed: &Feed, items: Vec<Item>) -> Channel {
    let mut namespaces = BTreeMap::new();
    if feed.entries.iter().any(|p| p.banner.is_some()) {
        namespaces.insert("media".to_string(), MEDIA_NS.to_string());
    }
    if feed.page.is_archive() {
        namespaces.insert("fh".to_string(), HISTORY_NS.to_string());
    }
    let mut links = vec![Link {
        href: super::self_url(feed, Format::Rss),
        rel: "self".to_string(),
        mime_type: Some(Format::Rss.media_type().to_string()),
        ..Link::default()
    }];
    links.extend(super::hubs(config, feed).map(|hub| Link {
        href: hub.to_string(),
        rel: "hub".to_string(),
        ..Link::default()
    }));
    links.extend(
        super::history_links(feed, Format::Rss)
            .into_iter()
            .map(|(rel, href)| Link {
                href,
                rel: rel.to_string(),
                mime_type: Some(Format::Rss.media_type().to_string()),
                ..Link::default()
            }),
    );
    Channel {
        title: feed.title.clone(),
        link: feed.home_url.clone(),
        // Plain text in a field readers take as HTML: escaped.
        description: super::escape(if feed.description.is_empty() {
            &feed.title
        } else {
            &feed.description
        }),
        language: Some(feed.language.clone()),
        last_build_date: Some(feed.updated.to_rfc2822()),
        pub_date: Some(feed.updated.to_rfc2822()),
        generator: Some("feedsmith".to_string()),
        docs: Some("https://www.rssboard.org/rss-specification".to_string()),
        categories: (!feed.name.is_empty())
            .then(|| Category {
                name: feed.name.clone(),
                domain: None,
            })
            .into_iter()
            .collect(),
        atom_ext: Some(AtomExtension { links }),
        items,
        namespaces,
        ..Channel::default()
    }
}

/// The crate's pretty XML of `channel`, with a final newline and, on archive pages,
/// `fh:archive`.
fn write(channel: &Channel, feed: &Feed) -> Result<Vec<u8>, RenderError> {
    // The crate writes its own XML declaration.
    let mut out = Vec::new();
    channel
        .pretty_write_to(&mut out, b' ', 2)
        .map_err(|e| RenderError::Rss(e.to_string()))?;
    out.push(b'\n');
    if feed.page.is_archive() {
        out = super::mark_archive(out, "<channel", "\n    ");
    }
    Ok(out)
}
