//! The delivery queue on PostgreSQL. Due deliveries are claimed with
//! `FOR UPDATE SKIP LOCKED`: concurrent claims by other nodes skip the rows this one is
//! leasing instead of waiting for them or taking them twice. A claimed row stays
//! pending with `leased = true` and `next_attempt_at` at the lease's end, so if this
//! node dies its work becomes due for everyone when the lease runs out.

use std::collections::HashMap;

use tokio_postgres::types::Type;

use super::catalog::endpoint_from_row;
use super::{parents, PgStore, DUE_CHANNEL};
use crate::fair;
use crate::filters::{endpoint_columns_of, ENDPOINT_COLUMN_COUNT};
use crate::{
    endpoint_wants, job_from, next_state, AttemptRecord, DeliveryJob, Endpoint, NextStep, Result,
    REPLAY_MISSING_MAX,
};

impl PgStore {
    /// Writes a batch of attempts and their deliveries' next states in one transaction
    /// of three statements, whatever the batch's size.
    async fn record_batch(
        &self,
        records: &[AttemptRecord],
        auto_disable_after_ms: Option<i64>,
    ) -> Result<Vec<String>> {
        let a: Vec<_> = records.iter().map(|r| &r.attempt).collect();
        let ids: Vec<&str> = a.iter().map(|x| x.id.as_str()).collect();
        let msg_ids: Vec<&str> = a.iter().map(|x| x.msg_id.as_str()).collect();
        let endpoint_ids: Vec<&str> = a.iter().map(|x| x.endpoint_id.as_str()).collect();
        let app_ids: Vec<&str> = a.iter().map(|x| x.app_id.as_str()).collect();
        let urls: Vec<&str> = a.iter().map(|x| x.url.as_str()).collect();
        let statuses: Vec<i64> = a.iter().map(|x| x.status).collect();
        let codes: Vec<i64> = a.iter().map(|x| x.response_status_code).collect();
        let responses: Vec<&str> = a.iter().map(|x| x.response.as_str()).collect();
        let durations: Vec<i64> = a.iter().map(|x| x.response_duration_ms).collect();
        let triggers: Vec<i64> = a.iter().map(|x| x.trigger_type).collect();
        let created: Vec<i64> = a.iter().map(|x| x.created_at).collect();
        let delivery_ids: Vec<i64> = records.iter().map(|r| r.delivery_id).collect();
        let (next_status, next_at): (Vec<i64>, Vec<Option<i64>>) =
            records.iter().map(|r| next_state(r.next)).unzip();
        let succeeded: Vec<&str> = records
            .iter()
            .filter(|r| r.attempt.status == 0)
            .map(|r| r.attempt.endpoint_id.as_str())
            .collect();
        let (failed, failed_at): (Vec<&str>, Vec<i64>) = records
            .iter()
            // Cancelled attempts (4) sent nothing and say nothing about health.
            .filter(|r| r.attempt.status == 2)
            .map(|r| (r.attempt.endpoint_id.as_str(), r.attempt.created_at))
            .unzip();
        let gone: Vec<&str> = records
            .iter()
            .filter(|r| r.next == NextStep::FailedAndDisableEndpoint)
            .map(|r| r.attempt.endpoint_id.as_str())
            .collect();
        let latest = created.iter().copied().max().unwrap_or(0);

        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            // The delivery rows first: updating them locks them, so they cannot be deleted
            // before the attempts under them are in (parents.rs). A delivery deleted
            // meanwhile (its endpoint or application was) fails the batch, which is then
            // retried record by record so that only that record fails.
            let updated = conn
                .execute_planned_each_time(
                    "UPDATE delivery d SET status = u.status, attempts = d.attempts + 1, next_attempt_at = u.next_at, \
                     leased = FALSE, updated_at = u.at \
                     FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[]) AS u(id, status, next_at, at) WHERE d.id = u.id",
                    &[
                        (&delivery_ids, Type::INT8_ARRAY),
                        (&next_status, Type::INT8_ARRAY),
                        (&next_at, Type::INT8_ARRAY),
                        (&created, Type::INT8_ARRAY),
                    ],
                )
                .await?;
            if updated < records.len() as u64 {
                return Err(crate::StoreError::NotFound);
            }
            conn.execute(
                "INSERT INTO attempt (id, msg_id, endpoint_id, app_id, url, status, response_status_code, response, \
                 response_duration_ms, trigger_type, created_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], \
                 $7::int8[], $8::text[], $9::int8[], $10::int8[], $11::int8[])",
                &[&ids, &msg_ids, &endpoint_ids, &app_ids, &urls, &statuses, &codes, &responses, &durations, &triggers, &created],
            )
            .await?;
            // Failure streaks: a success ends one, a failure starts one if none runs.
            if !succeeded.is_empty() {
                conn.execute(
                    "UPDATE endpoint SET failing_since = NULL WHERE id = ANY($1) AND failing_since IS NOT NULL",
                    &[&succeeded],
                )
                .await?;
            }
            let mut disabled: Vec<String> = Vec::new();
            if !failed.is_empty() {
                conn.execute(
                    "UPDATE endpoint e SET failing_since = u.at FROM (SELECT id, min(at) AS at \
                     FROM unnest($1::text[], $2::int8[]) AS t(id, at) GROUP BY id) u \
                     WHERE e.id = u.id AND e.failing_since IS NULL",
                    &[&failed, &failed_at],
                )
                .await?;
                if let Some(window) = auto_disable_after_ms {
                    let rows = conn
                        .query(
                            "UPDATE endpoint SET disabled = TRUE, updated_at = $2 WHERE id = ANY($1) \
                             AND NOT disabled AND failing_since <= $3 RETURNING id",
                            &[&failed, &latest, &(latest - window)],
                        )
                        .await?;
                    disabled.extend(rows.iter().map(|r| r.get::<_, String>(0)));
                }
            }
            if !gone.is_empty() {
                let rows = conn
                    .query(
                        "UPDATE endpoint SET disabled = TRUE, updated_at = $2 WHERE id = ANY($1) AND NOT disabled RETURNING id",
                        &[&gone, &latest],
                    )
                    .await?;
                disabled.extend(rows.iter().map(|r| r.get::<_, String>(0)));
            }
            Ok(disabled)
        }
        .await;
        conn.finish(outcome).await
    }
}

