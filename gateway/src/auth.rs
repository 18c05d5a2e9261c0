//! The person behind a request: a JWT per request, signed by a key the covenant registers for the
//! partner of the client certificate, bound to that certificate (RFC 8705), checked against an
//! injected clock.

use crate::refusal::Refusal;
use crate::registry::{ClientIdentity, PartnerRegistry};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use policy::{CompiledCovenant, PartnerRef, RoleRef};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// What the gateway requires of tokens.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Required `aud`.
    pub audience: String,
    /// Largest `exp - iat`.
    pub max_lifetime: i64,
    /// Tolerated clock skew.
    pub leeway: i64,
    /// Largest token accepted, in bytes (a larger one is refused before it is decoded).
    pub max_bytes: usize,
}

/// An authenticated requester: a partner (from the certificate) and a person (from the token).
#[derive(Debug, Clone)]
pub struct Requester {
    /// Partner.
    pub partner: PartnerRef,
    /// Partner id.
    pub partner_id: String,
    /// Staff id (`sub`).
    pub staff_id: String,
    /// Roles from the token, all known to the covenant and holdable by the partner.
    pub roles: Vec<RoleRef>,
    /// The token's `exp`.
    pub expires: i64,
}

/// Tokens verified under one policy version, until they expire: a token is checked (signature,
/// claims, binding) once, not on every request. Keyed by the token and the certificate it came
/// with, so a token is never accepted on another connection's certificate from the cache.
pub struct TokenCache(crate::cache::Bounded<[u8; 32], Requester>);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCache({} entries)", self.0.len())
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0: every request verifies its token).
    pub fn new(capacity: usize) -> Self {
        TokenCache(crate::cache::Bounded::new(capacity))
    }
}

/// [`verify`], answering from `cache` while the token has not expired.
pub fn verify_cached(
    cache: &TokenCache,
    token: &str,
    client: &ClientIdentity,
    covenant: &CompiledCovenant,
    registry: &PartnerRegistry,
    policy: &TokenPolicy,
    now: i64,
) -> Result<Requester, Refusal> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update([0]);
    h.update(client.thumbprint.as_bytes());
    h.update(client.partner.index().to_be_bytes());
    let key: [u8; 32] = h.finalize().into();
    if let Some(r) = cache.0.get(&key) {
        // Everything but time was checked when it was cached; `iat` and `nbf` only get older.
        if r.expires + policy.leeway >= now {
            crate::metrics::metrics().token_cache_hits.inc();
            return Ok(r);
        }
        cache.0.remove(&key);
    }
    crate::metrics::metrics().token_cache_misses.inc();
    let r = verify(token, client, covenant, registry, policy, now)?;
    cache.0.insert(key, r.clone());
    Ok(r)
}

/// `cnf` claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    /// Certificate thumbprint.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// One audience or several.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Aud {
    /// A single audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Aud {
    fn contains(&self, a: &str) -> bool {
        match self {
            Aud::One(x) => x == a,
            Aud::Many(xs) => xs.iter().any(|x| x == a),
        }
    }
}

/// The claims the gateway reads. Other claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Partner id.
    pub iss: String,
    /// Staff id.
    pub sub: String,
    /// Must contain the gateway id.
    pub aud: Aud,
    /// Expiry (epoch seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Covenant roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Certificate binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl Claims {
    /// The claims of a token whose signature verified, each checked for presence and type, so
    /// that the problem names the claim that is wrong (never "the signature").
    fn from_verified(v: &serde_json::Value) -> Result<Claims, Refusal> {
        use serde_json::Value;
        let text = |name: &'static str| match v.get(name) {
            None => Err(Refusal::TokenClaim(name, "is missing")),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(Refusal::TokenClaim(name, "must be a non-empty string")),
        };
        let seconds = |name: &'static str| match v.get(name) {
            None => Err(Refusal::TokenClaim(name, "is missing")),
            Some(n) => n.as_i64().ok_or(Refusal::TokenClaim(
                name,
                "must be an integer number of seconds since 1970",
            )),
        };
        let aud = match v.get("aud") {
            None => return Err(Refusal::TokenAudience),
            Some(a) => Aud::deserialize(a)
                .map_err(|_| Refusal::TokenClaim("aud", "must be a string or a list of strings"))?,
        };
        let roles = match v.get("roles") {
            None => Vec::new(),
            Some(r) => Vec::<String>::deserialize(r)
                .map_err(|_| Refusal::TokenClaim("roles", "must be a list of role names"))?,
        };
        // A `cnf` without `x5t#S256` (e.g. `x5t`, SHA-1) binds to no certificate we check.
        let cnf = match v.get("cnf").map(|c| c.get("x5t#S256")) {
            None | Some(None) => None,
            Some(Some(Value::String(t))) => Some(Confirmation {
                x5t_s256: t.clone(),
            }),
            Some(Some(_)) => {
                return Err(Refusal::TokenClaim(
                    "cnf.x5t#S256",
                    "must be the base64url SHA-256 thumbprint of the certificate",
                ));
            }
        };
        Ok(Claims {
            iss: text("iss")?,
            sub: text("sub")?,
            aud,
            exp: seconds("exp")?,
            iat: seconds("iat")?,
            nbf: match v.get("nbf") {
                None => None,
                Some(_) => Some(seconds("nbf")?),
            },
            roles,
            cnf,
        })
    }
}

