//! The read path: value views ([`ItemView`], [`Value`], [`ValueHead`]), the per-thread
//! buffer chained values are assembled in, and the lookups `get`, `gat` and the text
//! protocol's `get_append`.
//!
//! Readers run under the key's shard lock (its read lock, but for `gat` and an expired
//! item), so the value cannot be freed or overwritten while they copy it out; a hit sets
//! the item's CLOCK bit and access time after the reader ran, so the reader sees the
//! access before its own.

use std::cell::Cell;

use super::expiry::Dead;
use super::index::{Garbage, Lookup};
use super::stats::bump;
use super::Store;
use crate::item::{widen_access, ItemRef, FETCHED, REF, STALE, WIN_SENT};

/// An item as a reader sees it, valid inside the closure passed to [`Store::get`].
#[derive(Clone, Copy, Debug)]
pub struct ItemView<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// CAS unique (0 with `-C`).
    pub cas: u64,
    /// Expiration in server-clock seconds; 0 = never.
    pub exptime: u32,
    /// Server-clock time of the access *before* this one (or of the store).
    pub last_access: u32,
    /// Whether the item had been fetched before this access.
    pub fetched: bool,
    /// Whether the item is marked stale (meta invalidation).
    pub stale: bool,
    /// Whether a win token was already handed out (meta).
    pub win_token_sent: bool,
}

/// Assembled chained values up to this capacity keep their buffer for the thread's next
/// one (the default `-I` of 1 MB fits), so reading a large value does not map, fault in
/// and unmap a fresh megabyte each time.
const ASSEMBLED_KEEP: usize = 2 * 1024 * 1024;

thread_local! {
    /// The buffer [`Store::value_of`] assembles chained values in, between uses.
    static ASSEMBLED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An item's value as [`Store::value_of`] gives it: borrowed from the chunk, or assembled
/// from the segments of a chained value into a buffer that goes back to the thread when
/// dropped.
#[derive(Debug)]
pub(super) enum Value<'a> {
    Inline(&'a [u8]),
    Assembled(Vec<u8>),
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Value::Inline(v) => v,
            Value::Assembled(v) => v,
        }
    }
}

impl Drop for Value<'_> {
    fn drop(&mut self) {
        if let Value::Assembled(v) = self {
            if v.capacity() <= ASSEMBLED_KEEP {
                let v = std::mem::take(v);
                // A nested read may have put a buffer back meanwhile: keep the larger.
                let old = ASSEMBLED.take();
                ASSEMBLED.set(if old.capacity() > v.capacity() {
                    old
                } else {
                    v
                });
            }
        }
    }
}

/// What [`Store::get_append`] tells of a hit before appending its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueHead {
    /// Client flags.
    pub flags: u32,
    /// CAS unique (0 with `-C`).
    pub cas: u64,
    /// The value's length.
    pub len: usize,
}

