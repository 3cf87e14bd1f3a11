//! The checks of OpenID Connect single sign-on that need no network: PKCE pairs, and
//! an ID token's signature (RS256 or ES256, against the provider's JWKS) and claims
//! (issuer, audience, expiry, nonce).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A PKCE verifier (43 characters) and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let verifier = B64URL.encode(bytes);
    let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A random value for `state` and `nonce`.
pub fn random_value() -> String {
    let bytes: [u8; 24] = rand::random();
    B64URL.encode(bytes)
}

/// The claims of an ID token, once its signature and claims are checked:
/// signed by a key of `jwks` (RS256 or ES256), issued by `issuer` for `client_id`, not
/// expired at `now_secs` (a minute of clock difference allowed), carrying `nonce`.
pub fn verify_id_token(
    token: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now_secs: i64,
) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the ID token is not a JWS in compact form".into());
    };
    let decode = |part: &str, what: &str| {
        B64URL
            .decode(part)
            .map_err(|_| format!("the ID token's {what} is not base64url"))
    };
    let header: Value = serde_json::from_slice(&decode(h, "header")?)
        .map_err(|_| "the ID token's header is not JSON".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(p, "payload")?)
        .map_err(|_| "the ID token's payload is not JSON".to_string())?;
    let sig = decode(s, "signature")?;
    let alg = header["alg"].as_str().unwrap_or_default();
    let kid = header["kid"].as_str();
    let keys = jwks["keys"]
        .as_array()
        .ok_or("the provider's JWKS has no keys")?;
    let key = keys
        .iter()
        .find(|k| {
            kid.is_none_or(|kid| k["kid"].as_str() == Some(kid)) && k["use"].as_str() != Some("enc")
        })
        .ok_or("no key of the provider's JWKS matches the ID token's kid")?;
    let signed = format!("{h}.{p}");
    let b = |field: &str| {
        key[field]
            .as_str()
            .and_then(|v| B64URL.decode(v).ok())
            .ok_or_else(|| format!("the provider's key has no valid {field}"))
    };
    let ok = match (alg, key["kty"].as_str()) {
        ("RS256", Some("RSA")) => signature::RsaPublicKeyComponents {
            n: b("n")?,
            e: b("e")?,
        }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &sig,
        )
        .is_ok(),
        ("ES256", Some("EC")) => {
            let mut point = vec![4u8];
            point.extend(b("x")?);
            point.extend(b("y")?);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &sig)
                .is_ok()
        }
        (other, _) => {
            return Err(format!(
                "the ID token's algorithm {other:?} is not accepted (RS256, ES256)"
            ))
        }
    };
    if !ok {
        return Err("the ID token's signature does not verify".into());
    }
    if claims["iss"].as_str() != Some(issuer) {
        return Err("the ID token was issued by another provider".into());
    }
    let audience_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err("the ID token is for another client".into());
    }
    if claims["exp"].as_i64().is_none_or(|exp| exp + 60 < now_secs) {
        return Err("the ID token has expired".into());
    }
    if claims["nonce"].as_str() != Some(nonce) {
        return Err("the ID token's nonce is not this sign-in's".into());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// An ES256 key, its JWKS, and a token signer (ring makes P-256 keys; RSA keys it
    /// only loads, so RSA is checked by the sign-in test against a real provider).
    fn es256() -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
            "x": B64URL.encode(&public[1..33]), "y": B64URL.encode(&public[33..65])
        }]});
        (pair, jwks)
    }

    fn sign(pair: &EcdsaKeyPair, claims: &Value) -> String {
        let h = B64URL.encode(br#"{"alg":"ES256","kid":"k1"}"#);
        let p = B64URL.encode(claims.to_string());
        let sig = pair
            .sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes())
            .unwrap();
        format!("{h}.{p}.{}", B64URL.encode(sig.as_ref()))
    }

    #[test]
    fn an_id_token_is_checked_for_signature_and_claims() {
        let (pair, jwks) = es256();
        let good = serde_json::json!({"iss": "https://idp", "aud": "herald", "exp": 2_000, "nonce": "n1", "email": "ana@example.com"});
        let token = sign(&pair, &good);
        let claims = verify_id_token(&token, &jwks, "https://idp", "herald", "n1", 1_000).unwrap();
        assert_eq!(claims["email"], "ana@example.com");
        let cases = [
            ("https://other", "herald", "n1", 1_000, "another provider"),
            ("https://idp", "someone-else", "n1", 1_000, "another client"),
            ("https://idp", "herald", "n2", 1_000, "nonce"),
            ("https://idp", "herald", "n1", 3_000, "expired"),
        ];
        for (iss, aud, nonce, now, why) in cases {
            let err = verify_id_token(&token, &jwks, iss, aud, nonce, now).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
        // A token signed by another key, or changed after signing, is refused.
        let (other, _) = es256();
        let forged = sign(&other, &good);
        assert!(
            verify_id_token(&forged, &jwks, "https://idp", "herald", "n1", 1_000)
                .unwrap_err()
                .contains("signature")
        );
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = B64URL.encode(serde_json::json!({"iss": "https://idp", "aud": "herald", "exp": 2_000, "nonce": "n1", "email": "eve@example.com"}).to_string());
        assert!(verify_id_token(
            &parts.join("."),
            &jwks,
            "https://idp",
            "herald",
            "n1",
            1_000
        )
        .is_err());
    }

    #[test]
    fn a_pkce_challenge_is_the_verifiers_s256() {
        let (verifier, challenge) = pkce_pair();
        assert_eq!(verifier.len(), 43);
        assert_eq!(
            challenge,
            B64URL.encode(Sha256::digest(verifier.as_bytes()))
        );
    }
}
