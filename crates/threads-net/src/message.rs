//! The sync protocol's messages (request-response over libp2p, CBOR-encoded) and limits.
//!
//! Every request about a thread carries an [`AuthProof`] of the thread's service key. An
//! entry travels as its four blocks' bytes; the receiver recomputes every CID, so nothing on
//! the wire is trusted before verification.

use serde::{Deserialize, Serialize};
use threads_id::{LogId, ThreadId};
use threads_log::{Block, Entry};

use crate::auth::AuthProof;

/// The largest request a peer accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 8 << 20;
/// The largest response a peer accepts, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// The most entries in one page of `GetRecords` or one `PushRecords`.
pub const MAX_PAGE_ENTRIES: u32 = 1_000;
/// The most bytes of entries a peer puts in one page.
pub const MAX_PAGE_BYTES: u32 = 4 << 20;

/// One log entry on the wire: the bytes of its four blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The sealed record.
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
    /// The event (DAG-CBOR).
    #[serde(with = "serde_bytes")]
    pub event: Vec<u8>,
    /// The sealed header.
    #[serde(with = "serde_bytes")]
    pub header: Vec<u8>,
    /// The sealed body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl WireEntry {
    /// The wire form of an entry.
    pub fn from_entry(entry: &Entry) -> WireEntry {
        WireEntry {
            record: entry.record.data().to_vec(),
            event: entry.event.data().to_vec(),
            header: entry.header.data().to_vec(),
            body: entry.body.data().to_vec(),
        }
    }

    /// The entry, with every CID computed from the bytes received.
    pub fn into_entry(self) -> Entry {
        Entry {
            record: Block::raw(self.record),
            event: Block::dag_cbor(self.event),
            header: Block::raw(self.header),
            body: Block::raw(self.body),
        }
    }

    /// The entry's size in bytes.
    pub fn len(&self) -> usize {
        self.record.len() + self.event.len() + self.header.len() + self.body.len()
    }

    /// Whether the entry has no bytes at all (never true of a valid entry).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A log and how far it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// The log.
    pub log: LogId,
    /// Its number of records (0 if none).
    pub counter: u64,
    /// The CID bytes of its head record (absent from peers that do not send it, and for an
    /// empty log): a puller whose record at that counter differs has found a fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<serde_bytes::ByteBuf>,
    /// The counter at which the responder holds a proof that the log's author forked it
    /// (ask with [`Request::GetForkProof`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<u64>,
}

impl LogHead {
    /// A log at `counter`, with nothing else said.
    pub fn new(log: LogId, counter: u64) -> LogHead {
        LogHead {
            log,
            counter,
            head: None,
            fork: None,
        }
    }
}

/// One thread's entry in an `ExchangeEdges` request: the requester's digest of the thread's
/// heads, and of the fork proofs it holds when it holds any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The thread.
    pub thread: ThreadId,
    /// Proof of the thread's service key.
    pub proof: AuthProof,
    /// The requester's digest of the thread's heads (and fork proofs, when it holds any).
    #[serde(with = "serde_bytes")]
    pub digest: [u8; 32],
}

/// A request of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// The logs of a thread and their heads.
    GetLogs {
        /// The thread.
        thread: ThreadId,
        /// Proof of the service key.
        proof: AuthProof,
    },
    /// Entries of a log after a counter, oldest first, one page.
    GetRecords {
        /// The thread.
        thread: ThreadId,
        /// Proof of the service key.
        proof: AuthProof,
        /// The log.
        log: LogId,
        /// The requester's counter: entries after it are wanted.
        after: u64,
        /// The most entries wanted (capped at [`MAX_PAGE_ENTRIES`]).
        max_entries: u32,
        /// The most bytes wanted (capped at [`MAX_PAGE_BYTES`]).
        max_bytes: u32,
    },
    /// New entries of a log, pushed by a peer that has them.
    PushRecords {
        /// The thread.
        thread: ThreadId,
        /// Proof of the service key.
        proof: AuthProof,
        /// The log.
        log: LogId,
        /// The entries, oldest first.
        entries: Vec<WireEntry>,
    },
    /// The proof that the author of a log forked it, held by the responder
    /// ([`threads_log::ForkProof`]).
    GetForkProof {
        /// The thread.
        thread: ThreadId,
        /// Proof of the service key.
        proof: AuthProof,
        /// The log.
        log: LogId,
    },
    /// Compare many threads at once: which digests differ.
    ExchangeEdges {
        /// One edge per thread.
        edges: Vec<Edge>,
    },
    /// Tell a peer of the thread where the requester and the peers it knows can be
    /// reached, and ask for the peers the responder knows.
    ExchangePeers {
        /// The thread.
        thread: ThreadId,
        /// Proof of the service key.
        proof: AuthProof,
        /// Binary multiaddrs ending in `/p2p/<peer>`: the requester's own addresses first,
        /// then peers of the thread it knows (at most
        /// [`MAX_EXCHANGED_ADDRS`](crate::MAX_EXCHANGED_ADDRS) are read).
        addrs: Vec<serde_bytes::ByteBuf>,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// The responder does not hold the thread, or the proof does not show its service key
    /// (the two are not told apart, so a prober learns nothing).
    UnknownThread,
    /// The request breaks a limit.
    TooLarge,
    /// Pushed entries were rejected; the reason in words.
    Rejected(String),
    /// The responder failed; try again later.
    Unavailable,
}

/// A response of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// The logs of the thread.
    Logs(Vec<LogHead>),
    /// A page of entries, oldest first; empty when there are no more.
    Records(Vec<WireEntry>),
    /// Pushed entries were stored (or already held); the responder's counter now.
    Pushed {
        /// The responder's counter for the log after the push.
        counter: u64,
    },
    /// For each edge of the request, in order: the responder's digest if it holds the
    /// thread, else `None`.
    Edges(Vec<Option<EdgeDigest>>),
    /// The peers of the thread the responder knows, and its own addresses (binary
    /// multiaddrs ending in `/p2p/<peer>`).
    Peers(Vec<serde_bytes::ByteBuf>),
    /// The fork proof of the log asked for ([`threads_log::ForkProof::to_bytes`]), or
    /// `None` if the responder holds none.
    ForkProof(Option<serde_bytes::ByteBuf>),
    /// The request was refused.
    Refused(Refusal),
}

/// A heads digest (and fork proofs, when the responder holds any) in an `Edges` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeDigest(#[serde(with = "serde_bytes")] pub [u8; 32]);
