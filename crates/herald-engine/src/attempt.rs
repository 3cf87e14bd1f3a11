//! One delivery attempt: sign, send, read a bounded response, decide what comes next,
//! record it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::ids;
use herald_core::metrics::{Outcome, StoreOp};
use herald_core::secret::Secret;
use herald_core::signing::sign_all;
use herald_core::time::now_ms;
use herald_store::{Attempt, AttemptRecord, DeliveryJob, NextStep, StoreError, Trigger};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::gate::{Gate, Place, Slot};
use crate::transform::Transformed;
use crate::Engine;

/// What the receiver did with one request.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// 0 when no HTTP response arrived.
    pub status_code: u16,
    /// The response body (truncated), or why there was no response.
    pub response: String,
    pub duration: Duration,
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

impl Engine {
    /// Takes the delivery's places at its endpoint's and its application's gates, then
    /// waits for its turn there and for a global in-flight permit. What it returns is
    /// held until the attempt is done. `Deferred` when a gate cannot take it soon (it
    /// then waits in the store, see `gate.rs`); `Stopping` when the engine is stopping.
    async fn admit(&self, job: &DeliveryJob) -> Admitted {
        let gates = &self.inner.gates;
        let gate = gates.for_endpoint(&job.endpoint_id, job.throttle_rate);
        let app_gate = gates.for_app(&job.app_id, job.app_throttle_rate);
        let endpoint_place = match gate.reserve() {
            Ok(place) => place,
            Err(after) => return Admitted::Deferred(after),
        };
        let app_place = match app_gate.reserve() {
            Ok(place) => place,
            Err(after) => {
                endpoint_place.unused();
                return Admitted::Deferred(after);
            }
        };
        let Some(endpoint_slot) = gate.enter(&endpoint_place).await else {
            return Admitted::Stopping;
        };
        let Some(app_slot) = app_gate.enter(&app_place).await else {
            return Admitted::Stopping;
        };
        let Ok(permit) = self.inner.permits.clone().acquire_owned().await else {
            return Admitted::Stopping;
        };
        Admitted::Now(Admission {
            gate,
            _places: (endpoint_place, app_place),
            _slots: (endpoint_slot, app_slot, permit),
        })
    }

