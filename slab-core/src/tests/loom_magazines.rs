//! Loom models of the magazine layer on the real engine (its locks and atomics are loom's
//! under `cfg(loom)`; its `mmap` calls are plain system calls outside the model).
//!
//! Each model checks, in every interleaving loom explores: no chunk is handed out twice (the
//! addresses live at once are distinct), and at the end every chunk is accounted for (the
//! engine's used chunks equal those cached in magazines plus those still live).

use std::collections::HashSet;
use std::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;

use crate::engine::size_class::SizeClasses;
use crate::engine::Config;
use crate::magazine::{MagazineConfig, SlabAllocator};

/// A tiny allocator: two classes, 256 KiB slabs, a 4 MiB limit (the engine maps 2 MiB at a
/// time, so a second mapping fits while a reap is still unmapping), 8 MiB reserved, magazines
/// of `rounds` rounds that never grow, and a depot that holds at most `depot` chunks per class.
fn allocator(rounds: usize, depot: usize) -> SlabAllocator {
    let classes = SizeClasses::from_list(&[64, 128], 8, 256 << 10).unwrap();
    let config = Config::new(classes)
        .memory_limit(4 << 20)
        .reserve_bytes(8 << 20);
    let mags = MagazineConfig::default()
        .initial_rounds(rounds)
        .max_rounds(rounds)
        .max_depot_bytes(depot * 128);
    SlabAllocator::with_magazines(config, mags).unwrap()
}

/// Runs `f` under `loom::model`, and checks that loom explored more than one interleaving
/// (so the model's threads really interleave through the allocator's synchronisation).
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    loom::model(move || {
        r.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let n = runs.load(Ordering::Relaxed);
    eprintln!("{name}: {n} interleavings");
    assert!(n > 1, "{name}: only {n} interleaving explored");
}

fn addr(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize
}

fn ptr(a: usize) -> NonNull<u8> {
    NonNull::new(a as *mut u8).unwrap()
}

/// Waits until exited threads' thread-local destructors have flushed their magazines (a
/// join, in loom as with `std::thread::scope`, returns when the closure is done, before the
/// thread-local destructors run): until only the main thread holds magazines.
fn wait_flushed(a: &SlabAllocator) {
    while a.stats().threads > 1 {
        thread::yield_now();
    }
}

/// Every chunk is counted: used in the engine = cached in magazines + `live`.
fn assert_accounted(a: &SlabAllocator, live: usize) {
    a.flush_thread_cache();
    let s = a.stats();
    let used: usize = s.engine.classes.iter().map(|c| c.used_chunks).sum();
    assert_eq!(used, s.magazine_chunks() + live, "{s}");
    assert_eq!(s.classes.iter().map(|c| c.thread_chunks).sum::<usize>(), 0);
}

/// Two threads allocate and free enough to exchange magazines with the depot (one-round
/// magazines: every second operation visits it) while the main thread does the same.
#[test]
fn magazine_exchange_with_depot() {
    model("magazine_exchange_with_depot", || {
        let a = Arc::new(allocator(1, 4));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                thread::spawn(move || {
                    let p = a.alloc(64).unwrap();
                    let q = a.alloc(64).unwrap();
                    assert_ne!(p, q);
                    // SAFETY: allocated above with size 64, freed once.
                    unsafe {
                        a.dealloc(p, 64);
                        a.dealloc(q, 64);
                    }
                    let r = a.alloc(64).unwrap();
                    addr(r)
                })
            })
            .collect();
        let mine = a.alloc(64).unwrap();
        let mut live: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        live.push(addr(mine));
        a.flush_thread_cache();
        wait_flushed(&a);
        let set: HashSet<usize> = live.iter().copied().collect();
        assert_eq!(set.len(), live.len(), "a chunk was handed out twice");
        assert_accounted(&a, live.len());
        for p in live {
            // SAFETY: each was allocated with size 64 and is freed once.
            unsafe { a.dealloc(ptr(p), 64) };
        }
        assert_accounted(&a, 0);
    });
}

