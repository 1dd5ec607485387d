//! Table tests of the pure session machine with a fake clock: every row of SPEC.md's
//! disconnect table, and every operator command in every state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rstest::rstest;
use wasp::session::policy::{OnLogout, Policy};
use wasp::session::status::QrText;
use wasp::session::status::StateName;
use wasp::session::{Command, Effect, Event, Session, State, TimerKind, TimerQueue};
use wasp::wa::stanza::Cause;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

struct Rig {
    s: Session,
    t0: Instant,
    now: Instant,
    /// Scheduled timers, in the queue the driver uses.
    timers: TimerQueue,
    live: Option<u64>,
}

impl Rig {
    fn new(policy: Policy, paired: bool) -> Rig {
        let t0 = Instant::now();
        Rig {
            s: Session::new("s1", "S1", policy, paired, 7, t0),
            t0,
            now: t0,
            timers: TimerQueue::new(),
            live: None,
        }
    }

    fn feed(&mut self, event: Event) -> Vec<Effect> {
        let fx = self.s.handle(self.now, event);
        self.timers.schedule_all(&fx);
        for e in &fx {
            if let Effect::Dial { conn } = e {
                assert!(
                    self.live.is_none(),
                    "second dial while {:?} is live",
                    self.live
                );
                self.live = Some(*conn);
            }
        }
        fx
    }

    fn conn(&self) -> u64 {
        self.live.expect("a live connection")
    }

    fn closed(&mut self, cause: Cause) -> Vec<Effect> {
        let conn = self.conn();
        self.live = None;
        self.feed(Event::Closed { conn, cause })
    }

    /// Advances the clock to the next armed timer of `kind` and fires it.
    fn fire(&mut self, kind: TimerKind) -> Vec<Effect> {
        let (at, timer) = self.timers.newest(kind).expect("timer armed");
        self.now = self.now.max(at);
        self.feed(Event::TimerFired { timer })
    }

    fn online(policy: Policy) -> Rig {
        let mut r = Rig::new(policy, true);
        r.feed(Event::Start);
        let conn = r.conn();
        r.feed(Event::DialStarted { conn });
        r.feed(Event::Dialled { conn });
        r.feed(Event::HandshakeDone { conn });
        r.feed(Event::Online { conn });
        assert_eq!(r.state(), StateName::Online);
        r
    }

    fn pairing() -> Rig {
        let mut r = Rig::new(Policy::default(), false);
        r.feed(Event::Start);
        let conn = r.conn();
        r.feed(Event::DialStarted { conn });
        r.feed(Event::Dialled { conn });
        r.feed(Event::HandshakeDone { conn });
        let codes = (1..=6).map(|i| QrText::new(format!("ref{i}"))).collect();
        r.feed(Event::QrRefs { conn, codes });
        assert_eq!(r.state(), StateName::Pairing);
        r
    }

    fn state(&self) -> StateName {
        self.s.status(self.now).state()
    }
}

fn dials(fx: &[Effect]) -> usize {
    fx.iter()
        .filter(|e| matches!(e, Effect::Dial { .. }))
        .count()
}

fn retry_at(fx: &[Effect]) -> Option<Instant> {
    fx.iter().find_map(|e| match e {
        Effect::ScheduleTimer { timer, at } if timer.kind == TimerKind::Retry => Some(*at),
        _ => None,
    })
}

