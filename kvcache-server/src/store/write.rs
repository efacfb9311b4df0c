//! The write path: allocating a new item's chunks and writing its header and key
//! ([`Store::prepare`]), writing its value through [`Regions`], the one iterator over an
//! item's value regions, and the two halves of a storage command
//! ([`Store::begin_store`], [`Store::finish_store`]) with what lies between them
//! ([`Store::write_pending`], [`Store::pending_rooms`]).
//!
//! A new item is allocated and filled *before* its shard is locked (allocation may
//! evict, which locks other shards); until it is linked it belongs to the thread that
//! prepared it, and every failure path frees it ([`Store::discard`]).

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::RwLockWriteGuard;

use slab_core::engine::size_class::ClassId;

use super::index::{FreeTo, Garbage, KeyHash, Lookup};
use super::stats::bump;
use super::{Shard, Store, StoreMode, StoreOutcome};
use crate::item::{
    self, key_offset, stored_size, tag_atomic, ItemRef, NewHeader, CHAINED, KEY_MAX, REF, SEGMENT,
    SEGMENT_DATA,
};

/// How many eviction rounds a store attempts before reporting out of memory.
const EVICT_TRIES: usize = 32;

/// Items evicted per round when a class is out of memory.
const EVICT_BATCH: usize = 4;

/// A new item's chunks, allocated and headed but not yet linked.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) head: u32,
    vlen: usize,
}

/// A storage command's item, allocated by [`Store::begin_store`] and not linked yet. It
/// must end in [`Store::finish_store`] or [`Store::abandon_store`]: dropping it leaks its
/// chunks.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(super) prep: Prepared,
    kh: KeyHash,
}

/// The value regions of an item from a byte offset on, in order, as `(start, length)`:
/// the inline value area after the key, or the data part of each segment (of the first
/// one, what follows the offset). Every reader and writer of values walks a chain with
/// it.
///
/// The item must be one the caller owns (prepared, not linked yet) or one whose shard
/// lock it holds, for as long as it uses the regions.
#[derive(Debug)]
pub(super) struct Regions<'s> {
    store: &'s Store,
    it: ItemRef<'s>,
    len: usize,
    off: usize,
}

impl Iterator for Regions<'_> {
    type Item = (NonNull<u8>, usize);

    #[inline]
    fn next(&mut self) -> Option<(NonNull<u8>, usize)> {
        if self.off >= self.len {
            return None;
        }
        let it = &self.it;
        let region = if it.is_chained() {
            let payload = self.store.mem.payload();
            let (i, within) = (self.off / payload, self.off % payload);
            let seg_len = (self.len - i * payload).min(payload);
            // SAFETY: segment `i` holds `seg_len` value bytes from SEGMENT_DATA, and
            // `within < seg_len`.
            let p = unsafe { self.store.ptr(it.segment(i)).add(SEGMENT_DATA + within) };
            (p, seg_len - within)
        } else {
            // SAFETY: the inline value area (`len` bytes) follows the key inside the head
            // chunk, and `off < len`.
            let p = unsafe { it.ptr().add(it.body_off() + self.off) };
            (p, self.len - self.off)
        };
        self.off += region.1;
        Some(region)
    }
}

impl Store {
    /// The value regions of the item `it` from byte `offset` on (see [`Regions`]).
    #[inline]
    pub(super) fn regions<'s>(&'s self, it: ItemRef<'s>, offset: usize) -> Regions<'s> {
        Regions {
            store: self,
            it,
            len: it.value_len(),
            off: offset,
        }
    }

    /// Allocates a chunk of `class`, evicting from the class when memory is full.
    pub(super) fn alloc_chunk(&self, class: ClassId) -> Option<NonNull<u8>> {
        for _ in 0..EVICT_TRIES {
            if let Some(p) = self.try_alloc_chunk(class) {
                return Some(p);
            }
            // A few at a time, so the next allocations come from the magazine.
            if !self.cfg.evictions || !self.make_room(class, EVICT_BATCH) {
                return None;
            }
        }
        None
    }

    /// Allocates a chunk of `class` if one is free, without evicting.
    fn try_alloc_chunk(&self, class: ClassId) -> Option<NonNull<u8>> {
        let p = self.mem.alloc.alloc_class(class).ok()?;
        self.counters.chunks_taken(class, 1);
        Some(p)
    }

