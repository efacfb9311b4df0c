//! Walking every live item for `lru_crawler metadump`, a shard and a batch at a time, so
//! that no lock is held across the walk.
//!
//! A walk copies one shard's handles under the shard's lock (4 bytes an entry, no item
//! memory read), then visits them in small batches: for each batch it takes the walk lock
//! (shared: slabs stay mapped) and the shard lock, and reports a handle only if it still
//! names a linked item of that shard. The check reads no item memory until it passes: the
//! handle must start a chunk of a slab some class owns now (the engine's owner words),
//! that chunk's tag (the word only ever accessed atomically, as the eviction hand reads
//! it) must say `LIVE`, and the shard's index must hold the handle under the tag's hash
//! bits. An item stored after its shard was copied is not reported; one deleted before
//! its batch is not either. Each lock is held for one copy of a shard's table or one
//! batch. `loom_moves.rs` models a visit racing a replace, a delete and the chunk's reuse.

use std::sync::atomic::Ordering;

use slab_core::engine::size_class::ClassId;

use super::Store;
use crate::item::{tag_atomic, widen_access, FETCHED, LIVE};

/// Handles visited under one taking of the shard lock.
pub const DUMP_BATCH: usize = 64;

/// One live item as a dump reports it.
#[derive(Clone, Copy, Debug)]
pub struct DumpItem<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Expiration in server-clock seconds (0: never).
    pub exptime: u32,
    /// Last access in server-clock seconds.
    pub last_access: u32,
    /// CAS unique.
    pub cas: u64,
    /// Fetched since stored.
    pub fetched: bool,
    /// The class of its chunk.
    pub class: ClassId,
    /// Its size in memcached's accounting (`ITEM_ntotal`).
    pub size: usize,
}

impl Store {
    /// The memcached id of the class an item of this key and value length (no client
    /// flags) goes to; 0 if none (for `watch` lines).
    pub fn class_for_item(&self, key_len: usize, value_len: usize) -> usize {
        let size = crate::item::stored_size(key_len, value_len, 0, self.cfg.cas_enabled);
        self.placement.class_for(size).map_or(0, |c| c.display_id())
    }

    /// How many shards a walk goes through.
    pub fn dump_shards(&self) -> usize {
        self.index.len()
    }

    /// Replaces `out` with shard `shard`'s handles.
    pub fn dump_snapshot(&self, shard: usize, out: &mut Vec<u32>) {
        out.clear();
        let s = self.index.lock(shard);
        out.reserve(s.table.len());
        out.extend(s.table.iter().copied());
    }

    /// Calls `f` with each entry of `batch` (from [`dump_snapshot`](Self::dump_snapshot)
    /// of `shard`) that is still linked and neither expired nor flushed.
    pub fn dump_visit(&self, shard: usize, batch: &[u32], mut f: impl FnMut(&DumpItem<'_>)) {
        let _walk = self.mem.walk();
        let s = self.index.lock(shard);
        let now = self.now();
        let engine = self.engine();
        for &h in batch {
            let p = self.ptr(h);
            // A chunk start in a slab a class owns: mapped while the walk lock is held,
            // and its tag word is only ever accessed atomically.
            if engine.class_of(p.as_ptr()).is_none() {
                continue;
            }
            let tag = tag_atomic(p).load(Ordering::Acquire);
            if tag & LIVE == 0 || !s.holds(tag >> 8, h) {
                continue;
            }
            let it = self.item(h);
            if self.expiry.is_dead(&it, now).is_some() {
                continue;
            }
            let size = crate::item::memcached_stored_size(
                it.klen(),
                it.value_len(),
                it.flags(),
                self.cfg.cas_enabled,
            );
            f(&DumpItem {
                key: it.key(),
                exptime: it.exptime(),
                last_access: widen_access(now, it.access_low()),
                cas: it.cas(),
                fetched: it.bits() & FETCHED != 0,
                class: self.class_of(h),
                size,
            });
        }
    }
}
