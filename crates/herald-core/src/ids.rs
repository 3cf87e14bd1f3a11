//! Prefixed, time-ordered identifiers (`app_…`, `msg_…`): 27 base62 characters after the
//! prefix. The first 9 characters encode the creation time in milliseconds, the other 18
//! are random, so sorting ids as strings sorts them by creation time. Within one
//! millisecond the random part is incremented instead of redrawn, which keeps ids made by
//! one process strictly increasing (pagination relies on that order).

use std::sync::Mutex;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TIME_CHARS: usize = 9;
const RANDOM_CHARS: usize = 18;
/// 62^18: the random part is kept below this so it always fits in 18 characters.
const RANDOM_SPACE: u128 = 183_252_712_161_029_662_582_812_243_656_704;

pub const APP: &str = "app_";
pub const ENDPOINT: &str = "ep_";
pub const MESSAGE: &str = "msg_";
pub const ATTEMPT: &str = "atmpt_";
pub const EVENT_TYPE: &str = "evtype_";
pub const TASK: &str = "qtask_";
pub const TOKEN: &str = "tok_";
pub const SOURCE: &str = "src_";
pub const INBOUND: &str = "inb_";
pub const DESTINATION: &str = "dest_";
pub const AUDIT: &str = "aud_";
pub const PERSON: &str = "per_";

static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));

/// A new id with `prefix`, later than every id this process made before.
pub fn generate(prefix: &str) -> String {
    let now_ms = crate::time::now_ms().max(0) as u64;
    let (ms, random) = {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let next = if now_ms <= last.0 && last.1 + 1 < RANDOM_SPACE {
            (last.0, last.1 + 1)
        } else {
            // Leave headroom above the drawn value so increments within the
            // millisecond never overflow the 18 characters.
            (
                now_ms.max(last.0 + u64::from(now_ms <= last.0)),
                rand::random::<u128>() % (RANDOM_SPACE / 2),
            )
        };
        *last = next;
        next
    };
    let mut out = String::with_capacity(prefix.len() + TIME_CHARS + RANDOM_CHARS);
    out.push_str(prefix);
    push_base62(&mut out, u128::from(ms), TIME_CHARS);
    push_base62(&mut out, random, RANDOM_CHARS);
    out
}

/// An id with `prefix` for a record made at `ms` (Unix milliseconds), with a random
/// part drawn afresh: for tools that write records with times of their own (the store
/// filler of the benchmarks). Ids made at distinct milliseconds sort by them.
pub fn generate_at(prefix: &str, ms: u64) -> String {
    let mut out = String::with_capacity(prefix.len() + TIME_CHARS + RANDOM_CHARS);
    out.push_str(prefix);
    push_base62(&mut out, u128::from(ms), TIME_CHARS);
    push_base62(
        &mut out,
        rand::random::<u128>() % RANDOM_SPACE,
        RANDOM_CHARS,
    );
    out
}

fn push_base62(out: &mut String, mut value: u128, width: usize) {
    let mut buf = [b'0'; 32];
    for slot in buf[..width].iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out.extend(buf[..width].iter().map(|&b| b as char));
}

/// Random base62 text of `len` characters, for tokens and secrets shown to people.
pub fn random_base62(len: usize) -> String {
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..62usize)] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_fixed_length() {
        let id = generate(MESSAGE);
        assert!(id.starts_with("msg_"));
        assert_eq!(id.len(), 4 + 27);
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..10_000).map(|_| generate(APP)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }

    #[test]
    fn ids_made_at_a_time_sort_by_it_and_before_ids_made_now() {
        let now = crate::time::now_ms() as u64;
        let past: Vec<String> = (0..1000)
            .map(|i| generate_at(MESSAGE, now - 86_400_000 + i * 2))
            .collect();
        let mut sorted = past.clone();
        sorted.sort();
        assert_eq!(past, sorted);
        assert_eq!(past[0].len(), 4 + 27);
        assert!(past.last().unwrap() < &generate(MESSAGE));
    }
}
