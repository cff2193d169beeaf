//! Shared pieces of the view tests: a thread, logs written with skip links, and an
//! order-sensitive view.

#![allow(dead_code, unreachable_pub)]

use sha2::{Digest, Sha256};
use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_views::{Event, Reducer, Reject, State, ViewKind, encode_order};

pub fn thread(seed: u8) -> (ThreadId, ThreadKey) {
    (
        ThreadId::from_parts(Variant::Raw, [seed; 32]),
        ThreadKey::new(
            ServiceKey::from_bytes([seed.wrapping_add(1); 32]),
            ReadKey::from_bytes([seed.wrapping_add(2); 32]),
        ),
    )
}

pub fn writer(thread: ThreadId, key: &ThreadKey, seed: u8) -> Writer {
    Writer::new(Identity::from_secret_bytes(&[seed; 32]), thread, key).expect("full key")
}

/// Builds a whole log: one entry per (time, payload), with skip links.
pub fn build(writer: &Writer, events: &[(Hlc, Vec<u8>)]) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::new();
    for (i, (time, payload)) in events.iter().enumerate() {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        log.push(
            writer
                .append(prev.as_ref(), skip, payload, *time)
                .expect("append"),
        );
    }
    log
}

/// An order-sensitive view: a hash chain over every operation it accepts, plus a count.
/// Operations starting with 0xFF are refused.
pub struct Chain;

impl Reducer for Chain {
    fn name(&self) -> &str {
        "chain"
    }

    fn kind(&self) -> ViewKind {
        ViewKind::Ordered
    }

    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject> {
        if event.data.first() == Some(&0xFF) {
            return Err(Reject::new("refused by the chain"));
        }
        let count = state
            .get(b"count")
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        // Refused or not depending on what came before: a late event can change it.
        if event.data.first() == Some(&0xF0) && count % 2 == 1 {
            return Err(Reject::new("refused after an odd count"));
        }
        let mut hasher = Sha256::new();
        hasher.update(state.get(b"head").unwrap_or_default());
        hasher.update(encode_order(&event.order));
        hasher.update(event.index.to_be_bytes());
        hasher.update(event.data);
        let head: [u8; 32] = hasher.finalize().into();
        state.put(b"head".to_vec(), head.to_vec());
        state.put(b"count".to_vec(), (count + 1).to_be_bytes().to_vec());
        // An accepted operation also leaves a row per operation, to make rewinds visible.
        let mut row = b"op/".to_vec();
        row.extend_from_slice(&encode_order(&event.order));
        state.put(row, event.data.to_vec());
        Ok(())
    }
}

/// A gate that admits every operation and voids the events it was told to (what an
/// operation of the thread that compacts events does for every peer).
#[derive(Debug, Default, Clone)]
pub struct Voids(
    pub std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<threads_id::LogId, Vec<u64>>>>,
);

impl Voids {
    /// Voids `events` too.
    pub fn add(&self, events: &std::collections::BTreeMap<threads_id::LogId, Vec<u64>>) {
        let mut voided = self.0.write().expect("lock");
        for (log, counters) in events {
            let all = voided.entry(*log).or_default();
            all.extend(counters);
            all.sort_unstable();
            all.dedup();
        }
    }
}

impl threads_views::Gate for Voids {
    fn admits(
        &self,
        _view: &str,
        _access: threads_views::Access,
        _resource: Option<&[u8]>,
        _event: &Event<'_>,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn voids(&self, log: &threads_id::LogId, counter: u64) -> bool {
        self.0
            .read()
            .expect("lock")
            .get(log)
            .is_some_and(|c| c.binary_search(&counter).is_ok())
    }
}

/// Compacts what `views` finds superseded as every peer would once an operation of the
/// thread names it: voided by `gate` (already the views' gate), the views recomputed,
/// the bodies dropped. Returns how many bodies were dropped.
pub async fn compact<S: threads_store::Store + 'static>(
    views: &mut threads_views::Views<S>,
    gate: &Voids,
) -> u64 {
    let superseded = views.superseded().await.expect("superseded");
    gate.add(&superseded);
    views.regate(None).await.expect("regate");
    views.drop_bodies(&superseded).await.expect("drop")
}
