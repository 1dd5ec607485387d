//! `Session`: the pure state machine of one session. `handle(now, event)` returns effects;
//! nothing here does I/O or reads a clock.
//!
//! The one-socket invariant is kept by a single field, `live`: the connection that has been
//! dialled and not yet confirmed closed. `Dial` is only ever emitted by `dial()`, which
//! refuses while `live` is set; a reconnect with a live socket first closes it and dials when
//! its `Closed` event arrives.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::effect::Effect;
use super::event::{ConnId, Event, TimerId, TimerKind};
use super::policy::Policy;
use super::state::State;
use super::status::{Liveness, QrView, StateName, Status, TimelineEntry};
use super::timeline::{HourWindow, Timeline, Uptime};
use crate::wa::stanza::Cause;

/// How long the first QR ref lives; later refs live `NEXT_QR_TTL`.
pub const FIRST_QR_TTL: Duration = Duration::from_secs(60);
pub const NEXT_QR_TTL: Duration = Duration::from_secs(20);
/// Wait per conflict when conflict retries are enabled (`5 s x n`).
pub const CONFLICT_STEP: Duration = Duration::from_secs(5);
/// Conflicts in an hour that trigger the conflict cooldown.
pub const CONFLICTS_BEFORE_COOLDOWN: u32 = 3;

