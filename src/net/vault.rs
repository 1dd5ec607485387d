//! A session's view of the credential store: typed credentials in and out, the session
//! lock held for the driver's whole life, backup bookkeeping and the persisted status.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tracing::warn;

use crate::session::status::Backups;
use crate::store::keys::KeyStore;
use crate::store::{
    CredentialStore, CredentialStoreExt, LastBackup, PersistedStatus, SessionLock, StoreError,
};
use crate::wa::creds::Credentials;

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Another process runs this session (the message names it).
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Store(String),
    /// The store could not be asked (Redis unreachable); asking again may work.
    #[error("{0}")]
    Unavailable(String),
}

/// What the driver starts from.
pub struct Opened {
    pub credentials: Option<Credentials>,
    /// No usable credentials although some were stored (the session is `logged_out`).
    pub problem: Option<String>,
    /// The load fell back to a backup: one sentence for the timeline.
    pub note: Option<String>,
    /// The store could not be asked at all (Redis unreachable): nothing is known about the
    /// credentials, so the session must not start (and must not be called logged out).
    pub unavailable: Option<String>,
}

/// What a driver starts from (see [`Vault::stored`]).
pub type Stored = (Opened, bool, Backups);

/// One session's handle on the store; holds the session lock until dropped.
pub struct Vault {
    store: Arc<dyn CredentialStore>,
    id: String,
    keep: u32,
    status: PersistedStatus,
    backups: Backups,
    _lock: SessionLock,
}

/// The extension of a key snapshot beside `creds-<seq>-<utc>.wasp`.
const KEYS_BACKUP: &str = "keys.db";

