//! Ingest with group commit. Concurrent `message_create` calls queue here, and a few
//! batcher tasks each take whatever is queued (up to `MAX_BATCH`) and store it in one
//! transaction of five statements, whatever the batch's size: messages, payloads and the
//! endpoints of their applications in one round trip, then every delivery and the
//! `COMMIT` in a second. One commit (one WAL flush) per batch instead of per message is
//! what lets one node ingest thousands of messages a second on a small machine.
//! A batch that fails for one message's sake (a duplicate `eventId`, an application
//! deleted meanwhile) is retried one message at a time, so only that message fails.

use std::collections::HashMap;
use std::sync::Arc;

use herald_core::ids;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::types::ToSql;

use super::catalog::endpoint_from_row;
use super::pool::Pool;
use super::{classify, DUE_CHANNEL};
use crate::filters::ENDPOINT_COLUMNS;
use crate::{
    delivery_headers, json_encode, message_targets, DeliveryJob, Message, NewMessage, Result,
    StoreError, Trigger, EVENT_ID_TAKEN,
};

/// Messages stored in one transaction at most.
const MAX_BATCH: usize = 256;

/// Batches in progress at once (each holds one connection while it runs).
const BATCHERS: usize = 4;

type Reply = oneshot::Sender<Result<(Message, Vec<DeliveryJob>)>>;

struct Request {
    new: NewMessage,
    now: i64,
    reply: Reply,
}

/// The queue in front of the batchers.
pub(crate) struct Ingest {
    queue: mpsc::UnboundedSender<Request>,
}

impl Ingest {
    pub(crate) fn start(pool: Arc<Pool>) -> Ingest {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..BATCHERS {
            tokio::spawn(run_batcher(pool.clone(), rx.clone()));
        }
        Ingest { queue }
    }

