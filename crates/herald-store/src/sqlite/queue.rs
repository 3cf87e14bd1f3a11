//! The delivery queue: a delivery row is the unit of work. Workers claim due rows by
//! leasing them (for SQLite the lease is belt and braces: one process owns the file),
//! record each attempt together with the row's next state in one write, and at start-up
//! release the leases a crashed process held.

use rusqlite::{params, Connection, OptionalExtension};

use super::route_cache::RouteCache;
use super::{endpoints, SqliteStore};
use crate::fair;
use crate::filters::{endpoint_columns_of, ENDPOINT_COLUMN_COUNT};
use crate::{
    endpoint_wants, job_from, next_state, AttemptRecord, DeliveryJob, Endpoint, NextStep, Result,
    REPLAY_MISSING_MAX,
};

fn claim_due(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<DeliveryJob>> {
    // Shared out fairly between applications and endpoints: see fair.rs.
    let mut candidates = fair::due(pending_endpoints(conn)?, now);
    let mut jobs = Vec::with_capacity(limit);
    for _ in 0..fair::ROUNDS {
        let left = limit - jobs.len();
        if left == 0 || candidates.is_empty() {
            break;
        }
        let mut filled = Vec::new();
        for (i, share) in fair::shares(&candidates, left) {
            let rows = claim_from_endpoint(
                conn,
                &candidates[i].endpoint_id,
                share,
                now,
                lease_until,
                &mut jobs,
            )?;
            if rows == share {
                filled.push(candidates[i].clone());
            }
        }
        candidates = filled;
    }
    Ok(jobs)
}

/// Every endpoint with pending deliveries, its application and when its oldest pending
/// delivery is due: one probe of `delivery_ready` per endpoint (a loose index scan).
fn pending_endpoints(conn: &Connection) -> Result<Vec<fair::Pending>> {
    let mut next = conn.prepare_cached(
        "SELECT d.ep, e.id, e.app_id, d.next_attempt_at FROM delivery d INDEXED BY delivery_ready \
         JOIN endpoint e ON e.ekey = d.ep WHERE d.status = 1 AND d.ep > ?1 ORDER BY d.ep, d.next_attempt_at LIMIT 1",
    )?;
    let (mut pending, mut after): (Vec<fair::Pending>, i64) = (Vec::new(), -1);
    loop {
        let found = next
            .query_row([after], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    fair::Pending {
                        endpoint_id: r.get(1)?,
                        app_id: r.get(2)?,
                        head: r.get::<_, Option<i64>>(3)?.unwrap_or(i64::MAX),
                    },
                ))
            })
            .optional()?;
        match found {
            Some((ekey, p)) => {
                after = ekey;
                pending.push(p);
            }
            None => return Ok(pending),
        }
    }
}

