//! What a handler returned, checked: the JSON text of its return value becomes an
//! [`Outcome`] or a `BadReturn` error that says what is wrong.

use serde_json::{Map, Value};

use crate::{BatchOutcome, BatchRequest, ErrorKind, Method, Outcome, ScriptError, Webhook};

/// Headers a script may not set: the signature's, and those the HTTP client owns.
pub const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 4096;
const MAX_URL: usize = 2048;
/// The longest object key a batch script may choose (S3's limit).
const MAX_KEY: usize = 1024;

fn bad(message: impl Into<String>) -> ScriptError {
    ScriptError::new(ErrorKind::BadReturn, message)
}

/// `json` is `JSON.stringify` of the return value, `None` when that gave `undefined`;
/// `original_url` is the URL the script was given, which it may always return (a
/// `herald listen` session's URL is not http).
pub(crate) fn read(json: Option<&str>, original_url: &str) -> Result<Outcome, ScriptError> {
    let Some(json) = json else {
        return Err(bad(
            "handler returned undefined (or a function); it must return the webhook object",
        ));
    };
    let value: Value = serde_json::from_str(json)
        .map_err(|e| bad(format!("handler's return value is not JSON: {e}")))?;
    let Value::Object(mut webhook) = value else {
        return Err(bad(format!(
            "handler returned {}; it must return the webhook object",
            kind_of(&value)
        )));
    };
    match webhook.get("cancel") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Ok(Outcome::Cancel),
        Some(other) => {
            return Err(bad(format!(
                "webhook.cancel must be true or false, not {}",
                kind_of(other)
            )))
        }
    }
    let method = match webhook.get("method") {
        Some(Value::String(m)) if m.eq_ignore_ascii_case("POST") => Method::Post,
        Some(Value::String(m)) if m.eq_ignore_ascii_case("PUT") => Method::Put,
        Some(other) => {
            return Err(bad(format!(
                "webhook.method must be \"POST\" or \"PUT\", not {}",
                short(other)
            )))
        }
        None => return Err(bad("webhook.method is missing")),
    };
    let url = match webhook.get("url") {
        Some(Value::String(u)) if u.len() > MAX_URL => {
            return Err(bad(format!("webhook.url is longer than {MAX_URL} bytes")))
        }
        Some(Value::String(u))
            if u == original_url || u.starts_with("https://") || u.starts_with("http://") =>
        {
            u.clone()
        }
        Some(other) => {
            return Err(bad(format!(
                "webhook.url must be an http or https URL, not {}",
                short(other)
            )))
        }
        None => return Err(bad("webhook.url is missing")),
    };
    let payload = match webhook.remove("payload") {
        Some(payload) => serde_json::to_string(&payload).expect("a JSON value serializes"),
        None => {
            return Err(bad(
                "webhook.payload is missing (set it to the body to send)",
            ))
        }
    };
    let headers = match webhook.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => headers(h, "webhook.headers")?,
        Some(other) => {
            return Err(bad(format!(
                "webhook.headers must be an object of strings, not {}",
                kind_of(other)
            )))
        }
    };
    Ok(Outcome::Send(Webhook {
        method,
        url,
        payload,
        headers,
    }))
}

