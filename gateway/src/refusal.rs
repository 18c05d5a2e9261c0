//! The domain's refusals: everything a service can refuse a request with, each with a stable
//! name (the problem type a partner programs against, and what the log records) and a
//! one-sentence explanation of what happened and what to do. No HTTP here: the edge maps each
//! refusal to its status and RFC 9457 document in one place (`crate::http::problem`).

/// Everything the API can refuse or fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
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
    /// The partner registers no key of the token's `alg` (and `kid`).
    #[error("token-key-unknown")]
    TokenKeyUnknown,
    /// Longer than the gateway accepts (the limit in bytes).
    #[error("token-too-large")]
    TokenTooLarge(usize),
    /// A signed claim missing or of the wrong type: the claim and what is wrong.
    #[error("token-claim")]
    TokenClaim(&'static str, &'static str),
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
    StatischRequiresRole(String),
    /// The work process has no such status change.
    #[error("transition-not-allowed")]
    TransitionNotAllowed(String, String),
    /// A case must have a regisseur before it is included.
    #[error("regisseur-required")]
    RegisseurRequired,
    /// The regisseur's partner may not deliver regisseurs.
    #[error("invalid-regisseur")]
    InvalidRegisseur(String),
    /// None of the requester's roles takes this appointing decision (the field, who takes it).
    #[error("appointment-forbidden")]
    AppointmentForbidden(&'static str, String),
    /// The appointing decision is not taken in the case's current status (field, status).
    #[error("appointment-status")]
    AppointmentStatus(&'static str, String),
    /// A requester naming itself the case's regisseur.
    #[error("self-appointment")]
    SelfAppointment,
    /// The change is a body's decision and came without it, or without its quorum (body name,
    /// quorum, partners).
    #[error("decision-required")]
    DecisionRequired(String, usize, usize),
    /// A body's decision that does not fit the covenant (what is wrong).
    #[error("decision-invalid")]
    DecisionMembers(String),
    /// The change needs a body's review first (`[[transition]] review`) and came without it, or
    /// without its quorum (body name, quorum, partners).
    #[error("review-required")]
    ReviewRequired(String, usize, usize),
    /// The database's active covenant version is not the one the log activated: nothing is
    /// served until they agree.
    #[error("covenant-mismatch")]
    CovenantMismatch,
    /// The person has an open case already (its id, for a role that reads the register).
    #[error("case-open")]
    CaseOpen(Option<String>),
    /// A partner id the covenant does not know.
    #[error("unknown-partner")]
    UnknownPartner(String),
    /// No case with that id.
    #[error("case-not-found")]
    CaseNotFound,
    /// The case changed between read and write.
    #[error("case-conflict")]
    CaseConflict,
    /// An identifier in the path or body that is not one (the parameter named).
    #[error("invalid-identifier")]
    InvalidIdentifier(String),
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
    /// The request's headers: more fields or bytes than allowed (the limits).
    #[error("headers-too-large")]
    HeadersTooLarge(usize, usize),
    /// The body's next piece did not arrive in time (the bound in ms).
    #[error("body-timeout")]
    BodyTimeout(u64),
    /// The partner holds as many connections as it may (the limit).
    #[error("too-many-connections")]
    TooManyConnections(usize),
    /// Not `application/json`.
    #[error("unsupported-media-type")]
    UnsupportedMediaType,
    /// A PATCH that changes nothing.
    #[error("empty-patch")]
    EmptyPatch,
    /// No such route.
    #[error("not-found")]
    NotFound,
    /// The art. 15 report moved from a URL that carried the BSN to a POST with it in the body.
    #[error("subject-report-moved")]
    SubjectReportMoved,
    /// A BSN in a URL (a search's `subject` in the query): refused, the search is a POST.
    #[error("bsn-in-url")]
    BsnInUrl,
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
    PurposeNotForChecks(String, String),
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
    /// The gateway is handling as many requests as it may at once.
    #[error("overloaded")]
    Overloaded,
    /// The request took longer than the gateway allows.
    #[error("request-timeout")]
    RequestTimeout(u64),
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
    NotAdministrator(String),
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
    /// The draft's approval no longer counts: given under another activation, or too old.
    #[error("approval-stale")]
    ApprovalStale(String),
    /// A partner's signed approval that does not verify or does not approve this change.
    #[error("signature-invalid")]
    SignatureInvalid(String),
    /// The change lacks signatures its review names.
    #[error("signatures-missing")]
    SignaturesMissing(String),
    /// An inclusion without the complete aanpak-check the covenant asks first.
    #[error("check-required")]
    CheckRequired(String),
    /// An administrator of one partner handling a draft that changes more than its own part.
    #[error("policy-not-your-part")]
    PolicyNotYourPart(String, String),
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
    /// Too few witnesses have cosigned the log for longer than the covenant allows: the log is
    /// blind, so nothing is disclosed (cosigned by, needed, blind for seconds).
    #[error("log-unwitnessed")]
    LogUnwitnessed(usize, usize, u64),
    /// A check by another approach's pseudonym names an approach the covenant (or this
    /// gateway's configuration) does not have.
    #[error("approach-unknown")]
    ApproachUnknown(String),
    /// A check by an approach's pseudonym from a partner that does not run that approach.
    #[error("approach-not-yours")]
    ApproachNotYours(String, String),
    /// A bug; nothing was disclosed.
    #[error("internal")]
    Internal,
}

impl Refusal {
    /// The short, stable name (the last part of the `type` URI).
    pub fn slug(&self) -> String {
        self.to_string()
    }

    /// Title and detail (what happened, how to fix it).
    pub fn describe(&self) -> (&'static str, String) {
        use Refusal::*;
        match self {
            TokenMissing => ("Token missing", "Send `Authorization: Bearer <JWT>` issued by your organisation's identity provider.".into()),
            TokenMalformed => ("Token malformed", "The bearer token is not a JWT (three base64url parts); send the token exactly as issued.".into()),
            TokenAlgorithmRefused(alg) => ("Token algorithm refused", format!("Tokens signed with `{alg}` are refused; sign with ES256, EdDSA or RS256 using a key registered in the covenant.")),
            TokenInvalid => ("Token signature invalid", "The signature does not verify with any key the covenant registers for your organisation; check the `kid` and the signing key.".into()),
            TokenKeyUnknown => ("Token key unknown", "Your organisation registers no key with this token's `alg` and `kid` in the covenant; sign with a registered key or have the key registered.".into()),
            TokenTooLarge(max) => ("Token too large", format!("A bearer token may be at most {max} bytes; issue tokens with only the claims the gateway reads (iss, sub, aud, exp, iat, roles, cnf).")),
            TokenClaim(claim, what) => ("Token claim missing or malformed", format!("The signature verifies, but the token's `{claim}` {what}; fix the token your identity provider issues.")),
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
            StatischRequiresRole(role) => ("Only the PTO-R makes a case static", format!("Only role `{role}` may set status `statisch`; bring the case to the PTO-R.")),
            TransitionNotAllowed(from, to) => ("Status change not in the work process", format!("The work process does not allow a case to go from {from} to {to}; see the allowed transitions in docs/covenant.md.")),
            RegisseurRequired => ("Regisseur required", "A case is included (`opgenomen`) with a regisseur: set `regisseur` in the same request or before.".into()),
            InvalidRegisseur(p) => ("Invalid regisseur", format!("Partner `{p}` may not deliver regisseurs under the covenant; appoint a regisseur from a partner that may.")),
            AppointmentForbidden(field, by) => ("Not your appointment to make", format!("`{field}` grants a relation to the case and is set only by {by} under the covenant's [case_register.appoint]; nothing was changed. Bring the decision to them.")),
            AppointmentStatus(field, st) => ("Appointment not open in this status", format!("`{field}` may not be set while the case is `{st}`; see [case_register.appoint] for the statuses in which it is decided.")),
            SelfAppointment => ("Self-appointment refused", "No requester may appoint itself the case's regisseur; the Regieoverleg appoints another staff member or you, through another of its members.".into()),
            CovenantMismatch => ("Covenant version not shown by the log", "The covenant version the database names as active is not the one the log last activated, so nothing is answered under it; the operators have been alerted (see /readyz).".into()),
            DecisionRequired(body, quorum, partners) => ("A decision of a body", format!("This change is a decision of the {body}: send `decision` with its `reference` in the minutes, the meeting's `date` and the `members` who took it (at least {quorum}, of at least {partners} partner(s)); nothing was changed.")),
            DecisionMembers(why) => ("Decision does not fit the covenant", format!("{why}; nothing was changed.")),
            ReviewRequired(body, quorum, partners) => ("A review by a body first", format!("This change comes after a review by the {body}: send `review` with its `reference` in the minutes, the meeting's `date` and the `members` who gave it (at least {quorum}, of at least {partners} partner(s)); nothing was changed.")),
            CaseOpen(Some(id)) => ("This person has an open case", format!("A signal about a person with an open case belongs to that case ({id}): add it there and bring it to the case's regisseur; one case per person at a time.")),
            CaseOpen(None) => ("This person has an open case", "A signal about a person with an open case belongs to that case: bring it to the voorportaal, which adds it there; one case per person at a time.".into()),
            UnknownPartner(p) => ("Unknown partner", format!("The covenant does not know partner `{p}`; use a partner id from the covenant.")),
            CaseNotFound => ("Case not found", "No case has this id; check the id returned when the case was created.".into()),
            CaseConflict => ("Case changed meanwhile", "Another change to this case was saved first; fetch the case again and retry.".into()),
            InvalidBsn(why) => ("Invalid BSN", format!("{why}.")),
            InvalidIdentifier(what) => ("Invalid identifier", format!("`{what}` must be 1 to 128 characters of A-Z a-z 0-9 . _ - ~ : exactly as the gateway issued it (nothing is trimmed).")),
            InvalidBody(why) => ("Invalid request body", format!("{why}; see the API documentation for the expected fields.")),
            JsonTooDeep(max) => ("JSON nested too deeply", format!("Request bodies may nest at most {max} levels; flatten the document.")),
            BodyTooLarge(max) => ("Request body too large", format!("Request bodies may be at most {max} bytes.")),
            HeadersTooLarge(n, bytes) => ("Request headers too large", format!("A request may carry at most {n} header fields of at most {bytes} bytes together; send only the headers the API uses.")),
            BodyTimeout(ms) => ("Request body too slow", format!("The next part of the request body did not arrive within {ms} ms; nothing was done. Send the body at once.")),
            TooManyConnections(n) => ("Too many connections", format!("Your organisation holds {n} connections to the gateway already; this one is closed. Reuse connections (keep-alive, HTTP/2) instead of opening more.")),
            UnsupportedMediaType => ("Unsupported media type", "Send the body as `Content-Type: application/json`.".into()),
            EmptyPatch => ("Nothing to change", "Name at least one field to change.".into()),
            NotFound => ("Not found", "There is no such endpoint; see the API documentation.".into()),
            SubjectReportMoved => ("The report moved", "A BSN never goes in a URL (URLs end up in access logs, proxies and browser histories): ask for the art. 15 report with POST /v1/audit/subjects/report and {\"subject\": {\"bsn\": \"…\"}} in the body.".into()),
            BsnInUrl => ("No BSN in a URL", "A BSN never goes in a URL (URLs end up in access logs, proxies and browser histories): search by person with POST /v1/audit/disclosures/search and the filters, `subject` among them, in the body. Nothing was searched.".into()),
            MethodNotAllowed => ("Method not allowed", "This endpoint does not accept this method; see the API documentation.".into()),
            StorageUnavailable => ("Storage unavailable", "The gateway cannot reach its database; nothing was changed or disclosed. Retry later.".into()),
            PurposeUnknown(u) => ("Unknown purpose", format!("The covenant has no purpose `{u}`; name one of its purposes (e.g. regie, uitvoering, duiding).")),
            ViewUnknown(v) => ("Unknown view", format!("The covenant defines no aggregate view `{v}`; only its views can be asked.")),
            PurposeNotForChecks(u, check) => (
                "Not a check purpose",
                format!("A check answers only under purpose `{check}`, not `{u}`; for content use /v1/disclosures with a case."),
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
            Overloaded => ("Gateway busy", "The gateway is handling as many requests as it may at once; nothing was done. Retry in a second.".into()),
            RequestTimeout(ms) => ("Request took too long", format!("The request was not answered within {ms} ms and was given up; if it was a change, read the state before retrying.")),
            RateLimited(secs) => ("Too many requests", format!("Your organisation or you sent too many requests; retry after {secs} second(s).")),
            DisclosureLogUnavailable => ("Disclosure log unavailable", "The disclosure could not be recorded, so nothing was disclosed. Retry later; the administrators have been alerted.".into()),
            CertificateRevoked => ("Certificate revoked", "Your client certificate is on the covenant CA's revocation list (loaded after this connection was opened); connect with a valid certificate.".into()),
            CertificateUnknown => ("Certificate no longer registered", "The active covenant version has no partner with this client certificate; ask the policy administrators which certificate your organisation is registered with.".into()),
            NotAdministrator(role) => ("Not a policy administrator", format!("Only the policy's administrators may do this: your token must carry role `{role}` and you must be listed in the gateway's [administration] administrators.")),
            CovenantInvalid(summary, _) => ("Covenant draft invalid", format!("{summary}; see `errors` (line:column: problem, with help), fix them and submit again. `gateway policy check FILE` shows the same.")),
            DraftNotFound => ("Draft not found", "No covenant draft has this id; list them with GET /v1/policy/drafts.".into()),
            VersionNotFound => ("Version not found", "No activated version has this id or hash; list them with GET /v1/policy/versions.".into()),
            ApprovalByAuthor => ("Approval by the author", "A draft must be approved by a second administrator, not by its author (four-eyes principle); ask another administrator.".into()),
            ApprovalSamePartner => ("Approval by the author's organisation", "This gateway requires the approver to belong to another partner than the author; ask an administrator of another partner.".into()),
            DraftState(status, need) => ("Draft not in the right state", format!("The draft is `{status}`; this step needs a draft that is `{need}`.")),
            SignatureInvalid(why) => ("Signed approval refused", format!("The signed approval does not count: {why}. Sign the draft's version against the active version with the partner's governance key (`gateway policy sign`).")),
            PolicyNotYourPart(partner, lines) => ("Not this administrator's part", format!("An administrator of `{partner}` drafts, approves and activates changes to {partner}'s own part only (its entry, its products, rules on its data alone); this draft also changes {lines}. The programme partner's administrators handle it (the partners it touches sign it).")),
            CheckRequired(why) => ("Aanpak-check required before inclusion", format!("The covenant includes a case only after an aanpak-check of its person answered complete ([checks] before_inclusion): {why}. Check the person (POST /v1/checks) and include again, or give `check_override` with the reason to go without.")),
            SignaturesMissing(what) => ("Partners' signatures missing", format!("The change cannot be activated without {what}; the review (`diff.review` of the draft) names whose signature each change needs. Add them with `gateway policy signature`.")),
            ApprovalStale(why) => ("Approval no longer valid", format!("The draft's approval no longer counts: {why}. Ask an administrator other than the author to approve it again, then activate it.")),
            DraftStale(base, active) => ("Draft made against an older version", format!("The draft was made against version {base}, but {active} is active now; draft the change again from the active version and simulate it.")),
            DraftUnchanged => ("Nothing to change", "The draft is the active version already; there is nothing to activate.".into()),
            ActivationConflict => ("Another activation came first", "The active version changed while this activation ran; nothing changed. Check GET /v1/policy and draft again if needed.".into()),
            ActivationFailed(why) => ("Activation failed", format!("The version could not be loaded ({why}); nothing changed and the active version stays. Fix the key directory or TLS files and retry.")),
            NotToml => ("Unsupported media type", "Send the covenant as `Content-Type: application/toml` (or text/plain), UTF-8.".into()),
            LogUnwitnessed(have, need, secs) => ("Disclosure log not witnessed", format!("Only {have} of the {need} witnesses the covenant requires have cosigned the disclosure log in the last {secs} seconds, so nothing is disclosed: the partners could not hold the gateway to this answer. Disclosures resume by themselves when the witnesses cosign again; retry later. Operators: see docs/operations.md, \"Witnesses\".")),
            ApproachUnknown(a) => ("Unknown approach", format!("The covenant names no other approach `{a}`; ask as an approach of the covenant's [[approach]].")),
            ApproachNotYours(a, p) => ("Not this approach's partner", format!("Only partner `{p}`, which runs approach `{a}` under the covenant, may ask as that approach.")),
            Internal => ("Internal error", "The gateway failed unexpectedly; nothing was disclosed. Report the transaction id to the administrators.".into()),
        }
    }
}

impl Refusal {
    /// One refusal of every kind (with placeholder details): for the API document and the
    /// tests that check it and `docs/problems.md` against this enum.
    pub fn examples() -> Vec<Refusal> {
        vec![
            Refusal::TokenMissing,
            Refusal::TokenMalformed,
            Refusal::TokenAlgorithmRefused(String::new()),
            Refusal::TokenInvalid,
            Refusal::TokenKeyUnknown,
            Refusal::TokenTooLarge(0),
            Refusal::TokenClaim("", ""),
            Refusal::TokenIssuerMismatch,
            Refusal::TokenAudience,
            Refusal::TokenExpired,
            Refusal::TokenNotYetValid,
            Refusal::TokenLifetimeTooLong(0),
            Refusal::TokenNotBound,
            Refusal::TokenBoundToOtherCertificate,
            Refusal::RoleUnknown(String::new()),
            Refusal::RoleNotHeld(String::new()),
            Refusal::CasePermission(""),
            Refusal::TransitionForbidden(String::new(), String::new()),
            Refusal::StatischRequiresRole(String::new()),
            Refusal::TransitionNotAllowed(String::new(), String::new()),
            Refusal::RegisseurRequired,
            Refusal::InvalidRegisseur(String::new()),
            Refusal::AppointmentForbidden("", String::new()),
            Refusal::AppointmentStatus("", String::new()),
            Refusal::SelfAppointment,
            Refusal::UnknownPartner(String::new()),
            Refusal::CaseOpen(None),
            Refusal::CovenantMismatch,
            Refusal::DecisionRequired(String::new(), 0, 0),
            Refusal::DecisionMembers(String::new()),
            Refusal::CaseNotFound,
            Refusal::CaseConflict,
            Refusal::InvalidBsn(""),
            Refusal::InvalidIdentifier(String::new()),
            Refusal::InvalidBody(String::new()),
            Refusal::JsonTooDeep(0),
            Refusal::BodyTooLarge(0),
            Refusal::HeadersTooLarge(0, 0),
            Refusal::BodyTimeout(0),
            Refusal::TooManyConnections(0),
            Refusal::UnsupportedMediaType,
            Refusal::EmptyPatch,
            Refusal::NotFound,
            Refusal::MethodNotAllowed,
            Refusal::StorageUnavailable,
            Refusal::PurposeUnknown(String::new()),
            Refusal::ViewUnknown(String::new()),
            Refusal::PurposeNotForChecks(String::new(), String::new()),
            Refusal::PurposeAggregateOnly(String::new()),
            Refusal::PurposeRole(String::new(), String::new()),
            Refusal::PurposeCaseStatus(String::new(), String::new()),
            Refusal::PurposeRelation(String::new(), ""),
            Refusal::SubjectCaseMismatch,
            Refusal::SubjectNotFound,
            Refusal::ProductUnknown(String::new()),
            Refusal::ProductNotOwned(String::new()),
            Refusal::DepositRole(String::new(), String::new()),
            Refusal::ProductUpstream(String::new()),
            Refusal::InvalidRecord(String::new()),
            Refusal::RateLimited(0),
            Refusal::Overloaded,
            Refusal::RequestTimeout(0),
            Refusal::DisclosureLogUnavailable,
            Refusal::CertificateRevoked,
            Refusal::CertificateUnknown,
            Refusal::NotAdministrator(String::new()),
            Refusal::CovenantInvalid(String::new(), Vec::new()),
            Refusal::DraftNotFound,
            Refusal::VersionNotFound,
            Refusal::ApprovalByAuthor,
            Refusal::ApprovalSamePartner,
            Refusal::DraftState(String::new(), ""),
            Refusal::DraftStale(String::new(), String::new()),
            Refusal::ApprovalStale(String::new()),
            Refusal::SignatureInvalid(String::new()),
            Refusal::SignaturesMissing(String::new()),
            Refusal::CheckRequired(String::new()),
            Refusal::PolicyNotYourPart(String::new(), String::new()),
            Refusal::SubjectReportMoved,
            Refusal::BsnInUrl,
            Refusal::ReviewRequired(String::new(), 0, 0),
            Refusal::DraftUnchanged,
            Refusal::ActivationConflict,
            Refusal::ActivationFailed(String::new()),
            Refusal::NotToml,
            Refusal::LogUnwitnessed(0, 0, 0),
            Refusal::ApproachUnknown(String::new()),
            Refusal::ApproachNotYours(String::new(), String::new()),
            Refusal::Internal,
        ]
    }

    /// A distinct number per kind; exhaustive, so that a new kind cannot be left out of
    /// [`Refusal::examples`] unnoticed (a test checks that every number is there).
    pub fn kind_index(&self) -> usize {
        match self {
            Refusal::TokenMissing => 0,
            Refusal::TokenMalformed => 1,
            Refusal::TokenAlgorithmRefused(..) => 2,
            Refusal::TokenInvalid => 3,
            Refusal::TokenIssuerMismatch => 4,
            Refusal::TokenAudience => 5,
            Refusal::TokenExpired => 6,
            Refusal::TokenNotYetValid => 7,
            Refusal::TokenLifetimeTooLong(..) => 8,
            Refusal::TokenNotBound => 9,
            Refusal::TokenBoundToOtherCertificate => 10,
            Refusal::RoleUnknown(..) => 11,
            Refusal::RoleNotHeld(..) => 12,
            Refusal::CasePermission(..) => 13,
            Refusal::TransitionForbidden(..) => 14,
            Refusal::StatischRequiresRole(..) => 15,
            Refusal::TransitionNotAllowed(..) => 16,
            Refusal::RegisseurRequired => 17,
            Refusal::InvalidRegisseur(..) => 18,
            Refusal::UnknownPartner(..) => 19,
            Refusal::CaseNotFound => 20,
            Refusal::CaseConflict => 21,
            Refusal::InvalidBsn(..) => 22,
            Refusal::InvalidBody(..) => 23,
            Refusal::JsonTooDeep(..) => 24,
            Refusal::BodyTooLarge(..) => 25,
            Refusal::UnsupportedMediaType => 26,
            Refusal::EmptyPatch => 27,
            Refusal::NotFound => 28,
            Refusal::MethodNotAllowed => 29,
            Refusal::StorageUnavailable => 30,
            Refusal::PurposeUnknown(..) => 31,
            Refusal::ViewUnknown(..) => 32,
            Refusal::PurposeNotForChecks(..) => 33,
            Refusal::PurposeAggregateOnly(..) => 34,
            Refusal::PurposeRole(..) => 35,
            Refusal::PurposeCaseStatus(..) => 36,
            Refusal::PurposeRelation(..) => 37,
            Refusal::SubjectCaseMismatch => 38,
            Refusal::SubjectNotFound => 39,
            Refusal::ProductUnknown(..) => 40,
            Refusal::ProductNotOwned(..) => 41,
            Refusal::DepositRole(..) => 42,
            Refusal::ProductUpstream(..) => 43,
            Refusal::InvalidRecord(..) => 44,
            Refusal::RateLimited(..) => 45,
            Refusal::Overloaded => 46,
            Refusal::RequestTimeout(..) => 47,
            Refusal::DisclosureLogUnavailable => 48,
            Refusal::CertificateRevoked => 49,
            Refusal::CertificateUnknown => 50,
            Refusal::NotAdministrator(..) => 51,
            Refusal::CovenantInvalid(..) => 52,
            Refusal::DraftNotFound => 53,
            Refusal::VersionNotFound => 54,
            Refusal::ApprovalByAuthor => 55,
            Refusal::ApprovalSamePartner => 56,
            Refusal::DraftState(..) => 57,
            Refusal::DraftStale(..) => 58,
            Refusal::DraftUnchanged => 59,
            Refusal::ActivationConflict => 60,
            Refusal::ActivationFailed(..) => 61,
            Refusal::NotToml => 62,
            Refusal::Internal => 63,
            Refusal::TokenKeyUnknown => 64,
            Refusal::TokenTooLarge(..) => 65,
            Refusal::TokenClaim(..) => 66,
            Refusal::InvalidIdentifier(..) => 67,
            Refusal::HeadersTooLarge(..) => 68,
            Refusal::BodyTimeout(..) => 69,
            Refusal::TooManyConnections(..) => 70,
            Refusal::LogUnwitnessed(..) => 71,
            Refusal::ApproachUnknown(..) => 72,
            Refusal::ApproachNotYours(..) => 73,
            Refusal::AppointmentForbidden(..) => 74,
            Refusal::AppointmentStatus(..) => 75,
            Refusal::SelfAppointment => 76,
            Refusal::CaseOpen(..) => 77,
            Refusal::DecisionRequired(..) => 78,
            Refusal::DecisionMembers(..) => 79,
            Refusal::CovenantMismatch => 80,
            Refusal::ApprovalStale(..) => 81,
            Refusal::SignatureInvalid(..) => 82,
            Refusal::SignaturesMissing(..) => 83,
            Refusal::CheckRequired(..) => 84,
            Refusal::PolicyNotYourPart(..) => 85,
            Refusal::ReviewRequired(..) => 86,
            Refusal::SubjectReportMoved => 87,
            Refusal::BsnInUrl => 88,
        }
    }
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
        let mut slugs: Vec<String> = Refusal::examples().iter().map(Refusal::slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), n - 1);
    }
}
