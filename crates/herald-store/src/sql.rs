//! Statements built at run time (lists with optional filters), written once for both
//! backends: only the placeholder spelling and a few operators differ between them.

/// Which SQL spelling a statement is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bind value.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// A statement under construction and its bind values, in order.
#[derive(Debug)]
pub(crate) struct Query {
    pub sql: String,
    pub args: Vec<Arg>,
    pub dialect: Dialect,
}

impl Query {
    pub(crate) fn new(dialect: Dialect, sql: impl Into<String>) -> Query {
        Query {
            sql: sql.into(),
            args: Vec::new(),
            dialect,
        }
    }

    /// Adds a bind value and returns its placeholder (`?` or `$n`).
    pub(crate) fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${}", self.args.len()),
        }
    }

    pub(crate) fn bind_text(&mut self, text: impl Into<String>) -> String {
        self.bind(Arg::Text(text.into()))
    }

    /// Appends ` AND <condition>` where `condition` is built with the placeholder of
    /// `arg`.
    pub(crate) fn and(&mut self, arg: Arg, condition: impl FnOnce(&str) -> String) {
        let p = self.bind(arg);
        self.sql.push_str(" AND ");
        self.sql.push_str(&condition(&p));
    }

    /// The condition "the JSON array in text column `column` holds the string bound at
    /// placeholder `p`".
    pub(crate) fn json_array_contains(&self, column: &str, p: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => {
                format!("EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {p})")
            }
            Dialect::Postgres => format!("({column})::jsonb ? {p}"),
        }
    }
}
