//! Field rules shared by the API and the CLI. Each check returns a sentence that says
//! what is wrong; the API puts it in a 422 with the field's location.

use std::collections::BTreeMap;

pub const MAX_UID_LEN: usize = 256;
pub const MAX_URL_LEN: usize = 65_536;
pub const MAX_NAME_LEN: usize = 256;
pub const MAX_DESCRIPTION_LEN: usize = 4_096;
pub const MAX_METADATA_ENTRIES: usize = 64;
pub const MAX_METADATA_VALUE_LEN: usize = 1_024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_VALUE_LEN: usize = 4_096;
pub const MAX_EVENT_TYPES_PER_ENDPOINT: usize = 1_000;

/// Deepest nesting of objects and arrays accepted in a message payload.
pub const MAX_JSON_DEPTH: usize = 64;

/// How deeply the objects and arrays of a JSON text nest (0 for a scalar). The text
/// must already be valid JSON; brackets inside strings do not count.
pub fn json_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// `^[a-zA-Z0-9\-_.]+$`, 1..=256 characters: uids and event-type names.
pub fn identifier(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_UID_LEN {
        return Err(format!("{what} must be 1 to {MAX_UID_LEN} characters long"));
    }
    if !value.chars().all(is_id_char) {
        return Err(format!(
            "{what} may only contain letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// A uid may not look like one of Herald's own ids, or `app_x` would be ambiguous.
pub fn uid(value: &str, id_prefix: &str) -> Result<(), String> {
    identifier(value, "uid")?;
    if value.starts_with(id_prefix) {
        return Err(format!(
            "uid may not start with '{id_prefix}', which is reserved for ids"
        ));
    }
    Ok(())
}

pub fn channel(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 128 || !value.chars().all(|c| is_id_char(c) || c == ':') {
        return Err("a channel is 1 to 128 letters, digits, '-', '_', '.' or ':'".into());
    }
    Ok(())
}

/// An endpoint URL: absolute http(s) with a host, no credentials, bounded length.
pub fn endpoint_url(value: &str) -> Result<url::Url, String> {
    if value.len() > MAX_URL_LEN {
        return Err(format!("url is longer than {MAX_URL_LEN} characters"));
    }
    let parsed = url::Url::parse(value).map_err(|e| format!("url is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "url scheme must be http or https, not '{}'",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url must name a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url may not carry credentials; use a custom header instead".into());
    }
    Ok(parsed)
}

pub fn metadata(map: &BTreeMap<String, String>) -> Result<(), String> {
    if map.len() > MAX_METADATA_ENTRIES {
        return Err(format!(
            "metadata holds at most {MAX_METADATA_ENTRIES} entries"
        ));
    }
    for (k, v) in map {
        if k.is_empty() || k.len() > 256 || v.len() > MAX_METADATA_VALUE_LEN {
            return Err(format!(
                "metadata keys are 1 to 256 characters and values at most {MAX_METADATA_VALUE_LEN}"
            ));
        }
    }
    Ok(())
}

/// Header names a custom header may not use (besides the `webhook-` and `svix-`
/// prefixes): they belong to HTTP itself or to Herald.
pub const RESERVED_HEADERS: &[&str] = &[
    "user-agent",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "host",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
];

/// Headers a custom header may not set: they belong to HTTP itself or to the signature.
pub fn custom_header_name(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 256
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(format!("'{name}' is not a valid header name"));
    }
    if RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("webhook-")
        || lower.starts_with("svix-")
    {
        return Err(format!(
            "header '{name}' is set by Herald and may not be overridden"
        ));
    }
    Ok(())
}

/// A header value Herald can send as is: visible ASCII, spaces and tabs only (HTTP
/// clients refuse anything else, which would fail every delivery later).
pub fn custom_header_value(name: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!(
            "the value of header '{name}' is longer than {MAX_HEADER_VALUE_LEN} bytes"
        ));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
    {
        return Err(format!(
            "the value of header '{name}' may only hold visible ASCII characters, spaces and tabs"
        ));
    }
    Ok(())
}

/// Headers whose values the API withholds when listing (they carry credentials).
pub fn is_sensitive_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "authorization"
        || lower.contains("token")
        || lower.contains("secret")
        || lower.contains("api-key")
        || lower.contains("apikey")
        || lower == "cookie"
}

#[cfg(test)]
mod tests {

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth("1"), 0);
        assert_eq!(json_depth("{}"), 1);
        assert_eq!(json_depth(r#"{"a":[{"b":[]}]}"#), 4);
        assert_eq!(json_depth(r#"{"a":"[[[{{{"}"#), 1, "brackets in strings");
        assert_eq!(json_depth(r#"{"a":"\"[[[\\"}"#), 1, "escaped quotes");
        let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(json_depth(&deep), 500);
        // Against serde_json's own view, on random documents.
        for seed in 0..200u32 {
            let doc = random_doc(seed, 0);
            let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
            assert_eq!(json_depth(&doc), depth_of(&parsed), "{doc}");
        }
    }

    fn random_doc(seed: u32, level: u32) -> String {
        let pick = seed.wrapping_mul(2654435761).rotate_left(level) % 5;
        match (pick, level > 6) {
            (_, true) | (0, _) => r#""s[{\"}""#.to_string(),
            (1, _) => format!(
                "[{},{}]",
                random_doc(seed ^ 7, level + 1),
                random_doc(seed ^ 13, level + 2)
            ),
            (2, _) => format!(r#"{{"k":{}}}"#, random_doc(seed ^ 3, level + 1)),
            (3, _) => "[]".to_string(),
            _ => "12.5".to_string(),
        }
    }

    fn depth_of(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
            serde_json::Value::Object(o) => 1 + o.values().map(depth_of).max().unwrap_or(0),
            _ => 0,
        }
    }

    use super::*;

    #[test]
    fn identifiers_and_uids() {
        assert!(identifier("order.created", "name").is_ok());
        assert!(identifier("a b", "name").is_err());
        assert!(identifier("", "name").is_err());
        assert!(identifier(&"x".repeat(257), "name").is_err());
        assert!(uid("app_123", "app_").is_err());
        assert!(uid("customer-1", "app_").is_ok());
    }

    #[test]
    fn urls() {
        assert!(endpoint_url("https://example.com/hook").is_ok());
        assert!(endpoint_url("ftp://example.com").is_err());
        assert!(endpoint_url("not a url").is_err());
        assert!(endpoint_url("https://user:pw@example.com").is_err());
    }

    #[test]
    fn headers() {
        assert!(custom_header_name("X-Api-Version").is_ok());
        assert!(custom_header_name("Content-Type").is_err());
        assert!(custom_header_name("webhook-signature").is_err());
        assert!(custom_header_name("svix-id").is_err());
        assert!(custom_header_name("bad header").is_err());
        assert!(custom_header_value("x", "a\r\nb").is_err());
        assert!(custom_header_value("x", "caf\u{e9}").is_err());
        assert!(custom_header_value("x", "Bearer abc.def\tg").is_ok());
        assert!(is_sensitive_header("Authorization"));
        assert!(!is_sensitive_header("X-Version"));
    }
}
