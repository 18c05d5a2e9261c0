//! The example PKI: a covenant CA, the gateway's server and client certificates, a client
//! certificate per partner with its OIN in the subject serialNumber, a CRL, and per partner a
//! token-signing key and an age identity. EXAMPLE ONLY: `gateway serve` refuses it unless told
//! `--allow-example-pki`.

use age::secrecy::ExposeSecret;
use openssl::asn1::{Asn1Integer, Asn1Object, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    X509, X509Builder, X509Crl, X509CrlBuilder, X509Extension, X509Name, X509NameRef,
    X509RevokedBuilder,
};
use policy::CompiledCovenant;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Marker file that says a directory holds the example PKI.
pub const EXAMPLE_MARKER: &str = "EXAMPLE-PKI.txt";
/// Organisation name on every example certificate, so that it is recognisable anywhere.
pub const EXAMPLE_ORG: &str = "iPGA-R EXAMPLE PKI - NOT FOR PRODUCTION";
/// OIN of the example gateway.
pub const GATEWAY_OIN: &str = "00000099000000009999";
/// The partner that also gets a revoked certificate, for tests.
pub const REVOKED_PARTNER: &str = "politie";

/// Problems making the example PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// OpenSSL failed.
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory already holds a PKI.
    #[error("{0} already holds a PKI; choose an empty directory or remove it first")]
    NotEmpty(PathBuf),
    /// Something else is wrong.
    #[error("{0}")]
    Other(String),
}

fn write(path: &Path, data: impl AsRef<[u8]>, private: bool) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })?;
    }
    std::fs::write(path, data).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| PkiError::Io {
                path: path.into(),
                source,
            },
        )?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

fn ec_key() -> Result<PKey<Private>, PkiError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

fn name(common_name: &str, oin: Option<&str>) -> Result<X509Name, PkiError> {
    let mut b = X509Name::builder()?;
    b.append_entry_by_nid(Nid::COUNTRYNAME, "NL")?;
    b.append_entry_by_nid(Nid::ORGANIZATIONNAME, EXAMPLE_ORG)?;
    // X.509 allows at most 64 characters in a common name.
    let cn: String = common_name.chars().take(64).collect();
    b.append_entry_by_nid(Nid::COMMONNAME, &cn)?;
    if let Some(oin) = oin {
        b.append_entry_by_nid(Nid::SERIALNUMBER, oin)?;
    }
    Ok(b.build())
}

fn serial() -> Result<Asn1Integer, PkiError> {
    let mut bn = BigNum::new()?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

fn builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
    days: u32,
) -> Result<X509Builder, PkiError> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = serial()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    Ok(b)
}

fn extension(oid: &str, der: &[u8]) -> Result<X509Extension, PkiError> {
    let oid = Asn1Object::from_str(oid)?;
    let value = openssl::asn1::Asn1OctetString::new_from_bytes(der)?;
    Ok(X509Extension::new_from_der(&oid, false, &value)?)
}

/// A certificate authority that signs certificates and CRLs.
pub struct Ca {
    cert: X509,
    key: PKey<Private>,
}

