//! Destinations in the consumer's own systems, against the real servers running on this
//! machine (PostgreSQL, RabbitMQ, NATS, Redis; in CI they are started before the suite,
//! see .ci/run), each reached through a TCP proxy the test can cut: messages arrive in
//! order with their ids; a connection cut mid-stream and restored loses nothing and
//! repeats a message only with its own id; bad credentials give a clear failure reason.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::pg::{host_port, ScratchDb, TcpProxy};

/// Whether the local server of `name` answers on `port`. When it does not, the test is
/// skipped with a line that says so, unless `HERALD_REQUIRE_BROKERS` is set (CI sets it,
/// after starting them): then a missing server fails the test.
async fn server_answers(name: &str, port: u16) -> bool {
    if tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("HERALD_REQUIRE_BROKERS").is_none(),
        "HERALD_REQUIRE_BROKERS is set but {name} does not answer on 127.0.0.1:{port}"
    );
    eprintln!("{name} does not answer on 127.0.0.1:{port}: this destination test is skipped");
    false
}

/// Retries quick enough for a short outage, and many of them.
const RETRIES: (&str, &str) = (
    "HERALD_RETRY_SCHEDULE_SECS",
    "0.2,0.3,0.5,0.5,1,1,1,1,1,1,1,1",
);

async fn destination(app: &TestApp, app_id: &str, body: Value) -> Value {
    let (s, d) = app.post(&format!("/app/{app_id}/destination"), body).await;
    assert_eq!(s, 201, "{d}");
    d
}

async fn send_many(app: &TestApp, app_id: &str, from: usize, to: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in from..to {
        ids.push(
            app.send(
                app_id,
                json!({"eventType": "order.created", "payload": {"n": i}}),
            )
            .await,
        );
    }
    ids
}

/// Waits until `read` gives at least `n` ids, and returns them.
async fn wait_for_ids<F, Fut>(n: usize, timeout: Duration, mut read: F) -> Vec<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let ids = read().await;
        if ids.len() >= n || Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the destination reports a failure, and returns its reason.
