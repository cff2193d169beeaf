#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backup;
mod changes;
mod compact;
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

pub use backup::{Restored, restore};
pub use changes::{Change, ChangeKind, Changes, DocAction, EventChanges};
pub use compact::Compacted;
pub use config::{CustomViews, DbConfig, TimeFn};
pub use crdt::{CRDT_VIEW, Crdt};
pub use db::{Db, KV_VIEW};
pub use docs::{Collection, DOCS_VIEW, DocOp, Docs, IndexSpec, Plan, Scan};
pub use error::{DbError, DocError};
pub use live::{LiveQuery, ResultChange, Source};
pub use query::{Filter, Query, QueryPage, Sort};
pub use threads_views::Refused;
pub use transaction::Transaction;
