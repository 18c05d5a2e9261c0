//! The storage key rotated while a load runs, through the real binary: `gateway keys
//! rotate-storage`, the serving gateway picking it up, re-sealing every row in logged steps and
//! retiring the old key once unused, with no request failing; on SQLite and PostgreSQL.

use crate::audit::scalar;
use crate::disclose::{call, case_with_records, include};
use crate::helpers::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(config: &str, url: &str, env: &[(&str, &str)]) -> (i32, Value) {
    let (code, out, err) = cli(
        &[
            "keys",
            "status",
            "--config",
            config,
            "--database-url",
            url,
            "--format",
            "json",
        ],
        env,
    );
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}")),
    )
}

async fn count(url: &str, sql: &str) -> i64 {
    scalar(url, &format!("SELECT CAST(({sql}) AS TEXT)"))
        .await
        .parse()
        .unwrap()
}

async fn rotation_under_load(url: String) {
    let config = pki().join("gateway.toml").to_str().unwrap().to_owned();
    // A ring of the test's own: the shared PKI's file stays as it is.
    let ring = scratch().join(format!("ring-{}.txt", uuid::Uuid::new_v4().simple()));
    std::fs::copy(pki().join("gateway/storage-identity.txt"), &ring).unwrap();
    let ring_s = ring.to_str().unwrap().to_owned();
    let env = [
        ("GATEWAY_DATABASE_URL", url.as_str()),
        ("GATEWAY_SECRETS_STORAGE_IDENTITY_FILE", ring_s.as_str()),
        ("GATEWAY_SECRETS_RELOAD_SECS", "1"),
    ];
    let gw = Gateway::spawn_on(&config, &env);
    let case = case_with_records(&gw, "999990081").await;
    include(&gw, &case).await;
    let (_, before) = status(&config, &url, &env);
    let old = before["storage"]["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        before["storage"]["keys"][0]["deposits"].as_i64().unwrap() > 0,
        "{before}"
    );

    // The load: the regisseur's disclosures, paced under the per-staff limit.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = gw.url("/v1/disclosures");
        let body =
            json!({"subject": {"ref": case.subject_ref}, "purpose": "regie", "case": case.id});
        tokio::spawn(async move {
            let c = client("rn");
            let t = token("rn", "reg.mulder", &["regisseur"]);
            while !stop.load(Ordering::SeqCst) {
                let r = c.post(&url).bearer_auth(&t).json(&body).send().await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap();
                        // Every answer opens for its receiver, whichever key sealed the deposits.
                        let p = decrypt("rn", v["payload"].as_str().unwrap());
                        assert!(p["products"].as_object().is_some_and(|m| !m.is_empty()));
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (code, out, err) = cli(&["keys", "rotate-storage", "--config", &config], &env);
    assert_eq!(code, 0, "{out}{err}");
    // Picked up, and every row re-sealed with the new key, while the load runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let new = loop {
        let (_, s) = status(&config, &url, &env);
        let keys = s["storage"]["keys"].as_array().unwrap().clone();
        let moved = keys.len() == 2
            && keys[1]["id"] == old.as_str()
            && keys[1]["deposits"] == 0
            && keys[1]["cases"] == 0
            && keys[0]["deposits"].as_i64().unwrap() > 0;
        if moved {
            break keys[0]["id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "not re-sealed: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A deposit now is sealed with the new key at once.
    let (s, v, _) = call(
        &gw,
        "politie",
        "bron",
        "bronsysteem",
        reqwest::Method::PUT,
        &format!("/v1/records/politie.registraties/{}", case.subject_ref),
        json!({"records": gateway::demo::records().into_iter().find(|(p, _)| *p == "politie.registraties").unwrap().1}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        scalar(&url, &format!("SELECT sealed_key FROM records WHERE subject_ref = '{}' AND product = 'politie.registraties'", case.subject_ref)).await,
        new
    );
    // The old key leaves the file; the gateway records its retirement.
    let text = std::fs::read_to_string(&ring).unwrap();
    let first_key = text
        .lines()
        .position(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let kept: Vec<&str> = text.lines().take(first_key + 1).collect();
    std::fs::write(&ring, kept.join("\n") + "\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&url, "SELECT COUNT(*) FROM log_records WHERE kind = 'keys' AND entry LIKE '%\"action\":\"retired\"%'").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the old key was not retired:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} answered, {failed} failed");
    assert!(ok > 20, "{ok} answered");
    eprintln!("storage key rotation under load: {ok} requests answered, {failed} failed");

    // One key left, sealing everything; the steps are in the log, which verifies.
    let (code, s) = status(&config, &url, &env);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["storage"]["keys"].as_array().unwrap().len(), 1, "{s}");
    let actions: Vec<String> = {
        let db = gateway::store::Db::connect(&url).await.unwrap();
        let mut v: Vec<String> = db
            .latest_key_entries(100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                serde_json::from_str::<Value>(&e).unwrap()["keys"]["action"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        v.reverse();
        v
    };
    assert_eq!(
        actions.first().map(String::as_str),
        Some("rotated"),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "resealed"), "{actions:?}");
    assert_eq!(
        actions.last().map(String::as_str),
        Some("retired"),
        "{actions:?}"
    );
    // A disclosure after the re-seal still names the digest its deposit entry recorded.
    let deposit = scalar(&url, "SELECT entry FROM log_records WHERE kind = 'deposit' AND entry LIKE '%ggd.screening%' ORDER BY seq DESC LIMIT 1").await;
    let disclosure = scalar(&url, "SELECT entry FROM log_records WHERE kind = 'disclosure' AND outcome = 'answered' ORDER BY seq DESC LIMIT 1").await;
    let deposit: Value = serde_json::from_str(&deposit).unwrap();
    let disclosure: Value = serde_json::from_str(&disclosure).unwrap();
    assert_eq!(
        disclosure["decision"]["sources"]["ggd.screening"]["sha256"],
        deposit["deposit"]["sealed_sha256"]
    );
    drop(gw);
    let (code, out, err) = cli(
        &[
            "audit",
            "verify",
            "--config",
            &config,
            "--database-url",
            &url,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn the_storage_key_rotates_under_load_on_sqlite() {
    rotation_under_load(sqlite_url("keys")).await;
}

#[tokio::test]
async fn the_storage_key_rotates_under_load_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    rotation_under_load(url).await;
}

/// The programme's officer POSTs `body` (a search by person, a report): the answer, 200.
async fn officer_body(gw: &Gateway, path: &str, body: Value) -> Value {
    let (s, text) = officer_post(gw, "oov", path, body).await;
    assert_eq!(s, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn pseudonym_rotation_under_load(url: String) {
    let config = pki().join("gateway.toml").to_str().unwrap().to_owned();
    let keyfile = scratch().join(format!("pseudonym-{}.key", uuid::Uuid::new_v4().simple()));
    std::fs::copy(pki().join("gateway/pseudonym.key"), &keyfile).unwrap();
    let keyfile_s = keyfile.to_str().unwrap().to_owned();
    let env = [
        ("GATEWAY_DATABASE_URL", url.as_str()),
        ("GATEWAY_SECRETS_PSEUDONYM_KEY_FILE", keyfile_s.as_str()),
        ("GATEWAY_SECRETS_RELOAD_SECS", "1"),
    ];
    let bsn = "999990111";
    let gw = Gateway::spawn_on(&config, &env);
    let case = case_with_records(&gw, bsn).await;
    include(&gw, &case).await;
    let (_, before) = status(&config, &url, &env);
    let old = before["pseudonym"]["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_subject = scalar(
        &url,
        &format!(
            "SELECT subject_pseudonym FROM cases WHERE id = '{}'",
            case.id
        ),
    )
    .await;

    // The load: disclosures by the regisseur and checks by BSN, which must keep finding the
    // person while the register is re-keyed.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (disclosures, checks) = (gw.url("/v1/disclosures"), gw.url("/v1/checks"));
        let body =
            json!({"subject": {"ref": case.subject_ref}, "purpose": "regie", "case": case.id});
        tokio::spawn(async move {
            let (rn, oov) = (client("rn"), client("oov"));
            let t = token("rn", "reg.mulder", &["regisseur"]);
            let m = token("oov", "map.1", &["melder-intake"]);
            while !stop.load(Ordering::SeqCst) {
                let d = rn
                    .post(&disclosures)
                    .bearer_auth(&t)
                    .json(&body)
                    .send()
                    .await;
                let c = oov
                    .post(&checks)
                    .bearer_auth(&m)
                    .json(&json!({"subject": {"bsn": bsn}, "purpose": "aanpak-check"}))
                    .send()
                    .await;
                let d_ok = d.is_ok_and(|r| r.status() == 200);
                let c_ok = match c {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap();
                        v["known"] == true
                    }
                    _ => false,
                };
                for good in [d_ok, c_ok] {
                    if good {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, out, err) = cli(&["keys", "rotate-pseudonym", "--config", &config], &env);
    assert_eq!(code, 0, "{out}{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = status(&config, &url, &env);
        let keys = s["pseudonym"]["keys"].as_array().unwrap().clone();
        if keys.len() == 2
            && keys[1]["id"] == old.as_str()
            && keys[1]["cases"] == 0
            && keys[0]["cases"] == 1
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not re-keyed: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new_subject = scalar(
        &url,
        &format!(
            "SELECT subject_pseudonym FROM cases WHERE id = '{}'",
            case.id
        ),
    )
    .await;
    assert_ne!(new_subject, old_subject);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The officer's search by BSN finds the person's entries under both keys, and so does the
    // art. 15 report.
    let found = officer_body(
        &gw,
        "/v1/audit/disclosures/search",
        json!({"subject": bsn, "limit": 1000}),
    )
    .await;
    let subjects: std::collections::BTreeSet<String> = found["items"]
        .as_array()
        .or_else(|| found.as_array())
        .unwrap()
        .iter()
        .filter_map(|i| {
            i["entry"]["data_subject"]
                .as_str()
                .or(i["data_subject"].as_str())
                .map(str::to_owned)
        })
        .collect();
    assert!(
        subjects.contains(&old_subject) && subjects.contains(&new_subject),
        "{subjects:?}"
    );
    let letter = officer_body(
        &gw,
        "/v1/audit/subjects/report",
        json!({"subject": {"bsn": bsn}}),
    )
    .await;
    let n = letter["disclosures"].as_array().unwrap().len();
    assert!(n > 4, "{letter}");

    // The old key leaves the file once the register no longer uses it: recorded as retired.
    let text = std::fs::read_to_string(&keyfile).unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&keyfile, kept.join("\n") + "\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&url, "SELECT COUNT(*) FROM log_records WHERE kind = 'keys' AND entry LIKE '%\"pseudonym\"%' AND entry LIKE '%\"retired\"%'").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the old key was not retired:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} answered, {failed} failed");
    assert!(ok > 20, "{ok} answered");
    eprintln!("pseudonym key rotation under load: {ok} requests answered, {failed} failed");
    let (code, s) = status(&config, &url, &env);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["pseudonym"]["keys"].as_array().unwrap().len(), 1, "{s}");
    // Issue 28: a proven report says what it cannot cover: the retired key's entries.
    let proven = officer_body(
        &gw,
        "/v1/audit/subjects/report",
        json!({"subject": {"bsn": bsn}, "prove": true}),
    )
    .await;
    let not_covered = proven["proof"]["not_covered"].as_array().unwrap();
    assert_eq!(not_covered.len(), 1, "{}", proven["proof"]["not_covered"]);
    assert!(not_covered[0]["seq"].as_i64().unwrap() > 0);
    drop(gw);
    let (code, out, err) = cli(
        &[
            "audit",
            "verify",
            "--config",
            &config,
            "--database-url",
            &url,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn the_pseudonym_key_rotates_under_load_on_sqlite() {
    pseudonym_rotation_under_load(sqlite_url("pseudonym-keys")).await;
}

#[tokio::test]
async fn the_pseudonym_key_rotates_under_load_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    pseudonym_rotation_under_load(url).await;
}

async fn log_key_rotation_under_load(url: String) {
    let config = pki().join("gateway.toml").to_str().unwrap().to_owned();
    let dir = scratch().join(format!("logkey-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("log-ed25519.key");
    std::fs::copy(pki().join("gateway/log-ed25519.key"), &key).unwrap();
    let retired = dir.join("log-retired.vkeys");
    let (key_s, retired_s) = (
        key.to_str().unwrap().to_owned(),
        retired.to_str().unwrap().to_owned(),
    );
    let env = [
        ("GATEWAY_DATABASE_URL", url.as_str()),
        ("GATEWAY_SECRETS_LOG_KEY_FILE", key_s.as_str()),
        ("GATEWAY_SECRETS_RETIRED_LOG_VKEYS_FILE", retired_s.as_str()),
        ("GATEWAY_SECRETS_RELOAD_SECS", "1"),
        ("GATEWAY_AUDIT_CHECKPOINT_INTERVAL_SECS", "1"),
    ];
    let gw = Gateway::spawn_on(&config, &env);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let checks = gw.url("/v1/checks");
        tokio::spawn(async move {
            let oov = client("oov");
            let m = token("oov", "map.2", &["melder-intake"]);
            while !stop.load(Ordering::SeqCst) {
                let r = oov
                    .post(&checks)
                    .bearer_auth(&m)
                    .json(&json!({"subject": {"bsn": "111222333"}, "purpose": "aanpak-check"}))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == 200) {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, out, err) = cli(&["audit", "rotate-key", "--config", &config], &env);
    assert_eq!(code, 0, "{out}{err}");
    let (_, vkeys, _) = cli(
        &["audit", "vkey", "--config", &config, "--format", "json"],
        &env,
    );
    let vkeys: Value = serde_json::from_str(&vkeys).unwrap();
    let new = gateway::log::checkpoint::KeySet::parse(vkeys["current"].as_str().unwrap()).unwrap();
    // Recorded, and the served checkpoint is signed with the new key, while the load runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = count(
            &url,
            "SELECT COUNT(*) FROM log_records WHERE kind = 'log-key'",
        )
        .await;
        let note = crate::audit::checkpoint(&gw).await;
        if recorded == 1 && new.verify(&note).is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not rotated:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} answered, {failed} failed");
    assert!(ok > 20, "{ok} answered");
    eprintln!("log key rotation under load: {ok} requests answered, {failed} failed");
    drop(gw);
    // Every checkpoint verifies: those before with the retired key, those after with the new.
    let (code, out, err) = cli(
        &[
            "audit",
            "verify",
            "--config",
            &config,
            "--database-url",
            &url,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn the_log_key_rotates_under_load_on_sqlite() {
    log_key_rotation_under_load(sqlite_url("log-keys")).await;
}

#[tokio::test]
async fn the_log_key_rotates_under_load_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    log_key_rotation_under_load(url).await;
}
