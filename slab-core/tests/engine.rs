//! Engine behaviour: allocation, pointer -> slab/class, the limit, retention and batched
//! release, accounting identities, and cross-thread frees.
#![cfg(not(miri))] // every test here maps memory with MAP_FIXED and partial munmaps

use std::collections::HashSet;
use std::ptr::NonNull;

use proptest::prelude::*;
use slab_core::engine::size_class::{ClassId, SizeClasses};
use slab_core::engine::stats::Stats;
use slab_core::engine::{Config, SlabEngine};
use slab_core::Error;

const MIB: usize = 1 << 20;

fn engine(limit: Option<usize>) -> SlabEngine {
    let mut c = Config::new(SizeClasses::memcached_default());
    if let Some(l) = limit {
        c = c.memory_limit(l);
    }
    SlabEngine::new(c).unwrap()
}

/// The identities every snapshot must satisfy.
fn check_identities(s: &Stats) {
    for c in &s.classes {
        assert_eq!(
            c.used_chunks + c.free_chunks,
            c.slabs * c.chunks_per_slab,
            "{c:?}"
        );
        assert!(c.full_slabs + c.empty_slabs <= c.slabs, "{c:?}");
        assert!(c.empty_slabs <= 1);
    }
    let class_slabs: usize = s.classes.iter().map(|c| c.slabs).sum();
    assert_eq!(s.mapped_bytes, (class_slabs + s.pooled_slabs) * s.slab_size);
    if let Some(l) = s.limit {
        assert!(s.mapped_bytes <= l);
    }
    assert!(s.mapped_bytes <= s.reserved_bytes);
}

#[test]
fn alloc_free_round_trip_and_pointer_lookup() {
    let e = engine(None);
    let mut all = Vec::new();
    for (class, size) in e.classes().iter().collect::<Vec<_>>() {
        let n = e.classes().chunks_per_slab(class) + 1; // spills into a second slab
        let mut got = Vec::new();
        assert_eq!(e.alloc_batch(class, &mut got, n).unwrap(), n);
        for &p in &got {
            assert_eq!(e.class_of(p.as_ptr()), Some(class));
            assert!(e.contains(p.as_ptr()));
            assert_eq!(e.ptr_at(e.offset_of(p.as_ptr())), p);
            assert_eq!(e.offset_of(p.as_ptr()) % 8, 0);
            // Not a chunk start: no class.
            if size > 1 {
                assert_eq!(e.class_of(p.as_ptr().wrapping_add(1)), None);
            }
            // SAFETY: the chunk is ours and `size` bytes long.
            unsafe { p.as_ptr().write_bytes(class.0 as u8, size.min(64)) };
        }
        all.push((class, got));
    }
    let s = e.stats();
    check_identities(&s);
    for (class, got) in &all {
        let c = &s.classes[class.index()];
        assert_eq!(c.used_chunks, got.len());
        assert_eq!(c.slabs, 2);
        assert_eq!(c.full_slabs, 1);
    }
    // No two chunks overlap.
    let mut spans: Vec<(usize, usize)> = all
        .iter()
        .flat_map(|(c, v)| {
            let cs = e.classes().chunk_size(*c);
            v.iter().map(move |p| (p.as_ptr() as usize, cs))
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0);
    }
    assert!(!e.contains(std::ptr::null()));
    assert_eq!(e.class_of(&0u8 as *const u8), None);
    for (class, got) in &all {
        // SAFETY: all from `alloc_batch` of this class, freed once.
        unsafe { e.free_batch(*class, got) };
    }
    let s = e.stats();
    check_identities(&s);
    assert!(s.classes.iter().all(|c| c.used_chunks == 0 && c.slabs <= 1));
}

#[test]
fn allocation_prefers_partial_slabs() {
    let e = engine(None);
    let class = ClassId(38); // 524288: two chunks per slab
    let a = e.alloc(class).unwrap();
    let b = e.alloc(class).unwrap(); // slab 1 full
    let c = e.alloc(class).unwrap(); // slab 2 half
                                     // SAFETY: from `alloc`, freed once.
    unsafe { e.free(a) };
    // Both slab 1 and slab 2 have a free chunk; the next two allocations fill them both rather
    // than opening a third slab.
    let x = e.alloc(class).unwrap();
    let y = e.alloc(class).unwrap();
    assert_eq!(e.stats().classes[38].slabs, 2);
    let set: HashSet<_> = [b, c, x, y].into_iter().collect();
    assert_eq!(set.len(), 4);
    assert!(set.contains(&a));
}

