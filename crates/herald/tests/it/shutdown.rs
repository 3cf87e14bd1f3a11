//! Graceful shutdown of the real process: SIGTERM lets attempts in flight finish and be
//! recorded, gives unstarted deliveries back to the queue, and exits 0; the next start
//! sends each of those exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

fn sigterm(p: &HeraldProcess) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn post(client: &reqwest::Client, url: &str, path: &str, body: Value) -> Value {
    let r = client
        .post(format!("{url}/api/v1{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

#[tokio::test]
async fn sigterm_finishes_what_is_in_flight_and_loses_nothing() {
    let dir = TempDir::new("shutdown");
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(200).delay(Duration::from_millis(1500)));
    let env = [
        ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("HERALD_MAX_IN_FLIGHT", "2"),
        ("HERALD_SHUTDOWN_GRACE_SECS", "10"),
    ];
    let mut p = HeraldProcess::start(&dir.0, &env);
    let client = reqwest::Client::new();
    let app = post(&client, &p.url, "/app", json!({"name": "stop"})).await;
    let a = app["id"].as_str().unwrap().to_string();
    post(
        &client,
        &p.url,
        &format!("/app/{a}/endpoint"),
        json!({"url": rx.url("/")}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let m = post(
            &client,
            &p.url,
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {"i": i}}),
        )
        .await;
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    // Two attempts are in flight (the receiver holds them 1.5 s); four wait in memory.
    rx.wait_for(2, Duration::from_secs(10)).await;
    let stopped_at = Instant::now();
    sigterm(&p);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "herald did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        stopped_at.elapsed() >= Duration::from_millis(1000),
        "it waited for the attempts in flight"
    );
    assert_eq!(rx.received().len(), 2, "nothing new started after SIGTERM");

    // The next start sends the four that were given back, and only those.
    rx.otherwise(Reply::status(200));
    let p = HeraldProcess::start(&dir.0, &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.received().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "got {} of 6",
            rx.received().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for d in rx.received() {
        *seen.entry(d.header("webhook-id").to_string()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id} delivered {:?} times",
            seen.get(id)
        );
    }
    // Every attempt is in the log: one success per message.
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r: Value = client
                .get(format!("{}/api/v1/app/{a}/attempt/msg/{id}", p.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let data = r["data"].as_array().unwrap();
            if data.len() == 1 && data[0]["status"] == 0 {
                break;
            }
            assert!(data.len() <= 1, "{id}: {data:?}");
            assert!(Instant::now() < deadline, "{id}: {data:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
