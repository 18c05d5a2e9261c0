//! Backups that cannot rewind history unseen: a consistent online copy of the SQLite database,
//! encrypted with age to an operator's recipient, and a manifest of the log it holds (size,
//! root, latest checkpoint). A restore checks the copy against its manifest and verifies the
//! whole log; the gateway's start then compares it with what the witnesses cosigned, so an old
//! backup restored is refused while the witnesses know a later checkpoint.

use crate::log::checkpoint::KeySet;
use crate::store::{Db, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What a backup holds, beside it in `FILE.manifest.json` (no personal data: sizes and hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `gateway-backup/v1`.
    pub format: String,
    /// `sqlite` (an encrypted copy) or `postgres` (the manifest of a `pg_dump` taken beside it).
    pub database: String,
    /// When it was taken (unix seconds).
    pub taken_at: i64,
    /// The log's origin.
    pub origin: String,
    /// Entries in the log.
    pub log_size: i64,
    /// The tree root at that size, hex (none for an empty log).
    pub log_root: Option<String>,
    /// The latest signed checkpoint in it (with its cosignatures), if any.
    pub checkpoint: Option<String>,
    /// SHA-256 of the encrypted file, hex (SQLite only).
    pub encrypted_sha256: Option<String>,
    /// The gateway version that took it.
    pub gateway_version: String,
}

/// The manifest format name.
pub const FORMAT: &str = "gateway-backup/v1";

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A file.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Encryption or decryption.
    #[error("age: {0}")]
    Age(String),
    /// The backup does not match its manifest, or its log does not verify.
    #[error("{0}")]
    Invalid(String),
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(p.to_path_buf(), e)
}

/// The manifest path of a backup file.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

