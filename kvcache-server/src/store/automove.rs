//! Pages follow demand: `slabs reassign`, `slabs automove` and the background policy.
//!
//! Size classes are fixed at start, and a slab stays with the class that first took it. When
//! the item sizes of a workload change, the slabs stay with the classes of the old sizes while
//! the new sizes evict among the few slabs they got: memcached calls it *slab
//! calcification*. The on-demand rebalance (`Store::rebalance` in `evict.rs`) only helps a
//! class that has nothing of its own to evict; a class holding one slab evicts inside it
//! forever. Moving slabs fixes that:
//!
//! * `slabs reassign <src> <dst>` empties one slab of class `src` (`-1`: any class with a
//!   slab to spare) and hands it back to the engine, where `dst` takes it when it next
//!   allocates. Live items of the slab move to other chunks of the same class
//!   (memcached's `slab_reassign_rescues`): into fresh memory of the class while `-m`
//!   leaves room for a slab beyond those earlier moves of the same tick freed for their
//!   receivers, else only into free chunks of the class's other slabs. memcached 1.6.18
//!   evicts an item that finds no free chunk even with the limit far; we evict
//!   (`slab_reassign_evictions_nomem`) only when the limit binds. Expired items are
//!   reclaimed (`slab_reassign_inline_reclaim`). The move runs synchronously in the
//!   caller; a second one while it runs is answered `BUSY`.
//! * `slabs automove <0|1|2>` picks the policy that runs once per maintenance tick (about
//!   once a second, from [`Store::maintenance`]):
//!   - `0`: off; slabs move only by `slabs reassign` and the on-demand rebalance.
//!   - `1` (the default): [`plan`] below. A *receiver* is a class that evicted or failed
//!     stores since the last tick; it asks for as many slabs as it evicted items' worth
//!     (`ceil(pressure / chunks_per_slab)`). A *donor* holds at least two slabs and either
//!     has a slab's worth of free chunks and no pressure of its own, or holds items older
//!     than what the receiver evicts: its *eviction age* (the idle time of the items it
//!     evicts, or, when it evicts nothing, the longer of its oldest item's idle time and the
//!     time since it last evicted) times the ratio (`slabs automove ratio`, default 0.8)
//!     exceeds the idle time of the receiver's evicted items. Moving from old to young
//!     equalises eviction ages across classes, which is what one global LRU would do.
//!     memcached 1.6's mode 1 moves one 1 MiB page at a time and only after 30 seconds of
//!     evictions in every window; ours moves up to [`MOVES_PER_TICK`] 64 KiB slabs per
//!     tick as soon as the pressure shows.
//!   - `2`: aggressive, like memcached's mode 2 (a move on any eviction): every receiver
//!     takes slabs from the oldest class holding two or more, whatever the ages.
//!   - Without evictions (`-M`) a donor must hold two slabs' worth of free chunks, so the
//!     items of the slab it gives all move into its other slabs: a store that failed for
//!     want of memory never costs an item already stored. memcached's mode 1 gets the
//!     same by never taking a receiver that does not evict.
//!
//! The policy reads only the per-class counters the hot path keeps anyway (`evicted`,
//! `outofmemory`, `evicted_time`, the crawler's `age`) and the engine's slab counts; its
//! work per tick is bounded by [`MOVES_PER_TICK`] slabs and [`ITEMS_PER_TICK`] items.
//!
//! `-o no_slab_reassign` turns both off (`slabs reassign` then answers
//! `CLIENT_ERROR slab reassignment disabled`, as memcached does); the automove mode is then
//! still reported and settable but has no effect, as in memcached, whose rebalancer thread
//! does not run without reassignment.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use slab_core::engine::size_class::ClassId;

use super::stats::{bump, ClassSample};
use super::{Planner, SlabMoves, Store};

/// Most slabs the background policy moves per tick.
pub const MOVES_PER_TICK: usize = 64;

/// Most items a tick's moves may evict or relocate (slabs of small classes hold thousands).
pub const ITEMS_PER_TICK: usize = 64 << 10;

/// memcached's default `slab_automove_ratio`.
pub const DEFAULT_RATIO: f64 = 0.8;

/// One slab to move: from class index `src` to class index `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// Donor class (0-based index).
    pub src: usize,
    /// Receiver class (0-based index).
    pub dst: usize,
}

