//! Size classes: the table of chunk sizes, and size -> class lookup.
//!
//! A table is built either with memcached's geometric algorithm ([`SizeClasses::geometric`],
//! reproducing `slabs_init` in memcached's `slabs.c` exactly, including its integer truncation
//! and its cap of 63 classes) or from an explicit list ([`SizeClasses::from_list`]).
//!
//! Lookup is a table index for sizes up to [`SMALL_LOOKUP_MAX`] bytes and a binary search above.

use crate::error::Error;

/// Sizes up to this many bytes are looked up in O(1) through a direct table.
pub const SMALL_LOOKUP_MAX: usize = 4096;

/// The smallest chunk size: a free chunk holds the free-list link.
pub const MIN_CHUNK: usize = 8;

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES - 1`: the geometric algorithm makes at most this many
/// classes (62 geometric ones and the final `max_chunk` class).
pub const MEMCACHED_MAX_CLASSES: usize = 63;

/// The default slab size: 1 MiB, like memcached's page.
pub const DEFAULT_SLAB_SIZE: usize = 1 << 20;

/// The smallest and largest slab sizes accepted.
pub const SLAB_SIZE_RANGE: (usize, usize) = (4096, 1 << 30);

/// A size class: a 0-based index into a [`SizeClasses`] table.
///
/// memcached numbers its classes from 1; its display id is `index + 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u16);

impl ClassId {
    /// The index into the table.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// memcached's 1-based class number.
    #[inline]
    pub fn display_id(self) -> usize {
        self.0 as usize + 1
    }
}

/// A validated table of chunk sizes, strictly ascending, for one slab size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeClasses {
    sizes: Vec<usize>,
    per_slab: Vec<usize>,
    slab_size: usize,
    /// `small[(size + g - 1) >> shift]` is the class for `size <= SMALL_LOOKUP_MAX`
    /// (`g = 1 << shift`), or `u16::MAX` if no class fits.
    small: Vec<u16>,
    shift: u32,
    /// Classes `0..base` are the table proper; classes from `base` on are spares (see
    /// [`SizeClasses::with_spares`]).
    base: usize,
}

fn invalid(msg: String) -> Error {
    Error::InvalidClasses(msg)
}

fn check_slab_size(slab_size: usize) -> Result<(), Error> {
    let (lo, hi) = SLAB_SIZE_RANGE;
    if !slab_size.is_power_of_two() || slab_size < lo || slab_size > hi {
        return Err(invalid(format!(
            "slab size {slab_size} must be a power of two between {lo} and {hi}"
        )));
    }
    Ok(())
}

fn check_align(align: usize) -> Result<(), Error> {
    if !align.is_power_of_two() {
        return Err(invalid(format!("alignment {align} must be a power of two")));
    }
    if align > 4096 {
        return Err(invalid(format!("alignment {align} is larger than 4096")));
    }
    Ok(())
}

fn round_up(size: usize, align: usize) -> usize {
    size.div_ceil(align) * align
}

impl SizeClasses {
    /// memcached's geometric classes: start at `min_chunk`; repeatedly round up to `align`,
    /// record the class and multiply by `factor` (truncating to an integer, as memcached's
    /// `unsigned int size *= factor` does) while `size < max_chunk / factor`, for at most 62
    /// classes; then add a last class of exactly `max_chunk`.
    ///
    /// memcached's defaults are `geometric(96, 1.25, 524288, 8, 1 << 20)` (`-n 48` plus the
    /// 48-byte item header, `-f 1.25`, chunk max = page / 2); `-n N` gives `min_chunk = 48 + N`.
    ///
    /// Rejected: `factor <= 1` or not finite, `min_chunk` below [`MIN_CHUNK`], `max_chunk` larger
    /// than the slab or smaller than `min_chunk`, an alignment that is not a power of two, a
    /// slab size that is not a power of two in [`SLAB_SIZE_RANGE`], or a factor so small that two
    /// classes coincide.
    pub fn geometric(
        min_chunk: usize,
        factor: f64,
        max_chunk: usize,
        align: usize,
        slab_size: usize,
    ) -> Result<Self, Error> {
        check_slab_size(slab_size)?;
        check_align(align)?;
        if !(factor.is_finite() && factor > 1.0) {
            return Err(invalid(format!(
                "growth factor {factor} must be greater than 1"
            )));
        }
        if min_chunk < MIN_CHUNK {
            return Err(invalid(format!(
                "minimum chunk {min_chunk} is below {MIN_CHUNK} bytes"
            )));
        }
        if max_chunk > slab_size {
            return Err(invalid(format!(
                "largest chunk {max_chunk} is larger than the slab size {slab_size}"
            )));
        }
        if max_chunk < min_chunk {
            return Err(invalid(format!(
                "largest chunk {max_chunk} is smaller than the minimum chunk {min_chunk}"
            )));
        }
        if min_chunk > u32::MAX as usize {
            return Err(invalid(format!("minimum chunk {min_chunk} is too large")));
        }
        // memcached keeps `size` in an `unsigned int` and compares it as a double.
        let mut size = min_chunk as u32;
        let mut sizes = Vec::new();
        let limit = max_chunk as f64 / factor;
        while sizes.len() < MEMCACHED_MAX_CLASSES - 1 {
            if f64::from(size) >= limit {
                break;
            }
            let rounded = round_up(size as usize, align);
            sizes.push(rounded);
            size = (rounded as f64 * factor) as u32;
        }
        sizes.push(max_chunk);
        Self::build(sizes, slab_size, align)
    }

