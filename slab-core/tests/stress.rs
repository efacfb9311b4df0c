//! Stress tests of the magazine layer with real threads: cross-thread frees, thread exits,
//! concurrent reaps and the memory limit. Every chunk is tagged with its owner and a sequence
//! number while live; a chunk handed out twice would show a foreign tag (or a duplicate
//! address in the live set), and at the end every chunk is counted through the stats.

use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use slab_core::engine::size_class::SizeClasses;
use slab_core::engine::Config;
use slab_core::magazine::{MagazineConfig, SlabAllocator};
use slab_core::Error;

const THREADS: usize = 2;

fn allocator(limit: usize, mags: MagazineConfig) -> SlabAllocator {
    let classes = SizeClasses::from_list(&[16, 64, 128, 512, 1024], 8, 64 << 10).unwrap();
    SlabAllocator::with_magazines(Config::new(classes).memory_limit(limit), mags).unwrap()
}

/// Sizes the workers cycle through (classes 16, 64, 64, 128, 512, 1024).
const SIZES: [usize; 6] = [16, 40, 64, 100, 500, 1000];

/// A live chunk: its address, the size it was allocated with and its tag.
#[derive(Clone, Copy, Debug)]
struct Live {
    addr: usize,
    size: usize,
    tag: u64,
}

fn tag_of(worker: usize, seq: u64) -> u64 {
    ((worker as u64 + 1) << 48) | seq
}

fn write_tag(p: NonNull<u8>, size: usize, tag: u64) {
    // SAFETY: `p` is a live chunk of at least `size >= 16` bytes owned by the caller.
    unsafe {
        p.as_ptr().cast::<u64>().write_unaligned(tag);
        p.as_ptr().add(size - 8).cast::<u64>().write_unaligned(!tag);
    }
}

fn check_tag(l: Live) {
    let p = l.addr as *const u8;
    // SAFETY: the chunk is live and owned by the caller.
    let (head, tail) = unsafe {
        (
            p.cast::<u64>().read_unaligned(),
            p.add(l.size - 8).cast::<u64>().read_unaligned(),
        )
    };
    assert_eq!(
        head, l.tag,
        "chunk {:#x} was overwritten by another owner",
        l.addr
    );
    assert_eq!(tail, !l.tag, "chunk {:#x} tail was overwritten", l.addr);
}

/// Every address in `set` once: records the live set and fails on a duplicate.
fn insert_live(set: &Mutex<HashSet<usize>>, addr: usize) {
    assert!(
        set.lock().unwrap().insert(addr),
        "chunk {addr:#x} handed out while live"
    );
}

fn remove_live(set: &Mutex<HashSet<usize>>, addr: usize) {
    assert!(
        set.lock().unwrap().remove(&addr),
        "chunk {addr:#x} freed twice"
    );
}

