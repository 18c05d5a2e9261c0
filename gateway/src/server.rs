//! The partner API server: application state, extractors, middleware, the TLS accept loop and the
//! plain-HTTP health listener.

use crate::auth::{Requester, TokenPolicy, verify_cached};
use crate::clock::Clock;
use crate::config::Limits;
use crate::crypto::Secrets;
use crate::lifecycle::{ActivePolicy, PeerRefusal};
use crate::problem::ApiError;
use crate::registry::{ClientIdentity, PeerCert};
use crate::store::Store;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::Instrument;

/// What every handler can reach.
pub struct Shared {
    /// The active policy version: covenant, partner registry, TLS. Load it once per request.
    pub policy: crate::lifecycle::PolicyCell,
    /// Builds policy versions (drafts, activations, CRL reloads).
    pub builder: crate::lifecycle::PolicyBuilder,
    /// Who administers the policy.
    pub administration: crate::config::AdministrationConfig,
    /// Serialises activations and reloads on this instance.
    pub activation: tokio::sync::Mutex<()>,
    /// The gateway's own secrets.
    pub secrets: Secrets,
    /// Deposited records already opened, by the digest of their sealed form.
    pub opened:
        crate::cache::Bounded<[u8; 32], Arc<Vec<serde_json::Map<String, serde_json::Value>>>>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Token requirements.
    pub tokens: TokenPolicy,
    /// Limits.
    pub limits: Limits,
    /// Upstream sources.
    pub upstream: crate::disclose::Upstream,
    /// Rate limits.
    pub limiter: crate::disclose::Limiter,
    /// The disclosure log's writer.
    pub log: crate::audit::writer::LogWriter,
    /// The log tree's right edge as of the last checkpoint.
    pub frontier: tokio::sync::Mutex<crate::audit::merkle::Frontier>,
    /// The key that signs checkpoints.
    pub log_key: Arc<crate::audit::checkpoint::LogKey>,
    /// The log's origin line.
    pub log_origin: String,
}

/// The policy version a request runs under, loaded once when it arrives.
#[derive(Debug, Clone)]
pub struct Active(pub Arc<ActivePolicy>);

/// Application state: storage plus the shared, immutable rest.
pub struct AppState<S> {
    /// Storage.
    pub store: S,
    /// Everything else.
    pub shared: Arc<Shared>,
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            store: self.store.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// The header that carries the transaction id across organisations (FSC).
pub const TRANSACTION_HEADER: &str = "fsc-transaction-id";

/// The transaction id of a request, echoed or created by the middleware.
#[derive(Debug, Clone)]
pub struct TransactionId(pub String);

fn valid_transaction_id(v: &str) -> bool {
    (8..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// One span per request (route, method, partner, transaction id); echoes `Fsc-Transaction-Id`.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(TRANSACTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_transaction_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let span = tracing::info_span!("request", method = %req.method(), route = %route, transaction_id = %id, partner = tracing::field::Empty);
    req.extensions_mut().insert(TransactionId(id.clone()));
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = resp.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "done"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(TRANSACTION_HEADER, v);
    }
    resp
}

/// An authenticated requester (certificate partner + verified token), with the policy version
/// the request runs under.
pub struct Authenticated(pub Requester, pub Arc<ActivePolicy>);

impl<S: Store> FromRequestParts<AppState<S>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, ApiError> {
        // Both set by `bind_policy` for every request; their absence is a bug: fail closed.
        let client = parts
            .extensions
            .get::<ClientIdentity>()
            .cloned()
            .ok_or(ApiError::Internal)?;
        let Active(active) = parts
            .extensions
            .get::<Active>()
            .cloned()
            .ok_or(ApiError::Internal)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or(ApiError::TokenMissing)?;
        let s = &state.shared;
        let req = verify_cached(
            &active.tokens,
            token.trim(),
            &client,
            &active.covenant,
            &active.registry,
            &s.tokens,
            s.clock.now(),
        )?;
        Ok(Authenticated(req, active))
    }
}

