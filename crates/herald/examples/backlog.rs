//! The backlog benchmark of BENCHMARKS.md: a receiver that is down while a large
//! backlog builds up, then comes back. Starts a release `herald serve` on a fresh data
//! directory, points one endpoint at its own sink, posts N messages as fast as Herald
//! takes them while the sink answers `503 Retry-After: 1` (Herald pauses the endpoint
//! and keeps the deliveries in its store), samples the server's RSS every 200 ms, then
//! switches the sink to 204 and times the drain. Prints one JSON line.
//!
//!   cargo build --release -p herald --examples
//!   target/release/examples/backlog target/release/herald 1000000

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;

const TOKEN: &str = "backlog-bench-token-0123456789";

/// (anonymous, file-backed) resident memory in MB, from smaps_rollup.
fn rss_split_mb(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("Anonymous:"), field("Rss:") - field("Anonymous:"))
}

fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let herald = args
        .next()
        .expect("usage: backlog HERALD_BINARY [MESSAGES]");
    let messages: u64 = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("a number"));

    // The sink: 503 while down, 204 once up; counts what it accepted.
    let up = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let sink = {
        let (up, delivered) = (up.clone(), delivered.clone());
        axum::Router::new().fallback(move || {
            let (up, delivered) = (up.clone(), delivered.clone());
            async move {
                if up.load(Ordering::Relaxed) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                    StatusCode::NO_CONTENT.into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response()
                }
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("herald-backlog-{}", std::process::id()));
    let port = 18_171;
    let mut child = std::process::Command::new(&herald)
        .args([
            "serve",
            "--dev",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&dir)
        .env("HERALD_ADMIN_TOKEN", TOKEN)
        .env("HERALD_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start herald");
    let pid = child.id();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{api}/health/ping"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let post = |path: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let r = client
                .post(path)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let app = post(format!("{api}/app"), serde_json::json!({"name": "backlog"})).await;
    let app_id = app["id"].as_str().unwrap().to_string();
    post(
        format!("{api}/app/{app_id}/endpoint"),
        serde_json::json!({"url": sink_url}),
    )
    .await;

    // Memory, sampled all along.
    let peak = Arc::new(AtomicU64::new(0));
    {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_mb(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    // Ingest with the receiver down.
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let payload = serde_json::json!({"padding": "x".repeat(256)});
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (client, next, payload) = (client.clone(), next.clone(), payload.clone());
        let url = format!("{api}/app/{app_id}/msg");
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < messages {
                let body = serde_json::json!({"eventType": "backlog.test", "payload": payload});
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
    let rss_backlog = rss_mb(pid);
    let (anon_backlog, file_backlog) = rss_split_mb(pid);
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let in_memory = gauge("herald_deliveries_in_memory ");
    let pending = gauge("herald_queue_pending ");
    let peak_backlog = peak.load(Ordering::Relaxed);

    // The receiver is back: time the drain.
    up.store(true, Ordering::Relaxed);
    let drain_started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    let mut best_rate = 0.0f64;
    while delivered.load(Ordering::Relaxed) < messages {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let n = delivered.load(Ordering::Relaxed);
        best_rate = best_rate.max((n - last.1) as f64 / last.0.elapsed().as_secs_f64());
        last = (Instant::now(), n);
        assert!(
            drain_started.elapsed() < Duration::from_secs(1800),
            "drain stalled at {n}"
        );
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "messages": messages,
            "ingest_rps": (messages as f64 / ingest_secs).round(),
            "rss_mb_after_backlog": rss_backlog,
            "anonymous_mb_after_backlog": anon_backlog,
            "deliveries_in_memory_after_backlog": in_memory,
            "queue_pending_after_backlog": pending,
            "file_backed_mb_after_backlog": file_backlog,
            "peak_rss_mb_during_backlog": peak_backlog,
            "drain_secs": (drain_secs * 10.0).round() / 10.0,
            "drain_rps": (messages as f64 / drain_secs).round(),
            "best_second_drain_rps": best_rate.round(),
            "peak_rss_mb_overall": peak.load(Ordering::Relaxed),
        })
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
