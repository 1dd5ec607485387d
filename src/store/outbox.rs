//! The message table of keys.db: every session's outbox (messages handed to wasp, with their
//! id, status and times; committed before the caller hears back) and the messages it received
//! (kept so a message is reported once and so `GET …/messages?direction=in` works). Rows are
//! keyed by session, direction, id and peer; the newest `keep` of each session and direction
//! stay, queued ones always.
//!
//! Times are unix milliseconds given by the caller. Every method blocks on disk I/O.

use super::cached::CachedRow;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::keys::{KeyStore, KeysError};
use super::webhook_queue::NewDelivery;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    session      TEXT    NOT NULL,
    direction    TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    peer         TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    chat         TEXT    NOT NULL,
    sender       TEXT,
    kind         TEXT    NOT NULL,
    text         TEXT,
    status       TEXT    NOT NULL,
    error        TEXT,
    client_key   TEXT,
    queued_at    INTEGER NOT NULL,
    sent_at      INTEGER,
    delivered_at INTEGER,
    read_at      INTEGER,
    PRIMARY KEY (session, direction, id, peer)
);
CREATE INDEX IF NOT EXISTS messages_order ON messages (session, direction, seq);
CREATE UNIQUE INDEX IF NOT EXISTS messages_key ON messages (session, client_key) WHERE client_key IS NOT NULL;";

/// Where a message handed to wasp has got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutStatus {
    /// Durable, not yet acknowledged by the server (it is (re)sent while online).
    Queued,
    /// The server acked it.
    Sent,
    Delivered,
    Read,
    Failed,
}

impl OutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutStatus::Queued => "queued",
            OutStatus::Sent => "sent",
            OutStatus::Delivered => "delivered",
            OutStatus::Read => "read",
            OutStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> OutStatus {
        match text {
            "sent" => OutStatus::Sent,
            "delivered" => OutStatus::Delivered,
            "read" => OutStatus::Read,
            "failed" => OutStatus::Failed,
            _ => OutStatus::Queued,
        }
    }

    /// Order of progress; a failure ends a message that was not yet sent.
    fn rank(self) -> u8 {
        match self {
            OutStatus::Queued => 0,
            OutStatus::Sent => 1,
            OutStatus::Delivered => 2,
            OutStatus::Read => 3,
            OutStatus::Failed => 4,
        }
    }
}

/// One message of the outbox.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OutboxEntry {
    pub id: String,
    /// The chat: the recipient's bare JID.
    pub to: String,
    pub text: String,
    pub status: OutStatus,
    pub error: Option<String>,
    /// The caller's idempotency key.
    #[serde(skip)]
    pub key: Option<String>,
    /// Order of queueing within the session.
    #[serde(skip)]
    pub seq: i64,
    pub queued_at: u64,
    pub sent_at: Option<u64>,
    pub delivered_at: Option<u64>,
    pub read_at: Option<u64>,
}

/// A message to queue.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub to: String,
    pub text: String,
    pub key: Option<String>,
}

/// A message a session received and decrypted, as kept.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InboxEntry {
    pub id: String,
    /// The sending device's JID.
    pub from: String,
    pub chat: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    /// Unix seconds (the stanza's `t`).
    pub time: u64,
}

/// A kept message of either direction.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Kept {
    Out(OutboxEntry),
    In(InboxEntry),
}

/// Which messages a listing wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

const OUT_COLUMNS: &str =
    "id, chat, text, status, error, client_key, seq, queued_at, sent_at, delivered_at, read_at";

/// [`KeyStore::outbox_queued`] on a connection (or within a transaction) already held.
pub(super) fn queued_on(
    conn: &Connection,
    session: &str,
    after: i64,
) -> rusqlite::Result<Vec<OutboxEntry>> {
    let mut stmt = conn.prepare_cached(&queued_sql())?;
    let rows = stmt.query_map(params![session, after], out_row)?;
    let mut queued = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    queued.sort_unstable_by_key(|entry| entry.seq);
    Ok(queued)
}

