//! Loads everything `serve` needs from the configuration, collecting every problem, so that
//! `gateway config check` and `gateway serve` say the same things.

use crate::auth::TokenPolicy;
use crate::config::Config;
use crate::crypto::Secrets;
use crate::lifecycle::{ActivePolicy, KeyMaterial, PolicyBuilder, TlsFiles};
use crate::store::Backend;
use policy::CompiledCovenant;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Everything loaded and checked.
pub struct Loaded {
    /// The covenant file's version, built (registry, TLS): active unless the database already
    /// has an active version.
    pub file_policy: ActivePolicy,
    /// The covenant file's text.
    pub covenant_source: String,
    /// The key files it was resolved with.
    pub key_material: KeyMaterial,
    /// Builds policy versions.
    pub builder: PolicyBuilder,
    /// The gateway's secrets.
    pub secrets: Secrets,
    /// Token requirements.
    pub tokens: TokenPolicy,
    /// Partner API address.
    pub listen: SocketAddr,
    /// Health address.
    pub health_listen: SocketAddr,
    /// Storage backend.
    pub backend: Backend,
    /// Whether the CA is the example PKI.
    pub example_pki: bool,
    /// Upstream sources.
    pub upstream: crate::sources::Upstream,
    /// The checkpoint-signing key and the retired ones.
    pub log_keys: crate::log::LogKeys,
    /// The log's origin (and key name): `<gateway_id>/disclosures`.
    pub log_origin: String,
}

/// Reads the checkpoint-signing key (a hex Ed25519 seed) for `origin`.
pub fn load_log_key(path: &Path, origin: &str) -> Result<crate::log::checkpoint::LogKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("secrets.log_key_file = {}: {e}", path.display()))?;
    let seed = hex::decode(text.trim())
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(|| format!("secrets.log_key_file = {}: expected 32 bytes as hex; make one with `openssl rand -hex 32`", path.display()))?;
    crate::log::checkpoint::LogKey::from_seed(origin, &seed).map_err(|e| e.to_string())
}

/// The log's keys: the current signing key and the retired verifier keys (if that file exists).
pub fn load_log_keys(
    secrets: &crate::config::SecretsConfig,
    origin: &str,
) -> Result<crate::log::LogKeys, String> {
    let current = load_log_key(&secrets.log_key_file, origin)?;
    let path = secrets.retired_log_vkeys();
    let retired = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                crate::log::checkpoint::NoteVerifier::from_vkey(l)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    Ok(crate::log::LogKeys { current, retired })
}

