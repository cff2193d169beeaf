//! A misbehaving peer: it holds the thread's keys (so its requests are authorized) and
//! pushes forged signatures, wrong counters, records of another thread, garbage, oversized
//! messages and a flood. Everything is rejected and counted against it; the honest node's
//! store never holds a bad record and the node keeps serving honest peers.

mod support;

use support::node;

use std::time::Duration;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Hlc, Writer, skip_target};
use threads_net::message::{Refusal, Request, Response, WireEntry};
use threads_net::{AuthProof, NetError};
use threads_store::{LogBook, Page, ThreadBook};

const LIMIT: Duration = Duration::from_secs(60);

fn build(writer: &Writer, n: usize) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::new();
    for i in 0..n {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        log.push(
            writer
                .append(prev.as_ref(), skip, b"honest", Hlc::new(i as u64, 0))
                .expect("append"),
        );
    }
    log
}

fn wire(entries: &[Appended]) -> Vec<WireEntry> {
    entries
        .iter()
        .map(|a| WireEntry::from_entry(&a.entry))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_member_is_rejected_and_counted() {
    let thread = ThreadId::from_parts(Variant::Raw, [3; 32]);
    let key = ThreadKey::generate();
    let honest = node(90).await;
    let mallory = node(91).await;
    let friend = node(92).await;
    for n in [&honest, &mallory, &friend] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let writer = Writer::new(Identity::from_secret_bytes(&[93; 32]), thread, &key).expect("writer");
    let log = writer.log_id();
    let good = build(&writer, 10);
    honest
        .store()
        .append(thread, log, None, &good[..4])
        .await
        .expect("store");

    let target = honest.peer_id();
    let addrs = vec![honest.listen_addrs()[0].clone()];
    let proof = AuthProof::new(key.service(), &thread, &mallory.peer_id(), &target);
    let push = |entries: Vec<WireEntry>| Request::PushRecords {
        thread,
        proof,
        log,
        entries,
    };

    // Forged: another key signs records and claims they are this log's.
    let forger = Writer::new(Identity::from_secret_bytes(&[94; 32]), thread, &key).expect("writer");
    let forged = build(&forger, 6);
    // Another thread's records of the same writer.
    let elsewhere = Writer::new(
        Identity::from_secret_bytes(&[93; 32]),
        ThreadId::from_parts(Variant::Raw, [4; 32]),
        &key,
    )
    .expect("writer");
    let mut garbage = wire(&good[4..5]);
    garbage[0].record = vec![0xff; 300];
    // A record sealed correctly for this log whose signature is forged.
    let mut forged_signature = wire(&good[4..5]);
    forged_signature[0].record =
        threads_log::check::forge_signature(&good[4].entry.record, thread, log, key.service())
            .expect("a record of this log")
            .into_data();
    let attacks = vec![
        ("signature", push(forged_signature)),
        ("decrypt", push(wire(&forged[4..6]))),
        ("gap", push(wire(&good[6..8]))),
        ("decrypt", push(wire(&build(&elsewhere, 6)[4..6]))),
        ("decrypt", push(garbage)),
        ("chain", push(wire(&[good[4].clone(), good[4].clone()]))),
    ];
    let mut expected_rejections = 0;
    for (code, request) in attacks {
        let answer = tokio::time::timeout(LIMIT, mallory.request(target, addrs.clone(), request))
            .await
            .expect("in time");
        match answer {
            Err(NetError::Refused {
                refusal: Refusal::Rejected(got),
                ..
            }) => assert_eq!(got, code),
            other => panic!("{code}: expected a rejection, got {other:?}"),
        }
        expected_rejections += 1;
        // A rejection by mallory's fault quarantines the log with mallory (a gap does
        // not); lifted here so that the next attack is judged on its own.
        let quarantined = honest
            .health()
            .is_quarantined(thread, log, mallory.peer_id());
        assert_eq!(quarantined, code != "gap", "{code}");
        honest.health().release(thread, log, mallory.peer_id());
    }
    // Quarantined again by one more bad batch: the flood below is refused unread.
    let answer = mallory
        .request(target, addrs.clone(), push(wire(&forged[4..6])))
        .await;
    assert!(
        matches!(answer, Err(NetError::Refused { .. })),
        "{answer:?}"
    );
    expected_rejections += 1;
    assert!(
        honest
            .health()
            .is_quarantined(thread, log, mallory.peer_id())
    );

    // An oversized request never reaches the handler: the stream fails for the sender.
    let huge = vec![
        WireEntry {
            record: vec![0; 1 << 20],
            event: vec![],
            header: vec![],
            body: vec![]
        };
        9
    ];
    let answer = tokio::time::timeout(LIMIT, mallory.request(target, addrs.clone(), push(huge)))
        .await
        .expect("in time");
    assert!(
        matches!(answer, Err(NetError::Request { .. })),
        "{answer:?}"
    );

    // A flood of bad pushes, concurrently.
    let flood = 200;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..flood {
        let mallory = mallory.clone();
        let addrs = addrs.clone();
        let request = push(wire(&forged[4..5]));
        tasks.spawn(async move { mallory.request(target, addrs, request).await });
    }
    let mut rejected_in_flood = 0;
    while let Some(done) = tasks.join_next().await {
        match done.expect("task") {
            Err(NetError::Refused {
                refusal: Refusal::Rejected(_),
                ..
            }) => rejected_in_flood += 1,
            // Beyond the node's bound on concurrent work it answers "unavailable", or the
            // transport sheds the stream: both are refusals, never acceptance.
            Err(NetError::Refused {
                refusal: Refusal::Unavailable,
                ..
            })
            | Err(NetError::Request { .. }) => {}
            other => panic!("a flood request was not refused: {other:?}"),
        }
    }
    expected_rejections += rejected_in_flood;

    // Nothing bad was stored, and the rejections are counted against mallory.
    let stored = honest
        .store()
        .entries_after(thread, log, 0, Page::new(100, usize::MAX))
        .await
        .expect("read");
    assert_eq!(
        stored.iter().map(|s| &s.entry).collect::<Vec<_>>(),
        good[..4].iter().map(|a| &a.entry).collect::<Vec<_>>()
    );
    let rows = honest.health().report();
    let row = rows
        .iter()
        .find(|r| r.peer == mallory.peer_id() && r.log == log)
        .expect("a health row for mallory");
    assert_eq!(row.health.rejected(), expected_rejections as u64, "{row:?}");
    assert_eq!(row.health.accepted, 0);
    assert!(row.health.rejections.get("decrypt").copied().unwrap_or(0) >= 3);
    assert_eq!(row.health.rejections.get("signature"), Some(&1));

    // A peer without the key is refused without learning whether the thread exists.
    let outsider = node(95).await;
    let bad_proof = AuthProof::new(
        ThreadKey::generate().service(),
        &thread,
        &outsider.peer_id(),
        &target,
    );
    let answer = outsider
        .request(
            target,
            addrs.clone(),
            Request::GetLogs {
                thread,
                proof: bad_proof,
            },
        )
        .await;
    assert!(
        matches!(
            answer,
            Err(NetError::Refused {
                refusal: Refusal::UnknownThread,
                ..
            })
        ),
        "{answer:?}"
    );

    // The honest node still serves honest peers, and honest pushes still go in.
    let answer = friend
        .request(
            target,
            addrs.clone(),
            Request::PushRecords {
                thread,
                proof: AuthProof::new(key.service(), &thread, &friend.peer_id(), &target),
                log,
                entries: wire(&good[4..10]),
            },
        )
        .await
        .expect("accepted");
    assert_eq!(answer, Response::Pushed { counter: 10 });
    let pulled = tokio::time::timeout(
        LIMIT,
        friend.pull(&honest.thread_addr(thread).expect("addr")),
    )
    .await
    .expect("in time")
    .expect("pull");
    assert_eq!(pulled, 10);
    for n in [&honest, &mallory, &friend, &outsider] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_log_is_quarantined_and_the_peers_other_logs_keep_syncing() {
    let thread = ThreadId::from_parts(Variant::Raw, [5; 32]);
    let key = ThreadKey::generate();
    let honest = node(96).await;
    let mallory = node(97).await;
    for n in [&honest, &mallory] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    // Log X: the honest node has its first 4 entries; mallory serves another branch of it
    // (the same author signed both: an equivocation). Log Y: mallory serves it honestly.
    let x = Writer::new(Identity::from_secret_bytes(&[98; 32]), thread, &key).expect("writer");
    let y = Writer::new(Identity::from_secret_bytes(&[99; 32]), thread, &key).expect("writer");
    let genuine = build(&x, 4);
    let mut branch: Vec<Appended> = Vec::new();
    for i in 0..8u64 {
        let prev = branch.last().map(|a| a.record.head());
        let skip = skip_target(i + 1).map(|t| *branch[t as usize - 1].record.cid());
        branch.push(
            x.append(prev.as_ref(), skip, b"the other branch", Hlc::new(i, 1))
                .expect("append"),
        );
    }
    honest
        .store()
        .append(thread, x.log_id(), None, &genuine)
        .await
        .expect("store");
    mallory
        .store()
        .append(thread, x.log_id(), None, &branch)
        .await
        .expect("store");
    let y_log = build(&y, 7);
    mallory
        .store()
        .append(thread, y.log_id(), None, &y_log[..5])
        .await
        .expect("store");
    let from = mallory.thread_addr(thread).expect("addr");
    let first = honest.pull(&from).await;
    assert!(matches!(first, Err(NetError::Rejected { .. })), "{first:?}");
    // Y arrived all the same; X is quarantined with mallory, with its reason.
    let head = |log| {
        let honest = honest.clone();
        async move {
            honest
                .store()
                .head(thread, log)
                .await
                .expect("head")
                .map(|h| h.counter)
        }
    };
    assert_eq!(head(y.log_id()).await, Some(5));
    assert_eq!(head(x.log_id()).await, Some(4));
    let row = |log| {
        honest
            .health()
            .report()
            .into_iter()
            .find(|r| r.log == log && r.peer == mallory.peer_id())
            .expect("a row")
    };
    assert!(row(x.log_id()).health.quarantined.is_some());
    assert!(row(y.log_id()).health.quarantined.is_none());
    // Later pulls skip X with mallory (no new rejection) and still take Y.
    mallory
        .store()
        .append(
            thread,
            y.log_id(),
            Some(y_log[4].record.head()),
            &y_log[5..],
        )
        .await
        .expect("store");
    let rejected = row(x.log_id()).health.rejected();
    honest
        .pull(&from)
        .await
        .expect("the other logs pull cleanly");
    assert_eq!(row(x.log_id()).health.rejected(), rejected);
    assert_eq!(head(y.log_id()).await, Some(7));
    honest.shutdown().await;
    mallory.shutdown().await;
}

/// A peer that floods requests (here: an outsider asking about a thread it cannot prove)
/// is held to its own limits: beyond them its requests are refused `Unavailable` before
/// they are read, and counted against it; another peer sending at the same time is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_held_to_its_limits_and_others_are_served() {
    use std::sync::Arc;

    use threads_net::{NetConfig, Node};
    use threads_store::MemoryStore;

    let thread = ThreadId::from_parts(Variant::Raw, [6; 32]);
    let key = ThreadKey::generate();
    // At most 4 requests of one peer at once, 20 a second, bursts of 20.
    let config =
        NetConfig::new(["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]).with_peer_limits(4, 20, 20);
    let honest = Node::start(
        &Identity::from_secret_bytes(&[95; 32]),
        Arc::new(MemoryStore::new()),
        config,
    )
    .await
    .expect("start");
    let flooder = node(96).await;
    let friend = node(97).await;
    for n in [&honest, &friend] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let target = honest.peer_id();
    let addrs = vec![honest.listen_addrs()[0].clone()];
    let bad_proof = AuthProof::new(
        ThreadKey::generate().service(),
        &thread,
        &flooder.peer_id(),
        &target,
    );
    // 200 requests from the flooder in waves of 40 at once (its own node allows 64
    // streams), in a task of their own; the friend's requests go out meanwhile.
    let flood = {
        let flooder = flooder.clone();
        let addrs = addrs.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..5 {
                let mut wave = tokio::task::JoinSet::new();
                for _ in 0..40 {
                    let flooder = flooder.clone();
                    let addrs = addrs.clone();
                    wave.spawn(async move {
                        let request = Request::GetLogs {
                            thread,
                            proof: bad_proof,
                        };
                        flooder.request(target, addrs, request).await
                    });
                }
                while let Some(answer) = wave.join_next().await {
                    answers.push(answer.expect("task"));
                }
            }
            answers
        })
    };
    // The friend's requests, sent meanwhile, are answered.
    let proof = AuthProof::new(key.service(), &thread, &friend.peer_id(), &target);
    for _ in 0..5 {
        let answer = tokio::time::timeout(
            LIMIT,
            friend.request(target, addrs.clone(), Request::GetLogs { thread, proof }),
        )
        .await
        .expect("in time");
        assert!(matches!(answer, Ok(Response::Logs(_))), "{answer:?}");
    }
    let mut unavailable = 0;
    let mut unknown = 0;
    for answer in flood.await.expect("flood") {
        match answer {
            Err(NetError::Refused {
                refusal: Refusal::Unavailable,
                ..
            }) => unavailable += 1,
            Err(NetError::Refused {
                refusal: Refusal::UnknownThread,
                ..
            }) => unknown += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(unavailable + unknown, 200);
    // At most the burst and what the rate refilled meanwhile got through.
    assert!(
        unavailable >= 100,
        "{unavailable} refused, {unknown} answered"
    );
    assert_eq!(honest.refused_requests(&flooder.peer_id()), unavailable);
    assert_eq!(honest.refused_requests(&friend.peer_id()), 0);
    for n in [&honest, &flooder, &friend] {
        n.shutdown().await;
    }
}

/// A crafted invite cannot downgrade a peer: joining a thread this peer knows keeps its
/// read key (an invite carrying the service key only does not take it away) and refuses a
/// different service key; an invite with the read key upgrades a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_never_downgrades_or_replaces_a_known_key() {
    use threads_crypto::KeySet;
    use threads_net::Invite;

    let thread = ThreadId::from_parts(Variant::Raw, [7; 32]);
    let key = ThreadKey::generate();
    let me = Identity::from_secret_bytes(&[98; 32]);
    let peer = node(98).await;
    peer.store().put_thread(thread, &key).await.expect("put");
    // The service key only (a follower's invite): the read key stays.
    let follower = Invite::link(&me, Vec::new(), KeySet::new(thread, key.to_follower()));
    peer.join(&follower, &me).await.expect("join");
    let held = peer
        .store()
        .thread_key(thread)
        .await
        .expect("key")
        .expect("held");
    assert!(held.can_read());
    assert!(held == key);
    // Another service key for the same thread: refused, nothing changes.
    let other = Invite::link(&me, Vec::new(), KeySet::new(thread, ThreadKey::generate()));
    let refused = peer.join(&other, &me).await;
    assert!(matches!(refused, Err(NetError::Invite(_))), "{refused:?}");
    assert!(
        peer.store()
            .thread_key(thread)
            .await
            .expect("key")
            .expect("held")
            == key
    );
    // A follower given the read key (same service key) can read from then on.
    let follower_peer = node(99).await;
    follower_peer
        .store()
        .put_thread(thread, &key.to_follower())
        .await
        .expect("put");
    let reader = Invite::link(&me, Vec::new(), KeySet::new(thread, key.clone()));
    follower_peer.join(&reader, &me).await.expect("join");
    let held = follower_peer
        .store()
        .thread_key(thread)
        .await
        .expect("key")
        .expect("held");
    assert!(held == key);
    peer.shutdown().await;
    follower_peer.shutdown().await;
}
