//! The invariant, over random interleavings of operator commands, timer firings (stale ones
//! included), dial progress, frames, pings and closes with random causes: never two dials
//! outstanding or two sockets open for one session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use wasp::session::policy::Policy;
use wasp::session::status::QrText;
use wasp::session::{Command, Effect, Event, Session, TimerQueue};
use wasp::wa::stanza::Cause;

#[derive(Debug, Clone)]
enum Step {
    Op(u8),
    FireTimer(u8),
    DialStarted,
    Dialled,
    Online,
    Refs,
    Paired,
    Frame,
    PingOk,
    PingMiss,
    /// The live connection closes (server side or confirming our close).
    CloseLive(u8),
    /// A close for a connection that is not live (stale).
    CloseStale(u8),
    Advance(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6).prop_map(Step::Op),
        any::<u8>().prop_map(Step::FireTimer),
        Just(Step::DialStarted),
        Just(Step::Dialled),
        Just(Step::Online),
        Just(Step::Refs),
        Just(Step::Paired),
        Just(Step::Frame),
        Just(Step::PingOk),
        Just(Step::PingMiss),
        (0u8..17).prop_map(Step::CloseLive),
        (0u8..17).prop_map(Step::CloseStale),
        (0u16..5000).prop_map(Step::Advance),
    ]
}

fn cause(i: u8) -> Cause {
    match i {
        0 => Cause::Conflict,
        1 => Cause::LoggedOut,
        2 => Cause::RestartRequired,
        3 => Cause::Server(503),
        4 => Cause::Locked,
        5 => Cause::Banned,
        6 => Cause::TempBanned { expires_s: Some(5) },
        7 => Cause::ClientOutdated,
        8 => Cause::Mismatch,
        9 => Cause::Closed,
        10 => Cause::TimedOut("t".into()),
        11 => Cause::StreamError {
            child: "ack".into(),
            id: None,
        },
        12 => Cause::UserAgentRejected,
        13 => Cause::Network("n".into()),
        14 => Cause::Payload("p".into()),
        15 => Cause::Proxy("p".into()),
        _ => Cause::Protocol("p".into()),
    }
}

fn command(i: u8) -> Command {
    match i {
        0 => Command::Connect,
        1 => Command::ReconnectNow,
        2 => Command::Disconnect,
        3 => Command::ResetCooldown,
        4 => Command::WipeCredentials { backup: true },
        _ => Command::Pair,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn never_two_sockets(paired in any::<bool>(), conflict_retries in 0u32..3, steps in proptest::collection::vec(step(), 1..120)) {
        let policy = Policy { conflict_auto_retries: conflict_retries, ..Policy::default() };
        let mut now = Instant::now();
        let mut s = Session::new("p", "p", policy, paired, 3, now);
        // What a driver would track: dialled-and-not-closed connections, timers, old conns.
        let mut open: Vec<u64> = Vec::new();
        let mut timers = TimerQueue::new();
        let mut dead_conns: Vec<u64> = vec![999];
        let mut fx = s.handle(now, Event::Start);
        for st in steps {
            timers.schedule_all(&fx);
            for e in &fx {
                if let Effect::Dial { conn } = e {
                    prop_assert!(open.is_empty(), "dial {conn} while {open:?} open");
                    open.push(*conn);
                }
            }
            prop_assert!(open.len() <= 1);
            prop_assert_eq!(s.live_conn(), open.first().copied());
            let live = open.first().copied();
            let event = match st {
                Step::Op(i) => Event::Operator(command(i)),
                Step::FireTimer(i) if !timers.is_empty() => {
                    let n = i as usize % timers.len();
                    let (_, timer) = timers.iter().nth(n).unwrap();
                    Event::TimerFired { timer }
                }
                Step::FireTimer(_) => { fx = Vec::new(); continue; }
                Step::DialStarted => Event::DialStarted { conn: live.unwrap_or(0) },
                Step::Dialled => Event::Dialled { conn: live.unwrap_or(0) },
                Step::Online => Event::Online { conn: live.unwrap_or(0) },
                Step::Refs => Event::QrRefs { conn: live.unwrap_or(0), codes: vec![QrText::new("r1".into()), QrText::new("r2".into())] },
                Step::Paired => Event::Paired { conn: live.unwrap_or(0), phone: "1".into() },
                Step::Frame => Event::FrameReceived { conn: live.unwrap_or(0) },
                Step::PingOk => Event::PingAnswered { conn: live.unwrap_or(0), rtt: Duration::from_millis(5) },
                Step::PingMiss => Event::PingMissed { conn: live.unwrap_or(0) },
                Step::CloseLive(c) => match open.pop() {
                    Some(conn) => { dead_conns.push(conn); Event::Closed { conn, cause: cause(c) } }
                    None => { fx = Vec::new(); continue; }
                },
                Step::CloseStale(c) => {
                    let conn = dead_conns[c as usize % dead_conns.len()];
                    Event::Closed { conn, cause: cause(c) }
                }
                Step::Advance(ms) => { now += Duration::from_millis(u64::from(ms) * 20); fx = Vec::new(); continue; }
            };
            fx = s.handle(now, event);
        }
        for e in &fx {
            if let Effect::Dial { conn } = e {
                prop_assert!(open.is_empty(), "final dial {conn} while {open:?} open");
            }
        }
    }
}
