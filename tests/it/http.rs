//! http tests
