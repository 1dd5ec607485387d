//! App-state sync keys our own phone shares (protocolMessage type 6, PROTOCOL-MESSAGING.md §4.7):
//! kept per session in keys.db by key id, with their data, fingerprint and timestamp; wiped
//! with the session. Patches are not downloaded yet, so nothing reads them but tests.

use std::fmt;

use super::cached::CachedRow;
use rusqlite::{OptionalExtension, Transaction, params};

use super::SecretBody;
use super::keys::{KeyStore, KeysError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS app_state_keys (
    session     TEXT    NOT NULL,
    key_id      BLOB    NOT NULL,
    key_data    BLOB    NOT NULL,
    fingerprint BLOB    NOT NULL,
    timestamp   INTEGER NOT NULL,
    PRIMARY KEY (session, key_id)
);";

/// One shared app-state key. `Debug` shows the id and timestamp, never the key data.
pub struct AppStateKey {
    pub key_id: Vec<u8>,
    pub key_data: SecretBody,
    /// The encoded `AppStateSyncKeyFingerprint`, as shared.
    pub fingerprint: Vec<u8>,
    /// Milliseconds since the epoch, as the phone set it.
    pub timestamp: i64,
}

impl fmt::Debug for AppStateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppStateKey")
            .field("key_id", &hex(&self.key_id))
            .field("key_data", &"<redacted>")
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyStore {
    /// Stores shared keys for `session` in one transaction (a key id shared again replaces
    /// the older copy).
    pub fn app_state_keys_put(&self, session: &str, keys: &[AppStateKey]) -> Result<(), KeysError> {
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            for key in keys {
                tx.execute(
                    "INSERT OR REPLACE INTO app_state_keys
                     (session, key_id, key_data, fingerprint, timestamp)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        session,
                        key.key_id,
                        key.key_data.expose(),
                        key.fingerprint,
                        key.timestamp
                    ],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// The key `key_id` of `session`, if shared.
    pub fn app_state_key(
        &self,
        session: &str,
        key_id: &[u8],
    ) -> Result<Option<AppStateKey>, KeysError> {
        self.with(session, |conn| {
            let found = conn
                .cached_row(
                    "SELECT key_data, fingerprint, timestamp FROM app_state_keys
                     WHERE session = ?1 AND key_id = ?2",
                    params![session, key_id],
                    |r| {
                        Ok(AppStateKey {
                            key_id: key_id.to_vec(),
                            key_data: SecretBody::new(r.get(0)?),
                            fingerprint: r.get(1)?,
                            timestamp: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            Ok(Ok(found))
        })
    }
}

/// Deletes `session`'s app-state keys (part of `remove_session`).
pub(super) fn remove_session_rows(tx: &Transaction<'_>, session: &str) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM app_state_keys WHERE session = ?1",
        params![session],
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn key(id: u8, data: u8) -> AppStateKey {
        AppStateKey {
            key_id: vec![0, 0, id],
            key_data: SecretBody::new(vec![data; 32]),
            fingerprint: vec![8, 1],
            timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn keys_are_kept_per_session_and_wiped_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        store
            .app_state_keys_put("a", &[key(1, 7), key(2, 9)])
            .unwrap();
        store.app_state_keys_put("b", &[key(1, 5)]).unwrap();
        let got = store.app_state_key("a", &[0, 0, 2]).unwrap().unwrap();
        assert_eq!(got.key_data.expose(), &[9; 32]);
        assert_eq!(
            (got.fingerprint.as_slice(), got.timestamp),
            (&[8, 1][..], key(2, 9).timestamp)
        );
        assert!(
            !format!("{got:?}").contains("9, 9"),
            "Debug shows no key data"
        );
        store.remove_session("a").unwrap();
        assert!(store.app_state_key("a", &[0, 0, 1]).unwrap().is_none());
        let b = store.app_state_key("b", &[0, 0, 1]).unwrap().unwrap();
        assert_eq!(b.key_data.expose(), &[5; 32]);
    }
}
