//! The webhook tables of keys.db: `webhook_queue` (events committed before they count as
//! handed over, removed after the receiver answered 2xx) and `webhook_dead` (events the
//! receiver refused or that failed for too long, kept for the operator to list and requeue).
//!
//! Order: `seq` grows across the whole queue; a session's head is its lowest `seq`, and the
//! deliverer sends only heads, so a session's events arrive in the order they were queued.
//! Times are unix milliseconds given by the caller. Every method blocks on disk I/O.

use rusqlite::{Row, params};

use super::keys::{KeyStore, KeysError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_queue (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session    TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    queued_at  INTEGER NOT NULL,
    next_at    INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_queue_order ON webhook_queue (session, seq);
CREATE TABLE IF NOT EXISTS webhook_dead (
    seq       INTEGER PRIMARY KEY,
    session   TEXT    NOT NULL,
    event     TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    attempts  INTEGER NOT NULL,
    queued_at INTEGER NOT NULL,
    dead_at   INTEGER NOT NULL,
    reason    TEXT    NOT NULL
);";

/// The name errors carry for the webhook tables (they are not one session's).
const SCOPE: &str = "(webhook queue)";

/// An event to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub session: String,
    /// `message`, `receipt` or `state`.
    pub event: String,
    /// The exact JSON body to POST.
    pub body: String,
}

/// A queued event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub seq: i64,
    pub session: String,
    pub event: String,
    pub body: String,
    /// Tries so far.
    pub attempts: u32,
    pub queued_at: u64,
    /// Not before this (unix ms).
    pub next_at: u64,
}

/// A dead-lettered event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeadDelivery {
    pub seq: i64,
    pub session: String,
    pub event: String,
    pub body: String,
    pub attempts: u32,
    pub queued_at: u64,
    pub dead_at: u64,
    /// Why: the receiver's status or the give-up time.
    pub reason: String,
}

fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn ms(r: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
}

fn queue_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        seq: r.get(0)?,
        session: r.get(1)?,
        event: r.get(2)?,
        body: r.get(3)?,
        attempts: r.get(4)?,
        queued_at: ms(r, 5)?,
        next_at: ms(r, 6)?,
    })
}

/// Queues `event` inside the caller's transaction (a message row and its webhook event
/// commit together).
pub(super) fn insert(
    tx: &rusqlite::Transaction<'_>,
    event: &NewDelivery,
    now_ms: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO webhook_queue (session, event, body, queued_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        event.session,
        event.event,
        event.body,
        sql_ms(now_ms)
    ])?;
    Ok(())
}

impl KeyStore {
    /// Queues `events` in order, in one transaction: durable when this returns.
    pub fn webhook_enqueue(&self, events: &[NewDelivery], now_ms: u64) -> Result<(), KeysError> {
        self.with(SCOPE, |conn| {
            let tx = conn.transaction()?;
            for e in events {
                insert(&tx, e, now_ms)?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Each session's head (its oldest queued event), oldest first.
    pub fn webhook_heads(&self) -> Result<Vec<Delivery>, KeysError> {
        self.with(SCOPE, |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT q.seq, q.session, q.event, q.body, q.attempts, q.queued_at, q.next_at \
                 FROM webhook_queue q JOIN (SELECT MIN(seq) AS seq FROM webhook_queue \
                 GROUP BY session) h ON q.seq = h.seq ORDER BY q.seq",
            )?;
            let rows = stmt.query_map([], queue_row)?;
            Ok(Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?))
        })
    }

    /// Events queued and not yet delivered or dead.
    pub fn webhook_depth(&self) -> Result<u64, KeysError> {
        self.with(SCOPE, |conn| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM webhook_queue", [], |r| r.get(0))?;
            Ok(Ok(u64::try_from(n).unwrap_or(0)))
        })
    }

    /// The receiver took event `seq`: it leaves the queue.
    pub fn webhook_delivered(&self, seq: i64) -> Result<(), KeysError> {
        self.with(SCOPE, |conn| {
            conn.execute("DELETE FROM webhook_queue WHERE seq = ?1", params![seq])?;
            Ok(Ok(()))
        })
    }

