//! What the request schemas cannot say by their Rust types alone: the limits the
//! handlers check (lengths, patterns, ranges, formats), as JSON Schema keywords merged
//! into the generated document, so that a request the document calls valid is not
//! refused for a rule it does not state. Each entry mirrors a check in `routes/` or
//! `herald_core::validate`; the schemathesis run in CI (`scripts/contract.sh`) is what
//! holds the two together.
//!
//! Rules no schema can state (an event type must be in the catalog, an endpoint's
//! address must not be private, a source's secret depends on its scheme, a time window
//! must be in order) are listed with their operations in `tests/contract/schemathesis.toml`.

use crate::routes::transformations::{
    MAX_CODE_CHARS, MAX_VARIABLES, MAX_VARIABLE_NAME, MAX_VARIABLE_VALUE,
};
use serde_json::{json, Value};

/// `^[a-zA-Z0-9\-_.]+$`, 1 to 256 characters: uids, event-type names, event ids.
fn identifier() -> Value {
    json!({"minLength": 1, "maxLength": 256, "pattern": "^[a-zA-Z0-9\\-_.]+$"})
}

/// A name: 1 to 256 characters, not only spaces.
fn name() -> Value {
    json!({"minLength": 1, "maxLength": 256, "pattern": "\\S"})
}

/// Metadata: at most 64 entries, keys 1 to 256 characters, values at most 1024.
fn metadata() -> Value {
    json!({
        "maxProperties": 64,
        "propertyNames": {"minLength": 1, "maxLength": 256},
        "additionalProperties": {"type": "string", "maxLength": 1024}
    })
}

/// A channel: 1 to 128 letters, digits, '-', '_', '.' or ':'.
fn channels(max: usize) -> Value {
    json!({
        "minItems": 1,
        "maxItems": max,
        "items": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[a-zA-Z0-9\\-_.:]+$"}
    })
}

fn event_types() -> Value {
    json!({"minItems": 1, "maxItems": 1000, "items": merge(json!({"type": "string"}), identifier())})
}

/// An endpoint URL: absolute http(s).
fn url() -> Value {
    json!({"format": "uri", "pattern": "^https?://[^/@\\s]+", "maxLength": 65536})
}

/// A rate: deliveries per second, at least 1.
fn rate() -> Value {
    json!({"minimum": 1, "maximum": 4_294_967_295u64, "format": "int64"})
}

/// A `whsec_` secret of 24 to 63 bytes (base64, unpadded groups).
fn hmac_secret() -> Value {
    json!({"pattern": "^whsec_(?:[A-Za-z0-9+/]{4}){8,21}$"})
}

/// Custom headers: names are HTTP tokens that Herald does not set itself, values
/// visible ASCII, at most 64.
fn headers() -> Value {
    json!({
        "maxProperties": 64,
        "propertyNames": {
            "minLength": 1,
            "maxLength": 256,
            "pattern": "^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$",
            "not": {"pattern": reserved_header_pattern()}
        },
        "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": "^[\\t\\x20-\\x7e]*$"}
    })
}

