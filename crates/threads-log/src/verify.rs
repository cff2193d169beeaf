//! Verifying entries received from anywhere, at two levels.
//!
//! - Follower level ([`Verifier::open_record`], [`Verifier::verify_follower`]): with the
//!   service key only, decrypt the record, check its signature, counter, `prev` link and
//!   that the event block matches its CID. Headers and bodies stay sealed.
//! - Reader level ([`Verifier::verify_entry`]): also decrypt header and body, check their
//!   bytes against the event's links, and return the payload and time.
//!
//! Every failure has a typed reason ([`VerifyError`]).

use cid::Cid;
use threads_crypto::{
    AeadError, ContentKey, KeyError, PublicKey, ReadKey, ServiceKey, Signature, ThreadKey,
    verify_batch,
};
use threads_id::{LogId, ThreadId};

use crate::block::{Block, DAG_CBOR, RAW, decode_canonical};
use crate::hlc::Hlc;
use crate::record::{
    Entry, EventNode, Head, Header, HeaderNode, Layer, LogContext, Node, Record, RecordNode,
};
use crate::skip::skip_target;

/// Why an entry or record was rejected. Nothing was accepted when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The log id's key is not usable for verification (a weak key).
    #[error("log key cannot verify: {0}")]
    LogKey(KeyError),
    /// A block does not decrypt: wrong key, wrong thread or log, or tampered bytes.
    #[error("{layer} block does not decrypt: {source}")]
    Decrypt {
        /// Which block.
        layer: Layer,
        /// The AEAD failure.
        source: AeadError,
    },
    /// A block decrypts (or is plain) but does not decode as its node type.
    #[error("{layer} block is malformed: {reason}")]
    Malformed {
        /// Which block.
        layer: Layer,
        /// What is wrong.
        reason: String,
    },
    /// A block has the wrong CID codec for its layer.
    #[error("{layer} block has codec {codec:#x}")]
    Codec {
        /// Which block.
        layer: Layer,
        /// The codec found.
        codec: u64,
    },
    /// The record's signature does not verify with the log's key.
    #[error("record signature does not verify")]
    Signature,
    /// The counter is not the previous one plus one (genesis = 1).
    #[error("record counter is {actual}, expected {expected}")]
    Counter {
        /// The counter the log needs next.
        expected: u64,
        /// The counter found.
        actual: u64,
    },
    /// The `prev` link is not the current head.
    #[error("record links to prev {actual:?}, expected {expected:?}")]
    Prev {
        /// The current head.
        expected: Option<Cid>,
        /// The link found.
        actual: Option<Cid>,
    },
    /// The skip link is missing where the counter requires one, present where it must not
    /// be, or points to the wrong record.
    #[error("record {counter} has a wrong skip link")]
    Skip {
        /// The record's counter.
        counter: u64,
    },
    /// A linked block is not the one the link names.
    #[error("{layer} block {actual} is not the linked {expected}")]
    Link {
        /// Which block.
        layer: Layer,
        /// The CID the link names.
        expected: Cid,
        /// The block's CID.
        actual: Cid,
    },
    /// Reader-level verification needs the read key.
    #[error("no read key: only follower-level verification is possible")]
    NoReadKey,
}

/// A decrypted, verified event: its header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    header: Header,
    payload: Vec<u8>,
}

impl Decrypted {
    /// The decrypted header.
    pub const fn header(&self) -> &Header {
        &self.header
    }

    /// The event's time.
    pub const fn time(&self) -> Hlc {
        self.header.time
    }

    /// The application payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, owned.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
}

/// An entry read back from the local store by [`Verifier::read_stored`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The record (its signature was checked when the entry was stored).
    pub record: Record,
    /// The event's time.
    pub time: Hlc,
    /// The payload, or `None` if the body was compacted away.
    pub payload: Option<Vec<u8>>,
    /// The read key that opened the header (of the keys the verifier holds).
    pub read_key: ReadKey,
}

/// Decodes one layer's canonical DAG-CBOR node, naming the layer on failure.
fn decoded<T: Node>(layer: Layer, data: &[u8]) -> Result<T, VerifyError> {
    decode_canonical(data).map_err(|reason| VerifyError::Malformed { layer, reason })
}

fn decrypt_error(layer: Layer, source: AeadError) -> VerifyError {
    VerifyError::Decrypt { layer, source }
}

