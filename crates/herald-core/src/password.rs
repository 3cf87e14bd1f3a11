//! Passwords of people who sign in: hashed with Argon2id (memory-hard) into PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), which carry their own parameters, so
//! that stronger settings later still verify older hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Argon2id with 19 MiB of memory, 2 passes, one lane (the OWASP recommendation).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether a password is acceptable: long enough, and no longer than is sensible.
pub fn check(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(format!("a password has at least {MIN_LENGTH} characters"));
    }
    if n > 256 {
        return Err("a password has at most 256 characters".into());
    }
    Ok(())
}

/// The PHC string of `password` under a new random salt.
pub fn hash(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes encode");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters succeeds")
        .to_string()
}

/// Whether `password` is the one `phc` was made from (false for a damaged hash).
pub fn verify(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The parameters come from the hash itself.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let phc = hash("correct horse battery");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(&phc, "correct horse battery"));
        assert!(!verify(&phc, "correct horse batterx"));
        assert!(!verify("not a hash", "correct horse battery"));
        // Salted: the same password hashes differently.
        assert_ne!(phc, hash("correct horse battery"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check("short").is_err());
        assert!(check("twelve chars").is_ok());
    }
}
