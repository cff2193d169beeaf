//! Convergence through background sync on real nodes (127.0.0.1): two peers writing at the
//! same time, and five peers in a chain where each knows only its neighbours. Tests wait on
//! the nodes' events, with a deadline, never on fixed sleeps.

mod support;

use support::{node, write};

use std::time::Duration;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::Writer;
use threads_net::{NetEvent, Node};
use threads_store::{LogBook, MemoryStore, ThreadBook};
use tokio::sync::broadcast;

const DEADLINE: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_millis(50);

/// Waits until every node holds the same heads for `thread` with `logs` logs of `counter`
/// entries each, waking on the nodes' events (with a periodic re-check for events missed
/// while subscribing).
async fn converged(nodes: &[Node<MemoryStore>], thread: ThreadId, logs: usize, counter: u64) {
    let mut receivers: Vec<broadcast::Receiver<NetEvent>> =
        nodes.iter().map(Node::subscribe).collect();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut done = true;
        let first = nodes[0].store().heads_digest(thread).await.expect("digest");
        for n in nodes {
            let all = n.store().logs(thread).await.expect("logs");
            let mut full = all.len() == logs;
            for log in all {
                full &= n
                    .store()
                    .head(thread, log)
                    .await
                    .expect("head")
                    .map(|h| h.counter)
                    == Some(counter);
            }
            done &= full && n.store().heads_digest(thread).await.expect("digest") == first;
        }
        if done {
            return;
        }
        let any_event =
            futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.recv())));
        match tokio::time::timeout_at(deadline, tokio::time::timeout(INTERVAL * 4, any_event)).await
        {
            Ok(_) => {}
            Err(_) => panic!("peers did not converge within {DEADLINE:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_writing_at_once_converge() {
    let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
    let key = ThreadKey::generate();
    let (a, b) = (node(50).await, node(51).await);
    for n in [&a, &b] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    a.add_peer(b.thread_addr(thread).expect("addr"));
    b.add_peer(a.thread_addr(thread).expect("addr"));
    a.start_sync(INTERVAL);
    b.start_sync(INTERVAL);
    let wa = Writer::new(Identity::from_secret_bytes(&[60; 32]), thread, &key).expect("writer");
    let wb = Writer::new(Identity::from_secret_bytes(&[61; 32]), thread, &key).expect("writer");
    tokio::join!(write(&a, &wa, 40), write(&b, &wb, 40));
    converged(&[a.clone(), b.clone()], thread, 2, 40).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_peers_in_a_chain_converge() {
    let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
    let key = ThreadKey::generate();
    let mut nodes = Vec::new();
    for i in 0..5u8 {
        let n = node(70 + i).await;
        n.store().put_thread(thread, &key).await.expect("put");
        nodes.push(n);
    }
    for i in 0..5 {
        if i > 0 {
            nodes[i].add_peer(nodes[i - 1].thread_addr(thread).expect("addr"));
        }
        if i < 4 {
            nodes[i].add_peer(nodes[i + 1].thread_addr(thread).expect("addr"));
        }
        nodes[i].start_sync(INTERVAL);
    }
    for (i, n) in nodes.iter().enumerate() {
        let w = Writer::new(
            Identity::from_secret_bytes(&[80 + i as u8; 32]),
            thread,
            &key,
        )
        .expect("writer");
        write(n, &w, 10).await;
    }
    converged(&nodes, thread, 5, 10).await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals() {
    let thread = ThreadId::from_parts(Variant::Raw, [3; 32]);
    let key = ThreadKey::generate();
    let mut nodes = Vec::new();
    for i in 0..4u8 {
        let n = node(110 + i).await;
        n.store().put_thread(thread, &key).await.expect("put");
        n.start_sync(INTERVAL);
        nodes.push(n);
    }
    // Two halves that know only each other.
    let link = |a: &Node<MemoryStore>, b: &Node<MemoryStore>| {
        a.add_peer(b.thread_addr(thread).expect("addr"));
        b.add_peer(a.thread_addr(thread).expect("addr"));
    };
    link(&nodes[0], &nodes[1]);
    link(&nodes[2], &nodes[3]);
    for (i, n) in nodes.iter().enumerate() {
        let w = Writer::new(
            Identity::from_secret_bytes(&[120 + i as u8; 32]),
            thread,
            &key,
        )
        .expect("writer");
        write(n, &w, 15).await;
    }
    converged(&nodes[..2], thread, 2, 15).await;
    converged(&nodes[2..], thread, 2, 15).await;
    // Each half holds only its own logs.
    assert_eq!(nodes[0].store().logs(thread).await.expect("logs").len(), 2);
    assert_ne!(
        nodes[0].store().heads_digest(thread).await.expect("digest"),
        nodes[2].store().heads_digest(thread).await.expect("digest")
    );
    // Heal: one link across.
    link(&nodes[1], &nodes[2]);
    converged(&nodes, thread, 4, 15).await;
    for n in &nodes {
        n.shutdown().await;
    }
}