/// Reads the log's head and latest checkpoint (with cosignatures) from `db`.
pub async fn describe(
    db: &Db,
    origin: &str,
    database: &str,
    taken_at: i64,
) -> Result<Manifest, StoreError> {
    let head = db.log_head().await?;
    let checkpoint = match db.latest_checkpoint().await? {
        Some(c) => {
            let lines = db.cosignatures(Some(c.size)).await?;
            Some(crate::witnessing::with_cosignatures(&c.note, &lines))
        }
        None => None,
    };
    Ok(Manifest {
        format: FORMAT.into(),
        database: database.into(),
        taken_at,
        origin: origin.into(),
        log_size: head.size,
        log_root: head.root.map(hex::encode),
        checkpoint,
        encrypted_sha256: None,
        gateway_version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Takes a consistent copy of the SQLite database `db` (one read snapshot while the gateway
/// keeps writing), encrypts it to `recipient` into `output`, and writes the manifest beside it.
pub async fn backup_sqlite(
    db: &Db,
    origin: &str,
    recipient: &age::x25519::Recipient,
    output: &Path,
    taken_at: i64,
) -> Result<Manifest, BackupError> {
    let dir = output.parent().unwrap_or(Path::new("."));
    let snapshot = dir.join(format!(
        ".gateway-backup-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let result = async {
        db.snapshot_into(&snapshot).await?;
        let copy = Db::connect(&format!("sqlite://{}", snapshot.display())).await?;
        let mut manifest = describe(&copy, origin, "sqlite", taken_at).await?;
        copy.close().await;
        let digest = encrypt_file(&snapshot, recipient, output)?;
        manifest.encrypted_sha256 = Some(digest);
        write_manifest(output, &manifest)?;
        Ok(manifest)
    }
    .await;
    let _ = std::fs::remove_file(&snapshot);
    result
}

fn write_manifest(output: &Path, m: &Manifest) -> Result<(), BackupError> {
    let path = manifest_path(output);
    let text = serde_json::to_string_pretty(m).map_err(|e| BackupError::Invalid(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(io(&path))
}

/// Writes the manifest of a PostgreSQL database (for the `pg_dump` file at `output`).
pub async fn manifest_postgres(
    db: &Db,
    origin: &str,
    output: &Path,
    taken_at: i64,
) -> Result<Manifest, BackupError> {
    let m = describe(db, origin, "postgres", taken_at).await?;
    write_manifest(output, &m)?;
    Ok(m)
}

/// Encrypts `input` to `recipient` into `output`; returns the SHA-256 of what was written.
fn encrypt_file(
    input: &Path,
    recipient: &age::x25519::Recipient,
    output: &Path,
) -> Result<String, BackupError> {
    let tmp = output.with_extension("partial");
    let mut src = std::fs::File::open(input).map_err(io(input))?;
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let hashing = HashingWriter {
        inner: std::io::BufWriter::new(file),
        hash: Sha256::new(),
    };
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| BackupError::Age(e.to_string()))?;
    let mut w = enc
        .wrap_output(hashing)
        .map_err(|e| BackupError::Age(e.to_string()))?;
    std::io::copy(&mut src, &mut w).map_err(io(input))?;
    let mut hashing = w.finish().map_err(io(&tmp))?;
    hashing.inner.flush().map_err(io(&tmp))?;
    hashing.inner.get_ref().sync_all().map_err(io(&tmp))?;
    let digest = hex::encode(hashing.hash.finalize());
    std::fs::rename(&tmp, output).map_err(io(output))?;
    Ok(digest)
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Restores a SQLite backup to `target` (which must not exist): the file's hash against its
/// manifest, decrypted with `identity`, the whole log verified with `keys`, its head against
/// the manifest. Returns the manifest and the verification report.
pub async fn restore_sqlite(
    file: &Path,
    identity: &age::x25519::Identity,
    keys: &KeySet,
    target: &Path,
) -> Result<(Manifest, crate::log::verify::Report), BackupError> {
    let mpath = manifest_path(file);
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(&mpath).map_err(io(&mpath))?)
            .map_err(|e| BackupError::Invalid(format!("{}: {e}", mpath.display())))?;
    if manifest.format != FORMAT || manifest.database != "sqlite" {
        return Err(BackupError::Invalid(format!(
            "{} is not the manifest of a SQLite backup ({FORMAT})",
            mpath.display()
        )));
    }
    let bytes = std::fs::read(file).map_err(io(file))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if manifest.encrypted_sha256.as_deref() != Some(digest.as_str()) {
        return Err(BackupError::Invalid(format!(
            "{} does not match its manifest (SHA-256 {digest}): not the file the backup wrote",
            file.display()
        )));
    }
    if target.exists() {
        return Err(BackupError::Invalid(format!(
            "{} exists: restore to a new path (and point database_url at it), or move it away first",
            target.display()
        )));
    }
    let tmp = target.with_extension("restoring");
    {
        let dec = age::Decryptor::new(&bytes[..]).map_err(|e| BackupError::Age(e.to_string()))?;
        let mut r = dec
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|e| BackupError::Age(e.to_string()))?;
        let mut out = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).map_err(io(file))?;
        out.write_all(&buf).map_err(io(&tmp))?;
        out.sync_all().map_err(io(&tmp))?;
    }
    let checked = async {
        let db = Db::connect(&format!("sqlite://{}", tmp.display())).await?;
        let report = crate::log::verify::verify(&db, keys, |_| {}).await?;
        let head = db.log_head().await?;
        db.close().await;
        Ok::<_, StoreError>((report, head))
    }
    .await;
    let (report, head) = match checked {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    let problem = if let Some((seq, why)) = &report.first_bad {
        Some(format!(
            "the restored log does not verify at sequence number {seq}: {why}"
        ))
    } else if head.size != manifest.log_size || head.root.map(hex::encode) != manifest.log_root {
        Some(format!(
            "the restored log has {} entries, its manifest says {}",
            head.size, manifest.log_size
        ))
    } else {
        None
    };
    if let Some(p) = problem {
        let _ = std::fs::remove_file(&tmp);
        return Err(BackupError::Invalid(p));
    }
    std::fs::rename(&tmp, target).map_err(io(target))?;
    Ok((manifest, report))
}
