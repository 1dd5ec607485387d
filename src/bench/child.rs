//! The bench's side of a `wasp sim` child process: start it, read its ready line, call its
//! admin API; and the /proc figures (RSS, CPU time) of a process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::sim::load;
use crate::wa::creds::Credentials;
use crate::wa::noise::TrustRoot;

/// RSS in KiB and CPU time (user + system) in clock ticks of a process.
pub(super) fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let rss = proc_status_kib(pid, "VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, utime + stime))
}

/// One `kB` field of `/proc/PID/status` (`VmRSS`, `RssAnon`, `RssFile`...).
pub(super) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `wasp sim` running as its own process.
pub(super) struct Sim {
    pub(super) child: std::process::Child,
    pub(super) target: load::Target,
    pub(super) admin: String,
    /// With `--tls`: the CA's PEM file the simulator wrote.
    pub(super) ca_file: Option<std::path::PathBuf>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This executable, or `exe` when given (tests name the built binary).
pub(super) fn executable(exe: Option<&std::path::Path>) -> Result<std::path::PathBuf, String> {
    match exe {
        Some(exe) => Ok(exe.to_path_buf()),
        None => std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}")),
    }
}

/// Starts `EXE sim` (this executable when `exe` is `None`) and reads its ready line.
pub(super) fn start_sim(exe: Option<&std::path::Path>) -> Result<Sim, String> {
    start_sim_with(exe, None)
}

/// `start_sim`, serving `wss://` with its CA written to `tls_ca` when one is given.
pub(super) fn start_sim_with(
    exe: Option<&std::path::Path>,
    tls_ca: Option<&std::path::Path>,
) -> Result<Sim, String> {
    let mut command = Command::new(executable(exe)?);
    command.arg("sim");
    if let Some(ca) = tls_ca {
        command.arg("--tls").arg("--ca-file").arg(ca);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start wasp sim: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let ready: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("bad ready line: {e}"))?;
    use base64::Engine;
    let root: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(ready["trust_root"].as_str().unwrap_or_default())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("bad trust root")?;
    Ok(Sim {
        child,
        target: load::Target {
            ws_url: ready["ws_url"].as_str().unwrap_or_default().to_string(),
            trust: TrustRoot(root),
        },
        admin: ready["admin_url"].as_str().unwrap_or_default().to_string(),
        ca_file: ready["ca_file"].as_str().map(std::path::PathBuf::from),
    })
}

/// Pairs one device, the phone scanning through the admin API.
pub(super) async fn pair_one(sim: &Sim) -> Result<Credentials, String> {
    let admin = sim.admin.clone();
    load::pair_new(&sim.target, |qr| async move {
        post_json(&admin, "/admin/scan", &json!({ "qr": qr }))
            .await
            .map(|()| String::new())
    })
    .await
    .map_err(|e| e.to_string())
}

async fn post_json(base: &str, path: &str, body: &serde_json::Value) -> Result<(), String> {
    admin_call(base, "POST", path, Some(body)).await.map(|_| ())
}

/// One request to the simulator's admin API: the answer's JSON when it is a 200, else the
/// answer's last line as the error.
pub(super) async fn admin_call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut tcp = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(answer.lines().last().unwrap_or_default().to_string());
    }
    let json = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(json).map_err(|e| format!("{method} {path}: the answer is not JSON: {e}"))
}
