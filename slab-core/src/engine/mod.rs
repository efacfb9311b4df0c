//! The slab engine: one reservation of address space, slabs as fixed-size slots inside it,
//! per-class slab lists, a pool of empty slabs with adaptive retention, and the hard limit.
//!
//! [`SlabEngine`] (this file) puts the parts together; each part is a file of its own:
//!
//! | file             | what                                                                |
//! |------------------|---------------------------------------------------------------------|
//! | `config.rs`      | [`Config`]                                                          |
//! | `reservation.rs` | the reserved range cut into slots, every slot's state, mapping      |
//! | `class_list.rs`  | per-class slab lists (partial, spare, owner words), free-list links |
//! | `empty_slabs.rs` | the pool of empty slabs and its adaptive retention target           |
//! | `draining.rs`    | slabs marked draining for a compactor ([`DrainSlab`])               |
//! | `restore.rs`     | the slab table a file-backed engine saves and takes up ([`SlabRecord`])  |
//! | [`release`]      | run coalescing and the release report                               |
//! | `os.rs`          | the only file that calls `mmap`, `munmap`, `madvise`, `fallocate`   |
//! | [`size_class`]   | the size-class tables and size -> class lookup                      |
//! | [`stats`]        | the accounting snapshot                                             |
//!
//! Locks: one per class (its slabs and their free lists) and one for the pool (empty slabs, the
//! slot map, retention). The order is always class, then pool; the pool lock is never held
//! while taking a class lock, and `munmap` runs with no lock held.

mod class_list;
mod config;
mod draining;
mod empty_slabs;
mod os;
pub mod release;
mod reservation;
mod restore;
pub mod size_class;
pub mod stats;

pub use self::config::{Backing, Config, SlabRecord};
pub use self::draining::DrainSlab;

use std::fmt;
use std::ptr::NonNull;

use self::class_list::{link, owner_word, ClassState, Padded, SlabMeta, NONE};
use self::empty_slabs::EmptySlabs;
use self::os::{Os, HUGE_PAGE};
use self::release::{coalesce, ReleaseReport, Run, Unmap};
use self::reservation::Slots;
use self::size_class::{ClassId, SizeClasses};
use self::stats::{ClassStats, Stats};
use crate::error::Error;
use crate::lazy::LazyTable;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::Mutex;

/// The slab engine. Shared by all threads through `&self`; see the [module docs](self).
pub struct SlabEngine {
    classes: SizeClasses,
    /// The reserved address range, cut into slots.
    slots: Slots,
    granule_slabs: u32,
    /// Per slot: 0 if no class owns it, else `(class + 1) << 32 | index in the class's slabs`.
    /// Written under the owning class's lock; read without a lock by `class_of`.
    owner: Box<[AtomicU64]>,
    /// Per class, created on first use (spare classes may never be).
    class_state: LazyTable<Padded<Mutex<ClassState>>>,
    /// The pool lock: empty slabs, the slot map, retention.
    pool: Mutex<EmptySlabs>,
    os: Os,
    /// The memory limit in bytes, `u64::MAX` for none; changed by
    /// [`set_limit`](SlabEngine::set_limit).
    limit: AtomicU64,
    huge_pages: bool,
}

// SAFETY: the raw pointers only name the engine's own reservation, which lives as long as the
// engine; every piece of mutable state is behind a `Mutex` or an atomic, and chunk memory is
// only touched under the owning class's lock (free-list links) or by whoever holds the chunk.
unsafe impl Send for SlabEngine {}
// SAFETY: as for `Send`: all `&self` methods synchronise through the locks and atomics.
unsafe impl Sync for SlabEngine {}

impl fmt::Debug for SlabEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabEngine")
            .field("base", &self.slots.base)
            .field("reserved", &self.slots.reserved)
            .field("slab_size", &self.classes.slab_size())
            .field("classes", &self.classes.len())
            .field("limit", &self.limit())
            .finish_non_exhaustive()
    }
}

fn config_err(msg: String) -> Error {
    Error::InvalidConfig(msg)
}

