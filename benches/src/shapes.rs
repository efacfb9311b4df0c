//! The multi-threaded shapes of the allocator literature, each with a thread count (so the
//! same shape runs on 1 and 2 threads for the scaling figures) and each checking its objects:
//! every object is written when allocated and read back before it is freed, and a workload
//! returns the number of objects it allocated and freed so the caller can check both counts.
//!
//! * [`scratch`] with [`Sharing::Passive`] (Hoard's *cache-scratch*, passive false sharing):
//!   the main thread allocates one small object per worker and hands it over; each worker
//!   frees it, then repeatedly allocates an object of the same size, writes it many times and
//!   frees it. An allocator that gives the worker back the object it just freed (allocated
//!   next to the other workers' by the main thread) makes the workers write one cache line.
//! * [`scratch`] with [`Sharing::Active`] (*cache-thrash*, active false sharing): the same
//!   loop with no hand-over; an allocator that gives neighbouring objects to different
//!   threads makes them write one cache line.
//!
//!   With `padded`, both allocate 64 bytes (one cache line when the allocator aligns them,
//!   as slab-core's 64-byte class is) and use the first bytes: the reference run without false
//!   sharing.
//! * [`handoff`] (*xmalloc-test*): half the threads allocate objects of mixed small sizes and
//!   send them in batches to the other half, which free them; on one thread, that thread
//!   allocates a batch and frees it itself.
//! * [`sh6`] (*sh6bench*): every thread allocates batches of mixed sizes and frees them in
//!   reversed order, interleaved order (every other one, then the rest), and allocation order.
//! * [`larson_n`]: [`crate::larson`] on any number of threads.

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::{Allocator, Rng, LARSON_SLOTS};

/// What a workload did: its time and the objects it allocated and freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Objects allocated (each also freed exactly once).
    pub objects: usize,
    /// Objects freed.
    pub freed: usize,
    /// False-sharing shapes: objects allocated in a cache line that held another thread's
    /// live object at that moment (0 for the other shapes). Unlike the time, this does not
    /// depend on whether the machine's cores share a cache.
    pub shared_objects: usize,
}

impl Run {
    /// Nanoseconds per object allocated and freed.
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.objects.max(1) as f64
    }
}

/// The measured span of a threaded run: from the first worker's start (after the start
/// barrier) to the last worker's end. Timed in the workers, so a main thread that wakes late
/// from the barrier does not shorten it.
#[derive(Default)]
struct Span(Mutex<Option<(Instant, Instant)>>);

impl Span {
    /// Records one worker's `[start, now]`.
    fn add(&self, start: Instant) {
        let end = Instant::now();
        let mut g = self.0.lock().expect("not poisoned");
        *g = Some(match *g {
            None => (start, end),
            Some((s, e)) => (s.min(start), e.max(end)),
        });
    }

    fn elapsed(&self) -> Duration {
        self.0
            .lock()
            .expect("not poisoned")
            .map_or(Duration::ZERO, |(s, e)| e - s)
    }
}

/// Writes `p`'s identity into an object of `size >= 16` bytes: the id in the first word and
/// a tag derived from it and the size in the last byte.
#[inline]
fn stamp(p: NonNull<u8>, size: usize, id: u64) {
    debug_assert!(size >= 16);
    // SAFETY: `p` is a live allocation of `size >= 16` bytes owned by the caller; the
    // allocators return 16-byte aligned memory, so the u64 write is aligned.
    unsafe {
        p.as_ptr().cast::<u64>().write_volatile(id);
        p.as_ptr().add(size - 1).write_volatile(tag(id, size));
    }
}

#[inline]
fn tag(id: u64, size: usize) -> u8 {
    (id as u8) ^ (size as u8) ^ 0x5a
}

/// Reads back what [`stamp`] wrote; panics if the object was changed by anyone else.
#[inline]
fn check(p: NonNull<u8>, size: usize, id: u64) {
    // SAFETY: as in `stamp`: the caller still owns the live allocation.
    let (got, last) = unsafe {
        (
            p.as_ptr().cast::<u64>().read_volatile(),
            p.as_ptr().add(size - 1).read_volatile(),
        )
    };
    assert!(
        got == id && last == tag(id, size),
        "object {id} of {size} B at {p:p} was overwritten (read {got}, tag {last})"
    );
}

struct SendPtrs(Vec<(NonNull<u8>, usize, u64)>);
// SAFETY: the pointers are allocations handed from one thread to another, which frees them;
// nobody else uses them.
unsafe impl Send for SendPtrs {}

