//! Unit tests of `post`: splitting, dates, URL mapping, URL absolutization, summaries and
//! front-matter fields. Table-driven where the cases are alike.

use std::borrow::Cow;
use std::path::Path;

use url::Url;

use super::*;
use crate::compress::Html;
use crate::config::{self, Config};
use crate::error::{PostError, PostErrorKind};
use crate::text::{absolutize, truncate, xml_safe};

fn cfg() -> Config {
    config::parse(
        "[site]\nbase_url = \"https://www.openeuler.org/\"\ntime_zone = \"Asia/Shanghai\"\nlanguage = \"zh\"\n\
         [content]\nlanguages = [\"zh\", \"en\"]\nsummary_length = 40\n",
        Path::new("/"),
    )
    .expect("valid")
}

fn parse_ok(rel: &str, text: &str) -> Post {
    parse(&cfg(), Path::new(rel), text).unwrap_or_else(|e| panic!("{e}"))
}

/// A post parsed and its body rendered, as a feed shows it.
struct Full {
    post: Post,
    html: String,
    summary: String,
}

fn full(rel: &str, text: &str) -> Full {
    let post = parse_ok(rel, text);
    let body = render_body(&cfg(), &post, text);
    Full {
        html: body.html.map(|h| h.text()).unwrap_or_default(),
        summary: post.summary.clone(),
        post,
    }
}

fn parse_err(text: &str) -> PostError {
    parse(&cfg(), Path::new("p.md"), text).expect_err("should fail")
}

#[test]
fn split_handles_blank_lines_missing_newline_and_terminators() {
    type Case = (
        &'static str,
        Result<(&'static str, usize, &'static str), PostErrorKind>,
    );
    let cases: &[Case] = &[
        ("---\na: 1\n---\nbody", Ok(("a: 1\n", 2, "body"))),
        ("---\na: 1\n\nb: 2\n---\n", Ok(("a: 1\n\nb: 2\n", 2, ""))),
        ("---\na: 1\n---", Ok(("a: 1\n", 2, ""))),
        ("\n\n---\na: 1\n...\nx", Ok(("a: 1\n", 4, "x"))),
        ("---  \na: 1\n---  \nx", Ok(("a: 1\n", 2, "x"))),
        ("", Err(PostErrorKind::Empty)),
        (" \n\n", Err(PostErrorKind::Empty)),
        ("title: x\n", Err(PostErrorKind::NoFrontMatter)),
        ("---\na: 1\n", Err(PostErrorKind::UnterminatedFrontMatter)),
        ("---", Err(PostErrorKind::UnterminatedFrontMatter)),
    ];
    for (text, expected) in cases {
        let got = split(text).map(|s| (s.front, s.front_line, s.body));
        assert_eq!(&got, expected, "{text:?}");
    }
}

#[test]
fn dates_in_every_accepted_form() {
    let tz = chrono_tz::Asia::Shanghai;
    let cases = [
        ("2024-11-19", "2024-11-19T00:00:00+08:00"),
        ("2024-11-19 10:00", "2024-11-19T10:00:00+08:00"),
        ("2024-11-19 10:00:30", "2024-11-19T10:00:30+08:00"),
        ("2024-11-19T10:00", "2024-11-19T10:00:00+08:00"),
        ("2024-11-19T10:00:00Z", "2024-11-19T10:00:00+00:00"),
        ("2024-11-19T10:00:00-05:00", "2024-11-19T10:00:00-05:00"),
        (" 2024-11-19 ", "2024-11-19T00:00:00+08:00"),
    ];
    for (input, expected) in cases {
        let got = parse_date(input, tz).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got.to_rfc3339(), expected, "{input}");
    }
    for bad in ["2024-13-01", "19/11/2024", "yesterday", "", "2024-02-30"] {
        assert!(parse_date(bad, tz).is_err(), "{bad} should be rejected");
    }
}

#[test]
fn dates_in_a_dst_gap_move_forward_and_folds_take_the_earlier_instant() {
    let tz = chrono_tz::Europe::Berlin;
    // 2024-03-31 02:30 does not exist in Berlin (clocks jump 02:00 -> 03:00).
    let gap = parse_date("2024-03-31 02:30", tz).expect("gap handled");
    assert_eq!(gap.to_rfc3339(), "2024-03-31T03:00:00+02:00");
    // 2024-10-27 02:30 happens twice; the first (summer time) wins.
    let fold = parse_date("2024-10-27 02:30", tz).expect("fold handled");
    assert_eq!(fold.to_rfc3339(), "2024-10-27T02:30:00+02:00");
}

