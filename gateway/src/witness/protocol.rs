//! The C2SP `tlog-witness` protocol's `add-checkpoint` decision, pure: the request parsed, the
//! log's signature checked, consistency with the last cosigned checkpoint checked. The server
//! around it persists the outcome atomically.

use crate::log::checkpoint::{Checkpoint, CheckpointError, NoteVerifier, canonical_decimal};
use crate::log::merkle::{Hash, verify_consistency};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// At most this many proof lines (the protocol's bound).
const MAX_PROOF: usize = 63;

/// An `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the submitter believes the witness last cosigned.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

/// Why a checkpoint is not cosigned, with the protocol's status for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The body is not an `add-checkpoint` request (400).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The old size exceeds the checkpoint's (400).
    #[error("the old size {0} exceeds the checkpoint's size {1}")]
    OldAboveNew(u64, u64),
    /// The witness does not follow this log (404).
    #[error("unknown log origin")]
    UnknownOrigin,
    /// No valid signature of a key the witness trusts for the origin (403).
    #[error("not signed by the log: {0}")]
    NotSigned(String),
    /// The old size is not what this witness last cosigned (409, with that size).
    #[error("the witness last cosigned size {0}")]
    Conflict(u64),
    /// The proof does not verify, or a same-size checkpoint has another root (422): evidence
    /// of a fork when the log signed it.
    #[error("not consistent with the checkpoint of size {0} this witness cosigned")]
    Inconsistent(u64),
}

impl Refused {
    /// The HTTP status the protocol gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refused::Malformed(_) | Refused::OldAboveNew(..) => 400,
            Refused::UnknownOrigin => 404,
            Refused::NotSigned(_) => 403,
            Refused::Conflict(_) => 409,
            Refused::Inconsistent(_) => 422,
        }
    }
}

/// Parses the request body: `old N\n`, proof lines, an empty line, the checkpoint.
pub fn parse(body: &str) -> Result<AddCheckpoint, Refused> {
    let (head, note) = body
        .split_once("\n\n")
        .ok_or(Refused::Malformed("no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(canonical_decimal)
        .ok_or(Refused::Malformed("the first line is `old <size>`"))?;
    let mut proof = Vec::new();
    for l in lines {
        if proof.len() == MAX_PROOF {
            return Err(Refused::Malformed("more than 63 proof lines"));
        }
        let h: Hash =
            B64.decode(l)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(Refused::Malformed(
                    "a proof line is one base64 SHA-256 hash",
                ))?;
        proof.push(h);
    }
    Ok(AddCheckpoint {
        old,
        proof,
        note: note.to_owned(),
    })
}

/// Longest extension line a witness takes.
const MAX_EXTENSION: usize = 1024;

/// The checkpoint's body as the log signed it (every line up to the empty line, each ended by
/// a newline), if it is in the one canonical form of C2SP signed-note and tlog-checkpoint: no
/// control character but the newline; a non-empty origin; the size in decimal without sign or
/// leading zero; the root as the standard padded base64 of 32 bytes; extension lines non-empty.
/// Two spellings of one tree are never both cosigned.
pub fn canonical_body(note: &str) -> Result<&str, Refused> {
    let end = note
        .find("\n\n")
        .ok_or(Refused::Malformed("no empty line after the checkpoint"))?;
    let body = note
        .get(..=end)
        .ok_or(Refused::Malformed("no empty line after the checkpoint"))?;
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Refused::Malformed(
            "a control character other than newline in the note",
        ));
    }
    let mut lines = body.strip_suffix('\n').unwrap_or(body).split('\n');
    let origin = lines.next().unwrap_or_default();
    if origin.is_empty() || origin.trim() != origin {
        return Err(Refused::Malformed("the origin line is empty or padded"));
    }
    if lines.next().and_then(canonical_decimal).is_none() {
        return Err(Refused::Malformed(
            "the size line is a decimal number without sign or leading zero",
        ));
    }
    let root = lines.next().unwrap_or_default();
    let decoded: Option<Hash> = B64.decode(root).ok().and_then(|b| b.try_into().ok());
    if decoded.is_none_or(|h| B64.encode(h) != root) {
        return Err(Refused::Malformed(
            "the root line is the padded base64 of a SHA-256 hash",
        ));
    }
    for ext in lines {
        if ext.is_empty() || ext.len() > MAX_EXTENSION {
            return Err(Refused::Malformed("an extension line is empty or too long"));
        }
    }
    Ok(body)
}

