//! Transactions (several operations as one event) and automerge edits: built here,
//! written by the write path (`write.rs`).

use serde_json::Value;
use threads_id::ThreadId;
use threads_store::Store;
use threads_views::{Batch, Kv};

use crate::crdt::{CRDT_VIEW, Crdt};
use crate::db::{Db, KV_VIEW};
use crate::docs::{DOCS_VIEW, DocOp};
use crate::error::{DbError, DocError};

impl<S: Store + 'static> Db<S> {
    /// A transaction: writes collected and written as one event.
    pub fn transaction(&self, thread: ThreadId) -> Transaction<'_, S> {
        Transaction {
            db: self,
            thread,
            batch: Batch::new(),
            docs: Vec::new(),
        }
    }

    /// Changes an automerge document: `edit` makes changes on the current document, which
    /// are written as one event.
    ///
    /// # Errors
    /// [`DbError::UnknownThread`], a write error, or [`DocError::Automerge`].
    pub async fn change_crdt(
        &self,
        thread: ThreadId,
        collection: &str,
        id: &str,
        edit: impl FnOnce(&mut automerge::AutoCommit) -> Result<(), automerge::AutomergeError>,
    ) -> Result<u64, DbError> {
        let mut doc = {
            let views = self.views(thread).await?;
            let mut views = views.lock().await;
            views
                .read(CRDT_VIEW, |state| {
                    self.inner.crdt.document_kept(thread, state, collection, id)
                })
                .await??
        };
        doc.set_actor(automerge::ActorId::from(self.inner.me.log_id().to_bytes()));
        edit(&mut doc).map_err(|e| DocError::Automerge(e.to_string()))?;
        doc.commit();
        let Some(change) = doc.get_last_local_change() else {
            return Err(DocError::Automerge("the edit changed nothing".to_owned()).into());
        };
        self.write(
            thread,
            Batch::new().with(CRDT_VIEW, Crdt::change(collection, id, &change)),
        )
        .await
    }
}

/// Writes collected to be written as one event ([`Db::transaction`]).
#[must_use = "a transaction does nothing until committed"]
pub struct Transaction<'a, S: Store + 'static> {
    db: &'a Db<S>,
    thread: ThreadId,
    batch: Batch,
    docs: Vec<DocOp>,
}

impl<S: Store + 'static> std::fmt::Debug for Transaction<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("thread", &self.thread)
            .field("operations", &self.batch.ops().len())
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> Transaction<'_, S> {
    /// Sets `key` to `value` in the key-value view.
    pub fn put(mut self, key: &[u8], value: &[u8]) -> Self {
        self.batch.push(KV_VIEW, Kv::put(key, value));
        self
    }

    /// Deletes `key` from the key-value view.
    pub fn del(mut self, key: &[u8]) -> Self {
        self.batch.push(KV_VIEW, Kv::del(key));
        self
    }

    /// A document operation.
    pub fn doc(mut self, op: DocOp) -> Self {
        self.batch.push(DOCS_VIEW, op.encode());
        self.docs.push(op);
        self
    }

    /// Creates a collection with a JSON Schema.
    pub fn create_collection(self, name: &str, schema: &Value) -> Self {
        self.doc(DocOp::CreateCollection {
            name: name.to_owned(),
            schema: schema.to_string(),
        })
    }

    /// Deletes a collection with its documents and indexes (the delete role).
    pub fn drop_collection(self, name: &str) -> Self {
        self.doc(DocOp::DropCollection {
            name: name.to_owned(),
        })
    }

    /// Creates a document.
    pub fn create(self, collection: &str, id: &str, doc: &Value) -> Self {
        self.doc(DocOp::Create {
            collection: collection.to_owned(),
            id: id.to_owned(),
            doc: doc.to_string(),
        })
    }

    /// Replaces a document.
    pub fn save(self, collection: &str, id: &str, doc: &Value) -> Self {
        self.doc(DocOp::Save {
            collection: collection.to_owned(),
            id: id.to_owned(),
            doc: doc.to_string(),
        })
    }

    /// Deletes a document.
    pub fn delete(self, collection: &str, id: &str) -> Self {
        self.doc(DocOp::Delete {
            collection: collection.to_owned(),
            id: id.to_owned(),
        })
    }

    /// Writes everything as one event, and returns its counter in this peer's log. The
    /// write path checks each operation against the state as the earlier ones change it; a
    /// refused document operation (a schema violation, an unknown collection, a taken
    /// unique value) refuses the whole event, and nothing is written.
    ///
    /// # Errors
    /// A [`DocError`] for the first document operation refused, or as [`Db::write`].
    pub async fn commit(self) -> Result<u64, DbError> {
        let Transaction {
            db,
            thread,
            batch,
            docs,
        } = self;
        match db.write(thread, batch).await {
            Err(DbError::Rejected { thread, refused })
                if refused.iter().any(|r| r.view == DOCS_VIEW) =>
            {
                // Checked in the write path, which names each refusal in words; its typed
                // error, from the same check against the state the write was refused in.
                // (Checking here first would wait for the views, which a committer at work
                // holds for several groups.)
                match typed_refusal(db, thread, &docs).await? {
                    Some(error) => Err(DbError::Doc(error)),
                    None => Err(DbError::Rejected { thread, refused }),
                }
            }
            other => other,
        }
    }
}

/// The first of `docs` the documents' state refuses, with its typed error; `None` if the
/// state admits them all now (it changed since the write was refused).
async fn typed_refusal<S: Store + 'static>(
    db: &Db<S>,
    thread: ThreadId,
    docs: &[DocOp],
) -> Result<Option<DocError>, DbError> {
    let views = db.views(thread).await?;
    let mut views = views.lock().await;
    let checker = &db.inner.docs;
    let created: Vec<&str> = docs
        .iter()
        .filter_map(|op| match op {
            DocOp::CreateCollection { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    Ok(views
        .read(DOCS_VIEW, |state| {
            docs.iter().find_map(|op| match checker.check(state, op) {
                Ok(()) => None,
                // An operation on a collection this transaction creates is checked when
                // it applies.
                Err(DocError::UnknownCollection(name)) if created.contains(&name.as_str()) => None,
                Err(error) => Some(error),
            })
        })
        .await?)
}
