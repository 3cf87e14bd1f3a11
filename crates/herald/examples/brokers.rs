//! The broker destinations benchmark of BENCHMARKS.md: messages per second that Herald
//! writes into RabbitMQ, PostgreSQL and NATS (JetStream) with batches of 100, beside a
//! plain client of each system writing the same messages the same way (batches of 100,
//! each confirmed: publisher confirms, one insert statement, JetStream acks) in the same
//! minutes. The ratio is the figure.
//!
//! Starts a release `herald serve` on a fresh data directory, ingests N messages into an
//! application with one disabled destination per system, then for each system: (1) the
//! plain client writes the N messages into a queue/table/stream of its own, timed;
//! (2) Herald's destination is enabled and timed from its first message arriving to the
//! last (the wait for the supervisor to lease it is left out, as in examples/streams).
//! The servers are the local ones (RabbitMQ 5672 guest/guest, PostgreSQL 5432 user
//! postgres, NATS 4222 with JetStream). Prints one JSON line.
//!
//!   cargo build --release -p herald --bin herald --example brokers
//!   target/release/examples/brokers target/release/herald 50000

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

mod support;

use support::HeraldServer;

const TOKEN: &str = "brokers-bench-token-0123456789";
const BATCH: usize = 100;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let herald = args
        .next()
        .expect("usage: brokers HERALD_BINARY [MESSAGES]");
    let messages: u64 = args.next().map_or(50_000, |n| n.parse().expect("a number"));
    let tag = format!("bench{}", std::process::id());

    let server = HeraldServer::start(&herald, 18_173, TOKEN, "brokers").await;
    let api = server.api.clone();
    let client = reqwest::Client::new();
    let app = server
        .call(reqwest::Method::POST, "/app", json!({"name": "brokers"}))
        .await;
    let app_id = app["id"].as_str().unwrap().to_string();

    // Where each system receives: a queue, a table and a stream for Herald, and others
    // of the same kind for the plain client.
    let amqp = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ on 127.0.0.1:5672");
    let channel = amqp.create_channel().await.unwrap();
    for q in [format!("{tag}-herald"), format!("{tag}-plain")] {
        channel
            .queue_declare(
                q.into(),
                lapin::options::QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
    }
    let (pg, connection) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL on 127.0.0.1:5432");
    tokio::spawn(connection);
    let nats = async_nats::connect("127.0.0.1:4222")
        .await
        .expect("NATS on 127.0.0.1:4222");
    let js = async_nats::jetstream::new(nats);
    for who in ["herald", "plain"] {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: format!("{tag}_{who}").to_uppercase(),
            subjects: vec![format!("{tag}.{who}")],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let destinations = [
        (
            "rabbitMq",
            json!({"uri": "amqp://guest:guest@127.0.0.1:5672/%2F", "routingKey": format!("{tag}-herald")}),
        ),
        (
            "postgres",
            json!({"url": "postgres://postgres@127.0.0.1:5432/postgres", "tableName": format!("{tag}_herald")}),
        ),
        (
            "nats",
            json!({"url": "nats://127.0.0.1:4222", "subject": format!("{tag}.herald")}),
        ),
    ];
    let mut ids = Vec::new();
    for (kind, config) in &destinations {
        let d = server
            .call(
                reqwest::Method::POST,
                &format!("/app/{app_id}/destination"),
                json!({"type": kind, "batchSize": BATCH, "status": "disabled", "config": config}),
            )
            .await;
        ids.push(d["id"].as_str().unwrap().to_string());
    }

    // The stream: N messages of 256 bytes of padding.
    let next = Arc::new(AtomicU64::new(0));
    let payload = json!({"padding": "x".repeat(256)});
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (client, next, payload) = (client.clone(), next.clone(), payload.clone());
        let url = format!("{api}/app/{app_id}/msg");
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < messages {
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"eventType": "bench.test", "payload": payload}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    // What the plain clients write: the same objects Herald writes.
    let bodies: Vec<(String, String)> = (0..messages)
        .map(|i| {
            let id = format!("msg_plain_{i:08}");
            let body = json!({"id": id, "eventType": "bench.test", "eventId": null,
                "timestamp": "2026-12-01T00:00:00.000Z", "channels": null, "payload": payload});
            (id, body.to_string())
        })
        .collect();

    let mut results = serde_json::Map::new();
    for (i, (kind, _)) in destinations.iter().enumerate() {
        // (1) The plain client.
        let started = Instant::now();
        match *kind {
            "rabbitMq" => {
                channel.confirm_select(Default::default()).await.ok();
                for chunk in bodies.chunks(BATCH) {
                    let mut confirms = Vec::new();
                    for (id, body) in chunk {
                        let props = lapin::BasicProperties::default()
                            .with_message_id(id.clone().into())
                            .with_content_type("application/json".into())
                            .with_delivery_mode(2);
                        confirms.push(
                            channel
                                .basic_publish(
                                    "".into(),
                                    format!("{tag}-plain").into(),
                                    lapin::options::BasicPublishOptions {
                                        mandatory: true,
                                        ..Default::default()
                                    },
                                    body.as_bytes(),
                                    props,
                                )
                                .await
                                .unwrap(),
                        );
                    }
                    for c in confirms {
                        c.await.unwrap();
                    }
                }
            }
            "postgres" => {
                pg.batch_execute(&format!(
                    "CREATE TABLE {tag}_plain (message_id text PRIMARY KEY, event_type text NOT NULL, \
                     event_id text, channels jsonb, payload jsonb NOT NULL, created_at timestamptz NOT NULL)"
                ))
                .await
                .unwrap();
                let insert = format!(
                    "INSERT INTO {tag}_plain (message_id, event_type, event_id, channels, payload, created_at) \
                     SELECT m, 'bench.test', NULL, NULL, p::jsonb, now() FROM unnest($1::text[], $2::text[]) AS x(m, p) \
                     ON CONFLICT (message_id) DO NOTHING"
                );
                for chunk in bodies.chunks(BATCH) {
                    let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
                    let payloads: Vec<String> = chunk.iter().map(|_| payload.to_string()).collect();
                    pg.execute(&insert, &[&ids, &payloads]).await.unwrap();
                }
            }
            _ => {
                for chunk in bodies.chunks(BATCH) {
                    let mut acks = Vec::new();
                    for (id, body) in chunk {
                        let publish = async_nats::jetstream::message::PublishMessage::build()
                            .message_id(id)
                            .payload(body.clone().into());
                        acks.push(
                            js.send_publish(format!("{tag}.plain"), publish)
                                .await
                                .unwrap(),
                        );
                    }
                    for a in acks {
                        a.await.unwrap();
                    }
                }
            }
        }
        let plain_secs = started.elapsed().as_secs_f64();

        // (2) Herald's destination, from its first message to its last.
        server
            .call(
                reqwest::Method::PATCH,
                &format!("/app/{app_id}/destination/{}", ids[i]),
                json!({"type": kind, "status": "enabled"}),
            )
            .await;
        let enabled = Instant::now();
        let mut first: Option<Instant> = None;
        loop {
            let n = count(kind, &tag, &channel, &pg, &js).await;
            if n > 0 && first.is_none() {
                first = Some(Instant::now());
            }
            if n >= messages {
                break;
            }
            assert!(
                enabled.elapsed() < Duration::from_secs(1800),
                "{kind} stalled at {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let herald_secs = first.expect("messages arrived").elapsed().as_secs_f64();
        let herald_rps = messages as f64 / herald_secs;
        let plain_rps = messages as f64 / plain_secs;
        results.insert(
            kind.to_string(),
            json!({
                "herald_rps": herald_rps.round(),
                "plain_rps": plain_rps.round(),
                "ratio": (herald_rps / plain_rps * 100.0).round() / 100.0,
            }),
        );
    }

    // Clean up what was made on the shared servers.
    for q in [format!("{tag}-herald"), format!("{tag}-plain")] {
        let _ = channel.queue_delete(q.into(), Default::default()).await;
    }
    let _ = pg
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {tag}_herald; DROP TABLE IF EXISTS {tag}_plain"
        ))
        .await;
    for who in ["herald", "plain"] {
        let _ = js
            .delete_stream(format!("{tag}_{who}").to_uppercase())
            .await;
    }
    println!(
        "{}",
        json!({"messages": messages, "batch_size": BATCH, "results": results})
    );
}

/// How many messages Herald's destination of `kind` has written so far.
async fn count(
    kind: &str,
    tag: &str,
    channel: &lapin::Channel,
    pg: &tokio_postgres::Client,
    js: &async_nats::jetstream::Context,
) -> u64 {
    match kind {
        "rabbitMq" => channel
            .queue_declare(
                format!("{tag}-herald").into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .map_or(0, |q| u64::from(q.message_count())),
        "postgres" => pg
            .query_one(&format!("SELECT count(*) FROM {tag}_herald"), &[])
            .await
            .map_or(0, |r| r.get::<_, i64>(0) as u64),
        _ => {
            let mut stream = js
                .get_stream(format!("{tag}_herald").to_uppercase())
                .await
                .unwrap();
            stream.info().await.map_or(0, |i| i.state.messages)
        }
    }
}
