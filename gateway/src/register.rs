//! Another approach's register answering the oblivious aanpak-check (issue 38): it serves its
//! signed published set (`GET /set`) and evaluates one blinded element per request (`POST
//! /evaluate`) under its POPRF key, with the proof, for clients that present a certificate of
//! the covenant's CA. Every client has a quota per minute and per day: evaluation is the only
//! oracle, so the quota is the real bound on anyone walking the BSN space through it.
//! `gateway approach serve` runs it; the demo and the tests run the same router.

use crate::oprf::{Epoch, RegisterKey, SystemRng};
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A client of the register: the SHA-256 of its certificate, hex (an organisation's system,
/// never a person).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(pub String);

/// What a register received, request by request (the demo and the tests look at the bytes).
pub type Seen = Arc<Mutex<Vec<String>>>;

/// Evaluations a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Per minute.
    pub per_minute: u32,
    /// Per day (UTC).
    pub per_day: u32,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            per_minute: 60,
            per_day: 1_000,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Used {
    minute: i64,
    in_minute: u32,
    day: i64,
    in_day: u32,
    warned_day: i64,
}

/// A register's state.
pub struct Register {
    approach: String,
    key: RegisterKey,
    set: String,
    quota: Quota,
    clock: Arc<dyn crate::clock::Clock>,
    used: Mutex<HashMap<ClientId, Used>>,
    /// Every request body the register received, for tests that look at the bytes.
    pub seen: Seen,
}

impl Register {
    /// A register for `approach` with its key, its signed published set and its quota.
    pub fn new(
        approach: &str,
        key: RegisterKey,
        set: String,
        quota: Quota,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Register {
        Register {
            approach: approach.to_owned(),
            key,
            set,
            quota,
            clock,
            used: Mutex::new(HashMap::new()),
            seen: Seen::default(),
        }
    }

    /// Counts one evaluation for `client`, or the seconds until it may ask again.
    fn admit(&self, client: &ClientId) -> Result<(), i64> {
        let now = self.clock.now();
        let (minute, day) = (now.div_euclid(60), now.div_euclid(86_400));
        let Ok(mut used) = self.used.lock() else {
            return Err(60);
        };
        let u = used.entry(client.clone()).or_default();
        if u.minute != minute {
            (u.minute, u.in_minute) = (minute, 0);
        }
        if u.day != day {
            (u.day, u.in_day) = (day, 0);
        }
        if u.in_day >= self.quota.per_day {
            return Err((day + 1) * 86_400 - now);
        }
        if u.in_minute >= self.quota.per_minute {
            return Err((minute + 1) * 60 - now);
        }
        u.in_minute += 1;
        u.in_day += 1;
        // Near its daily quota: the operator hears of it once a day (no request content).
        if u64::from(u.in_day) * 10 >= u64::from(self.quota.per_day) * 8 && u.warned_day != day {
            u.warned_day = day;
            tracing::warn!(client = %client.0, used = u.in_day, quota = self.quota.per_day, "a client has used 80% of its daily evaluations");
        }
        Ok(())
    }
}

/// `POST /evaluate` body: one blinded element under one epoch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The epoch the asker holds the set of (`YYYY-MM`): this month or the last.
    pub epoch: String,
    /// The blinded element, 64 hex digits.
    pub blinded: String,
}

/// `POST /evaluate` answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateAnswer {
    /// The evaluated element, 64 hex digits.
    pub evaluated: String,
    /// The DLEQ proof, 128 hex digits.
    pub proof: String,
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({"title": status.canonical_reason(), "status": status.as_u16(), "detail": detail})
            .to_string(),
    )
        .into_response()
}

async fn published(State(r): State<Arc<Register>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        r.set.clone(),
    )
        .into_response()
}

async fn evaluate(
    State(r): State<Arc<Register>>,
    Extension(client): Extension<ClientId>,
    body: axum::body::Bytes,
) -> Response {
    if let Ok(mut s) = r.seen.lock() {
        s.push(format!("/evaluate {}", String::from_utf8_lossy(&body)));
    }
    let Ok(req) = serde_json::from_slice::<EvaluateRequest>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body is {\"epoch\": \"YYYY-MM\", \"blinded\": \"<64 hex digits>\"}",
        );
    };
    let at = r.clock.now();
    let now = Epoch::of(at);
    let Some(epoch) = Epoch::parse(&req.epoch).filter(|e| e.answered_at(at)) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "the epoch is {now} (or, while the set rolls over, {})",
                now.previous()
            ),
        );
    };
    let mut blinded = [0u8; crate::oprf::ELEMENT_LEN];
    if hex::decode_to_slice(&req.blinded, &mut blinded).is_err() {
        return problem(StatusCode::BAD_REQUEST, "blinded is 64 hex digits");
    }
    if let Err(wait) = r.admit(&client) {
        let mut resp = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "this client has used its evaluations for now",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let info = crate::oprf::info(&r.approach, &epoch);
    match r.key.evaluate_blinded(&mut SystemRng, &blinded, &info) {
        Ok((e, p)) => axum::Json(EvaluateAnswer {
            evaluated: hex::encode(e),
            proof: hex::encode(p),
        })
        .into_response(),
        Err(_) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a valid blinded element",
        ),
    }
}

/// The register's routes; each request must carry the client's [`ClientId`] extension.
pub fn router(r: Arc<Register>) -> axum::Router {
    axum::Router::new()
        .route("/set", get(published))
        .route("/evaluate", post(evaluate))
        .layer(axum::extract::DefaultBodyLimit::max(1024))
        .with_state(r)
}

/// Serves `app` over TLS on `listener` until `stop`, each request tagged with the client
/// certificate's [`ClientId`]; connections without one are closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r { Ok((t, _)) => t, Err(_) => continue },
            () = &mut stop => {
                connections.abort_all();
                return;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        connections.spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), acceptor.accept(tcp)).await
            else {
                return;
            };
            let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
                return;
            };
            use sha2::Digest;
            let id = ClientId(hex::encode(sha2::Sha256::digest(cert.as_ref())));
            let app = app.layer(Extension(id));
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    #[test]
    fn the_quota_holds_per_minute_and_per_day_and_says_how_long_to_wait() {
        let clock = Arc::new(FixedClock::new(1_800_000_000 - 1_800_000_000 % 86_400));
        let r = Register::new(
            "top600",
            RegisterKey::from_seed(&[1; 32]).unwrap(),
            String::new(),
            Quota {
                per_minute: 2,
                per_day: 3,
            },
            clock.clone(),
        );
        let (a, b) = (ClientId("a".into()), ClientId("b".into()));
        assert!(r.admit(&a).is_ok() && r.admit(&a).is_ok());
        assert_eq!(r.admit(&a), Err(60), "the minute is used");
        assert!(r.admit(&b).is_ok(), "another client is not held up");
        clock.advance(60);
        assert!(r.admit(&a).is_ok());
        assert_eq!(r.admit(&a), Err(86_400 - 60), "the day is used");
        clock.advance(86_400 - 60);
        assert!(r.admit(&a).is_ok(), "a new day");
    }
}
