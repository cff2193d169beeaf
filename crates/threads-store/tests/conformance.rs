//! The conformance suite: the same checks against every backend (memory, SQLite in memory,
//! SQLite in a file, PostgreSQL on a throwaway server).

use std::sync::Arc;

#[path = "support/pg_server.rs"]
mod pg_server;

use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{Multiaddr, ThreadId, Variant};
use threads_log::{Appended, Block, Hlc, Writer, skip_target};
use threads_store::{
    AppendOutcome, MemoryStore, Page, PostgresStore, RowRange, SqliteStore, Store, StoreError,
    ThreadBook, ViewChange, ViewCommit,
};

fn thread_and_key(seed: u8) -> (ThreadId, ThreadKey) {
    (
        ThreadId::from_parts(Variant::Raw, [seed; 32]),
        ThreadKey::new(
            ServiceKey::from_bytes([seed + 1; 32]),
            ReadKey::from_bytes([seed + 2; 32]),
        ),
    )
}

/// `n` entries of one log, built with skip links.
fn build(writer: &Writer, n: usize, tag: u8) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::new();
    for i in 0..n {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        let payload = vec![tag; 16 + i % 50];
        log.push(
            writer
                .append(prev.as_ref(), skip, &payload, Hlc::new(i as u64, 0))
                .expect("append"),
        );
    }
    log
}

async fn books<S: Store>(store: &S) {
    let (thread, key) = thread_and_key(1);
    assert_eq!(store.thread_key(thread).await.expect("read"), None);
    store.put_thread(thread, &key).await.expect("put");
    assert_eq!(
        store.thread_key(thread).await.expect("read"),
        Some(key.clone())
    );
    assert_eq!(store.threads().await.expect("read"), vec![thread]);
    // Replacing the key (e.g. a follower that became a reader) keeps one thread.
    store
        .put_thread(thread, &key.to_follower())
        .await
        .expect("put");
    assert_eq!(
        store.thread_key(thread).await.expect("read"),
        Some(key.to_follower())
    );

    let me = Identity::from_secret_bytes(&[9; 32]);
    store.put_log_key(thread, &me).await.expect("put key");
    let back = store
        .log_key(thread, me.log_id())
        .await
        .expect("read")
        .expect("present");
    assert_eq!(*back.secret_bytes(), [9; 32]);
    assert!(
        store
            .log_key(thread, Identity::from_secret_bytes(&[8; 32]).log_id())
            .await
            .expect("read")
            .is_none()
    );

    let a: Multiaddr = "/ip4/127.0.0.1/tcp/4006".parse().expect("addr");
    let b: Multiaddr = "/ip4/127.0.0.1/tcp/4007".parse().expect("addr");
    store
        .add_addr(thread, me.log_id(), &a, 1_000)
        .await
        .expect("add");
    store
        .add_addr(thread, me.log_id(), &b, 2_000)
        .await
        .expect("add");
    assert_eq!(
        store.addrs(thread, me.log_id(), 500).await.expect("read"),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        store.addrs(thread, me.log_id(), 1_000).await.expect("read"),
        vec![b.clone()]
    );
    // Re-adding with a later expiry extends it; an earlier one does not shorten it.
    store
        .add_addr(thread, me.log_id(), &a, 3_000)
        .await
        .expect("add");
    store
        .add_addr(thread, me.log_id(), &a, 10)
        .await
        .expect("add");
    assert_eq!(
        store.addrs(thread, me.log_id(), 2_500).await.expect("read"),
        vec![a.clone()]
    );
    // Expiring deletes what expired (b at 2,000) and nothing else.
    assert_eq!(store.expire_addrs(thread, 2_500).await.expect("expire"), 1);
    assert_eq!(store.expire_addrs(thread, 2_500).await.expect("expire"), 0);
    assert_eq!(
        store.addrs(thread, me.log_id(), 0).await.expect("read"),
        vec![a]
    );

    store
        .put_meta(thread, "name", b"notes")
        .await
        .expect("meta");
    store.put_meta(thread, "name", b"todo").await.expect("meta");
    assert_eq!(
        store.meta(thread, "name").await.expect("read"),
        Some(b"todo".to_vec())
    );
    assert_eq!(store.meta(thread, "other").await.expect("read"), None);

    let block = Block::raw(b"loose".to_vec());
    assert!(!store.has_block(block.cid()).await.expect("has"));
    store
        .put_blocks(&[block.clone(), block.clone()])
        .await
        .expect("put");
    assert_eq!(
        store.get_block(block.cid()).await.expect("get"),
        Some(block.clone())
    );
    store.delete_blocks(&[*block.cid()]).await.expect("delete");
    assert!(!store.has_block(block.cid()).await.expect("has"));
}