#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct UnverifiedIssuer {
    #[serde(default)]
    iss: Option<String>,
}

fn b64_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, Refusal> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| Refusal::TokenMalformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::TokenMalformed)
}

/// What a token says about itself before its signature is checked: only enough to pick the key
/// (and to refuse `none`, HMAC and other partners' tokens early). Nothing here is believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The algorithm named in the header (one the gateway accepts).
    pub alg: Algorithm,
    /// The key id named in the header.
    pub kid: Option<String>,
    /// The issuer named in the claims.
    pub iss: Option<String>,
}

/// Splits and decodes a token's header and issuer (untrusted input).
pub fn inspect(token: &str) -> Result<Unverified, Refusal> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::TokenMalformed);
    };
    // The algorithm is checked before anything else: `none` and HMAC never get further.
    let header: UnverifiedHeader = b64_json(h)?;
    let alg = match header.alg.as_str() {
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        other => {
            return Err(Refusal::TokenAlgorithmRefused(
                other.chars().take(16).collect(),
            ));
        }
    };
    let unverified: UnverifiedIssuer = b64_json(p)?;
    Ok(Unverified {
        alg,
        kid: header.kid,
        iss: unverified.iss,
    })
}

/// Checks a bearer token for the connection's certificate. `now` comes from the injected clock.
pub fn verify(
    token: &str,
    client: &ClientIdentity,
    covenant: &CompiledCovenant,
    registry: &PartnerRegistry,
    policy: &TokenPolicy,
    now: i64,
) -> Result<Requester, Refusal> {
    if token.len() > policy.max_bytes {
        return Err(Refusal::TokenTooLarge(policy.max_bytes));
    }
    let Unverified { alg, kid, iss } = inspect(token)?;
    let partner = covenant
        .covenant()
        .partner_at(client.partner)
        .ok_or(Refusal::Internal)?;
    // A token of another partner is refused before its signature is tried against our keys.
    if iss.as_deref() != Some(partner.id.as_str()) {
        return Err(Refusal::TokenIssuerMismatch);
    }
    let keys = registry.partner(client.partner).ok_or(Refusal::Internal)?;
    let candidates = keys
        .token_keys
        .iter()
        .filter(|k| k.alg == alg && kid.as_ref().is_none_or(|kid| *kid == k.kid));
    let mut validation = Validation::new(alg);
    // Only the signature here: every claim is checked below, each with its own problem, against
    // the injected clock and the covenant.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let mut candidates = candidates.peekable();
    if candidates.peek().is_none() {
        return Err(Refusal::TokenKeyUnknown);
    }
    let verified = candidates
        .filter_map(|k| jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &validation).ok())
        .map(|d| d.claims)
        .next()
        .ok_or(Refusal::TokenInvalid)?;
    let claims = Claims::from_verified(&verified)?;
    if claims.iss != partner.id {
        return Err(Refusal::TokenIssuerMismatch);
    }
    if !claims.aud.contains(&policy.audience) {
        return Err(Refusal::TokenAudience);
    }
    if claims.exp + policy.leeway < now {
        return Err(Refusal::TokenExpired);
    }
    if claims.iat - policy.leeway > now || claims.nbf.is_some_and(|nbf| nbf - policy.leeway > now) {
        return Err(Refusal::TokenNotYetValid);
    }
    if claims.exp - claims.iat > policy.max_lifetime {
        return Err(Refusal::TokenLifetimeTooLong(policy.max_lifetime));
    }
    match &claims.cnf {
        None => return Err(Refusal::TokenNotBound),
        Some(cnf) if cnf.x5t_s256 != client.thumbprint => {
            return Err(Refusal::TokenBoundToOtherCertificate);
        }
        Some(_) => {}
    }
    let c = covenant.covenant();
    let mut roles = Vec::with_capacity(claims.roles.len());
    for name in &claims.roles {
        let role = c
            .role(name)
            .ok_or_else(|| Refusal::RoleUnknown(name.chars().take(64).collect()))?;
        let held = c
            .roles
            .get(role.index())
            .and_then(|r| r.held_by.get(client.partner.index()))
            .copied()
            .unwrap_or(false);
        if !held {
            return Err(Refusal::RoleNotHeld(name.clone()));
        }
        roles.push(role);
    }
    Ok(Requester {
        partner: client.partner,
        partner_id: partner.id.clone(),
        staff_id: claims.sub,
        roles,
        expires: claims.exp,
    })
}

