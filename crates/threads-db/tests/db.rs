//! The database facade: two peers in one process sync a thread over libp2p; transactions
//! are one event and a refused one writes nothing; a follower replicates but cannot read or
//! write; listeners are lossless; a database reopened from its file resumes.

mod support;

use support::{config, eventually};

#[cfg(feature = "postgres")]
#[path = "../../threads-store/tests/support/pg_server.rs"]
mod pg_server;

use std::time::{Duration, Instant};

use serde_json::json;
use threads_acl::Role;
use threads_crypto::Identity;
use threads_db::{ChangeKind, Db, DbError, DocAction, DocError, Query, ResultChange, Source};
use threads_id::Variant;
use threads_store::{LogBook, ThreadBook};
use threads_views::Cursor;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_sync_transactions_followers_and_listeners() {
    let alice = Db::open_memory(Identity::from_secret_bytes(&[1; 32]), config())
        .await
        .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[2; 32]), config())
        .await
        .expect("bob");
    let follower = Db::open_memory(Identity::from_secret_bytes(&[3; 32]), config())
        .await
        .expect("follower");
    let thread = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    let schema = json!({"type": "object", "required": ["title"]});
    let first = alice
        .transaction(thread)
        .create_collection("notes", &schema)
        .create("notes", "a", &json!({"title": "one"}))
        .put(b"k", b"v")
        .commit()
        .await
        .expect("one event");

    // A refused transaction writes nothing, and says why.
    let refused = alice
        .transaction(thread)
        .put(b"k", b"other")
        .create("notes", "b", &json!({"no": "title"}))
        .commit()
        .await;
    assert!(matches!(
        refused,
        Err(DbError::Doc(DocError::SchemaViolation { .. }))
    ));
    assert_eq!(
        alice.get(thread, b"k").await.expect("get"),
        Some(b"v".to_vec())
    );
    let unknown = alice
        .transaction(thread)
        .create("nothing", "x", &json!({}))
        .commit()
        .await;
    assert!(matches!(
        unknown,
        Err(DbError::Doc(DocError::UnknownCollection(_)))
    ));
    let head = alice
        .node()
        .store()
        .head(thread, alice.identity().log_id())
        .await
        .expect("head")
        .expect("some");
    assert_eq!(head.counter, first);

    let invite = alice
        .invite(thread, bob.identity().log_id(), Role::Write)
        .await
        .expect("invite");
    assert_eq!(bob.join(&invite).await.expect("join"), thread);
    assert_eq!(
        bob.doc(thread, "notes", "a").await.expect("doc"),
        Some(json!({"title": "one"}))
    );
    let to_follower = alice
        .invite(thread, follower.identity().log_id(), Role::Follow)
        .await
        .expect("invite");
    follower.join(&to_follower).await.expect("join");

    // A live query on alice: first the whole result set, then each change.
    let mut live = alice
        .live_query(thread, Source::Documents, "notes", Query::all())
        .await
        .expect("live query");
    let first = tokio::time::timeout(LIMIT, live.recv())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(
        first,
        [ResultChange::Added {
            id: "a".into(),
            doc: json!({"title": "one"})
        }]
    );

    // Bob writes; alice sees it (pushed), and so does a listener from the start.
    bob.transaction(thread)
        .create("notes", "b", &json!({"title": "two"}))
        .commit()
        .await
        .expect("bob writes");
    eventually("alice to see bob's note", || async {
        alice
            .doc(thread, "notes", "b")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let next = tokio::time::timeout(LIMIT, live.recv())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(
        next,
        [ResultChange::Added {
            id: "b".into(),
            doc: json!({"title": "two"})
        }]
    );
    let mut listener = alice
        .subscribe(thread, Cursor::default())
        .await
        .expect("subscribe");
    let mut authors = Vec::new();
    while let Ok(Some(event)) = listener.try_next().await {
        authors.push(event.order.log);
    }
    assert!(authors.contains(&bob.identity().log_id()));
    assert!(authors.len() >= 4, "{authors:?}");

    // The follower holds the records but cannot read or write.
    eventually("the follower to replicate bob's log", || async {
        follower
            .node()
            .store()
            .head(thread, bob.identity().log_id())
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    assert!(matches!(
        follower.query(thread, "notes", &Query::all()).await,
        Err(DbError::Doc(DocError::UnknownCollection(_)))
    ));
    assert!(matches!(
        follower.transaction(thread).put(b"x", b"y").commit().await,
        Err(DbError::CannotWrite(_))
    ));
    for db in [&alice, &bob, &follower] {
        db.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_reopened_from_its_file_resumes() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("db.sqlite");
    let me = Identity::from_secret_bytes(&[9; 32]);
    let thread = {
        let db = Db::open_sqlite(&path, me.clone(), config())
            .await
            .expect("open");
        let thread = db.create_thread(Variant::Raw).await.expect("thread");
        db.transaction(thread)
            .put(b"a", b"1")
            .create_collection("c", &json!({"type": "object"}))
            .create("c", "x", &json!({"n": 1}))
            .commit()
            .await
            .expect("write");
        db.change_crdt(thread, "notes", "n", |doc| {
            use automerge::transaction::Transactable;
            doc.put(automerge::ROOT, "text", "hello")?;
            Ok(())
        })
        .await
        .expect("automerge");
        db.shutdown().await;
        thread
    };
    let db = Db::open_sqlite(&path, me, config()).await.expect("reopen");
    assert_eq!(db.threads().await, [thread]);
    assert_eq!(
        db.get(thread, b"a").await.expect("get"),
        Some(b"1".to_vec())
    );
    assert_eq!(
        db.doc(thread, "c", "x").await.expect("doc"),
        Some(json!({"n": 1}))
    );
    assert_eq!(
        db.crdt(thread, "notes", "n").await.expect("crdt"),
        Some(json!({"text": "hello"}))
    );
    db.shutdown().await;
}

// `Db::open_postgres` is the cargo feature `postgres`, which the workspace's test run turns
// on (the CLI enables it).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_on_postgresql_resumes() {
    let server = pg_server::PgServer::start();
    let url = server.fresh_database().await;
    let me = Identity::from_secret_bytes(&[8; 32]);
    let thread = {
        let db = Db::open_postgres(&url, me.clone(), config())
            .await
            .expect("open");
        let thread = db
            .create_thread(Variant::AccessControlled)
            .await
            .expect("thread");
        db.transaction(thread)
            .put(b"k", b"v")
            .create_collection("c", &json!({"type": "object"}))
            .create("c", "x", &json!({"n": 2}))
            .commit()
            .await
            .expect("write");
        db.shutdown().await;
        thread
    };
    let db = Db::open_postgres(&url, me, config()).await.expect("reopen");
    assert_eq!(
        db.get(thread, b"k").await.expect("get"),
        Some(b"v".to_vec())
    );
    assert_eq!(
        db.doc(thread, "c", "x").await.expect("doc"),
        Some(json!({"n": 2}))
    );
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_checked_operation_after_operation_and_refused_whole() {
    let db = Db::open_memory(Identity::from_secret_bytes(&[40; 32]), config())
        .await
        .expect("db");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    db.transaction(thread)
        .create_collection("notes", &json!({"type": "object"}))
        .commit()
        .await
        .expect("collection");
    let head = |db: &Db<threads_store::MemoryStore>| {
        let db = db.clone();
        async move {
            db.node()
                .store()
                .head(thread, db.identity().log_id())
                .await
                .expect("head")
                .map(|h| h.counter)
        }
    };
    let before = head(&db).await;
    // Each operation is valid against the state before the transaction; the second
    // conflicts with the first.
    let refused = db
        .transaction(thread)
        .put(b"k", b"v")
        .create("notes", "x", &json!({"n": 1}))
        .create("notes", "x", &json!({"n": 2}))
        .commit()
        .await;
    match refused {
        Err(DbError::Rejected { refused, .. }) => {
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!((refused[0].index, refused[0].view.as_str()), (2, "docs"));
            assert!(!refused[0].forbidden);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // Nothing of it was stored or applied: not the key, not the first document.
    assert_eq!(head(&db).await, before);
    assert_eq!(db.get(thread, b"k").await.expect("get"), None);
    assert_eq!(db.doc(thread, "notes", "x").await.expect("doc"), None);
    // The views' rows were not changed by the check either.
    db.transaction(thread)
        .create("notes", "x", &json!({"n": 3}))
        .commit()
        .await
        .expect("the same document alone is fine");
    assert_eq!(
        db.doc(thread, "notes", "x").await.expect("doc"),
        Some(json!({"n": 3}))
    );
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_the_acl_refuses_are_forbidden_before_they_are_stored() {
    let owner = Db::open_memory(Identity::from_secret_bytes(&[41; 32]), config())
        .await
        .expect("owner");
    let reader = Db::open_memory(Identity::from_secret_bytes(&[42; 32]), config())
        .await
        .expect("reader");
    let writer = Db::open_memory(Identity::from_secret_bytes(&[43; 32]), config())
        .await
        .expect("writer");
    let thread = owner
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    for (db, role) in [(&reader, Role::Read), (&writer, Role::Write)] {
        let invite = owner
            .invite(thread, db.identity().log_id(), role)
            .await
            .expect("invite");
        db.join(&invite).await.expect("join");
    }
    let stored = |db: &Db<threads_store::MemoryStore>| {
        let db = db.clone();
        async move {
            db.node()
                .store()
                .head(thread, db.identity().log_id())
                .await
                .expect("head")
        }
    };
    // A reader's write.
    let write = reader.transaction(thread).put(b"k", b"v").commit().await;
    assert!(
        matches!(&write, Err(DbError::Forbidden { refused, .. }) if refused[0].forbidden),
        "{write:?}"
    );
    assert_eq!(stored(&reader).await, None, "nothing stored");
    // A writer (not an editor of the ACL) inviting someone, or changing a role.
    let invite = writer
        .invite(thread, Identity::generate().log_id(), Role::Write)
        .await;
    assert!(
        matches!(&invite, Err(DbError::Forbidden { refused, .. }) if refused[0].view == "acl"),
        "{invite:?}"
    );
    assert_eq!(stored(&writer).await, None, "nothing stored");
    // The writer's own writes go through.
    writer
        .transaction(thread)
        .put(b"k", b"w")
        .commit()
        .await
        .expect("a writer writes");
    assert_eq!(
        writer.get(thread, b"k").await.expect("get"),
        Some(b"w".to_vec())
    );
    // Deleting a collection takes the delete role: refused to the writer, the owner's
    // reaches the writer.
    owner
        .transaction(thread)
        .create_collection("notes", &serde_json::json!({"type": "object"}))
        .commit()
        .await
        .expect("collection");
    let notes = |db: &Db<threads_store::MemoryStore>| {
        let db = db.clone();
        async move {
            db.read_view(thread, threads_db::DOCS_VIEW, threads_db::Docs::collections)
                .await
                .expect("collections")
                .len()
        }
    };
    let mut waited = Instant::now();
    while notes(&writer).await == 0 {
        assert!(
            waited.elapsed() < LIMIT,
            "the collection did not reach the writer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped = writer
        .transaction(thread)
        .drop_collection("notes")
        .commit()
        .await;
    assert!(
        matches!(&dropped, Err(DbError::Forbidden { refused, .. }) if refused[0].forbidden),
        "{dropped:?}"
    );
    owner
        .transaction(thread)
        .drop_collection("notes")
        .commit()
        .await
        .expect("the owner drops it");
    waited = Instant::now();
    while notes(&writer).await != 0 {
        assert!(
            waited.elapsed() < LIMIT,
            "the drop did not reach the writer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for db in [owner, reader, writer] {
        db.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_set_back_across_a_restart_keeps_writes_valid() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("db.sqlite");
    let me = Identity::from_secret_bytes(&[44; 32]);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64;
    let now = Arc::new(AtomicU64::new(wall));
    let time = {
        let now = Arc::clone(&now);
        threads_db::TimeFn::new(move || now.load(Ordering::SeqCst))
    };
    let open = || Db::open_sqlite(&path, me.clone(), config().with_time(time.clone()));
    let db = open().await.expect("open");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    db.transaction(thread)
        .put(b"before", b"1")
        .commit()
        .await
        .expect("write");
    db.shutdown().await;
    // The wall clock moves back ten minutes while the peer is down.
    now.fetch_sub(10 * 60 * 1_000, Ordering::SeqCst);
    let db = open().await.expect("reopen");
    for i in 0..3u8 {
        db.transaction(thread)
            .put(&[b'k', i], b"after")
            .commit()
            .await
            .expect("write after the clock moved back");
    }
    // Every event applied: none refused for going back in time in its log.
    assert_eq!(db.rejections(thread).await.expect("rejections"), vec![]);
    assert_eq!(
        db.get(thread, b"k\x02").await.expect("get"),
        Some(b"after".to_vec())
    );
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_task_running() {
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = alive();
    let alice = Db::open_memory(Identity::from_secret_bytes(&[45; 32]), config())
        .await
        .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[46; 32]), config())
        .await
        .expect("bob");
    let thread = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    alice
        .transaction(thread)
        .create_collection("notes", &json!({"type": "object"}))
        .commit()
        .await
        .expect("collection");
    let invite = alice
        .invite(thread, bob.identity().log_id(), Role::Write)
        .await
        .expect("invite");
    bob.join(&invite).await.expect("join");
    // Pushes, sync rounds, a live query whose receiver is still held.
    let mut live = alice
        .live_query(thread, Source::Documents, "notes", Query::all())
        .await
        .expect("live query");
    for i in 0..5 {
        bob.transaction(thread)
            .create("notes", &format!("n{i}"), &json!({"i": i}))
            .commit()
            .await
            .expect("write");
    }
    assert!(alive() > before, "the databases run tasks");
    alice.shutdown().await;
    bob.shutdown().await;
    // A task that has returned is released by the runtime just after its joiner is told,
    // so the count may take a moment to settle; a task still running never lets it.
    eventually("every task to end with shutdown", || async {
        alive() == before
    })
    .await;
    // The live query's channel is closed (after what it had sent).
    while let Ok(Some(_)) = tokio::time::timeout(LIMIT, live.recv()).await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_each_gets_an_honest_answer() {
    let db = Db::open_memory(Identity::from_secret_bytes(&[47; 32]), config())
        .await
        .expect("db");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    db.transaction(thread)
        .create_collection("notes", &json!({"type": "object"}))
        .commit()
        .await
        .expect("collection");
    let before = db
        .node()
        .store()
        .head(thread, db.identity().log_id())
        .await
        .expect("head")
        .map_or(0, |h| h.counter);
    // 32 tasks create the same document, 32 others one each, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let db = db.clone();
        tasks.spawn(async move {
            let id = if i % 2 == 0 {
                "same".to_owned()
            } else {
                format!("own{i}")
            };
            let result = db
                .transaction(thread)
                .create("notes", &id, &json!({"by": i}))
                .commit()
                .await;
            if let Ok(counter) = result {
                // Acknowledged only once applied: the document is there.
                assert_eq!(
                    db.doc(thread, "notes", &id).await.expect("doc").map(|d| d["by"].clone()),
                    Some(json!(i))
                );
                Some(counter)
            } else {
                // Refused by the transaction's own check if the document was there
                // already, or by the group's check if it came in the same group.
                assert!(
                    matches!(&result, Err(DbError::Rejected { refused, .. }) if refused[0].index == 0)
                        || matches!(&result, Err(DbError::Doc(DocError::Exists { .. }))),
                    "{result:?}"
                );
                None
            }
        });
    }
    let mut counters = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Some(counter) = done.expect("task") {
            counters.push(counter);
        }
    }
    // One creation of "same" and the 32 others, each with its own counter, no gaps.
    counters.sort_unstable();
    let expected: Vec<u64> = (before + 1..=before + 33).collect();
    assert_eq!(counters, expected);
    assert_eq!(db.rejections(thread).await.expect("rejections"), vec![]);
    let all = db
        .query(thread, "notes", &Query::all())
        .await
        .expect("query");
    assert_eq!(all.docs.len(), 33);
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_view_with_a_taken_name_is_refused() {
    let taken = Db::open_memory(
        Identity::generate(),
        config().with_view(threads_views::Kv::new("docs")),
    )
    .await;
    assert!(matches!(taken, Err(DbError::ViewName(name)) if name == "docs"));
    let twice = Db::open_memory(
        Identity::generate(),
        config()
            .with_view(threads_views::Kv::new("mine"))
            .with_view(threads_views::Kv::new("mine")),
    )
    .await;
    assert!(matches!(twice, Err(DbError::ViewName(name)) if name == "mine"));
    // A custom view is written, applied and persisted like the built-in ones.
    let dir = tempfile::tempdir().expect("dir");
    let me = Identity::generate();
    let path = dir.path().join("db.sqlite");
    let cfg = || config().with_view(threads_views::Kv::new("mine"));
    let db = Db::open_sqlite(&path, me.clone(), cfg())
        .await
        .expect("open");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    db.write(
        thread,
        threads_views::Batch::new().with("mine", threads_views::Kv::put(b"a", b"1")),
    )
    .await
    .expect("write");
    let read = |db: Db<threads_store::SqliteStore>| async move {
        db.read_view(thread, "mine", |state| threads_views::Kv::get(state, b"a"))
            .await
            .expect("read")
    };
    assert_eq!(read(db.clone()).await, Some(b"1".to_vec()));
    db.shutdown().await;
    let db = Db::open_sqlite(&path, me, cfg()).await.expect("reopen");
    assert_eq!(read(db.clone()).await, Some(b"1".to_vec()));
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_larger_than_an_entry_is_refused_before_it_is_stored() {
    let db = Db::open_memory(Identity::from_secret_bytes(&[48; 32]), config())
        .await
        .expect("db");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    let before = db
        .node()
        .store()
        .head(thread, db.identity().log_id())
        .await
        .expect("head");
    let big = vec![1u8; 2 << 20];
    let write = db.transaction(thread).put(b"big", &big).commit().await;
    assert!(
        matches!(write, Err(DbError::TooLarge { size, max }) if size > max),
        "{write:?}"
    );
    let after = db
        .node()
        .store()
        .head(thread, db.identity().log_id())
        .await
        .expect("head");
    assert_eq!(before, after);
    // Just under the limit is fine.
    db.transaction(thread)
        .put(b"big", &vec![1u8; threads_log::MAX_PAYLOAD_BYTES - 1024])
        .commit()
        .await
        .expect("fits");
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_acl_and_content_is_written_as_two_events() {
    use threads_acl::{ACL_VIEW, AclOp};
    use threads_log::Verifier;
    use threads_store::{Page, ThreadBook};
    let owner = Db::open_memory(Identity::from_secret_bytes(&[49; 32]), config())
        .await
        .expect("owner");
    let thread = owner
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    let me = owner.identity().log_id();
    let store = owner.node().store().clone();
    let before = store
        .head(thread, me)
        .await
        .expect("head")
        .expect("some")
        .counter;
    let batch = threads_views::Batch::new()
        .with("kv", threads_views::Kv::put(b"secret", b"for readers only"))
        .with(ACL_VIEW, AclOp::SetDefault { role: Role::Read }.encode());
    let counter = owner.write(thread, batch).await.expect("write");
    assert_eq!(counter, before + 2, "two events");
    assert_eq!(
        owner.get(thread, b"secret").await.expect("get"),
        Some(b"for readers only".to_vec())
    );
    // The ACL key (which followers derive from the service key) opens the ACL event and
    // not the content event.
    let key = store.thread_key(thread).await.expect("key").expect("some");
    let acl = threads_acl::acl_key(thread, &key);
    let verifier = Verifier::new(thread, me, &acl).expect("verifier");
    let entries = store
        .entries_after(thread, me, before, Page::new(10, usize::MAX))
        .await
        .expect("entries");
    assert_eq!(entries.len(), 2);
    assert!(
        verifier.read_stored(&entries[0].entry).is_ok(),
        "the ACL part"
    );
    assert!(
        verifier.read_stored(&entries[1].entry).is_err(),
        "the content part"
    );
    owner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_that_give_up_do_not_interrupt_the_others() {
    let db = Db::open_memory(Identity::from_secret_bytes(&[50; 32]), config())
        .await
        .expect("db");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let db = db.clone();
        tasks.spawn(async move {
            let write = db
                .transaction(thread)
                .put(format!("k{i}").as_bytes(), b"v")
                .commit();
            if i % 2 == 0 {
                // Gives up almost at once, often while its group is being committed.
                let _ = tokio::time::timeout(Duration::from_micros(50), write).await;
                None
            } else {
                Some((i, write.await))
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Some((i, result)) = done.expect("task") {
            assert!(result.is_ok(), "writer {i}: {result:?}");
            assert_eq!(
                db.get(thread, format!("k{i}").as_bytes())
                    .await
                    .expect("get"),
                Some(b"v".to_vec())
            );
        }
    }
    db.shutdown().await;
}

/// Two writers create the same document at once, each with a KV put in the same event.
/// Once they sync, one creation is refused on both peers (the document exists), and with
/// it the KV put of its event: an event applies whole or not at all, on every peer,
/// whichever order its events arrived in. The change feeds mark both operations of the
/// refused event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_document_operation_leaves_the_kv_operations_of_its_event_unapplied_everywhere()
{
    let alice_faults = threads_net::Faults::new();
    let bob_faults = threads_net::Faults::new();
    let alice = Db::open_memory(
        Identity::from_secret_bytes(&[81; 32]),
        config().with_faults(alice_faults.clone()),
    )
    .await
    .expect("alice");
    let bob = Db::open_memory(
        Identity::from_secret_bytes(&[82; 32]),
        config().with_faults(bob_faults.clone()),
    )
    .await
    .expect("bob");
    let thread = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    alice
        .transaction(thread)
        .create_collection("notes", &json!({"type": "object"}))
        .commit()
        .await
        .expect("collection");
    let invite = alice
        .invite(thread, bob.identity().log_id(), Role::Write)
        .await
        .expect("invite");
    bob.join(&invite).await.expect("join");
    // Apart, each creates "same" and puts its own key in the same event.
    let (a, b) = (
        alice.identity().log_id().peer_id(),
        bob.identity().log_id().peer_id(),
    );
    alice_faults.block(b);
    bob_faults.block(a);
    alice
        .transaction(thread)
        .create("notes", "same", &json!({"by": "alice"}))
        .put(b"alice", b"1")
        .commit()
        .await
        .expect("alice writes");
    bob.transaction(thread)
        .create("notes", "same", &json!({"by": "bob"}))
        .put(b"bob", b"1")
        .commit()
        .await
        .expect("bob writes");
    alice_faults.heal();
    bob_faults.heal();
    // Each log's head now: its writer's conflicting event (alice's log held events before
    // it, so holding some of her log does not mean holding that one).
    let mut heads = Vec::new();
    for db in [&alice, &bob] {
        let log = db.identity().log_id();
        let head = db.node().store().head(thread, log).await.expect("head");
        heads.push((log, head.expect("a head").counter));
    }
    // Both converge on one creation, and only its event's put.
    let state = async |db: &Db<threads_store::MemoryStore>| {
        let doc = db.doc(thread, "notes", "same").await.expect("doc");
        let alice_key = db.get(thread, b"alice").await.expect("get");
        let bob_key = db.get(thread, b"bob").await.expect("get");
        (doc, alice_key.is_some(), bob_key.is_some())
    };
    eventually("both peers hold both events", || async {
        let mut both = true;
        for db in [&alice, &bob] {
            for &(log, counter) in &heads {
                let head = db.node().store().head(thread, log).await.expect("head");
                both &= head.is_some_and(|h| h.counter >= counter);
            }
            db.catch_up(thread).await.expect("catch up");
        }
        both && state(&alice).await == state(&bob).await
    })
    .await;
    let (doc, alice_key, bob_key) = state(&alice).await;
    let winner = doc.expect("one creation applies")["by"].clone();
    assert_eq!(
        (alice_key, bob_key),
        (winner == json!("alice"), winner == json!("bob"))
    );
    // The refused event is reported for both of its views, the same on both peers.
    let refused = alice.rejections(thread).await.expect("rejections");
    let theirs = bob.rejections(thread).await.expect("rejections");
    assert_eq!(refused, theirs);
    let mut views: Vec<&str> = refused.iter().map(|r| r.view.as_str()).collect();
    views.sort_unstable();
    assert_eq!(views, vec!["docs", "kv"], "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|r| r.view == "kv" && r.reason == threads_views::NOT_APPLIED),
        "{refused:?}"
    );
    // Each peer's change feed marks both operations of the refused event, and nothing else.
    let loser = if winner == json!("alice") {
        bob.identity().log_id()
    } else {
        alice.identity().log_id()
    };
    for db in [&alice, &bob] {
        let mut feed = db.changes(thread, Cursor::default()).await.expect("feed");
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = tokio::time::timeout(LIMIT, feed.next())
                .await
                .expect("in time")
                .expect("feed")
                .expect("an event");
            let creates_same = event.changes.iter().any(|c| {
                matches!(&c.kind, ChangeKind::Doc { id: Some(id), action: DocAction::Create, .. } if id == "same")
            });
            if creates_same {
                assert_eq!(event.changes.len(), 2);
                let rejected: Vec<bool> =
                    event.changes.iter().map(|c| c.rejected.is_some()).collect();
                seen.push((event.author(), rejected));
            }
        }
        for (author, rejected) in seen {
            assert_eq!(rejected, vec![author == loser, author == loser], "{author}");
        }
    }
    alice.shutdown().await;
    bob.shutdown().await;
}

/// The change feed gives each event once, with its operations, and resumes after the
/// event whose cursor it is given, also for events written after it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_is_lossless_and_resumes_from_a_cursor() {
    let db = Db::open_memory(Identity::from_secret_bytes(&[83; 32]), config())
        .await
        .expect("db");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    db.transaction(thread)
        .create_collection("notes", &json!({"type": "object"}))
        .commit()
        .await
        .expect("collection");
    for i in 0..4 {
        db.transaction(thread)
            .create("notes", &format!("n{i}"), &json!({"i": i}))
            .put(format!("k{i}").as_bytes(), b"v")
            .commit()
            .await
            .expect("write");
    }
    let next = async |feed: &mut threads_db::Changes<threads_store::MemoryStore>| {
        tokio::time::timeout(LIMIT, feed.next())
            .await
            .expect("in time")
            .expect("feed")
            .expect("an event")
    };
    let mut feed = db.changes(thread, Cursor::default()).await.expect("feed");
    let first = next(&mut feed).await;
    assert!(matches!(
        &first.changes[..],
        [threads_db::Change {
            kind: ChangeKind::Doc {
                action: DocAction::CreateCollection,
                ..
            },
            rejected: None,
            ..
        }]
    ));
    let second = next(&mut feed).await;
    assert_eq!(
        second.changes[0].kind,
        ChangeKind::Doc {
            collection: "notes".into(),
            id: Some("n0".into()),
            action: DocAction::Create,
            doc: Some(json!({"i": 0})),
        }
    );
    assert_eq!(
        second.changes[1].kind,
        ChangeKind::Kv {
            key: b"k0".to_vec(),
            value: Some(b"v".to_vec()),
        }
    );
    drop(feed);
    // Resumed after the second event: the third comes next, then one written later.
    let mut resumed = db
        .changes(thread, second.cursor.clone())
        .await
        .expect("feed");
    let third = next(&mut resumed).await;
    assert!(matches!(&third.changes[0].kind, ChangeKind::Doc { id: Some(id), .. } if id == "n1"));
    next(&mut resumed).await;
    next(&mut resumed).await;
    let writer = db.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer
            .transaction(thread)
            .delete("notes", "n0")
            .commit()
            .await
            .expect("delete");
    });
    let last = next(&mut resumed).await;
    assert!(matches!(
        &last.changes[0].kind,
        ChangeKind::Doc { id: Some(id), action: DocAction::Delete, doc: None, .. } if id == "n0"
    ));
    later.await.expect("writer");
    assert_eq!(last.cursor.total(), 6);
    db.shutdown().await;
}

/// An invite made with an expiry cannot be used after it (the expiry is signed with the
/// invite); one still within it joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_invite_is_refused_and_a_live_one_joins() {
    let alice = Db::open_memory(Identity::from_secret_bytes(&[91; 32]), config())
        .await
        .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[92; 32]), config())
        .await
        .expect("bob");
    for variant in [Variant::Raw, Variant::AccessControlled] {
        let thread = alice.create_thread(variant).await.expect("thread");
        let past = alice
            .invite_until(thread, bob.identity().log_id(), Role::Write, Some(1))
            .await
            .expect("invite");
        let refused = bob.join(&past).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("expired")),
            "{variant:?}: {refused:?}"
        );
        assert!(!bob.threads().await.contains(&thread));
        let in_an_hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_millis() as u64
            + 3_600_000;
        let live = alice
            .invite_until(
                thread,
                bob.identity().log_id(),
                Role::Write,
                Some(in_an_hour),
            )
            .await
            .expect("invite");
        assert_eq!(bob.join(&live).await.expect("joins"), thread, "{variant:?}");
    }
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Link invites: whoever holds the text joins. In a raw thread the holder of a writer's
/// link reads and writes; in an access-controlled thread a link names no member, so the
/// thread's default role decides (here: read, so the holder reads and its writes are
/// forbidden); an expired link does not open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_invites_join_with_the_roles_keys_and_the_default_role_decides() {
    use threads_acl::{ACL_VIEW, AclOp};
    use threads_views::Batch;

    let alice = Db::open_memory(Identity::from_secret_bytes(&[91; 32]), config())
        .await
        .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[92; 32]), config())
        .await
        .expect("bob");
    let carol = Db::open_memory(Identity::from_secret_bytes(&[93; 32]), config())
        .await
        .expect("carol");

    let raw = alice.create_thread(Variant::Raw).await.expect("thread");
    alice
        .transaction(raw)
        .put(b"k", b"from alice")
        .commit()
        .await
        .expect("write");
    let link = alice
        .invite_link(raw, Role::Write, None)
        .await
        .expect("link");
    assert_eq!(bob.join(&link).await.expect("join"), raw);
    assert_eq!(
        bob.get(raw, b"k").await.expect("get"),
        Some(b"from alice".to_vec())
    );
    bob.transaction(raw)
        .put(b"k2", b"from bob")
        .commit()
        .await
        .expect("bob writes");
    eventually("bob's write to reach alice", || async {
        alice.get(raw, b"k2").await.expect("get").is_some()
    })
    .await;

    let acl = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    alice
        .write(
            acl,
            Batch::new().with(ACL_VIEW, AclOp::SetDefault { role: Role::Read }.encode()),
        )
        .await
        .expect("default role");
    alice
        .transaction(acl)
        .put(b"notice", b"readers welcome")
        .commit()
        .await
        .expect("write");
    let expired = alice
        .invite_link(acl, Role::Read, Some(1))
        .await
        .expect("link");
    assert!(
        carol.join(&expired).await.is_err(),
        "an expired link does not open"
    );
    let link = alice
        .invite_link(acl, Role::Read, None)
        .await
        .expect("link");
    assert_eq!(carol.join(&link).await.expect("join"), acl);
    assert_eq!(
        carol.get(acl, b"notice").await.expect("get"),
        Some(b"readers welcome".to_vec())
    );
    let refused = carol.transaction(acl).put(b"x", b"y").commit().await;
    assert!(
        matches!(refused, Err(DbError::Forbidden { .. })),
        "{refused:?}"
    );
    for db in [&alice, &bob, &carol] {
        db.shutdown().await;
    }
}

/// Leaving a thread stops its sync and deletes it here; the other member keeps it and
/// goes on; the leaver's other threads are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_leaves_a_thread_forgets_it_and_gets_nothing_more() {
    let alice = Db::open_memory(Identity::from_secret_bytes(&[94; 32]), config())
        .await
        .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[95; 32]), config())
        .await
        .expect("bob");
    let mut threads = Vec::new();
    for _ in 0..2 {
        let thread = alice.create_thread(Variant::Raw).await.expect("thread");
        alice
            .transaction(thread)
            .put(b"k", b"v")
            .commit()
            .await
            .expect("write");
        let invite = alice
            .invite(thread, bob.identity().log_id(), Role::Write)
            .await
            .expect("invite");
        bob.join(&invite).await.expect("join");
        threads.push(thread);
    }
    let (left, kept) = (threads[0], threads[1]);
    bob.leave(left).await.expect("leave");
    assert!(matches!(
        bob.leave(left).await,
        Err(DbError::UnknownThread(_))
    ));
    assert!(!bob.threads().await.contains(&left));
    assert!(matches!(
        bob.get(left, b"k").await,
        Err(DbError::UnknownThread(_))
    ));
    assert_eq!(
        bob.node().store().thread_key(left).await.expect("read"),
        None,
        "the keys are gone"
    );
    // Alice goes on writing to both; bob gets the kept thread's write and nothing of the
    // one it left.
    for thread in [left, kept] {
        alice
            .transaction(thread)
            .put(b"after", b"leaving")
            .commit()
            .await
            .expect("write");
    }
    eventually("the kept thread to sync", || async {
        bob.get(kept, b"after").await.expect("get").is_some()
    })
    .await;
    assert!(
        bob.node()
            .store()
            .logs(left)
            .await
            .expect("read")
            .is_empty()
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// The thread key `db` stores for `thread` (its key ring).
async fn stored_key(
    db: &Db<threads_store::MemoryStore>,
    thread: threads_id::ThreadId,
) -> threads_crypto::ThreadKey {
    db.node()
        .store()
        .thread_key(thread)
        .await
        .expect("key")
        .expect("held")
}

/// Taking the read role away by default starts a new key epoch: a member reading by
/// default role (through a link) keeps following with the new service key and reads
/// nothing new; a member with a role of its own reads on; both hold the new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_the_default_role_rotates_the_keys_of_members_by_default() {
    let alice = Db::open_memory(Identity::from_secret_bytes(&[110; 32]), config())
        .await
        .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[111; 32]), config())
        .await
        .expect("bob");
    let dave = Db::open_memory(Identity::from_secret_bytes(&[112; 32]), config())
        .await
        .expect("dave");
    let thread = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    alice
        .set_default_role(thread, Role::Write)
        .await
        .expect("default role");
    let link = alice
        .invite_link(thread, Role::Write, None)
        .await
        .expect("link");
    dave.join(&link).await.expect("dave joins by link");
    let invite = alice
        .invite(thread, bob.identity().log_id(), Role::Read)
        .await
        .expect("invite");
    bob.join(&invite).await.expect("bob joins");
    dave.transaction(thread)
        .put(b"dave-1", b"by default")
        .commit()
        .await
        .expect("dave writes by default role");
    eventually("dave's write to reach alice", || async {
        alice.get(thread, b"dave-1").await.expect("get").is_some()
    })
    .await;

    let first = stored_key(&alice, thread).await;
    assert!(!first.is_ring());
    alice
        .set_default_role(thread, Role::Follow)
        .await
        .expect("lower the default role");
    let epoch = stored_key(&alice, thread).await.epoch_service().clone();
    assert_ne!(&epoch, first.service());
    for (name, db) in [("bob", &bob), ("dave", &dave)] {
        eventually(&format!("{name} to hold the new epoch"), || async {
            let _ = db.catch_up(thread).await;
            stored_key(db, thread).await.epoch_service() == &epoch
        })
        .await;
    }
    alice
        .transaction(thread)
        .put(b"after", b"new epoch")
        .commit()
        .await
        .expect("write");
    eventually("bob to read the new epoch", || async {
        bob.get(thread, b"after").await.expect("get").is_some()
    })
    .await;
    let owner = alice.identity().log_id();
    let head = |db: &Db<threads_store::MemoryStore>| {
        let store = std::sync::Arc::clone(db.node().store());
        async move {
            store
                .head(thread, owner)
                .await
                .expect("head")
                .map(|h| h.counter)
        }
    };
    eventually("dave to replicate the new event", || async {
        head(&dave).await == head(&alice).await
    })
    .await;
    let _ = dave.catch_up(thread).await;
    assert_eq!(dave.get(thread, b"after").await.expect("get"), None);
    assert_eq!(
        dave.get(thread, b"dave-1").await.expect("get"),
        Some(b"by default".to_vec()),
        "what dave read before stays"
    );
    assert!(
        dave.transaction(thread)
            .put(b"dave-2", b"x")
            .commit()
            .await
            .is_err(),
        "a follower by default role does not write"
    );
    for db in [&alice, &bob, &dave] {
        db.shutdown().await;
    }
}

