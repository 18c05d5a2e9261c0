//! The listeners: the partner API over mutual TLS (each connection accepted under the TLS
//! configuration of the policy version active at that moment, the handshake bounded in time),
//! and the plain-HTTP health listener on loopback.

use crate::app::App;
use crate::refusal::Refusal;
use crate::registry::PeerCert;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The plain loopback listener: `/healthz` (the process runs), `/readyz` (it can do its work:
/// 503 naming each failed check), `/metrics` (OpenMetrics text) and `/crl`: the covenant CA's
/// revocation list the gateway uses (DER, `application/pkix-crl`), where the example PKI's
/// certificates say it is (their CRL distribution point).
pub fn health_router(app: Arc<App>, crl: Option<std::path::PathBuf>) -> Router {
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
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn readyz(State(app): State<Arc<App>>) -> axum::response::Response {
    let r = crate::service::health::readiness(&app).await;
    let status = if r.ready() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

async fn metrics(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let m = crate::metrics::metrics();
    // What is a state rather than an event is read now, at the scrape.
    let active = app.policy.load();
    m.set_policy_version(active.version());
    if let Some(t) = active.crl_validity.next_update {
        m.crl_next_update.set(t);
    }
    if let Some(t) = active.crl_validity.this_update {
        m.crl_this_update.set(t);
    }
    // Prometheus asks for OpenMetrics; anything else gets the classic text format.
    let open_metrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let (text, content_type) = if open_metrics {
        (
            m.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            m.encode_prometheus(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    match text {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(_) => Refusal::Internal.into_response(),
    }
}

/// Counts a connection as open while it lives.
struct ActiveConnection;

impl ActiveConnection {
    fn new() -> Self {
        crate::metrics::metrics().connections_active.inc();
        ActiveConnection
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        crate::metrics::metrics().connections_active.dec();
    }
}

/// Why a handshake failed, in a word fit for a metric label (never the peer's data).
fn handshake_reason(e: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    match e.get_ref().and_then(|i| i.downcast_ref::<E>()) {
        Some(E::NoCertificatesPresented) => "no-client-certificate",
        Some(E::InvalidCertificate(rustls::CertificateError::Revoked)) => "certificate-revoked",
        Some(E::InvalidCertificate(rustls::CertificateError::Expired)) => "certificate-expired",
        Some(E::InvalidCertificate(_)) => "certificate-invalid",
        Some(E::PeerIncompatible(_)) => "incompatible",
        Some(E::AlertReceived(_)) => "alert-received",
        Some(_) => "tls-error",
        None => "io-error",
    }
}

/// A connection over its partner's connection limit: every request on it is refused
/// (`too-many-connections`, recorded) and the connection closed.
#[derive(Debug, Clone, Copy)]
pub struct OverConnectionLimit(pub usize);

/// Open connections per partner (by the partner's id under the policy version active when the
/// connection was accepted; certificates no partner has count under their fingerprint).
#[derive(Default)]
struct PerPartner(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One connection counted for its partner while it lives.
struct Counted {
    map: Arc<PerPartner>,
    key: String,
}

impl PerPartner {
    /// Counts one more connection for `key`; `None` when it would exceed `limit`.
    fn admit(self: &Arc<Self>, key: String, limit: usize) -> Option<Counted> {
        let mut m = self.0.lock().ok()?;
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Counted {
            map: self.clone(),
            key,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.0.lock()
            && let Some(n) = m.get_mut(&self.key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// The connection's bytes, closed when none move for `idle` in either direction: bounds a
/// connection that holds a socket without using it (an HTTP/2 client that opens no stream, a
/// keep-alive connection that sends nothing).
struct Idle<S> {
    inner: S,
    idle: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, idle: Duration) -> Self {
        Idle {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        let at = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(at);
    }

    fn expired(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        std::future::Future::poll(self.deadline.as_mut(), cx).is_ready()
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle")
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Idle<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Idle<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// hyper's own bound on a request head: eight times the gateway's (at least 64 KiB), so that a
/// head the gateway refuses with a recorded problem (a 64 KB token included) reaches it.
fn hard_header_bytes(limits: &crate::config::Limits) -> usize {
    limits.header_bytes.saturating_mul(8).max(64 * 1024)
}

/// The HTTP/1.1 and HTTP/2 server with the configured bounds. hyper's own limits sit above the
/// gateway's (which the pipeline applies, with a recorded problem), so that a client meets
/// hyper's bare refusal only far beyond what the gateway documents.
fn http_builder(
    limits: &crate::config::Limits,
) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    let mut b = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_headers(limits.max_headers.saturating_mul(2).max(100))
        .max_buf_size(hard_header_bytes(limits));
    b.http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(hard_header_bytes(limits)).unwrap_or(u32::MAX))
        // Rapid reset (CVE-2023-44487) and streams the client makes the server reset.
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256));
    // No keep-alive pings of the gateway's own: they would keep an unused connection from ever
    // becoming idle. A dead peer is closed by the idle bound like an unused one.
    b
}

/// Serves `app` on `listener` over TLS until `shutdown` resolves, then lets requests in flight
/// finish (at most `grace`). Each new connection is accepted under the TLS configuration of the
/// policy version active at that moment, within the bounds of `[limits]`: at most so many
/// connections (one more is closed before its handshake), so many per partner, each handshake,
/// header read and idle spell bounded in time.
pub async fn serve_tls(
    listener: TcpListener,
    app_state: Arc<App>,
    app: Router,
    handshake_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limits = app_state.limits.clone();
    let builder = http_builder(&limits);
    let open = Arc::new(tokio::sync::Semaphore::new(limits.connections.max(1)));
    let per_partner = Arc::new(PerPartner::default());
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let over_limit_lifetime = Duration::from_millis(limits.header_read_timeout_ms);
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
        let Ok(slot) = open.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = limits.connections,
                "connection limit reached; closed"
            );
            crate::metrics::metrics()
                .connections_refused
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: "connections",
                })
                .inc();
            continue;
        };
        let active = app_state.policy.load_full();
        let acceptor = tokio_rustls::TlsAcceptor::from(active.tls.clone());
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let per_partner = per_partner.clone();
        let per_partner_limit = limits.connections_per_partner.max(1);
        tokio::spawn(async move {
            let _slot = slot;
            let _open = ActiveConnection::new();
            let handshake_failed = |reason: &'static str| {
                crate::metrics::metrics()
                    .handshake_failures
                    .get_or_create(&crate::metrics::ReasonLabel { reason })
                    .inc();
            };
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "TLS handshake refused");
                    handshake_failed(handshake_reason(&e));
                    return;
                }
                Err(_) => {
                    tracing::info!("TLS handshake timed out");
                    handshake_failed("timeout");
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
            let key = active
                .identify(&peer)
                .ok()
                .and_then(|i| {
                    active
                        .covenant
                        .covenant()
                        .partner_at(i.partner)
                        .map(|p| p.id.clone())
                })
                .unwrap_or_else(|| format!("certificate:{}", peer.fingerprint));
            drop(active);
            let counted = per_partner.admit(key, per_partner_limit);
            if counted.is_none() {
                crate::metrics::metrics()
                    .connections_refused
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: "per-partner",
                    })
                    .inc();
            }
            let over = counted
                .is_none()
                .then_some(OverConnectionLimit(per_partner_limit));
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(peer.clone());
                    if let Some(o) = over {
                        req.extensions_mut().insert(o);
                    }
                    app.clone().oneshot(req)
                });
            let io = hyper_util::rt::TokioIo::new(Idle::new(stream, idle));
            let conn = watcher.watch(builder.serve_connection(io, service).into_owned());
            let result = if over.is_some() {
                // Long enough to refuse a request with a problem, no longer.
                tokio::time::timeout(over_limit_lifetime, conn)
                    .await
                    .unwrap_or(Ok(()))
            } else {
                conn.await
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(counted);
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
