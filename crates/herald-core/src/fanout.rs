//! Fan-out: which endpoints receive a message.

/// The parts of an endpoint that decide whether it receives a message.
pub struct Subscription<'a> {
    pub disabled: bool,
    pub event_types: Option<&'a [String]>,
    pub channels: Option<&'a [String]>,
}

/// An endpoint gets a message iff it is enabled, its event-type filter is unset or names
/// the message's type, and its channel filter is unset or shares a channel with the message.
pub fn matches(sub: &Subscription<'_>, event_type: &str, msg_channels: Option<&[String]>) -> bool {
    if sub.disabled {
        return false;
    }
    if let Some(types) = sub.event_types {
        if !types.is_empty() && !types.iter().any(|t| t == event_type) {
            return false;
        }
    }
    match sub.channels {
        Some(wanted) if !wanted.is_empty() => {
            msg_channels.is_some_and(|have| have.iter().any(|c| wanted.contains(c)))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn filters_by_type_channel_and_disabled() {
        let types = s(&["order.created"]);
        let chans = s(&["eu", "us"]);
        let sub = Subscription {
            disabled: false,
            event_types: Some(&types),
            channels: Some(&chans),
        };
        assert!(matches(&sub, "order.created", Some(&s(&["us"]))));
        assert!(!matches(&sub, "order.paid", Some(&s(&["us"]))));
        assert!(!matches(&sub, "order.created", Some(&s(&["asia"]))));
        assert!(!matches(&sub, "order.created", None));
        let open = Subscription {
            disabled: false,
            event_types: None,
            channels: None,
        };
        assert!(matches(&open, "anything", None));
        assert!(matches(&open, "anything", Some(&s(&["x"]))));
        let off = Subscription {
            disabled: true,
            event_types: None,
            channels: None,
        };
        assert!(!matches(&off, "anything", None));
    }
}

#[cfg(test)]
mod properties {
    use super::*;

    /// The rule restated in the simplest way, to check `matches` against at random.
    fn reference(
        disabled: bool,
        types: &Option<Vec<String>>,
        chans: &Option<Vec<String>>,
        t: &str,
        mc: &Option<Vec<String>>,
    ) -> bool {
        let type_ok = match types {
            None => true,
            Some(v) => v.is_empty() || v.iter().any(|x| x == t),
        };
        let chan_ok = match chans {
            None => true,
            Some(v) if v.is_empty() => true,
            Some(v) => mc.as_ref().is_some_and(|m| m.iter().any(|c| v.contains(c))),
        };
        !disabled && type_ok && chan_ok
    }

    #[test]
    fn matches_agrees_with_the_reference_rule() {
        let pool = ["a", "b", "c", "d"];
        let pick = |n: usize| -> Vec<String> {
            (0..n)
                .map(|_| pool[rand::random_range(0..4)].to_string())
                .collect()
        };
        let maybe = |p: bool, n: usize| if p { Some(pick(n)) } else { None };
        for _ in 0..20_000 {
            let disabled = rand::random_range(0..4) == 0;
            let types = maybe(rand::random(), rand::random_range(0..3));
            let chans = maybe(rand::random(), rand::random_range(0..3));
            let msg_chans = maybe(rand::random(), rand::random_range(0..3));
            let t = pool[rand::random_range(0..4)];
            let sub = Subscription {
                disabled,
                event_types: types.as_deref(),
                channels: chans.as_deref(),
            };
            assert_eq!(
                matches(&sub, t, msg_chans.as_deref()),
                reference(disabled, &types, &chans, t, &msg_chans),
                "{disabled} {types:?} {chans:?} {t} {msg_chans:?}"
            );
        }
    }
}
