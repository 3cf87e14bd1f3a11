//! The API client commands: `herald app|endpoint|event-type|message|attempt|source …`
//! and `herald send`. Tables for people, `--json` for scripts; long operations (bulk
//! sends, replays, exports) show progress on stderr.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{ApiClient, ServerFlags};
use crate::outln;

#[derive(clap::Args, Debug)]
pub struct Output {
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerFlags,
}

#[derive(clap::Args, Debug)]
pub struct Paging {
    /// Rows per page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after this cursor (printed under a table that has more).
    #[arg(long)]
    pub iterator: Option<String>,
    /// Every page, one after the other (an export; progress on stderr).
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum AppOp {
    /// List the applications (your tenants).
    List(Paging),
    /// Create an application.
    Create {
        name: String,
        /// Your own id for it, usable wherever its id is.
        #[arg(long)]
        uid: Option<String>,
    },
    /// Show one application (by id or uid).
    Get { app: String },
    /// Rename an application.
    Update {
        app: String,
        #[arg(long)]
        name: String,
    },
    /// Delete an application and everything in it.
    Delete { app: String },
}

#[derive(Subcommand, Debug)]
pub enum EndpointOp {
    /// List an application's endpoints.
    List {
        app: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Add an endpoint to an application.
    Create {
        app: String,
        url: String,
        /// Your own id for it, usable wherever its id is.
        #[arg(long)]
        uid: Option<String>,
        /// Comma-separated event types (default: all).
        #[arg(long, value_delimiter = ',')]
        filter_types: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        channels: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Deliveries per second at most.
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// Show one endpoint (by id or uid).
    Get { app: String, endpoint: String },
    /// Change an endpoint's URL, description or event types, or disable it.
    Update {
        app: String,
        endpoint: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_delimiter = ',')]
        filter_types: Option<Vec<String>>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Delete an endpoint.
    Delete { app: String, endpoint: String },
    /// Show the signing secret.
    Secret { app: String, endpoint: String },
    /// Send again every message of a window (RFC 3339 `--since`, default one day).
    Replay {
        app: String,
        endpoint: String,
        #[arg(long)]
        since: Option<String>,
        /// Only what failed (recover) rather than everything.
        #[arg(long)]
        failed: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventTypeOp {
    /// List the event types of the catalog.
    List(Paging),
    /// Add an event type to the catalog.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A JSON Schema file for version 1 of the payload.
        #[arg(long, value_name = "FILE")]
        schema: Option<std::path::PathBuf>,
    },
    /// Show one event type, with its schema.
    Get { name: String },
    /// Archive an event type (or delete it with --expunge).
    Delete {
        name: String,
        /// Delete it for good instead of archiving it.
        #[arg(long)]
        expunge: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MessageOp {
    /// List an application's messages, newest first, with how their deliveries went.
    List {
        app: String,
        #[arg(long)]
        event_type: Option<String>,
        /// Only messages with a delivery in this state (among the last 250 of each
        /// endpoint).
        #[arg(long, value_parser = ["succeeded", "pending", "failed", "canceled"])]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one message (by id or eventId), with its payload.
    Get { app: String, msg: String },
}

#[derive(Subcommand, Debug)]
pub enum AttemptOp {
    /// The attempts of one message.
    List { app: String, msg: String },
    /// Send a message to one endpoint again, now.
    Resend {
        app: String,
        msg: String,
        endpoint: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserOp {
    /// List the people who sign in to the console.
    List(Paging),
    /// Add someone who signs in to the console with their email and a password (from
    /// HERALD_USER_PASSWORD, or the first line of standard input).
    Add {
        email: String,
        /// admin, developer, support or viewer.
        #[arg(long)]
        role: String,
        /// Give them a TOTP second factor: its secret is printed this once.
        #[arg(long)]
        totp: bool,
        #[arg(long, env = "HERALD_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Remove someone (by email or id): their sessions end at once.
    Remove { user: String },
    /// Change someone's role (by email or id).
    SetRole { user: String, role: String },
}

#[derive(Subcommand, Debug)]
pub enum SourceOp {
    /// List the inbound sources.
    List(Paging),
    /// Create an inbound source: third-party webhooks arrive at its ingest URL.
    Create {
        name: String,
        /// The provider's scheme (github, stripe, slack, standard-webhooks, …).
        #[arg(long)]
        scheme: String,
        /// The provider's signing secret.
        #[arg(long, env = "HERALD_SOURCE_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Where verified requests go; repeat for several destinations.
        #[arg(long = "forward-to", value_name = "URL")]
        forward_to: Vec<String>,
    },
    /// Show one source, with its ingest URL and destinations.
    Get { source: String },
    /// Delete a source, its destinations and its log.
    Delete { source: String },
    /// The requests that arrived, accepted and refused.
    Requests {
        source: String,
        #[command(flatten)]
        paging: Paging,
    },
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    pub event_type: String,
    /// The application (id or uid).
    #[arg(long)]
    pub app: String,
    /// The payload: JSON text, or @file.json.
    #[arg(long)]
    pub data: String,
    /// Send it this many times (a load or bulk send; progress on stderr).
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// The message's eventId (idempotency); with --count, suffixed with -1, -2, ….
    #[arg(long)]
    pub event_id: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
}

/// A one-line progress bar on stderr.
fn progress(label: &str, done: u64, total: Option<u64>) {
    let line = match total {
        Some(total) if total > 0 => {
            let filled = (done * 30 / total) as usize;
            format!(
                "\r{label} [{}{}] {done}/{total}",
                "#".repeat(filled),
                ".".repeat(30 - filled)
            )
        }
        _ => format!("\r{label} {done}"),
    };
    eprint!("{line}");
    let _ = std::io::stderr().flush();
}

/// A message or attempt status (Svix's numbers) in words.
fn status_word(status: &Value) -> &'static str {
    match status.as_i64() {
        Some(0) => "succeeded",
        Some(1) => "pending",
        Some(2) => "failed",
        Some(3) => "sending",
        _ => "-",
    }
}

/// What an attempt got: the HTTP status with its reason phrase, or, when no response
/// came, why not.
fn attempt_result(attempt: &Value) -> String {
    match attempt["responseStatusCode"].as_u64() {
        Some(0) | None => attempt["response"].as_str().unwrap_or("-").to_string(),
        Some(code) => {
            let reason = reqwest::StatusCode::from_u16(code as u16)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("");
            format!("{code} {reason}").trim_end().to_string()
        }
    }
}

/// Prints rows as an aligned table of the chosen (header, field) columns.
fn table(rows: &[Value], columns: &[(&str, &str)]) {
    let cell = |row: &Value, field: &str| -> String {
        match field {
            "@status" => return status_word(&row["status"]).to_string(),
            "@result" => return attempt_result(row),
            _ => {}
        }
        match &row[field] {
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| i.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, f)| cell(r, f)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|c| c[i].chars().count().min(60))
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| {
                let v: String = if v.chars().count() > 60 {
                    format!("{}…", v.chars().take(59).collect::<String>())
                } else {
                    v.clone()
                };
                format!("{v:<w$}")
            })
            .collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for c in cells {
        line(c);
    }
}

/// One object as `field: value` lines.
fn record(value: &Value) {
    if let Some(map) = value.as_object() {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in map {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            outln!("{k:<width$}  {text}");
        }
    } else {
        outln!("{value}");
    }
}

fn show(out: &Output, value: &Value) {
    if out.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON prints")
        );
    } else {
        record(value);
    }
}

/// Lists a route page by page: one page, or every page with `--all`.
async fn list(
    client: &ApiClient,
    out: &Output,
    path: &str,
    paging: &Paging,
    columns: &[(&str, &str)],
) -> anyhow::Result<()> {
    list_decorated(client, out, path, paging, columns, &|_| {}).await
}

/// `list`, with `decorate` adding fields to each row of a table (not to `--json`).
async fn list_decorated(
    client: &ApiClient,
    out: &Output,
    path: &str,
    paging: &Paging,
    columns: &[(&str, &str)],
    decorate: &(dyn Fn(&mut Value) + Sync),
) -> anyhow::Result<()> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut iterator = paging.iterator.clone();
    let mut rows: Vec<Value> = Vec::new();
    loop {
        let mut url = format!("{path}{sep}limit={}", paging.limit);
        if let Some(it) = &iterator {
            url.push_str(&format!("&iterator={it}"));
        }
        let page = client.get(&url).await?;
        rows.extend(page["data"].as_array().cloned().unwrap_or_default());
        iterator = page["iterator"].as_str().map(str::to_string);
        let done = page["done"].as_bool().unwrap_or(true);
        if paging.all {
            progress("exported", rows.len() as u64, None);
        }
        if !paging.all || done || iterator.is_none() {
            if paging.all {
                eprintln!();
            }
            if out.json {
                let doc = json!({"data": rows, "iterator": iterator, "done": done || paging.all});
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("JSON prints")
                );
            } else {
                rows.iter_mut().for_each(decorate);
                table(&rows, columns);
                if !done && !paging.all {
                    if let Some(it) = &iterator {
                        outln!("(more: --iterator {it})");
                    }
                }
            }
            return Ok(());
        }
    }
}

/// The payload of `--data`: JSON text or `@file`.
fn payload(data: &str) -> anyhow::Result<Value> {
    let text = match data.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => data.to_string(),
    };
    serde_json::from_str(&text).context("--data must be JSON (or @file.json)")
}

fn day_ago() -> String {
    herald_core::time::format_rfc3339(herald_core::time::now_ms() - 86_400_000)
}

const APP_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("UID", "uid"),
    ("NAME", "name"),
    ("CREATED", "createdAt"),
];
const ENDPOINT_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("URL", "url"),
    ("DISABLED", "disabled"),
    ("EVENT TYPES", "filterTypes"),
    ("CHANNELS", "channels"),
];
const EVENT_TYPE_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("DESCRIPTION", "description"),
    ("ARCHIVED", "archived"),
];
const MESSAGE_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("EVENT TYPE", "eventType"),
    ("EVENT ID", "eventId"),
    ("DELIVERY", "delivery"),
    ("TIMESTAMP", "timestamp"),
];

