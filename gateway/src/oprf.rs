//! The oblivious aanpak-check (issue 38): a register learns that a check happened and nothing
//! about whom; the asker learns one bit, membership in the register's published set.
//!
//! RFC 9497's partially-oblivious PRF (POPRF) on ristretto255-SHA512, from the `voprf` crate,
//! kept behind this one module. The register holds the key. It publishes, once per epoch, the
//! PRF outputs of its members as a signed, padded set; an asker blinds a BSN, has the register
//! evaluate the blinded element (with a DLEQ proof against the register's pinned public key),
//! unblinds, and looks the output up in the set. The public input `info` names the register and
//! the epoch, so outputs of one epoch say nothing in the next, and without the key nobody can
//! compute an output from a BSN: the enumeration of the ~91 million valid BSNs that broke the
//! HMAC pseudonym needs one evaluation per guess at the register, under its quota.

use crate::log::checkpoint::{LogKey, NoteVerifier};
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeSet;
use voprf::{
    BlindedElement, EvaluationElement, Group, PoprfClient, PoprfServer, Proof, Ristretto255,
};

/// Bytes of a serialized group element (a blinded or evaluated element, a public key).
pub const ELEMENT_LEN: usize = 32;
/// Bytes of a serialized DLEQ proof.
pub const PROOF_LEN: usize = 64;
/// Bytes of a set member: the first half of the PRF's 64-byte output.
pub const MEMBER_LEN: usize = 32;
/// The smallest published set: fewer members are padded up to it.
pub const MIN_SET: usize = 64;

/// A member of a published set.
pub type Member = [u8; MEMBER_LEN];

/// What can go wrong in the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OprfError {
    /// A received element is not a valid, non-identity ristretto255 point.
    #[error("not a valid group element")]
    Element,
    /// A received proof does not parse.
    #[error("not a valid proof")]
    ProofFormat,
    /// The proof does not show that the register's pinned key made the evaluation.
    #[error("the evaluation's proof does not verify under the register's pinned key")]
    Proof,
    /// The key seed or public key is unusable.
    #[error("unusable key: {0}")]
    Key(&'static str),
    /// The input was refused by the PRF (it is never empty here).
    #[error("the PRF refused its input")]
    Input,
}

/// An epoch: a calendar month, `YYYY-MM` (UTC). Outputs are bound to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(String);

impl Epoch {
    /// The month `unix` falls in.
    pub fn of(unix: i64) -> Epoch {
        let t = time::OffsetDateTime::from_unix_timestamp(unix)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Epoch(format!("{:04}-{:02}", t.year(), u8::from(t.month())))
    }

    /// The month before this one.
    pub fn previous(&self) -> Epoch {
        let (y, m) = self.year_month();
        if m <= 1 {
            Epoch(format!("{:04}-12", y - 1))
        } else {
            Epoch(format!("{y:04}-{:02}", m - 1))
        }
    }

    fn year_month(&self) -> (i32, u32) {
        let (y, m) = self.0.split_once('-').unwrap_or(("1970", "01"));
        (y.parse().unwrap_or(1970), m.parse().unwrap_or(1))
    }