/// Leases up to `share` due deliveries of one endpoint, oldest first, and adds them to
/// `jobs` (a disabled endpoint's are canceled instead). Returns the rows it found.
fn claim_from_endpoint(
    conn: &Connection,
    endpoint_id: &str,
    share: usize,
    now: i64,
    lease_until: i64,
    jobs: &mut Vec<DeliveryJob>,
) -> Result<usize> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT d.id, m.id, d.attempts, d.trigger_type, p.payload, {}, a.throttle_rate, p.headers, m.event_type \
         FROM endpoint e JOIN delivery d INDEXED BY delivery_ready ON d.ep = e.ekey \
         JOIN application a ON a.id = e.app_id \
         JOIN message m ON m.seq = d.msg_seq LEFT JOIN message_payload p ON p.msg_seq = d.msg_seq \
         WHERE e.id = ?1 AND d.status = 1 AND d.next_attempt_at <= ?2 \
         AND (e.ordered = 0 OR NOT EXISTS (SELECT 1 FROM delivery d2 \
         JOIN message m2 ON m2.seq = d2.msg_seq WHERE d2.ep = d.ep AND d2.status = 1 \
         AND d2.msg_seq < d.msg_seq AND m2.ordering_key IS m.ordering_key)) \
         ORDER BY d.next_attempt_at LIMIT ?3",
        endpoint_columns_of("e")
    ))?;
    let rows = stmt
        .query_map(params![endpoint_id, now, share as i64], |r| {
            let ep = endpoints::from_row_at(r, 5)?;
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                ep,
                r.get::<_, Option<u32>>(5 + ENDPOINT_COLUMN_COUNT)?,
                r.get::<_, Option<String>>(6 + ENDPOINT_COLUMN_COUNT)?,
                r.get::<_, String>(7 + ENDPOINT_COLUMN_COUNT)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut lease = conn.prepare_cached(
        "UPDATE delivery SET leased = 1, next_attempt_at = ?2, updated_at = ?3 WHERE id = ?1",
    )?;
    let mut cancel = conn.prepare_cached(
        "UPDATE delivery SET status = 4, leased = 0, updated_at = ?2 WHERE id = ?1",
    )?;
    let found = rows.len();
    for (id, msg_id, attempts, trigger, payload, ep, app_rate, extra_headers, event_type) in rows {
        if ep.disabled {
            // A disabled endpoint receives nothing; its pending work is canceled, and
            // recover brings it back once the endpoint is enabled again.
            cancel.execute(params![id, now])?;
            continue;
        }
        lease.execute(params![id, lease_until, now])?;
        let mut job = job_from(
            &ep,
            id,
            msg_id,
            event_type,
            payload,
            extra_headers,
            attempts,
            trigger,
            now,
            lease_until,
        );
        job.app_throttle_rate = app_rate;
        jobs.push(job);
    }
    Ok(found)
}

/// Appends the attempt, moves its delivery on, and keeps the endpoint's failure streak;
/// returns the endpoint's id if this disabled it.
fn record(
    conn: &Connection,
    routes: &RouteCache,
    r: &AttemptRecord,
    auto_disable_after_ms: Option<i64>,
) -> Result<Option<String>> {
    let (delivery_id, attempt, next) = (r.delivery_id, &r.attempt, r.next);
    // The attempt refers to its message and endpoint by their keys, taken from the
    // delivery it belongs to.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO attempt (id, msg_seq, ep, url, status, response_status_code, response, \
             response_duration_ms, trigger_type, created_at) \
             SELECT ?1, d.msg_seq, d.ep, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM delivery d WHERE d.id = ?2",
        )?
        .execute(params![
            attempt.id, delivery_id, attempt.url, attempt.status,
            attempt.response_status_code, attempt.response, attempt.response_duration_ms, attempt.trigger_type,
            attempt.created_at
        ])?;
    if inserted == 0 {
        // The delivery is gone: its message or endpoint was deleted meanwhile.
        return Err(crate::StoreError::NotFound);
    }
    let (status, next_at) = next_state(next);
    conn.prepare_cached(
        "UPDATE delivery SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3, leased = 0, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![delivery_id, status, next_at, attempt.created_at])?;
    let (ep, at) = (&attempt.endpoint_id, attempt.created_at);
    if attempt.status == 0 {
        conn.prepare_cached(
            "UPDATE endpoint SET failing_since = NULL WHERE id = ?1 AND failing_since IS NOT NULL",
        )?
        .execute([ep])?;
        return Ok(None);
    }
    if attempt.status == 4 {
        // Cancelled by the transformation: nothing was sent, so nothing is learnt about
        // the endpoint's health.
        return Ok(None);
    }
    conn.prepare_cached(
        "UPDATE endpoint SET failing_since = ?2 WHERE id = ?1 AND failing_since IS NULL",
    )?
    .execute(params![ep, at])?;
    let disable = if next == NextStep::FailedAndDisableEndpoint {
        true
    } else if let Some(window) = auto_disable_after_ms {
        conn.prepare_cached("SELECT failing_since <= ?2 FROM endpoint WHERE id = ?1")?
            .query_row(params![ep, at - window], |r| r.get::<_, Option<bool>>(0))
            .optional()?
            .flatten()
            .unwrap_or(false)
    } else {
        false
    };
    if !disable {
        return Ok(None);
    }
    let changed = conn
        .prepare_cached(
            "UPDATE endpoint SET disabled = 1, updated_at = ?2 WHERE id = ?1 AND disabled = 0",
        )?
        .execute(params![ep, at])?;
    if changed == 0 {
        return Ok(None);
    }
    routes.clear();
    Ok(Some(ep.clone()))
}

