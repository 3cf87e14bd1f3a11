//! Runs the pushing destinations: a supervisor leases them (one node at a time sends a
//! given destination; another takes over once a dead node's lease ends) and keeps one
//! task per leased destination, which sends its stream in order, batch after batch.
//!
//! A batch is sent only after the previous one succeeded, so order holds across
//! retries and restarts. The position moves (compare-and-set in the store, under the
//! lease) only after the receiver accepted a batch: a crash between the two sends that
//! batch again (at least once, never out of order). Failures retry on the engine's
//! retry schedule; when it runs out the destination is paused and announced
//! (`destination.paused`), and waits for an operator to enable or seek it.

use std::collections::HashMap;
use std::time::Duration;

use herald_core::time::now_ms;
use herald_store::{
    Destination, DestinationFailure, DestinationStatus, StoreError, StreamBatch, StreamPos,
    StreamRead,
};

use super::{sender_for, Batch, SendFailure, PUSHED_KINDS};
use crate::Engine;

/// How often the supervisor renews its leases and looks for destinations to take, at
/// most (a third of the lease, so that two renewals may fail before it runs out).
const CLAIM_EVERY: Duration = Duration::from_secs(2);
/// Destinations one node sends at most.
const MAX_PER_NODE: usize = 1_000;
/// How long an idle stream waits for a wake-up before it looks again (messages another
/// node committed wake nobody here).
const IDLE_LOOK: Duration = Duration::from_millis(250);
/// How often a stream refreshes its lag gauges.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Leases destinations and runs one stream task per destination, until the engine stops.
pub(crate) async fn supervise(engine: Engine) {
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let kinds: Vec<String> = PUSHED_KINDS.iter().map(|k| k.to_string()).collect();
    // Destinations are leased like deliveries (`lease_secs`): a dead node's are taken
    // over once that much time has passed.
    let lease = engine.config().lease;
    let claim_every = CLAIM_EVERY.min(lease / 3);
    while !engine.is_stopping() {
        let now = now_ms();
        match engine
            .store()
            .destination_claim(
                kinds.clone(),
                engine.node_id(),
                now,
                now + lease.as_millis() as i64,
                MAX_PER_NODE,
            )
            .await
        {
            Ok(held) => {
                let held_ids: Vec<String> = held.iter().map(|d| d.id.clone()).collect();
                engine.set_held_destinations(held_ids.clone());
                // A destination no longer held (disabled, paused, deleted, or taken by
                // another node after a lease ran out) stops here.
                tasks.retain(|id, task| {
                    let keep = held_ids.contains(id) && !task.is_finished();
                    if !keep {
                        task.abort();
                        engine.metrics().destination_gone(id);
                    }
                    keep
                });
                for d in held {
                    if !tasks.contains_key(&d.id) {
                        let engine = engine.clone();
                        let id = d.id.clone();
                        tasks.insert(id, tokio::spawn(run_stream(engine, d)));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not lease destinations; trying again"),
        }
        tokio::time::sleep(claim_every).await;
    }
    // Stopping: `Engine::shutdown` gives the leases back; the streams stop here.
    for (_, task) in tasks {
        task.abort();
    }
}

/// Sends one destination's stream until it stops being sendable here.
async fn run_stream(engine: Engine, first: Destination) {
    let Some(sender) = sender_for(&first.kind) else {
        return;
    };
    let (app_id, id, kind) = (first.app_id.clone(), first.id.clone(), first.kind.clone());
    let signal = engine.stream_signal();
    let mut lag_at = std::time::Instant::now() - LAG_EVERY;
    // The batch after the one last sent, read while that one was being sent: used when
    // the destination still stands where that batch starts (and it is not empty, so
    // that a wait for new messages always follows a read made after the wake-up was
    // registered).
    let mut prefetched: Option<(StreamRead, StreamBatch)> = None;
    while !engine.is_stopping() {
        // Re-read each round: an operator may have changed its settings, paused or
        // moved it.
        let d = match engine.store().destination_get(&app_id, &id).await {
            Ok(d) => d,
            Err(StoreError::NotFound) => return,
            Err(e) => {
                tracing::warn!(destination = %id, error = %e, "cannot read the destination; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !matches!(
            d.status,
            DestinationStatus::Enabled | DestinationStatus::Retrying
        ) {
            return;
        }
        let now = now_ms();
        if let Some(at) = d.next_retry_at.filter(|at| *at > now) {
            tokio::time::sleep(
                Duration::from_millis((at - now) as u64).min(Duration::from_secs(1)),
            )
            .await;
            continue;
        }
        if lag_at.elapsed() >= LAG_EVERY {
            lag_at = std::time::Instant::now();
            if let Ok(lag) = engine
                .store()
                .stream_lag(&d.app_id, d.position, d.event_types.clone())
                .await
            {
                let seconds = lag
                    .oldest_created_at
                    .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
                engine
                    .metrics()
                    .destination_lag(&d.id, &kind, lag.messages, seconds);
            }
        }
        // Registered before the read, so a message committed meanwhile still wakes us.
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let read = stream_read_of(&d, d.position);
        let ready = prefetched
            .take()
            .filter(|(made, batch)| same_read(made, &read) && !batch.messages.is_empty())
            .map(|(_, batch)| batch);
        let batch = match ready {
            Some(batch) => Ok(batch),
            None => engine.store().stream_read(read).await,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(StoreError::Gone(why)) => {
                pause(&engine, &d, &why).await;
                return;
            }
            Err(e) => {
                tracing::warn!(destination = %id, error = %e, "cannot read the destination's stream; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.messages.is_empty() {
            if batch.next > d.position {
                // Only filtered-out messages: step over them for good.
                let _ = engine
                    .store()
                    .destination_advance(&d.id, engine.node_id(), d.position, batch.next, now)
                    .await;
            }
            if batch.done {
                let _ = tokio::time::timeout(IDLE_LOOK, woken).await;
            }
            continue;
        }
        // A batch that is not full waits for more, up to maxWaitSecs after its oldest
        // message was created.
        if (batch.messages.len() as i64) < d.batch_size && d.max_wait_secs > 0 && batch.done {
            let due = batch.messages[0].created_at + d.max_wait_secs * 1000;
            if now < due {
                let wait = Duration::from_millis((due - now) as u64).min(Duration::from_secs(1));
                let _ = tokio::time::timeout(wait, woken).await;
                continue;
            }
        }
        let first_pos = batch.messages[0].pos;
        let out = Batch {
            id: format!(
                "batch_{}_{}_{}",
                d.id.trim_start_matches("dest_"),
                first_pos.encode(),
                batch.next.encode()
            ),
            next: batch.next,
            messages: batch.messages,
            destination: d,
        };
        // The next batch is read while this one is sent: the store's work and the
        // system's overlap. The position still moves only after this one succeeded.
        let next_read = stream_read_of(&out.destination, out.next);
        let (sent, next) = tokio::join!(
            sender.send(&engine, &out),
            engine.store().stream_read(next_read.clone())
        );
        if let Ok(next) = next {
            prefetched = Some((next_read, next));
        }
        let d = out.destination;
        let now = now_ms();
        match sent {
            Ok(()) => {
                engine
                    .metrics()
                    .destination_batch(&kind, out.messages.len());
                match engine
                    .store()
                    .destination_advance(&d.id, engine.node_id(), d.position, out.next, now)
                    .await
                {
                    Ok(true) => {}
                    // A seek moved it meanwhile, or another node holds it now: the next
                    // round reads where it stands.
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(destination = %id, error = %e, "a batch was delivered but its position not saved; it will be sent again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            Err(failure) => {
                engine.metrics().destination_failure(&kind);
                failed(&engine, &d, failure, now).await;
            }
        }
    }
}

/// What to read of `d`'s stream after `after`.
fn stream_read_of(d: &Destination, after: StreamPos) -> StreamRead {
    StreamRead {
        app_id: d.app_id.clone(),
        after,
        limit: d.batch_size.clamp(1, 10_000) as usize,
        event_types: d.event_types.clone(),
        channels: d.channels.clone(),
        event_type: None,
        channel: None,
        payload_filter: d.payload_filter.clone(),
    }
}

/// Whether two reads ask for the same thing (a prefetched batch is used only when the
/// destination still stands where it starts, with the same filters and batch size).
fn same_read(a: &StreamRead, b: &StreamRead) -> bool {
    a.after == b.after
        && a.limit == b.limit
        && a.event_types == b.event_types
        && a.channels == b.channels
        && a.payload_filter.as_ref().map(|f| &f.doc) == b.payload_filter.as_ref().map(|f| &f.doc)
}

/// Records a failed batch: retrying at the next time of the engine's retry schedule, or
/// paused (and announced) when the schedule has run out.
async fn failed(engine: &Engine, d: &Destination, failure: SendFailure, now: i64) {
    let failures = (d.failures + 1).min(u32::MAX as i64) as u32;
    let delay =
        engine
            .config()
            .retry
            .next_delay(failures, failure.retry_after, rand::random::<f64>());
    tracing::info!(destination = %d.id, reason = %failure.reason, failures, "a destination's batch failed");
    match delay {
        Some(delay) => {
            let _ = engine
                .store()
                .destination_fail(
                    &d.id,
                    engine.node_id(),
                    d.position,
                    DestinationFailure {
                        status: DestinationStatus::Retrying,
                        reason: failure.reason,
                        next_retry_at: Some(now + delay.as_millis() as i64),
                    },
                    now,
                )
                .await;
        }
        None => {
            let reason = format!(
                "paused after {failures} failed attempts; last: {}",
                failure.reason
            );
            pause(engine, d, &reason).await;
        }
    }
}

/// Stops the destination (paused) with a reason, and announces it.
async fn pause(engine: &Engine, d: &Destination, reason: &str) {
    let now = now_ms();
    match engine
        .store()
        .destination_fail(
            &d.id,
            engine.node_id(),
            d.position,
            DestinationFailure {
                status: DestinationStatus::Paused,
                reason: reason.to_string(),
                next_retry_at: None,
            },
            now,
        )
        .await
    {
        Ok(true) => {
            tracing::warn!(destination = %d.id, reason, "a destination was paused");
            engine.announce(
                "destination.paused",
                serde_json::json!({
                    "appId": d.app_id,
                    "destinationId": d.id,
                    "destinationUid": d.uid,
                    "type": d.kind,
                    "reason": reason,
                }),
            );
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(destination = %d.id, error = %e, "could not pause a destination"),
    }
}
