//! One thread's JavaScript engine: a QuickJS runtime with its limits, and the realms
//! its runs use.
//!
//! A run for a lane (an endpoint, a destination) uses the realm kept for that lane and
//! script (`realms.rs`), locked down and reset after each run so that nothing one run
//! leaves is there for the next; other runs (checks, tries) get a new locked-down realm.
//! Why keep realms: measured on the development machine, a new realm costs about 47 µs
//! (1.2 ms locked down) and a run in a kept one about 16 µs, the script compiled again
//! each time (about 5 µs for a typical handler; a compiled function belongs to the realm
//! and the run it was made in, so compiling again is what gives each run fresh
//! variables).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rquickjs::context::intrinsic;
use rquickjs::{Context, Ctx, Runtime, Value};

use crate::realms::{self, RealmCache};

use crate::{
    output, BatchInput, BatchOutcome, ErrorKind, Input, Limits, Outcome, ScriptError,
    MAX_CODE_BYTES,
};

/// What a realm has besides the language's base objects: nothing that reaches a clock,
/// a timer, a module or the outside world.
type Intrinsics = (
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::MapSet,
);

/// The JavaScript stack a run may use. The threads that run scripts have a native
/// stack well above it (`pool.rs`).
pub(crate) const JS_STACK_BYTES: usize = 512 * 1024;

/// A QuickJS runtime bound to the thread that made it.
pub struct Sandbox {
    runtime: Runtime,
    limits: Limits,
    /// Thread CPU time (ns) after which the running script is interrupted.
    deadline: Rc<Cell<u64>>,
    /// Set by the interrupt handler when it stopped a script.
    interrupted: Rc<Cell<bool>>,
    realms: RefCell<RealmCache>,
    /// The heap the kept realms hold (measured when it changes, and after each
    /// collection); a run may allocate `limits.memory_bytes` above it.
    kept_bytes: Cell<usize>,
    runs_since_gc: Cell<u32>,
    /// CPU time the last run's script took (its realm's making left out).
    last_script_ns: Cell<u64>,
    /// The last run threw its lane's realm away (the next one pays for a new realm).
    last_run_discarded: Cell<bool>,
    /// A CPU budget below the limit for the next runs (`run_within`).
    budget: Cell<Option<std::time::Duration>>,
}

/// Room above the kept realms and the run's own allowance, for what earlier runs left
/// to the next collection.
const SLACK_BYTES: usize = 1024 * 1024;
/// Runs between two collections of the whole heap.
const RUNS_PER_GC: u32 = 64;

