//! The release path: one batched release (empty slabs sorted, coalesced into contiguous runs,
//! one `munmap` per run) against releasing the same slabs with one `munmap` each, and against
//! one `munmap` per 4 KiB page (seed 002's original problem), in one criterion group so the
//! ratios come from one run. Each pair is measured with the process
//! otherwise idle and with a second thread spinning on the other CPU, where every `munmap`
//! costs a TLB shootdown interrupt (REFERENCE.md section 2, seed 002).
//!
//! ```text
//! cargo bench -p peer-benches --bench release -- --warm-up-time 1 --measurement-time 5
//! ```
//!
//! Each iteration maps `SLABS` slabs (untimed), touches every page, frees every chunk so all
//! the slabs are empty, then times only the release.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use slab_core::engine::size_class::{ClassId, SizeClasses};
use slab_core::engine::{Config, SlabEngine};

/// 64 MiB of 1 MiB slabs per release.
const SLABS: usize = 64;

/// Maps `SLABS` slabs, touches every page, and empties them again (untimed setup).
fn fill_and_empty(engine: &SlabEngine, class: ClassId, chunks: &mut Vec<std::ptr::NonNull<u8>>) {
    let per_slab = engine.classes().chunks_per_slab(class);
    let size = engine.classes().chunk_size(class);
    chunks.clear();
    let mut got = 0;
    while got < SLABS * per_slab {
        got += engine
            .alloc_batch(class, chunks, SLABS * per_slab - got)
            .expect("within limit");
    }
    for p in chunks.iter() {
        for off in (0..size).step_by(4096) {
            // SAFETY: `off < size`, inside a chunk we own.
            unsafe { p.as_ptr().add(off).write(1) };
        }
    }
    // SAFETY: every chunk came from `alloc_batch` of `class` and is freed once.
    unsafe { engine.free_batch(class, chunks) };
}

/// The release path measured.
#[derive(Clone, Copy)]
enum How {
    /// `release_all`: one munmap per contiguous run.
    Batched,
    /// One munmap per 1 MiB slab.
    PerSlab,
    /// One munmap per 4 KiB page (seed 002's original problem).
    PerPage,
}

fn run(engine: &SlabEngine, iters: u64, how: How) -> Duration {
    let class = engine
        .classes()
        .class_for(engine.classes().max_chunk())
        .unwrap();
    let mut chunks = Vec::new();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fill_and_empty(engine, class, &mut chunks);
        let t = Instant::now();
        let report = match how {
            How::Batched => engine.release_all(),
            How::PerSlab => engine.release_all_unbatched(),
            How::PerPage => engine.release_all_page_by_page(),
        };
        total += t.elapsed();
        assert_eq!(report.slabs, SLABS);
        black_box(report);
    }
    total
}

fn release(c: &mut Criterion) {
    let engine = SlabEngine::new(
        Config::new(SizeClasses::memcached_default()).memory_limit((4 * SLABS) << 20),
    )
    .expect("engine");
    let mut g = c.benchmark_group("release_64MiB");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes((SLABS << 20) as u64));
    for busy in [false, true] {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            if busy {
                // A second thread of this process running on the other CPU: each munmap must
                // interrupt it to flush its TLB.
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                });
            }
            let tag = if busy { "busy_peer" } else { "idle" };
            for (name, how) in [
                ("batched_coalesced", How::Batched),
                ("one_munmap_per_slab", How::PerSlab),
                ("one_munmap_per_page", How::PerPage),
            ] {
                g.bench_function(format!("{name}/{tag}"), |b| {
                    b.iter_custom(|iters| run(&engine, iters, how))
                });
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    g.finish();
}

criterion_group!(benches, release);
criterion_main!(benches);