/// A revocation written without a rotation (by code that writes ACL operations itself, or
/// by two editors at once) leaves the latest epoch with a member that has no role: the
/// editor's database rotates the keys again by itself, and the revoked member does not
/// get the new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_rotates_again_when_the_latest_epoch_reached_a_revoked_member() {
    use threads_acl::{ACL_VIEW, AclOp};
    use threads_views::Batch;
    let alice = Db::open_memory(Identity::from_secret_bytes(&[120; 32]), config())
        .await
        .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[121; 32]), config())
        .await
        .expect("bob");
    let thread = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    let invite = alice
        .invite(thread, bob.identity().log_id(), Role::Write)
        .await
        .expect("invite");
    bob.join(&invite).await.expect("join");
    // A first epoch, sealed to bob (a member with no log is revoked to start it).
    let gone = Identity::from_secret_bytes(&[122; 32]).log_id();
    alice
        .set_role(thread, gone, Role::Write)
        .await
        .expect("role");
    alice
        .set_role(thread, gone, Role::NoAccess)
        .await
        .expect("revoke");
    let first_epoch = stored_key(&alice, thread).await.epoch_service().clone();
    eventually("bob to hold the first epoch", || async {
        let _ = bob.catch_up(thread).await;
        stored_key(&bob, thread).await.epoch_service() == &first_epoch
    })
    .await;
    // Bob is revoked by an ACL operation alone, without a rotation.
    alice
        .write(
            thread,
            Batch::new().with(
                ACL_VIEW,
                AclOp::SetRole {
                    member: bob.identity().log_id(),
                    role: Role::NoAccess,
                    from: 1,
                }
                .encode(),
            ),
        )
        .await
        .expect("revoke without rotating");
    eventually("alice to rotate again by herself", || async {
        let _ = alice.catch_up(thread).await;
        stored_key(&alice, thread).await.epochs().len() == 2
    })
    .await;
    let newest = stored_key(&alice, thread).await.epoch_service().clone();
    assert_ne!(newest, first_epoch);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = bob.catch_up(thread).await;
    assert!(
        stored_key(&bob, thread)
            .await
            .services()
            .all(|s| *s != newest),
        "the revoked member got the new epoch"
    );
    assert_eq!(
        stored_key(&alice, thread).await.epochs().len(),
        2,
        "rotated once, not again and again"
    );
    for db in [&alice, &bob] {
        db.shutdown().await;
    }
}