    /// Delivers `job`, and whatever happens inside, a panic included, leaves the engine
    /// as it found it: the delivery's places and permits are dropped on unwinding, and a
    /// panic is recorded as a failed attempt that is not retried (retrying would meet
    /// the same panic), so the lease is given back and an operator can resend it.
    pub(crate) async fn deliver_guarded(&self, job: DeliveryJob) {
        let result = catch_unwind(self.deliver(&job)).await;
        if let Err(panic) = result {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_string());
            tracing::error!(msg.id = %job.msg_id, endpoint.id = %job.endpoint_id, panic = %what, "a delivery panicked; recorded as failed, not retried");
            let outcome = AttemptOutcome {
                status_code: 0,
                response: format!(
                    "internal error: Herald failed while sending this delivery ({what}); it is not retried, resend it once the cause is fixed"
                ),
                duration: Duration::ZERO,
                retry_after: None,
            };
            self.record(&job, now_ms(), outcome, NextStep::Failed);
        }
    }

    async fn deliver(&self, job: &DeliveryJob) {
        let admission = match self.admit(job).await {
            Admitted::Now(admission) => admission,
            Admitted::Deferred(after) => {
                self.defer(job, after);
                return;
            }
            Admitted::Stopping => {
                // Give the delivery back rather than hold its lease.
                self.inner
                    .given_back
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(job.delivery_id);
                return;
            }
        };
        let gate = &admission.gate;
        if let Some(fault) = self.inner.fault.get() {
            fault(job);
        }
        let started_at = now_ms();
        // A job that waited in memory until its lease nearly ran out is left to whoever
        // claims it next: starting now could overlap with that claim and send it twice.
        let needed = self.inner.config.request_timeout.as_millis() as i64 + 5_000;
        if started_at + needed > job.lease_until {
            tracing::debug!(msg.id = %job.msg_id, endpoint.id = %job.endpoint_id, "lease too short to attempt; leaving it to the scheduler");
            return;
        }
        // The sending futures are boxed: they are large (the HTTP client's), and a
        // delivery waiting at its gate should not hold their room (thousands may wait).
        let (outcome, changed) = if job.transformation.is_some() {
            match Box::pin(self.transform(job)).await {
                Transformed::Send(changed, method) => (
                    Box::pin(self.send(&changed, started_at / 1000, method)).await,
                    Some(changed),
                ),
                Transformed::Cancel(took) => {
                    let outcome = AttemptOutcome {
                        status_code: 0,
                        response: "canceled by the endpoint's transformation (cancel: true); nothing was sent".into(),
                        duration: took,
                        retry_after: None,
                    };
                    self.record(job, started_at, outcome, NextStep::Canceled);
                    return;
                }
                Transformed::Failed(outcome) => (outcome, None),
            }
        } else {
            (
                Box::pin(self.send(job, started_at / 1000, reqwest::Method::POST)).await,
                None,
            )
        };
        // The attempt is logged with what was sent (the transformed URL).
        let job = changed.as_deref().unwrap_or(job);
        gate.attempt_ended(outcome.duration, outcome.succeeded());
        let counted = match outcome.status_code {
            200..=299 => Outcome::Success,
            0 => Outcome::NoResponse,
            _ => Outcome::HttpError,
        };
        self.inner
            .config
            .metrics
            .attempt(counted, &job.endpoint_id, outcome.duration);
        if matches!(outcome.status_code, 429 | 503) {
            // The endpoint asked for air: hold back what is queued behind this one.
            let max = self.inner.config.retry.max_retry_after;
            gate.pause(outcome.retry_after.unwrap_or(DEFAULT_PAUSE).min(max));
        }
        let next = self.next_step(job, &outcome);
        self.record(job, started_at, outcome, next);
    }

    /// Logs one attempt, announces what it means, and hands it to the recorder.
    fn record(&self, job: &DeliveryJob, started_at: i64, outcome: AttemptOutcome, next: NextStep) {
        let attempt = Attempt {
            id: ids::generate(ids::ATTEMPT),
            msg_id: job.msg_id.clone(),
            endpoint_id: job.endpoint_id.clone(),
            app_id: job.app_id.clone(),
            url: job.url.clone(),
            status: match next {
                NextStep::Canceled => 4,
                _ if outcome.succeeded() => 0,
                _ => 2,
            },
            response_status_code: i64::from(outcome.status_code),
            response: outcome.response,
            response_duration_ms: outcome.duration.as_millis() as i64,
            trigger_type: job.trigger as i64,
            created_at: started_at,
        };
        tracing::debug!(msg.id = %job.msg_id, endpoint.id = %job.endpoint_id, app.id = %job.app_id, status = outcome.status_code, ?next, "attempt");
        self.announce_attempt(job, &attempt, next);
        if let Some(sink) = &self.inner.config.spans {
            sink.record(attempt_span(job, &attempt));
        }
        let record = AttemptRecord {
            delivery_id: job.delivery_id,
            attempt,
            next,
        };
        self.inner
            .unrecorded
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.inner.records.send(record).is_err() {
            self.inner
                .unrecorded
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(msg.id = %job.msg_id, "the attempt recorder has stopped; the delivery will be retried after its lease");
        }
    }

    /// Operational webhooks about a message's delivery: failing after the fourth failed
    /// attempt, exhausted when retries ran out, recovered when it then succeeded.
    fn announce_attempt(&self, job: &DeliveryJob, attempt: &Attempt, next: NextStep) {
        if self.is_operational(&job.app_id) {
            return;
        }
        let number = job.attempts + 1;
        let event_type = match next {
            NextStep::Succeeded if job.attempts >= FAILING_AFTER => "message.attempt.recovered",
            NextStep::Failed if job.trigger == Trigger::Scheduled => "message.attempt.exhausted",
            NextStep::RetryAt(_) if number == FAILING_AFTER => "message.attempt.failing",
            _ => return,
        };
        self.announce(
            event_type,
            serde_json::json!({
                "appId": job.app_id,
                "msgId": job.msg_id,
                "endpointId": job.endpoint_id,
                "lastAttempt": {
                    "id": attempt.id,
                    "timestamp": herald_core::time::format_rfc3339(attempt.created_at),
                    "responseStatusCode": attempt.response_status_code,
                    "responseDurationMs": attempt.response_duration_ms,
                },
            }),
        );
    }

    fn next_step(&self, job: &DeliveryJob, outcome: &AttemptOutcome) -> NextStep {
        if outcome.succeeded() {
            return NextStep::Succeeded;
        }
        if outcome.status_code == 410 {
            return NextStep::FailedAndDisableEndpoint;
        }
        if job.trigger == Trigger::Manual {
            return NextStep::Failed;
        }
        let policy = &self.inner.config.retry;
        match policy.next_delay(job.attempts + 1, outcome.retry_after, rand::random::<f64>()) {
            Some(delay) => NextStep::RetryAt(now_ms() + delay.as_millis() as i64),
            None => NextStep::Failed,
        }
    }

    /// An endpoint's signing key, opened from its sealed text (kept opened: `opened.rs`).
    pub(crate) fn open_secret(&self, sealed: &str) -> Result<Arc<Secret>, String> {
        let sealer = &self.inner.config.sealer;
        self.inner.opened_keys.get_or_open(sealed, |sealed| {
            let plain = sealer
                .open(sealed)
                .map_err(|e| format!("cannot open the endpoint's signing key: {e}"))?;
            Secret::parse(&plain).map_err(|e| format!("the endpoint's signing key is invalid: {e}"))
        })
    }

    /// A sensitive custom header's value, stored sealed (kept opened: `opened.rs`).
    pub(crate) fn open_header(&self, name: &str, sealed: &str) -> Result<Arc<String>, String> {
        let sealer = &self.inner.config.sealer;
        self.inner.opened_headers.get_or_open(sealed, |sealed| {
            sealer
                .open(sealed)
                .map_err(|e| format!("cannot open the endpoint's header {name}: {e}"))
        })
    }

    /// Every header of a delivery, in order: content type, user agent, the endpoint's and
    /// the message's own headers, then the signature headers. Borrowed, so that the
    /// HTTP path allocates nothing for them.
    fn delivery_headers<'a>(
        &'a self,
        job: &'a DeliveryJob,
        values: &'a [HeaderValue<'a>],
        timestamp: &'a str,
        signature: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        let config = &self.inner.config;
        // A forwarded inbound request brings its own content type (a form, say).
        let content_type = job
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map_or("application/json", |(_, value)| value.as_str());
        let mut headers = Vec::with_capacity(job.headers.len() + 8);
        headers.push(("content-type", content_type));
        headers.push(("user-agent", config.user_agent.as_str()));
        headers.extend(
            job.headers
                .iter()
                .zip(values)
                .filter(|((name, _), _)| !name.eq_ignore_ascii_case("content-type"))
                .map(|((name, _), value)| (name.as_str(), value.as_str())),
        );
        let msg_id = job.msg_id.as_str();
        headers.extend([
            ("webhook-id", msg_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        ]);
        if config.svix_headers {
            headers.extend([
                ("svix-id", msg_id),
                ("svix-timestamp", timestamp),
                ("svix-signature", signature),
            ]);
        }
        headers
    }

    /// A delivery to a `herald listen` session: handed to the relay, which answers with
    /// what the developer's local app said (or why nothing could be asked).
    async fn send_to_listener(
        &self,
        job: &DeliveryJob,
        headers: &[(&str, &str)],
    ) -> AttemptOutcome {
        let config = &self.inner.config;
        let started = Instant::now();
        let Some(relay) = &config.relay else {
            return unsendable("this node serves no listen sessions".into());
        };
        let request = herald_core::relay::RelayRequest {
            endpoint_id: job.endpoint_id.clone(),
            msg_id: job.msg_id.clone(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: job.payload.to_string(),
        };
        let (status_code, response) =
            match tokio::time::timeout(config.request_timeout, relay.relay(request)).await {
                Ok(Ok(answer)) => (answer.status, answer.body),
                Ok(Err(why)) => (0, why),
                Err(_) => (
                    0,
                    format!(
                        "the listen session did not answer within {} s",
                        config.request_timeout.as_secs_f64()
                    ),
                ),
            };
        let mut response = response;
        herald_core::text::truncate_utf8(&mut response, config.response_capture_bytes);
        AttemptOutcome {
            status_code,
            response,
            duration: started.elapsed(),
            retry_after: None,
        }
    }

    async fn send(
        &self,
        job: &DeliveryJob,
        timestamp: i64,
        method: reqwest::Method,
    ) -> AttemptOutcome {
        let config = &self.inner.config;
        let mut secrets: Vec<Arc<Secret>> = Vec::with_capacity(job.secrets.len());
        for sealed in &job.secrets {
            match self.open_secret(sealed) {
                Ok(secret) => secrets.push(secret),
                // Never send a delivery its receiver could not verify.
                Err(why) => return unsendable(why),
            }
        }
        let signature = sign_all(
            secrets.iter().map(|s| s.as_ref()),
            &job.msg_id,
            timestamp,
            job.payload.as_bytes(),
        );
        let ts = timestamp.to_string();
        // Sensitive custom header values are stored sealed (like signing keys); only
        // those are opened, so that another header's value is sent as it was given.
        let mut values = Vec::with_capacity(job.headers.len());
        for (name, value) in &job.headers {
            if herald_core::validate::is_sensitive_header(name)
                && herald_core::sealing::is_sealed(value)
            {
                match self.open_header(name, value) {
                    Ok(plain) => values.push(HeaderValue::Opened(plain)),
                    Err(why) => return unsendable(why),
                }
            } else {
                values.push(HeaderValue::Plain(value));
            }
        }
        let headers = self.delivery_headers(job, &values, &ts, &signature);
        if job.url.starts_with(herald_core::relay::SCHEME) {
            return self.send_to_listener(job, &headers).await;
        }
        let url = match crate::guard::check_destination(
            &config.destinations,
            config.https_only,
            &job.url,
        ) {
            Ok(url) => url,
            Err(blocked) => {
                return AttemptOutcome {
                    status_code: 0,
                    response: blocked.to_string(),
                    duration: Duration::ZERO,
                    retry_after: None,
                }
            }
        };
        let mut request = self.inner.client.request(method, url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let response = request
            .body(bytes::Bytes::copy_from_slice(job.payload.as_bytes()))
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                return AttemptOutcome {
                    status_code: 0,
                    response: describe_error(&e, config.request_timeout),
                    duration: started.elapsed(),
                    retry_after: None,
                }
            }
        };
        let status_code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut body = Vec::new();
        let limit = config.response_capture_bytes;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = limit - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= limit {
                        break;
                    }
                }
                Ok(None) => break,
                // A response counts only once it is complete: a receiver that sends its
                // status and then stalls (or drops) the body has not answered in time.
                Err(e) => {
                    let why = if e.is_timeout() {
                        format!(
                            "status {status_code} arrived but the response did not complete within {} ms",
                            config.request_timeout.as_millis()
                        )
                    } else {
                        format!("status {status_code} arrived but the response was cut short")
                    };
                    return AttemptOutcome {
                        status_code: 0,
                        response: why,
                        duration: started.elapsed(),
                        retry_after,
                    };
                }
            }
        }
        AttemptOutcome {
            status_code,
            response: String::from_utf8_lossy(&body).into_owned(),
            duration: started.elapsed(),
            retry_after,
        }
    }
}