/// Checks header and body blocks against an event's links and their codec.
fn check_links(links: &EventNode, header: &Block, body: &Block) -> Result<(), VerifyError> {
    for (layer, expected, block) in [
        (Layer::Header, links.header, header),
        (Layer::Body, links.body, body),
    ] {
        if block.cid() != &expected {
            return Err(VerifyError::Link {
                layer,
                expected,
                actual: *block.cid(),
            });
        }
        if block.cid().codec() != RAW {
            return Err(VerifyError::Codec {
                layer,
                codec: block.cid().codec(),
            });
        }
    }
    Ok(())
}

/// A record opened without its signature checked yet, with the message to check it over.
struct Unchecked {
    record: Record,
    message: Vec<u8>,
}

/// Verifies entries of one log of one thread.
#[derive(Debug)]
pub struct Verifier {
    public: PublicKey,
    service: ServiceKey,
    /// The read keys to try on headers, in order (the thread key's first, then epochs
    /// added newest first).
    reads: Vec<ReadKey>,
    ctx: LogContext,
}

impl Verifier {
    /// A verifier for `log` in `thread` with `key` (follower level if it has no read key).
    pub fn new(thread: ThreadId, log: LogId, key: &ThreadKey) -> Result<Verifier, VerifyError> {
        let public = PublicKey::from_log_id(&log).map_err(VerifyError::LogKey)?;
        Ok(Verifier {
            ctx: LogContext::new(thread, log),
            public,
            service: key.service().clone(),
            reads: key.read().cloned().into_iter().collect(),
        })
    }

    /// Also tries `key` on headers, before the keys it already has: the key of a later key
    /// epoch (a read key rotated by access control). Adding a key it has does nothing.
    pub fn add_read_key(&mut self, key: ReadKey) {
        if !self.reads.contains(&key) {
            self.reads.insert(0, key);
        }
    }

    /// Opens a sealed header with the first read key that opens it.
    fn open_header(&self, header: &Block) -> Result<Vec<u8>, VerifyError> {
        self.open_header_with(header).map(|(plain, _)| plain)
    }

    /// [`Verifier::open_header`], also naming the key that opened it.
    fn open_header_with(&self, header: &Block) -> Result<(Vec<u8>, &ReadKey), VerifyError> {
        let mut failure = VerifyError::NoReadKey;
        for read in &self.reads {
            match read.open(&self.ctx.ad_header, header.data()) {
                Ok(plain) => return Ok((plain, read)),
                Err(source) => failure = decrypt_error(Layer::Header, source),
            }
        }
        Err(failure)
    }

    /// The log.
    pub const fn log_id(&self) -> LogId {
        self.ctx.log
    }

    /// The thread.
    pub const fn thread_id(&self) -> ThreadId {
        self.ctx.thread
    }

    /// Whether this verifier can read headers and bodies.
    pub fn can_read(&self) -> bool {
        !self.reads.is_empty()
    }

    fn open_unchecked(&self, block: &Block) -> Result<Unchecked, VerifyError> {
        if block.cid().codec() != RAW {
            return Err(VerifyError::Codec {
                layer: Layer::Record,
                codec: block.cid().codec(),
            });
        }
        let plain = self
            .service
            .open_synthetic(&self.ctx.ad_record, block.data())
            .map_err(|source| decrypt_error(Layer::Record, source))?;
        let node: RecordNode = decoded(Layer::Record, &plain)?;
        let signature = Signature::from_slice(&node.sig).map_err(|_| VerifyError::Malformed {
            layer: Layer::Record,
            reason: format!("signature is {} bytes", node.sig.len()),
        })?;
        if node.counter == 0 {
            return Err(VerifyError::Counter {
                expected: 1,
                actual: 0,
            });
        }
        if (node.counter == 1) != node.prev.is_none() {
            return Err(VerifyError::Prev {
                expected: None,
                actual: node.prev,
            });
        }
        if skip_target(node.counter).is_some() != node.skip.is_some() {
            return Err(VerifyError::Skip {
                counter: node.counter,
            });
        }
        let message = self.ctx.signing_input(
            &node.block,
            node.prev.as_ref(),
            node.skip.as_ref(),
            node.counter,
        );
        let record = Record {
            cid: *block.cid(),
            event: node.block,
            prev: node.prev,
            skip: node.skip,
            counter: node.counter,
            signature,
        };
        Ok(Unchecked { record, message })
    }

