//! `gateway-bench`: the gateway's scenarios against baselines measured in the same run.
//! Usage: `ops/bench/run` (builds in release mode, then `gateway-bench run`). See
//! docs/performance.md.
#![expect(
    clippy::indexing_slicing,
    reason = "a measurement harness: its tables and answers are its own; a panic is a failed run, never a served request"
)]

mod baseline;
mod load;
mod procstat;
mod scale;
mod targets;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use load::{Req, Settings, Tls};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "gateway-bench",
    about = "Benchmark harness: scenarios S1-S5 against baselines B0-B2 in one run"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run everything and print the table.
    Run(RunArgs),
    /// Serve a baseline (started by `run`).
    Baseline {
        /// B0 or B1.
        #[arg(long, value_enum)]
        mode: baseline::Mode,
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// Answer size (B0).
        #[arg(long, default_value_t = 6000)]
        bytes: usize,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connections of the closed-loop runs.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Runs per target; the table shows the median.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Distinct subjects (cases with records of all seven partners).
    #[arg(long, default_value_t = 500)]
    subjects: usize,
    /// Rate of the latency runs (requests per second); by default half of S1's closed-loop
    /// throughput in this run (the "half of S1's capacity").
    #[arg(long)]
    rate: Option<f64>,
    /// Only these closed-loop targets (comma-separated, e.g. `B1,S1,S3`); skips the memory and
    /// PostgreSQL runs, the oha cross-check and (unless `--rate` is given) the latency runs. For
    /// a quick look at one change.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also run S1 on this PostgreSQL server (an admin URL; a fresh database is made), or on
    /// GATEWAY_TEST_POSTGRES_URL when set.
    #[arg(long, env = "GATEWAY_TEST_POSTGRES_URL")]
    postgres: Option<String>,
    /// The large register of the cost-as-the-work-grows runs (0: left out).
    #[arg(long, default_value_t = 5000)]
    scale_subjects: usize,
    /// The pre-filled log of the cost-as-the-work-grows runs, in entries (0: left out).
    #[arg(long, default_value_t = 1_000_000)]
    scale_log_entries: usize,
    /// Run the cost-as-the-work-grows runs also with `--only` (a full run always does).
    #[arg(long)]
    scale: bool,
    /// Skip nginx (B2) even when it is installed.
    #[arg(long)]
    skip_nginx: bool,
    /// Where the work directory and results go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    gateway::install_crypto_provider();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Baseline { mode, dir, bytes } => rt.block_on(baseline::serve(mode, &dir, bytes)),
        Cmd::Run(args) => rt.block_on(run(args)),
    }
}

/// A server process, killed on drop.
struct Server {
    child: Child,
    base: String,
    name: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        // nginx's master stops its workers on SIGTERM; a SIGKILL would leave them running (and
        // spinning) through every later measurement.
        let stopped = self.name == "nginx"
            && std::process::Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `cmd`, which prints one JSON line with `api` once it listens.
    fn start(name: &'static str, mut cmd: Command) -> anyhow::Result<Server> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("{name} did not start: {line}"))?;
        let api = v["api"].as_str().context("no api address")?;
        Ok(Server {
            child,
            base: format!("https://{api}"),
            name,
        })
    }
}

fn exe(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me.parent().context("exe dir")?.join(name))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ----- The gateway and its data ----------------------------------------------------------------

fn start_gateway(dir: &Path, database_url: &str) -> anyhow::Result<Server> {
    let mut cmd = Command::new(exe("gateway")?);
    cmd.args(["serve", "--config"])
        .arg(dir.join("bench.toml"))
        .arg("--allow-example-pki")
        .env("GATEWAY_LISTEN", "127.0.0.1:0")
        .env("GATEWAY_HEALTH_LISTEN", "127.0.0.1:0")
        .env("GATEWAY_DATABASE_URL", database_url)
        .env("GATEWAY_LOG_LEVEL", "warn");
    Server::start("gateway", cmd)
}

