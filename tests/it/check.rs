//! Per-file errors of the content loader and the exit codes of `feedsmith check`, proved on
//! `tests/fixtures/broken`: `good/` holds valid posts, `bad/` one problem per file (the file
//! name says which; `bad/typo-key.md` and `bad/duplicate-id.md` are themselves valid).
//! Unreadable files cannot be committed, so those cases build a tempdir.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use feedsmith::content::Loaded;
use feedsmith::error::PostErrorKind;
use feedsmith::post::Post;

use crate::support::{self, Bin, Ran, Site, post_at, sources};

const SITE: &str = "[site]\ntime_zone = \"Asia/Shanghai\"\n";

/// Loads the posts and renders every body, as feeds showing all of them would.
fn load(dir: &Path) -> Loaded {
    support::load_with_bodies(&support::config_for(dir, SITE))
}

fn html(post: &Post) -> String {
    support::body(post).html_text()
}

/// Name of an error kind. No wildcard arm: a new kind fails to compile here until it gets a
/// name, an entry in `ALL_KINDS` and a fixture file.
fn kind_name(kind: &PostErrorKind) -> &'static str {
    match kind {
        PostErrorKind::Unreadable(_) => "Unreadable",
        PostErrorKind::NotUtf8(_) => "NotUtf8",
        PostErrorKind::Empty => "Empty",
        PostErrorKind::NoFrontMatter => "NoFrontMatter",
        PostErrorKind::UnterminatedFrontMatter => "UnterminatedFrontMatter",
        PostErrorKind::Yaml(_) => "Yaml",
        PostErrorKind::NotAMapping(_) => "NotAMapping",
        PostErrorKind::MissingField(_) => "MissingField",
        PostErrorKind::InvalidField { .. } => "InvalidField",
        PostErrorKind::Duplicate { .. } => "Duplicate",
        PostErrorKind::TooLarge { .. } => "TooLarge",
        PostErrorKind::NotAFile => "NotAFile",
        PostErrorKind::OutsideRoot(_) => "OutsideRoot",
    }
}

const ALL_KINDS: [&str; 13] = [
    "Unreadable",
    "NotUtf8",
    "Empty",
    "NoFrontMatter",
    "UnterminatedFrontMatter",
    "Yaml",
    "NotAMapping",
    "MissingField",
    "InvalidField",
    "Duplicate",
    "TooLarge",
    "NotAFile",
    "OutsideRoot",
];

/// Kinds proved by tests that make their files at run time (`tests/it/hostile.rs` and the
/// tempdir tests below), not by the committed broken fixture.
const MADE_AT_RUN_TIME: [&str; 4] = ["Unreadable", "TooLarge", "NotAFile", "OutsideRoot"];

/// One expected error of the broken fixture.
struct Expected {
    path: &'static str,
    /// 1-based line:col, counted by hand from the top of the file (the `---` line is line 1).
    position: Option<(usize, usize)>,
    kind: &'static str,
    message: &'static str,
}

