//! Behaviour of the view engine: resuming after a restart (SQLite and PostgreSQL), the
//! key-value view's semantics, subscriptions, changed view sets and refusals.

mod support;

#[path = "../../threads-store/tests/support/pg_server.rs"]
mod pg_server;

use std::sync::Arc;

use threads_log::Hlc;
use threads_store::{
    LogBook, MemoryStore, PostgresStore, SqliteStore, Store, ThreadBook, ViewBook,
    build_local_batch, write_local,
};
use threads_views::{Batch, Cursor, Kv, Reducer, ViewConfig, ViewError, Views};

use support::{Chain, thread, writer};

fn reducers() -> Vec<Arc<dyn Reducer>> {
    vec![Arc::new(Kv::new("kv")), Arc::new(Chain)]
}

fn put(k: &str, v: &str) -> Vec<u8> {
    Batch::new()
        .with("kv", Kv::put(k.as_bytes(), v.as_bytes()))
        .with("chain", v.as_bytes().to_vec())
        .encode()
}

/// Writes `n` events to two logs, times interleaved, and returns the last time used.
async fn write_events<S: Store>(store: &S, seed: u8, n: u64, from_time: u64) -> u64 {
    let (thread, key) = thread(seed);
    let a = writer(thread, &key, 1);
    let b = writer(thread, &key, 2);
    for i in 0..n {
        let w = if i % 3 == 0 { &b } else { &a };
        let time = from_time + i;
        write_local(
            store,
            w,
            &put(&format!("k{}", i % 7), &i.to_string()),
            Hlc::new(time, 0),
        )
        .await
        .expect("write");
    }
    from_time + n
}

async fn resume<S: Store + 'static>(store: Arc<S>) {
    let (thread, key) = thread(3);
    store.put_thread(thread, &key).await.expect("thread");
    let config = ViewConfig::new().with_commit_every(5);
    let next = write_events(&*store, 3, 40, 1_000).await;

    let mut views = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("open");
    let progress = views.catch_up().await.expect("catch up");
    assert_eq!(progress.applied, 40);
    let digest = views.digest().await.expect("digest");
    let cursor = views.cursor();
    assert_eq!(cursor.total(), 40);
    drop(views);

    // Reopened, the views come back from the store: nothing is applied again.
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("reopen");
    assert_eq!(views.digest().await.expect("digest"), digest);
    assert_eq!(views.cursor(), cursor);
    assert_eq!(views.catch_up().await.expect("catch up").applied, 0);

    // New events apply on top; a late one (older time) rewinds the ordered view.
    write_events(&*store, 3, 10, next).await;
    let late = writer(thread, &key, 9);
    write_local(&*store, &late, &put("late", "x"), Hlc::new(1_010, 5))
        .await
        .expect("write");
    let progress = views.catch_up().await.expect("catch up");
    assert_eq!(progress.applied, 11);
    assert!(progress.rewound && !progress.rebuilt);
    // Only the events after the late one are undone and applied again.
    assert!(progress.replayed > 0 && progress.replayed < 50);

    // The same as a fresh scope that replays everything.
    let mut fresh = Views::open_scope(Arc::clone(&store), thread, "fresh", reducers(), config)
        .await
        .expect("open");
    assert_eq!(fresh.catch_up().await.expect("catch up").applied, 51);
    assert_eq!(
        fresh.digest().await.expect("digest"),
        views.digest().await.expect("digest")
    );
    assert_eq!(
        views
            .read("kv", |s| Kv::get(s, b"late"))
            .await
            .expect("read"),
        Some(b"x".to_vec())
    );

    // A tight scope: undo records for 3 ms of event time and no cache, fed as events
    // arrive, with late events within the horizon (undone) and beyond it (rebuilt); every
    // read goes to the store. It ends equal to a fresh replay.
    let tight_config = ViewConfig::new()
        .with_commit_every(3)
        .with_undo_horizon_ms(3)
        .with_cache_bytes(0);
    let mut tight = Views::open_scope(
        Arc::clone(&store),
        thread,
        "tight",
        reducers(),
        tight_config,
    )
    .await
    .expect("open");
    tight.catch_up().await.expect("catch up");
    let mut next = 2_000;
    let (mut undone, mut rebuilt) = (0, 0);
    for round in 0..6u64 {
        next = write_events(&*store, 3, 5, next).await;
        tight.catch_up().await.expect("catch up");
        let back = if round % 2 == 0 { 2 } else { 6 };
        write_local(
            &*store,
            &late,
            &put(&format!("late{round}"), "y"),
            Hlc::new(next - back, 9),
        )
        .await
        .expect("write");
        let progress = tight.catch_up().await.expect("catch up");
        assert!(progress.rewound || progress.rebuilt);
        if progress.rebuilt {
            rebuilt += 1;
        } else {
            undone += 1;
        }
    }
    assert!(
        undone > 0 && rebuilt > 0,
        "undone {undone}, rebuilt {rebuilt}"
    );
    let mut check = Views::open_scope(Arc::clone(&store), thread, "check", reducers(), config)
        .await
        .expect("open");
    check.catch_up().await.expect("catch up");
    assert_eq!(
        tight.digest().await.expect("digest"),
        check.digest().await.expect("digest")
    );
}

