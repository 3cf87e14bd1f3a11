//! The SSRF guard on the way out. Host names are resolved here, once per connection,
//! and only addresses the destination policy allows are handed to the HTTP client,
//! which connects to exactly those: a name cannot resolve to a public address when
//! checked and to a private one when connected (DNS rebinding). Literal IP addresses
//! never reach a resolver, so `check_destination` checks them before each attempt.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use herald_core::netguard::DestinationPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a destination was refused; its text ends up in the attempt's log.
#[derive(Debug)]
pub struct Blocked(pub String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blocked: {}", self.0)
    }
}

impl std::error::Error for Blocked {}

/// The endpoint's host name could not be resolved; its text ends up in the attempt's log.
#[derive(Debug)]
pub struct DnsFailed(pub String);

impl std::fmt::Display for DnsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DNS lookup failed: {}", self.0)
    }
}

impl std::error::Error for DnsFailed {}

/// A resolver that drops every address the policy refuses, and fails when none is left.
pub(crate) struct GuardedResolver {
    pub policy: Arc<DestinationPolicy>,
    /// Fixed answers for chosen names (the `resolve` setting), checked like any other.
    pub overrides: HashMap<String, Vec<IpAddr>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let policy = self.policy.clone();
        let fixed = self.overrides.get(&host).cloned();
        Box::pin(async move {
            let addresses: Vec<IpAddr> = match fixed {
                Some(list) => list,
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> {
                        Box::new(DnsFailed(format!("{host}: {e}")))
                    })?
                    .map(|a| a.ip())
                    .collect(),
            };
            let mut allowed = Vec::new();
            let mut refused = None;
            for ip in addresses {
                match policy.check(ip) {
                    Ok(()) => allowed.push(SocketAddr::new(ip, 0)),
                    Err(why) => {
                        refused.get_or_insert(why);
                    }
                }
            }
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| "it has no address".into());
                return Err(Box::new(Blocked(format!("{host}: {why}"))) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Checks a delivery URL before anything is sent: the scheme (`https_only`) and, for
/// an IP literal, the address. Returns the parsed URL, which the request is sent to.
pub(crate) fn check_destination(
    policy: &DestinationPolicy,
    https_only: bool,
    url: &str,
) -> Result<url::Url, Blocked> {
    let parsed = url::Url::parse(url).map_err(|e| Blocked(format!("invalid URL: {e}")))?;
    if https_only && parsed.scheme() != "https" {
        return Err(Blocked("https_only is set and the URL is not https".into()));
    }
    policy.check_url(&parsed).map_err(Blocked)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(allowed: &[&str], overrides: &[(&str, &str)]) -> GuardedResolver {
        GuardedResolver {
            policy: Arc::new(DestinationPolicy {
                allowed: allowed.iter().map(|c| c.parse().unwrap()).collect(),
            }),
            overrides: overrides
                .iter()
                .map(|(h, ip)| (h.to_string(), vec![ip.parse().unwrap()]))
                .collect(),
        }
    }

    async fn resolve(r: &GuardedResolver, host: &str) -> Result<Vec<SocketAddr>, String> {
        let name: Name = host.parse().unwrap();
        r.resolve(name)
            .await
            .map(|a| a.collect())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused() {
        let r = resolver(
            &[],
            &[
                ("internal.test", "10.1.2.3"),
                ("public.test", "93.184.216.34"),
            ],
        );
        let err = resolve(&r, "internal.test").await.unwrap_err();
        assert!(
            err.contains("blocked: internal.test: 10.1.2.3 is private"),
            "{err}"
        );
        assert_eq!(
            resolve(&r, "public.test").await.unwrap(),
            ["93.184.216.34:0".parse().unwrap()]
        );
        // The system resolver's answer for localhost is checked the same way.
        let err = resolve(&r, "localhost").await.unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let opened = resolver(&["127.0.0.0/8", "::1/128"], &[]);
        assert!(!resolve(&opened, "localhost").await.unwrap().is_empty());
    }

    #[test]
    fn literal_addresses_and_plain_http_are_checked_before_sending() {
        let policy = DestinationPolicy::default();
        let err =
            check_destination(&policy, false, "http://[::ffff:127.0.0.1]:8080/x").unwrap_err();
        assert!(err.to_string().contains("IPv4-mapped"), "{err}");
        assert!(check_destination(&policy, false, "http://2130706433/").is_err());
        assert!(check_destination(&policy, false, "http://example.com/").is_ok());
        let err = check_destination(&policy, true, "http://example.com/").unwrap_err();
        assert!(err.to_string().contains("https_only"), "{err}");
        assert!(check_destination(&policy, true, "https://example.com/").is_ok());
    }
}
