//! The management API: routes, validation, error shapes, pagination, idempotency.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn health_needs_no_token_and_everything_else_does() {
    let app = spawn_app(&[]).await;
    let r = app.client.get(app.api("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["database"]["status"], "ok");
    assert_eq!(
        app.client
            .get(app.api("/health/ping"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let r = app.client.get(app.api("/app")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "authentication_failed"
    );
    let r = app
        .client
        .get(app.api("/app"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn applications_crud_with_uids_and_trailing_slashes() {
    let app = spawn_app(&[]).await;
    let (s, created) = app
        .post(
            "/app/",
            json!({"name": "Shop", "uid": "shop-1", "metadata": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("app_") && id.len() == 31);
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    // The uid works wherever the id does.
    let (s, by_uid) = app.get("/app/shop-1").await;
    assert_eq!((s, by_uid["id"].as_str()), (200, Some(id)));
    // Duplicate uid → 409; get_if_exists returns the existing one.
    let (s, b) = app
        .post("/app", json!({"name": "Again", "uid": "shop-1"}))
        .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("conflict")));
    let (s, b) = app
        .post(
            "/app?get_if_exists=true",
            json!({"name": "Again", "uid": "shop-1"}),
        )
        .await;
    assert_eq!((s, b["id"].as_str()), (200, Some(id)));
    // PATCH keeps what is absent, PUT replaces, PUT on an unknown uid creates.
    let (s, b) = app
        .call(
            "PATCH",
            &format!("/app/{id}"),
            Some(json!({"name": "Shop 2"})),
        )
        .await;
    assert_eq!(
        (s, b["name"].as_str(), b["metadata"]["tier"].as_str()),
        (200, Some("Shop 2"), Some("gold"))
    );
    let (s, b) = app
        .call("PUT", "/app/shop-1", Some(json!({"name": "Shop 3"})))
        .await;
    assert_eq!((s, b["metadata"].clone()), (200, json!({})));
    let (s, b) = app
        .call("PUT", "/app/new-one", Some(json!({"name": "New"})))
        .await;
    assert_eq!((s, b["uid"].as_str()), (201, Some("new-one")));
    let (s, _) = app.call("DELETE", &format!("/app/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, b) = app.get(&format!("/app/{id}")).await;
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn bad_input_gets_precise_errors() {
    let app = spawn_app(&[("HERALD_MAX_BODY_BYTES", "4096")]).await;
    let a = app.app("a").await;
    // Malformed JSON → 400 invalid_json.
    let r = app
        .client
        .post(app.api("/app"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_json");
    // Missing field → 422 naming it.
    let (s, b) = app.post("/app", json!({"uid": "x"})).await;
    assert_eq!(s, 422);
    assert_eq!(b["detail"][0]["loc"], json!(["body", "name"]));
    // Oversize body → 413.
    let big = json!({"eventType": "a.b", "payload": {"pad": "x".repeat(5000)}});
    let (s, b) = app.post(&format!("/app/{a}/msg"), big).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("payload_too_large")));
    // Non-object payload, bad URL, bad scheme, unknown event type, bad uid, bad limit.
    let (s, b) = app
        .post(
            &format!("/app/{a}/msg"),
            json!({"eventType": "a.b", "payload": [1, 2]}),
        )
        .await;
    assert_eq!(
        (s, b["detail"][0]["loc"].clone()),
        (422, json!(["body", "payload"]))
    );
    for url in ["not a url", "ftp://example.com/x", "http://"] {
        let (s, b) = app
            .post(&format!("/app/{a}/endpoint"), json!({"url": url}))
            .await;
        assert_eq!(
            (s, b["detail"][0]["loc"].clone()),
            (422, json!(["body", "url"])),
            "{url}: {b}"
        );
    }
    let (s, b) = app
        .post(
            &format!("/app/{a}/endpoint"),
            json!({"url": "https://example.com", "filterTypes": ["nope.nope"]}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(b["detail"][0]["msg"]
        .as_str()
        .unwrap()
        .contains("nope.nope"));
    let (s, _) = app
        .post("/app", json!({"name": "x", "uid": "has space"}))
        .await;
    assert_eq!(s, 422);
    let (s, _) = app.get("/app?limit=251").await;
    assert_eq!(s, 422);
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint"),
            json!({"url": "https://example.com", "secret": "whsec_short"}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = app
        .post(
            &format!("/app/{a}/endpoint"),
            json!({"url": "https://example.com", "headers": {"Content-Type": "x"}}),
        )
        .await;
    assert_eq!(s, 422);
    // Another application's ids are not found.
    let b_app = app.app("b").await;
    let (ep, _) = app
        .endpoint(&b_app, "https://example.com/b", json!({}))
        .await;
    let (s, _) = app.get(&format!("/app/{a}/endpoint/{ep}")).await;
    assert_eq!(s, 404);
    // Unknown route and method: JSON bodies.
    let (s, b) = app.get("/nope").await;
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")));
    let (s, b) = app.call("DELETE", "/app", None).await;
    assert_eq!((s, b["code"].as_str()), (405, Some("method_not_allowed")));
}

#[tokio::test]
async fn pagination_walks_forward_and_back() {
    let app = spawn_app(&[]).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(app.app(&format!("app {i}")).await);
    }
    let (_, p1) = app.get("/app?limit=3").await;
    let got: Vec<&str> = p1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids[0..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(p1["done"], false);
    let it = p1["iterator"].as_str().unwrap();
    let (_, p2) = app.get(&format!("/app?limit=3&iterator={it}")).await;
    assert_eq!(p2["data"][0]["id"].as_str(), Some(ids[3].as_str()));
    let (_, p3) = app
        .get(&format!(
            "/app?limit=3&iterator={}",
            p2["iterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p3["data"].as_array().unwrap().len(), 1);
    assert_eq!(p3["done"], true);
    // prevIterator walks back to the page before.
    let (_, back) = app
        .get(&format!(
            "/app?limit=3&iterator={}",
            p2["prevIterator"].as_str().unwrap()
        ))
        .await;
    let got: Vec<&str> = back["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids[0..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Descending order.
    let (_, d) = app.get("/app?limit=2&order=descending").await;
    assert_eq!(d["data"][0]["id"].as_str(), Some(ids[6].as_str()));
}

#[tokio::test]
async fn idempotency_key_runs_a_post_once() {
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    let send = |key: &'static str| {
        app.client
            .post(app.api(&format!("/app/{a}/msg")))
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", key)
            .json(&json!({"eventType": "x.y", "payload": {"n": 1}}))
            .send()
    };
    let (r1, r2) = tokio::join!(send("k1"), send("k1"));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (202, 202));
    let (b1, b2): (Value, Value) = (r1.json().await.unwrap(), r2.json().await.unwrap());
    assert_eq!(b1["id"], b2["id"]);
    let b3: Value = send("k1").await.unwrap().json().await.unwrap();
    assert_eq!(b1["id"], b3["id"]);
    let b4: Value = send("k2").await.unwrap().json().await.unwrap();
    assert_ne!(b1["id"], b4["id"]);
    let (_, list) = app.get(&format!("/app/{a}/msg")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn event_types_with_schemas_archive_and_expunge() {
    let app = spawn_app(&[]).await;
    let schema = json!({"1": {"type": "object", "properties": {"id": {"type": "string"}}, "examples": [{"id": "ord_1"}]}});
    let (s, b) = app
        .post(
            "/event-type",
            json!({"name": "order.created", "description": "An order", "schemas": schema}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["schemas"], schema);
    let (s, _) = app
        .post(
            "/event-type",
            json!({"name": "order.created", "description": "dup"}),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = app
        .post(
            "/event-type",
            json!({"name": "bad", "description": "x", "schemas": {"1": 5}}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, b) = app
        .call(
            "PATCH",
            "/event-type/order.created",
            Some(json!({"deprecated": true})),
        )
        .await;
    assert_eq!(
        (s, b["deprecated"].as_bool(), b["description"].as_str()),
        (200, Some(true), Some("An order"))
    );
    let (s, _) = app.call("DELETE", "/event-type/order.created", None).await;
    assert_eq!(s, 204);
    let (_, list) = app.get("/event-type").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = app.get("/event-type?include_archived=true").await;
    assert_eq!(list["data"][0]["archived"], true);
    let (s, _) = app
        .call("DELETE", "/event-type/order.created?expunge=true", None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = app.get("/event-type/order.created").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn messages_event_id_uniqueness_expunge_and_lists() {
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    let m1 = app.send(&a, json!({"eventType": "user.signup", "eventId": "evt-1", "payload": {"u": 1}, "channels": ["eu"]})).await;
    let (s, b) = app
        .post(
            &format!("/app/{a}/msg"),
            json!({"eventType": "user.signup", "eventId": "evt-1", "payload": {}}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("conflict")));
    app.send(&a, json!({"eventType": "user.login", "payload": {"u": 2}}))
        .await;
    let (_, by_event_id) = app.get(&format!("/app/{a}/msg/evt-1")).await;
    assert_eq!(by_event_id["id"].as_str(), Some(m1.as_str()));
    let (_, l) = app.get(&format!("/app/{a}/msg?channel=eu")).await;
    assert_eq!(l["data"].as_array().unwrap().len(), 1);
    let (_, l) = app
        .get(&format!("/app/{a}/msg?event_types=user.login"))
        .await;
    assert_eq!(l["data"][0]["eventType"], "user.login");
    let (_, l) = app.get(&format!("/app/{a}/msg")).await;
    assert_eq!(l["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        l["data"][1]["id"].as_str(),
        Some(m1.as_str()),
        "newest first"
    );
    let (s, _) = app
        .call("DELETE", &format!("/app/{a}/msg/{m1}/content"), None)
        .await;
    assert_eq!(s, 204);
    let (_, m) = app.get(&format!("/app/{a}/msg/{m1}")).await;
    assert_eq!(m["payload"], json!({}));
    // `application` creates the app on the fly.
    let (s, b) = app
        .post(
            "/app/fresh-app/msg",
            json!({"eventType": "x", "payload": {}, "application": {"name": "Fresh"}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let (s, fresh) = app.get("/app/fresh-app").await;
    assert_eq!((s, fresh["name"].as_str()), (200, Some("Fresh")));
}

#[tokio::test]
async fn endpoint_headers_secret_and_stats_routes() {
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    let (ep, secret) = app
        .endpoint(
            &a,
            "https://example.com/h",
            json!({"headers": {"X-Tenant": "t1", "Authorization": "Bearer s3cret"}}),
        )
        .await;
    assert!(secret.starts_with("whsec_"));
    let (_, h) = app.get(&format!("/app/{a}/endpoint/{ep}/headers")).await;
    assert_eq!(h["headers"], json!({"X-Tenant": "t1"}));
    assert_eq!(h["sensitive"], json!(["Authorization"]));
    let (s, _) = app
        .call(
            "PATCH",
            &format!("/app/{a}/endpoint/{ep}/headers"),
            Some(json!({"headers": {"X-Tenant": null, "X-New": "n"}})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, h) = app.get(&format!("/app/{a}/endpoint/{ep}/headers")).await;
    assert_eq!(h["headers"], json!({"X-New": "n"}));
    let (s, rotated) = app
        .post(&format!("/app/{a}/endpoint/{ep}/secret/rotate"), json!({}))
        .await;
    assert_eq!(s, 200);
    let new_key = rotated["key"].as_str().unwrap();
    assert_ne!(new_key, secret);
    let (_, now) = app.get(&format!("/app/{a}/endpoint/{ep}/secret")).await;
    assert_eq!(now["key"].as_str(), Some(new_key));
    let (s, st) = app.get(&format!("/app/{a}/endpoint/{ep}/stats")).await;
    assert_eq!((s, st["success"].as_i64()), (200, Some(0)));
    // ed25519 endpoints expose their public key.
    let seed = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    let (_, pk) = app
        .endpoint(&a, "https://example.com/ed", json!({"secret": seed}))
        .await;
    assert_eq!(pk, "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
}

#[tokio::test]
async fn openapi_document_lists_every_served_route() {
    let app = spawn_app(&[]).await;
    let r = app
        .client
        .get(app.api("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "only {} paths", paths.len());
    assert!(doc["components"]["schemas"]["MessageIn"]["properties"]["eventType"].is_object());
    let mut checked = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path.replace("{", "x").replace("}", "");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = app
                .client
                .request(m, format!("{}{concrete}", app.url))
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            let id = op["operationId"].as_str().unwrap_or_default();
            // Every documented route is routed: authed ones answer 401 without a token,
            // public ones answer 2xx; signing in and single sign-on (off here) answer
            // for themselves, but never as an unknown route.
            if id.starts_with("v1.session.") || id.starts_with("v1.sso.") {
                assert!(!body.contains("no such route"), "{method} {path}: {body}");
                assert_ne!(status, 405, "{method} {path}");
            } else if op.get("security").is_some() {
                assert_eq!(status, 401, "{method} {path}");
            } else {
                assert!((200..300).contains(&status), "{method} {path}: {status}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "checked {checked} operations");
}

#[tokio::test]
async fn unknown_fields_and_unsupported_features_are_refused() {
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    // A misspelt filter would otherwise silently subscribe the endpoint to everything.
    let (s, b) = app
        .post(
            &format!("/app/{a}/endpoint"),
            json!({"url": "https://example.com", "filter_types": ["x"]}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("filter_types"),
        "{b}"
    );
    let (s, _) = app
        .post(
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {}, "transformationsParams": {"x": 1}}),
        )
        .await;
    assert_eq!(s, 422);
    // Fields the Svix SDK sends are accepted.
    let (s, b) = app
        .post(
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {}, "tags": ["t"], "payloadRetentionHours": 1}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = app.post("/event-type", json!({"name": "grp.x", "description": "d", "groupName": "g", "featureFlags": ["beta"]})).await;
    assert_eq!((s, b["featureFlag"].as_str()), (201, Some("beta")), "{b}");
}

#[tokio::test]
async fn no_input_makes_the_server_fail() {
    // Every documented operation, fed a set of hostile bodies, answers 4xx, never 5xx.
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    let (ep, _) = app.endpoint(&a, "https://example.com/x", json!({})).await;
    let m = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let (_, doc) = app.get("/openapi.json").await;
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let bodies: Vec<String> = vec![
        "".into(),
        "null".into(),
        "[]".into(),
        "\"text\"".into(),
        "{\"name\": 12, \"url\": [], \"eventType\": {}, \"payload\": 3}".into(),
        "{\"name\": \"\\u0000\", \"url\": \"http://\\u0000\", \"eventType\": \"\\ud800\", \"payload\": {}}".into(),
        deep,
        "{\"limit\": 1e400}".into(),
        "{".into(),
        "\u{feff}{}".into(),
    ];
    let mut sent = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{app_id}", &a)
            .replace("{endpoint_id}", &ep)
            .replace("{msg_id}", &m)
            .replace("{attempt_id}", "atmpt_nope")
            .replace("{name}", "x");
        for method in item.as_object().unwrap().keys() {
            if method == "delete" {
                continue;
            }
            for body in &bodies {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let r = app
                    .client
                    .request(
                        m,
                        format!("{}{concrete}?limit=abc&before=yesterday", app.url),
                    )
                    .bearer_auth(ADMIN_TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                assert!(
                    status < 500,
                    "{method} {path} with {:.40}: {status} {text}",
                    body
                );
                if status >= 400 {
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|_| panic!("{method} {path}: non-JSON error {text}"));
                    assert!(v.get("detail").is_some(), "{method} {path}: {text}");
                }
                sent += 1;
            }
        }
    }
    assert!(sent > 200, "sent {sent}");
}

// Two workers, so that requests are handled in parallel as on a real server (on the
// default single-threaded test runtime they arrive at the writer one by one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingest_shares_commits() {
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    let before = app._server.store.write_stats().unwrap();
    let mut tasks = Vec::new();
    for i in 0..400 {
        let (client, url) = (app.client.clone(), app.api(&format!("/app/{a}/msg")));
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"eventType": "x", "payload": {"i": i}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    let after = app._server.store.write_stats().unwrap();
    let (jobs, commits, syncs) = (
        after.jobs - before.jobs,
        after.commits - before.commits,
        after.syncs - before.syncs,
    );
    assert!(jobs >= 400, "{jobs} writes");
    // Durability costs one fsync of the WAL per group of commits, not one per write:
    // with 400 writes at once, an fsync must cover several of them on average. (How
    // many writes share one transaction depends on how they arrive; the fsyncs, each
    // slower than a commit, are what group commit saves.)
    assert!(
        syncs * 2 <= jobs,
        "{syncs} fsyncs for {jobs} writes ({commits} commits)"
    );
    // Every acknowledged write went through an fsync of the WAL, and one fsync may
    // cover several commits. (The sync of the commit just before the first snapshot may
    // land inside the window: hence the + 1.)
    assert!(
        syncs >= 1 && syncs <= commits + 1,
        "{syncs} fsyncs for {commits} commits"
    );
}

#[tokio::test]
async fn application_changes_are_seen_at_once() {
    // Ingest resolves applications from memory; every change must show immediately.
    let app = spawn_app(&[]).await;
    let (_, a) = app
        .post("/app", json!({"name": "A", "uid": "old-uid"}))
        .await;
    let id = a["id"].as_str().unwrap().to_string();
    app.send("old-uid", json!({"eventType": "x", "payload": {}}))
        .await;
    let (s, _) = app
        .call(
            "PATCH",
            &format!("/app/{id}"),
            Some(json!({"uid": "new-uid"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .post("/app/old-uid/msg", json!({"eventType": "x", "payload": {}}))
        .await;
    assert_eq!(s, 404, "the old uid must be gone");
    app.send("new-uid", json!({"eventType": "x", "payload": {}}))
        .await;
    let (s, _) = app.call("DELETE", "/app/new-uid", None).await;
    assert_eq!(s, 204);
    let (s, _) = app
        .post(
            &format!("/app/{id}/msg"),
            json!({"eventType": "x", "payload": {}}),
        )
        .await;
    assert_eq!(s, 404, "a deleted application takes no messages");
}

#[tokio::test]
async fn the_retention_sweep_prunes_old_messages_and_keeps_pending_ones() {
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(500));
    // Messages are kept two seconds here (a fraction of a day), swept every 200 ms.
    let app = spawn_app(&[
        ("HERALD_MESSAGE_RETENTION_DAYS", "0.0000231"),
        ("HERALD_RETENTION_SWEEP_SECS", "0.2"),
        ("HERALD_RETRY_SCHEDULE_SECS", "3600"),
    ])
    .await;
    let a = app.app("retained").await;
    let delivered = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    app.endpoint(&a, &rx.url("/"), json!({})).await;
    let pending = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    app.attempts_until(&a, &pending, std::time::Duration::from_secs(10), |d| {
        d.len() == 1
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (s, _) = app.get(&format!("/app/{a}/msg/{delivered}")).await;
        if s == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old message was never pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The message whose retry is still pending is kept.
    let (s, _) = app.get(&format!("/app/{a}/msg/{pending}")).await;
    assert_eq!(s, 200);
}
