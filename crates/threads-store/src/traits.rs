//! The store's traits, one per domain, and the types they exchange.
//!
//! Every backend implements all of them; the conformance suite in `tests/conformance.rs`
//! runs the same checks against each. Methods are async; a future dropped before it
//! completes leaves the store as it was (every write is one transaction).

use std::future::Future;

use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, Multiaddr, ThreadId};
use threads_log::{Appended, Block, Cid, Entry, Head};

use crate::error::StoreError;
use crate::views::ViewBook;

/// A result of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// How much one read of a log may return: at most `max_records` entries and about
/// `max_bytes` bytes of blocks (always at least one entry, however large).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The most entries to return.
    pub max_records: usize,
    /// The most block bytes to return (the entry that crosses it is the last one).
    pub max_bytes: usize,
}

impl Page {
    /// A page of at most `max_records` entries and `max_bytes` bytes.
    pub const fn new(max_records: usize, max_bytes: usize) -> Page {
        Page {
            max_records,
            max_bytes,
        }
    }
}

/// An entry as stored: its counter in the log and its four blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The record's counter.
    pub counter: u64,
    /// The four blocks.
    pub entry: Entry,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch was stored and the head advanced to `head`.
    Appended {
        /// The new head.
        head: Head,
    },
    /// Every record of the batch was already stored; nothing changed.
    AlreadyStored {
        /// The log's head, unchanged.
        head: Head,
    },
}

impl AppendOutcome {
    /// The head after the append.
    pub const fn head(&self) -> Head {
        match self {
            AppendOutcome::Appended { head } | AppendOutcome::AlreadyStored { head } => *head,
        }
    }
}

/// A digest of all heads of a thread: equal digests mean equal heads, so two peers can
/// compare a thread with 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeadsDigest(pub [u8; 32]);

/// Content-addressed blocks outside the logs.
pub trait BlockStore: Send + Sync {
    /// Stores blocks; storing a block that is present is a no-op.
    fn put_blocks(&self, blocks: &[Block]) -> impl Future<Output = Result<()>> + Send;
    /// The block named `cid`, from the loose blocks or the logs' records.
    fn get_block(&self, cid: &Cid) -> impl Future<Output = Result<Option<Block>>> + Send;
    /// Whether the block named `cid` is present.
    fn has_block(&self, cid: &Cid) -> impl Future<Output = Result<bool>> + Send;
    /// Deletes loose blocks (log records are never deleted this way).
    fn delete_blocks(&self, cids: &[Cid]) -> impl Future<Output = Result<()>> + Send;
}

