//! Verifying webhooks other services send: each provider's signature scheme, as a pure
//! function of the captured request and the secret. Comparisons are constant-time;
//! timestamps are checked against a tolerance. Used by `herald verify` (and by the
//! inbound gateway to come).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A request as it arrived.
#[derive(Clone, Debug, Default)]
pub struct CapturedRequest {
    /// Header names in any case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The full URL the provider called (Twilio and Square sign it).
    pub url: Option<String>,
}

impl CapturedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    fn require(&self, name: &str) -> Result<&str, String> {
        self.header(name)
            .ok_or_else(|| format!("the {name} header is missing"))
    }
}

/// The schemes `herald verify` knows.
pub const SCHEMES: &[&str] = &[
    "standard-webhooks",
    "github",
    "stripe",
    "shopify",
    "slack",
    "square",
    "twilio",
    "paddle",
    "zoom",
    "linear",
    "gitlab",
    "discord",
    "hmac-sha256",
    "hmac",
    "none",
];

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac_with::<Hmac<Sha256>>(key, parts)
}

/// An HMAC of the concatenated `parts`, with any of the hmac crate's MAC types.
fn hmac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        Mac::update(&mut mac, p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two byte strings (length is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A Unix timestamp within `tolerance_secs` of `now_secs`.
fn fresh(ts: &str, now_secs: i64, tolerance_secs: i64) -> Result<i64, String> {
    let t: i64 = ts
        .trim()
        .parse()
        .map_err(|_| format!("the timestamp '{ts}' is not a number of seconds"))?;
    if (now_secs - t).abs() > tolerance_secs {
        return Err(format!(
            "the timestamp is {} s away from now, more than the {tolerance_secs} s tolerance",
            (now_secs - t).abs()
        ));
    }
    Ok(t)
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("the {what} does not match"))
    }
}

/// Checks that `secret` has the form `scheme` needs, so that a source is refused when it
/// is configured rather than every request refused afterwards; `Err` says what is
/// expected. Providers whose secrets are free-form (GitHub, Shopify, …) take any text
/// without spaces at its ends.
pub fn check_secret(scheme: &str, secret: &str) -> Result<(), String> {
    if secret.trim() != secret {
        return Err(
            "the secret starts or ends with a space or line break (pasted by accident?)".into(),
        );
    }
    match scheme {
        "standard-webhooks" => crate::secret::VerifyingSecret::parse(secret)
            .map(|_| ())
            .map_err(|e| format!("a Standard Webhooks secret is whsec_… (HMAC) or whpk_…/whsk_… (ed25519): {e}")),
        "stripe" if !secret.starts_with("whsec_") => Err(
            "a Stripe webhook signing secret starts with whsec_ (the endpoint's signing secret, not an API key)".into(),
        ),
        "discord" => {
            let public: [u8; 32] = unhex(secret)
                .and_then(|b| b.try_into().ok())
                .ok_or("for discord, the secret is the application's public key: 64 hex digits")?;
            ed25519_dalek::VerifyingKey::from_bytes(&public)
                .map(|_| ())
                .map_err(|_| "the discord public key is not a valid ed25519 key".into())
        }
        _ => Ok(()),
    }
}

