//! Schema version 11: the message's `seq` becomes its row's key and the endpoint gets an
//! integer key (`ekey`), and the payload, deliveries and attempts refer to them by those
//! integers instead of repeating 31-character ids in their rows and indexes (and no
//! longer repeat the application's id, which the message and the endpoint have).
//! Attempts are clustered by message, and the delivery's two indexes over (message,
//! endpoint) became one.
//!
//! A database of an older version is rebuilt table by table in one transaction: every
//! row is copied, the old tables dropped and the new ones renamed into place. A crash
//! midway leaves the old database as it was.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// The tables the rebuild makes, in schema.sql's definitions, under temporary names
/// (`<name>_v11`); schema.sql creates their indexes after the rename.
const REBUILT: [&str; 5] = [
    "endpoint",
    "message",
    "message_payload",
    "delivery",
    "attempt",
];

/// schema.sql's `CREATE TABLE` statement of `table`, creating it as `<table>_v11`.
fn new_table(table: &str) -> String {
    let schema = include_str!("schema.sql");
    let head = format!("CREATE TABLE IF NOT EXISTS {table} (");
    let start = schema
        .find(&head)
        .unwrap_or_else(|| panic!("schema.sql defines {table}"));
    // The closing parenthesis starts a line (columns are indented), and the statement
    // ends at the first `;` after it (comments inside the body may hold one).
    let close = start
        + schema[start..]
            .find("\n)")
            .expect("the table's closing line");
    let end = close + schema[close..].find(';').expect("the statement's end") + 1;
    schema[start..end].replacen(&head, &format!("CREATE TABLE {table}_v11 ("), 1)
}

/// Copies every row into the new tables. The old message table's `seq` is set on every
/// row (`mod.rs` fills it for messages from before version 8), so it can be the key.
const COPY_ROWS: &str = "
INSERT INTO endpoint_v11 (ekey, id, app_id, uid, url, description, disabled, event_types, channels, throttle_rate,
    metadata, headers, secrets, created_at, updated_at, failing_since, ordered, payload_filter, transformation)
    SELECT rowid, id, app_id, uid, url, description, disabled, event_types, channels, throttle_rate,
    metadata, headers, secrets, created_at, updated_at, failing_since, ordered, payload_filter, transformation FROM endpoint;
INSERT INTO message_v11 (seq, id, app_id, event_id, event_type, channels, created_at, expires_at, ordering_key)
    SELECT seq, id, app_id, event_id, event_type, channels, created_at, expires_at, ordering_key FROM message;
INSERT INTO message_payload_v11 (msg_seq, payload, headers)
    SELECT m.seq, p.payload, p.headers FROM message_payload p JOIN message m ON m.id = p.msg_id;
INSERT INTO delivery_v11 (id, msg_seq, ep, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at)
    SELECT d.id, m.seq, e.ekey, d.status, d.attempts, d.next_attempt_at, d.leased, d.trigger_type, d.created_at, d.updated_at
    FROM delivery d JOIN message m ON m.id = d.msg_id JOIN endpoint_v11 e ON e.id = d.endpoint_id;
INSERT INTO attempt_v11 (msg_seq, id, ep, url, status, response_status_code, response, response_duration_ms, trigger_type, created_at)
    SELECT m.seq, a.id, e.ekey, a.url, a.status, a.response_status_code, a.response, a.response_duration_ms, a.trigger_type, a.created_at
    FROM attempt a JOIN message m ON m.id = a.msg_id JOIN endpoint_v11 e ON e.id = a.endpoint_id;
";

/// Whether the database's message table is still keyed by its text id (a version
/// before 11).
pub(crate) fn needs_rebuild(conn: &Connection) -> Result<bool> {
    let has_old_payload_key: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('message_payload') WHERE name = 'msg_id'",
        [],
        |r| r.get(0),
    )?;
    Ok(has_old_payload_key > 0)
}

/// Rebuilds the five tables in the version 11 layout, keeping every row; fails (and
/// changes nothing) if any row would be lost.
pub(crate) fn rebuild(conn: &Connection) -> Result<()> {
    let count = |table: &str| -> Result<i64> {
        Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    let counts = |suffix: &str| -> Result<Vec<i64>> {
        REBUILT
            .iter()
            .map(|t| count(&format!("{t}{suffix}")))
            .collect()
    };
    let before = counts("")?;
    tracing::info!(
        messages = before[1],
        deliveries = before[3],
        attempts = before[4],
        "upgrading the store to schema version 11 (integer keys for messages and endpoints); this copies every row once"
    );
    // Foreign keys are switched off while the tables are swapped (the pragma does nothing
    // inside a transaction); the row counts are what is checked.
    conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE;")?;
    let swapped = (|| -> Result<()> {
        for table in REBUILT {
            conn.execute_batch(&new_table(table))?;
        }
        conn.execute_batch(COPY_ROWS)?;
        let after = counts("_v11")?;
        if after != before {
            return Err(StoreError::Invalid(format!(
                "upgrade to schema version 11 would not keep every row (rows of {REBUILT:?}: {before:?} before, {after:?} after); nothing was changed"
            )));
        }
        for table in REBUILT {
            conn.execute_batch(&format!(
                "DROP TABLE {table}; ALTER TABLE {table}_v11 RENAME TO {table};"
            ))?;
        }
        Ok(())
    })();
    match swapped {
        Ok(()) => {
            conn.execute_batch("COMMIT; PRAGMA foreign_keys = ON;")?;
            Ok(())
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK; PRAGMA foreign_keys = ON;")?;
            Err(e)
        }
    }
}