/// Every error of `tests/fixtures/broken`, in the loader's order (by path).
const EXPECTED_ERRORS: &[Expected] = &[
    Expected {
        // Line 4 `draft: yes`: the value starts at column 8.
        path: "bad/draft-not-bool.md",
        position: Some((4, 8)),
        kind: "InvalidField",
        message: "front matter field `draft` must be true or false, found a string",
    },
    Expected {
        // Zero bytes: nothing to point at.
        path: "bad/empty.md",
        position: None,
        kind: "Empty",
        message: "file is empty",
    },
    Expected {
        // The YAML starts on line 2 (`- title: ...`).
        path: "bad/front-matter-not-a-mapping.md",
        position: Some((2, 1)),
        kind: "NotAMapping",
        message: "front matter must be a mapping of `key: value` lines, found a list",
    },
    Expected {
        // Line 3 `date: 2024-13-45`: the value starts at column 7.
        path: "bad/invalid-date.md",
        position: Some((3, 7)),
        kind: "InvalidField",
        message: "front matter field `date` is not a date: `2024-13-45` (expected",
    },
    Expected {
        // A missing field points at the first front-matter line.
        path: "bad/missing-date.md",
        position: Some((2, 1)),
        kind: "MissingField",
        message: "front matter field `date` is required",
    },
    Expected {
        path: "bad/missing-title.md",
        position: Some((2, 1)),
        kind: "MissingField",
        message: "front matter field `title` is required",
    },
    Expected {
        // Line 1 should be `---` and is `# Notes ...`.
        path: "bad/no-front-matter.md",
        position: Some((1, 1)),
        kind: "NoFrontMatter",
        message: "no front matter: a post must start with a `---` line",
    },
    Expected {
        // Body line 5 `Caf\xe9 au lait`: 0xE9 is column 4; 4+21+17+4 bytes of lines 1-4,
        // plus `Caf`, is byte offset 49.
        path: "bad/not-utf8.md",
        position: Some((5, 4)),
        kind: "NotUtf8",
        message: "file is not valid UTF-8 (byte offset 49); save it as UTF-8",
    },
    Expected {
        // Line 4 `tags: {release: "1.0", lang: rust}`: the value starts at column 7.
        path: "bad/tags-wrong-type.md",
        position: Some((4, 7)),
        kind: "InvalidField",
        message: "front matter field `tags` must be a string or a list, found a mapping",
    },
    Expected {
        // Line 2 `title: [Release, Notes]`: the value starts at column 8.
        path: "bad/title-wrong-type.md",
        position: Some((2, 8)),
        kind: "InvalidField",
        message: "front matter field `title` must be a string, found a list",
    },
    Expected {
        // The opening `---` on line 1 is never closed.
        path: "bad/unterminated-front-matter.md",
        position: Some((1, 1)),
        kind: "UnterminatedFrontMatter",
        message: "front matter is not terminated: no closing `---` line",
    },
    Expected {
        // Line 3 `title: Feedsmith: a feed generator`: the second colon is column 17.
        path: "bad/yaml-syntax-error.md",
        position: Some((3, 17)),
        kind: "Yaml",
        message: "front matter is not valid YAML: mapping values are not allowed in this context",
    },
    Expected {
        // `bad/duplicate-id.md` reuses this post's id. The first path (in sorted order) keeps
        // an id and the later one is reported, and `bad/` sorts before `good/`.
        path: "good/english-more.md",
        position: None,
        kind: "Duplicate",
        message: "id `urn:feedsmith:release-1-0` is already used by `bad/duplicate-id.md`",
    },
];

/// `` `path`:line:col: `` (or `` `path`: ``), the start of an error's Display.
fn prefix(e: &Expected) -> String {
    match e.position {
        Some((line, col)) => format!("`{}`:{line}:{col}: ", e.path),
        None => format!("`{}`: ", e.path),
    }
}

/// One expected good post. `file` is relative to `good/`.
struct Good {
    file: &'static str,
    title: &'static str,
    /// RFC 3339 with the offset: offset-less dates are in the configured Asia/Shanghai.
    date: &'static str,
    tags: &'static [&'static str],
    authors: &'static [&'static str],
    summary: &'static str,
}

const GOOD: &[Good] = &[
    Good {
        file: "authors-list.md",
        title: "Two authors, one tag",
        date: "2024-07-03T09:00:00+08:00",
        tags: &["community"],
        authors: &["Bob", "Carol"],
        summary: "Written together.",
    },
    Good {
        file: "bom-crlf.md",
        title: "BOM and CRLF",
        date: "2024-06-02T00:00:00+08:00",
        tags: &["windows", "encoding"],
        authors: &[],
        summary: "Saved by an editor on Windows.",
    },
    Good {
        file: "english-more.md",
        title: "Release 1.0: what's new",
        date: "2024-05-01T10:30:00+08:00",
        tags: &["release", "rust"],
        authors: &["Alice"],
        summary: "The first stable release is out. Upgrading takes a minute.",
    },
];

fn assert_good(post: &Post, expected: &Good) {
    let what = &post.source;
    assert_eq!(post.title, expected.title, "{what}");
    // `DateTime` equality ignores the offset, so compare the text.
    assert_eq!(post.date.to_rfc3339(), expected.date, "{what}");
    assert_eq!(post.updated, post.date, "{what}: no `updated` field");
    assert_eq!(post.tags, expected.tags, "{what}");
    assert_eq!(post.authors, expected.authors, "{what}");
    assert_eq!(post.summary, expected.summary, "{what}");
    assert!(!post.draft, "{what}");
    assert!(post.warnings.is_empty(), "{what}: {:?}", post.warnings);
}

