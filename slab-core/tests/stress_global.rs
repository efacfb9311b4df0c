//! `SlabGlobalAlloc` as this test binary's global allocator: threads build and drop strings,
//! vectors and maps (small allocations from slabs, large ones from the system, reallocations
//! across both), hand objects to other threads to drop, and exit. The allocator's own
//! bookkeeping allocates through the same global allocator, so this also checks that nothing
//! recurses or deadlocks, and that exited threads leave no chunks in their magazines.

use std::collections::HashMap;
use std::sync::mpsc;

use slab_core::global::SlabGlobalAlloc;

#[global_allocator]
static GLOBAL: SlabGlobalAlloc = SlabGlobalAlloc::new();

const THREADS: usize = 2;

fn churn(seed: u64) -> (Vec<String>, u64) {
    let mut map: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut kept = Vec::new();
    let mut sum = 0u64;
    for i in 0..20_000u64 {
        let k = (i * 7919 + seed) % 3000;
        let v = map.entry(k).or_default();
        // Grows through many size classes, then past the slab limit into the system allocator.
        v.extend_from_slice(&i.to_le_bytes());
        if v.len() > 40_000 {
            sum += v.iter().map(|&b| b as u64).sum::<u64>();
            map.remove(&k);
        }
        if i % 10 == 0 {
            kept.push(format!("{seed}-{i}"));
        }
    }
    sum += map.values().map(|v| v.len() as u64).sum::<u64>();
    (kept, sum)
}

#[test]
fn threads_allocate_free_across_threads_and_exit_clean() {
    // This thread's own magazines exist from here on (the test harness's main thread may
    // hold some too): the workers must add none that outlive them.
    let warm = std::hint::black_box(String::from("a heap allocation of this thread"));
    let before = GLOBAL.allocator().expect("slab allocator").stats();
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let handles: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let (kept, sum) = churn(t);
                // The strings are dropped by another thread.
                tx.send(kept).unwrap();
                sum
            })
        })
        .collect();
    drop(tx);
    let dropper = std::thread::spawn(move || {
        let mut n = 0;
        for v in rx {
            for s in &v {
                assert!(s.contains('-'));
            }
            n += v.len();
        }
        n
    });
    let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(dropper.join().unwrap(), THREADS * 2000);
    // Every thread computed the same kind of result, so no value was corrupted by a chunk
    // handed out twice (the sums differ only by the seed's key pattern).
    assert!(sums.iter().all(|&s| s > 0));
    let a = GLOBAL.allocator().expect("slab allocator");
    a.flush_thread_cache();
    let s = a.stats();
    // The workers and the dropper have exited (joined natively, so their thread-local
    // destructors ran): they flushed their magazines and no longer count.
    assert_eq!(s.threads, before.threads, "{s}");
    // Slabs served the small allocations.
    assert!(s.engine.mapped_bytes > 0);
    let used: usize = s.engine.classes.iter().map(|c| c.used_chunks).sum();
    assert!(used > 0);
    // What is live now is this thread's own few allocations plus what existed before: the
    // workers' maps and vectors are gone.
    assert!(
        s.live_chunks() <= before.live_chunks() + 256,
        "live before {} after {}",
        before.live_chunks(),
        s.live_chunks()
    );
    drop(warm);
    // And a reap gives the cached chunks back.
    a.reap();
    a.reap();
    let after = a.stats();
    assert!(after.magazine_chunks() <= s.magazine_chunks());
    assert!(after.engine.mapped_bytes <= s.engine.mapped_bytes);
}