/// Mints a token for a partner's staff member, bound to the partner's certificate.
fn token(dir: &Path, partner: &str, sub: &str, role: &str) -> anyhow::Result<Arc<str>> {
    let key = std::fs::read(dir.join(gateway::pki::layout::token_key(partner)))?;
    let cert = gateway::tls::read_certs(&dir.join(format!("{partner}/client.pem")))?;
    let thumb = gateway::registry::thumbprint(cert[0].as_ref());
    use gateway::clock::Clock;
    let t = gateway::auth::mint(
        &key,
        &format!("{partner}-1"),
        partner,
        sub,
        &[role.to_owned()],
        &thumb,
        "gateway.ipga-r.example",
        gateway::clock::SystemClock.now(),
        900,
    )?;
    Ok(t.into())
}

/// One seeded case.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    subject_ref: String,
    bsn: String,
    regisseur: String,
}

fn bsns() -> impl Iterator<Item = String> {
    (200_000_000u32..)
        .map(|x| format!("{x:09}"))
        .filter(|b| policy::Bsn::parse(b).is_ok())
}

/// Registers `n` cases with every partner's records and a regisseur each (100 staff ids).
async fn seed(gw: &Server, tls: &Tls, dir: &Path, n: usize) -> anyhow::Result<Vec<Seeded>> {
    let records = gateway::demo::records();
    let mut clients = std::collections::HashMap::new();
    for p in ["politie", "oov", "om", "rn", "rvdk", "ggd", "wpi"] {
        clients.insert(p, tls.client(p)?);
    }
    let clients = Arc::new(clients);
    let vp = token(dir, "politie", "vp.bench", "voorportaal")?;
    let sec = token(dir, "oov", "sec.bench", "secretaris")?;
    let mut owners = std::collections::HashMap::new();
    for (product, _) in &records {
        let owner = product.split('.').next().unwrap_or_default();
        owners.insert(owner, token(dir, owner, "bron", "bronsysteem")?);
    }
    let owners = Arc::new(owners);
    let records = Arc::new(records);
    // The regisseur, not the secretaris, composes the UVO: one token per staff id.
    let regisseurs: Arc<Vec<Arc<str>>> = Arc::new(
        (0..100)
            .map(|i| token(dir, "rn", &format!("reg.{i:03}"), "regisseur"))
            .collect::<anyhow::Result<_>>()?,
    );
    let mut out = Vec::new();
    let all: Vec<String> = bsns().take(n).collect();
    for chunk in all.chunks(16) {
        let mut tasks = Vec::new();
        for (k, bsn) in chunk.iter().enumerate() {
            let (clients, owners, records, vp, sec, base, bsn, regisseurs) = (
                clients.clone(),
                owners.clone(),
                records.clone(),
                vp.clone(),
                sec.clone(),
                gw.base.clone(),
                bsn.clone(),
                regisseurs.clone(),
            );
            let which = (out.len() + k) % 100;
            let regisseur = format!("reg.{which:03}");
            tasks.push(tokio::spawn(async move {
                let cl = |p: &str| clients.get(p).cloned().context("client");
                let v: Value = cl("politie")?
                    .post(format!("{base}/v1/cases"))
                    .bearer_auth(&*vp)
                    .json(&json!({"subject": {"bsn": bsn}, "signal_date": "2026-07-01", "risk_group": 3, "ideology": "jihadistisch"}))
                    .send()
                    .await?
                    .json()
                    .await?;
                let id = v["id"].as_str().context("case id")?.to_owned();
                let subject_ref = v["subject_ref"].as_str().context("subject_ref")?.to_owned();
                let patch = |who: &str, t: &str, body: Value| {
                    let (c, t, url) = (cl(who), t.to_owned(), format!("{base}/v1/cases/{id}"));
                    async move {
                        let r = c?.patch(url).bearer_auth(t).json(&body).send().await?;
                        anyhow::ensure!(r.status() == 200, "patch: {}", r.text().await?);
                        anyhow::Ok(())
                    }
                };
                patch("politie", &vp, json!({"status": "duiding"})).await?;
                for (product, recs) in records.iter() {
                    let owner = product.split('.').next().unwrap_or_default();
                    let r = cl(owner)?
                        .put(format!("{base}/v1/records/{product}/{subject_ref}"))
                        .bearer_auth(&**owners.get(owner).context("owner token")?)
                        .json(&json!({"records": recs}))
                        .send()
                        .await?;
                    anyhow::ensure!(r.status() == 200, "records: {}", r.text().await?);
                }
                patch("oov", &sec, json!({"status": "opgenomen", "regisseur": {"partner": "rn", "staff_id": regisseur}, "decision": {"reference": "PTO-bench/1", "date": "2026-11-01", "members": [{"partner": "oov", "staff_id": "pto.1"}, {"partner": "politie", "staff_id": "pto.2"}, {"partner": "om", "staff_id": "pto.3"}, {"partner": "ggd", "staff_id": "pto.4"}]}, "check_override": "bench: no other approach to ask"})).await?;
                let own = regisseurs.get(which).context("regisseur token")?;
                patch("rn", own, json!({"uvo_partners": ["politie", "wpi", "ggd"]})).await?;
                anyhow::Ok(Seeded {
                    id,
                    subject_ref,
                    bsn,
                    regisseur,
                })
            }));
        }
        for t in tasks {
            out.push(t.await??);
        }
        if out.len() % 100 == 0 {
            eprintln!("  seeded {}/{n} subjects", out.len());
        }
    }
    Ok(out)
}

