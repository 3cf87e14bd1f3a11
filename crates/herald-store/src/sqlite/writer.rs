//! The single writer thread, its group commit, and the syncer thread.
//!
//! Callers queue closures; the writer takes everything queued (up to a bound), opens one
//! transaction, runs each closure in its own savepoint (so one failing request does not
//! undo the others) and commits once. The database runs in WAL mode with
//! `synchronous=NORMAL`, so a commit appends its frames to the WAL without waiting for
//! the disk; the writer then passes the batch's answers to the syncer thread, which
//! calls `fdatasync` on the WAL file and only then answers the callers. A caller is
//! therefore told "done" only once its commit is on disk, while the writer goes on with
//! the next batch during the fsync, and one fsync covers every batch committed while the
//! previous one ran. (NORMAL keeps the database consistent on its own; the extra fsync
//! is what makes each acknowledged commit durable. Checkpoints sync the WAL and the
//! database file themselves in NORMAL mode.) Where the WAL file cannot be opened the
//! store falls back to `synchronous=FULL`, and the writer answers after each commit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Called after the batch's commit with its outcome.
type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

const MAX_BATCH: usize = 512;

/// Fewer jobs than this in a window of `idle_after` make the window quiet.
const QUIET_JOBS: usize = 100;

pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    stats: Arc<WriteStats>,
}

/// How much the group commit groups: jobs run, transactions committed, WAL syncs.
#[derive(Default, Debug)]
pub struct WriteStats {
    pub jobs: AtomicU64,
    pub commits: AtomicU64,
    pub syncs: AtomicU64,
    pub sync_micros: AtomicU64,
}

/// Answers of committed batches waiting for the WAL to reach the disk.
type Synced = Vec<Completion>;

impl Writer {
    /// Starts the writer thread, and the syncer thread when `wal` (the open WAL file)
    /// is given; `on_failed_commit` runs after a commit fails, and `when_idle.1` at the
    /// end of each window of `when_idle.0` with fewer than `QUIET_JOBS` jobs.
    pub(crate) fn start(
        conn: Connection,
        wal: Option<std::fs::File>,
        on_failed_commit: Box<dyn Fn() + Send>,
        when_idle: (Duration, Box<dyn Fn() + Send>),
    ) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(WriteStats::default());
        let syncer = wal.map(|wal| {
            let (sync_tx, sync_rx) = mpsc::channel::<Synced>();
            let sync_stats = stats.clone();
            std::thread::Builder::new()
                .name("herald-store-sync".into())
                .spawn(move || run_syncer(wal, sync_rx, &sync_stats))
                .expect("spawn the store syncer thread");
            sync_tx
        });
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || run(conn, rx, syncer, &thread_stats, on_failed_commit, when_idle))
            .expect("spawn the store writer thread");
        Writer { jobs: tx, stats }
    }

    /// Jobs run, transactions committed, WAL syncs and their time since start.
    pub(crate) fn stats(&self) -> herald_core::metrics::StoreWrites {
        herald_core::metrics::StoreWrites {
            jobs: self.stats.jobs.load(Relaxed),
            commits: self.stats.commits.load(Relaxed),
            syncs: self.stats.syncs.load(Relaxed),
            sync_seconds: self.stats.sync_micros.load(Relaxed) as f64 / 1e6,
        }
    }

    pub(crate) async fn submit<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let outcome = in_savepoint(conn, f);
            Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.and(outcome));
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the write was not carried out".into()))?
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

/// Makes committed WAL frames durable, then answers the callers whose batches they hold.
fn run_syncer(wal: std::fs::File, rx: mpsc::Receiver<Synced>, stats: &WriteStats) {
    while let Ok(mut waiting) = rx.recv() {
        // Everything committed by now is covered by this one sync.
        while let Ok(more) = rx.try_recv() {
            waiting.extend(more);
        }
        let started = std::time::Instant::now();
        let synced = wal.sync_data();
        stats.syncs.fetch_add(1, Relaxed);
        stats
            .sync_micros
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        if let Err(e) = &synced {
            tracing::error!(error = %e, "fdatasync of the WAL failed; the writes it held are reported as failed");
        }
        for done in waiting {
            done(match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(format!(
                    "could not sync the write-ahead log: {e}"
                ))),
            });
        }
    }
}

