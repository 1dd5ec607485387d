//! The lease logic. A model test: nodes acquire, renew and write through a model of the Lua
//! scripts' rules with random network delays and process pauses, and no two nodes ever trust
//! a lease at the same instant, and a write carrying an old fencing token is never taken.
//! Then the real scripts and the fenced credential store against a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use wasp::cluster::lease;
use wasp::store::redis::keys;
use wasp::store::{CredentialStore, Fences, FileStore, RedisStore, StoreError};

const TTL_MS: u64 = 2000;

/// Redis as the scripts use it: one lease key with an expiry, the fence counter, the value
/// written under fencing.
#[derive(Default)]
struct Server {
    lease: Option<(String, u64)>, // value, expires at (ms)
    fence: u64,
    accepted_writes: Vec<u64>,
}

impl Server {
    fn current(&mut self, at: u64) -> Option<&String> {
        if self.lease.as_ref().is_some_and(|(_, exp)| *exp <= at) {
            self.lease = None;
        }
        self.lease.as_ref().map(|(v, _)| v)
    }
    fn acquire(&mut self, at: u64, node: &str) -> u64 {
        if self.current(at).is_some() {
            return 0;
        }
        self.fence += 1;
        self.lease = Some((lease::lease_value(self.fence, node), at + TTL_MS));
        self.fence
    }
    fn renew(&mut self, at: u64, value: &str) -> bool {
        if self.current(at).map(String::as_str) != Some(value) {
            return false;
        }
        self.lease = Some((value.to_string(), at + TTL_MS));
        true
    }
    fn write(&mut self, at: u64, token: u64) -> bool {
        let ok = self
            .current(at)
            .and_then(|v| v.split_once(':'))
            .and_then(|(t, _)| t.parse::<u64>().ok())
            == Some(token);
        if ok {
            self.accepted_writes.push(token);
        }
        ok
    }
}

#[derive(Debug, Clone)]
enum Act {
    Acquire,
    Renew,
    Write,
}

#[derive(Debug, Clone)]
struct Step {
    node: usize,
    act: Act,
    /// Request in flight before Redis runs it (a slow network or a paused sender).
    to_server: u64,
    /// Answer in flight back (a slow network or the node paused before reading it).
    to_node: u64,
    /// Time passing before the next step.
    gap: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..3usize,
        prop_oneof![Just(Act::Acquire), Just(Act::Renew), Just(Act::Write)],
        prop_oneof![0..50u64, 0..3000u64],
        prop_oneof![0..50u64, 0..5000u64],
        0..1200u64,
    )
        .prop_map(|(node, act, to_server, to_node, gap)| Step {
            node,
            act,
            to_server,
            to_node,
            gap,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_two_nodes_trust_a_lease_at_once_and_old_tokens_never_write(
        steps in prop::collection::vec(step(), 1..120)
    ) {
        let base = Instant::now();
        let ms = |t: u64| base + Duration::from_millis(t);
        let mut server = Server::default();
        // Per node: the lease it holds (value, token) and until when it trusts it.
        let mut held: Vec<Option<(String, u64, Instant)>> = vec![None; 3];
        // Trust intervals: (node, from, until).
        let mut trusted: Vec<(usize, Instant, Instant)> = Vec::new();
        let mut now = 0u64;
        // Redis runs one script at a time, in the order they arrive: its clock only goes on.
        let mut server_clock = 0u64;
        for s in steps {
            let sent = now;
            let at_server = (sent + s.to_server).max(server_clock);
            server_clock = at_server;
            let received = at_server + s.to_node;
            let name = format!("node-{}", s.node);
            match s.act {
                Act::Acquire => {
                    let token = server.acquire(at_server, &name);
                    if token > 0 {
                        let until = lease::trust_until(ms(sent), Duration::from_millis(TTL_MS));
                        held[s.node] = Some((lease::lease_value(token, &name), token, until));
                        if ms(received) < until {
                            trusted.push((s.node, ms(received), until));
                        }
                    }
                }
                Act::Renew => {
                    if let Some((value, token, _)) = held[s.node].clone() {
                        if server.renew(at_server, &value) {
                            let until = lease::trust_until(ms(sent), Duration::from_millis(TTL_MS));
                            held[s.node] = Some((value, token, until));
                            if ms(received) < until {
                                trusted.push((s.node, ms(received), until));
                            }
                        } else {
                            held[s.node] = None;
                        }
                    }
                }
                Act::Write => {
                    // A node writes with whatever token it has, trusted or not (a process
                    // waking from a pause does exactly this).
                    if let Some((_, token, _)) = held[s.node] {
                        let newest = server.accepted_writes.iter().copied().max();
                        let ok = server.write(at_server, token);
                        if ok {
                            prop_assert!(newest.is_none_or(|n| n <= token), "token {token} wrote after {newest:?}");
                        }
                        prop_assert!(!ok || server.fence == token, "an old token wrote");
                    }
                }
            }
            now += s.gap;
        }
        for (i, a) in trusted.iter().enumerate() {
            for b in &trusted[i + 1..] {
                if a.0 != b.0 {
                    prop_assert!(a.2 <= b.1 || b.2 <= a.1, "two nodes trusted the lease at once: {a:?} {b:?}");
                }
            }
        }
    }
}

/// The scripts and the fenced store on a real Redis: one holder at a time, renew and release
/// only by the holder, and a store write with an old token refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_fence_writes_on_a_real_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = common::cluster::Redis::start(&dir.path().join("redis"));
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let acquire = redis::Script::new(lease::ACQUIRE);
    let renew = redis::Script::new(lease::RENEW);
    let release = redis::Script::new(lease::RELEASE);
    let key = keys::lease("s1");
    let take = |con: &mut redis::Connection, node: &str| -> u64 {
        acquire
            .key(&key)
            .key(keys::FENCE)
            .arg(node)
            .arg(TTL_MS)
            .invoke(con)
            .unwrap()
    };

    let first = take(&mut con, "node-a");
    assert!(first > 0);
    assert_eq!(take(&mut con, "node-b"), 0, "a held lease was taken");
    let value_a = lease::lease_value(first, "node-a");
    let renewed: i64 = renew
        .key(&key)
        .arg(&value_a)
        .arg(TTL_MS)
        .invoke(&mut con)
        .unwrap();
    assert_eq!(renewed, 1);
    let wrong: i64 = renew
        .key(&key)
        .arg("1:node-b")
        .arg(TTL_MS)
        .invoke(&mut con)
        .unwrap();
    assert_eq!(wrong, 0);

    let fences = Fences::default();
    let store = RedisStore::new(
        client.clone(),
        fences.clone(),
        FileStore::new(dir.path().join("data")),
    );
    fences.set("s1", Some(first));
    store.save("s1", b"{\"from\":\"a\"}").unwrap();

    // A loses the lease (released here; expiry behaves the same), B takes it.
    let gone: i64 = release.key(&key).arg(&value_a).invoke(&mut con).unwrap();
    assert_eq!(gone, 1);
    let second = take(&mut con, "node-b");
    assert!(second > first);
    // A, still believing its old token, writes: refused.
    let refused = store.save("s1", b"{\"from\":\"a-late\"}");
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    let store_b = Arc::new(RedisStore::new(
        client,
        Fences::default(),
        FileStore::new(dir.path().join("b")),
    ));
    assert!(
        matches!(store_b.save("s1", b"{}"), Err(StoreError::Fenced { .. })),
        "no token, no write"
    );
    let loaded = store.load("s1").unwrap().unwrap();
    assert_eq!(loaded.value.expose(), b"{\"from\":\"a\"}");
}

