//! The key store mirrored to a real redis-server (`credentials = "redis"`): a node that takes a
//! session's lease finds its pre-keys, Signal records and outbox as the last holder left them,
//! and a holder whose token is stale writes nothing, neither in Redis nor in its own file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::cluster::Redis;
use wasp::store::keys::{KeyStore, KeysError};
use wasp::store::mirror::Mirror;
use wasp::store::outbox::NewMessage;
use wasp::store::signal::{SignalKind, SignalWrite};
use wasp::store::{Fences, SecretBody};

const S: &str = "s1";

/// A node's key store on `dir`, mirrored through `fences`.
fn node(redis: &Redis, dir: &Path, fences: &Fences) -> KeyStore {
    let client = redis::Client::open(redis.url()).unwrap();
    KeyStore::in_data_dir(dir).mirrored(Some(Mirror::new(client, fences.clone())))
}

/// Gives the lease of `S` to `node` under `token` (as the cluster's acquire script leaves it).
fn lease(redis: &Redis, token: u64, node: &str) {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("wasp:lease:{S}"))
        .arg(format!("{token}:{node}"))
        .query(&mut con)
        .unwrap();
}

/// Every mirrored row of `S` in Redis, by key and field.
fn snapshot(redis: &Redis) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("wasp:rows:{S}:*"))
        .query(&mut con)
        .unwrap();
    names
        .into_iter()
        .map(|k| {
            let h: BTreeMap<Vec<u8>, Vec<u8>> =
                redis::cmd("HGETALL").arg(&k).query(&mut con).unwrap();
            (k, h)
        })
        .collect()
}

fn message(id: &str) -> NewMessage {
    NewMessage {
        id: id.to_string(),
        to: "15550001111@s.whatsapp.net".to_string(),
        text: format!("text of {id}"),
        key: None,
    }
}

fn ratchet(value: &[u8]) -> Vec<SignalWrite> {
    vec![SignalWrite::Put {
        kind: SignalKind::Session,
        name: "15550001111.0".to_string(),
        value: SecretBody::new(value.to_vec()),
    }]
}

fn ratchet_of(store: &KeyStore) -> Vec<u8> {
    let got = store.signal_get(S, SignalKind::Session, "15550001111.0");
    got.unwrap().unwrap().expose().to_vec()
}

