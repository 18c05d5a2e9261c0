//! `gateway monitor`: what a partner runs beside its systems to hold the gateway to its log. It
//! pins the log's key and the witnesses' keys, follows the served (cosigned) checkpoints, checks
//! that each is consistent with the last one it saw and with what every witness last cosigned,
//! and that every receipt its partner collected is included by its due time. A fork, a rewind, a
//! missing entry or a late inclusion is a [`Finding`].

use crate::log::checkpoint::{Checkpoint, KeySet};
use crate::log::cosign::CosignVerifier;
use crate::log::merkle::{Hash, verify_consistency, verify_inclusion};
use crate::log::receipt::Receipt;
use crate::witnessing::{error_chain, witness_latest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `monitor.toml`. Relative paths are relative to the file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// The gateway's partner API, e.g. `https://gateway.ipga-r.example:8443`.
    pub gateway: String,
    /// The covenant CA (PEM), which signed the gateway's server certificate.
    pub ca: PathBuf,
    /// The partner's client certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// A file holding the partner's current token for the gateway (kept fresh by its identity
    /// provider's agent); read on every round.
    pub token_file: PathBuf,
    /// The log's verifier keys (current and retired), pinned.
    pub log_vkeys: Vec<String>,
    /// How many of the witnesses must have cosigned the served checkpoint.
    #[serde(default)]
    pub quorum: usize,
    /// The witnesses, pinned.
    #[serde(default, rename = "witness")]
    pub witnesses: Vec<MonitorWitness>,
    /// Where the last checkpoint seen is kept.
    pub state: PathBuf,
    /// A directory of receipts the partner's systems collected (one `audit_receipt` per file).
    #[serde(default)]
    pub receipts: Option<PathBuf>,
    /// Seconds between rounds when running continuously.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Where to serve `/metrics` when running continuously (none: no listener).
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

fn default_interval() -> u64 {
    60
}

/// A witness the monitor asks directly.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorWitness {
    /// Its name.
    pub name: String,
    /// Its verifier key.
    pub vkey: String,
    /// Its base URL.
    pub url: String,
}

/// What the monitor keeps between rounds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MonitorState {
    /// The size of the last consistent checkpoint seen.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// The note itself, as evidence.
    pub note: String,
}

/// Something the partner must know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// The log is smaller than a checkpoint the monitor or a witness saw.
    Rewind {
        /// Who saw the larger log.
        seen_by: String,
        /// The size seen.
        seen: u64,
        /// The size served now.
        served: u64,
    },
    /// The served log is not an extension of a checkpoint the monitor or a witness saw.
    Fork {
        /// Who saw the other checkpoint.
        seen_by: String,
        /// Its size.
        size: u64,
        /// What does not hold.
        detail: String,
    },
    /// A receipt's entry is not in the log as promised.
    MissingEntry {
        /// The receipt's file.
        receipt: String,
        /// Its sequence number.
        seq: u64,
        /// What does not hold.
        detail: String,
    },
    /// A receipt's entry is in no checkpoint after its due time.
    LateInclusion {
        /// The receipt's file.
        receipt: String,
        /// Its sequence number.
        seq: u64,
        /// Its due time.
        due: i64,
        /// The served size.
        served: u64,
    },
    /// A receipt not signed by the log's key, or not a receipt.
    BadReceipt {
        /// The file.
        receipt: String,
        /// Why.
        detail: String,
    },
    /// A receipt that could not be checked this round: the gateway did not answer for its proof
    /// (rate limited, unavailable, unreachable). Not evidence; checked again next round.
    Unchecked {
        /// The receipt's file.
        receipt: String,
        /// Its sequence number.
        seq: u64,
        /// Why it could not be checked.
        detail: String,
    },
    /// The per-subject map holds fewer people than at a checkpoint this monitor saw, or none:
    /// someone's entries were dropped from the index (issue 28).
    SubjectsShrank {
        /// People in the map at the size this monitor saw.
        seen: u64,
        /// People in the map served now (none: no map).
        served: Option<u64>,
    },
    /// The served checkpoint is cosigned by fewer than the quorum.
    Unwitnessed {
        /// Valid cosignatures.
        have: usize,
        /// The quorum.
        need: usize,
    },
}

impl Finding {
    /// Whether it is evidence against the log (a fork, rewind, missing or late entry, a bad
    /// receipt) rather than a warning.
    pub fn is_evidence(&self) -> bool {
        !matches!(
            self,
            Finding::Unwitnessed { .. } | Finding::Unchecked { .. }
        )
    }

    /// Whether it says that a check could not be made (the exit code 2 of `--once`).
    pub fn is_unchecked(&self) -> bool {
        matches!(self, Finding::Unchecked { .. })
    }