/// The origin line of a note, before any signature is checked (to find the log's keys).
pub fn origin(note: &str) -> Option<&str> {
    note.split('\n').next().filter(|o| !o.is_empty())
}

/// The SHA-256 of an origin, lower-case hex: the monitoring URL's path segment.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// Decides a request against the log's keys and what this witness last cosigned for it
/// (`None`: nothing yet). Returns the checkpoint to cosign and persist.
pub fn decide(
    req: &AddCheckpoint,
    log_keys: &[NoteVerifier],
    last: Option<(u64, Hash)>,
) -> Result<Checkpoint, Refused> {
    let mut checked = None;
    let mut last_error = None;
    for k in log_keys {
        match k.verify(&req.note) {
            Ok(c) => {
                checked = Some(c);
                break;
            }
            // A line of a trusted key that does not verify makes the note malformed: refused
            // even if another trusted key's line would verify.
            Err(e @ CheckpointError::BadSignature(_)) => {
                return Err(Refused::NotSigned(e.to_string()));
            }
            Err(e) => last_error = Some(e),
        }
    }
    let c = checked.ok_or_else(|| {
        Refused::NotSigned(last_error.map_or_else(|| "no key".into(), |e| e.to_string()))
    })?;
    if req.old > c.size {
        return Err(Refused::OldAboveNew(req.old, c.size));
    }
    let (last_size, last_root) = last.unwrap_or((0, empty_root()));
    if req.old != last_size {
        return Err(Refused::Conflict(last_size));
    }
    if c.size == 0 && c.root != empty_root() {
        return Err(Refused::Inconsistent(0));
    }
    if req.old == 0 {
        if !req.proof.is_empty() {
            return Err(Refused::Inconsistent(0));
        }
        return Ok(c);
    }
    if !verify_consistency(req.old, c.size, &last_root, &c.root, &req.proof) {
        return Err(Refused::Inconsistent(last_size));
    }
    Ok(c)
}