/// Removes key snapshots whose credential backup was pruned.
fn prune_key_backups(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(&format!(".{KEYS_BACKUP}"))
            && !dir.join(format!("{stem}.wasp")).exists()
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn to_instant(t: SystemTime) -> Instant {
    let age = SystemTime::now().duration_since(t).unwrap_or_default();
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}

impl Vault {
    /// Takes the session's lock and reads its persisted status.
    pub fn open(store: Arc<dyn CredentialStore>, id: &str, keep: u32) -> Result<Vault, VaultError> {
        let lock = store.lock(id).map_err(|e| match e {
            StoreError::Locked { .. } => VaultError::Locked(e.to_string()),
            other => VaultError::Store(other.to_string()),
        })?;
        let status = match store.load_status(id) {
            Ok(Some(loaded)) => loaded.value,
            Ok(None) => PersistedStatus::default(),
            // Starting from defaults would forget that the session was online.
            Err(e @ StoreError::Redis { .. }) => {
                return Err(VaultError::Unavailable(e.to_string()));
            }
            Err(e) => {
                warn!(session = %id, error = %e, "persisted status unreadable; starting fresh");
                PersistedStatus::default()
            }
        };
        let mut vault = Vault {
            store,
            id: id.to_string(),
            keep: keep.max(1),
            status,
            backups: Backups::default(),
            _lock: lock,
        };
        vault.refresh_backups();
        Ok(vault)
    }

    fn refresh_backups(&mut self) {
        if let Ok(list) = self.store.list_backups(&self.id) {
            self.backups = Backups {
                count: u32::try_from(list.len()).unwrap_or(u32::MAX),
                last_at: list.last().map(|b| to_instant(b.written_at)),
            };
        }
    }

    /// Loads the credentials (falling back to a backup when the current file is bad).
    pub fn load(&self) -> Opened {
        match self.store.load_json::<Credentials>(&self.id) {
            Ok(None) => Opened {
                credentials: None,
                problem: None,
                note: None,
                unavailable: None,
            },
            Ok(Some(loaded)) => Opened {
                note: loaded.timeline_note(),
                credentials: Some(loaded.value),
                problem: None,
                unavailable: None,
            },
            Err(e @ (StoreError::Redis { .. } | StoreError::Fenced { .. })) => Opened {
                credentials: None,
                problem: None,
                note: None,
                unavailable: Some(e.to_string()),
            },
            Err(e) => Opened {
                credentials: None,
                problem: Some(e.to_string()),
                note: None,
                unavailable: None,
            },
        }
    }

    /// Saves the credentials atomically.
    pub fn save(&mut self, creds: &Credentials) -> Result<(), StoreError> {
        self.store.save_json(&self.id, creds)?;
        if let Some(account) = &creds.account
            && self.status.phone.as_deref() != Some(account.phone.as_str())
        {
            self.status.phone = Some(account.phone.clone());
            self.status.paired_at = Some(SystemTime::now());
            self.write_status();
        }
        Ok(())
    }

    /// Writes and verifies a backup, keeping the newest `keep`, and beside it a snapshot of
    /// this session's rows of the key database (`<backup>.keys.db`, when the backup is a file).
    pub fn backup(&mut self, keys: &KeyStore) -> Result<(), VaultError> {
        let result = self.store.backup(&self.id, self.keep);
        self.refresh_backups();
        let info = result.map_err(|e| VaultError::Store(e.to_string()))?;
        let Some(dir) = info.path.parent().filter(|d| d.is_dir()) else {
            return Ok(());
        };
        keys.backup_session_to(&self.id, &info.path.with_extension(KEYS_BACKUP))
            .map_err(|e| VaultError::Store(e.to_string()))?;
        prune_key_backups(dir);
        Ok(())
    }

    /// Removes the key material (after one last backup when `backup`).
    pub fn wipe(&mut self, backup: bool) -> Result<(), StoreError> {
        let last = if backup {
            LastBackup::Take { keep: self.keep }
        } else {
            LastBackup::Skip
        };
        let result = self.store.wipe(&self.id, last).map(|_| ());
        self.refresh_backups();
        result
    }

    /// What a driver starts from: the credentials, whether the session was online when the
    /// last process stopped, and the backup figures.
    pub fn stored(&self) -> Stored {
        (self.load(), self.was_online(), self.backup_info())
    }

    /// The backup figures, as the session machine takes them.
    pub fn backup_info(&self) -> Backups {
        self.backups
    }

    /// True when the session was online when the last process stopped.
    pub fn was_online(&self) -> bool {
        self.status.was_online
    }

    /// Records whether the session is online now (read at the next start).
    pub fn set_online(&mut self, online: bool) {
        if self.status.was_online != online {
            self.status.was_online = online;
            if online {
                self.status.last_online_at = Some(SystemTime::now());
            }
            self.write_status();
        }
    }

    fn write_status(&self) {
        if let Err(e) = self.store.save_status(&self.id, &self.status) {
            warn!(session = %self.id, error = %e, "could not save session status");
        }
    }
}

/// Store calls running at once in the whole process. Thousands of sessions saving together
/// would otherwise start hundreds of blocking threads that compete with the async workers for
/// the CPU; a few threads keep the disk busy just as well (docs/benchmarks.md).
pub const STORE_THREADS: usize = 8;

static STORE_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STORE_THREADS);

/// The vault as a driver holds it. Every call runs on tokio's blocking pool, so file I/O and
/// fsync never occupy an async worker; the driver awaits each call, so calls of one session
/// run one at a time and in order (the mutex is therefore never contended).
#[derive(Clone)]
pub struct VaultHandle {
    inner: Arc<Mutex<Vault>>,
}

impl VaultHandle {
    pub fn new(vault: Vault) -> Self {
        VaultHandle {
            inner: Arc::new(Mutex::new(vault)),
        }
    }

    /// Opens a session's vault on the blocking pool (see [`Vault::open`]) and, in the same
    /// trip, reads what the driver starts from and runs `also` (a pool's start makes
    /// thousands of these, and each trip to the blocking pool costs two thread hand-offs).
    pub async fn open<T: Send + 'static>(
        store: Arc<dyn CredentialStore>,
        id: &str,
        keep: u32,
        also: impl FnOnce() -> T + Send + 'static,
    ) -> Result<(VaultHandle, Stored, T), VaultError> {
        let id = id.to_string();
        on_store_thread(move || {
            let vault = Vault::open(store, &id, keep)?;
            let stored = vault.stored();
            Ok((VaultHandle::new(vault), stored, also()))
        })
        .await
        .ok_or_else(|| VaultError::Store("opening the store did not finish".to_string()))?
    }

    /// Runs `call` with the vault on the blocking pool; `None` if it panicked (logged).
    pub async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Vault) -> T + Send + 'static,
    ) -> Option<T> {
        let inner = self.inner.clone();
        on_store_thread(move || {
            // A panic inside a store call cannot leave the vault half-updated in a way a later
            // call relies on (each call re-reads what it needs), so a poisoned lock is usable.
            let mut vault = inner.lock().unwrap_or_else(|p| p.into_inner());
            call(&mut vault)
        })
        .await
    }
}

