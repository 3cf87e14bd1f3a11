//! The config of destinations in the consumer's own systems (a queue, a database, a
//! stream): each type is a table of its fields and their rules, so a new type is a new
//! table, not new code. What a create or a patch may say is checked here; connection
//! URLs (they may carry a password) and secrets are stored sealed, and the API shows a
//! URL with its password masked and never shows a secret.
//!
//! The stored form (the contract with the engine's senders): an object with each field
//! under its wire name, `Url` and `Secret` fields as sealed text, and `_shown`, the URLs
//! as the API shows them.

use serde_json::{Map, Value};

use crate::error::{invalid, ApiResult};
use crate::state::ApiState;

pub(crate) struct BrokerType {
    /// The destination type's name on the wire.
    pub name: &'static str,
    pub fields: &'static [Field],
}

pub(crate) struct Field {
    /// The wire name, camelCase.
    pub name: &'static str,
    pub rule: Rule,
    pub required: bool,
}

pub(crate) enum Rule {
    /// A connection URL of one of these schemes, to a host deliveries may reach.
    Url(&'static [&'static str]),
    /// A password or token.
    Secret,
    /// Text, checked by a function that says what is wrong.
    Text(fn(&str) -> Result<(), String>),
    /// true or false, with this default.
    Bool(bool),
    /// A whole number in a range, with a default.
    Int { min: i64, max: i64, default: i64 },
    /// HTTP headers sent with each request, checked as an endpoint's; the values of
    /// sensitive ones (Authorization, keys, tokens) are sealed.
    Headers,
}

const fn field(name: &'static str, rule: Rule, required: bool) -> Field {
    Field {
        name,
        rule,
        required,
    }
}

/// Every broker type Herald sends to.
pub(crate) const TYPES: &[BrokerType] = &[
    BrokerType {
        name: "postgres",
        fields: &[
            field("url", Rule::Url(&["postgres", "postgresql"]), true),
            field("password", Rule::Secret, false),
            field("tableName", Rule::Text(table_name), true),
            field("sslRootCert", Rule::Text(no_tls_yet), false),
        ],
    },
    BrokerType {
        name: "rabbitMq",
        fields: &[
            field("uri", Rule::Url(&["amqp"]), true),
            field("routingKey", Rule::Text(routing_key), true),
            // Herald's default: an unroutable message is a failure, never dropped.
            field("mandatory", Rule::Bool(true), false),
            field("exchange", Rule::Text(exchange), false),
        ],
    },
    BrokerType {
        name: "otelTracing",
        fields: &[
            field("url", Rule::Url(&["http", "https"]), true),
            field("headers", Rule::Headers, false),
        ],
    },
    BrokerType {
        name: "sqs",
        fields: &[
            field("queueUrl", Rule::Url(&["http", "https"]), true),
            field("region", Rule::Text(region), true),
            field("accessKeyId", Rule::Text(access_key_id), true),
            field("secretAccessKey", Rule::Secret, true),
            field("endpointUrl", Rule::Url(&["http", "https"]), false),
            field("roleArn", Rule::Text(no_roles_yet), false),
            field("externalId", Rule::Text(no_roles_yet), false),
        ],
    },
    BrokerType {
        name: "sns",
        fields: &[
            field("topicArn", Rule::Text(topic_arn), true),
            field("region", Rule::Text(region), true),
            field("accessKeyId", Rule::Text(access_key_id), true),
            field("secretAccessKey", Rule::Secret, true),
            field("endpointUrl", Rule::Url(&["http", "https"]), false),
            field("roleArn", Rule::Text(no_roles_yet), false),
            field("externalId", Rule::Text(no_roles_yet), false),
        ],
    },
    BrokerType {
        name: "amazonS3",
        fields: &[
            field("bucket", Rule::Text(bucket), true),
            field("region", Rule::Text(region), true),
            field("accessKeyId", Rule::Text(access_key_id), true),
            field("secretAccessKey", Rule::Secret, true),
            field("endpointUrl", Rule::Url(&["http", "https"]), false),
            field("roleArn", Rule::Text(no_roles_yet), false),
            field("externalId", Rule::Text(no_roles_yet), false),
        ],
    },
    BrokerType {
        name: "nats",
        fields: &[
            field("url", Rule::Url(&["nats"]), true),
            field("subject", Rule::Text(subject), true),
            field("token", Rule::Secret, false),
        ],
    },
    BrokerType {
        name: "redisStream",
        fields: &[
            field("url", Rule::Url(&["redis"]), true),
            field("stream", Rule::Text(stream_key), true),
            field(
                "maxLen",
                Rule::Int {
                    min: 1,
                    max: 1_000_000_000,
                    default: 1_000_000,
                },
                false,
            ),
        ],
    },
];

