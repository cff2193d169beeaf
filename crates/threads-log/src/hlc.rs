//! Hybrid logical clocks (HLC) and the total order of events across logs.
//!
//! An [`Hlc`] time is physical milliseconds plus a logical counter. A [`Clock`] issues times
//! that never go backwards on one log, stays close to physical time, and moves past every
//! remote time it has seen, so an event that causally follows another always gets a larger
//! time. A remote time too far in the future (more than the configured maximum drift) is
//! refused with [`ClockError::Drift`] instead of dragging the clock forward.
//!
//! [`EventOrder`] = (HLC, log id, counter) is the strict total order views use across logs.
//!
//! The clock reads physical time through [`TimeSource`], so tests drive it by hand.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use threads_id::LogId;

/// A hybrid logical clock time: physical milliseconds since the Unix epoch, then a logical
/// counter that orders events within one millisecond. Ordered by `(physical, logical)`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Hlc {
    physical: u64,
    logical: u32,
}

impl Hlc {
    /// The time with these parts.
    pub const fn new(physical_ms: u64, logical: u32) -> Hlc {
        Hlc {
            physical: physical_ms,
            logical,
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn physical_ms(&self) -> u64 {
        self.physical
    }

    /// The logical counter within the millisecond.
    pub const fn logical(&self) -> u32 {
        self.logical
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical, self.logical)
    }
}

/// Where a [`Clock`] reads physical time.
pub trait TimeSource {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock;

impl TimeSource for WallClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A fixed time, for tests and deterministic vectors.
#[derive(Clone, Copy, Debug)]
pub struct FixedTime(pub u64);

impl TimeSource for FixedTime {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

/// Why a clock refused a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// A remote time is further ahead of local physical time than the allowed drift.
    #[error(
        "remote time {remote} is {ahead_ms} ms ahead of local time (max drift {max_drift_ms} ms)"
    )]
    Drift {
        /// The remote time.
        remote: Hlc,
        /// How far ahead of local physical time it is.
        ahead_ms: u64,
        /// The configured maximum.
        max_drift_ms: u64,
    },
    /// The logical counter would overflow (more than 2^32 events in one millisecond).
    #[error("logical clock overflow at {0}")]
    Overflow(Hlc),
}

/// The default maximum drift of a remote time ahead of local time: one minute.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

/// A hybrid logical clock for one log.
///
/// ```
/// use threads_log::{Clock, FixedTime, Hlc};
///
/// let mut clock = Clock::new(FixedTime(1_000));
/// let a = clock.now()?;
/// let b = clock.now()?;
/// assert!(b > a);
/// // Receiving a later remote time moves the clock past it.
/// let c = clock.update(Hlc::new(1_500, 3))?;
/// assert!(c > Hlc::new(1_500, 3));
/// // A remote time far in the future is refused.
/// assert!(clock.update(Hlc::new(10_000_000, 0)).is_err());
/// # Ok::<(), threads_log::ClockError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Clock<T = WallClock> {
    source: T,
    last: Hlc,
    max_drift_ms: u64,
}

impl Clock<WallClock> {
    /// A clock on the system's wall clock.
    pub fn system() -> Clock<WallClock> {
        Clock::new(WallClock)
    }
}

impl<T: TimeSource> Clock<T> {
    /// A clock on `source`, starting at zero, with the default maximum drift.
    pub fn new(source: T) -> Clock<T> {
        Clock {
            source,
            last: Hlc::default(),
            max_drift_ms: DEFAULT_MAX_DRIFT_MS,
        }
    }

    /// The same clock, resuming after `last` (the latest time this log has used).
    pub fn with_last(mut self, last: Hlc) -> Clock<T> {
        self.last = self.last.max(last);
        self
    }

    /// Resumes after `last` in place (a time this peer used before, say before a restart):
    /// later times are larger, whatever the wall clock says, and no drift check applies,
    /// since the time was this peer's own.
    pub fn resume(&mut self, last: Hlc) {
        self.last = self.last.max(last);
    }

