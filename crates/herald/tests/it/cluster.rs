//! Several `herald serve` processes on one PostgreSQL database: nodes share the work, a
//! node killed with SIGKILL has its work finished by the others, roles split ingest from
//! delivery, and a database outage costs 503s while it lasts but loses nothing.
//! These run when `HERALD_TEST_DATABASE_URL` is set (`.ci/run` sets it).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::pg::{host_port, via, ScratchDb, TcpProxy};

/// The main key every node of a test cluster shares.
const CLUSTER_MAIN_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A node on `db_url`, named `name` (its deliveries carry it as User-Agent), with a
/// short lease so that a dead node's work comes back quickly.
fn node(db_url: &str, name: &str, extra: &[(&str, &str)]) -> (HeraldProcess, TempDir) {
    let dir = TempDir::new(name);
    let mut env = vec![
        ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("HERALD_DATABASE_URL", db_url),
        ("HERALD_MAIN_KEY", CLUSTER_MAIN_KEY),
        ("HERALD_USER_AGENT", name),
        ("HERALD_REQUEST_TIMEOUT_SECS", "2"),
        ("HERALD_LEASE_SECS", "8"),
        ("HERALD_RETRY_SCHEDULE_SECS", "0.2,0.5,1,1,1"),
    ];
    env.extend_from_slice(extra);
    (HeraldProcess::start(&dir.0, &env), dir)
}

