//! The covenant as a versioned, swappable object: what is active (covenant, partner registry,
//! TLS configuration with its revocation lists) and how a version is built from its stored text.
//! The administrators' path from draft to activation is `crate::service::policy_admin`.
//!
//! Every request loads the active policy once and keeps it to the end, so a request in flight
//! finishes under the version it started with while the next one uses the new version.

pub mod approval;

use crate::crypto::Secrets;
use crate::registry::{ClientIdentity, PartnerRegistry, PeerCert};
use policy::{CompiledCovenant, Diagnostics};
use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Key files a covenant version was resolved with: path (relative to the key directory) to
/// content. Stored with the version, so that it can be rebuilt exactly, whatever the key
/// directory holds later.
pub type KeyMaterial = BTreeMap<String, String>;

/// Everything one policy version decides with.
pub struct ActivePolicy {
    /// The compiled covenant.
    pub covenant: Arc<CompiledCovenant>,
    /// Partners with their keys.
    pub registry: Arc<PartnerRegistry>,
    /// TLS configuration for new connections (client verifier bound to this registry and CRLs).
    pub tls: Arc<rustls::ServerConfig>,
    /// Certificates on the CRLs (`issuer:serial`, hex): connections opened before a revocation
    /// are refused from their next request.
    pub revoked: HashSet<String>,
    /// The draft this version was activated from.
    pub draft: String,
    /// Tokens verified under this version (a new version starts empty: keys may have changed).
    pub tokens: crate::auth::TokenCache,
    crl_stamp: Vec<Option<(std::time::SystemTime, u64)>>,
    /// When the CRLs of this version were issued and expire.
    pub crl_validity: CrlValidity,
    /// The covenant's witnesses of the log and their quorum.
    pub witnesses: Arc<crate::witnessing::WitnessSet>,
}

impl std::fmt::Debug for ActivePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivePolicy")
            .field("version", &self.covenant.version().as_str())
            .field("draft", &self.draft)
            .finish()
    }
}

/// Why a connection's certificate is no longer accepted under the active version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// On a CRL loaded after the connection was opened.
    Revoked,
    /// No partner of the active covenant has it any more.
    Unknown,
}

impl ActivePolicy {
    /// The partner of a connection's certificate under this version.
    pub fn identify(&self, peer: &PeerCert) -> Result<ClientIdentity, PeerRefusal> {
        // A certificate whose issuer and serial cannot be read cannot be checked against the
        // CRLs: fail closed.
        let Some(serial) = &peer.serial else {
            return Err(PeerRefusal::Unknown);
        };
        if self.revoked.contains(serial) {
            return Err(PeerRefusal::Revoked);
        }
        self.registry
            .identify_peer(peer)
            .ok_or(PeerRefusal::Unknown)
    }

    /// The version hash.
    pub fn version(&self) -> &str {
        self.covenant.version().as_str()
    }

    /// Whether the CRL files changed since this version was built.
    pub fn crls_changed(&self, files: &TlsFiles) -> bool {
        crl_stamp(&files.crl) != self.crl_stamp
    }
}

/// The TLS files of the configuration.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate(s).
    pub ca: PathBuf,
    /// CRLs.
    pub crl: Vec<PathBuf>,
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
}

fn crl_stamp(files: &[PathBuf]) -> Vec<Option<(std::time::SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// When the loaded CRLs were issued and must be replaced (unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrlValidity {
    /// The latest `thisUpdate` of them.
    pub this_update: Option<i64>,
    /// The earliest `nextUpdate` of them: after it, revocations may be missing.
    pub next_update: Option<i64>,
}

/// Every certificate on the CRL files, as `issuer:serial` (hex), and their validity.
fn revoked_serials(files: &[PathBuf]) -> Result<(HashSet<String>, CrlValidity), String> {
    use rustls::pki_types::CertificateRevocationListDer;
    use rustls::pki_types::pem::PemObject;
    let mut out = HashSet::new();
    let mut validity = CrlValidity::default();
    for path in files {
        let iter = CertificateRevocationListDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for crl in iter {
            let crl = crl.map_err(|e| format!("{}: {e}", path.display()))?;
            let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let this = parsed.last_update().timestamp();
            validity.this_update = Some(validity.this_update.map_or(this, |t| t.max(this)));
            if let Some(next) = parsed.next_update().map(|n| n.timestamp()) {
                validity.next_update = Some(validity.next_update.map_or(next, |t| t.min(next)));
            }
            let issuer = hex::encode(parsed.issuer().as_raw());
            for r in parsed.iter_revoked_certificates() {
                out.insert(format!("{issuer}:{}", hex::encode(r.raw_serial())));
            }
        }
    }
    Ok((out, validity))
}

