//! Benchmarks shared code: the allocators compared side by side, and the allocator workloads.
//!
//! Every allocator is driven through the same two calls, [`Allocator::alloc`] and
//! [`Allocator::free`] (with the size, as `GlobalAlloc::dealloc` and slab-core's raw API take
//! it). The peers are called through their `GlobalAlloc` methods directly (they are not
//! installed as the global allocator), so all of them pay the same call overhead.
//!
//! Workloads (ns per op = wall time / objects allocated and freed):
//! 1. `pair64`: allocate and free one 64-byte object, one thread.
//! 2. `mixed10k`: allocate 10,000 objects of mixed sizes 16-1024 bytes, then free them all.
//! 3. `prodcons64`: one thread allocates 64-byte objects, another frees them (batches of
//!    pointers through a bounded channel; the xmalloc-test shape).
//! 4. `larson`: two threads each replace random objects (16-512 bytes) in an array of slots;
//!    after every round the threads swap arrays, so each frees objects the other allocated.
//!
//! `sharded-slab` stores values rather than allocating bytes; it runs the fixed-size
//! workloads (1 and 3) with `Slab<[u8; 64]>` insert/remove.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use slab_core::engine::size_class::general_classes;
use slab_core::engine::Config;
use slab_core::magazine::SlabAllocator;
use tikv_jemallocator::Jemalloc;

pub mod shapes;

/// Alignment requested from every allocator (what `malloc` guarantees on x86-64 Linux).
pub const ALIGN: usize = 16;

/// A byte allocator under test.
pub trait Allocator: Sync {
    /// The name printed in results.
    fn name(&self) -> &'static str;
    /// Allocates `size` bytes (aborts the benchmark on failure).
    fn alloc(&self, size: usize) -> NonNull<u8>;
    /// Frees `ptr` of `size` bytes.
    ///
    /// # Safety
    /// `ptr` must come from `self.alloc(size)` and not have been freed.
    unsafe fn free(&self, ptr: NonNull<u8>, size: usize);
    /// Gives cached memory back to the OS if the allocator has such a call (slab-core: one
    /// reap). Returns whether it did anything.
    fn reap(&self) -> bool {
        false
    }
}

/// A peer reached through its `GlobalAlloc` implementation.
#[derive(Debug)]
pub struct Peer<A: GlobalAlloc + Sync> {
    name: &'static str,
    inner: A,
}

impl<A: GlobalAlloc + Sync> Allocator for Peer<A> {
    fn name(&self) -> &'static str {
        self.name
    }

    #[inline]
    fn alloc(&self, size: usize) -> NonNull<u8> {
        let layout = Layout::from_size_align(size, ALIGN).expect("valid layout");
        // SAFETY: the layout has a non-zero size (every workload allocates at least 16 bytes).
        NonNull::new(unsafe { self.inner.alloc(layout) }).expect("out of memory")
    }

    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, size: usize) {
        let layout = Layout::from_size_align(size, ALIGN).expect("valid layout");
        // SAFETY: forwarded from the caller: allocated by `self.alloc(size)`, i.e. with this
        // layout.
        unsafe { self.inner.dealloc(ptr.as_ptr(), layout) }
    }
}

/// slab-core's raw API (`SlabAllocator::alloc` / `dealloc`) over the general-purpose classes.
#[derive(Debug)]
pub struct SlabCore(pub SlabAllocator);

impl SlabCore {
    /// A fresh allocator with the general-purpose classes, no limit, default magazines.
    pub fn new() -> Self {
        SlabCore(SlabAllocator::new(Config::new(general_classes())).expect("slab allocator"))
    }
}

impl Default for SlabCore {
    fn default() -> Self {
        Self::new()
    }
}

impl Allocator for SlabCore {
    fn name(&self) -> &'static str {
        "slab-core"
    }

    #[inline]
    fn alloc(&self, size: usize) -> NonNull<u8> {
        self.0.alloc(size).expect("slab allocation")
    }

    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.dealloc(ptr, size) }
    }

    fn reap(&self) -> bool {
        self.0.reap();
        true
    }
}

