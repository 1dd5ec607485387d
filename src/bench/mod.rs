//! `wasp bench`: repeatable measurements, JSON out: `sim-idle` against the simulator, `frame`
//! (building and drawing one console frame for a large fleet), `attach` (the event path of
//! an attached console against the in-process one, `attach::bench`), `messages`
//! (`messages.rs`: texts both ways through a pool and the simulator, with faults) and `soak`
//! (`soak.rs`: a pool under a seeded random fault plan, judged from the simulator's side).
//!
//! `wasp bench sim-idle [--connections N] [--hold-secs S]` starts `wasp sim` as its own
//! process, pairs N devices through its admin API's in-process equivalent (the virtual phone),
//! logs every one of them in over real sockets, holds them idle for S seconds, and reports the
//! simulator process's RSS and CPU time from /proc.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub mod messages;
pub mod soak;
mod traffic;

use crate::sim::load;
use crate::wa::creds::Credentials;
use crate::wa::noise::TrustRoot;

/// Runs `wasp bench ARGS`; returns the exit code.
pub async fn run(args: &[String]) -> u8 {
    let mut connections = 1000usize;
    let mut hold = 10u64;
    let mut sessions = 5000usize;
    let mut width = 200u64;
    let mut height = 60u64;
    let mut iterations = 200usize;
    let mut rounds = 100usize;
    let mut it = args.iter();
    let what = it.next().map(String::as_str).unwrap_or("");
    match what {
        "soak" => return soak::run(&args[1..]).await,
        "messages" => return messages::main(&args[1..]).await,
        _ => {}
    }
    while let Some(arg) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--connections", Some(v)) => connections = v as usize,
            ("--hold-secs", Some(v)) => hold = v,
            ("--sessions", Some(v)) => sessions = v as usize,
            ("--width", Some(v)) => width = v,
            ("--height", Some(v)) => height = v,
            ("--iterations", Some(v)) => iterations = v as usize,
            ("--rounds", Some(v)) => rounds = v as usize,
            _ => {
                eprintln!("wasp bench: unknown or incomplete option {arg}");
                return 2;
            }
        }
    }
    match what {
        "sim-idle" => match sim_idle(connections, hold).await {
            Ok(report) => {
                println!("{report}");
                0
            }
            Err(e) => {
                eprintln!("wasp bench sim-idle: {e}");
                1
            }
        },
        "frame" => {
            let (w, h) = (width.min(1000) as u16, height.min(1000) as u16);
            let result = crate::ui::bench_frame(sessions, w, h, iterations.max(1));
            println!("{}", result.to_json());
            0
        }
        "attach" => match crate::attach::bench::event_path(sessions.min(5000), rounds.max(1)).await
        {
            Ok(report) => {
                println!("{report}");
                0
            }
            Err(e) => {
                eprintln!("wasp bench attach: {e}");
                1
            }
        },
        _ => {
            eprintln!(
                "wasp bench: name a measurement: sim-idle [--connections N] [--hold-secs S], frame [--sessions N] [--width W] [--height H] [--iterations I], attach [--sessions N] [--rounds R], messages [--sessions N] [--messages M] [--concurrency C] [--faults] [--json], or soak --sessions N --duration D --fault-rate F --seed S [--json]"
            );
            2
        }
    }
}

/// RSS in KiB and CPU time (user + system) in clock ticks of a process.
fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, utime + stime))
}

/// `wasp sim` running as its own process.
struct Sim {
    child: std::process::Child,
    target: load::Target,
    admin: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `EXE sim` (this executable when `exe` is `None`) and reads its ready line.
fn start_sim(exe: Option<&std::path::Path>) -> Result<Sim, String> {
    let exe = match exe {
        Some(exe) => exe.to_path_buf(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let mut child = Command::new(exe)
        .arg("sim")
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
    })
}

/// Pairs one device, the phone scanning through the admin API.
async fn pair_one(sim: &Sim) -> Result<Credentials, String> {
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
async fn admin_call(
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

async fn sim_idle(n: usize, hold: u64) -> Result<serde_json::Value, String> {
    let sim = start_sim(None)?;
    measure(&sim, n, hold).await
}

async fn measure(sim: &Sim, n: usize, hold: u64) -> Result<serde_json::Value, String> {
    let pid = sim.child.id();
    let (rss_start, _) = proc_usage(pid).unwrap_or_default();
    let started = Instant::now();
    // Pair every device, 64 at a time.
    let mut creds = Vec::with_capacity(n);
    let mut pending = FuturesUnordered::new();
    let mut launched = 0;
    while creds.len() < n {
        while launched < n && pending.len() < 64 {
            pending.push(pair_one(sim));
            launched += 1;
        }
        match pending.next().await {
            Some(result) => creds.push(result?),
            None => break,
        }
    }
    let paired_in = started.elapsed();
    // Log every device in and keep the connections open.
    let mut conns = Vec::with_capacity(n);
    let login_start = Instant::now();
    let mut logins = FuturesUnordered::new();
    let mut iter = creds.iter();
    loop {
        while logins.len() < 256 {
            let Some(c) = iter.next() else { break };
            logins.push(async move {
                let socket = load::login(&sim.target, c)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(socket.spawn(CancellationToken::new(), 16))
            });
        }
        match logins.next().await {
            Some(r) => conns.push(r?),
            None => break,
        }
    }
    let logged_in = login_start.elapsed();
    let (rss_loaded, cpu_before) = proc_usage(pid).ok_or("cannot read /proc of the simulator")?;
    let idle_start = Instant::now();
    // Idle, with one ping per connection spread over the window (a keepalive's worth).
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let mut pings = 0usize;
    for (conn, _) in &conns {
        if conn.ping(Duration::from_secs(30)).await.is_ok() {
            pings += 1;
        }
    }
    let idle = idle_start.elapsed();
    let (rss_end, cpu_after) = proc_usage(pid).ok_or("cannot read /proc of the simulator")?;
    let ticks = 100.0; // USER_HZ on Linux
    let cpu_s = (cpu_after - cpu_before) as f64 / ticks;
    drop(conns);
    Ok(json!({
        "bench": "sim-idle",
        "connections": n,
        "pings_answered": pings,
        "pair_seconds": paired_in.as_secs_f64(),
        "login_seconds": logged_in.as_secs_f64(),
        "sim_rss_kib_start": rss_start,
        "sim_rss_kib_loaded": rss_loaded,
        "sim_rss_kib_end": rss_end,
        "sim_rss_kib_per_connection": (rss_end.saturating_sub(rss_start)) as f64 / n.max(1) as f64,
        "idle_seconds": idle.as_secs_f64(),
        "sim_cpu_seconds_idle": cpu_s,
        "sim_cpu_percent_idle": cpu_s / idle.as_secs_f64() * 100.0,
    }))
}
