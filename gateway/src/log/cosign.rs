//! Witness cosignatures in the C2SP `tlog-cosignature` format (`cosignature/v1`, Ed25519): a
//! witness's timestamped statement that it checked a checkpoint consistent with every earlier
//! one it cosigned for that log.
//!
//! Key id: `SHA-256(name || "\n" || 0x04 || public key)[:4]`; signature line
//! `— name base64(key id || u64 timestamp (big-endian) || Ed25519 signature)`, over
//! `"cosignature/v1\ntime <timestamp>\n" || checkpoint body`.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// The signature type byte of `cosignature/v1` Ed25519 keys.
const COSIGNATURE_V1: u8 = 0x04;

/// Problems with witness keys and cosignatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignError {
    /// The key material is not usable.
    #[error("witness key: {0}")]
    Key(String),
    /// A cosignature line of the key is there but does not verify.
    #[error("the cosignature of witness {0} does not verify")]
    BadSignature(String),
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, COSIGNATURE_V1]);
    h.update(public);
    let d: [u8; 32] = h.finalize().into();
    let [a, b, c, e, ..] = d;
    [a, b, c, e]
}

fn signed_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// A witness's signing key.
pub struct Cosigner {
    name: String,
    pair: Ed25519KeyPair,
    id: [u8; 4],
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cosigner({})", self.name)
    }
}

fn check_name(name: &str) -> Result<(), CosignError> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
        return Err(CosignError::Key(
            "witness names are non-empty, without spaces or '+'".into(),
        ));
    }
    Ok(())
}

impl Cosigner {
    /// From a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Self, CosignError> {
        check_name(name)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| CosignError::Key(e.to_string()))?;
        let id = key_id(name, pair.public_key().as_ref());
        Ok(Cosigner {
            name: name.into(),
            pair,
            id,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key: `name+hexid+base64(0x04 || public key)`.
    pub fn vkey(&self) -> String {
        let mut k = vec![COSIGNATURE_V1];
        k.extend_from_slice(self.pair.public_key().as_ref());
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(k))
    }

    /// The cosignature line (with its final newline) over a checkpoint `body` (the note text up
    /// to and including the root's line break, without signatures), made at `timestamp`.
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let sig = self.pair.sign(&signed_message(body, timestamp));
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(sig.as_ref());
        format!("\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// Verifies one witness's cosignatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignVerifier {
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl CosignVerifier {
    /// From a `vkey` of type 0x04.
    pub fn from_vkey(vkey: &str) -> Result<Self, CosignError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CosignError::Key("a vkey is name+keyid+base64key".into()));
        };
        check_name(name)?;
        let key = B64
            .decode(key)
            .map_err(|_| CosignError::Key("vkey key is not base64".into()))?;
        let (Some(&COSIGNATURE_V1), Some(public)) = (key.first(), key.get(1..)) else {
            return Err(CosignError::Key(
                "a witness vkey is of type 0x04 (cosignature/v1, Ed25519)".into(),
            ));
        };
        let id: [u8; 4] = hex::decode(id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CosignError::Key("vkey id is 8 hex digits".into()))?;
        if public.len() != 32 || key_id(name, public) != id {
            return Err(CosignError::Key("vkey id does not match its key".into()));
        }
        Ok(CosignVerifier {
            name: name.into(),
            id,
            public: public.to_vec(),
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The timestamp of this witness's valid cosignature among `note`'s signature lines;
    /// `Ok(None)` when it has none; an error when its line is there but does not verify.
    pub fn verify(&self, note: &str) -> Result<Option<u64>, CosignError> {
        let Some((body, sigs)) = note.split_once("\n\n") else {
            return Ok(None);
        };
        let body = format!("{body}\n");
        let mut found = None;
        for line in sigs.lines() {
            let Some((name, sig)) = line
                .strip_prefix("\u{2014} ")
                .and_then(|r| r.rsplit_once(' '))
            else {
                continue;
            };
            let Ok(blob) = B64.decode(sig) else { continue };
            if name != self.name || blob.get(..4) != Some(&self.id[..]) {
                continue;
            }
            let (Some(ts), Some(signature)) = (blob.get(4..12), blob.get(12..)) else {
                return Err(CosignError::BadSignature(self.name.clone()));
            };
            let ts = u64::from_be_bytes(
                ts.try_into()
                    .map_err(|_| CosignError::BadSignature(self.name.clone()))?,
            );
            UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(&signed_message(&body, ts), signature)
                .map_err(|_| CosignError::BadSignature(self.name.clone()))?;
            found = Some(ts);
        }
        Ok(found)
    }
}

/// The witnesses among `verifiers` that validly cosigned `note`, with their timestamps.
/// A line that names a known witness but does not verify makes the note unusable.
pub fn witnessed(
    note: &str,
    verifiers: &[CosignVerifier],
) -> Result<Vec<(String, u64)>, CosignError> {
    let mut out = Vec::new();
    for v in verifiers {
        if let Some(ts) = v.verify(note)? {
            out.push((v.name.clone(), ts));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::checkpoint::{Checkpoint, LogKey, NoteVerifier};

    fn note() -> (String, String) {
        let log = LogKey::from_seed("gw.example/disclosures", &[1; 32]).unwrap();
        let c = Checkpoint {
            origin: "gw.example/disclosures".into(),
            size: 7,
            root: [9; 32],
            extensions: Vec::new(),
        };
        (log.sign(&c), c.body())
    }

    #[test]
    fn a_cosignature_verifies_and_leaves_the_log_signature_intact() {
        let (signed, body) = note();
        let w = Cosigner::from_seed("witness.politie.example", &[2; 32]).unwrap();
        let cosigned = format!("{signed}{}", w.cosign(&body, 1_796_126_400));
        let v = CosignVerifier::from_vkey(&w.vkey()).unwrap();
        assert_eq!(v.verify(&cosigned), Ok(Some(1_796_126_400)));
        assert_eq!(
            witnessed(&cosigned, std::slice::from_ref(&v))
                .unwrap()
                .len(),
            1
        );
        // The log's own signature still verifies on the cosigned note.
        let log = LogKey::from_seed("gw.example/disclosures", &[1; 32]).unwrap();
        assert!(
            NoteVerifier::from_vkey(&log.vkey())
                .unwrap()
                .verify(&cosigned)
                .is_ok()
        );
        // Another body, or another timestamp under the same signature, does not verify.
        let other = cosigned.replace("\n7\n", "\n8\n");
        assert_eq!(
            v.verify(&other),
            Err(CosignError::BadSignature("witness.politie.example".into()))
        );
        // Not cosigned by this witness: none.
        assert_eq!(v.verify(&signed), Ok(None));
    }

    #[test]
    fn key_id_and_vkey_follow_the_spec() {
        let w = Cosigner::from_seed("w.example", &[3; 32]).unwrap();
        let pk = w.pair.public_key().as_ref().to_vec();
        let mut h = Sha256::new();
        h.update(b"w.example\n\x04");
        h.update(&pk);
        assert_eq!(&h.finalize()[..4], &w.id);
        assert!(CosignVerifier::from_vkey(&w.vkey()).is_ok());
        // A log key (type 0x01) is not a witness key.
        let log = LogKey::from_seed("w.example", &[3; 32]).unwrap();
        assert!(CosignVerifier::from_vkey(&log.vkey()).is_err());
    }
}
