//! The engine's persisted cursor ("mark") and undo records.

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

/// Which views a scope serves: each view's name, kind and reducer version.
pub(crate) type Signature = Vec<(String, ViewKind, u32)>;

/// Everything the engine must know to resume: which views it serves, how far each log
/// was applied, the greatest order applied, and how far back undo records go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    pub(crate) views: Signature,
    pub(crate) logs: BTreeMap<LogId, LogMark>,
    pub(crate) last: Option<EventOrder>,
    /// Undo records of events dated before this were pruned: a late event before it
    /// rebuilds the views.
    pub(crate) undo_floor: Option<Hlc>,
    /// Whether events applied whole or not at all across the views
    /// ([`ViewConfig::atomic`](crate::ViewConfig::atomic)); `false` for a mark of version 2.
    pub(crate) atomic: bool,
}

/// The version of the mark's format. 4: a view's `ordered` is how it takes events in its
/// scope (every view of an atomic or in-order scope is ordered), no longer the reducer's
/// own kind; the bytes are those of version 3, whose marks are read as they are (an atomic
/// scope's commutative views then differ from the reducers given, and it is rebuilt).
const MARK_VERSION: u8 = 4;

/// The oldest version still read (it lacks `atomic`, which is then `false`).
const OLDEST_READ: u8 = 2;

#[derive(Serialize, Deserialize)]
struct WireMark {
    version: u8,
    views: Vec<(String, bool, u32)>,
    logs: Vec<(ByteBuf, u64, u64, u32)>,
    last: Option<ByteBuf>,
    undo_floor: Option<(u64, u32)>,
    #[serde(default)]
    atomic: bool,
}

/// Only the version of a stored mark, to tell an older format from a corrupt one.
#[derive(Deserialize)]
struct WireVersion {
    version: u8,
}

/// How an ordered view's applied event is undone: the rows it changed with their values
/// before, and where its log stood before it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct UndoRecord {
    pub(crate) prev_log: Option<LogMark>,
    /// (view, key, value before; `None`: absent).
    pub(crate) changes: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
}

#[derive(Serialize, Deserialize)]
struct WireUndo {
    version: u8,
    prev_log: Option<(u64, u64, u32)>,
    changes: Vec<(String, ByteBuf, Option<ByteBuf>)>,
}

impl UndoRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let wire = WireUndo {
            version: 1,
            prev_log: self
                .prev_log
                .map(|m| (m.counter, m.time.physical_ms(), m.time.logical())),
            changes: self
                .changes
                .iter()
                .map(|(view, key, old)| {
                    (
                        view.clone(),
                        ByteBuf::from(key.clone()),
                        old.clone().map(ByteBuf::from),
                    )
                })
                .collect(),
        };
        serde_ipld_dagcbor::to_vec(&wire).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<UndoRecord> {
        let wire: WireUndo = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ViewError::Corrupt(format!("undo record: {e}")))?;
        if wire.version != 1 {
            return Err(ViewError::Corrupt(format!(
                "undo record version {} is not supported",
                wire.version
            )));
        }
        Ok(UndoRecord {
            prev_log: wire.prev_log.map(|(counter, physical, logical)| LogMark {
                counter,
                time: Hlc::new(physical, logical),
            }),
            changes: wire
                .changes
                .into_iter()
                .map(|(view, key, old)| (view, key.into_vec(), old.map(ByteBuf::into_vec)))
                .collect(),
        })
    }
}

