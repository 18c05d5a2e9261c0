//! The example PKI: a covenant CA, the gateway's server and client certificates, a client
//! certificate per partner with its OIN in the subject serialNumber, a CRL, and per partner a
//! token-signing key and an age identity. EXAMPLE ONLY: `gateway serve` refuses it unless told
//! `--allow-example-pki`.

use age::secrecy::ExposeSecret;
use policy::{CompiledCovenant, PartnerKind};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Marker file that says a directory holds the example PKI.
pub const EXAMPLE_MARKER: &str = "EXAMPLE-PKI.txt";
/// Organisation name on every example certificate, so that it is recognisable anywhere.
pub const EXAMPLE_ORG: &str = "iPGA-R EXAMPLE PKI - NOT FOR PRODUCTION";
/// OIN of the example gateway.
pub const GATEWAY_OIN: &str = "00000099000000009999";
/// The partner that also gets a revoked certificate, for tests.
pub const REVOKED_PARTNER: &str = "politie";
/// Where the example certificates say their CRL is: the gateway's plain listener serves the
/// configured CRL there (`GET /crl`).
pub const CRL_URL: &str = "http://127.0.0.1:8080/crl";
/// Validity of leaf certificates: a year, under the 398 days browsers accept and the 366 that
/// Mozilla's "intermediate" TLS configuration (and so sslyze) asks for.
pub const LEAF_DAYS: i64 = 365;
/// Validity of the example CA.
pub const CA_DAYS: i64 = 3650;
/// A CRL is valid this long; `gateway certs revoke` makes a new one.
pub const CRL_DAYS: i64 = 30;

/// The X.500 attribute type `serialNumber` (2.5.4.5), where OINs live.
const OID_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];

/// Problems making the example PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Making or reading a certificate, key or CRL failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
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

fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

fn at(t: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| PkiError::Other(e.to_string()))
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| PkiError::Other("no randomness".into()))?;
    // Positive and not too long (RFC 5280: at most 20 octets); the first octet never zero, so
    // that DER keeps all 16 (a leading zero is dropped, and the serial read back from the
    // certificate or a CRL would then differ from the one recorded, one time in 128).
    if let Some(first) = b.first_mut() {
        *first = (*first & 0x7f) | 0x01;
    }
    Ok(SerialNumber::from(b.to_vec()))
}

fn params(
    common_name: &str,
    oin: Option<&str>,
    now: i64,
    days: i64,
) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "NL");
    p.distinguished_name
        .push(DnType::OrganizationName, EXAMPLE_ORG);
    // X.509 allows at most 64 characters in a common name.
    let cn: String = common_name.chars().take(64).collect();
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(oin) = oin {
        p.distinguished_name
            .push(DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()), oin);
    }
    p.not_before = at(now - 60)?;
    p.not_after = at(now + days * 86_400)?;
    p.serial_number = Some(random_serial()?);
    p.key_identifier_method = KeyIdMethod::Sha256;
    Ok(p)
}

/// A certificate and its key, as PEM and DER.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Its private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// Its serial number (big-endian bytes).
    pub serial: Vec<u8>,
}

/// A certificate authority that signs certificates and CRLs.
pub struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    key_pem: String,
}

impl Ca {
    /// A fresh self-signed CA (P-256).
    pub fn generate(common_name: &str, now: i64) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut p = params(common_name, None, now, CA_DAYS)?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(p, key),
            key_pem,
        })
    }

    /// Loads a CA from its PEM files.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let cert_pem = read_text(&dir.join(layout::CA))?;
        let key_pem = read_text(&dir.join("ca.key"))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        let cert_der = crate::tls::read_certs(&dir.join(layout::CA))
            .ok()
            .and_then(|c| c.first().map(|c| c.as_ref().to_vec()))
            .ok_or_else(|| PkiError::Other("ca.pem holds no certificate".into()))?;
        Ok(Ca {
            cert_pem,
            cert_der,
            issuer,
            key_pem,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues a leaf certificate (P-256, valid [`LEAF_DAYS`], with a CRL distribution point)
    /// for a client (partner or gateway) or a server.
    pub fn issue(
        &self,
        common_name: &str,
        oin: Option<&str>,
        server_names: &[&str],
        client: bool,
        now: i64,
    ) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut p = params(common_name, oin, now, LEAF_DAYS)?;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        for n in server_names {
            p.subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName((*n).try_into()?),
                });
        }
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![CRL_URL.into()],
        }];
        p.use_authority_key_identifier_extension = true;
        let serial = p
            .serial_number
            .as_ref()
            .map(|s| s.as_ref().to_vec())
            .ok_or_else(|| PkiError::Other("no serial number".into()))?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            serial,
        })
    }

    /// A CRL listing `revoked` serial numbers, numbered `number`, valid for [`CRL_DAYS`].
    pub fn crl(&self, revoked: &[Vec<u8>], number: u64, now: i64) -> Result<String, PkiError> {
        let this = at(now - 60)?;
        let p = CertificateRevocationListParams {
            this_update: this,
            next_update: at(now + CRL_DAYS * 86_400)?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(s.clone()),
                    revocation_time: this,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(p.signed_by(&self.issuer)?.pem()?)
    }
}