/// The upstream sources of the configuration, with the HTTPS client that calls them.
fn upstream(
    cfg: &Config,
    covenant: &CompiledCovenant,
    problems: &mut Vec<String>,
) -> Option<crate::sources::Upstream> {
    for c in &covenant.covenant().checks.approaches {
        if !cfg.approaches.iter().any(|a| a.id == c.id) {
            tracing::warn!(approach = %c.id, "the covenant names this approach but the configuration has no [[approach]] for it: checks report it unavailable");
        }
    }
    if cfg.sources.is_empty() && cfg.approaches.is_empty() {
        return Some(crate::sources::Upstream::none());
    }
    let mut approaches = std::collections::HashMap::new();
    for a in &cfg.approaches {
        if !covenant
            .covenant()
            .checks
            .approaches
            .iter()
            .any(|c| c.id == a.id)
        {
            problems.push(format!(
                "[[approach]] id = \"{}\": the covenant names no such approach",
                a.id
            ));
            continue;
        }
        if !a.url.starts_with("https://") {
            problems.push(format!("[[approach]] {}: url must be https:// (the gateway calls it with its client certificate)", a.id));
            continue;
        }
        let mut public = [0u8; crate::oprf::ELEMENT_LEN];
        if hex::decode_to_slice(a.oprf_public.trim(), &mut public).is_err() {
            problems.push(format!("[[approach]] {}: oprf_public is the register's public key, 64 hex digits (`gateway approach key` prints it)", a.id));
            continue;
        }
        let set_verifier = match crate::log::checkpoint::NoteVerifier::from_vkey(&a.set_vkey) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("[[approach]] {}: set_vkey {e}", a.id));
                continue;
            }
        };
        let timeout =
            std::time::Duration::from_millis(a.timeout_ms.unwrap_or(cfg.limits.source_timeout_ms));
        let endpoint =
            crate::sources::ApproachEndpoint::new(a.url.clone(), public, set_verifier, timeout);
        if approaches.insert(a.id.clone(), endpoint).is_some() {
            problems.push(format!("[[approach]] {}: declared twice", a.id));
        }
    }
    let mut sources = std::collections::HashMap::new();
    for src in &cfg.sources {
        let Some(p) = covenant.covenant().product(&src.product) else {
            problems.push(format!(
                "[[source]] product = \"{}\": the covenant's catalogue has no such product",
                src.product
            ));
            continue;
        };
        if !src.url.starts_with("https://") {
            problems.push(format!("[[source]] {}: url must be https:// (the gateway calls it with its client certificate)", src.product));
            continue;
        }
        let timeout = std::time::Duration::from_millis(
            src.timeout_ms.unwrap_or(cfg.limits.source_timeout_ms),
        );
        if sources.insert(p, (src.url.clone(), timeout)).is_some() {
            problems.push(format!("[[source]] {}: declared twice", src.product));
        }
    }
    let (Some(cert), Some(key)) = (&cfg.tls.client_cert, &cfg.tls.client_key) else {
        problems.push("[[source]] and [[approach]] need the gateway's own client certificate: set tls.client_cert and tls.client_key".into());
        return None;
    };
    let mut pem = std::fs::read(cert)
        .map_err(|e| problems.push(format!("tls.client_cert = {}: {e}", cert.display())))
        .ok()?;
    pem.extend(
        std::fs::read(key)
            .map_err(|e| problems.push(format!("tls.client_key = {}: {e}", key.display())))
            .ok()?,
    );
    let identity = reqwest::Identity::from_pem(&pem)
        .map_err(|e| problems.push(format!("tls.client_cert/client_key: {e}")))
        .ok()?;
    let ca = std::fs::read(&cfg.tls.ca).ok()?;
    let roots = reqwest::Certificate::from_pem_bundle(&ca)
        .map_err(|e| problems.push(format!("tls.ca: {e}")))
        .ok()?;
    let client = reqwest::Client::builder()
        .tls_certs_only(roots)
        .identity(identity)
        .https_only(true)
        .build()
        .map_err(|e| problems.push(format!("upstream HTTPS client: {e}")))
        .ok()?;
    Some(crate::sources::Upstream::new(client, sources).with_approaches(approaches))
}

/// Whether the CA certificate is the example PKI's.
pub fn is_example_pki(ca: &Path) -> bool {
    let marker = ca
        .parent()
        .is_some_and(|d| d.join(crate::pki::EXAMPLE_MARKER).exists());
    let org = crate::tls::read_certs(ca).ok().and_then(|certs| {
        let der = certs.first()?.as_ref().to_vec();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
        let org = cert
            .subject()
            .iter_organization()
            .next()?
            .as_str()
            .ok()?
            .to_owned();
        Some(org == crate::pki::EXAMPLE_ORG)
    });
    marker || org.unwrap_or(false)
}

