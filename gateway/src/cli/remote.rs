//! `gateway policy submit|simulate|approve|activate|rollback|status|versions|drafts|show`: the
//! administrators' API from the command line, so that the covenant can be managed from a git
//! repository by a script. Each call uses mutual TLS and the administrator's own token.
#![expect(
    clippy::indexing_slicing,
    reason = "indexing a serde_json::Value by key or position yields Null when absent, never panics; these read the API's own answers as a client would"
)]

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Where the gateway is and who is calling.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The gateway's partner API.
    #[arg(long, env = "GATEWAY_URL", default_value = "https://127.0.0.1:8443")]
    pub gateway: String,
    /// CA certificate that signed the gateway's server certificate (PEM).
    #[arg(
        long,
        env = "GATEWAY_CA",
        default_value = "certs-example/generated/ca.pem"
    )]
    pub ca: PathBuf,
    /// Your client certificate (PEM).
    #[arg(long, env = "GATEWAY_CLIENT_CERT")]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, env = "GATEWAY_CLIENT_KEY")]
    pub key: PathBuf,
    /// Your token (a JWT with role `beheerder`, bound to the certificate). On a shared
    /// machine prefer --token-file: a command line is visible to other users.
    #[arg(
        long,
        env = "GATEWAY_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding your token.
    #[arg(long, env = "GATEWAY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// What to ask.
#[derive(Debug)]
pub enum Call {
    /// Submit a covenant file as a draft.
    Submit(PathBuf),
    /// Replay recent requests under a draft.
    Simulate(String, i64),
    /// Approve a draft.
    Approve(String),
    /// Activate an approved draft.
    Activate(String),
    /// Draft a return to an earlier version.
    Rollback(String),
    /// The active version.
    Status,
    /// Every activated version.
    Versions,
    /// Recent drafts.
    Drafts,
    /// One draft with its text.
    Show(String),
    /// Add a partner's signed approval note (a file) to a draft.
    Signature(String, PathBuf),
    /// Withdraw a partner's signed approval of a draft.
    WithdrawSignature(String, String),
}

fn client(args: &RemoteArgs) -> anyhow::Result<reqwest::Client> {
    mtls_client(&args.ca, &args.cert, &args.key)
}

/// An HTTPS-only client that trusts only `ca` and presents `cert` with `key`.
pub fn mtls_client(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<reqwest::Client> {
    let mut pem = std::fs::read(cert)
        .with_context(|| format!("reading the certificate {}", cert.display()))?;
    pem.extend(std::fs::read(key).with_context(|| format!("reading the key {}", key.display()))?);
    let ca = std::fs::read(ca).with_context(|| format!("reading the CA {}", ca.display()))?;
    Ok(reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca)?)
        .identity(reqwest::Identity::from_pem(&pem)?)
        .https_only(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

/// Performs the call; prints the answer; returns 0, or 1 when the gateway refused.
pub fn run(args: RemoteArgs, call: Call) -> anyhow::Result<i32> {
    crate::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let http = client(&args)?;
        let base = args.gateway.trim_end_matches('/');
        let url = |p: &str| format!("{base}/v1/policy{p}");
        let token = match (&args.token, &args.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("reading --token-file {}", f.display()))?,
            (None, None) => anyhow::bail!("give --token or --token-file"),
        };
        let auth = format!("Bearer {}", token.trim());
        let req = match &call {
            Call::Submit(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                http.post(url("/drafts"))
                    .header("content-type", "application/toml")
                    .body(text)
            }
            Call::Simulate(id, days) => http
                .post(url(&format!("/drafts/{id}/simulate")))
                .json(&serde_json::json!({"days": days})),
            Call::Approve(id) => http.post(url(&format!("/drafts/{id}/approve"))),
            Call::Activate(id) => http.post(url(&format!("/drafts/{id}/activate"))),
            Call::Rollback(id) => http.post(url(&format!("/versions/{id}/rollback"))),
            Call::Status => http.get(url("")),
            Call::Versions => http.get(url("/versions")),
            Call::Drafts => http.get(url("/drafts")),
            Call::Show(id) => http.get(url(&format!("/drafts/{id}"))),
            Call::Signature(id, file) => {
                let note = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                http.post(url(&format!("/drafts/{id}/signatures")))
                    .json(&serde_json::json!({"note": note}))
            }
            Call::WithdrawSignature(id, partner) => {
                http.post(url(&format!("/drafts/{id}/signatures/{partner}/withdraw")))
            }
        };
        let resp = req
            .header("authorization", auth)
            .send()
            .await
            .with_context(|| format!("calling {base}"))?;
        let ok = resp.status().is_success();
        let body: Value = resp.json().await.context("reading the gateway's answer")?;
        if !ok {
            eprint!("{}", problem_text(&body));
            return Ok(1);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&body)?);
        } else {
            print!("{}", summary(&call, &body));
        }
        Ok(0)
    })
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