#[rstest]
#[case::restart_required(Cause::RestartRequired, StateName::Connecting)]
#[case::closed_428(Cause::Closed, StateName::Backoff)]
#[case::timed_out_408(Cause::TimedOut("keepalive".into()), StateName::Backoff)]
#[case::server_500(Cause::Server(500), StateName::Backoff)]
#[case::server_503(Cause::Server(503), StateName::Backoff)]
#[case::conflict_440(Cause::Conflict, StateName::Conflict)]
#[case::logged_out_401(Cause::LoggedOut, StateName::LoggedOut)]
#[case::locked_403(Cause::Locked, StateName::Failed)]
#[case::banned_406(Cause::Banned, StateName::Failed)]
#[case::mismatch_411(Cause::Mismatch, StateName::Failed)]
#[case::temp_banned_402(Cause::TempBanned { expires_s: Some(120) }, StateName::Cooldown)]
#[case::outdated_405(Cause::ClientOutdated, StateName::Failed)]
#[case::user_agent_409(Cause::UserAgentRejected, StateName::Failed)]
#[case::unknown_code_516(Cause::Server(516), StateName::Backoff)]
#[case::stream_error_ack(Cause::StreamError { child: "ack".into(), id: Some("M1".into()) }, StateName::Backoff)]
#[case::network_408(Cause::Network("connection refused".into()), StateName::Backoff)]
fn disconnect_table_row(#[case] cause: Cause, #[case] expected: StateName) {
    let mut r = Rig::online(Policy::default());
    let code = cause.code();
    let fx = r.closed(cause);
    assert_eq!(r.state(), expected, "code {code}");
    let retry = retry_at(&fx);
    match code {
        515 => {
            // Reconnect at once, attempt counter untouched, no backoff timer.
            assert_eq!(dials(&fx), 1);
            assert_eq!(retry, None);
            assert_eq!(r.s.status(r.now).attempt, 0);
        }
        428 | 408 | 500 | 503 | 516 => {
            assert_eq!(dials(&fx), 0);
            let wait = retry.unwrap() - r.now;
            assert!(
                wait >= Duration::from_millis(800) && wait <= Duration::from_millis(1200),
                "{wait:?}"
            );
            assert_eq!(r.s.status(r.now).attempt, 1);
            assert!(fx.iter().any(|e| matches!(e, Effect::Reconnect { .. })));
        }
        440 => {
            assert_eq!(
                (dials(&fx), retry),
                (0, None),
                "conflict must not reconnect"
            );
            assert_eq!(r.s.status(r.now).conflicts_1h, 1);
        }
        401 => {
            assert!(fx.contains(&Effect::WipeCredentials { backup: true }));
            assert_eq!(retry, None);
            assert_eq!(r.s.status(r.now).cooldown_until(), Some(r.now + secs(300)));
        }
        402 => assert_eq!(retry, Some(r.now + secs(120))),
        403 | 406 | 411 | 405 | 409 => {
            assert_eq!((dials(&fx), retry), (0, None));
            assert!(
                !fx.iter()
                    .any(|e| matches!(e, Effect::WipeCredentials { .. })),
                "credentials kept"
            );
            if code == 405 {
                assert!(r.s.status(r.now).reason.contains("client version"));
            }
        }
        _ => unreachable!(),
    }
    // Every transition is in the timeline with its code.
    let timeline = r.s.status(r.now).timeline;
    assert!(
        timeline.iter().any(|e| e.code == Some(code)),
        "{timeline:?}"
    );
}

#[test]
fn a_payload_failure_is_failed_at_once_not_retried_like_an_outage() {
    let mut r = Rig::online(Policy::default());
    let fx = r.closed(Cause::Payload("login payload: bad phone".into()));
    assert_eq!(r.state(), StateName::Failed);
    assert_eq!((dials(&fx), retry_at(&fx)), (0, None));
    let status = r.s.status(r.now);
    assert_eq!(status.last_cause.as_deref(), Some("payload_error"));
    assert!(status.reason.contains("login payload"), "{}", status.reason);
}

#[test]
fn a_new_client_version_probes_a_session_refused_with_405_and_only_that() {
    let mut r = Rig::online(Policy::default());
    r.feed(Event::ClientVersion {
        version: "2.3000.5".into(),
    });
    r.closed(Cause::ClientOutdated);
    assert_eq!(r.state(), StateName::Failed);
    assert!(r.s.status(r.now).reason.contains("2.3000.5"));
    // The same version again changes nothing.
    let fx = r.feed(Event::ClientVersion {
        version: "2.3000.5".into(),
    });
    assert_eq!(dials(&fx), 0);
    let fx = r.feed(Event::ClientVersion {
        version: "2.3000.9".into(),
    });
    assert_eq!(dials(&fx), 1);
    assert_eq!(r.state(), StateName::Connecting);
    assert_eq!(r.s.status(r.now).client_version, "2.3000.9");

    // A session failed for another reason is left alone.
    let mut other = Rig::online(Policy::default());
    other.feed(Event::ClientVersion {
        version: "2.3000.5".into(),
    });
    other.closed(Cause::Banned);
    let fx = other.feed(Event::ClientVersion {
        version: "2.3000.9".into(),
    });
    assert_eq!((dials(&fx), other.state()), (0, StateName::Failed));
}

