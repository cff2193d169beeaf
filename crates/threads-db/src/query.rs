//! Queries over a collection: filters, sorting, pagination with resumable cursors, and the
//! JSON form the API takes.
//!
//! ```
//! use threads_db::{Filter, Query};
//! use serde_json::json;
//!
//! let query: Query = serde_json::from_value(json!({
//!     "filter": {"and": [{"ge": ["age", 30]}, {"prefix": ["name", "A"]}]},
//!     "sort": [{"path": "age", "desc": true}],
//!     "limit": 10
//! }))?;
//! assert_eq!(query.limit, Some(10));
//! assert!(matches!(query.filter, Some(Filter::And(_))));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DocError;
use crate::json::{compare, equal, get, rank, valid_path};

/// A condition on documents. A comparison (`gt`, `ge`, `lt`, `le`) matches only values of
/// the same type as its operand (numbers with numbers, strings with strings); `ne` matches
/// documents where the value is missing or different; `prefix` matches strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// The value at the path equals the operand.
    Eq(String, Value),
    /// The value at the path is missing or differs from the operand.
    Ne(String, Value),
    /// The value is greater than the operand.
    Gt(String, Value),
    /// The value is greater than or equal to the operand.
    Ge(String, Value),
    /// The value is less than the operand.
    Lt(String, Value),
    /// The value is less than or equal to the operand.
    Le(String, Value),
    /// The value equals one of the operands.
    In(String, Vec<Value>),
    /// The path holds a value (`true`) or not (`false`).
    Exists(String, bool),
    /// The value is a string starting with the operand.
    Prefix(String, String),
    /// Every condition holds.
    And(Vec<Filter>),
    /// At least one condition holds.
    Or(Vec<Filter>),
}

impl Filter {
    /// Whether `doc` satisfies the condition.
    pub fn matches(&self, doc: &Value) -> bool {
        let ordered = |path: &str, operand: &Value, ok: fn(Ordering) -> bool| {
            get(doc, path).is_some_and(|v| rank(v) == rank(operand) && ok(compare(v, operand)))
        };
        match self {
            Filter::Eq(path, v) => get(doc, path).is_some_and(|x| equal(x, v)),
            Filter::Ne(path, v) => !get(doc, path).is_some_and(|x| equal(x, v)),
            Filter::Gt(path, v) => ordered(path, v, Ordering::is_gt),
            Filter::Ge(path, v) => ordered(path, v, Ordering::is_ge),
            Filter::Lt(path, v) => ordered(path, v, Ordering::is_lt),
            Filter::Le(path, v) => ordered(path, v, Ordering::is_le),
            Filter::In(path, vs) => get(doc, path).is_some_and(|x| vs.iter().any(|v| equal(x, v))),
            Filter::Exists(path, present) => get(doc, path).is_some() == *present,
            Filter::Prefix(path, p) => {
                matches!(get(doc, path), Some(Value::String(s)) if s.starts_with(p.as_str()))
            }
            Filter::And(all) => all.iter().all(|f| f.matches(doc)),
            Filter::Or(any) => any.iter().any(|f| f.matches(doc)),
        }
    }

    /// Checks every path.
    ///
    /// # Errors
    /// [`DocError::BadQuery`] for an empty path or an empty `and`/`or`.
    pub fn check(&self) -> Result<(), DocError> {
        match self {
            Filter::Eq(p, _)
            | Filter::Ne(p, _)
            | Filter::Gt(p, _)
            | Filter::Ge(p, _)
            | Filter::Lt(p, _)
            | Filter::Le(p, _)
            | Filter::In(p, _)
            | Filter::Exists(p, _)
            | Filter::Prefix(p, _) => {
                if valid_path(p) {
                    Ok(())
                } else {
                    Err(DocError::BadQuery(format!("bad path {p:?}")))
                }
            }
            Filter::And(fs) | Filter::Or(fs) => {
                if fs.is_empty() {
                    return Err(DocError::BadQuery("empty and/or".to_owned()));
                }
                fs.iter().try_for_each(Filter::check)
            }
        }
    }
}

/// A document's place in a query's order: its values at the sort paths, then its id.
pub(crate) type SortKey = (Vec<Option<Value>>, String);

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// The path to sort on.
    pub path: String,
    /// Descending instead of ascending.
    #[serde(default)]
    pub desc: bool,
}

/// A query: a filter, a sort, then a page. Documents are sorted on the sort keys (a missing
/// value sorts before every value, ascending), then by id (descending when the last sort
/// key is, so a one-key descending sort is exactly the ascending order reversed), before
/// the page is cut, so pages never overlap or skip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Which documents; all if `None`.
    #[serde(default)]
    pub filter: Option<Filter>,
    /// The order; by id if empty.
    #[serde(default)]
    pub sort: Vec<Sort>,
    /// At most this many documents.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Skip this many documents (after the cursor).
    #[serde(default)]
    pub offset: usize,
    /// Start after the document this cursor names (from [`QueryPage::next`]).
    #[serde(default)]
    pub after: Option<String>,
}

impl Query {
    /// Every document, by id.
    pub fn all() -> Query {
        Query::default()
    }

    /// The documents matching `filter`.
    pub fn filter(filter: Filter) -> Query {
        Query {
            filter: Some(filter),
            ..Query::default()
        }
    }

