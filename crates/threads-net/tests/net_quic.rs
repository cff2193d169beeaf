//! The QUIC transport (cargo feature `quic`): two nodes on loopback UDP sync a thread.
//! Built and run once in CI (`cargo xtask ci` runs `cargo test -p threads-net --features
//! quic --test net_quic`); without the feature this file is empty.
#![cfg(feature = "quic")]

use std::sync::Arc;
use std::time::Duration;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Hlc, Writer};
use threads_net::{NetConfig, Node};
use threads_store::{LogBook, MemoryStore, ThreadBook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sync_over_quic() {
    let config = || NetConfig::new(["/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr")]);
    let alice = Node::start(
        &Identity::from_secret_bytes(&[1; 32]),
        Arc::new(MemoryStore::new()),
        config(),
    )
    .await
    .expect("start");
    let bob = Node::start(
        &Identity::from_secret_bytes(&[2; 32]),
        Arc::new(MemoryStore::new()),
        config(),
    )
    .await
    .expect("start");
    assert!(alice.listen_addrs()[0].to_string().contains("/quic-v1/"));
    let thread = ThreadId::from_parts(Variant::Raw, [3; 32]);
    let key = ThreadKey::generate();
    for n in [&alice, &bob] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let writer = Writer::new(Identity::from_secret_bytes(&[4; 32]), thread, &key).expect("writer");
    let first = writer
        .append(None, None, b"over quic", Hlc::new(1, 0))
        .expect("append");
    alice
        .store()
        .append(thread, writer.log_id(), None, std::slice::from_ref(&first))
        .await
        .expect("store");
    let stored = tokio::time::timeout(
        Duration::from_secs(30),
        bob.pull(&alice.thread_addr(thread).expect("addr")),
    )
    .await
    .expect("in time")
    .expect("pull");
    assert_eq!(stored, 1);
    assert_eq!(
        bob.store()
            .head(thread, writer.log_id())
            .await
            .expect("head"),
        Some(first.record.head())
    );
    alice.shutdown().await;
    bob.shutdown().await;
}