/// An atomic in a cache line of its own (the census must not share lines itself).
#[repr(align(64))]
struct Slot(AtomicUsize);

/// Which false sharing [`scratch`] provokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// cache-scratch: objects handed over by another thread are freed and allocated again.
    Passive,
    /// cache-thrash: each thread allocates its own objects.
    Active,
}

/// Size of the objects of the false-sharing shapes (Hoard's is 8 bytes; 16 is the least
/// every allocator here returns).
pub const SCRATCH_SIZE: usize = 16;

/// Times each byte of an object is written in the false-sharing shapes.
pub const SCRATCH_WRITES: usize = 64;

/// cache-scratch or cache-thrash on `threads` threads, `iters` objects each: allocate, write
/// every byte [`SCRATCH_WRITES`] times (read, add one, write), read every byte back, free.
/// With `padded`, every object takes 64 bytes and the first [`SCRATCH_SIZE`] are used.
pub fn scratch(
    a: &dyn Allocator,
    sharing: Sharing,
    threads: usize,
    iters: usize,
    padded: bool,
) -> Run {
    let size = if padded { 64 } else { SCRATCH_SIZE };
    // Passive: the main thread allocates one object per worker, next to one another.
    let handed: Vec<usize> = match sharing {
        Sharing::Passive => (0..threads)
            .map(|_| {
                let p = a.alloc(size);
                // SAFETY: a fresh allocation of `size` bytes.
                unsafe { p.as_ptr().write_bytes(0, size) };
                p.as_ptr() as usize
            })
            .collect(),
        Sharing::Active => Vec::new(),
    };
    let barrier = Barrier::new(threads);
    let span = Span::default();
    // Per worker, the cache line of the object it holds now (0: none), each in a line of its
    // own; a worker that allocates an object in a line another worker's live object is in
    // counts it as shared (objects of SCRATCH_SIZE bytes are 16-byte aligned: one line each).
    let current: Vec<Slot> = (0..threads).map(|_| Slot(AtomicUsize::new(0))).collect();
    let counts = Mutex::new((0usize, 0usize));
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for w in 0..threads {
            let (barrier, current, counts, handed, span) =
                (&barrier, &current, &counts, &handed, &span);
            hs.push(s.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let (mut n, mut shared) = (0usize, 0usize);
                if let Some(&p) = handed.get(w) {
                    let p = NonNull::new(p as *mut u8).expect("live");
                    // SAFETY: allocated by the main thread with `size` bytes, handed to this
                    // thread only, freed once.
                    unsafe { a.free(p, size) };
                }
                for _ in 0..iters {
                    let p = a.alloc(size);
                    let b = p.as_ptr();
                    let line = b as usize >> 6;
                    current[w].0.store(line, Ordering::SeqCst);
                    if current
                        .iter()
                        .enumerate()
                        .any(|(j, c)| j != w && c.0.load(Ordering::SeqCst) == line)
                    {
                        shared += 1;
                    }
                    // SAFETY: `p` is a fresh allocation of `size >= SCRATCH_SIZE` bytes,
                    // owned by this thread until the free below.
                    unsafe {
                        b.write_bytes(0, SCRATCH_SIZE);
                        for _ in 0..SCRATCH_WRITES {
                            for k in 0..SCRATCH_SIZE {
                                let q = b.add(k);
                                q.write_volatile(q.read_volatile().wrapping_add(1));
                            }
                        }
                        for k in 0..SCRATCH_SIZE {
                            assert_eq!(b.add(k).read_volatile(), SCRATCH_WRITES as u8);
                        }
                        current[w].0.store(0, Ordering::SeqCst);
                        a.free(black_box(p), size);
                    }
                    n += 1;
                }
                span.add(start);
                let mut c = counts.lock().expect("not poisoned");
                c.0 += n;
                c.1 += shared;
            }));
        }
        for h in hs {
            h.join().expect("worker");
        }
    });
    let elapsed = span.elapsed();
    let (n, shared_objects) = *counts.lock().expect("not poisoned");
    Run {
        elapsed,
        objects: n,
        freed: n,
        shared_objects,
    }
}

/// Objects per batch in [`handoff`] and [`sh6`].
pub const BATCH: usize = 256;

/// Sizes of the xmalloc-style shape: small and mixed, 16 to 256 bytes, more small ones.
#[inline]
fn small_size(r: &mut Rng) -> usize {
    let s = r.range(16, 256);
    if r.next_u64() & 1 == 0 {
        16 + (s & 63)
    } else {
        s
    }
}

