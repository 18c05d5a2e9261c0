//! Retention through the real binary: expired deposits, closed cases and log content removed
//! under the covenant's rules, the log still verifying with tombstones in it, the removed values
//! gone from the database file, and the art. 15 report saying what went; on SQLite (by
//! `gateway retention run`) and PostgreSQL (by the run a serving gateway makes).

use crate::audit::scalar;
use crate::disclose::{Case, call, case_with_records};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Everything expires at once (0 days), so that a test need not wait for years.
const RETENTION: &str = r#"
[retention]
deposits = { days = 0, ground = "convenant art. 12 lid 2" }
cases = { days = 0, ground = "convenant art. 12 lid 1" }

[[retention.log]]
id = "log-alles"
kinds = ["disclosure", "check", "aggregate", "audit-query", "audit-proof", "case-change", "case-read", "deposit", "request"]
days = 0
ground = "convenant art. 12 lid 3"
"#;

fn covenant() -> String {
    // The example's own periods (years) replaced by the test's.
    let text = std::fs::read_to_string(example_covenant_path()).unwrap();
    let text = text.split("\n[retention]").next().unwrap();
    let p = std::env::temp_dir().join(format!("gateway-e2e-retention-{}.toml", std::process::id()));
    std::fs::write(
        &p,
        checks_per_minute(&format!("{text}\n{RETENTION}\n"), 1_000_000),
    )
    .unwrap();
    p.to_str().unwrap().to_owned()
}

fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn json_line(out: &str) -> Value {
    let at = out.find('{').unwrap_or_else(|| panic!("no JSON in: {out}"));
    let mut values = serde_json::Deserializer::from_str(&out[at..]).into_iter::<Value>();
    values.next().unwrap().unwrap()
}

fn config() -> String {
    pki().join("gateway.toml").to_str().unwrap().to_owned()
}

fn verify(url: &str) -> String {
    let (code, out) = cli(&[
        "audit",
        "verify",
        "--config",
        &config(),
        "--database-url",
        url,
    ]);
    assert_eq!(code, 0, "{out}");
    out
}

