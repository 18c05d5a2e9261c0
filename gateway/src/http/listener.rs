//! The listeners: the partner API over mutual TLS (each connection accepted under the TLS
//! configuration of the policy version active at that moment, the handshake bounded in time),
//! and the plain-HTTP health listener on loopback.

use crate::app::App;
use crate::refusal::Refusal;
use crate::registry::PeerCert;
use crate::store::Db;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// `/healthz` (the process runs), `/readyz` (the database answers) and `/crl`: the covenant
/// CA's revocation list the gateway uses (DER, `application/pkix-crl`), where the example PKI's
/// certificates say it is (their CRL distribution point).
pub fn health_router(db: Db, crl: Option<std::path::PathBuf>) -> Router {
    let crl_route = get(move || {
        let crl = crl.clone();
        async move {
            use rustls::pki_types::pem::PemObject;
            let der = crl.as_deref().and_then(|p| {
                rustls::pki_types::CertificateRevocationListDer::pem_file_iter(p)
                    .ok()?
                    .next()?
                    .ok()
            });
            match der {
                Some(d) => (
                    [(axum::http::header::CONTENT_TYPE, "application/pkix-crl")],
                    d.as_ref().to_vec(),
                )
                    .into_response(),
                None => Refusal::NotFound.into_response(),
            }
        }
    });
    Router::new()
        .route("/crl", crl_route)
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(|State(db): State<Db>| async move {
                match db.ping().await {
                    Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
                    Err(_) => Refusal::StorageUnavailable.into_response(),
                }
            }),
        )
        .with_state(db)
}

/// Serves `app` on `listener` over TLS until `shutdown` resolves, then lets requests in flight
/// finish (at most `grace`). Each new connection is accepted under the TLS configuration of the
/// policy version active at that moment.
pub async fn serve_tls(
    listener: TcpListener,
    app_state: Arc<App>,
    app: Router,
    handshake_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(app_state.policy.load().tls.clone());
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!("TLS handshake timed out");
                    return;
                }
            };
            // The verifier already required a partner certificate; each request maps it to a
            // partner under the policy version it runs under (`bind_policy`).
            let Some(peer) = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCert::from_der(c.as_ref()))
            else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(peer.clone());
                    app.clone().oneshot(req)
                });
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing");
    }
}

/// Serves plain HTTP (the health listener) until `shutdown`.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "health listener stopped");
    }
}
