//! [`SlabAllocator`]: the slab engine behind per-thread magazines and per-class depots.
//!
//! ```text
//!   thread A                    thread B                     any thread
//!   per class:                  per class:
//!   [loaded][previous]          [loaded][previous]           alloc/free: pop/push on
//!        |  both spent               |                       `loaded`, swap with `previous`
//!        v                           v                       (thread-local, no atomics)
//!   +-------------------- depot (per class, one lock) -----------------+
//!   |  full magazines: [m][m][m]      empty magazines: [m][m]          |  bounded in bytes;
//!   +------------------------------------------------------------------+  reaped by working set
//!        |  depot has no full magazine: fill one with `alloc_batch`
//!        |  depot over its bound: `free_batch` the rounds
//!        v
//!   SlabEngine (per-class slab lists, pool of empty slabs, batched munmap)
//! ```
//!
//! Each allocator instance has an id; a thread's magazines for it live in a thread-local list
//! keyed by that id (the most recently used instance first), created on first use. When the
//! thread exits, the list's destructor puts every magazine back into its allocator's depot (or,
//! beyond the depot's bound, the chunks back into the engine), so no memory is stranded in the
//! caches of threads that are gone.
//!
//! [`SlabAllocator`] (this file) holds the fast paths; the rest is a file per part:
//!
//! | file              | what                                                                   |
//! |-------------------|------------------------------------------------------------------------|
//! | `config.rs`       | [`MagazineConfig`] and the depot settings it makes per class           |
//! | `magazine.rs`     | a magazine (a bounded stack of free chunks); a thread's pair per class |
//! | `depot.rs`        | per class, the full and empty magazines threads exchange theirs for    |
//! | `shared.rs`       | the state every thread and the reaper point at; the slow paths         |
//! | `thread_cache.rs` | a thread's magazines for every allocator; the thread-local; exit flush |
//! | [`reap`]          | reaping by working set, [`ReapReport`], the background reaper          |
//! | `stats.rs`        | [`MagazineStats`] and [`AllocatorStats`]                               |
//!
//! `shared.rs` uses neither `thread_cache.rs` nor `reap.rs`; both of those use it.
//!
//! # Limits
//!
//! * A thread that is alive but idle keeps its two magazines per class (at most
//!   `2 * max_magazine_bytes` per class it used): the fast path has no atomics, so no other
//!   thread can take them. They go back when the thread allocates or frees again past a
//!   magazine boundary, calls [`SlabAllocator::flush_thread_cache`] or
//!   [`SlabAllocator::reap`], or exits. [`MagazineStats::thread_chunks`] shows what threads
//!   held at their last magazine exchange.
//! * A reap concurrent with an allocation at the memory limit can make that allocation fail
//!   with `LimitReached` while the reap is still unmapping (the engine counts slabs being
//!   released against the limit until `munmap` returns).
//!
//! # Example
//!
//! ```
//! use slab_core::engine::Config;
//! use slab_core::magazine::{MagazineConfig, SlabAllocator};
//! use slab_core::SizeClasses;
//!
//! let a = SlabAllocator::with_magazines(
//!     Config::new(SizeClasses::memcached_default()).memory_limit(64 << 20),
//!     MagazineConfig::default().initial_rounds(16),
//! )?;
//! let p = a.alloc(100)?; // the 120-byte class
//! // SAFETY: `p` came from `a.alloc(100)` and is not used afterwards.
//! unsafe { a.dealloc(p, 100) };
//! a.flush_thread_cache();
//! assert_eq!(a.stats().live_chunks(), 0);
//! # Ok::<(), slab_core::Error>(())
//! ```

mod config;
mod depot;
// The layer is named after its unit; this file is the unit itself.
#[allow(clippy::module_inception)]
mod magazine;
pub mod reap;
mod shared;
mod stats;
mod thread_cache;

pub use self::config::MagazineConfig;
pub use self::reap::ReapReport;
pub use self::stats::{AllocatorStats, MagazineStats};
pub(crate) use self::thread_cache::{is_busy, BusyGuard};

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::Arc;
#[cfg(not(loom))]
use std::time::Duration;

use self::depot::Depot;
use self::magazine::ClassCache;
use self::shared::Shared;
use self::thread_cache::{ThreadCaches, CACHES};
use crate::engine::release::ReleaseReport;
use crate::engine::size_class::{ClassId, SizeClasses};
use crate::engine::{Config, SlabEngine};
use crate::error::Error;
use crate::lazy::LazyTable;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// Sizes up to this many bytes find their class in [`SlabAllocator`]'s own lookup table.
const LOOKUP_MAX: usize = 4096;
const LOOKUP_LEN: usize = (LOOKUP_MAX >> 3) + 1;