/// A writer alone commits its write in its own task; dropped at any point (before, during
/// or after its commit; a reader holding the views lock now and then makes some wait), the
/// write is whole or absent: once a later write is answered,
/// every key written is readable, the change feed lists exactly those writes, in order,
/// and every write that was awaited is among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_alone_that_gives_up_leaves_its_write_whole_or_absent() {
    let dir = tempfile::tempdir().expect("dir");
    let db = Db::open_sqlite(
        dir.path().join("db.sqlite"),
        Identity::from_secret_bytes(&[91; 32]),
        config(),
    )
    .await
    .expect("db");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    let mut feed = db.changes(thread, Cursor::default()).await.expect("feed");
    // A reader that keeps taking the views lock, so that writes wait for it now and then
    // (a write that never waits completes in its first poll and cannot be dropped halfway).
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let db = db.clone();
        let reading = std::sync::Arc::clone(&reading);
        tokio::spawn(async move {
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = db.list(thread, b"").await;
                tokio::task::yield_now().await;
            }
        })
    };
    let mut gave_up = 0;
    let mut answered = Vec::new();
    // Whether a write is still waiting when its time is up depends on the machine: write
    // until a few gave up (a write that never waits cannot give up halfway).
    let mut writes = 0u32;
    while writes < 200 || (gave_up < 5 && writes < 5_000) {
        let i = writes;
        writes += 1;
        let write = db
            .transaction(thread)
            .put(format!("k{i:05}").as_bytes(), b"v")
            .commit();
        match tokio::time::timeout(Duration::from_micros(u64::from(i % 10) * 40), write).await {
            Ok(result) => {
                result.expect("write");
                answered.push(i);
            }
            Err(_) => gave_up += 1,
        }
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    reader.await.expect("reader");
    // Queued behind whatever a dropped writer's commit still does.
    db.transaction(thread)
        .put(b"last", b"v")
        .commit()
        .await
        .expect("last");
    let mut visible = Vec::new();
    for i in 0..writes {
        if db
            .get(thread, format!("k{i:05}").as_bytes())
            .await
            .expect("get")
            .is_some()
        {
            visible.push(format!("k{i:05}").into_bytes());
        }
    }
    let mut listed = Vec::new();
    loop {
        let event = tokio::time::timeout(LIMIT, feed.next())
            .await
            .expect("in time")
            .expect("feed")
            .expect("an event");
        let mut last = false;
        for change in event.changes {
            if let ChangeKind::Kv { key, .. } = change.kind {
                if key == b"last" {
                    last = true;
                } else {
                    listed.push(key);
                }
            }
        }
        if last {
            break;
        }
    }
    assert_eq!(
        listed, visible,
        "the feed lists exactly the writes that are readable"
    );
    for i in &answered {
        assert!(
            visible.contains(&format!("k{i:05}").into_bytes()),
            "write {i} was answered"
        );
    }
    assert!(gave_up > 0, "no writer gave up: the test shows nothing");
    db.shutdown().await;
}

