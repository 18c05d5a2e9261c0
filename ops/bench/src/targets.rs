//! The performance issue's targets, each marked met or not from this run's figures (and, for the
//! two that criterion and the log bench measure, from their latest saved results, with when).

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::Sample;

/// What one run measured, as the targets need it.
pub struct Figures<'a> {
    /// Closed-loop medians by target name.
    pub closed: &'a BTreeMap<&'a str, Sample>,
    /// The open-loop runs, by scenario, and their rate.
    pub at_rate: &'a BTreeMap<&'a str, Sample>,
    /// The open-loop rate.
    pub rate: f64,
    /// The gateway's peak RSS (MB) over the run, with 1,000 idle connections and 100 active.
    pub peak_rss_mb: Option<f64>,
    /// S1 on PostgreSQL against S1 on SQLite, when PostgreSQL was run.
    pub postgres: Option<&'a Postgres>,
    /// S1's and S3's CPU as the register and the log grow, when run.
    pub scale: Option<&'a crate::scale::Scale>,
    /// The cargo target directory (criterion's and the log bench's results).
    pub target_dir: &'a Path,
    /// When this run started (seconds since the epoch), to tell this run's figures from older.
    pub started: u64,
}

/// The PostgreSQL server's durability settings, as it reported them.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// `SHOW fsync`.
    pub fsync: String,
    /// `SHOW synchronous_commit`.
    pub synchronous_commit: String,
}

impl PgSettings {
    /// Both on: every commit reached the disk before it was answered.
    pub fn durable(&self) -> bool {
        self.fsync == "on" && self.synchronous_commit == "on"
    }
}

impl std::fmt::Display for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fsync={}, synchronous_commit={}",
            self.fsync, self.synchronous_commit
        )
    }
}

/// S1 on PostgreSQL against SQLite in the same run.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// PostgreSQL's S1 throughput over SQLite's.
    pub ratio: f64,
    /// The server's settings during the run.
    pub settings: PgSettings,
}

struct Row {
    target: String,
    result: String,
    met: Option<bool>,
}

/// The targets table (Markdown).
pub fn table(f: &Figures<'_>) -> String {
    let c = |k: &str| f.closed.get(k);
    let mut rows = Vec::new();
    match (c("S1"), c("B1")) {
        (Some(s1), Some(b1)) => {
            let r = s1.rps / b1.rps;
            rows.push(Row {
                target: "S1 ≥ 70 % of B1's throughput".into(),
                result: format!("{:.0} %", r * 100.0),
                met: Some(r >= 0.70),
            });
            let r = s1.cpu_us_per_req / b1.cpu_us_per_req;
            rows.push(Row {
                target: "S1 server CPU per request ≤ 1.4 × B1's".into(),
                result: format!(
                    "{r:.1} × ({:.0} against {:.0} µs)",
                    s1.cpu_us_per_req, b1.cpu_us_per_req
                ),
                met: Some(r <= 1.4),
            });
        }
        _ => rows.push(absent("S1 against B1", "S1 or B1 not run")),
    }
    match (c("S3"), c("B0")) {
        (Some(s3), Some(b0)) => {
            let r = s3.cpu_us_per_req / b0.cpu_us_per_req;
            rows.push(Row {
                target: "S3 server CPU per request ≤ 2 × B0's".into(),
                result: format!(
                    "{r:.1} × ({:.0} against {:.0} µs)",
                    s3.cpu_us_per_req, b0.cpu_us_per_req
                ),
                met: Some(r <= 2.0),
            });
        }
        _ => rows.push(absent("S3 against B0", "S3 or B0 not run")),
    }
    for (name, bound) in [("S1", 10.0), ("S2", 5.0), ("S3", 5.0)] {
        let target = format!("{name} p99 ≤ {bound:.0} ms at half of S1's capacity");
        match f.at_rate.get(name) {
            Some(s) => rows.push(Row {
                target,
                result: format!(
                    "{:.2} ms at {:.0} req/s (achieved {:.0})",
                    s.p99_ms, f.rate, s.rps
                ),
                // A rate not reached is a queue, never a met latency target.
                met: Some(s.p99_ms <= bound && s.rps >= f.rate * 0.9),
            }),
            None => rows.push(absent(&target, "latency runs not run")),
        }
    }
    let pg_target = "S1 on durable PostgreSQL ≥ 60 % of SQLite's";
    rows.push(match f.postgres {
        // A server that does not wait for the disk measures something else.
        Some(p) if !p.settings.durable() => absent(
            pg_target,
            &format!(
                "{:.0} % on a server with {}: not a durable figure",
                p.ratio * 100.0,
                p.settings
            ),
        ),
        Some(p) => Row {
            target: pg_target.into(),
            result: format!("{:.0} % ({})", p.ratio * 100.0, p.settings),
            met: Some(p.ratio >= 0.60),
        },
        None => absent(
            pg_target,
            "PostgreSQL not run (GATEWAY_BENCH_NO_POSTGRES, or an `--only` run)",
        ),
    });
    rows.push(match f.peak_rss_mb {
        Some(mb) => Row {
            target: "peak RSS ≤ 120 MB (1,000 idle + 100 active connections)".into(),
            result: format!("{mb:.1} MB"),
            met: Some(mb <= 120.0),
        },
        None => absent("peak RSS ≤ 120 MB", "memory run not run"),
    });
    rows.push(log_append(f));
    rows.push(decide(f));
    growth(f, &mut rows);
    floor(f, &mut rows);

    let mut out = String::from("| target | this run | |\n|---|---|---|\n");
    for r in &rows {
        let mark = match r.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {mark} |", r.target, r.result);
    }
    out
}

