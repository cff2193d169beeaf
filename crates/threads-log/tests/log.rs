//! Behaviour of whole logs: golden vectors, append/verify properties, tamper detection,
//! skip-link proofs, traversal, and hybrid logical clock ordering.

use std::collections::HashMap;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{
    Appended, Block, BlockSource, Cid, Clock, EventOrder, FixedTime, Hlc, Layer, LogIndex,
    ProofError, TraverseError, Verifier, VerifyError, WalkBack, Writer, proof_path, skip_target,
    verify_inclusion,
};

struct Fixture {
    thread: ThreadId,
    key: ThreadKey,
    writer: Writer,
}

fn fixture(seed: u8) -> Fixture {
    let thread = ThreadId::from_parts(Variant::Raw, [seed; 32]);
    let key = ThreadKey::new(
        ServiceKey::from_bytes([seed.wrapping_add(1); 32]),
        ReadKey::from_bytes([seed.wrapping_add(2); 32]),
    );
    let writer = Writer::new(
        Identity::from_secret_bytes(&[seed.wrapping_add(3); 32]),
        thread,
        &key,
    )
    .expect("full key");
    Fixture {
        thread,
        key,
        writer,
    }
}

/// Appends `payloads` in order, with skip links, times 1000, 1001, ... and randomness from
/// `rng`.
fn build(writer: &Writer, payloads: &[Vec<u8>], rng: &mut ChaCha20Rng) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let prev = log.last().map(|a| a.record.head());
        let counter = i as u64 + 1;
        let skip = skip_target(counter).map(|t| *log[t as usize - 1].record.cid());
        let time = Hlc::new(1_000 + i as u64, 0);
        log.push(
            writer
                .append_with(prev.as_ref(), skip, payload, time, rng)
                .expect("append"),
        );
    }
    log
}

fn source(log: &[Appended]) -> HashMap<Cid, Vec<u8>> {
    log.iter()
        .flat_map(|a| a.entry.blocks())
        .map(|b| (*b.cid(), b.data().to_vec()))
        .collect()
}

/// Verifies a whole log in order at reader level, returning the payloads.
fn verify_all(verifier: &Verifier, log: &[Appended]) -> Result<Vec<Vec<u8>>, (usize, VerifyError)> {
    let mut head = None;
    let mut payloads = Vec::new();
    for (i, a) in log.iter().enumerate() {
        let (record, event) = verifier
            .verify_entry(head.as_ref(), &a.entry)
            .map_err(|e| (i, e))?;
        if let Some(target) = skip_target(record.counter()) {
            Verifier::check_skip(&record, log[target as usize - 1].record.cid())
                .map_err(|e| (i, e))?;
        }
        head = Some(record.head());
        payloads.push(event.into_payload());
    }
    Ok(payloads)
}

