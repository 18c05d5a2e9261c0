//! The job the gateway exists for: `POST /v1/disclosures` answers a partner with exactly what the
//! covenant allows for the purpose, encrypted to it with age, after the disclosure record is
//! committed. `POST /v1/checks` answers known / not known. `PUT /v1/records/…` is how partners
//! deposit their store-backed records. Every refusal is recorded too.

use crate::auth::Requester;
use crate::lifecycle::ActivePolicy;
use crate::problem::ApiError;
use crate::registry::{ClientIdentity, PeerCert};
use crate::server::{Active, AppState, Authenticated, StrictJson, TransactionId};
use crate::store::{CaseRow, DisclosureRow, RecordsRow, Store};
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use policy::covenant::Covenant;
use policy::{
    ActionKind, Audience, Bsn, CaseStatus, Level, OutcomeClass, ProductRef, PurposeRef, Relation,
    RoleRef, TransformContext,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Routes for records, disclosures and checks.
pub fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/records/{product}/{subject_ref}", put(put_records::<S>))
        .route("/v1/disclosures", post(disclose::<S>))
        .route("/v1/checks", post(check::<S>))
}

// ----- Upstream sources and rate limits ---------------------------------------------------------

/// Largest answer the gateway reads from an upstream source.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// Products served by their owner's own HTTPS endpoint.
pub struct Upstream {
    client: Option<reqwest::Client>,
    sources: HashMap<ProductRef, (String, Duration)>,
}

impl Upstream {
    /// No upstream sources.
    pub fn none() -> Self {
        Upstream {
            client: None,
            sources: HashMap::new(),
        }
    }

    /// Sources with the HTTPS client that calls them (the gateway's own client certificate).
    pub fn new(client: reqwest::Client, sources: HashMap<ProductRef, (String, Duration)>) -> Self {
        Upstream {
            client: Some(client),
            sources,
        }
    }

    /// Whether a product is served upstream.
    pub fn serves(&self, p: ProductRef) -> bool {
        self.sources.contains_key(&p)
    }

    /// Fetches one product's records; `None` means unavailable (error, timeout or invalid answer).
    async fn fetch(&self, p: ProductRef, subject_ref: &str) -> Option<Vec<Map<String, Value>>> {
        let (url, timeout) = self.sources.get(&p)?;
        let client = self.client.as_ref()?;
        let url = format!("{}/{}", url.trim_end_matches('/'), subject_ref);
        let call = async {
            let resp = client.get(&url).send().await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            // A source is a partner's system, not trusted with our memory: the answer is capped.
            let mut resp = resp;
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await.ok()? {
                if bytes.len() + chunk.len() > MAX_SOURCE_BYTES {
                    tracing::warn!(product = p.0, "upstream answer too large");
                    return None;
                }
                bytes.extend_from_slice(&chunk);
            }
            let body: RecordsBody = serde_json::from_slice(&bytes).ok()?;
            Some(body.records)
        };
        match tokio::time::timeout(*timeout, call).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(product = p.0, "upstream source timed out");
                None
            }
        }
    }
}

/// Rate limits per partner and per staff id.
pub struct Limiter {
    partners: governor::DefaultKeyedRateLimiter<String>,
    staff: governor::DefaultKeyedRateLimiter<String>,
}

impl Limiter {
    /// Requests per second per partner and per staff id.
    pub fn new(per_partner: u32, per_staff: u32) -> Self {
        let q = |n: u32| {
            governor::Quota::per_second(
                std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
            )
        };
        Limiter {
            partners: governor::RateLimiter::keyed(q(per_partner)),
            staff: governor::RateLimiter::keyed(q(per_staff)),
        }
    }

    /// Forgets keys whose quota is full again, so memory does not grow with every staff id seen.
    pub fn prune(&self) {
        self.partners.retain_recent();
        self.staff.retain_recent();
    }

    pub(crate) fn check(&self, req: &Requester) -> Result<(), ApiError> {
        use governor::clock::{Clock, DefaultClock};
        let wait = |e: governor::NotUntil<governor::clock::QuantaInstant>| {
            ApiError::RateLimited(
                e.wait_time_from(DefaultClock::default().now())
                    .as_secs()
                    .max(1),
            )
        };
        self.partners.check_key(&req.partner_id).map_err(wait)?;
        self.staff
            .check_key(&format!("{}/{}", req.partner_id, req.staff_id))
            .map_err(wait)?;
        Ok(())
    }
}

