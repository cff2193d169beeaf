//! Real libp2p nodes on 127.0.0.1 in one process: pull, push, a follower that cannot read,
//! and a peer without the key being refused. Every wait has a timeout.

mod support;

use support::{entries, node, wait_counter, write};

use std::sync::Arc;
use std::time::Duration;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Hlc, Verifier, VerifyError, Writer};
use threads_net::message::Refusal;
use threads_net::{NetConfig, NetError, Node};
use threads_store::{LogBook, MemoryStore, MetaBook, ThreadBook};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_push_follower_and_refusal() {
    let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
    let key = ThreadKey::generate();
    let alice = node(10).await;
    let bob = node(11).await;
    let follower = node(12).await;
    let stranger = node(13).await;
    alice.store().put_thread(thread, &key).await.expect("put");
    bob.store().put_thread(thread, &key).await.expect("put");
    follower
        .store()
        .put_thread(thread, &key.to_follower())
        .await
        .expect("put");
    stranger
        .store()
        .put_thread(thread, &ThreadKey::generate())
        .await
        .expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[20; 32]), thread, &key).expect("writer");
    write(&alice, &writer, 50).await;
    let alice_addr = alice.thread_addr(thread).expect("address");

    // Bob pulls everything, in pages, and ends with Alice's log exactly.
    let stored = tokio::time::timeout(LIMIT, bob.pull(&alice_addr))
        .await
        .expect("in time")
        .expect("pull");
    assert_eq!(stored, 50);
    assert_eq!(
        entries(&bob, thread, &writer).await,
        entries(&alice, thread, &writer).await
    );
    // Pulling again stores nothing.
    assert_eq!(
        tokio::time::timeout(LIMIT, bob.pull(&alice_addr))
            .await
            .expect("in time")
            .expect("pull"),
        0
    );

    // Alice pushes a new entry to Bob as soon as she writes it.
    alice.add_peer(bob.thread_addr(thread).expect("address"));
    let new = write(&alice, &writer, 1).await;
    let pushed = tokio::time::timeout(
        LIMIT,
        alice.push(thread, writer.log_id(), &[new[0].entry.clone()]),
    )
    .await
    .expect("in time")
    .expect("push");
    assert_eq!(pushed, 1);
    assert_eq!(
        bob.store()
            .head(thread, writer.log_id())
            .await
            .expect("head"),
        Some(new[0].record.head())
    );
    let health = alice.health().report();
    assert!(
        health
            .iter()
            .any(|r| r.peer == bob.peer_id() && r.health.peer_counter == Some(51)),
        "{health:?}"
    );

    // The follower replicates through Bob, and cannot read what it holds.
    let stored = tokio::time::timeout(
        LIMIT,
        follower.pull(&bob.thread_addr(thread).expect("address")),
    )
    .await
    .expect("in time")
    .expect("pull");
    assert_eq!(stored, 51);
    let held = follower
        .store()
        .thread_key(thread)
        .await
        .expect("read")
        .expect("key");
    assert!(held.read().is_none());
    let verifier = Verifier::new(thread, writer.log_id(), &held).expect("verifier");
    let first = &entries(&follower, thread, &writer).await[0];
    assert_eq!(
        verifier.verify_entry(None, first),
        Err(VerifyError::NoReadKey)
    );
    assert!(verifier.verify_follower_entry(None, first).is_ok());

    // A peer with another key for the same thread id is refused, and learns nothing.
    let err = tokio::time::timeout(LIMIT, stranger.pull(&alice_addr))
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(
        matches!(
            err,
            NetError::Refused {
                refusal: Refusal::UnknownThread,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        stranger
            .store()
            .logs(thread)
            .await
            .expect("logs")
            .is_empty()
    );

    for n in [&alice, &bob, &follower, &stranger] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_by_invites_and_read_through_a_follower_while_the_writer_is_offline() {
    use threads_crypto::KeySet;
    use threads_net::Invite;

    let thread = ThreadId::from_parts(Variant::Raw, [2; 32]);
    let key = ThreadKey::generate();
    let alice = node(30).await;
    let follower = node(31).await;
    let reader = node(32).await;
    alice.store().put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[40; 32]), thread, &key).expect("writer");
    write(&alice, &writer, 30).await;

    // A sealed invite for the follower: service key only, opened with its own identity.
    let follower_me = Identity::from_secret_bytes(&[31; 32]);
    let alice_me = Identity::from_secret_bytes(&[30; 32]);
    let sealed = Invite::sealed(
        &alice_me,
        vec![alice.thread_addr(thread).expect("address")],
        &KeySet::new(thread, key.to_follower()),
        &follower_me.public(),
    );
    let wrong = Identity::from_secret_bytes(&[99; 32]);
    assert!(matches!(
        follower.join(&sealed, &wrong).await,
        Err(NetError::Invite(_))
    ));
    let sealed: Invite = sealed.to_text().parse().expect("the text form parses");
    let (joined, stored) = tokio::time::timeout(LIMIT, follower.join(&sealed, &follower_me))
        .await
        .expect("in time")
        .expect("join");
    assert_eq!((joined, stored), (thread, 30));

    // The writer goes offline.
    alice.shutdown().await;

    // A link invite pointing at the follower: the reader gets everything from it.
    let link = Invite::link(
        &follower_me,
        vec![follower.thread_addr(thread).expect("address")],
        KeySet::new(thread, key.clone()),
    );
    let link: Invite = link.to_text().parse().expect("parses");
    let reader_me = Identity::from_secret_bytes(&[32; 32]);
    let (_, stored) = tokio::time::timeout(LIMIT, reader.join(&link, &reader_me))
        .await
        .expect("in time")
        .expect("join");
    assert_eq!(stored, 30);

    // The reader reads every payload; the follower holds the same bytes and cannot.
    let verifier = Verifier::new(thread, writer.log_id(), &key).expect("verifier");
    let mut head = None;
    for (i, entry) in entries(&reader, thread, &writer).await.iter().enumerate() {
        let (record, event) = verifier.verify_entry(head.as_ref(), entry).expect("reads");
        assert_eq!(event.payload(), format!("entry {}", i + 1).as_bytes());
        head = Some(record.head());
    }
    assert_eq!(
        entries(&reader, thread, &writer).await,
        entries(&follower, thread, &writer).await
    );
    let follower_key = follower
        .store()
        .thread_key(thread)
        .await
        .expect("read")
        .expect("key");
    assert!(!follower_key.can_read());
    follower.shutdown().await;
    reader.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_offline_for_a_thousand_writes_catches_up() {
    let thread = ThreadId::from_parts(Variant::Raw, [5; 32]);
    let key = ThreadKey::generate();
    let alice = node(100).await;
    alice.store().put_thread(thread, &key).await.expect("put");
    let writer =
        Writer::new(Identity::from_secret_bytes(&[101; 32]), thread, &key).expect("writer");
    // Bob is offline (not running) while Alice writes 1,000 entries.
    write(&alice, &writer, 1_000).await;
    let bob = node(102).await;
    bob.store().put_thread(thread, &key).await.expect("put");
    let stored = tokio::time::timeout(LIMIT, bob.pull(&alice.thread_addr(thread).expect("addr")))
        .await
        .expect("in time")
        .expect("pull");
    assert_eq!(stored, 1_000);
    assert_eq!(
        entries(&bob, thread, &writer).await,
        entries(&alice, thread, &writer).await
    );
    let health = bob.health().report();
    assert_eq!(health[0].health.accepted, 1_000);
    assert_eq!(health[0].health.peer_counter, Some(1_000));
    let status = bob.sync_status().await.expect("status");
    assert_eq!((status[0].local_counter, status[0].lag), (1_000, 0));
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_announcement_makes_a_peer_pull_at_once() {
    let thread = ThreadId::from_parts(Variant::Raw, [6; 32]);
    let key = ThreadKey::generate();
    let alice = node(130).await;
    let bob = node(131).await;
    for n in [&alice, &bob] {
        n.store().put_thread(thread, &key).await.expect("put");
        n.watch(thread).await.expect("watch");
    }
    let writer =
        Writer::new(Identity::from_secret_bytes(&[132; 32]), thread, &key).expect("writer");
    write(&alice, &writer, 3).await;
    // Bob knows Alice as a peer of the thread (announcements from unknown peers are
    // ignored) and connects by pulling once; no periodic sync runs.
    bob.add_peer(alice.thread_addr(thread).expect("addr"));
    bob.pull(&alice.thread_addr(thread).expect("addr"))
        .await
        .expect("pull");
    let mut events = bob.subscribe();
    write(&alice, &writer, 2).await;
    // Announce until a subscriber hears it (gossipsub learns subscriptions over the
    // connection), then wait for Bob's pull to land.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let got = loop {
        alice
            .announce(thread, writer.log_id(), 5)
            .await
            .expect("announce");
        match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            Ok(Ok(event)) => break event,
            _ => assert!(tokio::time::Instant::now() < deadline, "Bob never pulled"),
        }
    };
    assert_eq!(
        got,
        threads_net::NetEvent::Stored {
            thread,
            log: writer.log_id(),
            counter: 5
        }
    );
    assert_eq!(
        entries(&bob, thread, &writer).await,
        entries(&alice, thread, &writer).await
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_edges_compares_many_threads_in_one_request() {
    use threads_net::AuthProof;
    use threads_net::message::{Edge, Request, Response};

    let alice = node(140).await;
    let bob = node(141).await;
    let shared = ThreadId::from_parts(Variant::Raw, [7; 32]);
    let private = ThreadId::from_parts(Variant::Raw, [8; 32]);
    let key = ThreadKey::generate();
    alice.store().put_thread(shared, &key).await.expect("put");
    alice
        .store()
        .put_thread(private, &ThreadKey::generate())
        .await
        .expect("put");
    let writer =
        Writer::new(Identity::from_secret_bytes(&[142; 32]), shared, &key).expect("writer");
    write(&alice, &writer, 4).await;
    let theirs = alice.store().heads_digest(shared).await.expect("digest");
    let edge = |thread, proof_key: &ThreadKey| Edge {
        thread,
        proof: AuthProof::new(
            proof_key.service(),
            &thread,
            &bob.peer_id(),
            &alice.peer_id(),
        ),
        digest: [0; 32],
    };
    let request = Request::ExchangeEdges {
        edges: vec![edge(shared, &key), edge(private, &key)],
    };
    let answer = tokio::time::timeout(
        LIMIT,
        bob.request(
            alice.peer_id(),
            vec![alice.listen_addrs()[0].clone()],
            request,
        ),
    )
    .await
    .expect("in time")
    .expect("answer");
    // The shared thread's digest comes back; the thread Bob has no key for reveals nothing.
    assert_eq!(
        answer,
        Response::Edges(vec![Some(threads_net::message::EdgeDigest(theirs.0)), None])
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_pushed_to_known_peers_in_the_background() {
    let thread = ThreadId::from_parts(Variant::Raw, [9; 32]);
    let key = ThreadKey::generate();
    let config = NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]);
    // With the `mdns` feature, mDNS is available but off unless asked for.
    #[cfg(feature = "mdns")]
    let config = {
        assert!(!NetConfig::new([]).mdns());
        config.with_mdns(true)
    };
    let alice = Node::start(
        &Identity::from_secret_bytes(&[150; 32]),
        Arc::new(MemoryStore::new()),
        config,
    )
    .await
    .expect("a node with mDNS on starts");
    let bob = node(151).await;
    for n in [&alice, &bob] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    alice.add_peer(bob.thread_addr(thread).expect("addr"));
    let writer =
        Writer::new(Identity::from_secret_bytes(&[152; 32]), thread, &key).expect("writer");
    for i in 1..=5u64 {
        let appended = tokio::time::timeout(
            LIMIT,
            alice.write(&writer, format!("entry {i}").as_bytes(), Hlc::new(i, 0)),
        )
        .await
        .expect("in time")
        .expect("write");
        // Pushed to Bob from Alice's queue: Bob pulls nothing and runs no sync task.
        wait_counter(&bob, thread, writer.log_id(), i).await;
        assert_eq!(
            bob.store()
                .head(thread, writer.log_id())
                .await
                .expect("head"),
            Some(appended.record.head())
        );
    }
    assert_eq!(
        entries(&bob, thread, &writer).await,
        entries(&alice, thread, &writer).await
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admission_hook_keeps_records_from_peers_it_refuses() {
    let thread = ThreadId::from_parts(Variant::Raw, [10; 32]);
    let key = ThreadKey::generate();
    let bob = node(161).await;
    let carol = node(162).await;
    let refused = bob.peer_id();
    let alice = Node::start(
        &Identity::from_secret_bytes(&[160; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")])
            .with_admission(move |_thread: ThreadId, peer: threads_id::PeerId| peer != refused),
    )
    .await
    .expect("start");
    for n in [&alice, &bob, &carol] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let writer =
        Writer::new(Identity::from_secret_bytes(&[163; 32]), thread, &key).expect("writer");
    alice.add_peer(bob.thread_addr(thread).expect("addr"));
    alice.add_peer(carol.thread_addr(thread).expect("addr"));
    alice
        .write(&writer, b"for admitted peers", Hlc::new(1, 0))
        .await
        .expect("write");
    // Pushed to Carol, not to Bob, although Bob holds the key.
    wait_counter(&carol, thread, writer.log_id(), 1).await;
    assert!(
        carol
            .store()
            .head(thread, writer.log_id())
            .await
            .expect("head")
            .is_some()
    );
    assert!(
        bob.store()
            .head(thread, writer.log_id())
            .await
            .expect("head")
            .is_none()
    );
    // Bob cannot pull either, and cannot tell refusal from absence.
    let err = tokio::time::timeout(LIMIT, bob.pull(&alice.thread_addr(thread).expect("addr")))
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(
        matches!(
            err,
            NetError::Refused {
                refusal: Refusal::UnknownThread,
                ..
            }
        ),
        "{err}"
    );
    assert!(bob.store().logs(thread).await.expect("logs").is_empty());
    for n in [&alice, &bob, &carol] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_from_an_unknown_peer_are_ignored() {
    let thread = ThreadId::from_parts(Variant::Raw, [16; 32]);
    let key = ThreadKey::generate();
    let victim = node(170).await;
    // A peer that holds the key (a revoked member, say) but is no peer of the victim's.
    let stranger = node(171).await;
    for n in [&victim, &stranger] {
        n.store().put_thread(thread, &key).await.expect("put");
        n.watch(thread).await.expect("watch");
    }
    let writer =
        Writer::new(Identity::from_secret_bytes(&[172; 32]), thread, &key).expect("writer");
    write(&stranger, &writer, 3).await;
    // The stranger connects (its pull is served: it proves the key) and floods.
    stranger
        .pull(&victim.thread_addr(thread).expect("addr"))
        .await
        .expect("pull");
    let mut heard = false;
    for _ in 0..100 {
        heard |= stranger
            .announce(thread, writer.log_id(), 3)
            .await
            .expect("announce");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(heard, "the victim was subscribed to the topic");
    // The victim pulled nothing and keeps no row for the stranger's announcements.
    assert_eq!(
        victim
            .store()
            .head(thread, writer.log_id())
            .await
            .expect("head"),
        None
    );
    assert!(
        victim
            .health()
            .report()
            .iter()
            .all(|row| row.log != writer.log_id()),
        "{:?}",
        victim.health().report()
    );
    victim.shutdown().await;
    stranger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listener_gives_remote_peers_every_interface_but_loopback() {
    let thread = ThreadId::from_parts(Variant::Raw, [40; 32]);
    let key = ThreadKey::generate();
    let wide = Node::start(
        &Identity::from_secret_bytes(&[41; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/0.0.0.0/tcp/0".parse().expect("addr")]),
    )
    .await
    .expect("start");
    wide.store().put_thread(thread, &key).await.expect("put");
    let listen = wide.listen_addrs();
    assert!(
        listen
            .iter()
            .all(|a| !a.to_string().starts_with("/ip4/0.0.0.0")),
        "a wildcard is expanded to the interfaces: {listen:?}"
    );
    assert!(
        listen.iter().any(threads_net::is_loopback),
        "loopback is one of the interfaces: {listen:?}"
    );
    assert!(
        listen.iter().any(|a| !threads_net::is_loopback(a)),
        "this test needs a network interface besides loopback: {listen:?}"
    );
    let given = wide.thread_addrs(thread);
    assert!(!given.is_empty());
    for addr in &given {
        let transport = addr.transport_addr();
        assert!(!threads_net::is_loopback(&transport), "{addr} is loopback");
        assert!(
            listen
                .iter()
                .any(|l| l.to_string().starts_with(&transport.to_string())),
            "{addr} is one of the listen addresses {listen:?}"
        );
    }
    // A peer on this machine still reaches it through its loopback listen address.
    let loopback = listen
        .iter()
        .find(|a| threads_net::is_loopback(a))
        .expect("loopback")
        .clone();
    let writer = Writer::new(Identity::from_secret_bytes(&[42; 32]), thread, &key).expect("writer");
    let first = writer
        .append(None, None, b"one", Hlc::new(1, 0))
        .expect("append");
    wide.store()
        .append(thread, writer.log_id(), None, std::slice::from_ref(&first))
        .await
        .expect("store");
    let near = node(43).await;
    near.store().put_thread(thread, &key).await.expect("put");
    let addr = threads_id::ThreadAddr::new(loopback, thread).expect("thread addr");
    let stored = tokio::time::timeout(LIMIT, near.pull(&addr))
        .await
        .expect("in time")
        .expect("pull");
    assert_eq!(stored, 1);

    // Announced addresses come first; a loopback-only node gives its loopback address.
    let announced: threads_id::Multiaddr = "/dns4/threads.example/tcp/4001".parse().expect("addr");
    let behind = Node::start(
        &Identity::from_secret_bytes(&[44; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")])
            .with_announce([announced.clone()]),
    )
    .await
    .expect("start");
    let given = behind.thread_addrs(thread);
    assert_eq!(given.len(), 1, "{given:?}");
    assert_eq!(given[0].transport_addr(), announced);
    assert_eq!(behind.external_addrs().len(), 1);
    assert!(threads_net::is_loopback(
        &near.thread_addrs(thread)[0].transport_addr()
    ));
    for n in [wide, near, behind] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_stops_answering_expires_from_the_peers_and_a_live_one_stays() {
    let thread = ThreadId::from_parts(Variant::Raw, [50; 32]);
    let key = ThreadKey::generate();
    let keeper = Node::start(
        &Identity::from_secret_bytes(&[51; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")])
            .with_addr_ttl(Duration::from_millis(1_500)),
    )
    .await
    .expect("start");
    let live = node(52).await;
    let gone = node(53).await;
    for n in [&keeper, &live, &gone] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let live_addr = live.thread_addr(thread).expect("addr");
    let gone_addr = gone.thread_addr(thread).expect("addr");
    keeper.add_peer(live_addr.clone());
    keeper.add_peer(gone_addr.clone());
    gone.shutdown().await;
    keeper.start_sync(Duration::from_millis(50));
    let started = std::time::Instant::now();
    while keeper.peers_of(thread).contains(&gone_addr) {
        assert!(started.elapsed() < LIMIT, "the dead address never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Gone after at least the TTL; the peer that answers every round stays, and for the
    // TTL again it does not give the dead address back (it still lists it).
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    let expired = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        expired.elapsed() < Duration::from_millis(1_500),
        "the check came too late"
    );
    assert_eq!(keeper.peers_of(thread), vec![live_addr]);
    // The list without it is what a restart loads.
    let saved = keeper
        .store()
        .meta(thread, "threads-net.peers")
        .await
        .expect("meta")
        .expect("saved");
    assert!(!String::from_utf8_lossy(&saved).contains(&gone_addr.to_string()));
    keeper.shutdown().await;
    live.shutdown().await;
}

/// A node holds at most its quota of one log's bytes from peers: the log stops there on
/// this node (the refusal is counted in the health report), while other logs replicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_past_the_storage_quota_is_refused_and_the_others_replicate() {
    const QUOTA: u64 = 4_000;
    let thread = ThreadId::from_parts(Variant::Raw, [60; 32]);
    let key = ThreadKey::generate();
    let source = node(61).await;
    let small = Node::start(
        &Identity::from_secret_bytes(&[62; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]).with_log_quota(QUOTA),
    )
    .await
    .expect("start");
    for n in [&source, &small] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let big = Writer::new(Identity::from_secret_bytes(&[63; 32]), thread, &key).expect("writer");
    let light = Writer::new(Identity::from_secret_bytes(&[64; 32]), thread, &key).expect("writer");
    write(&source, &big, 60).await;
    write(&source, &light, 3).await;
    let total = source
        .store()
        .log_bytes(thread, big.log_id())
        .await
        .expect("bytes");
    assert!(
        total > 2 * QUOTA,
        "the big log is larger than the quota ({total})"
    );
    let pulled = tokio::time::timeout(
        LIMIT,
        small.pull(&source.thread_addr(thread).expect("addr")),
    )
    .await
    .expect("in time");
    assert!(
        matches!(&pulled, Err(NetError::Rejected { rejection, .. }) if rejection.code() == "quota"),
        "{pulled:?}"
    );
    let held = small
        .store()
        .log_bytes(thread, big.log_id())
        .await
        .expect("bytes");
    assert!(held <= QUOTA, "{held} bytes held, quota {QUOTA}");
    assert_eq!(
        small
            .store()
            .head(thread, light.log_id())
            .await
            .expect("head")
            .map(|h| h.counter),
        Some(3),
        "the other log replicates"
    );
    let refused: u64 = small
        .health()
        .report()
        .iter()
        .filter(|r| r.log == big.log_id())
        .map(|r| r.health.rejections.get("quota").copied().unwrap_or(0))
        .sum();
    assert!(refused >= 1);
    // Pushed batches are held to it too.
    let at = small
        .store()
        .head(thread, big.log_id())
        .await
        .expect("head")
        .map_or(0, |h| h.counter);
    source.add_peer(small.thread_addr(thread).expect("addr"));
    let all = entries(&source, thread, &big).await;
    let next = &all[usize::try_from(at).expect("small")..][..10];
    let took = tokio::time::timeout(LIMIT, source.push(thread, big.log_id(), next))
        .await
        .expect("in time")
        .expect("push");
    assert_eq!(took, 0, "the push is refused");
    assert_eq!(
        small
            .store()
            .log_bytes(thread, big.log_id())
            .await
            .expect("bytes"),
        held
    );
    for n in [source, small] {
        n.shutdown().await;
    }
}

/// The paper's follower fallback, learned rather than configured: a reader joins by the
/// writer's invite (which names only the writer), learns the follower from the writer's
/// peer exchange, and when the writer goes offline it catches up from the follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_falls_back_to_a_follower_it_learned_from_the_writer() {
    use threads_crypto::KeySet;
    use threads_net::{Faults, Invite};

    let thread = ThreadId::from_parts(Variant::Raw, [70; 32]);
    let key = ThreadKey::generate();
    let faults = Faults::new();
    let alice_me = Identity::from_secret_bytes(&[71; 32]);
    let alice = Node::start(
        &alice_me,
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]).with_faults(faults.clone()),
    )
    .await
    .expect("start");
    let follower = node(72).await;
    let reader_store = Arc::new(MemoryStore::new());
    let reader_config = || {
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")])
            .with_addr_ttl(Duration::from_millis(1_500))
    };
    let reader = Node::start(
        &Identity::from_secret_bytes(&[73; 32]),
        reader_store.clone(),
        reader_config(),
    )
    .await
    .expect("start");
    alice.store().put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[74; 32]), thread, &key).expect("writer");
    write(&alice, &writer, 10).await;

    // The follower joins by alice's invite (alice learns where it is).
    let follower_me = Identity::from_secret_bytes(&[72; 32]);
    let sealed = Invite::sealed(
        &alice_me,
        vec![alice.thread_addr(thread).expect("address")],
        &KeySet::new(thread, key.to_follower()),
        &follower_me.public(),
    );
    tokio::time::timeout(LIMIT, follower.join(&sealed, &follower_me))
        .await
        .expect("in time")
        .expect("join");
    // The reader joins by an invite that names alice only, and learns the follower.
    let reader_me = Identity::from_secret_bytes(&[73; 32]);
    let link = Invite::link(
        &alice_me,
        vec![alice.thread_addr(thread).expect("address")],
        KeySet::new(thread, key.clone()),
    );
    tokio::time::timeout(LIMIT, reader.join(&link, &reader_me))
        .await
        .expect("in time")
        .expect("join");
    let follower_peer = follower.peer_id();
    assert!(
        reader
            .peers_of(thread)
            .iter()
            .any(|a| a.peer_id() == follower_peer),
        "the reader learned the follower from alice: {:?}",
        reader.peers_of(thread)
    );
    // Alice writes on while the reader cannot reach her; her pushes reach the follower.
    faults.block(reader.peer_id());
    write(&alice, &writer, 20).await;
    alice.publish(thread, writer.log_id());
    wait_counter(&follower, thread, writer.log_id(), 30).await;
    alice.shutdown().await;
    // The reader's periodic sync gets the rest from the follower alone.
    reader.start_sync(Duration::from_millis(50));
    wait_counter(&reader, thread, writer.log_id(), 30).await;
    assert_eq!(
        entries(&reader, thread, &writer).await,
        entries(&follower, thread, &writer).await
    );

    // The log address book: the writer's log is served by alice (until her address
    // expires, a TTL after her last answer) and by the follower, which answers every round.
    let served_by = |book: &[(threads_id::LogId, Vec<threads_id::ThreadAddr>)]| {
        book.iter()
            .filter(|(log, _)| *log == writer.log_id())
            .flat_map(|(_, addrs)| addrs.iter().map(threads_id::ThreadAddr::peer_id))
            .collect::<Vec<_>>()
    };
    let started = std::time::Instant::now();
    loop {
        let book = reader.log_addrs(thread).await.expect("book");
        let peers = served_by(&book);
        assert!(peers.contains(&follower_peer), "{book:?}");
        if !peers.contains(&alice.peer_id()) {
            break;
        }
        assert!(started.elapsed() < LIMIT, "alice's address never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kept in the store: a reader restarted with an empty peer list syncs with the
    // follower it found serving the log, and not with the expired writer.
    reader.shutdown().await;
    reader_store
        .put_meta(thread, "threads-net.peers", b"")
        .await
        .expect("meta");
    let reader = Node::start(&reader_me, reader_store, reader_config())
        .await
        .expect("restart");
    reader.watch(thread).await.expect("watch");
    let peers: Vec<_> = reader
        .peers_of(thread)
        .iter()
        .map(|a| a.peer_id())
        .collect();
    assert!(peers.contains(&follower_peer), "{peers:?}");
    assert!(!peers.contains(&alice.peer_id()), "{peers:?}");
    follower.shutdown().await;
    reader.shutdown().await;
}

/// Circuit relay v2: a node that can only be reached through a relay (its one address known
/// to others is a circuit through the relay) is pulled from through it.
#[cfg(feature = "relay")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_reached_only_through_a_relay_is_synced_with() {
    let thread = ThreadId::from_parts(Variant::Raw, [80; 32]);
    let key = ThreadKey::generate();
    let relay = Node::start(
        &Identity::from_secret_bytes(&[81; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]).with_relay(true),
    )
    .await
    .expect("relay");
    let circuit: threads_id::Multiaddr = format!("{}/p2p-circuit", relay.listen_addrs()[0])
        .parse()
        .expect("circuit address");
    let hidden = Node::start(
        &Identity::from_secret_bytes(&[82; 32]),
        Arc::new(MemoryStore::new()),
        NetConfig::new([
            "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
            circuit.clone(),
        ]),
    )
    .await
    .expect("hidden");
    hidden.store().put_thread(thread, &key).await.expect("put");
    let writer = Writer::new(Identity::from_secret_bytes(&[83; 32]), thread, &key).expect("writer");
    write(&hidden, &writer, 12).await;
    // The relay accepts the reservation: the node listens on the circuit address.
    let started = std::time::Instant::now();
    let relayed = loop {
        if let Some(addr) = hidden
            .listen_addrs()
            .into_iter()
            .find(|a| a.to_string().contains("/p2p-circuit"))
        {
            break addr;
        }
        assert!(started.elapsed() < LIMIT, "no reservation on the relay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        relayed.to_string().starts_with(&circuit.to_string()),
        "{relayed} goes through {circuit}"
    );
    // Another node knows only the circuit address, and pulls through it.
    let reader = node(84).await;
    reader.store().put_thread(thread, &key).await.expect("put");
    let addr = threads_id::ThreadAddr::new(relayed, thread).expect("thread addr");
    let stored = tokio::time::timeout(LIMIT, reader.pull(&addr))
        .await
        .expect("in time")
        .expect("pull through the relay");
    assert_eq!(stored, 12);
    for n in [relay, hidden, reader] {
        n.shutdown().await;
    }
}

/// A thread whose key ring gained an epoch: a peer that has not learned it yet is still
/// pushed to and pulled from (the first service key proves the thread to it), pulls with
/// its older key, and does not hear announcements, which go to the newest epoch's topic
/// only; a peer that holds the ring does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_behind_on_the_key_ring_still_syncs_and_hears_only_the_newest_topic() {
    let thread = ThreadId::from_parts(Variant::Raw, [31; 32]);
    let key = ThreadKey::generate();
    let mut ring = key.clone();
    assert!(ring.add_epoch(threads_crypto::ServiceKey::generate()));
    let alice = node(210).await;
    let bob = node(211).await;
    let carol = node(212).await;
    alice.store().put_thread(thread, &ring).await.expect("put");
    bob.store().put_thread(thread, &key).await.expect("put");
    carol.store().put_thread(thread, &ring).await.expect("put");
    for n in [&alice, &bob, &carol] {
        n.watch(thread).await.expect("watch");
    }
    let writer =
        Writer::new(Identity::from_secret_bytes(&[213; 32]), thread, &ring).expect("writer");
    let bobs = Writer::new(Identity::from_secret_bytes(&[214; 32]), thread, &key).expect("writer");

    // Alice (newest epoch) pushes to Bob (first key only).
    alice.add_peer(bob.thread_addr(thread).expect("addr"));
    for i in 1..=3u64 {
        tokio::time::timeout(
            LIMIT,
            alice.write(&writer, format!("entry {i}").as_bytes(), Hlc::new(i, 0)),
        )
        .await
        .expect("in time")
        .expect("write");
    }
    wait_counter(&bob, thread, writer.log_id(), 3).await;
    // Bob pulls from Alice with the key he holds; Alice pulls Bob's log from him.
    write(&bob, &bobs, 4).await;
    let pulled = tokio::time::timeout(LIMIT, alice.pull(&bob.thread_addr(thread).expect("addr")))
        .await
        .expect("in time")
        .expect("Alice's pull with the newest key falls back to the first one");
    assert_eq!(pulled, 4);
    assert_eq!(
        tokio::time::timeout(LIMIT, bob.pull(&alice.thread_addr(thread).expect("addr")))
            .await
            .expect("in time")
            .expect("Bob's pull with an older key of the ring is answered"),
        0
    );
    assert_eq!(
        entries(&alice, thread, &bobs).await,
        entries(&bob, thread, &bobs).await
    );

    // Announcements: connected to Bob alone (who listens on the first key's topic), no
    // peer hears Alice's announcement on the newest epoch's topic ...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        assert!(
            !alice
                .announce(thread, writer.log_id(), 3)
                .await
                .expect("announce"),
            "a peer without the newest key heard the announcement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and Carol, who holds the ring, does.
    carol.add_peer(alice.thread_addr(thread).expect("addr"));
    carol
        .pull(&alice.thread_addr(thread).expect("addr"))
        .await
        .expect("pull");
    let heard = loop {
        if alice
            .announce(thread, writer.log_id(), 3)
            .await
            .expect("announce")
        {
            break true;
        }
        assert!(
            tokio::time::Instant::now() < deadline + LIMIT,
            "Carol never subscribed to the newest topic"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(heard);
    for n in [alice, bob, carol] {
        n.shutdown().await;
    }
}
