//! Configuration: one TOML file (unknown keys refused), environment overrides, secrets read from
//! files. Relative paths are relative to the configuration file's directory.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This gateway's id: the `aud` tokens must carry.
    pub gateway_id: String,
    /// Address of the partner API (mutual TLS).
    pub listen: String,
    /// Address of `/healthz` and `/readyz` (plain HTTP; keep it on loopback).
    #[serde(default = "default_health")]
    pub health_listen: String,
    /// `sqlite://PATH` (embedded default) or `postgres://…`.
    pub database_url: String,
    /// The covenant file.
    pub covenant: PathBuf,
    /// Directory that `file:` key references in the covenant are relative to.
    pub key_dir: PathBuf,
    /// TLS material.
    pub tls: TlsConfig,
    /// Token checks.
    #[serde(default)]
    pub tokens: TokenConfig,
    /// Secret files.
    pub secrets: SecretsConfig,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Operational logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The disclosure log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Products served by a partner's own HTTPS endpoint instead of the gateway's store.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Where the other approaches of the covenant's `[[approach]]` are asked.
    #[serde(default, rename = "approach")]
    pub approaches: Vec<ApproachConfig>,
    /// Who maintains the covenant through the API.
    #[serde(default)]
    pub administration: AdministrationConfig,
    /// Where each key's value came from (for `gateway config check`).
    #[serde(skip)]
    pub value_sources: BTreeMap<String, Source>,
    /// `gateway serve --without-witnesses REASON`: start although no witness can be asked
    /// (recorded in the log). Never from a file: it is a decision for one start.
    #[serde(skip)]
    pub without_witnesses: Option<String>,
}

/// `[administration]`: the administrators (`beheerders`) of the sharing policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdministrationConfig {
    /// `partner/staff-id` of everyone who may draft, approve, activate and roll back covenant
    /// versions (their token must also carry the `beheerder` role). Empty: nobody may.
    #[serde(default)]
    pub administrators: Vec<String>,
    /// Whether the approver must belong to another partner than the author.
    #[serde(default)]
    pub approver_from_other_partner: bool,
    /// Seconds between checks for a version activated by another gateway instance.
    #[serde(default = "default_policy_poll")]
    pub poll_secs: u64,
    /// Days an approval counts for; an older one must be given again before activation.
    #[serde(default = "default_approval_days")]
    pub approval_valid_days: u32,
    /// The directory of the core partners' signed approvals of the first covenant version (the
    /// installation ceremony), read only when an empty database is started under a covenant
    /// that sets `approval_threshold`.
    #[serde(default)]
    pub installation_signatures: Option<PathBuf>,
}

impl Default for AdministrationConfig {
    fn default() -> Self {
        AdministrationConfig {
            administrators: Vec::new(),
            approver_from_other_partner: false,
            poll_secs: default_policy_poll(),
            approval_valid_days: default_approval_days(),
            installation_signatures: None,
        }
    }
}

fn default_policy_poll() -> u64 {
    5
}
fn default_approval_days() -> u32 {
    14
}

impl AdministrationConfig {
    /// Whether `partner/staff` is a listed administrator.
    pub fn is_administrator(&self, partner: &str, staff: &str) -> bool {
        self.administrators
            .iter()
            .any(|a| a.split_once('/') == Some((partner, staff)))
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Seconds between periodic checkpoints (when the log grew); 0 turns them off.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_secs: u64,
    /// Seconds between retention runs while serving (what the covenant's `[retention]` says
    /// has expired is removed); 0: only by `gateway retention run`.
    #[serde(default = "default_retention_interval")]
    pub retention_interval_secs: u64,
}

fn default_checkpoint_interval() -> u64 {
    60
}

fn default_retention_interval() -> u64 {
    86_400
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_interval_secs: default_checkpoint_interval(),
            retention_interval_secs: default_retention_interval(),
        }
    }
}

