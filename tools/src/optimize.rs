//! Optimal size classes for a histogram, under a server's rules.
//!
//! # The problem
//! Given items with sizes `s` (a [`Hist`]) and a sorted list of chunk sizes, each item
//! goes into the smallest chunk at least as large; its waste is `chunk - s`. We look for
//! the list of at most `k` chunks, allowed by [`Rules`], that minimises the total waste.
//!
//! # The dynamic program
//! The candidate chunk sizes are sorted (`c_0 < c_1 < ...`); `N[i]` and `S[i]` count and
//! sum the items of size at most `c_i`. The waste of a class at `c_i` whose predecessor is
//! `c_p` is `w(p, i) = g(c_i) (N[i] - N[p]) - (S[i] - S[p])` with `g(c) = c` (or, counting
//! slab tail waste, `g(c) = page / floor(page / c)`, the chunk's share of its page, which
//! is also nondecreasing). Then `f_j(i) = min_p f_{j-1}(p) + w(p, i)` over the `p` that
//! the rules allow before `i` (a prefix `p < lim(i)` with `lim` nondecreasing).
//!
//! `w` is Monge (`w(a,c) + w(b,d) - w(a,d) - w(b,c) = (N[b] - N[a]) (g(c) - g(d)) <= 0`
//! for `a < b < c < d`), and the forbidden region `p >= lim(i)` is a staircase, so the
//! leftmost optimal `p` is nondecreasing in `i` and each layer is solved by divide and
//! conquer in `O(n log n)`: `O(k n log n)` in all. Costs are exact integers (`i128`,
//! scaled by [`SCALE`]); with tail waste `g` is rounded to 1/1000 byte.
//!
//! Candidates: without a minimum gap, optimal chunks sit on observed sizes (rounded up to
//! the alignment), so only those are tried; with a gap (memcached's "more than 8 bytes
//! above the previous"), every aligned size between the smallest and the largest item is
//! a candidate, since two crowded neighbouring sizes may be best served by pushing one
//! class past an unobserved size.

use serde::Serialize;

use crate::hist::Hist;

/// Fixed-point scale of DP costs (1/1000 byte).
pub const SCALE: i128 = 1000;

const INF: i128 = i128::MAX / 4;

/// What lists of chunk sizes a server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// Chunk sizes are multiples of this.
    pub align: u64,
    /// Smallest chunk size.
    pub min_chunk: u64,
    /// Consecutive chunk sizes differ by at least this much.
    pub min_gap: u64,
    /// memcached's check on the sizes as written (before rounding up to `align`): each
    /// at least `min_chunk` and at least this much above the previous (0: no such rule).
    /// Written sizes that are not multiples of `align` then allow runs of chunks only
    /// `align` apart (`49-58-67` gives chunks 56, 64, 72).
    pub raw_gap: u64,
    /// Largest explicit chunk size.
    pub max_chunk: u64,
    /// Most explicit classes.
    pub max_classes: usize,
    /// A class the server appends after the list by itself (memcached: `slab_chunk_max`).
    pub implicit_top: Option<u64>,
}

/// memcached's item size limit for a chunk: its `slab_chunk_max` default (half a 1 MiB page).
pub const MEMCACHED_CHUNK_MAX: u64 = 524_288;
/// memcached's slab page size.
pub const MEMCACHED_PAGE: u64 = 1 << 20;

impl Rules {
    /// No rules but a cap on the number of classes: the unconstrained optimum.
    pub fn unconstrained(max_classes: usize) -> Rules {
        Rules {
            align: 1,
            min_chunk: 1,
            min_gap: 1,
            raw_gap: 0,
            max_chunk: u64::MAX / 4,
            max_classes,
            implicit_top: None,
        }
    }

    /// memcached 1.6.18's `-o slab_sizes=` rules: each written size at least 48 (`-n`),
    /// more than 8 above the previous written size, at most 524288, at most 62 entries;
    /// sizes are then rounded up to multiples of 8 and a 524288 class is appended. The
    /// chunk sizes are strictly ascending multiples of 8; the written sizes are found by
    /// [`Rules::written`].
    pub fn memcached() -> Rules {
        Rules {
            align: 8,
            min_chunk: 48,
            min_gap: 8,
            raw_gap: 9,
            max_chunk: MEMCACHED_CHUNK_MAX - 8,
            max_classes: 62,
            implicit_top: Some(MEMCACHED_CHUNK_MAX),
        }
    }

