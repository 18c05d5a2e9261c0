//! The witness's HTTP service and durable state: `POST /add-checkpoint` and
//! `GET /<origin hash>/checkpoint` (C2SP `tlog-witness`), over SQLite.

use super::protocol::{self, AddCheckpoint, Refused};
use crate::clock::Clock;
use crate::log::checkpoint::NoteVerifier;
use crate::log::cosign::Cosigner;
use crate::log::merkle::Hash;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// `witness.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name (its key name), e.g. `witness.politie.ipga-r.example`.
    pub name: String,
    /// The Ed25519 seed (32 bytes, hex) of its cosigning key.
    pub key_file: PathBuf,
    /// Where it listens (plain HTTP: the protocol needs no secrecy and checks every byte by
    /// signature; put it behind the partner's TLS front if it leaves the host).
    pub listen: String,
    /// Its state: `sqlite://PATH`.
    pub database: String,
    /// The logs it witnesses.
    #[serde(rename = "log")]
    pub logs: Vec<WitnessedLog>,
}

/// A log the witness follows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedLog {
    /// Its origin line.
    pub origin: String,
    /// Its verifier keys (the current one and those it rotated from).
    pub vkeys: Vec<String>,
}

/// Problems starting a witness.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The configuration cannot be read or is wrong.
    #[error("{0}")]
    Config(String),
    /// The state database cannot be opened or written.
    #[error("witness state: {0}")]
    Store(#[from] sqlx::Error),
}

/// A running witness.
pub struct Witness {
    cosigner: Cosigner,
    logs: HashMap<String, Vec<NoteVerifier>>,
    db: SqlitePool,
    clock: Arc<dyn Clock>,
    /// Check-and-update is one step: two requests never both pass against the same state.
    step: tokio::sync::Mutex<()>,
}

impl Witness {
    /// Loads the key and keys of the followed logs, opens (and creates) the state.
    pub async fn open(
        cfg: &WitnessConfig,
        base: &std::path::Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Witness, WitnessError> {
        let key_path = base.join(&cfg.key_file);
        let seed = std::fs::read_to_string(&key_path)
            .map_err(|e| WitnessError::Config(format!("{}: {e}", key_path.display())))
            .and_then(|t| {
                hex::decode(t.trim())
                    .map_err(|_| WitnessError::Config(format!("{}: not hex", key_path.display())))
            })?;
        let cosigner = Cosigner::from_seed(&cfg.name, &seed)
            .map_err(|e| WitnessError::Config(e.to_string()))?;
        let mut logs = HashMap::new();
        for l in &cfg.logs {
            let keys = l
                .vkeys
                .iter()
                .map(|v| NoteVerifier::from_vkey(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| WitnessError::Config(format!("log {}: {e}", l.origin)))?;
            logs.insert(l.origin.clone(), keys);
        }
        let url = match cfg.database.strip_prefix("sqlite://") {
            Some(p) if !p.starts_with('/') => format!("sqlite://{}", base.join(p).display()),
            _ => cfg.database.clone(),
        };
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
        let db = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&db).await?;
        }
        Ok(Witness {
            cosigner,
            logs,
            db,
            clock,
            step: tokio::sync::Mutex::new(()),
        })
    }

    /// The witness's verifier key.
    pub fn vkey(&self) -> String {
        self.cosigner.vkey()
    }

