//! The key database `<data_dir>/keys.db`: one SQLite file (WAL, `synchronous=FULL`) for every
//! session's one-time pre-keys and their next-id counter, rows keyed by session id. The Signal
//! records and the device-list cache live in the same file (`signal.rs`), and so do the
//! outbox and the received messages (`outbox.rs`).
//!
//! Crash safety: keys are generated and committed (fsynced) before they are uploaded, and
//! stay marked "not uploaded" until the server confirmed the upload. A crash in between
//! hands the same ids out again on the next start; the counter only grows, so an id is never
//! given to two different keys.
//!
//! Every method blocks on disk I/O: async callers run it in `spawn_blocking`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::cached::CachedRow;
use rusqlite::{Connection, OptionalExtension, params};

use crate::wa::creds::{KeyPair, SecretKey};
use crate::wa::prekey::{MAX_ID, PreKey};

/// The file name under the data directory.
pub const KEYS_DB: &str = "keys.db";

/// Why the key database failed; each names the file and, where there is one, the session.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("could not open the key database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("key database {} failed for session {session}: {source}", path.display())]
    Query {
        path: PathBuf,
        session: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("key database {} holds a damaged pre-key {id} for session {session}", path.display())]
    Damaged {
        path: PathBuf,
        session: String,
        id: u32,
    },
    #[error("the key database {} is unusable after an earlier failure", path.display())]
    Poisoned { path: PathBuf },
    #[error(
        "session {session}: the key store change was not written to Redis, so nothing was committed: {detail}"
    )]
    Mirror { session: String, detail: String },
}

/// Pre-key counts of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCounts {
    /// Keys held (uploaded or not).
    pub stored: u32,
    /// Keys the server confirmed.
    pub uploaded: u32,
    /// The id the next new key gets.
    pub next_id: u32,
}

/// The key database; opened on first use. `Debug` shows the path only.
pub struct KeyStore {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
    /// `credentials = "redis"`: every session's changes written through to Redis.
    mirror: Option<Arc<super::mirror::Mirror>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish()
    }
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS prekeys (
    session  TEXT    NOT NULL,
    id       INTEGER NOT NULL,
    public   BLOB    NOT NULL,
    private  BLOB    NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session, id)
);
CREATE TABLE IF NOT EXISTS prekey_counter (
    session TEXT    PRIMARY KEY,
    next_id INTEGER NOT NULL
);";