#[test]
fn fixture_files_keep_their_exact_bytes() {
    let dir = support::fixture("broken");
    let read = |rel: &str| std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let bom_crlf = read("good/bom-crlf.md");
    assert!(
        bom_crlf.starts_with(b"\xEF\xBB\xBF---\r\n"),
        "BOM, then CRLF"
    );
    assert!(
        !bom_crlf.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "only CRLF line ends"
    );
    assert!(read("bad/empty.md").is_empty());
    let latin1 = read("bad/not-utf8.md");
    assert_eq!(
        latin1.get(49),
        Some(&0xE9),
        "the bad byte sits at offset 49"
    );
    assert!(std::str::from_utf8(&latin1).is_err());
}

#[test]
fn each_broken_file_is_reported_with_its_path_and_position() {
    let loaded = load(&support::fixture("broken"));
    let got: Vec<PathBuf> = loaded.errors.iter().map(|e| e.path.clone()).collect();
    let want: Vec<PathBuf> = EXPECTED_ERRORS
        .iter()
        .map(|e| PathBuf::from(e.path))
        .collect();
    assert_eq!(
        got, want,
        "exactly one error per broken file, sorted by path"
    );
    for (error, expected) in loaded.errors.iter().zip(EXPECTED_ERRORS) {
        let shown = error.to_string();
        assert_eq!(error.position, expected.position, "{shown}");
        assert_eq!(kind_name(&error.kind), expected.kind, "{shown}");
        assert!(
            shown.starts_with(&prefix(expected)),
            "{shown}\nshould start with {}",
            prefix(expected)
        );
        assert!(
            shown.contains(expected.message),
            "{shown}\nshould contain {}",
            expected.message
        );
    }
}

#[test]
fn the_fixture_exercises_every_per_file_error_kind_but_unreadable() {
    let loaded = load(&support::fixture("broken"));
    let seen: BTreeSet<&str> = loaded.errors.iter().map(|e| kind_name(&e.kind)).collect();
    let all: BTreeSet<&str> = ALL_KINDS
        .into_iter()
        .filter(|k| !MADE_AT_RUN_TIME.contains(k))
        .collect();
    assert_eq!(
        seen, all,
        "{MADE_AT_RUN_TIME:?} are proved by tests that make their files"
    );
}

#[test]
fn good_posts_load_with_their_fields_in_the_site_time_zone() {
    let loaded = load(&support::fixture("broken/good"));
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        sources(&loaded),
        ["authors-list.md", "bom-crlf.md", "english-more.md"]
    );
    for expected in GOOD {
        assert_good(post_at(&loaded, expected.file), expected);
    }

    let english = post_at(&loaded, "english-more.md");
    assert_eq!(english.id, "urn:feedsmith:release-1-0");
    assert_eq!(english.url, "http://localhost:8080/english-more.html");
    assert_eq!(english.lang, "en");
    assert!(
        html(english).contains("<h2>Details</h2>"),
        "{}",
        html(english)
    );
    assert!(
        html(english).contains("Everything below the marker"),
        "the body is whole"
    );

    let bom = post_at(&loaded, "bom-crlf.md");
    assert_eq!(
        bom.id, "http://localhost:8080/bom-crlf.html",
        "id defaults to the permalink"
    );
    assert!(!html(bom).contains('\r'), "{:?}", html(bom));
    assert!(!html(bom).contains('\u{FEFF}'), "{:?}", html(bom));
}

#[test]
fn good_posts_still_load_next_to_broken_ones() {
    let loaded = load(&support::fixture("broken"));
    assert_eq!(loaded.files, 17, "14 files in bad/, 3 in good/");
    assert_eq!(
        sources(&loaded),
        [
            "bad/duplicate-id.md",
            "bad/typo-key.md",
            "good/authors-list.md",
            "good/bom-crlf.md"
        ],
        "every file without an error loads; good/english-more.md lost its id to bad/duplicate-id.md"
    );
    for expected in GOOD.iter().filter(|g| g.file != "english-more.md") {
        assert_good(
            post_at(&loaded, &format!("good/{}", expected.file)),
            expected,
        );
    }
    // A path's first directory is its section, hence its category.
    assert_eq!(post_at(&loaded, "good/bom-crlf.md").categories, ["good"]);
}

#[test]
fn a_reused_id_stays_with_the_first_path_and_the_later_file_is_reported() {
    let loaded = load(&support::fixture("broken"));
    let owners: Vec<&str> = loaded
        .posts
        .iter()
        .filter(|p| p.id == "urn:feedsmith:release-1-0")
        .map(|p| p.source.as_str())
        .collect();
    assert_eq!(owners, ["bad/duplicate-id.md"], "one post per id");
    let duplicate = loaded
        .errors
        .iter()
        .find(|e| matches!(e.kind, PostErrorKind::Duplicate { .. }))
        .expect("the reuse is reported");
    assert_eq!(
        duplicate.to_string(),
        "`good/english-more.md`: id `urn:feedsmith:release-1-0` is already used by `bad/duplicate-id.md`"
    );
}

