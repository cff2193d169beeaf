//! Appending to a log: from a payload to the four blocks of a new entry.

use cid::Cid;
use rand_core::CryptoRng;
use threads_crypto::{ContentKey, Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{LogId, ThreadId};

use crate::block::Block;
use crate::hlc::Hlc;
use crate::record::{Entry, EventNode, Head, HeaderNode, LogContext, Node, Record, RecordNode};
use crate::skip::skip_target;

/// Why an append was refused. Nothing is produced on error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The writer's thread key has no read key, so it cannot seal headers.
    #[error("the thread key has no read key: a follower cannot write")]
    NoReadKey,
    /// The new record needs a skip link to record `target`, and none was given.
    #[error("record {counter} needs a skip link to record {target}")]
    MissingSkipLink {
        /// The new record's counter.
        counter: u64,
        /// The counter the skip link must point to.
        target: u64,
    },
    /// A skip link was given for a record that must not have one.
    #[error("record {0} takes no skip link")]
    UnexpectedSkipLink(u64),
    /// The counter would overflow.
    #[error("log counter overflow")]
    CounterOverflow,
    /// The entry would be larger than [`MAX_ENTRY_BYTES`]: no peer would take it.
    #[error("the entry would be {size} bytes, more than the {max} an entry may have")]
    TooLarge {
        /// The entry's size (its four blocks).
        size: usize,
        /// [`MAX_ENTRY_BYTES`].
        max: usize,
    },
}

/// The most bytes an entry (its four blocks together) may have. A format constant, the
/// same for every peer: writers refuse to build a larger entry and receivers refuse one
/// before verifying it, so every entry fits in one page of the sync protocol and no
/// peer holds an entry others refuse.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// The largest payload that always fits in an entry: [`MAX_ENTRY_BYTES`] less a margin for
/// the record, event and header blocks and the seals (together well under 4 KiB).
pub const MAX_PAYLOAD_BYTES: usize = MAX_ENTRY_BYTES - 4096;

/// The result of an append: the entry's blocks and its decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The four blocks to store.
    pub entry: Entry,
    /// The new record (its CID is the new head).
    pub record: Record,
}

/// Writes entries to one log of one thread: holds the log's identity key and the thread's
/// keys, and turns payloads into signed, sealed entries.
///
/// The writer keeps no head: the caller passes the current head and, when
/// [`skip_target`] asks for one, the CID of the record to skip-link to. That keeps this
/// crate free of I/O; `threads-store` supplies both from its books.
///
/// ```
/// use threads_crypto::{Identity, ThreadKey};
/// use threads_id::{ThreadId, Variant};
/// use threads_log::{Hlc, Verifier, Writer};
///
/// let thread = ThreadId::new(Variant::Raw);
/// let key = ThreadKey::generate();
/// let writer = Writer::new(Identity::generate(), thread, &key)?;
/// let first = writer.append(None, None, b"hello", Hlc::new(1, 0))?;
/// let second = writer.append(Some(&first.record.head()), None, b"world", Hlc::new(2, 0))?;
///
/// let reader = Verifier::new(thread, writer.log_id(), &key)?;
/// let (record, event) = reader.verify_entry(Some(&first.record.head()), &second.entry)?;
/// assert_eq!(record.counter(), 2);
/// assert_eq!(event.payload(), b"world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Writer {
    identity: Identity,
    service: ServiceKey,
    read: ReadKey,
    ctx: LogContext,
}

impl Writer {
    /// A writer for `identity`'s log in `thread`; `key` must include the read key.
    pub fn new(
        identity: Identity,
        thread: ThreadId,
        key: &ThreadKey,
    ) -> Result<Writer, AppendError> {
        let read = key.read().ok_or(AppendError::NoReadKey)?.clone();
        let log = identity.log_id();
        Ok(Writer {
            ctx: LogContext::new(thread, log),
            identity,
            service: key.service().clone(),
            read,
        })
    }

    /// The log this writer appends to.
    pub const fn log_id(&self) -> LogId {
        self.ctx.log
    }

    /// The thread.
    pub const fn thread_id(&self) -> ThreadId {
        self.ctx.thread
    }

    /// Appends `payload` after `prev` (`None` for the genesis record), with randomness from
    /// the operating system.
    pub fn append(
        &self,
        prev: Option<&Head>,
        skip: Option<Cid>,
        payload: &[u8],
        time: Hlc,
    ) -> Result<Appended, AppendError> {
        self.append_with(prev, skip, payload, time, &mut rand::rng())
    }

    /// [`Writer::append`] with randomness (content key, nonces) from `rng`.
    pub fn append_with<R: CryptoRng + ?Sized>(
        &self,
        prev: Option<&Head>,
        skip: Option<Cid>,
        payload: &[u8],
        time: Hlc,
        rng: &mut R,
    ) -> Result<Appended, AppendError> {
        let counter = match prev {
            None => 1,
            Some(head) => head
                .counter
                .checked_add(1)
                .ok_or(AppendError::CounterOverflow)?,
        };
        match (skip_target(counter), skip) {
            (Some(target), None) => return Err(AppendError::MissingSkipLink { counter, target }),
            (None, Some(_)) => return Err(AppendError::UnexpectedSkipLink(counter)),
            _ => {}
        }
        let content_key = ContentKey::random(rng);
        let body = Block::raw(content_key.seal_with(&self.ctx.ad_body, payload, rng));
        let header_node = HeaderNode {
            key: content_key.as_bytes().to_vec(),
            time: (time.physical_ms(), time.logical()),
        };
        let header = Block::raw(self.read.seal_with(
            &self.ctx.ad_header,
            &header_node.to_cbor(),
            rng,
        ));
        let event = Block::dag_cbor(
            EventNode {
                body: *body.cid(),
                header: *header.cid(),
            }
            .to_cbor(),
        );
        let prev_cid = prev.map(|h| h.cid);
        let message =
            self.ctx
                .signing_input(event.cid(), prev_cid.as_ref(), skip.as_ref(), counter);
        let signature = self.identity.sign(&message);
        let node = RecordNode {
            sig: signature.to_bytes().to_vec(),
            prev: prev_cid,
            skip,
            block: *event.cid(),
            counter,
        };
        // One sealed form per record: its CID (the log's head) cannot be changed by
        // whoever else holds the service key.
        let record_block = Block::raw(
            self.service
                .seal_synthetic(&self.ctx.ad_record, &node.to_cbor()),
        );
        let record = Record {
            cid: *record_block.cid(),
            event: *event.cid(),
            prev: prev_cid,
            skip,
            counter,
            signature,
        };
        let entry = Entry {
            record: record_block,
            event,
            header,
            body,
        };
        let size = entry.record.data().len()
            + entry.event.data().len()
            + entry.header.data().len()
            + entry.body.data().len();
        if size > MAX_ENTRY_BYTES {
            return Err(AppendError::TooLarge {
                size,
                max: MAX_ENTRY_BYTES,
            });
        }
        Ok(Appended { entry, record })
    }
}
