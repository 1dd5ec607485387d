//! Session locks: held while a session runs so that a second wasp process on the same host (or
//! a second store on the same directory) refuses it, and says which process holds it. The
//! kernel lock is the truth and is dropped by the kernel when its holder dies, so a killed
//! process never leaves a session stuck. On Linux all of a store's sessions are byte-range
//! locks on one `sessions.lock` file (`ofd.rs`); elsewhere each session `flock`s its own
//! `session.lock` (`flock.rs`). Either way the holder writes its name into `session.lock`.

#[cfg(any(test, not(target_os = "linux")))]
mod flock;
#[cfg(target_os = "linux")]
mod ofd;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(not(target_os = "linux"))]
pub(crate) use flock::FlockLocks as StoreLocks;
#[cfg(target_os = "linux")]
pub(crate) use ofd::OfdLocks as StoreLocks;

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
        // Read once per process: a pool locking thousands of sessions at start would
        // otherwise read /proc for each.
        static NAMES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
        let (program, host) = NAMES.get_or_init(|| (program_name(), host_name()));
        LockHolder::Process {
            pid: std::process::id(),
            program: program.clone(),
            host: host.clone(),
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

/// A lock file that could not be opened or locked.
#[derive(Debug)]
pub(crate) struct LockIo {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Why a kernel lock was not taken.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Another holder has it.
    Held,
    Io(LockIo),
}

/// A kernel lock taken by a [`KernelLocks`]; dropping it releases the lock.
pub(crate) trait HeldLock: fmt::Debug + Send + Sync {}

/// The kernel side of the session locks of one store (one data directory).
pub(crate) trait KernelLocks {
    /// Takes `session`'s lock, or refuses when someone (this store included) holds it.
    /// `record` is the session's `session.lock`.
    fn take(this: &Arc<Self>, session: &str, record: &Path) -> Result<Box<dyn HeldLock>, Refusal>;

    /// Whether anyone, this process included, holds `session`'s lock. Creates no file.
    fn is_held(&self, session: &str, record: &Path) -> Result<bool, LockIo>;
}

/// A held session lock; dropping it releases the lock.
#[derive(Debug)]
pub struct SessionLock {
    session: String,
    path: PathBuf,
    holder: LockHolder,
    /// Kept only to be dropped, after `Drop::drop` has cleared the record (fields drop after it).
    _held: Box<dyn HeldLock>,
}

impl SessionLock {
    /// The session this lock keeps.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The file that names the holder (`<session dir>/session.lock`).
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
        // Clear our name while we still hold the lock, so nobody reads it after we are gone (and
        // we never clear the name of the next holder); then `_held` drops and the kernel unlocks.
        clear_record(&self.path);
    }
}

/// The holder's record goes through its own short-lived descriptor: open, write, close. It is
/// not fsynced: the record only says who holds the lock, the kernel lock is the truth, and after
/// a crash the kernel lock is gone whatever the record says.
///
/// Written over the old bytes and then cut to its length, not opened with `O_TRUNC`: ext4
/// flushes a file truncated to nothing and written again when it is closed (its guard for
/// programs that replace a file that way), which made every session's start wait for the disk.
fn write_record(path: &Path, record: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    file.write_all(record.as_bytes())?;
    file.set_len(record.len() as u64)
}

fn clear_record(path: &Path) {
    let _ = OpenOptions::new().write(true).truncate(true).open(path);
}

fn read_record(path: &Path) -> LockHolder {
    let mut text = String::new();
    match File::open(path).and_then(|file| file.take(4096).read_to_string(&mut text)) {
        Ok(_) => LockHolder::from_record(&text),
        Err(_) => LockHolder::Unknown,
    }
}

