//! The depot: per class, the full and empty magazines that threads exchange theirs for when
//! both of theirs are spent (Bonwick & Adams 2001, section 3.3; illumos `kmem_depot_alloc`,
//! `kmem_depot_free`, `kmem_depot_ws_update`, `kmem_depot_ws_reap`).
//!
//! # Why a lock and not a lock-free stack
//!
//! A thread visits the depot once per magazine's worth of allocations or frees (tens to
//! hundreds of operations), so the depot sees a small fraction of the traffic and a short
//! critical section (one `Vec` push and pop) is cheap. A lock-free Treiber stack of magazines
//! would need memory reclamation (the magazine popped by one thread may be freed by another
//! while a third still reads its link), i.e. epochs and their deferred frees on every exchange,
//! and could not keep the working-set counters and the byte bound consistent with the lists in
//! one step. kmem makes the same choice. Contention is measured instead: a failed `try_lock` is
//! a contention event, and enough of them grow the class's magazine size so that threads come
//! back less often.

use super::magazine::Magazine;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Mutex, MutexGuard};

/// Settings of one class's depot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DepotParams {
    /// Initial magazine size in rounds (0 disables magazines for the class).
    pub(crate) initial_rounds: usize,
    /// Largest magazine size the class can grow to.
    pub(crate) max_rounds: usize,
    /// Most rounds the depot's full magazines may hold together; beyond, frees go to the
    /// engine.
    pub(crate) max_depot_rounds: usize,
    /// Contention events (since the last resize or reap) that grow the magazine size.
    pub(crate) contention_threshold: u64,
}

#[derive(Debug, Default)]
struct Inner {
    full: Vec<Magazine>,
    empty: Vec<Magazine>,
    /// Rounds in `full`.
    full_rounds: usize,
    /// Fewest full / empty magazines seen in the depot since the last reap.
    min_full: usize,
    min_empty: usize,
    /// Full / empty magazines threads took since the last reap (demand).
    taken_full: usize,
    taken_empty: usize,
    /// Contention events since the last resize or reap, and in total.
    contended: u64,
    contention_total: u64,
    /// Magazine exchanges (lock acquisitions) in total.
    exchanges: u64,
    /// Times the magazine size grew.
    resizes: u64,
}

impl Inner {
    /// Pops empty magazines until one of capacity `cur` turns up. Those of another size
    /// (left from before a resize) are returned separately, for the caller to drop once
    /// the lock is released.
    fn pop_empty(&mut self, cur: usize) -> (Option<Magazine>, Vec<Magazine>) {
        let mut stale = Vec::new();
        let mut found = None;
        while let Some(m) = self.empty.pop() {
            self.taken_empty += 1;
            if m.cap() == cur {
                found = Some(m);
                break;
            }
            stale.push(m);
        }
        self.min_empty = self.min_empty.min(self.empty.len());
        (found, stale)
    }
}

/// What a reap takes out of a depot: magazines the working set did not need.
#[derive(Debug, Default)]
pub(crate) struct DepotReap {
    /// Full magazines whose rounds go back to the engine.
    pub(crate) full: Vec<Magazine>,
    /// Empty magazines to free.
    pub(crate) empty: usize,
}

/// A snapshot of one depot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DepotStats {
    pub(crate) magazine_size: usize,
    pub(crate) full: usize,
    pub(crate) empty: usize,
    pub(crate) rounds: usize,
    pub(crate) contention: u64,
    pub(crate) exchanges: u64,
    pub(crate) resizes: u64,
}

/// One class's depot.
#[derive(Debug)]
pub(crate) struct Depot {
    inner: Mutex<Inner>,
    /// The class's current magazine size, read without the lock when a thread makes a new
    /// magazine.
    mag_size: AtomicUsize,
    params: DepotParams,
}

impl Depot {
    /// An empty depot.
    pub(crate) fn new(params: DepotParams) -> Self {
        Depot {
            inner: Mutex::new(Inner::default()),
            mag_size: AtomicUsize::new(params.initial_rounds.min(params.max_rounds)),
            params,
        }
    }

    /// The magazine size new magazines of this class get (0: magazines disabled).
    #[inline]
    pub(crate) fn magazine_size(&self) -> usize {
        self.mag_size.load(Ordering::Relaxed)
    }

