//! End-to-end tests: they run the real `gateway` binary (real TLS, real tokens, real databases).
//! One test binary for all of them.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_arguments,
    clippy::indexing_slicing,
    reason = "a test: a failure is a failed test"
)]

mod aggregates;
mod approaches;
mod audit;
mod browser;
mod cases;
mod console;
mod disclose;
mod durability;
mod faults;
mod helpers;
mod hostile;
mod inproc;
mod keys;
mod lifecycle;
mod matrix;
mod openapi;
mod ops;
mod policy_cli;
mod retention;
mod serve_auth;
mod store_story;
mod tls_scan;
mod truthful;
mod witness;
