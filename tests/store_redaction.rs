//! Key material never leaks through the store: every log line it emits (captured at TRACE, text
//! and JSON) and every Debug/Display string of what it returns is searched for the key bytes,
//! raw and encoded, and none is found. Uses a local credential type with a redacting Debug;
//! Runs on the real `wasp::wa::creds::Credentials`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/leaks.rs"]
mod leaks;

use std::fs;

use leaks::{Capture, find_leak, leak_needles};
use tracing_subscriber::layer::SubscriberExt;

use wasp::store::{CredentialStore, CredentialStoreExt, FileStore, LastBackup};

#[test]
fn no_log_line_or_debug_string_holds_key_bytes() {
    // The real credential set: every private key and the adv secret are needles.
    let creds = wasp::wa::creds::Credentials::generate();
    let keys = [
        *creds.noise.private.expose(),
        *creds.identity.private.expose(),
        *creds.signed_pre_key.key_pair.private.expose(),
        *creds.adv_secret.expose(),
    ];
    let logs = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(logs.layers());
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path());
    let mut shown: Vec<String> = Vec::new();

    tracing::subscriber::with_default(subscriber, || {
        let lock = store.lock("sales-1").unwrap();
        shown.push(format!("{lock:?}"));
        store.save_json("sales-1", &creds).unwrap();
        let first = store.backup("sales-1", 5).unwrap();
        shown.push(format!("{first:?}"));
        store.save_json("sales-1", &creds).unwrap();
        store.backup("sales-1", 5).unwrap();

        // Current file loads.
        let loaded = store
            .load_json::<wasp::wa::creds::Credentials>("sales-1")
            .unwrap()
            .unwrap();
        assert_eq!(
            *loaded.value.noise.private.expose(),
            keys[0],
            "the keys really are stored"
        );
        shown.push(format!("{loaded:?}"));
        let raw = store.load("sales-1").unwrap().unwrap();
        shown.push(format!("{raw:?}"));

        // Corrupt current file and newest backup: warnings, set-aside, fallback.
        let path = store.credentials_path("sales-1").unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        fs::write(&path, &bytes).unwrap();
        let newest = store.list_backups("sales-1").unwrap().pop().unwrap();
        let mut bytes = fs::read(&newest.path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&newest.path, &bytes).unwrap();
        let fallback = store
            .load_json::<wasp::wa::creds::Credentials>("sales-1")
            .unwrap()
            .unwrap();
        shown.push(format!("{fallback:?}"));
        shown.push(fallback.timeline_note().unwrap());

        // Decode errors and the no-usable-credentials error.
        let wrong = store.load_json::<Vec<u32>>("sales-1").unwrap_err();
        shown.push(format!("{wrong} {wrong:?}"));
        let wipe = store.wipe("sales-1", LastBackup::Take { keep: 5 }).unwrap();
        shown.push(format!("{wipe:?}"));
        store.save_json("sales-2", &creds).unwrap();
        let path = store.credentials_path("sales-2").unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let none = store.load("sales-2").unwrap_err();
        shown.push(format!("{none} {none:?}"));
        drop(lock);
    });

    let logs = logs.0.lock().unwrap().clone();
    let log_text = String::from_utf8_lossy(&logs);
    // The capture really saw the store's events, including the fallback warnings.
    assert!(log_text.contains("credentials backed up"), "{log_text}");
    assert!(
        log_text.contains("credentials restored from backup"),
        "{log_text}"
    );
    assert!(
        log_text.contains("backup failed verification"),
        "{log_text}"
    );

    let needles = leak_needles(&keys);
    // The needles do find keys where they are: in the stored file itself.
    let stored = fs::read(&store.list_backups("sales-1").unwrap()[0].path).unwrap();
    assert!(
        find_leak(&stored, &needles).is_some(),
        "the search would find a leak"
    );
    assert!(find_leak(format!("{:?}", &keys[0][..]).as_bytes(), &needles).is_some());

    if let Some(leak) = find_leak(&logs, &needles) {
        panic!("key material {leak:?} appears in the logs:\n{log_text}");
    }
    for text in &shown {
        if let Some(leak) = find_leak(text.as_bytes(), &needles) {
            panic!("key material {leak:?} appears in {text}");
        }
        assert!(!text.contains("registration_id\":4242"), "{text}");
    }
}

