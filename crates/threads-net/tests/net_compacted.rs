//! A peer that compacted bodies (threads-views drops bodies no view needs) serves its log
//! only up to the first compacted entry; the puller is not handed an entry it would reject
//! and completes the log from a peer that kept the bodies.

mod support;

use support::{entries, node, write};

use std::time::Duration;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::Writer;
use threads_store::{LogBook, ThreadBook, ViewBook};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_entries_are_not_served() {
    let thread = ThreadId::from_parts(Variant::Raw, [7; 32]);
    let key = ThreadKey::generate();
    let alice = node(40).await;
    let bob = node(41).await;
    let follower = node(42).await;
    alice.store().put_thread(thread, &key).await.expect("put");
    bob.store().put_thread(thread, &key).await.expect("put");
    follower
        .store()
        .put_thread(thread, &key.to_follower())
        .await
        .expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[43; 32]), thread, &key).expect("writer");
    write(&alice, &writer, 10).await;
    let alice_addr = alice.thread_addr(thread).expect("address");

    // The follower keeps every body.
    let pulled = tokio::time::timeout(LIMIT, follower.pull(&alice_addr))
        .await
        .expect("in time")
        .expect("pull");
    assert_eq!(pulled, 10);

    // Alice compacts entries 4 and 7.
    let dropped = alice
        .store()
        .compact_bodies(thread, writer.log_id(), &[4, 7])
        .await
        .expect("compact");
    assert_eq!(dropped, 2);

    // Bob pulls from Alice: the first three entries, and no rejection.
    let pulled = tokio::time::timeout(LIMIT, bob.pull(&alice_addr))
        .await
        .expect("in time")
        .expect("a compacted peer is not a misbehaving one");
    assert_eq!(pulled, 3);
    let head = bob
        .store()
        .head(thread, writer.log_id())
        .await
        .expect("head")
        .expect("some entries");
    assert_eq!(head.counter, 3);
    let status = bob.sync_status().await.expect("status");
    let from_alice: Vec<_> = status
        .iter()
        .filter(|s| s.thread == thread && s.peer == alice.peer_id())
        .collect();
    assert_eq!(from_alice.len(), 1, "{status:?}");
    assert_eq!(from_alice[0].health.accepted, 3);
    assert_eq!(from_alice[0].health.rejected(), 0, "{status:?}");

    // The rest comes from the follower, byte for byte as written.
    let follower_addr = follower.thread_addr(thread).expect("address");
    let pulled = tokio::time::timeout(LIMIT, bob.pull(&follower_addr))
        .await
        .expect("in time")
        .expect("pull");
    assert_eq!(pulled, 7);
    assert_eq!(
        entries(&bob, thread, &writer).await,
        entries(&follower, thread, &writer).await
    );
}
