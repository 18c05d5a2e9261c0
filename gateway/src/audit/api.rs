//! `GET /v1/audit/checkpoint`, `/v1/audit/proof/{seq}`, `/v1/audit/consistency`: what a partner
//! needs to check that its disclosure is in the log and that the log only grew.

use super::checkpoint::{Checkpoint, LogKey};
use super::merkle::{Frontier, Hash, consistency_proof, inclusion_proof, root};
use super::parse_hash;
use crate::problem::ApiError;
use crate::server::{AppState, Authenticated};
use crate::store::{Store, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

/// Routes of the audit proofs.
pub fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/audit/checkpoint", get(checkpoint::<S>))
        .route("/v1/audit/proof/{seq}", get(proof::<S>))
        .route("/v1/audit/consistency", get(consistency::<S>))
}

async fn leaves<S: Store>(store: &S, size: i64) -> Result<Vec<Hash>, StoreError> {
    store
        .leaf_hashes(size)
        .await?
        .iter()
        .map(|h| {
            parse_hash(h).ok_or_else(|| StoreError::Log("a stored leaf hash is not a hash".into()))
        })
        .collect()
}

/// Signs and stores a checkpoint for the current log size (or returns the stored one). The tree
/// head comes from `frontier`, the tree's right edge kept between checkpoints, so only the
/// entries added since the last checkpoint are read.
pub async fn checkpoint_now<S: Store>(
    store: &S,
    frontier: &tokio::sync::Mutex<Frontier>,
    key: &LogKey,
    origin: &str,
    now: i64,
) -> Result<(i64, String), StoreError> {
    let (size, _) = store.log_head().await?;
    if let Some((s, note)) = store.latest_checkpoint().await?
        && s == size
    {
        return Ok((s, note));
    }
    let mut f = frontier.lock().await;
    if f.size() > size as u64 {
        // The log cannot shrink; if it seems to, start again from the stored leaves.
        *f = Frontier::default();
    }
    // In pages, so that a first checkpoint over a long log does not hold it all in memory.
    while (f.size() as i64) < size {
        let from = f.size() as i64;
        let upto = size.min(from + 100_000);
        for h in store.leaf_hashes_after(from, upto).await? {
            f.push(
                parse_hash(&h)
                    .ok_or_else(|| StoreError::Log("a stored leaf hash is not a hash".into()))?,
            );
        }
        if (f.size() as i64) < upto {
            return Err(StoreError::Log(format!(
                "entries {} to {upto} have no leaf hash",
                f.size() + 1
            )));
        }
    }
    let r = f.root();
    drop(f);
    let note = key.sign(&Checkpoint {
        origin: origin.into(),
        size: size as u64,
        root: r,
    });
    let stored = store
        .put_checkpoint(size, &hex::encode(r), &note, now)
        .await?;
    Ok((size, stored))
}

async fn checkpoint<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(..): Authenticated,
) -> Result<impl IntoResponse, ApiError> {
    let s = &state.shared;
    let (_, note) = checkpoint_now(
        &state.store,
        &s.frontier,
        &s.log_key,
        &s.log_origin,
        s.clock.now(),
    )
    .await
    .map_err(ApiError::from)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeQuery {
    #[serde(default)]
    size: Option<i64>,
}

async fn proof<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(..): Authenticated,
    Path(seq): Path<i64>,
    Query(q): Query<SizeQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = &state.shared;
    let (size, note) = match q.size {
        Some(size) => (size, None),
        None => {
            let (size, note) = checkpoint_now(
                &state.store,
                &s.frontier,
                &s.log_key,
                &s.log_origin,
                s.clock.now(),
            )
            .await
            .map_err(ApiError::from)?;
            (size, Some(note))
        }
    };
    if seq < 1 || seq > size {
        return Err(ApiError::InvalidBody(format!(
            "`seq` must be 1 to {size} (the tree size)"
        )));
    }
    let l = leaves(&state.store, size).await.map_err(ApiError::from)?;
    if l.len() as i64 != size {
        return Err(ApiError::InvalidBody(format!(
            "the log has fewer than {size} entries"
        )));
    }
    let index = (seq - 1) as usize;
    Ok(Json(serde_json::json!({
        "seq": seq,
        "leaf_index": index,
        "leaf_hash": hex::encode(l[index]),
        "tree_size": size,
        "root": hex::encode(root(&l)),
        "proof": inclusion_proof(&l, index).iter().map(hex::encode).collect::<Vec<_>>(),
        "checkpoint": note,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: i64,
    to: i64,
}

async fn consistency<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(..): Authenticated,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (head, _) = state.store.log_head().await.map_err(ApiError::from)?;
    if q.from < 1 || q.from > q.to || q.to > head {
        return Err(ApiError::InvalidBody(format!(
            "need 1 <= from <= to <= {head} (the log size)"
        )));
    }
    let l = leaves(&state.store, q.to).await.map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({
        "from": q.from,
        "to": q.to,
        "from_root": hex::encode(root(&l[..q.from as usize])),
        "to_root": hex::encode(root(&l)),
        "proof": consistency_proof(&l, q.from as usize).iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}