    /// memcached 1.6's default table: 39 classes, 96, 120, 152, ... 394840, 524288.
    pub fn memcached_default() -> Self {
        Self::geometric(96, 1.25, 524_288, 8, DEFAULT_SLAB_SIZE)
            .expect("memcached's default parameters are valid")
    }

    /// An explicit table: `sizes` strictly ascending, none zero, each rounded up to `align` and
    /// then no larger than `slab_size`. Nothing is appended (memcached's `-o slab_sizes` appends
    /// a `slab_chunk_max` class; a caller that wants that adds it to the list).
    pub fn from_list(sizes: &[usize], align: usize, slab_size: usize) -> Result<Self, Error> {
        check_slab_size(slab_size)?;
        check_align(align)?;
        if sizes.is_empty() {
            return Err(invalid("the list of sizes is empty".into()));
        }
        if sizes.len() > u16::MAX as usize {
            return Err(invalid(format!("{} classes is too many", sizes.len())));
        }
        let mut out = Vec::with_capacity(sizes.len());
        for (i, &s) in sizes.iter().enumerate() {
            if s == 0 {
                return Err(invalid(format!("size #{} is zero", i + 1)));
            }
            if s < MIN_CHUNK {
                return Err(invalid(format!(
                    "size {s} is below the minimum chunk of {MIN_CHUNK} bytes"
                )));
            }
            if i > 0 && s <= sizes[i - 1] {
                let what = if s == sizes[i - 1] {
                    "duplicate"
                } else {
                    "unsorted"
                };
                return Err(invalid(format!(
                    "{what} list: size {s} follows {} (sizes must be strictly ascending)",
                    sizes[i - 1]
                )));
            }
            let r = round_up(s, align);
            if r > slab_size {
                return Err(invalid(format!(
                    "size {s} (rounded to {r}) is larger than the slab size {slab_size}"
                )));
            }
            if let Some(&prev) = out.last() {
                if r == prev {
                    return Err(invalid(format!(
                        "sizes {} and {s} both round up to {r} at alignment {align}",
                        sizes[i - 1]
                    )));
                }
            }
            out.push(r);
        }
        Self::build(out, slab_size, align)
    }

    fn build(sizes: Vec<usize>, slab_size: usize, align: usize) -> Result<Self, Error> {
        for w in sizes.windows(2) {
            if w[1] <= w[0] {
                return Err(invalid(format!(
                    "classes {} and {} coincide or are out of order (growth factor too small?)",
                    w[0], w[1]
                )));
            }
        }
        let per_slab = sizes.iter().map(|&s| slab_size / s).collect();
        let sizes_len = sizes.len();
        // Every chunk size is a multiple of `align`, so with a granule `g <= align` the sizes in
        // `(g * (i - 1), g * i]` all map to the class of `g * i`.
        let shift = align.min(8).trailing_zeros();
        let g = 1usize << shift;
        let mut small = Vec::with_capacity(SMALL_LOOKUP_MAX / g + 1);
        let mut c = 0usize;
        for i in 0..=SMALL_LOOKUP_MAX / g {
            let want = i * g;
            while c < sizes.len() && sizes[c] < want {
                c += 1;
            }
            small.push(if c < sizes.len() { c as u16 } else { u16::MAX });
        }
        Ok(SizeClasses {
            sizes,
            per_slab,
            slab_size,
            small,
            shift,
            base: sizes_len,
        })
    }

