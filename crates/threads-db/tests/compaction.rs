//! Compaction as an operation of the thread: superseded key-value puts and document saves
//! are named by the owner, every peer applies nothing of them and drops their bodies, the
//! views stay as they were, and a new peer that joins from a compacted peer (which serves
//! those entries without their body) computes the same views. A peer that strips a body
//! nothing compacted only makes the receiver wait for a peer that has it.

mod support;

use support::{config, eventually, member};

use std::time::Duration;

use serde_json::json;
use threads_acl::Role;
use threads_crypto::Identity;
use threads_db::{DOCS_VIEW, Db, DbError, KV_VIEW};
use threads_id::{ThreadId, Variant};
use threads_store::{LogBook, MemoryStore, ViewBook};

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every row of the key-value and document views.
async fn views(db: &Db<MemoryStore>, thread: ThreadId) -> (Rows, Rows) {
    let rows = |state: &threads_views::State| state.iter().collect::<Rows>();
    (
        db.read_view(thread, KV_VIEW, rows).await.expect("kv"),
        db.read_view(thread, DOCS_VIEW, rows).await.expect("docs"),
    )
}

/// The bytes of the thread's logs in `db`'s store, and how many entries have no body.
async fn stored(db: &Db<MemoryStore>, thread: ThreadId) -> (u64, usize) {
    let store = db.node().store();
    let (mut bytes, mut bodyless) = (0, 0);
    for log in store.logs(thread).await.expect("logs") {
        bytes += store.log_bytes(thread, log).await.expect("bytes");
        let page = threads_store::Page::new(100_000, usize::MAX);
        bodyless += store
            .entries_after(thread, log, 0, page)
            .await
            .expect("entries")
            .iter()
            .filter(|e| e.entry.body.data().is_empty())
            .count();
    }
    (bytes, bodyless)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_views_shrinks_the_store_and_a_new_peer_converges() {
    let owner = Db::open_memory(Identity::from_secret_bytes(&[1; 32]), config())
        .await
        .expect("owner");
    let thread = owner
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    owner
        .transaction(thread)
        .create_collection("notes", &json!({"type": "object"}))
        .create("notes", "a", &json!({"v": 0}))
        .create("notes", "b", &json!({"v": 0}))
        .commit()
        .await
        .expect("collection");
    let writer = member(&owner, thread, 2, Role::Write).await;
    // Both overwrite keys and save documents again and again, at once.
    let (a, b) = tokio::join!(
        async {
            for i in 0..40u32 {
                let value = format!("owner {i}");
                owner
                    .transaction(thread)
                    .put(format!("k{}", i % 4).as_bytes(), value.as_bytes())
                    .save("notes", "a", &json!({"v": i, "by": "owner"}))
                    .commit()
                    .await?;
            }
            Ok::<_, DbError>(())
        },
        async {
            for i in 0..20u32 {
                let value = format!("writer {i}");
                writer
                    .transaction(thread)
                    .put(format!("k{}", i % 4).as_bytes(), value.as_bytes())
                    .commit()
                    .await?;
                writer
                    .transaction(thread)
                    .save("notes", "b", &json!({"v": i, "by": "writer"}))
                    .commit()
                    .await?;
            }
            Ok::<_, DbError>(())
        }
    );
    a.expect("owner writes");
    b.expect("writer writes");
    eventually("both peers to hold the same views", || async {
        views(&owner, thread).await == views(&writer, thread).await
    })
    .await;
    let before = views(&owner, thread).await;
    let (owner_bytes, _) = stored(&owner, thread).await;
    let (writer_bytes, _) = stored(&writer, thread).await;

    // Only the owner may compact an access-controlled thread.
    assert!(matches!(
        writer.compact(thread).await,
        Err(DbError::Forbidden { .. })
    ));
    let done = owner.compact(thread).await.expect("compact");
    // 76 of the 80 puts and 38 + 19 of the 60 saves are superseded; events that carried
    // a put and a save count once.
    assert!(done.events >= 60, "{done:?}");
    assert!(done.freed_bytes > 0, "{done:?}");
    assert_eq!(views(&owner, thread).await, before);
    let (bytes, bodyless) = stored(&owner, thread).await;
    assert!(bytes < owner_bytes, "{bytes} >= {owner_bytes}");
    assert_eq!(bodyless as u64, done.events);
    // Nothing more to do.
    assert_eq!(owner.compact(thread).await.expect("again").events, 0);

    // The writer applies the compaction: the same views, its bodies dropped too.
    eventually("the writer to drop the compacted bodies", || async {
        stored(&writer, thread).await.1 as u64 == done.events
    })
    .await;
    assert_eq!(views(&writer, thread).await, before);
    assert!(stored(&writer, thread).await.0 < writer_bytes);

    // A new peer joins from the owner alone, which serves the compacted entries without
    // their body, and computes the same views.
    let reader = member(&owner, thread, 3, Role::Read).await;
    eventually("the new peer to converge", || async {
        views(&reader, thread).await == before
    })
    .await;
    assert_eq!(stored(&reader, thread).await.1 as u64, done.events);
    for db in [owner, writer, reader] {
        db.shutdown().await;
    }
}

/// The owner compacts on a timer when configured; a peer that strips the body of an event
/// nothing compacted makes a new peer wait, not diverge: the body comes from a peer that
/// kept it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_compacts_on_a_timer_and_a_stripped_body_is_fetched_again() {
    let first_me = Identity::from_secret_bytes(&[11; 32]);
    let first = Db::open_memory(
        first_me.clone(),
        config().with_compaction(Duration::from_millis(300)),
    )
    .await
    .expect("first");
    let thread = first
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    let second = member(&first, thread, 12, Role::Write).await;
    for i in 0..30u32 {
        let db = if i % 2 == 0 { &first } else { &second };
        db.transaction(thread)
            .put(format!("k{}", i % 3).as_bytes(), i.to_string().as_bytes())
            .commit()
            .await
            .expect("put");
    }
    eventually("both peers to hold the same views", || async {
        views(&first, thread).await == views(&second, thread).await
    })
    .await;
    let before = views(&first, thread).await;
    // The owner's timer compacts the 27 superseded puts; the other member follows.
    for db in [&first, &second] {
        eventually("the compaction to reach every peer", || async {
            stored(db, thread).await.1 == 27
        })
        .await;
        assert_eq!(views(db, thread).await, before);
    }

    // The owner strips the body of the last put it wrote (which nothing compacted) and
    // serves it so; the other member keeps it.
    let log = first_me.log_id();
    let head = first
        .node()
        .store()
        .head(thread, log)
        .await
        .expect("head")
        .expect("a log");
    let store = first.node().store();
    let last_put = {
        let page = threads_store::Page::new(100_000, usize::MAX);
        let entries = store
            .entries_after(thread, log, 0, page)
            .await
            .expect("entries");
        entries
            .iter()
            .rev()
            .find(|e| !e.entry.body.data().is_empty() && e.counter > 1)
            .map(|e| e.counter)
            .expect("a put with its body")
    };
    assert!(last_put <= head.counter);
    assert_eq!(
        store
            .compact_bodies(thread, log, &[last_put])
            .await
            .expect("strip"),
        1
    );
    let third = member(&first, thread, 13, Role::Read).await;
    // It waits at the stripped entry until it learns the other member and gets the body
    // from it; then it has exactly the views.
    eventually("the third member to converge", || async {
        views(&third, thread).await == before
    })
    .await;
    assert_eq!(stored(&third, thread).await.1, 27);
    for db in [first, second, third] {
        db.shutdown().await;
    }
}