/// What a destination's batch script returned: `{data, config?: {format?, url?,
/// headers?}}`, or `{cancel: true}`.
pub(crate) fn read_batch(json: Option<&str>) -> Result<BatchOutcome, ScriptError> {
    let Some(json) = json else {
        return Err(bad(
            "handler returned undefined; it must return {data, config} or {cancel: true}",
        ));
    };
    let value: Value = serde_json::from_str(json)
        .map_err(|e| bad(format!("handler's return value is not JSON: {e}")))?;
    let Value::Object(mut out) = value else {
        return Err(bad(format!(
            "handler returned {}; it must return {{data, config}} or {{cancel: true}}",
            kind_of(&value)
        )));
    };
    match out.get("cancel") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Ok(BatchOutcome::Cancel),
        Some(other) => {
            return Err(bad(format!(
                "cancel must be true or false, not {}",
                kind_of(other)
            )))
        }
    }
    let config = match out.remove("config") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c,
        Some(other) => {
            return Err(bad(format!(
                "config must be an object, not {}",
                kind_of(&other)
            )))
        }
    };
    let raw = match config.get("format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "json" => false,
        Some(Value::String(f)) if f == "raw" => true,
        Some(other) => {
            return Err(bad(format!(
                "config.format must be \"json\" or \"raw\", not {}",
                short(other)
            )))
        }
    };
    let Some(data) = out.remove("data") else {
        return Err(bad("data is missing (set it to the body to send)"));
    };
    let (body, content_type) = match (raw, data) {
        (false, data) => (
            serde_json::to_string(&data).expect("a JSON value serializes"),
            "application/json",
        ),
        (true, Value::String(text)) => (text, "text/plain; charset=utf-8"),
        (true, other) => {
            return Err(bad(format!(
                "with config.format \"raw\", data must be a string, not {}",
                kind_of(&other)
            )))
        }
    };
    let url = match config.get("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if u.len() > MAX_URL => {
            return Err(bad(format!("config.url is longer than {MAX_URL} bytes")))
        }
        Some(Value::String(u)) if u.starts_with("https://") || u.starts_with("http://") => {
            Some(u.clone())
        }
        Some(other) => {
            return Err(bad(format!(
                "config.url must be an http or https URL, not {}",
                short(other)
            )))
        }
    };
    let key = match config.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k))
            if !k.is_empty() && k.len() <= MAX_KEY && !k.chars().any(char::is_control) =>
        {
            Some(k.clone())
        }
        Some(other) => {
            return Err(bad(format!(
            "config.key must be 1 to {MAX_KEY} bytes of text without control characters, not {}",
            short(other)
        )))
        }
    };
    let headers = match config.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => headers(h, "config.headers")?,
        Some(other) => {
            return Err(bad(format!(
                "config.headers must be an object of strings, not {}",
                kind_of(other)
            )))
        }
    };
    Ok(BatchOutcome::Send(BatchRequest {
        url,
        body,
        content_type,
        headers,
        key,
    }))
}

