//! Endpoints' JavaScript transformations through the real server: set and read over
//! the API, checked before they are saved, applied before signing (body, URL, method,
//! headers, cancel), and hostile scripts that fail their own attempts while other
//! endpoints keep their pace.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

fn transformation_path(app: &str, ep: &str) -> String {
    format!("/app/{app}/endpoint/{ep}/transformation")
}

#[tokio::test]
async fn a_transformation_changes_body_url_method_and_headers_or_cancels() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[]).await;
    let app_id = app.app("shop").await;
    let (ep, secret) = app.endpoint(&app_id, &rx.url("/orig"), json!({})).await;
    let path = transformation_path(&app_id, &ep);

    // Nothing set yet.
    let (s, t) = app.get(&path).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["code"], Value::Null);
    assert_eq!(t["enabled"], false);

    // Code that does not parse is refused with where it breaks.
    let (s, e) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"code": "function handler(w) {\n  return w +;\n}"})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["detail"][0]["loc"], json!(["body", "code"]));
    let msg = e["detail"][0]["msg"].as_str().unwrap();
    assert!(
        msg.contains("SyntaxError") && msg.contains("line 2"),
        "{msg}"
    );
    // So is code without a handler.
    let (s, e) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"code": "function handle(w) { return w; }"})),
        )
        .await;
    assert_eq!(s, 422, "{e}");

    let code = r#"
        function handler(webhook, vars) {
            if (webhook.payload.skip) {
                webhook.cancel = true;
                return webhook;
            }
            webhook.method = "PUT";
            webhook.url = webhook.url.replace("/orig", "/slack") + "?tenant=" + vars.tenant;
            webhook.payload = { text: webhook.eventType + ": " + webhook.payload.name };
            webhook.headers = { "X-Transformed": "yes" };
            return webhook;
        }"#;
    let (s, e) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"code": code, "variables": {"tenant": "acme"}})),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let (_, t) = app.get(&path).await;
    assert_eq!(t["code"], code);
    assert_eq!(t["enabled"], true, "setting code switches it on");
    assert_eq!(t["variables"], json!({"tenant": "acme"}));
    assert!(t["updatedAt"].as_str().unwrap().ends_with('Z'), "{t}");

    let sent = app
        .send(
            &app_id,
            json!({"eventType": "user.created", "payload": {"name": "ann"}}),
        )
        .await;
    let got = rx.wait_for(1, WAIT).await;
    let d = &got[0];
    assert_eq!(d.method, "PUT");
    assert_eq!(d.path, "/slack?tenant=acme");
    assert_eq!(d.json(), json!({"text": "user.created: ann"}));
    assert_eq!(d.header("x-transformed"), "yes");
    assert_eq!(d.header("webhook-id"), sent);
    // Signed over the body that was sent.
    assert!(verify_with_standardwebhooks(&secret, d));
    // The attempt log shows where it went.
    let attempts = app
        .attempts_until(&app_id, &sent, WAIT, |a| !a.is_empty())
        .await;
    assert_eq!(attempts[0]["status"], 0);
    assert_eq!(attempts[0]["url"], rx.url("/slack?tenant=acme"));

    // cancel: nothing is sent, and the delivery is canceled, not failed.
    let skipped = app
        .send(
            &app_id,
            json!({"eventType": "user.created", "payload": {"skip": true}}),
        )
        .await;
    let attempts = app
        .attempts_until(&app_id, &skipped, WAIT, |a| !a.is_empty())
        .await;
    assert_eq!(attempts[0]["status"], 4, "{attempts:?}");
    assert!(
        attempts[0]["response"]
            .as_str()
            .unwrap()
            .contains("canceled by the endpoint's transformation"),
        "{attempts:?}"
    );
    let (_, targets) = app
        .get(&format!("/app/{app_id}/msg/{skipped}/endpoint"))
        .await;
    assert_eq!(targets["data"][0]["status"], 4, "{targets}");
    assert_eq!(targets["data"][0]["statusText"], "canceled");
    let (_, stats) = app.get(&format!("/app/{app_id}/endpoint/{ep}/stats")).await;
    assert_eq!(stats["canceled"], 1, "{stats}");
    assert_eq!(stats["fail"], 0, "{stats}");
    let text = app.metrics().await;
    assert_eq!(
        metric(&text, "herald_transformations_total{outcome=\"sent\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "herald_transformations_total{outcome=\"cancelled\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "herald_transformations_total{outcome=\"failed\"}"),
        0.0
    );

    // Switched off, the code is kept and deliveries go out as they are.
    let (s, _) = app
        .call("PATCH", &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(s, 204);
    let (_, t) = app.get(&path).await;
    assert_eq!(
        (t["enabled"].clone(), t["code"].clone()),
        (json!(false), json!(code))
    );
    app.send(
        &app_id,
        json!({"eventType": "user.created", "payload": {"name": "bob"}}),
    )
    .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "the cancelled message was never sent");
    assert_eq!(got[1].method, "POST");
    assert_eq!(got[1].path, "/orig");
    assert_eq!(got[1].json(), json!({"name": "bob"}));

    // null removes the code.
    let (s, _) = app.call("PATCH", &path, Some(json!({"code": null}))).await;
    assert_eq!(s, 204);
    let (_, t) = app.get(&path).await;
    assert_eq!(t["code"], Value::Null);
}

#[tokio::test]
async fn a_changed_url_passes_the_ssrf_guard() {
    let rx = Receiver::start().await;
    // Loopback is open for the receiver only; the script sends elsewhere.
    let app = spawn_app(&[]).await;
    let app_id = app.app("guard").await;
    let (ep, _) = app.endpoint(&app_id, &rx.url("/"), json!({})).await;
    let code =
        r#"function handler(w) { w.url = "http://169.254.169.254/latest/meta-data"; return w; }"#;
    let (s, e) = app
        .call(
            "PATCH",
            &transformation_path(&app_id, &ep),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let msg = app
        .send(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let attempts = app
        .attempts_until(&app_id, &msg, WAIT, |a| !a.is_empty())
        .await;
    assert_eq!(attempts[0]["status"], 2);
    assert_eq!(attempts[0]["responseStatusCode"], 0);
    let why = attempts[0]["response"].as_str().unwrap();
    assert!(why.contains("169.254.169.254"), "{why}");
    assert!(rx.received().is_empty());
}

#[tokio::test]
async fn the_try_route_runs_code_without_saving_it() {
    let app = spawn_app(&[]).await;
    let app_id = app.app("try").await;
    let (ep, _) = app
        .endpoint(&app_id, "https://example.com/hook", json!({}))
        .await;
    let (s, _) = app
        .post(
            "/event-type",
            json!({"name": "invoice.paid", "description": "paid",
                   "schemas": {"1": {"type": "object", "examples": [{"amount": 42}]}}}),
        )
        .await;
    assert_eq!(s, 201);
    let try_path = format!("{}/try", transformation_path(&app_id, &ep));

    // The event type's example is the payload when none is given.
    let (s, out) = app
        .post(
            &try_path,
            json!({"code": "function handler(w) { w.payload = { cents: w.payload.amount * 100, t: w.eventType }; w.headers = {'X-A': '1'}; return w; }",
                   "eventType": "invoice.paid"}),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["outcome"], "send");
    assert_eq!(out["method"], "POST");
    assert_eq!(out["url"], "https://example.com/hook");
    assert_eq!(out["payload"], json!({"cents": 4200, "t": "invoice.paid"}));
    assert_eq!(out["headers"], json!({"x-a": "1"}));

    // An error comes back with its kind, line and column.
    let (s, out) = app
        .post(
            &try_path,
            json!({"code": "function handler(w) {\n  null.x;\n}", "payload": {"a": 1}}),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["outcome"], "error");
    assert_eq!(out["error"]["code"], "thrown");
    assert_eq!(out["error"]["line"], 2, "{out}");
    assert!(out["error"]["column"].as_u64().is_some(), "{out}");

    let (_, out) = app
        .post(
            &try_path,
            json!({"code": "function handler(w) { w.cancel = true; return w; }"}),
        )
        .await;
    assert_eq!(out["outcome"], "cancel");

    // Nothing was saved.
    let (_, t) = app.get(&transformation_path(&app_id, &ep)).await;
    assert_eq!(t["code"], Value::Null);
}

/// One hostile script per endpoint; each attempt fails with its reason.
const HOSTILE: &[(&str, &str, &str)] = &[
    ("loop", "function handler(w) { while (true) {} }", "timeout"),
    (
        "huge-string",
        "function handler(w) { w.payload = 'x'.repeat(1 << 30); return w; }",
        "out_of_memory",
    ),
    (
        "huge-array",
        // Grown by large pieces, so that the memory limit comes well before the CPU
        // limit on any machine (one small object at a time raced the two).
        "function handler(w) { const a = []; while (true) { a.push(new Array(100000).fill(a.length)); } }",
        "out_of_memory",
    ),
    (
        "recursion",
        "function f(n) { return f(n + 1) + 1; } function handler(w) { return f(0); }",
        "stack_overflow",
    ),
    (
        "throw",
        "function handler(w) { throw new Error('boom'); }",
        "(thrown): Error: boom",
    ),
    (
        "undefined",
        "function handler(w) { w.payload = 1; }",
        "bad_return",
    ),
];

/// Sends `n` messages one after another to `app_id` and returns how long each took to
/// reach `rx`.
async fn latencies(app: &TestApp, app_id: &str, rx: &Receiver, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let before = rx.received().len();
        let started = Instant::now();
        app.send(app_id, json!({"eventType": "tick", "payload": {"i": i}}))
            .await;
        rx.wait_for(before + 1, WAIT).await;
        out.push(started.elapsed());
    }
    out.sort();
    out
}

#[tokio::test]
async fn hostile_scripts_fail_their_own_attempts_and_others_keep_their_pace() {
    let app = spawn_app(&[("HERALD_RETRY_SCHEDULE_SECS", "")]).await;

    // Healthy: one plain endpoint and one with a light transformation, each in an
    // application of its own.
    let plain_rx = Receiver::start().await;
    let plain_app = app.app("plain").await;
    app.endpoint(&plain_app, &plain_rx.url("/"), json!({}))
        .await;
    let light_rx = Receiver::start().await;
    let light_app = app.app("light").await;
    let (light_ep, _) = app
        .endpoint(&light_app, &light_rx.url("/"), json!({}))
        .await;
    let (s, _) = app
        .call(
            "PATCH",
            &transformation_path(&light_app, &light_ep),
            Some(json!({"code": "function handler(w) { w.payload = { n: w.payload.i }; return w; }"})),
        )
        .await;
    assert_eq!(s, 204);

    // Baseline, before any hostile script runs.
    let base_plain = latencies(&app, &plain_app, &plain_rx, 20).await;
    let base_light = latencies(&app, &light_app, &light_rx, 20).await;

    // The hostile tenant: one endpoint per script.
    let hostile_rx = Receiver::start().await;
    let hostile_app = app.app("hostile").await;
    let mut hostile_eps = Vec::new();
    for (name, code, _) in HOSTILE {
        let (ep, _) = app
            .endpoint(
                &hostile_app,
                &hostile_rx.url(&format!("/{name}")),
                json!({}),
            )
            .await;
        let (s, e) = app
            .call(
                "PATCH",
                &transformation_path(&hostile_app, &ep),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(s, 204, "{name}: {e}");
        hostile_eps.push(ep);
    }
    // Keep it busy while the healthy endpoints are measured again: 15 messages, so
    // the endless loop alone takes 15 × 50 ms of CPU in its lane.
    let mut hostile_msgs = Vec::new();
    for i in 0..15 {
        hostile_msgs.push(
            app.send(
                &hostile_app,
                json!({"eventType": "tick", "payload": {"i": i}}),
            )
            .await,
        );
    }
    let load_plain = latencies(&app, &plain_app, &plain_rx, 20).await;
    let load_light = latencies(&app, &light_app, &light_rx, 20).await;

    // Every hostile attempt failed with its own reason, and nothing reached the
    // hostile receiver.
    for msg in &hostile_msgs {
        let attempts = app
            .attempts_until(&hostile_app, msg, Duration::from_secs(30), |a| {
                a.len() == HOSTILE.len()
            })
            .await;
        for (ep, (name, _, reason)) in hostile_eps.iter().zip(HOSTILE) {
            let a = attempts
                .iter()
                .find(|a| a["endpointId"] == ep.as_str())
                .unwrap_or_else(|| panic!("no attempt for {name}"));
            assert_eq!(a["status"], 2, "{name}: {a}");
            let why = a["response"].as_str().unwrap();
            assert!(why.contains(reason), "{name}: {why}");
        }
    }
    assert!(hostile_rx.received().is_empty());

    // Healthy endpoints kept their pace: the median within 3× the baseline's plus
    // 10 ms, the slowest within the baseline's slowest plus 300 ms (a light run may
    // arrive while both script threads are busy, one with a 50 ms loop).
    for (what, base, load) in [
        ("plain", &base_plain, &load_plain),
        ("light", &base_light, &load_light),
    ] {
        let (b50, l50) = (base[base.len() / 2], load[load.len() / 2]);
        let (bmax, lmax) = (*base.last().unwrap(), *load.last().unwrap());
        eprintln!("{what}: baseline median {b50:?} max {bmax:?}; under hostile load median {l50:?} max {lmax:?}");
        assert!(
            l50 <= b50 * 3 + Duration::from_millis(10),
            "{what}: median {l50:?} against {b50:?}"
        );
        assert!(
            lmax <= bmax + Duration::from_millis(300),
            "{what}: max {lmax:?} against {bmax:?}"
        );
    }
}

#[tokio::test]
async fn no_state_leaks_from_one_delivery_to_the_next() {
    let rx = Receiver::start().await;
    let app = spawn_app(&[]).await;
    let app_id = app.app("leaks").await;
    let (ep, _) = app.endpoint(&app_id, &rx.url("/"), json!({})).await;
    let code = r#"
        let calls = 0;
        function handler(w) {
            calls += 1;
            w.payload = {
                calls: calls,
                global: typeof globalThis.seen,
                proto: ({}).polluted === undefined ? "clean" : "polluted",
                arrayProto: typeof [].evil,
            };
            globalThis.seen = true;
            Object.prototype.polluted = true;
            Array.prototype.evil = function () {};
            return w;
        }"#;
    let (s, _) = app
        .call(
            "PATCH",
            &transformation_path(&app_id, &ep),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, 204);
    for i in 0..3 {
        app.send(&app_id, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    let got = rx.wait_for(3, WAIT).await;
    for d in got {
        assert_eq!(
            d.json(),
            json!({"calls": 1, "global": "undefined", "proto": "clean", "arrayProto": "undefined"})
        );
    }
}
