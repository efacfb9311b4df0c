//! Criterion benchmarks of the allocator workloads (those of `alloc-compare`, the false-sharing
//! shapes included), with slab-core and its peers (glibc,
//! mimalloc, jemalloc, and sharded-slab where the workload fits) side by side in each group.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use peer_benches::shapes::{handoff, scratch, sh6, Sharing, BATCH};
use peer_benches::{
    larson, make, mixed, mixed_sizes, pair64, pair64_sharded, prodcons64, prodcons64_sharded,
    Allocator, ALLOCATORS,
};

/// A workload on `sharded_slab::Slab<[u8; 64]>`: `(slab, iterations) -> elapsed`.
type ShardedRun<'a> = &'a dyn Fn(&sharded_slab::Slab<[u8; 64]>, u64) -> Duration;

fn byte_allocators() -> Vec<Box<dyn Allocator>> {
    ALLOCATORS.iter().filter_map(|n| make(n)).collect()
}

/// Runs `f(iters)` and returns its measured time (criterion's `iter_custom`).
fn bench_all(
    c: &mut Criterion,
    group: &str,
    ops: u64,
    f: impl Fn(&dyn Allocator, u64) -> Duration,
    sharded: Option<ShardedRun<'_>>,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(ops));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
    for a in byte_allocators() {
        g.bench_function(a.name(), |b| b.iter_custom(|iters| f(&*a, iters)));
    }
    if let Some(s) = sharded {
        let slab = sharded_slab::Slab::new();
        g.bench_function("sharded-slab", |b| b.iter_custom(|iters| s(&slab, iters)));
    }
    g.finish();
}

fn workloads(c: &mut Criterion) {
    let sizes = mixed_sizes();
    const PAIRS: u64 = 10_000;
    bench_all(
        c,
        "pair64",
        PAIRS,
        |a, iters| pair64(a, (iters * PAIRS) as usize),
        Some(&|s, iters| pair64_sharded(s, (iters * PAIRS) as usize)),
    );
    bench_all(
        c,
        "mixed10k",
        sizes.len() as u64,
        |a, iters| mixed(a, &sizes, iters as usize),
        None,
    );
    const OBJECTS: u64 = 100_000;
    bench_all(
        c,
        "prodcons64",
        OBJECTS,
        |a, iters| prodcons64(a, (iters * OBJECTS) as usize),
        Some(&|s, iters| prodcons64_sharded(s, (iters * OBJECTS) as usize)),
    );
    const STEPS: u64 = 5_000;
    bench_all(
        c,
        "larson",
        2 * STEPS,
        |a, iters| larson(a, iters as usize, STEPS as usize),
        None,
    );
    bench_all(
        c,
        "xmalloc",
        OBJECTS,
        |a, iters| handoff(a, 2, (iters * OBJECTS) as usize, None).elapsed,
        None,
    );
    // Two threads, three batches per round each.
    bench_all(
        c,
        "sh6bench",
        2 * 3 * BATCH as u64,
        |a, iters| sh6(a, 2, iters as usize).elapsed,
        None,
    );
    const ITERS: u64 = 2_000;
    for (name, sharing, padded) in [
        ("cache-scratch", Sharing::Passive, false),
        ("cache-scratch-pad64", Sharing::Passive, true),
        ("cache-thrash", Sharing::Active, false),
        ("cache-thrash-pad64", Sharing::Active, true),
    ] {
        bench_all(
            c,
            name,
            2 * ITERS,
            |a, iters| scratch(a, sharing, 2, (iters * ITERS) as usize, padded).elapsed,
            None,
        );
    }
}

criterion_group!(benches, workloads);
criterion_main!(benches);
