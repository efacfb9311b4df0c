//! Live re-classing: a running store takes a new list of chunk sizes.
//!
//! # Spares
//!
//! The engine is built with the store's table (the default classes, or `-o slab_sizes`)
//! followed by *spare* classes: every multiple of 8 from 16 bytes to
//! [`FINE_GRID_MAX`], then every multiple of [`COARSE_STEP`] up to the largest chunk, minus
//! the sizes the table already has ([`spare_sizes`]). A spare costs a few bytes until it is
//! used: the engine, the depots and the store create a class's state on first use (see
//! `slab_core::lazy`). A list given to [`Store::set_classes`] picks its classes from the
//! table and the spares; sizes off that grid are refused.
//!
//! # What a re-class does
//!
//! * The size lookup ([`Store::class_for`]) is rewritten entry by entry: a store that runs
//!   meanwhile gets the old class or the new one for its size, and either holds it. New
//!   items go to the listed classes from then on. The largest class always stays: chained
//!   values take their segments from it.
//! * Classes left out are *retired*. Their items stay readable and are freed as usual when
//!   they are replaced, deleted, expire or are evicted. Each maintenance step also
//!   *migrates* up to [`MIGRATE_BUDGET`] of their items into the listed classes (the same
//!   move as compaction's: under the shard lock, tag written last, handle swapped; CAS,
//!   flags, expiry and access time travel with the bytes), so a retired class empties even
//!   if nobody writes its keys again, and its slabs go back to the pool and the OS.
//! * Chained (large) items stay where they are: their head lists its segments by handle.
//!
//! `stats` counts `slab_reclasses` and `items_migrated`; `stats slabs` shows every class
//! that holds slabs, retired or listed.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use slab_core::size_class::{ClassId, SizeClasses};

use super::{lock, table_hash, Store};
use crate::item::{tag_atomic, CHAINED, LIVE};

/// Spare classes step by 8 bytes up to this chunk size...
pub const FINE_GRID_MAX: usize = 32 << 10;
/// ... and by this many bytes above it.
pub const COARSE_STEP: usize = 256;
/// Most sizes one `slabs classes` list may name.
pub const MAX_LISTED: usize = 1000;
/// Items one maintenance step migrates out of retired classes at most.
pub const MIGRATE_BUDGET: usize = 1 << 16;

/// The size lookup's granule: sizes are looked up in steps of 4 bytes.
const GRANULE_SHIFT: u32 = 2;

/// Whether `size` is on the spare grid.
fn on_grid(size: usize) -> bool {
    if size <= FINE_GRID_MAX {
        size % 8 == 0
    } else {
        size % COARSE_STEP == 0
    }
}

/// The spare sizes for a table: the grid from 16 bytes up to (not including) the table's
/// largest chunk, minus the table's own sizes.
pub fn spare_sizes(table: &SizeClasses) -> Vec<usize> {
    let top = table.max_chunk();
    let own = &table.sizes()[..table.base_len()];
    let mut out = Vec::new();
    let mut s = 16;
    while s < top {
        if own.binary_search(&s).is_err() {
            out.push(s);
        }
        s += if s < FINE_GRID_MAX { 8 } else { COARSE_STEP };
    }
    out
}

/// The size lookup: for every size up to the largest chunk (in 4-byte steps), the class new
/// items of that size go to.
#[derive(Debug)]
pub(crate) struct Lookup {
    table: Box<[AtomicU16]>,
}

impl Lookup {
    /// The lookup of `classes`' table proper.
    pub(crate) fn new(classes: &SizeClasses) -> Self {
        let n = (classes.max_chunk() >> GRANULE_SHIFT) + 1;
        let table = (0..n)
            .map(|g| {
                let c = classes
                    .class_for(g << GRANULE_SHIFT)
                    .expect("sizes up to the largest chunk have a class");
                AtomicU16::new(c.0)
            })
            .collect();
        Lookup { table }
    }

    /// The class for `size`, or `None` above the largest chunk.
    #[inline]
    pub(crate) fn get(&self, size: usize) -> Option<ClassId> {
        let g = (size + (1 << GRANULE_SHIFT) - 1) >> GRANULE_SHIFT;
        self.table
            .get(g)
            .map(|c| ClassId(c.load(Ordering::Relaxed)))
    }

    /// Points every size at the smallest of `classes` (ascending chunk sizes, the last
    /// one the largest chunk) that holds it.
    fn set(&self, all: &SizeClasses, classes: &[ClassId]) {
        let mut k = 0;
        for (g, slot) in self.table.iter().enumerate() {
            let size = g << GRANULE_SHIFT;
            while all.chunk_size(classes[k]) < size {
                k += 1;
            }
            slot.store(classes[k].0, Ordering::Relaxed);
        }
    }
}

