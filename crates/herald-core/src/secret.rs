//! Endpoint signing secrets: `whsec_` (HMAC-SHA256, 24..64 random bytes) and `whsk_`
//! (ed25519), and what a receiver verifies with (`VerifyingSecret`: the HMAC secret or
//! the `whpk_` public key). The raw key material never leaves this type except through `expose()`,
//! and `Debug` prints only the kind, so a secret cannot end up in a log by accident.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;

pub const HMAC_PREFIX: &str = "whsec_";
pub const ED25519_PREFIX: &str = "whsk_";
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

#[derive(Clone)]
pub enum Secret {
    Hmac(Vec<u8>),
    Ed25519(Box<SigningKey>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a secret starts with whsec_ (HMAC) or whsk_ (ed25519)")]
    UnknownPrefix,
    #[error("the secret after its prefix is not valid base64")]
    NotBase64,
    #[error("a whsec_ secret holds 24 to 64 bytes, this one holds {0}")]
    HmacLength(usize),
    #[error("a whsk_ secret holds a 32-byte seed or a 64-byte seed and public key, this one holds {0} bytes")]
    Ed25519Length(usize),
    #[error("the public key in this whsk_ secret does not belong to its seed")]
    Ed25519Mismatch,
    #[error("a key to verify with starts with whsec_ (HMAC), whpk_ (ed25519 public key) or whsk_ (ed25519)")]
    UnknownVerifyingPrefix,
    #[error("a whpk_ public key holds 32 bytes, this one holds {0}")]
    PublicKeyLength(usize),
    #[error("the whpk_ key is not a valid ed25519 public key")]
    NotAPublicKey,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Hmac(_) => f.write_str("Secret::Hmac(<redacted>)"),
            Secret::Ed25519(_) => f.write_str("Secret::Ed25519(<redacted>)"),
        }
    }
}

impl Secret {
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        if let Some(rest) = text.strip_prefix(HMAC_PREFIX) {
            let bytes = B64.decode(rest).map_err(|_| SecretError::NotBase64)?;
            if !(24..=64).contains(&bytes.len()) {
                return Err(SecretError::HmacLength(bytes.len()));
            }
            Ok(Secret::Hmac(bytes))
        } else if let Some(rest) = text.strip_prefix(ED25519_PREFIX) {
            let bytes = B64.decode(rest).map_err(|_| SecretError::NotBase64)?;
            // The spec leaves the encoding open: svix-server stores seed‖public key, the
            // published vectors use the bare seed. Both are accepted.
            let seed: [u8; 32] = match bytes.len() {
                32 | 64 => bytes[..32].try_into().expect("length checked"),
                n => return Err(SecretError::Ed25519Length(n)),
            };
            let key = SigningKey::from_bytes(&seed);
            if bytes.len() == 64 && key.verifying_key().as_bytes() != &bytes[32..] {
                return Err(SecretError::Ed25519Mismatch);
            }
            Ok(Secret::Ed25519(Box::new(key)))
        } else {
            Err(SecretError::UnknownPrefix)
        }
    }

    /// A fresh HMAC secret of 24 random bytes (the size Svix generates).
    pub fn generate_hmac() -> Secret {
        Secret::Hmac(rand::random::<[u8; 24]>().to_vec())
    }

    /// The secret as the API shows it to its owner (`whsec_…` / `whsk_…`).
    pub fn expose(&self) -> String {
        match self {
            Secret::Hmac(bytes) => format!("{HMAC_PREFIX}{}", B64.encode(bytes)),
            Secret::Ed25519(key) => format!("{ED25519_PREFIX}{}", B64.encode(key.to_bytes())),
        }
    }

    /// What a receiver needs to verify: the secret itself for HMAC, the `whpk_` public
    /// key for ed25519.
    pub fn verification_key(&self) -> String {
        match self {
            Secret::Hmac(_) => self.expose(),
            Secret::Ed25519(key) => {
                format!(
                    "{PUBLIC_KEY_PREFIX}{}",
                    B64.encode(key.verifying_key().as_bytes())
                )
            }
        }
    }
}

