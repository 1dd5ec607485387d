//! The real binary in a real terminal: `wasp demo` in tmux shows online sessions and a QR
//! within 30 s, `?` shows the help, `q` exits 0 and gives the terminal back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux must be installed (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn capture(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session])
}

/// Polls the screen until `pred` holds; returns that screen or panics with the last one.
fn wait_screen(session: &str, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let screen = capture(session);
        if pred(&screen) {
            return screen;
        }
        if Instant::now() > deadline {
            panic!("{what} not seen within {within:?}; screen:\n{screen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn demo_in_tmux_shows_online_sessions_and_a_qr_then_help_then_quits_cleanly() {
    let session = format!("wasp-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("exit");
    let command = format!(
        "{} demo --sessions 6 --no-faults; echo $? > {}; sleep 30",
        env!("CARGO_BIN_EXE_wasp"),
        status.display()
    );
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .output();
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "36",
            &command,
        ])
        .status()
        .expect("tmux must be installed");
    assert!(started.success());

    // A session is pairing (sorted first); Enter opens its QR full screen: half-block
    // modules and the ref counter.
    wait_screen(
        &session,
        "a pairing session",
        Duration::from_secs(30),
        |s| s.contains("ref 1/6"),
    );
    tmux(&["send-keys", "-t", &session, "Enter"]);
    let qr = wait_screen(&session, "a QR code", Duration::from_secs(10), |s| {
        s.chars().filter(|c| *c == '▀' || *c == '▄').count() > 50
    });
    assert!(qr.contains("1/6"), "{qr}");
    tmux(&["send-keys", "-t", &session, "Escape"]);
    // The header counts online sessions once the virtual phone has scanned.
    let online = wait_screen(&session, "online sessions", Duration::from_secs(30), |s| {
        s.lines()
            .take(3)
            .any(|l| l.contains("online") && l.chars().any(|c| c.is_ascii_digit()))
            && s.contains("● online")
    });
    assert!(online.contains("wasp"), "{online}");

    tmux(&["send-keys", "-t", &session, "?"]);
    wait_screen(&session, "the help overlay", Duration::from_secs(10), |s| {
        s.contains("Help") && s.contains("Reconnect now")
    });
    tmux(&["send-keys", "-t", &session, "Escape"]);
    wait_screen(&session, "the help closing", Duration::from_secs(10), |s| {
        !s.contains("Reconnect now")
    });

    tmux(&["send-keys", "-t", &session, "q"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !status.exists() {
        assert!(
            Instant::now() < deadline,
            "wasp did not exit after q:\n{}",
            capture(&session)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read_to_string(&status).unwrap().trim(), "0");
    // The terminal is back: no alternate screen.
    let alternate = tmux(&["display-message", "-p", "-t", &session, "#{alternate_on}"]);
    assert_eq!(alternate.trim(), "0");
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .output();
}
