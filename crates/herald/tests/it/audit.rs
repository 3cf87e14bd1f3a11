//! The audit trail through the real server: each change made by the test is there with
//! its actor (token name and role), route, object, answer and address, refused ones
//! included; reads and sent messages are not; no secret is; and each event is announced
//! as the `audit.event` operational webhook.

use serde_json::{json, Value};

use crate::helpers::*;

async fn token(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let (s, t) = app
        .post("/token", json!({"name": name, "role": role}))
        .await;
    assert_eq!(s, 201, "{t}");
    (
        t["id"].as_str().unwrap().to_string(),
        t["key"].as_str().unwrap().to_string(),
    )
}

async fn call_as(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(m, app.api(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_change_is_in_the_trail_with_its_actor_and_no_secret() {
    let app = spawn_app(&[("HERALD_OPERATIONAL_WEBHOOKS", "true")]).await;
    let (dev_id, dev) = token(&app, "deploy bot", "developer").await;
    let (viewer_id, viewer) = token(&app, "dashboards", "viewer").await;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BEARER: &str = "Bearer very-private-value";
    let (s, a) = call_as(
        &app,
        &dev,
        "POST",
        "/app",
        Some(json!({"name": "Shop", "uid": "shop"})),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let app_id = a["id"].as_str().unwrap().to_string();
    let (s, ep) = call_as(
        &app,
        &dev,
        "POST",
        &format!("/app/{app_id}/endpoint"),
        Some(json!({"url": "https://example.com/hook", "secret": SECRET, "headers": {"Authorization": BEARER, "X-Team": "billing"}})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let ep_id = ep["id"].as_str().unwrap().to_string();
    let (s, _) = call_as(
        &app,
        &dev,
        "PATCH",
        &format!("/app/{app_id}/endpoint/{ep_id}"),
        Some(json!({"description": "billing"})),
    )
    .await;
    assert_eq!(s, 200);
    // Not changes: a read and a message sent.
    call_as(&app, &dev, "GET", &format!("/app/{app_id}"), None).await;
    let (s, _) = call_as(
        &app,
        &dev,
        "POST",
        &format!("/app/{app_id}/msg"),
        Some(json!({"eventType": "a", "payload": {}})),
    )
    .await;
    assert_eq!(s, 202);
    // Refused.
    let (s, _) = call_as(&app, &viewer, "DELETE", &format!("/app/{app_id}"), None).await;
    assert_eq!(s, 403);

    let (s, trail) = app.get("/audit").await;
    assert_eq!(s, 200, "{trail}");
    let events = trail["data"].as_array().unwrap();
    // Newest first: the refusal, the patch, the endpoint, the application, and before
    // them the admin's two token creations.
    let summary: Vec<(String, String, String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["actorName"].as_str().unwrap().to_string(),
                e["method"].as_str().unwrap().to_string(),
                e["route"].as_str().unwrap().to_string(),
                e["status"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("dashboards", "DELETE", "/api/v1/app/{app_id}", 403),
        (
            "deploy bot",
            "PATCH",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
            200,
        ),
        ("deploy bot", "POST", "/api/v1/app/{app_id}/endpoint", 201),
        ("deploy bot", "POST", "/api/v1/app", 201),
        ("configured admin token", "POST", "/api/v1/token", 201),
        ("configured admin token", "POST", "/api/v1/token", 201),
    ];
    let want: Vec<(String, String, String, i64)> = want
        .iter()
        .map(|(a, m, r, s)| (a.to_string(), m.to_string(), r.to_string(), *s))
        .collect();
    assert_eq!(summary, want);
    let refusal = &events[0];
    assert_eq!(refusal["allowed"], false);
    assert_eq!(refusal["role"], "viewer");
    assert_eq!(refusal["actorId"], viewer_id.as_str());
    assert_eq!(refusal["objectId"], app_id.as_str());
    let patch = &events[1];
    assert_eq!(patch["allowed"], true);
    assert_eq!(patch["role"], "developer");
    assert_eq!(patch["objectId"], ep_id.as_str());
    assert_eq!(patch["source"], "127.0.0.1");
    assert_eq!(
        patch["path"],
        format!("/api/v1/app/{app_id}/endpoint/{ep_id}")
    );
    assert!(patch["detail"].as_str().unwrap().contains("billing"));
    // What the endpoint became.
    let after: Value = serde_json::from_str(patch["after"].as_str().unwrap()).unwrap();
    assert_eq!(
        (after["id"].as_str(), after["description"].as_str()),
        (Some(ep_id.as_str()), Some("billing"))
    );
    // What it was just before: the endpoint without a description.
    let before: Value = serde_json::from_str(patch["before"].as_str().unwrap()).unwrap();
    assert_eq!(
        (before["id"].as_str(), before["description"].as_str()),
        (Some(ep_id.as_str()), Some(""))
    );
    // A creation has no before; the refused delete shows the application it named.
    assert_eq!(events[2]["before"], Value::Null);
    let refused_before: Value = serde_json::from_str(refusal["before"].as_str().unwrap()).unwrap();
    assert_eq!(refused_before["id"], app_id.as_str());
    // The token the admin made is in the trail, its key redacted.
    let made = &events[5];
    let made_after: Value = serde_json::from_str(made["after"].as_str().unwrap()).unwrap();
    assert_eq!(made_after["key"], "[redacted]");
    // No secret anywhere in the trail: not the signing key, not the sensitive header,
    // not the tokens the admin made.
    let text = trail.to_string();
    for secret in [SECRET, "very-private-value", dev.as_str(), viewer.as_str()] {
        assert!(!text.contains(secret), "{secret} is in the trail");
    }
    assert!(text.contains("[redacted]"));

    // Filters.
    let (_, mine) = app.get(&format!("/audit?actor_id={dev_id}")).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 3);
    let (_, refused) = app.get("/audit?allowed=false").await;
    assert_eq!(refused["data"].as_array().unwrap().len(), 1);
    let (_, about) = app.get(&format!("/audit?object_id={ep_id}")).await;
    assert_eq!(about["data"].as_array().unwrap().len(), 1);

    // Append-only: nothing in the API changes it.
    let (s, _) = app.call("DELETE", "/audit", None).await;
    assert_eq!(s, 405);

    // Announced as operational webhooks.
    let (_, apps) = app.get("/app?include_operational=true").await;
    let op = apps["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["uid"] == "herald-operational")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, msgs) = app
        .get(&format!(
            "/app/{op}/msg?event_types=audit.event&with_content=true"
        ))
        .await;
    let announced = msgs["data"].as_array().unwrap();
    assert!(announced.len() >= 6, "{msgs}");
    assert!(announced
        .iter()
        .any(|m| m["payload"]["data"]["actorName"] == "dashboards"
            && m["payload"]["data"]["allowed"] == false));
}
