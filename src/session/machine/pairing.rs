//! Pairing: the QR codes the server offered, shown one after another until scanned or
//! exhausted (never looping on our own).

use std::time::Instant;

use super::super::effect::Effect;
use super::super::event::{ConnId, TimerKind};
use super::super::reason::StopReason;
use super::super::state::State;
use super::super::status::QrText;
use super::{FIRST_QR_TTL, NEXT_QR_TTL, Session};

impl Session {
    pub(super) fn on_refs(
        &mut self,
        now: Instant,
        conn: ConnId,
        codes: Vec<QrText>,
        fx: &mut Vec<Effect>,
    ) {
        if !self.is_live(conn) || codes.is_empty() || self.closing() {
            return;
        }
        if !matches!(
            self.state,
            State::Handshaking { .. } | State::Connecting { .. }
        ) {
            return;
        }
        self.disarm(TimerKind::ConnectTimeout);
        let count = codes.len();
        let expires_at = now + FIRST_QR_TTL;
        self.arm(TimerKind::QrExpiry, expires_at, fx);
        fx.push(Effect::ShowQr {
            index: 1,
            count: count as u32,
            expires_at,
        });
        let state = State::Pairing {
            conn,
            codes,
            index: 0,
            expires_at,
        };
        self.enter(now, state, "qr", Some(format!("ref 1/{count}")), fx);
    }

    pub(super) fn next_qr(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let State::Pairing {
            codes,
            index,
            expires_at,
            ..
        } = &mut self.state
        else {
            return;
        };
        let next = *index + 1;
        let count = codes.len();
        if next < count {
            let at = now + NEXT_QR_TTL;
            *index = next;
            *expires_at = at;
            self.arm(TimerKind::QrExpiry, at, fx);
            fx.push(Effect::ShowQr {
                index: next as u32 + 1,
                count: count as u32,
                expires_at: at,
            });
        } else {
            self.close_live("pairing timed out", fx);
            let state = State::Stopped {
                reason: StopReason::PairingTimedOut,
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
}
