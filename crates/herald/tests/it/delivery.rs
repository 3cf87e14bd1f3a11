//! Delivery as a receiver sees it: signatures, fan-out, retries, Retry-After, 410,
//! timeouts, redirects, resend and recover.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn delivers_signed_payload_byte_for_byte() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let a = app.app("a").await;
    let (_, secret) = app
        .endpoint(&a, &rx.url("/hook"), json!({"headers": {"X-Tenant": "t1"}}))
        .await;
    // Odd spacing and key order must survive: the payload is delivered as received.
    let raw = r#"{"eventType":"order.created","payload":{"z": 1,  "a" :[1,2,{"k":"v"}]}}"#;
    let r = app
        .client
        .post(app.api(&format!("/app/{a}/msg")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let msg: serde_json::Value = r.json().await.unwrap();
    let got = rx.wait_for(1, WAIT).await;
    let d = &got[0];
    assert_eq!(&d.body[..], br#"{"z": 1,  "a" :[1,2,{"k":"v"}]}"#);
    assert_eq!(d.header("webhook-id"), msg["id"].as_str().unwrap());
    assert_eq!(d.header("content-type"), "application/json");
    assert!(d.header("user-agent").starts_with("Herald/"));
    assert_eq!(d.header("x-tenant"), "t1");
    assert!(
        d.header("svix-id").is_empty(),
        "svix-* headers are off by default"
    );
    assert!(
        verify_with_standardwebhooks(&secret, d),
        "standardwebhooks rejects our signature"
    );
    let attempts = app
        .attempts_until(&a, msg["id"].as_str().unwrap(), WAIT, |a| !a.is_empty())
        .await;
    assert_eq!(attempts[0]["status"], 0);
    assert_eq!(attempts[0]["responseStatusCode"], 200);
    let path = format!(
        "/app/{a}/msg/{}/attempt/{}",
        msg["id"].as_str().unwrap(),
        attempts[0]["id"].as_str().unwrap()
    );
    let (s, _) = app.call("DELETE", &format!("{path}/content"), None).await;
    assert_eq!(s, 204);
    let (s, _) = app
        .call(
            "DELETE",
            &format!(
                "/app/{a}/msg/{}/attempt/atmpt_nope/content",
                msg["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn svix_header_option_adds_svix_names() {
    let app = spawn_app(&[("HERALD_SVIX_HEADERS", "true")]).await;
    let rx = Receiver::start().await;
    let a = app.app("a").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    let id = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let d = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(d.header("svix-id"), id);
    assert_eq!(d.header("svix-signature"), d.header("webhook-signature"));
}

#[tokio::test]
async fn fan_out_follows_event_types_channels_and_disabled() {
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    app.event_type("order.created").await;
    app.event_type("order.paid").await;
    let (all, only_created, eu, off) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    app.endpoint(&a, &all.url("/"), json!({})).await;
    app.endpoint(
        &a,
        &only_created.url("/"),
        json!({"filterTypes": ["order.created"]}),
    )
    .await;
    app.endpoint(&a, &eu.url("/"), json!({"channels": ["eu"]}))
        .await;
    app.endpoint(&a, &off.url("/"), json!({"disabled": true}))
        .await;
    app.send(
        &a,
        json!({"eventType": "order.created", "payload": {"n": 1}}),
    )
    .await;
    app.send(
        &a,
        json!({"eventType": "order.paid", "payload": {"n": 2}, "channels": ["eu", "us"]}),
    )
    .await;
    let last = app
        .send(
            &a,
            json!({"eventType": "order.created", "payload": {"n": 3}, "channels": ["us"]}),
        )
        .await;
    all.wait_for(3, WAIT).await;
    // Wait until the last message's deliveries are all settled, then count.
    app.attempts_until(&a, &last, WAIT, |x| x.len() == 2).await;
    let ns = |r: &Receiver| {
        r.received()
            .iter()
            .map(|d| d.json()["n"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let mut created = ns(&only_created);
    created.sort();
    assert_eq!(created, vec![1, 3]);
    assert_eq!(ns(&eu), vec![2]);
    assert!(off.received().is_empty());
    let (_, targets) = app.get(&format!("/app/{a}/msg/{last}/endpoint")).await;
    assert_eq!(targets["data"].as_array().unwrap().len(), 2);
    assert!(targets["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == 0));
}

#[tokio::test]
async fn rotation_signs_with_both_keys_during_grace() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let a = app.app("a").await;
    let (ep, old) = app.endpoint(&a, &rx.url("/"), json!({})).await;
    let (_, new) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/secret/rotate"),
            json!({"gracePeriodSeconds": 3600}),
        )
        .await;
    let new = new["key"].as_str().unwrap().to_string();
    app.send(&a, json!({"eventType": "x", "payload": {"r": 1}}))
        .await;
    let d = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(d.header("webhook-signature").split(' ').count(), 2);
    assert!(verify_with_standardwebhooks(&old, d));
    assert!(verify_with_standardwebhooks(&new, d));
    // With no grace period the replaced key stops signing at once; the first key keeps
    // the hour of grace it was given.
    let (_, newer) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/secret/rotate"),
            json!({"gracePeriodSeconds": 0}),
        )
        .await;
    let newer = newer["key"].as_str().unwrap().to_string();
    app.send(&a, json!({"eventType": "x", "payload": {"r": 2}}))
        .await;
    let d = &rx.wait_for(2, WAIT).await[1];
    assert!(verify_with_standardwebhooks(&newer, d));
    assert!(
        !verify_with_standardwebhooks(&new, d),
        "rotated out with 0 s of grace"
    );
    assert!(
        verify_with_standardwebhooks(&old, d),
        "still inside its 1 h grace"
    );
}

#[tokio::test]
async fn ed25519_endpoint_signs_v1a() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let a = app.app("a").await;
    let seed = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    app.endpoint(&a, &rx.url("/"), json!({"secret": seed}))
        .await;
    app.send(&a, json!({"eventType": "x", "payload": {"ed": true}}))
        .await;
    let d = &rx.wait_for(1, WAIT).await[0];
    let sig = d.header("webhook-signature");
    assert!(sig.starts_with("v1a,"), "{sig}");
    let secret = herald_core::secret::Secret::parse(seed).unwrap();
    let ts: i64 = d.header("webhook-timestamp").parse().unwrap();
    assert!(herald_core::signing::verify(
        &secret,
        d.header("webhook-id"),
        ts,
        &d.body,
        sig
    ));
}

#[tokio::test]
async fn retries_follow_the_schedule_then_succeed() {
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.3,0.6,5")]).await;
    let rx = Receiver::start().await;
    rx.then([Reply::status(500).body("boom"), Reply::status(502)]);
    let a = app.app("a").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let got = rx.wait_for(3, WAIT).await;
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(300) && gap1 < Duration::from_millis(1500),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(600) && gap2 < Duration::from_millis(1800),
        "second retry after {gap2:?}"
    );
    assert!(
        got.iter().all(|d| d.header("webhook-id") == msg),
        "webhook-id is stable across retries"
    );
    let attempts = app.attempts_until(&a, &msg, WAIT, |x| x.len() == 3).await;
    let codes: Vec<i64> = attempts
        .iter()
        .map(|x| x["responseStatusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 502, 200]);
    assert_eq!(attempts[0]["response"], "boom");
    assert_eq!(attempts[0]["status"], 2);
    assert_eq!(attempts[2]["status"], 0);
}

#[tokio::test]
async fn exhausted_schedule_fails_and_resend_and_recover_deliver() {
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.1")]).await;
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(500));
    let a = app.app("a").await;
    let (ep, _) = app.endpoint(&a, &rx.url("/"), json!({})).await;
    let m1 = app
        .send(&a, json!({"eventType": "x", "payload": {"m": 1}}))
        .await;
    let m2 = app
        .send(&a, json!({"eventType": "x", "payload": {"m": 2}}))
        .await;
    app.attempts_until(&a, &m1, WAIT, |x| x.len() == 2).await;
    app.attempts_until(&a, &m2, WAIT, |x| x.len() == 2).await;
    let (_, per_ep) = app.get(&format!("/app/{a}/endpoint/{ep}/msg")).await;
    assert!(
        per_ep["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == 2),
        "{per_ep}"
    );
    let (_, stats) = app.get(&format!("/app/{a}/endpoint/{ep}/stats")).await;
    assert_eq!(stats["fail"], 2);
    // Two attempts (first + one retry) and no more.
    assert_eq!(rx.received().len(), 4);
    rx.otherwise(Reply::status(200));
    let (s, _) = app
        .post(
            &format!("/app/{a}/msg/{m1}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    let attempts = app.attempts_until(&a, &m1, WAIT, |x| x.len() == 3).await;
    assert_eq!(attempts[2]["status"], 0);
    assert_eq!(attempts[2]["triggerType"], 1);
    let (s, task) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/recover"),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 202, "{task}");
    assert!(task["id"].as_str().unwrap().starts_with("qtask_"));
    let attempts = app.attempts_until(&a, &m2, WAIT, |x| x.len() == 3).await;
    assert_eq!(attempts[2]["status"], 0);
    // Filters on the attempt log.
    let (_, ok) = app
        .get(&format!("/app/{a}/attempt/endpoint/{ep}?status=0"))
        .await;
    assert_eq!(ok["data"].as_array().unwrap().len(), 2);
    let (_, fives) = app
        .get(&format!(
            "/app/{a}/attempt/endpoint/{ep}?status_code_class=500"
        ))
        .await;
    assert_eq!(fives["data"].as_array().unwrap().len(), 4);
    let one = &ok["data"][0];
    let (s, got) = app
        .get(&format!(
            "/app/{a}/msg/{}/attempt/{}",
            one["msgId"].as_str().unwrap(),
            one["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((s, &got["id"]), (200, &one["id"]));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.1,0.1")]).await;
    let rx = Receiver::start().await;
    rx.then([Reply::status(503).header("retry-after", "2")]);
    let a = app.app("a").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let got = rx.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_secs(2) && gap < Duration::from_secs(4),
        "retried after {gap:?}, asked for 2 s"
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.1,0.1")]).await;
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(410));
    let a = app.app("a").await;
    let (ep, _) = app.endpoint(&a, &rx.url("/"), json!({})).await;
    let m = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    app.attempts_until(&a, &m, WAIT, |x| x.len() == 1).await;
    let (_, e) = app.get(&format!("/app/{a}/endpoint/{ep}")).await;
    assert_eq!(e["disabled"], true);
    // A disabled endpoint gets nothing new.
    let m2 = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let (_, targets) = app.get(&format!("/app/{a}/msg/{m2}/endpoint")).await;
    assert!(targets["data"].as_array().unwrap().is_empty());
    assert_eq!(rx.received().len(), 1, "410 is not retried");
}

/// A socket server on loopback that reads a request and then, instead of answering,
/// resets the connection (`reset`) or closes it.
async fn rude_receiver(reset: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = conn.read(&mut buf).await;
            if reset {
                conn.set_zero_linger().unwrap();
            }
            drop(conn);
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn a_failed_attempt_says_what_the_network_did() {
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "60")]).await;
    let resets = rude_receiver(true).await;
    let hangs_up = rude_receiver(false).await;
    let nobody = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    // An https URL to a server that speaks plain HTTP: the TLS handshake fails.
    let plain = Receiver::start().await;
    let not_tls = plain.url("/").replace("http://", "https://");
    let a = app.app("a").await;
    let mut expected = Vec::new();
    for (url, says) in [
        (&resets, "the receiver reset the connection"),
        (
            &hangs_up,
            "the receiver closed the connection before answering",
        ),
        (&nobody, "connection refused"),
        (&not_tls, "TLS failure"),
    ] {
        let (ep, _) = app.endpoint(&a, url, json!({})).await;
        expected.push((ep, says));
    }
    let m = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let attempts = app.attempts_until(&a, &m, WAIT, |x| x.len() == 4).await;
    for (ep, says) in expected {
        let attempt = attempts.iter().find(|x| x["endpointId"] == ep).unwrap();
        let response = attempt["response"].as_str().unwrap();
        assert!(response.starts_with(says), "{ep}: {response}");
        assert_eq!(attempt["responseStatusCode"], 0);
    }
}

#[tokio::test]
async fn timeouts_redirects_and_big_responses_are_bounded() {
    let app = spawn_app(&[
        ("HERALD_REQUEST_TIMEOUT_SECS", "0.5"),
        ("HERALD_RETRY_SCHEDULE_SECS", "60"),
    ])
    .await;
    let (slow, redirect, big) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    slow.otherwise(Reply::status(200).delay(Duration::from_secs(3)));
    let elsewhere = Receiver::start().await;
    redirect.otherwise(Reply::status(302).header("location", &elsewhere.url("/")));
    big.otherwise(Reply::status(200).body("y".repeat(50_000)));
    let a = app.app("a").await;
    let (e_slow, _) = app.endpoint(&a, &slow.url("/"), json!({})).await;
    let (e_redirect, _) = app.endpoint(&a, &redirect.url("/"), json!({})).await;
    let (e_big, _) = app.endpoint(&a, &big.url("/"), json!({})).await;
    let m = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let attempts = app.attempts_until(&a, &m, WAIT, |x| x.len() == 3).await;
    let by = |ep: &str| {
        attempts
            .iter()
            .find(|x| x["endpointId"] == ep)
            .unwrap()
            .clone()
    };
    let t = by(&e_slow);
    assert_eq!(
        (t["responseStatusCode"].as_i64(), t["status"].as_i64()),
        (Some(0), Some(2))
    );
    assert!(t["response"].as_str().unwrap().contains("timed out"), "{t}");
    let r = by(&e_redirect);
    assert_eq!(
        (r["responseStatusCode"].as_i64(), r["status"].as_i64()),
        (Some(302), Some(2))
    );
    assert!(
        elsewhere.received().is_empty(),
        "redirects are not followed"
    );
    let b = by(&e_big);
    assert_eq!(b["response"].as_str().unwrap().len(), 20 * 1024);
}

#[tokio::test]
async fn send_example_uses_the_schema_example() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let (s, _) = app.post("/event-type", json!({"name": "invoice.paid", "description": "d", "schemas": {"1": {"type": "object", "examples": [{"invoice": "inv_1"}]}}})).await;
    assert_eq!(s, 201);
    let a = app.app("a").await;
    let (ep, _) = app
        .endpoint(&a, &rx.url("/"), json!({"filterTypes": ["invoice.paid"]}))
        .await;
    let (other, _) = app
        .endpoint(&a, &Receiver::start().await.url("/"), json!({}))
        .await;
    let (s, m) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/send-example"),
            json!({"eventType": "invoice.paid"}),
        )
        .await;
    assert_eq!(s, 202, "{m}");
    let d = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(d.json(), json!({"invoice": "inv_1"}));
    let (_, targets) = app
        .get(&format!(
            "/app/{a}/msg/{}/endpoint",
            m["id"].as_str().unwrap()
        ))
        .await;
    let ids: Vec<&str> = targets["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![ep.as_str()],
        "only the chosen endpoint, not {other}"
    );
}

#[tokio::test]
async fn scheduled_messages_wait_for_deliver_at() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let a = app.app("a").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    let at_ms = herald_core::time::now_ms() + 1500;
    let sent = std::time::Instant::now();
    app.send(&a, json!({"eventType": "x", "payload": {"later": true}, "deliverAt": herald_core::time::format_rfc3339(at_ms)})).await;
    let d = &rx.wait_for(1, WAIT).await[0];
    let waited = d.at - sent;
    assert!(
        waited >= Duration::from_millis(1300),
        "arrived after {waited:?}, scheduled 1.5 s"
    );
    assert_eq!(d.json(), json!({"later": true}));
}

#[tokio::test]
async fn send_example_with_index_or_payload_and_header_deletes() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let (s, _) = app.post("/event-type", json!({"name": "a.b", "description": "d", "schemas": {"1": {"examples": [{"n": 0}, {"n": 1}]}}})).await;
    assert_eq!(s, 201);
    let a = app.app("a").await;
    let (ep, _) = app
        .endpoint(
            &a,
            &rx.url("/"),
            json!({"headers": {"X-A": "1", "X-B": "2"}}),
        )
        .await;
    let (s, _) = app
        .call(
            "PATCH",
            &format!("/app/{a}/endpoint/{ep}/headers"),
            Some(json!({"deleteHeaders": ["X-A"]})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/send-example"),
            json!({"eventType": "a.b", "exampleIndex": 1}),
        )
        .await;
    assert_eq!(s, 202);
    let d = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(d.json(), json!({"n": 1}));
    assert_eq!((d.header("x-a"), d.header("x-b")), ("", "2"));
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/send-example"),
            json!({"eventType": "a.b", "exampleIndex": 5}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/send-example"),
            json!({"eventType": "a.b", "payload": {"mine": 1}}),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(rx.wait_for(2, WAIT).await[1].json(), json!({"mine": 1}));
}

#[tokio::test]
async fn memory_stays_bounded_when_ingest_outruns_delivery() {
    // One attempt in flight at a time, so at most 8 deliveries may wait in memory; the
    // rest wait in the store and the scheduler feeds them in as the receiver catches up.
    let app = spawn_app(&[("HERALD_MAX_IN_FLIGHT", "1")]).await;
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(200).delay(Duration::from_millis(40)));
    let a = app.app("a").await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            app.send(&a, json!({"eventType": "x", "payload": {"i": i}}))
                .await,
        );
        assert!(
            app._server.engine.queued() <= 8,
            "{} queued in memory",
            app._server.engine.queued()
        );
    }
    let got = rx.wait_for(40, WAIT).await;
    let mut seen: Vec<String> = got
        .iter()
        .map(|d| d.header("webhook-id").to_string())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "every message delivered exactly once");
}