    /// What `kvcache-server -o slab_sizes=` accepts (the one place this is written
    /// down; see `kvcache_server::config`): sizes rounded up to multiples of 8, at least
    /// 16, strictly ascending after rounding, 1 to 1000 of them; the server appends a
    /// class of half its slab (`slab_size / 2`, 32 KiB by default) when the largest listed
    /// size is below it. We emit multiples of 8 below that class, so the slab size stays
    /// the default; items above it are chained over several chunks and not counted.
    pub fn kvcache(slab_size: u64) -> Rules {
        Rules {
            align: 8,
            min_chunk: 16,
            min_gap: 8,
            raw_gap: 0,
            max_chunk: slab_size / 2 - 8,
            max_classes: 1000,
            implicit_top: Some(slab_size / 2),
        }
    }

    /// The largest item size a list under these rules can hold.
    pub fn cover_limit(&self) -> u64 {
        self.implicit_top.unwrap_or(self.max_chunk)
    }

    /// The sizes to write on the command line for a list of chunk sizes: the chunks
    /// themselves, or under a `raw_gap` rule the smallest written sizes that round up to
    /// them and keep the gap. `None` if the list cannot be written.
    pub fn written(&self, chunks: &[u64]) -> Option<Vec<u64>> {
        if self.raw_gap == 0 {
            return Some(chunks.to_vec());
        }
        let a = self.align.max(1);
        let mut out: Vec<u64> = Vec::with_capacity(chunks.len());
        for &c in chunks {
            let lo = (c + 1).saturating_sub(a).max(self.min_chunk);
            let r = match out.last() {
                Some(&p) => lo.max(p + self.raw_gap),
                None => lo,
            };
            if r > c {
                return None;
            }
            out.push(r);
        }
        Some(out)
    }

    /// Checks a list of explicit chunk sizes against the rules.
    pub fn check(&self, list: &[u64]) -> Result<(), String> {
        if self.written(list).is_none() {
            return Err(format!(
                "{list:?} cannot be written under a {} byte gap",
                self.raw_gap
            ));
        }
        if list.is_empty() || list.len() > self.max_classes {
            return Err(format!(
                "{} classes (1..={} allowed)",
                list.len(),
                self.max_classes
            ));
        }
        for (i, &c) in list.iter().enumerate() {
            if c % self.align != 0 || c < self.min_chunk || c > self.max_chunk {
                return Err(format!("chunk {c} not allowed"));
            }
            if i > 0 && c < list[i - 1] + self.min_gap.max(1) {
                return Err(format!("chunk {c} too close to {}", list[i - 1]));
            }
        }
        Ok(())
    }
}

/// How many classes to use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClassCount {
    /// At most this many.
    Exact(usize),
    /// Add classes while one more cuts the waste by at least this fraction of the waste
    /// with one class fewer (up to the rules' maximum).
    Auto {
        /// Fraction of the waste (0.005 = 0.5%).
        min_gain: f64,
    },
}

/// One class of a solution or an evaluated configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassStat {
    /// Chunk size.
    pub chunk: u64,
    /// Items it holds.
    pub items: u64,
    /// Sum over its items of `chunk - size`.
    pub waste: u128,
    /// Unused bytes at the end of its slab pages (with the pages the items need).
    pub tail_waste: u128,
}

/// The waste of a class list on a histogram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Classes in order (all of them, including empty ones).
    pub classes: Vec<ClassStat>,
    /// Total `chunk - size` over the items that fit.
    pub waste: u128,
    /// Total slab tail waste.
    pub tail_waste: u128,
    /// Items that fit some class.
    pub items: u64,
    /// Sum of their sizes.
    pub bytes: u128,
    /// Items larger than the largest class (not counted in the waste).
    pub oversize_items: u64,
}

