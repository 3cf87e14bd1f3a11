//! The store conformance suite: every check here runs against both backends through the
//! `Store` trait. The SQLite half always runs; the PostgreSQL half runs whenever
//! `HERALD_TEST_DATABASE_URL` is set (each test then gets a database of its own, created
//! from that URL and dropped afterwards). With the variable set, an unreachable database
//! fails the tests instead of skipping them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use herald_core::ids;
use herald_store::*;

/// A backend under test, and what to clean up after it.
struct Backend {
    store: SharedStore,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = std::env::temp_dir().join(format!(
            "herald-conformance-{}-{}",
            std::process::id(),
            ids::random_base62(10)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&dir.join("herald.db")).unwrap();
        Backend {
            store: Arc::new(store),
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A fresh database on the server of `HERALD_TEST_DATABASE_URL`, or `None` when the
    /// variable is not set.
    async fn postgres() -> Option<Backend> {
        let Ok(admin_url) = std::env::var("HERALD_TEST_DATABASE_URL") else {
            // CI sets this so that a missing database fails instead of skipping.
            assert!(
                std::env::var_os("HERALD_REQUIRE_POSTGRES").is_none(),
                "HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_DATABASE_URL is not"
            );
            return None;
        };
        let name = format!("herald_conf_{}", ids::random_base62(12).to_lowercase());
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .expect("HERALD_TEST_DATABASE_URL is set but the database cannot be reached");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = with_database(&admin_url, &name);
        let store = PgStore::connect(&url, 8, Duration::ZERO).await.unwrap();
        Some(Backend {
            store: Arc::new(store),
            cleanup: Cleanup::Database { admin_url, name },
        })
    }

    async fn finish(self) {
        drop(self.store);
        match self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            }
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    herald_store::postgres::url_with_database(url, name)
}

/// Declares each check once per backend: `sqlite::<name>` and `postgres::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::sqlite().await;
                    super::$name(backend.store.clone()).await;
                    backend.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::Backend::postgres().await else {
                        eprintln!("HERALD_TEST_DATABASE_URL is not set: PostgreSQL not tested");
                        return;
                    };
                    super::$name(backend.store.clone()).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

conformance!(
    applications_resolve_by_id_or_uid_and_refuse_duplicates,
    lists_page_in_byte_order_both_ways,
    endpoints_are_bounded_per_application_and_count_their_deliveries,
    event_types_save_replace_archive_and_report_missing,
    messages_fan_out_to_matching_endpoints,
    message_lists_filter_by_channel_type_and_time,
    claimed_deliveries_are_leased_until_the_lease_ends,
    attempts_move_deliveries_and_fill_the_log,
    a_410_disables_the_endpoint_and_its_due_work_is_canceled,
    resend_and_recover_make_deliveries_due_again,
    concurrent_claims_never_share_a_delivery,
    idempotency_records_expire_and_are_pruned,
    tokens_are_found_by_hash,
    deleting_an_application_removes_everything_under_it,
    deleting_an_endpoint_removes_its_deliveries_and_attempts,
    an_application_deleted_during_ingest_leaves_nothing_behind,
    retention_purges_payloads_then_prunes_old_messages_in_batches,
    replays_send_what_was_missed_or_everything_again,
    an_endpoint_failing_for_the_whole_window_is_disabled,
    an_ordered_endpoint_gets_one_message_at_a_time_in_order,
    sources_keep_their_config_and_log_and_go_with_their_application,
    deferred_deliveries_wait_in_the_store_without_an_attempt,
    claims_are_shared_between_applications_and_endpoints,
    destinations_read_the_stream_in_order_from_their_position,
    concurrent_ingest_never_lands_behind_a_reader,
    retention_expires_positions_it_passes,
    a_sending_destination_is_leased_to_one_owner_at_a_time,
    payload_filters_choose_the_endpoints_at_fan_out,
    transformations_are_kept_apart_and_travel_with_the_jobs,
    the_audit_trail_is_appended_listed_by_filter_and_pruned,
    people_sign_in_with_sessions_that_expire_and_end,
    settings_are_one_object_kept_and_replaced,
);

const T0: i64 = 1_700_000_000_000;

fn app(id: &str, uid: Option<&str>) -> Application {
    Application {
        id: id.into(),
        uid: uid.map(Into::into),
        name: format!("name of {id}"),
        throttle_rate: None,
        metadata: BTreeMap::from([("k".to_string(), "v".to_string())]),
        created_at: T0,
        updated_at: T0,
    }
}

fn endpoint(app_id: &str, id: &str, event_types: Option<&[&str]>) -> Endpoint {
    Endpoint {
        id: id.into(),
        app_id: app_id.into(),
        uid: None,
        url: format!("http://127.0.0.1:9/{id}"),
        description: String::new(),
        disabled: false,
        event_types: event_types.map(|t| t.iter().map(|s| s.to_string()).collect()),
        channels: None,
        throttle_rate: Some(10),
        metadata: BTreeMap::new(),
        headers: BTreeMap::from([("x-test".to_string(), id.to_string())]),
        secrets: vec![StoredSecret {
            key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            expires_at: None,
        }],
        created_at: T0,
        updated_at: T0,
        ordered: false,
        payload_filter: None,
        transformation: None,
    }
}

fn message(app_id: &str, event_type: &str, lease_until: Option<i64>) -> NewMessage {
    NewMessage {
        app_id: app_id.into(),
        event_id: None,
        event_type: event_type.into(),
        channels: None,
        payload: r#"{"n":1}"#.into(),
        retention_hours: 24,
        deliver_at: None,
        only_endpoint: None,
        headers: Vec::new(),
        app_throttle_rate: None,
        ordering_key: None,
        lease_until,
    }
}

fn list(limit: usize) -> ListQuery {
    ListQuery {
        limit,
        iterator: None,
        descending: false,
    }
}

fn attempt_for(job: &DeliveryJob, status_code: i64, at: i64) -> Attempt {
    Attempt {
        id: ids::generate(ids::ATTEMPT),
        msg_id: job.msg_id.clone(),
        endpoint_id: job.endpoint_id.clone(),
        app_id: job.app_id.clone(),
        url: job.url.clone(),
        status: if (200..300).contains(&status_code) {
            0
        } else {
            2
        },
        response_status_code: status_code,
        response: format!("answered {status_code}"),
        response_duration_ms: 3,
        trigger_type: job.trigger as i64,
        created_at: at,
    }
}

/// An application with one endpoint that takes every event type.
async fn app_with_endpoint(store: &SharedStore) -> (String, String) {
    let app_id = ids::generate(ids::APP);
    let ep_id = ids::generate(ids::ENDPOINT);
    store.app_insert(app(&app_id, None)).await.unwrap();
    store
        .endpoint_insert(endpoint(&app_id, &ep_id, None), 10)
        .await
        .unwrap();
    (app_id, ep_id)
}

async fn applications_resolve_by_id_or_uid_and_refuse_duplicates(store: SharedStore) {
    store.app_insert(app("app_1", Some("shop"))).await.unwrap();
    assert_eq!(
        store.app_get("app_1").await.unwrap().uid.as_deref(),
        Some("shop")
    );
    let by_uid = store.app_get("shop").await.unwrap();
    assert_eq!(by_uid.id, "app_1");
    assert_eq!(by_uid.metadata["k"], "v");
    assert!(matches!(
        store.app_insert(app("app_2", Some("shop"))).await,
        Err(StoreError::Conflict(_))
    ));
    // A uid that equals another application's id: the id wins.
    store.app_insert(app("app_3", Some("app_1"))).await.unwrap();
    assert_eq!(store.app_get("app_1").await.unwrap().id, "app_1");

    let mut renamed = app("app_1", Some("shop-2"));
    renamed.name = "renamed".into();
    renamed.throttle_rate = Some(7);
    store.app_update(renamed).await.unwrap();
    let got = store.app_get("shop-2").await.unwrap();
    assert_eq!((got.name.as_str(), got.throttle_rate), ("renamed", Some(7)));
    assert!(matches!(
        store.app_get("shop").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.app_update(app("app_404", None)).await,
        Err(StoreError::NotFound)
    ));
    store.app_delete("app_1").await.unwrap();
    assert!(matches!(
        store.app_delete("app_1").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.app_get("app_1").await.unwrap().id,
        "app_3",
        "now only a uid"
    );
    store.app_delete("app_3").await.unwrap();
    assert!(matches!(
        store.app_get("app_1").await,
        Err(StoreError::NotFound)
    ));
}

async fn lists_page_in_byte_order_both_ways(store: SharedStore) {
    // Mixed case and digits: byte order differs from most locales' collation.
    let mut keys = vec![
        "app_b", "app_A", "app_a", "app_B", "app_0", "app_Z", "app_z",
    ];
    for k in &keys {
        store.app_insert(app(k, None)).await.unwrap();
    }
    keys.sort();
    let mut seen = Vec::new();
    let mut q = list(3);
    loop {
        let page = store.app_list(q.clone(), None).await.unwrap();
        seen.extend(page.data.iter().map(|a| a.id.clone()));
        if page.done {
            break;
        }
        q.iterator = page.iterator;
    }
    assert_eq!(seen, keys, "forward walk in byte order");

    // From the last page, walk back with prev_iterator.
    let mut q = list(3);
    q.iterator = Some("app_b".into());
    let page = store.app_list(q.clone(), None).await.unwrap();
    assert_eq!(
        page.data.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["app_z"]
    );
    q.iterator = page.prev_iterator;
    let back = store.app_list(q, None).await.unwrap();
    assert_eq!(
        back.data.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["app_Z", "app_a", "app_b"]
    );

    let mut q = list(2);
    q.descending = true;
    let page = store.app_list(q, None).await.unwrap();
    assert_eq!(
        page.data.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["app_z", "app_b"]
    );
    assert!(!page.done);
}

async fn endpoints_are_bounded_per_application_and_count_their_deliveries(store: SharedStore) {
    store.app_insert(app("app_e", None)).await.unwrap();
    let mut first = endpoint("app_e", "ep_1", None);
    first.uid = Some("primary".into());
    store.endpoint_insert(first, 2).await.unwrap();
    store
        .endpoint_insert(endpoint("app_e", "ep_2", None), 2)
        .await
        .unwrap();
    assert!(matches!(
        store
            .endpoint_insert(endpoint("app_e", "ep_3", None), 2)
            .await,
        Err(StoreError::Invalid(_))
    ));
    let mut dup = endpoint("app_e", "ep_4", None);
    dup.uid = Some("primary".into());
    assert!(matches!(
        store.endpoint_insert(dup, 10).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .endpoint_insert(endpoint("app_missing", "ep_5", None), 10)
            .await,
        Err(StoreError::NotFound)
    ));

    let got = store.endpoint_get("app_e", "primary").await.unwrap();
    assert_eq!(got.id, "ep_1");
    assert_eq!(got.headers["x-test"], "ep_1");
    assert_eq!(got.secrets.len(), 1);
    assert_eq!(got.throttle_rate, Some(10));
    assert!(matches!(
        store.endpoint_get("app_other", "ep_1").await,
        Err(StoreError::NotFound)
    ));

    let mut changed = got.clone();
    changed.disabled = true;
    changed.event_types = Some(vec!["a.b".into()]);
    changed.channels = Some(vec!["c1".into()]);
    store.endpoint_update(changed).await.unwrap();
    let got = store.endpoint_get("app_e", "ep_1").await.unwrap();
    assert!(got.disabled);
    assert_eq!(got.event_types, Some(vec!["a.b".to_string()]));
    assert_eq!(got.channels, Some(vec!["c1".to_string()]));

    let page = store.endpoint_list("app_e", list(10)).await.unwrap();
    assert_eq!(page.data.len(), 2);

    // Deliveries: one pending to ep_2.
    store
        .message_create(message("app_e", "x.y", None), T0)
        .await
        .unwrap();
    let stats = store.endpoint_stats("ep_2", T0 - 1, T0 + 1).await.unwrap();
    assert_eq!((stats.pending, stats.success, stats.fail), (1, 0, 0));
    let stats = store.endpoint_stats("ep_2", T0 + 1, T0 + 2).await.unwrap();
    assert_eq!(stats.pending, 0, "outside the window");

    store.endpoint_delete("ep_2").await.unwrap();
    assert!(matches!(
        store.endpoint_delete("ep_2").await,
        Err(StoreError::NotFound)
    ));
}

async fn event_types_save_replace_archive_and_report_missing(store: SharedStore) {
    let et = |name: &str, archived: bool| EventType {
        name: name.into(),
        description: format!("about {name}"),
        archived,
        deprecated: false,
        schemas: Some(serde_json::json!({"1": {"type": "object"}})),
        feature_flag: None,
        created_at: T0,
        updated_at: T0,
    };
    store
        .event_type_save(et("user.created", false), false)
        .await
        .unwrap();
    store
        .event_type_save(et("user.deleted", true), false)
        .await
        .unwrap();
    assert!(matches!(
        store
            .event_type_save(et("user.created", false), false)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut replaced = et("user.created", false);
    replaced.description = "new words".into();
    store.event_type_save(replaced, true).await.unwrap();
    let got = store.event_type_get("user.created").await.unwrap();
    assert_eq!(got.description, "new words");
    assert_eq!(got.schemas.unwrap()["1"]["type"], "object");

    let active = store
        .event_type_list(list(10), false, vec![])
        .await
        .unwrap();
    assert_eq!(active.data.len(), 1);
    let all = store.event_type_list(list(10), true, vec![]).await.unwrap();
    assert_eq!(all.data.len(), 2);

    let missing = store
        .event_types_missing(vec![
            "user.created".into(),
            "user.deleted".into(),
            "nope".into(),
        ])
        .await
        .unwrap();
    assert_eq!(missing, ["user.deleted", "nope"]);
    store.event_type_delete("user.deleted").await.unwrap();
    assert!(matches!(
        store.event_type_get("user.deleted").await,
        Err(StoreError::NotFound)
    ));
}

async fn messages_fan_out_to_matching_endpoints(store: SharedStore) {
    store.app_insert(app("app_m", None)).await.unwrap();
    store
        .endpoint_insert(endpoint("app_m", "ep_all", None), 10)
        .await
        .unwrap();
    store
        .endpoint_insert(endpoint("app_m", "ep_orders", Some(&["order.paid"])), 10)
        .await
        .unwrap();
    let mut channel_only = endpoint("app_m", "ep_eu", None);
    channel_only.channels = Some(vec!["eu".into()]);
    store.endpoint_insert(channel_only, 10).await.unwrap();
    let mut off = endpoint("app_m", "ep_off", None);
    off.disabled = true;
    store.endpoint_insert(off, 10).await.unwrap();

    let lease = T0 + 60_000;
    let (msg, jobs) = store
        .message_create(message("app_m", "order.paid", Some(lease)), T0)
        .await
        .unwrap();
    let mut targets: Vec<_> = jobs.iter().map(|j| j.endpoint_id.as_str()).collect();
    targets.sort();
    assert_eq!(targets, ["ep_all", "ep_orders"]);
    let job = jobs.iter().find(|j| j.endpoint_id == "ep_orders").unwrap();
    assert_eq!(&*job.payload, r#"{"n":1}"#);
    assert_eq!(job.lease_until, lease);
    assert_eq!(
        job.headers,
        [("x-test".to_string(), "ep_orders".to_string())]
    );
    assert_eq!(job.secrets.len(), 1);
    assert_eq!(msg.expires_at, T0 + 24 * 3_600_000);

    let mut eu = message("app_m", "user.created", Some(lease));
    eu.channels = Some(vec!["eu".into()]);
    eu.event_id = Some("evt-1".into());
    let (eu_msg, jobs) = store.message_create(eu.clone(), T0).await.unwrap();
    let mut targets: Vec<_> = jobs.iter().map(|j| j.endpoint_id.as_str()).collect();
    targets.sort();
    assert_eq!(targets, ["ep_all", "ep_eu"]);
    assert!(matches!(
        store.message_create(eu, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.message_get("app_m", "evt-1").await.unwrap().id,
        eu_msg.id
    );
    let got = store.message_get("app_m", &msg.id).await.unwrap();
    assert_eq!(got.payload.as_deref(), Some(r#"{"n":1}"#));
    assert!(matches!(
        store.message_get("app_other", &msg.id).await,
        Err(StoreError::NotFound)
    ));

    // send-example style: one endpoint whatever its filters.
    let mut only = message("app_m", "order.paid", Some(lease));
    only.only_endpoint = Some("ep_eu".into());
    let (_, jobs) = store.message_create(only, T0).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].endpoint_id, "ep_eu");

    store.message_expunge(&msg.id).await.unwrap();
    assert_eq!(
        store.message_get("app_m", &msg.id).await.unwrap().payload,
        None
    );
    assert!(matches!(
        store
            .message_create(message("app_gone", "x", None), T0)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn message_lists_filter_by_channel_type_and_time(store: SharedStore) {
    store.app_insert(app("app_l", None)).await.unwrap();
    for (i, (event_type, channel)) in [("a", "red"), ("b", "red"), ("a", "blue"), ("c", "blue")]
        .into_iter()
        .enumerate()
    {
        let mut m = message("app_l", event_type, None);
        m.channels = Some(vec![channel.into(), "all".into()]);
        store.message_create(m, T0 + i as i64 * 1000).await.unwrap();
    }
    let types = |page: &Page<Message>| {
        page.data
            .iter()
            .map(|m| m.event_type.clone())
            .collect::<Vec<_>>()
    };
    let by = |f: MessageFilter| {
        let store = store.clone();
        async move { store.message_list("app_l", f, list(10)).await.unwrap() }
    };
    assert_eq!(
        types(&by(MessageFilter::default()).await),
        ["a", "b", "a", "c"]
    );
    let red = by(MessageFilter {
        channel: Some("red".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(types(&red), ["a", "b"]);
    assert!(red.data[0].payload.is_none(), "content only when asked");
    let a_or_c = by(MessageFilter {
        event_types: vec!["a".into(), "c".into()],
        with_content: true,
        ..Default::default()
    })
    .await;
    assert_eq!(types(&a_or_c), ["a", "a", "c"]);
    assert_eq!(a_or_c.data[0].payload.as_deref(), Some(r#"{"n":1}"#));
    let window = by(MessageFilter {
        after: Some(T0),
        before: Some(T0 + 3000),
        ..Default::default()
    })
    .await;
    assert_eq!(types(&window), ["b", "a"]);
    let none = by(MessageFilter {
        channel: Some("green".into()),
        ..Default::default()
    })
    .await;
    assert!(none.data.is_empty() && none.done);
}

async fn claimed_deliveries_are_leased_until_the_lease_ends(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    let (msg, jobs) = store
        .message_create(message(&app_id, "x", None), T0)
        .await
        .unwrap();
    assert!(jobs.is_empty(), "no lease asked: left to the scheduler");
    assert_eq!(store.next_due_at().await.unwrap(), Some(T0));
    assert_eq!(store.queue_stats().await.unwrap(), (1, Some(T0)));

    let claimed = store.claim_due(T0, T0 + 30_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].msg_id.as_str(), claimed[0].endpoint_id.as_str()),
        (msg.id.as_str(), ep_id.as_str())
    );
    assert_eq!(claimed[0].lease_until, T0 + 30_000);
    assert_eq!(
        store.queue_stats().await.unwrap(),
        (1, None),
        "a leased delivery is pending but not overdue"
    );
    assert!(
        store
            .claim_due(T0 + 1, T0 + 30_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let targets = store.delivery_targets(&msg.id, list(10)).await.unwrap();
    assert_eq!(targets.data[0].status, DeliveryStatus::Sending);

    // The holder gives it back (shutting down): due again at once.
    let given_back = store
        .release_deliveries(vec![claimed[0].delivery_id], T0 + 2)
        .await
        .unwrap();
    assert_eq!(given_back, 1);
    let retaken = store.claim_due(T0 + 2, T0 + 30_000, 10).await.unwrap();
    assert_eq!(retaken.len(), 1);
    assert_eq!(
        store.release_deliveries(vec![], T0 + 3).await.unwrap(),
        0,
        "nothing to give back"
    );

    // The holder died: once the lease ends, anyone may claim it.
    let again = store.claim_due(T0 + 30_000, T0 + 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_id, claimed[0].delivery_id);

    // Scheduled messages wait for their time.
    let mut later = message(&app_id, "x", Some(T0 + 99_000));
    later.deliver_at = Some(T0 + 5_000);
    let (_, jobs) = store.message_create(later, T0).await.unwrap();
    assert!(jobs.is_empty(), "scheduled messages are never handed off");
    assert!(store
        .claim_due(T0 + 4_999, T0 + 9_000, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .claim_due(T0 + 5_000, T0 + 9_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn claims_are_shared_between_applications_and_endpoints(store: SharedStore) {
    // Application A has two endpoints and a backlog of 200 deliveries; B has one
    // endpoint and three deliveries, all younger than A's.
    let (a, a1) = app_with_endpoint(&store).await;
    let a2 = ids::generate(ids::ENDPOINT);
    store
        .endpoint_insert(endpoint(&a, &a2, None), 10)
        .await
        .unwrap();
    let (b, b1) = app_with_endpoint(&store).await;
    for i in 0..100 {
        store
            .message_create(message(&a, "x", None), T0 + i)
            .await
            .unwrap();
    }
    for i in 0..3 {
        store
            .message_create(message(&b, "x", None), T0 + 1_000 + i)
            .await
            .unwrap();
    }
    let now = T0 + 2_000;
    assert_eq!(store.next_due_at().await.unwrap(), Some(T0));
    let first = store.claim_due(now, now + 30_000, 10).await.unwrap();
    let count =
        |jobs: &[DeliveryJob], ep: &str| jobs.iter().filter(|j| j.endpoint_id == ep).count();
    assert_eq!(first.len(), 10, "the batch is filled");
    assert_eq!(
        count(&first, &b1),
        3,
        "B's deliveries are not behind A's backlog"
    );
    assert!(
        count(&first, &a1) >= 3 && count(&first, &a2) >= 3,
        "A's endpoints share A's part: {} and {}",
        count(&first, &a1),
        count(&first, &a2)
    );
    // Within an endpoint, the oldest first.
    let a1_first: Vec<i64> = first
        .iter()
        .filter(|j| j.endpoint_id == a1)
        .map(|j| j.delivery_id)
        .collect();
    let mut all = first.clone();
    loop {
        let more = store.claim_due(now, now + 30_000, 64).await.unwrap();
        if more.is_empty() {
            break;
        }
        all.extend(more);
    }
    let unique: std::collections::HashSet<i64> = all.iter().map(|j| j.delivery_id).collect();
    assert_eq!(unique.len(), all.len(), "no delivery is claimed twice");
    assert_eq!(all.len(), 203, "every due delivery is claimed in the end");
    let mut a1_all: Vec<i64> = all
        .iter()
        .filter(|j| j.endpoint_id == a1)
        .map(|j| j.delivery_id)
        .collect();
    a1_all.sort_unstable();
    assert_eq!(
        a1_first,
        a1_all[..a1_first.len()],
        "an endpoint's oldest deliveries are claimed first"
    );
    assert_eq!(
        store.next_due_at().await.unwrap(),
        Some(now + 30_000),
        "only leases are left"
    );
}

async fn deferred_deliveries_wait_in_the_store_without_an_attempt(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    let lease = T0 + 30_000;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (_, jobs) = store
            .message_create(message(&app_id, "x", Some(lease)), T0)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1);
        held.push(jobs[0].clone());
    }
    // Two are deferred to different times; the third's lease is stated wrongly (as if
    // another worker had claimed it since), so it is left alone.
    let deferrals = vec![
        Deferral {
            delivery_id: held[0].delivery_id,
            lease_until: lease,
            due_at: T0 + 5_000,
        },
        Deferral {
            delivery_id: held[1].delivery_id,
            lease_until: lease,
            due_at: T0 + 9_000,
        },
        Deferral {
            delivery_id: held[2].delivery_id,
            lease_until: lease + 1,
            due_at: T0,
        },
    ];
    assert_eq!(store.defer_deliveries(deferrals).await.unwrap(), 2);
    assert!(store
        .claim_due(T0 + 4_999, T0 + 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    let first = store.claim_due(T0 + 5_000, T0 + 60_000, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].delivery_id, held[0].delivery_id);
    assert_eq!(first[0].attempts, 0, "a deferral is not an attempt");
    let second = store.claim_due(T0 + 9_000, T0 + 60_000, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delivery_id, held[1].delivery_id);
    assert_eq!(
        attempts_of(&store, &app_id, AttemptScope::Endpoint(ep_id)).await,
        0
    );
    // The third stays under its first lease until that ends.
    let third = store.claim_due(lease, T0 + 90_000, 10).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].delivery_id, held[2].delivery_id);
}

async fn attempts_move_deliveries_and_fill_the_log(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    let (msg, jobs) = store
        .message_create(message(&app_id, "x", Some(T0 + 60_000)), T0)
        .await
        .unwrap();
    let job = &jobs[0];
    let failed = attempt_for(job, 500, T0 + 10);
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: job.delivery_id,
                attempt: failed.clone(),
                next: NextStep::RetryAt(T0 + 5_000),
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), Some(T0 + 5_000));
    let delivered = store
        .delivered_messages(&ep_id, MessageFilter::default(), list(10))
        .await
        .unwrap();
    assert_eq!(delivered.data[0].status, DeliveryStatus::Pending);
    assert_eq!(delivered.data[0].next_attempt_at, Some(T0 + 5_000));

    let retry = store.claim_due(T0 + 5_000, T0 + 65_000, 10).await.unwrap();
    assert_eq!(retry[0].attempts, 1);
    let ok = attempt_for(&retry[0], 204, T0 + 5_010);
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: retry[0].delivery_id,
                attempt: ok.clone(),
                next: NextStep::Succeeded,
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), None);
    let targets = store.delivery_targets(&msg.id, list(10)).await.unwrap();
    assert_eq!(targets.data[0].status, DeliveryStatus::Succeeded);
    assert_eq!(targets.data[0].next_attempt_at, None);

    let log = store
        .attempt_list(
            &app_id,
            AttemptScope::Message(msg.id.clone()),
            AttemptFilter::default(),
            list(10),
        )
        .await
        .unwrap();
    let ids: Vec<_> = log.data.iter().map(|a| a.id.clone()).collect();
    let mut expected = vec![failed.id.clone(), ok.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let fives = store
        .attempt_list(
            &app_id,
            AttemptScope::Endpoint(ep_id.clone()),
            AttemptFilter {
                status_code_class: Some(500),
                ..Default::default()
            },
            list(10),
        )
        .await
        .unwrap();
    assert_eq!(fives.data.len(), 1);
    assert_eq!(fives.data[0].response, "answered 500");
    let successes = store
        .attempt_list(
            &app_id,
            AttemptScope::Endpoint(ep_id),
            AttemptFilter {
                status: Some(0),
                ..Default::default()
            },
            list(10),
        )
        .await
        .unwrap();
    assert_eq!(successes.data.len(), 1);

    let got = store.attempt_get(&app_id, &msg.id, &ok.id).await.unwrap();
    assert_eq!(
        (got.response_status_code, got.response_duration_ms),
        (204, 3)
    );
    assert!(matches!(
        store.attempt_get("app_other", &msg.id, &ok.id).await,
        Err(StoreError::NotFound)
    ));
    store.attempt_expunge(&ok.msg_id, &ok.id).await.unwrap();
    assert_eq!(
        store
            .attempt_get(&app_id, &msg.id, &ok.id)
            .await
            .unwrap()
            .response,
        ""
    );
}

async fn a_410_disables_the_endpoint_and_its_due_work_is_canceled(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    let (_, jobs) = store
        .message_create(message(&app_id, "x", Some(T0 + 60_000)), T0)
        .await
        .unwrap();
    let (second, _) = store
        .message_create(message(&app_id, "x", None), T0)
        .await
        .unwrap();
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: jobs[0].delivery_id,
                attempt: attempt_for(&jobs[0], 410, T0 + 1),
                next: NextStep::FailedAndDisableEndpoint,
            }],
            None,
        )
        .await
        .unwrap();
    assert!(store.endpoint_get(&app_id, &ep_id).await.unwrap().disabled);
    assert!(store
        .claim_due(T0 + 2, T0 + 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    let targets = store.delivery_targets(&second.id, list(10)).await.unwrap();
    assert_eq!(targets.data[0].status, DeliveryStatus::Canceled);
    let stats = store.endpoint_stats(&ep_id, T0, T0 + 1).await.unwrap();
    assert_eq!((stats.fail, stats.canceled), (1, 1));
}

async fn resend_and_recover_make_deliveries_due_again(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    let (msg, jobs) = store
        .message_create(message(&app_id, "x", Some(T0 + 60_000)), T0)
        .await
        .unwrap();
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: jobs[0].delivery_id,
                attempt: attempt_for(&jobs[0], 500, T0 + 1),
                next: NextStep::Failed,
            }],
            None,
        )
        .await
        .unwrap();
    let resent = store
        .resend(&app_id, &msg.id, &ep_id, T0 + 10, Some(T0 + 70_000))
        .await
        .unwrap()
        .expect("leased to the caller");
    assert_eq!(resent.delivery_id, jobs[0].delivery_id);
    assert_eq!((resent.trigger, resent.attempts), (Trigger::Manual, 1));
    assert_eq!(&*resent.payload, r#"{"n":1}"#);
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: resent.delivery_id,
                attempt: attempt_for(&resent, 500, T0 + 11),
                next: NextStep::Failed,
            }],
            None,
        )
        .await
        .unwrap();
    assert!(store
        .resend(&app_id, &msg.id, &ep_id, T0 + 20, None)
        .await
        .unwrap()
        .is_none());
    let due = store.claim_due(T0 + 20, T0 + 80_000, 10).await.unwrap();
    assert_eq!(due.len(), 1, "an unleased resend is due now");
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: due[0].delivery_id,
                attempt: attempt_for(&due[0], 500, T0 + 21),
                next: NextStep::Failed,
            }],
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        store.resend(&app_id, &msg.id, "ep_nope", T0, None).await,
        Err(StoreError::NotFound)
    ));

    assert_eq!(
        store
            .recover(&ep_id, T0 + 1, T0 + 100, T0 + 30, false)
            .await
            .unwrap(),
        0,
        "outside the window"
    );
    assert_eq!(
        store
            .recover(&ep_id, T0, T0 + 100, T0 + 30, false)
            .await
            .unwrap(),
        1
    );
    let due = store.claim_due(T0 + 30, T0 + 90_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].trigger, Trigger::Manual);
}

async fn concurrent_claims_never_share_a_delivery(store: SharedStore) {
    let (app_id, _) = app_with_endpoint(&store).await;
    const N: usize = 120;
    for _ in 0..N {
        store
            .message_create(message(&app_id, "x", None), T0)
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = store.claim_due(T0 + 1, T0 + 60_000, 7).await.unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                mine.extend(jobs.into_iter().map(|j| j.delivery_id));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a delivery was claimed twice");
    assert_eq!(all.len(), N, "every delivery was claimed");
}

async fn idempotency_records_expire_and_are_pruned(store: SharedStore) {
    let hour = 3_600_000;
    store
        .idempotency_put("old", 202, b"{}".to_vec(), 1_000)
        .await
        .unwrap();
    store
        .idempotency_put("new", 201, b"{\"a\":1}".to_vec(), 10 * hour)
        .await
        .unwrap();
    let now = 10 * hour + 1;
    assert_eq!(
        store.idempotency_get("old", now, 5 * hour).await.unwrap(),
        None
    );
    assert_eq!(
        store.idempotency_get("new", now, 5 * hour).await.unwrap(),
        Some((201, b"{\"a\":1}".to_vec()))
    );
    store
        .idempotency_put("new", 200, b"[]".to_vec(), 10 * hour)
        .await
        .unwrap();
    assert_eq!(
        store.idempotency_get("new", now, 5 * hour).await.unwrap(),
        Some((200, b"[]".to_vec())),
        "a later answer replaces the first"
    );
    assert_eq!(store.idempotency_prune(now, 5 * hour).await.unwrap(), 1);
    assert_eq!(store.idempotency_prune(now, 5 * hour).await.unwrap(), 0);

    let task = Task {
        id: "qtask_1".into(),
        kind: "recover".into(),
        status: "running".into(),
        data: serde_json::json!({}),
        updated_at: T0,
    };
    store.task_save(task.clone()).await.unwrap();
    let done = Task {
        status: "finished".into(),
        ..task
    };
    assert_eq!(store.task_save(done).await.unwrap().status, "finished");
}

async fn tokens_are_found_by_hash(store: SharedStore) {
    assert_eq!(store.admin_token_count().await.unwrap(), 0);
    store
        .token_insert("tok_1", "hash-1", "admin", None, None, T0, None)
        .await
        .unwrap();
    store.app_insert(app("app_t", None)).await.unwrap();
    store
        .token_insert(
            "tok_2",
            "hash-2",
            "portal",
            Some("app_t"),
            None,
            T0,
            Some(T0 + 1000),
        )
        .await
        .unwrap();
    assert_eq!(store.admin_token_count().await.unwrap(), 1);
    let scoped = store.token_find("hash-2").await.unwrap().unwrap();
    assert_eq!(scoped.app_id.as_deref(), Some("app_t"));
    assert_eq!(scoped.expires_at, Some(T0 + 1000));
    assert!(store.token_find("hash-3").await.unwrap().is_none());
    store.token_expire("hash-1", T0 + 50).await.unwrap();
    assert_eq!(
        store
            .token_find("hash-1")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(T0 + 50)
    );
    store.token_expire("hash-2", T0 + 5000).await.unwrap();
    assert_eq!(
        store
            .token_find("hash-2")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(T0 + 1000),
        "an earlier expiry is kept"
    );
    // Named tokens with a role: listed without their secret, touched, revoked.
    store
        .token_insert(
            "tok_3",
            "hash-3",
            "ci deploys",
            None,
            Some("developer"),
            T0 + 1,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .token_find("hash-3")
            .await
            .unwrap()
            .unwrap()
            .role
            .as_deref(),
        Some("developer")
    );
    store.token_touch("tok_3", T0 + 99).await.unwrap();
    let listed = store
        .token_list(ListQuery {
            limit: 50,
            iterator: None,
            descending: false,
        })
        .await
        .unwrap()
        .data;
    let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["tok_1", "tok_2", "tok_3"]);
    let t3 = &listed[2];
    assert_eq!(
        (t3.name.as_str(), t3.role.as_deref(), t3.last_used_at),
        ("ci deploys", Some("developer"), Some(T0 + 99))
    );
    store.token_revoke("tok_3").await.unwrap();
    assert!(store.token_find("hash-3").await.unwrap().is_none());
    assert!(matches!(
        store.token_revoke("tok_3").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.token_expire("hash-3", T0).await,
        Err(StoreError::NotFound)
    ));
}

/// Attempts logged for `app_id` through `scope`.
async fn attempts_of(store: &SharedStore, app_id: &str, scope: AttemptScope) -> usize {
    store
        .attempt_list(app_id, scope, AttemptFilter::default(), list(10))
        .await
        .unwrap()
        .data
        .len()
}

/// Stores one message for `app_id` and records one successful attempt of its first
/// delivery; returns the message id.
async fn message_with_attempt(store: &SharedStore, app_id: &str, at: i64) -> String {
    let (msg, jobs) = store
        .message_create(message(app_id, "x", Some(at + 60_000)), at)
        .await
        .unwrap();
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: jobs[0].delivery_id,
                attempt: attempt_for(&jobs[0], 200, at + 1),
                next: NextStep::Succeeded,
            }],
            None,
        )
        .await
        .unwrap();
    msg.id
}

