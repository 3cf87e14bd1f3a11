//! Request extractors whose failures answer in the API's error shapes (axum's own
//! rejections are plain text, which the SDKs cannot parse).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{invalid, ApiError, ValidationItem};

/// A JSON body, with malformed JSON → 400 `invalid_json`, wrong shape → 422, and an
/// oversize body → 413.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body whose fields are all optional: no body at all is taken as `{}` (a body
/// of blanks is not JSON, and is refused as such).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("the request body is larger than the server accepts".into())
        } else {
            ApiError::BadRequest {
                code: "generic_error",
                detail: "the request body could not be read".into(),
            }
        }
    })
}

/// Turns every float with no fractional part (within ±2^53) into an integer, in place.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every request body is an object. (serde would also read a struct from an array
    // of its fields in order, which no client means.)
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b == b'[') {
        return Err(invalid(&["body"], "the body must be a JSON object"));
    }
    if has_nul_escape(bytes) {
        return Err(invalid(
            &["body"],
            "NUL characters (\\u0000) are not allowed in any string",
        ));
    }
    let first = serde_json::from_slice(bytes);
    // JSON has one number type: `3.0` is the integer 3 to a JSON Schema validator (and
    // to the SDKs of some languages), but not to serde. Only a body refused for that
    // is read again with integral floats made integers; payloads, kept byte for byte,
    // never fail that way, so they are never rewritten.
    let first = match first {
        Err(e) if e.to_string().starts_with("invalid type: floating point") => {
            match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(mut value) => {
                    integral_floats_to_integers(&mut value);
                    serde_json::from_value(value).map_err(|_| e)
                }
                Err(_) => Err(e),
            }
        }
        other => other,
    };
    first.map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest {
                code: "invalid_json",
                detail: format!("the request body is not valid JSON: {e}"),
            },
            Category::Data => {
                let text = e.to_string();
                // serde names the field in backticks: "missing field `url` at line 1 …".
                let field = text
                    .split('`')
                    .nth(1)
                    .filter(|_| text.starts_with("missing field"))
                    .map(str::to_string);
                let mut loc = vec!["body".to_string()];
                loc.extend(field);
                let msg = text.split(" at line ").next().unwrap_or(&text).to_string();
                ApiError::Validation(vec![ValidationItem {
                    loc,
                    msg,
                    kind: "value_error".into(),
                }])
            }
        }
    })
}

/// Whether JSON text holds the escape of a NUL character (`\u0000`) anywhere, in a key,
/// a value or a payload. NUL is refused everywhere: PostgreSQL cannot store it in text,
/// and no webhook needs it. (A raw NUL byte is not valid JSON at all.)
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'\\') {
        let at = i + offset;
        if bytes[at + 1..].starts_with(b"u0000") {
            return true;
        }
        // Skip the escaped character, so that `\\u0000` (an escaped backslash, then
        // text) is not taken for an escape.
        i = at + 2;
        if i >= bytes.len() {
            return false;
        }
    }
    false
}

/// Whether a percent-encoded URL part decodes to a NUL character.
pub fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// The raw query string as decoded key/value pairs (repeated keys kept).
pub struct QueryPairs(pub Vec<(String, String)>);

/// Query parameters that may be repeated (each value, or comma-separated values).
const MULTI_VALUED: &[&str] = &["event_types"];

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect();
        // Only lists may repeat (`event_types`): a repeated single value would be read
        // as its first and the rest ignored without a word.
        for (i, (key, _)) in pairs.iter().enumerate() {
            let list = key.ends_with("[]") || MULTI_VALUED.contains(&key.as_str());
            if !list && pairs[..i].iter().any(|(k, _)| k == key) {
                return Err(ApiError::BadRequest {
                    code: "duplicate_query_parameter",
                    detail: format!("the query parameter {key} is given more than once"),
                });
            }
        }
        Ok(QueryPairs(pairs))
    }
}

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key; comma-separated values are split too.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key || k.strip_suffix("[]") == Some(key))
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect()
    }

    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(_) => Err(invalid(&["query", key], "must be true or false")),
        }
    }

    pub fn timestamp(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => herald_core::time::parse_rfc3339(v)
                .map(Some)
                .ok_or_else(|| invalid(&["query", key], "must be an RFC 3339 timestamp")),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| invalid(&["query", key], "must be an integer")),
        }
    }

    /// `limit` (1..=250, default 50), `iterator` and `order` as a store list query.
    pub fn list(&self, default_descending: bool) -> Result<herald_store::ListQuery, ApiError> {
        let limit = match self.int("limit")? {
            None => 50,
            Some(n) if (1..=250).contains(&n) => n as usize,
            Some(_) => {
                return Err(invalid(
                    &["query", "limit"],
                    "limit must be between 1 and 250",
                ))
            }
        };
        let descending = match self.get("order") {
            None => default_descending,
            Some("ascending") => false,
            Some("descending") => true,
            Some(_) => {
                return Err(invalid(
                    &["query", "order"],
                    "order must be ascending or descending",
                ))
            }
        };
        let iterator = self
            .get("iterator")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if let Some(it) = &iterator {
            if it.len() > 512 {
                return Err(invalid(&["query", "iterator"], "iterator is too long"));
            }
        }
        Ok(herald_store::ListQuery {
            limit,
            iterator,
            descending,
        })
    }
}

#[cfg(test)]
mod parser_properties {
    use super::parse_json;
    use crate::dto::{EndpointIn, MessageIn};
    use crate::error::ApiError;

    /// Every truncation and every one-byte change of valid bodies parses or fails with
    /// 400/422, and never panics.
    #[test]
    fn damaged_bodies_fail_cleanly() {
        let bodies: [&[u8]; 2] = [
            br#"{"eventType":"user.created","eventId":"e-1","payload":{"a":[1,2,{"b":"\u00e9"}]},"channels":["x"],"payloadRetentionPeriod":5}"#,
            br#"{"url":"https://example.com/h","filterTypes":["a"],"channels":["b"],"metadata":{"k":"v"},"headers":{"x-a":"1"},"rateLimit":5}"#,
        ];
        let replacements = [
            b'"', b'{', b'}', b'[', b']', b':', b',', b'\\', 0u8, 0xff, b'1', b' ',
        ];
        for body in bodies {
            let mut variants: Vec<Vec<u8>> = (0..=body.len()).map(|n| body[..n].to_vec()).collect();
            for i in 0..body.len() {
                for r in replacements {
                    let mut v = body.to_vec();
                    v[i] = r;
                    variants.push(v);
                }
            }
            for v in variants {
                for outcome in [
                    parse_json::<MessageIn>(&v).map(|_| ()),
                    parse_json::<EndpointIn>(&v).map(|_| ()),
                ] {
                    match outcome {
                        Ok(())
                        | Err(ApiError::BadRequest { .. })
                        | Err(ApiError::Validation(_)) => {}
                        Err(other) => {
                            panic!("{:?}: unexpected {other:?}", String::from_utf8_lossy(&v))
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not() {
        assert!(has_nul_escape(br#"{"a":"x\u0000"}"#));
        assert!(has_nul_escape(br#"{"a\u0000":1}"#));
        assert!(!has_nul_escape(br#"{"a":"x\\u0000"}"#));
        assert!(has_nul_escape(br#"{"a":"x\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"a":"\u0001\\"}"#));
        assert!(!has_nul_escape(b"\\"));
        assert!(has_encoded_nul("/app/a%00b"));
        assert!(!has_encoded_nul("/app/a%200"));
    }
}
