//! TLS for the partner API: TLS 1.2 and 1.3 with forward-secret suites only, a client certificate
//! required, chained to the covenant CA, not revoked (CRL), and belonging to a partner of the
//! covenant. Anything else fails the handshake: no unknown certificate reaches a handler.

use crate::registry::PartnerRegistry;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// TLS set-up failed; says which file and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn file_err(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The crypto provider: aws-lc-rs, restricted to forward-secret suites (all TLS 1.3 suites and
/// the ECDHE suites of TLS 1.2).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(t) => format!("{:?}", t.common.suite).contains("ECDHE"),
    });
    Arc::new(p)
}

/// Reads every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no certificate in this PEM file"));
    }
    Ok(certs)
}

/// Checks the client certificate like webpki does, then requires that it belongs to a partner.
#[derive(Debug)]
pub struct CovenantClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    registry: Arc<PartnerRegistry>,
}

impl std::fmt::Debug for PartnerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartnerRegistry")
    }
}

impl ClientCertVerifier for CovenantClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.registry.identify(end_entity.as_ref()).is_none() {
            // Chains to the CA, but no partner of the covenant has it: refuse in the handshake.
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// A server configuration that accepts any client certificate of `ca` (another approach's
/// register; the partner API checks more, see [`server_config`]).
pub fn client_auth_server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<rustls::ServerConfig, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    with_verifier(verifier, cert, key)
}

/// The trust anchors of a CA file.
fn roots(ca: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(ca)? {
        roots.add(c).map_err(|e| file_err(ca, e))?;
    }
    Ok(roots)
}

/// A TLS 1.2/1.3 server configuration with this client verifier, certificate chain and key.
fn with_verifier(
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    cert: &Path,
    key: &Path,
) -> Result<rustls::ServerConfig, TlsError> {
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The server configuration for the partner API.
pub fn server_config(
    ca: &Path,
    crls: &[std::path::PathBuf],
    cert: &Path,
    key: &Path,
    registry: Arc<PartnerRegistry>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut crl_ders = Vec::new();
    for path in crls {
        for crl in
            CertificateRevocationListDer::pem_file_iter(path).map_err(|e| file_err(path, e))?
        {
            crl_ders.push(crl.map_err(|e| file_err(path, e))?);
        }
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
        .with_crls(crl_ders)
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    with_verifier(
        Arc::new(CovenantClientVerifier { inner, registry }),
        cert,
        key,
    )
}
