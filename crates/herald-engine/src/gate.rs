//! Per-endpoint admission: what keeps one endpoint's trouble its own. Before a delivery
//! takes one of the engine's global in-flight permits, it passes its endpoint's gate:
//! a cap on that endpoint's attempts in flight (so an endpoint that hangs until the
//! timeout holds only its share), its `throttleRate` as a token bucket, and a pause
//! after the endpoint answered 429 or 503 (so the deliveries queued behind it wait
//! instead of each spending an attempt on an endpoint that asked for air).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Gates kept at most; idle ones are dropped past that.
const MAX_GATES: usize = 10_000;

pub(crate) struct Gate {
    in_flight: Arc<Semaphore>,
    state: Mutex<GateState>,
}

struct GateState {
    /// Deliveries per second, or none.
    rate: Option<u32>,
    /// Tokens in the bucket (up to `rate`, so a burst of one second is allowed).
    tokens: f64,
    refilled_at: Instant,
    /// Nothing is sent before this (after a 429/503).
    paused_until: Option<Instant>,
}

impl Gate {
    fn new(cap: usize, rate: Option<u32>) -> Gate {
        Gate {
            in_flight: Arc::new(Semaphore::new(cap)),
            state: Mutex::new(GateState {
                rate,
                tokens: rate.map_or(0.0, f64::from),
                refilled_at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits for this endpoint's turn: a free in-flight slot, a token, and the end of
    /// any pause. Returns the slot, which the attempt holds until it is done; `None` if
    /// the engine closed the gate (it is stopping).
    pub(crate) async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        let slot = self.in_flight.clone().acquire_owned().await.ok()?;
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                match s.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ => s.take_token(now),
                }
            };
            match wait {
                None => return Some(slot),
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// The endpoint asked for a pause (429/503, maybe with Retry-After).
    pub(crate) fn pause(&self, for_how_long: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + for_how_long;
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
        }
    }

    /// Follows a change of the endpoint's `throttleRate`.
    fn set_rate(&self, rate: Option<u32>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.rate != rate {
            s.rate = rate;
            s.tokens = s.tokens.min(rate.map_or(0.0, f64::from));
        }
    }
}

impl GateState {
    /// Takes a token if the bucket has one (`None`), or says how long until it will.
    fn take_token(&mut self, now: Instant) -> Option<Duration> {
        // No throttleRate: never a wait.
        let rate = f64::from(self.rate?);
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// The gates of every endpoint this process delivers to.
pub(crate) struct Gates {
    cap: usize,
    by_endpoint: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Gates {
    pub(crate) fn new(cap: usize) -> Gates {
        Gates {
            cap,
            by_endpoint: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, endpoint_id: &str, rate: Option<u32>) -> Arc<Gate> {
        self.get_with_cap(endpoint_id, rate, self.cap)
    }

    /// An application's gate: its `throttleRate`, shared by all its endpoints; its
    /// in-flight cap is the engine's global one.
    pub(crate) fn for_app(&self, app_id: &str, rate: u32, global_cap: usize) -> Arc<Gate> {
        self.get_with_cap(&format!("app:{app_id}"), Some(rate), global_cap)
    }

    fn get_with_cap(&self, key: &str, rate: Option<u32>, cap: usize) -> Arc<Gate> {
        let mut map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(gate) = map.get(key) {
            gate.set_rate(rate);
            return gate.clone();
        }
        if map.len() >= MAX_GATES {
            map.retain(|_, g| Arc::strong_count(g) > 1);
        }
        let gate = Arc::new(Gate::new(cap, rate));
        map.insert(key.to_string(), gate.clone());
        gate
    }

    /// Closes every gate: deliveries waiting at one give up (the engine is stopping).
    pub(crate) fn close(&self) {
        for gate in self
            .by_endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            gate.in_flight.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_lets_a_burst_through_then_keeps_the_rate() {
        let gate = Gate::new(100, Some(4));
        let start = Instant::now();
        let mut slots = Vec::new();
        for _ in 0..12 {
            slots.push(gate.enter().await.unwrap());
        }
        // 4 at once (the burst), then 8 more at 4 per second.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1990), "{took:?}");
        assert!(took <= Duration::from_millis(2100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everyone_back_and_the_cap_bounds_in_flight() {
        let gate = Arc::new(Gate::new(2, None));
        gate.pause(Duration::from_secs(3));
        let start = Instant::now();
        let a = gate.enter().await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(3));
        let _b = gate.enter().await.unwrap();
        // A third waits for a slot.
        let third = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await.map(|_| Instant::now()) }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let freed_at = Instant::now();
        drop(a);
        let entered = third.await.unwrap().unwrap();
        assert!(entered >= freed_at);
    }

    #[tokio::test]
    async fn closing_the_gates_releases_waiters() {
        let gates = Gates::new(1);
        let gate = gates.get("ep_1", None);
        let held = gate.enter().await.unwrap();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await.is_none() }
        });
        tokio::task::yield_now().await;
        gates.close();
        assert!(waiter.await.unwrap(), "the waiter gave up");
        drop(held);
    }
}
