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
