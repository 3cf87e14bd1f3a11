//! Threads that run scripts for async callers.
//!
//! QuickJS runtimes belong to the thread that made them, so each worker thread keeps
//! one `Sandbox` and takes runs from a shared queue. A script that burns its whole CPU
//! limit occupies one thread for that long; these rules keep such scripts from taking
//! every thread, while a busy endpoint with a light script keeps every thread busy:
//! - runs of the same key (an endpoint) are a "lane": a lane runs one at a time until
//!   one of its runs has shown its script is light, and then up to one per thread (so
//!   that a thread never waits for the next run of a busy endpoint to arrive);
//! - a lane whose run was heavy (it hit a limit, or its script took a fifth of the CPU
//!   limit) is marked heavy for a minute: it runs one at a time again, and heavy lanes
//!   together hold at most all threads but one (one, on two threads); so however many
//!   endpoints run bad scripts, a thread is left to everyone else, who never queue
//!   behind more than one heavy run per thread.
//!
//! A lane known to be light (its last run on a script thread was) runs on the calling
//! thread instead, in a sandbox that thread keeps, with a CPU budget of 2 ms: a typical
//! script needs a few microseconds, and handing it to another thread and back costs
//! more than running it, above all on a busy machine where that thread must first be
//! scheduled. A run that needs more than the budget is stopped and run again on a
//! script thread with the full limit (a script has no effect but its result, so running
//! it again is safe), and its lane is no longer known to be light.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{BatchOutcome, ErrorKind, Input, Limits, Method, Outcome, Sandbox, ScriptError};

/// A batch run's inputs, owned.
#[derive(Clone, Debug)]
pub struct BatchRunRequest {
    pub code: Arc<str>,
    pub url: String,
    /// The batch's messages as a JSON array.
    pub events: String,
    pub variables: Arc<BTreeMap<String, String>>,
}

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

/// A run's result, and whether it was heavy (`Sandbox::last_run_heavy`).
type Ran<T> = (Result<T, ScriptError>, bool);

/// What a worker thread does with its engine; the job answers its caller itself.
type Job = Box<dyn FnOnce(&Sandbox) -> Result<(), ScriptError> + Send>;

/// The native stack of a worker thread: far above the JavaScript stack limit, so that
/// QuickJS's own check is always the one that stops deep recursion.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// A fixed set of script threads, started at the first run (a server whose endpoints
/// have no transformation never starts them). Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    jobs: Arc<OnceLock<mpsc::Sender<Job>>>,
    lanes: Arc<Mutex<HashMap<String, Arc<Lane>>>>,
    /// Lanes whose last heavy run was recently, until when they count as heavy.
    heavy_lanes: Arc<Mutex<HashMap<String, Instant>>>,
    /// Lanes whose last run on a script thread was light, until when they count as
    /// light (and run on the caller's thread).
    light_lanes: Arc<Mutex<HashMap<String, Instant>>>,
    /// Runs done on the caller's thread.
    inline_runs: Arc<std::sync::atomic::AtomicU64>,
    /// Permits for heavy lanes' runs: all threads but one.
    heavy_permits: Arc<Semaphore>,
    threads: usize,
    limits: Limits,
}

/// The runs of one key: permits, one per thread, all of which a run takes while the
/// lane is not known to be light.
struct Lane {
    permits: Semaphore,
    /// One of its runs finished light.
    shown_light: std::sync::atomic::AtomicBool,
}

/// The CPU a run on the caller's thread may take before it goes to a script thread.
const INLINE_BUDGET: Duration = Duration::from_millis(2);

thread_local! {
    /// The sandbox a calling thread keeps for light lanes' runs, with its limits.
    static INLINE: std::cell::RefCell<Option<(Limits, Sandbox)>> = const { std::cell::RefCell::new(None) };
}