impl KeyStore {
    /// The database `<data_dir>/keys.db` (created on first use, mode 0600).
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::at(data_dir.join(KEYS_DB))
    }

    /// The database at `path`.
    pub fn at(path: PathBuf) -> Self {
        KeyStore {
            path,
            conn: Mutex::new(None),
            mirror: None,
        }
    }

    /// The same store with every per-session change written through to Redis first (see
    /// [`super::mirror`]).
    pub fn mirrored(mut self, mirror: Option<Arc<super::mirror::Mirror>>) -> Self {
        self.mirror = mirror;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<Connection, KeysError> {
        let fail = |source| KeysError::Open {
            path: self.path.clone(),
            source,
        };
        create_private(&self.path);
        let mut conn = Connection::open(&self.path).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(fail)?;
        conn.set_prepared_statement_cache_capacity(super::cached::STATEMENTS_KEPT);
        conn.execute_batch(SCHEMA).map_err(fail)?;
        conn.execute_batch(super::signal::SCHEMA).map_err(fail)?;
        conn.execute_batch(super::app_state_keys::SCHEMA)
            .map_err(fail)?;
        conn.execute_batch(super::outbox::SCHEMA).map_err(fail)?;
        conn.execute_batch(super::webhook_queue::SCHEMA)
            .map_err(fail)?;
        if let Some(mirror) = &self.mirror {
            mirror.install(&mut conn).map_err(fail)?;
        }
        Ok(conn)
    }

    /// Runs `f` on the open connection (opening it first), mapping errors to `session`.
    pub(super) fn with<T>(
        &self,
        session: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<Result<T, KeysError>>,
    ) -> Result<T, KeysError> {
        let mut guard = self.conn.lock().map_err(|_| KeysError::Poisoned {
            path: self.path.clone(),
        })?;
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(KeysError::Poisoned {
                path: self.path.clone(),
            });
        };
        let Some(mirror) = &self.mirror else {
            return f(conn).map_err(|source| KeysError::Query {
                path: self.path.clone(),
                session: session.to_string(),
                source,
            })?;
        };
        mirror.sync(conn, session)?;
        let result = f(conn).map_err(|source| KeysError::Query {
            path: self.path.clone(),
            session: session.to_string(),
            source,
        });
        // A commit Redis refused surfaces as that refusal, not as SQLite's rollback.
        if let Some(refused) = mirror.take_failure() {
            return Err(refused);
        }
        result?
    }

    /// `n` keys to upload for `session`: first those stored but never confirmed (the same ids
    /// again after a crash), then new ones, written durably in one transaction before this
    /// returns.
    pub fn keys_to_upload(&self, session: &str, n: u32) -> Result<Vec<PreKey>, KeysError> {
        let path = self.path.clone();
        // Made before taking the database, so sessions generate in parallel; after a crash
        // the unconfirmed keys come first and some of these go unused.
        let mut fresh: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate()).collect();
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            let mut keys = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, private FROM prekeys WHERE session = ?1 AND uploaded = 0 \
                     ORDER BY id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![session, n], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?))
                })?;
                for row in rows {
                    let (id, private) = row?;
                    match prekey_from_row(id, &private) {
                        Some(key) => keys.push(key),
                        None => {
                            return Ok(Err(KeysError::Damaged {
                                path,
                                session: session.to_string(),
                                id,
                            }));
                        }
                    }
                }
            }
            let mut next = next_id(&tx, session)?;
            while (keys.len() as u32) < n {
                let id = next;
                next = if next >= MAX_ID { 1 } else { next + 1 };
                let taken: bool = tx
                    .cached_row(
                        "SELECT 1 FROM prekeys WHERE session = ?1 AND id = ?2",
                        params![session, id],
                        |_| Ok(true),
                    )
                    .optional()?
                    .unwrap_or(false);
                if taken {
                    continue; // wrapped around onto a key still held: skip it
                }
                let key = PreKey {
                    id,
                    key_pair: fresh.pop().unwrap_or_else(KeyPair::generate),
                };
                tx.execute(
                    "INSERT INTO prekeys (session, id, public, private, uploaded) \
                     VALUES (?1, ?2, ?3, ?4, 0)",
                    params![
                        session,
                        id,
                        key.key_pair.public.as_slice(),
                        key.key_pair.private.expose().as_slice()
                    ],
                )?;
                keys.push(key);
            }
            tx.execute(
                "INSERT INTO prekey_counter (session, next_id) VALUES (?1, ?2) \
                 ON CONFLICT(session) DO UPDATE SET next_id = excluded.next_id",
                params![session, next],
            )?;
            tx.commit()?;
            Ok(Ok(keys))
        })
    }

    /// Records that the server accepted the upload of `ids`.
    pub fn mark_uploaded(&self, session: &str, ids: &[u32]) -> Result<(), KeysError> {
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE prekeys SET uploaded = 1 WHERE session = ?1 AND id = ?2",
                )?;
                for id in ids {
                    stmt.execute(params![session, id])?;
                }
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Removes and returns the pre-key `id` of `session`, when a peer's pkmsg consumed it;
    /// `None` when it is not held (used already or never made).
    pub fn take_prekey(&self, session: &str, id: u32) -> Result<Option<PreKey>, KeysError> {
        let path = self.path.clone();
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            let private: Option<Vec<u8>> = tx
                .cached_row(
                    "SELECT private FROM prekeys WHERE session = ?1 AND id = ?2",
                    params![session, id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(private) = private else {
                return Ok(Ok(None));
            };
            tx.execute(
                "DELETE FROM prekeys WHERE session = ?1 AND id = ?2",
                params![session, id],
            )?;
            tx.commit()?;
            Ok(prekey_from_row(id, &private)
                .map(Some)
                .ok_or(KeysError::Damaged {
                    path,
                    session: session.to_string(),
                    id,
                }))
        })
    }

    /// The pre-key `id` of `session` without removing it (a pkmsg names it; the decrypt's
    /// changes remove it in the same transaction as the new session).
    pub fn prekey(&self, session: &str, id: u32) -> Result<Option<PreKey>, KeysError> {
        let path = self.path.clone();
        self.with(session, |conn| {
            let private: Option<Vec<u8>> = conn
                .cached_row(
                    "SELECT private FROM prekeys WHERE session = ?1 AND id = ?2",
                    params![session, id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(match private {
                None => Ok(None),
                Some(p) => prekey_from_row(id, &p).map(Some).ok_or(KeysError::Damaged {
                    path,
                    session: session.to_string(),
                    id,
                }),
            })
        })
    }

    /// How many keys `session` holds and its next id.
    pub fn counts(&self, session: &str) -> Result<KeyCounts, KeysError> {
        self.with(session, |conn| {
            let (stored, uploaded) = conn.cached_row(
                "SELECT COUNT(*), COALESCE(SUM(uploaded), 0) FROM prekeys WHERE session = ?1",
                params![session],
                |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?)),
            )?;
            let next_id = next_id(conn, session)?;
            Ok(Ok(KeyCounts {
                stored,
                uploaded,
                next_id,
            }))
        })
    }

    /// Removes every key, the counter and every Signal record of `session` (wipe, logout with
    /// wipe), in one transaction.
    pub fn remove_session(&self, session: &str) -> Result<(), KeysError> {
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM prekeys WHERE session = ?1", params![session])?;
            tx.execute(
                "DELETE FROM prekey_counter WHERE session = ?1",
                params![session],
            )?;
            super::signal::remove_session_rows(&tx, session)?;
            super::app_state_keys::remove_session_rows(&tx, session)?;
            super::outbox::remove_session_rows(&tx, session)?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }
}

