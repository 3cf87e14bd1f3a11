//! API tokens: random, shown once, stored only as a SHA-256 hash.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "hrld_";

/// A new API token: `hrld_` and 40 random base62 characters (about 238 bits).
pub fn generate() -> String {
    format!("{PREFIX}{}", crate::ids::random_base62(40))
}

/// A new API token of an environment: the default environment's are plain
/// (`generate`), another's carry its name, `hrld_{env}_` and 40 random characters.
pub fn generate_in(environment: &str) -> String {
    if environment == crate::environment::DEFAULT {
        generate()
    } else {
        format!("{PREFIX}{environment}_{}", crate::ids::random_base62(40))
    }
}

/// The hex SHA-256 of a token, which is all the store keeps.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (super::generate(), super::generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 45);
        assert_eq!(
            super::hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
