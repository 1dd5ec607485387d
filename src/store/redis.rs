//! `RedisStore`: the credential store in Redis (`[cluster] credentials = "redis"`), so a session
//! can resume on any node. Bodies are sealed exactly as the files are (version, kind, length,
//! SHA-256), every write is fenced by the session's lease token in one Lua script, and the
//! session lock stays a local file lock (it only keeps two processes of one host apart; the
//! lease keeps hosts apart). Key names shared with `cluster` live in [`keys`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::atomic::{self, Kind};
use super::{
    BackupInfo, CredentialStore, FileStore, LastBackup, LoadSource, Loaded, LockHolder,
    PersistedStatus, SecretBody, SessionLock, StoreError, WipeReport,
};

/// Redis key names, one place for the store and the cluster.
pub mod keys {
    /// A session's lease: `"<token>:<node>"` with a TTL.
    pub fn lease(session: &str) -> String {
        format!("wasp:lease:{session}")
    }
    /// The fencing counter every lease token comes from.
    pub const FENCE: &str = "wasp:fence";
    pub fn creds(session: &str) -> String {
        format!("wasp:creds:{session}")
    }
    pub fn status(session: &str) -> String {
        format!("wasp:status:{session}")
    }
    pub fn backups(session: &str) -> String {
        format!("wasp:backups:{session}")
    }
    pub fn backup_seq(session: &str) -> String {
        format!("wasp:backupseq:{session}")
    }
    /// Shared per-session state (JSON, with a TTL) that every node reads.
    pub fn state(session: &str) -> String {
        format!("wasp:state:{session}")
    }
    /// A node's heartbeat (JSON, with a TTL).
    pub fn node(node: &str) -> String {
        format!("wasp:node:{node}")
    }
    /// Every node id ever seen (live ones have a heartbeat key).
    pub const NODES: &str = "wasp:nodes";
    /// An operator's move: the node the session must go to.
    pub fn moving(session: &str) -> String {
        format!("wasp:move:{session}")
    }
    /// A session's rows of keys.db are mirrored (`credentials = "redis"`): set once written.
    pub fn rows(session: &str) -> String {
        format!("wasp:rows:{session}")
    }
    /// One table's rows of a session: a hash from the encoded primary key to the encoded row.
    pub fn rows_table(session: &str, table: &str) -> String {
        format!("wasp:rows:{session}:{table}")
    }
    /// `credentials = "file"`: the node whose data dir holds the session's credentials.
    pub fn home(session: &str) -> String {
        format!("wasp:home:{session}")
    }
    /// The pub/sub channel a node takes operator commands on.
    pub fn commands(node: &str) -> String {
        format!("wasp:cmd:{node}")
    }
    /// The list an owner pushes a command's answer to.
    pub fn reply(request: &str) -> String {
        format!("wasp:reply:{request}")
    }
}

/// Leading part of every fenced write: refuse unless the lease carries this token.
pub(super) const FENCE_CHECK: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if tonumber(string.match(cur, '^(%d+):')) ~= tonumber(ARGV[1]) then return 0 end
";

/// The current fencing token of each session this process holds, written by the cluster.
#[derive(Clone, Default)]
pub struct Fences(Arc<Mutex<HashMap<String, u64>>>);

impl Fences {
    pub fn set(&self, session: &str, token: Option<u64>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match token {
            Some(t) => map.insert(session.to_string(), t),
            None => map.remove(session),
        };
    }

    pub fn get(&self, session: &str) -> Option<u64> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(session).copied()
    }
}

/// Credentials and status in Redis; locks and the data dir on the local host.
pub struct RedisStore {
    conns: Conns,
    fences: Fences,
    local: FileStore,
}

const TIMEOUT: Duration = Duration::from_secs(2);

/// Blocking connections to one Redis, reused between calls.
pub(super) struct Conns {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
}

