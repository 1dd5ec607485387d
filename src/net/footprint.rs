//! What one idle session costs in channel memory. Each tokio mpsc channel allocates its first
//! block of 32 slots when it is made, so the size of the type it carries, times 32, is held
//! for the session's whole life even when nothing is ever sent; the large payloads travel
//! boxed so these stay small (issue 15's per-session RSS target).

use std::mem::size_of;

use super::conn::{Command, ConnEvent};
use super::driver::{Background, DriverMsg};
use super::link::LinkEvent;
use super::messages::MessengerMsg;

#[test]
fn the_types_sessions_queue_stay_small() {
    let sizes = [
        ("conn::Command", size_of::<Command>()),
        ("ConnEvent", size_of::<ConnEvent>()),
        ("driver::Background", size_of::<Background>()),
        ("DriverMsg", size_of::<DriverMsg>()),
        ("(u64, LinkEvent)", size_of::<(u64, LinkEvent)>()),
        ("MessengerMsg", size_of::<MessengerMsg>()),
    ];
    eprintln!("{sizes:?}");
    for (name, size) in sizes {
        assert!(size <= 48, "{name} is {size} bytes: box its large variants");
    }
}
