//! The file store as an operator sees it: layout and permissions, loads that survive corrupt
//! files by falling back to backups, backups kept to N and verified, wipes, persisted status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use wasp::store::{
    CredentialStore, CredentialStoreExt, FileStore, LastBackup, LoadSource, PersistedStatus,
    StoreError,
};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn body(n: u32) -> Vec<u8> {
    format!("{{\"counter\":{n},\"pad\":\"{}\"}}", "k".repeat(64)).into_bytes()
}

fn loaded_body(store: &FileStore, session: &str) -> Vec<u8> {
    store
        .load(session)
        .unwrap()
        .unwrap()
        .value
        .expose()
        .to_vec()
}

#[test]
fn directories_are_0700_and_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("wasp-data");
    let store = FileStore::new(&data);
    let _lock = store.lock("sales-1").unwrap();
    store.save("sales-1", &body(1)).unwrap();
    store
        .save_status("sales-1", &PersistedStatus::default())
        .unwrap();
    let backup = store.backup("sales-1", 5).unwrap();
    // A refused file kept aside must stay private too.
    fs::write(store.credentials_path("sales-1").unwrap(), b"garbage").unwrap();
    fs::set_permissions(
        store.credentials_path("sales-1").unwrap(),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let loaded = store.load("sales-1").unwrap().unwrap();
    let kept = loaded.corrupt_kept.clone().unwrap();

    let session_dir = store.session_dir("sales-1").unwrap();
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&session_dir), 0o700, "session dir");
    assert_eq!(
        mode(&store.backups_dir("sales-1").unwrap()),
        0o700,
        "backups dir"
    );
    for file in [
        store.credentials_path("sales-1").unwrap(),
        store.status_path("sales-1").unwrap(),
        store.lock_path("sales-1").unwrap(),
        backup.path.clone(),
        kept,
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn an_existing_loose_session_dir_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    let dir = store.session_dir("s").unwrap();
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    store.save("s", &body(1)).unwrap();
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn saved_credentials_load_back_and_a_new_session_has_none() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    assert!(store.load("fresh").unwrap().is_none());
    assert!(store.load_status("fresh").unwrap().is_none());
    store.save("s", &body(1)).unwrap();
    store.save("s", &body(2)).unwrap();
    let loaded = store.load("s").unwrap().unwrap();
    assert_eq!(loaded.value.expose(), &body(2)[..]);
    assert_eq!(loaded.source, LoadSource::Current);
    assert!(loaded.timeline_note().is_none());
    // Nothing but the credentials file is left in the directory (no temp files).
    let names: Vec<_> = fs::read_dir(store.session_dir("s").unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["creds.wasp".to_owned()]);
}