/// In a raw thread any member compacts (with its proof of the read key); a follower, which
/// holds the service key only, cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_raw_thread_compacts_and_a_follower_cannot() {
    let first = Db::open_memory(Identity::from_secret_bytes(&[21; 32]), config())
        .await
        .expect("first");
    let thread = first.create_thread(Variant::Raw).await.expect("thread");
    for value in ["red", "green", "blue"] {
        first
            .transaction(thread)
            .put(b"color", value.as_bytes())
            .commit()
            .await
            .expect("put");
    }
    let second = member(&first, thread, 22, Role::Write).await;
    let follower = member(&first, thread, 23, Role::Follow).await;
    eventually("the member to hold the writes", || async {
        views(&second, thread).await == views(&first, thread).await
    })
    .await;
    let before = views(&first, thread).await;
    assert!(matches!(
        follower.compact(thread).await,
        Err(DbError::Forbidden { .. })
    ));
    let done = second.compact(thread).await.expect("compact");
    assert_eq!(done.events, 2);
    eventually(
        "the first member to apply the member's compaction",
        || async { stored(&first, thread).await.1 == 2 },
    )
    .await;
    assert_eq!(views(&first, thread).await, before);
    assert_eq!(views(&second, thread).await, before);
    for db in [first, second, follower] {
        db.shutdown().await;
    }
}