/// Runs `work` on the blocking pool, at most `STORE_THREADS` of them in the whole process at
/// a time (the rest wait their turn without holding a thread); `None` if it panicked (logged).
async fn on_store_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    // The semaphore is never closed, so acquiring cannot fail; were it closed, the call would
    // run without a permit rather than be refused.
    let permit = STORE_SLOTS.acquire().await.ok();
    let done = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await;
    match done {
        Ok(value) => Some(value),
        Err(e) => {
            warn!(error = %e, "a store call did not finish");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FileStore;
    use std::time::Duration;

    /// On a runtime with one thread, a store call that blocks until told to finish must leave
    /// that thread free: another task runs and releases it. Were the call run on the runtime
    /// thread, nothing could release it and it would give up after its own timeout.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_store_call_leaves_the_runtime_thread_free() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let store: Arc<dyn CredentialStore> = Arc::new(FileStore::new(dir.path()));
        let (vault, _, ()) = VaultHandle::open(store, "s", 1, || ())
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let call = tokio::spawn({
            let vault = vault.clone();
            async move {
                vault
                    .run(move |v| {
                        let freed = released.recv_timeout(Duration::from_secs(10)).is_ok();
                        v.set_online(true);
                        freed
                    })
                    .await
            }
        });
        // Let the store call start, then answer from another task on the same thread.
        tokio::task::yield_now().await;
        let answer = tokio::spawn(async move { release.send(()).is_ok() });
        assert_eq!(answer.await.ok(), Some(true));
        assert_eq!(
            call.await.ok().flatten(),
            Some(true),
            "the store call was released by a task on the runtime thread"
        );
        assert_eq!(vault.run(|v| v.was_online()).await, Some(true));
    }

    /// Each credential backup carries this session's key rows (not another's) beside it at
    /// 0600, and key snapshots go when their backup is pruned.
    #[test]
    fn a_backup_holds_the_sessions_signal_rows() {
        use crate::store::SecretBody;
        use crate::store::signal::{SignalKind, SignalWrite};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let store: Arc<dyn CredentialStore> = Arc::new(FileStore::new(dir.path()));
        let keys = KeyStore::in_data_dir(dir.path());
        let put = |session: &str, name: &str| {
            let write = SignalWrite::Put {
                kind: SignalKind::Session,
                name: name.into(),
                value: SecretBody::new(name.as_bytes().to_vec()),
            };
            keys.signal_apply(session, &[write])
                .unwrap_or_else(|e| panic!("apply: {e}"));
        };
        put("s", "111.0");
        put("other", "222.0");
        let mut vault = Vault::open(store.clone(), "s", 2).unwrap_or_else(|e| panic!("{e}"));
        vault
            .save(&Credentials::generate())
            .unwrap_or_else(|e| panic!("save: {e}"));
        for _ in 0..3 {
            vault
                .backup(&keys)
                .unwrap_or_else(|e| panic!("backup: {e}"));
        }
        let backups = store.list_backups("s").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(backups.len(), 2);
        let snapshots: Vec<_> = std::fs::read_dir(backups[0].path.parent().unwrap_or(dir.path()))
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".keys.db"))
            .collect();
        assert_eq!(snapshots.len(), 2, "one key snapshot per kept backup");
        for backup in &backups {
            let path = backup.path.with_extension(KEYS_BACKUP);
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode());
            assert_eq!(mode.ok().map(|m| m & 0o777), Some(0o600));
            let copy = KeyStore::at(path);
            let get = |session: &str, name: &str| {
                copy.signal_get(session, SignalKind::Session, name)
                    .unwrap_or_else(|e| panic!("get: {e}"))
                    .map(|b| b.expose().to_vec())
            };
            assert_eq!(get("s", "111.0"), Some(b"111.0".to_vec()));
            assert_eq!(get("other", "222.0"), None);
        }
    }
}
