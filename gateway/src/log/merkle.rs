//! RFC 6962 / RFC 9162 Merkle tree hashing: tree heads, inclusion and consistency proofs, and
//! their verification. Pure functions over leaf hashes.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Parses a hash written in hex.
pub fn parse_hash(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}

/// `SHA-256(0x00 || data)`: the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]): the root of the tree over `leaves` (SHA-256 of nothing for an empty tree).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [one] => *one,
        _ => {
            let n = leaves.len();
            let (l, r) = leaves.split_at(split(n));
            node_hash(&root(l), &root(r))
        }
    }
}

/// PATH(m, D[n]): the inclusion proof of leaf `index`. Empty when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if index >= n || n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    let (l, r) = leaves.split_at(k);
    if index < k {
        let mut p = inclusion_proof(l, index);
        p.push(root(r));
        p
    } else {
        let mut p = inclusion_proof(r, index - k);
        p.push(root(l));
        p
    }
}

/// PROOF(m, D[n]): the consistency proof between the first `m` leaves and all of them.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    if m == 0 || m > leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let k = split(n);
    let (l, r) = leaves.split_at(k);
    if m <= k {
        let mut p = subproof(m, l, complete);
        p.push(root(r));
        p
    } else {
        let mut p = subproof(m - k, r, false);
        p.push(root(l));
        p
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> bool {
    if size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    if size1 == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let Some((&first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fr, mut sr) = (first, first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *root1 && sr == *root2 && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// The Certificate Transparency reference inputs and tree heads (sizes 0 to 8).
    const INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves() -> Vec<Hash> {
        INPUTS
            .iter()
            .map(|i| leaf_hash(&hex::decode(i).unwrap()))
            .collect()
    }

    #[test]
    fn tree_heads_match_the_reference() {
        let l = leaves();
        for n in 0..=8 {
            assert_eq!(root(&l[..n]), h(ROOTS[n]), "size {n}");
        }
    }

    #[test]
    fn inclusion_proofs_match_the_reference() {
        let l = leaves();
        let cases: [(usize, usize, &[&str]); 4] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (0, 1, &[]),
        ];
        for (index, size, proof) in cases {
            let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
            assert_eq!(
                inclusion_proof(&l[..size], index),
                want,
                "({index}, {size})"
            );
            assert!(verify_inclusion(
                &l[index],
                index as u64,
                size as u64,
                &want,
                &h(ROOTS[size])
            ));
        }
    }

    #[test]
    fn consistency_proofs_match_the_reference() {
        let l = leaves();
        let cases: [(usize, usize, &[&str]); 4] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (m, n, proof) in cases {
            let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
            assert_eq!(consistency_proof(&l[..n], m), want, "({m}, {n})");
            assert!(
                verify_consistency(m as u64, n as u64, &h(ROOTS[m]), &h(ROOTS[n]), &want),
                "({m}, {n})"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn every_proof_verifies_and_tampering_fails(n in 1usize..70, seed in any::<u8>()) {
            let l: Vec<Hash> = (0..n).map(|i| leaf_hash(&[seed, i as u8, (i >> 8) as u8])).collect();
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i);
                prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &p, &r));
                prop_assert!(!verify_inclusion(&leaf_hash(b"forged"), i as u64, n as u64, &p, &r));
                if n > 1 {
                    prop_assert!(!verify_inclusion(&l[i], ((i + 1) % n) as u64, n as u64, &p, &r) || l[i] == l[(i + 1) % n]);
                }
            }
            for m in 1..=n {
                let p = consistency_proof(&l, m);
                let rm = root(&l[..m]);
                prop_assert!(verify_consistency(m as u64, n as u64, &rm, &r, &p));
                if m < n {
                    prop_assert!(!verify_consistency(m as u64, n as u64, &leaf_hash(b"other"), &r, &p));
                }
            }
        }
    }
}

