//! The markup of the pages, written with `maud`: every value is escaped on output
//! (`(expr)`); `PreEscaped` is used only for the constant stylesheet and script, for
//! filter rules made of numbers, and for a tag list this module wrote (with `maud`) for the
//! previous build and `Site::tag_list` kept.

use std::fmt::Write as _;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::words::{self, Words};
use super::{
    DIRECTORY_ENTRIES, FILTER_FROM, SCRIPT, Site, encoded_dir, iri_dir, letter_groups, relative,
};
use crate::feed::{Feed, FeedKind};
use crate::post::Post;
use crate::render::{Format, OPML_PATH};

const STYLE: &str = include_str!("style.css");

/// Where links on one page start from.
struct Page<'s, 'a> {
    site: &'s Site<'a>,
    /// Directory of the page (empty for the root), as an IRI path (`iri_dir`).
    here: String,
    /// The same, percent-encoded.
    here_encoded: &'s str,
}

impl<'s, 'a> Page<'s, 'a> {
    fn new(site: &'s Site<'a>, feed: Option<&'s Feed>) -> Self {
        Page {
            site,
            here: feed.map(|f| iri_dir(&f.dir)).unwrap_or_default(),
            here_encoded: feed.map_or("", |f| encoded_dir(site.config, f)),
        }
    }

    /// A link to a site path in IRI form: on `server.public_url` when it was set, else
    /// relative to this page.
    fn to(&self, path: &str) -> String {
        let server = &self.site.config.server;
        if server.public_url_set {
            format!("{}{path}", server.public_url)
        } else {
            relative(&self.here, path)
        }
    }

    fn dir(&self, feed: &Feed) -> String {
        self.to(&iri_dir(&feed.dir))
    }

    fn file(&self, feed: &Feed, format: Format) -> String {
        self.to(&format!("{}{}", iri_dir(&feed.dir), format.file_name()))
    }

    /// A feed file's URL fully percent-encoded, for `<link rel="alternate">`: feed readers
    /// and extensions parse it with whatever URL code they have.
    fn discovery(&self, feed: &Feed, format: Format) -> String {
        if self.site.config.server.public_url_set {
            format!("{}{}", feed.dir_url, format.file_name())
        } else {
            relative(
                self.here_encoded,
                &format!(
                    "{}{}",
                    encoded_dir(self.site.config, feed),
                    format.file_name()
                ),
            )
        }
    }

    fn root(&self) -> String {
        self.to("")
    }
}

fn media_type(format: Format) -> &'static str {
    format.content_type().split(';').next().unwrap_or_default()
}

fn label(format: Format, short: bool) -> &'static str {
    match format {
        Format::Rss => "RSS",
        Format::Atom => "Atom",
        Format::Json if short => "JSON",
        Format::Json => "JSON Feed",
    }
}

/// Anchor prefix of a language's sections on the directory (`zh-`; empty on a
/// single-language site; the language's position when its tag is not a plain one).
fn anchor(site: &Site<'_>, lang: &str, position: usize) -> String {
    if !site.multilingual {
        String::new()
    } else if !lang.is_empty() && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        format!("{lang}-")
    } else {
        format!("l{position}-")
    }
}

