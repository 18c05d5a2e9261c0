//! What an operator sees: metrics after traffic (valid for promtool, without personal data) and
//! readiness that names what is wrong.

use crate::helpers::*;

#[tokio::test]
async fn metrics_after_traffic_are_valid_and_carry_no_personal_data() {
    let gw = Gateway::start();
    let c = client("politie");
    let t = token("politie", "vp.geheim", &["voorportaal"]);
    let r = c
        .post(gw.url("/v1/cases"))
        .bearer_auth(&t)
        .json(&serde_json::json!({"subject": {"bsn": "999993331"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .get(gw.url(&format!("/v1/cases/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let url = format!("http://{}/metrics", gw.health);
    let r = reqwest::Client::new()
        .get(&url)
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(r.text().await.unwrap().ends_with("# EOF\n"));
    // The classic text format, which promtool lints.
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    for line in [
        r#"gateway_requests_total{route="/v1/cases",outcome="answered",problem="none"} 1"#,
        r#"gateway_requests_total{route="/v1/cases/{id}",outcome="refused",problem="token-missing"} 1"#,
        "gateway_log_entries_appended_total",
        "gateway_connections_active",
        "gateway_policy_version_info{version=\"sha256:",
        "gateway_crl_next_update_timestamp_seconds",
        "gateway_token_cache_misses_total 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    // No BSN, no staff id, no case id, no subject: only routes, outcomes and problem types.
    for secret in ["999993331", "vp.geheim", id.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked into the metrics");
    }
    if let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
    {
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must lint the metrics with promtool (apt-get install prometheus)"
        );
        eprintln!("promtool not installed: metrics lint skipped");
    }
}

#[tokio::test]
async fn readiness_names_a_missing_signing_key() {
    // A copy of the signing key, removed while the gateway runs.
    let key = pki().join("gateway/log-ed25519.key");
    let copy = std::env::temp_dir().join(format!("gw-log-key-{}.key", std::process::id()));
    std::fs::copy(&key, &copy).unwrap();
    let copy_s = copy.to_str().unwrap().to_owned();
    let gw = Gateway::start_with_config(|c| c.replace("gateway/log-ed25519.key", &copy_s), &[]);
    let ready = reqwest::get(format!("http://{}/readyz", gw.health))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    std::fs::remove_file(&copy).unwrap();
    let r = reqwest::get(format!("http://{}/readyz", gw.health))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    eprintln!("{body}");
    assert_eq!(body["status"], "not-ready");
    let failed: Vec<&serde_json::Value> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(failed[0]["name"], "signing-key");
    assert!(
        failed[0]["problem"]
            .as_str()
            .unwrap()
            .contains("secrets.log_key_file")
    );
    // The process still runs.
    let h = reqwest::get(format!("http://{}/healthz", gw.health))
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
}
