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