#[test]
fn freed_chunk_is_reused_first() {
    let e = engine(None);
    let class = e.classes().class_for(100).unwrap();
    let v: Vec<_> = (0..10).map(|_| e.alloc(class).unwrap()).collect();
    // SAFETY: from `alloc`, freed once.
    unsafe { e.free(v[4]) };
    assert_eq!(e.alloc(class).unwrap(), v[4]);
}

#[test]
fn hard_limit_is_never_exceeded() {
    let limit = 8 * MIB;
    let e = engine(Some(limit));
    let small = e.classes().class_for(100).unwrap();
    let big = e.classes().class_for(300_000).unwrap();
    let mut held = Vec::new();
    let err = loop {
        match e.alloc(big) {
            Ok(p) => held.push((big, p)),
            Err(err) => break err,
        }
        match e.alloc(small) {
            Ok(p) => held.push((small, p)),
            Err(err) => break err,
        }
        assert!(e.stats().mapped_bytes <= limit);
    };
    assert!(
        matches!(err, Error::LimitReached { limit: l } if l == limit),
        "{err}"
    );
    assert!(err.to_string().contains("limit"));
    let s = e.stats();
    check_identities(&s);
    assert_eq!(s.mapped_bytes, limit);
    // The small class still has room in its slab even though the limit is reached.
    let mut more = Vec::new();
    assert!(e.alloc_batch(small, &mut more, 5).unwrap() >= 1);
    // Free the big ones: their slabs go to the pool and the other class can have them.
    for &(c, p) in held.iter().filter(|(c, _)| *c == big) {
        // SAFETY: from `alloc` of class `c`, freed once.
        unsafe { e.free_batch(c, &[p]) };
    }
    let mid = e.classes().class_for(5000).unwrap();
    let mut got = Vec::new();
    let n = e.alloc_batch(mid, &mut got, 100_000).unwrap();
    assert!(n > 0);
    let s = e.stats();
    check_identities(&s);
    assert!(s.mapped_bytes <= limit);
    assert!(matches!(
        e.alloc_batch(mid, &mut got, 100_000),
        Err(Error::LimitReached { .. })
    ));
}

