//! PostgreSQL fixtures: a scratch database per test (on the server named by
//! `HERALD_TEST_DATABASE_URL`) and a TCP proxy in front of PostgreSQL that a test can cut
//! and restore, to play a database outage without touching the shared server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A database of its own for one test, dropped afterwards.
pub struct ScratchDb {
    admin_url: String,
    pub name: String,
    /// The URL of the scratch database.
    pub url: String,
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    herald_store::postgres::url_with_database(url, name)
}

/// `url` pointed at another host:port (the proxy), keeping user, database and options.
pub fn via(url: &str, port: u16) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let user_end = rest.find('@').map_or(0, |i| i + 1);
    let host_end = rest[user_end..]
        .find(['/', '?'])
        .map_or(rest.len(), |i| user_end + i);
    format!(
        "{}{}127.0.0.1:{port}{}",
        &url[..scheme_end],
        &rest[..user_end],
        &rest[host_end..]
    )
}

impl ScratchDb {
    /// `None` when `HERALD_TEST_DATABASE_URL` is not set (the caller skips the test),
    /// unless `HERALD_REQUIRE_POSTGRES` says it must run.
    pub async fn create(tag: &str) -> Option<ScratchDb> {
        let Ok(admin_url) = std::env::var("HERALD_TEST_DATABASE_URL") else {
            // CI sets this so that a missing database fails instead of skipping.
            assert!(
                std::env::var_os("HERALD_REQUIRE_POSTGRES").is_none(),
                "HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_DATABASE_URL is not"
            );
            return None;
        };
        let name = format!(
            "herald_{tag}_{}",
            herald_core::ids::random_base62(10).to_lowercase()
        );
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .expect("HERALD_TEST_DATABASE_URL is set but PostgreSQL cannot be reached");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = with_database(&admin_url, &name);
        Some(ScratchDb {
            admin_url,
            name,
            url,
        })
    }

    /// Runs one query on the scratch database and returns the first column of the first
    /// row as i64.
    pub async fn count(&self, sql: &str) -> i64 {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.query_one(sql, &[]).await.unwrap().get(0)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any async context we may block: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        })
        .join();
    }
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`. `cut` closes every connection and
/// refuses new ones (they are accepted and closed at once, as a database that is down
/// behind a load balancer looks); `restore` lets connections through again.
pub struct TcpProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: String) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (up, connections) = (up.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    if !up.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            })
        };
        TcpProxy {
            port,
            up,
            connections,
            accept,
        }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The host:port of a postgres:// URL (5432 when the port is left out).
pub fn host_port(url: &str) -> String {
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let rest = &rest[rest.find('@').map_or(0, |i| i + 1)..];
    let hp = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if hp.contains(':') {
        hp.to_string()
    } else {
        format!("{hp}:5432")
    }
}

#[test]
fn urls_are_rewritten_for_the_proxy_and_scratch_databases() {
    let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
    assert_eq!(
        with_database(url, "x"),
        "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"
    );
    assert_eq!(
        via(url, 7),
        "postgres://postgres@127.0.0.1:7/postgres?sslmode=disable"
    );
    assert_eq!(host_port(url), "127.0.0.1:5432");
    assert_eq!(host_port("postgres://localhost/db"), "localhost:5432");
    assert_eq!(with_database("postgres://h:1", "d"), "postgres://h:1/d");
}
