//! Live queries: a query whose result set is followed; each refresh says what changed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use threads_views::State;

use crate::crdt::Crdt;
use crate::docs::Docs;
use crate::error::DocError;
use crate::query::Query;

/// A change to a live query's result set.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum ResultChange {
    /// A document entered the result set.
    Added {
        /// Its id.
        id: String,
        /// The document.
        doc: Value,
    },
    /// A document in the result set changed.
    Updated {
        /// Its id.
        id: String,
        /// The document now.
        doc: Value,
    },
    /// A document left the result set (deleted, or no longer matching).
    Removed {
        /// Its id.
        id: String,
    },
}

/// Which view a live query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A document collection ([`Docs`]).
    Documents,
    /// An automerge collection ([`Crdt`]).
    Automerge,
}

/// A query whose result set is followed: [`LiveQuery::refresh`] it against the view's state
/// after every catch-up to get the changes since the last refresh.
#[derive(Debug, Clone)]
pub struct LiveQuery {
    source: Source,
    collection: String,
    query: Query,
    last: BTreeMap<String, Value>,
}

impl LiveQuery {
    /// Follows `query` over `collection` of `source`. The first refresh reports every
    /// document of the result set as added.
    ///
    /// # Errors
    /// [`DocError::BadQuery`].
    pub fn new(source: Source, collection: &str, query: Query) -> Result<LiveQuery, DocError> {
        query.check()?;
        Ok(LiveQuery {
            source,
            collection: collection.to_owned(),
            query,
            last: BTreeMap::new(),
        })
    }

    /// The result set as of the last refresh.
    pub fn current(&self) -> &BTreeMap<String, Value> {
        &self.last
    }

    /// The changes to the result set since the last refresh, in id order.
    ///
    /// # Errors
    /// As the query ([`DocError::UnknownCollection`] for a document collection that does
    /// not exist yet).
    pub fn refresh(&mut self, state: &State) -> Result<Vec<ResultChange>, DocError> {
        let now = self.result(state)?;
        Ok(self.update(now))
    }

    /// The result set in `state`, without changing this query (a read that may run
    /// again, see [`threads_views::Views::read`]).
    ///
    /// # Errors
    /// As [`LiveQuery::refresh`].
    pub fn result(&self, state: &State) -> Result<BTreeMap<String, Value>, DocError> {
        let page = match self.source {
            Source::Documents => Docs::query(state, &self.collection, &self.query)?,
            Source::Automerge => Crdt::query(state, &self.collection, &self.query)?,
        };
        Ok(page.docs.into_iter().collect())
    }

    /// The changes from the last result set to `now`, which becomes the last one.
    pub fn update(&mut self, now: BTreeMap<String, Value>) -> Vec<ResultChange> {
        let mut changes = Vec::new();
        for (id, doc) in &now {
            match self.last.get(id) {
                None => changes.push(ResultChange::Added {
                    id: id.clone(),
                    doc: doc.clone(),
                }),
                Some(before) if before != doc => changes.push(ResultChange::Updated {
                    id: id.clone(),
                    doc: doc.clone(),
                }),
                Some(_) => {}
            }
        }
        for id in self.last.keys() {
            if !now.contains_key(id) {
                changes.push(ResultChange::Removed { id: id.clone() });
            }
        }
        changes.sort_by(|a, b| id_of(a).cmp(id_of(b)));
        self.last = now;
        changes
    }
}

fn id_of(change: &ResultChange) -> &str {
    match change {
        ResultChange::Added { id, .. }
        | ResultChange::Updated { id, .. }
        | ResultChange::Removed { id } => id,
    }
}
