//! Destinations on SQLite: the rows, their consumers' positions, stream reads by
//! `(app_id, seq)`, and the leases of pushing destinations.
//!
//! `seq` is given by the writer thread from a counter (see `next_seq`), so a message's
//! position follows commit order and a reader never sees one appear behind it.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{conflict_on_unique, found, query_rows, SqliteStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::stream::{self, ScannedRow, DESTINATION_COLUMNS};
use crate::{
    json_decode_opt, Destination, DestinationFailure, Result, StoreError, StreamBatch, StreamLag,
    StreamMessage, StreamPos, StreamRead, DESTINATION_UID_TAKEN, LAG_COUNT_MAX,
};

/// The first stream position to give after a restart: past every message kept, every
/// position retention deleted and every position a destination or consumer holds, so
/// that no new message lands behind a reader even when the newest rows were deleted.
pub(crate) fn next_seq(conn: &Connection) -> Result<i64> {
    let high: i64 = conn.query_row(
        "SELECT max(coalesce((SELECT max(seq) FROM message), 0), \
                    coalesce((SELECT max(pos_seq) FROM stream_horizon), 0), \
                    coalesce((SELECT max(pos_seq) FROM destination), 0), \
                    coalesce((SELECT max(pos_seq) FROM destination_consumer), 0))",
        [],
        |r| r.get(0),
    )?;
    Ok(high + 1)
}

