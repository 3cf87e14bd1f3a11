//! The inbound gateway over real HTTP: every shared signature vector verified at
//! `/in/{source}` and forwarded re-signed; tampered requests refused with 401 and logged;
//! the provider handshakes; duplicates, filters and forwarded headers; and SIGKILL after
//! acknowledging, before forwarding.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::*;

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/signature-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("the shared signature vectors");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

fn hex_hmac(key: &str, parts: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for p in parts {
        mac.update(p.as_bytes());
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_secs() -> String {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs())
    .to_string()
}

/// Creates a source; returns its JSON.
async fn source(app: &TestApp, body: Value) -> Value {
    let (s, b) = app.post("/source", body).await;
    assert_eq!(s, 201, "{b}");
    b
}

/// Sends a request to `/in/{id}`; returns (status, body text).
async fn deliver(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .client
        .request(m, format!("{}{path}", app.url))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn case_headers(case: &Value) -> Vec<(String, String)> {
    case["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// The signing secret of a source's first destination.
async fn destination_secret(app: &TestApp, src: &Value) -> String {
    let app_id = src["appId"].as_str().unwrap();
    let ep = src["destinations"][0]["endpointId"].as_str().unwrap();
    let (_, s) = app
        .get(&format!("/app/{app_id}/endpoint/{ep}/secret"))
        .await;
    s["key"].as_str().unwrap().to_string()
}

/// Flips one character of a signature value (keeping it the same length and alphabet).
fn damaged(sig: &str) -> String {
    let mut chars: Vec<char> = sig.chars().collect();
    let i = chars.len() - 3;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn every_vector_verifies_through_the_gateway_and_tampering_is_refused() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let mut accepted = Vec::new();
    let mut schemes = BTreeSet::new();
    for case in vectors() {
        let name = case["name"].as_str().unwrap();
        let scheme = case["scheme"].as_str().unwrap();
        let body = case["body"].as_str().unwrap();
        let headers = case_headers(&case);
        let mut spec = json!({
            "name": name,
            "scheme": scheme,
            "secret": case["secret"],
            // The vectors were signed years ago.
            "toleranceSecs": 1_000_000_000,
            "destinations": [{"url": rx.url(&format!("/{name}"))}],
        });
        if let Some(url) = case["url"].as_str() {
            spec["publicUrl"] = json!(url);
        }
        let src = source(&app, spec).await;
        let path = format!("/in/{}", src["id"].as_str().unwrap());

        let (s, text) = deliver(&app, "POST", &path, &headers, body).await;
        assert_eq!(s, 200, "{name}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        // An ed25519 case verifies as well with only the public key a consumer is shown.
        if let Some(public_key) = case["public_key"].as_str() {
            let by_public = source(
                &app,
                json!({"name": format!("{name} (public key)"), "scheme": scheme,
                       "secret": public_key, "toleranceSecs": 1_000_000_000}),
            )
            .await;
            let public_path = format!("/in/{}", by_public["id"].as_str().unwrap());
            let (s, text) = deliver(&app, "POST", &public_path, &headers, body).await;
            assert_eq!(s, 200, "{name} with {public_key}: {text}");
            let (s, _) = deliver(&app, "POST", &public_path, &headers, &format!("{body} ")).await;
            assert_eq!(
                s, 401,
                "{name} with {public_key}: a changed body must be refused"
            );
        }
        accepted.push((
            name.to_string(),
            src.clone(),
            body.to_string(),
            answer["messageId"].as_str().unwrap().to_string(),
        ));

        // A changed body byte.
        let mut bad_body = body.as_bytes().to_vec();
        bad_body[0] ^= 0x01;
        let (s, text) = deliver(
            &app,
            "POST",
            &path,
            &headers,
            &String::from_utf8(bad_body).unwrap(),
        )
        .await;
        assert_eq!(s, 401, "{name}: a changed body must be refused: {text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["code"],
            "signature_invalid"
        );

        // A changed signature: the vector's own forgeries, and one damaged character.
        let sig_header = headers
            .iter()
            .map(|(k, _)| k.clone())
            .find(|k| k.contains("signature") || k.contains("hmac"))
            .unwrap();
        let mut forgeries: Vec<String> = case["must_reject_signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let original = headers
            .iter()
            .find(|(k, _)| *k == sig_header)
            .unwrap()
            .1
            .clone();
        forgeries.push(damaged(&original));
        for forged in forgeries {
            let mut h = headers.clone();
            h.iter_mut().find(|(k, _)| *k == sig_header).unwrap().1 = forged.clone();
            let (s, _) = deliver(&app, "POST", &path, &h, body).await;
            assert_eq!(s, 401, "{name}: forged {forged} must be refused");
        }

        // A stale timestamp: the same valid request to a source with the default
        // five-minute tolerance.
        let timestamped = headers.iter().any(|(k, _)| k.contains("timestamp"))
            || ["stripe", "paddle"].contains(&scheme);
        if timestamped {
            let mut strict = json!({"name": format!("{name}-strict"), "scheme": scheme, "secret": case["secret"]});
            if let Some(url) = case["url"].as_str() {
                strict["publicUrl"] = json!(url);
            }
            let strict = source(&app, strict).await;
            let (s, text) = deliver(
                &app,
                "POST",
                &format!("/in/{}", strict["id"].as_str().unwrap()),
                &headers,
                body,
            )
            .await;
            assert_eq!(s, 401, "{name}: a stale timestamp must be refused");
            assert!(text.contains("tolerance"), "{name}: {text}");
        }
        schemes.insert(scheme.to_string());
    }
    for want in [
        "standard-webhooks",
        "github",
        "slack",
        "twilio",
        "square",
        "stripe",
        "shopify",
        "paddle",
        "zoom",
        "linear",
    ] {
        assert!(schemes.contains(want), "no vector for {want}");
    }

    // Each accepted request is forwarded once, body unchanged, re-signed with Standard
    // Webhooks under the destination's own secret (checked with the standardwebhooks
    // crate), with the original content type.
    let got = rx.wait_for(accepted.len(), Duration::from_secs(20)).await;
    for (name, src, body, msg_id) in &accepted {
        let secret = destination_secret(&app, src).await;
        let d = got
            .iter()
            .find(|r| r.header("webhook-id") == msg_id)
            .unwrap_or_else(|| panic!("{name} not forwarded"));
        assert_eq!(std::str::from_utf8(&d.body).unwrap(), body, "{name}");
        assert!(
            verify_with_standardwebhooks(&secret, d),
            "{name}: forwarded signature"
        );
        assert_eq!(d.header("x-herald-source"), src["id"].as_str().unwrap());
        if name.starts_with("twilio") {
            assert_eq!(
                d.header("content-type"),
                "application/x-www-form-urlencoded"
            );
        }
    }
    // Refused requests never became messages: each source holds exactly the one accepted.
    for (name, src, _, _) in &accepted {
        let (_, msgs) = app
            .get(&format!("/app/{}/msg", src["appId"].as_str().unwrap()))
            .await;
        assert_eq!(msgs["data"].as_array().unwrap().len(), 1, "{name}");
    }
    assert_eq!(
        got.len(),
        accepted.len(),
        "refused requests must not be forwarded"
    );

    // The refused requests are in the source's log with the reason.
    let (_, src_github) = (
        0,
        &accepted
            .iter()
            .find(|a| a.0.starts_with("github"))
            .unwrap()
            .1,
    );
    let (s, log) = app
        .get(&format!(
            "/source/{}/request",
            src_github["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    let rows = log["data"].as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["verified"] == true && r["msgId"].is_string()));
    let refused: Vec<&Value> = rows.iter().filter(|r| r["verified"] == false).collect();
    assert!(refused.len() >= 2, "{log}");
    assert!(refused
        .iter()
        .all(|r| r["reason"].as_str().unwrap().contains("does not match")));
}

#[tokio::test]
async fn provider_handshakes_are_answered() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let dest = json!([{"url": rx.url("/")}]);

    // Slack: url_verification, signed like any Slack request.
    let slack = source(
        &app,
        json!({"name": "slack", "scheme": "slack", "secret": "slack-secret", "destinations": dest}),
    )
    .await;
    let body = r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now_secs();
    let sig = format!("v0={}", hex_hmac("slack-secret", &["v0:", &ts, ":", body]));
    let h = vec![
        ("x-slack-request-timestamp".to_string(), ts.clone()),
        ("x-slack-signature".to_string(), sig),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let (s, text) = deliver(
        &app,
        "POST",
        &format!("/in/{}", slack["id"].as_str().unwrap()),
        &h,
        body,
    )
    .await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    // Unsigned, the same challenge is refused.
    let (s, _) = deliver(
        &app,
        "POST",
        &format!("/in/{}", slack["id"].as_str().unwrap()),
        &h[2..],
        body,
    )
    .await;
    assert_eq!(s, 401);

    // Zoom: endpoint.url_validation, with the shared vector's known answer.
    let zoom_case = vectors()
        .into_iter()
        .find(|c| c["scheme"] == "zoom")
        .unwrap();
    let secret = zoom_case["secret"].as_str().unwrap();
    let plain = zoom_case["url_validation"]["plainToken"].as_str().unwrap();
    let zoom = source(
        &app,
        json!({"name": "zoom", "scheme": "zoom", "secret": secret, "destinations": dest}),
    )
    .await;
    let body = json!({"event": "endpoint.url_validation", "payload": {"plainToken": plain}, "event_ts": 1}).to_string();
    let ts = now_secs();
    let h = vec![
        ("x-zm-request-timestamp".to_string(), ts.clone()),
        (
            "x-zm-signature".to_string(),
            format!("v0={}", hex_hmac(secret, &["v0:", &ts, ":", &body])),
        ),
    ];
    let (s, text) = deliver(
        &app,
        "POST",
        &format!("/in/{}", zoom["id"].as_str().unwrap()),
        &h,
        &body,
    )
    .await;
    assert_eq!(s, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["plainToken"], plain);
    assert_eq!(
        answer["encryptedToken"],
        zoom_case["url_validation"]["encryptedToken"]
    );
    // Without a valid signature Zoom's challenge gets no answer (it would be an HMAC
    // oracle under the secret).
    let (s, _) = deliver(
        &app,
        "POST",
        &format!("/in/{}", zoom["id"].as_str().unwrap()),
        &[],
        &body,
    )
    .await;
    assert_eq!(s, 401);

    // Meta: GET hub.challenge with the verify token.
    let meta = source(&app, json!({"name": "meta", "scheme": "github", "secret": "app-secret", "metaVerifyToken": "my-verify-token", "destinations": dest})).await;
    let meta_path = format!("/in/{}", meta["id"].as_str().unwrap());
    let (s, text) = deliver(&app, "GET", &format!("{meta_path}?hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444"), &[], "").await;
    assert_eq!((s, text.as_str()), (200, "1158201444"));
    let (s, text) = deliver(
        &app,
        "GET",
        &format!("{meta_path}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444"),
        &[],
        "",
    )
    .await;
    assert_eq!(s, 403, "{text}");
    assert!(!text.contains("1158201444"));

    // CloudEvents: the OPTIONS abuse-protection handshake, for allowed origins only.
    let ce = source(&app, json!({"name": "ce", "scheme": "none", "cloudEventsOrigins": ["events.example.com"], "destinations": dest})).await;
    let ce_path = format!("/in/{}", ce["id"].as_str().unwrap());
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}{ce_path}", app.url))
        .header("WebHook-Request-Origin", "events.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["webhook-allowed-origin"], "events.example.com");
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}{ce_path}", app.url))
        .header("WebHook-Request-Origin", "evil.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Discord: PING, signed with ed25519.
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let public: String = key
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let discord = source(
        &app,
        json!({"name": "discord", "scheme": "discord", "secret": public, "destinations": dest}),
    )
    .await;
    let body = r#"{"id":"1","type":1,"application_id":"2"}"#;
    let ts = now_secs();
    let sig: String = key
        .sign(format!("{ts}{body}").as_bytes())
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let h = vec![
        ("x-signature-ed25519".to_string(), sig),
        ("x-signature-timestamp".to_string(), ts),
    ];
    let discord_path = format!("/in/{}", discord["id"].as_str().unwrap());
    let (s, text) = deliver(&app, "POST", &discord_path, &h, body).await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"type": 1})
    );
    let mut forged = h.clone();
    forged[0].1 = damaged(&forged[0].1);
    let (s, _) = deliver(&app, "POST", &discord_path, &forged, body).await;
    assert_eq!(s, 401);

    // Handshakes are answered, never forwarded: no source holds a message (a forwarded
    // request is a message committed before the answer).
    for src in [&slack, &zoom, &meta, &ce, &discord] {
        let (_, msgs) = app
            .get(&format!("/app/{}/msg", src["appId"].as_str().unwrap()))
            .await;
        assert_eq!(
            msgs["data"].as_array().unwrap().len(),
            0,
            "{} forwarded a handshake",
            src["name"]
        );
    }
    assert!(rx.received().is_empty(), "a handshake was forwarded");
}

#[tokio::test]
async fn duplicates_are_dropped_and_destinations_filtered() {
    let app = spawn_app(&[]).await;
    let pushes = Receiver::start().await;
    let herald_repo = Receiver::start().await;
    let src = source(
        &app,
        json!({
            "name": "github",
            "scheme": "github",
            "secret": "gh-secret",
            "destinations": [
                {"url": pushes.url("/"), "filterTypes": ["push"]},
                {"url": herald_repo.url("/"), "bodyFilter": {"repository.name": ["herald", "herald-docs"]}},
            ],
        }),
    )
    .await;
    let path = format!("/in/{}", src["id"].as_str().unwrap());
    let send = |event: &'static str, delivery: &'static str, repo: &'static str| {
        let body = json!({"ref": "refs/heads/main", "repository": {"name": repo}}).to_string();
        let sig = format!("sha256={}", hex_hmac("gh-secret", &[&body]));
        let headers = vec![
            ("x-github-event".to_string(), event.to_string()),
            ("x-github-delivery".to_string(), delivery.to_string()),
            ("x-hub-signature-256".to_string(), sig),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        (headers, body)
    };
    // push to herald: both destinations. The same delivery again: acknowledged, dropped.
    let (h, b) = send("push", "d-1", "herald");
    assert_eq!(deliver(&app, "POST", &path, &h, &b).await.0, 200);
    let (s, text) = deliver(&app, "POST", &path, &h, &b).await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["duplicate"],
        true
    );
    // push elsewhere: the push destination only. issues on herald: the filtered one only.
    let (h, b) = send("push", "d-2", "other");
    assert_eq!(deliver(&app, "POST", &path, &h, &b).await.0, 200);
    let (h, b) = send("issues", "d-3", "herald-docs");
    assert_eq!(deliver(&app, "POST", &path, &h, &b).await.0, 200);
    // A marker that both must get, so "nothing more arrived" is not a guess.
    let (h, b) = send("push", "d-4", "herald");
    assert_eq!(deliver(&app, "POST", &path, &h, &b).await.0, 200);

    let p = pushes.wait_for(3, Duration::from_secs(10)).await;
    let r = herald_repo.wait_for(3, Duration::from_secs(10)).await;
    let deliveries = |got: &[Received]| -> Vec<String> {
        got.iter()
            .map(|d| d.header("x-github-delivery").to_string())
            .collect()
    };
    let mut p_ids = deliveries(&p);
    p_ids.sort();
    let mut r_ids = deliveries(&r);
    r_ids.sort();
    assert_eq!(p_ids, ["d-1", "d-2", "d-4"]);
    assert_eq!(r_ids, ["d-1", "d-3", "d-4"]);
    // The event header is passed along; the provider's signature is not (Herald's replaces it).
    assert_eq!(p[0].header("x-github-event"), "push");
    assert!(p[0].headers.get("x-hub-signature-256").is_none());
    // The messages carry the provider's event type and delivery id.
    let app_id = src["appId"].as_str().unwrap();
    let (_, msgs) = app.get(&format!("/app/{app_id}/msg")).await;
    let mut seen: Vec<(String, String)> = msgs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["eventType"].as_str().unwrap().to_string(),
                m["eventId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("issues".to_string(), "d-3".to_string()),
            ("push".into(), "d-1".into()),
            ("push".into(), "d-2".into()),
            ("push".into(), "d-4".into())
        ]
    );
}

#[tokio::test]
async fn acknowledged_inbound_requests_survive_sigkill_before_forwarding() {
    let dir = TempDir::new("inbound-crash");
    let rx = Receiver::start().await;
    // Before the kill nothing is forwarded: every attempt fails.
    rx.otherwise(Reply::status(500));
    let env = [
        ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("HERALD_RETRY_SCHEDULE_SECS", "1"),
    ];
    let mut p = HeraldProcess::start(&dir.0, &env);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/source", p.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "stripe", "scheme": "stripe", "secret": "whsec_stripe", "destinations": [{"url": rx.url("/")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let src: Value = r.json().await.unwrap();
    let path = format!("/in/{}", src["id"].as_str().unwrap());
    const N: usize = 40;
    let mut acked = Vec::new();
    for i in 0..N {
        let body = json!({"id": format!("evt_{i}"), "type": "charge.succeeded"}).to_string();
        let ts = now_secs();
        let sig = format!("t={ts},v1={}", hex_hmac("whsec_stripe", &[&ts, ".", &body]));
        let r = client
            .post(format!("{}{path}", p.url))
            .header("stripe-signature", sig)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        acked.push((v["messageId"].as_str().unwrap().to_string(), body));
    }
    p.sigkill();
    rx.otherwise(Reply::status(204));
    let restarted_at = Instant::now();
    let _p = HeraldProcess::start(&dir.0, &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let after: Vec<Received> = rx
            .received()
            .into_iter()
            .filter(|d| d.at >= restarted_at)
            .collect();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|(id, _)| !after.iter().any(|d| d.header("webhook-id") == id))
            .map(|(id, _)| id)
            .collect();
        if missing.is_empty() {
            for (id, body) in &acked {
                let d = after.iter().find(|d| d.header("webhook-id") == id).unwrap();
                assert_eq!(std::str::from_utf8(&d.body).unwrap(), body);
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged requests never forwarded",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn refused_requests_are_counted_but_their_log_is_bounded() {
    let app = spawn_app(&[]).await;
    let src = source(
        &app,
        json!({"name": "gh", "scheme": "github", "secret": "s"}),
    )
    .await;
    let path = format!("/in/{}", src["id"].as_str().unwrap());
    let started = Instant::now();
    const N: usize = 60;
    for _ in 0..N {
        let h = vec![("x-hub-signature-256".to_string(), "sha256=00".to_string())];
        assert_eq!(
            deliver(&app, "POST", &path, &h, &"x".repeat(40_000))
                .await
                .0,
            401
        );
    }
    let seconds = started.elapsed().as_secs() + 1;
    let (_, log) = app
        .get(&format!(
            "/source/{}/request?limit=250",
            src["id"].as_str().unwrap()
        ))
        .await;
    let rows = log["data"].as_array().unwrap();
    // At most 10 per second (the burst may straddle second boundaries), at least the
    // first 10, each body cut to 16 KiB.
    assert!(
        rows.len() >= 10 && rows.len() as u64 <= 10 * (seconds + 1),
        "{} logged in {seconds} s",
        rows.len()
    );
    assert!(rows
        .iter()
        .all(|r| r["body"].as_str().unwrap().len() == 16 * 1024));
    // Every refusal is counted.
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "herald_inbound_requests_total{outcome=\"refused\"}"
        ),
        N as f64
    );
}

#[tokio::test]
async fn a_source_with_a_secret_of_the_wrong_form_is_refused_when_configured() {
    let app = spawn_app(&[]).await;
    let cases = [
        (
            json!({"scheme": "standard-webhooks", "secret": "foo"}),
            "whsec_",
        ),
        (
            json!({"scheme": "standard-webhooks", "secret": "whsec_c2hvcnQ="}),
            "24 to 64 bytes",
        ),
        (
            json!({"scheme": "stripe", "secret": "sk_live_123"}),
            "whsec_",
        ),
        (
            json!({"scheme": "discord", "secret": "not hex"}),
            "64 hex digits",
        ),
        (json!({"scheme": "github", "secret": "abc\n"}), "line break"),
        (
            json!({"scheme": "github", "secret": "abc", "hmac": {"header": "X-Sig"}}),
            "hmac",
        ),
    ];
    for (mut body, says) in cases {
        body["name"] = json!("bad");
        let (s, b) = app.post("/source", body.clone()).await;
        assert_eq!(s, 422, "{body}: {b}");
        let detail = &b["detail"][0];
        let field = if says == "hmac" { "hmac" } else { "secret" };
        assert_eq!(detail["loc"], json!(["body", field]), "{b}");
        assert!(
            detail["msg"].as_str().unwrap().contains(says),
            "{body}: {b}"
        );
    }
    // The same checks on update.
    let src = source(
        &app,
        json!({"name": "ok", "scheme": "standard-webhooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    )
    .await;
    let (s, b) = app
        .call(
            "PUT",
            &format!("/source/{}", src["id"].as_str().unwrap()),
            Some(json!({"name": "ok", "scheme": "standard-webhooks", "secret": "foo"})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "secret"]));
}