#[test]
fn golden_log_of_three_records() {
    let f = fixture(7);
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let mut clock = Clock::new(FixedTime(1_700_000_000_000));
    let mut log: Vec<Appended> = Vec::new();
    for payload in [&b"first"[..], b"second", b"third"] {
        let prev = log.last().map(|a| a.record.head());
        let time = clock.now().expect("time");
        log.push(
            f.writer
                .append_with(prev.as_ref(), None, payload, time, &mut rng)
                .expect("append"),
        );
    }
    let mut text = String::new();
    text.push_str(&format!("thread {}\nlog {}\n", f.thread, f.writer.log_id()));
    for (i, a) in log.iter().enumerate() {
        for (name, block) in [
            ("record", &a.entry.record),
            ("event", &a.entry.event),
            ("header", &a.entry.header),
            ("body", &a.entry.body),
        ] {
            text.push_str(&format!(
                "{} {name} {} {}\n",
                i + 1,
                block.cid(),
                hex::encode(block.data())
            ));
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test_data/log/golden-3.txt"
    );
    if std::env::var_os("THREADS_BLESS").is_some() {
        std::fs::write(path, &text).expect("write golden file");
    }
    let golden = std::fs::read_to_string(path).expect("test_data/log/golden-3.txt exists");
    assert_eq!(
        text, golden,
        "the log format changed; if on purpose, rerun with THREADS_BLESS=1"
    );
    // The golden blocks verify, and the payloads come back.
    let verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
    assert_eq!(
        verify_all(&verifier, &log).expect("verifies"),
        [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
}

#[test]
fn follower_verifies_but_cannot_read() {
    let f = fixture(1);
    let log = build(
        &f.writer,
        &[b"a".to_vec(), b"b".to_vec()],
        &mut ChaCha20Rng::seed_from_u64(1),
    );
    let follower =
        Verifier::new(f.thread, f.writer.log_id(), &f.key.to_follower()).expect("verifier");
    assert!(!follower.can_read());
    let first = follower
        .verify_follower(None, &log[0].entry.record, &log[0].entry.event)
        .expect("follower verifies");
    follower
        .verify_follower(
            Some(&first.head()),
            &log[1].entry.record,
            &log[1].entry.event,
        )
        .expect("follower verifies");
    assert_eq!(
        follower.verify_entry(None, &log[0].entry),
        Err(VerifyError::NoReadKey)
    );
}

/// Whoever holds the service key (a follower) can open a record and seal it again; a
/// record has one sealed form (a synthetic nonce), so the copy either is the same block or
/// does not verify: nobody can fork a log by re-sealing its records.
#[test]
fn a_resealed_record_is_the_same_block_or_refused() {
    let f = fixture(2);
    let log = build(
        &f.writer,
        &[b"a".to_vec(), b"b".to_vec()],
        &mut ChaCha20Rng::seed_from_u64(2),
    );
    let follower =
        Verifier::new(f.thread, f.writer.log_id(), &f.key.to_follower()).expect("verifier");
    let mut ad = b"threads-rs/v2".to_vec();
    ad.push(0x01);
    ad.extend_from_slice(&f.thread.to_bytes());
    ad.extend_from_slice(&f.writer.log_id().to_bytes());
    let service = f.key.service();
    let original = &log[0].entry.record;
    let plain = service
        .open_synthetic(&ad, original.data())
        .expect("the record opens");
    let same = Block::raw(service.seal_synthetic(&ad, &plain));
    assert_eq!(same.cid(), original.cid(), "sealed again, the same block");
    let copy = Block::raw(service.seal(&ad, &plain));
    assert_ne!(copy.cid(), original.cid());
    assert!(matches!(
        follower.verify_follower(None, &copy, &log[0].entry.event),
        Err(VerifyError::Decrypt {
            layer: Layer::Record,
            ..
        })
    ));
    follower
        .verify_follower(None, original, &log[0].entry.event)
        .expect("the author's record verifies");
}

#[test]
fn batch_open_finds_the_bad_record() {
    let f = fixture(2);
    let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 20]).collect();
    let log = build(&f.writer, &payloads, &mut ChaCha20Rng::seed_from_u64(2));
    let verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
    let blocks: Vec<Block> = log.iter().map(|a| a.entry.record.clone()).collect();
    let records = verifier.open_records(&blocks).expect("all good");
    assert_eq!(records.len(), 50);
    assert!(records.iter().zip(&log).all(|(r, a)| r == &a.record));
    // A record of another writer in the same thread and keys decrypts (same service key) but
    // fails the signature, and is found.
    let mallory =
        Writer::new(Identity::from_secret_bytes(&[99; 32]), f.thread, &f.key).expect("writer");
    let forged = mallory
        .append_with(
            None,
            None,
            b"x",
            Hlc::new(1, 0),
            &mut ChaCha20Rng::seed_from_u64(3),
        )
        .expect("append");
    let mut bad = blocks.clone();
    bad[17] = forged.entry.record;
    assert_eq!(
        verifier.open_records(&bad),
        Err((
            17,
            VerifyError::Decrypt {
                layer: Layer::Record,
                source: threads_crypto::AeadError::Authentication
            }
        ))
    );
}

#[test]
fn forged_signature_is_rejected() {
    // A writer that knows the thread keys but not the log key cannot sign for the log: build
    // a record node by hand with another key's signature, sealed correctly.
    let f = fixture(3);
    let mallory = fixture(3);
    let other =
        Writer::new(Identity::from_secret_bytes(&[200; 32]), f.thread, &f.key).expect("writer");
    let forged = other
        .append_with(
            None,
            None,
            b"evil",
            Hlc::new(1, 0),
            &mut ChaCha20Rng::seed_from_u64(4),
        )
        .expect("append");
    // Verified as the victim's log, the record fails: its associated data names another log.
    let verifier = Verifier::new(f.thread, mallory.writer.log_id(), &f.key).expect("verifier");
    assert!(matches!(
        verifier.open_record(&forged.entry.record),
        Err(VerifyError::Decrypt {
            layer: Layer::Record,
            ..
        })
    ));
}

#[test]
fn traversal_detects_missing_blocks_and_forks() {
    let f = fixture(4);
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i]).collect();
    let log = build(&f.writer, &payloads, &mut ChaCha20Rng::seed_from_u64(5));
    let verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
    let mut blocks = source(&log);
    let head = *log[19].record.cid();
    let walked: Vec<u64> = WalkBack::new(&verifier, &blocks, head)
        .map(|r| r.expect("valid").counter())
        .collect();
    assert_eq!(walked, (1..=20).rev().collect::<Vec<u64>>());

    // A fork: the writer signs a second record 11 after the same record 10.
    let fork = f
        .writer
        .append_with(
            Some(&log[9].record.head()),
            skip_target(11).map(|t| *log[t as usize - 1].record.cid()),
            b"fork",
            Hlc::new(5, 0),
            &mut ChaCha20Rng::seed_from_u64(6),
        )
        .expect("append");
    for b in fork.entry.blocks() {
        blocks.insert(*b.cid(), b.data().to_vec());
    }
    let mut index = LogIndex::new();
    for r in WalkBack::new(&verifier, &blocks, head).with_index(&mut index) {
        r.expect("first walk is clean");
    }
    let errors: Vec<TraverseError> = WalkBack::new(&verifier, &blocks, *fork.record.cid())
        .with_index(&mut index)
        .filter_map(Result::err)
        .collect();
    assert_eq!(
        errors,
        [TraverseError::Fork {
            counter: 11,
            first: *log[10].record.cid(),
            second: *fork.record.cid()
        }]
    );

    // A missing record stops the walk with its CID.
    blocks.remove(log[4].record.cid());
    let last = WalkBack::new(&verifier, &blocks, head)
        .last()
        .expect("some step");
    assert_eq!(last, Err(TraverseError::Missing(*log[4].record.cid())));

    // A source that returns wrong bytes for a CID is caught.
    struct Liar<'a>(&'a HashMap<Cid, Vec<u8>>);
    impl BlockSource for Liar<'_> {
        fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
            self.0.get(cid).map(|d| {
                let mut d = d.clone();
                d[0] ^= 1;
                d
            })
        }
    }
    let first = WalkBack::new(&verifier, &Liar(&blocks), head)
        .next()
        .expect("one step");
    assert!(matches!(first, Err(TraverseError::Block(_))));
}