impl Mark {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let wire = WireMark {
            version: MARK_VERSION,
            views: self
                .views
                .iter()
                .map(|(n, k, v)| (n.clone(), *k == ViewKind::Ordered, *v))
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
            undo_floor: self.undo_floor.map(|t| (t.physical_ms(), t.logical())),
            atomic: self.atomic,
        };
        serde_ipld_dagcbor::to_vec(&wire).unwrap_or_else(|_| unreachable!("plain data encodes"))
    }

    /// Decodes a stored mark: `Ok(None)` for a mark of an earlier format (the views are
    /// then rebuilt).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Option<Mark>> {
        let version: WireVersion = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ViewError::Corrupt(format!("view cursor: {e}")))?;
        if version.version < OLDEST_READ {
            return Ok(None);
        }
        if version.version > MARK_VERSION {
            return Err(ViewError::Corrupt(format!(
                "view cursor version {} is not supported",
                version.version
            )));
        }
        let wire: WireMark = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ViewError::Corrupt(format!("view cursor: {e}")))?;
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
        Ok(Some(Mark {
            views: wire
                .views
                .into_iter()
                .map(|(n, ordered, version)| {
                    let kind = if ordered {
                        ViewKind::Ordered
                    } else {
                        ViewKind::Commutative
                    };
                    (n, kind, version)
                })
                .collect(),
            logs,
            last: wire.last.map(|b| decode_order(&b)).transpose()?,
            undo_floor: wire.undo_floor.map(|(p, l)| Hlc::new(p, l)),
            atomic: wire.atomic,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_and_undo_records_round_trip_and_old_marks_read_as_none() {
        let log = threads_crypto::Identity::generate().log_id();
        let order = EventOrder {
            time: Hlc::new(5, 1),
            log,
            counter: 3,
        };
        let mark = Mark {
            views: vec![("docs".into(), ViewKind::Ordered, 2)],
            logs: BTreeMap::from([(
                log,
                LogMark {
                    counter: 3,
                    time: Hlc::new(5, 1),
                },
            )]),
            last: Some(order),
            undo_floor: Some(Hlc::new(4, 0)),
            atomic: true,
        };
        assert_eq!(
            Mark::decode(&mark.encode()).expect("decodes"),
            Some(mark.clone())
        );
        #[derive(Serialize)]
        struct Old {
            version: u8,
        }
        // Version 1 (snapshots) rebuilds.
        let old = serde_ipld_dagcbor::to_vec(&Old { version: 1 }).expect("encodes");
        assert_eq!(Mark::decode(&old).expect("decodes"), None);
        // Version 2 reads as applied view by view (not atomic).
        #[derive(Serialize)]
        struct V2 {
            version: u8,
            views: Vec<(String, bool, u32)>,
            logs: Vec<(ByteBuf, u64, u64, u32)>,
            last: Option<ByteBuf>,
            undo_floor: Option<(u64, u32)>,
        }
        let v2 = serde_ipld_dagcbor::to_vec(&V2 {
            version: 2,
            views: vec![("docs".into(), true, 2)],
            logs: vec![(ByteBuf::from(log.to_bytes()), 3, 5, 1)],
            last: Some(ByteBuf::from(encode_order(&order).to_vec())),
            undo_floor: Some((4, 0)),
        })
        .expect("encodes");
        assert_eq!(
            Mark::decode(&v2).expect("decodes"),
            Some(Mark {
                atomic: false,
                ..mark
            })
        );
        let future = serde_ipld_dagcbor::to_vec(&Old { version: 5 }).expect("encodes");
        assert!(Mark::decode(&future).is_err());
        let undo = UndoRecord {
            prev_log: Some(LogMark {
                counter: 2,
                time: Hlc::new(4, 0),
            }),
            changes: vec![
                ("docs".into(), b"k".to_vec(), None),
                ("docs".into(), b"j".to_vec(), Some(b"v".to_vec())),
            ],
        };
        assert_eq!(UndoRecord::decode(&undo.encode()).expect("decodes"), undo);
    }

    /// The bytes of a fixed mark and undo record: docs/FORMAT.md ("Mark", "Reserved views
    /// of a scope"). Rerun with `THREADS_BLESS=1` after a deliberate format change (and bump
    /// the version).
    #[test]
    fn golden_mark_and_undo_record() {
        let log = threads_crypto::Identity::from_secret_bytes(&[1; 32]).log_id();
        let order = EventOrder {
            time: Hlc::new(1_700_000_000_000, 2),
            log,
            counter: 7,
        };
        let mark = Mark {
            views: vec![
                ("docs".into(), ViewKind::Ordered, 2),
                ("kv".into(), ViewKind::Ordered, 1),
            ],
            logs: BTreeMap::from([(
                log,
                LogMark {
                    counter: 7,
                    time: order.time,
                },
            )]),
            last: Some(order),
            undo_floor: Some(Hlc::new(1_699_999_000_000, 0)),
            atomic: true,
        };
        let undo = UndoRecord {
            prev_log: Some(LogMark {
                counter: 6,
                time: Hlc::new(1_699_999_999_000, 0),
            }),
            changes: vec![
                ("docs".into(), b"d\0people\0ann".to_vec(), None),
                ("~rejections".into(), b"k".to_vec(), Some(b"old".to_vec())),
            ],
        };
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let text = format!(
            "mark-v4 {}\nundo-v1 {}\n",
            hex(&mark.encode()),
            hex(&undo.encode())
        );
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../test_data/views/golden-v4.txt"
        );
        if std::env::var_os("THREADS_BLESS").is_some() {
            std::fs::create_dir_all(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../test_data/views"
            ))
            .expect("dir");
            std::fs::write(path, &text).expect("write golden file");
        }
        let golden = std::fs::read_to_string(path).expect("test_data/views/golden-v4.txt exists");
        assert_eq!(
            text, golden,
            "the view formats changed; if on purpose, rerun with THREADS_BLESS=1"
        );
        assert_eq!(
            Mark::decode(&mark.encode()).expect("decodes"),
            Some(mark.clone())
        );
        // A mark of version 3 (the same bytes but its version; its `kv` was recorded by
        // the reducer's own kind) is still read.
        let v3 = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../test_data/views/golden-v3.txt"
        ))
        .expect("test_data/views/golden-v3.txt exists");
        let hex3 = v3
            .lines()
            .find_map(|l| l.strip_prefix("mark-v3 "))
            .expect("a v3 mark");
        let bytes: Vec<u8> = (0..hex3.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex3[i..i + 2], 16).expect("hex"))
            .collect();
        let mut expected = mark;
        expected.views[1].1 = ViewKind::Commutative;
        assert_eq!(Mark::decode(&bytes).expect("decodes"), Some(expected));
    }
}
