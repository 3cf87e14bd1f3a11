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

#[tokio::test]
async fn a_first_start_that_fails_leaves_no_token_unseen() {
    let dir = TempDir::new("busy");
    let data = dir.0.join("data");
    // The port is taken: the start fails before it creates anything.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let failed = herald(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains(&format!("listening on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        !data.join("herald.db").exists(),
        "a failed start created the database"
    );
    drop(busy);
    // The next start is the first start, and shows its token.
    let first = HeraldProcess::start(&data, &[]);
    let token = first
        .banner
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("hrld_"))
        .unwrap_or_else(|| panic!("no token in {:?}", first.banner))
        .to_string();
    assert_eq!(status_with(&first.url, &token).await, 200);
}

#[tokio::test]
async fn a_token_can_be_created_before_the_first_start() {
    let dir = TempDir::new("token-first");
    let data = dir.0.join("data");
    let out = herald(&["token", "create", "--data-dir", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("hrld_"), "{token}");
    let server = HeraldProcess::start(&data, &[]);
    assert!(
        !server.banner.iter().any(|l| l.trim().starts_with("hrld_")),
        "a token exists, so the first start makes none: {:?}",
        server.banner
    );
    assert_eq!(status_with(&server.url, &token).await, 200);
}

#[test]
fn help_and_config_are_useful() {
    let help = herald(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for word in ["serve", "token", "config"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let serve_help = String::from_utf8_lossy(&herald(&["serve", "--help"]).stdout).to_string();
    assert!(
        serve_help.contains("--listen")
            && serve_help.contains("HERALD_LISTEN")
            && serve_help.contains("--data-dir"),
        "{serve_help}"
    );
    // The client commands talk to a server over HTTP: no server-side flags, and every
    // subcommand says what it does.
    for group in [
        "app",
        "endpoint",
        "event-type",
        "message",
        "attempt",
        "source",
    ] {
        let help = String::from_utf8_lossy(&herald(&[group, "--help"]).stdout).to_string();
        assert!(
            !help.contains("--data-dir") && !help.contains("--config"),
            "{help}"
        );
        let commands = help
            .split("Commands:")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_else(|| panic!("no commands in {help}"));
        for line in commands.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.split_whitespace().count() > 1,
                "`herald {group}` has a subcommand without a help line: {line:?}"
            );
        }
        let list_help =
            String::from_utf8_lossy(&herald(&[group, "list", "--help"]).stdout).to_string();
        assert!(!list_help.contains("--data-dir"), "{list_help}");
    }
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

#[test]
fn verify_tells_usage_errors_from_failed_checks_and_keeps_the_secret_out_of_help() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .env("HERALD_VERIFY_SECRET", "whsec_dG9wLXNlY3JldC1pbi10aGUtZW52")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // A scheme that does not exist is a usage error, and the known ones are named.
    let unknown = run(&["verify", "--scheme", "foo", "--secret", "s"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("standard-webhooks"),
        "{}",
        text(&unknown)
    );
    // So are a secret of the wrong form, an unreadable file and a malformed header.
    let bad_secret = run(&["verify", "--scheme", "standard-webhooks", "--secret", "foo"]);
    assert_eq!(bad_secret.status.code(), Some(2), "{}", text(&bad_secret));
    assert!(
        text(&bad_secret).contains("--secret"),
        "{}",
        text(&bad_secret)
    );
    let no_file = run(&[
        "verify",
        "--scheme",
        "github",
        "--body-file",
        "/nonexistent/body",
    ]);
    assert_eq!(no_file.status.code(), Some(2), "{}", text(&no_file));
    let bad_header = run(&["verify", "--scheme", "github", "-H", "no colon here"]);
    assert_eq!(bad_header.status.code(), Some(2), "{}", text(&bad_header));
    // A check that fails is 1.
    let failed = run(&[
        "verify",
        "--scheme",
        "github",
        "-H",
        "X-Hub-Signature-256: sha256=00",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    // Help names the variable but never shows the secret it holds.
    let help = run(&["verify", "--help"]);
    assert!(help.status.success());
    assert!(text(&help).contains("HERALD_VERIFY_SECRET"));
    assert!(
        !text(&help).contains("dG9wLXNlY3JldC1pbi10aGUtZW52"),
        "{}",
        text(&help)
    );
}

#[test]
fn verify_checks_ed25519_signatures_with_the_public_key() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/signature-vectors.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scheme"] == "standard-webhooks" && c["public_key"].is_string())
        .expect("an ed25519 case");
    let dir = TempDir::new("verify-pk");
    let run = |body: &str| {
        let body_file = dir.0.join("body");
        std::fs::write(&body_file, body).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args([
            "verify",
            "--scheme",
            "standard-webhooks",
            "--tolerance",
            "2000000000",
        ])
        .args(["--secret", case["public_key"].as_str().unwrap()])
        .arg("--body-file")
        .arg(&body_file);
        for (k, v) in case["headers"].as_object().unwrap() {
            cmd.args(["-H", &format!("{k}: {}", v.as_str().unwrap())]);
        }
        cmd.output().unwrap()
    };
    let body = case["body"].as_str().unwrap();
    let ok = run(body);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let tampered = run(&format!("{body} "));
    assert_eq!(tampered.status.code(), Some(1));
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    use std::io::{BufRead, BufReader, Read};
    let dir = TempDir::new("logs");
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        // --dev logs a warning at start: a line to look at.
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .env_remove("HERALD_ADMIN_TOKEN")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if line.unwrap().trim_start().starts_with("try:") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("DEVELOPMENT MODE"), "no log lines: {logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in a piped log: {logs:?}"
    );
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    // The reader of the pipe is gone before herald writes (as with `| head -c 10` once
    // head has what it wants).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("config")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// Runs the CLI client against `url` with the config file `config` (server and token).
async fn client(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(&args)
            .env_remove("HERALD_URL")
            .env_remove("HERALD_TOKEN")
            .env("HERALD_CLI_CONFIG", &config)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_client_commands_drive_the_api_with_tables_and_json() {
    let app = spawn_app(&[]).await;
    let rx = Receiver::start().await;
    let dir = TempDir::new("cli-client");
    let config = dir.0.join("cli.toml");
    std::fs::write(
        &config,
        format!("server = \"{}\"\ntoken = \"{ADMIN_TOKEN}\"\n", app.url),
    )
    .unwrap();
    let ok = |r: &(i32, String, String)| assert_eq!(r.0, 0, "stdout: {}\nstderr: {}", r.1, r.2);

    let r = client(&config, &["app", "create", "Shop", "--uid", "shop"]).await;
    ok(&r);
    assert!(
        r.1.lines()
            .any(|l| l.starts_with("uid") && l.ends_with("shop")),
        "{}",
        r.1
    );
    ok(&client(
        &config,
        &[
            "event-type",
            "create",
            "order.paid",
            "--description",
            "An order was paid",
        ],
    )
    .await);
    let r = client(
        &config,
        &[
            "endpoint",
            "create",
            "shop",
            &rx.url("/hook"),
            "--filter-types",
            "order.paid",
            "--json",
        ],
    )
    .await;
    ok(&r);
    let ep: serde_json::Value = serde_json::from_str(&r.1).unwrap();
    assert_eq!(ep["filterTypes"], serde_json::json!(["order.paid"]));

    let payload = dir.0.join("order.json");
    std::fs::write(&payload, r#"{"order": 7}"#).unwrap();
    let r = client(
        &config,
        &[
            "send",
            "order.paid",
            "--app",
            "shop",
            "--data",
            &format!("@{}", payload.display()),
            "--count",
            "3",
        ],
    )
    .await;
    ok(&r);
    assert!(r.2.contains("3/3"), "a progress bar on stderr: {}", r.2);
    let got = rx.wait_for(3, std::time::Duration::from_secs(10)).await;
    assert!(got.iter().all(|d| d.body.as_ref() == br#"{"order":7}"#));

    // A table for people, JSON for scripts.
    let r = client(&config, &["message", "list", "shop"]).await;
    ok(&r);
    let lines: Vec<&str> = r.1.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("EVENT TYPE"),
        "{}",
        r.1
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("order.paid")).count(),
        3,
        "{}",
        r.1
    );
    let r = client(&config, &["message", "list", "shop", "--json", "--all"]).await;
    ok(&r);
    let msgs: serde_json::Value = serde_json::from_str(&r.1).unwrap();
    assert_eq!(msgs["data"].as_array().unwrap().len(), 3);
    let msg = msgs["data"][0]["id"].as_str().unwrap().to_string();
    // The attempt log shows the receiver's answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = client(&config, &["attempt", "list", "shop", &msg]).await;
        ok(&r);
        // Status in words, and the HTTP status with its reason.
        if r.1
            .lines()
            .skip(1)
            .any(|l| l.contains("succeeded") && l.contains(" 200 OK "))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no attempt in {}",
            r.1
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The message list says how each message's deliveries went, and filters by it.
    let r = client(&config, &["message", "list", "shop"]).await;
    ok(&r);
    assert!(r.1.lines().next().unwrap().contains("DELIVERY"), "{}", r.1);
    assert!(
        r.1.lines().skip(1).any(|l| l.contains("succeeded")),
        "{}",
        r.1
    );
    let r = client(
        &config,
        &["message", "list", "shop", "--status", "succeeded"],
    )
    .await;
    ok(&r);
    assert!(r.1.lines().count() > 1, "{}", r.1);
    let r = client(&config, &["message", "list", "shop", "--status", "failed"]).await;
    ok(&r);
    assert_eq!(r.1.lines().count(), 1, "only the header: {}", r.1);
    // An endpoint gets a uid of one's own choosing.
    let r = client(
        &config,
        &[
            "endpoint",
            "create",
            "shop",
            &rx.url("/second"),
            "--uid",
            "second",
        ],
    )
    .await;
    ok(&r);
    let r = client(&config, &["endpoint", "get", "shop", "second"]).await;
    ok(&r);
    assert!(r.1.contains("/second"), "{}", r.1);

    // Sources from the CLI, with their requests.
    let r = client(
        &config,
        &[
            "source",
            "create",
            "gh",
            "--scheme",
            "github",
            "--secret",
            "s3cret",
            "--forward-to",
            &rx.url("/in"),
            "--json",
        ],
    )
    .await;
    ok(&r);
    let src: serde_json::Value = serde_json::from_str(&r.1).unwrap();
    let src_id = src["id"].as_str().unwrap();
    let refused = reqwest::Client::new()
        .post(format!("{}/in/{src_id}", app.url))
        .header("x-hub-signature-256", "sha256=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let r = client(&config, &["source", "requests", src_id]).await;
    ok(&r);
    assert!(
        r.1.contains("false") && r.1.contains("does not match"),
        "{}",
        r.1
    );

    // Errors: a clear line and exit 1.
    let r = client(&config, &["app", "get", "nope"]).await;
    assert_eq!(r.0, 1);
    assert!(r.2.contains("404 not_found"), "{}", r.2);
    std::fs::write(&config, format!("server = \"{}\"\n", app.url)).unwrap();
    let r = client(&config, &["app", "list"]).await;
    assert_eq!(r.0, 1);
    assert!(r.2.contains("no API token"), "{}", r.2);
}

#[tokio::test]
async fn people_are_added_listed_given_a_role_and_removed_from_the_cli() {
    let app = spawn_app(&[]).await;
    let dir = TempDir::new("cli-users");
    let config = dir.0.join("cli.toml");
    std::fs::write(
        &config,
        format!("server = \"{}\"\ntoken = \"{ADMIN_TOKEN}\"\n", app.url),
    )
    .unwrap();
    let run = |args: &'static [&'static str], password: Option<&'static str>| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
                cmd.args(args)
                    .env_remove("HERALD_URL")
                    .env_remove("HERALD_TOKEN")
                    .env_remove("HERALD_USER_PASSWORD")
                    .env("HERALD_CLI_CONFIG", &config)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let mut child = cmd.spawn().unwrap();
                if let Some(p) = password {
                    writeln!(child.stdin.take().unwrap(), "{p}").unwrap();
                }
                let out = child.wait_with_output().unwrap();
                (
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
            .await
            .unwrap()
        }
    };
    let r = run(
        &[
            "user",
            "add",
            "ana@example.com",
            "--role",
            "support",
            "--totp",
            "--json",
        ],
        Some("a long enough password"),
    )
    .await;
    assert_eq!(r.0, 0, "{} {}", r.1, r.2);
    let made: serde_json::Value = serde_json::from_str(&r.1).unwrap();
    assert_eq!(made["role"], "support");
    assert!(
        made["totpSetup"]["secret"].is_string(),
        "the secret is printed once"
    );
    let r = run(
        &["user", "add", "bo@example.com", "--role", "viewer"],
        Some("short"),
    )
    .await;
    assert_ne!(r.0, 0);
    assert!(r.2.contains("password"), "{}", r.2);
    let r = run(&["user", "list"], None).await;
    assert_eq!(r.0, 0, "{}", r.2);
    assert!(
        r.1.lines()
            .any(|l| l.contains("ana@example.com") && l.contains("support")),
        "{}",
        r.1
    );
    let r = run(&["user", "set-role", "ana@example.com", "developer"], None).await;
    assert_eq!(r.0, 0, "{}", r.2);
    let (_, people) = app.get("/person").await;
    assert_eq!(people["data"][0]["role"], "developer");
    let r = run(&["user", "remove", "ana@example.com"], None).await;
    assert_eq!(r.0, 0, "{}", r.2);
    let (_, people) = app.get("/person").await;
    assert_eq!(people["data"], serde_json::json!([]));
}
