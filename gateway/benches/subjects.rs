//! The per-subject map's cost (issue 28): indexing one entry, the map's head at each
//! checkpoint, and for a person with 1,000 entries in a 1,000,000-entry log (100,000 people)
//! the proof's size and its offline verification.
//!
//! Run: `cargo bench -p gateway --bench subjects`.
#![expect(
    clippy::expect_used,
    reason = "a benchmark binary: a failure is a failed run"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::log::checkpoint::{Checkpoint, KeySet, LogKey, NoteVerifier};
use gateway::log::merkle::{Levels, leaf_hash};
use gateway::log::subjects::{
    ProvenEntry, ProvenSubject, SubjectMap, SubjectProof, key_of, verify_proof,
};
use std::hint::black_box;

const LOG: u64 = 1_000_000;
const PEOPLE: u64 = 100_000;
const TARGET: &str = "target-person";

/// Entry `seq`'s text: every 1,000th is the target's, the rest spread over the others.
fn entry(seq: u64) -> String {
    let who = if seq % 1_000 == 7 {
        TARGET.to_owned()
    } else {
        format!("p{}", seq % PEOPLE)
    };
    format!(r#"{{"data_subject":"{who}","seq":{seq}}}"#)
}

fn bench(c: &mut Criterion) {
    let texts: Vec<String> = (1..=LOG).map(entry).collect();
    let leaves: Vec<_> = texts.iter().map(|t| leaf_hash(t.as_bytes())).collect();
    let mut map = SubjectMap::default();
    for ((t, leaf), seq) in texts.iter().zip(&leaves).zip(1..) {
        let who = gateway::log::subjects::about(t).expect("a subject");
        map.add(&who, seq, leaf);
    }
    let levels = Levels::new(leaves.clone());
    let key = LogKey::from_seed("bench.example/disclosures", &[1; 32]).expect("key");
    let keys =
        KeySet::new(vec![NoteVerifier::from_vkey(&key.vkey()).expect("vkey")]).expect("keys");
    let head = map.head();
    let note = key.sign(&Checkpoint {
        origin: "bench.example/disclosures".into(),
        size: LOG,
        root: levels.root(),
        extensions: vec![head.line()],
    });
    let k = key_of(TARGET);
    let entries: Vec<ProvenEntry> = texts
        .iter()
        .zip(&leaves)
        .enumerate()
        .filter(|(_, (t, _))| t.contains(TARGET))
        .map(|(i, (t, leaf))| ProvenEntry {
            seq: i as u64 + 1,
            leaf_hash: *leaf,
            entry: Some(t.clone()),
            proof: levels.proof(i),
        })
        .collect();
    let proof = SubjectProof {
        checkpoint: note,
        not_covered: Vec::new(),
        subjects: vec![ProvenSubject {
            pseudonym: TARGET.into(),
            map: map.prove(&k),
            entries,
        }],
    };
    let bytes = serde_json::to_vec(&proof).expect("json").len();
    let proven = verify_proof(&proof, &keys, &[], 0).expect("verifies");
    eprintln!(
        "proof for a person with {} entries in a {LOG}-entry log ({} people in the map): {bytes} bytes of JSON",
        proven.entries, head.size
    );
    let mut g = c.benchmark_group("subjects");
    g.sample_size(20);
    g.bench_function("verify a proof of 1,000 entries at 1,000,000", |b| {
        b.iter(|| verify_proof(black_box(&proof), &keys, &[], 0))
    });
    g.bench_function("map head at 100,000 people (per checkpoint)", |b| {
        b.iter(|| black_box(&map).head())
    });
    let mut seq = LOG;
    let leaf = leaf_hash(b"one more");
    g.bench_function("index one entry", |b| {
        b.iter(|| {
            seq += 1;
            map.add(black_box("p5"), seq, &leaf)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
