//! Operator commands, valid in every state.

use std::time::Instant;

use super::super::effect::Effect;
use super::super::event::Command;
use super::super::reason::{LogoutReason, StopReason};
use super::super::state::State;
use super::Session;

impl Session {
    pub(super) fn on_command(&mut self, now: Instant, command: Command, fx: &mut Vec<Effect>) {
        let label = format!("operator {}", command.name());
        match command {
            Command::Connect => {
                if self.live.is_none() && !self.waiting_for_repair(now) {
                    self.attempt = 0;
                    self.dial(now, &label, fx);
                }
            }
            Command::ReconnectNow => {
                // Skips every wait; a live socket is closed first, then one dial follows.
                self.attempt = 0;
                self.conflict_retries = 0;
                self.repair_after = None;
                self.connect(now, &label, fx);
            }
            Command::ResetCooldown => {
                let waiting = matches!(
                    self.state,
                    State::Cooldown { .. }
                        | State::Backoff { .. }
                        | State::LoggedOut { .. }
                        | State::Failed { .. }
                        | State::Conflict
                );
                self.attempt = 0;
                self.conflict_retries = 0;
                self.repair_after = None;
                if waiting && self.live.is_none() {
                    if let State::LoggedOut { .. } = self.state {
                        // The logout wait is over; pairing starts when asked (or now, if
                        // credentials were kept).
                        if !self.has_credentials {
                            let state = State::LoggedOut {
                                reason: LogoutReason::ReadyToPair,
                            };
                            self.enter(now, state, &label, None, fx);
                            return;
                        }
                    }
                    self.dial(now, &label, fx);
                }
            }
            Command::Disconnect => {
                self.close_live(&label, fx);
                self.clear_waits();
                let state = State::Stopped {
                    reason: StopReason::Operator,
                };
                self.enter(now, state, &label, None, fx);
            }
            Command::WipeCredentials { backup } => {
                self.close_live(&label, fx);
                self.clear_waits();
                self.has_credentials = false;
                fx.push(Effect::WipeCredentials { backup });
                let state = State::Stopped {
                    reason: StopReason::Wiped,
                };
                self.enter(now, state, &label, None, fx);
            }
            Command::Pair => {
                if self.has_credentials || self.live.is_some() || self.waiting_for_repair(now) {
                    return;
                }
                self.attempt = 0;
                self.dial(now, &label, fx);
            }
        }
    }

    /// True during the wait after a logout, before re-pairing is allowed.
    fn waiting_for_repair(&self, now: Instant) -> bool {
        self.repair_after.is_some_and(|t| now < t)
    }
}