static NEXT_ID: StdAtomicU64 = StdAtomicU64::new(1);

// ---------------------------------------------------------------------------------------------
// The public allocator.
// ---------------------------------------------------------------------------------------------

/// A slab allocator with per-thread magazines: see the [module docs](self).
///
/// `Send + Sync`; share it by reference or in an `Arc`. Every thread that allocates or frees
/// through it gets its own magazines; they go back to the depot when the thread exits or calls
/// [`flush_thread_cache`](Self::flush_thread_cache).
pub struct SlabAllocator {
    /// `shared.id`, kept here so the fast path need not follow the `Arc`.
    id: u64,
    /// `lookup[(size + 7) >> 3]` is the class for `size <= LOOKUP_MAX` when every chunk size
    /// is a multiple of 8; an entry of `u16::MAX` (no class fits, or a table with other sizes)
    /// defers to `SizeClasses::class_for`.
    lookup: Box<[u16; LOOKUP_LEN]>,
    shared: Arc<Shared>,
    #[cfg(not(loom))]
    reaper: std::sync::Mutex<Option<reap::Reaper>>,
}

impl fmt::Debug for SlabAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabAllocator")
            .field("id", &self.shared.id)
            .field("engine", &self.shared.engine)
            .finish_non_exhaustive()
    }
}

