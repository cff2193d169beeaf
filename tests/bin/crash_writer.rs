//! A writer that appends to a SQLite store until it is killed: the subject of the crash
//! test (`store_crash.rs`). It resumes from the stored head, appends batches of random
//! size, and prints `ack <counter>` after each append the store acknowledged.
//!
//! Usage: `crash-writer <store path> <seed>`

use std::io::Write;

use rand::{RngExt, SeedableRng};
use threads_log::{Hlc, Writer, skip_target};
use threads_store::{LogBook, SqliteStore, ThreadBook};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: crash-writer <path> <seed>"))?;
    let seed: u64 = args.next().unwrap_or_default().parse().unwrap_or(0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (thread, key, identity) = threads_tests::crash_fixture();
    let store = SqliteStore::open(&path).await?;
    store.put_thread(thread, &key).await?;
    let writer = Writer::new(identity, thread, &key)?;
    let log = writer.log_id();
    let mut head = store.head(thread, log).await?;
    let mut stdout = std::io::stdout().lock();
    loop {
        let size = rng.random_range(1..=20usize);
        let mut batch = Vec::with_capacity(size);
        let mut prev = head;
        for _ in 0..size {
            let counter = prev.map_or(1, |h| h.counter + 1);
            let skip = match skip_target(counter) {
                None => None,
                Some(target) => match batch
                    .iter()
                    .find(|a: &&threads_log::Appended| a.record.counter() == target)
                {
                    Some(a) => Some(*a.record.cid()),
                    None => store.record_cid(thread, log, target).await?,
                },
            };
            let payload = vec![(counter % 251) as u8; rng.random_range(0..400usize)];
            let appended = writer.append(prev.as_ref(), skip, &payload, Hlc::new(counter, 0))?;
            prev = Some(appended.record.head());
            batch.push(appended);
        }
        let outcome = store.append(thread, log, head, &batch).await?;
        head = Some(outcome.head());
        writeln!(stdout, "ack {}", outcome.head().counter)?;
        stdout.flush()?;
    }
}
