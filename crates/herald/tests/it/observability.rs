//! `/metrics` scraped from a running server, checked for the named series and values
//! that follow from what the test did.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .unwrap()
}

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

    let r = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert_eq!(sample(&text, "herald_messages_ingested_total"), 2.0);
    assert_eq!(
        sample(&text, "herald_attempts_total{outcome=\"success\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "herald_attempts_total{outcome=\"http_error\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("herald_endpoint_failures_total{{endpoint_id=\"{ep}\"}}")
        ),
        1.0
    );
    assert_eq!(sample(&text, "herald_attempt_duration_seconds_count"), 2.0);
    assert!(
        sample(
            &text,
            "herald_store_operation_seconds_count{op=\"message_create\"}"
        ) >= 2.0
    );
    // The failed first message waits an hour for its retry: pending, not yet due.
    assert_eq!(sample(&text, "herald_queue_pending"), 1.0);
    assert_eq!(sample(&text, "herald_queue_oldest_due_age_seconds"), 0.0);
    assert_eq!(sample(&text, "herald_store_up"), 1.0);
    assert_eq!(sample(&text, "herald_deliveries_in_memory"), 0.0);

    // Health tells the same story.
    let (s, health) = app.get("/health").await;
    assert_eq!(s, 200);
    assert_eq!(health["database"]["status"], "ok");
    assert_eq!(health["queue"]["pending"], 1);
    assert_eq!(health["engine"]["status"], "running");
}
