//! The disclosure log: appends through the one writer (group commit; batches form from
//! concurrent requests), `audit verify`, and at 1,000,000 entries an inclusion proof, a
//! consistency proof, a restart (opening the log) and the art. 15 subject query.
//!
//! Beside the writer, SQLite's own floor: the same rows of the same schema (leaf, content,
//! products, tree nodes, the per-subject map's row, the head) written with SQLite
//! directly (rusqlite, statements prepared once, one transaction per 512 entries, everything
//! hashed and serialised beforehand), so that the writer's figure is a ratio to what this machine
//! can do at all (issue 40: the writer ≥ 80 % of the floor at batch 512).
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

/// The rows of entries `from..to` as the schema holds them, computed before any timing.
struct FloorRows {
    leaves: Vec<(i64, [u8; 32], [u8; 32])>,
    /// (seq, the entry's text, the entry, its person's map key in hex).
    records: Vec<(i64, String, LogEntry, Option<String>)>,
    nodes: Vec<(i64, i64, [u8; 32])>,
    last_chain: [u8; 32],
}

fn floor_rows(from: usize, to: usize, mut chain: [u8; 32]) -> FloorRows {
    let mut out = FloorRows {
        leaves: Vec::new(),
        records: Vec::new(),
        nodes: Vec::new(),
        last_chain: chain,
    };
    for i in from..to {
        let seq = i64::try_from(i + 1).expect("seq");
        let e = entry(i);
        let text = e.canonical().expect("canonical");
        let leaf = gateway::log::merkle::leaf_hash(text.as_bytes());
        chain = gateway::log::chain_hash(&chain, &leaf);
        out.leaves.push((seq, leaf, chain));
        // One stored node per complete subtree of 256, 65,536, ... leaves (the log's own rule).
        let mut height = 8;
        while seq % (1i64 << height) == 0 {
            out.nodes.push((height, seq / (1i64 << height) - 1, leaf));
            height += 8;
        }
        let key = e
            .data_subject
            .as_deref()
            .map(|p| hex::encode(gateway::log::subjects::key_of(p)));
        out.records.push((seq, text, e, key));
    }
    out.last_chain = chain;
    out
}

/// Writes `rows` in transactions of `batch` entries; returns the seconds the writing took.
fn floor_write(c: &mut rusqlite::Connection, rows: &FloorRows, batch: usize) -> f64 {
    let started = Instant::now();
    for (k, chunk) in rows.leaves.chunks(batch).enumerate() {
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        {
            let mut leaf = tx
                .prepare_cached(
                    "INSERT INTO log_leaves (seq, leaf_hash, chain_hash) VALUES (?1, ?2, ?3)",
                )
                .expect("prepare");
            let mut record = tx
                .prepare_cached(
                    "INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, \
                     staff_id, role, purpose, case_id, subject_pseudonym, policy_version, \
                     outcome, problem) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .expect("prepare");
            let mut product = tx
                .prepare_cached(
                    "INSERT INTO log_products (seq, product, owner) VALUES (?1, ?2, ?3)",
                )
                .expect("prepare");
            let mut node = tx
                .prepare_cached("INSERT INTO log_nodes (height, idx, hash) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            let mut subject = tx
                .prepare_cached(
                    "INSERT INTO log_subject_entries (subject_key, seq) VALUES (?1, ?2) \
                     ON CONFLICT (subject_key, seq) DO NOTHING",
                )
                .expect("prepare");
            let first = k * batch;
            for (j, (seq, leaf_hash, chain_hash)) in chunk.iter().enumerate() {
                leaf.execute(rusqlite::params![seq, &leaf_hash[..], &chain_hash[..]])
                    .expect("leaf");
                let (_, text, e, key) = rows.records.get(first + j).expect("record");
                record
                    .execute(rusqlite::params![
                        seq,
                        text,
                        e.id,
                        e.at,
                        e.trace_id,
                        e.kind.as_str(),
                        e.partner,
                        e.staff_id,
                        e.role,
                        e.processing_activity,
                        e.case_id,
                        e.data_subject,
                        e.policy_version,
                        e.outcome.as_str(),
                        e.problem
                    ])
                    .expect("record");
                for (name, p) in &e.products {
                    product
                        .execute(rusqlite::params![
                            seq,
                            name,
                            p.owner.as_deref().unwrap_or("")
                        ])
                        .expect("product");
                }
                if let Some(key) = key {
                    subject
                        .execute(rusqlite::params![key, seq])
                        .expect("subject");
                }
            }
            let last = chunk.last().map_or(0, |l| l.0);
            let lo = chunk.first().map_or(0, |l| l.0);
            for (h, idx, hash) in rows
                .nodes
                .iter()
                .filter(|(h, idx, _)| ((idx + 1) << h) >= lo && ((idx + 1) << h) <= last)
            {
                node.execute(rusqlite::params![h, idx, &hash[..]])
                    .expect("node");
            }
            let (_, leaf_hash, chain_hash) = chunk.last().expect("a chunk is never empty");
            tx.execute(
                "UPDATE log_tree_head SET size = ?1, chain_hash = ?2, root = ?3 WHERE id = 1",
                rusqlite::params![last, &chain_hash[..], &leaf_hash[..]],
            )
            .expect("head");
        }
        tx.commit().expect("commit");
    }
    started.elapsed().as_secs_f64()
}

/// SQLite's floor for the writer's appends at batch 512 (entries per second): the gateway's
/// schema (its migrations) in a fresh file, WAL and `synchronous = FULL` as the gateway
/// configures it, first the entries the writer's measurement has written before its batch-512
/// run (untimed), then the same 100,000 entries.
async fn floor(dir: &std::path::Path) -> f64 {
    let path = dir.join("floor.db");
    let db = Db::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("sqlite");
    db.migrate().await.expect("migrate");
    drop(db);
    let before = 300 + 2_000 + 20_000;
    let timed = 100_000;
    let pre = floor_rows(0, before, [0; 32]);
    let rows = floor_rows(before, before + timed, pre.last_chain);
    let mut c = rusqlite::Connection::open(&path).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA secure_delete = ON; PRAGMA cache_size = -16384;",
    )
    .expect("pragmas");
    // The migrations leave a head row only once the log has its first entry.
    c.execute(
        "INSERT OR IGNORE INTO log_tree_head (id, size, chain_hash, root) VALUES (1, 0, ?1, NULL)",
        rusqlite::params![&[0u8; 32][..]],
    )
    .expect("head row");
    floor_write(&mut c, &pre, 512);
    let secs = floor_write(&mut c, &rows, 512);
    let rate = timed as f64 / secs;
    println!(
        "floor     append (SQLite directly)  {timed:>8} entries at batch 512  {rate:>9.0} entries/s"
    );
    rate
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
        results.insert(
            "floor".into(),
            serde_json::json!({ "append": { "512": floor(&dir).await } }),
        );
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
