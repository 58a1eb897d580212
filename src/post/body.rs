//! The body pipeline: Markdown to HTML (CJK line joining, task-list markers as text),
//! then sanitizing by the allowlist in `crate::sanitize` with every URL made absolute, then
//! the size budget; and the plain-text summary, from the Markdown alone. Pure.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use unicode_segmentation::UnicodeSegmentation;
use url::Url;

use super::{Body, Post, split};
use crate::compress::Html;
use crate::config::Config;
use crate::text::{absolutize, collapse_whitespace, is_cjk, map_srcset, normalize, truncate};

fn absolutize_srcset(srcset: &str, post_url: &Url, site: &Url) -> String {
    map_srcset(srcset, |url| {
        Some(absolutize(url, post_url, site).unwrap_or_else(|| url.to_string()))
    })
    .unwrap_or_default()
}

/// Makes every URL attribute in `html` absolute (Markdown output and raw HTML alike).
pub fn absolutize_html(html: &str, post_url: &Url, site: &Url) -> String {
    use lol_html::{RewriteStrSettings, element, rewrite_str};
    let single = |attr: &'static str| {
        move |el: &mut lol_html::html_content::Element| {
            if let Some(value) = el.get_attribute(attr)
                && let Some(abs) = absolutize(&value, post_url, site)
                && abs != value
            {
                el.set_attribute(attr, &abs)?;
            }
            Ok(())
        }
    };
    let srcset = |el: &mut lol_html::html_content::Element| {
        if let Some(value) = el.get_attribute("srcset") {
            el.set_attribute("srcset", &absolutize_srcset(&value, post_url, site))?;
        }
        Ok(())
    };
    let settings = RewriteStrSettings {
        element_content_handlers: vec![
            element!("[href]", single("href")),
            element!("[src]", single("src")),
            element!("[poster]", single("poster")),
            element!("[cite]", single("cite")),
            element!("object[data]", single("data")),
            element!("[srcset]", srcset),
        ],
        ..RewriteStrSettings::new()
    };
    rewrite_str(html, settings).unwrap_or_else(|_| html.to_string())
}

fn markdown_options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
}

fn text_of<'a>(e: &'a Event<'a>) -> Option<&'a str> {
    match e {
        Event::Text(t) | Event::Code(t) => Some(t),
        _ => None,
    }
}

/// Drops soft breaks between two CJK characters so hard-wrapped Chinese does not get gaps.
fn join_cjk_lines(events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut out: Vec<Event<'_>> = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if matches!(event, Event::SoftBreak) {
            let prev = events[..i]
                .iter()
                .rev()
                .find(|e| !matches!(e, Event::Start(_) | Event::End(_)))
                .and_then(text_of)
                .and_then(|t| t.chars().next_back());
            let next = events[i + 1..]
                .iter()
                .find(|e| !matches!(e, Event::Start(_) | Event::End(_)))
                .and_then(text_of)
                .and_then(|t| t.chars().next());
            if matches!((prev, next), (Some(a), Some(b)) if is_cjk(a) && is_cjk(b)) {
                continue;
            }
        }
        out.push(event.clone());
    }
    out
}

/// Plain text of Markdown events: no markup, no image alt text, no raw HTML.
fn plain_text(events: &[Event<'_>]) -> String {
    let mut raw = String::new();
    let mut in_image = 0usize;
    for event in events {
        match event {
            Event::Start(Tag::Image { .. }) => in_image += 1,
            Event::End(TagEnd::Image) => in_image = in_image.saturating_sub(1),
            Event::Text(t) | Event::Code(t) if in_image == 0 => raw.push_str(t),
            Event::SoftBreak | Event::HardBreak => raw.push('\n'),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::TableCell
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock,
            ) => raw.push('\n'),
            _ => {}
        }
    }
    collapse_whitespace(&raw)
}

/// Container depth past which Markdown nesting is flattened (its text stays): 100,000
/// nested `>` would otherwise become as many nested elements for every later stage.
const MAX_DEPTH: usize = 64;

/// Drops the start and end tags of Markdown containers nested deeper than [`MAX_DEPTH`].
fn limit_nesting(events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut kept_starts: Vec<bool> = Vec::new();
    events
        .into_iter()
        .filter(|event| match event {
            Event::Start(_) => {
                let keep = kept_starts.len() < MAX_DEPTH;
                kept_starts.push(keep);
                keep
            }
            Event::End(_) => kept_starts.pop().unwrap_or(true),
            _ => true,
        })
        .collect()
}