/// The serial number of a PEM certificate.
fn serial_of(pem: &str) -> Result<Vec<u8>, PkiError> {
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Other(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Other(e.to_string()))?;
    Ok(cert.raw_serial().to_vec())
}

/// The serial numbers a PEM CRL lists.
fn revoked_in(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Other(e.to_string()))?;
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| PkiError::Other(e.to_string()))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect())
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
    /// The core partners' signed approvals of the first covenant version.
    pub const INSTALLATION: &str = "installation";
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
    /// A partner's governance key (the Ed25519 seed that signs its approvals of covenant
    /// changes; in a real deployment it never leaves the partner).
    pub fn governance_key(partner: &str) -> String {
        format!("{partner}/governance-ed25519.key")
    }
}

/// 32 random bytes as hex and a newline: a new secret key file's content.
pub fn random_hex() -> Result<String, PkiError> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| PkiError::Other("no randomness".into()))?;
    Ok(hex::encode(b) + "\n")
}

fn write_issued(dir: &Path, cert: &str, key: &str, i: &Issued) -> Result<(), PkiError> {
    write(&dir.join(cert), &i.cert_pem, false)?;
    write(&dir.join(key), &i.key_pem, true)
}

/// Signs the covenant text `source` (its `file:` keys read from `dir`) as an installation's
/// first version with every core partner's example governance key in `dir`, into
/// [`layout::INSTALLATION`]`/<partner>-<version>.note`, valid for ten years from `now` (an example outlives its tests' clocks); returns
/// the version. EXAMPLE ONLY: in a real installation each partner signs on its own, with its
/// own key, after checking the text and its own entry (`gateway policy sign --installation`).
pub fn sign_installation(dir: &Path, source: &str, now: i64) -> Result<String, PkiError> {
    let cc = policy::compile_toml_resolving(source, &mut |path| {
        std::fs::read_to_string(dir.join(path)).map_err(|e| e.to_string())
    })
    .map_err(|d| PkiError::Other(d.render("covenant", source)))?;
    let version = cc.version().as_str().to_owned();
    let short: String = version
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect();
    let c = cc.covenant();
    for p in c
        .partners
        .iter()
        .filter(|p| p.kind == PartnerKind::Kernpartner)
    {
        let key_file = dir.join(layout::governance_key(&p.id));
        let Ok(seed) = std::fs::read_to_string(&key_file) else {
            continue;
        };
        let seed = hex::decode(seed.trim()).map_err(|e| PkiError::Other(e.to_string()))?;
        let a = crate::lifecycle::approval::installation(
            &cc,
            &p.id,
            now.saturating_add(3_650 * 86_400),
        );
        let note = crate::lifecycle::approval::sign(&seed, &a)
            .map_err(|e| PkiError::Other(e.to_string()))?;
        // Whole or not at all: a gateway starting beside may be reading the directory.
        let path = dir
            .join(layout::INSTALLATION)
            .join(format!("{}-{short}.note", p.id));
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        write(&tmp, note, false)?;
        std::fs::rename(&tmp, &path).map_err(|source| PkiError::Io { path, source })?;
    }
    Ok(version)
}

