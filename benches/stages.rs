//! Criterion benchmarks of the pipeline stages, one group per stage:
//!
//! * `parse`    — `post::parse` (front matter) of each seed post (tests/fixtures/seeds/*.md);
//! * `body`     — `post::render_body` (Markdown, sanitizing with absolute URLs, summary) of
//!   each seed post: paid only for posts that some feed shows; `body_unsanitized` the same
//!   with `content.sanitize = false`, so the sanitizer's cost is the difference;
//! * `plan`     — `feed::plan` over 10,000 posts;
//! * `render`   — one 20-item feed (the global feed of those 10,000 posts): `render::render`
//!   in RSS, Atom, JSON (each call decompresses the entries' HTML), and `render::texts`
//!   alone (that decompression);
//! * `compress` — that RSS body with `compress::gzip(_, 9)` and `compress::brotli(_, 6)`;
//! * `build`    — `build::build` of the whole 10,000-post site (every feed in every format,
//!   gzipped): what `export` and a full reload of `serve` pay after parsing;
//! * `site_parts` — that work split up, single-threaded: rendering every feed file (contents
//!   once per feed, as `build` does), gzip-9 of every body, and brotli-6 of every body (not
//!   part of `build`: `serve` fills brotli bodies on a background thread after publishing).
//!
//! The 10,000 posts come from `../shared/bench/gen-corpus.py --posts 10000 --tags 200 --seed 1`
//! (cached in the temp dir, loaded with `content::load`, i.e. read + parsed in parallel, with
//! every body rendered by `content::ensure_bodies`). When
//! that script is not there, they are clones of the seed posts with varied dates, tags,
//! categories and paths, parsed in memory.
//!
//! Run: `cargo bench --bench stages` (a few minutes on 2 cores); one group only:
//! `cargo bench --bench stages -- render`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use feedsmith::config::Config;
use feedsmith::content::Loaded;
use feedsmith::post::{self, Post};
use feedsmith::render::{self, Format};
use feedsmith::{build, compress, feed};

/// The tests' sample-site helpers (`root`, `fixture`, `sample_config`).
#[path = "../tests/it/support/site.rs"]
mod site;
use site::{fixture, root, sample_config};

const POSTS: usize = 10_000;
const TAGS: usize = 200;
const SEED: u32 = 1;

/// A fixed "now" after every generated date (the generator ends at 2025-12-31), so that
/// every post is visible and results do not depend on the clock.
fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-06-01T00:00:00+08:00").expect("valid date")
}

/// Seed posts: (file stem, text), sorted by name.
fn seeds() -> Vec<(String, String)> {
    let dir = fixture("seeds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read seeds dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seed posts in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, std::fs::read_to_string(&p).expect("read seed"))
        })
        .collect()
}

/// Generates (once, cached in the temp dir) the 10k-post corpus with the shared generator.
fn generated_corpus() -> Option<PathBuf> {
    let script = root().join("../shared/bench/gen-corpus.py");
    if !script.is_file() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("feedsmith-bench-corpus-{POSTS}-{TAGS}-{SEED}"));
    let done = dir.join(".complete");
    if done.is_file() {
        return Some(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--posts",
            &POSTS.to_string(),
            "--tags",
            &TAGS.to_string(),
            "--seed",
            &SEED.to_string(),
        ])
        .arg("--out")
        .arg(&dir)
        .status();
    match status {
        Ok(s) if s.success() => {
            // Hidden, so `content::discover` skips it.
            std::fs::write(&done, b"").expect("mark corpus complete");
            Some(dir)
        }
        other => {
            eprintln!("gen-corpus.py failed ({other:?}); falling back to cloned seed posts");
            None
        }
    }
}

