//! Errors of the database layer.

use threads_acl::AclError;
use threads_id::ThreadId;
use threads_net::NetError;
use threads_store::StoreError;
use threads_views::{Refused, ViewError};

/// What can go wrong with documents and queries. Every error leaves the data unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// No collection of that name.
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    /// A collection of that name exists already.
    #[error("collection {0:?} exists already")]
    CollectionExists(String),
    /// A name that is not 1 to 64 of `A-Z a-z 0-9 _ -`, or a bad document id.
    #[error("bad name {0:?}: use 1 to 64 of A-Z a-z 0-9 _ - (ids: 1 to 256 bytes, no NUL)")]
    BadName(String),
    /// The schema is not a valid JSON Schema.
    #[error("bad schema: {0}")]
    BadSchema(String),
    /// The document is not JSON, or not an object.
    #[error("bad document: {0}")]
    BadDocument(String),
    /// The document does not satisfy the collection's schema.
    #[error("document {id:?} violates the schema of {collection:?} (version {version}): {reason}")]
    SchemaViolation {
        /// The collection.
        collection: String,
        /// The document.
        id: String,
        /// The schema version.
        version: u32,
        /// What is wrong.
        reason: String,
    },
    /// A create of a document that exists.
    #[error("document {id:?} exists in {collection:?}")]
    Exists {
        /// The collection.
        collection: String,
        /// The document.
        id: String,
    },
    /// A save or delete of a document that does not exist.
    #[error("no document {id:?} in {collection:?}")]
    NotFound {
        /// The collection.
        collection: String,
        /// The document.
        id: String,
    },
    /// A unique index already holds the value for another document.
    #[error("unique index {index:?} of {collection:?}: the value of {id:?} is taken by {holder:?}")]
    UniqueViolation {
        /// The collection.
        collection: String,
        /// The index.
        index: String,
        /// The document written.
        id: String,
        /// The document that holds the value.
        holder: String,
    },
    /// An index of that name exists already.
    #[error("index {0:?} exists already")]
    IndexExists(String),
    /// A malformed query (bad path, bad cursor, unknown field in its JSON form).
    #[error("bad query: {0}")]
    BadQuery(String),
    /// Bytes that are not a document operation.
    #[error("malformed document operation: {0}")]
    Malformed(String),
    /// An automerge change that does not apply.
    #[error("automerge: {0}")]
    Automerge(String),
}

/// What can go wrong in a [`Db`](crate::Db).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The thread is not one of this peer's.
    #[error("unknown thread {0}")]
    UnknownThread(ThreadId),
    /// A document operation or query was refused.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// This peer may not write: it holds no read key of the current epoch (a follower, or
    /// left out by a rotation).
    #[error("this peer cannot write to thread {0}: it holds no current read key")]
    CannotWrite(ThreadId),
    /// Access control refuses the write (a reader writing, a member without the role on a
    /// document, a non-editor changing roles or inviting): nothing was stored.
    #[error("forbidden in thread {thread}: {}", describe(refused))]
    Forbidden {
        /// The thread.
        thread: ThreadId,
        /// Every refused operation, with why.
        refused: Vec<Refused>,
    },
    /// The views would refuse operations of the write (a document that exists, a unique
    /// value taken, also by an earlier operation of the same transaction): nothing was
    /// stored.
    #[error("refused in thread {thread}: {}", describe(refused))]
    Rejected {
        /// The thread.
        thread: ThreadId,
        /// Every refused operation, with why.
        refused: Vec<Refused>,
    },
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The views failed.
    #[error(transparent)]
    Views(#[from] ViewError),
    /// Access control failed (a bad invite, say).
    #[error(transparent)]
    Acl(#[from] AclError),
    /// The write was interrupted: the task committing its group stopped (it was cancelled,
    /// or the database shut down). The write may or may not have been stored.
    #[error("a write to thread {0} was interrupted; it may or may not have been stored")]
    Interrupted(ThreadId),
    /// The group commit this write was part of failed; nothing of the group was stored
    /// unless the failure came after the store (then the entries apply at the next
    /// catch-up).
    #[error("group commit failed: {0}")]
    Group(String),
    /// The write is larger than an entry may carry
    /// ([`threads_log::MAX_PAYLOAD_BYTES`]): nothing was stored.
    #[error("the write has {size} bytes, more than the {max} an entry may carry")]
    TooLarge {
        /// The encoded batch's size.
        size: usize,
        /// The most an entry carries.
        max: usize,
    },
    /// A custom view's name is taken (by a built-in view or another custom view).
    #[error("the view name {0:?} is taken")]
    ViewName(String),
    /// The clock refused a time.
    #[error("clock: {0}")]
    Clock(String),
    /// An invalid key.
    #[error("key: {0}")]
    Key(String),
    /// A backup could not be made or opened (not a backup, a wrong passphrase, damaged).
    #[error("backup: {0}")]
    Backup(String),
    /// A CAR archive could not be written or was refused ([`Db::import_car`]).
    ///
    /// [`Db::import_car`]: crate::Db::import_car
    #[error("archive: {0}")]
    Car(#[from] threads_net::car::CarError),
}

fn describe(refused: &[Refused]) -> String {
    let parts: Vec<String> = refused
        .iter()
        .map(|r| format!("operation {} ({}): {}", r.index, r.view, r.reason))
        .collect();
    parts.join("; ")
}
