//! `herald listen` as a developer runs it: the real CLI process against a real server,
//! forwarding to a real local app on loopback that goes down and comes back, and a CLI
//! that goes away and reconnects.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// One request the local app got: its headers (lower-case names) and body.
type Request = (Vec<(String, String)>, String);

/// A minimal local app: one request per connection (`Connection: close`), so stopping
/// it really refuses connections (no pooled connection outlives it).
struct LocalApp {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LocalApp {
    fn new() -> LocalApp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        LocalApp {
            port,
            got: Arc::default(),
            task: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks", self.port)
    }

    async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let got = self.got.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break (0, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        break (i + 4, length);
                    }
                };
                if head_end == 0 {
                    continue;
                }
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                got.lock().unwrap().push((headers, body));
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}")
                    .await;
            }
        }));
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the local app got {} of {n} deliveries",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The `herald listen` process, with its output lines.
struct ListenProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ListenProcess {
    fn start(server: &str, forward_to: &str, app: &str) -> ListenProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "listen",
                "--forward-to",
                forward_to,
                "--app",
                app,
                "--print-secret",
            ])
            .env("HERALD_URL", server)
            .env("HERALD_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn herald listen");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ListenProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that contains every one of `parts`; returns it.
    fn line_with(&mut self, parts: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .seen
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line with {parts:?} in {timeout:?}; got {:#?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for ListenProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut req = client.request(method, url).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// Attempts of a message: (status, HTTP status code), oldest first.
async fn attempts(client: &reqwest::Client, server: &str, msg: &str) -> Vec<(i64, i64)> {
    let v = api(
        client,
        reqwest::Method::GET,
        format!("{server}/api/v1/app/shop/attempt/msg/{msg}"),
        None,
    )
    .await;
    let mut out: Vec<(i64, i64)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["status"].as_i64().unwrap(),
                a["responseStatusCode"].as_i64().unwrap(),
            )
        })
        .collect();
    out.reverse();
    out
}

#[tokio::test]
async fn herald_listen_forwards_and_keeps_what_arrives_while_the_app_or_the_cli_is_down() {
    let dir = TempDir::new("listen");
    // Retries: 2 s, then 60 s; the test must never wait for the long one.
    let p = HeraldProcess::start(
        &dir.0,
        &[
            ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("HERALD_RETRY_SCHEDULE_SECS", "2,60,60"),
        ],
    );
    let client = reqwest::Client::new();
    api(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/app", p.url),
        Some(json!({"name": "shop", "uid": "shop"})),
    )
    .await;
    let send = |n: u32| {
        let (client, url) = (client.clone(), p.url.clone());
        async move {
            let m = api(
                &client,
                reqwest::Method::POST,
                format!("{url}/api/v1/app/shop/msg"),
                Some(json!({"eventType": "order.paid", "payload": {"n": n}})),
            )
            .await;
            m["id"].as_str().unwrap().to_string()
        }
    };

    let mut local = LocalApp::new();
    local.start().await;
    let mut cli = ListenProcess::start(&p.url, &local.url(), "shop");
    let secret_line = cli.line_with(&["signing secret", "whsec_"], Duration::from_secs(20));
    let secret = secret_line.split_whitespace().last().unwrap().to_string();

    // 1. Delivered to the local app, signed, shown in the terminal.
    let first = send(1).await;
    let got = local.wait_for(1, Duration::from_secs(10)).await;
    let (headers, body) = &got[0];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(header("webhook-id"), first);
    assert_eq!(body, r#"{"n":1}"#);
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    let mut hm = reqwest::header::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        hm.insert(name, header(name).parse().unwrap());
    }
    assert!(
        wh.verify(body.as_bytes(), &hm).is_ok(),
        "the printed secret verifies the delivery"
    );
    cli.line_with(&[&first, "-> 200"], Duration::from_secs(10));

    // 2. The local app is down: the CLI says so, Herald logs a failed attempt and
    // retries; the app comes back and gets the message.
    local.stop();
    let second = send(2).await;
    cli.line_with(&[&second, "unreachable"], Duration::from_secs(10));
    local.start().await;
    let got = local.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[1].1, r#"{"n":2}"#);
    cli.line_with(&[&second, "-> 200"], Duration::from_secs(10));
    // The CLI prints before Herald logs the attempt, so wait for the successful one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = attempts(&client, &p.url, &second).await;
    while log.last() != Some(&(0, 200)) {
        assert!(
            Instant::now() < deadline,
            "the delivered attempt was not logged: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = attempts(&client, &p.url, &second).await;
    }
    assert_eq!(
        log.first(),
        Some(&(2, 0)),
        "the attempt while the app was down: {log:?}"
    );
    assert_eq!(log.last(), Some(&(0, 200)), "{log:?}");

    // 3. The CLI is gone: what arrives waits (attempts fail, the next retry is a minute
    // away), and goes as soon as the CLI reconnects.
    drop(cli);
    let third = send(3).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while attempts(&client, &p.url, &third).await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the attempts without a session were not logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reconnected = Instant::now();
    let mut cli = ListenProcess::start(&p.url, &local.url(), "shop");
    let got = local.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got[2].1, r#"{"n":3}"#);
    assert!(
        reconnected.elapsed() < Duration::from_secs(30),
        "sent on reconnect, not at the 60 s retry"
    );
    cli.line_with(&[&third, "-> 200"], Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_listen_with_the_same_name_takes_over_and_the_first_stops_saying_why() {
    let app = spawn_app(&[]).await;
    let a = app.app("dev").await;
    let local = LocalApp::new();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["listen", "--forward-to", &local.url(), "--app", &a])
            .env("HERALD_URL", &app.url)
            .env("HERALD_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald listen")
    };
    /// Reads `out` until a line containing `what`; panics after 20 s. The rest is read
    /// too (and dropped), so that the process never writes to a closed pipe.
    fn wait_line(out: impl std::io::Read + Send + 'static, what: &'static str) -> String {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains(what) {
                    let _ = tx.send(line);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line with {what:?}"))
    }
    let mut first = start();
    wait_line(first.stdout.take().unwrap(), "Ready");
    let mut second = start();
    let second_err = second.stderr.take().unwrap();
    wait_line(second.stdout.take().unwrap(), "Ready");
    let note = wait_line(second_err, "took it over");
    assert!(note.contains("'default'"), "{note}");
    // The first stops, and says why and what to do.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the first herald listen kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut first.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("took over session 'default'") && stderr.contains("--name"),
        "{stderr}"
    );
    // The second keeps the session: it is still running a moment later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        second.try_wait().unwrap().is_none(),
        "the second stopped too"
    );
    let _ = second.kill();
    let _ = second.wait();
}
