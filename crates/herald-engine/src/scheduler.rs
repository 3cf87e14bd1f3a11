//! The scheduler: claims due deliveries from the store and sends them. New messages
//! arrive by hand-off and do not wait for it; it serves retries, recovered work and
//! whatever a previous process left behind.

use std::time::Duration;

use herald_core::time::now_ms;

use crate::Engine;

const CLAIM_BATCH: usize = 256;

pub(crate) async fn run(engine: Engine) {
    let poll = engine.inner.config.poll_interval;
    let mut gates_swept = tokio::time::Instant::now();
    loop {
        if engine.is_stopping() {
            return;
        }
        // The loop comes round at least once per poll interval, busy or not.
        if gates_swept.elapsed() >= crate::gate::IDLE_GATE_AFTER {
            gates_swept = tokio::time::Instant::now();
            engine.inner.gates.drop_idle(gates_swept);
        }
        // Claim no more than there are permits for, nor than memory has room for:
        // deliveries to a paused or saturated endpoint wait in memory without holding a
        // permit, and claiming past the room would pile them up (and, once their leases
        // ran out, claim the same rows again).
        let free = engine.inner.permits.available_permits().min(engine.room());
        let claimed = if free == 0 {
            0
        } else {
            match claim_and_send(&engine, free.min(CLAIM_BATCH)).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "could not claim due deliveries");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            }
        };
        if claimed == CLAIM_BATCH {
            continue;
        }
        let wait = if free == 0 {
            Duration::from_millis(20)
        } else {
            match engine.inner.store.next_due_at().await {
                Ok(Some(at)) => {
                    Duration::from_millis((at - now_ms()).clamp(0, poll.as_millis() as i64) as u64)
                }
                _ => poll,
            }
        };
        if wait.is_zero() && claimed == 0 {
            // Due rows exist but were not claimable (all leased): do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = engine.inner.wake.notified() => {}
        }
    }
}

pub(crate) async fn claim_and_send(
    engine: &Engine,
    limit: usize,
) -> Result<usize, herald_store::StoreError> {
    let now = now_ms();
    let started = std::time::Instant::now();
    let jobs = engine
        .inner
        .store
        .claim_due(now, now + engine.lease_ms(), limit)
        .await;
    engine
        .inner
        .config
        .metrics
        .store(herald_core::metrics::StoreOp::ClaimDue, started.elapsed());
    let jobs = jobs?;
    let n = jobs.len();
    engine.hand_off(jobs);
    Ok(n)
}