/// A closed case with deposits (A) and an open one (B).
async fn two_cases(gw: &Gateway) -> (Case, Case) {
    let a = case_with_records(gw, "999990044").await;
    let (s, v, _) = call(
        gw,
        "oov",
        "staff.1",
        "secretaris",
        reqwest::Method::PATCH,
        &format!("/v1/cases/{}", a.id),
        json!({"status": "niet-opgenomen", "decision": pto_decision()}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let b = case_with_records(gw, "999990056").await;
    (a, b)
}

async fn count(url: &str, sql: &str) -> i64 {
    scalar(url, &format!("SELECT CAST(({sql}) AS TEXT)"))
        .await
        .parse()
        .unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_retention_run_removes_what_expired_and_the_log_still_verifies_on_sqlite() {
    let url = sqlite_url("retention");
    let cov = covenant();
    let env = [
        ("GATEWAY_DATABASE_URL", url.as_str()),
        ("GATEWAY_COVENANT", cov.as_str()),
        ("GATEWAY_AUDIT_RETENTION_INTERVAL_SECS", "0"),
    ];
    let mut gw = Gateway::spawn_on(&config(), &env);
    let (a, b) = two_cases(&gw).await;
    // What of A is in the database now, to look for in its bytes afterwards.
    let where_a = format!("subject_ref = '{}'", a.subject_ref);
    let sealed_deposit = hex::decode(
        scalar(
            &url,
            &format!("SELECT hex(sealed) FROM records WHERE {where_a} LIMIT 1"),
        )
        .await,
    )
    .unwrap();
    let sealed_bsn = hex::decode(
        scalar(
            &url,
            &format!("SELECT hex(subject_sealed) FROM cases WHERE {where_a}"),
        )
        .await,
    )
    .unwrap();
    let pseudonym = scalar(
        &url,
        &format!("SELECT subject_pseudonym FROM cases WHERE {where_a}"),
    )
    .await;
    assert!(pseudonym.len() >= 16, "{pseudonym}");
    let b_deposits = count(
        &url,
        &format!(
            "SELECT COUNT(*) FROM records WHERE subject_ref = '{}'",
            b.subject_ref
        ),
    )
    .await;
    assert!(b_deposits > 0);
    gw.terminate(Duration::from_secs(10)).unwrap();
    let path = url.strip_prefix("sqlite://").unwrap().to_owned();
    let file_bytes = || {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        bytes
    };
    let before = file_bytes();
    for needle in [
        &sealed_deposit[..64],
        &sealed_bsn[..64],
        pseudonym.as_bytes(),
        a.id.as_bytes(),
    ] {
        assert!(contains(&before, needle), "the search would find it");
    }
    // Every entry is now older than "0 days".
    std::thread::sleep(Duration::from_millis(1100));

    let (code, dry) = cli(&[
        "retention",
        "run",
        "--config",
        &config(),
        "--database-url",
        &url,
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{dry}");
    assert!(dry.contains("would remove"), "{dry}");
    let (code, out) = cli(&[
        "retention",
        "run",
        "--config",
        &config(),
        "--database-url",
        &url,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let run = json_line(&out);
    assert_eq!(run["rules"]["cases"]["removed"], 1, "{run}");
    assert!(
        run["rules"]["deposits"]["removed"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert!(
        run["rules"]["log-alles"]["removed"].as_u64().unwrap() > 10,
        "{run}"
    );
    assert_eq!(run["reclaimed"], true, "{run}");

    // The log verifies, saying what retention removed.
    let out = verify(&url);
    assert!(out.contains("removed by retention"), "{out}");
    // A is gone from the register and the deposits; B (open) and its deposits are not.
    assert_eq!(
        count(&url, &format!("SELECT COUNT(*) FROM cases WHERE {where_a}")).await,
        0
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT COUNT(*) FROM records WHERE {where_a}")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &url,
            &format!(
                "SELECT COUNT(*) FROM case_events WHERE case_id = '{}'",
                a.id
            )
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &url,
            &format!(
                "SELECT COUNT(*) FROM records WHERE subject_ref = '{}'",
                b.subject_ref
            )
        )
        .await,
        b_deposits
    );
    // And gone from the file's bytes (and its write-ahead log's), not only from its tables.
    let bytes = file_bytes();
    assert!(
        !contains(&bytes, &sealed_deposit[..64]),
        "the sealed deposit is still in the file"
    );
    assert!(
        !contains(&bytes, &sealed_bsn[..64]),
        "the sealed BSN is still in the file"
    );
    assert!(
        !contains(&bytes, pseudonym.as_bytes()),
        "the subject's pseudonym is still in the file"
    );
    assert!(
        !contains(&bytes, a.id.as_bytes()),
        "the case id is still in the file"
    );

    // Removed content cannot come back: the database refuses it, and with its guard lifted,
    // verification finds it.
    let removed: i64 = count(&url, "SELECT MIN(first_seq) FROM log_tombstones").await;
    let forged = format!(
        "INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, policy_version, outcome) \
         VALUES ({removed}, '{{}}', 'disc-x', 0, 't', 'request', 'rn', 'v', 'refused')"
    );
    let db = gateway::store::Db::connect(&url).await.unwrap();
    let e = db.execute_unchecked(&forged).await.unwrap_err();
    assert!(e.to_string().contains("cannot come back"), "{e}");

    // The gateway serves on, on the same log: its next entries verify with the rest.
    let gw = Gateway::spawn_on(&config(), &env);
    crate::audit::entries(&gw, 2).await;
    let (code, report) = cli(&[
        "audit",
        "report",
        "--config",
        &config(),
        "--database-url",
        &url,
        "--subject",
        "999990044",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{report}");
    let letter = json_line(&report);
    assert!(
        letter["disclosures"].as_array().unwrap().is_empty(),
        "{letter}"
    );
    assert_eq!(
        letter["removed_under_retention"][0]["rule"], "log-alles",
        "{letter}"
    );
    // Issue 28: the person's report is still proven complete, each removed entry in its place
    // and shown as removed.
    crate::audit::checkpoint(&gw).await;
    let proven = std::path::PathBuf::from(format!("{path}.proven.json"));
    let (code, out) = crate::audit::prove_report(&config(), &url, "999990044", &proven);
    assert_eq!(code, 0, "{out}");
    let vkey_file = std::path::PathBuf::from(format!("{path}.vkey"));
    crate::audit::write_log_vkey(&config(), &vkey_file);
    let (code, out) = crate::audit::verify_report(&proven, &vkey_file);
    assert_eq!(code, 0, "{out}");
    let n = crate::audit::proven_count(&out);
    assert!(n >= 3, "{out}");
    assert!(
        out.contains(&format!("({n} of them removed by retention)")),
        "{out}"
    );
    let _ = std::fs::remove_file(&proven);
    let _ = std::fs::remove_file(&vkey_file);
    drop(gw);
    let out = verify(&url);
    assert!(out.contains("removed by retention"), "{out}");
    db.execute_unchecked("DROP TRIGGER log_records_removed_stays_removed")
        .await
        .unwrap();
    db.execute_unchecked(&forged).await.unwrap();
    let (code, out) = cli(&[
        "audit",
        "verify",
        "--config",
        &config(),
        "--database-url",
        &url,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("its content is back"), "{out}");
}

#[tokio::test]
async fn a_serving_gateway_runs_retention_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let cov = covenant();
    let gw = Gateway::spawn_on(
        &config(),
        &[
            ("GATEWAY_DATABASE_URL", url.as_str()),
            ("GATEWAY_COVENANT", cov.as_str()),
            ("GATEWAY_AUDIT_RETENTION_INTERVAL_SECS", "1"),
        ],
    );
    let (a, b) = two_cases(&gw).await;
    let where_a = format!("subject_ref = '{}'", a.subject_ref);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&url, &format!("SELECT COUNT(*) FROM cases WHERE {where_a}")).await > 0
        || count(
            &url,
            &format!("SELECT COUNT(*) FROM records WHERE {where_a}"),
        )
        .await
            > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no retention run removed case A"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        count(
            &url,
            &format!(
                "SELECT COUNT(*) FROM records WHERE subject_ref = '{}'",
                b.subject_ref
            )
        )
        .await
            > 0
    );
    assert!(count(&url, "SELECT COUNT(*) FROM log_tombstones").await > 0);
    gw.wait_log(&["retention run removed expired data"]);
    let out = verify(&url);
    assert!(out.contains("removed by retention"), "{out}");
    // The database refuses removed content back, and a delete outside a tombstone.
    let removed: i64 = count(&url, "SELECT MIN(first_seq) FROM log_tombstones").await;
    let db = gateway::store::Db::connect(&url).await.unwrap();
    let e = db
        .execute_unchecked(&format!(
            "INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, policy_version, outcome) \
             VALUES ({removed}, '{{}}', 'disc-x', 0, 't', 'request', 'rn', 'v', 'refused')"
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot come back"), "{e}");
    let e = db
        .execute_unchecked("DELETE FROM log_records WHERE seq = 1")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}
