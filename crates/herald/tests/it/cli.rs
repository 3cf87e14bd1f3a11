//! The binary as a new user meets it: first start, its banner and token, `token create`,
//! `config`, `--help`, and the data-directory lock.

use std::process::Command;

use crate::helpers::*;

fn herald(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_remove("HERALD_ADMIN_TOKEN")
        .output()
        .unwrap()
}

async fn status_with(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/api/v1/app"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn first_start_prints_a_working_token_once() {
    let dir = TempDir::new("cli");
    let data = dir.0.join("data");
    let mut first = HeraldProcess::start(&data, &[]);
    let banner = first.banner.join("\n");
    assert!(banner.contains("created now"), "{banner}");
    let token = first
        .banner
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("hrld_"))
        .expect("token line")
        .to_string();
    assert!(
        banner.contains(&format!("curl -H 'Authorization: Bearer {token}'")),
        "{banner}"
    );
    assert_eq!(status_with(&first.url, &token).await, 200);
    assert_eq!(status_with(&first.url, "hrld_wrong").await, 401);
    // The database keeps only a hash of the token.
    let db = std::fs::read(data.join("herald.db")).unwrap();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "token stored in clear"
    );

    // A second server on the same directory is refused with a clear message.
    let second = herald(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another herald process is using"));

    // `token create` beside the running server makes another working token.
    let out = herald(&[
        "token",
        "create",
        "--name",
        "ci",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(created.starts_with("hrld_") && created != token);
    assert_eq!(status_with(&first.url, &created).await, 200);

    // A restart prints no new token; the old one still works.
    first.sigkill();
    let again = HeraldProcess::start(&data, &[]);
    assert!(
        !again.banner.iter().any(|l| l.trim().starts_with("hrld_")),
        "{:?}",
        again.banner
    );
    assert_eq!(status_with(&again.url, &token).await, 200);
}

#[test]
fn help_and_config_are_useful() {
    let help = herald(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for word in ["serve", "token", "config", "--data-dir"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let serve_help = String::from_utf8_lossy(&herald(&["serve", "--help"]).stdout).to_string();
    assert!(
        serve_help.contains("--listen") && serve_help.contains("HERALD_LISTEN"),
        "{serve_help}"
    );
    let config = herald(&["config"]);
    let text = String::from_utf8_lossy(&config.stdout);
    let parsed: toml::Table = text.parse().expect("`herald config` prints valid TOML");
    assert_eq!(parsed["listen"].as_str(), Some("127.0.0.1:8071"));
    let bad = herald(&["serve", "--config", "/nonexistent/herald.toml"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("reading config file"));
}

#[test]
fn verify_checks_a_captured_request_and_says_why_not() {
    let dir = TempDir::new("verify");
    let body = dir.0.join("body");
    std::fs::write(&body, "Hello, World!").unwrap();
    let header =
        "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let run = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "verify",
                "--scheme",
                "github",
                "--secret",
                secret,
                "-H",
                header,
                "--body-file",
            ])
            .arg(&body)
            .output()
            .unwrap()
    };
    let ok = run("It's a Secret to Everybody");
    assert!(ok.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "verified: the github signature matches"
    );
    let bad = run("not the secret");
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stdout).trim(),
        "not verified: the X-Hub-Signature-256 does not match"
    );
    // Body on standard input, headers from a file, a stale Slack timestamp.
    let headers = dir.0.join("headers");
    std::fs::write(
        &headers,
        "HTTP/1.1 200 OK\nX-Slack-Signature: v0=00\nX-Slack-Request-Timestamp: 1000\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "verify",
            "--scheme",
            "slack",
            "--secret",
            "s",
            "--headers-file",
        ])
        .arg(&headers)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"token=x").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tolerance"));
}