/// xmalloc-style: `threads / 2` producers (at least one) allocate `n` objects in total of
/// mixed small sizes, stamp them and send them in batches of [`BATCH`] to the consumers
/// (the other threads), which check and free them. On one thread, the thread frees each batch
/// itself after allocating it. Producers and consumers are paired round robin. With `fixed`,
/// every object has that size instead (prodcons64 on any number of threads).
pub fn handoff(a: &dyn Allocator, threads: usize, n: usize, fixed: Option<usize>) -> Run {
    let producers = (threads / 2).max(1);
    let consumers = threads - producers;
    let per = n / producers;
    let freed = Arc::new(Mutex::new(0usize));
    let barrier = Barrier::new(threads);
    let span = Span::default();
    std::thread::scope(|s| {
        let mut txs = Vec::new();
        let mut hs = Vec::new();
        for _ in 0..consumers {
            let (tx, rx) = mpsc::sync_channel::<SendPtrs>(64);
            txs.push(tx);
            let (freed, barrier, span) = (freed.clone(), &barrier, &span);
            hs.push(s.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut k = 0;
                for batch in rx {
                    for (p, size, id) in batch.0 {
                        check(p, size, id);
                        // SAFETY: allocated by a producer with `size` bytes, freed once here.
                        unsafe { a.free(p, size) };
                        k += 1;
                    }
                }
                span.add(start);
                *freed.lock().expect("not poisoned") += k;
            }));
        }
        for w in 0..producers {
            let tx = (consumers > 0).then(|| txs[w % consumers].clone());
            let (freed, barrier, span) = (freed.clone(), &barrier, &span);
            hs.push(s.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut r = Rng::new(0x9e37 + w as u64);
                let mut own_freed = 0;
                let mut left = per;
                let mut id = (w as u64) << 40;
                while left > 0 {
                    let k = left.min(BATCH);
                    let mut v = Vec::with_capacity(k);
                    for _ in 0..k {
                        let size = fixed.unwrap_or_else(|| small_size(&mut r));
                        let p = a.alloc(size);
                        stamp(p, size, id);
                        v.push((p, size, id));
                        id += 1;
                    }
                    match &tx {
                        Some(tx) => tx.send(SendPtrs(v)).expect("consumer alive"),
                        None => {
                            for (p, size, id) in v {
                                check(p, size, id);
                                // SAFETY: allocated just above with `size` bytes, freed once.
                                unsafe { a.free(p, size) };
                                own_freed += 1;
                            }
                        }
                    }
                    left -= k;
                }
                span.add(start);
                *freed.lock().expect("not poisoned") += own_freed;
            }));
        }
        drop(txs);
        for h in hs {
            h.join().expect("worker");
        }
    });
    let elapsed = span.elapsed();
    let freed = *freed.lock().expect("not poisoned");
    Run {
        elapsed,
        objects: per * producers,
        freed,
        shared_objects: 0,
    }
}

/// sh6bench-style sizes: 16 to 1024 bytes, skewed small (three in four below 128).
#[inline]
fn sh6_size(r: &mut Rng) -> usize {
    if r.next_u64() % 4 == 0 {
        r.range(128, 1024)
    } else {
        r.range(16, 127)
    }
}

