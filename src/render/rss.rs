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

pub(super) fn render(config: &Config, feed: &Feed, texts: &Texts) -> Result<Vec<u8>, RenderError> {
    let items = feed
        .entries
        .iter()
        .enumerate()
        .map(|(i, post)| item(config, post, texts, i))
        .collect();
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
    let channel = Channel {
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
    };
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