async fn failure_reason(app: &TestApp, app_id: &str, dest_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, d) = app
            .get(&format!("/app/{app_id}/destination/{dest_id}"))
            .await;
        if let Some(reason) = d["failureReason"].as_str() {
            return reason.to_string();
        }
        assert!(Instant::now() < deadline, "no failure reported: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn postgres_destination_inserts_batches_once_each_through_an_outage() {
    let Some(db) = ScratchDb::create("pgsink").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: postgres destination test skipped");
        return;
    };
    let proxy = TcpProxy::start(host_port(&db.url)).await;
    let app = spawn_app(&[RETRIES]).await;
    let app_id = app.app("warehouse").await;
    let user = db
        .url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .filter(|u| !u.contains('/'))
        .unwrap_or("postgres")
        .to_string();
    let url = format!("postgres://{user}@127.0.0.1:{}/{}", proxy.port, db.name);
    let d = destination(
        &app,
        &app_id,
        json!({"type": "postgres", "batchSize": 10, "config": {"url": url, "password": "not-shown", "tableName": "public.events"}}),
    )
    .await;
    let dest_id = d["id"].as_str().unwrap().to_string();
    // The password is sealed and never shown; the URL is.
    assert_eq!(d["config"]["url"], url.as_str());
    assert_eq!(d["config"]["tableName"], "public.events");
    assert_eq!(d["config"]["passwordSet"], true);
    assert!(!d.to_string().contains("not-shown"));

    let read = || async {
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        match client
            .query(
                "SELECT message_id, payload->>'n' FROM public.events ORDER BY created_at, message_id",
                &[],
            )
            .await
        {
            Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect(),
            Err(_) => Vec::new(), // the table is not there yet
        }
    };
    let first = send_many(&app, &app_id, 0, 40).await;
    let got = wait_for_ids(40, Duration::from_secs(20), read).await;
    let (_, now) = app
        .get(&format!("/app/{app_id}/destination/{dest_id}"))
        .await;
    assert_eq!(got, first, "in order, each once: {now}");

    // The connection is cut mid-stream: the destination retries and says why.
    proxy.cut();
    let second = send_many(&app, &app_id, 40, 70).await;
    let reason = failure_reason(&app, &app_id, &dest_id).await;
    assert!(reason.contains("PostgreSQL"), "{reason}");
    proxy.restore();
    let got = wait_for_ids(70, Duration::from_secs(30), read).await;
    let mut all = first.clone();
    all.extend(second);
    assert_eq!(got.len(), 70, "nothing lost, nothing doubled");
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_all = all.clone();
    sorted_all.sort();
    assert_eq!(sorted_got, sorted_all);
    let (_, d) = app
        .get(&format!("/app/{app_id}/destination/{dest_id}"))
        .await;
    assert_eq!(d["status"], "enabled", "{d}");

    // The connection test, before saving: a good config connects, a user the
    // database does not know does not, and says why.
    let (s, t) = app
        .post(
            &format!("/app/{app_id}/destination/test-connection"),
            json!({"type": "postgres", "config": {"url": url, "tableName": "public.events"}}),
        )
        .await;
    assert_eq!((s, t["ok"].as_bool()), (200, Some(true)), "{t}");
    let (s, t) = app
        .post(
            &format!("/app/{app_id}/destination/test-connection"),
            json!({"type": "postgres", "config": {"url": format!("postgres://nobody_here@127.0.0.1:{}/{}", proxy.port, db.name), "tableName": "events"}}),
        )
        .await;
    assert_eq!((s, t["ok"].as_bool()), (200, Some(false)), "{t}");
    assert!(t["reason"].as_str().unwrap().contains("nobody_here"), "{t}");
    let (_, list) = app.get(&format!("/app/{app_id}/destination")).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "a test saves nothing"
    );

    // Someone the database does not know: a clear reason.
    let bad = destination(
        &app,
        &app_id,
        json!({"type": "postgres", "config": {"url": format!("postgres://nobody_here@127.0.0.1:{}/{}", proxy.port, db.name), "tableName": "events"}}),
    )
    .await;
    // A new destination starts at the end of the stream: it needs a message.
    send_many(&app, &app_id, 70, 71).await;
    let reason = failure_reason(&app, &app_id, bad["id"].as_str().unwrap()).await;
    assert!(reason.contains("nobody_here"), "{reason}");

    // Bad configs are refused with the field.
    for (config, field) in [
        (json!({"url": "mysql://x/y", "tableName": "t"}), "url"),
        (
            json!({"url": "postgres://10.1.2.3/db", "tableName": "t"}),
            "url",
        ),
        (json!({"url": url, "tableName": "bad name"}), "tableName"),
        (json!({"url": url}), "tableName"),
        (
            json!({"url": url, "tableName": "t", "sslRootCert": "x"}),
            "sslRootCert",
        ),
        (json!({"url": url, "tableName": "t", "other": 1}), "other"),
    ] {
        let (s, e) = app
            .post(
                &format!("/app/{app_id}/destination"),
                json!({"type": "postgres", "config": config}),
            )
            .await;
        assert_eq!(s, 422, "{config}: {e}");
        assert_eq!(
            e["detail"][0]["loc"],
            json!(["body", "config", field]),
            "{e}"
        );
    }
}

/// A queue of its own on the local RabbitMQ, read by the test directly.
struct RabbitQueue {
    name: String,
    channel: lapin::Channel,
    _connection: lapin::Connection,
}

impl RabbitQueue {
    async fn declare(tag: &str) -> RabbitQueue {
        let connection = lapin::Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2F",
            lapin::ConnectionProperties::default(),
        )
        .await
        .expect("RabbitMQ answers on 127.0.0.1:5672 (guest/guest)");
        let channel = connection.create_channel().await.unwrap();
        let name = format!(
            "herald-{tag}-{}",
            herald_core::ids::random_base62(8).to_lowercase()
        );
        channel
            .queue_declare(
                name.clone().into(),
                lapin::options::QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        RabbitQueue {
            name,
            channel,
            _connection: connection,
        }
    }

