//! The deferrer: writes deliveries that their gates could not take soon back to the
//! store, due when the gate expects room for them (see `gate.rs`), as many per write as
//! have piled up. A failed write loses nothing: the deliveries stay leased to this
//! process, and are claimed again when their leases end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_store::{Deferral, StoreError};
use tokio::sync::mpsc;

use crate::Engine;

/// Deferrals written per store call at most.
const BATCH: usize = 1024;

impl Engine {
    /// Hands `job` back to the store, due `after` from now; it leaves memory at once.
    pub(crate) fn defer(&self, job: &herald_store::DeliveryJob, after: Duration) {
        let deferral = Deferral {
            delivery_id: job.delivery_id,
            lease_until: job.lease_until,
            due_at: herald_core::time::now_ms() + after.as_millis() as i64,
        };
        self.inner.undeferred.fetch_add(1, Ordering::SeqCst);
        self.inner.config.metrics.deferred();
        if self.inner.deferrals.send(deferral).is_err() {
            // No deferrer (the engine was never started): the lease runs out instead.
            self.inner.undeferred.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

pub(crate) async fn run(engine: Engine, mut rx: mpsc::UnboundedReceiver<Deferral>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let n = batch.len();
        let deferrals = std::mem::take(&mut batch);
        let mut wait = Duration::from_millis(100);
        loop {
            match engine.inner.store.defer_deliveries(deferrals.clone()).await {
                Ok(_) => break,
                // The database is down for a while: try again rather than leave the rows
                // leased (they would come back only when their leases end).
                Err(StoreError::Unavailable(e)) if !engine.is_stopping() => {
                    tracing::warn!(error = %e, deliveries = n, "the store is unavailable; will defer these deliveries when it is back");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, deliveries = n, "could not defer deliveries; they are claimed again when their leases end");
                    break;
                }
            }
        }
        engine.inner.undeferred.fetch_sub(n, Ordering::SeqCst);
    }
}
