//! A test binary re-running one of its own ignored tests as a child process (the SIGKILL
//! tests): its stdout lines arrive on a channel, and `kill` ends it with SIGKILL and hands back
//! every line it had written.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct TestChild {
    child: Child,
    lines: Receiver<String>,
    reader: JoinHandle<()>,
}

impl TestChild {
    /// Runs this binary's ignored test `test` alone, with `envs` set.
    pub fn spawn(test: &str, envs: &[(&str, &OsStr)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            // Not `--test-threads=1`: that harness prints `test NAME ... ` before the child's first
            // line, on the same line.
            .args(["--ignored", "--exact", test, "--nocapture"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        TestChild {
            child,
            lines,
            reader,
        }
    }

    /// The child's next line; panics naming `what` when none comes within two minutes.
    pub fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{what}: the child made no progress"))
    }

    /// SIGKILL; then the lines it wrote that were not read yet.
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.reader.join().unwrap();
        self.lines.try_iter().collect()
    }
}
