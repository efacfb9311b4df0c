//! The sharded index: hashing a key to its shard and index hash, handles to chunk
//! pointers and back, looking a key up, linking and unlinking items, and freeing what was
//! unlinked once the shard lock is released.
//!
//! A key's hash is cut into the 24 bits kept in the item's tag ([`KeyHash::h24`]); the
//! shard and the index hash are derived from those bits only, so that a walk over chunks
//! (eviction, compaction, slab moves) finds an item's shard and index slot from its tag
//! alone. Shard sizes are spread over a doubling ([`shard_map`]) so the tables resize at
//! different totals.

use std::hash::BuildHasher;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use slab_core::engine::size_class::ClassId;

use super::expiry::Dead;
use super::stats::bump;
use super::{Index, Padded, Shard, Store};
use crate::item::{pack_handle, tag_atomic, tag_hash, unpack_handle, ItemRef, FETCHED, LIVE};

/// The hash of a key, split into what the store needs.
#[derive(Clone, Copy, Debug)]
pub(super) struct KeyHash {
    /// The 24 bits kept in the item's tag.
    pub(super) h24: u32,
    /// The index hash, derived from `h24` only.
    pub(super) th: u64,
    /// The shard.
    pub(super) shard: usize,
}

/// The result of [`Store::find_live`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// A live item.
    Hit(u32),
    /// No item.
    Miss,
    /// An item that had expired or was flushed; it was unlinked and its handle left in
    /// the [`Garbage`] to free after unlocking.
    Dead(Dead),
}

/// A key's shard, locked by [`Store::with_live`], with the lookup's context.
pub(super) struct Locked<'a> {
    pub(super) shard: &'a mut Shard,
    pub(super) kh: &'a KeyHash,
    /// The server clock when the lookup ran.
    pub(super) now: u32,
    pub(super) garbage: &'a mut Garbage,
}

/// Handles unlinked under a shard lock, freed after it is released.
#[derive(Debug, Default)]
pub(super) struct Garbage {
    slots: [Option<u32>; 2],
    more: Vec<u32>,
}

impl Garbage {
    pub(super) fn push(&mut self, h: u32) {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(s) => *s = Some(h),
            None => self.more.push(h),
        }
    }
}

/// Where a freed chunk goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FreeTo {
    /// This thread's magazine (the ordinary path).
    Magazine,
    /// Straight back to the engine, past every magazine, so that its slab can empty.
    Engine,
}