impl Conns {
    pub(super) fn new(client: redis::Client) -> Self {
        Conns {
            client,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `call` on a pooled connection. A pooled connection may have died with a Redis
    /// restart, so a failure on one is retried once on a fresh connection; a connection that
    /// failed is never put back.
    pub(super) fn with<T>(
        &self,
        session: &str,
        what: &'static str,
        mut call: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let fail = |e: redis::RedisError| StoreError::Redis {
            session: session.to_string(),
            what,
            detail: e.to_string(),
        };
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(mut con) = pooled
            && let Ok(result) = call(&mut con)
        {
            self.give_back(con);
            return Ok(result);
        }
        let mut con = self.fresh().map_err(fail)?;
        let result = call(&mut con).map_err(fail)?;
        self.give_back(con);
        Ok(result)
    }

    fn fresh(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(TIMEOUT)?;
        con.set_read_timeout(Some(TIMEOUT))?;
        con.set_write_timeout(Some(TIMEOUT))?;
        Ok(con)
    }

    fn give_back(&self, con: redis::Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(con);
    }
}

impl RedisStore {
    pub fn new(client: redis::Client, fences: Fences, local: FileStore) -> Self {
        RedisStore {
            conns: Conns::new(client),
            fences,
            local,
        }
    }

    fn with<T>(
        &self,
        session: &str,
        what: &'static str,
        call: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.conns.with(session, what, call)
    }

    fn token(&self, session: &str, what: &'static str) -> Result<u64, StoreError> {
        self.fences.get(session).ok_or_else(|| StoreError::Fenced {
            session: session.to_string(),
            what,
        })
    }

    /// Sets `key` to `value` if this node's lease token is current.
    fn fenced_set(
        &self,
        session: &str,
        what: &'static str,
        key: String,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let token = self.token(session, what)?;
        let script = redis::Script::new(&format!(
            "{FENCE_CHECK} redis.call('SET', KEYS[2], ARGV[2]) return 1"
        ));
        let done: i64 = self.with(session, what, |c| {
            script
                .key(keys::lease(session))
                .key(&key)
                .arg(token)
                .arg(value)
                .invoke(c)
        })?;
        fenced(done, session, what)
    }

    fn get(
        &self,
        session: &str,
        what: &'static str,
        key: String,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(session, what, |c| redis::cmd("GET").arg(&key).query(c))
    }

    fn backup_entries(&self, session: &str) -> Result<Vec<(BackupInfo, Vec<u8>)>, StoreError> {
        let raw: Vec<Vec<u8>> = self.with(session, "backup list", |c| {
            redis::cmd("LRANGE")
                .arg(keys::backups(session))
                .arg(0)
                .arg(-1)
                .query(c)
        })?;
        // Stored newest first; answered oldest first.
        let mut out: Vec<_> = raw
            .iter()
            .filter_map(|e| parse_backup(session, e))
            .collect();
        out.reverse();
        Ok(out)
    }
}

fn fenced(done: i64, session: &str, what: &'static str) -> Result<(), StoreError> {
    if done == 0 {
        return Err(StoreError::Fenced {
            session: session.to_string(),
            what,
        });
    }
    Ok(())
}

fn pseudo_path(key: String) -> PathBuf {
    PathBuf::from(format!("redis:{key}"))
}

/// A backup entry is `"<seq> <unix seconds>\n<sealed body>"`.
fn parse_backup(session: &str, entry: &[u8]) -> Option<(BackupInfo, Vec<u8>)> {
    let newline = entry.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&entry[..newline]).ok()?;
    let (seq, unix) = head.split_once(' ')?;
    let seq: u64 = seq.parse().ok()?;
    let unix: u64 = unix.parse().ok()?;
    let info = BackupInfo {
        seq,
        path: pseudo_path(format!("{}#{seq}", keys::backups(session))),
        written_at: UNIX_EPOCH + Duration::from_secs(unix),
    };
    Some((info, entry[newline + 1..].to_vec()))
}

impl CredentialStore for RedisStore {
    fn load(&self, session: &str) -> Result<Option<Loaded<SecretBody>>, StoreError> {
        let key = keys::creds(session);
        let Some(bytes) = self.get(session, "credentials read", key.clone())? else {
            return Ok(None);
        };
        let bytes = zeroize::Zeroizing::new(bytes);
        let problem = match atomic::open(Kind::Credentials, &bytes) {
            Ok(body) => {
                let body = SecretBody::new(body.to_vec());
                return Ok(Some(Loaded::current(body, pseudo_path(key))));
            }
            Err(problem) => problem,
        };
        let rejected = format!("{key} was refused: {problem}");
        for (info, sealed) in self.backup_entries(session)?.into_iter().rev() {
            let Ok(body) = atomic::open(Kind::Credentials, &sealed) else {
                continue;
            };
            let body = SecretBody::new(body.to_vec());
            self.fenced_set(session, "credentials restore", key.clone(), &sealed)?;
            return Ok(Some(Loaded {
                value: body,
                source: LoadSource::Backup(info.clone()),
                path: info.path,
                rejected: Some(rejected),
                corrupt_kept: None,
                backups_set_aside: Vec::new(),
            }));
        }
        Err(StoreError::NoUsableCredentials {
            session: session.to_string(),
            reason: rejected,
            corrupt_kept: None,
        })
    }

