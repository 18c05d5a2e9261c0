//! The certificate-to-partner mapping on arbitrary DER: reading a peer certificate (fingerprint,
//! thumbprint, OIN, issuer and serial) and finding its partner never panics, and arbitrary bytes
//! never map to a partner unless they are a registered partner's certificate.
#![no_main]

use gateway::registry::{PartnerRegistry, PeerCert};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn registry() -> &'static (PartnerRegistry, Vec<Vec<u8>>) {
    static R: OnceLock<(PartnerRegistry, Vec<Vec<u8>>)> = OnceLock::new();
    R.get_or_init(|| {
        gateway::install_crypto_provider();
        let cc = policy::compile_toml(gateway::demo::EXAMPLE_COVENANT).unwrap();
        let dir = std::env::temp_dir().join(format!("gateway-fuzz-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        gateway::pki::init(&dir, &cc, 1_800_000_000).unwrap();
        let reg = PartnerRegistry::load(&cc, &dir, &[1u8; 32]).unwrap();
        let certs = ["politie", "oov", "gemeente-utrecht"]
            .iter()
            .map(|p| gateway::tls::read_certs(&dir.join(format!("{p}/client.pem"))).unwrap()[0].as_ref().to_vec())
            .collect();
        if let Ok(corpus) = std::env::var("GATEWAY_FUZZ_SEED_DIR") {
            let _ = std::fs::create_dir_all(&corpus);
            for (i, c) in <Vec<Vec<u8>> as AsRef<[Vec<u8>]>>::as_ref(&certs).iter().enumerate() {
                let _ = std::fs::write(std::path::Path::new(&corpus).join(format!("cert-{i}")), c);
            }
        }
        (reg, certs)
    })
}

fuzz_target!(|data: &[u8]| {
    let (reg, known) = registry();
    let peer = PeerCert::from_der(data);
    let _ = gateway::registry::subject_serial_number(data);
    if reg.identify_peer(&peer).is_some() {
        // By OIN or pinned fingerprint: the DER must carry a registered partner's OIN; the
        // example registers by OIN, so it must at least parse as a certificate.
        assert!(peer.oin.is_some() || known.iter().any(|k| k == data));
    }
});
