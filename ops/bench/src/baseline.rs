//! The baselines B0 and B1: a bare axum + rustls server with required client certificates on the
//! same certificates as the gateway. B0 answers the same number of bytes as an S1 answer; B1
//! also age-encrypts a 4 KB body per request (the irreducible crypto of a disclosure).

use axum::Router;
use axum::body::Bytes;
use axum::routing::any;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use tower::ServiceExt;

/// Which baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Fixed bytes.
    B0,
    /// One age encryption of 4 KB per request.
    B1,
}

fn tls(dir: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let provider = gateway::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in gateway::tls::read_certs(&dir.join("ca.pem"))? {
        roots.add(c)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let chain = gateway::tls::read_certs(&dir.join("gateway/server.pem"))?;
    let key = PrivateKeyDer::from_pem_file(dir.join("gateway/server.key"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves a baseline until killed; prints `{"api": "ADDR"}` once listening.
pub async fn serve(mode: Mode, dir: &Path, bytes: usize) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls(dir)?);
    let recipient = age::x25519::Recipient::from_str(
        std::fs::read_to_string(dir.join("rn/age-recipient.txt"))?.trim(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let fixed = Bytes::from(
        format!(
            "{{\"payload\":\"{}\"}}",
            "x".repeat(bytes.saturating_sub(14))
        )
        .into_bytes(),
    );
    let plain = Arc::new(vec![b'a'; 4096]);
    let app = Router::new().fallback(any(move |_body: Bytes| {
        let (fixed, plain, recipient) = (fixed.clone(), plain.clone(), recipient.clone());
        async move {
            match mode {
                Mode::B0 => fixed,
                Mode::B1 => {
                    let armored = age::encrypt_and_armor(&recipient, &plain).unwrap_or_default();
                    Bytes::from(format!("{{\"payload\":{armored:?}}}").into_bytes())
                }
            }
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "{}",
        serde_json::json!({"api": listener.local_addr()?.to_string()})
    );
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, app, builder) = (acceptor.clone(), app.clone(), builder.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let _ = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