/// A `file:` key path must stay inside the key directory.
fn safe_key_path(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("key paths are relative to the key directory and may not leave it".into());
    }
    Ok(p.to_path_buf())
}

/// Builds policy versions: compiles covenant texts (resolving keys) and loads registry and TLS.
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    /// Where `file:` keys are read from when a version is drafted.
    pub key_dir: PathBuf,
    /// TLS files.
    pub tls: TlsFiles,
}

impl PolicyBuilder {
    /// Compiles a covenant text, reading its `file:` keys from the key directory; returns the
    /// compiled covenant and the key material it was resolved with.
    pub fn compile_from_key_dir(
        &self,
        source: &str,
    ) -> Result<(CompiledCovenant, KeyMaterial), Diagnostics> {
        let mut keys = KeyMaterial::new();
        let cc = policy::compile_toml_resolving(source, &mut |path| {
            let rel = safe_key_path(path)?;
            let text =
                std::fs::read_to_string(self.key_dir.join(rel)).map_err(|e| e.to_string())?;
            keys.insert(path.to_owned(), text.clone());
            Ok(text)
        })?;
        Ok((cc, keys))
    }

    /// Compiles a stored version with the key material stored with it, and checks that it
    /// still hashes to its recorded version.
    pub fn compile_stored(
        row: &crate::store::PolicyDraftRow,
    ) -> Result<CompiledCovenant, StoredVersionError> {
        let keys: KeyMaterial =
            serde_json::from_str(&row.key_material).map_err(|_| StoredVersionError::KeyMaterial)?;
        let cc = policy::compile_toml_resolving(&row.source, &mut |path| {
            keys.get(path)
                .cloned()
                .ok_or_else(|| "not in the key material stored with this version".to_owned())
        })
        .map_err(|_| StoredVersionError::NoLongerCompiles)?;
        if cc.version().as_str() != row.version {
            return Err(StoredVersionError::VersionMismatch);
        }
        Ok(cc)
    }

    /// Loads the registry and TLS configuration for a compiled covenant. Reads the CRL files
    /// as they are now.
    pub fn build(
        &self,
        covenant: Arc<CompiledCovenant>,
        draft: &str,
        secrets: &Secrets,
    ) -> Result<ActivePolicy, Vec<String>> {
        let stamp = crl_stamp(&self.tls.crl);
        let master = secrets.pseudonym_master();
        let registry = PartnerRegistry::load(
            &covenant,
            &self.key_dir,
            secrecy::ExposeSecret::expose_secret(&master),
        )
        .map(Arc::new)
        .map_err(|es| es.into_iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let tls = crate::tls::server_config(
            &self.tls.ca,
            &self.tls.crl,
            &self.tls.cert,
            &self.tls.key,
            registry.clone(),
        )
        .map_err(|e| vec![e.to_string()])?;
        let (revoked, crl_validity) = revoked_serials(&self.tls.crl).map_err(|e| vec![e])?;
        let witnesses = crate::witnessing::WitnessSet::from_covenant(covenant.covenant())
            .map(Arc::new)
            .map_err(|e| vec![e])?;
        Ok(ActivePolicy {
            witnesses,
            covenant,
            registry,
            tls: Arc::new(tls),
            revoked,
            draft: draft.to_owned(),
            tokens: crate::auth::TokenCache::new(TOKEN_CACHE_ENTRIES),
            crl_stamp: stamp,
            crl_validity,
        })
    }
}

/// Verified tokens kept per version.
const TOKEN_CACHE_ENTRIES: usize = 100_000;

/// A stored version that cannot be rebuilt as it was recorded.
#[derive(Debug, thiserror::Error)]
pub enum StoredVersionError {
    /// The key material column is not the JSON the gateway wrote.
    #[error("its stored key material is unreadable")]
    KeyMaterial,
    /// The text no longer compiles.
    #[error("the stored text no longer compiles")]
    NoLongerCompiles,
    /// It compiles to another hash: the database was changed outside the gateway.
    #[error("it does not compile to its recorded version (changed outside the gateway)")]
    VersionMismatch,
}

/// The active policy, swapped atomically on activation.
pub type PolicyCell = arc_swap::ArcSwap<ActivePolicy>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_stay_in_the_key_directory() {
        assert!(safe_key_path("politie/token.pem").is_ok());
        assert!(safe_key_path("./a.pem").is_ok());
        assert!(safe_key_path("../secrets/storage.key").is_err());
        assert!(safe_key_path("a/../../b").is_err());
        assert!(safe_key_path("/etc/passwd").is_err());
    }
}
