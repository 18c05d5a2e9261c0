//! The aanpak-check across approaches: real HTTPS registers of two other approaches (Top600,
//! Criminele Families) with certificates of the example PKI, asked with per-approach keyed
//! pseudonyms; known in several, known nowhere, one down (unavailable, never "not known"),
//! unlinkable pseudonyms, no BSN in any request, the tighter per-staff limit.

use crate::helpers::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const KNOWN: &str = "999993331";
const NOBODY: &str = "999992223";

struct Register {
    addr: std::net::SocketAddr,
    seen: gateway::demo::SeenRequests,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Register {
    fn down(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A register holding `bsns`, its index made with `gateway approach-index` from a CSV.
async fn register(dir: &Path, id: &str, key: &Path, bsns: &[&str], contact: &str) -> Register {
    let csv = dir.join(format!("{id}.csv"));
    std::fs::write(
        &csv,
        format!(
            "bsn,naam\n{}\n",
            bsns.iter()
                .map(|b| format!("{b},x"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["approach-index", "--key"])
        .arg(key)
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: std::collections::HashSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(index.len(), bsns.len());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = gateway::demo::SeenRequests::default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(gateway::demo::serve_approach(
        pki().to_path_buf(),
        listener,
        index,
        contact.to_owned(),
        rx,
        seen.clone(),
    ));
    Register {
        addr,
        seen,
        stop: Some(tx),
    }
}

fn key_file(dir: &Path, id: &str, byte: u8) -> PathBuf {
    let p = dir.join(format!("{id}.key"));
    std::fs::write(&p, hex::encode([byte; 32])).unwrap();
    p
}

/// A gateway whose covenant names both approaches (and `checks`, the per-staff limit) and
/// whose configuration says where to ask them.
fn gateway(dir: &Path, regs: &[(&str, &Register, &Path)], checks: Option<u32>) -> Gateway {
    let base = match checks {
        Some(_) => example_covenant_path(),
        None => covenant_path(),
    };
    let mut cov = std::fs::read_to_string(base).unwrap();
    cov.push_str("\n[[approach]]\nid = \"top600\"\nname = \"Top600\"\npartner = \"oov\"\ncontact = \"Regieteam Top600 (gemeente)\"\n");
    cov.push_str("\n[[approach]]\nid = \"criminele-families\"\nname = \"Criminele Families\"\npartner = \"politie\"\ncontact = \"Programmabureau Criminele Families\"\n");
    if let Some(n) = checks {
        cov = checks_per_minute(&cov, u64::from(n));
    }
    let n = uuid::Uuid::new_v4().simple().to_string();
    let cov_path = dir.join(format!("covenant-{n}.toml"));
    std::fs::write(&cov_path, cov).unwrap();
    let mut approaches = String::new();
    for (id, r, key) in regs {
        approaches.push_str(&format!(
            "\n[[approach]]\nid = \"{id}\"\nurl = \"https://{}/check\"\nkey_file = {:?}\ntimeout_ms = 1500\n",
            r.addr, key
        ));
    }
    let cov_line = format!("covenant = {:?}", cov_path.to_str().unwrap());
    Gateway::start_with_config(
        move |text| {
            let mut out: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("covenant = ") {
                        cov_line.clone()
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            // Top-level tables go after the rest: append at the end.
            out.push('\n');
            out.push_str(&approaches);
            out
        },
        &[],
    )
}

async fn check(gw: &Gateway, staff: &str, bsn: &str) -> (u16, Value) {
    let r = client("politie")
        .post(gw.url("/v1/checks"))
        .bearer_auth(token("politie", staff, &["voorportaal"]))
        .json(&json!({"subject": {"bsn": bsn}, "purpose": "aanpak-check"}))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

fn status(v: &Value, approach: &str) -> String {
    v["across"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["approach"] == approach)
        .unwrap_or_else(|| panic!("{approach} not in {v}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_check_asks_every_approach_with_its_own_pseudonym_and_never_a_bsn() {
    let dir = std::env::temp_dir().join(format!("gw-approaches-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (k1, k2) = (key_file(&dir, "top600", 1), key_file(&dir, "cf", 2));
    let mut top600 = register(
        &dir,
        "top600",
        &k1,
        &[KNOWN, "111222333"],
        "Regieteam Top600, 020-555 0600",
    )
    .await;
    let cf = register(&dir, "cf", &k2, &["111222333"], "Programmabureau CF").await;
    let gw = gateway(
        &dir,
        &[("top600", &top600, &k1), ("criminele-families", &cf, &k2)],
        None,
    );

    // Known in iPGA-R (a case) and in Top600, not in Criminele Families.
    let (s, v) = call_case(&gw).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = check(&gw, "vp.1", KNOWN).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["known"], true);
    assert_eq!(v["complete"], true);
    assert_eq!(v["approaches"], json!(["iPGA-R", "Top600"]), "{v}");
    assert_eq!(status(&v, "top600"), "known");
    assert_eq!(status(&v, "criminele-families"), "not-known");
    let t = v["across"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["approach"] == "top600")
        .unwrap();
    assert_eq!(t["contact"], "Regieteam Top600, 020-555 0600");

    // Known nowhere.
    let (s, v) = check(&gw, "vp.1", NOBODY).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["known"].clone(), v["complete"].clone()),
        (json!(false), json!(true)),
        "{v}"
    );
    assert!(
        v["across"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "not-known"),
        "{v}"
    );

    // Top600 down: unavailable, never "not known"; the others answered.
    top600.down();
    let (s, v) = check(&gw, "vp.1", KNOWN).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(status(&v, "top600"), "unavailable");
    assert_eq!(status(&v, "iPGA-R"), "known");
    assert_eq!(status(&v, "criminele-families"), "not-known");
    assert_eq!(v["complete"], false);

    // No request to an approach carried a BSN; one person's pseudonyms differ per approach.
    let (a, b) = (
        top600.seen.lock().unwrap().clone(),
        cf.seen.lock().unwrap().clone(),
    );
    assert!(a.len() >= 2 && b.len() >= 3, "{a:?} {b:?}");
    for r in a.iter().chain(&b) {
        for bsn in [KNOWN, NOBODY] {
            assert!(!r.contains(bsn), "a BSN reached an approach: {r}");
        }
        assert!(r.starts_with("/check {\"subject\":\""), "{r}");
    }
    let subject = |r: &str| r.split('"').nth(3).unwrap().to_owned();
    assert_ne!(
        subject(&a[0]),
        subject(&b[0]),
        "the same pseudonym for two approaches"
    );
    assert_eq!(subject(&a[0]).len(), 64);

    // Each check is one entry with the outcome per approach and no BSN.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT entry FROM log_records WHERE kind = 'check' ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows.len(), 3);
    let last: Value = serde_json::from_str(&rows[2].0).unwrap();
    assert_eq!(
        last["check"]["approaches"],
        json!({"iPGA-R": "known", "top600": "unavailable", "criminele-families": "not-known"})
    );
    for (e,) in &rows {
        assert!(!e.contains(KNOWN) && !e.contains(NOBODY), "{e}");
    }
    drop(conn);

    // Top600's register asks us the same, by its own pseudonym: hit / no-hit for iPGA-R only.
    let ask = |partner: &'static str, approach: &'static str, value: String| {
        let url = gw.url("/v1/checks");
        async move {
            let r = client(partner)
                .post(url)
                .bearer_auth(token(
                    partner,
                    "top600.register",
                    &[if partner == "oov" { "melder-intake" } else { "voorportaal" }],
                ))
                .json(&json!({"subject": {"pseudonym": {"approach": approach, "value": value}}, "purpose": "aanpak-check"}))
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let pseudonym = |bsn: &str| {
        let out = Command::new(BIN)
            .args(["approach-index", "--key"])
            .arg(&k1)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{bsn}\n").as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (s, v) = ask("oov", "top600", pseudonym(KNOWN)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["known"], true, "{v}");
    assert_eq!(
        v["across"].as_array().unwrap().len(),
        1,
        "only iPGA-R answers: {v}"
    );
    let (s, v) = ask("oov", "top600", pseudonym(NOBODY)).await;
    assert_eq!((s, v["known"].clone()), (200, json!(false)), "{v}");
    // Only the partner that runs the approach may ask by its pseudonyms.
    let (s, v) = ask("politie", "top600", pseudonym(KNOWN)).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["type"].as_str().unwrap().ends_with("/approach-not-yours"),
        "{v}"
    );
    let (s, v) = ask("oov", "top400", pseudonym(KNOWN)).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["type"].as_str().unwrap().ends_with("/approach-unknown"),
        "{v}"
    );
}

async fn call_case(gw: &Gateway) -> (u16, Value) {
    let r = client("politie")
        .post(gw.url("/v1/cases"))
        .bearer_auth(token("politie", "vp.1", &["voorportaal"]))
        .json(&json!({"subject": {"bsn": KNOWN}}))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

#[tokio::test]
async fn a_voorportaal_probing_fast_is_rate_limited_and_logged() {
    let dir = std::env::temp_dir().join(format!("gw-approaches-rl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let k1 = key_file(&dir, "top600", 1);
    let k2 = key_file(&dir, "cf", 2);
    let top600 = register(&dir, "top600", &k1, &[KNOWN], "Regieteam").await;
    let cf = register(&dir, "cf", &k2, &[KNOWN], "CF").await;
    let gw = gateway(
        &dir,
        &[("top600", &top600, &k1), ("criminele-families", &cf, &k2)],
        Some(5),
    );
    for _ in 0..5 {
        assert_eq!(check(&gw, "vp.probe", NOBODY).await.0, 200);
    }
    let (s, v) = check(&gw, "vp.probe", NOBODY).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["type"].as_str().unwrap().ends_with("/rate-limited"));
    // Another staff member is not held up by the first.
    assert_eq!(check(&gw, "vp.other", NOBODY).await.0, 200);
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM log_records WHERE kind = 'check' AND problem = 'rate-limited' AND staff_id = 'vp.probe'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 1);
}