async fn deleting_an_application_removes_everything_under_it(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    let logged = message_with_attempt(&store, &app_id, T0).await;
    let (msg, jobs) = store
        .message_create(message(&app_id, "x", Some(T0 + 60_000)), T0)
        .await
        .unwrap();
    store.app_delete(&app_id).await.unwrap();
    let scope = AttemptScope::Message(logged.clone());
    assert_eq!(attempts_of(&store, &app_id, scope).await, 0);
    let left = store
        .message_list(&app_id, MessageFilter::default(), list(10))
        .await
        .unwrap();
    assert!(left.data.is_empty(), "messages left: {:?}", left.data);
    let delivered = store
        .delivered_messages(&ep_id, MessageFilter::default(), list(10))
        .await
        .unwrap();
    assert!(delivered.data.is_empty());
    assert!(matches!(
        store.message_get(&app_id, &msg.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.endpoint_get(&app_id, &ep_id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.next_due_at().await.unwrap(), None);
    // An attempt that finishes after the delete is dropped, not an error for the rest.
    let result = store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: jobs[0].delivery_id,
                attempt: attempt_for(&jobs[0], 200, T0 + 1),
                next: NextStep::Succeeded,
            }],
            None,
        )
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

async fn deleting_an_endpoint_removes_its_deliveries_and_attempts(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    // A message with an attempt while the endpoint is the only one, then a second
    // endpoint and a message left due for both.
    let logged = message_with_attempt(&store, &app_id, T0).await;
    let kept_ep = ids::generate(ids::ENDPOINT);
    store
        .endpoint_insert(endpoint(&app_id, &kept_ep, None), 10)
        .await
        .unwrap();
    store
        .message_create(message(&app_id, "x", None), T0 + 2)
        .await
        .unwrap();
    store.endpoint_delete(&ep_id).await.unwrap();

    let gone = AttemptScope::Endpoint(ep_id.clone());
    assert_eq!(attempts_of(&store, &app_id, gone).await, 0);
    let scope = AttemptScope::Message(logged.clone());
    assert_eq!(attempts_of(&store, &app_id, scope).await, 0);
    let delivered = store
        .delivered_messages(&ep_id, MessageFilter::default(), list(10))
        .await
        .unwrap();
    assert!(delivered.data.is_empty());
    // The other endpoint keeps its delivery, still due.
    let kept = store
        .delivered_messages(&kept_ep, MessageFilter::default(), list(10))
        .await
        .unwrap();
    assert_eq!(kept.data.len(), 1);
    assert_eq!(store.next_due_at().await.unwrap(), Some(T0 + 2));
}

/// Waits until `counter` reaches `at_least` (failing after 30 s, saying `what`).
async fn wait_for(what: &str, counter: &std::sync::atomic::AtomicUsize, at_least: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while counter.load(std::sync::atomic::Ordering::SeqCst) < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Ingest keeps going while the application is deleted; afterwards nothing of it is
/// left: no message, and no delivery waiting to be sent.
async fn an_application_deleted_during_ingest_leaves_nothing_behind(store: SharedStore) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let (app_id, _) = app_with_endpoint(&store).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (stored, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (store, app_id) = (store.clone(), app_id.clone());
            let (stop, stored, refused) = (stop.clone(), stored.clone(), refused.clone());
            tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    match store.message_create(message(&app_id, "x", None), T0).await {
                        Ok(_) => stored.fetch_add(1, SeqCst),
                        Err(StoreError::NotFound) => refused.fetch_add(1, SeqCst),
                        Err(e) => panic!("ingest failed otherwise: {e:?}"),
                    };
                }
            })
        })
        .collect();
    // Let ingest get going, delete the application under it, and let the writers run
    // into the deletion before they stop.
    wait_for("ingest to get going", &stored, 50).await;
    store.app_delete(&app_id).await.unwrap();
    let after = stored.load(SeqCst);
    wait_for("ingest to be refused", &refused, 4).await;
    stop.store(true, SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        stored.load(SeqCst) <= after + 4,
        "at most the one write in flight per writer finished after the delete"
    );
    assert_eq!(
        store.next_due_at().await.unwrap(),
        None,
        "a delivery outlived its application"
    );
    let left = store
        .message_list(&app_id, MessageFilter::default(), list(10))
        .await
        .unwrap();
    assert!(left.data.is_empty(), "messages outlived their application");
}