/// One session's life.
pub struct Session {
    pub(super) id: String,
    pub(super) label: String,
    pub(super) policy: Policy,
    pub(super) state: State,
    pub(super) since: Instant,
    pub(super) has_credentials: bool,
    /// The dialled connection not yet confirmed closed (at most one).
    pub(super) live: Option<ConnId>,
    /// Dial again as soon as `live` is confirmed closed.
    pub(super) redial: bool,
    /// The cause to report when `live` closes because we closed it (timeouts).
    pub(super) close_cause: Option<Cause>,
    next_conn: ConnId,
    timers: HashMap<TimerKind, (u64, Instant)>,
    generation: u64,
    pub(super) rng: StdRng,
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
    pub(super) last_alive: Instant,
    pub(super) misses: u32,
    pub(super) ping_outstanding: bool,
    pub(super) repair_after: Option<Instant>,
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
                reason: "not started".to_string(),
            },
            since: now,
            has_credentials,
            live: None,
            redial: false,
            close_cause: None,
            next_conn: 1,
            timers: HashMap::new(),
            generation: 0,
            rng: StdRng::seed_from_u64(seed),
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
            last_alive: now,
            misses: 0,
            ping_outstanding: false,
            repair_after: None,
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
        self.live
    }

    /// Applies a new policy (config reload); the current socket is kept.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The earliest armed timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.values().map(|(_, at)| *at).min()
    }

    /// Feeds one event; returns what the driver must do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Effect> {
        let mut fx = Vec::new();
        match event {
            Event::Start => self.connect(now, "start", &mut fx),
            Event::Dialled { conn } => {
                if self.state == (State::Connecting { conn }) {
                    self.enter(now, State::Handshaking { conn }, "dialled", None, &mut fx);
                }
            }
            Event::HandshakeDone { .. } => {}
            Event::QrRefs { conn, refs } => self.on_refs(now, conn, refs, &mut fx),
            Event::Paired { conn, phone } => {
                if self.live == Some(conn) {
                    self.has_credentials = true;
                    self.repair_after = None;
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
                if self.live == Some(conn) {
                    self.last_frame_at = Some(now);
                    self.last_alive = now;
                }
            }
            Event::PingAnswered { conn, rtt } => {
                if self.live == Some(conn) {
                    self.ping_outstanding = false;
                    self.last_rtt = Some(rtt);
                    self.misses = 0;
                    self.last_alive = now;
                }
            }
            Event::PingMissed { conn } => {
                if self.live == Some(conn) {
                    self.ping_outstanding = false;
                    self.misses += 1;
                    self.check_dead(now, &mut fx);
                }
            }
            Event::Closed { conn, cause } => self.on_closed(now, conn, cause, &mut fx),
            Event::ClientVersion { version } => self.on_version(now, version, &mut fx),
            Event::TimerFired { timer } => self.on_timer(now, timer, &mut fx),
            Event::Operator(command) => self.on_command(now, command, &mut fx),
            Event::CredentialsRestored { note } => {
                let entry = TimelineEntry {
                    at: now,
                    state: self.state.name(),
                    cause: "credentials restored from backup".to_string(),
                    code: None,
                    detail: note,
                };
                self.timeline.push(entry.clone());
                fx.push(Effect::Record(entry));
            }
            Event::CredentialsLost { reason } => {
                self.has_credentials = false;
                self.close_live("credentials lost", &mut fx);
                self.clear_waits();
                let state = State::LoggedOut {
                    reason: reason.clone(),
                    repair_after: None,
                };
                self.enter(now, state, "credentials lost", Some(reason), &mut fx);
            }
        }
        fx
    }

    // ----- timers -----

    pub(super) fn arm(&mut self, kind: TimerKind, at: Instant, fx: &mut Vec<Effect>) {
        self.generation += 1;
        self.timers.insert(kind, (self.generation, at));
        fx.push(Effect::ScheduleTimer {
            timer: TimerId {
                kind,
                generation: self.generation,
            },
            at,
        });
    }

    pub(super) fn disarm(&mut self, kind: TimerKind) {
        self.timers.remove(&kind);
    }

    pub(super) fn clear_waits(&mut self) {
        for kind in [
            TimerKind::Retry,
            TimerKind::ConnectTimeout,
            TimerKind::QrExpiry,
            TimerKind::Ping,
            TimerKind::Dead,
            TimerKind::Stable,
            TimerKind::Backup,
        ] {
            self.disarm(kind);
        }
    }

    fn on_timer(&mut self, now: Instant, timer: TimerId, fx: &mut Vec<Effect>) {
        match self.timers.get(&timer.kind) {
            Some((generation, _)) if *generation == timer.generation => {
                self.timers.remove(&timer.kind);
            }
            _ => return, // stale
        }
        match timer.kind {
            TimerKind::Retry => match self.state {
                State::Backoff { .. } | State::Cooldown { .. } | State::Failed { .. } => {
                    self.dial(now, "retry", fx)
                }
                _ => {}
            },
            TimerKind::ConnectTimeout => {
                if matches!(
                    self.state,
                    State::Connecting { .. } | State::Handshaking { .. }
                ) {
                    self.close_with(Cause::TimedOut("connect timeout".into()), fx);
                }
            }
            TimerKind::QrExpiry => self.next_qr(now, fx),
            TimerKind::Ping => {
                if let State::Online { conn, .. } = self.state {
                    if !self.ping_outstanding {
                        self.ping_outstanding = true;
                        fx.push(Effect::SendPing { conn });
                    }
                    let at = now + self.ping_interval();
                    self.arm(TimerKind::Ping, at, fx);
                }
            }
            TimerKind::Dead => self.check_dead(now, fx),
            TimerKind::Stable => {
                if matches!(self.state, State::Online { .. }) {
                    self.attempt = 0;
                    self.conflict_retries = 0;
                }
            }
            TimerKind::Backup => {
                if matches!(self.state, State::Online { .. }) && self.has_credentials {
                    fx.push(Effect::BackupCredentials);
                    self.arm(TimerKind::Backup, now + self.policy.backup_interval, fx);
                }
            }
        }
    }

    fn ping_interval(&mut self) -> Duration {
        let min = self.policy.keepalive_interval_min;
        let max = self.policy.keepalive_interval_max.max(min);
        if max == min {
            return min;
        }
        let span = (max - min).as_millis() as u64;
        min + Duration::from_millis(self.rng.gen_range(0..=span))
    }

    /// Any frame counts as life; silence for `dead_after` forces a reconnect (408).
    fn check_dead(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        if !matches!(self.state, State::Online { .. }) {
            return;
        }
        let silent = now.saturating_duration_since(self.last_alive);
        if silent >= self.policy.dead_after {
            self.close_with(
                Cause::TimedOut(format!("no answer for {}s", silent.as_secs())),
                fx,
            );
        } else {
            let at = self.last_alive + self.policy.dead_after;
            self.arm(TimerKind::Dead, at, fx);
        }
    }

    // ----- connecting -----

    /// Connect now, or as soon as the live socket is closed.
    pub(super) fn connect(&mut self, now: Instant, why: &str, fx: &mut Vec<Effect>) {
        if self.live.is_some() {
            if let Some(conn) = self.live {
                self.redial = true;
                if !self.closing() {
                    fx.push(Effect::Close {
                        conn,
                        reason: why.to_string(),
                    });
                    self.close_cause = Some(Cause::Closed);
                }
            }
            return;
        }
        self.dial(now, why, fx);
    }

    /// True when a close of the live socket was already requested.
    fn closing(&self) -> bool {
        self.close_cause.is_some()
    }

    /// The only place that emits `Dial`.
    fn dial(&mut self, now: Instant, why: &str, fx: &mut Vec<Effect>) {
        if self.live.is_some() {
            self.redial = true;
            return;
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        self.live = Some(conn);
        self.redial = false;
        self.close_cause = None;
        self.clear_waits();
        if self.outage_started.is_none() {
            self.outage_started = Some(now);
        }
        self.enter(now, State::Connecting { conn }, why, None, fx);
        fx.push(Effect::Dial { conn });
        self.arm(
            TimerKind::ConnectTimeout,
            now + self.policy.connect_timeout,
            fx,
        );
    }

    /// Closes the live socket, reporting `cause` when its `Closed` arrives.
    pub(super) fn close_with(&mut self, cause: Cause, fx: &mut Vec<Effect>) {
        if let Some(conn) = self.live
            && !self.closing()
        {
            fx.push(Effect::Close {
                conn,
                reason: cause.to_string(),
            });
            self.close_cause = Some(cause);
        }
    }

    /// Closes the live socket for an operator or policy reason; no reconnect follows.
    pub(super) fn close_live(&mut self, why: &str, fx: &mut Vec<Effect>) {
        self.redial = false;
        if let Some(conn) = self.live
            && !self.closing()
        {
            fx.push(Effect::Close {
                conn,
                reason: why.to_string(),
            });
            self.close_cause = Some(Cause::Closed);
        }
    }

    fn on_refs(&mut self, now: Instant, conn: ConnId, refs: Vec<String>, fx: &mut Vec<Effect>) {
        if self.live != Some(conn) || refs.is_empty() || self.closing() {
            return;
        }
        if !matches!(
            self.state,
            State::Handshaking { .. } | State::Connecting { .. }
        ) {
            return;
        }
        self.disarm(TimerKind::ConnectTimeout);
        let count = refs.len();
        let expires_at = now + FIRST_QR_TTL;
        self.arm(TimerKind::QrExpiry, expires_at, fx);
        fx.push(Effect::ShowQr {
            index: 1,
            count: count as u32,
            expires_at,
        });
        let state = State::Pairing {
            conn,
            refs,
            index: 0,
            expires_at,
        };
        self.enter(now, state, "qr", Some(format!("ref 1/{count}")), fx);
    }

    fn next_qr(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let State::Pairing { refs, index, .. } = &self.state else {
            return;
        };
        let next = index + 1;
        let count = refs.len();
        if next < count {
            let expires_at = now + NEXT_QR_TTL;
            if let State::Pairing {
                index,
                expires_at: e,
                ..
            } = &mut self.state
            {
                *index = next;
                *e = expires_at;
            }
            self.arm(TimerKind::QrExpiry, expires_at, fx);
            fx.push(Effect::ShowQr {
                index: next as u32 + 1,
                count: count as u32,
                expires_at,
            });
        } else {
            // Refs exhausted: stop, never loop through QR codes on our own.
            self.close_live("pairing timed out", fx);
            let state = State::Stopped {
                reason: "pairing timed out".to_string(),
            };
            self.enter(
                now,
                state,
                "qr refs exhausted",
                Some(format!("{count} refs shown")),
                fx,
            );
        }
    }

    fn on_online(&mut self, now: Instant, conn: ConnId, fx: &mut Vec<Effect>) {
        if self.live != Some(conn) || self.closing() {
            return;
        }
        self.disarm(TimerKind::ConnectTimeout);
        self.has_credentials = true;
        self.last_alive = now;
        self.misses = 0;
        self.ping_outstanding = false;
        if let Some(started) = self.outage_started.take() {
            self.last_reconnect = Some(now.saturating_duration_since(started));
        }
        self.uptime.online(now);
        let ping_at = now + self.ping_interval();
        self.arm(TimerKind::Ping, ping_at, fx);
        self.arm(TimerKind::Dead, now + self.policy.dead_after, fx);
        self.arm(TimerKind::Stable, now + self.policy.backoff_reset_after, fx);
        self.arm(TimerKind::Backup, now + self.policy.backup_stable_after, fx);
        self.enter(now, State::Online { conn, since: now }, "online", None, fx);
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

    /// The published snapshot.
    pub fn status(&self, now: Instant) -> Status {
        let mut s = Status::new(self.id.clone(), self.label.clone(), self.since);
        s.state = self.state.name();
        s.since = self.since;
        s.reason = self.state.reason();
        s.attempt = self.attempt;
        s.max_attempts = match &self.last_cause {
            Some(c) if is_server_class(c) => self.policy.max_attempts_server,
            _ => self.policy.max_attempts_network,
        };
        s.retry_at = match &self.state {
            State::Backoff { until, .. } => Some(*until),
            State::Failed { probe_at, .. } => *probe_at,
            _ => None,
        };
        s.cooldown_until = match &self.state {
            State::Cooldown { until, .. } => Some(*until),
            State::LoggedOut { repair_after, .. } => *repair_after,
            _ => None,
        };
        s.conflicts_1h = self.conflicts.count(now);
        s.disconnects_1h = self.disconnects.count(now);
        s.last_cause = self.last_cause.as_ref().map(|c| c.name().to_string());
        s.last_code = self.last_cause.as_ref().map(Cause::code);
        s.uptime_pct = self.uptime.percent(now);
        s.online_since = match &self.state {
            State::Online { since, .. } => Some(*since),
            _ => None,
        };
        s.last_reconnect = self.last_reconnect;
        s.liveness = Liveness {
            last_rtt: self.last_rtt,
            last_frame_at: self.last_frame_at,
            misses: self.misses,
        };
        if let State::Pairing {
            refs,
            index,
            expires_at,
            ..
        } = &self.state
        {
            // The driver turns the ref into the full QR text (it holds the keys).
            s.qr = Some(QrView {
                text: refs.get(*index).cloned().unwrap_or_default(),
                index: *index as u32 + 1,
                count: refs.len() as u32,
                expires_at: *expires_at,
            });
        }
        s.timeline = self.timeline.to_vec();
        s.paired = self.has_credentials;
        s.client_version = self.client_version.clone().unwrap_or_default();
        s
    }

    pub(super) fn state_name(&self) -> StateName {
        self.state.name()
    }
}

#[path = "disconnect.rs"]
mod disconnect;
use disconnect::is_server_class;
#[path = "operator.rs"]
mod operator;
