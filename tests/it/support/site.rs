//! The sample site: the part of the test harness that `benches/stages.rs` shares (it includes
//! this file with `#[path]`). Only what both the tests and the bench use belongs here, so that
//! neither needs `allow(dead_code)`; everything else is in `tests/it/support.rs`.

use std::path::PathBuf;

use feedsmith::{Config, config};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The repository's own `config.toml` (the sample site: `content/` and its settings), with
/// paths resolved against the repository root.
pub fn sample_config() -> Config {
    let text = std::fs::read_to_string(root().join("config.toml")).expect("read config.toml");
    config::parse(&text, &root()).expect("config.toml is valid")
}
