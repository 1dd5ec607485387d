//! `FileStore`: the credential store on the local file system, one directory per session
//! (layout in `store/mod.rs`). Loads verify every file; refused files are kept aside.

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use zeroize::Zeroizing;

use super::atomic::{self, DIR_MODE, DirectWrites, Kind, WriteSeam};
use super::error::{StoreError, describe_json_error};
use super::lock::{self, LockHolder, SessionLock, StoreLocks};
use super::{
    BackupInfo, CredentialStore, LastBackup, LoadSource, Loaded, PersistedStatus, SecretBody,
    WipeReport,
};

pub(super) const CREDS_FILE: &str = "creds.wasp";
pub(super) const STATUS_FILE: &str = "status.wasp";
pub(super) const LOCK_FILE: &str = "session.lock";
pub(super) const BACKUP_DIR: &str = "backups";

/// Credentials, status, backups and locks under one data directory.
#[derive(Clone)]
pub struct FileStore {
    data_dir: PathBuf,
    writes: Arc<dyn WriteSeam>,
    /// The kernel side of the session locks, shared by clones (on Linux, one descriptor for
    /// all of them; see `lock/ofd.rs`).
    locks: Arc<StoreLocks>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// A store rooted at `data_dir` (created, mode 0700, on first write).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self::with_write_seam(data_dir, Arc::new(DirectWrites))
    }

    /// A store whose file writes go through `writes` (tests inject a full disk this way).
    pub fn with_write_seam(data_dir: impl Into<PathBuf>, writes: Arc<dyn WriteSeam>) -> Self {
        let data_dir = data_dir.into();
        FileStore {
            locks: Arc::new(StoreLocks::in_dir(&data_dir)),
            data_dir,
            writes,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `<data_dir>/<session>`, after checking that the id can name a directory.
    pub fn session_dir(&self, session: &str) -> Result<PathBuf, StoreError> {
        validate_session_id(session)?;
        Ok(self.data_dir.join(session))
    }

    pub fn credentials_path(&self, session: &str) -> Result<PathBuf, StoreError> {
        Ok(self.session_dir(session)?.join(CREDS_FILE))
    }

    pub fn status_path(&self, session: &str) -> Result<PathBuf, StoreError> {
        Ok(self.session_dir(session)?.join(STATUS_FILE))
    }

    /// The file that names a session lock's holder (`<session>/session.lock`); the lock itself
    /// is a byte of `<data_dir>/sessions.lock` on Linux.
    pub fn lock_path(&self, session: &str) -> Result<PathBuf, StoreError> {
        Ok(self.session_dir(session)?.join(LOCK_FILE))
    }

    pub fn backups_dir(&self, session: &str) -> Result<PathBuf, StoreError> {
        Ok(self.session_dir(session)?.join(BACKUP_DIR))
    }

    /// Creates `dir` (and missing parents) with mode 0700, and tightens it if it exists.
    pub(super) fn ensure_dir(&self, session: &str, dir: &Path) -> Result<(), StoreError> {
        let create_error = |source| StoreError::CreateDir {
            session: session.to_owned(),
            path: dir.to_owned(),
            source,
        };
        // Looked at first: the directory almost always exists (every session start and
        // every save comes here), and a `mkdir` that fails costs a call more.
        let mode = match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => meta.permissions().mode(),
            _ => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)
                    .map_err(create_error)?;
                fs::metadata(dir)
                    .map_err(create_error)?
                    .permissions()
                    .mode()
            }
        };
        if mode & 0o777 != DIR_MODE {
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(create_error)?;
        }
        Ok(())
    }

    /// Seals `body` and writes it atomically as `dir/name`.
    pub(super) fn write_sealed(
        &self,
        session: &str,
        what: &'static str,
        dir: &Path,
        name: &str,
        kind: Kind,
        body: &[u8],
    ) -> Result<(), StoreError> {
        self.ensure_dir(session, dir)?;
        let sealed = atomic::seal(kind, body);
        atomic::write_atomic(self.writes.as_ref(), dir, name, &sealed).map_err(|source| {
            StoreError::Write {
                session: session.to_owned(),
                what,
                path: dir.join(name),
                source,
            }
        })
    }

    /// A whole file, or `None` when it does not exist.
    pub(super) fn read_optional(
        session: &str,
        what: &'static str,
        path: &Path,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Read {
                session: session.to_owned(),
                what,
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The current credentials were refused: keep them aside and restore the newest good backup.
    fn recover_credentials(
        &self,
        session: &str,
        path: &Path,
        problem: &atomic::EnvelopeError,
    ) -> Result<Option<Loaded<SecretBody>>, StoreError> {
        let now = SystemTime::now();
        let rejected = format!("{CREDS_FILE} was refused: {problem}");
        tracing::warn!(session, path = %path.display(), %problem, "credentials failed verification; trying backups");
        let corrupt_kept = match atomic::keep_aside(path, now) {
            Ok(kept) => Some(kept),
            Err(e) => {
                tracing::warn!(session, path = %path.display(), error = %e, "could not keep the refused credentials aside");
                None
            }
        };
        let (good, backups_set_aside) = self.newest_good_backup(session, now)?;
        let Some((info, body)) = good else {
            // Nothing can replace it: remove it (a copy is kept aside) so the session pairs anew.
            if corrupt_kept.is_some() {
                let dir = path.parent().unwrap_or(Path::new("."));
                fs::remove_file(path)
                    .and_then(|()| atomic::sync_dir(dir))
                    .map_err(|source| StoreError::Remove {
                        session: session.to_owned(),
                        what: "refused credentials",
                        path: path.to_owned(),
                        source,
                    })?;
            }
            let kept = corrupt_kept
                .as_ref()
                .map_or_else(String::new, |p| format!(" (kept as {})", p.display()));
            return Err(StoreError::NoUsableCredentials {
                session: session.to_owned(),
                reason: format!("{rejected}{kept} and no backup verified"),
                corrupt_kept,
            });
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Err(e) = self.write_sealed(
            session,
            "credentials",
            dir,
            CREDS_FILE,
            Kind::Credentials,
            &body,
        ) {
            // The session can still run on what it loaded; the next load will fall back again.
            tracing::warn!(session, error = %e, "could not restore the backup as the current credentials");
        }
        tracing::warn!(session, backup = %info.path.display(), seq = info.seq, "credentials restored from backup");
        Ok(Some(Loaded {
            value: SecretBody::new(body.to_vec()),
            source: LoadSource::Backup(info.clone()),
            path: info.path,
            rejected: Some(rejected),
            corrupt_kept,
            backups_set_aside,
        }))
    }

    /// The newest backup that verifies, with its body, and the paths where the backups that did
    /// not verify were kept aside (as `*.corrupt-<time>`).
    fn newest_good_backup(
        &self,
        session: &str,
        now: SystemTime,
    ) -> Result<(Option<GoodBackup>, Vec<PathBuf>), StoreError> {
        let mut set_aside = Vec::new();
        for info in self.list_backups(session)?.into_iter().rev() {
            let bytes = match Self::read_optional(session, "backup", &info.path) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(session, error = %e, "skipping an unreadable backup");
                    continue;
                }
            };
            match atomic::open(Kind::Credentials, &bytes) {
                Ok(body) => return Ok((Some((info, Zeroizing::new(body.to_vec()))), set_aside)),
                Err(problem) => {
                    tracing::warn!(session, backup = %info.path.display(), %problem, "backup failed verification");
                    if let Ok(kept) = atomic::keep_aside(&info.path, now) {
                        let _ = fs::remove_file(&info.path);
                        set_aside.push(kept);
                    }
                }
            }
        }
        Ok((None, set_aside))
    }
}

