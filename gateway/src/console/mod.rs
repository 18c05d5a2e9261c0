//! `gateway console`: the privacy officer's web console. A partner-side companion: it runs in
//! the partner's network (loopback by default), holds that partner's client certificate, and
//! reaches the gateway only through the public API with the officer's certificate-bound token,
//! so the gateway's surface and contract do not change.
//!
//! Safe by default: a one-time login link (256-bit secret) exchanged for an `HttpOnly`,
//! `SameSite=Strict` session cookie that expires; the `Host` header checked against the
//! console's own names (DNS rebinding); a CSRF token in every form that posts; a strict
//! Content-Security-Policy with no script at all; every asset embedded; no BSN in any URL (a
//! search is a POST). Its operational log lines carry routes and statuses, never a value.

mod overview;
mod pages;
mod policy;

use crate::clock::Clock;
use crate::log::checkpoint::KeySet;
use crate::log::cosign::CosignVerifier;
use crate::log::entry::LogEntry;
use crate::log::merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use pages::at;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The console's configuration (`console.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console listens (keep it on loopback unless a proxy in front terminates TLS).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The gateway's API base URL.
    pub gateway_url: String,
    /// The covenant CA (the gateway's server certificate chains to it).
    pub ca: PathBuf,
    /// The partner's client certificate and key.
    pub client_cert: PathBuf,
    /// The client key.
    pub client_key: PathBuf,
    /// The log's verifier key (`gateway audit vkey`): inclusion proofs are checked against
    /// checkpoints it signed.
    pub log_vkey: String,
    /// A command that prints the officer's token on standard output (the example PKI:
    /// `gateway token …`); an OpenID Connect login can take its place later.
    pub token_command: Vec<String>,
    /// Seconds a session lasts.
    #[serde(default = "default_session")]
    pub session_secs: i64,
    /// Host names (with port) the console answers to besides its listen address.
    #[serde(default)]
    pub names: Vec<String>,
    /// The witnesses' verifier keys (`gateway witness vkey`): the health page shows when each
    /// last cosigned, checked with these keys.
    #[serde(default)]
    pub witnesses: Vec<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8090".into()
}

fn default_session() -> i64 {
    3600
}

/// The console could not start or reach what it needs.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The configuration cannot be used.
    #[error("{0}")]
    Config(String),
    /// The gateway did not answer as expected.
    #[error("the gateway: {0}")]
    Gateway(String),
    /// The token command failed.
    #[error("the token command: {0}")]
    Token(String),
}

impl ConsoleConfig {
    /// Reads `console.toml`; relative paths are relative to its directory.
    pub fn load(path: &std::path::Path) -> Result<ConsoleConfig, ConsoleError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConsoleError::Config(format!("{}: {e}", path.display())))?;
        let mut c: ConsoleConfig = toml::from_str(&text)
            .map_err(|e| ConsoleError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for p in [&mut c.ca, &mut c.client_cert, &mut c.client_key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if c.token_command.is_empty() {
            return Err(ConsoleError::Config(
                "token_command is empty: name a command that prints the officer's token".into(),
            ));
        }
        Ok(c)
    }
}

struct Session {
    expires: i64,
    csrf: String,
    /// The BSN of the session's last search, kept (in memory only) so that its next page can
    /// be asked without the BSN standing in the page.
    bsn: Option<String>,
}

struct Console {
    cfg: ConsoleConfig,
    client: reqwest::Client,
    keys: KeySet,
    witnesses: Vec<CosignVerifier>,
    /// The last checkpoint the health page verified: the next visit proves the log only grew.
    seen: Mutex<Option<(u64, Hash)>>,
    hosts: Vec<String>,
    clock: Arc<dyn Clock>,
    login: Mutex<Option<String>>,
    sessions: Mutex<HashMap<String, Session>>,
    token: tokio::sync::Mutex<Option<(String, i64)>>,
}

type St = State<Arc<Console>>;

/// 256 random bits, hex.
fn secret() -> Result<String, ConsoleError> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| ConsoleError::Config("no randomness".into()))?;
    Ok(hex::encode(b))
}

fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Serves the console on `listener` until `shutdown`; `ready` gets the one-time login link.
pub async fn serve(
    cfg: ConsoleConfig,
    listener: tokio::net::TcpListener,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&str),
) -> Result<(), ConsoleError> {
    let ca = std::fs::read(&cfg.ca)
        .map_err(|e| ConsoleError::Config(format!("{}: {e}", cfg.ca.display())))?;
    let mut identity = std::fs::read(&cfg.client_cert)
        .map_err(|e| ConsoleError::Config(format!("{}: {e}", cfg.client_cert.display())))?;
    identity.extend(
        std::fs::read(&cfg.client_key)
            .map_err(|e| ConsoleError::Config(format!("{}: {e}", cfg.client_key.display())))?,
    );
    let client = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&ca).map_err(|e| ConsoleError::Config(e.to_string()))?
        ])
        .identity(
            reqwest::Identity::from_pem(&identity)
                .map_err(|e| ConsoleError::Config(e.to_string()))?,
        )
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| ConsoleError::Config(e.to_string()))?;
    let keys =
        KeySet::parse(&cfg.log_vkey).map_err(|e| ConsoleError::Config(format!("log_vkey: {e}")))?;
    let witnesses = cfg
        .witnesses
        .iter()
        .map(|v| CosignVerifier::from_vkey(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConsoleError::Config(format!("witnesses: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ConsoleError::Config(e.to_string()))?;
    let mut hosts = vec![
        addr.to_string(),
        format!("localhost:{}", addr.port()),
        format!("127.0.0.1:{}", addr.port()),
    ];
    hosts.extend(cfg.names.iter().cloned());
    let login = secret()?;
    let link = format!("http://{addr}/login?t={login}");
    let state = Arc::new(Console {
        cfg,
        client,
        keys,
        witnesses,
        seen: Mutex::new(None),
        hosts,
        clock,
        login: Mutex::new(Some(login)),
        sessions: Mutex::new(HashMap::new()),
        token: tokio::sync::Mutex::new(None),
    });
    let app = axum::Router::new()
        .route("/", get(home))
        .route("/login", get(login_with))
        .route("/logout", post(logout))
        .route("/search", post(search))
        .route("/search.csv", post(search_csv))
        .route("/entry/{seq}", get(entry))
        .route("/report", get(report_form).post(report))
        .route("/log", get(log_health))
        .route("/overview", get(overview::overview))
        .route("/policy", get(policy::home))
        .route(
            "/policy/new",
            get(policy::new_form).post(policy::new_submit),
        )
        .route("/policy/drafts/{id}", get(policy::draft))
        .route("/policy/drafts/{id}/simulate", post(policy::simulate))
        .route("/policy/drafts/{id}/signature", post(policy::add_signature))
        .route("/policy/drafts/{id}/{step}", post(policy::draft_step))
        .route("/policy/versions/{id}/rollback", post(policy::rollback))
        .route("/policy/version/{hash}", get(policy::version))
        .route("/console.css", get(css))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    ready(&link);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ConsoleError::Config(e.to_string()))
}

/// Every answer: the `Host` checked, strict security headers, nothing cached.
async fn guard(
    State(c): St,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !c.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        tracing::warn!(route = %req.uri().path(), "console: a request for another host name was refused");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This console does not answer to that host name.\n",
        )
            .into_response();
    }
    let route = req.uri().path().to_owned();
    let mut resp = next.run(req).await;
    tracing::info!(%route, status = resp.status().as_u16(), "console request");
    let h = resp.headers_mut();
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

const COOKIE: &str = "console_session";

/// The session of this request, if it has a live one: its id and CSRF token.
fn session(c: &Console, headers: &HeaderMap) -> Option<(String, String)> {
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())?;
    let now = c.clock.now();
    let mut s = c.sessions.lock().ok()?;
    s.retain(|_, v| v.expires > now);
    s.get(&id).map(|v| (id.clone(), v.csrf.clone()))
}

fn login_needed() -> Response {
    (StatusCode::UNAUTHORIZED, pages::login_needed()).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    t: Option<String>,
}

