//! `export`: the committed `feeds/` is exactly the export of `content/`; re-exports leave
//! unchanged files alone; feeds that disappear are removed; `.gz` siblings match.

use std::io::Read;
use std::path::Path;

use feedsmith::{content, export};

use crate::support::{self, Bin, Site, files_under};

/// `export::export` of the content at the current time.
fn try_export(config: &feedsmith::Config, out: &Path) -> Result<export::Summary, String> {
    let loaded = content::load(config).expect("loads");
    let now = chrono::Utc::now().fixed_offset();
    export::export(config, &loaded, now, out, &|| {})
        .map(|(_, summary)| summary)
        .map_err(|e| e.to_string())
}

fn export_to(config: &feedsmith::Config, out: &Path) -> export::Summary {
    try_export(config, out).expect("exports")
}

#[test]
fn exporting_content_reproduces_the_committed_feeds_byte_for_byte() {
    let config = support::sample_config();
    let out = tempfile::tempdir().expect("tmp");
    export_to(&config, out.path());
    let committed = support::root().join("feeds");
    assert_eq!(
        files_under(out.path()),
        files_under(&committed),
        "same file set (run `cargo run -- export` to refresh feeds/)"
    );
    for rel in files_under(&committed) {
        let a = std::fs::read(out.path().join(&rel)).expect("read");
        let b = std::fs::read(committed.join(&rel)).expect("read");
        assert!(
            a == b,
            "`feeds/{rel}` differs from a fresh export (run `cargo run -- export`)"
        );
    }
}

#[test]
fn gz_siblings_decompress_to_their_files_and_equal_served_gzip() {
    let config = support::sample_config();
    let out = tempfile::tempdir().expect("tmp");
    export_to(&config, out.path());
    let snap = support::build(&config);
    for path in snap.paths() {
        let plain = std::fs::read(out.path().join(path)).expect("file");
        let gz = std::fs::read(out.path().join(format!("{path}.gz"))).expect("sibling");
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut decoded)
            .expect("gunzip");
        assert_eq!(decoded, plain, "{path}");
        assert_eq!(
            gz,
            snap.files[path].gzip.to_vec(),
            "{path}: exported = served"
        );
        assert_eq!(
            plain,
            snap.files[path].decompress(),
            "{path}: exported = served"
        );
    }
}

#[test]
fn re_export_leaves_unchanged_files_alone_and_removes_vanished_feeds() {
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["keep"], "x");
    site.post("b.md", "B", "2024-01-02", &["gone"], "y");
    let config = site.config("");
    let out = tempfile::tempdir().expect("tmp");
    std::fs::write(out.path().join("README.txt"), "not ours").expect("write");
    let first = export_to(&config, out.path());
    assert_eq!(first.unchanged, 0);
    assert!(first.written > 0);
    let keep = out.path().join("tags/keep/rss.xml");
    let mtime = std::fs::metadata(&keep)
        .expect("meta")
        .modified()
        .expect("mtime");
    let second = export_to(&config, out.path());
    assert_eq!((second.written, second.removed), (0, 0));
    assert_eq!(second.unchanged, first.written);
    // Drop the `gone` tag: its directory disappears, the untouched tag keeps its mtime.
    std::fs::remove_file(site.dir().join("b.md")).expect("rm");
    let third = export_to(&config, out.path());
    assert_eq!(
        third.removed, 8,
        "3 formats, the preview page and a .gz of each, of tags/gone"
    );
    assert!(!out.path().join("tags/gone").exists());
    assert_eq!(
        std::fs::metadata(&keep)
            .expect("meta")
            .modified()
            .expect("mtime"),
        mtime
    );
    assert!(
        out.path().join("README.txt").exists(),
        "files that are not ours stay"
    );
    assert!(files_under(out.path()).iter().all(|f| !f.ends_with(".tmp")));
}

#[test]
fn export_command_reports_and_sets_the_exit_code() {
    let site = Site::new();
    site.post("content/ok.md", "A", "2024-01-01", &["t"], "x");
    std::fs::write(site.dir().join("config.toml"), "[site]\ntitle = \"T\"\n").expect("config");
    let bin = Bin::new()
        .config("config.toml")
        .args(["export", "--out", "out"])
        .cwd(site.dir());
    let ok = bin.run();
    ok.assert_code(0);
    let stdout = &ok.stdout;
    assert!(
        stdout.contains("written") && stdout.contains("unchanged") && stdout.contains("removed"),
        "{stdout}"
    );
    assert!(site.dir().join("out/rss.xml.gz").is_file());
    site.write("content/bad.md", "---\ntitle: no date\n---\n");
    let bad = bin.run();
    bad.assert_code(1);
    assert!(
        bad.stderr
            .contains("`bad.md`:2:1: front matter field `date` is required")
    );
    assert!(
        site.dir().join("out/rss.xml").is_file(),
        "good posts are still exported"
    );
}

#[test]
fn a_failed_export_leaves_no_temp_file() {
    let config = support::sample_config();
    let out = tempfile::tempdir().expect("tmp");
    // A directory (not empty) where `rss.xml` should go: its rename fails.
    std::fs::create_dir_all(out.path().join("rss.xml/x")).expect("mkdir");
    let result = try_export(&config, out.path());
    assert!(result.is_err(), "export over a directory fails");
    let temps: Vec<String> = files_under(out.path())
        .into_iter()
        .filter(|f| f.ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
}
