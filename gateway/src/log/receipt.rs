//! Signed receipts: the gateway's promise, signed with the log key, that the entry recording an
//! answer is leaf `seq` with this hash and will be in a signed checkpoint by `due`. A partner
//! keeps them (they hold no content) and its monitor checks each against the log.
//!
//! A receipt is a C2SP signed note whose body cannot be read as a checkpoint (its second line is
//! not a tree size), so that a witness or verifier can never take one for the other:
//!
//! ```text
//! gateway.ipga-r.example/disclosures/receipt/v1
//! seq 42
//! leaf <base64 SHA-256 leaf hash>
//! due <unix seconds>
//!
//! — gateway.ipga-r.example/disclosures <base64 signature>
//! ```

use super::checkpoint::{CheckpointError, KeySet, LogKey};
use super::merkle::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The first line's suffix after the log's origin.
const SUFFIX: &str = "/receipt/v1";

/// What a receipt promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The log's origin.
    pub origin: String,
    /// The entry's sequence number (leaf index + 1).
    pub seq: u64,
    /// Its leaf hash.
    pub leaf: Hash,
    /// Unix time by which a signed checkpoint includes it.
    pub due: i64,
}

/// Why a receipt is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The signature is not the log's.
    #[error("{0}")]
    Signature(#[from] CheckpointError),
    /// The body is not a receipt.
    #[error("not a receipt: {0}")]
    Malformed(&'static str),
}

impl Receipt {
    /// The signed note body.
    pub fn body(&self) -> String {
        format!(
            "{}{SUFFIX}\nseq {}\nleaf {}\ndue {}\n",
            self.origin,
            self.seq,
            B64.encode(self.leaf),
            self.due
        )
    }

    /// Signs it with the log key.
    pub fn sign(&self, key: &LogKey) -> String {
        key.sign_body(&self.body())
    }

    /// Verifies a receipt note against the log's keys and parses it.
    pub fn verify(note: &str, keys: &KeySet) -> Result<Receipt, ReceiptError> {
        let body = keys.verify_body(note)?;
        let mut lines = body.lines();
        let origin = lines
            .next()
            .and_then(|l| l.strip_suffix(SUFFIX))
            .filter(|o| !o.is_empty())
            .ok_or(ReceiptError::Malformed("no `<origin>/receipt/v1` line"))?;
        let mut field = |name: &'static str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or(ReceiptError::Malformed("a line is missing"))
        };
        let seq = field("seq")?
            .parse()
            .map_err(|_| ReceiptError::Malformed("seq"))?;
        let leaf = B64
            .decode(field("leaf")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(ReceiptError::Malformed("leaf"))?;
        let due = field("due")?
            .parse()
            .map_err(|_| ReceiptError::Malformed("due"))?;
        Ok(Receipt {
            origin: origin.to_owned(),
            seq,
            leaf,
            due,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::checkpoint::NoteVerifier;

    fn keys() -> (LogKey, KeySet) {
        let k = LogKey::from_seed("gw.example/disclosures", &[4; 32]).unwrap();
        let set = KeySet::new(vec![NoteVerifier::from_vkey(&k.vkey()).unwrap()]).unwrap();
        (k, set)
    }

    #[test]
    fn a_receipt_round_trips_and_is_never_a_checkpoint() {
        let (k, set) = keys();
        let r = Receipt {
            origin: "gw.example/disclosures".into(),
            seq: 42,
            leaf: [9; 32],
            due: 1_800_000_000,
        };
        let note = r.sign(&k);
        assert!(note.starts_with("gw.example/disclosures/receipt/v1\nseq 42\nleaf "));
        assert_eq!(Receipt::verify(&note, &set).unwrap(), r);
        // Its signature verifies, but it does not parse as a checkpoint.
        assert!(set.verify(&note).is_err());
        // A changed promise fails.
        assert!(Receipt::verify(&note.replace("seq 42", "seq 43"), &set).is_err());
        // Another key's receipt fails.
        let other = LogKey::from_seed("gw.example/disclosures", &[5; 32]).unwrap();
        assert!(Receipt::verify(&r.sign(&other), &set).is_err());
        // A checkpoint is not a receipt.
        let cp = k.sign(&crate::log::checkpoint::Checkpoint {
            origin: "gw.example/disclosures".into(),
            size: 42,
            root: [9; 32],
            extensions: Vec::new(),
        });
        assert!(Receipt::verify(&cp, &set).is_err());
    }
}
