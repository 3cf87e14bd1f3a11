//! Per-endpoint (and per-application) admission: what keeps one tenant's trouble its
//! own. Before a delivery takes one of the engine's global in-flight permits, it passes
//! its endpoint's gate and its application's gate. Each gate has a cap on attempts in
//! flight (so an endpoint that hangs until the timeout holds only its share), an
//! optional `throttleRate` as a token bucket, and a pause after a 429/503 (so the
//! deliveries queued behind it wait instead of each spending an attempt on an endpoint
//! that asked for air). After a pause the gate lets one attempt through, and widens
//! (doubling) with each success up to its cap, as an overloaded receiver needs: its
//! whole cap at once would be refused again.
//!
//! Fairness: a gate lets a delivery wait in memory only when it can start soon
//! (`MAX_WAIT_IN_MEMORY`) and the gate holds fewer than its `hold_max`. Anything else is
//! *deferred*: handed back to the store, due at the time the gate expects to have room
//! for it. Successive deferrals are spaced by the gate's service interval (one over its
//! rate, or its mean attempt time over its in-flight cap), so a backlog of a slow
//! endpoint is spread over the future at the pace that endpoint can take it, like the
//! virtual finish times of weighted fair queuing. A slow tenant's backlog thus costs no
//! memory while it waits, and claims, shared between applications and endpoints (the
//! store's `fair.rs`), never let it stand in front of another tenant's work.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Gates kept at most; idle ones are dropped past that.
const MAX_GATES: usize = 10_000;

/// A gate untouched for this long, with nothing pending at it, is dropped by
/// `Gates::drop_idle`: a burst to many endpoints leaves no state behind once it is over.
pub(crate) const IDLE_GATE_AFTER: Duration = Duration::from_secs(20);

/// The longest a delivery may wait in memory for its gate; one that would wait longer
/// is deferred to the store.
pub(crate) const MAX_WAIT_IN_MEMORY: Duration = Duration::from_secs(2);

pub(crate) struct Gate {
    in_flight: Arc<Semaphore>,
    cap: usize,
    /// Deliveries in memory that passed `reserve`: waiting at the gate or in flight.
    held: AtomicUsize,
    /// The most deliveries this gate lets wait in memory at once.
    hold_max: usize,
    state: Mutex<GateState>,
    /// Wakes deliveries waiting for the ramp after a pause: an attempt ended or the
    /// ramp widened.
    ramp_moved: Notify,
}

struct GateState {
    /// Deliveries per second, or none.
    rate: Option<u32>,
    /// Tokens in the bucket (up to `rate`, so a burst of one second is allowed). Below
    /// zero when tokens were promised to deliveries waiting in memory.
    tokens: f64,
    refilled_at: Instant,
    /// Nothing is sent before this (after a 429/503).
    paused_until: Option<Instant>,
    /// Mean duration of recent attempts (exponentially weighted), to tell how fast a
    /// saturated gate drains. Zero until the first attempt ends.
    mean_attempt: Duration,
    /// Where the next deferred delivery is placed: the end of the deferred backlog.
    deferred_until: Instant,
    /// Attempts in flight through this gate now.
    running: usize,
    /// When a delivery last asked for this gate.
    touched_at: Instant,
    /// After a pause: how many may be in flight until the next success widens it;
    /// `None` once it reached the cap.
    ramp: Option<usize>,
}

/// What holds a delivery that has its in-flight slot back, if anything.
enum Turn {
    Go,
    PausedUntil(Instant),
    /// Ramping up after a pause, and as many as the ramp allows are running.
    RampFull,
}

/// An attempt's slot at a gate, held while the attempt runs.
pub(crate) struct Slot {
    gate: Arc<Gate>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let ramping = {
            let mut s = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
            s.running -= 1;
            s.ramp.is_some()
        };
        // Only a ramp makes deliveries wait for a running attempt to end.
        if ramping {
            self.gate.ramp_moved.notify_waiters();
        }
    }
}

/// A delivery's place at a gate: counted in `held` until dropped.
pub(crate) struct Place {
    gate: Arc<Gate>,
    /// When the token promised to this delivery becomes valid.
    ready_at: Instant,
    /// Whether a token of the bucket was promised to this delivery.
    took_token: bool,
}

