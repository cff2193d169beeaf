#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod block;
mod cbor;
pub mod check;
mod fork;
mod hlc;
mod record;
mod skip;
mod traverse;
mod verify;
mod writer;

pub use block::{Block, BlockError, DAG_CBOR, RAW, SHA2_256, cid_of};
pub use cid::Cid;
pub use fork::{ForkError, ForkProof, MAX_PROOF_RECORD_BYTES};
pub use hlc::{
    Clock, ClockError, DEFAULT_MAX_DRIFT_MS, EventOrder, FixedTime, Hlc, TimeSource, WallClock,
};
pub use record::{Entry, Head, Header, Layer, Record};
pub use skip::{ProofError, lipmaa, proof_path, skip_target, verify_inclusion};
pub use traverse::{BlockSource, LogIndex, TraverseError, WalkBack};
pub use verify::{Decrypted, StoredEvent, Verifier, VerifyError};
pub use writer::{AppendError, Appended, MAX_ENTRY_BYTES, MAX_PAYLOAD_BYTES, Writer};