impl Ca {
    /// A fresh self-signed CA.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = ec_key()?;
        let subject = name(common_name, None)?;
        let mut b = builder(&subject, &subject, &key, 3650)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Ca {
            cert: b.build(),
            key,
        })
    }

    /// Loads a CA from its PEM files.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        Ok(Ca {
            cert: X509::from_pem(&read(&dir.join("ca.pem"))?)?,
            key: PKey::private_key_from_pem(&read(&dir.join("ca.key"))?)?,
        })
    }

    /// The CA certificate.
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// Issues a leaf certificate for a client (partner or gateway) or a server.
    pub fn issue(
        &self,
        common_name: &str,
        oin: Option<&str>,
        server_names: &[&str],
        client: bool,
    ) -> Result<(X509, PKey<Private>), PkiError> {
        let key = ec_key()?;
        let subject = name(common_name, oin)?;
        let mut b = builder(&subject, self.cert.subject_name(), &key, 825)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        let mut eku = ExtendedKeyUsage::new();
        if client {
            eku.client_auth();
        } else {
            eku.server_auth();
        }
        b.append_extension(eku.build()?)?;
        if !server_names.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for n in server_names {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    san.ip(n);
                } else {
                    san.dns(n);
                }
            }
            b.append_extension(san.build(&b.x509v3_context(Some(&self.cert), None))?)?;
        }
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(aki)?;
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok((b.build(), key))
    }

    /// A CRL listing `revoked` serial numbers, numbered `number`, valid for 30 days.
    pub fn crl(&self, revoked: &[Asn1Integer], number: u32) -> Result<X509Crl, PkiError> {
        let mut b = X509CrlBuilder::new()?;
        b.set_issuer_name(self.cert.subject_name())?;
        let (now, next) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
        b.set_last_update(&now)?;
        b.set_next_update(&next)?;
        for serial in revoked {
            let mut r = X509RevokedBuilder::new()?;
            r.set_serial_number(serial)?;
            r.set_revocation_date(&now)?;
            b.add_revoked(r.build())?;
        }
        // RFC 5280 §5.2 requires the CRL number and the authority key identifier; webpki too.
        b.append_extension(extension("2.5.29.20", &der_integer(number))?)?;
        let key_id = self
            .cert
            .subject_key_id()
            .map(|k| k.as_slice().to_vec())
            .ok_or_else(|| {
                PkiError::Other("CA certificate has no subject key identifier".into())
            })?;
        b.append_extension(extension("2.5.29.35", &der_aki(&key_id))?)?;
        b.sort()?;
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok(b.build()?)
    }
}

/// DER INTEGER for a small non-negative number.
fn der_integer(n: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = n
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    let mut out = vec![0x02, bytes.len() as u8];
    out.extend(bytes);
    out
}

/// DER AuthorityKeyIdentifier with only a keyIdentifier: SEQUENCE { [0] IMPLICIT OCTET STRING }.
fn der_aki(key_id: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x80, key_id.len() as u8];
    inner.extend_from_slice(key_id);
    let mut out = vec![0x30, inner.len() as u8];
    out.extend(inner);
    out
}

