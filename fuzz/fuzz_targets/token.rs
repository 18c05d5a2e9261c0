//! Bearer tokens (header and claims decoding, then the full check against a registry with real
//! keys) on arbitrary text: refused with a problem type, never a panic; only a token signed with
//! a registered key and bound to the certificate is accepted.
#![no_main]

use gateway::auth::{TokenPolicy, inspect, verify};
use gateway::registry::{ClientIdentity, PartnerRegistry};
use libfuzzer_sys::fuzz_target;
use policy::CompiledCovenant;
use std::sync::OnceLock;

struct Fixture {
    cc: CompiledCovenant,
    reg: PartnerRegistry,
    client: ClientIdentity,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        gateway::install_crypto_provider();
        let cc = policy::compile_toml(gateway::demo::EXAMPLE_COVENANT).unwrap();
        let dir = std::env::temp_dir().join(format!("gateway-fuzz-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        gateway::pki::init(&dir, &cc, 1_800_000_000).unwrap();
        let reg = PartnerRegistry::load(&cc, &dir, &[1u8; 32]).unwrap();
        let certs = gateway::tls::read_certs(&dir.join("politie/client.pem")).unwrap();
        let client = ClientIdentity {
            partner: cc.covenant().partner("politie").unwrap(),
            thumbprint: gateway::registry::thumbprint(certs[0].as_ref()),
        };
        // Seeds for the corpus: a valid token for this fixture, written once.
        if let Ok(corpus) = std::env::var("GATEWAY_FUZZ_SEED_DIR") {
            let key = std::fs::read(dir.join("politie/token-es256.pem")).unwrap();
            let t = gateway::auth::mint(&key, "politie-1", "politie", "p1", &["voorportaal".into()], &client.thumbprint, "gw", 1_800_000_000, 600).unwrap();
            let _ = std::fs::create_dir_all(&corpus);
            let _ = std::fs::write(std::path::Path::new(&corpus).join("valid-token"), t);
        }
        Fixture { cc, reg, client }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let f = fixture();
    let _ = inspect(token);
    let policy = TokenPolicy { audience: "gw".into(), max_lifetime: 900, leeway: 30, max_bytes: 8192 };
    if let Ok(r) = verify(token, &f.client, &f.cc, &f.reg, &policy, 1_800_000_100) {
        assert_eq!(r.partner_id, "politie");
    }
});
