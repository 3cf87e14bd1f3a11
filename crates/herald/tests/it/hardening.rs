//! Hardening under hostile use: a receiver that stalls its body, NUL characters, bad
//! HTTP, private data files, header credentials at rest, and a connection flood.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// A receiver that answers `200 OK` with a Content-Length of 100, sends 7 bytes of the
/// body and then stalls for a minute.
async fn stalling_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                    .await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn a_receiver_that_stalls_its_body_has_not_succeeded() {
    let app = spawn_app(&[
        ("HERALD_REQUEST_TIMEOUT_SECS", "1"),
        ("HERALD_RETRY_SCHEDULE_SECS", "60"),
    ])
    .await;
    let url = stalling_receiver().await;
    let a = app.app("a").await;
    app.endpoint(&a, &url, json!({})).await;
    let m = app.send(&a, json!({"eventType": "x", "payload": {}})).await;
    let attempts = app
        .attempts_until(&a, &m, Duration::from_secs(10), |x| x.len() == 1)
        .await;
    assert_eq!(attempts[0]["status"], 2, "{attempts:?}");
    let response = attempts[0]["response"].as_str().unwrap();
    assert!(response.contains("did not complete"), "{response}");
}

#[tokio::test]
async fn nul_characters_are_refused_before_the_store() {
    let app = spawn_app(&[]).await;
    let a = app.app("a").await;
    // In a JSON body (name, description, payload), a path id and a query value.
    let (s, body) = app.post("/app", json!({"name": "bad\u{0}name"})).await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = app
        .post(
            "/event-type",
            json!({"name": "t", "description": "a\u{0}b"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = app
        .post(
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {"k": "v\u{0}"}}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = app.get("/app/app%00x").await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"][0], "path");
    let (s, body) = app.get("/app?iterator=a%00b").await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"][0], "query");
    // The public inbound path too.
    let r = app
        .client
        .post(format!("{}/in/src%00x", app.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let _: serde_json::Value = r.json().await.expect("a JSON error body");
    // A backslash-escaped "\u0000" text is not a NUL character.
    let (s, body) = app.post("/app", json!({"name": "literally \\u0000"})).await;
    assert_eq!(s, 201, "{body}");
}

/// Sends raw bytes and returns the status line's code and the body.
async fn raw(url: &str, request: &[u8]) -> (u16, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn every_error_body_is_json() {
    let app = spawn_app(&[]).await;
    let cases: [&[u8]; 3] = [
        // Invalid UTF-8 in a path parameter.
        b"GET /api/v1/app/%FF%FE HTTP/1.1\r\nhost: x\r\nauthorization: Bearer test-admin-token-0123456789\r\nconnection: close\r\n\r\n",
        // A malformed Content-Length.
        b"POST /api/v1/app HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\nconnection: close\r\n\r\n",
        // Garbage.
        b"\x16\x03\x01 this is not http\r\n\r\n",
    ];
    for case in cases {
        let (code, head, body) = raw(&app.url, case).await;
        assert!((400..500).contains(&code), "{code} for {case:?}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let value: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("not JSON for {case:?}: {body:?}"));
        assert!(
            value["code"].is_string() || value["detail"].is_array(),
            "{value}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perms");
    let data = dir.0.join("data");
    let node = HeraldProcess::start(&data, &[("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    // A write, so that the WAL exists too.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/app", node.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            mode(&path) & 0o077,
            0,
            "{} is open to others",
            path.display()
        );
        files += 1;
    }
    assert!(files >= 3, "the database, its WAL, the lock and the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_health_still_answers() {
    let app = spawn_app(&[("HERALD_MAX_CONNECTIONS", "20")]).await;
    let addr = app.url.trim_start_matches("http://").to_string();
    // 200 idle connections: 20 regular, 64 overflow (closed after 2 s without a
    // request), the rest closed at once.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // Health answers while they are held, as a load balancer's probe sees it (it
    // retries a refused connection): the overflow slots free up within their short
    // header timeout.
    let started = std::time::Instant::now();
    loop {
        let probe = reqwest::Client::new()
            .get(format!("{}/api/v1/health", app.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(r) = probe {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "health did not answer beside a connection flood: {probe:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("health answered in {:?}", started.elapsed());
    // Connections past the cap were closed by the server, not kept waiting.
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 100,
        "only {closed} of 200 connections were closed"
    );
    assert!(
        closed <= 180,
        "{closed} closed: the cap of 20 was not served"
    );
}

/// Runs `mount`/`umount` (root only); `None` when this process may not mount.
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> Option<()> {
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .ok()?
        .success();
    ok.then_some(())
}

#[tokio::test]
async fn health_says_so_when_the_disk_is_full() {
    let dir = TempDir::new("full");
    let data = dir.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    if mount_tmpfs(&data, "32m").is_none() {
        // CI runs as root, where this test must run.
        assert!(
            std::env::var_os("HERALD_REQUIRE_POSTGRES").is_none(),
            "this test needs to mount a small tmpfs (root)"
        );
        eprintln!("cannot mount a tmpfs here: full-disk health test skipped");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(data.clone());
    let node = HeraldProcess::start(&data, &[("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let client = reqwest::Client::new();
    let health = || async {
        let r = client
            .get(format!("{}/api/v1/health", node.url))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(health().await.0, 200);
    // Fill the disk.
    let filler = data.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"]["status"], "error");
    // Room again: healthy again.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = health().await;
    assert_eq!(status, 200, "{body}");
    drop(node);
}
