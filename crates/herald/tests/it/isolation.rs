//! Endpoint isolation and rate limits: an endpoint that hangs holds only its own share
//! of the engine, `throttleRate` is kept at the receiver, and a 429 with `Retry-After`
//! holds back what is queued behind it instead of spending its attempts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

/// Sends `n` messages to `app`, one every `gap`; returns when each was sent, by `i`.
async fn send_paced(
    app: &TestApp,
    a: &str,
    phase: &str,
    n: usize,
    gap: Duration,
) -> HashMap<usize, Instant> {
    let mut sent = HashMap::new();
    for i in 0..n {
        sent.insert(i, Instant::now());
        app.send(
            a,
            json!({"eventType": "x", "payload": {"phase": phase, "i": i}}),
        )
        .await;
        tokio::time::sleep(gap).await;
    }
    sent
}

/// Delivery latencies (receipt minus send) of one phase across receivers, sorted.
fn latencies(receivers: &[Receiver], phase: &str, sent: &HashMap<usize, Instant>) -> Vec<Duration> {
    let mut out = Vec::new();
    for rx in receivers {
        for d in rx.received() {
            let body = d.json();
            if body["phase"] == phase {
                let i = body["i"].as_u64().unwrap() as usize;
                out.push(d.at.saturating_duration_since(sent[&i]));
            }
        }
    }
    out.sort();
    out
}

fn p90(v: &[Duration]) -> Duration {
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_slow_the_healthy_ones() {
    let app = spawn_app(&[
        ("HERALD_MAX_IN_FLIGHT", "16"),
        ("HERALD_MAX_IN_FLIGHT_PER_ENDPOINT", "4"),
        ("HERALD_REQUEST_TIMEOUT_SECS", "2"),
        ("HERALD_LEASE_SECS", "60"),
        ("HERALD_RETRY_SCHEDULE_SECS", ""),
    ])
    .await;
    const N: usize = 60;
    let gap = Duration::from_millis(20);

    // Baseline: ten healthy endpoints.
    let mut baseline_rx = Vec::new();
    let base = app.app("baseline").await;
    for _ in 0..10 {
        let rx = Receiver::start().await;
        app.endpoint(&base, &rx.url("/"), json!({})).await;
        baseline_rx.push(rx);
    }
    let sent = send_paced(&app, &base, "base", N, gap).await;
    for rx in &baseline_rx {
        rx.wait_for(N, Duration::from_secs(30)).await;
    }
    let baseline = latencies(&baseline_rx, "base", &sent);

    // Nine healthy endpoints and one that never answers (each attempt times out).
    let mixed = app.app("mixed").await;
    let hanging = Receiver::start().await;
    hanging.otherwise(Reply::status(200).delay(Duration::from_secs(60)));
    app.endpoint(&mixed, &hanging.url("/"), json!({})).await;
    let mut healthy_rx = Vec::new();
    for _ in 0..9 {
        let rx = Receiver::start().await;
        app.endpoint(&mixed, &rx.url("/"), json!({})).await;
        healthy_rx.push(rx);
    }
    let sent = send_paced(&app, &mixed, "mixed", N, gap).await;
    for rx in &healthy_rx {
        rx.wait_for(N, Duration::from_secs(30)).await;
    }
    let with_hanging = latencies(&healthy_rx, "mixed", &sent);
    let (b, h) = (p90(&baseline), p90(&with_hanging));
    eprintln!("healthy p90 latency: {b:?} alone, {h:?} beside a hanging endpoint");
    assert!(
        h <= b * 3 + Duration::from_millis(25),
        "healthy p90 went from {b:?} to {h:?} beside a hanging endpoint"
    );
    assert!(
        hanging.received().len() <= 4 + N / 10,
        "the hanging endpoint held at most its share"
    );
}

#[tokio::test]
async fn throttle_rate_is_kept_at_the_receiver_without_loss() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[]).await;
    let a = app.app("throttled").await;
    app.endpoint(&a, &rx.url("/"), json!({"throttleRate": 5}))
        .await;
    const N: usize = 25;
    for i in 0..N {
        app.send(&a, json!({"eventType": "x", "payload": {"i": i}}))
            .await;
    }
    let got = rx.wait_for(N, Duration::from_secs(30)).await;
    let span = got[N - 1].at - got[0].at;
    // A burst of one second's worth (5), then 5 per second: 20 more need about 4 s.
    assert!(
        span >= Duration::from_millis(3700),
        "25 deliveries in {span:?} at 5/s"
    );
    let unique: std::collections::HashSet<_> = got
        .iter()
        .map(|d| d.header("webhook-id").to_string())
        .collect();
    assert_eq!(unique.len(), N, "every message, once");
}

