//! Named tokens with roles: made, listed (never with their secret), used, revoked; and
//! each role walks every route of the served OpenAPI document, refused (403) exactly
//! where the role table says, and never refused elsewhere.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// How a request says who makes it.
enum Credential {
    Token(String),
    Session { cookie: String, csrf: String },
}

async fn make_token(app: &TestApp, body: Value) -> (String, String) {
    let (s, t) = app.post("/token", body).await;
    assert_eq!(s, 201, "{t}");
    (
        t["id"].as_str().unwrap().to_string(),
        t["key"].as_str().unwrap().to_string(),
    )
}

/// What the role table in `herald-api/src/roles.rs` says, restated from the issue.
fn allowed(role: &str, method: &str, path: &str) -> bool {
    // An export is Svix's POST that only reads.
    let reads = method == "GET" || method == "HEAD" || path == "/api/v1/environment/export";
    // Tokens and people are an admin's alone.
    let tokens = path.starts_with("/api/v1/token") || path.starts_with("/api/v1/person");
    let replay = method == "POST"
        && ["/resend", "/recover", "/replay-missing", "/bulk-replay"]
            .iter()
            .any(|s| path.ends_with(s));
    let secret = path.ends_with("/secret");
    let listen = path.starts_with("/api/v1/listen");
    match role {
        "admin" => true,
        "developer" => !tokens,
        "support" => (reads && !tokens && !listen) || replay,
        "viewer" => reads && !tokens && !secret && !listen,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn each_role_is_refused_exactly_where_the_table_says() {
    let app = spawn_app(&[]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // Each role twice: a token with it, and a person with it signed in (their session
    // cookie, and the CSRF token every write made with it carries).
    let mut keys = Vec::new();
    for role in ["admin", "developer", "support", "viewer"] {
        let (_, key) =
            make_token(&app, json!({"name": format!("{role} token"), "role": role})).await;
        keys.push((role, Credential::Token(key)));
        let email = format!("{role}@example.com");
        let (s, p) = app
            .post(
                "/person",
                json!({"email": email, "password": "a long enough password", "role": role}),
            )
            .await;
        assert_eq!(s, 201, "{p}");
        let r = client
            .post(app.api("/session"))
            .json(&json!({"email": email, "password": "a long enough password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        let csrf = body["csrfToken"].as_str().unwrap().to_string();
        keys.push((role, Credential::Session { cookie, csrf }));
    }
    let (_, doc) = app.get("/openapi.json").await;
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            let id = op["operationId"].as_str().unwrap_or_default();
            // Each of these would end the token it is called with.
            if ["v1.authentication.logout", "v1.token.revoke"].contains(&id) {
                continue;
            }
            if op.get("security").is_some_and(|s| s == &json!([])) || id.starts_with("v1.session.")
            {
                continue; // public, or by a person's session cookie rather than a token
            }
            // Parameters get a value no object has: nothing is changed, and the answer
            // is the role's verdict or what the handler says of an unknown object.
            let concrete = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "zz-missing"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            for (role, key) in &keys {
                let url = format!("{}{concrete}", app.url);
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut req = match key {
                    Credential::Token(token) => client.request(m, &url).bearer_auth(token),
                    Credential::Session { cookie, csrf } => client
                        .request(m, &url)
                        .header("cookie", cookie)
                        .header("x-csrf-token", csrf),
                };
                if ["POST", "PUT", "PATCH"].contains(&method.as_str()) {
                    req = req.json(&json!({}));
                }
                // A listen stream that is allowed stays open: that is an answer too.
                let status = match req.send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(e) if e.is_timeout() => 200,
                    Err(e) => panic!("{method} {concrete}: {e}"),
                };
                assert_ne!(status, 401, "{role} {method} {concrete}");
                if allowed(role, &method, path) {
                    assert_ne!(status, 403, "{role} may {method} {path}");
                } else {
                    assert_eq!(status, 403, "{role} may not {method} {path}");
                }
                walked += 1;
            }
        }
    }
    assert!(walked >= 8 * 70, "walked only {walked} (role, route) pairs");
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_used_and_revoked() {
    let app = spawn_app(&[]).await;
    let app_id = app.app("tenant").await;
    let (viewer_id, viewer) =
        make_token(&app, json!({"name": "dashboards", "role": "viewer"})).await;
    let (app_token_id, _) = make_token(
        &app,
        json!({"name": "tenant's own", "appId": app_id, "expiresAt": "2999-01-01T00:00:00Z"}),
    )
    .await;
    // Bad requests say what is wrong.
    for (body, field) in [
        (json!({"name": "x"}), "role"),
        (json!({"name": "x", "role": "owner"}), "role"),
        (
            json!({"name": "x", "role": "viewer", "appId": app_id}),
            "role",
        ),
        (json!({"name": " ", "role": "viewer"}), "name"),
        (
            json!({"name": "x", "role": "viewer", "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiresAt",
        ),
    ] {
        let (s, e) = app.post("/token", body.clone()).await;
        assert_eq!(s, 422, "{body}: {e}");
        assert_eq!(e["detail"][0]["loc"], json!(["body", field]), "{body}");
    }

    // The viewer reads, and its use is recorded.
    let client = reqwest::Client::new();
    let r = client
        .get(app.api("/app"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(app.api("/app"))
        .bearer_auth(&viewer)
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("a viewer token may not POST"),
        "{body}"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let listed = loop {
        let (s, list) = app.get("/token").await;
        assert_eq!(s, 200, "{list}");
        let data = list["data"].as_array().unwrap().clone();
        let viewer_row = data
            .iter()
            .find(|t| t["id"] == viewer_id.as_str())
            .unwrap()
            .clone();
        if viewer_row["lastUsedAt"].is_string() || std::time::Instant::now() > deadline {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&viewer), "a listed token shows its secret");
    let row = |id: &str| listed.iter().find(|t| t["id"] == id).unwrap().clone();
    assert_eq!(row(&viewer_id)["role"], "viewer");
    assert_eq!(row(&viewer_id)["name"], "dashboards");
    assert!(row(&viewer_id)["lastUsedAt"].is_string(), "{listed:?}");
    assert_eq!(row(&app_token_id)["role"], "application");
    assert_eq!(row(&app_token_id)["appId"], app_id.as_str());
    assert_eq!(row(&app_token_id)["expiresAt"], "2999-01-01T00:00:00.000Z");

    // Only an admin token manages tokens.
    let r = client
        .get(app.api("/token"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Revoked: refused at once.
    let (s, _) = app
        .call("DELETE", &format!("/token/{viewer_id}"), None)
        .await;
    assert_eq!(s, 204);
    let r = client
        .get(app.api("/app"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (s, _) = app
        .call("DELETE", &format!("/token/{viewer_id}"), None)
        .await;
    assert_eq!(s, 404);
}
