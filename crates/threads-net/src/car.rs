//! CAR export and import: a thread's logs as a CARv1 file, the standard IPLD archive any
//! IPFS tool reads.
//!
//! Layout (docs/FORMAT.md, "CAR archives"): the header is `{roots: [head record CIDs],
//! version: 1}`; then, for each log in log id order, a marker block (DAG-CBOR
//! `{thread, log, counter}`) followed by the log's entries in counter order, each as its
//! record, event, header and body blocks, encrypted as stored (a compacted entry's body
//! block is the empty raw block). Import checks every block's
//! CID against its bytes, then verifies and stores each log exactly as sync does
//! ([`ingest`](crate::ingest)): a tampered archive is refused with the reason, and what
//! was stored before the refusal is a valid prefix of each log.

use serde::{Deserialize, Serialize};
use threads_id::{LogId, ThreadId, varint};
use threads_log::{Block, Cid, DAG_CBOR, RAW, SHA2_256, cid_of};
use threads_store::{Page, Store, StoreError};

use crate::ingest::{Rejection, ingest};
use crate::message::{MAX_PAGE_ENTRIES, WireEntry};

/// The CAR version written and read.
pub const CAR_VERSION: u64 = 1;

/// The largest section (one block with its CID) import reads, in bytes: an entry's
/// blocks are each at most an entry's size.
const MAX_SECTION_BYTES: u64 = 2 << 20;

/// Why an archive could not be written or read. On import, what was stored before the
/// error stays (whole verified batches of each log).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The bytes are not a CARv1 archive of a thread.
    #[error("malformed archive: {0}")]
    Malformed(String),
    /// A block's CID does not name its bytes.
    #[error("block {index} of the archive: its CID does not match its bytes")]
    Cid {
        /// The block's position in the archive, from 0.
        index: usize,
    },
    /// The archive is of a thread whose keys this peer does not hold.
    #[error("this peer does not hold the keys of thread {0}: join it first")]
    UnknownThread(ThreadId),
    /// Entries of a log were refused, as sync would refuse them.
    #[error("log {log}: {rejection}")]
    Rejected {
        /// The log.
        log: LogId,
        /// Why.
        rejection: Rejection,
    },
    /// A root of the header is not the head of a log in the archive.
    #[error("root {0} is not the head of a log in the archive")]
    Root(Cid),
}

#[derive(Serialize, Deserialize)]
struct Header {
    roots: Vec<Cid>,
    version: u64,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    #[serde(with = "serde_bytes")]
    thread: Vec<u8>,
    #[serde(with = "serde_bytes")]
    log: Vec<u8>,
    counter: u64,
}

/// What an export wrote or an import read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CarSummary {
    /// Logs in the archive.
    pub logs: usize,
    /// Entries in the archive.
    pub entries: u64,
    /// Entries import stored (new to this peer).
    pub stored: u64,
}

fn section(out: &mut Vec<u8>, cid: &Cid, data: &[u8]) {
    let cid = cid.to_bytes();
    varint::encode((cid.len() + data.len()) as u64, out);
    out.extend_from_slice(&cid);
    out.extend_from_slice(data);
}

/// The CARv1 archive of every log of `thread` this store holds.
///
/// # Errors
/// A store error.
pub async fn export_car<S: Store>(
    store: &S,
    thread: ThreadId,
) -> Result<(Vec<u8>, CarSummary), CarError> {
    let mut logs = store.logs(thread).await?;
    logs.sort();
    let mut heads = Vec::new();
    for log in &logs {
        if let Some(head) = store.head(thread, *log).await? {
            heads.push((*log, head));
        }
    }
    let header = Header {
        roots: heads.iter().map(|(_, h)| h.cid).collect(),
        version: CAR_VERSION,
    };
    let header =
        serde_ipld_dagcbor::to_vec(&header).map_err(|e| CarError::Malformed(e.to_string()))?;
    let mut out = Vec::new();
    varint::encode(header.len() as u64, &mut out);
    out.extend_from_slice(&header);
    let mut summary = CarSummary {
        logs: heads.len(),
        ..CarSummary::default()
    };
    for (log, head) in heads {
        let marker = Marker {
            thread: thread.to_bytes().to_vec(),
            log: log.to_bytes(),
            counter: head.counter,
        };
        let marker = Block::dag_cbor(
            serde_ipld_dagcbor::to_vec(&marker).map_err(|e| CarError::Malformed(e.to_string()))?,
        );
        section(&mut out, marker.cid(), marker.data());
        let mut after = 0;
        while after < head.counter {
            let page = store
                .entries_after(thread, log, after, Page::new(1024, 16 << 20))
                .await?;
            let Some(last) = page.last() else { break };
            after = last.counter;
            for stored in &page {
                // A compacted entry's body is the empty raw block (its own CID): the
                // archive stays a CARv1 whose every block matches its CID, and import takes
                // the entry as sync takes a compacted one.
                for block in stored.entry.blocks() {
                    section(&mut out, block.cid(), block.data());
                }
                summary.entries += 1;
            }
        }
    }
    Ok((out, summary))
}

