//! The server's default size classes.
//!
//! memcached's table starts at 96 bytes and grows by 1.25: a 14-byte key with a 32-byte
//! value (105 bytes in memcached's layout, 68 in ours) would waste a quarter of its chunk.
//! Ours step by 4 bytes from 16 up to [`FINEST_MAX`] and by 8 bytes up to [`FINE_MAX`]
//! (where small items crowd), then grow geometrically by [`GROWTH`] up to the largest
//! chunk, which is half a slab (or the
//! largest item, if smaller). Values whose item does not fit the largest chunk are stored
//! as chains of chunks (see [`crate::item`]), so `-I` is not bounded by the slab size.
//!
//! A class costs one partially filled slab (and the engine keeps at most one empty spare
//! per class), so the default slab is small, [`DEFAULT_SLAB_SIZE`] = 64 KiB: even with all
//! ~130 classes in use that is ~8 MiB of partial slabs, well inside memcached's default
//! `-m 64` (memcached instead lets each class take its first 1 MiB page past `-m`).

use slab_core::size_class::SizeClasses;

/// The default slab size of the store.
pub const DEFAULT_SLAB_SIZE: usize = 64 << 10;

/// Classes step by 4 bytes up to this chunk size.
pub const FINEST_MAX: usize = 256;

/// Classes step by 8 bytes up to this chunk size.
pub const FINE_MAX: usize = 512;

/// Growth factor of the classes above [`FINE_MAX`].
pub const GROWTH: f64 = 1.125;

/// The smallest chunk: an item head needs at least 15 bytes, a segment 17.
pub const MIN_CHUNK: usize = 16;

/// Our default classes for a slab size and item size limit: 4-byte steps from 16 to 256,
/// 8-byte steps to 512, then steps of 12.5% (rounded up to 8), ending with a class of exactly half the slab
/// (or the smallest multiple of 8 holding `item_size_max` plus headers, if that is
/// smaller).
///
/// Panics if `slab_size` is not a power of two between 4 KiB and 1 GiB.
pub fn default_classes(slab_size: usize, item_size_max: usize) -> SizeClasses {
    let top = (slab_size / 2)
        .min(
            (item_size_max + crate::item::stored_size(crate::item::KEY_MAX, 0, 1, true))
                .div_ceil(8)
                * 8,
        )
        .max(MIN_CHUNK);
    let mut sizes = Vec::new();
    let mut s = MIN_CHUNK;
    while s < top && s <= FINE_MAX {
        sizes.push(s);
        s += if s < FINEST_MAX { 4 } else { 8 };
    }
    let mut s = sizes.last().copied().unwrap_or(MIN_CHUNK) as f64;
    loop {
        s *= GROWTH;
        let r = (s as usize).div_ceil(8) * 8;
        if r >= top {
            break;
        }
        if sizes.last().is_some_and(|&l| r <= l) {
            continue;
        }
        sizes.push(r);
    }
    if sizes.last() != Some(&top) {
        sizes.push(top);
    }
    SizeClasses::from_list(&sizes, 4, slab_size).expect("the default table is well formed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::stored_size;

    #[test]
    fn default_table_shape() {
        let c = default_classes(DEFAULT_SLAB_SIZE, 1 << 20);
        let s = c.sizes();
        assert_eq!(s[0], 16);
        assert_eq!(*s.last().unwrap(), DEFAULT_SLAB_SIZE / 2);
        // 4-byte steps up to 256, 8-byte steps up to 512.
        let fine: Vec<usize> = s.iter().copied().take_while(|&x| x <= FINE_MAX).collect();
        assert!(fine
            .windows(2)
            .all(|w| w[1] - w[0] == if w[1] <= FINEST_MAX { 4 } else { 8 }));
        assert_eq!(*fine.last().unwrap(), FINE_MAX);
        // Then at most 12.5% (+8 rounding) apart.
        for w in s.windows(2).skip(fine.len() - 1) {
            assert!(w[1] as f64 <= w[0] as f64 * GROWTH + 8.0, "{w:?}");
        }
        assert!(c.len() < 140, "{} classes", c.len());
        // The headline items land in tight classes.
        assert_eq!(
            c.chunk_size(c.class_for(stored_size(14, 32, 0, true)).unwrap()),
            68
        );
        assert_eq!(
            c.chunk_size(c.class_for(stored_size(14, 100, 0, true)).unwrap()),
            136
        );
    }

    #[test]
    fn small_item_limit_caps_the_table() {
        let c = default_classes(DEFAULT_SLAB_SIZE, 1000);
        assert!(
            c.max_chunk() >= 1000 && c.max_chunk() < 1400,
            "{}",
            c.max_chunk()
        );
        let c = default_classes(1 << 20, 1 << 20);
        assert_eq!(c.max_chunk(), 1 << 19);
    }
}
