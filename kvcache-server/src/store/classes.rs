//! The size classes: the server's default table, the grid of spare classes a re-class
//! may pick from, and [`Placement`], which class a new item goes to. A leaf: nothing here
//! knows the store.
//!
//! # The default table
//!
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

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Mutex;

use slab_core::engine::size_class::{ClassId, SizeClasses};

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

/// Spare classes step by 8 bytes up to this chunk size...
pub const FINE_GRID_MAX: usize = 32 << 10;
/// ... and by this many bytes above it.
pub const COARSE_STEP: usize = 256;

/// The size lookup's granule: sizes are looked up in steps of 4 bytes.
const GRANULE_SHIFT: u32 = 2;

/// Whether `size` is on the spare grid.
pub(super) fn on_grid(size: usize) -> bool {
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
struct Lookup {
    table: Box<[AtomicU16]>,
}

impl Lookup {
    /// The lookup of `classes`' table proper.
    fn new(classes: &SizeClasses) -> Self {
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
    fn get(&self, size: usize) -> Option<ClassId> {
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
struct Active {
    classes: Vec<ClassId>,
    /// Per class id: listed (or the largest class).
    listed: Vec<bool>,
}

impl Active {
    fn new(all: &SizeClasses) -> Self {
        let classes: Vec<ClassId> = (0..all.base_len()).map(|i| ClassId(i as u16)).collect();
        let mut listed = vec![false; all.len()];
        listed[..all.base_len()].fill(true);
        Active { classes, listed }
    }
}

/// Where new items go: the size lookup and the list of classes it was built from
/// (rewritten by `slabs classes`, see `reclass.rs`).
#[derive(Debug)]
pub(super) struct Placement {
    lookup: Lookup,
    active: Mutex<Active>,
    /// See `Store::cache_flush_requests`.
    flush_requests: AtomicU64,
}

impl Placement {
    /// New items go to the classes of `all`'s table proper (not the spares).
    pub(super) fn new(all: &SizeClasses) -> Self {
        Placement {
            lookup: Lookup::new(all),
            active: Mutex::new(Active::new(all)),
            flush_requests: AtomicU64::new(0),
        }
    }

    /// The class a new item of `size` bytes goes to (`None` above the largest chunk).
    #[inline]
    pub(super) fn class_for(&self, size: usize) -> Option<ClassId> {
        self.lookup.get(size)
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The chunk sizes new items go to, ascending.
    pub(super) fn active_sizes(&self, all: &SizeClasses) -> Vec<usize> {
        self.active()
            .classes
            .iter()
            .map(|&c| all.chunk_size(c))
            .collect()
    }

    /// New items go to `ids` (classes of `all`, ascending chunk sizes, the last one the
    /// largest chunk) from now on; the others are retired.
    pub(super) fn set(&self, all: &SizeClasses, ids: Vec<ClassId>) {
        let mut active = self.active();
        self.lookup.set(all, &ids);
        active.listed.fill(false);
        for &c in &ids {
            active.listed[c.index()] = true;
        }
        active.classes = ids;
    }

    /// The retired classes among the first `in_use`, ascending.
    pub(super) fn retired(&self, in_use: usize) -> Vec<ClassId> {
        let active = self.active();
        (0..in_use)
            .map(|i| ClassId(i as u16))
            .filter(|c| !active.listed[c.index()])
            .collect()
    }

    /// See `Store::cache_flush_requests`.
    pub(super) fn flush_requests(&self) -> u64 {
        self.flush_requests.load(Ordering::Relaxed)
    }

    /// Asks the worker threads to give their magazines back.
    pub(super) fn request_flush(&self) {
        self.flush_requests.fetch_add(1, Ordering::Relaxed);
    }
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
