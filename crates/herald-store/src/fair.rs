//! Fair claims: how a batch of claims is shared between applications and endpoints, the
//! same on both stores.
//!
//! Claiming the oldest due rows first lets one application's backlog stand in front of
//! every other application's work: a million rows due now are all older than the one
//! row another tenant committed a moment ago. So a claim first finds every endpoint with
//! pending deliveries (one probe per endpoint of the `delivery_ready` index, on
//! `(endpoint_id, next_attempt_at) WHERE status = 1`), keeps those whose oldest delivery
//! is due, and shares the batch out: equal parts per application, each application's
//! part in equal parts per endpoint, the ones that have waited longest first. What a
//! share leaves unused (an endpoint had fewer due rows) goes round again to the
//! endpoints that filled theirs. A backlog thus gets its share of each claim and no
//! more; the engine's gates then defer what of it cannot go soon (see the engine's
//! `gate.rs`), spread over the future at the pace its endpoint can take.
//!
//! The cost is one index probe per endpoint with pending deliveries, per claim.

use std::collections::HashMap;

/// An endpoint with pending deliveries, as a claim's scan finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub endpoint_id: String,
    pub app_id: String,
    /// When its oldest pending delivery is due (or its earliest lease ends).
    pub head: i64,
}

/// Rounds of sharing per claim: the first share, then up to two for what it left.
pub(crate) const ROUNDS: usize = 3;

/// The endpoints of `pending` whose oldest delivery is due at `now`, longest waiting
/// first.
pub(crate) fn due(mut pending: Vec<Pending>, now: i64) -> Vec<Pending> {
    pending.retain(|p| p.head <= now);
    pending.sort_by(|a, b| a.head.cmp(&b.head).then(a.endpoint_id.cmp(&b.endpoint_id)));
    pending
}

/// Shares `n` claims between `due` (longest waiting first): equal parts per application
/// in the order its first endpoint appears, each part in equal parts per endpoint. When
/// there are more applications (or endpoints) than claims, those that waited longest get
/// one each. Returns each endpoint's index in `due` with its share, shares above zero
/// only.
pub(crate) fn shares(due: &[Pending], n: usize) -> Vec<(usize, usize)> {
    // Applications in order of first appearance, each with its endpoints' indices.
    let mut apps: Vec<Vec<usize>> = Vec::new();
    let mut app_index: HashMap<&str, usize> = HashMap::new();
    for (i, p) in due.iter().enumerate() {
        let a = *app_index.entry(&p.app_id).or_insert_with(|| {
            apps.push(Vec::new());
            apps.len() - 1
        });
        apps[a].push(i);
    }
    let mut out = Vec::new();
    for (app_share, endpoints) in split(n, apps.len()).into_iter().zip(&apps) {
        for (share, &i) in split(app_share, endpoints.len()).into_iter().zip(endpoints) {
            if share > 0 {
                out.push((i, share));
            }
        }
    }
    out
}

/// `n` in `parts` nearly equal parts, the larger ones first.
fn split(n: usize, parts: usize) -> Vec<usize> {
    if parts == 0 {
        return Vec::new();
    }
    (0..parts)
        .map(|i| n / parts + usize::from(i < n % parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(endpoint: &str, app: &str, head: i64) -> Pending {
        Pending {
            endpoint_id: endpoint.into(),
            app_id: app.into(),
            head,
        }
    }

    #[test]
    fn applications_share_equally_whatever_their_endpoints() {
        // App a has three endpoints, b one: b gets half, a's half is split three ways.
        let due = due(
            vec![
                p("e1", "a", 1),
                p("e2", "a", 2),
                p("e3", "a", 3),
                p("e4", "b", 100),
                p("e5", "c", 10_000),
            ],
            1_000,
        );
        assert_eq!(due.len(), 4, "e5 is not due yet");
        let shares = shares(&due, 12);
        assert_eq!(shares, vec![(0, 2), (1, 2), (2, 2), (3, 6)]);
    }

    #[test]
    fn more_endpoints_than_claims_serve_the_longest_waiting() {
        let due = due(vec![p("x", "a", 5), p("y", "b", 1), p("z", "c", 3)], 10);
        assert_eq!(shares(&due, 2), vec![(0, 1), (1, 1)]);
        assert_eq!(due[0].endpoint_id, "y");
        assert_eq!(due[1].endpoint_id, "z");
    }

    #[test]
    fn nothing_is_lost_in_the_split() {
        for n in 0..50 {
            for parts in 1..9 {
                let s = split(n, parts);
                assert_eq!(s.iter().sum::<usize>(), n);
                assert!(s.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            }
        }
    }
}