/// Loads and checks everything; returns every problem found, each saying what to fix.
pub fn load(cfg: &Config, allow_example_pki: bool) -> Result<Loaded, Vec<String>> {
    let mut problems = Vec::new();
    let listen = cfg
        .listen
        .parse::<SocketAddr>()
        .map_err(|e| problems.push(format!("listen = \"{}\": {e}; write IP:PORT", cfg.listen)))
        .ok();
    let health_listen = cfg
        .health_listen
        .parse::<SocketAddr>()
        .map_err(|e| {
            problems.push(format!(
                "health_listen = \"{}\": {e}; write IP:PORT",
                cfg.health_listen
            ))
        })
        .ok();
    if let Some(h) = health_listen.filter(|h| !h.ip().is_loopback()) {
        tracing::warn!(address = %h, "the health listener is not on loopback");
    }
    let backend = Backend::from_url(&cfg.database_url)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    if !(1..=900).contains(&cfg.tokens.max_lifetime_secs) {
        problems.push(format!(
            "tokens.max_lifetime_secs = {}: must be 1 to 900 (tokens live at most fifteen minutes)",
            cfg.tokens.max_lifetime_secs
        ));
    }
    if !(0..=300).contains(&cfg.tokens.leeway_secs) {
        problems.push(format!(
            "tokens.leeway_secs = {}: must be 0 to 300",
            cfg.tokens.leeway_secs
        ));
    }
    let builder = PolicyBuilder {
        key_dir: cfg.key_dir.clone(),
        tls: TlsFiles {
            ca: cfg.tls.ca.clone(),
            crl: cfg.tls.crl.clone(),
            cert: cfg.tls.cert.clone(),
            key: cfg.tls.key.clone(),
        },
    };
    let compiled = match std::fs::read_to_string(&cfg.covenant) {
        Ok(src) => match builder.compile_from_key_dir(&src) {
            Ok((cc, keys)) => Some((Arc::new(cc), keys, src)),
            Err(d) => {
                problems.push(format!(
                    "covenant {} is invalid (file: keys are read from key_dir {}):\n{}",
                    cfg.covenant.display(),
                    cfg.key_dir.display(),
                    d.render(&cfg.covenant.display().to_string(), &src)
                ));
                None
            }
        },
        Err(e) => {
            problems.push(format!("covenant = {}: {e}", cfg.covenant.display()));
            None
        }
    };
    let covenant = compiled.as_ref().map(|(cc, _, _)| cc.clone());
    let secrets = Secrets::load(
        &cfg.secrets.storage_identity_file,
        &cfg.secrets.pseudonym_key_file,
    )
    .map_err(|es| problems.extend(es.into_iter().map(|e| e.to_string())))
    .ok();
    let file_policy = match (&covenant, &secrets) {
        (Some(cc), Some(s)) => builder
            .build(cc.clone(), "covenant-file", s)
            .map_err(|es| {
                problems.extend(
                    es.into_iter()
                        .map(|e| format!("key_dir {} or TLS files: {e}", cfg.key_dir.display())),
                )
            })
            .ok(),
        _ => None,
    };
    let upstream = covenant
        .as_ref()
        .and_then(|cc| upstream(cfg, cc, &mut problems));
    let log_origin = format!("{}/disclosures", cfg.gateway_id);
    let log_key = load_log_keys(&cfg.secrets, &log_origin)
        .map_err(|e| problems.push(e))
        .ok();
    let example_pki = is_example_pki(&cfg.tls.ca);
    if example_pki && !allow_example_pki {
        problems.push(format!(
            "tls.ca = {} is the EXAMPLE PKI (made by `gateway certs init`); its private keys are not secret. Use your covenant's real CA, or start with --allow-example-pki for a demonstration",
            cfg.tls.ca.display()
        ));
    }
    match (
        compiled,
        file_policy,
        secrets,
        listen,
        health_listen,
        backend,
        upstream,
        log_key,
    ) {
        (
            Some((_, key_material, covenant_source)),
            Some(file_policy),
            Some(secrets),
            Some(listen),
            Some(health_listen),
            Some(backend),
            Some(upstream),
            Some(log_key),
        ) if problems.is_empty() => Ok(Loaded {
            upstream,
            log_keys: log_key,
            log_origin,
            file_policy,
            covenant_source,
            key_material,
            builder,
            secrets,
            tokens: TokenPolicy {
                audience: cfg.gateway_id.clone(),
                max_lifetime: cfg.tokens.max_lifetime_secs,
                leeway: cfg.tokens.leeway_secs,
                max_bytes: cfg.tokens.max_bytes,
            },
            listen,
            health_listen,
            backend,
            example_pki,
        }),
        _ => Err(problems),
    }
}