async fn login_with(State(c): St, Query(q): Query<LoginQuery>) -> Response {
    let offered = q.t.unwrap_or_default();
    let ok = match c.login.lock() {
        Ok(mut l) => match l.as_deref() {
            Some(secret) if same(secret, &offered) => {
                // One time only.
                *l = None;
                true
            }
            _ => false,
        },
        Err(_) => false,
    };
    if !ok {
        return (StatusCode::UNAUTHORIZED, pages::login_used()).into_response();
    }
    let (Ok(id), Ok(csrf)) = (secret(), secret()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let expires = c.clock.now() + c.cfg.session_secs;
    if let Ok(mut s) = c.sessions.lock() {
        s.insert(
            id.clone(),
            Session {
                expires,
                csrf,
                bsn: None,
            },
        );
    }
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        c.cfg.session_secs
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn home(State(c): St, headers: HeaderMap) -> Response {
    match session(&c, &headers) {
        Some((_, csrf)) => pages::search_form(&csrf, &SearchForm::default()).into_response(),
        None => login_needed(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(c): St, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some((id, csrf)) = session(&c, &headers) else {
        return login_needed();
    };
    if !same(&csrf, &f.csrf) {
        return (StatusCode::FORBIDDEN, pages::csrf_refused()).into_response();
    }
    if let Ok(mut s) = c.sessions.lock() {
        s.remove(&id);
    }
    let mut resp = (StatusCode::OK, pages::logged_out()).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("console_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}

/// What an officer searches for (posted, so that a BSN never stands in a URL).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchForm {
    /// CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// BSN (the gateway turns it into the pseudonym).
    #[serde(default)]
    pub bsn: String,
    /// `1`: the BSN of the session's previous search (for its next page).
    #[serde(default)]
    pub same_subject: String,
    /// Requesting partner.
    #[serde(default)]
    pub partner: String,
    /// Staff id of the requester.
    #[serde(default)]
    pub staff_id: String,
    /// Purpose.
    #[serde(default)]
    pub purpose: String,
    /// Case id.
    #[serde(default)]
    pub case: String,
    /// Product.
    #[serde(default)]
    pub product: String,
    /// Outcome.
    #[serde(default)]
    pub outcome: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// From (a date, `YYYY-MM-DD`, or RFC 3339).
    #[serde(default)]
    pub from: String,
    /// Until (exclusive; a date or RFC 3339).
    #[serde(default)]
    pub to: String,
    /// The page after this sequence number.
    #[serde(default)]
    pub after: String,
}

impl SearchForm {
    /// The same search without its BSN (what a page may show and post back).
    pub fn without_bsn(&self) -> SearchForm {
        SearchForm {
            bsn: String::new(),
            csrf: String::new(),
            after: String::new(),
            ..self.clone()
        }
    }
}

/// A date as the gateway's `from`/`to` want it: `YYYY-MM-DD` becomes midnight UTC.
fn instant(v: &str) -> String {
    let v = v.trim();
    if v.len() == 10 && v.as_bytes().get(4) == Some(&b'-') {
        format!("{v}T00:00:00Z")
    } else {
        v.to_owned()
    }
}

impl Console {
    /// The officer's token, from the token command (kept for a minute).
    async fn token(&self) -> Result<String, ConsoleError> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if let Some((t, at)) = cached.as_ref()
            && now - at < 60
        {
            return Ok(t.clone());
        }
        let (cmd, args) = self
            .cfg
            .token_command
            .split_first()
            .ok_or_else(|| ConsoleError::Token("empty".into()))?;
        let out = tokio::process::Command::new(cmd)
            .args(args)
            .output()
            .await
            .map_err(|e| ConsoleError::Token(e.to_string()))?;
        if !out.status.success() {
            return Err(ConsoleError::Token(format!("exit status {}", out.status)));
        }
        let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        *cached = Some((t.clone(), now));
        Ok(t)
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(u16, String), ConsoleError> {
        self.call(reqwest::Method::GET, path, query, None).await
    }

    /// Posts to the gateway: a body with its media type, or none.
    async fn post(
        &self,
        path: &str,
        body: Option<(&'static str, String)>,
    ) -> Result<(u16, String), ConsoleError> {
        self.call(reqwest::Method::POST, path, &[], body).await
    }

    /// Posts a JSON body to the gateway.
    async fn post_json(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<(u16, String), ConsoleError> {
        let text = serde_json::to_string(body).map_err(|e| ConsoleError::Gateway(e.to_string()))?;
        self.post(path, Some(("application/json", text))).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&'static str, String)>,
    ) -> Result<(u16, String), ConsoleError> {
        let base = format!("{}{path}", self.cfg.gateway_url.trim_end_matches('/'));
        let url = reqwest::Url::parse_with_params(&base, query)
            .map_err(|e| ConsoleError::Gateway(e.to_string()))?;
        let mut req = self
            .client
            .request(method, url)
            .bearer_auth(self.token().await?);
        if let Some((media, body)) = body {
            req = req.header(header::CONTENT_TYPE, media).body(body);
        }
        let r = req
            .send()
            .await
            .map_err(|e| ConsoleError::Gateway(e.to_string()))?;
        let status = r.status().as_u16();
        let body = r
            .text()
            .await
            .map_err(|e| ConsoleError::Gateway(e.to_string()))?;
        Ok((status, body))
    }

    /// Who the token says the user is (read for the pages' hints only: the gateway decides).
    async fn me(&self) -> Option<Me> {
        let token = self.token().await.ok()?;
        let payload = token.split('.').nth(1)?;
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The user as the token names them: partner, staff id, roles.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Me {
    /// Partner id.
    pub iss: String,
    /// Staff id.
    pub sub: String,
    /// Covenant roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Why a request gets no page: no live session, or a form without the session's CSRF token.
#[derive(Debug, Clone, Copy)]
enum Denied {
    Login,
    Csrf,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Login => login_needed(),
            Denied::Csrf => (StatusCode::FORBIDDEN, pages::csrf_refused()).into_response(),
        }
    }
}

/// The session's CSRF token if the request has a live session and the form carries that token.
fn posted(c: &Console, headers: &HeaderMap, offered: &str) -> Result<String, Denied> {
    let (_, csrf) = session(c, headers).ok_or(Denied::Login)?;
    if !same(&csrf, offered) {
        return Err(Denied::Csrf);
    }
    Ok(csrf)
}

/// The session's CSRF token, if the request has a live session.
fn signed_in(c: &Console, headers: &HeaderMap) -> Result<String, Denied> {
    session(c, headers)
        .map(|(_, csrf)| csrf)
        .ok_or(Denied::Login)
}

/// The gateway's search for a search form (the BSN passed in: the form's or the session's), as
/// the body of `POST /v1/audit/disclosures/search`: a BSN never goes in a URL.
fn search_query(f: &SearchForm, bsn: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    let mut q = serde_json::Map::new();
    q.insert("limit".into(), 200.into());
    let (from, to) = (instant(&f.from), instant(&f.to));
    if let Ok(after) = f.after.trim().parse::<i64>() {
        q.insert("after".into(), after.into());
    }
    for (k, v) in [
        ("subject", bsn.unwrap_or("")),
        ("partner", &f.partner),
        ("staff_id", &f.staff_id),
        ("purpose", &f.purpose),
        ("case", &f.case),
        ("product", &f.product),
        ("outcome", &f.outcome),
        ("kind", &f.kind),
        ("from", &from),
        ("to", &to),
    ] {
        if !v.trim().is_empty() {
            q.insert(k.into(), v.trim().into());
        }
    }
    q
}

/// The BSN a search is for: the form's (remembered for the next page or the CSV), else the
/// session's previous one when the form asks for the same subject, else none (forgotten).
fn subject_of(c: &Console, headers: &HeaderMap, f: &SearchForm) -> Option<String> {
    let id = session(c, headers)?.0;
    let mut sessions = c.sessions.lock().ok()?;
    let s = sessions.get_mut(&id)?;
    let typed = Some(f.bsn.trim().to_owned()).filter(|b| !b.is_empty());
    let bsn = match typed {
        Some(b) => Some(b),
        None if f.same_subject == "1" => s.bsn.clone(),
        None => None,
    };
    s.bsn.clone_from(&bsn);
    bsn
}

async fn search(State(c): St, headers: HeaderMap, Form(f): Form<SearchForm>) -> Response {
    let csrf = match posted(&c, &headers, &f.csrf) {
        Ok(t) => t,
        Err(d) => return d.into_response(),
    };
    let bsn = subject_of(&c, &headers, &f);
    match c
        .post_json(
            "/v1/audit/disclosures/search",
            &search_query(&f, bsn.as_deref()),
        )
        .await
    {
        Ok((200, body)) => {
            let v = serde_json::from_str::<serde_json::Value>(&body).ok();
            let items = v.as_ref().and_then(|v| at(v, "items").as_array().cloned());
            let next = v.as_ref().and_then(|v| at(v, "next_after").as_i64());
            match items {
                Some(items) => {
                    pages::results(&csrf, &f, bsn.is_some(), &items, next).into_response()
                }
                // Never "no entries" for an answer the console cannot read.
                None => failed(
                    &csrf,
                    Ok((200, "{\"detail\":\"an answer without items\"}".into())),
                ),
            }
        }
        other => failed(&csrf, other),
    }
}

/// The same search as CSV, as the gateway writes it (and logs it), for download.
async fn search_csv(State(c): St, headers: HeaderMap, Form(f): Form<SearchForm>) -> Response {
    let csrf = match posted(&c, &headers, &f.csrf) {
        Ok(t) => t,
        Err(d) => return d.into_response(),
    };
    let bsn = subject_of(&c, &headers, &f);
    let mut q = search_query(&f, bsn.as_deref());
    q.insert("format".into(), "csv".into());
    match c.post_json("/v1/audit/disclosures/search", &q).await {
        Ok((200, body)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"logboek.csv\"",
                ),
            ],
            body,
        )
            .into_response(),
        other => failed(&csrf, other),
    }
}

/// The page for a gateway that refused, failed or answered what the console cannot read.
fn failed(csrf: &str, answer: Result<(u16, String), ConsoleError>) -> Response {
    let page = match answer {
        Ok((status, body)) => pages::gateway_refused(csrf, status, &problem(&body)),
        Err(e) => pages::gateway_refused(
            csrf,
            0,
            &Problem {
                title: "De gateway is niet bereikbaar".into(),
                detail: e.to_string(),
                errors: Vec::new(),
            },
        ),
    };
    (StatusCode::BAD_GATEWAY, page).into_response()
}

/// What the console shows of a gateway's RFC 9457 problem.
#[derive(Debug, Default, Deserialize)]
pub struct Problem {
    /// Short summary.
    #[serde(default)]
    pub title: String,
    /// What happened and what to do.
    #[serde(default)]
    pub detail: String,
    /// Every problem found (a covenant draft's, with line and column).
    #[serde(default)]
    pub errors: Vec<String>,
}

fn problem(body: &str) -> Problem {
    serde_json::from_str(body).unwrap_or_else(|_| Problem {
        detail: "no detail".into(),
        ..Problem::default()
    })
}

fn problem_detail(body: &str) -> String {
    problem(body).detail
}

/// Whether an entry's inclusion proof holds, checked by the console itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proven {
    /// The entry's bytes hash to its leaf, the leaf is in the tree of a checkpoint the log key
    /// signed, at this size.
    Verified(u64),
    /// Another partner's entry shown in part: its leaf is in the tree of a signed checkpoint
    /// at this size, but the part shown cannot be checked against the leaf.
    Partial(u64),
    /// Why not.
    Failed(String),
}

/// Checks an entry (as the search answered it) against an inclusion proof and its checkpoint.
pub fn prove(item: &serde_json::Value, proof: &serde_json::Value, keys: &KeySet) -> Proven {
    let Some(note) = at(proof, "checkpoint").as_str() else {
        return Proven::Failed("the proof comes without a checkpoint".into());
    };
    match keys.verify(note) {
        Ok((cp, _)) => prove_in(item, proof, cp.size, &cp.root),
        Err(e) => Proven::Failed(format!(
            "the checkpoint does not verify with the log key: {e}"
        )),
    }
}

/// Checks an entry against an inclusion proof into the tree of `size` entries with `root` (a
/// checkpoint's, verified by the caller).
pub fn prove_in(
    item: &serde_json::Value,
    proof: &serde_json::Value,
    size: u64,
    root: &Hash,
) -> Proven {
    let fail = |s: &str| Proven::Failed(s.to_owned());
    let hex_of = |v: &serde_json::Value| v.as_str().and_then(crate::log::verify::parse_hash);
    let partial = at(item, "partial").as_bool() == Some(true);
    let leaf = if partial {
        // Only the leaf's inclusion: the part shown is not the entry that was hashed.
        match hex_of(at(item, "leaf_hash")) {
            Some(l) if hex_of(at(proof, "leaf_hash")) == Some(l) => l,
            _ => return fail("the proof is for another leaf than the entry's"),
        }
    } else {
        let Ok(entry) = serde_json::from_value::<LogEntry>(item.clone()) else {
            return fail("the entry is not a log entry");
        };
        let Ok(text) = entry.canonical() else {
            return fail("the entry cannot be serialised");
        };
        let leaf = leaf_hash(text.as_bytes());
        if hex_of(at(item, "leaf_hash")) != Some(leaf)
            || hex_of(at(proof, "leaf_hash")) != Some(leaf)
        {
            return fail("the entry does not hash to its leaf");
        }
        leaf
    };
    let path: Option<Vec<_>> = at(proof, "proof")
        .as_array()
        .map(|a| a.iter().filter_map(hex_of).collect());
    let (Some(path), Some(index)) = (path, at(proof, "leaf_index").as_u64()) else {
        return fail("the proof is not readable");
    };
    if at(proof, "tree_size").as_u64() != Some(size) {
        return fail("the proof is for another size than its checkpoint");
    }
    if verify_inclusion(&leaf, index, size, &path, root) {
        if partial {
            Proven::Partial(size)
        } else {
            Proven::Verified(size)
        }
    } else {
        fail("the inclusion proof does not lead to the checkpoint's root")
    }
}

async fn entry(State(c): St, headers: HeaderMap, Path(seq): Path<String>) -> Response {
    let csrf = match signed_in(&c, &headers) {
        Ok(t) => t,
        Err(d) => return d.into_response(),
    };
    let Ok(seq) = seq.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, pages::not_found(&csrf)).into_response();
    };
    let found = c
        .get(
            "/v1/audit/disclosures",
            &[("after", (seq - 1).to_string()), ("limit", "1".into())],
        )
        .await;
    let item = match found {
        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| at(&v, "items").as_array().and_then(|a| a.first().cloned()))
            .filter(|i| at(i, "seq").as_i64() == Some(seq)),
        _ => None,
    };
    let Some(item) = item else {
        return (StatusCode::NOT_FOUND, pages::not_found(&csrf)).into_response();
    };
    let proven = match c.get(&format!("/v1/audit/proof/{seq}"), &[]).await {
        Ok((200, body)) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(p) => prove(&item, &p, &c.keys),
            Err(_) => Proven::Failed("the proof is not JSON".into()),
        },
        Ok((status, body)) => Proven::Failed(format!(
            "the gateway answered {status}: {}",
            problem_detail(&body)
        )),
        Err(e) => Proven::Failed(e.to_string()),
    };
    pages::entry(&csrf, &item, &proven).into_response()
}

async fn report_form(State(c): St, headers: HeaderMap) -> Response {
    match session(&c, &headers) {
        Some((_, csrf)) => pages::report_form(&csrf).into_response(),
        None => login_needed(),
    }
}

/// An art. 15 request: the BSN, and whether confidential purposes are listed too.
#[derive(Debug, Deserialize)]
struct ReportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    bsn: String,
    #[serde(default)]
    confidential: Option<String>,
}

