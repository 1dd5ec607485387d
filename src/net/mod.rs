//! The I/O side of a session: WebSocket transport, the Noise socket with request/response
//! matching, the per-session driver, the pool and the global connect rate limit.

pub mod board;
pub mod chan;
pub mod conn;
pub mod driver;
pub mod event_json;
pub mod footprint;
pub mod gate;
pub mod handle;
pub mod hooks;
pub mod inbound;
pub mod link;
pub mod messages;
pub mod metrics;
pub mod pool;
pub mod prekeys;
pub mod proxy;
pub mod ratelimit;
pub mod tasks;
pub mod tls;
pub mod transport;
pub mod upgrade;
pub mod vault;
pub mod version;
