//! One session's life as data: a pure state machine (`Session::handle(now, event) -> effects`),
//! the disconnect policy, backoff, the timeline and the timer queue. No I/O and no clock here.

pub mod backoff;
pub mod command;
pub mod effect;
pub mod event;
mod machine;
pub mod policy;
pub mod reason;
pub mod state;
pub mod status;
pub mod timeline;
pub mod timers;

pub use command::Command;
pub use effect::Effect;
pub use event::{ConnId, Event, TimerId, TimerKind};
pub use machine::{FIRST_QR_TTL, NEXT_QR_TTL, Session};
pub use state::State;
pub use timers::TimerQueue;
