//! The change feed: per-operation changes of a thread's events, in the thread's order,
//! lossless and resumable from a cursor, with refused operations marked.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use threads_acl::AclViews;
use threads_id::LogId;
use threads_log::EventOrder;
use threads_store::Store;
use threads_views::{Batch, Cursor, EVENT_LEVEL, Kv, Subscription};
use tokio::sync::Mutex as AsyncMutex;

use crate::crdt::{CRDT_VIEW, Crdt};
use crate::db::KV_VIEW;
use crate::docs::{DOCS_VIEW, DocOp};
use crate::error::DbError;

/// What a document operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocAction {
    /// A document created.
    Create,
    /// A document replaced.
    Save,
    /// A document deleted.
    Delete,
    /// A collection created.
    CreateCollection,
    /// A collection's schema replaced.
    SetSchema,
    /// An index added to a collection.
    AddIndex,
    /// A collection deleted, with its documents and indexes.
    DropCollection,
}

/// What one operation of an event does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    /// A key-value put (`value` set) or delete.
    Kv {
        /// The key.
        key: Vec<u8>,
        /// The value put, `None` for a delete.
        value: Option<Vec<u8>>,
    },
    /// A document or collection operation.
    Doc {
        /// The collection.
        collection: String,
        /// The document (`None` for an operation on the collection itself).
        id: Option<String>,
        /// What it does.
        action: DocAction,
        /// The document written (create and save).
        doc: Option<Value>,
    },
    /// An automerge change to a document (read the document with `Db::crdt`).
    Automerge {
        /// The collection.
        collection: String,
        /// The document.
        id: String,
    },
    /// An operation of another view (the ACL, a custom view), or one that does not decode
    /// (then it was refused).
    Other {
        /// The view it addresses.
        view: String,
    },
}

/// One operation of an event, with its fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Its position in the event's batch.
    pub index: u32,
    /// The view it addresses.
    pub view: String,
    /// What it does.
    pub kind: ChangeKind,
    /// Why it was not applied, if it was not: every operation of a refused event is
    /// marked (events apply whole or not at all).
    pub rejected: Option<String>,
}

/// The changes of one event, in batch order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventChanges {
    /// The event's place in the thread's order.
    pub order: EventOrder,
    /// Its operations; empty for a compacted event (its operations were all superseded)
    /// or a payload that is not a batch (then `rejected` says so).
    pub changes: Vec<Change>,
    /// Why the whole event was refused before its operations were looked at (a time that
    /// does not increase in its log, a payload that is not a batch).
    pub rejected: Option<String>,
    /// The feed's cursor after this event: [`Db::changes`](crate::Db::changes) from it
    /// resumes with the next one.
    pub cursor: Cursor,
}

impl EventChanges {
    /// The event's author.
    pub const fn author(&self) -> LogId {
        self.order.log
    }
}

/// The change feed of a thread ([`Db::changes`](crate::Db::changes)): every applied event,
/// once, in the thread's order as events become available (an event that arrives late is
/// delivered when it arrives), each with its operations and their fate as of when it was
/// applied. Read from the store, so a slow reader never misses an event.
pub struct Changes<S> {
    events: Subscription<S>,
    views: Arc<AsyncMutex<AclViews<S>>>,
}

impl<S> std::fmt::Debug for Changes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> Changes<S> {
    pub(crate) fn new(events: Subscription<S>, views: Arc<AsyncMutex<AclViews<S>>>) -> Changes<S> {
        Changes { events, views }
    }

    /// The cursor after the last event returned.
    pub fn cursor(&self) -> &Cursor {
        self.events.cursor()
    }

    /// The next event's changes, waiting until there is one. `Ok(None)` once the
    /// database was shut down and every applied event was delivered.
    ///
    /// # Errors
    /// A store error or an unreadable entry.
    pub async fn next(&mut self) -> Result<Option<EventChanges>, DbError> {
        let Some(event) = self.events.next().await? else {
            return Ok(None);
        };
        let rejections = self.views.lock().await.rejections_of(&event.order).await?;
        let whole = rejections
            .iter()
            .find(|r| r.view == EVENT_LEVEL)
            .map(|r| r.reason.clone());
        let batch = event.payload.as_deref().and_then(Batch::decode);
        let changes = batch.map_or_else(Vec::new, |batch| {
            batch
                .ops()
                .iter()
                .enumerate()
                .map(|(index, (view, data))| Change {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    view: view.clone(),
                    kind: describe(view, data),
                    rejected: whole.clone().or_else(|| {
                        rejections
                            .iter()
                            .find(|r| &r.view == view)
                            .map(|r| r.reason.clone())
                    }),
                })
                .collect()
        });
        Ok(Some(EventChanges {
            order: event.order,
            changes,
            rejected: whole,
            cursor: event.cursor,
        }))
    }
}

/// What the operation `data` of `view` does, as far as its bytes tell.
fn describe(view: &str, data: &[u8]) -> ChangeKind {
    let other = || ChangeKind::Other {
        view: view.to_owned(),
    };
    match view {
        KV_VIEW => {
            Kv::decode(data).map_or_else(other, |(key, value)| ChangeKind::Kv { key, value })
        }
        DOCS_VIEW => match DocOp::decode(data) {
            Ok(op) => doc_change(op),
            Err(_) => other(),
        },
        CRDT_VIEW => Crdt::target(data).map_or_else(other, |(collection, id)| {
            ChangeKind::Automerge { collection, id }
        }),
        _ => other(),
    }
}

fn doc_change(op: DocOp) -> ChangeKind {
    let parse = |doc: &str| serde_json::from_str(doc).ok();
    let (collection, id, action, doc) = match op {
        DocOp::CreateCollection { name, .. } => (name, None, DocAction::CreateCollection, None),
        DocOp::SetSchema { name, .. } => (name, None, DocAction::SetSchema, None),
        DocOp::AddIndex { collection, .. } => (collection, None, DocAction::AddIndex, None),
        DocOp::DropCollection { name } => (name, None, DocAction::DropCollection, None),
        DocOp::Create {
            collection,
            id,
            doc,
        } => (collection, Some(id), DocAction::Create, parse(&doc)),
        DocOp::Save {
            collection,
            id,
            doc,
        } => (collection, Some(id), DocAction::Save, parse(&doc)),
        DocOp::Delete { collection, id } => (collection, Some(id), DocAction::Delete, None),
    };
    ChangeKind::Doc {
        collection,
        id,
        action,
        doc,
    }
}
