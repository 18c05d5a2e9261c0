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

#[tokio::test]
async fn trace_context_goes_to_the_log_and_on_to_the_sources() {
    use crate::disclose::{Case, call};
    use serde_json::json;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let seen = gateway::demo::SeenHeaders::default();
    let ggd = gateway::demo::records()
        .into_iter()
        .find(|(p, _)| *p == "ggd.screening")
        .unwrap()
        .1;
    let server = tokio::spawn(gateway::demo::serve_source(
        pki().to_path_buf(),
        listener,
        "/screening",
        ggd,
        std::time::Duration::ZERO,
        stop_rx,
        seen.clone(),
    ));
    let gw = Gateway::start_with_config(
        |c| {
            format!(
                "{c}\n[[source]]\nproduct = \"ggd.screening\"\nurl = \"https://{addr}/screening\"\n"
            )
        },
        &[],
    );
    let (s, v, h) = call(
        &gw,
        "politie",
        "vp.1",
        "voorportaal",
        reqwest::Method::POST,
        "/v1/cases",
        json!({"subject": {"bsn": "123456782"}}),
    )
    .await;
    assert_eq!(s, 201);
    // Made here: a UUID v7 (version nibble 7).
    let made = h["fsc-transaction-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&made).unwrap().get_version_num(), 7);
    let case = Case {
        id: v["id"].as_str().unwrap().into(),
        subject_ref: v["subject_ref"].as_str().unwrap().into(),
    };
    let r = client("politie")
        .patch(gw.url(&format!("/v1/cases/{}", case.id)))
        .bearer_auth(token("politie", "vp.1", &["voorportaal"]))
        .json(&json!({"status": "duiding"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The partner's own transaction and trace.
    let tx = "0192b6a0-7c1e-7d4a-9f00-3c5a2b1d4e6f";
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = client("politie")
        .post(gw.url("/v1/disclosures"))
        .bearer_auth(token("politie", "vp.1", &["voorportaal"]))
        .header("fsc-transaction-id", tx)
        .header("traceparent", tp)
        .json(&json!({"subject": {"ref": case.subject_ref}, "purpose": "duiding", "case": case.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["fsc-transaction-id"], tx);
    // The source was asked within the same transaction and trace, as a child span.
    let (got_tx, got_tp) = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got_tx.as_deref(), Some(tx));
    let got_tp = got_tp.unwrap();
    assert!(
        got_tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{got_tp}"
    );
    assert!(
        !got_tp.contains("00f067aa0ba902b7"),
        "a span of its own: {got_tp}"
    );
    // And the log entry records both.
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let entry: String = sqlx::query_scalar(
        "SELECT entry FROM log_records WHERE kind = 'disclosure' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    let e: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(e["trace_id"], tx);
    assert_eq!(e["traceparent"], tp);
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test]
async fn commands_print_json_for_scripts() {
    let gw = Gateway::start();
    let r = client("politie")
        .post(gw.url("/v1/cases"))
        .bearer_auth(token("politie", "vp.1", &["voorportaal"]))
        .json(&serde_json::json!({"subject": {"bsn": "999993331"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let config = pki().join("gateway.toml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code(), v)
    };
    let c = config.to_str().unwrap();
    let (code, v) = run(&[
        "config",
        "check",
        "--config",
        c,
        "--allow-example-pki",
        "--format",
        "json",
    ]);
    assert_eq!((code, &v["ok"]), (Some(0), &serde_json::json!(true)), "{v}");
    assert_eq!(v["sources"]["listen"], "file");
    let (code, v) = run(&["config", "check", "--config", c, "--format", "json"]);
    assert_eq!(code, Some(1));
    assert!(
        v["problems"][0].as_str().unwrap().contains("EXAMPLE"),
        "{v}"
    );
    let (code, v) = run(&[
        "audit",
        "verify",
        "--config",
        c,
        "--database-url",
        &gw.database_url,
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert!(v["entries"].as_i64().unwrap() >= 2);
    let (_, v) = run(&["audit", "vkey", "--config", c, "--format", "json"]);
    assert!(
        v["current"]
            .as_str()
            .unwrap()
            .starts_with("gateway.ipga-r.example/disclosures+")
    );
}

#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    // `gateway policy matrix … | head -c 10`: the pipe closes long before the 100 KB are written.
    use std::io::Read;
    let mut child = std::process::Command::new(BIN)
        .args(["policy", "matrix"])
        .arg(covenant_path())
        .args(["--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}
