//! Signed checkpoints in the C2SP `tlog-checkpoint` format, as C2SP signed notes with an Ed25519
//! key: `origin\nsize\nbase64(root)\n\n— name base64(keyid || signature)\n`.

use super::merkle::Hash;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// Problems with keys or checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The key material is not usable.
    #[error("log key: {0}")]
    Key(String),
    /// The note is not a well-formed checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// A signature line of the key is there but does not verify.
    #[error("checkpoint signature by the log key {0} does not verify")]
    BadSignature(String),
    /// No signature line of any expected key.
    #[error("checkpoint not signed by the log key {0}")]
    NotSigned(String),
}

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Tree head.
    pub root: Hash,
    /// Extension lines after the root (C2SP tlog-checkpoint), signed and cosigned with it: the
    /// per-subject map's head (`ipga-r/subjects …`, issue 28).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text (body) that is signed.
    pub fn body(&self) -> String {
        let mut b = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            b.push_str(e);
            b.push('\n');
        }
        b
    }
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, 0x01]);
    h.update(public);
    let d: [u8; 32] = h.finalize().into();
    let [a, b, c, e, ..] = d;
    [a, b, c, e]
}

/// The gateway's log signing key.
pub struct LogKey {
    name: String,
    pair: Ed25519KeyPair,
    id: [u8; 4],
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogKey({})", self.name)
    }
}

impl LogKey {
    /// From a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Self, CheckpointError> {
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
            return Err(CheckpointError::Key(
                "key names are non-empty, without spaces or '+'".into(),
            ));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| CheckpointError::Key(e.to_string()))?;
        let id = key_id(name, pair.public_key().as_ref());
        Ok(LogKey {
            name: name.into(),
            pair,
            id,
        })
    }

    /// The verifier key in the signed-note `vkey` form: `name+hexid+base64(0x01 || public key)`.
    pub fn vkey(&self) -> String {
        let mut k = vec![0x01];
        k.extend_from_slice(self.pair.public_key().as_ref());
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(k))
    }

    /// Signs a checkpoint; returns the complete signed note.
    pub fn sign(&self, c: &Checkpoint) -> String {
        self.sign_body(&c.body())
    }

    /// Signs any note body (lines ending in a newline) as a C2SP signed note.
    pub fn sign_body(&self, body: &str) -> String {
        let sig = self.pair.sign(body.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(sig.as_ref());
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// Verifies notes signed by one known key.
#[derive(Debug, Clone)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl NoteVerifier {
    /// From a `vkey` string.
    pub fn from_vkey(vkey: &str) -> Result<Self, CheckpointError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CheckpointError::Key(
                "a vkey is name+keyid+base64key".into(),
            ));
        };
        let key = B64
            .decode(key)
            .map_err(|_| CheckpointError::Key("vkey key is not base64".into()))?;
        let (Some(&0x01), Some(public)) = (key.first(), key.get(1..)) else {
            return Err(CheckpointError::Key(
                "only Ed25519 (type 0x01) vkeys are supported".into(),
            ));
        };
        let id: [u8; 4] = hex::decode(id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CheckpointError::Key("vkey id is 8 hex digits".into()))?;
        if public.len() != 32 || key_id(name, public) != id {
            return Err(CheckpointError::Key(
                "vkey id does not match its key".into(),
            ));
        }
        Ok(NoteVerifier {
            name: name.into(),
            id,
            public: public.to_vec(),
        })
    }

    /// The `vkey` string of this verifier.
    pub fn vkey_string(&self) -> String {
        let mut k = vec![0x01];
        k.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(k))
    }

    /// Parses and verifies a checkpoint note.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        parse_checkpoint(&self.verify_body(note)?)
    }

    /// Verifies any signed note by this key; returns its body (with the final newline).
    pub fn verify_body(&self, note: &str) -> Result<String, CheckpointError> {
        let (body, sigs) = note.split_once("\n\n").ok_or(CheckpointError::Malformed(
            "no blank line before the signatures",
        ))?;
        let body = format!("{body}\n");
        let mut verified = false;
        for line in sigs.lines().filter(|l| !l.is_empty()) {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or(CheckpointError::Malformed(
                    "signature lines start with an em dash",
                ))?;
            let (name, sig) = rest.rsplit_once(' ').ok_or(CheckpointError::Malformed(
                "signature line without a signature",
            ))?;
            let blob = B64
                .decode(sig)
                .map_err(|_| CheckpointError::Malformed("signature is not base64"))?;
            if name != self.name || blob.get(..4) != Some(&self.id[..]) {
                continue; // Another key's signature: ignored, as the spec says.
            }
            let Some(sig) = blob.get(4..) else { continue };
            UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(body.as_bytes(), sig)
                .map_err(|_| CheckpointError::BadSignature(self.name.clone()))?;
            verified = true;
        }
        if !verified {
            return Err(CheckpointError::NotSigned(self.name.clone()));
        }
        Ok(body)
    }
}

