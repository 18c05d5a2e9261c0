//! The gateway's side of witnessing: every new checkpoint goes to the covenant's witnesses
//! (C2SP `tlog-witness`, `add-checkpoint`), their cosignatures are checked and stored, and the
//! log counts as *blind* when fewer than the quorum cosigned within the covenant's bound. On
//! start, the witnesses' latest cosigned checkpoints are compared with the database, so that a
//! restored old backup, a rewound or a forked database is refused before it serves.
//!
//! Witnesses are asked in the background, each at most once at a time: a witness that is down
//! or slow never delays an answer; it only stops counting towards the quorum.

use crate::log::Log;
use crate::log::checkpoint::{Checkpoint, KeySet};
use crate::log::cosign::CosignVerifier;
use crate::store::{StoreError, StoredCheckpoint, StoredCosignature};
use crate::witness::protocol::origin_hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use policy::Covenant;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long one call to a witness may take.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(5);

/// One witness of the active covenant.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its name (the key name of its cosignatures).
    pub name: String,
    /// The partner that runs it.
    pub partner: String,
    /// Its base URL, without a trailing slash.
    pub url: String,
    /// Checks its cosignatures.
    pub verifier: CosignVerifier,
}

/// The active covenant's witnesses and quorum.
#[derive(Debug, Clone, Default)]
pub struct WitnessSet {
    /// The witnesses.
    pub members: Vec<Member>,
    /// How many must have cosigned within `blind_after` (0: witnessing is off).
    pub quorum: usize,
    /// Seconds.
    pub blind_after: i64,
}

impl WitnessSet {
    /// From the covenant's `[[witness]]` and `[witnessing]`; a key that is not a cosignature
    /// key makes the version unusable.
    pub fn from_covenant(c: &Covenant) -> Result<WitnessSet, String> {
        let w = &c.witnessing;
        let mut members = Vec::new();
        for m in &w.witnesses {
            let verifier = CosignVerifier::from_vkey(&m.vkey)
                .map_err(|e| format!("witness {}: {e}", m.name))?;
            members.push(Member {
                name: m.name.clone(),
                partner: c
                    .partner_at(m.partner)
                    .map(|p| p.id.clone())
                    .unwrap_or_default(),
                url: m.url.trim_end_matches('/').to_owned(),
                verifier,
            });
        }
        Ok(WitnessSet {
            members,
            quorum: w.quorum,
            blind_after: i64::try_from(w.blind_after_secs).unwrap_or(i64::MAX),
        })
    }

    /// Whether the covenant names witnesses at all.
    pub fn enabled(&self) -> bool {
        !self.members.is_empty() && self.quorum > 0
    }

    /// The verifiers, for `audit verify` and the monitor.
    pub fn verifiers(&self) -> Vec<CosignVerifier> {
        self.members.iter().map(|m| m.verifier.clone()).collect()
    }
}

/// What the gateway knows of one witness.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// The size it last cosigned for this log.
    size: Option<u64>,
    /// When it last cosigned the newest checkpoint (gateway clock).
    ok_at: Option<i64>,
    /// When it was last asked.
    asked_at: Option<i64>,
    /// A call is under way.
    busy: bool,
    /// What went wrong the last time.
    error: Option<String>,
}

/// The log is blind: fewer than the quorum cosigned within the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blind {
    /// Witnesses that did cosign within the bound.
    pub have: usize,
    /// The quorum.
    pub need: usize,
    /// The bound, seconds.
    pub bound: u64,
}

/// One witness's state, for readiness and the operator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WitnessStatus {
    /// Its name.
    pub name: String,
    /// The size it last cosigned.
    pub size: Option<u64>,
    /// When it last cosigned (epoch seconds, gateway clock).
    pub cosigned_at: Option<i64>,
    /// The last error, if the last call failed.
    pub error: Option<String>,
}

/// The witnesses' state while the gateway runs.
pub struct Witnesses {
    client: reqwest::Client,
    seen: Mutex<HashMap<String, Seen>>,
}

impl std::fmt::Debug for Witnesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witnesses").finish_non_exhaustive()
    }
}