/// Task-list checkboxes become the characters ☐/☑: form controls are not allowed in feeds.
fn task_markers_as_text(event: Event<'_>) -> Event<'_> {
    match event {
        Event::TaskListMarker(done) => Event::Text(if done { "☑ " } else { "☐ " }.into()),
        other => other,
    }
}

/// The summary: front matter, else the text before `<!--more-->` (at most ten automatic
/// summaries long), else the start of the text cut at a sentence end, else the title.
fn summary(config: &Config, given: Option<&str>, title: &str, events: &[Event<'_>]) -> String {
    if let Some(given) = given {
        return given.to_string();
    }
    let more = events.iter().position(
        |e| matches!(e, Event::Html(h) | Event::InlineHtml(h) if h.trim() == "<!--more-->"),
    );
    let length = config.content.summary_length;
    let text = match more {
        Some(i) => truncate(&plain_text(&events[..i]), length.saturating_mul(10)),
        None => truncate(&plain_text(events), length),
    };
    if text.is_empty() {
        title.to_string()
    } else {
        text
    }
}

/// The plain-text summary of a post from its file's `text` (see `summary`), without HTML:
/// computed when the post is parsed, so that entries shown by their summary (archive pages,
/// summary feeds) need no body. Of a body over `feed.max_entry_bytes` only the start is read.
/// A text without valid front matter is read as if all of it were the body.
pub fn summary_of(config: &Config, given: Option<&str>, title: &str, text: &str) -> String {
    if let Some(given) = given {
        return given.to_string();
    }
    let text = normalize(text);
    let markdown = markdown_of(&text);
    let budget = config.feed.max_entry_bytes;
    if markdown.len() > budget {
        let start = prefix(markdown, budget);
        return leading_summary(config, title, start, false);
    }
    leading_summary(config, title, markdown, true)
}

/// `summary` of the events of `markdown` (with `body_events`: as `markdown_events` gives
/// them; without: nesting bounded only), reading no more of them than the summary needs.
/// Without `<!--more-->` an automatic summary depends on the first `summary_length + 1`
/// grapheme clusters of the text only, and the plain text of a prefix of the events is a
/// prefix of the whole plain text (a soft break at the end of the prefix only adds trailing
/// whitespace, which collapsing drops): so once a prefix gives two clusters more than that,
/// its summary is the summary. Events are read in doubling chunks.
fn leading_summary<'a>(
    config: &Config,
    title: &str,
    markdown: &'a str,
    body_events: bool,
) -> String {
    let transform = |events: Vec<Event<'a>>| -> Vec<Event<'a>> {
        if body_events {
            limit_nesting(join_cjk_lines(events))
        } else {
            limit_nesting(events)
        }
    };
    let markers = |e: Event<'a>| {
        if body_events {
            task_markers_as_text(e)
        } else {
            e
        }
    };
    let mut parser = Parser::new_ext(markdown, markdown_options()).map(markers);
    if markdown.contains("<!--more-->") {
        return summary(config, None, title, &transform(parser.collect()));
    }
    let length = config.content.summary_length;
    let mut events = Vec::new();
    let mut chunk = 64;
    loop {
        let read = events.len();
        events.extend(parser.by_ref().take(chunk));
        if events.len() < read + chunk {
            return summary(config, None, title, &transform(events));
        }
        let text = plain_text(&transform(events.clone()));
        if text.graphemes(true).nth(length + 1).is_some() {
            return truncate(&text, length);
        }
        chunk = chunk.saturating_mul(2);
    }
}

/// The Markdown events of a body: CJK lines joined, task markers as text, nesting bounded.
fn markdown_events(markdown: &str) -> Vec<Event<'_>> {
    limit_nesting(join_cjk_lines(
        Parser::new_ext(markdown, markdown_options())
            .map(task_markers_as_text)
            .collect(),
    ))
}

/// The HTML of a body before sanitizing.
fn markdown_html(markdown: &str) -> String {
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, markdown_events(markdown).into_iter());
    html
}

/// The post's URL, the base for its relative links.
fn post_url(config: &Config, post: &Post) -> Url {
    Url::parse(&post.url).unwrap_or_else(|_| config.site.base_url.clone())
}