/// The scenarios' requests, with fresh tokens.
struct Plans {
    s1: Vec<Req>,
    s2: Vec<Req>,
    s3: Vec<Req>,
    s4: Vec<Req>,
}

fn plans(dir: &Path, cases: &[Seeded]) -> anyhow::Result<Plans> {
    let mut reg = std::collections::HashMap::new();
    for c in cases {
        if !reg.contains_key(&c.regisseur) {
            reg.insert(
                c.regisseur.clone(),
                token(dir, "rn", &c.regisseur, "regisseur")?,
            );
        }
    }
    let rn: Arc<str> = "rn".into();
    let oov: Arc<str> = "oov".into();
    let disclosure = |c: &Seeded, purpose: &str, expect: u16| -> anyhow::Result<Req> {
        Ok(Req {
            partner: rn.clone(),
            post: true,
            path: "/v1/disclosures".into(),
            token: reg.get(&c.regisseur).context("token")?.clone(),
            body: Some(
                json!({"subject": {"ref": c.subject_ref}, "purpose": purpose, "case": c.id})
                    .to_string()
                    .into(),
            ),
            expect,
        })
    };
    let s1 = cases
        .iter()
        .map(|c| disclosure(c, "regie", 200))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let s3 = cases
        .iter()
        .map(|c| disclosure(c, "duiding", 403))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Checks by 50 intake staff: half known subjects, half unknown.
    let intake: Vec<Arc<str>> = (0..50)
        .map(|i| token(dir, "oov", &format!("map.{i:02}"), "melder-intake"))
        .collect::<anyhow::Result<_>>()?;
    let unknown: Vec<String> = bsns().skip(cases.len() + 1000).take(cases.len()).collect();
    let s2 = cases
        .iter()
        .zip(&unknown)
        .enumerate()
        .flat_map(|(i, (c, u))| [c.bsn.clone(), u.clone()].map(|b| (i, b)))
        .map(|(i, b)| Req {
            partner: oov.clone(),
            post: true,
            path: "/v1/checks".into(),
            token: intake[i % intake.len()].clone(),
            body: Some(
                json!({"subject": {"bsn": b}, "purpose": "aanpak-check"})
                    .to_string()
                    .into(),
            ),
            expect: 200,
        })
        .collect();
    let analists: Vec<Arc<str>> = (0..20)
        .map(|i| token(dir, "oov", &format!("an.{i:02}"), "analist"))
        .collect::<anyhow::Result<_>>()?;
    let s4 = analists
        .iter()
        .map(|t| Req {
            partner: oov.clone(),
            post: false,
            path: "/v1/aggregates/casussen-ideologie-risicogroep".into(),
            token: t.clone(),
            body: None,
            expect: 200,
        })
        .collect();
    Ok(Plans { s1, s2, s3, s4 })
}

