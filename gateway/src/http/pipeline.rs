//! The one request pipeline of the partner API. Every request under `/v1`:
//!
//! 1. gets a transaction id and its span ([`request_context`]);
//! 2. runs under the policy version active when it arrives, its certificate mapped to a partner
//!    under that version, its token verified ([`pipeline`]) and its rate counted (the [`Call`]
//!    extractor, so that unknown paths answer 404 without a token);
//! 3. reaches its handler as a [`Call`] with the log entry under construction;
//! 4. if it is refused, anywhere, the refusal is recorded from that entry; if a handler answers
//!    a recorded endpoint without having committed its entry, the answer is replaced by a
//!    refusal (fail closed).
//!
//! The fail-closed rule lives here and nowhere else.

use crate::app::App;
use crate::auth::{Requester, verify_cached};
use crate::http::listener::OverConnectionLimit;
use crate::http::problem::{CloseConnection, ProblemType};
use crate::lifecycle::{ActivePolicy, PeerRefusal};
use crate::log::entry::{Kind, LogEntry, Start, new_id};
use crate::refusal::Refusal;
use crate::registry::{ClientIdentity, PeerCert};
use crate::service::Call;
use crate::trace::TraceParent;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The header that carries the transaction id across organisations (FSC).
pub const TRANSACTION_HEADER: &str = "fsc-transaction-id";

