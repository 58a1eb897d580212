//! Text and URL helpers shared by `config`, `post`, `feed` and `render`: XML-safe text,
//! file-text normalization, whitespace collapsing, grapheme-safe truncation, CJK detection,
//! URL path-segment encoding and URL resolution. A leaf: depends on nothing of ours.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use unicode_segmentation::UnicodeSegmentation;
use url::Url;

/// Removes characters that XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE, U+FFFF).
/// Borrowed when there is nothing to remove.
pub fn xml_safe(s: &str) -> Cow<'_, str> {
    fn forbidden(c: char) -> bool {
        matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
    }
    if may_be_forbidden(s.as_bytes()) && s.chars().any(forbidden) {
        Cow::Owned(s.chars().filter(|&c| !forbidden(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// A quick pre-check for [`xml_safe`]: false when `bytes` have no C0 control but tab, LF and
/// CR, and no byte pair BF BE or BF BF (how U+FFFE and U+FFFF end in UTF-8). Not "any byte
/// 0xEF": full-width punctuation, in almost every CJK text, starts with it too. Tested in
/// blocks of 64 bytes without branches, which vectorizes: most texts have none of these.
fn may_be_forbidden(bytes: &[u8]) -> bool {
    let control = |b: u8| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
    let mut from = 0;
    while from < bytes.len() {
        let to = (from + 64).min(bytes.len());
        let block = &bytes[from..to];
        let next = bytes.get(from + 1..).unwrap_or_default();
        let controls = block.iter().fold(false, |found, &b| found | control(b));
        let ends = block.iter().zip(next).fold(false, |found, (&a, &b)| {
            found | ((a == 0xBF) & (b | 1 == 0xBF))
        });
        if controls | ends {
            return true;
        }
        from = to;
    }
    false
}

/// A CR that does not start a CRLF pair.
pub fn has_lone_cr(text: &str) -> bool {
    text.contains('\r') && text.replace("\r\n", "").contains('\r')
}

/// A file's text without BOM, with LF line ends, and without characters XML 1.0 forbids.
pub fn normalize(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let normalized: Cow<'_, str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    };
    match normalized {
        Cow::Borrowed(t) => xml_safe(t),
        Cow::Owned(t) => Cow::Owned(xml_safe(&t).into_owned()),
    }
}

/// East Asian wide scripts whose lines are joined without a space (CSS Text 3 segment
/// break rule); Hangul is excluded because Korean separates words with spaces.
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{303F}' | '\u{3040}'..='\u{30FF}' | '\u{3100}'..='\u{312F}'
        | '\u{31A0}'..='\u{31FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}' | '\u{FE30}'..='\u{FE4F}' | '\u{FF00}'..='\u{FF60}'
        | '\u{FFE0}'..='\u{FFE6}' | '\u{20000}'..='\u{3FFFF}')
}

/// Collapses whitespace runs to one space, or to nothing where a run of line breaks only
/// sits between two CJK characters.
pub fn collapse_whitespace(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut run: Option<bool> = None; // Some(only line breaks so far)
    for c in raw.chars() {
        if c.is_whitespace() {
            run = Some(run.unwrap_or(true) && c == '\n');
            continue;
        }
        if let Some(only_breaks) = run.take()
            && let Some(prev) = out.chars().next_back()
            && !(only_breaks && is_cjk(prev) && is_cjk(c))
        {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Cuts plain text to at most `max` grapheme clusters, preferring a sentence end in the
/// second half of the window, and marks a cut with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    // Only the window matters: never segment more than `max + 1` clusters of a long text.
    let graphemes: Vec<&str> = text.graphemes(true).take(max + 1).collect();
    if graphemes.len() <= max {
        return text.to_string();
    }
    let window = &graphemes[..max.saturating_sub(1)];
    let sentence_end = window
        .iter()
        .rposition(|g| matches!(*g, "。" | "！" | "？" | "." | "!" | "?" | "…"))
        .filter(|&i| i + 1 >= max / 2)
        .filter(|&i| {
            // An ASCII period ends a sentence only before a space (not in `24.03`).
            window[i] != "." || graphemes.get(i + 1).is_some_and(|g| g.trim().is_empty())
        });
    let cut = sentence_end.map_or(window.len(), |i| i + 1);
    let mut out: String = graphemes[..cut].concat().trim_end().to_string();
    out.push('…');
    out
}

/// Characters kept as-is in a URL path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (spaces, CJK and reserved characters included).
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Resolves a URL found in a post: `/x` against the site root, anything relative against
/// the post's URL; absolute URLs and other schemes are kept.
pub fn absolutize(href: &str, post_url: &Url, site: &Url) -> Option<String> {
    let href = href.trim();
    let joined = match href.strip_prefix('/') {
        Some(rest) if !rest.starts_with('/') => site.join(rest),
        _ => post_url.join(href),
    };
    joined.ok().map(String::from)
}

/// Rewrites the URL of each candidate of a `srcset` (`a.png 1x, b.png 2x`) with `f`,
/// keeping its descriptor; candidates `f` refuses are dropped. `None` when none is left.
pub fn map_srcset(srcset: &str, mut f: impl FnMut(&str) -> Option<String>) -> Option<String> {
    let candidates: Vec<String> = srcset
        .split(',')
        .filter_map(|candidate| {
            let candidate = candidate.trim();
            let (url, descriptor) = candidate
                .split_once(char::is_whitespace)
                .unwrap_or((candidate, ""));
            let url = f(url)?;
            Some(match descriptor.trim() {
                "" => url,
                d => format!("{url} {d}"),
            })
        })
        .collect();
    (!candidates.is_empty()).then(|| candidates.join(", "))
}