/// Reads one length-prefixed section; `None` at the end.
fn read_section<'a>(input: &mut &'a [u8]) -> Result<Option<(Cid, &'a [u8])>, CarError> {
    if input.is_empty() {
        return Ok(None);
    }
    let (len, rest) =
        varint::decode(input).map_err(|e| CarError::Malformed(format!("section length: {e}")))?;
    if len > MAX_SECTION_BYTES || len as usize > rest.len() {
        return Err(CarError::Malformed(
            "a section is longer than the archive allows".into(),
        ));
    }
    let (body, rest) = rest.split_at(len as usize);
    let mut cursor = std::io::Cursor::new(body);
    let cid = Cid::read_bytes(&mut cursor).map_err(|e| CarError::Malformed(format!("CID: {e}")))?;
    let data = &body[cursor.position() as usize..];
    *input = rest;
    Ok(Some((cid, data)))
}

/// Imports an archive made by [`export_car`] (or any CARv1 archive of the same layout):
/// every block's CID is checked against its bytes, then each log is verified and stored as
/// sync would (in pages; entries this store holds are skipped). The thread's keys must be
/// held already (an archive carries no keys).
///
/// # Errors
/// Why the archive is refused ([`CarError`]); what was stored before stays.
pub async fn import_car<S: Store>(
    store: &S,
    bytes: &[u8],
) -> Result<(ThreadId, CarSummary), CarError> {
    let mut input = bytes;
    let (len, rest) =
        varint::decode(input).map_err(|e| CarError::Malformed(format!("header length: {e}")))?;
    if len as usize > rest.len() || len > MAX_SECTION_BYTES {
        return Err(CarError::Malformed("truncated header".into()));
    }
    let (header, rest) = rest.split_at(len as usize);
    let header: Header = serde_ipld_dagcbor::from_slice(header)
        .map_err(|e| CarError::Malformed(format!("header: {e}")))?;
    if header.version != CAR_VERSION {
        return Err(CarError::Malformed(format!(
            "CAR version {}",
            header.version
        )));
    }
    input = rest;
    let mut index = 0usize;
    let mut next = |input: &mut &[u8]| -> Result<Option<Block>, CarError> {
        let Some((cid, data)) = read_section(input)? else {
            return Ok(None);
        };
        let at = index;
        index += 1;
        if cid.hash().code() != SHA2_256
            || !matches!(cid.codec(), RAW | DAG_CBOR)
            || cid_of(cid.codec(), data) != cid
        {
            return Err(CarError::Cid { index: at });
        }
        Ok(Some(if cid.codec() == DAG_CBOR {
            Block::dag_cbor(data.to_vec())
        } else {
            Block::raw(data.to_vec())
        }))
    };
    let mut thread: Option<(ThreadId, threads_crypto::ThreadKey)> = None;
    let mut summary = CarSummary::default();
    let mut heads: Vec<Cid> = Vec::new();
    while let Some(marker) = next(&mut input)? {
        let marker: Marker = serde_ipld_dagcbor::from_slice(marker.data())
            .map_err(|e| CarError::Malformed(format!("log marker: {e}")))?;
        let id = ThreadId::from_bytes(&marker.thread)
            .map_err(|e| CarError::Malformed(format!("thread id: {e}")))?;
        let log = LogId::from_bytes(&marker.log)
            .map_err(|e| CarError::Malformed(format!("log id: {e}")))?;
        let key = match &thread {
            Some((known, key)) if *known == id => key.clone(),
            Some((known, _)) => {
                return Err(CarError::Malformed(format!(
                    "logs of two threads, {known} and {id}"
                )));
            }
            None => {
                let key = store
                    .thread_key(id)
                    .await?
                    .ok_or(CarError::UnknownThread(id))?;
                thread = Some((id, key.clone()));
                key
            }
        };
        summary.logs += 1;
        let mut page: Vec<WireEntry> = Vec::new();
        let mut last = None;
        for _ in 0..marker.counter {
            let mut blocks = Vec::with_capacity(4);
            for _ in 0..4 {
                blocks.push(
                    next(&mut input)?
                        .ok_or_else(|| CarError::Malformed(format!("log {log} ends early")))?,
                );
            }
            last = Some(*blocks[0].cid());
            let mut blocks = blocks.into_iter().map(Block::into_data);
            let mut take = || blocks.next().unwrap_or_default();
            page.push(WireEntry {
                record: take(),
                event: take(),
                header: take(),
                body: take(),
            });
            summary.entries += 1;
            if page.len() == MAX_PAGE_ENTRIES as usize {
                summary.stored +=
                    store_page(store, id, log, &key, std::mem::take(&mut page)).await?;
            }
        }
        if !page.is_empty() {
            summary.stored += store_page(store, id, log, &key, page).await?;
        }
        heads.extend(last);
    }
    let Some((thread, _)) = thread else {
        return Err(CarError::Malformed("no log in the archive".into()));
    };
    for root in header.roots {
        if !heads.contains(&root) {
            return Err(CarError::Root(root));
        }
    }
    Ok((thread, summary))
}

async fn store_page<S: Store>(
    store: &S,
    thread: ThreadId,
    log: LogId,
    key: &threads_crypto::ThreadKey,
    page: Vec<WireEntry>,
) -> Result<u64, CarError> {
    let done = ingest(store, thread, log, key, page)
        .await
        .map_err(|rejection| CarError::Rejected { log, rejection })?;
    Ok(done.stored as u64)
}
