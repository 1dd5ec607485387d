//! The real binary in a real terminal: `wasp demo` in tmux shows online sessions and a QR
//! within 30 s, `?` shows the help, `q` exits 0 and gives the terminal back. A demo whose pane
//! is killed keeps its sessions online, and `wasp attach` in a new pane drives it. `P` in the
//! console shows a pairing code that the simulator's phone types, and the session comes online.
//! `m` on a demo session sends a message to a simulated friend that the console then shows as
//! delivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

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

/// `GET /admin/stats` of the demo's simulator (plain HTTP/1.0 over loopback).
fn sim_stats(admin_url: &str) -> serde_json::Value {
    admin_http(admin_url, "GET /admin/stats", "")
}

/// One request to the simulator's admin API (`"POST /admin/enter-code"`); its JSON answer,
/// or null when it cannot be reached.
fn admin_http(admin_url: &str, request: &str, body: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = admin_url.trim().trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return serde_json::Value::Null;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(40)));
    let _ = write!(
        stream,
        "{request} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until `pred` holds on the simulator's stats; returns them or panics with the last.
fn wait_stats(
    admin: &str,
    what: &str,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let stats = sim_stats(admin);
        if pred(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}: {stats}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the detached demo and closes the panes however the test ends.
struct Cleanup {
    pid: u32,
    panes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Only while that pid is still our demo (not a later process given the same number).
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("demo") {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
        }
        for pane in &self.panes {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", pane])
                .output();
        }
    }
}

/// User plus system CPU time of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(") ").unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn new_tmux(session: &str, command: &str) {
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", session])
        .output();
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "36",
            command,
        ])
        .status()
        .expect("tmux must be installed");
    assert!(started.success());
}

/// The data directory of the demo started with `TMPDIR=tmp` and `--sim-admin` (named for its
/// pid), the simulator's admin URL written there, and the demo's pid.
fn demo_started(tmp: &std::path::Path) -> (std::path::PathBuf, String, u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let data_dir = loop {
        let found = std::fs::read_dir(tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("sim-admin-url").exists());
        if let Some(dir) = found {
            break dir;
        }
        assert!(Instant::now() < deadline, "the demo wrote no sim-admin-url");
        std::thread::sleep(Duration::from_millis(100));
    };
    let admin = std::fs::read_to_string(data_dir.join("sim-admin-url")).unwrap();
    let pid: u32 = data_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("wasp-demo-")
        .parse()
        .unwrap();
    (data_dir, admin, pid)
}

#[test]
fn m_on_a_demo_session_sends_a_message_that_the_console_then_shows_delivered() {
    let pane = format!("wasp-msg-{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let demo = format!(
        "TMPDIR={} {} demo --sessions 2 --no-faults --sim-admin",
        tmp.path().display(),
        env!("CARGO_BIN_EXE_wasp")
    );
    new_tmux(&pane, &demo);
    let (_, admin, pid) = demo_started(tmp.path());
    let _cleanup = Cleanup {
        pid,
        panes: vec![pane.clone()],
    };
    wait_stats(
        &admin,
        "2 sessions logged in",
        Duration::from_secs(60),
        |s| s["logged_in"] == 2,
    );
    wait_screen(&pane, "the fleet online", Duration::from_secs(10), |s| {
        s.contains("online 2")
    });

    // `m` on the selected demo session; one of the demo's simulated friends as the number.
    tmux(&["send-keys", "-t", &pane, "m"]);
    wait_screen(&pane, "the message dialog", Duration::from_secs(10), |s| {
        s.contains("Message") && s.contains("From demo-")
    });
    tmux(&["send-keys", "-t", &pane, "-l", "15550100001"]);
    tmux(&["send-keys", "-t", &pane, "Tab"]);
    tmux(&["send-keys", "-t", &pane, "-l", "hello 4711"]);
    tmux(&["send-keys", "-t", &pane, "Enter"]);
    // The detail pane shows the message going out, then delivered by the friend's phone.
    let screen = wait_screen(
        &pane,
        "the message delivered",
        Duration::from_secs(30),
        |s| {
            s.lines().any(|l| {
                l.contains("→ 15550100001")
                    && l.contains("hello 4711")
                    && (l.contains("delivered") || l.contains("read"))
            })
        },
    );
    assert!(
        !screen.contains("From demo-"),
        "the dialog closed:\n{screen}"
    );
    tmux(&["send-keys", "-t", &pane, "q"]);
}

