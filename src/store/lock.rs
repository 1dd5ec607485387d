//! The per-session OS file lock (`flock` through `File::try_lock`): held while a session runs so
//! that a second wasp process on the same host refuses it, and says which process holds it.
//! The kernel drops the lock when its holder dies, so a killed process never leaves it stuck.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::atomic::FILE_MODE;
use super::error::StoreError;
use super::utc;

/// Who holds a session's lock, as written into the lock file by the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockHolder {
    Process {
        pid: u32,
        /// Program name (`wasp`, or a test binary's name).
        program: String,
        host: String,
        since: SystemTime,
    },
    /// The lock is taken but its holder has not written (or could not write) its name.
    Unknown,
}

impl LockHolder {
    /// This process, now.
    pub fn this_process(now: SystemTime) -> LockHolder {
        LockHolder::Process {
            pid: std::process::id(),
            program: program_name(),
            host: host_name(),
            since: now,
        }
    }

    /// The holder's process id, when known.
    pub fn pid(&self) -> Option<u32> {
        match self {
            LockHolder::Process { pid, .. } => Some(*pid),
            LockHolder::Unknown => None,
        }
    }

    fn to_record(&self) -> String {
        match self {
            LockHolder::Process {
                pid,
                program,
                host,
                since,
            } => serde_json::json!({
                "pid": pid,
                "program": program,
                "host": host,
                "since_unix": utc::unix_seconds(*since),
            })
            .to_string(),
            LockHolder::Unknown => String::new(),
        }
    }

    fn from_record(text: &str) -> LockHolder {
        #[derive(serde::Deserialize)]
        struct Record {
            pid: u32,
            program: String,
            host: String,
            since_unix: u64,
        }
        match serde_json::from_str::<Record>(text.trim()) {
            Ok(r) => LockHolder::Process {
                pid: r.pid,
                program: r.program,
                host: r.host,
                since: UNIX_EPOCH + Duration::from_secs(r.since_unix),
            },
            Err(_) => LockHolder::Unknown,
        }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockHolder::Process {
                pid,
                program,
                host,
                since,
            } => write!(
                f,
                "pid {pid} ({program}) on {host} since {}",
                utc::readable(*since)
            ),
            LockHolder::Unknown => f.write_str("another process (which has not written its name)"),
        }
    }
}

/// A held session lock; dropping it releases the lock.
#[derive(Debug)]
pub struct SessionLock {
    session: String,
    path: PathBuf,
    holder: LockHolder,
    file: File,
}

impl SessionLock {
    /// The session this lock keeps.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this process wrote into the lock file.
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// Releases the lock now (dropping does the same).
    pub fn release(self) {}
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        // Clear our name first so nobody reads it after we are gone; closing the file unlocks.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn open_lock_file(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

fn read_holder(file: &mut File) -> LockHolder {
    let mut text = String::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(4096).read_to_string(&mut text));
    match read {
        Ok(_) => LockHolder::from_record(&text),
        Err(_) => LockHolder::Unknown,
    }
}

/// Takes the lock at `path` for `session`, or says who holds it.
pub(crate) fn acquire(session: &str, path: &Path) -> Result<SessionLock, StoreError> {
    let lock_error = |source| StoreError::Lock {
        session: session.to_owned(),
        path: path.to_owned(),
        source,
    };
    let mut file = open_lock_file(path, true).map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(StoreError::Locked {
                session: session.to_owned(),
                path: path.to_owned(),
                holder: read_holder(&mut file),
            });
        }
        Err(TryLockError::Error(e)) => return Err(lock_error(e)),
    }
    let holder = LockHolder::this_process(SystemTime::now());
    let record = holder.to_record();
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .and_then(|()| file.set_len(0))
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(record.as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(lock_error)?;
    Ok(SessionLock {
        session: session.to_owned(),
        path: path.to_owned(),
        holder,
        file,
    })
}

/// Who holds the lock at `path`, or `None` when nobody does. Never creates the file.
pub(crate) fn probe(session: &str, path: &Path) -> Result<Option<LockHolder>, StoreError> {
    let mut file = match open_lock_file(path, false) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Lock {
                session: session.to_owned(),
                path: path.to_owned(),
                source,
            });
        }
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(read_holder(&mut file))),
        Err(TryLockError::Error(source)) => Err(StoreError::Lock {
            session: session.to_owned(),
            path: path.to_owned(),
            source,
        }),
    }
}

fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "wasp".to_owned())
}

fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this host".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn holder_record_round_trips_and_reads_as_a_sentence() {
        let since = UNIX_EPOCH + Duration::from_secs(1_776_248_100);
        let holder = LockHolder::Process {
            pid: 1234,
            program: "wasp".into(),
            host: "host-a".into(),
            since,
        };
        assert_eq!(LockHolder::from_record(&holder.to_record()), holder);
        assert_eq!(
            holder.to_string(),
            "pid 1234 (wasp) on host-a since 2026-04-15 10:15:00 UTC"
        );
        assert_eq!(LockHolder::from_record(""), LockHolder::Unknown);
    }

    #[test]
    fn second_lock_in_the_same_process_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.lock");
        let first = acquire("s1", &path).unwrap();
        let err = acquire("s1", &path).unwrap_err();
        assert!(
            matches!(&err, StoreError::Locked { holder, .. } if holder.pid() == Some(std::process::id())),
            "{err}"
        );
        assert_eq!(
            probe("s1", &path).unwrap().and_then(|h| h.pid()),
            Some(std::process::id())
        );
        first.release();
        assert_eq!(probe("s1", &path).unwrap(), None);
        acquire("s1", &path).unwrap();
    }
}