fn who(v: &Value) -> String {
    match (
        v.get("partner").and_then(Value::as_str),
        v.get("staff_id").and_then(Value::as_str),
    ) {
        (Some(p), Some(s)) => format!("{p}/{s}"),
        _ => "-".into(),
    }
}

/// A refusal for people: title, detail and every listed problem.
pub fn problem_text(p: &Value) -> String {
    let mut o = format!("refused: {}: {}\n", s(p, "title"), s(p, "detail"));
    for e in p
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(o, "  {}", e.as_str().unwrap_or_default());
    }
    o
}

fn draft_line(d: &Value) -> String {
    format!(
        "{}  {:<9} {:<10} {}  by {}  approved by {}  activated {}\n",
        s(d, "id"),
        s(d, "kind"),
        s(d, "status"),
        s(d, "version"),
        who(&d["author"]),
        who(&d["approver"]),
        d.get("activated_at").and_then(Value::as_str).unwrap_or("-"),
    )
}

/// The readable summary of an answer.
pub fn summary(call: &Call, v: &Value) -> String {
    let mut o = String::new();
    match call {
        Call::Signature(..) => {
            let _ = writeln!(
                o,
                "{}'s signed approval of draft {} added (until {}); log entry {}",
                s(v, "partner"),
                s(v, "draft"),
                s(v, "expires"),
                v["audit_seq"]
            );
        }
        Call::WithdrawSignature(..) => {
            let _ = writeln!(
                o,
                "{}'s signed approval of draft {} withdrawn; log entry {}",
                s(v, "partner"),
                s(v, "draft"),
                v["audit_seq"]
            );
        }
        Call::Submit(_) | Call::Rollback(_) => {
            let _ = writeln!(
                o,
                "draft {} ({}), version {}",
                s(v, "id"),
                s(v, "kind"),
                s(v, "version")
            );
            let d = &v["diff"];
            let _ = writeln!(
                o,
                "  {} decision(s) change against the active version {}",
                d["decision_changes"],
                s(d, "from_version")
            );
            for r in d["registry_changes"].as_array().into_iter().flatten() {
                let _ = writeln!(o, "  registry: {}", r.as_str().unwrap_or_default());
            }
            let _ = writeln!(
                o,
                "next: gateway policy simulate {0}; another administrator: gateway policy approve {0}",
                s(v, "id")
            );
        }
        Call::Simulate(..) => {
            let r = &v["report"];
            let _ = writeln!(
                o,
                "draft {} replayed over {} day(s): {} request(s), {} would change ({} distinct subject(s))",
                s(v, "draft"),
                v["days"],
                r["replayed"],
                r["affected_requests"],
                r["affected_subjects"]
            );
            for g in r["changes"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    o,
                    "\n{} / {}: {} request(s), {} subject(s); sequence numbers {}",
                    s(g, "partner"),
                    s(g, "purpose"),
                    g["requests"],
                    g["subjects"],
                    g["sequence_numbers"]
                );
                for f in g["fields"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        o,
                        "  {:<40} {} -> {}  ({} -> {}), {} request(s)",
                        s(f, "field"),
                        s(f, "from"),
                        f["to"].as_str().unwrap_or("(not in the catalogue)"),
                        s(f, "rule_before"),
                        f["rule_after"].as_str().unwrap_or("-"),
                        f["requests"]
                    );
                }
            }
            for a in r["access"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    o,
                    "\n{} as {} for {}: {} then, now {}; {} request(s), sequence numbers {}",
                    s(a, "partner"),
                    s(a, "role"),
                    s(a, "purpose"),
                    s(a, "then"),
                    s(a, "now"),
                    a["requests"],
                    a["sequence_numbers"]
                );
            }
            let _ = writeln!(
                o,
                "\nstatic: {} decision(s) change",
                v["static"]["decision_changes"]
            );
        }
        Call::Approve(_) | Call::Activate(_) | Call::Show(_) => {
            o.push_str(&draft_line(v));
            if let Some(src) = v.get("source").and_then(Value::as_str) {
                o.push_str(src);
            }
        }
        Call::Status => {
            let _ = writeln!(
                o,
                "active version {} (draft {}, {})",
                s(v, "version"),
                s(v, "draft"),
                s(v, "kind")
            );
            let _ = writeln!(
                o,
                "  covenant   {} {}",
                s(&v["covenant"], "id"),
                s(&v["covenant"], "version_label")
            );
            let _ = writeln!(o, "  author     {}", who(&v["author"]));
            let _ = writeln!(o, "  approver   {}", who(&v["approver"]));
            let _ = writeln!(
                o,
                "  activated  {} by {}",
                s(v, "activated_at"),
                who(&v["activated_by"])
            );
        }
        Call::Versions => {
            for d in v["versions"].as_array().into_iter().flatten() {
                if d["active"].as_bool() == Some(true) {
                    o.push_str("* ");
                } else {
                    o.push_str("  ");
                }
                o.push_str(&draft_line(d));
            }
        }
        Call::Drafts => {
            for d in v["drafts"].as_array().into_iter().flatten() {
                o.push_str(&draft_line(d));
            }
        }
    }
    o
}
