//! Threads that run scripts for async callers.
//!
//! QuickJS runtimes belong to the thread that made them, so each worker thread keeps
//! one `Sandbox` and takes runs from a shared queue. A script that burns its whole CPU
//! limit occupies one thread for that long; so that one endpoint's bad script cannot
//! take every thread, runs of the same key (an endpoint) go one at a time ("lanes"):
//! an endpoint holds at most one thread, and the others keep serving everyone else.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::{ErrorKind, Input, Limits, Method, Outcome, Sandbox, ScriptError};

/// One run's inputs, owned so that they can cross to a worker thread.
#[derive(Clone, Debug)]
pub struct Request {
    pub code: Arc<str>,
    pub method: Method,
    pub url: String,
    pub event_type: String,
    pub payload: Arc<str>,
    pub variables: Arc<BTreeMap<String, String>>,
}

struct Job {
    request: Request,
    reply: oneshot::Sender<Result<Outcome, ScriptError>>,
}

/// The native stack of a worker thread: far above the JavaScript stack limit, so that
/// QuickJS's own check is always the one that stops deep recursion.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// A fixed set of script threads. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    jobs: mpsc::Sender<Job>,
    lanes: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    threads: usize,
}

impl Pool {
    /// Starts `threads` worker threads (at least one), each with its own engine.
    pub fn new(threads: usize, limits: Limits) -> Pool {
        let threads = threads.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>(1024);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("herald-js-{n}"))
                .stack_size(THREAD_STACK_BYTES)
                .spawn(move || work(&receiver, limits))
                .expect("a script thread starts");
        }
        Pool {
            jobs,
            lanes: Arc::default(),
            threads,
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs a script. Runs with the same `lane` (an endpoint's id) wait for each other;
    /// `None` runs in no lane.
    pub async fn run(&self, lane: Option<&str>, request: Request) -> Result<Outcome, ScriptError> {
        let Some(lane) = lane else {
            return self.dispatch(request).await;
        };
        let turn = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            lanes.entry(lane.to_string()).or_default().clone()
        };
        let result = {
            let _held = turn.lock().await;
            self.dispatch(request).await
        };
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else waits in this lane, so it goes.
        if Arc::strong_count(&turn) == 2 {
            lanes.remove(lane);
        }
        result
    }

    async fn dispatch(&self, request: Request) -> Result<Outcome, ScriptError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ScriptError::new(ErrorKind::Internal, "the script threads have stopped");
        self.jobs
            .send(Job { request, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// How many lanes are open (runs in progress or waiting, by key); for tests.
    pub fn open_lanes(&self) -> usize {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn work(receiver: &Mutex<mpsc::Receiver<Job>>, limits: Limits) {
    let mut sandbox = Sandbox::new(limits);
    loop {
        let job = {
            let mut receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
            receiver.blocking_recv()
        };
        let Some(Job { request, reply }) = job else {
            return;
        };
        let result = match &sandbox {
            Ok(engine) => {
                let input = Input {
                    method: request.method,
                    url: &request.url,
                    event_type: &request.event_type,
                    payload: &request.payload,
                    variables: &request.variables,
                };
                catch_unwind(AssertUnwindSafe(|| engine.run(&request.code, &input))).unwrap_or_else(
                    |_| {
                        Err(ScriptError::new(
                            ErrorKind::Internal,
                            "the script engine failed on this script",
                        ))
                    },
                )
            }
            Err(e) => Err(e.clone()),
        };
        if matches!(&result, Err(e) if e.kind == ErrorKind::Internal) {
            // Start again from a new engine rather than trust one that failed.
            sandbox = Sandbox::new(limits);
        }
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn request(code: &str) -> Request {
        Request {
            code: Arc::from(code),
            method: Method::Post,
            url: "https://example.com/".into(),
            event_type: "a".into(),
            payload: Arc::from("{}"),
            variables: Arc::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_lanes_endless_loops_leave_the_other_threads_to_everyone_else() {
        let pool = Pool::new(2, Limits::default());
        // Ten runs of a script that never ends, all in one endpoint's lane...
        let mut hostile = Vec::new();
        for _ in 0..10 {
            let pool = pool.clone();
            hostile.push(tokio::spawn(async move {
                pool.run(
                    Some("ep_bad"),
                    request("function handler(w) { while (true) {} }"),
                )
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // ...while a healthy endpoint's runs go through the other thread without
        // waiting for them: 20 runs in well under the 500 ms the loops take in all.
        let started = Instant::now();
        for _ in 0..20 {
            let out = pool
                .run(
                    Some("ep_good"),
                    request("function handler(w) { return w; }"),
                )
                .await
                .unwrap();
            assert!(matches!(out, Outcome::Send(_)));
        }
        let healthy = started.elapsed();
        for h in hostile {
            let err = h.await.unwrap().unwrap_err();
            assert_eq!(err.kind, ErrorKind::Timeout);
        }
        assert!(
            healthy < Duration::from_millis(400),
            "healthy runs took {healthy:?}"
        );
        assert_eq!(pool.open_lanes(), 0);
    }
}