    pub(crate) async fn submit(
        &self,
        new: NewMessage,
        now: i64,
    ) -> Result<(Message, Vec<DeliveryJob>)> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { new, now, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run_batcher(pool: Arc<Pool>, rx: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>) {
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if rx.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let prepared: Vec<Prepared> = batch.iter().map(Prepared::new).collect();
        match insert_batch(&pool, &batch, &prepared).await {
            Ok(mut stored) => {
                for (r, p) in batch.into_iter().zip(prepared) {
                    let jobs = stored.remove(&p.id).unwrap_or_default();
                    let _ = r.reply.send(Ok((p.into_message(r.new), jobs)));
                }
            }
            Err(e) if batch.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                // One message spoiled the batch: store each on its own.
                for (r, p) in batch.into_iter().zip(prepared) {
                    let one =
                        insert_batch(&pool, std::slice::from_ref(&r), std::slice::from_ref(&p))
                            .await;
                    let _ = r.reply.send(one.map(|mut stored| {
                        let jobs = stored.remove(&p.id).unwrap_or_default();
                        (p.into_message(r.new), jobs)
                    }));
                }
            }
            Err(e) => {
                for r in batch {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// What a request becomes before it is stored: its id, times and encoded columns.
struct Prepared {
    id: String,
    created_at: i64,
    expires_at: i64,
    channels: Option<String>,
    /// Leased to the caller until then; `None`: left due at `due_at` for a scheduler.
    lease_until: Option<i64>,
    due_at: i64,
}

impl Prepared {
    fn new(r: &Request) -> Prepared {
        let (new, now) = (&r.new, r.now);
        Prepared {
            id: ids::generate(ids::MESSAGE),
            created_at: now,
            expires_at: now + i64::from(new.retention_hours) * 3_600_000,
            channels: new.channels.as_ref().map(json_encode),
            lease_until: new
                .lease_until
                .filter(|_| new.deliver_at.is_none_or(|t| t <= now)),
            due_at: new.deliver_at.filter(|t| *t > now).unwrap_or(now),
        }
    }

    fn into_message(self, new: NewMessage) -> Message {
        Message {
            id: self.id,
            app_id: new.app_id,
            event_id: new.event_id,
            event_type: new.event_type,
            channels: new.channels,
            payload: Some(new.payload),
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// Stores the batch in one transaction; returns the jobs leased to the caller, by
/// message id.
async fn insert_batch(
    pool: &Pool,
    batch: &[Request],
    prepared: &[Prepared],
) -> Result<HashMap<String, Vec<DeliveryJob>>> {
    let msg_ids: Vec<&str> = prepared.iter().map(|p| p.id.as_str()).collect();
    let app_ids: Vec<&str> = batch.iter().map(|r| r.new.app_id.as_str()).collect();
    let event_ids: Vec<Option<&str>> = batch.iter().map(|r| r.new.event_id.as_deref()).collect();
    let event_types: Vec<&str> = batch.iter().map(|r| r.new.event_type.as_str()).collect();
    let channels: Vec<Option<&str>> = prepared.iter().map(|p| p.channels.as_deref()).collect();
    let created: Vec<i64> = batch.iter().map(|r| r.now).collect();
    let expires: Vec<i64> = prepared.iter().map(|p| p.expires_at).collect();
    let ordering_keys: Vec<Option<&str>> = batch
        .iter()
        .map(|r| r.new.ordering_key.as_deref())
        .collect();
    let payloads: Vec<&str> = batch.iter().map(|r| r.new.payload.as_str()).collect();
    let extra_headers: Vec<Option<String>> = batch
        .iter()
        .map(|r| (!r.new.headers.is_empty()).then(|| json_encode(&r.new.headers)))
        .collect();
    let mut apps: Vec<&str> = app_ids.clone();
    apps.sort_unstable();
    apps.dedup();

    let mut conn = pool.get().await?;
    let insert_messages = conn
        .prepare(
            "INSERT INTO message (id, app_id, event_id, event_type, channels, created_at, expires_at, ordering_key) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[])",
        )
        .await?;
    let insert_payloads = conn
        .prepare("INSERT INTO message_payload (msg_id, payload, headers) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])")
        .await?;
    // Read inside the transaction, never from a cache: another node may have changed
    // the endpoints a moment ago. The applications and endpoints are locked against
    // deletion until the commit (the foreign keys' lock, once per batch: parents.rs).
    let lock_apps = conn
        .prepare("SELECT id FROM application WHERE id = ANY($1) FOR KEY SHARE")
        .await?;
    let select_endpoints = conn
        .prepare(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = ANY($1) ORDER BY id FOR KEY SHARE"
        ))
        .await?;
    let insert_deliveries = conn
        .prepare(
            "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, leased, trigger_type, created_at, updated_at) \
             SELECT m, e, a, 1, 0, n, l, 0, c, c FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::int8[]) \
             AS u(m, e, a, n, l, c) RETURNING id, msg_id, endpoint_id",
        )
        .await?;
    let notify = conn.prepare("SELECT pg_notify($1, '')").await?;

    conn.begin_pipelined();
    let first = {
        let c = conn.client();
        let message_args: [&(dyn ToSql + Sync); 8] = [
            &msg_ids,
            &app_ids,
            &event_ids,
            &event_types,
            &channels,
            &created,
            &expires,
            &ordering_keys,
        ];
        let payload_args: [&(dyn ToSql + Sync); 3] = [&msg_ids, &payloads, &extra_headers];
        // The batch's applications: locked, and their endpoints read.
        let app_args: [&(dyn ToSql + Sync); 1] = [&apps];
        // All five complete; the first failure in statement order is the cause (the
        // later ones only say the transaction was aborted).
        let (begin, locked, messages, payloads, endpoints) = tokio::join!(
            c.batch_execute("BEGIN"),
            c.query(&lock_apps, &app_args),
            c.execute(&insert_messages, &message_args),
            c.execute(&insert_payloads, &payload_args),
            c.query(&select_endpoints, &app_args),
        );
        begin
            .and(locked)
            .and_then(|locked| messages.and(payloads).and(endpoints).map(|e| (locked, e)))
    };
    let outcome = async {
        let (locked, rows) = first.map_err(|e| classify(e, EVENT_ID_TAKEN))?;
        // An application deleted meanwhile: the batch fails, and is retried message by
        // message, so only that application's messages fail.
        if locked.len() < apps.len() {
            return Err(StoreError::NotFound);
        }
        let endpoints: Vec<_> = rows.iter().map(|r| endpoint_from_row(r, 0)).collect();
        let mut by_app: HashMap<&str, Vec<crate::Endpoint>> = HashMap::new();
        for ep in endpoints {
            by_app
                .entry(app_of(&apps, &ep.app_id))
                .or_default()
                .push(ep);
        }
        let empty = Vec::new();
        // One row per (message, target endpoint).
        let (mut d_msg, mut d_ep, mut d_app, mut d_next, mut d_leased, mut d_created) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let mut announce = false;
        for (r, p) in batch.iter().zip(prepared) {
            let eps = by_app.get(r.new.app_id.as_str()).unwrap_or(&empty);
            for ep in message_targets(eps, &r.new) {
                d_msg.push(p.id.as_str());
                d_ep.push(ep.id.as_str());
                d_app.push(r.new.app_id.as_str());
                // An ordered endpoint's deliveries go through the scheduler, which sends
                // each only after the ones before it.
                let lease = p.lease_until.filter(|_| !ep.ordered);
                d_next.push(lease.unwrap_or(p.due_at));
                d_leased.push(lease.is_some());
                d_created.push(r.now);
                announce |= lease.is_none() && p.due_at <= r.now;
            }
        }
        let c = conn.client();
        let deliveries = async {
            if d_msg.is_empty() {
                return Ok(Vec::new());
            }
            let args: [&(dyn ToSql + Sync); 6] =
                [&d_msg, &d_ep, &d_app, &d_next, &d_leased, &d_created];
            c.query(&insert_deliveries, &args).await
        };
        let announced = async {
            if announce {
                // Delivered to the listening workers when this transaction commits.
                c.query(&notify, &[&DUE_CHANNEL]).await?;
            }
            Ok(())
        };
        let (rows, announced) = tokio::join!(deliveries, announced);
        // The first failure in statement order is the cause.
        let rows = rows.and_then(|rows| announced.map(|()| rows))?;

        let mut jobs: HashMap<String, Vec<DeliveryJob>> = HashMap::new();
        let mut payloads: HashMap<usize, Arc<str>> = HashMap::new();
        let index: HashMap<&str, usize> = prepared
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        for row in rows {
            let msg_id: &str = row.get(1);
            let endpoint_id: &str = row.get(2);
            let i = index[msg_id];
            let (r, p) = (&batch[i], &prepared[i]);
            let Some(lease_until) = p.lease_until else {
                continue;
            };
            let Some(ep) = by_app
                .get(r.new.app_id.as_str())
                .and_then(|eps| eps.iter().find(|e| e.id == endpoint_id))
            else {
                continue;
            };
            if ep.ordered {
                continue;
            }
            jobs.entry(p.id.clone()).or_default().push(DeliveryJob {
                delivery_id: row.get(0),
                msg_id: p.id.clone(),
                app_id: r.new.app_id.clone(),
                endpoint_id: ep.id.clone(),
                event_type: r.new.event_type.clone(),
                transformation: crate::Transformation::active(&ep.transformation),
                url: ep.url.clone(),
                payload: payloads
                    .entry(i)
                    .or_insert_with(|| Arc::from(r.new.payload.as_str()))
                    .clone(),
                headers: delivery_headers(ep, &r.new.headers),
                secrets: ep.signing_keys(r.now),
                attempts: 0,
                trigger: Trigger::Scheduled,
                lease_until,
                throttle_rate: ep.throttle_rate,
                app_throttle_rate: r.new.app_throttle_rate,
            });
        }
        Ok(jobs)
    }
    .await;
    conn.finish(outcome).await
}

/// `app_id` as borrowed from `apps` (the batch's sorted application ids).
fn app_of<'a>(apps: &[&'a str], app_id: &str) -> &'a str {
    apps[apps
        .binary_search(&app_id)
        .expect("endpoints were selected by these ids")]
}
