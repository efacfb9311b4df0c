//! Conditional operations beyond the classic commands: a get that may change the
//! expiration, create the item on a miss and hand out a recache token (a *win*) when the
//! item is stale or about to expire; a delete that compares the CAS unique or marks the
//! item stale instead; a CAS store that an older unique may still replace (marking the
//! value stale); and peeks that read an item without touching it. The meta protocol is
//! built on them.
//!
//! Each runs under the key's shard lock like the classic operations; allocation (which
//! may evict and so lock other shards) happens with no lock held.

use super::index::{Garbage, Lookup};
use super::read::ItemView;
use super::stats::bump;
use super::write::Prepared;
use super::{Store, StoreMode, StoreOutcome};
use crate::item::{widen_access, FETCHED, REF, STALE, WIN_SENT};

/// What `mg` asks of the store besides the lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaGetOptions {
    /// `T`: new expiration (raw client value).
    pub ttl: Option<i64>,
    /// `N`: on a miss, create an empty item with this expiration and win it.
    pub vivify: Option<i64>,
    /// `R`: win when the TTL left is below this (raw client value).
    pub recache: Option<i64>,
    /// `u`: don't bump the item or mark it fetched.
    pub no_update: bool,
}

/// The recache state `mg` reports with a hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaGetState {
    /// The item was created by this request (`N` on a miss).
    pub created: bool,
    /// This client won the recache token (`W`).
    pub won: bool,
    /// Another client already holds it (`Z`).
    pub already_sent: bool,
    /// The item is stale (`X`).
    pub stale: bool,
    /// The expiration time before this request's `T` changed it.
    pub old_exptime: u32,
}

/// The outcome of [`Store::meta_delete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaDeleteOutcome {
    /// Deleted, or marked stale with `I`.
    Deleted,
    /// No such item.
    NotFound,
    /// The CAS did not match.
    Exists,
}

/// What `me` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemDebug {
    /// Expiration in server-clock seconds, 0 = never.
    pub exptime: u32,
    /// Last access in server-clock seconds.
    pub last_access: u32,
    /// CAS unique.
    pub cas: u64,
    /// Fetched before.
    pub fetched: bool,
    /// Slab class index.
    pub class: u32,
    /// Bytes the item occupies in its chunk.
    pub size: usize,
}

impl Store {
    /// `mg`: looks `key` up and applies `opts`; on a hit (or a creation) calls `f` with
    /// the item (state before this request's bump), the recache state and the value as
    /// the item holds it (the inline value, or each segment's part of a chained one, in
    /// order: a chained value is not assembled, and the view's `value` is then empty),
    /// all under the key's shard lock; returns true.
    pub fn meta_get(
        &self,
        key: &[u8],
        opts: MetaGetOptions,
        f: impl FnOnce(&ItemView<'_>, MetaGetState, &[&[u8]]),
    ) -> bool {
        let kh = self.index.hash_key(key);
        let now = self.now();
        let mut prepared: Option<Prepared> = None;
        loop {
            let mut garbage = Garbage::default();
            let mut shard = self.index.lock(kh.shard);
            let mut created = false;
            let h = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                Lookup::Hit(h) => Some(h),
                _ => match (opts.vivify, prepared.take()) {
                    (Some(_), Some(prep)) => {
                        if !self.reserve_key(&mut shard) {
                            // The table cannot grow (the heap is exhausted): a miss.
                            drop(shard);
                            self.free_garbage(garbage);
                            self.discard(prep);
                            bump(&self.counters.global.get_misses);
                            return false;
                        }
                        // Linking hands the chunk to the index; `Prepared` owns nothing
                        // else for an empty value.
                        let head = prep.head;
                        let cas = self.expiry.next_cas();
                        self.link_locked(&mut shard, &kh, head, None, cas);
                        created = true;
                        Some(head)
                    }
                    _ => None,
                },
            };
            let Some(h) = h else {
                if let Some(exp) = opts.vivify {
                    drop(shard);
                    self.free_garbage(garbage);
                    let exp = self.clock().realtime_at(exp, now);
                    match self.prepare(key, 0, exp, 0, &kh, now) {
                        Some(p) => {
                            prepared = Some(p);
                            continue;
                        }
                        None => {
                            bump(&self.counters.global.get_misses);
                            return false;
                        }
                    }
                }
                bump(&self.counters.global.get_misses);
                drop(shard);
                self.free_garbage(garbage);
                return false;
            };
            let it = self.item(h);
            let c = self.counters.class(self.class_of(h));
            let old_exptime = it.exptime();
            if let Some(t) = opts.ttl {
                it.set_exptime(self.clock().realtime_at(t, now));
                bump(&c.touch_hits);
            } else {
                bump(&c.get_hits);
            }
            let bits = it.bits();
            let sent = bits & WIN_SENT != 0;
            let mut st = MetaGetState {
                created,
                won: created,
                already_sent: sent,
                stale: bits & STALE != 0,
                old_exptime,
            };
            if let Some(r) = opts.recache {
                let exp = it.exptime();
                if !sent && !created && exp != 0 && exp < self.clock().realtime_at(r, now) {
                    st.won = true;
                }
            }
            if st.stale && !sent {
                st.won = true;
            }
            if st.won {
                it.set_bits(WIN_SENT);
            }
            let prev = widen_access(now, it.access_low());
            if it.is_chained() {
                // The shard lock held here keeps the parts valid until `f` returns.
                let parts = self.chained_parts(&it);
                f(&self.view(&it, &[], prev), st, &parts);
            } else {
                let value = it.inline_value();
                f(&self.view(&it, value, prev), st, &[value]);
            }
            if !opts.no_update {
                it.set_access(now);
                it.set_bits(REF | FETCHED);
            }
            drop(shard);
            if let Some(p) = prepared.take() {
                self.discard(p);
            }
            self.free_garbage(garbage);
            return true;
        }
    }