/// The transaction id of a request, echoed or created by [`request_context`].
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
        // The FSC logging standard's transaction ids are UUID v7 (time-ordered).
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
        .unwrap_or_else(|| {
            let mut r = [0u8; 24];
            // Without randomness the trace is still valid (its ids are made non-zero).
            let _ = aws_lc_rs::rand::fill(&mut r);
            TraceParent::new_root(r)
        });
    req.extensions_mut().insert(traceparent);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let span = tracing::info_span!("request", method = %req.method(), route = %route, transaction_id = %id, partner = tracing::field::Empty);
    req.extensions_mut().insert(TransactionId(id.clone()));
    let version = req.version();
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    crate::metrics::metrics().request(
        &route,
        resp.extensions().get::<ProblemType>().map(|p| p.0.as_str()),
        started.elapsed().as_secs_f64(),
    );
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
    security_headers(resp.headers_mut());
    if resp.extensions().get::<CloseConnection>().is_some()
        && version == axum::http::Version::HTTP_11
    {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// On every answer of the API: nothing is cached (answers carry personal data or decisions
/// about it), nothing is sniffed, framed or referred, and clients keep to HTTPS.
pub fn security_headers(h: &mut axum::http::HeaderMap) {
    use axum::http::header;
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// What a route records: its entry kind, and whether an answer must have committed an entry.
pub fn route_kind(method: &Method, path: Option<&str>) -> (Kind, bool) {
    let m = method.clone();
    match path {
        Some("/v1/disclosures") if m == Method::POST => (Kind::Disclosure, true),
        Some("/v1/checks") if m == Method::POST => (Kind::Check, true),
        Some("/v1/checks/set") if m == Method::GET => (Kind::Check, true),
        Some("/v1/checks/evaluate") if m == Method::POST => (Kind::Check, true),
        Some("/v1/cases") if m == Method::POST => (Kind::CaseChange, true),
        Some("/v1/cases/{id}") if m == Method::GET => (Kind::CaseRead, true),
        Some("/v1/cases/{id}") if m == Method::PATCH => (Kind::CaseChange, true),
        Some("/v1/records/{product}/{subject_ref}") if m == Method::PUT => (Kind::Deposit, true),
        Some("/v1/aggregates/{view}") if m == Method::GET => (Kind::Aggregate, true),
        Some("/v1/audit/disclosures" | "/v1/audit/overview") if m == Method::GET => {
            (Kind::AuditQuery, true)
        }
        Some("/v1/audit/disclosures/search" | "/v1/audit/subjects/report") if m == Method::POST => {
            (Kind::AuditQuery, true)
        }
        Some(p) if p.starts_with("/v1/audit/") => (Kind::AuditProof, false),
        Some(p) if p.starts_with("/v1/policy") => (Kind::Policy, m == Method::POST),
        _ => (Kind::Request, false),
    }
}

/// What the pipeline hands the handler (taken by the [`Call`] extractor): the token's
/// verification is checked there, so that routes without a handler that needs a requester
/// (unknown paths and methods) answer 404 and 405 without one.
#[derive(Clone)]
struct Seed {
    auth: Result<Requester, Refusal>,
    policy: Arc<ActivePolicy>,
    record: LogEntry,
}

/// A refusal the pipeline must record, with the entry as the handler filled it in.
#[derive(Clone)]
struct PendingRefusal(LogEntry);

/// The answer's (or refusal's) entry is durable already.
#[derive(Clone)]
struct Recorded;

/// The requester: the connection's certificate and the verified token.
fn authenticate(
    app: &App,
    active: &ActivePolicy,
    client: &ClientIdentity,
    parts: &axum::http::HeaderMap,
) -> Result<Requester, Refusal> {
    let token = parts
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or(Refusal::TokenMissing)?;
    verify_cached(
        &active.tokens,
        token.trim(),
        client,
        &active.covenant,
        &active.registry,
        &app.tokens,
        app.clock.now(),
    )
}

/// Records a refusal (best effort: the refusal stands even if it cannot be recorded).
async fn record_refusal(app: &App, mut entry: LogEntry, problem: &str) {
    entry.refuse(problem);
    if let Err(e) = app.log.append(entry).await {
        tracing::error!(error = %e, problem, "could not record a refusal");
    }
}

/// The pipeline: policy version, certificate, token, rate limit, handler, and the record of
/// every refusal.
pub async fn pipeline(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let (kind, must_record) = route_kind(
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let trace_id = req
        .extensions()
        .get::<TransactionId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |t| t.0.clone());
    let active = app.policy.load_full();
    let mut base = LogEntry::new(Start {
        id: new_id(),
        at: app.clock.now(),
        trace_id: &trace_id,
        kind,
        partner: String::new(),
        policy_version: active.version(),
    });
    base.traceparent = req
        .extensions()
        .get::<TraceParent>()
        .map(ToString::to_string);
    let Some(peer) = req.extensions().get::<PeerCert>().cloned() else {
        return Refusal::Internal.into_response();
    };
    let identity = match active.identify(&peer) {
        Ok(i) => i,
        Err(why) => {
            // The partner is not known under this version: the certificate stands in for it.
            base.partner = format!("certificate:{}", peer.fingerprint);
            let e = match why {
                PeerRefusal::Revoked => Refusal::CertificateRevoked,
                PeerRefusal::Unknown => Refusal::CertificateUnknown,
            };
            record_refusal(&app, base, e.slug()).await;
            return e.into_response();
        }
    };
    if let Some(p) = active.covenant.covenant().partner_at(identity.partner) {
        tracing::Span::current().record("partner", p.id.as_str());
        base.partner = p.id.clone();
    }
    // A covenant version the log did not activate is never served under (issue 37).
    if app.policy_mismatch.load().is_some() {
        let e = Refusal::CovenantMismatch;
        record_refusal(&app, base, e.slug()).await;
        return e.into_response();
    }
    // While the log cannot be written nothing is answered: refused now, not after the
    // database's own timeouts (the refusal is counted for the writer's outage entry).
    if app.log.availability().unavailable().is_some() {
        let e = Refusal::DisclosureLogUnavailable;
        record_refusal(&app, base, e.slug()).await;
        return e.into_response();
    }
    // Bounds of the connection and the request head, before the token is read.
    let early = match req.extensions().get::<OverConnectionLimit>() {
        Some(OverConnectionLimit(n)) => Some(Refusal::TooManyConnections(*n)),
        None => header_bounds(req.headers(), &app.limits, app.tokens.max_bytes).err(),
    };
    if let Some(e) = early {
        record_refusal(&app, base, e.slug()).await;
        return e.into_response();
    }
    let auth = authenticate(&app, &active, &identity, req.headers());
    if let Ok(r) = &auth {
        base.staff_id = Some(r.staff_id.clone());
    }
    // A blind log discloses nothing: the partners could not hold the gateway to the answer.
    if matches!(
        kind,
        Kind::Disclosure | Kind::Check | Kind::Aggregate | Kind::CaseRead
    ) && let Some(b) = app.witnesses.blind(&active.witnesses, app.clock.now())
    {
        let e = Refusal::LogUnwitnessed(b.have, b.need, b.bound);
        record_refusal(&app, base, e.slug()).await;
        return e.into_response();
    }
    req.extensions_mut().insert(Seed {
        auth,
        policy: active,
        record: base.clone(),
    });
    // At most so many at once, each within its time: refused (and recorded) otherwise.
    let Ok(_permit) = app.in_flight.try_acquire() else {
        let e = Refusal::Overloaded;
        record_refusal(&app, base, e.slug()).await;
        return e.into_response();
    };
    let limit = app.limits.request_timeout_ms;
    let mut resp = match tokio::time::timeout(Duration::from_millis(limit), next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            // The request's own entry may already be durable (an answer that could not be
            // sent in time); this entry says that it was given up.
            let e = Refusal::RequestTimeout(limit);
            base.id = new_id();
            record_refusal(&app, base, e.slug()).await;
            return e.into_response();
        }
    };
    let recorded = resp.extensions().get::<Recorded>().is_some();
    let pending = resp.extensions_mut().remove::<PendingRefusal>();
    match resp.extensions().get::<ProblemType>().cloned() {
        Some(problem) if !recorded => {
            record_refusal(&app, pending.map_or(base, |p| p.0), &problem.0).await;
            resp
        }
        Some(_) => resp,
        None if must_record && !recorded && resp.status().is_success() => {
            // A bug: an answer that carries data without its entry. Nothing leaves.
            tracing::error!(
                kind = kind.as_str(),
                "an answer was not recorded; refused instead"
            );
            record_refusal(&app, base, "internal").await;
            Refusal::Internal.into_response()
        }
        None => resp,
    }
}

/// The request head within `[limits] max_headers` and `header_bytes`; a token above its own
/// limit is named as such first (it is what the integrator must fix).
fn header_bounds(
    h: &axum::http::HeaderMap,
    limits: &crate::config::Limits,
    token_bytes: usize,
) -> Result<(), Refusal> {
    let auth = h.get(header::AUTHORIZATION).map_or(0, HeaderValue::len);
    if auth > token_bytes.saturating_add("Bearer ".len()) {
        return Err(Refusal::TokenTooLarge(token_bytes));
    }
    let bytes: usize = h.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
    if h.len() > limits.max_headers || bytes > limits.header_bytes {
        return Err(Refusal::HeadersTooLarge(
            limits.max_headers,
            limits.header_bytes,
        ));
    }
    Ok(())
}

/// The authenticated requester, counted against the rate limits. A refusal here is recorded by
/// the pipeline from its entry.
impl FromRequestParts<Arc<App>> for Call {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Refusal> {
        // Set by the pipeline for every request; its absence is a bug: fail closed.
        let seed = parts.extensions.remove::<Seed>().ok_or(Refusal::Internal)?;
        let requester = seed.auth?;
        app.limiter.check(&requester)?;
        Ok(Call {
            requester,
            policy: seed.policy,
            record: seed.record,
            committed: None,
        })
    }
}

/// The response to a call: the answer, or the refusal with the entry the pipeline records.
pub fn respond<T: IntoResponse>(call: Call, result: Result<T, Refusal>) -> Response {
    let committed = call.committed.is_some();
    let mut resp = match result {
        Ok(t) => t.into_response(),
        Err(e) => {
            let mut resp = e.into_response();
            if !committed {
                resp.extensions_mut().insert(PendingRefusal(call.record));
            }
            resp
        }
    };
    if committed {
        resp.extensions_mut().insert(Recorded);
    }
    resp
}

/// A request body, never rejected by itself: its problem (size, media type, depth, JSON) is
/// the handler's refusal, so that it is recorded like any other.
pub struct Body<T>(pub Result<T, Refusal>);

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

fn content_type_is(req: &Request, accepted: &[&str]) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| accepted.iter().any(|a| m.trim().eq_ignore_ascii_case(a)))
}

