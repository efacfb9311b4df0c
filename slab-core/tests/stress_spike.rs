//! A one-off spike: a steady working set, then a burst of allocations far larger than it, all
//! freed again. One reap must bring the mapped memory back to what the working set needs and
//! the process's RSS back within 10% of its level before the spike. (Its own test binary: RSS
//! is per process.)

use std::ptr::NonNull;

use slab_core::engine::size_class::general_classes;
use slab_core::engine::Config;
use slab_core::magazine::{MagazineConfig, SlabAllocator};

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn one_reap_after_a_spike_returns_the_memory() {
    let a =
        SlabAllocator::with_magazines(Config::new(general_classes()), MagazineConfig::default())
            .unwrap();
    // The steady working set: 40,000 objects of 16-1024 bytes, every byte touched.
    let mut seed = 12345u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut keep: Vec<(NonNull<u8>, usize)> = Vec::new();
    for _ in 0..40_000 {
        let size = 16 + (next() % 1009) as usize;
        let p = a.alloc(size).unwrap();
        // SAFETY: a fresh chunk of at least `size` bytes.
        unsafe { p.as_ptr().write_bytes(0x5a, size) };
        keep.push((p, size));
    }
    let spike_objects = (256 << 20) / 1024;
    let mut spike = Vec::with_capacity(spike_objects);
    a.reap();
    let mapped_before = a.stats().engine.mapped_bytes;
    let rss_before = rss_bytes();
    // The spike: 256 MiB of 1 KiB objects, touched, then all freed.
    for _ in 0..spike_objects {
        let p = a.alloc(1024).unwrap();
        // SAFETY: a fresh chunk of 1024 bytes.
        unsafe { p.as_ptr().write_bytes(0xa5, 1024) };
        spike.push(p);
    }
    let peak = a.stats().engine.mapped_bytes;
    assert!(peak >= mapped_before + (256 << 20));
    for p in spike.drain(..) {
        // SAFETY: allocated above with 1024 bytes, freed once.
        unsafe { a.dealloc(p, 1024) };
    }
    // Memory in magazines stays bounded even before the reap.
    let s = a.stats();
    assert!(
        s.magazine_bytes() <= (4 << 20) + 2 * (64 << 10) * s.classes.len(),
        "{s}"
    );
    let report = a.reap();
    let s = a.stats();
    assert!(report.release.bytes >= 250 << 20, "{report}");
    assert!(
        s.engine.mapped_bytes <= mapped_before + (1 << 20),
        "mapped {} before the spike, {} after one reap",
        mapped_before,
        s.engine.mapped_bytes
    );
    let rss_after = rss_bytes();
    assert!(
        rss_after as f64 <= rss_before as f64 * 1.10,
        "RSS {rss_before} before the spike, {rss_after} after one reap"
    );
    // The working set is intact.
    for (p, size) in keep {
        // SAFETY: allocated above with `size` bytes and not freed yet.
        let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
        assert!(bytes.iter().all(|&b| b == 0x5a));
        // SAFETY: freed once.
        unsafe { a.dealloc(p, size) };
    }
}
