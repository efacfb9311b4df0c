//! [`Shared`]: the state of one allocator that every thread's magazines and the background
//! reaper point at (the engine, the depots, the magazine settings and the per-class counts of
//! rounds held by threads), and the magazine slow paths that work on it: kmem's exchanges with
//! the depot, batch fills from the engine, reclaim under memory pressure, and flushing a
//! thread's magazines.

use std::ptr::NonNull;

use super::config::MagazineConfig;
use super::depot::Depot;
use super::magazine::{ClassCache, Magazine};
use crate::engine::size_class::ClassId;
use crate::engine::SlabEngine;
use crate::error::Error;
use crate::lazy::LazyTable;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// What every thread's magazines for one allocator point at: the engine and the depots.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) id: u64,
    pub(super) engine: SlabEngine,
    /// Per class, created on first use (spare classes may never be).
    pub(super) depots: LazyTable<Depot>,
    pub(super) magazines: MagazineConfig,
    /// Per class: rounds in threads' magazines, as of each thread's last slow path.
    pub(super) thread_rounds: Box<[AtomicUsize]>,
    /// Threads that hold magazines of this allocator (entries not yet flushed at exit).
    pub(super) thread_caches: AtomicUsize,
}

impl Shared {
    #[inline]
    pub(super) fn depot(&self, class: ClassId) -> &Depot {
        self.depots.get_with(class.index(), || {
            Depot::new(
                self.magazines
                    .params(self.engine.classes().chunk_size(class)),
            )
        })
    }

    /// Publishes a thread's count of held rounds for `class` (slow paths only).
    pub(super) fn publish(&self, class: ClassId, cc: &mut ClassCache) {
        let held = cc.held();
        if held != cc.published {
            self.thread_rounds[class.index()]
                .fetch_add(held.wrapping_sub(cc.published), Ordering::Relaxed);
            cc.published = held;
        }
    }

    /// Gives a magazine's rounds back to the engine and empties it.
    pub(super) fn free_rounds(&self, class: ClassId, m: &mut Magazine) {
        if !m.is_empty() {
            // SAFETY: a magazine's rounds are free chunks of its class from this engine, each
            // held exactly once (a chunk is in one magazine or handed out, never both).
            unsafe { self.engine.free_batch(class, m.rounds()) };
            m.clear();
        }
    }

    /// Allocation when the loaded magazine is empty: kmem `kmem_cache_alloc`'s slow part,
    /// then a batch fill from the engine.
    #[cold]
    pub(super) fn alloc_slow(
        &self,
        caches: &mut [ClassCache],
        class: ClassId,
    ) -> Result<NonNull<u8>, Error> {
        let depot = self.depot(class);
        let size = depot.magazine_size();
        if size == 0 {
            return self.alloc_direct(class);
        }
        let cc = &mut caches[class.index()];
        // 1. The previous magazine is full: swap.
        if let Some(p) = cc.pop_after_swap() {
            self.publish(class, cc);
            return Ok(p);
        }
        // 2. Both spent: a full magazine from the depot for our empty previous one.
        let prev = std::mem::replace(&mut cc.previous, Magazine::none());
        match depot.exchange_for_full(prev) {
            Ok(full) => {
                cc.previous = std::mem::replace(&mut cc.loaded, full);
                let p = cc.loaded.pop().expect("a full magazine has rounds");
                self.publish(class, cc);
                return Ok(p);
            }
            Err(prev) => cc.previous = prev,
        }
        // 3. The depot has none: fill the loaded magazine from the engine in one batch.
        if cc.loaded.is_none() || cc.loaded.cap() != size {
            cc.loaded = depot
                .take_empty()
                .unwrap_or_else(|| Magazine::with_capacity(size));
        }
        let want = cc.loaded.cap() - cc.loaded.len();
        let filled = match self.engine.alloc_batch(class, cc.loaded.rounds_mut(), want) {
            Ok(n) => Ok(n),
            Err(Error::LimitReached { .. }) => {
                self.reclaim(caches);
                let cc = &mut caches[class.index()];
                self.engine.alloc_batch(class, cc.loaded.rounds_mut(), want)
            }
            Err(e) => Err(e),
        };
        let cc = &mut caches[class.index()];
        let result = filled.map(|_| cc.loaded.pop().expect("alloc_batch returned at least one"));
        self.publish(class, cc);
        result
    }