#[test]
fn paths_map_to_percent_encoded_urls() {
    let c = cfg();
    let cases = [
        (
            "zh/news/a b/x.md",
            None,
            "https://www.openeuler.org/zh/news/a%20b/x.html",
            Some("zh"),
            Some("news"),
        ),
        (
            "zh/news/dir/index.md",
            None,
            "https://www.openeuler.org/zh/news/dir/",
            Some("zh"),
            Some("news"),
        ),
        (
            "blog/内核/文章.md",
            None,
            "https://www.openeuler.org/blog/%E5%86%85%E6%A0%B8/%E6%96%87%E7%AB%A0.html",
            None,
            Some("blog"),
        ),
        (
            "en/x.markdown",
            None,
            "https://www.openeuler.org/en/x.html",
            Some("en"),
            None,
        ),
        (
            "top.md",
            None,
            "https://www.openeuler.org/top.html",
            None,
            None,
        ),
        (
            "zh/news/x.md",
            Some("custom slug"),
            "https://www.openeuler.org/zh/news/custom%20slug.html",
            Some("zh"),
            Some("news"),
        ),
        (
            "a/b?c#d.md",
            None,
            "https://www.openeuler.org/a/b%3Fc%23d.html",
            None,
            Some("a"),
        ),
    ];
    for (rel, slug, url, lang, section) in cases {
        let loc = locate(&c, Path::new(rel), slug);
        assert_eq!(loc.url.as_str(), url, "{rel}");
        assert_eq!(loc.lang.as_deref(), lang, "{rel}");
        assert_eq!(loc.section.as_deref(), section, "{rel}");
    }
}

#[test]
fn relative_urls_become_absolute() {
    let site = Url::parse("https://e.org/").expect("url");
    let post = Url::parse("https://e.org/zh/news/d/p.html").expect("url");
    let cases = [
        ("./media/a.jpeg", "https://e.org/zh/news/d/media/a.jpeg"),
        ("media/a b.png", "https://e.org/zh/news/d/media/a%20b.png"),
        ("../x.html", "https://e.org/zh/news/x.html"),
        ("/img/b.png", "https://e.org/img/b.png"),
        ("//cdn.e.org/x.png", "https://cdn.e.org/x.png"),
        ("#fn1", "https://e.org/zh/news/d/p.html#fn1"),
        ("https://other.org/x", "https://other.org/x"),
        ("mailto:a@e.org", "mailto:a@e.org"),
    ];
    for (href, expected) in cases {
        assert_eq!(
            absolutize(href, &post, &site).as_deref(),
            Some(expected),
            "{href}"
        );
    }
}

#[test]
fn urls_in_markdown_and_raw_html_become_absolute() {
    let p = full(
        "zh/news/d/p.md",
        "---\ntitle: t\ndate: 2024-01-01\n---\n![a](./media/1.jpeg) [l](../other.html)\n\n\
         <img src=\"./media/image1.jpeg\" width=\"1000\" >\n\n<img\n  src=\"./media/2.png\"\n  srcset=\"./s1.png 1x, /s2.png 2x\">\n\n\
         <video poster=\"p.jpg\" src=\"v.mp4\"></video> <a href=\"/img/x.html\">x</a>\n",
    );
    for expected in [
        "src=\"https://www.openeuler.org/zh/news/d/media/1.jpeg\"",
        "href=\"https://www.openeuler.org/zh/news/other.html\"",
        "src=\"https://www.openeuler.org/zh/news/d/media/image1.jpeg\" width=\"1000\"",
        "src=\"https://www.openeuler.org/zh/news/d/media/2.png\"",
        "srcset=\"https://www.openeuler.org/zh/news/d/s1.png 1x, https://www.openeuler.org/s2.png 2x\"",
        "poster=\"https://www.openeuler.org/zh/news/d/p.jpg\"",
        "src=\"https://www.openeuler.org/zh/news/d/v.mp4\"",
        "href=\"https://www.openeuler.org/img/x.html\"",
    ] {
        assert!(
            p.html.contains(expected),
            "missing {expected} in {}",
            p.html
        );
    }
    assert!(!p.html.contains("\"./"), "{}", p.html);
}

#[test]
fn soft_breaks_between_cjk_characters_disappear() {
    let p = full(
        "p.md",
        "---\ntitle: t\ndate: 2024-01-01\n---\n共建全球开源\n新生态。openEuler\n社区 and\nmore\n",
    );
    assert!(
        p.html
            .contains("共建全球开源新生态。openEuler\n社区 and\nmore"),
        "{}",
        p.html
    );
    assert!(
        p.summary
            .starts_with("共建全球开源新生态。openEuler 社区 and more"),
        "{}",
        p.summary
    );
}

