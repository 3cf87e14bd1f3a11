//! Test fixtures: `spawn_app` starts a server in-process; `Receiver` is a webhook
//! receiver on 127.0.0.1 that records what arrives and answers as told.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald::config::{Config, Overrides};
use herald::server::Server;
use serde_json::{json, Value};
use tokio::sync::Notify;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The subnets tests open to deliveries: their receivers listen on loopback.
pub const LOOPBACK: &str = "127.0.0.0/8,::1/128";

/// A fresh, unique directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "herald-test-{tag}-{}-{n}-{}",
            std::process::id(),
            herald_core::ids::random_base62(6)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    /// Kept so the server lives as long as the test.
    pub _server: Server,
    pub _dir: TempDir,
}

/// Starts a server with test settings; `env` adds `HERALD_*` settings (e.g. a short
/// retry schedule).
pub async fn spawn_app(env: &[(&str, &str)]) -> TestApp {
    let dir = TempDir::new("app");
    let mut vars: Vec<(String, String)> = vec![
        ("HERALD_LISTEN".into(), "127.0.0.1:0".into()),
        ("HERALD_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("HERALD_RETRY_JITTER".into(), "0".into()),
        ("HERALD_POLL_INTERVAL_MS".into(), "50".into()),
        // Receivers run on loopback, which the SSRF guard refuses unless opened.
        ("HERALD_ALLOWED_SUBNETS".into(), LOOPBACK.into()),
        // Most tests count applications and event types on an empty server; the
        // operational webhooks test turns them on.
        ("HERALD_OPERATIONAL_WEBHOOKS".into(), "false".into()),
    ];
    for (k, v) in env {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let overrides = Overrides {
        data_dir: Some(dir.0.clone()),
        ..Default::default()
    };
    let config: Config = Config::load_from(&overrides, |k| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let server = Server::start(&config).await.expect("server starts");
    TestApp {
        url: server.url(),
        client: reqwest::Client::new(),
        _server: server,
        _dir: dir,
    }
}

impl TestApp {
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.url, path)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(m, self.api(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON body for {method} {path}: {text}"))
        };
        (status, value)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        metrics_at(&self.client, &self.url).await
    }

    /// Creates an application and returns its id.
    pub async fn app(&self, name: &str) -> String {
        let (s, b) = self.post("/app", json!({ "name": name })).await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    /// Creates an endpoint with extra fields; returns (id, secret).
    pub async fn endpoint(&self, app: &str, url: &str, extra: Value) -> (String, String) {
        let mut body = json!({ "url": url });
        if let Value::Object(m) = extra {
            body.as_object_mut().unwrap().extend(m);
        }
        let (s, b) = self.post(&format!("/app/{app}/endpoint"), body).await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap().to_string();
        let (s, secret) = self.get(&format!("/app/{app}/endpoint/{id}/secret")).await;
        assert_eq!(s, 200);
        (id, secret["key"].as_str().unwrap().to_string())
    }

    pub async fn event_type(&self, name: &str) {
        let (s, b) = self
            .post("/event-type", json!({ "name": name, "description": name }))
            .await;
        assert_eq!(s, 201, "{b}");
    }

    pub async fn send(&self, app: &str, body: Value) -> String {
        let (s, b) = self.post(&format!("/app/{app}/msg"), body).await;
        assert_eq!(s, 202, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    /// Polls the attempt log of a message until `pred` holds (bounded by `timeout`).
    pub async fn attempts_until(
        &self,
        app: &str,
        msg: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, b) = self
                .get(&format!("/app/{app}/attempt/msg/{msg}?order=ascending"))
                .await;
            let data = b["data"].as_array().cloned().unwrap_or_default();
            if pred(&data) {
                return data;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on attempts of {msg}: {data:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The path and query the request was sent to.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the receiver answers: a status, headers, a body, and an optional delay.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: impl Into<String>) -> Reply {
        self.body = b.into();
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Replies used in order; when empty, `default` answers.
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    notify: Notify,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Received {
        method: method.to_string(),
        path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        headers,
        body,
        at: Instant::now(),
    });
    state.notify.notify_waiters();
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.default.lock().unwrap().clone())
        .unwrap_or_else(|| Reply::status(200));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Queues replies for the next requests, in order.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// The reply once the queued ones are used up.
    pub fn otherwise(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "receiver got {} of {n} requests in {timeout:?}",
                    self.received().len()
                );
            }
        }
    }
}

/// The value of one series (name and labels as printed) in a `/metrics` text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// Verifies a delivery with the independent `standardwebhooks` crate.
pub fn verify_with_standardwebhooks(secret: &str, r: &Received) -> bool {
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    let mut headers = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.header(name).parse().unwrap());
    }
    wh.verify(&r.body, &headers).is_ok()
}

/// The real `herald serve` binary in a child process.
pub struct HeraldProcess {
    pub child: std::process::Child,
    pub url: String,
    /// What it printed on start, up to and including its `try:` line.
    pub banner: Vec<String>,
}

impl HeraldProcess {
    /// Starts `herald serve` on port 0 with the given environment (retry jitter off and a
    /// short poll interval unless overridden) and waits for its banner.
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> HeraldProcess {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env_remove("HERALD_ADMIN_TOKEN")
            .env("HERALD_RETRY_JITTER", "0")
            .env("HERALD_POLL_INTERVAL_MS", "50")
            .env("HERALD_ALLOWED_SUBNETS", LOOPBACK)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn herald");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.trim_start().starts_with("try:");
            banner.push(line);
            if done {
                break;
            }
        }
        let url = banner
            .first()
            .and_then(|l| l.strip_prefix("herald listening on "))
            .unwrap_or_else(|| panic!("no listening line in {banner:?}"))
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        HeraldProcess { child, url, banner }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no chance to flush or clean up.
    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `/metrics` text of the server at `url` (read with the admin token).
pub async fn metrics_at(client: &reqwest::Client, url: &str) -> String {
    let r = client
        .get(format!("{url}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    r.text().await.unwrap()
}

/// For destination batches (JSON arrays of messages with an `id`): once every message of
/// `sent` has reached `rx` (bounded by `timeout`), the place in `sent` of each message
/// received, in the order they arrived.
pub async fn batch_order(rx: &Receiver, sent: &[String], timeout: Duration) -> Vec<usize> {
    let index: std::collections::HashMap<&str, usize> = sent
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let order: Vec<usize> = rx
            .received()
            .iter()
            .flat_map(|r| {
                r.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| index[m["id"].as_str().unwrap()])
                    .collect::<Vec<_>>()
            })
            .collect();
        let distinct: std::collections::HashSet<usize> = order.iter().copied().collect();
        if distinct.len() == sent.len() {
            return order;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} messages arrived in {} batches",
            distinct.len(),
            sent.len(),
            rx.received().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `order` (from `batch_order`) runs 0, 1, … to the last message in order, except that
/// once (after a crash or a takeover) it may step back less than one batch of
/// `batch_size` messages: the batch in flight then comes again.
pub fn assert_in_order_with_one_batch_again(order: &[usize], batch_size: usize, messages: usize) {
    let mut rewinds = 0;
    for pair in order.windows(2) {
        if pair[1] != pair[0] + 1 {
            rewinds += 1;
            assert!(
                pair[1] <= pair[0] && pair[0] - pair[1] < batch_size,
                "out of order: {} after {}",
                pair[1],
                pair[0]
            );
        }
    }
    assert!(rewinds <= 1, "only the batch in flight comes again");
    assert_eq!(order.first(), Some(&0));
    assert_eq!(order.last(), Some(&(messages - 1)));
}