/// The automove decision: which slabs to move this tick, given the samples of the previous
/// tick (`prev`) and of this one (`cur`), `quiet[c]` = seconds since class `c` last evicted,
/// the mode (1 or 2; 0 moves nothing), the age ratio, whether evictions are on (off, `-M`,
/// a donor must hold two slabs' worth of free chunks, so that the items of the slab it
/// gives move into its other slabs and none is evicted), a class that may never give (the
/// segment class, whose chunks belong to chained items of other classes) and the most
/// moves allowed. A pure function: see the module docs for the rules.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    mode: u8,
    ratio: f64,
    evictions: bool,
    prev: &[ClassSample],
    cur: &[ClassSample],
    quiet: &[u32],
    never_donor: Option<usize>,
    budget: usize,
) -> Vec<Move> {
    let n = cur.len();
    if mode == 0 || prev.len() != n || quiet.len() != n || budget == 0 {
        return Vec::new();
    }
    // Counters can go down (`stats reset`): that tick shows no pressure.
    let evicted: Vec<u64> = (0..n)
        .map(|c| cur[c].evicted.saturating_sub(prev[c].evicted))
        .collect();
    let oom: Vec<u64> = (0..n)
        .map(|c| cur[c].outofmemory.saturating_sub(prev[c].outofmemory))
        .collect();
    // Eviction age: how old the items a class gives up are.
    let age: Vec<u32> = (0..n)
        .map(|c| {
            if evicted[c] > 0 {
                cur[c].evicted_time
            } else {
                cur[c].age.max(quiet[c])
            }
        })
        .collect();
    let mut receivers: Vec<(usize, u64)> = (0..n)
        .filter(|&c| evicted[c] + oom[c] > 0)
        .map(|c| (c, evicted[c] + oom[c]))
        .collect();
    // The hardest pressed first; ties by class for a deterministic plan.
    receivers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let is_receiver: Vec<bool> = (0..n).map(|c| evicted[c] + oom[c] > 0).collect();
    let mut slabs: Vec<usize> = cur.iter().map(|s| s.slabs).collect();
    let mut free: Vec<usize> = cur.iter().map(|s| s.free_chunks).collect();
    let mut moves = Vec::new();
    for &(r, pressure) in &receivers {
        let cps = cur[r].chunks_per_slab.max(1) as u64;
        let mut need = pressure.div_ceil(cps).max(1) as usize;
        // A receiver under only store failures evicts nothing: its young age is 0.
        let young = if evicted[r] > 0 {
            f64::from(cur[r].evicted_time)
        } else {
            0.0
        };
        while need > 0 && moves.len() < budget {
            // Rank: 2 = a slab's worth of free chunks (costs nothing to take), 1 = older
            // items than the receiver evicts; then by eviction age, then lowest class.
            let best = (0..n)
                .filter(|&d| d != r && Some(d) != never_donor && slabs[d] >= 2)
                .filter_map(|d| {
                    let cps = cur[d].chunks_per_slab.max(1);
                    let spare = !is_receiver[d] && free[d] >= cps;
                    if !evictions {
                        // Whatever slab goes, its items fit in the free chunks of the rest.
                        return (spare && free[d] >= 2 * cps).then_some((
                            2,
                            age[d],
                            std::cmp::Reverse(d),
                        ));
                    }
                    let older = mode == 2 || f64::from(age[d]) * ratio > young;
                    let rank = if spare {
                        2
                    } else if older {
                        1
                    } else {
                        return None;
                    };
                    Some((rank, age[d], std::cmp::Reverse(d)))
                })
                .max();
            let Some((_, _, std::cmp::Reverse(d))) = best else {
                break;
            };
            moves.push(Move { src: d, dst: r });
            slabs[d] -= 1;
            free[d] = free[d].saturating_sub(cur[d].chunks_per_slab);
            slabs[r] += 1;
            need -= 1;
        }
        if moves.len() >= budget {
            break;
        }
    }
    moves
}

/// The outcome of `slabs reassign`, with memcached's reply lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReassignOutcome {
    /// Done.
    Ok,
    /// Another move is running.
    Busy,
    /// `src` or `dst` is not a class id (or `-1` found no class to take from).
    BadClass,
    /// `src` holds fewer than two slabs.
    NoSpare,
    /// `src == dst`.
    Same,
    /// Reassignment is off (`-o no_slab_reassign`).
    Disabled,
}