    /// This table followed by spare classes of the given chunk sizes (strictly ascending,
    /// each at least [`MIN_CHUNK`], at most [`max_chunk`](Self::max_chunk), and none equal to
    /// a size of the table). Spares get the class ids after the table's.
    ///
    /// A spare is never chosen by size ([`class_for`](Self::class_for) and
    /// [`max_chunk`](Self::max_chunk) consider the table proper only): a program allocates
    /// from it by id, after deciding at run time that the size fits its traffic better. An
    /// engine keeps per-class state only for classes that are used, so unused spares cost a
    /// few bytes each.
    pub fn with_spares(&self, spares: &[usize]) -> Result<Self, Error> {
        let base = &self.sizes[..self.base];
        let top = self.max_chunk();
        if self.sizes.len() + spares.len() >= u16::MAX as usize {
            return Err(invalid(format!(
                "{} classes and {} spares is too many",
                self.base,
                spares.len()
            )));
        }
        for (i, &s) in spares.iter().enumerate() {
            if s < MIN_CHUNK || s > top {
                return Err(invalid(format!(
                    "spare size {s} is outside {MIN_CHUNK}..={top}"
                )));
            }
            if i > 0 && s <= spares[i - 1] {
                return Err(invalid(format!(
                    "spare sizes must be strictly ascending: {s} follows {}",
                    spares[i - 1]
                )));
            }
            if base.binary_search(&s).is_ok() {
                return Err(invalid(format!("spare size {s} is already a class")));
            }
        }
        let mut t = self.clone();
        t.sizes.truncate(t.base);
        t.per_slab.truncate(t.base);
        t.sizes.extend_from_slice(spares);
        t.per_slab
            .extend(spares.iter().map(|&s| self.slab_size / s));
        Ok(t)
    }

    /// The classes of the table proper (ids `0..base_len()`); spares follow.
    #[inline]
    pub fn base_len(&self) -> usize {
        self.base
    }

    /// The class with chunk size exactly `size`, table or spare.
    pub fn class_of_size(&self, size: usize) -> Option<ClassId> {
        let base = &self.sizes[..self.base];
        if let Ok(i) = base.binary_search(&size) {
            return Some(ClassId(i as u16));
        }
        self.sizes[self.base..]
            .binary_search(&size)
            .ok()
            .map(|i| ClassId((self.base + i) as u16))
    }

    /// The number of classes, spares included.
    #[inline]
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Always false: a table has at least one class.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// The chunk size of `class`. Panics if `class` is out of range.
    #[inline]
    pub fn chunk_size(&self, class: ClassId) -> usize {
        self.sizes[class.index()]
    }

    /// How many chunks of `class` one slab holds. Panics if `class` is out of range.
    #[inline]
    pub fn chunks_per_slab(&self, class: ClassId) -> usize {
        self.per_slab[class.index()]
    }

    /// The slab size in bytes (a power of two).
    #[inline]
    pub fn slab_size(&self) -> usize {
        self.slab_size
    }

    /// The smallest class whose chunk holds `size` bytes, or `None` if `size` exceeds
    /// [`max_chunk`](Self::max_chunk). O(1) for `size <= SMALL_LOOKUP_MAX`.
    #[inline]
    pub fn class_for(&self, size: usize) -> Option<ClassId> {
        if size <= SMALL_LOOKUP_MAX {
            let g = (1usize << self.shift) - 1;
            let c = self.small[(size + g) >> self.shift];
            return (c != u16::MAX).then_some(ClassId(c));
        }
        let i = self.sizes[..self.base].partition_point(|&s| s < size);
        (i < self.base).then_some(ClassId(i as u16))
    }

    /// The classes and their chunk sizes: the table smallest first, then the spares.
    pub fn iter(&self) -> impl Iterator<Item = (ClassId, usize)> + '_ {
        self.sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| (ClassId(i as u16), s))
    }

    /// The chunk sizes: the table smallest first, then the spares.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The largest chunk size of the table proper (spares are never larger).
    #[inline]
    pub fn max_chunk(&self) -> usize {
        self.sizes[self.base - 1]
    }
}