async fn retention_purges_payloads_then_prunes_old_messages_in_batches(store: SharedStore) {
    let (app_id, _) = app_with_endpoint(&store).await;
    let hour = 3_600_000;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut m = message(&app_id, "x", Some(T0 + 60_000));
        m.retention_hours = 1;
        let (msg, jobs) = store.message_create(m, T0 + i).await.unwrap();
        // Three of them are delivered; two stay pending.
        if i < 3 {
            store
                .record_attempts(
                    vec![AttemptRecord {
                        delivery_id: jobs[0].delivery_id,
                        attempt: attempt_for(&jobs[0], 200, T0 + 10),
                        next: NextStep::Succeeded,
                    }],
                    None,
                )
                .await
                .unwrap();
        }
        ids.push(msg.id);
    }
    let (young, _) = store
        .message_create(message(&app_id, "x", None), T0 + 2 * hour)
        .await
        .unwrap();

    // Nothing has expired yet.
    assert_eq!(
        store
            .purge_expired_payloads(T0 + hour - 1, 10)
            .await
            .unwrap(),
        0
    );
    // Payloads go in bounded batches; the messages and their log stay.
    assert_eq!(
        store
            .purge_expired_payloads(T0 + 2 * hour, 3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .purge_expired_payloads(T0 + 2 * hour, 3)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .purge_expired_payloads(T0 + 2 * hour, 3)
            .await
            .unwrap(),
        0
    );
    for id in &ids {
        assert_eq!(store.message_get(&app_id, id).await.unwrap().payload, None);
    }
    assert!(store
        .message_get(&app_id, &young.id)
        .await
        .unwrap()
        .payload
        .is_some());

    // Metadata older than the cutoff goes too, except what is still pending.
    assert_eq!(store.prune_messages(T0 + hour, 2).await.unwrap(), 2);
    assert_eq!(store.prune_messages(T0 + hour, 2).await.unwrap(), 1);
    assert_eq!(store.prune_messages(T0 + hour, 2).await.unwrap(), 0);
    let mut left = Vec::new();
    for id in &ids {
        if store.message_get(&app_id, id).await.is_ok() {
            left.push(id.clone());
        }
    }
    assert_eq!(left, ids[3..], "pending messages are kept");
    assert!(store.message_get(&app_id, &young.id).await.is_ok());
    let log = store
        .attempt_list(
            &app_id,
            AttemptScope::Message(ids[0].clone()),
            AttemptFilter::default(),
            list(10),
        )
        .await
        .unwrap();
    assert!(
        log.data.is_empty(),
        "the pruned message's attempts went with it"
    );
}