#[test]
fn backoff_grows_then_gives_up_after_max_attempts_with_a_probe() {
    let mut r = Rig::online(Policy::default());
    let mut waits = Vec::new();
    for attempt in 1..=20u32 {
        let fx = r.closed(Cause::Closed);
        assert_eq!(r.state(), StateName::Backoff);
        waits.push((retry_at(&fx).unwrap() - r.now).as_secs_f64());
        assert_eq!(r.s.status(r.now).attempt, attempt);
        let fx = r.fire(TimerKind::Retry);
        assert_eq!(dials(&fx), 1);
    }
    let expected = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0];
    for (w, e) in waits.iter().zip(expected) {
        assert!(*w >= e * 0.8 && *w <= e * 1.2, "{w} vs {e}");
    }
    let fx = r.closed(Cause::TimedOut("x".into()));
    assert_eq!(r.state(), StateName::Failed);
    assert_eq!(
        retry_at(&fx),
        Some(r.now + secs(300)),
        "slow probe every 5 min"
    );
    let fx = r.fire(TimerKind::Retry);
    assert_eq!(dials(&fx), 1, "the probe dials");
}

#[test]
fn server_errors_give_up_after_ten_attempts() {
    let mut r = Rig::online(Policy::default());
    for _ in 0..10 {
        r.closed(Cause::Server(503));
        assert_eq!(r.state(), StateName::Backoff);
        r.fire(TimerKind::Retry);
    }
    r.closed(Cause::Server(503));
    assert_eq!(r.state(), StateName::Failed);
}

#[test]
fn attempts_reset_after_a_stable_online_window() {
    let mut r = Rig::online(Policy::default());
    r.closed(Cause::Closed);
    r.fire(TimerKind::Retry);
    let conn = r.conn();
    r.feed(Event::Online { conn });
    assert_eq!(r.s.status(r.now).attempt, 1);
    r.fire(TimerKind::Stable);
    assert_eq!(r.s.status(r.now).attempt, 0);
}

#[test]
fn conflict_retries_wait_five_seconds_times_n_then_cool_down() {
    let policy = Policy {
        conflict_auto_retries: 5,
        ..Policy::default()
    };
    let mut r = Rig::online(policy);
    for n in 1..=2u32 {
        let fx = r.closed(Cause::Conflict);
        assert_eq!(r.state(), StateName::Backoff);
        assert_eq!(retry_at(&fx), Some(r.now + secs(5) * n));
        r.fire(TimerKind::Retry);
        let conn = r.conn();
        r.feed(Event::Online { conn });
    }
    let fx = r.closed(Cause::Conflict);
    assert_eq!(r.state(), StateName::Cooldown, "third conflict in an hour");
    assert_eq!(retry_at(&fx), Some(r.now + secs(60)));
}

#[test]
fn logout_with_keep_does_not_wipe() {
    let policy = Policy {
        on_logout: OnLogout::Keep,
        ..Policy::default()
    };
    let mut r = Rig::online(policy);
    let fx = r.closed(Cause::LoggedOut);
    assert_eq!(r.state(), StateName::LoggedOut);
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::WipeCredentials { .. }))
    );
}

#[test]
fn qr_refs_live_60s_then_20s_and_run_out_into_stopped() {
    let mut r = Rig::pairing();
    let status = r.s.status(r.now);
    let qr = status.qr().unwrap();
    assert_eq!((qr.index, qr.count), (1, 6));
    assert_eq!(qr.expires_at, r.now + secs(60));
    for i in 2..=6u32 {
        let fx = r.fire(TimerKind::QrExpiry);
        let shown = fx.iter().find_map(|e| match e {
            Effect::ShowQr {
                index, expires_at, ..
            } => Some((*index, *expires_at)),
            _ => None,
        });
        assert_eq!(shown, Some((i, r.now + secs(20))));
    }
    let fx = r.fire(TimerKind::QrExpiry);
    assert_eq!(r.state(), StateName::Stopped);
    assert_eq!(r.s.status(r.now).reason, "pairing timed out");
    assert!(fx.iter().any(|e| matches!(e, Effect::Close { .. })));
    let fx = r.closed(Cause::Closed);
    assert_eq!(dials(&fx), 0, "never an automatic QR loop");
    assert_eq!(r.state(), StateName::Stopped);
}

