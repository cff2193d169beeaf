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
use threads_store::{LogBook, MetaBook, Page, ThreadBook};

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
    // Log X: the honest node has its first 4 entries; mallory serves records of another
    // author in its place (they do not open as X's). Log Y: mallory serves it honestly.
    let x = Writer::new(Identity::from_secret_bytes(&[98; 32]), thread, &key).expect("writer");
    let y = Writer::new(Identity::from_secret_bytes(&[99; 32]), thread, &key).expect("writer");
    let genuine = build(&x, 4);
    let forger = Writer::new(Identity::from_secret_bytes(&[100; 32]), thread, &key).expect("w");
    let branch = build(&forger, 8);
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

/// `n` entries of `writer`'s log whose first `shared` are `prefix`'s and the rest carry
/// `tag`: another branch of the same log when the author signs both.
fn branch(
    writer: &Writer,
    prefix: &[Appended],
    shared: usize,
    n: usize,
    tag: &[u8],
) -> Vec<Appended> {
    let mut log: Vec<Appended> = prefix[..shared].to_vec();
    for i in shared..n {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        log.push(
            writer
                .append(prev.as_ref(), skip, tag, Hlc::new(i as u64, 1))
                .expect("append"),
        );
    }
    log
}

/// A member who equivocates (signs two branches of its log): an honest peer that meets
/// the other branch finds the exact counter where the branches part, whether the other
/// branch is longer or as long as its own, keeps the two records there as a proof (a
/// lower counter replaces a higher one), takes nothing more of the log, and serves the
/// proof; a third peer that never saw the other branch learns it and stops at the same
/// counter. A proof that does not hold is counted and changes nothing; the other logs
/// keep syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocation_is_located_proven_and_learned_by_every_peer() {
    let thread = ThreadId::from_parts(Variant::Raw, [7; 32]);
    let key = ThreadKey::generate();
    let honest = node(101).await;
    let longer = node(102).await;
    let level = node(103).await;
    let third = node(104).await;
    let mallory = node(105).await;
    for n in [&honest, &longer, &level, &third, &mallory] {
        n.store().put_thread(thread, &key).await.expect("put");
    }
    let x = Writer::new(Identity::from_secret_bytes(&[106; 32]), thread, &key).expect("writer");
    let y = Writer::new(Identity::from_secret_bytes(&[107; 32]), thread, &key).expect("writer");
    let genuine = build(&x, 20);
    // Parts from the genuine log at counter 12 and is longer; parts at 5 and is as long.
    let at_twelve = branch(&x, &genuine, 11, 30, b"longer");
    let at_five = branch(&x, &genuine, 4, 20, b"level");
    for (n, entries) in [
        (&honest, &genuine),
        (&longer, &at_twelve),
        (&level, &at_five),
        (&third, &genuine),
    ] {
        n.store()
            .append(thread, x.log_id(), None, entries)
            .await
            .expect("store");
    }
    let y_log = build(&y, 6);
    longer
        .store()
        .append(thread, y.log_id(), None, &y_log)
        .await
        .expect("store");
    let mut events = honest.subscribe();

    // The longer branch: its next record does not follow ours; located at 12.
    honest
        .pull(&longer.thread_addr(thread).expect("addr"))
        .await
        .expect("a fork is not an error of the pull");
    let proofs = honest.fork_proofs(thread).await.expect("proofs");
    assert_eq!(proofs.len(), 1);
    assert_eq!((proofs[0].log(), proofs[0].counter()), (x.log_id(), 12));
    let verifier = threads_log::Verifier::new(thread, x.log_id(), &key).expect("verifier");
    proofs[0].verify(&verifier).expect("the proof holds");
    let records = proofs[0].records();
    let ours = *genuine[11].record.cid();
    let theirs = *at_twelve[11].record.cid();
    assert!(records.iter().any(|r| *r.cid() == ours) && records.iter().any(|r| *r.cid() == theirs));
    match tokio::time::timeout(LIMIT, events.recv())
        .await
        .expect("in time")
    {
        Ok(threads_net::NetEvent::Forked { log, counter, .. }) => {
            assert_eq!((log, counter), (x.log_id(), 12));
        }
        other => panic!("expected a fork event, got {other:?}"),
    }
    // Nothing of the other branch was stored; the other log came through.
    let head = |n: &threads_net::Node<threads_store::MemoryStore>, log| {
        let n = n.clone();
        async move {
            n.store()
                .head(thread, log)
                .await
                .expect("head")
                .map(|h| h.counter)
        }
    };
    assert_eq!(head(&honest, x.log_id()).await, Some(20));
    assert_eq!(head(&honest, y.log_id()).await, Some(6));

    // A branch as long as ours: the heads differ at the same counter; located at 5, which
    // replaces the proof at 12.
    honest
        .pull(&level.thread_addr(thread).expect("addr"))
        .await
        .expect("pull");
    let proofs = honest.fork_proofs(thread).await.expect("proofs");
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].counter(), 5);
    proofs[0].verify(&verifier).expect("the proof holds");
    let status = honest.sync_status().await.expect("status");
    assert!(
        status
            .iter()
            .filter(|s| s.log == x.log_id())
            .all(|s| s.forked == Some(5)),
        "{status:?}"
    );

    // A peer that holds only the genuine log learns the proof from the honest peer.
    third
        .pull(&honest.thread_addr(thread).expect("addr"))
        .await
        .expect("pull");
    let learned = third.fork_proofs(thread).await.expect("proofs");
    assert_eq!(learned, proofs);
    assert_eq!(head(&third, y.log_id()).await, Some(6));
    // Nothing of a forked log from its fork on is taken any more, from anyone.
    let push = Request::PushRecords {
        thread,
        proof: AuthProof::new(key.service(), &thread, &longer.peer_id(), &third.peer_id()),
        log: x.log_id(),
        entries: wire(&at_twelve[20..22]),
    };
    match longer
        .request(third.peer_id(), vec![third.listen_addrs()[0].clone()], push)
        .await
    {
        Err(NetError::Refused {
            refusal: Refusal::Rejected(code),
            ..
        }) => assert_eq!(code, "forked"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Mallory claims log Y forked, with a proof made of records of log X.
    let fake = {
        let mut bytes = vec![1u8];
        let log = y.log_id().to_bytes();
        threads_id::varint::encode(log.len() as u64, &mut bytes);
        bytes.extend_from_slice(&log);
        threads_id::varint::encode(5, &mut bytes);
        let mut pair = [
            genuine[4].entry.record.clone(),
            at_five[4].entry.record.clone(),
        ];
        pair.sort_by_key(|b| b.cid().to_bytes());
        for record in &pair {
            threads_id::varint::encode(record.data().len() as u64, &mut bytes);
            bytes.extend_from_slice(record.data());
        }
        let mut value = Vec::new();
        threads_id::varint::encode(bytes.len() as u64, &mut value);
        value.extend_from_slice(&bytes);
        value
    };
    mallory
        .store()
        .put_meta(thread, threads_store::FORKS_META, &fake)
        .await
        .expect("meta");
    mallory
        .store()
        .append(thread, y.log_id(), None, &y_log)
        .await
        .expect("store");
    third
        .pull(&mallory.thread_addr(thread).expect("addr"))
        .await
        .expect("pull");
    assert_eq!(third.fork_proofs(thread).await.expect("proofs"), proofs);
    let row = third
        .health()
        .report()
        .into_iter()
        .find(|r| r.log == y.log_id() && r.peer == mallory.peer_id())
        .expect("a row");
    assert_eq!(
        row.health.rejections.get("bad-fork-proof"),
        Some(&1),
        "{row:?}"
    );
    for n in [&honest, &longer, &level, &third, &mallory] {
        n.shutdown().await;
    }
}