    /// Parses exactly `YYYY-MM` with a month of 01 to 12.
    pub fn parse(s: &str) -> Option<Epoch> {
        let (y, m) = s.split_once('-')?;
        let ok = y.len() == 4
            && m.len() == 2
            && y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
            && m.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m));
        ok.then(|| Epoch(s.to_owned()))
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this epoch is answered at `now`: this month, or the last while sets roll over.
    pub fn answered_at(&self, now: i64) -> bool {
        let current = Epoch::of(now);
        *self == current || *self == current.previous()
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The POPRF's public input for a register and an epoch.
pub fn info(approach: &str, epoch: &Epoch) -> Vec<u8> {
    format!("iPGA-R aanpak-check v1\n{approach}\n{epoch}").into_bytes()
}

/// The key's derivation label (RFC 9497 DeriveKeyPair `info`).
const KEY_INFO: &[u8] = b"iPGA-R approach register key v1";

/// A register's OPRF key, derived from a 32-byte secret seed.
pub struct RegisterKey {
    server: PoprfServer<Ristretto255>,
}

impl RegisterKey {
    /// The key a seed derives (RFC 9497 DeriveKeyPair).
    pub fn from_seed(seed: &[u8]) -> Result<RegisterKey, OprfError> {
        if seed.len() != 32 {
            return Err(OprfError::Key("a register key seed is 32 bytes"));
        }
        PoprfServer::new_from_seed(seed, KEY_INFO)
            .map(|server| RegisterKey { server })
            .map_err(|_| OprfError::Key("the seed derives no key"))
    }

    /// The public key, as the askers pin it.
    pub fn public(&self) -> [u8; ELEMENT_LEN] {
        let mut out = [0u8; ELEMENT_LEN];
        out.copy_from_slice(&Ristretto255::serialize_elem(self.server.get_public_key()));
        out
    }

    /// Evaluates a blinded element under `info`, with its proof. `rng` draws the proof's
    /// random scalar.
    pub fn evaluate_blinded<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        blinded: &[u8],
        info: &[u8],
    ) -> Result<([u8; ELEMENT_LEN], [u8; PROOF_LEN]), OprfError> {
        let element =
            BlindedElement::<Ristretto255>::deserialize(blinded).map_err(|_| OprfError::Element)?;
        let r = self
            .server
            .blind_evaluate(rng, &element, Some(info))
            .map_err(|_| OprfError::Input)?;
        let mut e = [0u8; ELEMENT_LEN];
        e.copy_from_slice(&r.message.serialize());
        let mut p = [0u8; PROOF_LEN];
        p.copy_from_slice(&r.proof.serialize());
        Ok((e, p))
    }

    /// The set member of one input under `info` (what `approach publish` lists).
    pub fn member(&self, input: &[u8], info: &[u8]) -> Result<Member, OprfError> {
        let out = self
            .server
            .evaluate(input, Some(info))
            .map_err(|_| OprfError::Input)?;
        Ok(member_of(&out))
    }
}

fn member_of(output: &[u8]) -> Member {
    let mut m = [0u8; MEMBER_LEN];
    for (d, s) in m.iter_mut().zip(output) {
        *d = *s;
    }
    m
}

/// An asker's blinded input, kept until the register answers.
pub struct Blinded {
    client: PoprfClient<Ristretto255>,
    message: [u8; ELEMENT_LEN],
}

impl Blinded {
    /// Blinds `input` with a fresh random scalar from `rng`.
    pub fn new<R: RngCore + CryptoRng>(input: &[u8], rng: &mut R) -> Result<Blinded, OprfError> {
        let r = PoprfClient::<Ristretto255>::blind(input, rng).map_err(|_| OprfError::Input)?;
        let mut message = [0u8; ELEMENT_LEN];
        message.copy_from_slice(&r.message.serialize());
        Ok(Blinded {
            client: r.state,
            message,
        })
    }

    /// What is sent to the register: a uniformly random-looking group element.
    pub fn message(&self) -> [u8; ELEMENT_LEN] {
        self.message
    }

    /// Verifies the register's proof against its pinned `public` key and unblinds: the set
    /// member `input` has under `info`.
    pub fn finish(
        &self,
        input: &[u8],
        evaluated: &[u8],
        proof: &[u8],
        public: &[u8],
        info: &[u8],
    ) -> Result<Member, OprfError> {
        let e = EvaluationElement::<Ristretto255>::deserialize(evaluated)
            .map_err(|_| OprfError::Element)?;
        let p = Proof::<Ristretto255>::deserialize(proof).map_err(|_| OprfError::ProofFormat)?;
        let pk = Ristretto255::deserialize_elem(public)
            .map_err(|_| OprfError::Key("the pinned public key is not a group element"))?;
        let out = self
            .client
            .finalize(input, &e, &p, pk, Some(info))
            .map_err(|_| OprfError::Proof)?;
        Ok(member_of(&out))
    }
}

/// The key name a register signs its published sets with.
pub fn set_key_name(approach: &str) -> String {
    format!("{approach}.register")
}