// ----- Records ------------------------------------------------------------------------------------

/// Body of `PUT /v1/records/…` and of upstream answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsBody {
    /// The records, each an object of catalogue fields.
    pub records: Vec<Map<String, Value>>,
}

async fn put_records<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(req, active): Authenticated,
    Path((product, subject_ref)): Path<(String, String)>,
    StrictJson(body): StrictJson<RecordsBody>,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    let c = active.covenant.covenant();
    let pref = c
        .product(&product)
        .ok_or_else(|| ApiError::ProductUnknown(product.chars().take(64).collect()))?;
    let owner = c
        .products
        .get(pref.index())
        .map(|p| p.owner)
        .ok_or(ApiError::Internal)?;
    if owner != req.partner {
        return Err(ApiError::ProductNotOwned(product));
    }
    if s.upstream.serves(pref) {
        return Err(ApiError::ProductUpstream(product));
    }
    for rec in &body.records {
        active
            .covenant
            .check_record(pref, rec)
            .map_err(|e| ApiError::InvalidRecord(e.to_string()))?;
    }
    if !state
        .store
        .subject_known(&subject_ref)
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::SubjectNotFound);
    }
    let plain = serde_json::to_vec(&body.records).map_err(|_| ApiError::Internal)?;
    let sealed = s.secrets.seal(&plain).map_err(|_| ApiError::Internal)?;
    let row = RecordsRow {
        product: product.clone(),
        subject_ref: subject_ref.clone(),
        owner: req.partner_id.clone(),
        sealed,
        updated_at: s.clock.now(),
        updated_by: req.staff_id.clone(),
    };
    state
        .store
        .put_records(&row)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(product = %product, records = body.records.len(), "records deposited");
    Ok(Json(
        serde_json::json!({"product": product, "subject_ref": subject_ref, "records": body.records.len()}),
    ))
}

// ----- The disclosure record ------------------------------------------------------------------------

/// What one product contributed to an answer, for the record. Field decisions do not depend on
/// values, so they are the same for every record of the product.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ProductSummary {
    /// `ok`, `no-records`, `unavailable` or `not-permitted`.
    pub status: &'static str,
    /// How many records were sent.
    pub records: usize,
    /// Fields sent as held, with the rule.
    pub disclosed: Vec<(String, String)>,
    /// Fields sent transformed, with the rule.
    pub transformed: Vec<(String, String)>,
    /// Fields replaced by a marker, with the rule.
    pub withheld: Vec<(String, String)>,
    /// Fields left out, with the rule.
    pub omitted: Vec<(String, String)>,
}

/// The canonical record, field names after the Logboek Dataverwerkingen where it has one.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    id: &'a str,
    at: String,
    trace_id: &'a str,
    kind: &'a str,
    partner: &'a str,
    staff_id: Option<&'a str>,
    role: Option<&'a str>,
    processing_activity: Option<&'a str>,
    case_id: Option<&'a str>,
    data_subject: Option<&'a str>,
    products: &'a BTreeMap<String, ProductSummary>,
    policy_version: &'a str,
    ciphertext_sha256: Option<&'a str>,
    outcome: &'a str,
    problem: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_change: Option<&'a Value>,
}

/// A disclosure record being filled in as the request is checked.
pub(crate) struct Draft {
    pub(crate) row: DisclosureRow,
    products: BTreeMap<String, ProductSummary>,
    /// For audit queries: what was searched.
    pub(crate) query: Option<String>,
    /// For policy administration: what was done to which draft or version.
    pub(crate) policy_change: Option<Value>,
}

impl Draft {
    pub(crate) fn new<S>(
        state: &AppState<S>,
        active: &ActivePolicy,
        kind: &str,
        client: &ClientIdentity,
        txn: &TransactionId,
    ) -> Draft {
        let partner = active
            .covenant
            .covenant()
            .partner_at(client.partner)
            .map(|p| p.id.clone())
            .unwrap_or_default();
        Draft::blank(&state.shared, active, kind, partner, txn)
    }

