//! Loom model of the memory limit changing while a thread allocates: `SlabEngine::set_limit`
//! (what `cache_memlimit` calls) stores the limit in an atomic that `map_more` reads under
//! the pool lock, on the real engine (its locks and atomics are loom's under `cfg(loom)`).
//!
//! The model checks, in every interleaving: the mapped memory never exceeds the larger of
//! the two limits; an allocation ordered after `set_limit` (same thread, or after a join)
//! obeys the new limit, shrinking or growing; and no chunk is handed out twice.

use std::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;

use crate::engine::size_class::{ClassId, SizeClasses};
use crate::engine::{Config, SlabEngine};
use crate::error::Error;

const SLAB: usize = 2 << 20;

/// One class whose chunk is a whole slab, slabs mapped one at a time, a limit of two
/// slabs: each allocation maps a slab, so each one asks the limit.
fn engine() -> SlabEngine {
    let classes = SizeClasses::from_list(&[SLAB], 8, SLAB).unwrap();
    let config = Config::new(classes)
        .memory_limit(2 * SLAB)
        .reserve_bytes(8 * SLAB)
        .map_granule(SLAB);
    SlabEngine::new(config).unwrap()
}

/// An allocation that may meet the limit (and nothing else).
fn alloc(e: &SlabEngine) -> Option<NonNull<u8>> {
    match e.alloc(ClassId(0)) {
        Ok(p) => Some(p),
        Err(Error::LimitReached { .. }) => None,
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn set_limit_concurrent_with_alloc() {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    loom::model(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let e = Arc::new(engine());
        let e2 = e.clone();
        let t =
            thread::spawn(move || [alloc(&e2), alloc(&e2)].map(|p| p.map(|p| p.as_ptr() as usize)));
        e.set_limit(SLAB).unwrap();
        // After its own `set_limit`, this thread sees one slab as the limit.
        let mine = alloc(&e);
        let theirs = t.join().unwrap();
        assert!(e.mapped_bytes() <= 2 * SLAB, "{}", e.stats());
        let mut got: Vec<usize> = theirs.iter().flatten().copied().collect();
        got.extend(mine.map(|p| p.as_ptr() as usize));
        let n = got.len();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), n, "a chunk handed out twice");
        assert!(
            (1..=2).contains(&n),
            "{n} allocations within a limit of two slabs"
        );
        if mine.is_some() {
            // It mapped the first slab, under the new limit of one: every allocation of
            // the other thread came after it (the pool lock orders them after the
            // shrink) and failed.
            assert_eq!(n, 1, "{theirs:?}");
        }
        // Shrunk: no more; grown: at once.
        assert!(alloc(&e).is_none(), "allocated past the shrunk limit");
        e.set_limit(3 * SLAB).unwrap();
        let more = alloc(&e).expect("a grown limit takes effect at once");
        for p in got
            .into_iter()
            .map(|a| NonNull::new(a as *mut u8).unwrap())
            .chain([more])
        {
            // SAFETY: each was allocated above, once, and is freed once.
            unsafe { e.free(p) };
        }
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("set_limit_concurrent_with_alloc: {n} interleavings");
    assert!(n > 1, "only {n} interleaving explored");
}
