//! Application tokens from `POST /auth/app-portal-access/{app}`: they manage their own
//! application and see nothing else. Every operation of the served OpenAPI document is
//! called with application A's token against application B, and must answer 404.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// An application with an endpoint, a message and its attempt; returns their ids.
async fn populated(app: &TestApp, rx: &Receiver, name: &str) -> [String; 4] {
    let a = app.app(name).await;
    let (ep, _) = app.endpoint(&a, &rx.url("/"), json!({})).await;
    let msg = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let attempts = app
        .attempts_until(&a, &msg, Duration::from_secs(10), |d| !d.is_empty())
        .await;
    let attempt = attempts[0]["id"].as_str().unwrap().to_string();
    [a, ep, msg, attempt]
}

async fn call_as(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method.parse().unwrap(), format!("{}/api/v1{path}", app.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A body each operation accepts, so that only visibility decides the answer.
fn body_for(method: &str, path: &str) -> Option<Value> {
    let body = match (method, path) {
        ("get" | "delete" | "head", _) => return None,
        (_, p) if p.ends_with("/endpoint/{endpoint_id}/headers") => {
            json!({"headers": {"x-a": "1"}})
        }
        (_, p) if p.ends_with("/secret/rotate") => json!({}),
        (_, p) if p.ends_with("/send-example") => json!({"eventType": "x"}),
        (_, p) if p.ends_with("/recover") => json!({"since": "2020-01-01T00:00:00Z"}),
        (_, p) if p.ends_with("/resend") => json!({}),
        (_, p) if p.starts_with("/auth/app-portal-access") => json!({}),
        (_, "/app/{app_id}/msg") => json!({"eventType": "x", "payload": {}}),
        (_, "/app/{app_id}/endpoint") | (_, "/app/{app_id}/endpoint/{endpoint_id}") => {
            json!({"url": "https://example.com/hook"})
        }
        (_, "/app/{app_id}") | (_, "/app") => json!({"name": "taken over"}),
        (_, p) if p.starts_with("/event-type") => json!({"name": "y", "description": "y"}),
        _ => json!({}),
    };
    Some(body)
}

#[tokio::test]
async fn an_application_token_sees_only_its_own_application() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[]).await;
    app.event_type("x").await;
    let [a, _, a_msg, _] = populated(&app, &rx, "tenant-a").await;
    let [b, b_ep, b_msg, b_attempt] = populated(&app, &rx, "tenant-b").await;

    let (s, access) = app
        .post(
            &format!("/auth/app-portal-access/{a}"),
            json!({"expiry": 3600}),
        )
        .await;
    assert_eq!(s, 200, "{access}");
    let token = access["token"].as_str().unwrap().to_string();
    assert!(access["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/portal/{a}#token={token}")));

    // Its own application works.
    let (s, got) = call_as(&app, &token, "GET", &format!("/app/{a}"), None).await;
    assert_eq!((s, got["id"].as_str()), (200, Some(a.as_str())));
    let (s, _) = call_as(&app, &token, "GET", &format!("/app/{a}/msg/{a_msg}"), None).await;
    assert_eq!(s, 200);
    let (s, list) = call_as(&app, &token, "GET", "/app", None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str()], "the list holds its own application only");
    let (s, _) = call_as(&app, &token, "GET", "/event-type", None).await;
    assert_eq!(s, 200, "the event catalog is readable");

    // Every other operation on application B, from the served OpenAPI document.
    let (_, spec) = app.get("/openapi.json").await;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"].as_array().is_some_and(|s| s.is_empty());
            if public || method == "head" {
                continue;
            }
            let concrete = path
                .replace("{app_id}", &b)
                .replace("{endpoint_id}", &b_ep)
                .replace("{msg_id}", &b_msg)
                .replace("{attempt_id}", &b_attempt)
                .replace("{name}", "x");
            let body = body_for(method, path);
            let (s, answer) = call_as(&app, &token, &method.to_uppercase(), &concrete, body).await;
            let expected = match (method.as_str(), path.as_str()) {
                // Reading its own scope of the global lists is fine.
                ("get", "/app" | "/event-type" | "/event-type/{name}") => 200,
                ("post", "/auth/logout") => continue,
                _ => 404,
            };
            assert_eq!(s, expected, "{method} {path}: {answer}");
            if expected == 404 {
                assert_eq!(answer["code"], "not_found", "{method} {path}: {answer}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} operations checked");

    // B is untouched.
    let (s, got) = app.get(&format!("/app/{b}")).await;
    assert_eq!((s, got["name"].as_str()), (200, Some("tenant-b")));
    let (s, _) = app.get(&format!("/app/{b}/msg/{b_msg}")).await;
    assert_eq!(s, 200);

    // Logout ends the token.
    let (s, _) = call_as(&app, &token, "POST", "/auth/logout", None).await;
    assert_eq!(s, 204);
    let (s, answer) = call_as(&app, &token, "GET", &format!("/app/{a}"), None).await;
    assert_eq!(s, 401, "{answer}");
}

#[tokio::test]
async fn portal_tokens_expire_and_only_admins_mint_them() {
    let app = spawn_app(&[]).await;
    let a = app.app("tenant").await;
    let (s, access) = app
        .post(
            &format!("/auth/app-portal-access/{a}"),
            json!({"expiry": 1}),
        )
        .await;
    assert_eq!(s, 200);
    let token = access["token"].as_str().unwrap();
    let (s, _) = call_as(&app, token, "GET", &format!("/app/{a}"), None).await;
    assert_eq!(s, 200);
    // An application token cannot mint more tokens.
    let (s, _) = call_as(
        &app,
        token,
        "POST",
        &format!("/auth/app-portal-access/{a}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 404);
    // Expired one second after it was issued.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (s, answer) = call_as(&app, token, "GET", &format!("/app/{a}"), None).await;
        if s == 401 {
            assert_eq!(answer["code"], "authentication_failed");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Bad requests, and creating the application on the fly.
    for (body, field) in [
        (json!({"expiry": 0}), "expiry"),
        (json!({"expiry": 604801}), "expiry"),
        (json!({"readOnly": true}), "readOnly"),
        (json!({"capabilities": ["ViewBase"]}), "capabilities"),
    ] {
        let (s, b) = app
            .post(&format!("/auth/app-portal-access/{a}"), body)
            .await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(b["detail"][0]["loc"][1], field);
    }
    let (s, _) = app.post("/auth/app-portal-access/newshop", json!({})).await;
    assert_eq!(s, 404);
    let (s, access) = app
        .post(
            "/auth/app-portal-access/newshop",
            json!({"application": {"name": "New shop"}}),
        )
        .await;
    assert_eq!(s, 200, "{access}");
    let (s, got) = app.get("/app/newshop").await;
    assert_eq!((s, got["name"].as_str()), (200, Some("New shop")));
}

#[tokio::test]
async fn a_portal_token_can_be_asked_for_with_no_body() {
    let app = spawn_app(&[]).await;
    let a = app.app("shop").await;
    // Every field is optional, so no body at all is a request for the defaults.
    let r = app
        .client
        .post(format!("{}/api/v1/auth/app-portal-access/{a}", app.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let access: Value = r.json().await.unwrap();
    assert!(access["token"].as_str().unwrap().len() > 20, "{access}");
}
