//! Counters and histograms for `/metrics`, rendered in the Prometheus text format. A
//! handful of fixed series, kept in atomics so that the hot paths pay one atomic add;
//! no registry and no global state: the binary creates one `Metrics` and hands it to
//! the API and the engine.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
];

/// Endpoints tracked by name in the per-endpoint failure counter; the rest are summed
/// under `endpoint_id="other"`, so the series count stays bounded.
pub const MAX_ENDPOINT_SERIES: usize = 100;

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// How an attempt ended, for `herald_attempts_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Success,
    /// Any other HTTP answer.
    HttpError,
    /// No answer: connection failure, timeout, or refused by the SSRF guard.
    NoResponse,
}

/// Store operations whose latency is measured.
#[derive(Clone, Copy, Debug)]
pub enum StoreOp {
    MessageCreate,
    RecordAttempts,
    ClaimDue,
}

#[derive(Default)]
pub struct Metrics {
    pub messages_ingested: AtomicU64,
    /// Inbound webhooks verified and stored by the gateway (`/in/…`).
    pub inbound_accepted: AtomicU64,
    /// Inbound webhooks refused for a failed verification (401).
    pub inbound_refused: AtomicU64,
    attempts: [AtomicU64; 3],
    /// Deliveries handed back to the store because their gate could not take them soon.
    deferred: AtomicU64,
    attempt_seconds: Histogram,
    store_seconds: [Histogram; 3],
    endpoint_failures: Mutex<HashMap<String, u64>>,
    other_endpoint_failures: AtomicU64,
    /// Per destination type (few: one series each).
    destinations: Mutex<std::collections::BTreeMap<String, DestinationCounts>>,
    /// The last lag each destination sending from this node reported: (type, messages,
    /// seconds), summed and maxed per type at render.
    destination_lags: Mutex<HashMap<String, (String, i64, f64)>>,
    /// Transformation runs before deliveries: sent, cancelled, failed.
    transformations: [AtomicU64; 3],
}

/// How a transformation run ended, for `herald_transformations_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformOutcome {
    Sent,
    Cancelled,
    Failed,
}

/// Counters of one destination type.
#[derive(Default, Clone, Copy)]
struct DestinationCounts {
    batches: u64,
    messages: u64,
    failures: u64,
}

/// Values read at scrape time from elsewhere (the engine and the store).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Deliveries waiting in this process's memory or in flight.
    pub in_memory: usize,
    /// Pending deliveries in the store (due now or later, leased or not).
    pub queue_pending: i64,
    /// Seconds since the oldest pending delivery became due (0 when none is overdue).
    pub oldest_due_age_secs: f64,
    /// Whether the store answered the scrape's queries.
    pub store_up: bool,
    /// The embedded store's group commit; `None` for stores that do not group commits.
    pub store_writes: Option<StoreWrites>,
}

/// Counters of a store that groups writes into shared commits (the embedded store):
/// how much the group commit groups and how long the disk takes to confirm it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreWrites {
    /// Write jobs run (one per API write, or per batch of attempts).
    pub jobs: u64,
    /// Transactions committed (each holds one or more jobs).
    pub commits: u64,
    /// fdatasync calls on the write-ahead log (each covers one or more commits).
    pub syncs: u64,
    /// Seconds spent in those fdatasync calls.
    pub sync_seconds: f64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

