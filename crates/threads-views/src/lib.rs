//! Materialized views for threads-rs: reducers fold a thread's decrypted events into
//! states that every peer computes identically.
//!
//! A view is a [`Reducer`]: a pure function from a [`State`] (ordered rows of bytes) and an
//! [`Event`] (one operation, with its thread, author, counter and HLC time) to a new state.
//! Events address operations to views by name through a [`Batch`], so one event can change
//! several views at one point of the order (a transaction). [`Views`] reads the thread's
//! logs from the store, decrypts them, and applies them:
//!
//! - [`ViewKind::Commutative`] views (CRDTs, last-writer-wins maps such as [`Kv`]) take
//!   events in any order;
//! - [`ViewKind::Ordered`] views take them in the thread's total order (HLC, log id,
//!   counter); each applied event keeps an undo record (the rows it changed and their
//!   values before), so when a late event sorts before applied ones, only the events after
//!   it are undone and applied again: the cost is what they changed, not the view's size.
//!
//! The rows live in the store, not in memory: a [`State`] caches them within a byte budget
//! ([`ViewConfig::cache_bytes`]), and opening the views reads only their cursor. Reducers
//! stay synchronous: a read the cache cannot answer is fetched and the reducer runs again
//! (see [`State`]). Read the views with [`Views::read`]. Changed rows and undo records are
//! written with the cursor (the last applied counter per log) in one transaction of the
//! store's database, so a restart resumes where it stopped and a crash never applies an
//! event twice. [`Views::compact`] drops the bodies of events no view needs any more,
//! keeping their signed records. [`Views::subscribe`] gives a lossless, resumable stream of
//! applied events.
//!
//! A [`Gate`] (access control, see threads-acl) decides per operation whether it applies;
//! [`Views::regate`] recomputes the views when its rules change. [`Views::add_read_key`]
//! adds the read key of a later key epoch; an event this peer cannot read holds its log
//! back ([`Views::blocked`]) until a key that opens it arrives.
//!
//! A custom view in a few lines, an order-sensitive running total:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use threads_crypto::{Identity, ThreadKey};
//! use threads_id::{ThreadId, Variant};
//! use threads_log::{Hlc, Writer};
//! use threads_store::{MemoryStore, ThreadBook, write_local};
//! use threads_views::{Batch, Event, Reducer, Reject, State, ViewConfig, ViewKind, Views};
//!
//! /// "+n" adds n, "reset" goes back to zero: the order of events matters.
//! struct Total;
//!
//! impl Reducer for Total {
//!     fn name(&self) -> &str {
//!         "total"
//!     }
//!     fn kind(&self) -> ViewKind {
//!         ViewKind::Ordered
//!     }
//!     fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
//!         let total = state.get(b"total").and_then(|v| v.try_into().ok()).map_or(0, i64::from_be_bytes);
//!         let next = match event.data {
//!             b"reset" => 0,
//!             op => {
//!                 let n = std::str::from_utf8(op).ok().and_then(|t| t.parse::<i64>().ok());
//!                 total + n.ok_or_else(|| Reject::new("not a number"))?
//!             }
//!         };
//!         state.put(b"total".to_vec(), next.to_be_bytes().to_vec());
//!         Ok(())
//!     }
//! }
//!
//! let store = Arc::new(MemoryStore::new());
//! let thread = ThreadId::new(Variant::Raw);
//! let key = ThreadKey::generate();
//! store.put_thread(thread, &key).await?;
//! let writer = Writer::new(Identity::generate(), thread, &key).expect("a full key");
//! for (i, op) in ["5", "reset", "2", "3", "x"].into_iter().enumerate() {
//!     let payload = Batch::new().with("total", op.as_bytes().to_vec()).encode();
//!     write_local(&*store, &writer, &payload, Hlc::new(i as u64 + 1, 0)).await?;
//! }
//!
//! let mut views = Views::open(store, thread, vec![Arc::new(Total)], ViewConfig::new()).await?;
//! views.catch_up().await?;
//! let total = views.read("total", |state| state.get(b"total")).await?;
//! assert_eq!(total, Some(5i64.to_be_bytes().to_vec()));
//! let rejected = views.rejections().await?;
//! assert_eq!((rejected.len(), rejected[0].author()), (1, writer.log_id()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod apply;
mod check;
mod commit;
mod config;
mod engine;
mod error;
mod event;
mod kv;
mod mark;
mod read;
mod reducer;
mod rewind;
mod state;
mod subscribe;

pub use apply::NOT_APPLIED;
pub use check::Refused;
pub use config::ViewConfig;
pub use engine::{EVENT_LEVEL, Progress, Rejection, RowChanges, Views};
pub use error::{Result, ViewError};
pub use event::{
    Batch, Event, ORDER_LEN, STAMP_LEN, Stamp, decode_order, decode_stamp, encode_order,
    encode_stamp,
};
pub use kv::Kv;
pub use read::CacheBudget;
pub use reducer::{Access, Gate, Reducer, Reject, ViewKind};
pub use state::{Rows, State};
pub use subscribe::{Cursor, Delivered, Subscription};
