//! slab-core: a size-class slab allocator.
//!
//! (Crate documentation: Design, Safety and correctness, memory layout diagram.)
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

// ---- magazine layer: per-thread magazines, depot, reaping, embeddable APIs ----
mod magazine;
mod depot;
pub mod allocator;
pub mod pool;
pub mod global;
pub mod reap;

#[cfg(all(test, loom))]
mod tests;
