//! The iPGA-R gateway: the edges around the pure `policy` crate (CLI for now; HTTP, TLS,
//! storage and crypto as they land).

pub mod cli;
