//! The threads-rs database: documents with schemas, indexes and queries, automerge
//! collections and live queries, over the views of threads-views.
//!
//! - [`Docs`]: the document view: collections of JSON documents, each with a JSON Schema;
//!   creating a collection, changing its schema and adding indexes are events in the
//!   thread, like document writes ([`DocOp`]).
//! - [`Query`] and [`Filter`]: eq, ne, gt, ge, lt, le, in, exists, prefix, and/or; sorting
//!   before pagination; limit, offset and cursors; a JSON form; [`Docs::explain`].
//! - [`Crdt`]: automerge collections.
//! - [`LiveQuery`]: the changes to a query's result set.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod crdt;
mod db;
mod docs;
mod error;
pub mod json;
mod live;
mod query;

pub use crdt::{CRDT_VIEW, Crdt};
pub use db::{Db, DbConfig, DbError, KV_VIEW, Transaction};
pub use docs::{Collection, DOCS_VIEW, DocOp, Docs, IndexSpec, Plan, Scan};
pub use error::DocError;
pub use live::{LiveQuery, ResultChange, Source};
pub use query::{Filter, Query, QueryPage, Sort};
