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

/// The tables of version 11 under temporary names; `schema.sql` holds the same
/// definitions under their own names, and creates the indexes after the rename.
const NEW_TABLES: &str = "
CREATE TABLE endpoint_v11 (
    ekey INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    uid TEXT,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    disabled INTEGER NOT NULL,
    event_types TEXT,
    channels TEXT,
    throttle_rate INTEGER,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    secrets TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    failing_since INTEGER,
    ordered INTEGER NOT NULL DEFAULT 0,
    payload_filter TEXT,
    transformation TEXT,
    UNIQUE (app_id, uid)
);
CREATE TABLE message_v11 (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    event_id TEXT,
    event_type TEXT NOT NULL,
    channels TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ordering_key TEXT
);
CREATE TABLE message_payload_v11 (
    msg_seq INTEGER PRIMARY KEY REFERENCES message(seq) ON DELETE CASCADE,
    payload TEXT NOT NULL,
    headers TEXT
);
CREATE TABLE delivery_v11 (
    id INTEGER PRIMARY KEY,
    msg_seq INTEGER NOT NULL REFERENCES message(seq) ON DELETE CASCADE,
    ep INTEGER NOT NULL REFERENCES endpoint(ekey) ON DELETE CASCADE,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    leased INTEGER NOT NULL DEFAULT 0,
    trigger_type INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (ep, msg_seq)
);
CREATE TABLE attempt_v11 (
    msg_seq INTEGER NOT NULL REFERENCES message(seq) ON DELETE CASCADE,
    id TEXT NOT NULL,
    ep INTEGER NOT NULL REFERENCES endpoint(ekey) ON DELETE CASCADE,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms INTEGER NOT NULL,
    trigger_type INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (msg_seq, id)
) WITHOUT ROWID;
";

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

const SWAP_TABLES: &str = "
DROP TABLE attempt;
DROP TABLE delivery;
DROP TABLE message_payload;
DROP TABLE message;
DROP TABLE endpoint;
ALTER TABLE endpoint_v11 RENAME TO endpoint;
ALTER TABLE message_v11 RENAME TO message;
ALTER TABLE message_payload_v11 RENAME TO message_payload;
ALTER TABLE delivery_v11 RENAME TO delivery;
ALTER TABLE attempt_v11 RENAME TO attempt;
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
    let before = [
        count("endpoint")?,
        count("message")?,
        count("message_payload")?,
        count("delivery")?,
        count("attempt")?,
    ];
    tracing::info!(
        messages = before[1],
        deliveries = before[3],
        attempts = before[4],
        "upgrading the store to schema version 11 (integer keys for messages and endpoints); this copies every row once"
    );
    // Foreign keys are switched off while the tables are swapped (the pragma does nothing
    // inside a transaction), then checked as a whole before the commit.
    conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE;")?;
    let swapped = (|| -> Result<()> {
        conn.execute_batch(NEW_TABLES)?;
        conn.execute_batch(COPY_ROWS)?;
        let after = [
            count("endpoint_v11")?,
            count("message_v11")?,
            count("message_payload_v11")?,
            count("delivery_v11")?,
            count("attempt_v11")?,
        ];
        if after != before {
            return Err(StoreError::Invalid(format!(
                "upgrade to schema version 11 would not keep every row (endpoint, message, payload, delivery, attempt: {before:?} before, {after:?} after); nothing was changed"
            )));
        }
        conn.execute_batch(SWAP_TABLES)?;
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
