//! Secrets of the gateway itself: the age identity that protects data at rest, and the keys
//! behind subject pseudonyms.

use hmac::{Hmac, Mac};
use policy::{Bsn, PseudonymKey};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A key or secret file that cannot be used, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct KeyFileError {
    /// The file (or the covenant entry).
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl KeyFileError {
    /// A problem with `path`.
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        KeyFileError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Encryption at rest failed.
#[derive(Debug, thiserror::Error)]
#[error("encryption at rest failed: {0}")]
pub struct SealError(String);

/// The storage key ring: the first key of the identity file seals, every key in it opens. A
/// rotation puts a new key first; the old ones stay until nothing sealed with them is left.
pub struct StorageKeys {
    identities: Vec<age::x25519::Identity>,
    ids: Vec<String>,
    recipient: age::x25519::Recipient,
}

impl StorageKeys {
    /// A ring of these identities, the first one current; `None` when there is none.
    pub fn new(identities: Vec<age::x25519::Identity>) -> Option<StorageKeys> {
        let recipient = identities.first()?.to_public();
        let ids = identities
            .iter()
            .map(|i| storage_key_id(&i.to_public()))
            .collect();
        Some(StorageKeys {
            identities,
            ids,
            recipient,
        })
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        self.ids.first().map_or("", String::as_str)
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Every key's public half (`age1…`), in the ring's order.
    pub fn recipients(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|i| i.to_public().to_string())
            .collect()
    }
}

/// A storage key's id: `st-` and 12 hex digits of the SHA-256 of its public key, stored beside
/// every row it seals (never the key itself).
pub fn storage_key_id(recipient: &age::x25519::Recipient) -> String {
    use sha2::Digest;
    let d = Sha256::digest(recipient.to_string().as_bytes());
    format!("st-{}", hex::encode(d.get(..6).unwrap_or_default()))
}

/// Sealed bytes and the id of the key that sealed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The age ciphertext.
    pub bytes: Vec<u8>,
    /// The storage key's id.
    pub key: String,
}

/// Reads every age X25519 identity of a file, in order (the storage key ring).
pub fn read_age_identities(path: &Path) -> Result<Vec<age::x25519::Identity>, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError::new(path, e.to_string()))?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(|l| {
            age::x25519::Identity::from_str(l).map_err(|e| KeyFileError::new(path, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(KeyFileError::new(
            path,
            "no AGE-SECRET-KEY line; make one with `age-keygen -o FILE`",
        ));
    }
    Ok(keys)
}

/// Most pseudonym keys in use at once: each search looks a person up under every one.
pub const MAX_PSEUDONYM_KEYS: usize = 4;

/// One pseudonym key: the master secret partner keys are derived from, and the subject key.
struct PseudonymEntry {
    id: String,
    /// Zeroed when dropped, never printed.
    master: SecretSlice<u8>,
    subject: PseudonymKey,
}

/// The pseudonym key ring: the first key makes new pseudonyms (subjects, and what partners
/// receive from `pseudonymize`); every key still finds a person in the log and the register.
pub struct PseudonymKeys {
    entries: Vec<PseudonymEntry>,
}

fn hmac_of(key: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256>>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => <Hmac<Sha256>>::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable_hmac()),
    };
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl PseudonymKeys {
    /// A ring of these master secrets, the first one current; `None` when there is none.
    pub fn new(masters: Vec<Vec<u8>>) -> Option<PseudonymKeys> {
        if masters.is_empty() {
            return None;
        }
        let entries = masters
            .into_iter()
            .map(|m| {
                let id = format!(
                    "ps-{}",
                    hex::encode(
                        hmac_of(&m, b"ipga-r/key-id/v1")
                            .get(..6)
                            .unwrap_or_default()
                    )
                );
                let subject = PseudonymKey::from_secret(&hmac_of(&m, b"ipga-r/subject/v1"));
                PseudonymEntry {
                    id,
                    master: SecretSlice::from(m),
                    subject,
                }
            })
            .collect();
        Some(PseudonymKeys { entries })
    }

    /// The id of the key that makes new pseudonyms (`ps-` and 12 hex digits of a keyed hash:
    /// it names the key without revealing it).
    pub fn current(&self) -> &str {
        self.entries.first().map_or("", |e| e.id.as_str())
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.id.clone()).collect()
    }
}

