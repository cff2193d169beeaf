//! The four blocks of a log entry and how they are encoded, encrypted and signed.
//!
//! ```text
//! record (raw, sealed with the service key) --block--> event (dag-cbor, plain)
//!     |  prev, skip: earlier records                      |--header--> header (raw, read key)
//!     |                                                   '--body----> body (raw, content key)
//! ```
//!
//! docs/FORMAT.md gives every byte. The node structs below list their fields in DAG-CBOR's
//! canonical key order (shorter keys first, then bytewise), because the encoder writes
//! struct fields in declaration order.

use cid::Cid;
use serde::{Deserialize, Serialize};
use threads_crypto::{ContentKey, Signature};
use threads_id::{LogId, ThreadId};

use crate::block::Block;
use crate::cbor::Encoder;
use crate::hlc::Hlc;

/// Which block of an entry something is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// The record: links, counter, signature; sealed with the service key.
    Record,
    /// The event: links to header and body; plain.
    Event,
    /// The header: content key and time; sealed with the read key.
    Header,
    /// The body: the payload; sealed with the event's content key.
    Body,
}

impl Layer {
    const fn tag(self) -> u8 {
        match self {
            Layer::Record => 1,
            Layer::Event => 2,
            Layer::Header => 3,
            Layer::Body => 4,
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Record => "record",
            Layer::Event => "event",
            Layer::Header => "header",
            Layer::Body => "body",
        })
    }
}

/// The domain tag at the front of every signed message and associated data.
pub(crate) const DOMAIN: &[u8] = b"threads-rs/v1";
/// The domain of the record layer's associated data: format 2 (synthetic nonces).
pub(crate) const RECORD_DOMAIN: &[u8] = b"threads-rs/v2";

/// The associated data that binds a ciphertext of `layer` to its thread and log.
fn associated_data(layer: Layer, thread: &ThreadId, log: &LogId) -> Vec<u8> {
    let log = log.to_bytes();
    // Records are sealed with a synthetic nonce since format 2; binding the version into
    // their associated data makes a record of format 1 fail to open instead of being taken
    // for a second ciphertext of the same record.
    let domain = match layer {
        Layer::Record => RECORD_DOMAIN,
        _ => DOMAIN,
    };
    let mut ad = Vec::with_capacity(domain.len() + 1 + ThreadId::LEN + log.len());
    ad.extend_from_slice(domain);
    ad.push(layer.tag());
    ad.extend_from_slice(&thread.to_bytes());
    ad.extend_from_slice(&log);
    ad
}

/// A node type with a fixed schema, written by hand in canonical DAG-CBOR and read with
/// serde (see `cbor.rs`).
pub(crate) trait Node: serde::de::DeserializeOwned {
    /// The node's canonical DAG-CBOR bytes.
    fn to_cbor(&self) -> Vec<u8>;
}

/// The record node as it is encoded inside the sealed record block.
#[derive(Serialize, Deserialize)]
pub(crate) struct RecordNode {
    #[serde(with = "serde_bytes")]
    pub(crate) sig: Vec<u8>,
    pub(crate) prev: Option<Cid>,
    pub(crate) skip: Option<Cid>,
    pub(crate) block: Cid,
    pub(crate) counter: u64,
}

impl Node for RecordNode {
    fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(64 + 4 * 40);
        e.map(5);
        e.key("sig");
        e.bytes(&self.sig);
        e.key("prev");
        e.optional_cid(self.prev.as_ref());
        e.key("skip");
        e.optional_cid(self.skip.as_ref());
        e.key("block");
        e.cid(&self.block);
        e.key("counter");
        e.uint(self.counter);
        e.finish()
    }
}

/// The event node (a plain dag-cbor block).
#[derive(Serialize, Deserialize)]
pub(crate) struct EventNode {
    pub(crate) body: Cid,
    pub(crate) header: Cid,
}

impl Node for EventNode {
    fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(2 * 48);
        e.map(2);
        e.key("body");
        e.cid(&self.body);
        e.key("header");
        e.cid(&self.header);
        e.finish()
    }
}

/// The header node as it is encoded inside the sealed header block.
#[derive(Serialize, Deserialize)]
pub(crate) struct HeaderNode {
    #[serde(with = "serde_bytes")]
    pub(crate) key: Vec<u8>,
    pub(crate) time: (u64, u32),
}

impl Node for HeaderNode {
    fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(64);
        e.map(2);
        e.key("key");
        e.bytes(&self.key);
        e.key("time");
        e.array(2);
        e.uint(self.time.0);
        e.uint(u64::from(self.time.1));
        e.finish()
    }
}

/// The fixed front of every signed message of one log: domain, thread and log.
fn signing_prefix(thread: &ThreadId, log: &LogId) -> Vec<u8> {
    let log = log.to_bytes();
    let mut out = Vec::with_capacity(DOMAIN.len() + 7 + ThreadId::LEN + 1 + log.len());
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(b"/record");
    out.extend_from_slice(&thread.to_bytes());
    threads_id::varint::encode(log.len() as u64, &mut out);
    out.extend_from_slice(&log);
    out
}

