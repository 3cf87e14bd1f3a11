//! Replays as background tasks: `replay-missing` sends an endpoint what it never got,
//! `bulk-replay` sends a window again, and `/background-task` reports how they ended.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn finished_task(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, task) = app.get(&format!("/background-task/{id}")).await;
        assert_eq!(s, 200, "{task}");
        if task["status"] != "running" {
            return task;
        }
        assert!(Instant::now() < deadline, "task {id} never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn replay_missing_and_bulk_replay_run_as_tracked_tasks() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[]).await;
    let a = app.app("replayed").await;
    app.event_type("order.paid").await;
    // Messages sent before the endpoint existed: two it will want, one it will not.
    let mut wanted = Vec::new();
    for t in ["order.paid", "user.created", "order.paid"] {
        let id = app
            .send(&a, json!({"eventType": t, "payload": {"t": t}}))
            .await;
        if t == "order.paid" {
            wanted.push(id);
        }
    }
    let (ep, _) = app
        .endpoint(&a, &rx.url("/"), json!({"filterTypes": ["order.paid"]}))
        .await;
    let (s, task) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/replay-missing"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 202, "{task}");
    assert_eq!(task["task"], "endpoint.replay-missing");
    let done = finished_task(&app, task["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "finished", "{done}");
    assert_eq!(done["data"]["messages"], 2);
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut ids: Vec<&str> = got.iter().map(|d| d.header("webhook-id")).collect();
    ids.sort();
    wanted.sort();
    assert_eq!(ids, wanted);

    // Everything of the window, again.
    let (s, task) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/bulk-replay"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 202, "{task}");
    let done = finished_task(&app, task["id"].as_str().unwrap()).await;
    assert_eq!(done["data"]["messages"], 2, "{done}");
    rx.wait_for(4, Duration::from_secs(10)).await;

    // The list shows both; a bad window is a 422.
    let (_, list) = app.get("/background-task?status=finished").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint/{ep}/replay-missing"),
            json!({"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 422);
}
