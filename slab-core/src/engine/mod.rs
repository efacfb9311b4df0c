//! The slab engine: one reservation of address space, slabs as fixed-size slots inside it,
//! per-class slab lists, a pool of empty slabs with adaptive retention, and the hard limit.
//!
//! Locks: one per class (its slabs and their free lists) and one for the pool (empty slabs, the
//! OS side, retention). The order is always class, then pool; the pool lock is never held while
//! taking a class lock, and `munmap` runs with no lock held.

mod os;
pub mod release;
pub mod size_class;
pub mod stats;

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::ptr::NonNull;

use self::os::{Os, HUGE_PAGE};
use self::release::{coalesce, ReleaseReport, Run};
use self::size_class::{ClassId, SizeClasses};
use self::stats::{ClassStats, Stats};
use crate::error::Error;
use crate::lazy::LazyTable;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::Mutex;

/// Default reservation for an engine without a memory limit.
const UNLIMITED_RESERVE: usize = 64 << 30;
/// The smallest reservation tried when the default one fails.
const MIN_FALLBACK_RESERVE: usize = 1 << 30;
/// Most slots a default reservation holds (bounds the per-slot metadata for tiny slabs).
const MAX_DEFAULT_SLOTS: usize = 1 << 20;

/// Engine configuration. Build with [`Config::new`] and the builder-style setters.
#[derive(Clone, Debug)]
pub struct Config {
    /// The size classes (their slab size is the engine's slab size).
    pub classes: SizeClasses,
    /// Hard limit on mapped bytes; `None` = unlimited (bounded by the reservation).
    pub memory_limit: Option<usize>,
    /// Advise mapped regions with `MADV_HUGEPAGE`.
    pub huge_pages: bool,
    /// Bytes of address space to reserve; `None` = twice the limit (at least 64 MiB), or 64 GiB
    /// when unlimited (halved until the reservation succeeds, down to 1 GiB).
    pub reserve_bytes: Option<usize>,
    /// Bytes mapped per `mmap` of fresh address space: a power of two, at least 2 MiB and at
    /// least one slab. Default 2 MiB (or one slab if slabs are larger).
    pub map_granule: usize,
    /// The retention target never drops below this many empty slabs.
    pub min_retained_slabs: usize,
    /// The retention target never exceeds this many empty slabs (`None` = no cap).
    pub max_retained_slabs: Option<usize>,
    /// Mapping new slabs within this many reap intervals of releasing some counts as a
    /// misjudgement and raises the retention target by the amount mapped. Default 4.
    pub misjudge_window: u32,
    /// After this many consecutive reap intervals in which pooled slabs stayed unused, the
    /// target decays by half the unused amount per interval. Default 2.
    pub decay_after: u32,
}

impl Config {
    /// Defaults for `classes`: unlimited, no huge-page advice, 2 MiB mapping granule,
    /// retention adapting from 0.
    pub fn new(classes: SizeClasses) -> Self {
        let map_granule = HUGE_PAGE.max(classes.slab_size());
        Config {
            classes,
            memory_limit: None,
            huge_pages: false,
            reserve_bytes: None,
            map_granule,
            min_retained_slabs: 0,
            max_retained_slabs: None,
            misjudge_window: 4,
            decay_after: 2,
        }
    }