    /// A stable short name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Rewind { .. } => "rewind",
            Finding::Fork { .. } => "fork",
            Finding::MissingEntry { .. } => "missing-entry",
            Finding::LateInclusion { .. } => "late-inclusion",
            Finding::BadReceipt { .. } => "bad-receipt",
            Finding::Unchecked { .. } => "unchecked",
            Finding::Unwitnessed { .. } => "unwitnessed",
            Finding::SubjectsShrank { .. } => "subjects-shrank",
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Rewind {
                seen_by,
                seen,
                served,
            } => write!(
                f,
                "REWIND: {seen_by} saw the log at size {seen}, the gateway now serves size {served}: entries were removed"
            ),
            Finding::Fork {
                seen_by,
                size,
                detail,
            } => write!(
                f,
                "FORK: the served log is not an extension of the checkpoint of size {size} {seen_by} saw: {detail}"
            ),
            Finding::MissingEntry {
                receipt,
                seq,
                detail,
            } => write!(f, "MISSING ENTRY: receipt {receipt} (seq {seq}): {detail}"),
            Finding::LateInclusion {
                receipt,
                seq,
                due,
                served,
            } => write!(
                f,
                "LATE INCLUSION: receipt {receipt} (seq {seq}) was due in a checkpoint by {due}; the served checkpoint has only {served} entries"
            ),
            Finding::BadReceipt { receipt, detail } => {
                write!(f, "BAD RECEIPT: {receipt}: {detail}")
            }
            Finding::Unchecked {
                receipt,
                seq,
                detail,
            } => write!(
                f,
                "NOT CHECKED: receipt {receipt} (seq {seq}): the gateway gave no proof this round ({detail}); checked again next round"
            ),
            Finding::SubjectsShrank { seen, served } => write!(
                f,
                "SUBJECTS: the per-subject map held {seen} people when this monitor last looked, and now {}: a person's entries were dropped from the index their report is proven against",
                served.map_or_else(|| "none (no map)".to_owned(), |n| n.to_string())
            ),
            Finding::Unwitnessed { have, need } => write!(
                f,
                "warning: the served checkpoint is cosigned by {have} of the {need} witnesses required"
            ),
        }
    }
}

/// One round's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    /// The served checkpoint's size.
    pub size: u64,
    /// Witnesses whose cosignature of it verifies.
    pub cosigned_by: Vec<String>,
    /// Receipts checked and found included.
    pub receipts_included: usize,
    /// Receipts not yet due.
    pub receipts_pending: usize,
    /// Witnesses that could not be asked (with why).
    pub unreachable: Vec<String>,
    /// What the partner must know.
    pub findings: Vec<Finding>,
}

/// Why a round could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The gateway could not be asked, or answered what it must not.
    #[error("the gateway: {0}")]
    Gateway(String),
    /// The state file.
    #[error("the state file {0}: {1}")]
    State(PathBuf, String),
    /// The gateway could not answer now (rate limited after the retries, unavailable,
    /// unreachable): nothing can be concluded from it.
    #[error("the gateway did not answer now: {0}")]
    Busy(String),
}

/// Why a receipt's inclusion did not hold.
enum Inclusion {
    /// The log does not hold the entry as promised.
    Missing(String),
    /// It could not be checked now.
    Unchecked(String),
}

/// How often a request refused for load (429) is tried again, and the longest wait honoured.
const RETRIES_ON_429: u32 = 3;
const LONGEST_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// A configured monitor.
pub struct Monitor {
    cfg: MonitorConfig,
    base: PathBuf,
    client: reqwest::Client,
    plain: reqwest::Client,
    keys: KeySet,
    witnesses: Vec<(MonitorWitness, CosignVerifier)>,
    origin: String,
}