#[test]
fn the_key_store_never_shows_its_keys() {
    use wasp::store::keys::KeyStore;
    use wasp::store::signal::{CachedDevices, SignalKind, SignalWrite};
    use wasp::store::signal_keys::KeySignalStore;
    use wasp::wa::jid::Jid;
    use wasp::wa::signal::{self, MemoryStore, SignalAddress, SignalStore};

    let creds = wasp::wa::creds::Credentials::generate();
    let logs = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(logs.layers());
    let tmp = tempfile::tempdir().unwrap();
    let keys = std::sync::Arc::new(KeyStore::in_data_dir(tmp.path()));
    let mut shown: Vec<String> = Vec::new();
    let peer_jid: Jid = "15551234567@s.whatsapp.net".parse().unwrap();
    let peer_addr = SignalAddress::of(&peer_jid);
    let mut record = Vec::new();
    let mut prekey_privates = Vec::new();

    tracing::subscriber::with_default(subscriber, || {
        let mut ours = KeySignalStore::new(keys.clone(), "sales-1", &creds);
        let uploaded = keys.keys_to_upload("sales-1", 3).unwrap();
        prekey_privates.extend(uploaded.iter().map(|k| *k.key_pair.private.expose()));
        shown.push(format!("{uploaded:?}"));
        let mut peer = MemoryStore::generate();
        let peer_key = peer.generate_prekeys(1).remove(0);
        let bundle = peer.bundle(Some(&peer_key));
        signal::process_bundle(&mut ours, &peer_addr, &bundle).unwrap();
        let (kind, bytes) = signal::encrypt(&mut ours, &peer_addr, b"hello").unwrap();
        let own_addr = SignalAddress::of(&"15550001111:3@s.whatsapp.net".parse().unwrap());
        let got = signal::decrypt(&mut peer, &own_addr, kind, &bytes).unwrap();
        shown.push(format!("{got:?}"));
        let (kind, bytes) = signal::encrypt(&mut peer, &own_addr, b"back").unwrap();
        let back = signal::decrypt(&mut ours, &peer_addr, kind, &bytes).unwrap();
        assert_eq!(
            back.plaintext, b"back",
            "the session really runs on keys.db"
        );
        record = ours.session(&peer_addr).unwrap().unwrap();
        shown.push(format!("{ours:?}"));
        shown.push(format!("{keys:?}"));
        let body = keys
            .signal_get("sales-1", SignalKind::Session, &peer_addr.to_string())
            .unwrap()
            .unwrap();
        shown.push(format!("{body:?}"));
        let write = SignalWrite::Put {
            kind: SignalKind::Session,
            name: peer_addr.to_string(),
            value: body,
        };
        shown.push(format!("{write:?}"));
        let cached = CachedDevices {
            devices: vec![0, 3],
            lid: None,
            fetched_at: 1,
        };
        keys.devices_put("sales-1", "15551234567@s.whatsapp.net", &cached)
            .unwrap();
        shown.push(format!(
            "{:?}",
            keys.devices_get("sales-1", "15551234567@s.whatsapp.net")
        ));
        let damaged = KeyStore::at(tmp.path().join("missing-dir/x/keys.db"));
        if let Err(e) = damaged.counts("s") {
            shown.push(format!("{e} {e:?}"));
        }
    });

    let mut secrets = vec![
        *creds.identity.private.expose(),
        *creds.signed_pre_key.key_pair.private.expose(),
    ];
    secrets.extend(prekey_privates);
    // The session record holds root and chain keys: every 32-byte stretch is a needle.
    secrets.extend(
        record
            .chunks_exact(32)
            .map(|c| <[u8; 32]>::try_from(c).unwrap()),
    );
    let needles = leak_needles(&secrets);
    let logs = logs.0.lock().unwrap().clone();
    if let Some(leak) = find_leak(&logs, &needles) {
        panic!("key material {leak:?} appears in the logs");
    }
    for text in &shown {
        if let Some(leak) = find_leak(text.as_bytes(), &needles) {
            panic!("key material {leak:?} appears in {text}");
        }
    }
    // The search does find the keys where they are: in the database file.
    let db = fs::read(tmp.path().join("keys.db")).unwrap();
    let wal = fs::read(tmp.path().join("keys.db-wal")).unwrap_or_default();
    assert!(
        find_leak(&db, &needles).is_some() || find_leak(&wal, &needles).is_some(),
        "the search would find a leak"
    );
}
