//! `/metrics` scraped from a running server, checked for the named series and values
//! that follow from what the test did.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn metrics_count_ingest_attempts_failures_and_the_queue() {
    let rx = Receiver::start().await;
    rx.then([Reply::status(500)]);
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "3600")]).await;
    let a = app.app("observed").await;
    let (ep, _) = app.endpoint(&a, &rx.url("/"), json!({})).await;
    let first = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    app.attempts_until(&a, &first, Duration::from_secs(10), |d| d.len() == 1)
        .await;
    let second = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    app.attempts_until(&a, &second, Duration::from_secs(10), |d| d.len() == 1)
        .await;

    // Not public: it names endpoints and their volumes.
    let anonymous = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["code"], "authentication_failed");
    let (s, scoped) = app
        .post(&format!("/auth/app-portal-access/{a}"), json!({}))
        .await;
    assert_eq!(s, 200, "{scoped}");
    let scoped_token = scoped["token"].as_str().unwrap();
    let refused = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(scoped_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "an application's token is refused");
    let r = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert_eq!(metric(&text, "herald_messages_ingested_total"), 2.0);
    assert_eq!(
        metric(&text, "herald_attempts_total{outcome=\"success\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "herald_attempts_total{outcome=\"http_error\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("herald_endpoint_failures_total{{endpoint_id=\"{ep}\"}}")
        ),
        1.0
    );
    assert_eq!(metric(&text, "herald_attempt_duration_seconds_count"), 2.0);
    assert!(
        metric(
            &text,
            "herald_store_operation_seconds_count{op=\"message_create\"}"
        ) >= 2.0
    );
    // The failed first message waits an hour for its retry: pending, not yet due.
    assert_eq!(metric(&text, "herald_queue_pending"), 1.0);
    assert_eq!(metric(&text, "herald_queue_oldest_due_age_seconds"), 0.0);
    assert_eq!(metric(&text, "herald_store_up"), 1.0);
    assert_eq!(metric(&text, "herald_deliveries_in_memory"), 0.0);
    // The embedded store's group commit: every acknowledged write was committed and
    // its WAL synced, so there are at least as many jobs as commits, and syncs.
    let (jobs, commits) = (
        metric(&text, "herald_store_write_jobs_total"),
        metric(&text, "herald_store_commits_total"),
    );
    assert!(
        jobs >= commits && commits >= 1.0,
        "{jobs} jobs, {commits} commits"
    );
    assert!(metric(&text, "herald_store_wal_syncs_total") >= 1.0);

    // Health tells the same story.
    let (s, health) = app.get("/health").await;
    assert_eq!(s, 200);
    assert_eq!(health["database"]["status"], "ok");
    assert_eq!(health["queue"]["pending"], 1);
    assert_eq!(health["engine"]["status"], "running");
}

/// The spans an OTLP collector received, flattened.
fn spans_of(collector: &Receiver) -> Vec<serde_json::Value> {
    collector
        .received()
        .iter()
        .flat_map(|d| {
            let body = d.json();
            body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn a_trace_follows_a_message_from_ingest_to_every_attempt() {
    let collector = Receiver::start().await;
    let rx = Receiver::start().await;
    rx.then([Reply::status(500)]);
    let app = spawn_app(&[
        ("HERALD_OTLP_ENDPOINT", &collector.url("")),
        ("HERALD_RETRY_SCHEDULE_SECS", "0.1"),
    ])
    .await;
    let a = app.app("traced").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    rx.wait_for(2, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = spans_of(&collector);
        let of_msg: Vec<_> =
            spans
                .into_iter()
                .filter(|s| {
                    s["attributes"].as_array().unwrap().iter().any(|kv| {
                        kv["key"] == "msg.id" && kv["value"]["stringValue"] == msg.as_str()
                    })
                })
                .collect();
        if of_msg.len() >= 3 {
            break of_msg;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans so far: {of_msg:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(collector
        .received()
        .iter()
        .all(|d| d.header("content-type") == "application/json"));
    let ingest = spans
        .iter()
        .find(|s| s["name"] == "herald.ingest")
        .expect("an ingest span");
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s["name"] == "herald.attempt")
        .collect();
    assert_eq!(attempts.len(), 2, "one span per attempt");
    for attempt in &attempts {
        assert_eq!(attempt["traceId"], ingest["traceId"]);
        assert_eq!(attempt["parentSpanId"], ingest["spanId"]);
    }
    assert_eq!(
        attempts.iter().filter(|s| s["status"]["code"] == 2).count(),
        1,
        "the failed one"
    );
    assert_eq!(ingest["traceId"].as_str().unwrap().len(), 32);
}