/// Evaluates a sorted list of chunk sizes on `h`; `page` is the slab size for tail waste.
pub fn evaluate(h: &Hist, classes: &[u64], page: u64) -> Evaluation {
    let mut out = Vec::with_capacity(classes.len());
    let e = h.entries();
    let mut i = 0;
    let (mut waste, mut tail, mut items, mut bytes) = (0u128, 0u128, 0u64, 0u128);
    for &c in classes {
        let (mut n, mut w) = (0u64, 0u128);
        while i < e.len() && e[i].0 <= c {
            n += e[i].1;
            w += u128::from(c - e[i].0) * u128::from(e[i].1);
            bytes += u128::from(e[i].0) * u128::from(e[i].1);
            i += 1;
        }
        let per = (page / c.max(1)).max(1);
        let t = if c <= page {
            u128::from(n.div_ceil(per)) * u128::from(page % c)
        } else {
            0
        };
        waste += w;
        tail += t;
        items += n;
        out.push(ClassStat {
            chunk: c,
            items: n,
            waste: w,
            tail_waste: t,
        });
    }
    let oversize_items = e[i..].iter().map(|x| x.1).sum();
    Evaluation {
        classes: out,
        waste,
        tail_waste: tail,
        items,
        bytes,
        oversize_items,
    }
}

/// An optimal list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Solution {
    /// The explicit chunk sizes.
    pub explicit: Vec<u64>,
    /// What goes into `-o slab_sizes=` (equal to `explicit` unless the rules have a
    /// `raw_gap`).
    pub written: Vec<u64>,
    /// The explicit sizes followed by the implicit class, if the rules have one.
    pub classes: Vec<u64>,
    /// The objective: total waste in bytes (amortised tail waste included if asked).
    pub objective: f64,
    /// The best objective for `1, 2, ...` explicit classes (as far as computed).
    pub by_count: Vec<f64>,
}

fn round_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

struct Dp {
    cand: Vec<u64>,
    n: Vec<i128>,
    s: Vec<i128>,
    g: Vec<i128>,
    lim: Vec<usize>,
    ntot: i128,
    stot: i128,
    gtop: Option<i128>,
    largest: u64,
}

impl Dp {
    #[inline]
    fn w(&self, p: Option<usize>, i: usize) -> i128 {
        let (np, sp) = p.map_or((0, 0), |p| (self.n[p], self.s[p]));
        self.g[i] * (self.n[i] - np) - SCALE * (self.s[i] - sp)
    }

