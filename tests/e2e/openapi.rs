//! The OpenAPI document: served without a token, true to the router, and the gateway's answers
//! conform to it under schemathesis' generated requests (`.ci/run` installs schemathesis).

use crate::helpers::*;

#[tokio::test]
async fn the_document_is_served_with_the_certificate_alone() {
    let gw = Gateway::start();
    let resp = client("oov")
        .get(gw.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/v1/disclosures", "/v1/cases/{id}", "/v1/audit/proof/{seq}"] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    // Without a client certificate, no document either: the API is for partners.
    let anon = client_with(&pki().join("ca.pem"), None);
    assert!(anon.get(gw.url("/v1/openapi.json")).send().await.is_err());
}

/// Runs schemathesis against a live gateway, with a token of the programme partner that holds
/// every role of the case register, the log and the policy lifecycle.
#[tokio::test]
async fn answers_conform_to_the_document_under_generated_requests() {
    let installed = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--help")
            .output()
            .is_ok()
    };
    if !installed("schemathesis") || !installed("openapi-spec-validator") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run schemathesis (pip install schemathesis openapi-spec-validator)"
        );
        eprintln!("schemathesis or openapi-spec-validator not installed: conformance run skipped");
        return;
    }
    let gw = Gateway::start_with_config(
        |c| format!("{c}\n[limits]\npartner_per_second = 100000\nstaff_per_second = 100000\n"),
        &[],
    );
    let doc = client("oov")
        .get(gw.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("gateway-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("openapi.json");
    std::fs::write(&schema, doc).unwrap();
    // The document itself is valid OpenAPI 3.1 (a strict validator, not only schemathesis').
    let valid = tokio::process::Command::new("openapi-spec-validator")
        .arg(&schema)
        .output()
        .await
        .unwrap();
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stdout)
    );
    let token = token(
        "oov",
        "beheerder-1",
        &["voorportaal", "privacy-officer", "beheerder", "regisseur"],
    );
    let d = pki();
    let out = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(&schema)
        .args(["--url", &gw.url("")])
        .arg("--request-cert")
        .arg(d.join("oov/client.pem"))
        .arg("--request-cert-key")
        .arg(d.join("oov/client.key"))
        .arg("--tls-verify")
        .arg(d.join("ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-color",
        ])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found answers that do not conform:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !gw.log().contains("panicked"),
        "no request panics the gateway"
    );
}