/// Many writers at once on a SQLite file, so that the committer splits its groups and
/// pipelines them (the next group checked, signed and applied while the one before is
/// stored): documents under a unique index (whose checks read key ranges, which wait for
/// the group being stored) with a put in the same event. Every acknowledged write is there
/// whole, every refused one is absent whole, the log holds the acknowledged events and
/// nothing else, and a reopened database computes the same views from the store alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_groups_keep_every_acknowledged_write_and_nothing_else() {
    use threads_db::{DocOp, IndexSpec};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("db.sqlite");
    let me = Identity::from_secret_bytes(&[63; 32]);
    let db = Db::open_sqlite(&path, me.clone(), config())
        .await
        .expect("db");
    let thread = db.create_thread(Variant::Raw).await.expect("thread");
    db.transaction(thread)
        .create_collection("slots", &json!({"type": "object"}))
        .doc(DocOp::AddIndex {
            collection: "slots".into(),
            spec: IndexSpec {
                name: "by_slot".into(),
                path: "slot".into(),
                unique: true,
            },
        })
        .commit()
        .await
        .expect("collection");
    let before = db
        .node()
        .store()
        .head(thread, me.log_id())
        .await
        .expect("head")
        .map_or(0, |h| h.counter);
    // 64 writers, 20 writes each, 1,280 documents for 400 slots: most collide.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..64u32 {
        let db = db.clone();
        let me = me.log_id();
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..20u32 {
                let slot = (w * 7 + i * 13) % 400;
                let id = format!("w{w}-{i}");
                let result = db
                    .transaction(thread)
                    .create("slots", &id, &json!({"slot": slot}))
                    .put(id.as_bytes(), &slot.to_be_bytes())
                    .commit()
                    .await;
                let counter = match result {
                    Ok(counter) => Some(counter),
                    Err(DbError::Rejected { .. } | DbError::Doc(_)) => None,
                    Err(e) => panic!("write {id}: {e}"),
                };
                if let Some(counter) = counter {
                    // Acknowledged: stored, and read back by its writer at once.
                    let stored = db
                        .node()
                        .store()
                        .record_cid(thread, me, counter)
                        .await
                        .expect("record");
                    assert!(
                        stored.is_some(),
                        "write {id} acknowledged before it is stored"
                    );
                    let value = db.get(thread, id.as_bytes()).await.expect("get");
                    assert_eq!(
                        value,
                        Some(slot.to_be_bytes().to_vec()),
                        "write {id} not read back"
                    );
                }
                outcomes.push((id, slot, counter));
            }
            outcomes
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        outcomes.extend(done.expect("writer"));
    }
    let mut counters: Vec<u64> = outcomes.iter().filter_map(|o| o.2).collect();
    counters.sort_unstable();
    let acknowledged = counters.len() as u64;
    assert!(
        acknowledged >= 100,
        "only {acknowledged} writes went through"
    );
    assert!(
        acknowledged < 1280,
        "no write was refused: the test shows nothing"
    );
    assert_eq!(
        counters,
        (before + 1..=before + acknowledged).collect::<Vec<_>>(),
        "the log holds the acknowledged events, each once, and nothing else"
    );
    let head = db
        .node()
        .store()
        .head(thread, me.log_id())
        .await
        .expect("head")
        .map(|h| h.counter);
    assert_eq!(head, Some(before + acknowledged));
    // What a database computes: each acknowledged write whole, each refused one absent.
    let check = |db: Db<threads_store::SqliteStore>, outcomes: Vec<(String, u32, Option<u64>)>| async move {
        let mut holders = std::collections::BTreeMap::new();
        for (id, slot, counter) in &outcomes {
            let doc = db.doc(thread, "slots", id).await.expect("doc");
            let put = db.get(thread, id.as_bytes()).await.expect("get");
            if counter.is_some() {
                assert_eq!(doc.map(|d| d["slot"].clone()), Some(json!(slot)), "{id}");
                assert_eq!(put, Some(slot.to_be_bytes().to_vec()), "{id}");
                assert!(
                    holders.insert(*slot, id.clone()).is_none(),
                    "slot {slot} twice"
                );
            } else {
                assert_eq!(doc, None, "{id} was refused");
                assert_eq!(put, None, "the put of refused {id}");
            }
        }
        // A refused write's slot is held by an acknowledged one.
        for (id, slot, counter) in &outcomes {
            if counter.is_none() {
                assert!(
                    holders.contains_key(slot),
                    "{id} was refused for a free slot"
                );
            }
        }
        let all = db
            .query(thread, "slots", &Query::all())
            .await
            .expect("query");
        assert_eq!(all.docs.len(), holders.len());
        db
    };
    let db = check(db, outcomes.clone()).await;
    db.shutdown().await;
    let reopened = Db::open_sqlite(&path, me, config()).await.expect("reopen");
    let reopened = check(reopened, outcomes).await;
    reopened.shutdown().await;
}
