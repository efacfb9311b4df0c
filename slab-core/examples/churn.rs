//! Fills 64 MiB with small objects and frees them, ROUNDS times (default 10), calling
//! `reap()` between rounds the way a program's periodic reaper would. Prints the engine's
//! mmap + munmap call count at the end: with adaptive retention it is the same for 10 rounds
//! as for 100.
//!
//! ```text
//! cargo run --release -p slab-core --example churn -- 100
//! strace -f -c -e trace=mmap,munmap target/release/examples/churn 100
//! ```

use std::ptr::NonNull;

use slab_core::engine::size_class::{ClassId, SizeClasses};
use slab_core::engine::{Config, SlabEngine};

fn main() -> Result<(), slab_core::Error> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(10, |a| a.parse().expect("ROUNDS"));
    let verbose = std::env::args().any(|a| a == "-v");
    let engine = SlabEngine::new(Config::new(SizeClasses::memcached_default()))?;
    let classes: Vec<ClassId> = [100usize, 250, 600, 2000]
        .iter()
        .map(|&s| engine.classes().class_for(s).unwrap())
        .collect();
    let target = 64 << 20;
    // Reused across rounds so the pointer storage itself does not churn the C allocator.
    let mut held: Vec<Vec<NonNull<u8>>> = vec![Vec::new(); classes.len()];
    for round in 0..rounds {
        // Fill: 64 MiB of chunks, spread over the classes.
        let mut bytes = 0;
        let mut i = 0;
        while bytes < target {
            let k = i % classes.len();
            let start = held[k].len();
            let n = engine.alloc_batch(classes[k], &mut held[k], 4096)?;
            let size = engine.classes().chunk_size(classes[k]);
            for p in &held[k][start..] {
                // SAFETY: a chunk of `size` bytes we own.
                unsafe { p.as_ptr().write_bytes(round as u8, size.min(64)) };
            }
            bytes += n * size;
            i += 1;
        }
        // Free everything, then close the reap interval.
        for (k, v) in held.iter_mut().enumerate() {
            // SAFETY: every pointer came from `alloc_batch` of `classes[k]` and is freed once.
            unsafe { engine.free_batch(classes[k], v) };
            v.clear();
        }
        let r = engine.reap();
        if verbose {
            let s = engine.stats();
            println!(
                "round {round:3}: mmap {} munmap {} mapped {} MiB target {} slabs; reap {r}",
                s.mmap_calls,
                s.munmap_calls,
                s.mapped_bytes >> 20,
                s.retention_target_slabs
            );
        }
    }
    let s = engine.stats();
    println!(
        "rounds {rounds}: mmap calls {} + munmap calls {} = {}; mapped {} MiB, retained {} slabs",
        s.mmap_calls,
        s.munmap_calls,
        s.mmap_calls + s.munmap_calls,
        s.mapped_bytes >> 20,
        s.pooled_slabs
    );
    Ok(())
}