    /// Adds a sort key.
    #[must_use]
    pub fn sort(mut self, path: impl Into<String>, desc: bool) -> Query {
        self.sort.push(Sort {
            path: path.into(),
            desc,
        });
        self
    }

    /// Sets the limit.
    #[must_use]
    pub const fn limit(mut self, limit: usize) -> Query {
        self.limit = Some(limit);
        self
    }

    /// Sets the offset.
    #[must_use]
    pub const fn offset(mut self, offset: usize) -> Query {
        self.offset = offset;
        self
    }

    /// Continues after a cursor.
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Query {
        self.after = Some(cursor.into());
        self
    }

    /// Checks the filter and sort paths.
    ///
    /// # Errors
    /// [`DocError::BadQuery`].
    pub fn check(&self) -> Result<(), DocError> {
        if let Some(filter) = &self.filter {
            filter.check()?;
        }
        for sort in &self.sort {
            if !valid_path(&sort.path) {
                return Err(DocError::BadQuery(format!("bad sort path {:?}", sort.path)));
            }
        }
        if let Some(cursor) = &self.after {
            decode_cursor(cursor)?;
        }
        Ok(())
    }

    /// The sort key of a document: its values at the sort paths.
    pub(crate) fn key(&self, doc: &Value) -> Vec<Option<Value>> {
        self.sort
            .iter()
            .map(|s| get(doc, &s.path).cloned())
            .collect()
    }

    /// The (first sort value, id) a cursor names, if it is a well-formed cursor of a
    /// one-path sort.
    pub(crate) fn cursor_entry(&self, cursor: &str) -> Option<(Option<Value>, String)> {
        let (mut key, id) = decode_cursor(cursor).ok()?;
        (key.len() == 1 && self.sort.len() == 1).then(|| (key.remove(0), id))
    }

    /// Compares two (sort key, id) pairs in the query's order: by each sort key, then by
    /// id (descending when the last sort key is).
    pub(crate) fn cmp_keys(&self, a: &SortKey, b: &SortKey) -> Ordering {
        for (i, sort) in self.sort.iter().enumerate() {
            let order = match (&a.0[i], &b.0[i]) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => compare(x, y),
            };
            let order = if sort.desc { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        // Ties by id, in the direction of the last sort key: a one-key descending sort is
        // the ascending order reversed (an index read from its end).
        let by_id = a.1.as_bytes().cmp(b.1.as_bytes());
        if self.sort.last().is_some_and(|s| s.desc) {
            by_id.reverse()
        } else {
            by_id
        }
    }

    /// Sorts matching documents and cuts the page: the whole evaluation after filtering.
    pub(crate) fn page(&self, mut docs: Vec<(String, Value)>) -> Result<QueryPage, DocError> {
        let mut keyed: Vec<(SortKey, Value)> = docs
            .drain(..)
            .map(|(id, doc)| ((self.key(&doc), id), doc))
            .collect();
        keyed.sort_by(|a, b| self.cmp_keys(&a.0, &b.0));
        let start = match &self.after {
            Some(cursor) => {
                let after = decode_cursor(cursor)?;
                if after.0.len() != self.sort.len() {
                    return Err(DocError::BadQuery(
                        "the cursor is for another sort".to_owned(),
                    ));
                }
                keyed.partition_point(|(k, _)| self.cmp_keys(k, &after) != Ordering::Greater)
            }
            None => 0,
        };
        let rest = keyed.len().saturating_sub(start);
        let take = self
            .limit
            .unwrap_or(usize::MAX)
            .min(rest.saturating_sub(self.offset));
        let page: Vec<(SortKey, Value)> = keyed
            .into_iter()
            .skip(start + self.offset)
            .take(take)
            .collect();
        let more = start + self.offset + take < start + rest;
        let next = if more {
            page.last().map(|(k, _)| encode_cursor(k))
        } else {
            None
        };
        Ok(QueryPage {
            docs: page.into_iter().map(|((_, id), doc)| (id, doc)).collect(),
            next,
        })
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryPage {
    /// The documents, as (id, document), in the query's order.
    pub docs: Vec<(String, Value)>,
    /// A cursor to the next page, if there are more documents.
    pub next: Option<String>,
}

fn encode_cursor(key: &SortKey) -> String {
    let values: Vec<Value> = key
        .0
        .iter()
        .map(|v| match v {
            Some(v) => Value::Array(vec![v.clone()]),
            None => Value::Array(Vec::new()),
        })
        .collect();
    let text = Value::Array(vec![Value::Array(values), Value::String(key.1.clone())]).to_string();
    multibase::encode(multibase::Base::Base64Url, text.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<SortKey, DocError> {
    let bad = || DocError::BadQuery("malformed cursor".to_owned());
    let (_, bytes) = multibase::decode(cursor).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let Value::Array(parts) = value else {
        return Err(bad());
    };
    match parts.as_slice() {
        [Value::Array(values), Value::String(id)] => {
            let key = values
                .iter()
                .map(|v| match v {
                    Value::Array(one) if one.len() == 1 => Ok(Some(one[0].clone())),
                    Value::Array(none) if none.is_empty() => Ok(None),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()?;
            Ok((key, id.clone()))
        }
        _ => Err(bad()),
    }
}