/// Producer/consumer pairs plus local churn: each worker allocates, keeps some chunks,
/// frees some of its own and sends the rest to the other worker, which frees them.
#[test]
fn cross_thread_frees_lose_nothing_and_duplicate_nothing() {
    let a = allocator(
        64 << 20,
        MagazineConfig::default()
            .initial_rounds(8)
            .max_rounds(64)
            .contention_threshold(2),
    );
    let live = Mutex::new(HashSet::new());
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Vec<Live>>()).unzip();
    let mut rxs: Vec<Option<mpsc::Receiver<Vec<Live>>>> = rxs.into_iter().map(Some).collect();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for w in 0..THREADS {
            let tx = txs[(w + 1) % THREADS].clone();
            let rx = rxs[w].take().unwrap();
            let (a, live) = (&a, &live);
            handles.push(s.spawn(move || {
                let mut mine: Vec<Live> = Vec::new();
                let mut seq = 0u64;
                for round in 0..1000 {
                    let mut batch = Vec::new();
                    for i in 0..100 {
                        let size = SIZES[(i + round) % SIZES.len()];
                        let p = a.alloc(size).unwrap();
                        seq += 1;
                        let l = Live {
                            addr: p.as_ptr() as usize,
                            size,
                            tag: tag_of(w, seq),
                        };
                        insert_live(live, l.addr);
                        write_tag(p, size, l.tag);
                        if i % 3 == 0 {
                            batch.push(l);
                        } else {
                            mine.push(l);
                        }
                    }
                    tx.send(batch).unwrap();
                    // Free half of our own, oldest first.
                    let n = mine.len() / 2;
                    for l in mine.drain(..n) {
                        check_tag(l);
                        remove_live(live, l.addr);
                        // SAFETY: allocated above with `l.size`, freed once.
                        unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
                    }
                    // Free what the other worker sent.
                    while let Ok(batch) = rx.try_recv() {
                        for l in batch {
                            check_tag(l);
                            remove_live(live, l.addr);
                            // SAFETY: allocated by the other worker with `l.size`, freed once.
                            unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
                        }
                    }
                }
                drop(tx);
                for l in mine {
                    check_tag(l);
                    remove_live(live, l.addr);
                    // SAFETY: allocated above, freed once.
                    unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
                }
                // Whatever the other worker still sends.
                for batch in rx {
                    for l in batch {
                        check_tag(l);
                        remove_live(live, l.addr);
                        // SAFETY: allocated by the other worker, freed once.
                        unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
                    }
                }
            }));
        }
        drop(txs);
        // Explicit joins also wait for the threads' thread-local destructors (the flush).
        for h in handles {
            h.join().unwrap();
        }
    });
    assert!(live.lock().unwrap().is_empty());
    // The workers exited: their magazines are in the depots (or the engine). Count every chunk.
    let s = a.stats();
    assert_eq!(
        s.classes.iter().map(|c| c.thread_chunks).sum::<usize>(),
        0,
        "exited threads still hold chunks"
    );
    assert_eq!(s.live_chunks(), 0, "chunks lost: {s}");
    let used: usize = s.engine.classes.iter().map(|c| c.used_chunks).sum();
    assert_eq!(used, s.magazine_chunks());
    // Two reaps with no demand give every cached chunk back; the engine then has none used.
    a.reap();
    a.reap();
    let s = a.stats();
    assert_eq!(s.magazine_chunks(), 0);
    assert!(s.engine.classes.iter().all(|c| c.used_chunks == 0), "{s}");
}