/// sh6bench-style: each of `threads` threads does `rounds` rounds of three batches of
/// [`BATCH`] objects of mixed sizes: the first freed in reversed order, the second
/// interleaved (even positions, then odd), the third in allocation order; the frees of one
/// batch are interleaved with the allocation of the next (each freed slot is refilled before
/// the next one is freed, for the first batch).
pub fn sh6(a: &dyn Allocator, threads: usize, rounds: usize) -> Run {
    let barrier = Barrier::new(threads);
    let span = Span::default();
    let totals = Mutex::new((0usize, 0usize));
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for w in 0..threads {
            let (barrier, totals, span) = (&barrier, &totals, &span);
            hs.push(s.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut r = Rng::new(0x5eb6 + w as u64);
                let mut id = (w as u64) << 40;
                let (mut allocated, mut freed) = (0usize, 0usize);
                let mut v: Vec<(NonNull<u8>, usize, u64)> = Vec::with_capacity(BATCH);
                let mut alloc_one = |r: &mut Rng, allocated: &mut usize| {
                    let size = sh6_size(r);
                    let p = a.alloc(size);
                    stamp(p, size, id);
                    id += 1;
                    *allocated += 1;
                    (p, size, id - 1)
                };
                let free_one = |(p, size, id): (NonNull<u8>, usize, u64), freed: &mut usize| {
                    check(p, size, id);
                    // SAFETY: allocated by `alloc_one` with `size` bytes, freed once.
                    unsafe { a.free(p, size) };
                    *freed += 1;
                };
                for _ in 0..rounds {
                    // Batch 1, reversed order; every second free is followed by an
                    // allocation that stays live into the next batch.
                    for _ in 0..BATCH {
                        v.push(alloc_one(&mut r, &mut allocated));
                    }
                    let mut carried = Vec::with_capacity(BATCH / 2);
                    for i in (0..BATCH).rev() {
                        free_one(v.pop().expect("batch"), &mut freed);
                        if i % 2 == 0 {
                            carried.push(alloc_one(&mut r, &mut allocated));
                        }
                    }
                    // Batch 2, interleaved: even positions, then odd.
                    v.append(&mut carried);
                    while v.len() < BATCH {
                        v.push(alloc_one(&mut r, &mut allocated));
                    }
                    for i in (0..BATCH).step_by(2) {
                        free_one(v[i], &mut freed);
                    }
                    for i in (1..BATCH).step_by(2) {
                        free_one(v[i], &mut freed);
                    }
                    v.clear();
                    // Batch 3, allocation order.
                    for _ in 0..BATCH {
                        v.push(alloc_one(&mut r, &mut allocated));
                    }
                    for e in v.drain(..) {
                        free_one(e, &mut freed);
                    }
                }
                span.add(start);
                let mut tot = totals.lock().expect("not poisoned");
                tot.0 += allocated;
                tot.1 += freed;
            }));
        }
        for h in hs {
            h.join().expect("worker");
        }
    });
    let elapsed = span.elapsed();
    let (objects, freed) = *totals.lock().expect("not poisoned");
    Run {
        elapsed,
        objects,
        freed,
        shared_objects: 0,
    }
}