/// The Ed25519 key a register signs its sets with, derived from the same secret seed as its
/// OPRF key (one secret for the register's operator to keep).
pub fn set_signing_key(approach: &str, seed: &[u8]) -> Result<LogKey, OprfError> {
    use sha2::Digest;
    let derived = sha2::Sha256::new()
        .chain_update(b"iPGA-R approach register set key v1")
        .chain_update(seed)
        .finalize();
    LogKey::from_seed(&set_key_name(approach), &derived)
        .map_err(|_| OprfError::Key("the seed derives no signing key"))
}

/// What askers pin for a register with this seed: its POPRF public key (hex) and the verifier
/// key of its published sets.
pub fn pins(approach: &str, seed: &[u8]) -> Result<(String, String), OprfError> {
    let key = RegisterKey::from_seed(seed)?;
    let sign = set_signing_key(approach, seed)?;
    Ok((hex::encode(key.public()), sign.vkey()))
}

/// A register's published set for `epoch`: the members `inputs` give under the key `seed`
/// derives, padded with values from `rng`, valid from `issued` to `expires`; and the set as the
/// signed note askers fetch (what `gateway approach publish` writes).
pub fn publish<'a, R: RngCore + CryptoRng>(
    approach: &str,
    seed: &[u8],
    epoch: Epoch,
    (issued, expires): (i64, i64),
    inputs: impl IntoIterator<Item = &'a [u8]>,
    rng: &mut R,
) -> Result<(PublishedSet, String), OprfError> {
    let key = RegisterKey::from_seed(seed)?;
    let sign = set_signing_key(approach, seed)?;
    let i = info(approach, &epoch);
    let members = inputs
        .into_iter()
        .map(|input| key.member(input, &i))
        .collect::<Result<Vec<_>, _>>()?;
    let set = PublishedSet::new(approach, epoch, issued, expires, members, rng);
    let note = set.sign(&sign);
    Ok((set, note))
}

/// The first line of a published set.
pub const SET_HEADER: &str = "iPGA-R approach register set v1";

/// A register's published set for one epoch: its members' outputs, padded with random values to
/// a power of two (at least [`MIN_SET`]), so that its size says little more than an order of
/// magnitude.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedSet {
    /// The register (the covenant's approach id).
    pub approach: String,
    /// The epoch its members are computed under.
    pub epoch: Epoch,
    /// When it was made (unix seconds).
    pub issued: i64,
    /// After when askers must no longer use it.
    pub expires: i64,
    /// The members and the padding, indistinguishable.
    pub members: BTreeSet<Member>,
}

/// Why a published set is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Not signed by the register's pinned set key.
    #[error("the set is not signed by the register's pinned key")]
    Signature,
    /// Not the one form [`PublishedSet::body`] writes.
    #[error("the set is malformed: {0}")]
    Malformed(&'static str),
    /// For another register.
    #[error("the set is for another register")]
    OtherRegister,
    /// Past its expiry, or issued in the future.
    #[error("the set is stale (expired at {0})")]
    Stale(i64),
    /// Larger than the asker accepts.
    #[error("the set has more than {0} members")]
    Oversized(usize),
}

impl PublishedSet {
    /// A set of `members` padded with values from `rng`.
    pub fn new<R: RngCore + CryptoRng>(
        approach: &str,
        epoch: Epoch,
        issued: i64,
        expires: i64,
        members: impl IntoIterator<Item = Member>,
        rng: &mut R,
    ) -> PublishedSet {
        let mut set: BTreeSet<Member> = members.into_iter().collect();
        let target = set.len().max(MIN_SET).next_power_of_two();
        while set.len() < target {
            let mut m = [0u8; MEMBER_LEN];
            rng.fill_bytes(&mut m);
            set.insert(m);
        }
        PublishedSet {
            approach: approach.to_owned(),
            epoch,
            issued,
            expires,
            members: set,
        }
    }