/// A reaper thread runs reaps in a loop while workers churn; nothing is lost or duplicated.
#[test]
fn reaps_concurrent_with_churn() {
    let a = allocator(
        64 << 20,
        MagazineConfig::default()
            .initial_rounds(4)
            .max_depot_bytes(64 << 10),
    );
    let live = Mutex::new(HashSet::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (a, live, stop) = (&a, &live, &stop);
        let reaper = s.spawn(move || {
            let mut reaps = 0;
            while !stop.load(Ordering::Relaxed) {
                a.reap();
                reaps += 1;
                std::thread::yield_now();
            }
            reaps
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|w| {
                s.spawn(move || {
                    let mut held: Vec<Live> = Vec::new();
                    for i in 0..200_000u64 {
                        if held.len() < 500 && (i % 7 != 3) {
                            let size = SIZES[(i as usize) % SIZES.len()];
                            let p = a.alloc(size).unwrap();
                            let l = Live {
                                addr: p.as_ptr() as usize,
                                size,
                                tag: tag_of(w, i),
                            };
                            insert_live(live, l.addr);
                            write_tag(p, size, l.tag);
                            held.push(l);
                        } else if let Some(l) = held.pop() {
                            check_tag(l);
                            remove_live(live, l.addr);
                            // SAFETY: allocated above, freed once.
                            unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
                        }
                    }
                    for l in held {
                        check_tag(l);
                        remove_live(live, l.addr);
                        // SAFETY: allocated above, freed once.
                        unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reaper.join().unwrap() > 0);
    });
    let s = a.stats();
    assert_eq!(s.live_chunks(), 0, "chunks lost: {s}");
    a.reap();
    a.reap();
    let s = a.stats();
    assert!(s.engine.classes.iter().all(|c| c.used_chunks == 0), "{s}");
}

/// Threads that come and go: each short-lived thread allocates, frees some chunks of the
/// previous generation (handed over through a shared stash) and exits holding magazines.
#[test]
fn short_lived_threads_strand_nothing() {
    let a = Arc::new(allocator(
        64 << 20,
        MagazineConfig::default().initial_rounds(16),
    ));
    let stash: Arc<Mutex<Vec<Live>>> = Arc::new(Mutex::new(Vec::new()));
    for gen in 0..20 {
        let handles: Vec<_> = (0..THREADS)
            .map(|w| {
                let (a, stash) = (a.clone(), stash.clone());
                std::thread::spawn(move || {
                    let old: Vec<Live> = {
                        let mut st = stash.lock().unwrap();
                        let n = st.len() / 2;
                        st.drain(..n).collect()
                    };
                    for l in old {
                        check_tag(l);
                        // SAFETY: allocated by an earlier thread, freed once (drained from the
                        // stash under its lock).
                        unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
                    }
                    let mut new = Vec::new();
                    for i in 0..300u64 {
                        let size = SIZES[(i as usize + w) % SIZES.len()];
                        let p = a.alloc(size).unwrap();
                        let l = Live {
                            addr: p.as_ptr() as usize,
                            size,
                            tag: tag_of(w, gen * 1000 + i),
                        };
                        write_tag(p, size, l.tag);
                        new.push(l);
                    }
                    stash.lock().unwrap().extend(new);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let remaining = std::mem::take(&mut *stash.lock().unwrap());
    let addrs: HashSet<usize> = remaining.iter().map(|l| l.addr).collect();
    assert_eq!(addrs.len(), remaining.len(), "a chunk was handed out twice");
    let s = a.stats();
    assert_eq!(s.classes.iter().map(|c| c.thread_chunks).sum::<usize>(), 0);
    assert_eq!(s.live_chunks(), remaining.len(), "{s}");
    for l in remaining {
        check_tag(l);
        // SAFETY: allocated by a worker, freed once.
        unsafe { a.dealloc(NonNull::new(l.addr as *mut u8).unwrap(), l.size) };
    }
    a.flush_thread_cache();
    assert_eq!(a.stats().live_chunks(), 0);
}

/// At the memory limit, threads get `LimitReached` only when the chunks cached in depots and
/// magazines could not help; after every thread frees and flushes, everything is reusable.
#[test]
fn limit_under_concurrency() {
    // 1 MiB limit, 64 KiB slabs: 16 slabs.
    let a = allocator(1 << 20, MagazineConfig::default().initial_rounds(8));
    let total = std::sync::atomic::AtomicUsize::new(0);
    let barrier = std::sync::Barrier::new(THREADS);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..THREADS {
            let (a, total, barrier) = (&a, &total, &barrier);
            handles.push(s.spawn(move || {
                let mut held = Vec::new();
                loop {
                    match a.alloc(1000) {
                        Ok(p) => held.push(p.as_ptr() as usize),
                        Err(Error::LimitReached { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                // Both hold what they got at once: a chunk counted twice would exceed the limit.
                barrier.wait();
                total.fetch_add(held.len(), Ordering::Relaxed);
                barrier.wait();
                for p in held {
                    // SAFETY: allocated above with size 1000, freed once.
                    unsafe { a.dealloc(NonNull::new(p as *mut u8).unwrap(), 1000) };
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    // A failing thread first gave back its own magazines and every depot: together the two
    // hold every chunk the limit allows (64 per slab, 16 slabs).
    assert_eq!(total.load(Ordering::Relaxed), 16 * 64);
    assert_eq!(a.stats().live_chunks(), 0);
    // Now one thread can have all of them.
    let mut held = Vec::new();
    while let Ok(p) = a.alloc(1000) {
        held.push(p);
    }
    assert_eq!(held.len(), 16 * 64);
}