/// The right edge of a growing tree: enough to give the tree head at the current size in
/// O(log n), so that a verifier can check every checkpoint in one pass over the leaves.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// Perfect subtrees, largest (leftmost) first: (height, hash).
    nodes: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _, _| {});
    }

    /// Appends a leaf hash and calls `closed(height, index, hash)` for every complete subtree
    /// the new leaf closes (heights 1 and up), so that the stored tree can keep them.
    pub fn push_with(&mut self, leaf: Hash, mut closed: impl FnMut(u32, u64, &Hash)) {
        let size = self.size + 1;
        let mut cur = (0u32, leaf);
        while let Some(&(h, left)) = self.nodes.last() {
            if h != cur.0 {
                break;
            }
            self.nodes.pop();
            cur = (h + 1, node_hash(&left, &cur.1));
            // The subtree of height h+1 just closed ends at `size`.
            closed(cur.0, (size >> cur.0) - 1, &cur.1);
        }
        self.nodes.push(cur);
        self.size = size;
    }

    /// The complete subtrees a tree of `size` leaves is made of, largest (leftmost) first, as
    /// (height, index): what a frontier holds.
    pub fn parts(size: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for h in (0..64u32).rev() {
            if size & (1u64 << h) != 0 {
                out.push((h, start >> h));
                start += 1u64 << h;
            }
        }
        out
    }

    /// A frontier from the hashes of [`Frontier::parts`]`(size)`, in that order.
    pub fn from_parts(size: u64, hashes: &[Hash]) -> Option<Frontier> {
        let parts = Self::parts(size);
        (parts.len() == hashes.len()).then(|| Frontier {
            nodes: parts
                .iter()
                .zip(hashes)
                .map(|((h, _), x)| (*h, *x))
                .collect(),
            size,
        })
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree head at the current size.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return root(&[]);
        };
        for (_, h) in it {
            r = node_hash(h, &r);
        }
        r
    }
}

#[cfg(test)]
mod frontier_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn frontier_root_is_the_tree_head(n in 0usize..200) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u32).to_be_bytes())).collect();
            let mut f = Frontier::default();
            prop_assert_eq!(f.root(), root(&[]));
            for (i, l) in leaves.iter().enumerate() {
                f.push(*l);
                prop_assert_eq!(f.root(), root(&leaves[..=i]));
            }
        }
    }
}

/// Every level of the tree over `leaves`, built once, so that each inclusion proof costs
/// O(log n). An unpaired last node moves up a level unchanged, which is exactly RFC 6962's
/// left-balanced tree.
#[derive(Debug, Clone)]
pub struct Levels {
    levels: Vec<Vec<Hash>>,
}

impl Levels {
    /// Builds the levels.
    pub fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let up: Vec<Hash> = below
                .chunks(2)
                .filter_map(|p| match p {
                    [l, r] => Some(node_hash(l, r)),
                    [one] => Some(*one),
                    _ => None,
                })
                .collect();
            levels.push(up);
        }
        Levels { levels }
    }

    /// The tree head.
    pub fn root(&self) -> Hash {
        match self.levels.last().and_then(|l| l.first()) {
            Some(r) if self.levels.first().is_some_and(|l| !l.is_empty()) => *r,
            _ => root(&[]),
        }
    }

    /// The inclusion proof of leaf `index` (same as [`inclusion_proof`]).
    pub fn proof(&self, index: usize) -> Vec<Hash> {
        let mut out = Vec::new();
        let mut i = index;
        let below_root = self.levels.len().saturating_sub(1);
        for level in self.levels.iter().take(below_root) {
            if let Some(s) = level.get(i ^ 1) {
                out.push(*s);
            }
            i >>= 1;
        }
        out
    }
}

#[cfg(test)]
mod levels_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn levels_give_the_reference_root_and_proofs(n in 1usize..130) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u32).to_le_bytes())).collect();
            let l = Levels::new(leaves.clone());
            prop_assert_eq!(l.root(), root(&leaves));
            for i in 0..n {
                prop_assert_eq!(l.proof(i), inclusion_proof(&leaves, i));
            }
        }
    }
}

/// The root of leaves `[lo, hi)` of a tree, from the hashes of complete subtrees:
/// `node(h, k)` is the root of the `2^h` leaves starting at `k * 2^h`. Every range met in the
/// RFC 6962 recursion from `[0, size)` is aligned, so a range whose length is a power of two is
/// exactly one such node.
fn range_hash(lo: u64, hi: u64, node: &mut dyn FnMut(u32, u64) -> Hash) -> Hash {
    let n = hi - lo;
    if n.is_power_of_two() {
        let h = n.trailing_zeros();
        return node(h, lo >> h);
    }
    let k = split_u64(n);
    let left = range_hash(lo, lo + k, node);
    let right = range_hash(lo + k, hi, node);
    node_hash(&left, &right)
}

