//! Live queries: a query whose result set is followed; each refresh says what changed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use threads_views::{RowChanges, State};

use crate::crdt::{CRDT_VIEW, Crdt};
use crate::docs::{DOCS_VIEW, Docs};
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

impl LiveQuery {
    /// Whether the result set can be followed document by document: a query with no
    /// limit, offset or cursor (its result set is every matching document, so a changed
    /// document enters or leaves it alone). Other queries are run again after a change.
    pub fn incremental(&self) -> bool {
        self.query.limit.is_none() && self.query.offset == 0 && self.query.after.is_none()
    }

    /// The view this query reads.
    pub fn view(&self) -> &'static str {
        match self.source {
            Source::Documents => DOCS_VIEW,
            Source::Automerge => CRDT_VIEW,
        }
    }

    /// The documents of this query's collection that `changes` (one commit of the views)
    /// touched, by id; `None` when the query must run again (the collection itself
    /// changed, the view was rebuilt, or the query is not [incremental](Self::incremental)).
    pub fn changed_ids(&self, changes: &RowChanges) -> Option<BTreeSet<String>> {
        let view = self.view();
        if !self.incremental() || changes.is_reset(view) {
            return None;
        }
        let (docs, collection) = match self.source {
            // Documents are `d\0collection\0id`; the collection is `c\0collection`.
            Source::Documents => (b'd', Some(b'c')),
            // Documents as JSON are `j\0collection\0id`.
            Source::Automerge => (b'j', None),
        };
        let mut prefix = vec![docs, 0];
        prefix.extend_from_slice(self.collection.as_bytes());
        prefix.push(0);
        let mut meta = collection.map(|c| vec![c, 0]).unwrap_or_default();
        meta.extend_from_slice(self.collection.as_bytes());
        let mut ids = BTreeSet::new();
        for key in changes.keys(view) {
            if collection.is_some() && *key == meta {
                return None;
            }
            if let Some(id) = key.strip_prefix(prefix.as_slice()) {
                ids.insert(String::from_utf8(id.to_vec()).ok()?);
            }
        }
        Some(ids)
    }

    /// The documents `ids` in `state`, each with its value if it belongs to the result
    /// set (it exists and matches the filter), without changing this query.
    pub fn result_for(
        &self,
        state: &State,
        ids: &BTreeSet<String>,
    ) -> Vec<(String, Option<Value>)> {
        ids.iter()
            .map(|id| {
                let doc = match self.source {
                    Source::Documents => Docs::get(state, &self.collection, id).map(|(doc, _)| doc),
                    Source::Automerge => Crdt::get(state, &self.collection, id),
                };
                let doc =
                    doc.filter(|doc| self.query.filter.as_ref().is_none_or(|f| f.matches(doc)));
                (id.clone(), doc)
            })
            .collect()
    }

    /// The changes to the result set from the new state of some documents
    /// ([`LiveQuery::result_for`]), which the result set takes on.
    pub fn update_some(&mut self, docs: Vec<(String, Option<Value>)>) -> Vec<ResultChange> {
        let mut changes = Vec::new();
        for (id, doc) in docs {
            match (self.last.get(&id), doc) {
                (None, Some(doc)) => {
                    changes.push(ResultChange::Added {
                        id: id.clone(),
                        doc: doc.clone(),
                    });
                    self.last.insert(id, doc);
                }
                (Some(before), Some(doc)) => {
                    if *before != doc {
                        changes.push(ResultChange::Updated {
                            id: id.clone(),
                            doc: doc.clone(),
                        });
                        self.last.insert(id, doc);
                    }
                }
                (Some(_), None) => {
                    changes.push(ResultChange::Removed { id: id.clone() });
                    self.last.remove(&id);
                }
                (None, None) => {}
            }
        }
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
