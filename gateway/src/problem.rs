//! RFC 9457 problem details: one error type for the whole API, each variant with a stable `type`,
//! an HTTP status and a one-sentence fix. The only place errors become HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Base of every problem type URI.
pub const TYPE_BASE: &str = "https://gateway.ipga-r.example/problems/";

/// Everything the API can refuse or fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No bearer token.
    #[error("token-missing")]
    TokenMissing,
    /// Not a JWT.
    #[error("token-malformed")]
    TokenMalformed,
    /// `none`, HMAC or an unsupported algorithm.
    #[error("token-algorithm-refused")]
    TokenAlgorithmRefused(String),
    /// Signature does not verify with the partner's registered keys.
    #[error("token-invalid")]
    TokenInvalid,
    /// `iss` is not the partner of the client certificate.
    #[error("token-issuer-mismatch")]
    TokenIssuerMismatch,
    /// `aud` is not this gateway.
    #[error("token-audience")]
    TokenAudience,
    /// `exp` has passed.
    #[error("token-expired")]
    TokenExpired,
    /// `iat` or `nbf` lies in the future.
    #[error("token-not-yet-valid")]
    TokenNotYetValid,
    /// `exp - iat` exceeds the maximum lifetime.
    #[error("token-lifetime-too-long")]
    TokenLifetimeTooLong(i64),
    /// No `cnf.x5t#S256`.
    #[error("token-not-bound")]
    TokenNotBound,
    /// `cnf.x5t#S256` names another certificate.
    #[error("token-bound-to-other-certificate")]
    TokenBoundToOtherCertificate,
    /// The token names a role the covenant does not know.
    #[error("role-unknown")]
    RoleUnknown(String),
    /// The partner may not hold a role the token names.
    #[error("role-not-held")]
    RoleNotHeld(String),
    /// None of the requester's roles may do this to cases.
    #[error("case-permission")]
    CasePermission(&'static str),
    /// The covenant does not let the requester's roles make this status change.
    #[error("transition-forbidden")]
    TransitionForbidden(String, String),
    /// Only `pto-lid` may make a case static.
    #[error("statisch-requires-pto")]
    StatischRequiresPto,
    /// The work process has no such status change.
    #[error("transition-not-allowed")]
    TransitionNotAllowed(String, String),
    /// A case must have a regisseur before it is included.
    #[error("regisseur-required")]
    RegisseurRequired,
    /// The regisseur's partner may not deliver regisseurs.
    #[error("invalid-regisseur")]
    InvalidRegisseur(String),
    /// A partner id the covenant does not know.
    #[error("unknown-partner")]
    UnknownPartner(String),
    /// No case with that id.
    #[error("case-not-found")]
    CaseNotFound,
    /// The case changed between read and write.
    #[error("case-conflict")]
    CaseConflict,
    /// BSN fails format or 11-proef.
    #[error("invalid-bsn")]
    InvalidBsn(&'static str),
    /// Body is not the expected JSON.
    #[error("invalid-body")]
    InvalidBody(String),
    /// JSON nested deeper than allowed.
    #[error("json-too-deep")]
    JsonTooDeep(usize),
    /// Body larger than allowed.
    #[error("body-too-large")]
    BodyTooLarge(usize),
    /// Not `application/json`.
    #[error("unsupported-media-type")]
    UnsupportedMediaType,
    /// A PATCH that changes nothing.
    #[error("empty-patch")]
    EmptyPatch,
    /// No such route.
    #[error("not-found")]
    NotFound,
    /// Route exists, method does not.
    #[error("method-not-allowed")]
    MethodNotAllowed,
    /// The database cannot be reached or written.
    #[error("storage-unavailable")]
    StorageUnavailable,
    /// The purpose is not in the covenant.
    #[error("purpose-unknown")]
    PurposeUnknown(String),
    /// The covenant has no such aggregate view.
    #[error("view-unknown")]
    ViewUnknown(String),
    /// `/v1/checks` is for `aanpak-check` only.
    #[error("purpose-not-for-checks")]
    PurposeNotForChecks(String),
    /// The purpose releases aggregates only.
    #[error("purpose-aggregate-only")]
    PurposeAggregateOnly(String),
    /// None of the requester's roles may use the purpose.
    #[error("purpose-role")]
    PurposeRole(String, String),
    /// The case's status does not allow the purpose.
    #[error("purpose-case-status")]
    PurposeCaseStatus(String, String),
    /// The requester lacks the relation to the case the purpose demands.
    #[error("purpose-relation")]
    PurposeRelation(String, &'static str),
    /// The subject named is not the case's subject.
    #[error("subject-case-mismatch")]
    SubjectCaseMismatch,
    /// The subject reference belongs to no case.
    #[error("subject-not-found")]
    SubjectNotFound,
    /// A product the catalogue does not have.
    #[error("product-unknown")]
    ProductUnknown(String),
    /// Records may be deposited only by the product's owner.
    #[error("product-not-owned")]
    ProductNotOwned(String),
    /// None of the requester's roles may deposit this product.
    #[error("deposit-role")]
    DepositRole(String, String),
    /// A product served by an upstream source cannot be deposited.
    #[error("product-upstream")]
    ProductUpstream(String),
    /// Deposited records do not fit the catalogue.
    #[error("invalid-record")]
    InvalidRecord(String),
    /// Too many requests.
    #[error("rate-limited")]
    RateLimited(u64),
    /// The disclosure record could not be written: nothing is disclosed.
    #[error("disclosure-log-unavailable")]
    DisclosureLogUnavailable,
    /// The connection's certificate was revoked after the connection was opened.
    #[error("certificate-revoked")]
    CertificateRevoked,
    /// The active covenant version has no partner with the connection's certificate.
    #[error("certificate-unknown")]
    CertificateUnknown,
    /// Policy administration by someone who is not a listed administrator with `beheerder`.
    #[error("not-administrator")]
    NotAdministrator,
    /// A draft that is not a valid covenant; the diagnostics, rendered.
    #[error("covenant-invalid")]
    CovenantInvalid(String, Vec<String>),
    /// No draft with that id.
    #[error("draft-not-found")]
    DraftNotFound,
    /// No version (or activated draft) with that id.
    #[error("version-not-found")]
    VersionNotFound,
    /// The author tried to approve their own draft.
    #[error("four-eyes")]
    ApprovalByAuthor,
    /// The approver belongs to the author's partner and the configuration wants another.
    #[error("four-eyes-other-partner")]
    ApprovalSamePartner,
    /// The draft is not in the state this step needs.
    #[error("draft-state")]
    DraftState(String, &'static str),
    /// The active version changed since the draft was made.
    #[error("draft-stale")]
    DraftStale(String, String),
    /// The draft is the active version already.
    #[error("draft-unchanged")]
    DraftUnchanged,
    /// Another activation came first.
    #[error("activation-conflict")]
    ActivationConflict,
    /// The version could not be loaded (keys, certificates, CRLs); nothing changed.
    #[error("activation-failed")]
    ActivationFailed(String),
    /// Not the expected body type for a covenant draft.
    #[error("unsupported-media-type")]
    NotToml,
    /// A bug; nothing was disclosed.
    #[error("internal")]
    Internal,
}

/// The problem type of a refusal, on the response (for the pipeline, which records refusals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemType(pub String);

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

impl ApiError {
    /// The short, stable name (the last part of the `type` URI).
    pub fn slug(&self) -> String {
        self.to_string()
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            TokenMissing
            | TokenMalformed
            | TokenAlgorithmRefused(_)
            | TokenInvalid
            | TokenIssuerMismatch
            | TokenAudience
            | TokenExpired
            | TokenNotYetValid
            | TokenLifetimeTooLong(_)
            | TokenNotBound
            | TokenBoundToOtherCertificate => StatusCode::UNAUTHORIZED,
            RoleUnknown(_)
            | RoleNotHeld(_)
            | CasePermission(_)
            | TransitionForbidden(..)
            | StatischRequiresPto => StatusCode::FORBIDDEN,
            CaseNotFound | NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            TransitionNotAllowed(..) | CaseConflict => StatusCode::CONFLICT,
            RegisseurRequired | InvalidRegisseur(_) | UnknownPartner(_) | InvalidBsn(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            InvalidBody(_) | JsonTooDeep(_) | EmptyPatch => StatusCode::BAD_REQUEST,
            BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StorageUnavailable | DisclosureLogUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            PurposeRole(..) | PurposeRelation(..) | ProductNotOwned(_) | DepositRole(..) => {
                StatusCode::FORBIDDEN
            }
            PurposeCaseStatus(..) | ProductUpstream(_) => StatusCode::CONFLICT,
            PurposeUnknown(_)
            | PurposeNotForChecks(_)
            | PurposeAggregateOnly(_)
            | SubjectCaseMismatch
            | ProductUnknown(_)
            | InvalidRecord(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SubjectNotFound | ViewUnknown(_) => StatusCode::NOT_FOUND,
            RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            CertificateRevoked | CertificateUnknown => StatusCode::UNAUTHORIZED,
            NotAdministrator | ApprovalByAuthor | ApprovalSamePartner => StatusCode::FORBIDDEN,
            CovenantInvalid(..) => StatusCode::UNPROCESSABLE_ENTITY,
            NotToml => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DraftNotFound | VersionNotFound => StatusCode::NOT_FOUND,
            DraftState(..) | DraftStale(..) | DraftUnchanged | ActivationConflict => {
                StatusCode::CONFLICT
            }
            ActivationFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Title and detail (what happened, how to fix it).
    pub fn describe(&self) -> (&'static str, String) {
        use ApiError::*;
        match self {
            TokenMissing => ("Token missing", "Send `Authorization: Bearer <JWT>` issued by your organisation's identity provider.".into()),
            TokenMalformed => ("Token malformed", "The bearer token is not a JWT (three base64url parts); send the token exactly as issued.".into()),
            TokenAlgorithmRefused(alg) => ("Token algorithm refused", format!("Tokens signed with `{alg}` are refused; sign with ES256, EdDSA or RS256 using a key registered in the covenant.")),
            TokenInvalid => ("Token signature invalid", "The signature does not verify with any key the covenant registers for your organisation; check the `kid` and the signing key.".into()),
            TokenIssuerMismatch => ("Token from another organisation", "The token's `iss` must be the partner of the client certificate on this connection; use a token of your own identity provider.".into()),
            TokenAudience => ("Token for another audience", "The token's `aud` must name this gateway; request a token for it.".into()),
            TokenExpired => ("Token expired", "Request a fresh token and retry.".into()),
            TokenNotYetValid => ("Token not yet valid", "The token's `iat` or `nbf` lies in the future; check your identity provider's clock.".into()),
            TokenLifetimeTooLong(max) => ("Token lifetime too long", format!("A token may live at most {max} seconds (`exp - iat`); issue shorter-lived tokens.")),
            TokenNotBound => ("Token not bound to a certificate", "Include `cnf.x5t#S256` with the SHA-256 thumbprint of your client certificate (RFC 8705).".into()),
            TokenBoundToOtherCertificate => ("Token bound to another certificate", "The token's `cnf.x5t#S256` does not match the client certificate of this connection; use the token on the connection it was issued for.".into()),
            RoleUnknown(r) => ("Unknown role", format!("The covenant does not know role `{r}`; ask your identity provider to issue only covenant roles.")),
            RoleNotHeld(r) => ("Role not held by this partner", format!("Under the covenant your organisation may not hold role `{r}`; remove it from the token.")),
            CasePermission(what) => ("Not permitted on the case register", format!("None of your roles may {what} under the covenant's [case_register].")),
            TransitionForbidden(from, to) => ("Status change not permitted", format!("None of your roles may move a case from {from} to {to}; ask a role the covenant lists for this transition.")),
            StatischRequiresPto => ("Only the PTO-R makes a case static", "Only role `pto-lid` may set status `statisch`; bring the case to the PTO-R.".into()),
            TransitionNotAllowed(from, to) => ("Status change not in the work process", format!("The work process does not allow a case to go from {from} to {to}; see the allowed transitions in docs/covenant.md.")),
            RegisseurRequired => ("Regisseur required", "A case is included (`opgenomen`) with a regisseur: set `regisseur` in the same request or before.".into()),
            InvalidRegisseur(p) => ("Invalid regisseur", format!("Partner `{p}` may not deliver regisseurs under the covenant; appoint a regisseur from a partner that may.")),
            UnknownPartner(p) => ("Unknown partner", format!("The covenant does not know partner `{p}`; use a partner id from the covenant.")),
            CaseNotFound => ("Case not found", "No case has this id; check the id returned when the case was created.".into()),
            CaseConflict => ("Case changed meanwhile", "Another change to this case was saved first; fetch the case again and retry.".into()),
            InvalidBsn(why) => ("Invalid BSN", format!("{why}.")),
            InvalidBody(why) => ("Invalid request body", format!("{why}; see the API documentation for the expected fields.")),
            JsonTooDeep(max) => ("JSON nested too deeply", format!("Request bodies may nest at most {max} levels; flatten the document.")),
            BodyTooLarge(max) => ("Request body too large", format!("Request bodies may be at most {max} bytes.")),
            UnsupportedMediaType => ("Unsupported media type", "Send the body as `Content-Type: application/json`.".into()),
            EmptyPatch => ("Nothing to change", "Name at least one field to change.".into()),
            NotFound => ("Not found", "There is no such endpoint; see the API documentation.".into()),
            MethodNotAllowed => ("Method not allowed", "This endpoint does not accept this method; see the API documentation.".into()),
            StorageUnavailable => ("Storage unavailable", "The gateway cannot reach its database; nothing was changed or disclosed. Retry later.".into()),
            PurposeUnknown(u) => ("Unknown purpose", format!("The covenant has no purpose `{u}`; name one of its purposes (e.g. regie, uitvoering, duiding).")),
            ViewUnknown(v) => ("Unknown view", format!("The covenant defines no aggregate view `{v}`; only its views can be asked.")),
            PurposeNotForChecks(u) => (
                "Not a check purpose",
                format!(
                    "A check answers only under purpose `{}`, not `{u}`; for content use /v1/disclosures with a case.",
                    crate::service::checks::CHECK_PURPOSE
                ),
            ),
            PurposeAggregateOnly(u) => ("Aggregate-level purpose", format!("Purpose `{u}` releases phenomenon-level figures only, never case-level data; use /v1/aggregates.")),
            PurposeRole(u, roles) => ("Purpose not open to your roles", format!("None of your roles may request under purpose `{u}`; it is open to: {roles}.")),
            PurposeCaseStatus(u, st) => ("Purpose not allowed in this case status", format!("Purpose `{u}` may not be used while the case is `{st}`.")),
            PurposeRelation(u, rel) => ("No relation to this case", format!("Purpose `{u}` requires that {rel}; ask whoever has that role in the case.")),
            SubjectCaseMismatch => ("Subject does not match the case", "The subject named is not the subject of this case; check both.".into()),
            SubjectNotFound => ("Unknown subject", "No case has this subject reference; register the case first and use its `subject_ref`.".into()),
            ProductUnknown(p) => ("Unknown product", format!("The covenant's catalogue has no product `{p}`.")),
            ProductNotOwned(p) => ("Not your product", format!("Only the partner that owns `{p}` may deposit its records.")),
            DepositRole(p, roles) => ("Not a role that deposits this product", format!("None of your roles may deposit `{p}` under the covenant; it lists: {roles}. Deposit from your organisation's source system with that role.")),
            ProductUpstream(p) => ("Product served upstream", format!("`{p}` is served by its owner's own endpoint; update it there.")),
            InvalidRecord(why) => ("Record does not fit the catalogue", format!("{why}; send only the catalogue's fields, with their types.")),
            RateLimited(secs) => ("Too many requests", format!("Your organisation or you sent too many requests; retry after {secs} second(s).")),
            DisclosureLogUnavailable => ("Disclosure log unavailable", "The disclosure could not be recorded, so nothing was disclosed. Retry later; the administrators have been alerted.".into()),
            CertificateRevoked => ("Certificate revoked", "Your client certificate is on the covenant CA's revocation list (loaded after this connection was opened); connect with a valid certificate.".into()),
            CertificateUnknown => ("Certificate no longer registered", "The active covenant version has no partner with this client certificate; ask the policy administrators which certificate your organisation is registered with.".into()),
            NotAdministrator => ("Not a policy administrator", "Only the policy's administrators may do this: your token must carry role `beheerder` and you must be listed in the gateway's [administration] administrators.".into()),
            CovenantInvalid(summary, _) => ("Covenant draft invalid", format!("{summary}; see `errors` (line:column: problem, with help), fix them and submit again. `gateway policy check FILE` shows the same.")),
            DraftNotFound => ("Draft not found", "No covenant draft has this id; list them with GET /v1/policy/drafts.".into()),
            VersionNotFound => ("Version not found", "No activated version has this id or hash; list them with GET /v1/policy/versions.".into()),
            ApprovalByAuthor => ("Approval by the author", "A draft must be approved by a second administrator, not by its author (four-eyes principle); ask another administrator.".into()),
            ApprovalSamePartner => ("Approval by the author's organisation", "This gateway requires the approver to belong to another partner than the author; ask an administrator of another partner.".into()),
            DraftState(status, need) => ("Draft not in the right state", format!("The draft is `{status}`; this step needs a draft that is `{need}`.")),
            DraftStale(base, active) => ("Draft made against an older version", format!("The draft was made against version {base}, but {active} is active now; draft the change again from the active version and simulate it.")),
            DraftUnchanged => ("Nothing to change", "The draft is the active version already; there is nothing to activate.".into()),
            ActivationConflict => ("Another activation came first", "The active version changed while this activation ran; nothing changed. Check GET /v1/policy and draft again if needed.".into()),
            ActivationFailed(why) => ("Activation failed", format!("The version could not be loaded ({why}); nothing changed and the active version stays. Fix the key directory or TLS files and retry.")),
            NotToml => ("Unsupported media type", "Send the covenant as `Content-Type: application/toml` (or text/plain), UTF-8.".into()),
            Internal => ("Internal error", "The gateway failed unexpectedly; nothing was disclosed. Report the transaction id to the administrators.".into()),
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let (title, detail) = self.describe();
        Problem {
            type_: format!("{TYPE_BASE}{}", self.slug()),
            title,
            status: self.status().as_u16(),
            detail,
            errors: match self {
                ApiError::CovenantInvalid(_, errors) => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// Storage failures become `storage-unavailable`; the cause goes to the operational log
    /// (no personal data is in it), never to the client.
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "storage failed");
        ApiError::StorageUnavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The type, never the detail: details may echo request content.
        tracing::info!(problem = %self.slug(), status = status.as_u16(), "refused");
        let slug = self.slug();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_else(|_| {
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
        if let ApiError::RateLimited(secs) = &self
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
            ApiError::TokenMissing,
            ApiError::TokenAlgorithmRefused("none".into()),
            ApiError::RoleNotHeld("voorportaal".into()),
            ApiError::TransitionNotAllowed("melding".into(), "uitvoering".into()),
            ApiError::BodyTooLarge(10),
            ApiError::StorageUnavailable,
        ];
        let statuses: Vec<u16> = all.iter().map(|e| e.status().as_u16()).collect();
        assert_eq!(statuses, vec![401, 401, 403, 409, 413, 503]);
        for e in all {
            let p = e.problem();
            assert!(p.type_.starts_with(TYPE_BASE));
            assert!(
                !p.detail.is_empty() && p.detail.ends_with('.'),
                "{}",
                p.detail
            );
        }
    }
}
