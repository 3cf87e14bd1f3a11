//! The destinations benchmark of BENCHMARKS.md: how fast one consumer reads a
//! pollingEndpoint, and how fast a fifoEndpoint drains, over a stream of N messages.
//! Starts a release `herald serve` on a fresh data directory, creates a poller and a
//! disabled fifoEndpoint (batchSize 100) pointing at its own sink, ingests N messages,
//! then (1) reads them all through the poller, `limit` at a time, passing each read's
//! iterator to the next, and (2) enables the fifoEndpoint and times the drain. Prints
//! one JSON line.
//!
//!   cargo build --release -p herald --bin herald --example streams
//!   target/release/examples/streams target/release/herald 100000 [limit=100]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

mod support;

use support::HeraldServer;

const TOKEN: &str = "streams-bench-token-0123456789";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let herald = args
        .next()
        .expect("usage: streams HERALD_BINARY [MESSAGES] [LIMIT]");
    let messages: u64 = args
        .next()
        .map_or(100_000, |n| n.parse().expect("a number"));
    let limit: u64 = args.next().map_or(100, |n| n.parse().expect("a number"));

    // The fifo's sink: counts the messages of each batch it accepts.
    let delivered = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let first_batch: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let sink = {
        let (delivered, batches, first) = (delivered.clone(), batches.clone(), first_batch.clone());
        axum::Router::new().fallback(move |headers: HeaderMap| {
            let (delivered, batches, first) = (delivered.clone(), batches.clone(), first.clone());
            async move {
                first.get_or_init(Instant::now);
                let n: u64 = headers
                    .get("herald-batch-size")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0);
                delivered.fetch_add(n, Ordering::Relaxed);
                batches.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/batches", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });

    let server = HeraldServer::start(&herald, 18_172, TOKEN, "streams").await;
    let api = server.api.clone();
    let client = reqwest::Client::new();
    let app = server
        .call(reqwest::Method::POST, "/app", json!({"name": "streams"}))
        .await;
    let app_id = app["id"].as_str().unwrap().to_string();
    let poller = server
        .call(
            reqwest::Method::POST,
            &format!("/app/{app_id}/destination"),
            json!({"type": "pollingEndpoint"}),
        )
        .await;
    let poller_id = poller["id"].as_str().unwrap().to_string();
    let start_iterator = poller["currentIterator"].as_str().unwrap().to_string();
    let fifo = server.call(
        reqwest::Method::POST,
        &format!("/app/{app_id}/destination"),
        json!({"type": "fifoEndpoint", "batchSize": 100, "status": "disabled", "config": {"url": sink_url}}),
    )
    .await;
    let fifo_id = fifo["id"].as_str().unwrap().to_string();
    let token = client
        .get(format!("{api}/app/{app_id}/destination/{poller_id}/secret"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();

    // The stream: N messages of 256 bytes of padding.
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let payload = json!({"padding": "x".repeat(256)});
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (client, next, payload) = (client.clone(), next.clone(), payload.clone());
        let url = format!("{api}/app/{app_id}/msg");
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < messages {
                let body = json!({"eventType": "stream.test", "payload": payload});
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let ingest_secs = started.elapsed().as_secs_f64();

    // (1) One consumer reads the whole stream, `limit` at a time.
    let poll_started = Instant::now();
    let (mut read, mut reads, mut iterator) = (0u64, 0u64, start_iterator);
    loop {
        let page: Value = client
            .get(format!(
                "{api}/app/{app_id}/poller/{poller_id}?limit={limit}&iterator={iterator}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        read += page["data"].as_array().unwrap().len() as u64;
        reads += 1;
        iterator = page["iterator"].as_str().unwrap().to_string();
        if page["done"] == true && read >= messages {
            break;
        }
        assert!(
            poll_started.elapsed() < Duration::from_secs(1800),
            "polling stalled at {read}"
        );
    }
    let poll_secs = poll_started.elapsed().as_secs_f64();
    assert_eq!(read, messages, "the poller read every message once");

    // (2) The fifoEndpoint drains the same stream, 100 a batch.
    let fifo_started = Instant::now();
    server
        .call(
            reqwest::Method::PATCH,
            &format!("/app/{app_id}/destination/{fifo_id}"),
            json!({"type": "fifoEndpoint", "status": "enabled"}),
        )
        .await;
    // Enabled destinations are leased within the supervisor's claim interval (2 s).
    while delivered.load(Ordering::Relaxed) < messages {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            fifo_started.elapsed() < Duration::from_secs(1800),
            "the fifo stalled at {}",
            delivered.load(Ordering::Relaxed)
        );
    }
    let fifo_secs = fifo_started.elapsed().as_secs_f64();
    // From the first batch to the last: the drain itself, without the wait for the
    // supervisor to lease the destination it was told to enable.
    let first = *first_batch.get().expect("a batch arrived");
    let drain_secs = first.elapsed().as_secs_f64();
    let pickup_secs = first.duration_since(fifo_started).as_secs_f64();
    println!(
        "{}",
        json!({
            "messages": messages,
            "ingest_rps": (messages as f64 / ingest_secs).round(),
            "poll_limit": limit,
            "poll_reads": reads,
            "poll_rps": (messages as f64 / poll_secs).round(),
            "fifo_batch_size": 100,
            "fifo_batches": batches.load(Ordering::Relaxed),
            "fifo_pickup_secs": (pickup_secs * 100.0).round() / 100.0,
            "fifo_drain_secs": (drain_secs * 100.0).round() / 100.0,
            "fifo_rps": (messages as f64 / drain_secs).round(),
            "fifo_rps_including_pickup": (messages as f64 / fifo_secs).round(),
        })
    );
}