    /// Decrypts a record block and checks its structure and signature (not its place in the
    /// log: see [`Verifier::check_successor`]).
    pub fn open_record(&self, block: &Block) -> Result<Record, VerifyError> {
        let unchecked = self.open_unchecked(block)?;
        self.public
            .verify(&unchecked.message, &unchecked.record.signature)
            .map_err(|_| VerifyError::Signature)?;
        Ok(unchecked.record)
    }

    /// Opens many record blocks, checking all signatures with one batch verification.
    /// On failure, returns the index of the first bad block and why.
    pub fn open_records(&self, blocks: &[Block]) -> Result<Vec<Record>, (usize, VerifyError)> {
        let mut unchecked = Vec::with_capacity(blocks.len());
        for (i, block) in blocks.iter().enumerate() {
            unchecked.push(self.open_unchecked(block).map_err(|e| (i, e))?);
        }
        let messages: Vec<&[u8]> = unchecked.iter().map(|u| u.message.as_slice()).collect();
        let signatures: Vec<Signature> = unchecked.iter().map(|u| u.record.signature).collect();
        let keys = vec![self.public; unchecked.len()];
        if verify_batch(&messages, &signatures, &keys).is_err() {
            // Find the culprit; single verification is the rule, batch only the fast path.
            for (i, u) in unchecked.iter().enumerate() {
                if self.public.verify(&u.message, &u.record.signature).is_err() {
                    return Err((i, VerifyError::Signature));
                }
            }
        }
        Ok(unchecked.into_iter().map(|u| u.record).collect())
    }

    /// Checks that `record` extends the log whose head is `prev` (`None` for an empty log):
    /// counter one more, `prev` link equal to the head.
    pub fn check_successor(prev: Option<&Head>, record: &Record) -> Result<(), VerifyError> {
        let expected = prev.map_or(1, |h| h.counter.saturating_add(1));
        if record.counter != expected {
            return Err(VerifyError::Counter {
                expected,
                actual: record.counter,
            });
        }
        let expected_prev = prev.map(|h| h.cid);
        if record.prev != expected_prev {
            return Err(VerifyError::Prev {
                expected: expected_prev,
                actual: record.prev,
            });
        }
        Ok(())
    }

    /// Checks a record's skip link against the CID of the record it must point to.
    pub fn check_skip(record: &Record, target: &Cid) -> Result<(), VerifyError> {
        if record.skip.as_ref() != Some(target) {
            return Err(VerifyError::Skip {
                counter: record.counter,
            });
        }
        Ok(())
    }

    /// Checks that `event` is the block `record` links to and decodes its links.
    fn open_event(&self, record: &Record, event: &Block) -> Result<EventNode, VerifyError> {
        if event.cid() != &record.event {
            return Err(VerifyError::Link {
                layer: Layer::Event,
                expected: record.event,
                actual: *event.cid(),
            });
        }
        if event.cid().codec() != DAG_CBOR {
            return Err(VerifyError::Codec {
                layer: Layer::Event,
                codec: event.cid().codec(),
            });
        }
        decoded(Layer::Event, event.data())
    }

    /// Follower-level verification of a record and its event block after the head `prev`.
    pub fn verify_follower(
        &self,
        prev: Option<&Head>,
        record: &Block,
        event: &Block,
    ) -> Result<Record, VerifyError> {
        let record = self.open_record(record)?;
        Verifier::check_successor(prev, &record)?;
        self.open_event(&record, event)?;
        Ok(record)
    }

    /// Follower-level verification of a whole entry after the head `prev`: the record and
    /// event as in [`Verifier::verify_follower`], and the header and body bytes against the
    /// event's links. Nothing is decrypted beyond the record.
    pub fn verify_follower_entry(
        &self,
        prev: Option<&Head>,
        entry: &Entry,
    ) -> Result<Record, VerifyError> {
        let record = self.open_record(&entry.record)?;
        Verifier::check_successor(prev, &record)?;
        let links = self.open_event(&record, &entry.event)?;
        check_links(&links, &entry.header, &entry.body)?;
        Ok(record)
    }

    /// [`Verifier::verify_follower_entry`] for consecutive entries after `prev`, with all
    /// signatures checked in one batch. On failure, returns the index of the first bad
    /// entry and why.
    pub fn verify_follower_entries(
        &self,
        prev: Option<&Head>,
        entries: &[Entry],
    ) -> Result<Vec<Record>, (usize, VerifyError)> {
        let blocks: Vec<Block> = entries.iter().map(|e| e.record.clone()).collect();
        let records = self.open_records(&blocks)?;
        let mut head = prev.copied();
        for (i, (record, entry)) in records.iter().zip(entries).enumerate() {
            Verifier::check_successor(head.as_ref(), record).map_err(|e| (i, e))?;
            self.check_entry_links(record, entry).map_err(|e| (i, e))?;
            head = Some(record.head());
        }
        Ok(records)
    }

