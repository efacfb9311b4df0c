//! Counters, named after memcached's `stats`, `stats items` and `stats slabs` fields.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub(crate) struct $name { $($(#[$fm])* pub(crate) $f: AtomicU64,)* }
        impl $name {
            pub(crate) fn reset(&self) { $(self.$f.store(0, Ordering::Relaxed);)* }
        }
    };
}

counters!(
    /// Store-wide counters without a class.
    GlobalCounters {
        get_misses, get_expired, get_flushed, delete_misses, incr_misses, decr_misses,
        cas_misses, touch_misses, total_items, cmd_touch, cmd_flush, slabs_moved,
        memory_shrinks, heap_trims, slabs_compacted, items_moved, slab_reclasses,
        items_migrated,
    }
);

counters!(
    /// Per-class counters (`stats slabs` / `stats items`).
    ClassCounters {
        get_hits, cmd_set, delete_hits, incr_hits, decr_hits, cas_hits, cas_badval,
        touch_hits, evicted, evicted_nonzero, outofmemory, reclaimed, expired_unfetched,
        evicted_unfetched, crawler_reclaimed,
    }
);

/// Per-class gauges (not reset by `stats reset`).
#[derive(Debug, Default)]
pub(crate) struct ClassGauges {
    /// Items linked.
    pub(crate) number: AtomicU64,
    /// Chunks the store holds (item heads, segments, items being built).
    pub(crate) chunks: AtomicU64,
    /// Bytes of those items ([`crate::item::stored_size`]).
    pub(crate) bytes: AtomicU64,
    /// Age in seconds of the last access of the last evicted item, when evicted.
    pub(crate) evicted_time: AtomicU32,
    /// Oldest last-access time seen by the last maintenance pass (server clock; 0 = none).
    pub(crate) oldest_access: AtomicU32,
}

#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[inline]
pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One size class's figures, with memcached's field names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// memcached's 1-based class id.
    pub id: usize,
    /// Chunk size in bytes.
    pub chunk_size: usize,
    /// Chunks per slab (memcached's "page").
    pub chunks_per_page: usize,
    /// Slabs the class holds.
    pub total_pages: usize,
    /// `total_pages * chunks_per_page`.
    pub total_chunks: usize,
    /// Chunks holding an item head or a segment.
    pub used_chunks: usize,
    /// Chunks not in use (`total_chunks - used_chunks`).
    pub free_chunks: usize,
    /// Chunks at the end of slabs never handed out yet.
    pub free_chunks_end: usize,
    /// Bytes of the items whose head is in this class (memcached's `mem_requested`).
    pub mem_requested: u64,
    /// Hits of `get`/`gets`/`gat`.
    pub get_hits: u64,
    /// Store commands for items of this class.
    pub cmd_set: u64,
    /// Successful deletes.
    pub delete_hits: u64,
    /// Successful increments.
    pub incr_hits: u64,
    /// Successful decrements.
    pub decr_hits: u64,
    /// Successful `cas`.
    pub cas_hits: u64,
    /// `cas` with a stale unique.
    pub cas_badval: u64,
    /// Successful touches.
    pub touch_hits: u64,
    /// Items linked (`stats items` `number`).
    pub number: u64,
    /// Seconds since the last access of the least recently used item, as of the last
    /// maintenance pass.
    pub age: u32,
    /// Items evicted to make room.
    pub evicted: u64,
    /// Evicted items that had an expiration time.
    pub evicted_nonzero: u64,
    /// Seconds since the last access of the last evicted item.
    pub evicted_time: u32,
    /// Stores that failed for lack of memory.
    pub outofmemory: u64,
    /// Expired or flushed items whose memory was reused.
    pub reclaimed: u64,
    /// Reclaimed items never fetched.
    pub expired_unfetched: u64,
    /// Evicted items never fetched.
    pub evicted_unfetched: u64,
    /// Items reclaimed by the background pass.
    pub crawler_reclaimed: u64,
}

