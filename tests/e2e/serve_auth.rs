//! Who may talk to the gateway at all: mutual TLS, then a certificate-bound token.

use crate::helpers::*;
use base64::Engine;

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

async fn get_case(c: &reqwest::Client, gw: &Gateway, token: &str) -> reqwest::Response {
    c.get(gw.url("/v1/cases/case-does-not-exist"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn no_client_certificate_fails_the_handshake() {
    let gw = Gateway::start();
    let c = client_with(&pki().join("ca.pem"), None);
    let e = c.get(gw.url("/v1/cases/x")).send().await.unwrap_err();
    assert!(e.is_connect() || e.is_request(), "{e:?}");
    let log = gw.wait_log(&["peer sent no certificates"]);
    assert!(log.contains("peer sent no certificates"), "{log}");
}

#[tokio::test]
async fn certificate_of_another_ca_fails_the_handshake() {
    let gw = Gateway::start();
    let o = other_pki();
    let c = client_with(
        &pki().join("ca.pem"),
        Some((&o.join("politie/client.pem"), &o.join("politie/client.key"))),
    );
    assert!(c.get(gw.url("/v1/cases/x")).send().await.is_err());
    // Both example CAs carry the same name, so webpki finds the "issuer" and the signature fails.
    let log = gw.wait_log(&["invalid peer certificate: BadSignature", "UnknownIssuer"]);
    assert!(
        log.contains("invalid peer certificate: BadSignature") || log.contains("UnknownIssuer"),
        "{log}"
    );
}

#[tokio::test]
async fn revoked_certificate_fails_the_handshake() {
    let gw = Gateway::start();
    let d = pki();
    let c = client_with(
        &d.join("ca.pem"),
        Some((
            &d.join("politie/revoked-client.pem"),
            &d.join("politie/revoked-client.key"),
        )),
    );
    assert!(c.get(gw.url("/v1/cases/x")).send().await.is_err());
    let log = gw.wait_log(&["invalid peer certificate: Revoked"]);
    assert!(log.contains("invalid peer certificate: Revoked"), "{log}");
}

#[tokio::test]
async fn certificate_of_no_partner_fails_the_handshake() {
    let gw = Gateway::start();
    // Chains to the covenant CA, but its OIN belongs to no partner of the covenant.
    let ca = gateway::pki::Ca::load(pki()).unwrap();
    let stranger = ca
        .issue("Stranger", Some("00000099000000077777"), &[], true, now())
        .unwrap();
    let dir = std::env::temp_dir().join(format!("gateway-e2e-stranger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("c.pem"), &stranger.cert_pem).unwrap();
    std::fs::write(dir.join("k.pem"), &stranger.key_pem).unwrap();
    let c = client_with(
        &pki().join("ca.pem"),
        Some((&dir.join("c.pem"), &dir.join("k.pem"))),
    );
    assert!(c.get(gw.url("/v1/cases/x")).send().await.is_err());
    let log = gw.wait_log(&["ApplicationVerificationFailure"]);
    assert!(log.contains("ApplicationVerificationFailure"), "{log}");
}

#[tokio::test]
async fn token_checks_each_give_their_problem_type() {
    let gw = Gateway::start();
    let c = client("politie");
    let politie_cert = pki().join("politie/client.pem");
    let aud = "gateway.ipga-r.example";
    let t = now();

    // Missing and malformed.
    problem(
        c.get(gw.url("/v1/cases/x")).send().await.unwrap(),
        401,
        "token-missing",
    )
    .await;
    problem(get_case(&c, &gw, "not-a-jwt").await, 401, "token-malformed").await;
    // Expired: issued 20 minutes ago for 10 minutes.
    let expired = token_with(
        "politie",
        "p1",
        &["voorportaal"],
        &politie_cert,
        aud,
        t - 1200,
        600,
    );
    problem(get_case(&c, &gw, &expired).await, 401, "token-expired").await;
    // Issued in the future.
    let future = token_with(
        "politie",
        "p1",
        &["voorportaal"],
        &politie_cert,
        aud,
        t + 3600,
        600,
    );
    problem(get_case(&c, &gw, &future).await, 401, "token-not-yet-valid").await;
    // Another partner's token on politie's connection.
    let om = token("om", "o1", &["regieoverleg-lid"]);
    problem(get_case(&c, &gw, &om).await, 401, "token-issuer-mismatch").await;
    // Bound to another certificate of the same partner.
    let other_cert = token_with(
        "politie",
        "p1",
        &["voorportaal"],
        &pki().join("politie/revoked-client.pem"),
        aud,
        t,
        600,
    );
    problem(
        get_case(&c, &gw, &other_cert).await,
        401,
        "token-bound-to-other-certificate",
    )
    .await;
    // Wrong audience.
    let wrong_aud = token_with(
        "politie",
        "p1",
        &["voorportaal"],
        &politie_cert,
        "another-gateway",
        t,
        600,
    );
    problem(get_case(&c, &gw, &wrong_aud).await, 401, "token-audience").await;
    // Lifetime above fifteen minutes.
    let long = token_with(
        "politie",
        "p1",
        &["voorportaal"],
        &politie_cert,
        aud,
        t,
        3600,
    );
    problem(
        get_case(&c, &gw, &long).await,
        401,
        "token-lifetime-too-long",
    )
    .await;
    // Unknown role, and a role politie may not hold.
    let unknown = token("politie", "p1", &["superuser"]);
    problem(get_case(&c, &gw, &unknown).await, 403, "role-unknown").await;
    let not_held = token("politie", "p1", &["melder-intake"]);
    problem(get_case(&c, &gw, &not_held).await, 403, "role-not-held").await;
    // A valid token gets past authentication (and finds no such case).
    let ok = token("politie", "p1", &["voorportaal"]);
    problem(get_case(&c, &gw, &ok).await, 404, "case-not-found").await;
}

#[tokio::test]
async fn unsigned_hmac_and_tampered_tokens_are_refused() {
    let gw = Gateway::start();
    let c = client("politie");
    let claims = serde_json::json!({
        "iss": "politie", "sub": "p1", "aud": "gateway.ipga-r.example", "iat": now(), "exp": now() + 300,
        "roles": ["voorportaal"], "cnf": {"x5t#S256": cert_thumbprint(&pki().join("politie/client.pem"))},
    });
    let payload = b64(claims.to_string().as_bytes());
    // alg: none, no signature.
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let v = problem(
        get_case(&c, &gw, &none).await,
        401,
        "token-algorithm-refused",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("`none`"));
    // HS256 keyed with the partner's *public* key: the classic algorithm-confusion attack.
    use hmac::{Hmac, Mac};
    let public = std::fs::read(pki().join("politie/token-es256.pub.pem")).unwrap();
    let header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"politie-1"}"#);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&public).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let hs = format!("{header}.{payload}.{}", b64(&mac.finalize().into_bytes()));
    problem(get_case(&c, &gw, &hs).await, 401, "token-algorithm-refused").await;
    // A valid token with its payload changed: the signature no longer verifies.
    let good = token("politie", "p1", &["voorportaal"]);
    let parts: Vec<&str> = good.split('.').collect();
    let mut changed = claims.clone();
    changed["roles"] = serde_json::json!(["voorportaal", "pto-lid"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(changed.to_string().as_bytes()),
        parts[2]
    );
    problem(get_case(&c, &gw, &forged).await, 401, "token-invalid").await;
}

#[tokio::test]
async fn transaction_id_is_echoed_or_created_and_http2_is_spoken() {
    let gw = Gateway::start();
    let c = client("politie");
    let t = token("politie", "p1", &["voorportaal"]);
    let r = c
        .get(gw.url("/v1/cases/x"))
        .bearer_auth(&t)
        .header("Fsc-Transaction-Id", "txn-0001-abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()["fsc-transaction-id"], "txn-0001-abcdef");
    let r = c
        .get(gw.url("/v1/cases/x"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let created = r.headers()["fsc-transaction-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.len(), 36);
    assert!(
        gw.wait_log(&["txn-0001-abcdef"])
            .contains("txn-0001-abcdef")
    );
}

#[tokio::test]
async fn request_hygiene_limits_and_unknown_routes() {
    let gw = Gateway::start();
    let c = client("politie");
    let t = token("politie", "p1", &["voorportaal"]);
    let post = |body: String, ct: &'static str| {
        c.post(gw.url("/v1/cases"))
            .bearer_auth(&t)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    problem(
        post(
            format!("{{\"subject\":{{\"bsn\":\"{}\"}}}}", "1".repeat(70_000)),
            "application/json",
        )
        .await
        .unwrap(),
        413,
        "body-too-large",
    )
    .await;
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    problem(
        post(deep, "application/json").await.unwrap(),
        400,
        "json-too-deep",
    )
    .await;
    problem(
        post(
            r#"{"subject":{"bsn":"111222333"},"naam":"x"}"#.into(),
            "application/json",
        )
        .await
        .unwrap(),
        400,
        "invalid-body",
    )
    .await;
    problem(
        post(r#"{"subject":{"bsn":"111222333"}}"#.into(), "text/plain")
            .await
            .unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    problem(
        c.get(gw.url("/v1/nothing")).send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    problem(
        c.delete(gw.url("/v1/cases")).send().await.unwrap(),
        405,
        "method-not-allowed",
    )
    .await;
}

#[tokio::test]
async fn health_and_readiness_on_the_plain_listener() {
    let gw = Gateway::start();
    let c = reqwest::Client::new();
    let h: serde_json::Value = c
        .get(format!("http://{}/healthz", gw.health))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let r: serde_json::Value = c
        .get(format!("http://{}/readyz", gw.health))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "ready");
    // The CRL the example certificates point to (their CRL distribution point).
    let r = reqwest::get(format!("http://{}/crl", gw.health))
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/pkix-crl");
    let der = r.bytes().await.unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    assert_eq!(
        crl.iter_revoked_certificates().count(),
        1,
        "the example revokes one certificate"
    );
}

#[test]
fn serve_refuses_the_example_pki_without_the_flag() {
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--config",
            pki().join("gateway.toml").to_str().unwrap(),
        ])
        .env("GATEWAY_LISTEN", "127.0.0.1:0")
        .env("GATEWAY_HEALTH_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the EXAMPLE PKI"), "{err}");
    assert!(err.contains("--allow-example-pki"), "{err}");
}

#[test]
fn config_check_reports_every_problem() {
    let dir = std::env::temp_dir().join(format!("gateway-e2e-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(pki().join("gateway.toml"))
        .unwrap()
        .replace("listen = \"127.0.0.1:8443\"", "listen = \"everywhere\"")
        .replace(
            "key_dir = \".\"",
            &format!("key_dir = \"{}\"", pki().display()),
        )
        .replace("ca = \"ca.pem\"", "ca = \"missing-ca.pem\"")
        .replace("[tls]", "[tokens]\nmax_lifetime_secs = 3600\n\n[tls]")
        .replace("= \"gateway/", &format!("= \"{}/gateway/", pki().display()))
        .replace(
            "crl = [\"crl.pem\"]",
            &format!("crl = [\"{}/crl.pem\"]", pki().display()),
        );
    std::fs::write(dir.join("gateway.toml"), text).unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "config",
            "check",
            "--config",
            dir.join("gateway.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen = \"everywhere\""), "{err}");
    assert!(
        err.contains("tokens.max_lifetime_secs = 3600: must be 1 to 900"),
        "{err}"
    );
    assert!(err.contains("missing-ca.pem"), "{err}");
    let ok = std::process::Command::new(BIN)
        .args([
            "config",
            "check",
            "--config",
            pki().join("gateway.toml").to_str().unwrap(),
            "--allow-example-pki",
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