/// Writes finished attempts to the store, as many per write as have piled up while the
/// previous write ran. A failed write loses nothing that matters: the deliveries stay
/// leased, and are attempted again when their leases end (at-least-once).
pub(crate) async fn run_recorder(engine: Engine, mut rx: mpsc::UnboundedReceiver<AttemptRecord>) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let retries = batch.iter().any(|r| matches!(r.next, NextStep::RetryAt(_)));
        let n = batch.len();
        let records = std::mem::take(&mut batch);
        let mut wait = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let window = engine
                .inner
                .config
                .auto_disable_after
                .map(|d| d.as_millis() as i64);
            let written = engine
                .inner
                .store
                .record_attempts(records.clone(), window)
                .await;
            engine
                .inner
                .config
                .metrics
                .store(StoreOp::RecordAttempts, started.elapsed());
            match written {
                Ok(disabled) => {
                    for endpoint in disabled {
                        tracing::warn!(endpoint.id = %endpoint, "endpoint disabled: it answered 410 Gone, or every attempt failed for the auto-disable window; re-enable it and recover what failed");
                        let Some(r) = records.iter().find(|r| r.attempt.endpoint_id == endpoint)
                        else {
                            continue;
                        };
                        if !engine.is_operational(&r.attempt.app_id) {
                            engine.announce(
                                "endpoint.disabled",
                                serde_json::json!({
                                    "appId": r.attempt.app_id,
                                    "endpointId": endpoint,
                                    "trigger": "automatic",
                                }),
                            );
                        }
                    }
                    break;
                }
                // The database is down for a while (a restart, a network cut): keep the
                // attempts and try again, so that the log loses nothing and deliveries
                // are not sent again when their leases end.
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(error = %e, attempts = n, "the store is unavailable; will record these attempts when it is back");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, attempts = n, "could not record attempts");
                    break;
                }
            }
        }
        engine
            .inner
            .unrecorded
            .fetch_sub(n, std::sync::atomic::Ordering::SeqCst);
        if retries {
            engine.inner.wake.notify_one();
        }
    }
}