#[test]
fn genesis_and_structure_rules() {
    let f = fixture(5);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let log = build(
        &f.writer,
        &[b"1".to_vec(), b"2".to_vec(), b"3".to_vec(), b"4".to_vec()],
        &mut rng,
    );
    // Record 4 needs a skip link to record 1.
    let err = f.writer.append_with(
        Some(&log[2].record.head()),
        None,
        b"x",
        Hlc::new(1, 0),
        &mut rng,
    );
    assert_eq!(
        err,
        Err(threads_log::AppendError::MissingSkipLink {
            counter: 4,
            target: 1
        })
    );
    let err = f.writer.append_with(
        Some(&log[0].record.head()),
        Some(*log[0].record.cid()),
        b"x",
        Hlc::new(1, 0),
        &mut rng,
    );
    assert_eq!(err, Err(threads_log::AppendError::UnexpectedSkipLink(2)));
    assert_eq!(
        Writer::new(
            Identity::from_secret_bytes(&[1; 32]),
            f.thread,
            &f.key.to_follower()
        )
        .err(),
        Some(threads_log::AppendError::NoReadKey)
    );
    assert_eq!(log[3].record.skip(), Some(log[0].record.cid()));
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn append_then_verify(payloads in payloads(), seed in any::<u64>()) {
        let f = fixture(10);
        let log = build(&f.writer, &payloads, &mut ChaCha20Rng::seed_from_u64(seed));
        let verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
        prop_assert_eq!(verify_all(&verifier, &log).expect("verifies"), payloads);
    }

    /// Any changed byte of any block, even with the CID recomputed to match, is rejected,
    /// and the reason names the layer.
    #[test]
    fn tampering_is_detected(payloads in payloads(), which in any::<prop::sample::Index>(), layer in 0usize..4, byte in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let f = fixture(11);
        let mut log = build(&f.writer, &payloads, &mut ChaCha20Rng::seed_from_u64(9));
        let i = which.index(log.len());
        let entry = &mut log[i].entry;
        let block = [&mut entry.record, &mut entry.event, &mut entry.header, &mut entry.body][layer].clone();
        let mut data = block.data().to_vec();
        let at = byte.index(data.len());
        data[at] ^= flip;
        let tampered = if block.cid().codec() == threads_log::RAW { Block::raw(data.clone()) } else { Block::dag_cbor(data.clone()) };
        // Bytes that no longer match their CID are refused before anything else.
        prop_assert!(Block::new(*block.cid(), data).is_err());
        *[&mut entry.record, &mut entry.event, &mut entry.header, &mut entry.body][layer] = tampered;
        let verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
        let (index, err) = verify_all(&verifier, &log).expect_err("tampering detected");
        prop_assert_eq!(index, i);
        let ok = match layer {
            0 => matches!(err, VerifyError::Decrypt { layer: Layer::Record, .. }),
            1 => matches!(err, VerifyError::Link { layer: Layer::Event, .. }),
            2 => matches!(err, VerifyError::Link { layer: Layer::Header, .. }),
            _ => matches!(err, VerifyError::Link { layer: Layer::Body, .. }),
        };
        prop_assert!(ok, "layer {} gave {:?}", layer, err);
    }

    /// Dropping, duplicating or swapping records breaks the chain at that point.
    #[test]
    fn reordering_is_detected(n in 3usize..12, at in any::<prop::sample::Index>(), how in 0u8..3) {
        let f = fixture(12);
        let payloads: Vec<Vec<u8>> = (0..n as u8).map(|i| vec![i]).collect();
        let mut log = build(&f.writer, &payloads, &mut ChaCha20Rng::seed_from_u64(10));
        let i = at.index(n - 1);
        match how {
            0 => { log.remove(i); }
            1 => { let dup = log[i].clone(); log.insert(i + 1, dup); }
            _ => log.swap(i, i + 1),
        }
        let verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
        let (index, err) = verify_all(&verifier, &log).expect_err("detected");
        // Removal and swap break the chain at `i`, a duplicate right after it.
        prop_assert_eq!(index, if how == 1 { i + 1 } else { i });
        prop_assert!(matches!(err, VerifyError::Counter { .. } | VerifyError::Prev { .. }), "{:?}", err);
    }

    /// A record replayed into another thread or log, or read with the wrong keys, fails.
    #[test]
    fn replay_and_wrong_keys_are_detected(seed in any::<u64>()) {
        let f = fixture(13);
        let log = build(&f.writer, &[b"x".to_vec()], &mut ChaCha20Rng::seed_from_u64(seed));
        let other_thread = ThreadId::from_parts(Variant::Raw, [0xee; 32]);
        let other_log = Identity::from_secret_bytes(&[0xdd; 32]).log_id();
        for verifier in [
            Verifier::new(other_thread, f.writer.log_id(), &f.key).expect("verifier"),
            Verifier::new(f.thread, other_log, &f.key).expect("verifier"),
            Verifier::new(f.thread, f.writer.log_id(), &ThreadKey::new(ServiceKey::from_bytes([0; 32]), ReadKey::from_bytes([2; 32]))).expect("verifier"),
        ] {
            let err = verifier.verify_entry(None, &log[0].entry).expect_err("rejected");
            prop_assert!(matches!(err, VerifyError::Decrypt { layer: Layer::Record, .. }), "{:?}", err);
        }
        // The right service key but the wrong read key: the header does not open.
        let wrong_read = ThreadKey::new(f.key.service().clone(), ReadKey::from_bytes([1; 32]));
        let verifier = Verifier::new(f.thread, f.writer.log_id(), &wrong_read).expect("verifier");
        let err = verifier.verify_entry(None, &log[0].entry).expect_err("rejected");
        prop_assert!(matches!(err, VerifyError::Decrypt { layer: Layer::Header, .. }), "{:?}", err);
    }
}

