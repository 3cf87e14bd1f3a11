//! Filters of the message and attempt lists, and the list statements built from them.
//! The statements are shared by both backends; see `sql.rs`.

use crate::page::ListQuery;
use crate::sql::{Arg, Dialect, Query};

/// Filters for message lists.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub channel: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub event_types: Vec<String>,
    pub with_content: bool,
    /// Lists of deliveries only (an endpoint's messages): the delivery's status
    /// (0 succeeded, 1 pending or sending, 2 failed, 4 canceled).
    pub status: Option<i64>,
}

impl MessageFilter {
    /// Appends the conditions for the message table aliased `m`.
    pub(crate) fn apply(&self, q: &mut Query) {
        if let Some(ch) = &self.channel {
            let p = q.bind_text(ch.clone());
            let cond = q.json_array_contains("m.channels", &p);
            q.sql.push_str(" AND ");
            q.sql.push_str(&cond);
        }
        if let Some(t) = self.before {
            q.and(Arg::Int(t), |p| format!("m.created_at < {p}"));
        }
        if let Some(t) = self.after {
            q.and(Arg::Int(t), |p| format!("m.created_at > {p}"));
        }
        if !self.event_types.is_empty() {
            let marks: Vec<String> = self
                .event_types
                .iter()
                .map(|t| q.bind_text(t.clone()))
                .collect();
            q.sql
                .push_str(&format!(" AND m.event_type IN ({})", marks.join(", ")));
        }
    }
}

/// Filters for attempt lists.
#[derive(Clone, Debug, Default)]
pub struct AttemptFilter {
    pub status: Option<i64>,
    /// 0, 100, 200, 300, 400 or 500: the hundred the response code falls in.
    pub status_code_class: Option<i64>,
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// Only attempts to this endpoint (an id).
    pub endpoint_id: Option<String>,
}

/// Which attempts a list covers.
#[derive(Clone, Debug)]
pub enum AttemptScope {
    Endpoint(String),
    Message(String),
}

pub(crate) const MESSAGE_COLUMNS: &str =
    "m.id, m.app_id, m.event_id, m.event_type, m.channels, m.created_at, m.expires_at";

/// An attempt's columns, with its message joined as `m` (SQLite's attempt row holds the
/// message's seq and the endpoint's ekey, not their ids; see `attempt_columns`).
pub(crate) const ATTEMPT_COLUMNS: &str =
    "a.id, m.id, a.endpoint_id, m.app_id, a.url, a.status, a.response_status_code, a.response, \
     a.response_duration_ms, a.trigger_type, a.created_at";

pub(crate) const ENDPOINT_COLUMNS: &str =
    "id, app_id, uid, url, description, disabled, event_types, channels, \
     throttle_rate, metadata, headers, secrets, created_at, updated_at, ordered, payload_filter, transformation";

/// How many columns `ENDPOINT_COLUMNS` names (what a statement selects after them starts
/// at this offset from where they start).
pub(crate) const ENDPOINT_COLUMN_COUNT: usize = 17;

/// `ENDPOINT_COLUMNS` qualified by a table alias.
pub(crate) fn endpoint_columns_of(alias: &str) -> String {
    ENDPOINT_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The join condition of a row aliased `alias` (a payload, delivery or attempt) with its
/// message `m`: SQLite's rows refer to the message by its seq (schema version 11),
/// PostgreSQL's by its id.
fn of_message(dialect: Dialect, alias: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("{alias}.msg_seq = m.seq"),
        Dialect::Postgres => format!("{alias}.msg_id = m.id"),
    }
}

/// `ATTEMPT_COLUMNS` in a dialect: SQLite's attempt names its endpoint by ekey.
pub(crate) fn attempt_columns(dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => ATTEMPT_COLUMNS.replace(
            "a.endpoint_id",
            "(SELECT id FROM endpoint WHERE ekey = a.ep)",
        ),
        Dialect::Postgres => ATTEMPT_COLUMNS.to_string(),
    }
}

