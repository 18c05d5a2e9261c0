//! The domain's refusals: everything a service can refuse a request with, each with a stable
//! name (the problem type a partner programs against, and what the log records) and a
//! one-sentence explanation of what happened and what to do, all in one table (`refusals!`). The
//! table names each refusal's HTTP status as a number; the edge builds the RFC 9457 document in
//! one place (`crate::http::problem`).

/// One table of every refusal: per row its doc, the variant (with its fields), its code (a
/// stable number, never reused), its HTTP status, its problem type (slug), its title, and its
/// detail (what happened, what to do; the fields in scope as references). From the table come
/// the enum, `slug`, `status`, `describe`, `examples` and `kind_index`, so that adding a
/// refusal is one row.
macro_rules! refusals {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident $( ( $($field:ident : $ty:ty),+ ) )? = $code:literal, $status:literal, $slug:literal, $title:literal => $detail:expr;
    )*) => {
        /// Everything the API can refuse or fail with.
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum Refusal {
            $( $(#[doc = $doc])* #[error($slug)] $name $( ( $($ty),+ ) )?, )*
        }

        impl Refusal {
            /// The short, stable name (the last part of the `type` URI).
            pub fn slug(&self) -> &'static str {
                match self {
                    $( Refusal::$name { .. } => $slug, )*
                }
            }

            /// The HTTP status (the edge turns it into its type).
            pub fn status(&self) -> u16 {
                match self {
                    $( Refusal::$name { .. } => $status, )*
                }
            }

            /// Title and detail (what happened, how to fix it).
            pub fn describe(&self) -> (&'static str, String) {
                match self {
                    $( Refusal::$name $( ( $($field),+ ) )? => ($title, $detail), )*
                }
            }

            /// One refusal of every kind (with placeholder details): for the API document and
            /// the tests that check it and `docs/problems.md` against this table.
            pub fn examples() -> Vec<Refusal> {
                vec![ $( Refusal::$name $( ( $( <$ty as Default>::default() ),+ ) )?, )* ]
            }

            /// The kind's stable number.
            pub fn kind_index(&self) -> usize {
                match self {
                    $( Refusal::$name { .. } => $code, )*
                }
            }
        }
    };
}