/// Reads the pseudonym key ring: one key per line (at least 32 bytes as hex), the first
/// current; `#` lines are comments.
pub fn read_pseudonym_keys(path: &Path) -> Result<Vec<Vec<u8>>, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError::new(path, e.to_string()))?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            hex::decode(l).ok().filter(|k| k.len() >= 32).ok_or_else(|| {
                KeyFileError::new(
                    path,
                    "expected at least 32 bytes as hex per line; make one with `openssl rand -hex 32`",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(KeyFileError::new(
            path,
            "no key; make one with `openssl rand -hex 32`",
        ));
    }
    if keys.len() > MAX_PSEUDONYM_KEYS {
        return Err(KeyFileError::new(
            path,
            format!(
                "{} keys; at most {MAX_PSEUDONYM_KEYS} are in use at once: remove the oldest once `gateway keys status` shows it unused",
                keys.len()
            ),
        ));
    }
    Ok(keys)
}

/// The gateway's own secrets.
pub struct Secrets {
    storage: arc_swap::ArcSwap<StorageKeys>,
    pseudonyms: arc_swap::ArcSwap<PseudonymKeys>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(<secret>)")
    }
}

/// Reads an age X25519 identity file (as written by `age-keygen`).
pub fn read_age_identity(path: &Path) -> Result<age::x25519::Identity, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError::new(path, e.to_string()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| {
            KeyFileError::new(
                path,
                "no AGE-SECRET-KEY line; make one with `age-keygen -o FILE`",
            )
        })?;
    age::x25519::Identity::from_str(line).map_err(|e| KeyFileError::new(path, e.to_string()))
}

impl Secrets {
    /// Loads both secret files.
    pub fn load(storage_identity: &Path, pseudonym_key: &Path) -> Result<Self, Vec<KeyFileError>> {
        let mut problems = Vec::new();
        let storage = read_age_identities(storage_identity)
            .map_err(|e| problems.push(e))
            .ok()
            .and_then(StorageKeys::new);
        let pseudonyms = read_pseudonym_keys(pseudonym_key)
            .map_err(|e| problems.push(e))
            .ok()
            .and_then(PseudonymKeys::new);
        match (storage, pseudonyms) {
            (Some(storage), Some(pseudonyms)) if problems.is_empty() => Ok(Secrets {
                storage: arc_swap::ArcSwap::from_pointee(storage),
                pseudonyms: arc_swap::ArcSwap::from_pointee(pseudonyms),
            }),
            _ => Err(problems),
        }
    }

    /// From loaded parts (tests): one storage key, one pseudonym key.
    pub fn from_parts(storage: age::x25519::Identity, pseudonym_master: Vec<u8>) -> Self {
        match (
            StorageKeys::new(vec![storage]),
            PseudonymKeys::new(vec![pseudonym_master]),
        ) {
            (Some(storage), Some(pseudonyms)) => Secrets {
                storage: arc_swap::ArcSwap::from_pointee(storage),
                pseudonyms: arc_swap::ArcSwap::from_pointee(pseudonyms),
            },
            _ => unreachable_ring(),
        }
    }

    /// The current master secret partner pseudonym keys are derived from (a copy, zeroed when
    /// dropped).
    pub fn pseudonym_master(&self) -> SecretSlice<u8> {
        let ring = self.pseudonyms.load();
        SecretSlice::from(
            ring.entries
                .first()
                .map(|e| e.master.expose_secret().to_vec())
                .unwrap_or_default(),
        )
    }

    /// The subject pseudonym the gateway stores and logs instead of the BSN (current key).
    pub fn subject_pseudonym(&self, bsn: &Bsn) -> String {
        let ring = self.pseudonyms.load();
        ring.entries
            .first()
            .map(|e| e.subject.pseudonym(bsn.expose().as_bytes()))
            .unwrap_or_default()
    }

    /// The subject's pseudonym under every key of the ring, the current one first: what a
    /// search for the person looks for.
    pub fn subject_pseudonyms(&self, bsn: &Bsn) -> Vec<String> {
        let ring = self.pseudonyms.load();
        ring.entries
            .iter()
            .map(|e| e.subject.pseudonym(bsn.expose().as_bytes()))
            .collect()
    }