/// The root of the empty tree: SHA-256 of nothing (RFC 6962).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::checkpoint::LogKey;
    use crate::log::merkle::{consistency_proof, leaf_hash, root};

    const ORIGIN: &str = "gw.example/disclosures";

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    fn note(key: &LogKey, l: &[Hash]) -> String {
        key.sign(&Checkpoint {
            origin: ORIGIN.into(),
            size: l.len() as u64,
            root: root(l),
            extensions: Vec::new(),
        })
    }

    fn request(old: usize, l: &[Hash], key: &LogKey) -> String {
        let mut body = format!("old {old}\n");
        if old > 0 {
            for h in consistency_proof(l, old) {
                body.push_str(&B64.encode(h));
                body.push('\n');
            }
        }
        body.push('\n');
        body.push_str(&note(key, l));
        body
    }

    #[test]
    fn the_protocol_from_first_checkpoint_to_fork() {
        let key = LogKey::from_seed(ORIGIN, &[1; 32]).unwrap();
        let keys = [NoteVerifier::from_vkey(&key.vkey()).unwrap()];
        let l = leaves(10);
        // First contact: old 0, no proof.
        let first = &l[..4];
        let r = parse(&request(0, first, &key)).unwrap();
        let c = decide(&r, &keys, None).unwrap();
        assert_eq!(c.size, 4);
        // Growing with a valid proof.
        let r = parse(&request(4, &l, &key)).unwrap();
        assert_eq!(decide(&r, &keys, Some((4, c.root))).unwrap().size, 10);
        // The wrong old size: 409 with the size the witness holds.
        let r = parse(&request(3, &l, &key)).unwrap();
        assert_eq!(
            decide(&r, &keys, Some((4, c.root))),
            Err(Refused::Conflict(4))
        );
        assert_eq!(Refused::Conflict(4).status(), 409);
        // A fork: an entry changed and every hash recomputed, signed by the log: 422.
        let mut forked = l.clone();
        forked[2] = leaf_hash(b"changed");
        let r = parse(&request(4, &forked, &key)).unwrap();
        assert_eq!(
            decide(&r, &keys, Some((4, c.root))),
            Err(Refused::Inconsistent(4))
        );
        // Same size, other root: 422.
        let r = parse(&request(4, &forked[..4], &key)).unwrap();
        assert!(decide(&r, &keys, Some((4, c.root))).is_err());
        // Another key: 403.
        let other = LogKey::from_seed(ORIGIN, &[2; 32]).unwrap();
        let r = parse(&request(0, first, &other)).unwrap();
        assert_eq!(decide(&r, &keys, None).unwrap_err().status(), 403);
        // Old above new: 400.
        let r = parse(&format!("old 11\n\n{}", note(&key, &l))).unwrap();
        assert_eq!(
            decide(&r, &keys, Some((4, c.root))).unwrap_err().status(),
            400
        );
    }

    /// Issue 30: extension lines were not cosigned, and a size with a sign or leading zero, or
    /// a control character in an extension line, was taken. Only the canonical form is, and the
    /// whole body is what the cosignature covers.
    #[test]
    fn only_the_canonical_form_is_taken_and_extension_lines_are_cosigned() {
        let key = LogKey::from_seed(ORIGIN, &[1; 32]).unwrap();
        let l = leaves(4);
        let r = B64.encode(root(&l));
        let body = format!("{ORIGIN}\n4\n{r}\nsubject-index AAAA\n");
        let note = key.sign_body(&body);
        assert_eq!(canonical_body(&note), Ok(body.as_str()));
        // The log's signature covers the extension line; so does the witness's cosignature.
        let keys = [NoteVerifier::from_vkey(&key.vkey()).unwrap()];
        let req = AddCheckpoint {
            old: 0,
            proof: vec![],
            note: note.clone(),
        };
        assert_eq!(decide(&req, &keys, None).unwrap().size, 4);
        let w = crate::log::cosign::Cosigner::from_seed("witness.example", &[3; 32]).unwrap();
        let line = w.cosign(&body, 1_800_000_000);
        let verifier = crate::log::cosign::CosignVerifier::from_vkey(&w.vkey()).unwrap();
        assert_eq!(
            verifier.verify(&format!("{note}{line}")).unwrap(),
            Some(1_800_000_000)
        );
        let without = format!("{ORIGIN}\n4\n{r}\n\n{line}");
        assert!(verifier.verify(&without).map_or(true, |t| t.is_none()));
        for bad in [
            format!("{ORIGIN}\n+4\n{r}\n"),
            format!("{ORIGIN}\n04\n{r}\n"),
            format!("{ORIGIN}\n4\n{r}\nx\u{0}y\n"),
            format!("{ORIGIN}\n4\n{r}\nx\ty\n"),
            format!("{ORIGIN}\n4\n{}\n", r.trim_end_matches('=')),
            format!(" {ORIGIN}\n4\n{r}\n"),
        ] {
            let note = key.sign_body(&bad);
            assert!(
                matches!(canonical_body(&note), Err(Refused::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    proptest::proptest! {
        /// Any note body a witness takes is the one canonical spelling of its tree: changing one
        /// character of a canonical body gives a body that is refused or names another tree,
        /// never a second spelling of the same one (issue 30).
        #[test]
        fn no_second_spelling_of_a_tree_is_taken(
            line in 0usize..4,
            at in 0usize..64,
            c in proptest::sample::select(vec!['0', '4', '+', '-', ' ', '\t', '\0', '=', 'A', '/', 'x', '\u{a0}', '\r']),
            insert in proptest::prelude::any::<bool>(),
        ) {
            let key = LogKey::from_seed(ORIGIN, &[1; 32]).unwrap();
            let r = B64.encode(root(&leaves(4)));
            let body = format!("{ORIGIN}\n4\n{r}\next line\n");
            let mut chars: Vec<char> = body.chars().collect();
            // A place in one of the lines (its start most often: where a sign or zero goes).
            let starts: Vec<usize> = std::iter::once(0)
                .chain(chars.iter().enumerate().filter(|(_, c)| **c == '\n').map(|(i, _)| i + 1))
                .collect();
            let start = starts.get(line).copied().unwrap_or(0);
            let i = (start + if at < 32 { 0 } else { at % 8 }).min(chars.len() - 1);
            if insert {
                chars.insert(i, c);
            } else if let Some(x) = chars.get_mut(i) {
                *x = c;
            }
            let changed: String = chars.into_iter().collect();
            proptest::prop_assume!(changed != body && changed.ends_with('\n') && !changed.contains("\n\n"));
            let note = key.sign_body(&changed);
            if let Ok(taken) = canonical_body(&note) {
                let parsed = |b: &str| {
                    let mut l = b.lines();
                    (l.next().map(str::to_owned), l.next().and_then(|s| s.parse::<u64>().ok()), l.next().and_then(|s| B64.decode(s).ok()))
                };
                // Taken: then it is a different tree (origin, size or root), or only its
                // extension lines differ, which the cosignature covers as they are.
                let (a, b) = (parsed(taken), parsed(&body));
                let same_tree = a == b;
                let head_lines = |t: &str| t.lines().take(3).collect::<Vec<_>>().join("\n");
                proptest::prop_assert!(!same_tree || head_lines(taken) == head_lines(&body), "{taken:?}");
            }
        }
    }

    #[test]
    fn malformed_requests() {
        for bad in [
            "",
            "old 1\n",
            "new 1\n\nx",
            "old 01\n\nx",
            "old 1\nnot-base64\n\nx",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let many = format!(
            "old 1\n{}\nx",
            format!("{}\n", B64.encode([0u8; 32])).repeat(64)
        );
        assert_eq!(
            parse(&many),
            Err(Refused::Malformed("more than 63 proof lines"))
        );
        assert_eq!(origin("o.example/log\n1\n"), Some("o.example/log"));
    }
}

/// The C2SP specifications' own examples, byte for byte (issue 30: no independent witness
/// implementation can be built here, so the spec's example exchanges stand in for one).
#[cfg(test)]
mod spec_examples {
    use super::*;

    /// c2sp.org/signed-note, "Example": this vkey verifies this note.
    #[test]
    fn the_signed_note_example_verifies() {
        let v = NoteVerifier::from_vkey(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        assert_eq!(
            v.verify_body(note).unwrap(),
            "This is an example message.\n"
        );
        // One byte of the text changed: no longer.
        assert!(
            v.verify_body(&note.replace("example message", "example massage"))
                .is_err()
        );
    }

    /// c2sp.org/tlog-witness, the example `add-checkpoint` request body: parsed as the spec
    /// writes it (old size, four proof lines, the checkpoint with two signatures), its
    /// checkpoint in the canonical form, and not taken as signed by a key of another log (the
    /// spec gives no key for `example.com/behind-the-sofa` to verify against).
    #[test]
    fn the_tlog_witness_example_request_parses_and_no_key_of_ours_signed_it() {
        let body = "old 20852014\n\
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
\n\
example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
\u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";
        let req = parse(body).unwrap();
        assert_eq!(req.old, 20_852_014);
        assert_eq!(req.proof.len(), 4);
        assert_eq!(
            B64.encode(req.proof[0]),
            "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw="
        );
        assert_eq!(
            canonical_body(&req.note).unwrap(),
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        assert_eq!(origin(&req.note), Some("example.com/behind-the-sofa"));
        // Checked against a key the witness trusts for some other log, nothing verifies: the
        // spec's 403 (a witness that does not follow the origin at all answers 404 before this;
        // the e2e test `witness::the_spec_example_request_is_404_at_a_witness_of_another_log`).
        let ours =
            crate::log::checkpoint::LogKey::from_seed("gw.example/disclosures", &[1; 32]).unwrap();
        let keys = [NoteVerifier::from_vkey(&ours.vkey()).unwrap()];
        assert_eq!(decide(&req, &keys, None).unwrap_err().status(), 403);
    }
}
