//! A partner's witness (`gateway witness serve`, a real process) cosigning the gateway's real
//! checkpoints by the C2SP tlog-witness protocol: growth with consistency proofs, the old-size
//! conflict, a fork refused and kept as evidence, state that survives a restart, and
//! cosignatures checked by an independent implementation (Python `cryptography`).

use crate::audit::{checkpoint, entries, get, h, log_key};
use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gateway::log::checkpoint::Checkpoint;
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
    let out = Command::new(BIN)
        .args(["witness", "init"])
        .arg(dir)
        .args([
            "--name",
            name,
            "--log-vkey",
            &log_key().vkey(),
            "--listen",
            "127.0.0.1:0",
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
    entries(&gw, 3).await;
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

    // A fork: the log's key signs a checkpoint of the same size with another root (an entry
    // changed and every hash recomputed). Refused, 422.
    let forked = log_key().sign(&Checkpoint {
        origin: "gateway.ipga-r.example/disclosures".into(),
        size: 8,
        root: [7; 32],
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
            });
    assert_eq!(add(&w, 8, &[], &stranger).await.0, 403);
    let other_log = gateway::log::checkpoint::LogKey::from_seed("other.example/log", &[5; 32])
        .unwrap()
        .sign(&Checkpoint {
            origin: "other.example/log".into(),
            size: 1,
            root: [1; 32],
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

    // Restarted, it remembers: a rewound log (old 0, the first checkpoint again) is refused.
    drop(w);
    let w = start_witness(&dir);
    let (s, _, body) = add(&w, 0, &[], &note4).await;
    assert_eq!((s, body.as_str()), (409, "8\n"));
    // The forked checkpoint is kept as evidence.
    use sqlx::Connection;
    let mut db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.join("witness.db").display()))
            .await
            .unwrap();
    let evidence: i64 = sqlx::query_scalar("SELECT count(*) FROM witness_evidence")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(evidence, 1);
    // And its state cannot be set back, even by hand.
    let back = sqlx::query("UPDATE witness_latest SET size = 4")
        .execute(&mut db)
        .await;
    assert!(back.is_err(), "a witness never goes back");
}
