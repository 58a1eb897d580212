//! Incremental rebuilds (`planner::Planner`, `content::Cache::take_delta`): random edits
//! published one at a time serve exactly what a fresh full build of the same content serves.
//! (Debug builds also compare every incremental plan with `feed::plan` inside the publisher.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use feedsmith::publish::Publisher;
use feedsmith::snapshot::{Encoding, Snapshot};

use crate::support::{self, Site};

/// A small linear congruential generator (Knuth's MMIX constants): seeded, reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tags with two spellings of one name, one whose slug is empty and two whose slugs
/// collide, so that display names, slug fallbacks and collisions move as posts come and go.
const TAGS: &[&str] = &[
    "Rust", "rust", "RUST", "Go", "web", "内核", "C D", "c-d", "..", "ops", "news",
];
const SECTIONS: &[&str] = &["blog", "notes", "events"];

/// One post file as the test writes it.
#[derive(Clone)]
struct Spec {
    title: String,
    day: usize,
    hour: usize,
    tags: Vec<&'static str>,
    draft: bool,
    lang: Option<&'static str>,
    future: bool,
    broken: bool,
    body: u64,
}

impl Spec {
    fn random(rng: &mut Lcg, n: usize) -> Spec {
        let tags = (0..rng.below(4)).map(|_| *rng.pick(TAGS)).collect();
        Spec {
            title: format!("Post {n}"),
            day: 1 + rng.below(28),
            hour: rng.below(24),
            tags,
            draft: false,
            lang: None,
            future: false,
            broken: false,
            body: rng.next(),
        }
    }

    fn text(&self) -> String {
        if self.broken {
            return "---\ntitle: [unclosed\n---\nbroken\n".into();
        }
        let year = if self.future { 2999 } else { 2024 };
        let tags: Vec<String> = self.tags.iter().map(|t| format!("{t:?}")).collect();
        let mut front = format!(
            "title: {:?}\ndate: \"{year}-03-{:02}T{:02}:00:00Z\"\ntags: [{}]\n",
            self.title,
            self.day,
            self.hour,
            tags.join(", ")
        );
        if self.draft {
            front.push_str("draft: true\n");
        }
        if let Some(lang) = self.lang {
            front.push_str(&format!("lang: {lang}\n"));
        }
        format!("---\n{front}---\nBody {} of *{}*.\n", self.body, self.title)
    }
}

/// Every file a snapshot serves: its bytes, ETags, Last-Modified and content type.
fn served(snapshot: &Snapshot) -> BTreeMap<String, (Vec<u8>, String, String, String)> {
    snapshot
        .files
        .iter()
        .map(|(path, file)| {
            (
                path.clone(),
                (
                    file.decompress(),
                    format!(
                        "{} {}",
                        file.etag(Encoding::Identity),
                        file.etag(Encoding::Gzip)
                    ),
                    file.last_modified_http().to_string(),
                    file.content_type.to_string(),
                ),
            )
        })
        .collect()
}

/// What a fresh publisher serves for the same content, compared file by file.
fn assert_same_as_full_build(publisher: &Publisher, step: usize) {
    let mut fresh = Publisher::new(publisher.config().clone());
    fresh.rebuild(None).expect("full build");
    let full = fresh.store().load_full();
    let incremental = publisher.store().load_full();
    let (a, b) = (served(&incremental), served(&full));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "paths after step {step}"
    );
    for (path, file) in &a {
        assert!(
            b[path] == *file,
            "`{path}` after step {step} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&file.0),
            String::from_utf8_lossy(&b[path].0)
        );
    }
    assert_eq!(
        incremental.problems, full.problems,
        "problems after step {step}"
    );
    assert_eq!(
        (incremental.posts, incremental.feeds, incremental.next_due),
        (full.posts, full.feeds, full.next_due),
        "counts after step {step}"
    );
}