/// Mints a token (for `gateway token`, the demo and tests) with an ES256 key in PEM.
#[expect(
    clippy::too_many_arguments,
    reason = "a token is all of these; a struct would only rename them"
)]
pub fn mint(
    key_pem: &[u8],
    kid: &str,
    partner: &str,
    staff_id: &str,
    roles: &[String],
    thumbprint: &str,
    audience: &str,
    now: i64,
    lifetime: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let key = EncodingKey::from_ec_pem(key_pem)?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = Claims {
        iss: partner.to_owned(),
        sub: staff_id.to_owned(),
        aud: Aud::One(audience.to_owned()),
        exp: now + lifetime,
        iat: now,
        nbf: None,
        roles: roles.to_vec(),
        cnf: Some(Confirmation {
            x5t_s256: thumbprint.to_owned(),
        }),
    };
    jsonwebtoken::encode(&header, &claims, &key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PartnerRegistry;

    /// A PKI and registry in a temporary directory, made once.
    fn fixture() -> &'static (std::path::PathBuf, CompiledCovenant, PartnerRegistry) {
        static F: std::sync::OnceLock<(std::path::PathBuf, CompiledCovenant, PartnerRegistry)> =
            std::sync::OnceLock::new();
        F.get_or_init(|| {
            let src = include_str!("../../ops/covenant/ipga-r.toml");
            let cc = policy::compile_toml(src).unwrap();
            let dir =
                std::env::temp_dir().join(format!("gateway-auth-test-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            crate::pki::init(&dir, &cc, 1_800_000_000).unwrap();
            let reg = PartnerRegistry::load(&cc, &dir, &[1u8; 32]).unwrap();
            (dir, cc, reg)
        })
    }

    fn client(dir: &std::path::Path, partner: &str) -> ClientIdentity {
        let certs = crate::tls::read_certs(&dir.join(format!("{partner}/client.pem"))).unwrap();
        ClientIdentity {
            partner: fixture().1.covenant().partner(partner).unwrap(),
            thumbprint: crate::registry::thumbprint(certs[0].as_ref()),
        }
    }

    /// A police voorportaal token of ten minutes from `iat`, and a policy allowing 15 minutes
    /// with 30 seconds leeway.
    fn ten_minutes_from(
        dir: &std::path::Path,
        c: &ClientIdentity,
        iat: i64,
    ) -> (TokenPolicy, String) {
        let key = std::fs::read(dir.join("politie/token-es256.pem")).unwrap();
        let policy = TokenPolicy {
            audience: "gw".into(),
            max_lifetime: 900,
            leeway: 30,
            max_bytes: 8192,
        };
        let roles = ["voorportaal".into()];
        let token = mint(
            &key,
            "politie-1",
            "politie",
            "p1",
            &roles,
            &c.thumbprint,
            "gw",
            iat,
            600,
        );
        (policy, token.unwrap())
    }

    #[test]
    fn each_claim_problem_names_the_claim_not_the_signature() {
        let (dir, cc, reg) = fixture();
        let c = client(dir, "politie");
        let (policy, _) = ten_minutes_from(dir, &c, 100);
        let pem = std::fs::read(dir.join("politie/token-es256.pem")).unwrap();
        let key = EncodingKey::from_ec_pem(&pem).unwrap();
        let sign = |claims: &serde_json::Value, kid: &str| {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some(kid.into());
            jsonwebtoken::encode(&h, claims, &key).unwrap()
        };
        let good = serde_json::json!({
            "iss": "politie", "sub": "p1", "aud": "gw", "exp": 400, "iat": 100,
            "roles": ["voorportaal"], "cnf": {"x5t#S256": c.thumbprint},
        });
        let with = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
            let mut v = good.clone();
            edit(v.as_object_mut().unwrap());
            verify(&sign(&v, "politie-1"), &c, cc, reg, &policy, 100)
        };
        assert!(with(&|_| {}).is_ok());
        assert_eq!(
            with(&|m| {
                m.remove("aud");
            })
            .unwrap_err(),
            Refusal::TokenAudience
        );
        assert_eq!(
            with(&|m| {
                m.remove("exp");
            })
            .unwrap_err(),
            Refusal::TokenClaim("exp", "is missing")
        );
        assert_eq!(
            with(&|m| {
                m.remove("iat");
            })
            .unwrap_err(),
            Refusal::TokenClaim("iat", "is missing")
        );
        assert_eq!(
            with(&|m| {
                m.remove("sub");
            })
            .unwrap_err(),
            Refusal::TokenClaim("sub", "is missing")
        );
        assert!(matches!(
            with(&|m| {
                m.insert("roles".into(), "voorportaal".into());
            })
            .unwrap_err(),
            Refusal::TokenClaim("roles", _)
        ));
        assert!(matches!(
            with(&|m| {
                m.insert("exp".into(), "tomorrow".into());
            })
            .unwrap_err(),
            Refusal::TokenClaim("exp", _)
        ));
        // `x5t` (SHA-1) instead of `x5t#S256` binds to nothing the gateway checks.
        let x5t = serde_json::json!({"x5t": c.thumbprint});
        assert_eq!(
            with(&|m| {
                m.insert("cnf".into(), x5t.clone());
            })
            .unwrap_err(),
            Refusal::TokenNotBound
        );
        // A key id the partner does not register, and a token above the size limit.
        assert_eq!(
            verify(&sign(&good, "politie-9"), &c, cc, reg, &policy, 100).unwrap_err(),
            Refusal::TokenKeyUnknown
        );
        let big = with(&|m| {
            m.insert("pad".into(), "x".repeat(65_536).into());
        });
        assert_eq!(big.unwrap_err(), Refusal::TokenTooLarge(8192));
    }

    #[test]
    fn the_injected_clock_decides_expiry_at_the_leeway_boundary() {
        let (dir, cc, reg) = fixture();
        let c = client(dir, "politie");
        let iat = 1_800_000_000;
        let (policy, token) = ten_minutes_from(dir, &c, iat);
        let at = |now| verify(&token, &c, cc, reg, &policy, now).map(|r| r.staff_id);
        assert_eq!(at(iat), Ok("p1".into()));
        assert_eq!(at(iat + 600 + 30), Ok("p1".into()));
        assert_eq!(at(iat + 600 + 31), Err(Refusal::TokenExpired));
        assert_eq!(at(iat - 30), Ok("p1".into()));
        assert_eq!(at(iat - 31), Err(Refusal::TokenNotYetValid));
        let r = verify(&token, &c, cc, reg, &policy, iat).unwrap();
        assert_eq!(r.roles, vec![cc.covenant().role("voorportaal").unwrap()]);
    }

    #[test]
    fn lifetime_and_binding() {
        let (dir, cc, reg) = fixture();
        let c = client(dir, "politie");
        let key = std::fs::read(dir.join("politie/token-es256.pem")).unwrap();
        let policy = TokenPolicy {
            audience: "gw".into(),
            max_lifetime: 300,
            leeway: 0,
            max_bytes: 8192,
        };
        let long = mint(
            &key,
            "politie-1",
            "politie",
            "p1",
            &[],
            &c.thumbprint,
            "gw",
            100,
            301,
        )
        .unwrap();
        assert_eq!(
            verify(&long, &c, cc, reg, &policy, 100).unwrap_err(),
            Refusal::TokenLifetimeTooLong(300)
        );
        let other = mint(
            &key,
            "politie-1",
            "politie",
            "p1",
            &[],
            "not-this-certificate",
            "gw",
            100,
            60,
        )
        .unwrap();
        assert_eq!(
            verify(&other, &c, cc, reg, &policy, 100).unwrap_err(),
            Refusal::TokenBoundToOtherCertificate
        );
        // The right key id is required when one is given.
        let wrong_kid = mint(
            &key,
            "politie-9",
            "politie",
            "p1",
            &[],
            &c.thumbprint,
            "gw",
            100,
            60,
        )
        .unwrap();
        assert_eq!(
            verify(&wrong_kid, &c, cc, reg, &policy, 100).unwrap_err(),
            Refusal::TokenKeyUnknown
        );
    }

    #[test]
    fn a_cached_token_still_expires_and_never_serves_another_certificate() {
        let (dir, cc, reg) = fixture();
        let c = client(dir, "politie");
        let iat = 1_800_000_000;
        let (policy, token) = ten_minutes_from(dir, &c, iat);
        let cache = TokenCache::new(10);
        let at = |now, c: &ClientIdentity| {
            verify_cached(&cache, &token, c, cc, reg, &policy, now).map(|r| r.staff_id)
        };
        assert_eq!(at(iat, &c), Ok("p1".into()));
        assert_eq!(cache.0.len(), 1);
        assert_eq!(at(iat + 630, &c), Ok("p1".into()), "from the cache");
        assert_eq!(at(iat + 631, &c), Err(Refusal::TokenExpired));
        // The same token on another certificate is verified, and refused, not served cached.
        let mut other = c.clone();
        other.thumbprint = "another-certificate".into();
        assert_eq!(at(iat, &other), Err(Refusal::TokenBoundToOtherCertificate));
    }
}
