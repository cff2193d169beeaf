#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod chain;
mod error;
mod forks;
mod keys;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod secrets;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_script;
mod traits;
mod views;

pub use error::StoreError;
pub use forks::{FORKS_META, fork_proofs, fork_stops, put_fork_proof};
pub use keys::update_thread_key;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{POSTGRES_SCHEMA_VERSION, PostgresStore};
pub use secrets::StoreOptions;
#[cfg(feature = "sqlite")]
pub use sqlite::{SQLITE_SCHEMA_VERSION, SqliteStore};
pub use traits::{
    AddrBook, AppendOutcome, BlockStore, HeadsDigest, KeyBook, LogBook, MetaBook, Page, Result,
    Store, StoredEntry, ThreadBook, build_local_batch, write_local, write_local_batch,
    write_local_batch_after,
};
pub use views::{RowRange, ViewBook, ViewChange, ViewCommit};
