//! Helpers shared by the network test suites: nodes on loopback and writing to a log.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use threads_crypto::Identity;
use threads_id::{LogId, ThreadId};
use threads_log::{Appended, Entry, Hlc, Writer, skip_target};
use threads_net::{NetConfig, Node};
use threads_store::{LogBook, MemoryStore, Page};

/// A node with an in-memory store, listening on a free loopback TCP port.
pub async fn node(seed: u8) -> Node<MemoryStore> {
    let config = NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]);
    Node::start(
        &Identity::from_secret_bytes(&[seed; 32]),
        Arc::new(MemoryStore::new()),
        config,
    )
    .await
    .expect("start")
}

/// Appends `n` entries (payload `entry <counter>`) to `writer`'s log in `node`'s store,
/// without pushing them.
pub async fn write(node: &Node<MemoryStore>, writer: &Writer, n: usize) -> Vec<Appended> {
    let (thread, log) = (writer.thread_id(), writer.log_id());
    let mut head = node.store().head(thread, log).await.expect("head");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let counter = head.map_or(1, |h| h.counter + 1);
        let skip = match skip_target(counter) {
            Some(t) => node.store().record_cid(thread, log, t).await.expect("cid"),
            None => None,
        };
        let payload = format!("entry {counter}");
        let a = writer
            .append(
                head.as_ref(),
                skip,
                payload.as_bytes(),
                Hlc::new(counter, 0),
            )
            .expect("append");
        node.store()
            .append(thread, log, head, std::slice::from_ref(&a))
            .await
            .expect("store");
        head = Some(a.record.head());
        out.push(a);
        tokio::task::yield_now().await;
    }
    out
}

/// Every stored entry of `writer`'s log on `node`, oldest first.
pub async fn entries(node: &Node<MemoryStore>, thread: ThreadId, writer: &Writer) -> Vec<Entry> {
    node.store()
        .entries_after(thread, writer.log_id(), 0, Page::new(10_000, usize::MAX))
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.entry)
        .collect()
}

/// Waits (at most 30 s) until `node` stores `counter` entries of `log`: woken by its
/// `Stored` events, never by a fixed sleep. Panics on timeout.
pub async fn wait_counter(node: &Node<MemoryStore>, thread: ThreadId, log: LogId, counter: u64) {
    let mut events = node.subscribe();
    let reached = async {
        loop {
            let head = node.store().head(thread, log).await.expect("head");
            if head.is_some_and(|h| h.counter >= counter) {
                return;
            }
            // A lagged receiver or an event of another log: look at the store again.
            let _ = events.recv().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), reached)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not reach counter {counter} of {log}",
                node.peer_id()
            )
        });
}
