//! Signed, encrypted, hash-linked single-writer logs: the core of the Threads protocol.
//!
//! Each entry of a log is four content-addressed blocks (docs/FORMAT.md):
//!
//! - a **body**, the application payload sealed with a fresh [`ContentKey`](threads_crypto::ContentKey);
//! - a **header**, the content key and the [`Hlc`] time, sealed with the read key;
//! - an **event**, plain DAG-CBOR linking header and body;
//! - a **record**, linking the event, the previous record and a [skip link](skip_target),
//!   carrying the counter and the log key's signature, sealed with the service key. Its CID
//!   is the log's new head.
//!
//! [`Writer`] appends; [`Verifier`] checks what arrives, at follower level (service key:
//! signature, counter, links, CIDs) or reader level (read key: header and body too);
//! [`WalkBack`] traverses a log over any [`BlockSource`]; [`verify_inclusion`] checks an
//! O(log n) proof that a record belongs to a log; [`Clock`] issues hybrid logical clock
//! times, and [`EventOrder`] is the total order views use across logs.
//!
//! Pure code: no I/O, no async. Clocks and randomness come in through parameters, so every
//! test is deterministic.
//!
//! ```
//! use threads_crypto::{Identity, ThreadKey};
//! use threads_id::{ThreadId, Variant};
//! use threads_log::{Clock, FixedTime, Verifier, Writer};
//!
//! let thread = ThreadId::new(Variant::Raw);
//! let key = ThreadKey::generate();
//! let writer = Writer::new(Identity::generate(), thread, &key)?;
//! let mut clock = Clock::new(FixedTime(1_700_000_000_000));
//! let entry = writer.append(None, None, b"{\"hello\":\"world\"}", clock.now()?)?;
//!
//! // A follower holds only the service key: it verifies but cannot read.
//! let follower = Verifier::new(thread, writer.log_id(), &key.to_follower())?;
//! let record = follower.verify_follower(None, &entry.entry.record, &entry.entry.event)?;
//! assert_eq!(record.counter(), 1);
//! assert!(follower.verify_entry(None, &entry.entry).is_err());
//!
//! // A reader decrypts the payload.
//! let reader = Verifier::new(thread, writer.log_id(), &key)?;
//! let (_, event) = reader.verify_entry(None, &entry.entry)?;
//! assert_eq!(event.payload(), b"{\"hello\":\"world\"}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod block;
mod cbor;
pub mod check;
mod hlc;
mod record;
mod skip;
mod traverse;
mod verify;
mod writer;

pub use block::{Block, BlockError, DAG_CBOR, RAW, SHA2_256, cid_of};
pub use cid::Cid;
pub use hlc::{
    Clock, ClockError, DEFAULT_MAX_DRIFT_MS, EventOrder, FixedTime, Hlc, TimeSource, WallClock,
};
pub use record::{Entry, Head, Header, Layer, Record};
pub use skip::{ProofError, lipmaa, proof_path, skip_target, verify_inclusion};
pub use traverse::{BlockSource, LogIndex, TraverseError, WalkBack};
pub use verify::{Decrypted, StoredEvent, Verifier, VerifyError};
pub use writer::{AppendError, Appended, MAX_ENTRY_BYTES, MAX_PAYLOAD_BYTES, Writer};