/// `[[approach]]`: where another approach's register answers the aanpak-check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproachConfig {
    /// The covenant's `[[approach]] id`.
    pub id: String,
    /// Its register's base URL: the gateway fetches `GET {url}/set` (the signed set of its
    /// members) and asks `POST {url}/evaluate` (one blinded element), with its client
    /// certificate (docs/api.md, "The oblivious aanpak-check").
    pub url: String,
    /// The register's POPRF public key, 64 hex digits (`gateway approach key` prints it).
    pub oprf_public: String,
    /// The verifier key of the register's published sets (`gateway approach key` prints it).
    pub set_vkey: String,
    /// Overrides `limits.source_timeout_ms` for this approach.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// `[[source]]`: an upstream source for one product.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Product id from the covenant's catalogue.
    pub product: String,
    /// Base URL; the gateway calls `GET {url}/{subject_ref}` and expects `{"records": [...]}`.
    pub url: String,
    /// Overrides `limits.source_timeout_ms` for this source.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_health() -> String {
    "127.0.0.1:8080".into()
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Covenant CA certificate(s) (PEM): client certificates must chain to one of them.
    pub ca: PathBuf,
    /// CRLs (PEM) of that CA.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// The gateway's server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// How long a client may take to finish the TLS handshake.
    #[serde(default = "default_handshake_ms")]
    pub handshake_timeout_ms: u64,
    /// Seconds between checks of the CRL files for a new revocation list (0: only at
    /// activation).
    #[serde(default = "default_crl_check")]
    pub crl_check_secs: u64,
    /// The gateway's own client certificate, for upstream sources.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

fn default_handshake_ms() -> u64 {
    5_000
}

fn default_crl_check() -> u64 {
    30
}

/// `[tokens]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Largest `exp - iat` accepted (at most 900: fifteen minutes).
    #[serde(default = "default_lifetime")]
    pub max_lifetime_secs: i64,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: i64,
    /// Largest bearer token accepted, in bytes (`token-too-large` above it).
    #[serde(default = "default_token_bytes")]
    pub max_bytes: usize,
}

fn default_token_bytes() -> usize {
    8 * 1024
}

fn default_lifetime() -> i64 {
    900
}
fn default_leeway() -> i64 {
    30
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            max_lifetime_secs: default_lifetime(),
            leeway_secs: default_leeway(),
            max_bytes: default_token_bytes(),
        }
    }
}

/// `[secrets]`: files, never values in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The gateway's age identities for data at rest, one `AGE-SECRET-KEY-…` line each: the
    /// first seals, every one opens (`gateway keys rotate-storage` puts a new one first).
    pub storage_identity_file: PathBuf,
    /// 32 random bytes (hex) from which pseudonym keys are derived.
    pub pseudonym_key_file: PathBuf,
    /// Ed25519 seed (32 bytes, hex) of the key that signs log checkpoints.
    pub log_key_file: PathBuf,
    /// The verifier keys (`vkey`, one per line) of log keys retired by `gateway audit
    /// rotate-key`, so that their checkpoints still verify. Default: `log-retired.vkeys` beside
    /// the log key file (it need not exist).
    #[serde(default)]
    pub retired_log_vkeys_file: Option<PathBuf>,
    /// Seconds between looks at the storage identity file while serving (a rotation is picked
    /// up, and rows sealed with older keys are sealed again); 0: at start only.
    #[serde(default = "default_secrets_reload")]
    pub reload_secs: u64,
}

fn default_secrets_reload() -> u64 {
    10
}

