//! Starting the real binary with a fresh database and the shared example PKI, and TLS clients.

use gateway::pki;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_gateway");

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example covenant as the tests run it: with the aanpak-check's per-staff limit lifted,
/// since many tests use checks as cheap load (the limit has its own test, with its own file).
pub fn covenant_path() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let text = std::fs::read_to_string(example_covenant_path()).unwrap();
        let p = scratch().join("ipga-r-tests.toml");
        std::fs::write(&p, checks_per_minute(&text, 1_000_000)).unwrap();
        p
    })
    .clone()
}

/// The repository's example covenant, as shipped.
pub fn example_covenant_path() -> PathBuf {
    repo().join("ops/covenant/ipga-r.toml")
}

/// This test process's scratch directory. Named by the process id and a value drawn once per
/// process: a directory left by an earlier process with the same (reused) id is never met.
pub fn scratch() -> PathBuf {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    let d = std::env::temp_dir().join(format!("gateway-e2e-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn make_pki(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let out = Command::new(BIN)
        .args([
            "certs",
            "init",
            dir.to_str().unwrap(),
            "--covenant",
            covenant_path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "certs init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A PKI of the test's own, for tests that change it (revocations).
pub fn own_pki(name: &str) -> PathBuf {
    make_pki(name)
}

/// The example PKI all tests share (made once per test run).
pub fn pki() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| make_pki("pki"))
}

/// A second, unrelated example PKI: its certificates chain to another CA.
pub fn other_pki() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| make_pki("other-pki"))
}

/// The installation ceremony for a test's own covenant: where a configuration beside an
/// example PKI names a covenant other than the one `certs init` signed, every core partner's
/// example key signs it too (the gateway installs no first version without them).
pub fn sign_installation_of(config: &Path, covenant: Option<PathBuf>) {
    let Some(dir) = config.parent() else { return };
    let Ok(text) = std::fs::read_to_string(config) else {
        return;
    };
    let covenant = covenant.or_else(|| {
        text.lines().find_map(|l| {
            l.starts_with("covenant = ")
                .then(|| l.parse::<toml::Table>().ok())
                .flatten()
                .and_then(|t| t.get("covenant")?.as_str().map(PathBuf::from))
        })
    });
    let Some(covenant) = covenant else { return };
    if covenant == covenant_path() || !dir.join("installation").is_dir() {
        return;
    }
    let covenant = if covenant.is_relative() {
        dir.join(covenant)
    } else {
        covenant
    };
    let out = Command::new(BIN)
        .args([
            "certs",
            "sign-installation",
            dir.to_str().unwrap(),
            "--covenant",
        ])
        .arg(&covenant)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "certs sign-installation: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running gateway, killed on drop.
pub struct Gateway {
    child: Child,
    pub api: String,
    pub health: String,
    pub stderr: PathBuf,
    pub database_url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Gateway {
    /// Starts a gateway on random loopback ports with a fresh SQLite database.
    pub fn start() -> Gateway {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let db = scratch().join(format!("gw-{n}.db"));
        Self::start_with(&format!("sqlite://{}", db.display()), &[])
    }

    /// Starts a gateway with a database URL and extra environment.
    pub fn start_with(database_url: &str, env: &[(&str, &str)]) -> Gateway {
        let mut env = env.to_vec();
        env.push(("GATEWAY_DATABASE_URL", database_url));
        Self::spawn(pki().join("gateway.toml").to_str().unwrap(), &env)
    }

    fn spawn(config: &str, env: &[(&str, &str)]) -> Gateway {
        Self::spawn_args(config, env, &[])
    }

    /// Starts a gateway on a configuration file with this environment.
    pub fn spawn_on(config: &str, env: &[(&str, &str)]) -> Gateway {
        Self::spawn_args(config, env, &[])
    }

    /// Starts a gateway with extra `serve` arguments.
    pub fn spawn_args(config: &str, env: &[(&str, &str)], args: &[&str]) -> Gateway {
        gateway::install_crypto_provider();
        let covenant = env
            .iter()
            .rev()
            .find(|(k, _)| *k == "GATEWAY_COVENANT")
            .map(|(_, v)| PathBuf::from(v));
        sign_installation_of(Path::new(config), covenant);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stderr = scratch().join(format!("gw-{n}.stderr"));
        let database_url = env
            .iter()
            .rev()
            .find(|(k, _)| *k == "GATEWAY_DATABASE_URL")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config, "--allow-example-pki"])
            .args(args)
            .env("GATEWAY_LISTEN", "127.0.0.1:0")
            .env("GATEWAY_HEALTH_LISTEN", "127.0.0.1:0")
            .env("GATEWAY_LOG_FORMAT", "json")
            .env("GATEWAY_LOG_LEVEL", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        // Readiness: the one line the gateway prints on stdout once it listens. No sleeping.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            let _ = child.kill();
            panic!(
                "gateway did not start: {line}\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Gateway {
            child,
            api: v["api"].as_str().unwrap().to_owned(),
            health: v["health"].as_str().unwrap().to_owned(),
            stderr,
            database_url,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.api)
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most ten seconds) until the log contains one of `needles`; returns the log.
    /// The client can see a refused handshake before the server has written why.
    pub fn wait_log(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if needles.iter().any(|n| log.contains(n)) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A TLS client trusting `ca`, presenting `cert`+`key` if given.
pub fn client_with(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    gateway::install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&read(ca)).unwrap()])
        .timeout(Duration::from_secs(20));
    if let Some((cert, key)) = identity {
        let mut pem = read(cert);
        pem.extend(read(key));
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// A client with a partner's certificate from the shared PKI.
pub fn client(partner: &str) -> reqwest::Client {
    let d = pki();
    client_with(
        &d.join("ca.pem"),
        Some((
            &d.join(format!("{partner}/client.pem")),
            &d.join(format!("{partner}/client.key")),
        )),
    )
}

pub fn cert_thumbprint(path: &Path) -> String {
    let certs = gateway::tls::read_certs(path).unwrap();
    gateway::registry::thumbprint(certs[0].as_ref())
}

pub fn now() -> i64 {
    use gateway::clock::Clock;
    gateway::clock::SystemClock.now()
}

/// A valid token for `partner`, bound to its certificate.
pub fn token(partner: &str, sub: &str, roles: &[&str]) -> String {
    token_with(
        partner,
        sub,
        roles,
        &pki().join(format!("{partner}/client.pem")),
        "gateway.ipga-r.example",
        now(),
        600,
    )
}

pub fn token_with(
    partner: &str,
    sub: &str,
    roles: &[&str],
    cert: &Path,
    aud: &str,
    iat: i64,
    lifetime: i64,
) -> String {
    let key = read(&pki().join(pki::layout::token_key(partner)));
    let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
    gateway::auth::mint(
        &key,
        &format!("{partner}-1"),
        partner,
        sub,
        &roles,
        &cert_thumbprint(cert),
        aud,
        iat,
        lifetime,
    )
    .unwrap()
}

/// Asserts a problem response and returns its body.
/// A GET of the partner API as oov's staff member with these roles: its JSON answer.
pub async fn oov_get(gw: &Gateway, staff: &str, roles: &[&str], path: &str) -> serde_json::Value {
    client("oov")
        .get(gw.url(path))
        .bearer_auth(token("oov", staff, roles))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn problem(resp: reqwest::Response, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        v["type"],
        format!("https://gateway.ipga-r.example/problems/{slug}"),
        "{v}"
    );
    assert_eq!(v["status"], status);
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    v
}

/// A fresh, empty PostgreSQL database on the test server, or `None` outside CI when no server
/// is configured. In CI (`CI` set) a missing server is a failure: PostgreSQL is always tested.
pub async fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("GATEWAY_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must test PostgreSQL: run the tests through ops/ci/with-postgres.sh"
        );
        eprintln!(
            "GATEWAY_TEST_POSTGRES_URL not set: PostgreSQL part skipped (use ops/ci/with-postgres.sh)"
        );
        return None;
    };
    use sqlx::Connection;
    let name = format!("gw_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    Some(format!("{base}/{name}"))
}

impl Gateway {
    /// Starts a gateway with a configuration derived from the shared one (written next to it, so
    /// relative paths still hold).
    pub fn start_with_config(edit: impl Fn(String) -> String, env: &[(&str, &str)]) -> Gateway {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = edit(std::fs::read_to_string(pki().join("gateway.toml")).unwrap());
        let path = pki().join(format!("gateway-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let db = scratch().join(format!("gw-cfg-{n}.db"));
        let mut env: Vec<(&str, &str)> = env.to_vec();
        let config = path.to_str().unwrap().to_owned();
        let db_url = format!("sqlite://{}", db.display());
        if !env.iter().any(|(k, _)| *k == "GATEWAY_DATABASE_URL") {
            env.push(("GATEWAY_DATABASE_URL", &db_url));
        }
        Self::spawn(&config, &env)
    }
}

impl Gateway {
    /// Starts a gateway on another PKI directory's configuration, edited, with a fresh SQLite
    /// database.
    pub fn start_in(dir: &Path, edit: impl Fn(String) -> String) -> Gateway {
        let text = edit(std::fs::read_to_string(dir.join("gateway.toml")).unwrap());
        let path = dir.join("gateway-test.toml");
        std::fs::write(&path, text).unwrap();
        let db_url = sqlite_url("own-pki");
        Self::spawn(
            path.to_str().unwrap(),
            &[("GATEWAY_DATABASE_URL", db_url.as_str())],
        )
    }
}

/// A client of a partner of another PKI directory, and a token bound to its certificate.
pub fn client_in(
    dir: &Path,
    partner: &str,
    sub: &str,
    roles: &[&str],
) -> (reqwest::Client, String) {
    let cert = dir.join(format!("{partner}/client.pem"));
    let c = client_with(
        &dir.join("ca.pem"),
        Some((&cert, &dir.join(format!("{partner}/client.key")))),
    );
    let key = read(&dir.join(pki::layout::token_key(partner)));
    let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
    let t = gateway::auth::mint(
        &key,
        &format!("{partner}-1"),
        partner,
        sub,
        &roles,
        &cert_thumbprint(&cert),
        "gateway.ipga-r.example",
        now(),
        600,
    )
    .unwrap();
    (c, t)
}

/// Decrypts an armored age payload with a partner's identity from the shared PKI (age crate).
pub fn decrypt(partner: &str, armored: &str) -> serde_json::Value {
    use std::io::Read;
    let identity =
        gateway::crypto::read_age_identity(&pki().join(format!("{partner}/age-identity.txt")))
            .unwrap();
    let decryptor =
        age::Decryptor::new(age::armor::ArmoredReader::new(armored.as_bytes())).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap();
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

impl Gateway {
    /// `kill -9`: no shutdown, no flushing.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh SQLite URL in the scratch directory.
pub fn sqlite_url(name: &str) -> String {
    format!(
        "sqlite://{}",
        scratch()
            .join(format!("{name}-{}.db", uuid::Uuid::new_v4().simple()))
            .display()
    )
}

impl Gateway {
    /// `SIGTERM`; waits (at most `within`) for the process to end and returns its exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Gateway {
    /// Starts a gateway on a configuration file and database of the test's choosing.
    pub fn start_on(config: &Path, database_url: &str) -> Gateway {
        Self::spawn(
            config.to_str().unwrap(),
            &[("GATEWAY_DATABASE_URL", database_url)],
        )
    }
}

/// A decision of the Regieoverleg as the example covenant's quorum needs it (three members of
/// three partners), for a change the covenant gives to that body.
pub fn ro_decision() -> serde_json::Value {
    serde_json::json!({"reference": "RO-2026-11-01/7", "date": "2026-11-01", "members": [
        {"partner": "oov", "staff_id": "ro.gemeente"},
        {"partner": "politie", "staff_id": "ro.politie"},
        {"partner": "om", "staff_id": "ro.om"}]})
}

/// A review by the ITAT-R as the example covenant's quorum needs it (three members of three
/// partners), for a change that comes after one (the plan's adoption, afbouw, afsluiting).
pub fn itat_review() -> serde_json::Value {
    serde_json::json!({"reference": "ITAT-2026-11-05/3", "date": "2026-11-05", "members": [
        {"partner": "oov", "staff_id": "itat.gemeente"},
        {"partner": "politie", "staff_id": "itat.politie"},
        {"partner": "rn", "staff_id": "itat.rn"}]})
}

/// A decision of the PTO-R as the example covenant's quorum needs it (four members of four
/// partners).
pub fn pto_decision() -> serde_json::Value {
    serde_json::json!({"reference": "PTO-2026-11-08/2", "date": "2026-11-08", "members": [
        {"partner": "oov", "staff_id": "pto.gemeente"},
        {"partner": "politie", "staff_id": "pto.politie"},
        {"partner": "om", "staff_id": "pto.om"},
        {"partner": "ggd", "staff_id": "pto.ggd"}]})
}

/// The example covenant's core partners, each with a governance key in the example PKI.
pub const CORE: [&str; 7] = ["oov", "politie", "om", "rn", "rvdk", "ggd", "wpi"];

/// A partner's signed approval of a draft version against the active version and draft, with
/// its governance key from the example PKI in `dir` (as `gateway policy sign` makes it).
pub fn approval_note(
    dir: &Path,
    partner: &str,
    version: &str,
    base: &str,
    base_draft: &str,
) -> String {
    let seed = String::from_utf8(read(
        &dir.join(gateway::pki::layout::governance_key(partner)),
    ))
    .unwrap();
    let a = gateway::lifecycle::approval::Approval {
        covenant: "ipga-r-amsterdam".into(),
        partner: partner.into(),
        version: version.into(),
        base: base.into(),
        base_draft: base_draft.into(),
        expires: now() + 86_400,
    };
    gateway::lifecycle::approval::sign(&hex::decode(seed.trim()).unwrap(), &a).unwrap()
}

/// Every core partner's signed approval of draft `id`, added through the API by oov's
/// administrator `beheerder-1`: enough for any change under the example covenant.
pub async fn sign_all(gw: &Gateway, id: &str) {
    sign_all_in(gw, pki(), id).await;
}

/// [`sign_all`] for a gateway on the example PKI in `dir`.
pub async fn sign_all_in(gw: &Gateway, dir: &Path, id: &str) {
    let (c, t) = client_in(dir, "oov", "beheerder-1", &["beheerder"]);
    let get = |path: String| {
        let (c, t) = (c.clone(), t.clone());
        async move {
            c.get(path)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let draft = get(gw.url(&format!("/v1/policy/drafts/{id}"))).await;
    let active = get(gw.url("/v1/policy")).await;
    for p in CORE {
        let note = approval_note(
            dir,
            p,
            draft["version"].as_str().unwrap(),
            active["version"].as_str().unwrap(),
            active["draft"].as_str().unwrap(),
        );
        let r = c
            .post(gw.url(&format!("/v1/policy/drafts/{id}/signatures")))
            .bearer_auth(&t)
            .json(&serde_json::json!({ "note": note }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// The reason a test fixture gives for including a case without an aanpak-check (the gate is
/// tested on its own in `cases.rs`).
pub const INCLUDED_WITHOUT_CHECK: &str = "test fixture: no other approach to ask";

/// A covenant text with its `[checks] per_staff_per_minute` set to `n`.
pub fn checks_per_minute(covenant: &str, n: u64) -> String {
    const AS_SHIPPED: &str = "per_staff_per_minute = 30";
    assert!(
        covenant.contains(AS_SHIPPED),
        "the example covenant sets {AS_SHIPPED}"
    );
    covenant.replacen(AS_SHIPPED, &format!("per_staff_per_minute = {n}"), 1)
}

/// A privacy officer's POST with a JSON body (a search by person, an art. 15 report: a BSN goes
/// in the body, never in a URL): the status and the body's text.
pub async fn officer_post(
    gw: &Gateway,
    partner: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, String) {
    let r = client(partner)
        .post(gw.url(path))
        .bearer_auth(token(partner, "fg.1", &["privacy-officer"]))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