impl Place {
    /// Gives the place back before the delivery used it (another gate deferred it), with
    /// the token it was promised, so that the deferral costs this gate nothing.
    pub(crate) fn unused(self) {
        if self.took_token {
            let mut s = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(rate) = s.rate {
                s.tokens = (s.tokens + 1.0).min(f64::from(rate));
            }
        }
    }
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Place")
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.gate.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    fn new(cap: usize, hold_max: usize, rate: Option<u32>) -> Gate {
        let rate = usable_rate(rate);
        let now = Instant::now();
        Gate {
            in_flight: Arc::new(Semaphore::new(cap)),
            cap,
            held: AtomicUsize::new(0),
            hold_max: hold_max.max(cap),
            state: Mutex::new(GateState {
                rate,
                tokens: rate.map_or(0.0, f64::from),
                refilled_at: now,
                paused_until: None,
                mean_attempt: Duration::ZERO,
                deferred_until: now,
                running: 0,
                touched_at: now,
                ramp: None,
            }),
            ramp_moved: Notify::new(),
        }
    }

    /// Takes a place for one delivery if it can start within `MAX_WAIT_IN_MEMORY` and
    /// the gate holds fewer than `hold_max`; otherwise says how long from now the
    /// delivery should wait in the store (and moves the end of the deferred backlog).
    pub(crate) fn reserve(self: &Arc<Self>) -> Result<Place, Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let held = self.held.load(Ordering::Relaxed);
        let mut wait = s
            .paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        // Ramping up after a pause, fewer than `cap` drain at a time.
        let cap = s.ramp.unwrap_or(self.cap);
        if held >= cap {
            // Saturated: those ahead drain `cap` at a time, one mean attempt each.
            let ahead = (held + 1 - cap) as u32;
            wait = wait.max(s.mean_attempt * ahead / cap as u32);
        }
        let token_wait = s.token_wait(now);
        wait = wait.max(token_wait);
        if held >= self.hold_max || wait > MAX_WAIT_IN_MEMORY {
            let interval = s.service_interval(self.cap);
            let start = s.deferred_until.max(now + wait);
            s.deferred_until = start + interval;
            return Err(start - now);
        }
        let took_token = s.rate.is_some();
        if took_token {
            s.tokens -= 1.0;
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        Ok(Place {
            gate: self.clone(),
            ready_at: now + token_wait,
            took_token,
        })
    }

    /// Waits for the delivery's turn: its token, the end of any pause, a free in-flight
    /// slot and, ramping up after a pause, room in the ramp. Returns the slot, which the
    /// attempt holds until it is done; `None` if the engine closed the gate (it is
    /// stopping).
    pub(crate) async fn enter(self: &Arc<Self>, place: &Place) -> Option<Slot> {
        if place.ready_at > Instant::now() {
            tokio::time::sleep_until(place.ready_at).await;
        }
        let permit = self.in_flight.clone().acquire_owned().await.ok()?;
        loop {
            match self.start_one() {
                Turn::Go => break,
                Turn::PausedUntil(until) => tokio::time::sleep_until(until).await,
                Turn::RampFull => {
                    // Registered before looking again, so that an attempt ending or the
                    // ramp widening in between is not missed.
                    let moved = self.ramp_moved.notified();
                    tokio::pin!(moved);
                    moved.as_mut().enable();
                    if self.in_flight.is_closed() {
                        return None;
                    }
                    if matches!(self.start_one(), Turn::Go) {
                        break;
                    }
                    moved.await;
                }
            }
        }
        Some(Slot {
            gate: self.clone(),
            _permit: permit,
        })
    }

    /// Counts one more attempt running if neither a pause nor the ramp holds it back.
    fn start_one(&self) -> Turn {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = s.paused_until.filter(|until| *until > Instant::now()) {
            return Turn::PausedUntil(until);
        }
        if s.ramp.is_some_and(|ramp| s.running >= ramp) {
            return Turn::RampFull;
        }
        s.running += 1;
        Turn::Go
    }

