//! `cache_memlimit`: changing `-m` while the server runs.
//!
//! Growing sets the engine's limit and takes effect at the next allocation. Shrinking sets
//! it too, so nothing more is mapped, then empties slabs until what stays mapped fits:
//! one slab at a time from the class holding the most, the way a slab move empties one
//! (live items go to free chunks of their class while there are any, the rest are evicted;
//! see `Store::empty_one_slab`), and finally shrinks (depots back to the engine, every
//! empty slab unmapped, the heap trimmed), so RSS falls before the reply.
//!
//! The limit is one atomic the engine reads under its pool lock when it maps slabs: a
//! change racing an allocation is modelled in slab-core's `tests/loom_limit.rs`; the
//! emptying is a slab move's walk, modelled in `loom_moves.rs`.

use slab_core::engine::size_class::ClassId;

use super::Store;

/// Rounds of emptying and releasing a shrink makes before giving up on the rest (what a
/// slab move cannot empty: a class's last slab, chunks cached in workers' magazines).
const SHRINK_ROUNDS: usize = 4;

impl Store {
    /// The memory limit now (`-m`, or the last `cache_memlimit`).
    pub fn memory_limit(&self) -> usize {
        self.engine().limit().unwrap_or(self.cfg.memory_limit)
    }

    /// `cache_memlimit`: sets the limit to `bytes`, emptying and releasing slabs until the
    /// mapped memory fits when it shrinks. False if the engine cannot take that limit
    /// (below one slab, above its reserved address space).
    pub fn set_memory_limit(&self, bytes: usize) -> bool {
        let bytes = bytes - bytes % self.classes().slab_size();
        if self.engine().set_limit(bytes).is_err() {
            return false;
        }
        for _ in 0..SHRINK_ROUNDS {
            let mapped = self.engine().mapped_bytes();
            if mapped <= bytes {
                break;
            }
            let slab = self.classes().slab_size();
            let mut over = (mapped - bytes).div_ceil(slab);
            let stats = self.engine().stats();
            let mut slabs: Vec<(ClassId, usize)> = stats
                .classes
                .iter()
                .filter(|c| c.slabs > 1)
                .map(|c| (c.class, c.slabs))
                .collect();
            while over > 0 {
                let Some(big) = slabs.iter_mut().filter(|c| c.1 > 1).max_by_key(|c| c.1) else {
                    break;
                };
                big.1 -= 1;
                let class = big.0;
                // No rescue into fresh memory: the point is to map less.
                if self.empty_one_slab(class, usize::MAX).is_none() {
                    big.1 = 1;
                    continue;
                }
                over -= 1;
            }
            let live = self.counters.live_chunks();
            self.give_back(true, live);
        }
        true
    }
}
