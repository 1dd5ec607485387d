//! `Session`: the pure state machine of one session. `handle(now, event)` returns effects;
//! nothing here does I/O or reads a clock.
//!
//! The one-socket invariant is kept by a single field, `live`: the connection that has been
//! dialled and not yet confirmed closed. `Dial` is only ever emitted by `dial()`, which
//! refuses while `live` is set; a reconnect with a live socket first closes it and dials when
//! its `Closed` event arrives.

mod disconnect;
mod operator;
mod pairing;
mod timers;
mod view;

use std::time::{Duration, Instant};

use super::backoff::JitterRng;
use super::effect::Effect;
use super::event::{ConnId, Event, TimerKind};
use super::policy::Policy;
use super::reason::{LogoutReason, StopReason};
use super::state::{Keepalive, State};
use super::status::{Backups, TimelineEntry};
use super::timeline::{HourWindow, Timeline, Uptime};
use crate::wa::stanza::Cause;
use timers::Armed;

/// How long the first QR ref lives; later refs live `NEXT_QR_TTL`.
pub const FIRST_QR_TTL: Duration = Duration::from_secs(60);
pub const NEXT_QR_TTL: Duration = Duration::from_secs(20);
/// Wait per conflict when conflict retries are enabled (`5 s x n`).
pub const CONFLICT_STEP: Duration = Duration::from_secs(5);
/// Conflicts in an hour that trigger the conflict cooldown.
pub const CONFLICTS_BEFORE_COOLDOWN: u32 = 3;

/// The dialled connection not yet confirmed closed, with what to do when it closes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Live {
    pub(super) conn: ConnId,
    /// Dial again as soon as this connection is confirmed closed.
    pub(super) redial: bool,
    /// Set once we asked for the close: the cause to report when it arrives (timeouts win
    /// over the plain close the socket reports).
    pub(super) close_cause: Option<Cause>,
}

/// One session's life.
pub struct Session {
    pub(super) id: String,
    pub(super) label: String,
    pub(super) policy: Policy,
    pub(super) state: State,
    pub(super) since: Instant,
    pub(super) has_credentials: bool,
    /// The dialled connection not yet confirmed closed (at most one).
    pub(super) live: Option<Live>,
    next_conn: ConnId,
    /// The generation of each armed timer; a fired timer of another generation is stale.
    armed: Armed,
    generation: u64,
    pub(super) rng: JitterRng,
    /// Reconnect attempts in the current outage.
    pub(super) attempt: u32,
    pub(super) conflict_retries: u32,
    pub(super) conflicts: HourWindow,
    pub(super) disconnects: HourWindow,
    pub(super) timeline: Timeline,
    pub(super) last_cause: Option<Cause>,
    pub(super) uptime: Uptime,
    pub(super) outage_started: Option<Instant>,
    pub(super) last_reconnect: Option<Duration>,
    pub(super) last_rtt: Option<Duration>,
    pub(super) last_frame_at: Option<Instant>,
    /// After a logout, re-pairing waits until then (cleared by the operator).
    pub(super) repair_after: Option<Instant>,
    /// The phone of the account, when known.
    pub(super) phone: Option<String>,
    pub(super) backups: Backups,
    /// The WhatsApp Web version the driver dials with (for the 405 reason and the status).
    pub(super) client_version: Option<String>,
}