#[test]
fn a_misspelt_key_is_a_warning_that_suggests_the_known_key() {
    let loaded = load(&support::fixture("broken"));
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "`bad/typo-key.md`:4:1: warning: unknown front matter field `tages` is ignored (did you mean `tags`?)"
        ]
    );
    let post = post_at(&loaded, "bad/typo-key.md");
    assert_eq!(post.title, "A typo in a key");
    assert!(
        post.tags.is_empty(),
        "the misspelt key is ignored: {:?}",
        post.tags
    );
}

/// Reading a symlink to `/proc/self/mem` (followed only because external symlinks are
/// allowed here) fails with EIO at offset 0 even for root, so this drives `PostErrorKind::Unreadable` through `content::load` wherever the tests run.
#[cfg(target_os = "linux")]
#[test]
fn a_file_that_fails_to_read_is_reported_as_unreadable_with_the_os_error() {
    let os_error = match std::fs::read("/proc/self/mem") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("reading /proc/self/mem from offset 0 should fail"),
    };
    let site = Site::new();
    site.post("ok.md", "Fine", "2024-05-01", &[], "Body.");
    std::os::unix::fs::symlink("/proc/self/mem", site.dir().join("mem.md")).expect("symlink");
    // The link leads outside the content directory: allowed here, so that it is read.
    let config = site.config(&format!(
        "{SITE}\n[content]\nfollow_external_symlinks = true\n"
    ));
    let loaded = support::load_with_bodies(&config);
    assert_eq!(loaded.files, 2);
    assert_eq!(sources(&loaded), ["ok.md"], "the readable post still loads");
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors, [format!("`mem.md`: cannot read file: {os_error}")]);
    assert!(matches!(
        loaded.errors[0].kind,
        PostErrorKind::Unreadable(_)
    ));
}

/// Mode 000 stops an ordinary user; a privileged one (root, CAP_DAC_OVERRIDE) reads the file
/// anyway, and then the post must simply load.
#[cfg(unix)]
#[test]
fn a_file_without_read_permission_is_unreadable_unless_the_user_is_privileged() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    site.post("locked.md", "Locked", "2024-05-01", &[], "Body.");
    let path = site.dir().join("locked.md");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    let loaded = load(site.dir());
    assert_eq!(loaded.files, 1);
    match std::fs::read(&path) {
        Ok(_) => {
            assert!(
                loaded.errors.is_empty(),
                "privileged user: {:?}",
                loaded.errors
            );
            assert_eq!(sources(&loaded), ["locked.md"]);
        }
        Err(e) => {
            assert!(loaded.posts.is_empty());
            let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
            assert_eq!(errors, [format!("`locked.md`: cannot read file: {e}")]);
        }
    }
}

/// What happens today: `content::discover` follows links and drops walkdir's error for a
/// link whose target is missing, so the file is neither a post nor an error and `check`
/// stays silent about it. (Reported as a gap; if the loader starts reporting it, this
/// should expect `PostErrorKind::Unreadable` for `gone.md`.)
#[cfg(unix)]
#[test]
fn a_dangling_symlink_is_reported_as_unreadable() {
    let site = Site::new();
    site.post("ok.md", "Fine", "2024-05-01", &[], "Body.");
    std::os::unix::fs::symlink("nowhere.md", site.dir().join("gone.md")).expect("symlink");
    let loaded = load(site.dir());
    assert_eq!(loaded.files, 2, "gone.md is counted");
    assert_eq!(sources(&loaded), ["ok.md"]);
    assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
    let error = loaded.errors[0].to_string();
    assert!(
        error.starts_with("`gone.md`: cannot read file: "),
        "{error}"
    );
}

/// Columns elsewhere (field values, YAML errors) count characters; `content::decode` counts
/// bytes, so after `é` (2 bytes) the column is one too far. Fix in `decode`: count the chars
/// of the valid prefix's last line.
#[test]
fn a_bad_byte_after_multibyte_text_is_located_by_character_column() {
    let site = Site::new();
    // Line 2 `title: Café ` is 12 characters (13 bytes), so the bad byte is column 13.
    std::fs::write(
        site.dir().join("cafe.md"),
        b"---\ntitle: Caf\xC3\xA9 \xFF\n",
    )
    .expect("write");
    let loaded = load(site.dir());
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["`cafe.md`:2:13: file is not valid UTF-8 (byte offset 17); save it as UTF-8"]
    );
}

