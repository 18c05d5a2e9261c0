//! The disclosure log: appends through the one writer (group commit; batches form from
//! concurrent requests), `audit verify`, and at 1,000,000 entries an inclusion proof, a
//! consistency proof, a restart (opening the log) and the art. 15 subject query.
//!
//! Run: `cargo bench -p gateway --bench log` (SQLite in a temporary directory; PostgreSQL too when
//! `GATEWAY_TEST_POSTGRES_URL` is set). `GATEWAY_BENCH_LOG_SIZE` changes the large size. Prints a
//! table; asserts nothing about speed.
#![expect(
    clippy::expect_used,
    reason = "a benchmark binary: a failure is a failed run"
)]

use gateway::log::checkpoint::LogKey;
use gateway::log::entry::{Kind, LogEntry, Outcome, ProductStatus, ProductSummary, Start};
use gateway::log::{Log, LogKeys};
use gateway::store::{Db, LogFilter};
use policy::OutcomeClass;
use std::sync::Arc;
use std::time::Instant;

const ORIGIN: &str = "bench/disclosures";

/// About the size of a real `regie` entry: seven products with their field lists.
fn entry(i: usize) -> LogEntry {
    let mut e = LogEntry::new(Start {
        id: format!("disc-{i:032}"),
        at: 1_800_000_000,
        trace_id: &format!("{i:036}"),
        kind: Kind::Disclosure,
        partner: "rn".into(),
        policy_version: &format!("sha256:{:064}", 0),
    });
    e.staff_id = Some(format!("reg.{}", i % 97));
    e.role = Some("regisseur".into());
    e.processing_activity = Some("regie".into());
    e.case_id = Some(format!("case-{i:032}"));
    e.data_subject = Some(format!("{:032x}", i * 7919));
    e.ciphertext_sha256 = Some(format!("{i:064}"));
    e.outcome = Outcome::Answered;
    for p in 0..7 {
        let mut s = ProductSummary::new(ProductStatus::Ok, "politie", 1);
        for f in ["naam", "adres", "telefoon"] {
            s.add(OutcomeClass::Disclosed, f, "regie-basis");
        }
        s.add(
            OutcomeClass::Transformed,
            "postcode",
            "regie-politie-locatie",
        );
        s.add(
            OutcomeClass::Withheld,
            "omschrijving",
            "regie-politie-omschrijving",
        );
        e.products.insert(format!("product{p}"), s);
    }
    e
}

fn keys() -> LogKeys {
    LogKeys {
        current: LogKey::from_seed(ORIGIN, &[7; 32]).expect("key"),
        retired: Vec::new(),
    }
}

