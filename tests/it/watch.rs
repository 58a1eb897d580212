//! watch tests