impl ReassignOutcome {
    /// memcached 1.6.18's reply line, `\r\n` included.
    pub fn reply(self) -> &'static [u8] {
        match self {
            ReassignOutcome::Ok => b"OK\r\n",
            ReassignOutcome::Busy => b"BUSY currently processing reassign request\r\n",
            ReassignOutcome::BadClass => b"BADCLASS invalid src or dst class id\r\n",
            ReassignOutcome::NoSpare => b"NOSPARE source class has no spare pages\r\n",
            ReassignOutcome::Same => b"SAME src and dst class are identical\r\n",
            ReassignOutcome::Disabled => b"CLIENT_ERROR slab reassignment disabled\r\n",
        }
    }
}

impl SlabMoves {
    /// Reassignment on or off, automove mode `mode` (above 2 counts as 2), the default
    /// ratio, no move running.
    pub(super) fn new(reassign: bool, mode: u8) -> Self {
        SlabMoves {
            reassign: AtomicBool::new(reassign),
            mode: AtomicU8::new(mode.min(2)),
            ratio: AtomicU64::new(DEFAULT_RATIO.to_bits()),
            planner: Mutex::new(Planner::default()),
            pick_any: AtomicU64::new(0),
            running: AtomicBool::new(false),
        }
    }
}

/// What emptying one slab did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Emptied {
    /// Items moved to other chunks of the class.
    pub(super) rescued: usize,
    /// Items evicted.
    pub(super) evicted: usize,
    /// Expired or flushed items reclaimed.
    pub(super) reclaimed: usize,
    /// Live-looking chunks that could not be confirmed (being replaced meanwhile).
    pub(super) busy: usize,
}

impl Emptied {
    pub(super) fn items(&self) -> usize {
        self.rescued + self.evicted + self.reclaimed
    }
}

impl Store {
    /// Whether `slabs reassign` and the automove policy are on (`-o no_slab_reassign`
    /// turns them off).
    pub fn slab_reassign_enabled(&self) -> bool {
        self.moves.reassign.load(Ordering::Relaxed)
    }

    /// The automove mode (0, 1 or 2).
    pub fn automove_mode(&self) -> u8 {
        self.moves.mode.load(Ordering::Relaxed)
    }

    /// `slabs automove <mode>`: values above 2 are ignored.
    pub fn set_automove_mode(&self, mode: u8) {
        if mode <= 2 {
            self.moves.mode.store(mode, Ordering::Relaxed);
        }
    }

    /// The age ratio of mode 1 (`slabs automove ratio <r>`; memcached's
    /// `slab_automove_ratio`).
    pub fn automove_ratio(&self) -> f64 {
        f64::from_bits(self.moves.ratio.load(Ordering::Relaxed))
    }

    /// Sets the age ratio.
    pub fn set_automove_ratio(&self, ratio: f64) {
        self.moves.ratio.store(ratio.to_bits(), Ordering::Relaxed);
    }

    /// `slabs reassign <src> <dst>` with memcached's ids (1-based, as `stats slabs` shows
    /// them; `src` -1 picks a class with a slab to spare; `dst` 0 is the pool of empty
    /// slabs): empties one slab of `src`. Checks in memcached's order: busy, same, bad
    /// class, no spare.
    pub fn slabs_reassign(&self, src: i32, dst: i32) -> ReassignOutcome {
        if !self.slab_reassign_enabled() {
            return ReassignOutcome::Disabled;
        }
        let Ok(_planner) = self.moves.planner.try_lock() else {
            return ReassignOutcome::Busy;
        };
        if src == dst {
            return ReassignOutcome::Same;
        }
        let n = self.engine().classes_in_use() as i32;
        let es = self.engine().stats();
        let slabs_of = |id: i32| -> usize {
            if id == 0 {
                es.pooled_slabs
            } else {
                es.classes[(id - 1) as usize].slabs
            }
        };
        let mut src = src;
        if src == -1 {
            // memcached's `slabs_reassign_pick_any`: a rotating start, the first class
            // other than dst with two slabs or more.
            let start = self.moves.pick_any.fetch_add(1, Ordering::Relaxed) as i32;
            src = (0..n)
                .map(|i| (start + i).rem_euclid(n) + 1)
                .find(|&c| c != dst && slabs_of(c) >= 2)
                .unwrap_or(-1);
        }
        if !(0..=n).contains(&src) || !(0..=n).contains(&dst) {
            return ReassignOutcome::BadClass;
        }
        if slabs_of(src) < 2 {
            return ReassignOutcome::NoSpare;
        }
        if src > 0 {
            // Pool slabs are anybody's already: moving one is a no-op.
            self.move_slab(ClassId((src - 1) as u16), usize::MAX, 0);
        }
        ReassignOutcome::Ok
    }

