//! The single writer thread and its group commit.
//!
//! Callers queue closures; the thread takes everything queued (up to a bound), opens one
//! transaction, runs each closure in its own savepoint (so one failing request does not
//! undo the others), commits once, and only then answers each caller. Under load many
//! requests share one fsync; idle, a lone request commits immediately.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Called after the batch's commit with its outcome.
type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

const MAX_BATCH: usize = 512;

pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    stats: Arc<WriteStats>,
}

/// How much the group commit groups: jobs run and transactions committed.
#[derive(Default, Debug)]
pub struct WriteStats {
    pub jobs: AtomicU64,
    pub commits: AtomicU64,
}

impl Writer {
    /// Starts the writer thread; `on_failed_commit` runs after a commit fails.
    pub(crate) fn start(conn: Connection, on_failed_commit: Box<dyn Fn() + Send>) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(WriteStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || run(conn, rx, &thread_stats, on_failed_commit))
            .expect("spawn the store writer thread");
        Writer { jobs: tx, stats }
    }

    /// (jobs run, transactions committed) since start.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.stats.jobs.load(Relaxed),
            self.stats.commits.load(Relaxed),
        )
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

fn run(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    stats: &WriteStats,
    on_failed_commit: Box<dyn Fn() + Send>,
) {
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
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
        stats.commits.fetch_add(1, Relaxed);
        if let Err(e) = &committed {
            tracing::error!(error = %e, batch = completions.len(), "store commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            on_failed_commit();
        }
        for done in completions.drain(..) {
            let outcome = match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
            };
            done(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (crate::Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "herald-writer-{}-{}",
            std::process::id(),
            herald_core::ids::random_base62(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        (crate::Store::open(&dir.join("t.db")).unwrap(), dir)
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