#[test]
fn pairing_then_515_then_online() {
    let mut r = Rig::pairing();
    let conn = r.conn();
    let fx = r.feed(Event::Paired {
        conn,
        phone: "15550001111".into(),
    });
    assert!(fx.contains(&Effect::SaveCredentials));
    let fx = r.closed(Cause::RestartRequired);
    assert_eq!(dials(&fx), 1);
    let conn = r.conn();
    r.feed(Event::Online { conn });
    assert_eq!(r.state(), StateName::Online);
    assert!(r.s.status(r.now).account.paired);
}

#[test]
fn liveness_pings_and_forces_408_after_dead_after_without_life() {
    let mut r = Rig::online(Policy::default());
    let fx = r.fire(TimerKind::Ping);
    assert!(fx.iter().any(|e| matches!(e, Effect::SendPing { .. })));
    let gap = r.now - r.t0;
    assert!(gap >= secs(20) && gap <= secs(30), "{gap:?}");
    let conn = r.conn();
    r.feed(Event::PingAnswered {
        conn,
        rtt: Duration::from_millis(40),
    });
    assert_eq!(
        r.s.status(r.now).liveness.last_rtt,
        Some(Duration::from_millis(40))
    );
    // Silence: the dead timer closes with 408 once dead_after passes with no life.
    let silent_from = r.now;
    let mut closing = Vec::new();
    for _ in 0..10 {
        let fx = r.fire(TimerKind::Dead);
        if fx.iter().any(|e| matches!(e, Effect::Close { .. })) {
            closing = fx;
            break;
        }
    }
    assert!(!closing.is_empty());
    assert!(r.now - silent_from <= secs(60));
    r.closed(Cause::Closed);
    assert_eq!(r.state(), StateName::Backoff);
    assert_eq!(r.s.status(r.now).last_code, Some(408));
}

#[test]
fn a_missed_ping_with_no_frame_is_a_stall_replaced_at_once_and_counted_down_from_the_last_sign_of_life()
 {
    let mut r = Rig::online(Policy::default());
    let conn = r.conn();
    // 100 s online and answering.
    r.now += secs(100);
    r.feed(Event::FrameReceived { conn });
    let before = r.s.status(r.now).uptime_now(r.now);
    // A ping goes out at once and misses its 10 s deadline with nothing else arriving.
    r.now += secs(10);
    let fx = r.feed(Event::PingMissed { conn });
    let stalled = r.s.status(r.now);
    assert!(stalled.liveness.stalled, "the stall shows at the miss");
    assert_eq!(stalled.timeline.last().unwrap().cause, "stalled");
    // The link is replaced at the miss, not after dead_after.
    let reason = fx
        .iter()
        .find_map(|e| match e {
            Effect::Close { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("the stalled link is closed at the miss");
    assert!(reason.contains("keepalive unanswered"), "{reason}");
    // The 10 s since the last frame already count as down, and keep counting.
    let pct = stalled.uptime_now(r.now);
    assert!(pct < before, "{pct} < {before}");
    let online = 100.0 / 110.0 * 100.0;
    assert!((pct - online).abs() < 0.01, "{pct} vs {online}");
    let later = stalled.uptime_now(r.now + secs(10));
    assert!(
        (later - 100.0 / 120.0 * 100.0).abs() < 0.01,
        "read later: {later}"
    );
    // The close arrives: a reconnect with the cause the session gave (408), not the socket's.
    r.closed(Cause::Closed);
    let s = r.s.status(r.now);
    assert_eq!(s.state(), StateName::Backoff);
    assert_eq!(s.last_code, Some(408));
    assert!(!s.liveness.stalled);
    let after = s.uptime_now(r.now + secs(5));
    assert!((after - 100.0 / 115.0 * 100.0).abs() < 0.01, "{after}");
}

#[test]
fn a_missed_ping_while_frames_arrive_is_no_stall() {
    let mut r = Rig::online(Policy::default());
    let conn = r.conn();
    r.now += secs(25);
    r.feed(Event::FrameReceived { conn });
    r.now += secs(5);
    r.feed(Event::PingMissed { conn });
    let s = r.s.status(r.now);
    assert!(!s.liveness.stalled);
    assert_eq!(s.liveness.misses, 1);
    assert!((s.uptime_now(r.now) - 100.0).abs() < 0.01);
}

#[test]
fn any_frame_counts_as_life() {
    let mut r = Rig::online(Policy::default());
    let conn = r.conn();
    r.now += secs(50);
    r.feed(Event::FrameReceived { conn });
    let fx = r.fire(TimerKind::Dead);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Close { .. })),
        "a frame 10 s ago is life"
    );
}