/// The condition "the row aliased `alias` (a delivery or attempt) belongs to the endpoint
/// whose id is bound at `p`": SQLite's rows hold the endpoint's ekey.
fn is_endpoint(dialect: Dialect, alias: &str, p: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("{alias}.ep = (SELECT ekey FROM endpoint WHERE id = {p})"),
        Dialect::Postgres => format!("{alias}.endpoint_id = {p}"),
    }
}

/// Messages of an application: `MESSAGE_COLUMNS`, then the payload when asked for.
pub(crate) fn message_list(
    dialect: Dialect,
    app_id: &str,
    filter: &MessageFilter,
    list: &ListQuery,
) -> Query {
    let mut q = Query::new(
        dialect,
        if filter.with_content {
            format!(
                "SELECT {MESSAGE_COLUMNS}, p.payload FROM message m LEFT JOIN message_payload p ON {} WHERE 1=1",
                of_message(dialect, "p")
            )
        } else {
            format!("SELECT {MESSAGE_COLUMNS} FROM message m WHERE 1=1")
        },
    );
    q.and(Arg::Text(app_id.to_string()), |p| format!("m.app_id = {p}"));
    filter.apply(&mut q);
    match dialect {
        Dialect::Sqlite => list.apply_by_seq(&mut q, "m.seq"),
        Dialect::Postgres => list.apply(&mut q, "m.id"),
    }
    q
}

/// Attempts of an application in a scope: `ATTEMPT_COLUMNS`.
pub(crate) fn attempt_list(
    dialect: Dialect,
    app_id: &str,
    scope: &AttemptScope,
    f: &AttemptFilter,
    list: &ListQuery,
) -> Query {
    let mut q = Query::new(
        dialect,
        format!(
            "SELECT {} FROM attempt a JOIN message m ON {} WHERE 1=1",
            attempt_columns(dialect),
            of_message(dialect, "a")
        ),
    );
    q.and(Arg::Text(app_id.to_string()), |p| format!("m.app_id = {p}"));
    match scope {
        AttemptScope::Endpoint(id) => {
            q.and(Arg::Text(id.clone()), |p| is_endpoint(dialect, "a", p))
        }
        AttemptScope::Message(id) => q.and(Arg::Text(id.clone()), |p| format!("m.id = {p}")),
    }
    if let Some(ep) = &f.endpoint_id {
        q.and(Arg::Text(ep.clone()), |p| is_endpoint(dialect, "a", p));
    }
    if let Some(s) = f.status {
        q.and(Arg::Int(s), |p| format!("a.status = {p}"));
    }
    if let Some(class) = f.status_code_class {
        q.and(Arg::Int(class), |p| {
            format!("a.response_status_code >= {p}")
        });
        q.and(Arg::Int(class + 100), |p| {
            format!("a.response_status_code < {p}")
        });
    }
    if let Some(t) = f.before {
        q.and(Arg::Int(t), |p| format!("a.created_at < {p}"));
    }
    if let Some(t) = f.after {
        q.and(Arg::Int(t), |p| format!("a.created_at > {p}"));
    }
    let msg_filter = MessageFilter {
        channel: f.channel.clone(),
        event_types: f.event_types.clone(),
        ..Default::default()
    };
    msg_filter.apply(&mut q);
    list.apply(&mut q, "a.id");
    q
}

/// Deliveries to one endpoint joined with their messages: `MESSAGE_COLUMNS`, payload,
/// then status, leased, next_attempt_at (columns 7 to 10).
pub(crate) fn delivered_messages(
    dialect: Dialect,
    endpoint_id: &str,
    f: &MessageFilter,
    list: &ListQuery,
) -> Query {
    let mut q = Query::new(
        dialect,
        format!(
            "SELECT {MESSAGE_COLUMNS}, p.payload, d.status, d.leased, d.next_attempt_at FROM delivery d \
             JOIN message m ON {} LEFT JOIN message_payload p ON {} WHERE 1=1",
            of_message(dialect, "d"),
            of_message(dialect, "p")
        ),
    );
    q.and(Arg::Text(endpoint_id.to_string()), |p| {
        is_endpoint(dialect, "d", p)
    });
    if let Some(status) = f.status {
        q.and(Arg::Int(status), |p| format!("d.status = {p}"));
    }
    f.apply(&mut q);
    match dialect {
        // The endpoint's deliveries in the order of their unique index.
        Dialect::Sqlite => list.apply_by_seq(&mut q, "d.msg_seq"),
        Dialect::Postgres => list.apply(&mut q, "m.id"),
    }
    q
}

