//! The project's runnable walk-through of its lowest layers: make a thread id and its keys,
//! seal them to a second identity as an invite, open the invite, and show what each party
//! can and cannot do. Run with `cargo run --release --example invite`.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use threads_crypto::{Identity, KeySet, ThreadKey};
use threads_id::{LogId, ThreadAddr, ThreadId, Variant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let alice = Identity::generate();
    let bob = Identity::generate();
    let follower = Identity::generate();
    println!("alice  log id   {}", alice.log_id());
    println!("bob    log id   {}", bob.log_id());
    println!("follower log id {}", follower.log_id());

    let thread = ThreadId::new(Variant::Raw);
    let key = ThreadKey::generate();
    println!(
        "\nthread id       {thread} ({} variant, {} bytes)",
        thread.variant(),
        ThreadId::LEN
    );
    let addr = ThreadAddr::new(
        format!("/ip4/127.0.0.1/tcp/4006/p2p/{}", alice.log_id()).parse()?,
        thread,
    )?;
    println!("thread address  {addr}");
    println!(
        "                ({} bytes in binary, protocol code 406)",
        addr.to_bytes().len()
    );

    // Alice signs something with her log key; anyone with her log id can check it.
    let signature = alice.sign(b"first record");
    let log: LogId = alice.log_id().to_string().parse()?;
    let alice_key = threads_crypto::PublicKey::from_log_id(&log)?;
    alice_key.verify(b"first record", &signature)?;
    println!("\nalice signed a record; her log id verifies it");

    // Invites: Bob gets the read key, the follower only the service key.
    let reader_invite = KeySet::new(thread, key.clone()).seal(&bob.public());
    let follower_invite = KeySet::new(thread, key.to_follower()).seal(&follower.public());
    println!(
        "sealed invite for bob      {} bytes",
        reader_invite.as_bytes().len()
    );
    println!(
        "sealed invite for follower {} bytes",
        follower_invite.as_bytes().len()
    );

    let bobs = reader_invite.open(&bob)?;
    let followers = follower_invite.open(&follower)?;
    println!(
        "bob opened his invite: thread {}, can read: {}",
        bobs.thread_id(),
        bobs.thread_key().can_read()
    );
    println!(
        "follower opened its invite: can read: {}",
        followers.thread_key().can_read()
    );
    match reader_invite.open(&follower) {
        Err(e) => println!("the follower cannot open bob's invite: {e}"),
        Ok(_) => return Err("an invite opened for the wrong recipient".into()),
    }

    // A header sealed under the read key: bob reads it, the follower has no read key.
    let read = key.read().ok_or("a full key has a read key")?;
    let header = read.seal(thread.to_bytes().as_slice(), b"content key + clock");
    let opened = bobs
        .thread_key()
        .read()
        .ok_or("bob reads")?
        .open(thread.to_bytes().as_slice(), &header)?;
    println!(
        "bob decrypted a header: {:?}",
        String::from_utf8_lossy(&opened)
    );
    println!(
        "the follower holds no read key: {}",
        followers.thread_key().read().is_none()
    );
    println!("\ndone in {:.1?}", started.elapsed());
    Ok(())
}
