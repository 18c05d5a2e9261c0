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
