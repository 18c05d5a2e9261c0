//! Throughput of the disclosure log: appends (group commit, by batch size) and `audit verify`.
//!
//! Run: `cargo bench -p gateway --bench log` (SQLite in a temporary directory; PostgreSQL too when
//! `GATEWAY_TEST_POSTGRES_URL` is set). Prints a table; asserts nothing about speed.
#![allow(clippy::expect_used, missing_docs)]

use gateway::audit::checkpoint::{LogKey, NoteVerifier};
use gateway::store::{DisclosureRow, Store, postgres::PgStore, sqlite::SqliteStore};
use std::time::Instant;

fn row(i: usize) -> DisclosureRow {
    // About the size of a real `regie` record: seven products with their field lists.
    let products: String = (0..7)
        .map(|p| format!(r#""product{p}":{{"status":"ok","records":1,"disclosed":[["naam","regie-basis"],["adres","regie-basis"],["telefoon","regie-basis"]],"transformed":[["postcode","regie-politie-locatie"]],"withheld":[["omschrijving","regie-politie-omschrijving"]],"omitted":[]}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let entry = format!(
        r#"{{"id":"disc-{i:032}","at":"2026-11-22T10:00:00Z","trace_id":"{i:036}","kind":"disclosure","partner":"rn","staff_id":"reg.{}","role":"regisseur","processing_activity":"regie","case_id":"case-{i:032}","data_subject":"{:032x}","products":{{{products}}},"policy_version":"sha256:{:064}","ciphertext_sha256":"{:064}","outcome":"answered","problem":null}}"#,
        i % 97,
        i * 7919,
        0,
        i
    );
    DisclosureRow {
        id: format!("disc-{i:032}"),
        at: 1_800_000_000,
        transaction_id: format!("{i:036}"),
        kind: "disclosure".into(),
        partner: "rn".into(),
        staff_id: Some(format!("reg.{}", i % 97)),
        role: Some("regisseur".into()),
        purpose: Some("regie".into()),
        case_id: Some(format!("case-{i:032}")),
        subject_pseudonym: Some(format!("{:032x}", i * 7919)),
        policy_version: format!("sha256:{:064}", 0),
        ciphertext_sha256: Some(format!("{i:064}")),
        outcome: "answered".into(),
        problem: None,
        entry,
        leaf_hash: None,
        chain_hash: None,
    }
}

async fn appends<S: Store>(name: &str, store: &S, next: &mut usize) {
    for (batch, total) in [(1usize, 300usize), (8, 2_000), (64, 20_000), (512, 100_000)] {
        let started = Instant::now();
        let mut done = 0;
        while done < total {
            let rows: Vec<DisclosureRow> = (0..batch).map(|k| row(*next + k)).collect();
            store.append_batch(&rows).await.expect("append");
            *next += batch;
            done += batch;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name:<10} append   batch {batch:>4}  {total:>7} entries  {:>9.0} entries/s  {:>8.1} commits/s",
            total as f64 / secs,
            (total / batch) as f64 / secs
        );
    }
}

async fn verify<S: Store>(name: &str, store: &S) {
    let key = LogKey::from_seed("bench/disclosures", &[7; 32]).expect("key");
    let started = Instant::now();
    let (size, _) = gateway::audit::api::checkpoint_now(
        store,
        &Default::default(),
        &key,
        "bench/disclosures",
        1_800_000_000,
    )
    .await
    .expect("checkpoint");
    let signed = started.elapsed().as_secs_f64();
    let v = NoteVerifier::from_vkey(&key.vkey()).expect("vkey");
    let started = Instant::now();
    let report = gateway::audit::verify::verify(store, &v)
        .await
        .expect("verify");
    let secs = started.elapsed().as_secs_f64();
    assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
    println!("{name:<10} checkpoint over {size} entries: {signed:.2} s");
    println!(
        "{name:<10} verify   {:>7} entries  {:>9.2} s  {:>12.0} entries/minute",
        report.entries,
        secs,
        report.entries as f64 / secs * 60.0
    );
}

/// Grows the log to `target` entries, then times the art. 15 subject report's query (every
/// entry about one subject, confidential purposes left out) over it.
async fn subject_report<S: Store>(name: &str, store: &S, next: &mut usize, target: usize) {
    let started = Instant::now();
    while *next < target {
        let rows: Vec<DisclosureRow> = (0..512).map(|k| row(*next + k)).collect();
        store.append_batch(&rows).await.expect("append");
        *next += 512;
    }
    println!(
        "{name:<10} grown to {next} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // `row` gives subject i*7919 to entry i: one subject per entry; give one subject a history.
    let mut times = Vec::new();
    for k in 0..21 {
        let subject = format!("{:032x}", (k * 40_000 + 17) * 7919);
        let filter = gateway::store::LogFilter {
            subject: Some(subject),
            exclude_purposes: vec!["duiding".into()],
            limit: 1_000,
            ..Default::default()
        };
        let started = Instant::now();
        let found = store.search(&filter).await.expect("search");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(found.len() <= 1);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{name:<10} subject report over {next} entries: median {:.2} ms, max {:.2} ms (21 subjects)",
        times[10], times[20]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("gateway-bench-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("log.db").display()))
            .await
            .expect("sqlite");
        store.migrate().await.expect("migrate");
        let mut next = 0;
        appends("sqlite", &store, &mut next).await;
        verify("sqlite", &store).await;
        subject_report("sqlite", &store, &mut next, 1_000_000).await;
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(admin) = std::env::var("GATEWAY_TEST_POSTGRES_URL") {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin).await.expect("pg");
            sqlx::query("DROP DATABASE IF EXISTS gateway_bench_log")
                .execute(&mut c)
                .await
                .expect("drop");
            sqlx::query("CREATE DATABASE gateway_bench_log")
                .execute(&mut c)
                .await
                .expect("create");
            let url = format!(
                "{}/gateway_bench_log",
                admin.rsplit_once('/').map_or(admin.as_str(), |x| x.0)
            );
            let store = PgStore::connect(&url).await.expect("pg");
            store.migrate().await.expect("migrate");
            let mut next = 0;
            appends("postgres", &store, &mut next).await;
            verify("postgres", &store).await;
            subject_report("postgres", &store, &mut next, 1_000_000).await;
        }
    });
}