    /// Allocates the chunks of a new item and writes its header and key; the value is
    /// written with [`write_value`](Self::write_value). `None` when memory cannot be had
    /// (nothing stays allocated).
    pub(super) fn prepare(
        &self,
        key: &[u8],
        flags: u32,
        exptime: u32,
        vlen: usize,
        kh: &KeyHash,
        now: u32,
    ) -> Option<Prepared> {
        let cas = self.cfg.cas_enabled;
        let size = stored_size(key.len(), vlen, flags, cas);
        let mut h = NewHeader {
            exptime,
            vlen: vlen as u32,
            klen: key.len() as u8,
            bits: 0,
            hash24: kh.h24,
            access: now,
            cas: 0,
            flags,
        };
        if size <= self.mem.max_chunk && vlen <= item::INLINE_VALUE_MAX {
            let class = self.placement.class_for(size)?;
            let p = self.alloc_chunk(class)?;
            // SAFETY: the chunk was just allocated for us (nobody else accesses it but the
            // evictor's atomic tag reads), it is 8-aligned and `size` bytes fit in it.
            unsafe { item::write_header(p, cas, &h, key) };
            return Some(Prepared {
                head: self.handle_of(p),
                vlen,
            });
        }
        let payload = self.mem.payload();
        let nseg = vlen.div_ceil(payload);
        let head_size = key_offset(cas, flags != 0) + key.len() + 4 + 4 * nseg;
        let head_class = self.placement.class_for(head_size)?;
        let mut segs = Vec::with_capacity(nseg);
        let mut left = vlen;
        let release = |segs: &Vec<u32>| {
            for &s in segs {
                let p = self.ptr(s);
                tag_atomic(p).store(0, Ordering::Release);
                // SAFETY: allocated above by this call and not published anywhere.
                unsafe { self.free_chunk(p, FreeTo::Magazine) };
            }
        };
        while left > 0 {
            let n = left.min(payload);
            // A tail segment whose class is full takes a top-class chunk rather than
            // evicting the items of its class.
            let Some(p) = self.placement.class_for(SEGMENT_DATA + n).and_then(|c| {
                if n == payload {
                    self.alloc_chunk(c)
                } else {
                    self.try_alloc_chunk(c)
                        .or_else(|| self.alloc_chunk(self.top_class()))
                }
            }) else {
                release(&segs);
                return None;
            };
            segs.push(self.handle_of(p));
            left -= n;
        }
        // The tags after the allocations, as in `free_item_to`: a store to a cold line
        // between two atomic chunk counts would hold up the second.
        for &s in &segs {
            tag_atomic(self.ptr(s)).store(SEGMENT | (kh.h24 << 8), Ordering::Release);
        }
        let Some(p) = self.alloc_chunk(head_class) else {
            release(&segs);
            return None;
        };
        h.vlen = nseg as u32;
        h.bits = CHAINED;
        // SAFETY: freshly allocated head chunk of `head_size` bytes or more.
        unsafe { item::write_header(p, cas, &h, key) };
        let body = key_offset(cas, flags != 0) + key.len();
        // SAFETY: the chain descriptor (length and `nseg` handles) fits in `head_size`.
        unsafe {
            let d = p.as_ptr().add(body);
            d.cast::<u32>().write_unaligned(vlen as u32);
            for (i, &s) in segs.iter().enumerate() {
                d.add(4 + 4 * i).cast::<u32>().write_unaligned(s);
            }
        }
        Some(Prepared {
            head: self.handle_of(p),
            vlen,
        })
    }