/// Loads the active policy for the request and maps the connection's certificate to a partner
/// under it. A certificate revoked or removed since the connection was opened is refused here,
/// and the refusal recorded.
pub async fn bind_policy<S: Store>(
    State(state): State<AppState<S>>,
    mut req: Request,
    next: Next,
) -> Response {
    let active = state.shared.policy.load_full();
    let Some(peer) = req.extensions().get::<PeerCert>().cloned() else {
        return ApiError::Internal.into_response();
    };
    match active.identify(&peer) {
        Ok(identity) => {
            if let Some(p) = active.covenant.covenant().partner_at(identity.partner) {
                tracing::Span::current().record("partner", p.id.as_str());
            }
            req.extensions_mut().insert(identity);
            req.extensions_mut().insert(Active(active));
            next.run(req).await
        }
        Err(why) => {
            let e = match why {
                PeerRefusal::Revoked => ApiError::CertificateRevoked,
                PeerRefusal::Unknown => ApiError::CertificateUnknown,
            };
            let txn = req
                .extensions()
                .get::<TransactionId>()
                .cloned()
                .unwrap_or_else(|| TransactionId(String::new()));
            let draft = crate::disclose::Draft::for_certificate(&state, &active, &peer, &txn);
            crate::disclose::refuse(&state, draft, e).await
        }
    }
}

/// JSON body with the gateway's limits: size, nesting depth, unknown fields refused (by the
/// target type's `deny_unknown_fields`).
pub struct StrictJson<T>(pub T);

/// Nesting depth of a JSON document (strings are skipped), without parsing it.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

impl<S: Store, T: DeserializeOwned> FromRequest<AppState<S>> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState<S>) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limits = &state.shared.limits;
        let bytes = axum::body::to_bytes(req.into_body(), limits.body_bytes)
            .await
            .map_err(|_| ApiError::BodyTooLarge(limits.body_bytes))?;
        if json_depth(&bytes) > limits.json_depth {
            return Err(ApiError::JsonTooDeep(limits.json_depth));
        }
        serde_json::from_slice(&bytes)
            .map(StrictJson)
            .map_err(|e| ApiError::InvalidBody(e.to_string()))
    }
}

/// The partner API router.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    Router::new()
        .merge(crate::cases::routes())
        .merge(crate::disclose::routes())
        .merge(crate::audit::api::routes())
        .merge(crate::audit::officer::routes())
        .merge(crate::aggregates::routes())
        .merge(crate::lifecycle::api::routes())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            bind_policy::<S>,
        ))
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
}

/// `/healthz` (the process runs) and `/readyz` (the database answers).
pub fn health_router<S: Store>(store: S) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(|State(store): State<S>| async move {
                match store.ping().await {
                    Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
                    Err(_) => ApiError::StorageUnavailable.into_response(),
                }
            }),
        )
        .with_state(store)
}

/// Serves `app` on `listener` over TLS until `shutdown` resolves, then lets requests in flight
/// finish (at most `grace`). Each new connection is accepted under the TLS configuration of the
/// policy version active at that moment.
pub async fn serve_tls(
    listener: TcpListener,
    shared: Arc<Shared>,
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
        let acceptor = tokio_rustls::TlsAcceptor::from(shared.policy.load().tls.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[{"}]}"#), 3);
        assert_eq!(json_depth(br#""\"{""#), 0);
        assert_eq!(json_depth(b"[[[[]]]]"), 4);
    }

    #[test]
    fn transaction_ids() {
        assert!(valid_transaction_id("3f2c9a4e-0000-4000-8000-000000000001"));
        assert!(!valid_transaction_id("short"));
        assert!(!valid_transaction_id("has space in it"));
        assert!(!valid_transaction_id(&"x".repeat(65)));
    }
}