/// A number in its one canonical spelling (tlog-checkpoint, tlog-witness): decimal digits, no
/// sign, no leading zero.
pub fn canonical_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// A checkpoint's body: origin, size, root.
fn parse_checkpoint(body: &str) -> Result<Checkpoint, CheckpointError> {
    let mut lines = body.lines();
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or(CheckpointError::Malformed("no origin line"))?;
    let size = lines
        .next()
        .and_then(canonical_decimal)
        .ok_or(CheckpointError::Malformed("no tree size line"))?;
    let root: Hash = lines
        .next()
        .and_then(|r| B64.decode(r).ok())
        .and_then(|r| r.try_into().ok())
        .ok_or(CheckpointError::Malformed("no root hash line"))?;
    let extensions = lines.filter(|l| !l.is_empty()).map(str::to_owned).collect();
    Ok(Checkpoint {
        origin: origin.into(),
        size,
        root,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> LogKey {
        LogKey::from_seed("gateway.example/disclosures", &[seed; 32]).unwrap()
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let k = key(1);
        let c = Checkpoint {
            origin: "gateway.example/disclosures".into(),
            size: 42,
            root: [7; 32],
            extensions: Vec::new(),
        };
        let note = k.sign(&c);
        assert!(note.starts_with("gateway.example/disclosures\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\u{2014} gateway.example/disclosures "));
        let v = NoteVerifier::from_vkey(&k.vkey()).unwrap();
        assert_eq!(v.verify(&note).unwrap(), c);
        // A changed size or root fails.
        assert!(v.verify(&note.replace("\n42\n", "\n43\n")).is_err());
    }

    #[test]
    fn another_key_is_rejected() {
        let c = Checkpoint {
            origin: "o".into(),
            size: 1,
            root: [0; 32],
            extensions: Vec::new(),
        };
        let forged = key(2).sign(&c);
        let v = NoteVerifier::from_vkey(&key(1).vkey()).unwrap();
        // Same name, same key id would be needed to even try the signature: a key of the same
        // name but another secret has another id, so the note is simply not signed by ours.
        assert_eq!(
            v.verify(&forged),
            Err(CheckpointError::NotSigned(
                "gateway.example/disclosures".into()
            ))
        );
    }

    #[test]
    fn key_id_follows_the_spec() {
        let k = key(3);
        let pk = k.pair.public_key().as_ref().to_vec();
        let mut h = Sha256::new();
        h.update(b"gateway.example/disclosures\n\x01");
        h.update(&pk);
        assert_eq!(&h.finalize()[..4], &k.id);
    }
}

/// The log's verifier keys: the current one and every retired one (after a rotation), so that
/// checkpoints signed before a rotation still verify.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<NoteVerifier>,
}

impl KeySet {
    /// From verifiers.
    pub fn new(keys: Vec<NoteVerifier>) -> Result<KeySet, CheckpointError> {
        if keys.is_empty() {
            return Err(CheckpointError::Key("no verifier key".into()));
        }
        Ok(KeySet { keys })
    }

    /// From text with one `vkey` per line (blank lines and `#` comments ignored).
    pub fn parse(text: &str) -> Result<KeySet, CheckpointError> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(NoteVerifier::from_vkey)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The keys, as `vkey` strings.
    pub fn vkeys(&self) -> Vec<String> {
        self.keys.iter().map(NoteVerifier::vkey_string).collect()
    }

    /// Whether `vkey` is one of the set.
    pub fn contains(&self, vkey: &str) -> bool {
        self.keys.iter().any(|k| k.vkey_string() == vkey.trim())
    }

    /// Verifies any note (a receipt) signed by a key of the set; returns its body.
    pub fn verify_body(&self, note: &str) -> Result<String, CheckpointError> {
        let mut last = None;
        for k in &self.keys {
            match k.verify_body(note) {
                Ok(b) => return Ok(b),
                Err(CheckpointError::NotSigned(_)) => {}
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            CheckpointError::NotSigned(
                self.keys
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            )
        }))
    }

    /// Verifies a note signed by at least one key of the set; a signature of a key of the set
    /// that does not verify fails it. Returns the checkpoint and the `vkey` of each signer.
    pub fn verify(&self, note: &str) -> Result<(Checkpoint, Vec<String>), CheckpointError> {
        let mut found = None;
        let mut signers = Vec::new();
        for k in &self.keys {
            match k.verify(note) {
                Ok(c) => {
                    signers.push(k.vkey_string());
                    found = Some(c);
                }
                Err(CheckpointError::NotSigned(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let names: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
        found
            .map(|c| (c, signers))
            .ok_or_else(|| CheckpointError::NotSigned(names.join(" or ")))
    }
}

#[cfg(test)]
mod keyset_tests {
    use super::*;

    #[test]
    fn a_rotated_key_still_verifies_the_checkpoints_it_signed() {
        let old = LogKey::from_seed("gw/disclosures", &[1; 32]).unwrap();
        let new = LogKey::from_seed("gw/disclosures", &[2; 32]).unwrap();
        let c = Checkpoint {
            origin: "gw/disclosures".into(),
            size: 3,
            root: [4; 32],
            extensions: Vec::new(),
        };
        let set = KeySet::parse(&format!("# current\n{}\n\n{}\n", new.vkey(), old.vkey())).unwrap();
        let (got, signers) = set.verify(&old.sign(&c)).unwrap();
        assert_eq!((got, signers), (c.clone(), vec![old.vkey()]));
        assert_eq!(set.verify(&new.sign(&c)).unwrap().1, vec![new.vkey()]);
        let stranger = LogKey::from_seed("gw/disclosures", &[3; 32]).unwrap();
        assert!(matches!(
            set.verify(&stranger.sign(&c)),
            Err(CheckpointError::NotSigned(_))
        ));
        assert!(KeySet::parse("# nothing\n").is_err());
        assert!(set.contains(&old.vkey()) && !set.contains(&stranger.vkey()));
    }
}