/// 60/20/10/10 of S1/S2/S3/S4, interleaved.
fn mix(p: &Plans) -> Vec<Req> {
    let mut out = Vec::new();
    let pick = |v: &Vec<Req>, i: usize| v[i % v.len()].clone();
    for i in 0..p.s1.len().max(100) {
        for k in 0..6 {
            out.push(pick(&p.s1, i * 6 + k));
        }
        out.push(pick(&p.s2, i * 2));
        out.push(pick(&p.s2, i * 2 + 1));
        out.push(pick(&p.s3, i));
        out.push(pick(&p.s4, i));
    }
    out
}

// ----- Nginx (B2) -----------------------------------------------------------------------------

fn start_nginx(dir: &Path, bytes: usize) -> anyhow::Result<Option<Server>> {
    let Ok(nginx) = which("nginx") else {
        return Ok(None);
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let ndir = dir.join("nginx");
    std::fs::create_dir_all(ndir.join("logs"))?;
    std::fs::write(ndir.join("answer.json"), vec![b'x'; bytes])?;
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 120s;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  scgi_temp_path {d};\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {p}/gateway/server.pem;\n    ssl_certificate_key {p}/gateway/server.key;\n    ssl_client_certificate {p}/ca.pem;\n    ssl_verify_client on;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    location / {{ root {d}; try_files /answer.json =404; error_page 405 =200 /answer.json; }}\n  }}\n}}\n",
        d = ndir.display(),
        p = dir.display()
    );
    std::fs::write(ndir.join("nginx.conf"), conf)?;
    let child = Command::new(nginx)
        .arg("-c")
        .arg(ndir.join("nginx.conf"))
        .arg("-p")
        .arg(&ndir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    // Wait until it listens.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Some(Server {
                child,
                base: format!("https://127.0.0.1:{port}"),
                name: "nginx",
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nginx did not start; see {}/logs/error.log", ndir.display())
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    for d in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("{name} not found")
}

// ----- Measuring ------------------------------------------------------------------------------

/// One measured run of one target.
#[derive(Debug, Clone, serde::Serialize)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
    /// The load generator's own CPU per request (this process), beside the server's: on two
    /// shared cores, how much each side had.
    gen_cpu_us_per_req: f64,
    requests: u64,
    unexpected: u64,
    errors: u64,
}

async fn measure(
    server: &Server,
    tls: &Tls,
    plan: Vec<Req>,
    s: Settings,
) -> anyhow::Result<Sample> {
    let before = procstat::tree_cpu_micros(server.pid());
    let gen_before = procstat::cpu_micros(std::process::id())?;
    let o = load::run(&server.base, tls, Arc::new(plan), s).await?;
    let cpu = procstat::tree_cpu_micros(server.pid()).saturating_sub(before);
    let gen_cpu = procstat::cpu_micros(std::process::id())?.saturating_sub(gen_before);
    if let Some(x) = &o.sample_unexpected {
        eprintln!(
            "  {}: {} unexpected, {} errors, e.g. {x}",
            server.name, o.unexpected, o.errors
        );
    }
    Ok(Sample {
        rps: o.rps(),
        p50_ms: o.ms(0.5),
        p99_ms: o.ms(0.99),
        cpu_us_per_req: cpu as f64 / o.requests.max(1) as f64,
        gen_cpu_us_per_req: gen_cpu as f64 / o.requests.max(1) as f64,
        requests: o.requests,
        unexpected: o.unexpected,
        errors: o.errors,
    })
}

/// B0 measured by an independent load generator, `oha`, when it is installed: its req/s, the
/// server's CPU per request and oha's own, for the table beside the harness's B0.
struct OhaB0 {
    version: String,
    rps: f64,
    server_us: f64,
    oha_us: f64,
}

