//! Secrets at rest, with the real binary: the database file holds no signing key and no
//! API token in the clear, the generated key file is private, and a main-key rotation
//! re-seals everything without changing what deliveries are signed with.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const SECRET_BODY: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Every byte of the database and its WAL.
fn raw_database(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["herald.db", "herald.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn api(
    client: &reqwest::Client,
    p: &HeraldProcess,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client
        .request(method.parse().unwrap(), format!("{}/api/v1{path}", p.url))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> HeraldProcess {
    let mut env = vec![
        ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("HERALD_RETRY_SCHEDULE_SECS", ""),
    ];
    env.extend_from_slice(extra);
    HeraldProcess::start(dir, &env)
}

#[tokio::test]
async fn signing_keys_and_tokens_are_never_stored_in_the_clear() {
    let dir = TempDir::new("secrets");
    let rx = Receiver::start().await;
    let client = reqwest::Client::new();
    let secret = format!("whsec_{SECRET_BODY}");

    let mut p = start(&dir.0, &[]);
    assert!(
        p.banner.iter().any(|l| l.contains("main key: generated")),
        "{:?}",
        p.banner
    );
    let key_file = dir.0.join("herald.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let first_key_file = std::fs::read_to_string(&key_file).unwrap();

    let (_, app) = api(&client, &p, "POST", "/app", Some(json!({"name": "vault"}))).await;
    let a = app["id"].as_str().unwrap().to_string();
    let (s, ep) = api(
        &client,
        &p,
        "POST",
        &format!("/app/{a}/endpoint"),
        Some(json!({"url": rx.url("/"), "secret": secret,
            "headers": {"Authorization": "Bearer hdr-credential-1234", "X-Plain": "visible"}})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let ep = ep["id"].as_str().unwrap().to_string();
    let (_, shown) = api(
        &client,
        &p,
        "GET",
        &format!("/app/{a}/endpoint/{ep}/secret"),
        None,
    )
    .await;
    assert_eq!(shown["key"], secret);
    let (s, _) = api(
        &client,
        &p,
        "POST",
        &format!("/app/{a}/msg"),
        Some(json!({"eventType": "x", "payload": {"n": 1}})),
    )
    .await;
    assert_eq!(s, 202);
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert!(verify_with_standardwebhooks(&secret, &got[0]));
    // A credential in a custom header is sent in the clear but stored sealed.
    assert_eq!(got[0].header("authorization"), "Bearer hdr-credential-1234");
    assert_eq!(got[0].header("x-plain"), "visible");
    p.sigkill();

    let raw = raw_database(&dir.0);
    assert!(contains(&raw, "sealed1:"), "the scan reads the database");
    assert!(contains(&raw, "vault"), "the scan sees plain columns");
    for clear in [SECRET_BODY, "whsec_", ADMIN_TOKEN, "hdr-credential-1234"] {
        assert!(
            !contains(&raw, clear),
            "'{clear}' is in the database file in the clear"
        );
    }

    // Rotate the main key while the server is stopped.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["rotate-main-key", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("re-sealed the signing keys of 1 endpoints"),
        "{stdout}"
    );
    let second_key_file = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(first_key_file, second_key_file, "a new key is in the file");
    assert_eq!(
        second_key_file
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count(),
        1,
        "the old key is gone from the file once everything is re-sealed"
    );

    // Same signing key after the rotation, for the API and for deliveries.
    let p = start(&dir.0, &[]);
    let (_, shown) = api(
        &client,
        &p,
        "GET",
        &format!("/app/{a}/endpoint/{ep}/secret"),
        None,
    )
    .await;
    assert_eq!(shown["key"], secret);
    let (s, _) = api(
        &client,
        &p,
        "POST",
        &format!("/app/{a}/msg"),
        Some(json!({"eventType": "x", "payload": {"n": 2}})),
    )
    .await;
    assert_eq!(s, 202);
    // (A SIGKILL right after the first delivery may send it once more: at least once.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !rx.received().iter().any(|d| d.json()["n"] == 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the second message never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for d in rx.received() {
        assert!(verify_with_standardwebhooks(&secret, &d));
    }
    drop(p);

    // With the wrong main key nothing is revealed and nothing unsigned is sent.
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("keygen")
        .output()
        .unwrap();
    let wrong = String::from_utf8(wrong.stdout).unwrap();
    let p = start(&dir.0, &[("HERALD_MAIN_KEY", wrong.trim())]);
    let (s, body) = api(
        &client,
        &p,
        "GET",
        &format!("/app/{a}/endpoint/{ep}/secret"),
        None,
    )
    .await;
    assert_eq!(s, 500, "{body}");
    assert!(!body.to_string().contains("whsec_"));
    let (_, m) = api(
        &client,
        &p,
        "POST",
        &format!("/app/{a}/msg"),
        Some(json!({"eventType": "x", "payload": {"n": 3}})),
    )
    .await;
    let msg = m["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = api(
            &client,
            &p,
            "GET",
            &format!("/app/{a}/attempt/msg/{msg}"),
            None,
        )
        .await;
        if let Some(attempt) = log["data"].as_array().and_then(|d| d.first()) {
            let response = attempt["response"].as_str().unwrap();
            assert!(
                response.contains("cannot open the endpoint's signing key"),
                "{response}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        rx.received().iter().all(|d| d.header("webhook-id") != msg),
        "nothing was sent without a valid signature"
    );
}
