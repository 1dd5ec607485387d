//! The credential store: per-session credentials, persisted status, backups and the session
//! lock, behind the `CredentialStore` trait: files ([`FileStore`]) or Redis ([`RedisStore`], clustered).
//!
//! Layout of [`FileStore`] (directories 0700, files 0600):
//! ```text
//! <data_dir>/sessions.lock             every session's OS lock, one byte each (Linux)
//! <data_dir>/<session id>/
//!     creds.wasp                       credentials (sealed: version, kind, length, SHA-256)
//!     status.wasp                      PersistedStatus (sealed the same way)
//!     session.lock                     holder pid/host/time (elsewhere than Linux, the lock too)
//!     backups/creds-000012-20260415T101500Z.wasp
//!     creds.wasp.corrupt-20260415T101500Z   a refused file, kept for inspection
//! ```
//! Every method blocks on file I/O and fsync: async callers run it in `spawn_blocking`.
//! Callers hold the session's [`SessionLock`] while they write.

pub mod app_state_keys;
mod atomic;
mod backup;
mod cached;
mod error;
mod file;
pub mod keys;
mod keys_backup;
mod lock;
pub mod mirror;
pub mod outbox;
pub mod redis;
mod row_codec;
pub mod signal;
pub mod signal_keys;
pub mod tally;
mod utc;
pub mod webhook_queue;

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use atomic::{DirectWrites, EnvelopeError, FORMAT_VERSION, WriteSeam};
/// The sealed envelope of store files, for the fuzz targets (`crate::fuzzing`).
pub(crate) use atomic::{Kind as EnvelopeKind, open as open_envelope, seal as seal_envelope};
pub use error::StoreError;
pub use file::FileStore;
pub use lock::{LockHolder, SessionLock};
pub use redis::{Fences, RedisStore};

/// Serialized credentials as read from the store: zeroed on drop, `Debug` prints no byte of it.
pub struct SecretBody(Zeroizing<Vec<u8>>);

impl SecretBody {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBody(Zeroizing::new(bytes))
    }

    /// The bytes, for deserializing; never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBody(<redacted, {} bytes>)", self.0.len())
    }
}

/// One kept backup of a session's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Grows by one with each backup of the session; the newest has the highest.
    pub seq: u64,
    pub path: PathBuf,
    /// When it was written (to the second, from its name).
    pub written_at: SystemTime,
}

/// Where a loaded value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadSource {
    /// The current file, which verified.
    Current,
    /// The current file was refused; this backup verified and now is the current file again.
    Backup(BackupInfo),
    /// The current file was refused and nothing can replace it: defaults (status only).
    Defaults,
}

/// A value read from the store, with what happened on the way (for the session's timeline).
#[derive(Debug)]
pub struct Loaded<T> {
    pub value: T,
    pub source: LoadSource,
    /// The file the value came from.
    pub path: PathBuf,
    /// Why the current file was refused, when it was
    /// (`creds.wasp was refused: its checksum does not match its content`).
    pub rejected: Option<String>,
    /// Where the refused current file was kept (`*.corrupt-<time>`).
    pub corrupt_kept: Option<PathBuf>,
    /// Backups that failed verification on the way, now kept as `*.corrupt-<time>`.
    pub backups_set_aside: Vec<PathBuf>,
}

impl<T> Loaded<T> {
    /// Read from the current file with nothing to report.
    pub fn current(value: T, path: PathBuf) -> Self {
        Loaded {
            value,
            source: LoadSource::Current,
            path,
            rejected: None,
            corrupt_kept: None,
            backups_set_aside: Vec::new(),
        }
    }

    /// One sentence for the session's timeline when the load had to fall back, else `None`.
    pub fn timeline_note(&self) -> Option<String> {
        let rejected = self.rejected.as_deref()?;
        let from = match &self.source {
            LoadSource::Current => return None,
            LoadSource::Backup(b) => format!(
                "restored backup {} written {}",
                b.seq,
                utc::readable(b.written_at)
            ),
            LoadSource::Defaults => "started from defaults".to_owned(),
        };
        let kept = self.corrupt_kept.as_ref().map_or_else(String::new, |p| {
            format!("; the bad file is kept as {}", p.display())
        });
        Some(format!("{rejected}; {from}{kept}"))
    }

    /// Converts the value, keeping the provenance.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Loaded<U>, E> {
        Ok(Loaded {
            value: f(self.value)?,
            source: self.source,
            path: self.path,
            rejected: self.rejected,
            corrupt_kept: self.corrupt_kept,
            backups_set_aside: self.backups_set_aside,
        })
    }
}

