//! How the engine paces its work: [`ViewConfig`].

/// How the engine paces its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewConfig {
    /// How many bytes of committed rows the views of one scope cache in memory (default
    /// 64 MiB). Rows live in the store; the cache saves round trips to it. Scopes that
    /// share a [`CacheBudget`](crate::CacheBudget) ([`Views::share_cache`](crate::Views::share_cache))
    /// count against it instead: a database shares one among all its threads.
    pub cache_bytes: usize,
    /// How long undo records of order-sensitive views are kept, in milliseconds of event
    /// time behind the latest applied event (default one day). A late event within it
    /// undoes only the events after it; an older one rebuilds the views.
    pub undo_horizon_ms: u64,
    /// Commit once the changes applied since the last commit reach this many bytes
    /// (default 8 MiB), even before [`ViewConfig::commit_every`] events: the memory a
    /// catch-up holds stays bounded however large its events are.
    pub commit_bytes: usize,
    /// Commit after this many applied events (and at the end of each catch-up).
    pub commit_every: usize,
    /// How many entries to read from a log at a time.
    pub page: usize,
    /// What to do with an entry this peer cannot read with the keys it holds: wait for a
    /// key that opens it (`false`, the default: the log stops there, see
    /// [`Views::blocked`](crate::Views::blocked)), or pass over it for good (`true`: for views that only read
    /// events sealed with one known key, such as the access-control list).
    pub skip_unreadable: bool,
    /// How far ahead of this peer's wall clock an event's time may be, in milliseconds
    /// (default [`threads_log::DEFAULT_MAX_DRIFT_MS`], one minute). An event dated further
    /// ahead waits, with the later events of its log, until the clock reaches it: a writer
    /// that dates its events in the far future cannot win every last-writer-wins conflict
    /// or make every later event late, and every honest peer decides the same once its
    /// clock passes the event.
    pub max_future_ms: u64,
    /// Whether an event applies whole or not at all across the views (default `false`:
    /// each view takes or refuses its own operations of an event).
    ///
    /// With `true`, when one view refuses its operations of an event, no view keeps any of
    /// that event's operations, on every peer, and every view the event addressed records
    /// a rejection ([`NOT_APPLIED`](crate::NOT_APPLIED) for the views that were fine).
    /// Whether an event is refused can then depend on the events before it, so every view
    /// of the scope, commutative ones included, takes events in the thread's order and
    /// keeps undo records: a late event undoes and replays the events after it in every
    /// view (its cost stays proportional to those events, never to the size of the
    /// views).
    pub atomic: bool,
    /// Whether every view takes events in the thread's order and keeps undo records,
    /// commutative ones included (default `false`; implied by [`ViewConfig::atomic`]).
    ///
    /// A commutative view applies a late event at once and keeps no undo record, so when
    /// a scope has one, a regate ([`Views::regate`](crate::Views::regate): a gate whose
    /// answers changed from some event on) or a log found forked from some event on
    /// rebuilds the whole scope from the logs. With `true`, those undo only the events
    /// from that place, like a late event; the price is that late events undo and replay
    /// the events after them in every view. A scope behind a gate that changes (the ACL's)
    /// wants `true`: a revocation arriving late is a late event of the gate.
    pub in_order: bool,
}

impl Default for ViewConfig {
    fn default() -> ViewConfig {
        ViewConfig {
            cache_bytes: 64 << 20,
            undo_horizon_ms: 24 * 60 * 60 * 1000,
            commit_bytes: 8 << 20,
            commit_every: 1_000,
            page: 512,
            skip_unreadable: false,
            max_future_ms: threads_log::DEFAULT_MAX_DRIFT_MS,
            atomic: false,
            in_order: false,
        }
    }
}

impl ViewConfig {
    /// The defaults: a 64 MiB cache, undo records for a day of event time, a commit every
    /// 1,000 events.
    pub fn new() -> ViewConfig {
        ViewConfig::default()
    }

    /// Sets [`ViewConfig::atomic`].
    #[must_use]
    pub const fn with_atomic(mut self, atomic: bool) -> ViewConfig {
        self.atomic = atomic;
        self
    }

    /// Sets [`ViewConfig::in_order`].
    #[must_use]
    pub const fn with_in_order(mut self, in_order: bool) -> ViewConfig {
        self.in_order = in_order;
        self
    }

    /// Sets [`ViewConfig::cache_bytes`].
    #[must_use]
    pub const fn with_cache_bytes(mut self, bytes: usize) -> ViewConfig {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`ViewConfig::commit_bytes`] (at least 1).
    #[must_use]
    pub fn with_commit_bytes(mut self, bytes: usize) -> ViewConfig {
        self.commit_bytes = bytes.max(1);
        self
    }

    /// Sets [`ViewConfig::undo_horizon_ms`].
    #[must_use]
    pub const fn with_undo_horizon_ms(mut self, ms: u64) -> ViewConfig {
        self.undo_horizon_ms = ms;
        self
    }

    /// Sets [`ViewConfig::commit_every`] (at least 1).
    #[must_use]
    pub fn with_commit_every(mut self, events: usize) -> ViewConfig {
        self.commit_every = events.max(1);
        self
    }

    /// Sets [`ViewConfig::max_future_ms`].
    #[must_use]
    pub const fn with_max_future_ms(mut self, ms: u64) -> ViewConfig {
        self.max_future_ms = ms;
        self
    }

    /// Sets [`ViewConfig::skip_unreadable`].
    #[must_use]
    pub fn with_skip_unreadable(mut self, skip: bool) -> ViewConfig {
        self.skip_unreadable = skip;
        self
    }
}