impl Session {
    /// A `stopped` session. `has_credentials`: paired credentials exist.
    pub fn new(
        id: impl Into<String>,
        label: impl Into<String>,
        policy: Policy,
        has_credentials: bool,
        seed: u64,
        now: Instant,
    ) -> Self {
        Session {
            id: id.into(),
            label: label.into(),
            policy,
            state: State::Stopped {
                reason: StopReason::NotStarted,
            },
            since: now,
            has_credentials,
            live: None,
            next_conn: 1,
            armed: Armed::default(),
            generation: 0,
            rng: JitterRng::seed_from_u64(seed),
            attempt: 0,
            conflict_retries: 0,
            conflicts: HourWindow::default(),
            disconnects: HourWindow::default(),
            timeline: Timeline::default(),
            last_cause: None,
            uptime: Uptime::new(now),
            outage_started: None,
            last_reconnect: None,
            last_rtt: None,
            last_frame_at: None,
            repair_after: None,
            phone: None,
            backups: Backups::default(),
            client_version: None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The connection dialled and not yet confirmed closed.
    pub fn live_conn(&self) -> Option<ConnId> {
        self.live.as_ref().map(|l| l.conn)
    }

    fn is_live(&self, conn: ConnId) -> bool {
        self.live_conn() == Some(conn)
    }

    /// The policy in force (the configured one, or the last reload's).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Applies a new policy (config reload); the current socket is kept.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Feeds one event; returns what the driver must do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Effect> {
        let mut fx = Vec::new();
        match event {
            Event::Start => self.connect(now, "start", &mut fx),
            Event::DialStarted { conn } => {
                if self.state == (State::Connecting { conn }) {
                    self.arm(
                        TimerKind::ConnectTimeout,
                        now + self.policy.connect_timeout,
                        &mut fx,
                    );
                    let entry = self.timeline_entry(now, "dial started", None);
                    self.timeline.push(entry.clone());
                    fx.push(Effect::Record(entry));
                }
            }
            Event::Dialled { conn } => {
                if self.state == (State::Connecting { conn }) {
                    self.enter(now, State::Handshaking { conn }, "dialled", None, &mut fx);
                }
            }
            Event::HandshakeDone { .. } => {}
            Event::QrRefs { conn, codes } => self.on_refs(now, conn, codes, &mut fx),
            Event::Paired { conn, phone } => {
                if self.is_live(conn) {
                    self.has_credentials = true;
                    self.repair_after = None;
                    self.phone = Some(phone.clone());
                    fx.push(Effect::SaveCredentials);
                    self.disarm(TimerKind::QrExpiry);
                    self.arm(
                        TimerKind::ConnectTimeout,
                        now + self.policy.connect_timeout,
                        &mut fx,
                    );
                    self.enter(
                        now,
                        State::Handshaking { conn },
                        "paired",
                        Some(phone),
                        &mut fx,
                    );
                }
            }
            Event::Online { conn } => self.on_online(now, conn, &mut fx),
            Event::FrameReceived { conn } => {
                if self.is_live(conn) {
                    self.last_frame_at = Some(now);
                    if let State::Online { keepalive, .. } = &mut self.state {
                        keepalive.last_alive = now;
                    }
                    self.unstall(now, &mut fx);
                }
            }
            Event::PingAnswered { conn, rtt } => {
                if self.is_live(conn) {
                    self.last_rtt = Some(rtt);
                    if let State::Online { keepalive, .. } = &mut self.state {
                        keepalive.ping_outstanding = false;
                        keepalive.misses = 0;
                        keepalive.last_alive = now;
                    }
                    self.unstall(now, &mut fx);
                }
            }
            Event::PingMissed { conn } => {
                if self.is_live(conn)
                    && let State::Online { keepalive, .. } = &mut self.state
                {
                    keepalive.ping_outstanding = false;
                    keepalive.misses += 1;
                    self.check_stall(now, &mut fx);
                    self.check_dead(now, &mut fx);
                }
            }
            Event::Closed { conn, cause } => self.on_closed(now, conn, cause, &mut fx),
            Event::ClientVersion { version } => self.on_version(now, version, &mut fx),
            Event::TimerFired { timer } => self.on_timer(now, timer, &mut fx),
            Event::Operator(command) => self.on_command(now, command, &mut fx),
            Event::Phone { phone } => self.phone = phone,
            Event::Backups(backups) => self.backups = backups,
            Event::CredentialsRestored { note } => {
                self.timeline_note(
                    now,
                    "credentials restored from backup",
                    None,
                    &note,
                    &mut fx,
                );
            }
            Event::CredentialsLost { reason } => {
                self.has_credentials = false;
                self.close_live("credentials lost", &mut fx);
                self.clear_waits();
                let state = State::LoggedOut {
                    reason: LogoutReason::CredentialsLost(reason.clone()),
                };
                self.enter(now, state, "credentials lost", Some(reason), &mut fx);
            }
        }
        fx
    }

    // ----- connecting -----

    /// Connect now, or as soon as the live socket is closed.
    pub(super) fn connect(&mut self, now: Instant, why: &str, fx: &mut Vec<Effect>) {
        if let Some(live) = &mut self.live {
            live.redial = true;
            if live.close_cause.is_none() {
                fx.push(Effect::Close {
                    conn: live.conn,
                    reason: why.to_string(),
                });
                live.close_cause = Some(Cause::Closed);
            }
            return;
        }
        self.dial(now, why, fx);
    }

    /// True when a close of the live socket was already requested.
    fn closing(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.close_cause.is_some())
    }

