//! Bounded input: every limit answers with a clear 4xx (in the API's error shape where
//! the request reached the API), and slow clients cannot hold connections.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn addr(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `limit` passes); returns what came.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = spawn_app(&[("HERALD_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /api/v1/app HTTP/1.1\r\nHost: herald\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(15))
        .await
        .expect("the server kept a half-sent request open");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before its timeout"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_408() {
    let app = spawn_app(&[("HERALD_API_REQUEST_DEADLINE_SECS", "1")]).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /api/v1/app HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"name\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(15))
        .await
        .expect("no answer to a stalled body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
}

#[tokio::test]
async fn oversized_requests_get_clear_errors() {
    let app = spawn_app(&[]).await;
    // URL length.
    let long = format!("/app?iterator={}", "a".repeat(9000));
    let (s, b) = app.get(&long).await;
    assert_eq!((s, b["code"].as_str()), (414, Some("uri_too_long")), "{b}");
    // Header count.
    let mut req = app.client.get(app.api("/app")).bearer_auth(ADMIN_TOKEN);
    for i in 0..150 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    // Header size.
    let r = app
        .client
        .get(app.api("/app"))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-big", "v".repeat(100 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // Body size.
    let a = app.app("limits").await;
    let payload = json!({"eventType": "x", "payload": {"blob": "x".repeat(2 * 1024 * 1024)}});
    let (s, b) = app.post(&format!("/app/{a}/msg"), payload).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (413, Some("payload_too_large")),
        "{b}"
    );
    // JSON nesting.
    let deep = format!(
        r#"{{"eventType":"x","payload":{}1{}}}"#,
        "{\"a\":".repeat(300),
        "}".repeat(300)
    );
    let r = app
        .client
        .post(app.api(&format!("/app/{a}/msg")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["detail"][0]["loc"], json!(["body", "payload"]), "{b}");
    assert!(
        b["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("64 levels"),
        "{b}"
    );
    // Other bodies are parsed in full, where serde_json stops at 128 levels.
    let schema = format!(
        r#"{{"name":"deep","description":"d","schemas":{{"1":{}1{}}}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    let r = app
        .client
        .post(app.api("/event-type"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(schema)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "invalid_json", "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("recursion limit"),
        "{b}"
    );
    // Field lengths and list sizes are 422s naming the field.
    let (s, b) = app.post("/app", json!({"name": "n".repeat(300)})).await;
    assert_eq!(
        (s, b["detail"][0]["loc"][1].as_str()),
        (422, Some("name")),
        "{b}"
    );
    let (s, b) = app
        .post(
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {}, "channels": ["a","b","c","d","e","f"]}),
        )
        .await;
    assert_eq!(
        (s, b["detail"][0]["loc"][1].as_str()),
        (422, Some("channels")),
        "{b}"
    );
    let metadata: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (s, b) = app
        .post("/app", json!({"name": "n", "metadata": metadata}))
        .await;
    assert_eq!(
        (s, b["detail"][0]["loc"][1].as_str()),
        (422, Some("metadata")),
        "{b}"
    );
}