refusals! {
    /// No bearer token.
    TokenMissing = 0, 401, "token-missing", "Token missing" =>
        "Send `Authorization: Bearer <JWT>` issued by your organisation's identity provider.".into();
    /// Not a JWT.
    TokenMalformed = 1, 401, "token-malformed", "Token malformed" =>
        "The bearer token is not a JWT (three base64url parts); send the token exactly as issued.".into();
    /// `none`, HMAC or an unsupported algorithm.
    TokenAlgorithmRefused(alg: String) = 2, 401, "token-algorithm-refused", "Token algorithm refused" =>
        format!("Tokens signed with `{alg}` are refused; sign with ES256, EdDSA or RS256 using a key registered in the covenant.");
    /// Signature does not verify with the partner's registered keys.
    TokenInvalid = 3, 401, "token-invalid", "Token signature invalid" =>
        "The signature does not verify with any key the covenant registers for your organisation; check the `kid` and the signing key.".into();
    /// The partner registers no key of the token's `alg` (and `kid`).
    TokenKeyUnknown = 64, 401, "token-key-unknown", "Token key unknown" =>
        "Your organisation registers no key with this token's `alg` and `kid` in the covenant; sign with a registered key or have the key registered.".into();
    /// Longer than the gateway accepts (the limit in bytes).
    TokenTooLarge(max: usize) = 65, 401, "token-too-large", "Token too large" =>
        format!("A bearer token may be at most {max} bytes; issue tokens with only the claims the gateway reads (iss, sub, aud, exp, iat, roles, cnf).");
    /// A signed claim missing or of the wrong type: the claim and what is wrong.
    TokenClaim(claim: &'static str, what: &'static str) = 66, 401, "token-claim", "Token claim missing or malformed" =>
        format!("The signature verifies, but the token's `{claim}` {what}; fix the token your identity provider issues.");
    /// `iss` is not the partner of the client certificate.
    TokenIssuerMismatch = 4, 401, "token-issuer-mismatch", "Token from another organisation" =>
        "The token's `iss` must be the partner of the client certificate on this connection; use a token of your own identity provider.".into();
    /// `aud` is not this gateway.
    TokenAudience = 5, 401, "token-audience", "Token for another audience" =>
        "The token's `aud` must name this gateway; request a token for it.".into();
    /// `exp` has passed.
    TokenExpired = 6, 401, "token-expired", "Token expired" =>
        "Request a fresh token and retry.".into();
    /// `iat` or `nbf` lies in the future.
    TokenNotYetValid = 7, 401, "token-not-yet-valid", "Token not yet valid" =>
        "The token's `iat` or `nbf` lies in the future; check your identity provider's clock.".into();
    /// `exp - iat` exceeds the maximum lifetime.
    TokenLifetimeTooLong(max: i64) = 8, 401, "token-lifetime-too-long", "Token lifetime too long" =>
        format!("A token may live at most {max} seconds (`exp - iat`); issue shorter-lived tokens.");
    /// No `cnf.x5t#S256`.
    TokenNotBound = 9, 401, "token-not-bound", "Token not bound to a certificate" =>
        "Include `cnf.x5t#S256` with the SHA-256 thumbprint of your client certificate (RFC 8705).".into();
    /// `cnf.x5t#S256` names another certificate.
    TokenBoundToOtherCertificate = 10, 401, "token-bound-to-other-certificate", "Token bound to another certificate" =>
        "The token's `cnf.x5t#S256` does not match the client certificate of this connection; use the token on the connection it was issued for.".into();
    /// The token names a role the covenant does not know.
    RoleUnknown(r: String) = 11, 403, "role-unknown", "Unknown role" =>
        format!("The covenant does not know role `{r}`; ask your identity provider to issue only covenant roles.");
    /// The partner may not hold a role the token names.
    RoleNotHeld(r: String) = 12, 403, "role-not-held", "Role not held by this partner" =>
        format!("Under the covenant your organisation may not hold role `{r}`; remove it from the token.");
    /// None of the requester's roles may do this to cases.
    CasePermission(what: &'static str) = 13, 403, "case-permission", "Not permitted on the case register" =>
        format!("None of your roles may {what} under the covenant's [case_register].");
    /// The covenant does not let the requester's roles make this status change.
    TransitionForbidden(from: String, to: String) = 14, 403, "transition-forbidden", "Status change not permitted" =>
        format!("None of your roles may move a case from {from} to {to}; ask a role the covenant lists for this transition.");
    /// Only `pto-lid` may make a case static.
    StatischRequiresRole(role: String) = 15, 403, "statisch-requires-pto", "Only the PTO-R makes a case static" =>
        format!("Only role `{role}` may set status `statisch`; bring the case to the PTO-R.");
    /// The work process has no such status change.
    TransitionNotAllowed(from: String, to: String) = 16, 409, "transition-not-allowed", "Status change not in the work process" =>
        format!("The work process does not allow a case to go from {from} to {to}; see the allowed transitions in docs/covenant.md.");
    /// A case must have a regisseur before it is included.
    RegisseurRequired = 17, 422, "regisseur-required", "Regisseur required" =>
        "A case is included (`opgenomen`) with a regisseur: set `regisseur` in the same request or before.".into();
    /// The regisseur's partner may not deliver regisseurs.
    InvalidRegisseur(p: String) = 18, 422, "invalid-regisseur", "Invalid regisseur" =>
        format!("Partner `{p}` may not deliver regisseurs under the covenant; appoint a regisseur from a partner that may.");
    /// None of the requester's roles takes this appointing decision (the field, who takes it).
    AppointmentForbidden(field: &'static str, by: String) = 74, 403, "appointment-forbidden", "Not your appointment to make" =>
        format!("`{field}` grants a relation to the case and is set only by {by} under the covenant's [case_register.appoint]; nothing was changed. Bring the decision to them.");
    /// The appointing decision is not taken in the case's current status (field, status).
    AppointmentStatus(field: &'static str, st: String) = 75, 409, "appointment-status", "Appointment not open in this status" =>
        format!("`{field}` may not be set while the case is `{st}`; see [case_register.appoint] for the statuses in which it is decided.");
    /// A requester naming itself the case's regisseur.
    SelfAppointment = 76, 403, "self-appointment", "Self-appointment refused" =>
        "No requester may appoint itself the case's regisseur; the Regieoverleg appoints another staff member or you, through another of its members.".into();
    /// A partner id the covenant does not know.
    UnknownPartner(p: String) = 19, 422, "unknown-partner", "Unknown partner" =>
        format!("The covenant does not know partner `{p}`; use a partner id from the covenant.");
    /// The person has an open case already (its id, for a role that reads the register).
    CaseOpen(id: Option<String>) = 77, 409, "case-open", "This person has an open case" =>
        match id { Some(id) => format!("A signal about a person with an open case belongs to that case ({id}): add it there and bring it to the case's regisseur; one case per person at a time."), None => "A signal about a person with an open case belongs to that case: bring it to the voorportaal, which adds it there; one case per person at a time.".into() };
    /// The database's active covenant version is not the one the log activated: nothing is
    /// served until they agree.
    CovenantMismatch = 80, 503, "covenant-mismatch", "Covenant version not shown by the log" =>
        "The covenant version the database names as active is not the one the log last activated, so nothing is answered under it; the operators have been alerted (see /readyz).".into();
    /// The change is a body's decision and came without it, or without its quorum (body name,
    /// quorum, partners).
    DecisionRequired(body: String, quorum: usize, partners: usize) = 78, 422, "decision-required", "A decision of a body" =>
        format!("This change is a decision of the {body}: send `decision` with its `reference` in the minutes, the meeting's `date` and the `members` who took it (at least {quorum}, of at least {partners} partner(s)); nothing was changed.");
    /// A body's decision that does not fit the covenant (what is wrong).
    DecisionMembers(why: String) = 79, 422, "decision-invalid", "Decision does not fit the covenant" =>
        format!("{why}; nothing was changed.");
    /// No case with that id.
    CaseNotFound = 20, 404, "case-not-found", "Case not found" =>
        "No case has this id; check the id returned when the case was created.".into();
    /// The case changed between read and write.
    CaseConflict = 21, 409, "case-conflict", "Case changed meanwhile" =>
        "Another change to this case was saved first; fetch the case again and retry.".into();
    /// BSN fails format or 11-proef.
    InvalidBsn(why: &'static str) = 22, 422, "invalid-bsn", "Invalid BSN" =>
        format!("{why}.");
    /// An identifier in the path or body that is not one (the parameter named).
    InvalidIdentifier(what: String) = 67, 400, "invalid-identifier", "Invalid identifier" =>
        format!("`{what}` must be 1 to 128 characters of A-Z a-z 0-9 . _ - ~ : exactly as the gateway issued it (nothing is trimmed).");
    /// Body is not the expected JSON.
    InvalidBody(why: String) = 23, 400, "invalid-body", "Invalid request body" =>
        format!("{why}; see the API documentation for the expected fields.");
    /// JSON nested deeper than allowed.
    JsonTooDeep(max: usize) = 24, 400, "json-too-deep", "JSON nested too deeply" =>
        format!("Request bodies may nest at most {max} levels; flatten the document.");
    /// Body larger than allowed.
    BodyTooLarge(max: usize) = 25, 413, "body-too-large", "Request body too large" =>
        format!("Request bodies may be at most {max} bytes.");
    /// The request's headers: more fields or bytes than allowed (the limits).
    HeadersTooLarge(n: usize, bytes: usize) = 68, 431, "headers-too-large", "Request headers too large" =>
        format!("A request may carry at most {n} header fields of at most {bytes} bytes together; send only the headers the API uses.");
    /// The body's next piece did not arrive in time (the bound in ms).
    BodyTimeout(ms: u64) = 69, 408, "body-timeout", "Request body too slow" =>
        format!("The next part of the request body did not arrive within {ms} ms; nothing was done. Send the body at once.");
    /// The partner holds as many connections as it may (the limit).
    TooManyConnections(n: usize) = 70, 503, "too-many-connections", "Too many connections" =>
        format!("Your organisation holds {n} connections to the gateway already; this one is closed. Reuse connections (keep-alive, HTTP/2) instead of opening more.");
    /// Not `application/json`.
    UnsupportedMediaType = 26, 415, "unsupported-media-type", "Unsupported media type" =>
        "Send the body as `Content-Type: application/json`.".into();
    /// A PATCH that changes nothing.
    EmptyPatch = 27, 400, "empty-patch", "Nothing to change" =>
        "Name at least one field to change.".into();
    /// No such route.
    NotFound = 28, 404, "not-found", "Not found" =>
        "There is no such endpoint; see the API documentation.".into();
    /// Route exists, method does not.
    MethodNotAllowed = 29, 405, "method-not-allowed", "Method not allowed" =>
        "This endpoint does not accept this method; see the API documentation.".into();
    /// The database cannot be reached or written.
    StorageUnavailable = 30, 503, "storage-unavailable", "Storage unavailable" =>
        "The gateway cannot reach its database; nothing was changed or disclosed. Retry later.".into();
    /// The purpose is not in the covenant.
    PurposeUnknown(u: String) = 31, 422, "purpose-unknown", "Unknown purpose" =>
        format!("The covenant has no purpose `{u}`; name one of its purposes (e.g. regie, uitvoering, duiding).");
    /// The covenant has no such aggregate view.
    ViewUnknown(v: String) = 32, 404, "view-unknown", "Unknown view" =>
        format!("The covenant defines no aggregate view `{v}`; only its views can be asked.");
    /// `/v1/checks` is for `aanpak-check` only.
    PurposeNotForChecks(u: String, check: String) = 33, 422, "purpose-not-for-checks", "Not a check purpose" =>
        format!("A check answers only under purpose `{check}`, not `{u}`; for content use /v1/disclosures with a case.");
    /// The purpose releases aggregates only.
    PurposeAggregateOnly(u: String) = 34, 422, "purpose-aggregate-only", "Aggregate-level purpose" =>
        format!("Purpose `{u}` releases phenomenon-level figures only, never case-level data; use /v1/aggregates.");
    /// None of the requester's roles may use the purpose.
    PurposeRole(u: String, roles: String) = 35, 403, "purpose-role", "Purpose not open to your roles" =>
        format!("None of your roles may request under purpose `{u}`; it is open to: {roles}.");
    /// The case's status does not allow the purpose.
    PurposeCaseStatus(u: String, st: String) = 36, 409, "purpose-case-status", "Purpose not allowed in this case status" =>
        format!("Purpose `{u}` may not be used while the case is `{st}`.");
    /// The requester lacks the relation to the case the purpose demands.
    PurposeRelation(u: String, rel: &'static str) = 37, 403, "purpose-relation", "No relation to this case" =>
        format!("Purpose `{u}` requires that {rel}; ask whoever has that role in the case.");
    /// The subject named is not the case's subject.
    SubjectCaseMismatch = 38, 422, "subject-case-mismatch", "Subject does not match the case" =>
        "The subject named is not the subject of this case; check both.".into();
    /// The subject reference belongs to no case.
    SubjectNotFound = 39, 404, "subject-not-found", "Unknown subject" =>
        "No case has this subject reference; register the case first and use its `subject_ref`.".into();
    /// A product the catalogue does not have.
    ProductUnknown(p: String) = 40, 422, "product-unknown", "Unknown product" =>
        format!("The covenant's catalogue has no product `{p}`.");
    /// Records may be deposited only by the product's owner.
    ProductNotOwned(p: String) = 41, 403, "product-not-owned", "Not your product" =>
        format!("Only the partner that owns `{p}` may deposit its records.");
    /// None of the requester's roles may deposit this product.
    DepositRole(p: String, roles: String) = 42, 403, "deposit-role", "Not a role that deposits this product" =>
        format!("None of your roles may deposit `{p}` under the covenant; it lists: {roles}. Deposit from your organisation's source system with that role.");
    /// A product served by an upstream source cannot be deposited.
    ProductUpstream(p: String) = 43, 409, "product-upstream", "Product served upstream" =>
        format!("`{p}` is served by its owner's own endpoint; update it there.");
    /// Deposited records do not fit the catalogue.
    InvalidRecord(why: String) = 44, 422, "invalid-record", "Record does not fit the catalogue" =>
        format!("{why}; send only the catalogue's fields, with their types.");
    /// Too many requests.
    RateLimited(secs: u64) = 45, 429, "rate-limited", "Too many requests" =>
        format!("Your organisation or you sent too many requests; retry after {secs} second(s).");
    /// The gateway is handling as many requests as it may at once.
    Overloaded = 46, 503, "overloaded", "Gateway busy" =>
        "The gateway is handling as many requests as it may at once; nothing was done. Retry in a second.".into();
    /// The request took longer than the gateway allows.
    RequestTimeout(ms: u64) = 47, 503, "request-timeout", "Request took too long" =>
        format!("The request was not answered within {ms} ms and was given up; if it was a change, read the state before retrying.");
    /// The disclosure record could not be written: nothing is disclosed.
    DisclosureLogUnavailable = 48, 503, "disclosure-log-unavailable", "Disclosure log unavailable" =>
        "The disclosure could not be recorded, so nothing was disclosed. Retry later; the administrators have been alerted.".into();
    /// The connection's certificate was revoked after the connection was opened.
    CertificateRevoked = 49, 401, "certificate-revoked", "Certificate revoked" =>
        "Your client certificate is on the covenant CA's revocation list (loaded after this connection was opened); connect with a valid certificate.".into();
    /// The active covenant version has no partner with the connection's certificate.
    CertificateUnknown = 50, 401, "certificate-unknown", "Certificate no longer registered" =>
        "The active covenant version has no partner with this client certificate; ask the policy administrators which certificate your organisation is registered with.".into();
    /// Policy administration by someone who is not a listed administrator with `beheerder`.
    NotAdministrator(role: String) = 51, 403, "not-administrator", "Not a policy administrator" =>
        format!("Only the policy's administrators may do this: your token must carry role `{role}` and you must be listed in the gateway's [administration] administrators.");
    /// A draft that is not a valid covenant; the diagnostics, rendered.
    CovenantInvalid(summary: String, _unused: Vec<String>) = 52, 422, "covenant-invalid", "Covenant draft invalid" =>
        format!("{summary}; see `errors` (line:column: problem, with help), fix them and submit again. `gateway policy check FILE` shows the same.");
    /// No draft with that id.
    DraftNotFound = 53, 404, "draft-not-found", "Draft not found" =>
        "No covenant draft has this id; list them with GET /v1/policy/drafts.".into();
    /// No version (or activated draft) with that id.
    VersionNotFound = 54, 404, "version-not-found", "Version not found" =>
        "No activated version has this id or hash; list them with GET /v1/policy/versions.".into();
    /// The author tried to approve their own draft.
    ApprovalByAuthor = 55, 403, "four-eyes", "Approval by the author" =>
        "A draft must be approved by a second administrator, not by its author (four-eyes principle); ask another administrator.".into();
    /// The approver belongs to the author's partner and the configuration wants another.
    ApprovalSamePartner = 56, 403, "four-eyes-other-partner", "Approval by the author's organisation" =>
        "This gateway requires the approver to belong to another partner than the author; ask an administrator of another partner.".into();
    /// The draft is not in the state this step needs.
    DraftState(status: String, need: &'static str) = 57, 409, "draft-state", "Draft not in the right state" =>
        format!("The draft is `{status}`; this step needs a draft that is `{need}`.");
    /// The active version changed since the draft was made.
    DraftStale(base: String, active: String) = 58, 409, "draft-stale", "Draft made against an older version" =>
        format!("The draft was made against version {base}, but {active} is active now; draft the change again from the active version and simulate it.");
    /// The draft's approval no longer counts: given under another activation, or too old.
    ApprovalStale(why: String) = 81, 409, "approval-stale", "Approval no longer valid" =>
        format!("The draft's approval no longer counts: {why}. Ask an administrator other than the author to approve it again, then activate it.");
    /// A partner's signed approval that does not verify or does not approve this change.
    SignatureInvalid(why: String) = 82, 422, "signature-invalid", "Signed approval refused" =>
        format!("The signed approval does not count: {why}. Sign the draft's version against the active version with the partner's governance key (`gateway policy sign`).");
    /// The change lacks signatures its review names.
    SignaturesMissing(what: String) = 83, 409, "signatures-missing", "Partners' signatures missing" =>
        format!("The change cannot be activated without {what}; the review (`diff.review` of the draft) names whose signature each change needs. Add them with `gateway policy signature`.");
    /// An inclusion without the complete aanpak-check the covenant asks first.
    CheckRequired(why: String) = 84, 409, "check-required", "Aanpak-check required before inclusion" =>
        format!("The covenant includes a case only after an aanpak-check of its person answered complete ([checks] before_inclusion): {why}. Check the person (POST /v1/checks) and include again, or give `check_override` with the reason to go without.");
    /// An administrator of one partner handling a draft that changes more than its own part.
    PolicyNotYourPart(partner: String, lines: String) = 85, 403, "policy-not-your-part", "Not this administrator's part" =>
        format!("An administrator of `{partner}` drafts, approves and activates changes to {partner}'s own part only (its entry, its products, rules on its data alone); this draft also changes {lines}. The programme partner's administrators handle it (the partners it touches sign it).");
    /// The art. 15 report moved from a URL that carried the BSN to a POST with it in the body.
    SubjectReportMoved = 87, 410, "subject-report-moved", "The report moved" =>
        "A BSN never goes in a URL (URLs end up in access logs, proxies and browser histories): ask for the art. 15 report with POST /v1/audit/subjects/report and {\"subject\": {\"bsn\": \"…\"}} in the body.".into();
    /// A BSN in a URL (a search's `subject` in the query): refused, the search is a POST.
    BsnInUrl = 88, 400, "bsn-in-url", "No BSN in a URL" =>
        "A BSN never goes in a URL (URLs end up in access logs, proxies and browser histories): search by person with POST /v1/audit/disclosures/search and the filters, `subject` among them, in the body. Nothing was searched.".into();
    /// The change needs a body's review first (`[[transition]] review`) and came without it, or
    /// without its quorum (body name, quorum, partners).
    ReviewRequired(body: String, quorum: usize, partners: usize) = 86, 422, "review-required", "A review by a body first" =>
        format!("This change comes after a review by the {body}: send `review` with its `reference` in the minutes, the meeting's `date` and the `members` who gave it (at least {quorum}, of at least {partners} partner(s)); nothing was changed.");
    /// The draft is the active version already.
    DraftUnchanged = 59, 409, "draft-unchanged", "Nothing to change" =>
        "The draft is the active version already; there is nothing to activate.".into();
    /// Another activation came first.
    ActivationConflict = 60, 409, "activation-conflict", "Another activation came first" =>
        "The active version changed while this activation ran; nothing changed. Check GET /v1/policy and draft again if needed.".into();
    /// The version could not be loaded (keys, certificates, CRLs); nothing changed.
    ActivationFailed(why: String) = 61, 503, "activation-failed", "Activation failed" =>
        format!("The version could not be loaded ({why}); nothing changed and the active version stays. Fix the key directory or TLS files and retry.");
    /// Not the expected body type for a covenant draft.
    NotToml = 62, 415, "unsupported-media-type", "Unsupported media type" =>
        "Send the covenant as `Content-Type: application/toml` (or text/plain), UTF-8.".into();
    /// Too few witnesses have cosigned the log for longer than the covenant allows: the log is
    /// blind, so nothing is disclosed (cosigned by, needed, blind for seconds).
    LogUnwitnessed(have: usize, need: usize, secs: u64) = 71, 503, "log-unwitnessed", "Disclosure log not witnessed" =>
        format!("Only {have} of the {need} witnesses the covenant requires have cosigned the disclosure log in the last {secs} seconds, so nothing is disclosed: the partners could not hold the gateway to this answer. Disclosures resume by themselves when the witnesses cosign again; retry later. Operators: see docs/operations.md, \"Witnesses\".");
    /// A check by another approach's pseudonym names an approach the covenant (or this
    /// gateway's configuration) does not have.
    ApproachUnknown(a: String) = 72, 422, "approach-unknown", "Unknown approach" =>
        format!("The covenant names no other approach `{a}`; ask as an approach of the covenant's [[approach]].");
    /// A check by an approach's pseudonym from a partner that does not run that approach.
    ApproachNotYours(a: String, p: String) = 73, 403, "approach-not-yours", "Not this approach's partner" =>
        format!("Only partner `{p}`, which runs approach `{a}` under the covenant, may ask as that approach.");
    /// A bug; nothing was disclosed.
    Internal = 63, 500, "internal", "Internal error" =>
        "The gateway failed unexpectedly; nothing was disclosed. Report the transaction id to the administrators.".into();
}

impl From<crate::store::StoreError> for Refusal {
    /// Storage failures become `storage-unavailable`; the cause goes to the operational log
    /// (no personal data is in it), never to the client.
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "storage failed");
        Refusal::StorageUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_hold_every_kind_once() {
        let mut seen: Vec<usize> = Refusal::examples()
            .iter()
            .map(Refusal::kind_index)
            .collect();
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
        // Two kinds share a problem type: a covenant draft of the wrong media type is the
        // same `unsupported-media-type` as a body that is not JSON.
        let mut slugs: Vec<&str> = Refusal::examples().iter().map(Refusal::slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), n - 1);
    }
}