async fn report(State(c): St, headers: HeaderMap, Form(f): Form<ReportForm>) -> Response {
    let csrf = match posted(&c, &headers, &f.csrf) {
        Ok(t) => t,
        Err(d) => return d.into_response(),
    };
    let bsn: String = f.bsn.chars().filter(char::is_ascii_digit).collect();
    let confidential = if f.confidential.is_some() {
        "include"
    } else {
        "exclude"
    };
    let body =
        serde_json::json!({"subject": {"bsn": bsn}, "confidential": confidential, "prove": true});
    match c.post_json("/v1/audit/subjects/report", &body).await {
        Ok((200, body)) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) => {
                let proven = complete(&c, &v);
                pages::letter(&csrf, &v, c.clock.today(), &proven).into_response()
            }
            Err(_) => failed(&csrf, Ok((200, "{\"detail\":\"not JSON\"}".into()))),
        },
        other => failed(&csrf, other),
    }
}

/// The console's own check that a report is complete (issue 28): its proof against the log's
/// key and every witness the console knows, and each disclosure it lists among the proven
/// entries. The letter says "volledig bewezen" only when this passed.
fn complete(
    c: &Console,
    report: &serde_json::Value,
) -> Result<crate::log::subjects::Proven, String> {
    let proof: crate::log::subjects::SubjectProof =
        serde_json::from_value(at(report, "proof").clone())
            .map_err(|_| "the gateway sent no proof with the report".to_owned())?;
    let proven =
        crate::log::subjects::verify_proof(&proof, &c.keys, &c.witnesses, c.witnesses.len())?;
    let listed: Vec<u64> = at(report, "disclosures")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| at(d, "seq").as_u64())
        .collect();
    let left_out: Vec<String> = at(report, "confidential_purposes_left_out")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    crate::log::subjects::check_report(&proof, &proven, &listed, &left_out)?;
    Ok(proven)
}