impl SlabEngine {
    /// Reserves the address space and sets up an engine. Nothing is mapped yet.
    pub fn new(config: Config) -> Result<Self, Error> {
        let slab = config.classes.slab_size();
        let align = HUGE_PAGE.max(slab);
        if !config.map_granule.is_power_of_two() || config.map_granule < align {
            return Err(config_err(format!(
                "map granule {} must be a power of two of at least {align} bytes",
                config.map_granule
            )));
        }
        if let Some(l) = config.memory_limit {
            if l < slab {
                return Err(config_err(format!(
                    "memory limit {l} is smaller than one slab ({slab} bytes)"
                )));
            }
        }
        if config.classes.len() >= u16::MAX as usize {
            return Err(config_err("too many classes".into()));
        }
        let os = match &config.backing {
            Backing::Anonymous => Os::default(),
            Backing::File(f) => Os::with_file(f.clone()),
        };
        let slots = Slots::reserve(&os, &config)?;
        if let Backing::File(f) = &config.backing {
            // Slot `i` maps the file at `i * slab`: the file spans the reservation (sparse).
            if f.metadata()?.len() < slots.reserved as u64 {
                f.set_len(slots.reserved as u64)?;
            }
        }
        let nslots = slots.nslots as usize;
        let owner = (0..nslots).map(|_| AtomicU64::new(0)).collect();
        let class_state = LazyTable::new(config.classes.len());
        let pool = EmptySlabs::new(nslots, &config);
        let engine = SlabEngine {
            slots,
            granule_slabs: (config.map_granule / slab) as u32,
            owner,
            class_state,
            pool: Mutex::new(pool),
            os,
            limit: AtomicU64::new(config.memory_limit.map_or(u64::MAX, |l| l as u64)),
            huge_pages: config.huge_pages,
            classes: config.classes,
        };
        if !config.restore.is_empty() {
            engine.restore_table(&config.restore)?;
        }
        Ok(engine)
    }

    /// The size classes.
    #[inline]
    pub fn classes(&self) -> &SizeClasses {
        &self.classes
    }

    /// The slab size in bytes.
    #[inline]
    pub fn slab_size(&self) -> usize {
        1 << self.slots.slab_shift
    }

    /// The hard memory limit, if any.
    #[inline]
    pub fn limit(&self) -> Option<usize> {
        let l = self.limit.load(Ordering::Relaxed);
        (l != u64::MAX).then_some(l as usize)
    }