async fn post(client: &reqwest::Client, url: &str, path: &str, body: Value) -> (u16, Value) {
    match client
        .post(format!("{url}/api/v1{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

/// Creates an application with one endpoint at `rx` through `url`; returns the app id
/// and the endpoint's signing secret.
async fn app_with_endpoint(client: &reqwest::Client, url: &str, rx: &Receiver) -> (String, String) {
    let (s, app) = post(client, url, "/app", json!({"name": "cluster"})).await;
    assert_eq!(s, 201, "{app}");
    let a = app["id"].as_str().unwrap().to_string();
    let (s, ep) = post(
        client,
        url,
        &format!("/app/{a}/endpoint"),
        json!({"url": rx.url("/")}),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let secret: Value = client
        .get(format!(
            "{url}/api/v1/app/{a}/endpoint/{}/secret",
            ep["id"].as_str().unwrap()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (a, secret["key"].as_str().unwrap().to_string())
}

/// Waits until every id in `ids` reached the receiver.
async fn all_delivered(rx: &Receiver, ids: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen: HashSet<String> = rx
            .received()
            .iter()
            .map(|d| d.header("webhook-id").to_string())
            .collect();
        let missing = ids.iter().filter(|id| !seen.contains(*id)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted messages never arrived",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_the_work_and_finish_a_killed_nodes_deliveries() {
    let Some(db) = ScratchDb::create("cluster").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: multi-node test skipped");
        return;
    };
    let rx = Receiver::start().await;
    // Slow enough answers, and few attempts in flight per node, that every node has
    // work queued in memory (leased in the database) when one is killed.
    rx.otherwise(Reply::status(200).delay(Duration::from_millis(40)));
    let small = [("HERALD_MAX_IN_FLIGHT", "8")];
    let mut nodes: Vec<(HeraldProcess, TempDir)> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| node(&db.url, n, &small))
        .collect();
    let urls: Vec<String> = nodes.iter().map(|(p, _)| p.url.clone()).collect();
    let client = reqwest::Client::new();
    let (a, secret) = app_with_endpoint(&client, &urls[0], &rx).await;

    // Four senders per node; each message is tagged with the node that accepted it.
    let accepted: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        for w in 0..4 {
            let (client, url, a, accepted, stop) = (
                client.clone(),
                url.clone(),
                a.clone(),
                accepted.clone(),
                stop.clone(),
            );
            senders.push(tokio::spawn(async move {
                for i in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let body = json!({"eventType": "x", "payload": {"node": n, "w": w, "i": i}});
                    let (s, m) = post(&client, &url, &format!("/app/{a}/msg"), body).await;
                    if s != 202 {
                        return;
                    }
                    let id = m["id"].as_str().unwrap().to_string();
                    accepted.lock().unwrap().push((id, n));
                }
            }));
        }
    }
    let wait_accepted = |n: usize| {
        let accepted = accepted.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while accepted.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "ingest too slow");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_accepted(600).await;
    nodes[1].0.sigkill();
    let killed_at = Instant::now();
    wait_accepted(1200).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let ids: Vec<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    // The killed node's leases run 8 s; the others take its work over after that.
    all_delivered(&rx, &ids, Duration::from_secs(90)).await;

    let received = rx.received();
    let mut by_id: HashMap<&str, Vec<&Received>> = HashMap::new();
    for d in &received {
        by_id.entry(d.header("webhook-id")).or_default().push(d);
    }
    let agents: HashSet<&str> = received.iter().map(|d| d.header("user-agent")).collect();
    assert_eq!(agents.len(), 3, "every node delivered: {agents:?}");
    let accepted_by_b: HashSet<&str> = accepted
        .iter()
        .filter(|(_, n)| *n == 1)
        .map(|(id, _)| id.as_str())
        .collect();
    let taken_over = by_id
        .iter()
        .filter(|(id, ds)| {
            accepted_by_b.contains(*id) && ds.iter().all(|d| d.header("user-agent") != "node-b")
        })
        .count();
    assert!(
        taken_over > 0,
        "node-b's unfinished deliveries were finished by the other nodes"
    );
    let mut duplicates = 0;
    for (id, ds) in &by_id {
        if ds.len() > 1 {
            duplicates += ds.len() - 1;
            let seen: Vec<String> = ds
                .iter()
                .map(|d| {
                    format!(
                        "{} at kill{:+}ms",
                        d.header("user-agent"),
                        ms_from(killed_at, d.at)
                    )
                })
                .collect();
            assert_eq!(ds.len(), 2, "{id} delivered {} times: {seen:?}", ds.len());
            // The first went out from node-b before it died (the receiver may read it a
            // moment after the kill, so its arrival time proves nothing); the second from
            // the node that took the delivery over once node-b's lease ran out.
            assert!(
                ds[0].header("user-agent") == "node-b" && ds[1].header("user-agent") != "node-b",
                "{id} was delivered twice but was not in flight on the killed node: {seen:?}"
            );
            assert!(
                ds[1].at >= killed_at + Duration::from_secs(5),
                "{id} was taken over before node-b's lease ran out: {seen:?}"
            );
        }
    }
    for d in &received {
        assert!(verify_with_standardwebhooks(&secret, d), "bad signature");
    }
    eprintln!(
        "accepted {} messages on 3 nodes (node-b killed after 600); received {} deliveries, {} unique, \
         {duplicates} duplicates (in flight on node-b at the kill), {taken_over} of node-b's finished by the others",
        ids.len(),
        received.len(),
        by_id.len()
    );
    // Every attempt reaches the shared log (recording follows delivery by a moment),
    // and nothing is left pending.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unfinished = db
            .count("SELECT count(*) FROM delivery WHERE status <> 0")
            .await;
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} deliveries never recorded as succeeded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_node_and_a_worker_node_split_ingest_and_delivery() {
    let Some(db) = ScratchDb::create("roles").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: roles test skipped");
        return;
    };
    let rx = Receiver::start().await;
    let (api, _d1) = node(&db.url, "api-node", &[("HERALD_ROLE", "api")]);
    // A worker that would only look at the queue every 60 s on its own: deliveries that
    // arrive quickly were announced to it (LISTEN/NOTIFY).
    let (worker, _d2) = node(
        &db.url,
        "worker-node",
        &[
            ("HERALD_ROLE", "worker"),
            ("HERALD_POLL_INTERVAL_MS", "60000"),
        ],
    );
    let client = reqwest::Client::new();
    let (a, _) = app_with_endpoint(&client, &api.url, &rx).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (s, m) = post(
            &client,
            &api.url,
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {"i": i}}),
        )
        .await;
        assert_eq!(s, 202);
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    all_delivered(&rx, &ids, Duration::from_secs(20)).await;
    assert!(rx
        .received()
        .iter()
        .all(|d| d.header("user-agent") == "worker-node"));
    // The shared tables hold sealed signing keys and hashed tokens only.
    let plain = "SELECT count(*) FROM endpoint WHERE secrets LIKE '%whsec_%'";
    assert_eq!(db.count(plain).await, 0);
    let sealed = "SELECT count(*) FROM endpoint WHERE secrets LIKE '%sealed1:%'";
    assert_eq!(db.count(sealed).await, 1);
    let token = format!("SELECT count(*) FROM api_token WHERE hash = '{ADMIN_TOKEN}'");
    assert_eq!(db.count(&token).await, 0);
    assert_eq!(db.count("SELECT count(*) FROM api_token").await, 1);

    // The worker serves health, not the API.
    let health = client
        .get(format!("{}/api/v1/health", worker.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["engine"]["status"], "running");
    let api_health: Value = client
        .get(format!("{}/api/v1/health", api.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        api_health["engine"]["status"], "off",
        "an api node does not deliver"
    );
    let r = client
        .get(format!("{}/api/v1/app", worker.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_loses_nothing() {
    let Some(db) = ScratchDb::create("outage").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: outage test skipped");
        return;
    };
    let proxy = TcpProxy::start(host_port(&db.url)).await;
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(200).delay(Duration::from_millis(20)));
    let (p, _dir) = node(&via(&db.url, proxy.port), "outage-node", &[]);
    let client = reqwest::Client::new();
    let (a, _) = app_with_endpoint(&client, &p.url, &rx).await;

    let send = |i: usize| {
        let (client, url, a) = (client.clone(), p.url.clone(), a.clone());
        async move {
            post(
                &client,
                &url,
                &format!("/app/{a}/msg"),
                json!({"eventType": "x", "payload": {"i": i}}),
            )
            .await
        }
    };
    let mut accepted = Vec::new();
    for i in 0..50 {
        let (s, m) = send(i).await;
        assert_eq!(s, 202);
        accepted.push(m["id"].as_str().unwrap().to_string());
    }
    proxy.cut();
    // Two seconds without a database, under a steady trickle of messages.
    let mut refused = 0;
    let mut tried = 0;
    let cut_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < cut_until {
        tried += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (s, m) = send(1000 + tried).await;
        match s {
            202 => accepted.push(m["id"].as_str().unwrap().to_string()),
            503 => {
                assert_eq!(m["code"], "service_unavailable", "{m}");
                assert!(m["detail"].as_str().is_some_and(|d| !d.is_empty()), "{m}");
                refused += 1;
            }
            other => panic!("while the database is away: {other} {m}"),
        }
    }
    assert!(
        refused == tried,
        "ingest answered 503 while the database was away ({refused}/{tried})"
    );
    let health = client
        .get(format!("{}/api/v1/health", p.url))
        .send()
        .await
        .unwrap();
    assert_ne!(health.status(), 200, "health reports the database");

    proxy.restore();
    // Back by itself: keep sending until accepted again, then some more.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 70;
    loop {
        let (s, m) = send(i).await;
        i += 1;
        if s == 202 {
            accepted.push(m["id"].as_str().unwrap().to_string());
            break;
        }
        assert_eq!(s, 503, "{m}");
        assert!(Instant::now() < deadline, "ingest did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for j in 0..50 {
        let (s, m) = send(i + j).await;
        assert_eq!(s, 202, "{m}");
        accepted.push(m["id"].as_str().unwrap().to_string());
    }
    all_delivered(&rx, &accepted, Duration::from_secs(30)).await;
    eprintln!(
        "outage: {} accepted, {refused} refused with 503 while cut, all delivered",
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_start_or_is_waited_for() {
    let Some(db) = ScratchDb::create("startup").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: start-up test skipped");
        return;
    };
    let proxy = TcpProxy::start(host_port(&db.url)).await;
    proxy.cut();
    let url = via(&db.url, proxy.port);
    let dir = TempDir::new("startup");
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--data-dir",
        ])
        .arg(&dir.0)
        .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot reach PostgreSQL at postgres://127.0.0.1:"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "failed fast");

    // With --wait-for-db it waits, and starts once the database answers.
    let restore_later = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        proxy.restore();
    };
    let (dir_path, url2) = (dir.0.clone(), url.clone());
    let start = tokio::task::spawn_blocking(move || {
        HeraldProcess::start(
            &dir_path,
            &[
                ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN),
                ("HERALD_DATABASE_URL", &url2),
                ("HERALD_WAIT_FOR_DB_SECS", "30"),
                ("HERALD_MAIN_KEY", CLUSTER_MAIN_KEY),
            ],
        )
    });
    let (p, ()) = tokio::join!(start, restore_later);
    let p = p.unwrap();
    let health = reqwest::get(format!("{}/api/v1/health", p.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_node_are_seen_at_once_by_another() {
    let Some(db) = ScratchDb::create("caches").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: cross-node test skipped");
        return;
    };
    let rx = Receiver::start().await;
    let (a_node, _d1) = node(&db.url, "node-1", &[]);
    let (b_node, _d2) = node(&db.url, "node-2", &[]);
    let client = reqwest::Client::new();
    let (s, app) = post(
        &client,
        &a_node.url,
        "/app",
        json!({"name": "x", "uid": "shop"}),
    )
    .await;
    assert_eq!(s, 201);
    let id = app["id"].as_str().unwrap().to_string();
    let msg = json!({"eventType": "x", "payload": {}});
    // node-2 reads the application (and may keep its id for a moment).
    assert_eq!(
        post(&client, &b_node.url, &format!("/app/{id}/msg"), msg.clone())
            .await
            .0,
        202
    );
    assert_eq!(
        post(&client, &b_node.url, "/app/shop/msg", msg.clone())
            .await
            .0,
        202
    );

    // A uid moved on node-1 is followed by node-2 at once.
    let r = client
        .put(format!("{}/api/v1/app/{id}", a_node.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "x", "uid": "store"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        post(&client, &b_node.url, "/app/shop/msg", msg.clone())
            .await
            .0,
        404
    );
    assert_eq!(
        post(&client, &b_node.url, "/app/store/msg", msg.clone())
            .await
            .0,
        202
    );
    // An endpoint added on node-1 gets node-2's next message.
    let (s, _) = post(
        &client,
        &a_node.url,
        &format!("/app/{id}/endpoint"),
        json!({"url": rx.url("/")}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, m) = post(&client, &b_node.url, &format!("/app/{id}/msg"), msg.clone()).await;
    assert_eq!(s, 202);
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("webhook-id"), m["id"].as_str().unwrap());

    // Deleted on node-1: node-2 refuses messages for it at once, cached id or not.
    let r = client
        .delete(format!("{}/api/v1/app/{id}", a_node.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, body) = post(&client, &b_node.url, &format!("/app/{id}/msg"), msg).await;
    assert_eq!(s, 404, "{body}");
    let r = client
        .get(format!("{}/api/v1/app/{id}", b_node.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A token revoked on node-1 stops working on node-2 at once, though node-2 had just
    // read it (and would otherwise trust its copy for a few seconds).
    let (s, made) = post(
        &client,
        &a_node.url,
        "/token",
        json!({"name": "ci", "role": "viewer"}),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let status_on_b = |key: String| {
        let (client, url) = (client.clone(), b_node.url.clone());
        async move {
            client
                .get(format!("{url}/api/v1/app"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status_on_b(key.clone()).await, 200);
    let r = client
        .delete(format!(
            "{}/api/v1/token/{}",
            a_node.url,
            made["id"].as_str().unwrap()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let revoked_at = std::time::Instant::now();
    loop {
        if status_on_b(key.clone()).await == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "node-2 still took the revoked token (it trusts a cached token for 5 s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_migrating_at_once_take_turns() {
    let Some(db) = ScratchDb::create("migrate").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: migration test skipped");
        return;
    };
    let migrations: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
                .args(["migrate", "--database-url", &db.url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for m in migrations {
        let out = m.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "the postgres schema is up to date"
        );
    }
    // Every migration ran exactly once, in order: versions 1..=n, no repeats.
    let runs = db.count("SELECT count(*) FROM herald_schema").await;
    let distinct = db
        .count("SELECT count(DISTINCT version) FROM herald_schema")
        .await;
    let latest = db.count("SELECT max(version) FROM herald_schema").await;
    assert!(latest >= 4, "all migrations applied: {latest}");
    assert_eq!(
        (runs, distinct),
        (latest, latest),
        "each migration ran once"
    );
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn ms_from(from: Instant, to: Instant) -> i64 {
    if to >= from {
        (to - from).as_millis() as i64
    } else {
        -((from - to).as_millis() as i64)
    }
}

/// A fifoEndpoint on two nodes: one node sends it at a time; when that node is killed,
/// the other takes over once the lease ends, in order, from where it stood.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_sends_a_fifo_destination_and_another_takes_over_when_it_dies() {
    let Some(db) = ScratchDb::create("cluster_fifo").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: multi-node test skipped");
        return;
    };
    let rx = Receiver::start().await;
    rx.otherwise(Reply::status(200).delay(Duration::from_millis(60)));
    let mut nodes: Vec<(HeraldProcess, TempDir)> = ["node-a", "node-b"]
        .iter()
        .map(|n| node(&db.url, n, &[]))
        .collect();
    let urls: Vec<String> = nodes.iter().map(|(p, _)| p.url.clone()).collect();
    let client = reqwest::Client::new();
    let (s, app) = post(&client, &urls[0], "/app", json!({"name": "fifo"})).await;
    assert_eq!(s, 201, "{app}");
    let a = app["id"].as_str().unwrap().to_string();
    let (s, d) = post(
        &client,
        &urls[1],
        &format!("/app/{a}/destination"),
        json!({"type": "fifoEndpoint", "batchSize": 5, "config": {"url": rx.url("/fifo")}}),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    // Messages go in through both nodes, one after the other: the stream's order.
    let mut sent = Vec::new();
    for i in 0..120 {
        let (s, m) = post(
            &client,
            &urls[i % 2],
            &format!("/app/{a}/msg"),
            json!({"eventType": "x", "payload": {"i": i}}),
        )
        .await;
        assert_eq!(s, 202, "{m}");
        sent.push(m["id"].as_str().unwrap().to_string());
    }
    rx.wait_for(4, Duration::from_secs(30)).await;
    let sender = rx.received()[0].header("user-agent").to_string();
    let killed = if sender == "node-a" { 0 } else { 1 };
    nodes[killed].0.sigkill();
    let killed_at = Instant::now();
    let before = rx.received().len();
    assert!(
        rx.received()
            .iter()
            .all(|r| r.header("user-agent") == sender),
        "one node sends a destination at a time"
    );

    let order = batch_order(&rx, &sent, Duration::from_secs(60)).await;
    let after: Vec<Received> = rx.received().into_iter().skip(before).collect();
    assert!(!after.is_empty(), "the survivor sent the rest");
    let survivor = if killed == 0 { "node-b" } else { "node-a" };
    for r in &after {
        assert_eq!(r.header("user-agent"), survivor);
        // Only once the dead node's lease (8 s, renewed every 2 s) has run out.
        assert!(
            r.at >= killed_at + Duration::from_secs(5),
            "the survivor sent {:?} after the kill, before the lease ran out",
            r.at - killed_at
        );
    }
    assert_in_order_with_one_batch_again(&order, 5, sent.len());
}

/// Environments on PostgreSQL: each is a schema of the one database, shared by every
/// node. A staging application made through one node is read through another with a
/// staging token and is invisible to the default environment's; a staging token revoked
/// on one node stops on the other at once.
#[tokio::test]
async fn environments_are_schemas_that_every_node_shares() {
    let Some(db) = ScratchDb::create("envs").await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: environments test skipped");
        return;
    };
    let envs = [("HERALD_ENVIRONMENTS", "staging")];
    let (one, _d1) = node(&db.url, "node-1", &envs);
    let (two, _d2) = node(&db.url, "node-2", &envs);
    // The first node to start made staging's first admin token and printed it.
    let at = one
        .banner
        .iter()
        .position(|l| l.contains("environment staging: admin token"))
        .unwrap_or_else(|| panic!("{:?}", one.banner));
    let staging = one.banner[at + 1].trim().to_string();
    assert!(two.banner.iter().any(|l| l.trim() == "environment staging"));
    let client = reqwest::Client::new();
    let send = |url: &str, token: &str, method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{url}/api/v1{path}"))
            .bearer_auth(token.to_string())
    };
    let r = send(&one.url, &staging, reqwest::Method::POST, "/app")
        .json(&json!({"name": "staging app", "uid": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = send(&two.url, &staging, reqwest::Method::GET, "/app/shop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = send(&two.url, ADMIN_TOKEN, reqwest::Method::GET, "/app/shop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        db.count("SELECT count(*) FROM herald_env_staging.application WHERE uid = 'shop'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM public.application WHERE uid = 'shop'")
            .await,
        0
    );

    // A staging viewer token, used on node-2 (so it is cached there), then revoked on
    // node-1.
    let r = send(&one.url, &staging, reqwest::Method::POST, "/token")
        .json(&json!({"name": "viewer", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    let made: Value = r.json().await.unwrap();
    let viewer = made["key"].as_str().unwrap().to_string();
    assert!(viewer.starts_with("hrld_staging_"));
    let r = send(&two.url, &viewer, reqwest::Method::GET, "/app")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let path = format!("/token/{}", made["id"].as_str().unwrap());
    let r = send(&one.url, &staging, reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let revoked_at = std::time::Instant::now();
    loop {
        let r = send(&two.url, &viewer, reqwest::Method::GET, "/app")
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "node-2 still took the revoked staging token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