#[test]
fn two_hundred_random_edits_serve_what_a_full_build_serves() {
    let site = Site::new();
    // Archive pages of 3: edits move posts between pages, start pages and end them.
    let config = site.config("[feed]\nlimit = 4\narchive_size = 3\n");
    let mut rng = Lcg(0x5eed_f00d);
    let mut files: BTreeMap<String, Spec> = BTreeMap::new();
    let mut made = 0;
    let mut path_for = |rng: &mut Lcg| {
        made += 1;
        (format!("{}/p{made:03}.md", rng.pick(SECTIONS)), made)
    };
    for _ in 0..24 {
        let (path, n) = path_for(&mut rng);
        let spec = Spec::random(&mut rng, n);
        site.write(&path, &spec.text());
        files.insert(path, spec);
    }
    let mut publisher = Publisher::new(config);
    publisher.rebuild(None).expect("first build");
    let mut kinds = BTreeMap::new();
    let mut incremental = 0;
    for step in 1..=200 {
        let existing: Vec<String> = files.keys().cloned().collect();
        let op = if existing.len() < 5 { 0 } else { rng.below(9) };
        let path = match op {
            // add
            0 => {
                let (path, n) = path_for(&mut rng);
                files.insert(path.clone(), Spec::random(&mut rng, n));
                path
            }
            // remove
            1 => {
                let path = rng.pick(&existing).clone();
                files.remove(&path);
                std::fs::remove_file(site.dir().join(&path)).expect("remove");
                *kinds.entry("remove").or_insert(0) += 1;
                kinds.entry("add").or_insert(0);
                let report = publisher
                    .rebuild(Some(&[PathBuf::from(&path)]))
                    .expect("rebuild");
                incremental += usize::from(report.incremental);
                check(&publisher, step);
                continue;
            }
            _ => {
                let path = rng.pick(&existing).clone();
                let spec = files.get_mut(&path).expect("exists");
                match op {
                    2 => spec.tags = (0..rng.below(4)).map(|_| *rng.pick(TAGS)).collect(),
                    3 => {
                        spec.day = 1 + rng.below(28);
                        spec.hour = rng.below(24);
                    }
                    4 => spec.draft = true,
                    5 => spec.draft = false,
                    6 => spec.body = rng.next(),
                    // Scheduled for later, or back; broken (keeps its last good version), or
                    // fixed; another language now and then (every feed's URL changes).
                    7 => spec.future = !spec.future,
                    _ if rng.below(4) == 0 => {
                        spec.lang = if spec.lang.is_some() {
                            None
                        } else {
                            Some("de")
                        }
                    }
                    _ => {
                        // Broken, then fixed with a new body: a full build of the final
                        // content cannot know a broken file's last good version.
                        spec.broken = true;
                        site.write(&path, &spec.text());
                        publisher
                            .rebuild(Some(&[PathBuf::from(&path)]))
                            .expect("rebuild");
                        let problems = publisher.store().load().problems.len();
                        assert!(problems > 0, "the broken file is reported");
                        spec.broken = false;
                        spec.body = rng.next();
                    }
                }
                path
            }
        };
        let name = [
            "add", "remove", "retag", "redate", "draft", "undraft", "body", "schedule",
        ]
        .get(op)
        .copied()
        .unwrap_or("lang/broken");
        *kinds.entry(name).or_insert(0) += 1;
        site.write(&path, &files[&path].text());
        let report = publisher
            .rebuild(Some(&[PathBuf::from(&path)]))
            .expect("rebuild");
        incremental += usize::from(report.incremental);
        check(&publisher, step);
    }
    // Most edits were planned incrementally (a language coming or going is not).
    assert!(
        incremental > 150,
        "{incremental} of 200 rebuilds incremental"
    );
    // Every kind of edit happened.
    assert!(
        kinds.len() >= 9 && kinds.values().all(|&n| n > 0),
        "{kinds:?}"
    );
    assert_same_as_full_build(&publisher, 200);
    let served = publisher.store().load_full();
    assert!(served.posts >= 5, "{} visible posts", served.posts);
}

/// Compares with a full build at a few points on the way.
fn check(publisher: &Publisher, step: usize) {
    if step.is_multiple_of(10) || step == 7 {
        assert_same_as_full_build(publisher, step);
    }
}

#[test]
fn a_batch_of_edits_at_once_serves_what_a_full_build_serves() {
    let site = Site::new();
    let config = site.config("[feed]\nlimit = 8\narchive_size = 2\narchive_content = \"full\"\n");
    for i in 0..12 {
        site.post(
            &format!("blog/{i}.md"),
            &format!("P{i}"),
            &format!("2024-02-{:02}", i + 1),
            &["a", if i % 2 == 0 { "even" } else { "odd" }],
            "x",
        );
    }
    let mut publisher = Publisher::new(config);
    publisher.rebuild(None).expect("first build");
    // Rename one post, retag another, remove a third and add two, in one batch.
    std::fs::rename(site.dir().join("blog/1.md"), site.dir().join("blog/1b.md")).expect("rename");
    site.post("blog/2.md", "P2", "2024-02-03", &["Odd"], "y");
    std::fs::remove_file(site.dir().join("blog/5.md")).expect("remove");
    site.post("news/new.md", "New", "2024-03-01", &["even"], "z");
    site.post("news/old.md", "Old", "2023-03-01", &["a"], "z");
    let paths: Vec<PathBuf> = ["blog/1.md", "blog/1b.md", "blog/2.md", "blog/5.md", "news"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let report = publisher.rebuild(Some(&paths)).expect("rebuild");
    assert_eq!(report.files_changed, 6, "{report:?}");
    assert!(report.incremental, "{report:?}");
    assert_same_as_full_build(&publisher, 1);
    assert!(support::text(&publisher.store().load(), "tags/odd/rss.xml").contains("P2"));
}