/// [`crate::larson`] on `threads` threads (and as many arrays): each round every thread
/// replaces `steps` random objects of one array, then the arrays move on by one thread, so
/// (with two or more threads) objects are freed by another thread than their allocator.
/// Objects are stamped when allocated and checked when freed.
pub fn larson_n(a: &dyn Allocator, threads: usize, rounds: usize, steps: usize) -> Run {
    type Slots = Vec<(usize, usize, u64)>; // (address, size, id)
    let fill = |seed: u64| -> Slots {
        let mut r = Rng::new(seed);
        (0..LARSON_SLOTS)
            .map(|i| {
                let s = r.range(16, 512);
                let p = a.alloc(s);
                let id = (seed << 40) | i as u64;
                stamp(p, s, id);
                (p.as_ptr() as usize, s, id)
            })
            .collect()
    };
    let arrays: Vec<Mutex<Slots>> = (0..threads)
        .map(|i| Mutex::new(fill(i as u64 + 1)))
        .collect();
    let barrier = Barrier::new(threads);
    let span = Span::default();
    let round_barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for w in 0..threads {
            let (arrays, barrier, round_barrier, span) = (&arrays, &barrier, &round_barrier, &span);
            hs.push(s.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut r = Rng::new(100 + w as u64);
                let mut id = (1000 + w as u64) << 40;
                for round in 0..rounds {
                    let mut slots = arrays[(w + round) % threads].lock().expect("not poisoned");
                    for _ in 0..steps {
                        let i = r.range(0, LARSON_SLOTS - 1);
                        let (p, size, old) = slots[i];
                        let p = NonNull::new(p as *mut u8).expect("live");
                        check(p, size, old);
                        // SAFETY: every slot holds a live allocation of its recorded size;
                        // it is freed once and replaced.
                        unsafe { a.free(p, size) };
                        let s = r.range(16, 512);
                        let q = a.alloc(s);
                        stamp(q, s, id);
                        slots[i] = (q.as_ptr() as usize, s, id);
                        id += 1;
                    }
                    drop(slots);
                    round_barrier.wait();
                }
                span.add(start);
            }));
        }
        for h in hs {
            h.join().expect("worker");
        }
    });
    let elapsed = span.elapsed();
    let mut freed = 0;
    for m in &arrays {
        for &(p, size, id) in m.lock().expect("not poisoned").iter() {
            let p = NonNull::new(p as *mut u8).expect("live");
            check(p, size, id);
            // SAFETY: the remaining live allocations, freed once.
            unsafe { a.free(p, size) };
            freed += 1;
        }
    }
    let replaced = threads * rounds * steps;
    Run {
        elapsed,
        objects: replaced,
        freed: freed + replaced - threads * LARSON_SLOTS,
        shared_objects: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::{make, SlabCore, ALLOCATORS};

    /// An allocator that checks its caller: no address is handed out while it is live, and
    /// every free is of a live object with its size (so a workload that freed an object twice,
    /// or never, fails).
    struct Checked<'a> {
        inner: &'a dyn Allocator,
        live: Mutex<HashSet<(usize, usize)>>,
    }

    impl Allocator for Checked<'_> {
        fn name(&self) -> &'static str {
            self.inner.name()
        }

        fn alloc(&self, size: usize) -> NonNull<u8> {
            let p = self.inner.alloc(size);
            let fresh = self
                .live
                .lock()
                .unwrap()
                .insert((p.as_ptr() as usize, size));
            assert!(fresh, "{p:p} handed out while live");
            p
        }

        unsafe fn free(&self, ptr: NonNull<u8>, size: usize) {
            let was = self
                .live
                .lock()
                .unwrap()
                .remove(&(ptr.as_ptr() as usize, size));
            assert!(was, "{ptr:p} ({size} B) freed but not live");
            // SAFETY: forwarded from the caller, and checked to be live just above.
            unsafe { self.inner.free(ptr, size) }
        }
    }

    fn checked(inner: &dyn Allocator, f: impl FnOnce(&dyn Allocator) -> Run) -> Run {
        let c = Checked {
            inner,
            live: Mutex::new(HashSet::new()),
        };
        let run = f(&c);
        assert_eq!(run.objects, run.freed, "{}: {run:?}", inner.name());
        assert!(run.objects > 0);
        assert!(
            c.live.lock().unwrap().is_empty(),
            "{}: leaked",
            inner.name()
        );
        run
    }

    #[test]
    fn every_shape_frees_each_object_once_on_every_allocator() {
        for name in ALLOCATORS {
            let Some(a) = make(name) else { continue };
            let a = &*a;
            for threads in [1, 2, 3] {
                for sharing in [Sharing::Passive, Sharing::Active] {
                    for padded in [false, true] {
                        let r = checked(a, |c| scratch(c, sharing, threads, 200, padded));
                        assert_eq!(r.objects, threads * 200);
                    }
                }
                let r = checked(a, |c| handoff(c, threads, 3000, None));
                assert_eq!(
                    r.objects,
                    3000 / (threads / 2).max(1) * (threads / 2).max(1)
                );
                let r = checked(a, |c| sh6(c, threads, 3));
                assert_eq!(r.objects, threads * 3 * 3 * BATCH);
                let r = checked(a, |c| larson_n(c, threads, 3, 100));
                assert_eq!(r.objects, threads * 300);
            }
        }
    }

    #[test]
    fn slab_core_gets_every_chunk_back_after_the_shapes() {
        let a = SlabCore::new();
        scratch(&a, Sharing::Passive, 2, 500, false);
        scratch(&a, Sharing::Active, 2, 500, true);
        handoff(&a, 2, 5000, None);
        handoff(&a, 3, 5000, Some(64));
        sh6(&a, 2, 4);
        larson_n(&a, 3, 4, 200);
        a.0.flush_thread_cache();
        assert_eq!(a.0.stats().live_chunks(), 0);
    }

    #[test]
    fn padded_objects_of_slab_core_share_no_cache_line() {
        // slab-core's 64-byte class is 64-byte aligned: one object per line.
        let a = SlabCore::new();
        for sharing in [Sharing::Passive, Sharing::Active] {
            let r = scratch(&a, sharing, 3, 1000, true);
            assert_eq!(r.shared_objects, 0, "{sharing:?}");
        }
    }

    #[test]
    fn an_overwritten_object_is_caught() {
        let a = SlabCore::new();
        let p = a.alloc(32);
        stamp(p, 32, 7);
        check(p, 32, 7);
        // SAFETY: `p` is a live 32-byte allocation.
        unsafe { p.as_ptr().add(31).write(0) };
        let r = std::panic::catch_unwind(|| check(p, 32, 7));
        assert!(r.is_err());
        // SAFETY: allocated above, freed once.
        unsafe { a.free(p, 32) };
    }
}
