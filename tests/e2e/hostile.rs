//! A hostile partner: connections held open, bodies that never come, lengths that lie, heads
//! and tokens too large, malformed claims. Raw TLS sockets where an HTTP client would hide the
//! behaviour; each bound is crossed and the connection must close within it (plus slack), while
//! another partner is served meanwhile.

use crate::helpers::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous slack on top of a bound: the test checks that the bound holds, not how fast.
const SLACK: Duration = Duration::from_secs(5);

/// A TLS connection with `partner`'s certificate, nothing sent yet.
async fn raw(
    gw: &Gateway,
    partner: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    raw_alpn(gw, partner, b"http/1.1").await
}

/// [`raw`], offering `alpn` (`h2` for HTTP/2).
async fn raw_alpn(
    gw: &Gateway,
    partner: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    gateway::install_crypto_provider();
    let d = pki();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(d.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(d.join(format!("{partner}/client.pem")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(d.join(format!("{partner}/client.key"))).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(&gw.api).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes (or `within` passes); returns what it sent and when it closed.
async fn until_closed<S: AsyncReadExt + Unpin>(
    s: &mut S,
    within: Duration,
) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status and problem type of a raw HTTP/1.1 answer.
fn status_and_type(answer: &str) -> (u16, String) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let ty = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["type"]
                .as_str()
                .map(|t| t.rsplit('/').next().unwrap_or("").to_owned())
        })
        .unwrap_or_default();
    (status, ty)
}

fn bounded_gateway() -> Gateway {
    Gateway::start_with_config(
        |c| {
            format!(
                "{c}\n[limits]\nheader_read_timeout_ms = 1000\nbody_read_timeout_ms = 1000\nrequest_timeout_ms = 3000\nidle_timeout_ms = 8000\nconnections_per_partner = 3\nmax_headers = 40\n"
            )
        },
        &[],
    )
}

async fn others_are_served(gw: &Gateway) {
    let t = token("oov", "fg.1", &["privacy-officer"]);
    let r = client("oov")
        .get(gw.url("/v1/policy"))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another partner is served meanwhile");
}

#[tokio::test]
async fn slow_heads_slow_bodies_and_idle_connections_are_closed_within_their_bounds() {
    let gw = bounded_gateway();
    // Part of a header line, then nothing.
    let mut a = raw(&gw, "om").await;
    a.write_all(b"GET /v1/policy HTTP/1.1\r\nHost: gw\r\nX-Part")
        .await
        .unwrap();
    // Full headers announcing 200 bytes, then 11.
    let mut b = raw(&gw, "politie").await;
    let t_b = token("politie", "vp.2", &["voorportaal"]);
    b.write_all(
        format!("POST /v1/cases HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t_b}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"subject\":")
            .as_bytes(),
    )
    .await
    .unwrap();
    // An HTTP/2 connection that opens no stream: only the idle bound ends it.
    let mut c = raw_alpn(&gw, "rvdk", b"h2").await;
    assert_eq!(c.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    others_are_served(&gw).await;
    let (got_a, closed_a) = until_closed(&mut a, Duration::from_secs(1) + SLACK).await;
    assert!(
        closed_a.is_some(),
        "partial headers: closed by the header read bound ({got_a:?})"
    );
    let (got_b, closed_b) = until_closed(&mut b, Duration::from_secs(1) + SLACK).await;
    assert!(closed_b.is_some(), "partial body: closed by the body bound");
    assert_eq!(
        status_and_type(&got_b),
        (408, "body-timeout".into()),
        "{got_b}"
    );
    assert!(
        got_b
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json")
    );
    let (_, closed_c) = until_closed(&mut c, Duration::from_secs(8) + SLACK).await;
    assert!(closed_c.is_some(), "an unused HTTP/2 connection is closed");
    others_are_served(&gw).await;
    assert!(!gw.log().contains("panicked"));
}

#[tokio::test]
async fn a_huge_announced_length_is_refused_before_the_body_and_large_heads_get_a_problem() {
    let gw = bounded_gateway();
    let t = token("politie", "vp.1", &["voorportaal"]);
    let mut s = raw(&gw, "politie").await;
    s.write_all(
        format!("POST /v1/cases HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (got, closed) = until_closed(&mut s, SLACK).await;
    assert_eq!(
        status_and_type(&got),
        (413, "body-too-large".into()),
        "{got}"
    );
    assert!(
        closed.is_some(),
        "and the connection is closed, its body never read"
    );

    // More header fields than `max_headers` (40 here): a problem, not hyper's bare 431.
    let mut s = raw(&gw, "politie").await;
    let mut head = format!("GET /v1/policy HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\n");
    for i in 0..60 {
        head.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let (got, _) = until_closed(&mut s, SLACK).await;
    assert_eq!(
        status_and_type(&got),
        (431, "headers-too-large".into()),
        "{got}"
    );
    assert!(
        got.to_ascii_lowercase()
            .contains("content-type: application/problem+json")
    );
    // Both refusals are in the log.
    let log = log_problems(&gw).await;
    for p in ["body-too-large", "headers-too-large"] {
        assert!(log.iter().any(|l| l == p), "{p} recorded: {log:?}");
    }
}

/// The problem types of the log's refusals, oldest first.
async fn log_problems(gw: &Gateway) -> Vec<String> {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    sqlx::query_scalar::<_, String>(
        "SELECT problem FROM log_records WHERE problem IS NOT NULL ORDER BY seq",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
}

/// A connection of `partner` that has been answered once and stays open (keep-alive), so that
/// it holds its place until the idle timeout rather than the header-read timeout: a loaded
/// machine does not free it while the test is still opening the next.
async fn held_open(
    gw: &Gateway,
    partner: &str,
    t: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut s = raw(gw, partner).await;
    s.write_all(
        format!("GET /v1/policy HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(SLACK, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return s;
            }
        }
    }
}

#[tokio::test]
async fn a_partner_over_its_connections_is_refused_and_others_are_served() {
    let gw = bounded_gateway();
    let t = token("politie", "vp.1", &["voorportaal"]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(held_open(&gw, "politie", &t).await);
    }
    let mut extra = raw(&gw, "politie").await;
    extra
        .write_all(
            format!("GET /v1/policy HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (got, closed) = until_closed(&mut extra, SLACK).await;
    assert_eq!(
        status_and_type(&got),
        (503, "too-many-connections".into()),
        "{got}"
    );
    assert!(got.to_ascii_lowercase().contains("retry-after: 1"));
    assert!(closed.is_some());
    others_are_served(&gw).await;
    // A connection given back is a connection to use again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client("politie")
        .get(gw.url("/v1/policy"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Signs `claims` with `partner`'s registered token key, as its identity provider would.
fn signed(partner: &str, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(pki().join(gateway::pki::layout::token_key(partner))).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(format!("{partner}-1"));
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

#[tokio::test]
async fn token_problems_name_what_is_wrong() {
    let gw = Gateway::start();
    let c = client("politie");
    let thumb = cert_thumbprint(&pki().join("politie/client.pem"));
    let now = now();
    let good = serde_json::json!({
        "iss": "politie", "sub": "vp.1", "aud": "gateway.ipga-r.example", "exp": now + 300,
        "iat": now, "roles": ["voorportaal"], "cnf": {"x5t#S256": thumb},
    });
    let ask = |claims: serde_json::Value| {
        let t = signed("politie", &claims);
        c.get(gw.url("/v1/policy")).bearer_auth(t).send()
    };
    assert_eq!(ask(good.clone()).await.unwrap().status(), 200);
    let without = |k: &str| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(k);
        v
    };
    let with = |k: &str, x: serde_json::Value| {
        let mut v = good.clone();
        v[k] = x;
        v
    };
    problem(ask(without("aud")).await.unwrap(), 401, "token-audience").await;
    for claim in ["exp", "iat", "sub"] {
        let p = problem(ask(without(claim)).await.unwrap(), 401, "token-claim").await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("`{claim}`")),
            "{p}"
        );
    }
    problem(
        ask(with("roles", "voorportaal".into())).await.unwrap(),
        401,
        "token-claim",
    )
    .await;
    let x5t = serde_json::json!({"x5t": thumb});
    problem(ask(with("cnf", x5t)).await.unwrap(), 401, "token-not-bound").await;
    // 64 KB of claims, validly signed: refused for its size.
    let big = with("pad", "x".repeat(65_536).into());
    problem(ask(big).await.unwrap(), 401, "token-too-large").await;
}

#[tokio::test]
async fn answers_are_uncacheable_and_identifiers_strict() {
    let gw = Gateway::start();
    let c = client("politie");
    let t = token("politie", "vp.1", &["voorportaal"]);
    let ok = c
        .get(gw.url("/v1/policy"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let refused = c.get(gw.url("/v1/policy")).send().await.unwrap();
    for r in [&ok, &refused] {
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["pragma"], "no-cache");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age=")
        );
    }
    // A BSN is nine digits, as sent: spaces are not trimmed away.
    let r = c
        .post(gw.url("/v1/cases"))
        .bearer_auth(&t)
        .json(&serde_json::json!({"subject": {"bsn": " 999993331 "}}))
        .send()
        .await
        .unwrap();
    problem(r, 422, "invalid-bsn").await;
    // An identifier in the path is one, or refused as such.
    let r = c
        .get(gw.url("/v1/cases/case%20one"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid-identifier").await;
}