/// Deliveries of one message joined with their endpoints: the endpoint's columns, then
/// status, leased, next_attempt_at (from column `ENDPOINT_COLUMN_COUNT` on).
pub(crate) fn delivery_targets(dialect: Dialect, msg_id: &str, list: &ListQuery) -> Query {
    let mut q = Query::new(
        dialect,
        format!(
            "SELECT {}, d.status, d.leased, d.next_attempt_at FROM delivery d JOIN endpoint e ON {} WHERE 1=1",
            endpoint_columns_of("e"),
            match dialect {
                Dialect::Sqlite => "e.ekey = d.ep",
                Dialect::Postgres => "e.id = d.endpoint_id",
            }
        ),
    );
    q.and(Arg::Text(msg_id.to_string()), |p| match dialect {
        Dialect::Sqlite => format!("d.msg_seq = (SELECT seq FROM message WHERE id = {p})"),
        Dialect::Postgres => format!("d.msg_id = {p}"),
    });
    list.apply(&mut q, "e.id");
    q
}

/// A condition that `column` is none of `values` (SQL string literals, quotes doubled);
/// always true for none.
pub(crate) fn none_of(column: &str, values: &[String]) -> String {
    if values.is_empty() {
        return "1=1".to_string();
    }
    let quoted: Vec<String> = values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect();
    format!("{column} NOT IN ({})", quoted.join(", "))
}

/// Applications, endpoints of an application, event types: simple keyed lists.
pub(crate) fn simple_list(
    dialect: Dialect,
    select: &str,
    scope: Option<(&str, &str)>,
    list: &ListQuery,
    key: &str,
) -> Query {
    let mut q = Query::new(dialect, format!("{select} WHERE 1=1"));
    if let Some((column, value)) = scope {
        q.and(Arg::Text(value.to_string()), |p| format!("{column} = {p}"));
    }
    list.apply(&mut q, key);
    q
}

/// The token list statement shared by both backends: every token but pollers' (those
/// belong to their destination), by id.
pub(crate) fn token_list_query(dialect: Dialect, list: &ListQuery) -> Query {
    simple_list(
        dialect,
        "SELECT id, name, role, app_id, destination_id, created_at, expires_at, last_used_at \
         FROM (SELECT * FROM api_token WHERE destination_id IS NULL) t",
        None,
        list,
        "id",
    )
}

/// The audit list statement shared by both backends.
pub(crate) const AUDIT_COLUMNS: &str =
    "id, at, actor_id, actor_name, role, actor_app_id, method, route, path, \
     object_id, status, allowed, source, detail, after, before_change";

pub(crate) fn audit_list_query(
    dialect: Dialect,
    f: &crate::AuditFilter,
    list: &ListQuery,
) -> Query {
    let mut q = Query::new(
        dialect,
        format!("SELECT {AUDIT_COLUMNS} FROM audit_event WHERE 1=1"),
    );
    if let Some(a) = &f.actor_id {
        q.and(Arg::Text(a.clone()), |p| format!("actor_id = {p}"));
    }
    if let Some(o) = &f.object_id {
        q.and(Arg::Text(o.clone()), |p| format!("object_id = {p}"));
    }
    if let Some(t) = f.since {
        q.and(Arg::Int(t), |p| format!("at >= {p}"));
    }
    if let Some(t) = f.until {
        q.and(Arg::Int(t), |p| format!("at < {p}"));
    }
    if let Some(allowed) = f.allowed {
        // A boolean on PostgreSQL, 0 or 1 on SQLite: compared the same way on both.
        q.and(Arg::Int(i64::from(allowed)), |p| {
            format!("CAST((CASE WHEN allowed THEN 1 ELSE 0 END) AS BIGINT) = {p}")
        });
    }
    list.apply(&mut q, "id");
    q
}
