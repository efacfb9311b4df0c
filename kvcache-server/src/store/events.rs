//! What the store tells a watcher (`watch evictions`, `watch sysevents`): each eviction,
//! with what memcached 1.6.18 logs of it, and each slab the automove policy moves.
//!
//! The watcher is installed once ([`Store::set_watcher`]) and asked first whether anyone
//! listens ([`StoreWatcher::wants`], one relaxed load in the server's event log): with
//! no watcher, or nobody watching, an eviction costs two atomic loads more (the slot and
//! the log's mask), and nothing at all is formatted or locked.

use std::sync::Arc;

use slab_core::engine::size_class::ClassId;

use super::Store;
use crate::item::{widen_access, ItemRef, FETCHED};

/// What kinds of store events a watcher may want.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// An item evicted to make room (memcached's `LOG_EVICTIONS`).
    Eviction,
    /// A system event: a slab moved by the automove policy (`LOG_SYSEVENTS`).
    SlabMove,
}

/// One evicted item, with the fields of memcached's `type=eviction` line.
#[derive(Clone, Copy, Debug)]
pub struct Evicted<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Fetched since it was stored.
    pub fetched: bool,
    /// Seconds it had left to live; -1 if it never expires (memcached's `ttl=`).
    pub ttl: i64,
    /// Seconds since its last access (`la=`).
    pub idle: u32,
    /// Its class, memcached's 1-based id (`clsid=`).
    pub clsid: usize,
    /// Its value's length (`size=`).
    pub size: usize,
}

/// Receives the store's events; the server's `watch` log implements it.
pub trait StoreWatcher: Send + Sync + std::fmt::Debug {
    /// Whether someone listens to `kind` now. Called on every eviction: keep it cheap.
    fn wants(&self, kind: StoreEvent) -> bool;
    /// An item was evicted (called under the item's index shard lock: do not call back
    /// into the store).
    fn evicted(&self, e: &Evicted<'_>);
    /// The automove policy moved a slab from class `src` to class `dst` (memcached's
    /// 1-based ids; `dst` 0: to the global pool, whoever allocates next).
    fn slab_moved(&self, src: usize, dst: usize);
}

impl Store {
    /// Installs the watcher of evictions and slab moves; false if one was already set.
    pub fn set_watcher(&self, w: Arc<dyn StoreWatcher>) -> bool {
        self.watcher.set(w).is_ok()
    }

    /// The watcher, if one is set and listens to `kind`.
    #[inline]
    fn watcher_for(&self, kind: StoreEvent) -> Option<&dyn StoreWatcher> {
        self.watcher.get().map(|w| &**w).filter(|w| w.wants(kind))
    }

    /// Reports the eviction of `it` (of `class`, at `now`) to a listening watcher.
    #[inline]
    pub(super) fn report_eviction(&self, it: &ItemRef<'_>, class: ClassId, now: u32) {
        if let Some(w) = self.watcher_for(StoreEvent::Eviction) {
            self.report_eviction_to(w, it, class, now);
        }
    }

    #[cold]
    fn report_eviction_to(&self, w: &dyn StoreWatcher, it: &ItemRef<'_>, class: ClassId, now: u32) {
        let exp = it.exptime();
        w.evicted(&Evicted {
            key: it.key(),
            fetched: it.bits() & FETCHED != 0,
            // memcached: `exptime - current_time` for an item that expires, else -1.
            ttl: if exp == 0 {
                -1
            } else {
                i64::from(exp) - i64::from(now)
            },
            idle: now.saturating_sub(widen_access(now, it.access_low())),
            clsid: class.display_id(),
            size: it.value_len(),
        });
    }

    /// Reports an automove of a slab from class index `src` to class index `dst`
    /// (`usize::MAX`: to whoever allocates next).
    pub(super) fn report_slab_move(&self, src: usize, dst: usize) {
        if let Some(w) = self.watcher_for(StoreEvent::SlabMove) {
            let dst = if dst == usize::MAX { 0 } else { dst + 1 };
            w.slab_moved(src + 1, dst);
        }
    }
}