/// The Redis store keeps the file store's promises: a corrupt current value falls back to the
/// newest good backup (which becomes current again), backups are kept to `keep`, a wipe takes
/// one last backup first, and the status round-trips.
#[test]
fn the_redis_store_falls_back_to_a_backup_and_wipes_after_one() {
    use wasp::store::{LastBackup, LoadSource, PersistedStatus};
    let dir = tempfile::tempdir().unwrap();
    let redis = common::cluster::Redis::start(&dir.path().join("redis"));
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let token: u64 = redis::Script::new(lease::ACQUIRE)
        .key(keys::lease("s1"))
        .key(keys::FENCE)
        .arg("node-a")
        .arg(60_000)
        .invoke(&mut con)
        .unwrap();
    let fences = Fences::default();
    fences.set("s1", Some(token));
    let store = RedisStore::new(client, fences, FileStore::new(dir.path().join("data")));

    assert!(store.load("s1").unwrap().is_none());
    store.save("s1", b"{\"v\":1}").unwrap();
    store.backup("s1", 2).unwrap();
    store.save("s1", b"{\"v\":2}").unwrap();
    store.backup("s1", 2).unwrap();
    store.save("s1", b"{\"v\":3}").unwrap();
    let third = store.backup("s1", 2).unwrap();
    let kept = store.list_backups("s1").unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept.last().unwrap().seq, third.seq);

    // Flip a byte of the current value: the checksum refuses it, the newest backup is used.
    let mut sealed: Vec<u8> = redis::cmd("GET")
        .arg(keys::creds("s1"))
        .query(&mut con)
        .unwrap();
    let last = sealed.len() - 2;
    sealed[last] ^= 0x01;
    let _: () = redis::cmd("SET")
        .arg(keys::creds("s1"))
        .arg(sealed)
        .query(&mut con)
        .unwrap();
    let loaded = store.load("s1").unwrap().unwrap();
    assert_eq!(loaded.value.expose(), b"{\"v\":3}");
    assert!(matches!(loaded.source, LoadSource::Backup(_)));
    assert!(
        loaded.timeline_note().unwrap().contains("checksum"),
        "{:?}",
        loaded.timeline_note()
    );
    // It is current again.
    let again = store.load("s1").unwrap().unwrap();
    assert!(matches!(again.source, LoadSource::Current));

    let report = store.wipe("s1", LastBackup::Take { keep: 2 }).unwrap();
    assert!(report.removed && report.backup.is_some());
    assert!(store.load("s1").unwrap().is_none());

    let status = PersistedStatus {
        was_online: true,
        phone: Some("+15551234567".to_string()),
        ..PersistedStatus::default()
    };
    store.save_status("s1", &status).unwrap();
    assert_eq!(store.load_status("s1").unwrap().unwrap().value, status);
}
