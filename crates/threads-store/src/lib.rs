//! The persistent logstore of threads-rs: everything a peer keeps.
//!
//! Small traits, one per domain ([`BlockStore`], [`ThreadBook`], [`LogBook`], [`KeyBook`],
//! [`AddrBook`], [`MetaBook`], [`ViewBook`]; [`Store`] is all of them), implemented by each backend:
//!
//! - [`MemoryStore`]: maps in memory, for tests and ephemeral peers;
//! - [`SqliteStore`]: one SQLite file (WAL), the embedded default;
//! - [`PostgresStore`]: a PostgreSQL database, for always-on servers.
//!
//! The central operation is [`LogBook::append`]: a batch of verified entries of one log is
//! stored and the log's head advanced in one transaction, only if the batch starts at the
//! head the caller verified against (compare-and-set). A batch that is already stored is a
//! no-op, so replays and retries are harmless, and concurrent appenders cannot fork a log
//! in the store.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use threads_crypto::{Identity, ThreadKey};
//! use threads_id::{ThreadId, Variant};
//! use threads_log::{Hlc, Writer};
//! use threads_store::{LogBook, MemoryStore, Page, ThreadBook};
//!
//! let store = MemoryStore::new();
//! let thread = ThreadId::new(Variant::Raw);
//! let key = ThreadKey::generate();
//! store.put_thread(thread, &key).await?;
//!
//! let writer = Writer::new(Identity::generate(), thread, &key).expect("full key");
//! let first = writer.append(None, None, b"hello", Hlc::new(1, 0)).expect("append");
//! let log = writer.log_id();
//! let outcome = store.append(thread, log, None, &[first.clone()]).await?;
//! assert_eq!(outcome.head(), first.record.head());
//! // Appending the same batch again changes nothing.
//! store.append(thread, log, None, &[first]).await?;
//! assert_eq!(store.entries_after(thread, log, 0, Page::new(10, 1 << 20)).await?.len(), 1);
//! # Ok::<(), threads_store::StoreError>(())
//! # }).unwrap();
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod chain;
mod error;
mod memory;
mod postgres;
mod secrets;
mod sql;
mod sqlite;
mod traits;
mod views;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use postgres::{POSTGRES_SCHEMA_VERSION, PostgresStore};
pub use secrets::StoreOptions;
pub use sqlite::{SQLITE_SCHEMA_VERSION, SqliteStore};
pub use traits::{
    AddrBook, AppendOutcome, BlockStore, HeadsDigest, KeyBook, LogBook, MetaBook, Page, Result,
    Store, StoredEntry, ThreadBook, build_local_batch, write_local, write_local_batch,
    write_local_batch_after,
};
pub use views::{RowRange, ViewBook, ViewChange, ViewCommit};
