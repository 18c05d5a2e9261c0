//! The signed-note (checkpoint) verifier and the vkey parser on arbitrary text: never a panic;
//! a note that verifies names a signer of the set and its own size and root.
#![no_main]

use gateway::log::checkpoint::{Checkpoint, KeySet, LogKey, NoteVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static (KeySet, String) {
    static K: OnceLock<(KeySet, String)> = OnceLock::new();
    K.get_or_init(|| {
        let a = LogKey::from_seed("fuzz.example/disclosures", &[1; 32]).unwrap();
        let b = LogKey::from_seed("fuzz.example/disclosures", &[2; 32]).unwrap();
        let set = KeySet::parse(&format!("{}\n{}\n", a.vkey(), b.vkey())).unwrap();
        let sample = a.sign(&Checkpoint { origin: "fuzz.example/disclosures".into(), size: 7, root: [3; 32], extensions: Vec::new() });
        (set, sample)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (set, sample) = keys();
    if let Ok((c, signers)) = set.verify(text) {
        assert!(!signers.is_empty());
        // Only a note the keys signed verifies: here, the sample (or one with the same body).
        assert!(text.starts_with(&c.body()) || sample.starts_with(&c.body()));
    }
    let _ = NoteVerifier::from_vkey(text);
    let _ = KeySet::parse(text);
    // The sample with the fuzz input appended as more signature lines still verifies or fails,
    // never panics.
    let _ = set.verify(&format!("{sample}{text}"));
});