/// A session's queued messages after a sequence number, sorted by the caller.
///
/// No `ORDER BY`: with one, SQLite marks the session parameter as one that may change the plan
/// and compiles the statement again whenever another session binds it, and every session asks
/// for its queue when it starts.
fn queued_sql() -> String {
    format!(
        "SELECT {OUT_COLUMNS} FROM messages WHERE session = ?1 AND direction = 'out' \
         AND status = 'queued' AND seq > ?2"
    )
}

/// SQLite integers are signed: times go in and out through these.
fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn ms_at(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    Ok(r.get::<_, Option<i64>>(i)?
        .map(|v| u64::try_from(v).unwrap_or(0)))
}

fn out_row(r: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: r.get(0)?,
        to: r.get(1)?,
        text: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        status: OutStatus::parse(&r.get::<_, String>(3)?),
        error: r.get(4)?,
        key: r.get(5)?,
        seq: r.get(6)?,
        queued_at: ms_at(r, 7)?.unwrap_or(0),
        sent_at: ms_at(r, 8)?,
        delivered_at: ms_at(r, 9)?,
        read_at: ms_at(r, 10)?,
    })
}

fn in_row(r: &Row<'_>) -> rusqlite::Result<InboxEntry> {
    Ok(InboxEntry {
        id: r.get(0)?,
        from: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        chat: r.get(2)?,
        kind: r.get(3)?,
        text: r.get(4)?,
        time: ms_at(r, 5)?.unwrap_or(0) / 1000,
    })
}

/// The next sequence number of `session`.
fn next_seq(tx: &rusqlite::Transaction<'_>, session: &str) -> rusqlite::Result<i64> {
    tx.cached_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session = ?1",
        params![session],
        |r| r.get(0),
    )
}

/// Drops the oldest rows of `session` and `direction` past the newest `keep`; queued
/// messages are never dropped.
fn prune(
    tx: &rusqlite::Transaction<'_>,
    session: &str,
    direction: Direction,
    keep: u32,
) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM messages WHERE session = ?1 AND direction = ?2 AND status != 'queued' \
         AND seq <= (SELECT seq FROM messages WHERE session = ?1 AND direction = ?2 \
                     ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
        params![session, direction.as_str(), keep],
    )?;
    Ok(())
}

impl KeyStore {
    /// Queues `msg` for `session`, durably, unless its key was given before: then the first
    /// message comes back and nothing is queued. The flag says whether it is new.
    pub fn outbox_enqueue(
        &self,
        session: &str,
        msg: &NewMessage,
        now_ms: u64,
        keep: u32,
    ) -> Result<(OutboxEntry, bool), KeysError> {
        self.enqueue_kind(session, msg, "text", (now_ms, keep))
    }

    /// Queues the probe `msg` for `session` (kind `probe`: sent like a text, left out of
    /// the listings).
    pub fn outbox_enqueue_probe(
        &self,
        session: &str,
        msg: &NewMessage,
        now_ms: u64,
        keep: u32,
    ) -> Result<(), KeysError> {
        self.enqueue_kind(session, msg, "probe", (now_ms, keep))
            .map(|_| ())
    }