#[test]
fn config_is_validated() {
    let c = || Config::new(SizeClasses::memcached_default());
    assert!(matches!(
        SlabEngine::new(c().memory_limit(1000)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        SlabEngine::new(c().map_granule(3 * MIB)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        SlabEngine::new(c().map_granule(MIB)),
        Err(Error::InvalidConfig(_))
    ));
    let e = SlabEngine::new(c().memory_limit(64 * MIB).reserve_bytes(32 * MIB)).unwrap_err();
    assert!(
        e.to_string().contains("smaller than the memory limit"),
        "{e}"
    );
}

#[test]
fn release_all_coalesces_into_one_munmap_per_run() {
    let e = engine(None);
    let class = e.classes().class_for(1000).unwrap();
    let cps = e.classes().chunks_per_slab(class);
    let mut v = Vec::new();
    let n = e.alloc_batch(class, &mut v, 64 * cps).unwrap();
    assert_eq!(n, 64 * cps);
    let before = e.stats();
    assert_eq!(before.mapped_bytes, 64 * MIB);
    // SAFETY: from `alloc_batch` of this class, freed once.
    unsafe { e.free_batch(class, &v) };
    let r = e.release_all();
    assert_eq!(
        (r.slabs, r.bytes, r.runs, r.munmap_calls),
        (64, 64 * MIB, 1, 1)
    );
    let s = e.stats();
    check_identities(&s);
    assert_eq!(s.mapped_bytes, 0);
    assert_eq!(s.munmap_calls, before.munmap_calls + 1);
    assert_eq!(s.released_bytes, 64 * MIB as u64);
    // Mapping back reuses the holes.
    let mut v = Vec::new();
    e.alloc_batch(class, &mut v, 10 * cps).unwrap();
    assert!(v.iter().all(|p| e.offset_of(p.as_ptr()) < 64 * MIB));
    // SAFETY: as above.
    unsafe { e.free_batch(class, &v) };
    // Unbatched: one call per slab.
    let r = e.release_all_unbatched();
    assert_eq!((r.slabs, r.munmap_calls), (10, 10));
    // Page by page: one call per 4 KiB page; the slots can be mapped back afterwards.
    let mut v = Vec::new();
    e.alloc_batch(class, &mut v, 2 * cps).unwrap();
    // SAFETY: as above.
    unsafe { e.free_batch(class, &v) };
    let r = e.release_all_page_by_page();
    assert_eq!((r.slabs, r.munmap_calls), (2, 2 * MIB / 4096));
    assert_eq!(e.stats().mapped_bytes, 0);
    let p = e.alloc(class).unwrap();
    // SAFETY: a fresh chunk of this class.
    unsafe { p.as_ptr().write(1) };
    // SAFETY: from `alloc`, freed once.
    unsafe { e.free(p) };
}

#[test]
fn release_of_scattered_slabs_makes_one_call_per_run() {
    let e = engine(None);
    let class = ClassId(38); // two chunks per slab
    let mut v = Vec::new();
    e.alloc_batch(class, &mut v, 2 * 20).unwrap(); // 20 slabs, in address order
    v.sort();
    // Free every slab except slabs 5 and 12: runs 0..5, 6..12, 13..20 (plus the class spare).
    let keep: Vec<_> = v[10..12].iter().chain(&v[24..26]).copied().collect();
    let free: Vec<_> = v.iter().filter(|p| !keep.contains(p)).copied().collect();
    // SAFETY: from `alloc_batch` of this class, freed once.
    unsafe { e.free_batch(class, &free) };
    let r = e.release_all();
    assert_eq!(r.slabs, 18);
    assert_eq!(r.runs, 3);
    assert_eq!(r.munmap_calls, 3);
    assert_eq!(r.bytes_per_call(), 6 * MIB);
}

#[test]
fn reap_releases_a_spike_and_stops_churn() {
    let e = engine(None);
    let class = e.classes().class_for(2000).unwrap();
    let cps = e.classes().chunks_per_slab(class);
    let fill_free = |slabs: usize| {
        let mut v = Vec::new();
        e.alloc_batch(class, &mut v, slabs * cps).unwrap();
        // SAFETY: from `alloc_batch` of this class, freed once.
        unsafe { e.free_batch(class, &v) };
    };
    // A one-off spike goes back at the next reap.
    fill_free(100);
    let r = e.reap();
    assert_eq!(r.slabs, 100);
    assert_eq!(e.stats().mapped_bytes, 0);

    // Fill/free cycles: after the first one or two, no more mmap/munmap.
    let mut calls = Vec::new();
    for _ in 0..12 {
        fill_free(32);
        e.reap();
        let s = e.stats();
        calls.push(s.mmap_calls + s.munmap_calls);
    }
    assert!(calls[3..].windows(2).all(|w| w[0] == w[1]), "{calls:?}");
    let s = e.stats();
    assert!(s.retention_target_slabs >= 32, "{s}");
    assert!(s.mapped_bytes >= 32 * MIB);

    // When the demand stops, the retained slabs decay back to the OS.
    for _ in 0..40 {
        e.reap();
    }
    let s = e.stats();
    assert_eq!(s.retention_target_slabs, 0, "{s}");
    assert_eq!(s.mapped_bytes, 0, "{s}");
}

#[test]
fn demand_dropped_releases_retained_slabs_at_the_next_reap() {
    let c = Config::new(SizeClasses::memcached_default()).retained_slabs(2, None);
    let e = SlabEngine::new(c).unwrap();
    let class = ClassId(0);
    let cps = e.classes().chunks_per_slab(class);
    let fill_free = |slabs: usize| {
        let mut v = Vec::new();
        e.alloc_batch(class, &mut v, slabs * cps).unwrap();
        // SAFETY: from `alloc_batch` of this class, freed once.
        unsafe { e.free_batch(class, &v) };
    };
    // Cycles teach the pool to keep about 16 slabs.
    for _ in 0..6 {
        fill_free(16);
        e.reap();
    }
    let before = e.stats();
    assert!(before.retention_target_slabs >= 16, "{before}");
    assert!(before.pooled_slabs >= 16, "{before}");
    e.demand_dropped();
    let r = e.reap();
    let s = e.stats();
    assert_eq!(s.demand_drops, 1);
    assert_eq!(s.retention_target_slabs, 2, "the floor holds: {s}");
    assert_eq!(s.pooled_slabs, 2, "{s}");
    assert_eq!(r.slabs, before.pooled_slabs - 2);
}

#[test]
fn retention_floor_and_cap() {
    let c = Config::new(SizeClasses::memcached_default()).retained_slabs(4, Some(6));
    let e = SlabEngine::new(c).unwrap();
    let class = ClassId(0);
    let cps = e.classes().chunks_per_slab(class);
    for _ in 0..5 {
        let mut v = Vec::new();
        e.alloc_batch(class, &mut v, 20 * cps).unwrap();
        // SAFETY: from `alloc_batch` of this class, freed once.
        unsafe { e.free_batch(class, &v) };
        e.reap();
        let s = e.stats();
        assert!((4..=6).contains(&s.retention_target_slabs), "{s}");
        assert!(s.pooled_slabs <= 6 && s.pooled_slabs >= 4, "{s}");
    }
}

#[test]
fn for_each_slab_walks_used_slabs() {
    let e = engine(None);
    let class = e.classes().class_for(500).unwrap();
    let cps = e.classes().chunks_per_slab(class);
    let mut v = Vec::new();
    e.alloc_batch(class, &mut v, cps + 7).unwrap();
    let mut seen = Vec::new();
    e.for_each_slab(class, |base, chunks| seen.push((base, chunks)));
    seen.sort();
    assert_eq!(seen.len(), 2);
    let carved: usize = seen.iter().map(|s| s.1).sum();
    assert_eq!(carved, cps + 7);
    for p in &v {
        assert!(seen.iter().any(|(b, _)| {
            let off = (p.as_ptr() as usize).wrapping_sub(b.as_ptr() as usize);
            off < e.slab_size()
        }));
    }
}

#[test]
fn frees_from_other_threads() {
    let e = engine(Some(256 * MIB));
    let classes: Vec<ClassId> = [64usize, 200, 1000, 9000]
        .iter()
        .map(|&s| e.classes().class_for(s).unwrap())
        .collect();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<(ClassId, usize)>>();
        let e = &e;
        let classes = &classes;
        for t in 0..2 {
            let tx = tx.clone();
            s.spawn(move || {
                for round in 0..50 {
                    let class = classes[(t + round) % classes.len()];
                    let mut v = Vec::new();
                    e.alloc_batch(class, &mut v, 500).unwrap();
                    for p in &v {
                        // SAFETY: our chunk, at least 8 bytes.
                        unsafe { p.as_ptr().cast::<u64>().write_unaligned(p.as_ptr() as u64) };
                    }
                    tx.send(
                        v.into_iter()
                            .map(|p| (class, p.as_ptr() as usize))
                            .collect(),
                    )
                    .unwrap();
                }
            });
        }
        drop(tx);
        s.spawn(move || {
            for batch in rx {
                for (class, addr) in batch {
                    let p = e.ptr_at(e.offset_of(addr as *const u8));
                    // SAFETY: written by the allocating thread; the channel orders it before us.
                    let stored = unsafe { p.as_ptr().cast::<u64>().read_unaligned() };
                    assert_eq!(stored, addr as u64);
                    assert_eq!(e.class_of(p.as_ptr()), Some(class));
                    // SAFETY: each chunk is sent once and freed once.
                    unsafe { e.free(p) };
                }
            }
        });
    });
    let s = e.stats();
    check_identities(&s);
    assert!(s.classes.iter().all(|c| c.used_chunks == 0));
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { class: u16, n: usize },
    Free { pick: usize, n: usize },
    Reap,
    ReleaseAll,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..39, 1usize..3000).prop_map(|(class, n)| Op::Alloc { class, n }),
        4 => (any::<usize>(), 1usize..3000).prop_map(|(pick, n)| Op::Free { pick, n }),
        1 => Just(Op::Reap),
        1 => Just(Op::ReleaseAll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Random operation sequences against a model: live chunks never overlap, pointer -> class
    /// round-trips, counts match the model, accounting identities hold, the limit holds.
    #[test]
    fn model_check(ops in prop::collection::vec(arb_op(), 1..40), limit_mib in 4usize..48) {
        let e = engine(Some(limit_mib * MIB));
        let mut live: Vec<(ClassId, NonNull<u8>)> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc { class, n } => {
                    let class = ClassId(class);
                    let mut v = Vec::new();
                    match e.alloc_batch(class, &mut v, n) {
                        Ok(k) => prop_assert!(k >= 1 && k <= n && k == v.len()),
                        Err(err) => {
                            prop_assert!(matches!(err, Error::LimitReached { .. }), "{}", err);
                            prop_assert!(v.is_empty());
                        }
                    }
                    for p in v {
                        prop_assert_eq!(e.class_of(p.as_ptr()), Some(class));
                        live.push((class, p));
                    }
                }
                Op::Free { pick, n } => {
                    for _ in 0..n.min(live.len()) {
                        let (_, p) = live.swap_remove(pick % live.len());
                        // SAFETY: a live chunk from this engine, removed from `live` so freed once.
                        unsafe { e.free(p) };
                    }
                }
                Op::Reap => { e.reap(); }
                Op::ReleaseAll => {
                    e.release_all();
                    let s = e.stats();
                    prop_assert_eq!(s.pooled_slabs, 0);
                    prop_assert!(s.classes.iter().all(|c| c.empty_slabs == 0));
                }
            }
            let s = e.stats();
            check_identities(&s);
            for c in &s.classes {
                let n = live.iter().filter(|(k, _)| *k == c.class).count();
                prop_assert_eq!(c.used_chunks, n);
            }
        }
        let mut spans: Vec<(usize, usize)> = live
            .iter()
            .map(|(c, p)| (p.as_ptr() as usize, e.classes().chunk_size(*c)))
            .collect();
        spans.sort();
        for w in spans.windows(2) {
            prop_assert!(w[0].0 + w[0].1 <= w[1].0);
        }
        for (_, p) in live {
            // SAFETY: live chunks from this engine, each freed once.
            unsafe { e.free(p) };
        }
        e.release_all();
        prop_assert_eq!(e.stats().mapped_bytes, 0);
    }
}

