//! Randomised property tests of the parsers that face untrusted input: identifiers and
//! uids, endpoint URLs and the SSRF guard, signing secrets and signature headers. Each
//! property runs on a few thousand generated inputs (seeded, so a failure prints the
//! seed that reproduces it), built from the characters that matter to each parser.

use herald_core::netguard::{non_global_reason, DestinationPolicy};
use herald_core::secret::Secret;
use herald_core::signing::{sign_one, verify};
use herald_core::validate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CASES: u64 = 3_000;

fn for_each_case(name: &str, mut check: impl FnMut(&mut StdRng)) {
    for seed in 0..CASES {
        let mut rng = StdRng::seed_from_u64(seed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mut rng)));
        if let Err(panic) = outcome {
            eprintln!("property '{name}' failed for seed {seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// A string of up to `max` characters drawn from `alphabet`.
fn string_from(rng: &mut StdRng, alphabet: &[char], max: usize) -> String {
    let len = rng.random_range(0..=max);
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

const TRICKY: &[char] = &[
    'a', 'Z', '0', '9', '-', '_', '.', ':', '/', '\\', '?', '#', '@', '%', '[', ']', ' ', '\t',
    '\n', '\0', 'é', 'ß', '€', '🦀', '"', '\'', '{', '}', '=', '&', '+', ',', ';', '*',
];

#[test]
fn identifiers_are_accepted_exactly_when_they_follow_the_rule() {
    for_each_case("identifier", |rng| {
        let s = string_from(rng, TRICKY, 300);
        let expected = !s.is_empty()
            && s.len() <= validate::MAX_UID_LEN
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        assert_eq!(validate::identifier(&s, "uid").is_ok(), expected, "{s:?}");
        if validate::uid(&s, "app_").is_ok() {
            assert!(expected && !s.starts_with("app_"), "{s:?}");
        }
    });
}

#[test]
fn endpoint_urls_never_panic_and_accepted_ones_are_http_with_a_host() {
    let pieces = [
        "http://",
        "https://",
        "ftp://",
        "javascript:",
        "//",
        "user:pw@",
        "example.com",
        "127.0.0.1",
        "[::1]",
        "0x7f.1",
        "2130706433",
        ":8080",
        ":99999",
        "/path",
        "?q=1",
        "#frag",
        "%2e%2e",
        "\u{0}",
        " ",
        "ex ample.com",
        "xn--bcher-kva.example",
        "[::ffff:10.0.0.1]",
        "localhost",
    ];
    let policy = DestinationPolicy::default();
    for_each_case("endpoint_url", |rng| {
        let n = rng.random_range(1..6);
        let s: String = (0..n)
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        if let Ok(url) = validate::endpoint_url(&s) {
            assert!(matches!(url.scheme(), "http" | "https"), "{s:?}");
            assert!(url.host().is_some(), "{s:?}");
            assert!(
                url.username().is_empty() && url.password().is_none(),
                "{s:?}"
            );
            let _ = policy.check_url(&url);
        }
    });
}

#[test]
fn every_spelling_of_an_ipv4_address_is_judged_as_the_address() {
    let policy = DestinationPolicy::default();
    for_each_case("ipv4 spellings", |rng| {
        // Bias towards the special ranges so that both outcomes are exercised.
        let first = [
            0u8, 10, 100, 127, 169, 172, 192, 198, 203, 224, 240, 255, 8, 93, 1,
        ][rng.random_range(0..15)];
        let ip = std::net::Ipv4Addr::new(first, rng.random(), rng.random(), rng.random());
        let n = u32::from(ip);
        let [a, b, c, d] = ip.octets();
        let spellings = [
            format!("{ip}"),
            format!("{n}"),
            format!("0x{n:x}"),
            format!("0{n:o}"),
            format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
            format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
            format!(
                "{a}.{}",
                (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)
            ),
            format!("[::ffff:{ip}]"),
        ];
        let blocked = non_global_reason(std::net::IpAddr::V4(ip)).is_some();
        for spelling in &spellings {
            let url = url::Url::parse(&format!("http://{spelling}:8080/hook"))
                .unwrap_or_else(|e| panic!("{spelling}: {e}"));
            let refused = policy.check_url(&url).is_err();
            if spelling.starts_with("[::ffff:") {
                assert!(
                    refused,
                    "{spelling}: IPv4-mapped addresses are always refused"
                );
            } else {
                assert_eq!(refused, blocked, "{spelling} ({ip})");
            }
        }
    });
}

#[test]
fn secrets_and_signature_headers_never_panic_and_forgeries_fail() {
    let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let body = br#"{"test": 2432232314}"#;
    let good = sign_one(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
    let b64: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= ,v1a_"
        .chars()
        .collect();
    for_each_case("signature headers", |rng| {
        // A random header, and the genuine one with one character changed.
        let random = string_from(rng, &b64, 200);
        assert!(
            !verify(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                body,
                &random
            ) || random.contains(&good)
        );
        let mut mutated: Vec<char> = good.chars().collect();
        let at = rng.random_range(3..mutated.len());
        let replacement = b64[rng.random_range(0..b64.len())];
        if mutated[at] != replacement && replacement != ' ' && replacement != ',' {
            mutated[at] = replacement;
            let forged: String = mutated.into_iter().collect();
            assert!(
                !verify(
                    &secret,
                    "msg_p5jXN8AQM9LWM0D4loKWxJek",
                    1_614_265_330,
                    body,
                    &forged
                ),
                "{forged}"
            );
        }
        // Arbitrary secret text never panics the parser.
        let text = format!(
            "{}{}",
            ["whsec_", "whsk_", "", "whpk_"][rng.random_range(0..4)],
            string_from(rng, &b64, 120)
        );
        let _ = Secret::parse(&text);
    });
    assert!(verify(
        &secret,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        body,
        &good
    ));
}
