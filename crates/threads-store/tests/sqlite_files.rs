//! The SQLite store on disk: persistence across reopen, file permissions, and bad files
//! (garbage, truncated, a foreign database, a newer schema) giving typed errors without
//! being changed.

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Hlc, Writer};
use threads_store::{
    LogBook, MetaBook, Page, SQLITE_SCHEMA_VERSION, SqliteStore, StoreError, ThreadBook,
};

#[tokio::test]
async fn data_survives_reopen_and_the_file_is_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
    let key = ThreadKey::generate();
    let writer = Writer::new(Identity::from_secret_bytes(&[2; 32]), thread, &key).expect("writer");
    let first = writer
        .append(None, None, b"kept", Hlc::new(1, 0))
        .expect("append");
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.put_thread(thread, &key).await.expect("put");
        store
            .append(thread, writer.log_id(), None, std::slice::from_ref(&first))
            .await
            .expect("append");
        store.close().await;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the store file is readable by others: {mode:o}"
        );
    }
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(store.thread_key(thread).await.expect("read"), Some(key));
    assert_eq!(
        store.head(thread, writer.log_id()).await.expect("head"),
        Some(first.record.head())
    );
    let entries = store
        .entries_after(thread, writer.log_id(), 0, Page::new(10, 1 << 20))
        .await
        .expect("read");
    assert_eq!(entries[0].entry, first.entry);
}

async fn assert_refused_unchanged(path: &std::path::Path, check: impl Fn(&StoreError) -> bool) {
    let before = std::fs::read(path).expect("read file");
    let err = SqliteStore::open(path)
        .await
        .expect_err("a bad file must not open");
    assert!(check(&err), "unexpected error {err:?}");
    assert_eq!(
        std::fs::read(path).expect("read file"),
        before,
        "the file was changed"
    );
}

#[tokio::test]
async fn garbage_file_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a; 8192]).expect("write");
    assert_refused_unchanged(&path, |e| matches!(e, StoreError::Corrupt(_))).await;
}

#[tokio::test]
async fn truncated_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store
            .put_thread(
                ThreadId::from_parts(Variant::Raw, [3; 32]),
                &ThreadKey::generate(),
            )
            .await
            .expect("put");
        store.close().await;
    }
    let bytes = std::fs::read(&path).expect("read");
    // Keep the 100-byte header and part of the first page: the schema cannot be read.
    std::fs::write(&path, &bytes[..bytes.len().min(1000)]).expect("truncate");
    let _ = std::fs::remove_file(dir.path().join("store.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("store.db-shm"));
    assert_refused_unchanged(&path, |e| matches!(e, StoreError::Corrupt(_))).await;
}

#[tokio::test]
async fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    {
        let store = SqliteStore::open(&path).await.expect("create");
        store.close().await;
    }
    // Turn it into somebody else's database: a schema we did not write, version 0.
    let pool = raw_pool(&path).await;
    sqlx::raw_sql("PRAGMA user_version = 0; CREATE TABLE unrelated (x INTEGER);")
        .execute(&pool)
        .await
        .expect("alter");
    pool.close().await;
    assert_refused_unchanged(&path, |e| matches!(e, StoreError::Corrupt(_))).await;
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.db");
    {
        let store = SqliteStore::open(&path).await.expect("create");
        store.close().await;
    }
    let pool = raw_pool(&path).await;
    sqlx::raw_sql("PRAGMA user_version = 99")
        .execute(&pool)
        .await
        .expect("alter");
    pool.close().await;
    assert_refused_unchanged(&path, |e| {
        matches!(e, StoreError::SchemaTooNew { found: 99, supported } if *supported == SQLITE_SCHEMA_VERSION)
    })
    .await;
}

