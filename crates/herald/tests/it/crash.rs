//! Durability with a real process: `herald serve` is killed with SIGKILL while retries are
//! pending and while messages are being ingested; the next start finishes everything.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

fn start(dir: &std::path::Path, schedule: &str) -> HeraldProcess {
    HeraldProcess::start(
        dir,
        &[
            ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("HERALD_RETRY_SCHEDULE_SECS", schedule),
        ],
    )
}

fn sigkill(p: &mut HeraldProcess) {
    p.sigkill();
}

async fn call(client: &reqwest::Client, url: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client
        .post(format!("{url}/api/v1{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Creates an application with one endpoint pointing at `rx`; returns the app id.
async fn app_with_endpoint(client: &reqwest::Client, url: &str, rx: &Receiver) -> String {
    let (_, app) = call(client, url, "/app", json!({"name": "crash"})).await;
    let a = app["id"].as_str().unwrap().to_string();
    let (s, _) = call(
        client,
        url,
        &format!("/app/{a}/endpoint"),
        json!({"url": rx.url("/")}),
    )
    .await;
    assert_eq!(s, 201);
    a
}

#[tokio::test]
async fn pending_retries_survive_sigkill_and_run_on_schedule() {
    let dir = TempDir::new("crash-retry");
    let rx = Receiver::start().await;
    const N: usize = 20;
    rx.then((0..N).map(|_| Reply::status(500)));
    let client = reqwest::Client::new();
    let mut p = start(&dir.0, "3");
    let a = app_with_endpoint(&client, &p.url, &rx).await;
    let mut ids = Vec::new();
    for i in 0..N {
        let (s, m) = call(
            &client,
            &p.url,
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {"i": i}}),
        )
        .await;
        assert_eq!(s, 202);
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    // Every first attempt failed, and its retry is scheduled 3 s later.
    let firsts = rx.wait_for(N, Duration::from_secs(20)).await;
    let first_at: std::collections::HashMap<String, Instant> = firsts
        .iter()
        .map(|d| (d.header("webhook-id").to_string(), d.at))
        .collect();
    // Give the attempts a moment to be recorded, measured by the log, not by luck.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut recorded = 0;
        for id in &ids {
            let r = client
                .get(format!("{}/api/v1/app/{a}/attempt/msg/{id}", p.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            recorded += v["data"].as_array().unwrap().len();
        }
        if recorded == N {
            break;
        }
        assert!(Instant::now() < deadline, "attempts not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigkill(&mut p);
    let mut p = start(&dir.0, "3");
    let all = rx.wait_for(2 * N, Duration::from_secs(30)).await;
    let retries = &all[N..];
    for d in retries {
        let id = d.header("webhook-id");
        let waited = d.at - first_at[id];
        assert!(
            waited >= Duration::from_millis(2900),
            "{id} retried after {waited:?}, scheduled 3 s"
        );
        assert!(
            waited < Duration::from_secs(10),
            "{id} retried after {waited:?}"
        );
    }
    let mut retried: Vec<&str> = retries.iter().map(|d| d.header("webhook-id")).collect();
    retried.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(retried, expected, "every message retried exactly once");
    sigkill(&mut p);
}

#[tokio::test]
async fn sigkill_during_ingest_loses_no_accepted_message() {
    let dir = TempDir::new("crash-ingest");
    let rx = Receiver::start().await;
    let client = reqwest::Client::new();
    let mut p = start(&dir.0, "0.2,0.5,1");
    let a = app_with_endpoint(&client, &p.url, &rx).await;
    // Eight concurrent senders post until the server dies under them.
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for w in 0..8 {
        let (client, url, a, accepted) =
            (client.clone(), p.url.clone(), a.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..100_000 {
                let r = client
                    .post(format!("{url}/api/v1/app/{a}/msg"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"eventType": "x", "payload": {"w": w, "i": i}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => return,
                        };
                        accepted
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_string());
                    }
                    _ => return,
                }
            }
        }));
    }
    // Kill once a good number of messages were accepted, mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "ingest too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sigkill(&mut p);
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let mut p = start(&dir.0, "0.2,0.5,1");
    // Every accepted message reaches the receiver (duplicates allowed only for what was in flight).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: std::collections::HashSet<String> = rx
            .received()
            .iter()
            .map(|d| d.header("webhook-id").to_string())
            .collect();
        let missing = accepted.iter().filter(|id| !seen.contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted messages never arrived",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = rx.received().len();
    let unique: std::collections::HashSet<String> = rx
        .received()
        .iter()
        .map(|d| d.header("webhook-id").to_string())
        .collect();
    eprintln!(
        "accepted {} messages before SIGKILL; received {total} deliveries, {} unique",
        accepted.len(),
        unique.len()
    );
    sigkill(&mut p);
}

/// A fifoEndpoint and a poller's consumer group, both mid-stream when the process is
/// SIGKILLed: after the restart the fifo goes on in order (at most the unacknowledged
/// batch again) and the consumer group resumes exactly after what it had read.
#[tokio::test]
async fn destinations_resume_in_order_after_sigkill() {
    let dir = TempDir::new("crash-destinations");
    let rx = Receiver::start().await;
    // Slow enough that the fifo is mid-stream when the process dies.
    rx.otherwise(Reply::status(200).delay(Duration::from_millis(100)));
    let client = reqwest::Client::new();
    let mut p = start(&dir.0, "0.2");
    let (_, app) = call(&client, &p.url, "/app", json!({"name": "streams"})).await;
    let a = app["id"].as_str().unwrap().to_string();
    let (s, fifo) = call(
        &client,
        &p.url,
        &format!("/app/{a}/destination"),
        json!({"type": "fifoEndpoint", "batchSize": 10, "config": {"url": rx.url("/fifo")}}),
    )
    .await;
    assert_eq!(s, 201, "{fifo}");
    let (s, poller) = call(
        &client,
        &p.url,
        &format!("/app/{a}/destination"),
        json!({"type": "pollingEndpoint"}),
    )
    .await;
    assert_eq!(s, 201, "{poller}");
    let poller_id = poller["id"].as_str().unwrap().to_string();
    let token = client
        .get(format!(
            "{}/api/v1/app/{a}/destination/{poller_id}/secret",
            p.url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    const N: usize = 300;
    let mut sent = Vec::new();
    for i in 0..N {
        let (s, m) = call(
            &client,
            &p.url,
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {"i": i}}),
        )
        .await;
        assert_eq!(s, 202);
        sent.push(m["id"].as_str().unwrap().to_string());
    }
    // The consumer group reads part of the stream with server-kept positions.
    let consume = |url: String| {
        let (client, token, a, poller_id) =
            (client.clone(), token.clone(), a.clone(), poller_id.clone());
        async move {
            let page: Value = client
                .get(format!(
                    "{url}/api/v1/app/{a}/poller/{poller_id}/consumer/group-1?limit=25"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ids: Vec<String> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect();
            (ids, page["done"].as_bool().unwrap())
        }
    };
    let mut consumed = Vec::new();
    for _ in 0..3 {
        consumed.extend(consume(p.url.clone()).await.0);
    }
    assert_eq!(consumed, sent[..75]);
    rx.wait_for(8, Duration::from_secs(20)).await;
    sigkill(&mut p);
    let before_kill = rx.received().len();
    assert!(
        before_kill < N / 10,
        "the fifo had finished before the kill ({before_kill} batches): not mid-stream"
    );

    let p = start(&dir.0, "0.2");
    // The consumer group goes on exactly where it was.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ids, done) = consume(p.url.clone()).await;
        consumed.extend(ids);
        if done && consumed.len() >= N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer read {} of {N}",
            consumed.len()
        );
    }
    assert_eq!(consumed, sent, "nothing skipped, nothing twice, in order");

    // The fifo delivers the rest, in order: the received stream is the sent one, except
    // that the batch in flight at the kill may come again right after the restart.
    let order = batch_order(&rx, &sent, Duration::from_secs(60)).await;
    assert_in_order_with_one_batch_again(&order, 10, sent.len());
}