#[test]
fn summaries_cut_on_graphemes_prefer_sentence_ends_and_add_an_ellipsis() {
    let cases = [
        // fits: unchanged
        ("短文本。", 10, "短文本。"),
        // sentence end in the second half of the window wins
        (
            "第一句话说完了。第二句话还很长很长很长很长",
            12,
            "第一句话说完了。…",
        ),
        // no sentence end: cut at the limit
        ("一二三四五六七八九十一二三四五", 10, "一二三四五六七八九…"),
        // never split a grapheme cluster (flag emoji, combining accents)
        ("🇨🇳🇨🇳🇨🇳🇨🇳🇨🇳🇨🇳", 4, "🇨🇳🇨🇳🇨🇳…"),
        ("e\u{301}e\u{301}e\u{301}e\u{301}", 3, "e\u{301}e\u{301}…"),
        // English: `24.03` is not a sentence end; `. ` is
        (
            "Version 24.03 is out. It brings many things to everyone",
            30,
            "Version 24.03 is out.…",
        ),
    ];
    for (text, max, expected) in cases {
        assert_eq!(truncate(text, max), expected, "{text}");
    }
}

#[test]
fn summary_sources_in_order_of_precedence() {
    let with_fm = full(
        "p.md",
        "---\ntitle: T\ndate: 2024-01-01\nsummary: '  given   summary '\n---\nbody text\n",
    );
    assert_eq!(with_fm.summary, "given summary");
    let with_more = full(
        "p.md",
        "---\ntitle: T\ndate: 2024-01-01\n---\nIntro **bold**.\n\n<!--more-->\n\nRest.\n",
    );
    assert_eq!(with_more.summary, "Intro bold.");
    let images_only = full(
        "p.md",
        "---\ntitle: Only pictures\ndate: 2024-01-01\n---\n![alt](a.png)\n\n<img src=\"b.png\">\n",
    );
    assert_eq!(images_only.summary, "Only pictures");
    let markup = full(
        "p.md",
        "---\ntitle: T\ndate: 2024-01-01\n---\n# Head\n\nSome `code` and [link](x).\n",
    );
    assert_eq!(markup.summary, "Head Some code and link.");
}

#[test]
fn tags_authors_and_categories_accept_lists_and_strings() {
    let cases = [
        ("tags: [a, B, b, 2024]", vec!["a", "B", "2024"]),
        ("tags: single", vec!["single"]),
        ("tags: 'x, y'", vec!["x", "y"]),
        ("tags:\n  - '  spaced   tag '\n  - ''", vec!["spaced tag"]),
        ("tags: []", vec![]),
    ];
    for (yaml, expected) in cases {
        let p = parse_ok(
            "p.md",
            &format!("---\ntitle: T\ndate: 2024-01-01\n{yaml}\n---\n"),
        );
        assert_eq!(p.tags, expected, "{yaml}");
    }
    let p = parse_ok(
        "zh/news/p.md",
        "---\ntitle: T\ndate: 2024-01-01\nauthor: 张三, Li Na\n---\n",
    );
    assert_eq!(p.authors, ["张三", "Li Na"]);
    assert_eq!(p.categories, ["news"], "category from the path");
    let p = parse_ok(
        "p.md",
        "---\ntitle: T\ndate: 2024-01-01\nauthor:\n  - A\n  - name: B\ncategory: [x, y]\n---\n",
    );
    assert_eq!(p.authors, ["A", "B"]);
    assert_eq!(p.categories, ["x", "y"]);
}

#[test]
fn bom_crlf_and_forbidden_characters_are_handled() {
    let p = full(
        "p.md",
        "\u{FEFF}---\r\ntitle: \"A\\u0001B\\uFFFEC\"\r\ndate: 2024-01-01\r\n---\r\nx\u{0B}y\r\n",
    );
    assert_eq!(p.post.title, "ABC");
    assert!(!p.html.contains('\u{0B}') && p.html.contains("xy"));
}

#[test]
fn ids_default_to_the_permalink_and_survive_text_edits() {
    let a = parse_ok(
        "zh/news/p.md",
        "---\ntitle: T\ndate: 2024-01-01\n---\nold text\n",
    );
    let b = parse_ok(
        "zh/news/p.md",
        "---\ntitle: T2\ndate: 2024-01-01\n---\nnew text\n",
    );
    assert_eq!(a.id, "https://www.openeuler.org/zh/news/p.html");
    assert_eq!(a.id, b.id);
    let c = parse_ok(
        "p.md",
        "---\ntitle: T\ndate: 2024-01-01\nguid: urn:uuid:1234\n---\n",
    );
    assert_eq!(c.id, "urn:uuid:1234");
}