/// Workers allocate, tag, verify and free chunks of several classes under a memory limit while
/// another thread keeps reaping and releasing: no chunk is handed out twice, no live chunk is
/// unmapped (a use would fault) or overwritten, and the books balance at the end.
#[test]
fn release_races_with_allocation() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let e = engine(Some(48 * MIB));
    let stop = AtomicBool::new(false);
    let classes: Vec<ClassId> = [80usize, 700, 5000, 60_000]
        .iter()
        .map(|&s| e.classes().class_for(s).unwrap())
        .collect();
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for t in 0..3u64 {
            let (e, classes) = (&e, &classes);
            workers.push(s.spawn(move || {
                let mut held: Vec<(ClassId, NonNull<u8>, u64)> = Vec::new();
                let mut v = Vec::new();
                for round in 0..300u64 {
                    let class = classes[((t + round) % classes.len() as u64) as usize];
                    v.clear();
                    // The limit may be reached while others hold memory; that is fine.
                    let _ = e.alloc_batch(class, &mut v, 64 + (round as usize % 7) * 100);
                    for &p in &v {
                        let tag = (t << 56) | (round << 24) | (p.as_ptr() as u64 & 0xFF_FFFF);
                        // SAFETY: our chunk, at least 8 bytes.
                        unsafe { p.as_ptr().cast::<u64>().write_unaligned(tag) };
                        held.push((class, p, tag));
                    }
                    // Free about half, oldest first, after checking their tags.
                    let n = held.len() / 2 + usize::from(round % 3 == 0) * held.len() / 2;
                    for (class, p, tag) in held.drain(..n) {
                        // SAFETY: our live chunk.
                        let got = unsafe { p.as_ptr().cast::<u64>().read_unaligned() };
                        assert_eq!(got, tag, "chunk overwritten or handed out twice");
                        // SAFETY: freed once, not used after.
                        unsafe { e.free_batch(class, &[p]) };
                    }
                }
                for (class, p, tag) in held {
                    // SAFETY: our live chunk.
                    let got = unsafe { p.as_ptr().cast::<u64>().read_unaligned() };
                    assert_eq!(got, tag);
                    // SAFETY: freed once.
                    unsafe { e.free_batch(class, &[p]) };
                }
            }));
        }
        let (e, stop) = (&e, &stop);
        s.spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if i % 4 == 3 {
                    e.release_all();
                } else {
                    e.reap();
                }
                let s = e.stats();
                assert!(s.mapped_bytes <= 48 * MIB);
                i += 1;
                std::thread::yield_now();
            }
        });
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let s = e.stats();
    check_identities(&s);
    assert!(s.classes.iter().all(|c| c.used_chunks == 0));
    // The reaper really released memory while the workers ran.
    assert!(s.released_slabs > 0 && s.munmap_calls > 0, "{s}");
    e.release_all();
    assert_eq!(e.stats().mapped_bytes, 0);
}

