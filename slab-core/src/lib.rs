//! slab-core: a size-class slab allocator with batched, adaptive release to the OS.
//!
//! # Design
//!
//! The crate has two layers.
//!
//! **The engine** ([`engine::SlabEngine`]) owns memory. At start it reserves one large range of
//! address space (`PROT_NONE`, `MAP_NORESERVE`, 2 MiB aligned) and maps parts of it read-write
//! on demand, one granule (default 2 MiB, 2 MiB aligned, so transparent huge pages can back it)
//! per `mmap`. The reservation is cut into fixed-size *slots* of one slab each (default 1 MiB,
//! any power of two). A slab belongs to one size class ([`size_class::SizeClasses`]) and is a
//! contiguous run of that class's chunks, carved lazily with a bump index so untouched chunks
//! cost no RSS; freed chunks go on an intrusive free list inside the slab.
//!
//! * pointer -> slab is `(ptr - base) >> slab_shift`; slab -> class is one atomic load from a
//!   per-slot table, so [`engine::SlabEngine::class_of`] and `free` are O(1).
//! * Each class tracks partial, full and (one) empty slab and allocates from partial slabs
//!   first. Slabs that become empty go to a shared *pool*, where any class can take them.
//! * A hard memory limit caps the bytes mapped; past it allocation fails with
//!   [`Error::LimitReached`] and the caller evicts.
//! * Release is batched ([`release`]): the empty slabs to return are sorted by address, adjacent
//!   ones merged into runs, and each run unmapped with exactly one `munmap`, outside every lock,
//!   so the kernel does one TLB shootdown per run instead of one per page or slab.
//! * Retention adapts to demand, like glibc's dynamic mmap threshold: [`engine::SlabEngine::reap`]
//!   keeps a target number of empty slabs. Mapping new memory within a few reap intervals of
//!   releasing some raises the target by that amount (the release was a misjudgement); pooled
//!   slabs that stay unused for whole intervals make it decay. A one-off spike goes back to the
//!   OS at the next reap, and a program that frees and refills the same amount stops calling
//!   `mmap`/`munmap` after its first cycle.
//! * Accounting ([`stats::Stats`]) is exact: mapped bytes, per-class slabs and chunks, and every
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
//! * Tests: unit and property tests next to the code (those that do not `mmap` run under Miri),
//!   integration tests in `tests/` (engine behaviour, RSS accounting in its own binary).
//!
//! # Example
//!
//! ```
//! use slab_core::engine::{Config, SlabEngine};
//! use slab_core::size_class::SizeClasses;
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
//! (To be written with the magazine layer: per-thread magazines, the depot, reaping and the
//! embeddable allocator APIs built on the engine.)
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// ---- engine layer: size classes, OS memory, slabs, release ----
pub mod error;
pub mod size_class;
mod os;
pub mod engine;
pub mod release;
pub mod stats;
pub(crate) mod sync;

pub use error::Error;

// ---- magazine layer: per-thread magazines, depot, reaping, embeddable APIs ----
mod magazine;
mod depot;
pub mod allocator;
pub mod pool;
pub mod global;
pub mod reap;

#[cfg(all(test, loom))]
mod tests;