    /// Checks an opened record's entry: the event block is the one the record links, and
    /// the header and body blocks are the ones the event links. Decrypts nothing.
    pub fn check_entry_links(&self, record: &Record, entry: &Entry) -> Result<(), VerifyError> {
        let links = self.open_event(record, &entry.event)?;
        check_links(&links, &entry.header, &entry.body)
    }

    /// [`Verifier::check_entry_links`] for a compacted entry (its body dropped, sent and
    /// stored empty): the event opens and links the header; the body must be empty.
    pub fn check_compacted_links(&self, record: &Record, entry: &Entry) -> Result<(), VerifyError> {
        let links = self.open_event(record, &entry.event)?;
        if entry.header.cid() != &links.header {
            return Err(VerifyError::Link {
                layer: Layer::Header,
                expected: links.header,
                actual: *entry.header.cid(),
            });
        }
        if !entry.body.data().is_empty() {
            return Err(VerifyError::Link {
                layer: Layer::Body,
                expected: links.body,
                actual: *entry.body.cid(),
            });
        }
        Ok(())
    }

    /// Reader-level verification: decrypts the header and body of a follower-verified record
    /// and checks them against the event's links.
    pub fn read(
        &self,
        record: &Record,
        event: &Block,
        header: &Block,
        body: &Block,
    ) -> Result<Decrypted, VerifyError> {
        if self.reads.is_empty() {
            return Err(VerifyError::NoReadKey);
        }
        let links = self.open_event(record, event)?;
        check_links(&links, header, body)?;
        let plain = self.open_header(header)?;
        let node: HeaderNode = decoded(Layer::Header, &plain)?;
        let key = ContentKey::from_slice(&node.key).map_err(|e| VerifyError::Malformed {
            layer: Layer::Header,
            reason: e.to_string(),
        })?;
        let payload = key
            .open(&self.ctx.ad_body, body.data())
            .map_err(|source| decrypt_error(Layer::Body, source))?;
        let header = Header {
            key,
            time: Hlc::new(node.time.0, node.time.1),
        };
        Ok(Decrypted { header, payload })
    }

    /// Reads an entry back from this peer's own store, which verified its signature and
    /// its place in the log when it stored it: decrypts the record, header and body and
    /// checks every link, but does not verify the signature again. A compacted entry (its
    /// body block dropped, stored empty) gives its time and no payload.
    pub fn read_stored(&self, entry: &Entry) -> Result<StoredEvent, VerifyError> {
        if self.reads.is_empty() {
            return Err(VerifyError::NoReadKey);
        }
        let record = self.open_unchecked(&entry.record)?.record;
        let links = self.open_event(&record, &entry.event)?;
        let compacted = entry.body.data().is_empty();
        if compacted {
            if entry.header.cid() != &links.header {
                return Err(VerifyError::Link {
                    layer: Layer::Header,
                    expected: links.header,
                    actual: *entry.header.cid(),
                });
            }
        } else {
            check_links(&links, &entry.header, &entry.body)?;
        }
        let (plain, read_key) = self.open_header_with(&entry.header)?;
        let read_key = read_key.clone();
        let node: HeaderNode = decoded(Layer::Header, &plain)?;
        let time = Hlc::new(node.time.0, node.time.1);
        let payload = if compacted {
            None
        } else {
            let key = ContentKey::from_slice(&node.key).map_err(|e| VerifyError::Malformed {
                layer: Layer::Header,
                reason: e.to_string(),
            })?;
            Some(
                key.open(&self.ctx.ad_body, entry.body.data())
                    .map_err(|source| decrypt_error(Layer::Body, source))?,
            )
        };
        Ok(StoredEvent {
            record,
            time,
            payload,
            read_key,
        })
    }

    /// Reader-level verification of a whole entry after the head `prev`.
    pub fn verify_entry(
        &self,
        prev: Option<&Head>,
        entry: &Entry,
    ) -> Result<(Record, Decrypted), VerifyError> {
        let record = self.verify_follower(prev, &entry.record, &entry.event)?;
        let decrypted = self.read(&record, &entry.event, &entry.header, &entry.body)?;
        Ok((record, decrypted))
    }
}