    /// The endpoint asked for a pause (429/503, maybe with Retry-After). When it ends,
    /// one attempt goes first.
    pub(crate) fn pause(&self, for_how_long: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + for_how_long;
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
        }
        if self.cap > 1 {
            s.ramp = Some(1);
        }
    }

    /// An attempt through this gate took `took`; a success widens the ramp after a
    /// pause (doubling, up to the cap).
    pub(crate) fn attempt_ended(&self, took: Duration, succeeded: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.mean_attempt = if s.mean_attempt.is_zero() {
            took
        } else {
            (s.mean_attempt * 4 + took) / 5
        };
        if let (Some(ramp), true) = (s.ramp, succeeded) {
            s.ramp = (ramp * 2 < self.cap).then_some(ramp * 2);
            drop(s);
            self.ramp_moved.notify_waiters();
        }
    }

    /// Deliveries held in memory now (waiting or in flight).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// A delivery asked for this gate again: notes when (see `is_idle`) and follows a
    /// change of the endpoint's or application's `throttleRate`.
    fn touch(&self, rate: Option<u32>) {
        let rate = usable_rate(rate);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.touched_at = Instant::now();
        if s.rate != rate {
            s.rate = rate;
            s.tokens = s.tokens.min(rate.map_or(0.0, f64::from));
        }
    }

    /// Whether a new gate would behave exactly as this one: untouched for
    /// `IDLE_GATE_AFTER`, nothing waiting or running, no pause, ramp or deferred backlog
    /// ahead, and a full bucket. Only the mean attempt time is forgotten.
    fn is_idle(&self, now: Instant) -> bool {
        if self.held.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let bucket_full = s.rate.is_none_or(|rate| {
            let rate = f64::from(rate);
            s.tokens + now.duration_since(s.refilled_at).as_secs_f64() * rate >= rate
        });
        now.duration_since(s.touched_at) >= IDLE_GATE_AFTER
            && s.running == 0
            && s.ramp.is_none()
            && s.paused_until.is_none_or(|until| until <= now)
            && s.deferred_until <= now
            && bucket_full
    }
}

/// A stored rate of 0 (accepted before validation refused it) would let nothing
/// through and divide by zero: it is taken as 1 per second.
fn usable_rate(rate: Option<u32>) -> Option<u32> {
    rate.map(|r| r.max(1))
}

impl GateState {
    /// Refills the bucket and says how long until the next token is there.
    fn token_wait(&mut self, now: Instant) -> Duration {
        // No throttleRate: never a wait.
        let Some(rate) = self.rate.map(f64::from) else {
            return Duration::ZERO;
        };
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate)
        }
    }

    /// How far apart deferred deliveries are placed: the time this gate needs per
    /// delivery at its best (its rate, or its in-flight cap over its mean attempt).
    fn service_interval(&self, cap: usize) -> Duration {
        let by_rate = self.rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(1.0 / f64::from(r))
        });
        let by_saturation = self.mean_attempt / cap.max(1) as u32;
        by_rate.max(by_saturation)
    }
}

/// The gates of every endpoint and application this process delivers to.
pub(crate) struct Gates {
    endpoint_cap: usize,
    endpoint_hold_max: usize,
    app_cap: usize,
    app_hold_max: usize,
    endpoints: Mutex<HashMap<String, Arc<Gate>>>,
    apps: Mutex<HashMap<String, Arc<Gate>>>,
}

/// What the gates allow: per endpoint and per application, attempts in flight and
/// deliveries held in memory.
pub(crate) struct GateLimits {
    pub endpoint_in_flight: usize,
    pub endpoint_held: usize,
    pub app_in_flight: usize,
    pub app_held: usize,
}

