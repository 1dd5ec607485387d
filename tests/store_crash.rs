//! Crash safety: a child process saves credentials (and takes backups) in a loop and is
//! SIGKILLed at a random moment, 50 times. After every kill the credentials load, never
//! corrupt, hold exactly one of the versions written, and nothing reported saved is lost.
//! The child is this test binary re-invoked on its ignored `child_writes_until_killed` test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use rand::Rng;
use wasp::store::{CredentialStore, FileStore, LoadSource};

#[path = "common/child.rs"]
mod child;
use child::TestChild;

const DIR_VAR: &str = "WASP_STORE_CRASH_DIR";
const START_VAR: &str = "WASP_STORE_CRASH_START";
const SESSION: &str = "sales-1";
const KILLS: usize = 50;

/// Version `n` of the credentials: its counter, key-like bytes and padding of varying length,
/// so that a torn write would be visible.
fn version(n: u64) -> Vec<u8> {
    let key: String = (0..64)
        .map(|i| char::from(b'a' + ((n.wrapping_mul(31) + i * 7) % 26) as u8))
        .collect();
    let pad = "p".repeat(2_000 + (n.wrapping_mul(7_919) % 30_000) as usize);
    format!("{{\"counter\":{n},\"key\":\"{key}\",\"pad\":\"{pad}\"}}").into_bytes()
}

/// The counter of a loaded body, after checking the body is exactly that version.
fn counter_of(body: &[u8]) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(body).expect("the body parses as JSON");
    let n = value["counter"].as_u64().expect("the body has a counter");
    assert!(
        body == version(n).as_slice(),
        "body of version {n} differs from what was written"
    );
    n
}

/// Run only as a child of the crash test: save, report, repeat (a backup every 5th save).
#[test]
#[ignore = "child process of the crash test"]
fn child_writes_until_killed() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_VAR), std::env::var(START_VAR)) else {
        return;
    };
    let start: u64 = start.parse().unwrap();
    let store = FileStore::new(dir);
    let _lock = store.lock(SESSION).unwrap();
    let mut out = std::io::stdout().lock();
    // Bounded, and stops when the parent is gone (the pipe breaks).
    for n in start..start + 100_000 {
        store.save(SESSION, &version(n)).unwrap();
        if n % 5 == 0 {
            store.backup(SESSION, 5).unwrap();
        }
        if writeln!(out, "\nSAVED {n}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

/// Every kept backup, on its own, loads as a valid version.
fn check_backups(store: &FileStore, scratch: &Path) {
    for (i, backup) in store.list_backups(SESSION).unwrap().into_iter().enumerate() {
        let probe = FileStore::new(scratch);
        let session = format!("probe-{i}");
        let dir = probe.session_dir(&session).unwrap();
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&backup.path, dir.join("creds.wasp")).unwrap();
        let loaded = probe.load(&session).unwrap().unwrap();
        assert_eq!(
            loaded.source,
            LoadSource::Current,
            "{}",
            backup.path.display()
        );
        counter_of(loaded.value.expose());
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn credentials_survive_fifty_sigkills_at_random_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scratch = tmp.path().join("scratch");
    let mut rng = rand::thread_rng();
    let mut durable: Option<u64> = None; // highest version a child reported saved
    let mut saves_seen = 0u64;
    let mut kills_mid_write = 0usize; // kills that left a temp file: the write was in flight

    for kill in 1..=KILLS {
        let start = durable.map_or(1, |n| n + 1);
        let start = start.to_string();
        let child = TestChild::spawn(
            "child_writes_until_killed",
            &[(DIR_VAR, data.as_os_str()), (START_VAR, start.as_ref())],
        );
        let saved = |line: &str| -> Option<u64> { line.strip_prefix("SAVED ")?.parse().ok() };

        // A random moment: after 0-6 reported saves, then 0-4 ms more.
        let wait_for = rng.gen_range(0..=6);
        let mut reported = 0;
        while reported < wait_for {
            if let Some(n) = saved(&child.next_line(&format!("kill {kill}"))) {
                durable = Some(durable.map_or(n, |d| d.max(n)));
                saves_seen += 1;
                reported += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..4_000)));
        for n in child.kill().iter().filter_map(|line| saved(line)) {
            durable = Some(durable.map_or(n, |d| d.max(n)));
            saves_seen += 1;
        }

        // The kernel released the dead child's lock.
        let store = FileStore::new(&data);
        if let Ok(dir) = store.session_dir(SESSION) {
            let has_temp = |d: &Path| {
                fs::read_dir(d).is_ok_and(|entries| {
                    entries
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                })
            };
            if has_temp(&dir) || has_temp(&dir.join("backups")) {
                kills_mid_write += 1;
            }
        }
        assert_eq!(store.is_locked(SESSION).unwrap(), None, "kill {kill}");

        match store.load(SESSION).unwrap() {
            None => assert_eq!(durable, None, "kill {kill}: reported saves were lost"),
            Some(loaded) => {
                assert!(
                    loaded.rejected.is_none() && loaded.corrupt_kept.is_none(),
                    "kill {kill}: the credentials were corrupt: {:?}",
                    loaded.timeline_note()
                );
                let n = counter_of(loaded.value.expose());
                // Nothing reported saved is lost; at most the one write in flight is added.
                let floor = durable.unwrap_or(0);
                assert!(
                    n >= floor,
                    "kill {kill}: version {floor} was reported saved, {n} loaded"
                );
                assert!(n <= floor + 1, "kill {kill}: version {n} was never written");
                durable = Some(n);
            }
        }
        check_backups(&store, &scratch);
    }

    assert!(saves_seen > 0, "the children never saved anything");
    eprintln!(
        "{KILLS} kills, {saves_seen} saves reported, {kills_mid_write} kills left a temp file (a write in flight)"
    );
    // A new holder clears the temp files that killed writers left behind.
    let store = FileStore::new(&data);
    let _lock = store.lock(SESSION).unwrap();
    let dir = store.session_dir(SESSION).unwrap();
    for d in [dir.clone(), dir.join("backups")] {
        for entry in fs::read_dir(&d).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                !name.contains(".tmp-"),
                "stale temp file {name} in {}",
                d.display()
            );
        }
    }
}
