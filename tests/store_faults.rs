//! A full disk: writes fail with a clear error and the previous file stays intact and loadable.
//! Injected through the store's write seam (always runs) and, as root, on a real small tmpfs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasp::store::{
    CredentialStore, FileStore, LastBackup, LoadSource, PersistedStatus, StoreError, WriteSeam,
};

/// Lets `allowed` writes through, then writes half of each later one and fails with ENOSPC, as a
/// disk that fills up mid-write does.
struct DiskFillsAfter {
    allowed: AtomicUsize,
}

impl DiskFillsAfter {
    fn new(allowed: usize) -> Arc<Self> {
        Arc::new(DiskFillsAfter {
            allowed: AtomicUsize::new(allowed),
        })
    }
}

impl WriteSeam for DiskFillsAfter {
    fn write(&self, _target: &Path, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        let left = self.allowed.load(Ordering::SeqCst);
        if left > 0 {
            self.allowed.store(left - 1, Ordering::SeqCst);
            return file.write_all(bytes);
        }
        file.write_all(&bytes[..bytes.len() / 2])?;
        Err(io::Error::from_raw_os_error(libc::ENOSPC))
    }
}

/// Fails the fsync instead of the write (some file systems report a full disk only there).
struct SyncFails;

impl WriteSeam for SyncFails {
    fn write(&self, _target: &Path, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }
    fn sync(&self, _target: &Path, _file: &File) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOSPC))
    }
}

fn body(n: u32) -> Vec<u8> {
    format!("{{\"counter\":{n},\"pad\":\"{}\"}}", "z".repeat(300)).into_bytes()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_full_disk_fails_the_save_clearly_and_keeps_the_previous_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("wasp-data");
    let store = FileStore::with_write_seam(&data, DiskFillsAfter::new(1));
    store.save("sales-1", &body(1)).unwrap();
    let before = entries(&store.session_dir("sales-1").unwrap());

    let err = store.save("sales-1", &body(2)).unwrap_err();
    assert!(matches!(err, StoreError::Write { .. }), "{err:?}");
    let text = err.to_string();
    let creds_path = store.credentials_path("sales-1").unwrap();
    assert_eq!(
        text,
        format!(
            "could not write credentials for session sales-1 ({}): No space left on device (os error 28)",
            creds_path.display()
        )
    );

    let loaded = store.load("sales-1").unwrap().unwrap();
    assert_eq!(loaded.value.expose(), &body(1)[..]);
    assert_eq!(loaded.source, LoadSource::Current);
    assert_eq!(
        entries(&store.session_dir("sales-1").unwrap()),
        before,
        "no half-written temp file is left behind"
    );
}

#[test]
fn a_failing_fsync_also_keeps_the_previous_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    FileStore::new(tmp.path()).save("s", &body(1)).unwrap();
    let store = FileStore::with_write_seam(tmp.path(), Arc::new(SyncFails));
    let err = store.save("s", &body(2)).unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(
        store.load("s").unwrap().unwrap().value.expose(),
        &body(1)[..]
    );
    assert_eq!(
        entries(&store.session_dir("s").unwrap()),
        vec!["creds.wasp"]
    );
}

#[test]
fn a_full_disk_fails_a_backup_without_touching_the_kept_ones() {
    let tmp = tempfile::tempdir().unwrap();
    // Writes: save, backup, save; then the disk is full.
    let store = FileStore::with_write_seam(tmp.path(), DiskFillsAfter::new(3));
    store.save("s", &body(1)).unwrap();
    let first = store.backup("s", 5).unwrap();
    store.save("s", &body(2)).unwrap();

    let err = store.backup("s", 5).unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(store.list_backups("s").unwrap(), vec![first.clone()]);
    assert_eq!(entries(&store.backups_dir("s").unwrap()).len(), 1);
    assert_eq!(
        store.load("s").unwrap().unwrap().value.expose(),
        &body(2)[..]
    );
}

#[test]
fn a_wipe_that_cannot_take_its_last_backup_keeps_the_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::with_write_seam(tmp.path(), DiskFillsAfter::new(1));
    store.save("s", &body(1)).unwrap();
    let err = store.wipe("s", LastBackup::Take { keep: 5 }).unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(
        store.load("s").unwrap().unwrap().value.expose(),
        &body(1)[..]
    );
}

#[test]
fn a_full_disk_fails_the_status_save_and_keeps_the_previous_status() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::with_write_seam(tmp.path(), DiskFillsAfter::new(1));
    let online = PersistedStatus {
        was_online: true,
        ..PersistedStatus::default()
    };
    store.save_status("s", &online).unwrap();
    let err = store
        .save_status("s", &PersistedStatus::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("could not write status for session s"),
        "{err}"
    );
    assert_eq!(store.load_status("s").unwrap().unwrap().value, online);
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> io::Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!("mount exited with {status}")));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
#[ignore = "needs root to mount a tmpfs: cargo test --test store_faults -- --ignored"]
fn a_real_full_tmpfs_fails_the_save_and_keeps_the_previous_credentials() {
    let fs = Tmpfs::mount("256k").expect("mounting a tmpfs (run as root)");
    let store = FileStore::new(fs.path().join("wasp-data"));
    store.save("sales-1", &body(1)).unwrap();

    // Fill the rest of the disk.
    let mut filler = File::create(fs.path().join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    drop(filler);

    let big = vec![b'x'; 64 * 1024];
    let err = store.save("sales-1", &big).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sales-1") && text.contains("No space left on device"),
        "{text}"
    );
    let loaded = store.load("sales-1").unwrap().unwrap();
    assert_eq!(loaded.value.expose(), &body(1)[..]);
    assert_eq!(
        entries(&store.session_dir("sales-1").unwrap()),
        vec!["creds.wasp"]
    );
}