    fn top_cost(&self, i: usize) -> i128 {
        match self.gtop {
            Some(g) => g * (self.ntot - self.n[i]) - SCALE * (self.stot - self.s[i]),
            None if self.cand[i] >= self.largest => 0,
            None => INF,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        prev: &[i128],
        cur: &mut [i128],
        opt: &mut [u32],
        lo: usize,
        hi: usize,
        olo: usize,
        ohi: usize,
    ) {
        if lo >= hi {
            return;
        }
        let mid = (lo + hi) / 2;
        let end = ohi.min(self.lim[mid]);
        let (mut best, mut arg) = (INF, olo);
        for (p, &fp) in prev.iter().enumerate().take(end).skip(olo) {
            if fp >= INF {
                continue;
            }
            let v = fp + self.w(Some(p), mid);
            if v < best {
                best = v;
                arg = p;
            }
        }
        cur[mid] = best;
        opt[mid] = arg as u32;
        let split = if best >= INF { olo } else { arg };
        self.layer(prev, cur, opt, lo, mid, olo, split + 1);
        self.layer(prev, cur, opt, mid + 1, hi, split, ohi);
    }
}

fn gain_fn(c: u64, page: Option<u64>) -> i128 {
    match page {
        Some(pg) if c <= pg => {
            let q = i128::from(pg / c);
            (SCALE * i128::from(pg) + q / 2) / q
        }
        _ => SCALE * i128::from(c),
    }
}

/// The optimal class list for the items of `h` that the rules can hold (larger ones are
/// ignored). `page` = `Some(slab size)` adds each chunk's share of its page's tail waste
/// to the objective. Returns `None` if no list is possible (no item fits).
pub fn optimize(h: &Hist, rules: &Rules, count: ClassCount, page: Option<u64>) -> Option<Solution> {
    let (h, _) = h.split_at(rules.cover_limit());
    if h.is_empty() {
        return None;
    }
    let a = rules.align.max(1);
    let lo_allowed = round_up(rules.min_chunk.max(1), a);
    let hi_allowed = rules.max_chunk / a * a;
    if lo_allowed > hi_allowed {
        return None;
    }
    let e = h.entries();
    let smallest = round_up(e[0].0.max(lo_allowed), a);
    let largest = round_up(e[e.len() - 1].0, a).max(lo_allowed);
    // Under a raw-gap rule a class must be at least `far` above its predecessor to be
    // written freely; closer classes (multiples of `align` apart) form limited runs.
    let far = if rules.raw_gap > 0 {
        (rules.raw_gap + a - 1).max(rules.min_gap)
    } else {
        rules.min_gap.max(1)
    };
    let mut cand: Vec<u64> = if far <= a {
        let mut v: Vec<u64> = e
            .iter()
            .map(|x| round_up(x.0.max(lo_allowed), a))
            .filter(|&c| c <= hi_allowed)
            .collect();
        v.dedup();
        v
    } else {
        // A class never needs to sit `far` or more above the largest item: it could be
        // lowered to max(largest, previous + far).
        let top = (largest + far - a).min(hi_allowed);
        (smallest / a..=top / a).map(|u| u * a).collect()
    };
    if rules.implicit_top.is_none() && largest > hi_allowed {
        // The largest item must be covered by an explicit class.
        return None;
    }
    if let Some(t) = rules.implicit_top {
        cand.retain(|&c| c < t);
        if cand.is_empty() && lo_allowed < t {
            // Every item goes to the implicit class; one (empty) explicit class is
            // still needed for a list.
            cand.push(lo_allowed);
        }
    }
    if cand.is_empty() {
        return None;
    }
    let m = cand.len();
    let (mut nv, mut sv) = (Vec::with_capacity(m), Vec::with_capacity(m));
    let (mut j, mut cn, mut cs) = (0usize, 0i128, 0i128);
    for &c in &cand {
        while j < e.len() && e[j].0 <= c {
            cn += i128::from(e[j].1);
            cs += i128::from(e[j].0) * i128::from(e[j].1);
            j += 1;
        }
        nv.push(cn);
        sv.push(cs);
    }
    let ntot: i128 = e.iter().map(|x| i128::from(x.1)).sum();
    let stot: i128 = e.iter().map(|x| i128::from(x.0) * i128::from(x.1)).sum();
    let lim: Vec<usize> = cand
        .iter()
        .map(|&c| cand.partition_point(|&p| p + far <= c))
        .collect();
    // States per candidate: under a raw-gap rule, state `o` (0-based) means the written
    // size is `chunk - align + 1 + o`; otherwise one state.
    let st = if rules.raw_gap > 0 { a as usize } else { 1 };
    let dp = Dp {
        g: cand.iter().map(|&c| gain_fn(c, page)).collect(),
        gtop: rules.implicit_top.map(|t| gain_fn(t, page)),
        largest,
        cand,
        n: nv,
        s: sv,
        lim,
        ntot,
        stot,
    };
    let kmax = match count {
        ClassCount::Exact(k) => k,
        ClassCount::Auto { .. } => usize::MAX,
    }
    .min(rules.max_classes)
    .min(m)
    .max(1);
    let threshold = match count {
        ClassCount::Auto { min_gain } => Some(min_gain),
        ClassCount::Exact(_) => None,
    };
    // Layer 1: the first class; its written size is max(min_chunk, chunk - align + 1).
    let mut f: Vec<i128> = vec![INF; m * st];
    for i in 0..m {
        let c = dp.cand[i];
        let o = if st > 1 {
            ((c + 1).saturating_sub(a).max(rules.min_chunk) + a - 1 - c) as usize
        } else {
            0
        };
        if o < st {
            f[i * st + o] = dp.w(None, i);
        }
    }
    let total = |f: &[i128]| -> (i128, usize) {
        let mut best = (INF, 0);
        for (k, &v) in f.iter().enumerate() {
            if v < INF {
                let t = v + dp.top_cost(k / st);
                if t < best.0 {
                    best = (t, k);
                }
            }
        }
        best
    };
    // Per layer: the far predecessor of each candidate, and the best state of each
    // candidate in the layer before.
    let mut layers: Vec<(Vec<u32>, Vec<u8>)> = Vec::new();
    let mut results: Vec<(i128, usize)> = vec![total(&f)];
    let mut best_j = 0;
    for _ in 1..kmax {
        let mut g = vec![INF; m];
        let mut garg = vec![0u8; m];
        for i in 0..m {
            for o in 0..st {
                if f[i * st + o] < g[i] {
                    g[i] = f[i * st + o];
                    garg[i] = o as u8;
                }
            }
        }
        let mut far_cost = vec![INF; m];
        let mut opt = vec![0u32; m];
        dp.layer(&g, &mut far_cost, &mut opt, 0, m, 0, m);
        let mut cur = vec![INF; m * st];
        for i in 0..m {
            cur[i * st] = far_cost[i];
            // A run: the previous class exactly `align` below, one state further.
            if st > 1 && i > 0 && dp.cand[i - 1] + a == dp.cand[i] {
                let w = dp.w(Some(i - 1), i);
                for o in 1..st {
                    let pv = f[(i - 1) * st + o - 1];
                    if pv < INF {
                        cur[i * st + o] = pv + w;
                    }
                }
            }
        }
        layers.push((opt, garg));
        f = cur;
        let r = total(&f);
        let prev_best = results[best_j].0;
        results.push(r);
        if r.0 < prev_best {
            if let Some(th) = threshold {
                if ((prev_best - r.0) as f64) < th * prev_best as f64 {
                    break;
                }
            }
            best_j = results.len() - 1;
        } else if threshold.is_some() && r.0 >= INF {
            break;
        }
    }
    let (obj, k) = results[best_j];
    if obj >= INF {
        return None;
    }
    let (mut i, mut o) = (k / st, k % st);
    let mut explicit = vec![dp.cand[i]];
    for l in (0..best_j).rev() {
        if o == 0 {
            let (opt, garg) = &layers[l];
            i = opt[i] as usize;
            o = garg[i] as usize;
        } else {
            i -= 1;
            o -= 1;
        }
        explicit.push(dp.cand[i]);
    }
    explicit.reverse();
    let mut classes = explicit.clone();
    classes.extend(rules.implicit_top);
    let mut by_count = Vec::new();
    let mut running = INF;
    for r in &results {
        running = running.min(r.0);
        by_count.push(running as f64 / SCALE as f64);
    }
    Some(Solution {
        written: rules
            .written(&explicit)
            .expect("the DP only builds writable lists"),
        explicit,
        classes,
        objective: obj as f64 / SCALE as f64,
        by_count,
    })
}

/// The objective of [`optimize`] for a given list (explicit classes, the implicit one
/// appended per the rules), in scaled units; items above the rules' limit are ignored.
pub fn objective(h: &Hist, rules: &Rules, explicit: &[u64], page: Option<u64>) -> Option<i128> {
    let (h, _) = h.split_at(rules.cover_limit());
    let mut classes = explicit.to_vec();
    classes.extend(rules.implicit_top);
    let mut total = 0i128;
    let mut k = 0;
    for &(s, n) in h.entries() {
        while k < classes.len() && classes[k] < s {
            k += 1;
        }
        let c = *classes.get(k)?;
        total += gain_fn(c, page) * i128::from(n) - SCALE * i128::from(s) * i128::from(n);
    }
    Some(total)
}

/// memcached's class table for `-n`, `-f` (its `slabs_init`): start at 48 + `n`, round up
/// to 8, multiply by `factor` (truncating), stop at `chunk_max / factor`; the last class
/// is `chunk_max`. At most 63 classes.
pub fn memcached_classes(n: u64, factor: f64, chunk_max: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut size: u64 = 48 + n;
    while out.len() < 62 {
        if (size as f64) >= chunk_max as f64 / factor {
            break;
        }
        size = round_up(size, 8);
        out.push(size);
        size = ((size as f64) * factor) as u64;
    }
    out.push(chunk_max);
    out
}

/// The result of the `-n`/`-f` search.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NfChoice {
    /// `-n` (bytes of key + value + flags in the smallest class).
    pub n: u64,
    /// `-f`.
    pub factor: f64,
    /// The classes memcached builds from them.
    pub classes: Vec<u64>,
    /// Their total waste (chunk - size) on the histogram.
    pub waste: u128,
}

