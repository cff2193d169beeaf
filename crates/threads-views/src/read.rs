//! Reading the views: a read runs against the cache, and what the cache misses is fetched
//! from the store (one round trip per view and kind of read) before the read runs again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use threads_store::{RowRange, Store};

use crate::engine::{REJECTIONS, Views};
use crate::error::Result;
use crate::state::{Miss, State, range_fetch};

impl<S: Store + 'static> Views<S> {
    /// Runs `read` over the view named `name` and returns what it returns.
    ///
    /// The rows live in the store: `read` sees them through a cache, and if it reads rows
    /// the cache does not hold, they are fetched and `read` runs again, so it must depend
    /// only on the state it is given. The run whose result is returned missed nothing.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use threads_crypto::ThreadKey;
    /// # use threads_id::{ThreadId, Variant};
    /// # use threads_store::{MemoryStore, ThreadBook};
    /// use threads_views::{Kv, ViewConfig, Views};
    /// # let store = Arc::new(MemoryStore::new());
    /// # let thread = ThreadId::new(Variant::Raw);
    /// # store.put_thread(thread, &ThreadKey::generate()).await?;
    /// let mut views = Views::open(store, thread, vec![Arc::new(Kv::new("kv"))], ViewConfig::new()).await?;
    /// let value = views.read("kv", |state| Kv::get(state, b"theme")).await?;
    /// assert_eq!(value, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`crate::ViewError::UnknownView`] or a store error.
    pub async fn read<T>(&mut self, name: &str, read: impl Fn(&State) -> T) -> Result<T> {
        self.reload_if_stale().await?;
        let view = self.view_index(name)?;
        loop {
            let out = read(&self.states[view]);
            if !self.states[view].has_misses() {
                self.trim_cache();
                return Ok(out);
            }
            drop(out);
            self.fetch(view).await?;
        }
    }

    /// The state at `index`: a view's, or the rejections' for `states.len()`.
    pub(crate) fn state_at(&self, index: usize) -> &State {
        self.states.get(index).unwrap_or(&self.rejections)
    }

    /// [`Views::state_at`], to change.
    pub(crate) fn state_at_mut(&mut self, index: usize) -> &mut State {
        if index < self.states.len() {
            &mut self.states[index]
        } else {
            &mut self.rejections
        }
    }

    pub(crate) fn state_name(&self, index: usize) -> &str {
        self.reducers.get(index).map_or(REJECTIONS, |r| r.name())
    }

    /// Whether any state recorded a miss.
    pub(crate) fn missed(&self) -> bool {
        self.states.iter().any(State::has_misses) || self.rejections.has_misses()
    }

    /// Fetches what every state missed.
    pub(crate) async fn fetch_missed(&mut self) -> Result<()> {
        for index in 0..=self.states.len() {
            if self.state_at(index).has_misses() {
                self.fetch(index).await?;
            }
        }
        Ok(())
    }

    /// Fetches what the state at `index` missed: every missed key in one read, and the
    /// next rows of every missed range.
    pub(crate) async fn fetch(&mut self, index: usize) -> Result<()> {
        let misses = self.state_at(index).take_misses();
        if self.flight.is_some() && misses.iter().any(|m| matches!(m, Miss::Range(..))) {
            // The store's rows are behind the commit being stored, which the cache's
            // ranges were dropped for: read them once it is done.
            self.settle().await;
        }
        let name = self.state_name(index).to_owned();
        let mut keys = Vec::new();
        for miss in misses {
            match miss {
                Miss::Key(key) => keys.push(key),
                Miss::Range(from, to, rev) => {
                    let (tail, held) = self.state_at(index).range_tail(&from, to.as_deref(), rev);
                    let limit = range_fetch(held);
                    let range = if rev {
                        // From the end: the next rows lie below the last one read.
                        RowRange::new(from.clone(), tail.or_else(|| to.clone()), limit).reversed()
                    } else {
                        RowRange {
                            after: tail.is_some(),
                            from: tail.unwrap_or_else(|| from.clone()),
                            to: to.clone(),
                            limit,
                            reverse: false,
                        }
                    };
                    let rows = self.store.view_range(&self.scope, &name, &range).await?;
                    let complete = rows.len() < limit;
                    self.state_at(index)
                        .learn_range((from, to, rev), rows, complete);
                }
            }
        }
        if !keys.is_empty() {
            let values = self.store.view_get(&self.scope, &name, &keys).await?;
            self.state_at(index).learn_keys(keys, values);
        }
        Ok(())
    }

    /// Shares `budget` with other views (every scope of a database): their caches
    /// together hold at most its bytes. By default a scope has a budget of its own of
    /// [`ViewConfig::cache_bytes`](crate::ViewConfig::cache_bytes).
    pub fn share_cache(&mut self, budget: Arc<CacheBudget>) {
        let own = self.cached.swap(0, Ordering::Relaxed);
        self.budget.release(own);
        self.budget = budget;
        self.trim_cache();
    }

    /// Accounts this scope's cache in the budget and, while the budget is exceeded, drops
    /// this scope's largest caches (down to half the budget).
    pub(crate) fn trim_cache(&self) {
        let mut sizes: Vec<(usize, usize)> = (0..=self.states.len())
            .map(|i| (self.state_at(i).cached_bytes(), i))
            .collect();
        let own: usize = sizes.iter().map(|(b, _)| b).sum();
        let before = self.cached.swap(own, Ordering::Relaxed);
        self.budget.account(before, own);
        if self.budget.used() <= self.budget.limit {
            return;
        }
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        for (bytes, index) in sizes {
            if self.budget.used() <= self.budget.limit / 2 || bytes == 0 {
                break;
            }
            self.state_at(index).evict();
            self.cached.fetch_sub(bytes, Ordering::Relaxed);
            self.budget.release(bytes);
        }
    }
}

/// A byte budget for the row caches of several [`Views`] (say, every thread of a peer):
/// their caches together stay within it.
#[derive(Debug)]
pub struct CacheBudget {
    limit: usize,
    used: AtomicUsize,
}

impl CacheBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<CacheBudget> {
        Arc::new(CacheBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes the caches sharing this budget hold.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The budget.
    pub const fn limit(&self) -> usize {
        self.limit
    }

    fn account(&self, before: usize, now: usize) {
        if now >= before {
            self.used.fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.release(before - now);
        }
    }

    pub(crate) fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }
}
