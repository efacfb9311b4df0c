//! Loom models of how the store moves and reuses item chunks (`--cfg loom`; run by
//! `scripts/loom.sh`).
//!
//! The store's shard locks, chunk tags and free lists sit on std types inside a store too
//! big for loom to explore, so these models rebuild the protocol in miniature, step for
//! step, on loom's `Mutex`, `RwLock`, `AtomicU32` and `UnsafeCell` (which reports any
//! two accesses to a value word not ordered by happens-before), with the store's own tag
//! bits:
//!
//! * a chunk is a tag word (`LIVE` and the key's hash bits, read atomically by walks that
//!   hold no shard lock, as `evict.rs` reads it), a value word (once linked, read under
//!   the shard's read or write lock and written only under its write lock; before, by the
//!   thread that allocated it) and an access-time word (written by every reader of a hit,
//!   atomically, as `ItemRef::set_access` does: readers of one item run together);
//! * a shard is a `RwLock` around the key's index slot (the chunk handle it names): a
//!   `get` takes it for reading, everything that links, unlinks or moves for writing;
//! * `relocate` is `index.rs`'s: under the shard lock, copy the value into a chunk only
//!   this thread holds, store the copy's tag (Release), point the slot at the copy, clear
//!   `LIVE` on the old chunk (AcqRel), unlock, then free the old chunk;
//! * a walk (compaction, a slab move, the eviction hand) reads a chunk's tag, locks the
//!   shard the tag's hash bits name and acts only if that shard's index holds *this chunk*
//!   (`Shard::holds`): the store keeps no generation counter in its chunks; this check is
//!   what stops a walk from acting on a chunk that was freed and reused meanwhile;
//! * freed chunks go back through a free list behind a lock (the engine's class lock),
//!   last in first out, so a freed chunk is the next one reused.
//!
//! * a metadump walk (`dump.rs`) copies a shard's handles under its lock, lets go, and
//!   later visits each copied handle under the same shard's lock: it reads the chunk's
//!   tag, and reads the item (key, value, times) only if the tag is `LIVE` and that shard
//!   still holds the handle.
//!
//! The models check that a reader sees one whole value that was written (never one being
//! written, never a freed or reused chunk's), that values never go back in time, and that
//! afterwards every chunk is either free or linked, once. The models that remove the
//! handle check must fail.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Mutex, RwLock};
use loom::thread;

use crate::item::LIVE;

const CHUNKS: usize = 4;

/// Chunk memory, two shards (one key each: key `k` hashes to shard `k`) and a free list.
struct Mini {
    tags: [AtomicU32; CHUNKS],
    vals: [UnsafeCell<u64>; CHUNKS],
    /// The access time, atomic as the store keeps it.
    access: [AtomicU32; CHUNKS],
    shards: [RwLock<Option<usize>>; 2],
    free: Mutex<Vec<usize>>,
}

// SAFETY: the value words are accessed as the module docs say (under the shard lock once
// linked, by their allocating thread before); loom checks exactly that claim.
unsafe impl Sync for Mini {}

/// Runs `f` on a new loom thread with its own handle to `m`.
fn on_thread(m: &Arc<Mini>, f: impl FnOnce(&Mini) + Send + 'static) -> thread::JoinHandle<()> {
    let m = m.clone();
    thread::spawn(move || f(&m))
}

/// Runs `f` under `loom::model` and asserts loom explored more than one interleaving.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    loom::model(move || {
        f();
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{n} interleavings");
    assert!(n > 10, "only {n} interleavings explored");
}

fn tag(key: usize) -> u32 {
    LIVE | ((key as u32 + 1) << 8)
}

impl Mini {
    /// Every chunk free, then `key` set to `val` in the last chunk.
    fn new(key: usize, val: u64) -> Arc<Mini> {
        let m = Arc::new(Mini {
            tags: std::array::from_fn(|_| AtomicU32::new(0)),
            vals: std::array::from_fn(|_| UnsafeCell::new(0)),
            access: std::array::from_fn(|_| AtomicU32::new(0)),
            shards: [RwLock::new(None), RwLock::new(None)],
            free: Mutex::new((0..CHUNKS).collect()),
        });
        m.set(key, val);
        m
    }

    fn alloc(&self) -> usize {
        self.free.lock().unwrap().pop().expect("a free chunk")
    }

    fn free(&self, c: usize) {
        let mut f = self.free.lock().unwrap();
        assert!(!f.contains(&c), "chunk {c} freed twice");
        f.push(c);
    }

    /// `set`: build the item in a chunk of its own, then link it under the lock in place
    /// of the old one, which is freed after unlocking.
    fn set(&self, key: usize, val: u64) {
        let c = self.alloc();
        // SAFETY: `c` came off the free list: only this thread reaches it until it is linked.
        self.vals[c].with_mut(|p| unsafe { *p = val });
        let old = {
            let mut slot = self.shards[key].write().unwrap();
            self.tags[c].store(tag(key), Ordering::Release);
            let old = slot.replace(c);
            if let Some(o) = old {
                self.tags[o].fetch_and(!LIVE, Ordering::AcqRel);
            }
            old
        };
        if let Some(o) = old {
            self.free(o);
        }
    }

