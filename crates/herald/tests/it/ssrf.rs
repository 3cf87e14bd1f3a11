//! The SSRF guard against the real engine. Every packet stays on loopback: a receiver on
//! 127.0.0.1 must not be reached while loopback is not allowed, whatever the spelling;
//! other ranges are reached through names the test resolver (`HERALD_RESOLVE`) maps, and
//! the guard refuses them before any connection is made.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// A server whose SSRF guard is at its defaults (loopback refused).
async fn guarded(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("HERALD_ALLOWED_SUBNETS", ""),
        ("HERALD_RETRY_SCHEDULE_SECS", ""),
    ];
    env.extend_from_slice(extra);
    spawn_app(&env).await
}

/// Sends one message to an app whose only endpoint is `url`, and returns its one
/// (failed) attempt.
async fn one_attempt(app: &TestApp, url: &str) -> Value {
    let a = app.app("ssrf").await;
    app.endpoint(&a, url, json!({})).await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let attempts = app
        .attempts_until(&a, &msg, Duration::from_secs(10), |d| !d.is_empty())
        .await;
    attempts[0].clone()
}

#[tokio::test]
async fn loopback_is_refused_in_every_spelling() {
    let rx = Receiver::start().await;
    let port = rx.addr.port();
    let app = guarded(&[("HERALD_RESOLVE", "rebind.test=127.0.0.1")]).await;
    let a = app.app("ssrf").await;
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://0x7f.0.0.1:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::ffff:7f00:1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://[fd00::1]/".to_string(),
        "http://100.64.0.1/".to_string(),
    ] {
        let (s, b) = app
            .post(&format!("/app/{a}/endpoint"), json!({"url": url}))
            .await;
        assert_eq!(s, 422, "{url}: {b}");
        assert_eq!(b["detail"][0]["loc"], json!(["body", "url"]), "{url}");
        let msg = b["detail"][0]["msg"].as_str().unwrap();
        assert!(
            msg.contains("which Herald does not deliver to"),
            "{url}: {msg}"
        );
        // A loopback URL, what a developer tries first, is told how to open it.
        if url.contains("127.") || url.contains("[::1]") || url.contains("7f") {
            assert!(
                msg.contains("herald serve --dev") && msg.contains("allowed_subnets"),
                "{url}: {msg}"
            );
        }
    }

    // Host names pass creation (they are checked when resolved), then every attempt
    // is refused before a connection is made.
    for (host, why) in [("localhost", "loopback"), ("rebind.test", "loopback")] {
        let attempt = one_attempt(&app, &format!("http://{host}:{port}/hook")).await;
        assert_eq!(attempt["responseStatusCode"], 0);
        let response = attempt["response"].as_str().unwrap();
        assert!(
            response.starts_with(&format!("blocked: {host}: ")) && response.contains(why),
            "{host}: {response}"
        );
    }
    assert!(
        rx.received().is_empty(),
        "the receiver on 127.0.0.1 was reached"
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_refused() {
    let app = guarded(&[(
        "HERALD_RESOLVE",
        "internal.test=10.1.2.3,metadata.test=169.254.169.254,ula.test=fd00::7",
    )])
    .await;
    for (host, why) in [
        ("internal.test", "10.1.2.3 is private"),
        ("metadata.test", "169.254.169.254 is link-local"),
        ("ula.test", "fd00::7 is unique local"),
    ] {
        let attempt = one_attempt(&app, &format!("http://{host}/hook")).await;
        let response = attempt["response"].as_str().unwrap();
        assert!(response.contains(why), "{host}: {response}");
        assert_eq!(attempt["status"], 2);
    }
}

#[tokio::test]
async fn an_allowed_subnet_is_reached_through_the_checked_address() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[
        ("HERALD_ALLOWED_SUBNETS", "127.0.0.1/32"),
        ("HERALD_RESOLVE", "receiver.test=127.0.0.1"),
    ])
    .await;
    let a = app.app("ssrf").await;
    app.endpoint(
        &a,
        &format!("http://receiver.test:{}/in", rx.addr.port()),
        json!({}),
    )
    .await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("webhook-id"), msg);
    assert_eq!(
        got[0].header("host"),
        format!("receiver.test:{}", rx.addr.port())
    );
    // 127.0.0.2 is loopback too, but outside the /32 that was opened.
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint"),
            json!({"url": "http://127.0.0.2:9/"}),
        )
        .await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn a_redirect_to_an_internal_address_is_not_followed() {
    let inside = Receiver::start().await;
    let door = Receiver::start().await;
    door.otherwise(Reply::status(307).header("location", &inside.url("/admin")));
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "")]).await;
    let a = app.app("ssrf").await;
    app.endpoint(&a, &door.url("/hook"), json!({})).await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let attempts = app
        .attempts_until(&a, &msg, Duration::from_secs(10), |d| !d.is_empty())
        .await;
    assert_eq!(attempts[0]["responseStatusCode"], 307);
    assert_eq!(attempts[0]["status"], 2, "a redirect is a failed attempt");
    assert_eq!(door.received().len(), 1);
    assert!(inside.received().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn https_only_refuses_plain_http_endpoints() {
    let app = spawn_app(&[("HERALD_HTTPS_ONLY", "true")]).await;
    let a = app.app("ssrf").await;
    let (s, b) = app
        .post(
            &format!("/app/{a}/endpoint"),
            json!({"url": "http://example.com/hook"}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(b["detail"][0]["msg"].as_str().unwrap().contains("https"));
}

#[tokio::test]
async fn deliveries_go_through_the_outbound_proxy() {
    // The receiver plays an HTTP proxy: it gets the request meant for the endpoint.
    let proxy = Receiver::start().await;
    let app = spawn_app(&[
        ("HERALD_OUTBOUND_PROXY", &proxy.url("")),
        ("HERALD_ALLOWED_SUBNETS", ""),
    ])
    .await;
    let a = app.app("proxied").await;
    app.endpoint(&a, "http://hooks.example.test/in", json!({}))
        .await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let got = proxy.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("host"), "hooks.example.test");
    assert_eq!(got[0].header("webhook-id"), msg);
}