/// The index hash of the 24 tag bits (splitmix64's finalizer).
#[inline]
pub(super) fn table_hash(h24: u32) -> u64 {
    let mut z = u64::from(h24).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps the top 12 bits of the tag hash to shards with geometric weights: shard `i` gets
/// a share proportional to `2^(i/n)`, so shard sizes spread evenly over one doubling.
///
/// A hashbrown table doubles when it is 7/8 full, so its fill swings between 44% and 88%;
/// equal shards all swing together (at a total just past a doubling, every table is
/// under half full). With sizes spread over a doubling, the shards resize at different
/// totals and the index's average fill stays near 63% whatever the item count.
pub(super) fn shard_map(n: usize) -> Box<[u8]> {
    const SLOTS: usize = 1 << 12;
    let w: Vec<f64> = (0..n).map(|i| (i as f64 / n as f64).exp2()).collect();
    let total: f64 = w.iter().sum();
    let mut counts: Vec<usize> = w
        .iter()
        .map(|x| ((x / total * SLOTS as f64) as usize).max(1))
        .collect();
    // Hand out (or take back) the rounding remainder from the largest shards.
    let mut sum: usize = counts.iter().sum();
    let mut i = n;
    while sum != SLOTS {
        i = if i == 0 { n - 1 } else { i - 1 };
        if sum < SLOTS {
            counts[i] += 1;
            sum += 1;
        } else if counts[i] > 1 {
            counts[i] -= 1;
            sum -= 1;
        }
    }
    let mut map = Vec::with_capacity(SLOTS);
    for (shard, &c) in counts.iter().enumerate() {
        map.extend(std::iter::repeat_n(shard as u8, c));
    }
    map.into_boxed_slice()
}

impl Index {
    /// `shards` empty shards (1 to 256); handles are chunk offsets `>> handle_shift`.
    pub(super) fn new(shards: usize, handle_shift: u32) -> Self {
        Index {
            shards: (0..shards)
                .map(|_| Padded(RwLock::new(Shard::default())))
                .collect(),
            shard_map: shard_map(shards),
            hasher: hashbrown::DefaultHashBuilder::default(),
            handle_shift,
        }
    }

    /// How many shards.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Hashes a key.
    #[inline]
    pub(super) fn hash_key(&self, key: &[u8]) -> KeyHash {
        let h24 = tag_hash(self.hasher.hash_one(key));
        KeyHash {
            h24,
            th: table_hash(h24),
            shard: self.shard_of(h24),
        }
    }

    /// The shard of a key with these tag hash bits.
    #[inline]
    pub(super) fn shard_of(&self, h24: u32) -> usize {
        usize::from(self.shard_map[(h24 >> 12) as usize])
    }

    /// Locks shard `i` for writing: linking, unlinking, moving an item, or changing
    /// an item's fields other than its tag bits and access time.
    #[inline]
    pub(super) fn lock(&self, i: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[i].0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks shard `i` for reading: a lookup whose hit is only read (its value copied
    /// or sent, its tag bits and access time set atomically). Readers of one shard run
    /// together, so a large value written to a socket under this lock does not hold up
    /// other gets of the shard; writers wait for it.
    #[inline]
    pub(super) fn read(&self, i: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[i].0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the shard of an item whose tag holds these hash bits.
    #[inline]
    pub(super) fn lock_tag(&self, h24: u32) -> RwLockWriteGuard<'_, Shard> {
        self.lock(self.shard_of(h24))
    }
}

impl Shard {
    /// Whether this shard's index holds `handle`, an item whose tag has the hash bits
    /// `h24`. Reads no item memory, so a walk may ask it of any chunk whose tag says
    /// `LIVE`: only a linked item passes.
    #[inline]
    pub(super) fn holds(&self, h24: u32, handle: u32) -> bool {
        self.table.find(table_hash(h24), |&h| h == handle).is_some()
    }

    /// The index slot holding `handle` (as [`holds`](Self::holds)), to swap in the
    /// handle of a copy.
    #[inline]
    pub(super) fn slot(&mut self, h24: u32, handle: u32) -> Option<&mut u32> {
        self.table.find_mut(table_hash(h24), |&h| h == handle)
    }
}

impl Store {
    /// The chunk a handle names.
    #[inline]
    pub(super) fn ptr(&self, handle: u32) -> NonNull<u8> {
        self.mem
            .alloc
            .engine()
            .ptr_at(unpack_handle(handle, self.index.handle_shift))
    }

    /// The handle of a chunk.
    #[inline]
    pub(super) fn handle_of(&self, p: NonNull<u8>) -> u32 {
        pack_handle(
            self.mem.alloc.engine().offset_of(p.as_ptr()),
            self.index.handle_shift,
        )
    }

    /// A view of the item at `handle`.
    ///
    /// The caller must hold the lock of the shard whose index holds `handle` (or own the
    /// chunk exclusively, e.g. a prepared item not linked yet) for as long as it uses
    /// the view.
    #[inline]
    pub(super) fn item(&self, handle: u32) -> ItemRef<'_> {
        // SAFETY: handles come from our index or from `prepare`, so they name chunks of
        // this engine holding a written item head; the caller holds the shard lock (or
        // owns the chunk), which is the view's contract.
        unsafe { ItemRef::new(self.ptr(handle), self.cfg.cas_enabled) }
    }

    /// The class of the chunk an item head occupies.
    #[inline]
    pub(super) fn class_of(&self, handle: u32) -> ClassId {
        // A linked or prepared item's slab belongs to its class for as long as the item
        // holds the chunk (the class may be retired since: see `reclass`).
        let class = self
            .mem
            .alloc
            .engine()
            .slab_class_of(self.ptr(handle).as_ptr())
            .expect("items live in class chunks");
        debug_assert!(self.classes().chunk_size(class) >= self.item(handle).head_size());
        class
    }

    /// The segment chunks of an item (none for an inline item), in value order.
    #[inline]
    pub(super) fn segments<'a>(
        &'a self,
        it: &'a ItemRef<'_>,
    ) -> impl Iterator<Item = NonNull<u8>> + 'a {
        let n = if it.is_chained() { it.vlen_field() } else { 0 };
        (0..n).map(|i| self.ptr(it.segment(i)))
    }

    /// Looks a key up in a locked shard; an expired or flushed item is unlinked and its
    /// handle pushed onto `garbage`.
    pub(super) fn find_live(
        &self,
        shard: &mut Shard,
        kh: &KeyHash,
        key: &[u8],
        now: u32,
        garbage: &mut Garbage,
    ) -> Lookup {
        let Some(&h) = shard.table.find(kh.th, |&h| self.item(h).key() == key) else {
            return Lookup::Miss;
        };
        let it = self.item(h);
        match self.expiry.is_dead(&it, now) {
            None => Lookup::Hit(h),
            Some(d) => {
                let c = self.counters.class(self.class_of(h));
                bump(&c.reclaimed);
                if it.bits() & FETCHED == 0 {
                    bump(&c.expired_unfetched);
                }
                self.unlink_locked(shard, kh.th, h);
                garbage.push(h);
                Lookup::Dead(d)
            }
        }
    }

    /// Looks a key up in a shard locked for reading: the handle of its item when it is
    /// linked and neither expired nor flushed. `Lookup::Dead` leaves the dead item
    /// linked: a writer ([`find_live`](Self::find_live)) unlinks it.
    pub(super) fn find_alive(&self, shard: &Shard, kh: &KeyHash, key: &[u8], now: u32) -> Lookup {
        let Some(&h) = shard.table.find(kh.th, |&h| self.item(h).key() == key) else {
            return Lookup::Miss;
        };
        match self.expiry.is_dead(&self.item(h), now) {
            None => Lookup::Hit(h),
            Some(d) => Lookup::Dead(d),
        }
    }

    /// Removes `handle` from a locked shard and clears its `LIVE` bit; the caller frees it
    /// with [`free_item`](Self::free_item) after unlocking.
    pub(super) fn unlink_locked(&self, shard: &mut Shard, th: u64, handle: u32) {
        let e = shard
            .table
            .find_entry(th, |&h| h == handle)
            .expect("unlink of a linked item");
        e.remove();
        self.retire(handle);
    }

    /// What unlinking does besides leaving the table: clears `LIVE`, counts the item out.
    fn retire(&self, handle: u32) {
        let it = self.item(handle);
        it.clear_bits(LIVE);
        self.counters
            .unlinked(self.class_of(handle), it.stored_size());
    }

    /// Makes room in a locked shard's table for one more key, without aborting when the
    /// heap is exhausted (`RLIMIT_AS`, a cgroup): false if the table could not grow, and
    /// the store then fails for memory. Call it before [`link_locked`](Self::link_locked)
    /// of a key that is not in the table yet.
    pub(super) fn reserve_key(&self, shard: &mut Shard) -> bool {
        shard
            .table
            .try_reserve(1, |&h| table_hash(self.item(h).tag() >> 8))
            .is_ok()
    }

    /// Links a prepared item into a locked shard, in place of `old` if given (which is
    /// then unlinked; the caller frees it after unlocking). Sets the CAS unique to `cas`.
    /// A replacement takes `old`'s table slot (same key, same hash), so it never grows the
    /// table; a new key needs the room [`reserve_key`](Self::reserve_key) made.
    pub(super) fn link_locked(
        &self,
        shard: &mut Shard,
        kh: &KeyHash,
        new: u32,
        old: Option<u32>,
        cas: u64,
    ) {
        let it = self.item(new);
        it.set_cas(cas);
        it.set_bits(LIVE);
        self.counters.linked(self.class_of(new), it.stored_size());
        bump(&self.counters.global.total_items);
        match old {
            Some(o) => {
                let slot = shard
                    .table
                    .find_mut(kh.th, |&h| h == o)
                    .expect("replace of a linked item");
                *slot = new;
                self.retire(o);
            }
            None => {
                shard
                    .table
                    .insert_unique(kh.th, new, |&h| table_hash(self.item(h).tag() >> 8));
            }
        }
    }

    /// Looks `key` up under its shard's lock and runs `f` there with the live item's handle
    /// (`None` on a miss). What the lookup (for an expired item) or `f` leaves in
    /// [`Locked::garbage`] is freed once the lock is released.
    pub(super) fn with_live<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Locked<'_>, Option<u32>) -> R,
    ) -> R {
        let kh = self.index.hash_key(key);
        let now = self.now();
        let mut garbage = Garbage::default();
        let mut shard = self.index.lock(kh.shard);
        let found = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
            Lookup::Hit(h) => Some(h),
            _ => None,
        };
        let mut locked = Locked {
            shard: &mut shard,
            kh: &kh,
            now,
            garbage: &mut garbage,
        };
        let r = f(&mut locked, found);
        drop(shard);
        self.free_garbage(garbage);
        r
    }

    /// Unlinks the live item `h` found by [`with_live`](Self::with_live); it is freed after
    /// the lock is released.
    pub(super) fn unlink_in(&self, l: &mut Locked<'_>, h: u32) {
        self.unlink_locked(l.shard, l.kh.th, h);
        l.garbage.push(h);
    }

    /// Frees what a locked operation unlinked (call it after the lock is released).
    pub(super) fn free_garbage(&self, g: Garbage) {
        for h in g.slots.into_iter().flatten().chain(g.more) {
            self.free_item(h);
        }
    }

    /// Frees an unlinked item's chunks into this thread's magazines.
    #[inline]
    pub(super) fn free_item(&self, handle: u32) {
        self.free_item_to(handle, FreeTo::Magazine);
    }

    /// Frees an unlinked item's chunks, segments first, then the head.
    #[inline]
    pub(super) fn free_item_to(&self, handle: u32, to: FreeTo) {
        let it = self.item(handle);
        debug_assert_eq!(it.bits() & LIVE, 0);
        // The tags first, then the chunks: a segment's tag is a store to a line not in
        // the cache, and the atomic chunk count after it would wait for that store to
        // finish, once per segment; stored together they overlap. The count drops once
        // per run of segments of one class (all but the tail are of the top class).
        for seg in self.segments(&it) {
            tag_atomic(seg).store(0, Ordering::Release);
        }
        let engine = self.mem.alloc.engine();
        let mut run: Option<(ClassId, u64)> = None;
        for p in self.segments(&it).chain([it.ptr()]) {
            let class = engine.class_of(p.as_ptr()).expect("a chunk of the engine");
            run = match run {
                Some((c, n)) if c == class => Some((c, n + 1)),
                other => {
                    if let Some((c, n)) = other {
                        self.counters.chunks_freed(c, n);
                    }
                    Some((class, 1))
                }
            };
            // SAFETY: the segments and the head belong to this unlinked item, which
            // nobody else can reach any more (it left the index under the shard lock),
            // and each is freed exactly once, here; `class` is the chunk's class.
            unsafe { self.release_chunk(p, class, to) };
        }
        if let Some((c, n)) = run {
            self.counters.chunks_freed(c, n);
        }
    }

    /// Gives a chunk back, to this thread's magazine or straight to the engine.
    ///
    /// # Safety
    /// `p` must be a chunk this store allocated and nobody uses any more; it is freed once.
    #[inline]
    pub(super) unsafe fn free_chunk(&self, p: NonNull<u8>, to: FreeTo) {
        let engine = self.mem.alloc.engine();
        let class = engine.class_of(p.as_ptr()).expect("a chunk of the engine");
        self.counters.chunks_freed(class, 1);
        // SAFETY: forwarded from the caller; `class` is the chunk's class.
        unsafe { self.release_chunk(p, class, to) };
    }

    /// Gives a chunk of `class` back without counting it (the caller does).
    ///
    /// # Safety
    /// As for [`free_chunk`](Self::free_chunk), and `class` is the chunk's class.
    #[inline]
    unsafe fn release_chunk(&self, p: NonNull<u8>, class: ClassId, to: FreeTo) {
        match to {
            // SAFETY: forwarded from the caller.
            FreeTo::Magazine => unsafe { self.mem.alloc.dealloc_class(p, class) },
            // SAFETY: as above.
            FreeTo::Engine => unsafe { self.mem.alloc.engine().free_batch(class, &[p]) },
        }
    }

    /// Moves the linked item at `p` into the free chunk `dest`: copies its first `n`
    /// bytes (the tag word last, atomically: a walk may read either tag at any time),
    /// points the index `slot` at the copy and clears `LIVE` on the old chunk, which the
    /// caller then frees. CAS, flags, exptime, the access time and the tag bits travel
    /// with the bytes; a reader, holding the same shard lock, sees one copy or the other.
    ///
    /// # Safety
    /// 1. `p` and `dest` are distinct chunks of at least `n` bytes in mapped slabs (the
    ///    caller holds the walk lock);
    /// 2. `slot` is the index slot of the item at `p`, borrowed from its locked shard, so
    ///    the item's bytes are stable, and `dest` is reachable by nobody but the caller.
    pub(super) unsafe fn relocate(
        &self,
        slot: &mut u32,
        p: NonNull<u8>,
        dest: NonNull<u8>,
        n: usize,
    ) {
        // SAFETY: 1. and 2. from the caller; the tag word (bytes 8..12) is skipped here
        // and written atomically below.
        unsafe {
            std::ptr::copy_nonoverlapping(p.as_ptr(), dest.as_ptr(), 8);
            std::ptr::copy_nonoverlapping(p.as_ptr().add(12), dest.as_ptr().add(12), n - 12);
        }
        tag_atomic(dest).store(tag_atomic(p).load(Ordering::Acquire), Ordering::Release);
        *slot = self.handle_of(dest);
        tag_atomic(p).fetch_and(!LIVE, Ordering::AcqRel);
    }
}
