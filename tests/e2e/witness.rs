//! A partner's witness (`gateway witness serve`, a real process) cosigning the gateway's real
//! checkpoints by the C2SP tlog-witness protocol: growth with consistency proofs, the old-size
//! conflict, a fork refused and kept as evidence, state that survives a restart, and
//! cosignatures checked by an independent implementation (Python `cryptography`).

use crate::audit::{checkpoint, entries, get, h, log_key};
use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gateway::log::checkpoint::{Checkpoint, NoteVerifier};
use gateway::log::cosign::CosignVerifier;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running witness, killed on drop.
struct WitnessProcess {
    child: Child,
    addr: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_witness(dir: &Path) -> WitnessProcess {
    let mut child = Command::new(BIN)
        .args(["witness", "serve", "--config"])
        .arg(dir.join("witness.toml"))
        .env("GATEWAY_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    WitnessProcess {
        child,
        addr: v["witness"].as_str().unwrap().to_owned(),
    }
}

fn init_witness(dir: &Path, name: &str) -> String {
    init_witness_on(dir, name, "127.0.0.1:0")
}

fn init_witness_on(dir: &Path, name: &str, listen: &str) -> String {
    let out = Command::new(BIN)
        .args(["witness", "init"])
        .arg(dir)
        .args([
            "--name",
            name,
            "--log-vkey",
            &log_key().vkey(),
            "--listen",
            listen,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn add(w: &WitnessProcess, old: u64, proof: &[String], note: &str) -> (u16, String, String) {
    let mut body = format!("old {old}\n");
    for p in proof {
        body.push_str(p);
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    let r = reqwest::Client::new()
        .post(format!("http://{}/add-checkpoint", w.addr))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// The consistency proof from `from` to `to`, as base64 lines.
async fn proof(gw: &Gateway, from: u64, to: u64) -> Vec<String> {
    let c = get(gw, &format!("/v1/audit/consistency?from={from}&to={to}")).await;
    c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| B64.encode(h(x.as_str().unwrap())))
        .collect()
}

/// Checks a cosignature with Python's `cryptography`, from the C2SP text alone.
fn python_verifies(vkey: &str, note_body: &str, line: &str) -> Option<bool> {
    const SCRIPT: &str = r#"
import base64, hashlib, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
vkey, body, line = sys.argv[1], sys.argv[2], sys.argv[3]
name, keyid, key = vkey.split("+", 2)
key = base64.b64decode(key)
assert key[0] == 0x04, "cosignature/v1 key"
pub = key[1:]
assert hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4].hex() == keyid
assert line.startswith("\u2014 " + name + " ")
blob = base64.b64decode(line.rsplit(" ", 1)[1])
assert blob[:4].hex() == keyid
ts = struct.unpack(">Q", blob[4:12])[0]
msg = b"cosignature/v1\ntime %d\n" % ts + body.encode()
Ed25519PublicKey.from_public_bytes(pub).verify(blob[12:], msg)
print("ok", ts)
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT, vkey, note_body, line.trim_end()])
        .output()
        .ok()?;
    if String::from_utf8_lossy(&out.stderr).contains("ModuleNotFoundError") {
        return None;
    }
    Some(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ok "))
}

#[tokio::test]
async fn a_witness_cosigns_only_what_is_consistent_and_never_goes_back() {
    let gw = Gateway::start();
    // Four entries: the bootstrap, the start no witness checked (this covenant names none), two
    // checks.
    entries(&gw, 2).await;
    let dir = std::env::temp_dir().join(format!("gw-witness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let vkey = init_witness(&dir, "witness.politie.ipga-r.example");
    let verifier = CosignVerifier::from_vkey(&vkey).unwrap();
    let w = start_witness(&dir);

    // First contact: old 0, no proof.
    let note4 = checkpoint(&gw).await;
    let (s, _, line) = add(&w, 0, &[], &note4).await;
    assert_eq!(s, 200, "{line}");
    assert!(line.starts_with("\u{2014} witness.politie.ipga-r.example "));
    let cosigned = format!("{note4}{line}");
    assert!(verifier.verify(&cosigned).unwrap().is_some());
    let body4 = note4.split_once("\n\n").unwrap().0.to_owned() + "\n";
    match python_verifies(&vkey, &body4, &line) {
        Some(ok) => assert!(ok, "Python's cryptography verifies the cosignature"),
        None => assert!(
            std::env::var_os("CI").is_none(),
            "CI checks cosignatures with Python's cryptography"
        ),
    }

    // The log grows: cosigned with a consistency proof from the size the witness holds.
    entries(&gw, 4).await;
    let note8 = checkpoint(&gw).await;
    let (s, _, line8) = add(&w, 4, &proof(&gw, 4, 8).await, &note8).await;
    assert_eq!(s, 200, "{line8}");
    // From the wrong old size: 409, and the size the witness holds.
    let (s, ct, body) = add(&w, 4, &proof(&gw, 4, 8).await, &note8).await;
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "8\n")
    );
    // The same tree with another per-subject map (issue 28): the log's key signed two
    // different checkpoints of size 8, a fork; refused and kept, and the same one again is fine.
    let mut other = NoteVerifier::from_vkey(&log_key().vkey())
        .unwrap()
        .verify(&note8)
        .unwrap();
    assert!(
        other
            .extensions
            .iter()
            .any(|l| l.starts_with("ipga-r/subjects ")),
        "{note8}"
    );
    other.extensions = vec![format!("ipga-r/subjects 0 {}", B64.encode([0u8; 32]))];
    let (s, _, _) = add(&w, 8, &[], &log_key().sign(&other)).await;
    assert_eq!(s, 422, "a second map for the same tree is refused");
    let (s, _, again) = add(&w, 8, &[], &note8).await;
    assert_eq!(s, 200, "{again}");

    // A fork: the log's key signs a checkpoint of the same size with another root (an entry
    // changed and every hash recomputed). Refused, 422.
    let forked = log_key().sign(&Checkpoint {
        origin: "gateway.ipga-r.example/disclosures".into(),
        size: 8,
        root: [7; 32],
        extensions: Vec::new(),
    });
    let (s, _, _) = add(&w, 8, &[], &forked).await;
    assert_eq!(s, 422);
    // Not signed by the log: 403; an unknown log: 404.
    let stranger =
        gateway::log::checkpoint::LogKey::from_seed("gateway.ipga-r.example/disclosures", &[5; 32])
            .unwrap()
            .sign(&Checkpoint {
                origin: "gateway.ipga-r.example/disclosures".into(),
                size: 9,
                root: [1; 32],
                extensions: Vec::new(),
            });
    assert_eq!(add(&w, 8, &[], &stranger).await.0, 403);
    let other_log = gateway::log::checkpoint::LogKey::from_seed("other.example/log", &[5; 32])
        .unwrap()
        .sign(&Checkpoint {
            origin: "other.example/log".into(),
            size: 1,
            root: [1; 32],
            extensions: Vec::new(),
        });
    assert_eq!(add(&w, 0, &[], &other_log).await.0, 404);

    // Monitors read the latest cosigned checkpoint: the log's signature and the witness's.
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        "gateway.ipga-r.example/disclosures",
    ));
    let latest = reqwest::get(format!("http://{}/{hash}/checkpoint", w.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(latest.starts_with(note8.split_once("\n\n").unwrap().0));
    assert!(verifier.verify(&latest).unwrap().is_some());
    assert!(
        gateway::log::checkpoint::NoteVerifier::from_vkey(&log_key().vkey())
            .unwrap()
            .verify(&latest)
            .is_ok()
    );

    // Issue 30: a checkpoint with an extension line is cosigned over its whole body, and the
    // monitor serves it as the log signed it; two spellings of a size are never both taken.
    entries(&gw, 2).await;
    let note10 = checkpoint(&gw).await;
    let (body10, _) = note10.split_once("\n\n").unwrap();
    let with_ext = log_key().sign_body(&format!("{body10}\nsubject-index-root AAAA\n"));
    let spelled = |size: &str| {
        log_key().sign_body(&format!(
            "{}\n{size}\n{}\n",
            "gateway.ipga-r.example/disclosures",
            body10.rsplit('\n').next().unwrap()
        ))
    };
    for bad in [spelled("+10"), spelled("010")] {
        assert_eq!(add(&w, 8, &proof(&gw, 8, 10).await, &bad).await.0, 400);
    }
    let nul = log_key().sign_body(&format!("{body10}\nx\u{0}y\n"));
    assert_eq!(add(&w, 8, &proof(&gw, 8, 10).await, &nul).await.0, 400);
    let (s, _, line10) = add(&w, 8, &proof(&gw, 8, 10).await, &with_ext).await;
    assert_eq!(s, 200, "{line10}");
    assert!(
        verifier
            .verify(&format!("{with_ext}{line10}"))
            .unwrap()
            .is_some()
    );
    let stripped = format!("{body10}\n\n{line10}");
    assert!(
        verifier.verify(&stripped).map_or(true, |t| t.is_none()),
        "the cosignature covers the extension line"
    );
    let latest = reqwest::get(format!("http://{}/{hash}/checkpoint", w.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(latest.starts_with(&with_ext), "{latest}");
    assert!(
        gateway::log::checkpoint::NoteVerifier::from_vkey(&log_key().vkey())
            .unwrap()
            .verify(&latest)
            .is_ok(),
        "the log's signature verifies over the served text"
    );

    // Restarted, it remembers: a rewound log (old 0, the first checkpoint again) is refused.
    drop(w);
    let w = start_witness(&dir);
    let (s, _, body) = add(&w, 0, &[], &note4).await;
    assert_eq!((s, body.as_str()), (409, "10\n"));
    // The forked checkpoints are kept as evidence: the other root, and the other map.
    use sqlx::Connection;
    let mut db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.join("witness.db").display()))
            .await
            .unwrap();
    let evidence: i64 = sqlx::query_scalar("SELECT count(*) FROM witness_evidence")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(evidence, 2);
    // And its state cannot be set back, even by hand.
    let back = sqlx::query("UPDATE witness_latest SET size = 4")
        .execute(&mut db)
        .await;
    assert!(back.is_err(), "a witness never goes back");
}

/// A free loopback port (bound and released), so that a witness restarts on the same address.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Three partners' witnesses in the covenant, quorum two, blind after `bound` seconds.
fn covenant_with_witnesses(dir: &Path, witnesses: &[(&str, String, String)], bound: u64) -> String {
    let mut text = std::fs::read_to_string(covenant_path()).unwrap();
    for (partner, name_vkey, addr) in witnesses {
        let name = name_vkey.split('+').next().unwrap();
        text.push_str(&format!(
            "\n[[witness]]\npartner = \"{partner}\"\nname = \"{name}\"\nvkey = \"{name_vkey}\"\nurl = \"http://{addr}/\"\n"
        ));
    }
    text.push_str(&format!(
        "\n[witnessing]\nquorum = 2\nblind_after_secs = {bound}\n"
    ));
    let path = dir.join("covenant-witnessed.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The served checkpoint's cosigners among `verifiers`.
async fn cosigners(gw: &Gateway, verifiers: &[CosignVerifier]) -> Vec<String> {
    let note = checkpoint(gw).await;
    gateway::log::cosign::witnessed(&note, verifiers)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Polls until `cond` holds (at most `secs` seconds).
async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn check_status(gw: &Gateway) -> (u16, String) {
    let r = client("oov")
        .post(gw.url("/v1/checks"))
        .bearer_auth(token("oov", "map.w", &["melder-intake"]))
        .json(&serde_json::json!({"subject": {"bsn": "111222333"}, "purpose": "aanpak-check"}))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.text().await.unwrap())
}

/// SIGTERM, off the test's runtime thread, so that its clients can close when the gateway says
/// goodbye; the gateway must end cleanly.
async fn stop(mut gw: Gateway) {
    let status =
        tokio::task::spawn_blocking(move || gw.terminate(std::time::Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(status.map(|s| s.success()), Some(true));
}

/// Runs `gateway serve` expecting it to refuse to start; returns its stderr.
pub(crate) fn refused_start(config: &str, database_url: &str, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["serve", "--config", config, "--allow-example-pki"])
        .args(extra)
        .env("GATEWAY_LISTEN", "127.0.0.1:0")
        .env("GATEWAY_HEALTH_LISTEN", "127.0.0.1:0")
        .env("GATEWAY_DATABASE_URL", database_url)
        .env("GATEWAY_LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the gateway started");
    assert!(out.stdout.is_empty(), "it printed a ready line");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A partner's witness in a test: partner, vkey, address, directory.
type W = (&'static str, String, String, std::path::PathBuf);

/// Three witnesses (politie, om, rn) initialised, a covenant naming them with quorum two and
/// blind bound `bound`, and a gateway configuration using it.
fn witnessed_setup(tag: &str, bound: u64) -> (std::path::PathBuf, Vec<W>, String) {
    let root = std::env::temp_dir().join(format!("gw-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut ws = Vec::new();
    for partner in ["politie", "om", "rn"] {
        let dir = root.join(partner);
        let addr = free_addr();
        let vkey = init_witness_on(&dir, &format!("witness.{partner}.ipga-r.example"), &addr);
        ws.push((partner, vkey, addr, dir));
    }
    let spec: Vec<(&str, String, String)> =
        ws.iter().map(|w| (w.0, w.1.clone(), w.2.clone())).collect();
    let covenant = covenant_with_witnesses(&root, &spec, bound);
    (root, ws, config_with_covenant(&covenant, tag))
}

/// The shared gateway configuration with another covenant, written beside the example PKI
/// (whose key files it names relative to itself); its path.
fn config_with_covenant(covenant: &str, tag: &str) -> String {
    let text = std::fs::read_to_string(pki().join("gateway.toml")).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("covenant = ") {
                format!("covenant = {covenant:?}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = pki().join(format!("gateway-{tag}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn three_partners_witness_the_log_with_a_quorum_of_two() {
    let (root, ws, config) = witnessed_setup("witnesses", 4);
    let verifiers: Vec<CosignVerifier> = ws
        .iter()
        .map(|w| CosignVerifier::from_vkey(&w.1).unwrap())
        .collect();
    let mut procs: Vec<Option<WitnessProcess>> =
        ws.iter().map(|w| Some(start_witness(&w.3))).collect();
    let db = sqlite_url("witnessed");
    let env = [
        ("GATEWAY_DATABASE_URL", db.as_str()),
        ("GATEWAY_AUDIT_CHECKPOINT_INTERVAL_SECS", "1"),
    ];
    let gw = Gateway::spawn_on(&config, &env);

    // All three cosign; the served checkpoint carries the log's signature and theirs.
    entries(&gw, 2).await;
    eventually(10, "three cosignatures", || async {
        cosigners(&gw, &verifiers).await.len() == 3
    })
    .await;
    let note = checkpoint(&gw).await;
    let body = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
    for w in &ws {
        let name = w.1.split('+').next().unwrap();
        let line = note
            .lines()
            .find(|l| l.starts_with(&format!("\u{2014} {name} ")))
            .unwrap();
        if let Some(ok) = python_verifies(&w.1, &body, line) {
            assert!(ok, "Python's cryptography verifies {line}");
        }
    }
    // An online backup now (the gateway keeps serving), encrypted to the operator's age key.
    let operator = age::x25519::Identity::generate();
    let backup_dir = root.join("backup");
    std::fs::create_dir_all(&backup_dir).unwrap();
    let identity_file = backup_dir.join("operator.key");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&identity_file, operator.to_string().expose_secret()).unwrap();
    }
    let backup_file = backup_dir.join("gateway.db.age");
    let out = Command::new(BIN)
        .args([
            "backup",
            "--config",
            &config,
            "--database-url",
            &db,
            "--output",
        ])
        .arg(&backup_file)
        .args(["--recipient", &operator.to_public().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(backup_dir.join("gateway.db.age.manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(manifest["log_size"].as_i64().unwrap() >= 3, "{manifest}");
    assert!(
        manifest["checkpoint"]
            .as_str()
            .unwrap()
            .contains("\u{2014} witness."),
        "{manifest}"
    );
    // The standard age tool decrypts it to a SQLite database.
    if let Ok(o) = Command::new("age")
        .args(["--decrypt", "--identity"])
        .arg(&identity_file)
        .arg(&backup_file)
        .output()
    {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout.starts_with(b"SQLite format 3\0"));
    }
    let old_backup = backup_dir.join("restored.db");
    let out = Command::new(BIN)
        .args(["restore", "--config", &config, "--identity"])
        .arg(&identity_file)
        .arg("--to")
        .arg(&old_backup)
        .arg(&backup_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the log matches its manifest"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A second restore to the same place is refused: nothing is overwritten.
    let again = Command::new(BIN)
        .args(["restore", "--config", &config, "--identity"])
        .arg(&identity_file)
        .arg("--to")
        .arg(&old_backup)
        .arg(&backup_file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let old_backup = old_backup.display().to_string();

    // One witness down: still witnessed by two, disclosures go on.
    procs[0] = None;
    entries(&gw, 2).await;
    eventually(10, "two cosignatures of the new checkpoint", || async {
        cosigners(&gw, &verifiers).await.len() == 2
    })
    .await;
    assert_eq!(check_status(&gw).await.0, 200);

    // Two down: answers go on until the bound, then stop with the documented problem.
    procs[1] = None;
    let (s, _) = check_status(&gw).await;
    assert_eq!(s, 200, "within the bound the log is not blind yet");
    eventually(15, "the log is blind", || async {
        check_status(&gw).await.0 == 503
    })
    .await;
    let (s, body) = check_status(&gw).await;
    assert_eq!(s, 503);
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        p["type"].as_str().unwrap().ends_with("/log-unwitnessed"),
        "{p}"
    );
    assert!(
        p["detail"].as_str().unwrap().contains("Only 1 of the 2"),
        "{p}"
    );
    let ready = reqwest::get(format!("http://{}/readyz", gw.health))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    let failed: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["witnesses"], "{ready}");

    // One returns: the quorum is back, and so are the answers, by themselves.
    procs[1] = Some(start_witness(&ws[1].3));
    eventually(15, "answers resume", || async {
        check_status(&gw).await.0 == 200
    })
    .await;
    let ready = reqwest::get(format!("http://{}/readyz", gw.health))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    stop(gw).await;

    // The old backup restored: the witnesses know a later checkpoint, so it does not serve.
    let err = refused_start(&config, &format!("sqlite://{old_backup}"), &[]);
    assert!(
        err.contains("a restored old backup or a rewound database"),
        "{err}"
    );
    // The override is for unreachable witnesses only: it does not let a rewound log serve.
    let err = refused_start(
        &config,
        &format!("sqlite://{old_backup}"),
        &["--without-witnesses", "drill"],
    );
    assert!(err.contains("a restored old backup"), "{err}");

    // No witness reachable: refused, unless the operator says why (and that is recorded).
    procs = vec![None, None, None];
    drop(procs);
    let err = refused_start(&config, &db, &[]);
    assert!(err.contains("--without-witnesses"), "{err}");
    let gw = Gateway::spawn_args(
        &config,
        &[("GATEWAY_DATABASE_URL", db.as_str())],
        &[
            "--without-witnesses",
            "network to all partners down (drill)",
        ],
    );
    // Started, and blind: nothing is disclosed without witnesses beyond the bound.
    eventually(15, "blind without witnesses", || async {
        check_status(&gw).await.0 == 503
    })
    .await;
    stop(gw).await;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT entry FROM log_records WHERE kind = 'witness-override'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].0.contains("network to all partners down (drill)"),
        "{}",
        rows[0].0
    );
    // Issue 37: every start with the witnesses' word is an entry naming the witnesses the
    // version in force names (`audit verify` below holds each to that version).
    let starts: Vec<(String,)> =
        sqlx::query_as("SELECT entry FROM log_records WHERE kind = 'start' ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(!starts.is_empty());
    for (s,) in &starts {
        let e: serde_json::Value = serde_json::from_str(s).unwrap();
        let mut named: Vec<&str> = e["start"]["witnesses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        named.sort_unstable();
        assert_eq!(
            named,
            [
                "witness.om.ipga-r.example",
                "witness.politie.ipga-r.example",
                "witness.rn.ipga-r.example"
            ],
            "{s}"
        );
    }
    drop(conn);

    // `audit verify` with the witnesses' keys says which checkpoints whom cosigned; a changed
    // cosignature fails it.
    let mut args: Vec<String> = [
        "audit",
        "verify",
        "--config",
        &config,
        "--database-url",
        &db,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for w in &ws {
        args.extend(["--witness".to_owned(), w.1.clone()]);
    }
    args.extend(["--quorum".to_owned(), "2".to_owned()]);
    let out = Command::new(BIN).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("cosigned by 3 (quorum 2): witness.om.ipga-r.example, witness.politie.ipga-r.example, witness.rn.ipga-r.example"), "{text}");
    assert!(text.contains("witnessed: "), "{text}");
    let handle = gateway::store::Db::connect(&db).await.unwrap();
    handle
        .execute_unchecked("DROP TRIGGER log_cosignatures_append_only_u")
        .await
        .unwrap();
    handle
        .execute_unchecked(
            "UPDATE log_cosignatures SET line = substr(line, 1, length(line) - 9) || 'AAAAAAAA' || substr(line, -1) WHERE rowid = (SELECT MIN(rowid) FROM log_cosignatures)",
        )
        .await
        .unwrap();
    let out = Command::new(BIN).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("does not verify"), "{err}");
}

/// Runs `gateway monitor --once`; returns its exit code and output.
fn monitor_once(config: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["monitor", "--once", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Takes the stopped gateway's SQLite log back to the checkpoint of size `to`, consistently:
/// entries, checkpoints and cosignatures after it removed, the head set to it. What someone
/// with the database's owner rights can do; `audit verify` alone cannot tell.
async fn rewind(url: &str, to: i64) {
    let db = gateway::store::Db::connect(url).await.unwrap();
    for t in [
        "log_leaves_append_only_d",
        "log_records_append_only_d",
        "log_products_append_only_d",
        "log_checkpoints_append_only_d",
        "log_cosignatures_append_only_d",
        "log_subject_entries_append_only_d",
        "log_tree_head_only_grows",
    ] {
        db.execute_unchecked(&format!("DROP TRIGGER IF EXISTS {t}"))
            .await
            .unwrap();
    }
    for sql in [
        format!("DELETE FROM log_products WHERE seq > {to}"),
        format!("DELETE FROM log_records WHERE seq > {to}"),
        format!("DELETE FROM log_leaves WHERE seq > {to}"),
        format!("DELETE FROM log_checkpoints WHERE size > {to}"),
        format!("DELETE FROM log_cosignatures WHERE size > {to}"),
        format!("DELETE FROM log_subject_entries WHERE seq > {to}"),
        format!("DELETE FROM log_nodes WHERE (idx + 1) << height > {to}"),
        format!(
            "UPDATE log_tree_head SET size = {to}, chain_hash = (SELECT chain_hash FROM log_leaves WHERE seq = {to}), root = (SELECT root FROM log_checkpoints WHERE size = {to})"
        ),
    ] {
        db.execute_unchecked(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test]
async fn a_partners_monitor_checks_receipts_and_reports_a_rewind_and_a_fork() {
    let (root, ws, config) = witnessed_setup("monitor", 3600);
    let mut procs: Vec<Option<WitnessProcess>> =
        ws.iter().map(|w| Some(start_witness(&w.3))).collect();
    let db = sqlite_url("monitored");
    let env = [
        ("GATEWAY_DATABASE_URL", db.as_str()),
        ("GATEWAY_AUDIT_CHECKPOINT_INTERVAL_SECS", "1"),
    ];
    let gw = Gateway::spawn_on(&config, &env);
    let verifiers: Vec<CosignVerifier> = ws
        .iter()
        .map(|w| CosignVerifier::from_vkey(&w.1).unwrap())
        .collect();

    // The partner keeps the receipt of every answer it gets.
    let receipts = root.join("receipts");
    std::fs::create_dir_all(&receipts).unwrap();
    for (i, a) in entries(&gw, 3).await.iter().enumerate() {
        let r = a["audit_receipt"]
            .as_str()
            .expect("a receipt with every check");
        assert!(r.contains("/receipt/v1\nseq "), "{r}");
        std::fs::write(receipts.join(format!("check-{i}.receipt")), r).unwrap();
    }
    eventually(10, "the quorum cosigns", || async {
        cosigners(&gw, &verifiers).await.len() >= 2
    })
    .await;

    // The monitor: the partner's certificate and token, the pinned keys, the receipts.
    let token_file = root.join("token.jwt");
    std::fs::write(&token_file, token("politie", "monitor", &["voorportaal"])).unwrap();
    let mon_path = root.join("monitor.toml");
    let write_monitor = |api: &str| {
        let mut mon = format!(
            "gateway = \"https://{}\"\nca = {:?}\ncert = {:?}\nkey = {:?}\ntoken_file = {:?}\nlog_vkeys = [{:?}]\nquorum = 2\nstate = \"monitor-state.json\"\nreceipts = \"receipts\"\n",
            api,
            pki().join("ca.pem"),
            pki().join("politie/client.pem"),
            pki().join("politie/client.key"),
            token_file,
            log_key().vkey(),
        );
        for w in &ws {
            let name = w.1.split('+').next().unwrap();
            mon.push_str(&format!(
                "\n[[witness]]\nname = \"{name}\"\nvkey = \"{}\"\nurl = \"http://{}/\"\n",
                w.1, w.2
            ));
        }
        std::fs::write(&mon_path, mon).unwrap();
    };
    write_monitor(&gw.api);
    let (code, out) = monitor_once(&mon_path);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("receipts: 3 included"), "{out}");
    assert!(out.contains("OK: the log only grew"), "{out}");
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("monitor-state.json")).unwrap())
            .unwrap();
    let seen = before["size"].as_i64().unwrap();

    // A receipt the gateway did not sign is reported.
    std::fs::write(
        receipts.join("forged.receipt"),
        std::fs::read_to_string(receipts.join("check-0.receipt"))
            .unwrap()
            .replace("\nseq ", "\nseq 1"),
    )
    .unwrap();
    let (code, out) = monitor_once(&mon_path);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BAD RECEIPT: forged.receipt"), "{out}");
    std::fs::remove_file(receipts.join("forged.receipt")).unwrap();

    // The operator rewinds the database to its first checkpoint while the witnesses are out of
    // reach, and starts it with the override: `audit verify` alone says intact, the monitor
    // does not.
    stop(gw).await;
    let witness_size: u64 = {
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            "gateway.ipga-r.example/disclosures",
        ));
        let note = reqwest::get(format!("http://{}/{hash}/checkpoint", ws[0].2))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        note.lines().nth(1).unwrap().parse().unwrap()
    };
    procs.iter_mut().for_each(|p| *p = None);
    // Back to the start's checkpoint (the bootstrap and the start entry): the override's entry
    // then takes the first receipt's sequence number.
    rewind(&db, 2).await;
    let verify = Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--config",
            &config,
            "--database-url",
            &db,
        ])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let gw = Gateway::spawn_args(&config, &env, &["--without-witnesses", "rewind drill"]);
    write_monitor(&gw.api);
    let (code, out) = monitor_once(&mon_path);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("REWIND: this monitor saw the log at size {seen}")),
        "{out}"
    );
    assert!(
        out.contains("MISSING ENTRY") || out.contains("LATE INCLUSION"),
        "{out}"
    );
    // And the per-subject map lost the people the removed entries were about (issue 28).
    assert!(out.contains("SUBJECTS: the per-subject map held "), "{out}");
    println!("monitor on a rewound log:\n{out}");

    // The rewound log grows past what the witnesses saw: a fork. They refuse to cosign it, and
    // the monitor reports it.
    let grow = usize::try_from(witness_size).unwrap() + 2;
    entries(&gw, grow).await;
    let _ = checkpoint(&gw).await;
    procs = ws.iter().map(|w| Some(start_witness(&w.3))).collect();
    let log = gw.wait_log(&["inconsistent with the one it cosigned"]);
    assert!(
        log.contains("inconsistent with the one it cosigned"),
        "{log}"
    );
    assert!(cosigners(&gw, &verifiers).await.is_empty());
    let (code, out) = monitor_once(&mon_path);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FORK: the served log is not an extension of the checkpoint of size"),
        "{out}"
    );
    assert!(
        out.contains("witness witness.politie.ipga-r.example saw"),
        "{out}"
    );
    println!("monitor on a forked log:\n{out}");

    // Continuously: the same finding as an error log line and as a metric.
    let metrics_addr = free_addr();
    let text = std::fs::read_to_string(&mon_path).unwrap();
    std::fs::write(
        &mon_path,
        text.replacen(
            "quorum = 2\n",
            &format!("quorum = 2\ninterval_secs = 1\nmetrics_listen = \"{metrics_addr}\"\n"),
            1,
        ),
    )
    .unwrap();
    let mut cont = Command::new(BIN)
        .args(["monitor", "--config"])
        .arg(&mon_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut fork_gauge = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let Ok(r) = reqwest::get(format!("http://{metrics_addr}/metrics")).await else {
            continue;
        };
        let body = r.text().await.unwrap();
        if let Some(l) = body
            .lines()
            .find(|l| l.starts_with("gateway_monitor_findings{kind=\"fork\"}"))
            .filter(|l| !l.ends_with(" 0"))
        {
            fork_gauge = Some(l.to_owned());
            break;
        }
    }
    let _ = cont.kill();
    let out = cont.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(fork_gauge.is_some(), "no fork metric; monitor log:\n{log}");
    assert!(
        log.contains("FORK: the served log is not an extension"),
        "{log}"
    );
    // The witness kept the forked checkpoint as evidence.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        ws[0].3.join("witness.db").display()
    ))
    .await
    .unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM witness_evidence")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(n >= 1);
    drop(procs);
    stop(gw).await;
}

#[tokio::test]
async fn a_postgres_backup_is_a_pg_dump_with_the_same_manifest() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let gw = Gateway::start_with(&url, &[]);
    entries(&gw, 2).await;
    let dir = std::env::temp_dir().join(format!("gw-pg-backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("gateway.dump");
    let config = pki().join("gateway.toml");
    // The copy itself is pg_dump's: the gateway says so rather than half-doing it.
    let out = Command::new(BIN)
        .args(["backup", "--config"])
        .arg(&config)
        .args([
            "--database-url",
            &url,
            "--recipient",
            &age::x25519::Identity::generate().to_public().to_string(),
            "--output",
        ])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    let out = Command::new(BIN)
        .args(["backup", "--manifest-only", "--format", "json", "--config"])
        .arg(&config)
        .args(["--database-url", &url, "--output"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["database"], "postgres");
    assert!(m["log_size"].as_i64().unwrap() >= 3, "{m}");
    assert!(dir.join("gateway.dump.manifest.json").exists());
    drop(gw);
}

#[tokio::test]
async fn cosignatures_are_stored_and_read_alike_on_sqlite_and_postgres() {
    let mut urls = vec![sqlite_url("cosignatures")];
    if let Some(pg) = postgres_database().await {
        urls.push(pg);
    }
    for url in urls {
        let db = gateway::store::Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        for size in [1i64, 2] {
            db.put_checkpoint(&gateway::store::StoredCheckpoint {
                size,
                root: [u8::try_from(size).unwrap(); 32],
                note: format!("note {size}\n"),
                at: size,
            })
            .await
            .unwrap();
        }
        let c = |size: i64, witness: &str, line: &str| gateway::store::StoredCosignature {
            size,
            witness: witness.into(),
            line: line.into(),
            cosigned_at: 100 + size,
            received_at: 200 + size,
        };
        db.put_cosignature(&c(1, "w.a", "— w.a first\n"))
            .await
            .unwrap();
        db.put_cosignature(&c(1, "w.b", "— w.b one\n"))
            .await
            .unwrap();
        db.put_cosignature(&c(2, "w.a", "— w.a two\n"))
            .await
            .unwrap();
        // The first cosignature of a size by a witness is kept.
        db.put_cosignature(&c(1, "w.a", "— w.a again\n"))
            .await
            .unwrap();
        let all = db.cosignatures(None).await.unwrap();
        assert_eq!(all.len(), 3, "{url}");
        let one = db.cosignatures(Some(1)).await.unwrap();
        assert_eq!(
            one.iter().map(|x| x.line.as_str()).collect::<Vec<_>>(),
            vec!["— w.a first\n", "— w.b one\n"],
            "{url}"
        );
        let latest = db.latest_cosignatures().await.unwrap();
        assert_eq!(
            latest
                .iter()
                .map(|x| (x.witness.as_str(), x.size))
                .collect::<Vec<_>>(),
            vec![("w.a", 2), ("w.b", 1)],
            "{url}"
        );
        // Append-only, like the log.
        assert!(
            db.execute_unchecked("DELETE FROM log_cosignatures")
                .await
                .is_err(),
            "{url}"
        );
        assert!(
            db.execute_unchecked("UPDATE log_cosignatures SET line = 'x'")
                .await
                .is_err(),
            "{url}"
        );
    }
}

/// Issue 30: a monitor whose proof requests were answered 429 reported `missing-entry` for
/// receipts of a healthy log. It now waits as the gateway asks (Retry-After) and retries; what it
/// still cannot check is `NOT CHECKED` with exit 2, never evidence against the log.
#[tokio::test]
async fn a_rate_limited_monitor_waits_and_never_calls_an_entry_missing() {
    let root = scratch().join(format!("ratelimited-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(root.join("receipts")).unwrap();
    let db = sqlite_url("ratelimited");
    let gw = Gateway::start_with(
        &db,
        &[
            ("GATEWAY_AUDIT_CHECKPOINT_INTERVAL_SECS", "1"),
            ("GATEWAY_LIMITS_STAFF_PER_SECOND", "1"),
        ],
    );
    for (i, a) in entries(&gw, 4).await.iter().enumerate() {
        let r = a["audit_receipt"].as_str().unwrap();
        std::fs::write(root.join("receipts").join(format!("{i}.receipt")), r).unwrap();
    }
    // The receipts' entries in a checkpoint (the periodic one, within a couple of seconds).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let token_file = root.join("token.jwt");
    std::fs::write(&token_file, token("politie", "monitor", &["voorportaal"])).unwrap();
    let mon_path = root.join("monitor.toml");
    std::fs::write(
        &mon_path,
        format!(
            "gateway = \"https://{}\"\nca = {:?}\ncert = {:?}\nkey = {:?}\ntoken_file = {:?}\nlog_vkeys = [{:?}]\nquorum = 0\nstate = \"monitor-state.json\"\nreceipts = \"receipts\"\n",
            gw.api,
            pki().join("ca.pem"),
            pki().join("politie/client.pem"),
            pki().join("politie/client.key"),
            token_file,
            log_key().vkey(),
        ),
    )
    .unwrap();
    let (code, out) = monitor_once(&mon_path);
    assert!(!out.contains("MISSING ENTRY"), "{out}");
    assert!(code == 0 || code == 2, "{out}");
    if code == 0 {
        assert!(out.contains("receipts: 4 included"), "{out}");
    } else {
        assert!(out.contains("NOT CHECKED"), "{out}");
    }
}

/// A witness behind a faulty link (issue 30): the witness takes every other checkpoint, but its
/// answer never reaches the gateway, so that the gateway's idea of the witness's size is stale
/// on its next submission. 20 times in a row the witness's 409 must lead at once to a
/// consistency proof from the size it names, and to its cosignature of the newest checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_answer_the_409_resync_succeeds_every_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let root = std::env::temp_dir().join(format!("gw-resync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // politie's witness behind the faulty link; om's and rn's direct (the quorum of two).
    let mut ws = Vec::new();
    for partner in ["politie", "om", "rn"] {
        let dir = root.join(partner);
        let vkey = init_witness(&dir, &format!("witness.{partner}.ipga-r.example"));
        let proc = start_witness(&dir);
        ws.push((partner, vkey, proc));
    }
    let upstream = format!("http://{}", ws[0].2.addr);
    let (adds, conflicts, lost) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let link = {
        let (adds, conflicts, lost) = (adds.clone(), conflicts.clone(), lost.clone());
        let http = reqwest::Client::new();
        axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (http, upstream) = (http.clone(), upstream.clone());
            let (adds, conflicts, lost) = (adds.clone(), conflicts.clone(), lost.clone());
            async move {
                let path = req.uri().path().to_owned();
                let ct = req
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("text/plain")
                    .to_owned();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let r = http
                    .post(format!("{upstream}{path}"))
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let rct = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("text/plain")
                    .to_owned();
                let text = r.text().await.unwrap();
                let n = adds.fetch_add(1, Ordering::SeqCst);
                if status == 409 {
                    conflicts.fetch_add(1, Ordering::SeqCst);
                }
                // Every other cosignature is lost on the way back.
                if status == 200 && n % 2 == 0 {
                    lost.fetch_add(1, Ordering::SeqCst);
                    return (
                        axum::http::StatusCode::BAD_GATEWAY,
                        [("content-type", "text/plain".to_owned())],
                        "link down".to_owned(),
                    );
                }
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", rct)],
                    text,
                )
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, link).await });
    let spec: Vec<(&str, String, String)> = ws
        .iter()
        .enumerate()
        .map(|(i, w)| {
            (
                w.0,
                w.1.clone(),
                if i == 0 {
                    proxy.clone()
                } else {
                    w.2.addr.clone()
                },
            )
        })
        .collect();
    let covenant = covenant_with_witnesses(&root, &spec, 600);
    let config = config_with_covenant(&covenant, "resync");
    let db = sqlite_url("resync");
    let gw = Gateway::spawn_on(
        &config,
        &[
            ("GATEWAY_DATABASE_URL", db.as_str()),
            ("GATEWAY_AUDIT_CHECKPOINT_INTERVAL_SECS", "1"),
        ],
    );
    let politie = CosignVerifier::from_vkey(&ws[0].1).unwrap();
    let politie_name = ws[0].1.split('+').next().unwrap().to_owned();
    for round in 0..20 {
        // The log grows; the newest checkpoint must carry politie's cosignature soon, whether
        // its previous answer was lost or not.
        let grown = entries(&gw, 1).await;
        let size = grown[0]["audit_seq"].as_u64().unwrap();
        eventually(
            15,
            &format!("round {round}: politie cosigns size {size} or later"),
            || async {
                let note = checkpoint(&gw).await;
                let at: u64 = note
                    .lines()
                    .nth(1)
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                at >= size
                    && gateway::log::cosign::witnessed(&note, std::slice::from_ref(&politie))
                        .unwrap()
                        .iter()
                        .any(|(n, _)| *n == politie_name)
            },
        )
        .await;
    }
    let (lost, conflicts) = (
        lost.load(Ordering::SeqCst),
        conflicts.load(Ordering::SeqCst),
    );
    assert!(lost >= 10, "the link lost {lost} answers");
    assert!(conflicts >= 10, "{conflicts} conflicts resynced");
    stop(gw).await;
    drop(ws);
    let _ = std::fs::remove_dir_all(&root);
}

/// c2sp.org/tlog-witness's example `add-checkpoint` request, byte for byte, at a real witness
/// that follows another log: the spec's 404 for an unknown origin, in its `text/plain` form.
#[tokio::test]
async fn the_spec_example_request_is_404_at_a_witness_of_another_log() {
    let dir = std::env::temp_dir().join(format!("gw-witness-spec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    init_witness(&dir, "witness.politie.ipga-r.example");
    let w = start_witness(&dir);
    let proof: Vec<String> = [
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",
        "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=",
        "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=",
        "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=",
    ]
    .map(str::to_owned)
    .to_vec();
    let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";
    let (s, _, body) = add(&w, 20_852_014, &proof, note).await;
    assert_eq!(s, 404, "{body}");
    // And with the old size above the checkpoint's, still the origin first: 404.
    let (s, _, _) = add(&w, 20_852_164, &proof, note).await;
    assert_eq!(s, 404);
}
