//! The classic commands: storage (`set`, `add`, `replace`, `cas`, and `append`/`prepend`,
//! which concatenate), arithmetic (`incr`/`decr`, with memcached's number parsing and
//! formatting of counters), `touch`, `delete` and `flush_all`.
//!
//! Each runs under the key's shard lock; a command that needs a new chunk (a concat, a
//! counter that grew a digit) looks the item up, lets the lock go, prepares the new item
//! with no lock held (allocation may evict, which locks other shards), then locks again
//! and links it only if the item is still the one it read, else retries.

use super::index::{Garbage, Lookup};
use super::stats::bump;
use super::{IncrOutcome, Store, StoreMode, StoreOutcome};
use crate::item::{memcached_stored_size, KEY_MAX, REF};

use crate::protocol::lex::format_u64;
pub(super) use crate::protocol::lex::parse_u64 as parse_counter;

impl Store {
    /// Whether an item of this key and value length is over `-I` (memcached's accounting).
    pub fn too_large(&self, key_len: usize, value_len: usize, flags: u32) -> bool {
        memcached_stored_size(key_len, value_len, flags, self.cfg.cas_enabled)
            > self.cfg.item_size_max
    }

    /// Stores a value by `mode` (memcached's `set`/`add`/`replace`/`append`/`prepend`/
    /// `cas`). `exptime` is the client's raw value.
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
    ) -> StoreOutcome {
        self.store_checked(mode, key, flags, exptime, value, None).0
    }

    /// [`store`](Self::store), also returning the CAS unique the stored item got (0 unless
    /// `Stored`), assigned under the key's lock, so that a concurrent writer cannot slip in
    /// between the store and the CAS the client is told. `expect_cas` applies to `Append` and
    /// `Prepend` (the binary and meta protocols let them carry a CAS): the item's CAS is
    /// compared under the same lock that links the new value, and a mismatch is `Exists`.
    pub fn store_checked(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
        expect_cas: Option<u64>,
    ) -> (StoreOutcome, u64) {
        if key.is_empty() || key.len() > KEY_MAX {
            return (StoreOutcome::NotStored, 0);
        }
        if matches!(mode, StoreMode::Append | StoreMode::Prepend) {
            // As memcached: an item for the data alone is allocated first (memcached does
            // it when it reads the command line, to receive the data into), and only then
            // the joined one. When the first fails the answer is out of memory (text and
            // binary keep the old value, meta `ms` drops it, as for every mode); when the
            // join fails, not stored. The data item is held while the join is allocated.
            let data_item = match self.begin_store(mode, key, flags, exptime, value.len()) {
                Ok(p) => p,
                Err(outcome) => return (outcome, 0),
            };
            let joined = self.concat(mode == StoreMode::Append, key, value, expect_cas);
            self.abandon_store(data_item);
            return joined;
        }
        let pending = match self.begin_store(mode, key, flags, exptime, value.len()) {
            Ok(p) => p,
            Err(outcome) => return (outcome, 0),
        };
        self.write_value(&pending.prep, &[value]);
        self.finish_store(mode, key, pending)
    }

    fn concat(
        &self,
        append: bool,
        key: &[u8],
        data: &[u8],
        expect_cas: Option<u64>,
    ) -> (StoreOutcome, u64) {
        let kh = self.index.hash_key(key);
        loop {
            let now = self.now();
            let mut garbage = Garbage::default();
            let mut shard = self.index.lock(kh.shard);
            let (old, old_len, old_cas, flags, exptime) =
                match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                    Lookup::Hit(h) => {
                        let it = self.item(h);
                        (h, it.value_len(), it.cas(), it.flags(), it.exptime())
                    }
                    _ => {
                        drop(shard);
                        self.free_garbage(garbage);
                        return (StoreOutcome::NotStored, 0);
                    }
                };
            if expect_cas.is_some_and(|c| c != old_cas) {
                bump(&self.counters.class(self.class_of(old)).cas_badval);
                drop(shard);
                self.free_garbage(garbage);
                return (StoreOutcome::Exists, 0);
            }
            drop(shard);
            self.free_garbage(garbage);
            let new_len = old_len + data.len();
            let class = self.class_of(old);
            bump(&self.counters.class(class).cmd_set);
            // As memcached's store of an append or prepend: when the joined value cannot
            // be allocated (too large, or no memory) the command is not stored, and the
            // old value stays.
            if self.too_large(key.len(), new_len, flags) {
                bump(&self.counters.class(class).outofmemory);
                return (StoreOutcome::NotStored, 0);
            }
            let Some(prep) = self.prepare(key, flags, exptime, new_len, &kh, now) else {
                bump(&self.counters.class(class).outofmemory);
                return (StoreOutcome::NotStored, 0);
            };
            // The same item, unchanged: a chunk reused by a newer item of the same length
            // has another CAS.
            let same = |h: u32| {
                h == old && self.item(h).value_len() == old_len && self.item(h).cas() == old_cas
            };
            let Some((mut shard, mut garbage, prep)) =
                self.relock_unchanged(key, &kh, now, prep, same)
            else {
                continue;
            };
            {
                let it = self.item(old);
                let v = self.value_of(&it);
                if append {
                    self.write_value(&prep, &[&v, data]);
                } else {
                    self.write_value(&prep, &[data, &v]);
                }
            }
            let cas = self.expiry.next_cas();
            self.link_locked(&mut shard, &kh, prep.head, Some(old), cas);
            garbage.push(old);
            drop(shard);
            self.free_garbage(garbage);
            return (StoreOutcome::Stored, cas);
        }
    }

    /// Deletes `key`; true if it was there.
    pub fn delete(&self, key: &[u8]) -> bool {
        self.with_live(key, |l, found| match found {
            Some(h) => {
                bump(&self.counters.class(self.class_of(h)).delete_hits);
                self.unlink_in(l, h);
                true
            }
            None => {
                bump(&self.counters.global.delete_misses);
                false
            }
        })
    }

    /// `incr`/`decr` with memcached's semantics: incr wraps at 2^64, decr floors at 0;
    /// the value must be a decimal number; a shorter result is padded with spaces in
    /// place (as memcached does), a longer one gets a new chunk; flags and expiration are
    /// kept; a new CAS unique is assigned.
    pub fn incr_decr(&self, key: &[u8], delta: u64, incr: bool) -> IncrOutcome {
        let kh = self.index.hash_key(key);
        let miss = |s: &Self| {
            bump(if incr {
                &s.counters.global.incr_misses
            } else {
                &s.counters.global.decr_misses
            });
            IncrOutcome::NotFound
        };
        loop {
            let now = self.now();
            let mut garbage = Garbage::default();
            let mut shard = self.index.lock(kh.shard);
            let h = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                Lookup::Hit(h) => h,
                _ => {
                    drop(shard);
                    self.free_garbage(garbage);
                    return miss(self);
                }
            };
            let it = self.item(h);
            if it.is_chained() || it.value_len() == 0 {
                return IncrOutcome::NonNumeric;
            }
            let Some(v) = parse_counter(it.inline_value()) else {
                return IncrOutcome::NonNumeric;
            };
            let new = if incr {
                v.wrapping_add(delta)
            } else {
                v.saturating_sub(delta)
            };
            let mut buf = [0u8; 20];
            let digits = format_u64(new, &mut buf);
            let c = self.counters.class(self.class_of(h));
            if digits.len() <= it.value_len() {
                let dst = it.inline_value_mut();
                dst[..digits.len()].copy_from_slice(digits);
                dst[digits.len()..].fill(b' ');
                it.set_cas(self.expiry.next_cas());
                bump(if incr { &c.incr_hits } else { &c.decr_hits });
                drop(shard);
                self.free_garbage(garbage);
                return IncrOutcome::Value(new);
            }
            let (flags, exptime) = (it.flags(), it.exptime());
            drop(shard);
            self.free_garbage(garbage);
            let Some(prep) = self.prepare(key, flags, exptime, digits.len(), &kh, now) else {
                return IncrOutcome::OutOfMemory;
            };
            let still = |h2: u32| {
                h2 == h && {
                    let it = self.item(h);
                    !it.is_chained() && parse_counter(it.inline_value()) == Some(v)
                }
            };
            let Some((mut shard, mut garbage, prep)) =
                self.relock_unchanged(key, &kh, now, prep, still)
            else {
                continue;
            };
            self.write_value(&prep, &[digits]);
            bump(if incr { &c.incr_hits } else { &c.decr_hits });
            let cas = self.expiry.next_cas();
            self.link_locked(&mut shard, &kh, prep.head, Some(h), cas);
            garbage.push(h);
            drop(shard);
            self.free_garbage(garbage);
            return IncrOutcome::Value(new);
        }
    }

    /// Sets a new expiration time; true if the item was there.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        bump(&self.counters.global.cmd_touch);
        self.with_live(key, |l, found| match found {
            Some(h) => {
                let it = self.item(h);
                it.set_exptime(self.clock().realtime_at(exptime, l.now));
                it.set_access(l.now);
                it.set_bits(REF);
                bump(&self.counters.class(self.class_of(h)).touch_hits);
                true
            }
            None => {
                bump(&self.counters.global.touch_misses);
                false
            }
        })
    }

    /// `flush_all [delay]` with memcached 1.6's semantics: items last accessed (or, with
    /// CAS, stored) before the flush time are invalid from then on; items stored after it
    /// survive. An immediate flush also unlinks the flushed items and frees their memory.
    pub fn flush_all(&self, delay: i64) {
        bump(&self.counters.global.cmd_flush);
        if self.expiry.flush(delay, self.now()) {
            self.crawl(false);
            // Demand fell: the memory goes back to the OS now, not a reap interval later.
            self.give_back(true, self.counters.live_chunks());
        }
    }
}