async fn appends<S: Store>(store: &S) {
    let (thread, key) = thread_and_key(20);
    let writer = Writer::new(Identity::from_secret_bytes(&[21; 32]), thread, &key).expect("writer");
    let log = writer.log_id();
    let entries = build(&writer, 30, 1);

    // The thread must be known.
    assert!(matches!(
        store.append(thread, log, None, &entries[..1]).await,
        Err(StoreError::UnknownThread(t)) if t == thread
    ));
    store.put_thread(thread, &key).await.expect("put");

    // Batches of different sizes.
    let mut head = None;
    for range in [0..1, 1..5, 5..17, 17..30] {
        let batch = &entries[range];
        let outcome = store
            .append(thread, log, head, batch)
            .await
            .expect("append");
        let last = batch.last().expect("non-empty").record.head();
        assert_eq!(outcome, AppendOutcome::Appended { head: last });
        head = Some(last);
    }
    assert_eq!(store.head(thread, log).await.expect("head"), head);
    assert_eq!(store.logs(thread).await.expect("logs"), vec![log]);
    // The bytes a log holds: its entries' four blocks each, whatever the store.
    let bytes: usize = entries
        .iter()
        .map(|a| {
            a.entry
                .blocks()
                .iter()
                .map(|b| b.data().len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(
        store.log_bytes(thread, log).await.expect("bytes"),
        bytes as u64
    );
    let stranger = Identity::from_secret_bytes(&[22; 32]).log_id();
    assert_eq!(store.log_bytes(thread, stranger).await.expect("bytes"), 0);

    // Replays of stored batches are no-ops.
    let outcome = store
        .append(thread, log, None, &entries[..3])
        .await
        .expect("replay");
    assert_eq!(
        outcome,
        AppendOutcome::AlreadyStored {
            head: head.expect("head")
        }
    );
    let outcome = store
        .append(
            thread,
            log,
            Some(entries[9].record.head()),
            &entries[10..30],
        )
        .await
        .expect("replay");
    assert_eq!(
        outcome,
        AppendOutcome::AlreadyStored {
            head: head.expect("head")
        }
    );

    // Reading back, oldest first, in pages bounded by count and by bytes.
    let all = store
        .entries_after(thread, log, 0, Page::new(1_000, usize::MAX))
        .await
        .expect("read");
    assert_eq!(all.len(), 30);
    for (stored, original) in all.iter().zip(&entries) {
        assert_eq!(stored.counter, original.record.counter());
        assert_eq!(stored.entry, original.entry);
    }
    let page = store
        .entries_after(thread, log, 10, Page::new(5, usize::MAX))
        .await
        .expect("read");
    assert_eq!(
        page.iter().map(|e| e.counter).collect::<Vec<_>>(),
        [11, 12, 13, 14, 15]
    );
    let one_entry = entries[0]
        .entry
        .blocks()
        .iter()
        .map(|b| b.data().len())
        .sum::<usize>();
    let small = store
        .entries_after(thread, log, 0, Page::new(100, one_entry + 1))
        .await
        .expect("read");
    assert_eq!(
        small.len(),
        2,
        "the entry that crosses the byte bound is the last one"
    );
    let tiny = store
        .entries_after(thread, log, 0, Page::new(100, 1))
        .await
        .expect("read");
    assert_eq!(tiny.len(), 1, "a page always holds at least one entry");
    assert!(
        store
            .entries_after(thread, log, 30, Page::new(10, 1 << 20))
            .await
            .expect("read")
            .is_empty()
    );

    // Record CIDs by counter and blocks by CID.
    for c in [1u64, 13, 30] {
        assert_eq!(
            store.record_cid(thread, log, c).await.expect("read"),
            Some(*entries[c as usize - 1].record.cid())
        );
        let block = store
            .get_block(entries[c as usize - 1].record.cid())
            .await
            .expect("get");
        assert_eq!(block.as_ref(), Some(&entries[c as usize - 1].entry.record));
    }
    assert_eq!(store.record_cid(thread, log, 31).await.expect("read"), None);
    assert_eq!(store.record_cid(thread, log, 0).await.expect("read"), None);
}

async fn conflicts<S: Store>(store: &S) {
    let (thread, key) = thread_and_key(40);
    store.put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[41; 32]), thread, &key).expect("writer");
    let log = writer.log_id();
    let entries = build(&writer, 6, 1);
    let fork = build(&writer, 6, 2);
    store
        .append(thread, log, None, &entries[..3])
        .await
        .expect("append");
    let digest = store.heads_digest(thread).await.expect("digest");

    // A stale head whose batch is already stored is a no-op, not an error.
    let outcome = store
        .append(thread, log, Some(entries[0].record.head()), &entries[1..2])
        .await;
    assert_eq!(
        outcome.expect("no-op"),
        AppendOutcome::AlreadyStored {
            head: entries[2].record.head()
        }
    );
    // A fork at counter 3 (same writer, other content) is refused, and changes nothing.
    let err = store
        .append(thread, log, Some(fork[1].record.head()), &fork[2..4])
        .await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    let err = store.append(thread, log, None, &fork[..1]).await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    // A batch that is not a chain.
    let err = store
        .append(
            thread,
            log,
            Some(entries[2].record.head()),
            &[entries[3].clone(), entries[5].clone()],
        )
        .await;
    assert!(matches!(err, Err(StoreError::NotAChain(_))), "{err:?}");
    let err = store
        .append(thread, log, Some(entries[2].record.head()), &[])
        .await;
    assert!(matches!(err, Err(StoreError::NotAChain(_))), "{err:?}");
    let mut mismatched = entries[3].clone();
    mismatched.entry.event = fork[3].entry.event.clone();
    let err = store
        .append(thread, log, Some(entries[2].record.head()), &[mismatched])
        .await;
    assert!(matches!(err, Err(StoreError::NotAChain(_))), "{err:?}");

    assert_eq!(
        store.head(thread, log).await.expect("head"),
        Some(entries[2].record.head())
    );
    assert_eq!(store.heads_digest(thread).await.expect("digest"), digest);
    assert_eq!(
        store
            .entries_after(thread, log, 0, Page::new(100, usize::MAX))
            .await
            .expect("read")
            .len(),
        3
    );
}

/// Entries and view rows in one transaction: both or neither.
async fn appends_with_views<S: Store>(store: &S) {
    let (thread, key) = thread_and_key(50);
    store.put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[51; 32]), thread, &key).expect("writer");
    let log = writer.log_id();
    // More entries than one statement writes, so that the batch is split.
    let entries = build(&writer, 150, 1);
    let fork = build(&writer, 150, 2);
    let commit = |cursor: &[u8], row: &[u8]| ViewCommit {
        scope: "s".to_owned(),
        cursor: cursor.to_vec(),
        changes: vec![ViewChange {
            view: "v".to_owned(),
            puts: vec![(row.to_vec(), cursor.to_vec())],
            ..ViewChange::default()
        }],
    };
    let rows = async || {
        store
            .view_range("s", "v", &RowRange::new(Vec::new(), None, 100))
            .await
            .expect("rows")
    };
    // A new log (not registered yet): stored with the rows.
    let outcome = store
        .append_with_views(thread, log, None, &entries[..100], &[commit(b"c1", b"a")])
        .await
        .expect("append");
    assert_eq!(
        outcome,
        AppendOutcome::Appended {
            head: entries[99].record.head()
        }
    );
    assert_eq!(
        store.view_cursor("s").await.expect("cursor"),
        Some(b"c1".to_vec())
    );
    // A known log, the common case.
    store
        .append_with_views(
            thread,
            log,
            Some(entries[99].record.head()),
            &entries[100..],
            &[commit(b"c2", b"b"), commit(b"c2", b"b")],
        )
        .await
        .expect("append");
    assert_eq!(
        rows().await,
        vec![
            (b"a".to_vec(), b"c1".to_vec()),
            (b"b".to_vec(), b"c2".to_vec())
        ]
    );
    // A fork at a stale head is refused, and its rows are not written.
    let err = store
        .append_with_views(
            thread,
            log,
            Some(fork[99].record.head()),
            &fork[100..101],
            &[commit(b"x", b"x")],
        )
        .await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    // Another record 150 after the stored 149: the log's head is 150 already.
    let skip = skip_target(150).map(|t| *entries[t as usize - 1].record.cid());
    let other = writer
        .append(
            Some(&entries[148].record.head()),
            skip,
            b"other",
            Hlc::new(1000, 0),
        )
        .expect("append");
    let err = store
        .append_with_views(
            thread,
            log,
            Some(entries[148].record.head()),
            &[other],
            &[commit(b"x", b"x")],
        )
        .await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    // A batch stored already changes nothing, rows included.
    let outcome = store
        .append_with_views(
            thread,
            log,
            Some(entries[9].record.head()),
            &entries[10..20],
            &[commit(b"x", b"x")],
        )
        .await
        .expect("no-op");
    assert!(
        matches!(outcome, AppendOutcome::AlreadyStored { .. }),
        "{outcome:?}"
    );
    assert_eq!(rows().await.len(), 2);
    assert_eq!(
        store.view_cursor("s").await.expect("cursor"),
        Some(b"c2".to_vec())
    );
    let stored = store
        .entries_after(thread, log, 0, Page::new(1000, usize::MAX))
        .await
        .expect("read");
    assert_eq!(stored.len(), 150);
    assert!(stored.iter().zip(&entries).all(|(s, e)| s.entry == e.entry));
    assert_eq!(
        store.head(thread, log).await.expect("head"),
        Some(entries[149].record.head())
    );
    // A commit that changes one view twice is refused, and writes nothing.
    let twice = ViewCommit {
        changes: vec![
            commit(b"t", b"t").changes[0].clone(),
            commit(b"t", b"u").changes[0].clone(),
        ],
        ..commit(b"t", b"t")
    };
    let err = store.view_commit(&twice).await;
    assert!(matches!(err, Err(StoreError::Corrupt(_))), "{err:?}");
    assert_eq!(rows().await.len(), 2);
    // Puts of several views in one commit, beside a view's deletes.
    let several = ViewCommit {
        scope: "s".to_owned(),
        cursor: b"c3".to_vec(),
        changes: vec![
            ViewChange {
                view: "v".to_owned(),
                deletes: vec![b"a".to_vec()],
                puts: vec![(b"c".to_vec(), b"3".to_vec())],
                ..ViewChange::default()
            },
            ViewChange {
                view: "w".to_owned(),
                puts: vec![(b"a".to_vec(), b"w".to_vec())],
                ..ViewChange::default()
            },
        ],
    };
    store.view_commit(&several).await.expect("commit");
    assert_eq!(
        rows().await,
        vec![
            (b"b".to_vec(), b"c2".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );
    let w = store
        .view_range("s", "w", &RowRange::new(Vec::new(), None, 100))
        .await
        .expect("rows");
    assert_eq!(w, vec![(b"a".to_vec(), b"w".to_vec())]);
}

async fn concurrent_appenders<S: Store + 'static>(store: Arc<S>) {
    let (thread, key) = thread_and_key(60);
    store.put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[61; 32]), thread, &key).expect("writer");
    let log = writer.log_id();
    // Eight competing versions of the same log: exactly one wins.
    let versions: Vec<Vec<Appended>> = (0..8u8).map(|tag| build(&writer, 5, tag)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for version in versions.clone() {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.append(thread, log, None, &version).await });
    }
    let mut won = 0;
    while let Some(result) = tasks.join_next().await {
        match result.expect("task") {
            Ok(AppendOutcome::Appended { .. }) => won += 1,
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let stored = store
        .entries_after(thread, log, 0, Page::new(100, usize::MAX))
        .await
        .expect("read");
    let winner = versions
        .iter()
        .find(|v| v[0].entry == stored[0].entry)
        .expect("the stored log is one of the versions");
    assert_eq!(
        stored.iter().map(|s| &s.entry).collect::<Vec<_>>(),
        winner.iter().map(|a| &a.entry).collect::<Vec<_>>()
    );
    assert_eq!(
        store.head(thread, log).await.expect("head"),
        Some(winner[4].record.head())
    );
}

async fn digests<S: Store>(a: &S, b: &S) {
    let (thread, key) = thread_and_key(80);
    a.put_thread(thread, &key).await.expect("put");
    b.put_thread(thread, &key).await.expect("put");
    assert_eq!(
        a.heads_digest(thread).await.expect("d"),
        b.heads_digest(thread).await.expect("d")
    );
    let w1 = Writer::new(Identity::from_secret_bytes(&[81; 32]), thread, &key).expect("writer");
    let w2 = Writer::new(Identity::from_secret_bytes(&[82; 32]), thread, &key).expect("writer");
    let l1 = build(&w1, 3, 1);
    let l2 = build(&w2, 2, 1);
    // The same heads, stored in another order, give the same digest.
    a.append(thread, w1.log_id(), None, &l1)
        .await
        .expect("append");
    a.append(thread, w2.log_id(), None, &l2)
        .await
        .expect("append");
    b.append(thread, w2.log_id(), None, &l2)
        .await
        .expect("append");
    let before = b.heads_digest(thread).await.expect("d");
    b.append(thread, w1.log_id(), None, &l1[..2])
        .await
        .expect("append");
    assert_ne!(b.heads_digest(thread).await.expect("d"), before);
    assert_ne!(
        a.heads_digest(thread).await.expect("d"),
        b.heads_digest(thread).await.expect("d")
    );
    b.append(thread, w1.log_id(), Some(l1[1].record.head()), &l1[2..])
        .await
        .expect("append");
    assert_eq!(
        a.heads_digest(thread).await.expect("d"),
        b.heads_digest(thread).await.expect("d")
    );
}

async fn view_book<S: Store>(store: &S) {
    let row = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
    let all = RowRange::new(Vec::new(), None, usize::MAX);
    assert_eq!(store.view_cursor("s").await.expect("read"), None);
    assert!(
        store
            .view_range("s", "kv", &all)
            .await
            .expect("read")
            .is_empty()
    );
    let first = ViewCommit {
        scope: "s".to_owned(),
        cursor: b"c1".to_vec(),
        changes: vec![
            ViewChange {
                view: "kv".to_owned(),
                puts: vec![row(b"b", b"2"), row(b"a", b"1"), row(b"c", b"3")],
                ..ViewChange::default()
            },
            ViewChange {
                view: "other".to_owned(),
                puts: vec![row(b"x", b"9")],
                ..ViewChange::default()
            },
        ],
    };
    store.view_commit(&first).await.expect("commit");
    assert_eq!(
        store.view_cursor("s").await.expect("read"),
        Some(b"c1".to_vec())
    );
    assert_eq!(
        store.view_range("s", "kv", &all).await.expect("read"),
        vec![row(b"a", b"1"), row(b"b", b"2"), row(b"c", b"3")],
        "rows come back ordered by key"
    );
    // Point reads keep the order of the keys asked for; absent keys read as None.
    assert_eq!(
        store
            .view_get("s", "kv", &[b"c".to_vec(), b"zz".to_vec(), b"a".to_vec()])
            .await
            .expect("read"),
        vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]
    );
    // Ranges: bounds, exclusive start, limit.
    let range = |from: &[u8], after: bool, to: Option<&[u8]>, limit: usize| RowRange {
        from: from.to_vec(),
        after,
        to: to.map(<[u8]>::to_vec),
        limit,
        reverse: false,
    };
    assert_eq!(
        store
            .view_range("s", "kv", &range(b"a", true, Some(b"c"), 10))
            .await
            .expect("read"),
        vec![row(b"b", b"2")]
    );
    assert_eq!(
        store
            .view_range("s", "kv", &range(b"a", false, None, 2))
            .await
            .expect("read"),
        vec![row(b"a", b"1"), row(b"b", b"2")]
    );
    assert!(
        store
            .view_range("s", "kv", &range(b"c", false, Some(b"a"), 10))
            .await
            .expect("read")
            .is_empty(),
        "an empty range reads nothing"
    );
    // From the end: greatest keys first, within the bounds and the limit.
    assert_eq!(
        store
            .view_range("s", "kv", &range(b"a", false, None, 2).reversed())
            .await
            .expect("read"),
        vec![row(b"c", b"3"), row(b"b", b"2")]
    );
    assert_eq!(
        store
            .view_range("s", "kv", &range(b"a", true, Some(b"c"), 10).reversed())
            .await
            .expect("read"),
        vec![row(b"b", b"2")]
    );
    assert!(
        store
            .view_range("s", "kv", &range(b"c", false, Some(b"a"), 10).reversed())
            .await
            .expect("read")
            .is_empty(),
        "an empty range reads nothing backwards either"
    );
    // Scopes do not see each other.
    assert_eq!(store.view_cursor("t").await.expect("read"), None);
    assert!(
        store
            .view_range("t", "kv", &all)
            .await
            .expect("read")
            .is_empty()
    );

    let second = ViewCommit {
        scope: "s".to_owned(),
        cursor: b"c2".to_vec(),
        changes: vec![
            ViewChange {
                view: "kv".to_owned(),
                puts: vec![row(b"b", b"22")],
                deletes: vec![b"a".to_vec()],
                ..ViewChange::default()
            },
            ViewChange {
                view: "other".to_owned(),
                reset: true,
                puts: vec![row(b"y", b"8")],
                ..ViewChange::default()
            },
        ],
    };
    store.view_commit(&second).await.expect("commit");
    assert_eq!(
        store.view_range("s", "kv", &all).await.expect("read"),
        vec![row(b"b", b"22"), row(b"c", b"3")]
    );
    assert_eq!(
        store.view_range("s", "other", &all).await.expect("read"),
        vec![row(b"y", b"8")]
    );
    // Deleting below a key (pruning) keeps the key itself and what follows it.
    let prune = ViewCommit {
        scope: "s".to_owned(),
        cursor: b"c3".to_vec(),
        changes: vec![ViewChange {
            view: "kv".to_owned(),
            delete_below: Some(b"c".to_vec()),
            puts: vec![row(b"a", b"new")],
            ..ViewChange::default()
        }],
    };
    store.view_commit(&prune).await.expect("commit");
    assert_eq!(
        store.view_range("s", "kv", &all).await.expect("read"),
        vec![row(b"a", b"new"), row(b"c", b"3")],
        "rows below the bound are deleted before the puts"
    );
    // Many rows in one commit and one read (more than one statement's worth).
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0u32..700)
        .map(|i| (i.to_be_bytes().to_vec(), i.to_le_bytes().to_vec()))
        .collect();
    store
        .view_commit(&ViewCommit {
            scope: "s".to_owned(),
            cursor: b"c4".to_vec(),
            changes: vec![ViewChange {
                view: "many".to_owned(),
                puts: many.clone(),
                ..ViewChange::default()
            }],
        })
        .await
        .expect("commit");
    let keys: Vec<Vec<u8>> = many.iter().map(|(k, _)| k.clone()).collect();
    let values = store.view_get("s", "many", &keys).await.expect("read");
    assert_eq!(
        values,
        many.iter()
            .map(|(_, v)| Some(v.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.view_range("s", "many", &all).await.expect("read"),
        many
    );

    // Compaction drops bodies only, and only once.
    let (thread, key) = thread_and_key(9);
    store.put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::generate(), thread, &key).expect("writer");
    let log = build(&writer, 4, 7);
    store
        .append(thread, writer.log_id(), None, &log)
        .await
        .expect("append");
    let dropped = store
        .compact_bodies(thread, writer.log_id(), &[2, 3, 99])
        .await
        .expect("compact");
    assert_eq!(dropped, 2);
    let again = store
        .compact_bodies(thread, writer.log_id(), &[2])
        .await
        .expect("compact");
    assert_eq!(again, 0);
    let stored = store
        .entries_after(thread, writer.log_id(), 0, Page::new(10, 1 << 20))
        .await
        .expect("read");
    for (entry, original) in stored.iter().zip(&log) {
        let compacted = entry.counter == 2 || entry.counter == 3;
        assert_eq!(entry.entry.record, original.entry.record);
        assert_eq!(entry.entry.event, original.entry.event);
        assert_eq!(entry.entry.header, original.entry.header);
        assert_eq!(entry.entry.body.data().is_empty(), compacted);
        if !compacted {
            assert_eq!(entry.entry.body, original.entry.body);
        }
    }
    // Replaying the original batch is still recognised as stored.
    let outcome = store
        .append(thread, writer.log_id(), None, &log)
        .await
        .expect("replay");
    assert!(matches!(outcome, AppendOutcome::AlreadyStored { .. }));
    // A body put back reads back as written; an entry with a body, or absent, is left.
    let body = log[1].entry.body.data();
    assert!(
        store
            .fill_body(thread, writer.log_id(), 2, body)
            .await
            .expect("fill")
    );
    assert!(
        !store
            .fill_body(thread, writer.log_id(), 2, body)
            .await
            .expect("fill")
    );
    assert!(
        !store
            .fill_body(thread, writer.log_id(), 1, body)
            .await
            .expect("fill")
    );
    assert!(
        !store
            .fill_body(thread, writer.log_id(), 99, body)
            .await
            .expect("fill")
    );
    let stored = store
        .entries_after(thread, writer.log_id(), 0, Page::new(10, 1 << 20))
        .await
        .expect("read");
    assert_eq!(stored[1].entry.body, log[1].entry.body);
    assert_eq!(stored[0].entry.body, log[0].entry.body);
    assert!(stored[2].entry.body.data().is_empty());
}

