//! Payload filters: which messages an endpoint, a source's destination or a destination
//! takes, decided on the message itself (its payload and headers) at fan-out.
//!
//! A filter is a JSON object matched against a document (for messages,
//! `{"payload": …, "headers": {…}}`). Each key of a filter object is a field of the
//! document, or an operator:
//!
//! - `{"field": value}`: the field equals the value (a JSON object as value is a nested
//!   filter on the field's own fields, unless all its keys are operators);
//! - `{"field": {"$eq" | "$neq" | "$gt" | "$gte" | "$lt" | "$lte": value}}`: comparisons
//!   (numbers by value, strings by their bytes; values of different types never compare);
//! - `{"field": {"$in" | "$nin": [values]}}`, `{"field": {"$exists": true|false}}`,
//!   `{"field": {"$startsWith" | "$endsWith": "text"}}`;
//! - `{"$and": [filters]}`, `{"$or": [filters]}`, `{"$not": filter}`, anywhere a filter
//!   goes (at the top, or as a field's condition).
//!
//! Several keys in one object must all hold. When a field holds an array, a condition
//! holds if it holds for any element (`$eq` with an array value compares whole arrays;
//! `$neq`, `$nin` and `$exists: false` hold when no element matches). A missing field
//! matches only `$neq`, `$nin` and `$exists: false`.
//!
//! `Filter::parse` checks a filter once (when it is saved) and names the bad operator
//! and where it is; `Filter::matches` never fails.

use serde_json::{Map, Value};

/// Nesting a filter may have, at most.
pub const MAX_DEPTH: usize = 16;
/// Conditions a filter may hold, at most (so that evaluating one stays cheap).
pub const MAX_NODES: usize = 256;

/// A checked filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter(Node);

#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// All of these hold.
    All(Vec<Node>),
    /// One of these holds.
    Any(Vec<Node>),
    Not(Box<Node>),
    /// The value at `field` (of the object in hand) meets the condition.
    Field(String, Cond),
}

/// `$neq` and `$nin` are kept as `Not(Eq)` and `Not(In)`: a negation holds exactly
/// when its positive form does not (a missing field included).
#[derive(Clone, Debug, PartialEq)]
enum Cond {
    Eq(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Exists(bool),
    StartsWith(String),
    EndsWith(String),
    /// A nested filter on the field's own fields (or on each element's).
    Nested(Box<Node>),
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
}

/// Why a filter was refused: what is wrong and where (a path like `payload.order.$gte`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "at {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FilterError {}

const OPERATORS: &[&str] = &[
    "$eq",
    "$neq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$startsWith",
    "$endsWith",
    "$and",
    "$or",
    "$not",
];

struct Parser {
    nodes: usize,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError {
        path: path.to_string(),
        message: message.into(),
    })
}

