//! Invariant checks over arbitrary bytes that can arrive from the network, shared by the
//! fuzz targets (`fuzz/`) and the replay tests (`tests/fuzz_replay.rs`). Each must never
//! panic, whatever the input.

use std::sync::Arc;

use threads_store::{LogBook, MemoryStore, ThreadBook};

use crate::gossip::{decode_announcement, encode_announcement};
use crate::invite::Invite;
use crate::message::{Request, Response, WireEntry};

/// Decodes arbitrary bytes as a sync request and as a sync response, exactly as the node's
/// codec does (CBOR); whatever decodes encodes back to a message that decodes the same.
pub fn message_bytes(data: &[u8]) {
    if let Ok(request) = cbor4ii::serde::from_slice::<Request>(data) {
        let again = cbor4ii::serde::to_vec(Vec::new(), &request).expect("a request encodes");
        let back: Request = cbor4ii::serde::from_slice(&again).expect("its encoding decodes");
        assert_eq!(back, request);
    }
    if let Ok(response) = cbor4ii::serde::from_slice::<Response>(data) {
        let again = cbor4ii::serde::to_vec(Vec::new(), &response).expect("a response encodes");
        let back: Response = cbor4ii::serde::from_slice(&again).expect("its encoding decodes");
        assert_eq!(back, response);
    }
}

/// Decodes arbitrary bytes as a head announcement (gossip); one that decodes is the
/// encoding of what it decodes to.
pub fn announcement(data: &[u8]) {
    if let Some((log, counter)) = decode_announcement(data) {
        assert_eq!(encode_announcement(&log, counter), data);
    }
}

/// Parses arbitrary bytes as an invite; one that parses round-trips through its bytes.
pub fn invite_bytes(data: &[u8]) {
    if let Ok(invite) = Invite::from_bytes(data) {
        let bytes = invite.to_bytes();
        let again = Invite::from_bytes(&bytes).expect("an invite's bytes parse");
        assert!(again == invite, "an invite round-trips");
    }
}

/// Decodes arbitrary bytes as a page of wire entries (CBOR) and ingests it into an empty
/// store for the fixture's log (`threads_log::check::fixture`), as a pull or a push would:
/// never a panic; what is accepted is a verified chain from the log's start, and the head
/// is its last record.
pub fn wire_entries(data: &[u8]) {
    let Ok(entries) = cbor4ii::serde::from_slice::<Vec<WireEntry>>(data) else {
        return;
    };
    let (thread, key, writer) = threads_log::check::fixture();
    let log = writer.log_id();
    let store = Arc::new(MemoryStore::new());
    futures::executor::block_on(async {
        store
            .put_thread(thread, &key)
            .await
            .expect("a memory store");
        let offered = entries.len();
        if let Ok(ingested) = crate::ingest(&*store, thread, log, &key, entries).await {
            let head = store.head(thread, log).await.expect("a memory store");
            let stored = head.map_or(0, |h| h.counter);
            assert!(stored <= offered as u64, "{ingested:?}");
            if let Some(head) = head {
                let cid = store
                    .record_cid(thread, log, head.counter)
                    .await
                    .expect("a memory store");
                assert_eq!(cid, Some(head.cid));
            }
        }
    });
}

/// Imports arbitrary bytes as a CAR archive into a store that holds the fixture's thread
/// key (`threads_log::check::fixture`), as `threads thread import` would: never a panic;
/// what import accepts re-exports to an archive that imports again, entry for entry.
pub fn car_bytes(data: &[u8]) {
    let (thread, key, _) = threads_log::check::fixture();
    let store = MemoryStore::new();
    futures::executor::block_on(async {
        store
            .put_thread(thread, &key)
            .await
            .expect("a memory store");
        let Ok((imported, summary)) = crate::car::import_car(&store, data).await else {
            return;
        };
        assert_eq!(imported, thread, "only the fixture's keys are held");
        let (again, exported) = crate::car::export_car(&store, thread)
            .await
            .expect("what was imported exports");
        assert!(exported.entries <= summary.entries);
        let other = MemoryStore::new();
        other
            .put_thread(thread, &key)
            .await
            .expect("a memory store");
        if exported.logs > 0 {
            let (_, reread) = crate::car::import_car(&other, &again)
                .await
                .expect("an export imports");
            assert_eq!(reread.entries, exported.entries);
        }
    });
}