    /// The record of a request whose certificate the active version no longer accepts: the
    /// partner is not known, so the certificate's fingerprint stands in for it.
    pub(crate) fn for_certificate<S>(
        state: &AppState<S>,
        active: &ActivePolicy,
        peer: &PeerCert,
        txn: &TransactionId,
    ) -> Draft {
        let partner = format!("certificate:{}", peer.fingerprint);
        Draft::blank(&state.shared, active, "request", partner, txn)
    }

    /// A record of no request in particular (also for events the gateway itself causes).
    pub(crate) fn blank(
        shared: &crate::server::Shared,
        active: &ActivePolicy,
        kind: &str,
        partner: String,
        txn: &TransactionId,
    ) -> Draft {
        Draft {
            row: DisclosureRow {
                id: format!("disc-{}", uuid::Uuid::new_v4().simple()),
                at: shared.clock.now(),
                transaction_id: txn.0.clone(),
                kind: kind.into(),
                partner,
                staff_id: None,
                role: None,
                purpose: None,
                case_id: None,
                subject_pseudonym: None,
                policy_version: active.version().to_owned(),
                ciphertext_sha256: None,
                outcome: "refused".into(),
                problem: None,
                entry: String::new(),
                leaf_hash: None,
                chain_hash: None,
            },
            products: BTreeMap::new(),
            query: None,
            policy_change: None,
        }
    }

    /// The record with its canonical entry, leaving the draft as it is.
    pub(crate) fn record(&self) -> DisclosureRow {
        let r = &self.row;
        let entry = Entry {
            id: &r.id,
            at: time::OffsetDateTime::from_unix_timestamp(r.at)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default(),
            trace_id: &r.transaction_id,
            kind: &r.kind,
            partner: &r.partner,
            staff_id: r.staff_id.as_deref(),
            role: r.role.as_deref(),
            processing_activity: r.purpose.as_deref(),
            case_id: r.case_id.as_deref(),
            data_subject: r.subject_pseudonym.as_deref(),
            products: &self.products,
            policy_version: &r.policy_version,
            ciphertext_sha256: r.ciphertext_sha256.as_deref(),
            outcome: &r.outcome,
            problem: r.problem.as_deref(),
            query: self.query.as_deref(),
            policy_change: self.policy_change.as_ref(),
        };
        let mut row = self.row.clone();
        row.entry = serde_json::to_string(&entry).unwrap_or_default();
        row
    }
}

/// Records a refusal (best effort: the refusal stands even if it cannot be recorded) and returns
/// the problem.
pub(crate) async fn refuse<S: Store>(
    state: &AppState<S>,
    mut draft: Draft,
    e: ApiError,
) -> Response {
    draft.row.outcome = "refused".into();
    draft.row.problem = Some(e.slug());
    let row = draft.record();
    if let Err(err) = state.shared.log.append(row).await {
        tracing::error!(error = %err, problem = %e.slug(), "could not record a refusal");
    }
    e.into_response()
}

// ----- Purpose binding ------------------------------------------------------------------------------

/// The requester's role for a purpose, checked against the case: status and relation.
fn bind_purpose(
    c: &Covenant,
    req: &Requester,
    purpose_id: &str,
    case: Option<&CaseRow>,
) -> Result<(PurposeRef, RoleRef), ApiError> {
    let pref = c
        .purpose(purpose_id)
        .ok_or_else(|| ApiError::PurposeUnknown(purpose_id.chars().take(64).collect()))?;
    let purpose = c.purposes.get(pref.index()).ok_or(ApiError::Internal)?;
    if purpose.level == Level::Aggregate {
        return Err(ApiError::PurposeAggregateOnly(purpose.id.clone()));
    }
    let role = req
        .roles
        .iter()
        .copied()
        .find(|r| purpose.roles.get(r.index()).copied().unwrap_or(false))
        .ok_or_else(|| {
            let open: Vec<&str> = c
                .roles
                .iter()
                .zip(&purpose.roles)
                .filter(|(_, ok)| **ok)
                .map(|(r, _)| r.id.as_str())
                .collect();
            ApiError::PurposeRole(purpose.id.clone(), open.join(", "))
        })?;
    let Some(case) = case else {
        return Ok((pref, role));
    };
    let status: CaseStatus = case.status.parse().map_err(|()| ApiError::Internal)?;
    if !purpose.case_status.contains(&status) {
        return Err(ApiError::PurposeCaseStatus(
            purpose.id.clone(),
            status.to_string(),
        ));
    }
    let related = match purpose.relation {
        Relation::None => true,
        Relation::IsRegisseur => {
            case.regisseur_partner.as_deref() == Some(&req.partner_id)
                && case.regisseur_staff.as_deref() == Some(&req.staff_id)
        }
        Relation::OnCase => {
            let uvo: Vec<String> = serde_json::from_str(&case.uvo_partners).unwrap_or_default();
            uvo.contains(&req.partner_id)
                || case.regisseur_partner.as_deref() == Some(&req.partner_id)
        }
        Relation::Voorportaal => c
            .roles
            .get(role.index())
            .is_some_and(|r| r.id == "voorportaal"),
    };
    if !related {
        let what = match purpose.relation {
            Relation::IsRegisseur => "you are this case's own regisseur",
            Relation::OnCase => "your organisation is on this case's UVO",
            Relation::Voorportaal => "you work in the voorportaal",
            Relation::None => "nothing",
        };
        return Err(ApiError::PurposeRelation(purpose.id.clone(), what));
    }
    Ok((pref, role))
}

