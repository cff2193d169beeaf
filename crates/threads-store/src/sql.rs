//! Conversions shared by the SQL backends: integers, CIDs, ids and entries from columns.

use threads_id::LogId;
use threads_log::{Block, Cid, Entry};

use crate::error::StoreError;
use crate::traits::{Page, Result, StoredEntry};

pub(crate) fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("value {value} out of range")))
}

pub(crate) fn to_u64(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative value {value}")))
}

pub(crate) fn cid_from(bytes: &[u8]) -> Result<Cid> {
    Cid::try_from(bytes).map_err(|e| StoreError::Corrupt(format!("bad CID: {e}")))
}

pub(crate) fn log_from(bytes: &[u8]) -> Result<LogId> {
    LogId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("bad log id: {e}")))
}

/// The columns of one stored entry, in the order the SQL backends select them.
pub(crate) struct EntryRow {
    pub(crate) counter: i64,
    pub(crate) record_cid: Vec<u8>,
    pub(crate) record: Vec<u8>,
    pub(crate) event: Vec<u8>,
    pub(crate) header: Vec<u8>,
    pub(crate) body: Vec<u8>,
}

/// Turns selected rows into a page of entries, stopping after the entry that reaches the
/// page's byte bound. The record block is checked against its stored CID; the other CIDs
/// are recomputed from the bytes.
pub(crate) fn entries_from_rows(
    rows: impl IntoIterator<Item = Result<EntryRow>>,
    page: Page,
) -> Result<Vec<StoredEntry>> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for row in rows {
        if !out.is_empty() && bytes >= page.max_bytes {
            break;
        }
        let row = row?;
        let record = Block::new(cid_from(&row.record_cid)?, row.record)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let entry = Entry {
            record,
            event: Block::dag_cbor(row.event),
            header: Block::raw(row.header),
            body: Block::raw(row.body),
        };
        bytes += entry.blocks().iter().map(|b| b.data().len()).sum::<usize>();
        out.push(StoredEntry {
            counter: to_u64(row.counter)?,
            entry,
        });
    }
    Ok(out)
}
