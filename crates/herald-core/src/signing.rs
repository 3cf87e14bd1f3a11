//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256>` or `v1a,<base64 ed25519>` over
//! `"{msg_id}.{timestamp}.{body}"`, space-separated, one per key that is still valid.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::{Secret, VerifyingSecret};

type HmacSha256 = Hmac<Sha256>;

/// One `version,signature` entry for one key.
pub fn sign_one(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    match secret {
        Secret::Hmac(key) => {
            let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
            for part in [msg_id.as_bytes(), b".", ts.as_bytes(), b".", body] {
                mac.update(part);
            }
            format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
        }
        Secret::Ed25519(key) => {
            let mut content = Vec::with_capacity(msg_id.len() + ts.len() + body.len() + 2);
            content.extend_from_slice(msg_id.as_bytes());
            content.push(b'.');
            content.extend_from_slice(ts.as_bytes());
            content.push(b'.');
            content.extend_from_slice(body);
            format!("v1a,{}", B64.encode(key.sign(&content).to_bytes()))
        }
    }
}

/// The whole `webhook-signature` header value: one entry per key, space-separated.
pub fn sign_all<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut out = String::new();
    for secret in secrets {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&sign_one(secret, msg_id, timestamp, body));
    }
    out
}

/// True when any entry of `header` is a valid signature by `secret` (constant-time for
/// HMAC). Timestamp tolerance is the caller's business.
pub fn verify(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    verify_with(
        &VerifyingSecret::from(secret),
        msg_id,
        timestamp,
        body,
        header,
    )
}

/// `verify` for a receiver, which may hold only the ed25519 public key (`whpk_`).
pub fn verify_with(
    key: &VerifyingSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let content = || {
        let mut c = format!("{msg_id}.{timestamp}.").into_bytes();
        c.extend_from_slice(body);
        c
    };
    header.split(' ').any(|entry| {
        let Some((version, sig)) = entry.split_once(',') else {
            return false;
        };
        let Ok(sig) = B64.decode(sig) else {
            return false;
        };
        match (key, version) {
            (VerifyingSecret::Hmac(key), "v1") => {
                let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
                mac.update(&content());
                mac.verify_slice(&sig).is_ok()
            }
            (VerifyingSecret::Ed25519(public), "v1a") => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig) else {
                    return false;
                };
                public.verify(&content(), &sig).is_ok()
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod properties {
    use super::*;

    #[test]
    fn signatures_verify_and_any_change_breaks_them() {
        for i in 0..500 {
            let secret = if i % 5 == 0 {
                Secret::parse(&format!("whsk_{}", B64.encode(rand::random::<[u8; 32]>()))).unwrap()
            } else {
                Secret::generate_hmac()
            };
            let body: Vec<u8> = (0..rand::random_range(0..300usize))
                .map(|_| rand::random::<u8>())
                .collect();
            let id = crate::ids::generate(crate::ids::MESSAGE);
            let ts = rand::random_range(0..4_000_000_000i64);
            let sig = sign_one(&secret, &id, ts, &body);
            assert!(verify(&secret, &id, ts, &body, &sig));
            let mut tampered = body.clone();
            tampered.push(b'x');
            assert!(!verify(&secret, &id, ts, &tampered, &sig));
            assert!(!verify(&secret, &id, ts + 1, &body, &sig));
            assert!(!verify(&Secret::generate_hmac(), &id, ts, &body, &sig));
        }
    }
}