    /// `md`: deletes `key`, or with `invalidate` marks it stale, gives it a new CAS and
    /// (with `ttl`) a new expiration. With `cas`, only if the item's CAS matches.
    pub fn meta_delete(
        &self,
        key: &[u8],
        cas: Option<u64>,
        invalidate: bool,
        ttl: Option<i64>,
    ) -> MetaDeleteOutcome {
        self.with_live(key, |l, found| {
            let Some(h) = found else {
                bump(&self.counters.global.delete_misses);
                return MetaDeleteOutcome::NotFound;
            };
            let it = self.item(h);
            if cas.is_some_and(|c| c != it.cas()) {
                bump(&self.counters.global.delete_misses);
                MetaDeleteOutcome::Exists
            } else if invalidate {
                if let Some(t) = ttl {
                    it.set_exptime(self.clock().realtime_at(t, l.now));
                }
                it.set_bits(STALE);
                it.clear_bits(WIN_SENT);
                it.set_cas(self.expiry.next_cas());
                MetaDeleteOutcome::Deleted
            } else {
                bump(&self.counters.class(self.class_of(h)).delete_hits);
                self.unlink_in(l, h);
                MetaDeleteOutcome::Deleted
            }
        })
    }

    /// `ms` with `C<cas>` and `I`: like a CAS store, except that a CAS *older* than the
    /// item's also replaces the value, keeping the item's expiration, marking the new
    /// value stale and keeping a win token already handed out (memcached's
    /// `set_stale`).
    pub fn meta_set_invalidate(
        &self,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
        cas: u64,
    ) -> StoreOutcome {
        let kh = self.index.hash_key(key);
        loop {
            let now = self.now();
            let (old, old_exptime) = {
                let mut garbage = Garbage::default();
                let mut shard = self.index.lock(kh.shard);
                let found = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                    Lookup::Hit(h) => Some((h, self.item(h).cas(), self.item(h).exptime())),
                    _ => None,
                };
                drop(shard);
                self.free_garbage(garbage);
                match found {
                    None => return self.store(StoreMode::Cas(cas), key, flags, exptime, value),
                    Some((_, cur, _)) if cas >= cur => {
                        return self.store(StoreMode::Cas(cas), key, flags, exptime, value)
                    }
                    Some((h, _, e)) => (h, e),
                }
            };
            if self.too_large(key.len(), value.len(), flags) {
                return StoreOutcome::TooLarge;
            }
            let Some(prep) = self.prepare(key, flags, old_exptime, value.len(), &kh, now) else {
                return StoreOutcome::OutOfMemory;
            };
            self.write_value(&prep, &[value]);
            let still = |h: u32| h == old && cas < self.item(h).cas();
            let Some((mut shard, mut garbage, prep)) =
                self.relock_unchanged(key, &kh, now, prep, still)
            else {
                continue;
            };
            let sent = self.item(old).bits() & WIN_SENT;
            let head = prep.head;
            let new_cas = self.expiry.next_cas();
            self.link_locked(&mut shard, &kh, head, Some(old), new_cas);
            self.item(head).set_bits(STALE | sent);
            garbage.push(old);
            drop(shard);
            self.free_garbage(garbage);
            return StoreOutcome::Stored;
        }
    }

    /// The CAS unique of a live item, without touching it (0 if CAS is off).
    pub fn peek_cas(&self, key: &[u8]) -> Option<u64> {
        self.peek(key, |it, _| it.cas)
    }

    /// Calls `f` with a live item and its class without bumping it or counting a get.
    fn peek<R>(&self, key: &[u8], f: impl FnOnce(&ItemDebug, &[u8]) -> R) -> Option<R> {
        self.with_live(key, |l, found| {
            let h = found?;
            let it = self.item(h);
            let d = ItemDebug {
                exptime: it.exptime(),
                last_access: widen_access(l.now, it.access_low()),
                cas: it.cas(),
                fetched: it.bits() & FETCHED != 0,
                class: self.class_of(h).index() as u32,
                size: it.stored_size(),
            };
            let v = self.value_of(&it);
            Some(f(&d, &v))
        })
    }

    /// `me`: the item's metadata, without touching it.
    pub fn debug_item(&self, key: &[u8]) -> Option<ItemDebug> {
        self.peek(key, |d, _| *d)
    }

    /// Sets a new expiration on a live item without counting a touch; true if found.
    pub fn set_exptime_quiet(&self, key: &[u8], exptime: i64) -> bool {
        self.with_live(key, |l, found| {
            found
                .inspect(|&h| {
                    self.item(h)
                        .set_exptime(self.clock().realtime_at(exptime, l.now));
                })
                .is_some()
        })
    }
}
