//! The in-memory backend: every book in maps behind one lock. For tests and for peers that
//! keep nothing across restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use threads_crypto::{Identity, ThreadKey};
use threads_id::{LogId, Multiaddr, ThreadId};
use threads_log::{Appended, Block, Cid, Entry, Head};

use crate::chain::{Plan, check_chain, heads_digest, plan};
use crate::error::StoreError;
use crate::traits::{
    AddrBook, AppendOutcome, BlockStore, HeadsDigest, KeyBook, LogBook, MetaBook, Page, Result,
    StoredEntry, ThreadBook,
};
use crate::views::{RowRange, ViewBook, ViewCommit};

#[derive(Default)]
struct Inner {
    blocks: HashMap<Cid, Block>,
    threads: BTreeMap<ThreadId, ThreadKey>,
    logs: BTreeMap<(ThreadId, LogId), Vec<Entry>>,
    records: HashMap<Cid, (ThreadId, LogId, usize)>,
    keys: HashMap<(ThreadId, LogId), Identity>,
    addrs: HashMap<(ThreadId, LogId), Vec<(Multiaddr, u64)>>,
    meta: HashMap<(ThreadId, String), Vec<u8>>,
    view_cursors: HashMap<String, Vec<u8>>,
    view_rows: BTreeMap<(String, String), BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Inner {
    /// Appends `batch` (a checked chain ending at `last`).
    fn append(
        &mut self,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
        last: Head,
    ) -> Result<AppendOutcome> {
        if !self.threads.contains_key(&thread) {
            return Err(StoreError::UnknownThread(thread));
        }
        let current = self.head(thread, log);
        let decision = plan(log, expected, current, last, |counter| {
            let entries = self.logs.get(&(thread, log))?;
            entries
                .get(usize::try_from(counter).ok()?.checked_sub(1)?)
                .map(|e| *e.record.cid())
        })?;
        match decision {
            Plan::Done(outcome) => Ok(outcome),
            Plan::Append { new_head } => {
                let start = self.logs.get(&(thread, log)).map_or(0, Vec::len);
                for (i, appended) in batch.iter().enumerate() {
                    self.records
                        .insert(*appended.record.cid(), (thread, log, start + i));
                }
                let entries = self.logs.entry((thread, log)).or_default();
                entries.extend(batch.iter().map(|a| a.entry.clone()));
                Ok(AppendOutcome::Appended { head: new_head })
            }
        }
    }

    /// Applies `commit`.
    fn view_commit(&mut self, commit: &ViewCommit) {
        for change in &commit.changes {
            let rows = self
                .view_rows
                .entry((commit.scope.clone(), change.view.clone()))
                .or_default();
            if change.reset {
                rows.clear();
            }
            if let Some(below) = &change.delete_below {
                *rows = rows.split_off(below.as_slice());
            }
            for key in &change.deletes {
                rows.remove(key);
            }
            for (key, value) in &change.puts {
                rows.insert(key.clone(), value.clone());
            }
        }
        self.view_cursors
            .insert(commit.scope.clone(), commit.cursor.clone());
    }

    fn head(&self, thread: ThreadId, log: LogId) -> Option<Head> {
        let entries = self.logs.get(&(thread, log))?;
        let last = entries.last()?;
        Some(Head {
            cid: *last.record.cid(),
            counter: entries.len() as u64,
        })
    }
}

/// A store that lives in memory.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use threads_store::{MemoryStore, ThreadBook};
/// use threads_crypto::ThreadKey;
/// use threads_id::{ThreadId, Variant};
///
/// let store = MemoryStore::new();
/// let thread = ThreadId::new(Variant::Raw);
/// store.put_thread(thread, &ThreadKey::generate()).await?;
/// assert_eq!(store.threads().await?, vec![thread]);
/// # Ok::<(), threads_store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held cannot leave a half-applied change: every method
        // checks before it mutates. So a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BlockStore for MemoryStore {
    async fn put_blocks(&self, blocks: &[Block]) -> Result<()> {
        let mut inner = self.lock();
        for block in blocks {
            inner
                .blocks
                .entry(*block.cid())
                .or_insert_with(|| block.clone());
        }
        Ok(())
    }

    async fn get_block(&self, cid: &Cid) -> Result<Option<Block>> {
        let inner = self.lock();
        if let Some(block) = inner.blocks.get(cid) {
            return Ok(Some(block.clone()));
        }
        Ok(inner.records.get(cid).and_then(|(thread, log, index)| {
            inner
                .logs
                .get(&(*thread, *log))
                .map(|entries| entries[*index].record.clone())
        }))
    }

    async fn has_block(&self, cid: &Cid) -> Result<bool> {
        let inner = self.lock();
        Ok(inner.blocks.contains_key(cid) || inner.records.contains_key(cid))
    }