    /// Locks, counting a contention event if the lock was busy; enough of them grow the
    /// magazine size (kmem's `kmem_cache_magazine_resize`, done at once here instead of at the
    /// next periodic update).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut g = match self.inner.try_lock() {
            Some(g) => g,
            None => {
                let mut g = self.inner.lock();
                self.note_contention(&mut g);
                g
            }
        };
        g.exchanges += 1;
        g
    }

    /// Records a contention event (the caller holds the lock, `g`); every
    /// `contention_threshold` of them double the magazine size, up to `max_rounds`.
    fn note_contention(&self, g: &mut Inner) {
        g.contended += 1;
        g.contention_total += 1;
        if g.contended >= self.params.contention_threshold {
            g.contended = 0;
            let cur = self.mag_size.load(Ordering::Relaxed);
            let next = (cur * 2).clamp(1, self.params.max_rounds.max(cur));
            if next != cur && cur != 0 {
                self.mag_size.store(next, Ordering::Relaxed);
                g.resizes += 1;
            }
        }
    }

    /// kmem `magazine_alloc` with both magazines spent: takes a full magazine and stores the
    /// thread's empty one (`give`, possibly the placeholder) in exchange. Returns `give` back
    /// if the depot has no full magazine.
    pub(crate) fn exchange_for_full(&self, give: Magazine) -> Result<Magazine, Magazine> {
        let cur = self.magazine_size();
        let mut g = self.lock();
        let Some(full) = g.full.pop() else {
            return Err(give);
        };
        g.full_rounds -= full.len();
        g.taken_full += 1;
        g.min_full = g.min_full.min(g.full.len());
        let stale = if !give.is_none() && give.cap() == cur {
            debug_assert!(give.is_empty());
            g.empty.push(give);
            None
        } else {
            Some(give)
        };
        drop(g);
        drop(stale);
        Ok(full)
    }

    /// kmem `magazine_free` with both magazines spent: stores the thread's full magazine
    /// (`give`) and returns an empty one of the current size if the depot has one
    /// (`Ok(None)`: accepted, but the caller makes a new empty magazine). Refuses (`Err`) when
    /// the depot would exceed its bound; the caller then returns the rounds to the engine.
    pub(crate) fn exchange_for_empty(&self, give: Magazine) -> Result<Option<Magazine>, Magazine> {
        let cur = self.magazine_size();
        let mut g = self.lock();
        if g.full_rounds + give.len() > self.params.max_depot_rounds {
            return Err(give);
        }
        g.full_rounds += give.len();
        g.full.push(give);
        let (found, stale) = g.pop_empty(cur);
        drop(g);
        drop(stale);
        Ok(found)
    }

    /// An empty magazine of the current size, if the depot has one (to fill from the engine).
    pub(crate) fn take_empty(&self) -> Option<Magazine> {
        let cur = self.magazine_size();
        let mut g = self.lock();
        let (found, stale) = g.pop_empty(cur);
        drop(g);
        drop(stale);
        found
    }

    /// Stores a magazine a thread gives up (thread exit or flush): full-ish ones go to the
    /// full list within the bound (`Err` gives it back beyond it), empty ones to the empty
    /// list. Partially filled magazines are stored as full ones (they hold rounds).
    pub(crate) fn put(&self, m: Magazine) -> Result<(), Magazine> {
        if m.is_none() {
            return Ok(());
        }
        let cur = self.magazine_size();
        let mut g = self.lock();
        if m.is_empty() {
            if m.cap() == cur {
                g.empty.push(m);
                return Ok(());
            }
            drop(g);
            drop(m);
            return Ok(());
        }
        if g.full_rounds + m.len() > self.params.max_depot_rounds {
            return Err(m);
        }
        g.full_rounds += m.len();
        g.full.push(m);
        Ok(())
    }

    /// Closes a working-set interval (kmem `kmem_depot_ws_update` + `kmem_depot_ws_reap`):
    /// takes out the full magazines the interval showed are not needed and frees that many
    /// empty ones. Not needed = at least the fewest the depot held at any time during the
    /// interval (unused over all of it, kmem's rule), and at least those beyond the interval's
    /// demand (the count threads took out), so a one-off burst of frees nobody reallocates
    /// goes back at the first reap rather than the second.
    pub(crate) fn reap(&self) -> DepotReap {
        let mut g = self.lock();
        let spare_full = g.full.len().saturating_sub(g.taken_full);
        let n_full = g.min_full.max(spare_full).min(g.full.len());
        let spare_empty = g.empty.len().saturating_sub(g.taken_empty);
        let n_empty = g.min_empty.max(spare_empty).min(g.empty.len());
        // The oldest magazines are at the bottom of the stacks.
        let full: Vec<Magazine> = g.full.drain(..n_full).collect();
        g.full_rounds -= full.iter().map(Magazine::len).sum::<usize>();
        let empty: Vec<Magazine> = g.empty.drain(..n_empty).collect();
        g.min_full = g.full.len();
        g.min_empty = g.empty.len();
        g.taken_full = 0;
        g.taken_empty = 0;
        g.contended = 0;
        drop(g);
        let n = empty.len();
        drop(empty);
        DepotReap { full, empty: n }
    }

    /// Takes every full magazine out (memory pressure, or the allocator shutting down) and
    /// frees the empty ones.
    pub(crate) fn drain(&self) -> Vec<Magazine> {
        let mut g = self.lock();
        let full = std::mem::take(&mut g.full);
        let empty = std::mem::take(&mut g.empty);
        g.full_rounds = 0;
        g.min_full = 0;
        g.min_empty = 0;
        drop(g);
        drop(empty);
        full
    }

    /// A snapshot of the depot's figures.
    pub(crate) fn stats(&self) -> DepotStats {
        let g = self.inner.lock();
        DepotStats {
            magazine_size: self.magazine_size(),
            full: g.full.len(),
            empty: g.empty.len(),
            rounds: g.full_rounds,
            contention: g.contention_total,
            exchanges: g.exchanges,
            resizes: g.resizes,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::ptr::NonNull;

    fn params() -> DepotParams {
        DepotParams {
            initial_rounds: 4,
            max_rounds: 16,
            max_depot_rounds: 10,
            contention_threshold: 2,
        }
    }

    /// Distinct pointers (never dereferenced), derived from a real allocation so they carry
    /// provenance (the tests run under Miri with strict provenance).
    static BUF: [u8; 1 << 16] = [0; 1 << 16];

    fn full_mag(n: usize, base: usize) -> Magazine {
        let mut m = Magazine::with_capacity(4);
        for i in 0..n {
            m.push(NonNull::from(&BUF[(base + i * 64) % BUF.len()]).cast());
        }
        m
    }

    #[test]
    fn exchanges_follow_kmem() {
        let d = Depot::new(params());
        // No full magazine yet: the empty one comes back.
        let e = d.exchange_for_full(Magazine::with_capacity(4)).unwrap_err();
        // A full one goes in; no empty one to give: Ok(None).
        assert!(d.exchange_for_empty(full_mag(4, 4096)).unwrap().is_none());
        // The thread's empty one is kept in exchange for the full one.
        let f = d.exchange_for_full(e).unwrap();
        assert_eq!(f.len(), 4);
        let s = d.stats();
        assert_eq!((s.full, s.empty, s.rounds), (0, 1, 0));
        assert!(d.take_empty().is_some());
        assert!(d.take_empty().is_none());
    }

    #[test]
    fn bound_refuses_full_magazines() {
        let d = Depot::new(params());
        assert!(d.exchange_for_empty(full_mag(4, 4096)).is_ok());
        assert!(d.exchange_for_empty(full_mag(4, 8192)).is_ok());
        let back = d.exchange_for_empty(full_mag(4, 16384)).unwrap_err();
        assert_eq!(back.len(), 4);
        assert!(d.put(full_mag(3, 32768)).is_err());
        assert!(d.put(full_mag(2, 32768)).is_ok());
        assert_eq!(d.stats().rounds, 10);
        assert_eq!(d.drain().len(), 3);
        assert_eq!(d.stats().rounds, 0);
    }

    #[test]
    fn contention_grows_the_magazine_size_up_to_the_cap() {
        let d = Depot::new(params());
        assert_eq!(d.magazine_size(), 4);
        let contend = |n: usize| {
            let mut g = d.inner.lock();
            for _ in 0..n {
                d.note_contention(&mut g);
            }
        };
        contend(1);
        assert_eq!(d.magazine_size(), 4, "below the threshold");
        contend(1);
        assert_eq!(d.magazine_size(), 8);
        contend(2);
        assert_eq!(d.magazine_size(), 16);
        contend(10);
        assert_eq!(d.magazine_size(), 16, "capped at max_rounds");
        let s = d.stats();
        assert_eq!((s.contention, s.resizes), (14, 2));
        // Magazines of the old size are not handed out any more.
        d.put(Magazine::with_capacity(4)).unwrap();
        assert!(d.take_empty().is_none());
        // Disabled classes stay disabled.
        let off = Depot::new(DepotParams {
            initial_rounds: 0,
            ..params()
        });
        let mut g = off.inner.lock();
        for _ in 0..10 {
            off.note_contention(&mut g);
        }
        drop(g);
        assert_eq!(off.magazine_size(), 0);
    }

    #[test]
    fn reap_frees_what_the_interval_did_not_use() {
        let d = Depot::new(params());
        d.put(full_mag(2, 4096)).unwrap();
        d.put(full_mag(2, 8192)).unwrap();
        // Nobody took a full magazine this interval: both go.
        let r = d.reap();
        assert_eq!(r.full.len(), 2);
        // Next interval: two go in, one is taken; the minimum level was 0 but demand was 1,
        // so one of the two (the spare beyond demand) goes.
        d.put(full_mag(2, 4096)).unwrap();
        d.put(full_mag(2, 8192)).unwrap();
        let _taken = d.exchange_for_full(Magazine::none()).unwrap();
        d.put(full_mag(2, 12288)).unwrap();
        let r = d.reap();
        assert_eq!(r.full.len(), 1);
        assert_eq!(d.stats().full, 1);
        // An interval in which the remaining one was never taken: it goes too.
        let r = d.reap();
        assert_eq!(r.full.len(), 1);
        assert_eq!(d.stats().full, 0);
    }
}