async fn replays_send_what_was_missed_or_everything_again(store: SharedStore) {
    store.app_insert(app("app_r", None)).await.unwrap();
    // Four messages before the endpoint exists: three of the type it will want.
    for (i, t) in ["order.paid", "order.paid", "user.created", "order.paid"]
        .iter()
        .enumerate()
    {
        store
            .message_create(message("app_r", t, None), T0 + i as i64)
            .await
            .unwrap();
    }
    let ep = endpoint("app_r", "ep_late", Some(&["order.paid"]));
    store.endpoint_insert(ep.clone(), 10).await.unwrap();
    // Only the window's matching messages, once.
    assert_eq!(
        store
            .replay_missing(ep.clone(), T0 + 1, T0 + 10, T0 + 100)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .replay_missing(ep.clone(), T0, T0 + 10, T0 + 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .replay_missing(ep.clone(), T0, T0 + 10, T0 + 100)
            .await
            .unwrap(),
        0
    );
    let due = store.claim_due(T0 + 100, T0 + 60_000, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(due.iter().all(|j| j.trigger == Trigger::Manual));
    for job in &due {
        store
            .record_attempts(
                vec![AttemptRecord {
                    delivery_id: job.delivery_id,
                    attempt: attempt_for(job, 204, T0 + 101),
                    next: NextStep::Succeeded,
                }],
                None,
            )
            .await
            .unwrap();
    }
    // A recover leaves successes alone; a bulk replay sends them again.
    assert_eq!(
        store
            .recover("ep_late", T0, T0 + 1000, T0 + 200, false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .recover("ep_late", T0, T0 + 1000, T0 + 200, true)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .claim_due(T0 + 200, T0 + 60_000, 10)
            .await
            .unwrap()
            .len(),
        3
    );

    // Tasks are kept and listed.
    for (id, status) in [("qtask_1", "running"), ("qtask_2", "finished")] {
        store
            .task_save(Task {
                id: id.into(),
                kind: "endpoint.replay-missing".into(),
                status: status.into(),
                data: serde_json::json!({"appId": "app_r"}),
                updated_at: T0,
            })
            .await
            .unwrap();
    }
    assert_eq!(
        store.task_get("qtask_2").await.unwrap().data["appId"],
        "app_r"
    );
    assert!(matches!(
        store.task_get("qtask_3").await,
        Err(StoreError::NotFound)
    ));
    let finished = store
        .task_list(list(10), Some("finished".into()), None)
        .await
        .unwrap();
    assert_eq!(finished.data.len(), 1);
    let all = store
        .task_list(list(10), None, Some("endpoint.replay-missing".into()))
        .await
        .unwrap();
    assert_eq!(all.data.len(), 2);
}

async fn an_endpoint_failing_for_the_whole_window_is_disabled(store: SharedStore) {
    let (app_id, ep_id) = app_with_endpoint(&store).await;
    let window = Some(10_000);
    let attempt_at = |at: i64, code: i64| {
        let store = store.clone();
        let app_id = app_id.clone();
        async move {
            let (_, jobs) = store
                .message_create(message(&app_id, "x", Some(at + 60_000)), at)
                .await
                .unwrap();
            let next = if code < 300 {
                NextStep::Succeeded
            } else {
                NextStep::Failed
            };
            store
                .record_attempts(
                    vec![AttemptRecord {
                        delivery_id: jobs[0].delivery_id,
                        attempt: attempt_for(&jobs[0], code, at),
                        next,
                    }],
                    window,
                )
                .await
                .unwrap()
        }
    };
    // Failing since T0; a success at T0 + 5 s ends the streak.
    assert!(attempt_at(T0, 500).await.is_empty());
    assert!(attempt_at(T0 + 5_000, 200).await.is_empty());
    assert!(attempt_at(T0 + 6_000, 500).await.is_empty());
    assert!(
        attempt_at(T0 + 12_000, 500).await.is_empty(),
        "failing for 6 s only"
    );
    assert!(!store.endpoint_get(&app_id, &ep_id).await.unwrap().disabled);
    // Ten seconds of failures with no success: disabled, once.
    assert_eq!(attempt_at(T0 + 16_000, 503).await, vec![ep_id.clone()]);
    assert!(store.endpoint_get(&app_id, &ep_id).await.unwrap().disabled);
    // Re-enabled: a new streak starts; one failure does not disable it again.
    let mut ep = store.endpoint_get(&app_id, &ep_id).await.unwrap();
    ep.disabled = false;
    store.endpoint_update(ep).await.unwrap();
    assert!(attempt_at(T0 + 30_000, 500).await.is_empty());
    assert!(!store.endpoint_get(&app_id, &ep_id).await.unwrap().disabled);
    // Without a window, failures never disable.
    let (_, jobs) = store
        .message_create(message(&app_id, "x", Some(T0 + 99_000)), T0 + 90_000)
        .await
        .unwrap();
    let none = store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: jobs[0].delivery_id,
                attempt: attempt_for(&jobs[0], 500, T0 + 90_000),
                next: NextStep::Failed,
            }],
            None,
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn an_ordered_endpoint_gets_one_message_at_a_time_in_order(store: SharedStore) {
    store.app_insert(app("app_o", None)).await.unwrap();
    let mut ordered = endpoint("app_o", "ep_ordered", None);
    ordered.ordered = true;
    store.endpoint_insert(ordered, 10).await.unwrap();
    store
        .endpoint_insert(endpoint("app_o", "ep_free", None), 10)
        .await
        .unwrap();
    let mut msgs = Vec::new();
    for i in 0..3 {
        let (m, jobs) = store
            .message_create(message("app_o", "x", Some(T0 + 60_000)), T0 + i)
            .await
            .unwrap();
        // Only the unordered endpoint is handed off; the ordered one waits its turn.
        assert_eq!(
            jobs.iter()
                .map(|j| j.endpoint_id.as_str())
                .collect::<Vec<_>>(),
            ["ep_free"]
        );
        msgs.push(m.id);
    }
    let head = store.claim_due(T0 + 10, T0 + 60_000, 10).await.unwrap();
    assert_eq!(head.len(), 1, "one at a time");
    assert_eq!(head[0].msg_id, msgs[0]);
    // A failed attempt with a retry keeps the others waiting, even once it is due.
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: head[0].delivery_id,
                attempt: attempt_for(&head[0], 500, T0 + 11),
                next: NextStep::RetryAt(T0 + 1000),
            }],
            None,
        )
        .await
        .unwrap();
    assert!(store
        .claim_due(T0 + 500, T0 + 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    let retry = store.claim_due(T0 + 1000, T0 + 60_000, 10).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].msg_id, msgs[0]);
    // Given up: the next one goes.
    store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: retry[0].delivery_id,
                attempt: attempt_for(&retry[0], 500, T0 + 1001),
                next: NextStep::Failed,
            }],
            None,
        )
        .await
        .unwrap();
    let next = store.claim_due(T0 + 1002, T0 + 60_000, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].msg_id, msgs[1]);
    assert!(
        store
            .endpoint_get("app_o", "ep_ordered")
            .await
            .unwrap()
            .ordered
    );

    // With ordering keys, each key is its own sequence.
    let mut keyed = endpoint("app_o", "ep_keyed", Some(&["k"]));
    keyed.ordered = true;
    store.endpoint_insert(keyed, 10).await.unwrap();
    let mut ids = Vec::new();
    for key in ["a", "b", "a"] {
        let mut m = message("app_o", "k", None);
        m.ordering_key = Some(key.to_string());
        ids.push(store.message_create(m, T0 + 2000).await.unwrap().0.id);
    }
    let heads = store.claim_due(T0 + 2001, T0 + 60_000, 10).await.unwrap();
    let mut claimed: Vec<&str> = heads
        .iter()
        .filter(|j| j.endpoint_id == "ep_keyed")
        .map(|j| j.msg_id.as_str())
        .collect();
    claimed.sort();
    let mut expected = vec![ids[0].as_str(), ids[1].as_str()];
    expected.sort();
    assert_eq!(
        claimed, expected,
        "the first of each key, not the second 'a'"
    );
}

