//! Cursor pagination shared by every list: rows are ordered by a unique key (an id, or an
//! event-type name); the cursor is the last key of a page, and a leading `-` walks back.

use crate::sql::{Arg, Query};

#[derive(Clone, Debug)]
pub struct ListQuery {
    pub limit: usize,
    pub iterator: Option<String>,
    pub descending: bool,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            iterator: self.iterator,
            prev_iterator: self.prev_iterator,
            done: self.done,
        }
    }
}

impl ListQuery {
    fn backwards(&self) -> bool {
        self.iterator.as_deref().is_some_and(|i| i.starts_with('-'))
    }

    /// Appends `AND key <op> cursor` and `ORDER BY key … LIMIT n+1` to the statement.
    pub(crate) fn apply(&self, q: &mut Query, key: &str) {
        self.apply_with(q, key, |p, op| format!("{key} {op} {p}"));
    }

    /// Like `apply`, for a list of messages keyed by their ids but scanned in seq order
    /// (`seq_key`, SQLite's message key). The writer gives out ids and seqs in the same
    /// order, so the two orders agree; the cursor, a message id, becomes the seq of the
    /// nearest message on its side (which works when that message itself is gone).
    pub(crate) fn apply_by_seq(&self, q: &mut Query, seq_key: &str) {
        self.apply_with(q, seq_key, |p, op| {
            if op == ">" {
                format!("{seq_key} > coalesce((SELECT seq FROM message WHERE id <= {p} ORDER BY id DESC LIMIT 1), -1)")
            } else {
                format!("{seq_key} < coalesce((SELECT seq FROM message WHERE id >= {p} ORDER BY id LIMIT 1), {})", i64::MAX)
            }
        });
    }

    /// Appends the cursor's condition (`after(placeholder, ">" or "<")`) and the order
    /// by `order_key`.
    fn apply_with(&self, q: &mut Query, order_key: &str, after: impl Fn(&str, &str) -> String) {
        // Walking backwards reverses the scan; `finish` restores display order.
        let ascending_scan = self.descending == self.backwards();
        if let Some(it) = &self.iterator {
            let cursor = it.strip_prefix('-').unwrap_or(it);
            let op = if ascending_scan { ">" } else { "<" };
            q.and(Arg::Text(cursor.to_string()), |p| after(p, op));
        }
        q.sql.push_str(&format!(
            " ORDER BY {order_key} {} LIMIT {}",
            if ascending_scan { "ASC" } else { "DESC" },
            self.limit + 1
        ));
    }

    /// Turns the `limit + 1` scanned rows into a page.
    pub(crate) fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        if self.backwards() {
            rows.reverse();
        }
        let iterator = match rows.last() {
            Some(last) => Some(key(last)),
            None => self
                .iterator
                .as_deref()
                .map(|i| i.trim_start_matches('-').to_string()),
        };
        let prev_iterator = rows.first().map(|first| format!("-{}", key(first)));
        Page {
            data: rows,
            iterator,
            prev_iterator,
            done: !more,
        }
    }
}