    /// Takes what is in the queue now: the message ids, in order.
    async fn take(&self, into: &mut Vec<String>) {
        while let Some(m) = self
            .channel
            .basic_get(
                self.name.clone().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            let id = m.delivery.properties.message_id().as_ref().unwrap();
            let body: Value = serde_json::from_slice(&m.delivery.data).unwrap();
            assert_eq!(body["id"], id.as_str(), "the body names the same message");
            into.push(id.to_string());
        }
    }
}

impl Drop for RabbitQueue {
    fn drop(&mut self) {
        let (channel, name) = (self.channel.clone(), self.name.clone());
        tokio::spawn(async move {
            let _ = channel.queue_delete(name.into(), Default::default()).await;
        });
    }
}

/// The ids in the order they first arrived (a repeat is only ever a batch sent again,
/// with the same ids, so it is dropped here).
fn first_arrivals(got: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    got.iter().filter(|id| seen.insert(*id)).cloned().collect()
}

#[tokio::test]
async fn rabbitmq_destination_publishes_confirmed_messages_in_order_through_an_outage() {
    if !server_answers("RabbitMQ", 5672).await {
        return;
    }
    let queue = RabbitQueue::declare("dest").await;
    let proxy = TcpProxy::start("127.0.0.1:5672".into()).await;
    let app = spawn_app(&[RETRIES]).await;
    let app_id = app.app("rabbit-shop").await;
    let uri = format!("amqp://guest:guest@127.0.0.1:{}/%2F", proxy.port);
    let d = destination(
        &app,
        &app_id,
        json!({"type": "rabbitMq", "batchSize": 10, "config": {"uri": uri, "routingKey": queue.name}}),
    )
    .await;
    let dest_id = d["id"].as_str().unwrap().to_string();
    // The password is masked; mandatory is on unless turned off.
    assert_eq!(
        d["config"]["uri"],
        format!("amqp://guest:****@127.0.0.1:{}/%2F", proxy.port)
    );
    assert_eq!(d["config"]["mandatory"], true);

    let mut got = Vec::new();
    let first = send_many(&app, &app_id, 0, 40).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 40 && Instant::now() < deadline {
        queue.take(&mut got).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, first, "in order, each once");

    proxy.cut();
    let second = send_many(&app, &app_id, 40, 70).await;
    let reason = failure_reason(&app, &app_id, &dest_id).await;
    assert!(reason.contains("RabbitMQ"), "{reason}");
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first_arrivals(&got).len() < 70 && Instant::now() < deadline {
        queue.take(&mut got).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut all = first.clone();
    all.extend(second);
    assert_eq!(first_arrivals(&got), all, "nothing lost, in order");

    // The connection test says a wrong password is wrong before anything is saved.
    let (s, t) = app
        .post(
            &format!("/app/{app_id}/destination/test-connection"),
            json!({"type": "rabbitMq", "config": {"uri": format!("amqp://guest:wrong@127.0.0.1:{}/%2F", proxy.port), "routingKey": queue.name}}),
        )
        .await;
    assert_eq!((s, t["ok"].as_bool()), (200, Some(false)), "{t}");
    let (_, t) = app
        .post(
            &format!("/app/{app_id}/destination/test-connection"),
            json!({"type": "rabbitMq", "config": {"uri": uri, "routingKey": queue.name}}),
        )
        .await;
    assert_eq!(t["ok"], true, "{t}");

    // An unroutable message (no queue has that key) fails the batch: not dropped.
    let lost = destination(
        &app,
        &app_id,
        json!({"type": "rabbitMq", "config": {"uri": uri, "routingKey": "nobody-listens-here"}}),
    )
    .await;
    // A wrong password: a clear reason.
    let wrong = destination(
        &app,
        &app_id,
        json!({"type": "rabbitMq", "config": {"uri": format!("amqp://guest:wrong@127.0.0.1:{}/%2F", proxy.port), "routingKey": queue.name}}),
    )
    .await;
    send_many(&app, &app_id, 70, 71).await;
    let reason = failure_reason(&app, &app_id, lost["id"].as_str().unwrap()).await;
    assert!(reason.contains("no queue is bound"), "{reason}");
    let reason = failure_reason(&app, &app_id, wrong["id"].as_str().unwrap()).await;
    assert!(
        reason.contains("ACCESS_REFUSED") || reason.contains("auth"),
        "{reason}"
    );
    assert!(
        !reason.contains("wrong"),
        "the password is not in the reason: {reason}"
    );
}

#[tokio::test]
async fn redis_stream_destination_appends_each_batch_in_order_through_an_outage() {
    if !server_answers("Redis", 6379).await {
        return;
    }
    let key = format!(
        "herald-test-{}",
        herald_core::ids::random_base62(8).to_lowercase()
    );
    let proxy = TcpProxy::start("127.0.0.1:6379".into()).await;
    let app = spawn_app(&[RETRIES]).await;
    let app_id = app.app("redis-shop").await;
    let url = format!("redis://127.0.0.1:{}/0", proxy.port);
    let d = destination(
        &app,
        &app_id,
        json!({"type": "redisStream", "batchSize": 10, "config": {"url": url, "stream": key, "maxLen": 10000}}),
    )
    .await;
    let dest_id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["config"]["stream"], key.as_str());
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers on 127.0.0.1:6379");
    let read = || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .query_async::<redis::Value>(&mut conn)
                .await
                .ok()
                .and_then(|v| redis::from_redis_value(&v).ok())
                .unwrap_or_default();
            entries
                .into_iter()
                .map(|(_, fields)| {
                    let get = |name: &str| {
                        fields
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                            .unwrap()
                    };
                    let message: Value = serde_json::from_str(&get("message")).unwrap();
                    assert_eq!(message["id"], get("id").as_str());
                    get("id")
                })
                .collect::<Vec<String>>()
        }
    };
    let first = send_many(&app, &app_id, 0, 40).await;
    let got = wait_for_ids(40, Duration::from_secs(20), read).await;
    assert_eq!(got, first, "in order, each once");

    proxy.cut();
    let second = send_many(&app, &app_id, 40, 70).await;
    let reason = failure_reason(&app, &app_id, &dest_id).await;
    assert!(reason.contains("Redis"), "{reason}");
    proxy.restore();
    let mut all = first.clone();
    all.extend(second);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = read().await;
    while first_arrivals(&got).len() < 70 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = read().await;
    }
    assert_eq!(first_arrivals(&got), all, "nothing lost, in order");

    // A password Redis does not take: a clear reason, without the password.
    let wrong = destination(
        &app,
        &app_id,
        json!({"type": "redisStream", "config": {"url": format!("redis://someone:wrong-pass@127.0.0.1:{}/0", proxy.port), "stream": key}}),
    )
    .await;
    assert_eq!(
        wrong["config"]["url"],
        format!("redis://someone:****@127.0.0.1:{}/0", proxy.port)
    );
    send_many(&app, &app_id, 70, 71).await;
    let reason = failure_reason(&app, &app_id, wrong["id"].as_str().unwrap()).await;
    assert!(reason.contains("Redis"), "{reason}");
    assert!(!reason.contains("wrong-pass"), "{reason}");
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn nats_destination_publishes_to_jetstream_with_message_ids_through_an_outage() {
    if !server_answers("NATS", 4222).await {
        return;
    }
    let subject = format!(
        "herald.test.{}",
        herald_core::ids::random_base62(8).to_lowercase()
    );
    let stream_name = subject.replace('.', "_").to_uppercase();
    let nats = async_nats::connect("127.0.0.1:4222")
        .await
        .expect("NATS answers on 127.0.0.1:4222");
    let js = async_nats::jetstream::new(nats);
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("JetStream is on");
    let proxy = TcpProxy::start("127.0.0.1:4222".into()).await;
    let app = spawn_app(&[RETRIES]).await;
    let app_id = app.app("nats-shop").await;
    let url = format!("nats://127.0.0.1:{}", proxy.port);
    let d = destination(
        &app,
        &app_id,
        json!({"type": "nats", "batchSize": 10, "config": {"url": url, "subject": subject}}),
    )
    .await;
    let dest_id = d["id"].as_str().unwrap().to_string();
    let read = || {
        let stream = stream.clone();
        async move {
            let mut ids = Vec::new();
            let info = stream.get_info().await.unwrap();
            for seq in info.state.first_sequence..=info.state.last_sequence {
                if info.state.messages == 0 {
                    break;
                }
                if let Ok(m) = stream.get_raw_message(seq).await {
                    let id = m.headers.get("Nats-Msg-Id").map(|v| v.to_string()).unwrap();
                    let body: Value = serde_json::from_slice(&m.payload).unwrap();
                    assert_eq!(body["id"], id.as_str());
                    ids.push(id);
                }
            }
            ids
        }
    };
    let first = send_many(&app, &app_id, 0, 40).await;
    let got = wait_for_ids(40, Duration::from_secs(20), read).await;
    assert_eq!(got, first, "in order, each once");

    proxy.cut();
    let second = send_many(&app, &app_id, 40, 70).await;
    let reason = failure_reason(&app, &app_id, &dest_id).await;
    assert!(
        reason.contains("NATS") || reason.contains("JetStream"),
        "{reason}"
    );
    proxy.restore();
    let mut all = first.clone();
    all.extend(second);
    let got = wait_for_ids(70, Duration::from_secs(30), read).await;
    // JetStream drops a repeat by its Nats-Msg-Id: each message is there once.
    assert_eq!(got, all, "nothing lost, nothing doubled, in order");

    // A subject no stream takes: the batch fails, and says so.
    let nowhere = destination(
        &app,
        &app_id,
        json!({"type": "nats", "config": {"url": url, "subject": "herald.nobody.listens"}}),
    )
    .await;
    send_many(&app, &app_id, 70, 71).await;
    let reason = failure_reason(&app, &app_id, nowhere["id"].as_str().unwrap()).await;
    assert!(reason.contains("herald.nobody.listens"), "{reason}");
    js.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test]
