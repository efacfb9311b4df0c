//! Compaction: when a class holds many sparsely filled slabs (say half of a big load was
//! deleted), live items move out of the sparsest slabs into free chunks of fuller ones, so
//! whole slabs empty and go back to the pool (and from there to the OS at the next reap).
//!
//! # How an item moves
//!
//! The engine marks the picked slabs *draining* (`SlabEngine::begin_drain`): no allocation
//! takes a chunk from them any more. For each chunk of such a slab whose tag is `LIVE`, the
//! compactor locks the item's shard (found from the tag's hash bits, as the eviction hand
//! does), checks that the index holds this very handle, takes a destination chunk with
//! `SlabEngine::alloc_in_place` (a free chunk of a slab the class already uses and that is
//! not draining: never new memory), copies the chunk (the tag last, atomically), swaps the
//! handle in the index, clears `LIVE` on the old copy and unlocks; the old chunks go back to
//! the engine after the slab is done. Readers copy values out only under the shard lock, so
//! a concurrent `get` sees the old copy or the new one, whole; CAS, flags, exptime, the
//! access time and the tag bits travel with the bytes. Writers that looked an item up, let
//! the lock go and come back (append, prepend) compare handles and retry when it moved.
//!
//! # What stays put
//!
//! * Chained items (values longer than the largest chunk) are skipped: their head lists its
//!   segments by handle and segments are not linked in the index, so moving either would
//!   need more than one swap. A slab that holds a chained head or a segment does not empty.
//! * Chunks cached in magazines are in use as far as the engine knows. The compactor first
//!   gives the depots' and its own thread's magazines back (`SlabAllocator::drain_depots`);
//!   the two magazines per class of each other thread (at most 64 KiB of chunks each) can
//!   still pin a picked slab. Then the slab simply serves allocations again after the step
//!   (`SlabEngine::end_drain`), and its free chunks are used first by the next step.
//!
//! # When
//!
//! [`Store::maintenance`] runs one step per interval, under the walk lock's read side (so
//! no slab it reads is unmapped meanwhile). A class is compacted when it holds at least
//! [`COMPACT_MIN_SLABS`] slabs filled below [`COMPACT_MAX_FILL`]; the engine then picks the
//! sparsest slabs while the rest can take their items with a slab to spare. A step moves at
//! most [`COMPACT_BUDGET`] items. `stats` counts `slabs_compacted` and `items_moved`.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use slab_core::engine::size_class::ClassId;

use super::stats::bump;
use super::Store;
use crate::item::{tag_atomic, CHAINED, LIVE};

/// A class is compacted only when it holds at least this many slabs.
pub const COMPACT_MIN_SLABS: usize = 4;
/// ... and its slabs hold used chunks below this fraction of their capacity.
pub const COMPACT_MAX_FILL: f64 = 0.75;
/// Items one compaction step moves at most.
pub const COMPACT_BUDGET: usize = 1 << 17;

/// What became of one chunk of a draining slab.
enum Move {
    /// Moved to a chunk of a fuller slab.
    Moved,
    /// Not a linked inline item: free, being built, a segment, a chained head.
    Skipped,
    /// The class has no free chunk outside draining slabs.
    NoRoom,
}

/// What a compaction step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Slabs emptied.
    pub slabs: u64,
    /// Items moved.
    pub items: u64,
}

impl Store {
    /// One compaction step over every class, moving at most `budget` items: the sparsest
    /// slabs of classes filled below [`COMPACT_MAX_FILL`] are emptied into fuller ones
    /// (chained items stay put). [`maintenance`](Store::maintenance) runs one step with
    /// [`COMPACT_BUDGET`]; the store module's docs describe how an item moves.
    pub fn compact(&self, budget: usize) -> CompactReport {
        let _walk = self.mem.walk();
        let engine = self.mem.alloc.engine();
        let mut report = CompactReport::default();
        let mut left = budget;
        // Which classes are sparse (one snapshot): the caches are drained only if some is.
        let es = engine.stats();
        let sparse: Vec<ClassId> = es
            .classes
            .iter()
            .filter(|cls| {
                let n = cls.slabs - cls.empty_slabs;
                n >= COMPACT_MIN_SLABS
                    && (cls.used_chunks as f64)
                        < COMPACT_MAX_FILL * (n * cls.chunks_per_slab) as f64
            })
            .map(|cls| cls.class)
            .collect();
        if !sparse.is_empty() {
            self.mem.alloc.drain_depots();
        }
        for class in sparse {
            if left == 0 {
                break;
            }
            let picked = engine.begin_drain(class, COMPACT_MIN_SLABS, COMPACT_MAX_FILL, left);
            if picked.is_empty() {
                continue;
            }
            let cs = self.classes().chunk_size(class);
            let mut old: Vec<NonNull<u8>> = Vec::new();
            let mut no_room = false;
            for d in &picked {
                for ci in 0..d.carved {
                    if no_room || left == 0 {
                        break;
                    }
                    let p =
                        NonNull::new(d.base.as_ptr().wrapping_add(ci * cs)).expect("inside a slab");
                    match self.move_item(p, class) {
                        Move::Moved => {
                            old.push(p);
                            left -= 1;
                        }
                        Move::Skipped => {}
                        Move::NoRoom => no_room = true,
                    }
                }
                if !old.is_empty() {
                    report.items += old.len() as u64;
                    // SAFETY: each chunk held an item that was unlinked (its handle swapped
                    // for the copy's) under its shard lock; nobody can reach it any more and
                    // it is listed once. All are of `class`.
                    unsafe { engine.free_batch(class, &old) };
                    old.clear();
                }
            }
            for d in &picked {
                if engine.end_drain(class, d.base) {
                    report.slabs += 1;
                }
            }
        }
        for _ in 0..report.slabs {
            bump(&self.counters.global.slabs_compacted);
        }
        self.counters
            .global
            .items_moved
            .fetch_add(report.items, Ordering::Relaxed);
        report
    }

    /// Moves the item in chunk `p` of a draining slab of `class`, if it is a linked inline
    /// item, to a chunk of a slab that is not draining.
    fn move_item(&self, p: NonNull<u8>, class: ClassId) -> Move {
        let tag = tag_atomic(p).load(Ordering::Acquire);
        if tag & LIVE == 0 || tag & CHAINED != 0 {
            return Move::Skipped;
        }
        let h24 = tag >> 8;
        let handle = self.handle_of(p);
        let mut shard = self.index.lock_tag(h24);
        let Some(slot) = shard.slot(h24, handle) else {
            return Move::Skipped;
        };
        // Now `handle` is linked in this shard and we hold its lock: nobody else reads or
        // writes the item (the eviction hand only touches its tag, atomically).
        // A draining slab whose last chunk was freed leaves the class and may serve another
        // one by now: only an item still in `class` moves.
        if self.item(handle).bits() & CHAINED != 0 || self.class_of(handle) != class {
            return Move::Skipped;
        }
        let Some(dest) = self.mem.alloc.engine().alloc_in_place(class) else {
            return Move::NoRoom;
        };
        let cs = self.classes().chunk_size(class);
        // SAFETY: 1. `p` and `dest` are distinct chunks of `cs` bytes of `class` in mapped
        // slabs (the walk lock keeps them mapped); 2. `slot` is the item's, its shard is
        // locked, and `dest` was just handed to us by the engine and is reachable by nobody.
        unsafe { self.relocate(slot, p, dest, cs) };
        Move::Moved
    }
}