/// The header names Herald sets (`validate::RESERVED_HEADERS`, and the `webhook-` and
/// `svix-` prefixes), as a case-insensitive pattern without flags.
fn reserved_header_pattern() -> String {
    let any_case = |word: &str| -> String {
        word.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                } else if c == '-' {
                    "\\-".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let names: Vec<String> = herald_core::validate::RESERVED_HEADERS
        .iter()
        .map(|n| any_case(n))
        .collect();
    format!(
        "^(?:(?:{})$|{}|{})",
        names.join("|"),
        any_case("webhook-"),
        any_case("svix-")
    )
}

fn date_time() -> Value {
    json!({"format": "date-time"})
}

/// (schema, property, keywords to merge into the property's schema).
fn constraints() -> Vec<(&'static str, &'static str, Value)> {
    let mut c = Vec::new();
    for schema in ["ApplicationIn", "ApplicationPatch"] {
        c.push((schema, "name", name()));
        c.push((schema, "uid", identifier()));
        c.push((schema, "throttleRate", rate()));
        c.push((schema, "rateLimit", rate()));
        c.push((schema, "metadata", metadata()));
    }
    for schema in ["EndpointIn", "EndpointPatch"] {
        c.push((schema, "url", url()));
        c.push((schema, "uid", identifier()));
        c.push((schema, "description", json!({"maxLength": 4096})));
        c.push((schema, "eventTypes", event_types()));
        c.push((schema, "filterTypes", event_types()));
        c.push((schema, "channels", channels(10)));
        c.push((schema, "throttleRate", rate()));
        c.push((schema, "rateLimit", rate()));
        c.push((schema, "metadata", metadata()));
        c.push((schema, "secret", hmac_secret()));
    }
    for schema in ["TransformationPatch", "TransformationTryIn"] {
        c.push((schema, "code", json!({"maxLength": MAX_CODE_CHARS})));
        c.push((
            schema,
            "variables",
            json!({
                "maxProperties": MAX_VARIABLES,
                "propertyNames": {"minLength": 1, "maxLength": MAX_VARIABLE_NAME},
                "additionalProperties": {"type": "string", "maxLength": MAX_VARIABLE_VALUE}
            }),
        ));
    }
    for schema in ["PersonIn", "PersonPatch"] {
        c.push((
            schema,
            "password",
            json!({"minLength": 12, "maxLength": 256}),
        ));
        c.push((
            schema,
            "role",
            json!({"enum": ["admin", "developer", "support", "viewer", null]}),
        ));
    }
    c.push((
        "PersonIn",
        "email",
        json!({"minLength": 3, "maxLength": 254, "pattern": "^[^\\s@]+@[^\\s@]+$"}),
    ));
    c.push(("TokenIn", "name", name()));
    c.push((
        "TokenIn",
        "role",
        json!({"enum": ["admin", "developer", "support", "viewer", null]}),
    ));
    c.push(("TokenIn", "expiresAt", date_time()));
    c.push(("EndpointIn", "headers", headers()));
    c.push(("HeadersIn", "headers", headers()));
    // In a patch, null removes a header.
    c.push((
        "HeadersPatchIn",
        "headers",
        merge(
            headers(),
            json!({"additionalProperties": {"type": ["string", "null"], "maxLength": 4096, "pattern": "^[\\t\\x20-\\x7e]*$"}}),
        ),
    ));
    c.push((
        "HeadersPatchIn",
        "deleteHeaders",
        json!({"items": {"type": "string"}}),
    ));
    c.push(("RotateIn", "key", hmac_secret()));
    c.push((
        "RotateIn",
        "gracePeriodSeconds",
        json!({"minimum": 0, "maximum": 604_800}),
    ));
    for schema in ["EventTypeIn", "EventTypeUpdate", "EventTypePatch"] {
        c.push((schema, "description", json!({"maxLength": 4096})));
        c.push((schema, "groupName", identifier()));
        c.push((schema, "featureFlag", identifier()));
        c.push((
            schema,
            "featureFlags",
            json!({"items": merge(json!({"type": "string"}), identifier())}),
        ));
        c.push((
            schema,
            "schemas",
            json!({"additionalProperties": {"type": "object"}}),
        ));
    }
    c.push(("EventTypeIn", "name", identifier()));
    c.push(("MessageIn", "eventType", identifier()));
    c.push(("MessageIn", "eventId", identifier()));
    c.push(("MessageIn", "orderingKey", identifier()));
    c.push(("MessageIn", "channels", channels(5)));
    c.push(("MessageIn", "deliverAt", date_time()));
    c.push((
        "MessageIn",
        "payloadRetentionHours",
        json!({"minimum": 1, "maximum": 2160}),
    ));
    c.push((
        "MessageIn",
        "payloadRetentionPeriod",
        json!({"minimum": 1, "maximum": 90}),
    ));
    c.push((
        "MessageIn",
        "transformationsParams",
        json!({"type": "null"}),
    ));
    c.push(("SendExampleIn", "eventType", identifier()));
    c.push(("SendExampleIn", "exampleIndex", json!({"minimum": 0})));
    c.push(("RecoverIn", "since", date_time()));
    c.push(("RecoverIn", "until", date_time()));
    c.push((
        "AppPortalAccessIn",
        "expiry",
        json!({"minimum": 1, "maximum": 604_800}),
    ));
    c.push(("AppPortalAccessIn", "capabilities", json!({"maxItems": 0})));
    c.push((
        "AppPortalAccessIn",
        "readOnly",
        json!({"enum": [false, null]}),
    ));
    c.push((
        "ListenReplyIn",
        "status",
        json!({"minimum": 0, "maximum": 65535}),
    ));
    for schema in ["DestinationIn", "DestinationPatch"] {
        c.push((
            schema,
            "uid",
            merge(identifier(), json!({"not": {"pattern": "^dest_"}})),
        ));
        c.push((
            schema,
            "status",
            json!({"enum": ["enabled", "disabled", null]}),
        ));
        c.push((schema, "batchSize", json!({"minimum": 1, "maximum": 1000})));
        c.push((
            schema,
            "maxWaitSecs",
            json!({"minimum": 0, "maximum": 3600}),
        ));
        c.push((
            schema,
            "eventTypes",
            json!({"maxItems": 1000, "items": merge(json!({"type": "string"}), identifier())}),
        ));
        c.push((
            schema,
            "channels",
            json!({"maxItems": 10, "items": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[a-zA-Z0-9\\-_.:]+$"}}),
        ));
        c.push((schema, "metadata", metadata()));
        c.push((
            schema,
            "type",
            json!({"enum": ["pollingEndpoint", "fifoEndpoint"]}),
        ));
    }
    c.push(("SeekIn", "after", date_time()));
    c.push((
        "SeekIn",
        "iterator",
        json!({"pattern": crate::destination::ITERATOR_PATTERN}),
    ));
    c.push(("ConsumerSeekIn", "after", date_time()));
    c.push(("SourceIn", "name", name()));
    c.push((
        "SourceIn",
        "scheme",
        json!({"enum": herald_core::inbound::SCHEMES}),
    ));
    c.push((
        "SourceIn",
        "secret",
        json!({"minLength": 1, "maxLength": 1024, "pattern": "^\\S(?:[\\s\\S]*\\S)?$"}),
    ));
    c.push(("SourceIn", "toleranceSecs", json!({"minimum": 1})));
    c.push((
        "SourceIn",
        "publicUrl",
        json!({"format": "uri", "maxLength": 65536}),
    ));
    c
}

/// Merges `extra`'s keywords into `base` (an object), replacing those it names.
fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
    base
}

/// Adds the handlers' limits to the request schemas of `doc` (the OpenAPI document as
/// JSON). A property whose type allows `null` keeps allowing it: the keywords apply to
/// the value when there is one.
pub fn constrain(doc: &mut Value) {
    for (schema, property, keywords) in constraints() {
        let target = &mut doc["components"]["schemas"][schema]["properties"][property];
        assert!(
            target.is_object(),
            "contract.rs names {schema}.{property}, which the document does not have"
        );
        let merged = merge(target.take(), keywords);
        *target = merged;
    }
}

#[cfg(test)]
mod tests {
    /// Every entry names a property the document has (`constrain` panics otherwise),
    /// and the result is still a valid document for the SDK tests' validator to read.
    #[test]
    fn every_constraint_lands_on_a_property() {
        let doc: serde_json::Value = serde_json::from_str(&crate::router::openapi_json()).unwrap();
        let name = &doc["components"]["schemas"]["ApplicationIn"]["properties"]["name"];
        assert_eq!(name["minLength"], 1);
        let url = &doc["components"]["schemas"]["EndpointIn"]["properties"]["url"];
        assert_eq!(url["format"], "uri");
    }
}
