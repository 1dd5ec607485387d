//! `wasp headless` as a child process: its JSON log lines on a channel, signals, and the
//! address of its HTTP endpoint. Dropping it SIGKILLs the process (a failed test leaves none).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

pub struct Headless {
    pub child: std::process::Child,
    lines: Receiver<String>,
    wait: Duration,
}

impl Headless {
    /// Starts `wasp headless --http 127.0.0.1:0 --config CONFIG`; `wait` bounds every
    /// [`Headless::line_with`].
    pub fn spawn(config: &Path, wait: Duration) -> Headless {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasp"))
            .args(["headless", "--http", "127.0.0.1:0", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Headless { child, lines, wait }
    }

    /// The next log line containing `what`; panics when none comes in time.
    pub fn line_with(&self, what: &str) -> String {
        let deadline = Instant::now() + self.wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {what}"));
            if line.contains(what) {
                return line;
            }
        }
    }

    /// Waits for the HTTP endpoint's ready line; answers `http://127.0.0.1:PORT`.
    pub fn http_base(&self) -> String {
        let ready = self.line_with("http endpoint ready");
        let port: String = ready
            .split("127.0.0.1:")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {ready}"))
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        format!("http://127.0.0.1:{port}")
    }

    /// Sends a signal by name (`-HUP`, `-TERM`) through `kill`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([name, &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
