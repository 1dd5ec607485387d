//! Two processes on one data dir: the second cannot take a running session and is told which
//! process holds it; a holder that dies (even by SIGKILL) leaves no stale lock behind.
//! The other process is this test binary re-invoked on its ignored `child_holds_the_lock` test.
//! Two stores on one data dir in one process refuse each other the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wasp::store::{CredentialStore, FileStore, LockHolder, StoreError};

const DIR_VAR: &str = "WASP_STORE_LOCK_TEST_DIR";
const SESSION: &str = "sales-1";

/// Run only as a child of the tests below: takes the lock, says so, holds it until stdin closes.
#[test]
#[ignore = "child process of the lock tests"]
fn child_holds_the_lock() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let store = FileStore::new(dir);
    let lock = store.lock(SESSION).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "LOCKED {}", std::process::id()).unwrap();
    out.flush().unwrap();
    drop(out);
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(lock);
}

/// Starts the child and waits (up to a generous deadline, so a broken child cannot hang the
/// suite) until it reports holding the lock.
fn spawn_holder(dir: &Path) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_holds_the_lock",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness prints `test child_holds_the_lock ... ` before the child's own output.
            if let Some(at) = line.find("LOCKED ") {
                let _ = tx.send(line[at..].to_owned());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the child process never reported holding the lock");
    assert_eq!(line, format!("LOCKED {}", child.id()));
    child
}

#[test]
fn a_second_process_is_refused_and_told_who_holds_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn_holder(tmp.path());
    let store = FileStore::new(tmp.path());

    let err = store.lock(SESSION).unwrap_err();
    let StoreError::Locked {
        session, holder, ..
    } = &err
    else {
        panic!("expected Locked, got {err}");
    };
    assert_eq!(session, SESSION);
    let LockHolder::Process { pid, host, .. } = holder else {
        panic!("the holder did not write its name: {holder}");
    };
    assert_eq!(*pid, child.id());
    assert!(!host.is_empty());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "session {SESSION} is held by pid {} (",
            child.id()
        )),
        "{text}"
    );
    assert_eq!(
        store.is_locked(SESSION).unwrap().and_then(|h| h.pid()),
        Some(child.id())
    );
    // Other sessions are free.
    assert_eq!(store.is_locked("sales-2").unwrap(), None);
    store.lock("sales-2").unwrap();

    // The holder exits cleanly: the session is free.
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(store.is_locked(SESSION).unwrap(), None);
    let lock = store.lock(SESSION).unwrap();
    assert_eq!(lock.holder().pid(), Some(std::process::id()));
}

#[test]
fn a_killed_holder_leaves_no_stale_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn_holder(tmp.path());
    let store = FileStore::new(tmp.path());
    assert!(matches!(
        store.lock(SESSION),
        Err(StoreError::Locked { .. })
    ));

    child.kill().unwrap();
    child.wait().unwrap();
    let lock = store.lock(SESSION).unwrap();
    assert_eq!(lock.holder().pid(), Some(std::process::id()));
}

#[test]
fn a_second_store_in_the_same_process_is_refused_until_the_first_lets_go() {
    let tmp = tempfile::tempdir().unwrap();
    let first = FileStore::new(tmp.path());
    let second = FileStore::new(tmp.path());
    let held = first.lock(SESSION).unwrap();

    let err = second.lock(SESSION).unwrap_err();
    let StoreError::Locked { holder, path, .. } = &err else {
        panic!("expected Locked, got {err}");
    };
    let LockHolder::Process { pid, program, .. } = holder else {
        panic!("the holder did not write its name: {holder}");
    };
    assert_eq!(*pid, std::process::id());
    let this_program = std::env::current_exe().unwrap();
    assert_eq!(
        program.as_str(),
        this_program.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(path, &second.lock_path(SESSION).unwrap());
    assert_eq!(second.is_locked(SESSION).unwrap(), Some(holder.clone()));
    assert_eq!(first.is_locked(SESSION).unwrap(), Some(holder.clone()));
    // The first store refuses itself too.
    assert!(matches!(
        first.lock(SESSION),
        Err(StoreError::Locked { .. })
    ));

    drop(held);
    assert_eq!(second.is_locked(SESSION).unwrap(), None);
    let lock = second.lock(SESSION).unwrap();
    assert_eq!(lock.holder().pid(), Some(std::process::id()));
    assert!(matches!(
        first.lock(SESSION),
        Err(StoreError::Locked { .. })
    ));
}
