//! One session's share of the key database copied into a file of its own (beside its credential
//! backup): every table's rows of that session, read in one transaction, so the copy is a
//! consistent snapshot that holds no other session's keys.

use std::path::Path;

use rusqlite::params;

use super::keys::{KeyStore, KeysError, create_private};

use super::mirror::TABLES;

impl KeyStore {
    /// Writes `session`'s rows of every table to a new database at `dest` (replaced if it
    /// exists), mode 0600; the rows are read in one transaction.
    pub fn backup_session_to(&self, session: &str, dest: &Path) -> Result<(), KeysError> {
        let _ = std::fs::remove_file(dest);
        create_private(dest);
        let target = dest.to_string_lossy().into_owned();
        self.with(session, |conn| {
            conn.execute("ATTACH DATABASE ?1 AS backup", params![target])?;
            let copied = copy_rows(conn, session);
            let detached = conn.execute("DETACH DATABASE backup", []);
            copied?;
            detached?;
            Ok(Ok(()))
        })
    }
}

fn copy_rows(conn: &mut rusqlite::Connection, session: &str) -> rusqlite::Result<()> {
    for schema in [
        super::keys::SCHEMA,
        super::signal::SCHEMA,
        super::app_state_keys::SCHEMA,
        super::outbox::SCHEMA,
    ] {
        conn.execute_batch(&schema.replace("IF NOT EXISTS ", "IF NOT EXISTS backup."))?;
    }
    let tx = conn.transaction()?;
    for table in TABLES {
        tx.execute(
            &format!("INSERT INTO backup.{table} SELECT * FROM main.{table} WHERE session = ?1"),
            params![session],
        )?;
    }
    tx.commit()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::store::signal::{SignalKind, SignalWrite};
    use std::os::unix::fs::PermissionsExt;

    fn put(name: &str, value: &[u8]) -> SignalWrite {
        SignalWrite::Put {
            kind: SignalKind::Session,
            name: name.into(),
            value: crate::store::SecretBody::new(value.to_vec()),
        }
    }

    #[test]
    fn a_session_backup_holds_its_rows_only_at_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        store.signal_apply("a", &[put("111.0", b"ra")]).unwrap();
        store.signal_apply("b", &[put("222.0", b"rb")]).unwrap();
        let queued = crate::store::outbox::NewMessage {
            id: "3EB0A".into(),
            to: "1@s.whatsapp.net".into(),
            text: "kept".into(),
            key: None,
        };
        store.outbox_enqueue("a", &queued, 1, 10).unwrap();
        store.outbox_enqueue("b", &queued, 1, 10).unwrap();
        let dest = dir.path().join("a-keys.db");
        store.backup_session_to("a", &dest).unwrap();
        // A second backup replaces the first and the store stays usable.
        store.backup_session_to("a", &dest).unwrap();
        store.signal_apply("a", &[put("111.0", b"later")]).unwrap();
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let copy = KeyStore::at(dest);
        let get = |s: &str, n: &str| {
            let held = copy.signal_get(s, SignalKind::Session, n).unwrap();
            held.map(|b| b.expose().to_vec())
        };
        assert_eq!(get("a", "111.0").as_deref(), Some(&b"ra"[..]));
        assert_eq!(get("b", "222.0"), None);
        let outbox = copy.outbox_get("a", "3EB0A").unwrap().unwrap();
        assert_eq!(outbox.text, "kept", "the outbox is in the snapshot");
        assert_eq!(copy.outbox_get("b", "3EB0A").unwrap(), None);
    }
}