#[tokio::test]
async fn resume_memory() {
    resume(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn resume_sqlite_file() {
    let dir = tempfile::tempdir().expect("dir");
    resume(Arc::new(
        SqliteStore::open(dir.path().join("store.db"))
            .await
            .expect("open"),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_postgres() {
    let server = pg_server::PgServer::start();
    let url = server.fresh_database().await;
    resume(Arc::new(
        PostgresStore::connect(&url).await.expect("connect"),
    ))
    .await;
}

#[tokio::test]
async fn key_value_semantics() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(4);
    store.put_thread(thread, &key).await.expect("thread");
    let a = writer(thread, &key, 1);
    let b = writer(thread, &key, 2);
    let kv = |ops: Vec<Vec<u8>>| {
        let mut batch = Batch::new();
        for op in ops {
            batch.push("kv", op);
        }
        batch.encode()
    };
    // b writes later in time but its log is applied first: a's older put must not win.
    write_local(
        &*store,
        &b,
        &kv(vec![Kv::put(b"color", b"blue")]),
        Hlc::new(20, 0),
    )
    .await
    .expect("write");
    let mut views = Views::open(
        Arc::clone(&store),
        thread,
        vec![Arc::new(Kv::new("kv"))],
        ViewConfig::new(),
    )
    .await
    .expect("open");
    views.catch_up().await.expect("catch up");
    write_local(
        &*store,
        &a,
        &kv(vec![
            Kv::put(b"color", b"red"),
            Kv::put(b"user/1", b"ann"),
            Kv::put(b"user/2", b"bob"),
            Kv::put(b"user/3", b"cy"),
            Kv::del(b"user/2"),
        ]),
        Hlc::new(10, 0),
    )
    .await
    .expect("write");
    views.catch_up().await.expect("catch up");
    let (color, user2, users, count, stamp) = views
        .read("kv", |state| {
            (
                Kv::get(state, b"color"),
                Kv::get(state, b"user/2"),
                Kv::scan(state, b"user/").collect::<Vec<_>>(),
                Kv::list(state).count(),
                Kv::stamp(state, b"user/2"),
            )
        })
        .await
        .expect("read");
    assert_eq!(color, Some(b"blue".to_vec()), "later HLC wins");
    assert_eq!(user2, None, "a later op in one event wins");
    assert_eq!(
        users,
        vec![
            (b"user/1".to_vec(), b"ann".to_vec()),
            (b"user/3".to_vec(), b"cy".to_vec())
        ]
    );
    assert_eq!(count, 3);
    assert!(stamp.is_some(), "the tombstone keeps its stamp");

    // Same time in two logs: the greater log id wins, on every peer.
    let t = Hlc::new(30, 0);
    write_local(&*store, &a, &kv(vec![Kv::put(b"tie", b"a")]), t)
        .await
        .expect("write");
    write_local(&*store, &b, &kv(vec![Kv::put(b"tie", b"b")]), t)
        .await
        .expect("write");
    views.catch_up().await.expect("catch up");
    let winner = if a.log_id() > b.log_id() { b"a" } else { b"b" };
    assert_eq!(
        views
            .read("kv", |s| Kv::get(s, b"tie"))
            .await
            .expect("read"),
        Some(winner.to_vec())
    );
    // A malformed operation is refused, visibly, with its author.
    write_local(&*store, &a, &kv(vec![b"junk".to_vec()]), Hlc::new(40, 0))
        .await
        .expect("write");
    views.catch_up().await.expect("catch up");
    let rejected = views.rejections().await.expect("rejections");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].author(), a.log_id());
    assert_eq!(rejected[0].view, "kv");
    assert!(rejected[0].reason.contains("not a key-value operation"));
}

#[tokio::test]
async fn subscriptions_are_lossless_and_resumable() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(5);
    store.put_thread(thread, &key).await.expect("thread");
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), ViewConfig::new())
        .await
        .expect("open");
    let mut sub = views.subscribe(Cursor::default());
    assert!(sub.try_next().await.expect("read").is_none());

    // A slow subscriber: 1,500 events are applied before it reads any.
    write_events(&*store, 5, 1_500, 1).await;
    views.catch_up().await.expect("catch up");
    let mut seen = Vec::new();
    let mut resume_at = None;
    while let Some(delivered) = sub.try_next().await.expect("read") {
        seen.push((delivered.order.log, delivered.order.counter));
        if seen.len() == 600 {
            resume_at = Some(delivered.cursor.clone());
        }
    }
    assert_eq!(seen.len(), 1_500, "every event, once");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 1_500, "no duplicates");

    // Resumed from a saved cursor (through its bytes), it continues exactly there.
    let cursor = Cursor::from_bytes(&resume_at.expect("cursor").to_bytes()).expect("cursor");
    let mut again = views.subscribe(cursor);
    let mut rest = Vec::new();
    while let Some(delivered) = again.try_next().await.expect("read") {
        rest.push((delivered.order.log, delivered.order.counter));
    }
    assert_eq!(rest, seen[600..].to_vec());

    // A waiting subscriber wakes up when new events are applied, and ends when the views
    // are dropped.
    let waiter = tokio::spawn(async move {
        let mut n = 0;
        while let Some(_event) = sub.next().await.expect("read") {
            n += 1;
        }
        n
    });
    write_events(&*store, 5, 10, 10_000).await;
    views.catch_up().await.expect("catch up");
    drop(views);
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("ends")
        .expect("task");
    assert_eq!(n, 10);
}