/// Fallback: clones of the seed posts with new front matter (date, category, 1-5 tags from a
/// Zipf-ish vocabulary of `TAGS`), parsed in memory.
fn cloned_posts(config: &Config) -> Vec<Arc<Post>> {
    let seeds = seeds();
    let bodies: Vec<&str> = seeds
        .iter()
        .map(|(_, text)| text.splitn(3, "---").nth(2).unwrap_or(text.as_str()))
        .collect();
    let categories = ["news", "blog", "events", "release"];
    // Small deterministic PRNG (xorshift), no extra dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = chrono::NaiveDate::from_ymd_opt(2016, 1, 1).expect("valid date");
    (0..POSTS)
        .map(|i| {
            let date = start + chrono::Days::new(next() % 3650);
            let category = categories[(next() % 4) as usize];
            let ntags = 1 + (next() % 5) as usize;
            let mut tags = Vec::with_capacity(ntags);
            while tags.len() < ntags {
                // Rank r with probability ~ 1/r: pick a uniform float and invert.
                let u = (next() % 1_000_000) as f64 / 1_000_000.0;
                let rank = ((TAGS as f64).powf(u) as usize).clamp(1, TAGS);
                let tag = format!("tag-{rank}");
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            let slug = format!("{}-{category}-{i:06}", date.format("%Y%m%d"));
            let text = format!(
                "---\ntitle: 'Post {i}'\ndate: '{date}'\ncategory: {category}\ntags:\n{}\nauthor: 'openEuler'\n---\n{}",
                tags.iter().map(|t| format!("  - {t}")).collect::<Vec<_>>().join("\n"),
                bodies[i % bodies.len()]
            );
            let rel = PathBuf::from(format!("{category}/{}/{slug}/{slug}.md", date.format("%Y/%m")));
            let post = post::parse(config, &rel, &text).expect("cloned seed parses");
            post.body
                .set(Arc::new(post::render_body(config, &post, &text)));
            Arc::new(post)
        })
        .collect()
}

/// 10,000 parsed posts and where they came from.
fn corpus(config: &Config) -> (Vec<Arc<Post>>, &'static str) {
    let started = Instant::now();
    let (posts, source) = match generated_corpus() {
        Some(dir) => {
            let mut cfg = config.clone();
            cfg.content.dir = dir;
            let loaded = feedsmith::content::load(&cfg).expect("load generated corpus");
            assert!(
                loaded.errors.is_empty(),
                "corpus has bad posts: {:?}",
                loaded.errors.first()
            );
            feedsmith::content::ensure_bodies(&cfg, &loaded.posts.iter().collect::<Vec<_>>());
            (loaded.posts, "gen-corpus.py")
        }
        None => (cloned_posts(config), "cloned seeds"),
    };
    eprintln!(
        "corpus: {} posts from {source}, ready in {:.2?}",
        posts.len(),
        started.elapsed()
    );
    (posts, source)
}

/// One benchmark per seed post in group `name`: `prepare` runs once per seed (untimed), `f`
/// is what is measured.
fn per_seed<P, T>(
    c: &mut Criterion,
    name: &str,
    config: Config,
    prepare: impl Fn(&Config, &Path, &str) -> P,
    f: impl Fn(&Config, &P, &str) -> T,
) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (stem, text) in seeds() {
        let rel = PathBuf::from(format!("zh/news/{stem}/{stem}.md"));
        let prepared = prepare(&config, &rel, &text);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&stem), &text, |b, text| {
            b.iter(|| f(black_box(&config), black_box(&prepared), black_box(text)))
        });
    }
    group.finish();
}

fn bench_parse(c: &mut Criterion) {
    per_seed(
        c,
        "parse",
        sample_config(),
        |_, rel, _| rel.to_path_buf(),
        |config, rel, text| post::parse(config, rel, text).expect("seed parses"),
    );
    per_seed(
        c,
        "body",
        sample_config(),
        |config, rel, text| post::parse(config, rel, text).expect("seed parses"),
        post::render_body,
    );
    // The same without sanitizing (`content.sanitize = false`: URLs made absolute by the
    // lol_html pass alone, as before the allowlist existed): the sanitizer's cost is the
    // difference.
    let mut unsanitized = sample_config();
    unsanitized.content.sanitize = false;
    per_seed(
        c,
        "body_unsanitized",
        unsanitized,
        |config, rel, text| post::parse(config, rel, text).expect("seed parses"),
        post::render_body,
    );
}

