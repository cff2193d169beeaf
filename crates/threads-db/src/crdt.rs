//! Automerge collections: documents whose events carry automerge changes. Concurrent edits
//! merge (automerge's rules), whatever order the changes arrive in; the view keeps every
//! change and each document's current JSON, which queries read.
//!
//! Rows of the view:
//!
//! ```text
//! h \0 collection \0 id \0 change hash (32)   -> the change's bytes
//! j \0 collection \0 id                       -> the document as JSON
//! ```
//!
//! The rows are a set of changes and a function of that set, so the view is commutative.
//! A change's actor must be its event's author (the author's log id bytes), so the events
//! that could conflict over one (actor, seq) all come from one log, and apply in its
//! counter order everywhere.

use automerge::{AutoCommit, AutoSerde, Automerge, Change};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use serde_json::Value;
use threads_views::{Event, Reducer, Reject, State, ViewKind};

use crate::error::DocError;
use crate::query::{Query, QueryPage};

/// The default name of the automerge view.
pub const CRDT_VIEW: &str = "crdt";

#[derive(Serialize, Deserialize)]
struct WireChange(String, String, ByteBuf);

/// The automerge view: a [`Reducer`] over automerge changes, and the functions that read its
/// state.
#[derive(Debug, Clone)]
pub struct Crdt {
    name: String,
}

impl Default for Crdt {
    fn default() -> Crdt {
        Crdt::new(CRDT_VIEW)
    }
}

fn part(collection: &str, id: &str) -> Vec<u8> {
    let mut k = collection.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn json_key(collection: &str, id: &str) -> Vec<u8> {
    let mut k = b"j\0".to_vec();
    k.extend_from_slice(&part(collection, id));
    k
}

fn changes_prefix(collection: &str, id: &str) -> Vec<u8> {
    let mut k = b"h\0".to_vec();
    k.extend_from_slice(&part(collection, id));
    k.push(0);
    k
}

impl Crdt {
    /// An automerge view named `name` (usually [`CRDT_VIEW`]).
    pub fn new(name: impl Into<String>) -> Crdt {
        Crdt { name: name.into() }
    }

    /// The operation that adds `change` to document `id` of `collection`.
    pub fn change(collection: &str, id: &str, change: &Change) -> Vec<u8> {
        let mut change = change.clone();
        serde_ipld_dagcbor::to_vec(&WireChange(
            collection.to_owned(),
            id.to_owned(),
            ByteBuf::from(change.bytes().to_vec()),
        ))
        .unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    /// The collection and document an operation of this view changes (`None` if the bytes
    /// are not an operation).
    pub fn target(op: &[u8]) -> Option<(String, String)> {
        let WireChange(collection, id, _) = serde_ipld_dagcbor::from_slice(op).ok()?;
        Some((collection, id))
    }

    /// The document as automerge holds it, to make the next change on (empty if there is
    /// none yet).
    ///
    /// # Errors
    /// [`DocError::Automerge`] if stored changes do not load.
    pub fn document(state: &State, collection: &str, id: &str) -> Result<AutoCommit, DocError> {
        let changes = stored_changes(state, collection, id)?;
        let mut doc = AutoCommit::new();
        doc.apply_changes(changes)
            .map_err(|e| DocError::Automerge(e.to_string()))?;
        Ok(doc)
    }

    /// The document as JSON.
    pub fn get(state: &State, collection: &str, id: &str) -> Option<Value> {
        serde_json::from_slice(&state.get(&json_key(collection, id))?).ok()
    }

    /// Runs a query over a collection's documents (as JSON; no indexes: a full scan).
    ///
    /// # Errors
    /// [`DocError::BadQuery`].
    pub fn query(state: &State, collection: &str, query: &Query) -> Result<QueryPage, DocError> {
        query.check()?;
        let mut prefix = b"j\0".to_vec();
        prefix.extend_from_slice(collection.as_bytes());
        prefix.push(0);
        let skip = prefix.len();
        let docs = state
            .prefix(&prefix)
            .filter_map(|(k, v)| {
                let id = String::from_utf8(k[skip..].to_vec()).ok()?;
                let doc: Value = serde_json::from_slice(&v).ok()?;
                query
                    .filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&doc))
                    .then_some((id, doc))
            })
            .collect();
        query.page(docs)
    }
}

fn stored_changes(state: &State, collection: &str, id: &str) -> Result<Vec<Change>, DocError> {
    state
        .prefix(&changes_prefix(collection, id))
        .map(|(_, bytes)| Change::from_bytes(bytes).map_err(|e| DocError::Automerge(e.to_string())))
        .collect()
}

impl Reducer for Crdt {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ViewKind {
        ViewKind::Commutative
    }

    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
        let WireChange(collection, id, bytes) = serde_ipld_dagcbor::from_slice(event.data)
            .map_err(|e| Reject::new(format!("not an automerge operation: {e}")))?;
        if collection.is_empty() || collection.contains('\0') || id.is_empty() || id.contains('\0')
        {
            return Err(Reject::new("bad collection or document id"));
        }
        let change = Change::from_bytes(bytes.into_vec())
            .map_err(|e| Reject::new(format!("not an automerge change: {e}")))?;
        // A change is its author's: its actor is the author's log id. So a writer cannot
        // forge another's changes, and two changes with one (actor, seq) can only come
        // from one log, whose events apply in counter order on every peer: the first is
        // kept and the second refused, the same way everywhere.
        if change.actor_id().to_bytes() != event.author().to_bytes().as_slice() {
            return Err(Reject::new(format!(
                "the change's actor is not its author {}",
                event.author()
            )));
        }
        let mut key = changes_prefix(&collection, &id);
        key.extend_from_slice(&change.hash().0);
        if state.get(&key).is_some() {
            return Ok(());
        }
        let mut change = change;
        state.put(key, change.bytes().to_vec());
        let changes =
            stored_changes(state, &collection, &id).map_err(|e| Reject::new(e.to_string()))?;
        let mut doc = Automerge::new();
        doc.apply_changes(changes)
            .map_err(|e| Reject::new(format!("automerge: {e}")))?;
        let json = serde_json::to_vec(&AutoSerde::from(&doc))
            .map_err(|e| Reject::new(format!("automerge: {e}")))?;
        state.put(json_key(&collection, &id), json);
        Ok(())
    }

    fn resource(&self, event: &Event<'_>) -> Option<Vec<u8>> {
        let WireChange(collection, id, _) = serde_ipld_dagcbor::from_slice(event.data).ok()?;
        Some(part(&collection, &id))
    }
}