#[test]
fn a_demo_whose_pane_is_killed_keeps_its_sessions_and_wasp_attach_drives_it() {
    let pane = format!("wasp-hup-{}", std::process::id());
    let viewer = format!("wasp-attach-{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().display().to_string();
    let demo = format!(
        "TMPDIR={tmpdir} {} demo --sessions 4 --no-faults --sim-admin",
        env!("CARGO_BIN_EXE_wasp")
    );
    new_tmux(&pane, &demo);
    let (data_dir, admin, pid) = demo_started(tmp.path());
    let _cleanup = Cleanup {
        pid,
        panes: vec![pane.clone(), viewer.clone()],
    };
    wait_stats(
        &admin,
        "4 sessions logged in",
        Duration::from_secs(60),
        |s| s["logged_in"] == 4,
    );
    wait_screen(&pane, "the console", Duration::from_secs(10), |s| {
        s.contains("online 4")
    });

    // The SSH link drops: the pane and its terminal go away (SIGHUP).
    tmux(&["kill-pane", "-t", &pane]);
    std::thread::sleep(Duration::from_secs(1));
    let cpu_before = cpu_ticks(pid);
    // Ten seconds later every session is still logged in: the pool outlived its terminal.
    std::thread::sleep(Duration::from_secs(10));
    let stats = sim_stats(&admin);
    assert_eq!(stats["logged_in"], 4, "after the hang-up: {stats}");
    // Nothing spins on the dead terminal: far less than a core's 10 s (1,000 ticks).
    let spent = cpu_ticks(pid) - cpu_before;
    assert!(
        spent < 300,
        "the detached demo used {spent} CPU ticks in 10 s"
    );

    // `wasp attach` with no URL finds the detached demo's socket and shows the fleet.
    let attach = format!("TMPDIR={tmpdir} {} attach", env!("CARGO_BIN_EXE_wasp"));
    new_tmux(&viewer, &format!("{attach}; sleep 30"));
    let screen = wait_screen(&viewer, "the fleet online", Duration::from_secs(20), |s| {
        s.contains("online 4")
    });
    assert!(!screen.contains("read-only"), "{screen}");

    // A reconnect key press reaches the pool: one login more in the simulator.
    let logins = sim_stats(&admin)["logins"].as_u64().unwrap();
    tmux(&["send-keys", "-t", &viewer, "r"]);
    wait_stats(
        &admin,
        "the reconnect's login",
        Duration::from_secs(20),
        |s| s["logins"].as_u64().is_some_and(|n| n > logins),
    );
    // The pool's log lines reach the attached console's logs pane.
    wait_screen(
        &viewer,
        "the pool's log line",
        Duration::from_secs(10),
        |s| s.contains("operator command over http"),
    );

    // q leaves the attached console; the pool keeps running until it is told to stop.
    tmux(&["send-keys", "-t", &viewer, "q"]);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let sock = data_dir.join("wasp.sock");
    let deadline = Instant::now() + Duration::from_secs(15);
    while data_dir.exists() && sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the detached demo did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &viewer])
        .output();
}

/// The code in a screen: a line whose letters, spaces taken out, hold `XXXX-XXXX` in the
/// pairing alphabet.
fn code_on(screen: &str) -> Option<String> {
    const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";
    screen.lines().find_map(|line| {
        let packed: Vec<char> = line.chars().filter(|c| *c != ' ').collect();
        packed.windows(9).find_map(|w| {
            let ok = w[4] == '-'
                && w.iter()
                    .enumerate()
                    .all(|(i, c)| i == 4 || ALPHABET.contains(*c));
            ok.then(|| w.iter().collect())
        })
    })
}