#[async_trait::async_trait]
impl crate::Queue for SqliteStore {
    /// Leases up to `limit` due deliveries until `lease_until` and returns them.
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryJob>> {
        self.write(move |c| claim_due(c, now, lease_until, limit))
            .await
    }

    /// The earliest time any pending delivery becomes due.
    async fn next_due_at(&self) -> Result<Option<i64>> {
        self.read(|c| {
            // The scan a claim makes: the index has no order by time alone.
            Ok(pending_endpoints(c)?.iter().map(|p| p.head).min())
        })
        .await
    }

    /// Appends each attempt and moves its delivery to the next state: one writer job for
    /// the whole batch, so recording costs one savepoint, not one per attempt.
    /// When the batch fails (say one delivery's application was deleted meanwhile), each
    /// record is tried on its own so that one bad row does not lose the others.
    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
        auto_disable_after_ms: Option<i64>,
    ) -> Result<Vec<String>> {
        let routes = self.inner.routes.clone();
        let batch = records.clone();
        let whole = self
            .write(move |c| {
                let mut disabled = Vec::new();
                for r in &batch {
                    disabled.extend(record(c, &routes, r, auto_disable_after_ms)?);
                }
                Ok(disabled)
            })
            .await;
        if whole.is_ok() || records.len() == 1 {
            return whole;
        }
        let (mut disabled, mut first_error) = (Vec::new(), None);
        for r in records {
            let routes = self.inner.routes.clone();
            match self
                .write(move |c| record(c, &routes, &r, auto_disable_after_ms))
                .await
            {
                Ok(d) => disabled.extend(d),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(disabled), Err)
    }

    /// At start-up of the process that owns the file: deliveries leased by a process that
    /// died are due again now. Scheduled retries keep their time.
    async fn release_leases(&self, now: i64) -> Result<usize> {
        self.write(move |c| {
            // Destinations are leased by process too; the one owner has just started.
            c.execute("UPDATE destination SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL", [])?;
            Ok(c.execute("UPDATE delivery SET leased = 0, next_attempt_at = ?1 WHERE status = 1 AND leased = 1", [now])?)
        })
        .await
    }

    async fn queue_stats(&self) -> Result<(i64, Option<i64>)> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT count(*), min(CASE WHEN leased = 0 THEN next_attempt_at END) FROM delivery WHERE status = 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
        .await
    }

    async fn release_deliveries(&self, delivery_ids: Vec<i64>, now: i64) -> Result<usize> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE delivery SET leased = 0, next_attempt_at = ?2 WHERE id = ?1 AND status = 1 AND leased = 1",
            )?;
            let mut n = 0;
            for id in delivery_ids {
                n += stmt.execute(params![id, now])?;
            }
            Ok(n)
        })
        .await
    }

    async fn defer_deliveries(&self, deferrals: Vec<crate::Deferral>) -> Result<usize> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE delivery SET leased = 0, next_attempt_at = ?3 \
                 WHERE id = ?1 AND status = 1 AND leased = 1 AND next_attempt_at = ?2",
            )?;
            let mut n = 0;
            for d in deferrals {
                n += stmt.execute(params![d.delivery_id, d.lease_until, d.due_at])?;
            }
            Ok(n)
        })
        .await
    }

    async fn deliveries_due_now(&self, endpoint_id: &str, now: i64) -> Result<usize> {
        let endpoint_id = endpoint_id.to_string();
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE delivery SET next_attempt_at = ?2, updated_at = ?2 \
                 WHERE ep = (SELECT ekey FROM endpoint WHERE id = ?1) AND status = 1 AND leased = 0 AND next_attempt_at > ?2",
            )?
            .execute(params![endpoint_id, now])?)
        })
        .await
    }

    /// A manual resend of one message to one endpoint: the delivery (created if the
    /// endpoint was not subscribed) is leased to the caller for one immediate attempt.
    async fn resend(
        &self,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
        now: i64,
        lease_until: Option<i64>,
    ) -> Result<Option<DeliveryJob>> {
        let (app_id, msg_id, endpoint_id) = (
            app_id.to_string(),
            msg_id.to_string(),
            endpoint_id.to_string(),
        );
        self.write(move |c| {
            let ep = endpoints::find(c, &app_id, &endpoint_id)?;
            let (payload, extra_headers, event_type, seq): (Option<String>, Option<String>, String, i64) = c
                .prepare_cached("SELECT p.payload, p.headers, m.event_type, m.seq FROM message m LEFT JOIN message_payload p ON p.msg_seq = m.seq WHERE m.id = ?1")?
                .query_row([&msg_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?
                .ok_or(crate::StoreError::NotFound)?;
            let id: i64 = c
                .prepare_cached(
                    "INSERT INTO delivery (msg_seq, ep, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
                     SELECT ?1, ekey, 1, 0, ?3, ?5, 1, ?4, ?4 FROM endpoint WHERE id = ?2 \
                     ON CONFLICT (ep, msg_seq) DO UPDATE SET status = 1, next_attempt_at = ?3, leased = ?5, trigger_type = 1, updated_at = ?4 \
                     RETURNING id",
                )?
                .query_row(params![seq, ep.id, lease_until.unwrap_or(now), now, lease_until.is_some()], |r| r.get(0))?;
            let attempts: u32 = c.query_row("SELECT attempts FROM delivery WHERE id = ?1", [id], |r| r.get(0))?;
            Ok(lease_until.map(|until| job_from(&ep, id, msg_id, event_type, payload, extra_headers, attempts, 1, now, until)))
        })
        .await
    }

    /// Makes every delivery to the endpoint that failed (or was canceled) in [since, until)
    /// pending again, due now, as a manual attempt. Returns how many.
    async fn recover(
        &self,
        endpoint_id: &str,
        since: i64,
        until: i64,
        now: i64,
        include_succeeded: bool,
    ) -> Result<usize> {
        let id = endpoint_id.to_string();
        let statuses = if include_succeeded { "0, 2, 4" } else { "2, 4" };
        self.write(move |c| {
            Ok(c.execute(
                &format!(
                    "UPDATE delivery SET status = 1, next_attempt_at = ?4, leased = 0, trigger_type = 1, updated_at = ?4 \
                     WHERE ep = (SELECT ekey FROM endpoint WHERE id = ?1) AND status IN ({statuses}) AND created_at >= ?2 AND created_at < ?3"
                ),
                params![id, since, until, now],
            )?)
        })
        .await
    }

    async fn replay_missing(
        &self,
        ep: Endpoint,
        since: i64,
        until: i64,
        now: i64,
    ) -> Result<usize> {
        self.write(move |c| {
            let candidates = c
                .prepare_cached(
                    "SELECT m.seq, m.event_type, m.channels FROM message m WHERE m.app_id = ?1 AND m.created_at >= ?2 \
                     AND m.created_at < ?3 AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.ep = (SELECT ekey FROM endpoint WHERE id = ?4) AND d.msg_seq = m.seq) \
                     ORDER BY m.seq LIMIT ?5",
                )?
                .query_map(
                    params![ep.app_id, since, until, ep.id, REPLAY_MISSING_MAX as i64],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut insert = c.prepare_cached(
                "INSERT INTO delivery (msg_seq, ep, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
                 SELECT ?1, ekey, 1, 0, ?3, 0, 1, ?3, ?3 FROM endpoint WHERE id = ?2",
            )?;
            let mut n = 0;
            for (msg_seq, event_type, channels) in candidates {
                let channels: Option<Vec<String>> = crate::json_decode_opt(channels.as_deref());
                if endpoint_wants(&ep, &event_type, channels.as_deref()) {
                    insert.execute(params![msg_seq, ep.id, now])?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}
