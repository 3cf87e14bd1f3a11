//! The ceiling benchmark of BENCHMARKS.md: the fastest a server could possibly answer
//! hookbench on this machine. It speaks just enough of the v1 API for hookbench (create
//! an application, create endpoints, read a secret, create messages) over hand-written
//! HTTP/1.1 on raw sockets, stores nothing, answers 202 at once, and delivers each
//! message to every endpoint, signed, over kept-alive connections. It does the least
//! work any webhook server must do per message: two HTTP exchanges (ingest, delivery),
//! a JSON parse, an id and a signature. What hookbench measures against it is an upper
//! bound for Herald, which also stores every message durably and logs every attempt.
//!
//!   cargo build --release -p herald --examples
//!   target/release/examples/ceiling 8090 &
//!   hookbench --api http://127.0.0.1:8090 --token x --messages 100000 --concurrency 64
//!
//! Not a server to use: no authentication, no persistence, no retries (a failed delivery
//! is counted and dropped, so hookbench reports it lost).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use herald_core::secret::Secret;
use herald_core::{ids, signing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Endpoint {
    id: String,
    /// `host:port` to connect to, and the request line's path.
    addr: String,
    path: String,
    secret: Secret,
    /// Idle kept-alive connections to the endpoint.
    idle: Mutex<Vec<TcpStream>>,
}

#[derive(Default)]
struct State {
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    failed: AtomicU64,
}

/// One parsed request: method, path, body.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (Content-Length bodies only) from `buf`+`stream`; None at
/// end of stream.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    loop {
        if let Some(head_end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..head_end]).ok()?;
            let mut lines = head.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
            let length = content_length(lines);
            let total = head_end + 4 + length;
            while buf.len() < total {
                read_more(stream, buf).await?;
            }
            let body = buf[head_end + 4..total].to_vec();
            buf.drain(..total);
            return Some(Request { method, path, body });
        }
        read_more(stream, buf).await?;
    }
}

fn content_length<'a>(lines: impl Iterator<Item = &'a str>) -> usize {
    lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 {
        return None;
    }
    buf.extend_from_slice(&chunk[..n]);
    Some(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve_connection(mut stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(req) = read_request(&mut stream, &mut buf).await {
        let (answer, deliver) = handle(&state, &req);
        if stream.write_all(&answer).await.is_err() {
            return;
        }
        if let Some((msg_id, payload)) = deliver {
            let payload: Arc<str> = payload.into();
            for ep in state.endpoints.read().unwrap().iter() {
                let (ep, msg_id, payload, state) =
                    (ep.clone(), msg_id.clone(), payload.clone(), state.clone());
                tokio::spawn(async move {
                    if deliver_one(&ep, &msg_id, &payload).await.is_none() {
                        state.failed.fetch_add(1, Relaxed);
                    }
                });
            }
        }
    }
}

/// The answer to one API call, and the message to deliver when it created one.
fn handle(state: &State, req: &Request) -> (Vec<u8>, Option<(String, String)>) {
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["api", "v1", "app"]) => (
            response(
                "201 Created",
                &format!(r#"{{"id":"{}"}}"#, ids::generate(ids::APP)),
            ),
            None,
        ),
        ("POST", ["api", "v1", "app", _, "endpoint"]) => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let url = body["url"].as_str().unwrap_or_default();
            let rest = url.strip_prefix("http://").unwrap_or(url);
            let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let ep = Arc::new(Endpoint {
                id: ids::generate(ids::ENDPOINT),
                addr: addr.to_string(),
                path: if path.is_empty() { "/" } else { path }.to_string(),
                secret: Secret::generate_hmac(),
                idle: Mutex::new(Vec::new()),
            });
            let answer = response("201 Created", &format!(r#"{{"id":"{}"}}"#, ep.id));
            state.endpoints.write().unwrap().push(ep);
            (answer, None)
        }
        ("GET", ["api", "v1", "app", _, "endpoint", id, "secret"]) => {
            let endpoints = state.endpoints.read().unwrap();
            match endpoints.iter().find(|e| e.id == *id) {
                Some(ep) => (
                    response("200 OK", &format!(r#"{{"key":"{}"}}"#, ep.secret.expose())),
                    None,
                ),
                None => (response("404 Not Found", "{}"), None),
            }
        }
        ("POST", ["api", "v1", "app", _, "msg"]) => {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
                return (response("422 Unprocessable Entity", "{}"), None);
            };
            // The answer has the shape of Svix's (and Herald's): hookbench parses it.
            let msg_id = ids::generate(ids::MESSAGE);
            let payload = body["payload"].to_string();
            let answer = response(
                "202 Accepted",
                &format!(
                    r#"{{"id":"{msg_id}","eventType":{},"eventId":null,"channels":null,"payload":{payload},"timestamp":"{}"}}"#,
                    body["eventType"],
                    herald_core::time::format_rfc3339(herald_core::time::now_ms())
                ),
            );
            (answer, Some((msg_id, payload)))
        }
        _ => (response("404 Not Found", "{}"), None),
    }
}

/// Sends one signed delivery over an idle connection (or a new one) and reads the
/// answer; None when it failed or was not a 2xx.
async fn deliver_one(ep: &Endpoint, msg_id: &str, payload: &str) -> Option<()> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    let signature = signing::sign_one(&ep.secret, msg_id, timestamp, payload.as_bytes());
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         webhook-id: {msg_id}\r\nwebhook-timestamp: {timestamp}\r\nwebhook-signature: {signature}\r\n\
         content-length: {}\r\n\r\n{payload}",
        ep.path,
        ep.addr,
        payload.len()
    );
    let idle = ep.idle.lock().unwrap().pop();
    let mut stream = match idle {
        Some(s) => s,
        None => {
            let s = TcpStream::connect(&ep.addr).await.ok()?;
            s.set_nodelay(true).ok()?;
            s
        }
    };
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buf = Vec::with_capacity(512);
    let status_ok = loop {
        if let Some(head_end) = find(&buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..head_end]).ok()?;
            let mut lines = head.split("\r\n");
            let ok = lines.next()?.split(' ').nth(1)?.starts_with('2');
            let total = head_end + 4 + content_length(lines);
            while buf.len() < total {
                read_more(&mut stream, &mut buf).await?;
            }
            break ok;
        }
        read_more(&mut stream, &mut buf).await?;
    };
    ep.idle.lock().unwrap().push(stream);
    status_ok.then_some(())
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(8090, |p| p.parse().expect("usage: ceiling [PORT]"));
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the port");
    let state = Arc::new(State::default());
    {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                let failed = state.failed.load(Relaxed);
                if failed > 0 {
                    eprintln!("ceiling: {failed} deliveries failed");
                }
            }
        });
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream, state.clone()));
    }
}