/// What a start found at the witnesses.
#[derive(Debug, thiserror::Error)]
pub enum StartRefusal {
    /// A witness cosigned a larger checkpoint than the database holds.
    #[error(
        "witness {witness} cosigned a checkpoint of size {theirs} (root {root}), but this database's log has only {ours} entries: it is older than what the partners saw (a restored old backup or a rewound database). Restore the newest backup (its manifest names its log size) or the database as it was; the gateway does not serve a log that lost entries the partners hold receipts for"
    )]
    Rewound {
        /// The witness.
        witness: String,
        /// The size it cosigned.
        theirs: u64,
        /// That checkpoint's root (hex).
        root: String,
        /// This log's size.
        ours: i64,
    },
    /// A witness cosigned a checkpoint this log's tree does not have.
    #[error(
        "witness {witness} cosigned a checkpoint of size {size} whose root {theirs} is not this log's root at that size ({ours}): the database was changed after that checkpoint (a fork). Restore the database from a backup taken before the change, then run `gateway audit verify`"
    )]
    Forked {
        /// The witness.
        witness: String,
        /// The size.
        size: u64,
        /// Their root, hex.
        theirs: String,
        /// Our root at that size, hex.
        ours: String,
    },
    /// No witness could be asked.
    #[error(
        "none of the covenant's {0} witnesses could be asked for the checkpoint they last cosigned ({1}); so the gateway cannot tell whether this database is the one the partners saw. Check the network and the witnesses' URLs; in a disaster where no witness can be reached, start with `--without-witnesses \"REASON\"`: the start and the reason are recorded in the disclosure log"
    )]
    NoWitness(usize, String),
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The log failed.
    #[error("{0}")]
    Log(#[from] crate::log::LogError),
}

/// The checkpoint a witness last cosigned for the log `origin`
/// (`GET <url>/<sha256(origin)>/checkpoint`), checked: signed by a key of `keys`, of that
/// origin, and carrying the witness's own valid cosignature. `Ok(None)`: it holds nothing for
/// this log yet; `Err`: it could not be asked, or its answer does not verify.
pub async fn witness_latest(
    client: &reqwest::Client,
    url: &str,
    origin: &str,
    keys: &KeySet,
    witness: &CosignVerifier,
) -> Result<Option<Checkpoint>, String> {
    let r = client
        .get(format!(
            "{}/{}/checkpoint",
            url.trim_end_matches('/'),
            origin_hash(origin)
        ))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if r.status().as_u16() == 404 {
        return Ok(None);
    }
    if !r.status().is_success() {
        return Err(format!("status {}", r.status()));
    }
    let note = r.text().await.map_err(|e| error_chain(&e))?;
    let (c, _) = keys
        .verify(&note)
        .map_err(|e| format!("its checkpoint: {e}"))?;
    match witness.verify(&note) {
        Ok(Some(_)) if c.origin == origin => Ok(Some(c)),
        _ => Err("its checkpoint does not carry its own valid cosignature".into()),
    }
}

/// An error with its causes, for a message that says what actually failed.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