/// Whether the audience may receive anything at all of a product.
fn permitted(cc: &policy::CompiledCovenant, a: Audience, p: ProductRef) -> bool {
    cc.covenant().product_fields(p).any(|(f, _)| {
        !matches!(
            cc.decide(a.partner, a.role, a.purpose, f).action.kind(),
            ActionKind::Withhold | ActionKind::Omit
        )
    })
}

fn summarise(
    cc: &policy::CompiledCovenant,
    a: Audience,
    p: ProductRef,
    status: &'static str,
    records: usize,
) -> ProductSummary {
    let mut s = ProductSummary {
        status,
        records,
        ..Default::default()
    };
    for (f, field) in cc.covenant().product_fields(p) {
        let d = cc.decide(a.partner, a.role, a.purpose, f);
        let item = (field.name.clone(), d.rule_id.clone());
        match d.class() {
            OutcomeClass::Disclosed => s.disclosed.push(item),
            OutcomeClass::Transformed => s.transformed.push(item),
            OutcomeClass::Withheld => s.withheld.push(item),
            OutcomeClass::Omitted => s.omitted.push(item),
        }
    }
    s
}

// ----- Disclosures ----------------------------------------------------------------------------------

/// The decrypted payload of a disclosure, serialised straight from the decisions.
#[derive(Serialize)]
struct Payload<'a> {
    disclosure_id: &'a str,
    transaction_id: &'a str,
    purpose: &'a str,
    case: &'a str,
    subject_ref: &'a str,
    policy_version: &'a str,
    to: PayloadTo<'a>,
    products: &'a BTreeMap<&'a str, ProductAnswer<'a>>,
}

#[derive(Serialize)]
struct PayloadTo<'a> {
    partner: &'a str,
    staff_id: &'a str,
    role: Option<&'a str>,
}

/// One product in a payload: its records as sent, or why there are none.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
enum ProductAnswer<'a> {
    Ok {
        records: Vec<policy::AppliedRecord<'a>>,
    },
    NoRecords {
        records: [(); 0],
    },
    Unavailable,
    NotPermitted,
}

/// A product's records, opened (shared with the cache of opened deposits).
pub type OpenedRecords = std::sync::Arc<Vec<Map<String, Value>>>;

/// `POST /v1/disclosures` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureRequest {
    /// `{"bsn": "…"}` or `{"ref": "…"}`.
    pub subject: SubjectSelector,
    /// Purpose id.
    pub purpose: String,
    /// Case id.
    pub case: String,
    /// Products wanted (default: every product the purpose permits).
    #[serde(default)]
    pub products: Option<Vec<String>>,
}

/// The subject of a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SubjectSelector {
    /// By BSN (11-proef checked).
    Bsn(String),
    /// By the case's subject reference.
    Ref(String),
}

