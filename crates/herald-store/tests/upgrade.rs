//! The SQLite store of schema version 10, as a real `herald serve` wrote it
//! (tests/fixtures/store-v10.sql, made by scripts/make-upgrade-fixture.sh), opened by
//! today's store: every message, payload, delivery and attempt is still there, reads the
//! same through the `Store` trait, and the store goes on working (ingest, claims, lists).

use std::collections::BTreeMap;
use std::path::PathBuf;

use herald_core::ids;
use herald_store::*;

/// What the fixture holds, read with plain SQL from the old tables.
#[derive(Debug, Default)]
struct Before {
    /// message id → (application id, event type, payload or None when expunged).
    messages: BTreeMap<String, (String, String, Option<String>)>,
    /// message id → attempt ids, sorted.
    attempts: BTreeMap<String, Vec<String>>,
    /// (message id, endpoint id) → delivery status.
    deliveries: BTreeMap<(String, String), i64>,
}

fn read_before(conn: &rusqlite::Connection) -> Before {
    let mut before = Before::default();
    let mut stmt = conn
        .prepare(
            "SELECT m.id, m.app_id, m.event_type, p.payload FROM message m \
             LEFT JOIN message_payload p ON p.msg_id = m.id",
        )
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .unwrap()
    {
        let (id, v): (String, _) = row.unwrap();
        before.messages.insert(id, v);
    }
    let mut stmt = conn
        .prepare("SELECT msg_id, id FROM attempt ORDER BY id")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
        .unwrap()
    {
        let (msg, id) = row.unwrap();
        before.attempts.entry(msg).or_default().push(id);
    }
    let mut stmt = conn
        .prepare("SELECT msg_id, endpoint_id, status FROM delivery")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap()
    {
        let (k, v) = row.unwrap();
        before.deliveries.insert(k, v);
    }
    before
}

fn all() -> ListQuery {
    ListQuery {
        limit: 1000,
        iterator: None,
        descending: false,
    }
}

#[tokio::test]
async fn a_version_10_store_keeps_every_message_delivery_and_attempt() {
    let dir = std::env::temp_dir().join(format!(
        "herald-upgrade-v10-{}-{}",
        std::process::id(),
        ids::random_base62(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("herald.db");
    let before = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // The dump creates tables in name order, children before their parents.
        conn.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
        conn.execute_batch(include_str!("fixtures/store-v10.sql"))
            .unwrap();
        assert_eq!(
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            10
        );
        read_before(&conn)
    };
    // The fixture has what the checks need: expunged and kept payloads, failures and
    // successes, pending work.
    assert!(before.messages.len() >= 60, "{}", before.messages.len());
    assert!(before.messages.values().any(|m| m.2.is_none()));
    assert!(before.deliveries.values().any(|s| *s == 0));
    assert!(before.deliveries.values().any(|s| *s == 1));
    assert!(before.attempts.values().map(Vec::len).sum::<usize>() > before.messages.len());

    let store = SqliteStore::open(&path).unwrap();
    {
        // The tables were rebuilt in the new layout, not left as they were.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let (version, keyed_by_seq): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version), \
                 (SELECT count(*) FROM pragma_table_info('attempt') WHERE name = 'msg_seq')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((version, keyed_by_seq), (11, 1));
    }
    let apps: Vec<Application> = store.app_list(all(), None).await.unwrap().data;
    let mut listed = Vec::new();
    for app in &apps {
        // Paged in small steps both ways, so the cursor is a message id every time.
        let mut iterator = None;
        loop {
            let page = store
                .message_list(
                    &app.id,
                    MessageFilter::default(),
                    ListQuery {
                        limit: 7,
                        iterator: iterator.clone(),
                        descending: false,
                    },
                )
                .await
                .unwrap();
            listed.extend(page.data.iter().map(|m| m.id.clone()));
            if page.done {
                break;
            }
            iterator = page.iterator;
        }
    }
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        before.messages.keys().cloned().collect::<Vec<_>>(),
        "every message is listed once"
    );

    for (id, (app_id, event_type, payload)) in &before.messages {
        let m = store.message_get(app_id, id).await.unwrap();
        assert_eq!((&m.event_type, &m.payload), (event_type, payload), "{id}");
        let attempts = store
            .attempt_list(
                app_id,
                AttemptScope::Message(id.clone()),
                AttemptFilter::default(),
                all(),
            )
            .await
            .unwrap();
        let mut ids: Vec<String> = attempts.data.iter().map(|a| a.id.clone()).collect();
        ids.sort();
        assert_eq!(
            ids,
            before.attempts.get(id).cloned().unwrap_or_default(),
            "{id}"
        );
        for a in &attempts.data {
            assert_eq!(&a.msg_id, id);
            let again = store.attempt_get(app_id, id, &a.id).await.unwrap();
            assert_eq!(again.response_status_code, a.response_status_code);
        }
        let targets = store.delivery_targets(id, all()).await.unwrap();
        for t in &targets.data {
            let status = before.deliveries[&(id.clone(), t.endpoint.id.clone())];
            // A row leased when the server stopped reads as sending.
            let read = match t.status {
                DeliveryStatus::Sending => DeliveryStatus::Pending,
                s => s,
            };
            assert_eq!(
                read,
                DeliveryStatus::from_i64(status),
                "{id} → {}",
                t.endpoint.id
            );
        }
        assert_eq!(
            targets.data.len(),
            before.deliveries.keys().filter(|(m, _)| m == id).count()
        );
    }

    // The store goes on: a new message lists after the old ones, and its delivery is
    // claimed and recorded.
    let shop = apps
        .iter()
        .find(|a| a.uid.as_deref() == Some("shop"))
        .unwrap();
    let now = herald_core::time::now_ms();
    let (created, jobs) = store
        .message_create(
            NewMessage {
                app_id: shop.id.clone(),
                event_type: "order.created".into(),
                payload: r#"{"after":"upgrade"}"#.into(),
                retention_hours: 24,
                event_id: None,
                channels: None,
                deliver_at: None,
                only_endpoint: None,
                app_throttle_rate: None,
                ordering_key: None,
                lease_until: Some(now + 60_000),
                headers: Vec::new(),
            },
            now,
        )
        .await
        .unwrap();
    assert!(!jobs.is_empty());
    let newest = store
        .message_list(
            &shop.id,
            MessageFilter::default(),
            ListQuery {
                limit: 1,
                iterator: None,
                descending: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(newest.data[0].id, created.id);
    std::fs::remove_dir_all(dir).unwrap();
}
