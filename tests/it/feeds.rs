//! feeds tests