    /// Sets the hard memory limit in bytes.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Advise mapped memory for transparent huge pages.
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }

    /// Sets the size of the address-space reservation.
    pub fn reserve_bytes(mut self, bytes: usize) -> Self {
        self.reserve_bytes = Some(bytes);
        self
    }

    /// Sets the bytes mapped per fresh `mmap`.
    pub fn map_granule(mut self, bytes: usize) -> Self {
        self.map_granule = bytes;
        self
    }

    /// Sets the floor and cap of the retention target, in slabs.
    pub fn retained_slabs(mut self, min: usize, max: Option<usize>) -> Self {
        self.min_retained_slabs = min;
        self.max_retained_slabs = max;
        self
    }

    /// Sets the misjudgement window and the decay delay, in reap intervals.
    pub fn retention_intervals(mut self, misjudge_window: u32, decay_after: u32) -> Self {
        self.misjudge_window = misjudge_window;
        self.decay_after = decay_after;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The raw layer: reading and writing the free-list link stored in a free chunk.
// ---------------------------------------------------------------------------------------------

mod link {
    use std::ptr::NonNull;

    /// Reads the free-list link stored in a free chunk.
    ///
    /// # Safety
    /// `chunk` must point to at least 4 bytes of mapped memory of a free chunk that this
    /// engine's class lock protects (no one else reads or writes it).
    #[inline]
    pub(super) unsafe fn read(chunk: NonNull<u8>) -> u32 {
        // SAFETY: by the caller's contract the 4 bytes are mapped and not aliased mutably;
        // chunks need not be 4-aligned (alignment 1 tables), hence `read_unaligned`.
        unsafe { chunk.as_ptr().cast::<u32>().read_unaligned() }
    }

    /// Stores a free-list link in a chunk that was just freed.
    ///
    /// # Safety
    /// `chunk` must point to at least 4 bytes of mapped memory of a chunk that its owner has
    /// given back, under this engine's class lock.
    #[inline]
    pub(super) unsafe fn write(chunk: NonNull<u8>, next: u32) {
        // SAFETY: by the caller's contract nobody else uses these 4 bytes any more.
        unsafe { chunk.as_ptr().cast::<u32>().write_unaligned(next) }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-class state.
// ---------------------------------------------------------------------------------------------

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct SlabMeta {
    /// Slot number in the reservation.
    slot: u32,
    /// Chunks carved so far; chunks `bump..` were never handed out (and never touched).
    bump: u32,
    /// First free chunk index + 1, or 0; each free chunk stores the next link.
    free_head: u32,
    /// Chunks handed out.
    used: u32,
    /// Position in `ClassState::partial`, or `NONE`.
    partial_pos: u32,
    /// Being emptied by a compactor: kept out of `partial`, so no chunk of it is handed out.
    draining: bool,
}

#[derive(Debug, Default)]
struct ClassState {
    slabs: Vec<SlabMeta>,
    /// Indices into `slabs` of slabs with a free chunk and at least one used chunk (or the
    /// former spare being filled).
    partial: Vec<u32>,
    /// Index of the one empty slab the class keeps, if any (not in `partial`).
    spare: Option<u32>,
    used: usize,
    full: usize,
}

/// Cache-line padding so neighbouring class locks do not share a line.
#[repr(align(128))]
#[derive(Debug)]
struct Padded<T>(T);

fn owner_word(class: ClassId, idx: u32) -> u64 {
    ((class.0 as u64 + 1) << 32) | idx as u64
}

impl ClassState {
    fn add_partial(&mut self, idx: u32) {
        let m = &mut self.slabs[idx as usize];
        debug_assert_eq!(m.partial_pos, NONE);
        m.partial_pos = self.partial.len() as u32;
        self.partial.push(idx);
    }

    fn remove_partial(&mut self, idx: u32) {
        let pos = self.slabs[idx as usize].partial_pos;
        debug_assert_ne!(pos, NONE);
        self.slabs[idx as usize].partial_pos = NONE;
        self.partial.swap_remove(pos as usize);
        if let Some(&moved) = self.partial.get(pos as usize) {
            self.slabs[moved as usize].partial_pos = pos;
        }
    }

    /// Removes slab `idx` (empty, not in `partial`, not the spare) and returns its slot.
    fn remove_slab(&mut self, idx: u32, class: ClassId, owner: &[AtomicU64]) -> u32 {
        let m = self.slabs.swap_remove(idx as usize);
        debug_assert!(m.used == 0 && m.partial_pos == NONE);
        owner[m.slot as usize].store(0, Ordering::Release);
        let old_last = self.slabs.len() as u32;
        if let Some(moved) = self.slabs.get(idx as usize).copied() {
            owner[moved.slot as usize].store(owner_word(class, idx), Ordering::Release);
            if moved.partial_pos != NONE {
                self.partial[moved.partial_pos as usize] = idx;
            }
            if self.spare == Some(old_last) {
                self.spare = Some(idx);
            }
        }
        m.slot
    }
}

// ---------------------------------------------------------------------------------------------
// The pool: empty slabs, slot states, retention.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum SlotState {
    /// Inside the reservation, `PROT_NONE`, never mapped.
    Fresh,
    /// Mapped read-write (in a class or in the pool).
    Mapped,
    /// Being unmapped (no lock held during `munmap`).
    Releasing,
    /// Unmapped by us: a hole in the reservation we may map back with `MAP_FIXED_NOREPLACE`.
    Hole,
    /// Something else mapped into our hole; never touched again.
    Foreign,
}

#[derive(Debug)]
struct Pool {
    state: Vec<SlotState>,
    /// Empty mapped slabs not owned by any class.
    empty: Vec<u32>,
    next_fresh: u32,
    holes: BTreeSet<u32>,
    mapped_slabs: usize,
    released_bytes: u64,
    released_slabs: u64,
    // Retention.
    target: usize,
    /// Smallest `empty.len()` seen since the last reap.
    low_water: usize,
    /// Consecutive reap intervals with `low_water > 0`.
    idle_intervals: u32,
    epoch: u64,
    /// Slabs released by reaps, per reap epoch, not yet mapped again.
    recent_releases: VecDeque<(u64, usize)>,
    /// Calls of `demand_dropped`.
    demand_drops: u64,
}

/// A slab picked by [`SlabEngine::begin_drain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainSlab {
    /// The slab's first byte (chunk `i` starts at `base + i * chunk_size`).
    pub base: NonNull<u8>,
    /// Chunks carved from the slab's start so far; chunks beyond were never handed out.
    pub carved: usize,
    /// Chunks handed out when it was picked.
    pub used: usize,
}

/// How a release unmaps: the real path, and two naive ones kept for comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unmap {
    /// One `munmap` per run of adjacent slabs.
    Runs,
    /// One `munmap` per slab.
    Slabs,
    /// One `munmap` per 4 KiB page.
    Pages,
}