#[test]
fn inclusion_proofs_for_every_pair() {
    let f = fixture(20);
    let payloads: Vec<Vec<u8>> = (0..45u8).map(|i| vec![i]).collect();
    let log = build(&f.writer, &payloads, &mut ChaCha20Rng::seed_from_u64(11));
    let verifier =
        Verifier::new(f.thread, f.writer.log_id(), &f.key.to_follower()).expect("verifier");
    let by_counter = |c: u64| log[c as usize - 1].entry.record.clone();
    for head in 1..=45u64 {
        for target in 1..=head {
            let proof: Vec<Block> = proof_path(head, target)
                .into_iter()
                .map(by_counter)
                .collect();
            let record = verify_inclusion(
                &verifier,
                log[head as usize - 1].record.cid(),
                target,
                &proof,
            )
            .unwrap_or_else(|e| panic!("proof {head}->{target}: {e}"));
            assert_eq!(record.cid(), log[target as usize - 1].record.cid());
            // Forged: replace one record of the proof with another of the same log.
            if proof.len() > 1 {
                let mut forged = proof.clone();
                let last = forged.len() - 1;
                forged[last] = by_counter(if target > 1 { target - 1 } else { head });
                assert!(
                    verify_inclusion(
                        &verifier,
                        log[head as usize - 1].record.cid(),
                        target,
                        &forged
                    )
                    .is_err()
                );
                // A proof that skips a step is incomplete.
                let mut short = proof.clone();
                short.remove(1);
                assert!(
                    verify_inclusion(
                        &verifier,
                        log[head as usize - 1].record.cid(),
                        target,
                        &short
                    )
                    .is_err()
                );
            }
            // A proof against another head fails.
            if head > 1 {
                assert_eq!(
                    verify_inclusion(
                        &verifier,
                        log[head as usize - 2].record.cid(),
                        target,
                        &proof
                    ),
                    Err(ProofError::WrongHead(*log[head as usize - 2].record.cid()))
                );
            }
        }
    }
}