/// The largest power of two smaller than `n` (n > 1).
fn split_u64(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// PATH(index, D[size]) from complete-subtree hashes (the same proof as [`inclusion_proof`]).
pub fn inclusion_path(index: u64, size: u64, node: &mut dyn FnMut(u32, u64) -> Hash) -> Vec<Hash> {
    fn path(m: u64, lo: u64, hi: u64, node: &mut dyn FnMut(u32, u64) -> Hash, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split_u64(n);
        if m < lo + k {
            path(m, lo, lo + k, node, out);
            out.push(range_hash(lo + k, hi, node));
        } else {
            path(m, lo + k, hi, node, out);
            out.push(range_hash(lo, lo + k, node));
        }
    }
    let mut out = Vec::new();
    if index < size {
        path(index, 0, size, node, &mut out);
    }
    out
}

/// PROOF(m, D[size]) from complete-subtree hashes (the same proof as [`consistency_proof`]).
pub fn consistency_path(m: u64, size: u64, node: &mut dyn FnMut(u32, u64) -> Hash) -> Vec<Hash> {
    fn sub(
        m: u64,
        lo: u64,
        hi: u64,
        complete: bool,
        node: &mut dyn FnMut(u32, u64) -> Hash,
        out: &mut Vec<Hash>,
    ) {
        let n = hi - lo;
        if m == n {
            if !complete {
                out.push(range_hash(lo, hi, node));
            }
            return;
        }
        let k = split_u64(n);
        if m <= k {
            sub(m, lo, lo + k, complete, node, out);
            out.push(range_hash(lo + k, hi, node));
        } else {
            sub(m - k, lo + k, hi, false, node, out);
            out.push(range_hash(lo, lo + k, node));
        }
    }
    let mut out = Vec::new();
    if m > 0 && m <= size {
        sub(m, 0, size, true, node, &mut out);
    }
    out
}

/// The complete subtrees (height, index) a computation over stored nodes will ask for: runs it
/// once with placeholder hashes (which nodes it needs does not depend on their values).
pub fn nodes_needed(run: impl FnOnce(&mut dyn FnMut(u32, u64) -> Hash)) -> Vec<(u32, u64)> {
    let mut wanted = Vec::new();
    run(&mut |h, k| {
        wanted.push((h, k));
        [0; 32]
    });
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

#[cfg(test)]
mod stored_tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Every complete subtree of the tree over `leaves`.
    fn all_nodes(leaves: &[Hash]) -> HashMap<(u32, u64), Hash> {
        let mut out = HashMap::new();
        let mut f = Frontier::default();
        for (i, l) in leaves.iter().enumerate() {
            out.insert((0, i as u64), *l);
            f.push_with(*l, |h, k, x| {
                out.insert((h, k), *x);
            });
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn proofs_from_stored_nodes_equal_the_reference(n in 1usize..300, seed in any::<u8>()) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[seed, i as u8, (i >> 8) as u8])).collect();
            let nodes = all_nodes(&leaves);
            let mut get = |h: u32, k: u64| nodes[&(h, k)];
            for i in (0..n).step_by(7) {
                prop_assert_eq!(inclusion_path(i as u64, n as u64, &mut get), inclusion_proof(&leaves, i));
            }
            for m in (1..=n).step_by(5) {
                prop_assert_eq!(consistency_path(m as u64, n as u64, &mut get), consistency_proof(&leaves, m));
            }
            let parts: Vec<Hash> = Frontier::parts(n as u64).iter().map(|p| nodes[p]).collect();
            let f = Frontier::from_parts(n as u64, &parts).unwrap();
            prop_assert_eq!(f.root(), root(&leaves));
        }
    }

    #[test]
    fn a_proof_asks_for_few_nodes() {
        // At a million leaves, an inclusion proof needs about log2(n) complete subtrees.
        let wanted = nodes_needed(|get| {
            inclusion_path(123_456, 1_000_000, get);
        });
        assert!(wanted.len() <= 40, "{}", wanted.len());
        assert!(wanted.iter().all(|(h, k)| (k + 1) << h <= 1_000_000));
    }
}
