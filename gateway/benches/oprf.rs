//! The oblivious aanpak-check's cost (issue 38): per check and register, the gateway blinds
//! once and finishes once (proof verification and unblinding); the register evaluates once
//! (with its proof). And publishing a register's set of 2,000 members.
//!
//! Run: `cargo bench -p gateway --bench oprf`.
#![expect(
    clippy::expect_used,
    reason = "a benchmark binary: a failure is a failed run"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::oprf::{Blinded, Epoch, PublishedSet, RegisterKey, SystemRng, info};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let key = RegisterKey::from_seed(&[7u8; 32]).expect("key");
    let i = info("top600", &Epoch::of(1_800_000_000));
    let bsn = b"999993331";
    let b = Blinded::new(bsn, &mut SystemRng).expect("blind");
    let (e, p) = key
        .evaluate_blinded(&mut SystemRng, &b.message(), &i)
        .expect("evaluate");
    let public = key.public();
    let mut g = c.benchmark_group("oprf");
    g.bench_function("gateway: blind", |x| {
        x.iter(|| Blinded::new(black_box(bsn), &mut SystemRng))
    });
    g.bench_function("register: evaluate with proof", |x| {
        x.iter(|| key.evaluate_blinded(&mut SystemRng, black_box(&b.message()), &i))
    });
    g.bench_function("gateway: verify proof and unblind", |x| {
        x.iter(|| b.finish(black_box(bsn), &e, &p, &public, &i))
    });
    g.bench_function("register: one member (publish)", |x| {
        x.iter(|| key.member(black_box(bsn), &i))
    });
    g.sample_size(10);
    let members: Vec<String> = (0..2_000u32)
        .map(|n| format!("{:09}", 100_000_000 + n))
        .collect();
    g.bench_function("register: publish 2,000 members", |x| {
        x.iter(|| {
            let outputs = members
                .iter()
                .map(|m| key.member(m.as_bytes(), &i).expect("member"));
            PublishedSet::new(
                "top600",
                Epoch::of(1_800_000_000),
                0,
                1,
                outputs,
                &mut SystemRng,
            )
            .body()
            .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