/// The delivery statuses by name, as `--status` takes them.
const DELIVERY_STATUSES: &[(&str, i64)] = &[
    ("succeeded", 0),
    ("pending", 1),
    ("failed", 2),
    ("canceled", 4),
];

/// Each message's deliveries (one per endpoint) summed up in a word: the worst of them
/// (failed, then pending, then canceled, then succeeded), or "-" when it went nowhere.
fn delivery_word(statuses: &[i64]) -> String {
    let words: Vec<&str> = statuses
        .iter()
        .filter_map(|s| {
            DELIVERY_STATUSES
                .iter()
                .find(|(_, n)| n == s)
                .map(|(w, _)| *w)
        })
        .collect();
    ["failed", "pending", "sending", "canceled", "succeeded"]
        .iter()
        .find(|w| words.contains(w))
        .map_or_else(|| "-".to_string(), |w| w.to_string())
}

/// The deliveries of an application's recent messages, by message id: what each of its
/// endpoints (the first 100) reports for its last 250 messages, or only those with
/// `status`.
async fn delivery_statuses(
    c: &ApiClient,
    app: &str,
    status: Option<i64>,
) -> anyhow::Result<std::collections::HashMap<String, (Value, Vec<i64>)>> {
    let mut by_msg: std::collections::HashMap<String, (Value, Vec<i64>)> = Default::default();
    let endpoints = c.get(&format!("/app/{app}/endpoint?limit=100")).await?;
    for ep in endpoints["data"].as_array().cloned().unwrap_or_default() {
        let ep_id = ep["id"].as_str().unwrap_or_default();
        let mut path = format!("/app/{app}/endpoint/{ep_id}/msg?limit=250&with_content=false");
        if let Some(s) = status {
            path.push_str(&format!("&status={s}"));
        }
        let page = c.get(&path).await?;
        for m in page["data"].as_array().cloned().unwrap_or_default() {
            let id = m["id"].as_str().unwrap_or_default().to_string();
            let s = m["status"].as_i64().unwrap_or(-1);
            by_msg
                .entry(id)
                .or_insert_with(|| (m, Vec::new()))
                .1
                .push(s);
        }
    }
    Ok(by_msg)
}
const ATTEMPT_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("ENDPOINT", "endpointId"),
    ("STATUS", "@status"),
    ("RESULT", "@result"),
    ("MS", "responseDurationMs"),
    ("TIMESTAMP", "timestamp"),
];
const USER_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("EMAIL", "email"),
    ("ROLE", "role"),
    ("TOTP", "totp"),
    ("CREATED", "createdAt"),
];
const SOURCE_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("SCHEME", "scheme"),
    ("INGEST URL", "ingestUrl"),
];
const REQUEST_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("RECEIVED", "receivedAt"),
    ("METHOD", "method"),
    ("VERIFIED", "verified"),
    ("MESSAGE", "msgId"),
    ("REASON", "reason"),
];