/// The slab engine. Shared by all threads through `&self`; see the [module docs](self).
pub struct SlabEngine {
    classes: SizeClasses,
    /// The reservation's aligned base: slot `i` is `base + i * slab_size`.
    base: NonNull<u8>,
    /// Usable reserved bytes from `base`.
    reserved: usize,
    raw: NonNull<u8>,
    raw_len: usize,
    slab_shift: u32,
    nslots: u32,
    granule_slabs: u32,
    /// Per slot: 0 if no class owns it, else `(class + 1) << 32 | index in the class's slabs`.
    /// Written under the owning class's lock; read without a lock by `class_of`.
    owner: Box<[AtomicU64]>,
    /// Per class, created on first use (spare classes may never be).
    class_state: LazyTable<Padded<Mutex<ClassState>>>,
    pool: Mutex<Pool>,
    os: Os,
    limit_slabs: Option<usize>,
    limit: Option<usize>,
    huge_pages: bool,
    min_retained: usize,
    max_retained: Option<usize>,
    misjudge_window: u32,
    decay_after: u32,
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
            .field("base", &self.base)
            .field("reserved", &self.reserved)
            .field("slab_size", &self.classes.slab_size())
            .field("classes", &self.classes.len())
            .field("limit", &self.limit)
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
        let os = Os::default();
        let reservation = match (config.reserve_bytes, config.memory_limit) {
            (Some(r), limit) => {
                let r = r.div_ceil(align) * align;
                if let Some(l) = limit {
                    if r < l {
                        return Err(config_err(format!(
                            "reservation of {r} bytes is smaller than the memory limit {l}"
                        )));
                    }
                }
                os.reserve(r, align)?
            }
            (None, Some(l)) => {
                let r = (l.div_ceil(align) * align).saturating_mul(2).max(64 << 20);
                os.reserve(r, align)?
            }
            (None, None) => {
                let mut r = UNLIMITED_RESERVE.min(slab.saturating_mul(MAX_DEFAULT_SLOTS));
                loop {
                    match os.reserve(r, align) {
                        Ok(res) => break res,
                        Err(_) if r / 2 >= MIN_FALLBACK_RESERVE.max(align) => r /= 2,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        };
        let nslots = reservation.len / slab;
        if nslots > u32::MAX as usize - 1 {
            return Err(config_err(format!("{nslots} slots is too many")));
        }
        let owner = (0..nslots).map(|_| AtomicU64::new(0)).collect();
        let class_state = LazyTable::new(config.classes.len());
        let pool = Pool {
            state: vec![SlotState::Fresh; nslots],
            empty: Vec::new(),
            next_fresh: 0,
            holes: BTreeSet::new(),
            mapped_slabs: 0,
            released_bytes: 0,
            released_slabs: 0,
            target: config.min_retained_slabs,
            low_water: 0,
            idle_intervals: 0,
            epoch: 0,
            recent_releases: VecDeque::new(),
            demand_drops: 0,
        };
        Ok(SlabEngine {
            base: reservation.base,
            reserved: reservation.len,
            raw: reservation.raw,
            raw_len: reservation.raw_len,
            slab_shift: slab.trailing_zeros(),
            nslots: nslots as u32,
            granule_slabs: (config.map_granule / slab) as u32,
            owner,
            class_state,
            pool: Mutex::new(pool),
            os,
            limit_slabs: config.memory_limit.map(|l| l / slab),
            limit: config.memory_limit,
            huge_pages: config.huge_pages,
            min_retained: config.min_retained_slabs,
            max_retained: config.max_retained_slabs,
            misjudge_window: config.misjudge_window,
            decay_after: config.decay_after,
            classes: config.classes,
        })
    }

    /// The size classes.
    #[inline]
    pub fn classes(&self) -> &SizeClasses {
        &self.classes
    }

    /// The slab size in bytes.
    #[inline]
    pub fn slab_size(&self) -> usize {
        1 << self.slab_shift
    }

    /// The hard memory limit, if any.
    #[inline]
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    #[inline]
    fn slot_ptr(&self, slot: u32) -> NonNull<u8> {
        let p = self
            .base
            .as_ptr()
            .wrapping_add((slot as usize) << self.slab_shift);
        NonNull::new(p).expect("slots lie inside the reservation")
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
        st.slabs.push(SlabMeta {
            slot,
            bump: 0,
            free_head: 0,
            used: 0,
            partial_pos: NONE,
            draining: false,
        });
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
            assert!(off < self.reserved, "free of a pointer outside the engine");
            let slot = off >> self.slab_shift;
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
        let slot = self.offset_of(ptr) >> self.slab_shift;
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
        (ptr as usize).wrapping_sub(self.base.as_ptr() as usize) < self.reserved
    }

    /// `ptr`'s offset from the reservation base (meaningful when [`contains`](Self::contains)).
    #[inline]
    pub fn offset_of(&self, ptr: *const u8) -> usize {
        (ptr as usize).wrapping_sub(self.base.as_ptr() as usize)
    }

    /// The pointer at `offset` from the reservation base; panics if `offset` is outside the
    /// reservation. Inverse of [`offset_of`](Self::offset_of).
    #[inline]
    pub fn ptr_at(&self, offset: usize) -> NonNull<u8> {
        assert!(
            offset < self.reserved,
            "offset {offset} outside the reservation"
        );
        NonNull::new(self.base.as_ptr().wrapping_add(offset)).expect("inside the reservation")
    }

    /// The reservation's base address and length (the range [`contains`](Self::contains)
    /// checks).
    pub fn reservation(&self) -> (NonNull<u8>, usize) {
        (self.base, self.reserved)
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
        let st = &mut *st;
        let n = st.slabs.len() - usize::from(st.spare.is_some());
        if n < min_slabs.max(2) || st.used as f64 >= max_fill * (n * cps) as f64 {
            return Vec::new();
        }
        // Slabs needed for every used chunk, plus one spare.
        let keep = st.used.div_ceil(cps) + 1;
        let mut cand: Vec<u32> = (0..st.slabs.len() as u32)
            .filter(|&i| {
                let m = &st.slabs[i as usize];
                m.used > 0 && m.used < cps as u32 && !m.draining && st.spare != Some(i)
            })
            .collect();
        cand.sort_unstable_by_key(|&i| st.slabs[i as usize].used);
        let mut picked = Vec::new();
        let mut chunks = 0;
        for i in cand {
            if n - picked.len() <= keep {
                break;
            }
            let used = st.slabs[i as usize].used as usize;
            if chunks + used > max_chunks {
                break;
            }
            chunks += used;
            if st.slabs[i as usize].partial_pos != NONE {
                st.remove_partial(i);
            }
            let m = &mut st.slabs[i as usize];
            m.draining = true;
            picked.push(DrainSlab {
                base: self.slot_ptr(m.slot),
                carved: m.bump as usize,
                used,
            });
        }
        picked
    }

    /// Ends the draining of the slab at `base` (from [`begin_drain`](Self::begin_drain) of
    /// `class`): if it still holds used chunks it serves allocations again. A slab that
    /// emptied meanwhile has already left the draining state; then this does nothing.
    /// Returns true if the slab had emptied (it left the class, or came back to it empty).
    pub fn end_drain(&self, class: ClassId, base: NonNull<u8>) -> bool {
        let cps = self.classes.chunks_per_slab(class) as u32;
        let mut st = self.class_lock(class).lock();
        let slot = self.offset_of(base.as_ptr()) >> self.slab_shift;
        let word = self.owner[slot].load(Ordering::Relaxed);
        if word >> 32 != class.0 as u64 + 1 {
            return true;
        }
        let idx = word as u32;
        let m = &mut st.slabs[idx as usize];
        if !m.draining {
            return true;
        }
        m.draining = false;
        if m.used < cps {
            st.add_partial(idx);
        }
        false
    }

    /// Allocates a chunk of `class` only from a slab the class already uses that has a free
    /// chunk and is not draining: never the class's empty spare, the pool or new memory.
    /// `None` if there is no such chunk. This is what a compactor moves items into.
    pub fn alloc_in_place(&self, class: ClassId) -> Option<NonNull<u8>> {
        let mut st = self.class_lock(class).lock();
        let idx = *st.partial.last()?;
        if st.slabs[idx as usize].used == 0 {
            // The former spare being filled: taking from it would not compact anything.
            return None;
        }
        Some(self.pop_chunk(&mut st, class, idx))
    }

    // -----------------------------------------------------------------------------------------
    // Pool side.
    // -----------------------------------------------------------------------------------------

    /// An empty mapped slab from the pool, mapping more if needed.
    fn take_slab(&self) -> Result<u32, Error> {
        let mut pool = self.pool.lock();
        if pool.empty.is_empty() {
            self.map_more(&mut pool)?;
        }
        let slot = pool.empty.pop().expect("map_more added slabs");
        pool.low_water = pool.low_water.min(pool.empty.len());
        Ok(slot)
    }

    /// Maps up to one granule of new slabs into the pool, within the limit.
    fn map_more(&self, pool: &mut Pool) -> Result<(), Error> {
        let mut n = self.granule_slabs as usize;
        if let Some(max) = self.limit_slabs {
            n = n.min(max.saturating_sub(pool.mapped_slabs));
            if n == 0 {
                return Err(Error::LimitReached {
                    limit: self.limit.unwrap_or(0),
                });
            }
        }
        let slab = self.slab_size();
        let (start, len) = loop {
            if let Some(&h) = pool.holes.first() {
                // Map back into our own hole, as much of a contiguous run as we want.
                let mut len = 1u32;
                while (len as usize) < n && pool.holes.contains(&(h + len)) {
                    len += 1;
                }
                for s in h..h + len {
                    pool.holes.remove(&s);
                }
                let addr = self.slot_ptr(h);
                // SAFETY: MAP_FIXED_NOREPLACE replaces nothing; the range is inside our
                // reservation and page-aligned.
                match unsafe { self.os.map_fixed(addr, len as usize * slab, true) } {
                    Ok(()) => break (h, len),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        // Someone else mapped into the hole: never touch those slots again.
                        for s in h..h + len {
                            pool.state[s as usize] = SlotState::Foreign;
                        }
                        continue;
                    }
                    Err(e) => {
                        pool.holes.extend(h..h + len);
                        return Err(e.into());
                    }
                }
            }
            let avail = (self.nslots - pool.next_fresh) as usize;
            let len = n.min(avail) as u32;
            if len == 0 {
                return Err(Error::AddressSpaceExhausted {
                    reserved: self.reserved,
                });
            }
            let start = pool.next_fresh;
            // SAFETY: 1. slots `next_fresh..` are fresh: still our PROT_NONE reservation, and
            // nothing points into them; 2. slot addresses and slab sizes are page multiples.
            unsafe {
                self.os
                    .map_fixed(self.slot_ptr(start), len as usize * slab, false)?
            };
            pool.next_fresh += len;
            break (start, len);
        };
        if self.huge_pages {
            // Advice only: a kernel without THP refuses it and nothing is lost.
            let _ = self
                .os
                .advise_huge(self.slot_ptr(start), len as usize * slab);
        }
        for s in start..start + len {
            pool.state[s as usize] = SlotState::Mapped;
        }
        // Lowest address on top: pop order follows the address order.
        pool.empty.extend((start..start + len).rev());
        pool.mapped_slabs += len as usize;
        // Mapping soon after a reap released slabs means that reap misjudged demand: keep
        // that much more next time.
        let mut misjudged = len as usize;
        while misjudged > 0 {
            let Some(front) = pool.recent_releases.front_mut() else {
                break;
            };
            let take = misjudged.min(front.1);
            front.1 -= take;
            misjudged -= take;
            pool.target += take;
            if front.1 == 0 {
                pool.recent_releases.pop_front();
            }
        }
        if let Some(max) = self.max_retained {
            pool.target = pool.target.min(max);
        }
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
        let (victims, epoch) = {
            let mut pool = self.pool.lock();
            let pool = &mut *pool;
            pool.epoch += 1;
            let epoch = pool.epoch;
            let window = u64::from(self.misjudge_window);
            pool.recent_releases.retain(|&(e, _)| epoch - e <= window);
            if pool.low_water > 0 {
                pool.idle_intervals += 1;
                if pool.idle_intervals >= self.decay_after {
                    pool.target = pool.target.saturating_sub(pool.low_water.div_ceil(2));
                }
            } else {
                pool.idle_intervals = 0;
            }
            pool.target = pool.target.max(self.min_retained);
            if let Some(max) = self.max_retained {
                pool.target = pool.target.min(max);
            }
            let keep = pool.target.min(pool.empty.len());
            let victims = if pool.empty.len() > keep {
                pool.empty.sort_unstable_by(|a, b| b.cmp(a));
                // Descending: the kept lowest-addressed ones stay on top of the stack.
                let cut = pool.empty.len() - keep;
                let victims: Vec<u32> = pool.empty.drain(..cut).collect();
                for &s in &victims {
                    pool.state[s as usize] = SlotState::Releasing;
                }
                victims
            } else {
                Vec::new()
            };
            pool.low_water = pool.empty.len();
            (victims, epoch)
        };
        let report = self.release_slots(victims, Unmap::Runs);
        if report.slabs > 0 {
            self.pool
                .lock()
                .recent_releases
                .push_back((epoch, report.slabs));
        }
        report
    }

    /// A hint that demand fell (a flush, a mass free): the retention target drops to its floor
    /// and the record of earlier reaps' releases is forgotten, so the next
    /// [`reap`](Self::reap) returns every pooled slab beyond the floor to the OS. (Mapping
    /// again soon after that reap still counts as its misjudgement and raises the target, as
    /// after any reap.) Counted in [`Stats::demand_drops`].
    pub fn demand_dropped(&self) {
        let mut pool = self.pool.lock();
        pool.target = self.min_retained;
        pool.idle_intervals = 0;
        pool.recent_releases.clear();
        pool.demand_drops += 1;
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
        let victims = {
            let mut pool = self.pool.lock();
            let victims = std::mem::take(&mut pool.empty);
            for &s in &victims {
                pool.state[s as usize] = SlotState::Releasing;
            }
            pool.low_water = 0;
            victims
        };
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
        let slab = self.slab_size();
        let mut report = ReleaseReport::default();
        let mut failed = Vec::new();
        for r in &runs {
            let bytes = r.len as usize * slab;
            if how == Unmap::Pages {
                const PAGE: usize = 4096;
                let start = self.slot_ptr(r.start);
                for off in (0..bytes).step_by(PAGE) {
                    let page = NonNull::new(start.as_ptr().wrapping_add(off)).expect("in slab");
                    report.munmap_calls += 1;
                    // SAFETY: as below: the page lies in a slot marked `Releasing`. A failed
                    // page leaves the slot unusable, so it is counted as released either way
                    // (mapping it back then meets EEXIST and marks it foreign).
                    let _ = unsafe { self.os.unmap(page, PAGE) };
                }
                report.slabs += r.len as usize;
                report.bytes += bytes;
                report.runs += 1;
                continue;
            }
            report.munmap_calls += 1;
            // SAFETY: the run's slots are marked `Releasing`: mapped by us, owned by no class
            // (so no chunk in them is handed out), and no other code maps or uses them until we
            // mark them again below.
            match unsafe { self.os.unmap(self.slot_ptr(r.start), bytes) } {
                Ok(()) => {
                    report.slabs += r.len as usize;
                    report.bytes += bytes;
                    report.runs += 1;
                }
                Err(_) => failed.push(*r),
            }
        }
        let mut pool = self.pool.lock();
        for r in &runs {
            let ok = !failed.contains(r);
            for s in r.start..r.start + r.len {
                if ok {
                    pool.state[s as usize] = SlotState::Hole;
                    pool.holes.insert(s);
                } else {
                    pool.state[s as usize] = SlotState::Mapped;
                    pool.empty.push(s);
                }
            }
        }
        pool.mapped_slabs -= report.slabs;
        pool.released_slabs += report.slabs as u64;
        pool.released_bytes += report.bytes as u64;
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
            mapped_bytes: pool.mapped_slabs * self.slab_size(),
            reserved_bytes: self.reserved,
            limit: self.limit,
            mmap_calls: calls.mmap,
            munmap_calls: calls.munmap,
            madvise_calls: calls.madvise,
            released_bytes: pool.released_bytes,
            released_slabs: pool.released_slabs,
            pooled_slabs: pool.empty.len(),
            retention_target_slabs: pool.target,
            demand_drops: pool.demand_drops,
            slab_size: self.slab_size(),
            classes,
        }
    }
}