    /// `delete`.
    fn delete(&self, key: usize) {
        let old = {
            let mut slot = self.shards[key].write().unwrap();
            let old = slot.take();
            if let Some(o) = old {
                self.tags[o].fetch_and(!LIVE, Ordering::AcqRel);
            }
            old
        };
        if let Some(o) = old {
            self.free(o);
        }
    }

    /// `get` (`Store::get_item` without a touch): the value, read under the shard's read
    /// lock, then the access time recorded (`now`).
    ///
    /// loom's `RwLock` orders its readers one after another (each acquisition sees the
    /// previous release), so this model cannot show two readers' plain writes of one
    /// field racing: that the access time must be atomic is argued in `item.rs`
    /// (`ItemRef::access_atomic`), not checked here.
    fn get_at(&self, key: usize, now: u32) -> Option<u64> {
        let slot = self.shards[key].read().unwrap();
        let c = (*slot)?;
        // SAFETY: the chunk is linked in this shard, whose read lock we hold: only a
        // holder of the write lock writes its value.
        let v = self.vals[c].with(|p| unsafe { *p });
        self.access[c].store(now, Ordering::Relaxed);
        Some(v)
    }

    fn get(&self, key: usize) -> Option<u64> {
        self.get_at(key, 1)
    }

    /// A walk's move of whatever item chunk `c` holds (compaction, a slab move): read the
    /// tag without a lock, lock the shard it names, and move the item only if the index
    /// holds `c` (unless `trust_tag`, the bug the check prevents). True if it moved.
    fn walk_move(&self, c: usize, trust_tag: bool) -> bool {
        let t = self.tags[c].load(Ordering::Acquire);
        if t & LIVE == 0 {
            return false;
        }
        let key = (t >> 8) as usize - 1;
        let mut slot = self.shards[key].write().unwrap();
        if !trust_tag && *slot != Some(c) {
            return false;
        }
        let dest = self.alloc();
        // The relocation, as `Store::relocate` does it.
        // SAFETY: `c` is linked in this shard (checked above) and we hold its lock; `dest`
        // came off the free list and only this thread reaches it.
        let v = self.vals[c].with(|p| unsafe { *p });
        // SAFETY: as above, for `dest`.
        self.vals[dest].with_mut(|p| unsafe { *p = v });
        // The access time travels with the bytes (the write lock keeps readers out).
        self.access[dest].store(self.access[c].load(Ordering::Relaxed), Ordering::Relaxed);
        self.tags[dest].store(self.tags[c].load(Ordering::Acquire), Ordering::Release);
        *slot = Some(dest);
        self.tags[c].fetch_and(!LIVE, Ordering::AcqRel);
        drop(slot);
        self.free(c);
        true
    }

    /// The eviction hand on chunk `c`: confirm under the lock, unlink, free.
    fn walk_evict(&self, c: usize) -> bool {
        let t = self.tags[c].load(Ordering::Acquire);
        if t & LIVE == 0 {
            return false;
        }
        let key = (t >> 8) as usize - 1;
        let mut slot = self.shards[key].write().unwrap();
        if *slot != Some(c) {
            return false;
        }
        *slot = None;
        self.tags[c].fetch_and(!LIVE, Ordering::AcqRel);
        drop(slot);
        self.free(c);
        true
    }

    /// A metadump's copy of shard `shard`'s handles (`Store::dump_snapshot`).
    fn dump_snapshot(&self, shard: usize) -> Option<usize> {
        *self.shards[shard].write().unwrap()
    }

    /// A metadump's visit of handle `c` copied from shard `shard` (`Store::dump_visit`):
    /// the key and value it reports, if the chunk is still an item that shard links
    /// (unless `trust_copy`, the bug the check prevents).
    fn dump_visit(&self, shard: usize, c: usize, trust_copy: bool) -> Option<(usize, u64)> {
        let slot = self.shards[shard].write().unwrap();
        let t = self.tags[c].load(Ordering::Acquire);
        if !trust_copy && (t & LIVE == 0 || *slot != Some(c)) {
            return None;
        }
        // SAFETY: `c` is linked in this shard (checked above) and we hold its lock.
        let v = self.vals[c].with(|p| unsafe { *p });
        Some(((t >> 8) as usize - 1, v))
    }

    /// After every thread is joined: each chunk is free or linked, exactly once, and a
    /// linked chunk carries its key's live tag.
    fn check_accounting(&self) {
        let free = self.free.lock().unwrap().clone();
        let mut seen = [0; CHUNKS];
        for &c in &free {
            seen[c] += 1;
            assert_eq!(
                self.tags[c].load(Ordering::Relaxed) & LIVE,
                0,
                "free chunk live"
            );
        }
        for k in 0..2 {
            if let Some(c) = *self.shards[k].write().unwrap() {
                seen[c] += 1;
                assert_eq!(self.tags[c].load(Ordering::Relaxed), tag(k));
            }
        }
        assert_eq!(seen, [1; CHUNKS], "chunks free {free:?}");
    }
}