/// Verifies `req` with `scheme` and `secret`; `Err` says why not, in one line.
/// `options` carries the generic scheme's settings (`header`, `prefix`, `encoding`).
pub fn verify(
    scheme: &str,
    secret: &str,
    req: &CapturedRequest,
    now_secs: i64,
    tolerance_secs: i64,
    options: &GenericHmac,
) -> Result<(), String> {
    let body = req.body.as_slice();
    let key = secret.as_bytes();
    match scheme {
        "standard-webhooks" => {
            let pick = |n: &str| {
                req.header(&format!("webhook-{n}"))
                    .or(req.header(&format!("svix-{n}")))
            };
            let id = pick("id").ok_or("the webhook-id (or svix-id) header is missing")?;
            let ts = pick("timestamp").ok_or("the webhook-timestamp header is missing")?;
            let sig = pick("signature").ok_or("the webhook-signature header is missing")?;
            let t = fresh(ts, now_secs, tolerance_secs)?;
            let parsed =
                crate::secret::VerifyingSecret::parse(secret).map_err(|e| e.to_string())?;
            expect(
                crate::signing::verify_with(&parsed, id, t, body, sig),
                "webhook-signature",
            )
        }
        "github" => {
            let sig = req.require("X-Hub-Signature-256")?;
            let hexsig = sig
                .strip_prefix("sha256=")
                .ok_or("X-Hub-Signature-256 must start with sha256=")?;
            expect(
                same(
                    hex(&hmac_sha256(key, &[body])).as_bytes(),
                    hexsig.as_bytes(),
                ),
                "X-Hub-Signature-256",
            )
        }
        "stripe" => {
            let header = req.require("Stripe-Signature")?;
            let mut t = None;
            let mut v1 = Vec::new();
            for part in header.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = Some(v),
                    Some(("v1", v)) => v1.push(v),
                    _ => {}
                }
            }
            let t = t.ok_or("Stripe-Signature has no t=")?;
            fresh(t, now_secs, tolerance_secs)?;
            let want = hex(&hmac_sha256(key, &[t.as_bytes(), b".", body]));
            expect(
                v1.iter().any(|s| same(want.as_bytes(), s.as_bytes())),
                "Stripe-Signature v1",
            )
        }
        "shopify" => {
            let sig = req.require("X-Shopify-Hmac-Sha256")?;
            expect(
                same(
                    B64.encode(hmac_sha256(key, &[body])).as_bytes(),
                    sig.as_bytes(),
                ),
                "X-Shopify-Hmac-Sha256",
            )
        }
        "slack" | "zoom" => {
            let (sig_h, ts_h) = if scheme == "slack" {
                ("X-Slack-Signature", "X-Slack-Request-Timestamp")
            } else {
                ("x-zm-signature", "x-zm-request-timestamp")
            };
            let sig = req.require(sig_h)?;
            let ts = req.require(ts_h)?;
            fresh(ts, now_secs, tolerance_secs)?;
            let want = format!(
                "v0={}",
                hex(&hmac_sha256(key, &[b"v0:", ts.as_bytes(), b":", body]))
            );
            expect(same(want.as_bytes(), sig.as_bytes()), sig_h)
        }
        "square" => {
            let sig = req.require("x-square-hmacsha256-signature")?;
            let url = req
                .url
                .as_deref()
                .ok_or("square signs the URL: give it with --url")?;
            let want = B64.encode(hmac_sha256(key, &[url.as_bytes(), body]));
            expect(
                same(want.as_bytes(), sig.as_bytes()),
                "x-square-hmacsha256-signature",
            )
        }
        "twilio" => {
            // HMAC-SHA1 of the URL followed by the form parameters sorted by name, each
            // name directly followed by its value.
            let sig = req.require("X-Twilio-Signature")?;
            let url = req
                .url
                .as_deref()
                .ok_or("twilio signs the URL: give it with --url")?;
            let mut params: Vec<(String, String)> =
                url::form_urlencoded::parse(body).into_owned().collect();
            params.sort();
            let mut mac =
                Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(url.as_bytes());
            for (k, v) in &params {
                mac.update(k.as_bytes());
                mac.update(v.as_bytes());
            }
            let want = B64.encode(mac.finalize().into_bytes());
            expect(same(want.as_bytes(), sig.as_bytes()), "X-Twilio-Signature")
        }
        "paddle" => {
            let header = req.require("Paddle-Signature")?;
            let mut ts = None;
            let mut h1 = Vec::new();
            for part in header.split(';') {
                match part.trim().split_once('=') {
                    Some(("ts", v)) => ts = Some(v),
                    Some(("h1", v)) => h1.push(v),
                    _ => {}
                }
            }
            let ts = ts.ok_or("Paddle-Signature has no ts=")?;
            fresh(ts, now_secs, tolerance_secs)?;
            let want = hex(&hmac_sha256(key, &[ts.as_bytes(), b":", body]));
            expect(
                h1.iter().any(|s| same(want.as_bytes(), s.as_bytes())),
                "Paddle-Signature h1",
            )
        }
        "linear" => {
            let sig = req.require("Linear-Signature")?;
            expect(
                same(hex(&hmac_sha256(key, &[body])).as_bytes(), sig.as_bytes()),
                "Linear-Signature",
            )
        }
        "gitlab" => {
            let token = req.require("X-Gitlab-Token")?;
            expect(same(token.as_bytes(), key), "X-Gitlab-Token")
        }
        "discord" => {
            use ed25519_dalek::{Signature, Verifier, VerifyingKey};
            let sig = req.require("X-Signature-Ed25519")?;
            let ts = req.require("X-Signature-Timestamp")?;
            fresh(ts, now_secs, tolerance_secs)?;
            let public: [u8; 32] = unhex(secret).and_then(|b| b.try_into().ok()).ok_or(
                "for discord, the secret is the application's public key in hex (64 digits)",
            )?;
            let key = VerifyingKey::from_bytes(&public)
                .map_err(|_| "the public key is not a valid ed25519 key")?;
            let sig: [u8; 64] = unhex(sig)
                .and_then(|b| b.try_into().ok())
                .ok_or("X-Signature-Ed25519 is not 64 bytes of hex")?;
            let mut message = ts.as_bytes().to_vec();
            message.extend_from_slice(body);
            expect(
                key.verify(&message, &Signature::from_bytes(&sig)).is_ok(),
                "X-Signature-Ed25519",
            )
        }
        "hmac-sha256" | "hmac" => {
            let sig = req.require(&options.header)?;
            let sig = sig.strip_prefix(options.prefix.as_str()).ok_or_else(|| {
                format!("{} must start with '{}'", options.header, options.prefix)
            })?;
            // What is signed: the body, or "{timestamp}.{body}" when the sender puts a
            // timestamp in a header.
            let timestamp = match &options.timestamp_header {
                Some(name) => {
                    let ts = req.require(name)?;
                    fresh(ts, now_secs, tolerance_secs)?;
                    Some(ts)
                }
                None => None,
            };
            let parts: Vec<&[u8]> = match timestamp {
                Some(ts) => vec![ts.as_bytes(), b".", body],
                None => vec![body],
            };
            let mac = match options.algorithm.as_str() {
                "sha256" => hmac_sha256(key, &parts),
                "sha1" => hmac_with::<Hmac<sha1::Sha1>>(key, &parts),
                "sha512" => hmac_with::<Hmac<sha2::Sha512>>(key, &parts),
                other => {
                    return Err(format!(
                        "unknown HMAC algorithm '{other}' (sha1, sha256, sha512)"
                    ))
                }
            };
            let want = if options.encoding == "base64" {
                B64.encode(mac)
            } else {
                hex(&mac)
            };
            expect(same(want.as_bytes(), sig.as_bytes()), &options.header)
        }
        "none" => Ok(()),
        other => Err(format!(
            "unknown scheme '{other}'; known: {}",
            SCHEMES.join(", ")
        )),
    }
}

