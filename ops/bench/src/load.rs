//! The load generator: N keep-alive HTTP/1.1 connections over mutual TLS, each request with its
//! own token and body, for a fixed time, closed-loop (as fast as answers come) or at a fixed
//! rate (latency counted from the scheduled send time, so a slow server cannot hide its queue).

use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One prepared request.
#[derive(Debug, Clone)]
pub struct Req {
    /// Partner whose certificate the connection presents.
    pub partner: Arc<str>,
    /// `GET` or `POST`.
    pub post: bool,
    /// Path and query.
    pub path: String,
    /// Bearer token (empty: none).
    pub token: Arc<str>,
    /// JSON body.
    pub body: Option<Arc<str>>,
    /// The status that counts as success.
    pub expect: u16,
}

/// Client credentials: the CA and a PKI directory holding `<partner>/client.pem|key`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// The PKI directory.
    pub dir: PathBuf,
}

impl Tls {
    /// A client presenting `partner`'s certificate (HTTP/1.1, one kept-alive connection).
    pub fn client(&self, partner: &str) -> anyhow::Result<reqwest::Client> {
        let mut pem = std::fs::read(self.dir.join(format!("{partner}/client.pem")))?;
        pem.extend(std::fs::read(
            self.dir.join(format!("{partner}/client.key")),
        )?);
        Ok(reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&self.ca)?)?])
            .identity(reqwest::Identity::from_pem(&pem)?)
            .http1_only()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(10))
            .build()?)
    }
}

/// How to load.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Concurrent connections (per partner a connection needs).
    pub connections: usize,
    /// Measured time.
    pub duration: Duration,
    /// Requests per second in all, or as fast as possible.
    pub rate: Option<f64>,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Requests completed in the measured window.
    pub requests: u64,
    /// Of which with an unexpected status.
    pub unexpected: u64,
    /// Of which failed at the transport.
    pub errors: u64,
    /// The window.
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// One unexpected status seen, for the report.
    pub sample_unexpected: Option<String>,
}

impl Outcome {
    /// Completed requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

async fn send(
    clients: &mut HashMap<Arc<str>, reqwest::Client>,
    tls: &Tls,
    base: &str,
    r: &Req,
) -> anyhow::Result<u16> {
    if !clients.contains_key(&r.partner) {
        clients.insert(r.partner.clone(), tls.client(&r.partner)?);
    }
    let c = clients
        .get(&r.partner)
        .ok_or_else(|| anyhow::anyhow!("no client"))?;
    let url = format!("{base}{}", r.path);
    let mut b = if r.post { c.post(url) } else { c.get(url) };
    if !r.token.is_empty() {
        b = b.bearer_auth(&*r.token);
    }
    if let Some(body) = &r.body {
        b = b
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = b.send().await?;
    let status = resp.status().as_u16();
    resp.bytes().await?;
    Ok(status)
}

/// Runs `plan` (cycled, shared by all connections) against `base` (`https://host:port`).
pub async fn run(
    base: &str,
    tls: &Tls,
    plan: Arc<Vec<Req>>,
    s: Settings,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!plan.is_empty(), "empty plan");
    let next = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(s.connections + 1));
    let mut tasks = Vec::new();
    for c in 0..s.connections {
        let (plan, next, barrier, tls, base) = (
            plan.clone(),
            next.clone(),
            barrier.clone(),
            tls.clone(),
            base.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut clients = HashMap::new();
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut n, mut bad, mut errors, mut sample) = (0u64, 0u64, 0u64, None);
            // Warm: open this connection's TLS sessions before the clock starts.
            let partners: std::collections::BTreeSet<Arc<str>> =
                plan.iter().map(|r| r.partner.clone()).collect();
            for p in partners {
                if let Some(r) = plan.iter().find(|r| r.partner == p) {
                    let _ = send(&mut clients, &tls, &base, r).await;
                }
            }
            barrier.wait().await;
            let start = Instant::now();
            let deadline = start + s.duration;
            let interval = s
                .rate
                .map(|rate| Duration::from_secs_f64(s.connections as f64 / rate.max(1e-9)));
            // Each connection's schedule is offset by its share of the interval, so that the
            // requests arrive evenly spread at the rate, not as bursts of one per connection.
            let phase = interval.map_or(Duration::ZERO, |iv| {
                iv.mul_f64(c as f64 / s.connections as f64)
            });
            let mut k = 0u32;
            loop {
                let scheduled = match interval {
                    Some(iv) => {
                        let at = start + phase + iv * k;
                        k += 1;
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                if scheduled >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % plan.len();
                let r = &plan[i];
                match send(&mut clients, &tls, &base, r).await {
                    Ok(status) if status == r.expect => {}
                    Ok(status) => {
                        bad += 1;
                        sample.get_or_insert(format!("{} {} -> {status}", r.partner, r.path));
                    }
                    Err(e) => {
                        errors += 1;
                        sample.get_or_insert(format!("{} {}: {e}", r.partner, r.path));
                    }
                }
                let _ = hist.record(scheduled.elapsed().as_micros().max(1) as u64);
                n += 1;
            }
            anyhow::Ok((n, bad, errors, hist, sample, start.elapsed()))
        }));
    }
    barrier.wait().await;
    let mut out = Outcome {
        requests: 0,
        unexpected: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        sample_unexpected: None,
    };
    for t in tasks {
        let (n, bad, errors, hist, sample, elapsed) = t.await??;
        out.requests += n;
        out.unexpected += bad;
        out.errors += errors;
        out.latency.add(hist)?;
        out.elapsed = out.elapsed.max(elapsed);
        if out.sample_unexpected.is_none() {
            out.sample_unexpected = sample;
        }
    }
    Ok(out)
}

/// Opens `n` connections that each make one request and then stay open, idle, until the
/// returned handle is dropped.
pub async fn idle_connections(
    base: &str,
    tls: &Tls,
    r: &Req,
    n: usize,
) -> anyhow::Result<Vec<reqwest::Client>> {
    let mut out = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(50) {
        let mut batch = Vec::new();
        for _ in 0..50.min(n - chunk * 50) {
            let c = tls.client(&r.partner)?;
            let mut clients = HashMap::from([(r.partner.clone(), c.clone())]);
            let (tls, base, r) = (tls.clone(), base.to_owned(), r.clone());
            batch.push(tokio::spawn(async move {
                send(&mut clients, &tls, &base, &r).await.map(|_| c)
            }));
        }
        for b in batch {
            out.push(b.await??);
        }
    }
    Ok(out)
}

/// The PKI's CA path.
pub fn ca(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}