#[tokio::test]
async fn a_changed_view_set_rebuilds_and_refusals_are_typed() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(6);
    store.put_thread(thread, &key).await.expect("thread");
    write_events(&*store, 6, 20, 1).await;
    let mut kv_only = Views::open(
        Arc::clone(&store),
        thread,
        vec![Arc::new(Kv::new("kv"))],
        ViewConfig::new(),
    )
    .await
    .expect("open");
    kv_only.catch_up().await.expect("catch up");
    drop(kv_only);
    let mut both = Views::open(Arc::clone(&store), thread, reducers(), ViewConfig::new())
        .await
        .expect("open");
    assert_eq!(both.cursor().total(), 0, "a new view set starts over");
    assert_eq!(both.catch_up().await.expect("catch up").applied, 20);
    assert_eq!(
        both.read("chain", |s| s.get(b"count")).await.expect("read"),
        Some(20u64.to_be_bytes().to_vec())
    );
    assert!(matches!(
        both.read("nope", |s| s.get(b"count")).await,
        Err(ViewError::UnknownView(name)) if name == "nope"
    ));

    let twice: Vec<Arc<dyn Reducer>> = vec![Arc::new(Kv::new("kv")), Arc::new(Kv::new("kv"))];
    assert!(matches!(
        Views::open(Arc::clone(&store), thread, twice, ViewConfig::new()).await,
        Err(ViewError::DuplicateView(name)) if name == "kv"
    ));
    let (other, _) = support::thread(60);
    assert!(matches!(
        Views::open(Arc::clone(&store), other, reducers(), ViewConfig::new()).await,
        Err(ViewError::UnknownThread)
    ));
    let follower = Arc::new(MemoryStore::new());
    follower
        .put_thread(thread, &key.to_follower())
        .await
        .expect("thread");
    assert!(matches!(
        Views::open(follower, thread, reducers(), ViewConfig::new()).await,
        Err(ViewError::NoReadKey)
    ));
}

/// Local events stored and applied from the payloads in hand in one transaction
/// (`write_local`), mixed with another log's events that arrive on time and late, end with
/// the same rows as a replay of the store, and the same rows after a reopen; a local write
/// after a stale head stores nothing and changes no row.
#[tokio::test]
async fn local_events_applied_in_hand_equal_a_replay() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(9);
    store.put_thread(thread, &key).await.expect("thread");
    let me = writer(thread, &key, 1);
    let other = writer(thread, &key, 2);
    let config = ViewConfig::new().with_commit_every(5);
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("open");
    let mut time = 100;
    let mut local = 0;
    for i in 0..60u64 {
        time += 2;
        match i % 5 {
            // Another log's event, on time: applied by a catch-up.
            3 => {
                write_local(
                    &*store,
                    &other,
                    &put("o", &i.to_string()),
                    Hlc::new(time, 0),
                )
                .await
                .expect("write");
                views.catch_up().await.expect("catch up");
            }
            // Another log's event dated before the last applied one: late, so the next
            // local apply must fall back to a catch-up that rewinds.
            4 => {
                write_local(
                    &*store,
                    &other,
                    &put("late", &i.to_string()),
                    Hlc::new(time - 3, 0),
                )
                .await
                .expect("write");
            }
            _ => {
                let payload = put(&format!("k{}", i % 4), &i.to_string());
                let head = store.head(thread, me.log_id()).await.expect("head");
                let batch = [(&me, payload.as_slice(), Hlc::new(time, 0))];
                let appended = build_local_batch(&*store, head, &batch, |_| None)
                    .await
                    .expect("build");
                let order = threads_log::EventOrder {
                    time: Hlc::new(time, 0),
                    log: me.log_id(),
                    counter: appended[0].record.counter(),
                };
                let progress = views
                    .write_local(head, &appended, &[(order, payload.as_slice())])
                    .await
                    .expect("write");
                assert!(progress.applied >= 1);
                local += 1;
            }
        }
    }
    views.catch_up().await.expect("catch up");
    assert!(local > 30);
    // A write built after a stale head: refused by the store, no row changes.
    let before = views.digest().await.expect("digest");
    let head = store.head(thread, me.log_id()).await.expect("head");
    let counter = head.expect("head").counter - 1;
    let stale = Some(threads_log::Head {
        counter,
        cid: store
            .record_cid(thread, me.log_id(), counter)
            .await
            .expect("cid")
            .expect("stored"),
    });
    let payload = put("k0", "stale");
    time += 2;
    let batch = [(&me, payload.as_slice(), Hlc::new(time, 0))];
    let appended = build_local_batch(&*store, stale, &batch, |_| None)
        .await
        .expect("build");
    let order = threads_log::EventOrder {
        time: Hlc::new(time, 0),
        log: me.log_id(),
        counter: appended[0].record.counter(),
    };
    let err = views
        .write_local(stale, &appended, &[(order, payload.as_slice())])
        .await;
    assert!(err.is_err(), "{err:?}");
    assert_eq!(views.digest().await.expect("digest"), before);
    assert_eq!(store.head(thread, me.log_id()).await.expect("head"), head);
    let mut replay = Views::open_scope(Arc::clone(&store), thread, "replay", reducers(), config)
        .await
        .expect("open");
    replay.catch_up().await.expect("replay");
    let expected = replay.digest().await.expect("digest");
    assert_eq!(views.digest().await.expect("digest"), expected);
    drop(views);
    let mut reopened = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("reopen");
    assert_eq!(reopened.digest().await.expect("digest"), expected);
}

