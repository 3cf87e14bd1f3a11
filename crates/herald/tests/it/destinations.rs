//! Destinations on the real server: fifoEndpoint batches arrive in order, signed,
//! through failures; a poller reads with its own token and long-polls; a destination
//! that cannot go on is paused and announced.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// Creates a destination; returns (id, secret: the signing key or the poller token).
async fn destination(app: &TestApp, app_id: &str, body: Value) -> (String, String) {
    let (s, d) = app.post(&format!("/app/{app_id}/destination"), body).await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let (s, secret) = app
        .get(&format!("/app/{app_id}/destination/{id}/secret"))
        .await;
    assert_eq!(s, 200, "{secret}");
    (id, secret["key"].as_str().unwrap().to_string())
}

/// The message ids of every batch the receiver got and answered 2xx, in order.
fn delivered_ids(batches: &[(u16, Received)]) -> Vec<String> {
    batches
        .iter()
        .filter(|(status, _)| (200..300).contains(status))
        .flat_map(|(_, r)| {
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_fifo_destination_sends_signed_batches_in_order_through_failures() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.2,0.2,0.2,0.2")]).await;
    let app_id = app.app("fifo").await;
    // The receiver refuses twice, then takes everything.
    rx.then([
        Reply::status(500).body("down for a moment"),
        Reply::status(503),
    ]);
    rx.otherwise(Reply::status(200));
    let (dest, key) = destination(
        &app,
        &app_id,
        json!({"type": "fifoEndpoint", "batchSize": 3, "config": {"url": rx.url("/fifo"), "headers": {"x-team": "billing"}}}),
    )
    .await;
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push(
            app.send(
                &app_id,
                json!({"eventType": "order.paid", "payload": {"i": i}}),
            )
            .await,
        );
    }
    // While the receiver refuses, the destination says so.
    let path = format!("/app/{app_id}/destination/{dest}");
    let mut saw_retrying = false;
    wait_until(
        "every message delivered",
        Duration::from_secs(20),
        async || {
            let (_, d) = app.get(&path).await;
            if d["status"] == "retrying" {
                saw_retrying = true;
                assert!(
                    d["failureReason"].as_str().unwrap().contains("answered 50"),
                    "{d}"
                );
                assert!(d["nextRetryAt"].is_string(), "{d}");
            }
            let got = rx.received().len();
            delivered_ids(&answered(&rx, got)).len() >= sent.len()
        },
    )
    .await;
    let batches = answered(&rx, rx.received().len());
    // In order, each message once among the accepted batches, none larger than 3.
    assert_eq!(delivered_ids(&batches), sent);
    for (_, r) in &batches {
        assert!(r.json().as_array().unwrap().len() <= 3);
        assert!(
            verify_with_standardwebhooks(&key, r),
            "signed with the destination's key"
        );
        assert_eq!(r.header("x-team"), "billing");
        assert_eq!(r.header("content-type"), "application/json");
    }
    // The refused batch was sent again as it was (same webhook-id), and only then the next.
    assert_eq!(batches[0].0, 500);
    assert_eq!(batches[1].0, 503);
    assert_eq!(
        batches[0].1.header("webhook-id"),
        batches[2].1.header("webhook-id")
    );
    assert!(
        saw_retrying,
        "the destination said it was retrying while refused"
    );
    let (_, d) = app.get(&path).await;
    assert_eq!(d["status"], "enabled", "a success ends the retrying: {d}");
    assert_eq!(d["failureReason"], Value::Null);
    // Its stats say it is caught up, and /metrics counts the batches.
    wait_until("lag 0", Duration::from_secs(10), async || {
        let (_, stats) = app.get(&format!("{path}/stats")).await;
        stats["lagMessages"] == 0
    })
    .await;
    let metrics = app.metrics().await;
    assert!(
        metric(
            &metrics,
            "herald_destination_messages_total{type=\"fifoEndpoint\"}"
        ) >= 10.0
    );
    assert!(
        metric(
            &metrics,
            "herald_destination_failures_total{type=\"fifoEndpoint\"}"
        ) >= 2.0
    );
}

/// The receiver's requests paired with what it answered: 500, then 503, then 200 (the
/// script of the test above).
fn answered(rx: &Receiver, n: usize) -> Vec<(u16, Received)> {
    rx.received()
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, r)| ([500, 503].get(i).copied().unwrap_or(200), r))
        .collect()
}

