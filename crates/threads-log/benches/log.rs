//! Criterion benchmarks of threads-log, each beside the raw ed25519 operation it is bound by
//! (plain `ed25519_dalek` calls, not our own wrappers):
//! append vs sign, follower verify vs verify, batch open of 1,000 records vs 1,000 single
//! verifications. Run with `cargo bench -p threads-log`.

use std::hint::black_box;

use ed25519_dalek::Signer;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use threads_crypto::{Identity, ReadKey, ServiceKey, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Block, Hlc, Verifier, Writer, skip_target};

fn setup() -> (ThreadId, ThreadKey, Identity) {
    let thread = ThreadId::from_parts(Variant::Raw, [1; 32]);
    let key = ThreadKey::new(
        ServiceKey::from_bytes([2; 32]),
        ReadKey::from_bytes([3; 32]),
    );
    (thread, key, Identity::from_secret_bytes(&[4; 32]))
}

fn build(writer: &Writer, n: usize) -> Vec<Appended> {
    let mut log: Vec<Appended> = Vec::with_capacity(n);
    for i in 0..n {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i as u64 + 1).map(|t| *log[t as usize - 1].record.cid());
        let appended = writer
            .append(prev.as_ref(), skip, &[7u8; 256], Hlc::new(i as u64, 0))
            .expect("append");
        log.push(appended);
    }
    log
}

fn append_and_verify(c: &mut Criterion) {
    let (thread, key, identity) = setup();
    let raw = identity.clone();
    let writer = Writer::new(identity, thread, &key).expect("writer");
    let log = build(&writer, 2);
    let head = log[0].record.head();
    let message = [9u8; 256];
    let dalek = ed25519_dalek::SigningKey::from_bytes(&raw.secret_bytes());
    let dalek_public = dalek.verifying_key();
    let dalek_signature = dalek.sign(&message);
    let verifier = Verifier::new(thread, writer.log_id(), &key.to_follower()).expect("verifier");

    let mut group = c.benchmark_group("log");
    group.bench_function("raw ed25519 sign", |b| {
        b.iter(|| dalek.sign(black_box(&message)))
    });
    group.bench_function("append 256 B", |b| {
        b.iter(|| writer.append(Some(&head), None, black_box(&[7u8; 256]), Hlc::new(5, 0)))
    });
    group.bench_function("raw ed25519 verify", |b| {
        b.iter(|| dalek_public.verify_strict(black_box(&message), black_box(&dalek_signature)))
    });
    group.bench_function("follower verify", |b| {
        b.iter(|| {
            verifier.verify_follower(
                Some(&head),
                black_box(&log[1].entry.record),
                black_box(&log[1].entry.event),
            )
        })
    });
    let reader = Verifier::new(thread, writer.log_id(), &key).expect("verifier");
    group.bench_function("reader verify 256 B", |b| {
        b.iter(|| reader.verify_entry(Some(&head), black_box(&log[1].entry)))
    });
    group.finish();

    let log = build(&writer, 1_000);
    let blocks: Vec<Block> = log.iter().map(|a| a.entry.record.clone()).collect();
    let messages: Vec<[u8; 256]> = (0..1_000u32)
        .map(|i| {
            let mut m = [0u8; 256];
            m[..4].copy_from_slice(&i.to_le_bytes());
            m
        })
        .collect();
    let signatures: Vec<_> = messages.iter().map(|m| dalek.sign(m)).collect();
    let mut group = c.benchmark_group("log 1000");
    group.throughput(Throughput::Elements(1_000));
    group.sample_size(20);
    group.bench_function("1000 raw single verifications", |b| {
        b.iter(|| {
            for (m, s) in messages.iter().zip(&signatures) {
                dalek_public
                    .verify_strict(black_box(m), black_box(s))
                    .expect("valid");
            }
        })
    });
    group.bench_function("open 1000 records (batch verify)", |b| {
        b.iter(|| verifier.open_records(black_box(&blocks)).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, append_and_verify);
criterion_main!(benches);