impl Monitor {
    /// From a configuration and the directory its relative paths are in; `client` is the
    /// partner's mutual-TLS client for the gateway.
    pub fn new(
        cfg: MonitorConfig,
        base: &Path,
        client: reqwest::Client,
    ) -> Result<Monitor, MonitorError> {
        let keys = KeySet::parse(&cfg.log_vkeys.join("\n"))
            .map_err(|e| MonitorError::Config(format!("log_vkeys: {e}")))?;
        let origin = cfg
            .log_vkeys
            .first()
            .and_then(|k| k.split('+').next())
            .unwrap_or_default()
            .to_owned();
        let witnesses = cfg
            .witnesses
            .iter()
            .map(|w| {
                CosignVerifier::from_vkey(&w.vkey)
                    .map(|v| (w.clone(), v))
                    .map_err(|e| MonitorError::Config(format!("witness {}: {e}", w.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.quorum > witnesses.len() {
            return Err(MonitorError::Config(format!(
                "quorum {} with {} witness(es)",
                cfg.quorum,
                witnesses.len()
            )));
        }
        let plain = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| MonitorError::Config(e.to_string()))?;
        Ok(Monitor {
            cfg,
            base: base.to_path_buf(),
            client,
            plain,
            keys,
            witnesses,
            origin,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.cfg
    }

    fn path(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    async fn get(&self, path: &str) -> Result<String, MonitorError> {
        let token_file = self.path(&self.cfg.token_file);
        let token = std::fs::read_to_string(&token_file).map_err(|e| {
            MonitorError::Config(format!("token_file {}: {e}", token_file.display()))
        })?;
        let url = format!("{}{path}", self.cfg.gateway.trim_end_matches('/'));
        let mut tries = 0;
        loop {
            let r = self
                .client
                .get(&url)
                .bearer_auth(token.trim())
                .send()
                .await
                .map_err(|e| MonitorError::Busy(format!("GET {path}: {}", error_chain(&e))))?;
            let status = r.status();
            // Refused for load: wait as long as the gateway asks (bounded), a few times.
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS && tries < RETRIES_ON_429 {
                tries += 1;
                let wait = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(
                        std::time::Duration::from_secs(1),
                        std::time::Duration::from_secs,
                    )
                    .min(LONGEST_RETRY_AFTER);
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = r
                .text()
                .await
                .map_err(|e| MonitorError::Busy(format!("GET {path}: {e}")))?;
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(MonitorError::Busy(format!("GET {path}: {status}")));
            }
            if !status.is_success() {
                return Err(MonitorError::Gateway(format!(
                    "GET {path}: {status}: {text}"
                )));
            }
            return Ok(text);
        }
    }

    async fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, MonitorError> {
        let v: serde_json::Value = serde_json::from_str(
            &self
                .get(&format!("/v1/audit/consistency?from={from}&to={to}"))
                .await?,
        )
        .map_err(|e| MonitorError::Gateway(format!("consistency proof: {e}")))?;
        hashes(v.get("proof"))
    }

    /// Whether the served checkpoint `c` extends the checkpoint (`size`, `root`).
    async fn extends(
        &self,
        c: &Checkpoint,
        size: u64,
        root: &Hash,
    ) -> Result<Option<String>, MonitorError> {
        if size == 0 {
            return Ok(None);
        }
        if size == c.size {
            return Ok((c.root != *root).then(|| {
                format!(
                    "same size, another root ({} here, {} there)",
                    hex::encode(c.root),
                    hex::encode(root)
                )
            }));
        }
        let proof = match self.consistency(size, c.size).await {
            Ok(p) => p,
            Err(e) => {
                return Ok(Some(format!(
                    "the gateway gives no consistency proof ({e})"
                )));
            }
        };
        Ok((!verify_consistency(size, c.size, root, &c.root, &proof))
            .then(|| "the gateway's consistency proof does not verify".to_owned()))
    }

    /// One round: the served checkpoint against the state, the witnesses and the receipts.
    /// The state advances only when nothing was found against the log.
    pub async fn round(&self, now: i64) -> Result<Round, MonitorError> {
        let note = self.get("/v1/audit/checkpoint").await?;
        let (c, _) = self
            .keys
            .verify(&note)
            .map_err(|e| MonitorError::Gateway(format!("the served checkpoint: {e}")))?;
        if c.origin != self.origin {
            return Err(MonitorError::Gateway(format!(
                "the served checkpoint is of log {}, not {}",
                c.origin, self.origin
            )));
        }
        let mut round = Round {
            size: c.size,
            ..Round::default()
        };
        for (w, v) in &self.witnesses {
            if matches!(v.verify(&note), Ok(Some(_))) {
                round.cosigned_by.push(w.name.clone());
            }
        }
        if round.cosigned_by.len() < self.cfg.quorum {
            round.findings.push(Finding::Unwitnessed {
                have: round.cosigned_by.len(),
                need: self.cfg.quorum,
            });
        }
        // Against what this monitor saw last.
        let state = self.load_state()?;
        if let Some(s) = &state {
            let root = parse_hex(&s.root).ok_or_else(|| {
                MonitorError::State(self.path(&self.cfg.state), "unreadable root".into())
            })?;
            if s.size > c.size {
                round.findings.push(Finding::Rewind {
                    seen_by: "this monitor".into(),
                    seen: s.size,
                    served: c.size,
                });
            } else if let Some(detail) = self.extends(&c, s.size, &root).await? {
                round.findings.push(Finding::Fork {
                    seen_by: "this monitor".into(),
                    size: s.size,
                    detail,
                });
            }
            // The per-subject map only grows: nobody leaves it (issue 28).
            use crate::log::subjects::MapHead;
            if let Some(seen) = MapHead::in_note(&s.note).map(|m| m.size) {
                let served = MapHead::from_lines(&c.extensions).map(|m| m.size);
                if served.is_none_or(|n| n < seen) {
                    round
                        .findings
                        .push(Finding::SubjectsShrank { seen, served });
                }
            }
        }
        // Against what each witness last cosigned.
        for (w, v) in &self.witnesses {
            match witness_latest(&self.plain, &w.url, &self.origin, &self.keys, v).await {
                Err(why) => round.unreachable.push(format!("{}: {why}", w.name)),
                Ok(None) => {}
                Ok(Some(wc)) => {
                    if wc.size > c.size {
                        round.findings.push(Finding::Rewind {
                            seen_by: format!("witness {}", w.name),
                            seen: wc.size,
                            served: c.size,
                        });
                    } else if let Some(detail) = self.extends(&c, wc.size, &wc.root).await? {
                        round.findings.push(Finding::Fork {
                            seen_by: format!("witness {}", w.name),
                            size: wc.size,
                            detail,
                        });
                    }
                }
            }
        }
        self.receipts(&c, now, &mut round).await?;
        if !round.findings.iter().any(Finding::is_evidence) {
            self.save_state(&MonitorState {
                size: c.size,
                root: hex::encode(c.root),
                note,
            })?;
        }
        Ok(round)
    }

    async fn receipts(
        &self,
        c: &Checkpoint,
        now: i64,
        round: &mut Round,
    ) -> Result<(), MonitorError> {
        let Some(dir) = &self.cfg.receipts else {
            return Ok(());
        };
        let dir = self.path(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| MonitorError::Config(format!("receipts {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) => {
                    round.findings.push(Finding::BadReceipt {
                        receipt: name,
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            let r = match Receipt::verify(&text, &self.keys) {
                Ok(r) if r.origin == self.origin => r,
                Ok(r) => {
                    round.findings.push(Finding::BadReceipt {
                        receipt: name,
                        detail: format!("a receipt of log {}", r.origin),
                    });
                    continue;
                }
                Err(e) => {
                    round.findings.push(Finding::BadReceipt {
                        receipt: name,
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            if r.seq > c.size || r.seq == 0 {
                if now > r.due {
                    round.findings.push(Finding::LateInclusion {
                        receipt: name,
                        seq: r.seq,
                        due: r.due,
                        served: c.size,
                    });
                } else {
                    round.receipts_pending += 1;
                }
                continue;
            }
            match self.included(&r, c).await {
                Ok(()) => round.receipts_included += 1,
                Err(Inclusion::Missing(detail)) => round.findings.push(Finding::MissingEntry {
                    receipt: name,
                    seq: r.seq,
                    detail,
                }),
                // The gateway did not give the proof: not evidence that the entry is missing.
                Err(Inclusion::Unchecked(detail)) => round.findings.push(Finding::Unchecked {
                    receipt: name,
                    seq: r.seq,
                    detail,
                }),
            }
        }
        Ok(())
    }

    /// Whether the receipt's leaf is at its place in the served tree. A proof the gateway did
    /// not give (it refused for load or was unreachable) leaves the receipt unchecked; a proof
    /// it gave that does not hold, or a refusal that names the entry, is a missing entry.
    async fn included(&self, r: &Receipt, c: &Checkpoint) -> Result<(), Inclusion> {
        let text = self
            .get(&format!("/v1/audit/proof/{}?size={}", r.seq, c.size))
            .await
            .map_err(|e| match e {
                MonitorError::Busy(why) => Inclusion::Unchecked(why),
                e => Inclusion::Missing(format!("no inclusion proof ({e})")),
            })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Inclusion::Missing(e.to_string()))?;
        let proof = hashes(v.get("proof")).map_err(|e| Inclusion::Missing(e.to_string()))?;
        if verify_inclusion(&r.leaf, r.seq - 1, c.size, &proof, &c.root) {
            Ok(())
        } else {
            Err(Inclusion::Missing(format!(
                "the entry at seq {} is not the one the receipt names (leaf {}): it was changed or removed",
                r.seq,
                hex::encode(r.leaf)
            )))
        }
    }

    fn load_state(&self) -> Result<Option<MonitorState>, MonitorError> {
        let p = self.path(&self.cfg.state);
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| MonitorError::State(p, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(MonitorError::State(p, e.to_string())),
        }
    }

    fn save_state(&self, s: &MonitorState) -> Result<(), MonitorError> {
        let p = self.path(&self.cfg.state);
        let tmp = p.with_extension("tmp");
        let text = serde_json::to_string_pretty(s)
            .map_err(|e| MonitorError::State(p.clone(), e.to_string()))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| MonitorError::State(p, e.to_string()))
    }
}

fn parse_hex(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}

fn hashes(v: Option<&serde_json::Value>) -> Result<Vec<Hash>, MonitorError> {
    v.and_then(serde_json::Value::as_array)
        .ok_or_else(|| MonitorError::Gateway("a proof without `proof`".into()))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(parse_hex)
                .ok_or_else(|| MonitorError::Gateway("a proof hash is not hex".into()))
        })
        .collect()
}