#[tokio::test]
async fn a_batch_waits_up_to_max_wait_secs_to_fill() {
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(204));
    let app = spawn_app(&[]).await;
    let app_id = app.app("waits").await;
    destination(
        &app,
        &app_id,
        json!({"type": "fifoEndpoint", "batchSize": 100, "maxWaitSecs": 1, "config": {"url": rx.url("/b")}}),
    )
    .await;
    let started = Instant::now();
    for i in 0..5 {
        app.send(&app_id, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].json().as_array().unwrap().len(),
        5,
        "one batch of all five"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_destination_whose_retries_run_out_is_paused_announced_and_resumed() {
    let rx = Receiver::start().await;
    let operator = Receiver::start().await;
    operator.otherwise(Reply::status(200));
    rx.otherwise(Reply::status(500));
    let app = spawn_app(&[
        ("HERALD_RETRY_SCHEDULE_SECS", "0.1,0.1"),
        ("HERALD_OPERATIONAL_WEBHOOKS", "true"),
    ])
    .await;
    let (_, op_app) = app.get("/app/herald-operational").await;
    let op = op_app["id"].as_str().unwrap().to_string();
    app.endpoint(
        &op,
        &operator.url("/ops"),
        json!({"filterTypes": ["destination.paused"]}),
    )
    .await;
    let app_id = app.app("pauses").await;
    let (dest, _) = destination(
        &app,
        &app_id,
        json!({"type": "fifoEndpoint", "uid": "ledger", "config": {"url": rx.url("/p")}}),
    )
    .await;
    let first = app
        .send(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let path = format!("/app/{app_id}/destination/{dest}");
    wait_until("paused", Duration::from_secs(15), async || {
        app.get(&path).await.1["status"] == "paused"
    })
    .await;
    let (_, d) = app.get(&path).await;
    assert!(
        d["failureReason"]
            .as_str()
            .unwrap()
            .contains("paused after 3 failed attempts"),
        "{d}"
    );
    let paused = operator.wait_for(1, Duration::from_secs(10)).await;
    let event = paused[0].json();
    assert_eq!(event["type"], "destination.paused");
    assert_eq!(event["data"]["destinationId"], dest);
    assert_eq!(event["data"]["destinationUid"], "ledger");
    // Paused: nothing more is tried.
    let tried = rx.received().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), tried);
    // The receiver is fixed and an operator enables it: it goes on from where it was.
    rx.otherwise(Reply::status(200));
    let second = app
        .send(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let (s, d) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"type": "fifoEndpoint", "status": "enabled"})),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["failureReason"], Value::Null);
    let got = rx.wait_for(tried + 1, Duration::from_secs(10)).await;
    let ids: Vec<String> = got[tried]
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [first, second]);
}