/// Makes a fresh example PKI in `dir` for the partners of `covenant`; `now` (epoch seconds)
/// starts the certificates' validity.
pub fn init(dir: &Path, covenant: &CompiledCovenant, now: i64) -> Result<Generated, PkiError> {
    if dir.join(layout::CA).exists() {
        return Err(PkiError::NotEmpty(dir.into()));
    }
    let created = crate::log::entry::rfc3339::format(now).unwrap_or_default();
    let ca = Ca::generate("iPGA-R covenant CA (EXAMPLE)", now)?;
    write(&dir.join(layout::CA), ca.cert_pem(), false)?;
    write(&dir.join("ca.key"), &ca.key_pem, true)?;

    // The gateway: server certificate, its own client certificate (for upstream sources),
    // storage identity, pseudonym key and log key.
    let server = ca.issue(
        "gateway.ipga-r.example",
        Some(GATEWAY_OIN),
        &["localhost", "127.0.0.1", "::1"],
        false,
        now,
    )?;
    write_issued(dir, layout::SERVER_CERT, layout::SERVER_KEY, &server)?;
    let gw_client = ca.issue(
        "gateway.ipga-r.example (client)",
        Some(GATEWAY_OIN),
        &[],
        true,
        now,
    )?;
    write_issued(dir, "gateway/client.pem", "gateway/client.key", &gw_client)?;
    let storage = age::x25519::Identity::generate();
    write(
        &dir.join(layout::STORAGE_IDENTITY),
        age_identity_file(&storage, &created),
        true,
    )?;
    write(&dir.join(layout::PSEUDONYM_KEY), random_hex()?, true)?;
    write(&dir.join(layout::LOG_KEY), random_hex()?, true)?;

    let mut partners = Vec::new();
    let mut revoked = Vec::new();
    for p in &covenant.covenant().partners {
        let id = &p.id;
        let oin = p.oin.as_deref();
        let cert = ca.issue(&p.name, oin, &[], true, now)?;
        write_issued(
            dir,
            &layout::client_cert(id),
            &layout::client_key(id),
            &cert,
        )?;
        let token = KeyPair::generate()?;
        write(
            &dir.join(layout::token_key(id)),
            token.serialize_pem(),
            true,
        )?;
        write(
            &dir.join(format!("{id}/token-es256.pub.pem")),
            token.public_key_pem(),
            false,
        )?;
        let identity = age::x25519::Identity::generate();
        write(
            &dir.join(layout::age_identity(id)),
            age_identity_file(&identity, &created),
            true,
        )?;
        write(
            &dir.join(format!("{id}/age-recipient.txt")),
            format!("{}\n", identity.to_public()),
            false,
        )?;
        // Where the covenant reads the partner's governance key from a file: the pair.
        if let Some(policy::covenant::KeyRef::File(vkey_path)) = &p.governance_vkey {
            let seed = random_hex()?;
            let raw = hex::decode(seed.trim()).map_err(|e| PkiError::Other(e.to_string()))?;
            let vkey = crate::lifecycle::approval::vkey(id, &raw)
                .map_err(|e| PkiError::Other(e.to_string()))?;
            write(&dir.join(layout::governance_key(id)), seed, true)?;
            write(&dir.join(vkey_path), format!("{vkey}\n"), false)?;
        }
        if id == REVOKED_PARTNER {
            let rc = ca.issue(&format!("{} (revoked)", p.name), oin, &[], true, now)?;
            write_issued(
                dir,
                &format!("{id}/revoked-client.pem"),
                &format!("{id}/revoked-client.key"),
                &rc,
            )?;
            revoked.push(rc.serial);
        }
        partners.push(id.clone());
    }
    write(&dir.join(layout::CRL), ca.crl(&revoked, 1, now)?, false)?;
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

/// Adds `partner`'s client certificate to the CRL and re-signs it (a new CRL number).
pub fn revoke(dir: &Path, partner: &str, now: i64) -> Result<u64, PkiError> {
    let ca = Ca::load(dir)?;
    let cert = read_text(&dir.join(layout::client_cert(partner)))?;
    let mut serials = revoked_in(&read_text(&dir.join(layout::CRL))?)?;
    serials.push(serial_of(&cert)?);
    let number: u64 = read_text(&dir.join("crl-number.txt"))?
        .trim()
        .parse::<u64>()
        .map_err(|_| PkiError::Other("crl-number.txt does not hold a number".into()))?
        + 1;
    write(
        &dir.join(layout::CRL),
        ca.crl(&serials, number, now)?,
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
        "\n# Who may draft, approve (never their own draft) and activate covenant versions.\n[administration]\nadministrators = [\"oov/beheerder-1\", \"oov/beheerder-2\", \"politie/beheerder-1\", \"politie/beheerder-2\"]\n# The core partners' signatures on the first covenant version (the installation ceremony).\ninstallation_signatures = \"{}\"",
        layout::INSTALLATION
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn crl_parses_in_webpki_and_lists_the_serial() {
        let ca = Ca::generate("test CA", NOW).unwrap();
        let leaf = ca
            .issue("leaf", Some("00000099000000000002"), &[], true, NOW)
            .unwrap();
        let pem = ca.crl(std::slice::from_ref(&leaf.serial), 7, NOW).unwrap();
        assert_eq!(revoked_in(&pem).unwrap(), vec![leaf.serial.clone()]);
        let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
            .unwrap();
        // rustls builds a verifier from it only if webpki accepts the CRL.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                ca.cert_der().to_vec(),
            ))
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .with_crls([der])
        .build()
        .unwrap();
    }

    #[test]
    fn leaves_carry_the_oin_the_crl_point_and_live_under_398_days() {
        let ca = Ca::generate("test CA", NOW).unwrap();
        let leaf = ca
            .issue(
                "srv",
                Some("00000099000000000002"),
                &["localhost", "127.0.0.1"],
                false,
                NOW,
            )
            .unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&leaf.cert_der).unwrap();
        assert_eq!(
            crate::registry::subject_serial_number(&leaf.cert_der).as_deref(),
            Some("00000099000000000002")
        );
        let days =
            (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400;
        assert!(days <= 398, "{days}");
        let ext: Vec<String> = c
            .extensions()
            .iter()
            .map(|e| e.oid.to_id_string())
            .collect();
        assert!(
            ext.contains(&"2.5.29.31".to_owned()),
            "CRL distribution points: {ext:?}"
        );
        assert!(
            ext.contains(&"2.5.29.35".to_owned()),
            "authority key id: {ext:?}"
        );
        assert_eq!(serial_of(&leaf.cert_pem).unwrap(), leaf.serial);
    }
}