/// Fork proofs: one per log, the lowest counter kept, across reopening the value.
async fn forks<S: Store>(store: &S) {
    let (thread, key) = thread_and_key(9);
    store.put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[10; 32]), thread, &key).expect("w");
    let verifier = threads_log::Verifier::new(thread, writer.log_id(), &key).expect("v");
    let x = build(&writer, 4, 1);
    let y = build(&writer, 4, 2);
    let proof_at = |n: usize| {
        threads_log::ForkProof::new(
            &verifier,
            x[n - 1].entry.record.clone(),
            y[n - 1].entry.record.clone(),
        )
    };
    // The two branches differ from the first record: only counter 1 proves where.
    assert!(proof_at(3).is_err());
    let at_one = proof_at(1).expect("a proof");
    assert!(
        threads_store::fork_proofs(store, thread)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        threads_store::put_fork_proof(store, thread, &at_one)
            .await
            .expect("put")
    );
    assert!(
        !threads_store::put_fork_proof(store, thread, &at_one)
            .await
            .expect("put")
    );
    let other = Writer::new(Identity::from_secret_bytes(&[11; 32]), thread, &key).expect("w");
    let other_verifier = threads_log::Verifier::new(thread, other.log_id(), &key).expect("v");
    let a = build(&other, 3, 3);
    // The same first record, a different second: forked at 2.
    let mut b2 = vec![a[0].clone()];
    b2.push(
        other
            .append(Some(&a[0].record.head()), None, b"else", Hlc::new(1, 0))
            .expect("append"),
    );
    let at_two = threads_log::ForkProof::new(
        &other_verifier,
        a[1].entry.record.clone(),
        b2[1].entry.record.clone(),
    )
    .expect("a proof");
    assert_eq!(at_two.counter(), 2);
    assert!(
        threads_store::put_fork_proof(store, thread, &at_two)
            .await
            .expect("put")
    );
    let held = threads_store::fork_proofs(store, thread)
        .await
        .expect("read");
    assert_eq!(held.len(), 2);
    assert_eq!(held[&writer.log_id()], at_one);
    assert_eq!(held[&other.log_id()], at_two);
    let stops = threads_store::fork_stops(store, thread)
        .await
        .expect("read");
    assert_eq!(stops[&writer.log_id()], 1);
    assert_eq!(stops[&other.log_id()], 2);
}

