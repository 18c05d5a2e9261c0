//! The single writer of the disclosure log: requests wait in a queue, the writer takes every
//! waiting entry into one transaction (group commit) and answers each request once its batch is
//! durable.

use crate::store::{DisclosureRow, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Where an entry landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number (1-based; the Merkle leaf index is `seq - 1`).
    pub seq: i64,
    /// Leaf hash, hex.
    pub leaf_hash: String,
}

type Job = (DisclosureRow, oneshot::Sender<Result<Appended, String>>);

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Job>,
}

/// Largest batch in one transaction.
pub const MAX_BATCH: usize = 512;

impl LogWriter {
    /// Starts the writer task on `store`.
    pub fn start<S: Store>(store: S) -> LogWriter {
        let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                // The rows move into the batch's insert; no copy of the entries.
                let (rows, replies): (Vec<DisclosureRow>, Vec<_>) = batch.drain(..).unzip();
                match store.append_batch(&rows).await {
                    Ok(done) => {
                        for (reply, (seq, leaf)) in replies.into_iter().zip(done) {
                            let _ = reply.send(Ok(Appended {
                                seq,
                                leaf_hash: leaf,
                            }));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, entries = rows.len(), "disclosure log batch failed");
                        for reply in replies {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        LogWriter { tx }
    }

    /// Appends one entry; returns once it is durable (or the write failed).
    pub async fn append(&self, row: DisclosureRow) -> Result<Appended, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((row, reply))
            .await
            .map_err(|_| StoreError::Log("the log writer stopped".into()))?;
        match wait.await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(StoreError::Log(format!("write failed: {e}"))),
            Err(_) => Err(StoreError::Log("the log writer stopped".into())),
        }
    }
}
