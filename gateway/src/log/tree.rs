//! The stored Merkle tree: leaf hashes (height 0) in `log_leaves`, and the root of every
//! complete subtree of 256, 65,536, … leaves (heights 8, 16, …) in `log_nodes`. These are the
//! bottom rows of the C2SP tlog-tiles layout: a tile of 256 hashes at one of those heights is
//! one range read, and any complete subtree's hash is at most 128 of them hashed together. An
//! inclusion or consistency proof, or the right edge of the tree at a restart, reads O(log n)
//! rows, never every leaf.

use super::LogError;
use super::merkle::{Frontier, Hash, node_hash};
use crate::store::Db;
use std::collections::{BTreeSet, HashMap};

/// Heights per tile: the stored heights are multiples of this.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes per full tile.
const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// Reads the complete subtrees `wanted` (height, index) from the database.
pub async fn read_nodes(
    db: &Db,
    wanted: &[(u32, u64)],
) -> Result<HashMap<(u32, u64), Hash>, LogError> {
    // Which tiles: the stored hashes a subtree of height h = 8L + j is made of are the 2^j
    // hashes at height 8L starting at k * 2^j, all inside one tile of that height.
    let tiles: BTreeSet<(u32, u64)> = wanted
        .iter()
        .map(|&(h, k)| {
            let (level, j) = (h / TILE_HEIGHT, h % TILE_HEIGHT);
            (level, (k << j) / TILE_WIDTH)
        })
        .collect();
    let mut stored: HashMap<(u32, u64), Hash> = HashMap::new();
    for (level, t) in tiles {
        let (from, to) = (t * TILE_WIDTH, (t + 1) * TILE_WIDTH);
        let (from_i, to_i) = (signed(from)?, signed(to)?);
        let rows = if level == 0 {
            db.leaf_hashes(from_i, to_i)
                .await?
                .into_iter()
                .map(|(seq, h)| (seq - 1, h))
                .collect::<Vec<_>>()
        } else {
            db.node_hashes(i64::from(level * TILE_HEIGHT), from_i, to_i)
                .await?
        };
        for (i, h) in rows {
            stored.insert((level * TILE_HEIGHT, unsigned(i)?), h);
        }
    }
    let mut out = HashMap::with_capacity(wanted.len());
    for &(h, k) in wanted {
        let base = h - h % TILE_HEIGHT;
        let j = h % TILE_HEIGHT;
        let mut level: Vec<Hash> = Vec::with_capacity(1 << j);
        for i in (k << j)..((k + 1) << j) {
            let x = stored.get(&(base, i)).ok_or_else(|| {
                LogError::Corrupt(format!(
                    "the stored tree has no hash at height {base}, index {i}: run `gateway audit verify`"
                ))
            })?;
            level.push(*x);
        }
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|p| match p {
                    [l, r] => node_hash(l, r),
                    _ => [0; 32],
                })
                .collect();
        }
        let root = level.first().copied().ok_or_else(|| {
            LogError::Corrupt(format!("no hash for the subtree at height {h}, index {k}"))
        })?;
        out.insert((h, k), root);
    }
    Ok(out)
}

/// The right edge of the tree of `size` leaves, from the stored tree (no leaf beyond the last
/// tile is read).
pub async fn frontier(db: &Db, size: u64) -> Result<Frontier, LogError> {
    let parts = Frontier::parts(size);
    let nodes = read_nodes(db, &parts).await?;
    let hashes: Vec<Hash> = parts
        .iter()
        .map(|p| nodes.get(p).copied())
        .collect::<Option<_>>()
        .ok_or_else(|| LogError::Corrupt("the tree's right edge is incomplete".into()))?;
    Frontier::from_parts(size, &hashes)
        .ok_or_else(|| LogError::Corrupt("the tree's right edge is incomplete".into()))
}

/// Runs a proof computation over the stored tree: finds the subtrees it needs, reads them,
/// runs it for real.
pub async fn with_nodes<T>(
    db: &Db,
    compute: impl Fn(&mut dyn FnMut(u32, u64) -> Hash) -> T,
) -> Result<T, LogError> {
    let wanted = super::merkle::nodes_needed(|get| {
        compute(get);
    });
    let nodes = read_nodes(db, &wanted).await?;
    let mut missing = false;
    let out = compute(&mut |h, k| match nodes.get(&(h, k)) {
        Some(x) => *x,
        None => {
            missing = true;
            [0; 32]
        }
    });
    if missing {
        return Err(LogError::Corrupt(
            "a proof needed a subtree that was not read".into(),
        ));
    }
    Ok(out)
}

/// Whether a stored node at `height` is one the tree keeps.
pub fn is_stored_height(height: u32) -> bool {
    height > 0 && height.is_multiple_of(TILE_HEIGHT)
}

fn signed(v: u64) -> Result<i64, LogError> {
    i64::try_from(v).map_err(|_| LogError::Corrupt("tree index out of range".into()))
}

fn unsigned(v: i64) -> Result<u64, LogError> {
    u64::try_from(v).map_err(|_| LogError::Corrupt("negative tree index".into()))
}