/// The answer to a disclosure.
#[derive(Debug, Serialize)]
pub struct DisclosureAnswer {
    /// Disclosure id.
    pub disclosure_id: String,
    /// Sequence number of its record in the disclosure log.
    pub audit_seq: i64,
    /// Merkle leaf hash of that record (hex), for `GET /v1/audit/proof/{seq}`.
    pub audit_leaf_hash: String,
    /// Covenant version that decided it.
    pub policy_version: String,
    /// The age recipient the payload is encrypted to.
    pub recipient: String,
    /// ASCII-armored age file; decrypted, JSON.
    pub payload: String,
}

pub(crate) fn parse_bsn(s: &str) -> Result<Bsn, ApiError> {
    Bsn::parse(s.trim()).map_err(|e| {
        ApiError::InvalidBsn(match e {
            policy::BsnError::Format => "A BSN has exactly nine digits; check the number",
            policy::BsnError::Checksum => "The BSN fails the 11-proef; check for a typing error",
        })
    })
}

async fn disclose<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    body: Result<StrictJson<DisclosureRequest>, ApiError>,
) -> Response {
    let mut draft = Draft::new(&state, &active, "disclosure", &client, &txn);
    match run_disclosure(&state, auth, body, &mut draft).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => refuse(&state, draft, e).await,
    }
}

