//! What the pages say around the posts, in the page's language (Chinese or English), and
//! dates written the way that language writes them. Pure; no clock.

use chrono::{DateTime, Datelike, FixedOffset};

/// The fixed text of the pages in one language.
pub(super) struct Words {
    /// Language of these words (`lang` of elements holding them when the page is in another).
    pub lang: &'static str,
    pub all_posts: &'static str,
    pub categories: &'static str,
    pub tags: &'static str,
    pub category: &'static str,
    pub tag: &'static str,
    pub newest_posts: &'static str,
    pub subscribe: &'static str,
    pub everything: &'static str,
    pub copy: &'static str,
    pub copied: &'static str,
    pub filter: &'static str,
    pub by_letter: &'static str,
    pub all: &'static str,
    pub other: &'static str,
    pub breadcrumb: &'static str,
    pub on_page: &'static str,
    pub preview: &'static str,
    pub languages: &'static str,
    /// `{n}`: number of tags a filter matches (filled in by the page script).
    pub matching: &'static str,
    pub hint: &'static str,
    posts: [&'static str; 2],
    opml_note: [&'static str; 2],
    shown: [&'static str; 3],
}

const EN: Words = Words {
    lang: "en",
    all_posts: "All posts",
    categories: "Categories",
    tags: "Tags",
    category: "Category",
    tag: "Tag",
    newest_posts: "Newest posts",
    subscribe: "Subscribe",
    everything: "Subscribe to everything",
    copy: "Copy URL",
    copied: "Copied",
    filter: "Filter tags",
    by_letter: "Tags by first letter",
    all: "All",
    other: "Other",
    breadcrumb: "Breadcrumb",
    on_page: "On this page",
    preview: "Preview the newest posts",
    languages: "Languages",
    matching: "{n} matching",
    hint: "Paste a feed URL into your feed reader, or open it with a reader extension.",
    posts: ["1 post", " posts"],
    opml_note: [
        "Import this OPML list into your feed reader to follow all ",
        " feeds at once.",
    ],
    shown: ["The newest ", " of ", " posts."],
};

const ZH: Words = Words {
    lang: "zh",
    all_posts: "全部文章",
    categories: "分类",
    tags: "标签",
    category: "分类",
    tag: "标签",
    newest_posts: "最新文章",
    subscribe: "订阅",
    everything: "订阅全部",
    copy: "复制链接",
    copied: "已复制",
    filter: "筛选标签",
    by_letter: "按首字筛选标签",
    all: "全部",
    other: "其他",
    breadcrumb: "导航路径",
    on_page: "本页内容",
    preview: "预览最新文章",
    languages: "语言",
    matching: "{n} 个匹配",
    hint: "将订阅地址粘贴到 RSS 阅读器中，或用阅读器扩展打开。",
    posts: ["1 篇文章", " 篇文章"],
    opml_note: ["将此 OPML 列表导入阅读器，一次订阅全部 ", " 个订阅源。"],
    shown: ["最新 ", " 篇，共 ", " 篇。"],
};

/// The words for a page in `lang` (a BCP 47 tag): Chinese for `zh*`, else English.
pub(super) fn words(lang: &str) -> &'static Words {
    if primary(lang) == "zh" { &ZH } else { &EN }
}

fn primary(lang: &str) -> String {
    lang.split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

impl Words {
    /// "12 posts".
    pub fn posts(&self, n: usize) -> String {
        if n == 1 {
            self.posts[0].to_string()
        } else {
            format!("{n}{}", self.posts[1])
        }
    }

    /// Below the OPML link: what it does for `feeds` feeds.
    pub fn opml_note(&self, feeds: usize) -> String {
        format!("{}{feeds}{}", self.opml_note[0], self.opml_note[1])
    }

    /// "The newest 20 of 31 posts."
    pub fn shown(&self, shown: usize, total: usize) -> String {
        format!(
            "{}{shown}{}{total}{}",
            self.shown[0], self.shown[1], self.shown[2]
        )
    }

    /// The heading of a tag or category page ("Tag: Linux", "标签：Linux").
    pub fn titled(&self, kind: &str, name: &str) -> String {
        if self.lang == "zh" {
            format!("{kind}：{name}")
        } else {
            format!("{kind}: {name}")
        }
    }
}

/// A language's own name, for the directory's language headings (`zh` -> 中文); other
/// tags are shown as they are.
pub(super) fn language_name(lang: &str) -> String {
    let name = match primary(lang).as_str() {
        "zh" => "中文",
        "en" => "English",
        "ja" => "日本語",
        "ko" => "한국어",
        "fr" => "Français",
        "de" => "Deutsch",
        "es" => "Español",
        "pt" => "Português",
        "ru" => "Русский",
        _ => return lang.to_string(),
    };
    name.to_string()
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A date as people of `lang` write it, in the post's own offset: `2024年11月19日` (zh, ja),
/// `2024년 11월 19일` (ko), `November 19, 2024` (en-US), `19 November 2024` (other en), else
/// ISO 8601 `2024-11-19`, which any reader can read.
pub(super) fn date(lang: &str, at: DateTime<FixedOffset>) -> String {
    let (y, m, d) = (at.year(), at.month(), at.day());
    let month = MONTHS
        .get(at.month0() as usize)
        .copied()
        .unwrap_or_default();
    match primary(lang).as_str() {
        "zh" | "ja" => format!("{y}年{m}月{d}日"),
        "ko" => format!("{y}년 {m}월 {d}일"),
        "en" if lang.eq_ignore_ascii_case("en-us") => format!("{month} {d}, {y}"),
        "en" => format!("{d} {month} {y}"),
        _ => iso_date(at),
    }
}

/// `2024-11-19`: the `datetime` of a `<time>`.
pub(super) fn iso_date(at: DateTime<FixedOffset>) -> String {
    at.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_the_language_and_the_posts_own_offset() {
        let at = DateTime::parse_from_rfc3339("2024-11-19T00:30:00+08:00").expect("date");
        let cases = [
            ("zh", "2024年11月19日"),
            ("zh-Hant", "2024年11月19日"),
            ("ja", "2024年11月19日"),
            ("ko", "2024년 11월 19일"),
            ("en", "19 November 2024"),
            ("en-GB", "19 November 2024"),
            ("en-US", "November 19, 2024"),
            ("fr", "2024-11-19"),
            ("", "2024-11-19"),
        ];
        for (lang, expected) in cases {
            assert_eq!(date(lang, at), expected, "{lang}");
        }
        assert_eq!(iso_date(at), "2024-11-19");
    }

    #[test]
    fn words_are_chinese_for_any_chinese_tag_and_english_otherwise() {
        assert_eq!(words("zh").lang, "zh");
        assert_eq!(words("zh-CN").lang, "zh");
        assert_eq!(words("ZH_tw").lang, "zh");
        assert_eq!(words("en").lang, "en");
        assert_eq!(words("fr").lang, "en");
        assert_eq!(words("en").posts(1), "1 post");
        assert_eq!(words("en").posts(12), "12 posts");
        assert_eq!(words("zh").posts(12), "12 篇文章");
        assert_eq!(words("zh").titled("标签", "内核"), "标签：内核");
        assert_eq!(language_name("zh-CN"), "中文");
        assert_eq!(language_name("x-klingon"), "x-klingon");
    }
}
