//! Prometheus metrics (OpenMetrics text at `/metrics` on the loopback health listener). One
//! process-wide set, like the process it describes. Labels are routes, outcomes, problem types,
//! products, partner organisations and reasons: never a BSN, a name, a staff id or a value.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{LazyLock, Mutex};

/// A request's route (the matched template, never the path), outcome and problem type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// e.g. `/v1/cases/{id}`, or `unmatched`.
    pub route: String,
    /// `answered` or `refused`.
    pub outcome: &'static str,
    /// The problem type, `none` for an answer.
    pub problem: String,
}

/// A route alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The matched template.
    pub route: String,
}

/// Why something failed or was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A fixed word, e.g. `timeout`.
    pub reason: &'static str,
}

/// An upstream source, by the product it serves.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProductLabel {
    /// The catalogue's product id.
    pub product: String,
}

/// An upstream failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// The catalogue's product id.
    pub product: String,
    /// `timeout`, `unavailable` or `invalid`.
    pub kind: &'static str,
}

/// The active covenant version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// Its hash.
    pub version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, outcome and problem type.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route.
    pub request_seconds: HistogramFamily<RouteLabel>,
    /// TLS handshakes that failed, by reason (`refused`, `timeout`).
    pub handshake_failures: Family<ReasonLabel, Counter>,
    /// Connections closed by a bound, by reason (`connections`, `per-partner`).
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// Connections open now.
    pub connections_active: Gauge,
    /// Log entries waiting for the writer.
    pub log_queue: Gauge,
    /// Entries per committed batch.
    pub log_batch_size: Histogram,
    /// Time a batch's transaction takes.
    pub log_commit_seconds: Histogram,
    /// Batches that failed (nothing of them written).
    pub log_commit_failures: Counter,
    /// Entries appended.
    pub log_appended: Counter,
    /// Size of the latest signed checkpoint.
    pub checkpoint_size: Gauge,
    /// Unix time of the latest signed checkpoint.
    pub checkpoint_timestamp: Gauge,
    /// Witnesses that cosigned the latest checkpoint.
    pub witnesses_cosigned: Gauge,
    /// 1 while the log is blind (fewer than the quorum cosigned within the bound).
    pub log_blind: Gauge,
    /// Unix time of the earliest `nextUpdate` of the loaded CRLs.
    pub crl_next_update: Gauge,
    /// Unix time of the latest `thisUpdate` of the loaded CRLs.
    pub crl_this_update: Gauge,
    /// Upstream source latency by product.
    pub upstream_seconds: HistogramFamily<ProductLabel>,
    /// Upstream failures by product and kind.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Requests refused by a rate limit, by scope (`partner`, `staff`).
    pub rate_limited: Family<ReasonLabel, Counter>,
    /// Token verifications answered from the cache.
    pub token_cache_hits: Counter,
    /// Token verifications done in full.
    pub token_cache_misses: Counter,
    /// 1 for the active covenant version.
    pub policy_version: Family<VersionLabel, Gauge>,
    /// 1 while the database's active covenant version is not the one the log activated.
    pub policy_mismatch: Gauge,
    /// Included cases whose person has not been notified within the covenant's period.
    pub case_notifications_overdue: Gauge,
    /// 1 while the log writer can write; 0 from a failed batch until it has written again.
    pub log_writer_available: Gauge,
    /// Times the log writer went down.
    pub log_outages: Counter,
    /// Refusals that could not be written one by one (counted in the next `log-outage` entry).
    pub log_refusals_unrecorded: Counter,
    /// Times the case register in memory was brought up to date from the database, by how
    /// (`followed`: only what another instance's entries changed; `whole`: read again whole).
    pub register_reads: Family<ReasonLabel, Counter>,
    active_version: Mutex<Option<String>>,
}