/// A backup that verified, and its body.
type GoodBackup = (BackupInfo, Zeroizing<Vec<u8>>);

/// Refuses ids that cannot safely name a directory under the data dir.
pub(super) fn validate_session_id(session: &str) -> Result<(), StoreError> {
    let ok = !session.is_empty()
        && session.len() <= 200
        && !session.starts_with('.')
        && !session
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadSessionId {
            session: session.chars().take(64).collect(),
        })
    }
}

impl CredentialStore for FileStore {
    fn load(&self, session: &str) -> Result<Option<Loaded<SecretBody>>, StoreError> {
        let path = self.credentials_path(session)?;
        let Some(bytes) = Self::read_optional(session, "credentials", &path)? else {
            return Ok(None);
        };
        match atomic::open(Kind::Credentials, &bytes) {
            Ok(body) => Ok(Some(Loaded::current(SecretBody::new(body.to_vec()), path))),
            Err(problem) => self.recover_credentials(session, &path, &problem),
        }
    }

    fn save(&self, session: &str, body: &[u8]) -> Result<(), StoreError> {
        let dir = self.session_dir(session)?;
        self.write_sealed(
            session,
            "credentials",
            &dir,
            CREDS_FILE,
            Kind::Credentials,
            body,
        )?;
        tracing::debug!(session, bytes = body.len(), "credentials saved");
        Ok(())
    }

