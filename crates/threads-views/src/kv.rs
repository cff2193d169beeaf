//! The key-value view: the paper's Put, Get and Del, last writer wins per key.
//!
//! Each key's row holds the stamp of the operation that wrote it last ((HLC, log id,
//! counter), then the operation's index in its event) and either the value or a tombstone.
//! An operation changes a key only if its stamp is greater than the stored one, so the
//! result is the same in any order of application: the view is commutative.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::event::{Event, STAMP_LEN, Stamp, decode_stamp, encode_stamp};
use crate::reducer::{Access, Reducer, Reject, ViewKind};
use crate::state::State;

const LIVE: u8 = 1;
const TOMBSTONE: u8 = 0;

#[derive(Serialize, Deserialize)]
enum Op {
    #[serde(rename = "put")]
    Put(ByteBuf, ByteBuf),
    #[serde(rename = "del")]
    Del(ByteBuf),
}

/// The key-value view.
///
/// ```
/// use threads_views::{Batch, Kv};
/// let kv = Kv::new("settings");
/// let payload = Batch::new()
///     .with(kv.name(), Kv::put(b"theme", b"dark"))
///     .with(kv.name(), Kv::del(b"draft"))
///     .encode();
/// # let _ = payload;
/// ```
#[derive(Debug, Clone)]
pub struct Kv {
    name: String,
}

impl Kv {
    /// A key-value view named `name`.
    pub fn new(name: impl Into<String>) -> Kv {
        Kv { name: name.into() }
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operation that sets `key` to `value`.
    pub fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
        encode(&Op::Put(ByteBuf::from(key), ByteBuf::from(value)))
    }

    /// The operation that deletes `key`.
    pub fn del(key: &[u8]) -> Vec<u8> {
        encode(&Op::Del(ByteBuf::from(key)))
    }

    /// Decodes an operation: the key, and the value for a put (`None` for a delete).
    pub fn decode(op: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        match serde_ipld_dagcbor::from_slice(op).ok()? {
            Op::Put(key, value) => Some((key.into_vec(), Some(value.into_vec()))),
            Op::Del(key) => Some((key.into_vec(), None)),
        }
    }

    /// The value of `key` in a state of this view.
    pub fn get(state: &State, key: &[u8]) -> Option<Vec<u8>> {
        live(&state.get(key)?).map(<[u8]>::to_vec)
    }

    /// Every live key and value, in key order.
    pub fn list(state: &State) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        state
            .iter()
            .filter_map(|(k, row)| Some((k, live(&row)?.to_vec())))
    }

    /// The live keys starting with `prefix` and their values, in key order.
    pub fn scan<'a>(
        state: &'a State,
        prefix: &[u8],
    ) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a {
        state
            .prefix(prefix)
            .filter_map(|(k, row)| Some((k, live(&row)?.to_vec())))
    }

    /// The stamp of the operation that last wrote `key` (put or delete).
    pub fn stamp(state: &State, key: &[u8]) -> Option<Stamp> {
        let row = state.get(key)?;
        decode_stamp(row.get(1..1 + STAMP_LEN)?).ok()
    }
}

fn encode(op: &Op) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(op).unwrap_or_else(|_| unreachable!("plain data encodes"))
}

fn live(row: &[u8]) -> Option<&[u8]> {
    match row.first() {
        Some(&LIVE) => row.get(1 + STAMP_LEN..),
        _ => None,
    }
}

fn row_stamp(row: &[u8]) -> Option<&[u8]> {
    row.get(1..1 + STAMP_LEN)
}

impl Reducer for Kv {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ViewKind {
        ViewKind::Commutative
    }

    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
        let op: Op = serde_ipld_dagcbor::from_slice(event.data)
            .map_err(|e| Reject::new(format!("not a key-value operation: {e}")))?;
        let stamp = encode_stamp(&event.stamp());
        let (key, row) = match op {
            Op::Put(key, value) => {
                let mut row = Vec::with_capacity(1 + STAMP_LEN + value.len());
                row.push(LIVE);
                row.extend_from_slice(&stamp);
                row.extend_from_slice(&value);
                (key.into_vec(), row)
            }
            Op::Del(key) => {
                let mut row = Vec::with_capacity(1 + STAMP_LEN);
                row.push(TOMBSTONE);
                row.extend_from_slice(&stamp);
                (key.into_vec(), row)
            }
        };
        let newer = match state.get(&key).as_deref().and_then(row_stamp) {
            Some(current) => stamp.as_slice() > current,
            None => true,
        };
        if newer {
            state.put(key, row);
        }
        Ok(())
    }

    fn resource(&self, event: &Event<'_>) -> Option<Vec<u8>> {
        Kv::decode(event.data).map(|(key, _)| key)
    }

    fn access(&self, event: &Event<'_>) -> Access {
        match serde_ipld_dagcbor::from_slice::<Op>(event.data) {
            Ok(Op::Del(_)) => Access::Delete,
            _ => Access::Write,
        }
    }

    fn superseded(&self, state: &State, event: &Event<'_>) -> bool {
        let Ok(op) = serde_ipld_dagcbor::from_slice::<Op>(event.data) else {
            // Kept: its rejection is part of what every peer can see.
            return false;
        };
        let key = match &op {
            Op::Put(key, _) | Op::Del(key) => key.as_slice(),
        };
        let stamp = encode_stamp(&event.stamp());
        match state.get(key).as_deref().and_then(row_stamp) {
            Some(current) => current > stamp.as_slice(),
            None => false,
        }
    }
}