impl Metrics {
    pub fn attempt(&self, outcome: Outcome, endpoint_id: &str, took: Duration) {
        self.attempts[outcome as usize].fetch_add(1, Relaxed);
        self.attempt_seconds.observe(took);
        if outcome != Outcome::Success {
            let mut failures = self
                .endpoint_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = failures.get_mut(endpoint_id) {
                *n += 1;
            } else if failures.len() < MAX_ENDPOINT_SERIES {
                failures.insert(endpoint_id.to_string(), 1);
            } else {
                self.other_endpoint_failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// A delivery's transformation ran.
    pub fn transformation(&self, outcome: TransformOutcome) {
        self.transformations[outcome as usize].fetch_add(1, Relaxed);
    }

    /// A delivery was deferred to the store (fair scheduling: its endpoint or
    /// application could not take it soon).
    pub fn deferred(&self) {
        self.deferred.fetch_add(1, Relaxed);
    }

    /// A destination of type `kind` delivered (or a poller read) a batch of `messages`.
    pub fn destination_batch(&self, kind: &str, messages: usize) {
        let mut all = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        let c = all.entry(kind.to_string()).or_default();
        c.batches += 1;
        c.messages += messages as u64;
    }

    /// A destination of type `kind` failed to deliver a batch.
    pub fn destination_failure(&self, kind: &str) {
        let mut all = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(kind.to_string()).or_default().failures += 1;
    }

    /// How far destination `id` (of type `kind`) is behind its stream.
    pub fn destination_lag(&self, id: &str, kind: &str, messages: i64, seconds: f64) {
        self.destination_lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (kind.to_string(), messages, seconds));
    }

    /// Destination `id` no longer sends from this node: its lag is not this node's to
    /// report.
    pub fn destination_gone(&self, id: &str) {
        self.destination_lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn render_transformations(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP herald_transformations_total Endpoint transformations run before deliveries, by how they ended (sent, cancelled, failed).\n# TYPE herald_transformations_total counter");
        for (outcome, n) in ["sent", "cancelled", "failed"]
            .iter()
            .zip(&self.transformations)
        {
            let _ = writeln!(
                out,
                "herald_transformations_total{{outcome=\"{outcome}\"}} {}",
                n.load(Relaxed)
            );
        }
    }

    fn render_destinations(&self, out: &mut String) {
        let counts = self
            .destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, help, pick) in [
            ("herald_destination_batches_total", "Batches destinations delivered (fifoEndpoint) or pollers read (pollingEndpoint), by destination type.", 0),
            ("herald_destination_messages_total", "Messages in those batches, by destination type.", 1),
            ("herald_destination_failures_total", "Batches a destination failed to deliver (each is retried), by destination type.", 2),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, c) in &counts {
                let n = [c.batches, c.messages, c.failures][pick];
                let _ = writeln!(out, "{name}{{type=\"{kind}\"}} {n}");
            }
        }
        let mut lags: std::collections::BTreeMap<String, (i64, f64)> = Default::default();
        for (kind, messages, seconds) in self
            .destination_lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let l = lags.entry(kind.clone()).or_default();
            l.0 += messages;
            l.1 = l.1.max(*seconds);
        }
        let _ = writeln!(out, "# HELP herald_destination_lag_messages Messages the destinations this node sends have yet to deliver (summed per type).\n# TYPE herald_destination_lag_messages gauge");
        for (kind, (messages, _)) in &lags {
            let _ = writeln!(
                out,
                "herald_destination_lag_messages{{type=\"{kind}\"}} {messages}"
            );
        }
        let _ = writeln!(out, "# HELP herald_destination_lag_seconds Age of the oldest message a destination this node sends has yet to deliver (the most behind per type).\n# TYPE herald_destination_lag_seconds gauge");
        for (kind, (_, seconds)) in &lags {
            let _ = writeln!(
                out,
                "herald_destination_lag_seconds{{type=\"{kind}\"}} {seconds}"
            );
        }
    }

