//! keys.db mirrored to Redis (`[cluster] credentials = "redis"`), so a session resumes on
//! another node with its pre-keys, Signal sessions, device lists, app-state keys and outbox.
//!
//! Redis is the source of truth for a session while this node holds its lease; the local
//! SQLite file stays the working copy every read uses. Temporary triggers on each per-session
//! table hand every row a transaction inserts, updates or deletes to [`Mirror`]; SQLite's
//! commit hook then writes those rows to Redis in one Lua script that first checks the
//! session's fencing token, *before* the local commit. A refused or failed write turns the
//! commit into a rollback, so nothing is acknowledged (a 202, a pre-key marked uploaded, the
//! ack of a decrypted message) that Redis does not hold, and a fenced-off node writes nothing
//! anywhere. The first use of a session under a new lease token replaces its local rows with
//! those in Redis (or, when Redis has never had any, seeds Redis from the local rows).
//!
//! Layout: `wasp:rows:<session>` marks a mirrored session; `wasp:rows:<session>:<table>` is a
//! hash from the encoded primary key to the encoded row (column names with typed values).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;

use super::keys::KeysError;
use super::redis::{Conns, FENCE_CHECK, Fences, keys};
use super::row_codec::{decode_row, encode_row, encode_values};

/// The tables that hold per-session rows (each has a `session` column). The webhook tables
/// are the node's delivery queue and stay local.
pub(super) const TABLES: [&str; 6] = [
    "prekeys",
    "prekey_counter",
    "signal",
    "device_cache",
    "app_state_keys",
    "messages",
];

/// A row to write to Redis: table number, encoded primary key, encoded row (`None`: delete).
type RowWrite = (usize, Vec<u8>, Option<Vec<u8>>);
/// One table's rows as Redis holds them: (encoded key, encoded row).
type TableRows = Vec<(Vec<u8>, Vec<u8>)>;
/// The last change of each row of one session: (table, key) -> row or `None`.
type Latest = HashMap<(usize, Vec<u8>), Option<Vec<u8>>>;

/// One mirrored table as the open database declares it.
struct Table {
    name: &'static str,
    columns: Vec<String>,
    /// Positions of the primary-key columns in `columns`, in key order.
    pk: Vec<usize>,
}

/// One row changed by the transaction in progress: `value` is `None` for a deletion.
struct Change {
    table: usize,
    session: String,
    field: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// Why Redis did not take a write; `known` when it surely took none of it.
struct Refused {
    detail: String,
    known: bool,
}

impl Refused {
    fn known(detail: String) -> Self {
        Refused {
            detail,
            known: true,
        }
    }
}

#[derive(Default)]
struct Capture {
    changes: Vec<Change>,
    /// Set while Redis's rows are being applied locally (they must not go back).
    quiet: bool,
    /// Why the last commit was refused.
    failure: Option<(String, String)>,
}

/// Writes keys.db's per-session changes through to Redis, fenced; loads a session's rows
/// when this node takes its lease.
pub struct Mirror {
    conns: Conns,
    fences: Fences,
    /// The token each session's local rows were last loaded from Redis under.
    loaded: Mutex<HashMap<String, u64>>,
    tables: Mutex<Arc<Vec<Table>>>,
    capture: Mutex<Capture>,
}

impl Mirror {
    pub fn new(client: redis::Client, fences: Fences) -> Arc<Self> {
        Arc::new(Mirror {
            conns: Conns::new(client),
            fences,
            loaded: Mutex::new(HashMap::new()),
            tables: Mutex::new(Arc::new(Vec::new())),
            capture: Mutex::new(Capture::default()),
        })
    }

    fn capture(&self) -> MutexGuard<'_, Capture> {
        self.capture.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tables(&self) -> Arc<Vec<Table>> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets up the triggers, the capture function and the commit hooks on a newly opened
    /// connection (after its schema exists).
    pub(super) fn install(self: &Arc<Self>, conn: &mut Connection) -> rusqlite::Result<()> {
        let mut tables = Vec::new();
        for name in TABLES {
            let mut stmt = conn.prepare(&format!("PRAGMA table_info({name})"))?;
            let info = stmt
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let columns: Vec<String> = info.iter().map(|(c, _)| c.clone()).collect();
            let mut keyed: Vec<(i64, usize)> = info
                .iter()
                .enumerate()
                .filter(|(_, (_, pk))| *pk > 0)
                .map(|(i, (_, pk))| (*pk, i))
                .collect();
            keyed.sort();
            let pk = keyed.into_iter().map(|(_, i)| i).collect();
            tables.push(Table { name, columns, pk });
        }
        let tables = Arc::new(tables);
        *self.tables.lock().unwrap_or_else(|p| p.into_inner()) = tables.clone();
        let me = self.clone();
        conn.create_scalar_function("wasp_mirror", -1, FunctionFlags::SQLITE_UTF8, move |ctx| {
            let args = (0..ctx.len())
                .map(|i| ctx.get::<Value>(i))
                .collect::<rusqlite::Result<Vec<Value>>>()?;
            me.record(&args);
            Ok(rusqlite::types::Null)
        })?;
        for (i, table) in tables.iter().enumerate() {
            conn.execute_batch(&triggers(i, table))?;
        }
        let me = self.clone();
        conn.commit_hook(Some(move || me.on_commit()))?;
        let me = self.clone();
        conn.rollback_hook(Some(move || me.capture().changes.clear()))?;
        Ok(())
    }