#[test]
fn loom_a_get_sees_one_whole_copy_while_its_item_moves() {
    model(|| {
        let m = Mini::new(0, 1);
        let c0 = m.shards[0].write().unwrap().expect("set");
        let mover = on_thread(&m, move |m| {
            m.walk_move(c0, false);
        });
        let writer = on_thread(&m, |m| m.set(0, 2));
        // Reads never see a value nobody wrote, and never go back from 2 to 1.
        let a = m.get(0).expect("never missing");
        let b = m.get(0).expect("never missing");
        assert!(
            (1..=2).contains(&a) && (1..=2).contains(&b) && a <= b,
            "{a} {b}"
        );
        mover.join().unwrap();
        writer.join().unwrap();
        assert_eq!(m.get(0), Some(2));
        m.check_accounting();
    });
}

#[test]
fn loom_a_walk_acts_only_on_the_item_its_shard_links() {
    model(|| {
        // Key 0 in the last chunk; it is deleted and its chunk reused by key 1 while a
        // move and the eviction hand walk over that chunk.
        let m = Mini::new(0, 1);
        let c0 = m.shards[0].write().unwrap().expect("set");
        let churn = on_thread(&m, |m| {
            m.delete(0);
            m.set(1, 7);
        });
        let mover = on_thread(&m, move |m| {
            m.walk_move(c0, false);
        });
        let evicted = m.walk_evict(c0);
        churn.join().unwrap();
        mover.join().unwrap();
        // Key 1 holds 7 unless the hand evicted it; key 0 stays deleted.
        assert_eq!(m.get(0), None);
        let v1 = m.get(1);
        assert!(v1 == Some(7) || (evicted && v1.is_none()), "{v1:?}");
        m.check_accounting();
    });
}

#[test]
fn loom_a_metadump_reports_only_items_its_shard_links() {
    model(|| {
        // Key 0 in the last chunk is copied by a dump; then replaced (its chunk freed) and
        // deleted while key 1 is set, into whichever chunk is free then (the copied one,
        // in some interleavings), and the dump visits the copy.
        let m = Mini::new(0, 1);
        let copied = m.dump_snapshot(0).expect("set");
        let churn = on_thread(&m, |m| {
            m.set(0, 2);
            m.delete(0);
        });
        let writer = on_thread(&m, |m| m.set(1, 7));
        let seen = m.dump_visit(0, copied, false);
        churn.join().unwrap();
        writer.join().unwrap();
        // The original item, whole, or nothing: never key 1's item under shard 0, never
        // a chunk being written.
        assert!(seen.is_none() || seen == Some((0, 1)), "{seen:?}");
        // A dump after the churn reports key 1 from its shard and nothing from key 0's.
        assert_eq!(m.dump_snapshot(0), None);
        let c1 = m.dump_snapshot(1).expect("key 1 set");
        assert_eq!(m.dump_visit(1, c1, false), Some((1, 7)));
        m.check_accounting();
    });
}

#[test]
#[should_panic]
fn loom_a_metadump_that_trusts_its_copy_is_caught() {
    loom::model(|| {
        let m = Mini::new(0, 1);
        let copied = m.dump_snapshot(0).expect("set");
        let churn = on_thread(&m, |m| {
            m.delete(0);
            m.set(1, 7);
        });
        // Without the checks the visit reads a chunk key 1's writer may be filling (a
        // race loom reports) or reports key 1's item as shard 0's.
        let seen = m.dump_visit(0, copied, true);
        churn.join().unwrap();
        assert!(seen.is_none() || seen == Some((0, 1)), "{seen:?}");
    });
}

#[test]
#[should_panic]
fn loom_a_walk_that_trusts_a_stale_tag_is_caught() {
    loom::model(|| {
        let m = Mini::new(0, 1);
        let c0 = m.shards[0].write().unwrap().expect("set");
        let churn = on_thread(&m, |m| {
            m.delete(0);
            m.set(1, 7);
        });
        // Without the handle check the walk moves (and frees) a chunk it read the tag of
        // before the churn freed it: a double free or a chunk both free and linked.
        m.walk_move(c0, true);
        churn.join().unwrap();
        m.check_accounting();
    });
}

#[test]
fn loom_readers_of_one_item_run_together_while_it_moves_and_is_replaced() {
    model(|| {
        // Two gets of key 0 under the shard's read lock, one of them on another thread,
        // while a walk moves the item and a set replaces it.
        let m = Mini::new(0, 1);
        let c0 = m.shards[0].write().unwrap().expect("set");
        let reader = on_thread(&m, |m| {
            let v = m.get_at(0, 5).expect("never missing");
            assert!((1..=2).contains(&v), "{v}");
        });
        let mover = on_thread(&m, move |m| {
            m.walk_move(c0, false);
        });
        let a = m.get_at(0, 6).expect("never missing");
        m.set(0, 2);
        let b = m.get(0).expect("never missing");
        assert!((1..=2).contains(&a) && b == 2, "{a} {b}");
        reader.join().unwrap();
        mover.join().unwrap();
        m.check_accounting();
    });
}
