//! When an item stops being valid: the server clock, CAS uniques and `flush_all`'s
//! horizon, kept together as the store's [`Expiry`]. A leaf: nothing here knows the store.
//!
//! An item is dead once its expiration time has passed, or once a flush covers it:
//! memcached 1.6's `settings.oldest_live` (items last accessed at or before it are
//! flushed) and `settings.oldest_cas` (with CAS on, items stored before the flush's CAS
//! unique are flushed too). Dead items are unlinked when a lookup meets them or when the
//! crawl (`maintenance.rs`) passes over them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::clock::Clock;
use crate::item::{widen_access, ItemRef};

/// Why a lookup found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dead {
    Expired,
    Flushed,
}

/// Where the incremental crawl is.
#[derive(Debug, Default)]
pub(super) struct CrawlState {
    /// The next shard to crawl.
    pub(super) next: usize,
    /// Per class, the oldest access time seen in this pass (`u32::MAX`: none yet).
    pub(super) oldest: Vec<u32>,
}

/// The clock, the CAS counter, the flush horizon and the crawl's position.
#[derive(Debug)]
pub(super) struct Expiry {
    clock: Clock,
    /// CAS on (`-C` turns it off: every CAS unique is 0).
    cas_enabled: bool,
    cas: AtomicU64,
    /// memcached's `settings.oldest_live` (0 = no flush).
    oldest_live: AtomicU32,
    /// memcached's `settings.oldest_cas` (0 = none).
    oldest_cas: AtomicU64,
    crawl: Mutex<CrawlState>,
}

impl Expiry {
    /// A clock reading its start value, no flush, CAS uniques from 1 (or all 0).
    pub(super) fn new(cas_enabled: bool) -> Self {
        Expiry {
            clock: Clock::new(),
            cas_enabled,
            cas: AtomicU64::new(0),
            oldest_live: AtomicU32::new(0),
            oldest_cas: AtomicU64::new(0),
            crawl: Mutex::new(CrawlState::default()),
        }
    }

    /// The server clock.
    /// Continues a saved state: the clock, the CAS counter, the flush horizon.
    pub(super) fn resume(&mut self, clock: Clock, cas: u64, oldest_live: u32, oldest_cas: u64) {
        self.clock = clock;
        *self.cas.get_mut() = cas;
        *self.oldest_live.get_mut() = oldest_live;
        *self.oldest_cas.get_mut() = oldest_cas;
    }

    /// Raises the CAS counter to at least `cas`.
    pub(super) fn cas_at_least(&self, cas: u64) {
        self.cas.fetch_max(cas, Ordering::Relaxed);
    }

    /// What a save keeps: the CAS counter and the flush horizon.
    pub(super) fn saved(&self) -> (u64, u32, u64) {
        (
            self.cas.load(Ordering::Relaxed),
            self.oldest_live.load(Ordering::Relaxed),
            self.oldest_cas.load(Ordering::Relaxed),
        )
    }

    #[inline]
    pub(super) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A fresh CAS unique (0 with `-C`).
    #[inline]
    pub(super) fn next_cas(&self) -> u64 {
        if self.cas_enabled {
            self.cas.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        }
    }

    /// Whether a live item has expired or been flushed at `now`.
    #[inline]
    pub(super) fn is_dead(&self, it: &ItemRef<'_>, now: u32) -> Option<Dead> {
        let exp = it.exptime();
        if exp != 0 && exp <= now {
            return Some(Dead::Expired);
        }
        let ol = self.oldest_live.load(Ordering::Relaxed);
        if ol == 0 || ol > now {
            return None;
        }
        let oc = self.oldest_cas.load(Ordering::Relaxed);
        let cas = it.cas();
        if widen_access(now, it.access_low()) <= ol || (oc != 0 && cas != 0 && cas < oc) {
            return Some(Dead::Flushed);
        }
        None
    }

    /// Moves the flush horizon for `flush_all [delay]` at `now`, with memcached 1.6's
    /// semantics (see `Store::flush_all`). Returns whether
    /// the flush takes effect now (the caller then reclaims the flushed items).
    pub(super) fn flush(&self, delay: i64, now: u32) -> bool {
        let new_oldest = if delay > 0 {
            self.clock.realtime_at(delay, now)
        } else {
            now
        };
        if self.cas_enabled {
            let ol = new_oldest.saturating_sub(1);
            self.oldest_live.store(ol, Ordering::Relaxed);
            if ol <= now {
                self.oldest_cas.store(self.next_cas(), Ordering::Relaxed);
            }
        } else {
            self.oldest_live.store(new_oldest, Ordering::Relaxed);
        }
        self.oldest_live.load(Ordering::Relaxed) <= now
    }

    /// The crawl's position, locked.
    pub(super) fn crawl(&self) -> MutexGuard<'_, CrawlState> {
        self.crawl.lock().unwrap_or_else(|e| e.into_inner())
    }
}
