//! `wasp bench messages` in small (issue 13): two sessions of an in-process pool each send 10
//! texts and receive 10 back through `wasp sim` running as its own process, while the
//! simulator drops, restarts (515) and stalls them; every text arrives exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use wasp::bench::messages::{BENCH_BURST, BENCH_PER_MINUTE, Options, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_with_faults_lose_nothing_and_double_nothing() {
    let options = Options {
        sessions: 2,
        messages: 10,
        concurrency: 5,
        faults: true,
        sim_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_wasp"))),
    };
    let report = run(&options).await.unwrap();
    assert_eq!((report.sent, report.sent_back), (20, 20), "{report:?}");
    assert_eq!((report.lost, report.duplicated), (0, 0), "{report:?}");
    assert_eq!(
        (report.lost_back, report.duplicated_back),
        (0, 0),
        "{report:?}"
    );
    assert_eq!((report.delivered, report.received), (20, 20), "{report:?}");
    assert_eq!(report.delivered_status, 20, "{report:?}");
    assert_eq!(report.delivery_rate_percent, 100.0);
    assert!(report.send_to_delivered_p99_ms >= report.send_to_delivered_p50_ms);
    assert!(report.send_to_delivered_p50_ms > 0.0, "{report:?}");
    assert_eq!(
        (report.per_minute, report.burst),
        (BENCH_PER_MINUTE, BENCH_BURST)
    );
    assert!(
        report.faults_applied.values().sum::<u64>() >= 1,
        "a fault reached a connection: {report:?}"
    );
    assert!(report.ok());
}