    /// The signed body: header, register, epoch, times, size, then one member per line in order.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{SET_HEADER}\napproach {}\nepoch {}\nissued {}\nexpires {}\nsize {}\n",
            self.approach,
            self.epoch,
            self.issued,
            self.expires,
            self.members.len()
        );
        for m in &self.members {
            s.push_str(&hex::encode(m));
            s.push('\n');
        }
        s
    }

    /// The set as a signed note.
    pub fn sign(&self, key: &LogKey) -> String {
        key.sign_body(&self.body())
    }

    /// Verifies a published note: signed by `verifier`, for `approach`, fresh at `now`, at most
    /// `max` members, in the canonical form.
    pub fn verify(
        note: &str,
        verifier: &NoteVerifier,
        approach: &str,
        now: i64,
        max: usize,
    ) -> Result<PublishedSet, SetError> {
        let body = verifier
            .verify_body(note)
            .map_err(|_| SetError::Signature)?;
        let set = Self::parse(&body, max)?;
        if set.approach != approach {
            return Err(SetError::OtherRegister);
        }
        if now > set.expires || set.issued > now.saturating_add(300) {
            return Err(SetError::Stale(set.expires));
        }
        Ok(set)
    }

    /// Parses a set's body (its signature already verified) in exactly the form
    /// [`PublishedSet::body`] writes, with at most `max` members.
    pub fn parse(body: &str, max: usize) -> Result<PublishedSet, SetError> {
        let mut lines = body
            .strip_suffix('\n')
            .ok_or(SetError::Malformed("no final newline"))?
            .split('\n');
        if lines.next() != Some(SET_HEADER) {
            return Err(SetError::Malformed("header"));
        }
        let mut field = |name: &'static str| -> Result<String, SetError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace))
                .map(str::to_owned)
                .ok_or(SetError::Malformed(name))
        };
        let approach = field("approach")?;
        let epoch = Epoch::parse(&field("epoch")?).ok_or(SetError::Malformed("epoch"))?;
        let number = |v: String, what: &'static str| -> Result<i64, SetError> {
            crate::log::checkpoint::canonical_decimal(&v)
                .and_then(|n| i64::try_from(n).ok())
                .ok_or(SetError::Malformed(what))
        };
        let issued = number(field("issued")?, "issued")?;
        let expires = number(field("expires")?, "expires")?;
        let size = usize::try_from(number(field("size")?, "size")?)
            .map_err(|_| SetError::Malformed("size"))?;
        if size > max {
            return Err(SetError::Oversized(max));
        }
        let mut members = BTreeSet::new();
        let mut last: Option<Member> = None;
        for line in lines {
            if line.len() != 2 * MEMBER_LEN
                || line
                    .bytes()
                    .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(SetError::Malformed("a member is 64 lower-case hex digits"));
            }
            let mut m = [0u8; MEMBER_LEN];
            hex::decode_to_slice(line, &mut m).map_err(|_| SetError::Malformed("member"))?;
            if last.is_some_and(|l| l >= m) {
                return Err(SetError::Malformed("members in strictly ascending order"));
            }
            last = Some(m);
            members.insert(m);
            if members.len() > size {
                return Err(SetError::Malformed("more members than its size"));
            }
        }
        if members.len() != size {
            return Err(SetError::Malformed("fewer members than its size"));
        }
        Ok(PublishedSet {
            approach,
            epoch,
            issued,
            expires,
            members,
        })
    }

    /// Whether `m` is in the set.
    pub fn contains(&self, m: &Member) -> bool {
        self.members.contains(m)
    }
}

/// The operating system's randomness as a `rand_core` 0.6 generator, for the protocol's scalars.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRng;

impl RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // The system's generator does not fail on Linux once booted; if it ever did, the
        // operating system's generator through `rand` stands in (never zeros: the PRF would
        // draw a zero scalar again and again).
        if aws_lc_rs::rand::fill(dest).is_err() {
            rand::RngCore::fill_bytes(&mut rand::rng(), dest);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        aws_lc_rs::rand::fill(dest).map_err(|_| {
            rand_core::Error::from(
                std::num::NonZeroU32::new(rand_core::Error::CUSTOM_START)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            )
        })
    }
}