/// Takes `session`'s lock through `locks` and writes this process's name into `record`, or
/// says who holds it.
pub(crate) fn acquire<K: KernelLocks>(
    locks: &Arc<K>,
    session: &str,
    record: &Path,
) -> Result<SessionLock, StoreError> {
    let held = match K::take(locks, session, record) {
        Ok(held) => held,
        Err(Refusal::Held) => {
            return Err(StoreError::Locked {
                session: session.to_owned(),
                path: record.to_owned(),
                holder: read_record(record),
            });
        }
        Err(Refusal::Io(LockIo { path, source })) => {
            return Err(StoreError::Lock {
                session: session.to_owned(),
                path,
                source,
            });
        }
    };
    let holder = LockHolder::this_process(SystemTime::now());
    let lock = SessionLock {
        session: session.to_owned(),
        path: record.to_owned(),
        holder,
        _held: held,
    };
    // On failure `lock` drops here and releases the kernel lock again.
    write_record(record, &lock.holder.to_record()).map_err(|source| StoreError::Lock {
        session: session.to_owned(),
        path: record.to_owned(),
        source,
    })?;
    Ok(lock)
}

/// Who holds `session`'s lock, or `None` when nobody does. Never creates a file.
pub(crate) fn probe<K: KernelLocks>(
    locks: &K,
    session: &str,
    record: &Path,
) -> Result<Option<LockHolder>, StoreError> {
    match locks.is_held(session, record) {
        Ok(false) => Ok(None),
        Ok(true) => Ok(Some(read_record(record))),
        Err(LockIo { path, source }) => Err(StoreError::Lock {
            session: session.to_owned(),
            path,
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

    /// A record left longer than ours (a crashed holder with a longer host name) is replaced
    /// whole, not overwritten in part, and the file is 0600 even if it was not.
    #[test]
    fn a_longer_old_record_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("session.lock");
        let old = LockHolder::Process {
            pid: 1,
            program: "wasp".into(),
            host: "a-host-name-much-longer-than-this-one-".repeat(4),
            since: UNIX_EPOCH,
        };
        fs::write(&record, old.to_record()).unwrap();
        fs::set_permissions(&record, fs::Permissions::from_mode(0o644)).unwrap();
        let ours = LockHolder::this_process(SystemTime::now());
        write_record(&record, &ours.to_record()).unwrap();
        assert_eq!(fs::read_to_string(&record).unwrap(), ours.to_record());
        let mode = fs::metadata(&record).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
    }

    /// One store refuses a session it already holds (naming this process), releases it on drop,
    /// and clears its name from the record.
    fn refuses_its_own_session_until_released<K: KernelLocks>(locks: Arc<K>, dir: &Path) {
        let record = dir.join("s1").join("session.lock");
        fs::create_dir_all(record.parent().unwrap()).unwrap();
        assert_eq!(probe(locks.as_ref(), "s1", &record).unwrap(), None);
        let first = acquire(&locks, "s1", &record).unwrap();
        assert_eq!(read_record(&record).pid(), Some(std::process::id()));
        let err = acquire(&locks, "s1", &record).unwrap_err();
        assert!(
            matches!(&err, StoreError::Locked { holder, .. } if holder.pid() == Some(std::process::id())),
            "{err}"
        );
        assert_eq!(
            probe(locks.as_ref(), "s1", &record)
                .unwrap()
                .and_then(|h| h.pid()),
            Some(std::process::id())
        );
        drop(first);
        assert_eq!(probe(locks.as_ref(), "s1", &record).unwrap(), None);
        assert_eq!(fs::read(&record).unwrap(), b"", "the name is cleared");
        acquire(&locks, "s1", &record).unwrap().release();
    }

    #[test]
    fn second_lock_in_the_same_store_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        refuses_its_own_session_until_released(
            Arc::new(StoreLocks::in_dir(dir.path())),
            dir.path(),
        );
    }

    #[test]
    fn the_flock_fallback_refuses_a_second_lock_until_released() {
        let dir = tempfile::tempdir().unwrap();
        refuses_its_own_session_until_released(
            Arc::new(flock::FlockLocks::in_dir(dir.path())),
            dir.path(),
        );
    }
}
