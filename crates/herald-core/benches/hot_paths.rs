//! Microbenchmarks of the pure hot paths: `cargo bench -p herald-core`.
//! Each delivery signs its payload; each message is matched against its application's
//! endpoints, gets an id, and has its JSON payload checked and echoed.

use herald_core::fanout::{matches, Subscription};
use herald_core::secret::Secret;
use herald_core::signing::{sign_all, sign_one};

fn main() {
    divan::main();
}

fn payload(bytes: usize) -> Vec<u8> {
    let pad = "x".repeat(bytes.saturating_sub(40));
    format!(r#"{{"type":"order.paid","id":12345,"pad":"{pad}"}}"#).into_bytes()
}

#[divan::bench(args = [256, 4096, 65536])]
fn sign_hmac(bencher: divan::Bencher, bytes: usize) {
    let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let body = payload(bytes);
    bencher.bench(|| {
        sign_one(
            &secret,
            "msg_00Vc8kyAk9pZRdM0BOq9SBpkoDI",
            1_700_000_000,
            divan::black_box(&body),
        )
    });
}

#[divan::bench]
fn sign_ed25519_256b(bencher: divan::Bencher) {
    let secret = Secret::parse("whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let body = payload(256);
    bencher.bench(|| {
        sign_one(
            &secret,
            "msg_00Vc8kyAk9pZRdM0BOq9SBpkoDI",
            1_700_000_000,
            divan::black_box(&body),
        )
    });
}

/// During a key rotation a delivery carries two signatures.
#[divan::bench]
fn sign_two_keys_256b(bencher: divan::Bencher) {
    let keys = [
        Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
        Secret::parse("whsec_aGVyYWxkLWJlbmNoLXNlY29uZC1rZXktMzItYnl0ZXM=").unwrap(),
    ];
    let body = payload(256);
    bencher.bench(|| {
        sign_all(
            &keys,
            "msg_00Vc8kyAk9pZRdM0BOq9SBpkoDI",
            1_700_000_000,
            divan::black_box(&body),
        )
    });
}

/// One message against an application's endpoints, each filtering on a few event types
/// and channels.
#[divan::bench(args = [1, 10, 100])]
fn fan_out(bencher: divan::Bencher, endpoints: usize) {
    let types: Vec<Vec<String>> = (0..endpoints)
        .map(|i| {
            vec![
                format!("order.{}", i % 7),
                "order.paid".to_string(),
                "user.created".into(),
            ]
        })
        .collect();
    let channels: Vec<Vec<String>> = (0..endpoints)
        .map(|i| vec![format!("team-{}", i % 5)])
        .collect();
    let msg_channels = vec!["team-3".to_string()];
    bencher.bench(|| {
        (0..endpoints)
            .filter(|&i| {
                matches(
                    &Subscription {
                        disabled: false,
                        event_types: Some(&types[i]),
                        channels: Some(&channels[i]),
                    },
                    divan::black_box("order.paid"),
                    Some(&msg_channels),
                )
            })
            .count()
    });
}

#[divan::bench]
fn message_id(bencher: divan::Bencher) {
    bencher.bench(|| herald_core::ids::generate(herald_core::ids::MESSAGE));
}

/// What ingest does with a payload: parse the body keeping the payload raw, check its
/// nesting, and write the 202 answer around it.
#[divan::bench(args = [256, 4096, 65536])]
fn payload_round_trip(bencher: divan::Bencher, bytes: usize) {
    #[derive(serde::Deserialize)]
    struct In<'a> {
        #[serde(rename = "eventType")]
        event_type: &'a str,
        #[serde(borrow)]
        payload: &'a serde_json::value::RawValue,
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        id: &'a str,
        #[serde(rename = "eventType")]
        event_type: &'a str,
        payload: &'a serde_json::value::RawValue,
    }
    let body = format!(
        r#"{{"eventType":"order.paid","payload":{}}}"#,
        String::from_utf8(payload(bytes)).unwrap()
    );
    bencher.bench(|| {
        let input: In<'_> = serde_json::from_str(divan::black_box(&body)).unwrap();
        let depth = herald_core::validate::json_depth(input.payload.get());
        let out = Out {
            id: "msg_00Vc8kyAk9pZRdM0BOq9SBpkoDI",
            event_type: input.event_type,
            payload: input.payload,
        };
        (depth, serde_json::to_vec(&out).unwrap())
    });
}

/// One payload filter against one message's document (done per filtered endpoint at
/// fan-out): a typical filter, three conditions with a nested path and a list.
#[divan::bench]
fn payload_filter_typical(bencher: divan::Bencher) {
    let filter = herald_core::filter::Filter::parse(&serde_json::json!({
        "payload": {
            "type": {"$startsWith": "order."},
            "total": {"$gte": 1000},
            "customer": {"country": {"$in": ["FR", "DE", "NL"]}}
        }
    }))
    .unwrap();
    let doc = serde_json::json!({
        "payload": {"type": "order.paid", "total": 4200, "customer": {"id": "cus_1", "country": "DE"}, "lines": [1, 2, 3]},
        "headers": {}
    });
    bencher.bench(|| filter.matches(divan::black_box(&doc)));
}
