//! The partner registry: the covenant's partners with their key material loaded, and how a
//! client certificate maps to a partner (pinned fingerprint, or OIN in the subject serialNumber).

use crate::crypto::KeyFileError;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use policy::covenant::{KeyRef, TokenAlg};
use policy::{CompiledCovenant, PartnerRef, PseudonymKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

/// A token-signing key of a partner, ready to verify.
pub struct TokenKey {
    /// JWT `kid`.
    pub kid: String,
    /// Algorithm.
    pub alg: Algorithm,
    /// Public key.
    pub key: DecodingKey,
}

/// Key material of one partner.
pub struct PartnerKeys {
    /// Partner id.
    pub id: String,
    /// Where its payloads are encrypted to.
    pub recipient: age::x25519::Recipient,
    /// Keys its tokens may be signed with.
    pub token_keys: Vec<TokenKey>,
    /// Key for pseudonyms sent to it.
    pub pseudonym_key: PseudonymKey,
}

/// The covenant's partners with loaded keys.
pub struct PartnerRegistry {
    by_oin: HashMap<String, PartnerRef>,
    by_fingerprint: HashMap<String, PartnerRef>,
    partners: Vec<PartnerKeys>,
}

/// The certificate on a connection, as handlers see it.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// Partner the certificate belongs to.
    pub partner: PartnerRef,
    /// RFC 8705 thumbprint: base64url(SHA-256(DER)), no padding.
    pub thumbprint: String,
}

/// What a connection's client certificate says, read once at the handshake; each request maps it
/// to a partner under the policy version it runs under.
#[derive(Debug, Clone)]
pub struct PeerCert {
    /// SHA-256 fingerprint, lowercase hex.
    pub fingerprint: String,
    /// RFC 8705 thumbprint.
    pub thumbprint: String,
    /// Subject serialNumber (OIN), if any.
    pub oin: Option<String>,
    /// Issuer (DER, hex) and serial number (hex), `issuer:serial`: what a CRL revokes. `None`
    /// when the certificate cannot be read, which no partner's certificate is: refused.
    pub serial: Option<String>,
}

impl PeerCert {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> PeerCert {
        let serial = x509_parser::parse_x509_certificate(der)
            .map(|(_, c)| {
                format!(
                    "{}:{}",
                    hex::encode(c.issuer().as_raw()),
                    hex::encode(c.raw_serial())
                )
            })
            .ok();
        PeerCert {
            fingerprint: fingerprint(der),
            thumbprint: thumbprint(der),
            oin: subject_serial_number(der),
            serial,
        }
    }
}

/// SHA-256 fingerprint of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// RFC 8705 `x5t#S256` of a DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// The subject serialNumber (OID 2.5.4.5) of a DER certificate, where OINs live.
pub fn subject_serial_number(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let attr = cert
        .subject()
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .next()?;
    attr.as_str().ok().map(str::to_owned)
}

fn resolve(key_dir: &Path, r: &KeyRef) -> Result<String, KeyFileError> {
    match r {
        KeyRef::Inline(s) => Ok(s.clone()),
        KeyRef::File(p) => {
            let path = key_dir.join(p);
            std::fs::read_to_string(&path).map_err(|e| KeyFileError::new(&path, e.to_string()))
        }
    }
}

impl PartnerRegistry {
    /// Loads every partner's keys; returns every problem found, not just the first.
    pub fn load(
        covenant: &CompiledCovenant,
        key_dir: &Path,
        pseudonym_master: &[u8],
    ) -> Result<Self, Vec<KeyFileError>> {
        let mut problems = Vec::new();
        let mut partners = Vec::new();
        let mut by_oin = HashMap::new();
        let mut by_fingerprint = HashMap::new();
        for (i, p) in covenant.covenant().partners.iter().enumerate() {
            let pref = PartnerRef(i as u16);
            if let Some(oin) = &p.oin {
                by_oin.insert(oin.clone(), pref);
            }
            for fp in &p.cert_sha256 {
                by_fingerprint.insert(fp.clone(), pref);
            }
            let recipient = match resolve(key_dir, &p.recipient) {
                Ok(text) => match age::x25519::Recipient::from_str(text.trim()) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        problems.push(KeyFileError::new(
                            Path::new(&format!("age recipient of partner {}", p.id)),
                            e.to_string(),
                        ));
                        None
                    }
                },
                Err(e) => {
                    problems.push(e);
                    None
                }
            };
            let mut token_keys = Vec::new();
            for k in &p.token_keys {
                let pem = match resolve(key_dir, &k.key) {
                    Ok(pem) => pem,
                    Err(e) => {
                        problems.push(e);
                        continue;
                    }
                };
                let (alg, key) = match k.alg {
                    TokenAlg::Es256 => (Algorithm::ES256, DecodingKey::from_ec_pem(pem.as_bytes())),
                    TokenAlg::EdDsa => (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem.as_bytes())),
                    TokenAlg::Rs256 => {
                        (Algorithm::RS256, DecodingKey::from_rsa_pem(pem.as_bytes()))
                    }
                };
                match key {
                    Ok(key) => token_keys.push(TokenKey {
                        kid: k.kid.clone(),
                        alg,
                        key,
                    }),
                    Err(e) => problems.push(KeyFileError::new(
                        Path::new(&format!("token key {} of partner {}", k.kid, p.id)),
                        e.to_string(),
                    )),
                }
            }
            if let Some(recipient) = recipient {
                partners.push(PartnerKeys {
                    id: p.id.clone(),
                    recipient,
                    token_keys,
                    pseudonym_key: PseudonymKey::derive(pseudonym_master, &p.id),
                });
            }
        }
        if problems.is_empty() {
            Ok(PartnerRegistry {
                by_oin,
                by_fingerprint,
                partners,
            })
        } else {
            Err(problems)
        }
    }

    /// The partner a client certificate belongs to, if any: a pinned fingerprint first, then the
    /// OIN in the subject serialNumber.
    pub fn identify(&self, cert_der: &[u8]) -> Option<ClientIdentity> {
        let partner = self
            .by_fingerprint
            .get(&fingerprint(cert_der))
            .copied()
            .or_else(|| {
                subject_serial_number(cert_der).and_then(|oin| self.by_oin.get(&oin).copied())
            })?;
        Some(ClientIdentity {
            partner,
            thumbprint: thumbprint(cert_der),
        })
    }

    /// The partner of a connection's certificate under this registry (which may be newer than
    /// the one that admitted the connection).
    pub fn identify_peer(&self, peer: &PeerCert) -> Option<ClientIdentity> {
        let partner = self
            .by_fingerprint
            .get(&peer.fingerprint)
            .copied()
            .or_else(|| {
                peer.oin
                    .as_ref()
                    .and_then(|oin| self.by_oin.get(oin).copied())
            })?;
        Some(ClientIdentity {
            partner,
            thumbprint: peer.thumbprint.clone(),
        })
    }

    /// Keys of a partner.
    pub fn partner(&self, p: PartnerRef) -> Option<&PartnerKeys> {
        self.partners.get(p.index())
    }
}