/// S1's and S3's CPU at the large register and on the long log against the small register.
fn growth(f: &Figures<'_>, rows: &mut Vec<Row>) {
    let Some(sc) = f.scale else {
        rows.push(absent(
            "S1's and S3's CPU at 5,000 subjects and on a 1,000,000-entry log ≤ 1.2 × at 200",
            "scale runs not run",
        ));
        return;
    };
    let cases = [
        (format!("{} subjects", sc.large), sc.at_large),
        (format!("a {}-entry log", sc.log_entries), sc.on_long_log),
    ];
    for (what, cost) in cases {
        for (name, small, grown) in [
            ("S1", sc.at_small.s1, cost.map(|c| c.s1)),
            ("S3", sc.at_small.s3, cost.map(|c| c.s3)),
        ] {
            let target = format!("{name}'s CPU at {what} ≤ 1.2 × at {} subjects", sc.small);
            rows.push(match grown {
                Some(g) => {
                    let r = g / small;
                    Row {
                        target,
                        result: format!("{r:.2} × ({g:.0} against {small:.0} µs)"),
                        met: Some(r <= 1.2),
                    }
                }
                None => absent(&target, "not run"),
            });
        }
    }
}

/// The issue's floor ("done when"), beside its goals.
fn floor(f: &Figures<'_>, rows: &mut Vec<Row>) {
    let c = |k: &str| f.closed.get(k);
    if let (Some(s1), Some(b1)) = (c("S1"), c("B1")) {
        let r = s1.rps / b1.rps;
        rows.push(Row {
            target: "floor: S1/B1 ≥ 0.35".into(),
            result: format!("{r:.2}"),
            met: Some(r >= 0.35),
        });
    }
    if let (Some(s3), Some(b0)) = (c("S3"), c("B0")) {
        let r = s3.cpu_us_per_req / b0.cpu_us_per_req;
        rows.push(Row {
            target: "floor: S3's CPU ≤ 3.5 × B0's".into(),
            result: format!("{r:.1} ×"),
            met: Some(r <= 3.5),
        });
    }
    if let Some(sc) = f.scale {
        let large = format!("{} subjects", sc.large);
        let log = format!("a {}-entry log", sc.log_entries);
        for (what, cost) in [(large, sc.at_large), (log, sc.on_long_log)] {
            if let Some(g) = cost {
                let r = g.s1 / sc.at_small.s1;
                rows.push(Row {
                    target: format!("floor: S1's CPU at {what} ≤ 1.5 × at {} subjects", sc.small),
                    result: format!("{r:.2} ×"),
                    met: Some(r <= 1.5),
                });
            }
        }
    }
}