    /// The only place that emits `Dial`.
    fn dial(&mut self, now: Instant, why: &str, fx: &mut Vec<Effect>) {
        if let Some(live) = &mut self.live {
            live.redial = true;
            return;
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        self.live = Some(Live {
            conn,
            redial: false,
            close_cause: None,
        });
        self.clear_waits();
        if self.outage_started.is_none() {
            self.outage_started = Some(now);
        }
        self.enter(now, State::Connecting { conn }, why, None, fx);
        // The connect timeout is armed when the dial starts (`DialStarted`), not here: a
        // dial may first wait for a handshake slot and a rate token, and a large fleet at the
        // default 5 connects a second would otherwise time out in the queue, go to the back
        // of it and count failed attempts it never made.
        fx.push(Effect::Dial { conn });
    }

    /// Closes the live socket, reporting `cause` when its `Closed` arrives.
    pub(super) fn close_with(&mut self, cause: Cause, fx: &mut Vec<Effect>) {
        if let Some(live) = &mut self.live
            && live.close_cause.is_none()
        {
            fx.push(Effect::Close {
                conn: live.conn,
                reason: cause.to_string(),
            });
            live.close_cause = Some(cause);
        }
    }

    /// Closes the live socket for an operator or policy reason; no reconnect follows.
    pub(super) fn close_live(&mut self, why: &str, fx: &mut Vec<Effect>) {
        if let Some(live) = &mut self.live {
            live.redial = false;
            if live.close_cause.is_none() {
                fx.push(Effect::Close {
                    conn: live.conn,
                    reason: why.to_string(),
                });
                live.close_cause = Some(Cause::Closed);
            }
        }
    }

    fn on_online(&mut self, now: Instant, conn: ConnId, fx: &mut Vec<Effect>) {
        if !self.is_live(conn) || self.closing() {
            return;
        }
        self.disarm(TimerKind::ConnectTimeout);
        self.has_credentials = true;
        if let Some(started) = self.outage_started.take() {
            self.last_reconnect = Some(now.saturating_duration_since(started));
        }
        self.uptime.online(now);
        let ping_at = now + self.ping_interval();
        self.arm(TimerKind::Ping, ping_at, fx);
        self.arm(TimerKind::Dead, now + self.policy.dead_after, fx);
        self.arm(TimerKind::Stable, now + self.policy.backoff_reset_after, fx);
        self.arm(TimerKind::Backup, now + self.policy.backup_stable_after, fx);
        let state = State::Online {
            conn,
            since: now,
            keepalive: Keepalive::new(now),
        };
        self.enter(now, state, "online", None, fx);
    }

    // ----- bookkeeping -----

    /// Moves to `state`, recording the transition.
    pub(super) fn enter(
        &mut self,
        now: Instant,
        state: State,
        cause: &str,
        detail: Option<String>,
        fx: &mut Vec<Effect>,
    ) {
        self.enter_coded(now, state, cause, None, detail, fx);
    }

    /// Moves to `state`, recording the transition with a disconnect code.
    pub(super) fn enter_coded(
        &mut self,
        now: Instant,
        state: State,
        cause: &str,
        code: Option<u16>,
        detail: Option<String>,
        fx: &mut Vec<Effect>,
    ) {
        if !matches!(state, State::Online { .. }) {
            self.uptime.offline(now);
        }
        let entry = TimelineEntry {
            at: now,
            state: state.name(),
            cause: cause.to_string(),
            code,
            detail: detail.unwrap_or_else(|| state.reason()),
        };
        self.state = state;
        self.since = now;
        self.timeline.push(entry.clone());
        fx.push(Effect::Record(entry));
    }

    /// A timeline entry for a step within the current state (its name and reason).
    fn timeline_entry(&self, now: Instant, cause: &str, code: Option<u16>) -> TimelineEntry {
        TimelineEntry {
            at: now,
            state: self.state.name(),
            cause: cause.to_string(),
            code,
            detail: self.state.reason(),
        }
    }
}

/// 500/503, protocol errors, unknown failures and code-less stream errors count against `max_attempts_server`.
pub(super) fn is_server_class(cause: &Cause) -> bool {
    matches!(
        cause,
        Cause::Server(_)
            | Cause::Protocol(_)
            | Cause::UnknownFailure(_)
            | Cause::StreamError { .. }
    )
}