#[tokio::test]
async fn a_429_with_retry_after_holds_back_the_queue() {
    let rx = Receiver::start().await;
    rx.then([Reply::status(429).header("retry-after", "2")]);
    let app = spawn_app(&[
        ("HERALD_MAX_IN_FLIGHT_PER_ENDPOINT", "1"),
        ("HERALD_RETRY_SCHEDULE_SECS", "1"),
    ])
    .await;
    let a = app.app("busy").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.send(&a, json!({"eventType": "x", "payload": {"i": i}}))
                .await,
        );
    }
    let got = rx.wait_for(6, Duration::from_secs(20)).await;
    let first = got[0].at;
    for d in &got[1..] {
        assert!(
            d.at - first >= Duration::from_millis(1900),
            "a delivery went out {:?} after the 429",
            d.at - first
        );
    }
    // The four queued behind the 429 were attempted once each, all successfully.
    for id in &ids {
        let attempts = app
            .attempts_until(&a, id, Duration::from_secs(10), |d| {
                d.iter().any(|x| x["status"] == 0)
            })
            .await;
        let refused = attempts
            .iter()
            .filter(|x| x["responseStatusCode"] == 429)
            .count();
        assert!(
            attempts.len() == 1 || (attempts.len() == 2 && refused == 1),
            "{id}: {attempts:?}"
        );
    }
}