/// Deleting a thread forgets all of it (entries, keys, metadata, its views' rows and
/// cursors) and nothing of another thread.
async fn delete_thread<S: Store>(store: &S) {
    let all = RowRange::new(Vec::new(), None, usize::MAX);
    let mut made = Vec::new();
    for seed in [20u8, 30] {
        let (thread, key) = thread_and_key(seed);
        store.put_thread(thread, &key).await.expect("put");
        let writer =
            Writer::new(Identity::from_secret_bytes(&[seed + 5; 32]), thread, &key).expect("w");
        let log = build(&writer, 5, seed);
        store
            .append(thread, writer.log_id(), None, &log)
            .await
            .expect("append");
        store.put_meta(thread, "name", b"x").await.expect("meta");
        let scope = format!("{thread}/views");
        store
            .view_commit(&ViewCommit {
                scope: scope.clone(),
                cursor: b"c".to_vec(),
                changes: vec![ViewChange {
                    view: "kv".to_owned(),
                    puts: vec![(b"k".to_vec(), b"v".to_vec())],
                    ..ViewChange::default()
                }],
            })
            .await
            .expect("commit");
        made.push((thread, writer.log_id(), scope));
    }
    let (gone, gone_log, gone_scope) = made[0].clone();
    let (kept, kept_log, kept_scope) = made[1].clone();
    store.delete_thread(gone).await.expect("delete");
    store
        .delete_thread(gone)
        .await
        .expect("deleting again does nothing");
    assert_eq!(store.thread_key(gone).await.expect("read"), None);
    assert!(store.logs(gone).await.expect("read").is_empty());
    assert_eq!(store.head(gone, gone_log).await.expect("read"), None);
    assert_eq!(store.meta(gone, "name").await.expect("read"), None);
    assert_eq!(store.view_cursor(&gone_scope).await.expect("read"), None);
    assert!(
        store
            .view_range(&gone_scope, "kv", &all)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(store.threads().await.expect("read"), vec![kept]);
    assert_eq!(
        store
            .head(kept, kept_log)
            .await
            .expect("read")
            .map(|h| h.counter),
        Some(5)
    );
    assert_eq!(
        store.meta(kept, "name").await.expect("read"),
        Some(b"x".to_vec())
    );
    assert_eq!(
        store.view_cursor(&kept_scope).await.expect("read"),
        Some(b"c".to_vec())
    );
    assert_eq!(
        store
            .view_range(&kept_scope, "kv", &all)
            .await
            .expect("read")
            .len(),
        1
    );
}

async fn suite<S: Store + 'static>(make: impl AsyncFn() -> S) {
    delete_thread(&make().await).await;
    forks(&make().await).await;
    view_book(&make().await).await;
    books(&make().await).await;
    appends(&make().await).await;
    conflicts(&make().await).await;
    appends_with_views(&make().await).await;
    concurrent_appenders(Arc::new(make().await)).await;
    digests(&make().await, &make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    suite(async || MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory() {
    suite(async || SqliteStore::in_memory().await.expect("open")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let dir_path = dir.path().to_owned();
    suite(async || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SqliteStore::open(dir_path.join(format!("store-{n}.db")))
            .await
            .expect("open")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    let server = pg_server::PgServer::start();
    suite(async || {
        let url = server.fresh_database().await;
        PostgresStore::connect(&url).await.expect("connect")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_newer_schema_is_refused() {
    let server = pg_server::PgServer::start();
    let url = server.fresh_database().await;
    PostgresStore::connect(&url)
        .await
        .expect("connect")
        .close()
        .await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::query("INSERT INTO threads_schema (version) VALUES (99)")
        .execute(&pool)
        .await
        .expect("insert");
    pool.close().await;
    let err = PostgresStore::connect(&url)
        .await
        .expect_err("newer schema");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    // Connecting again (migrations are idempotent) with the current schema works.
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::query("DELETE FROM threads_schema WHERE version = 99")
        .execute(&pool)
        .await
        .expect("delete");
    pool.close().await;
    PostgresStore::connect(&url)
        .await
        .expect("reconnect")
        .close()
        .await;
}

fn sealed() -> threads_store::StoreOptions {
    threads_store::StoreOptions::new()
        .with_kdf(threads_crypto::KdfParams::new(1024, 1, 1))
        .with_passphrase("a passphrase")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sealed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let dir_path = dir.path().to_owned();
    suite(async || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SqliteStore::open_with(dir_path.join(format!("sealed-{n}.db")), &sealed())
            .await
            .expect("open")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sealed() {
    let server = pg_server::PgServer::start();
    let url = server.fresh_database().await;
    let store = PostgresStore::connect_with(&url, &sealed())
        .await
        .expect("connect");
    books(&store).await;
    store.close().await;
    let err = PostgresStore::connect(&url)
        .await
        .expect_err("needs the passphrase");
    assert!(matches!(err, StoreError::PassphraseRequired), "{err:?}");
    let wrong = threads_store::StoreOptions::new().with_passphrase("another");
    let err = PostgresStore::connect_with(&url, &wrong)
        .await
        .expect_err("wrong passphrase");
    assert!(matches!(err, StoreError::WrongPassphrase), "{err:?}");
    let store = PostgresStore::connect_with(&url, &sealed())
        .await
        .expect("reconnect");
    let (thread, _) = thread_and_key(1);
    assert!(store.thread_key(thread).await.expect("read").is_some());
}