    /// Called by the triggers: `(table, 1, session, every column)` for a row written,
    /// `(table, 0, session, primary key)` for a row gone.
    fn record(&self, args: &[Value]) {
        let (Some(Value::Integer(table)), Some(Value::Integer(op)), Some(Value::Text(session))) =
            (args.first(), args.get(1), args.get(2))
        else {
            return;
        };
        let tables = self.tables();
        let Some(t) = usize::try_from(*table).ok().and_then(|i| tables.get(i)) else {
            return;
        };
        let rest = &args[3..];
        let change = if *op == 1 {
            let key: Vec<Value> = t.pk.iter().filter_map(|&i| rest.get(i).cloned()).collect();
            let named: Vec<(&str, &Value)> =
                t.columns.iter().map(String::as_str).zip(rest).collect();
            Change {
                table: *table as usize,
                session: session.clone(),
                field: encode_values(&key),
                value: Some(encode_row(&named)),
            }
        } else {
            Change {
                table: *table as usize,
                session: session.clone(),
                field: encode_values(rest),
                value: None,
            }
        };
        let mut capture = self.capture();
        if !capture.quiet {
            capture.changes.push(change);
        }
    }

    /// The commit hook: writes what the transaction changed to Redis; `true` (roll back)
    /// when any session's write was refused or failed.
    fn on_commit(&self) -> bool {
        let changes = std::mem::take(&mut self.capture().changes);
        if changes.is_empty() {
            return false;
        }
        let mut by_session: HashMap<String, Latest> = HashMap::new();
        for c in changes {
            // The last change of a row wins.
            by_session
                .entry(c.session)
                .or_default()
                .insert((c.table, c.field), c.value);
        }
        for (session, rows) in by_session {
            let rows: Vec<_> = rows.into_iter().map(|((t, f), v)| (t, f, v)).collect();
            if let Err(Refused { detail, known }) = self.push(&session, &rows, false) {
                if !known {
                    // Whether Redis took it is unknown: reload this session's rows next time.
                    self.loaded_map().remove(&session);
                }
                self.capture().failure = Some((session, detail));
                return true;
            }
        }
        false
    }

