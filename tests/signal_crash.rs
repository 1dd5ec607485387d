//! Crash safety of the Signal records in keys.db: a child process runs two sessions of one
//! data directory that text each other (encrypt, decrypt, answer; every ratchet step
//! committed through `KeySignalStore`) and is SIGKILLed at a random moment, 8 times. Every
//! restart continues the same ratchets: no decrypt ever fails ("bad MAC", unknown session), no
//! session is started twice, and the exchange makes progress after each kill.
//! The child is this test binary re-invoked on its ignored `child_exchanges_texts` test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use wasp::store::keys::KeyStore;
use wasp::store::signal_keys::KeySignalStore;
use wasp::wa::creds::Credentials;
use wasp::wa::jid::Jid;
use wasp::wa::prekey::{OneTimeKey, UploadedSignedKey};
use wasp::wa::signal::{self, Bundle, SignalAddress};

#[path = "common/child.rs"]
mod child;
use child::TestChild;

const DIR_VAR: &str = "WASP_SIGNAL_CRASH_DIR";
const KILLS: usize = 8;

fn address(n: u8) -> SignalAddress {
    let jid: Jid = format!("1555000000{n}:1@s.whatsapp.net").parse().unwrap();
    SignalAddress::of(&jid)
}

fn creds(dir: &Path, name: &str) -> Credentials {
    let path = dir.join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs only when re-invoked by the parent: A and B text each other forever.
#[test]
#[ignore = "child process of ratchets_survive_sigkills"]
fn child_exchanges_texts() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let dir = Path::new(&dir);
    let keys = Arc::new(KeyStore::in_data_dir(dir));
    let (a_creds, b_creds) = (creds(dir, "a"), creds(dir, "b"));
    let mut a = KeySignalStore::new(keys.clone(), "a", &a_creds);
    let mut b = KeySignalStore::new(keys.clone(), "b", &b_creds);
    let (a_addr, b_addr) = (address(1), address(2));
    if !signal::has_session(&a, &b_addr).unwrap() {
        let key = keys.keys_to_upload("b", 1).unwrap().remove(0);
        let bundle = Bundle {
            registration_id: u32::from(b_creds.registration_id),
            identity: b_creds.identity.public,
            signed: UploadedSignedKey {
                id: b_creds.signed_pre_key.id,
                public: b_creds.signed_pre_key.key_pair.public,
                signature: b_creds.signed_pre_key.signature,
            },
            one_time: Some(OneTimeKey {
                id: key.id,
                public: key.key_pair.public,
            }),
        };
        signal::process_bundle(&mut a, &b_addr, &bundle).unwrap();
        println!("STARTED");
    }
    for i in 0.. {
        let text = format!("a{i}");
        let (kind, bytes) = signal::encrypt(&mut a, &b_addr, text.as_bytes()).unwrap();
        match signal::decrypt(&mut b, &a_addr, kind, &bytes) {
            Ok(d) if d.plaintext == text.as_bytes() => println!("OK {kind}"),
            other => {
                println!("FAIL b could not decrypt {kind}: {other:?}");
                return;
            }
        }
        let text = format!("b{i}");
        let (kind, bytes) = signal::encrypt(&mut b, &a_addr, text.as_bytes()).unwrap();
        match signal::decrypt(&mut a, &b_addr, kind, &bytes) {
            Ok(d) if d.plaintext == text.as_bytes() => println!("OK {kind}"),
            other => {
                println!("FAIL a could not decrypt {kind}: {other:?}");
                return;
            }
        }
    }
}

#[test]
fn ratchets_survive_sigkills() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        let json = serde_json::to_vec(&Credentials::generate()).unwrap();
        std::fs::write(tmp.path().join(format!("{name}.json")), json).unwrap();
    }
    let mut rng = rand::thread_rng();
    let (mut started, mut oks) = (0, 0);
    for run in 0..=KILLS {
        let child = TestChild::spawn(
            "child_exchanges_texts",
            &[(DIR_VAR, tmp.path().as_os_str())],
        );
        // At least one step per run, so every restart proves the stored ratchets work.
        let wanted = if run == KILLS {
            40
        } else {
            rng.gen_range(1..=40)
        };
        let mut lines = Vec::new();
        while lines
            .iter()
            .filter(|l: &&String| l.starts_with("OK"))
            .count()
            < wanted
        {
            let line = child.next_line(&format!("run {run} after {lines:?}"));
            assert!(!line.starts_with("FAIL"), "run {run}: {line}");
            lines.push(line);
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3_000)));
        lines.extend(child.kill());
        for line in &lines {
            assert!(!line.starts_with("FAIL"), "run {run}: {line}");
        }
        started += lines.iter().filter(|l| *l == "STARTED").count();
        oks += lines.iter().filter(|l| l.starts_with("OK")).count();
    }
    assert_eq!(
        started, 1,
        "the session was started once and then always continued"
    );
    assert!(oks > KILLS, "{oks} steps");
    eprintln!("{KILLS} kills, {oks} ratchet steps, no decrypt failure");
}
