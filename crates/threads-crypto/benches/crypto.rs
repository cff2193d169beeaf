//! Criterion benchmarks of threads-crypto: sign, verify, batch verify, key set seal/open,
//! and AEAD seal/open at 256 B, 4 KiB and 1 MiB. Run with `cargo bench -p threads-crypto`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use threads_crypto::{Identity, KeySet, PublicKey, ReadKey, Signature, ThreadKey, verify_batch};
use threads_id::{ThreadId, Variant};

fn signatures(c: &mut Criterion) {
    let me = Identity::from_secret_bytes(&[1; 32]);
    let message = [7u8; 128];
    let signature = me.sign(&message);
    let mut group = c.benchmark_group("ed25519");
    group.bench_function("sign 128 B", |b| b.iter(|| me.sign(black_box(&message))));
    group.bench_function("verify 128 B", |b| {
        b.iter(|| {
            me.public()
                .verify(black_box(&message), black_box(&signature))
        })
    });
    let ids: Vec<Identity> = (0..256u16)
        .map(|i| Identity::from_secret_bytes(&[(i % 251) as u8 + 1; 32]))
        .collect();
    let messages: Vec<Vec<u8>> = (0..256u16).map(|i| i.to_le_bytes().repeat(64)).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let sigs: Vec<Signature> = ids.iter().zip(&refs).map(|(id, m)| id.sign(m)).collect();
    let keys: Vec<PublicKey> = ids.iter().map(Identity::public).collect();
    group.throughput(Throughput::Elements(256));
    group.bench_function("batch verify 256", |b| {
        b.iter(|| verify_batch(black_box(&refs), black_box(&sigs), black_box(&keys)))
    });
    group.finish();
}

fn keysets(c: &mut Criterion) {
    let bob = Identity::from_secret_bytes(&[2; 32]);
    let set = KeySet::new(
        ThreadId::from_parts(Variant::Raw, [3; 32]),
        ThreadKey::generate(),
    );
    let sealed = set.seal(&bob.public());
    let mut group = c.benchmark_group("keyset");
    group.bench_function("seal", |b| b.iter(|| set.seal(black_box(&bob.public()))));
    group.bench_function("open", |b| b.iter(|| sealed.open(black_box(&bob))));
    group.finish();
}

fn aead(c: &mut Criterion) {
    let key = ReadKey::from_bytes([4; 32]);
    let ad = b"thread/log/layer";
    let mut group = c.benchmark_group("xchacha20poly1305");
    for size in [256usize, 4 << 10, 1 << 20] {
        let plaintext = vec![0x5a; size];
        let sealed = key.seal(ad, &plaintext);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &plaintext, |b, p| {
            b.iter(|| key.seal(ad, black_box(p)))
        });
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| key.open(ad, black_box(s)))
        });
    }
    group.finish();
}

criterion_group!(benches, signatures, keysets, aead);
criterion_main!(benches);