/// Retention deleted these messages (application, seq): their applications' horizons
/// move up to the highest position deleted.
pub(crate) fn raise_horizons(conn: &Connection, pruned: &[(String, Option<i64>)]) -> Result<()> {
    let mut highest: std::collections::HashMap<&str, i64> = Default::default();
    for (app_id, seq) in pruned {
        if let Some(seq) = seq {
            let h = highest.entry(app_id.as_str()).or_insert(*seq);
            *h = (*h).max(*seq);
        }
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO stream_horizon (app_id, pos_xid, pos_seq) VALUES (?1, 0, ?2) \
         ON CONFLICT (app_id) DO UPDATE SET pos_seq = max(pos_seq, excluded.pos_seq)",
    )?;
    for (app_id, seq) in highest {
        upsert.execute(params![app_id, seq])?;
    }
    Ok(())
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Destination> {
    Ok(stream::decode(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get_ref(4)?.as_str()?,
        r.get_ref(5)?.as_str()?,
        r.get(6)?,
        r.get(7)?,
        r.get_ref(8)?.as_str_or_null()?,
        r.get_ref(9)?.as_str_or_null()?,
        r.get_ref(10)?.as_str()?,
        StreamPos {
            xid: r.get(11)?,
            seq: r.get(12)?,
        },
        r.get(13)?,
        r.get(14)?,
        r.get(15)?,
        r.get(16)?,
        r.get(17)?,
        r.get_ref(18)?.as_str_or_null()?,
        r.get_ref(19)?.as_str_or_null()?,
    ))
}

fn find(conn: &Connection, app_id: &str, id_or_uid: &str) -> Result<Destination> {
    conn.prepare_cached(&format!(
        "SELECT {DESTINATION_COLUMNS} FROM destination WHERE app_id = ?1 AND (id = ?2 OR uid = ?2) \
         ORDER BY id = ?2 DESC LIMIT 1"
    ))?
    .query_row([app_id, id_or_uid], from_row)
    .optional()?
    .ok_or(StoreError::NotFound)
}

fn get_by_id(conn: &Connection, id: &str) -> Result<Destination> {
    conn.prepare_cached(&format!(
        "SELECT {DESTINATION_COLUMNS} FROM destination WHERE id = ?1"
    ))?
    .query_row([id], from_row)
    .optional()?
    .ok_or(StoreError::NotFound)
}

fn horizon(conn: &Connection, app_id: &str) -> Result<StreamPos> {
    Ok(conn
        .prepare_cached("SELECT pos_xid, pos_seq FROM stream_horizon WHERE app_id = ?1")?
        .query_row([app_id], |r| {
            Ok(StreamPos {
                xid: r.get(0)?,
                seq: r.get(1)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

fn tail(conn: &Connection) -> Result<StreamPos> {
    let seq: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM message")?
        .query_row([], |r| r.get(0))?;
    Ok(StreamPos { xid: 0, seq })
}

fn read(conn: &Connection, r: &StreamRead) -> Result<StreamBatch> {
    stream::expired(r.after, horizon(conn, &r.app_id)?)?;
    let rows = conn
        .prepare_cached(
            "SELECT seq, id, event_id, event_type, channels, created_at FROM message \
             WHERE app_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?
        .query_map(
            params![r.app_id, r.after.seq, stream::window(r) as i64],
            |row| {
                Ok(ScannedRow {
                    pos: StreamPos {
                        xid: 0,
                        seq: row.get(0)?,
                    },
                    id: row.get(1)?,
                    event_id: row.get(2)?,
                    event_type: row.get(3)?,
                    channels: json_decode_opt(row.get_ref(4)?.as_str_or_null()?),
                    created_at: row.get(5)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (kept, next, done) = stream::select(r, rows);
    let mut payload =
        conn.prepare_cached("SELECT payload, headers FROM message_payload WHERE msg_seq = ?1")?;
    let mut messages = Vec::with_capacity(kept.len());
    for row in kept {
        let (body, headers): (Option<String>, Option<String>) = payload
            .query_row([row.pos.seq], |p| Ok((p.get(0)?, p.get(1)?)))
            .optional()?
            .unwrap_or((None, None));
        messages.push(StreamMessage {
            pos: row.pos,
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            channels: row.channels,
            payload: body.unwrap_or_else(|| "{}".into()),
            headers: json_decode_opt(headers.as_deref()).unwrap_or_default(),
            created_at: row.created_at,
        });
    }
    stream::keep_passing(r, &mut messages);
    Ok(StreamBatch {
        messages,
        next,
        done,
    })
}

fn event_type_filter(event_types: &Option<Vec<String>>) -> (String, Vec<rusqlite::types::Value>) {
    match event_types.as_ref().filter(|l| !l.is_empty()) {
        Some(list) => (
            format!(" AND event_type IN ({})", vec!["?"; list.len()].join(", ")),
            list.iter()
                .map(|t| rusqlite::types::Value::Text(t.clone()))
                .collect(),
        ),
        None => (String::new(), Vec::new()),
    }
}

#[async_trait::async_trait]
impl crate::Destinations for SqliteStore {
    async fn destination_insert(&self, d: Destination, max_per_app: usize) -> Result<Destination> {
        self.write(move |c| {
            let count: i64 = c
                .prepare_cached("SELECT count(*) FROM destination WHERE app_id = ?1")?
                .query_row([&d.app_id], |r| r.get(0))?;
            if count as usize >= max_per_app {
                return Err(stream::too_many(max_per_app));
            }
            let mut d = d;
            d.position = tail(c)?;
            let v = stream::encode(&d);
            c.prepare_cached(&format!(
                "INSERT INTO destination ({DESTINATION_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
            ))?
            .execute(params![
                d.id,
                d.app_id,
                v.uid,
                d.kind,
                v.status,
                v.config,
                d.batch_size,
                d.max_wait_secs,
                v.event_types,
                v.channels,
                v.metadata,
                d.position.xid,
                d.position.seq,
                d.failure_reason,
                d.next_retry_at,
                d.failures,
                d.created_at,
                d.updated_at,
                v.payload_filter,
                v.transformation
            ])
            .map_err(|e| conflict_on_unique(e, DESTINATION_UID_TAKEN))?;
            Ok(d)
        })
        .await
    }

    async fn destination_get(&self, app_id: &str, id_or_uid: &str) -> Result<Destination> {
        let (app_id, key) = (app_id.to_string(), id_or_uid.to_string());
        self.read(move |c| find(c, &app_id, &key)).await
    }

    async fn destination_list(&self, app_id: &str, q: ListQuery) -> Result<Page<Destination>> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let select = format!("SELECT {DESTINATION_COLUMNS} FROM destination");
            let list = simple_list(
                Dialect::Sqlite,
                &select,
                Some(("app_id", &app_id)),
                &q,
                "id",
            );
            let rows = query_rows(c, &list, from_row)?;
            Ok(q.finish(rows, |d| d.id.clone()))
        })
        .await
    }

    async fn destination_set_transformation(
        &self,
        destination_id: &str,
        transformation: Option<crate::Transformation>,
    ) -> Result<()> {
        let (id, stored) = (
            destination_id.to_string(),
            crate::Transformation::stored(transformation.as_ref()),
        );
        self.write(move |c| {
            found(c.execute(
                "UPDATE destination SET transformation = ?2 WHERE id = ?1",
                params![id, stored],
            )?)
        })
        .await
    }

    async fn destination_update(&self, d: Destination) -> Result<Destination> {
        self.write(move |c| {
            let v = stream::encode(&d);
            found(
                c.prepare_cached(
                    "UPDATE destination SET uid = ?2, status = ?3, config = ?4, batch_size = ?5, \
                     max_wait_secs = ?6, event_types = ?7, channels = ?8, metadata = ?9, \
                     failure_reason = ?10, next_retry_at = ?11, failures = ?12, updated_at = ?13, \
                     payload_filter = ?14 WHERE id = ?1",
                )?
                .execute(params![
                    d.id,
                    v.uid,
                    v.status,
                    v.config,
                    d.batch_size,
                    d.max_wait_secs,
                    v.event_types,
                    v.channels,
                    v.metadata,
                    d.failure_reason,
                    d.next_retry_at,
                    d.failures,
                    d.updated_at,
                    v.payload_filter
                ])
                .map_err(|e| conflict_on_unique(e, DESTINATION_UID_TAKEN))?,
            )?;
            get_by_id(c, &d.id)
        })
        .await
    }

    async fn destination_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            found(c.execute("DELETE FROM destination WHERE id = ?1", [&id])?)?;
            c.execute("DELETE FROM api_token WHERE destination_id = ?1", [&id])?;
            Ok(())
        })
        .await
    }

    async fn destination_seek(&self, id: &str, pos: StreamPos, now: i64) -> Result<Destination> {
        let id = id.to_string();
        self.write(move |c| {
            found(c.execute(
                "UPDATE destination SET pos_xid = ?2, pos_seq = ?3, failures = 0, failure_reason = NULL, \
                 next_retry_at = NULL, status = CASE status WHEN 'disabled' THEN 'disabled' ELSE 'enabled' END, \
                 updated_at = ?4 WHERE id = ?1",
                params![id, pos.xid, pos.seq, now],
            )?)?;
            get_by_id(c, &id)
        })
        .await
    }

    async fn stream_tail(&self) -> Result<StreamPos> {
        self.read(tail).await
    }

    async fn stream_position_at(&self, app_id: &str, at: i64) -> Result<StreamPos> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let first: Option<i64> = c
                .prepare_cached(
                    "SELECT min(seq) FROM message WHERE app_id = ?1 AND created_at >= ?2",
                )?
                .query_row(params![app_id, at], |r| r.get(0))?;
            let pos = match first {
                Some(seq) => StreamPos {
                    xid: 0,
                    seq: seq - 1,
                },
                None => tail(c)?,
            };
            // Nothing before what retention kept can be read any more.
            Ok(pos.max(horizon(c, &app_id)?))
        })
        .await
    }

    async fn stream_read(&self, r: StreamRead) -> Result<StreamBatch> {
        self.read(move |c| read(c, &r)).await
    }

    async fn stream_lag(
        &self,
        app_id: &str,
        after: StreamPos,
        event_types: Option<Vec<String>>,
    ) -> Result<StreamLag> {
        let app_id = app_id.to_string();
        self.read(move |c| {
            let (filter, types) = event_type_filter(&event_types);
            let mut args = vec![
                rusqlite::types::Value::Text(app_id),
                rusqlite::types::Value::Integer(after.seq),
            ];
            args.extend(types);
            let messages: i64 = c
                .prepare_cached(&format!(
                    "SELECT count(*) FROM (SELECT 1 FROM message WHERE app_id = ? AND seq > ?{filter} LIMIT {LAG_COUNT_MAX})"
                ))?
                .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
            let oldest_created_at: Option<i64> = c
                .prepare_cached(&format!(
                    "SELECT created_at FROM message WHERE app_id = ? AND seq > ?{filter} ORDER BY seq LIMIT 1"
                ))?
                .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))
                .optional()?;
            Ok(StreamLag {
                messages,
                oldest_created_at,
            })
        })
        .await
    }

    async fn consumer_position(
        &self,
        destination_id: &str,
        consumer_id: &str,
    ) -> Result<Option<StreamPos>> {
        let (d, k) = (destination_id.to_string(), consumer_id.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT pos_xid, pos_seq FROM destination_consumer WHERE destination_id = ?1 AND consumer_id = ?2",
            )?
            .query_row([d, k], |r| {
                Ok(StreamPos {
                    xid: r.get(0)?,
                    seq: r.get(1)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn consumer_save(
        &self,
        destination_id: &str,
        consumer_id: &str,
        pos: StreamPos,
        now: i64,
    ) -> Result<()> {
        let (d, k) = (destination_id.to_string(), consumer_id.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO destination_consumer (destination_id, consumer_id, pos_xid, pos_seq, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (destination_id, consumer_id) DO UPDATE \
                 SET pos_xid = excluded.pos_xid, pos_seq = excluded.pos_seq, updated_at = excluded.updated_at",
            )?
            .execute(params![d, k, pos.xid, pos.seq, now])?;
            Ok(())
        })
        .await
    }

    async fn destination_token_replace(
        &self,
        d: &Destination,
        token_id: &str,
        hash: &str,
        now: i64,
        old_expires_at: i64,
    ) -> Result<()> {
        let (dest, app) = (d.id.clone(), d.app_id.clone());
        let (token_id, hash) = (token_id.to_string(), hash.to_string());
        self.write(move |c| {
            let exists: i64 =
                c.query_row("SELECT count(*) FROM destination WHERE id = ?1", [&dest], |r| r.get(0))?;
            found(exists as usize)?;
            if old_expires_at <= now {
                c.execute("DELETE FROM api_token WHERE destination_id = ?1", [&dest])?;
            } else {
                c.execute(
                    "UPDATE api_token SET expires_at = min(coalesce(expires_at, ?2), ?2) WHERE destination_id = ?1",
                    params![dest, old_expires_at],
                )?;
            }
            c.execute(
                "INSERT INTO api_token (id, hash, name, app_id, created_at, expires_at, destination_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
                params![token_id, hash, format!("poller {dest}"), app, now, dest],
            )?;
            Ok(())
        })
        .await
    }

    async fn destination_claim(
        &self,
        kinds: Vec<String>,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Destination>> {
        let owner = owner.to_string();
        self.write(move |c| {
            let kinds = crate::json_encode(&kinds);
            let ids: Vec<String> = c
                .prepare_cached(
                    "SELECT id FROM destination WHERE kind IN (SELECT value FROM json_each(?1)) \
                     AND status IN ('enabled', 'retrying') \
                     AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_until < ?3) ORDER BY id LIMIT ?4",
                )?
                .query_map(params![kinds, owner, now, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                c.execute(
                    "UPDATE destination SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1",
                    params![id, owner, lease_until],
                )?;
                out.push(get_by_id(c, &id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn destination_release(&self, id: &str, owner: &str) -> Result<()> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE destination SET lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
                params![id, owner],
            )?;
            Ok(())
        })
        .await
    }

    async fn destination_advance(
        &self,
        id: &str,
        owner: &str,
        from: StreamPos,
        to: StreamPos,
        now: i64,
    ) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE destination SET pos_xid = ?5, pos_seq = ?6, failures = 0, failure_reason = NULL, \
                 next_retry_at = NULL, status = CASE status WHEN 'retrying' THEN 'enabled' ELSE status END, \
                 updated_at = ?7 WHERE id = ?1 AND lease_owner = ?2 AND pos_xid = ?3 AND pos_seq = ?4",
                params![id, owner, from.xid, from.seq, to.xid, to.seq, now],
            )? == 1)
        })
        .await
    }

    async fn destination_fail(
        &self,
        id: &str,
        owner: &str,
        at: StreamPos,
        failure: DestinationFailure,
        now: i64,
    ) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        let DestinationFailure {
            status,
            reason,
            next_retry_at,
        } = failure;
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE destination SET failures = failures + 1, status = ?5, failure_reason = ?6, \
                 next_retry_at = ?7, updated_at = ?8 \
                 WHERE id = ?1 AND lease_owner = ?2 AND pos_xid = ?3 AND pos_seq = ?4 AND status IN ('enabled', 'retrying')",
                params![id, owner, at.xid, at.seq, status.as_str(), reason, next_retry_at, now],
            )? == 1)
        })
        .await
    }
}