fn absent(target: &str, why: &str) -> Row {
    Row {
        target: target.into(),
        result: why.into(),
        met: None,
    }
}

/// When a results file was written, said against this run's start.
fn when(path: &Path, started: u64) -> Option<String> {
    let t = std::fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(if t >= started {
        "this run".into()
    } else {
        let ago = started - t;
        match ago {
            0..3_600 => format!("{} min before this run", ago / 60),
            3_600..86_400 => format!("{} h before this run", ago / 3_600),
            _ => format!("{} days before this run", ago / 86_400),
        }
    })
}

fn log_append(f: &Figures<'_>) -> Row {
    let target = "log append ≥ 80 % of SQLite's own floor at batch 512 (durable, same run)";
    let path = f.target_dir.join("bench/log.json");
    let v: Option<Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let at = |p: &str| {
        v.as_ref()
            .and_then(|v| v.pointer(p))
            .and_then(Value::as_f64)
    };
    match (
        at("/sqlite/append/512"),
        at("/floor/append/512"),
        when(&path, f.started),
    ) {
        (Some(x), Some(floor), Some(w)) => Row {
            target: target.into(),
            result: format!(
                "{:.0} % ({x:.0} against {floor:.0} entries/s; `cargo bench -p gateway --bench log`, {w})",
                x / floor * 100.0
            ),
            met: Some(x >= 0.8 * floor),
        },
        (Some(x), None, Some(w)) => absent(
            target,
            &format!("{x:.0} entries/s, no floor measured with it ({w})"),
        ),
        _ => absent(target, "not run: `cargo bench -p gateway --bench log`"),
    }
}

