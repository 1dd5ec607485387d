//! Session locks on Linux: one open-file-description (OFD) byte-range lock per session, all on
//! one `<data_dir>/sessions.lock` that a store opens once and shares between its sessions, so a
//! process holds one descriptor for its locks however many sessions it runs.
//!
//! Why OFD locks (`F_OFD_SETLK`) and not classic POSIX record locks (`F_SETLK`): POSIX locks
//! belong to the process, never conflict within it, and are all dropped when the process closes
//! *any* descriptor of the file (a probe would drop them). OFD locks belong to the open file
//! description: closing another descriptor leaves them alone, and two descriptions conflict
//! even within one process, as two stores on one directory must. Like `flock`, the kernel drops
//! them when the holder dies. Locks taken through the same description never conflict, so the
//! store keeps a registry of what it holds and refuses its own sessions itself.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use sha2::{Digest, Sha256};

use super::{HeldLock, KernelLocks, LockIo, Refusal};
use crate::store::atomic::FILE_MODE;

/// The file in the data directory that carries every session's lock byte.
pub(crate) const POOL_FILE: &str = "sessions.lock";

type Offset = libc::off_t;

/// Offsets stay below half of `off_t`'s positive range, so `offset + 1` can never overflow
/// whatever `off_t`'s width. (The cast is exact: the value is positive.)
const OFFSET_MASK: u64 = (Offset::MAX >> 1) as u64;