/// Reads a body of at most `limit` bytes, each piece within `per_piece`. A body that announces
/// more than `limit` is refused before a byte of it is read.
async fn read_body(
    req: Request,
    limit: usize,
    per_piece: Duration,
) -> Result<axum::body::Bytes, Refusal> {
    use futures::StreamExt;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(Refusal::BodyTooLarge(limit));
    }
    let mut stream = req.into_body().into_data_stream();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(per_piece, stream.next()).await {
            Err(_) => {
                let ms = u64::try_from(per_piece.as_millis()).unwrap_or(u64::MAX);
                return Err(Refusal::BodyTimeout(ms));
            }
            Ok(None) => return Ok(out.into()),
            Ok(Some(Err(_))) => {
                return Err(Refusal::InvalidBody(
                    "the request body could not be read".into(),
                ));
            }
            Ok(Some(Ok(piece))) => {
                if out.len() + piece.len() > limit {
                    return Err(Refusal::BodyTooLarge(limit));
                }
                out.extend_from_slice(&piece);
            }
        }
    }
}

fn body_piece_timeout(app: &App) -> Duration {
    Duration::from_millis(app.limits.body_read_timeout_ms)
}

impl<T: DeserializeOwned> FromRequest<Arc<App>> for Body<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let limits = &app.limits;
        let parsed = async {
            if !content_type_is(&req, &["application/json"]) {
                return Err(Refusal::UnsupportedMediaType);
            }
            let bytes = read_body(req, limits.body_bytes, body_piece_timeout(app)).await?;
            if json_depth(&bytes) > limits.json_depth {
                return Err(Refusal::JsonTooDeep(limits.json_depth));
            }
            serde_json::from_slice(&bytes).map_err(|e| Refusal::InvalidBody(e.to_string()))
        }
        .await;
        Ok(Body(parsed))
    }
}