/// Entries at the end of the log whose inclusion the health page checks.
const RECENT: i64 = 10;

/// What the health page found, each part checked by the console itself.
#[derive(Debug, Clone)]
pub struct Health {
    /// The served checkpoint (size, root) if the log key signed it, or why not.
    pub checkpoint: Result<(u64, String), String>,
    /// Each known witness that cosigned it, with its cosignature's time (epoch seconds).
    pub cosigned: Vec<(String, u64)>,
    /// Cosignature lines of witnesses the console was not given.
    pub unknown_cosignatures: usize,
    /// The latest entry's time, if one was read.
    pub latest_entry: Option<i64>,
    /// Recent entries whose inclusion proof verified, and those read.
    pub recent: (usize, usize),
    /// Why a recent entry failed, if one did.
    pub recent_failure: Option<String>,
    /// The consistency with the checkpoint of the previous visit: its size, and whether the
    /// proof held (or why not).
    pub since: Option<(u64, Result<(), String>)>,
    /// Now (epoch seconds).
    pub now: i64,
}

/// The log's state as the console sees it: the served checkpoint checked with the log key and
/// the witnesses' keys, the latest entries' inclusion proofs, and a consistency proof from the
/// checkpoint of the previous visit.
async fn log_health(State(c): St, headers: HeaderMap) -> Response {
    let csrf = match signed_in(&c, &headers) {
        Ok(t) => t,
        Err(d) => return d.into_response(),
    };
    let note = match c.get("/v1/audit/checkpoint", &[]).await {
        Ok((200, note)) => note,
        other => return failed(&csrf, other),
    };
    let mut h = Health {
        checkpoint: Err(String::new()),
        cosigned: Vec::new(),
        unknown_cosignatures: 0,
        latest_entry: None,
        recent: (0, 0),
        recent_failure: None,
        since: None,
        now: c.clock.now(),
    };
    let cp = match c.keys.verify(&note) {
        Ok((cp, _)) => cp,
        Err(e) => {
            h.checkpoint = Err(e.to_string());
            return pages::log_health(&csrf, &h).into_response();
        }
    };
    h.checkpoint = Ok((cp.size, hex::encode(cp.root)));
    match crate::log::cosign::witnessed(&note, &c.witnesses) {
        Ok(w) => h.cosigned = w,
        Err(e) => h.recent_failure = Some(format!("a witness's cosignature does not verify: {e}")),
    }
    let lines = note.lines().filter(|l| l.starts_with("\u{2014} ")).count();
    h.unknown_cosignatures = lines.saturating_sub(1 + h.cosigned.len());
    let size = i64::try_from(cp.size).unwrap_or(i64::MAX);
    recent_entries(&c, size, &cp.root, &mut h).await;
    h.since = consistency_since(&c, cp.size, cp.root).await;
    pages::log_health(&csrf, &h).into_response()
}