/// Runs a light lane's script on this thread within `INLINE_BUDGET`: its result and
/// whether the run was heavy, or `None` when it needs a script thread.
fn run_inline(limits: Limits, lane: &str, request: &Request) -> Option<Ran<Outcome>> {
    INLINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != limits) {
            *slot = Some((limits, Sandbox::new(limits).ok()?));
        }
        let (_, sandbox) = slot.as_ref()?;
        let input = Input {
            method: request.method,
            url: &request.url,
            event_type: &request.event_type,
            payload: &request.payload,
            variables: &request.variables,
        };
        let ran = catch_unwind(AssertUnwindSafe(|| {
            sandbox.run_within(INLINE_BUDGET, lane, &request.code, &input)
        }));
        match ran {
            Ok(Some(result)) => Some((result, sandbox.last_run_heavy())),
            Ok(None) => None,
            // Never trust a sandbox that failed: the next run makes a new one.
            Err(_) => {
                *slot = None;
                None
            }
        }
    })
}

/// How long a lane stays heavy after a heavy run.
const HEAVY_FOR: Duration = Duration::from_secs(60);
/// Heavy lanes remembered at most (the oldest are forgotten first).
const MAX_HEAVY_LANES: usize = 10_000;

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new(1, Limits::default())
    }
}

impl Pool {
    /// A pool of `threads` worker threads (at least one), each with its own engine.
    pub fn new(threads: usize, limits: Limits) -> Pool {
        let threads = threads.max(1);
        Pool {
            jobs: Arc::default(),
            lanes: Arc::default(),
            heavy_lanes: Arc::default(),
            light_lanes: Arc::default(),
            inline_runs: Arc::default(),
            heavy_permits: Arc::new(Semaphore::new((threads - 1).max(1))),
            threads,
            limits,
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn jobs(&self) -> &mpsc::Sender<Job> {
        self.jobs.get_or_init(|| {
            let (jobs, receiver) = mpsc::channel::<Job>(1024);
            let receiver = Arc::new(Mutex::new(receiver));
            for n in 0..self.threads {
                let (receiver, limits) = (receiver.clone(), self.limits);
                std::thread::Builder::new()
                    .name(format!("herald-js-{n}"))
                    .stack_size(THREAD_STACK_BYTES)
                    .spawn(move || work(&receiver, limits))
                    .expect("a script thread starts");
            }
            jobs
        })
    }

    /// Runs a script. Runs with the same `lane` (an endpoint's id) wait for each other;
    /// `None` runs in no lane.
    pub async fn run(&self, lane: Option<&str>, request: Request) -> Result<Outcome, ScriptError> {
        let Some(lane) = lane else {
            return self.dispatch(None, request).await.0;
        };
        if self.is_light(lane) && !self.is_heavy(lane) {
            match run_inline(self.limits, lane, &request) {
                Some((result, heavy)) => {
                    self.inline_runs
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let hit_a_limit = matches!(&result, Err(e) if matches!(e.kind, ErrorKind::Memory | ErrorKind::StackOverflow));
                    if heavy || hit_a_limit {
                        self.mark_heavy(lane);
                    }
                    return result;
                }
                None => self.forget_light(lane),
            }
        }
        self.in_lane(lane, self.dispatch(Some(lane), request)).await
    }

    /// Runs `work` (a run on a thread) in `lane`: after the lane's previous run, and,
    /// while the lane is heavy, under a heavy permit.
    async fn in_lane<T>(
        &self,
        lane: &str,
        work: impl std::future::Future<Output = Ran<T>>,
    ) -> Result<T, ScriptError> {
        use std::sync::atomic::Ordering::Relaxed;
        let turn = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            lanes
                .entry(lane.to_string())
                .or_insert_with(|| {
                    Arc::new(Lane {
                        permits: Semaphore::new(self.threads),
                        shown_light: Default::default(),
                    })
                })
                .clone()
        };
        let result = {
            // What the lane is known to be can change while a run waits for its turn
            // (an earlier run finds it heavy): looked at again once the turn came.
            let must_be_alone = || self.is_heavy(lane) || !turn.shown_light.load(Relaxed);
            let _held = loop {
                let alone = must_be_alone();
                let want = if alone { self.threads as u32 } else { 1 };
                let held = turn.permits.acquire_many(want).await;
                if alone || !must_be_alone() {
                    break held;
                }
            };
            // Holding the lane alone when it is heavy, nothing else of it changes this.
            let _heavy = if self.is_heavy(lane) {
                self.heavy_permits.acquire().await.ok()
            } else {
                None
            };
            let (result, heavy_run) = work.await;
            let hit_a_limit = matches!(&result, Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Memory | ErrorKind::StackOverflow));
            if hit_a_limit || heavy_run {
                self.mark_heavy(lane);
                self.forget_light(lane);
                turn.shown_light.store(false, Relaxed);
            } else {
                self.mark(&self.light_lanes, lane);
                turn.shown_light.store(true, Relaxed);
            }
            result
        };
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else waits in this lane, so it goes.
        if Arc::strong_count(&turn) == 2 {
            lanes.remove(lane);
        }
        result
    }