/// An optional JSON body: empty (or whitespace only) is `None`.
pub struct OptionalBody<T>(pub Result<Option<T>, Refusal>);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for OptionalBody<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let limits = &app.limits;
        let parsed = async {
            let bytes = read_body(req, limits.body_bytes, body_piece_timeout(app)).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            if json_depth(&bytes) > limits.json_depth {
                return Err(Refusal::JsonTooDeep(limits.json_depth));
            }
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Refusal::InvalidBody(e.to_string()))
        }
        .await;
        Ok(OptionalBody(parsed))
    }
}

/// A covenant text (`application/toml` or `text/plain`, UTF-8, at most `max` bytes).
pub struct TomlBody(pub Result<String, Refusal>);

impl FromRequest<Arc<App>> for TomlBody {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let max = crate::service::policy_admin::MAX_DRAFT_BYTES;
        let parsed = async {
            if !content_type_is(&req, &["application/toml", "text/plain"]) {
                return Err(Refusal::NotToml);
            }
            let bytes = read_body(req, max, body_piece_timeout(app)).await?;
            String::from_utf8(bytes.to_vec()).map_err(|_| Refusal::NotToml)
        }
        .await;
        Ok(TomlBody(parsed))
    }
}

/// Path parameters, never rejected by themselves (a malformed one is a recorded refusal). Every
/// parameter is an identifier ([`crate::service::Ident`]) but the BSN, which its own parser
/// checks as strictly with its own problem.
pub struct ApiPath<T>(pub Result<T, Refusal>);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            for (name, value) in &raw {
                if name != "bsn"
                    && let Err(e) = crate::service::Ident::parse(name, value)
                {
                    return Ok(ApiPath(Err(e)));
                }
            }
        }
        Ok(ApiPath(
            axum::extract::Path::<T>::from_request_parts(parts, state)
                .await
                .map(|p| p.0)
                .map_err(|e| Refusal::InvalidBody(format!("path: {}", e.body_text()))),
        ))
    }
}

/// Query parameters, never rejected by themselves.
pub struct ApiQuery<T>(pub Result<T, Refusal>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiQuery(
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map(|q| q.0)
                .map_err(|e| Refusal::InvalidBody(format!("query: {}", e.body_text()))),
        ))
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

    #[test]
    fn every_route_that_carries_data_must_record_its_answer() {
        for (m, p, kind) in [
            (Method::POST, "/v1/disclosures", Kind::Disclosure),
            (Method::POST, "/v1/checks", Kind::Check),
            (Method::GET, "/v1/checks/set", Kind::Check),
            (Method::POST, "/v1/checks/evaluate", Kind::Check),
            (Method::POST, "/v1/cases", Kind::CaseChange),
            (Method::GET, "/v1/cases/{id}", Kind::CaseRead),
            (Method::PATCH, "/v1/cases/{id}", Kind::CaseChange),
            (
                Method::PUT,
                "/v1/records/{product}/{subject_ref}",
                Kind::Deposit,
            ),
            (Method::GET, "/v1/aggregates/{view}", Kind::Aggregate),
            (Method::GET, "/v1/audit/disclosures", Kind::AuditQuery),
            (Method::POST, "/v1/audit/subjects/report", Kind::AuditQuery),
            (
                Method::POST,
                "/v1/audit/disclosures/search",
                Kind::AuditQuery,
            ),
            (Method::GET, "/v1/audit/overview", Kind::AuditQuery),
            (Method::POST, "/v1/policy/drafts/{id}/approve", Kind::Policy),
        ] {
            assert_eq!(route_kind(&m, Some(p)), (kind, true), "{m} {p}");
        }
        assert_eq!(
            route_kind(&Method::GET, Some("/v1/audit/proof/{seq}")),
            (Kind::AuditProof, false)
        );
        assert_eq!(
            route_kind(&Method::GET, Some("/v1/policy")),
            (Kind::Policy, false)
        );
        assert_eq!(route_kind(&Method::GET, None), (Kind::Request, false));
    }
}