    fn backup(&self, session: &str, keep: u32) -> Result<BackupInfo, StoreError> {
        self.backup_now(session, keep)
    }

    fn list_backups(&self, session: &str) -> Result<Vec<BackupInfo>, StoreError> {
        let dir = self.backups_dir(session)?;
        super::backup::list(&dir).map_err(|source| StoreError::Read {
            session: session.to_owned(),
            what: "the backup list",
            path: dir,
            source,
        })
    }

    fn wipe(&self, session: &str, last_backup: LastBackup) -> Result<WipeReport, StoreError> {
        let path = self.credentials_path(session)?;
        let dir = self.session_dir(session)?;
        let mut report = WipeReport {
            removed: false,
            backup: None,
            backup_skipped: None,
        };
        if !path.exists() {
            return Ok(report);
        }
        if let LastBackup::Take { keep } = last_backup {
            match self.backup_now(session, keep) {
                Ok(info) => report.backup = Some(info),
                Err(StoreError::Corrupt { problem, .. }) => {
                    report.backup_skipped =
                        Some(format!("{CREDS_FILE} was not backed up: {problem}"));
                }
                Err(StoreError::NothingToBackUp { .. }) => return Ok(report),
                Err(e) => return Err(e),
            }
        }
        let removal_error = |source| StoreError::Remove {
            session: session.to_owned(),
            what: "credentials",
            path: path.clone(),
            source,
        };
        match fs::remove_file(&path) {
            Ok(()) => report.removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(removal_error(e)),
        }
        // Temp files of interrupted writes hold key material too.
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| atomic::is_temp_of(n, CREDS_FILE))
                {
                    fs::remove_file(entry.path()).map_err(removal_error)?;
                }
            }
        }
        atomic::sync_dir(&dir).map_err(removal_error)?;
        tracing::info!(
            session,
            backup = report.backup.as_ref().map(|b| b.seq),
            "credentials wiped"
        );
        Ok(report)
    }

    fn lock(&self, session: &str) -> Result<SessionLock, StoreError> {
        let dir = self.session_dir(session)?;
        self.ensure_dir(session, &dir)?;
        let held = lock::acquire(&self.locks, session, &dir.join(LOCK_FILE))?;
        for stale_dir in [dir.clone(), dir.join(BACKUP_DIR)] {
            match atomic::remove_stale_temps(&stale_dir) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(session, removed = n, dir = %stale_dir.display(), "removed temp files left by an interrupted write")
                }
                Err(e) => tracing::warn!(session, error = %e, "could not remove stale temp files"),
            }
        }
        Ok(held)
    }

    fn is_locked(&self, session: &str) -> Result<Option<LockHolder>, StoreError> {
        lock::probe(self.locks.as_ref(), session, &self.lock_path(session)?)
    }

    fn save_status(&self, session: &str, status: &PersistedStatus) -> Result<(), StoreError> {
        let dir = self.session_dir(session)?;
        let body = serde_json::to_vec(status).map_err(|e| StoreError::Encode {
            session: session.to_owned(),
            what: "status",
            detail: describe_json_error(&e),
        })?;
        self.write_sealed(session, "status", &dir, STATUS_FILE, Kind::Status, &body)
    }

    fn load_status(&self, session: &str) -> Result<Option<Loaded<PersistedStatus>>, StoreError> {
        let path = self.status_path(session)?;
        let Some(bytes) = Self::read_optional(session, "status", &path)? else {
            return Ok(None);
        };
        let problem = match atomic::open(Kind::Status, &bytes) {
            Ok(body) => match serde_json::from_slice::<PersistedStatus>(body) {
                Ok(status) => return Ok(Some(Loaded::current(status, path))),
                Err(e) => describe_json_error(&e),
            },
            Err(problem) => problem.to_string(),
        };
        tracing::warn!(session, path = %path.display(), %problem, "status file refused; using defaults");
        let corrupt_kept = atomic::keep_aside(&path, SystemTime::now()).ok();
        if corrupt_kept.is_some() {
            let _ = fs::remove_file(&path);
        }
        Ok(Some(Loaded {
            value: PersistedStatus::default(),
            source: LoadSource::Defaults,
            path,
            rejected: Some(format!("{STATUS_FILE} was refused: {problem}")),
            corrupt_kept,
            backups_set_aside: Vec::new(),
        }))
    }
}