/// The Markdown body of `text` (the whole text when its front matter no longer parses).
fn markdown_of(text: &str) -> &str {
    split(text).map_or(text, |parts| parts.body)
}

/// The longest prefix of `s` of at most `max` bytes that ends at a line end (or at a
/// character boundary when there is none).
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &s[..end];
    cut.rfind('\n').map_or(cut, |i| &cut[..=i])
}

/// Renders the body of `post` from its file's `text`: HTML sanitized by the allowlist in
/// `crate::sanitize` (unless `content.sanitize` is off) with every URL absolute. A body whose
/// Markdown or HTML is over `feed.max_entry_bytes`, or whose HTML nests deeper than
/// `sanitize::MAX_NESTING`, gets no HTML (the entry shows its summary and link). A text
/// without valid front matter (the file changed since `post` was parsed) renders as if all
/// of it were the body.
pub fn render_body(config: &Config, post: &Post, text: &str) -> Body {
    let text = normalize(text);
    let markdown = markdown_of(&text);
    let budget = config.feed.max_entry_bytes;
    if markdown.len() > budget {
        return Body { html: None };
    }
    let post_url = post_url(config, post);
    let html = markdown_html(markdown);
    let html = (html.len() <= budget && !crate::sanitize::too_deep(&html))
        .then(|| {
            if config.content.sanitize {
                crate::sanitize::clean(
                    &html,
                    &post_url,
                    &config.site.base_url,
                    &config.content.allowed_iframe_hosts,
                )
            } else {
                absolutize_html(&html, &post_url, &config.site.base_url)
            }
        })
        .filter(|clean| clean.len() <= budget)
        .map(|clean| Html::new(&clean));
    Body { html }
}

/// What sanitizing removes from the body of `post` (for `check --verbose`); empty when
/// `content.sanitize` is off or the body is over budget (it is not published as HTML).
pub fn removals(config: &Config, post: &Post, text: &str) -> Vec<String> {
    let text = normalize(text);
    let markdown = markdown_of(&text);
    if !config.content.sanitize || markdown.len() > config.feed.max_entry_bytes {
        return Vec::new();
    }
    let html = markdown_html(markdown);
    crate::sanitize::removals(
        &html,
        &post_url(config, post),
        &config.site.base_url,
        &config.content.allowed_iframe_hosts,
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The summary from every event of the body, as `render_body` took it before summaries
    /// were computed at parse time.
    fn from_all_events(config: &Config, markdown: &str) -> String {
        summary(config, None, "T", &markdown_events(markdown))
    }

    fn config(summary_length: usize) -> Config {
        let text = format!("[content]\nsummary_length = {summary_length}\n");
        crate::config::parse(&text, std::path::Path::new("/")).expect("valid")
    }

    #[test]
    fn a_summary_from_the_leading_events_equals_one_from_all_of_them() {
        let cjk = "共建全球开源\n新生态。openEuler\n社区 and\nmore。".repeat(40);
        let zalgo = format!("a{}", "\u{301}".repeat(500)).repeat(30);
        let cases = [
            String::new(),
            "![only](a.png)".to_string(),
            cjk.clone(),
            format!("# Head\n\n{cjk}\n\n- [x] done\n- [ ] open\n\n{cjk}"),
            format!("{}{cjk}", "> ".repeat(100)),
            format!("{cjk}\n\n<!--more-->\n\n{cjk}"),
            zalgo,
            "word ".repeat(5000),
            "文".repeat(199),
            "文".repeat(201),
        ];
        for length in [10, 50, 200] {
            let config = config(length);
            for markdown in &cases {
                assert_eq!(
                    leading_summary(&config, "T", markdown, true),
                    from_all_events(&config, markdown),
                    "length {length}: {}",
                    &markdown.chars().take(60).collect::<String>()
                );
            }
        }
    }

    proptest! {
        #[test]
        fn leading_summaries_equal_whole_summaries_for_any_markdown(
            markdown in "([a-z文。. \n>*#\\[\\]!()-]|\u{301}){0,3000}",
            length in 10usize..40,
        ) {
            let config = config(length);
            prop_assert_eq!(
                leading_summary(&config, "T", &markdown, true),
                from_all_events(&config, &markdown)
            );
        }
    }
}
