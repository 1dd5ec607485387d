//! Credential backups: `backups/creds-<seq>-<utc>.wasp`, written atomically, verified by reading
//! them back, pruned to the newest N. When to back up is the session machine's decision.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::BackupInfo;
use super::atomic::{self, Kind};
use super::error::StoreError;
use super::file::{BACKUP_DIR, CREDS_FILE, FileStore};
use super::utc;

const PREFIX: &str = "creds-";
const SUFFIX: &str = ".wasp";

/// `creds-000012-20260415T101500Z.wasp`
fn backup_name(seq: u64, at: SystemTime) -> String {
    format!("{PREFIX}{seq:06}-{}{SUFFIX}", utc::compact(at))
}

/// (seq, written_at) of a backup file name; `None` for any other name.
fn parse_backup_name(name: &str) -> Option<(u64, SystemTime)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (seq, at) = rest.split_once('-')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((seq.parse().ok()?, utc::parse_compact(at)?))
}

/// The backups in `dir`, oldest first; an absent directory has none.
pub(super) fn list(dir: &Path) -> io::Result<Vec<BackupInfo>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some((seq, written_at)) = name.to_str().and_then(parse_backup_name) {
            found.push(BackupInfo {
                seq,
                path: entry.path(),
                written_at,
            });
        }
    }
    found.sort_by_key(|b| b.seq);
    Ok(found)
}

impl FileStore {
    /// See [`super::CredentialStore::backup`].
    pub(super) fn backup_now(&self, session: &str, keep: u32) -> Result<BackupInfo, StoreError> {
        let dir = self.session_dir(session)?;
        let current = dir.join(CREDS_FILE);
        let Some(bytes) = Self::read_optional(session, "credentials", &current)? else {
            return Err(StoreError::NothingToBackUp {
                session: session.to_owned(),
                path: current,
            });
        };
        let body =
            atomic::open(Kind::Credentials, &bytes).map_err(|problem| StoreError::Corrupt {
                session: session.to_owned(),
                what: "credentials",
                path: current.clone(),
                problem,
            })?;

        let backups_dir = dir.join(BACKUP_DIR);
        let existing = list(&backups_dir).map_err(|source| StoreError::Read {
            session: session.to_owned(),
            what: "the backup list",
            path: backups_dir.clone(),
            source,
        })?;
        let mut seq = existing.last().map_or(1, |b| b.seq + 1);
        let now = SystemTime::now();
        let mut name = backup_name(seq, now);
        while backups_dir.join(&name).exists() {
            seq += 1;
            name = backup_name(seq, now);
        }
        let path = backups_dir.join(&name);
        self.write_sealed(
            session,
            "a backup",
            &backups_dir,
            &name,
            Kind::Credentials,
            body,
        )?;

        // Read it back: a backup that does not verify is worse than none, because it would be
        // counted among the kept ones.
        let verified = Self::read_optional(session, "a backup", &path).and_then(|read| {
            let problem = match read {
                None => "it is missing".to_owned(),
                Some(read) => match atomic::open(Kind::Credentials, &read) {
                    Ok(read_body) if read_body == body => return Ok(()),
                    Ok(_) => "its content differs from the credentials".to_owned(),
                    Err(problem) => problem.to_string(),
                },
            };
            Err(StoreError::BackupVerifyFailed {
                session: session.to_owned(),
                path: path.clone(),
                problem,
            })
        });
        if let Err(e) = verified {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let info = BackupInfo {
            seq,
            path,
            written_at: utc::parse_compact(&utc::compact(now)).unwrap_or(now),
        };
        tracing::info!(session, seq, path = %info.path.display(), "credentials backed up");

        if let Err(e) = prune(&backups_dir, keep.max(1)) {
            // The new backup is good; too many old ones is not worth failing it.
            tracing::warn!(session, error = %e, "could not prune old backups");
        }
        Ok(info)
    }
}

/// Removes all but the newest `keep` backups.
fn prune(dir: &Path, keep: u32) -> io::Result<()> {
    let all = list(dir)?;
    let excess = all.len().saturating_sub(keep as usize);
    if excess == 0 {
        return Ok(());
    }
    for old in &all[..excess] {
        fs::remove_file(&old.path)?;
    }
    atomic::sync_dir(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn names_round_trip_and_foreign_names_are_ignored() {
        let at = UNIX_EPOCH + Duration::from_secs(1_776_248_100);
        let name = backup_name(12, at);
        assert_eq!(name, "creds-000012-20260415T101500Z.wasp");
        assert_eq!(parse_backup_name(&name), Some((12, at)));
        assert_eq!(
            parse_backup_name("creds-1234567-20260415T101500Z.wasp"),
            Some((1_234_567, at))
        );
        for other in [
            "creds-000012-20260415T101500Z.wasp.corrupt-20260415T101600Z",
            ".creds-000012-20260415T101500Z.wasp.tmp-1-2",
            "creds--20260415T101500Z.wasp",
            "notes.txt",
        ] {
            assert_eq!(parse_backup_name(other), None, "{other}");
        }
    }
}