/// An event dated beyond the allowed drift waits, with the later events of its log, while
/// other logs apply; a peer whose clock is past it (here: a larger allowed drift) applies
/// it.
#[tokio::test]
async fn events_dated_in_the_future_wait() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(11);
    store.put_thread(thread, &key).await.expect("thread");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64;
    let honest = writer(thread, &key, 1);
    let ahead = writer(thread, &key, 2);
    for i in 0..3u64 {
        write_local(
            &*store,
            &honest,
            &put("h", &i.to_string()),
            Hlc::new(now - 1_000 + i, 0),
        )
        .await
        .expect("write");
    }
    // A year ahead, then an ordinary event behind it in the same log.
    let year = 365 * 24 * 3_600 * 1_000;
    write_local(
        &*store,
        &ahead,
        &put("x", "from the future"),
        Hlc::new(now + year, 0),
    )
    .await
    .expect("write");
    write_local(
        &*store,
        &ahead,
        &put("y", "after it"),
        Hlc::new(now + year + 1, 0),
    )
    .await
    .expect("write");
    let config = ViewConfig::new();
    assert_eq!(config.max_future_ms, threads_log::DEFAULT_MAX_DRIFT_MS);
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("open");
    let progress = views.catch_up().await.expect("catch up");
    assert_eq!(progress.applied, 3, "only the honest log's events");
    assert_eq!(views.blocked().get(&ahead.log_id()), Some(&1));
    let (h, x, y) = views
        .read("kv", |kv| {
            (Kv::get(kv, b"h"), Kv::get(kv, b"x"), Kv::get(kv, b"y"))
        })
        .await
        .expect("read");
    assert!(h.is_some());
    assert!(x.is_none() && y.is_none());
    assert!(
        views.rejections().await.expect("rejections").is_empty(),
        "waiting is not refusing"
    );
    // With a clock past the event (modelled by allowing two years of drift), it applies.
    let later = ViewConfig::new().with_max_future_ms(2 * year);
    let mut past = Views::open_scope(Arc::clone(&store), thread, "later", reducers(), later)
        .await
        .expect("open");
    assert_eq!(past.catch_up().await.expect("catch up").applied, 5);
    assert!(past.blocked().is_empty());
}

/// Scopes that share a cache budget stay within it together, and read the same rows as a
/// scope with a cache of its own.
#[tokio::test]
async fn scopes_sharing_a_cache_budget_stay_within_it() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(12);
    store.put_thread(thread, &key).await.expect("thread");
    let budget = threads_views::CacheBudget::new(4_096);
    let mut scopes = Vec::new();
    for name in ["one", "two", "three"] {
        let mut views = Views::open_scope(
            Arc::clone(&store),
            thread,
            name,
            reducers(),
            ViewConfig::new().with_commit_every(4),
        )
        .await
        .expect("open");
        views.share_cache(Arc::clone(&budget));
        scopes.push(views);
    }
    let mut time = 1;
    for _ in 0..5 {
        time = write_events(&*store, 12, 40, time).await;
        for views in &mut scopes {
            views.catch_up().await.expect("catch up");
            let all = views
                .read("kv", |s| Kv::list(s).count())
                .await
                .expect("read");
            assert!(all > 0);
            assert!(
                budget.used() <= budget.limit(),
                "{} of {} bytes",
                budget.used(),
                budget.limit()
            );
        }
    }
    let mut alone = Views::open_scope(
        Arc::clone(&store),
        thread,
        "alone",
        reducers(),
        ViewConfig::new(),
    )
    .await
    .expect("open");
    alone.catch_up().await.expect("catch up");
    let expected = alone.digest().await.expect("digest");
    for views in &mut scopes {
        assert_eq!(views.digest().await.expect("digest"), expected);
    }
    drop(scopes);
    assert_eq!(budget.used(), 0, "dropped scopes release what they held");
}

/// Compaction: the superseded key-value events, voided and their bodies dropped, leave the
/// views as they were, and so does a rebuild; an event without its body that nothing
/// voids holds its log back until the body is back.
#[tokio::test]
async fn compaction_drops_superseded_bodies_and_a_rebuild_agrees() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(13);
    store.put_thread(thread, &key).await.expect("thread");
    let w = writer(thread, &key, 1);
    for i in 0..30u64 {
        let batch = Batch::new()
            .with(
                "kv",
                Kv::put(format!("k{}", i % 3).as_bytes(), i.to_string().as_bytes()),
            )
            .encode();
        write_local(&*store, &w, &batch, Hlc::new(100 + i, 0))
            .await
            .expect("write");
    }
    let kv_only = || -> Vec<Arc<dyn Reducer>> { vec![Arc::new(Kv::new("kv"))] };
    let mut views = Views::open_scope(
        Arc::clone(&store),
        thread,
        "kv",
        kv_only(),
        ViewConfig::new(),
    )
    .await
    .expect("open");
    let gate = support::Voids::default();
    views.set_gate(Arc::new(gate.clone()));
    views.catch_up().await.expect("catch up");
    let before = views.digest().await.expect("digest");
    // Every put but the last of each key is superseded.
    assert_eq!(support::compact(&mut views, &gate).await, 27);
    assert_eq!(views.digest().await.expect("digest"), before);
    views.rebuild().await.expect("rebuild");
    assert_eq!(views.digest().await.expect("digest"), before);
    // Nothing is left to compact; an event without its body that no gate voids holds its
    // log back, and applies once its body is back.
    assert!(views.superseded().await.expect("superseded").is_empty());
    let last = store
        .entries_after(
            thread,
            w.log_id(),
            29,
            threads_store::Page::new(1, usize::MAX),
        )
        .await
        .expect("read")
        .remove(0);
    assert_eq!(
        threads_store::ViewBook::compact_bodies(&*store, thread, w.log_id(), &[30])
            .await
            .expect("drop"),
        1
    );
    views.rebuild().await.expect("rebuild");
    assert_eq!(views.blocked().get(&w.log_id()), Some(&30));
    assert_ne!(views.digest().await.expect("digest"), before);
    assert!(
        threads_store::ViewBook::fill_body(&*store, thread, w.log_id(), 30, last.entry.body.data())
            .await
            .expect("fill")
    );
    views.catch_up().await.expect("catch up");
    assert!(views.blocked().is_empty());
    assert_eq!(views.digest().await.expect("digest"), before);
}