/// Ways a credentials file goes bad on disk.
fn damage(path: &Path, how: &str) {
    let mut bytes = fs::read(path).unwrap();
    match how {
        "truncated" => bytes.truncate(bytes.len() - 10),
        "bit flip" => {
            let i = bytes.len() - 5;
            bytes[i] ^= 0x04;
        }
        "unknown version" => {
            let text =
                String::from_utf8(bytes)
                    .unwrap()
                    .replacen("wasp-store 1 ", "wasp-store 9 ", 1);
            bytes = text.into_bytes();
        }
        "empty" => bytes.clear(),
        other => panic!("unknown damage {other}"),
    }
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_file_falls_back_to_the_newest_good_backup_and_is_kept_aside() {
    for how in ["truncated", "bit flip", "unknown version", "empty"] {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileStore::new(tmp.path());
        store.save("s", &body(1)).unwrap();
        store.backup("s", 5).unwrap();
        store.save("s", &body(2)).unwrap();
        let newest = store.backup("s", 5).unwrap();
        store.save("s", &body(3)).unwrap();
        let path = store.credentials_path("s").unwrap();
        let damaged_bytes = {
            damage(&path, how);
            fs::read(&path).unwrap()
        };

        let loaded = store.load("s").unwrap().unwrap();
        assert_eq!(loaded.value.expose(), &body(2)[..], "{how}");
        assert_eq!(loaded.source, LoadSource::Backup(newest.clone()), "{how}");
        let kept = loaded.corrupt_kept.clone().unwrap();
        assert!(
            kept.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("creds.wasp.corrupt-"),
            "{}",
            kept.display()
        );
        assert_eq!(
            fs::read(&kept).unwrap(),
            damaged_bytes,
            "{how}: the bad file is kept as it was"
        );
        let note = loaded.timeline_note().unwrap();
        assert!(note.contains("creds.wasp was refused"), "{note}");
        assert!(
            note.contains(&format!("restored backup {}", newest.seq)),
            "{note}"
        );

        // The backup became the current file again: the next load is clean.
        let again = store.load("s").unwrap().unwrap();
        assert_eq!(again.source, LoadSource::Current, "{how}");
        assert_eq!(again.value.expose(), &body(2)[..]);
    }
}

#[test]
fn bad_backups_are_skipped_and_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    store.save("s", &body(1)).unwrap();
    let older = store.backup("s", 5).unwrap();
    store.save("s", &body(2)).unwrap();
    let newer = store.backup("s", 5).unwrap();
    damage(&newer.path, "bit flip");
    damage(&store.credentials_path("s").unwrap(), "truncated");

    let loaded = store.load("s").unwrap().unwrap();
    assert_eq!(loaded.value.expose(), &body(1)[..]);
    assert_eq!(loaded.source, LoadSource::Backup(older.clone()));
    assert_eq!(loaded.backups_set_aside.len(), 1);
    assert!(!newer.path.exists());
    assert_eq!(store.list_backups("s").unwrap(), vec![older]);
}

#[test]
fn with_no_good_backup_the_session_has_no_usable_credentials_then_pairs_anew() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    store.save("sales-1", &body(1)).unwrap();
    damage(&store.credentials_path("sales-1").unwrap(), "bit flip");

    let err = store.load("sales-1").unwrap_err();
    let StoreError::NoUsableCredentials {
        session,
        corrupt_kept,
        ..
    } = &err
    else {
        panic!("expected NoUsableCredentials, got {err}");
    };
    assert_eq!(session, "sales-1");
    assert!(corrupt_kept.as_ref().unwrap().exists());
    let text = err.to_string();
    assert!(
        text.contains("sales-1") && text.contains("checksum"),
        "{text}"
    );
    // The refused file no longer stands as current: the session starts pairing next time.
    assert!(store.load("sales-1").unwrap().is_none());
}

#[test]
fn backups_are_kept_to_the_newest_n_and_dated() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    assert!(matches!(
        store.backup("s", 5),
        Err(StoreError::NothingToBackUp { .. })
    ));
    assert_eq!(store.last_backup_at("s").unwrap(), None);
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    for n in 1..=8 {
        store.save("s", &body(n)).unwrap();
        store.backup("s", 5).unwrap();
    }
    let kept = store.list_backups("s").unwrap();
    assert_eq!(
        kept.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 7, 8]
    );
    assert!(store.last_backup_at("s").unwrap().unwrap() >= before);
    // Each kept backup holds what was current when it was taken.
    store.save("s", &body(99)).unwrap();
    damage(&store.credentials_path("s").unwrap(), "truncated");
    assert_eq!(loaded_body(&store, "s"), body(8));
    // keep = 0 still keeps the backup just written.
    store.backup("s", 0).unwrap();
    assert_eq!(store.list_backups("s").unwrap().len(), 1);
}

#[test]
fn a_corrupt_current_file_is_not_backed_up() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    store.save("s", &body(1)).unwrap();
    store.backup("s", 5).unwrap();
    damage(&store.credentials_path("s").unwrap(), "bit flip");
    let err = store.backup("s", 5).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(store.list_backups("s").unwrap().len(), 1);
}

