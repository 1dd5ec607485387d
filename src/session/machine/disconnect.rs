//! What a closed socket leads to: SPEC.md's disconnect table, read from the `Policy`.

use std::time::Instant;

use super::super::backoff::BackoffPolicy;
use super::super::effect::Effect;
use super::super::event::{ConnId, TimerKind};
use super::super::policy::OnLogout;
use super::super::reason::{CooldownReason, FailReason, LogoutReason};
use super::super::state::State;
use super::{CONFLICT_STEP, CONFLICTS_BEFORE_COOLDOWN, Session, is_server_class};
use crate::wa::stanza::Cause;

impl Session {
    pub(super) fn on_closed(
        &mut self,
        now: Instant,
        conn: ConnId,
        cause: Cause,
        fx: &mut Vec<Effect>,
    ) {
        let Some(live) = self.live.take_if(|l| l.conn == conn) else {
            return; // an older connection: already accounted for
        };
        // When we closed it ourselves for a reason (timeout, dead link), that reason wins.
        let cause = match live.close_cause {
            Some(Cause::Closed) | None => cause,
            Some(ours) => ours,
        };
        let was_online = matches!(self.state, State::Online { .. });
        if live.redial {
            self.dial(now, "reconnect", fx);
            return;
        }
        // States we chose ourselves (operator stop, refs exhausted, wipe): stay there.
        if matches!(
            self.state,
            State::Stopped { .. }
                | State::LoggedOut { .. }
                | State::Failed { .. }
                | State::Conflict
                | State::Cooldown { .. }
                | State::Backoff { .. }
        ) {
            return;
        }
        self.clear_waits();
        if was_online {
            self.disconnects.record(now);
        }
        if self.outage_started.is_none() {
            self.outage_started = Some(now);
        }
        self.last_cause = Some(cause.clone());
        fx.push(Effect::Disconnected {
            cause: cause.clone(),
        });
        self.apply_table(now, cause, fx);
    }

    fn apply_table(&mut self, now: Instant, cause: Cause, fx: &mut Vec<Effect>) {
        let label = cause.name();
        let code = Some(cause.code());
        let detail = Some(cause.to_string());
        match &cause {
            Cause::RestartRequired => {
                // Normal after pairing: reconnect at once, attempt counter untouched.
                fx.push(Effect::Reconnect {
                    cause: cause.clone(),
                });
                self.timeline_note(now, label, code, "restart required: reconnecting now", fx);
                self.dial(now, "restart required", fx);
            }
            Cause::Conflict => {
                self.conflicts.record(now);
                let recent = self.conflicts.count(now);
                if self.policy.conflict_auto_retries == 0
                    || self.conflict_retries >= self.policy.conflict_auto_retries
                {
                    self.enter_coded(now, State::Conflict, label, code, detail, fx);
                } else if recent >= CONFLICTS_BEFORE_COOLDOWN {
                    let until = now + self.policy.conflict_cooldown;
                    self.arm(TimerKind::Retry, until, fx);
                    let why = CooldownReason::Conflicts {
                        in_last_hour: recent,
                    };
                    self.enter_coded(now, State::Cooldown { until, why }, label, code, detail, fx);
                } else {
                    self.conflict_retries += 1;
                    let until = now + CONFLICT_STEP * self.conflict_retries;
                    self.back_off_until(now, until, cause, fx);
                }
            }
            Cause::LoggedOut => {
                self.has_credentials = false;
                if self.policy.on_logout == OnLogout::Wipe {
                    fx.push(Effect::WipeCredentials { backup: true });
                }
                self.repair_after = Some(now + self.policy.logout_cooldown);
                let state = State::LoggedOut {
                    reason: LogoutReason::ByServer,
                };
                self.enter_coded(now, state, label, code, detail, fx);
            }
            Cause::Locked | Cause::Banned | Cause::Mismatch => {
                let reason = match cause {
                    Cause::Locked => FailReason::Locked,
                    Cause::Banned => FailReason::Banned,
                    _ => FailReason::Mismatch,
                };
                let state = State::Failed {
                    reason,
                    probe_at: None,
                };
                self.enter_coded(now, state, label, code, detail, fx);
            }
            Cause::ClientOutdated => {
                let refused = self.client_version.as_deref().unwrap_or("in use");
                let state = State::Failed {
                    reason: FailReason::ClientOutdated {
                        refused: refused.to_string(),
                    },
                    probe_at: None,
                };
                self.enter_coded(now, state, label, code, detail, fx);
            }
            Cause::UserAgentRejected | Cause::Payload(_) => {
                // Retrying sends the same refused name or the same broken payload.
                let reason = match &cause {
                    Cause::Payload(why) => FailReason::Payload(why.clone()),
                    _ => FailReason::UserAgentRejected,
                };
                let state = State::Failed {
                    reason,
                    probe_at: None,
                };
                self.enter_coded(now, state, label, code, detail, fx);
            }
            Cause::TempBanned { expires_s } => {
                let wait = expires_s
                    .map(std::time::Duration::from_secs)
                    .unwrap_or(self.policy.conflict_cooldown);
                let until = now + wait;
                self.arm(TimerKind::Retry, until, fx);
                let why = CooldownReason::TempBan {
                    secs: wait.as_secs(),
                };
                self.enter_coded(now, State::Cooldown { until, why }, label, code, detail, fx);
            }
            Cause::Closed | Cause::TimedOut(_) | Cause::Network(_) | Cause::Proxy(_) => {
                let max = self.policy.max_attempts_network;
                self.backoff_or_fail(now, cause, max, fx);
            }
            Cause::Server(_)
            | Cause::Protocol(_)
            | Cause::UnknownFailure(_)
            | Cause::StreamError { .. } => {
                debug_assert!(is_server_class(&cause));
                let max = self.policy.max_attempts_server;
                self.backoff_or_fail(now, cause, max, fx);
            }
        }
    }