fn age_identity_file(identity: &age::x25519::Identity, created: &str) -> String {
    format!(
        "# created: {created}\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    )
}

/// What `certs init` made, for the summary it prints.
#[derive(Debug)]
pub struct Generated {
    /// The directory.
    pub dir: PathBuf,
    /// Partner ids that got a client certificate.
    pub partners: Vec<String>,
}

/// Paths inside an example PKI directory.
pub mod layout {
    /// Covenant CA certificate.
    pub const CA: &str = "ca.pem";
    /// CRL.
    pub const CRL: &str = "crl.pem";
    /// The example configuration.
    pub const CONFIG: &str = "gateway.toml";
    /// Gateway server certificate.
    pub const SERVER_CERT: &str = "gateway/server.pem";
    /// Gateway server key.
    pub const SERVER_KEY: &str = "gateway/server.key";
    /// Storage identity (age).
    pub const STORAGE_IDENTITY: &str = "gateway/storage-identity.txt";
    /// Pseudonym master key.
    pub const PSEUDONYM_KEY: &str = "gateway/pseudonym.key";
    /// Ed25519 seed of the checkpoint-signing key.
    pub const LOG_KEY: &str = "gateway/log-ed25519.key";
    /// A partner's client certificate.
    pub fn client_cert(partner: &str) -> String {
        format!("{partner}/client.pem")
    }
    /// A partner's client key.
    pub fn client_key(partner: &str) -> String {
        format!("{partner}/client.key")
    }
    /// A partner's token-signing private key.
    pub fn token_key(partner: &str) -> String {
        format!("{partner}/token-es256.pem")
    }
    /// A partner's age identity.
    pub fn age_identity(partner: &str) -> String {
        format!("{partner}/age-identity.txt")
    }
}

/// Makes a fresh example PKI in `dir` for the partners of `covenant`.
pub fn init(dir: &Path, covenant: &CompiledCovenant, created: &str) -> Result<Generated, PkiError> {
    if dir.join(layout::CA).exists() {
        return Err(PkiError::NotEmpty(dir.into()));
    }
    let ca = Ca::generate("iPGA-R covenant CA (EXAMPLE)")?;
    write(&dir.join(layout::CA), ca.cert.to_pem()?, false)?;
    write(
        &dir.join("ca.key"),
        ca.key.private_key_to_pem_pkcs8()?,
        true,
    )?;

    // The gateway: server certificate, its own client certificate (for upstream sources),
    // storage identity and pseudonym key.
    let (server, server_key) = ca.issue(
        "gateway.ipga-r.example",
        Some(GATEWAY_OIN),
        &["localhost", "127.0.0.1", "::1"],
        false,
    )?;
    write(&dir.join(layout::SERVER_CERT), server.to_pem()?, false)?;
    write(
        &dir.join(layout::SERVER_KEY),
        server_key.private_key_to_pem_pkcs8()?,
        true,
    )?;
    let (gw_client, gw_client_key) = ca.issue(
        "gateway.ipga-r.example (client)",
        Some(GATEWAY_OIN),
        &[],
        true,
    )?;
    write(&dir.join("gateway/client.pem"), gw_client.to_pem()?, false)?;
    write(
        &dir.join("gateway/client.key"),
        gw_client_key.private_key_to_pem_pkcs8()?,
        true,
    )?;
    let storage = age::x25519::Identity::generate();
    write(
        &dir.join(layout::STORAGE_IDENTITY),
        age_identity_file(&storage, created),
        true,
    )?;
    let mut pseudonym = [0u8; 32];
    openssl::rand::rand_bytes(&mut pseudonym)?;
    write(
        &dir.join(layout::PSEUDONYM_KEY),
        hex::encode(pseudonym) + "\n",
        true,
    )?;
    let mut log_seed = [0u8; 32];
    openssl::rand::rand_bytes(&mut log_seed)?;
    write(
        &dir.join(layout::LOG_KEY),
        hex::encode(log_seed) + "\n",
        true,
    )?;

    let mut partners = Vec::new();
    let mut revoked = Vec::new();
    for p in &covenant.covenant().partners {
        let id = &p.id;
        let oin = p.oin.as_deref();
        let (cert, key) = ca.issue(&p.name, oin, &[], true)?;
        write(&dir.join(layout::client_cert(id)), cert.to_pem()?, false)?;
        write(
            &dir.join(layout::client_key(id)),
            key.private_key_to_pem_pkcs8()?,
            true,
        )?;
        let token = ec_key()?;
        write(
            &dir.join(layout::token_key(id)),
            token.private_key_to_pem_pkcs8()?,
            true,
        )?;
        write(
            &dir.join(format!("{id}/token-es256.pub.pem")),
            token.public_key_to_pem()?,
            false,
        )?;
        let identity = age::x25519::Identity::generate();
        write(
            &dir.join(layout::age_identity(id)),
            age_identity_file(&identity, created),
            true,
        )?;
        write(
            &dir.join(format!("{id}/age-recipient.txt")),
            format!("{}\n", identity.to_public()),
            false,
        )?;
        if id == REVOKED_PARTNER {
            let (rc, rk) = ca.issue(&format!("{} (revoked)", p.name), oin, &[], true)?;
            write(
                &dir.join(format!("{id}/revoked-client.pem")),
                rc.to_pem()?,
                false,
            )?;
            write(
                &dir.join(format!("{id}/revoked-client.key")),
                rk.private_key_to_pem_pkcs8()?,
                true,
            )?;
            revoked.push(rc.serial_number().to_owned()?);
        }
        partners.push(id.clone());
    }
    write(
        &dir.join(layout::CRL),
        ca.crl(&revoked, 1)?.to_pem()?,
        false,
    )?;
    write(&dir.join("crl-number.txt"), "1\n", false)?;
    write(
        &dir.join(EXAMPLE_MARKER),
        "This directory holds an EXAMPLE PKI made by `gateway certs init`.\nIts private keys are not secret. Never use it in production.\n",
        false,
    )?;
    Ok(Generated {
        dir: dir.into(),
        partners,
    })
}

/// Adds `partner`'s client certificate to the CRL and re-signs it.
pub fn revoke(dir: &Path, partner: &str) -> Result<u32, PkiError> {
    let ca = Ca::load(dir)?;
    let cert = X509::from_pem(&read(&dir.join(layout::client_cert(partner)))?)?;
    let old = X509Crl::from_pem(&read(&dir.join(layout::CRL))?)?;
    let mut serials: Vec<Asn1Integer> = Vec::new();
    if let Some(stack) = old.get_revoked() {
        for r in stack {
            serials.push(r.serial_number().to_owned()?);
        }
    }
    serials.push(cert.serial_number().to_owned()?);
    let number: u32 = String::from_utf8_lossy(&read(&dir.join("crl-number.txt"))?)
        .trim()
        .parse()
        .unwrap_or(1)
        + 1;
    write(
        &dir.join(layout::CRL),
        ca.crl(&serials, number)?.to_pem()?,
        false,
    )?;
    write(&dir.join("crl-number.txt"), format!("{number}\n"), false)?;
    Ok(number)
}

/// The example configuration file written next to the PKI.
pub fn example_config(dir: &Path, covenant: &Path) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Example configuration for the EXAMPLE PKI in this directory."
    );
    let _ = writeln!(
        o,
        "# Start: gateway serve --config {} --allow-example-pki",
        dir.join(layout::CONFIG).display()
    );
    let _ = writeln!(
        o,
        "# Relative paths are relative to this file's directory.\n"
    );
    let _ = writeln!(o, "gateway_id = \"gateway.ipga-r.example\"");
    let _ = writeln!(o, "listen = \"127.0.0.1:8443\"");
    let _ = writeln!(o, "health_listen = \"127.0.0.1:8080\"");
    let _ = writeln!(o, "database_url = \"sqlite://gateway.db\"");
    let _ = writeln!(o, "covenant = {:?}", covenant.display().to_string());
    let _ = writeln!(o, "key_dir = \".\"\n");
    let _ = writeln!(
        o,
        "[tls]\nca = \"{}\"\ncrl = [\"{}\"]\ncert = \"{}\"\nkey = \"{}\"\nclient_cert = \"gateway/client.pem\"\nclient_key = \"gateway/client.key\"\n",
        layout::CA,
        layout::CRL,
        layout::SERVER_CERT,
        layout::SERVER_KEY
    );
    let _ = writeln!(
        o,
        "[secrets]\nstorage_identity_file = \"{}\"\npseudonym_key_file = \"{}\"\nlog_key_file = \"{}\"",
        layout::STORAGE_IDENTITY,
        layout::PSEUDONYM_KEY,
        layout::LOG_KEY
    );
    let _ = writeln!(
        o,
        "\n# Who may draft, approve (never their own draft) and activate covenant versions.\n[administration]\nadministrators = [\"oov/beheerder-1\", \"oov/beheerder-2\"]"
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_encodings() {
        assert_eq!(der_integer(1), vec![0x02, 0x01, 0x01]);
        assert_eq!(der_integer(128), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_integer(0), vec![0x02, 0x01, 0x00]);
        assert_eq!(der_aki(&[1, 2]), vec![0x30, 0x04, 0x80, 0x02, 1, 2]);
    }

    #[test]
    fn crl_parses_in_webpki_and_lists_the_serial() {
        let ca = Ca::generate("test CA").unwrap();
        let (leaf, _) = ca
            .issue("leaf", Some("00000099000000000002"), &[], true)
            .unwrap();
        let crl = ca
            .crl(&[leaf.serial_number().to_owned().unwrap()], 7)
            .unwrap();
        let der = crl.to_der().unwrap();
        let parsed = rustls::pki_types::CertificateRevocationListDer::from(der);
        // rustls builds a verifier from it only if webpki accepts the CRL.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                ca.cert().to_der().unwrap(),
            ))
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .with_crls([parsed])
        .build()
        .unwrap();
    }
}