    /// Writes the concatenation of `pieces` (exactly the prepared length) as the value.
    pub(super) fn write_value(&self, prep: &Prepared, pieces: &[&[u8]]) {
        debug_assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), prep.vlen);
        let mut pieces = pieces.iter();
        let mut src: &[u8] = &[];
        for (dst, n) in self.regions(self.item(prep.head), 0) {
            let mut done = 0;
            while done < n {
                while src.is_empty() {
                    src = pieces.next().expect("the pieces fill the value");
                }
                let k = (n - done).min(src.len());
                // SAFETY: `dst + done .. + k` lies in a region of the prepared item, which
                // this thread owns; the source is a caller slice that cannot overlap it
                // (a different chunk, or caller memory).
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr().add(done), k) };
                done += k;
                src = &src[k..];
            }
        }
    }

    /// The second lock of a command that read an item, let the lock go to prepare its
    /// replacement `prep` (allocation may evict), and replaces it only if it is unchanged:
    /// locks `kh`'s shard and looks `key` up; if the live item passes `same`, returns the
    /// locked shard, the lookup's garbage and `prep`. Else frees `prep` and what the
    /// lookup unlinked and returns `None`: the caller starts over.
    pub(super) fn relock_unchanged(
        &self,
        key: &[u8],
        kh: &KeyHash,
        now: u32,
        prep: Prepared,
        same: impl FnOnce(u32) -> bool,
    ) -> Option<(RwLockWriteGuard<'_, Shard>, Garbage, Prepared)> {
        let mut garbage = Garbage::default();
        let mut shard = self.index.lock(kh.shard);
        match self.find_live(&mut shard, kh, key, now, &mut garbage) {
            Lookup::Hit(h) if same(h) => Some((shard, garbage, prep)),
            _ => {
                drop(shard);
                self.discard(prep);
                self.free_garbage(garbage);
                None
            }
        }
    }

    /// Frees a prepared item that was not linked.
    pub(super) fn discard(&self, prep: Prepared) {
        self.free_item(prep.head);
    }

    /// The first half of [`store_checked`](Self::store_checked) for `Set`, `Add`,
    /// `Replace` and `Cas` (for `Append`/`Prepend`, only the data's item that memcached
    /// allocates before it joins the two values): allocates the item for a value of
    /// `vlen` bytes, as memcached does when it reads a storage command's line, so that a
    /// value being received is held inside `-m`. Fails with `TooLarge` or `OutOfMemory`
    /// (a `Set` then also removes the key's old value), or `NotStored` for a bad key; the
    /// failure is counted as `store_checked` counts it.
    ///
    /// The value is then written with [`write_pending`](Self::write_pending) and the item
    /// linked by [`finish_store`](Self::finish_store) or freed by
    /// [`abandon_store`](Self::abandon_store). Until then it is in no index: no reader
    /// sees it and no eviction or slab move takes it (a slab move counts its chunks busy).
    pub(crate) fn begin_store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        vlen: usize,
    ) -> Result<Pending, StoreOutcome> {
        if key.is_empty() || key.len() > KEY_MAX {
            return Err(StoreOutcome::NotStored);
        }
        let kh = self.index.hash_key(key);
        if self.too_large(key.len(), vlen, flags) {
            if mode == StoreMode::Set {
                self.remove_quiet(key, &kh);
            }
            return Err(StoreOutcome::TooLarge);
        }
        let now = self.now();
        let exp = self.clock().realtime_at(exptime, now);
        let Some(prep) = self.prepare(key, flags, exp, vlen, &kh, now) else {
            if let Some(c) = self.placement.class_for(
                stored_size(key.len(), vlen, flags, self.cfg.cas_enabled).min(self.mem.max_chunk),
            ) {
                bump(&self.counters.class(c).outofmemory);
                bump(&self.counters.class(c).cmd_set);
            }
            if mode == StoreMode::Set {
                self.remove_quiet(key, &kh);
            }
            return Err(StoreOutcome::OutOfMemory);
        };
        Ok(Pending { prep, kh })
    }

    /// Copies `data` into a pending item's value at byte `offset` (`offset + data.len()`
    /// at most the value length given to [`begin_store`](Self::begin_store)).
    pub(crate) fn write_pending(&self, p: &Pending, offset: usize, data: &[u8]) {
        let prep = &p.prep;
        assert!(offset + data.len() <= prep.vlen, "write past the value");
        let mut src = data;
        for (dst, room) in self.regions(self.item(prep.head), offset) {
            if src.is_empty() {
                break;
            }
            let k = room.min(src.len());
            // SAFETY: `dst .. dst + k` lies inside the value area of the pending item,
            // which this thread owns until it is linked or freed; `src` is caller memory,
            // not part of any chunk of this item.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr(), k) };
            src = &src[k..];
        }
    }

    /// The unwritten part of a pending item's value from byte `offset`, as up to `max`
    /// regions in order (the inline value area, or what is left of each segment), for a
    /// caller that reads the value into place instead of copying it with
    /// [`write_pending`](Self::write_pending). Empty when `offset` is the value length.
    pub(crate) fn pending_rooms<'a>(
        &'a self,
        p: &'a mut Pending,
        offset: usize,
        max: usize,
    ) -> Vec<&'a mut [u8]> {
        let prep = &p.prep;
        assert!(offset <= prep.vlen, "offset past the value");
        self.regions(self.item(prep.head), offset)
            .take(max)
            .map(|(dst, room)| {
                // SAFETY: 1. `dst .. dst + room` lies inside the value area of the pending
                // item, and successive regions do not overlap (each starts where the last
                // ended). 2. The item's chunks belong to the holder of the `Pending`,
                // borrowed exclusively for 'a: no other reference to them exists
                // (unlinked, no reader, eviction or slab move touches them), and they stay
                // allocated until the `Pending` is consumed by `finish_store` or
                // `abandon_store`, which the borrow excludes. 3. Chunk memory is mapped
                // and initialized (zeroed by the OS or holding old bytes).
                unsafe { std::slice::from_raw_parts_mut(dst.as_ptr(), room) }
            })
            .collect()
    }

    /// The second half of [`store_checked`](Self::store_checked): checks `mode` (add,
    /// replace, cas) under the key's lock and links the pending item, whose value must
    /// be complete, or frees it. Returns the outcome and the CAS unique assigned (0
    /// unless `Stored`).
    pub(crate) fn finish_store(
        &self,
        mode: StoreMode,
        key: &[u8],
        pending: Pending,
    ) -> (StoreOutcome, u64) {
        let Pending { prep, kh } = pending;
        let now = self.now();
        let class = self.class_of(prep.head);
        let c = self.counters.class(class);
        bump(&c.cmd_set);
        let mut garbage = Garbage::default();
        let mut shard = self.index.lock(kh.shard);
        let found = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
            Lookup::Hit(h) => Some(h),
            _ => None,
        };
        let outcome = match (mode, found) {
            (StoreMode::Add, Some(h)) => {
                self.item(h).set_bits(REF);
                StoreOutcome::NotStored
            }
            (StoreMode::Replace, None) => StoreOutcome::NotStored,
            (StoreMode::Cas(_), None) => {
                bump(&self.counters.global.cas_misses);
                StoreOutcome::NotFound
            }
            (StoreMode::Cas(want), Some(h)) if self.item(h).cas() != want => {
                bump(&self.counters.class(self.class_of(h)).cas_badval);
                StoreOutcome::Exists
            }
            // A new key whose shard's table cannot grow (the heap is exhausted).
            (_, None) if !self.reserve_key(&mut shard) => StoreOutcome::OutOfMemory,
            _ => StoreOutcome::Stored,
        };
        let mut new_cas = 0;
        let keep = if outcome == StoreOutcome::Stored {
            if let (StoreMode::Cas(_), Some(h)) = (mode, found) {
                bump(&self.counters.class(self.class_of(h)).cas_hits);
            }
            new_cas = self.expiry.next_cas();
            // As memcached's link: the access time is the store's, also for a value that
            // took a while to arrive (a `flush_all` meanwhile does not hide it).
            self.item(prep.head).set_access(now);
            self.link_locked(&mut shard, &kh, prep.head, found, new_cas);
            if let Some(o) = found {
                garbage.push(o);
            }
            None
        } else {
            Some(prep)
        };
        drop(shard);
        if let Some(p) = keep {
            self.discard(p);
        }
        self.free_garbage(garbage);
        (outcome, new_cas)
    }

    /// Frees a pending item that will not be linked (a bad data chunk, a connection
    /// closed before its value arrived).
    pub(crate) fn abandon_store(&self, pending: Pending) {
        self.discard(pending.prep);
    }

    /// Removes `key`'s live item, if any, without counting a delete: what memcached does
    /// to the old value when a storage command's item cannot be allocated, so that no
    /// stale data outlives a failed update.
    pub(crate) fn remove_stale(&self, key: &[u8]) {
        if key.is_empty() || key.len() > KEY_MAX {
            return;
        }
        let kh = self.index.hash_key(key);
        self.remove_quiet(key, &kh);
    }

    /// Removes `key`'s live item, if any, without counting it (a failed `set` does).
    fn remove_quiet(&self, key: &[u8], kh: &KeyHash) {
        let mut garbage = Garbage::default();
        let mut shard = self.index.lock(kh.shard);
        if let Lookup::Hit(h) = self.find_live(&mut shard, kh, key, self.now(), &mut garbage) {
            self.unlink_locked(&mut shard, kh.th, h);
            garbage.push(h);
        }
        drop(shard);
        self.free_garbage(garbage);
    }
}