async fn sources_keep_their_config_and_log_and_go_with_their_application(store: SharedStore) {
    let src = Source {
        id: "src_1".into(),
        app_id: "app_src".into(),
        name: "github".into(),
        config: serde_json::json!({"scheme": "github", "secret": "sealed"}),
        created_at: T0,
        updated_at: T0,
    };
    store
        .source_insert(app("app_src", Some("src_1")), src.clone())
        .await
        .unwrap();
    // The id is taken, and so is the application's uid: nothing is half-inserted.
    let again = store
        .source_insert(app("app_other", Some("src_1")), src.clone())
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert!(matches!(
        store.app_get("app_other").await,
        Err(StoreError::NotFound)
    ));

    let got = store.source_get("src_1").await.unwrap();
    assert_eq!(
        (got.app_id.as_str(), got.config["scheme"].as_str()),
        ("app_src", Some("github"))
    );
    let mut changed = got.clone();
    changed.name = "renamed".into();
    changed.config = serde_json::json!({"scheme": "stripe"});
    changed.updated_at = T0 + 1;
    store.source_update(changed).await.unwrap();
    let got = store.source_get("src_1").await.unwrap();
    assert_eq!(
        (got.name.as_str(), got.config["scheme"].as_str()),
        ("renamed", Some("stripe"))
    );
    assert_eq!(store.source_list(list(10)).await.unwrap().data.len(), 1);

    // A forwarded request's headers travel with its deliveries, after the endpoint's.
    store
        .endpoint_insert(endpoint("app_src", "ep_src", None), 10)
        .await
        .unwrap();
    let mut new = message("app_src", "push", Some(T0 + 30_000));
    new.event_id = Some("delivery-1".into());
    new.headers = vec![
        ("x-github-event".into(), "push".into()),
        ("x-test".into(), "from-message".into()),
    ];
    let (msg, jobs) = store.message_create(new, T0).await.unwrap();
    let want = vec![
        ("x-github-event".to_string(), "push".to_string()),
        ("x-test".to_string(), "from-message".to_string()),
    ];
    assert_eq!(jobs[0].headers, want);
    store
        .release_deliveries(vec![jobs[0].delivery_id], T0)
        .await
        .unwrap();
    let claimed = store.claim_due(T0, T0 + 30_000, 10).await.unwrap();
    assert_eq!(claimed[0].headers, want);
    // An endpoint's messages filter by the delivery's status.
    let with_status = |status| MessageFilter {
        status: Some(status),
        ..Default::default()
    };
    let pending = store
        .delivered_messages("ep_src", with_status(1), list(10))
        .await
        .unwrap();
    assert_eq!(pending.data.len(), 1);
    let done = store
        .delivered_messages("ep_src", with_status(0), list(10))
        .await
        .unwrap();
    assert!(done.data.is_empty());

    for (i, verified) in [(1, false), (2, true)] {
        store
            .inbound_insert(InboundRequest {
                id: format!("inb_{i}"),
                source_id: "src_1".into(),
                msg_id: verified.then(|| msg.id.clone()),
                received_at: T0 + i,
                method: "POST".into(),
                path: "/in/src_1".into(),
                query: None,
                headers: vec![("x-github-event".into(), "push".into())],
                body: "{}".into(),
                verified,
                reason: (!verified).then(|| "the signature does not match".into()),
            })
            .await
            .unwrap();
    }
    let log = store
        .inbound_list(
            "src_1",
            ListQuery {
                limit: 10,
                iterator: None,
                descending: true,
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = log.data.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["inb_2", "inb_1"]);
    assert_eq!(
        log.data[1].reason.as_deref(),
        Some("the signature does not match")
    );
    assert_eq!(
        log.data[1].headers,
        vec![("x-github-event".to_string(), "push".to_string())]
    );

    // Retention: the older request goes, the newer stays.
    assert_eq!(store.inbound_prune(T0 + 2, 10).await.unwrap(), 1);
    let left = store.inbound_list("src_1", list(10)).await.unwrap();
    assert_eq!(left.data.len(), 1);
    assert_eq!(left.data[0].id, "inb_2");

    store.source_delete("src_1").await.unwrap();
    assert!(matches!(
        store.source_get("src_1").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.app_get("app_src").await,
        Err(StoreError::NotFound)
    ));
    assert!(store
        .inbound_list("src_1", list(10))
        .await
        .unwrap()
        .data
        .is_empty());
    assert!(matches!(
        store.source_delete("src_1").await,
        Err(StoreError::NotFound)
    ));
}

fn destination(app_id: &str, id: &str, kind: &str) -> Destination {
    Destination {
        id: id.into(),
        app_id: app_id.into(),
        uid: None,
        kind: kind.into(),
        status: DestinationStatus::Enabled,
        config: serde_json::json!({"url": "http://127.0.0.1:9/fifo"}),
        batch_size: 10,
        max_wait_secs: 0,
        event_types: None,
        channels: None,
        metadata: BTreeMap::new(),
        position: StreamPos::default(),
        failure_reason: None,
        next_retry_at: None,
        failures: 0,
        created_at: T0,
        updated_at: T0,
        payload_filter: None,
        transformation: None,
    }
}

fn read_from(app_id: &str, after: StreamPos, limit: usize) -> StreamRead {
    StreamRead {
        app_id: app_id.into(),
        after,
        limit,
        ..Default::default()
    }
}

/// Reads the whole stream after `after`, `limit` at a time, until it is done.
async fn read_all(store: &SharedStore, mut r: StreamRead) -> (Vec<StreamMessage>, StreamPos) {
    let mut out = Vec::new();
    loop {
        let batch = store.stream_read(r.clone()).await.unwrap();
        assert!(batch.next >= r.after, "a read never moves backwards");
        out.extend(batch.messages);
        r.after = batch.next;
        if batch.done {
            return (out, r.after);
        }
    }
}

/// Waits (boundedly) until `n` messages are readable after `after`: on PostgreSQL a
/// committed message is read only once every older transaction of the server (another
/// test's included) has ended.
async fn settle(store: &SharedStore, app_id: &str, after: StreamPos, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (read, _) = read_all(store, read_from(app_id, after, 100)).await;
        if read.len() >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} readable",
            read.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn destinations_read_the_stream_in_order_from_their_position(store: SharedStore) {
    let app_id = ids::generate(ids::APP);
    store.app_insert(app(&app_id, None)).await.unwrap();
    for _ in 0..2 {
        store
            .message_create(message(&app_id, "before", None), T0)
            .await
            .unwrap();
    }
    settle(&store, &app_id, StreamPos::default(), 2).await;
    let mut d = destination(&app_id, "dst_a", "pollingEndpoint");
    d.uid = Some("poll-1".into());
    let d = store.destination_insert(d, 2).await.unwrap();
    // A new destination starts at the end: what came before is not in its stream (on
    // PostgreSQL, messages of transactions that overlapped one still running when it was
    // created may still be: it errs towards sending, never towards skipping).
    let (before, start) = read_all(&store, read_from(&app_id, d.position, 10)).await;
    assert!(before.iter().all(|m| m.event_type == "before"));
    if store.backend() == "sqlite" {
        assert!(before.is_empty());
    }

    let kinds = ["a", "b", "a", "c", "a"];
    let mut sent = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let mut m = message(&app_id, kind, None);
        m.channels = (i % 2 == 0).then(|| vec!["even".to_string()]);
        m.payload = format!(r#"{{"i":{i}}}"#);
        m.headers = vec![("x-origin".into(), "gateway".into())];
        sent.push(
            store
                .message_create(m, T0 + 1_000 + i as i64)
                .await
                .unwrap()
                .0
                .id,
        );
    }
    settle(&store, &app_id, start, sent.len()).await;
    // Two at a time, in order, with payloads and the message's extra headers.
    let first = store
        .stream_read(read_from(&app_id, start, 2))
        .await
        .unwrap();
    assert_eq!(first.messages.len(), 2);
    assert!(!first.done);
    assert_eq!(first.messages[0].id, sent[0]);
    assert_eq!(first.messages[0].payload, r#"{"i":0}"#);
    assert_eq!(
        first.messages[0].headers,
        vec![("x-origin".to_string(), "gateway".to_string())]
    );
    assert!(first.messages[0].pos < first.messages[1].pos);
    assert_eq!(first.next, first.messages[1].pos);
    let (rest, end) = read_all(&store, read_from(&app_id, first.next, 2)).await;
    assert_eq!(
        rest.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        sent[2..].iter().map(String::as_str).collect::<Vec<_>>()
    );

    // The destination's filters, and the reader's own.
    let mut r = read_from(&app_id, start, 10);
    r.event_types = Some(vec!["a".into()]);
    r.channels = Some(vec!["even".into()]);
    let (kept, _) = read_all(&store, r.clone()).await;
    assert_eq!(
        kept.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [&sent[0], &sent[2], &sent[4]]
    );
    r.event_types = None;
    r.channels = None;
    r.event_type = Some("b".into());
    assert_eq!(read_all(&store, r.clone()).await.0.len(), 1);
    r.event_type = None;
    r.channel = Some("even".into());
    assert_eq!(read_all(&store, r).await.0.len(), 3);
    // The destination's payload filter, on the payload and the message's headers: a
    // read returns what passes and its position moves past what did not.
    let mut r = read_from(&app_id, start, 2);
    r.payload_filter = Some(
        PayloadFilter::new(serde_json::json!({
            "payload": {"i": {"$gte": 3}},
            "headers": {"x-origin": "gateway"}
        }))
        .unwrap(),
    );
    let batch = store.stream_read(r.clone()).await.unwrap();
    assert!(batch.messages.is_empty(), "the first two do not pass");
    assert_eq!(batch.next, first.next, "the read moved past them");
    let (kept, _) = read_all(&store, r.clone()).await;
    assert_eq!(
        kept.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [&sent[3], &sent[4]]
    );
    r.payload_filter = Some(
        PayloadFilter::new(serde_json::json!({"headers": {"x-origin": "elsewhere"}})).unwrap(),
    );
    assert!(read_all(&store, r).await.0.is_empty());
    // Kept with the destination.
    let mut filtered = store.destination_get(&app_id, "poll-1").await.unwrap();
    filtered.payload_filter =
        Some(PayloadFilter::new(serde_json::json!({"payload": {"i": 1}})).unwrap());
    store.destination_update(filtered).await.unwrap();
    let back = store.destination_get(&app_id, "poll-1").await.unwrap();
    assert_eq!(
        back.payload_filter.unwrap().doc,
        serde_json::json!({"payload": {"i": 1}})
    );

    // Lag: everything after the position, by the event-type filter.
    let lag = store.stream_lag(&app_id, start, None).await.unwrap();
    assert_eq!(lag.messages, 5);
    assert_eq!(lag.oldest_created_at, Some(T0 + 1_000));
    let lag = store
        .stream_lag(&app_id, start, Some(vec!["a".into()]))
        .await
        .unwrap();
    assert_eq!(lag.messages, 3);
    assert_eq!(
        store.stream_lag(&app_id, end, None).await.unwrap().messages,
        0
    );

    // A position from a time: just before the first message at or after it.
    let at = store.stream_position_at(&app_id, T0 + 1_003).await.unwrap();
    let from_time = store.stream_read(read_from(&app_id, at, 10)).await.unwrap();
    assert_eq!(from_time.messages[0].id, sent[3]);
    let later = store.stream_position_at(&app_id, T0 + 9_999).await.unwrap();
    assert!(store
        .stream_read(read_from(&app_id, later, 10))
        .await
        .unwrap()
        .messages
        .is_empty());

    // Consumer groups keep positions of their own.
    assert_eq!(store.consumer_position(&d.id, "g1").await.unwrap(), None);
    store
        .consumer_save(&d.id, "g1", first.next, T0)
        .await
        .unwrap();
    store.consumer_save(&d.id, "g2", end, T0).await.unwrap();
    store.consumer_save(&d.id, "g2", at, T0).await.unwrap();
    assert_eq!(
        store.consumer_position(&d.id, "g1").await.unwrap(),
        Some(first.next)
    );
    assert_eq!(
        store.consumer_position(&d.id, "g2").await.unwrap(),
        Some(at)
    );

    // Found by id or uid; an update keeps the position; uids are unique per application;
    // the bound per application holds.
    assert_eq!(
        store.destination_get(&app_id, "poll-1").await.unwrap().id,
        d.id
    );
    let mut changed = d.clone();
    changed.batch_size = 50;
    changed.event_types = Some(vec!["a".into()]);
    changed.status = DestinationStatus::Disabled;
    let changed = store.destination_update(changed).await.unwrap();
    assert_eq!(changed.position, d.position);
    assert_eq!(changed.batch_size, 50);
    assert_eq!(changed.status, DestinationStatus::Disabled);
    let mut twin = destination(&app_id, "dst_b", "fifoEndpoint");
    twin.uid = Some("poll-1".into());
    assert!(matches!(
        store.destination_insert(twin.clone(), 2).await,
        Err(StoreError::Conflict(_))
    ));
    twin.uid = None;
    store.destination_insert(twin, 2).await.unwrap();
    assert!(matches!(
        store
            .destination_insert(destination(&app_id, "dst_c", "fifoEndpoint"), 2)
            .await,
        Err(StoreError::Invalid(_))
    ));
    let page = store.destination_list(&app_id, list(1)).await.unwrap();
    assert_eq!(page.data.len(), 1);
    assert!(!page.done);

    // The poller token is scoped to the destination; a rotation ends the old one.
    store
        .destination_token_replace(&d, "tok_1", "hash-1", T0, T0)
        .await
        .unwrap();
    let found = store.token_find("hash-1").await.unwrap().unwrap();
    assert_eq!(found.destination_id.as_deref(), Some(d.id.as_str()));
    assert_eq!(found.app_id.as_deref(), Some(app_id.as_str()));
    store
        .destination_token_replace(&d, "tok_2", "hash-2", T0, T0 + 60_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .token_find("hash-1")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(T0 + 60_000),
        "the old token lasts for its grace period"
    );
    store
        .destination_token_replace(&d, "tok_3", "hash-3", T0, T0)
        .await
        .unwrap();
    assert!(store.token_find("hash-1").await.unwrap().is_none());
    assert!(store.token_find("hash-2").await.unwrap().is_none());

    // Deleting takes the consumers' positions and the token along.
    store.destination_delete(&d.id).await.unwrap();
    assert!(matches!(
        store.destination_get(&app_id, &d.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.token_find("hash-3").await.unwrap().is_none());
    assert_eq!(store.consumer_position(&d.id, "g1").await.unwrap(), None);
}

/// Many writers at once while a reader follows the stream: every message is read once,
/// in increasing positions, and none lands behind the reader (on PostgreSQL sequence
/// numbers are handed out in an order other than the commit order).
async fn concurrent_ingest_never_lands_behind_a_reader(store: SharedStore) {
    let app_id = ids::generate(ids::APP);
    store.app_insert(app(&app_id, None)).await.unwrap();
    let start = store
        .destination_insert(destination(&app_id, "dst_r", "pollingEndpoint"), 10)
        .await
        .unwrap()
        .position;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let app_id = app_id.clone();
            tokio::spawn(async move {
                let mut created = Vec::new();
                for i in 0..40 {
                    let m = message(&app_id, &format!("w{w}"), None);
                    created.push(store.message_create(m, T0 + i).await.unwrap().0.id);
                }
                created
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut at = start;
    let mut last = start;
    let mut writers_done = false;
    let mut created = HashSet::new();
    let mut pending = writers;
    let started = std::time::Instant::now();
    loop {
        let batch = store.stream_read(read_from(&app_id, at, 7)).await.unwrap();
        for m in &batch.messages {
            assert!(m.pos > last, "positions increase");
            last = m.pos;
            seen.push(m.id.clone());
        }
        at = batch.next;
        if writers_done && batch.done && seen.len() >= created.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {} messages read",
            seen.len(),
            created.len()
        );
        if !writers_done && pending.iter().all(|h| h.is_finished()) {
            for h in pending.drain(..) {
                created.extend(h.await.unwrap());
            }
            writers_done = true;
        }
        tokio::task::yield_now().await;
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no message read twice");
    assert_eq!(unique, created, "every message read once");
}

async fn retention_expires_positions_it_passes(store: SharedStore) {
    let app_id = ids::generate(ids::APP);
    store.app_insert(app(&app_id, None)).await.unwrap();
    let d = store
        .destination_insert(destination(&app_id, "dst_x", "fifoEndpoint"), 10)
        .await
        .unwrap();
    for i in 0..3 {
        store
            .message_create(message(&app_id, "old", None), T0 + i)
            .await
            .unwrap();
    }
    let (kept, _) = store
        .message_create(message(&app_id, "new", None), T0 + 10_000)
        .await
        .unwrap();
    settle(&store, &app_id, d.position, 4).await;
    assert_eq!(store.prune_messages(T0 + 5_000, 10).await.unwrap(), 3);
    // The destination stood before what was deleted: told, not skipped.
    let err = store
        .stream_read(read_from(&app_id, d.position, 10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Gone(_)), "{err:?}");
    // A position from a time never lands before what retention kept.
    let at = store.stream_position_at(&app_id, T0).await.unwrap();
    let batch = store.stream_read(read_from(&app_id, at, 10)).await.unwrap();
    assert_eq!(
        batch
            .messages
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [kept.id.as_str()]
    );
}

async fn a_sending_destination_is_leased_to_one_owner_at_a_time(store: SharedStore) {
    let app_id = ids::generate(ids::APP);
    store.app_insert(app(&app_id, None)).await.unwrap();
    let d = store
        .destination_insert(destination(&app_id, "dst_l", "fifoEndpoint"), 10)
        .await
        .unwrap();
    store
        .destination_insert(destination(&app_id, "dst_p", "pollingEndpoint"), 10)
        .await
        .unwrap();
    let fifo = vec!["fifoEndpoint".to_string()];
    let a = store
        .destination_claim(fifo.clone(), "node-a", T0, T0 + 30_000, 10)
        .await
        .unwrap();
    assert_eq!(
        a.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["dst_l"]
    );
    assert!(store
        .destination_claim(fifo.clone(), "node-b", T0 + 1, T0 + 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    // Its owner renews it.
    assert_eq!(
        store
            .destination_claim(fifo.clone(), "node-a", T0 + 2, T0 + 40_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let (m, _) = store
        .message_create(message(&app_id, "x", None), T0)
        .await
        .unwrap();
    settle(&store, &app_id, d.position, 1).await;
    let batch = store
        .stream_read(read_from(&app_id, d.position, 10))
        .await
        .unwrap();
    assert_eq!(batch.messages[0].id, m.id);

    // A failure is recorded by the owner only.
    assert!(!store
        .destination_fail(
            "dst_l",
            "node-b",
            d.position,
            DestinationFailure {
                status: DestinationStatus::Retrying,
                reason: "500".into(),
                next_retry_at: Some(T0 + 5),
            },
            T0,
        )
        .await
        .unwrap());
    assert!(store
        .destination_fail(
            "dst_l",
            "node-a",
            d.position,
            DestinationFailure {
                status: DestinationStatus::Retrying,
                reason: "answered 500".into(),
                next_retry_at: Some(T0 + 5),
            },
            T0,
        )
        .await
        .unwrap());
    let failed = store.destination_get(&app_id, "dst_l").await.unwrap();
    assert_eq!(failed.status, DestinationStatus::Retrying);
    assert_eq!(failed.failures, 1);
    assert_eq!(failed.failure_reason.as_deref(), Some("answered 500"));
    assert_eq!(failed.next_retry_at, Some(T0 + 5));

    // Once the lease ends another node takes over, and the old owner can no longer
    // move the position; a stale position cannot either.
    let b = store
        .destination_claim(fifo.clone(), "node-b", T0 + 40_001, T0 + 70_000, 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert!(!store
        .destination_advance("dst_l", "node-a", d.position, batch.next, T0)
        .await
        .unwrap());
    assert!(store
        .destination_advance("dst_l", "node-b", d.position, batch.next, T0)
        .await
        .unwrap());
    assert!(!store
        .destination_advance("dst_l", "node-b", d.position, batch.next, T0)
        .await
        .unwrap());
    let moved = store.destination_get(&app_id, "dst_l").await.unwrap();
    assert_eq!(moved.position, batch.next);
    assert_eq!(
        moved.status,
        DestinationStatus::Enabled,
        "a success ends the retrying"
    );
    assert_eq!((moved.failures, moved.failure_reason), (0, None));

    // Paused by failures: nobody claims it until a seek (or an operator) enables it.
    store
        .destination_fail(
            "dst_l",
            "node-b",
            moved.position,
            DestinationFailure {
                status: DestinationStatus::Paused,
                reason: "gave up".into(),
                next_retry_at: None,
            },
            T0,
        )
        .await
        .unwrap();
    store.destination_release("dst_l", "node-b").await.unwrap();
    assert!(store
        .destination_claim(fifo.clone(), "node-a", T0 + 80_000, T0 + 90_000, 10)
        .await
        .unwrap()
        .is_empty());
    let sought = store
        .destination_seek("dst_l", d.position, T0 + 80_000)
        .await
        .unwrap();
    assert_eq!(sought.status, DestinationStatus::Enabled);
    assert_eq!(sought.position, d.position);
    assert_eq!(
        store
            .destination_claim(fifo, "node-a", T0 + 80_000, T0 + 90_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Payload filters at fan-out: 1,000 endpoints, each with a filter on the payload (and a
/// tenth also on a header); every message gets exactly the deliveries its filters say.
async fn payload_filters_choose_the_endpoints_at_fan_out(store: SharedStore) {
    const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];
    let app_id = ids::generate(ids::APP);
    store.app_insert(app(&app_id, None)).await.unwrap();
    for i in 0..1000usize {
        let mut ep = endpoint(&app_id, &format!("ep_f{i:04}"), None);
        let mut filter = serde_json::json!({
            "payload": {"total": {"$gte": i * 10}, "region": REGIONS[i % 4]}
        });
        if i % 10 == 0 {
            filter["headers"] = serde_json::json!({"x-tenant": {"$in": ["acme", "globex"]}});
        }
        ep.payload_filter = Some(PayloadFilter::new(filter).unwrap());
        store.endpoint_insert(ep, 1000).await.unwrap();
    }
    let expected = |total: usize, region: &str, tenant: Option<&str>| -> HashSet<String> {
        (0..1000usize)
            .filter(|i| {
                i * 10 <= total
                    && REGIONS[i % 4] == region
                    && (i % 10 != 0 || matches!(tenant, Some("acme" | "globex")))
            })
            .map(|i| format!("ep_f{i:04}"))
            .collect()
    };
    for (total, region, tenant) in [
        (5_000, "eu", None),
        (5_000, "eu", Some("acme")),
        (120, "apac", Some("initech")),
        (99_999, "latam", Some("globex")),
        (0, "us", None),
        (3_000, "mars", Some("acme")),
    ] {
        let mut m = message(&app_id, "order.paid", None);
        m.payload = serde_json::json!({"total": total, "region": region}).to_string();
        m.headers = tenant
            .map(|t| vec![("X-Tenant".to_string(), t.to_string())])
            .unwrap_or_default();
        let (msg, _) = store.message_create(m, T0).await.unwrap();
        let got: HashSet<String> = store
            .delivery_targets(&msg.id, list(2000))
            .await
            .unwrap()
            .data
            .into_iter()
            .map(|t| t.endpoint.id)
            .collect();
        assert_eq!(
            got,
            expected(total, region, tenant),
            "{total} {region} {tenant:?}"
        );
    }
    // The filter reads back as it was saved.
    let ep = store.endpoint_get(&app_id, "ep_f0010").await.unwrap();
    assert_eq!(
        ep.payload_filter.unwrap().doc["headers"]["x-tenant"]["$in"][0],
        "acme"
    );
}

/// An endpoint's transformation is written only by its own call (an endpoint update
/// leaves it), and every job for the endpoint carries it while it is on, with the
/// message's event type: at fan-out, from a claim and from a resend. A canceled
/// attempt leaves the failure streak alone.
async fn transformations_are_kept_apart_and_travel_with_the_jobs(store: SharedStore) {
    let app_id = ids::generate(ids::APP);
    store.app_insert(app(&app_id, None)).await.unwrap();
    let ep_id = ids::generate(ids::ENDPOINT);
    store
        .endpoint_insert(endpoint(&app_id, &ep_id, None), 10)
        .await
        .unwrap();
    let t = Transformation {
        code: Some("function handler(w) { return w; }".into()),
        enabled: true,
        variables: BTreeMap::from([("k".to_string(), "v".to_string())]),
        updated_at: T0,
    };
    store
        .endpoint_set_transformation(&ep_id, Some(t.clone()))
        .await
        .unwrap();
    let mut ep = store.endpoint_get(&app_id, &ep_id).await.unwrap();
    assert_eq!(ep.transformation.as_deref(), Some(&t));
    // An update of the endpoint's other fields keeps it.
    ep.description = "changed".into();
    ep.transformation = None;
    store.endpoint_update(ep).await.unwrap();
    let ep = store.endpoint_get(&app_id, &ep_id).await.unwrap();
    assert_eq!(ep.transformation.as_deref(), Some(&t));

    // At fan-out (leased to this process), with the event type.
    let (msg, jobs) = store
        .message_create(message(&app_id, "order.paid", Some(T0 + 60_000)), T0)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].event_type, "order.paid");
    assert_eq!(jobs[0].transformation.as_deref(), Some(&t));
    // From a claim (the lease ran out).
    let claimed = store
        .claim_due(T0 + 120_000, T0 + 180_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event_type, "order.paid");
    assert_eq!(claimed[0].transformation.as_deref(), Some(&t));

    // A canceled attempt: the delivery is canceled, the endpoint not failing.
    let attempt = Attempt {
        id: ids::generate(ids::ATTEMPT),
        msg_id: msg.id.clone(),
        endpoint_id: ep_id.clone(),
        app_id: app_id.clone(),
        url: "http://127.0.0.1:9/x".into(),
        status: 4,
        response_status_code: 0,
        response: "canceled".into(),
        response_duration_ms: 0,
        trigger_type: 0,
        created_at: T0 + 120_000,
    };
    let disabled = store
        .record_attempts(
            vec![AttemptRecord {
                delivery_id: claimed[0].delivery_id,
                attempt,
                next: NextStep::Canceled,
            }],
            Some(1),
        )
        .await
        .unwrap();
    assert!(disabled.is_empty(), "a cancel never disables an endpoint");
    let stats = store.endpoint_stats(&ep_id, 0, i64::MAX).await.unwrap();
    assert_eq!((stats.canceled, stats.fail), (1, 0));
    assert!(!store.endpoint_get(&app_id, &ep_id).await.unwrap().disabled);

    // Switched off: jobs go without it. A resend carries the event type too.
    let off = Transformation {
        enabled: false,
        ..t.clone()
    };
    store
        .endpoint_set_transformation(&ep_id, Some(off))
        .await
        .unwrap();
    let job = store
        .resend(&app_id, &msg.id, &ep_id, T0 + 130_000, Some(T0 + 190_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.event_type, "order.paid");
    assert!(job.transformation.is_none());
    // Removed.
    store
        .endpoint_set_transformation(&ep_id, None)
        .await
        .unwrap();
    assert!(store
        .endpoint_get(&app_id, &ep_id)
        .await
        .unwrap()
        .transformation
        .is_none());
    assert!(matches!(
        store.endpoint_set_transformation("ep_missing", None).await,
        Err(StoreError::NotFound)
    ));
}

async fn the_audit_trail_is_appended_listed_by_filter_and_pruned(store: SharedStore) {
    let event = |n: i64, actor: &str, object: Option<&str>, allowed: bool| AuditEvent {
        id: format!("aud_{n:04}"),
        at: T0 + n,
        actor_id: actor.into(),
        actor_name: format!("{actor} name"),
        role: Some("developer".into()),
        actor_app_id: None,
        method: "PATCH".into(),
        route: "/api/v1/app/{app_id}".into(),
        path: format!("/api/v1/app/{}", object.unwrap_or("-")),
        object_id: object.map(Into::into),
        status: if allowed { 200 } else { 403 },
        allowed,
        source: Some("127.0.0.1".into()),
        detail: Some(r#"{"name":"x"}"#.into()),
        after: allowed.then(|| r#"{"id":"app_1","name":"x"}"#.into()),
        before: Some(r#"{"id":"app_1","name":"old"}"#.into()),
    };
    store
        .audit_append(vec![
            event(1, "tok_a", Some("app_1"), true),
            event(2, "tok_b", Some("app_2"), false),
            event(3, "tok_a", Some("app_2"), true),
        ])
        .await
        .unwrap();
    store
        .audit_append(vec![event(4, "tok_b", None, true)])
        .await
        .unwrap();
    let list = |f: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .audit_list(
                    f,
                    ListQuery {
                        limit: 50,
                        iterator: None,
                        descending: true,
                    },
                )
                .await
                .unwrap()
                .data
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(AuditFilter::default()).await,
        ["aud_0004", "aud_0003", "aud_0002", "aud_0001"]
    );
    let back = store
        .audit_list(
            AuditFilter::default(),
            ListQuery {
                limit: 1,
                iterator: None,
                descending: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(back.data, vec![event(1, "tok_a", Some("app_1"), true)]);
    let by_actor = AuditFilter {
        actor_id: Some("tok_a".into()),
        ..Default::default()
    };
    assert_eq!(list(by_actor).await, ["aud_0003", "aud_0001"]);
    let by_object = AuditFilter {
        object_id: Some("app_2".into()),
        ..Default::default()
    };
    assert_eq!(list(by_object).await, ["aud_0003", "aud_0002"]);
    let refused = AuditFilter {
        allowed: Some(false),
        ..Default::default()
    };
    assert_eq!(list(refused).await, ["aud_0002"]);
    let window = AuditFilter {
        since: Some(T0 + 2),
        until: Some(T0 + 4),
        ..Default::default()
    };
    assert_eq!(list(window).await, ["aud_0003", "aud_0002"]);
    assert_eq!(store.audit_prune(T0 + 3, 10).await.unwrap(), 2);
    assert_eq!(list(AuditFilter::default()).await, ["aud_0004", "aud_0003"]);
}

async fn people_sign_in_with_sessions_that_expire_and_end(store: SharedStore) {
    let person = Person {
        id: "per_1".into(),
        email: "ana@example.com".into(),
        password_hash: "$argon2id$v=19$x".into(),
        role: "developer".into(),
        environment_roles: [("staging".to_string(), "admin".to_string())].into(),
        totp_secret: None,
        created_at: T0,
        updated_at: T0,
    };
    store.person_insert(person.clone()).await.unwrap();
    let mut other = person.clone();
    other.id = "per_2".into();
    assert!(matches!(
        store.person_insert(other).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.person_get("ANA@example.com").await.unwrap(), person);
    assert_eq!(store.person_get("per_1").await.unwrap(), person);
    let mut changed = person.clone();
    changed.role = "viewer".into();
    changed.totp_secret = Some("sealed".into());
    changed.environment_roles = [("production".to_string(), "viewer".to_string())].into();
    store.person_update(changed.clone()).await.unwrap();
    assert_eq!(store.person_get("per_1").await.unwrap(), changed);
    let session = PersonSession {
        hash: "session-hash".into(),
        person_id: "per_1".into(),
        csrf: "csrf".into(),
        created_at: T0,
        expires_at: T0 + 1000,
    };
    store.session_insert(session.clone()).await.unwrap();
    let (found, who) = store
        .session_find("session-hash", T0 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, who), (session.clone(), changed));
    assert!(
        store
            .session_find("session-hash", T0 + 1000)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    store.session_delete("session-hash").await.unwrap();
    assert!(
        store
            .session_find("session-hash", T0 + 10)
            .await
            .unwrap()
            .is_none(),
        "ended"
    );
    store.session_insert(session.clone()).await.unwrap();
    assert_eq!(store.sessions_end_for("per_1").await.unwrap(), 1);
    assert!(
        store
            .session_find("session-hash", T0 + 10)
            .await
            .unwrap()
            .is_none(),
        "all ended"
    );
    store.session_insert(session).await.unwrap();
    let listed = store
        .person_list(ListQuery {
            limit: 10,
            iterator: None,
            descending: false,
        })
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);
    store.person_delete("per_1").await.unwrap();
    assert!(
        store
            .session_find("session-hash", T0 + 10)
            .await
            .unwrap()
            .is_none(),
        "sessions go with the person"
    );
    assert!(matches!(
        store.person_get("per_1").await,
        Err(StoreError::NotFound)
    ));
}

async fn settings_are_one_object_kept_and_replaced(store: SharedStore) {
    assert_eq!(store.settings_get().await.unwrap(), None);
    let first = serde_json::json!({"portalColor": "#123456", "nested": {"a": [1, 2]}});
    store.settings_put(first.clone(), T0).await.unwrap();
    assert_eq!(store.settings_get().await.unwrap(), Some(first));
    let second = serde_json::json!({"other": true});
    store.settings_put(second.clone(), T0 + 1).await.unwrap();
    assert_eq!(store.settings_get().await.unwrap(), Some(second));
}

/// Stores `n` messages of one endpoint at once (so they are written in batches) and
/// returns their deliveries, leased to the caller.
async fn leased_deliveries(store: &SharedStore, app_id: &str, n: i64, at: i64) -> Vec<DeliveryJob> {
    let mut creating = Vec::new();
    for i in 0..n {
        let (store, app_id) = (store.clone(), app_id.to_string());
        creating.push(tokio::spawn(async move {
            let (_, jobs) = store
                .message_create(message(&app_id, "x", Some(T0 + 60_000)), at + i)
                .await
                .unwrap();
            jobs.into_iter().next().unwrap()
        }));
    }
    let mut jobs = Vec::new();
    for c in creating {
        jobs.push(c.await.unwrap());
    }
    jobs
}

/// PostgreSQL only: recording attempts keeps finding deliveries by key as the table
/// grows. A prepared statement is switched to a generic plan after five runs, costed
/// with the table's size at that moment; for a batch of attempts on a small table that
/// plan reads the whole table, and it was kept as the table grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_recording_attempts_reads_no_whole_table_as_it_grows() {
    let Some(backend) = Backend::postgres().await else {
        eprintln!("HERALD_TEST_DATABASE_URL is not set: PostgreSQL not tested");
        return;
    };
    let Cleanup::Database { admin_url, name } = &backend.cleanup else {
        unreachable!()
    };
    let url = with_database(admin_url, name);
    // One connection, so that every batch runs on the connection that cached the plan.
    let store: SharedStore = Arc::new(PgStore::connect(&url, 1, Duration::ZERO).await.unwrap());
    let (app_id, _) = app_with_endpoint(&store).await;
    let ok = |job: &DeliveryJob| AttemptRecord {
        delivery_id: job.delivery_id,
        attempt: attempt_for(job, 204, T0 + 10_000),
        next: NextStep::Succeeded,
    };
    // While the table is small (200 deliveries), seven batches of 25 attempts: enough
    // runs for PostgreSQL to settle on a generic plan, which would read the table.
    let early = leased_deliveries(&store, &app_id, 200, T0).await;
    for batch in early[..175].chunks(25) {
        let records = batch.iter().map(ok).collect();
        store.record_attempts(records, None).await.unwrap();
    }
    // Then it grows to 20,200, and 400 attempts are recorded in batches of 20, a size for
    // which reading by key is plainly cheaper than reading the table.
    let late = leased_deliveries(&store, &app_id, 20_000, T0 + 1_000).await;
    for batch in late[..400].chunks(20) {
        let records = batch.iter().map(ok).collect();
        store.record_attempts(records, None).await.unwrap();
    }

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // A backend hands its counters over when it goes idle, within a second or so: wait
    // until the 575 updates are counted, then read the rows scanned whole-table.
    let started = std::time::Instant::now();
    let scanned = loop {
        client
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let row = client
            .query_one(
                "SELECT n_tup_upd, seq_tup_read FROM pg_stat_user_tables WHERE relname = 'delivery'",
                &[],
            )
            .await
            .unwrap();
        let (updated, scanned): (i64, i64) = (row.get(0), row.get(1));
        if updated >= 575 {
            break scanned;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "PostgreSQL counted {updated} updated deliveries of 575"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The early batches may each read the small table (7 x 200); one whole read of the
    // grown table would pass 20,000.
    assert!(
        scanned < 20_000,
        "recording attempts read {scanned} delivery rows by whole-table scans"
    );
    drop(store);
    backend.finish().await;
}
