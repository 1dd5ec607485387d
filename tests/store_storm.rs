//! A storm of credential saves beside a live keepalive: 2,000 sessions save their credentials
//! at once while another task answers pings over a real loopback socket; prints the answer
//! latency (p50/p99/max) with the saves on the async workers (how the driver used to call the
//! store) and on the blocking pool (how it calls it now). A measurement, not a timed test:
//! run it with `cargo test --release --test store_storm -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wasp::net::vault::{Vault, VaultHandle};
use wasp::store::{CredentialStore, FileStore};
use wasp::wa::creds::Credentials;

const SESSIONS: usize = 2_000;

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `Vault::save` called on the async task itself.
    OnWorkers,
    /// `VaultHandle::run`: the save runs on the blocking pool.
    BlockingPool,
}

/// Answers one byte with one byte, forever.
async fn echo(listener: TcpListener) {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut byte = [0u8; 1];
    while socket.read_exact(&mut byte).await.is_ok() {
        if socket.write_all(&byte).await.is_err() {
            break;
        }
    }
}

/// Pings every 5 ms until `stop`, returning each answer's latency.
async fn keepalive(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut rtts = Vec::new();
    let mut byte = [7u8; 1];
    while !stop.load(Ordering::Acquire) {
        let sent = Instant::now();
        socket.write_all(&byte).await.unwrap();
        socket.read_exact(&mut byte).await.unwrap();
        rtts.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rtts
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn storm(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CredentialStore> = Arc::new(FileStore::new(dir.path()));
    let mut sessions = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let vault = Vault::open(store.clone(), &format!("s{i:04}"), 1).unwrap();
        sessions.push((vault, Credentials::generate()));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo(listener));
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = tokio::spawn(keepalive(addr, stop.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let mut saves = Vec::with_capacity(SESSIONS);
    for (mut vault, creds) in sessions {
        saves.push(tokio::spawn(async move {
            match mode {
                Mode::OnWorkers => vault.save(&creds).is_ok(),
                Mode::BlockingPool => {
                    let handle = VaultHandle::new(vault);
                    handle.run(move |v| v.save(&creds).is_ok()).await == Some(true)
                }
            }
        }));
    }
    let mut saved = 0;
    for save in saves {
        saved += usize::from(save.await.unwrap());
    }
    let storm_time = started.elapsed();
    stop.store(true, Ordering::Release);
    let mut rtts = pinger.await.unwrap();
    rtts.sort();
    println!(
        "{mode:?}: {saved}/{SESSIONS} saved in {storm_time:?}; keepalive answers {} \
         p50 {:?} p99 {:?} max {:?}",
        rtts.len(),
        percentile(&rtts, 0.50),
        percentile(&rtts, 0.99),
        rtts.last().copied().unwrap_or_default(),
    );
    assert_eq!(saved, SESSIONS, "every save must succeed");
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture, figures go to docs/benchmarks.md"]
fn keepalive_latency_during_a_storm_of_2000_credential_saves() {
    for mode in [Mode::OnWorkers, Mode::BlockingPool] {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(storm(mode));
    }
}