fn run(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    syncer: Option<mpsc::Sender<Synced>>,
    stats: &WriteStats,
    on_failed_commit: Box<dyn Fn() + Send>,
    (idle_after, on_idle): (Duration, Box<dyn Fn() + Send>),
) {
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    // Jobs run in the current window of `idle_after`; a window with fewer than
    // QUIET_JOBS counts as quiet (a server with nothing to do still writes now and then:
    // leases, the scheduler's bookkeeping).
    let mut window = (Instant::now(), 0usize);
    loop {
        let next = rx.recv_timeout(idle_after);
        if window.0.elapsed() >= idle_after {
            if window.1 < QUIET_JOBS {
                // Hand back the page cache (up to 16 MB) and what the caller keeps for
                // busy times; the next busy period fills them again.
                let _ = conn.release_memory();
                on_idle();
            }
            window = (Instant::now(), 0);
        }
        let first = match next {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the job drops its answer channel: the caller gets an error and
            // nothing of the job ran.
            tracing::error!(error = %e, "store writer could not begin a transaction");
            drop(first);
            continue;
        }
        let mut next = Some(first);
        let mut panicked = false;
        while let Some(job) = next.take() {
            // A bug in one job must not take the writer thread (and so every later
            // write) down with it: the batch is rolled back and its callers get errors.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn))) {
                Ok(done) => completions.push(done),
                Err(_) => {
                    panicked = true;
                    break;
                }
            }
            if completions.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let committed = if panicked {
            Err(StoreError::Unavailable(
                "a write failed unexpectedly; its batch was rolled back".into(),
            ))
        } else {
            conn.execute_batch("COMMIT").map_err(StoreError::from)
        };
        stats.jobs.fetch_add(completions.len() as u64, Relaxed);
        window.1 += completions.len();
        stats.commits.fetch_add(1, Relaxed);
        if let Err(e) = &committed {
            tracing::error!(error = %e, batch = completions.len(), "store commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            on_failed_commit();
        }
        match (&committed, &syncer) {
            // Committed but maybe not yet on disk: the syncer answers after its fsync.
            (Ok(()), Some(syncer)) => {
                let batch = std::mem::replace(&mut completions, Vec::with_capacity(MAX_BATCH));
                if let Err(mpsc::SendError(batch)) = syncer.send(batch) {
                    for done in batch {
                        done(Err(StoreError::Unavailable(
                            "the syncer has stopped".into(),
                        )));
                    }
                }
            }
            _ => {
                for done in completions.drain(..) {
                    done(match &committed {
                        Ok(()) => Ok(()),
                        Err(e) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (crate::SqliteStore, std::path::PathBuf) {
        let dir = crate::sqlite::scratch_dir("writer");
        (crate::SqliteStore::open(&dir.join("t.db")).unwrap(), dir)
    }

    #[tokio::test]
    async fn a_quiet_writer_runs_its_idle_hook_and_then_writes_on() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let idle_runs = Arc::new(AtomicU64::new(0));
        let counter = idle_runs.clone();
        let writer = Writer::start(
            conn,
            None,
            Box::new(|| {}),
            (
                Duration::from_millis(100),
                Box::new(move || {
                    counter.fetch_add(1, Relaxed);
                }),
            ),
        );
        let insert = |x: i64| {
            writer.submit(move |c| {
                c.execute("INSERT INTO t VALUES (?1)", [x])?;
                Ok(())
            })
        };
        // A write now and then does not keep the writer from counting as quiet.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut x = 0;
        while idle_runs.load(Relaxed) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the idle hook never ran"
            );
            x += 1;
            insert(x).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        insert(0).await.unwrap();
        let rows: i64 = writer
            .submit(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(rows, x + 1);
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_only_itself_and_a_panic_spares_the_writer() {
        let (store, dir) = store();
        store
            .write(|c| Ok(c.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")?))
            .await
            .unwrap();
        let ok = store.write(|c| Ok(c.execute("INSERT INTO t VALUES (1)", [])?));
        let dup = store.write(|c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            Ok(c.execute("INSERT INTO t VALUES (1)", [])?)
        });
        let (ok, dup) = tokio::join!(ok, dup);
        assert!(ok.is_ok() && dup.is_err());
        let rows: i64 = store
            .read(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(
            rows, 1,
            "the failing job's first insert was rolled back with it"
        );
        let boom = store
            .write(|_| -> crate::Result<()> { panic!("bug in a job") })
            .await;
        assert!(matches!(boom, Err(StoreError::Unavailable(_))));
        store
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (3)", [])?))
            .await
            .expect("the writer survived the panic");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
