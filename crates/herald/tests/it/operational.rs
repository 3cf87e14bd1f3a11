//! Operational webhooks, delivered through Herald itself to an endpoint the operator
//! added to the `herald-operational` application: every event type, signed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// Waits until the operator's receiver got an event of `event_type` matching `pred`.
async fn event(rx: &Receiver, event_type: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = rx
            .received()
            .iter()
            .map(|d| d.json())
            .find(|b| b["type"] == event_type && pred(&b["data"]))
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {event_type} event; got {:?}",
            rx.received()
                .iter()
                .map(|d| d.json()["type"].clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn operators_hear_of_endpoints_and_failing_deliveries() {
    let operator = Receiver::start().await;
    let app = spawn_app(&[
        ("HERALD_OPERATIONAL_WEBHOOKS", "true"),
        ("HERALD_RETRY_SCHEDULE_SECS", "0.1,0.1,0.1,0.1,0.1"),
        ("HERALD_ENDPOINT_AUTO_DISABLE_SECS", "3600"),
    ])
    .await;
    // The operational application and its documented event types exist.
    let (s, op_app) = app.get("/app/herald-operational").await;
    assert_eq!(s, 200, "{op_app}");
    let op = op_app["id"].as_str().unwrap().to_string();
    for t in [
        "endpoint.created",
        "endpoint.disabled",
        "message.attempt.failing",
        "message.attempt.exhausted",
        "message.attempt.recovered",
    ] {
        let (s, et) = app.get(&format!("/event-type/{t}")).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(et["schemas"]["1"]["properties"]["type"]["const"], t);
    }
    let (_, op_secret) = app.endpoint(&op, &operator.url("/ops"), json!({})).await;

    // Endpoint lifecycle.
    let a = app.app("customer").await;
    let flaky = Receiver::start().await;
    let (ep, _) = app.endpoint(&a, &flaky.url("/"), json!({})).await;
    event(&operator, "endpoint.created", |d| {
        d["endpointId"] == ep.as_str() && d["appId"] == a.as_str()
    })
    .await;
    let (s, _) = app
        .call(
            "PATCH",
            &format!("/app/{a}/endpoint/{ep}"),
            Some(json!({"description": "new"})),
        )
        .await;
    assert_eq!(s, 200);
    event(&operator, "endpoint.updated", |d| {
        d["endpointId"] == ep.as_str()
    })
    .await;

    // Four failures, then a success: failing, then recovered.
    flaky.then((0..4).map(|_| Reply::status(500)));
    let recovered = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let failing = event(&operator, "message.attempt.failing", |d| {
        d["msgId"] == recovered.as_str()
    })
    .await;
    assert_eq!(failing["data"]["lastAttempt"]["responseStatusCode"], 500);
    event(&operator, "message.attempt.recovered", |d| {
        d["msgId"] == recovered.as_str()
    })
    .await;

    // Every retry fails: exhausted.
    flaky.otherwise(Reply::status(500));
    let exhausted = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    event(&operator, "message.attempt.exhausted", |d| {
        d["msgId"] == exhausted.as_str()
    })
    .await;

    // 410 Gone disables the endpoint: disabled.
    flaky.then([Reply::status(410)]);
    app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let disabled = event(&operator, "endpoint.disabled", |d| {
        d["endpointId"] == ep.as_str()
    })
    .await;
    assert_eq!(disabled["data"]["trigger"], "automatic");

    let (s, _) = app
        .call("DELETE", &format!("/app/{a}/endpoint/{ep}"), None)
        .await;
    assert_eq!(s, 204);
    event(&operator, "endpoint.deleted", |d| {
        d["endpointId"] == ep.as_str()
    })
    .await;

    // Signed like any webhook; nothing about the operator's own endpoint.
    for d in operator.received() {
        assert!(verify_with_standardwebhooks(&op_secret, &d));
        assert_ne!(d.json()["data"]["appId"], op.as_str());
    }
}

/// The names in a list answer's `data`, by `field`.
fn names(list: &Value, field: &str) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn the_operational_application_and_its_event_types_stay_out_of_tenants_views() {
    let app = spawn_app(&[("HERALD_OPERATIONAL_WEBHOOKS", "true")]).await;
    app.event_type("order.paid").await;
    let shop = app.app("shop").await;
    // The application list holds tenants; the operational one only when asked for.
    let (_, apps) = app.get("/app").await;
    assert_eq!(names(&apps, "name"), ["shop"], "{apps}");
    let (_, all) = app.get("/app?include_operational=true").await;
    assert!(
        names(&all, "uid").contains(&"herald-operational".to_string()),
        "{all}"
    );
    // The catalog is the tenants' own, for the admin and for a tenant's portal.
    let (_, types) = app.get("/event-type").await;
    assert_eq!(names(&types, "name"), ["order.paid"], "{types}");
    let token = |a: String| {
        let app = &app;
        async move {
            let (s, access) = app
                .post(&format!("/auth/app-portal-access/{a}"), json!({}))
                .await;
            assert_eq!(s, 200, "{access}");
            access["token"].as_str().unwrap().to_string()
        }
    };
    let as_tenant = token(shop).await;
    let catalog_as = |t: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .get(format!("{}/api/v1/event-type", app.url))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(names(&catalog_as(as_tenant).await, "name"), ["order.paid"]);
    // The operational application's portal sees Herald's event types.
    let as_operator = token("herald-operational".to_string()).await;
    let operational = names(&catalog_as(as_operator).await, "name");
    assert!(
        operational.contains(&"endpoint.disabled".to_string()),
        "{operational:?}"
    );
    assert!(operational.contains(&"message.attempt.exhausted".to_string()));
    let (_, everything) = app.get("/event-type?include_operational=true").await;
    // The tenant's one event type and every operational one.
    assert_eq!(
        names(&everything, "name").len(),
        1 + herald_store::operational::EVENT_TYPES.len(),
        "{everything}"
    );
}