/// Someone else maps into a hole the engine punched: the engine must skip those slots when it
/// maps again, and must not unmap the foreign mapping, even when it is dropped.
#[test]
fn foreign_mapping_in_a_hole_is_left_alone() {
    let e = engine(None);
    let class = ClassId(38); // two chunks per slab
    let mut v = Vec::new();
    e.alloc_batch(class, &mut v, 2 * 8).unwrap(); // slots 0..8
                                                  // SAFETY: from `alloc_batch` of this class, freed once.
    unsafe { e.free_batch(class, &v) };
    assert_eq!(e.release_all().slabs, 8);
    let (base, _) = e.reservation();
    let len = 2 * MIB;
    // SAFETY: an anonymous mapping into the engine's hole at `base`; NOREPLACE touches nothing
    // that is mapped.
    let foreign = unsafe {
        libc::mmap(
            base.as_ptr().cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    assert_eq!(foreign, base.as_ptr().cast(), "the hole was free");
    let marker = foreign.cast::<u64>();
    // SAFETY: our own fresh mapping.
    unsafe { marker.write(0x5EED_0003) };
    let mut v = Vec::new();
    e.alloc_batch(class, &mut v, 2 * 8).unwrap();
    for p in &v {
        let off = e.offset_of(p.as_ptr());
        assert!(
            off >= len,
            "chunk at offset {off} inside the foreign mapping"
        );
        // SAFETY: our chunk.
        unsafe { p.as_ptr().write(1) };
    }
    // SAFETY: the foreign mapping is still ours and untouched by the engine.
    assert_eq!(unsafe { marker.read() }, 0x5EED_0003);
    // SAFETY: from `alloc_batch`, freed once.
    unsafe { e.free_batch(class, &v) };
    drop(e);
    // SAFETY: the engine's drop must have left this mapping in place.
    assert_eq!(unsafe { marker.read() }, 0x5EED_0003);
    // SAFETY: our own mapping, no longer used.
    assert_eq!(unsafe { libc::munmap(foreign, len) }, 0);
}

#[test]
fn alloc_batch_takes_what_the_limit_allows() {
    let e = engine(Some(4 * MIB));
    let class = e.classes().class_for(100).unwrap();
    let mut v = Vec::new();
    // "As many as possible": stops at the limit without failing, then fails when none is left.
    let n = e.alloc_batch(class, &mut v, usize::MAX).unwrap();
    assert_eq!(n, 4 * e.classes().chunks_per_slab(class));
    assert!(matches!(
        e.alloc_batch(class, &mut v, usize::MAX),
        Err(Error::LimitReached { .. })
    ));
    assert_eq!(e.alloc_batch(class, &mut v, 0).unwrap(), 0);
    // SAFETY: from `alloc_batch` of this class, freed once.
    unsafe { e.free_batch(class, &v) };
}

#[test]
fn draining_slabs_empty_into_fuller_ones() {
    let e = engine(None);
    let class = e.classes().class_for(500).unwrap();
    let cps = e.classes().chunks_per_slab(class);
    let cs = e.classes().chunk_size(class);
    let mut v = Vec::new();
    e.alloc_batch(class, &mut v, 10 * cps).unwrap();
    // Free every other chunk: ten slabs, half full.
    let (keep, free): (Vec<_>, Vec<_>) = v.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let free: Vec<_> = free.into_iter().map(|(_, &p)| p).collect();
    let mut live: Vec<_> = keep.into_iter().map(|(_, &p)| p).collect();
    // SAFETY: from `alloc_batch` of this class, freed once.
    unsafe { e.free_batch(class, &free) };
    assert_eq!(e.stats().classes[class.index()].slabs, 10);
    // Too few slabs, or fuller than asked: nothing is picked.
    assert!(e.begin_drain(class, 11, 0.75, usize::MAX).is_empty());
    assert!(e.begin_drain(class, 4, 0.4, usize::MAX).is_empty());
    let picked = e.begin_drain(class, 4, 0.75, usize::MAX);
    // Five slabs hold every live chunk, plus one spare: four are picked.
    assert_eq!(picked.len(), 4);
    let in_picked = |p: *const u8| {
        picked
            .iter()
            .any(|d| (p as usize).wrapping_sub(d.base.as_ptr() as usize) < cps * cs)
    };
    let mut moved = 0;
    for p in live.iter_mut() {
        if !in_picked(p.as_ptr()) {
            continue;
        }
        let dest = e.alloc_in_place(class).expect("room in the kept slabs");
        assert!(
            !in_picked(dest.as_ptr()),
            "a chunk of a draining slab was handed out"
        );
        // SAFETY: `p` is a live chunk of this class, freed once; `dest` replaces it.
        unsafe { e.free_batch(class, &[*p]) };
        *p = dest;
        moved += 1;
    }
    assert_eq!(moved, picked.iter().map(|d| d.used).sum::<usize>());
    for d in &picked {
        assert!(e.end_drain(class, d.base), "the slab emptied");
    }
    let s = e.stats();
    let c = &s.classes[class.index()];
    assert_eq!(c.used_chunks, live.len());
    // Four slabs emptied: one stays as the class's spare, three went to the pool.
    assert_eq!(c.slabs, 7, "{s}");
    assert_eq!(c.empty_slabs, 1);
    assert_eq!(s.pooled_slabs, 3);
    // Nothing sparse is left to pick.
    assert!(e.begin_drain(class, 4, 0.75, usize::MAX).is_empty());
    // SAFETY: every chunk in `live` is allocated and freed once.
    unsafe { e.free_batch(class, &live) };
}

#[test]
fn a_released_spare_serves_another_class_at_the_limit() {
    let slab = SizeClasses::memcached_default().slab_size();
    let e = engine(Some(2 * slab));
    let a = e.classes().class_for(500).unwrap();
    let b = e.classes().class_for(5000).unwrap();
    let cps = e.classes().chunks_per_slab(a);
    let mut v = Vec::new();
    e.alloc_batch(a, &mut v, 2 * cps).unwrap();
    assert_eq!(v.len(), 2 * cps);
    // Each slab reports every chunk carved; the second loses three.
    let tail = v.split_off(2 * cps - 3);
    // SAFETY: from `alloc_batch` of class `a`, freed once.
    unsafe { e.free_batch(a, &tail) };
    let mut usage = Vec::new();
    e.for_each_slab_usage(a, |base, carved, used| usage.push((base, carved, used)));
    usage.sort_unstable_by_key(|&(_, _, used)| std::cmp::Reverse(used));
    assert_eq!(
        usage.iter().map(|&(_, c, u)| (c, u)).collect::<Vec<_>>(),
        [(cps, cps), (cps, cps - 3)]
    );
    // Empty the second slab: class `a` keeps it as its spare, and `b` finds no memory.
    let (second, first): (Vec<NonNull<u8>>, Vec<NonNull<u8>>) = v
        .iter()
        .partition(|p| (p.as_ptr() as usize).wrapping_sub(usage[1].0.as_ptr() as usize) < slab);
    // SAFETY: as above.
    unsafe { e.free_batch(a, &second) };
    let s = e.stats();
    check_identities(&s);
    assert_eq!(s.classes[a.index()].empty_slabs, 1);
    assert_eq!(s.pooled_slabs, 0);
    assert!(matches!(e.alloc(b), Err(Error::LimitReached { .. })));
    // The spare goes to the pool (once), where `b` takes it.
    assert!(!e.release_spare(b));
    assert!(e.release_spare(a));
    assert!(!e.release_spare(a));
    let s = e.stats();
    check_identities(&s);
    assert_eq!((s.classes[a.index()].slabs, s.pooled_slabs), (1, 1));
    let p = e.alloc(b).expect("the released slab");
    assert_eq!(e.class_of(p.as_ptr()), Some(b));
    check_identities(&e.stats());
    // SAFETY: every chunk is allocated and freed once.
    unsafe {
        e.free_batch(b, &[p]);
        e.free_batch(a, &first);
    }
}