#[test]
fn the_next_holder_resumes_from_redis_and_a_stale_holder_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis"));
    let (fences_a, fences_b) = (Fences::default(), Fences::default());
    let a = node(&redis, &dir.path().join("a"), &fences_a);
    let b = node(&redis, &dir.path().join("b"), &fences_b);

    // A holds the lease (token 1): pre-keys, a ratchet and a queued message, all mirrored.
    lease(&redis, 1, "node-a");
    fences_a.set(S, Some(1));
    let keys = a.keys_to_upload(S, 30).unwrap();
    let ids: Vec<u32> = keys.iter().map(|k| k.id).collect();
    a.mark_uploaded(S, &ids[..20]).unwrap();
    a.signal_apply(S, &ratchet(b"ratchet-1")).unwrap();
    a.outbox_enqueue(S, &message("m1"), 1_000, 100).unwrap();
    assert!(!snapshot(&redis).is_empty(), "nothing reached Redis");

    // A dies; B takes the lease (token 2) and finds everything as A left it.
    lease(&redis, 2, "node-b");
    fences_b.set(S, Some(2));
    let counts = b.counts(S).unwrap();
    assert_eq!(
        (counts.stored, counts.uploaded, counts.next_id),
        (30, 20, 31)
    );
    assert_eq!(ratchet_of(&b), b"ratchet-1");
    let queued = b.outbox_queued(S, 0).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, "m1");
    assert_eq!(b.take_prekey(S, ids[0]).unwrap().unwrap(), keys[0]);
    b.signal_apply(S, &ratchet(b"ratchet-2")).unwrap();

    // A wakes up with token 1: every kind of write is refused and changes nothing anywhere.
    let before = snapshot(&redis);
    let local_before = a.counts(S).unwrap();
    let refused: Vec<Result<(), KeysError>> = vec![
        a.mark_uploaded(S, &ids).map(drop),
        a.signal_apply(S, &ratchet(b"stale")),
        a.outbox_enqueue(S, &message("m-stale"), 2_000, 100)
            .map(drop),
        a.keys_to_upload(S, 5).map(drop),
        a.remove_session(S),
    ];
    for r in refused {
        let err = r.expect_err("a stale writer was let through");
        let text = err.to_string();
        assert!(matches!(err, KeysError::Mirror { .. }), "{text}");
        assert!(text.contains(S) && text.contains("fenced off"), "{text}");
    }
    assert_eq!(snapshot(&redis), before, "the stale writer changed Redis");
    assert_eq!(a.counts(S).unwrap(), local_before, "its own file changed");
    assert_eq!(ratchet_of(&a), b"ratchet-1", "its own ratchet moved");
    assert!(a.outbox_get(S, "m-stale").unwrap().is_none());

    // Without any token (lease dropped) A writes nothing either.
    fences_a.set(S, None);
    assert!(a.signal_apply(S, &ratchet(b"none")).is_err());
    assert_eq!(snapshot(&redis), before);

    // The price of the write-through: one fenced script per committed transaction.
    let started = std::time::Instant::now();
    for i in 0..200u32 {
        b.signal_apply(S, &ratchet(&i.to_le_bytes())).unwrap();
    }
    let per_step = started.elapsed() / 200;
    let plain = KeyStore::in_data_dir(&dir.path().join("plain"));
    let started = std::time::Instant::now();
    for i in 0..200u32 {
        plain.signal_apply(S, &ratchet(&i.to_le_bytes())).unwrap();
    }
    let plain_step = started.elapsed() / 200;
    let started = std::time::Instant::now();
    b.keys_to_upload(S, 812).unwrap();
    eprintln!(
        "a ratchet step commits in {per_step:?} mirrored, {plain_step:?} without; \
         812 new pre-keys mirrored in {:?}",
        started.elapsed()
    );
    b.signal_apply(S, &ratchet(b"ratchet-2")).unwrap();

    // A takes the lease again (token 3): its stale rows are replaced by B's.
    lease(&redis, 3, "node-a");
    fences_a.set(S, Some(3));
    assert_eq!(ratchet_of(&a), b"ratchet-2");
    let counts = a.counts(S).unwrap();
    assert_eq!(counts, b.counts(S).unwrap(), "B's pre-keys came over");
    assert_eq!(
        counts.stored,
        29 + 802,
        "the one B used is gone, its 802 new ones came"
    );
    // And B, now stale, is refused.
    assert!(b.signal_apply(S, &ratchet(b"late")).is_err());
    assert_eq!(ratchet_of(&a), b"ratchet-2");
}

#[test]
fn a_session_redis_never_saw_is_seeded_from_the_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis"));
    let data = dir.path().join("a");
    // Written before the cluster mirrored anything (plain, unmirrored store).
    let plain = KeyStore::in_data_dir(&data);
    plain.keys_to_upload(S, 4).unwrap();
    plain.signal_apply(S, &ratchet(b"from-file")).unwrap();
    drop(plain);
    let fences = Fences::default();
    lease(&redis, 1, "node-a");
    fences.set(S, Some(1));
    let a = node(&redis, &data, &fences);
    assert_eq!(a.counts(S).unwrap().stored, 4);
    // Another node now finds the same rows in Redis.
    let fences_b = Fences::default();
    let b = node(&redis, &dir.path().join("b"), &fences_b);
    lease(&redis, 2, "node-b");
    fences_b.set(S, Some(2));
    assert_eq!(b.counts(S).unwrap().stored, 4);
    assert_eq!(ratchet_of(&b), b"from-file");
}