impl SlabAllocator {
    /// An allocator over a new engine, with the default [`MagazineConfig`].
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_magazines(config, MagazineConfig::default())
    }

    /// An allocator over a new engine, with the given magazine settings.
    pub fn with_magazines(config: Config, magazines: MagazineConfig) -> Result<Self, Error> {
        magazines.validate()?;
        #[cfg(not(loom))]
        let reap_interval = magazines.reap_interval;
        let engine = SlabEngine::new(config)?;
        let depots = LazyTable::new(engine.classes().len());
        let thread_rounds = (0..engine.classes().len())
            .map(|_| AtomicUsize::new(0))
            .collect();
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            engine,
            depots,
            magazines,
            thread_rounds,
            thread_caches: AtomicUsize::new(0),
        });
        let classes = shared.engine.classes();
        let mut lookup = Box::new([u16::MAX; LOOKUP_LEN]);
        if classes.sizes().iter().all(|s| s % 8 == 0) {
            for (i, slot) in lookup.iter_mut().enumerate() {
                *slot = classes.class_for(i << 3).map_or(u16::MAX, |c| c.0);
            }
        }
        let a = SlabAllocator {
            id: shared.id,
            lookup,
            shared,
            #[cfg(not(loom))]
            reaper: std::sync::Mutex::new(None),
        };
        #[cfg(not(loom))]
        if let Some(interval) = reap_interval {
            a.start_reaper(interval)?;
        }
        Ok(a)
    }

    /// Runs `f` on this thread's magazines, creating them if needed, or returns `None` when
    /// they are not available (the thread is exiting, or an allocation is already in progress
    /// on it). The slow paths come through here.
    /// `f` gets at least `need` caches.
    fn with_caches<R>(&self, need: usize, f: impl FnOnce(&mut [ClassCache]) -> R) -> Option<R> {
        CACHES
            .try_with(|c| {
                let mut c = c.try_borrow_mut().ok()?;
                let _busy = BusyGuard::enter();
                let e = c.find_or_insert(&self.shared, need)?;
                Some(f(e.classes()))
            })
            .ok()
            .flatten()
    }

    /// Runs the fast path `f` on this thread's caches without writing the `RefCell`'s
    /// borrow flag: it only checks that no slow path on this thread holds the caches.
    ///
    /// `f` must be leaf code (it is: magazine pushes and pops that never allocate or call
    /// out), so nothing can borrow the cell while the reference it gets is alive.
    #[inline(always)]
    fn fast<R>(&self, f: impl FnOnce(&mut ThreadCaches) -> Option<R>) -> Option<R> {
        CACHES
            .try_with(|c| {
                // SAFETY: the caches are only ever borrowed mutably (never shared), so
                // `try_borrow_unguarded` succeeding means no borrow of them is active on this
                // thread (the cell is thread-local, so on no thread). The reference below is
                // used only inside `f`, which calls nothing that could borrow the cell, and it
                // ends before this closure returns.
                unsafe { c.try_borrow_unguarded().ok()? };
                // SAFETY: as above: no other reference to the contents exists while this one
                // lives.
                let caches: &mut ThreadCaches = unsafe { &mut *c.as_ptr() };
                f(caches)
            })
            .ok()
            .flatten()
    }

    /// The allocation fast path: a round from this thread's loaded magazine of `class`, if
    /// this allocator is the one the thread used last and the magazine has one.
    #[inline(always)]
    fn try_pop(&self, class: ClassId) -> Option<NonNull<u8>> {
        self.fast(|c| c.current(self.id, class)?.pop())
    }

    /// The free fast path: a push into this thread's loaded magazine of `class`; gives the
    /// chunk back if that is not possible right away.
    #[inline(always)]
    fn try_push(&self, class: ClassId, ptr: NonNull<u8>) -> Result<(), NonNull<u8>> {
        match self.fast(|c| c.current(self.id, class)?.push(ptr).ok()) {
            Some(()) => Ok(()),
            None => Err(ptr),
        }
    }

    /// Allocates a chunk of the smallest class that holds `size` bytes. Fails with
    /// [`Error::InvalidConfig`] if `size` exceeds the largest class, and with
    /// [`Error::LimitReached`] if the memory limit is reached even after every depot and this
    /// thread's magazines gave their chunks back (the caller evicts and retries).
    ///
    /// The chunk is aligned to the largest power of two dividing its chunk size (at least the
    /// table's alignment); its contents are unspecified.
    #[inline]
    pub fn alloc(&self, size: usize) -> Result<NonNull<u8>, Error> {
        match self.class_for(size) {
            Some(class) => self.alloc_class(class),
            None => Err(self.too_large(size)),
        }
    }

    #[cold]
    #[inline(never)]
    fn too_large(&self, size: usize) -> Error {
        Error::InvalidConfig(format!(
            "size {size} exceeds the largest class ({} bytes)",
            self.shared.engine.classes().max_chunk()
        ))
    }

    /// Frees a chunk from [`alloc`](Self::alloc).
    ///
    /// # Safety
    /// `ptr` must come from `self.alloc(size)` (or `alloc_class` of the class `size` maps to),
    /// with the same `size` class, must not have been freed since, and must not be used
    /// afterwards. Any thread may free it.
    #[inline]
    pub unsafe fn dealloc(&self, ptr: NonNull<u8>, size: usize) {
        let class = self
            .class_for(size)
            .expect("dealloc with a size no class holds");
        // SAFETY: forwarded from the caller.
        unsafe { self.dealloc_class(ptr, class) }
    }

    /// Allocates a chunk of `class` (panics if `class` is out of range). See
    /// [`alloc`](Self::alloc) for the errors.
    #[inline]
    pub fn alloc_class(&self, class: ClassId) -> Result<NonNull<u8>, Error> {
        match self.try_pop(class) {
            Some(p) => Ok(p),
            None => self.alloc_class_slow(class),
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_class_slow(&self, class: ClassId) -> Result<NonNull<u8>, Error> {
        let shared = &*self.shared;
        assert!(class.index() < shared.depots.len(), "class out of range");
        let r = self.with_caches(class.index() + 1, |caches| {
            if let Some(p) = caches[class.index()].pop() {
                return Ok(p);
            }
            shared.alloc_slow(caches, class)
        });
        match r {
            Some(r) => r,
            None => {
                let _busy = BusyGuard::enter();
                shared.alloc_direct(class)
            }
        }
    }

    /// Frees a chunk of `class`.
    ///
    /// # Safety
    /// `ptr` must come from an allocation of `class` from this allocator, must not have been
    /// freed since, and must not be used afterwards. Any thread may free it.
    #[inline]
    pub unsafe fn dealloc_class(&self, ptr: NonNull<u8>, class: ClassId) {
        debug_assert_eq!(self.shared.engine.class_of(ptr.as_ptr()), Some(class));
        if let Err(ptr) = self.try_push(class, ptr) {
            // SAFETY: forwarded from the caller.
            unsafe { self.dealloc_class_slow(ptr, class) }
        }
    }

    /// # Safety
    /// As for [`dealloc_class`](Self::dealloc_class).
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_class_slow(&self, ptr: NonNull<u8>, class: ClassId) {
        let shared = &*self.shared;
        assert!(class.index() < shared.depots.len(), "class out of range");
        let done = self.with_caches(class.index() + 1, |caches| {
            let cc = &mut caches[class.index()];
            if let Err(p) = cc.push(ptr) {
                shared.free_slow(cc, class, p);
            }
        });
        if done.is_none() {
            let _busy = BusyGuard::enter();
            // SAFETY: forwarded from the caller.
            unsafe { shared.engine.free_batch(class, &[ptr]) };
        }
    }

    /// The smallest class whose chunk holds `size` bytes (`None` above the largest class).
    #[inline]
    pub fn class_for(&self, size: usize) -> Option<ClassId> {
        if size <= LOOKUP_MAX {
            let c = self.lookup[(size + 7) >> 3];
            if c != u16::MAX {
                return Some(ClassId(c));
            }
        }
        self.shared.engine.classes().class_for(size)
    }

    /// The engine underneath.
    pub fn engine(&self) -> &SlabEngine {
        &self.shared.engine
    }

    /// The size classes.
    pub fn classes(&self) -> &SizeClasses {
        self.shared.engine.classes()
    }

    /// Reaps now: flushes this thread's magazines into the depots, gives every depot's
    /// magazines that the last interval did not need back to the engine, then runs the
    /// engine's reap (empty slabs beyond its retention target go to the OS in batched runs).
    /// See [`reap`].
    pub fn reap(&self) -> ReapReport {
        self.flush_thread_cache();
        let _busy = BusyGuard::enter();
        reap::reap_depots(&self.shared)
    }

    /// Starts (or restarts with a new interval) a background thread that reaps every
    /// `interval`. It stops when the allocator is dropped.
    #[cfg(not(loom))]
    pub fn start_reaper(&self, interval: Duration) -> Result<(), Error> {
        if interval.is_zero() {
            return Err(Error::InvalidConfig(
                "reap interval must not be zero".into(),
            ));
        }
        let r = reap::Reaper::start(Arc::downgrade(&self.shared), interval)?;
        let old = self
            .reaper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(r);
        drop(old);
        Ok(())
    }

    /// Puts this thread's magazines back into the depots (beyond a depot's bound, their
    /// chunks back into the engine). Threads do this by themselves when they exit.
    pub fn flush_thread_cache(&self) {
        let shared = &*self.shared;
        let _ = CACHES.try_with(|c| {
            let Ok(mut c) = c.try_borrow_mut() else {
                return;
            };
            if let Some(e) = c.entries.iter_mut().find(|e| e.id == shared.id) {
                let _busy = BusyGuard::enter();
                shared.flush(e.classes());
            }
        });
    }

    /// Reaps after demand fell (a flush, a mass free): like [`reap`](Self::reap), but every
    /// depot gives *all* its magazines back to the engine (not only those the last interval
    /// left unused), and the engine's retention target drops to its floor first
    /// ([`SlabEngine::demand_dropped`]), so every slab that empties goes to the OS now. Other
    /// threads' own magazines are untouched (see the module's Limits).
    pub fn shrink(&self) -> ReapReport {
        self.flush_thread_cache();
        let _busy = BusyGuard::enter();
        reap::shrink(&self.shared)
    }

    /// Gives every full magazine in the depots and this thread's own magazines back to the
    /// engine (nothing is released to the OS). A compactor does this first, so that cached
    /// free chunks do not keep the slabs it empties in use. Returns the chunks given back.
    pub fn drain_depots(&self) -> usize {
        self.flush_thread_cache();
        let _busy = BusyGuard::enter();
        let shared = &*self.shared;
        let mut n = 0;
        for (i, d) in shared.depots.iter() {
            for mut m in d.drain() {
                n += m.len();
                shared.free_rounds(ClassId(i as u16), &mut m);
            }
        }
        n
    }

    /// Gives every chunk cached in depots and in this thread's magazines back to the engine,
    /// then returns every empty slab to the OS (the engine's `release_all`).
    pub fn release_all(&self) -> ReleaseReport {
        let shared = &*self.shared;
        let _ = self.with_caches(0, |caches| {
            let _busy = BusyGuard::enter();
            shared.reclaim(caches);
        });
        let _busy = BusyGuard::enter();
        shared.reclaim(&mut []);
        shared.engine.release_all()
    }

    /// A snapshot of the engine's accounting and of the magazine layer per class.
    pub fn stats(&self) -> AllocatorStats {
        let _busy = BusyGuard::enter();
        let engine = self.shared.engine.stats();
        let classes = (0..engine.classes.len())
            .map(|i| {
                let s = self
                    .shared
                    .depots
                    .peek(i)
                    .map(Depot::stats)
                    .unwrap_or_default();
                let class = ClassId(i as u16);
                MagazineStats {
                    class,
                    chunk_size: engine.classes[i].chunk_size,
                    magazine_size: s.magazine_size,
                    depot_full: s.full,
                    depot_empty: s.empty,
                    depot_chunks: s.rounds,
                    thread_chunks: self.shared.thread_rounds[i].load(Ordering::Relaxed),
                    contention: s.contention,
                    exchanges: s.exchanges,
                    resizes: s.resizes,
                }
            })
            .collect();
        AllocatorStats {
            engine,
            classes,
            threads: self.shared.thread_caches.load(Ordering::Acquire),
        }
    }
}

impl Drop for SlabAllocator {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        drop(
            self.reaper
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        // This thread's entry would keep a weak reference only; drop it now so a long-lived
        // thread that creates many allocators does not accumulate entries.
        let shared = &*self.shared;
        let _ = CACHES.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                let _busy = BusyGuard::enter();
                if c.remove(shared.id) {
                    shared.thread_caches.fetch_sub(1, Ordering::Release);
                }
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn small() -> SlabAllocator {
        SlabAllocator::with_magazines(
            Config::new(SizeClasses::from_list(&[64, 128, 256], 8, 64 << 10).unwrap())
                .memory_limit(4 << 20),
            MagazineConfig::default().initial_rounds(4).max_rounds(8),
        )
        .unwrap()
    }

    #[test]
    fn spare_classes_cost_nothing_until_used() {
        let base = SizeClasses::from_list(&[64, 128, 256], 8, 64 << 10).unwrap();
        let spares: Vec<usize> = (2..32)
            .map(|i| i * 8)
            .filter(|s| ![64, 128, 256].contains(s))
            .collect();
        let t = base.with_spares(&spares).unwrap();
        let a = SlabAllocator::new(Config::new(t.clone()).memory_limit(8 << 20)).unwrap();
        assert_eq!(a.engine().classes_in_use(), 3);
        assert_eq!(a.stats().engine.classes.len(), 3);
        assert_eq!(a.stats().classes.len(), 3);
        // By size, only the table is chosen; a spare is taken by id.
        assert_eq!(t.class_for(200), Some(ClassId(2)));
        let c = t.class_of_size(200).unwrap();
        assert!(c.index() >= 3);
        let ptrs: Vec<_> = (0..1000).map(|_| a.alloc_class(c).unwrap()).collect();
        for p in &ptrs {
            assert_eq!(a.engine().class_of(p.as_ptr()), Some(c));
        }
        let st = a.stats();
        assert_eq!(st.engine.classes.len(), c.index() + 1);
        assert_eq!(st.engine.classes[c.index()].chunk_size, 200);
        assert!(st.engine.classes[c.index()].used_chunks >= 1000);
        // The spares between the table and `c` have no state.
        assert!(st.engine.classes[3..c.index()].iter().all(|x| x.slabs == 0));
        for p in ptrs {
            // SAFETY: allocated from `c` above, freed once.
            unsafe { a.dealloc_class(p, c) };
        }
        a.flush_thread_cache();
        assert_eq!(a.stats().live_chunks(), 0);
        // Other threads use the spare too, and give their magazines back at exit.
        let a = std::sync::Arc::new(a);
        let b = a.clone();
        std::thread::spawn(move || {
            let p = b.alloc_class(c).unwrap();
            // SAFETY: as above.
            unsafe { b.dealloc_class(p, c) };
        })
        .join()
        .unwrap();
        assert_eq!(a.stats().live_chunks(), 0);
        assert!(a.release_all().slabs > 0);
        assert_eq!(a.stats().engine.mapped_bytes, 0);
    }

    #[test]
    fn alloc_free_round_trip_counts_every_chunk() {
        let a = small();
        let ptrs: Vec<_> = (0..100).map(|_| a.alloc(64).unwrap()).collect();
        let mut sorted: Vec<usize> = ptrs.iter().map(|p| p.as_ptr() as usize).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 100, "a chunk was handed out twice");
        // Thread counts are published on slow paths; a flush makes them exact.
        a.flush_thread_cache();
        assert_eq!(a.stats().live_chunks(), 100);
        for p in ptrs {
            // SAFETY: allocated above with size 64, freed once.
            unsafe { a.dealloc(p, 64) };
        }
        a.flush_thread_cache();
        let s = a.stats();
        assert_eq!(s.live_chunks(), 0);
        assert!(s.magazine_chunks() > 0);
        // A reap with no demand in the interval gives everything back.
        let r = a.reap();
        assert!(r.chunks > 0);
        let s = a.stats();
        assert_eq!(s.engine.classes[0].used_chunks, 0);
        assert_eq!(s.magazine_chunks(), 0);
    }

    #[test]
    fn too_large_is_an_error() {
        let a = small();
        assert!(matches!(a.alloc(257), Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn limit_reclaims_cached_chunks_before_failing() {
        // 64 KiB slabs, 4 MiB limit: 64 slabs. Fill class 0, free everything into caches,
        // then class 2 must still get the memory back from the magazines.
        let a = SlabAllocator::with_magazines(
            Config::new(SizeClasses::from_list(&[64, 128, 256], 8, 64 << 10).unwrap())
                .memory_limit(4 << 20),
            MagazineConfig::default()
                .initial_rounds(64)
                .max_depot_bytes(64 << 20),
        )
        .unwrap();
        let mut v = Vec::new();
        while let Ok(p) = a.alloc(64) {
            v.push(p);
        }
        assert_eq!(v.len(), 64 * 1024);
        for p in v.drain(..) {
            // SAFETY: allocated above, freed once.
            unsafe { a.dealloc(p, 64) };
        }
        assert!(a.stats().magazine_chunks() > 0);
        let mut w = Vec::new();
        while let Ok(p) = a.alloc(256) {
            w.push(p);
        }
        // Every slab but the one empty spare the engine lets class 0 keep.
        assert!(
            w.len() >= 63 * 256,
            "class 2 got the slabs back: {}",
            w.len()
        );
        for p in w {
            // SAFETY: allocated above, freed once.
            unsafe { a.dealloc(p, 256) };
        }
    }

    #[test]
    fn thread_exit_flushes() {
        let a = small();
        std::thread::scope(|s| {
            // An explicit join waits for the thread's thread-local destructors too (the end of
            // a scope only waits for the closures).
            s.spawn(|| {
                let v: Vec<_> = (0..10).map(|_| a.alloc(128).unwrap()).collect();
                for p in v {
                    // SAFETY: allocated above, freed once.
                    unsafe { a.dealloc(p, 128) };
                }
            })
            .join()
            .unwrap();
        });
        let s = a.stats();
        assert_eq!(s.classes[1].thread_chunks, 0);
        assert!(s.classes[1].depot_chunks > 0);
        assert_eq!(s.live_chunks(), 0);
    }

    #[test]
    fn background_reaper_returns_idle_magazines() {
        let a = SlabAllocator::with_magazines(
            Config::new(SizeClasses::from_list(&[64, 128, 256], 8, 64 << 10).unwrap()),
            MagazineConfig::default()
                .initial_rounds(4)
                .reap_interval(Duration::from_millis(5)),
        )
        .unwrap();
        let v: Vec<_> = (0..100).map(|_| a.alloc(64).unwrap()).collect();
        for p in v {
            // SAFETY: allocated above, freed once.
            unsafe { a.dealloc(p, 64) };
        }
        a.flush_thread_cache();
        assert!(a.stats().classes[0].depot_chunks > 0);
        // Nobody takes these magazines again: the reaper (not this thread) gives them back to
        // the engine (a reap takes them out of the depot, then frees their chunks: wait for
        // the engine's count). Bounded wait: the test fails only if no reap happened in 60 s.
        let start = std::time::Instant::now();
        while a.stats().engine.classes[0].used_chunks > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no reap happened"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(a.stats().classes[0].depot_chunks, 0);
        assert!(matches!(
            a.start_reaper(Duration::ZERO),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn own_lookup_agrees_with_the_table() {
        for classes in [
            crate::engine::size_class::general_classes(),
            SizeClasses::memcached_default(),
            SizeClasses::from_list(&[10, 21, 33, 100], 1, 64 << 10).unwrap(),
            SizeClasses::from_list(&[64, 128, 256], 8, 64 << 10).unwrap(),
        ] {
            let a = SlabAllocator::new(Config::new(classes.clone())).unwrap();
            for size in (0..=5000).chain([usize::MAX, usize::MAX - 3]) {
                assert_eq!(a.class_for(size), classes.class_for(size), "size {size}");
            }
        }
    }
}