impl Gates {
    pub(crate) fn new(limits: GateLimits) -> Gates {
        Gates {
            endpoint_cap: limits.endpoint_in_flight.max(1),
            endpoint_hold_max: limits.endpoint_held,
            app_cap: limits.app_in_flight.max(1),
            app_hold_max: limits.app_held,
            endpoints: Mutex::new(HashMap::new()),
            apps: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn for_endpoint(&self, endpoint_id: &str, rate: Option<u32>) -> Arc<Gate> {
        let (cap, hold) = (self.endpoint_cap, self.endpoint_hold_max);
        get_or_insert(&self.endpoints, endpoint_id, rate, cap, hold)
    }

    /// An application's gate: its share of the node (in flight and in memory) and its
    /// `throttleRate`, shared by all its endpoints.
    pub(crate) fn for_app(&self, app_id: &str, rate: Option<u32>) -> Arc<Gate> {
        get_or_insert(&self.apps, app_id, rate, self.app_cap, self.app_hold_max)
    }

    /// Drops the gates nothing holds that are idle (`Gate::is_idle`); the next delivery
    /// to one of them makes a new gate. Returns how many gates are left.
    pub(crate) fn drop_idle(&self, now: Instant) -> usize {
        let mut left = 0;
        for map in [&self.endpoints, &self.apps] {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, g| Arc::strong_count(g) > 1 || !g.is_idle(now));
            // The table keeps its size after a burst unless asked to give it back.
            if map.capacity() > 4 * map.len().max(64) {
                map.shrink_to_fit();
            }
            left += map.len();
        }
        left
    }

    /// Closes every gate: deliveries waiting at one give up (the engine is stopping).
    pub(crate) fn close(&self) {
        for map in [&self.endpoints, &self.apps] {
            for gate in map.lock().unwrap_or_else(|p| p.into_inner()).values() {
                gate.in_flight.close();
                gate.ramp_moved.notify_waiters();
            }
        }
    }
}

fn get_or_insert(
    map: &Mutex<HashMap<String, Arc<Gate>>>,
    key: &str,
    rate: Option<u32>,
    cap: usize,
    hold_max: usize,
) -> Arc<Gate> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(gate) = map.get(key) {
        gate.touch(rate);
        return gate.clone();
    }
    if map.len() >= MAX_GATES {
        map.retain(|_, g| Arc::strong_count(g) > 1);
    }
    let gate = Arc::new(Gate::new(cap, hold_max, rate));
    map.insert(key.to_string(), gate.clone());
    gate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_gates_are_dropped_and_those_with_something_ahead_are_kept() {
        let gates = Gates::new(GateLimits {
            endpoint_in_flight: 4,
            endpoint_held: 8,
            app_in_flight: 8,
            app_held: 16,
        });
        drop(gates.for_endpoint("ep_quiet", None));
        drop(gates.for_app("app_1", None));
        // A throttled endpoint whose one token per second was spent.
        let throttled = gates.for_endpoint("ep_throttled", Some(1));
        let place = throttled.reserve().unwrap();
        drop(throttled.enter(&place).await.unwrap());
        drop((place, throttled));
        // An endpoint that asked for a minute's pause.
        gates
            .for_endpoint("ep_paused", None)
            .pause(Duration::from_secs(60));
        // An endpoint with a delivery waiting in memory (its place holds the gate).
        let busy = gates.for_endpoint("ep_busy", None).reserve().unwrap();
        assert_eq!(gates.drop_idle(Instant::now()), 5);

        tokio::time::advance(IDLE_GATE_AFTER - Duration::from_secs(1)).await;
        assert_eq!(gates.drop_idle(Instant::now()), 5, "touched too recently");
        tokio::time::advance(Duration::from_secs(1)).await;
        // The quiet ones and the throttled one (its bucket has refilled) go.
        assert_eq!(gates.drop_idle(Instant::now()), 2);
        drop(busy);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(gates.drop_idle(Instant::now()), 1, "the paused one stays");
        // A gate asked for again after it was dropped starts afresh.
        let again = gates.for_endpoint("ep_quiet", Some(2));
        assert!(again.reserve().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_lets_a_burst_through_then_keeps_the_rate() {
        let gate = Arc::new(Gate::new(100, 100, Some(4)));
        let start = Instant::now();
        let mut slots = Vec::new();
        // 4 at once (the burst), then 8 more at 4 per second, each reserved when the
        // previous one went (so none waits longer than the in-memory bound).
        for _ in 0..12 {
            let place = gate.reserve().expect("within the in-memory wait");
            slots.push(gate.enter(&place).await.unwrap());
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1990), "{took:?}");
        assert!(took <= Duration::from_millis(2100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_backlog_is_deferred_at_the_gates_pace_not_held() {
        let gate = Arc::new(Gate::new(100, 1000, Some(2)));
        // A burst of 2, then tokens promised up to the 2 s bound: 2 + 4 places.
        let places: Vec<Place> = std::iter::from_fn(|| gate.reserve().ok()).collect();
        assert_eq!(places.len(), 6, "2 at once and 2 s worth at 2/s");
        assert_eq!(gate.held(), 6);
        // The rest go to the store, each half a second after the one before.
        let deferred: Vec<Duration> = (0..4).map(|_| gate.reserve().unwrap_err()).collect();
        for pair in deferred.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                Duration::from_millis(500),
                "{deferred:?}"
            );
        }
        assert!(deferred[0] > MAX_WAIT_IN_MEMORY);
        drop(places);
        assert_eq!(gate.held(), 0, "places are given back when dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_saturated_gate_defers_what_it_cannot_start_soon() {
        let gate = Arc::new(Gate::new(2, 100, None));
        gate.attempt_ended(Duration::from_secs(10), true);
        // Two in flight; a third would wait 5 s for a slot: deferred, spaced 5 s apart.
        let a = gate.reserve().unwrap();
        let b = gate.reserve().unwrap();
        let first = gate.reserve().unwrap_err();
        let second = gate.reserve().unwrap_err();
        assert_eq!(first, Duration::from_secs(5));
        assert_eq!(second - first, Duration::from_secs(5));
        drop((a, b));
        assert!(gate.reserve().is_ok(), "room again once they finished");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everyone_back_and_the_cap_bounds_in_flight() {
        let gate = Arc::new(Gate::new(2, 10, None));
        gate.pause(Duration::from_millis(1500));
        let start = Instant::now();
        let pa = gate.reserve().unwrap();
        let a = gate.enter(&pa).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(1500));
        // One went first after the pause; its success opens the whole cap again.
        gate.attempt_ended(Duration::from_millis(1), true);
        let pb = gate.reserve().unwrap();
        let _b = gate.enter(&pb).await.unwrap();
        // A third waits for a slot.
        let third = tokio::spawn({
            let gate = gate.clone();
            async move {
                let place = gate.reserve().unwrap();
                gate.enter(&place).await.map(|_| Instant::now())
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let freed_at = Instant::now();
        drop(a);
        let entered = third.await.unwrap().unwrap();
        assert!(entered >= freed_at);
        // A long pause defers instead of holding memory.
        gate.pause(Duration::from_secs(30));
        assert!(gate.reserve().unwrap_err() >= Duration::from_secs(29));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_pause_one_goes_first_and_successes_widen_the_way() {
        let gate = Arc::new(Gate::new(8, 100, None));
        gate.pause(Duration::from_secs(1));
        let entered = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        for _ in 0..7 {
            let (gate, entered) = (gate.clone(), entered.clone());
            let place = gate.reserve().unwrap();
            waiters.push(tokio::spawn(async move {
                let slot = gate.enter(&place).await.unwrap();
                entered.fetch_add(1, Ordering::SeqCst);
                slot
            }));
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(entered.load(Ordering::SeqCst), 1, "one goes first");
        // It succeeds: two may go; they succeed: four.
        gate.attempt_ended(Duration::from_millis(10), true);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            entered.load(Ordering::SeqCst),
            2,
            "the first is still in flight"
        );
        gate.attempt_ended(Duration::from_millis(10), true);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(entered.load(Ordering::SeqCst), 4);
        // A failure does not widen it; the next success ends the ramp (8 is the cap).
        gate.attempt_ended(Duration::from_millis(10), false);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(entered.load(Ordering::SeqCst), 4);
        gate.attempt_ended(Duration::from_millis(10), true);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(entered.load(Ordering::SeqCst), 7);
        for w in waiters {
            drop(w.await.unwrap());
        }
        assert_eq!(gate.state.lock().unwrap().running, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_place_gives_its_token_back() {
        let gate = Arc::new(Gate::new(10, 10, Some(1)));
        gate.reserve().unwrap().unused();
        let place = gate.reserve().unwrap();
        assert_eq!(place.ready_at, Instant::now(), "the token is there again");
    }

    #[tokio::test]
    async fn a_rate_of_zero_is_taken_as_one_per_second() {
        let gate = Arc::new(Gate::new(10, 10, Some(0)));
        assert!(gate.reserve().is_ok(), "the first token is there");
        assert!(
            gate.reserve().is_ok(),
            "the next within the in-memory bound"
        );
    }

    #[tokio::test]
    async fn closing_the_gates_releases_waiters() {
        let gates = Gates::new(GateLimits {
            endpoint_in_flight: 1,
            endpoint_held: 10,
            app_in_flight: 10,
            app_held: 10,
        });
        let gate = gates.for_endpoint("ep_1", None);
        let place = gate.reserve().unwrap();
        let held = gate.enter(&place).await.unwrap();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move {
                let place = gate.reserve().unwrap();
                gate.enter(&place).await.is_none()
            }
        });
        tokio::task::yield_now().await;
        gates.close();
        assert!(waiter.await.unwrap(), "the waiter gave up");
        drop(held);
    }
}
