//! Counters, named after memcached's `stats`, `stats items` and `stats slabs` fields, the
//! per-class gauges and the size histogram, kept together as the store's [`Counters`],
//! and the snapshot `stats` reads from them. A leaf: nothing here knows the store.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use slab_core::engine::size_class::ClassId;
use slab_core::engine::SlabEngine;
use slab_core::lazy::LazyTable;

use super::histogram::SizeHistogram;

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub(super) struct $name { $($(#[$fm])* pub(super) $f: AtomicU64,)* }
        impl $name {
            pub(super) fn reset(&self) { $(self.$f.store(0, Ordering::Relaxed);)* }
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
        /// Items a slab move put into other chunks of their class.
        reassign_rescues,
        /// Items a slab move evicted.
        reassign_evictions,
        /// Expired or flushed items a slab move reclaimed.
        reassign_reclaims,
        /// Chunks a slab move found live but could not confirm.
        reassign_busy,
        /// Slabs moved by the background policy.
        automoves,
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
pub(super) struct ClassGauges {
    /// Items linked.
    pub(super) number: AtomicU64,
    /// Chunks the store holds (item heads, segments, items being built).
    pub(super) chunks: AtomicU64,
    /// Bytes of those items ([`crate::item::stored_size`]).
    pub(super) bytes: AtomicU64,
    /// Age in seconds of the last access of the last evicted item, when evicted.
    pub(super) evicted_time: AtomicU32,
    /// Oldest last-access time seen by the last maintenance pass (server clock; 0 = none).
    pub(super) oldest_access: AtomicU32,
}

/// Everything the store counts: store-wide counters, per-class counters and gauges (their
/// state created on a class's first use), and the size histogram.
#[derive(Debug)]
pub(super) struct Counters {
    /// Store-wide counters.
    pub(super) global: GlobalCounters,
    per_class: LazyTable<ClassCounters>,
    gauges: LazyTable<ClassGauges>,
    hist: SizeHistogram,
}

impl Counters {
    /// Counters for `classes` classes and a histogram of stored sizes up to `hist_max`.
    pub(super) fn new(classes: usize, hist_max: usize) -> Self {
        Counters {
            global: GlobalCounters::default(),
            per_class: LazyTable::new(classes),
            gauges: LazyTable::new(classes),
            hist: SizeHistogram::new(hist_max),
        }
    }

    /// The counters of `class`.
    #[inline]
    pub(super) fn class(&self, class: ClassId) -> &ClassCounters {
        &self.per_class[class.index()]
    }

    /// The gauges of `class`.
    #[inline]
    pub(super) fn gauge(&self, class: ClassId) -> &ClassGauges {
        &self.gauges[class.index()]
    }

    /// Whether `class` holds linked item heads (without creating its state).
    pub(super) fn has_heads(&self, class: ClassId) -> bool {
        self.gauges
            .peek(class.index())
            .is_some_and(|g| get(&g.number) > 0)
    }

    /// Whether `class` holds more chunks than linked item heads: segments of chained
    /// values (or items being built) when `class` is the top class. Two atomic loads.
    pub(super) fn holds_segments(&self, class: ClassId) -> bool {
        self.gauges
            .peek(class.index())
            .is_some_and(|g| get(&g.chunks) > get(&g.number))
    }

    /// An item of `size` stored bytes with its head in `class` was linked.
    #[inline]
    pub(super) fn linked(&self, class: ClassId, size: usize) {
        let g = self.gauge(class);
        g.number.fetch_add(1, Ordering::Relaxed);
        g.bytes.fetch_add(size as u64, Ordering::Relaxed);
        self.hist.add(size);
    }

    /// An item of `size` stored bytes with its head in `class` was unlinked.
    #[inline]
    pub(super) fn unlinked(&self, class: ClassId, size: usize) {
        let g = self.gauge(class);
        g.number.fetch_sub(1, Ordering::Relaxed);
        g.bytes.fetch_sub(size as u64, Ordering::Relaxed);
        self.hist.remove(size);
    }

    /// The store took `n` chunks of `class`.
    #[inline]
    pub(super) fn chunks_taken(&self, class: ClassId, n: u64) {
        self.gauge(class).chunks.fetch_add(n, Ordering::Relaxed);
    }

    /// The store gave `n` chunks of `class` back.
    #[inline]
    pub(super) fn chunks_freed(&self, class: ClassId, n: u64) {
        self.gauge(class).chunks.fetch_sub(n, Ordering::Relaxed);
    }

    /// An inline item of `size` stored bytes moved from `from` to `to` (a migration).
    pub(super) fn moved(&self, from: ClassId, to: ClassId, size: usize) {
        let (to, from) = (self.gauge(to), self.gauge(from));
        to.number.fetch_add(1, Ordering::Relaxed);
        to.chunks.fetch_add(1, Ordering::Relaxed);
        to.bytes.fetch_add(size as u64, Ordering::Relaxed);
        from.number.fetch_sub(1, Ordering::Relaxed);
        from.chunks.fetch_sub(1, Ordering::Relaxed);
        from.bytes.fetch_sub(size as u64, Ordering::Relaxed);
    }

    /// Chunks the store holds, over every class.
    pub(super) fn live_chunks(&self) -> u64 {
        self.gauges.iter().map(|(_, g)| get(&g.chunks)).sum()
    }

    /// Sets each class's oldest access time (`oldest[class]`, `u32::MAX`: none).
    pub(super) fn publish_ages(&self, oldest: &[u32]) {
        for (i, g) in self.gauges.iter() {
            let o = oldest[i];
            g.oldest_access
                .store(if o == u32::MAX { 0 } else { o }, Ordering::Relaxed);
        }
    }

    /// What the automove policy sees of class `class` (`slabs` and `chunks_per_slab` from
    /// the engine) at `now`.
    pub(super) fn sample(
        &self,
        class: ClassId,
        slabs: usize,
        chunks_per_slab: usize,
        now: u32,
    ) -> ClassSample {
        let g = self.gauge(class);
        let c = self.class(class);
        let held = (get(&g.chunks) as usize).min(slabs * chunks_per_slab);
        let number = get(&g.number);
        let oldest = g.oldest_access.load(Ordering::Relaxed);
        ClassSample {
            slabs,
            chunks_per_slab,
            free_chunks: slabs * chunks_per_slab - held,
            evicted: get(&c.evicted),
            outofmemory: get(&c.outofmemory),
            evicted_time: g.evicted_time.load(Ordering::Relaxed),
            age: if number > 0 && oldest != 0 {
                now.saturating_sub(oldest)
            } else {
                0
            },
        }
    }

    /// Everything `stats`, `stats items` and `stats slabs` show, with the engine's figures.
    pub(super) fn snapshot(
        &self,
        engine: &SlabEngine,
        limit_maxbytes: u64,
        now: u32,
        reassign_running: bool,
    ) -> StoreStats {
        let es = engine.stats();
        let classes = engine.classes();
        let mut s = StoreStats {
            get_misses: get(&self.global.get_misses),
            get_expired: get(&self.global.get_expired),
            get_flushed: get(&self.global.get_flushed),
            delete_misses: get(&self.global.delete_misses),
            incr_misses: get(&self.global.incr_misses),
            decr_misses: get(&self.global.decr_misses),
            cas_misses: get(&self.global.cas_misses),
            touch_misses: get(&self.global.touch_misses),
            total_items: get(&self.global.total_items),
            cmd_touch: get(&self.global.cmd_touch),
            cmd_flush: get(&self.global.cmd_flush),
            slabs_moved: get(&self.global.slabs_moved),
            slab_reassign_rescues: get(&self.global.reassign_rescues),
            slab_reassign_evictions_nomem: get(&self.global.reassign_evictions),
            slab_reassign_inline_reclaim: get(&self.global.reassign_reclaims),
            slab_reassign_busy_items: get(&self.global.reassign_busy),
            slab_reassign_running: reassign_running,
            slabs_automoved: get(&self.global.automoves),
            limit_maxbytes,
            mapped_bytes: es.mapped_bytes as u64,
            slab_pooled_slabs: es.pooled_slabs as u64,
            slab_retention_target: es.retention_target_slabs as u64,
            slab_mmap_calls: es.mmap_calls,
            slab_munmap_calls: es.munmap_calls,
            slab_released_bytes: es.released_bytes,
            slab_released_slabs: es.released_slabs,
            memory_shrinks: get(&self.global.memory_shrinks),
            heap_trims: get(&self.global.heap_trims),
            slabs_compacted: get(&self.global.slabs_compacted),
            items_moved: get(&self.global.items_moved),
            slab_reclasses: get(&self.global.slab_reclasses),
            items_migrated: get(&self.global.items_migrated),
            ..StoreStats::default()
        };
        for (i, (chunk_size, cs)) in classes.sizes().iter().zip(&es.classes).enumerate() {
            let class = ClassId(i as u16);
            let c = &self.per_class[i];
            let g = &self.gauges[i];
            let mut end = 0;
            let cps = classes.chunks_per_slab(class);
            engine.for_each_slab(class, |_, carved| end += cps - carved.min(cps));
            let used = (get(&g.chunks) as usize).min(cs.slabs * cps);
            let number = get(&g.number);
            let oldest = g.oldest_access.load(Ordering::Relaxed);
            let cl = ClassStats {
                id: class.display_id(),
                chunk_size: *chunk_size,
                chunks_per_page: cps,
                total_pages: cs.slabs,
                total_chunks: cs.slabs * cps,
                used_chunks: used,
                free_chunks: cs.slabs * cps - used,
                free_chunks_end: end,
                mem_requested: get(&g.bytes),
                get_hits: get(&c.get_hits),
                cmd_set: get(&c.cmd_set),
                delete_hits: get(&c.delete_hits),
                incr_hits: get(&c.incr_hits),
                decr_hits: get(&c.decr_hits),
                cas_hits: get(&c.cas_hits),
                cas_badval: get(&c.cas_badval),
                touch_hits: get(&c.touch_hits),
                number,
                age: if number > 0 && oldest != 0 {
                    now.saturating_sub(oldest)
                } else {
                    0
                },
                evicted: get(&c.evicted),
                evicted_nonzero: get(&c.evicted_nonzero),
                evicted_time: g.evicted_time.load(Ordering::Relaxed),
                outofmemory: get(&c.outofmemory),
                reclaimed: get(&c.reclaimed),
                expired_unfetched: get(&c.expired_unfetched),
                evicted_unfetched: get(&c.evicted_unfetched),
                crawler_reclaimed: get(&c.crawler_reclaimed),
            };
            s.curr_items += cl.number;
            s.bytes += cl.mem_requested;
            s.evictions += cl.evicted;
            s.reclaimed += cl.reclaimed;
            s.expired_unfetched += cl.expired_unfetched;
            s.evicted_unfetched += cl.evicted_unfetched;
            s.crawler_reclaimed += cl.crawler_reclaimed;
            s.get_hits += cl.get_hits;
            s.cmd_set += cl.cmd_set;
            s.delete_hits += cl.delete_hits;
            s.incr_hits += cl.incr_hits;
            s.decr_hits += cl.decr_hits;
            s.cas_hits += cl.cas_hits;
            s.cas_badval += cl.cas_badval;
            s.touch_hits += cl.touch_hits;
            s.outofmemory += cl.outofmemory;
            s.total_malloced += (cl.total_pages * classes.slab_size()) as u64;
            if cl.total_pages > 0 {
                s.active_slabs += 1;
            }
            s.classes.push(cl);
        }
        s
    }

    /// `(stored size rounded up to a multiple of 8, item count)` for every nonempty bucket.
    pub(super) fn histogram(&self) -> Vec<(usize, u64)> {
        self.hist.snapshot()
    }

    /// `stats reset`: zeroes the counters (not the gauges or the histogram).
    pub(super) fn reset(&self) {
        self.global.reset();
        for (_, c) in self.per_class.iter() {
            c.reset();
        }
    }
}

/// What one size class looked like at a tick, as the automove policy sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassSample {
    /// Slabs the class holds.
    pub slabs: usize,
    /// Chunks per slab.
    pub chunks_per_slab: usize,
    /// Chunks of its slabs the store does not hold (free, or cached in magazines).
    pub free_chunks: usize,
    /// Items evicted so far (cumulative).
    pub evicted: u64,
    /// Stores failed for lack of memory so far (cumulative).
    pub outofmemory: u64,
    /// Idle seconds of the last evicted item.
    pub evicted_time: u32,
    /// Idle seconds of the oldest item, as of the last full crawl (0: unknown).
    pub age: u32,
}

#[inline]
pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[inline]
pub(super) fn get(c: &AtomicU64) -> u64 {
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

/// A snapshot of the store's counters; see `Store::stats`.
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