/// What a session remembers across restarts besides its keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PersistedStatus {
    /// Meant to be online when wasp last stopped or died (`State::wants_online`): such
    /// sessions reconnect at start. (Files from before the unwritten counters were dropped
    /// still load: unknown fields are ignored.)
    pub was_online: bool,
    /// The paired phone (`+15551234567`), once known.
    pub phone: Option<String>,
    pub paired_at: Option<SystemTime>,
    pub last_online_at: Option<SystemTime>,
}

/// Whether a wipe takes one last backup first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastBackup {
    /// Back up first, keeping the newest `keep` backups; if the backup cannot be written the
    /// wipe does not happen.
    Take { keep: u32 },
    /// Remove the key material without a backup.
    Skip,
}

/// What a wipe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WipeReport {
    /// False when there were no credentials to remove.
    pub removed: bool,
    pub backup: Option<BackupInfo>,
    /// Why a requested backup was not taken (the credentials file was already corrupt).
    pub backup_skipped: Option<String>,
}

/// Storage of per-session credentials, status, backups and the session lock. Object safe, so the
/// pool can hold an `Arc<dyn CredentialStore>`; bodies are opaque serialized bytes.
pub trait CredentialStore: Send + Sync {
    /// The current credentials. `Ok(None)`: the session has none (never paired, or wiped).
    /// A refused file (checksum, truncation, unknown version) falls back to the newest good
    /// backup, which becomes current again; the bad file is kept aside and the answer says so.
    /// With no good backup: [`StoreError::NoUsableCredentials`] (the session is `logged_out`).
    /// Call it holding the session's lock, since a fallback moves files.
    fn load(&self, session: &str) -> Result<Option<Loaded<SecretBody>>, StoreError>;

    /// Replaces the credentials atomically; on error the previous ones are intact.
    fn save(&self, session: &str, body: &[u8]) -> Result<(), StoreError>;

    /// Copies the current (verified) credentials to a new backup, reads it back to verify it,
    /// then keeps only the newest `keep` backups (at least one).
    fn backup(&self, session: &str, keep: u32) -> Result<BackupInfo, StoreError>;

    /// Kept backups, oldest first.
    fn list_backups(&self, session: &str) -> Result<Vec<BackupInfo>, StoreError>;

    /// When the newest backup was written.
    fn last_backup_at(&self, session: &str) -> Result<Option<SystemTime>, StoreError> {
        Ok(self.list_backups(session)?.last().map(|b| b.written_at))
    }

    /// Removes the key material (the credentials file and temp files of interrupted writes),
    /// after one last backup unless told to skip it. Backups and `*.corrupt-*` copies stay.
    fn wipe(&self, session: &str, last_backup: LastBackup) -> Result<WipeReport, StoreError>;

    /// Takes the session's lock for as long as the returned guard lives, or fails with
    /// [`StoreError::Locked`] naming the holder.
    fn lock(&self, session: &str) -> Result<SessionLock, StoreError>;

    /// Who holds the session's lock, if anyone (this store included). The answer can be stale
    /// at once, so use [`CredentialStore::lock`] itself to start a session, not probe-then-lock.
    fn is_locked(&self, session: &str) -> Result<Option<LockHolder>, StoreError>;

    /// Replaces the persisted status atomically.
    fn save_status(&self, session: &str, status: &PersistedStatus) -> Result<(), StoreError>;

    /// The persisted status; `Ok(None)` when none was saved. A refused file is kept aside and
    /// the answer carries defaults with [`LoadSource::Defaults`].
    fn load_status(&self, session: &str) -> Result<Option<Loaded<PersistedStatus>>, StoreError>;
}

/// Typed helpers over any [`CredentialStore`]: serde JSON in and out.
pub trait CredentialStoreExt: CredentialStore {
    /// Serializes `value` to JSON and saves it.
    fn save_json<T: Serialize + ?Sized>(&self, session: &str, value: &T) -> Result<(), StoreError> {
        let body =
            serde_json::to_vec(value)
                .map(Zeroizing::new)
                .map_err(|e| StoreError::Encode {
                    session: session.to_owned(),
                    what: "credentials",
                    detail: error::describe_json_error(&e),
                })?;
        self.save(session, &body)
    }

    /// Loads and deserializes the credentials (see [`CredentialStore::load`]).
    fn load_json<T: DeserializeOwned>(
        &self,
        session: &str,
    ) -> Result<Option<Loaded<T>>, StoreError> {
        let Some(loaded) = self.load(session)? else {
            return Ok(None);
        };
        let path = loaded.path.clone();
        loaded
            .try_map(|body| serde_json::from_slice(body.expose()))
            .map(Some)
            .map_err(|e| StoreError::Decode {
                session: session.to_owned(),
                what: "credentials",
                path,
                detail: error::describe_json_error(&e),
            })
    }
}

impl<S: CredentialStore + ?Sized> CredentialStoreExt for S {}