#[async_trait::async_trait]
impl crate::Queue for PgStore {
    /// Shared out fairly between applications and endpoints (see fair.rs): one query
    /// finds the endpoints with due work, then one statement per round leases each
    /// endpoint's share, skipping rows other nodes are claiming.
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryJob>> {
        let mut conn = self.pool.get().await?;
        let mut candidates = fair::due(pending_endpoints(&mut conn).await?, now);
        let mut jobs = Vec::with_capacity(limit);
        let mut canceled: Vec<i64> = Vec::new();
        for _ in 0..fair::ROUNDS {
            let left = limit - jobs.len();
            if left == 0 || candidates.is_empty() {
                break;
            }
            let shares = fair::shares(&candidates, left);
            let endpoint_ids: Vec<&str> = shares
                .iter()
                .map(|(i, _)| candidates[*i].endpoint_id.as_str())
                .collect();
            let quotas: Vec<i64> = shares.iter().map(|(_, share)| *share as i64).collect();
            let rows = conn
                .query(
                    &format!(
                        // An ordered endpoint's delivery waits while an earlier one is pending.
                        "WITH due AS (SELECT x.id FROM unnest($3::text[], $4::int8[]) AS q(endpoint_id, share), \
                         LATERAL (SELECT d.id FROM delivery d JOIN endpoint oe ON oe.id = d.endpoint_id \
                         JOIN message m ON m.id = d.msg_id \
                         WHERE d.endpoint_id = q.endpoint_id AND d.status = 1 AND d.next_attempt_at <= $1 \
                         AND (NOT oe.ordered OR NOT EXISTS \
                         (SELECT 1 FROM delivery d2 JOIN message m2 ON m2.id = d2.msg_id WHERE d2.endpoint_id = d.endpoint_id \
                         AND d2.status = 1 AND d2.msg_id < d.msg_id AND m2.ordering_key IS NOT DISTINCT FROM m.ordering_key)) \
                         ORDER BY d.next_attempt_at LIMIT q.share FOR UPDATE OF d SKIP LOCKED) x), \
                         claimed AS (UPDATE delivery d SET leased = TRUE, next_attempt_at = $2, updated_at = $1 FROM due \
                         WHERE d.id = due.id RETURNING d.id, d.msg_id, d.endpoint_id, d.attempts, d.trigger_type) \
                         SELECT c.id, c.msg_id, c.attempts, c.trigger_type, p.payload, {}, a.throttle_rate, p.headers, m.event_type FROM claimed c \
                         JOIN endpoint e ON e.id = c.endpoint_id JOIN application a ON a.id = e.app_id \
                         JOIN message m ON m.id = c.msg_id \
                         LEFT JOIN message_payload p ON p.msg_id = c.msg_id",
                        endpoint_columns_of("e")
                    ),
                    &[&now, &lease_until, &endpoint_ids, &quotas],
                )
                .await?;
            let mut found: HashMap<String, usize> = HashMap::new();
            for r in rows {
                let ep = endpoint_from_row(&r, 5);
                *found.entry(ep.id.clone()).or_default() += 1;
                let id: i64 = r.get(0);
                if ep.disabled {
                    // A disabled endpoint receives nothing; its pending work is canceled, and
                    // recover brings it back once the endpoint is enabled again.
                    canceled.push(id);
                    continue;
                }
                let attempts: i64 = r.get(2);
                let mut job = job_from(
                    &ep,
                    id,
                    r.get(1),
                    r.get(7 + ENDPOINT_COLUMN_COUNT),
                    r.get(4),
                    r.get(6 + ENDPOINT_COLUMN_COUNT),
                    attempts as u32,
                    r.get(3),
                    now,
                    lease_until,
                );
                job.app_throttle_rate = r
                    .get::<_, Option<i64>>(5 + ENDPOINT_COLUMN_COUNT)
                    .map(|v| v as u32);
                jobs.push(job);
            }
            // Endpoints that filled their share may have more: they share what is left.
            candidates = shares
                .iter()
                .filter(|(i, share)| found.get(&candidates[*i].endpoint_id) == Some(share))
                .map(|(i, _)| candidates[*i].clone())
                .collect();
        }
        if !canceled.is_empty() {
            conn.execute(
                "UPDATE delivery SET status = 4, leased = FALSE, updated_at = $2 WHERE id = ANY($1)",
                &[&canceled, &now],
            )
            .await?;
        }
        Ok(jobs)
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        let mut conn = self.pool.get().await?;
        // The scan a claim makes: the index has no order by time alone.
        Ok(pending_endpoints(&mut conn)
            .await?
            .iter()
            .map(|p| p.head)
            .min())
    }

