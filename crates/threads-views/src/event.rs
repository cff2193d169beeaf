//! What reducers see: events with their place in the thread's order, and the batch format
//! that addresses operations to views.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use threads_id::{LogId, ThreadId};
use threads_log::{EventOrder, Hlc};

use crate::error::{Result, ViewError};

/// One operation of an event, addressed to one view, as a reducer receives it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The thread.
    pub thread: ThreadId,
    /// The event's place in the thread's total order: (HLC time, log id, counter).
    pub order: EventOrder,
    /// The operation's index among the event's operations (0 for the first).
    pub index: u32,
    /// The operation's bytes, in the view's own format.
    pub data: &'a [u8],
}

impl Event<'_> {
    /// Who wrote the event: the key of the log it belongs to.
    pub const fn author(&self) -> LogId {
        self.order.log
    }

    /// The event's hybrid logical clock time.
    pub const fn time(&self) -> Hlc {
        self.order.time
    }

    /// The event's counter in its log.
    pub const fn counter(&self) -> u64 {
        self.order.counter
    }

    /// A total order of operations: the event's order, then the operation's index.
    pub const fn stamp(&self) -> Stamp {
        Stamp {
            order: self.order,
            index: self.index,
        }
    }
}

/// The position of one operation: its event's [`EventOrder`], then its index in the event.
/// Last-writer-wins views compare stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// The event's order.
    pub order: EventOrder,
    /// The operation's index in the event.
    pub index: u32,
}

/// The length of an encoded [`EventOrder`]: time (8 + 4), log id (38), counter (8).
pub const ORDER_LEN: usize = 58;
/// The length of an encoded [`Stamp`].
pub const STAMP_LEN: usize = ORDER_LEN + 4;

/// Encodes an order so that byte order equals [`EventOrder`]'s order (big-endian, fixed
/// width).
pub fn encode_order(order: &EventOrder) -> [u8; ORDER_LEN] {
    let mut out = [0u8; ORDER_LEN];
    out[..8].copy_from_slice(&order.time.physical_ms().to_be_bytes());
    out[8..12].copy_from_slice(&order.time.logical().to_be_bytes());
    out[12..50].copy_from_slice(&order.log.to_bytes());
    out[50..].copy_from_slice(&order.counter.to_be_bytes());
    out
}

/// Decodes [`encode_order`]'s bytes.
///
/// # Errors
/// [`ViewError::Corrupt`] if the bytes are not an encoded order.
pub fn decode_order(bytes: &[u8]) -> Result<EventOrder> {
    if bytes.len() != ORDER_LEN {
        return Err(ViewError::Corrupt(format!(
            "an order is {ORDER_LEN} bytes, not {}",
            bytes.len()
        )));
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let mut logical = [0u8; 4];
    logical.copy_from_slice(&bytes[8..12]);
    let log = LogId::from_bytes(&bytes[12..50])
        .map_err(|e| ViewError::Corrupt(format!("bad log id in an order: {e}")))?;
    Ok(EventOrder {
        time: Hlc::new(u64_at(0), u32::from_be_bytes(logical)),
        log,
        counter: u64_at(50),
    })
}

/// Encodes a stamp so that byte order equals [`Stamp`]'s order.
pub fn encode_stamp(stamp: &Stamp) -> [u8; STAMP_LEN] {
    let mut out = [0u8; STAMP_LEN];
    out[..ORDER_LEN].copy_from_slice(&encode_order(&stamp.order));
    out[ORDER_LEN..].copy_from_slice(&stamp.index.to_be_bytes());
    out
}

/// Decodes [`encode_stamp`]'s bytes.
///
/// # Errors
/// [`ViewError::Corrupt`] if the bytes are not an encoded stamp.
pub fn decode_stamp(bytes: &[u8]) -> Result<Stamp> {
    if bytes.len() != STAMP_LEN {
        return Err(ViewError::Corrupt(format!(
            "a stamp is {STAMP_LEN} bytes, not {}",
            bytes.len()
        )));
    }
    let order = decode_order(&bytes[..ORDER_LEN])?;
    let mut index = [0u8; 4];
    index.copy_from_slice(&bytes[ORDER_LEN..]);
    Ok(Stamp {
        order,
        index: u32::from_be_bytes(index),
    })
}

/// The payload format of events meant for views: a list of operations, each addressed to
/// a view by name. One event carries one batch, so a batch is applied at one point of the
/// order (a transaction). Encoded as DAG-CBOR: `[[name, bytes], ...]`.
///
/// ```
/// use threads_views::Batch;
/// let payload = Batch::new().with("kv", b"op".to_vec()).encode();
/// let batch = Batch::decode(&payload).expect("a batch");
/// assert_eq!(batch.ops()[0], ("kv".to_owned(), b"op".to_vec()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<(String, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct WireOp(String, ByteBuf);

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds an operation for the view named `view`.
    pub fn push(&mut self, view: impl Into<String>, op: Vec<u8>) {
        self.ops.push((view.into(), op));
    }

    /// [`Batch::push`], by value.
    #[must_use]
    pub fn with(mut self, view: impl Into<String>, op: Vec<u8>) -> Batch {
        self.push(view, op);
        self
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[(String, Vec<u8>)] {
        &self.ops
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The event payload.
    pub fn encode(&self) -> Vec<u8> {
        let wire: Vec<WireOp> = self
            .ops
            .iter()
            .map(|(name, op)| WireOp(name.clone(), ByteBuf::from(op.clone())))
            .collect();
        serde_ipld_dagcbor::to_vec(&wire).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    /// Decodes a payload; `None` if it is not a batch.
    pub fn decode(payload: &[u8]) -> Option<Batch> {
        let wire: Vec<WireOp> = serde_ipld_dagcbor::from_slice(payload).ok()?;
        Some(Batch {
            ops: wire.into_iter().map(|w| (w.0, w.1.into_vec())).collect(),
        })
    }
}
