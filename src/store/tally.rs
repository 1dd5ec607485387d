//! Per-minute message counts of one session read back from keys.db (messages the server
//! acked, delivered ones, received ones), so a restarted messenger shows the last hour's
//! figures at once. Bounded by what the table keeps (`[messages] keep` per direction).

use rusqlite::{Connection, params};

use super::keys::{KeyStore, KeysError};
use super::outbox::{OutboxEntry, queued_on};

/// What a count is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// The server acked a message we sent.
    Sent,
    /// A message we sent reached the recipient (a read one was delivered too).
    Delivered,
    /// A message reached us.
    Received,
}

impl Counted {
    pub const ALL: [Counted; 3] = [Counted::Sent, Counted::Delivered, Counted::Received];

    pub fn index(self) -> usize {
        match self {
            Counted::Sent => 0,
            Counted::Delivered => 1,
            Counted::Received => 2,
        }
    }
}

/// Counts per minute of `column` for one session and direction since a time.
///
/// Grouped outside an unflattened subquery (`LIMIT -1`): grouped directly, SQLite marks the
/// session parameter as one that may change the plan and compiles the statement again each
/// time a different session binds it, which made every session's start parse three queries.
fn minutes_sql(column: &str) -> String {
    format!(
        "SELECT minute, COUNT(*) FROM (SELECT {column} / 60000 AS minute FROM messages \
         WHERE session = ?1 AND direction = ?2 AND kind != 'probe' AND {column} >= ?3 \
         LIMIT -1) GROUP BY minute"
    )
}

/// What a messenger reads at its start ([`KeyStore::messenger_start`]).
#[derive(Debug)]
pub struct MessengerStart {
    /// `(what, unix minute, count)` for every minute of the window that has any.
    pub minutes: Vec<Minute>,
    /// Every queued message ([`KeyStore::outbox_queued`] from the start).
    pub queued: Vec<OutboxEntry>,
    /// The session has any message of ours in the outbox, in whatever state: without one, a
    /// receipt can only be for another client's message.
    pub has_outgoing: bool,
}

impl KeyStore {
    /// What a messenger reads at its start, in one read transaction (one begin and end
    /// instead of one per statement), the minutes counted from `since_ms`.
    pub fn messenger_start(
        &self,
        session: &str,
        since_ms: u64,
    ) -> Result<MessengerStart, KeysError> {
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            let minutes = minutes_on(&tx, session, since_ms)?;
            let queued = queued_on(&tx, session, 0)?;
            let has_outgoing = queued.is_empty().then(|| has_outgoing_on(&tx, session));
            let has_outgoing = has_outgoing.transpose()?.unwrap_or(true);
            tx.commit()?;
            Ok(Ok(MessengerStart {
                minutes,
                queued,
                has_outgoing,
            }))
        })
    }
}

fn has_outgoing_on(conn: &Connection, session: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE session = ?1 AND direction = 'out')",
    )?
    .query_row(params![session], |r| r.get(0))
}

/// `(what, unix minute, count)`.
pub type Minute = (Counted, u64, u32);

fn minutes_on(conn: &Connection, session: &str, since_ms: u64) -> rusqlite::Result<Vec<Minute>> {
    let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for (what, direction, column) in [
        (Counted::Sent, "out", "sent_at"),
        (Counted::Delivered, "out", "delivered_at"),
        (Counted::Received, "in", "queued_at"),
    ] {
        let mut stmt = conn.prepare_cached(&minutes_sql(column))?;
        let rows = stmt.query_map(params![session, direction, since], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (minute, count) = row?;
            out.push((
                what,
                u64::try_from(minute).unwrap_or(0),
                u32::try_from(count).unwrap_or(u32::MAX),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::store::outbox::{InboxEntry, NewMessage, OutStatus};

    fn message(id: &str) -> NewMessage {
        NewMessage {
            id: id.into(),
            to: "15550001111@s.whatsapp.net".into(),
            text: "t".into(),
            key: None,
        }
    }

    #[test]
    fn minutes_count_acks_deliveries_and_receipts_since_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        let minute = 60_000;
        for (id, acked_at, delivered_at) in [
            ("old", 10 * minute, None),
            ("A", 70 * minute, Some(71 * minute)),
            ("B", 70 * minute + 5, None),
        ] {
            store.outbox_enqueue("s", &message(id), 1, 1000).unwrap();
            store
                .outbox_advance("s", id, (OutStatus::Sent, None), None, acked_at)
                .unwrap();
            if let Some(at) = delivered_at {
                store
                    .outbox_advance("s", id, (OutStatus::Read, None), None, at)
                    .unwrap();
            }
        }
        let inbox = InboxEntry {
            id: "in1".into(),
            from: "15550002222@s.whatsapp.net".into(),
            chat: "15550002222@s.whatsapp.net".into(),
            kind: "text".into(),
            text: Some("hi".into()),
            time: 72 * 60,
        };
        store
            .inbox_record("s", ("15550002222@s.whatsapp.net", &inbox), 1000, &[], None)
            .unwrap();
        let start = store.messenger_start("s", 60 * minute).unwrap();
        assert!(start.queued.is_empty());
        assert!(
            start.has_outgoing,
            "acked and read messages are the session's own"
        );
        let mut got = start.minutes;
        got.sort_by_key(|(what, m, _)| (what.index(), *m));
        assert_eq!(
            got,
            [
                (Counted::Sent, 70, 2),
                (Counted::Delivered, 71, 1),
                (Counted::Received, 72, 1)
            ],
            "the message acked before the cut is not counted; a read one counts as delivered"
        );
        store
            .inbox_record(
                "other",
                ("15550002222@s.whatsapp.net", &inbox),
                1000,
                &[],
                None,
            )
            .unwrap();
        let other = store.messenger_start("other", 0).unwrap();
        assert_eq!(other.minutes.len(), 1, "its one received message");
        assert!(!other.has_outgoing, "a received message is not one of ours");

        // A queued message comes with the counts, as the pump would read it.
        store.outbox_enqueue("s", &message("Q"), 1, 1000).unwrap();
        let rows = store.messenger_start("s", 60 * minute).unwrap().queued;
        assert_eq!(rows, store.outbox_queued("s", 0).unwrap());
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["Q"]
        );
    }

    #[test]
    fn another_session_reuses_the_compiled_statements() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        for session in ["a", "b", "c", "d"] {
            store.messenger_start(session, 0).unwrap();
        }
        store
            .with("a", |conn| {
                for column in ["sent_at", "delivered_at", "queued_at"] {
                    let stmt = conn.prepare_cached(&minutes_sql(column))?;
                    let again = stmt.get_status(rusqlite::StatementStatus::RePrepare);
                    assert_eq!(again, 0, "{column}: compiled again for another session");
                }
                Ok(Ok(()))
            })
            .unwrap();
    }
}