impl SecretsConfig {
    /// Where the retired log keys are listed.
    pub fn retired_log_vkeys(&self) -> PathBuf {
        self.retired_log_vkeys_file.clone().unwrap_or_else(|| {
            self.log_key_file
                .parent()
                .map(|d| d.join("log-retired.vkeys"))
                .unwrap_or_else(|| PathBuf::from("log-retired.vkeys"))
        })
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body.
    #[serde(default = "default_body")]
    pub body_bytes: usize,
    /// Deepest JSON nesting.
    #[serde(default = "default_depth")]
    pub json_depth: usize,
    /// Requests per second per partner.
    #[serde(default = "default_partner_rps")]
    pub partner_per_second: u32,
    /// Requests per second per staff id.
    #[serde(default = "default_staff_rps")]
    pub staff_per_second: u32,
    /// Time a source may take to answer.
    #[serde(default = "default_source_ms")]
    pub source_timeout_ms: u64,
    /// Opened (decrypted) deposits kept in memory, so a product is not decrypted again on every
    /// request; 0 keeps none.
    #[serde(default = "default_opened_records")]
    pub opened_records_cached: usize,
    /// The longest a request may take from arriving to its answer (its refusal when it takes
    /// longer: `request-timeout`).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Requests handled at once; one more is refused at once (`overloaded`, with `Retry-After`)
    /// rather than queued.
    #[serde(default = "default_concurrent_requests")]
    pub concurrent_requests: usize,
    /// The longest a client may take to send a request's headers (HTTP/1.1; the same bound
    /// closes a keep-alive connection that sends no next request).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// The longest the gateway waits for each next piece of a request body
    /// (`body-timeout` after it).
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// A connection on which no byte moves for this long is closed (HTTP/1.1 and HTTP/2). Must
    /// exceed `request_timeout_ms`, so that a request being answered is never cut.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Most request header fields (`headers-too-large` above it).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Most bytes of request header names and values together (`headers-too-large` above it).
    #[serde(default = "default_header_bytes")]
    pub header_bytes: usize,
    /// HTTP/2: most streams a client may have open at once on one connection.
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: u32,
    /// Most connections open at once; one more is closed before its TLS handshake.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Most connections one partner may hold at once; a request on one more is refused
    /// (`too-many-connections`) and that connection closed.
    #[serde(default = "default_connections_per_partner")]
    pub connections_per_partner: usize,
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_body_read_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_max_headers() -> usize {
    64
}
fn default_header_bytes() -> usize {
    16 * 1024
}
fn default_h2_streams() -> u32 {
    32
}
fn default_connections() -> usize {
    1024
}
fn default_connections_per_partner() -> usize {
    128
}

fn default_body() -> usize {
    64 * 1024
}
fn default_depth() -> usize {
    32
}
fn default_partner_rps() -> u32 {
    500
}
fn default_staff_rps() -> u32 {
    50
}
fn default_opened_records() -> usize {
    100_000
}
fn default_source_ms() -> u64 {
    2_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_concurrent_requests() -> usize {
    512
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: default_body(),
            json_depth: default_depth(),
            partner_per_second: default_partner_rps(),
            staff_per_second: default_staff_rps(),
            source_timeout_ms: default_source_ms(),
            opened_records_cached: default_opened_records(),
            request_timeout_ms: default_request_timeout_ms(),
            concurrent_requests: default_concurrent_requests(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_headers: default_max_headers(),
            header_bytes: default_header_bytes(),
            h2_max_concurrent_streams: default_h2_streams(),
            connections: default_connections(),
            connections_per_partner: default_connections_per_partner(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (default) or `pretty`.
    #[serde(default = "default_format")]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `gateway=debug`.
    #[serde(default = "default_level")]
    pub level: String,
}

/// Operational log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// For people at a terminal.
    Pretty,
}

fn default_format() -> LogFormat {
    LogFormat::Json
}
fn default_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_format(),
            level: default_level(),
        }
    }
}

/// Every key of the configuration that is a single value (the `[[source]]` tables are not).
/// Each can be set by the environment variable `GATEWAY_` + its path in upper case with `.`
/// as `_` (`limits.body_bytes`: `GATEWAY_LIMITS_BODY_BYTES`), and read from a file by the same
/// name with `_FILE` appended (`GATEWAY_DATABASE_URL_FILE=/run/secrets/db`), or in the file by
/// the key with `_file` appended (`database_url_file = "…"`), for secrets such as a database
/// password. A test holds this list to the configuration's fields and docs/configuration.md.
pub const KEYS: &[&str] = &[
    "gateway_id",
    "listen",
    "health_listen",
    "database_url",
    "covenant",
    "key_dir",
    "tls.ca",
    "tls.crl",
    "tls.cert",
    "tls.key",
    "tls.handshake_timeout_ms",
    "tls.crl_check_secs",
    "tls.client_cert",
    "tls.client_key",
    "tokens.max_lifetime_secs",
    "tokens.leeway_secs",
    "tokens.max_bytes",
    "secrets.storage_identity_file",
    "secrets.pseudonym_key_file",
    "secrets.log_key_file",
    "secrets.retired_log_vkeys_file",
    "secrets.reload_secs",
    "limits.body_bytes",
    "limits.json_depth",
    "limits.partner_per_second",
    "limits.staff_per_second",
    "limits.source_timeout_ms",
    "limits.opened_records_cached",
    "limits.request_timeout_ms",
    "limits.concurrent_requests",
    "limits.header_read_timeout_ms",
    "limits.body_read_timeout_ms",
    "limits.idle_timeout_ms",
    "limits.max_headers",
    "limits.header_bytes",
    "limits.h2_max_concurrent_streams",
    "limits.connections",
    "limits.connections_per_partner",
    "log.format",
    "log.level",
    "audit.checkpoint_interval_secs",
    "audit.retention_interval_secs",
    "administration.administrators",
    "administration.approver_from_other_partner",
    "administration.poll_secs",
    "administration.approval_valid_days",
    "administration.installation_signatures",
];

/// Older names kept working: `GATEWAY_ID` for `GATEWAY_GATEWAY_ID`.
const ENV_ALIASES: &[(&str, &str)] = &[("GATEWAY_ID", "gateway_id")];

/// The environment variable of a key.
pub fn env_var(key: &str) -> String {
    format!("GATEWAY_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Where a value of the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The configuration file.
    File,
    /// A file named in the configuration file (`key_file = …`).
    FileReference(PathBuf),
    /// An environment variable.
    Env(String),
    /// A file named by an environment variable (`…_FILE`).
    EnvFile(String, PathBuf),
    /// Not set: the default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File => f.write_str("file"),
            Source::FileReference(p) => write!(f, "file, read from {}", p.display()),
            Source::Env(v) => write!(f, "environment {v}"),
            Source::EnvFile(v, p) => write!(f, "environment {v}, read from {}", p.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value as the environment gives it: TOML if it reads as a TOML value (numbers, booleans,
/// arrays), a string otherwise.
fn env_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// Sets `key` (a dotted path of [`KEYS`]) in `doc`.
fn set_key(doc: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        Some((section, name)) => {
            let entry = doc
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                t.insert(name.to_owned(), value);
            }
        }
        None => {
            doc.insert(key.to_owned(), value);
        }
    }
}

fn has_key(doc: &toml::Table, key: &str) -> bool {
    match key.split_once('.') {
        Some((section, name)) => doc
            .get(section)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key(name)),
        None => doc.contains_key(key),
    }
}

/// Reads a secret from a file: its text without the final line break.
fn read_secret(path: &Path, var: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| ConfigError::Secret {
            name: var.to_owned(),
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Applies `key_file` references of the file and the environment to `doc`; returns where each
/// key's value came from.
fn apply_sources(
    doc: &mut toml::Table,
    base: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, Source>, ConfigError> {
    let mut sources = BTreeMap::new();
    for key in KEYS {
        let source = if has_key(doc, key) {
            Source::File
        } else {
            Source::Default
        };
        sources.insert((*key).to_owned(), source);
    }
    // `key_file = "…"` in the file, for keys that are not themselves `…_file`.
    for key in KEYS {
        let reference = format!("{key}_file");
        if KEYS.contains(&reference.as_str()) {
            continue;
        }
        let path = match reference.split_once('.') {
            Some((section, name)) => doc
                .get_mut(section)
                .and_then(toml::Value::as_table_mut)
                .and_then(|t| t.remove(name)),
            None => doc.remove(&reference),
        };
        if let Some(path) = path {
            let Some(path) = path.as_str().map(|p| base.join(p)) else {
                return Err(ConfigError::Secret {
                    name: reference,
                    path: PathBuf::new(),
                    message: "must be a file path".into(),
                });
            };
            let text = read_secret(&path, &reference)?;
            set_key(doc, key, toml::Value::String(text));
            sources.insert((*key).to_owned(), Source::FileReference(path));
        }
    }
    for (var, text) in env {
        let direct = KEYS
            .iter()
            .find(|k| env_var(k) == var)
            .or_else(|| ENV_ALIASES.iter().find(|(a, _)| *a == var).map(|(_, k)| k));
        if let Some(key) = direct {
            set_key(doc, key, env_value(&text));
            sources.insert((*key).to_owned(), Source::Env(var));
            continue;
        }
        let from_file = var
            .strip_suffix("_FILE")
            .and_then(|v| KEYS.iter().find(|k| env_var(k) == v));
        if let Some(key) = from_file {
            let path = PathBuf::from(&text);
            let secret = read_secret(&path, &var)?;
            set_key(doc, key, toml::Value::String(secret));
            sources.insert((*key).to_owned(), Source::EnvFile(var, path));
        }
        // Any other GATEWAY_ variable is not the configuration's (the CLI's GATEWAY_URL, …).
    }
    Ok(sources)
}

/// Problems reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}{}", if source.kind() == std::io::ErrorKind::NotFound { " (give the configuration with --config FILE; without it the gateway reads /etc/gateway/gateway.toml when it exists, else certs-example/generated/gateway.toml, which `gateway certs init` makes)" } else { "" })]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Values that do not fit together.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A secret file named by the configuration or the environment cannot be read.
    #[error("{name} = {path}: {message}")]
    Secret {
        /// The key or variable that names it.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads the file, applies `env` overrides (pass `std::env::vars()`), resolves relative paths.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let position = |e: &toml::de::Error| {
            let (line, column) = e
                .span()
                .map_or((0, 0), |s| policy::diag::line_col(&text, s.start));
            ConfigError::Parse {
                path: path.into(),
                line,
                column,
                message: e.message().trim().replace('\n', " "),
            }
        };
        let mut doc: toml::Table = toml::from_str(&text).map_err(|e| position(&e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let sources = apply_sources(&mut doc, &base, env)?;
        // Errors in the file keep their line and column; those of overridden values name the
        // key (the environment has no lines).
        let mut cfg: Config = match Config::deserialize(toml::Value::Table(doc)) {
            Ok(c) => c,
            Err(e) => {
                // The file's own mistakes first, with their position (but not what the
                // environment or a `key_file` reference supplies).
                let supplied = |m: &str| {
                    m.starts_with("missing field")
                        || (m.contains("_file`") && m.starts_with("unknown field"))
                };
                return Err(match toml::from_str::<Config>(&text) {
                    Err(in_file)
                        if in_file.message() == e.message() || !supplied(in_file.message()) =>
                    {
                        position(&in_file)
                    }
                    _ => ConfigError::Parse {
                        path: path.into(),
                        line: 0,
                        column: 0,
                        message: format!(
                            "{} (a value from the environment or a referenced file)",
                            e.message().trim().replace('\n', " ")
                        ),
                    },
                });
            }
        };
        cfg.value_sources = sources;
        cfg.resolve(&base);
        let l = &cfg.limits;
        if l.idle_timeout_ms <= l.request_timeout_ms {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: format!(
                    "limits.idle_timeout_ms ({}) must exceed limits.request_timeout_ms ({}), or a request being answered could be cut",
                    l.idle_timeout_ms, l.request_timeout_ms
                ),
            });
        }
        Ok(cfg)
    }

    fn resolve(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.covenant);
        abs(&mut self.key_dir);
        abs(&mut self.tls.ca);
        abs(&mut self.tls.cert);
        abs(&mut self.tls.key);
        self.tls.crl.iter_mut().for_each(abs);
        if let Some(p) = self.tls.client_cert.as_mut() {
            abs(p);
        }
        if let Some(p) = self.tls.client_key.as_mut() {
            abs(p);
        }
        abs(&mut self.secrets.storage_identity_file);
        abs(&mut self.secrets.pseudonym_key_file);
        abs(&mut self.secrets.log_key_file);
        if let Some(p) = self.secrets.retired_log_vkeys_file.as_mut() {
            abs(p);
        }
        if let Some(p) = self.administration.installation_signatures.as_mut() {
            abs(p);
        }
        // A relative SQLite path is relative to the configuration too.
        if let Some(rest) = self.database_url.strip_prefix("sqlite://") {
            let p = Path::new(rest.split('?').next().unwrap_or(rest));
            if p.is_relative() && !rest.starts_with(':') {
                self.database_url = format!("sqlite://{}", base.join(rest).display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("gateway.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const MIN: &str = "gateway_id = \"gw\"\nlisten = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://db.sqlite\"\ncovenant = \"c.toml\"\nkey_dir = \"keys\"\n[tls]\nca = \"ca.pem\"\ncert = \"s.pem\"\nkey = \"s.key\"\n[secrets]\nstorage_identity_file = \"st\"\npseudonym_key_file = \"ps\"\nlog_key_file = \"lk\"\n";

    #[test]
    fn relative_paths_and_env_overrides() {
        let dir = std::env::temp_dir().join(format!("gw-config-{}", std::process::id()));
        let p = write(&dir, MIN);
        let cfg = Config::load(
            &p,
            [("GATEWAY_LISTEN".to_string(), "127.0.0.1:9".to_string())],
        )
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9");
        assert_eq!(cfg.tls.ca, dir.join("ca.pem"));
        assert_eq!(
            cfg.database_url,
            format!("sqlite://{}", dir.join("db.sqlite").display())
        );
        assert_eq!(cfg.tokens.max_lifetime_secs, 900);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unknown_keys_are_refused_with_a_position() {
        let dir = std::env::temp_dir().join(format!("gw-config-bad-{}", std::process::id()));
        let p = write(&dir, &MIN.replace("[tls]\n", "[tls]\nverify = false\n"));
        let e = Config::load(&p, []).unwrap_err().to_string();
        assert!(
            e.contains("gateway.toml:7:1: unknown field `verify`"),
            "{e}"
        );
        let e = Config::load(&p, [("GATEWAY_LOG_FORMAT".into(), "xml".into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("verify"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn every_key_by_one_naming_rule_and_secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("gw-config-env-{}", std::process::id()));
        let p = write(&dir, MIN);
        let secret = dir.join("db-url");
        std::fs::write(&secret, "postgres://gw:s3cret@db/gw\n").unwrap();
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let cfg = Config::load(
            &p,
            env(&[
                ("GATEWAY_LIMITS_BODY_BYTES", "1024"),
                ("GATEWAY_TLS_CRL", r#"["a.pem", "b.pem"]"#),
                ("GATEWAY_ADMINISTRATION_APPROVER_FROM_OTHER_PARTNER", "true"),
                ("GATEWAY_DATABASE_URL_FILE", secret.to_str().unwrap()),
                ("GATEWAY_URL", "https://not-the-configuration"),
                ("GATEWAY_ID", "gw-by-alias"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.limits.body_bytes, 1024);
        assert_eq!(cfg.tls.crl, vec![dir.join("a.pem"), dir.join("b.pem")]);
        assert!(cfg.administration.approver_from_other_partner);
        assert_eq!(cfg.database_url, "postgres://gw:s3cret@db/gw");
        assert_eq!(cfg.gateway_id, "gw-by-alias");
        assert_eq!(
            cfg.value_sources["database_url"],
            Source::EnvFile("GATEWAY_DATABASE_URL_FILE".into(), secret.clone())
        );
        assert_eq!(cfg.value_sources["listen"], Source::File);
        assert_eq!(cfg.value_sources["limits.json_depth"], Source::Default);
        assert_eq!(
            cfg.value_sources["limits.body_bytes"],
            Source::Env("GATEWAY_LIMITS_BODY_BYTES".into())
        );
        // In the file: `key_file` for a key.
        let p2 = write(
            &dir.join("ref"),
            &MIN.replace(
                "database_url = \"sqlite://db.sqlite\"\n",
                &format!("database_url_file = {:?}\n", secret.to_str().unwrap()),
            ),
        );
        let cfg = Config::load(&p2, []).unwrap();
        assert_eq!(cfg.database_url, "postgres://gw:s3cret@db/gw");
        // A wrong type from the environment names the problem, not a line.
        let e = Config::load(&p, env(&[("GATEWAY_LIMITS_BODY_BYTES", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("environment"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_key_list_is_the_configurations_and_the_documented_one() {
        let dir = std::env::temp_dir().join(format!("gw-config-keys-{}", std::process::id()));
        let p = write(&dir, MIN);
        for key in KEYS {
            // A string where a number is wanted is a type error; an unknown key would be named
            // as unknown.
            let r = Config::load(&p, [(env_var(key), "x".to_string())]);
            if let Err(e) = r {
                assert!(!e.to_string().contains("unknown field"), "{key}: {e}");
            }
        }
        let doc = include_str!("../../docs/configuration.md");
        let block = doc
            .split("```toml")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let mut section = String::new();
        let mut documented = Vec::new();
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix('[') {
                section = rest.split(']').next().unwrap().trim_matches('[').to_owned();
                continue;
            }
            if section == "source" || section == "approach" {
                continue;
            }
            if let Some((k, _)) = line.split_once(" = ") {
                let k = k.trim();
                if !k.is_empty() && !k.starts_with('#') {
                    documented.push(if section.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{section}.{k}")
                    });
                }
            }
        }
        documented.sort();
        let mut keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(
            documented, keys,
            "docs/configuration.md documents exactly KEYS"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
