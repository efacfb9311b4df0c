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
        SizeHistogram {
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
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
