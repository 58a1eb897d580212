//! Unit tests of `post`.
