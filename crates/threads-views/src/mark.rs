//! The engine's persisted cursor ("mark") and snapshot formats.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use threads_id::LogId;
use threads_log::{EventOrder, Hlc};

use crate::error::{Result, ViewError};
use crate::event::{decode_order, encode_order};
use crate::reducer::ViewKind;

/// Where one log stands: the last applied counter and the time that ordered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogMark {
    pub(crate) counter: u64,
    pub(crate) time: Hlc,
}

/// Everything the engine must know to resume: which views it serves, how far each log
/// was applied, the greatest order applied, and snapshot bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    pub(crate) views: Vec<(String, ViewKind)>,
    pub(crate) logs: BTreeMap<LogId, LogMark>,
    pub(crate) last: Option<EventOrder>,
    pub(crate) since_snapshot: u64,
    pub(crate) next_snapshot: u64,
}

#[derive(Serialize, Deserialize)]
struct WireMark {
    version: u8,
    views: Vec<(String, bool)>,
    logs: Vec<(ByteBuf, u64, u64, u32)>,
    last: Option<ByteBuf>,
    since_snapshot: u64,
    next_snapshot: u64,
}

impl Mark {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let wire = WireMark {
            version: 1,
            views: self
                .views
                .iter()
                .map(|(n, k)| (n.clone(), *k == ViewKind::Ordered))
                .collect(),
            logs: self
                .logs
                .iter()
                .map(|(log, m)| {
                    (
                        ByteBuf::from(log.to_bytes()),
                        m.counter,
                        m.time.physical_ms(),
                        m.time.logical(),
                    )
                })
                .collect(),
            last: self.last.map(|o| ByteBuf::from(encode_order(&o).to_vec())),
            since_snapshot: self.since_snapshot,
            next_snapshot: self.next_snapshot,
        };
        serde_ipld_dagcbor::to_vec(&wire).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Mark> {
        let wire: WireMark = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ViewError::Corrupt(format!("view cursor: {e}")))?;
        if wire.version != 1 {
            return Err(ViewError::Corrupt(format!(
                "view cursor version {} is not supported",
                wire.version
            )));
        }
        let mut logs = BTreeMap::new();
        for (log, counter, physical, logical) in wire.logs {
            let log = LogId::from_bytes(&log)
                .map_err(|e| ViewError::Corrupt(format!("view cursor: {e}")))?;
            logs.insert(
                log,
                LogMark {
                    counter,
                    time: Hlc::new(physical, logical),
                },
            );
        }
        Ok(Mark {
            views: wire
                .views
                .into_iter()
                .map(|(n, ordered)| {
                    let kind = if ordered {
                        ViewKind::Ordered
                    } else {
                        ViewKind::Commutative
                    };
                    (n, kind)
                })
                .collect(),
            logs,
            last: wire.last.map(|b| decode_order(&b)).transpose()?,
            since_snapshot: wire.since_snapshot,
            next_snapshot: wire.next_snapshot,
        })
    }
}

/// A saved state of every view at one mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) mark: Mark,
    pub(crate) states: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
}

#[derive(Serialize, Deserialize)]
struct WireSnapshot {
    version: u8,
    mark: ByteBuf,
    states: Vec<(String, Vec<(ByteBuf, ByteBuf)>)>,
}

impl Snapshot {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let wire = WireSnapshot {
            version: 1,
            mark: ByteBuf::from(self.mark.encode()),
            states: self
                .states
                .iter()
                .map(|(name, rows)| {
                    let rows = rows
                        .iter()
                        .map(|(k, v)| (ByteBuf::from(k.clone()), ByteBuf::from(v.clone())))
                        .collect();
                    (name.clone(), rows)
                })
                .collect(),
        };
        serde_ipld_dagcbor::to_vec(&wire).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot> {
        let wire: WireSnapshot = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ViewError::Corrupt(format!("view snapshot: {e}")))?;
        if wire.version != 1 {
            return Err(ViewError::Corrupt(format!(
                "view snapshot version {} is not supported",
                wire.version
            )));
        }
        Ok(Snapshot {
            mark: Mark::decode(&wire.mark)?,
            states: wire
                .states
                .into_iter()
                .map(|(name, rows)| {
                    let rows = rows
                        .into_iter()
                        .map(|(k, v)| (k.into_vec(), v.into_vec()))
                        .collect();
                    (name, rows)
                })
                .collect(),
        })
    }
}

/// A snapshot's meta: its position (empty before any event).
pub(crate) fn position_meta(last: Option<&EventOrder>) -> Vec<u8> {
    last.map(|o| encode_order(o).to_vec()).unwrap_or_default()
}

pub(crate) fn position_from_meta(meta: &[u8]) -> Result<Option<EventOrder>> {
    if meta.is_empty() {
        Ok(None)
    } else {
        decode_order(meta).map(Some)
    }
}