/// An attempt as a span of its message's trace, child of the message's ingest.
fn attempt_span(job: &DeliveryJob, attempt: &Attempt) -> herald_core::trace::Span {
    use herald_core::trace;
    let start_ns = trace::ns_from_ms(attempt.created_at);
    herald_core::trace::Span {
        trace_id: trace::trace_id(&job.msg_id),
        span_id: trace::span_id(&attempt.id),
        parent_span_id: Some(trace::ingest_span_id(&job.msg_id)),
        name: "herald.attempt",
        start_ns,
        end_ns: start_ns + attempt.response_duration_ms.max(0) as u64 * 1_000_000,
        attributes: vec![
            ("msg.id", job.msg_id.clone()),
            ("endpoint.id", job.endpoint_id.clone()),
            ("app.id", job.app_id.clone()),
            ("herald.attempt.id", attempt.id.clone()),
            ("herald.attempt.number", (job.attempts + 1).to_string()),
            (
                "http.response.status_code",
                attempt.response_status_code.to_string(),
            ),
        ],
        error: attempt.status != 0,
    }
}

/// What a delivery holds while its attempt runs: its places and in-flight slots at its
/// endpoint's and its application's gates, and a global permit. All are given back
/// when it is dropped, however the delivery ends.
struct Admission {
    gate: Arc<Gate>,
    _places: (Place, Place),
    _slots: (Slot, Slot, OwnedSemaphorePermit),
}