impl Sandbox {
    pub fn new(limits: Limits) -> Result<Sandbox, ScriptError> {
        let runtime = Runtime::new().map_err(|e| {
            ScriptError::new(ErrorKind::Internal, format!("no JavaScript runtime: {e}"))
        })?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(JS_STACK_BYTES);
        let deadline = Rc::new(Cell::new(u64::MAX));
        let interrupted = Rc::new(Cell::new(false));
        let (d, i) = (deadline.clone(), interrupted.clone());
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let over = thread_cpu_ns() > d.get();
            if over {
                i.set(true);
            }
            over
        })));
        let sandbox = Sandbox {
            runtime,
            limits,
            deadline,
            interrupted,
            realms: RefCell::default(),
            kept_bytes: Cell::new(0),
            runs_since_gc: Cell::new(0),
            last_script_ns: Cell::new(0),
            last_run_discarded: Cell::new(false),
            budget: Cell::new(None),
        };
        sandbox.measure();
        Ok(sandbox)
    }

    /// Whether the last run was heavy: its script took a fifth of the CPU limit (the
    /// making of its realm left out), or the run threw its lane's realm away, so that
    /// every run of that script pays for a new one.
    pub fn last_run_heavy(&self) -> bool {
        self.last_run_discarded.get()
            || std::time::Duration::from_nanos(self.last_script_ns.get()) >= self.limits.cpu / 5
    }

    fn cpu_allowed(&self) -> std::time::Duration {
        self.budget.get().unwrap_or(self.limits.cpu)
    }

    /// Runs one delivery's script with at most `budget` of CPU time instead of the
    /// limit; `None` when it needed more (it can then run again with the limit: a
    /// script has no effects but its result).
    pub fn run_within(
        &self,
        budget: std::time::Duration,
        lane: &str,
        code: &str,
        input: &Input<'_>,
    ) -> Option<Result<Outcome, ScriptError>> {
        self.budget.set(Some(budget.min(self.limits.cpu)));
        let result = self.run(Some(lane), code, input);
        self.budget.set(None);
        match result {
            Err(e) if e.kind == ErrorKind::Timeout => None,
            done => Some(done),
        }
    }

    /// Realms kept now (for tests).
    pub fn kept_realms(&self) -> usize {
        self.realms.borrow().len()
    }

    fn measure(&self) {
        self.kept_bytes
            .set(self.runtime.memory_usage().malloc_size.max(0) as usize);
    }

    /// A new realm, locked down.
    fn new_realm(&self) -> Result<Context, ScriptError> {
        let no_room = |e: rquickjs::Error| {
            ScriptError::new(
                ErrorKind::Memory,
                format!("no JavaScript realm could be made within the memory limit: {e}"),
            )
        };
        let context = Context::custom::<Intrinsics>(&self.runtime).map_err(no_room)?;
        realms::lock_down(&context).map_err(no_room)?;
        Ok(context)
    }

    /// Evaluates `code` in a realm of its own and checks it declares `handler`.
    pub fn check(&self, code: &str) -> Result<(), ScriptError> {
        self.call_handler(None, code, "null", "{}", false)
            .map(|_| ())
    }

    /// Runs `code`'s handler on one delivery (`handler(webhook, variables)`), in the
    /// realm kept for `lane` (`None`: a realm of its own).
    pub fn run(
        &self,
        lane: Option<&str>,
        code: &str,
        input: &Input<'_>,
    ) -> Result<Outcome, ScriptError> {
        let webhook = format!(
            r#"{{"method":"{}","url":{},"eventType":{},"payload":{}}}"#,
            input.method.as_str(),
            serde_json::to_string(input.url).expect("a string serializes"),
            serde_json::to_string(input.event_type).expect("a string serializes"),
            input.payload,
        );
        let variables = serde_json::to_string(input.variables).expect("a map serializes");
        let json = self
            .call_handler(lane, code, &webhook, &variables, true)?
            .expect("a run that calls the handler has a result");
        output::read(json.as_deref(), input.url)
    }

    /// Runs `code`'s handler on a destination's batch (`handler(input, variables)`,
    /// `input` being `{url, events}`).
    pub fn run_batch(
        &self,
        lane: Option<&str>,
        code: &str,
        input: &BatchInput<'_>,
    ) -> Result<BatchOutcome, ScriptError> {
        let arg = format!(
            r#"{{"url":{},"events":{}}}"#,
            serde_json::to_string(input.url).expect("a string serializes"),
            input.events,
        );
        let variables = serde_json::to_string(input.variables).expect("a map serializes");
        let json = self
            .call_handler(lane, code, &arg, &variables, true)?
            .expect("a run that calls the handler has a result");
        output::read_batch(json.as_deref())
    }

    /// Runs the script within the limits: evaluates it in the lane's realm and, when
    /// `call`, calls `handler(arg, variables)` (both JSON texts). Returns
    /// `JSON.stringify` of what the handler returned (`Some(None)` for undefined),
    /// bounded by the output limit; `None` when not called.
    fn call_handler(
        &self,
        lane: Option<&str>,
        code: &str,
        arg: &str,
        variables: &str,
        call: bool,
    ) -> Result<Option<Option<String>>, ScriptError> {
        self.last_script_ns.set(0);
        self.last_run_discarded.set(false);
        if code.len() > MAX_CODE_BYTES {
            return Err(ScriptError::new(
                ErrorKind::Compile,
                format!("the code is longer than {MAX_CODE_BYTES} bytes"),
            ));
        }
        let kept = lane.and_then(|l| self.realms.borrow_mut().get(l, code));
        let was_kept = kept.is_some();
        let context = match kept {
            Some(context) => context,
            None => self.new_realm()?,
        };
        self.runtime
            .set_memory_limit(self.kept_bytes.get() + self.limits.memory_bytes + SLACK_BYTES);
        self.interrupted.set(false);
        let started = thread_cpu_ns();
        self.deadline
            .set(started.saturating_add(self.cpu_allowed().as_nanos() as u64));
        let returned = self.run_in(&context, code, arg, variables, call);
        self.deadline.set(u64::MAX);
        self.last_script_ns
            .set(thread_cpu_ns().saturating_sub(started));
        // A run that hit a limit may have left the realm half changed: it goes. So does
        // one whose globals cannot be put back.
        let hit_a_limit = self.interrupted.get()
            || matches!(&returned, Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Memory | ErrorKind::StackOverflow | ErrorKind::Internal));
        let keep = lane.is_some() && !hit_a_limit && realms::reset(&context);
        match lane {
            Some(lane) if keep => {
                if !was_kept {
                    self.realms.borrow_mut().put(lane, code, context);
                    self.measure();
                }
            }
            Some(lane) => {
                self.realms.borrow_mut().forget(lane);
                self.last_run_discarded.set(true);
                drop(context);
                self.collect();
            }
            None => drop(context),
        }
        let runs = self.runs_since_gc.get() + 1;
        self.runs_since_gc.set(runs);
        if runs >= RUNS_PER_GC {
            self.collect();
        }
        let returned = returned?;
        if let Some(Some(json)) = &returned {
            if json.len() > self.limits.output_bytes {
                return Err(ScriptError::new(
                    ErrorKind::OutputTooLarge,
                    format!(
                        "what the handler returned is larger than {} bytes",
                        self.limits.output_bytes
                    ),
                ));
            }
        }
        Ok(returned)
    }

    /// Collects the whole heap and measures what the kept realms hold.
    fn collect(&self) {
        self.runtime.run_gc();
        self.runs_since_gc.set(0);
        self.measure();
    }

    /// Evaluates the script in `context`, calls `handler(arg, variables)` (when
    /// `call`), and returns `JSON.stringify` of what it returned (`Some(None)` for
    /// undefined; `None` when not called).
    fn run_in(
        &self,
        context: &Context,
        code: &str,
        arg: &str,
        variables: &str,
        call: bool,
    ) -> Result<Option<Option<String>>, ScriptError> {
        let mut result = context.with(|ctx| {
            let handler: Value = ctx
                .eval_with_options(realms::wrapped(code), realms::options())
                .map_err(|e| self.error(&ctx, e, Phase::Load))?;
            let Some(handler) = handler.as_function() else {
                return Err(ScriptError::new(
                    ErrorKind::Compile,
                    "the code must declare function handler(webhook)",
                ));
            };
            if !call {
                return Ok(None);
            }
            let arg = ctx
                .json_parse(arg)
                .map_err(|e| self.error(&ctx, e, Phase::Run))?;
            let variables = ctx
                .json_parse(variables)
                .map_err(|e| self.error(&ctx, e, Phase::Run))?;
            let returned: Value = handler
                .call((arg, variables))
                .map_err(|e| self.error(&ctx, e, Phase::Run))?;
            let json = ctx
                .json_stringify(returned)
                .map_err(|e| self.error(&ctx, e, Phase::Return))?;
            json.map(|s| s.to_string())
                .transpose()
                .map(Some)
                .map_err(|e| self.error(&ctx, e, Phase::Return))
        });
        // When QuickJS runs out of memory while it has no memory left for an error
        // object, what is thrown is null; a script's own `throw null` reads the same.
        if let Err(e) = &mut result {
            if e.kind == ErrorKind::Thrown && e.message == "uncaught null" {
                *e = ScriptError::new(
                    ErrorKind::Memory,
                    self.out_of_memory("null was thrown, as QuickJS does when no memory is left"),
                );
            }
        }
        result
    }

    fn out_of_memory(&self, message: &str) -> String {
        format!(
            "the script used more than {} MiB of memory: {message}",
            self.limits.memory_bytes / (1024 * 1024)
        )
    }

    /// Turns an engine error into a `ScriptError`, taking the pending exception.
    fn error(&self, ctx: &Ctx<'_>, err: rquickjs::Error, phase: Phase) -> ScriptError {
        let cpu_ms = self.cpu_allowed().as_millis();
        if self.interrupted.get() {
            // Take the uncatchable exception so that it does not linger in the realm.
            let _ = ctx.catch();
            return ScriptError::new(
                ErrorKind::Timeout,
                format!("the script used more than {cpu_ms} ms of CPU time and was stopped"),
            );
        }
        let (message, stack) = match err {
            rquickjs::Error::Exception => describe(&ctx.catch()),
            rquickjs::Error::Allocation => ("out of memory".to_string(), None),
            other => (other.to_string(), None),
        };
        let (line, column) = stack.as_deref().and_then(position).unzip();
        let lower = message.to_ascii_lowercase();
        // QuickJS refuses some huge values before allocating them (its strings are
        // ropes, its arrays have a length bound); those are memory failures too.
        let kind = if lower.contains("out of memory")
            || lower.contains("string too long")
            || lower.contains("invalid string length")
            || lower.contains("invalid array length")
        {
            ErrorKind::Memory
        } else if lower.contains("stack overflow") || lower.contains("call stack size") {
            ErrorKind::StackOverflow
        } else {
            match phase {
                Phase::Load if message.starts_with("SyntaxError") => ErrorKind::Compile,
                Phase::Return => ErrorKind::BadReturn,
                _ => ErrorKind::Thrown,
            }
        };
        let message = match kind {
            ErrorKind::Memory => self.out_of_memory(&message),
            ErrorKind::BadReturn => {
                format!("the handler's return value cannot be turned into JSON: {message}")
            }
            _ => message,
        };
        ScriptError {
            kind,
            message,
            line,
            column,
        }
    }
}

