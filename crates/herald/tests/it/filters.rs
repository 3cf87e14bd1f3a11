//! Payload filters on endpoints (a Herald extension): checked when saved, applied at
//! fan-out, so a filtered-out endpoint gets no delivery at all.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_endpoint_gets_only_the_messages_its_payload_filter_passes() {
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(204));
    let app = spawn_app(&[]).await;
    let app_id = app.app("filters").await;

    // A bad filter is refused, naming the operator and where it is.
    let (s, e) = app
        .post(
            &format!("/app/{app_id}/endpoint"),
            json!({"url": rx.url("/x"), "payloadFilter": {"payload": {"total": {"$regex": "9+"}}}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        e["detail"][0]["loc"],
        json!(["body", "payloadFilter", "payload", "total", "$regex"])
    );
    assert!(
        e["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("unknown operator $regex"),
        "{e}"
    );

    let filter = json!({"payload": {"total": {"$gte": 100}, "country": {"$in": ["FR", "DE"]}}});
    let (ep, _) = app
        .endpoint(
            &app_id,
            &rx.url("/big-eu"),
            json!({"payloadFilter": filter}),
        )
        .await;
    let (_, shown) = app.get(&format!("/app/{app_id}/endpoint/{ep}")).await;
    assert_eq!(shown["payloadFilter"], filter);

    let small = app
        .send(
            &app_id,
            json!({"eventType": "order", "payload": {"total": 5, "country": "FR"}}),
        )
        .await;
    let us = app
        .send(
            &app_id,
            json!({"eventType": "order", "payload": {"total": 500, "country": "US"}}),
        )
        .await;
    let big = app
        .send(
            &app_id,
            json!({"eventType": "order", "payload": {"total": 500, "country": "DE"}}),
        )
        .await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("webhook-id"), big);
    // The others have no delivery at all (not a canceled or failed one).
    for msg in [&small, &us] {
        let (_, targets) = app.get(&format!("/app/{app_id}/msg/{msg}/endpoint")).await;
        assert_eq!(targets["data"], json!([]), "{msg}");
    }

    // Removed with null: everything goes again.
    let (s, patched) = app
        .call(
            "PATCH",
            &format!("/app/{app_id}/endpoint/{ep}"),
            Some(json!({"payloadFilter": null})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["payloadFilter"], serde_json::Value::Null);
    let after = app
        .send(
            &app_id,
            json!({"eventType": "order", "payload": {"total": 1}}),
        )
        .await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].header("webhook-id"), after);
}