/// The message a record's signature covers: the log's [`signing_prefix`], then the event,
/// prev and skip CIDs (each length-prefixed, empty when absent) and the counter.
fn signing_input(
    prefix: &[u8],
    event: &Cid,
    prev: Option<&Cid>,
    skip: Option<&Cid>,
    counter: u64,
) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, cid: Option<&Cid>) {
        match cid {
            None => out.push(0),
            Some(cid) => {
                threads_id::varint::encode(cid.encoded_len() as u64, out);
                cid.write_bytes(&mut *out)
                    .unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
            }
        }
    }
    let mut out = Vec::with_capacity(prefix.len() + 3 * 40 + 8);
    out.extend_from_slice(prefix);
    put(&mut out, Some(event));
    put(&mut out, prev);
    put(&mut out, skip);
    out.extend_from_slice(&counter.to_be_bytes());
    out
}

/// What every block of one log is bound to, computed once per writer or verifier: the
/// associated data of each sealed layer and the front of every signed message.
#[derive(Debug, Clone)]
pub(crate) struct LogContext {
    pub(crate) thread: ThreadId,
    pub(crate) log: LogId,
    pub(crate) ad_record: Vec<u8>,
    pub(crate) ad_header: Vec<u8>,
    pub(crate) ad_body: Vec<u8>,
    signing_prefix: Vec<u8>,
}

impl LogContext {
    pub(crate) fn new(thread: ThreadId, log: LogId) -> LogContext {
        LogContext {
            ad_record: associated_data(Layer::Record, &thread, &log),
            ad_header: associated_data(Layer::Header, &thread, &log),
            ad_body: associated_data(Layer::Body, &thread, &log),
            signing_prefix: signing_prefix(&thread, &log),
            thread,
            log,
        }
    }

    /// The message a record of this log with these links and counter is signed over.
    pub(crate) fn signing_input(
        &self,
        event: &Cid,
        prev: Option<&Cid>,
        skip: Option<&Cid>,
        counter: u64,
    ) -> Vec<u8> {
        signing_input(&self.signing_prefix, event, prev, skip, counter)
    }
}

/// A record that was decrypted and whose signature verified: the log-level facts a follower
/// can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub(crate) cid: Cid,
    pub(crate) event: Cid,
    pub(crate) prev: Option<Cid>,
    pub(crate) skip: Option<Cid>,
    pub(crate) counter: u64,
    pub(crate) signature: Signature,
}

impl Record {
    /// The record's CID: the log's head once this record is appended.
    pub const fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The CID of the event block.
    pub const fn event(&self) -> &Cid {
        &self.event
    }

    /// The previous record, or `None` for the genesis record.
    pub const fn prev(&self) -> Option<&Cid> {
        self.prev.as_ref()
    }

    /// The skip link: the record at [`crate::skip_target`] of this counter, when that is
    /// not the previous record.
    pub const fn skip(&self) -> Option<&Cid> {
        self.skip.as_ref()
    }

    /// The position in the log, from 1 for the genesis record.
    pub const fn counter(&self) -> u64 {
        self.counter
    }

    /// The log key's signature.
    pub const fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The head this record makes: its CID and counter.
    pub const fn head(&self) -> Head {
        Head {
            cid: self.cid,
            counter: self.counter,
        }
    }
}

/// The head of a log: its latest record's CID and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Head {
    /// The latest record's CID.
    pub cid: Cid,
    /// The latest record's counter (the number of records in the log).
    pub counter: u64,
}

/// A decrypted header: the event's content key and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub(crate) key: ContentKey,
    pub(crate) time: Hlc,
}

impl Header {
    /// The key that encrypts the event's body.
    pub const fn content_key(&self) -> &ContentKey {
        &self.key
    }

    /// The event's hybrid logical clock time.
    pub const fn time(&self) -> Hlc {
        self.time
    }
}

/// All blocks of one log entry, as a writer produces them and a store keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The sealed record block; its CID is the new head.
    pub record: Block,
    /// The plain event block.
    pub event: Block,
    /// The sealed header block.
    pub header: Block,
    /// The sealed body block.
    pub body: Block,
}

impl Entry {
    /// The four blocks, record first.
    pub fn blocks(&self) -> [&Block; 4] {
        [&self.record, &self.event, &self.header, &self.body]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{DAG_CBOR, RAW, cid_of};
    use proptest::prelude::*;

    fn any_cid() -> impl Strategy<Value = Cid> {
        (any::<bool>(), any::<[u8; 8]>())
            .prop_map(|(raw, seed)| cid_of(if raw { RAW } else { DAG_CBOR }, &seed))
    }

    proptest! {
        /// The hand-written encoder writes exactly what serde_ipld_dagcbor writes.
        #[test]
        fn hand_encoding_matches_serde(
            sig in proptest::collection::vec(any::<u8>(), 0..300),
            prev in proptest::option::of(any_cid()),
            skip in proptest::option::of(any_cid()),
            block in any_cid(),
            counter in prop_oneof![0u64..30, any::<u64>()],
            header in any_cid(),
            time in (prop_oneof![0u64..300, any::<u64>()], any::<u32>()),
        ) {
            let record = RecordNode { sig: sig.clone(), prev, skip, block, counter };
            prop_assert_eq!(record.to_cbor(), serde_ipld_dagcbor::to_vec(&record).expect("encodes"));
            let event = EventNode { body: block, header };
            prop_assert_eq!(event.to_cbor(), serde_ipld_dagcbor::to_vec(&event).expect("encodes"));
            let node = HeaderNode { key: sig, time };
            prop_assert_eq!(node.to_cbor(), serde_ipld_dagcbor::to_vec(&node).expect("encodes"));
        }
    }
}
