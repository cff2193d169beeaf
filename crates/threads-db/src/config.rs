//! How a [`Db`](crate::Db)(crate::Db) runs: its configuration, clock source and custom views.

use std::sync::Arc;
use std::time::Duration;

use threads_id::Multiaddr;
use threads_log::{TimeSource, WallClock};
use threads_net::Faults;
use threads_views::{Reducer, ViewConfig};

/// How a [`Db`](crate::Db) runs.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Where the node listens (default: a free TCP port on 127.0.0.1).
    pub listen: Vec<Multiaddr>,
    /// External addresses given to remote peers before the listen addresses (a public
    /// address in front of a NAT, a DNS name); none by default.
    pub announce: Vec<Multiaddr>,
    /// The most bytes of one log this peer stores from other peers (default 1 GiB,
    /// [`threads_net::DEFAULT_LOG_QUOTA`]).
    pub log_quota: u64,
    /// Per-peer inbound limits: requests answered at once, per second, and in a burst
    /// (`None`: the node's defaults, 16, 500 and 1,000;
    /// [`NetConfig::with_peer_limits`](threads_net::NetConfig::with_peer_limits)).
    pub peer_limits: Option<(usize, u32, u32)>,
    /// Whether this peer serves as a circuit relay for peers behind NAT (default off;
    /// cargo feature `relay`).
    pub relay: bool,
    /// How often the node syncs with its peers (default: 2 s).
    pub sync_interval: Duration,
    /// How the views run.
    pub views: ViewConfig,
    /// Faults the node injects (none by default): for tests of replication.
    pub faults: Faults,
    /// Where the clock reads the physical time (the system's wall clock by default).
    pub time: TimeFn,
    /// Views of the application's own beside the built-in ones ([`DbConfig::with_view`]).
    pub custom: CustomViews,
    /// How often the database compacts every thread it may compact
    /// ([`Db::compact`](crate::Db::compact)); `None` (the default): only when asked.
    pub compaction: Option<Duration>,
}

/// The application's own reducers, in the order added ([`DbConfig::with_view`]).
#[derive(Clone, Default)]
pub struct CustomViews(pub(crate) Vec<Arc<dyn Reducer>>);

impl std::fmt::Debug for CustomViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| r.name().to_owned()))
            .finish()
    }
}

/// A source of physical time for a [`Db`](crate::Db)'s clock ([`DbConfig::with_time`]).
#[derive(Clone)]
pub struct TimeFn(Arc<dyn Fn() -> u64 + Send + Sync>);

impl TimeFn {
    /// Milliseconds since the Unix epoch from `now`.
    pub fn new(now: impl Fn() -> u64 + Send + Sync + 'static) -> TimeFn {
        TimeFn(Arc::new(now))
    }

    /// The system's wall clock.
    pub fn wall() -> TimeFn {
        TimeFn::new(|| WallClock.now_ms())
    }
}

impl TimeSource for TimeFn {
    fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for TimeFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimeFn")
    }
}

impl Default for DbConfig {
    fn default() -> DbConfig {
        DbConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| unreachable!("a valid address")),
            ],
            announce: Vec::new(),
            log_quota: threads_net::DEFAULT_LOG_QUOTA,
            peer_limits: None,
            relay: false,
            sync_interval: Duration::from_secs(2),
            views: ViewConfig::new(),
            faults: Faults::new(),
            time: TimeFn::wall(),
            custom: CustomViews::default(),
            compaction: None,
        }
    }
}

impl DbConfig {
    /// Listens on `addrs` instead.
    #[must_use]
    pub fn with_listen(mut self, addrs: Vec<Multiaddr>) -> DbConfig {
        self.listen = addrs;
        self
    }

    /// Announces `addrs` as this peer's external addresses (invites and address exchanges
    /// carry them first).
    #[must_use]
    pub fn with_announce(mut self, addrs: Vec<Multiaddr>) -> DbConfig {
        self.announce = addrs;
        self
    }

    /// Stores at most `bytes` of each log received from other peers (this peer's own log
    /// is not limited); a batch past it is refused and counted in the sync health.
    #[must_use]
    pub fn with_log_quota(mut self, bytes: u64) -> DbConfig {
        self.log_quota = bytes;
        self
    }

    /// Holds each peer to `in_flight` requests answered at once and `per_second` on
    /// average (`burst` at once after a quiet time); beyond them its requests are refused
    /// and counted, so one peer cannot take the slots every peer shares.
    #[must_use]
    pub fn with_peer_limits(mut self, in_flight: usize, per_second: u32, burst: u32) -> DbConfig {
        self.peer_limits = Some((in_flight, per_second, burst));
        self
    }

    /// Serves as a circuit relay (v2) for peers behind NAT: they reserve a slot here and are
    /// reached through it until hole punching gives a direct connection. Cargo feature
    /// `relay` (on by default), as the relay client, hole punching and AutoNAT are.
    #[cfg(feature = "relay")]
    #[must_use]
    pub fn with_relay(mut self, on: bool) -> DbConfig {
        self.relay = on;
        self
    }

    /// Injects `faults` into the node's pushes and requests (for tests; keep the handle to
    /// change them while the database runs).
    #[must_use]
    pub fn with_faults(mut self, faults: Faults) -> DbConfig {
        self.faults = faults;
        self
    }

    /// Adds the application's own view, computed from the thread's events like the
    /// built-in ones on every peer, persisted and caught up the same way: write to it with
    /// [`Db::write`](crate::Db::write) (a [`Batch`](threads_views::Batch) with operations addressed to its name), read it with
    /// [`Db::read_view`](crate::Db::read_view). Its name must differ from the built-in views' (`kv`, `docs`,
    /// `crdt`, `acl`) and from the other custom views' ([`Db::open`](crate::Db::open) refuses it otherwise).
    #[must_use]
    pub fn with_view(mut self, reducer: impl Reducer + 'static) -> DbConfig {
        self.custom.0.push(Arc::new(reducer));
        self
    }

    /// Compacts the threads this peer may compact (the access-controlled ones it owns, the
    /// raw ones it is a member of) every `every` ([`Db::compact`](crate::Db::compact)).
    #[must_use]
    pub fn with_compaction(mut self, every: Duration) -> DbConfig {
        self.compaction = Some(every);
        self
    }

    /// Reads physical time from `time` instead of the wall clock (for tests of clocks that
    /// move back).
    #[must_use]
    pub fn with_time(mut self, time: TimeFn) -> DbConfig {
        self.time = time;
        self
    }

    /// Syncs every `interval` instead.
    #[must_use]
    pub const fn with_sync_interval(mut self, interval: Duration) -> DbConfig {
        self.sync_interval = interval;
        self
    }
}