    /// The subject's pseudonym under the current key, and that key's id.
    pub fn subject_pseudonym_keyed(&self, bsn: &Bsn) -> (String, String) {
        let ring = self.pseudonyms.load();
        (
            ring.entries
                .first()
                .map(|e| e.subject.pseudonym(bsn.expose().as_bytes()))
                .unwrap_or_default(),
            ring.current().to_owned(),
        )
    }

    /// The pseudonym key ring in use.
    pub fn pseudonyms(&self) -> arc_swap::Guard<std::sync::Arc<PseudonymKeys>> {
        self.pseudonyms.load()
    }

    /// Puts a new pseudonym key ring in place; returns the one it replaces (to put back if
    /// what depends on it cannot follow).
    pub fn swap_pseudonyms(&self, ring: PseudonymKeys) -> std::sync::Arc<PseudonymKeys> {
        self.pseudonyms.swap(std::sync::Arc::new(ring))
    }

    /// Puts a ring returned by [`Secrets::swap_pseudonyms`] back.
    pub fn restore_pseudonyms(&self, ring: std::sync::Arc<PseudonymKeys>) {
        self.pseudonyms.store(ring);
    }

    /// Encrypts data at rest to the current storage key; says which key that was.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Sealed, SealError> {
        let ring = self.storage.load();
        let bytes =
            age::encrypt(&ring.recipient, plaintext).map_err(|e| SealError(e.to_string()))?;
        Ok(Sealed {
            bytes,
            key: ring.current().to_owned(),
        })
    }

    /// Decrypts data at rest with whichever key of the ring sealed it.
    pub fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, SealError> {
        let ring = self.storage.load();
        let decryptor = age::Decryptor::new(ciphertext).map_err(|e| SealError(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(ring.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| SealError(e.to_string()))?;
        let mut out = Vec::new();
        reader
            .read_to_end(&mut out)
            .map_err(|e| SealError(e.to_string()))?;
        Ok(out)
    }
}

impl Secrets {
    /// The storage key ring in use.
    pub fn storage(&self) -> arc_swap::Guard<std::sync::Arc<StorageKeys>> {
        self.storage.load()
    }

    /// Replaces the storage key ring (a rotation picked up while serving).
    pub fn replace_storage(&self, ring: StorageKeys) {
        self.storage.store(std::sync::Arc::new(ring));
    }
}

#[expect(
    clippy::panic,
    reason = "a ring of one given key is never empty: this is unreachable"
)]
#[cold]
fn unreachable_ring() -> ! {
    panic!("a storage key ring of one key was empty")
}

#[expect(
    clippy::panic,
    reason = "HMAC accepts keys of every length: this is unreachable"
)]
#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC rejected a key, which it never does")
}

impl Secrets {
    /// The seed of this gateway's register key towards another approach `asker` (the
    /// oblivious aanpak-check in the other direction, issue 38): derived from the pseudonym
    /// master key, so that each asking approach meets a key of its own and nothing new needs
    /// keeping. A pseudonym key rotation rotates these too.
    pub fn register_seed(&self, asker: &str) -> [u8; 32] {
        let master = self.pseudonym_master();
        let mut mac = match <Hmac<Sha256>>::new_from_slice(master.expose_secret()) {
            Ok(m) => m,
            // HMAC takes keys of any length; this branch cannot be taken.
            Err(_) => return [0; 32],
        };
        mac.update(b"iPGA-R register key v1\n");
        mac.update(asker.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_pseudonyms() {
        let s = Secrets::from_parts(age::x25519::Identity::generate(), vec![7u8; 32]);
        let sealed = s.seal(b"111222333").unwrap().bytes;
        assert!(!sealed.windows(9).any(|w| w == b"111222333"));
        assert_eq!(s.open(&sealed).unwrap(), b"111222333");
        let bsn = Bsn::parse("111222333").unwrap();
        assert_eq!(s.subject_pseudonym(&bsn), s.subject_pseudonym(&bsn));
        assert_ne!(
            s.subject_pseudonym(&bsn),
            s.subject_pseudonym(&Bsn::parse("123456782").unwrap())
        );
        // Subject pseudonyms differ from what any partner would receive for the same BSN.
        assert_ne!(
            s.subject_pseudonym(&bsn),
            PseudonymKey::derive(s.pseudonym_master().expose_secret(), "politie")
                .pseudonym(b"111222333")
        );
    }
}
