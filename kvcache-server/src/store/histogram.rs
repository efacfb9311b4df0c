//! The item size histogram: one atomic counter per 8-byte bucket of stored size, updated
//! whenever an item is linked or unlinked. `stats sizes` (32-byte buckets, memcached's
//! format) and `stats sizes_fine` (8-byte buckets) are read from it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket width in bytes.
pub const BUCKET: usize = 8;

/// Counts of items by stored size, rounded up to a multiple of 8 bytes.
#[derive(Debug)]
pub struct SizeHistogram {
    counts: Box<[AtomicU64]>,
}

impl SizeHistogram {
    /// A histogram for sizes up to `max_size` (larger sizes count in the last bucket).
    pub fn new(max_size: usize) -> Self {
        let n = max_size.div_ceil(BUCKET) + 1;
        // Zeroed memory straight from the allocator: the ~1 MiB table for `-I 1m` stays
        // out of RSS until sizes are counted (writing the zeros would touch every page).
        let layout = std::alloc::Layout::array::<AtomicU64>(n).expect("histogram size");
        // SAFETY: `layout` has a nonzero size (`n >= 1`, 8 bytes each).
        let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<AtomicU64>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: 1. `p` is a live allocation of the global allocator with the layout of
        // `[AtomicU64; n]`, which is what `Box<[AtomicU64]>` frees it with; 2. all-zero
        // bytes are a valid `AtomicU64` (it has the bit validity of `u64`), so the `n`
        // elements are initialised; 3. nothing else owns the allocation.
        let counts = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) };
        SizeHistogram { counts }
    }

    #[inline]
    fn bucket(&self, size: usize) -> &AtomicU64 {
        let i = size.div_ceil(BUCKET).min(self.counts.len() - 1);
        &self.counts[i]
    }

    /// Counts one item of `size` bytes.
    #[inline]
    pub fn add(&self, size: usize) {
        self.bucket(size).fetch_add(1, Ordering::Relaxed);
    }

    /// Uncounts one item of `size` bytes.
    #[inline]
    pub fn remove(&self, size: usize) {
        self.bucket(size).fetch_sub(1, Ordering::Relaxed);
    }

    /// `(size rounded up to a multiple of 8, count)` for every nonempty bucket, ascending.
    pub fn snapshot(&self) -> Vec<(usize, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                // Transient underflow (a remove racing an add) reads as a huge count.
                (n != 0 && n < u64::MAX / 2).then_some((i * BUCKET, n))
            })
            .collect()
    }

    /// Zeroes every bucket.
    pub fn clear(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_up() {
        let h = SizeHistogram::new(1000);
        h.add(1);
        h.add(8);
        h.add(9);
        h.add(68);
        h.add(5000);
        h.remove(9);
        h.add(16);
        assert_eq!(h.snapshot(), vec![(8, 2), (16, 1), (72, 1), (1000, 1)]);
    }
}