/// Threads and their keys.
pub trait ThreadBook: Send + Sync {
    /// Adds a thread with its key, or replaces the key of a known thread.
    fn put_thread(
        &self,
        thread: ThreadId,
        key: &ThreadKey,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The key of `thread`, if known.
    fn thread_key(
        &self,
        thread: ThreadId,
    ) -> impl Future<Output = Result<Option<ThreadKey>>> + Send;
    /// Every known thread.
    fn threads(&self) -> impl Future<Output = Result<Vec<ThreadId>>> + Send;
    /// Forgets `thread` and everything of it, in one transaction: its key, logs, entries,
    /// log keys, addresses, metadata, and the view rows and cursors of its scopes (scopes
    /// named `"<thread>/..."`). Forgetting an unknown thread does nothing.
    fn delete_thread(&self, thread: ThreadId) -> impl Future<Output = Result<()>> + Send;
}

/// The bounds of the view scopes of `thread` (`"<thread>/..."`): from the prefix, up to
/// the prefix with its `/` raised to `0`.
pub(crate) fn scope_range(thread: ThreadId) -> (String, String) {
    (format!("{thread}/"), format!("{thread}0"))
}

/// The logs of each thread: heads, counters, and the entries themselves.
pub trait LogBook: Send + Sync {
    /// Registers `log` in `thread` (with no records yet); a known log is left as it is.
    fn add_log(&self, thread: ThreadId, log: LogId) -> impl Future<Output = Result<()>> + Send;
    /// The logs of `thread`.
    fn logs(&self, thread: ThreadId) -> impl Future<Output = Result<Vec<LogId>>> + Send;
    /// The head of a log (`None` if it has no records or is unknown).
    fn head(
        &self,
        thread: ThreadId,
        log: LogId,
    ) -> impl Future<Output = Result<Option<Head>>> + Send;
    /// Atomically stores a batch of verified entries of one log and advances its head, but
    /// only if the batch starts right after `expected` (the head the entries were verified
    /// against). A batch that is entirely stored already is a no-op. The thread must be
    /// known; the log is added if needed.
    fn append(
        &self,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
    ) -> impl Future<Output = Result<AppendOutcome>> + Send;
    /// The entries of a log after counter `after` (0 for all), oldest first, one page.
    fn entries_after(
        &self,
        thread: ThreadId,
        log: LogId,
        after: u64,
        page: Page,
    ) -> impl Future<Output = Result<Vec<StoredEntry>>> + Send;
    /// The record CID at `counter` in a log (for skip links and proofs).
    fn record_cid(
        &self,
        thread: ThreadId,
        log: LogId,
        counter: u64,
    ) -> impl Future<Output = Result<Option<Cid>>> + Send;
    /// A digest of the heads of every log of `thread`.
    fn heads_digest(&self, thread: ThreadId) -> impl Future<Output = Result<HeadsDigest>> + Send;
    /// The bytes of the entries of a log this store holds (its four blocks each), for
    /// storage quotas. The default reads every entry; stores override it with a sum.
    fn log_bytes(&self, thread: ThreadId, log: LogId) -> impl Future<Output = Result<u64>> + Send {
        async move {
            let mut total = 0u64;
            let mut after = 0;
            loop {
                let page = self
                    .entries_after(thread, log, after, Page::new(1024, 64 << 20))
                    .await?;
                let Some(last) = page.last() else {
                    return Ok(total);
                };
                after = last.counter;
                for stored in &page {
                    let bytes: usize = stored.entry.blocks().iter().map(|b| b.data().len()).sum();
                    total = total.saturating_add(bytes as u64);
                }
            }
        }
    }
}

/// Private keys: the identity of each log this peer writes.
pub trait KeyBook: Send + Sync {
    /// Stores the identity that writes `thread`'s log of this peer.
    fn put_log_key(
        &self,
        thread: ThreadId,
        identity: &Identity,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The identity that writes `log` in `thread`, if this peer holds it.
    fn log_key(
        &self,
        thread: ThreadId,
        log: LogId,
    ) -> impl Future<Output = Result<Option<Identity>>> + Send;
}

/// Addresses where a thread's logs can be fetched, each valid until a deadline.
pub trait AddrBook: Send + Sync {
    /// Adds (or extends) an address of `log` in `thread`, valid until `expires_ms`
    /// (milliseconds since the Unix epoch).
    fn add_addr(
        &self,
        thread: ThreadId,
        log: LogId,
        addr: &Multiaddr,
        expires_ms: u64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The addresses of `log` in `thread` that have not expired at `now_ms`.
    fn addrs(
        &self,
        thread: ThreadId,
        log: LogId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<Multiaddr>>> + Send;
    /// Deletes every address of `thread` that expired at `now_ms` (or before); returns
    /// how many were deleted. [`AddrBook::addrs`] never returns them anyway: this only
    /// keeps the book from growing with addresses that stopped answering.
    fn expire_addrs(
        &self,
        thread: ThreadId,
        now_ms: u64,
    ) -> impl Future<Output = Result<u64>> + Send;
}

/// Small named values per thread (a name, application settings).
pub trait MetaBook: Send + Sync {
    /// Sets `key` of `thread` to `value`.
    fn put_meta(
        &self,
        thread: ThreadId,
        key: &str,
        value: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// The value of `key` of `thread`.
    fn meta(
        &self,
        thread: ThreadId,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
}

/// Every book at once: what a peer needs.
pub trait Store:
    BlockStore + ThreadBook + LogBook + KeyBook + AddrBook + MetaBook + ViewBook
{
}

impl<T: BlockStore + ThreadBook + LogBook + KeyBook + AddrBook + MetaBook + ViewBook> Store for T {}

/// Writes several entries to one log in one transaction (group commit): each of `writes`
/// is (writer, payload, time), all writers of the same thread and log (they may seal with
/// different keys), built one after the other after the stored head with the skip links
/// their counters need. Returns the entries in order.
///
/// # Errors
/// As [`write_local`]; on an error nothing is stored.
pub async fn write_local_batch<S: LogBook + ?Sized>(
    store: &S,
    writes: &[(&threads_log::Writer, &[u8], threads_log::Hlc)],
) -> Result<Vec<Appended>> {
    let Some((first, _, _)) = writes.first() else {
        return Ok(Vec::new());
    };
    let stored = store.head(first.thread_id(), first.log_id()).await?;
    write_local_batch_after(store, stored, writes).await
}

/// [`write_local_batch`] after `stored`, the log's head as the caller knows it (a writer
/// that owns its log keeps it, and saves a read). A stale head is refused by the store's
/// compare-and-set ([`StoreError::Conflict`]) and nothing is stored.
///
/// # Errors
/// As [`write_local_batch`].
pub async fn write_local_batch_after<S: LogBook + ?Sized>(
    store: &S,
    stored: Option<threads_log::Head>,
    writes: &[(&threads_log::Writer, &[u8], threads_log::Hlc)],
) -> Result<Vec<Appended>> {
    let out = build_local_batch(store, stored, writes, |_| None).await?;
    if let Some((writer, _, _)) = writes.first() {
        store
            .append(writer.thread_id(), writer.log_id(), stored, &out)
            .await?;
    }
    Ok(out)
}

/// Builds (signs and seals) the entries of [`write_local_batch_after`] without storing
/// them: the caller stores them, for instance with the view rows that apply them
/// ([`ViewBook::append_with_views`]). A skip link's target is looked up in the batch, then
/// with `known` (record CIDs the caller remembers), then in the store.
///
/// # Errors
/// As [`write_local_batch`].
pub async fn build_local_batch<S: LogBook + ?Sized>(
    store: &S,
    stored: Option<threads_log::Head>,
    writes: &[(&threads_log::Writer, &[u8], threads_log::Hlc)],
    known: impl Fn(u64) -> Option<Cid>,
) -> Result<Vec<Appended>> {
    let Some((first, _, _)) = writes.first() else {
        return Ok(Vec::new());
    };
    let (thread, log) = (first.thread_id(), first.log_id());
    let mut head = stored;
    let mut out: Vec<Appended> = Vec::with_capacity(writes.len());
    for (writer, payload, time) in writes {
        if (writer.thread_id(), writer.log_id()) != (thread, log) {
            return Err(StoreError::Corrupt(
                "a batch of local writes spans several logs".to_owned(),
            ));
        }
        let counter = head.map_or(1, |h| h.counter + 1);
        let skip = match threads_log::skip_target(counter) {
            None => None,
            Some(target) => match out.iter().find(|a| a.record.counter() == target) {
                Some(a) => Some(*a.record.cid()),
                None => match known(target) {
                    Some(cid) => Some(cid),
                    None => Some(store.record_cid(thread, log, target).await?.ok_or_else(
                        || StoreError::Corrupt(format!("record {target} of {log} is missing")),
                    )?),
                },
            },
        };
        let appended = writer.append(head.as_ref(), skip, payload, *time)?;
        head = Some(appended.record.head());
        out.push(appended);
    }
    Ok(out)
}

/// Writes `payload` as the next entry of `writer`'s log: builds it after the stored head,
/// with the skip link its counter needs, and appends it (one transaction). This is a local
/// write; publishing it to peers is the network layer's work.
///
/// # Errors
/// [`StoreError::Append`] if the writer cannot append, [`StoreError::Conflict`] if another
/// writer of the same log appended at the same moment, or any store error.
pub async fn write_local<S: LogBook + ?Sized>(
    store: &S,
    writer: &threads_log::Writer,
    payload: &[u8],
    time: threads_log::Hlc,
) -> Result<Appended> {
    let (thread, log) = (writer.thread_id(), writer.log_id());
    let head = store.head(thread, log).await?;
    let counter = head.map_or(1, |h| h.counter + 1);
    let skip =
        match threads_log::skip_target(counter) {
            Some(target) => Some(store.record_cid(thread, log, target).await?.ok_or_else(
                || StoreError::Corrupt(format!("record {target} of {log} is missing")),
            )?),
            None => None,
        };
    let appended = writer.append(head.as_ref(), skip, payload, time)?;
    store
        .append(thread, log, head, std::slice::from_ref(&appended))
        .await?;
    Ok(appended)
}
