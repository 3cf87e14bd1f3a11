//! Environments: isolated namespaces of one Herald (say `staging` and `production`).
//! Each has its own store, and its tokens name it in their visible prefix
//! (`hrld_staging_…`), so a request is routed to its environment before anything else
//! reads it. The default environment's tokens keep the plain `hrld_` prefix, so tokens
//! made before environments existed go on working there.

/// The environment a Herald always has: the data that existed before environments did,
/// and where requests that name none go.
pub const DEFAULT: &str = "default";

/// Longest environment name.
pub const MAX_NAME_LEN: usize = 32;

/// Checks an environment's name: 1 to 32 characters, lower-case ASCII letters, digits
/// and `-`, starting with a letter (it appears in tokens, schema and file names).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "environment name '{name}' must be 1 to {MAX_NAME_LEN} characters: lower-case letters, digits and '-', starting with a letter"
        ))
    }
}

/// The environment a token belongs to, read from its prefix: `hrld_{env}_{random}`
/// names `env`; `hrld_{random}` and any other token (a configured admin token) belong
/// to the default environment. The random part is base62, so it has no `_`.
pub fn of_token(token: &str) -> &str {
    token
        .strip_prefix(crate::token::PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(env, _)| env)
        .filter(|env| check_name(env).is_ok())
        .unwrap_or(DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["staging", "prod-eu", "a", "x1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Staging", "1st", "-x", "a_b", "a b", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_name_their_environment() {
        let staging = crate::token::generate_in("staging");
        assert!(staging.starts_with("hrld_staging_"), "{staging}");
        assert_eq!(of_token(&staging), "staging");
        let plain = crate::token::generate_in(DEFAULT);
        assert_eq!(plain.len(), 45);
        assert_eq!(of_token(&plain), DEFAULT);
        assert_eq!(of_token("a-configured-admin-token"), DEFAULT);
        assert_eq!(of_token("hrld_Bad_x"), DEFAULT);
    }
}