/// Milliseconds since the process started (at least 1, so that 0 can mean "never").
pub fn uptime_ms() -> u64 {
    static START: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    u64::try_from(START.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("gateway"),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency as fn() -> Histogram),
            handshake_failures: Family::default(),
            connections_refused: Family::default(),
            connections_active: Gauge::default(),
            log_queue: Gauge::default(),
            log_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            log_commit_seconds: latency(),
            log_commit_failures: Counter::default(),
            log_appended: Counter::default(),
            checkpoint_size: Gauge::default(),
            checkpoint_timestamp: Gauge::default(),
            witnesses_cosigned: Gauge::default(),
            log_blind: Gauge::default(),
            crl_next_update: Gauge::default(),
            crl_this_update: Gauge::default(),
            upstream_seconds: Family::new_with_constructor(latency as fn() -> Histogram),
            upstream_errors: Family::default(),
            rate_limited: Family::default(),
            token_cache_hits: Counter::default(),
            token_cache_misses: Counter::default(),
            policy_version: Family::default(),
            policy_mismatch: Gauge::default(),
            case_notifications_overdue: Gauge::default(),
            log_writer_available: Gauge::default(),
            log_outages: Counter::default(),
            log_refusals_unrecorded: Counter::default(),
            register_reads: Family::default(),
            active_version: Mutex::new(None),
        };
        let r = &mut m.registry;
        r.register(
            "requests",
            "Requests by route, outcome and problem type",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Request latency by route",
            m.request_seconds.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, by reason",
            m.handshake_failures.clone(),
        );
        r.register(
            "connections_refused",
            "Connections closed by a bound, by reason",
            m.connections_refused.clone(),
        );
        r.register(
            "connections_active",
            "Connections open now",
            m.connections_active.clone(),
        );
        r.register(
            "log_queue_depth",
            "Log entries waiting for the writer",
            m.log_queue.clone(),
        );
        r.register(
            "log_batch_entries",
            "Entries per committed log batch",
            m.log_batch_size.clone(),
        );
        r.register(
            "log_commit_duration_seconds",
            "Time a log batch's transaction takes",
            m.log_commit_seconds.clone(),
        );
        r.register(
            "log_commit_failures",
            "Log batches that failed; nothing of them was written",
            m.log_commit_failures.clone(),
        );
        r.register(
            "policy_mismatch",
            "1 while the database's active covenant version is not the one the log last activated: nothing is served",
            m.policy_mismatch.clone(),
        );
        r.register(
            "case_notifications_overdue",
            "Included cases without the notification letter's date after the covenant's notification_days",
            m.case_notifications_overdue.clone(),
        );
        r.register(
            "log_writer_available",
            "1 while the log writer can write; 0 from a failed batch until a log-outage entry is written",
            m.log_writer_available.clone(),
        );
        r.register(
            "register_reads",
            "Times the case register in memory was read from the database, by how (followed, whole)",
            m.register_reads.clone(),
        );
        r.register(
            "log_outages",
            "Times the log writer went down (a batch failed)",
            m.log_outages.clone(),
        );
        r.register(
            "log_refusals_unrecorded",
            "Refusals that could not be written one by one; each is counted in the next log-outage entry",
            m.log_refusals_unrecorded.clone(),
        );
        r.register(
            "log_entries_appended",
            "Log entries appended",
            m.log_appended.clone(),
        );
        r.register(
            "log_checkpoint_size",
            "Tree size of the latest signed checkpoint",
            m.checkpoint_size.clone(),
        );
        r.register(
            "log_checkpoint_timestamp_seconds",
            "Unix time of the latest signed checkpoint",
            m.checkpoint_timestamp.clone(),
        );
        r.register(
            "log_witnesses_cosigned",
            "Witnesses that cosigned the latest checkpoint",
            m.witnesses_cosigned.clone(),
        );
        r.register(
            "log_blind",
            "1 while fewer than the covenant's quorum of witnesses cosigned within its bound: disclosures stop",
            m.log_blind.clone(),
        );
        r.register(
            "crl_next_update_timestamp_seconds",
            "Earliest nextUpdate of the loaded CRLs (unix time)",
            m.crl_next_update.clone(),
        );
        r.register(
            "crl_this_update_timestamp_seconds",
            "Latest thisUpdate of the loaded CRLs (unix time)",
            m.crl_this_update.clone(),
        );
        r.register(
            "upstream_duration_seconds",
            "Upstream source latency by product",
            m.upstream_seconds.clone(),
        );
        r.register(
            "upstream_errors",
            "Upstream source failures by product and kind",
            m.upstream_errors.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by a rate limit, by scope",
            m.rate_limited.clone(),
        );
        r.register(
            "token_cache_hits",
            "Token verifications answered from the cache",
            m.token_cache_hits.clone(),
        );
        r.register(
            "token_cache_misses",
            "Token verifications done in full",
            m.token_cache_misses.clone(),
        );
        r.register(
            "policy_version_info",
            "The active covenant version (value 1)",
            m.policy_version.clone(),
        );
        m
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The classic Prometheus text format (0.0.4) of every metric, for scrapers and tools that
    /// do not ask for OpenMetrics (`promtool check metrics`, curl): the same samples, counter
    /// families named with their `_total` suffix, no `# EOF`.
    pub fn encode_prometheus(&self) -> Result<String, std::fmt::Error> {
        Ok(to_prometheus_text(&self.encode()?))
    }

    /// Marks `version` as the active covenant version (and no other).
    pub fn set_policy_version(&self, version: &str) {
        if let Ok(mut active) = self.active_version.lock() {
            if let Some(old) = active.take() {
                self.policy_version.remove(&VersionLabel { version: old });
            }
            self.policy_version
                .get_or_create(&VersionLabel {
                    version: version.to_owned(),
                })
                .set(1);
            *active = Some(version.to_owned());
        }
    }

    /// Counts a finished request.
    pub fn request(&self, route: &str, problem: Option<&str>, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                outcome: if problem.is_some() {
                    "refused"
                } else {
                    "answered"
                },
                problem: problem.unwrap_or("none").to_owned(),
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts a committed log batch.
    pub fn committed(&self, entries: usize, seconds: f64) {
        self.log_batch_size.observe(entries as f64);
        self.log_commit_seconds.observe(seconds);
        self.log_appended.inc_by(entries as u64);
    }

    /// Counts a failed log batch.
    pub fn commit_failed(&self) {
        self.log_commit_failures.inc();
    }
}

/// Rewrites OpenMetrics text as Prometheus text 0.0.4.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &M
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_openmetrics_and_carries_no_path() {
        let m = Metrics::new();
        m.request("/v1/cases/{id}", Some("case-not-found"), 0.002);
        m.request("/v1/cases/{id}", None, 0.001);
        m.set_policy_version("sha256:aa");
        m.set_policy_version("sha256:bb");
        let text = m.encode().unwrap();
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains(
            r#"gateway_requests_total{route="/v1/cases/{id}",outcome="refused",problem="case-not-found"} 1"#
        ));
        assert!(text.contains(r#"gateway_policy_version_info{version="sha256:bb"} 1"#));
        assert!(!text.contains("sha256:aa"), "only the active version");
        let classic = m.encode_prometheus().unwrap();
        assert!(classic.contains("# TYPE gateway_requests_total counter"));
        assert!(classic.contains("# HELP gateway_requests_total Requests"));
        assert!(!classic.contains("# EOF"));
    }
}
