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

/// Where another approach's register answers the aanpak-check, and the key shared with it.
#[derive(Clone)]
pub struct ApproachEndpoint {
    /// `POST` here.
    pub url: String,
    /// The pseudonym key shared with that approach only.
    pub key: Vec<u8>,
    /// How long it may take.
    pub timeout: Duration,
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
    /// It knows the person; whom to call, if it said.
    Known(Option<String>),
    /// It does not.
    NotKnown,
    /// It did not answer in time or not as agreed (never taken for "not known").
    Unavailable,
}

/// The body an approach answers with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproachBody {
    known: bool,
    #[serde(default)]
    contact: Option<String>,
}

/// Largest answer read from an approach: a yes/no and a contact.
const MAX_APPROACH_BYTES: usize = 4096;

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

    /// The key shared with approach `id`, when one is configured.
    pub fn approach_key(&self, id: &str) -> Option<&[u8]> {
        self.approaches.get(id).map(|e| e.key.as_slice())
    }

    /// The same, asking these approaches' registers too.
    pub fn with_approaches(mut self, approaches: HashMap<String, ApproachEndpoint>) -> Self {
        self.approaches = approaches;
        self
    }

    /// Asks approach `id` whether it knows the person: only the pseudonym under the key shared
    /// with it leaves, in the body (never in the URL).
    pub async fn ask_approach(
        &self,
        id: &str,
        bsn: &policy::Bsn,
        trace: &crate::trace::Propagation,
    ) -> ApproachAnswer {
        let (Some(ep), Some(client)) = (self.approaches.get(id), self.client.as_ref()) else {
            return ApproachAnswer::Unavailable;
        };
        let subject = crate::crypto::approach_pseudonym(&ep.key, bsn);
        let m = crate::metrics::metrics();
        let label = format!("approach:{id}");
        let failed = |kind: &'static str| {
            m.upstream_errors
                .get_or_create(&crate::metrics::UpstreamErrorLabels {
                    product: label.clone(),
                    kind,
                })
                .inc();
        };
        let call = async {
            let Ok(mut resp) = client
                .post(&ep.url)
                .header("fsc-transaction-id", &trace.transaction_id)
                .json(&serde_json::json!({ "subject": subject }))
                .send()
                .await
            else {
                failed("unavailable");
                return ApproachAnswer::Unavailable;
            };
            if !resp.status().is_success() {
                failed("unavailable");
                return ApproachAnswer::Unavailable;
            }
            let mut bytes = Vec::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                if bytes.len() + chunk.len() > MAX_APPROACH_BYTES {
                    failed("invalid");
                    return ApproachAnswer::Unavailable;
                }
                bytes.extend_from_slice(&chunk);
            }
            match serde_json::from_slice::<ApproachBody>(&bytes) {
                Ok(ApproachBody {
                    known: true,
                    contact,
                }) => ApproachAnswer::Known(contact.map(|c| c.chars().take(200).collect())),
                Ok(ApproachBody { known: false, .. }) => ApproachAnswer::NotKnown,
                Err(_) => {
                    failed("invalid");
                    ApproachAnswer::Unavailable
                }
            }
        };
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(ep.timeout, call)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(approach = id, "approach register timed out");
                failed("timeout");
                ApproachAnswer::Unavailable
            });
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