#[derive(Clone, Copy)]
enum Phase {
    /// Evaluating the script's top level.
    Load,
    /// Calling the handler.
    Run,
    /// Turning its return value into JSON.
    Return,
}

/// `Name: message` and the stack of a thrown value; a thrown non-error is shown as is.
fn describe(thrown: &Value<'_>) -> (String, Option<String>) {
    if let Some(object) = thrown.as_object() {
        let name: Option<String> = object.get("name").ok();
        let message: Option<String> = object.get("message").ok();
        let stack: Option<String> = object.get("stack").ok();
        if let Some(message) = message {
            let text = match name {
                Some(name) if !name.is_empty() => format!("{name}: {message}"),
                _ => message,
            };
            return (text, stack);
        }
    }
    let shown = if let Some(s) = thrown.as_string().and_then(|s| s.to_string().ok()) {
        format!("uncaught {s:?}")
    } else if thrown.is_undefined() {
        "uncaught undefined".to_string()
    } else if thrown.is_null() {
        "uncaught null".to_string()
    } else if let Some(n) = thrown.as_number() {
        format!("uncaught {n}")
    } else {
        "uncaught exception".to_string()
    };
    (shown, None)
}

/// The first `eval_script:LINE:COLUMN` of a stack: where in the customer's code.
fn position(stack: &str) -> Option<(u32, u32)> {
    let at = stack.find("eval_script:")? + "eval_script:".len();
    let mut parts = stack[at..].split(|c: char| !c.is_ascii_digit());
    let line: u32 = parts.next()?.parse().ok()?;
    let column = parts.next()?.parse().ok()?;
    // The script starts after the wrapper's first line.
    Some((line.saturating_sub(realms::WRAPPER_LINES).max(1), column))
}