/// A general-purpose table of classes for arbitrary small allocations: 16-byte steps up to
/// 128 B, then four classes per doubling up to 32 KiB, every size a multiple of 16 (so every
/// chunk is 16-byte aligned), 1 MiB slabs. Used by
/// [`SlabGlobalAlloc`](crate::global::SlabGlobalAlloc).
pub fn general_classes() -> SizeClasses {
    let mut sizes: Vec<usize> = (1..=8).map(|i| i * 16).collect();
    let mut base = 128;
    while base < 32 << 10 {
        for q in 1..=4 {
            sizes.push(base + base * q / 4);
        }
        base *= 2;
    }
    SizeClasses::from_list(&sizes, 16, 1 << 20).expect("the general-purpose table is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spares_follow_the_table_and_are_checked() {
        let t = SizeClasses::from_list(&[64, 128, 256], 8, 4096).unwrap();
        let s = t.with_spares(&[16, 72, 200]).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s.base_len(), 3);
        assert_eq!(s.sizes(), &[64, 128, 256, 16, 72, 200]);
        assert_eq!(s.chunks_per_slab(ClassId(5)), 4096 / 200);
        assert_eq!(s.max_chunk(), 256);
        assert_eq!(s.class_for(10), Some(ClassId(0)));
        assert_eq!(s.class_for(257), None);
        assert_eq!(s.class_of_size(72), Some(ClassId(4)));
        assert_eq!(s.class_of_size(128), Some(ClassId(1)));
        assert_eq!(s.class_of_size(80), None);
        for bad in [&[64][..], &[300], &[4], &[80, 72]] {
            assert!(t.with_spares(bad).is_err(), "{bad:?}");
        }
    }

    /// memcached 1.6.18 with default settings (`memcached -vv` prints these).
    const MEMCACHED_DEFAULT: [usize; 39] = [
        96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944, 1184, 1480, 1856, 2320, 2904, 3632,
        4544, 5680, 7104, 8880, 11104, 13880, 17352, 21696, 27120, 33904, 42384, 52984, 66232,
        82792, 103496, 129376, 161720, 202152, 252696, 315872, 394840, 524288,
    ];

    /// memcached's `slabs_init`, written out independently: `unsigned int size`, `size *= factor`.
    fn memcached_slabs_init(chunk_size: u32, factor: f64) -> Vec<usize> {
        let page = 1u32 << 20;
        let chunk_max = page / 2;
        let mut out = Vec::new();
        let mut size: u32 = 48 + chunk_size;
        let mut i = 0;
        loop {
            i += 1;
            if i >= 63 {
                break;
            }
            if f64::from(size) >= f64::from(chunk_max) / factor {
                break;
            }
            if size % 8 != 0 {
                size += 8 - (size % 8);
            }
            out.push(size as usize);
            size = (f64::from(size) * factor) as u32;
        }
        out.push(chunk_max as usize);
        out
    }

    #[test]
    fn memcached_default_table_is_exact() {
        let c = SizeClasses::memcached_default();
        assert_eq!(c.sizes(), &MEMCACHED_DEFAULT[..]);
        assert_eq!(c.len(), 39);
        assert_eq!(c.chunks_per_slab(ClassId(0)), (1 << 20) / 96);
        assert_eq!(c.chunks_per_slab(ClassId(38)), 2);
        assert_eq!(c.max_chunk(), 524_288);
        assert_eq!(memcached_slabs_init(48, 1.25), MEMCACHED_DEFAULT.to_vec());
    }

    #[test]
    fn memcached_variants() {
        for (n, f) in [
            (48u32, 1.1),
            (48, 1.05),
            (16, 1.25),
            (100, 2.0),
            (8, 1.5),
            (48, 1.01),
        ] {
            let want = memcached_slabs_init(n, f);
            match SizeClasses::geometric(48 + n as usize, f, 524_288, 8, 1 << 20) {
                Ok(c) => assert_eq!(c.sizes(), &want[..], "-n {n} -f {f}"),
                // memcached itself would make coinciding classes here (96 * 1.01 truncates to
                // 96); we refuse those parameters.
                Err(e) => {
                    assert!(want.windows(2).any(|w| w[0] >= w[1]), "-n {n} -f {f}: {e}");
                    assert!(e.to_string().contains("coincide"), "{e}");
                }
            }
        }
        // -f 1.1 hits memcached's cap of 63 classes.
        assert_eq!(memcached_slabs_init(48, 1.1).len(), 63);
    }

    #[test]
    fn bad_parameters_are_rejected_with_reasons() {
        let e = |r: Result<SizeClasses, Error>| r.unwrap_err().to_string();
        assert!(e(SizeClasses::geometric(96, 1.0, 524_288, 8, 1 << 20)).contains("factor"));
        assert!(e(SizeClasses::geometric(96, f64::NAN, 524_288, 8, 1 << 20)).contains("factor"));
        assert!(e(SizeClasses::geometric(96, 1.25, 2 << 20, 8, 1 << 20)).contains("slab size"));
        assert!(e(SizeClasses::geometric(96, 1.25, 1 << 20, 8, 3 << 20)).contains("power of two"));
        assert!(e(SizeClasses::geometric(0, 1.25, 1 << 19, 8, 1 << 20)).contains("minimum"));
        assert!(e(SizeClasses::geometric(96, 1.25, 1 << 19, 6, 1 << 20)).contains("alignment"));
        assert!(e(SizeClasses::from_list(&[64, 32], 8, 1 << 20)).contains("unsorted"));
        assert!(e(SizeClasses::from_list(&[64, 64], 8, 1 << 20)).contains("duplicate"));
        assert!(e(SizeClasses::from_list(&[0, 64], 8, 1 << 20)).contains("zero"));
        assert!(e(SizeClasses::from_list(&[64, 65, 66], 8, 1 << 20)).contains("round up"));
        assert!(e(SizeClasses::from_list(&[64, 2 << 20], 8, 1 << 20)).contains("larger than"));
        assert!(e(SizeClasses::from_list(&[], 8, 1 << 20)).contains("empty"));
    }

    #[test]
    fn from_list_rounds_to_alignment() {
        let c = SizeClasses::from_list(&[10, 17, 100, 4097, 5000], 8, 1 << 16).unwrap();
        assert_eq!(c.sizes(), &[16, 24, 104, 4104, 5000]);
        assert_eq!(c.class_for(1), Some(ClassId(0)));
        assert_eq!(c.class_for(17), Some(ClassId(1)));
        assert_eq!(c.class_for(25), Some(ClassId(2)));
        assert_eq!(c.class_for(4097), Some(ClassId(3)));
        assert_eq!(c.class_for(4105), Some(ClassId(4)));
        assert_eq!(c.class_for(5001), None);
        assert_eq!(ClassId(2).display_id(), 3);
    }

    fn arb_table() -> impl Strategy<Value = SizeClasses> {
        let geo = (
            8usize..300,
            1.02f64..3.0,
            prop::sample::select(vec![1usize, 2, 4, 8, 16, 64]),
        )
            .prop_filter_map("valid", |(min, f, a)| {
                SizeClasses::geometric(min, f, 1 << 17, a, 1 << 18).ok()
            });
        let list = (
            prop::collection::btree_set(8usize..20_000, 1..80),
            prop::sample::select(vec![1usize, 4, 8, 32]),
        )
            .prop_filter_map("valid", |(set, a)| {
                let v: Vec<usize> = set.into_iter().collect();
                SizeClasses::from_list(&v, a, 1 << 15).ok()
            });
        prop_oneof![geo, list]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 2 } else { 64 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Every size maps to the smallest class that holds it.
        #[test]
        fn lookup_finds_smallest_fitting_class(t in arb_table(), probes in prop::collection::vec(0usize..140_000, 64)) {
            let check = |size: usize| {
                let want = t.sizes().iter().position(|&s| s >= size).map(|i| ClassId(i as u16));
                prop_assert_eq!(t.class_for(size), want, "size {}", size);
                Ok(())
            };
            for size in 0..=SMALL_LOOKUP_MAX + 16 { check(size)?; }
            for &(_, s) in t.iter().collect::<Vec<_>>().iter() {
                check(s)?; check(s + 1)?; check(s.saturating_sub(1))?;
            }
            for p in probes { check(p)?; }
        }

        /// Tables are strictly ascending, aligned-ish and fit the slab.
        #[test]
        fn tables_are_well_formed(t in arb_table()) {
            prop_assert!(t.sizes().windows(2).all(|w| w[0] < w[1]));
            for (c, s) in t.iter() {
                prop_assert!(s >= MIN_CHUNK && s <= t.slab_size());
                prop_assert_eq!(t.chunks_per_slab(c), t.slab_size() / s);
                prop_assert!(t.chunks_per_slab(c) >= 1);
            }
        }

        /// The geometric builder equals memcached's own loop for its parameters.
        #[test]
        fn geometric_matches_memcached(n in 1u32..400, f in 1.05f64..4.0) {
            let want = memcached_slabs_init(n, f);
            if let Ok(c) = SizeClasses::geometric(48 + n as usize, f, 524_288, 8, 1 << 20) {
                prop_assert_eq!(c.sizes(), &want[..]);
            } else {
                prop_assert!(want.windows(2).any(|w| w[0] >= w[1]));
            }
        }
    }

    #[test]
    fn general_classes_are_aligned() {
        let c = general_classes();
        assert!(c.sizes().iter().all(|s| s % 16 == 0));
        assert_eq!(c.max_chunk(), 32 << 10);
        assert_eq!(c.chunk_size(c.class_for(1).unwrap()), 16);
        assert_eq!(c.chunk_size(c.class_for(129).unwrap()), 160);
    }
}