fn small_kdf() -> threads_store::StoreOptions {
    // Cheap parameters so the test is fast; the default is 64 MiB and 3 passes.
    threads_store::StoreOptions::new().with_kdf(threads_crypto::KdfParams::new(1024, 1, 1))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn passphrase_seals_secrets_at_rest() {
    use threads_store::KeyBook;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sealed.db");
    let thread = ThreadId::from_parts(Variant::Raw, [4; 32]);
    let key = ThreadKey::new(
        threads_crypto::ServiceKey::from_bytes([0xab; 32]),
        threads_crypto::ReadKey::from_bytes([0xcd; 32]),
    );
    let me = Identity::from_secret_bytes(&[0xef; 32]);
    {
        let store = SqliteStore::open_with(&path, &small_kdf().with_passphrase("correct horse"))
            .await
            .expect("create sealed");
        store.put_thread(thread, &key).await.expect("put");
        store.put_log_key(thread, &me).await.expect("put key");
        store.close().await;
    }
    // No secret appears in the files.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend(std::fs::read(dir.path().join("sealed.db-wal")).unwrap_or_default());
    for secret in [[0xab; 32], [0xcd; 32], [0xef; 32]] {
        assert!(
            !contains(&bytes, &secret),
            "a secret is stored in the clear"
        );
    }
    // The right passphrase reads them back.
    let store = SqliteStore::open_with(&path, &small_kdf().with_passphrase("correct horse"))
        .await
        .expect("reopen");
    assert_eq!(store.thread_key(thread).await.expect("read"), Some(key));
    let back = store
        .log_key(thread, me.log_id())
        .await
        .expect("read")
        .expect("present");
    assert_eq!(*back.secret_bytes(), [0xef; 32]);
    store.close().await;
    // No passphrase, or a wrong one: a typed error, and the file is not changed.
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path)
        .await
        .expect_err("needs the passphrase");
    assert!(matches!(err, StoreError::PassphraseRequired), "{err:?}");
    let err = SqliteStore::open_with(&path, &small_kdf().with_passphrase("wrong horse"))
        .await
        .expect_err("wrong passphrase");
    assert!(matches!(err, StoreError::WrongPassphrase), "{err:?}");
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[tokio::test]
async fn a_plain_store_with_secrets_refuses_a_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plain.db");
    let store = SqliteStore::open(&path).await.expect("create");
    store
        .put_thread(
            ThreadId::from_parts(Variant::Raw, [5; 32]),
            &ThreadKey::generate(),
        )
        .await
        .expect("put");
    store.close().await;
    let err = SqliteStore::open_with(&path, &small_kdf().with_passphrase("late"))
        .await
        .expect_err("not sealed");
    assert!(matches!(err, StoreError::NotSealed), "{err:?}");
}

