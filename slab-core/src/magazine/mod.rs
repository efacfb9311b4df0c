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
//! use slab_core::allocator::{MagazineConfig, SlabAllocator};
//! use slab_core::engine::Config;
//! use slab_core::size_class::SizeClasses;
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

mod depot;
// The layer is named after its unit; this file is the unit itself.
#[allow(clippy::module_inception)]
mod magazine;
pub mod reap;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, Weak};
use std::time::Duration;

use self::depot::{Depot, DepotParams};
use self::magazine::{ClassCache, Magazine};
use self::reap::ReapReport;
use crate::engine::size_class::{ClassId, SizeClasses};
use crate::engine::stats::Stats;
use crate::engine::{Config, SlabEngine};
use crate::error::Error;
use crate::lazy::LazyTable;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// Settings of the magazine layer. Build with [`MagazineConfig::default`] and the setters.
#[derive(Clone, Debug)]
pub struct MagazineConfig {
    /// Rounds per magazine at start (before contention grows it). Default 32.
    pub initial_rounds: usize,
    /// Rounds per magazine at most, however contended the depot. Default 256.
    pub max_rounds: usize,
    /// Bytes of chunks one magazine may hold: a class's magazine size is capped at
    /// `max_magazine_bytes / chunk_size`, and classes whose chunk is larger than this bypass
    /// magazines (every allocation goes to the engine). Default 64 KiB.
    pub max_magazine_bytes: usize,
    /// Bytes of chunks one class's depot may hold in full magazines; beyond it, frees that
    /// overflow a thread's magazines go straight back to the engine. Default 4 MiB.
    pub max_depot_bytes: usize,
    /// Contention events on a depot lock (since the last resize or reap) that double the
    /// class's magazine size. Default 8.
    pub contention_threshold: u64,
    /// Start a background reaper with this interval when the allocator is built. Default none.
    pub reap_interval: Option<Duration>,
}

impl Default for MagazineConfig {
    fn default() -> Self {
        MagazineConfig {
            initial_rounds: 32,
            max_rounds: 256,
            max_magazine_bytes: 64 << 10,
            max_depot_bytes: 4 << 20,
            contention_threshold: 8,
            reap_interval: None,
        }
    }
}

impl MagazineConfig {
    /// Sets the initial magazine size in rounds (0 disables magazines).
    pub fn initial_rounds(mut self, rounds: usize) -> Self {
        self.initial_rounds = rounds;
        self
    }

    /// Sets the largest magazine size in rounds.
    pub fn max_rounds(mut self, rounds: usize) -> Self {
        self.max_rounds = rounds;
        self
    }

    /// Sets the bytes one magazine may hold.
    pub fn max_magazine_bytes(mut self, bytes: usize) -> Self {
        self.max_magazine_bytes = bytes;
        self
    }

    /// Sets the bytes one class's depot may hold.
    pub fn max_depot_bytes(mut self, bytes: usize) -> Self {
        self.max_depot_bytes = bytes;
        self
    }

    /// Sets the contention events that grow a magazine.
    pub fn contention_threshold(mut self, events: u64) -> Self {
        self.contention_threshold = events;
        self
    }

    /// Starts a background reaper with this interval.
    pub fn reap_interval(mut self, interval: Duration) -> Self {
        self.reap_interval = Some(interval);
        self
    }