/// Searches `-n` in 8..=512 (steps of 8) and `-f` in 1.01..=2.00 (steps of 0.01) for the
/// pair whose memcached table wastes least on `h` (memcached sizes; items above 524288
/// ignored).
pub fn best_memcached_nf(h: &Hist) -> NfChoice {
    let (h, _) = h.split_at(MEMCACHED_CHUNK_MAX);
    let mut best: Option<NfChoice> = None;
    for fi in 101..=200u32 {
        let factor = f64::from(fi) / 100.0;
        for n in (8..=512).step_by(8) {
            let classes = memcached_classes(n, factor, MEMCACHED_CHUNK_MAX);
            let ev = evaluate(&h, &classes, MEMCACHED_PAGE);
            if ev.oversize_items != 0 {
                continue;
            }
            if best.as_ref().is_none_or(|b| ev.waste < b.waste) {
                best = Some(NfChoice {
                    n,
                    factor,
                    classes,
                    waste: ev.waste,
                });
            }
        }
    }
    best.expect("the default table always holds items up to 524288")
}

/// Exhaustive search over all allowed lists drawn from the aligned sizes up to `bound`
/// (for tests: exponential in `bound / align`). Returns the best scaled objective using at
/// most `k` explicit classes.
pub fn brute_force(
    h: &Hist,
    rules: &Rules,
    k: usize,
    page: Option<u64>,
    bound: u64,
) -> Option<i128> {
    let a = rules.align.max(1);
    let grid: Vec<u64> = (round_up(rules.min_chunk, a) / a..=bound.min(rules.max_chunk) / a)
        .map(|u| u * a)
        .filter(|&c| rules.implicit_top.is_none_or(|t| c < t))
        .collect();
    assert!(grid.len() <= 20, "brute force grid too large");
    let mut best: Option<i128> = None;
    for mask in 1u32..(1 << grid.len()) {
        if mask.count_ones() as usize > k.min(rules.max_classes) {
            continue;
        }
        let list: Vec<u64> = (0..grid.len())
            .filter(|i| mask >> i & 1 == 1)
            .map(|i| grid[i])
            .collect();
        if rules.check(&list).is_err() {
            continue;
        }
        if let Some(v) = objective(h, rules, &list, page) {
            best = Some(best.map_or(v, |b: i128| b.min(v)));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn memcached_default_table() {
        let c = memcached_classes(48, 1.25, MEMCACHED_CHUNK_MAX);
        assert_eq!(c.len(), 39);
        assert_eq!(&c[..8], &[96, 120, 152, 192, 240, 304, 384, 480]);
        assert_eq!(c[c.len() - 2], 394_840);
        assert_eq!(*c.last().unwrap(), 524_288);
    }

    #[test]
    fn single_size_gets_its_own_class() {
        let h = Hist::from_pairs([(105, 1000)]);
        let s = optimize(&h, &Rules::memcached(), ClassCount::Exact(1), None).unwrap();
        assert_eq!(s.explicit, vec![112]);
        assert_eq!(s.classes, vec![112, 524_288]);
        assert_eq!(s.objective, 7000.0);
        let s = optimize(&h, &Rules::unconstrained(10), ClassCount::Exact(3), None).unwrap();
        assert_eq!(s.explicit, vec![105]);
        assert_eq!(s.objective, 0.0);
    }

    #[test]
    fn gap_rule_pushes_a_class_past_an_unobserved_size() {
        // Heavy at 104 and 112: they cannot both have a class (8 apart), and 104 + 120
        // beats 112 alone; the unconstrained optimum takes both.
        let h = Hist::from_pairs([(104, 100), (112, 100), (120, 1)]);
        let r = Rules {
            implicit_top: None,
            max_chunk: 4096,
            raw_gap: 0,
            min_gap: 16,
            ..Rules::memcached()
        };
        let s = optimize(&h, &r, ClassCount::Exact(2), None).unwrap();
        assert!(r.check(&s.explicit).is_ok());
        assert_eq!(s.explicit, vec![104, 120]);
        assert_eq!(s.objective, 800.0);
        let bf = brute_force(&h, &r, 2, None, 128).unwrap();
        assert_eq!(bf, (s.objective * SCALE as f64) as i128);
    }

    #[test]
    fn memcached_written_sizes_allow_runs_of_8_byte_steps() {
        // memcached 1.6.18 takes 49-58-67 and makes chunks 56, 64, 72.
        let r = Rules::memcached();
        assert_eq!(r.written(&[56, 64, 72]), Some(vec![49, 58, 67]));
        assert_eq!(r.written(&[48, 56]), None);
        assert_eq!(r.written(&[48, 64]), Some(vec![48, 57]));
        let run: Vec<u64> = (7..=15).map(|u| u * 8).collect();
        assert!(r.written(&run[..8]).is_some());
        assert!(r.written(&run).is_none());
        let h = Hist::from_pairs((55..=130).map(|s| (s, 10)));
        let s = optimize(&h, &r, ClassCount::Exact(62), None).unwrap();
        assert!(r.check(&s.explicit).is_ok());
        assert!(
            s.explicit.windows(2).any(|w| w[1] - w[0] == 8),
            "{:?}",
            s.explicit
        );
    }

    #[test]
    fn auto_count_stops_when_gain_is_small() {
        let h = Hist::from_pairs((1..400).map(|i| (100 + i * i % 997, 1 + i % 7)));
        for g in [0.5, 0.05, 0.005] {
            let s = optimize(
                &h,
                &Rules::memcached(),
                ClassCount::Auto { min_gain: g },
                None,
            )
            .unwrap();
            let k = s.explicit.len();
            let b = &s.by_count;
            // Every class taken saved at least the fraction; the next one would not have.
            for j in 1..k {
                assert!(b[j - 1] - b[j] >= g * b[j - 1], "{g} {j} {b:?}");
            }
            assert!(k == 62 || b[k - 1] - b[k] < g * b[k - 1], "{g} {k} {b:?}");
            assert_eq!(s.objective, b[k - 1]);
        }
    }

    fn hist_strategy(max: u64) -> impl Strategy<Value = Hist> {
        prop::collection::vec((1..=max, 1u64..50), 1..12).prop_map(Hist::from_pairs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn dp_matches_brute_force_unconstrained(h in hist_strategy(14), k in 1usize..6, tail in any::<bool>()) {
            let r = Rules { max_chunk: 14, ..Rules::unconstrained(64) };
            let page = tail.then_some(40);
            let s = optimize(&h, &r, ClassCount::Exact(k), page).unwrap();
            prop_assert!(s.explicit.len() <= k);
            let v = objective(&h, &r, &s.explicit, page).unwrap();
            prop_assert_eq!(v as f64 / SCALE as f64, s.objective);
            prop_assert_eq!(Some(v), brute_force(&h, &r, k, page, 14));
        }

        #[test]
        fn dp_matches_brute_force_memcached_like(
            h in hist_strategy(150), k in 1usize..7, tail in any::<bool>(), top in any::<bool>(),
            raw in any::<bool>(),
        ) {
            // memcached's rules scaled down: chunks multiple of 8, >= 48, 16 apart,
            // at most 4 explicit, optionally an implicit top class.
            let r = Rules {
                align: 8,
                min_chunk: 48,
                min_gap: if raw { 8 } else { 16 },
                raw_gap: if raw { 9 } else { 0 },
                max_chunk: if top { 128 } else { 152 },
                max_classes: 4,
                implicit_top: top.then_some(152),
            };
            let page = tail.then_some(1000);
            let s = optimize(&h, &r, ClassCount::Exact(k), page).unwrap();
            prop_assert!(r.check(&s.explicit).is_ok(), "{:?}", s.explicit);
            prop_assert_eq!(Some(s.written.clone()), r.written(&s.explicit));
            let v = objective(&h, &r, &s.explicit, page).unwrap();
            prop_assert_eq!(v as f64 / SCALE as f64, s.objective);
            prop_assert_eq!(Some(v), brute_force(&h, &r, k, page, 152));
        }

        #[test]
        fn more_classes_never_hurt(h in hist_strategy(5000), k in 1usize..20) {
            let r = Rules::memcached();
            let a = optimize(&h, &r, ClassCount::Exact(k), None).unwrap();
            let b = optimize(&h, &r, ClassCount::Exact(k + 1), None).unwrap();
            prop_assert!(b.objective <= a.objective);
            let ev = evaluate(&h, &b.classes, MEMCACHED_PAGE);
            prop_assert_eq!(ev.waste as f64, b.objective);
        }
    }
}
