//! Session locks where open-file-description locks are missing (every unix but Linux): each
//! session `flock`s its own `session.lock` and keeps it open while it runs, so a process holds
//! one descriptor per session. On Linux this backend is built only for its tests.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use super::{HeldLock, KernelLocks, LockIo, Refusal};
use crate::store::atomic::FILE_MODE;

/// `flock` on each session's `session.lock`; no state of its own.
#[derive(Debug, Default)]
pub(crate) struct FlockLocks;

impl FlockLocks {
    pub(crate) fn in_dir(_data_dir: &Path) -> FlockLocks {
        FlockLocks
    }
}

/// The open, locked `session.lock`: closing it unlocks.
#[derive(Debug)]
struct FlockHeld {
    _file: File,
}

impl HeldLock for FlockHeld {}

fn open_record(record: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(FILE_MODE)
        .open(record)
}

impl KernelLocks for FlockLocks {
    fn take(
        _this: &Arc<Self>,
        _session: &str,
        record: &Path,
    ) -> Result<Box<dyn HeldLock>, Refusal> {
        let io_error = |source| {
            Refusal::Io(LockIo {
                path: record.to_owned(),
                source,
            })
        };
        let file = open_record(record, true).map_err(io_error)?;
        // Two descriptions of one file conflict even within a process, so a second lock of the
        // same session by this process is refused as well.
        match file.try_lock() {
            Ok(()) => Ok(Box::new(FlockHeld { _file: file })),
            Err(TryLockError::WouldBlock) => Err(Refusal::Held),
            Err(TryLockError::Error(e)) => Err(io_error(e)),
        }
    }

    fn is_held(&self, _session: &str, record: &Path) -> Result<bool, LockIo> {
        let io_error = |source| LockIo {
            path: record.to_owned(),
            source,
        };
        let file = match open_record(record, false) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(e)),
        };
        // Takes the lock for an instant when it is free.
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(false)
            }
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(io_error(e)),
        }
    }
}