/// The classes new items go to (ascending chunk sizes), changed by `slabs classes`.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) classes: Vec<ClassId>,
    /// Per class id: listed (or the largest class).
    pub(crate) listed: Vec<bool>,
}

impl Active {
    pub(crate) fn new(all: &SizeClasses) -> Self {
        let classes: Vec<ClassId> = (0..all.base_len()).map(|i| ClassId(i as u16)).collect();
        let mut listed = vec![false; all.len()];
        listed[..all.base_len()].fill(true);
        Active { classes, listed }
    }
}

impl Store {
    /// Every class of the engine: the store's table, then the spares.
    #[inline]
    pub(crate) fn classes(&self) -> &SizeClasses {
        self.alloc.engine().classes()
    }

    /// The class whose chunks are the largest: chained values' segments come from it.
    #[inline]
    pub(crate) fn top_class(&self) -> ClassId {
        ClassId((self.classes().base_len() - 1) as u16)
    }

    /// The class a new item of `size` bytes goes to (`None` above the largest chunk).
    #[inline]
    pub(crate) fn class_for(&self, size: usize) -> Option<ClassId> {
        self.lookup.get(size)
    }

    /// Bumped while retired classes hold slabs: worker threads that see it change give
    /// their magazines back (`SlabAllocator::flush_thread_cache`), so free chunks of
    /// retired classes cached there do not keep slabs in use.
    pub fn cache_flush_requests(&self) -> u64 {
        self.flush_requests.load(Ordering::Relaxed)
    }

    /// The chunk sizes new items go to, ascending.
    pub fn active_classes(&self) -> Vec<usize> {
        let classes = self.classes();
        lock(&self.active)
            .classes
            .iter()
            .map(|&c| classes.chunk_size(c))
            .collect()
    }

    /// `slabs classes <a>-<b>-...`: new items go to classes of these chunk sizes from now on
    /// (retired classes migrate in the background). Sizes are rounded up to multiples of 8 and must then be
    /// at least 16, strictly ascending and on the grid; a class of the largest chunk is
    /// appended when the list stops below it. Returns the reason when the list is refused
    /// (nothing changes then).
    pub fn set_classes(&self, sizes: &[usize]) -> Result<(), String> {
        let all = self.classes();
        let top = all.max_chunk();
        if sizes.is_empty() {
            return Err("no sizes".into());
        }
        if sizes.len() > MAX_LISTED {
            return Err(format!("{} sizes, at most {MAX_LISTED}", sizes.len()));
        }
        let mut ids = Vec::with_capacity(sizes.len() + 1);
        let mut prev = 0;
        for &s in sizes {
            let r = s.next_multiple_of(8);
            if r < 16 {
                return Err(format!("size {s} is below 16"));
            }
            if r > top {
                return Err(format!("size {s} is above the largest chunk {top}"));
            }
            if r <= prev {
                return Err(format!(
                    "size {s} (rounded to {r}) does not follow {prev} (sizes must be strictly ascending)"
                ));
            }
            let id = all.class_of_size(r).filter(|_| r == top || on_grid(r));
            let Some(id) = id else {
                return Err(format!(
                    "size {s} is off the grid (multiples of 8 up to {FINE_GRID_MAX}, of \
                     {COARSE_STEP} above)"
                ));
            };
            ids.push(id);
            prev = r;
        }
        if prev < top {
            ids.push(self.top_class());
        }
        let mut active = lock(&self.active);
        self.lookup.set(all, &ids);
        active.listed.fill(false);
        for &c in &ids {
            active.listed[c.index()] = true;
        }
        active.classes = ids;
        drop(active);
        super::stats::bump(&self.global.slab_reclasses);
        Ok(())
    }

    /// One migration step: moves up to `budget` inline items out of retired classes into
    /// the classes new items of their size go to. Returns how many moved.
    pub(crate) fn migrate(&self, budget: usize) -> usize {
        let retired: Vec<ClassId> = {
            let active = lock(&self.active);
            (0..self.engine().classes_in_use())
                .map(|i| ClassId(i as u16))
                .filter(|c| !active.listed[c.index()])
                .collect()
        };
        let _walk = self.walk_lock.read().unwrap_or_else(|e| e.into_inner());
        let mut moved = 0;
        let mut drained = false;
        for &class in &retired {
            let mut slabs: Vec<(NonNull<u8>, usize)> = Vec::new();
            self.engine()
                .for_each_slab(class, |base, carved| slabs.push((base, carved)));
            if slabs.is_empty() {
                continue;
            }
            if !drained {
                // Free chunks cached in magazines would keep retired slabs in use.
                self.alloc.drain_depots();
                drained = true;
            }
            // Whatever moves, threads' magazines may hold free chunks of the class: ask the
            // workers to give theirs back.
            self.flush_requests.fetch_add(1, Ordering::Relaxed);
            let cs = self.classes().chunk_size(class);
            for (base, carved) in slabs {
                for ci in 0..carved {
                    if moved >= budget {
                        return moved;
                    }
                    let p =
                        NonNull::new(base.as_ptr().wrapping_add(ci * cs)).expect("inside a slab");
                    match self.migrate_item(p, &retired) {
                        Some(true) => moved += 1,
                        Some(false) => {}
                        None => return moved,
                    }
                }
            }
        }
        moved
    }

