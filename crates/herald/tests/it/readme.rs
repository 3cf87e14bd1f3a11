//! The README's quickstart, run as written: the banner it shows is what `herald serve
//! --dev` prints, and its curl, Python and JavaScript parts run one after the other
//! against that one server. Only what a reader would substitute is substituted: the
//! token, the server's address (the test cannot count on port 8071) and the receiver's
//! port 3000.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// The fenced code blocks of the README's Quickstart section: (language, text).
fn quickstart_blocks() -> Vec<(String, String)> {
    section_blocks("Quickstart")
}

/// The fenced code blocks of the README section whose title starts with `title`.
fn section_blocks(title: &str) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let start = readme
        .find(&format!("\n## {title}"))
        .unwrap_or_else(|| panic!("a {title} section"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    blocks
}

/// A free loopback port (bound and let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_runs_top_to_bottom_on_one_server() {
    let blocks = quickstart_blocks();
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        langs,
        ["text", "sh", "python", "js"],
        "the quickstart's blocks"
    );

    // `herald serve --dev` in an empty directory, as the reader runs it (the address
    // comes from the environment, so that the command line is the README's).
    let home = TempDir::new("readme");
    let mut server = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--dev"])
        .current_dir(&home.0)
        .env_remove("HERALD_ADMIN_TOKEN")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_OPERATIONAL_WEBHOOKS", "false")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = Vec::new();
    for line in BufReader::new(server.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.trim_start().starts_with("try:");
        banner.push(line);
        if done {
            break;
        }
    }
    let url = banner[0]
        .strip_prefix("herald listening on ")
        .expect("the first banner line")
        .to_string();
    let token = banner
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("hrld_"))
        .expect("the token line")
        .to_string();
    let data = std::fs::canonicalize(home.0.join("herald-data")).unwrap();

    // The banner, as the README shows it.
    let shown: Vec<String> = banner
        .iter()
        .map(|l| {
            l.replace(&url, "http://127.0.0.1:8071")
                .replace(&token, "hrld_…")
                .replace(data.to_str().unwrap(), "/home/me/herald-data")
        })
        .collect();
    let expected: Vec<&str> = blocks[0].1.lines().skip(1).collect();
    assert_eq!(blocks[0].1.lines().next(), Some("$ herald serve --dev"));
    assert_eq!(
        shown, expected,
        "the README's banner differs from what serve prints"
    );

    let port = free_port();
    let fill = |text: &str| {
        text.replace("http://127.0.0.1:8071", &url)
            .replace("hrld_…", &token)
            .replace("127.0.0.1:3000", &format!("127.0.0.1:{port}"))
            .replace("(\"127.0.0.1\", 3000)", &format!("(\"127.0.0.1\", {port})"))
    };
    let run = |program: &str, args: &[&str], script: String, env: Vec<(&'static str, String)>| {
        let dir = home.0.clone();
        let (program, args) = (
            program.to_string(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        async move {
            let path = dir.join("script");
            std::fs::write(&path, script).unwrap();
            tokio::task::spawn_blocking(move || {
                let out = Command::new(&program)
                    .args(&args)
                    .arg(&path)
                    .current_dir(&dir)
                    .envs(env)
                    .output()
                    .unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(out.status.success(), "{program} failed: {text}");
                text
            })
            .await
            .unwrap()
        }
    };

    // curl.
    let curl_out = run("bash", &["-e"], fill(&blocks[1].1), vec![]).await;
    assert!(curl_out.contains("\"uid\":\"acme\""), "{curl_out}");
    let client = reqwest::Client::new();
    let get = |path: String| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let r = client
                .get(format!("{url}/api/v1{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let ep = get("/app/acme/endpoint/receiver".into()).await;
    assert_eq!(ep["filterTypes"][0], "order.created");
    get("/app/acme/msg/order-1001".into()).await;

    // Python, after the curl part: its receiver verifies what arrives.
    let python = std::env::var("HERALD_TEST_PYTHON")
        .expect("HERALD_TEST_PYTHON is not set: run scripts/test.sh, which installs the SDK");
    let py_out = run(&python, &[], fill(&blocks[2].1), vec![]).await;
    assert!(py_out.contains("verified: {"), "{py_out}");

    // JavaScript, after both.
    let node_path = std::env::var("HERALD_TEST_NODE_PATH")
        .expect("HERALD_TEST_NODE_PATH is not set: run scripts/test.sh");
    let js_out = run(
        "node",
        &[],
        fill(&blocks[3].1),
        vec![("NODE_PATH", node_path)],
    )
    .await;
    assert!(js_out.contains("sent msg_"), "{js_out}");
    get("/app/acme/msg/order-1002".into()).await;
    let msgs = get("/app/acme/msg".into()).await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 3, "{msgs}");

    // The Destinations section's block, after the quickstart on the same server.
    let destinations = section_blocks("Destinations");
    assert_eq!(destinations.len(), 1, "the Destinations section's blocks");
    let out = run("bash", &["-e"], fill(&destinations[0].1), vec![]).await;
    assert!(out.contains("\"payload\":{\"order\":1003"), "{out}");
    assert!(out.contains("\"done\":true"), "{out}");

    // The Transformations section's block: try, set, filter.
    let transformations = section_blocks("Transformations");
    assert_eq!(
        transformations.len(),
        1,
        "the Transformations section's blocks"
    );
    let out = run("bash", &["-e"], fill(&transformations[0].1), vec![]).await;
    assert!(out.contains("\"outcome\":\"send\""), "{out}");
    assert!(
        out.contains("\"payload\":{\"text\":\"order 1004\"}"),
        "{out}"
    );
    let t = get("/app/acme/endpoint/receiver/transformation".into()).await;
    assert_eq!(t["enabled"], true, "{t}");
    let ep = get("/app/acme/endpoint/receiver".into()).await;
    assert_eq!(
        ep["payloadFilter"]["payload"]["total"]["$gte"], 1000,
        "{ep}"
    );

    let _ = server.kill();
    let _ = server.wait();
    tokio::time::sleep(Duration::from_millis(10)).await;
}