/// CPU time used by the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, Webhook};
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    fn run(code: &str) -> Result<Outcome, ScriptError> {
        run_with(&Sandbox::new(Limits::default()).unwrap(), code)
    }

    fn run_with(sandbox: &Sandbox, code: &str) -> Result<Outcome, ScriptError> {
        let variables = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        sandbox.run(
            Some("ep_test"),
            code,
            &Input {
                method: Method::Post,
                url: "https://example.com/hook",
                event_type: "user.created",
                payload: r#"{"user":{"name":"ann","id":42}}"#,
                variables: &variables,
            },
        )
    }

    fn sent(outcome: Outcome) -> Webhook {
        match outcome {
            Outcome::Send(w) => w,
            Outcome::Cancel => panic!("cancelled"),
        }
    }

    #[test]
    fn a_handler_changes_body_url_method_and_headers() {
        let w = sent(
            run(r#"
                function handler(webhook, variables) {
                    webhook.payload = { text: webhook.eventType + " by " + webhook.payload.user.name, region: variables.region };
                    webhook.url = webhook.url + "/slack";
                    webhook.method = "PUT";
                    webhook.headers = { "X-Event": webhook.eventType };
                    return webhook;
                }"#)
            .unwrap(),
        );
        assert_eq!(w.method, Method::Put);
        assert_eq!(w.url, "https://example.com/hook/slack");
        assert_eq!(w.payload, r#"{"text":"user.created by ann","region":"eu"}"#);
        assert_eq!(
            w.headers,
            vec![("x-event".to_string(), "user.created".to_string())]
        );
    }

    #[test]
    fn an_untouched_webhook_is_sent_as_it_was() {
        let w = sent(run("function handler(w) { return w; }").unwrap());
        assert_eq!(w.method, Method::Post);
        assert_eq!(w.url, "https://example.com/hook");
        assert_eq!(w.payload, r#"{"user":{"name":"ann","id":42}}"#);
        assert!(w.headers.is_empty());
    }

    #[test]
    fn cancel_skips_the_delivery() {
        let code = "function handler(w) { if (w.eventType === 'user.created') { w.cancel = true; } return w; }";
        assert_eq!(run(code).unwrap(), Outcome::Cancel);
    }

    #[test]
    fn an_endless_loop_is_stopped_at_the_cpu_limit() {
        let sandbox = Sandbox::new(Limits {
            cpu: Duration::from_millis(50),
            ..Limits::default()
        })
        .unwrap();
        let started = Instant::now();
        let err = run_with(&sandbox, "function handler(w) { while (true) {} }").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
        assert!(err.message.contains("50 ms"), "{err}");
        // Stopped near the limit, not left running (wall time may exceed CPU time on
        // a busy machine, hence the margin).
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // The same engine runs the next script normally.
        assert!(run_with(&sandbox, "function handler(w) { return w; }").is_ok());
    }

    #[test]
    fn a_loop_at_the_top_level_is_stopped_too() {
        let err = run("while (true) {} function handler(w) { return w; }").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    }

    #[test]
    fn a_huge_allocation_fails_with_out_of_memory() {
        // The memory limit is the one under test: CPU time gets room enough that a
        // loaded machine (many small objects are slow to make) cannot reach it first.
        let sandbox = Sandbox::new(Limits {
            cpu: Duration::from_secs(5),
            ..Limits::default()
        })
        .unwrap();
        for code in [
            "function handler(w) { let s = 'x'; while (true) { s = s + s; } }",
            "function handler(w) { w.payload = 'x'.repeat(1 << 30); return w; }",
            "function handler(w) { const a = []; while (true) { a.push({ n: a.length }); } }",
        ] {
            let err = run_with(&sandbox, code).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Memory, "{code}: {err}");
            assert!(err.message.contains("16 MiB"), "{code}: {err}");
        }
        assert!(run_with(&sandbox, "function handler(w) { return w; }").is_ok());
    }

    #[test]
    fn deep_recursion_fails_with_stack_overflow() {
        let err =
            run("function f(n) { return f(n + 1) + 1; } function handler(w) { return f(0); }")
                .unwrap_err();
        assert_eq!(err.kind, ErrorKind::StackOverflow, "{err}");
    }

    #[test]
    fn a_throw_is_reported_with_its_line_and_column() {
        let err =
            run("function handler(w) {\n  const x = 1;\n  throw new TypeError('no ' + x);\n}")
                .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Thrown);
        assert_eq!(err.message, "TypeError: no 1");
        assert_eq!(err.line, Some(3), "{err:?}");
        assert!(err.column.is_some(), "{err:?}");
        let err = run("function handler(w) { throw 'plain'; }").unwrap_err();
        assert_eq!(err.message, "uncaught \"plain\"");
    }

    #[test]
    fn a_syntax_error_is_a_compile_error_with_its_position() {
        let err = run("function handler(w) {\n  return w +;\n}").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Compile, "{err:?}");
        assert!(err.message.starts_with("SyntaxError"), "{err:?}");
        assert_eq!(err.line, Some(2), "{err:?}");
    }

    #[test]
    fn code_without_a_handler_is_a_compile_error() {
        let err = run("function handle(w) { return w; }").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Compile);
        assert!(err.message.contains("function handler"), "{err}");
    }

    #[test]
    fn returning_undefined_or_a_cycle_is_a_bad_return() {
        let err = run("function handler(w) { w.payload = 1; }").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadReturn);
        let err =
            run("function handler(w) { w.payload = {}; w.payload.self = w.payload; return w; }")
                .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadReturn, "{err}");
    }

    #[test]
    fn output_is_bounded() {
        let sandbox = Sandbox::new(Limits {
            output_bytes: 1000,
            ..Limits::default()
        })
        .unwrap();
        let err = run_with(
            &sandbox,
            "function handler(w) { w.payload = 'x'.repeat(2000); return w; }",
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::OutputTooLarge);
    }

    #[test]
    fn nothing_leaks_from_one_run_to_the_next() {
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        // Globals, closures and prototypes changed by one run...
        let code = r#"
            let count = 0;
            function handler(w) {
                count += 1;
                w.payload = {
                    count: count,
                    seenGlobal: typeof globalThis.mark,
                    seenImplicit: typeof implicitGlobal,
                    seenProto: ({}).polluted === undefined ? "clean" : "polluted",
                    seenJson: JSON.stringify([1]),
                };
                globalThis.mark = 1;
                implicitGlobal = 2;
                Object.prototype.polluted = true;
                Array.prototype.toJSON = function () { return "hijacked"; };
                JSON.stringify = function () { return "hijacked"; };
                return w;
            }"#;
        let first = sent(run_with(&sandbox, code).unwrap());
        let second = sent(run_with(&sandbox, code).unwrap());
        // ...are gone when the next starts.
        let clean = r#"{"count":1,"seenGlobal":"undefined","seenImplicit":"undefined","seenProto":"clean","seenJson":"[1]"}"#;
        assert_eq!(first.payload, clean);
        assert_eq!(second.payload, clean);
    }

    #[test]
    fn prototype_pollution_stays_inside_the_run() {
        // Polluting Object.prototype makes every object of this run carry the field,
        // the returned webhook included; it does not reach Herald or the next run.
        let code = r#"function handler(w) { Object.prototype.cancel = true; return w; }"#;
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        // JSON.stringify only writes own properties, so the inherited `cancel` is not
        // in the returned webhook.
        assert!(matches!(
            run_with(&sandbox, code).unwrap(),
            Outcome::Send(_)
        ));
        let w = sent(run_with(&sandbox, "function handler(w) { return w; }").unwrap());
        assert_eq!(w.payload, r#"{"user":{"name":"ann","id":42}}"#);
        let err = run_with(
            &sandbox,
            "function handler(w) { return ({}).cancel === undefined ? w : null; }",
        )
        .map(|_| ());
        assert!(err.is_ok());
    }

    #[test]
    fn the_realm_has_no_clock_timers_or_outside_world() {
        let code = r#"function handler(w) {
            w.payload = [typeof Date, typeof performance, typeof setTimeout, typeof require,
                         typeof process, typeof fetch, typeof XMLHttpRequest, typeof Promise,
                         typeof os, typeof std, typeof import_meta];
            return w;
        }"#;
        let w = sent(run(code).unwrap());
        let payload: Vec<String> = serde_json::from_str(&w.payload).unwrap();
        assert!(payload.iter().all(|t| t == "undefined"), "{payload:?}");
        // A script is no module: it cannot import one.
        let err = run("import fs from 'fs'; function handler(w) { return w; }").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Compile, "{err}");
    }

    #[test]
    fn a_kept_realm_serves_its_lane_until_a_run_hits_a_limit() {
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        let code = "function handler(w) { return w; }";
        for _ in 0..3 {
            assert!(run_with(&sandbox, code).is_ok());
        }
        assert_eq!(sandbox.kept_realms(), 1);
        // Another script for the same lane replaces it; one that hits a limit leaves
        // nothing behind.
        let err = run_with(&sandbox, "function handler(w) { while (true) {} }").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert_eq!(sandbox.kept_realms(), 0);
        assert!(run_with(&sandbox, code).is_ok());
        assert_eq!(sandbox.kept_realms(), 1);
    }

    #[test]
    fn a_global_the_reset_cannot_remove_throws_the_realm_away() {
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        let code = r#"function handler(w) {
            w.payload = { seen: typeof sticky, proto: Object.getPrototypeOf(globalThis) === Object.prototype };
            Object.defineProperty(globalThis, "sticky", { value: 1, configurable: false });
            Object.setPrototypeOf(globalThis, { evil: true });
            return w;
        }"#;
        for _ in 0..2 {
            let w = sent(run_with(&sandbox, code).unwrap());
            assert_eq!(w.payload, r#"{"seen":"undefined","proto":true}"#);
        }
        assert_eq!(sandbox.kept_realms(), 0);
    }

    #[test]
    fn built_ins_are_frozen_so_a_run_cannot_change_them() {
        let code = r#"function handler(w) {
            "use strict";
            try { Array.prototype.push = null; w.payload = "changed"; } catch (e) { w.payload = e.name; }
            return w;
        }"#;
        assert_eq!(sent(run(code).unwrap()).payload, r#""TypeError""#);
    }

    #[test]
    fn a_batch_script_shapes_the_batch() {
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        let events = r#"[{"id":"msg_1","eventType":"a","payload":{"n":1}},{"id":"msg_2","eventType":"b","payload":{"n":2}}]"#;
        let input = BatchInput {
            url: "https://example.com/batches",
            events,
            variables: &std::collections::BTreeMap::new(),
        };
        let code = "function handler(input) { return { data: input.events.map((e) => e.payload.n), config: { headers: { 'X-Count': String(input.events.length) } } }; }";
        let out = sandbox.run_batch(Some("dest_1"), code, &input).unwrap();
        let BatchOutcome::Send(r) = out else {
            panic!("cancelled")
        };
        assert_eq!(r.body, "[1,2]");
        assert_eq!(r.headers, vec![("x-count".to_string(), "2".to_string())]);
        assert_eq!(r.url, None);
    }
}
