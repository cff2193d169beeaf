//! Errors of the database layer.

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
