//! Live re-classing: a running store takes a new list of chunk sizes.
//!
//! # Spares
//!
//! The engine is built with the store's table (the default classes, or `-o slab_sizes`)
//! followed by *spare* classes: every multiple of 8 from 16 bytes to [`FINE_GRID_MAX`],
//! then every multiple of [`COARSE_STEP`] up to the largest chunk, minus the sizes the
//! table already has ([`spare_sizes`](super::spare_sizes), in `classes.rs`). A spare
//! costs a few bytes until it is used: the engine, the depots and the store create a
//! class's state on first use (see `slab_core::lazy`). A list given to
//! [`Store::set_classes`] picks its classes from the table and the spares; sizes off
//! that grid are refused.
//!
//! # What a re-class does
//!
//! * The size lookup (`Placement` in `classes.rs`) is rewritten entry by entry: a store
//!   that runs meanwhile gets the old class or the new one for its size, and either holds
//!   it. New items go to the listed classes from then on. The largest class always stays: chained
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
use std::sync::atomic::Ordering;

use slab_core::engine::size_class::ClassId;

use super::classes::{on_grid, COARSE_STEP, FINE_GRID_MAX};
use super::stats::bump;
use super::Store;
use crate::item::{tag_atomic, CHAINED, LIVE};

/// Most sizes one `slabs classes` list may name.
pub const MAX_LISTED: usize = 1000;
/// Items one maintenance step migrates out of retired classes at most.
pub const MIGRATE_BUDGET: usize = 1 << 16;

impl Store {
    /// Bumped while retired classes hold slabs: worker threads that see it change give
    /// their magazines back (`SlabAllocator::flush_thread_cache`), so free chunks of
    /// retired classes cached there do not keep slabs in use.
    pub fn cache_flush_requests(&self) -> u64 {
        self.placement.flush_requests()
    }

    /// The chunk sizes new items go to, ascending.
    pub fn active_classes(&self) -> Vec<usize> {
        self.placement.active_sizes(self.classes())
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
        self.placement.set(all, ids);
        bump(&self.counters.global.slab_reclasses);
        Ok(())
    }

    /// One migration step: moves up to `budget` inline items out of retired classes into
    /// the classes new items of their size go to. Returns how many moved.
    pub(super) fn migrate(&self, budget: usize) -> usize {
        let retired = self.placement.retired(self.engine().classes_in_use());
        let _walk = self.mem.walk();
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
                self.mem.alloc.drain_depots();
                drained = true;
            }
            // Whatever moves, threads' magazines may hold free chunks of the class: ask the
            // workers to give theirs back.
            self.placement.request_flush();
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
        let mut shard = self.index.lock_tag(h24);
        let Some(slot) = shard.slot(h24, handle) else {
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
        let dst = self.placement.class_for(size).filter(|&d| d != class)?;
        let dest = self.mem.alloc.alloc_class(dst).ok()?;
        // SAFETY: 1. `p` and `dest` are distinct chunks, both at least `size` bytes (`p`
        // holds the item, `dest`'s class was picked for its size), in mapped slabs (the walk
        // lock keeps them mapped); 2. `slot` is the item's and its shard is locked, and
        // `dest` was just allocated for us and is reachable by nobody.
        unsafe { self.relocate(slot, p, dest, size) };
        let stored = it.stored_size();
        drop(shard);
        self.counters.moved(class, dst, stored);
        // SAFETY: the item at `p` was unlinked (its handle swapped for the copy's) under its
        // shard lock; nobody can reach the chunk any more, and it is of `class`.
        unsafe { self.mem.alloc.dealloc_class(p, class) };
        bump(&self.counters.global.items_migrated);
        Some(true)
    }
}