#[test]
fn connect_timeout_is_408() {
    let mut r = Rig::new(Policy::default(), true);
    r.feed(Event::Start);
    let conn = r.conn();
    r.feed(Event::DialStarted { conn });
    let fx = r.fire(TimerKind::ConnectTimeout);
    assert!(fx.iter().any(|e| matches!(e, Effect::Close { .. })));
    r.closed(Cause::Closed);
    assert_eq!(r.s.status(r.now).last_code, Some(408));
}

#[test]
fn the_connect_timeout_runs_from_the_dials_start_not_from_its_wait_in_the_queue() {
    let mut r = Rig::new(Policy::default(), true);
    r.feed(Event::Start);
    let conn = r.conn();
    // Queued for a slot and a token: no connect timeout yet, however long that takes.
    assert!(r.timers.newest(TimerKind::ConnectTimeout).is_none());
    r.now += secs(600);
    assert_eq!(r.state(), StateName::Connecting);
    r.feed(Event::DialStarted { conn });
    let (at, _) = r
        .timers
        .newest(TimerKind::ConnectTimeout)
        .expect("armed at the dial");
    assert_eq!(at, r.now + Policy::default().connect_timeout);
    // The timeline shows the wait and the dial apart.
    let status = r.s.status(r.now);
    let last = status.timeline.last().unwrap();
    assert_eq!(
        (last.state, last.cause.as_str()),
        (StateName::Connecting, "dial started")
    );
    // A DialStarted for a connection that is not the live one changes nothing.
    let fx = r.feed(Event::DialStarted { conn: conn + 1 });
    assert!(fx.is_empty());
}

#[test]
fn stale_timers_are_ignored() {
    let mut r = Rig::online(Policy::default());
    r.closed(Cause::Closed);
    let old = r.timers.newest(TimerKind::Retry).unwrap().1;
    r.feed(Event::Operator(Command::ReconnectNow));
    let conn = r.conn();
    r.feed(Event::Online { conn });
    let fx = r.feed(Event::TimerFired { timer: old });
    assert!(fx.is_empty());
    assert_eq!(r.state(), StateName::Online);
}

// ----- every operator command in every state -----

fn rig_in(state: StateName) -> Rig {
    let mut r = match state {
        StateName::Stopped => Rig::new(Policy::default(), true),
        StateName::Pairing => return Rig::pairing(),
        _ => Rig::online(Policy::default()),
    };
    match state {
        StateName::Connecting => {
            r.feed(Event::Operator(Command::Disconnect));
            r.closed(Cause::Closed);
            r.feed(Event::Operator(Command::Connect));
        }
        StateName::Handshaking => {
            r.feed(Event::Operator(Command::Disconnect));
            r.closed(Cause::Closed);
            r.feed(Event::Operator(Command::Connect));
            let conn = r.conn();
            r.feed(Event::Dialled { conn });
        }
        StateName::Backoff => {
            r.closed(Cause::Closed);
        }
        StateName::Cooldown => {
            r.closed(Cause::TempBanned {
                expires_s: Some(60),
            });
        }
        StateName::Conflict => {
            r.closed(Cause::Conflict);
        }
        StateName::LoggedOut => {
            r.closed(Cause::LoggedOut);
        }
        StateName::Failed => {
            r.closed(Cause::Banned);
        }
        _ => {}
    }
    assert_eq!(r.state(), state);
    r
}