fn oha_b0(b0: &Server, dir: &std::path::Path, s: Settings) -> Option<OhaB0> {
    let version = Command::new("oha").arg("--version").output().ok()?;
    if !version.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let before = procstat::tree_cpu_micros(b0.pid());
    let children_before = procstat::waited_children_cpu_micros(std::process::id()).ok()?;
    let out = Command::new("oha")
        .args(["-z", &format!("{}s", s.duration.as_secs().max(1))])
        .args(["-c", &s.connections.to_string()])
        .args(["--no-tui", "--output-format", "json"])
        .arg("--cacert")
        .arg(dir.join("ca.pem"))
        .arg("--cert")
        .arg(dir.join("politie/client.pem"))
        .arg("--key")
        .arg(dir.join("politie/client.key"))
        .arg(format!("{}/", b0.base))
        .output()
        .ok()?;
    let server = procstat::tree_cpu_micros(b0.pid()).saturating_sub(before);
    let oha = procstat::waited_children_cpu_micros(std::process::id())
        .ok()?
        .saturating_sub(children_before);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let summary = v.get("summary")?;
    let rps = summary.get("requestsPerSec")?.as_f64()?;
    let total = summary.get("total")?.as_f64()?;
    if summary.get("successRate")?.as_f64()? < 1.0 {
        eprintln!("  oha against B0: not every request succeeded; left out");
        return None;
    }
    let requests = (rps * total).max(1.0);
    Some(OhaB0 {
        version,
        rps,
        server_us: server as f64 / requests,
        oha_us: oha as f64 / requests,
    })
}

fn median(samples: &[Sample]) -> Sample {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    v[v.len() / 2].clone()
}