    /// Changes the memory limit while the engine runs. A higher limit takes effect at
    /// once; a lower one stops further mapping while more than it is mapped (allocations
    /// then fail with [`Error::LimitReached`] until slabs are freed and released, e.g. by
    /// [`release_all`](Self::release_all)). Fails if `bytes` is below one slab or above the
    /// reserved address space.
    pub fn set_limit(&self, bytes: usize) -> Result<(), Error> {
        if bytes < self.slab_size() || bytes > self.slots.reserved {
            return Err(config_err(format!(
                "memory limit {bytes} must lie between one slab ({}) and the reservation ({})",
                self.slab_size(),
                self.slots.reserved
            )));
        }
        self.limit.store(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes mapped now (slabs of classes and pooled empty slabs).
    pub fn mapped_bytes(&self) -> usize {
        self.pool.lock().slots.mapped_slabs * self.slab_size()
    }

    #[inline]
    fn slot_ptr(&self, slot: u32) -> NonNull<u8> {
        self.slots.slot_ptr(slot)
    }

    #[inline]
    fn class_lock(&self, class: ClassId) -> &Mutex<ClassState> {
        &self
            .class_state
            .get_with(class.index(), || Padded(Mutex::new(ClassState::default())))
            .0
    }

    /// A class's state if it was ever used (read paths need not create it).
    #[inline]
    fn class_lock_if_used(&self, class: ClassId) -> Option<&Mutex<ClassState>> {
        self.class_state.peek(class.index()).map(|p| &p.0)
    }

    /// Classes `0..n` cover every class that holds or ever held a slab: the table's classes
    /// and the spares up to the last one used.
    pub fn classes_in_use(&self) -> usize {
        let last = (self.classes.base_len()..self.class_state.len())
            .rev()
            .find(|&i| self.class_state.peek(i).is_some());
        last.map_or(self.classes.base_len(), |i| i + 1)
    }

    /// Allocates one chunk of `class`. Prefers partial slabs, then the class's empty spare, then
    /// an empty slab from the pool, then maps new memory; fails with
    /// [`Error::LimitReached`] when none of those can be had.
    ///
    /// The chunk's contents are unspecified (a reused slab keeps old data). Panics if `class`
    /// is out of range.
    pub fn alloc(&self, class: ClassId) -> Result<NonNull<u8>, Error> {
        let mut st = self.class_lock(class).lock();
        let idx = self.slab_with_room(&mut st, class)?;
        Ok(self.pop_chunk(&mut st, class, idx))
    }

    /// Allocates up to `max` chunks of `class` into `out` under one lock acquisition. Returns
    /// how many were pushed (at least one unless `max == 0`), or the error that prevented
    /// getting even one.
    pub fn alloc_batch(
        &self,
        class: ClassId,
        out: &mut Vec<NonNull<u8>>,
        max: usize,
    ) -> Result<usize, Error> {
        if max == 0 {
            return Ok(0);
        }
        out.reserve(max.min(self.classes.chunks_per_slab(class)));
        let mut st = self.class_lock(class).lock();
        let mut n = 0;
        while n < max {
            let idx = match self.slab_with_room(&mut st, class) {
                Ok(i) => i,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            };
            // Drain this slab before looking for another one.
            while n < max && st.slabs[idx as usize].partial_pos != NONE {
                out.push(self.pop_chunk(&mut st, class, idx));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Index of a slab of the class with a free chunk, adding one if needed.
    fn slab_with_room(&self, st: &mut ClassState, class: ClassId) -> Result<u32, Error> {
        if let Some(&idx) = st.partial.last() {
            return Ok(idx);
        }
        if let Some(idx) = st.spare.take() {
            st.add_partial(idx);
            return Ok(idx);
        }
        let slot = self.take_slab()?;
        let idx = st.slabs.len() as u32;
        st.slabs.push(SlabMeta::new(slot));
        self.owner[slot as usize].store(owner_word(class, idx), Ordering::Release);
        st.add_partial(idx);
        Ok(idx)
    }

    /// Pops one chunk from slab `idx`, which is in the partial list.
    fn pop_chunk(&self, st: &mut ClassState, class: ClassId, idx: u32) -> NonNull<u8> {
        let cs = self.classes.chunk_size(class);
        let cps = self.classes.chunks_per_slab(class) as u32;
        let m = &mut st.slabs[idx as usize];
        let slab = self.slot_ptr(m.slot);
        let chunk = if m.free_head != 0 {
            let i = m.free_head - 1;
            let p = NonNull::new(slab.as_ptr().wrapping_add(i as usize * cs)).expect("in slab");
            // SAFETY: chunk `i` is on this slab's free list, which the class lock (held through
            // `st`) protects; free chunks are mapped and belong to nobody else.
            m.free_head = unsafe { link::read(p) };
            p
        } else {
            debug_assert!(m.bump < cps);
            let i = m.bump;
            m.bump += 1;
            NonNull::new(slab.as_ptr().wrapping_add(i as usize * cs)).expect("in slab")
        };
        m.used += 1;
        st.used += 1;
        if m.used == cps {
            st.full += 1;
            st.remove_partial(idx);
        }
        chunk
    }

    /// Frees a chunk; its class and slab are found from the pointer in O(1).
    ///
    /// # Safety
    /// `ptr` must have been returned by [`alloc`](Self::alloc) or
    /// [`alloc_batch`](Self::alloc_batch) of this engine and not freed since; the caller must
    /// not use it afterwards.
    pub unsafe fn free(&self, ptr: NonNull<u8>) {
        let class = self
            .class_of_slot(ptr.as_ptr())
            .expect("free of a pointer the engine does not own");
        // SAFETY: forwarded from the caller.
        unsafe { self.free_batch(class, &[ptr]) }
    }

    /// Frees chunks all of one class under one lock acquisition.
    ///
    /// # Safety
    /// Every pointer must have been returned by an allocation of `class` from this engine and
    /// not freed since (no duplicates in `ptrs`); the caller must not use them afterwards.
    pub unsafe fn free_batch(&self, class: ClassId, ptrs: &[NonNull<u8>]) {
        if ptrs.is_empty() {
            return;
        }
        let cs = self.classes.chunk_size(class);
        let cps = self.classes.chunks_per_slab(class) as u32;
        let mask = self.slab_size() - 1;
        let mut to_pool = Vec::new();
        let mut st = self.class_lock(class).lock();
        for &p in ptrs {
            let off = self.offset_of(p.as_ptr());
            assert!(
                off < self.slots.reserved,
                "free of a pointer outside the engine"
            );
            let slot = off >> self.slots.slab_shift;
            let word = self.owner[slot].load(Ordering::Relaxed);
            assert_eq!(
                word >> 32,
                class.0 as u64 + 1,
                "free of a chunk of another class"
            );
            let idx = word as u32;
            let in_slab = off & mask;
            debug_assert_eq!(
                in_slab % cs,
                0,
                "free of a pointer that is not a chunk start"
            );
            let chunk = (in_slab / cs) as u32;
            let m = &mut st.slabs[idx as usize];
            debug_assert!(chunk < m.bump && m.used > 0);
            // SAFETY: the caller hands the chunk back; it lies in a mapped slab of this class,
            // whose lock we hold.
            unsafe { link::write(p, m.free_head) };
            m.free_head = chunk + 1;
            let was_full = m.used == cps;
            m.used -= 1;
            let now_empty = m.used == 0;
            let draining = m.draining;
            st.used -= 1;
            if was_full {
                st.full -= 1;
                if !draining {
                    st.add_partial(idx);
                }
            }
            if now_empty {
                if !draining {
                    st.remove_partial(idx);
                }
                st.slabs[idx as usize].draining = false;
                if st.spare.is_none() {
                    let m = &mut st.slabs[idx as usize];
                    m.bump = 0;
                    m.free_head = 0;
                    st.spare = Some(idx);
                } else {
                    to_pool.push(st.remove_slab(idx, class, &self.owner));
                }
            }
        }
        if !to_pool.is_empty() {
            let mut pool = self.pool.lock();
            pool.empty.extend_from_slice(&to_pool);
        }
    }

    /// The class of the slab `ptr` points into, in one load; `None` if `ptr` is outside the
    /// engine or in a slab no class owns. Unlike [`class_of`](Self::class_of) it does not
    /// check that `ptr` starts a chunk.
    #[inline]
    pub fn slab_class_of(&self, ptr: *const u8) -> Option<ClassId> {
        self.class_of_slot(ptr)
    }

    #[inline]
    fn class_of_slot(&self, ptr: *const u8) -> Option<ClassId> {
        if !self.contains(ptr) {
            return None;
        }
        let slot = self.offset_of(ptr) >> self.slots.slab_shift;
        let word = self.owner[slot].load(Ordering::Acquire);
        let c = (word >> 32) as u16;
        (c != 0).then(|| ClassId(c - 1))
    }

    /// The class of the chunk that starts at `ptr`, in O(1); `None` if `ptr` is outside the
    /// engine, in a slab no class owns, or not at a chunk boundary.
    pub fn class_of(&self, ptr: *const u8) -> Option<ClassId> {
        let class = self.class_of_slot(ptr)?;
        let in_slab = self.offset_of(ptr) & (self.slab_size() - 1);
        let cs = self.classes.chunk_size(class);
        (in_slab % cs == 0 && in_slab / cs < self.classes.chunks_per_slab(class)).then_some(class)
    }

    /// Whether `ptr` lies in the engine's reserved address space (O(1) range check).
    #[inline]
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.slots.contains(ptr)
    }

    /// `ptr`'s offset from the reservation base (meaningful when [`contains`](Self::contains)).
    #[inline]
    pub fn offset_of(&self, ptr: *const u8) -> usize {
        self.slots.offset_of(ptr)
    }

    /// The pointer at `offset` from the reservation base; panics if `offset` is outside the
    /// reservation. Inverse of [`offset_of`](Self::offset_of).
    #[inline]
    pub fn ptr_at(&self, offset: usize) -> NonNull<u8> {
        assert!(
            offset < self.slots.reserved,
            "offset {offset} outside the reservation"
        );
        NonNull::new(self.slots.base.as_ptr().wrapping_add(offset)).expect("inside the reservation")
    }

    /// The reservation's base address and length (the range [`contains`](Self::contains)
    /// checks).
    pub fn reservation(&self) -> (NonNull<u8>, usize) {
        (self.slots.base, self.slots.reserved)
    }

    /// Calls `f(slab_base, carved_chunks)` for each slab the class holds. `carved_chunks` is
    /// how many chunks from the slab start were ever handed out since the slab joined the
    /// class; chunks beyond never were. Some of the carved ones may be free again. The slab
    /// list is snapshotted under the class lock and `f` runs without it, so `f` may call the
    /// engine; slabs may change class meanwhile.
    pub fn for_each_slab(&self, class: ClassId, mut f: impl FnMut(NonNull<u8>, usize)) {
        let Some(lock) = self.class_state.peek(class.index()) else {
            return;
        };
        let snapshot: Vec<(u32, u32)> = {
            let st = lock.0.lock();
            st.slabs
                .iter()
                .filter(|m| m.used > 0)
                .map(|m| (m.slot, m.bump))
                .collect()
        };
        for (slot, bump) in snapshot {
            f(self.slot_ptr(slot), bump as usize);
        }
    }

    /// Like [`for_each_slab`](Self::for_each_slab), with each slab's count of chunks handed
    /// out (and not freed back to the engine) as a third argument: `f(slab_base,
    /// carved_chunks, used_chunks)`. A slab whose used chunks are all accounted for by items
    /// the caller can free becomes empty once they are freed.
    pub fn for_each_slab_usage(
        &self,
        class: ClassId,
        mut f: impl FnMut(NonNull<u8>, usize, usize),
    ) {
        let snapshot: Vec<(u32, u32, u32)> = {
            let Some(lock) = self.class_lock_if_used(class) else {
                return;
            };
            let st = lock.lock();
            st.slabs
                .iter()
                .filter(|m| m.used > 0)
                .map(|m| (m.slot, m.bump, m.used))
                .collect()
        };
        for (slot, bump, used) in snapshot {
            f(self.slot_ptr(slot), bump as usize, used as usize);
        }
    }

    /// Moves `class`'s empty spare slab (if it keeps one) into the pool, where any class
    /// can take it. Returns whether there was one.
    pub fn release_spare(&self, class: ClassId) -> bool {
        let slot = {
            let Some(lock) = self.class_lock_if_used(class) else {
                return false;
            };
            let mut st = lock.lock();
            let Some(idx) = st.spare.take() else {
                return false;
            };
            st.remove_slab(idx, class, &self.owner)
        };
        self.pool.lock().empty.push(slot);
        true
    }

    // -----------------------------------------------------------------------------------------
    // Compaction support: draining slabs, allocating only from slabs already in use.
    // -----------------------------------------------------------------------------------------

    /// Picks the sparsest slabs of `class` for a compactor to empty and marks them
    /// *draining*: they leave the partial list, so no allocation takes a chunk from them
    /// until [`end_drain`](Self::end_drain) (frees into them still count, and a slab whose
    /// last chunk is freed leaves the class as usual).
    ///
    /// Nothing is picked unless the class holds at least `min_slabs` slabs (its empty spare
    /// not counted) filled below `max_fill` (used chunks over carrying capacity, 0 to 1).
    /// Then slabs go in order of fewest used chunks while the slabs left can still take every
    /// used chunk with one slab to spare, and while the picked slabs' used chunks stay within
    /// `max_chunks`. Full slabs are never picked.
    pub fn begin_drain(
        &self,
        class: ClassId,
        min_slabs: usize,
        max_fill: f64,
        max_chunks: usize,
    ) -> Vec<DrainSlab> {
        let cps = self.classes.chunks_per_slab(class);
        let mut st = self.class_lock(class).lock();
        draining::pick(&mut st, cps, min_slabs, max_fill, max_chunks, |slot| {
            self.slot_ptr(slot)
        })
    }

    /// Ends the draining of the slab at `base` (from [`begin_drain`](Self::begin_drain) of
    /// `class`): if it still holds used chunks it serves allocations again. A slab that
    /// emptied meanwhile has already left the draining state; then this does nothing.
    /// Returns true if the slab had emptied (it left the class, or came back to it empty).
    pub fn end_drain(&self, class: ClassId, base: NonNull<u8>) -> bool {
        let cps = self.classes.chunks_per_slab(class) as u32;
        let mut st = self.class_lock(class).lock();
        let slot = self.offset_of(base.as_ptr()) >> self.slots.slab_shift;
        let word = self.owner[slot].load(Ordering::Relaxed);
        if word >> 32 != class.0 as u64 + 1 {
            return true;
        }
        draining::end(&mut st, word as u32, cps)
    }

    /// Allocates a chunk of `class` only from a slab the class already uses that has a free
    /// chunk and is not draining: never the class's empty spare, the pool or new memory.
    /// `None` if there is no such chunk. This is what a compactor moves items into.
    pub fn alloc_in_place(&self, class: ClassId) -> Option<NonNull<u8>> {
        let mut st = self.class_lock(class).lock();
        let idx = draining::in_place_slab(&st)?;
        Some(self.pop_chunk(&mut st, class, idx))
    }

    // -----------------------------------------------------------------------------------------
    // The empty-slab pool: taking slabs, mapping more, reaping and releasing.
    // -----------------------------------------------------------------------------------------

    /// An empty mapped slab from the pool, mapping more if needed.
    fn take_slab(&self) -> Result<u32, Error> {
        let mut pool = self.pool.lock();
        if pool.empty.is_empty() {
            self.map_more(&mut pool)?;
        }
        Ok(pool.pop().expect("map_more added slabs"))
    }

    /// Maps up to one granule of new slabs into the pool, within the limit.
    fn map_more(&self, pool: &mut EmptySlabs) -> Result<(), Error> {
        let mut n = self.granule_slabs as usize;
        if let Some(limit) = self.limit() {
            let max = limit / self.slab_size();
            n = n.min(max.saturating_sub(pool.slots.mapped_slabs));
            if n == 0 {
                return Err(Error::LimitReached { limit });
            }
        }
        let (start, len) = pool.slots.map(&self.slots, &self.os, n)?;
        if self.huge_pages {
            // Advice only: a kernel without THP refuses it and nothing is lost.
            let _ = self
                .os
                .advise_huge(self.slot_ptr(start), len as usize * self.slab_size());
        }
        pool.add_mapped(start, len);
        Ok(())
    }

    /// Moves every class's empty spare slab into the pool.
    fn drain_spares(&self) {
        let mut spares = Vec::new();
        for (i, lock) in self.class_state.iter() {
            let mut st = lock.0.lock();
            if let Some(idx) = st.spare.take() {
                spares.push(st.remove_slab(idx, ClassId(i as u16), &self.owner));
            }
        }
        if !spares.is_empty() {
            self.pool.lock().empty.extend_from_slice(&spares);
        }
    }

    /// Closes a reap interval: adapts the retention target to the demand observed since the
    /// last reap and returns the pooled empty slabs beyond it to the OS, batched (sorted,
    /// coalesced, one `munmap` per contiguous run). The lowest-addressed slabs are kept.
    ///
    /// Call it periodically (the magazine layer's reaper does, e.g. every few seconds).
    pub fn reap(&self) -> ReleaseReport {
        self.drain_spares();
        let (victims, epoch) = self.pool.lock().close_interval();
        let report = self.release_slots(victims, Unmap::Runs);
        if report.slabs > 0 {
            self.pool.lock().released(epoch, report.slabs);
        }
        report
    }

    /// A hint that demand fell (a flush, a mass free): the retention target drops to its floor
    /// and the record of earlier reaps' releases is forgotten, so the next
    /// [`reap`](Self::reap) returns every pooled slab beyond the floor to the OS. (Mapping
    /// again soon after that reap still counts as its misjudgement and raises the target, as
    /// after any reap.) Counted in [`Stats::demand_drops`].
    pub fn demand_dropped(&self) {
        self.pool.lock().demand_dropped();
    }

    /// Returns every empty slab (pooled or kept by a class) to the OS now, batched and
    /// coalesced. Unlike [`reap`](Self::reap) this does not count as a retention decision.
    pub fn release_all(&self) -> ReleaseReport {
        self.release_all_inner(Unmap::Runs)
    }

    /// Like [`release_all`](Self::release_all) but with one `munmap` per slab. This is the
    /// naive release path; it exists only so benchmarks and tests can compare against it.
    #[doc(hidden)]
    pub fn release_all_unbatched(&self) -> ReleaseReport {
        self.release_all_inner(Unmap::Slabs)
    }

    /// Like [`release_all`](Self::release_all) but with one `munmap` per 4 KiB page: the
    /// page-by-page release of seed 002 that batching exists to avoid. For benchmarks only.
    #[doc(hidden)]
    pub fn release_all_page_by_page(&self) -> ReleaseReport {
        self.release_all_inner(Unmap::Pages)
    }

    fn release_all_inner(&self, how: Unmap) -> ReleaseReport {
        self.drain_spares();
        let victims = self.pool.lock().take_all();
        self.release_slots(victims, how)
    }

    /// Unmaps slots marked `Releasing`, with no lock held, then records the result.
    fn release_slots(&self, mut slots: Vec<u32>, how: Unmap) -> ReleaseReport {
        if slots.is_empty() {
            return ReleaseReport::default();
        }
        let runs: Vec<Run> = if how == Unmap::Runs {
            coalesce(&mut slots)
        } else {
            slots.iter().map(|&s| Run { start: s, len: 1 }).collect()
        };
        let (report, failed) = self.slots.unmap_runs(&self.os, &runs, how);
        let mut pool = self.pool.lock();
        let pool = &mut *pool;
        pool.slots
            .finish_release(&runs, &failed, &report, &mut pool.empty);
        report
    }

    /// A snapshot of the accounting. Takes each class lock in turn, then the pool lock; the
    /// figures of one class are consistent with each other.
    pub fn stats(&self) -> Stats {
        let classes = self
            .classes
            .iter()
            .take(self.classes_in_use())
            .map(|(class, chunk_size)| {
                let cps = self.classes.chunks_per_slab(class);
                let mut cls = ClassStats {
                    class,
                    chunk_size,
                    chunks_per_slab: cps,
                    ..ClassStats::default()
                };
                if let Some(lock) = self.class_state.peek(class.index()) {
                    let st = lock.0.lock();
                    cls.slabs = st.slabs.len();
                    cls.full_slabs = st.full;
                    cls.empty_slabs = usize::from(st.spare.is_some());
                    cls.used_chunks = st.used;
                    cls.free_chunks = st.slabs.len() * cps - st.used;
                }
                cls
            })
            .collect();
        let pool = self.pool.lock();
        let calls = self.os.calls();
        Stats {
            mapped_bytes: pool.slots.mapped_slabs * self.slab_size(),
            reserved_bytes: self.slots.reserved,
            limit: self.limit(),
            mmap_calls: calls.mmap,
            munmap_calls: calls.munmap,
            madvise_calls: calls.madvise,
            file_backed: self.os.file_backed(),
            fallocate_calls: calls.fallocate,
            punch_calls: calls.punch,
            punched_bytes: calls.punched_bytes,
            released_bytes: pool.slots.released_bytes,
            released_slabs: pool.slots.released_slabs,
            pooled_slabs: pool.empty.len(),
            retention_target_slabs: pool.target(),
            demand_drops: pool.demand_drops(),
            slab_size: self.slab_size(),
            classes,
        }
    }
}

impl Drop for SlabEngine {
    fn drop(&mut self) {
        // Unmap what is ours: the alignment slack and every slot that is fresh or mapped.
        let state = std::mem::take(&mut self.pool.lock().slots.state);
        self.slots.unmap_all(&self.os, &state);
    }
}
