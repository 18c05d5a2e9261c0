//! A TLS scan with an independent tool: sslyze (PyPI), with a partner's client certificate,
//! against the running gateway. TLS 1.2 and 1.3 only, forward-secret AEAD suites only, no known
//! weakness, compliant with Mozilla's "intermediate" configuration (certificate lifetime
//! included). `.ci/run` installs sslyze. (The security headers are checked in `hostile`.)

use crate::helpers::*;

#[tokio::test]
async fn sslyze_finds_nothing() {
    if std::process::Command::new("sslyze")
        .arg("--help")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must scan TLS with sslyze (pip install sslyze)"
        );
        eprintln!("sslyze not installed: TLS scan skipped");
        return;
    }
    let gw = Gateway::start();
    let d = pki();
    let dir = std::env::temp_dir().join(format!("gateway-sslyze-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("scan.json");
    let out = tokio::process::Command::new("sslyze")
        .arg("--cert")
        .arg(d.join("politie/client.pem"))
        .arg("--key")
        .arg(d.join("politie/client.key"))
        .arg("--certinfo_ca_file")
        .arg(d.join("ca.pem"))
        .args(["--mozilla_config", "intermediate", "--json_out"])
        .arg(&json)
        .arg(&gw.api)
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sslyze: not compliant with Mozilla's intermediate configuration:\n{stdout}"
    );
    let scan: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = &scan["server_scan_results"][0]["scan_result"];
    let accepted = |k: &str| -> Vec<String> {
        assert_eq!(r[k]["status"], "COMPLETED", "{k}");
        r[k]["result"]["accepted_cipher_suites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["cipher_suite"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for old in [
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ] {
        assert!(accepted(old).is_empty(), "{old} accepted");
    }
    let tls12 = accepted("tls_1_2_cipher_suites");
    assert!(!tls12.is_empty());
    for s in &tls12 {
        assert!(
            s.contains("ECDHE") && (s.contains("GCM") || s.contains("CHACHA20")),
            "TLS 1.2 suite {s} is not forward-secret AEAD"
        );
    }
    assert!(!accepted("tls_1_3_cipher_suites").is_empty());
    assert_eq!(
        r["heartbleed"]["result"]["is_vulnerable_to_heartbleed"],
        false
    );
    assert_eq!(
        r["openssl_ccs_injection"]["result"]["is_vulnerable_to_ccs_injection"],
        false
    );
    assert_eq!(
        r["tls_compression"]["result"]["supports_compression"],
        false
    );
    assert!(
        r["robot"]["result"]["robot_result"]
            .as_str()
            .unwrap()
            .starts_with("NOT_VULNERABLE")
    );
    assert_eq!(
        r["session_renegotiation"]["result"]["is_vulnerable_to_client_renegotiation_dos"],
        false
    );
}