    /// The same clock with another maximum drift for remote times.
    pub fn with_max_drift_ms(mut self, max_drift_ms: u64) -> Clock<T> {
        self.max_drift_ms = max_drift_ms;
        self
    }

    /// The latest time issued or seen.
    pub const fn last(&self) -> Hlc {
        self.last
    }

    /// The time source.
    pub fn source_mut(&mut self) -> &mut T {
        &mut self.source
    }

    /// A new local time, larger than every time issued or seen before.
    pub fn now(&mut self) -> Result<Hlc, ClockError> {
        let physical = self.source.now_ms();
        let next = if physical > self.last.physical {
            Hlc::new(physical, 0)
        } else {
            let logical = self
                .last
                .logical
                .checked_add(1)
                .ok_or(ClockError::Overflow(self.last))?;
            Hlc::new(self.last.physical, logical)
        };
        self.last = next;
        Ok(next)
    }

    /// Takes in a remote time (on receiving an event) and returns a local time larger than
    /// both it and every earlier time. A remote time more than the maximum drift ahead of
    /// physical time is refused and leaves the clock unchanged.
    pub fn update(&mut self, remote: Hlc) -> Result<Hlc, ClockError> {
        let physical = self.source.now_ms();
        let ahead_ms = remote.physical.saturating_sub(physical);
        if ahead_ms > self.max_drift_ms {
            return Err(ClockError::Drift {
                remote,
                ahead_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let top = self.last.max(remote);
        let next = if physical > top.physical {
            Hlc::new(physical, 0)
        } else {
            let logical = top
                .logical
                .checked_add(1)
                .ok_or(ClockError::Overflow(top))?;
            Hlc::new(top.physical, logical)
        };
        self.last = next;
        Ok(next)
    }
}

/// The position of an event in the total order across a thread's logs:
/// (HLC time, log id, counter). Every peer sorts the same events the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventOrder {
    /// The event's time.
    pub time: Hlc,
    /// The log it belongs to.
    pub log: LogId,
    /// Its counter in that log.
    pub counter: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TimeSource for &std::cell::Cell<u64> {
        fn now_ms(&self) -> u64 {
            self.get()
        }
    }

    #[test]
    fn local_times_increase_even_when_physical_time_stalls_or_goes_back() {
        let time = std::cell::Cell::new(100);
        let mut clock = Clock::new(&time);
        let a = clock.now().expect("time");
        assert_eq!(a, Hlc::new(100, 0));
        let b = clock.now().expect("time");
        assert_eq!(b, Hlc::new(100, 1));
        time.set(50);
        let c = clock.now().expect("time");
        assert_eq!(c, Hlc::new(100, 2));
        time.set(200);
        assert_eq!(clock.now().expect("time"), Hlc::new(200, 0));
    }

    #[test]
    fn drift_is_refused_and_changes_nothing() {
        let mut clock = Clock::new(FixedTime(1_000)).with_max_drift_ms(100);
        let before = clock.now().expect("time");
        let err = clock.update(Hlc::new(1_101, 0)).expect_err("too far ahead");
        assert_eq!(
            err,
            ClockError::Drift {
                remote: Hlc::new(1_101, 0),
                ahead_ms: 101,
                max_drift_ms: 100
            }
        );
        assert_eq!(clock.last(), before);
        assert_eq!(
            clock.update(Hlc::new(1_100, 7)).expect("within drift"),
            Hlc::new(1_100, 8)
        );
    }

    #[test]
    fn logical_overflow_is_an_error() {
        let mut clock = Clock::new(FixedTime(5)).with_last(Hlc::new(5, u32::MAX));
        assert_eq!(
            clock.now(),
            Err(ClockError::Overflow(Hlc::new(5, u32::MAX)))
        );
    }
}
