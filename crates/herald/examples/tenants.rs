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

const TOKEN: &str = "tenants-bench-token-0123456789";

/// Open file descriptors (sockets mostly) of the process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
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

    let dir = std::env::temp_dir().join(format!("herald-tenants-{}", std::process::id()));
    let port = 18_172;
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mb(pid);
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
    let post = move |client: reqwest::Client, url: String, body: serde_json::Value| async move {
        let r = client
            .post(url)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    };

    let started = Instant::now();
    {
        let (client, api, sink_base) = (client.clone(), api.clone(), sink_base.clone());
        each(apps, 32, move |a| {
            let (client, api, sink_base) = (client.clone(), api.clone(), sink_base.clone());
            async move {
                let uid = format!("tenant-{a}");
                post(
                    client.clone(),
                    format!("{api}/app"),
                    serde_json::json!({"name": uid, "uid": uid}),
                )
                .await;
                for e in 0..per_app {
                    post(
                        client.clone(),
                        format!("{api}/app/{uid}/endpoint"),
                        serde_json::json!({"url": format!("{sink_base}/{uid}/{e}")}),
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
        let (client, api) = (client.clone(), api.clone());
        each(apps, 64, move |a| {
            let (client, api) = (client.clone(), api.clone());
            async move {
                post(
                    client,
                    format!("{api}/app/tenant-{a}/msg"),
                    serde_json::json!({"eventType": "tenant.test", "payload": {"tenant": a}}),
                )
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
    let (minute_after, fds_later) = (rss_mb(pid), fds(pid));

    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "{}",
        serde_json::json!({
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
            "open_fds": {"when_delivered": fds_done, "a_minute_later": fds_later},
        })
    );
}