fn headers(h: &Map<String, Value>, field: &str) -> Result<Vec<(String, String)>, ScriptError> {
    if h.len() > MAX_HEADERS {
        return Err(bad(format!(
            "webhook.headers has more than {MAX_HEADERS} headers"
        )));
    }
    let mut out = Vec::with_capacity(h.len());
    for (name, value) in h {
        let valid_name = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(bad(format!(
                "webhook.headers: {name:?} is not a header name"
            )));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(bad(format!(
                "{field}: {name} is set by Herald and may not be changed"
            )));
        }
        let Value::String(value) = value else {
            return Err(bad(format!(
                "{field}.{name} must be a string, not {}",
                kind_of(value)
            )));
        };
        if value.len() > MAX_HEADER_VALUE || value.chars().any(|c| matches!(c, '\r' | '\n' | '\0'))
        {
            return Err(bad(format!(
                "{field}.{name} must be at most {MAX_HEADER_VALUE} bytes without line breaks"
            )));
        }
        out.push((lower, value.clone()));
    }
    Ok(out)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as it may be quoted in an error: short ones whole, others by kind.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 40 => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind_of(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_(json: Option<&str>) -> Result<Outcome, ScriptError> {
        read(json, "herald-listen:ep_1")
    }

    #[test]
    fn the_url_given_may_come_back_whatever_its_scheme() {
        let json = r#"{"method":"POST","url":"herald-listen:ep_1","payload":{}}"#;
        assert!(read_(Some(json)).is_ok());
        let json = r#"{"method":"POST","url":"herald-listen:ep_2","payload":{}}"#;
        assert!(read_(Some(json)).is_err());
    }

    fn webhook(extra: &str) -> String {
        format!(r#"{{"method":"POST","url":"https://example.com/a","payload":{{"a":1}}{extra}}}"#)
    }

    #[test]
    fn a_webhook_reads_back_with_its_headers_in_lower_case() {
        let out = read_(Some(&webhook(r#","headers":{"X-Kind":"a"}"#))).unwrap();
        assert_eq!(
            out,
            Outcome::Send(Webhook {
                method: Method::Post,
                url: "https://example.com/a".into(),
                payload: r#"{"a":1}"#.into(),
                headers: vec![("x-kind".into(), "a".into())],
            })
        );
    }

    #[test]
    fn a_batch_request_reads_back_in_either_format() {
        let json =
            r#"{"data":{"rows":[1,2]},"config":{"url":"https://x/y","headers":{"X-N":"2"}}}"#;
        assert_eq!(
            read_batch(Some(json)).unwrap(),
            BatchOutcome::Send(BatchRequest {
                url: Some("https://x/y".into()),
                body: r#"{"rows":[1,2]}"#.into(),
                content_type: "application/json",
                headers: vec![("x-n".into(), "2".into())],
                key: None,
            })
        );
        let keyed = r#"{"data":[1],"config":{"key":"exports/2026/a.json"}}"#;
        let BatchOutcome::Send(r) = read_batch(Some(keyed)).unwrap() else {
            panic!()
        };
        assert_eq!(r.key.as_deref(), Some("exports/2026/a.json"));
        for bad in [r#""""#, "7", r#""ab""#] {
            let json = format!(r#"{{"data":[1],"config":{{"key":{bad}}}}}"#);
            assert!(read_batch(Some(&json)).is_err(), "{json}");
        }
        let raw = r#"{"data":"a\nb","config":{"format":"raw"}}"#;
        let BatchOutcome::Send(r) = read_batch(Some(raw)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.body.as_str(), r.content_type, r.url),
            ("a\nb", "text/plain; charset=utf-8", None)
        );
        assert_eq!(
            read_batch(Some(r#"{"cancel":true}"#)).unwrap(),
            BatchOutcome::Cancel
        );
        for (json, expected) in [
            (r#"{"config":{}}"#, "data is missing"),
            (
                r#"{"data":1,"config":{"format":"raw"}}"#,
                "must be a string",
            ),
            (
                r#"{"data":1,"config":{"format":"xml"}}"#,
                "\"json\" or \"raw\"",
            ),
            (
                r#"{"data":1,"config":{"headers":{"webhook-id":"x"}}}"#,
                "config.headers: webhook-id",
            ),
            (r#"{"data":1,"config":{"url":"ftp://x"}}"#, "http or https"),
        ] {
            let err = read_batch(Some(json)).unwrap_err();
            assert!(err.message.contains(expected), "{json}: {}", err.message);
        }
    }

    #[test]
    fn cancel_wins_over_everything_else() {
        assert_eq!(read_(Some(r#"{"cancel":true}"#)).unwrap(), Outcome::Cancel);
    }

    #[test]
    fn wrong_shapes_say_what_is_wrong() {
        let cases = [
            (None, "returned undefined"),
            (Some("5".to_string()), "returned a number"),
            (
                Some(r#"{"url":"https://x","payload":1}"#.to_string()),
                "method is missing",
            ),
            (Some(webhook("").replace("POST", "GET")), "\"GET\""),
            (
                Some(webhook("").replace("https://example.com/a", "ftp://x")),
                "http or https",
            ),
            (
                Some(r#"{"method":"PUT","url":"https://x"}"#.to_string()),
                "payload is missing",
            ),
            (
                Some(webhook(r#","headers":{"webhook-signature":"x"}"#)),
                "set by Herald",
            ),
            (
                Some(webhook(r#","headers":{"a b":"x"}"#)),
                "not a header name",
            ),
            (Some(webhook(r#","headers":{"x":"a\nb"}"#)), "line breaks"),
            (Some(webhook(r#","headers":{"x":1}"#)), "must be a string"),
            (Some(webhook(r#","cancel":"yes""#)), "true or false"),
        ];
        for (json, expected) in cases {
            let err = read_(json.as_deref()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadReturn, "{json:?}");
            assert!(err.message.contains(expected), "{json:?}: {}", err.message);
        }
    }
}
