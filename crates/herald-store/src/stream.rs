//! What both stores share for destinations: the destination row's columns, which of the
//! rows a stream read looked at it keeps, and where the reader stands afterwards.
//!
//! A read looks at a window of rows after its position (metadata only), keeps those that
//! pass the filters, and only then loads the kept payloads. The window is bounded, so a
//! destination whose filter matches rarely advances over what it skipped instead of
//! scanning the whole stream in one request.

use crate::{Destination, DestinationStatus, StoreError, StreamPos, StreamRead};

pub(crate) const DESTINATION_COLUMNS: &str = "id, app_id, uid, kind, status, config, batch_size, \
     max_wait_secs, event_types, channels, metadata, pos_xid, pos_seq, failure_reason, \
     next_retry_at, failures, created_at, updated_at, payload_filter, transformation";

/// Rows a filtered read looks at, at most, per call.
const FILTERED_WINDOW: usize = 2_000;

/// A message row a read looked at, before the filters.
pub(crate) struct ScannedRow {
    pub pos: StreamPos,
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub channels: Option<Vec<String>>,
    pub created_at: i64,
}

fn filtered(r: &StreamRead) -> bool {
    r.event_types.as_ref().is_some_and(|l| !l.is_empty())
        || r.channels.as_ref().is_some_and(|l| !l.is_empty())
        || r.event_type.is_some()
        || r.channel.is_some()
}

/// How many rows after the position a read looks at: one more than it returns when
/// nothing is filtered out (the extra row says whether more follows).
pub(crate) fn window(r: &StreamRead) -> usize {
    if filtered(r) {
        FILTERED_WINDOW.max(r.limit + 1)
    } else {
        r.limit + 1
    }
}

fn keeps(r: &StreamRead, row: &ScannedRow) -> bool {
    let subscribed = herald_core::fanout::matches(
        &herald_core::fanout::Subscription {
            disabled: false,
            event_types: r.event_types.as_deref(),
            channels: r.channels.as_deref(),
        },
        &row.event_type,
        row.channels.as_deref(),
    );
    subscribed
        && r.event_type.as_ref().is_none_or(|t| *t == row.event_type)
        && r.channel.as_ref().is_none_or(|c| {
            row.channels
                .as_ref()
                .is_some_and(|chs| chs.iter().any(|x| x == c))
        })
}

/// Of the rows looked at (in stream order, at most `window(r)`), those the read returns,
/// the position after them, and whether the stream is read to its end.
pub(crate) fn select(r: &StreamRead, rows: Vec<ScannedRow>) -> (Vec<ScannedRow>, StreamPos, bool) {
    let looked_at = rows.len();
    let mut kept = Vec::new();
    let mut next = r.after;
    for row in rows {
        if kept.len() == r.limit {
            return (kept, next, false);
        }
        next = row.pos;
        if keeps(r, &row) {
            kept.push(row);
        }
    }
    (kept, next, looked_at < window(r))
}

/// The refusal of a read from a position retention has gone past.
pub(crate) fn expired(after: StreamPos, horizon: StreamPos) -> crate::Result<()> {
    if after < horizon {
        return Err(StoreError::Gone(format!(
            "this position ({}) has expired: retention deleted messages after it (up to {}); seek to a time, or read from the oldest message kept",
            after.encode(),
            horizon.encode()
        )));
    }
    Ok(())
}

/// Refuses a destination past the per-application bound.
pub(crate) fn too_many(max_per_app: usize) -> StoreError {
    StoreError::Invalid(format!(
        "an application may have at most {max_per_app} destinations"
    ))
}

/// The values of a destination row, in `DESTINATION_COLUMNS` order, as text and
/// integers the way both stores write them.
pub(crate) struct DestinationRow {
    pub uid: Option<String>,
    pub status: &'static str,
    pub config: String,
    pub event_types: Option<String>,
    pub channels: Option<String>,
    pub metadata: String,
    pub payload_filter: Option<String>,
    pub transformation: Option<String>,
}

