//! The five real seed posts (openEuler community news) load with exactly the expected fields.

use std::path::Path;

use crate::support;

struct Expected {
    source: &'static str,
    title: &'static str,
    date: &'static str,
    banner: &'static str,
    summary: &'static str,
    images: usize,
}

const SEEDS: &[Expected] = &[
    Expected {
        source: "zh/news/20230927-hc2023/20230927-hc2023.md",
        title: "openEuler 亮相华为全联接 2023 | 使能全场景创新，夯实算力底座",
        date: "2023-09-27T00:00:00+08:00",
        banner: "img/banners/20230928-heo.jpeg",
        summary: "华为全联接大会2023第三日，\"openEuler使能全场景创新夯实算力底座分论坛\"成功举办。",
        images: 10,
    },
    Expected {
        source: "zh/news/20240606-24.03-lts/20240606-24.03-lts.md",
        title: "首个 AI 原生开源操作系统，openEuler 24.03 LTS 正式发布",
        date: "2024-06-06T00:00:00+08:00",
        banner: "img/banners/20240612-fbh.jpeg",
        summary: "openEuler 24.03 LTS 版本发布会成功在北京举办。",
        images: 8,
    },
    Expected {
        source: "zh/news/20240930-hc2024/20240930-hc2024.md",
        title: "华为全联接大会2024︱openEuler 分论坛成功举办",
        date: "2024-09-30T00:00:00+08:00",
        banner: "img/banners/0930-hc.jpeg",
        // The front matter's leading space is trimmed.
        summary: "在华为全联大会 2024期间，以\"openEuler使能 AI和全场景创新，夯实算力底座\"为主题的 openEuler分论坛在上海成功举办。",
        images: 9,
    },
    Expected {
        source: "zh/news/20241119-1000w/20241119-1000w.md",
        title: "openEuler系累计装机量突破1000万，树立操作系统产业新里程碑",
        date: "2024-11-19T00:00:00+08:00",
        banner: "img/banners/1122-1000.png",
        summary: "2024年openEuler系操作系统新增装机量超过500万套，五年累计装机量突破1000万套。",
        images: 4,
    },
    Expected {
        source: "zh/news/20241121-summit/20241121-summit.md",
        title: "openEuler Summit 2024：凝聚产业创新力量，共建全球开源新生态",
        date: "2024-11-21T00:00:00+08:00",
        banner: "img/banners/1122-smit.jpeg",
        summary: "本次大会以\"以智能，致世界\"为主题，旨在汇聚全球产业界力量，推动基础软件根技术持续创新，共建全球开源新生态。",
        images: 7,
    },
];

#[test]
fn the_five_seed_posts_load_with_the_expected_fields() {
    let config = support::sample_config();
    let loaded = support::load_with_bodies(&config);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.posts.len(), SEEDS.len());
    for (post, want) in loaded.posts.iter().zip(SEEDS) {
        let url = format!(
            "https://www.openeuler.org/{}",
            want.source.replace(".md", ".html")
        );
        assert_eq!(post.source, want.source);
        assert_eq!(post.url, url);
        assert_eq!(post.id, url);
        assert_eq!(post.title, want.title);
        assert_eq!(post.date.to_rfc3339(), want.date);
        assert_eq!(post.updated, post.date);
        assert_eq!(post.tags, ["openEuler"]);
        assert_eq!(post.categories, ["news"]);
        assert_eq!(post.authors, ["openEuler"]);
        assert_eq!(post.lang, "zh");
        assert!(!post.draft);
        assert_eq!(
            post.banner.as_deref(),
            Some(format!("https://www.openeuler.org/{}", want.banner).as_str())
        );
        assert_eq!(post.summary, want.summary);
        // Every image, Markdown or raw HTML, points at the post's media folder, absolutely.
        let dir = url.rsplit_once('/').map(|(d, _)| d).expect("has a slash");
        let html = support::body(post).html_text();
        let images: Vec<&str> = html
            .match_indices("<img src=\"")
            .map(|(i, m)| &html[i + m.len()..])
            .collect();
        assert_eq!(images.len(), want.images, "{}", post.source);
        for img in images {
            assert!(
                img.starts_with(&format!("{dir}/media/image")),
                "{}: {}",
                post.source,
                &img[..80.min(img.len())]
            );
        }
        assert!(!html.contains("./media"), "{}", post.source);
    }
}

#[test]
fn seed_bodies_give_gap_free_chinese_summaries_and_html() {
    let config = support::sample_config();
    // Without its `summary` field the post gets an automatic one from the hard-wrapped body.
    let text =
        std::fs::read_to_string(support::fixture("seeds/001_dab2b9fc6be8bfb7.md")).expect("seed");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("summary:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let post = feedsmith::post::parse(&config, Path::new("zh/news/x/x.md"), &text).expect("parses");
    let body = feedsmith::post::render_body(&config, &post, &text);
    assert!(
        post.summary.starts_with("[中国，北京，2024年11月16日] openEuler Summit 2024在北京中关村国际创新中心圆满落幕。本次大会由开放原子开源基金会（以下简称\"基金会\"）孵化及运营的 openEuler社区"),
        "{}",
        post.summary
    );
    assert!(post.summary.ends_with('…'));
    assert!(post.summary.chars().count() <= config.content.summary_length + 1);
    // `持续专注内核创新` was not split by the line break after `openEuler` (Latin-CJK keeps it)
    // but `累计发布了 588` ... `个软件仓库` keeps the author's spaces.
    assert!(
        body.html_text()
            .contains("第一，坚持技术创新是openEuler立足的根本，openEuler\n持续专注内核创新")
    );
    // The setext heading of seed 004 is a real heading.
    let text =
        std::fs::read_to_string(support::fixture("seeds/004_65d1e7c3b68ba21c.md")).expect("seed");
    let post = feedsmith::post::parse(&config, Path::new("zh/news/y/y.md"), &text).expect("parses");
    let body = feedsmith::post::render_body(&config, &post, &text);
    assert!(
        body.html_text().contains(
            "<h2><strong>openEuler 社区加速 AI 融合与应用，累计装机量达到850万+台套</strong></h2>"
        ),
        "{}",
        &body.html_text()[..600]
    );
}

#[test]
fn the_seed_fixtures_load_from_a_flat_directory_too() {
    let config = support::config_for(
        &support::fixture("seeds"),
        "[site]\ntime_zone = \"Asia/Shanghai\"\n",
    );
    let loaded = feedsmith::content::load(&config).expect("loads");
    assert_eq!(loaded.posts.len(), 5);
    assert!(loaded.errors.is_empty());
    // No section in the path and `category: news` in the front matter.
    assert!(
        loaded
            .posts
            .iter()
            .all(|p| p.categories == ["news"] && p.url.starts_with("http://localhost:8080/00"))
    );
}