impl Parser {
    fn count(&mut self, path: &str) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return fail(
                path,
                format!("a filter holds at most {MAX_NODES} conditions"),
            );
        }
        Ok(())
    }

    fn depth(path: &str, depth: usize) -> Result<(), FilterError> {
        if depth > MAX_DEPTH {
            return fail(path, format!("a filter nests at most {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    /// A filter object: every key a field or a logical operator.
    fn node(&mut self, value: &Value, path: &str, depth: usize) -> Result<Node, FilterError> {
        Self::depth(path, depth)?;
        let Value::Object(map) = value else {
            return fail(path, "a filter is a JSON object");
        };
        let mut all = Vec::with_capacity(map.len());
        for (key, v) in map {
            let here = join(path, key);
            self.count(&here)?;
            all.push(match key.as_str() {
                "$and" | "$or" => {
                    let list = self.list(v, &here, depth)?;
                    if key == "$and" {
                        Node::All(list)
                    } else {
                        Node::Any(list)
                    }
                }
                "$not" => Node::Not(Box::new(self.node(v, &here, depth + 1)?)),
                op if op.starts_with('$') => return fail(&here, unknown(op, true)),
                field => Node::Field(field.to_string(), self.cond(v, &here, depth + 1)?),
            });
        }
        Ok(match all.len() {
            1 => all.pop().expect("one"),
            _ => Node::All(all),
        })
    }

    fn list(&mut self, v: &Value, path: &str, depth: usize) -> Result<Vec<Node>, FilterError> {
        match v {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.node(item, &format!("{path}[{i}]"), depth + 1))
                .collect(),
            _ => fail(path, "takes a non-empty array of filters"),
        }
    }

    /// What a field must meet: a literal (equality), a nested filter, or operators.
    fn cond(&mut self, v: &Value, path: &str, depth: usize) -> Result<Cond, FilterError> {
        Self::depth(path, depth)?;
        let Value::Object(map) = v else {
            return Ok(Cond::Eq(v.clone()));
        };
        let operators = map.keys().filter(|k| k.starts_with('$')).count();
        if operators == 0 {
            return Ok(Cond::Nested(Box::new(self.node(v, path, depth)?)));
        }
        if operators != map.len() {
            return fail(
                path,
                "mixes operators with fields: put the fields in a nested filter of their own",
            );
        }
        self.operators(map, path, depth)
    }

    fn operators(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Cond, FilterError> {
        let mut all = Vec::with_capacity(map.len());
        for (op, operand) in map {
            let here = join(path, op);
            self.count(&here)?;
            all.push(match op.as_str() {
                "$eq" => Cond::Eq(operand.clone()),
                "$neq" => Cond::Not(Box::new(Cond::Eq(operand.clone()))),
                "$gt" | "$gte" | "$lt" | "$lte" => {
                    if !(operand.is_number() || operand.is_string()) {
                        return fail(&here, "compares with a number or a string");
                    }
                    let v = operand.clone();
                    match op.as_str() {
                        "$gt" => Cond::Gt(v),
                        "$gte" => Cond::Gte(v),
                        "$lt" => Cond::Lt(v),
                        _ => Cond::Lte(v),
                    }
                }
                "$in" | "$nin" => {
                    let Value::Array(items) = operand else {
                        return fail(&here, "takes an array of values");
                    };
                    let within = Cond::In(items.clone());
                    if op == "$in" {
                        within
                    } else {
                        Cond::Not(Box::new(within))
                    }
                }
                "$exists" => match operand {
                    Value::Bool(b) => Cond::Exists(*b),
                    _ => return fail(&here, "takes true or false"),
                },
                "$startsWith" | "$endsWith" => {
                    let Value::String(s) = operand else {
                        return fail(&here, "takes a string");
                    };
                    if op == "$startsWith" {
                        Cond::StartsWith(s.clone())
                    } else {
                        Cond::EndsWith(s.clone())
                    }
                }
                "$and" | "$or" => {
                    let Value::Array(items) = operand else {
                        return fail(&here, "takes a non-empty array of conditions");
                    };
                    if items.is_empty() {
                        return fail(&here, "takes a non-empty array of conditions");
                    }
                    let conds = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.cond(item, &format!("{here}[{i}]"), depth + 1))
                        .collect::<Result<Vec<_>, _>>()?;
                    if op == "$and" {
                        Cond::All(conds)
                    } else {
                        Cond::Any(conds)
                    }
                }
                "$not" => Cond::Not(Box::new(self.cond(operand, &here, depth + 1)?)),
                other => return fail(&here, unknown(other, false)),
            });
        }
        Ok(match all.len() {
            1 => all.pop().expect("one"),
            _ => Cond::All(all),
        })
    }
}

fn unknown(op: &str, top: bool) -> String {
    let known = if top {
        "$and, $or or $not (or a field name without $)".to_string()
    } else {
        OPERATORS.join(", ")
    };
    format!("unknown operator {op}; the operators are {known}")
}

impl Filter {
    /// Checks a filter document.
    pub fn parse(value: &Value) -> Result<Filter, FilterError> {
        Parser { nodes: 0 }.node(value, "", 0).map(Filter)
    }

    /// Whether `doc` passes the filter.
    pub fn matches(&self, doc: &Value) -> bool {
        node_matches(&self.0, doc)
    }
}

fn node_matches(node: &Node, here: &Value) -> bool {
    match node {
        Node::All(nodes) => nodes.iter().all(|n| node_matches(n, here)),
        Node::Any(nodes) => nodes.iter().any(|n| node_matches(n, here)),
        Node::Not(n) => !node_matches(n, here),
        Node::Field(name, cond) => cond_matches(cond, field(here, name)),
    }
}

/// A field of an object, or the element of an array that a numeric name indexes.
fn field<'a>(here: &'a Value, name: &str) -> Option<&'a Value> {
    match here {
        Value::Object(o) => o.get(name),
        Value::Array(items) => name.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

/// Whether the field's value (`None`: missing) meets the condition.
fn cond_matches(cond: &Cond, value: Option<&Value>) -> bool {
    match cond {
        Cond::Exists(want) => value.is_some_and(|v| !v.is_null()) == *want,
        Cond::Not(c) => !cond_matches(c, value),
        Cond::All(cs) => cs.iter().all(|c| cond_matches(c, value)),
        Cond::Any(cs) => cs.iter().any(|c| cond_matches(c, value)),
        _ => match value {
            None => false,
            // A condition on an array holds for the array as a whole (equality with an
            // array) or for any of its elements.
            // A nested filter may also look at the array itself, by index.
            Some(Value::Array(items)) => {
                matches!(cond, Cond::Eq(Value::Array(_)) | Cond::Nested(_) if one_value(cond, value.expect("some")))
                    || items.iter().any(|item| one_value(cond, item))
            }
            Some(v) => one_value(cond, v),
        },
    }
}

/// A positive condition on one value.
fn one_value(cond: &Cond, v: &Value) -> bool {
    use std::cmp::Ordering::*;
    match cond {
        Cond::Eq(want) => equal(v, want),
        Cond::Gt(w) => compare(v, w) == Some(Greater),
        Cond::Gte(w) => matches!(compare(v, w), Some(Greater | Equal)),
        Cond::Lt(w) => compare(v, w) == Some(Less),
        Cond::Lte(w) => matches!(compare(v, w), Some(Less | Equal)),
        Cond::In(list) => list.iter().any(|w| equal(v, w)),
        Cond::StartsWith(s) => v.as_str().is_some_and(|t| t.starts_with(s.as_str())),
        Cond::EndsWith(s) => v.as_str().is_some_and(|t| t.ends_with(s.as_str())),
        Cond::Nested(node) => node_matches(node, v),
        other => cond_matches(other, Some(v)),
    }
}

/// JSON equality, with numbers by value (1 and 1.0 are equal).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(filter: Value, doc: Value) -> bool {
        Filter::parse(&filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&doc)
    }

    #[test]
    fn every_operator_in_a_table() {
        let doc = json!({
            "type": "order.paid",
            "total": 4200,
            "ratio": 0.5,
            "customer": {"id": "cus_1", "country": "FR", "vip": false},
            "tags": ["new", "gift"],
            "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}],
            "note": null
        });
        let cases: &[(Value, bool)] = &[
            (json!({"type": "order.paid"}), true),
            (json!({"type": "order.void"}), false),
            (json!({"total": 4200.0}), true),
            (json!({"total": {"$eq": 4200}}), true),
            (json!({"total": {"$neq": 4200}}), false),
            (json!({"missing": {"$neq": 1}}), true),
            (json!({"total": {"$gt": 4199}}), true),
            (json!({"total": {"$gt": 4200}}), false),
            (json!({"total": {"$gte": 4200}}), true),
            (json!({"total": {"$lt": 4200}}), false),
            (json!({"total": {"$lte": 4200}}), true),
            (json!({"ratio": {"$gt": 0.25, "$lt": 1}}), true),
            (json!({"type": {"$gt": "order.a"}}), true),
            (json!({"total": {"$gt": "1"}}), false),
            (
                json!({"customer": {"country": {"$in": ["FR", "DE"]}}}),
                true,
            ),
            (
                json!({"customer": {"country": {"$nin": ["FR", "DE"]}}}),
                false,
            ),
            (json!({"missing": {"$nin": ["x"]}}), true),
            (json!({"customer": {"id": {"$exists": true}}}), true),
            (json!({"customer": {"email": {"$exists": true}}}), false),
            (json!({"customer": {"email": {"$exists": false}}}), true),
            (json!({"note": {"$exists": false}}), true),
            (json!({"type": {"$startsWith": "order."}}), true),
            (json!({"type": {"$endsWith": ".paid"}}), true),
            (json!({"type": {"$endsWith": ".void"}}), false),
            (json!({"total": {"$startsWith": "42"}}), false),
            (
                json!({"$or": [{"total": {"$gt": 10000}}, {"customer": {"vip": false}}]}),
                true,
            ),
            (
                json!({"$or": [{"total": {"$gt": 10000}}, {"customer": {"vip": true}}]}),
                false,
            ),
            (
                json!({"$and": [{"total": {"$gt": 100}}, {"type": "order.paid"}]}),
                true,
            ),
            (json!({"$not": {"type": "order.paid"}}), false),
            (json!({"total": {"$not": {"$lt": 100}}}), true),
            (
                json!({"total": {"$or": [{"$lt": 100}, {"$gt": 4000}]}}),
                true,
            ),
            (
                json!({"total": {"$and": [{"$gt": 100}, {"$lt": 200}]}}),
                false,
            ),
            // Arrays: any element, or the whole array with an array value.
            (json!({"tags": "gift"}), true),
            (json!({"tags": {"$in": ["gift", "x"]}}), true),
            (json!({"tags": {"$nin": ["gift"]}}), false),
            (json!({"tags": ["new", "gift"]}), true),
            (json!({"tags": ["gift", "new"]}), false),
            (json!({"lines": {"qty": {"$gte": 3}}}), true),
            (json!({"lines": {"sku": "c"}}), false),
            (json!({"lines": {"sku": "b", "qty": 3}}), true),
            (json!({"lines": {"sku": "a", "qty": 3}}), false),
            // A numeric key on an array names the element at that index.
            (json!({"lines": {"1": {"sku": "b"}}}), true),
            (json!({"lines": {"0": {"sku": "b"}}}), false),
            (json!({"tags": {"0": "new"}}), true),
            (json!({"tags": {"5": {"$exists": false}}}), true),
            // Nested paths, and several keys that must all hold.
            (
                json!({"customer": {"country": "FR", "vip": false}, "total": {"$gte": 1}}),
                true,
            ),
            (json!({"customer": {"country": "FR", "vip": true}}), false),
            (json!({"customer": {"id": {"deeper": 1}}}), false),
            (json!({}), true),
        ];
        for (filter, want) in cases {
            assert_eq!(check(filter.clone(), doc.clone()), *want, "{filter}");
        }
    }

    #[test]
    fn bad_filters_name_the_operator_and_where_it_is() {
        let cases: &[(Value, &str, &str)] = &[
            (json!([]), "", "a filter is a JSON object"),
            (
                json!({"payload": {"total": {"$regex": "x"}}}),
                "payload.total.$regex",
                "unknown operator $regex",
            ),
            (json!({"$nor": []}), "$nor", "unknown operator $nor"),
            (json!({"a": {"$in": 1}}), "a.$in", "takes an array"),
            (
                json!({"a": {"$exists": "yes"}}),
                "a.$exists",
                "takes true or false",
            ),
            (
                json!({"a": {"$gt": [1]}}),
                "a.$gt",
                "compares with a number or a string",
            ),
            (
                json!({"a": {"$startsWith": 1}}),
                "a.$startsWith",
                "takes a string",
            ),
            (json!({"$or": []}), "$or", "non-empty array"),
            (json!({"$or": [1]}), "$or[0]", "a filter is a JSON object"),
            (
                json!({"a": {"$gt": 1, "b": 2}}),
                "a",
                "mixes operators with fields",
            ),
        ];
        for (filter, path, message) in cases {
            let err = Filter::parse(filter).expect_err(&filter.to_string());
            assert_eq!(err.path, *path, "{filter}: {err}");
            assert!(err.message.contains(message), "{filter}: {err}");
        }
    }

    #[test]
    fn filters_are_bounded_in_depth_and_size() {
        let mut deep = json!({"x": 1});
        for _ in 0..MAX_DEPTH + 1 {
            deep = json!({"a": deep});
        }
        assert!(Filter::parse(&deep)
            .unwrap_err()
            .message
            .contains("nests at most"));
        let wide: Map<String, Value> = (0..MAX_NODES + 1)
            .map(|i| (format!("f{i}"), json!(i)))
            .collect();
        assert!(Filter::parse(&Value::Object(wide))
            .unwrap_err()
            .message
            .contains("at most"));
    }
}