pub(crate) fn encode(d: &Destination) -> DestinationRow {
    DestinationRow {
        uid: d.uid.clone(),
        status: d.status.as_str(),
        config: d.config.to_string(),
        event_types: d.event_types.as_ref().map(crate::json_encode),
        channels: d.channels.as_ref().map(crate::json_encode),
        metadata: crate::json_encode(&d.metadata),
        payload_filter: crate::PayloadFilter::stored(&d.payload_filter),
        transformation: crate::Transformation::stored(d.transformation.as_deref()),
    }
}

/// Builds a destination from its decoded columns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode(
    id: String,
    app_id: String,
    uid: Option<String>,
    kind: String,
    status: &str,
    config: &str,
    batch_size: i64,
    max_wait_secs: i64,
    event_types: Option<&str>,
    channels: Option<&str>,
    metadata: &str,
    position: StreamPos,
    failure_reason: Option<String>,
    next_retry_at: Option<i64>,
    failures: i64,
    created_at: i64,
    updated_at: i64,
    payload_filter: Option<&str>,
    transformation: Option<&str>,
) -> Destination {
    Destination {
        id,
        app_id,
        uid,
        kind,
        status: DestinationStatus::parse(status),
        config: serde_json::from_str(config).unwrap_or_default(),
        batch_size,
        max_wait_secs,
        event_types: crate::json_decode_opt(event_types),
        channels: crate::json_decode_opt(channels),
        metadata: crate::json_decode(metadata),
        position,
        failure_reason,
        next_retry_at,
        failures,
        created_at,
        updated_at,
        payload_filter: crate::PayloadFilter::from_stored(payload_filter),
        transformation: crate::Transformation::from_stored(transformation),
    }
}

/// Drops the messages a destination's payload filter does not let through (the read's
/// position has already moved past them).
pub(crate) fn keep_passing(r: &StreamRead, messages: &mut Vec<crate::StreamMessage>) {
    if let Some(f) = &r.payload_filter {
        messages.retain(|m| {
            f.filter
                .matches(&crate::filter_document(&m.payload, &m.headers))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, event_type: &str) -> ScannedRow {
        ScannedRow {
            pos: StreamPos { xid: 0, seq },
            id: format!("msg_{seq}"),
            event_id: None,
            event_type: event_type.into(),
            channels: None,
            created_at: seq,
        }
    }

    #[test]
    fn an_unfiltered_read_returns_its_limit_and_says_whether_more_follows() {
        let r = StreamRead {
            limit: 2,
            ..Default::default()
        };
        assert_eq!(window(&r), 3);
        let (kept, next, done) = select(&r, vec![row(1, "a"), row(2, "a"), row(3, "a")]);
        assert_eq!(kept.len(), 2);
        assert_eq!(next.seq, 2);
        assert!(!done);
        let (kept, next, done) = select(&r, vec![row(1, "a"), row(2, "a")]);
        assert_eq!((kept.len(), next.seq, done), (2, 2, true));
        let (kept, next, done) = select(&r, vec![]);
        assert_eq!((kept.len(), next, done), (0, r.after, true));
    }

    #[test]
    fn a_filtered_read_moves_past_what_it_left_out() {
        let r = StreamRead {
            limit: 10,
            event_type: Some("b".into()),
            ..Default::default()
        };
        let (kept, next, done) = select(&r, vec![row(1, "a"), row(2, "b"), row(3, "a")]);
        assert_eq!(kept.iter().map(|k| k.pos.seq).collect::<Vec<_>>(), [2]);
        assert_eq!(next.seq, 3);
        assert!(done);
    }

    #[test]
    fn positions_order_by_transaction_then_sequence_and_round_trip() {
        let a = StreamPos { xid: 5, seq: 900 };
        let b = StreamPos { xid: 6, seq: 1 };
        assert!(a < b);
        assert_eq!(StreamPos::parse(&a.encode()), Some(a));
        // The end of a PostgreSQL stream is an iterator like any other.
        let tail = StreamPos {
            xid: 1 << 40,
            seq: StreamPos::MAX_SEQ,
        };
        assert_eq!(StreamPos::parse(&tail.encode()), Some(tail));
        for bad in [
            "",
            "5",
            "-1",
            "a-1",
            "1-",
            "1-2-3",
            "9999999999999999999-1",
            "1-9223372036854775807",
        ] {
            assert_eq!(StreamPos::parse(bad), None, "{bad}");
        }
    }
}
