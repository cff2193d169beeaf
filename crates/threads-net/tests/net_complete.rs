//! Each cause of an incomplete replication, on real nodes on 127.0.0.1: pushes that arrive
//! out of order, pushes lost while the pusher believes them delivered, a peer behind us
//! (positive lag on our side), and a pusher whose peer was unreachable for a while.

mod support;

use support::{node, wait_counter, write};

use std::sync::Arc;
use std::time::Duration;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Hlc, Writer};
use threads_net::message::{Refusal, Request, WireEntry};
use threads_net::{AuthProof, Faults, NetConfig, NetError, Node};
use threads_store::{LogBook, MemoryStore, ThreadBook};

const INTERVAL: Duration = Duration::from_millis(100);

async fn faulty(seed: u8, faults: &Faults) -> Node<MemoryStore> {
    Node::start(
        &Identity::from_secret_bytes(&[seed; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]).with_faults(faults.clone()),
    )
    .await
    .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_pushes_end_with_the_receiver_complete() {
    let thread = ThreadId::from_parts(Variant::Raw, [41; 32]);
    let key = ThreadKey::generate();
    let alice = node(41).await;
    let bob = node(42).await;
    for n in [&alice, &bob] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let writer = Writer::new(Identity::from_secret_bytes(&[43; 32]), thread, &key).expect("w");
    let written = write(&alice, &writer, 10).await;
    // Bob knows nothing of Alice (no address, no sync task). Alice pushes the second half
    // of her log first, and never the first half.
    let proof = AuthProof::new(key.service(), &thread, &alice.peer_id(), &bob.peer_id());
    let later: Vec<WireEntry> = written[5..]
        .iter()
        .map(|a| WireEntry::from_entry(&a.entry))
        .collect();
    let bob_addr = bob.thread_addr(thread).expect("addr").transport_addr();
    let answer = alice
        .request(
            bob.peer_id(),
            vec![bob_addr],
            Request::PushRecords {
                thread,
                proof,
                log: writer.log_id(),
                entries: later,
            },
        )
        .await;
    assert!(
        matches!(
            answer,
            Err(NetError::Refused {
                refusal: Refusal::Rejected(ref code),
                ..
            }) if code == "gap"
        ),
        "{answer:?}"
    );
    // The gap makes Bob pull from the pusher: he ends with all ten entries.
    wait_counter(&bob, thread, writer.log_id(), 10).await;
    for n in [&alice, &bob] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_pushes_from_the_queue_arrive_whole() {
    let thread = ThreadId::from_parts(Variant::Raw, [44; 32]);
    let key = ThreadKey::generate();
    let faults = Faults::new();
    let alice = faulty(44, &faults).await;
    let bob = node(45).await;
    for n in [&alice, &bob] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    alice.add_peer(bob.thread_addr(thread).expect("addr"));
    let writer = Writer::new(Identity::from_secret_bytes(&[46; 32]), thread, &key).expect("w");
    // Every push of two or more entries goes later half first.
    faults.reorder_pushes(1.0);
    write(&alice, &writer, 40).await;
    alice.publish(thread, writer.log_id());
    wait_counter(&bob, thread, writer.log_id(), 40).await;
    for i in 41..=60u64 {
        alice
            .write(&writer, format!("entry {i}").as_bytes(), Hlc::new(i, 0))
            .await
            .expect("write");
    }
    wait_counter(&bob, thread, writer.log_id(), 60).await;
    for n in [&alice, &bob] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_behind_us_shows_positive_lag_until_the_queue_delivers() {
    let thread = ThreadId::from_parts(Variant::Raw, [47; 32]);
    let key = ThreadKey::generate();
    let faults = Faults::new();
    let alice = faulty(47, &faults).await;
    let bob = node(48).await;
    for n in [&alice, &bob] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    alice.add_peer(bob.thread_addr(thread).expect("addr"));
    let writer = Writer::new(Identity::from_secret_bytes(&[49; 32]), thread, &key).expect("w");
    for i in 1..=2u64 {
        alice
            .write(&writer, b"before", Hlc::new(i, 0))
            .await
            .expect("write");
    }
    wait_counter(&bob, thread, writer.log_id(), 2).await;
    let mut heard = false;
    for _ in 0..200 {
        let status = alice.sync_status().await.expect("status");
        if status
            .iter()
            .any(|s| s.peer == bob.peer_id() && s.peer_counter == Some(2))
        {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(heard, "alice hears bob's answer to her pushes");
    // Bob becomes unreachable; Alice writes three more.
    faults.block(bob.peer_id());
    for i in 3..=5u64 {
        alice
            .write(&writer, b"while apart", Hlc::new(i, 0))
            .await
            .expect("write");
    }
    let row = |status: Vec<threads_net::SyncStatus>| {
        status
            .into_iter()
            .find(|s| s.peer == bob.peer_id() && s.log == writer.log_id())
            .expect("a row for bob")
    };
    let behind = row(alice.sync_status().await.expect("status"));
    assert_eq!(
        (behind.local_counter, behind.peer_counter, behind.lag),
        (5, Some(2), 0)
    );
    assert_eq!(behind.peer_lacks, 3, "bob lacks three of our entries");
    // Reachable again: the pusher's retry delivers, and the lag goes to zero.
    faults.unblock(bob.peer_id());
    wait_counter(&bob, thread, writer.log_id(), 5).await;
    let mut caught_up = false;
    for _ in 0..200 {
        let now = row(alice.sync_status().await.expect("status"));
        if now.peer_lacks == 0 {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(caught_up, "alice hears that bob has everything");
    for n in [&alice, &bob] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_lost_as_delivered_are_repaired_by_the_sync() {
    let thread = ThreadId::from_parts(Variant::Raw, [50; 32]);
    let key = ThreadKey::generate();
    let faults = Faults::new();
    let alice = faulty(50, &faults).await;
    let bob = node(51).await;
    for n in [&alice, &bob] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    // Only Alice knows the other's address, so Bob can never pull: what Bob gets, Alice
    // must send.
    alice.add_peer(bob.thread_addr(thread).expect("addr"));
    let writer = Writer::new(Identity::from_secret_bytes(&[52; 32]), thread, &key).expect("w");
    faults.drop_pushes(1.0);
    for i in 1..=20u64 {
        alice
            .write(&writer, b"lost", Hlc::new(i, 0))
            .await
            .expect("write");
    }
    // Alice's queue believes every push delivered; nothing reached Bob.
    let mut believed = false;
    for _ in 0..200 {
        let status = alice.sync_status().await.expect("status");
        if status
            .iter()
            .any(|s| s.peer == bob.peer_id() && s.peer_counter == Some(20))
        {
            believed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(believed);
    assert_eq!(
        bob.store()
            .head(thread, writer.log_id())
            .await
            .expect("head"),
        None
    );
    // The periodic sync notices the digests differ, asks Bob's heads and pushes the rest.
    faults.drop_pushes(0.0);
    alice.start_sync(INTERVAL);
    wait_counter(&bob, thread, writer.log_id(), 20).await;
    for n in [&alice, &bob] {
        n.shutdown().await;
    }
}