    async fn delete_blocks(&self, cids: &[Cid]) -> Result<()> {
        let mut inner = self.lock();
        for cid in cids {
            inner.blocks.remove(cid);
        }
        Ok(())
    }
}

impl ThreadBook for MemoryStore {
    async fn put_thread(&self, thread: ThreadId, key: &ThreadKey) -> Result<()> {
        self.lock().threads.insert(thread, key.clone());
        Ok(())
    }

    async fn thread_key(&self, thread: ThreadId) -> Result<Option<ThreadKey>> {
        Ok(self.lock().threads.get(&thread).cloned())
    }

    async fn threads(&self) -> Result<Vec<ThreadId>> {
        Ok(self.lock().threads.keys().copied().collect())
    }

    async fn delete_thread(&self, thread: ThreadId) -> Result<()> {
        let (from, to) = crate::traits::scope_range(thread);
        let mut inner = self.lock();
        inner.threads.remove(&thread);
        inner.logs.retain(|(t, _), _| *t != thread);
        inner.records.retain(|_, (t, _, _)| *t != thread);
        inner.keys.retain(|(t, _), _| *t != thread);
        inner.addrs.retain(|(t, _), _| *t != thread);
        inner.meta.retain(|(t, _), _| *t != thread);
        inner
            .view_cursors
            .retain(|scope, _| !(*scope >= from && *scope < to));
        inner
            .view_rows
            .retain(|(scope, _), _| !(*scope >= from && *scope < to));
        Ok(())
    }
}

impl LogBook for MemoryStore {
    async fn add_log(&self, thread: ThreadId, log: LogId) -> Result<()> {
        let mut inner = self.lock();
        if !inner.threads.contains_key(&thread) {
            return Err(StoreError::UnknownThread(thread));
        }
        inner.logs.entry((thread, log)).or_default();
        Ok(())
    }

    async fn logs(&self, thread: ThreadId) -> Result<Vec<LogId>> {
        let inner = self.lock();
        Ok(inner
            .logs
            .keys()
            .filter(|(t, _)| *t == thread)
            .map(|(_, log)| *log)
            .collect())
    }

    async fn head(&self, thread: ThreadId, log: LogId) -> Result<Option<Head>> {
        Ok(self.lock().head(thread, log))
    }

    async fn append(
        &self,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
    ) -> Result<AppendOutcome> {
        self.append_with_views(thread, log, expected, batch, &[])
            .await
    }

    async fn entries_after(
        &self,
        thread: ThreadId,
        log: LogId,
        after: u64,
        page: Page,
    ) -> Result<Vec<StoredEntry>> {
        let inner = self.lock();
        let Some(entries) = inner.logs.get(&(thread, log)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        for (i, entry) in entries.iter().enumerate().skip(start) {
            if out.len() >= page.max_records || (!out.is_empty() && bytes >= page.max_bytes) {
                break;
            }
            bytes += entry.blocks().iter().map(|b| b.data().len()).sum::<usize>();
            out.push(StoredEntry {
                counter: i as u64 + 1,
                entry: entry.clone(),
            });
        }
        Ok(out)
    }

    async fn record_cid(&self, thread: ThreadId, log: LogId, counter: u64) -> Result<Option<Cid>> {
        let inner = self.lock();
        let index = usize::try_from(counter).ok().and_then(|c| c.checked_sub(1));
        Ok(index.and_then(|i| {
            inner
                .logs
                .get(&(thread, log))
                .and_then(|e| e.get(i))
                .map(|e| *e.record.cid())
        }))
    }

    async fn heads_digest(&self, thread: ThreadId) -> Result<HeadsDigest> {
        let inner = self.lock();
        let heads = inner
            .logs
            .keys()
            .filter(|(t, _)| *t == thread)
            .filter_map(|(t, log)| inner.head(*t, *log).map(|h| (*log, h)))
            .collect();
        Ok(heads_digest(heads))
    }
}

impl KeyBook for MemoryStore {
    async fn put_log_key(&self, thread: ThreadId, identity: &Identity) -> Result<()> {
        self.lock()
            .keys
            .insert((thread, identity.log_id()), identity.clone());
        Ok(())
    }

    async fn log_key(&self, thread: ThreadId, log: LogId) -> Result<Option<Identity>> {
        Ok(self.lock().keys.get(&(thread, log)).cloned())
    }
}

impl AddrBook for MemoryStore {
    async fn add_addr(
        &self,
        thread: ThreadId,
        log: LogId,
        addr: &Multiaddr,
        expires_ms: u64,
    ) -> Result<()> {
        let mut inner = self.lock();
        let addrs = inner.addrs.entry((thread, log)).or_default();
        match addrs.iter_mut().find(|(a, _)| a == addr) {
            Some((_, expiry)) => *expiry = (*expiry).max(expires_ms),
            None => addrs.push((addr.clone(), expires_ms)),
        }
        Ok(())
    }