    /// When the batch fails (say one delivery's application was deleted meanwhile),
    /// each record is tried on its own so that one bad row does not lose the others.
    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
        auto_disable_after_ms: Option<i64>,
    ) -> Result<Vec<String>> {
        let whole = self.record_batch(&records, auto_disable_after_ms).await;
        if whole.is_ok()
            || records.len() == 1
            || matches!(whole, Err(crate::StoreError::Unavailable(_)))
        {
            return whole;
        }
        let (mut disabled, mut first_error) = (Vec::new(), None);
        for r in records.chunks(1) {
            match self.record_batch(r, auto_disable_after_ms).await {
                Ok(d) => disabled.extend(d),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(disabled), Err)
    }

    async fn replay_missing(
        &self,
        ep: Endpoint,
        since: i64,
        until: i64,
        now: i64,
    ) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            // The endpoint and the messages are locked against deletion until the
            // deliveries under them are in (parents.rs).
            parents::lock_endpoint(&mut conn, &ep.id).await?;
            let candidates = conn
                .query(
                    "SELECT m.id, m.event_type, m.channels FROM message m WHERE m.app_id = $1 AND m.created_at >= $2 \
                     AND m.created_at < $3 AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.msg_id = m.id AND d.endpoint_id = $4) \
                     ORDER BY m.id LIMIT $5 FOR KEY SHARE OF m",
                    &[&ep.app_id, &since, &until, &ep.id, &(REPLAY_MISSING_MAX as i64)],
                )
                .await?;
            let wanted: Vec<String> = candidates
                .iter()
                .filter(|r| {
                    let channels: Option<Vec<String>> = crate::json_decode_opt(r.get(2));
                    endpoint_wants(&ep, r.get(1), channels.as_deref())
                })
                .map(|r| r.get(0))
                .collect();
            if wanted.is_empty() {
                return Ok(0);
            }
            let n = conn
                .execute(
                    "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
                     SELECT m, $2, $3, 1, 0, $4, FALSE, 1, $4, $4 FROM unnest($1::text[]) AS m ON CONFLICT (endpoint_id, msg_id) DO NOTHING",
                    &[&wanted, &ep.id, &ep.app_id, &now],
                )
                .await?;
            conn.execute("SELECT pg_notify($1, '')", &[&DUE_CHANNEL])
                .await?;
            Ok(n as usize)
        }
        .await;
        conn.finish(outcome).await
    }

    /// Other nodes may hold leases: nothing is released; leases run out on their own.
    async fn release_leases(&self, _now: i64) -> Result<usize> {
        Ok(0)
    }

    async fn queue_stats(&self) -> Result<(i64, Option<i64>)> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query(
                "SELECT count(*), min(CASE WHEN NOT leased THEN next_attempt_at END) FROM delivery WHERE status = 1",
                &[],
            )
            .await?;
        Ok((row[0].get(0), row[0].get(1)))
    }

    async fn release_deliveries(&self, delivery_ids: Vec<i64>, now: i64) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE delivery SET leased = FALSE, next_attempt_at = $2 WHERE id = ANY($1) AND status = 1 AND leased",
                &[&delivery_ids, &now],
            )
            .await?;
        if n > 0 {
            conn.execute("SELECT pg_notify($1, '')", &[&DUE_CHANNEL])
                .await?;
        }
        Ok(n as usize)
    }

    async fn defer_deliveries(&self, deferrals: Vec<crate::Deferral>) -> Result<usize> {
        let ids: Vec<i64> = deferrals.iter().map(|d| d.delivery_id).collect();
        let leases: Vec<i64> = deferrals.iter().map(|d| d.lease_until).collect();
        let due: Vec<i64> = deferrals.iter().map(|d| d.due_at).collect();
        let mut conn = self.pool.get().await?;
        // The lease in the condition keeps a row another node has claimed since (after
        // this node's lease ran out) out of reach.
        let n = conn
            .execute(
                "UPDATE delivery d SET leased = FALSE, next_attempt_at = u.due \
                 FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS u(id, lease, due) \
                 WHERE d.id = u.id AND d.status = 1 AND d.leased AND d.next_attempt_at = u.lease",
                &[&ids, &leases, &due],
            )
            .await?;
        Ok(n as usize)
    }

    async fn deliveries_due_now(&self, endpoint_id: &str, now: i64) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE delivery SET next_attempt_at = $2, updated_at = $2 \
                 WHERE endpoint_id = $1 AND status = 1 AND NOT leased AND next_attempt_at > $2",
                &[&endpoint_id, &now],
            )
            .await?;
        if n > 0 {
            conn.execute("SELECT pg_notify($1, '')", &[&DUE_CHANNEL])
                .await?;
        }
        Ok(n as usize)
    }

    async fn resend(
        &self,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
        now: i64,
        lease_until: Option<i64>,
    ) -> Result<Option<DeliveryJob>> {
        let ep = self.find_endpoint(app_id, endpoint_id).await?;
        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            // The message and the endpoint are locked against deletion until the
            // delivery under them is in (parents.rs).
            parents::lock_endpoint(&mut conn, &ep.id).await?;
            parents::lock_message(&mut conn, app_id, msg_id).await?;
            let (payload, extra_headers, event_type): (Option<String>, Option<String>, String) = conn
                .query_opt("SELECT p.payload, p.headers, m.event_type FROM message m LEFT JOIN message_payload p ON p.msg_id = m.id WHERE m.id = $1", &[&msg_id])
                .await?
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .unwrap_or_default();
            let row = conn
                .query(
                    "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
                     VALUES ($1, $2, $3, 1, 0, $4, $6, 1, $5, $5) \
                     ON CONFLICT (endpoint_id, msg_id) DO UPDATE SET status = 1, next_attempt_at = $4, leased = $6, trigger_type = 1, updated_at = $5 \
                     RETURNING id, attempts",
                    &[&msg_id, &ep.id, &app_id, &lease_until.unwrap_or(now), &now, &lease_until.is_some()],
                )
                .await?;
            if lease_until.is_none() {
                conn.execute("SELECT pg_notify($1, '')", &[&DUE_CHANNEL]).await?;
            }
            let (id, attempts): (i64, i64) = (row[0].get(0), row[0].get(1));
            Ok(lease_until.map(|until| job_from(&ep, id, msg_id.to_string(), event_type, payload, extra_headers, attempts as u32, 1, now, until)))
        }
        .await;
        conn.finish(outcome).await
    }

    async fn recover(
        &self,
        endpoint_id: &str,
        since: i64,
        until: i64,
        now: i64,
        include_succeeded: bool,
    ) -> Result<usize> {
        let statuses = if include_succeeded { "0, 2, 4" } else { "2, 4" };
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                &format!(
                    "UPDATE delivery SET status = 1, next_attempt_at = $4, leased = FALSE, trigger_type = 1, updated_at = $4 \
                     WHERE endpoint_id = $1 AND status IN ({statuses}) AND created_at >= $2 AND created_at < $3"
                ),
                &[&endpoint_id, &since, &until, &now],
            )
            .await?;
        if n > 0 {
            conn.execute("SELECT pg_notify($1, '')", &[&DUE_CHANNEL])
                .await?;
        }
        Ok(n as usize)
    }
}

/// Every endpoint with pending deliveries, its application and when its oldest pending
/// delivery is due: a loose scan of `delivery_ready`, one probe per endpoint.
async fn pending_endpoints(conn: &mut super::pool::PooledConn<'_>) -> Result<Vec<fair::Pending>> {
    let rows = conn
        .query(
            "WITH RECURSIVE pending AS ( \
             (SELECT endpoint_id, app_id, next_attempt_at FROM delivery WHERE status = 1 \
              ORDER BY endpoint_id, next_attempt_at LIMIT 1) \
             UNION ALL \
             SELECT n.endpoint_id, n.app_id, n.next_attempt_at FROM pending p, LATERAL \
             (SELECT endpoint_id, app_id, next_attempt_at FROM delivery WHERE status = 1 AND endpoint_id > p.endpoint_id \
              ORDER BY endpoint_id, next_attempt_at LIMIT 1) n) \
             SELECT endpoint_id, app_id, next_attempt_at FROM pending",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| fair::Pending {
            endpoint_id: r.get(0),
            app_id: r.get(1),
            head: r.get::<_, Option<i64>>(2).unwrap_or(i64::MAX),
        })
        .collect())
}