/// Checks the inclusion of the last entries (that this officer may see) in the checkpoint.
async fn recent_entries(c: &Console, size: i64, root: &Hash, h: &mut Health) {
    let found = c
        .get(
            "/v1/audit/disclosures",
            &[
                ("after", (size - RECENT).max(0).to_string()),
                ("limit", RECENT.to_string()),
            ],
        )
        .await;
    let items = match found {
        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| at(&v, "items").as_array().cloned()),
        _ => None,
    };
    let Some(items) = items else {
        h.recent_failure = Some("the gateway did not list the latest entries".into());
        return;
    };
    let cp_size = u64::try_from(size).unwrap_or(0);
    for item in items
        .iter()
        .filter(|i| at(i, "seq").as_i64().is_some_and(|s| s <= size))
    {
        let seq = at(item, "seq").as_i64().unwrap_or(0);
        h.recent.1 += 1;
        h.latest_entry = h.latest_entry.max(at(item, "at").as_str().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp())
        }));
        let proven = match c
            .get(
                &format!("/v1/audit/proof/{seq}"),
                &[("size", size.to_string())],
            )
            .await
        {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body).map_or_else(
                |_| Proven::Failed("the proof is not JSON".into()),
                |p| prove_in(item, &p, cp_size, root),
            ),
            Ok((status, body)) => Proven::Failed(format!(
                "the gateway answered {status}: {}",
                problem_detail(&body)
            )),
            Err(e) => Proven::Failed(e.to_string()),
        };
        match proven {
            Proven::Verified(_) | Proven::Partial(_) => h.recent.0 += 1,
            Proven::Failed(why) => h.recent_failure = Some(format!("entry {seq}: {why}")),
        }
    }
}