/// After a 429 pause an overloaded receiver gets one request, then more as they
/// succeed; not the endpoint's whole in-flight cap at once.
#[tokio::test]
async fn after_a_429_pause_delivery_resumes_one_request_first() {
    let rx = Receiver::start().await;
    rx.then([Reply::status(429).header("retry-after", "1")]);
    rx.otherwise(Reply::status(200).delay(Duration::from_millis(300)));
    let app = spawn_app(&[
        ("HERALD_MAX_IN_FLIGHT_PER_ENDPOINT", "8"),
        ("HERALD_RETRY_SCHEDULE_SECS", "1"),
    ])
    .await;
    let a = app.app("overloaded").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    app.send(&a, json!({"eventType": "x", "payload": {"i": 0}}))
        .await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    // Eight more queue behind the pause (with the first one's retry).
    for i in 1..9 {
        app.send(&a, json!({"eventType": "x", "payload": {"i": i}}))
            .await;
    }
    let got = rx.wait_for(10, Duration::from_secs(20)).await;
    let after: Vec<Instant> = got[1..].iter().map(|d| d.at).collect();
    let gaps: Vec<Duration> = after.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(250),
        "the second request went {:?} after the first following the pause: {gaps:?}",
        gaps[0]
    );
    // Then it widens: the last eight take far less than eight answers' time.
    let rest = after[9 - 1] - after[1];
    assert!(
        rest < Duration::from_millis(8 * 300),
        "delivery did not widen again: {gaps:?}"
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_window_is_disabled_and_can_come_back() {
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(500));
    // The window is one second here (five days by default).
    let app = spawn_app(&[
        ("HERALD_ENDPOINT_AUTO_DISABLE_SECS", "1"),
        (
            "HERALD_RETRY_SCHEDULE_SECS",
            "0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3",
        ),
    ])
    .await;
    let a = app.app("flaky").await;
    let (ep, _) = app.endpoint(&a, &rx.url("/"), json!({})).await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, got) = app.get(&format!("/app/{a}/endpoint/{ep}")).await;
        if got["disabled"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "never disabled: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attempts = app
        .attempts_until(&a, &msg, Duration::from_secs(5), |d| !d.is_empty())
        .await;
    let first =
        herald_core::time::parse_rfc3339(attempts[0]["timestamp"].as_str().unwrap()).unwrap();
    let last = herald_core::time::parse_rfc3339(
        attempts[attempts.len() - 1]["timestamp"].as_str().unwrap(),
    )
    .unwrap();
    assert!(
        last - first >= 1000,
        "disabled only after a second of failures"
    );
    // Re-enabled, it delivers again once the receiver is healthy, and recover sends
    // what failed meanwhile.
    rx.otherwise(Reply::status(200));
    let (s, _) = app
        .call(
            "PATCH",
            &format!("/app/{a}/endpoint/{ep}"),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/recover"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app
        .attempts_until(&a, &msg, Duration::from_secs(5), |d| !d.is_empty())
        .await
        .iter()
        .any(|x| x["status"] == 0)
    {
        assert!(
            Instant::now() < deadline,
            "the recovered message never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, got) = app.get(&format!("/app/{a}/endpoint/{ep}")).await;
    assert_eq!(got["disabled"], false);
}

#[tokio::test]
async fn an_ordered_endpoint_sees_messages_in_order_while_some_fail() {
    let rx = Receiver::start().await;
    // The first two attempts fail (both are for message 0, retried in order).
    rx.then([Reply::status(500), Reply::status(500)]);
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.2,0.2,0.2")]).await;
    let a = app.app("ordered").await;
    let (s, ep) = app
        .post(
            &format!("/app/{a}/endpoint"),
            json!({"url": rx.url("/"), "ordered": true}),
        )
        .await;
    assert_eq!((s, ep["ordered"].as_bool()), (201, Some(true)), "{ep}");
    const N: u64 = 6;
    for i in 0..N {
        app.send(&a, json!({"eventType": "x", "payload": {"seq": i}}))
            .await;
    }
    let got = rx.wait_for(N as usize + 2, Duration::from_secs(20)).await;
    let seqs: Vec<u64> = got
        .iter()
        .map(|d| d.json()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        [0, 0, 0, 1, 2, 3, 4, 5],
        "in order, each after the one before succeeded"
    );
}

#[tokio::test]
async fn an_application_throttle_rate_is_shared_by_its_endpoints() {
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let app = spawn_app(&[]).await;
    let (s, created) = app
        .post("/app", json!({"name": "slow app", "throttleRate": 10}))
        .await;
    assert_eq!(s, 201, "{created}");
    let a = created["id"].as_str().unwrap().to_string();
    app.endpoint(&a, &first.url("/"), json!({})).await;
    app.endpoint(&a, &second.url("/"), json!({})).await;
    const N: usize = 15;
    for i in 0..N {
        app.send(&a, json!({"eventType": "x", "payload": {"i": i}}))
            .await;
    }
    first.wait_for(N, Duration::from_secs(30)).await;
    second.wait_for(N, Duration::from_secs(30)).await;
    let mut times: Vec<Instant> = first
        .received()
        .iter()
        .chain(second.received().iter())
        .map(|d| d.at)
        .collect();
    times.sort();
    let span = times[times.len() - 1] - times[0];
    // 30 deliveries at 10/s for the whole application, a one-second burst first.
    assert!(
        span >= Duration::from_millis(1800),
        "30 deliveries in {span:?} at 10/s"
    );
}

#[tokio::test]
async fn ordering_keys_are_separate_sequences() {
    let rx = Receiver::start().await;
    // The first attempt (key "a", seq 0) fails; key "b" must not wait for it.
    rx.then([Reply::status(500)]);
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.5")]).await;
    let a = app.app("keyed").await;
    app.endpoint(&a, &rx.url("/"), json!({"ordered": true}))
        .await;
    for (key, seq) in [("a", 0), ("b", 0), ("a", 1), ("b", 1)] {
        app.send(
            &a,
            json!({"eventType": "x", "orderingKey": key, "payload": {"key": key, "seq": seq}}),
        )
        .await;
    }
    let got = rx.wait_for(5, Duration::from_secs(20)).await;
    let order: Vec<String> = got
        .iter()
        .map(|d| format!("{}{}", d.json()["key"].as_str().unwrap(), d.json()["seq"]))
        .collect();
    // a0 failed first; b0 and b1 went on meanwhile; a0 succeeded on its retry, then a1.
    let pos = |x: &str| order.iter().rposition(|o| o == x).unwrap();
    assert_eq!(order[0], "a0", "{order:?}");
    assert!(
        pos("b1") < pos("a0"),
        "key b did not wait for key a: {order:?}"
    );
    assert!(pos("a0") < pos("a1"), "key a kept its order: {order:?}");
    assert!(pos("b0") < pos("b1"), "{order:?}");
}

#[tokio::test]
async fn a_backlog_behind_a_paused_endpoint_waits_in_the_store_not_in_memory() {
    // Room in memory: 8 × max_in_flight = 32 deliveries.
    let app = spawn_app(&[("HERALD_MAX_IN_FLIGHT", "4")]).await;
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(503).header("retry-after", "30"));
    let a = app.app("backlog").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    const N: usize = 300;
    for i in 0..N {
        app.send(&a, json!({"eventType": "x", "payload": {"i": i}}))
            .await;
    }
    // Everything is kept; the scheduler keeps looking for due work every 50 ms meanwhile
    // (the test settings), and must not pull the backlog into memory.
    let until = std::time::Instant::now() + Duration::from_secs(1);
    let mut most = 0.0f64;
    while std::time::Instant::now() < until {
        most = most.max(metric(&app.metrics().await, "herald_deliveries_in_memory"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&app.metrics().await, "herald_queue_pending"),
        N as f64
    );
    assert!(
        most <= 33.0,
        "{most} deliveries waited in memory; room is 32"
    );
}
