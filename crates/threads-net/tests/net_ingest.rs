//! Received entries are verified completely before anything is stored; bad ones are
//! rejected with a typed reason, counted per peer, and leave the store unchanged.

use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{LogId, ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_net::message::WireEntry;
use threads_net::{Health, ingest};
use threads_store::{LogBook, MemoryStore, Page, ThreadBook};

struct Setup {
    thread: ThreadId,
    key: ThreadKey,
    writer: Writer,
    log: Vec<Appended>,
}

fn build(writer: &Writer, n: usize, tag: u8) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::new();
    for i in 0..n {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        log.push(
            writer
                .append(prev.as_ref(), skip, &[tag; 40], Hlc::new(i as u64, 0))
                .expect("append"),
        );
    }
    log
}

fn setup() -> Setup {
    let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
    let key = ThreadKey::new(
        ServiceKey::from_bytes([2; 32]),
        ReadKey::from_bytes([3; 32]),
    );
    let writer = Writer::new(Identity::from_secret_bytes(&[4; 32]), thread, &key).expect("writer");
    let log = build(&writer, 20, 1);
    Setup {
        thread,
        key,
        writer,
        log,
    }
}

fn wire(entries: &[Appended]) -> Vec<WireEntry> {
    entries
        .iter()
        .map(|a| WireEntry::from_entry(&a.entry))
        .collect()
}

async fn stored(store: &MemoryStore, s: &Setup) -> usize {
    store
        .entries_after(s.thread, s.writer.log_id(), 0, Page::new(1_000, usize::MAX))
        .await
        .expect("read")
        .len()
}

#[tokio::test]
async fn honest_batches_overlaps_and_replays() {
    let s = setup();
    let store = MemoryStore::new();
    // A follower holds only the service key, and still verifies and stores.
    store
        .put_thread(s.thread, &s.key.to_follower())
        .await
        .expect("put");
    let log = s.writer.log_id();
    let got = ingest(
        &store,
        s.thread,
        log,
        &s.key.to_follower(),
        wire(&s.log[..8]),
    )
    .await
    .expect("accept");
    assert_eq!((got.stored, got.counter), (8, 8));
    // A replay stores nothing; an overlapping batch stores only what is new.
    let got = ingest(&store, s.thread, log, &s.key, wire(&s.log[..8]))
        .await
        .expect("accept");
    assert_eq!((got.stored, got.counter), (0, 8));
    let got = ingest(&store, s.thread, log, &s.key, wire(&s.log[5..14]))
        .await
        .expect("accept");
    assert_eq!((got.stored, got.counter), (6, 14));
    assert_eq!(stored(&store, &s).await, 14);
}