    fn params(&self, chunk: usize) -> DepotParams {
        let by_bytes = self.max_magazine_bytes / chunk;
        DepotParams {
            initial_rounds: self.initial_rounds.min(by_bytes),
            max_rounds: self.max_rounds.min(by_bytes).max(1),
            max_depot_rounds: self.max_depot_bytes / chunk,
            contention_threshold: self.contention_threshold.max(1),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if self.initial_rounds > self.max_rounds {
            return Err(Error::InvalidConfig(format!(
                "initial magazine size {} exceeds the maximum {}",
                self.initial_rounds, self.max_rounds
            )));
        }
        if self.reap_interval == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig(
                "reap interval must not be zero".into(),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state (one per allocator instance).
// ---------------------------------------------------------------------------------------------

/// What every thread's magazines for one allocator point at: the engine and the depots.
#[derive(Debug)]
pub(crate) struct Shared {
    id: u64,
    engine: SlabEngine,
    /// Per class, created on first use (spare classes may never be).
    depots: LazyTable<Depot>,
    magazines: MagazineConfig,
    /// Per class: rounds in threads' magazines, as of each thread's last slow path.
    thread_rounds: Box<[AtomicUsize]>,
    /// Threads that hold magazines of this allocator (entries not yet flushed at exit).
    thread_caches: AtomicUsize,
}

impl Shared {
    #[inline]
    fn depot(&self, class: ClassId) -> &Depot {
        self.depots.get_with(class.index(), || {
            Depot::new(
                self.magazines
                    .params(self.engine.classes().chunk_size(class)),
            )
        })
    }

    /// Publishes a thread's count of held rounds for `class` (slow paths only).
    fn publish(&self, class: ClassId, cc: &mut ClassCache) {
        let held = cc.held();
        if held != cc.published {
            self.thread_rounds[class.index()]
                .fetch_add(held.wrapping_sub(cc.published), Ordering::Relaxed);
            cc.published = held;
        }
    }

    /// Gives a magazine's rounds back to the engine and empties it.
    fn free_rounds(&self, class: ClassId, m: &mut Magazine) {
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
    fn alloc_slow(&self, caches: &mut [ClassCache], class: ClassId) -> Result<NonNull<u8>, Error> {
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
    fn free_slow(&self, cc: &mut ClassCache, class: ClassId, chunk: NonNull<u8>) {
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
    fn alloc_direct(&self, class: ClassId) -> Result<NonNull<u8>, Error> {
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
    fn reclaim(&self, own: &mut [ClassCache]) {
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
    fn flush(&self, caches: &mut [ClassCache]) {
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

    /// The depot and engine part of a reap (no thread cache is touched).
    pub(crate) fn reap_depots(&self) -> ReapReport {
        let mut report = ReapReport::default();
        for (i, d) in self.depots.iter() {
            let class = ClassId(i as u16);
            let r = d.reap();
            report.full_magazines += r.full.len();
            report.empty_magazines += r.empty;
            for mut m in r.full {
                report.chunks += m.len();
                report.bytes += m.len() * self.engine.classes().chunk_size(class);
                self.free_rounds(class, &mut m);
            }
        }
        report.release = self.engine.reap();
        report
    }
}

// ---------------------------------------------------------------------------------------------
// Thread-local caches.
// ---------------------------------------------------------------------------------------------

/// One thread's magazines for one allocator instance: one [`ClassCache`] per class, in a
/// heap array owned through a raw pointer (so [`ThreadCaches`] can keep a second pointer to
/// the current entry's array without the two aliasing a `Box`).
struct Entry {
    id: u64,
    shared: Weak<Shared>,
    classes: NonNull<ClassCache>,
    len: usize,
}

impl Entry {
    /// Caches for the table's classes; spare classes are added by [`Entry::ensure`] when the
    /// thread first uses one.
    fn new(shared: &Arc<Shared>) -> Self {
        let b: Box<[ClassCache]> = (0..shared.engine.classes().base_len())
            .map(|_| ClassCache::new())
            .collect();
        let len = b.len();
        let classes = NonNull::new(Box::into_raw(b).cast::<ClassCache>()).expect("non-null box");
        Entry {
            id: shared.id,
            shared: Arc::downgrade(shared),
            classes,
            len,
        }
    }

    /// Grows the array to at least `len` caches (new ones empty); the caller re-points the
    /// fast path ([`ThreadCaches::set_current`]) afterwards.
    fn ensure(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        let old = std::ptr::slice_from_raw_parts_mut(self.classes.as_ptr(), self.len);
        // SAFETY: made by `Box::into_raw` of a boxed slice of `len` caches (in `new` or a
        // previous `ensure`); ownership comes back here and is given up again below.
        let mut v = unsafe { Box::from_raw(old) }.into_vec();
        v.resize_with(len, ClassCache::new);
        let b = v.into_boxed_slice();
        self.len = b.len();
        self.classes = NonNull::new(Box::into_raw(b).cast::<ClassCache>()).expect("non-null box");
    }

    fn classes(&mut self) -> &mut [ClassCache] {
        // SAFETY: `classes` is the array of `len` caches made in `new` and freed only in
        // `drop`; `&mut self` makes this the only reference made from the entry, and the
        // thread's one other pointer to it (`ThreadCaches::cur`) is only used while no
        // reference from here is live (both are reached through the `RefCell` borrow).
        unsafe { std::slice::from_raw_parts_mut(self.classes.as_ptr(), self.len) }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.classes.as_ptr(), self.len);
        // SAFETY: made by `Box::into_raw` of a boxed slice of `len` caches in `new`, freed
        // once here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// One thread's magazines for every allocator instance it has used, most recent first, and
/// a direct pointer to the first entry's caches for the fast path.
struct ThreadCaches {
    /// `entries[0].id`, or 0 (no allocator has id 0) when there is no entry.
    cur_id: u64,
    /// `entries[0].classes` and its length (dangling and 0 when there is no entry).
    cur: NonNull<ClassCache>,
    cur_len: usize,
    entries: Vec<Entry>,
}

impl ThreadCaches {
    const fn new() -> Self {
        ThreadCaches {
            cur_id: 0,
            cur: NonNull::dangling(),
            cur_len: 0,
            entries: Vec::new(),
        }
    }

    /// Re-points the fast path at `entries[0]`; called after every change of `entries`.
    fn set_current(&mut self) {
        match self.entries.first() {
            Some(e) => {
                self.cur_id = e.id;
                self.cur = e.classes;
                self.cur_len = e.len;
            }
            None => {
                self.cur_id = 0;
                self.cur = NonNull::dangling();
                self.cur_len = 0;
            }
        }
    }

    /// The fast path's access: this thread's caches of `class` for allocator `id`, if that
    /// allocator is the one the thread used last.
    #[inline(always)]
    fn current(&mut self, id: u64, class: ClassId) -> Option<&mut ClassCache> {
        if self.cur_id == id && class.index() < self.cur_len {
            // SAFETY: `cur` is `entries[0].classes`, an array of `cur_len` caches that lives as
            // long as that entry (`set_current` runs after every change of `entries`); the
            // `&mut self` borrow (through the thread-local's `RefCell`) excludes every other
            // reference into it.
            Some(unsafe { &mut *self.cur.as_ptr().add(class.index()) })
        } else {
            None
        }
    }

    /// Removes the entry of allocator `id`; true if there was one.
    fn remove(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        self.set_current();
        self.entries.len() != before
    }

    /// The entry for `shared` moved to the front, created (after dropping entries of dead
    /// allocators) if new. `None` if the thread is exiting and can no longer flush a new entry
    /// at exit.
    #[cold]
    fn find_or_insert(&mut self, shared: &Arc<Shared>, need: usize) -> Option<&mut Entry> {
        // Spare classes: room for the one asked for and its neighbours, not all at once.
        let need = need.next_multiple_of(64).min(shared.depots.len());
        if let Some(i) = self.entries.iter().position(|e| e.id == shared.id) {
            self.entries.swap(0, i);
            self.entries[0].ensure(need);
            self.set_current();
            return self.entries.first_mut();
        }
        if !exit_hook_registered() {
            return None;
        }
        // Entries of allocators that are gone hold chunks of unmapped engines: forget them.
        self.entries.retain(|e| e.shared.strong_count() > 0);
        shared.thread_caches.fetch_add(1, Ordering::Release);
        self.entries.push(Entry::new(shared));
        let last = self.entries.len() - 1;
        self.entries.swap(0, last);
        self.entries[0].ensure(need);
        self.set_current();
        self.entries.first_mut()
    }

    /// Thread exit: every entry's magazines go back to its allocator.
    fn flush_all(&mut self) {
        let _busy = BusyGuard::enter();
        let entries = std::mem::take(&mut self.entries);
        self.set_current();
        for mut e in entries {
            if let Some(shared) = e.shared.upgrade() {
                shared.flush(e.classes());
                shared.thread_caches.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

// The thread-local layout. Outside loom, the caches live in a thread-local *without* a
// destructor (`ManuallyDrop`), so the fast path is a plain `%fs`-relative access with no
// "registered / destroyed" state check, and a separate zero-sized thread-local (`EXIT`) whose
// destructor flushes them is registered on the slow path, when a thread first creates an
// entry. After `EXIT` is destroyed no new entry is created (`exit_hook_registered` fails) and
// allocations go straight to the engine. Under loom the caches' own destructor flushes them.

#[cfg(not(loom))]
type CachesCell = RefCell<std::mem::ManuallyDrop<ThreadCaches>>;

#[cfg(not(loom))]
std::thread_local! {
    static CACHES: CachesCell =
        const { RefCell::new(std::mem::ManuallyDrop::new(ThreadCaches::new())) };
    static EXIT: ExitFlush = const { ExitFlush };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Flushes the thread's caches when the thread exits (see above).
#[cfg(not(loom))]
struct ExitFlush;

#[cfg(not(loom))]
impl Drop for ExitFlush {
    fn drop(&mut self) {
        let _ = CACHES.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.flush_all();
            }
        });
    }
}

/// Registers (on first use) the destructor that flushes this thread's caches at exit; false
/// if it already ran.
#[cfg(not(loom))]
fn exit_hook_registered() -> bool {
    EXIT.try_with(|_| ()).is_ok()
}

/// The caches, flushed by their own destructor (loom runs it when the model thread ends).
#[cfg(loom)]
struct LoomCaches(ThreadCaches);

#[cfg(loom)]
impl std::ops::Deref for LoomCaches {
    type Target = ThreadCaches;
    fn deref(&self) -> &ThreadCaches {
        &self.0
    }
}

#[cfg(loom)]
impl std::ops::DerefMut for LoomCaches {
    fn deref_mut(&mut self) -> &mut ThreadCaches {
        &mut self.0
    }
}

#[cfg(loom)]
impl Drop for LoomCaches {
    fn drop(&mut self) {
        self.0.flush_all();
    }
}

#[cfg(loom)]
type CachesCell = RefCell<LoomCaches>;

#[cfg(loom)]
crate::sync::thread_local! {
    static CACHES: CachesCell = RefCell::new(LoomCaches(ThreadCaches::new()));
    static BUSY: Cell<bool> = Cell::new(false);
}

#[cfg(loom)]
fn exit_hook_registered() -> bool {
    true
}

/// Marks the current thread as inside the allocator's slow paths (engine, depot, thread-cache
/// bookkeeping), whose own heap allocations must not come back into the slabs. The global
/// allocator adapter routes allocations made while it is set to the system allocator.
pub(crate) struct BusyGuard {
    was: bool,
}

impl BusyGuard {
    #[inline]
    pub(crate) fn enter() -> Self {
        let was = BUSY.try_with(|b| b.replace(true)).unwrap_or(true);
        BusyGuard { was }
    }
}

impl Drop for BusyGuard {
    #[inline]
    fn drop(&mut self) {
        if !self.was {
            let _ = BUSY.try_with(|b| b.set(false));
        }
    }
}

/// Whether the current thread is inside the allocator's slow paths (see [`BusyGuard`]).
#[inline]
pub(crate) fn is_busy() -> bool {
    BUSY.try_with(Cell::get).unwrap_or(true)
}

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
    reaper: std::sync::Mutex<Option<self::reap::Reaper>>,
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
        self.shared.reap_depots()
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
        let r = self::reap::Reaper::start(Arc::downgrade(&self.shared), interval)?;
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
        let shared = &*self.shared;
        let mut report = ReapReport::default();
        for (i, d) in shared.depots.iter() {
            let class = ClassId(i as u16);
            for mut m in d.drain() {
                report.full_magazines += 1;
                report.chunks += m.len();
                report.bytes += m.len() * shared.engine.classes().chunk_size(class);
                shared.free_rounds(class, &mut m);
            }
        }
        shared.engine.demand_dropped();
        let rest = shared.reap_depots();
        report.full_magazines += rest.full_magazines;
        report.empty_magazines += rest.empty_magazines;
        report.chunks += rest.chunks;
        report.bytes += rest.bytes;
        report.release = rest.release;
        report
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
    pub fn release_all(&self) -> crate::engine::release::ReleaseReport {
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

/// The magazine layer's figures for one class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MagazineStats {
    /// The class.
    pub class: ClassId,
    /// Its chunk size.
    pub chunk_size: usize,
    /// Current magazine size in rounds (grows under depot contention; 0 = magazines off).
    pub magazine_size: usize,
    /// Full magazines in the depot.
    pub depot_full: usize,
    /// Empty magazines in the depot.
    pub depot_empty: usize,
    /// Chunks in the depot's full magazines (exact).
    pub depot_chunks: usize,
    /// Chunks in threads' magazines, as of each thread's last magazine exchange (the fast
    /// path does not update it; exact once threads have flushed or exited).
    pub thread_chunks: usize,
    /// Times a thread found the depot lock busy.
    pub contention: u64,
    /// Depot lock acquisitions.
    pub exchanges: u64,
    /// Times contention grew the magazine size.
    pub resizes: u64,
}

/// The engine's accounting plus the magazine layer's, per class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// The engine's figures: chunks in magazines count as used there.
    pub engine: Stats,
    /// One entry per class.
    pub classes: Vec<MagazineStats>,
    /// Threads holding magazines of this allocator (those that used it and have not exited).
    pub threads: usize,
}

impl AllocatorStats {
    /// Chunks held in magazines (depots and threads).
    pub fn magazine_chunks(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.depot_chunks + c.thread_chunks)
            .sum()
    }

    /// Bytes of chunks held in magazines (depots and threads).
    pub fn magazine_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| (c.depot_chunks + c.thread_chunks) * c.chunk_size)
            .sum()
    }

    /// Chunks handed out to the program: the engine's used chunks minus those in magazines
    /// (exact when every thread's published count is current, e.g. after flushes).
    pub fn live_chunks(&self) -> usize {
        self.engine
            .classes
            .iter()
            .map(|c| c.used_chunks)
            .sum::<usize>()
            .saturating_sub(self.magazine_chunks())
    }
}

impl fmt::Display for AllocatorStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.engine)?;
        writeln!(
            f,
            "magazines hold {} chunks ({} bytes); {} threads hold magazines",
            self.magazine_chunks(),
            self.magazine_bytes(),
            self.threads
        )?;
        writeln!(
            f,
            "{:>5} {:>8} {:>6} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10}",
            "class",
            "chunk",
            "magsz",
            "full",
            "empty",
            "depot",
            "threads",
            "contended",
            "exchanges"
        )?;
        for c in self.classes.iter().filter(|c| c.exchanges > 0) {
            writeln!(
                f,
                "{:>5} {:>8} {:>6} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10}",
                c.class.display_id(),
                c.chunk_size,
                c.magazine_size,
                c.depot_full,
                c.depot_empty,
                c.depot_chunks,
                c.thread_chunks,
                c.contention,
                c.exchanges
            )?;
        }
        Ok(())
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
