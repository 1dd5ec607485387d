//! The session's timers: effect timers with a generation each (a fired timer whose generation
//! is no longer armed is stale), and what each kind does when it fires.

use std::time::{Duration, Instant};

use rand::Rng;

use super::super::effect::Effect;
use super::super::event::{TimerId, TimerKind};
use super::super::state::State;
use super::Session;
use crate::wa::stanza::Cause;

/// The generation armed for each timer kind (0: none armed; generations start at 1). A fixed
/// array: a session keeps one, and a hash map cost it a heap table.
#[derive(Debug, Clone, Default)]
pub(super) struct Armed([u64; TimerKind::COUNT]);

impl Armed {
    fn insert(&mut self, kind: TimerKind, generation: u64) {
        self.0[kind.index()] = generation;
    }

    fn remove(&mut self, kind: &TimerKind) {
        self.0[kind.index()] = 0;
    }

    fn clear(&mut self) {
        self.0 = [0; TimerKind::COUNT];
    }

    fn get(&self, kind: &TimerKind) -> Option<&u64> {
        Some(&self.0[kind.index()]).filter(|g| **g != 0)
    }
}

impl Session {
    pub(super) fn arm(&mut self, kind: TimerKind, at: Instant, fx: &mut Vec<Effect>) {
        self.generation += 1;
        self.armed.insert(kind, self.generation);
        fx.push(Effect::ScheduleTimer {
            timer: TimerId {
                kind,
                generation: self.generation,
            },
            at,
        });
    }

    pub(super) fn disarm(&mut self, kind: TimerKind) {
        self.armed.remove(&kind);
    }

    pub(super) fn clear_waits(&mut self) {
        self.armed.clear();
    }

    pub(super) fn on_timer(&mut self, now: Instant, timer: TimerId, fx: &mut Vec<Effect>) {
        if self.armed.get(&timer.kind) != Some(&timer.generation) {
            return; // stale
        }
        self.armed.remove(&timer.kind);
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
                if let State::Online {
                    conn, keepalive, ..
                } = &mut self.state
                {
                    if !keepalive.ping_outstanding {
                        keepalive.ping_outstanding = true;
                        fx.push(Effect::SendPing { conn: *conn });
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

    pub(super) fn ping_interval(&mut self) -> Duration {
        let min = self.policy.keepalive_interval_min;
        let max = self.policy.keepalive_interval_max.max(min);
        if max == min {
            return min;
        }
        let span = (max - min).as_millis() as u64;
        min + Duration::from_millis(self.rng.gen_range(0..=span))
    }

    /// A missed ping with no frame at all during its deadline: the link is stalled. It shows
    /// at once, the silence since the last sign of life counts as down, and the link is
    /// replaced at once (408): a server that says nothing for a whole ping deadline is not
    /// serving this session, and waiting for `dead_after` only lengthens the outage.
    pub(super) fn check_stall(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let deadline = self.policy.keepalive_deadline;
        let State::Online { keepalive, .. } = &mut self.state else {
            return;
        };
        let silent = now.saturating_duration_since(keepalive.last_alive);
        if keepalive.stalled || silent < deadline {
            return;
        }
        keepalive.stalled = true;
        let last_alive = keepalive.last_alive;
        self.uptime.stalled(last_alive);
        let detail = format!("no frame for {}s", silent.as_secs());
        self.timeline_note(now, "stalled", None, &detail, fx);
        self.close_with(
            Cause::TimedOut(format!("keepalive unanswered, {detail}")),
            fx,
        );
    }

    /// A frame after a stall: online (and counted so) again.
    pub(super) fn unstall(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let State::Online { keepalive, .. } = &mut self.state else {
            return;
        };
        if !keepalive.stalled {
            return;
        }
        keepalive.stalled = false;
        self.uptime.online(now);
        self.timeline_note(now, "answering again", None, "", fx);
    }

    /// Any frame counts as life; silence for `dead_after` forces a reconnect (408).
    pub(super) fn check_dead(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let State::Online { keepalive, .. } = &self.state else {
            return;
        };
        let last_alive = keepalive.last_alive;
        let silent = now.saturating_duration_since(last_alive);
        if silent >= self.policy.dead_after {
            self.close_with(
                Cause::TimedOut(format!("no answer for {}s", silent.as_secs())),
                fx,
            );
        } else {
            let at = last_alive + self.policy.dead_after;
            self.arm(TimerKind::Dead, at, fx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_slot() {
        let kinds = [
            TimerKind::Retry,
            TimerKind::ConnectTimeout,
            TimerKind::Ping,
            TimerKind::Dead,
            TimerKind::QrExpiry,
            TimerKind::Stable,
            TimerKind::Backup,
        ];
        let mut armed = Armed::default();
        for (i, kind) in kinds.iter().enumerate() {
            armed.insert(*kind, i as u64 + 1);
        }
        for (i, kind) in kinds.iter().enumerate() {
            assert_eq!(armed.get(kind), Some(&(i as u64 + 1)), "{kind:?}");
        }
        armed.remove(&TimerKind::Ping);
        assert_eq!(armed.get(&TimerKind::Ping), None);
        assert_eq!(armed.get(&TimerKind::Dead), Some(&4));
        armed.clear();
        assert!(kinds.iter().all(|k| armed.get(k).is_none()));
    }
}
