//! Which addresses Herald may send webhooks to. Endpoint URLs are chosen by customers,
//! so a webhook sender is an SSRF vector: by default every destination that is not a
//! global unicast address is refused (loopback, private, link-local with the cloud
//! metadata address, CGNAT, multicast, documentation and benchmarking ranges, IPv6 ULA
//! and link-local, IPv4-mapped and translated IPv6, and the rest of the IANA
//! special-purpose registries). An allowlist of subnets opens chosen ranges again.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A subnet: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    pub const fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
        let [a, b, c, d, e, f, g, h] = segments;
        Cidr {
            addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not a subnet like 10.0.0.0/8 or fd00::/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}' has a prefix length outside 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4 ranges that are not global, with what they are (IANA IPv4 Special-Purpose
/// Address Registry, plus multicast and the reserved class E).
const V4_BLOCKED: &[(Cidr, &str)] = &[
    (Cidr::v4(0, 0, 0, 0, 8), "\"this network\" (0.0.0.0/8)"),
    (Cidr::v4(10, 0, 0, 0, 8), "private (10.0.0.0/8)"),
    (
        Cidr::v4(100, 64, 0, 0, 10),
        "shared address space / CGNAT (100.64.0.0/10)",
    ),
    (Cidr::v4(127, 0, 0, 0, 8), "loopback (127.0.0.0/8)"),
    (
        Cidr::v4(169, 254, 0, 0, 16),
        "link-local, incl. cloud metadata (169.254.0.0/16)",
    ),
    (Cidr::v4(172, 16, 0, 0, 12), "private (172.16.0.0/12)"),
    (
        Cidr::v4(192, 0, 0, 0, 24),
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    (Cidr::v4(192, 0, 2, 0, 24), "documentation (192.0.2.0/24)"),
    (Cidr::v4(192, 31, 196, 0, 24), "AS112 (192.31.196.0/24)"),
    (Cidr::v4(192, 52, 193, 0, 24), "AMT (192.52.193.0/24)"),
    (
        Cidr::v4(192, 88, 99, 0, 24),
        "6to4 relay anycast (192.88.99.0/24)",
    ),
    (Cidr::v4(192, 168, 0, 0, 16), "private (192.168.0.0/16)"),
    (
        Cidr::v4(192, 175, 48, 0, 24),
        "direct delegation AS112 (192.175.48.0/24)",
    ),
    (Cidr::v4(198, 18, 0, 0, 15), "benchmarking (198.18.0.0/15)"),
    (
        Cidr::v4(198, 51, 100, 0, 24),
        "documentation (198.51.100.0/24)",
    ),
    (
        Cidr::v4(203, 0, 113, 0, 24),
        "documentation (203.0.113.0/24)",
    ),
    (Cidr::v4(224, 0, 0, 0, 4), "multicast (224.0.0.0/4)"),
    (
        Cidr::v4(240, 0, 0, 0, 4),
        "reserved, incl. broadcast (240.0.0.0/4)",
    ),
];

/// IPv6 ranges that are not global inside 2000::/3 (everything outside 2000::/3 is
/// refused as a whole: unspecified, loopback, IPv4-mapped, translation prefixes,
/// discard, ULA, link-local, site-local, multicast).
const V6_BLOCKED_IN_GLOBAL: &[(Cidr, &str)] = &[
    (
        Cidr::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments, incl. Teredo (2001::/23)",
    ),
    (
        Cidr::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation (2001:db8::/32)",
    ),
    (
        Cidr::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        "6to4 (2002::/16)",
    ),
    (
        Cidr::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "documentation (3fff::/20)",
    ),
];

const V6_NAMED: &[(Cidr, &str)] = &[
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified (::)"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback (::1)"),
    (
        Cidr::v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        "IPv4-mapped (::ffff:0:0/96)",
    ),
    (
        Cidr::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
        "IPv4/IPv6 translation (64:ff9b::/96)",
    ),
    (
        Cidr::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "IPv4/IPv6 translation (64:ff9b:1::/48)",
    ),
    (
        Cidr::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "discard (100::/64)",
    ),
    (
        Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local (fc00::/7)",
    ),
    (
        Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "link-local (fe80::/10)",
    ),
    (
        Cidr::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "site-local (fec0::/10)",
    ),
    (
        Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        "multicast (ff00::/8)",
    ),
];

/// Why `ip` is not a global unicast address, or `None` when it is one.
pub fn non_global_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(_) => V4_BLOCKED
            .iter()
            .find(|(net, _)| net.contains(ip))
            .map(|(_, why)| *why),
        IpAddr::V6(v6) => {
            if let Some((_, why)) = V6_NAMED.iter().find(|(net, _)| net.contains(ip)) {
                return Some(why);
            }
            if v6.segments()[0] & 0xe000 != 0x2000 {
                return Some("not global unicast (outside 2000::/3)");
            }
            V6_BLOCKED_IN_GLOBAL
                .iter()
                .find(|(net, _)| net.contains(ip))
                .map(|(_, why)| *why)
        }
    }
}

