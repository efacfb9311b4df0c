//! slab-core as the program's `#[global_allocator]`: small allocations come from slabs through
//! per-thread magazines, large ones from the system allocator.
//!
//! Run with `cargo run --release -p slab-core --example global_alloc`. It builds strings,
//! vectors and a hash map on two threads, then prints how many chunks the slabs served and the
//! engine's accounting, and checks that it got every chunk back after the threads exited.

use std::collections::HashMap;

use slab_core::global::SlabGlobalAlloc;

#[global_allocator]
static GLOBAL: SlabGlobalAlloc = SlabGlobalAlloc::new();

fn work(seed: u64) -> u64 {
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    for i in 0..20_000u64 {
        let key = format!("key-{}", (i * 7919 + seed) % 5000);
        map.entry(key).or_default().push(i);
    }
    // A large buffer goes to the system allocator.
    let big = vec![seed; 1 << 20];
    map.values().map(|v| v.len() as u64).sum::<u64>() + big[12345] - seed
}

fn main() {
    let before = GLOBAL.allocator().expect("slab allocator").stats();
    let handles: Vec<_> = (0..2)
        .map(|t| std::thread::spawn(move || work(t)))
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 40_000);
    let a = GLOBAL.allocator().expect("slab allocator");
    a.flush_thread_cache();
    let s = a.stats();
    let served: u64 = s.classes.iter().map(|c| c.exchanges).sum();
    println!("items counted: {total}");
    println!(
        "slab chunks live now: {} (before: {}), depot exchanges: {served}",
        s.live_chunks(),
        before.live_chunks()
    );
    print!("{s}");
    let r = a.reap();
    println!("{r}");
    assert!(
        s.engine.mapped_bytes > 0,
        "small allocations came from slabs"
    );
}