    /// One tick of the background policy (called by [`Store::maintenance`]): samples the
    /// classes, plans with [`plan`] and moves the slabs. Returns how many slabs moved.
    pub(super) fn automove_tick(&self) -> usize {
        let mode = self.automove_mode();
        if !self.slab_reassign_enabled() {
            return 0;
        }
        let Ok(mut planner) = self.moves.planner.try_lock() else {
            return 0;
        };
        let now = self.now();
        let n = self.engine().classes_in_use();
        let es = self.engine().stats();
        let cur: Vec<ClassSample> = (0..n)
            .map(|i| {
                let class = ClassId(i as u16);
                let cps = self.classes().chunks_per_slab(class);
                self.counters.sample(class, es.classes[i].slabs, cps, now)
            })
            .collect();
        if planner.prev.len() != n {
            planner.prev = cur.clone();
            planner.last_evict = vec![0; n];
            planner.since = now;
            return 0;
        }
        for (c, s) in cur.iter().enumerate() {
            if s.evicted > planner.prev[c].evicted {
                planner.last_evict[c] = now;
            }
        }
        let quiet: Vec<u32> = planner
            .last_evict
            .iter()
            .map(|&t| now.saturating_sub(if t == 0 { planner.since } else { t }))
            .collect();
        let moves = plan(
            mode,
            self.automove_ratio(),
            self.cfg.evictions,
            &planner.prev,
            &cur,
            &quiet,
            Some(n - 1),
            MOVES_PER_TICK,
        );
        planner.prev = cur;
        let mut items = 0;
        let mut moved = 0;
        for m in moves {
            if items >= ITEMS_PER_TICK {
                break;
            }
            // The slabs moved so far this tick are their receivers': no rescue takes them.
            match self.move_slab(ClassId(m.src as u16), m.dst, moved) {
                Some(e) => {
                    items += e.items();
                    moved += 1;
                    self.report_slab_move(m.src, m.dst);
                }
                None => continue,
            }
        }
        self.counters
            .global
            .automoves
            .fetch_add(moved as u64, Ordering::Relaxed);
        moved
    }