/// Over random schedules of local events, sends and receives among peers, every peer's
/// times increase, every receive is later than the send, and (HLC, log, counter) totally
/// orders all events consistently with each log.
#[derive(Debug, Clone)]
enum Step {
    Local {
        peer: usize,
        advance_ms: u64,
    },
    Send {
        from: usize,
        to: usize,
        advance_ms: u64,
    },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        (0usize..4, 0u64..3).prop_map(|(peer, advance_ms)| Step::Local { peer, advance_ms }),
        (0usize..4, 0usize..4, 0u64..3).prop_map(|(from, to, advance_ms)| Step::Send {
            from,
            to,
            advance_ms
        }),
    ];
    proptest::collection::vec(step, 1..200)
}

proptest! {
    #[test]
    fn hlc_orders_causality(steps in steps(), skews in proptest::collection::vec(0u64..50, 4)) {
        let logs: Vec<threads_id::LogId> = (0..4u8).map(|i| Identity::from_secret_bytes(&[i + 1; 32]).log_id()).collect();
        let mut physical = 1_000u64;
        let mut clocks: Vec<Clock<FixedTime>> = skews.iter().map(|s| Clock::new(FixedTime(physical + s))).collect();
        let mut last = [Hlc::default(); 4];
        let mut counters = [0u64; 4];
        let mut events: Vec<EventOrder> = Vec::new();
        let record = |peer: usize, time: Hlc, counters: &mut [u64; 4], events: &mut Vec<EventOrder>| {
            counters[peer] += 1;
            events.push(EventOrder { time, log: logs[peer], counter: counters[peer] });
        };
        for step in steps {
            let advance = match step { Step::Local { advance_ms, .. } | Step::Send { advance_ms, .. } => advance_ms };
            physical += advance;
            for (clock, skew) in clocks.iter_mut().zip(&skews) {
                clock.source_mut().0 = physical + skew;
            }
            match step {
                Step::Local { peer, .. } => {
                    let t = clocks[peer].now().expect("time");
                    prop_assert!(t > last[peer]);
                    last[peer] = t;
                    record(peer, t, &mut counters, &mut events);
                }
                Step::Send { from, to, .. } => {
                    let sent = clocks[from].now().expect("time");
                    prop_assert!(sent > last[from]);
                    last[from] = sent;
                    record(from, sent, &mut counters, &mut events);
                    let received = clocks[to].update(sent).expect("within drift");
                    prop_assert!(received > sent, "receive {} not after send {}", received, sent);
                    prop_assert!(received > last[to]);
                    last[to] = received;
                    record(to, received, &mut counters, &mut events);
                }
            }
        }
        // A strict total order: no two events compare equal, and within a log the order by
        // (HLC, log, counter) is the order by counter.
        let mut sorted = events.clone();
        sorted.sort();
        prop_assert!(sorted.windows(2).all(|w| w[0] < w[1]));
        for log in &logs {
            let counters: Vec<u64> = sorted.iter().filter(|e| &e.log == log).map(|e| e.counter).collect();
            prop_assert!(counters.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn stored_entries_read_back_with_and_without_their_body() {
    let f = fixture(40);
    let mut rng = ChaCha20Rng::seed_from_u64(40);
    let log = build(&f.writer, &[b"one".to_vec(), b"two".to_vec()], &mut rng);
    let verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
    let read = verifier.read_stored(&log[1].entry).expect("read");
    assert_eq!(read.payload.as_deref(), Some(&b"two"[..]));
    assert_eq!(read.time, Hlc::new(1_001, 0));
    assert_eq!(read.record, log[1].record);

    // A compacted entry keeps its time and has no payload.
    let mut compacted = log[1].entry.clone();
    compacted.body = Block::raw(Vec::new());
    let read = verifier.read_stored(&compacted).expect("read compacted");
    assert_eq!(read.payload, None);
    assert_eq!(read.time, Hlc::new(1_001, 0));

    // Someone else's body or header is refused, compacted or not.
    let mut swapped = log[1].entry.clone();
    swapped.body = log[0].entry.body.clone();
    assert!(matches!(
        verifier.read_stored(&swapped),
        Err(VerifyError::Link {
            layer: Layer::Body,
            ..
        })
    ));
    let mut swapped = compacted.clone();
    swapped.header = log[0].entry.header.clone();
    assert!(matches!(
        verifier.read_stored(&swapped),
        Err(VerifyError::Link {
            layer: Layer::Header,
            ..
        })
    ));

    // A follower cannot read.
    let follower = Verifier::new(f.thread, f.writer.log_id(), &f.key.to_follower()).expect("v");
    assert_eq!(
        follower.read_stored(&log[0].entry),
        Err(VerifyError::NoReadKey)
    );
}

#[test]
fn entries_of_a_later_key_epoch_read_with_the_added_key() {
    let f = fixture(50);
    let mut rng = ChaCha20Rng::seed_from_u64(50);
    let first = build(&f.writer, &[b"old epoch".to_vec()], &mut rng);
    // The read key is rotated: later entries are sealed with a new read key.
    let rotated = ThreadKey::new(f.key.service().clone(), ReadKey::from_bytes([77; 32]));
    let identity = Identity::from_secret_bytes(&[53; 32]);
    let writer = Writer::new(identity, f.thread, &rotated).expect("writer");
    assert_eq!(writer.log_id(), f.writer.log_id());
    let second = writer
        .append(
            Some(&first[0].record.head()),
            None,
            b"new epoch",
            Hlc::new(2_000, 0),
        )
        .expect("append");

    let mut verifier = Verifier::new(f.thread, f.writer.log_id(), &f.key).expect("verifier");
    assert!(matches!(
        verifier.read_stored(&second.entry),
        Err(VerifyError::Decrypt {
            layer: Layer::Header,
            ..
        })
    ));
    verifier.add_read_key(ReadKey::from_bytes([77; 32]));
    verifier.add_read_key(ReadKey::from_bytes([77; 32]));
    let read = verifier.read_stored(&second.entry).expect("new epoch");
    assert_eq!(read.payload.as_deref(), Some(&b"new epoch"[..]));
    let read = verifier.read_stored(&first[0].entry).expect("old epoch");
    assert_eq!(read.payload.as_deref(), Some(&b"old epoch"[..]));
    let (_, decrypted) = verifier
        .verify_entry(Some(&first[0].record.head()), &second.entry)
        .expect("reader-level verification with the added key");
    assert_eq!(decrypted.payload(), b"new epoch");
}