/// A chunk allocated on one thread is freed on another while the first keeps allocating.
#[test]
fn cross_thread_free() {
    model("cross_thread_free", || {
        let a = Arc::new(allocator(1, 4));
        let p = addr(a.alloc(128).unwrap());
        let q = addr(a.alloc(128).unwrap());
        let a2 = a.clone();
        let t = thread::spawn(move || {
            // SAFETY: allocated by the main thread with size 128; freed once, here.
            unsafe {
                a2.dealloc(ptr(p), 128);
                a2.dealloc(ptr(q), 128);
            }
        });
        let r = addr(a.alloc(128).unwrap());
        let s = addr(a.alloc(128).unwrap());
        t.join().unwrap();
        a.flush_thread_cache();
        wait_flushed(&a);
        assert_ne!(r, s);
        // The freed ones are reusable, the live ones are not handed out again.
        let u = addr(a.alloc(128).unwrap());
        assert!(u != r && u != s);
        assert_accounted(&a, 3);
        for x in [r, s, u] {
            // SAFETY: allocated above with size 128, freed once.
            unsafe { a.dealloc(ptr(x), 128) };
        }
        assert_accounted(&a, 0);
    });
}

/// A thread exits with chunks in its magazines (its thread-local destructor flushes them into
/// the depot) while the main thread allocates from the same class.
#[test]
fn thread_exit_flush_concurrent_with_alloc() {
    model("thread_exit_flush_concurrent_with_alloc", || {
        let a = Arc::new(allocator(2, 4));
        let a2 = a.clone();
        let t = thread::spawn(move || {
            let p = a2.alloc(64).unwrap();
            let q = a2.alloc(64).unwrap();
            // SAFETY: allocated above with size 64, freed once; the chunks stay in this
            // thread's magazines until it exits.
            unsafe {
                a2.dealloc(p, 64);
                a2.dealloc(q, 64);
            }
        });
        let x = addr(a.alloc(64).unwrap());
        let y = addr(a.alloc(64).unwrap());
        let z = addr(a.alloc(64).unwrap());
        t.join().unwrap();
        a.flush_thread_cache();
        wait_flushed(&a);
        let set: HashSet<usize> = [x, y, z].into_iter().collect();
        assert_eq!(set.len(), 3, "a chunk was handed out twice");
        // The exited thread holds nothing.
        assert_accounted(&a, 3);
        for p in [x, y, z] {
            // SAFETY: allocated above with size 64, freed once.
            unsafe { a.dealloc(ptr(p), 64) };
        }
        assert_accounted(&a, 0);
    });
}

/// A reap (depot working set, then the engine's reap and release) runs while another thread
/// allocates and frees.
#[test]
fn reap_concurrent_with_alloc() {
    model("reap_concurrent_with_alloc", || {
        let a = Arc::new(allocator(1, 4));
        // Something in the depot for the reap to find.
        let p = a.alloc(64).unwrap();
        let q = a.alloc(64).unwrap();
        // SAFETY: allocated above with size 64, freed once.
        unsafe {
            a.dealloc(p, 64);
            a.dealloc(q, 64);
        }
        a.flush_thread_cache();
        let a2 = a.clone();
        let t = thread::spawn(move || {
            let p = a2.alloc(64).unwrap();
            let q = a2.alloc(64).unwrap();
            assert_ne!(p, q);
            // SAFETY: allocated above with size 64, freed once.
            unsafe { a2.dealloc(p, 64) };
            addr(q)
        });
        a.reap();
        let q = t.join().unwrap();
        a.flush_thread_cache();
        wait_flushed(&a);
        assert_accounted(&a, 1);
        // SAFETY: allocated by the thread with size 64, freed once.
        unsafe { a.dealloc(ptr(q), 64) };
        a.reap();
        a.reap();
        let s = a.stats();
        assert!(s.engine.classes.iter().all(|c| c.used_chunks == 0), "{s}");
    });
}
