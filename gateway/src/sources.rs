//! Where a product's records come from: deposits sealed in the gateway's store, or the owner's
//! own HTTPS endpoint (an upstream source, called with the gateway's client certificate).

use policy::ProductRef;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest answer the gateway reads from an upstream source.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// A product's records, opened (shared with the cache of opened deposits).
pub type OpenedRecords = Arc<Vec<Map<String, Value>>>;

/// Body of `PUT /v1/records/…` and of upstream answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsBody {
    /// The records, each an object of catalogue fields.
    pub records: Vec<Map<String, Value>>,
}

/// Records fetched from an upstream source, with the digest of the bytes they came in.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The records.
    pub records: OpenedRecords,
    /// SHA-256 of the answer's bytes.
    pub sha256: [u8; 32],
}

/// Products served by their owner's own HTTPS endpoint.
pub struct Upstream {
    client: Option<reqwest::Client>,
    sources: HashMap<ProductRef, (String, Duration)>,
    approaches: HashMap<String, ApproachEndpoint>,
}

/// Where another approach's register answers the oblivious aanpak-check (issue 38), and the keys
/// the gateway pins for it.
pub struct ApproachEndpoint {
    /// Its base URL: `GET {url}/set`, `POST {url}/evaluate`.
    pub url: String,
    /// Its POPRF public key.
    pub public: [u8; crate::oprf::ELEMENT_LEN],
    /// The key its published sets are signed with.
    pub set_verifier: crate::log::checkpoint::NoteVerifier,
    /// How long it may take.
    pub timeout: Duration,
    /// Its last verified set and when it was fetched.
    set: arc_swap::ArcSwapOption<(crate::oprf::PublishedSet, i64)>,
}

impl ApproachEndpoint {
    /// An endpoint with nothing fetched yet.
    pub fn new(
        url: String,
        public: [u8; crate::oprf::ELEMENT_LEN],
        set_verifier: crate::log::checkpoint::NoteVerifier,
        timeout: Duration,
    ) -> Self {
        ApproachEndpoint {
            url,
            public,
            set_verifier,
            timeout,
            set: arc_swap::ArcSwapOption::empty(),
        }
    }
}

impl std::fmt::Debug for ApproachEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApproachEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What another approach answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproachAnswer {
    /// The person is in its set of this epoch.
    Known(crate::oprf::Epoch),
    /// The person is not.
    NotKnown(crate::oprf::Epoch),
    /// No answer that counts, and why (never taken for "not known").
    Unavailable(crate::log::entry::Unavailable),
}

/// Largest evaluation answer read from a register: two hex values.
const MAX_APPROACH_BYTES: usize = 4096;
/// Largest published set read from a register (a set of 65,536 is about 4.3 MB).
const MAX_SET_BYTES: usize = 8 * 1024 * 1024;
/// Most members a published set may have.
const MAX_SET_MEMBERS: usize = 1 << 17;
/// A fetched set is used this long before it is fetched again (while it has not expired).
const SET_REFRESH_SECS: i64 = 300;

impl Upstream {
    /// No upstream sources.
    pub fn none() -> Self {
        Upstream {
            client: None,
            sources: HashMap::new(),
            approaches: HashMap::new(),
        }
    }

    /// Sources with the HTTPS client that calls them (the gateway's own client certificate).
    pub fn new(client: reqwest::Client, sources: HashMap<ProductRef, (String, Duration)>) -> Self {
        Upstream {
            client: Some(client),
            sources,
            approaches: HashMap::new(),
        }
    }

    /// The same, asking these approaches' registers too.
    pub fn with_approaches(mut self, approaches: HashMap<String, ApproachEndpoint>) -> Self {
        self.approaches = approaches;
        self
    }