pub(crate) fn find(name: &str) -> Option<&'static BrokerType> {
    TYPES.iter().find(|t| t.name == name)
}

fn table_name(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('.').collect();
    let ident = |p: &&str| {
        !p.is_empty()
            && p.len() <= 63
            && p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() <= 2 && parts.iter().all(ident) {
        Ok(())
    } else {
        Err("tableName is a table, or schema.table: letters, digits and _, each part starting with a letter or _".into())
    }
}

fn no_tls_yet(_: &str) -> Result<(), String> {
    Err(
        "Herald connects to PostgreSQL destinations without TLS for now: leave sslRootCert out"
            .into(),
    )
}

fn printable(s: &str, what: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        Err(format!(
            "{what} is 1 to {max} characters, none of them control characters"
        ))
    } else {
        Ok(())
    }
}

fn routing_key(s: &str) -> Result<(), String> {
    printable(s, "routingKey", 255)
}

fn exchange(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(()); // the default exchange
    }
    printable(s, "exchange", 255)
}

fn subject(s: &str) -> Result<(), String> {
    let ok = s
        .split('.')
        .all(|t| !t.is_empty() && !t.contains(['*', '>', ' ']));
    if ok && s.len() <= 255 && !s.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("subject is a NATS subject: dot-separated tokens, no wildcards or spaces".into())
    }
}

fn region(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err("region is an AWS region such as us-east-1".into())
    }
}

fn access_key_id(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err("accessKeyId is letters and digits (such as AKIA…)".into())
    }
}

fn topic_arn(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == "sns" && !parts[5].is_empty() {
        Ok(())
    } else {
        Err("topicArn is an SNS topic's ARN: arn:aws:sns:<region>:<account>:<topic>".into())
    }
}

fn bucket(s: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err("bucket is an S3 bucket name: 3 to 63 lower-case letters, digits, '-' and '.'".into())
    }
}

fn no_roles_yet(_: &str) -> Result<(), String> {
    Err("Herald signs with an access key for now: give accessKeyId and secretAccessKey, and leave roleArn and externalId out".into())
}

fn stream_key(s: &str) -> Result<(), String> {
    printable(s, "stream", 512)
}

/// A URL with its password replaced, for showing.
fn masked(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("****"));
    }
    shown.to_string()
}

fn check_url(state: &ApiState, f: &Field, schemes: &[&str], text: &str) -> ApiResult<url::Url> {
    let at = ["body", "config", f.name];
    let url = url::Url::parse(text).map_err(|e| invalid(&at, format!("not a URL: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(invalid(
            &at,
            format!("the URL's scheme must be {}", schemes.join(" or ")),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(&at, "the URL has no host"));
    }
    // A literal address deliveries would refuse is refused now; a host name is checked
    // when the engine resolves it. (These schemes are not "special" to the URL
    // standard, so an address is read from the host's text here.)
    let host = url.host_str().unwrap_or_default();
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        state
            .config
            .destinations
            .check(ip)
            .map_err(|m| invalid(&at, m))?;
    }
    Ok(url)
}

/// Checks one field's given value and returns what is stored (sealed where it must be)
/// and, for a URL, what is shown.
fn stored_value(state: &ApiState, f: &Field, given: &Value) -> ApiResult<(Value, Option<String>)> {
    let at = ["body", "config", f.name];
    let text = || {
        given
            .as_str()
            .ok_or_else(|| invalid(&at, format!("{} is a string", f.name)))
    };
    Ok(match &f.rule {
        Rule::Url(schemes) => {
            let url = check_url(state, f, schemes, text()?)?;
            (
                Value::String(state.config.sealer.seal(url.as_str())),
                Some(masked(&url)),
            )
        }
        Rule::Secret => {
            let secret = text()?;
            if secret.is_empty() || secret.len() > 1024 {
                return Err(invalid(&at, format!("{} is 1 to 1024 characters", f.name)));
            }
            (Value::String(state.config.sealer.seal(secret)), None)
        }
        Rule::Text(check) => {
            let t = text()?;
            check(t).map_err(|m| invalid(&at, m))?;
            (Value::String(t.to_string()), None)
        }
        Rule::Bool(_) => match given {
            Value::Bool(b) => (Value::Bool(*b), None),
            _ => return Err(invalid(&at, format!("{} is true or false", f.name))),
        },
        Rule::Headers => {
            let mut headers: std::collections::BTreeMap<String, String> =
                serde_json::from_value(given.clone())
                    .map_err(|_| invalid(&at, "headers map header names to string values"))?;
            crate::routes::endpoints::check_headers(&headers)
                .map_err(|e| crate::destination::relocate(e, "config"))?;
            crate::routes::endpoints::seal_sensitive_headers(state, &mut headers);
            (
                serde_json::to_value(headers).expect("strings serialize"),
                None,
            )
        }
        Rule::Int { min, max, .. } => match given.as_i64() {
            Some(n) if (*min..=*max).contains(&n) => (Value::from(n), None),
            _ => {
                return Err(invalid(
                    &at,
                    format!("{} is a whole number from {min} to {max}", f.name),
                ))
            }
        },
    })
}

