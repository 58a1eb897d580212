//! The HTML allowlist. Every post body passes through `clean` before any feed format sees
//! it (unless `content.sanitize = false`, for fully trusted content). What is kept is listed
//! here and nowhere else; everything not listed is unwrapped (its text stays) or, for the
//! elements in [`REMOVED`], dropped with its content. The policy follows what careful feed
//! readers apply (Miniflux, NetNewsWire, Feedbin) and what the W3C Feed Validation Service
//! accepts without a security warning:
//!
//! - no scripts, styles, forms, embeds, `on*` attributes, or `style` beyond `text-align` on
//!   table cells (pulldown-cmark's column alignment);
//! - URLs only `http`/`https` (and `mailto` in links), every one absolute: relative URLs are
//!   resolved against the post (`/x` against the site root); `javascript:`, `vbscript:` and
//!   `data:` are dropped, `data:image` too (readers block it, and it would carry the image
//!   bytes in every feed that shows the post);
//! - `iframe` only from `content.allowed_iframe_hosts`, over https, with `sandbox`;
//! - links get `rel="noopener"`.
//!
//! Parsing is html5ever's (the HTML standard's algorithm, as browsers parse), through
//! `ammonia`, which walks the tree iteratively: no stack overflow on deep nesting.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use ammonia::{Builder, UrlRelative};
use url::Url;

use crate::text::{absolutize, map_srcset};

/// Kept elements and the attributes each keeps (besides [`GENERIC_ATTRIBUTES`]).
pub const TAGS: &[(&str, &[&str])] = &[
    // Text.
    ("a", &["href", "hreflang"]),
    ("abbr", &[]),
    ("b", &[]),
    ("bdi", &[]),
    ("bdo", &[]),
    ("br", &[]),
    ("cite", &[]),
    ("code", &[]),
    ("data", &["value"]),
    ("del", &["cite", "datetime"]),
    ("dfn", &[]),
    ("em", &[]),
    ("i", &[]),
    ("ins", &["cite", "datetime"]),
    ("kbd", &[]),
    ("mark", &[]),
    ("q", &["cite"]),
    ("rp", &[]),
    ("rt", &[]),
    ("ruby", &[]),
    ("s", &[]),
    ("samp", &[]),
    ("small", &[]),
    ("span", &[]),
    ("strike", &[]),
    ("strong", &[]),
    ("sub", &[]),
    ("sup", &[]),
    ("time", &["datetime"]),
    ("tt", &[]),
    ("u", &[]),
    ("var", &[]),
    ("wbr", &[]),
    // Blocks.
    ("address", &[]),
    ("article", &[]),
    ("aside", &[]),
    ("blockquote", &["cite"]),
    ("center", &[]),
    ("dd", &[]),
    ("details", &["open"]),
    ("div", &[]),
    ("dl", &[]),
    ("dt", &[]),
    ("figcaption", &[]),
    ("figure", &[]),
    ("footer", &[]),
    ("h1", &[]),
    ("h2", &[]),
    ("h3", &[]),
    ("h4", &[]),
    ("h5", &[]),
    ("h6", &[]),
    ("header", &[]),
    ("hgroup", &[]),
    ("hr", &[]),
    ("li", &["value"]),
    ("main", &[]),
    ("nav", &[]),
    ("ol", &["start", "reversed", "type"]),
    ("p", &[]),
    ("pre", &[]),
    ("section", &[]),
    ("summary", &[]),
    ("ul", &[]),
    // Tables (`style` is reduced to `text-align`, see `filter_style`).
    ("caption", &[]),
    ("col", &["span"]),
    ("colgroup", &["span"]),
    ("table", &[]),
    ("tbody", &[]),
    ("td", &["colspan", "rowspan", "headers", "style"]),
    ("tfoot", &[]),
    (
        "th",
        &["colspan", "rowspan", "headers", "scope", "abbr", "style"],
    ),
    ("thead", &[]),
    ("tr", &[]),
    // Media, with absolute http(s) URLs only.
    ("img", &["src", "srcset", "sizes", "alt", "width", "height"]),
    ("picture", &[]),
    (
        "source",
        &["src", "srcset", "sizes", "type", "media", "width", "height"],
    ),
    (
        "video",
        &[
            "src",
            "poster",
            "controls",
            "width",
            "height",
            "loop",
            "muted",
            "preload",
            "playsinline",
        ],
    ),
    ("audio", &["src", "controls", "loop", "muted", "preload"]),
    ("track", &["src", "kind", "srclang", "label", "default"]),
];

/// Attributes kept on every kept element.
pub const GENERIC_ATTRIBUTES: &[&str] = &["title", "lang", "dir"];

/// Elements dropped together with everything inside them.
pub const REMOVED: &[&str] = &[
    "script", "style", "noscript", "template", "object", "embed", "applet", "param", "form",
    "input", "button", "select", "textarea", "datalist", "output", "base", "meta", "link", "title",
    "frame", "frameset", "noframes", "svg", "iframe",
];