pub async fn app(op: AppOp, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    match op {
        AppOp::List(p) => list(&c, &out, "/app", &p, APP_COLUMNS).await,
        AppOp::Create { name, uid } => {
            show(
                &out,
                &c.post("/app", &json!({"name": name, "uid": uid})).await?,
            );
            Ok(())
        }
        AppOp::Get { app } => {
            show(&out, &c.get(&format!("/app/{app}")).await?);
            Ok(())
        }
        AppOp::Update { app, name } => {
            show(
                &out,
                &c.call(
                    Method::PATCH,
                    &format!("/app/{app}"),
                    Some(&json!({"name": name})),
                )
                .await?,
            );
            Ok(())
        }
        AppOp::Delete { app } => {
            c.call(Method::DELETE, &format!("/app/{app}"), None).await?;
            outln!("deleted {app}");
            Ok(())
        }
    }
}

pub async fn endpoint(op: EndpointOp, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    match op {
        EndpointOp::List { app, paging } => {
            list(
                &c,
                &out,
                &format!("/app/{app}/endpoint"),
                &paging,
                ENDPOINT_COLUMNS,
            )
            .await
        }
        EndpointOp::Create {
            app,
            url,
            uid,
            filter_types,
            channels,
            description,
            rate_limit,
        } => {
            let mut body = json!({"url": url, "uid": uid, "description": description, "rateLimit": rate_limit});
            if !filter_types.is_empty() {
                body["filterTypes"] = json!(filter_types);
            }
            if !channels.is_empty() {
                body["channels"] = json!(channels);
            }
            show(&out, &c.post(&format!("/app/{app}/endpoint"), &body).await?);
            Ok(())
        }
        EndpointOp::Get { app, endpoint } => {
            show(
                &out,
                &c.get(&format!("/app/{app}/endpoint/{endpoint}")).await?,
            );
            Ok(())
        }
        EndpointOp::Update {
            app,
            endpoint,
            url,
            description,
            filter_types,
            disable,
            enable,
        } => {
            let mut body = json!({});
            if let Some(u) = url {
                body["url"] = json!(u);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(t) = filter_types {
                body["filterTypes"] = json!(t);
            }
            if disable || enable {
                body["disabled"] = json!(disable);
            }
            show(
                &out,
                &c.call(
                    Method::PATCH,
                    &format!("/app/{app}/endpoint/{endpoint}"),
                    Some(&body),
                )
                .await?,
            );
            Ok(())
        }
        EndpointOp::Delete { app, endpoint } => {
            c.call(
                Method::DELETE,
                &format!("/app/{app}/endpoint/{endpoint}"),
                None,
            )
            .await?;
            outln!("deleted {endpoint}");
            Ok(())
        }
        EndpointOp::Secret { app, endpoint } => {
            let s = c
                .get(&format!("/app/{app}/endpoint/{endpoint}/secret"))
                .await?;
            if out.json {
                show(&out, &s);
            } else {
                outln!("{}", s["key"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        EndpointOp::Replay {
            app,
            endpoint,
            since,
            failed,
        } => {
            let route = if failed { "recover" } else { "bulk-replay" };
            let since = since.unwrap_or_else(day_ago);
            let task = c
                .post(
                    &format!("/app/{app}/endpoint/{endpoint}/{route}"),
                    &json!({"since": since}),
                )
                .await?;
            let id = task["id"]
                .as_str()
                .context("the server returned no task id")?
                .to_string();
            let started = Instant::now();
            let mut task = task;
            while task["status"] == "running" {
                progress(
                    &format!("replaying ({route}, task {id})"),
                    started.elapsed().as_secs(),
                    None,
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                task = c.get(&format!("/background-task/{id}")).await?;
            }
            eprintln!();
            if task["status"] == "failed" {
                bail!("the replay failed: {}", task["data"]["error"]);
            }
            show(&out, &task);
            Ok(())
        }
    }
}

pub async fn event_type(op: EventTypeOp, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    match op {
        EventTypeOp::List(p) => list(&c, &out, "/event-type", &p, EVENT_TYPE_COLUMNS).await,
        EventTypeOp::Create {
            name,
            description,
            schema,
        } => {
            let mut body = json!({"name": name, "description": description.unwrap_or_default()});
            if let Some(path) = schema {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let schema: Value =
                    serde_json::from_str(&text).context("the schema file must be JSON")?;
                body["schemas"] = json!({"1": schema});
            }
            show(&out, &c.post("/event-type", &body).await?);
            Ok(())
        }
        EventTypeOp::Get { name } => {
            show(&out, &c.get(&format!("/event-type/{name}")).await?);
            Ok(())
        }
        EventTypeOp::Delete { name, expunge } => {
            c.call(
                Method::DELETE,
                &format!("/event-type/{name}?expunge={expunge}"),
                None,
            )
            .await?;
            outln!("{} {name}", if expunge { "deleted" } else { "archived" });
            Ok(())
        }
    }
}

pub async fn message(op: MessageOp, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    match op {
        MessageOp::List {
            app,
            event_type,
            status,
            paging,
        } => {
            if let Some(word) = status {
                // Only the messages with a delivery in that state, newest first.
                let n = DELIVERY_STATUSES
                    .iter()
                    .find(|(w, _)| *w == word)
                    .map(|(_, n)| *n)
                    .expect("clap checked it");
                let by_msg = delivery_statuses(&c, &app, Some(n)).await?;
                let mut rows: Vec<Value> = by_msg
                    .into_values()
                    .map(|(mut m, _)| {
                        m["delivery"] = json!(word);
                        m
                    })
                    .filter(|m| event_type.as_ref().is_none_or(|t| m["eventType"] == *t))
                    .collect();
                rows.sort_by(|a, b| b["timestamp"].as_str().cmp(&a["timestamp"].as_str()));
                rows.truncate(paging.limit as usize);
                if out.json {
                    outln!(
                        "{}",
                        serde_json::to_string_pretty(&json!({"data": rows})).expect("JSON prints")
                    );
                } else {
                    table(&rows, MESSAGE_COLUMNS);
                }
                return Ok(());
            }
            let path = match &event_type {
                Some(t) => format!("/app/{app}/msg?event_types={t}"),
                None => format!("/app/{app}/msg"),
            };
            let by_msg = if out.json {
                Default::default()
            } else {
                delivery_statuses(&c, &app, None).await?
            };
            let decorate = |row: &mut Value| {
                let id = row["id"].as_str().unwrap_or_default();
                let word = by_msg
                    .get(id)
                    .map_or_else(|| "-".to_string(), |(_, s)| delivery_word(s));
                row["delivery"] = json!(word);
            };
            list_decorated(&c, &out, &path, &paging, MESSAGE_COLUMNS, &decorate).await
        }
        MessageOp::Get { app, msg } => {
            show(&out, &c.get(&format!("/app/{app}/msg/{msg}")).await?);
            Ok(())
        }
    }
}

pub async fn attempt(op: AttemptOp, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    match op {
        AttemptOp::List { app, msg } => {
            let paging = Paging {
                limit: 250,
                iterator: None,
                all: false,
            };
            list(
                &c,
                &out,
                &format!("/app/{app}/attempt/msg/{msg}"),
                &paging,
                ATTEMPT_COLUMNS,
            )
            .await
        }
        AttemptOp::Resend { app, msg, endpoint } => {
            c.call(
                Method::POST,
                &format!("/app/{app}/msg/{msg}/endpoint/{endpoint}/resend"),
                None,
            )
            .await?;
            outln!("resending {msg} to {endpoint}");
            Ok(())
        }
    }
}

pub async fn user(op: UserOp, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    match op {
        UserOp::List(p) => list(&c, &out, "/person", &p, USER_COLUMNS).await,
        UserOp::Add {
            email,
            role,
            totp,
            password,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let body = json!({"email": email, "password": password, "role": role, "totp": totp});
            let made = c.post("/person", &body).await?;
            show(&out, &made);
            Ok(())
        }
        UserOp::Remove { user } => {
            c.call(Method::DELETE, &format!("/person/{user}"), None)
                .await?;
            outln!("removed {user}");
            Ok(())
        }
        UserOp::SetRole { user, role } => {
            let body = json!({"role": role});
            show(
                &out,
                &c.call(Method::PATCH, &format!("/person/{user}"), Some(&body))
                    .await?,
            );
            Ok(())
        }
    }
}

pub async fn source(op: SourceOp, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    match op {
        SourceOp::List(p) => list(&c, &out, "/source", &p, SOURCE_COLUMNS).await,
        SourceOp::Create {
            name,
            scheme,
            secret,
            forward_to,
        } => {
            let destinations: Vec<Value> = forward_to.iter().map(|u| json!({"url": u})).collect();
            let body = json!({"name": name, "scheme": scheme, "secret": secret, "destinations": destinations});
            show(&out, &c.post("/source", &body).await?);
            Ok(())
        }
        SourceOp::Get { source } => {
            show(&out, &c.get(&format!("/source/{source}")).await?);
            Ok(())
        }
        SourceOp::Delete { source } => {
            c.call(Method::DELETE, &format!("/source/{source}"), None)
                .await?;
            outln!("deleted {source}");
            Ok(())
        }
        SourceOp::Requests { source, paging } => {
            list(
                &c,
                &out,
                &format!("/source/{source}/request"),
                &paging,
                REQUEST_COLUMNS,
            )
            .await
        }
    }
}

pub async fn send(args: SendArgs, out: Output) -> anyhow::Result<()> {
    let c = ApiClient::new(&out.server)?;
    let data = payload(&args.data)?;
    let mut last = Value::Null;
    for i in 1..=args.count {
        let event_id = args.event_id.as_ref().map(|id| {
            if args.count > 1 {
                format!("{id}-{i}")
            } else {
                id.clone()
            }
        });
        let mut body = json!({"eventType": args.event_type, "payload": data, "eventId": event_id});
        if !args.channels.is_empty() {
            body["channels"] = json!(args.channels);
        }
        last = c.post(&format!("/app/{}/msg", args.app), &body).await?;
        if args.count > 1 {
            progress("sent", u64::from(i), Some(u64::from(args.count)));
        }
    }
    if args.count > 1 {
        eprintln!();
        outln!(
            "sent {} messages; the last is {}",
            args.count,
            last["id"].as_str().unwrap_or_default()
        );
    } else {
        show(&out, &last);
    }
    Ok(())
}
