//! The threads-rs database: a peer of an end-to-end encrypted, replicated, event-sourced
//! database. Each peer writes its own signed log; views (key-value, documents with JSON
//! Schemas and indexes, automerge collections) are computed identically on every peer.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use serde_json::json;
//! use threads_acl::Role;
//! use threads_crypto::Identity;
//! use threads_db::{Db, DbConfig, Filter, Query};
//! use threads_id::Variant;
//!
//! // Two peers on this machine (a SQLite file each with `Db::open_sqlite`).
//! let alice = Db::open_memory(Identity::generate(), DbConfig::default()).await?;
//! let bob = Db::open_memory(Identity::generate(), DbConfig::default()).await?;
//!
//! // Alice creates a thread with access control and a collection with a schema.
//! let thread = alice.create_thread(Variant::AccessControlled).await?;
//! alice
//!     .transaction(thread)
//!     .create_collection("tasks", &json!({"type": "object", "required": ["title"]}))
//!     .create("tasks", "t1", &json!({"title": "write the docs", "done": false}))
//!     .commit()
//!     .await?;
//!
//! // She invites bob as a writer; bob joins (pulling the thread) and queries it.
//! let invite = alice.invite(thread, bob.identity().log_id(), Role::Write).await?;
//! bob.join(&invite).await?;
//! let open = Query::filter(Filter::Eq("done".into(), json!(false)));
//! let page = bob.query(thread, "tasks", &open).await?;
//! assert_eq!(page.docs[0].0, "t1");
//!
//! alice.shutdown().await;
//! bob.shutdown().await;
//! # Ok::<(), threads_db::DbError>(())
//! # }).unwrap();
//! ```
//!
//! - [`Db`]: threads, invites, transactions ([`Transaction`]: one event), reads and
//!   queries, live queries, lossless listeners, sync health.
//! - [`Docs`]: the document view: collections of JSON documents, each with a JSON Schema;
//!   creating a collection, changing its schema and adding indexes are events in the
//!   thread, like document writes ([`DocOp`]).
//! - [`Query`] and [`Filter`]: eq, ne, gt, ge, lt, le, in, exists, prefix, and/or; sorting
//!   before pagination; limit, offset and cursors; a JSON form; [`Docs::explain`].
//! - [`Crdt`]: automerge collections.
//! - [`LiveQuery`]: the changes to a query's result set.
//! - [`Changes`]: the change feed ([`Db::changes`]): every event's operations and their
//!   fate, lossless and resumable.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod changes;
mod config;
mod crdt;
mod db;
mod docs;
mod error;
mod feeds;
pub mod json;
mod live;
mod membership;
mod query;
mod queue;
mod read;
mod transaction;
mod write;

pub use changes::{Change, ChangeKind, Changes, DocAction, EventChanges};
pub use config::{CustomViews, DbConfig, TimeFn};
pub use crdt::{CRDT_VIEW, Crdt};
pub use db::{Db, KV_VIEW};
pub use docs::{Collection, DOCS_VIEW, DocOp, Docs, IndexSpec, Plan, Scan};
pub use error::{DbError, DocError};
pub use live::{LiveQuery, ResultChange, Source};
pub use query::{Filter, Query, QueryPage, Sort};
pub use threads_views::Refused;
pub use transaction::Transaction;