    /// Asks approach `id` whether it knows the person, obliviously: its register sees one
    /// blinded element (a fresh random group element each time), never a BSN or anything
    /// computed from one alone; the gateway unblinds the proven evaluation and looks it up in
    /// the register's signed set. `now` is the clock's reading.
    pub async fn ask_approach(
        &self,
        id: &str,
        bsn: &policy::Bsn,
        trace: &crate::trace::Propagation,
        now: i64,
    ) -> ApproachAnswer {
        use crate::log::entry::Unavailable as U;
        let (Some(ep), Some(client)) = (self.approaches.get(id), self.client.as_ref()) else {
            return ApproachAnswer::Unavailable(U::NotConfigured);
        };
        let m = crate::metrics::metrics();
        let label = format!("approach:{id}");
        let started = std::time::Instant::now();
        let r = match tokio::time::timeout(ep.timeout, ask(client, id, ep, bsn, trace, now)).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(approach = id, "approach register timed out");
                ApproachAnswer::Unavailable(U::Timeout)
            }
        };
        if let ApproachAnswer::Unavailable(why) = r {
            let kind = match why {
                U::Timeout => "timeout",
                U::Down | U::OverQuota | U::NotConfigured => "unavailable",
                U::SetUnsigned | U::SetStale | U::SetInvalid | U::BadProof | U::Invalid => {
                    "invalid"
                }
            };
            m.upstream_errors
                .get_or_create(&crate::metrics::UpstreamErrorLabels {
                    product: label.clone(),
                    kind,
                })
                .inc();
        }
        m.upstream_seconds
            .get_or_create(&crate::metrics::ProductLabel { product: label })
            .observe(started.elapsed().as_secs_f64());
        r
    }

    /// Whether a product is served upstream.
    pub fn serves(&self, p: ProductRef) -> bool {
        self.sources.contains_key(&p)
    }

    /// Fetches one product's records; `None` means unavailable (error, timeout, too large or
    /// not the expected JSON). `product` names it in operational logs.
    pub async fn fetch(
        &self,
        p: ProductRef,
        product: &str,
        subject_ref: &str,
        trace: &crate::trace::Propagation,
    ) -> Option<Fetched> {
        let (url, timeout) = self.sources.get(&p)?;
        let client = self.client.as_ref()?;
        let url = format!("{}/{}", url.trim_end_matches('/'), subject_ref);
        let m = crate::metrics::metrics();
        let failed = |kind: &'static str| {
            m.upstream_errors
                .get_or_create(&crate::metrics::UpstreamErrorLabels {
                    product: product.to_owned(),
                    kind,
                })
                .inc();
        };
        let started = std::time::Instant::now();
        let call = async {
            let mut req = client
                .get(&url)
                .header("fsc-transaction-id", &trace.transaction_id);
            if let Some(tp) = &trace.traceparent {
                let mut span = [0u8; 8];
                let _ = aws_lc_rs::rand::fill(&mut span);
                req = req.header("traceparent", tp.child(span).to_string());
            }
            let Ok(mut resp) = req.send().await else {
                failed("unavailable");
                return None;
            };
            if !resp.status().is_success() {
                failed("unavailable");
                return None;
            }
            // A source is a partner's system, not trusted with our memory: the answer is capped.
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await.ok()? {
                if bytes.len() + chunk.len() > MAX_SOURCE_BYTES {
                    tracing::warn!(product, "upstream answer too large");
                    failed("invalid");
                    return None;
                }
                bytes.extend_from_slice(&chunk);
            }
            let Ok(body) = serde_json::from_slice::<RecordsBody>(&bytes) else {
                failed("invalid");
                return None;
            };
            Some(Fetched {
                records: Arc::new(body.records),
                sha256: Sha256::digest(&bytes).into(),
            })
        };
        let r = match tokio::time::timeout(*timeout, call).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(product, "upstream source timed out");
                failed("timeout");
                None
            }
        };
        m.upstream_seconds
            .get_or_create(&crate::metrics::ProductLabel {
                product: product.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        r
    }
}