/// Where deliveries may go: global addresses, and whatever `allowed` opens.
#[derive(Clone, Debug, Default)]
pub struct DestinationPolicy {
    pub allowed: Vec<Cidr>,
}

impl DestinationPolicy {
    /// Parses a comma-separated list of subnets (the form of `HERALD_ALLOWED_SUBNETS`).
    pub fn parse_list(items: &[String]) -> Result<Vec<Cidr>, String> {
        items
            .iter()
            .flat_map(|i| i.split(','))
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::parse)
            .collect()
    }

    /// `Ok` when Herald may connect to `ip`; otherwise a sentence that says why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let Some(why) = non_global_reason(ip) else {
            return Ok(());
        };
        // An IPv4-mapped IPv6 address is allowed only as its IPv4 self would be.
        let as_v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if self.allowed.iter().any(|net| net.contains(ip))
            || as_v4.is_some_and(|v4| self.allowed.iter().any(|net| net.contains(v4)))
        {
            return Ok(());
        }
        // Loopback is what a developer tries first: name the switch made for it.
        let how = if ip.is_loopback() || as_v4.is_some_and(|v4| v4.is_loopback()) {
            "start the server with `herald serve --dev` to deliver to this machine while \
             developing, or open the range with allowed_subnets (HERALD_ALLOWED_SUBNETS)"
        } else {
            "allowed_subnets (HERALD_ALLOWED_SUBNETS) can open it"
        };
        Err(format!(
            "{ip} is {why}, which Herald does not deliver to: {how}"
        ))
    }

    /// Checks a URL's host when it is an IP address literal (in any spelling the URL
    /// standard accepts: `127.1`, `2130706433`, `0x7f.0.0.1`, `[::ffff:127.0.0.1]` are
    /// all parsed to the address they mean). Host names are checked when resolved.
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err("the URL has no host".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn global_addresses_pass_and_special_ones_do_not() {
        let policy = DestinationPolicy::default();
        for ok in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(policy.check(ip(ok)).is_ok(), "{ok}");
        }
        for (bad, what) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("0.0.0.0", "this network"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "metadata"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.255", "CGNAT"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.8", "IETF"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("64:ff9b::7f00:1", "translation"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "Teredo"),
            ("2002:7f00:1::1", "6to4"),
            ("100::1", "discard"),
            ("::127.0.0.1", "outside 2000::/3"),
        ] {
            let err = policy.check(ip(bad)).expect_err(bad);
            assert!(err.contains(what), "{bad}: {err}");
        }
        // Just outside the blocked ranges.
        for ok in [
            "172.32.0.1",
            "100.128.0.1",
            "11.0.0.1",
            "192.169.0.1",
            "169.255.0.1",
        ] {
            assert!(policy.check(ip(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_allowlist_opens_chosen_ranges_only() {
        let allowed =
            DestinationPolicy::parse_list(&["127.0.0.0/8, 10.1.0.0/16".into(), "fd00::/8".into()])
                .unwrap();
        let policy = DestinationPolicy { allowed };
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(
            policy.check(ip("::ffff:127.0.0.1")).is_ok(),
            "mapped follows its IPv4 form"
        );
        assert!(policy.check(ip("10.1.200.3")).is_ok());
        assert!(policy.check(ip("10.2.0.1")).is_err());
        assert!(policy.check(ip("fd00::5")).is_ok());
        assert!(
            policy.check(ip("::1")).is_err(),
            "IPv6 loopback was not opened"
        );
        assert!(policy.check(ip("169.254.169.254")).is_err());
    }

    #[test]
    fn subnets_parse_strictly() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!("1.2.3.4".parse::<Cidr>().unwrap().to_string(), "1.2.3.4/32");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "localhost",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!(Cidr::v4(0, 0, 0, 0, 0).contains(ip("1.2.3.4")));
        assert!(!Cidr::v4(0, 0, 0, 0, 0).contains(ip("::1")));
    }

    #[test]
    fn every_spelling_of_a_literal_address_is_caught() {
        let policy = DestinationPolicy::default();
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1%25eth0]/",
        ] {
            // The URL parser refusing it outright is as good.
            if let Ok(parsed) = url::Url::parse(url) {
                assert!(policy.check_url(&parsed).is_err(), "{url} -> {parsed}");
            }
        }
        assert!(policy
            .check_url(&url::Url::parse("https://example.com/hook").unwrap())
            .is_ok());
    }
}