async fn otel_tracing_destination_exports_a_span_per_message_in_its_trace() {
    let rx = Receiver::start().await;
    // The collector refuses the first export: the batch is retried, nothing is lost.
    rx.then([Reply::status(503).body("collector busy")]);
    rx.otherwise(Reply::status(200).body("{}"));
    let app = spawn_app(&[RETRIES]).await;
    let app_id = app.app("traced-shop").await;
    let d = destination(
        &app,
        &app_id,
        json!({"type": "otelTracing", "batchSize": 10, "config": {"url": rx.url("/v1/traces"), "headers": {"Authorization": "Bearer collector-secret", "X-Team": "ops"}}}),
    )
    .await;
    let dest_id = d["id"].as_str().unwrap().to_string();
    // Shown as an endpoint's headers: the sensitive one by name only.
    assert_eq!(
        d["config"]["headers"],
        json!({"headers": {"X-Team": "ops"}, "sensitive": ["Authorization"]})
    );
    assert!(!d.to_string().contains("collector-secret"));
    let sent = send_many(&app, &app_id, 0, 25).await;
    let reason = failure_reason(&app, &app_id, &dest_id).await;
    assert!(reason.contains("503"), "{reason}");
    // Every request after the refused one, until all 25 spans are there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut exported = Vec::new();
    while exported.len() < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        exported.clear();
        for request in rx.received().iter().skip(1) {
            assert_eq!(request.header("authorization"), "Bearer collector-secret");
            assert_eq!(request.header("x-team"), "ops");
            let body = request.json();
            for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .unwrap()
            {
                let attr = |key: &str| {
                    span["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|a| a["key"] == key)
                        .map(|a| a["value"]["stringValue"].as_str().unwrap().to_string())
                        .unwrap()
                };
                let id = attr("herald.message_id");
                // The span is in the message's own trace.
                assert_eq!(
                    span["traceId"],
                    herald_core::trace::hex(&herald_core::trace::trace_id(&id)).as_str()
                );
                assert_eq!(attr("herald.event_type"), "order.created");
                let payload: Value = serde_json::from_str(&attr("herald.payload")).unwrap();
                assert!(payload["n"].is_number());
                exported.push(id);
            }
        }
    }
    assert_eq!(exported, sent, "every message once, in order");

    // A collector at an address deliveries may not reach is refused when saved.
    let (s, e) = app
        .post(
            &format!("/app/{app_id}/destination"),
            json!({"type": "otelTracing", "config": {"url": "http://169.254.169.254/v1/traces"}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["detail"][0]["loc"], json!(["body", "config", "url"]));
}

/// An S3/SQS/SNS-compatible server (moto, from the test venv that scripts/test.sh
/// makes) on a loopback port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    async fn start() -> Moto {
        let python = std::env::var("HERALD_TEST_PYTHON")
            .expect("HERALD_TEST_PYTHON names the venv's python, with moto (scripts/test.sh)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Moto { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A request for `service` as moto routes it (by the credential scope; moto checks
    /// no signature).
    fn request(&self, client: &reqwest::Client, service: &str) -> reqwest::RequestBuilder {
        client
            .post(format!("{}/", self.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
    }

    async fn sqs(&self, client: &reqwest::Client, action: &str, body: Value) -> Value {
        let r = self
            .request(client, "sqs")
            .header("x-amz-target", format!("AmazonSQS.{action}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Takes what the queue has now (deleting it, so a FIFO group moves on): the
    /// messages' bodies.
    async fn drain(&self, client: &reqwest::Client, queue_url: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs(
                    client,
                    "ReceiveMessage",
                    json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10}),
                )
                .await;
            let messages = got["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(serde_json::from_str(m["Body"].as_str().unwrap()).unwrap());
                self.sqs(
                    client,
                    "DeleteMessage",
                    json!({"QueueUrl": queue_url, "ReceiptHandle": m["ReceiptHandle"]}),
                )
                .await;
            }
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aws_config(endpoint: &str, extra: Value) -> Value {
    let mut config = json!({
        "region": "us-east-1",
        "accessKeyId": "AKIDHERALDTEST",
        "secretAccessKey": "not-shown-secret",
        "endpointUrl": endpoint,
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    config
}

#[tokio::test]
async fn sqs_sns_and_s3_destinations_deliver_to_a_compatible_server() {
    let moto = Moto::start().await;
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", moto.port)).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let client = reqwest::Client::new();
    let app = spawn_app(&[RETRIES]).await;
    let app_id = app.app("aws-shop").await;

    // SQS, a FIFO queue: in order, each message once (its id is the deduplication id).
    let queue = moto
        .sqs(
            &client,
            "CreateQueue",
            json!({"QueueName": "herald-orders.fifo", "Attributes": {"FifoQueue": "true"}}),
        )
        .await;
    let queue_url = queue["QueueUrl"].as_str().unwrap().to_string();
    let sqs = destination(
        &app,
        &app_id,
        json!({"type": "sqs", "batchSize": 10, "config": aws_config(&endpoint, json!({"queueUrl": queue_url}))}),
    )
    .await;
    assert_eq!(sqs["config"]["secretAccessKeySet"], true);
    assert_eq!(sqs["config"]["accessKeyId"], "AKIDHERALDTEST");
    assert!(!sqs.to_string().contains("not-shown-secret"));

    // SNS: a topic with a queue subscribed to it, to read what was published.
    let topic = moto
        .request(&client, "sns")
        .body("Action=CreateTopic&Name=herald-events&Version=2010-03-31")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let topic_arn = topic
        .split("<TopicArn>")
        .nth(1)
        .and_then(|t| t.split("</TopicArn>").next())
        .unwrap()
        .to_string();
    let sink = moto
        .sqs(
            &client,
            "CreateQueue",
            json!({"QueueName": "herald-sns-sink"}),
        )
        .await;
    let sink_url = sink["QueueUrl"].as_str().unwrap().to_string();
    let subscribe = format!(
        "Action=Subscribe&Version=2010-03-31&TopicArn={topic_arn}&Protocol=sqs&Endpoint=arn:aws:sqs:us-east-1:123456789012:herald-sns-sink&Attributes.entry.1.key=RawMessageDelivery&Attributes.entry.1.value=true"
    );
    let r = moto
        .request(&client, "sns")
        .body(subscribe)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let sns = destination(
        &app,
        &app_id,
        json!({"type": "sns", "batchSize": 10, "config": aws_config(&endpoint, json!({"topicArn": topic_arn}))}),
    )
    .await;

    // S3: a bucket; each batch is an object of JSON Lines.
    let r = client
        .put(format!("{}/herald-archive", moto.url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let s3 = destination(
        &app,
        &app_id,
        json!({"type": "amazonS3", "batchSize": 10, "config": aws_config(&endpoint, json!({"bucket": "herald-archive"}))}),
    )
    .await;

    // The connection test: each reaches what it names, and a bucket that is not there
    // is said to be missing.
    for (kind, extra) in [
        ("sqs", json!({"queueUrl": queue_url})),
        ("sns", json!({"topicArn": topic_arn})),
        ("amazonS3", json!({"bucket": "herald-archive"})),
    ] {
        let (s, t) = app
            .post(
                &format!("/app/{app_id}/destination/test-connection"),
                json!({"type": kind, "config": aws_config(&endpoint, extra)}),
            )
            .await;
        assert_eq!((s, t["ok"].as_bool()), (200, Some(true)), "{kind}: {t}");
    }
    let (_, t) = app
        .post(
            &format!("/app/{app_id}/destination/test-connection"),
            json!({"type": "amazonS3", "config": aws_config(&endpoint, json!({"bucket": "no-such-bucket"}))}),
        )
        .await;
    assert_eq!(t["ok"], false, "{t}");
    assert!(
        t["reason"].as_str().unwrap().contains("NoSuchBucket"),
        "{t}"
    );

    let sent = send_many(&app, &app_id, 0, 25).await;
    let ids_of = |bodies: &[Value]| -> Vec<String> {
        bodies
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    // SQS: all 25, in order.
    let mut from_sqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while from_sqs.len() < 25 && Instant::now() < deadline {
        from_sqs.extend(moto.drain(&client, &queue_url).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ids_of(&from_sqs), sent, "SQS: in order, each once");
    // SNS: all 25 reached the subscribed queue.
    let mut from_sns = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while from_sns.len() < 25 && Instant::now() < deadline {
        from_sns.extend(moto.drain(&client, &sink_url).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got = ids_of(&from_sns);
    got.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(got, want, "SNS: each once");
    let (_, sns_now) = app
        .get(&format!(
            "/app/{app_id}/destination/{}",
            sns["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(sns_now["failureReason"], Value::Null, "{sns_now}");
    // S3: objects whose lines, object by object, are the messages in order.
    let read_s3 = || async {
        let list = client
            .get(format!("{}/herald-archive?list-type=2", moto.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let keys: Vec<String> = list
            .split("<Key>")
            .skip(1)
            .map(|k| k.split("</Key>").next().unwrap().to_string())
            .collect();
        let mut ids = Vec::new();
        for key in &keys {
            assert!(key.starts_with(&format!("{app_id}/")), "{key}");
            // moto answers an object's GET only to a request that names S3 (in its
            // credential scope).
            let text = client
                .get(format!("{}/herald-archive/{key}", moto.url()))
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            for line in text.lines() {
                let m: Value = serde_json::from_str(line).unwrap();
                ids.push(m["id"].as_str().unwrap().to_string());
            }
        }
        ids
    };
    let from_s3 = wait_for_ids(25, Duration::from_secs(20), read_s3).await;
    let mut got = from_s3.clone();
    got.sort();
    let (_, s3_now) = app
        .get(&format!(
            "/app/{app_id}/destination/{}",
            s3["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(got, want, "S3: each once: {s3_now}");

    // A batch transformation shapes the object and chooses its key.
    let keyed = destination(
        &app,
        &app_id,
        json!({"type": "amazonS3", "batchSize": 10, "config": aws_config(&endpoint, json!({"bucket": "herald-archive"}))}),
    )
    .await;
    let code = "function handler(input) { return { data: input.events.map((e) => e.id), config: { key: 'exports/' + input.events[0].id + '.json' } }; }";
    let (s, b) = app
        .call(
            "PATCH",
            &format!(
                "/app/{app_id}/destination/{}/transformation",
                keyed["id"].as_str().unwrap()
            ),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let shaped = send_many(&app, &app_id, 100, 103).await;
    let read_exports = || async {
        let list = client
            .get(format!(
                "{}/herald-archive?list-type=2&prefix=exports/",
                moto.url()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut ids = Vec::new();
        for key in list
            .split("<Key>")
            .skip(1)
            .map(|k| k.split("</Key>").next().unwrap())
        {
            let text = client
                .get(format!("{}/herald-archive/{key}", moto.url()))
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let batch: Vec<String> = serde_json::from_str(&text).unwrap();
            assert_eq!(key, format!("exports/{}.json", batch[0]));
            ids.extend(batch);
        }
        ids
    };
    let mut exported = wait_for_ids(3, Duration::from_secs(20), read_exports).await;
    exported.sort();
    let mut want_shaped = shaped.clone();
    want_shaped.sort();
    assert_eq!(exported, want_shaped);
    // Those went to the queue too: take them before the outage.
    let mut between = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while between.len() < 3 && Instant::now() < deadline {
        between.extend(moto.drain(&client, &queue_url).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ids_of(&between), shaped);

    // Cut mid-stream, then back: SQS loses nothing and keeps the order.
    proxy.cut();
    let more = send_many(&app, &app_id, 25, 35).await;
    let reason = failure_reason(&app, &app_id, sqs["id"].as_str().unwrap()).await;
    assert!(!reason.is_empty());
    proxy.restore();
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while after.len() < 10 && Instant::now() < deadline {
        after.extend(moto.drain(&client, &queue_url).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ids_of(&after),
        more,
        "SQS after the outage: in order, none lost or doubled"
    );

    // The queue deleted: a clear reason.
    moto.sqs(&client, "DeleteQueue", json!({"QueueUrl": queue_url}))
        .await;
    send_many(&app, &app_id, 35, 36).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, d) = app
            .get(&format!(
                "/app/{app_id}/destination/{}",
                sqs["id"].as_str().unwrap()
            ))
            .await;
        let reason = d["failureReason"].as_str().unwrap_or_default().to_string();
        if reason.contains("SQS answered 400") {
            assert!(
                reason.contains("NonExistentQueue") || reason.contains("does not exist"),
                "{reason}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no clear reason: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A NATS server of this test's own (the machine's `nats-server`, with a user and
/// JetStream in a temporary directory), on a loopback port.
struct OwnNats {
    child: std::process::Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn nats_destination_with_a_wrong_password_says_so_and_a_right_one_delivers() {
    let dir = TempDir::new("nats");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    if std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("HERALD_REQUIRE_BROKERS").is_none(),
            "HERALD_REQUIRE_BROKERS is set but nats-server is not installed"
        );
        eprintln!("nats-server is not installed: this destination test is skipped");
        return;
    }
    let child = std::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&dir.0)
        .args(["--user", "herald", "--pass", "right-pass"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server is installed (it runs the machine's NATS too)");
    let nats = OwnNats {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match async_nats::ConnectOptions::with_user_and_password(
            "herald".into(),
            "right-pass".into(),
        )
        .connect(format!("127.0.0.1:{}", nats.port))
        .await
        {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("our nats-server did not start: {e}"),
        }
    };
    let js = async_nats::jetstream::new(client);
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "AUTHED".into(),
            subjects: vec!["authed.events".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let app = spawn_app(&[RETRIES]).await;
    let app_id = app.app("nats-auth").await;
    let wrong = destination(
        &app,
        &app_id,
        json!({"type": "nats", "config": {"url": format!("nats://herald:wrong-pass@127.0.0.1:{}", nats.port), "subject": "authed.events"}}),
    )
    .await;
    assert_eq!(
        wrong["config"]["url"],
        format!("nats://herald:****@127.0.0.1:{}", nats.port)
    );
    let right = destination(
        &app,
        &app_id,
        json!({"type": "nats", "config": {"url": format!("nats://herald:right-pass@127.0.0.1:{}", nats.port), "subject": "authed.events"}}),
    )
    .await;
    let sent = send_many(&app, &app_id, 0, 5).await;
    let reason = failure_reason(&app, &app_id, wrong["id"].as_str().unwrap()).await;
    assert!(reason.to_lowercase().contains("auth"), "{reason}");
    assert!(!reason.contains("wrong-pass"), "{reason}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = stream.clone().info().await.unwrap().state.messages;
        if info >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the right password delivered {info} of 5"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, d) = app
        .get(&format!(
            "/app/{app_id}/destination/{}",
            right["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(d["failureReason"], Value::Null, "{d}");
    assert_eq!(sent.len(), 5);
}
