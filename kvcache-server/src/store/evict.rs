//! CLOCK eviction per size class.
//!
//! Each class has a hand: a position over the chunks of the class's slabs (as listed by
//! `SlabEngine::for_each_slab`). To free a chunk of class `c` the hand advances: chunks
//! whose tag is not `LIVE` are skipped, a set `REF` bit is cleared (second chance), and
//! the first live item without it is evicted.
//!
//! # Chained values: hits per byte
//!
//! A value larger than the largest chunk is a chain (see [`crate::item`]): a head in a
//! small class, segments in the top class, a tail segment in a class of its size. Age
//! alone is a poor guide across such sizes: with every key equally likely, a 1 MB value
//! is worth as many hits as a 100-byte one and holds the memory of ten thousand. So, in
//! the manner of GreedyDual-Size, while the top class holds segments:
//!
//! * segments come from evicting a chained value, largest first: the hands of the classes
//!   with the largest heads go first (a head lists its segments, so it grows with the
//!   value), chained items only, CLOCK's second chance within a class;
//! * any other class that runs out takes a slab first ([`Store::make_room`]): the slab
//!   whose emptying loses the fewest items, typically one or two segments of a large
//!   value, rather than evicting its own items;
//! * a tail segment whose class is full takes a top-class chunk rather than evicting the
//!   items of that class.
//!
//! Without chained values none of this runs (two atomic loads per failed allocation):
//! small-value loads evict by CLOCK in their class as before.
//!
//! Measured (`benches/server/scenarios/large.py mixed --keys 200`, `-m 64 -t 2`, sizes
//! uniform over 1 B-1 MB): after loading the 200 keys the store holds 153 items (61.5 MB
//! of values), against 79 by age (62.4 MB) and memcached's 116 (49.5 MB); gets hit 72-76%
//! of the time against 39-40% by age. Requests per second fall instead (0.70x at 4
//! clients, 0.75x at 32 against the eviction by age, `--memcached` given the older binary,
//! median of 3): that load's Python clients are the bottleneck, and a miss counts as two
//! requests (the get and its set) for the one value it moves. The server's CPU per MB is
//! unchanged (0.99x, 1.00x).
//!
//! The walk holds no shard lock. It reads only the tag word of each chunk, atomically
//! (every access to that word is atomic, see [`crate::item`]); the slabs stay mapped
//! because the walk holds the store's walk lock shared and only a release to the OS takes
//! it exclusively. A candidate is confirmed under its shard's lock by finding *its handle*
//! in the index (the shard and index hash come from the tag's hash bits); that check reads
//! no item memory, and once it passes the item is protected by the lock like any other.
//! A stale or racing tag can therefore cost a lock round trip but never a wrong eviction.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use slab_core::engine::size_class::ClassId;

use super::automove::Emptied;
use super::index::{table_hash, FreeTo};
use super::stats::{bump, get};
use super::{Hands, Shard, Store};
use crate::item::{tag_atomic, widen_access, ItemRef, CHAINED, FETCHED, LIVE, REF, SEGMENT};

impl Hands {
    /// The CLOCK hand of `class`.
    #[inline]
    fn hand(&self, class: ClassId) -> &AtomicU64 {
        &self.hands[class.index()]
    }

    /// A new start for a rotating pick of slabs or classes.
    #[inline]
    fn rotate(&self) -> u64 {
        self.rebalance.fetch_add(1, Ordering::Relaxed)
    }
}

impl Store {
    /// Makes room for one more chunk of `class` when an allocation of it failed: returns
    /// false if nothing could be freed (the store is then out of memory).
    ///
    /// While the top class holds segments of chained values, a class other than the top
    /// first takes a slab from another class ([`rebalance`](Self::rebalance), which empties
    /// the slab whose emptying loses the fewest items: typically one holding a segment or
    /// two of a large chained value) instead of evicting its own items: with every key
    /// equally likely, a slab of small items is worth many more hits than the piece of a
    /// large value it replaces. Without chained values (small-value loads) this is the
    /// CLOCK eviction of the class, as before, and a rebalance only when the class has
    /// nothing to evict.
    pub(super) fn make_room(&self, class: ClassId, want: usize) -> bool {
        let top = self.top_class();
        if class != top && self.counters.holds_segments(top) && self.rebalance(class) {
            return true;
        }
        self.evict(class, want) > 0 || self.rebalance(class)
    }