#[test]
fn wipe_backs_up_then_removes_the_key_material() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    store.save("s", &body(7)).unwrap();
    let report = store.wipe("s", LastBackup::Take { keep: 5 }).unwrap();
    assert!(report.removed);
    let backup = report.backup.unwrap();
    assert!(
        store.load("s").unwrap().is_none(),
        "wiped credentials must not load"
    );
    // The last backup holds the wiped credentials.
    let raw = fs::read(&backup.path).unwrap();
    assert!(raw.ends_with(&body(7)));

    store.save("t", &body(1)).unwrap();
    let report = store.wipe("t", LastBackup::Skip).unwrap();
    assert!(report.removed && report.backup.is_none());
    assert!(store.list_backups("t").unwrap().is_empty());
    assert!(store.load("t").unwrap().is_none());

    let nothing = store.wipe("never", LastBackup::Take { keep: 5 }).unwrap();
    assert!(!nothing.removed && nothing.backup.is_none());
}

#[test]
fn wipe_of_a_corrupt_file_still_removes_it_and_says_why_no_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    store.save("s", &body(1)).unwrap();
    damage(&store.credentials_path("s").unwrap(), "truncated");
    let report = store.wipe("s", LastBackup::Take { keep: 5 }).unwrap();
    assert!(report.removed);
    assert!(report.backup_skipped.unwrap().contains("truncated"));
    assert!(!store.credentials_path("s").unwrap().exists());
}

#[test]
fn persisted_status_round_trips_and_a_bad_one_gives_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    let status = PersistedStatus {
        was_online: true,
        phone: Some("+15551234567".into()),
        paired_at: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000)),
        last_online_at: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_100)),
    };
    store.save_status("s", &status).unwrap();
    let loaded = store.load_status("s").unwrap().unwrap();
    assert_eq!(loaded.value, status);
    assert_eq!(loaded.source, LoadSource::Current);

    // A credentials file is never accepted as a status file, and vice versa.
    store.save("s", &body(1)).unwrap();
    fs::copy(
        store.credentials_path("s").unwrap(),
        store.status_path("s").unwrap(),
    )
    .unwrap();
    let refused = store.load_status("s").unwrap().unwrap();
    assert_eq!(refused.source, LoadSource::Defaults);
    assert_eq!(refused.value, PersistedStatus::default());
    assert!(refused.rejected.unwrap().contains("credentials data"));
    assert!(refused.corrupt_kept.unwrap().exists());
    assert!(store.load_status("s").unwrap().is_none());
}

#[test]
fn typed_helpers_round_trip_and_decode_errors_quote_nothing() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Creds {
        counter: u32,
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    store.save_json("s", &Creds { counter: 5 }).unwrap();
    let loaded = store.load_json::<Creds>("s").unwrap().unwrap();
    assert_eq!(loaded.value, Creds { counter: 5 });

    store
        .save("s", br#"{"counter":"TOPSECRETKEYBYTES"}"#)
        .unwrap();
    let err = store.load_json::<Creds>("s").unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }));
    let text = format!("{err} {err:?}");
    assert!(!text.contains("TOPSECRETKEYBYTES"), "{text}");
    assert!(text.contains("line 1 column"), "{text}");
}

#[test]
fn session_ids_that_escape_the_data_dir_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path().join("data"));
    for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\nb"] {
        let err = store.save(bad, b"x").unwrap_err();
        assert!(
            matches!(err, StoreError::BadSessionId { .. }),
            "{bad:?}: {err}"
        );
        assert!(matches!(
            store.lock(bad),
            Err(StoreError::BadSessionId { .. })
        ));
    }
    assert!(!tmp.path().join("x").exists());
    store.save("sales line 1", b"x").unwrap();
}

#[test]
fn a_write_error_names_the_session_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    // The data dir is a file: the session directory cannot be created.
    let data = tmp.path().join("not-a-dir");
    fs::write(&data, b"").unwrap();
    let store = FileStore::new(&data);
    let err = store.save("sales-1", &body(1)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sales-1") && text.contains("not-a-dir"),
        "{text}"
    );
}
