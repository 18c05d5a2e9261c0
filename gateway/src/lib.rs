//! The iPGA-R gateway: the edges around the pure `policy` crate: HTTP over mutual TLS,
//! certificate-bound tokens, the case register, SQLite and PostgreSQL storage, the example PKI,
//! configuration and the command line.

pub mod app;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod demo;
pub mod http;
pub mod lifecycle;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod monitor;
pub mod oprf;
pub mod pki;
pub mod refusal;
pub mod register;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod sources;
pub mod startup;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testkit;
pub mod tls;
pub mod trace;
pub mod witness;
pub mod witnessing;

/// Installs aws-lc-rs as the process-wide rustls provider (once; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
