//! The engine's own count of mapped bytes must agree with the process's RSS (seed 001: the
//! process's accounting must not lie). RSS is per process, so this binary holds one test that
//! runs its phases in sequence.
#![cfg(not(miri))]

use std::ptr::NonNull;

use slab_core::engine::size_class::SizeClasses;
use slab_core::engine::{Config, SlabEngine};

const MIB: usize = 1 << 20;

/// Resident bytes of this process, from `/proc/self/statm`.
fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").expect("procfs");
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn within(measured: usize, expected: usize, tolerance: f64) -> bool {
    (measured as f64 - expected as f64).abs() <= expected as f64 * tolerance
}

/// Fills `slabs_per_class` whole slabs in each class with chunks of at most 4 KiB (so a slab's
/// unused tail never spans a whole page), touches every byte of every chunk, and compares the
/// growth of `mapped_bytes` with the growth of RSS; then frees, releases and compares again.
fn phase(huge_pages: bool) {
    let engine = SlabEngine::new(
        Config::new(SizeClasses::memcached_default())
            .memory_limit(512 * MIB)
            .huge_pages(huge_pages),
    )
    .unwrap();
    let classes: Vec<_> = [90usize, 100, 700, 1100, 3000, 4000]
        .iter()
        .map(|&s| engine.classes().class_for(s).unwrap())
        .collect();
    let slabs_per_class = 16;
    let total: usize = classes
        .iter()
        .map(|&c| engine.classes().chunks_per_slab(c) * slabs_per_class)
        .sum();
    // Touch the pointer storage before the baseline so only slab memory grows.
    let mut held: Vec<NonNull<u8>> = vec![NonNull::dangling(); total];
    held.clear();
    let mut batch = Vec::with_capacity(4096);

    let mapped0 = engine.stats().mapped_bytes;
    let rss0 = rss_bytes();
    for &class in &classes {
        let size = engine.classes().chunk_size(class);
        let want = engine.classes().chunks_per_slab(class) * slabs_per_class;
        let mut got = 0;
        while got < want {
            batch.clear();
            got += engine
                .alloc_batch(class, &mut batch, (want - got).min(4096))
                .unwrap();
            for &p in &batch {
                // SAFETY: a fresh chunk of `size` bytes that we own.
                unsafe { p.as_ptr().write_bytes(0xA5, size) };
            }
            held.extend_from_slice(&batch);
        }
    }
    let stats = engine.stats();
    let mapped = stats.mapped_bytes - mapped0;
    let rss = rss_bytes().saturating_sub(rss0);
    let expected = classes.len() * slabs_per_class * MIB;
    assert_eq!(mapped, expected, "{stats}");
    assert_eq!(stats.pooled_slabs, 0, "{stats}");
    assert!(
        within(rss, mapped, 0.05),
        "huge_pages={huge_pages}: RSS grew {rss} bytes, engine says {mapped} mapped"
    );
    if huge_pages {
        assert!(stats.madvise_calls > 0);
    }

    // Free everything and release: RSS drops by what the engine says it released.
    let rss1 = rss_bytes();
    for &p in &held {
        // SAFETY: every chunk in `held` came from this engine and is freed once.
        unsafe { engine.free(p) };
    }
    let report = engine.release_all();
    let dropped = rss1.saturating_sub(rss_bytes());
    assert_eq!(report.bytes, expected);
    assert_eq!(engine.stats().mapped_bytes, 0);
    assert!(
        within(dropped, report.bytes, 0.05),
        "huge_pages={huge_pages}: RSS dropped {dropped} bytes, engine released {}",
        report.bytes
    );
    println!(
        "huge_pages={huge_pages}: mapped +{mapped} RSS +{rss}; released {} RSS -{dropped}; {report}",
        report.bytes
    );
}

/// Fills `mib` MiB of one class, touching every chunk, frees it all and closes a reap interval.
fn fill_free_reap(engine: &SlabEngine, mib: usize, held: &mut Vec<NonNull<u8>>) {
    let class = engine.classes().class_for(1000).unwrap();
    let size = engine.classes().chunk_size(class);
    let want = engine.classes().chunks_per_slab(class) * mib;
    held.clear();
    while held.len() < want {
        engine.alloc_batch(class, held, want - held.len()).unwrap();
    }
    for &p in held.iter() {
        // SAFETY: a chunk of `size` bytes that we own.
        unsafe { p.as_ptr().write_bytes(1, size) };
    }
    // SAFETY: every chunk came from `alloc_batch` of `class` and is freed once.
    unsafe { engine.free_batch(class, held) };
    engine.reap();
}

/// A steady fill/free cycle keeps its slabs across reaps (no churn), while a one-off spike on
/// top goes back to the OS at the next reap: RSS returns within 10% of its pre-spike level.
fn spike() {
    let engine = SlabEngine::new(Config::new(SizeClasses::memcached_default())).unwrap();
    let mut held = Vec::with_capacity(1 << 20);
    held.resize(1 << 20, NonNull::dangling());
    for _ in 0..4 {
        fill_free_reap(&engine, 32, &mut held);
    }
    let steady = engine.stats();
    assert!(steady.mapped_bytes >= 32 * MIB, "{steady}");
    let rss_steady = rss_bytes();
    fill_free_reap(&engine, 32, &mut held);
    let s = engine.stats();
    assert_eq!(
        s.mmap_calls + s.munmap_calls,
        steady.mmap_calls + steady.munmap_calls
    );

    fill_free_reap(&engine, 256, &mut held);
    let after = engine.stats();
    let rss_after = rss_bytes();
    assert!(
        after.mapped_bytes <= steady.mapped_bytes + 2 * MIB,
        "{after}"
    );
    assert!(
        within(rss_after, rss_steady, 0.10),
        "after a 256 MiB spike and one reap RSS is {rss_after}, was {rss_steady} before"
    );
    println!("spike: RSS before {rss_steady}, after spike + reap {rss_after}; {after}");
}

#[test]
fn mapped_bytes_agree_with_rss() {
    phase(false);
    phase(true);
    spike();
}