/// Settings of the generic `hmac` scheme (`hmac-sha256` is the same with its default
/// algorithm): an HMAC with `algorithm` (sha1, sha256, sha512) of the body, or of
/// "{timestamp}.{body}" when `timestamp_header` names a header holding Unix seconds,
/// found in `header` after `prefix`, as `hex` or `base64`.
#[derive(Clone, Debug)]
pub struct GenericHmac {
    pub header: String,
    pub prefix: String,
    pub encoding: String,
    pub algorithm: String,
    pub timestamp_header: Option<String>,
}

impl Default for GenericHmac {
    fn default() -> Self {
        GenericHmac {
            header: "X-Signature".into(),
            prefix: String::new(),
            encoding: "hex".into(),
            algorithm: "sha256".into(),
            timestamp_header: None,
        }
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Zoom's answer to `endpoint.url_validation`: the hex HMAC-SHA256 of the plain token.
pub fn zoom_encrypted_token(secret: &str, plain_token: &str) -> String {
    hex(&hmac_sha256(secret.as_bytes(), &[plain_token.as_bytes()]))
}

/// Constant-time equality of two secrets such as verify tokens.
pub fn same_secret(a: &str, b: &str) -> bool {
    same(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], body: &str) -> CapturedRequest {
        CapturedRequest {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            url: None,
        }
    }

    #[test]
    fn github_matches_its_documented_example() {
        // The example in GitHub's "Validating webhook deliveries" guide.
        let r = req(
            &[(
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            )],
            "Hello, World!",
        );
        let g = GenericHmac::default();
        assert_eq!(
            verify("github", "It's a Secret to Everybody", &r, 0, 300, &g),
            Ok(())
        );
        let err = verify("github", "another secret", &r, 0, 300, &g).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn stale_timestamps_and_missing_headers_are_explained() {
        let g = GenericHmac::default();
        let r = req(&[("Stripe-Signature", "t=1000,v1=00")], "{}");
        let err = verify("stripe", "whsec_x", &r, 5000, 300, &g).unwrap_err();
        assert!(err.contains("tolerance"), "{err}");
        let err = verify("slack", "s", &req(&[], "{}"), 0, 300, &g).unwrap_err();
        assert_eq!(err, "the X-Slack-Signature header is missing");
        assert!(verify("bogus", "s", &req(&[], ""), 0, 300, &g)
            .unwrap_err()
            .contains("unknown scheme"));
    }

    #[test]
    fn discord_verifies_ed25519_over_timestamp_and_body() {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = hex(key.verifying_key().as_bytes());
        let sig = hex(&key.sign(b"1700000000{\"type\":1}").to_bytes());
        let g = GenericHmac::default();
        let r = req(
            &[
                ("X-Signature-Ed25519", &sig),
                ("X-Signature-Timestamp", "1700000000"),
            ],
            "{\"type\":1}",
        );
        assert_eq!(
            verify("discord", &public, &r, 1_700_000_010, 300, &g),
            Ok(())
        );
        let forged = req(
            &[
                ("X-Signature-Ed25519", &sig),
                ("X-Signature-Timestamp", "1700000000"),
            ],
            "{\"type\":2}",
        );
        assert!(verify("discord", &public, &forged, 1_700_000_010, 300, &g).is_err());
    }
}