    async fn addrs(&self, thread: ThreadId, log: LogId, now_ms: u64) -> Result<Vec<Multiaddr>> {
        let inner = self.lock();
        let mut out: Vec<Multiaddr> = inner
            .addrs
            .get(&(thread, log))
            .map(|a| {
                a.iter()
                    .filter(|(_, e)| *e > now_ms)
                    .map(|(a, _)| a.clone())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|a| a.to_vec());
        Ok(out)
    }

    async fn expire_addrs(&self, thread: ThreadId, now_ms: u64) -> Result<u64> {
        let mut inner = self.lock();
        let mut deleted = 0;
        for ((t, _), addrs) in inner.addrs.iter_mut() {
            if *t == thread {
                let before = addrs.len();
                addrs.retain(|(_, e)| *e > now_ms);
                deleted += (before - addrs.len()) as u64;
            }
        }
        inner.addrs.retain(|_, addrs| !addrs.is_empty());
        Ok(deleted)
    }
}

impl MetaBook for MemoryStore {
    async fn put_meta(&self, thread: ThreadId, key: &str, value: &[u8]) -> Result<()> {
        self.lock()
            .meta
            .insert((thread, key.to_owned()), value.to_vec());
        Ok(())
    }

    async fn meta(&self, thread: ThreadId, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().meta.get(&(thread, key.to_owned())).cloned())
    }
}

impl ViewBook for MemoryStore {
    async fn view_cursor(&self, scope: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().view_cursors.get(scope).cloned())
    }

    async fn view_get(
        &self,
        scope: &str,
        view: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let inner = self.lock();
        let rows = inner.view_rows.get(&(scope.to_owned(), view.to_owned()));
        Ok(keys
            .iter()
            .map(|k| rows.and_then(|r| r.get(k)).cloned())
            .collect())
    }

    async fn view_range(
        &self,
        scope: &str,
        view: &str,
        range: &RowRange,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        use std::ops::Bound;
        let inner = self.lock();
        let Some(rows) = inner.view_rows.get(&(scope.to_owned(), view.to_owned())) else {
            return Ok(Vec::new());
        };
        let start = if range.after {
            Bound::Excluded(range.from.as_slice())
        } else {
            Bound::Included(range.from.as_slice())
        };
        let end = range
            .to
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        if matches!((start, end), (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b)) if a >= b)
        {
            return Ok(Vec::new());
        }
        let within = rows.range::<[u8], _>((start, end));
        let pick = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if range.reverse {
            within.rev().take(range.limit).map(pick).collect()
        } else {
            within.take(range.limit).map(pick).collect()
        })
    }

    async fn view_commit(&self, commit: &ViewCommit) -> Result<()> {
        commit.check()?;
        self.lock().view_commit(commit);
        Ok(())
    }

    async fn append_with_views(
        &self,
        thread: ThreadId,
        log: LogId,
        expected: Option<Head>,
        batch: &[Appended],
        commits: &[ViewCommit],
    ) -> Result<AppendOutcome> {
        let last = check_chain(expected, batch)?;
        for commit in commits {
            commit.check()?;
        }
        let mut inner = self.lock();
        let outcome = inner.append(thread, log, expected, batch, last)?;
        if let AppendOutcome::Appended { .. } = outcome {
            for commit in commits {
                inner.view_commit(commit);
            }
        }
        Ok(outcome)
    }

    async fn compact_bodies(&self, thread: ThreadId, log: LogId, counters: &[u64]) -> Result<u64> {
        let mut inner = self.lock();
        let Some(entries) = inner.logs.get_mut(&(thread, log)) else {
            return Ok(0);
        };
        let mut dropped = 0;
        for &counter in counters {
            let Some(index) = counter.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
                continue;
            };
            if let Some(entry) = entries.get_mut(index)
                && !entry.body.data().is_empty()
            {
                entry.body = Block::raw(Vec::new());
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    async fn fill_body(
        &self,
        thread: ThreadId,
        log: LogId,
        counter: u64,
        body: &[u8],
    ) -> Result<bool> {
        let mut inner = self.lock();
        let Some(entries) = inner.logs.get_mut(&(thread, log)) else {
            return Ok(false);
        };
        let Some(index) = counter.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return Ok(false);
        };
        match entries.get_mut(index) {
            Some(entry) if entry.body.data().is_empty() && !body.is_empty() => {
                entry.body = Block::raw(body.to_vec());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
