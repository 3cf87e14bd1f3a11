//! Secrets at rest. Endpoint signing keys are sealed with XChaCha20-Poly1305 under a
//! main key before they reach the store, and opened only where they are used (signing
//! a delivery, showing the key to its owner). A sealed value names the key that sealed
//! it, so a node can hold the current main key and previous ones while a rotation
//! re-seals everything.
//!
//! Format: `sealed1:<key id>:<base64url(24-byte nonce ‖ ciphertext ‖ tag)>`, where the
//! key id is the first 8 hex digits of SHA-256 of the key.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "sealed1:";
/// Binds ciphertexts to their purpose: a sealed value of another kind does not open
/// as a signing key.
const AAD: &[u8] = b"herald endpoint signing key";

/// Whether `value` is a sealed value (as opposed to plain text).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// A 32-byte main key.
#[derive(Clone)]
pub struct MainKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for MainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MainKey({}, <redacted>)", self.id)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a main key is 32 bytes in base64 (as `herald keygen` prints)")]
    BadKey,
    #[error("the sealed value is damaged")]
    Damaged,
    #[error("the value was sealed with main key {0}, which this node does not have (its keys: {1}); every node needs the same main key, and previous keys stay configured until `herald rotate-main-key` has run")]
    UnknownKey(String, String),
}

impl MainKey {
    pub fn generate() -> MainKey {
        MainKey::from_bytes(rand::random::<[u8; 32]>())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> MainKey {
        let digest = Sha256::digest(bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        MainKey { bytes, id }
    }

    /// Parses the base64 form (standard or URL-safe alphabet).
    pub fn parse(text: &str) -> Result<MainKey, SealError> {
        let text = text.trim();
        let raw = B64
            .decode(text)
            .or_else(|_| B64URL.decode(text.trim_end_matches('=')))
            .map_err(|_| SealError::BadKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| SealError::BadKey)?;
        Ok(MainKey::from_bytes(bytes))
    }

    /// The base64 form, for a key file or an environment variable.
    pub fn expose(&self) -> String {
        B64.encode(self.bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Seals with the main key; opens with it or any previous key.
#[derive(Clone, Debug)]
pub struct Sealer {
    main: MainKey,
    previous: Vec<MainKey>,
}

impl Sealer {
    pub fn new(main: MainKey, previous: Vec<MainKey>) -> Sealer {
        Sealer { main, previous }
    }

    /// A sealer with a fresh random key, for tests and tools.
    pub fn ephemeral() -> Sealer {
        Sealer::new(MainKey::generate(), Vec::new())
    }

    pub fn main_key_id(&self) -> &str {
        self.main.id()
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce: [u8; 24] = rand::random();
        let cipher = XChaCha20Poly1305::new((&self.main.bytes).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: AAD,
                },
            )
            .expect("encryption of a short value cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.main.id, B64URL.encode(blob))
    }

    /// Whether `value` is sealed with the current main key (a rotation re-seals the
    /// others).
    pub fn is_current(&self, value: &str) -> bool {
        value
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.main.id)
    }

    /// Opens a sealed value. A value without the `sealed1:` prefix was stored before
    /// Herald sealed secrets, and is returned as it is (`herald rotate-main-key` seals
    /// such values).
    pub fn open(&self, value: &str) -> Result<String, SealError> {
        let Some(rest) = value.strip_prefix(PREFIX) else {
            return Ok(value.to_string());
        };
        let (id, blob) = rest.split_once(':').ok_or(SealError::Damaged)?;
        let key = std::iter::once(&self.main)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| {
                let ours: Vec<&str> = std::iter::once(&self.main)
                    .chain(&self.previous)
                    .map(|k| k.id.as_str())
                    .collect();
                SealError::UnknownKey(id.to_string(), ours.join(", "))
            })?;
        let blob = B64URL.decode(blob).map_err(|_| SealError::Damaged)?;
        if blob.len() < 24 + 16 {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = blob.split_at(24);
        let cipher = XChaCha20Poly1305::new((&key.bytes).into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain).map_err(|_| SealError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_and_hide_the_plaintext() {
        let sealer = Sealer::ephemeral();
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let a = sealer.seal(secret);
        let b = sealer.seal(secret);
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(a.starts_with(&format!("sealed1:{}:", sealer.main_key_id())));
        assert_eq!(sealer.open(&a).unwrap(), secret);
        assert!(sealer.is_current(&a));
        assert_eq!(
            sealer.open(secret).unwrap(),
            secret,
            "legacy plaintext passes"
        );
        assert!(!sealer.is_current(secret));
    }

    #[test]
    fn tampering_and_unknown_keys_are_refused() {
        let sealer = Sealer::ephemeral();
        let sealed = sealer.seal("whsec_abc");
        let mut chars: Vec<char> = sealed.chars().collect();
        let last = chars.len() - 3;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(sealer.open(&tampered), Err(SealError::Damaged));
        let other = Sealer::ephemeral();
        assert!(matches!(
            other.open(&sealed),
            Err(SealError::UnknownKey(..))
        ));
        assert_eq!(sealer.open("sealed1:nokey"), Err(SealError::Damaged));
    }

    #[test]
    fn a_rotation_keeps_old_values_readable_until_resealed() {
        let old = MainKey::generate();
        let before = Sealer::new(old.clone(), vec![]);
        let sealed_before = before.seal("whsec_one");
        let new = MainKey::generate();
        let during = Sealer::new(new, vec![old]);
        assert_eq!(during.open(&sealed_before).unwrap(), "whsec_one");
        assert!(!during.is_current(&sealed_before));
        let resealed = during.seal(&during.open(&sealed_before).unwrap());
        assert!(during.is_current(&resealed));
    }

    #[test]
    fn keys_parse_from_base64_and_never_print() {
        let key = MainKey::generate();
        let again = MainKey::parse(&key.expose()).unwrap();
        assert_eq!(again.id(), key.id());
        assert!(MainKey::parse("c2hvcnQ=").is_err());
        assert!(MainKey::parse("not base64!").is_err());
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()));
    }
}