/// Reads a capped body, or `None` when it is larger than `max`.
async fn capped(mut resp: reqwest::Response, max: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        if bytes.len() + chunk.len() > max {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    Some(bytes)
}

/// The register's current set: the cached one while it is fresh, else fetched and verified
/// (an unexpired cached set stands in while the register cannot be reached).
async fn current_set(
    client: &reqwest::Client,
    id: &str,
    ep: &ApproachEndpoint,
    now: i64,
) -> Result<Arc<(crate::oprf::PublishedSet, i64)>, crate::log::entry::Unavailable> {
    use crate::log::entry::Unavailable as U;
    use crate::oprf::{PublishedSet, SetError};
    let usable = |s: &PublishedSet| now <= s.expires && s.epoch.answered_at(now);
    let cached = ep.set.load_full();
    if let Some(c) = &cached
        && c.1 + SET_REFRESH_SECS > now
        && usable(&c.0)
    {
        return Ok(c.clone());
    }
    let fetched = async {
        let resp = client
            .get(format!("{}/set", ep.url.trim_end_matches('/')))
            .send()
            .await
            .map_err(|_| U::Down)?;
        if !resp.status().is_success() {
            return Err(U::Down);
        }
        let bytes = capped(resp, MAX_SET_BYTES).await.ok_or(U::SetInvalid)?;
        let note = String::from_utf8(bytes).map_err(|_| U::SetInvalid)?;
        let set = PublishedSet::verify(&note, &ep.set_verifier, id, now, MAX_SET_MEMBERS).map_err(
            |e| match e {
                SetError::Signature => U::SetUnsigned,
                SetError::Stale(_) => U::SetStale,
                SetError::Malformed(_) | SetError::OtherRegister | SetError::Oversized(_) => {
                    U::SetInvalid
                }
            },
        )?;
        if !usable(&set) {
            return Err(U::SetStale);
        }
        Ok(Arc::new((set, now)))
    }
    .await;
    match (fetched, cached) {
        (Ok(s), _) => {
            ep.set.store(Some(s.clone()));
            Ok(s)
        }
        (Err(U::Down), Some(c)) if usable(&c.0) => Ok(c),
        (Err(e), _) => {
            tracing::warn!(approach = id, reason = ?e, "approach register's set not usable");
            Err(e)
        }
    }
}

/// One oblivious check at one register.
async fn ask(
    client: &reqwest::Client,
    id: &str,
    ep: &ApproachEndpoint,
    bsn: &policy::Bsn,
    trace: &crate::trace::Propagation,
    now: i64,
) -> ApproachAnswer {
    use crate::log::entry::Unavailable as U;
    let set = match current_set(client, id, ep, now).await {
        Ok(s) => s,
        Err(e) => return ApproachAnswer::Unavailable(e),
    };
    let epoch = set.0.epoch.clone();
    let input = bsn.expose().as_bytes();
    let Ok(blinded) = crate::oprf::Blinded::new(input, &mut crate::oprf::SystemRng) else {
        return ApproachAnswer::Unavailable(U::Invalid);
    };
    let resp = client
        .post(format!("{}/evaluate", ep.url.trim_end_matches('/')))
        .header("fsc-transaction-id", &trace.transaction_id)
        .json(&serde_json::json!({"epoch": epoch.as_str(), "blinded": hex::encode(blinded.message())}))
        .send()
        .await;
    let Ok(resp) = resp else {
        return ApproachAnswer::Unavailable(U::Down);
    };
    match resp.status().as_u16() {
        200 => {}
        429 => return ApproachAnswer::Unavailable(U::OverQuota),
        _ => return ApproachAnswer::Unavailable(U::Down),
    }
    let Some(answer) = capped(resp, MAX_APPROACH_BYTES)
        .await
        .and_then(|b| serde_json::from_slice::<crate::register::EvaluateAnswer>(&b).ok())
    else {
        return ApproachAnswer::Unavailable(U::Invalid);
    };
    let (Ok(e), Ok(p)) = (hex::decode(&answer.evaluated), hex::decode(&answer.proof)) else {
        return ApproachAnswer::Unavailable(U::Invalid);
    };
    let info = crate::oprf::info(id, &epoch);
    match blinded.finish(input, &e, &p, &ep.public, &info) {
        Ok(m) if set.0.contains(&m) => ApproachAnswer::Known(epoch),
        Ok(_) => ApproachAnswer::NotKnown(epoch),
        Err(crate::oprf::OprfError::Element | crate::oprf::OprfError::ProofFormat) => {
            ApproachAnswer::Unavailable(U::Invalid)
        }
        Err(_) => ApproachAnswer::Unavailable(U::BadProof),
    }
}
