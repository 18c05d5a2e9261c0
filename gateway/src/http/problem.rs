//! RFC 9457 problem details: the one place where a refusal becomes HTTP, each with its status,
//! a stable `type` URI, a title and the refusal's explanation.

use crate::refusal::Refusal;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Base of every problem type URI.
pub const TYPE_BASE: &str = "https://gateway.ipga-r.example/problems/";

/// The problem type of a refusal, on the response (for the pipeline, which records refusals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemType(pub String);

/// The answer ends its connection (HTTP/1.1: `Connection: close` is added at the edge).
#[derive(Debug, Clone, Copy)]
pub struct CloseConnection;

/// The problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Stable URI naming the problem.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What happened and what to do, in one or two sentences.
    pub detail: String,
    /// Every problem found, one line each (`covenant-invalid`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The HTTP status of a refusal (from the refusals' table).
pub fn status(r: &Refusal) -> StatusCode {
    StatusCode::from_u16(r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The problem document of a refusal.
pub fn problem(r: &Refusal) -> Problem {
    let (title, detail) = r.describe();
    Problem {
        type_: format!("{TYPE_BASE}{}", r.slug()),
        title,
        status: status(r).as_u16(),
        detail,
        errors: match r {
            Refusal::CovenantInvalid(_, errors) => errors.clone(),
            _ => Vec::new(),
        },
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = status(&self);
        // The type, never the detail: details may echo request content.
        tracing::info!(problem = %self.slug(), status = status.as_u16(), "refused");
        let slug = self.slug().to_owned();
        let body = serde_json::to_vec(&problem(&self)).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"{TYPE_BASE}{slug}","status":{}}}"#,
                status.as_u16()
            )
            .into_bytes()
        });
        let mut resp = (status, body).into_response();
        resp.extensions_mut().insert(ProblemType(slug));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry = match &self {
            Refusal::RateLimited(secs) => Some(*secs),
            Refusal::Overloaded | Refusal::TooManyConnections(_) => Some(1),
            _ => None,
        };
        // The connection is not reused after these: its state (an unread body, a partner over
        // its connections) ends with this answer. HTTP/1.1 only; HTTP/2 has no such header.
        if matches!(
            self,
            Refusal::TooManyConnections(_)
                | Refusal::BodyTimeout(_)
                | Refusal::BodyTooLarge(_)
                | Refusal::HeadersTooLarge(..)
        ) {
            resp.extensions_mut().insert(CloseConnection);
        }
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_has_type_status_and_a_detail() {
        let all = [
            Refusal::TokenMissing,
            Refusal::TokenAlgorithmRefused("none".into()),
            Refusal::RoleNotHeld("voorportaal".into()),
            Refusal::TransitionNotAllowed("melding".into(), "uitvoering".into()),
            Refusal::BodyTooLarge(10),
            Refusal::StorageUnavailable,
        ];
        let statuses: Vec<u16> = all.iter().map(|e| status(e).as_u16()).collect();
        assert_eq!(statuses, vec![401, 401, 403, 409, 413, 503]);
        for e in all {
            let p = problem(&e);
            assert!(p.type_.starts_with(TYPE_BASE));
            assert!(
                !p.detail.is_empty() && p.detail.ends_with('.'),
                "{}",
                p.detail
            );
        }
    }
}