/// A snapshot of the store's counters; see [`crate::store::Store::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Items linked now.
    pub curr_items: u64,
    /// Items ever stored.
    pub total_items: u64,
    /// Bytes of the items linked now (our stored sizes).
    pub bytes: u64,
    /// Items evicted to make room.
    pub evictions: u64,
    /// Expired or flushed items reclaimed.
    pub reclaimed: u64,
    /// Reclaimed items never fetched.
    pub expired_unfetched: u64,
    /// Evicted items never fetched.
    pub evicted_unfetched: u64,
    /// Items reclaimed by the background pass.
    pub crawler_reclaimed: u64,
    /// Key hits.
    pub get_hits: u64,
    /// Key misses.
    pub get_misses: u64,
    /// Misses on expired items.
    pub get_expired: u64,
    /// Misses on flushed items.
    pub get_flushed: u64,
    /// Store commands.
    pub cmd_set: u64,
    /// Touch commands (`touch`, `gat`, `gats`).
    pub cmd_touch: u64,
    /// `flush_all` commands.
    pub cmd_flush: u64,
    /// Successful deletes.
    pub delete_hits: u64,
    /// Deletes of absent keys.
    pub delete_misses: u64,
    /// Successful increments.
    pub incr_hits: u64,
    /// Increments of absent keys.
    pub incr_misses: u64,
    /// Successful decrements.
    pub decr_hits: u64,
    /// Decrements of absent keys.
    pub decr_misses: u64,
    /// Successful `cas`.
    pub cas_hits: u64,
    /// `cas` of absent keys.
    pub cas_misses: u64,
    /// `cas` with a stale unique.
    pub cas_badval: u64,
    /// Successful touches.
    pub touch_hits: u64,
    /// Touches of absent keys.
    pub touch_misses: u64,
    /// Stores refused for lack of memory.
    pub outofmemory: u64,
    /// `-m` in bytes (memcached's `limit_maxbytes`).
    pub limit_maxbytes: u64,
    /// Bytes of slabs held by classes (memcached's `total_malloced`).
    pub total_malloced: u64,
    /// Classes holding at least one slab.
    pub active_slabs: usize,
    /// Slabs moved: emptied for a class that had nothing to evict, by `slabs reassign`
    /// or by automove (memcached's `slabs_moved`).
    pub slabs_moved: u64,
    /// Items a slab move put into other chunks of their class.
    pub slab_reassign_rescues: u64,
    /// Items a slab move evicted.
    pub slab_reassign_evictions_nomem: u64,
    /// Expired or flushed items a slab move reclaimed.
    pub slab_reassign_inline_reclaim: u64,
    /// Chunks a slab move found live but could not confirm (replaced meanwhile).
    pub slab_reassign_busy_items: u64,
    /// A slab move is running.
    pub slab_reassign_running: bool,
    /// Slabs moved by the automove policy (also counted in `slabs_moved`).
    pub slabs_automoved: u64,
    /// Bytes the engine has mapped (classes plus pooled empty slabs).
    pub mapped_bytes: u64,
    /// Empty slabs the engine keeps mapped for reuse (counted in `mapped_bytes`).
    pub slab_pooled_slabs: u64,
    /// Empty slabs the engine means to keep across a reap (its adaptive retention).
    pub slab_retention_target: u64,
    /// `mmap` calls the engine made (the reservation, then one per granule mapped).
    pub slab_mmap_calls: u64,
    /// `munmap` calls the engine made (one per run of adjacent slabs released).
    pub slab_munmap_calls: u64,
    /// Bytes the engine has returned to the OS.
    pub slab_released_bytes: u64,
    /// Slabs the engine has returned to the OS.
    pub slab_released_slabs: u64,
    /// Maintenance steps that shrank after demand fell (an immediate `flush_all`, or live
    /// chunks at half their peak): depots emptied, retention to its floor, reap.
    pub memory_shrinks: u64,
    /// Times maintenance asked the C heap to return free memory (after index tables
    /// shrank, or a shrink).
    pub heap_trims: u64,
    /// Slabs the compactor emptied by moving their items into fuller slabs of the class.
    pub slabs_compacted: u64,
    /// Items the compactor moved.
    pub items_moved: u64,
    /// Lists of classes taken by `slabs classes`.
    pub slab_reclasses: u64,
    /// Items moved out of classes a re-class left out.
    pub items_migrated: u64,
    /// Per class, every class of the table in order (callers show the nonempty ones).
    pub classes: Vec<ClassStats>,
}