    fn enqueue_kind(
        &self,
        session: &str,
        msg: &NewMessage,
        kind: &str,
        (now_ms, keep): (u64, u32),
    ) -> Result<(OutboxEntry, bool), KeysError> {
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            if let Some(key) = &msg.key {
                let earlier = tx
                    .cached_row(
                        &format!(
                            "SELECT {OUT_COLUMNS} FROM messages WHERE session = ?1 AND client_key = ?2"
                        ),
                        params![session, key],
                        out_row,
                    )
                    .optional()?;
                if let Some(earlier) = earlier {
                    return Ok(Ok((earlier, false)));
                }
            }
            let seq = next_seq(&tx, session)?;
            tx.execute(
                "INSERT INTO messages (session, direction, id, peer, seq, chat, kind, text, \
                 status, client_key, queued_at) VALUES (?1, 'out', ?2, ?3, ?4, ?3, ?8, ?5, \
                 'queued', ?6, ?7)",
                params![session, msg.id, msg.to, seq, msg.text, msg.key, sql_ms(now_ms), kind],
            )?;
            prune(&tx, session, Direction::Out, keep)?;
            tx.commit()?;
            Ok(Ok((
                OutboxEntry {
                    id: msg.id.clone(),
                    to: msg.to.clone(),
                    text: msg.text.clone(),
                    status: OutStatus::Queued,
                    error: None,
                    key: msg.key.clone(),
                    seq,
                    queued_at: now_ms,
                    sent_at: None,
                    delivered_at: None,
                    read_at: None,
                },
                true,
            )))
        })
    }

    /// The queued messages of `session` after sequence number `after`, oldest first.
    pub fn outbox_queued(&self, session: &str, after: i64) -> Result<Vec<OutboxEntry>, KeysError> {
        self.with(session, |conn| Ok(Ok(queued_on(conn, session, after)?)))
    }

    /// One outgoing message of `session`.
    pub fn outbox_get(&self, session: &str, id: &str) -> Result<Option<OutboxEntry>, KeysError> {
        self.with(session, |conn| {
            Ok(Ok(conn
                .cached_row(
                    &format!(
                        "SELECT {OUT_COLUMNS} FROM messages WHERE session = ?1 \
                         AND direction = 'out' AND id = ?2"
                    ),
                    params![session, id],
                    out_row,
                )
                .optional()?))
        })
    }

    /// Moves message `id` of `session` to `status` (with its time, and `error` for a
    /// failure) when that is further along; a failure only ends a message not yet sent.
    /// Answers the row after the change, `None` when nothing changed or the id is unknown.
    /// `hook`, the change's webhook event, is queued in the same transaction, only when the
    /// row changes.
    pub fn outbox_advance(
        &self,
        session: &str,
        id: &str,
        (status, error): (OutStatus, Option<&str>),
        hook: Option<&NewDelivery>,
        now_ms: u64,
    ) -> Result<Option<OutboxEntry>, KeysError> {
        let Some(before) = self.outbox_get(session, id)? else {
            return Ok(None);
        };
        let moves = match status {
            OutStatus::Failed => before.status == OutStatus::Queued,
            _ => before.status != OutStatus::Failed && status.rank() > before.status.rank(),
        };
        if !moves {
            return Ok(None);
        }
        let column = match status {
            OutStatus::Sent => Some("sent_at"),
            OutStatus::Delivered => Some("delivered_at"),
            OutStatus::Read => Some("read_at"),
            OutStatus::Queued | OutStatus::Failed => None,
        };
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE messages SET status = ?3, error = ?4 \
                 WHERE session = ?1 AND direction = 'out' AND id = ?2",
                params![session, id, status.as_str(), error],
            )?;
            if let Some(column) = column {
                // A receipt can overtake the server ack: every earlier time gets filled.
                for earlier in ["sent_at", "delivered_at", "read_at"] {
                    tx.execute(
                        &format!(
                            "UPDATE messages SET {earlier} = COALESCE({earlier}, ?3) \
                             WHERE session = ?1 AND direction = 'out' AND id = ?2"
                        ),
                        params![session, id, sql_ms(now_ms)],
                    )?;
                    if earlier == column {
                        break;
                    }
                }
            }
            if let Some(hook) = hook {
                super::webhook_queue::insert(&tx, hook, now_ms)?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })?;
        self.outbox_get(session, id)
    }

    /// Keeps a received message, in one transaction with `signal`, the ratchet writes of its
    /// decryption (so a crash cannot keep the advanced ratchet and lose the message); false
    /// when `session` already holds the id from that sender's account (`peer`, a bare JID): a
    /// resend or a redelivery, not a new message. `hook`, the message's webhook event and the
    /// time to queue it at, is queued in the same transaction, only for a new message.
    pub fn inbox_record(
        &self,
        session: &str,
        (peer, entry): (&str, &InboxEntry),
        keep: u32,
        signal: &[super::signal::SignalWrite],
        hook: Option<(&NewDelivery, u64)>,
    ) -> Result<bool, KeysError> {
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            super::signal::write_signal(&tx, session, signal)?;
            let seq = next_seq(&tx, session)?;
            let added = tx.execute(
                "INSERT OR IGNORE INTO messages (session, direction, id, peer, seq, chat, \
                 sender, kind, text, status, queued_at) \
                 VALUES (?1, 'in', ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'received', ?9)",
                params![
                    session,
                    entry.id,
                    peer,
                    seq,
                    entry.chat,
                    entry.from,
                    entry.kind,
                    entry.text,
                    sql_ms(entry.time.saturating_mul(1000))
                ],
            )?;
            prune(&tx, session, Direction::In, keep)?;
            if let Some((hook, now_ms)) = hook.filter(|_| added == 1) {
                super::webhook_queue::insert(&tx, hook, now_ms)?;
            }
            tx.commit()?;
            Ok(Ok(added == 1))
        })
    }

    /// The newest `limit` messages of `session` in `direction`, newest first.
    pub fn messages_recent(
        &self,
        session: &str,
        direction: Direction,
        limit: u32,
    ) -> Result<Vec<Kept>, KeysError> {
        self.with(session, |conn| {
            let kept = match direction {
                Direction::Out => {
                    let mut stmt = conn.prepare_cached(&format!(
                        "SELECT {OUT_COLUMNS} FROM messages WHERE session = ?1 \
                         AND direction = 'out' AND kind != 'probe' ORDER BY seq DESC LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params![session, limit], out_row)?;
                    rows.map(|r| r.map(Kept::Out))
                        .collect::<rusqlite::Result<Vec<_>>>()?
                }
                Direction::In => {
                    let mut stmt = conn.prepare_cached(
                        "SELECT id, sender, chat, kind, text, queued_at FROM messages \
                         WHERE session = ?1 AND direction = 'in' AND kind != 'probe' \
                         ORDER BY seq DESC LIMIT ?2",
                    )?;
                    let rows = stmt.query_map(params![session, limit], in_row)?;
                    rows.map(|r| r.map(Kept::In))
                        .collect::<rusqlite::Result<Vec<_>>>()?
                }
            };
            Ok(Ok(kept))
        })
    }
}

/// Removes every message row of `session` (with its other keys.db rows).
pub(super) fn remove_session_rows(
    tx: &rusqlite::Transaction<'_>,
    session: &str,
) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM messages WHERE session = ?1", params![session])?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn msg(id: &str, key: Option<&str>) -> NewMessage {
        NewMessage {
            id: id.into(),
            to: "15550001111@s.whatsapp.net".into(),
            text: format!("text {id}"),
            key: key.map(str::to_string),
        }
    }

    #[test]
    fn a_queued_message_survives_a_reopen_and_a_key_returns_the_first() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = KeyStore::in_data_dir(dir.path());
            let (first, new) = store
                .outbox_enqueue("s", &msg("A", Some("k")), 10, 1000)
                .unwrap();
            assert!(new && first.status == OutStatus::Queued);
            let (again, new) = store
                .outbox_enqueue("s", &msg("B", Some("k")), 20, 1000)
                .unwrap();
            assert!(!new);
            assert_eq!(again.id, "A", "the same key is the first message");
            store
                .outbox_enqueue("s", &msg("C", None), 30, 1000)
                .unwrap();
        }
        let store = KeyStore::in_data_dir(dir.path());
        let queued = store.outbox_queued("s", 0).unwrap();
        let ids: Vec<&str> = queued.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["A", "C"], "B was never queued; order kept");
        assert_eq!(store.outbox_queued("s", queued[0].seq).unwrap().len(), 1);
        assert!(store.outbox_queued("other", 0).unwrap().is_empty());
    }

    #[test]
    fn every_session_reads_its_queue_with_the_same_compiled_statement() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        for session in ["a", "b", "c", "d"] {
            for id in ["1", "2", "3"] {
                store
                    .outbox_enqueue(session, &msg(id, None), 10, 1000)
                    .unwrap();
            }
            let ids: Vec<String> = store
                .outbox_queued(session, 0)
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(ids, ["1", "2", "3"], "{session}: queue order");
        }
        store
            .with("a", |conn| {
                let stmt = conn.prepare_cached(&queued_sql())?;
                let again = stmt.get_status(rusqlite::StatementStatus::RePrepare);
                assert_eq!(again, 0, "compiled again for another session");
                Ok(Ok(()))
            })
            .unwrap();
    }

    #[test]
    fn statuses_move_forward_only_and_fill_their_times() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        store.outbox_enqueue("s", &msg("A", None), 1, 1000).unwrap();
        let read = store
            .outbox_advance("s", "A", (OutStatus::Read, None), None, 5)
            .unwrap()
            .unwrap();
        assert_eq!(read.status, OutStatus::Read);
        assert_eq!(
            (read.sent_at, read.delivered_at, read.read_at),
            (Some(5), Some(5), Some(5)),
            "a read receipt before the ack fills every earlier time"
        );
        assert_eq!(
            store
                .outbox_advance("s", "A", (OutStatus::Sent, None), None, 6)
                .unwrap(),
            None,
            "never backwards"
        );
        assert_eq!(
            store
                .outbox_advance("s", "A", (OutStatus::Failed, Some("x")), None, 6)
                .unwrap(),
            None,
            "a sent message does not fail afterwards"
        );
        store.outbox_enqueue("s", &msg("B", None), 1, 1000).unwrap();
        let failed = store
            .outbox_advance("s", "B", (OutStatus::Failed, Some("expired")), None, 7)
            .unwrap()
            .unwrap();
        assert_eq!(failed.error.as_deref(), Some("expired"));
        assert!(store.outbox_queued("s", 0).unwrap().is_empty());
    }

    #[test]
    fn received_ids_are_kept_once_per_sender_and_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        let entry = |id: &str| InboxEntry {
            id: id.into(),
            from: "15550002222:3@s.whatsapp.net".into(),
            chat: "15550002222@s.whatsapp.net".into(),
            kind: "text".into(),
            text: Some("hi".into()),
            time: 1_700_000_000,
        };
        let peer = "15550002222@s.whatsapp.net";
        assert!(
            store
                .inbox_record("s", (peer, &entry("X")), 3, &[], None)
                .unwrap()
        );
        assert!(
            !store
                .inbox_record("s", (peer, &entry("X")), 3, &[], None)
                .unwrap(),
            "once"
        );
        assert!(
            store
                .inbox_record("s", ("other@s.whatsapp.net", &entry("X")), 3, &[], None)
                .unwrap()
        );
        for id in ["Y", "Z", "W"] {
            store
                .inbox_record("s", (peer, &entry(id)), 3, &[], None)
                .unwrap();
        }
        let recent = store.messages_recent("s", Direction::In, 10).unwrap();
        let ids: Vec<String> = recent
            .iter()
            .map(|k| match k {
                Kept::In(e) => e.id.clone(),
                Kept::Out(e) => e.id.clone(),
            })
            .collect();
        assert_eq!(ids, ["W", "Z", "Y"], "newest first, three kept");
        // Queued messages are never pruned.
        for i in 0..5 {
            store
                .outbox_enqueue("s", &msg(&i.to_string(), None), 1, 2)
                .unwrap();
        }
        assert_eq!(store.outbox_queued("s", 0).unwrap().len(), 5);
        store.remove_session("s").unwrap();
        assert!(
            store
                .messages_recent("s", Direction::Out, 10)
                .unwrap()
                .is_empty()
        );
    }
}