/// Entries stored while a catch-up runs (a log whose first entry is the earliest of all,
/// then more of it, dated before the other log's events, stored during the catch-up):
/// the views end equal to a replay of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_stored_during_a_catch_up_end_equal_to_a_replay() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(15);
    store.put_thread(thread, &key).await.expect("thread");
    let a = writer(thread, &key, 1);
    let b = writer(thread, &key, 2);
    for i in 0..400u64 {
        write_local(
            &*store,
            &a,
            &put(&format!("a{i}"), "a"),
            Hlc::new(1_000 + i, 0),
        )
        .await
        .expect("write");
    }
    // B's first event, the earliest of all: the run applies it first and keeps reading
    // B's log for more.
    write_local(&*store, &b, &put("b0", "b"), Hlc::new(1, 0))
        .await
        .expect("write");
    let mut config = ViewConfig::new();
    config.page = 1;
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("open");
    let writing = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 1..40u64 {
                write_local(&*store, &b, &put(&format!("b{i}"), "b"), Hlc::new(1 + i, 0))
                    .await
                    .expect("write");
                tokio::task::yield_now().await;
            }
        })
    };
    views.catch_up().await.expect("catch up");
    writing.await.expect("writer");
    views.catch_up().await.expect("catch up");
    let mut replay = Views::open_scope(Arc::clone(&store), thread, "replay", reducers(), config)
        .await
        .expect("open");
    replay.catch_up().await.expect("replay");
    assert_eq!(
        views.digest().await.expect("digest"),
        replay.digest().await.expect("digest")
    );
}

/// A gate that admits everything (the rules do not matter here, only where a regate
/// starts again).
struct Open;

impl threads_views::Gate for Open {
    fn admits(
        &self,
        _view: &str,
        _access: threads_views::Access,
        _resource: Option<&[u8]>,
        _event: &threads_views::Event<'_>,
    ) -> Result<(), threads_views::Reject> {
        Ok(())
    }
}

/// A regate from some event on, in a scope whose views all rewind (atomic events), while
/// an entry that sorts before that event waits to be applied: the regate goes back to the
/// entry too, and the views end equal to a replay.
#[tokio::test]
async fn a_regate_goes_back_to_entries_stored_before_it_too() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(16);
    store.put_thread(thread, &key).await.expect("thread");
    let a = writer(thread, &key, 1);
    let b = writer(thread, &key, 2);
    for i in 0..10u64 {
        write_local(
            &*store,
            &a,
            &put("k", &format!("a{i}")),
            Hlc::new(100 + i, 0),
        )
        .await
        .expect("write");
    }
    let config = ViewConfig::new().with_atomic(true);
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), config)
        .await
        .expect("open");
    views.set_gate(Arc::new(Open));
    views.catch_up().await.expect("catch up");
    // Late: sorts before every event of A, stored but not applied yet.
    let late = write_local(&*store, &b, &put("k", "b0"), Hlc::new(50, 0))
        .await
        .expect("write");
    let since = threads_log::EventOrder {
        time: Hlc::new(105, 0),
        log: a.log_id(),
        counter: 6,
    };
    views.regate(Some(since)).await.expect("regate");
    let mut replay = Views::open_scope(Arc::clone(&store), thread, "replay", reducers(), config)
        .await
        .expect("open");
    replay.set_gate(Arc::new(Open));
    replay.catch_up().await.expect("replay");
    assert_eq!(
        views.digest().await.expect("digest"),
        replay.digest().await.expect("digest"),
        "the late event {late:?} applied in its place"
    );
}

