//! Customers' JavaScript transformations, run in a sandbox.
//!
//! A transformation is a script that declares `function handler(webhook)`. It gets the
//! delivery about to be made (`method`, `url`, `eventType`, `payload`) and returns it,
//! changed: another body, another URL, PUT instead of POST, extra `headers`, or
//! `cancel: true` to skip the delivery.
//!
//! The contract with the rest of Herald is this file: [`Input`] in, [`Outcome`] or a
//! [`ScriptError`] out, through a [`Pool`] (async, for the engine and the API) or a
//! [`Sandbox`] (one thread's engine, for tests and tools). Nothing else of QuickJS
//! leaks out.
//!
//! The sandbox (`sandbox.rs`, `realms.rs`): a run happens in a realm kept for its lane
//! and script, locked down (built-ins frozen) and reset after each run, with the script
//! evaluated again each time, so nothing one delivery leaves on `globalThis`, in a
//! closure or on a prototype is there for the next; the realm has the language and JSON, RegExp, Map and Set, and nothing that
//! reaches outside (no `Date`, no `performance`, no timers, no modules, no I/O of any
//! kind); each run is bounded in CPU time (the thread's own clock, checked by QuickJS's
//! interrupt handler), in memory (the runtime's allocator limit), in stack depth, and in
//! the size of what it returns.

mod output;
mod pool;
mod realms;
mod sandbox;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use output::RESERVED_HEADERS;
pub use pool::{BatchRunRequest, Pool, Request};
pub use sandbox::Sandbox;

/// The longest script accepted, in bytes (the API's limit is 65,536 characters).
pub const MAX_CODE_BYTES: usize = 256 * 1024;

/// What one run may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// CPU time of the thread running the script.
    pub cpu: Duration,
    /// Memory of the JavaScript heap, the realm itself included.
    pub memory_bytes: usize,
    /// The largest returned webhook, as JSON.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu: Duration::from_millis(50),
            memory_bytes: 16 * 1024 * 1024,
            output_bytes: 1024 * 1024,
        }
    }
}

/// The delivery a script sees.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub method: Method,
    pub url: &'a str,
    pub event_type: &'a str,
    /// The message's payload as JSON text.
    pub payload: &'a str,
    /// The transformation's variables (the second argument of `handler`).
    pub variables: &'a BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// The delivery a script asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub method: Method,
    pub url: String,
    /// The body to send, as JSON text.
    pub payload: String,
    /// Headers the script set, added to the delivery's own (names in lower case).
    pub headers: Vec<(String, String)>,
}

/// What a run decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Send(Webhook),
    /// The script set `cancel: true`: nothing is sent.
    Cancel,
}

/// A destination's batch as its script sees it: `handler({url, events}, variables)`.
#[derive(Clone, Debug)]
pub struct BatchInput<'a> {
    /// The destination's URL.
    pub url: &'a str,
    /// The batch's messages as a JSON array (what the destination sends by default).
    pub events: &'a str,
    pub variables: &'a BTreeMap<String, String>,
}

/// The request a batch script asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRequest {
    /// Another URL than the destination's, if the script set one.
    pub url: Option<String>,
    /// The body: `data` as JSON (format `json`, the default), or `data` as it is (format
    /// `raw`, a string).
    pub body: String,
    pub content_type: &'static str,
    /// Headers the script set (names in lower case).
    pub headers: Vec<(String, String)>,
    /// The object key the script chose (`config.key`), for destinations that write
    /// objects (amazonS3).
    pub key: Option<String>,
}

/// What a batch script decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    Send(BatchRequest),
    /// `cancel: true`: the batch is not sent, and the destination moves past it.
    Cancel,
}

/// Why a run gave no outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The code does not parse, or declares no `handler` function.
    Compile,
    /// The code threw.
    Thrown,
    /// The run used up its CPU time.
    Timeout,
    /// The run used up its memory.
    Memory,
    /// The run recursed deeper than the stack allows.
    StackOverflow,
    /// The handler returned something that is not a webhook.
    BadReturn,
    /// The returned webhook is larger than the output bound.
    OutputTooLarge,
    /// The sandbox itself failed (no realm could be made, the pool stopped).
    Internal,
}

impl ErrorKind {
    /// A stable name, for the API and logs.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Compile => "compile_error",
            ErrorKind::Thrown => "thrown",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Memory => "out_of_memory",
            ErrorKind::StackOverflow => "stack_overflow",
            ErrorKind::BadReturn => "bad_return",
            ErrorKind::OutputTooLarge => "output_too_large",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A failed run: what kind of failure, in words, and where in the code when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    pub kind: ErrorKind,
    pub message: String,
    /// 1-based line and column in the script.
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl ScriptError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> ScriptError {
        ScriptError {
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transformation failed ({}): {}",
            self.kind.code(),
            self.message
        )?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, " at line {line}, column {column}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScriptError {}
