//! Allocates at least 256 MiB (or the MiB given as the first argument) of small objects across
//! several size classes, touches them, frees them all, releases the empty slabs to the OS and
//! prints the stats and the release report.
//!
//! ```text
//! cargo run --release -p slab-core --example drain [MIB]
//! strace -f -e trace=munmap target/release/examples/drain   # one munmap per contiguous run
//! ```

use std::ptr::NonNull;

use slab_core::engine::{Config, SlabEngine};
use slab_core::size_class::{ClassId, SizeClasses};

fn main() -> Result<(), slab_core::Error> {
    let mib: usize = std::env::args()
        .nth(1)
        .map_or(256, |a| a.parse().expect("MiB"));
    let target = mib << 20;
    let engine = SlabEngine::new(Config::new(SizeClasses::memcached_default()))?;
    let sizes = [64usize, 100, 150, 200, 300, 500, 800, 1200];
    let classes: Vec<ClassId> = sizes
        .iter()
        .map(|&s| engine.classes().class_for(s).unwrap())
        .collect();
    let mut held: Vec<Vec<NonNull<u8>>> = vec![Vec::new(); classes.len()];
    let mut objects = 0usize;
    let mut i = 0;
    while engine.stats().mapped_bytes < target {
        let k = i % classes.len();
        let class = classes[k];
        let start = held[k].len();
        let n = engine.alloc_batch(class, &mut held[k], 16 * 1024)?;
        let size = engine.classes().chunk_size(class);
        for p in &held[k][start..] {
            // SAFETY: a chunk of `size` bytes we own.
            unsafe { p.as_ptr().write_bytes(k as u8, size) };
        }
        objects += n;
        i += 1;
    }
    let full = engine.stats();
    println!("allocated {objects} objects in {} classes", classes.len());
    print!("{full}");

    for (k, v) in held.iter().enumerate() {
        // SAFETY: every pointer came from `alloc_batch` of `classes[k]` and is freed once.
        unsafe { engine.free_batch(classes[k], v) };
    }
    let report = engine.release_all();
    let after = engine.stats();
    println!("after free + release_all:");
    print!("{after}");
    println!("{report}");
    println!(
        "engine munmap calls: {} for {} MiB released ({:.1} MiB per call)",
        after.munmap_calls - full.munmap_calls,
        report.bytes >> 20,
        report.bytes as f64 / (1 << 20) as f64 / report.munmap_calls.max(1) as f64
    );
    assert_eq!(after.mapped_bytes, 0);
    Ok(())
}