impl Store {
    /// The value of a live item (the caller holds its shard lock): borrowed from the chunk
    /// when inline, assembled when chained, in this thread's reused buffer (see
    /// [`Value`]).
    pub(super) fn value_of<'a>(&self, it: &ItemRef<'a>) -> Value<'a> {
        if !it.is_chained() {
            return Value::Inline(it.inline_value());
        }
        let mut out = ASSEMBLED.take();
        out.clear();
        out.reserve(it.chained_len());
        self.value_parts(it, |part| out.extend_from_slice(part));
        Value::Assembled(out)
    }

    /// Calls `f` with the value of a live item (the caller holds its shard lock) in order:
    /// the inline value, or each segment's part of a chained one.
    fn value_parts(&self, it: &ItemRef<'_>, mut f: impl FnMut(&[u8])) {
        if !it.is_chained() {
            f(it.inline_value());
            return;
        }
        for (p, n) in self.regions(*it, 0) {
            // SAFETY: a region of a live item holds `n` value bytes; the caller's shard
            // lock keeps it from being freed or written.
            f(unsafe { std::slice::from_raw_parts(p.as_ptr(), n) });
        }
    }

    pub(super) fn view<'a>(
        &self,
        it: &ItemRef<'a>,
        value: &'a [u8],
        prev_access: u32,
    ) -> ItemView<'a> {
        let bits = it.bits();
        ItemView {
            key: it.key(),
            value,
            flags: it.flags(),
            cas: it.cas(),
            exptime: it.exptime(),
            last_access: prev_access,
            fetched: bits & FETCHED != 0,
            stale: bits & STALE != 0,
            win_token_sent: bits & WIN_SENT != 0,
        }
    }

    /// Looks `key` up; on a hit calls `f` with the item under the shard lock (copy the
    /// value out inside `f`) and returns true. Sets the item's CLOCK bit and counts
    /// `get_hits`/`get_misses`.
    pub fn get(&self, key: &[u8], f: impl FnOnce(&ItemView<'_>)) -> bool {
        self.get_inner(key, None, f)
    }

    /// `gat`/`gats`: like [`get`](Self::get), and sets the expiration time first.
    pub fn get_and_touch(&self, key: &[u8], exptime: i64, f: impl FnOnce(&ItemView<'_>)) -> bool {
        bump(&self.counters.global.cmd_touch);
        self.get_inner(key, Some(exptime), f)
    }

    fn get_inner(&self, key: &[u8], touch: Option<i64>, f: impl FnOnce(&ItemView<'_>)) -> bool {
        self.get_item(key, touch, |it, prev| {
            let value = self.value_of(it);
            f(&self.view(it, &value, prev));
        })
    }

    /// A text `get`/`gets` (`gat`/`gats` with `touch`): looks `key` up as
    /// [`get`](Self::get) does (the same counters and CLOCK bit); on a hit calls `head`
    /// with the item's flags, CAS and value length, then appends the value to `out`
    /// straight from its chunks, without assembling a chained value first.
    pub fn get_append(
        &self,
        key: &[u8],
        touch: Option<i64>,
        out: &mut Vec<u8>,
        head: impl FnOnce(&ValueHead, &mut Vec<u8>),
    ) -> bool {
        self.get_append_or(key, touch, out, head, usize::MAX, |_, _| {})
    }

    /// [`get_append`](Self::get_append), except that a chained value of at least `min`
    /// bytes is not appended: `large` gets it as the item's segments hold it, in order,
    /// under the key's shard lock (see [`get_parts`](Self::get_parts)), after `head`.
    pub fn get_append_or(
        &self,
        key: &[u8],
        touch: Option<i64>,
        out: &mut Vec<u8>,
        head: impl FnOnce(&ValueHead, &mut Vec<u8>),
        min: usize,
        large: impl FnOnce(&mut Vec<u8>, &[&[u8]]),
    ) -> bool {
        self.get_head(key, touch, |it, h| {
            head(&h, out);
            if h.len >= min && it.is_chained() {
                let parts = self.chained_parts(it);
                return large(out, &parts);
            }
            out.reserve(h.len);
            self.value_parts(it, |part| out.extend_from_slice(part));
        })
    }

    /// The segments' parts of a chained value, in order (the caller holds the item's
    /// shard lock while it uses them).
    pub(super) fn chained_parts<'s>(&'s self, it: &ItemRef<'s>) -> Vec<&'s [u8]> {
        self.regions(*it, 0)
            // SAFETY: a region of a live item holds `n` value bytes; the caller's shard
            // lock keeps it from being freed or written while it uses the slices (every
            // caller drops them before it unlocks).
            .map(|(p, n)| unsafe { std::slice::from_raw_parts(p.as_ptr(), n) })
            .collect()
    }

    /// As [`get_append`](Self::get_append), but gives `f` the value as the item holds it:
    /// the inline value, or each segment's part of a chained one, in order, borrowed
    /// under the key's shard lock for the duration of `f` (which must not block: a
    /// replacement, delete or eviction of the key, and every write to another key of the
    /// shard, waits for it; other reads do not).
    pub fn get_parts(
        &self,
        key: &[u8],
        touch: Option<i64>,
        f: impl FnOnce(&ValueHead, &[&[u8]]),
    ) -> bool {
        self.get_head(key, touch, |it, h| {
            if !it.is_chained() {
                return f(&h, &[it.inline_value()]);
            }
            f(&h, &self.chained_parts(it));
        })
    }

    /// [`get_item`](Self::get_item) for the readers that write a value's head: counts
    /// `cmd_touch` with `touch`, and gives `f` the item's flags, CAS and value length.
    fn get_head(
        &self,
        key: &[u8],
        touch: Option<i64>,
        f: impl FnOnce(&ItemRef<'_>, ValueHead),
    ) -> bool {
        if touch.is_some() {
            bump(&self.counters.global.cmd_touch);
        }
        self.get_item(key, touch, |it, _| {
            let h = ValueHead {
                flags: it.flags(),
                cas: it.cas(),
                len: it.value_len(),
            };
            f(it, h)
        })
    }

    /// Looks `key` up, setting the expiration time first with `touch`; on a hit calls `f`
    /// with the item under the shard lock and the time of its previous access. Counts
    /// hits, misses and touches (not `cmd_touch`).
    ///
    /// Without `touch` the shard is locked for reading (see [`Index::read`]): readers of
    /// one shard, and of one item, run together. An expired or flushed item found so is
    /// looked up again under the write lock, which unlinks it.
    ///
    /// [`Index::read`]: super::Index::read
    fn get_item(&self, key: &[u8], touch: Option<i64>, f: impl FnOnce(&ItemRef<'_>, u32)) -> bool {
        let kh = self.index.hash_key(key);
        let now = self.now();
        if touch.is_none() {
            let shard = self.index.read(kh.shard);
            match self.find_alive(&shard, &kh, key, now) {
                Lookup::Hit(h) => {
                    let it = self.item(h);
                    bump(&self.counters.class(self.class_of(h)).get_hits);
                    self.read_hit(&it, now, f);
                    return true;
                }
                Lookup::Miss => {
                    drop(shard);
                    bump(&self.counters.global.get_misses);
                    return false;
                }
                // Dead: unlinked and counted below.
                Lookup::Dead(_) => {}
            }
        }
        let mut garbage = Garbage::default();
        let mut shard = self.index.lock(kh.shard);
        let hit = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
            Lookup::Hit(h) => {
                let it = self.item(h);
                let c = self.counters.class(self.class_of(h));
                bump(&c.get_hits);
                if let Some(e) = touch {
                    it.set_exptime(self.clock().realtime_at(e, now));
                    bump(&c.touch_hits);
                }
                self.read_hit(&it, now, f);
                true
            }
            other => {
                bump(&self.counters.global.get_misses);
                match other {
                    Lookup::Dead(Dead::Expired) => bump(&self.counters.global.get_expired),
                    Lookup::Dead(Dead::Flushed) => bump(&self.counters.global.get_flushed),
                    _ => {}
                }
                if touch.is_some() {
                    bump(&self.counters.global.touch_misses);
                }
                false
            }
        };
        drop(shard);
        self.free_garbage(garbage);
        hit
    }

    /// Runs a reader on a hit (its shard locked, for reading at least) with the time of
    /// the item's previous access, then records this access. The access time and the
    /// CLOCK bits are written atomically, so readers of one item may do this together.
    #[inline]
    fn read_hit(&self, it: &ItemRef<'_>, now: u32, f: impl FnOnce(&ItemRef<'_>, u32)) {
        let prev = widen_access(now, it.access_low());
        f(it, prev);
        it.set_access(now);
        it.set_bits(REF | FETCHED);
    }
}