fn b1_plan(plans: &Plans) -> Vec<Req> {
    // The same requests as S1 (same bytes in, same certificates); the baselines ignore them.
    plans.s1.clone()
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the harness's edge: when this run started, to date saved micro-benchmark results"
    )]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // `ops/bench/run` says when it started, so that the micro benchmarks it ran first count as
    // this run's.
    let started = std::env::var("GATEWAY_BENCH_STARTED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|t| *t <= now)
        .unwrap_or(now);
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let full = args.only.is_empty();
    std::fs::create_dir_all(&args.out)?;
    // Absolute: nginx resolves relative paths against its prefix.
    let work = std::fs::canonicalize(&args.out)?.join(format!("run-{}", std::process::id()));
    let dir = work.join("pki");
    std::fs::create_dir_all(&work)?;
    eprintln!("work directory: {}", work.display());
    // The aanpak-check's per-staff limit lifted: the benchmark's checks are load, not probes.
    let covenant = work.join("ipga-r-bench.toml");
    std::fs::write(
        &covenant,
        std::fs::read_to_string(repo().join("ops/covenant/ipga-r.toml"))?.replacen(
            "per_staff_per_minute = 30",
            "per_staff_per_minute = 10000000",
            1,
        ),
    )?;
    let st = Command::new(exe("gateway")?)
        .args(["certs", "init"])
        .arg(&dir)
        .arg("--covenant")
        .arg(&covenant)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(st.success(), "gateway certs init failed");
    let mut cfg = std::fs::read_to_string(dir.join("gateway.toml"))?;
    cfg.push_str("\n[limits]\npartner_per_second = 10000000\nstaff_per_second = 10000000\n");
    std::fs::write(dir.join("bench.toml"), cfg)?;
    let tls = Tls {
        ca: load::ca(&dir),
        dir: dir.clone(),
    };

    eprintln!(
        "starting the gateway (SQLite) and seeding {} subjects",
        args.subjects
    );
    let gw = start_gateway(
        &dir,
        &format!("sqlite://{}", work.join("bench.db").display()),
    )?;
    let cases = seed(&gw, &tls, &dir, args.subjects).await?;
    let p = plans(&dir, &cases)?;
    // The size of an S1 answer, for B0 and B2.
    let probe = load::run(
        &gw.base,
        &tls,
        Arc::new(vec![p.s1[0].clone()]),
        Settings {
            connections: 1,
            duration: Duration::from_millis(200),
            rate: None,
        },
    )
    .await?;
    anyhow::ensure!(
        probe.unexpected == 0 && probe.errors == 0,
        "S1 does not answer 200: {:?}",
        probe.sample_unexpected
    );
    let answer_bytes = s1_answer_bytes(&gw, &tls, &p.s1[0]).await?;
    eprintln!("an S1 answer is {answer_bytes} bytes");

    let b0 = Server::start("B0", {
        let mut c = Command::new(std::env::current_exe()?);
        c.args([
            "baseline",
            "--mode",
            "b0",
            "--bytes",
            &answer_bytes.to_string(),
            "--dir",
        ])
        .arg(&dir);
        c
    })?;
    let b1 = Server::start("B1", {
        let mut c = Command::new(std::env::current_exe()?);
        c.args(["baseline", "--mode", "b1", "--dir"]).arg(&dir);
        c
    })?;
    let b2 = if args.skip_nginx {
        None
    } else {
        start_nginx(&dir, answer_bytes)?
    };
    if b2.is_none() {
        eprintln!("nginx not installed (apt-get install nginx-light): B2 left out");
    }

    let closed = Settings {
        connections: args.connections,
        duration: Duration::from_secs(args.duration),
        rate: None,
    };
    let mut results: std::collections::BTreeMap<&str, Vec<Sample>> = Default::default();
    for rep in 0..args.repeats {
        eprintln!("round {}/{}", rep + 1, args.repeats);
        let p = plans(&dir, &cases)?;
        let mut targets: Vec<(&str, &Server, Vec<Req>)> =
            vec![("B0", &b0, b1_plan(&p)), ("B1", &b1, b1_plan(&p))];
        if let Some(b2) = &b2 {
            targets.push(("B2", b2, b1_plan(&p)));
        }
        targets.push(("S1", &gw, p.s1.clone()));
        targets.push(("S2", &gw, p.s2.clone()));
        targets.push(("S3", &gw, p.s3.clone()));
        targets.push(("S4", &gw, p.s4.clone()));
        targets.push(("S5", &gw, mix(&p)));
        targets.retain(|(name, _, _)| wanted(name));
        for (name, server, plan) in targets {
            let s = measure(server, &tls, plan, closed).await?;
            eprintln!(
                "  {name}: {:.0} req/s, p99 {:.2} ms, {:.0} µs CPU/req (generator {:.0})",
                s.rps, s.p99_ms, s.cpu_us_per_req, s.gen_cpu_us_per_req
            );
            results.entry(name).or_default().push(s);
        }
    }

    // B0 once more, by an independent generator, in the same run.
    let oha = if full {
        oha_b0(&b0, &dir, closed)
    } else {
        None
    };
    match &oha {
        Some(o) => eprintln!(
            "  B0 by {}: {:.0} req/s, {:.0} µs CPU/req (oha {:.0})",
            o.version, o.rps, o.server_us, o.oha_us
        ),
        None if full => {
            eprintln!("  oha not installed (cargo install oha --locked): no B0 cross-check")
        }
        None => {}
    }
    let m: std::collections::BTreeMap<&str, Sample> =
        results.iter().map(|(k, v)| (*k, median(v))).collect();

    // Half of S1's closed-loop capacity in this run, unless a rate was given.
    let rate = args
        .rate
        .or_else(|| m.get("S1").map(|s| (s.rps / 2.0).round()))
        .unwrap_or(1000.0);
    let p = plans(&dir, &cases)?;
    let mut at_rate = std::collections::BTreeMap::new();
    if full || args.rate.is_some() {
        eprintln!("latency at {rate} req/s");
        let rated = Settings {
            connections: args.connections,
            duration: Duration::from_secs(args.duration),
            rate: Some(rate),
        };
        // B1 at the same rate beside them: the tail the machine and the generator give a
        // server that only does the crypto floor.
        for (name, server, plan) in [
            ("B1", &b1, b1_plan(&p)),
            ("S1", &gw, p.s1.clone()),
            ("S2", &gw, p.s2.clone()),
            ("S3", &gw, p.s3.clone()),
        ] {
            let s = measure(server, &tls, plan, rated).await?;
            eprintln!(
                "  {name} @{rate}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                s.rps, s.p50_ms, s.p99_ms
            );
            at_rate.insert(name, s);
        }
    }

    let memory = if full {
        eprintln!("memory: 1000 idle keep-alive connections and 100 active");
        let idle = load::idle_connections(&gw.base, &tls, &p.s2[0], 1000).await?;
        let active = measure(
            &gw,
            &tls,
            p.s1.clone(),
            Settings {
                connections: 100,
                duration: Duration::from_secs(args.duration),
                rate: None,
            },
        )
        .await?;
        let rss_now = procstat::memory_mb(gw.pid(), "VmRSS")?;
        let peak = procstat::memory_mb(gw.pid(), "VmHWM")?;
        drop(idle);
        eprintln!(
            "  100 active: {:.0} req/s; gateway RSS {rss_now:.1} MB, peak {peak:.1} MB",
            active.rps
        );
        Some((rss_now, peak, active.rps))
    } else {
        None
    };

    let mut pg = None;
    let mut pg_settings = None;
    if let (Some(admin), true) = (&args.postgres, full) {
        let settings = pg_durability(admin).await?;
        eprintln!("PostgreSQL ({settings}): seeding and S1");
        pg_settings = Some(settings);
        let url = fresh_pg(admin).await?;
        let gpg = start_gateway(&dir, &url)?;
        let pcases = seed(&gpg, &tls, &dir, args.subjects).await?;
        let mut v = Vec::new();
        for _ in 0..args.repeats {
            let pp = plans(&dir, &pcases)?;
            // Same run: S1 on SQLite right before each PostgreSQL run.
            let sq = measure(&gw, &tls, plans(&dir, &cases)?.s1, closed).await?;
            let s = measure(&gpg, &tls, pp.s1, closed).await?;
            eprintln!(
                "  S1 SQLite {:.0} req/s, PostgreSQL {:.0} req/s",
                sq.rps, s.rps
            );
            v.push((sq, s));
        }
        pg = Some(v);
    }

    // The cost as the register and the log grow, against 200 subjects, in the same run.
    let scaled = if full || args.scale {
        Some(
            scale::run(
                &work,
                &dir,
                &tls,
                200,
                args.scale_subjects,
                args.scale_log_entries,
                closed,
            )
            .await?,
        )
    } else {
        None
    };

    // The report.
    let mut table = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        table,
        "| target | req/s (median of {}) | p50 ms | p99 ms | server CPU µs/req | generator CPU µs/req |",
        args.repeats
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|");
    for (k, s) in &m {
        let _ = writeln!(
            table,
            "| {k} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} |",
            s.rps, s.p50_ms, s.p99_ms, s.cpu_us_per_req, s.gen_cpu_us_per_req
        );
    }
    let ratio = |a: &str, b: &str| match (m.get(a), m.get(b)) {
        (Some(x), Some(y)) => format!("{:.2}", x.rps / y.rps),
        _ => "-".into(),
    };
    if let (Some(o), Some(ours)) = (&oha, m.get("B0")) {
        let _ = writeln!(
            table,
            "\nB0 by two generators: ours {:.0} req/s (server {:.0} + generator {:.0} µs CPU/req), {} {:.0} req/s (server {:.0} + oha {:.0} µs CPU/req)",
            ours.rps,
            ours.cpu_us_per_req,
            ours.gen_cpu_us_per_req,
            o.version,
            o.rps,
            o.server_us,
            o.oha_us
        );
    }
    let _ = writeln!(
        table,
        "\nS1/B1 {}   S1/B0 {}   S1/B2 {}",
        ratio("S1", "B1"),
        ratio("S1", "B0"),
        ratio("S1", "B2")
    );
    if !at_rate.is_empty() {
        let _ = writeln!(
            table,
            "\nAt {rate} req/s ({} connections, latency from the scheduled send){}:",
            args.connections,
            if args.rate.is_none() {
                ", half of S1's closed-loop throughput"
            } else {
                ""
            }
        );
    }
    for (k, s) in &at_rate {
        let _ = writeln!(
            table,
            "  {k}: achieved {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            s.rps, s.p50_ms, s.p99_ms
        );
    }
    if let Some((rss_now, peak, active)) = memory {
        let _ = writeln!(
            table,
            "\nMemory: 1000 idle keep-alive connections + 100 active (S1, {active:.0} req/s): gateway RSS {rss_now:.1} MB, peak RSS over the whole run {peak:.1} MB"
        );
    }
    let mut pg_ratio = None;
    if let Some(v) = &pg {
        let sq: Vec<f64> = v.iter().map(|(a, _)| a.rps).collect();
        let p: Vec<f64> = v.iter().map(|(_, b)| b.rps).collect();
        let med = |mut x: Vec<f64>| {
            x.sort_by(f64::total_cmp);
            x[x.len() / 2]
        };
        let (a, b) = (med(sq), med(p));
        pg_ratio = pg_settings.clone().map(|settings| targets::Postgres {
            ratio: b / a,
            settings,
        });
        let _ = writeln!(
            table,
            "\nS1 on PostgreSQL {b:.0} req/s vs SQLite {a:.0} req/s: ratio {:.2}",
            b / a
        );
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let _ = writeln!(
        table,
        "\nTargets (issue 40), from this run:\n\n{}",
        targets::table(&targets::Figures {
            closed: &m,
            at_rate: &at_rate,
            rate,
            peak_rss_mb: memory.map(|(_, peak, _)| peak),
            postgres: pg_ratio.as_ref(),
            scale: scaled.as_ref(),
            target_dir: &target_dir,
            started,
        })
    );
    println!("{table}");
    let json = json!({
        "settings": {"duration_s": args.duration, "connections": args.connections, "repeats": args.repeats, "subjects": args.subjects, "rate": rate, "only": args.only, "s1_answer_bytes": answer_bytes},
        "runs": results,
        "median": m,
        "at_rate": at_rate,
        "memory": memory.map(|(rss, peak, active)| json!({"rss_mb": rss, "peak_rss_mb": peak, "active_rps": active})),
        "scale": scaled,
        "postgres": pg.map(|v| v.into_iter().map(|(a, b)| json!({"sqlite": a, "postgres": b})).collect::<Vec<_>>()),
        "postgres_settings": pg_settings.map(|s| json!({"fsync": s.fsync, "synchronous_commit": s.synchronous_commit})),
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(args.out.join("results.md"), &table)?;
    eprintln!(
        "written: {}/results.md and results.json",
        args.out.display()
    );
    Ok(())
}

async fn s1_answer_bytes(gw: &Server, tls: &Tls, r: &Req) -> anyhow::Result<usize> {
    let body = tls
        .client(&r.partner)?
        .post(format!("{}{}", gw.base, r.path))
        .bearer_auth(&*r.token)
        .header("content-type", "application/json")
        .body(r.body.as_deref().unwrap_or_default().to_owned())
        .send()
        .await?
        .bytes()
        .await?;
    Ok(body.len())
}

/// The server's `fsync` and `synchronous_commit`, which decide whether its figures are durable ones.
async fn pg_durability(admin: &str) -> anyhow::Result<targets::PgSettings> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut conn)
        .await?;
    let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut conn)
        .await?;
    Ok(targets::PgSettings {
        fsync,
        synchronous_commit,
    })
}

async fn fresh_pg(admin: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("gw_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin.rsplit_once('/').context("postgres URL")?.0;
    Ok(format!("{base}/{name}"))
}
