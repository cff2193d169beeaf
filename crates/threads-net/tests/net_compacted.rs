//! A peer that compacted bodies serves its log whole, the compacted entries without their
//! body; the puller checks and keeps them so, and gets the bodies back from a peer that
//! kept them when it asks.

mod support;

use support::{entries, node, write};

use std::time::Duration;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::Writer;
use threads_store::{ThreadBook, ViewBook};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_entries_are_served_without_their_body_and_filled_from_another_peer() {
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

    // Bob pulls from Alice: every entry, the compacted ones without their body (record,
    // event and header checked), and no rejection.
    let pulled = tokio::time::timeout(LIMIT, bob.pull(&alice_addr))
        .await
        .expect("in time")
        .expect("a compacted peer is not a misbehaving one");
    assert_eq!(pulled, 10);
    let held = entries(&bob, thread, &writer).await;
    let whole = entries(&follower, thread, &writer).await;
    for (i, (ours, theirs)) in held.iter().zip(&whole).enumerate() {
        assert_eq!(ours.record, theirs.record);
        assert_eq!(ours.header, theirs.header);
        assert_eq!(
            ours.body.data().is_empty(),
            i == 3 || i == 6,
            "entry {}",
            i + 1
        );
    }
    let status = bob.sync_status().await.expect("status");
    let from_alice: Vec<_> = status
        .iter()
        .filter(|s| s.thread == thread && s.peer == alice.peer_id())
        .collect();
    assert_eq!(from_alice.len(), 1, "{status:?}");
    assert_eq!(from_alice[0].health.accepted, 10);
    assert_eq!(from_alice[0].health.rejected(), 0, "{status:?}");

    // A body-less entry whose body differs from the record's links is refused.
    let tampered = {
        let mut page: Vec<threads_net::message::WireEntry> = whole
            .iter()
            .map(threads_net::message::WireEntry::from_entry)
            .collect();
        page[3].body = b"not the body".to_vec();
        page
    };
    let other = node(44).await;
    other.store().put_thread(thread, &key).await.expect("put");
    let refused =
        threads_net::ingest(&**other.store(), thread, writer.log_id(), &key, tampered).await;
    assert!(
        matches!(&refused, Err(r) if r.code() == "link"),
        "{refused:?}"
    );

    // Bob asks the peers it knows for the missing bodies: Alice has none to give, the
    // follower kept them; the log ends byte for byte as written.
    bob.add_peer(alice_addr.clone());
    bob.add_peer(follower.thread_addr(thread).expect("address"));
    let filled = tokio::time::timeout(LIMIT, bob.fill_bodies(thread, writer.log_id(), 4))
        .await
        .expect("in time")
        .expect("fill");
    assert_eq!(filled, 2);
    assert_eq!(
        entries(&bob, thread, &writer).await,
        entries(&follower, thread, &writer).await
    );
    other.shutdown().await;
}