/// A custom header's value as sent: as stored, or opened from its sealed text.
enum HeaderValue<'a> {
    Plain(&'a str),
    Opened(Arc<String>),
}

impl HeaderValue<'_> {
    fn as_str(&self) -> &str {
        match self {
            HeaderValue::Plain(value) => value,
            HeaderValue::Opened(value) => value,
        }
    }
}

/// The result of `Engine::admit`.
enum Admitted {
    Now(Admission),
    /// Wait in the store this long, not in memory.
    Deferred(Duration),
    Stopping,
}

/// Runs `fut`, turning a panic inside it into an `Err` (the future's state is dropped,
/// so whatever it held is given back).
async fn catch_unwind<F: std::future::Future>(fut: F) -> std::thread::Result<F::Output> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::Poll;
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        },
    )
    .await
}

/// After this many failed attempts, a delivery is reported failing.
const FAILING_AFTER: u32 = 4;

/// How long an endpoint that answered 429 or 503 without `Retry-After` is left alone.
const DEFAULT_PAUSE: Duration = Duration::from_secs(5);

/// An attempt that failed before anything was sent.
fn unsendable(why: String) -> AttemptOutcome {
    tracing::error!(reason = %why, "a delivery could not be sent");
    AttemptOutcome {
        status_code: 0,
        response: why,
        duration: Duration::ZERO,
        retry_after: None,
    }
}

/// `Retry-After` is either seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = herald_core::time::parse_http_date(value)?;
    Some(Duration::from_millis((at - now_ms()).max(0) as u64))
}

/// Says why a request got no complete answer, in words an operator can act on (what
/// the network or the receiver did), followed by the underlying error's own text.
pub(crate) fn describe_error(e: &reqwest::Error, timeout: Duration) -> String {
    let chain = error_chain(e);
    // The SSRF guard's refusal, from the resolver, is reported as it is.
    if let Some(blocked) = chain
        .iter()
        .find_map(|s| s.downcast_ref::<crate::guard::Blocked>())
    {
        return blocked.to_string();
    }
    describe_failure(&chain, e.is_timeout(), timeout)
}

