//! One store's session locks cost one file descriptor however many sessions it holds (on
//! Linux, where they are byte locks on `<data_dir>/sessions.lock`). Its own test binary, with
//! one test, so that no other test opens or closes descriptors while this one counts them.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;

use wasp::store::{CredentialStore, FileStore, LockHolder};

fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_thousand_session_locks_hold_one_descriptor() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    let before = open_descriptors();
    let locks: Vec<_> = (0..1000)
        .map(|i| store.lock(&format!("s{i}")).unwrap())
        .collect();
    assert_eq!(open_descriptors(), before + 1);

    // The one descriptor is the shared lock file, private like the other files.
    let shared = fs::canonicalize(tmp.path().join("sessions.lock")).unwrap();
    let on_shared = fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == shared))
        .count();
    assert_eq!(on_shared, 1);
    assert_eq!(
        fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Every session is held, and its record still names this process.
    let other = FileStore::new(tmp.path());
    for i in [0, 499, 999] {
        let holder = other.is_locked(&format!("s{i}")).unwrap();
        assert!(
            matches!(holder, Some(LockHolder::Process { pid, .. }) if pid == std::process::id()),
            "s{i}: {holder:?}"
        );
    }
    drop(locks);
    assert_eq!(other.is_locked("s0").unwrap(), None);
    assert_eq!(open_descriptors(), before + 1, "kept for the next lock");
}
