//! Background work: the incremental crawl that reclaims expired and flushed items and
//! keeps access times inside their 16-bit window, [`Store::maintenance`] (crawl, slab
//! moves, compaction, migration, then giving memory back), the shrink after demand fell,
//! trimming the C heap, and the thread that runs it all.
//!
//! See the store's module docs, "Returning memory", for what a shrink and a reap do.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use slab_core::engine::size_class::ClassId;

use super::compact::COMPACT_BUDGET;
use super::index::table_hash;
use super::reclass::MIGRATE_BUDGET;
use super::stats::bump;
use super::Store;
use crate::item::{tag_atomic, widen_access, FETCHED, LIVE};

/// Items store the low 16 bits of their last access time, exact within 65536 s of now.
/// The crawler (a full pass every few seconds) moves older access times up to this many
/// seconds ago, so they stay readable: idle times beyond 16 hours read as 16 hours. Any
/// flush that should have removed such an item took effect, and the crawler reclaimed the
/// item, long before.
pub(super) const ACCESS_CAP: u32 = 16 * 3600;

/// [`Store::maintenance`] crawls the index in this many steps.
pub const CRAWL_STEPS: usize = 8;

/// A shrink on a fall of live chunks needs at least this many at the peak (about 1 MiB
/// of small items): below it, the ordinary reap is enough.
const SHRINK_MIN_CHUNKS: u64 = 8192;