    fn loaded_map(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The refusal of the last commit, if it was refused.
    pub(super) fn take_failure(&self) -> Option<KeysError> {
        self.capture()
            .failure
            .take()
            .map(|(session, detail)| KeysError::Mirror { session, detail })
    }

    /// Writes `rows` of `session` (table, key, row or `None` to delete) in one fenced script;
    /// `reset` first empties the session's tables in Redis.
    fn push(&self, session: &str, rows: &[RowWrite], reset: bool) -> Result<(), Refused> {
        let Some(token) = self.fences.get(session) else {
            return Err(Refused::known(
                "this node holds no lease for it".to_string(),
            ));
        };
        let script = redis::Script::new(&format!(
            "{FENCE_CHECK}
             redis.call('SET', KEYS[2], '1')
             if ARGV[2] == '1' then for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end end
             for i = 3, #ARGV, 3 do
               local key = KEYS[tonumber(ARGV[i])]
               if ARGV[i + 2] == '' then redis.call('HDEL', key, ARGV[i + 1])
               else redis.call('HSET', key, ARGV[i + 1], ARGV[i + 2]) end
             end
             return 1"
        ));
        let done: i64 = self
            .conns
            .with(session, "key store write", |c| {
                let mut call = script.prepare_invoke();
                call.key(keys::lease(session)).key(keys::rows(session));
                for name in TABLES {
                    call.key(keys::rows_table(session, name));
                }
                call.arg(token).arg(if reset { "1" } else { "0" });
                for (table, field, value) in rows {
                    call.arg(table + 3)
                        .arg(&field[..])
                        .arg(value.as_deref().unwrap_or_default());
                }
                call.invoke(c)
            })
            .map_err(|e| Refused {
                detail: e.to_string(),
                known: false,
            })?;
        if done == 0 {
            return Err(Refused::known(format!(
                "a newer lease token than {token} exists (fenced off)"
            )));
        }
        Ok(())
    }

    /// Before `session`'s first use under a new lease token: its local rows become those in
    /// Redis (or Redis is seeded from them when it never had any).
    pub(super) fn sync(&self, conn: &mut Connection, session: &str) -> Result<(), KeysError> {
        let Some(token) = self.fences.get(session) else {
            return Ok(());
        };
        if self.loaded_map().get(session) == Some(&token) {
            return Ok(());
        }
        let fail = |detail: String| KeysError::Mirror {
            session: session.to_string(),
            detail,
        };
        let tables = self.tables();
        match self.fetch(session).map_err(fail)? {
            None => {
                let rows = local_rows(conn, &tables, session).map_err(|e| fail(e.to_string()))?;
                self.push(session, &rows, true)
                    .map_err(|r| fail(r.detail))?;
            }
            Some(remote) => {
                self.capture().quiet = true;
                let applied = apply(conn, &tables, session, &remote);
                self.capture().quiet = false;
                applied.map_err(fail)?;
            }
        }
        self.loaded_map().insert(session.to_string(), token);
        Ok(())
    }

    /// Every table's rows of `session` in Redis; `None` when it was never mirrored.
    fn fetch(&self, session: &str) -> Result<Option<Vec<TableRows>>, String> {
        let (marker, tables): (Option<String>, Vec<TableRows>) = self
            .conns
            .with(session, "key store read", |c| {
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(keys::rows(session));
                let mut tables = redis::pipe();
                for name in TABLES {
                    tables.cmd("HGETALL").arg(keys::rows_table(session, name));
                }
                let marker: (Option<String>,) = pipe.query(c)?;
                let rows: Vec<TableRows> = tables.query(c)?;
                Ok((marker.0, rows))
            })
            .map_err(|e| e.to_string())?;
        Ok(marker.map(|_| tables))
    }
}

/// The insert, update and delete triggers of table number `i`.
fn triggers(i: usize, t: &Table) -> String {
    let name = t.name;
    let all = |row: &str| {
        t.columns
            .iter()
            .map(|c| format!("{row}.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key = |row: &str| {
        t.pk.iter()
            .map(|&p| format!("{row}.\"{}\"", t.columns[p]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let put = format!("SELECT wasp_mirror({i}, 1, NEW.session, {});", all("NEW"));
    let gone = format!("SELECT wasp_mirror({i}, 0, OLD.session, {});", key("OLD"));
    format!(
        "CREATE TEMP TRIGGER IF NOT EXISTS wasp_mirror_{name}_i AFTER INSERT ON {name} BEGIN {put} END;
         CREATE TEMP TRIGGER IF NOT EXISTS wasp_mirror_{name}_u AFTER UPDATE ON {name} BEGIN {gone} {put} END;
         CREATE TEMP TRIGGER IF NOT EXISTS wasp_mirror_{name}_d AFTER DELETE ON {name} BEGIN {gone} END;"
    )
}

/// Every local row of `session`, encoded as the triggers do.
fn local_rows(
    conn: &Connection,
    tables: &[Table],
    session: &str,
) -> rusqlite::Result<Vec<RowWrite>> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let cols = t
            .columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt =
            conn.prepare(&format!("SELECT {cols} FROM {} WHERE session = ?1", t.name))?;
        let rows = stmt.query_map([session], |r| {
            (0..t.columns.len())
                .map(|c| r.get::<_, Value>(c))
                .collect::<rusqlite::Result<Vec<Value>>>()
        })?;
        for row in rows {
            let row = row?;
            let key: Vec<Value> = t.pk.iter().map(|&p| row[p].clone()).collect();
            let named: Vec<(&str, &Value)> =
                t.columns.iter().map(String::as_str).zip(&row).collect();
            out.push((i, encode_values(&key), Some(encode_row(&named))));
        }
    }
    Ok(out)
}

/// Replaces `session`'s local rows with `remote` (per table, in [`TABLES`] order) in one
/// transaction.
fn apply(
    conn: &mut Connection,
    tables: &[Table],
    session: &str,
    remote: &[TableRows],
) -> Result<(), String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    for (t, rows) in tables.iter().zip(remote) {
        tx.execute(
            &format!("DELETE FROM {} WHERE session = ?1", t.name),
            [session],
        )
        .map_err(|e| e.to_string())?;
        for (_, encoded) in rows {
            let where_ = keys::rows_table(session, t.name);
            let row = decode_row(encoded)
                .ok_or_else(|| format!("Redis key {where_} holds a damaged row"))?;
            let owner = row.iter().find(|(c, _)| c == "session").map(|(_, v)| v);
            if owner != Some(&Value::Text(session.to_string())) {
                return Err(format!("Redis key {where_} holds another session's row"));
            }
            let cols = row
                .iter()
                .map(|(c, _)| format!("\"{}\"", c.replace('"', "")))
                .collect::<Vec<_>>()
                .join(", ");
            let marks = vec!["?"; row.len()].join(", ");
            let values = rusqlite::params_from_iter(row.iter().map(|(_, v)| v));
            tx.execute(
                &format!("INSERT INTO {} ({cols}) VALUES ({marks})", t.name),
                values,
            )
            .map_err(|e| format!("{where_}: {e}"))?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}