/// The allocator names `make` accepts, in the order results are printed.
pub const ALLOCATORS: [&str; 5] = ["slab-core", "glibc", "mimalloc", "jemalloc", "sharded-slab"];

/// A byte allocator by name (`None` for `sharded-slab`, which is not one, or unknown names).
pub fn make(name: &str) -> Option<Box<dyn Allocator>> {
    Some(match name {
        "slab-core" => Box::new(SlabCore::new()),
        "glibc" => Box::new(Peer {
            name: "glibc",
            inner: System,
        }),
        "mimalloc" => Box::new(Peer {
            name: "mimalloc",
            inner: MiMalloc,
        }),
        "jemalloc" => Box::new(Peer {
            name: "jemalloc",
            inner: Jemalloc,
        }),
        _ => return None,
    })
}

/// A small fast PRNG (xorshift64*), so workloads are identical for every allocator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

#[inline]
fn touch(p: NonNull<u8>) {
    // SAFETY: `p` is a fresh allocation of at least one byte owned by the caller.
    unsafe { p.as_ptr().write_volatile(1) };
}

/// Workload 1: `n` alloc + free pairs of 64 bytes. Returns the elapsed time.
pub fn pair64(a: &dyn Allocator, n: usize) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let p = a.alloc(64);
        touch(p);
        // SAFETY: allocated just above with size 64, freed once.
        unsafe { a.free(black_box(p), 64) };
    }
    t.elapsed()
}

/// The sizes of workload 2 (fixed seed): 10,000 sizes uniform in 16..=1024.
pub fn mixed_sizes() -> Vec<usize> {
    let mut r = Rng::new(0x5eed);
    (0..10_000).map(|_| r.range(16, 1024)).collect()
}

/// Workload 2: `rounds` times, allocate every size of `sizes`, then free them all (in
/// allocation order). Returns the elapsed time; ops = `rounds * sizes.len()`.
pub fn mixed(a: &dyn Allocator, sizes: &[usize], rounds: usize) -> Duration {
    let mut ptrs: Vec<NonNull<u8>> = Vec::with_capacity(sizes.len());
    let t = Instant::now();
    for _ in 0..rounds {
        for &s in sizes {
            let p = a.alloc(s);
            touch(p);
            ptrs.push(p);
        }
        for (p, &s) in ptrs.drain(..).zip(sizes) {
            // SAFETY: allocated above with size `s`, freed once.
            unsafe { a.free(p, s) };
        }
    }
    t.elapsed()
}

/// Objects per message in the producer/consumer workload.
const BATCH: usize = 256;

struct SendPtrs(Vec<NonNull<u8>>);
// SAFETY: the pointers are allocations handed from the producer to the consumer, which frees
// them; nobody else uses them.
unsafe impl Send for SendPtrs {}

/// Workload 3: one thread allocates `n` 64-byte objects and sends them in batches through a
/// bounded channel; another frees them. Returns the elapsed time (both threads).
pub fn prodcons64(a: &dyn Allocator, n: usize) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<SendPtrs>(64);
    let t = Instant::now();
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            for batch in rx {
                for p in batch.0 {
                    // SAFETY: allocated by the producer with size 64, freed once here.
                    unsafe { a.free(p, 64) };
                }
            }
        });
        let mut left = n;
        while left > 0 {
            let k = left.min(BATCH);
            let mut v = Vec::with_capacity(k);
            for _ in 0..k {
                let p = a.alloc(64);
                touch(p);
                v.push(p);
            }
            tx.send(SendPtrs(v)).expect("consumer alive");
            left -= k;
        }
        drop(tx);
        // An explicit join also waits for the thread's exit (its thread-local caches).
        consumer.join().expect("consumer");
    });
    t.elapsed()
}

/// Slots per thread in the larson workload.
pub const LARSON_SLOTS: usize = 1000;