/// Appends `total` entries from `writers` concurrent appenders (the writer batches what waits).
async fn grow(log: &Arc<Log>, next: &mut usize, total: usize, writers: usize) -> f64 {
    let started = Instant::now();
    let per = total / writers;
    let base = *next;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for k in 0..per {
                    log.append(entry(base + w * per + k)).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    *next += per * writers;
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs every measurement on `db`; returns the appends per second by concurrency.
async fn bench(name: &str, db: Db, large: usize) -> serde_json::Value {
    db.migrate().await.expect("migrate");
    let mut appends = serde_json::Map::new();
    let log = Arc::new(
        Log::open(
            db.clone(),
            keys(),
            ORIGIN.into(),
            std::sync::Arc::new(gateway::clock::SystemClock),
        )
        .await
        .expect("open"),
    );
    let mut next = 0;
    for (writers, total) in [(1usize, 300usize), (8, 2_000), (64, 20_000), (512, 100_000)] {
        let secs = grow(&log, &mut next, total, writers).await;
        appends.insert(writers.to_string(), (total as f64 / secs).into());
        println!(
            "{name:<9} append      {writers:>4} concurrent  {total:>8} entries  {:>9.0} entries/s",
            total as f64 / secs
        );
    }
    // Grow to the large size with the widest batches.
    let more = large.saturating_sub(next).max(512);
    let secs = grow(&log, &mut next, more, 512).await;
    println!("{name:<9} grown to {next} entries in {secs:.1} s");
    log.checkpoint(1_800_000_000).await.expect("checkpoint");
    let size = i64::try_from(next).expect("size");

    // Inclusion proofs of entries spread over the log, against the latest checkpoint.
    let mut times = Vec::new();
    for k in 0..41i64 {
        let seq = 1 + (k * 24_391) % size;
        let started = Instant::now();
        let p = log
            .inclusion(seq, None, 1_800_000_000)
            .await
            .expect("proof");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(p.tree_size, size);
    }
    println!(
        "{name:<9} inclusion proof at {size} entries: median {:.2} ms, max {:.2} ms (41 proofs)",
        median(times.clone()),
        times.iter().copied().fold(0.0, f64::max)
    );
    let mut times = Vec::new();
    for k in 1..22i64 {
        let from = (k * 47_111) % size + 1;
        let started = Instant::now();
        log.consistency(from, size).await.expect("consistency");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "{name:<9} consistency proof to {size} entries: median {:.2} ms (21 proofs)",
        median(times)
    );

    // A restart: open the log again (head and the tree's right edge, no leaves).
    log.shutdown().await;
    drop(log);
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let l = Log::open(
            db.clone(),
            keys(),
            ORIGIN.into(),
            std::sync::Arc::new(gateway::clock::SystemClock),
        )
        .await
        .expect("reopen");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        l.shutdown().await;
    }
    println!(
        "{name:<9} restart (open the log) at {size} entries: median {:.2} ms (5 starts)",
        median(times)
    );

    // The art. 15 report's query: every answered entry about one subject.
    let mut times = Vec::new();
    for k in 0..21 {
        let subject = format!("{:032x}", ((k * 40_000 + 17) % next) * 7919);
        let filter = LogFilter {
            subjects: vec![subject],
            limit: 1_000,
            ..Default::default()
        };
        let started = Instant::now();
        let found = db.search(&filter).await.expect("search");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(found.len() <= 1);
    }
    println!(
        "{name:<9} subject query over {size} entries: median {:.2} ms (21 subjects)",
        median(times)
    );

    let started = Instant::now();
    let report = gateway::log::verify::verify(&db, &keys().key_set().expect("keys"), |_| {})
        .await
        .expect("verify");
    let secs = started.elapsed().as_secs_f64();
    assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
    println!(
        "{name:<9} verify      {:>8} entries  {secs:>9.2} s  {:>12.0} entries/minute",
        report.entries,
        report.entries as f64 / secs * 60.0
    );
    serde_json::json!({
        "append": appends,
        "verify_entries_per_minute": report.entries as f64 / secs * 60.0,
        "entries": report.entries,
    })
}

fn main() {
    let large: usize = std::env::var("GATEWAY_BENCH_LOG_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("gateway-bench-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = Db::connect(&format!("sqlite://{}", dir.join("log.db").display()))
            .await
            .expect("sqlite");
        let mut results = serde_json::Map::new();
        results.insert("sqlite".into(), bench("sqlite", db, large).await);
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(admin) = std::env::var("GATEWAY_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            let root = Db::connect(&admin).await.expect("pg");
            root.execute_unchecked("DROP DATABASE IF EXISTS gateway_bench_log")
                .await
                .expect("drop");
            root.execute_unchecked("CREATE DATABASE gateway_bench_log")
                .await
                .expect("create");
            let url = format!(
                "{}/gateway_bench_log",
                admin.rsplit_once('/').map_or(admin.as_str(), |x| x.0)
            );
            results.insert(
                "postgres".into(),
                bench("postgres", Db::connect(&url).await.expect("pg"), large).await,
            );
        }
        // For `ops/bench/run`'s table of targets.
        let out = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
            .join("bench");
        std::fs::create_dir_all(&out).expect("target/bench");
        std::fs::write(
            out.join("log.json"),
            serde_json::to_string_pretty(&results).expect("json"),
        )
        .expect("log.json");
    });
}
