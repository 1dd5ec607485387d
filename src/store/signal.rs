//! The Signal records of every session in `keys.db`: identities of peers, ratchet sessions per
//! peer device, sender keys (one `signal` table, rows keyed by session, kind and
//! name) and the device-list cache per contact (`device_cache`).
//!
//! Records are opaque bytes (the Signal library serializes them); what comes back is a
//! [`SecretBody`], whose `Debug` shows no byte. Everything one decrypt or encrypt changes is
//! written in one transaction ([`KeyStore::signal_apply`]), so a crash leaves either the old
//! ratchet or the new one, never half of each: no "bad MAC" after a restart.
//!
//! Every method blocks on disk I/O: async callers run it in `spawn_blocking`.

use std::path::Path;

use super::cached::CachedRow;
use rusqlite::{OptionalExtension, Transaction, params};

use super::SecretBody;
use super::keys::{KeyStore, KeysError};

/// Created with the pre-key tables when the file is opened.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signal (
    session TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    value   BLOB    NOT NULL,
    PRIMARY KEY (session, kind, name)
);
CREATE TABLE IF NOT EXISTS device_cache (
    session    TEXT    NOT NULL,
    user       TEXT    NOT NULL,
    devices    TEXT    NOT NULL,
    lid        TEXT,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (session, user)
);";

/// What a `signal` row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// A peer's identity key, by address (`name.device`).
    Identity,
    /// The ratchet session record with a peer device, by address.
    Session,
    /// A sender key, by `group::address`.
    SenderKey,
}

impl SignalKind {
    fn column(self) -> &'static str {
        match self {
            SignalKind::Identity => "identity",
            SignalKind::Session => "session",
            SignalKind::SenderKey => "sender_key",
        }
    }
}

/// One change of a transaction applied with [`KeyStore::signal_apply`].
pub enum SignalWrite {
    Put {
        kind: SignalKind,
        name: String,
        value: SecretBody,
    },
    Delete {
        kind: SignalKind,
        name: String,
    },
    /// A one-time pre-key a pkmsg consumed.
    TakePreKey(u32),
}

impl std::fmt::Debug for SignalWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignalWrite::Put { kind, name, value } => f
                .debug_struct("Put")
                .field("kind", kind)
                .field("name", name)
                .field("value", value)
                .finish(),
            SignalWrite::Delete { kind, name } => f
                .debug_struct("Delete")
                .field("kind", kind)
                .field("name", name)
                .finish(),
            SignalWrite::TakePreKey(id) => write!(f, "TakePreKey({id})"),
        }
    }
}

/// A contact's cached device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDevices {
    /// Device ids, 0 (the phone) included when the account has it.
    pub devices: Vec<u16>,
    /// The contact's LID user (`123@lid`), when the server told it.
    pub lid: Option<String>,
    /// Unix seconds of the usync answer.
    pub fetched_at: u64,
}