    fn is_heavy(&self, lane: &str) -> bool {
        let heavy = self.heavy_lanes.lock().unwrap_or_else(|p| p.into_inner());
        heavy.get(lane).is_some_and(|until| *until > Instant::now())
    }

    fn mark_heavy(&self, lane: &str) {
        self.mark(&self.heavy_lanes, lane);
    }

    fn is_light(&self, lane: &str) -> bool {
        let light = self.light_lanes.lock().unwrap_or_else(|p| p.into_inner());
        light.get(lane).is_some_and(|until| *until > Instant::now())
    }

    fn forget_light(&self, lane: &str) {
        self.light_lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(lane);
    }

    /// Remembers `lane` in `marks` for `HEAVY_FOR`, forgetting the oldest when full.
    fn mark(&self, marks: &Mutex<HashMap<String, Instant>>, lane: &str) {
        let mut marks = marks.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if marks.len() >= MAX_HEAVY_LANES {
            marks.retain(|_, until| *until > now);
            if marks.len() >= MAX_HEAVY_LANES {
                let oldest = marks
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    marks.remove(&oldest);
                }
            }
        }
        marks.insert(lane.to_string(), now + HEAVY_FOR);
    }

    /// Runs a destination's batch script, in `lane` (the destination's id).
    pub async fn run_batch(
        &self,
        lane: &str,
        request: BatchRunRequest,
    ) -> Result<BatchOutcome, ScriptError> {
        let realm = lane.to_string();
        let work = move |sandbox: &Sandbox| {
            let input = crate::BatchInput {
                url: &request.url,
                events: &request.events,
                variables: &request.variables,
            };
            sandbox.run_batch(Some(&realm), &request.code, &input)
        };
        self.in_lane(lane, self.on_a_thread(work)).await
    }

    /// Checks code before it is saved: it parses, its top level runs within the
    /// limits, and it declares `handler`.
    pub async fn check(&self, code: Arc<str>) -> Result<(), ScriptError> {
        self.on_a_thread(move |sandbox| sandbox.check(&code))
            .await
            .0
    }

    /// Runs code that is being tried (not saved): in `lane`, so that tries of one
    /// endpoint go one at a time, but in a realm of its own.
    pub async fn try_run(&self, lane: &str, request: Request) -> Result<Outcome, ScriptError> {
        self.in_lane(lane, self.dispatch(None, request)).await
    }

    async fn dispatch(&self, realm: Option<&str>, request: Request) -> Ran<Outcome> {
        let realm = realm.map(str::to_string);
        self.on_a_thread(move |sandbox| {
            let input = Input {
                method: request.method,
                url: &request.url,
                event_type: &request.event_type,
                payload: &request.payload,
                variables: &request.variables,
            };
            sandbox.run(realm.as_deref(), &request.code, &input)
        })
        .await
    }

    /// Runs `work` on a script thread: its result, and the CPU time its script took.
    async fn on_a_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Sandbox) -> Result<T, ScriptError> + Send + 'static,
    ) -> Ran<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |sandbox| {
            let result = catch_unwind(AssertUnwindSafe(|| work(sandbox))).unwrap_or_else(|_| {
                Err(ScriptError::new(
                    ErrorKind::Internal,
                    "the script engine failed on this script",
                ))
            });
            let failed = matches!(&result, Err(e) if e.kind == ErrorKind::Internal);
            let _ = reply.send((result, sandbox.last_run_heavy()));
            if failed {
                return Err(ScriptError::new(ErrorKind::Internal, "engine failed"));
            }
            Ok(())
        });
        let stopped = || {
            (
                Err(ScriptError::new(
                    ErrorKind::Internal,
                    "the script threads have stopped",
                )),
                false,
            )
        };
        if self.jobs().send(job).await.is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }

    /// Runs done on the caller's thread so far.
    pub fn inline_runs(&self) -> u64 {
        self.inline_runs.load(std::sync::atomic::Ordering::Relaxed)
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
        let Some(job) = job else {
            return;
        };
        match &sandbox {
            Ok(engine) => {
                if job(engine).is_err() {
                    // Start again from a new engine rather than trust one that failed.
                    sandbox = Sandbox::new(limits);
                }
            }
            Err(_) => {
                // No engine could be made: try again for the next job. The job is
                // dropped unrun, and its caller hears that the threads stopped.
                drop(job);
                sandbox = Sandbox::new(limits);
            }
        }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_endpoints_with_endless_loops_still_leave_a_thread_to_everyone_else() {
        let pool = Pool::new(2, Limits::default());
        let endless = "function handler(w) { while (true) {} }";
        // Each bad endpoint's first run shows it is heavy...
        for n in 0..4 {
            let lane = format!("ep_bad_{n}");
            assert!(pool.run(Some(&lane), request(endless)).await.is_err());
        }
        // ...so that five more runs of each (a second of CPU in all) hold one thread,
        // and the healthy lane has the other.
        let mut hostile = Vec::new();
        for n in 0..4 {
            for _ in 0..5 {
                let pool = pool.clone();
                let lane = format!("ep_bad_{n}");
                hostile.push(tokio::spawn(async move {
                    pool.run(Some(&lane), request(endless)).await
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
            assert_eq!(h.await.unwrap().unwrap_err().kind, ErrorKind::Timeout);
        }
        assert!(
            healthy < Duration::from_millis(400),
            "healthy runs took {healthy:?}"
        );
    }

    fn request_with(code: &str, payload: &str) -> Request {
        Request {
            payload: Arc::from(payload),
            ..request(code)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_light_lane_runs_on_the_callers_thread_until_it_needs_more() {
        let pool = Pool::new(2, Limits::default());
        let code = "function handler(w) { if (w.payload.spin) { while (true) {} } w.payload = { ok: true }; return w; }";
        for _ in 0..5 {
            let out = pool
                .run(Some("ep_1"), request_with(code, "{}"))
                .await
                .unwrap();
            assert!(matches!(out, Outcome::Send(w) if w.payload == r#"{"ok":true}"#));
        }
        // The first run showed the script light; the others ran here.
        assert_eq!(pool.inline_runs(), 4);
        // A run that needs more than the budget runs again on a script thread with the
        // whole limit (50 ms), and the lane goes back there.
        let err = pool
            .run(Some("ep_1"), request_with(code, r#"{"spin":true}"#))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert!(err.message.contains("50 ms"), "{err}");
        assert!(pool
            .run(Some("ep_1"), request_with(code, "{}"))
            .await
            .is_ok());
        assert_eq!(
            pool.inline_runs(),
            4,
            "a heavy lane runs on the script threads"
        );
    }
}
