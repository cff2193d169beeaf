#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod addr;
pub mod check;
mod log_id;
mod serde_impl;
mod thread_id;
pub mod varint;

pub use addr::{THREAD_PROTOCOL_CODE, THREAD_PROTOCOL_NAME, ThreadAddr, ThreadAddrError};
pub use libp2p_identity::PeerId;
pub use log_id::{LogId, LogIdError};
pub use multiaddr::Multiaddr;
pub use thread_id::{THREAD_ID_VERSION, ThreadId, ThreadIdError, Variant};
pub use varint::VarintError;