    /// Free when the loaded magazine is full: kmem `kmem_cache_free`'s slow part.
    #[cold]
    pub(super) fn free_slow(&self, cc: &mut ClassCache, class: ClassId, chunk: NonNull<u8>) {
        let depot = self.depot(class);
        let size = depot.magazine_size();
        if size == 0 {
            // SAFETY: forwarded from the caller of `dealloc_class`.
            unsafe { self.engine.free_batch(class, &[chunk]) };
            return;
        }
        // 1. The previous magazine is empty: swap.
        let chunk = match cc.push_after_swap(chunk) {
            Ok(()) => return self.publish(class, cc),
            Err(c) => c,
        };
        if cc.previous.is_none() {
            // 2a. No previous magazine yet: the loaded one (full or placeholder) becomes it
            // and an empty one is loaded.
            let empty = depot
                .take_empty()
                .unwrap_or_else(|| Magazine::with_capacity(size));
            cc.previous = std::mem::replace(&mut cc.loaded, empty);
        } else {
            // 2b. Both full: the previous one goes to the depot for an empty one.
            let prev = std::mem::replace(&mut cc.previous, Magazine::none());
            match depot.exchange_for_empty(prev) {
                Ok(empty) => {
                    let empty = empty.unwrap_or_else(|| Magazine::with_capacity(size));
                    cc.previous = std::mem::replace(&mut cc.loaded, empty);
                }
                Err(mut prev) => {
                    // The depot is at its bound: the rounds go back to the engine and the
                    // magazine is reused empty.
                    self.free_rounds(class, &mut prev);
                    cc.previous = std::mem::replace(&mut cc.loaded, prev);
                }
            }
        }
        if cc.loaded.is_full() {
            // A stale or degenerate magazine: give up caching this chunk.
            // SAFETY: forwarded from the caller of `dealloc_class`.
            unsafe { self.engine.free_batch(class, &[chunk]) };
        } else {
            cc.loaded.push(chunk);
        }
        self.publish(class, cc);
    }

    /// Allocation without magazines (disabled class, or no thread cache available).
    pub(super) fn alloc_direct(&self, class: ClassId) -> Result<NonNull<u8>, Error> {
        match self.engine.alloc(class) {
            Err(Error::LimitReached { .. }) => {
                self.reclaim(&mut []);
                self.engine.alloc(class)
            }
            r => r,
        }
    }

    /// Under memory pressure: every depot's full magazines and the calling thread's own
    /// magazines (`own`) give their chunks back to the engine, so slabs can become empty and
    /// serve the class that ran out.
    pub(super) fn reclaim(&self, own: &mut [ClassCache]) {
        for (i, cc) in own.iter_mut().enumerate() {
            let class = ClassId(i as u16);
            self.free_rounds(class, &mut cc.loaded);
            self.free_rounds(class, &mut cc.previous);
            self.publish(class, cc);
        }
        for (i, d) in self.depots.iter() {
            for mut m in d.drain() {
                self.free_rounds(ClassId(i as u16), &mut m);
            }
        }
    }

    /// Puts a thread's magazines back into the depots (beyond a depot's bound, their chunks
    /// back into the engine).
    pub(super) fn flush(&self, caches: &mut [ClassCache]) {
        for (i, cc) in caches.iter_mut().enumerate() {
            let class = ClassId(i as u16);
            if cc.loaded.is_none() && cc.previous.is_none() && cc.published == 0 {
                continue; // never used: no depot to make
            }
            for m in [
                std::mem::replace(&mut cc.loaded, Magazine::none()),
                std::mem::replace(&mut cc.previous, Magazine::none()),
            ] {
                if let Err(mut m) = self.depot(class).put(m) {
                    self.free_rounds(class, &mut m);
                }
            }
            self.publish(class, cc);
        }
    }
}