#[test]
fn updated_lastmod_draft_lang_and_banner() {
    let p = parse_ok(
        "en/p.md",
        "---\ntitle: T\ndate: 2024-01-02\nlastmod: 2024-03-01 12:00\ndraft: true\nbanner: img/b.png\n---\n",
    );
    assert_eq!(p.updated.to_rfc3339(), "2024-03-01T12:00:00+08:00");
    assert!(p.draft);
    assert_eq!(p.lang, "en");
    assert_eq!(
        p.banner.as_deref(),
        Some("https://www.openeuler.org/img/b.png")
    );
    let now = p.date + chrono::Duration::days(1);
    assert!(!p.is_visible(now), "drafts are never visible");
    let future = parse_ok("p.md", "---\ntitle: T\ndate: 2999-01-01\n---\n");
    assert!(!future.is_visible(chrono::Utc::now().fixed_offset()));
    assert_eq!(future.lang, "zh", "site language by default");
}

#[test]
fn errors_name_the_field_and_its_position() {
    type Case = (&'static str, Option<(usize, usize)>, &'static str);
    let cases: &[Case] = &[
        (
            "---\ntitle: T\n---\n",
            Some((2, 1)),
            "field `date` is required",
        ),
        (
            "---\ndate: 2024-01-01\n---\n",
            Some((2, 1)),
            "field `title` is required",
        ),
        (
            "---\ntitle: T\ndate: soon\n---\n",
            Some((3, 7)),
            "`date` is not a date",
        ),
        (
            "---\ntitle: [a, b]\ndate: 2024-01-01\n---\n",
            Some((2, 8)),
            "`title` must be a string, found a list",
        ),
        (
            "---\ntitle: T\ndate: 2024-01-01\ntags: {a: 1}\n---\n",
            Some((4, 7)),
            "`tags` must be a string or a list",
        ),
        (
            "---\ntitle: T\ndate: 2024-01-01\ndraft: maybe\n---\n",
            Some((4, 8)),
            "`draft` must be true or false",
        ),
        (
            "---\ntitle: 'T\ndate: 2024-01-01\n---\n",
            Some((4, 1)),
            "not valid YAML",
        ),
        ("---\n- a\n- b\n---\n", Some((2, 1)), "must be a mapping"),
    ];
    for (text, position, message) in cases {
        let err = parse_err(text);
        assert_eq!(err.position, *position, "{text:?}: {err}");
        assert!(err.to_string().contains(message), "{text:?}: {err}");
        assert!(err.to_string().starts_with("`p.md`"), "{err}");
    }
}

#[test]
fn misspelt_keys_are_warnings_with_a_hint() {
    let p = parse_ok(
        "p.md",
        "---\ntitle: T\ndate: 2024-01-01\ntages: [a]\ncustom_thing: 1\n---\n",
    );
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    let w = p.warnings[0].to_string();
    assert!(
        w.contains("`tages`") && w.contains("did you mean `tags`") && w.contains(":4:1"),
        "{w}"
    );
}

#[test]
fn xml_safe_strips_only_forbidden_characters() {
    assert_eq!(
        xml_safe("a\u{0}b\u{1}c\td\ne\rf\u{FFFE}g\u{FFFF}h\u{1F600}"),
        "abc\td\ne\rfgh\u{1F600}"
    );
    assert!(matches!(xml_safe("clean"), Cow::Borrowed(_)));
    // Full-width punctuation (EF BC 8C) and U+4FFE (E4 BF BE, which ends like U+FFFE) are
    // kept; a forbidden character is found at every offset, across blocks of the pre-check.
    let cjk = "共建，全球开源俾新生态".repeat(12);
    assert!(matches!(xml_safe(&cjk), Cow::Borrowed(_)));
    for (at, _) in cjk.char_indices() {
        for bad in ["\u{FFFE}", "\u{FFFF}", "\u{1}"] {
            let text = format!("{}{bad}{}", &cjk[..at], &cjk[at..]);
            assert_eq!(xml_safe(&text), cjk, "{bad:?} at {at}");
        }
    }
}

#[test]
fn html_round_trips_through_its_compressed_form() {
    for text in [
        "",
        "<p>短</p>",
        &"<p>共建全球开源新生态 openEuler &amp; more</p>\n".repeat(500),
    ] {
        let html = Html::new(text);
        assert_eq!(html.text(), text);
        if text.len() > 1000 {
            assert!(html.compressed_len() * 4 < text.len(), "{html:?}");
        }
    }
}

#[test]
fn classic_mac_line_ends_parse_like_lf() {
    let text = "---\rtitle: Old Mac\rdate: 2024-01-01\rtags: [a]\r---\rFirst line\rsecond line\r";
    let p = full("p.md", text);
    assert_eq!(p.post.title, "Old Mac");
    assert_eq!(p.post.tags, ["a"]);
    assert!(p.html.contains("First line\nsecond line"), "{}", p.html);
}
