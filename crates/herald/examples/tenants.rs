//! Memory against the number of tenants (BENCHMARKS.md, "Cost per message"): starts a
//! release `herald serve` on a fresh data directory, creates A applications with E
//! endpoints each (every endpoint a distinct path on one local sink), posts one message
//! per application, waits until all A × E deliveries arrived, then watches the server's
//! RSS for a minute. Prints one JSON line: RSS idle before, peak, just after, and a minute
//! after the work.
//!
//!   cargo build --release -p herald --bins --examples
//!   target/release/examples/tenants target/release/herald 10000 10

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::json;

mod support;
use support::HeraldServer;

const TOKEN: &str = "tenants-bench-token-0123456789";

/// Open file descriptors (sockets mostly) of the process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One `/proc/PID/status` figure in MB (`VmRSS:`, `RssAnon:`, ...).
fn status_mb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn rss_mb(pid: u32) -> u64 {
    status_mb(pid, "VmRSS:")
}

/// The RSS split into anonymous memory (the heap, stacks) and file-backed pages (the
/// executable, SQLite's shared memory), which tell a live cache from touched code.
fn rss_split(pid: u32) -> serde_json::Value {
    json!({
        "anon": status_mb(pid, "RssAnon:"),
        "file_and_shmem": status_mb(pid, "RssFile:") + status_mb(pid, "RssShmem:"),
    })
}

/// Runs `f(i)` for i in 0..n with `width` requests in flight.
async fn each<F, Fut>(n: u64, width: usize, f: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..width {
        let (next, f) = (next.clone(), f.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let herald = args
        .next()
        .expect("usage: tenants HERALD_BINARY [APPLICATIONS] [ENDPOINTS_EACH]");
    let apps: u64 = args.next().map_or(10_000, |n| n.parse().expect("a number"));
    let per_app: u64 = args.next().map_or(10, |n| n.parse().expect("a number"));

    let delivered = Arc::new(AtomicU64::new(0));
    let sink = {
        let delivered = delivered.clone();
        axum::Router::new().fallback(move || {
            let delivered = delivered.clone();
            async move {
                delivered.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });

    let server = Arc::new(HeraldServer::start(&herald, 18_172, TOKEN, "tenants").await);
    let pid = server.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, idle_split) = (rss_mb(pid), rss_split(pid));
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
    let started = Instant::now();
    {
        let (server, sink_base) = (server.clone(), sink_base.clone());
        each(apps, 32, move |a| {
            let (server, sink_base) = (server.clone(), sink_base.clone());
            async move {
                let uid = format!("tenant-{a}");
                server
                    .call(Method::POST, "/app", json!({"name": uid, "uid": uid}))
                    .await;
                for e in 0..per_app {
                    let url = format!("{sink_base}/{uid}/{e}");
                    server
                        .call(
                            Method::POST,
                            &format!("/app/{uid}/endpoint"),
                            json!({"url": url}),
                        )
                        .await;
                }
            }
        })
        .await;
    }
    let setup_secs = started.elapsed().as_secs_f64();
    let after_setup = rss_mb(pid);

    let started = Instant::now();
    {
        let server = server.clone();
        each(apps, 64, move |a| {
            let server = server.clone();
            async move {
                let body = json!({"eventType": "tenant.test", "payload": {"tenant": a}});
                server
                    .call(Method::POST, &format!("/app/tenant-{a}/msg"), body)
                    .await;
            }
        })
        .await;
    }
    let expected = apps * per_app;
    while delivered.load(Ordering::Relaxed) < expected {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "stalled at {} of {expected} deliveries",
            delivered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deliver_secs = started.elapsed().as_secs_f64();
    let (done, fds_done) = (rss_mb(pid), fds(pid));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (minute_after, minute_split, fds_later) = (rss_mb(pid), rss_split(pid), fds(pid));

    drop(server);
    println!(
        "{}",
        json!({
            "applications": apps,
            "endpoints_each": per_app,
            "deliveries": expected,
            "setup_secs": (setup_secs * 10.0).round() / 10.0,
            "deliver_secs": (deliver_secs * 10.0).round() / 10.0,
            "rss_mb": {
                "idle": idle,
                "after_setup": after_setup,
                "peak": peak.load(Ordering::Relaxed),
                "when_delivered": done,
                "a_minute_later": minute_after,
            },
            "rss_split_mb": {"idle": idle_split, "a_minute_later": minute_split},
            "open_fds": {"when_delivered": fds_done, "a_minute_later": fds_later},
        })
    );
}