/// The byte of `session` in the pool file: the first 8 bytes of SHA-256 of its name, read
/// big-endian, masked. Every process and every build must agree on it (two wasps that did not
/// would not exclude each other), so a test pins it. Two names on one byte are a collision:
/// within a store the registry shares the byte; across stores the second is refused as if held
/// (with 10,000 sessions the chance of any collision is about 1 in 10^11).
fn session_offset(session: &str) -> Offset {
    let digest = Sha256::digest(session.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Exact: masked below `off_t::MAX`.
    (u64::from_be_bytes(first) & OFFSET_MASK) as Offset
}

/// What one store holds through its description of the pool file.
#[derive(Debug, Default)]
struct Registry {
    /// The pool file, opened at the first lock and kept for as long as the store lives.
    file: Option<File>,
    /// Held sessions and their bytes.
    sessions: HashMap<String, Offset>,
    /// How many held sessions share each locked byte (more than one only on a hash collision).
    sharing: HashMap<Offset, u32>,
}

/// The session locks of one store: OFD locks on `<data_dir>/sessions.lock`.
#[derive(Debug)]
pub(crate) struct OfdLocks {
    path: PathBuf,
    offset_of: fn(&str) -> Offset,
    registry: Mutex<Registry>,
}

impl OfdLocks {
    pub(crate) fn in_dir(data_dir: &Path) -> OfdLocks {
        Self::with_offsets(data_dir, session_offset)
    }

    /// Locks whose bytes come from `offset_of` (tests force collisions this way).
    fn with_offsets(data_dir: &Path, offset_of: fn(&str) -> Offset) -> OfdLocks {
        OfdLocks {
            path: data_dir.join(POOL_FILE),
            offset_of,
            registry: Mutex::new(Registry::default()),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry's maps are updated together after each fallible call, so a panic
        // elsewhere cannot leave them half changed.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn io_error(&self, source: io::Error) -> LockIo {
        LockIo {
            path: self.path.clone(),
            source,
        }
    }

    fn release(&self, session: &str) {
        let mut guard = self.registry();
        let registry = &mut *guard;
        let Some(offset) = registry.sessions.remove(session) else {
            return;
        };
        match registry.sharing.get_mut(&offset) {
            Some(sharers) if *sharers > 1 => *sharers -= 1,
            _ => {
                registry.sharing.remove(&offset);
                if let Some(file) = &registry.file
                    && let Err(e) = set_lock(file, libc::F_UNLCK, offset)
                {
                    // Only a broken descriptor fails here; the byte then stays locked until
                    // this process exits.
                    tracing::warn!(session, path = %self.path.display(), error = %e, "could not release the session lock");
                }
            }
        }
    }
}

/// Opens (creating it, mode 0600) the pool file, read-write as a write lock requires.
fn open_pool_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// The one-byte range at `offset`, as `fcntl` wants it.
fn byte_range(kind: libc::c_int, offset: Offset) -> libc::flock {
    libc::flock {
        // Small constants (0 to 2): the casts are exact.
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: offset,
        l_len: 1,
        // OFD requests must pass 0.
        l_pid: 0,
    }
}

/// Sets (`F_WRLCK`) or clears (`F_UNLCK`) the byte without waiting.
fn set_lock(file: &File, kind: libc::c_int, offset: Offset) -> Result<(), Errno> {
    fcntl(
        file.as_raw_fd(),
        FcntlArg::F_OFD_SETLK(&byte_range(kind, offset)),
    )
    .map(drop)
}

/// A held byte; dropping it gives the byte back (or one share of it).
#[derive(Debug)]
struct OfdHeld {
    locks: Arc<OfdLocks>,
    session: String,
}

impl HeldLock for OfdHeld {}

impl Drop for OfdHeld {
    fn drop(&mut self) {
        self.locks.release(&self.session);
    }
}

impl KernelLocks for OfdLocks {
    fn take(this: &Arc<Self>, session: &str, _record: &Path) -> Result<Box<dyn HeldLock>, Refusal> {
        let mut guard = this.registry();
        let registry = &mut *guard;
        if registry.sessions.contains_key(session) {
            return Err(Refusal::Held);
        }
        let offset = (this.offset_of)(session);
        if let Some(sharers) = registry.sharing.get_mut(&offset) {
            // Another session of this store is on the same byte, which our description already
            // holds: share it, counted, so that neither release unlocks the other.
            *sharers += 1;
        } else {
            let file = match registry.file.take() {
                Some(file) => file,
                None => open_pool_file(&this.path).map_err(|e| Refusal::Io(this.io_error(e)))?,
            };
            let locked = set_lock(&file, libc::F_WRLCK, offset);
            registry.file = Some(file);
            match locked {
                Ok(()) => {}
                // Another description holds it: another process, or another store on this
                // directory.
                Err(Errno::EAGAIN | Errno::EACCES) => return Err(Refusal::Held),
                Err(e) => return Err(Refusal::Io(this.io_error(e.into()))),
            }
            registry.sharing.insert(offset, 1);
        }
        registry.sessions.insert(session.to_owned(), offset);
        Ok(Box::new(OfdHeld {
            locks: Arc::clone(this),
            session: session.to_owned(),
        }))
    }

    fn is_held(&self, session: &str, _record: &Path) -> Result<bool, LockIo> {
        // A fresh description, so this store's own locks conflict with the query as much as
        // other processes' do. Closing it afterwards releases nothing (see the module comment).
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io_error(e)),
        };
        let mut query = byte_range(libc::F_WRLCK, (self.offset_of)(session));
        fcntl(file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut query))
            .map_err(|e| self.io_error(e.into()))?;
        // Exact: a small constant.
        Ok(query.l_type != libc::F_UNLCK as libc::c_short)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn take(locks: &Arc<OfdLocks>, session: &str) -> Result<Box<dyn HeldLock>, Refusal> {
        OfdLocks::take(locks, session, Path::new("unused"))
    }

    fn held(locks: &OfdLocks, session: &str) -> bool {
        locks.is_held(session, Path::new("unused")).unwrap()
    }

    /// Descriptors of this process open on `path`.
    fn descriptors_on(path: &Path) -> usize {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|entry| fs::read_link(entry.path()).is_ok_and(|target| target == path))
            .count()
    }

    #[test]
    fn a_session_byte_is_the_same_in_every_build() {
        // sha256("sales-1") starts 01 ad db 16 e1 ac 79 fc. Changing this breaks exclusion
        // between wasp versions running on one directory during an upgrade.
        assert_eq!(session_offset("sales-1"), 0x01ad_db16_e1ac_79fc);
        for i in 0..10_000 {
            let offset = session_offset(&format!("s{i}"));
            assert!((0..Offset::MAX / 2).contains(&offset), "s{i}: {offset}");
        }
    }

    #[test]
    fn two_stores_on_one_directory_refuse_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(OfdLocks::in_dir(dir.path()));
        let b = Arc::new(OfdLocks::in_dir(dir.path()));
        let held_by_a = take(&a, "s1").unwrap();
        assert!(matches!(take(&b, "s1"), Err(Refusal::Held)));
        assert!(matches!(take(&a, "s1"), Err(Refusal::Held)));
        assert!(held(&a, "s1") && held(&b, "s1"), "both see the lock");
        assert!(!held(&b, "s2"));
        let held_by_b = take(&b, "s2").unwrap();
        assert!(matches!(take(&a, "s2"), Err(Refusal::Held)));
        drop(held_by_a);
        assert!(!held(&b, "s1"));
        let _s1 = take(&b, "s1").unwrap();
        drop(held_by_b);
        let _s2 = take(&a, "s2").unwrap();
    }

    #[test]
    fn names_on_one_byte_never_release_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let same_byte = |_: &str| 7;
        let a = Arc::new(OfdLocks::with_offsets(dir.path(), same_byte));
        let b = Arc::new(OfdLocks::with_offsets(dir.path(), same_byte));
        let x = take(&a, "x").unwrap();
        let y = take(&a, "y").unwrap();
        assert!(
            matches!(take(&a, "x"), Err(Refusal::Held)),
            "x is still one-holder"
        );
        assert!(matches!(take(&b, "z"), Err(Refusal::Held)));
        drop(x);
        assert!(held(&b, "y"), "releasing x kept y's byte locked");
        assert!(matches!(take(&b, "z"), Err(Refusal::Held)));
        let x_again = take(&a, "x").unwrap();
        drop(y);
        assert!(
            matches!(take(&b, "z"), Err(Refusal::Held)),
            "x holds it again"
        );
        drop(x_again);
        assert!(!held(&b, "z"));
        let _z = take(&b, "z").unwrap();
    }

    #[test]
    fn a_store_opens_the_pool_file_once_for_all_its_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let locks = Arc::new(OfdLocks::in_dir(dir.path()));
        let path = dir.path().join(POOL_FILE);
        assert!(!held(&locks, "s0"), "a probe creates nothing");
        assert!(!path.exists());
        let all: Vec<_> = (0..200)
            .map(|i| take(&locks, &format!("s{i}")).unwrap())
            .collect();
        let path = fs::canonicalize(&path).unwrap();
        assert_eq!(descriptors_on(&path), 1);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
        drop(all);
        let _again = take(&locks, "s0").unwrap();
        assert_eq!(descriptors_on(&path), 1);
    }
}
