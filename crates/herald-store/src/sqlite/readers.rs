//! The read connections and the fixed set of threads that run reads on them.
//!
//! Reads used to run on tokio's blocking pool, which starts a thread whenever none is
//! idle at the moment of the call: a burst of fan-out ran 30 to 40 threads for eight
//! connections. A fixed set of named threads taking closures from one queue bounds the
//! threads, costs less per read (BENCHMARKS.md, "Memory with many tenants"), and keeps
//! reads off the pool that DNS lookups use, so a slow resolver cannot hold up the store.
//! Connections are opened on demand, kept for the next read, and closed when reads stop
//! for a while, which returns their page caches.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// A read to run: given a connection, or the error that opening one gave, it reads and
/// returns the sending of its answer, which waits until the connection is back in the
/// pool (so a caller that has its answer finds the pool as the read left it).
type Job = Box<dyn FnOnce(Result<&Connection>) -> Answer + Send>;
type Answer = Box<dyn FnOnce() + Send>;

pub(crate) struct Readers {
    jobs: mpsc::Sender<Job>,
    /// The threads' state; only the tests look at it from here.
    #[cfg_attr(not(test), allow(dead_code))]
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    jobs: Mutex<mpsc::Receiver<Job>>,
    /// Connections not in use, each with when it was last used, the most recent last
    /// (reads take from the end, so the ones a light load leaves unused age at the
    /// front); never more than there are threads.
    idle: Mutex<Vec<(Connection, Instant)>>,
    close_idle_after: Duration,
}

/// Read threads (and connections): twice the cores, and at least 8.
pub(crate) fn pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(8, |n| n.get() * 2)
        .max(8)
}

impl Readers {
    /// Starts `threads` read threads on the database at `path`. Connections are opened
    /// when reads need them, and each is closed once unused for `close_idle_after`; the
    /// threads end when the `Readers` is dropped.
    pub(crate) fn start(path: &Path, threads: usize, close_idle_after: Duration) -> Readers {
        let (tx, rx) = mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            jobs: Mutex::new(rx),
            idle: Mutex::new(Vec::new()),
            close_idle_after,
        });
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("herald-store-read-{i}"))
                .spawn(move || run(&shared))
                .expect("spawn a store read thread");
        }
        Readers { jobs: tx, shared }
    }

    /// Runs `f` on one of the read connections and answers its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let out = conn.and_then(f);
            Box::new(move || {
                let _ = tx.send(out);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        // The sender is dropped without an answer only when the closure panicked.
        rx.await
            .map_err(|_| StoreError::Unavailable("the read was not carried out".into()))?
    }

    /// Connections open and not in use.
    #[cfg(test)]
    fn idle_connections(&self) -> usize {
        lock(&self.shared.idle).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One read thread: takes the next job from the shared queue until the queue closes.
fn run(shared: &Shared) {
    loop {
        let next = lock(&shared.jobs).recv_timeout(shared.close_idle_after);
        close_unused(shared);
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let reused = lock(&shared.idle).pop().map(|(c, _)| c);
        let conn = match reused {
            Some(c) => c,
            None => match super::open_connection(&shared.path, true) {
                Ok(c) => c,
                Err(e) => {
                    job(Err(e.into()))();
                    continue;
                }
            },
        };
        // A panicking read fails its own caller (its answer is dropped), not the thread.
        let answer = catch_unwind(AssertUnwindSafe(|| job(Ok(&conn))));
        lock(&shared.idle).push((conn, Instant::now()));
        if let Ok(answer) = answer {
            answer();
        }
    }
}

/// Closes the connections unused for `close_idle_after`: a burst opens one per thread,
/// and the periodic reads of a quiet server keep only one or two of them busy.
fn close_unused(shared: &Shared) {
    let mut idle = lock(&shared.idle);
    let fresh = idle
        .iter()
        .position(|(_, used)| used.elapsed() < shared.close_idle_after)
        .unwrap_or(idle.len());
    // Dropped after the lock is let go: closing a connection frees its page cache.
    let unused: Vec<_> = idle.drain(..fresh).collect();
    drop(idle);
    drop(unused);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = crate::sqlite::scratch_dir("readers");
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
        let readers = Arc::new(Readers::start(&path, 3, Duration::from_secs(20)));
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
        let readers = Readers::start(&path, 1, Duration::from_secs(20));
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
        let dir = crate::sqlite::scratch_dir("readers-missing");
        // A read-only open does not create the file, nor the directory above it.
        let missing = dir.join("absent").join("none.db");
        let readers = Readers::start(&missing, 1, Duration::from_secs(20));
        for _ in 0..2 {
            let err = readers.run(|_| Ok(())).await.expect_err("no database");
            assert!(err.to_string().contains("unable to open"), "{err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn connections_unused_for_a_while_are_closed_and_the_next_read_opens_one() {
        let (dir, path) = database();
        let readers = Readers::start(&path, 2, Duration::from_millis(300));
        async fn read(readers: &Readers) -> Result<i64> {
            readers
                .run(|c| Ok(c.query_row("SELECT x FROM t", [], |r| r.get(0))?))
                .await
        }
        let wait_for = |want: usize, also_read: bool| {
            let readers = &readers;
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                while readers.idle_connections() > want {
                    assert!(
                        Instant::now() < deadline,
                        "still {} open",
                        readers.idle_connections()
                    );
                    if also_read {
                        assert_eq!(read(readers).await.unwrap(), 7);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        // Two reads at once open both connections.
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let together = |barrier: Arc<std::sync::Barrier>| {
            readers.run(move |c| {
                barrier.wait();
                Ok(c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))?)
            })
        };
        let (a, b) = tokio::join!(together(barrier.clone()), together(barrier));
        assert_eq!((a.unwrap(), b.unwrap()), (7, 7));
        assert_eq!(readers.idle_connections(), 2, "kept for the next reads");
        // A light load (one read at a time) keeps one open, and the other is closed.
        wait_for(1, true).await;
        assert_eq!(readers.idle_connections(), 1);
        // No reads at all: the last one is closed too, and a read still works after.
        wait_for(0, false).await;
        assert_eq!(read(&readers).await.unwrap(), 7);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