/// A write (entries and view rows in one transaction) whose future is dropped at any
/// point commits all of it or nothing, and leaves no transaction open: the next write and
/// writes of the pool's own connections go through at once, and the log's head, its
/// entries and the views' cursor always agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_dropped_halfway_commits_all_or_nothing() {
    use std::time::Duration;
    use threads_store::{ViewBook, ViewChange, ViewCommit};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("store.db"))
        .await
        .expect("open");
    let thread = ThreadId::from_parts(Variant::Raw, [7; 32]);
    let key = ThreadKey::generate();
    store.put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[8; 32]), thread, &key).expect("writer");
    let log = writer.log_id();
    let mut head: Option<threads_log::Head> = None;
    let mut cids = Vec::new();
    let mut dropped = 0;
    for i in 0..300u64 {
        let next = head.map_or(1, |h| h.counter + 1);
        let skip = threads_log::skip_target(next).map(|t| cids[t as usize - 1]);
        let appended = writer
            .append(
                head.as_ref(),
                skip,
                format!("event {i}").as_bytes(),
                Hlc::new(i + 1, 0),
            )
            .expect("append");
        let counter = appended.record.counter().to_be_bytes().to_vec();
        let commit = ViewCommit {
            scope: "s".to_owned(),
            cursor: counter.clone(),
            changes: vec![ViewChange {
                view: "v".to_owned(),
                puts: (0..40u8)
                    .map(|k| (vec![k], counter.clone()))
                    // Every other write is too large to run in the writing task: it goes
                    // through a transaction of the pool, several round trips that a drop
                    // can stop halfway. The others run whole in their first poll.
                    .chain((i % 2 == 1).then(|| (vec![200], vec![7; 300 << 10])))
                    .collect(),
                ..ViewChange::default()
            }],
        };
        // Dropped after a varying number of microseconds: before, during or after SQLite
        // runs the script.
        let write = store.append_with_views(
            thread,
            log,
            head,
            std::slice::from_ref(&appended),
            std::slice::from_ref(&commit),
        );
        let answer = tokio::time::timeout(Duration::from_micros(i % 7 * 40), write).await;
        if answer.is_err() {
            dropped += 1;
        }
        // Another connection's write is not kept waiting by a transaction left open
        // (SQLite's lock would make it wait up to the busy timeout, 10 s, and fail).
        let started = std::time::Instant::now();
        store
            .put_meta(thread, "k", &i.to_be_bytes())
            .await
            .expect("meta");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a write of the pool waited {:?} for the lock",
            started.elapsed()
        );
        // A commit of another scope through the writing connection: the dropped script
        // is over once it is done (the connection runs its commands in order).
        store
            .view_commit(&ViewCommit {
                scope: "barrier".to_owned(),
                cursor: i.to_be_bytes().to_vec(),
                changes: Vec::new(),
            })
            .await
            .expect("barrier");
        let stored = store.head(thread, log).await.expect("head");
        let cursor = store.view_cursor("s").await.expect("cursor");
        let counter = stored.map_or(0, |h| h.counter);
        assert_eq!(
            cursor.map_or(0, |c| u64::from_be_bytes(c.try_into().expect("8 bytes"))),
            counter,
            "the views' cursor and the log's head disagree after write {i}"
        );
        let rows = store
            .view_get("s", "v", &[vec![0], vec![39]])
            .await
            .expect("rows");
        let expected = (counter > 0).then(|| counter.to_be_bytes().to_vec());
        assert_eq!(rows, vec![expected.clone(), expected], "rows of write {i}");
        let entries = store
            .entries_after(thread, log, 0, Page::new(1000, 1 << 30))
            .await
            .expect("entries");
        assert_eq!(entries.len() as u64, counter, "entries after write {i}");
        if counter == appended.record.counter() {
            head = Some(appended.record.head());
            cids.push(*appended.record.cid());
        }
    }
    assert!(dropped > 0, "no write was dropped: the test shows nothing");
    assert!(
        head.is_some_and(|h| h.counter > 100),
        "too few writes went through"
    );
}