    /// Evicts up to `want` items whose head is in `class` (or, for the class segments
    /// come from, chained items from any class). Expired items found on the way are
    /// reclaimed instead. Returns how many items were removed.
    ///
    /// The top class frees segments by evicting one chained item, largest first: the hand
    /// of the class with the largest heads goes first (a head lists its segments, so its
    /// size grows with the value) and only chained items are candidates; only when no
    /// chained item can go does the top class evict its own inline items. That walk runs
    /// only while the top class holds segments.
    pub(super) fn evict(&self, class: ClassId, want: usize) -> usize {
        let _walk = self.mem.walk();
        // A class with no linked item heads has nothing for its hand to find: skip the
        // walk (two turns over every chunk). The top class often holds only segments of
        // chained values, and walking it for each segment allocated cost more than
        // receiving the value.
        let has_heads = |c: ClassId| self.counters.has_heads(c);
        if class == self.top_class() && self.counters.holds_segments(class) {
            // Segments are never linked themselves: free some by evicting a chained item.
            for c in (0..self.engine().classes_in_use()).rev() {
                let c = ClassId(c as u16);
                if !has_heads(c) {
                    continue;
                }
                let done = self.clock_sweep(c, true, 1);
                if done > 0 {
                    return done;
                }
            }
        }
        if has_heads(class) {
            self.clock_sweep(class, false, want)
        } else {
            0
        }
    }

    /// Advances `class`'s hand until `want` items are evicted, for at most two turns;
    /// with `chained_only`, only chained items are candidates.
    fn clock_sweep(&self, class: ClassId, chained_only: bool, want: usize) -> usize {
        let mut slabs: Vec<(NonNull<u8>, usize)> = Vec::new();
        self.engine()
            .for_each_slab(class, |base, carved| slabs.push((base, carved)));
        if slabs.is_empty() {
            return 0;
        }
        let cs = self.classes().chunk_size(class);
        let cps = self.classes().chunks_per_slab(class);
        let total = (slabs.len() * cps) as u64;
        let hand = self.hands.hand(class);
        let mut pos = hand.load(Ordering::Relaxed) % total;
        let mut done = 0;
        for _ in 0..2 * total {
            let (si, ci) = ((pos / cps as u64) as usize, (pos % cps as u64) as usize);
            pos = (pos + 1) % total;
            let (base, carved) = slabs[si];
            if ci >= carved {
                continue;
            }
            // The chunk start lies inside the slab: `ci < carved <= cps`.
            let p = NonNull::new(base.as_ptr().wrapping_add(ci * cs)).expect("inside a slab");
            let tag = tag_atomic(p).load(Ordering::Acquire);
            if tag & LIVE == 0 || (chained_only && tag & CHAINED == 0) {
                continue;
            }
            if tag & REF != 0 {
                tag_atomic(p).fetch_and(!REF, Ordering::AcqRel);
                continue;
            }
            if self.try_evict(p, tag) {
                done += 1;
                if done == want {
                    break;
                }
            }
        }
        hand.store(pos, Ordering::Relaxed);
        done
    }

    /// Frees a slab for `class` when it has nothing of its own to evict (memcached's slab
    /// reassignment, done on demand) and puts it in the engine's pool, where the
    /// allocation that ran out takes it. Returns false if no slab could be freed.
    ///
    /// First choice, costing nothing: the empty spare slab another class keeps. Failing
    /// that, a slab of another class that can really become empty: every chunk the engine
    /// counts as handed out is either a linked item's head (that item is evicted) or a
    /// segment of a linked chained item (the whole item is evicted). A slab with a chunk
    /// cached in some thread's magazine, or held by a store being written, would stay in
    /// use, so it is passed over (a magazine's chunk may still carry the tag of what the
    /// slab held before, so each candidate is checked against the index first). Of the
    /// slabs looked at (largest chunks first, at most [`REBALANCE_SCAN`] chunks read), the
    /// one whose eviction removes the fewest items wins (of those, the one freeing the most
    /// bytes): a slab of segments costs one or two large values, a slab of small items
    /// dozens. Its chunks go straight back to
    /// the engine, past every magazine, so the slab empties at once; if it becomes its
    /// class's spare, the spare goes to the pool.
    pub(super) fn rebalance(&self, class: ClassId) -> bool {
        let _walk = self.mem.walk();
        // An empty slab kept as a class's spare costs nothing to take.
        let n = self.engine().classes_in_use();
        let start = self.hands.rotate() as usize;
        for i in 0..n {
            let c = ClassId(((start + i) % n) as u16);
            if c != class && self.engine().release_spare(c) {
                bump(&self.counters.global.slabs_moved);
                return true;
            }
        }
        let victims = self.rebalance_victims(class);
        for v in victims {
            if self.all_held_by_items(&v) && self.empty_for_rebalance(&v) {
                self.engine().release_spare(v.class);
                bump(&self.counters.global.slabs_moved);
                return true;
            }
        }
        false
    }

