//! Issue 16: the soak's short variant. 50 sessions of wasp's real pool for 60 s against the
//! simulator's seeded random plan of recoverable faults (drop, end, stall, 515, 503), about
//! one per session every two minutes, with a keepalive short enough that stalls are caught
//! within the run. Asserted: no conflict caused by wasp, one login per device at a time, no
//! credentials lost, every kind applied, a stall dropped within `keepalive_deadline` + 1 s of
//! its unanswered ping, and uptime at least 90 % (the 98 % of the issue is
//! measured by the 300-session run in docs/benchmarks.md; a loaded test machine can slow
//! reconnects past what 98 % allows in 60 s, so it is not asserted here).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use wasp::bench::soak::{SoakOptions, soak};
use wasp::session::policy::Policy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sessions_for_a_minute_under_random_faults() {
    let s = Duration::from_secs;
    let policy = Policy {
        keepalive_interval_min: s(2),
        keepalive_interval_max: s(3),
        keepalive_deadline: s(2),
        dead_after: s(10),
        backoff_base: Duration::from_millis(200),
        backoff_cap: s(2),
        ..Policy::default()
    };
    let report = soak(&SoakOptions {
        sessions: 50,
        duration: s(60),
        fault_rate: 30.0,
        seed: 7,
        policy,
    })
    .await
    .unwrap();
    eprintln!("{}", report.text());
    assert!(report.faults_applied >= 10, "{report:?}");
    for kind in ["drop", "end", "stall", "restart", "stream-error"] {
        assert!(
            report.faults_by_kind.get(kind) >= Some(&1),
            "no {kind}: {report:?}"
        );
    }
    assert!(
        report.disconnections >= report.faults_applied / 2,
        "{report:?}"
    );
    assert_eq!(report.conflicts, 0, "{report:?}");
    assert_eq!(report.peak_logins_per_device, 1, "{report:?}");
    assert_eq!(report.credentials_lost, 0, "{report:?}");
    assert!(report.uptime_pct >= 90.0, "{report:?}");
    assert!(report.uptime_pct <= 100.0, "{report:?}");
    assert!(report.tasks_end <= report.tasks_start, "{report:?}");
    // A stall is dropped within keepalive_deadline (2 s) of the ping it left unanswered,
    // plus a second for the close to reach the simulator and the 100 ms sampling.
    assert!(report.stalls_seen >= 1, "{report:?}");
    assert!(report.stall_detect_after_ping_p99_ms <= 3000, "{report:?}");
}
