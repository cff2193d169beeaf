//! Per-peer limits on inbound requests: how many one peer may have in flight, and how fast
//! it may send them (a token bucket). A request over a limit is refused `Unavailable`
//! before it is read further, and counted against the peer, so one peer (an outsider
//! flooding, a member looping) cannot take the slots every peer shares.

use std::collections::HashMap;
use std::time::Instant;

use threads_id::PeerId;

/// The most peers whose state is kept; beyond it, peers with nothing in flight and a full
/// bucket are forgotten, or else the one heard from least recently (a forgotten peer
/// starts again with a full bucket).
const MAX_TRACKED_PEERS: usize = 4096;

/// Per-peer inbound limits ([`NetConfig::with_peer_limits`](crate::NetConfig::with_peer_limits)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PeerLimitConfig {
    /// Requests of one peer being answered at once.
    pub(crate) in_flight: usize,
    /// Requests per second one peer may send, on average.
    pub(crate) per_second: f64,
    /// Requests one peer may send at once after a quiet time.
    pub(crate) burst: f64,
}

impl Default for PeerLimitConfig {
    fn default() -> PeerLimitConfig {
        PeerLimitConfig {
            in_flight: 16,
            per_second: 500.0,
            burst: 1000.0,
        }
    }
}

#[derive(Debug)]
struct PeerState {
    in_flight: usize,
    tokens: f64,
    at: Instant,
}

/// The inbound state of every peer, and what was refused.
#[derive(Debug)]
pub(crate) struct PeerLimits {
    config: PeerLimitConfig,
    peers: HashMap<PeerId, PeerState>,
    refused: HashMap<PeerId, u64>,
}

impl PeerLimits {
    pub(crate) fn new(config: PeerLimitConfig) -> PeerLimits {
        PeerLimits {
            config,
            peers: HashMap::new(),
            refused: HashMap::new(),
        }
    }

    /// Whether a request of `peer` arriving at `now` is within its limits; if so it counts
    /// as in flight until [`PeerLimits::done`].
    pub(crate) fn admit(&mut self, peer: PeerId, now: Instant) -> bool {
        let config = self.config;
        if self.peers.len() >= MAX_TRACKED_PEERS && !self.peers.contains_key(&peer) {
            self.forget_idle(now);
            if self.peers.len() >= MAX_TRACKED_PEERS {
                let oldest = self.peers.iter().min_by_key(|(_, s)| s.at).map(|(p, _)| *p);
                if let Some(oldest) = oldest {
                    self.peers.remove(&oldest);
                }
            }
        }
        let state = self.peers.entry(peer).or_insert(PeerState {
            in_flight: 0,
            tokens: config.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(state.at).as_secs_f64();
        state.tokens = (state.tokens + elapsed * config.per_second).min(config.burst);
        state.at = now;
        if state.in_flight >= config.in_flight || state.tokens < 1.0 {
            if self.refused.len() < MAX_TRACKED_PEERS || self.refused.contains_key(&peer) {
                *self.refused.entry(peer).or_default() += 1;
            }
            return false;
        }
        state.tokens -= 1.0;
        state.in_flight += 1;
        true
    }

    /// A request of `peer` admitted before was answered.
    pub(crate) fn done(&mut self, peer: PeerId) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }

    /// How many requests of `peer` were refused for its limits.
    pub(crate) fn refused(&self, peer: &PeerId) -> u64 {
        self.refused.get(peer).copied().unwrap_or(0)
    }

    fn forget_idle(&mut self, now: Instant) {
        let config = self.config;
        self.peers.retain(|_, state| {
            let elapsed = now.saturating_duration_since(state.at).as_secs_f64();
            state.in_flight > 0 || state.tokens + elapsed * config.per_second < config.burst
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn peer(seed: u8) -> PeerId {
        threads_crypto::Identity::from_secret_bytes(&[seed; 32])
            .log_id()
            .peer_id()
    }

    #[test]
    fn a_peer_is_held_to_its_rate_and_in_flight_requests_and_others_are_not() {
        let config = PeerLimitConfig {
            in_flight: 3,
            per_second: 10.0,
            burst: 5.0,
        };
        let mut limits = PeerLimits::new(config);
        let (a, b) = (peer(1), peer(2));
        let t0 = Instant::now();
        // Three at once, then the fourth waits for one to be answered.
        assert!((0..3).all(|_| limits.admit(a, t0)));
        assert!(!limits.admit(a, t0));
        limits.done(a);
        limits.done(a);
        limits.done(a);
        // Two tokens left of the burst of five.
        assert!(limits.admit(a, t0));
        limits.done(a);
        assert!(limits.admit(a, t0));
        limits.done(a);
        assert!(!limits.admit(a, t0));
        assert_eq!(limits.refused(&a), 2);
        // Another peer has its own budget.
        assert!(limits.admit(b, t0));
        assert_eq!(limits.refused(&b), 0);
        // A tenth of a second later, one more token.
        let later = t0 + Duration::from_millis(100);
        assert!(limits.admit(a, later));
        assert!(!limits.admit(a, later));
    }

    #[test]
    fn the_state_kept_is_bounded() {
        let mut limits = PeerLimits::new(PeerLimitConfig::default());
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_PEERS as u32 + 100) {
            let peer = libp2p::PeerId::from_bytes(&multihash_of(i)).expect("peer id");
            assert!(limits.admit(peer, t0));
            limits.done(peer);
        }
        assert_eq!(limits.peers.len(), MAX_TRACKED_PEERS);
        // Once their buckets refill, idle peers are forgotten.
        let later = t0 + Duration::from_secs(10);
        limits.forget_idle(later);
        assert!(limits.peers.is_empty(), "{}", limits.peers.len());
    }

    /// An identity multihash of a distinct 32-byte value: a distinct peer id.
    fn multihash_of(i: u32) -> Vec<u8> {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        threads_crypto::Identity::from_secret_bytes(&key)
            .log_id()
            .peer_id()
            .to_bytes()
    }
}