impl Witnesses {
    /// No calls yet; `known` are the stored cosignatures (each witness's newest), so that a
    /// restart continues from what the witnesses hold.
    pub fn new(known: &[StoredCosignature]) -> Result<Witnesses, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(WITNESS_TIMEOUT)
            .connect_timeout(WITNESS_TIMEOUT)
            .build()?;
        let seen = known
            .iter()
            .map(|c| {
                (
                    c.witness.clone(),
                    Seen {
                        size: u64::try_from(c.size).ok(),
                        ok_at: Some(c.received_at),
                        ..Seen::default()
                    },
                )
            })
            .collect();
        Ok(Witnesses {
            client,
            seen: Mutex::new(seen),
        })
    }

    fn with_seen<T>(&self, f: impl FnOnce(&mut HashMap<String, Seen>) -> T) -> T {
        match self.seen.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Whether the log is blind at `now` under `set`.
    pub fn blind(&self, set: &WitnessSet, now: i64) -> Option<Blind> {
        if !set.enabled() {
            return None;
        }
        let have = self.with_seen(|seen| {
            set.members
                .iter()
                .filter(|m| {
                    seen.get(&m.name)
                        .and_then(|s| s.ok_at)
                        .is_some_and(|t| now.saturating_sub(t) <= set.blind_after)
                })
                .count()
        });
        (have < set.quorum).then_some(Blind {
            have,
            need: set.quorum,
            bound: u64::try_from(set.blind_after).unwrap_or(u64::MAX),
        })
    }

    /// Each witness's state.
    pub fn status(&self, set: &WitnessSet) -> Vec<WitnessStatus> {
        self.with_seen(|seen| {
            set.members
                .iter()
                .map(|m| {
                    let s = seen.get(&m.name).cloned().unwrap_or_default();
                    WitnessStatus {
                        name: m.name.clone(),
                        size: s.size,
                        cosigned_at: s.ok_at,
                        error: s.error,
                    }
                })
                .collect()
        })
    }

    /// Submits the newest checkpoint to every witness that has not cosigned it, or that was
    /// last asked `refresh` seconds ago or more (a fresh cosignature of the same checkpoint
    /// keeps the log witnessed while it does not grow). Waits for the calls it starts.
    pub async fn round(&self, log: &Log, set: &WitnessSet, now: i64, refresh: i64) {
        let latest = match log.db().latest_checkpoint().await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the latest checkpoint for the witnesses");
                return;
            }
        };
        let Ok(size) = u64::try_from(latest.size) else {
            return;
        };
        let due: Vec<&Member> = self.with_seen(|seen| {
            set.members
                .iter()
                .filter(|m| {
                    let s = seen.entry(m.name.clone()).or_default();
                    let due = !s.busy
                        && (s.size != Some(size)
                            || s.asked_at.is_none_or(|t| now.saturating_sub(t) >= refresh));
                    if due {
                        s.busy = true;
                        s.asked_at = Some(now);
                    }
                    due
                })
                .collect()
        });
        let latest = &latest;
        let calls = due.into_iter().map(|m| async move {
            let result = self.submit(log, m, latest, size, now).await;
            self.with_seen(|seen| {
                let s = seen.entry(m.name.clone()).or_default();
                s.busy = false;
                match result {
                    Ok(()) => {
                        s.size = Some(size);
                        s.ok_at = Some(now);
                        s.error = None;
                    }
                    Err(Submit::Holds(n, why)) => {
                        s.size = Some(n);
                        s.error = Some(why);
                    }
                    Err(Submit::Failed(why)) => {
                        s.error = Some(why);
                        // Asked again at the next round (a second), not after the refresh
                        // interval: a witness that failed once is not left unasked.
                        s.asked_at = None;
                    }
                }
            });
        });
        futures::future::join_all(calls).await;
        let cosigned = self.with_seen(|seen| {
            set.members
                .iter()
                .filter(|m| seen.get(&m.name).and_then(|s| s.size) == Some(size))
                .count()
        });
        crate::metrics::metrics()
            .witnesses_cosigned
            .set(i64::try_from(cosigned).unwrap_or(i64::MAX));
    }

    /// One `add-checkpoint` call (and one retry with the size a 409 names).
    async fn submit(
        &self,
        log: &Log,
        m: &Member,
        latest: &StoredCheckpoint,
        size: u64,
        now: i64,
    ) -> Result<(), Submit> {
        let mut old = self.with_seen(|seen| seen.get(&m.name).and_then(|s| s.size).unwrap_or(0));
        for _ in 0..2 {
            if old > size {
                let why = format!(
                    "witness {} holds a checkpoint of size {old}, beyond this log's {size}: the log was rewound",
                    m.name
                );
                tracing::error!(witness = %m.name, theirs = old, ours = size, "a witness knows a larger log than this one");
                return Err(Submit::Holds(old, why));
            }
            let mut body = format!("old {old}\n");
            if old > 0 && old < size {
                let proof = log
                    .consistency(to_i64(old), latest.size)
                    .await
                    .map_err(|e| Submit::Failed(format!("consistency proof: {e}")))?;
                for h in proof.proof {
                    let bytes = hex::decode(&h).map_err(|_| Submit::Failed("proof".into()))?;
                    body.push_str(&B64.encode(bytes));
                    body.push('\n');
                }
            }
            body.push('\n');
            body.push_str(&latest.note);
            let resp = self
                .client
                .post(format!("{}/add-checkpoint", m.url))
                .header("content-type", "text/plain; charset=utf-8")
                .body(body)
                .send()
                .await
                .map_err(|e| Submit::Failed(format!("cannot reach witness {}: {e}", m.name)))?;
            let status = resp.status().as_u16();
            let conflict = status == 409
                && resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/x.tlog.size"));
            let text = resp.text().await.unwrap_or_else(|e| e.to_string());
            if conflict {
                old = text.trim().parse().map_err(|_| {
                    Submit::Failed(format!("witness {} sent an unreadable size", m.name))
                })?;
                // What the witness holds is known now, whatever the retry below meets: the next
                // round proves consistency from it at once.
                self.with_seen(|seen| seen.entry(m.name.clone()).or_default().size = Some(old));
                tracing::info!(witness = %m.name, theirs = old, ours = size, "a witness holds another size; proving consistency from it");
                continue;
            }
            if status != 200 {
                let why = format!(
                    "witness {} refused the checkpoint of size {size} ({status}): {}",
                    m.name,
                    text.trim()
                );
                if status == 422 {
                    tracing::error!(witness = %m.name, size, "a witness refuses the checkpoint as inconsistent with the one it cosigned: the log may have been changed");
                } else {
                    tracing::warn!(witness = %m.name, size, status, "a witness refused the checkpoint");
                }
                return Err(Submit::Failed(why));
            }
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("\u{2014} {} ", m.name)))
                .ok_or_else(|| Submit::Failed(format!("witness {} sent no cosignature", m.name)))?;
            let ts = m
                .verifier
                .verify(&format!("{}{line}\n", latest.note))
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Submit::Failed(format!(
                        "witness {}'s cosignature does not verify with its covenant key",
                        m.name
                    ))
                })?;
            log.db()
                .put_cosignature(&StoredCosignature {
                    size: latest.size,
                    witness: m.name.clone(),
                    line: format!("{line}\n"),
                    cosigned_at: i64::try_from(ts).unwrap_or(i64::MAX),
                    received_at: now,
                })
                .await
                .map_err(|e| Submit::Failed(format!("storing a cosignature: {e}")))?;
            return Ok(());
        }
        Err(Submit::Failed(format!(
            "witness {} keeps naming another size",
            m.name
        )))
    }

    /// On start: asks every witness for the checkpoint it last cosigned for this log and
    /// compares it with the database. Unreachable witnesses are tolerated while one answers
    /// (returned by name); none answering is [`StartRefusal::NoWitness`].
    pub async fn check_at_start(
        &self,
        log: &Log,
        set: &WitnessSet,
    ) -> Result<Vec<String>, StartRefusal> {
        if !set.enabled() {
            return Ok(Vec::new());
        }
        let keys = log
            .key_set()
            .map_err(|e| StartRefusal::Log(crate::log::LogError::Key(e)))?;
        let asks = set
            .members
            .iter()
            .map(|m| witness_latest(&self.client, &m.url, log.origin(), &keys, &m.verifier));
        let answers = futures::future::join_all(asks).await;
        let head = log.db().log_head().await?;
        let mut unreachable = Vec::new();
        for (m, a) in set.members.iter().zip(answers) {
            match a {
                Err(why) => {
                    tracing::warn!(witness = %m.name, error = %why, "cannot ask a witness on start");
                    unreachable.push(m.name.clone());
                }
                Ok(None) => {}
                Ok(Some(c)) => {
                    if to_i64(c.size) > head.size {
                        return Err(StartRefusal::Rewound {
                            witness: m.name.clone(),
                            theirs: c.size,
                            root: hex::encode(c.root),
                            ours: head.size,
                        });
                    }
                    if c.size > 0 {
                        let ours = log.consistency(to_i64(c.size), head.size).await?.from_root;
                        if ours != hex::encode(c.root) {
                            return Err(StartRefusal::Forked {
                                witness: m.name.clone(),
                                size: c.size,
                                theirs: hex::encode(c.root),
                                ours,
                            });
                        }
                    }
                    self.with_seen(|seen| {
                        seen.entry(m.name.clone()).or_default().size = Some(c.size)
                    });
                }
            }
        }
        if unreachable.len() == set.members.len() {
            return Err(StartRefusal::NoWitness(
                set.members.len(),
                unreachable.join(", "),
            ));
        }
        Ok(unreachable)
    }
}

/// Why one submission did not give a cosignature.
enum Submit {
    /// The witness holds this size (larger than ours).
    Holds(u64, String),
    /// Anything else.
    Failed(String),
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The checkpoint note of `size` with every cosignature stored for it appended.
pub fn with_cosignatures(note: &str, cosignatures: &[StoredCosignature]) -> String {
    let mut out = note.to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    for c in cosignatures {
        out.push_str(&c.line);
    }
    out
}
