//! wasp: WhatsApp Session Pool. Library crate behind the `wasp` binary.
//!
//! Layers point one way: `wa` (protocol, no I/O) <- `session` (pure state machine)
//! <- `net` / `store` (tokio, files) <- `ui` / `http` / `sim` <- `main.rs`.

pub mod attach;
pub mod bench;
pub mod cluster;
pub mod config;
pub mod console;
pub mod descriptors;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod message_feed;
pub mod net;
pub mod runner;
pub mod session;
pub mod sim;
pub mod store;
pub mod ui;
pub mod wa;
pub mod webhook;