#[test]
fn every_command_in_every_state() {
    let commands = [
        Command::Connect,
        Command::ReconnectNow,
        Command::Disconnect,
        Command::ResetCooldown,
        Command::WipeCredentials { backup: true },
        Command::Pair,
    ];
    for state in StateName::ALL {
        for command in commands {
            let mut r = rig_in(state);
            let had_socket = r.live.is_some();
            let fx = r.feed(Event::Operator(command));
            let closes = fx
                .iter()
                .filter(|e| matches!(e, Effect::Close { .. }))
                .count();
            assert!(closes <= 1);
            // Confirm any close the command asked for, as the driver would.
            let mut fx2 = Vec::new();
            if closes == 1 {
                fx2 = r.closed(Cause::Closed);
            }
            let total_dials = dials(&fx) + dials(&fx2);
            let ctx = format!("{command:?} in {state:?} -> {:?}", r.state());
            assert!(total_dials <= 1, "{ctx}: {total_dials} dials");
            match command {
                Command::Disconnect => {
                    assert_eq!(r.state(), StateName::Stopped, "{ctx}");
                    assert_eq!(total_dials, 0, "{ctx}");
                    assert_eq!(closes, usize::from(had_socket), "{ctx}");
                }
                Command::WipeCredentials { backup } => {
                    assert!(fx.contains(&Effect::WipeCredentials { backup }), "{ctx}");
                    assert_eq!(r.state(), StateName::Stopped, "{ctx}");
                    assert!(!r.s.status(r.now).account.paired, "{ctx}");
                }
                Command::ReconnectNow => {
                    // Always ends with exactly one dial, closing a live socket first.
                    assert_eq!(total_dials, 1, "{ctx}");
                    assert_eq!(r.state(), StateName::Connecting, "{ctx}");
                }
                Command::Connect => match state {
                    StateName::Stopped
                    | StateName::Backoff
                    | StateName::Cooldown
                    | StateName::Conflict
                    | StateName::Failed => {
                        assert_eq!(total_dials, 1, "{ctx}")
                    }
                    // Logged out: re-pairing waits for the logout cooldown.
                    StateName::LoggedOut => assert_eq!(total_dials, 0, "{ctx}"),
                    _ => assert_eq!(
                        (total_dials, closes),
                        (0, 0),
                        "{ctx}: already connecting or online"
                    ),
                },
                Command::ResetCooldown => match state {
                    StateName::Backoff
                    | StateName::Cooldown
                    | StateName::Conflict
                    | StateName::Failed => {
                        assert_eq!(total_dials, 1, "{ctx}")
                    }
                    StateName::LoggedOut => {
                        assert_eq!(total_dials, 0, "{ctx}");
                        assert_eq!(r.s.status(r.now).cooldown_until(), None, "{ctx}");
                        let fx = r.feed(Event::Operator(Command::Pair));
                        assert_eq!(dials(&fx), 1, "{ctx}: pairing allowed after the reset");
                    }
                    _ => assert_eq!(total_dials, 0, "{ctx}"),
                },
                Command::Pair => {
                    // Every rig here is paired, pairing already, or in the logout wait:
                    // pair does nothing (see `pair_starts_pairing_without_credentials`).
                    assert_eq!((total_dials, closes), (0, 0), "{ctx}");
                    assert_eq!(r.state(), state, "{ctx}");
                }
            }
        }
    }
}

#[test]
fn reconnect_on_a_conflict_session_dials_exactly_once() {
    let mut r = rig_in(StateName::Conflict);
    let fx = r.feed(Event::Operator(Command::ReconnectNow));
    assert_eq!(dials(&fx), 1);
    let fx = r.feed(Event::Operator(Command::ReconnectNow));
    assert_eq!(dials(&fx), 0, "a second press closes the dial first");
    let fx = r.closed(Cause::Closed);
    assert_eq!(dials(&fx), 1);
    assert!(matches!(r.s.state(), State::Connecting { .. }));
}

#[test]
fn pair_starts_pairing_without_credentials() {
    let mut r = Rig::new(Policy::default(), false);
    let fx = r.feed(Event::Operator(Command::Pair));
    assert_eq!(dials(&fx), 1);
    let conn = r.conn();
    r.feed(Event::Dialled { conn });
    r.feed(Event::QrRefs {
        conn,
        codes: vec![QrText::new("a".into())],
    });
    assert_eq!(r.state(), StateName::Pairing);
}

#[test]
fn a_restored_backup_is_recorded_in_the_timeline() {
    let mut r = Rig::new(Policy::default(), true);
    let note = "creds.wasp was refused: its checksum does not match; restored backup 3".to_string();
    let fx = r.feed(Event::CredentialsRestored { note: note.clone() });
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Record(entry) if entry.detail == note))
    );
    assert_eq!(
        r.s.status(r.now).timeline.last().map(|e| e.detail.clone()),
        Some(note)
    );
    let fx = r.feed(Event::CredentialsLost {
        reason: "no good backup".into(),
    });
    assert!(fx.iter().all(|e| !matches!(e, Effect::Dial { .. })));
    assert_eq!(r.state(), StateName::LoggedOut);
}