/// Workload 4 (larson-like): 2 threads, each with an array of [`LARSON_SLOTS`] objects of
/// random sizes 16..=512; each of `rounds` rounds does `steps` replacements (free a random
/// slot's object, allocate a new one) per thread, then the threads swap arrays, so objects are
/// freed by the other thread than the one that allocated them. Returns the elapsed time; ops =
/// `2 * rounds * steps`.
pub fn larson(a: &dyn Allocator, rounds: usize, steps: usize) -> Duration {
    type Slots = Vec<(usize, usize)>; // (address, size)
    let fill = |seed: u64| -> Slots {
        let mut r = Rng::new(seed);
        (0..LARSON_SLOTS)
            .map(|_| {
                let s = r.range(16, 512);
                (a.alloc(s).as_ptr() as usize, s)
            })
            .collect()
    };
    let arrays: Arc<[Mutex<Slots>; 2]> = Arc::new([Mutex::new(fill(1)), Mutex::new(fill(2))]);
    let barrier = Barrier::new(2);
    let t = Instant::now();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for w in 0..2 {
            let (arrays, barrier) = (arrays.clone(), &barrier);
            handles.push(s.spawn(move || {
                let mut r = Rng::new(100 + w as u64);
                for round in 0..rounds {
                    let mut slots = arrays[(w + round) % 2].lock().expect("not poisoned");
                    for _ in 0..steps {
                        let i = r.range(0, LARSON_SLOTS - 1);
                        let (p, size) = slots[i];
                        // SAFETY: every slot holds a live allocation of its recorded size;
                        // it is freed once and replaced.
                        unsafe { a.free(NonNull::new(p as *mut u8).expect("live"), size) };
                        let s = r.range(16, 512);
                        let q = a.alloc(s);
                        touch(q);
                        slots[i] = (q.as_ptr() as usize, s);
                    }
                    drop(slots);
                    barrier.wait();
                }
            }));
        }
        for h in handles {
            h.join().expect("worker");
        }
    });
    let elapsed = t.elapsed();
    for m in arrays.iter() {
        for &(p, size) in m.lock().expect("not poisoned").iter() {
            // SAFETY: the remaining live allocations, freed once.
            unsafe { a.free(NonNull::new(p as *mut u8).expect("live"), size) };
        }
    }
    elapsed
}

/// Workload 1 on `sharded_slab::Slab<[u8; 64]>`.
pub fn pair64_sharded(slab: &sharded_slab::Slab<[u8; 64]>, n: usize) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let k = slab.insert([1; 64]).expect("slab capacity");
        slab.remove(black_box(k));
    }
    t.elapsed()
}

/// Workload 3 on `sharded_slab::Slab<[u8; 64]>` (keys instead of pointers).
pub fn prodcons64_sharded(slab: &sharded_slab::Slab<[u8; 64]>, n: usize) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<Vec<usize>>(64);
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for batch in rx {
                for k in batch {
                    slab.remove(k);
                }
            }
        });
        let mut left = n;
        while left > 0 {
            let k = left.min(BATCH);
            let v: Vec<usize> = (0..k)
                .map(|_| slab.insert([1; 64]).expect("slab capacity"))
                .collect();
            tx.send(v).expect("consumer alive");
            left -= k;
        }
        drop(tx);
    });
    t.elapsed()
}

/// Resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(4096) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_run_on_every_allocator() {
        let sizes = mixed_sizes();
        assert!(sizes.iter().all(|&s| (16..=1024).contains(&s)));
        for name in ALLOCATORS {
            let Some(a) = make(name) else { continue };
            pair64(&*a, 1000);
            mixed(&*a, &sizes[..500], 2);
            prodcons64(&*a, 2000);
            larson(&*a, 3, 100);
        }
        let slab = sharded_slab::Slab::new();
        pair64_sharded(&slab, 1000);
        prodcons64_sharded(&slab, 2000);
    }

    #[test]
    fn slab_core_gets_every_chunk_back_after_the_workloads() {
        let a = SlabCore::new();
        larson(&a, 4, 200);
        prodcons64(&a, 5000);
        a.0.flush_thread_cache();
        assert_eq!(a.0.stats().live_chunks(), 0);
    }
}