async fn run_disclosure<S: Store>(
    state: &AppState<S>,
    auth: Result<Authenticated, ApiError>,
    body: Result<StrictJson<DisclosureRequest>, ApiError>,
    draft: &mut Draft,
) -> Result<DisclosureAnswer, ApiError> {
    let Authenticated(req, active) = auth?;
    draft.row.staff_id = Some(req.staff_id.clone());
    let StrictJson(body) = body?;
    let s = &state.shared;
    let cc = &active.covenant;
    let c = cc.covenant();
    draft.row.purpose = Some(body.purpose.chars().take(64).collect());
    draft.row.case_id = Some(body.case.chars().take(80).collect());
    s.limiter.check(&req)?;
    // Role and purpose first: they need no data.
    let (purpose, role) = bind_purpose(c, &req, &body.purpose, None)?;
    draft.row.role = c.roles.get(role.index()).map(|r| r.id.clone());
    // The case and its subject's deposits in one query; the deposits stay sealed unless the
    // checks below pass.
    let (case, stored) = state
        .store
        .case_with_records(&body.case)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::CaseNotFound)?;
    draft.row.subject_pseudonym = Some(case.subject_pseudonym.clone());
    match &body.subject {
        SubjectSelector::Bsn(b) => {
            if s.secrets.subject_pseudonym(&parse_bsn(b)?) != case.subject_pseudonym {
                return Err(ApiError::SubjectCaseMismatch);
            }
        }
        SubjectSelector::Ref(r) if *r != case.subject_ref => {
            return Err(ApiError::SubjectCaseMismatch);
        }
        SubjectSelector::Ref(_) => {}
    }
    // Then the case: its status and the requester's relation to it.
    bind_purpose(c, &req, &body.purpose, Some(&case))?;
    let audience = Audience {
        partner: req.partner,
        role,
        purpose,
    };

    // Whether the audience may receive anything of each product: decided once per request.
    let allowed: Vec<bool> = (0..c.products.len())
        .map(|i| permitted(cc, audience, ProductRef(i as u16)))
        .collect();
    let allowed_p = |p: &ProductRef| allowed.get(p.index()).copied().unwrap_or(false);

    // Which products: the ones asked for, or every product the purpose permits.
    let products: Vec<ProductRef> = match &body.products {
        Some(list) => list
            .iter()
            .map(|p| {
                c.product(p)
                    .ok_or_else(|| ApiError::ProductUnknown(p.chars().take(64).collect()))
            })
            .collect::<Result<_, _>>()?,
        None => (0..c.products.len())
            .map(|i| ProductRef(i as u16))
            .filter(allowed_p)
            .collect(),
    };

    // Fan out: one query for every stored product, the upstream sources concurrently.
    let wanted_upstream: Vec<ProductRef> = products
        .iter()
        .copied()
        .filter(|p| s.upstream.serves(*p) && allowed_p(p))
        .collect();
    let upstream = futures::future::join_all(
        wanted_upstream
            .iter()
            .map(|p| s.upstream.fetch(*p, &case.subject_ref)),
    );
    let fetched = upstream.await;
    let mut sources: HashMap<ProductRef, Option<OpenedRecords>> = HashMap::new();
    for (p, r) in wanted_upstream.iter().zip(fetched) {
        sources.insert(*p, r.map(std::sync::Arc::new));
    }
    // Only the products that will be answered are opened; each sealed value once (the cache is
    // keyed by the ciphertext's digest, so a new deposit is never answered from an old one).
    for row in stored {
        if let Some(p) = c
            .product(&row.product)
            .filter(|p| products.contains(p) && allowed_p(p))
        {
            let key: [u8; 32] = Sha256::digest(&row.sealed).into();
            let records = match s.opened.get(&key) {
                Some(r) => Some(r),
                None => s
                    .secrets
                    .open(&row.sealed)
                    .ok()
                    .and_then(|plain| {
                        serde_json::from_slice::<Vec<Map<String, Value>>>(&plain).ok()
                    })
                    .map(|r| {
                        let r = std::sync::Arc::new(r);
                        s.opened.insert(key, r.clone());
                        r
                    }),
            };
            sources.insert(p, records);
        }
    }

    // Decide and transform, product by product. A product with any bad record is unavailable
    // as a whole: never a partial leak.
    let cx = TransformContext {
        today: s.clock.today(),
        pseudonym_key: &active
            .registry
            .partner(req.partner)
            .ok_or(ApiError::Internal)?
            .pseudonym_key,
    };
    let mut out: BTreeMap<&str, ProductAnswer<'_>> = BTreeMap::new();
    let mut unavailable = false;
    for p in &products {
        let Some(product) = c.products.get(p.index()) else {
            return Err(ApiError::Internal);
        };
        let pid = product.id.as_str();
        if !allowed_p(p) {
            out.insert(pid, ProductAnswer::NotPermitted);
            draft.products.insert(
                pid.to_owned(),
                summarise(cc, audience, *p, "not-permitted", 0),
            );
            continue;
        }
        let answer = match sources.get(p) {
            None if !s.upstream.serves(*p) => ProductAnswer::NoRecords { records: [] },
            None | Some(None) => ProductAnswer::Unavailable,
            Some(Some(records)) => {
                // Records are serialised straight from the decisions, without an intermediate
                // JSON tree.
                let applied: Result<Vec<_>, _> = records
                    .iter()
                    .map(|r| cc.apply_record(audience, *p, r, &cx))
                    .collect();
                match applied {
                    Ok(records) => ProductAnswer::Ok { records },
                    Err(e) => {
                        tracing::warn!(product = %pid, error = %e, "source data does not fit the catalogue");
                        ProductAnswer::Unavailable
                    }
                }
            }
        };
        let (status, n) = match &answer {
            ProductAnswer::Ok { records } => ("ok", records.len()),
            ProductAnswer::NoRecords { .. } => ("no-records", 0),
            ProductAnswer::Unavailable => ("unavailable", 0),
            ProductAnswer::NotPermitted => ("not-permitted", 0),
        };
        unavailable |= status == "unavailable";
        out.insert(pid, answer);
        draft
            .products
            .insert(pid.to_owned(), summarise(cc, audience, *p, status, n));
    }

    let partner_keys = active
        .registry
        .partner(req.partner)
        .ok_or(ApiError::Internal)?;
    let payload = Payload {
        disclosure_id: &draft.row.id,
        transaction_id: &draft.row.transaction_id,
        purpose: &body.purpose,
        case: &case.id,
        subject_ref: &case.subject_ref,
        policy_version: cc.version().as_str(),
        to: PayloadTo {
            partner: &req.partner_id,
            staff_id: &req.staff_id,
            role: draft.row.role.as_deref(),
        },
        products: &out,
    };
    let plain = serde_json::to_vec(&payload).map_err(|_| ApiError::Internal)?;
    let armored =
        age::encrypt_and_armor(&partner_keys.recipient, &plain).map_err(|_| ApiError::Internal)?;
    draft.row.ciphertext_sha256 = Some(hex::encode(Sha256::digest(armored.as_bytes())));
    draft.row.outcome = if unavailable {
        "partly-unavailable"
    } else {
        "answered"
    }
    .into();

    // Fail closed: the record is committed before the answer leaves, or nothing leaves.
    let appended = match state.shared.log.append(draft.record()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "disclosure record could not be written; nothing disclosed");
            return Err(ApiError::DisclosureLogUnavailable);
        }
    };
    let row = &draft.row;
    tracing::info!(disclosure = %row.id, seq = appended.seq, outcome = %row.outcome, products = draft.products.len(), "disclosed");
    Ok(DisclosureAnswer {
        disclosure_id: row.id.clone(),
        audit_seq: appended.seq,
        audit_leaf_hash: appended.leaf_hash,
        policy_version: row.policy_version.clone(),
        recipient: partner_keys.recipient.to_string(),
        payload: armored,
    })
}