/// The next id to hand out (1 for a session never seen; Baileys starts at 1 as well).
fn next_id(conn: &Connection, session: &str) -> rusqlite::Result<u32> {
    Ok(conn
        .cached_row(
            "SELECT next_id FROM prekey_counter WHERE session = ?1",
            params![session],
            |r| r.get::<_, u32>(0),
        )
        .optional()?
        .unwrap_or(1))
}

/// A one-time pre-key from its row (`None` when the stored private key is not 32 bytes).
pub(crate) fn prekey_from_row(id: u32, private: &[u8]) -> Option<PreKey> {
    let bytes: [u8; 32] = private.try_into().ok()?;
    Some(PreKey {
        id,
        key_pair: KeyPair::from_private(SecretKey::from_bytes(bytes)),
    })
}

/// The database holds private keys: owner-only like the credentials (directory 0700, file
/// 0600, created so before SQLite opens it; its `-wal` and `-shm` files take the same mode).
pub(super) fn create_private(path: &Path) {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn ids(keys: &[PreKey]) -> Vec<u32> {
        keys.iter().map(|k| k.id).collect()
    }

    #[test]
    fn a_crash_before_the_upload_hands_out_the_same_ids_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = KeyStore::in_data_dir(dir.path());
            store.keys_to_upload("s1", 812).unwrap()
            // dropped here without mark_uploaded: the "crash"
        };
        assert_eq!(ids(&first), (1..=812).collect::<Vec<_>>());
        let store = KeyStore::in_data_dir(dir.path());
        let again = store.keys_to_upload("s1", 812).unwrap();
        assert_eq!(again, first, "same ids and the same keys");
        store.mark_uploaded("s1", &ids(&again)).unwrap();
        let refill = store.keys_to_upload("s1", 50).unwrap();
        assert_eq!(ids(&refill), (813..=862).collect::<Vec<_>>());
        let counts = store.counts("s1").unwrap();
        assert_eq!(
            counts,
            KeyCounts {
                stored: 862,
                uploaded: 812,
                next_id: 863
            }
        );
        // Other sessions have their own counters.
        assert_eq!(ids(&store.keys_to_upload("s2", 2).unwrap()), [1, 2]);
    }

    #[test]
    fn take_prekey_removes_it_and_the_counter_never_reuses_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        let keys = store.keys_to_upload("s1", 5).unwrap();
        store.mark_uploaded("s1", &ids(&keys)).unwrap();
        let taken = store.take_prekey("s1", 3).unwrap().unwrap();
        assert_eq!(taken, keys[2]);
        assert_eq!(store.take_prekey("s1", 3).unwrap(), None, "used once only");
        assert_eq!(store.take_prekey("s1", 99).unwrap(), None);
        assert_eq!(store.counts("s1").unwrap().stored, 4);
        let more = store.keys_to_upload("s1", 2).unwrap();
        assert_eq!(
            ids(&more),
            [6, 7],
            "id 3 is gone but never handed out again"
        );
        store.remove_session("s1").unwrap();
        assert_eq!(
            store.counts("s1").unwrap(),
            KeyCounts {
                stored: 0,
                uploaded: 0,
                next_id: 1
            }
        );
    }

    #[test]
    fn the_file_is_wal_with_full_sync_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        store.counts("s").unwrap();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let conn = Connection::open(store.path()).unwrap();
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let err = format!("{:?}", store);
        assert!(err.contains("keys.db") && !err.contains("private"), "{err}");
    }
}
