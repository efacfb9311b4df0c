//! slab-core: a size-class slab allocator.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
