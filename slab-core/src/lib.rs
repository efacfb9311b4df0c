//! slab-core: a size-class slab allocator with batched, adaptive release to the OS.
//!
//! # Design
//!
//! The crate has two layers, one folder each:
//!
//! ```text
//!  src/
//!  |- lib.rs            these docs; re-exports of the main types
//!  |- engine/           the engine, which owns memory (SlabEngine, in engine/mod.rs)
//!  |   |- config.rs        Config
//!  |   |- reservation.rs   the reserved range cut into slots; every slot's state; mapping
//!  |   |- class_list.rs    per-class slab lists; the free-list links inside free chunks
//!  |   |- empty_slabs.rs   the pool of empty slabs and its adaptive retention
//!  |   |- draining.rs      slabs marked draining for a compactor
//!  |   |- release.rs       run coalescing, ReleaseReport
//!  |   |- os.rs            the only file that calls mmap / munmap / madvise
//!  |   |- size_class.rs    size-class tables, size -> class lookup
//!  |   `- stats.rs         the engine's accounting
//!  |- magazine/         per-thread caches in front of it (SlabAllocator, in magazine/mod.rs)
//!  |   |- config.rs        MagazineConfig
//!  |   |- magazine.rs      a magazine, and a thread's loaded / previous pair for one class
//!  |   |- depot.rs         per class, the full and empty magazines threads exchange
//!  |   |- shared.rs        what every thread's caches and the reaper point at; slow paths
//!  |   |- thread_cache.rs  a thread's caches, the thread-local, the flush at thread exit
//!  |   |- reap.rs          reaping by working set, the background reaper
//!  |   `- stats.rs         the magazine layer's accounting
//!  |- pool.rs           Pool<T>: a typed object pool on a SlabAllocator
//!  |- global.rs         SlabGlobalAlloc: the allocator as #[global_allocator]
//!  |- lazy.rs           LazyTable: per-class state created on first use
//!  |- error.rs          Error
//!  |- sync.rs           std or loom atomics, locks and thread-locals
//!  `- tests/            loom models (cfg(loom))
//! ```
//!
//! Imports go one way: `magazine` uses `engine`, never the reverse; inside each folder,
//! `mod.rs` uses the files next to it and none of them uses `mod.rs` or each other in a circle.
//!
//! **The engine** ([`engine::SlabEngine`]) owns memory. At start it reserves one large range of
//! address space (`PROT_NONE`, `MAP_NORESERVE`, 2 MiB aligned) and maps parts of it read-write
//! on demand, one granule (default 2 MiB, 2 MiB aligned, so transparent huge pages can back it)
//! per `mmap`. The reservation is cut into fixed-size *slots* of one slab each (default 1 MiB,
//! any power of two). A slab belongs to one size class ([`SizeClasses`]) and is a
//! contiguous run of that class's chunks, carved lazily with a bump index so untouched chunks
//! cost no RSS; freed chunks go on an intrusive free list inside the slab.
//!
//! * pointer -> slab is `(ptr - base) >> slab_shift`; slab -> class is one atomic load from a
//!   per-slot table, so [`engine::SlabEngine::class_of`] and `free` are O(1).
//! * Each class tracks partial, full and (one) empty slab and allocates from partial slabs
//!   first. Slabs that become empty go to a shared *pool*, where any class can take them.
//! * A hard memory limit caps the bytes mapped; past it allocation fails with
//!   [`Error::LimitReached`] and the caller evicts.
//! * Release is batched ([`engine::release`]): the empty slabs to return are sorted by address, adjacent
//!   ones merged into runs, and each run unmapped with exactly one `munmap`, outside every lock,
//!   so the kernel does one TLB shootdown per run instead of one per page or slab.
//! * The slabs can be a file's pages instead of anonymous memory
//!   ([`engine::Backing::File`], `MAP_SHARED`): released runs are then also punched out of
//!   the file (`fallocate(FALLOC_FL_PUNCH_HOLE)`, one call per run), and
//!   [`engine::SlabEngine::slab_table`] with [`engine::Config::restore`] takes the slabs up
//!   again in a later process (a warm restart).
//! * Retention adapts to demand, like glibc's dynamic mmap threshold: [`engine::SlabEngine::reap`]
//!   keeps a target number of empty slabs. Mapping new memory within a few reap intervals of
//!   releasing some raises the target by that amount (the release was a misjudgement); pooled
//!   slabs that stay unused for whole intervals make it decay. A one-off spike goes back to the
//!   OS at the next reap, and a program that frees and refills the same amount stops calling
//!   `mmap`/`munmap` after its first cycle.
//! * Accounting ([`engine::stats::Stats`]) is exact: mapped bytes, per-class slabs and chunks, and every
//!   `mmap`/`munmap`/`madvise` call, counted by the one module that makes them (`os.rs`).
//!
//! ```text
//!  reservation (PROT_NONE, 2 MiB aligned)                                        base + reserved
//!  |<------------------------------------------------------------------------------------->|
//!  | granule 0 (mapped RW)  | granule 1 (mapped RW)  | hole (munmapped) | fresh (PROT_NONE) ...
//!  | slot 0     | slot 1    | slot 2     | slot 3    | slot 4 | slot 5  | slot 6 | slot 7 ...
//!  | class 3    | pool      | class 0    | class 3   |  released: mapped |  never mapped
//!  |            | (empty)   |            |           |  back with        |
//!  |                                                    MAP_FIXED_NOREPLACE
//!  slot 0, a slab of class 3 (chunk size c, n = slab_size / c chunks):
//!  | chunk 0 | chunk 1 | chunk 2 | ... | chunk bump-1 | never carved ... | tail < c |
//!     used      free -----------> free (link stored in the free chunk)
//! ```
//!
//! **The magazine layer** (per-thread caches in front of the engine) is described below.
//!
//! # Safety and correctness
//!
//! * Only `os.rs` calls the OS, through one `syscall!` wrapper that turns `-1` into
//!   `io::Error`. `MAP_FIXED` is only used on slots still inside our own `PROT_NONE`
//!   reservation; slots we have unmapped are mapped back with `MAP_FIXED_NOREPLACE`, and if
//!   something else took the hole the slots are marked foreign and never touched again.
//! * The engine's raw layer is two functions that read and write the free-list link inside a
//!   free chunk, always under the owning class's lock. `free`/`free_batch` are `unsafe`: the
//!   caller promises the pointer came from this engine and is not used after.
//! * Lock order is class lock, then pool lock; `munmap` runs with no lock held on slots marked
//!   `Releasing`, which no other path touches.
//! * Every `Mutex`, atomic and thread-local comes from `sync` (loom under `cfg(loom)`).
//! * Tests: unit and property tests next to the code (those that do not `mmap` run under Miri:
//!   class lookup, memcached's table, run coalescing, slab-list bookkeeping); integration tests
//!   in `tests/`: `engine.rs` (pointer -> slab/class round trips, the limit, batched release,
//!   retention, a foreign mapping in a hole, release racing allocation, and a model-based
//!   property test of accounting identities), `rss_accounting.rs` (mapped bytes against RSS
//!   within 5%, a spike returned at the next reap; its own binary since RSS is per process),
//!   `memcached_classes.rs` (the geometric table against the memcached binary's own).
//!
//! # Example
//!
//! ```
//! use slab_core::engine::Config;
//! use slab_core::{SizeClasses, SlabEngine};
//!
//! let engine = SlabEngine::new(Config::new(SizeClasses::memcached_default()).memory_limit(64 << 20))?;
//! let class = engine.classes().class_for(100).unwrap(); // the 120-byte class
//! let chunk = engine.alloc(class)?;
//! assert_eq!(engine.class_of(chunk.as_ptr()), Some(class));
//! // SAFETY: `chunk` came from `engine.alloc` and is not used afterwards.
//! unsafe { engine.free(chunk) };
//! let report = engine.release_all();
//! assert_eq!(engine.stats().mapped_bytes, 0);
//! assert_eq!(report.munmap_calls, 1);
//! # Ok::<(), slab_core::Error>(())
//! ```
//!
//! # Magazine layer
//!
//! [`SlabAllocator`] puts Bonwick & Adams' magazines (Solaris kmem, 2001) in front of
//! the engine:
//!
//! ```text
//!  thread 1: class c [loaded][previous]     thread 2: class c [loaded][previous]
//!            alloc = pop loaded, free = push loaded; swap with previous
//!            (thread-local arrays: no atomics, no locks)
//!                   | both spent                        | both spent
//!                   v                                   v
//!  depot of class c (one Mutex): full magazines [m][m][m]   empty magazines [m][m]
//!                   | no full magazine: alloc_batch     | over the byte bound: free_batch
//!                   v                                   v
//!  SlabEngine: class c's slabs -> empty slabs -> pool -> batched munmap at reap
//! ```
//!
//! * **Magazines** ([`magazine`]): per thread and per class, a *loaded* and a *previous*
//!   magazine (stacks of free chunk pointers). The fast paths touch only thread-local state;
//!   when both magazines are spent the thread exchanges one with the class's *depot* (kmem's
//!   `magazine_alloc`/`magazine_free` logic). With no full magazine in the depot, a magazine is
//!   filled from the engine with one `alloc_batch` (one lock for a whole magazine).
//! * **Depot** (per class, a `Mutex`; lock-free would need epoch reclamation for a structure
//!   visited once per magazine, see `depot.rs`). A busy depot lock is a contention event;
//!   enough of them double the class's magazine size (bounded by rounds and by bytes per
//!   magazine). [`magazine::AllocatorStats`] shows every class's current size.
//! * **Bounded memory**: a magazine holds at most `max_magazine_bytes`, a depot at most
//!   `max_depot_bytes` of chunks; beyond, frees go straight back to the engine. Classes with
//!   chunks larger than a magazine bypass the magazines. Stats report chunks held in depots
//!   (exact) and in threads' magazines (as of each thread's last exchange).
//! * **Reaping by working set** ([`magazine::reap`]): on demand ([`SlabAllocator::reap`]) or
//!   every interval (a background reaper), each depot gives back the full magazines the last
//!   interval did not need, their chunks go back to the engine, and the engine's reap returns
//!   empty slabs to the OS in batched runs.
//! * **No stranded memory**: a thread's magazines go back to the depot when it exits (the
//!   thread-local's destructor) or calls [`SlabAllocator::flush_thread_cache`]. Any thread
//!   may free any chunk. When the engine reports [`Error::LimitReached`], the allocator
//!   first drains every depot and the calling thread's magazines into the engine and retries.
//! * **Embeddable**: the raw API ([`SlabAllocator::alloc`] / `dealloc` with the size), a
//!   safe typed [`pool::Pool`] with an RAII [`pool::PoolBox`], and
//!   [`global::SlabGlobalAlloc`] for `#[global_allocator]` (small sizes from slabs, the rest
//!   from the system; the allocator's own bookkeeping never recurses into its slabs).
//! * **Checked**: loom models (`src/tests/loom_*.rs`, run by `scripts/loom.sh`) of depot
//!   exchanges between threads, cross-thread frees, thread exit flushing concurrently with
//!   allocation, and a reap concurrent with allocation; stress tests with real threads
//!   (`tests/stress.rs`, and `tests/stress_global.rs` with [`global::SlabGlobalAlloc`] as the
//!   test binary's global allocator) that count every chunk.
//!
//! # Scaling: what bounds it at 16 and 64 threads
//!
//! An allocation or free that its thread's loaded or previous magazine can serve touches
//! only thread-local memory: no atomic, no lock, no shared cache line. A free from another
//! thread than the allocating one costs the same as a local free (the pointer is pushed into
//! the *freeing* thread's magazine; the chunk itself is not written), so cross-thread frees
//! need no remote-free queue and no atomic per object. What is shared, per class:
//!
//! * **The depot lock.** A thread whose frees and allocations of a class do not balance
//!   (a consumer that only frees, a producer that only allocates, larson's threads that free
//!   each other's objects) exchanges one magazine with the depot every `M` operations, where
//!   `M` is the class's magazine size (32 rounds at start). One exchange is a `Mutex` taken
//!   for a `Vec` push and pop, about 50-100 ns once the lock's cache line must come from
//!   another core. With `T` such threads each doing an operation every `t` ns, the lock is
//!   busy `T * (50..100) / (M * t)` of the time: for `t = 10` ns and `M = 32`, 16 threads
//!   keep it busy 2.5-5x over, i.e. the lock, not the threads, sets the pace. The design
//!   answers in two ways. A depot lock found busy is a contention event, and every 8 of them
//!   double the class's magazine size, up to 256 rounds (and at most 64 KiB of chunks per
//!   magazine): at `M = 256` the same 16 threads load the lock 0.3-0.6x, and 64 threads
//!   1.25-2.5x, so at 64 unbalanced threads of one class the depot lock is the bound (about
//!   `M / 75 ns`, some 3 G objects/s for the class, whatever the thread count). And the depots
//!   are per class, so threads working on different classes never meet on one. Not done: a
//!   depot per CPU or per NUMA node (kmem's per-CPU layer sits where the thread caches are
//!   here; a sharded depot would divide the lock's load by the shard count at the price of
//!   memory stranded per shard).
//! * **The engine's class lock.** Taken once per magazine when the depot has no full
//!   magazine to give (`alloc_batch`) or is at its byte bound (`free_batch`); in a steady
//!   state the depot serves nearly every exchange, so this lock is taken at the rate memory
//!   grows or shrinks, not at the rate of operations.
//! * **Cross-thread frees move chunks between threads.** Because a free goes into the freeing
//!   thread's magazine, chunks migrate: a consumer's full magazines reach the producer through
//!   the depot. That is what keeps remote frees as cheap as local ones, but it also means
//!   chunks that share a cache line can be handed to different threads: objects of two
//!   threads may share a line (passive and active false sharing, Hoard's cache-scratch and
//!   cache-thrash; `alloc-compare --census` counts them). The design does not prevent it:
//!   that needs the owner of every chunk known on free (mimalloc's per-thread pages and
//!   their remote-free lists), which costs an atomic per remote free. At 16 and 64 threads
//!   on cores that do not share a cache, that is where small objects written by several
//!   threads lose time; on this project's 2-core test machine the cost does not show in time
//!   (two threads writing one line run as fast as two writing separate lines).
//! * **Memory per thread.** Each thread holds at most two magazines per class it uses (each
//!   at most `max_magazine_bytes`), so cached memory grows with the thread count: at 64
//!   threads and 64 KiB magazines, up to 8 MiB per class in threads' hands. Idle threads keep
//!   theirs until they exit or flush (see the magazine module's Limits).
//!
//! `alloc-compare` prints the throughput on two threads over one for every threaded workload
//! (on a 2-core machine; 2.00x is linear).
//!
//! ```
//! use slab_core::engine::Config;
//! use slab_core::{SizeClasses, SlabAllocator};
//!
//! let a = SlabAllocator::new(Config::new(SizeClasses::memcached_default()))?;
//! let p = a.alloc(64)?.as_ptr() as usize;
//! std::thread::scope(|s| {
//!     // Freeing on another thread is fine; its magazines go to the depot when it exits.
//!     s.spawn(|| {
//!         let p = std::ptr::NonNull::new(p as *mut u8).unwrap();
//!         // SAFETY: `p` came from `a.alloc(64)` and is freed once.
//!         unsafe { a.dealloc(p, 64) }
//!     });
//! });
//! let report = a.reap();
//! assert_eq!(a.stats().live_chunks(), 0);
//! # let _ = report;
//! # Ok::<(), slab_core::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod engine;
pub mod error;
pub mod global;
pub mod lazy;
pub mod magazine;
pub mod pool;
pub(crate) mod sync;

pub use engine::size_class::{ClassId, SizeClasses};
pub use engine::SlabEngine;
pub use error::Error;
pub use magazine::SlabAllocator;

#[cfg(all(test, loom))]
mod tests;

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