#[tokio::test]
async fn every_kind_of_bad_batch_is_rejected_and_counted() {
    let s = setup();
    let store = MemoryStore::new();
    store.put_thread(s.thread, &s.key).await.expect("put");
    let log = s.writer.log_id();
    ingest(&store, s.thread, log, &s.key, wire(&s.log[..5]))
        .await
        .expect("accept");
    let head = store.head(s.thread, log).await.expect("head");
    let health = Health::new();
    let peer = Identity::from_secret_bytes(&[66; 32]).log_id().peer_id();

    let mut bad: Vec<(&str, Vec<WireEntry>, LogId, ThreadId)> = Vec::new();
    // A gap: entries 8.. without 6 and 7.
    bad.push(("gap", wire(&s.log[7..10]), log, s.thread));
    // A fork by the author: a different, validly signed record 4.
    let fork = build(&s.writer, 6, 2);
    bad.push(("fork", wire(&fork[3..6]), log, s.thread));
    // A record of another log, claimed to be this log's.
    let mallory =
        Writer::new(Identity::from_secret_bytes(&[9; 32]), s.thread, &s.key).expect("writer");
    bad.push(("decrypt", wire(&build(&mallory, 6, 1)[5..6]), log, s.thread));
    // Records of another thread (same keys, even).
    let other = Writer::new(
        Identity::from_secret_bytes(&[4; 32]),
        ThreadId::from_parts(Variant::Raw, [8; 32]),
        &s.key,
    )
    .expect("writer");
    bad.push(("decrypt", wire(&build(&other, 6, 1)[5..6]), log, s.thread));
    // Garbage bytes.
    bad.push((
        "decrypt",
        vec![WireEntry {
            record: vec![0; 200],
            event: vec![1],
            header: vec![2],
            body: vec![3],
        }],
        log,
        s.thread,
    ));
    // The right record with a body that is not the one its event links.
    let mut wrong_body = wire(&s.log[5..6]);
    wrong_body[0].body = vec![9; 80];
    bad.push(("link", wrong_body, log, s.thread));
    // A duplicated entry inside the batch breaks the chain.
    bad.push((
        "chain",
        wire(&[s.log[5].clone(), s.log[5].clone()]),
        log,
        s.thread,
    ));
    // Too many entries.
    bad.push((
        "too-many",
        vec![wire(&s.log[5..6])[0].clone(); 1_001],
        log,
        s.thread,
    ));

    for (code, entries, log, thread) in bad {
        let err = ingest(&store, thread, log, &s.key, entries)
            .await
            .expect_err(code);
        assert_eq!(err.code(), code, "{err}");
        // The sender of another branch may be honest: the author forked the log, and the
        // fork is located and proven rather than held against the sender.
        assert_eq!(err.is_peer_fault(), code != "fork", "{code}");
        health.rejected(thread, log, peer, &err);
        // Nothing changed.
        assert_eq!(
            store.head(s.thread, s.writer.log_id()).await.expect("head"),
            head
        );
        assert_eq!(stored(&store, &s).await, 5);
    }
    let report = health.report();
    assert_eq!(report.len(), 1);
    let row = &report[0].health;
    assert_eq!(row.rejected(), 8);
    assert_eq!(row.rejections.get("decrypt"), Some(&3));
    assert_eq!(row.rejections.get("fork"), Some(&1));
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("too large"))
    );

    // After all that, honest entries still go in.
    let got = ingest(
        &store,
        s.thread,
        s.writer.log_id(),
        &s.key,
        wire(&s.log[5..20]),
    )
    .await
    .expect("accept");
    assert_eq!(got.counter, 20);
}

#[tokio::test]
async fn entries_beyond_the_maximum_size_are_neither_built_nor_taken() {
    let s = setup();
    // A writer builds an entry with the largest payload that always fits, and refuses one
    // that would not fit.
    let fits = s
        .writer
        .append(
            None,
            None,
            &vec![7; threads_log::MAX_PAYLOAD_BYTES],
            Hlc::new(1, 0),
        )
        .expect("the largest payload fits");
    assert!(WireEntry::from_entry(&fits.entry).len() <= threads_log::MAX_ENTRY_BYTES);
    let refused = s.writer.append(
        None,
        None,
        &vec![7; threads_log::MAX_ENTRY_BYTES],
        Hlc::new(1, 0),
    );
    assert!(
        matches!(refused, Err(threads_log::AppendError::TooLarge { max, .. }) if max == threads_log::MAX_ENTRY_BYTES),
        "{refused:?}"
    );
    // A receiver refuses an oversized entry before verifying anything, and stores nothing.
    let store = MemoryStore::new();
    store.put_thread(s.thread, &s.key).await.expect("thread");
    let mut big = wire(&s.log[..1]);
    big[0].body = vec![0; threads_log::MAX_ENTRY_BYTES];
    let err = ingest(&store, s.thread, s.writer.log_id(), &s.key, big)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "entry-too-large");
    assert_eq!(stored(&store, &s).await, 0);
    // The entry that fits is taken.
    ingest(&store, s.thread, s.writer.log_id(), &s.key, wire(&[fits]))
        .await
        .expect("taken");
    assert_eq!(stored(&store, &s).await, 1);
}