fn decide(f: &Figures<'_>) -> Row {
    let target = "decision + transform ≤ 2 µs per 20-field record";
    let path = f
        .target_dir
        .join("criterion/decide+transform 20-field record/new/estimates.json");
    let v: Option<Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match (
        v.as_ref()
            .and_then(|v| v.pointer("/median/point_estimate"))
            .and_then(Value::as_f64),
        when(&path, f.started),
    ) {
        (Some(ns), Some(w)) => Row {
            target: target.into(),
            result: format!(
                "{:.2} µs median (`cargo bench -p policy --bench decide`, {w})",
                ns / 1000.0
            ),
            met: Some(ns <= 2_000.0),
        },
        _ => absent(target, "not run: `cargo bench -p policy --bench decide`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rps: f64, cpu: f64, p99: f64) -> Sample {
        Sample {
            rps,
            p50_ms: p99 / 2.0,
            p99_ms: p99,
            cpu_us_per_req: cpu,
            gen_cpu_us_per_req: 30.0,
            requests: 1,
            unexpected: 0,
            errors: 0,
        }
    }

    fn row<'a>(table: &'a str, starts: &str) -> &'a str {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {starts}")))
            .unwrap_or_else(|| panic!("no row {starts} in\n{table}"))
    }

    #[test]
    fn each_target_is_marked_from_the_figures_and_absent_ones_are_not_measured() {
        let closed = BTreeMap::from([
            ("B0", sample(38_000.0, 20.0, 2.0)),
            ("B1", sample(10_000.0, 135.0, 7.0)),
            ("S1", sample(7_500.0, 180.0, 9.0)),
            ("S3", sample(5_000.0, 150.0, 16.0)),
        ]);
        let at_rate = BTreeMap::from([
            ("S1", sample(3_750.0, 180.0, 8.0)),
            // Low latency, but the rate was not reached: a queue, never met.
            ("S2", sample(2_000.0, 300.0, 1.0)),
            ("S3", sample(3_750.0, 150.0, 6.0)),
        ]);
        let dir = std::env::temp_dir().join(format!("targets-{}", std::process::id()));
        let cost = |s1, s3| crate::scale::Cost { s1, s3 };
        let scale = crate::scale::Scale {
            small: 200,
            large: 5000,
            log_entries: 1_000_000,
            at_small: cost(600.0, 180.0),
            at_large: Some(cost(650.0, 400.0)),
            on_long_log: None,
        };
        let t = table(&Figures {
            closed: &closed,
            at_rate: &at_rate,
            rate: 3_750.0,
            peak_rss_mb: Some(151.0),
            postgres: None,
            scale: Some(&scale),
            target_dir: &dir,
            started: 0,
        });
        assert!(
            row(&t, "S1's CPU at 5000 subjects").ends_with("| met |"),
            "{t}"
        );
        assert!(
            row(&t, "S3's CPU at 5000 subjects").contains("**not met**"),
            "{t}"
        );
        assert!(
            row(&t, "S1's CPU at a 1000000-entry log").ends_with("| not measured |"),
            "{t}"
        );
        assert!(row(&t, "floor: S1/B1").ends_with("| 0.75 | met |"), "{t}");
        assert!(row(&t, "floor: S3's CPU").contains("**not met**"), "{t}");
        assert!(
            row(&t, "floor: S1's CPU at 5000 subjects").ends_with("| met |"),
            "{t}"
        );
        assert!(row(&t, "S1 ≥ 70 %").ends_with("| 75 % | met |"), "{t}");
        assert!(row(&t, "S1 server CPU").contains("1.3 ×"), "{t}");
        assert!(row(&t, "S1 server CPU").ends_with("| met |"), "{t}");
        assert!(row(&t, "S3 server CPU").contains("**not met**"), "{t}");
        assert!(row(&t, "S1 p99").ends_with("| met |"), "{t}");
        assert!(row(&t, "S2 p99").contains("**not met**"), "{t}");
        assert!(row(&t, "S3 p99").contains("**not met**"), "{t}");
        assert!(row(&t, "peak RSS").contains("**not met**"), "{t}");
        assert!(
            row(&t, "S1 on durable PostgreSQL").ends_with("| not measured |"),
            "{t}"
        );
        assert!(row(&t, "log append").ends_with("| not measured |"), "{t}");
        assert!(row(&t, "decision").ends_with("| not measured |"), "{t}");
    }

    #[test]
    fn saved_micro_benchmark_results_are_read_and_dated() {
        let dir = std::env::temp_dir().join(format!("targets-saved-{}", std::process::id()));
        let crit = dir.join("criterion/decide+transform 20-field record/new");
        std::fs::create_dir_all(&crit).unwrap();
        std::fs::create_dir_all(dir.join("bench")).unwrap();
        std::fs::write(
            crit.join("estimates.json"),
            r#"{"median":{"point_estimate":1720.5}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("bench/log.json"),
            r#"{"sqlite":{"append":{"512":5112.0}},"floor":{"append":{"512":20448.0}}}"#,
        )
        .unwrap();
        let empty = BTreeMap::new();
        let pg = |fsync: &str| Postgres {
            ratio: 0.9,
            settings: PgSettings {
                fsync: fsync.into(),
                synchronous_commit: "on".into(),
            },
        };
        let durable = pg("on");
        let figures = |postgres| Figures {
            closed: &empty,
            at_rate: &empty,
            rate: 1.0,
            peak_rss_mb: None,
            postgres,
            scale: None,
            target_dir: &dir,
            started: 0,
        };
        let t = table(&figures(Some(&durable)));
        assert!(row(&t, "decision").contains("1.72 µs median"), "{t}");
        assert!(row(&t, "decision").contains("this run"), "{t}");
        assert!(row(&t, "decision").ends_with("| met |"), "{t}");
        assert!(
            row(&t, "log append").contains("25 % (5112 against 20448 entries/s"),
            "{t}"
        );
        assert!(row(&t, "log append").contains("**not met**"), "{t}");
        assert!(
            row(&t, "S1 on durable PostgreSQL")
                .ends_with("| 90 % (fsync=on, synchronous_commit=on) | met |"),
            "{t}"
        );
        // The tests' cluster (fsync=off) gives no figure for this target.
        let fast = pg("off");
        let t = table(&figures(Some(&fast)));
        assert!(
            row(&t, "S1 on durable PostgreSQL").contains("not a durable figure | not measured |"),
            "{t}"
        );
        assert!(
            row(&t, "S1 against B1").ends_with("| not measured |"),
            "{t}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