/// Kept only when its host is in `content.allowed_iframe_hosts`.
const IFRAME_ATTRIBUTES: &[&str] = &["src", "width", "height", "title", "allowfullscreen"];
/// Given to every kept iframe: scripts run in the embed's own origin, and it cannot navigate
/// the reader's page.
const IFRAME_SANDBOX: &str = "allow-scripts allow-same-origin allow-popups";

/// Where the body being cleaned lives, for resolving its relative URLs.
struct Context {
    post_url: Url,
    site: Url,
    iframe_hosts: Vec<String>,
}

thread_local! {
    /// The body being cleaned on this thread (the attribute filter must be `'static`).
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
    /// Built once per thread: without iframes, and with iframes from allowed hosts.
    static BUILDERS: [Builder<'static>; 2] = [builder(false), builder(true)];
}

fn builder(iframes: bool) -> Builder<'static> {
    let mut tags: HashSet<&'static str> = TAGS.iter().map(|(tag, _)| *tag).collect();
    let mut tag_attributes: HashMap<&'static str, HashSet<&'static str>> = TAGS
        .iter()
        .map(|(tag, attributes)| (*tag, attributes.iter().copied().collect()))
        .collect();
    let mut removed: HashSet<&'static str> = REMOVED.iter().copied().collect();
    let mut b = Builder::empty();
    if iframes {
        removed.remove("iframe");
        tags.insert("iframe");
        tag_attributes.insert("iframe", IFRAME_ATTRIBUTES.iter().copied().collect());
        b.set_tag_attribute_value("iframe", "sandbox", IFRAME_SANDBOX);
    }
    b.tags(tags)
        .clean_content_tags(removed)
        .tag_attributes(tag_attributes)
        .generic_attributes(GENERIC_ATTRIBUTES.iter().copied().collect())
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .url_relative(UrlRelative::PassThrough)
        .link_rel(Some("noopener"))
        .strip_comments(true)
        .attribute_filter(|element, attribute, value| {
            CONTEXT.with(|context| {
                let context = context.borrow();
                filter_attribute(context.as_ref()?, element, attribute, value)
            })
        });
    b
}

/// Deepest element nesting a body may have; HTML parsing costs grow with depth times
/// elements (50,000 nested `<div>`s take seconds), and no real post nests this deep.
pub const MAX_NESTING: usize = 512;

/// Elements that never nest or that the parser closes by itself (`<p>`, `<li>` left open).
const SELF_CLOSING: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "rt", "rp",
];

/// True when `html` nests elements deeper than [`MAX_NESTING`] (a linear scan of its tags:
/// start tags less end tags, void and self-closed elements not counted).
pub fn too_deep(html: &str) -> bool {
    let bytes = html.as_bytes();
    // Fewer tags than the limit cannot nest past it (the common case, counted fast).
    if bytes.iter().map(|&b| usize::from(b == b'<')).sum::<usize>() <= MAX_NESTING {
        return false;
    }
    let mut depth: usize = 0;
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'<') {
        i += offset + 1;
        let closing = bytes.get(i) == Some(&b'/');
        let start = i + usize::from(closing);
        let end = bytes[start..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric() && *b != b'-')
            .map_or(bytes.len(), |n| start + n);
        if end == start || !bytes[start].is_ascii_alphabetic() {
            continue;
        }
        let name = &html[start..end];
        if SELF_CLOSING.iter().any(|t| t.eq_ignore_ascii_case(name)) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else {
            let tag_end = bytes[end..].iter().position(|&b| b == b'>');
            let self_closed = tag_end.is_some_and(|n| n > 0 && bytes[end + n - 1] == b'/');
            if !self_closed {
                depth += 1;
                if depth > MAX_NESTING {
                    return true;
                }
            }
        }
    }
    false
}

/// Cleans `html` (a post body) by the allowlist, resolving relative URLs against `post_url`
/// (`/x` against `site`). Deterministic; never fails.
pub fn clean(html: &str, post_url: &Url, site: &Url, iframe_hosts: &[String]) -> String {
    CONTEXT.with(|context| {
        *context.borrow_mut() = Some(Context {
            post_url: post_url.clone(),
            site: site.clone(),
            iframe_hosts: iframe_hosts.to_vec(),
        })
    });
    let iframes = !iframe_hosts.is_empty();
    let cleaned = BUILDERS.with(|builders| builders[usize::from(iframes)].clean(html).to_string());
    CONTEXT.with(|context| *context.borrow_mut() = None);
    if iframes && cleaned.contains("<iframe") {
        drop_empty_iframes(&cleaned)
    } else {
        cleaned
    }
}

/// An iframe whose `src` was refused (host not allowed, not https) goes whole.
fn drop_empty_iframes(html: &str) -> String {
    use lol_html::{RewriteStrSettings, element, rewrite_str};
    let settings = RewriteStrSettings {
        element_content_handlers: vec![element!("iframe:not([src])", |el| {
            el.remove();
            Ok(())
        })],
        ..RewriteStrSettings::new()
    };
    rewrite_str(html, settings).unwrap_or_default()
}