    /// The slabs [`rebalance`](Self::rebalance) may empty, cheapest first: see there.
    fn rebalance_victims(&self, class: ClassId) -> Vec<RebalanceVictim> {
        let n = self.engine().classes_in_use();
        // Chained items cost their whole value; a typical one spans several segments.
        let chain_cost = CHAIN_COST_SEGMENTS * self.mem.max_chunk;
        let mut budget = REBALANCE_SCAN;
        let mut best: Vec<RebalanceVictim> = Vec::with_capacity(REBALANCE_PICKS + 1);
        let mut slabs: Vec<(NonNull<u8>, usize, usize)> = Vec::new();
        'classes: for c in (0..n).rev().map(|c| ClassId(c as u16)) {
            if c == class {
                continue;
            }
            slabs.clear();
            self.engine()
                .for_each_slab_usage(c, |base, carved, used| slabs.push((base, carved, used)));
            let cs = self.classes().chunk_size(c);
            for &(base, carved, used) in &slabs {
                if budget < carved {
                    break 'classes;
                }
                budget -= carved;
                let (mut held, mut items, mut bytes) = (0, 0, 0);
                // The tag of the last segment seen: a chained value's segments are
                // allocated one after the other, so neighbours often belong to one item.
                let mut last_segment = 0;
                for ci in 0..carved {
                    let p = NonNull::new(base.as_ptr().wrapping_add(ci * cs)).expect("in a slab");
                    let tag = tag_atomic(p).load(Ordering::Acquire);
                    if tag & LIVE != 0 {
                        held += 1;
                        items += 1;
                        bytes += if tag & CHAINED != 0 { chain_cost } else { cs };
                    } else if tag & SEGMENT != 0 {
                        held += 1;
                        if tag != last_segment {
                            items += 1;
                            bytes += chain_cost;
                        }
                        last_segment = tag;
                    }
                }
                // Fewest items lost first (every key counts as much as any other); of
                // slabs losing as many, the one whose items free the most memory (a large
                // value's other segments) rather than a lone small item.
                let cost = (items << 40) | ((1 << 40) - 1 - bytes.min((1 << 40) - 1));
                // Chunks in magazines or being written keep the slab in use.
                if held < used
                    || (best.len() == REBALANCE_PICKS
                        && best.last().is_some_and(|b| b.cost <= cost))
                {
                    continue;
                }
                let at = best.partition_point(|b| b.cost <= cost);
                best.insert(
                    at,
                    RebalanceVictim {
                        class: c,
                        base,
                        carved,
                        used,
                        cost,
                    },
                );
                best.truncate(REBALANCE_PICKS);
            }
        }
        best
    }

    /// Whether every chunk of the victim slab the engine counts as handed out belongs to a
    /// linked item (checked under each item's shard lock). A chunk handed to a magazine
    /// was never written since the slab joined its class, so its tag word can be stale data
    /// that looks like a head or a segment; this check tells them apart.
    fn all_held_by_items(&self, v: &RebalanceVictim) -> bool {
        let cs = self.classes().chunk_size(v.class);
        let mut linked = 0;
        for ci in 0..v.carved {
            let p = NonNull::new(v.base.as_ptr().wrapping_add(ci * cs)).expect("in a slab");
            let tag = tag_atomic(p).load(Ordering::Acquire);
            let segment = tag & SEGMENT != 0;
            if tag & LIVE == 0 && !segment {
                continue;
            }
            let h24 = tag >> 8;
            let shard = self.index.lock_tag(h24);
            if self.holder(&shard, p, tag).is_none() {
                return false;
            }
            linked += 1;
        }
        linked >= v.used
    }

    /// Evicts every item with a chunk in the victim slab, freeing their chunks straight
    /// to the engine. Returns whether every chunk held went back.
    fn empty_for_rebalance(&self, v: &RebalanceVictim) -> bool {
        let cs = self.classes().chunk_size(v.class);
        let mut all = true;
        for ci in 0..v.carved {
            let p = NonNull::new(v.base.as_ptr().wrapping_add(ci * cs)).expect("in a slab");
            let tag = tag_atomic(p).load(Ordering::Acquire);
            if tag & (LIVE | SEGMENT) != 0 && !self.evict_to_engine(p, tag) {
                all = false;
            }
        }
        all
    }

    /// The linked item of the locked `shard` whose head is the chunk at `p` (tag `tag`)
    /// or, for a segment tag, one of whose segments is.
    fn holder(&self, shard: &Shard, p: NonNull<u8>, tag: u32) -> Option<u32> {
        let th = table_hash(tag >> 8);
        let chunk = self.handle_of(p);
        if tag & SEGMENT != 0 {
            shard
                .table
                .find(th, |&h| {
                    // `h` is linked in this shard, whose lock the caller holds: its head is
                    // readable.
                    let it = self.item(h);
                    it.is_chained() && (0..it.vlen_field()).any(|i| it.segment(i) == chunk)
                })
                .copied()
        } else {
            shard.table.find(th, |&h| h == chunk).copied()
        }
    }

    /// Evicts, under its shard lock, the linked item whose head is the chunk at `p` (or,
    /// for a segment tag, the linked chained item one of whose segments is at `p`),
    /// freeing its chunks straight to the engine. False if there is no such item (any
    /// more).
    fn evict_to_engine(&self, p: NonNull<u8>, tag: u32) -> bool {
        let h24 = tag >> 8;
        let th = table_hash(h24);
        let mut shard = self.index.lock_tag(h24);
        let Some(handle) = self.holder(&shard, p, tag) else {
            return false;
        };
        // Now `handle` is linked in this shard, and we hold its lock.
        let it = self.item(handle);
        let now = self.now();
        let class = self.class_of(handle);
        self.count_removal(&it, class, self.expiry.is_dead(&it, now).is_some(), now);
        self.unlink_locked(&mut shard, th, handle);
        drop(shard);
        self.free_item_to(handle, FreeTo::Engine);
        true
    }

    /// Confirms under the shard lock that `p` is a linked item and evicts it.
    fn try_evict(&self, p: NonNull<u8>, tag: u32) -> bool {
        let h24 = tag >> 8;
        let th = table_hash(h24);
        let handle = self.handle_of(p);
        let mut shard = self.index.lock_tag(h24);
        if !shard.holds(h24, handle) {
            return false;
        }
        // Now `handle` is linked in this shard, and we hold its lock.
        let it = self.item(handle);
        if it.bits() & REF != 0 {
            it.clear_bits(REF);
            return false;
        }
        let now = self.now();
        let class = self.class_of(handle);
        self.count_removal(&it, class, self.expiry.is_dead(&it, now).is_some(), now);
        self.unlink_locked(&mut shard, th, handle);
        drop(shard);
        self.free_item(handle);
        true
    }
}