    async fn latest(&self, origin: &str) -> Result<Option<(u64, Hash, String)>, sqlx::Error> {
        let row: Option<(i64, Vec<u8>, String)> =
            sqlx::query_as("SELECT size, root, note FROM witness_latest WHERE origin = $1")
                .bind(origin)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.and_then(|(size, root, note)| {
            Some((u64::try_from(size).ok()?, root.try_into().ok()?, note))
        }))
    }

    /// Handles one `add-checkpoint`: the cosignature line(s), or the refusal.
    pub async fn add_checkpoint(&self, body: &str) -> Result<String, AddError> {
        let req: AddCheckpoint = protocol::parse(body)?;
        // Only the one canonical form, and the whole body (extension lines too) is cosigned.
        let signed_body = protocol::canonical_body(&req.note)?.to_owned();
        let origin = protocol::origin(&req.note).ok_or(Refused::Malformed("no origin line"))?;
        let keys = self.logs.get(origin).ok_or(Refused::UnknownOrigin)?;
        let _step = self.step.lock().await;
        let last = self.latest(origin).await?;
        let decided = protocol::decide(&req, keys, last.as_ref().map(|(s, r, _)| (*s, *r)))
            .and_then(|c| match &last {
                // The same size with another body (another per-subject map, issue 28): the log
                // signed two different checkpoints of one tree, which is a fork too.
                Some((size, _, note))
                    if c.size == *size
                        && note
                            .split_once("\n\n")
                            .map(|(b, _)| format!("{b}\n"))
                            .as_deref()
                            != Some(signed_body.as_str()) =>
                {
                    Err(Refused::Inconsistent(*size))
                }
                _ => Ok(c),
            });
        let checkpoint = match decided {
            Ok(c) => c,
            Err(e) => {
                // A signed but inconsistent checkpoint is evidence of a fork: kept.
                if matches!(e, Refused::Inconsistent(_)) {
                    tracing::warn!(
                        origin,
                        "witness: a signed checkpoint inconsistent with the cosigned one; kept as evidence"
                    );
                    let _ = sqlx::query(
                        "INSERT INTO witness_evidence (origin, note, at) VALUES ($1, $2, $3)",
                    )
                    .bind(origin)
                    .bind(&req.note)
                    .bind(self.clock.now())
                    .execute(&self.db)
                    .await;
                }
                return Err(e.into());
            }
        };
        let now = self.clock.now();
        // tlog-cosignature: extension lines are part of the cosigned message.
        let line = self
            .cosigner
            .cosign(&signed_body, u64::try_from(now).unwrap_or(0).max(1));
        // The cosigned checkpoint as monitors fetch it: the note exactly as the log signed it
        // (so that the log's signature verifies over it), and this witness's cosignature.
        let log_lines: String = req
            .note
            .split_once("\n\n")
            .map_or_else(String::new, |(_, sigs)| sigs.to_owned());
        let stored = format!("{signed_body}\n{}{line}", ensure_newline(&log_lines));
        let size = i64::try_from(checkpoint.size).map_err(|_| Refused::Malformed("size"))?;
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO witness_latest (origin, size, root, note, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, at = excluded.at \
             WHERE excluded.size >= witness_latest.size",
        )
        .bind(origin)
        .bind(size)
        .bind(checkpoint.root.to_vec())
        .bind(&stored)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO witness_cosigned (origin, size, root, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(origin)
        .bind(size)
        .bind(checkpoint.root.to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Durable before the cosignature leaves (the protocol's rule).
        tx.commit().await?;
        tracing::info!(origin, size = checkpoint.size, "witness: cosigned");
        Ok(line)
    }
}

fn ensure_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_owned()
    } else {
        format!("{s}\n")
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS witness_latest (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL, at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS witness_cosigned (origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS witness_evidence (origin TEXT NOT NULL, note TEXT NOT NULL, at INTEGER NOT NULL)",
    // The witness never goes back: its latest size only grows.
    "CREATE TRIGGER IF NOT EXISTS witness_never_back BEFORE UPDATE ON witness_latest WHEN NEW.size < OLD.size BEGIN SELECT RAISE(ABORT, 'a witness never goes back'); END",
];

/// A refused or failed `add-checkpoint`.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// Refused by the protocol.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The state could not be read or written: nothing was cosigned.
    #[error("witness state: {0}")]
    Store(#[from] sqlx::Error),
}

impl IntoResponse for AddError {
    fn into_response(self) -> Response {
        match self {
            AddError::Refused(Refused::Conflict(size)) => (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, "text/x.tlog.size")],
                format!("{size}\n"),
            )
                .into_response(),
            AddError::Refused(r) => (
                StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST),
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{r}\n"),
            )
                .into_response(),
            AddError::Store(e) => {
                tracing::error!(error = %e, "witness state");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the witness cannot write its state; nothing was cosigned\n",
                )
                    .into_response()
            }
        }
    }
}

/// Largest request body: a checkpoint, a few signatures and 63 proof lines fit many times.
const MAX_BODY: usize = 64 * 1024;

/// The witness's routes.
pub fn router(w: Arc<Witness>) -> axum::Router {
    axum::Router::new()
        .route("/add-checkpoint", axum::routing::post(add))
        .route("/{origin_hash}/checkpoint", axum::routing::get(latest))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(w)
}

async fn add(State(w): State<Arc<Witness>>, body: String) -> Response {
    match w.add_checkpoint(&body).await {
        Ok(line) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            line,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn latest(State(w): State<Arc<Witness>>, Path(hash): Path<String>) -> Response {
    let Some(origin) = w.logs.keys().find(|o| protocol::origin_hash(o) == hash) else {
        return (StatusCode::NOT_FOUND, "unknown log\n").into_response();
    };
    match w.latest(origin).await {
        Ok(Some((_, _, note))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            note,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "nothing cosigned for this log yet\n").into_response(),
        Err(e) => AddError::Store(e).into_response(),
    }
}
