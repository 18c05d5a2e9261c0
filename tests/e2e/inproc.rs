//! In-process tests: the real server (mutual TLS, the pipeline, the log, SQLite) on port 0 in
//! this process, with a clock the test moves, so that what depends on time is tested without
//! waiting for it.

use crate::helpers::*;
use gateway::clock::FixedClock;
use serde_json::json;
use std::sync::Arc;

/// A running in-process gateway.
pub struct InProc {
    pub app: Arc<gateway::app::App>,
    pub clock: Arc<FixedClock>,
    pub api: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProc {
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.api)
    }

    /// Stops the server and waits for the log to drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

/// The server with the shared example PKI, a fresh SQLite database and a clock at `now`.
pub async fn spawn_app(now: i64, extra: &[(&str, &str)]) -> InProc {
    gateway::install_crypto_provider();
    let mut env: Vec<(String, String)> = vec![
        ("GATEWAY_DATABASE_URL".into(), sqlite_url("inproc")),
        ("GATEWAY_LISTEN".into(), "127.0.0.1:0".into()),
        ("GATEWAY_HEALTH_LISTEN".into(), "127.0.0.1:0".into()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let cfg = gateway::config::Config::load(&pki().join("gateway.toml"), env).unwrap();
    let loaded = gateway::runtime::load(&cfg, true).unwrap();
    let clock = Arc::new(FixedClock::new(now));
    let db = gateway::store::Db::connect(&cfg.database_url)
        .await
        .unwrap();
    let app = gateway::startup::prepare(db, loaded, &cfg, clock.clone())
        .await
        .unwrap();
    gateway::startup::background(&app, &cfg);
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = api.local_addr().unwrap().to_string();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = app.clone();
    let task = tokio::spawn(async move {
        gateway::startup::serve(
            served,
            &cfg,
            api,
            health,
            async move {
                let _ = stop_rx.await;
            },
            || {},
        )
        .await
    });
    InProc {
        app,
        clock,
        api: addr,
        stop: Some(stop),
        task: Some(task),
    }
}

fn token_at(partner: &str, sub: &str, roles: &[&str], iat: i64) -> String {
    token_with(
        partner,
        sub,
        roles,
        &pki().join(format!("{partner}/client.pem")),
        "gateway.ipga-r.example",
        iat,
        600,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expires_by_the_gateways_clock_not_the_wall_clock() {
    let t0 = 1_900_000_000; // years from now: the wall clock has nothing to do with it
    let gw = spawn_app(t0, &[]).await;
    let c = client("oov");
    let t = token_at("oov", "map.1", &["melder-intake"], t0);
    let check = || {
        c.post(gw.url("/v1/checks"))
            .bearer_auth(&t)
            .json(&json!({"subject": {"bsn": "999993331"}, "purpose": "aanpak-check"}))
            .send()
    };
    assert_eq!(check().await.unwrap().status(), 200);
    gw.clock.advance(600 + 30); // at the end of lifetime + leeway: still valid
    assert_eq!(check().await.unwrap().status(), 200);
    gw.clock.advance(1);
    problem(check().await.unwrap(), 401, "token-expired").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_made_when_the_interval_has_passed_on_the_gateways_clock() {
    let t0 = now();
    let gw = spawn_app(t0, &[]).await;
    let db = gw.app.db.clone();
    let c = client("oov");
    let t = token_at("oov", "map.1", &["melder-intake"], t0);
    let r = c
        .post(gw.url("/v1/checks"))
        .bearer_auth(&t)
        .json(&json!({"subject": {"bsn": "999993331"}, "purpose": "aanpak-check"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The log has grown; a checkpoint of it is due (at once if none was made yet, else once the
    // interval has passed on the clock).
    gw.clock.advance(61);
    let first = wait_checkpoint(&db, 2).await;
    let r = c
        .post(gw.url("/v1/checks"))
        .bearer_auth(&t)
        .json(&json!({"subject": {"bsn": "999993331"}, "purpose": "aanpak-check"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Grown again, but the interval (60 s) has not passed: no new checkpoint...
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(db.latest_checkpoint().await.unwrap().unwrap().size, first);
    // ...until the clock says it has.
    gw.clock.advance(61);
    assert_eq!(wait_checkpoint(&db, 3).await, 3);
    gw.stop().await;
}

async fn wait_checkpoint(db: &gateway::store::Db, size: i64) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(c) = db.latest_checkpoint().await.unwrap()
            && c.size >= size
        {
            return c.size;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint of size {size}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