/// Slabs [`Store::rebalance`] considers emptying before it gives up.
const REBALANCE_PICKS: usize = 16;

/// Chunks [`Store::rebalance`] reads at most to pick a slab.
const REBALANCE_SCAN: usize = 1 << 16;

/// What [`Store::rebalance`] counts a chained item's eviction as: this many largest
/// chunks.
const CHAIN_COST_SEGMENTS: usize = 8;

/// A slab [`Store::rebalance`] can empty.
#[derive(Clone, Copy)]
struct RebalanceVictim {
    class: ClassId,
    base: NonNull<u8>,
    carved: usize,
    /// Chunks the engine counted as handed out when it was picked.
    used: usize,
    /// Items its eviction removes (high bits), then the bytes it frees (estimated for
    /// chained items) subtracted from the low bits' maximum: lower is cheaper.
    cost: usize,
}

/// Slabs of a class looked at to pick the one a move empties.
const VICTIM_CANDIDATES: usize = 8;

impl Store {
    /// Empties one slab of `class` for a slab move (`slabs reassign`, automove): of a few
    /// slabs from a rotating start, the one with the fewest live items. Live items move to
    /// other chunks of the class: into fresh memory of the class (a new slab) while `-m`
    /// leaves room for one beyond the `reserved` slabs earlier moves freed for their
    /// receivers (see [`Store::room_for_rescue`]), else only into free chunks of its other
    /// slabs that hold items; the rest are evicted (expired ones reclaimed). The chunks go
    /// straight back to the engine, so the slab returns to the pool as soon as chunks of it
    /// cached in magazines come back too. `None` if the class holds fewer than two slabs, or
    /// none with live items.
    pub(super) fn empty_one_slab(&self, class: ClassId, reserved: usize) -> Option<Emptied> {
        let _walk = self.mem.walk();
        let mut slabs: Vec<(NonNull<u8>, usize)> = Vec::new();
        self.engine()
            .for_each_slab(class, |base, carved| slabs.push((base, carved)));
        if slabs.len() < 2 {
            return None;
        }
        let cs = self.classes().chunk_size(class);
        let cps = self.classes().chunks_per_slab(class);
        let live_in = |&(base, carved): &(NonNull<u8>, usize)| {
            (0..carved)
                .filter(|&ci| {
                    let p = NonNull::new(base.as_ptr().wrapping_add(ci * cs)).expect("in a slab");
                    tag_atomic(p).load(Ordering::Acquire) & LIVE != 0
                })
                .count()
        };
        // Slabs without live items are emptied already (an empty spare, or a slab whose
        // last free chunks are still cached in magazines): moving them frees nothing.
        let start = self.hands.rotate() as usize;
        let mut looked = 0;
        let mut best: Option<((NonNull<u8>, usize), usize)> = None;
        for i in 0..slabs.len() {
            let s = slabs[(start + i) % slabs.len()];
            let live = live_in(&s);
            if live == 0 {
                continue;
            }
            if best.is_none_or(|(_, l)| live < l) {
                best = Some((s, live));
            }
            looked += 1;
            if looked == VICTIM_CANDIDATES {
                break;
            }
        }
        let (victim, live) = best?;
        let (base, carved) = victim;
        let slab = self.classes().slab_size();
        let slab_of = |p: NonNull<u8>| p.as_ptr() as usize & !(slab - 1);
        // While the limit has room, any chunk of the class outside the victim will do,
        // fresh memory included. Otherwise items may move only into slabs holding live
        // items (not the victim, not a slab emptied by an earlier move whose chunks are
        // still on their way back, not an empty spare or a slab taken from the pool
        // meanwhile): anything else frees nothing. That scan runs only when the store's
        // counts say there is room.
        let fresh = self.room_for_rescue(class, reserved);
        let mut targets: Vec<usize> = Vec::new();
        let mut room = 0;
        if fresh {
            room = usize::MAX;
        } else {
            let held = get(&self.counters.gauge(class).chunks) as usize;
            let free_outside = (slabs.len() * cps)
                .saturating_sub(held)
                .saturating_sub(cps - live);
            if free_outside > 0 {
                for s in slabs.iter().filter(|&&(b, c)| c > 0 && b != base) {
                    let l = live_in(s);
                    if l > 0 {
                        targets.push(s.0.as_ptr() as usize);
                        room += cps - l;
                    }
                }
            }
            targets.sort_unstable();
        }
        let mut stash: Vec<NonNull<u8>> = Vec::new();
        let mut e = Emptied::default();
        for ci in 0..carved {
            let p = NonNull::new(base.as_ptr().wrapping_add(ci * cs)).expect("inside a slab");
            let tag = tag_atomic(p).load(Ordering::Acquire);
            if tag & LIVE == 0 {
                continue;
            }
            let mut dest = None;
            while room > 0 && stash.len() <= cps {
                let Ok(q) = self.mem.alloc.alloc_class(class) else {
                    room = 0;
                    break;
                };
                self.counters
                    .gauge(class)
                    .chunks
                    .fetch_add(1, Ordering::Relaxed);
                let b = slab_of(q);
                if b == base.as_ptr() as usize {
                    // A chunk of the victim itself: keep it out of use.
                    stash.push(q);
                    continue;
                }
                if !fresh && targets.binary_search(&b).is_err() {
                    // A chunk of a fresh slab with the limit binding: stop moving items.
                    stash.push(q);
                    room = 0;
                    break;
                }
                room -= 1;
                dest = Some(q);
                break;
            }
            match self.vacate(p, tag, dest) {
                Vacated::Moved => e.rescued += 1,
                Vacated::Evicted => e.evicted += 1,
                Vacated::Reclaimed => e.reclaimed += 1,
                Vacated::Gone => e.busy += 1,
            }
        }
        for q in stash {
            // SAFETY: allocated above and never published.
            unsafe { self.free_chunk(q, FreeTo::Engine) };
        }
        self.mem.alloc.flush_thread_cache();
        Some(e)
    }

