//! Storage faults under load (issue 39): a full disk, a held write lock, `kill -9` during a
//! fault. The invariant in each: every 200 a client saw has its entry, with that seq and that
//! leaf hash, after recovery; no seq is answered twice; `audit verify` passes; the gateway
//! recovers without a restart.

use crate::disclose::{Case, ask, case_with_records, writer_check};
use crate::durability::verify_ok;
use crate::helpers::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A small tmpfs of its own, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` where the machine does not allow mounting (not root, or no `CAP_SYS_ADMIN`).
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = scratch().join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Fills the file system of `path` to the last byte.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
}

/// The problem types of a request refused for a storage fault: the log cannot be written, or
/// the database could not be read.
const UNAVAILABLE: [&str; 2] = ["disclosure-log-unavailable", "storage-unavailable"];

/// What a client saw: the status, and for a 200 the seq and leaf hash it was promised, and the
/// signed receipt of that promise.
type Seen = Vec<(u16, Option<(i64, String, String)>)>;

/// `n` disclosures from `conc` concurrent clients.
async fn load(gw: &Gateway, case: &Case, n: usize, conc: usize) -> Seen {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let staff = format!("vp.{}", i % conc);
            let (s, v) = ask(gw, "politie", &staff, "voorportaal", "duiding", case).await;
            if s != 200 {
                let slug = v["type"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                assert!(s == 503 && UNAVAILABLE.contains(&slug), "{s} {v}");
                return (s, None);
            }
            let promised = (
                v["audit_seq"].as_i64().unwrap(),
                v["audit_leaf_hash"].as_str().unwrap().to_owned(),
                v["audit_receipt"].as_str().unwrap().to_owned(),
            );
            (s, Some(promised))
        })
        .buffer_unordered(conc)
        .collect()
        .await
}

/// Disclosures from `conc` concurrent clients until `stop` is set.
async fn load_until(
    gw: &Gateway,
    case: &Case,
    conc: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Seen {
    let mut seen = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        seen.extend(load(gw, case, conc, conc).await);
    }
    seen
}

async fn wait_writer(gw: &Gateway, ok: bool, within: Duration) {
    let t0 = Instant::now();
    while writer_check(gw).await != Some(ok) {
        assert!(
            t0.elapsed() < within,
            "the log writer's readiness did not become {ok} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every 200 has its entry with that seq and leaf hash, and no seq was answered twice (read
/// through the gateway's store: SQLite or PostgreSQL).
async fn answers_in_log(database_url: &str, seen: &Seen) -> usize {
    let db = gateway::store::Db::connect(database_url).await.unwrap();
    let leaves: BTreeMap<i64, String> = db
        .leaf_hashes(0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, h)| (s, hex::encode(h)))
        .collect();
    db.close().await;
    let mut answered = BTreeMap::new();
    for (seq, leaf, _) in seen.iter().filter_map(|s| s.1.as_ref()) {
        assert!(
            answered.insert(*seq, leaf).is_none(),
            "seq {seq} answered twice"
        );
        assert_eq!(
            leaves.get(seq),
            Some(leaf),
            "the entry of an answer with seq {seq} is not in the log with that leaf hash"
        );
    }
    answered.len()
}

/// Every 200 has its entry; the log verifies; the partners' receipts hold against it.
async fn holds(database_url: &str, seen: &Seen) {
    let answered = answers_in_log(database_url, seen).await;
    verify_ok(database_url);
    // The partners' receipts, held against the log by `audit verify --receipts`.
    let dir = scratch().join(format!("receipts-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (seq, _, receipt) in seen.iter().filter_map(|s| s.1.as_ref()) {
        std::fs::write(dir.join(format!("{seq}.receipt")), receipt).unwrap();
    }
    let (code, out) = verify_receipts(database_url, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("receipts: {answered} checked")),
        "{out}"
    );
    // Held against another log (a rewound or replaced database), they fail, naming each.
    let other = sqlite_url("other-log");
    drop(Gateway::start_with(&other, &[]));
    let (code, out) = verify_receipts(&other, &dir);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("an answered entry is missing"), "{out}");
}

/// `gateway audit verify --receipts DIR`: its exit code, and what it said.
fn verify_receipts(database_url: &str, dir: &std::path::Path) -> (i32, String) {
    let config = pki().join("gateway.toml");
    crate::audit::audit_cli(&[
        "verify",
        "--config",
        config.to_str().unwrap(),
        "--database-url",
        database_url,
        "--receipts",
        dir.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_gives_only_503s_and_the_gateway_recovers_by_itself_and_after_kill_9() {
    let Some(disk) = Tmpfs::mount("disk-full", "32m") else {
        eprintln!(
            "SKIPPED: this machine does not allow a tmpfs mount; the writer's fault tests (log::writer::tests) still ran"
        );
        return;
    };
    let url = format!("sqlite://{}/gw.db", disk.0.display());
    let mut gw = Gateway::start_with(&url, &[]);
    let case = case_with_records(&gw, "999990019").await;
    let filler = disk.0.join("filler");

    // The disk fills while disclosures go on: once the log cannot grow, only 503s.
    fill(&filler);
    let mut seen = load(&gw, &case, 240, 6).await;
    let refused = seen.iter().filter(|s| s.0 == 503).count();
    assert!(refused > 0, "the disk never filled: {} answers", seen.len());
    wait_writer(&gw, false, Duration::from_secs(2)).await;
    let (s, _) = ask(&gw, "politie", "vp.1", "voorportaal", "duiding", &case).await;
    assert_eq!(
        s, 503,
        "nothing is disclosed while the log cannot be written"
    );

    // Space returns: the gateway resumes by itself, and says so.
    std::fs::remove_file(&filler).unwrap();
    wait_writer(&gw, true, Duration::from_secs(10)).await;
    seen.extend(load(&gw, &case, 12, 3).await);
    assert!(
        seen.iter().rev().take(12).all(|s| s.0 == 200),
        "answered again"
    );

    // Full again, and `kill -9` in the middle of it; then space and a restart.
    fill(&filler);
    let killer = {
        let gw_load = load(&gw, &case, 120, 4);
        tokio::time::timeout(Duration::from_millis(1500), gw_load).await
    };
    gw.kill9();
    if let Ok(more) = killer {
        seen.extend(more);
    }
    std::fs::remove_file(&filler).unwrap();
    let gw = Gateway::start_with(&url, &[]);
    seen.extend(load(&gw, &case, 6, 2).await);
    drop(gw);
    holds(&url, &seen).await;
    // The outage is in the log: when, why (the disk), and the refusals not written one by one.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let outages: Vec<(String,)> =
        sqlx::query_as("SELECT entry FROM log_records WHERE kind = 'log-outage'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let first: Value = serde_json::from_str(&outages.first().expect("an outage entry").0).unwrap();
    assert_eq!(first["log_outage"]["cause"], "storage-full", "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_write_lock_is_met_with_503_at_once_and_the_gateway_recovers() {
    let url = sqlite_url("busy");
    let gw = Gateway::start_with(&url, &[]);
    let case = case_with_records(&gw, "999990019").await;
    // Another process takes the database's write lock and keeps it for 7 s (longer than the
    // gateway's 5 s busy wait).
    use sqlx::Connection;
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let held = Instant::now();
    // The first batch waits for the lock; once readiness says the writer cannot write (a batch
    // stalled for two seconds, then the 5 s busy wait failed), a request is refused without
    // waiting for the lock itself (bounds generous for a loaded machine: this checks that it
    // does not wait, not how fast it is).
    let (mut seen, ()) = tokio::join!(load(&gw, &case, 2, 2), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        wait_writer(&gw, false, Duration::from_secs(10)).await;
        let t0 = Instant::now();
        let (s, _) = ask(&gw, "politie", "vp.9", "voorportaal", "duiding", &case).await;
        assert_eq!(s, 503);
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "refused at once while the writer cannot write, not after {:?}",
            t0.elapsed()
        );
    });
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(held.elapsed())).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    wait_writer(&gw, true, Duration::from_secs(10)).await;
    seen.extend(load(&gw, &case, 4, 2).await);
    assert!(seen.iter().rev().take(4).all(|s| s.0 == 200));
    drop(gw);
    holds(&url, &seen).await;
}

/// Refusals of disclosures for a storage fault in the log: written one by one, and
/// counted in `log-outage` entries.
async fn refusals_accounted(database_url: &str) -> u64 {
    let db = gateway::store::Db::connect(database_url).await.unwrap();
    let entries: Vec<String> = db
        .entries(0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.record)
        .filter(|r| r.kind == "disclosure" || r.kind == "log-outage")
        .map(|r| r.entry)
        .collect();
    db.close().await;
    let mut n = 0;
    for e in entries {
        let v: Value = serde_json::from_str(&e).unwrap();
        let unavailable = |p: &Value| UNAVAILABLE.iter().any(|u| p == u);
        if v["kind"] == "disclosure" && unavailable(&v["problem"]) {
            n += 1;
        }
        for u in v["log_outage"]["unrecorded_refusals"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if u["kind"] == "disclosure" && unavailable(&u["problem"]) {
                n += u["count"].as_u64().unwrap();
            }
        }
    }
    n
}

/// Waits (at most 5 s: the writer records counts left over from an outage right after the
/// batch that follows it) until the log accounts for `refused` refusals.
async fn all_refusals_accounted(database_url: &str, refused: u64) {
    let t0 = Instant::now();
    loop {
        let n = refusals_accounted(database_url).await;
        if n == refused || t0.elapsed() > Duration::from_secs(5) {
            assert_eq!(
                n, refused,
                "every refusal during the outage is in the log, one by one or counted"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PostgreSQL cluster of the test's own, so that it can be stopped without touching others.
struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

/// Whether the tests run as root (PostgreSQL's own programs then run as `postgres`).
fn root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// One of PostgreSQL's programs, as the `postgres` user where the tests run as root (it
/// refuses to run as root).
fn as_postgres(program: &std::path::Path) -> std::process::Command {
    if root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}

impl PrivatePostgres {
    fn pg(&self, args: &[&str]) -> std::process::Command {
        let mut c = as_postgres(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data).args(args);
        c.stdout(std::process::Stdio::null());
        c
    }

    /// `None` without PostgreSQL's binaries (the suite's PostgreSQL tests need them anyway).
    fn init() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|d| d.path().join("bin"))
            .find(|b| b.join("initdb").exists())?;
        let dir =
            std::env::temp_dir().join(format!("gw-pg-fault-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        if root() {
            std::process::Command::new("chown")
                .arg("postgres")
                .arg(&dir)
                .status()
                .unwrap();
        }
        let data = dir.join("data");
        let mut initdb = as_postgres(&bin.join("initdb"));
        let ok = initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres { bin, data, port };
        pg.start();
        Some(pg)
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.parent().unwrap().display()
        );
        let log = self.data.parent().unwrap().join("log");
        let ok = self
            .pg(&["-l", log.to_str().unwrap(), "-w", "-o", &opts, "start"])
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl start");
    }

    fn stop_immediate(&self) {
        let ok = self
            .pg(&["-m", "immediate", "-w", "stop"])
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl stop");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg(&["-m", "immediate", "-w", "stop"]).status();
        let _ = std::fs::remove_dir_all(self.data.parent().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_records_or_counts_every_refusal_and_readiness_answers_fast() {
    let Some(pg) = PrivatePostgres::init() else {
        eprintln!("SKIPPED: no PostgreSQL binaries");
        return;
    };
    let url = pg.url();
    let gw = Gateway::start_with(&url, &[]);
    let case = case_with_records(&gw, "999990019").await;
    let mut seen = load(&gw, &case, 20, 4).await;
    // The server stops hard while requests go on.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (during, ()) = tokio::join!(load_until(&gw, &case, 4, &stop), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        pg.stop_immediate();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // Readiness answers within a second, and says not ready.
        let t0 = Instant::now();
        let r = reqwest::get(format!("http://{}/readyz", gw.health))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        // Each database check is bounded at 400 ms (generous here for a loaded machine: it
        // must not wait for the pool's own timeouts).
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "/readyz took {:?}",
            t0.elapsed()
        );
        // Within seconds the writer has met the fault (reads fail after 3 s at most, the
        // writer's own connection at once or after as long), and says so.
        wait_writer(&gw, false, Duration::from_secs(8)).await;
        // A request is refused at once, not after a connection timeout.
        let t0 = Instant::now();
        let (s, _) = ask(&gw, "politie", "vp.9", "voorportaal", "duiding", &case).await;
        assert_eq!(s, 503);
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "refused after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        pg.start();
        wait_writer(&gw, true, Duration::from_secs(10)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    seen.extend(during);
    seen.push((503, None));
    wait_writer(&gw, true, Duration::from_secs(10)).await;
    seen.extend(load(&gw, &case, 8, 2).await);
    assert!(
        seen.iter().rev().take(8).all(|s| s.0 == 200),
        "answered again"
    );
    let refused = seen.iter().filter(|s| s.0 == 503).count() as u64;
    assert!(refused > 1);
    all_refusals_accounted(&url, refused).await;
    // Every answer has its entry.
    answers_in_log(&url, &seen).await;
    drop(gw);
    verify_ok(&url);
}
