//! Known-answer tests: every Standard Webhooks case of shared/testdata/signature-vectors.json
//! is reproduced by our signer, verifies, and every must-reject signature fails.

use herald_core::secret::{Secret, VerifyingSecret};
use herald_core::signing::{sign_one, verify, verify_with};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/signature-vectors.json"
    );
    let text = std::fs::read_to_string(path)
        .expect("shared/testdata/signature-vectors.json beside the repo");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    doc["cases"].as_array().expect("cases").clone()
}

#[test]
fn standard_webhooks_vectors_sign_and_verify() {
    let cases: Vec<Value> = vectors()
        .into_iter()
        .filter(|c| c["scheme"] == "standard-webhooks")
        .collect();
    assert!(
        cases.len() >= 3,
        "expected the standard-webhooks cases, found {}",
        cases.len()
    );
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let secret = Secret::parse(case["secret"].as_str().unwrap()).unwrap();
        let headers = &case["headers"];
        let id = headers["webhook-id"].as_str().unwrap();
        let ts: i64 = headers["webhook-timestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected = headers["webhook-signature"].as_str().unwrap();
        let body = case["body"].as_str().unwrap().as_bytes();
        assert_eq!(
            sign_one(&secret, id, ts, body),
            expected,
            "{name}: our signature differs"
        );
        assert!(
            verify(&secret, id, ts, body, expected),
            "{name}: does not verify"
        );
        if let Some(pk) = case["public_key"].as_str() {
            assert_eq!(secret.verification_key(), pk, "{name}: public key");
            // A receiver holding only the public key verifies, and refuses what the
            // secret refuses.
            let public = VerifyingSecret::parse(pk).unwrap();
            assert!(
                verify_with(&public, id, ts, body, expected),
                "{name}: does not verify with the public key"
            );
            for bad in case["must_reject_signatures"].as_array().unwrap() {
                assert!(
                    !verify_with(&public, id, ts, body, bad.as_str().unwrap()),
                    "{name}: the public key accepted {bad}"
                );
            }
        }
        for bad in case["must_reject_signatures"].as_array().unwrap() {
            assert!(
                !verify(&secret, id, ts, body, bad.as_str().unwrap()),
                "{name}: accepted {bad}"
            );
        }
        assert!(
            !verify(&secret, id, ts + 1, body, expected),
            "{name}: timestamp not covered"
        );
    }
}

/// Every provider case of the shared vectors verifies with `inbound::verify`, and every
/// must-reject signature, put in place of the valid one, fails. (Standard Webhooks has
/// its own test above.)
#[test]
fn provider_vectors_verify_and_forgeries_fail() {
    use herald_core::inbound::{verify, CapturedRequest, GenericHmac};
    const ELSEWHERE: &[&str] = &["standard-webhooks"];
    let mut checked = std::collections::BTreeSet::new();
    for case in vectors() {
        let scheme = case["scheme"].as_str().unwrap();
        if ELSEWHERE.contains(&scheme) {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let secret = case["secret"].as_str().unwrap();
        let headers: Vec<(String, String)> = case["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let request = CapturedRequest {
            headers: headers.clone(),
            body: case["body"].as_str().unwrap().as_bytes().to_vec(),
            url: case["url"].as_str().map(str::to_string),
        };
        // The vectors' timestamps are in the past: no tolerance check here.
        let tolerance = i64::MAX / 4;
        let g = GenericHmac::default();
        assert_eq!(
            verify(scheme, secret, &request, 0, tolerance, &g),
            Ok(()),
            "{name}"
        );
        // The signature header is the one the forgeries replace.
        let sig_header = headers
            .iter()
            .map(|(k, _)| k.clone())
            .find(|k| {
                k.to_ascii_lowercase().contains("signature")
                    || k.eq_ignore_ascii_case("X-Hub-Signature-256")
            })
            .unwrap_or_default();
        for bad in case["must_reject_signatures"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut forged = request.clone();
            for (k, v) in forged.headers.iter_mut() {
                if *k == sig_header {
                    *v = bad.as_str().unwrap().to_string();
                }
            }
            assert!(
                verify(scheme, secret, &forged, 0, tolerance, &g).is_err(),
                "{name}: {bad}"
            );
        }
        checked.insert(scheme.to_string());
    }
    let expected: std::collections::BTreeSet<String> = [
        "github", "slack", "square", "twilio", "stripe", "shopify", "paddle", "zoom", "linear",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert!(expected.is_subset(&checked), "checked only {checked:?}");
}
