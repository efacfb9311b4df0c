//! The server clock: memcached's `current_time` (seconds since the process started) and
//! its `realtime()` conversion of client expiration times.
//!
//! memcached sets `process_started` to the start time minus 62 seconds
//! (`ITEM_UPDATE_INTERVAL + 2`), so its clock reads 62 or more and an item time of 0 can
//! mean "never"; we do the same. The clock is read from the monotonic clock on demand
//! (`CLOCK_MONOTONIC_COARSE`: a vDSO read of the last tick, no thread), plus an offset
//! tests can advance.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds of the coarse monotonic clock.
#[inline]
fn coarse_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE always exists on
    // Linux, and on failure `ts` keeps zeroes (the clock then stands still).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64
}

/// memcached's `REALTIME_MAXDELTA`: expiration times up to 30 days are relative.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// Seconds the clock reads at start (memcached's `ITEM_UPDATE_INTERVAL + 2`).
pub const START_OFFSET: u32 = 62;

/// A seconds clock in memcached's `rel_time_t` terms.
#[derive(Debug)]
pub struct Clock {
    /// Coarse monotonic seconds at start.
    start: u64,
    /// Unix time of clock reading 0.
    process_started: i64,
    /// Seconds added by [`Clock::advance`].
    skew: AtomicU32,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock reading [`START_OFFSET`] now.
    pub fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Clock {
            start: coarse_secs(),
            process_started: unix - i64::from(START_OFFSET),
            skew: AtomicU32::new(0),
        }
    }

    /// Seconds since clock reading 0 (memcached's `current_time`).
    #[inline]
    pub fn now(&self) -> u32 {
        let secs = coarse_secs().saturating_sub(self.start) as u32;
        START_OFFSET + secs + self.skew.load(Ordering::Relaxed)
    }

    /// A clock that continues another process's: Unix start `process_started`, reading
    /// `now` at once (a warm restart).
    pub fn resumed(process_started: i64, now: u32) -> Self {
        Clock {
            start: coarse_secs(),
            process_started,
            skew: AtomicU32::new(now.saturating_sub(START_OFFSET)),
        }
    }

    /// Moves the clock forward by `secs` (tests, and a debugging aid).
    pub fn advance(&self, secs: u32) {
        self.skew.fetch_add(secs, Ordering::Relaxed);
    }

    /// The Unix time at which the clock read 0 (memcached's `process_started`).
    pub fn process_started(&self) -> i64 {
        self.process_started
    }

    /// The Unix time now, by this clock.
    pub fn unix_now(&self) -> i64 {
        self.process_started + i64::from(self.now())
    }

    /// memcached's `realtime()`: a client expiration time to server-clock seconds. 0 stays
    /// 0 (never); negative means already expired (1); up to 30 days is relative to now;
    /// larger is an absolute Unix time (1 if it is not after the start).
    pub fn realtime(&self, exptime: i64) -> u32 {
        self.realtime_at(exptime, self.now())
    }

    /// [`realtime`](Self::realtime) with the clock reading `now`.
    pub fn realtime_at(&self, exptime: i64, now: u32) -> u32 {
        if exptime == 0 {
            return 0;
        }
        if exptime < 0 {
            return 1;
        }
        if exptime > REALTIME_MAXDELTA {
            if exptime <= self.process_started {
                return 1;
            }
            return (exptime - self.process_started).min(i64::from(u32::MAX)) as u32;
        }
        (exptime + i64::from(now)).min(i64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_follows_memcached() {
        let c = Clock::new();
        let now = 1000;
        assert!(c.now() >= START_OFFSET);
        assert_eq!(c.realtime_at(0, now), 0);
        assert_eq!(c.realtime_at(-1, now), 1);
        assert_eq!(c.realtime_at(10, now), now + 10);
        assert_eq!(
            c.realtime_at(REALTIME_MAXDELTA, now),
            now + REALTIME_MAXDELTA as u32
        );
        // Absolute times.
        assert_eq!(c.realtime_at(c.process_started() + 500, now), 500);
        assert_eq!(
            c.realtime_at(REALTIME_MAXDELTA + 1, now),
            1,
            "a 1970 date is in the past"
        );
        let before = c.now();
        c.advance(5);
        assert!(c.now() >= before + 5);
    }
}