/// A log whose author forked it (a fork proof is held) applies up to the record before
/// the fork and nothing after: views that had applied more undo it, and equal views
/// computed from the log's prefix alone; entries past the fork that arrive later change
/// nothing.
#[tokio::test]
async fn a_forked_log_stops_at_its_fork_and_what_was_applied_after_it_is_undone() {
    use support::build;
    use threads_store::{Page, put_fork_proof};

    for (atomic, in_order) in [(false, false), (true, false), (false, true)] {
        let (thread, key) = thread(21);
        let config = ViewConfig::new()
            .with_atomic(atomic)
            .with_in_order(in_order)
            .with_commit_every(3);
        let honest = writer(thread, &key, 1);
        let forker = writer(thread, &key, 2);
        // Interleaved times; the forker's events 3.. and the honest log's later events
        // touch the same keys, so an undo that went wrong would show.
        let events = |w: u64, n: u64, tag: &str| -> Vec<(Hlc, Vec<u8>)> {
            (0..n)
                .map(|i| {
                    let time = Hlc::new(1_000 + 2 * i + w, 0);
                    (time, put(&format!("k{}", i % 3), &format!("{tag}{i}")))
                })
                .collect()
        };
        let a = build(&honest, &events(0, 8, "a"));
        let b = build(&forker, &events(1, 8, "b"));
        // The forker's other record 3, after the same record 2.
        let other_third = forker
            .append(
                Some(&b[1].record.head()),
                threads_log::skip_target(3).map(|t| *b[t as usize - 1].record.cid()),
                &put("k2", "the other branch"),
                Hlc::new(1_005, 0),
            )
            .expect("append");
        let stores = [Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new())];
        for store in &stores {
            store.put_thread(thread, &key).await.expect("thread");
            store
                .append(thread, honest.log_id(), None, &a)
                .await
                .expect("a");
        }
        // The first store holds the forker's whole branch; the second only the two records
        // before the fork (what a peer that stopped there from the start holds).
        stores[0]
            .append(thread, forker.log_id(), None, &b[..6])
            .await
            .expect("b");
        stores[1]
            .append(thread, forker.log_id(), None, &b[..2])
            .await
            .expect("b");
        let mut views = Views::open(Arc::clone(&stores[0]), thread, reducers(), config)
            .await
            .expect("open");
        assert_eq!(views.catch_up().await.expect("catch up").applied, 14);
        let before = views.digest().await.expect("digest");

        let verifier = threads_log::Verifier::new(thread, forker.log_id(), &key).expect("verifier");
        let proof = threads_log::ForkProof::new(
            &verifier,
            b[2].entry.record.clone(),
            other_third.entry.record.clone(),
        )
        .expect("a fork at 3");
        assert!(
            put_fork_proof(&*stores[0], thread, &proof)
                .await
                .expect("put")
        );
        let progress = views.catch_up().await.expect("catch up");
        // Views that keep undo records for every event undo from the fork; a commutative
        // view without them makes it a rebuild.
        assert_eq!(progress.rebuilt, !(atomic || in_order), "{progress:?}");
        assert_eq!(
            views.stopped().get(&forker.log_id()),
            Some(&3),
            "atomic {atomic}"
        );
        let after = views.digest().await.expect("digest");
        assert_ne!(before, after, "events past the fork were undone");
        let (k2, k1) = views
            .read("kv", |kv| (Kv::get(kv, b"k2"), Kv::get(kv, b"k1")))
            .await
            .expect("read");
        // The forker's events 3.. are gone: k2 and k1 hold the honest log's last values.
        assert_eq!(k2.as_deref(), Some(&b"a5"[..]), "atomic {atomic}");
        assert_eq!(k1.as_deref(), Some(&b"a7"[..]), "atomic {atomic}");

        // More of the forked branch arrives: nothing of it applies.
        stores[0]
            .append(thread, forker.log_id(), Some(b[5].record.head()), &b[6..])
            .await
            .expect("b");
        views.catch_up().await.expect("catch up");
        assert_eq!(views.digest().await.expect("digest"), after);

        // Equal to views that never saw past the fork, and to views opened afresh.
        let mut prefix = Views::open(Arc::clone(&stores[1]), thread, reducers(), config)
            .await
            .expect("open");
        prefix.catch_up().await.expect("catch up");
        assert_eq!(
            prefix.digest().await.expect("digest"),
            after,
            "atomic {atomic}"
        );
        let mut fresh =
            Views::open_scope(Arc::clone(&stores[0]), thread, "fresh", reducers(), config)
                .await
                .expect("open");
        fresh.catch_up().await.expect("catch up");
        assert_eq!(
            fresh.digest().await.expect("digest"),
            after,
            "atomic {atomic}"
        );
        let stored = stores[0]
            .entries_after(thread, forker.log_id(), 0, Page::new(100, usize::MAX))
            .await
            .expect("read");
        assert_eq!(
            stored.len(),
            8,
            "the branch stays stored: its record at 3 is evidence"
        );
    }
}

/// A gate that refuses one log's events from a counter on, once told to.
struct RefuseFrom(std::sync::RwLock<Option<(threads_id::LogId, u64)>>);

impl threads_views::Gate for RefuseFrom {
    fn admits(
        &self,
        _view: &str,
        _access: threads_views::Access,
        _resource: Option<&[u8]>,
        event: &threads_views::Event<'_>,
    ) -> Result<(), threads_views::Reject> {
        match *self.0.read().expect("lock") {
            Some((log, from)) if event.author() == log && event.order.counter >= from => {
                Err(threads_views::Reject::new("revoked"))
            }
            _ => Ok(()),
        }
    }
}

/// A regate in a scope of commutative views only: in order
/// ([`ViewConfig::in_order`]), it undoes and replays just the events from its start (not
/// a rebuild), and the rows equal a scope computed under the new gate from nothing; not
/// in order, it rebuilds (commutative views keep no undo records) to the same rows.
#[tokio::test]
async fn a_regate_in_order_undoes_only_the_events_from_its_start() {
    let (thread, key) = thread(23);
    let store = Arc::new(MemoryStore::new());
    store.put_thread(thread, &key).await.expect("thread");
    let a = writer(thread, &key, 1);
    let b = writer(thread, &key, 2);
    // 100 events each, interleaved in time, over 7 keys (so later puts overwrite).
    for i in 0..100u64 {
        for (w, tag, t) in [(&a, "a", 0), (&b, "b", 1)] {
            let payload = Batch::new()
                .with(
                    "kv",
                    Kv::put(
                        format!("k{}", i % 7).as_bytes(),
                        format!("{tag}{i}").as_bytes(),
                    ),
                )
                .encode();
            write_local(&*store, w, &payload, Hlc::new(1_000 + 2 * i + t, 0))
                .await
                .expect("write");
        }
    }
    let kv_only = || -> Vec<Arc<dyn Reducer>> { vec![Arc::new(Kv::new("kv"))] };
    // B's events from its 95th on (6 of them) are refused once the gate changes.
    let since = threads_log::EventOrder {
        time: Hlc::new(1_000 + 2 * 94 + 1, 0),
        log: b.log_id(),
        counter: 95,
    };
    let mut digests = Vec::new();
    for in_order in [true, false] {
        let config = ViewConfig::new()
            .with_in_order(in_order)
            .with_commit_every(16);
        let gate = Arc::new(RefuseFrom(std::sync::RwLock::new(None)));
        let scope = format!("in-order-{in_order}");
        let mut views = Views::open_scope(Arc::clone(&store), thread, &scope, kv_only(), config)
            .await
            .expect("open");
        views.set_gate(Arc::clone(&gate) as Arc<dyn threads_views::Gate>);
        assert_eq!(views.catch_up().await.expect("catch up").applied, 200);
        *gate.0.write().expect("lock") = Some((b.log_id(), 95));
        let progress = views.regate(Some(since)).await.expect("regate");
        if in_order {
            assert!(!progress.rebuilt && progress.rewound, "{progress:?}");
            // B's events 95..=100 and A's after B's 95th (its 96th on): 6 + 5.
            assert_eq!(progress.replayed, 11, "{progress:?}");
        } else {
            assert!(progress.rebuilt, "{progress:?}");
        }
        let (k1, k2) = views
            .read("kv", |kv| (Kv::get(kv, b"k1"), Kv::get(kv, b"k2")))
            .await
            .expect("read");
        // k1 was last put by B's 99th (refused now), then by A's 99th: A's stands.
        assert_eq!(k1.as_deref(), Some(&b"a99"[..]));
        // k2 was last put by B's 93rd (before the revocation) after A's 93rd.
        assert_eq!(k2.as_deref(), Some(&b"b93"[..]));
        // The same rows as a scope computed under the new gate from nothing.
        let mut fresh = Views::open_scope(
            Arc::clone(&store),
            thread,
            &format!("fresh-{in_order}"),
            kv_only(),
            config,
        )
        .await
        .expect("open");
        fresh.set_gate(gate);
        fresh.catch_up().await.expect("fresh");
        let digest = views.digest().await.expect("digest");
        assert_eq!(digest, fresh.digest().await.expect("digest"));
        digests.push(digest);
    }
    assert_eq!(digests[0], digests[1]);
}