/// Checks one URL-bearing or styled attribute that ammonia's allowlist let through: makes
/// URLs absolute and keeps only the schemes the attribute may have.
fn filter_attribute<'u>(
    context: &Context,
    element: &str,
    attribute: &str,
    value: &'u str,
) -> Option<Cow<'u, str>> {
    match attribute {
        "href" | "src" | "poster" | "cite" => {
            let url = resolve(context, value)?;
            let allowed = match (element, attribute) {
                ("a", "href") => matches!(url.scheme(), "http" | "https" | "mailto"),
                ("iframe", "src") => {
                    url.scheme() == "https"
                        && url.host_str().is_some_and(|host| {
                            let host = host.to_ascii_lowercase();
                            context.iframe_hosts.contains(&host)
                        })
                }
                _ => matches!(url.scheme(), "http" | "https"),
            };
            allowed.then(|| Cow::Owned(String::from(url)))
        }
        "srcset" => map_srcset(value, |url| {
            resolve(context, url)
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .map(String::from)
        })
        .map(Cow::Owned),
        "style" => filter_style(value).map(Cow::Owned),
        _ => Some(Cow::Borrowed(value)),
    }
}

/// `value` as an absolute URL: relative ones resolved against the post, `/x` against the
/// site root.
fn resolve(context: &Context, value: &str) -> Option<Url> {
    let absolute = absolutize(value, &context.post_url, &context.site)?;
    Url::parse(&absolute).ok()
}

/// Keeps only `text-align` with a keyword value (table column alignment); `None` when
/// nothing is left.
fn filter_style(style: &str) -> Option<String> {
    let kept: Vec<String> = style
        .split(';')
        .filter_map(|declaration| {
            let (property, value) = declaration.split_once(':')?;
            let value = value.trim().to_ascii_lowercase();
            (property.trim().eq_ignore_ascii_case("text-align")
                && matches!(value.as_str(), "left" | "right" | "center" | "justify"))
            .then(|| format!("text-align: {value}"))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// What `clean` removes from `html`, for `check --verbose`: one line per kind of removal,
/// with a count (`<script> removed with its content (2)`), in a stable order.
pub fn removals(html: &str, post_url: &Url, site: &Url, iframe_hosts: &[String]) -> Vec<String> {
    use lol_html::{RewriteStrSettings, element, rewrite_str};
    let context = Context {
        post_url: post_url.clone(),
        site: site.clone(),
        iframe_hosts: iframe_hosts.to_vec(),
    };
    let found: RefCell<BTreeMap<String, usize>> = RefCell::new(BTreeMap::new());
    let note = |what: String| *found.borrow_mut().entry(what).or_default() += 1;
    let iframes = !iframe_hosts.is_empty();
    let settings = RewriteStrSettings {
        element_content_handlers: vec![element!("*", |el| {
            let tag = el.tag_name();
            if iframes && tag == "iframe" {
                let src = el.get_attribute("src").unwrap_or_default();
                if filter_attribute(&context, "iframe", "src", &src).is_none() {
                    note(format!(
                        "<iframe> removed (its host is not in content.allowed_iframe_hosts or it is not https): `{src}`"
                    ));
                }
                return Ok(());
            }
            if REMOVED.contains(&tag.as_str()) {
                note(format!("<{tag}> removed with its content"));
                return Ok(());
            }
            let Some((_, allowed)) = TAGS.iter().find(|(t, _)| *t == tag) else {
                note(format!(
                    "<{tag}> unwrapped (unknown or not allowed; its text stays)"
                ));
                return Ok(());
            };
            for attribute in el.attributes() {
                let name = attribute.name();
                let value = attribute.value();
                if matches!(name.as_str(), "class" | "id") {
                    // Presentational hooks, dropped silently (pulldown-cmark's footnotes
                    // have them too).
                } else if !allowed.contains(&name.as_str())
                    && !GENERIC_ATTRIBUTES.contains(&name.as_str())
                {
                    note(format!("attribute `{name}` removed from <{tag}>"));
                } else {
                    let kept = filter_attribute(&context, &tag, &name, &value);
                    if name == "style" && kept.as_deref() != Some(value.as_str()) {
                        note(format!("style `{value}` on <{tag}> reduced to text-align"));
                    } else if kept.is_none() {
                        note(format!("URL removed from `{name}` of <{tag}>: `{value}`"));
                    }
                }
            }
            Ok(())
        })],
        ..RewriteStrSettings::new()
    };
    // Only the handlers matter; a rewriting error leaves what was found so far.
    let _ = rewrite_str(html, settings);
    found
        .into_inner()
        .into_iter()
        .map(|(what, n)| {
            if n > 1 {
                format!("{what} ({n}×)")
            } else {
                what
            }
        })
        .collect()
}