    /// Moves the item in chunk `p` (listed as in a slab of a retired class) to a chunk of
    /// the class its size maps to now. `Some(true)` if it moved, `Some(false)` if `p` holds no linked inline item,
    /// `None` if no chunk could be had without evicting.
    fn migrate_item(&self, p: NonNull<u8>, retired: &[ClassId]) -> Option<bool> {
        let tag = tag_atomic(p).load(Ordering::Acquire);
        if tag & LIVE == 0 || tag & CHAINED != 0 {
            return Some(false);
        }
        let h24 = tag >> 8;
        let handle = self.handle_of(p);
        let mut shard = self.lock_shard(self.shard_of(h24));
        let Some(slot) = shard.table.find_mut(table_hash(h24), |&h| h == handle) else {
            return Some(false);
        };
        // `handle` is linked in this shard and we hold its lock: nobody else reads or writes
        // the item (the eviction hand only touches its tag, atomically).
        let it = self.item(handle);
        if it.bits() & CHAINED != 0 {
            return Some(false);
        }
        // The slab may have left `class` and joined another since the caller listed it: the
        // class that counts is the one owning the slab now (stable while the item is linked
        // and we hold its lock).
        let class = self.class_of(handle);
        if retired.binary_search(&class).is_err() {
            return Some(false);
        }
        let size = it.head_size();
        let dst = self.class_for(size).filter(|&d| d != class)?;
        let dest = self.alloc.alloc_class(dst).ok()?;
        // SAFETY: 1. `p` and `dest` are distinct chunks, both at least `size` bytes (`p`
        // holds the item, `dest`'s class was picked for its size), in mapped slabs (the walk
        // lock keeps them mapped); 2. the item at `p` is linked and its shard is locked, so
        // its bytes are stable, and `dest` was just allocated for us and is reachable by
        // nobody; 3. the tag word (bytes 8..12) is skipped: the eviction hand may read
        // either tag at any time, so it is written atomically below.
        unsafe {
            std::ptr::copy_nonoverlapping(p.as_ptr(), dest.as_ptr(), 8);
            std::ptr::copy_nonoverlapping(p.as_ptr().add(12), dest.as_ptr().add(12), size - 12);
        }
        tag_atomic(dest).store(tag_atomic(p).load(Ordering::Acquire), Ordering::Release);
        *slot = self.handle_of(dest);
        it.clear_bits(LIVE);
        let stored = it.stored_size() as u64;
        drop(shard);
        let (from, to) = (&self.gauges[class.index()], &self.gauges[dst.index()]);
        for (g, up) in [(to, true), (from, false)] {
            let op = |a: &std::sync::atomic::AtomicU64, v: u64| {
                if up {
                    a.fetch_add(v, Ordering::Relaxed)
                } else {
                    a.fetch_sub(v, Ordering::Relaxed)
                }
            };
            op(&g.number, 1);
            op(&g.chunks, 1);
            op(&g.bytes, stored);
        }
        // SAFETY: the item at `p` was unlinked (its handle swapped for the copy's) under its
        // shard lock; nobody can reach the chunk any more, and it is of `class`.
        unsafe { self.alloc.dealloc_class(p, class) };
        super::stats::bump(&self.global.items_migrated);
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{default_classes, DEFAULT_SLAB_SIZE};

    #[test]
    fn spares_fill_the_grid_below_the_top() {
        let t = default_classes(DEFAULT_SLAB_SIZE, 1 << 20);
        let s = spare_sizes(&t);
        let top = t.max_chunk();
        assert!(s.iter().all(|&x| x >= 16 && x < top && on_grid(x)));
        assert!(s.iter().all(|x| t.sizes().binary_search(x).is_err()));
        // Every grid size below the top is a class, table or spare.
        let all = t.with_spares(&s).unwrap();
        for g in (16..top).step_by(8) {
            assert!(all.class_of_size(g).is_some(), "{g}");
        }
        assert!(all.len() < 4200, "{}", all.len());
    }
}