fn bench_corpus_stages(c: &mut Criterion) {
    let config = sample_config();
    let (posts, _) = corpus(&config);
    let now = now();

    let mut group = c.benchmark_group("plan");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(posts.len() as u64));
    group.bench_function(
        BenchmarkId::from_parameter(format!("{}_posts", posts.len())),
        |b| b.iter(|| feed::plan(black_box(&config), black_box(&posts), now)),
    );
    group.finish();

    let plan = feed::plan(&config, &posts, now);
    eprintln!(
        "plan: {} feeds over {} visible posts",
        plan.feeds.len(),
        plan.visible
    );
    let global = plan
        .feeds
        .iter()
        .find(|f| f.kind == feed::FeedKind::Global)
        .expect("a global feed");
    assert_eq!(
        global.entries.len(),
        config.feed.limit,
        "global feed is full"
    );

    let mut group = c.benchmark_group("render");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut rss = Vec::new();
    for format in Format::ALL {
        let bytes = render::render(&config, global, format).expect("render");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(
            BenchmarkId::from_parameter(
                format!("{:?}_{}_entries", format, global.entries.len()).to_lowercase(),
            ),
            |b| {
                b.iter(|| {
                    render::render(black_box(&config), black_box(global), format).expect("render")
                })
            },
        );
        if format == Format::Rss {
            rss = bytes;
        }
    }
    group.bench_function(
        BenchmarkId::from_parameter(format!("texts_{}_entries", global.entries.len())),
        |b| b.iter(|| render::texts(black_box(&config), black_box(global))),
    );
    group.finish();

    let mut group = c.benchmark_group("compress");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes(rss.len() as u64));
    eprintln!(
        "compress input: RSS {} bytes -> gzip-9 {} bytes, brotli-6 {} bytes",
        rss.len(),
        compress::gzip(&rss, 9).len(),
        compress::brotli(&rss, 6).len()
    );
    group.bench_function("gzip_9_rss", |b| {
        b.iter(|| compress::gzip(black_box(&rss), 9))
    });
    group.bench_function("brotli_6_rss", |b| {
        b.iter(|| compress::brotli(black_box(&rss), 6))
    });
    group.finish();

    // Whole-site build (plan + render + gzip of every feed, on the rayon pool).
    let loaded = Loaded {
        files: posts.len(),
        posts: posts.clone(),
        ..Loaded::default()
    };
    let mut group = c.benchmark_group("build");
    // Seconds per iteration: flat sampling (one iteration per sample) keeps this to ~10 runs.
    group.sampling_mode(SamplingMode::Flat);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.bench_function(
        BenchmarkId::from_parameter(format!("{}_posts", posts.len())),
        |b| {
            b.iter(|| {
                build::build(black_box(&config), black_box(&loaded), now, None, 1).expect("build")
            })
        },
    );
    group.finish();

    // Where `build` spends its time: the same work split into its parts, on one thread
    // (`build` spreads the per-feed work over the rayon pool), plus serve's brotli fill.
    let bodies: Vec<Vec<u8>> = plan
        .feeds
        .iter()
        .flat_map(|f| Format::ALL.into_iter().map(move |format| (f, format)))
        .map(|(f, format)| render::render(&config, f, format).expect("render"))
        .collect();
    let total: usize = bodies.iter().map(Vec::len).sum();
    eprintln!(
        "site: {} feed files, {} bytes of identity bodies ({} KiB per file on average)",
        bodies.len(),
        total,
        total / bodies.len().max(1) / 1024
    );
    let mut group = c.benchmark_group("site_parts");
    group.sampling_mode(SamplingMode::Flat);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("render_all", |b| {
        b.iter(|| {
            for f in &plan.feeds {
                let texts = render::texts(&config, f);
                for format in Format::ALL {
                    black_box(render::render_with(&config, f, format, &texts).expect("render"));
                }
            }
        })
    });
    group.bench_function("gzip_9_all", |b| {
        b.iter(|| {
            bodies
                .iter()
                .map(|body| compress::gzip(body, 9).len())
                .sum::<usize>()
        })
    });
    group.bench_function("brotli_6_all", |b| {
        b.iter(|| {
            bodies
                .iter()
                .map(|body| compress::brotli(body, 6).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse, bench_corpus_stages);
criterion_main!(benches);
