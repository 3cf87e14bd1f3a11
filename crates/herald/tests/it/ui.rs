//! The web pages: their headers and assets over HTTP, and the browser tests in
//! `tests/browser/ui.cjs` (Debian's headless Chromium driven by playwright-core) against
//! a real server with real data. scripts/test.sh installs playwright-core next to the
//! JavaScript SDK; `.ci/run` installs Chromium.

use std::process::Command;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn pages_are_embedded_cached_and_locked_down() {
    let app = spawn_app(&[(
        "HERALD_PORTAL_FRAME_ANCESTORS",
        "'self' https://app.example.com",
    )])
    .await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.url)).send();
    // The server's bare address sends a browser to the console.
    let root = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", app.url))
        .send()
        .await
        .unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/console");
    for page in ["/console", "/docs", "/portal/app_x"] {
        let r = get(page).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{page}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let html = r.text().await.unwrap();
        // Nothing is loaded from anywhere else.
        assert!(
            !html.contains("//cdn") && !html.contains("src=\"http"),
            "{page}"
        );
        if page.starts_with("/portal") {
            assert!(
                csp.ends_with("frame-ancestors 'self' https://app.example.com"),
                "{csp}"
            );
        } else {
            assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
        }
    }
    // Assets: long-lived caching, an ETag, and 304 when it matches.
    let r = get("/ui/console.js").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=86400");
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    let again = app
        .client
        .get(format!("{}/ui/console.js", app.url))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(get("/ui/nope.js").await.unwrap().status().as_u16(), 404);
}

#[tokio::test]
async fn a_bad_portal_setting_stops_the_server_from_starting() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/nonexistent/never",
        ])
        .env("HERALD_PORTAL_BRAND_COLOR", "red;}body{display:none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("portal_brand_color"));
}

#[tokio::test]
async fn console_and_portal_work_in_a_real_browser() {
    let Ok(node_path) = std::env::var("HERALD_TEST_NODE_PATH") else {
        panic!(
            "HERALD_TEST_NODE_PATH is not set: run scripts/test.sh, which installs playwright-core"
        );
    };
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed: apt-get install chromium (.ci/run does)"
    );
    // No retries: a failed attempt is final, so "replay failed" has something to replay.
    // Operational webhooks on: the console shows their application apart from the
    // tenants, and the portal's catalog leaves their event types out.
    // Single sign-on against a real OpenID provider (npm oidc-provider), which the
    // browser script starts on loopback: the server's address must be known before it
    // starts, for the provider's redirect URI.
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (herald_port, op_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{herald_port}");
    let public_url = format!("http://127.0.0.1:{herald_port}");
    let issuer = format!("http://127.0.0.1:{op_port}");
    let app = spawn_app(&[
        ("HERALD_RETRY_SCHEDULE_SECS", ""),
        ("HERALD_OPERATIONAL_WEBHOOKS", "true"),
        ("HERALD_LISTEN", &listen),
        ("HERALD_PUBLIC_URL", &public_url),
        ("HERALD_OIDC_ISSUER", &issuer),
        ("HERALD_OIDC_CLIENT_ID", "herald-console"),
        ("HERALD_OIDC_CLIENT_SECRET", "a-client-secret-for-the-test"),
        ("HERALD_ENVIRONMENTS", "staging"),
    ])
    .await;
    // Staging has an application of its own, which the console shows in staging only.
    let staging_token = app._server.environments[0].new_admin_token.clone().unwrap();
    let r = reqwest::Client::new()
        .post(app.api("/app"))
        .bearer_auth(&staging_token)
        .json(&json!({"name": "Staging shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(200).body("delivered to A"));
    let (s, a) = app
        .post("/app", json!({"name": "Shop A", "uid": "shop-a"}))
        .await;
    assert_eq!(s, 201);
    let (_, b) = app
        .post("/app", json!({"name": "Shop B", "uid": "shop-b"}))
        .await;
    let schema = json!({"type": "object", "properties": {"order": {"type": "integer", "description": "The order number"}}, "required": ["order"]});
    let (s, _) = app
        .post("/event-type", json!({"name": "order.paid", "description": "An order was paid", "schemas": {"1": schema}}))
        .await;
    assert_eq!(s, 201);
    let a_id = a["id"].as_str().unwrap();
    app.endpoint(a_id, &rx.url("/a"), json!({})).await;
    let msg = app
        .send(
            a_id,
            json!({"eventType": "order.paid", "payload": {"order": 1}}),
        )
        .await;
    rx.wait_for(1, std::time::Duration::from_secs(10)).await;
    // A message to an address where nothing listens: the console says why it failed.
    let (_, c) = app.post("/app", json!({"name": "Shop C"})).await;
    let c_id = c["id"].as_str().unwrap();
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_url = format!("http://{}/", nobody.local_addr().unwrap());
    drop(nobody);
    app.endpoint(c_id, &refused_url, json!({})).await;
    let msg_c = app
        .send(
            c_id,
            json!({"eventType": "order.paid", "payload": {"order": 2}}),
        )
        .await;
    app.attempts_until(c_id, &msg_c, std::time::Duration::from_secs(10), |x| {
        !x.is_empty()
    })
    .await;
    let (s, portal) = app
        .post(&format!("/auth/app-portal-access/{a_id}"), json!({}))
        .await;
    assert_eq!(s, 200, "{portal}");

    let screenshots = std::env::var("HERALD_UI_SCREENSHOTS").unwrap_or_default();
    let script = format!("{}/tests/browser/ui.cjs", env!("CARGO_MANIFEST_DIR"));
    let envs = [
        ("HERALD_URL", app.url.clone()),
        ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("APP_A", a_id.to_string()),
        ("MSG_A", msg),
        ("PORTAL_A", portal["url"].as_str().unwrap().to_string()),
        ("APP_B", b["id"].as_str().unwrap().to_string()),
        ("APP_C", c_id.to_string()),
        ("MSG_C", msg_c),
        ("EVENT_TYPE", "order.paid".to_string()),
        ("SCREENSHOTS", screenshots),
        ("OIDC_PORT", op_port.to_string()),
        ("STAGING_TOKEN", staging_token),
        ("NODE_PATH", node_path),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("node");
        cmd.arg(script);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("BROWSER OK"),
        "browser test failed\nstdout: {stdout}\nstderr: {stderr}"
    );
}
