//! The read connections, each on a thread of its own.
//!
//! Reads used to run on tokio's blocking pool, which starts a thread whenever none is
//! idle at the moment of the call; under a burst it ran 30 threads or more for eight
//! connections, and each thread kept its own allocator heap (tens of MB of RSS with
//! 100,000 endpoints, see BENCHMARKS.md "Memory with many tenants"). A fixed set of
//! threads, each owning one connection and taking closures from one queue, bounds both,
//! and keeps reads off the pool that DNS lookups use, so a slow resolver cannot hold up
//! the store.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// A read to run: given the thread's connection, or the error that opening it gave.
type Job = Box<dyn FnOnce(Result<&Connection>) + Send>;

pub(crate) struct Readers {
    jobs: mpsc::Sender<Job>,
}

/// Read threads (and connections): twice the cores, and at least 8.
pub(crate) fn pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(8, |n| n.get() * 2)
        .max(8)
}

impl Readers {
    /// Starts `threads` read threads on the database at `path`. Each opens its
    /// connection at its first read; all of them end when the `Readers` is dropped.
    pub(crate) fn start(path: &Path, threads: usize) -> Readers {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name(format!("herald-store-read-{i}"))
                .spawn(move || run(&path, &rx))
                .expect("spawn a store read thread");
        }
        Readers { jobs: tx }
    }

    /// Runs `f` on one of the read connections and answers its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(conn.and_then(f));
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        // The sender is dropped without an answer only when the closure panicked.
        rx.await
            .map_err(|_| StoreError::Unavailable("the read was not carried out".into()))?
    }
}

/// One read thread: takes the next job from the shared queue until the queue closes.
fn run(path: &Path, jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut conn: Option<Connection> = None;
    loop {
        let next = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(job) = next else { return };
        if conn.is_none() {
            match super::open_connection(path, true) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(e.into()));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        // A panicking read fails its own caller (its answer is dropped), not the thread.
        let _ = catch_unwind(AssertUnwindSafe(|| job(Ok(c))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "herald-readers-{}-{}",
            std::process::id(),
            herald_core::ids::random_base62(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);",
        )
        .unwrap();
        (dir, path)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_runs_on_the_fixed_threads_only() {
        let (dir, path) = database();
        let readers = Arc::new(Readers::start(&path, 3));
        let mut reads = Vec::new();
        for _ in 0..200 {
            let readers = readers.clone();
            reads.push(tokio::spawn(async move {
                readers
                    .run(|c| {
                        let x: i64 = c.query_row("SELECT x FROM t", [], |r| r.get(0))?;
                        Ok((x, std::thread::current().name().map(str::to_owned)))
                    })
                    .await
            }));
        }
        let mut threads = std::collections::BTreeSet::new();
        for read in reads {
            let (x, name) = read.await.unwrap().unwrap();
            assert_eq!(x, 7);
            threads.insert(name.expect("read threads are named"));
        }
        assert!(threads.len() <= 3, "{threads:?}");
        for name in &threads {
            assert!(
                [
                    "herald-store-read-0",
                    "herald-store-read-1",
                    "herald-store-read-2"
                ]
                .contains(&name.as_str()),
                "{name}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_read_that_panics_fails_alone_and_the_thread_goes_on() {
        let (dir, path) = database();
        let readers = Readers::start(&path, 1);
        let failed = readers
            .run(|_| -> Result<()> { panic!("a read that panics") })
            .await;
        assert!(
            matches!(failed, Err(StoreError::Unavailable(ref m)) if m.contains("not carried out")),
            "{failed:?}"
        );
        // The one thread is still there and serves the next read.
        let x: i64 = readers
            .run(|c| Ok(c.query_row("SELECT x FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(x, 7);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_opened_fails_each_read_with_its_error() {
        let missing = std::env::temp_dir()
            .join(format!(
                "herald-readers-missing-{}",
                herald_core::ids::random_base62(8)
            ))
            .join("none.db");
        let readers = Readers::start(&missing, 1);
        for _ in 0..2 {
            let err = readers.run(|_| Ok(())).await.expect_err("no database");
            assert!(err.to_string().contains("unable to open"), "{err}");
        }
    }
}
