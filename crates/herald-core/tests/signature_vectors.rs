//! Known-answer tests: every Standard Webhooks case of shared/testdata/signature-vectors.json
//! is reproduced by our signer, verifies, and every must-reject signature fails.

use herald_core::secret::Secret;
use herald_core::signing::{sign_one, verify};
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
