//! One-row queries through the connection's prepared-statement cache: `Connection::query_row`
//! parses and plans its SQL on every call, which was a visible part of each session's start
//! (its message counters and outbox are read then) across a pool of thousands.

use rusqlite::{Connection, Params, Row};

/// How many prepared statements a connection keeps (rusqlite's default is 16; the store has
/// a few dozen distinct statements).
pub(super) const STATEMENTS_KEPT: usize = 64;

/// `query_row` with a cached statement.
pub(super) trait CachedRow {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl CachedRow for Connection {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}