    /// Event `seq` failed once more: counted, and not tried again before `next_at`.
    pub fn webhook_retry_later(
        &self,
        seq: i64,
        next_at_ms: u64,
        error: &str,
    ) -> Result<(), KeysError> {
        self.with(SCOPE, |conn| {
            conn.execute(
                "UPDATE webhook_queue SET attempts = attempts + 1, next_at = ?2, last_error = ?3 \
                 WHERE seq = ?1",
                params![seq, sql_ms(next_at_ms), error],
            )?;
            Ok(Ok(()))
        })
    }

    /// Moves event `seq` to the dead letters with `reason`, in one transaction.
    pub fn webhook_bury(&self, seq: i64, reason: &str, now_ms: u64) -> Result<(), KeysError> {
        self.with(SCOPE, |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO webhook_dead \
                 (seq, session, event, body, attempts, queued_at, dead_at, reason) \
                 SELECT seq, session, event, body, attempts + 1, queued_at, ?2, ?3 \
                 FROM webhook_queue WHERE seq = ?1",
                params![seq, sql_ms(now_ms), reason],
            )?;
            tx.execute("DELETE FROM webhook_queue WHERE seq = ?1", params![seq])?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// The newest `limit` dead letters (newest first) and how many there are in all.
    pub fn webhook_dead(&self, limit: u32) -> Result<(Vec<DeadDelivery>, u64), KeysError> {
        self.with(SCOPE, |conn| {
            let count: i64 =
                conn.query_row("SELECT COUNT(*) FROM webhook_dead", [], |r| r.get(0))?;
            let mut stmt = conn.prepare_cached(
                "SELECT seq, session, event, body, attempts, queued_at, dead_at, reason \
                 FROM webhook_dead ORDER BY seq DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |r| {
                Ok(DeadDelivery {
                    seq: r.get(0)?,
                    session: r.get(1)?,
                    event: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get(4)?,
                    queued_at: ms(r, 5)?,
                    dead_at: ms(r, 6)?,
                    reason: r.get(7)?,
                })
            })?;
            let list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Ok((list, u64::try_from(count).unwrap_or(0))))
        })
    }

    /// Requeues the dead letters `seqs` (all of them when `None`), in their old order at the
    /// end of the queue, with fresh tries; answers how many were requeued.
    pub fn webhook_redeliver(&self, seqs: Option<&[i64]>, now_ms: u64) -> Result<u64, KeysError> {
        self.with(SCOPE, |conn| {
            let tx = conn.transaction()?;
            let chosen: Vec<i64> = match seqs {
                Some(seqs) => seqs.to_vec(),
                None => {
                    let mut stmt = tx.prepare("SELECT seq FROM webhook_dead ORDER BY seq")?;
                    let rows = stmt.query_map([], |r| r.get(0))?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()?
                }
            };
            let mut moved = 0u64;
            for seq in chosen {
                let n = tx.execute(
                    "INSERT INTO webhook_queue (session, event, body, queued_at) \
                     SELECT session, event, body, ?2 FROM webhook_dead WHERE seq = ?1",
                    params![seq, sql_ms(now_ms)],
                )?;
                tx.execute("DELETE FROM webhook_dead WHERE seq = ?1", params![seq])?;
                moved += n as u64;
            }
            tx.commit()?;
            Ok(Ok(moved))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn event(session: &str, n: u32) -> NewDelivery {
        NewDelivery {
            session: session.into(),
            event: "message".into(),
            body: format!("{{\"n\":{n}}}"),
        }
    }

    #[test]
    fn heads_are_each_sessions_oldest_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::in_data_dir(dir.path());
        keys.webhook_enqueue(&[event("a", 1), event("b", 1), event("a", 2)], 5)
            .unwrap();
        drop(keys);
        let keys = KeyStore::in_data_dir(dir.path());
        let heads = keys.webhook_heads().unwrap();
        let bodies: Vec<(&str, &str)> = heads
            .iter()
            .map(|d| (d.session.as_str(), d.body.as_str()))
            .collect();
        assert_eq!(bodies, [("a", "{\"n\":1}"), ("b", "{\"n\":1}")]);
        keys.webhook_delivered(heads[0].seq).unwrap();
        let heads = keys.webhook_heads().unwrap();
        assert_eq!(heads[1].body, "{\"n\":2}");
        assert_eq!(keys.webhook_depth().unwrap(), 2);
    }

    #[test]
    fn a_buried_event_is_listed_and_requeued_once() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::in_data_dir(dir.path());
        keys.webhook_enqueue(&[event("a", 1), event("a", 2)], 5)
            .unwrap();
        let head = keys.webhook_heads().unwrap().remove(0);
        keys.webhook_retry_later(head.seq, 100, "500").unwrap();
        keys.webhook_bury(head.seq, "the receiver answered 400", 200)
            .unwrap();
        let (dead, count) = keys.webhook_dead(10).unwrap();
        assert_eq!((count, dead[0].attempts), (1, 2));
        assert_eq!(dead[0].reason, "the receiver answered 400");
        assert_eq!(keys.webhook_heads().unwrap()[0].body, "{\"n\":2}");
        assert_eq!(keys.webhook_redeliver(None, 300).unwrap(), 1);
        assert_eq!(keys.webhook_redeliver(None, 300).unwrap(), 0);
        assert_eq!(keys.webhook_dead(10).unwrap().1, 0);
        assert_eq!(keys.webhook_depth().unwrap(), 2);
    }

    /// A message row and its webhook event commit together: with the webhook insert made to
    /// fail after the message row was written (a trigger aborting it, as a full disk or a
    /// crash between the two statements would), neither is kept; without it, both are.
    #[test]
    fn a_message_row_and_its_webhook_event_appear_or_vanish_together() {
        use crate::store::outbox::{Direction, InboxEntry, NewMessage, OutStatus};
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::in_data_dir(dir.path());
        let msg = NewMessage {
            id: "OUT1".into(),
            to: "15550001111@s.whatsapp.net".into(),
            text: "hi".into(),
            key: None,
        };
        keys.outbox_enqueue("s", &msg, 1, 1000).unwrap();
        let side =
            rusqlite::Connection::open(dir.path().join(crate::store::keys::KEYS_DB)).unwrap();
        side.execute_batch(
            "CREATE TRIGGER fail_hook BEFORE INSERT ON webhook_queue \
             BEGIN SELECT RAISE(ABORT, 'simulated failure'); END;",
        )
        .unwrap();
        let entry = InboxEntry {
            id: "IN1".into(),
            from: "15550002222:1@s.whatsapp.net".into(),
            chat: "15550002222@s.whatsapp.net".into(),
            kind: "text".into(),
            text: Some("hello".into()),
            time: 1_700_000_000,
        };
        let peer = "15550002222@s.whatsapp.net";
        let (hook_in, hook_out) = (event("s", 1), event("s", 2));
        let sent = (OutStatus::Sent, None);
        assert!(
            keys.inbox_record("s", (peer, &entry), 10, &[], Some((&hook_in, 5)))
                .is_err()
        );
        assert!(
            keys.outbox_advance("s", "OUT1", sent, Some(&hook_out), 5)
                .is_err()
        );
        assert!(
            keys.messages_recent("s", Direction::In, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            keys.outbox_get("s", "OUT1").unwrap().unwrap().status,
            OutStatus::Queued
        );
        assert_eq!(keys.webhook_depth().unwrap(), 0);

        side.execute_batch("DROP TRIGGER fail_hook;").unwrap();
        assert!(
            keys.inbox_record("s", (peer, &entry), 10, &[], Some((&hook_in, 5)))
                .unwrap()
        );
        let row = keys
            .outbox_advance("s", "OUT1", sent, Some(&hook_out), 6)
            .unwrap();
        assert_eq!(row.unwrap().status, OutStatus::Sent);
        assert_eq!(
            keys.messages_recent("s", Direction::In, 10).unwrap().len(),
            1
        );
        let bodies: Vec<String> = keys
            .webhook_heads()
            .unwrap()
            .into_iter()
            .map(|d| d.body)
            .collect();
        assert_eq!(
            bodies,
            ["{\"n\":1}"],
            "the session's head is the message's event"
        );
        assert_eq!(keys.webhook_depth().unwrap(), 2);
        // A redelivered message or an unchanged status queues nothing more.
        assert!(
            !keys
                .inbox_record("s", (peer, &entry), 10, &[], Some((&hook_in, 7)))
                .unwrap()
        );
        assert!(
            keys.outbox_advance("s", "OUT1", sent, Some(&hook_out), 7)
                .unwrap()
                .is_none()
        );
        assert_eq!(keys.webhook_depth().unwrap(), 2);
    }
}