/// `e` and its sources, looking inside I/O errors too: an `io::Error` made from another
/// error does not list that error as its source (it skips to the source's source), and
/// the TLS layer's error travels that way.
fn error_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        chain.push(err);
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    chain
}

fn describe_failure(
    chain: &[&(dyn std::error::Error + 'static)],
    timed_out: bool,
    timeout: Duration,
) -> String {
    use std::io::ErrorKind;
    if timed_out {
        return format!(
            "timed out after {} s without a complete response",
            timeout.as_secs_f64()
        );
    }
    if let Some(dns) = chain
        .iter()
        .find_map(|s| s.downcast_ref::<crate::guard::DnsFailed>())
    {
        return dns.to_string();
    }
    if let Some(tls) = chain.iter().find_map(|s| s.downcast_ref::<rustls::Error>()) {
        return format!("TLS failure: {tls}");
    }
    let cause = chain.last().map(|s| s.to_string()).unwrap_or_default();
    let io_kind = chain
        .iter()
        .rev()
        .find_map(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let what = match io_kind {
        Some(ErrorKind::ConnectionRefused) => {
            "connection refused (nothing listens at the endpoint's address and port)"
        }
        Some(ErrorKind::ConnectionReset) => "the receiver reset the connection",
        Some(ErrorKind::ConnectionAborted) => "the connection was aborted",
        Some(ErrorKind::BrokenPipe) => {
            "the receiver closed the connection while the request was being sent"
        }
        Some(ErrorKind::UnexpectedEof) => "the receiver closed the connection before answering",
        Some(ErrorKind::TimedOut) => "the connection timed out",
        Some(ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable) => {
            "the receiver's address is unreachable"
        }
        // The TLS layer may report what it refused (a certificate, a protocol) as
        // invalid data around its own error.
        Some(ErrorKind::InvalidData) => "TLS failure",
        // hyper's words for a connection closed before the whole response came.
        _ if cause.contains("connection closed before message completed") => {
            "the receiver closed the connection before answering"
        }
        _ if cause.contains("invalid HTTP") || cause.contains("parse") => {
            "the receiver's answer is not valid HTTP"
        }
        _ => "the request failed",
    };
    format!("{what}: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_what_happened_and_keep_the_cause() {
        use std::io::{Error, ErrorKind};
        let timeout = Duration::from_secs(15);
        let describe =
            |e: &(dyn std::error::Error + 'static)| describe_failure(&[e], false, timeout);
        let reset = Error::new(
            ErrorKind::ConnectionReset,
            "Connection reset by peer (os error 104)",
        );
        assert_eq!(
            describe(&reset),
            "the receiver reset the connection: Connection reset by peer (os error 104)"
        );
        let refused = Error::from(ErrorKind::ConnectionRefused);
        assert!(describe(&refused).starts_with("connection refused"));
        let tls = Error::new(
            ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert_eq!(
            describe(&tls),
            "TLS failure: invalid peer certificate: UnknownIssuer"
        );
        let dns = crate::guard::DnsFailed("example.test: failed to lookup address".into());
        assert!(
            describe(&dns).starts_with("DNS lookup failed"),
            "{}",
            describe(&dns)
        );
        assert_eq!(
            describe_failure(&[&reset], true, timeout),
            "timed out after 15 s without a complete response"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_http_dates() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let in_a_minute = herald_core::time::now_ms() / 1000 + 60;
        let (d, s) = (in_a_minute / 86_400, in_a_minute % 86_400);
        // Build the IMF-fixdate for "in a minute" from the civil date of day `d`.
        let date = herald_core::time::format_rfc3339(d * 86_400_000);
        let (y, m, day) = (&date[0..4], &date[5..7], &date[8..10]);
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = months[m.parse::<usize>().unwrap() - 1];
        let header = format!(
            "Mon, {day} {month} {y} {:02}:{:02}:{:02} GMT",
            s / 3600,
            s % 3600 / 60,
            s % 60
        );
        let wait = parse_retry_after(&header).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{header}: {wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
