//! The oblivious aanpak-check across approaches (issue 38): real HTTPS registers of two other
//! approaches (Top600, Criminele Families) with certificates of the example PKI, each with its
//! own POPRF key and signed published set; known in several, known nowhere, one down
//! (unavailable, never "not known"), hostile registers refused and recorded, nothing a register
//! receives computable from a BSN, the other direction, the tighter per-staff limit.

use crate::helpers::*;
use gateway::register::Quota;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const KNOWN: &str = "999993331";
const NOBODY: &str = "999992223";

struct Register {
    state: Arc<gateway::register::Register>,
    table: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Register {
    fn down(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Its `[[approach]]` table with one key replaced.
    fn table_with(&self, key: &str, value: &str) -> String {
        self.table
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key} = ")) {
                    format!("{key} = \"{value}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}

/// A register of approach `id` holding `bsns`, valid `valid_secs`, with `quota`.
async fn register_with(id: &str, bsns: &[&str], quota: Quota, valid_secs: i64) -> Register {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (_, state, table) = gateway::demo::start_register(pki(), id, bsns, quota, valid_secs, rx)
        .await
        .unwrap();
    Register {
        state,
        table,
        stop: Some(tx),
    }
}

async fn register(id: &str, bsns: &[&str]) -> Register {
    register_with(id, bsns, Quota::default(), 35 * 86_400).await
}

/// A gateway whose covenant names both approaches (and `checks`, the per-staff limit) and
/// whose configuration has these `[[approach]]` tables.
fn gateway(dir: &Path, tables: &[String], checks: Option<u32>) -> Gateway {
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
    let approaches = tables.concat();
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

/// The `check` part of the newest check entry.
async fn last_check(url: &str) -> Value {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let (e,): (String,) = sqlx::query_as(
        "SELECT entry FROM log_records WHERE kind = 'check' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    serde_json::from_str::<Value>(&e).unwrap()["check"].clone()
}

/// How many checks of `staff` were refused as rate limited.
async fn rate_limited(url: &str, staff: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM log_records WHERE kind = 'check' AND problem = 'rate-limited' AND staff_id = $1",
    )
    .bind(staff)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_oblivious_to_every_register_and_never_sends_anything_computable_from_a_bsn() {
    let dir = std::env::temp_dir().join(format!("gw-approaches-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut top600 = register("top600", &[KNOWN, "111222333"]).await;
    let cf = register("criminele-families", &["111222333"]).await;
    let gw = gateway(&dir, &[top600.table.clone(), cf.table.clone()], None);

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
    assert_eq!(t["contact"], "Regieteam Top600 (gemeente)");
    // The same person again: known again.
    let (_, v) = check(&gw, "vp.1", KNOWN).await;
    assert_eq!(status(&v, "top600"), "known");

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

    // What the registers received: one blinded element per check, a fresh random group element
    // each time (the same BSN twice gives two different ones), and nothing else.
    let (a, b) = (top600.seen(), cf.seen());
    assert_eq!((a.len(), b.len()), (3, 3), "{a:?} {b:?}");
    let blinded: Vec<String> = a
        .iter()
        .chain(&b)
        .map(|r| {
            let body: Value = serde_json::from_str(r.strip_prefix("/evaluate ").unwrap()).unwrap();
            assert_eq!(
                body.as_object().unwrap().keys().collect::<Vec<_>>(),
                vec!["blinded", "epoch"],
                "{r}"
            );
            for bsn in [KNOWN, NOBODY] {
                assert!(!r.contains(bsn), "a BSN reached a register: {r}");
            }
            body["blinded"].as_str().unwrap().to_owned()
        })
        .collect();
    let distinct: std::collections::HashSet<&String> = blinded.iter().collect();
    assert_eq!(
        distinct.len(),
        blinded.len(),
        "a blinded element repeated: {blinded:?}"
    );
    // The entry keeps the outcome and the epochs, no value a register could match.
    let c = last_check(&gw.database_url).await;
    assert_eq!(
        c["approaches"],
        json!({"iPGA-R": "not-known", "top600": "not-known", "criminele-families": "not-known"})
    );
    assert!(c["epochs"]["top600"].as_str().unwrap().len() == 7, "{c}");
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gw.database_url)
        .await
        .unwrap();
    for r in &blinded {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM log_records WHERE entry LIKE '%' || $1 || '%'")
                .bind(r)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(n, 0, "a blinded element in the log");
    }
    drop(conn);

    // Top600 down: unavailable with its cause, never "not known"; the others answered. The
    // set it published stays usable (fetched within five minutes), the evaluation cannot be.
    top600.down();
    let (s, v) = check(&gw, "vp.1", KNOWN).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(status(&v, "top600"), "unavailable");
    assert_eq!(status(&v, "iPGA-R"), "known");
    assert_eq!(status(&v, "criminele-families"), "not-known");
    assert_eq!(v["complete"], false);
    let c = last_check(&gw.database_url).await;
    assert_eq!(c["unavailable"], json!({"top600": "down"}), "{c}");

    // The other direction: Top600's register asks iPGA-R the same way, with the keys the
    // gateway's operator gives it to pin (`gateway approach pins`).
    let out = Command::new(BIN)
        .args(["approach", "pins", "--for", "top600", "--config"])
        .arg(pki().join("gateway.toml"))
        .env("GATEWAY_COVENANT", covenant_with_approaches(&dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pins: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    let public = hex::decode(pins["oprf_public"].as_str().unwrap()).unwrap();
    let verifier =
        gateway::log::checkpoint::NoteVerifier::from_vkey(pins["set_vkey"].as_str().unwrap())
            .unwrap();
    let as_top600 = |partner: &'static str, approach: &'static str| {
        let c = client(partner);
        let t = token(
            partner,
            "top600.register",
            &[if partner == "oov" {
                "melder-intake"
            } else {
                "voorportaal"
            }],
        );
        (c, t, approach)
    };
    let (c, t, _) = as_top600("oov", "top600");
    let r = c
        .get(gw.url("/v1/checks/set?approach=top600"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let note = r.text().await.unwrap();
    let now = gateway::clock::Clock::now(&gateway::clock::SystemClock);
    let set =
        gateway::oprf::PublishedSet::verify(&note, &verifier, "iPGA-R", now, 1 << 17).unwrap();
    assert_eq!(set.members.len(), gateway::oprf::MIN_SET, "padded");
    let info = gateway::oprf::info("iPGA-R", &set.epoch);
    for (bsn, known) in [(KNOWN, true), (NOBODY, false)] {
        let b = gateway::oprf::Blinded::new(bsn.as_bytes(), &mut gateway::oprf::SystemRng).unwrap();
        let r = c
            .post(gw.url("/v1/checks/evaluate"))
            .bearer_auth(&t)
            .json(&json!({"approach": "top600", "epoch": set.epoch.as_str(), "blinded": hex::encode(b.message())}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let e: Value = r.json().await.unwrap();
        let m = b
            .finish(
                bsn.as_bytes(),
                &hex::decode(e["evaluated"].as_str().unwrap()).unwrap(),
                &hex::decode(e["proof"].as_str().unwrap()).unwrap(),
                &public,
                &info,
            )
            .unwrap();
        assert_eq!(set.contains(&m), known, "{bsn}");
    }
    // The entry names the asking approach and the epoch, no subject.
    let c2 = last_check(&gw.database_url).await;
    assert_eq!(c2["register_for"], "top600", "{c2}");
    // Only the partner that runs the approach may ask as it; an unknown approach is refused.
    for (partner, approach, status, problem) in [
        ("politie", "top600", 403, "/approach-not-yours"),
        ("oov", "top400", 422, "/approach-unknown"),
    ] {
        let (c, t, _) = as_top600(partner, approach);
        let r = c
            .post(gw.url("/v1/checks/evaluate"))
            .bearer_auth(&t)
            .json(&json!({"approach": approach, "epoch": set.epoch.as_str(), "blinded": hex::encode([1u8; 32])}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let v: Value = r.json().await.unwrap();
        assert!(v["type"].as_str().unwrap().ends_with(problem), "{v}");
    }
}

/// The e2e covenant with both approaches, for `approach pins`.
fn covenant_with_approaches(dir: &Path) -> std::path::PathBuf {
    let mut cov = std::fs::read_to_string(covenant_path()).unwrap();
    cov.push_str("\n[[approach]]\nid = \"top600\"\nname = \"Top600\"\npartner = \"oov\"\ncontact = \"Regieteam Top600 (gemeente)\"\n");
    let p = dir.join("covenant-pins.toml");
    std::fs::write(&p, cov).unwrap();
    p
}

/// A hostile or broken register is `unavailable`, with its cause in the entry, never "not known".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_register_is_unavailable_and_recorded_with_its_cause() {
    let dir = std::env::temp_dir().join(format!("gw-approaches-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = register("top600", &[KNOWN]).await;
    let honest = register("top600", &[KNOWN]).await;
    let stale = register_with("top600", &[KNOWN], Quota::default(), -1).await;
    let stingy = register_with(
        "top600",
        &[KNOWN],
        Quota {
            per_minute: 1,
            per_day: 10,
        },
        35 * 86_400,
    )
    .await;
    let cf = register("criminele-families", &[]).await;
    let other_public = other
        .table
        .lines()
        .find_map(|l| l.strip_prefix("oprf_public = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let other_vkey = other
        .table
        .lines()
        .find_map(|l| l.strip_prefix("set_vkey = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    for (table, cause, checks) in [
        // The register evaluates under a key other than the one pinned: the proof fails.
        (
            honest.table_with("oprf_public", &other_public),
            "bad-proof",
            1,
        ),
        // Its set is signed by a key other than the pinned one.
        (
            honest.table_with("set_vkey", &other_vkey),
            "set-unsigned",
            1,
        ),
        // Its set has expired.
        (stale.table.clone(), "set-stale", 1),
        // The gateway is over its quota there: the second check in a minute.
        (stingy.table.clone(), "over-quota", 2),
    ] {
        let gw = gateway(&dir, &[table, cf.table.clone()], None);
        let mut v = Value::Null;
        for _ in 0..checks {
            let (s, answer) = check(&gw, "vp.1", KNOWN).await;
            assert_eq!(s, 200, "{answer}");
            v = answer;
        }
        assert_eq!(status(&v, "top600"), "unavailable", "{cause}: {v}");
        assert_eq!(v["complete"], false);
        let c = last_check(&gw.database_url).await;
        assert_eq!(c["unavailable"], json!({"top600": cause}), "{c}");
    }
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
    let top600 = register("top600", &[KNOWN]).await;
    let cf = register("criminele-families", &[KNOWN]).await;
    let gw = gateway(&dir, &[top600.table.clone(), cf.table.clone()], Some(5));
    for _ in 0..5 {
        assert_eq!(check(&gw, "vp.probe", NOBODY).await.0, 200);
    }
    let (s, v) = check(&gw, "vp.probe", NOBODY).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["type"].as_str().unwrap().ends_with("/rate-limited"));
    // Another staff member is not held up by the first.
    assert_eq!(check(&gw, "vp.other", NOBODY).await.0, 200);
    assert_eq!(rate_limited(&gw.database_url, "vp.probe").await, 1);

    // Top600's register asking iPGA-R is held to the same per-staff limit: 429 with
    // Retry-After, recorded.
    let (c, t) = (
        client("oov"),
        token("oov", "top600.register", &["melder-intake"]),
    );
    let epoch = gateway::oprf::Epoch::of(gateway::clock::Clock::now(&gateway::clock::SystemClock));
    let mut last = None;
    for _ in 0..6 {
        let b = gateway::oprf::Blinded::new(b"999993331", &mut gateway::oprf::SystemRng).unwrap();
        last = Some(
            c.post(gw.url("/v1/checks/evaluate"))
                .bearer_auth(&t)
                .json(&json!({"approach": "top600", "epoch": epoch.as_str(), "blinded": hex::encode(b.message())}))
                .send()
                .await
                .unwrap(),
        );
    }
    let r = last.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    assert_eq!(rate_limited(&gw.database_url, "top600.register").await, 1);
}

/// The register side as an operator runs it: `gateway approach key`, `publish` from a CSV and
/// `serve` over mutual TLS; the gateway pins what `key` printed and checks against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_run_with_the_cli_answers_the_gateway() {
    use std::io::BufRead;
    let dir = scratch().join(format!("register-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("top600-register.key");
    let out = Command::new(BIN)
        .args(["approach", "key", "--approach", "top600", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pins = String::from_utf8(out.stdout).unwrap();
    std::fs::write(
        dir.join("members.csv"),
        format!("bsn,naam\n{KNOWN},x\n123456789,bad\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["approach", "publish", "--approach", "top600", "--key"])
        .arg(&key)
        .arg("--out")
        .arg(dir.join("set.note"))
        .arg(dir.join("members.csv"))
        .output()
        .unwrap();
    // One line is no valid BSN: named by its line number only, and the exit says so.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 3") && !err.contains("123456789"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 members of top600"),
        "{out:?}"
    );
    std::fs::write(
        dir.join("register.toml"),
        format!(
            "approach = \"top600\"\nlisten = \"127.0.0.1:0\"\nkey_file = \"top600-register.key\"\nset_file = \"set.note\"\nca = {:?}\ncert = {:?}\nkey = {:?}\n[quota]\nper_minute = 100\nper_day = 1000\n",
            pki().join(gateway::pki::layout::CA),
            pki().join(gateway::pki::layout::SERVER_CERT),
            pki().join(gateway::pki::layout::SERVER_KEY),
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["approach", "serve", "--config"])
        .arg(dir.join("register.toml"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("https://")
        .next()
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let table = format!(
        "\n[[approach]]\nid = \"top600\"\nurl = \"https://{addr}\"\n{pins}timeout_ms = 1500\n"
    );
    let cf = register("criminele-families", &[]).await;
    let gw = gateway(&dir, &[table, cf.table.clone()], None);
    let (s, v) = check(&gw, "vp.1", KNOWN).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(status(&v, "top600"), "known", "{v}");
    let (_, v) = check(&gw, "vp.1", NOBODY).await;
    assert_eq!(status(&v, "top600"), "not-known", "{v}");
    let _ = child.kill();
    let _ = child.wait();
}
