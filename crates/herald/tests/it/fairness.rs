//! No tenant can stop or slow another: a flood behind a slow and a hanging endpoint
//! adds no latency to another application's deliveries (on SQLite and on two
//! PostgreSQL nodes, real processes), a rate limit of 0 is refused, and a delivery that
//! panics inside the engine is recorded and leaves the node delivering.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::pg::ScratchDb;

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client
        .request(method, format!("{url}/api/v1{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(client: &reqwest::Client, url: &str, path: &str, body: Value) -> (u16, Value) {
    call(client, reqwest::Method::POST, url, path, Some(body)).await
}

async fn create_app(client: &reqwest::Client, url: &str, name: &str) -> String {
    let (s, app) = post(client, url, "/app", json!({"name": name})).await;
    assert_eq!(s, 201, "{app}");
    app["id"].as_str().unwrap().to_string()
}

async fn create_endpoint(client: &reqwest::Client, url: &str, app: &str, body: Value) {
    let (s, ep) = post(client, url, &format!("/app/{app}/endpoint"), body).await;
    assert_eq!(s, 201, "{ep}");
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Sends `n` messages to application `b` through the nodes in turn, one every 100 ms,
/// and returns the end-to-end latencies (sent to received), sorted.
async fn probe_latency(
    client: &reqwest::Client,
    urls: &[String],
    b: &str,
    rx: &Receiver,
    phase: &str,
    n: usize,
) -> Vec<Duration> {
    let before = rx.received().len();
    let mut sent = HashMap::new();
    for i in 0..n {
        sent.insert(i, Instant::now());
        let url = &urls[i % urls.len()];
        let (s, body) = post(
            client,
            url,
            &format!("/app/{b}/msg"),
            json!({"eventType": "x", "payload": {"phase": phase, "i": i}}),
        )
        .await;
        assert_eq!(s, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rx.wait_for(before + n, Duration::from_secs(60)).await;
    let mut latencies: Vec<Duration> = rx
        .received()
        .iter()
        .filter(|d| d.json()["phase"] == phase)
        .map(|d| {
            d.at.saturating_duration_since(sent[&(d.json()["i"].as_u64().unwrap() as usize)])
        })
        .collect();
    latencies.sort();
    latencies
}

/// Application A floods an endpoint limited to 1/s with 5,000 messages and an endpoint
/// that never answers with 2,000 more; application B sends one message every 100 ms
/// to a healthy endpoint, before and while A's backlog waits. B's p99 must stay within
/// a small bound of B alone.
async fn a_flood_behind_slow_endpoints_does_not_slow_another_tenant(urls: &[String]) {
    let client = reqwest::Client::new();
    let url = &urls[0];
    let (s, _) = post(
        &client,
        url,
        "/event-type",
        json!({"name": "x", "description": "x"}),
    )
    .await;
    assert!(s == 201 || s == 409);

    let b_rx = Receiver::start().await;
    let b = create_app(&client, url, "tenant-b").await;
    create_endpoint(&client, url, &b, json!({"url": b_rx.url("/")})).await;
    let alone = probe_latency(&client, urls, &b, &b_rx, "alone", 40).await;

    let slow_rx = Receiver::start().await;
    let hanging_rx = Receiver::start().await;
    hanging_rx.otherwise(Reply::status(200).delay(Duration::from_secs(120)));
    let a = create_app(&client, url, "tenant-a").await;
    create_endpoint(
        &client,
        url,
        &a,
        json!({"url": slow_rx.url("/"), "rateLimit": 1, "channels": ["slow"]}),
    )
    .await;
    let slow_since = Instant::now();
    create_endpoint(
        &client,
        url,
        &a,
        json!({"url": hanging_rx.url("/"), "channels": ["hang"]}),
    )
    .await;
    // The flood: 8 concurrent senders over all nodes.
    let flood = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for t in 0..8 {
        let (client, urls, a, flood) = (client.clone(), urls.to_vec(), a.clone(), flood.clone());
        senders.push(tokio::spawn(async move {
            let mut i = t;
            while i < 7_000 {
                let channel = if i < 5_000 { "slow" } else { "hang" };
                let (s, body) = post(
                    &client,
                    &urls[i % urls.len()],
                    &format!("/app/{a}/msg"),
                    json!({"eventType": "x", "channels": [channel], "payload": {"i": i}}),
                )
                .await;
                assert_eq!(s, 202, "{body}");
                flood.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i += 8;
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(flood.load(std::sync::atomic::Ordering::Relaxed), 7_000);
    // A's backlog now waits (thousands of messages at 1/s, and 2,000 behind an endpoint
    // that never answers) while B keeps sending.
    let beside = probe_latency(&client, urls, &b, &b_rx, "beside", 40).await;
    let (alone_p99, beside_p99) = (p99(&alone), p99(&beside));
    eprintln!("tenant B p99: {alone_p99:?} alone, {beside_p99:?} beside A's backlog");
    assert!(
        beside_p99 <= alone_p99 * 3 + Duration::from_millis(100),
        "B's p99 went from {alone_p99:?} alone to {beside_p99:?} beside A's backlog"
    );
    // A's slow endpoint is served at its rate of 1/s, no faster (per node: each node's
    // gate keeps the rate; a burst of one second is allowed).
    let slow = slow_rx.received().len() as f64;
    let allowed = (slow_since.elapsed().as_secs_f64() + 2.0) * urls.len() as f64;
    assert!(slow >= 1.0, "the slow endpoint is served");
    assert!(
        slow <= allowed,
        "{slow} deliveries at 1/s, at most {allowed} allowed"
    );
    // Its deliveries wait in the store, not in memory: what each node holds is bounded.
    for url in urls {
        let text = metrics_at(&client, url).await;
        let held = metric(&text, "herald_deliveries_in_memory");
        assert!(held <= 600.0, "{url} holds {held} deliveries in memory");
        assert!(metric(&text, "herald_deliveries_deferred_total") > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenants_backlog_does_not_slow_another_on_sqlite() {
    let dir = TempDir::new("fair");
    let node = HeraldProcess::start(
        &dir.0,
        &[
            ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("HERALD_REQUEST_TIMEOUT_SECS", "5"),
            ("HERALD_OPERATIONAL_WEBHOOKS", "false"),
        ],
    );
    a_flood_behind_slow_endpoints_does_not_slow_another_tenant(std::slice::from_ref(&node.url))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenants_backlog_does_not_slow_another_on_two_postgres_nodes() {
    let Some(db) = ScratchDb::create("fair").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: multi-node fairness test skipped");
        return;
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let dirs = [TempDir::new("fair-1"), TempDir::new("fair-2")];
    let nodes: Vec<HeraldProcess> = dirs
        .iter()
        .map(|dir| {
            HeraldProcess::start(
                &dir.0,
                &[
                    ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
                    ("HERALD_DATABASE_URL", &db.url),
                    ("HERALD_MAIN_KEY", key),
                    ("HERALD_REQUEST_TIMEOUT_SECS", "5"),
                    ("HERALD_OPERATIONAL_WEBHOOKS", "false"),
                ],
            )
        })
        .collect();
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    a_flood_behind_slow_endpoints_does_not_slow_another_tenant(&urls).await;
}

/// The backlog that worked around the gates before claims were fair: rows committed
/// unleased (an API node hands nothing to its workers in memory) and all due at once,
/// as after a worker restart. A worker starts to find application A's 50,000
/// deliveries (2,000 messages to 25 endpoints limited to 1/s) due in the database;
/// application B's messages, younger than all of them, must not wait behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_due_at_once_on_a_worker_does_not_slow_another_tenant() {
    let Some(db) = ScratchDb::create("fair_claims").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: fair claim test skipped");
        return;
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let start_node = |dir: &TempDir, role: &str| {
        HeraldProcess::start(
            &dir.0,
            &[
                ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
                ("HERALD_DATABASE_URL", &db.url),
                ("HERALD_MAIN_KEY", key),
                ("HERALD_ROLE", role),
                ("HERALD_OPERATIONAL_WEBHOOKS", "false"),
            ],
        )
    };
    let (api_dir, worker_dir) = (TempDir::new("fair-api"), TempDir::new("fair-worker"));
    let api = start_node(&api_dir, "api");
    let worker = start_node(&worker_dir, "worker");
    let urls = [api.url.clone()];
    let client = reqwest::Client::new();
    let (s, _) = post(
        &client,
        &api.url,
        "/event-type",
        json!({"name": "x", "description": "x"}),
    )
    .await;
    assert_eq!(s, 201);
    let b_rx = Receiver::start().await;
    let b = create_app(&client, &api.url, "tenant-b").await;
    create_endpoint(&client, &api.url, &b, json!({"url": b_rx.url("/")})).await;
    let alone = probe_latency(&client, &urls, &b, &b_rx, "alone", 30).await;

    // The worker goes away while A's backlog is committed, and comes back to find it.
    drop(worker);
    let a_rx = Receiver::start().await;
    let a = create_app(&client, &api.url, "tenant-a").await;
    for _ in 0..25 {
        create_endpoint(
            &client,
            &api.url,
            &a,
            json!({"url": a_rx.url("/"), "rateLimit": 1}),
        )
        .await;
    }
    let mut senders = Vec::new();
    for t in 0..8 {
        let (client, url, a) = (client.clone(), api.url.clone(), a.clone());
        senders.push(tokio::spawn(async move {
            for i in (t..2_000).step_by(8) {
                let (s, body) = post(
                    &client,
                    &url,
                    &format!("/app/{a}/msg"),
                    json!({"eventType": "x", "payload": {"i": i}}),
                )
                .await;
                assert_eq!(s, 202, "{body}");
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let due = db
        .count("SELECT count(*) FROM delivery WHERE status = 1 AND NOT leased")
        .await;
    assert_eq!(due, 50_000, "A's backlog waits in the database");
    let worker = start_node(&worker_dir, "worker");
    let beside = probe_latency(&client, &urls, &b, &b_rx, "beside", 30).await;
    let (alone_p99, beside_p99) = (p99(&alone), p99(&beside));
    eprintln!(
        "tenant B p99 through an API node and a worker: {alone_p99:?} alone, {beside_p99:?} \
         while the worker takes up A's 50,000 due deliveries"
    );
    assert!(
        beside_p99 <= alone_p99 * 3 + Duration::from_millis(500),
        "B's p99 went from {alone_p99:?} alone to {beside_p99:?} beside A's backlog"
    );
    // A's endpoints are served (at their rate), and their backlog waits in the store.
    assert!(!a_rx.received().is_empty(), "A's endpoints are served");
    let text = metrics_at(&client, &worker.url).await;
    assert!(metric(&text, "herald_deliveries_in_memory") <= 600.0);
}

#[tokio::test]
async fn a_rate_limit_of_zero_is_refused_for_applications() {
    let app = spawn_app(&[]).await;
    for field in ["rateLimit", "throttleRate"] {
        let (s, body) = app.post("/app", json!({"name": "a", field: 0})).await;
        assert_eq!(s, 422, "POST {field} 0: {body}");
        // The error names the field as it was given.
        assert_eq!(body["detail"][0]["loc"], json!(["body", field]));
    }
    let id = app.app("ok").await;
    let (s, body) = app
        .call(
            "PUT",
            &format!("/app/{id}"),
            Some(json!({"name": "a", "rateLimit": 0})),
        )
        .await;
    assert_eq!(s, 422, "PUT: {body}");
    let (s, body) = app
        .call(
            "PATCH",
            &format!("/app/{id}"),
            Some(json!({"rateLimit": 0})),
        )
        .await;
    assert_eq!(s, 422, "PATCH: {body}");
    let (s, body) = app
        .call(
            "PATCH",
            &format!("/app/{id}"),
            Some(json!({"rateLimit": 5})),
        )
        .await;
    assert_eq!(s, 200, "PATCH: {body}");
    assert_eq!(body["rateLimit"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_delivery_is_recorded_and_the_node_keeps_delivering() {
    // Few permits, so that leaking any would stop every delivery.
    let app = spawn_app(&[
        ("HERALD_MAX_IN_FLIGHT", "4"),
        ("HERALD_MAX_IN_FLIGHT_PER_ENDPOINT", "2"),
    ])
    .await;
    app._server
        .engine
        .inject_fault_for_tests(Arc::new(|job: &herald_store::DeliveryJob| {
            if job.url.ends_with("/panic") {
                panic!("injected fault");
            }
        }));
    app.event_type("x").await;
    let rx = Receiver::start().await;
    let bad_rx = Receiver::start().await;
    let a = app.app("a").await;
    app.endpoint(&a, &bad_rx.url("/panic"), json!({"channels": ["bad"]}))
        .await;
    app.endpoint(&a, &rx.url("/ok"), json!({"channels": ["good"]}))
        .await;
    let mut bad = Vec::new();
    for i in 0..40 {
        bad.push(
            app.send(
                &a,
                json!({"eventType": "x", "channels": ["bad"], "payload": {"i": i}}),
            )
            .await,
        );
    }
    // Every panicked delivery is logged as a failed attempt with the reason, once.
    for msg in &bad {
        let attempts = app
            .attempts_until(&a, msg, Duration::from_secs(20), |list| !list.is_empty())
            .await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0]["status"], 2);
        let response = attempts[0]["response"].as_str().unwrap();
        assert!(response.contains("internal error"), "{response}");
        assert!(response.contains("injected fault"), "{response}");
    }
    // The engine's count of deliveries in memory is back to zero, and good ones flow.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app.metrics().await, "herald_deliveries_in_memory") != 0.0 {
        assert!(Instant::now() < deadline, "deliveries leaked in memory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..20 {
        app.send(
            &a,
            json!({"eventType": "x", "channels": ["good"], "payload": {"i": i}}),
        )
        .await;
    }
    rx.wait_for(20, Duration::from_secs(10)).await;
    assert!(
        bad_rx.received().is_empty(),
        "a panicked delivery was never sent"
    );
    // Not retried: the failed deliveries stay failed (no second attempt arrives).
    let (_, msgs) = app.get(&format!("/app/{a}/attempt/msg/{}", bad[0])).await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 1);
}
