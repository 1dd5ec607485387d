//! The pool's own benchmarks in small (issue 15): `idle`, `connect`, `storm` and `restore`
//! at 20 sessions, each with `wasp sim` and the pairing `wasp bench prepare` as child
//! processes. Asserted is what must hold at any size, never a time: every session online,
//! no device ever logged in twice at once, the storm never above R dials in a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use wasp::bench::{connect, idle, restore, storm};

const N: u64 = 20;

fn exe() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_BIN_EXE_wasp")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_holds_every_session_online_and_measures_this_process() {
    for tls in [false, true] {
        let args = idle::IdleArgs {
            sessions: N,
            tls,
            hold: 1,
            json: true,
        };
        let r = idle::run(&args, exe()).await.unwrap();
        assert_eq!(r["online_after_hold"], N, "{r}");
        assert_eq!(r["tls"], tls, "{r}");
        let before = r["client_rss_kib_before"].as_u64().unwrap();
        assert!(before > 0, "{r}");
        assert!(r["client_rss_kib_online"].as_u64().unwrap() > 0, "{r}");
        assert!(r["client_cpu_percent_of_one_core"].as_f64().unwrap() >= 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_brings_every_session_online_once() {
    let args = connect::ConnectArgs {
        sessions: N,
        tls: false,
        handshakes_in_flight: Some(4),
        json: true,
    };
    let r = connect::run(&args, exe()).await.unwrap();
    assert!(r["handshakes"].as_u64().unwrap() >= N, "{r}");
    // Fewer handshake slots than sessions: the rest waited their turn and still came online.
    assert_eq!(r["handshakes_in_flight"], 4, "{r}");
    assert_eq!(r["peak_logins_per_device"], 1, "{r}");
    let (p50, p99) = (
        r["connect_p50_ms"].as_f64().unwrap(),
        r["connect_p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p99 >= p50, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_reconnects_everyone_never_above_the_rate() {
    let rate = 8;
    let args = storm::StormArgs {
        sessions: N,
        rate,
        tls: false,
        json: true,
    };
    let r = storm::run(&args, exe()).await.unwrap();
    assert_eq!(r["dropped"], N, "{r}");
    assert!(r["redials"].as_u64().unwrap() >= N, "{r}");
    // N > R: the limit had to hold the dials back, and did, to the grant.
    assert_eq!(r["most_dials_in_any_second"], u64::from(rate), "{r}");
    assert_eq!(r["peak_logins_per_device"], 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_loads_and_queues_every_session() {
    let args = restore::RestoreArgs {
        sessions: N,
        json: true,
    };
    let r = restore::run(&args, exe()).await.unwrap();
    assert_eq!(r["sessions"], N, "{r}");
    let (loaded, returned) = (
        r["loaded_and_queued_s"].as_f64().unwrap(),
        r["start_returned_s"].as_f64().unwrap(),
    );
    assert!(loaded >= returned, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_paired_in_waves_has_every_session_paired_once() {
    use wasp::bench::fleet::{Fleet, FleetOptions};
    use wasp::session::status::StateName;
    let options = FleetOptions {
        sessions: 5,
        tls: false,
        exe: exe(),
    };
    // Waves of 2: three `wasp bench prepare` runs (2, 2 and 1 sessions), one after another.
    let fleet = Fleet::build_in_waves(&options, 2).await.unwrap();
    let stats = fleet.stats().await.unwrap();
    assert_eq!(stats["pairings"], 5, "{stats}");
    let pool = fleet.start((100, 100)).await.unwrap();
    let board = pool.running.handle.board.clone();
    let mut changes = board.watch();
    // A liveness bound, not a timing: a session left unpaired would never come online.
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while board.count(|s| s.state() == StateName::Online && s.account.paired) < 5 {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("every session of the fleet online and paired");
    let mut ids: Vec<String> = board.snapshot().into_iter().map(|s| s.id).collect();
    ids.sort();
    assert_eq!(ids, ["b00000", "b00001", "b00002", "b00003", "b00004"]);
    wasp::runner::stop(pool).await;
}