/// Begins this writer's next local commit (`Views::begin_local`) with `payload`, after
/// `head` (which may be ahead of the store), and records the new record's CID in `cids`.
async fn begin_next(
    views: &mut Views<MemoryStore>,
    store: &MemoryStore,
    me: &threads_log::Writer,
    head: Option<threads_log::Head>,
    cids: &mut Vec<threads_log::Cid>,
    payload: &[u8],
    time: u64,
) -> (threads_views::LocalCommit, Vec<threads_log::Appended>) {
    let batch = [(me, payload, Hlc::new(time, 0))];
    let known = |counter: u64| cids.get(counter as usize - 1).copied();
    let appended = build_local_batch(store, head, &batch, known)
        .await
        .expect("build");
    cids.push(*appended[0].record.cid());
    let order = threads_log::EventOrder {
        time: Hlc::new(time, 0),
        log: me.log_id(),
        counter: appended[0].record.counter(),
    };
    match views
        .begin_local(head, &appended, &[(order, payload)])
        .await
        .expect("begin")
    {
        threads_views::Begun::Commit(local) => (local, appended),
        threads_views::Begun::Done(_) => panic!("the events apply from the payloads in hand"),
    }
}

/// The digest of a replay of the store's logs, in a scope of its own.
async fn replayed(store: &Arc<MemoryStore>, thread: threads_id::ThreadId, name: &str) -> [u8; 32] {
    let mut replay = Views::open_scope(
        Arc::clone(store),
        thread,
        name,
        reducers(),
        ViewConfig::new(),
    )
    .await
    .expect("open");
    replay.catch_up().await.expect("replay");
    replay.digest().await.expect("digest")
}

/// This peer's commits applied in memory ahead of the store (a writer's pipeline,
/// `Views::begin_local`): the next group's check and apply see them before they are
/// stored, and once stored the rows equal a replay. A commit that is not stored is undone,
/// with the one built on it; so is a commit whose writer dropped it.
#[tokio::test]
async fn local_commits_ahead_of_the_store_land_or_are_undone() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(11);
    store.put_thread(thread, &key).await.expect("thread");
    let me = writer(thread, &key, 1);
    let mut views = Views::open(Arc::clone(&store), thread, reducers(), ViewConfig::new())
        .await
        .expect("open");
    let mut cids = Vec::new();
    let chain_op = |data: &[u8]| Batch::new().with("chain", data.to_vec());
    let order = |time: u64, counter: u64| threads_log::EventOrder {
        time: Hlc::new(time, 0),
        log: me.log_id(),
        counter,
    };

    // A is applied in memory, not stored: the chain counts 1, so an 0xF0 operation is
    // refused, which it would not be over the store's rows (a count of 0).
    let payload_a = put("a", "1");
    let (a, appended_a) =
        begin_next(&mut views, &store, &me, None, &mut cids, &payload_a, 100).await;
    assert_eq!(store.head(thread, me.log_id()).await.expect("head"), None);
    let refused = views
        .check(order(101, 2), &chain_op(&[0xF0]))
        .await
        .expect("check");
    assert_eq!(
        refused.len(),
        1,
        "the check sees the commit ahead of the store"
    );
    // B is built on A, before A is stored.
    let head_a = Some(appended_a[0].record.head());
    let payload_b = put("b", "2");
    let (b, appended_b) =
        begin_next(&mut views, &store, &me, head_a, &mut cids, &payload_b, 102).await;
    assert!(
        views
            .check(order(103, 3), &chain_op(&[0xF0]))
            .await
            .expect("check")
            .is_empty(),
        "the chain counts 2 with B"
    );
    // A is stored and lands through a flight; B is stored and lands directly.
    let (commit_a, landing_a) = a.into_parts();
    store
        .append_with_views(
            thread,
            me.log_id(),
            None,
            &appended_a,
            std::slice::from_ref(&commit_a),
        )
        .await
        .expect("store A");
    let (sent, outcome) = tokio::sync::oneshot::channel();
    views.fly(landing_a, outcome).await;
    sent.send(true).expect("send");
    views.settle().await;
    let (commit_b, landing_b) = b.into_parts();
    store
        .append_with_views(
            thread,
            me.log_id(),
            head_a,
            &appended_b,
            std::slice::from_ref(&commit_b),
        )
        .await
        .expect("store B");
    views.finish_local(landing_b, true);
    let landed = views.digest().await.expect("digest");
    assert_eq!(landed, replayed(&store, thread, "replay-1").await);

    // C is not stored (its transaction failed), and D was built on it: both are undone.
    let head_b = Some(appended_b[0].record.head());
    let payload_c = put("a", "3");
    let (c, appended_c) =
        begin_next(&mut views, &store, &me, head_b, &mut cids, &payload_c, 104).await;
    let head_c = Some(appended_c[0].record.head());
    let payload_d = put("d", "4");
    let (d, _) = begin_next(&mut views, &store, &me, head_c, &mut cids, &payload_d, 106).await;
    let (_, landing_c) = c.into_parts();
    let (failed, outcome) = tokio::sync::oneshot::channel();
    views.fly(landing_c, outcome).await;
    failed.send(false).expect("send");
    let (_, landing_d) = d.into_parts();
    views.finish_local(landing_d, false);
    assert_eq!(
        views.digest().await.expect("digest"),
        landed,
        "C and D are undone"
    );
    cids.truncate(2);

    // E's writer drops it: undone too.
    let payload_e = put("e", "5");
    let (e, _) = begin_next(&mut views, &store, &me, head_b, &mut cids, &payload_e, 108).await;
    drop(e);
    assert_eq!(views.digest().await.expect("digest"), landed, "E is undone");
    cids.truncate(2);

    // The writer goes on from the store's head.
    let payload_f = put("f", "6");
    let (f, appended_f) =
        begin_next(&mut views, &store, &me, head_b, &mut cids, &payload_f, 110).await;
    let (commit_f, landing_f) = f.into_parts();
    store
        .append_with_views(
            thread,
            me.log_id(),
            head_b,
            &appended_f,
            std::slice::from_ref(&commit_f),
        )
        .await
        .expect("store F");
    views.finish_local(landing_f, true);
    let expected = replayed(&store, thread, "replay-2").await;
    assert_ne!(expected, landed);
    assert_eq!(views.digest().await.expect("digest"), expected);
}

