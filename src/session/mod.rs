//! One session's life as data: a pure state machine (`Session::handle(now, event) -> effects`),
//! the disconnect policy, backoff and the timeline. No I/O and no clock here.

pub mod policy;
pub mod status;