#[test]
fn p_in_the_console_shows_a_code_the_phone_types_and_the_session_comes_online() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, line) = common::spawn_sim([
        std::ffi::OsString::from("--state"),
        dir.path().join("sim.json").into_os_string(),
    ]);
    struct Sim(std::process::Child);
    impl Drop for Sim {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sim = Sim(sim);
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let admin = ready["admin_url"].as_str().unwrap().to_string();
    let config = dir.path().join("sessions.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nurl = \"{}\"\ntrust_root = \"{}\"\n\n[storage]\ndata_dir = \"{}\"\n\n\
             [[session]]\nid = \"phone-1\"\nautostart = true\n",
            ready["ws_url"].as_str().unwrap(),
            ready["trust_root"].as_str().unwrap(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let pane = format!("wasp-code-{}", std::process::id());
    let _cleanup = Cleanup {
        pid: 0,
        panes: vec![pane.clone()],
    };
    new_tmux(
        &pane,
        &format!(
            "{} --config {}; sleep 30",
            env!("CARGO_BIN_EXE_wasp"),
            config.display()
        ),
    );
    wait_screen(&pane, "the session pairing", Duration::from_secs(30), |s| {
        s.contains("ref 1/6")
    });

    tmux(&["send-keys", "-t", &pane, "P"]);
    wait_screen(&pane, "the phone dialog", Duration::from_secs(10), |s| {
        s.contains("Phone (with country code)")
    });
    tmux(&["send-keys", "-t", &pane, "-l", "+15559876543"]);
    tmux(&["send-keys", "-t", &pane, "Enter"]);
    let screen = wait_screen(&pane, "the pairing code", Duration::from_secs(30), |s| {
        s.contains("Pairing code for phone-1") && code_on(s).is_some()
    });
    assert!(screen.contains("valid for"), "{screen}");
    let code = code_on(&screen).unwrap();

    let body = format!(r#"{{"phone": "15559876543", "code": "{code}"}}"#);
    let answer = admin_http(&admin, "POST /admin/enter-code", &body);
    let device = answer["device"].as_str().unwrap_or_default();
    assert!(device.starts_with("15559876543:"), "{answer}");
    tmux(&["send-keys", "-t", &pane, "Escape"]);
    wait_screen(&pane, "the session online", Duration::from_secs(30), |s| {
        s.contains("online 1")
    });
    tmux(&["send-keys", "-t", &pane, "q"]);
}

/// `dir` and everything under it: (path, is a directory, permission bits).
fn modes(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, bool, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir).unwrap();
    out.push((dir.to_path_buf(), true, meta.permissions().mode() & 0o777));
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        // A temporary file renamed away while we look is no longer there to check.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            modes(&path, out);
        } else {
            out.push((path, false, meta.permissions().mode() & 0o777));
        }
    }
}

#[test]
fn under_a_permissive_umask_the_data_dir_and_the_console_log_are_private() {
    let pane = format!("wasp-umask-{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let demo = format!(
        "umask 000; TMPDIR={} {} demo --sessions 1 --no-faults --sim-admin",
        tmp.path().display(),
        env!("CARGO_BIN_EXE_wasp")
    );
    new_tmux(&pane, &demo);
    let (data_dir, admin, pid) = demo_started(tmp.path());
    let _cleanup = Cleanup {
        pid,
        panes: vec![pane.clone()],
    };
    // Logged in: credentials, keys and the console's log file all exist by then.
    wait_stats(
        &admin,
        "the session logged in",
        Duration::from_secs(60),
        |s| s["logged_in"] == 1,
    );
    let logs = data_dir.join("logs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&logs)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))))
        .unwrap_or(false)
    {
        assert!(
            Instant::now() < deadline,
            "no console log in {}",
            logs.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut found = Vec::new();
    modes(&data_dir, &mut found);
    assert!(found.len() > 3, "{found:?}");
    for (path, is_dir, mode) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:o}", path.display());
    }
    tmux(&["send-keys", "-t", &pane, "q"]);
}
