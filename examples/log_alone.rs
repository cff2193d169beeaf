//! threads-log on its own: a signed, encrypted, hash-linked log in memory, with no store
//! and no network. A writer appends entries (the caller keeps the head and supplies the
//! skip links); a follower, who holds the service key only, verifies the chain and the
//! signatures without reading anything; a reader also opens each payload; a changed byte
//! is refused with the layer it broke; two records the author signed at one place make a
//! fork proof anyone with the service key checks.
//!
//! Run with `cargo run -p threads-examples --example log_alone`.
#![allow(clippy::print_stdout)]

use anyhow::{Result, bail};
use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};
use threads_log::{Appended, Block, ForkProof, Hlc, Verifier, Writer, skip_target};

fn main() -> Result<()> {
    let thread = ThreadId::new(Variant::Raw);
    let key = ThreadKey::generate();
    let writer = Writer::new(Identity::generate(), thread, &key)?;

    // Append: each entry links the previous record and, where its counter asks for one,
    // an earlier record (skip links make O(log n) inclusion proofs).
    let mut log: Vec<Appended> = Vec::new();
    for i in 0..10u64 {
        let prev = log.last().map(|a| a.record.head());
        let skip = skip_target(i + 1).map(|t| *log[t as usize - 1].record.cid());
        let payload = format!("event {i}");
        log.push(writer.append(
            prev.as_ref(),
            skip,
            payload.as_bytes(),
            Hlc::new(1_000 + i, 0),
        )?);
    }
    println!("wrote {} entries; head {}", log.len(), log[9].record.cid());

    // A follower checks everything it can without the read key.
    let follower = Verifier::new(thread, writer.log_id(), &key.to_follower())?;
    let mut head = None;
    for entry in &log {
        let record = follower.verify_follower_entry(head.as_ref(), &entry.entry)?;
        head = Some(record.head());
    }
    println!("a follower verified the chain and every signature, reading nothing");

    // A reader opens the payloads too.
    let reader = Verifier::new(thread, writer.log_id(), &key)?;
    let mut head = None;
    for entry in &log {
        let (record, event) = reader.verify_entry(head.as_ref(), &entry.entry)?;
        head = Some(record.head());
        if record.counter() == 10 {
            println!(
                "a reader opened entry 10: {:?}",
                String::from_utf8_lossy(event.payload())
            );
        }
    }

    // One changed byte in a body: refused, naming the layer.
    let mut tampered = log[3].entry.clone();
    let mut body = tampered.body.data().to_vec();
    body[5] ^= 1;
    tampered.body = Block::raw(body);
    match reader.verify_entry(Some(&log[2].record.head()), &tampered) {
        Err(error) => println!("a changed body is refused: {error}"),
        Ok(_) => bail!("a changed body was accepted"),
    }

    // The author signs another record 5 after the same record 4: a fork, proven.
    let other = writer.append(
        Some(&log[3].record.head()),
        skip_target(5).map(|t| *log[t as usize - 1].record.cid()),
        b"another event 4",
        Hlc::new(1_004, 1),
    )?;
    let proof = ForkProof::new(&follower, log[4].entry.record.clone(), other.entry.record)?;
    ForkProof::from_bytes(&proof.to_bytes())?.verify(&follower)?;
    println!(
        "the author forked its log at counter {}: proven",
        proof.counter()
    );
    Ok(())
}
