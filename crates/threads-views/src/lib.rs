#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod apply;
mod check;
mod commit;
mod config;
mod engine;
mod error;
mod event;
mod flight;
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
pub use engine::{EVENT_LEVEL, PASSED_OVER, Progress, Rejection, RowChanges, Views};
pub use error::{Result, ViewError};
pub use event::{
    Batch, Event, ORDER_LEN, STAMP_LEN, Stamp, decode_order, decode_stamp, encode_order,
    encode_stamp,
};
pub use flight::{Begun, Landing, LocalCommit, Outcome};
pub use kv::Kv;
pub use read::CacheBudget;
pub use reducer::{Access, Gate, Reducer, Reject, ViewKind};
pub use state::{Rows, State};
pub use subscribe::{Cursor, Delivered, Subscription};
