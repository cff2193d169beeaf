//! Automerge collections: documents whose events carry automerge changes. Concurrent edits
//! merge (automerge's rules), whatever order the changes arrive in; the view keeps every
//! change and each document's current JSON, which queries read.
//!
//! Rows of the view:
//!
//! ```text
//! h \0 collection \0 id \0 change hash (32)   -> the change's bytes
//! j \0 collection \0 id                       -> the document as JSON
//! k \0 collection \0 id                       -> count of changes (u64 BE) ‖ heads
//! ```
//!
//! The rows are a set of changes and a function of that set, so the view is commutative.
//! The `k` row (how many changes are stored, and the document's heads, sorted) tells
//! whether a document kept in memory is the one the stored changes make: a change is
//! applied to the kept document instead of loading every change again, and a kept
//! document that no longer matches (the state was rolled back, the views rebuilt) is
//! loaded again.
//! A change's actor must be its event's author (the author's log id bytes), so the events
//! that could conflict over one (actor, seq) all come from one log, and apply in its
//! counter order everywhere.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use automerge::{AutoCommit, AutoSerde, Change};
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
#[derive(Clone)]
pub struct Crdt {
    name: String,
    /// Documents kept in memory (shared by clones).
    kept: Arc<Mutex<Kept>>,
}

impl std::fmt::Debug for Crdt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crdt")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How many automerge documents a [`Crdt`] view keeps in memory.
const KEPT_DOCUMENTS: usize = 256;

/// The documents kept: per (thread, collection, id), the document after its latest change
/// here, with the `k` rows before and after it and the change's hash (a check runs a
/// change, rolls it back, and the write applies it again: the kept document is then the
/// result already); the oldest goes first.
#[derive(Default)]
struct Kept {
    docs: HashMap<Vec<u8>, KeptDoc>,
    order: VecDeque<Vec<u8>>,
    /// How many times a document was loaded from its stored changes.
    loads: u64,
}

struct KeptDoc {
    doc: AutoCommit,
    before: Vec<u8>,
    after: Vec<u8>,
    change: [u8; 32],
}

impl Kept {
    fn take(&mut self, key: &[u8]) -> Option<KeptDoc> {
        self.docs.remove(key)
    }

    fn keep(&mut self, key: Vec<u8>, doc: KeptDoc) {
        if self.docs.insert(key.clone(), doc).is_none() {
            self.order.push_back(key);
        }
        while self.docs.len() > KEPT_DOCUMENTS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.docs.remove(&oldest);
        }
        if self.order.len() > 2 * KEPT_DOCUMENTS {
            // Keys taken out and not kept again linger in the order: drop them.
            let docs = &self.docs;
            self.order.retain(|k| docs.contains_key(k));
        }
    }
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

fn token_key(collection: &str, id: &str) -> Vec<u8> {
    let mut k = b"k\0".to_vec();
    k.extend_from_slice(&part(collection, id));
    k
}

/// The `k` row of a document: how many changes are stored, and its heads, sorted.
fn token(count: u64, doc: &mut AutoCommit) -> Vec<u8> {
    let mut heads: Vec<[u8; 32]> = doc.get_heads().iter().map(|h| h.0).collect();
    heads.sort_unstable();
    let mut out = count.to_be_bytes().to_vec();
    for head in heads {
        out.extend_from_slice(&head);
    }
    out
}

fn changes_prefix(collection: &str, id: &str) -> Vec<u8> {
    let mut k = b"h\0".to_vec();
    k.extend_from_slice(&part(collection, id));
    k.push(0);
    k
}

impl Crdt {
    /// An automerge view named `name` (usually [`CRDT_VIEW`]), with documents kept in
    /// memory of its own (clones share them). The documents are kept per thread: give
    /// each scope of a thread its own `Crdt::new`.
    pub fn new(name: impl Into<String>) -> Crdt {
        Crdt {
            name: name.into(),
            kept: Arc::default(),
        }
    }

    /// [`Crdt::document`], from the copy this view keeps in memory when it is the stored
    /// document (a clone instead of loading every change). `thread` is the thread whose
    /// views `state` belongs to.
    ///
    /// # Errors
    /// As [`Crdt::document`].
    pub fn document_kept(
        &self,
        thread: threads_id::ThreadId,
        state: &State,
        collection: &str,
        id: &str,
    ) -> Result<AutoCommit, DocError> {
        let stored = state.get(&token_key(collection, id)).unwrap_or_default();
        let mut kept_key = thread.to_bytes().to_vec();
        kept_key.extend_from_slice(&part(collection, id));
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.docs.get(&kept_key) {
            Some(doc) if doc.after == stored && !stored.is_empty() => Ok(doc.doc.clone()),
            _ => {
                drop(kept);
                Crdt::document(state, collection, id)
            }
        }
    }

    /// How many times a document was loaded from all its stored changes (instead of
    /// changed in memory): once per document in the usual case, again after the document
    /// left memory or its state was rolled back.
    pub fn loads(&self) -> u64 {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .loads
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
        let token_key = token_key(&collection, &id);
        let stored = state.get(&token_key).unwrap_or_default();
        if state.missed() {
            // Rows not in memory: the engine fetches them and runs this again. Nothing is
            // computed from what this run could not see.
            return Ok(());
        }
        let count = stored
            .get(..8)
            .and_then(|c| c.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        let mut kept_key = event.thread.to_bytes().to_vec();
        kept_key.extend_from_slice(&part(&collection, &id));
        let hash = change.hash().0;
        let mut change = change;
        let bytes = change.bytes().to_vec();
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(&kept_key);
        let doc = match kept {
            // The same change on the same state again (after a check): the result is kept.
            Some(kept) if kept.before == stored && kept.change == hash => kept.doc,
            // The kept document is the stored one: the change applies to it.
            Some(mut kept) if kept.after == stored => {
                // On an error the document is dropped (not kept): it may be half changed.
                kept.doc
                    .apply_changes([change])
                    .map_err(|e| Reject::new(format!("automerge: {e}")))?;
                kept.doc
            }
            _ => {
                let mut changes = stored_changes(state, &collection, &id)
                    .map_err(|e| Reject::new(e.to_string()))?;
                if state.missed() {
                    return Ok(());
                }
                changes.push(change);
                let mut doc = AutoCommit::new();
                doc.apply_changes(changes)
                    .map_err(|e| Reject::new(format!("automerge: {e}")))?;
                self.kept
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .loads += 1;
                doc
            }
        };
        let mut doc = doc;
        let json = serde_json::to_vec(&AutoSerde::from(&doc))
            .map_err(|e| Reject::new(format!("automerge: {e}")))?;
        let after = token(count + 1, &mut doc);
        state.put(key, bytes);
        state.put(json_key(&collection, &id), json);
        state.put(token_key, after.clone());
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keep(
                kept_key,
                KeptDoc {
                    doc,
                    before: stored,
                    after,
                    change: hash,
                },
            );
        Ok(())
    }

    /// Version 2: the `k` row.
    fn version(&self) -> u32 {
        2
    }

    fn resource(&self, event: &Event<'_>) -> Option<Vec<u8>> {
        let WireChange(collection, id, _) = serde_ipld_dagcbor::from_slice(event.data).ok()?;
        Some(part(&collection, &id))
    }
}