/// The document around a page's content.
fn layout(
    lang: &str,
    words: &Words,
    title: &str,
    description: &str,
    head: Markup,
    extra_style: &str,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No icon: browsers would ask the server for /favicon.ico on every visit.
                link rel="icon" href="data:,";
                title { (title) }
                @if !description.is_empty() {
                    meta name="description" content=(description);
                }
                (head)
                style { (PreEscaped(STYLE)) (PreEscaped(extra_style)) }
            }
            body data-copy=(words.copy) data-copied=(words.copied) {
                (body)
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// `<link rel="alternate">` for each format of `feed`.
fn alternates(p: &Page<'_, '_>, feed: &Feed, hreflang: bool) -> Markup {
    html! {
        @for format in Format::ALL {
            link rel="alternate" type=(media_type(format))
                title={ (feed.title) " (" (label(format, false)) ")" }
                hreflang=[hreflang.then_some(&feed.language)]
                href=(p.discovery(feed, format));
        }
    }
}

/// The subscribe links of a feed: buttons, or small links in a directory row.
fn subscribe(p: &Page<'_, '_>, feed: &Feed, buttons: bool) -> Markup {
    html! {
        @for format in Format::ALL {
            // The page script finds RSS links by their type (a copy button for each).
            a class=[buttons.then_some("b")] href=(p.file(feed, format))
                type=[(buttons || format == Format::Rss).then(|| media_type(format))] {
                (label(format, !buttons))
            }
            " "
        }
    }
}

/// "12 posts · 19 November 2024" (with `<time>` unless `plain`: a directory row, one of
/// thousands).
fn summary_line(words: &Words, feed: &Feed, plain: bool) -> Markup {
    html! {
        (words.posts(feed.total))
        @if let Some(newest) = feed.entries.first() {
            " · "
            @if plain {
                (words::date(&feed.language, newest.date))
            } @else {
                time datetime=(words::iso_date(newest.date)) { (words::date(&feed.language, newest.date)) }
            }
        }
    }
}

/// One entry of a feed as a person skims it.
fn entry(p: &Page<'_, '_>, words: &Words, feed: &Feed, post: &Post) -> Markup {
    let authors = if post.authors.is_empty() {
        p.site.config.site.author.clone()
    } else {
        post.authors.join(", ")
    };
    let summary = post.summary.as_str();
    html! {
        article.e {
            @if let Some(banner) = &post.banner {
                // Decorative: the title beside it names the post (so `alt` is empty); the
                // size attributes reserve its box before it loads.
                img.th src=(banner) alt="" loading="lazy" decoding="async" width="160" height="90";
            }
            h3 { a href=(post.url) { (post.title) } }
            p.m {
                time datetime=(words::iso_date(post.date)) { (words::date(&feed.language, post.date)) }
                @if !authors.is_empty() { " · " (authors) }
            }
            @if !summary.is_empty() { p { (summary) } }
            @if !post.tags.is_empty() {
                ul.tl aria-label=(words.tags) {
                    @for tag in &post.tags {
                        li {
                            @match p.site.tag_feed(&post.lang, tag) {
                                Some(target) => { a href=(p.dir(target)) { "#" (tag) } }
                                None => { span { "#" (tag) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The name a feed is listed under.
fn feed_name<'f>(words: &Words, feed: &'f Feed) -> &'f str {
    if feed.kind == FeedKind::Global {
        words.all_posts
    } else {
        &feed.name
    }
}

/// A heading at `level` (2 or 3).
fn heading(level: u8, id: &str, text: Markup) -> Markup {
    html! {
        @if level == 2 { h2 id=(id) { (text) } } @else { h3 id=(id) { (text) } }
    }
}

/// A directory row: name (to the preview page), size, newest date, subscribe links.
fn row(p: &Page<'_, '_>, words: &Words, feed: &Feed, class: Option<String>) -> Markup {
    html! {
        li class=[class] {
            a.n href=(p.dir(feed)) { (feed_name(words, feed)) }
            " "
            span.m { (summary_line(words, feed, true)) }
            " "
            span.s { (subscribe(p, feed, false)) }
        }
    }
}

/// The tag list of a language: by post count, with a filter box (JavaScript) and
/// first-letter links that filter through `:target` rules (no JavaScript needed).
fn tag_list(
    p: &Page<'_, '_>,
    words: &Words,
    id: &str,
    tags: &[&Feed],
    style: &mut String,
) -> Markup {
    if tags.len() < FILTER_FROM {
        return html! {
            ol.fl { @for feed in tags { (row(p, words, feed, None)) } }
        };
    }
    let names: Vec<&str> = tags.iter().map(|f| f.name.as_str()).collect();
    let (groups, labels) = letter_groups(&names, words.other);
    for i in 0..labels.len() {
        // The targeted letter shows its rows only, and is marked in the letter bar.
        let _ = write!(
            style,
            "#{id}-k{i}:target~ol>li:not(.k{i}){{display:none}}\
             #{id}-k{i}:target~nav a[href=\"#{id}-k{i}\"]{{background:var(--ac);color:var(--on)}}"
        );
    }
    let input = format!("{id}-q");
    html! {
        div.tg id=(id) data-matching=(words.matching) {
            div.flt role="search" hidden {
                label for=(input) { (words.filter) }
                input id=(input) type="search" autocomplete="off";
                output for=(input) aria-live="polite" {}
            }
            @for i in 0..labels.len() { span id={ (id) "-k" (i) } {} }
            nav.az aria-label=(words.by_letter) {
                a href={ "#" (id) } { (words.all) }
                @for (i, label) in labels.iter().enumerate() {
                    a href={ "#" (id) "-k" (i) } { (label) }
                }
            }
            ol.fl {
                @for (feed, group) in tags.iter().zip(&groups) {
                    (row(p, words, feed, Some(format!("k{group}"))))
                }
            }
        }
    }
}

/// Feeds of one kind in one language, by post count (then name).
fn by_count<'a>(site: &Site<'a>, lang: &str, kind: FeedKind) -> Vec<&'a Feed> {
    let mut feeds: Vec<&Feed> = site
        .feeds
        .iter()
        .filter(|f| f.kind == kind && f.language == lang)
        .map(|f| &**f)
        .collect();
    feeds.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.name.cmp(&b.name)));
    feeds
}

/// The directory: every feed, global ones first, then categories, then tags, grouped by
/// language on a multilingual site; on a single-language site also the newest entries of
/// the global feed (the root is that feed's directory).
pub(super) fn directory(site: &Site<'_>) -> Markup {
    let config = site.config;
    let lang = config.site.language.as_str();
    let words = words::words(lang);
    let p = Page::new(site, None);
    let globals: Vec<&Feed> = site
        .feeds
        .iter()
        .filter(|f| f.kind == FeedKind::Global)
        .map(|f| &**f)
        .collect();
    let anchors: Vec<String> = globals
        .iter()
        .enumerate()
        .map(|(position, global)| anchor(site, &global.language, position))
        .collect();
    let mut style = String::new();
    let level = if site.multilingual { 3 } else { 2 };
    let sections: Vec<Markup> = globals
        .iter()
        .zip(&anchors)
        .map(|(global, a)| {
            let lang = global.language.as_str();
            let w = words::words(lang);
            let categories = by_count(site, lang, FeedKind::Category);
            let tags = by_count(site, lang, FeedKind::Tag);
            html! {
                section id={ (a) "all" } {
                    (heading(level, &format!("{a}all-h"), html! { (w.all_posts) }))
                    div.card {
                        p.m { (summary_line(w, global, false)) }
                        p role="group" aria-label=(w.subscribe) { (subscribe(&p, global, true)) }
                        @if site.multilingual {
                            p { a href=(p.dir(global)) { (w.preview) } }
                        }
                    }
                    @if !site.multilingual {
                        @for post in global.entries.iter().take(DIRECTORY_ENTRIES) {
                            (entry(&p, w, global, post))
                        }
                    }
                }
                @if !categories.is_empty() {
                    section id={ (a) "categories" } {
                        (heading(level, &format!("{a}categories-h"), html! { (w.categories) }))
                        ol.fl { @for feed in &categories { (row(&p, w, feed, None)) } }
                    }
                }
                @if !tags.is_empty() {
                    section {
                        (heading(level, &format!("{a}tags-h"), html! { (w.tags) " (" (tags.len()) ")" }))
                        (PreEscaped(site.tag_list(&format!("{a}tags"), &mut style, |style| {
                            tag_list(&p, w, &format!("{a}tags"), &tags, style).into_string()
                        })))
                    }
                }
            }
        })
        .collect();
    let head = html! {
        @for global in &globals { (alternates(&p, global, site.multilingual)) }
        link rel="alternate" type="text/x-opml" title={ (config.site.title) " (OPML)" }
            href=(p.to(OPML_PATH));
    };
    let body = html! {
        header {
            h1 { (config.site.title) }
            @if !config.site.description.is_empty() { p.lead { (config.site.description) } }
            p {
                a.b.big href=(p.to(OPML_PATH)) type="text/x-opml" { (words.everything) }
                " "
                span.mu { (words.opml_note(site.feeds.len())) }
            }
            nav.toc aria-label=(if site.multilingual { words.languages } else { words.on_page }) {
                @if site.multilingual {
                    @for (global, a) in globals.iter().zip(&anchors) {
                        a href={ "#" (a) "lang" } lang=(global.language) {
                            (words::language_name(&global.language))
                        }
                    }
                } @else {
                    a href="#all" { (words.all_posts) }
                    @if site.feeds.iter().any(|f| f.kind == FeedKind::Category) {
                        a href="#categories" { (words.categories) }
                    }
                    @if site.feeds.iter().any(|f| f.kind == FeedKind::Tag) {
                        a href="#tags-h" { (words.tags) }
                    }
                }
            }
        }
        main {
            @for ((section, global), a) in sections.iter().zip(&globals).zip(&anchors) {
                @if site.multilingual {
                    section lang=(global.language) aria-labelledby={ (a) "lang" }
                        data-copy=(words::words(&global.language).copy)
                        data-copied=(words::words(&global.language).copied) {
                        h2 id={ (a) "lang" } { (words::language_name(&global.language)) }
                        (section)
                    }
                } @else {
                    (section)
                }
            }
        }
        footer {
            p.mu { (words.hint) }
            p #st.vh role="status" {}
        }
    };
    layout(
        lang,
        words,
        &config.site.title,
        &config.site.description,
        head,
        &style,
        body,
    )
}

/// The preview page of one feed, in the feed's directory.
pub(super) fn preview(site: &Site<'_>, feed: &Feed) -> Markup {
    let config = site.config;
    let words = words::words(&feed.language);
    let p = Page::new(site, Some(feed));
    let position = site
        .feeds
        .iter()
        .filter(|f| f.kind == FeedKind::Global)
        .position(|f| f.language == feed.language)
        .unwrap_or_default();
    let a = anchor(site, &feed.language, position);
    let root = p.root();
    let (title, section) = match feed.kind {
        FeedKind::Global => (words.all_posts.to_string(), None),
        FeedKind::Tag => (
            words.titled(words.tag, &feed.name),
            Some((words.tags, format!("{a}tags-h"))),
        ),
        FeedKind::Category => (
            words.titled(words.category, &feed.name),
            Some((words.categories, format!("{a}categories"))),
        ),
    };
    let body = html! {
        header {
            nav.crumb aria-label=(words.breadcrumb) {
                a href=(root) { (config.site.title) }
                @if site.multilingual {
                    a href={ (root) "#" (a) "lang" } { (words::language_name(&feed.language)) }
                }
                @if let Some((name, id)) = &section {
                    a href={ (root) "#" (id) } { (name) }
                }
            }
            h1 { (title) }
            p.m { (summary_line(words, feed, false)) }
        }
        main {
            div.card {
                p role="group" aria-label=(words.subscribe) { (subscribe(&p, feed, true)) }
                p.m { (words.hint) }
            }
            h2 { (words.newest_posts) }
            @if feed.total > feed.entries.len() {
                p.mu { (words.shown(feed.entries.len(), feed.total)) }
            }
            @for post in &feed.entries { (entry(&p, words, feed, post)) }
        }
        footer {
            p {
                a href=(p.to(OPML_PATH)) type="text/x-opml" { (words.everything) }
                " · "
                a href=(root) { (config.site.title) }
            }
            p #st.vh role="status" {}
        }
    };
    layout(
        &feed.language,
        words,
        &feed.title,
        &feed.description,
        alternates(&p, feed, false),
        "",
        body,
    )
}
