//! Invariant checks over arbitrary input, shared by the fuzz targets and the replay tests.

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};

use crate::{Block, Verifier};

/// The fixed thread, keys and writer the checks decode against; corpus seeds use them.
pub fn fixture() -> (ThreadId, ThreadKey, Identity) {
    let thread = ThreadId::from_parts(Variant::Raw, [0x11; 32]);
    let key = ThreadKey::new(
        threads_crypto::ServiceKey::from_bytes([0x22; 32]),
        threads_crypto::ReadKey::from_bytes([0x33; 32]),
    );
    (thread, key, Identity::from_secret_bytes(&[0x44; 32]))
}

/// Decodes and verifies arbitrary bytes as a record block of the fixture's log. Must never
/// panic; a record that verifies must have a self-consistent structure.
pub fn record_bytes(data: &[u8]) {
    let (thread, key, writer) = fixture();
    let Ok(verifier) = Verifier::new(thread, writer.log_id(), &key) else {
        return;
    };
    let block = Block::raw(data.to_vec());
    if let Ok(record) = verifier.open_record(&block) {
        assert!(record.counter() >= 1);
        assert_eq!(record.prev().is_none(), record.counter() == 1);
        assert_eq!(
            record.skip().is_some(),
            crate::skip_target(record.counter()).is_some()
        );
    }
    let _ = verifier.open_records(&[block]);
}

/// Decodes arbitrary bytes as a fork proof and checks it against the fixture's log. Must
/// never panic; a proof that decodes re-encodes to the same bytes, and one that verifies
/// holds two different records at its counter.
pub fn fork_proof_bytes(data: &[u8]) {
    let (thread, key, writer) = fixture();
    let Ok(proof) = crate::ForkProof::from_bytes(data) else {
        return;
    };
    assert_eq!(proof.to_bytes(), data, "one encoding per proof");
    assert!(proof.counter() >= 1);
    let Ok(verifier) = Verifier::new(thread, writer.log_id(), &key) else {
        return;
    };
    if proof.verify(&verifier).is_ok() {
        let [a, b] = proof.records();
        assert_ne!(a.cid(), b.cid());
        for record in [a, b] {
            let opened = verifier
                .open_record(record)
                .expect("a verified proof's record opens");
            assert_eq!(opened.counter(), proof.counter());
        }
    }
}

/// A stateful check: interprets `ops` as a sequence of operations on one log and compares
/// the log against a simple model (the list of payloads appended).
///
/// Each byte is one operation: below 128 appends a payload of `byte % 16` copies of the
/// byte; 128 to 191 verifies the whole log from genesis at reader level and compares the
/// payloads with the model; 192 and above changes one byte of one block (chosen by the byte)
/// and checks that verification rejects the log, then restores it.
pub fn append_model(ops: &[u8]) {
    use crate::{Appended, Hlc, Writer, skip_target};

    let (thread, key, identity) = fixture();
    let Ok(writer) = Writer::new(identity, thread, &key) else {
        return;
    };
    let Ok(verifier) = Verifier::new(thread, writer.log_id(), &key) else {
        return;
    };
    let mut log: Vec<Appended> = Vec::new();
    let mut model: Vec<Vec<u8>> = Vec::new();
    let verify = |log: &[Appended]| -> Result<Vec<Vec<u8>>, crate::VerifyError> {
        let mut head = None;
        let mut out = Vec::new();
        for a in log {
            let (record, event) = verifier.verify_entry(head.as_ref(), &a.entry)?;
            if let Some(t) = skip_target(record.counter()) {
                Verifier::check_skip(&record, log[t as usize - 1].record.cid())?;
            }
            head = Some(record.head());
            out.push(event.into_payload());
        }
        Ok(out)
    };
    for (step, &op) in ops.iter().take(64).enumerate() {
        if op < 128 {
            let payload = vec![op; usize::from(op % 16)];
            let prev = log.last().map(|a| a.record.head());
            let counter = log.len() as u64 + 1;
            let skip = skip_target(counter).map(|t| *log[t as usize - 1].record.cid());
            let appended = writer
                .append(prev.as_ref(), skip, &payload, Hlc::new(step as u64, 0))
                .unwrap_or_else(|e| panic!("append {counter} failed: {e}"));
            log.push(appended);
            model.push(payload);
        } else if op < 192 {
            assert_eq!(
                verify(&log).ok().as_ref(),
                Some(&model),
                "log disagrees with the model"
            );
        } else if !log.is_empty() {
            let i = usize::from(op) % log.len();
            let layer = usize::from(op) / 7 % 4;
            let original = log[i].entry.clone();
            let entry = &mut log[i].entry;
            let block = [&entry.record, &entry.event, &entry.header, &entry.body][layer];
            let mut data = block.data().to_vec();
            let at = usize::from(op) % data.len().max(1);
            if let Some(byte) = data.get_mut(at) {
                *byte ^= 0x01;
            }
            let changed = if layer == 1 {
                Block::dag_cbor(data)
            } else {
                Block::raw(data)
            };
            match layer {
                0 => entry.record = changed,
                1 => entry.event = changed,
                2 => entry.header = changed,
                _ => entry.body = changed,
            }
            assert!(
                verify(&log).is_err(),
                "a changed block of entry {i} went unnoticed"
            );
            log[i].entry = original;
        }
    }
}

/// For adversarial tests: the same record block with one bit of its signature flipped and
/// sealed again under the service key with the right associated data, so that it decrypts
/// and decodes as a record of `log` and only the signature check can refuse it. `None` if
/// the block does not open as a record of `log`.
pub fn forge_signature(
    block: &Block,
    thread: threads_id::ThreadId,
    log: threads_id::LogId,
    service: &threads_crypto::ServiceKey,
) -> Option<Block> {
    use crate::record::{LogContext, Node, RecordNode};

    let ctx = LogContext::new(thread, log);
    let plain = service.open_synthetic(&ctx.ad_record, block.data()).ok()?;
    let mut node: RecordNode = serde_ipld_dagcbor::from_slice(&plain).ok()?;
    *node.sig.first_mut()? ^= 0x01;
    Some(Block::raw(
        service.seal_synthetic(&ctx.ad_record, &node.to_cbor()),
    ))
}

/// For adversarial tests: the same record block sealed again under the service key with a
/// random nonce, as a follower (which holds the service key) could try, to give one signed
/// record a second identity. Verification refuses it (the nonce is not the record's
/// synthetic nonce). `None` if the block does not open as a record of `log`.
pub fn reseal_record(
    block: &Block,
    thread: threads_id::ThreadId,
    log: threads_id::LogId,
    service: &threads_crypto::ServiceKey,
) -> Option<Block> {
    let ctx = crate::record::LogContext::new(thread, log);
    let plain = service.open_synthetic(&ctx.ad_record, block.data()).ok()?;
    Some(Block::raw(service.seal(&ctx.ad_record, &plain)))
}