    /// Whether a slab move may rescue the items of `class`'s victim into fresh memory: the
    /// slabs an allocation of the class can still get (its empty spare, the pool's empty
    /// slabs, unmapped room under `-m`) outnumber the `reserved` ones that earlier moves
    /// freed for their receivers. When it says no, the limit binds: the victim's items
    /// find room only in free chunks of the class, and the rest are evicted.
    fn room_for_rescue(&self, class: ClassId, reserved: usize) -> bool {
        let es = self.engine().stats();
        let Some(limit) = es.limit else {
            return true;
        };
        let unmapped = limit.saturating_sub(es.mapped_bytes) / es.slab_size;
        let spare = es.classes.get(class.index()).map_or(0, |c| c.empty_slabs);
        unmapped + es.pooled_slabs + spare > reserved
    }

    /// Takes the item whose head is the chunk at `p` (with tag `tag`) out of its chunk:
    /// into `dest` (a free chunk of the same class) if given and the item is alive, else
    /// evicted. `dest`, when not used, is freed.
    fn vacate(&self, p: NonNull<u8>, tag: u32, dest: Option<NonNull<u8>>) -> Vacated {
        let h24 = tag >> 8;
        let th = table_hash(h24);
        let handle = self.handle_of(p);
        let free_dest = |d: Option<NonNull<u8>>| {
            if let Some(d) = d {
                tag_atomic(d).store(0, Ordering::Release);
                // SAFETY: allocated by the caller for this item and never published.
                unsafe { self.free_chunk(d, FreeTo::Engine) };
            }
        };
        let mut shard = self.index.lock_tag(h24);
        if !shard.holds(h24, handle) {
            drop(shard);
            free_dest(dest);
            return Vacated::Gone;
        }
        // `handle` is linked in this shard and we hold its lock.
        let it = self.item(handle);
        let now = self.now();
        let class = self.class_of(handle);
        let dead = self.expiry.is_dead(&it, now).is_some();
        if let (Some(d), false) = (dest, dead) {
            let slot = shard.slot(h24, handle).expect("found above");
            // SAFETY: `d` is a free chunk of the same class (at least the head's bytes)
            // that only this thread uses; `p` is the linked item, whose shard lock we
            // hold and whose slot this is; the walk lock keeps both mapped.
            unsafe { self.relocate(slot, p, d, it.head_size()) };
            drop(shard);
            // The chain's segments (if any) now belong to the copy: free the head only.
            tag_atomic(p).store(0, Ordering::Release);
            // SAFETY: the old head left the index under the lock; nobody reaches it.
            unsafe { self.free_chunk(p, FreeTo::Engine) };
            return Vacated::Moved;
        }
        self.count_removal(&it, class, dead, now);
        let out = if dead {
            Vacated::Reclaimed
        } else {
            Vacated::Evicted
        };
        self.unlink_locked(&mut shard, th, handle);
        drop(shard);
        free_dest(dest);
        let it = self.item(handle);
        if it.is_chained() {
            // Segments are other classes' chunks: the ordinary path.
            self.free_item(handle);
        } else {
            // SAFETY: unlinked above under the lock; nobody else reaches it.
            unsafe { self.free_chunk(p, FreeTo::Engine) };
        }
        out
    }

    /// Counts the removal of a linked item of `class` that is not being replaced: a
    /// reclaim if it is `dead` (expired or flushed), else an eviction with its idle time.
    fn count_removal(&self, it: &ItemRef<'_>, class: ClassId, dead: bool, now: u32) {
        let c = self.counters.class(class);
        let fetched = it.bits() & FETCHED != 0;
        if dead {
            bump(&c.reclaimed);
            if !fetched {
                bump(&c.expired_unfetched);
            }
        } else {
            bump(&c.evicted);
            if it.exptime() != 0 {
                bump(&c.evicted_nonzero);
            }
            if !fetched {
                bump(&c.evicted_unfetched);
            }
            let idle = now.saturating_sub(widen_access(now, it.access_low()));
            self.counters
                .gauge(class)
                .evicted_time
                .store(idle, Ordering::Relaxed);
            self.report_eviction(it, class, now);
        }
    }
}

/// What [`Store::vacate`] did.
enum Vacated {
    Moved,
    Evicted,
    Reclaimed,
    /// Not linked any more (replaced or deleted meanwhile).
    Gone,
}
