//! Allocates at least 256 MiB (or the MiB given as the first argument) of small objects across
//! several size classes, touches them, frees them all, releases the empty slabs to the OS and
//! prints the stats and the release report.
//!
//! ```text
//! cargo run --release -p slab-core --example drain [MIB] [--huge]
//! strace -f -e trace=munmap target/release/examples/drain   # one munmap per contiguous run
//! ```
//!
//! It also prints the minor page faults taken while filling: with `--huge` the 2 MiB-aligned
//! regions are advised for transparent huge pages and one fault maps 2 MiB instead of 4 KiB
//! (seed 003).

use std::ptr::NonNull;

use slab_core::engine::size_class::{ClassId, SizeClasses};
use slab_core::engine::{Config, SlabEngine};

/// Minor page faults of this process so far (`/proc/self/stat` field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_comm
        .split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), slab_core::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let huge = args.iter().any(|a| a == "--huge");
    let mib: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(256, |a| a.parse().expect("MiB"));
    let target = mib << 20;
    let engine = SlabEngine::new(Config::new(SizeClasses::memcached_default()).huge_pages(huge))?;
    let sizes = [64usize, 100, 150, 200, 300, 500, 800, 1200];
    let classes: Vec<ClassId> = sizes
        .iter()
        .map(|&s| engine.classes().class_for(s).unwrap())
        .collect();
    let mut held: Vec<Vec<NonNull<u8>>> = vec![Vec::new(); classes.len()];
    let mut objects = 0usize;
    let mut i = 0;
    let faults0 = minor_faults();
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
    let faults = minor_faults() - faults0;
    let full = engine.stats();
    println!(
        "allocated {objects} objects in {} classes; {faults} minor faults while filling \
         ({} KiB per fault, huge pages {})",
        classes.len(),
        full.mapped_bytes as u64 / 1024 / faults.max(1),
        if huge { "advised" } else { "not advised" }
    );
    print!("{full}");
    // Machine-readable, for scripts/check-examples.sh.
    println!("mapped_bytes_peak {}", full.mapped_bytes);

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