impl CryptoRng for SystemRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{ProptestConfig, prop_assert_eq, proptest};
    use rand_core::{CryptoRng, RngCore};

    /// Yields its bytes in turn, cycling (the RFC's fixed scalars as "randomness").
    struct Fixed(Vec<u8>, usize);
    impl RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            unimplemented!()
        }
        fn next_u64(&mut self) -> u64 {
            unimplemented!()
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for d in dest {
                *d = self.0[self.1 % self.0.len()];
                self.1 += 1;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for Fixed {}

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// A scalar as 64 bytes whose wide reduction is the scalar itself (it is below the order).
    fn scalar_rng(s: &str) -> Fixed {
        let mut b = h(s);
        b.extend_from_slice(&[0u8; 32]);
        Fixed(b, 0)
    }

    /// RFC 9497 appendix A.1.3 (POPRF, ristretto255-SHA512), test vector 1: key derivation,
    /// blinding, blind evaluation with its proof, finalization, and the server's own evaluation.
    #[test]
    fn rfc_9497_poprf_ristretto255_sha512_vector() {
        let seed = h("a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3");
        let key_info = h("74657374206b6579");
        let server = PoprfServer::<Ristretto255>::new_from_seed(&seed, &key_info).unwrap();
        let key = RegisterKey { server };
        assert_eq!(
            hex::encode(key.public()),
            "c647bef38497bc6ec077c22af65b696efa43bff3b4a1975a3e8e0a1c5a79d631"
        );
        let input = h("00");
        let info = h("7465737420696e666f");
        let blind = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706";
        let b = Blinded::new(&input, &mut scalar_rng(blind)).unwrap();
        assert_eq!(
            hex::encode(b.message()),
            "c8713aa89241d6989ac142f22dba30596db635c772cbf25021fdd8f3d461f715"
        );
        let proof_scalar = "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e";
        let (e, p) = key
            .evaluate_blinded(&mut scalar_rng(proof_scalar), &b.message(), &info)
            .unwrap();
        assert_eq!(
            hex::encode(e),
            "1a4b860d808ff19624731e67b5eff20ceb2df3c3c03b906f5693e2078450d874"
        );
        assert_eq!(
            hex::encode(p),
            "41ad1a291aa02c80b0915fbfbb0c0afa15a57e2970067a602ddb9e8fd6b7100de32e1ecff943a36f0b10e3dae6bd266cdeb8adf825d86ef27dbc6c0e30c52206"
        );
        let output = "ca688351e88afb1d841fde4401c79efebb2eb75e7998fa9737bd5a82a152406d38bd29f680504e54fd4587eddcf2f37a2617ac2fbd2993f7bdf45442ace7d221";
        let m = b.finish(&input, &e, &p, &key.public(), &info).unwrap();
        assert_eq!(hex::encode(m), output[..64]);
        assert_eq!(key.member(&input, &info).unwrap(), m);
    }

    fn key(n: u8) -> RegisterKey {
        RegisterKey::from_seed(&[n; 32]).unwrap()
    }

    #[test]
    fn a_wrong_key_or_a_bad_proof_is_refused_and_blinding_is_fresh_each_time() {
        let (k, other) = (key(1), key(2));
        let i = info("top600", &Epoch::of(1_800_000_000));
        let bsn = b"111222333";
        let b = Blinded::new(bsn, &mut SystemRng).unwrap();
        let b2 = Blinded::new(bsn, &mut SystemRng).unwrap();
        assert_ne!(
            b.message(),
            b2.message(),
            "the same BSN is never sent twice alike"
        );
        let (e, mut p) = k
            .evaluate_blinded(&mut SystemRng, &b.message(), &i)
            .unwrap();
        assert_eq!(
            b.finish(bsn, &e, &p, &other.public(), &i),
            Err(OprfError::Proof)
        );
        // Another epoch's info than the one evaluated under: the proof fails too.
        let j = info("top600", &Epoch::of(1_800_000_000).previous());
        assert_eq!(
            b.finish(bsn, &e, &p, &k.public(), &j),
            Err(OprfError::Proof)
        );
        assert!(b.finish(bsn, &e, &p, &k.public(), &i).is_ok());
        p[0] ^= 1;
        assert!(b.finish(bsn, &e, &p, &k.public(), &i).is_err());
        assert_eq!(
            k.evaluate_blinded(&mut SystemRng, &[0u8; 32], &i),
            Err(OprfError::Element),
            "the identity is no blinded element"
        );
    }

    #[test]
    fn epochs_are_months() {
        assert_eq!(Epoch::of(1_796_169_600).as_str(), "2026-12");
        assert_eq!(
            Epoch::parse("2026-01").unwrap().previous().as_str(),
            "2025-12"
        );
        assert_eq!(
            Epoch::parse("2026-12").unwrap().previous().as_str(),
            "2026-11"
        );
        for bad in [
            "2026-13", "2026-00", "26-01", "2026-1", "2026-01 ", "+026-01",
        ] {
            assert!(Epoch::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_published_set_verifies_only_as_signed_fresh_and_whole() {
        let k = key(3);
        let sign = LogKey::from_seed(&set_key_name("top600"), &[4u8; 32]).unwrap();
        let verifier = NoteVerifier::from_vkey(&sign.vkey()).unwrap();
        let e = Epoch::of(1_800_000_000);
        let m = k.member(b"111222333", &info("top600", &e)).unwrap();
        let set = PublishedSet::new(
            "top600",
            e,
            1_800_000_000,
            1_800_086_400,
            [m],
            &mut SystemRng,
        );
        assert_eq!(set.members.len(), MIN_SET);
        let note = set.sign(&sign);
        let ok = PublishedSet::verify(&note, &verifier, "top600", 1_800_000_100, 4096).unwrap();
        assert!(ok.contains(&m));
        assert_eq!(
            PublishedSet::verify(&note, &verifier, "criminele-families", 1_800_000_100, 4096),
            Err(SetError::OtherRegister)
        );
        assert_eq!(
            PublishedSet::verify(&note, &verifier, "top600", 1_800_086_401, 4096),
            Err(SetError::Stale(1_800_086_400))
        );
        assert_eq!(
            PublishedSet::verify(&note, &verifier, "top600", 1_800_000_100, 32),
            Err(SetError::Oversized(32))
        );
        let other = LogKey::from_seed(&set_key_name("top600"), &[5u8; 32]).unwrap();
        assert_eq!(
            PublishedSet::verify(&set.sign(&other), &verifier, "top600", 1_800_000_100, 4096),
            Err(SetError::Signature)
        );
        // One member changed, the signature no longer holds.
        let first = hex::encode(set.members.iter().next().unwrap());
        let tampered = note.replacen(&first, &"0".repeat(64), 1);
        assert_eq!(
            PublishedSet::verify(&tampered, &verifier, "top600", 1_800_000_100, 4096),
            Err(SetError::Signature)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        /// Membership holds exactly for the published BSNs, through the whole blinded exchange.
        #[test]
        fn membership_holds_exactly_for_the_published(
            published in proptest::collection::btree_set(100_000_000u32..999_999_999, 1..8),
            others in proptest::collection::btree_set(100_000_000u32..999_999_999, 1..5),
        ) {
            let k = key(7);
            let i = info("top600", &Epoch::parse("2026-12").unwrap());
            let members = published.iter().map(|b| k.member(b.to_string().as_bytes(), &i).unwrap());
            let set = PublishedSet::new("top600", Epoch::parse("2026-12").unwrap(), 0, 1, members, &mut SystemRng);
            for b in published.iter().chain(&others) {
                let input = b.to_string();
                let asked = Blinded::new(input.as_bytes(), &mut SystemRng).unwrap();
                let (e, p) = k.evaluate_blinded(&mut SystemRng, &asked.message(), &i).unwrap();
                let m = asked.finish(input.as_bytes(), &e, &p, &k.public(), &i).unwrap();
                prop_assert_eq!(set.contains(&m), published.contains(b));
            }
        }
    }
}