    pub fn store(&self, op: StoreOp, took: Duration) {
        self.store_seconds[op as usize].observe(took);
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let _ = writeln!(
            out,
            "# HELP herald_build_info Herald's version.\n# TYPE herald_build_info gauge"
        );
        let _ = writeln!(
            out,
            "herald_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        let _ = writeln!(out, "# HELP herald_messages_ingested_total Messages accepted (202) by this node.\n# TYPE herald_messages_ingested_total counter");
        let _ = writeln!(
            out,
            "herald_messages_ingested_total {}",
            self.messages_ingested.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP herald_inbound_requests_total Inbound webhooks by outcome (accepted: verified and stored; refused: verification failed).\n# TYPE herald_inbound_requests_total counter");
        let _ = writeln!(
            out,
            "herald_inbound_requests_total{{outcome=\"accepted\"}} {}\nherald_inbound_requests_total{{outcome=\"refused\"}} {}",
            self.inbound_accepted.load(Relaxed),
            self.inbound_refused.load(Relaxed)
        );

        let _ = writeln!(out, "# HELP herald_attempts_total Delivery attempts by outcome.\n# TYPE herald_attempts_total counter");
        for (i, name) in ["success", "http_error", "no_response"].iter().enumerate() {
            let _ = writeln!(
                out,
                "herald_attempts_total{{outcome=\"{name}\"}} {}",
                self.attempts[i].load(Relaxed)
            );
        }

        let _ = writeln!(out, "# HELP herald_deliveries_deferred_total Deliveries handed back to the store unattempted because their endpoint or application could not take them soon (fair scheduling).\n# TYPE herald_deliveries_deferred_total counter");
        let _ = writeln!(
            out,
            "herald_deliveries_deferred_total {}",
            self.deferred.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP herald_attempt_duration_seconds Time from sending a delivery to its answer.\n# TYPE herald_attempt_duration_seconds histogram");
        self.attempt_seconds
            .render(&mut out, "herald_attempt_duration_seconds", "");

        let _ = writeln!(out, "# HELP herald_endpoint_failures_total Failed attempts per endpoint (the first {MAX_ENDPOINT_SERIES} endpoints to fail by id, the rest as \"other\").\n# TYPE herald_endpoint_failures_total counter");
        let failures = self
            .endpoint_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<_> = failures.iter().collect();
        ids.sort();
        for (id, n) in ids {
            let _ = writeln!(
                out,
                "herald_endpoint_failures_total{{endpoint_id=\"{id}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "herald_endpoint_failures_total{{endpoint_id=\"other\"}} {}",
            self.other_endpoint_failures.load(Relaxed)
        );
        drop(failures);

        let _ = writeln!(out, "# HELP herald_store_operation_seconds Latency of the store's hot operations.\n# TYPE herald_store_operation_seconds histogram");
        for (i, op) in ["message_create", "record_attempts", "claim_due"]
            .iter()
            .enumerate()
        {
            self.store_seconds[i].render(
                &mut out,
                "herald_store_operation_seconds",
                &format!("op=\"{op}\""),
            );
        }

        self.render_destinations(&mut out);
        self.render_transformations(&mut out);

        let _ = writeln!(out, "# HELP herald_deliveries_in_memory Deliveries waiting in this node's memory or in flight.\n# TYPE herald_deliveries_in_memory gauge");
        let _ = writeln!(out, "herald_deliveries_in_memory {}", gauges.in_memory);
        let _ = writeln!(out, "# HELP herald_queue_pending Pending deliveries in the store.\n# TYPE herald_queue_pending gauge");
        let _ = writeln!(out, "herald_queue_pending {}", gauges.queue_pending);
        let _ = writeln!(out, "# HELP herald_queue_oldest_due_age_seconds How long the most overdue pending delivery has been due.\n# TYPE herald_queue_oldest_due_age_seconds gauge");
        let _ = writeln!(
            out,
            "herald_queue_oldest_due_age_seconds {}",
            gauges.oldest_due_age_secs
        );
        let _ = writeln!(out, "# HELP herald_store_up Whether the store answered this scrape.\n# TYPE herald_store_up gauge");
        let _ = writeln!(out, "herald_store_up {}", u8::from(gauges.store_up));
        if let Some(w) = gauges.store_writes {
            for (name, help, value) in [
                ("herald_store_write_jobs_total", "Writes run by the embedded store's writer.", w.jobs as f64),
                ("herald_store_commits_total", "Transactions the embedded store committed (group commit: several writes each).", w.commits as f64),
                ("herald_store_wal_syncs_total", "fdatasync calls on the write-ahead log (each covers every commit before it).", w.syncs as f64),
                ("herald_store_wal_sync_seconds_total", "Time spent in those fdatasync calls.", w.sync_seconds),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_bounded_endpoint_labels() {
        let m = Metrics::default();
        m.messages_ingested.fetch_add(3, Relaxed);
        m.attempt(Outcome::Success, "ep_a", Duration::from_millis(3));
        m.attempt(Outcome::HttpError, "ep_a", Duration::from_millis(30));
        for i in 0..(MAX_ENDPOINT_SERIES + 5) {
            m.attempt(
                Outcome::NoResponse,
                &format!("ep_{i:03}"),
                Duration::from_secs(20),
            );
        }
        m.store(StoreOp::MessageCreate, Duration::from_micros(700));
        let text = m.render(Gauges {
            in_memory: 2,
            queue_pending: 9,
            oldest_due_age_secs: 1.5,
            store_up: true,
            store_writes: Some(StoreWrites {
                jobs: 10,
                commits: 4,
                syncs: 3,
                sync_seconds: 0.25,
            }),
        });
        assert!(text.contains("herald_messages_ingested_total 3\n"));
        assert!(text.contains("herald_attempts_total{outcome=\"success\"} 1\n"));
        assert!(text.contains("herald_attempts_total{outcome=\"no_response\"} 105\n"));
        assert!(text.contains("herald_attempt_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("herald_attempt_duration_seconds_bucket{le=\"+Inf\"} 107\n"));
        assert!(text.contains("herald_endpoint_failures_total{endpoint_id=\"ep_a\"} 1\n"));
        assert!(text.contains("herald_endpoint_failures_total{endpoint_id=\"other\"} 6\n"));
        let endpoint_series = text
            .lines()
            .filter(|l| l.starts_with("herald_endpoint_failures_total{"))
            .count();
        assert_eq!(endpoint_series, MAX_ENDPOINT_SERIES + 1);
        assert!(text.contains(
            "herald_store_operation_seconds_bucket{op=\"message_create\",le=\"0.001\"} 1\n"
        ));
        assert!(text.contains("herald_queue_oldest_due_age_seconds 1.5\n"));
        assert!(text.contains("herald_store_up 1\n"));
        assert!(text.contains("herald_store_commits_total 4\n"));
        assert!(text.contains("herald_store_wal_sync_seconds_total 0.25\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
