//! Crash safety of the pre-key store: a child process hands out pre-keys and confirms
//! uploads in a loop and is SIGKILLed at a random moment, 20 times. After every kill the
//! database opens, every key reported written is there with the same public key, every id
//! reported uploaded is marked so, and ids run 1..next_id without a gap or a reuse.
//! The child is this test binary re-invoked on its ignored `child_hands_out_keys` test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use rusqlite::Connection;
use wasp::store::keys::KeyStore;

#[path = "common/child.rs"]
mod child;
use child::TestChild;

const DIR_VAR: &str = "WASP_KEYS_CRASH_DIR";
const SESSION: &str = "sales-1";
const KILLS: usize = 20;
const BATCH: u32 = 20;

/// Runs only when re-invoked by the parent: write a batch, report it, confirm it, report.
#[test]
#[ignore = "child process of keys_survive_sigkills"]
fn child_hands_out_keys() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let store = KeyStore::in_data_dir(std::path::Path::new(&dir));
    loop {
        let keys = store.keys_to_upload(SESSION, BATCH).unwrap();
        for k in &keys {
            println!("WRITTEN {} {}", k.id, hex(&k.key_pair.public));
        }
        let ids: Vec<u32> = keys.iter().map(|k| k.id).collect();
        store.mark_uploaded(SESSION, &ids).unwrap();
        println!(
            "UPLOADED {}",
            ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Line {
    Written(u32, String),
    Uploaded(Vec<u32>),
}

fn parse(line: &str) -> Option<Line> {
    if let Some(rest) = line.strip_prefix("WRITTEN ") {
        let (id, public) = rest.split_once(' ')?;
        return Some(Line::Written(id.parse().ok()?, public.to_string()));
    }
    let ids = line.strip_prefix("UPLOADED ")?;
    Some(Line::Uploaded(
        ids.split(',').filter_map(|i| i.parse().ok()).collect(),
    ))
}

/// (id -> (public hex, uploaded)) and the counter, read straight from the file.
fn read_back(dir: &std::path::Path) -> (HashMap<u32, (String, bool)>, u32) {
    let conn = Connection::open(dir.join("keys.db")).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let tables: u32 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'prekeys'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if tables == 0 {
        return (HashMap::new(), 1); // killed before its first write
    }
    let mut stmt = conn
        .prepare("SELECT id, public, uploaded FROM prekeys WHERE session = ?1")
        .unwrap();
    let rows = stmt
        .query_map([SESSION], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                hex(&r.get::<_, Vec<u8>>(1)?),
                r.get::<_, bool>(2)?,
            ))
        })
        .unwrap();
    let keys = rows
        .map(|r| r.unwrap())
        .map(|(i, p, u)| (i, (p, u)))
        .collect();
    let next: u32 = conn
        .query_row(
            "SELECT next_id FROM prekey_counter WHERE session = ?1",
            [SESSION],
            |r| r.get(0),
        )
        .unwrap_or(1);
    (keys, next)
}

#[test]
fn keys_survive_sigkills_at_random_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut written: HashMap<u32, String> = HashMap::new();
    let mut uploaded: Vec<u32> = Vec::new();
    let mut seen: HashMap<u32, String> = HashMap::new();

    for kill in 1..=KILLS {
        let child = TestChild::spawn("child_hands_out_keys", &[(DIR_VAR, tmp.path().as_os_str())]);
        // A random moment: after 0-60 reported lines (up to three batches), then 0-3 ms.
        for _ in 0..rng.gen_range(0..=60) {
            let line = child.next_line(&format!("kill {kill}"));
            record(&line, &mut written, &mut uploaded);
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3_000)));
        for line in child.kill() {
            record(&line, &mut written, &mut uploaded);
        }

        let (keys, next) = read_back(tmp.path());
        for (id, public) in &written {
            let (stored, _) = keys
                .get(id)
                .unwrap_or_else(|| panic!("kill {kill}: key {id} was reported written, then lost"));
            assert_eq!(stored, public, "kill {kill}: key {id} changed");
        }
        for id in &uploaded {
            assert!(
                keys[id].1,
                "kill {kill}: upload of {id} was confirmed, then forgotten"
            );
        }
        for (id, (public, _)) in &keys {
            if let Some(before) = seen.insert(*id, public.clone()) {
                assert_eq!(&before, public, "kill {kill}: id {id} got a second key");
            }
        }
        let mut ids: Vec<u32> = keys.keys().copied().collect();
        ids.sort();
        assert_eq!(
            ids,
            (1..next).collect::<Vec<_>>(),
            "kill {kill}: gap or reuse"
        );
    }
    assert!(!written.is_empty(), "the children never wrote anything");
    eprintln!(
        "{KILLS} kills: {} keys reported written, {} uploads confirmed",
        written.len(),
        uploaded.len()
    );
}

fn record(line: &str, written: &mut HashMap<u32, String>, uploaded: &mut Vec<u32>) {
    match parse(line) {
        Some(Line::Written(id, public)) => {
            if let Some(before) = written.insert(id, public.clone()) {
                // Re-handed out after a crash: it must be the very same key.
                assert_eq!(before, public, "id {id} handed out with a different key");
            }
        }
        Some(Line::Uploaded(ids)) => uploaded.extend(ids),
        None => {}
    }
}