#[tokio::test]
async fn a_poller_reads_with_its_own_token_and_long_polls() {
    let app = spawn_app(&[]).await;
    let app_id = app.app("poller").await;
    let other_app = app.app("other").await;
    let (dest, token) = destination(
        &app,
        &app_id,
        json!({"type": "pollingEndpoint", "eventTypes": ["keep"]}),
    )
    .await;
    let (other_dest, _) = destination(&app, &app_id, json!({"type": "pollingEndpoint"})).await;
    let poll = |path: String, token: String| {
        let client = app.client.clone();
        let url = app.api(&path);
        async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // Its token reads its poller and nothing else.
    let base = format!("/app/{app_id}/poller/{dest}");
    let (s, empty) = poll(base.clone(), token.clone()).await;
    assert_eq!(s, 200, "{empty}");
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["done"], true);
    assert_eq!(
        poll(format!("/app/{app_id}/poller/{other_dest}"), token.clone())
            .await
            .0,
        404
    );
    assert_eq!(
        poll(format!("/app/{other_app}/poller/{dest}"), token.clone())
            .await
            .0,
        404
    );
    assert_eq!(poll("/app".into(), token.clone()).await.0, 403);
    assert_eq!(
        poll(format!("/app/{app_id}/msg"), token.clone()).await.0,
        403
    );
    assert_eq!(
        poll(format!("/app/{app_id}/destination/{dest}"), token.clone())
            .await
            .0,
        403
    );

    // A long poll wakes as soon as a message it keeps arrives.
    let waiting = tokio::spawn(poll(
        format!(
            "{base}?wait=10&iterator={}",
            empty["iterator"].as_str().unwrap()
        ),
        token.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.send(&app_id, json!({"eventType": "skip", "payload": {}}))
        .await;
    let sent_at = Instant::now();
    let kept = app
        .send(&app_id, json!({"eventType": "keep", "payload": {"n": 1}}))
        .await;
    let (s, got) = waiting.await.unwrap();
    assert_eq!(s, 200, "{got}");
    assert!(
        sent_at.elapsed() < Duration::from_secs(5),
        "woken, not timed out"
    );
    assert_eq!(got["data"][0]["id"], kept);
    assert_eq!(got["data"][0]["payload"], json!({"n": 1}));

    // An iterator that is not one is refused with the field named.
    for bad_iterator in ["nope", ""] {
        let (s, bad) = poll(format!("{base}?iterator={bad_iterator}"), token.clone()).await;
        assert_eq!(s, 422, "{bad}");
        assert_eq!(bad["detail"][0]["loc"], json!(["query", "iterator"]));
    }

    // Rotated: the old token stops at once, the new one reads.
    let (s, rotated) = app
        .post(
            &format!("/app/{app_id}/destination/{dest}/secret/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    assert_eq!(poll(base.clone(), token).await.0, 401);
    assert_eq!(
        poll(base, rotated["key"].as_str().unwrap().into()).await.0,
        200
    );
}

#[tokio::test]
async fn destination_input_errors_name_the_field() {
    let app = spawn_app(&[]).await;
    let app_id = app.app("errors").await;
    for (body, field) in [
        (json!({"type": "bigQuery", "config": {}}), "type"),
        (json!({"type": "sqs", "config": {}}), "config"),
        (json!({"type": "nope"}), "type"),
        (json!({"type": "fifoEndpoint", "config": {}}), "config"),
        (
            json!({"type": "fifoEndpoint", "config": {"url": "ftp://x"}}),
            "config",
        ),
        (
            json!({"type": "fifoEndpoint", "batchSize": 0, "config": {"url": "http://127.0.0.1:9/"}}),
            "batchSize",
        ),
        (
            json!({"type": "pollingEndpoint", "maxWaitSecs": -1}),
            "maxWaitSecs",
        ),
        (
            json!({"type": "pollingEndpoint", "config": {"url": "http://x"}}),
            "config",
        ),
        (
            json!({"type": "pollingEndpoint", "status": "paused"}),
            "status",
        ),
        // Limits hold for lists as given, duplicates included.
        (
            json!({"type": "pollingEndpoint", "channels": vec!["a"; 11]}),
            "channels",
        ),
    ] {
        let (s, e) = app
            .post(&format!("/app/{app_id}/destination"), body.clone())
            .await;
        assert_eq!(s, 422, "{body}: {e}");
        assert_eq!(e["detail"][0]["loc"][1], field, "{body}: {e}");
    }
    let (s, e) = app
        .post(
            &format!("/app/{app_id}/destination"),
            json!({"type": "bigQuery", "config": {}}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        e["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("does not send to bigQuery destinations yet"),
        "{e}"
    );
}

#[tokio::test]
async fn a_fifo_destinations_batch_transformation_shapes_skips_or_fails_its_batches() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.2,0.2,0.2,0.2,0.2,0.2")]).await;
    let app_id = app.app("shaped").await;
    let (dest, key) = destination(
        &app,
        &app_id,
        json!({"type": "fifoEndpoint", "batchSize": 10, "maxWaitSecs": 1,
               "config": {"url": rx.url("/raw"), "headers": {"x-team": "billing"}}}),
    )
    .await;
    let path = format!("/app/{app_id}/destination/{dest}/transformation");
    let (s, t) = app.get(&path).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (t["code"].clone(), t["enabled"].clone()),
        (Value::Null, json!(false))
    );

    // A batch becomes one request of the script's shape: another body, URL, header.
    let code = r#"
        function handler(input) {
            if (input.events.some((e) => e.payload.skip)) {
                return { cancel: true };
            }
            if (input.events.some((e) => e.payload.boom)) {
                throw new Error("cannot shape " + input.events.length);
            }
            return {
                data: { rows: input.events.map((e) => ({ type: e.eventType, n: e.payload.i })) },
                config: { url: input.url.replace("/raw", "/rows"), headers: { "X-Rows": String(input.events.length) } },
            };
        }"#;
    let (s, out) = app.call("PATCH", &path, Some(json!({"code": code}))).await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out, json!({}));
    let (_, t) = app.get(&path).await;
    assert_eq!(
        (t["code"].clone(), t["enabled"].clone()),
        (json!(code), json!(true))
    );
    for i in 0..3 {
        app.send(
            &app_id,
            json!({"eventType": "order.paid", "payload": {"i": i}}),
        )
        .await;
    }
    let got = rx.wait_for(1, Duration::from_secs(15)).await;
    let r = &got[0];
    assert_eq!(r.path, "/rows");
    assert_eq!(
        r.json(),
        json!({"rows": [{"type": "order.paid", "n": 0}, {"type": "order.paid", "n": 1}, {"type": "order.paid", "n": 2}]})
    );
    assert_eq!(r.header("x-rows"), "3");
    assert_eq!(r.header("x-team"), "billing");
    assert!(
        verify_with_standardwebhooks(&key, r),
        "signed over the shaped body"
    );

    // cancel: the batch is skipped and the destination moves past it.
    app.send(
        &app_id,
        json!({"eventType": "order.paid", "payload": {"skip": true}}),
    )
    .await;
    let (_, before) = app.get(&format!("/app/{app_id}/destination/{dest}")).await;
    wait_until(
        "the skipped batch passed",
        Duration::from_secs(15),
        async || {
            let (_, stats) = app
                .get(&format!("/app/{app_id}/destination/{dest}/stats"))
                .await;
            stats["lagMessages"] == 0
        },
    )
    .await;
    let (_, after) = app.get(&format!("/app/{app_id}/destination/{dest}")).await;
    assert_ne!(before["currentIterator"], after["currentIterator"]);
    assert_eq!(
        rx.received().len(),
        1,
        "nothing was sent for the skipped batch"
    );

    // A throwing script fails the batch: retried, with the script's error as the reason.
    app.send(
        &app_id,
        json!({"eventType": "order.paid", "payload": {"boom": true}}),
    )
    .await;
    wait_until("the failure shows", Duration::from_secs(15), async || {
        let (_, d) = app.get(&format!("/app/{app_id}/destination/{dest}")).await;
        d["failureReason"]
            .as_str()
            .is_some_and(|r| r.contains("transformation failed (thrown): Error: cannot shape 1"))
    })
    .await;
    assert_eq!(rx.received().len(), 1);

    // A poller has no transformation; bad code is refused before it is saved.
    let (poller, _) = destination(&app, &app_id, json!({"type": "pollingEndpoint"})).await;
    let (s, e) = app
        .call(
            "PATCH",
            &format!("/app/{app_id}/destination/{poller}/transformation"),
            Some(json!({"code": "function handler(i) { return i; }"})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, e) = app
        .call("PATCH", &path, Some(json!({"code": "function handler("})))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["detail"][0]["loc"], json!(["body", "code"]));
}