// ----- Checks ---------------------------------------------------------------------------------------

/// The purpose under which `/v1/checks` answers known / not known.
pub const CHECK_PURPOSE: &str = "aanpak-check";

/// `POST /v1/checks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// `{"bsn": "…"}`.
    pub subject: SubjectSelector,
    /// Must be a purpose open to the requester (the example: `aanpak-check`).
    pub purpose: String,
}

/// The answer to a check: no content.
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    /// Is the person in an approach?
    pub known: bool,
    /// Which approaches.
    pub approaches: Vec<String>,
    /// Which partner to call (the regisseur's, else the programme team).
    pub contact_partner: Option<String>,
    /// Sequence number of the check's record in the disclosure log.
    pub audit_seq: i64,
}

async fn check<S: Store>(
    State(state): State<AppState<S>>,
    Extension(client): Extension<ClientIdentity>,
    Extension(Active(active)): Extension<Active>,
    Extension(txn): Extension<TransactionId>,
    auth: Result<Authenticated, ApiError>,
    body: Result<StrictJson<CheckRequest>, ApiError>,
) -> Response {
    let mut draft = Draft::new(&state, &active, "check", &client, &txn);
    match run_check(&state, auth, body, &mut draft).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => refuse(&state, draft, e).await,
    }
}

async fn run_check<S: Store>(
    state: &AppState<S>,
    auth: Result<Authenticated, ApiError>,
    body: Result<StrictJson<CheckRequest>, ApiError>,
    draft: &mut Draft,
) -> Result<CheckAnswer, ApiError> {
    let Authenticated(req, active) = auth?;
    draft.row.staff_id = Some(req.staff_id.clone());
    let StrictJson(body) = body?;
    let s = &state.shared;
    let c = active.covenant.covenant();
    draft.row.purpose = Some(body.purpose.chars().take(64).collect());
    s.limiter.check(&req)?;
    // Only the aanpak-check answers without a case: any other purpose would turn a check into a
    // probe of who is in the approach.
    if body.purpose != CHECK_PURPOSE {
        return Err(ApiError::PurposeNotForChecks(
            body.purpose.chars().take(64).collect(),
        ));
    }
    let (_, role) = bind_purpose(c, &req, &body.purpose, None)?;
    draft.row.role = c.roles.get(role.index()).map(|r| r.id.clone());
    let SubjectSelector::Bsn(bsn) = &body.subject else {
        return Err(ApiError::InvalidBody(
            "a check names the subject by `bsn`".into(),
        ));
    };
    let pseudonym = s.secrets.subject_pseudonym(&parse_bsn(bsn)?);
    draft.row.subject_pseudonym = Some(pseudonym.clone());
    let cases = state
        .store
        .subject_cases(&pseudonym)
        .await
        .map_err(ApiError::from)?;
    let active = cases
        .iter()
        .rev()
        .find(|k| !matches!(k.status.as_str(), "afgesloten" | "niet-opgenomen"));
    let answer = CheckAnswer {
        known: active.is_some(),
        approaches: if active.is_some() {
            vec!["iPGA-R".to_owned()]
        } else {
            vec![]
        },
        contact_partner: active
            .map(|k| k.regisseur_partner.clone().unwrap_or_else(|| "oov".into())),
        audit_seq: 0,
    };
    draft.row.case_id = active.map(|k| k.id.clone());
    draft.row.outcome = "answered".into();
    let row = draft.record();
    let seq = state
        .shared
        .log
        .append(row)
        .await
        .map(|a| a.seq)
        .map_err(|e| {
            tracing::error!(error = %e, "check record could not be written; nothing answered");
            ApiError::DisclosureLogUnavailable
        })?;
    Ok(CheckAnswer {
        audit_seq: seq,
        ..answer
    })
}