/// Refuses a key that a row already starts with (read as a key range); else claims it.
struct Claims;

impl Reducer for Claims {
    fn name(&self) -> &str {
        "claims"
    }

    fn kind(&self) -> threads_views::ViewKind {
        threads_views::ViewKind::Ordered
    }

    fn apply(
        &self,
        state: &mut threads_views::State,
        event: &threads_views::Event<'_>,
    ) -> Result<(), threads_views::Reject> {
        if state.prefix(event.data).next().is_some() {
            return Err(threads_views::Reject::new("claimed"));
        }
        state.put(event.data.to_vec(), vec![1]);
        Ok(())
    }
}

/// A key range the cache does not hold, read while a commit ahead of the store is being
/// stored, is read once it is stored: the store's rows are behind until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_read_waits_for_the_commit_being_stored() {
    let store = Arc::new(MemoryStore::new());
    let (thread, key) = thread(12);
    store.put_thread(thread, &key).await.expect("thread");
    let me = writer(thread, &key, 1);
    let claims = || -> Vec<Arc<dyn Reducer>> { vec![Arc::new(Claims)] };
    let claim = |data: &[u8]| Batch::new().with("claims", data.to_vec()).encode();
    // A claim stored, and views opened afresh: their cache knows no range.
    write_local(&*store, &me, &claim(b"y/1"), Hlc::new(100, 0))
        .await
        .expect("write");
    let mut views = Views::open(Arc::clone(&store), thread, claims(), ViewConfig::new())
        .await
        .expect("open");
    views.catch_up().await.expect("catch up");
    drop(views);
    let mut views = Views::open(Arc::clone(&store), thread, claims(), ViewConfig::new())
        .await
        .expect("reopen");
    let head = store.head(thread, me.log_id()).await.expect("head");
    let mut cids = vec![
        store
            .record_cid(thread, me.log_id(), 1)
            .await
            .expect("cid")
            .expect("stored"),
    ];
    // "x/1" is claimed in memory, and stored 100 ms later.
    let payload = claim(b"x/1");
    let batch = [(&me, payload.as_slice(), Hlc::new(102, 0))];
    let known = |counter: u64| cids.get(counter as usize - 1).copied();
    let appended = build_local_batch(&*store, head, &batch, known)
        .await
        .expect("build");
    cids.push(*appended[0].record.cid());
    let order = threads_log::EventOrder {
        time: Hlc::new(102, 0),
        log: me.log_id(),
        counter: 2,
    };
    let threads_views::Begun::Commit(local) = views
        .begin_local(head, &appended, &[(order, payload.as_slice())])
        .await
        .expect("begin")
    else {
        panic!("applied from the payload in hand");
    };
    let (commit, landing) = local.into_parts();
    let (sent, outcome) = tokio::sync::oneshot::channel();
    let storing = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let stored = store
                .append_with_views(thread, me.log_id(), head, &appended, &[commit])
                .await;
            let _ = sent.send(stored.is_ok());
        })
    };
    views.fly(landing, outcome).await;
    // Claiming "x/" reads the range of keys under it: it must see "x/1".
    let order = threads_log::EventOrder {
        time: Hlc::new(104, 0),
        log: views.last_order().expect("applied").log,
        counter: 3,
    };
    let refused = views
        .check(order, &Batch::new().with("claims", b"x/".to_vec()))
        .await
        .expect("check");
    assert_eq!(
        refused.len(),
        1,
        "the range read saw the claim being stored"
    );
    assert!(storing.is_finished() || storing.await.is_ok());
}