    fn save(&self, session: &str, body: &[u8]) -> Result<(), StoreError> {
        let sealed = atomic::seal(Kind::Credentials, body);
        self.fenced_set(session, "credentials", keys::creds(session), &sealed)
    }

    fn backup(&self, session: &str, keep: u32) -> Result<BackupInfo, StoreError> {
        let key = keys::creds(session);
        let Some(sealed) = self.get(session, "backup", key.clone())? else {
            return Err(StoreError::NothingToBackUp {
                session: session.to_string(),
                path: pseudo_path(key),
            });
        };
        if let Err(problem) = atomic::open(Kind::Credentials, &sealed) {
            return Err(StoreError::BackupVerifyFailed {
                session: session.to_string(),
                path: pseudo_path(key),
                problem: problem.to_string(),
            });
        }
        let token = self.token(session, "backup")?;
        let now = SystemTime::now();
        let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let script = redis::Script::new(&format!(
            "{FENCE_CHECK} local seq = redis.call('INCR', KEYS[3])
             redis.call('LPUSH', KEYS[2], seq .. ' ' .. ARGV[3] .. '\\n' .. ARGV[2])
             redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
             return seq"
        ));
        let seq: i64 = self.with(session, "backup", |c| {
            script
                .key(keys::lease(session))
                .key(keys::backups(session))
                .key(keys::backup_seq(session))
                .arg(token)
                .arg(&sealed[..])
                .arg(unix)
                .arg(keep.max(1))
                .invoke(c)
        })?;
        fenced(seq, session, "backup")?;
        let seq = u64::try_from(seq).unwrap_or_default();
        Ok(BackupInfo {
            seq,
            path: pseudo_path(format!("{}#{seq}", keys::backups(session))),
            written_at: UNIX_EPOCH + Duration::from_secs(unix),
        })
    }

    fn list_backups(&self, session: &str) -> Result<Vec<BackupInfo>, StoreError> {
        Ok(self
            .backup_entries(session)?
            .into_iter()
            .map(|(info, _)| info)
            .collect())
    }

    fn wipe(&self, session: &str, last_backup: LastBackup) -> Result<WipeReport, StoreError> {
        let present = self.get(session, "wipe", keys::creds(session))?.is_some();
        if !present {
            return Ok(WipeReport {
                removed: false,
                backup: None,
                backup_skipped: None,
            });
        }
        let backup = match last_backup {
            LastBackup::Take { keep } => Some(self.backup(session, keep)?),
            LastBackup::Skip => None,
        };
        let token = self.token(session, "wipe")?;
        let script = redis::Script::new(&format!(
            "{FENCE_CHECK} redis.call('DEL', KEYS[2]) return 1"
        ));
        let done: i64 = self.with(session, "wipe", |c| {
            script
                .key(keys::lease(session))
                .key(keys::creds(session))
                .arg(token)
                .invoke(c)
        })?;
        fenced(done, session, "wipe")?;
        Ok(WipeReport {
            removed: true,
            backup,
            backup_skipped: None,
        })
    }

    fn lock(&self, session: &str) -> Result<SessionLock, StoreError> {
        self.local.lock(session)
    }

    fn is_locked(&self, session: &str) -> Result<Option<LockHolder>, StoreError> {
        self.local.is_locked(session)
    }

    fn save_status(&self, session: &str, status: &PersistedStatus) -> Result<(), StoreError> {
        let body = serde_json::to_vec(status).map_err(|e| StoreError::Encode {
            session: session.to_owned(),
            what: "status",
            detail: super::error::describe_json_error(&e),
        })?;
        let sealed = atomic::seal(Kind::Status, &body);
        self.fenced_set(session, "status", keys::status(session), &sealed)
    }

    fn load_status(&self, session: &str) -> Result<Option<Loaded<PersistedStatus>>, StoreError> {
        let key = keys::status(session);
        let Some(bytes) = self.get(session, "status read", key.clone())? else {
            return Ok(None);
        };
        let path = pseudo_path(key);
        let parsed = atomic::open(Kind::Status, &bytes)
            .map_err(|e| e.to_string())
            .and_then(|body| {
                serde_json::from_slice::<PersistedStatus>(body)
                    .map_err(|e| super::error::describe_json_error(&e))
            });
        Ok(Some(match parsed {
            Ok(value) => Loaded::current(value, path),
            Err(problem) => Loaded {
                value: PersistedStatus::default(),
                source: LoadSource::Defaults,
                path: path.clone(),
                rejected: Some(format!("{} was refused: {problem}", path.display())),
                corrupt_kept: None,
                backups_set_aside: Vec::new(),
            },
        }))
    }
}