/// Proves that the log only grew since the checkpoint the previous visit verified; remembers
/// this one for the next visit.
async fn consistency_since(
    c: &Console,
    size: u64,
    root: Hash,
) -> Option<(u64, Result<(), String>)> {
    let previous = c.seen.lock().ok().and_then(|s| *s);
    let result = match previous {
        None => None,
        Some((old, old_root)) if old == size => Some((
            old,
            if old_root == root {
                Ok(())
            } else {
                Err("the same size has another root".into())
            },
        )),
        Some((old, _)) if old > size => Some((
            old,
            Err(format!(
                "the log is smaller than at the previous visit ({old})"
            )),
        )),
        Some((old, old_root)) => {
            let answer = c
                .get(
                    "/v1/audit/consistency",
                    &[("from", old.to_string()), ("to", size.to_string())],
                )
                .await;
            let checked = match answer {
                Ok((200, body)) => {
                    let v = serde_json::from_str::<serde_json::Value>(&body)
                        .unwrap_or(serde_json::Value::Null);
                    // Not JSON, or no `proof`: "not readable" below.
                    let path: Option<Vec<Hash>> = at(&v, "proof").as_array().map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().and_then(crate::log::verify::parse_hash))
                            .collect()
                    });
                    match path {
                        Some(p) if verify_consistency(old, size, &old_root, &root, &p) => Ok(()),
                        Some(_) => Err("the consistency proof does not hold".into()),
                        None => Err("the consistency proof is not readable".into()),
                    }
                }
                Ok((status, body)) => Err(format!(
                    "the gateway answered {status}: {}",
                    problem_detail(&body)
                )),
                Err(e) => Err(e.to_string()),
            };
            Some((old, checked))
        }
    };
    // Only a checkpoint that is consistent with what was seen replaces it.
    if result.as_ref().is_none_or(|(_, r)| r.is_ok())
        && let Ok(mut s) = c.seen.lock()
    {
        *s = Some((size, root));
    }
    result
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::CSS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[tokio::test]
    async fn the_console_verifies_a_proof_and_catches_a_changed_entry_or_a_foreign_key() {
        let (app, _) = testkit::app().await;
        testkit::register(&app, "999990135").await;
        let seq = app.db.log_head().await.unwrap().size;
        let text = app.db.entry(seq).await.unwrap().unwrap();
        let proof =
            serde_json::to_value(app.log.inclusion(seq, None, testkit::T0).await.unwrap()).unwrap();
        let mut item: serde_json::Value = serde_json::from_str(&text).unwrap();
        item["seq"] = seq.into();
        item["leaf_hash"] = proof["leaf_hash"].clone();
        let keys = app.log.key_set().unwrap();
        assert!(
            matches!(prove(&item, &proof, &keys), Proven::Verified(n) if n == u64::try_from(seq).unwrap())
        );
        let mut changed = item.clone();
        changed["outcome"] = "refused".into();
        assert_eq!(
            prove(&changed, &proof, &keys),
            Proven::Failed("the entry does not hash to its leaf".into())
        );
        let other = crate::log::checkpoint::LogKey::from_seed(
            "gateway.ipga-r.example/disclosures",
            &[9; 32],
        )
        .unwrap();
        let foreign = KeySet::parse(&other.vkey()).unwrap();
        assert!(
            matches!(prove(&item, &proof, &foreign), Proven::Failed(w) if w.contains("does not verify"))
        );
    }
}
