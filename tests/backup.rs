//! Backup and restore of a whole peer: a peer on a SQLite file with an access-controlled
//! thread (documents, keys, a member) and a raw thread is backed up, its files wiped,
//! and restored into a new file: the identity, every view and the peers come back, and
//! the restored peer syncs with the member again. A wrong passphrase or a changed byte is
//! refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use threads_acl::Role;
use threads_crypto::{Identity, KdfParams};
use threads_db::{Db, DbConfig, DbError, Query, restore};
use threads_id::{ThreadId, Variant};
use threads_store::SqliteStore;

const LIMIT: Duration = Duration::from_secs(60);

fn config() -> DbConfig {
    DbConfig::default().with_sync_interval(Duration::from_millis(200))
}

/// Everything a user reads of a thread here: keys and values, documents, members.
async fn views(db: &Db<SqliteStore>, thread: ThreadId, docs: bool) -> String {
    let kv = db.list(thread, b"").await.expect("list");
    let docs = if docs {
        db.query(thread, "notes", &Query::all())
            .await
            .expect("query")
            .docs
    } else {
        Vec::new()
    };
    let members = if thread.variant() == Variant::AccessControlled {
        db.members(thread).await.expect("members")
    } else {
        Default::default()
    };
    format!("{kv:?} {docs:?} {members:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_backed_up_wiped_and_restored_has_the_same_views_and_syncs_again() {
    let dir = tempfile::tempdir().expect("dir");
    let alice = Db::open_sqlite(
        dir.path().join("alice.db"),
        Identity::from_secret_bytes(&[120; 32]),
        config(),
    )
    .await
    .expect("alice");
    let bob = Db::open_memory(Identity::from_secret_bytes(&[121; 32]), config())
        .await
        .expect("bob");
    let acl = alice
        .create_thread(Variant::AccessControlled)
        .await
        .expect("thread");
    alice
        .transaction(acl)
        .create_collection("notes", &json!({"type": "object"}))
        .create("notes", "a", &json!({"title": "one"}))
        .put(b"color", b"blue")
        .commit()
        .await
        .expect("write");
    let invite = alice
        .invite(acl, bob.identity().log_id(), Role::Write)
        .await
        .expect("invite");
    bob.join(&invite).await.expect("join");
    bob.transaction(acl)
        .create("notes", "b", &json!({"title": "from bob"}))
        .commit()
        .await
        .expect("write");
    let raw = alice.create_thread(Variant::Raw).await.expect("thread");
    alice
        .transaction(raw)
        .put(b"k", b"v")
        .commit()
        .await
        .expect("write");
    let started = Instant::now();
    while alice.doc(acl, "notes", "b").await.expect("doc").is_none() {
        assert!(started.elapsed() < LIMIT, "bob's document reaches alice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = (
        views(&alice, acl, true).await,
        views(&alice, raw, false).await,
    );
    let me = alice.identity().log_id();

    // A small KDF keeps the test fast; the default is 64 MiB.
    let kdf = KdfParams::new(1024, 1, 1);
    let backup = alice
        .backup_with(b"correct horse", kdf)
        .await
        .expect("backup");
    alice.shutdown().await;
    drop(alice);
    std::fs::remove_dir_all(dir.path()).expect("wipe");
    std::fs::create_dir_all(dir.path()).expect("dir");

    // Refused: a wrong passphrase, a changed byte.
    let scratch = SqliteStore::open(dir.path().join("scratch.db"))
        .await
        .expect("store");
    assert!(matches!(
        restore(&scratch, &backup, b"wrong horse").await,
        Err(DbError::Backup(_))
    ));
    let mut changed = backup.clone();
    let at = changed.len() - 10;
    changed[at] ^= 1;
    assert!(matches!(
        restore(&scratch, &changed, b"correct horse").await,
        Err(DbError::Backup(_))
    ));
    scratch.close().await;

    let store = SqliteStore::open(dir.path().join("restored.db"))
        .await
        .expect("store");
    let restored = restore(&store, &backup, b"correct horse")
        .await
        .expect("restore");
    assert_eq!(restored.identity.log_id(), me);
    assert_eq!(restored.threads.len(), 2);
    let alice = Db::open(restored.identity, Arc::new(store), config())
        .await
        .expect("open the restored peer");
    let after = (
        views(&alice, acl, true).await,
        views(&alice, raw, false).await,
    );
    assert_eq!(after, before);

    // The peers came back too: a new write of bob's reaches the restored peer.
    bob.transaction(acl)
        .put(b"after", b"restore")
        .commit()
        .await
        .expect("write");
    let started = Instant::now();
    while alice.get(acl, b"after").await.expect("get").is_none() {
        assert!(
            started.elapsed() < LIMIT,
            "the restored peer syncs with bob"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice.shutdown().await;
    bob.shutdown().await;
}