    fn backoff_or_fail(&mut self, now: Instant, cause: Cause, max: u32, fx: &mut Vec<Effect>) {
        let label = cause.name();
        let code = Some(cause.code());
        let detail = Some(cause.to_string());
        self.attempt += 1;
        if self.attempt > max {
            let probe_at = now + self.policy.failed_probe_interval;
            self.arm(TimerKind::Retry, probe_at, fx);
            let state = State::Failed {
                reason: FailReason::GaveUp {
                    attempts: max,
                    cause: cause.clone(),
                },
                probe_at: Some(probe_at),
            };
            self.enter_coded(now, state, label, code, detail, fx);
            return;
        }
        let policy = BackoffPolicy {
            base: self.policy.backoff_base,
            cap: self.policy.backoff_cap,
            jitter: self.policy.backoff_jitter,
        };
        let until = now + policy.delay(self.attempt, &mut self.rng);
        self.back_off_until(now, until, cause, fx);
    }

    /// Waits in `backoff` until `until`, then dials again.
    fn back_off_until(&mut self, now: Instant, until: Instant, cause: Cause, fx: &mut Vec<Effect>) {
        let label = cause.name();
        let code = Some(cause.code());
        let detail = Some(cause.to_string());
        self.arm(TimerKind::Retry, until, fx);
        fx.push(Effect::Reconnect {
            cause: cause.clone(),
        });
        let state = State::Backoff { until, cause };
        self.enter_coded(now, state, label, code, detail, fx);
    }

    /// The client version changed (config reload): remember it, and probe again at once if
    /// the server refused the old one (`failed` after a 405).
    pub(super) fn on_version(&mut self, now: Instant, version: String, fx: &mut Vec<Effect>) {
        let changed = self.client_version.as_ref().is_some_and(|v| *v != version);
        self.client_version = Some(version);
        let refused = matches!(self.last_cause, Some(Cause::ClientOutdated));
        if changed && refused && matches!(self.state, State::Failed { .. }) {
            self.attempt = 0;
            self.dial(now, "client version changed", fx);
        }
    }

    /// A timeline entry that is not a state change (e.g. a 515 before the redial).
    pub(super) fn timeline_note(
        &mut self,
        now: Instant,
        cause: &str,
        code: Option<u16>,
        detail: &str,
        fx: &mut Vec<Effect>,
    ) {
        let entry = super::super::status::TimelineEntry {
            at: now,
            state: self.state.name(),
            cause: cause.to_string(),
            code,
            detail: detail.to_string(),
        };
        self.timeline.push(entry.clone());
        fx.push(Effect::Record(entry));
    }
}