impl Drop for SlabEngine {
    fn drop(&mut self) {
        // Unmap what is ours: the alignment slack and every slot that is fresh or mapped, in
        // maximal runs. Holes may hold someone else's mapping by now and are skipped.
        let pool = self.pool.lock();
        let raw_start = self.raw.as_ptr() as usize;
        let base = self.base.as_ptr() as usize;
        let slab = self.slab_size();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut push = |start: usize, len: usize| match runs.last_mut() {
            Some((s, l)) if *s + *l == start => *l += len,
            _ => runs.push((start, len)),
        };
        push(raw_start, base - raw_start);
        for (i, st) in pool.state.iter().enumerate() {
            if matches!(st, SlotState::Fresh | SlotState::Mapped) {
                push(base + i * slab, slab);
            }
        }
        let end = base + self.reserved;
        push(end, raw_start + self.raw_len - end);
        drop(pool);
        for (start, len) in runs {
            if len == 0 {
                continue;
            }
            let p = NonNull::new(self.raw.as_ptr().wrapping_add(start - raw_start))
                .expect("inside the reservation");
            // SAFETY: the range is part of our reservation and is either still reserved or
            // mapped by us; `&mut self` means no chunk handed out is in use any more (the
            // caller's contract on freed pointers; outstanding chunks die with the engine).
            let _ = unsafe { self.os.unmap(p, len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Checks the links between `slabs`, `partial`, `spare` and the owner table.
    fn check(st: &ClassState, class: ClassId, owner: &[AtomicU64]) {
        for (pos, &idx) in st.partial.iter().enumerate() {
            assert_eq!(st.slabs[idx as usize].partial_pos, pos as u32);
        }
        let in_partial = st.slabs.iter().filter(|m| m.partial_pos != NONE).count();
        assert_eq!(in_partial, st.partial.len());
        if let Some(s) = st.spare {
            assert_eq!(st.slabs[s as usize].partial_pos, NONE);
        }
        for (idx, m) in st.slabs.iter().enumerate() {
            assert_eq!(
                owner[m.slot as usize].load(Ordering::Relaxed),
                owner_word(class, idx as u32)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 3 } else { 128 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Adding and removing slabs and partial entries in any order keeps every index and
        /// every owner word consistent (the bookkeeping `free_batch` and `drain_spares` rely
        /// on). No memory is mapped, so Miri runs this.
        #[test]
        fn class_lists_stay_consistent(ops in prop::collection::vec((0u8..4, any::<u16>()), 1..120)) {
            let class = ClassId(3);
            let owner: Vec<AtomicU64> = (0..64).map(|_| AtomicU64::new(0)).collect();
            let mut st = ClassState::default();
            let mut free_slots: Vec<u32> = (0..64).collect();
            for (op, r) in ops {
                let n = st.slabs.len();
                match op {
                    0 if !free_slots.is_empty() => {
                        let slot = free_slots.swap_remove(r as usize % free_slots.len());
                        let idx = n as u32;
                        st.slabs.push(SlabMeta { slot, bump: 0, free_head: 0, used: 0, partial_pos: NONE, draining: false });
                        owner[slot as usize].store(owner_word(class, idx), Ordering::Relaxed);
                        st.add_partial(idx);
                    }
                    1 if !st.partial.is_empty() => {
                        let idx = st.partial[r as usize % st.partial.len()];
                        st.remove_partial(idx);
                    }
                    2 if n > 0 => {
                        let idx = (r as usize % n) as u32;
                        if st.slabs[idx as usize].partial_pos == NONE && st.spare != Some(idx) {
                            if st.spare.is_none() {
                                st.spare = Some(idx);
                            } else {
                                let slot = st.remove_slab(idx, class, &owner);
                                prop_assert_eq!(owner[slot as usize].load(Ordering::Relaxed), 0);
                                free_slots.push(slot);
                            }
                        }
                    }
                    3 => {
                        if let Some(idx) = st.spare.take() {
                            if r % 2 == 0 {
                                st.add_partial(idx);
                            } else {
                                free_slots.push(st.remove_slab(idx, class, &owner));
                            }
                        }
                    }
                    _ => {}
                }
                check(&st, class, &owner);
                prop_assert_eq!(st.slabs.len() + free_slots.len(), 64);
            }
        }
    }

    #[test]
    fn free_list_links_round_trip() {
        // Links are unaligned-safe: store and load at every offset of a buffer.
        let mut buf = [0u8; 16];
        for off in 0..12 {
            let p = NonNull::new(buf.as_mut_ptr().wrapping_add(off)).unwrap();
            // SAFETY: `p..p+4` lies inside `buf`, which nothing else uses.
            unsafe { link::write(p, 0xDEAD_0000 + off as u32) };
            // SAFETY: as above.
            assert_eq!(unsafe { link::read(p) }, 0xDEAD_0000 + off as u32);
        }
    }
}
