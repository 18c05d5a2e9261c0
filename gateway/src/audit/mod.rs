//! The tamper-evident disclosure log: every disclosure record is a leaf of an RFC 6962 Merkle tree
//! and a link of a hash chain.

pub mod api;
pub mod checkpoint;
pub mod merkle;
pub mod officer;
pub mod verify;
pub mod writer;

use merkle::{Hash, leaf_hash};
use sha2::{Digest, Sha256};

/// The chain value before the first entry.
pub const GENESIS: Hash = [0; 32];

/// `SHA-256(previous || leaf)`.
pub fn chain_hash(previous: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(leaf);
    h.finalize().into()
}

/// The hashes of a batch of entries appended after a log of `size` entries whose last chain
/// value is `chain`: per entry its sequence number, leaf hash and chain hash.
pub fn link(size: i64, chain: Hash, entries: &[&str]) -> Vec<(i64, Hash, Hash)> {
    let mut prev = chain;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let leaf = leaf_hash(e.as_bytes());
            prev = chain_hash(&prev, &leaf);
            (size + 1 + i as i64, leaf, prev)
        })
        .collect()
}

/// Parses a stored hex hash.
pub fn parse_hash(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}