/// While another connection holds the database's write lock, a write does not fail and
/// does not block its thread: it goes through a transaction of the pool, which waits for
/// the lock. A write refused there (a stale head) leaves the pool's connection usable,
/// and writes go through the writing connection again once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_while_another_connection_holds_the_lock_waits_for_it() {
    use sqlx::Connection;
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let thread = ThreadId::from_parts(Variant::Raw, [9; 32]);
    let key = ThreadKey::generate();
    store.put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[10; 32]), thread, &key).expect("writer");
    let log = writer.log_id();
    let mut head = None;
    let mut cids = Vec::new();
    let mut next = |head: &Option<threads_log::Head>, i: u64| {
        let counter = head.map_or(1, |h| h.counter + 1);
        let skip = threads_log::skip_target(counter).map(|t| cids[t as usize - 1]);
        let appended = writer
            .append(
                head.as_ref(),
                skip,
                format!("event {i}").as_bytes(),
                Hlc::new(i, 0),
            )
            .expect("append");
        cids.push(*appended.record.cid());
        appended
    };
    let first = next(&head, 1);
    store
        .append(thread, log, None, std::slice::from_ref(&first))
        .await
        .expect("first");
    head = Some(first.record.head());

    // Another process's connection takes the write lock and keeps it for 300 ms.
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("lock");
    let second = next(&head, 2);
    let started = std::time::Instant::now();
    let write = {
        let store = store.clone();
        let second = second.clone();
        tokio::spawn(async move {
            store
                .append(thread, log, head, std::slice::from_ref(&second))
                .await
        })
    };
    // A stale head while the lock is held: refused as a conflict, not an error of the
    // connection.
    let stale = {
        let store = store.clone();
        let again = first.clone();
        tokio::spawn(async move {
            store
                .append(thread, log, None, std::slice::from_ref(&again))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the write waits for the lock");
    sqlx::query("COMMIT")
        .execute(&mut other)
        .await
        .expect("unlock");
    let written = write.await.expect("task").expect("the write went through");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(
        written,
        threads_store::AppendOutcome::Appended { .. }
    ));
    let stale = stale.await.expect("task");
    assert!(
        matches!(
            stale,
            Ok(threads_store::AppendOutcome::AlreadyStored { .. })
        ),
        "{stale:?}"
    );
    head = Some(second.record.head());
    // Every connection is usable: many more writes and reads go through.
    for i in 3..40 {
        let entry = next(&head, i);
        store
            .append(thread, log, head, std::slice::from_ref(&entry))
            .await
            .expect("append");
        head = Some(entry.record.head());
        store
            .put_meta(thread, "k", &i.to_be_bytes())
            .await
            .expect("meta");
    }
    assert_eq!(store.head(thread, log).await.expect("head"), head);
    other.close().await.expect("close");
}

/// Writes without a pause keep the write-ahead log bounded: checkpoints copy it into the
/// database file while writes go on, and the log starts again from its beginning (before,
/// a checkpoint of the pool never caught up with a writer that did not stop, and the log
/// grew by every page written: a gigabyte for 30,000 document writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_writes_without_pause() {
    use threads_store::{ViewBook, ViewChange, ViewCommit};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let wal = dir.path().join("store.db-wal");
    // Each commit rewrites 8 rows of 4 KiB (about 10 pages): 7,000 commits write about
    // 70,000 pages, more than 4 times the log's limit of 16,000 frames.
    let commits = 7000u32;
    let mut largest = 0;
    for i in 0..commits {
        let value = vec![u8::try_from(i % 251).expect("small"); 4096];
        let commit = ViewCommit {
            scope: "s".to_owned(),
            cursor: i.to_be_bytes().to_vec(),
            changes: vec![ViewChange {
                view: "v".to_owned(),
                puts: (0..8u8)
                    .map(|k| (vec![k, u8::try_from(i % 4).expect("small")], value.clone()))
                    .collect(),
                ..ViewChange::default()
            }],
        };
        store.view_commit(&commit).await.expect("commit");
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    let frame = 4096 + 24;
    // The limit, plus what one commit and a checkpoint's last step may add.
    let bound = (16_000 + 4000) * frame;
    assert!(
        largest <= bound,
        "the write-ahead log grew to {largest} bytes (bound {bound})"
    );
    assert!(
        largest > 0,
        "no write-ahead log was seen: the test shows nothing"
    );
    // Every row is still there, with its last value.
    let rows = store
        .view_get("s", "v", &[vec![0, 3], vec![7, 3]])
        .await
        .expect("rows");
    let last = u8::try_from((commits - 1) % 251).expect("small");
    assert_eq!(rows, vec![Some(vec![last; 4096]), Some(vec![last; 4096])]);
    store.close().await;
}

/// Writes `n` records to a new log of a new thread (seed `seed`), 100 per append; their
/// record CIDs in order.
async fn write_records(
    store: &SqliteStore,
    seed: u8,
    n: usize,
) -> (ThreadId, Vec<threads_log::Cid>) {
    let thread = ThreadId::from_parts(Variant::Raw, [seed; 32]);
    let key = ThreadKey::generate();
    store.put_thread(thread, &key).await.expect("put");
    let writer =
        Writer::new(Identity::from_secret_bytes(&[seed; 32]), thread, &key).expect("writer");
    let mut cids = Vec::new();
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| format!("r{i}").into_bytes()).collect();
    for chunk in payloads.chunks(100) {
        let writes: Vec<_> = chunk
            .iter()
            .map(|p| (&writer, p.as_slice(), Hlc::new(1, 0)))
            .collect();
        let appended = threads_store::write_local_batch(store, &writes)
            .await
            .expect("write");
        cids.extend(appended.iter().map(|a| *a.record.cid()));
    }
    (thread, cids)
}