/// What a receiver verifies signatures with: an HMAC secret (`whsec_`) or an ed25519
/// public key, given as `whpk_` (what a consumer is shown) or derived from a `whsk_`.
#[derive(Clone)]
pub enum VerifyingSecret {
    Hmac(Vec<u8>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl std::fmt::Debug for VerifyingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyingSecret::Hmac(_) => f.write_str("VerifyingSecret::Hmac(<redacted>)"),
            VerifyingSecret::Ed25519(_) => f.write_str("VerifyingSecret::Ed25519"),
        }
    }
}

impl VerifyingSecret {
    pub fn parse(text: &str) -> Result<VerifyingSecret, SecretError> {
        if let Some(rest) = text.strip_prefix(PUBLIC_KEY_PREFIX) {
            let bytes = B64.decode(rest).map_err(|_| SecretError::NotBase64)?;
            let public: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretError::PublicKeyLength(bytes.len()))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
                .map_err(|_| SecretError::NotAPublicKey)?;
            return Ok(VerifyingSecret::Ed25519(key));
        }
        match Secret::parse(text) {
            Ok(Secret::Hmac(bytes)) => Ok(VerifyingSecret::Hmac(bytes)),
            Ok(Secret::Ed25519(key)) => Ok(VerifyingSecret::Ed25519(key.verifying_key())),
            Err(SecretError::UnknownPrefix) => Err(SecretError::UnknownVerifyingPrefix),
            Err(e) => Err(e),
        }
    }
}

impl From<&Secret> for VerifyingSecret {
    fn from(secret: &Secret) -> VerifyingSecret {
        match secret {
            Secret::Hmac(bytes) => VerifyingSecret::Hmac(bytes.clone()),
            Secret::Ed25519(key) => VerifyingSecret::Ed25519(key.verifying_key()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(s.expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            Secret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::HmacLength(5)
        );
        assert_eq!(
            Secret::parse("whsec_!!!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            Secret::parse("sk_live_x").unwrap_err(),
            SecretError::UnknownPrefix
        );
        let generated = Secret::generate_hmac().expose();
        assert!(Secret::parse(&generated).is_ok());
        assert_eq!(
            format!("{:?}", Secret::parse(&generated).unwrap()),
            "Secret::Hmac(<redacted>)"
        );
    }

    #[test]
    fn a_receiver_verifies_with_the_public_key() {
        let seed = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
        let public = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        let signer = Secret::parse(seed).unwrap();
        let sig = crate::signing::sign_one(&signer, "msg_1", 1_700_000_000, b"{}");
        for text in [public, seed] {
            let key = VerifyingSecret::parse(text).unwrap();
            assert!(crate::signing::verify_with(
                &key,
                "msg_1",
                1_700_000_000,
                b"{}",
                &sig
            ));
            assert!(!crate::signing::verify_with(
                &key,
                "msg_1",
                1_700_000_000,
                b"{ }",
                &sig
            ));
        }
        assert_eq!(
            VerifyingSecret::parse("whpk_c2hvcnQ=").unwrap_err(),
            SecretError::PublicKeyLength(5)
        );
        assert_eq!(
            VerifyingSecret::parse("foo").unwrap_err(),
            SecretError::UnknownVerifyingPrefix
        );
    }

    #[test]
    fn ed25519_accepts_seed_and_seed_with_public_key() {
        let seed = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
        let key = Secret::parse(seed).unwrap();
        assert_eq!(
            key.verification_key(),
            "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        let Secret::Ed25519(sk) = &key else {
            panic!("not ed25519")
        };
        let mut both = sk.to_bytes().to_vec();
        both.extend_from_slice(sk.verifying_key().as_bytes());
        assert!(Secret::parse(&format!("whsk_{}", B64.encode(&both))).is_ok());
        both[40] ^= 1;
        assert_eq!(
            Secret::parse(&format!("whsk_{}", B64.encode(&both))).unwrap_err(),
            SecretError::Ed25519Mismatch
        );
    }
}
