//! The console's pairing by phone number: `P` opens a dialog for the selected session that
//! takes the phone number as typed text; Enter sends `Order::PairCode`, and the pool's answer
//! (the 8-character code and its lifetime) opens a dialog that shows it until Esc or Enter.
//! Read-only consoles refuse.

use std::time::Instant;

use super::dialog::{self, LineKey, edit_line};
use super::keymap::{Action, Key};
use super::link::{Order, Request};
use super::model::{Confirm, Mode, Model};
use crate::wa::pair_code::{LinkCode, phone_digits};

/// Opens the phone-number dialog for the selected session.
pub(super) fn ask(model: &mut Model, now: Instant) {
    dialog::for_selected(model, "pairing", now, |id| {
        Mode::Confirm(Confirm::PairPhone {
            id,
            typed: String::new(),
        })
    });
}

/// A key in either pairing dialog.
pub(super) fn on_key(
    model: &mut Model,
    key: Key,
    action: Option<Action>,
    now: Instant,
) -> Vec<Request> {
    let Mode::Confirm(confirm) = &mut model.mode else {
        return Vec::new();
    };
    let (id, phone) = match confirm {
        Confirm::PairPhone { id, typed: phone } => (id, phone),
        Confirm::PairCode { .. } => {
            if matches!(action, Some(Action::Cancel | Action::Confirm)) {
                model.mode = Mode::Normal;
            }
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let LineKey::Action(action) = edit_line(phone, key, action) else {
        return Vec::new();
    };
    match action {
        Action::Cancel => {
            model.mode = Mode::Normal;
            model.say("pairing by code cancelled", now);
        }
        Action::Confirm => match phone_digits(phone) {
            Ok(_) => {
                let (session, phone) = (id.clone(), phone.clone());
                model.say(format!("asking {session} for a pairing code…"), now);
                model.mode = Mode::Normal;
                return vec![Request {
                    session,
                    order: Order::PairCode { phone },
                }];
            }
            Err(e) => model.refuse(e.to_string(), now),
        },
        _ => {}
    }
    Vec::new()
}

/// The pool answered a code: show it (replacing whatever dialog was open).
pub(super) fn shown(model: &mut Model, session: String, code: LinkCode, expires_at: Instant) {
    model.mode = Mode::Confirm(Confirm::PairCode {
        id: session,
        code,
        expires_at,
    });
}