#[tokio::test]
async fn attempts_of_a_message_narrow_by_endpoint_and_page() {
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "0.05")]).await;
    let (rx1, rx2) = (Receiver::start().await, Receiver::start().await);
    rx1.otherwise(Reply::status(500));
    rx2.otherwise(Reply::status(500));
    let a = app.app("a").await;
    let (ep1, _) = app
        .endpoint(&a, &rx1.url("/"), json!({"uid": "first"}))
        .await;
    app.endpoint(&a, &rx2.url("/"), json!({})).await;
    let m = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    app.attempts_until(&a, &m, WAIT, |x| x.len() == 4).await;
    let (_, p1) = app
        .get(&format!(
            "/app/{a}/attempt/msg/{m}?endpoint_id=first&limit=1"
        ))
        .await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 1);
    assert_eq!(p1["data"][0]["endpointId"].as_str(), Some(ep1.as_str()));
    assert_eq!(p1["done"], false);
    let (_, p2) = app
        .get(&format!(
            "/app/{a}/attempt/msg/{m}?endpoint_id={ep1}&limit=1&iterator={}",
            p1["iterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2["data"][0]["endpointId"].as_str(), Some(ep1.as_str()));
    assert_ne!(p2["data"][0]["id"], p1["data"][0]["id"]);
    assert_eq!(p2["done"], true);
}