/// Gives the C heap's free memory back to the OS (glibc keeps what freed index tables
/// leave, below its trim threshold or in worker threads' arenas).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own arenas under their locks; it takes no
    // pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Store {
    /// Frees unlinked items' chunks straight into the engine, one batch per class, past
    /// every thread's magazines: what the crawl reclaims (a flush, mass expiry) is not
    /// about to be reused by this thread, and chunks parked in a magazine would keep their
    /// slabs from emptying. Empties `handles`.
    fn free_items_direct(&self, handles: &mut Vec<u32>) {
        let engine = self.mem.alloc.engine();
        let mut chunks: Vec<(ClassId, NonNull<u8>)> = Vec::with_capacity(handles.len());
        let class_of = |p: NonNull<u8>| engine.class_of(p.as_ptr()).expect("a chunk of the engine");
        for h in handles.drain(..) {
            let it = self.item(h);
            debug_assert_eq!(it.bits() & LIVE, 0);
            for seg in self.segments(&it) {
                tag_atomic(seg).store(0, Ordering::Release);
                chunks.push((class_of(seg), seg));
            }
            chunks.push((class_of(it.ptr()), it.ptr()));
        }
        chunks.sort_unstable_by_key(|&(c, p)| (c, p));
        let mut ptrs = Vec::new();
        for run in chunks.chunk_by(|a, b| a.0 == b.0) {
            let class = run[0].0;
            ptrs.clear();
            ptrs.extend(run.iter().map(|&(_, p)| p));
            self.counters.chunks_freed(class, ptrs.len() as u64);
            // SAFETY: every chunk belongs to an item that was unlinked under its shard lock
            // (nobody can reach it any more) and is listed once: a head, or a segment of
            // exactly one chain; all of `run` are of `class`.
            unsafe { engine.free_batch(class, &ptrs) };
        }
    }

    /// Unlinks the expired or flushed items of shards `range`; returns how many. With
    /// `count`, they count as `crawler_reclaimed`. Lowers `oldest[class]` to the oldest
    /// access time seen, and shrinks tables that became mostly empty. Only items of the
    /// classes `pick` takes are reclaimed (the others are left for a later crawl).
    fn crawl_shards(
        &self,
        range: std::ops::Range<usize>,
        count: bool,
        oldest: &mut [u32],
        pick: &dyn Fn(ClassId) -> bool,
    ) -> u64 {
        let now = self.now();
        let mut total = 0;
        let mut dead = Vec::new();
        for i in range {
            let mut shard = self.index.lock(i);
            shard.table.retain(|&mut h| {
                let it = self.item(h);
                let class = self.class_of(h);
                if self.expiry.is_dead(&it, now).is_none() || !pick(class) {
                    let mut la = widen_access(now, it.access_low());
                    if now - la > ACCESS_CAP {
                        // Keep the 16-bit access time inside its window: an item idle
                        // longer than this reads as idle this long (see `ACCESS_CAP`).
                        la = now - ACCESS_CAP;
                        it.set_access(la);
                    }
                    oldest[class.index()] = oldest[class.index()].min(la);
                    return true;
                }
                let c = self.counters.class(class);
                bump(&c.reclaimed);
                if count {
                    bump(&c.crawler_reclaimed);
                }
                if it.bits() & FETCHED == 0 {
                    bump(&c.expired_unfetched);
                }
                it.clear_bits(LIVE);
                self.counters.unlinked(class, it.stored_size());
                dead.push(h);
                false
            });
            let (len, cap) = (shard.table.len(), shard.table.capacity());
            if (cap > 1024 && len * 4 < cap) || (len == 0 && cap > 0) {
                // An empty table gives all its memory back (`shrink_to(0)` frees it).
                shard
                    .table
                    .shrink_to(len * 2, |&h| table_hash(self.item(h).tag() >> 8));
                self.mem.tables_shrunk.store(true, Ordering::Relaxed);
            }
            drop(shard);
            total += dead.len() as u64;
            self.free_items_direct(&mut dead);
        }
        total
    }

    /// Unlinks every expired or flushed item now (a full crawl); returns how many. With
    /// `count`, they count as `crawler_reclaimed`.
    pub(super) fn crawl(&self, count: bool) -> u64 {
        self.crawl_classes(count, &|_| true)
    }

    /// [`crawl`](Self::crawl) reclaiming only the items of the classes `pick` takes.
    fn crawl_classes(&self, count: bool, pick: &dyn Fn(ClassId) -> bool) -> u64 {
        let mut oldest = vec![u32::MAX; self.classes().len()];
        let n = self.crawl_shards(0..self.index.len(), count, &mut oldest, pick);
        self.counters.publish_ages(&oldest);
        n
    }

    /// Reclaims every expired or flushed item now, in one full pass over the index;
    /// returns how many. [`maintenance`](Self::maintenance) does the same work
    /// incrementally.
    pub fn reclaim_expired(&self) -> u64 {
        self.crawl(true)
    }

    /// [`reclaim_expired`](Self::reclaim_expired) for the classes whose memcached id
    /// (1-based, as `stats slabs` shows it) `covers` takes: `lru_crawler crawl <ids>`.
    pub fn reclaim_expired_in(&self, covers: impl Fn(usize) -> bool) -> u64 {
        self.crawl_classes(true, &|c| covers(c.display_id()))
    }

    /// One background step: crawls the next eighth of the index shards, reclaiming
    /// expired and flushed items (a full pass every [`CRAWL_STEPS`] calls, which then
    /// refreshes the per-class `age`), and lets the allocator return memory it kept unused
    /// to the OS. Returns how many items were reclaimed. Call it about once a second, or
    /// use [`spawn_maintenance`](Self::spawn_maintenance).
    pub fn maintenance(&self) -> u64 {
        let n = {
            let mut st = self.expiry.crawl();
            if st.oldest.len() != self.classes().len() {
                st.oldest = vec![u32::MAX; self.classes().len()];
            }
            let shards = self.index.len();
            let start = st.next;
            let end = (start + shards.div_ceil(CRAWL_STEPS)).min(shards);
            let n = self.crawl_shards(start..end, true, &mut st.oldest, &|_| true);
            st.next = end % shards;
            if end == shards {
                self.counters.publish_ages(&st.oldest);
                st.oldest.fill(u32::MAX);
            }
            n
        };
        // Slabs emptied by moves reach the pool in the reap just after.
        self.automove_tick();
        self.compact(COMPACT_BUDGET);
        self.migrate(MIGRATE_BUDGET);
        // Live chunks fell to half their peak since the last shrink (mass delete or
        // expiry): a hint, like an immediate flush, that demand dropped.
        let live = self.counters.live_chunks();
        let peak = self
            .mem
            .peak_chunks
            .fetch_max(live, Ordering::Relaxed)
            .max(live);
        let fell = peak >= SHRINK_MIN_CHUNKS && live <= peak / 2;
        self.give_back(fell, live);
        n
    }

    /// Lets the allocator return memory to the OS: a full shrink (depots emptied,
    /// retention to its floor, empty slabs unmapped, the heap trimmed) when demand fell,
    /// else the ordinary reap. `live` is the store's live chunk count now.
    pub(super) fn give_back(&self, shrink: bool, live: u64) {
        let _w = self.mem.exclusive();
        if shrink {
            self.mem.peak_chunks.store(live, Ordering::Relaxed);
            self.mem.alloc.shrink();
            bump(&self.counters.global.memory_shrinks);
        } else {
            self.mem.alloc.reap();
        }
        drop(_w);
        if self.mem.tables_shrunk.swap(false, Ordering::Relaxed) || shrink {
            trim_heap();
            bump(&self.counters.global.heap_trims);
        }
    }

    /// Starts a thread that calls [`maintenance`](Self::maintenance) every `interval`
    /// until the last `Arc` of the store is dropped.
    pub fn spawn_maintenance(self: &Arc<Self>, interval: Duration) -> std::thread::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("kvcache-maint".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                match weak.upgrade() {
                    Some(s) => {
                        // A warm-restart save halts maintenance for good.
                        let Some(_gate) = s.restart.enter() else {
                            return;
                        };
                        s.maintenance();
                    }
                    None => return,
                }
            })
            .expect("spawn the maintenance thread")
    }
}
