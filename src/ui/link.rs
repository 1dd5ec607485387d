//! The console's one seam to "a pool": updates come in, requests go out. The pool may run in
//! this process (`console`) or in another one reached over HTTP (`attach`); the console does
//! not know which.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

pub use super::messages::{MessageLine, Stage, Way};
pub use super::model::NodeLine;
use crate::session::Command;
use crate::session::status::Status;

/// One operator request for the pool. Bulk actions yield one request per session; the pool
/// staggers them through its connect rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub session: String,
    pub order: Order,
}

/// What a request asks of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// An operator command for the session's machine.
    Run(Command),
    /// Clustered: hand the session over to the named node (`POST /sessions/{id}/move`).
    Move { node: String },
    /// Pair by phone number: a code for this number (`POST /sessions/{id}/pair`).
    PairCode { phone: String },
    /// Queue a text from the session to `to` (`POST /sessions/{id}/messages`), `after` this
    /// long (marked rows are staggered).
    Send {
        to: String,
        text: String,
        after: Duration,
    },
    /// Read the session's kept messages, newest first (`GET /sessions/{id}/messages`).
    Recent,
}

impl Request {
    /// A command for one session.
    pub fn run(session: impl Into<String>, command: Command) -> Request {
        Request {
            session: session.into(),
            order: Order::Run(command),
        }
    }

    /// The command, when the request is one (a move is not).
    pub fn command(&self) -> Option<Command> {
        match self.order {
            Order::Run(command) => Some(command),
            _ => None,
        }
    }
}

/// What a pool tells the console, in order.
#[derive(Debug, Clone)]
pub enum PoolUpdate {
    /// These sessions changed (the newest snapshot of each).
    Changed(Vec<Status>),
    /// The whole fleet now: a session not in it is gone. Also ends an outage.
    Fleet(Vec<Status>),
    /// The pool cannot be reached (a remote pool only): since when, and why, in one sentence.
    Unreachable { since: SystemTime, why: String },
    /// The pool refused a request; the sentence says which and why.
    Refused(String),
    /// The pool answered a request; the sentence says how (`s07: sent to node-b`).
    Answered(String),
    /// Clustered: the live nodes with their heartbeats (replaces the last list).
    Nodes(Vec<NodeLine>),
    /// The code a pair-by-phone request got, shown to this console only.
    PairCode {
        session: String,
        code: crate::wa::pair_code::LinkCode,
        expires_at: std::time::Instant,
    },
    /// Messages handed over, received, or changed status (or read back from the store).
    Messages(Vec<MessageLine>),
}

impl From<Vec<Status>> for PoolUpdate {
    fn from(batch: Vec<Status>) -> Self {
        PoolUpdate::Changed(batch)
    }
}

/// The console's ends of a pool: updates in (bounded; the pool side coalesces while it is
/// full), requests out (bounded; the console queues in order while it is full).
#[derive(Debug)]
pub struct PoolLink {
    pub updates: mpsc::Receiver<PoolUpdate>,
    pub requests: mpsc::Sender<Request>,
}

/// How a console run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The operator quit (`q`), or SIGTERM: stop the pool.
    Quit,
    /// The operator detached (`D`): give the terminal back, keep the pool running.
    Detach,
    /// The terminal went away (SIGHUP, or it could not be read or written): touch it no more,
    /// keep the pool running.
    LostTerminal,
}
