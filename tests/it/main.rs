//! The one integration-test binary. Modules by capability; helpers in `support`.

mod archives;
mod check;
mod export;
mod feeds;
mod hostile;
mod http;
mod incremental;
mod ops;
mod pages;
mod seeds;
mod support;
mod watch;
mod websub;
