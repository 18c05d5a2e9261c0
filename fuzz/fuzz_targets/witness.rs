//! What witnesses and monitors read from the network: the `add-checkpoint` request (parsed and
//! decided against a log key and a last cosigned state), cosignature lines, and receipts. Never
//! a panic; nothing is cosigned that the log did not sign and that is not consistent. And what
//! `audit verify-report` reads: a proven report and its map line.
#![no_main]

use gateway::log::checkpoint::{Checkpoint, KeySet, LogKey, NoteVerifier};
use gateway::log::cosign::{CosignVerifier, Cosigner};
use gateway::log::receipt::Receipt;
use gateway::witness::protocol::{decide, parse};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Keys {
    log: Vec<NoteVerifier>,
    set: KeySet,
    witness: CosignVerifier,
    sample: String,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let log = LogKey::from_seed("fuzz.example/disclosures", &[1; 32]).unwrap();
        let w = Cosigner::from_seed("witness.fuzz.example", &[2; 32]).unwrap();
        let sample = log.sign(&Checkpoint { origin: "fuzz.example/disclosures".into(), size: 7, root: [3; 32], extensions: Vec::new() });
        let v = NoteVerifier::from_vkey(&log.vkey()).unwrap();
        Keys {
            log: vec![v.clone()],
            set: KeySet::new(vec![v]).unwrap(),
            witness: CosignVerifier::from_vkey(&w.vkey()).unwrap(),
            sample,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let k = keys();
    if let Ok(req) = parse(text) {
        for last in [None, Some((3, [3; 32])), Some((7, [3; 32]))] {
            if let Ok(c) = decide(&req, &k.log, last) {
                // Cosigned only what the log signed, and never below what was cosigned.
                assert!(k.set.verify(&req.note).is_ok());
                assert!(c.size >= last.map_or(0, |l| l.0));
            }
        }
    }
    let _ = k.witness.verify(text);
    let _ = k.witness.verify(&format!("{}{text}", k.sample));
    let _ = CosignVerifier::from_vkey(text);
    let _ = Receipt::verify(text, &k.set);
    // A proven report (`audit verify-report` reads it from a file someone handed over): never a
    // panic, and nothing proven without the log's signature.
    if let Ok(p) = serde_json::from_str::<gateway::log::subjects::SubjectProof>(text) {
        if gateway::log::subjects::verify_proof(&p, &k.set, &[k.witness.clone()], 0).is_ok() {
            assert!(k.set.verify(&p.checkpoint).is_ok());
        }
    }
    let _ = gateway::log::subjects::MapHead::from_lines(&text.lines().map(str::to_owned).collect::<Vec<_>>());
});