/// A post dropped for a duplicate URL must not keep its id: today `Cache::loaded` records
/// the id before it checks the URL, so a later post with that id is reported as a duplicate
/// of a post that is not published, and neither of them is.
#[test]
fn a_post_dropped_for_a_duplicate_url_does_not_claim_its_id() {
    let site = Site::new();
    // `a/x.markdown` and `a/x.md` share the URL `a/x.html`; the first path keeps it.
    site.write(
        "a/x.markdown",
        "---\ntitle: A\ndate: 2024-01-01\nid: one\n---\n",
    );
    site.write("a/x.md", "---\ntitle: B\ndate: 2024-01-01\nid: two\n---\n");
    site.write("b/y.md", "---\ntitle: C\ndate: 2024-01-01\nid: two\n---\n");
    let loaded = load(site.dir());
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["`a/x.md`: URL `http://localhost:8080/a/x.html` is already used by `a/x.markdown`"]
    );
    assert_eq!(sources(&loaded), ["a/x.markdown", "b/y.md"]);
}

// ---- the binary ------------------------------------------------------------------------

/// Runs `feedsmith --config <tmp>/config.toml check` with `config` as the file's text;
/// returns the run and the config's path.
fn run_check(config: &str) -> (Ran, PathBuf) {
    let bin = Bin::new().config_text(config).arg("check");
    (bin.run(), bin.config_path().to_path_buf())
}

fn config_toml(content_dir: &Path) -> String {
    support::config_text(content_dir, SITE)
}

/// Exit code 2, nothing on stdout, and stderr starting with `expected`.
fn assert_fatal(output: &Ran, expected: &str) {
    output.assert_code(2);
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    assert!(
        stderr.starts_with(expected),
        "{stderr}\nshould start with {expected}"
    );
    assert!(stdout.is_empty(), "nothing was checked: {stdout}");
}

#[test]
fn check_exits_0_with_a_summary_on_clean_content() {
    let (output, _) = run_check(&config_toml(&support::fixture("broken/good")));
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    output.assert_code(0);
    let summary = stdout.lines().next().unwrap_or_default();
    assert!(summary.starts_with("checked 3 files in "), "{stdout}");
    assert!(
        summary.contains(": 3 posts (3 visible, 0 drafts, 0 scheduled), "),
        "{stdout}"
    );
    assert!(summary.ends_with(", 0 error(s), 0 warning(s)"), "{stdout}");
    assert!(!stderr.contains('`'), "no file is reported: {stderr}");
}

#[test]
fn check_exits_1_and_prints_each_broken_file_as_path_line_col_message() {
    let (output, _) = run_check(&config_toml(&support::fixture("broken")));
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    output.assert_code(1);
    let lines: Vec<&str> = stderr.lines().collect();
    for expected in EXPECTED_ERRORS {
        let prefix = prefix(expected);
        let matching: Vec<&&str> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(matching.len(), 1, "one line for {prefix} in:\n{stderr}");
        assert!(
            matching[0].contains(expected.message),
            "{} lacks {}",
            matching[0],
            expected.message
        );
    }
    assert!(
        lines.contains(
            &"`bad/typo-key.md`:4:1: warning: unknown front matter field `tages` is ignored (did you mean `tags`?)"
        ),
        "{stderr}"
    );
    assert!(stdout.starts_with("checked 17 files in "), "{stdout}");
    assert!(stdout.contains(": 4 posts ("), "{stdout}");
    assert!(stdout.contains(", 13 error(s), 1 warning(s)"), "{stdout}");
}

#[test]
fn check_exits_2_naming_an_unknown_config_key_and_its_line() {
    let dir = support::fixture("broken/good");
    let config = format!(
        "[site]\ntime_zone = \"Asia/Shanghai\"\ntittle = \"typo\"\n\n[content]\ndir = {:?}\n",
        dir.to_string_lossy()
    );
    let (output, path) = run_check(&config);
    let expected = format!(
        "error: invalid config `{}`: 3:1: unknown field `tittle`",
        path.display()
    );
    assert_fatal(&output, &expected);
}

#[test]
fn check_exits_2_when_the_content_dir_is_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("no-such-dir");
    let (output, _) = run_check(&config_toml(&missing));
    let expected = format!(
        "error: content directory `{}` cannot be read",
        missing.display()
    );
    assert_fatal(&output, &expected);
}