/// A record's block, by its CID, from the store (and `has_block` agrees).
async fn found(store: &SqliteStore, cid: &threads_log::Cid) -> bool {
    use threads_store::BlockStore;
    let block = store.get_block(cid).await.expect("get");
    let has = store.has_block(cid).await.expect("has");
    assert_eq!(
        block.is_some(),
        has,
        "get_block and has_block disagree on {cid}"
    );
    block.is_some_and(|b| b.cid() == cid)
}

async fn raw_pool(path: &std::path::Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect")
}

/// Record CIDs are indexed in batches: every record is found by its CID, indexed or not
/// yet, and the index holds the records of the batches done.
#[tokio::test]
async fn records_are_found_by_cid_before_and_after_their_batch_is_indexed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let (_, cids) = write_records(&store, 3, 2500).await;
    for &i in &[0, 1, 1000, 2046, 2047, 2048, 2049, 2400, 2499] {
        assert!(
            found(&store, &cids[i]).await,
            "record {i} not found by its CID"
        );
    }
    // A CID of no record (a record of another store) is not found.
    let other = SqliteStore::open(dir.path().join("other.db"))
        .await
        .expect("open");
    let (_, foreign) = write_records(&other, 4, 1).await;
    assert!(!found(&store, &foreign[0]).await);
    other.close().await;
    store.close().await;
    let pool = raw_pool(&path).await;
    let (indexed, upto): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM record_cids), (SELECT upto FROM record_cids_upto)",
    )
    .fetch_one(&pool)
    .await
    .expect("read");
    pool.close().await;
    // 100 per append: the first batch is indexed by the append that reaches 2,100.
    assert_eq!((indexed, upto), (2100, 2100));
}

/// Deleting a thread whose entries were the newest lets SQLite give their row ids again:
/// the records written after it are still found by their CIDs.
#[tokio::test]
async fn records_written_after_a_deleted_thread_are_found_by_cid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let (kept, kept_cids) = write_records(&store, 5, 10).await;
    let (gone, gone_cids) = write_records(&store, 6, 2200).await;
    store.delete_thread(gone).await.expect("delete");
    assert!(
        !found(&store, &gone_cids[0]).await,
        "a deleted record is still found"
    );
    assert!(!found(&store, &gone_cids[2199]).await);
    let (_, new_cids) = write_records(&store, 7, 50).await;
    for cid in new_cids.iter().chain(&kept_cids) {
        assert!(found(&store, cid).await, "record {cid} not found");
    }
    assert!(
        store
            .head(kept, Identity::from_secret_bytes(&[5; 32]).log_id())
            .await
            .expect("head")
            .is_some()
    );
    store.close().await;
}

/// A store of schema version 4 (a unique index on the entries' record CIDs) opens as
/// version 5 with every record in the new index.
#[tokio::test]
async fn a_version_4_store_migrates_its_record_cids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let (_, cids) = write_records(&store, 8, 300).await;
    store.close().await;
    // Back to version 4's shape.
    let pool = raw_pool(&path).await;
    sqlx::raw_sql(
        "DROP TABLE record_cids; DROP TABLE record_cids_upto; \
         CREATE UNIQUE INDEX entries_record_cid ON entries (record_cid); \
         PRAGMA user_version = 4;",
    )
    .execute(&pool)
    .await
    .expect("downgrade");
    pool.close().await;
    let store = SqliteStore::open(&path).await.expect("migrate");
    for cid in &cids {
        assert!(
            found(&store, cid).await,
            "record {cid} not found after migrating"
        );
    }
    store.close().await;
    let pool = raw_pool(&path).await;
    let (version, indexed, upto, old_index): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT user_version FROM pragma_user_version), \
         (SELECT count(*) FROM record_cids), (SELECT upto FROM record_cids_upto), \
         (SELECT count(*) FROM sqlite_master WHERE name = 'entries_record_cid')",
    )
    .fetch_one(&pool)
    .await
    .expect("read");
    pool.close().await;
    assert_eq!((version, indexed, upto, old_index), (5, 300, 300, 0));
}
