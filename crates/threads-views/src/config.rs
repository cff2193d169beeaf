//! How the engine paces its work: [`ViewConfig`].

/// How the engine paces its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewConfig {
    /// Save a snapshot of every view after this many applied events.
    pub snapshot_every: u64,
    /// Also wait, between snapshots, for at least as many events as the views have rows, so
    /// the cost of snapshots stays proportional to the events applied (on by default).
    pub amortize_snapshots: bool,
    /// How many snapshots to keep (the oldest are deleted).
    pub keep_snapshots: u64,
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
}

impl Default for ViewConfig {
    fn default() -> ViewConfig {
        ViewConfig {
            snapshot_every: 10_000,
            amortize_snapshots: true,
            keep_snapshots: 3,
            commit_every: 1_000,
            page: 512,
            skip_unreadable: false,
            max_future_ms: threads_log::DEFAULT_MAX_DRIFT_MS,
        }
    }
}

impl ViewConfig {
    /// The defaults: a snapshot every 10,000 events (amortized), 3 kept, a commit every
    /// 1,000 events.
    pub fn new() -> ViewConfig {
        ViewConfig::default()
    }

    /// Sets [`ViewConfig::snapshot_every`] (at least 1).
    #[must_use]
    pub fn with_snapshot_every(mut self, events: u64) -> ViewConfig {
        self.snapshot_every = events.max(1);
        self
    }

    /// Sets [`ViewConfig::amortize_snapshots`].
    #[must_use]
    pub fn with_amortized_snapshots(mut self, amortize: bool) -> ViewConfig {
        self.amortize_snapshots = amortize;
        self
    }

    /// Sets [`ViewConfig::keep_snapshots`] (at least 1).
    #[must_use]
    pub fn with_keep_snapshots(mut self, snapshots: u64) -> ViewConfig {
        self.keep_snapshots = snapshots.max(1);
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
