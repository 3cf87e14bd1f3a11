//! Destinations on PostgreSQL: the rows, their consumers' positions, stream reads, and
//! the leases under which one node at a time sends a pushing destination.
//!
//! Several transactions insert messages at once and commit in any order, so a sequence
//! number alone could let a reader pass a message that commits a moment later with a
//! smaller number. Each message therefore also carries its transaction's id (`xid`), and
//! a read only takes messages of transactions older than the oldest one still running
//! (`pg_snapshot_xmin`): those are all committed or gone, and anything committed later
//! has a larger `xid`, so it sorts after every position already read.

use tokio_postgres::Row;

use super::{classify, PgStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::postgres::pool::PooledConn;
use crate::sql::Dialect;
use crate::stream::{self, ScannedRow, DESTINATION_COLUMNS};
use crate::{
    found, json_decode_opt, Destination, DestinationFailure, Result, StoreError, StreamBatch,
    StreamLag, StreamMessage, StreamPos, StreamRead, DESTINATION_UID_TAKEN, LAG_COUNT_MAX,
};

/// The oldest transaction still running: every message of an older one is settled.
const XMIN: &str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

fn from_row(r: &Row) -> Destination {
    stream::decode(
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
        StreamPos {
            xid: r.get(11),
            seq: r.get(12),
        },
        r.get(13),
        r.get(14),
        r.get(15),
        r.get(16),
        r.get(17),
        r.get(18),
        r.get(19),
    )
}

fn pos_from(r: &Row, at: usize) -> StreamPos {
    StreamPos {
        xid: r.get(at),
        seq: r.get(at + 1),
    }
}

/// Retention deleted these messages: their applications' horizons move up to the
/// highest position deleted.
pub(crate) async fn raise_horizons(
    conn: &mut PooledConn<'_>,
    pruned: Vec<(String, StreamPos)>,
) -> Result<()> {
    let mut highest: std::collections::HashMap<String, StreamPos> = Default::default();
    for (app_id, pos) in pruned {
        let h = highest.entry(app_id).or_insert(pos);
        *h = (*h).max(pos);
    }
    for (app_id, pos) in highest {
        conn.execute(
            "INSERT INTO stream_horizon (app_id, pos_xid, pos_seq) VALUES ($1, $2, $3) \
             ON CONFLICT (app_id) DO UPDATE SET pos_xid = excluded.pos_xid, pos_seq = excluded.pos_seq \
             WHERE (stream_horizon.pos_xid, stream_horizon.pos_seq) < (excluded.pos_xid, excluded.pos_seq)",
            &[&app_id, &pos.xid, &pos.seq],
        )
        .await?;
    }
    Ok(())
}

async fn tail(conn: &mut PooledConn<'_>) -> Result<StreamPos> {
    let xmin: i64 = conn
        .query_opt(&format!("SELECT {XMIN}"), &[])
        .await?
        .expect("one row")
        .get(0);
    // Every message of a transaction before the oldest running one is at or before
    // this; every later message has a larger xid.
    Ok(StreamPos {
        xid: xmin - 1,
        seq: StreamPos::MAX_SEQ,
    })
}

async fn horizon(conn: &mut PooledConn<'_>, app_id: &str) -> Result<StreamPos> {
    Ok(conn
        .query_opt(
            "SELECT pos_xid, pos_seq FROM stream_horizon WHERE app_id = $1",
            &[&app_id],
        )
        .await?
        .map(|r| pos_from(&r, 0))
        .unwrap_or_default())
}

async fn get_by_id(conn: &mut PooledConn<'_>, id: &str) -> Result<Destination> {
    conn.query_opt(
        &format!("SELECT {DESTINATION_COLUMNS} FROM destination WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound)
}

#[async_trait::async_trait]
impl crate::Destinations for PgStore {
    async fn destination_insert(&self, d: Destination, max_per_app: usize) -> Result<Destination> {
        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            // Serialises inserts per application, so the bound holds between nodes.
            conn.query_opt(
                "SELECT 1 FROM application WHERE id = $1 FOR UPDATE",
                &[&d.app_id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
            let count: i64 = conn
                .query_opt(
                    "SELECT count(*) FROM destination WHERE app_id = $1",
                    &[&d.app_id],
                )
                .await?
                .expect("one row")
                .get(0);
            if count as usize >= max_per_app {
                return Err(stream::too_many(max_per_app));
            }
            let mut d = d;
            d.position = tail(&mut conn).await?;
            let v = stream::encode(&d);
            conn.execute(
                &format!(
                    "INSERT INTO destination ({DESTINATION_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
                ),
                &[
                    &d.id,
                    &d.app_id,
                    &v.uid,
                    &d.kind,
                    &v.status,
                    &v.config,
                    &d.batch_size,
                    &d.max_wait_secs,
                    &v.event_types,
                    &v.channels,
                    &v.metadata,
                    &d.position.xid,
                    &d.position.seq,
                    &d.failure_reason,
                    &d.next_retry_at,
                    &d.failures,
                    &d.created_at,
                    &d.updated_at,
                    &v.payload_filter,
                    &v.transformation,
                ],
            )
            .await
            .map_err(|e| classify(e, DESTINATION_UID_TAKEN))?;
            Ok(d)
        }
        .await;
        conn.finish(outcome).await
    }

    async fn destination_get(&self, app_id: &str, id_or_uid: &str) -> Result<Destination> {
        let mut conn = self.pool.get().await?;
        conn.query_opt(
            &format!(
                "SELECT {DESTINATION_COLUMNS} FROM destination WHERE app_id = $1 AND (id = $2 OR uid = $2) \
                 ORDER BY id = $2 DESC LIMIT 1"
            ),
            &[&app_id, &id_or_uid],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or(StoreError::NotFound)
    }

    async fn destination_list(&self, app_id: &str, q: ListQuery) -> Result<Page<Destination>> {
        let select = format!("SELECT {DESTINATION_COLUMNS} FROM destination");
        let list = simple_list(
            Dialect::Postgres,
            &select,
            Some(("app_id", app_id)),
            &q,
            "id",
        );
        let rows = self.query_built(&list, from_row).await?;
        Ok(q.finish(rows, |d| d.id.clone()))
    }

    async fn destination_set_transformation(
        &self,
        destination_id: &str,
        transformation: Option<crate::Transformation>,
    ) -> Result<()> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE destination SET transformation = $2 WHERE id = $1",
                &[
                    &destination_id,
                    &crate::Transformation::stored(transformation.as_ref()),
                ],
            )
            .await?,
        )
    }

    async fn destination_update(&self, d: Destination) -> Result<Destination> {
        let mut conn = self.pool.get().await?;
        let v = stream::encode(&d);
        found(
            conn.execute(
                "UPDATE destination SET uid = $2, status = $3, config = $4, batch_size = $5, \
                 max_wait_secs = $6, event_types = $7, channels = $8, metadata = $9, \
                 failure_reason = $10, next_retry_at = $11, failures = $12, updated_at = $13, \
                 payload_filter = $14 WHERE id = $1",
                &[
                    &d.id,
                    &v.uid,
                    &v.status,
                    &v.config,
                    &d.batch_size,
                    &d.max_wait_secs,
                    &v.event_types,
                    &v.channels,
                    &v.metadata,
                    &d.failure_reason,
                    &d.next_retry_at,
                    &d.failures,
                    &d.updated_at,
                    &v.payload_filter,
                ],
            )
            .await
            .map_err(|e| classify(e, DESTINATION_UID_TAKEN))?,
        )?;
        get_by_id(&mut conn, &d.id).await
    }

    async fn destination_delete(&self, id: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        // The consumers' positions and the poller token go by cascade.
        found(
            conn.execute("DELETE FROM destination WHERE id = $1", &[&id])
                .await?,
        )
    }

    async fn destination_seek(&self, id: &str, pos: StreamPos, now: i64) -> Result<Destination> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE destination SET pos_xid = $2, pos_seq = $3, failures = 0, failure_reason = NULL, \
                 next_retry_at = NULL, status = CASE status WHEN 'disabled' THEN 'disabled' ELSE 'enabled' END, \
                 updated_at = $4 WHERE id = $1",
                &[&id, &pos.xid, &pos.seq, &now],
            )
            .await?,
        )?;
        get_by_id(&mut conn, id).await
    }

    async fn stream_tail(&self) -> Result<StreamPos> {
        let mut conn = self.pool.get().await?;
        tail(&mut conn).await
    }

    async fn stream_position_at(&self, app_id: &str, at: i64) -> Result<StreamPos> {
        let mut conn = self.pool.get().await?;
        let first = conn
            .query_opt(
                &format!(
                    "SELECT xid, seq FROM message WHERE app_id = $1 AND created_at >= $2 AND xid < {XMIN} \
                     ORDER BY xid, seq LIMIT 1"
                ),
                &[&app_id, &at],
            )
            .await?;
        let pos = match first {
            Some(r) => {
                let p = pos_from(&r, 0);
                StreamPos {
                    xid: p.xid,
                    seq: p.seq - 1,
                }
            }
            None => tail(&mut conn).await?,
        };
        Ok(pos.max(horizon(&mut conn, app_id).await?))
    }

    async fn stream_read(&self, r: StreamRead) -> Result<StreamBatch> {
        let mut conn = self.pool.get().await?;
        stream::expired(r.after, horizon(&mut conn, &r.app_id).await?)?;
        let rows = conn
            .query(
                &format!(
                    "SELECT xid, seq, id, event_id, event_type, channels, created_at FROM message \
                     WHERE app_id = $1 AND (xid, seq) > ($2, $3) AND xid < {XMIN} \
                     ORDER BY xid, seq LIMIT $4"
                ),
                &[
                    &r.app_id,
                    &r.after.xid,
                    &r.after.seq,
                    &(stream::window(&r) as i64),
                ],
            )
            .await?;
        let scanned = rows
            .iter()
            .map(|row| ScannedRow {
                pos: pos_from(row, 0),
                id: row.get(2),
                event_id: row.get(3),
                event_type: row.get(4),
                channels: json_decode_opt(row.get(5)),
                created_at: row.get(6),
            })
            .collect();
        let (kept, next, done) = stream::select(&r, scanned);
        let ids: Vec<&str> = kept.iter().map(|k| k.id.as_str()).collect();
        let mut payloads: std::collections::HashMap<String, (Option<String>, Option<String>)> =
            Default::default();
        if !ids.is_empty() {
            for row in conn
                .query(
                    "SELECT msg_id, payload, headers FROM message_payload WHERE msg_id = ANY($1)",
                    &[&ids],
                )
                .await?
            {
                payloads.insert(row.get(0), (row.get(1), row.get(2)));
            }
        }
        let mut messages: Vec<StreamMessage> = kept
            .into_iter()
            .map(|row| {
                let (body, headers) = payloads.remove(&row.id).unwrap_or((None, None));
                StreamMessage {
                    pos: row.pos,
                    id: row.id,
                    event_id: row.event_id,
                    event_type: row.event_type,
                    channels: row.channels,
                    payload: body.unwrap_or_else(|| "{}".into()),
                    headers: json_decode_opt(headers.as_deref()).unwrap_or_default(),
                    created_at: row.created_at,
                }
            })
            .collect();
        stream::keep_passing(&r, &mut messages);
        Ok(StreamBatch {
            messages,
            next,
            done,
        })
    }

    async fn stream_lag(
        &self,
        app_id: &str,
        after: StreamPos,
        event_types: Option<Vec<String>>,
    ) -> Result<StreamLag> {
        let mut conn = self.pool.get().await?;
        let types = event_types.filter(|l| !l.is_empty());
        let filter = if types.is_some() {
            " AND event_type = ANY($4)"
        } else {
            " AND $4::text[] IS NULL"
        };
        let row = conn
            .query_opt(
                &format!(
                    "SELECT (SELECT count(*) FROM (SELECT 1 FROM message WHERE app_id = $1 AND (xid, seq) > ($2, $3){filter} LIMIT {LAG_COUNT_MAX}) l), \
                            (SELECT created_at FROM message WHERE app_id = $1 AND (xid, seq) > ($2, $3){filter} ORDER BY xid, seq LIMIT 1)"
                ),
                &[&app_id, &after.xid, &after.seq, &types],
            )
            .await?
            .expect("one row");
        Ok(StreamLag {
            messages: row.get(0),
            oldest_created_at: row.get(1),
        })
    }

    async fn consumer_position(
        &self,
        destination_id: &str,
        consumer_id: &str,
    ) -> Result<Option<StreamPos>> {
        let mut conn = self.pool.get().await?;
        Ok(conn
            .query_opt(
                "SELECT pos_xid, pos_seq FROM destination_consumer WHERE destination_id = $1 AND consumer_id = $2",
                &[&destination_id, &consumer_id],
            )
            .await?
            .map(|r| pos_from(&r, 0)))
    }

    async fn consumer_save(
        &self,
        destination_id: &str,
        consumer_id: &str,
        pos: StreamPos,
        now: i64,
    ) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO destination_consumer (destination_id, consumer_id, pos_xid, pos_seq, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (destination_id, consumer_id) DO UPDATE \
             SET pos_xid = excluded.pos_xid, pos_seq = excluded.pos_seq, updated_at = excluded.updated_at",
            &[&destination_id, &consumer_id, &pos.xid, &pos.seq, &now],
        )
        .await?;
        Ok(())
    }

    async fn destination_token_replace(
        &self,
        d: &Destination,
        token_id: &str,
        hash: &str,
        now: i64,
        old_expires_at: i64,
    ) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            conn.query_opt(
                "SELECT 1 FROM destination WHERE id = $1 FOR UPDATE",
                &[&d.id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
            if old_expires_at <= now {
                conn.execute("DELETE FROM api_token WHERE destination_id = $1", &[&d.id])
                    .await?;
            } else {
                conn.execute(
                    "UPDATE api_token SET expires_at = least(coalesce(expires_at, $2), $2) WHERE destination_id = $1",
                    &[&d.id, &old_expires_at],
                )
                .await?;
            }
            conn.execute(
                "INSERT INTO api_token (id, hash, name, app_id, created_at, expires_at, destination_id) \
                 VALUES ($1, $2, $3, $4, $5, NULL, $6)",
                &[
                    &token_id,
                    &hash,
                    &format!("poller {}", d.id),
                    &d.app_id,
                    &now,
                    &d.id,
                ],
            )
            .await?;
            Ok(())
        }
        .await;
        conn.finish(outcome).await
    }

    async fn destination_claim(
        &self,
        kinds: Vec<String>,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Destination>> {
        let mut conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "UPDATE destination SET lease_owner = $2, lease_until = $4 WHERE id IN ( \
                       SELECT id FROM destination WHERE kind = ANY($1) AND status IN ('enabled', 'retrying') \
                       AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < $3) \
                       ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) \
                     RETURNING {DESTINATION_COLUMNS}"
                ),
                &[&kinds, &owner, &now, &lease_until, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    async fn destination_release(&self, id: &str, owner: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "UPDATE destination SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
            &[&id, &owner],
        )
        .await?;
        Ok(())
    }

    async fn destination_advance(
        &self,
        id: &str,
        owner: &str,
        from: StreamPos,
        to: StreamPos,
        now: i64,
    ) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        Ok(conn
            .execute(
                "UPDATE destination SET pos_xid = $5, pos_seq = $6, failures = 0, failure_reason = NULL, \
                 next_retry_at = NULL, status = CASE status WHEN 'retrying' THEN 'enabled' ELSE status END, \
                 updated_at = $7 WHERE id = $1 AND lease_owner = $2 AND pos_xid = $3 AND pos_seq = $4",
                &[&id, &owner, &from.xid, &from.seq, &to.xid, &to.seq, &now],
            )
            .await?
            == 1)
    }

    async fn destination_fail(
        &self,
        id: &str,
        owner: &str,
        at: StreamPos,
        failure: DestinationFailure,
        now: i64,
    ) -> Result<bool> {
        let DestinationFailure {
            status,
            reason,
            next_retry_at,
        } = failure;
        let mut conn = self.pool.get().await?;
        Ok(conn
            .execute(
                "UPDATE destination SET failures = failures + 1, status = $5, failure_reason = $6, \
                 next_retry_at = $7, updated_at = $8 \
                 WHERE id = $1 AND lease_owner = $2 AND pos_xid = $3 AND pos_seq = $4 AND status IN ('enabled', 'retrying')",
                &[&id, &owner, &at.xid, &at.seq, &status.as_str(), &reason, &next_retry_at, &now],
            )
            .await?
            == 1)
    }
}