fn object(config: Option<Value>) -> ApiResult<Map<String, Value>> {
    match config.unwrap_or(Value::Object(Map::new())) {
        Value::Object(map) => Ok(map),
        _ => Err(invalid(&["body", "config"], "config must be an object")),
    }
}

/// Refuses a key the type does not have, naming the ones it has.
fn known_fields(t: &BrokerType, given: &Map<String, Value>) -> ApiResult<()> {
    for key in given.keys() {
        if !t.fields.iter().any(|f| f.name == key) {
            let names: Vec<&str> = t.fields.iter().map(|f| f.name).collect();
            return Err(invalid(
                &["body", "config", key],
                format!("a {} destination's config has {}", t.name, names.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The stored config of a new destination of type `t`.
pub(crate) fn create(state: &ApiState, t: &BrokerType, config: Option<Value>) -> ApiResult<Value> {
    let given = object(config)?;
    known_fields(t, &given)?;
    let mut stored = Map::new();
    let mut shown = Map::new();
    for f in t.fields {
        match given.get(f.name).filter(|v| !v.is_null()) {
            Some(value) => {
                let (value, show) = stored_value(state, f, value)?;
                stored.insert(f.name.into(), value);
                if let Some(show) = show {
                    shown.insert(f.name.into(), Value::String(show));
                }
            }
            None if f.required => {
                return Err(invalid(
                    &["body", "config", f.name],
                    format!("a {} destination needs {}", t.name, f.name),
                ))
            }
            None => {
                let default = match f.rule {
                    Rule::Bool(d) => Value::Bool(d),
                    Rule::Headers => Value::Object(Map::new()),
                    Rule::Int { default, .. } => Value::from(default),
                    _ => continue,
                };
                stored.insert(f.name.into(), default);
            }
        }
    }
    stored.insert("_shown".into(), Value::Object(shown));
    Ok(Value::Object(stored))
}

/// The stored config after a patch: the fields given replace the old ones (`null`
/// removes an optional one), the rest stay.
pub(crate) fn patch(
    state: &ApiState,
    t: &BrokerType,
    old: &Value,
    patch: Value,
) -> ApiResult<Value> {
    let change = object(Some(patch))?;
    known_fields(t, &change)?;
    let mut stored = old.as_object().cloned().unwrap_or_default();
    let mut shown = stored
        .remove("_shown")
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    for f in t.fields {
        match change.get(f.name) {
            None => {}
            Some(Value::Null) if f.required => {
                return Err(invalid(
                    &["body", "config", f.name],
                    format!("a {} destination needs {}", t.name, f.name),
                ))
            }
            Some(Value::Null) => {
                stored.remove(f.name);
                shown.remove(f.name);
            }
            Some(value) => {
                let (value, show) = stored_value(state, f, value)?;
                stored.insert(f.name.into(), value);
                if let Some(show) = show {
                    shown.insert(f.name.into(), Value::String(show));
                }
            }
        }
    }
    stored.insert("_shown".into(), Value::Object(shown));
    Ok(Value::Object(stored))
}

/// The config as the API shows it: URLs masked, secrets left out (a `Secret` field that
/// is set shows as `true` under `<name>Set`, so a form can say one is there).
pub(crate) fn shown(t: &BrokerType, stored: &Value) -> Value {
    let mut out = Map::new();
    let shown = stored.get("_shown").and_then(Value::as_object);
    for f in t.fields {
        let Some(value) = stored.get(f.name) else {
            continue;
        };
        match f.rule {
            Rule::Url(_) => {
                if let Some(url) = shown.and_then(|s| s.get(f.name)) {
                    out.insert(f.name.into(), url.clone());
                }
            }
            Rule::Secret => {
                out.insert(format!("{}Set", f.name), Value::Bool(true));
            }
            // As an endpoint's: the plain ones with their values, the sensitive ones by
            // name only.
            Rule::Headers => {
                let (mut plain, mut sensitive) = (Map::new(), Vec::new());
                for (name, v) in value.as_object().into_iter().flatten() {
                    if herald_core::validate::is_sensitive_header(name) {
                        sensitive.push(Value::String(name.clone()));
                    } else {
                        plain.insert(name.clone(), v.clone());
                    }
                }
                out.insert(
                    f.name.into(),
                    serde_json::json!({"headers": plain, "sensitive": sensitive}),
                );
            }
            _ => {
                out.insert(f.name.into(), value.clone());
            }
        }
    }
    Value::Object(out)
}