    /// Empties one slab of `src` (which must keep at least one) for class index `dst`
    /// (`usize::MAX`: whoever allocates next) and counts it; `None` if `src` has fewer than
    /// two slabs. `reserved` slabs freed by earlier moves are their receivers': the move
    /// rescues items into fresh memory only while more than those are to be had.
    fn move_slab(&self, src: ClassId, _dst: usize, reserved: usize) -> Option<Emptied> {
        self.moves.running.store(true, Ordering::Relaxed);
        let r = self.empty_one_slab(src, reserved);
        self.moves.running.store(false, Ordering::Relaxed);
        let e = r?;
        let g = &self.counters.global;
        g.reassign_rescues
            .fetch_add(e.rescued as u64, Ordering::Relaxed);
        g.reassign_evictions
            .fetch_add(e.evicted as u64, Ordering::Relaxed);
        g.reassign_reclaims
            .fetch_add(e.reclaimed as u64, Ordering::Relaxed);
        g.reassign_busy.fetch_add(e.busy as u64, Ordering::Relaxed);
        bump(&self.counters.global.slabs_moved);
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(slabs: usize, cps: usize) -> ClassSample {
        ClassSample {
            slabs,
            chunks_per_slab: cps,
            ..ClassSample::default()
        }
    }

    /// The calcification picture: class 0 holds most slabs and stopped evicting 10 s ago,
    /// class 1 evicts items it stored a second ago.
    fn calcified() -> (Vec<ClassSample>, Vec<ClassSample>, Vec<u32>) {
        let prev = vec![class(60, 480), class(1, 29), class(1, 8)];
        let mut cur = prev.clone();
        cur[1].evicted = 29 * 5 + 1;
        cur[1].evicted_time = 1;
        (prev, cur, vec![10, 0, 10])
    }

    #[test]
    fn calcified_class_gets_slabs_from_the_old_one() {
        let (prev, cur, quiet) = calcified();
        let m = plan(1, 0.8, true, &prev, &cur, &quiet, None, 64);
        // 146 evictions at 29 per slab: 6 slabs, all from the only class that can give.
        assert_eq!(m, vec![Move { src: 0, dst: 1 }; 6]);
        // The budget bounds the plan.
        assert_eq!(plan(1, 0.8, true, &prev, &cur, &quiet, None, 2).len(), 2);
        // Off moves nothing.
        assert!(plan(0, 0.8, true, &prev, &cur, &quiet, None, 64).is_empty());
        // The excluded class never gives.
        assert!(plan(1, 0.8, true, &prev, &cur, &quiet, Some(0), 64).is_empty());
    }

    #[test]
    fn no_move_between_classes_of_equal_age() {
        // Both classes evict items idle for 100 s: balanced, nothing moves in mode 1...
        let prev = vec![class(30, 100), class(30, 100)];
        let mut cur = prev.clone();
        for c in &mut cur {
            c.evicted = 500;
            c.evicted_time = 100;
        }
        let quiet = vec![0, 0];
        assert!(plan(1, 0.8, true, &prev, &cur, &quiet, None, 64).is_empty());
        // ... nor when the donor is only a little older (within the ratio).
        cur[0].evicted_time = 120;
        assert!(plan(1, 0.8, true, &prev, &cur, &quiet, None, 64).is_empty());
        // Past the ratio the younger class takes slabs from the older one.
        cur[0].evicted_time = 200;
        let m = plan(1, 0.8, true, &prev, &cur, &quiet, None, 64);
        assert!(!m.is_empty());
        assert!(m.iter().all(|&x| x == Move { src: 0, dst: 1 }), "{m:?}");
        // Mode 2 moves on any pressure, even between equals.
        cur[0].evicted_time = 100;
        assert!(!plan(2, 0.8, true, &prev, &cur, &quiet, None, 64).is_empty());
    }

    #[test]
    fn free_chunks_donor_first_and_one_slab_kept() {
        let prev = vec![class(5, 100), class(2, 100), class(1, 10)];
        let mut cur = prev.clone();
        // Class 0 is old, class 1 is young but has two slabs' worth of free chunks.
        cur[0].age = 50;
        cur[1].free_chunks = 200;
        cur[2].outofmemory = 25;
        let quiet = vec![0, 0, 0];
        let m = plan(1, 0.8, true, &prev, &cur, &quiet, None, 64);
        // 25 failed stores at 10 per slab: 3 slabs; the free one first, and class 1 keeps
        // its last slab, so the rest come from the old class.
        assert_eq!(
            m,
            vec![
                Move { src: 1, dst: 2 },
                Move { src: 0, dst: 2 },
                Move { src: 0, dst: 2 }
            ]
        );
    }

    #[test]
    fn a_reset_counter_is_no_pressure() {
        let (prev, mut cur, quiet) = calcified();
        let prev2: Vec<ClassSample> = prev
            .iter()
            .map(|c| ClassSample {
                evicted: 1000,
                ..*c
            })
            .collect();
        cur[1].evicted = 3;
        // cur < prev everywhere but class 1 (3 < 1000 too): nothing.
        assert!(plan(1, 0.8, true, &prev2, &cur, &quiet, None, 64).is_empty());
        // Mismatched lengths plan nothing rather than panic.
        assert!(plan(1, 0.8, true, &prev[..2], &cur, &quiet, None, 64).is_empty());
    }

    use crate::store::{StoreConfig, StoreMode, StoreOutcome};

    fn store(mb: usize, reassign: bool, automove: u8) -> Store {
        let mut cfg = StoreConfig::new(mb << 20);
        cfg.slab_reassign = reassign;
        cfg.slab_automove = automove;
        Store::new(cfg).unwrap()
    }

    fn value_of(k: usize) -> Vec<u8> {
        format!("value-{k:08}").into_bytes()
    }

    fn key(k: usize) -> Vec<u8> {
        format!("key:{k:06}").into_bytes()
    }

    /// Chunks the engine handed out and the store did not free (this thread's magazines
    /// flushed first).
    fn live_chunks(s: &Store) -> usize {
        s.allocator().flush_thread_cache();
        s.allocator_stats().live_chunks()
    }

    /// The class (index) holding the most slabs, and how many.
    fn biggest(s: &Store) -> (usize, usize) {
        let es = s.engine().stats();
        es.classes
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.slabs))
            .max_by_key(|&(_, n)| n)
            .unwrap()
    }

    #[test]
    fn reassign_moves_or_evicts_and_accounting_stays_exact() {
        let s = store(8, true, 0);
        let n = 30_000;
        for k in 0..n {
            assert_eq!(
                s.store(StoreMode::Set, &key(k), 0, 0, &value_of(k)),
                StoreOutcome::Stored
            );
        }
        // Holes in every slab, so some items of the emptied slab find room elsewhere.
        for k in (0..n).step_by(5) {
            assert!(s.delete(&key(k)));
        }
        let before = s.stats();
        let (class, slabs) = biggest(&s);
        assert!(slabs >= 2);
        let id = (class + 1) as i32;
        assert_eq!(s.slabs_reassign(id, 0), ReassignOutcome::Ok);
        let after = s.stats();
        let rescued = after.slab_reassign_rescues;
        let evicted = after.slab_reassign_evictions_nomem;
        assert!(rescued > 0, "free chunks were there to move items into");
        assert_eq!(before.curr_items - after.curr_items, evicted);
        assert_eq!(after.evictions - before.evictions, evicted);
        assert_eq!(after.slabs_moved, before.slabs_moved + 1);
        // Every item left reads back whole; the count matches.
        let mut present = 0;
        for k in 0..n {
            let mut v = None;
            s.get(&key(k), |it| v = Some(it.value.to_vec()));
            if let Some(v) = v {
                assert_eq!(v, value_of(k), "key {k}");
                assert_ne!(k % 5, 0, "a deleted key came back");
                present += 1;
            }
        }
        assert_eq!(present, after.curr_items);
        assert_eq!(live_chunks(&s) as u64, after.curr_items);
        // The emptied slab leaves the class once the reap drains spares.
        s.maintenance();
        let es = s.engine().stats();
        assert_eq!(es.classes[class].slabs, slabs - 1);
        assert!(es.mapped_bytes <= 8 << 20);
        assert_eq!(
            after.classes[class].used_chunks as u64,
            after.classes[class].number
        );
    }

    #[test]
    fn reassign_rescues_into_fresh_memory_until_the_limit_binds() {
        // Far from the limit: every live item of the moved slab finds a chunk.
        let s = store(8, true, 0);
        for k in 0..20_000 {
            s.store(StoreMode::Set, &key(k), 0, 0, &value_of(k));
        }
        let items = s.stats().curr_items;
        let (class, slabs) = biggest(&s);
        let id = (class + 1) as i32;
        for _ in 0..slabs.min(8) - 1 {
            assert_eq!(s.slabs_reassign(id, 0), ReassignOutcome::Ok);
        }
        let st = s.stats();
        assert_eq!(st.slab_reassign_evictions_nomem, 0);
        assert!(st.slab_reassign_rescues > 0);
        assert_eq!(st.curr_items, items);
        for k in 0..20_000 {
            let mut v = None;
            s.get(&key(k), |it| v = Some(it.value.to_vec()));
            assert_eq!(v, Some(value_of(k)), "key {k}");
        }
        // At the limit (the store evicts already) a move has no fresh memory: it evicts.
        let full = store(2, true, 0);
        let mut k = 0;
        while full.stats().evictions == 0 {
            full.store(StoreMode::Set, &key(k), 0, 0, &value_of(k));
            k += 1;
        }
        full.maintenance();
        let (class, slabs) = biggest(&full);
        assert!(slabs >= 2);
        let before = full.stats();
        assert_eq!(
            full.slabs_reassign((class + 1) as i32, 0),
            ReassignOutcome::Ok
        );
        let after = full.stats();
        assert!(after.slab_reassign_evictions_nomem > 0, "{after:?}");
        assert_eq!(
            before.curr_items - after.curr_items,
            after.slab_reassign_evictions_nomem
        );
        // The slab left its class for good.
        full.maintenance();
        assert_eq!(full.engine().stats().classes[class].slabs, slabs - 1);
    }

    #[test]
    fn reassign_checks_in_memcacheds_order() {
        let s = store(8, true, 0);
        let n = s.config().classes.len() as i32;
        assert_eq!(s.slabs_reassign(3, 3), ReassignOutcome::Same);
        assert_eq!(s.slabs_reassign(-1, -1), ReassignOutcome::Same);
        // Nothing has two slabs: -1 finds no class.
        assert_eq!(s.slabs_reassign(-1, 2), ReassignOutcome::BadClass);
        assert_eq!(s.slabs_reassign(n + 1, 1), ReassignOutcome::BadClass);
        assert_eq!(s.slabs_reassign(1, -2), ReassignOutcome::BadClass);
        assert_eq!(s.slabs_reassign(n, 1), ReassignOutcome::NoSpare);
        assert_eq!(s.slabs_reassign(0, 1), ReassignOutcome::NoSpare);
        // While a move runs, another is refused.
        {
            let _busy = s.moves.planner.lock().unwrap();
            assert_eq!(s.slabs_reassign(1, 1), ReassignOutcome::Busy);
        }
        for k in 0..20_000 {
            s.store(StoreMode::Set, &key(k), 0, 0, &value_of(k));
        }
        // 8 MiB leaves room: the moved slab's items are rescued into fresh memory.
        assert_eq!(s.slabs_reassign(-1, 1), ReassignOutcome::Ok);
        assert_eq!(s.stats().evictions, 0);
        assert_eq!(s.stats().slab_reassign_evictions_nomem, 0);
        assert!(s.stats().slab_reassign_rescues > 0);
        let off = store(8, false, 1);
        assert_eq!(off.slabs_reassign(1, 2), ReassignOutcome::Disabled);
    }

    /// Fills `s` with 100-byte values until it evicts, then stores 2,000-byte values over
    /// `keys` keys (get, set if missing) for `rounds` maintenance ticks with the clock
    /// moving a second each; returns the hit ratio of the last round.
    fn calcify_then_switch(s: &Store, keys: usize, rounds: usize) -> f64 {
        let small = vec![b's'; 100];
        let mut k = 0;
        while s.stats().evictions == 0 {
            s.store(StoreMode::Set, format!("fill:{k}").as_bytes(), 0, 0, &small);
            k += 1;
        }
        let big = vec![b'L'; 2000];
        let mut ratio = 0.0;
        s.maintenance();
        for _ in 0..rounds {
            s.clock().advance(1);
            let mut hits = 0;
            for i in 0..keys {
                let key = format!("big:{i}");
                if s.get(key.as_bytes(), |_| ()) {
                    hits += 1;
                } else {
                    s.store(StoreMode::Set, key.as_bytes(), 0, 0, &big);
                }
                assert!(s.engine().stats().mapped_bytes <= s.config().memory_limit);
            }
            ratio = f64::from(hits) / keys as f64;
            s.maintenance();
        }
        ratio
    }

    /// Records the slab moves the store reports (`watch sysevents`).
    #[derive(Debug, Default)]
    struct Moves(std::sync::Mutex<Vec<(usize, usize)>>);

    impl crate::store::StoreWatcher for Moves {
        fn wants(&self, kind: crate::store::StoreEvent) -> bool {
            kind == crate::store::StoreEvent::SlabMove
        }
        fn evicted(&self, _: &crate::store::Evicted<'_>) {
            panic!("evictions not asked for");
        }
        fn slab_moved(&self, src: usize, dst: usize) {
            self.0.lock().unwrap().push((src, dst));
        }
    }

    #[test]
    fn automove_lets_a_new_size_take_the_memory() {
        // 4 MiB; 1,200 items of 2,000 bytes need ~2.6 MiB.
        let on = store(4, true, 1);
        let moves = std::sync::Arc::new(Moves::default());
        assert!(on.set_watcher(moves.clone()));
        let on_ratio = calcify_then_switch(&on, 1200, 12);
        // Each move was reported, from the small items' class to the large ones'
        // (memcached's 1-based ids).
        let moved = moves.0.lock().unwrap().clone();
        assert_eq!(moved.len() as u64, on.stats().slabs_automoved);
        let n = on.classes().len();
        assert!(moved
            .iter()
            .all(|&(src, dst)| (1..=n).contains(&src) && src != dst && dst <= n));
        assert!(moved.iter().any(|&(_, dst)| dst != 0), "{moved:?}");
        let off = store(4, true, 0);
        let off_ratio = calcify_then_switch(&off, 1200, 12);
        assert!(on_ratio > 0.9, "automove 1: {on_ratio}");
        assert!(off_ratio < 0.3, "automove 0: {off_ratio}");
        assert!(on.stats().slabs_automoved > 10);
        assert_eq!(off.stats().slabs_automoved, 0);
        // Mode 2 gets there too.
        let aggressive = store(4, true, 2);
        assert!(calcify_then_switch(&aggressive, 1200, 12) > 0.9);
        // Without reassignment the policy does nothing, whatever the mode.
        let disabled = store(4, false, 1);
        assert!(calcify_then_switch(&disabled, 1200, 4) < 0.3);
        assert_eq!(disabled.stats().slabs_automoved, 0);
    }

    #[test]
    fn young_donor_does_not_give() {
        // Class 0 stopped evicting a moment ago and its items are young: no move.
        let prev = vec![class(10, 100), class(1, 100)];
        let mut cur = prev.clone();
        cur[1].evicted = 100;
        cur[1].evicted_time = 5;
        let quiet = vec![1, 0];
        assert!(plan(1, 0.8, true, &prev, &cur, &quiet, None, 64).is_empty());
        // Once it has been quiet long enough, it gives.
        let quiet = vec![7, 0];
        assert_eq!(
            plan(1, 0.8, true, &prev, &cur, &quiet, None, 64),
            vec![Move { src: 0, dst: 1 }]
        );
    }

    #[test]
    fn without_evictions_only_free_chunks_give() {
        // `-M`: class 1 fails stores, class 0 is old and full. Nothing moves: a slab of
        // class 0 could only go by evicting its items.
        let prev = vec![class(10, 100), class(1, 100)];
        let mut cur = prev.clone();
        cur[0].age = 1000;
        cur[1].outofmemory = 5;
        let quiet = vec![1000, 1000];
        assert!(plan(1, 0.8, false, &prev, &cur, &quiet, None, 64).is_empty());
        assert!(plan(2, 0.8, false, &prev, &cur, &quiet, None, 64).is_empty());
        // With evictions on it gives.
        assert!(!plan(1, 0.8, true, &prev, &cur, &quiet, None, 64).is_empty());
        // One slab's worth of free chunks is not enough: the emptied slab's items might
        // not all fit in the others.
        cur[0].free_chunks = 150;
        assert!(plan(1, 0.8, false, &prev, &cur, &quiet, None, 64).is_empty());
        // Two slabs' worth is.
        cur[0].free_chunks = 200;
        assert_eq!(
            plan(1, 0.8, false, &prev, &cur, &quiet, None, 64),
            vec![Move { src: 0, dst: 1 }]
        );
    }

    #[test]
    fn automove_without_evictions_loses_no_item() {
        // memcached's `-M` with the automover on: memory full of one size, then stores of
        // another size fail. The failed stores must not cost a stored item.
        let mut cfg = StoreConfig::new(4 << 20);
        cfg.slab_reassign = true;
        cfg.slab_automove = 1;
        cfg.evictions = false;
        let s = Store::new(cfg).unwrap();
        let big = vec![7u8; 10_000];
        let mut n = 0;
        while s.store(StoreMode::Set, &key(n), 0, 0, &big) == StoreOutcome::Stored {
            n += 1;
        }
        assert!(n > 100, "{n}");
        s.automove_tick();
        for round in 0..4 {
            s.clock().advance(5);
            for k in 0..50 {
                let small = format!("small-{round}-{k}");
                assert_eq!(
                    s.store(StoreMode::Set, small.as_bytes(), 0, 0, &value_of(k)),
                    StoreOutcome::OutOfMemory
                );
            }
            s.automove_tick();
        }
        assert_eq!(s.stats().slabs_automoved, 0);
        for k in 0..n {
            let mut v = None;
            s.get(&key(k), |h| v = Some(h.value.to_vec()));
            assert_eq!(v.as_deref(), Some(&big[..]), "item {k} lost");
        }
    }
}
