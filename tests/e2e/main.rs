//! End-to-end tests: they run the real `gateway` binary. One test binary for all of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod policy_cli;