impl KeyStore {
    /// The record `name` of `kind` for `session`, if held.
    pub fn signal_get(
        &self,
        session: &str,
        kind: SignalKind,
        name: &str,
    ) -> Result<Option<SecretBody>, KeysError> {
        self.with(session, |conn| {
            let value: Option<Vec<u8>> = conn
                .cached_row(
                    "SELECT value FROM signal WHERE session = ?1 AND kind = ?2 AND name = ?3",
                    params![session, kind.column(), name],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(Ok(value.map(SecretBody::new)))
        })
    }

    /// Applies `writes` in one durable transaction (all or none).
    pub fn signal_apply(&self, session: &str, writes: &[SignalWrite]) -> Result<(), KeysError> {
        self.with(session, |conn| {
            let tx = conn.transaction()?;
            write_signal(&tx, session, writes)?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Drops the identity and every session of the peer `name` (all its devices: addresses
    /// `name.<device>`), when its identity changed; other peers are untouched.
    pub fn signal_forget_peer(&self, session: &str, name: &str) -> Result<usize, KeysError> {
        let pattern = format!("{}.%", like_escape(name));
        self.with(session, |conn| {
            let n = conn.execute(
                "DELETE FROM signal WHERE session = ?1 AND kind IN ('identity', 'session') \
                 AND name LIKE ?2 ESCAPE '\\'",
                params![session, pattern],
            )?;
            Ok(Ok(n))
        })
    }

    /// The cached device list of `user` (a bare JID), if any.
    pub fn devices_get(
        &self,
        session: &str,
        user: &str,
    ) -> Result<Option<CachedDevices>, KeysError> {
        self.with(session, |conn| {
            let row: Option<(String, Option<String>, i64)> = conn
                .cached_row(
                    "SELECT devices, lid, fetched_at FROM device_cache \
                     WHERE session = ?1 AND user = ?2",
                    params![session, user],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            Ok(Ok(row.map(|(devices, lid, fetched_at)| CachedDevices {
                devices: device_list_from_row(&devices),
                lid,
                fetched_at: u64::try_from(fetched_at).unwrap_or(0),
            })))
        })
    }

    /// Caches the device list of `user`.
    pub fn devices_put(
        &self,
        session: &str,
        user: &str,
        cached: &CachedDevices,
    ) -> Result<(), KeysError> {
        let devices = cached
            .devices
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let at = i64::try_from(cached.fetched_at).unwrap_or(i64::MAX);
        self.with(session, |conn| {
            conn.execute(
                "INSERT INTO device_cache (session, user, devices, lid, fetched_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(session, user) DO UPDATE SET \
                 devices = excluded.devices, lid = excluded.lid, fetched_at = excluded.fetched_at",
                params![session, user, devices, cached.lid, at],
            )?;
            Ok(Ok(()))
        })
    }

    /// Forgets the cached device list of `user` (a `devices` notification, identity change).
    pub fn devices_forget(&self, session: &str, user: &str) -> Result<(), KeysError> {
        self.with(session, |conn| {
            conn.execute(
                "DELETE FROM device_cache WHERE session = ?1 AND user = ?2",
                params![session, user],
            )?;
            Ok(Ok(()))
        })
    }

    /// Writes a consistent snapshot of the whole database to `dest` (which must not exist),
    /// owner-only; taken inside one read transaction, so it never holds half a ratchet step.
    pub fn backup_to(&self, dest: &Path) -> Result<(), KeysError> {
        let target = dest.to_string_lossy().into_owned();
        self.with("(backup)", |conn| {
            conn.execute("VACUUM INTO ?1", params![target])?;
            Ok(Ok(()))
        })?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600));
        Ok(())
    }
}

/// Deletes every Signal row and cached device list of `session` (part of `remove_session`).
/// The device ids of a cached device list (`0,3,17`); ids that do not parse are skipped.
pub(crate) fn device_list_from_row(devices: &str) -> Vec<u16> {
    devices.split(',').filter_map(|d| d.parse().ok()).collect()
}

pub(super) fn remove_session_rows(tx: &Transaction<'_>, session: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM signal WHERE session = ?1", params![session])?;
    tx.execute(
        "DELETE FROM device_cache WHERE session = ?1",
        params![session],
    )?;
    Ok(())
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Applies Signal writes of `session` inside a caller's transaction.
pub(super) fn write_signal(
    tx: &rusqlite::Transaction<'_>,
    session: &str,
    writes: &[SignalWrite],
) -> rusqlite::Result<()> {
    for write in writes {
        match write {
            SignalWrite::Put { kind, name, value } => {
                tx.execute(
                    "INSERT INTO signal (session, kind, name, value) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT(session, kind, name) DO UPDATE SET value = excluded.value",
                    params![session, kind.column(), name, value.expose()],
                )?;
            }
            SignalWrite::Delete { kind, name } => {
                tx.execute(
                    "DELETE FROM signal WHERE session = ?1 AND kind = ?2 AND name = ?3",
                    params![session, kind.column(), name],
                )?;
            }
            SignalWrite::TakePreKey(id) => {
                tx.execute(
                    "DELETE FROM prekeys WHERE session = ?1 AND id = ?2",
                    params![session, id],
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn put(kind: SignalKind, name: &str, value: &[u8]) -> SignalWrite {
        SignalWrite::Put {
            kind,
            name: name.to_owned(),
            value: SecretBody::new(value.to_vec()),
        }
    }

    fn get(store: &KeyStore, session: &str, kind: SignalKind, name: &str) -> Option<Vec<u8>> {
        store
            .signal_get(session, kind, name)
            .unwrap()
            .map(|b| b.expose().to_vec())
    }

    #[test]
    fn records_are_kept_per_session_and_kind_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = KeyStore::in_data_dir(dir.path());
            store
                .signal_apply(
                    "a",
                    &[
                        put(SignalKind::Session, "111.0", b"ratchet-1"),
                        put(SignalKind::Identity, "111.0", b"identity"),
                    ],
                )
                .unwrap();
            store
                .signal_apply("b", &[put(SignalKind::Session, "111.0", b"other")])
                .unwrap();
            store
                .signal_apply("a", &[put(SignalKind::Session, "111.0", b"ratchet-2")])
                .unwrap();
        }
        let store = KeyStore::in_data_dir(dir.path());
        assert_eq!(
            get(&store, "a", SignalKind::Session, "111.0").as_deref(),
            Some(&b"ratchet-2"[..])
        );
        assert_eq!(
            get(&store, "b", SignalKind::Session, "111.0").as_deref(),
            Some(&b"other"[..])
        );
        assert_eq!(get(&store, "a", SignalKind::SenderKey, "111.0"), None);
    }

    #[test]
    fn forgetting_a_peer_drops_all_its_devices_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        store
            .signal_apply(
                "a",
                &[
                    put(SignalKind::Session, "111.0", b"x"),
                    put(SignalKind::Session, "111.7", b"x"),
                    put(SignalKind::Identity, "111.0", b"x"),
                    put(SignalKind::Session, "1110.0", b"keep"),
                    put(SignalKind::Session, "111_1.0", b"keep"),
                ],
            )
            .unwrap();
        assert_eq!(store.signal_forget_peer("a", "111").unwrap(), 3);
        assert_eq!(get(&store, "a", SignalKind::Session, "111.7"), None);
        assert!(get(&store, "a", SignalKind::Session, "1110.0").is_some());
        assert!(get(&store, "a", SignalKind::Session, "111_1.0").is_some());
    }

    #[test]
    fn a_pkmsg_step_takes_the_prekey_and_stores_the_session_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        let keys = store.keys_to_upload("a", 3).unwrap();
        store
            .signal_apply(
                "a",
                &[
                    SignalWrite::TakePreKey(keys[1].id),
                    put(SignalKind::Session, "222.0", b"new"),
                ],
            )
            .unwrap();
        assert_eq!(store.take_prekey("a", keys[1].id).unwrap(), None);
        assert_eq!(store.counts("a").unwrap().stored, 2);
        assert!(get(&store, "a", SignalKind::Session, "222.0").is_some());
    }

    #[test]
    fn device_lists_are_cached_and_wiped_with_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        let cached = CachedDevices {
            devices: vec![0, 7],
            lid: Some("987@lid".into()),
            fetched_at: 1_700_000_000,
        };
        store
            .devices_put("a", "111@s.whatsapp.net", &cached)
            .unwrap();
        assert_eq!(
            store.devices_get("a", "111@s.whatsapp.net").unwrap(),
            Some(cached)
        );
        store
            .signal_apply("a", &[put(SignalKind::Session, "111.0", b"x")])
            .unwrap();
        store.remove_session("a").unwrap();
        assert_eq!(store.devices_get("a", "111@s.whatsapp.net").unwrap(), None);
        assert_eq!(get(&store, "a", SignalKind::Session, "111.0"), None);
    }

    #[test]
    fn a_backup_is_a_private_readable_copy() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::in_data_dir(dir.path());
        store
            .signal_apply("a", &[put(SignalKind::Session, "111.0", b"r1")])
            .unwrap();
        let dest = dir.path().join("keys-backup.db");
        store.backup_to(&dest).unwrap();
        store
            .signal_apply("a", &[put(SignalKind::Session, "111.0", b"r2")])
            .unwrap();
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let copy = KeyStore::at(dest);
        assert_eq!(
            get(&copy, "a", SignalKind::Session, "111.0").as_deref(),
            Some(&b"r1"[..])
        );
    }
}
